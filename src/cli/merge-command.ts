/**
 * `loraplex merge --model DIR --adapter DIR --out DIR`: the adapter merged into the base weights
 * (W' = W + scale · B · A; DoRA rows rescaled to their magnitudes: merge.ts), written as a Hugging Face model directory that any loader — loraplex
 * serve included — takes as a plain base model: model.safetensors (or shards + index), config.json, the
 * tokenizer and generation config copied, and a README.md saying where the weights came from.
 */
import { copyFile, mkdir, readdir, readFile, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { projectionsInMemory } from '../adapters/base-projections.ts';
import { untiedByMerge } from '../adapters/kinds/edge-merge.ts';
import type { EdgeModules } from '../adapters/kinds/edge-modules.ts';
import { mergeAdapterIntoWeights } from '../adapters/merge.ts';
import { loadPeftAdapter } from '../adapters/peft/load.ts';
import { isVeraConfig, type PeftAdapterConfig } from '../adapters/peft/vera-config.ts';
import { parseByteSize } from '../config/byte-size.ts';
import type { WeightDType } from '../kernels/types.ts';
import { checkpointTensors } from '../model/checkpoint-tensors.ts';
import { loadModelDir } from '../model/model-dir.ts';
import { writeModelSafetensors } from '../model/safetensors-writer.ts';

export interface MergeOptions {
  model: string;
  adapter: string;
  out: string;
  /** The written weights' dtype; default: the checkpoint's. */
  dtype?: WeightDType;
  maxShardBytes?: number;
  /** Write into a non-empty --out (replacing the files merge writes there). */
  force?: boolean;
}

export interface MergeResult {
  dtype: WeightDType;
  files: string[]; // every file written, relative to --out
  mergedModules: number;
  warnings: string[];
}

/** What loadPeftAdapter returns (its config is PEFT's). */
type PeftAdapter = Awaited<ReturnType<typeof loadPeftAdapter>>;

/** Files of a model directory that travel unchanged with its weights. */
const COPIED_FILES = [
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'chat_template.jinja',
  'chat_template.json',
];
/** Weight files a previous merge (or model) may have left in --out: stale shards would shadow the new ones. */
const WEIGHT_FILE = /^model(-\d{5}-of-\d{5})?\.safetensors$|^model\.safetensors\.index\.json$/;
const TORCH_DTYPE: Record<WeightDType, string> = { f32: 'float32', bf16: 'bfloat16', f16: 'float16' };

export function mergeCommand(): Command {
  return new Command('merge')
    .description('merge a PEFT LoRA adapter into a base model and write the result as a Hugging Face model')
    .requiredOption('--model <dir>', 'the base model: Hugging Face directory (config.json, safetensors)')
    .requiredOption('--adapter <dir>', 'the PEFT adapter directory (adapter_config.json, adapter_model.safetensors)')
    .requiredOption('--out <dir>', 'where to write the merged model (new or empty, unless --force)')
    .addOption(
      new Option('--dtype <dtype>', "the written weights' dtype (default: the checkpoint's)").choices([
        'f32',
        'bf16',
        'f16',
      ]),
    )
    .option('--max-shard-size <size>', 'shard the weights past this size (bytes, or 500MB, 2GB, 1GiB, …)', '2GB')
    .option('--force', 'write into a non-empty --out, replacing the files merge writes', false)
    .action(
      async (flags: {
        model: string;
        adapter: string;
        out: string;
        dtype?: WeightDType;
        maxShardSize: string;
        force: boolean;
      }) => {
        const result = await runMerge({
          model: flags.model,
          adapter: flags.adapter,
          out: flags.out,
          dtype: flags.dtype,
          maxShardBytes: parseShardSize(flags.maxShardSize),
          force: flags.force,
        });
        for (const w of result.warnings) console.error(`loraplex: ${w}`);
        console.error(
          `loraplex: merged ${result.mergedModules} projection(s) of ${basename(resolve(flags.adapter))} into ` +
            `${basename(resolve(flags.model))}; wrote ${result.files.join(', ')} (${result.dtype}) to ${flags.out}`,
        );
      },
    );
}

export async function runMerge(options: MergeOptions): Promise<MergeResult> {
  await checkOutDir(options);
  // A new dtype: merge in f32 (16-bit weights widen exactly) and round once, when writing.
  // Merged weights are written as floats: GGUF Q8_0 / Q4_K / Q6_K projections are read dequantized, never re-quantized.
  const loaded = await loadModelDir(options.model, { dtype: options.dtype ? 'f32' : undefined, keepBlocks: false });
  const adapter = await loadPeftAdapter(options.adapter, loaded.config, {
    maxLoraRank: Number.MAX_SAFE_INTEGER,
    baseWeights: projectionsInMemory(loaded.weights), // DoRA's row norms of W + ΔW
  });
  const weights = mergeAdapterIntoWeights(loaded.weights, adapter, loaded.config);
  const dtype = options.dtype ?? loaded.config.dtype;
  // A tied base whose head the adapter changed apart from its embedding is written untied (edge-merge.ts).
  const untied = untiedByMerge(loaded.weights, weights);
  const tensors = checkpointTensors(
    untied ? { ...loaded.config, tieWordEmbeddings: false } : loaded.config,
    weights,
    dtype,
  );

  await mkdir(options.out, { recursive: true });
  for (const name of await readdir(options.out)) {
    if (WEIGHT_FILE.test(name)) await rm(join(options.out, name));
  }
  const files = await writeModelSafetensors(options.out, tensors, { maxShardBytes: options.maxShardBytes });
  await writeConfig(options, dtype, untied);
  files.push('config.json');
  const warnings = [...(adapter.warnings ?? [])];
  if (untied) {
    warnings.push(
      'the adapter changes lm_head apart from the tied embed_tokens: wrote lm_head.weight and tie_word_embeddings: false',
    );
  }
  for (const name of COPIED_FILES) {
    const from = join(options.model, name);
    const st = await stat(from).catch(() => null);
    if (!st) continue;
    if (!st.isFile()) {
      warnings.push(`${name} in --model is not a regular file; not copied`);
      continue;
    }
    await copyFile(from, join(options.out, name));
    files.push(name);
  }
  await writeFile(join(options.out, 'README.md'), provenance(options, adapter, dtype, files));
  files.push('README.md');
  return { dtype, files, mergedModules: adapter.modules.size, warnings };
}

/** --out must be new, or an empty directory (or --force), and neither input directory. */
async function checkOutDir(options: MergeOptions): Promise<void> {
  const st = await stat(options.out).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return null;
    throw new Error(`--out ${options.out}: cannot be inspected (${e.code ?? 'unknown error'})`);
  });
  if (!st) return;
  if (!st.isDirectory()) throw new Error(`--out ${options.out} exists and is not a directory`);
  const out = await realpath(options.out);
  for (const [flag, dir] of [
    ['--model', options.model],
    ['--adapter', options.adapter],
  ] as const) {
    const input = await realpath(dir).catch(() => null);
    if (input === out)
      throw new Error(`--out ${options.out} is the ${flag} directory; write the merged model elsewhere`);
  }
  if (!options.force && (await readdir(options.out)).length > 0) {
    throw new Error(
      `--out ${options.out} is not empty (hint: choose a new directory, or pass --force to write into it, ` +
        'replacing its model files)',
    );
  }
}

