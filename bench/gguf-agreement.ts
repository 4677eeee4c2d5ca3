/**
 * `npm run bench:gguf-agreement`: loraplex and llama.cpp's llama-server on the same GGUF files, one server at a
 * time: next-token logprobs at the end of fixed corpus prompts (token ids on both sides), the same along
 * llama.cpp's greedy path, and greedy agreement (identical outputs, common prefix, first divergences and
 * llama.cpp's top-2 margin there). Writes docs/figures/gguf-agreement.{json,md}.
 *
 *   npm run bench:gguf-agreement -- [--files smollm2] [--prompts 32] [--tokens 64] [--kv f32] [--append] [--render]
 *   LORAPLEX_LLAMACPP_BIN=.../llama-server overrides the binary (default: the peers/llamacpp build).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cacheRoot } from '../src/demo/demo-model.ts';
import { ensureFile, FILE_SETS } from './gguf-agreement/files.ts';
import { agreementPrompts } from './gguf-agreement/prompts.ts';
import { type AgreementArtifact, renderReport } from './gguf-agreement/report.ts';
import { runFile } from './gguf-agreement/run-file.ts';
import { AGREEMENT_TOLERANCES } from './gguf-agreement/tolerances.ts';

const { values: args } = parseArgs({
  options: {
    files: { type: 'string', default: 'smollm2' },
    prompts: { type: 'string', default: '32' },
    tokens: { type: 'string', default: '64' },
    kv: { type: 'string', default: 'f32' },
    // One thread each: on a shared, loaded box llama.cpp's spinning thread pool at -t 2 fell to 0.7 tok/s.
    threads: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '4' },
    append: { type: 'boolean', default: false },
    /** Only rewrite the .md (and the tolerances) from the existing .json. */
    render: { type: 'boolean', default: false },
    out: { type: 'string', default: 'docs/figures/gguf-agreement' },
  },
});

const root = join(import.meta.dirname, '..');
/** Indented JSON with each [id, logprob] pair on one line. */
function artifactJson(artifact: AgreementArtifact): string {
  const text = JSON.stringify(artifact, null, 2).replace(/\[\s+(-?[\d.e+-]+),\s+(-?[\d.e+-]+)\s+\]/g, '[$1, $2]');
  return `${text}\n`;
}

async function main() {
  const jsonPath = `${args.out}.json`;
  if (args.render) {
    const artifact: AgreementArtifact = JSON.parse(readFileSync(jsonPath, 'utf8'));
    artifact.tolerances = AGREEMENT_TOLERANCES;
    writeFileSync(jsonPath, artifactJson(artifact));
    writeFileSync(`${args.out}.md`, renderReport(artifact));
    return;
  }
  const llamaBin = process.env.LORAPLEX_LLAMACPP_BIN ?? join(cacheRoot(), 'llamacpp', 'build', 'bin', 'llama-server');
  if (!existsSync(llamaBin)) throw new Error(`no llama-server at ${llamaBin}: run bash peers/llamacpp/build.sh`);
  const files = (args.files as string).split(',').flatMap((k) => {
    const set = FILE_SETS[k];
    if (!set) throw new Error(`--files: unknown '${k}' (known: ${Object.keys(FILE_SETS).join(', ')})`);
    return set.flatMap((f) => {
      const path = ensureFile(f, llamaBin);
      if (!path) console.error(`skip ${f.label}: no ${f.path}`);
      return path ? [[f.label, path] as const] : [];
    });
  });
  const prompts = agreementPrompts(Number(args.prompts));
  const logDir = join(cacheRoot(), 'gguf-agreement');
  mkdirSync(logDir, { recursive: true });
  const settings = {
    root,
    llamaBin,
    threads: Number(args.threads),
    kv: args.kv as 'f32' | 'f16',
    tokens: Number(args.tokens),
    topK: 20,
    concurrency: Number(args.concurrency),
    logDir,
    port: 18600 + Math.floor(Math.random() * 200) * 2,
  };
  const previous: AgreementArtifact | null =
    args.append && existsSync(jsonPath) ? JSON.parse(readFileSync(jsonPath, 'utf8')) : null;
  const results = previous?.results ?? [];
  for (const [label, file] of files) {
    console.error(`== ${label}: ${file}`);
    const r = await runFile(label, file, prompts, settings);
    console.error(
      `   end of prompt max|Δ| ${r.endOfPrompt.maxAbsDelta.toFixed(4)} median ${r.endOfPrompt.medianAbsDelta.toFixed(4)} ` +
        `top-1 ${r.endOfPrompt.top1Agree}/${r.prompts}; greedy identical ${r.greedy.identicalText}/${r.prompts}, ` +
        `prefix ${r.greedy.meanCommonPrefix.toFixed(1)}/${r.greedy.meanLength.toFixed(1)} (${r.seconds.toFixed(0)} s)`,
    );
    const at = results.findIndex((x) => x.label === label);
    if (at >= 0) results[at] = r;
    else results.push(r);
  }
  const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }).toString().trim();
  const artifact: AgreementArtifact = {
    generated: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', threads: settings.threads },
    llamaCpp: { bin: 'llama-server (peers/llamacpp/build.sh)', kvCache: settings.kv },
    loraplex: { commit: `git ${commit}` },
    topK: settings.topK,
    tolerances: AGREEMENT_TOLERANCES,
    results,
  };
  writeFileSync(jsonPath, artifactJson(artifact));
  writeFileSync(`${args.out}.md`, renderReport(artifact));
  console.error(`wrote ${jsonPath} and ${args.out}.md`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
