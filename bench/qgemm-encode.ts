/**
 * `npm run bench:qgemm-encode`: Q4_K encoding at load (--quantize q4_k), the TypeScript encoder (block-encode.ts)
 * against the addon's (native/src/cpu/qgemm_encode.cpp) on the same Gaussian values, alternated over rounds (medians;
 * the same bytes required), and with --model the wall time of loading that safetensors model with --quantize q4_k.
 *
 *   npm run bench:qgemm-encode -- [--values 4194304] [--rounds 3] [--model DIR] [--out docs/figures/NAME]
 */
import './native-env.ts';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { encodeQ4_K } from '../src/kernels/block-encode.ts';
import { cpuInfo } from '../src/kernels/native/addon.ts';
import { nativeEncodeQ4K } from '../src/kernels/native/qgemm.ts';
import { loadModelDir } from '../src/model/model-dir.ts';
import { median, randomF32 } from './util.ts';

const { values: args } = parseArgs({
  options: {
    values: { type: 'string', default: String(1 << 22) },
    rounds: { type: 'string', default: '3' },
    model: { type: 'string' },
    out: { type: 'string', default: 'artifacts/qgemm-encode' },
  },
});
const count = Math.floor(Number(args.values) / 256) * 256;
const values = randomF32(count, 9, 0.02);
const ns = { typescript: [] as number[], native: [] as number[] };
for (let r = 0; r < Number(args.rounds); r++) {
  let t0 = performance.now();
  const want = encodeQ4_K(values);
  ns.typescript.push(((performance.now() - t0) * 1e6) / count);
  t0 = performance.now();
  const got = nativeEncodeQ4K(values);
  ns.native.push(((performance.now() - t0) * 1e6) / count);
  if (!got || got.some((b, i) => b !== want[i])) throw new Error('the addon encoded other bytes than TypeScript');
}
let loadSeconds: number | undefined;
if (args.model) {
  const t0 = performance.now();
  await loadModelDir(args.model, { quantize: 'q4_k' });
  loadSeconds = (performance.now() - t0) / 1000;
}
const info = cpuInfo();
const result = {
  generated: new Date().toISOString(),
  threads: info.threads,
  isa: info.active,
  values: count,
  rounds: Number(args.rounds),
  nsPerValue: { typescript: median(ns.typescript), native: median(ns.native) },
  speedup: median(ns.typescript.map((t, i) => t / ns.native[i])),
  model: args.model ? args.model.split('/').slice(-2).join('/') : undefined,
  loadSeconds,
};
const md = [
  `Q4_K encoding of ${count} Gaussian values (σ 0.02), the TypeScript encoder and the addon's in turn, ` +
    `${result.rounds} rounds, medians, the same bytes; ${info.threads} threads (${info.active}) ` +
    '(`npm run bench:qgemm-encode`).',
  '',
  '| encoder | ns a value |',
  '|---|---|',
  `| TypeScript (block-encode.ts) | ${result.nsPerValue.typescript.toFixed(1)} |`,
  `| addon (qgemm_encode.cpp) | ${result.nsPerValue.native.toFixed(1)} |`,
  `| TypeScript ÷ addon | ×${result.speedup.toFixed(1)} |`,
  ...(loadSeconds !== undefined
    ? ['', `Loading ${result.model} with --quantize q4_k: ${loadSeconds.toFixed(1)} s.`]
    : []),
];
writeFileSync(`${args.out}.md`, `${md.join('\n')}\n`);
writeFileSync(`${args.out}.json`, `${JSON.stringify(result, null, 1)}\n`);
console.log(md.join('\n'));