/** config.json as the base model has it; with --dtype, its dtype fields say the new one; untied, it says so. */
async function writeConfig(options: MergeOptions, dtype: WeightDType, untied: boolean): Promise<void> {
  const text = await readFile(join(options.model, 'config.json'), 'utf8');
  if (options.dtype === undefined && !untied) {
    await writeFile(join(options.out, 'config.json'), text);
    return;
  }
  const json = JSON.parse(text) as Record<string, unknown>;
  if (untied) json.tie_word_embeddings = false;
  if (options.dtype !== undefined) {
    // transformers 5 writes `dtype`, 4.x `torch_dtype`; 5 still reads `torch_dtype`.
    const fields = ['dtype', 'torch_dtype'].filter((f) => f in json);
    for (const f of fields.length > 0 ? fields : ['torch_dtype']) json[f] = TORCH_DTYPE[dtype];
  }
  await writeFile(join(options.out, 'config.json'), `${JSON.stringify(json, null, 2)}\n`);
}

function adapterKind(config: PeftAdapterConfig): string {
  if (isVeraConfig(config)) return 'VeRA';
  return config.useDora ? 'DoRA' : 'LoRA';
}

/** The README: which base and adapter (by folder name: no server paths), how they were merged. */
function provenance(options: MergeOptions, adapter: PeftAdapter, dtype: WeightDType, files: string[]): string {
  const config = adapter.config;
  const layers = new Set([...adapter.modules.values()].map((m) => m.layer));
  const rows = [
    ['base model', `\`${basename(resolve(options.model))}\``],
    ['adapter', `\`${basename(resolve(options.adapter))}\` (PEFT ${adapterKind(config)})`],
    ['adapter trained on', config.baseModelNameOrPath ? `\`${config.baseModelNameOrPath}\`` : 'not recorded'],
    isVeraConfig(config)
      ? ['rank', `r = ${config.r} (VeRA: B·A = diag(λb)·vera_B · diag(λd)·vera_A, scale 1)`]
      : [
          'rank, alpha',
          `r = ${config.r}, lora_alpha = ${config.loraAlpha}${config.useRslora ? ', rsLoRA (alpha/√r)' : ''}`,
        ],
    ['merged', `${adapter.modules.size} projection(s) (${adapter.targets.join(', ')}) in ${layers.size} layer(s)`],
    ...(adapter.edges ? [['outside the layers', edgeSummary(adapter.edges)]] : []),
    ['weights', `${TORCH_DTYPE[dtype]}: ${files.filter((f) => f.endsWith('.safetensors')).length} file(s)`],
  ];
  return [
    '# Merged model',
    '',
    'Written by `loraplex merge`: every targeted projection is W + scale · B · A (DoRA: each row of it then',
    `rescaled to the adapter's magnitude), computed in float32 and stored as ${TORCH_DTYPE[dtype]}. Serve it as a`,
    'plain base model; the adapter is no longer needed.',
    '',
    '| | |',
    '| --- | --- |',
    ...rows.map(([k, v]) => `| ${k} | ${v} |`),
    '',
  ].join('\n');
}

/** What an adapter's edge modules put into the model, for the README. */
function edgeSummary(e: EdgeModules): string {
  const parts = [
    e.embeddingLora && `LoRA on embed_tokens (r = ${e.embeddingLora.rank})`,
    e.lmHeadLora && `LoRA on lm_head (r = ${e.lmHeadLora.rank})`,
    e.embedding && 'saved embed_tokens',
    e.lmHead && 'saved lm_head',
    e.finalNorm && 'saved norm',
    e.layerNorms?.length && `${e.layerNorms.length} saved layer norm(s)`,
    e.tokens && `${e.tokens.ids.length} trainable token row(s)`,
  ];
  return parts.filter(Boolean).join(', ');
}

/** --max-shard-size's value in bytes (config/byte-size.ts). */
export function parseShardSize(text: string): number {
  const bytes = parseByteSize(text);
  if (Number.isNaN(bytes)) {
    throw new Error(`--max-shard-size ${text}: expected a size such as 2GB, 500MB, 1GiB or a number of bytes`);
  }
  return bytes;
}
