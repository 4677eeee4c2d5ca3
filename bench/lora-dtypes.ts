/**
 * `npm run bench:lora-dtypes`: one decode step's LoRA calls (bench/lora-step.ts: 32 rows over 32 rank-16 adapters,
 * SmolLM2-135M's and Llama-3.2-1B's shapes, weights from memory) with the bank stored as f32, bf16, f16 and int8,
 * the dtypes taking turns every round (the order rotating), against the read bandwidth measured in the same run.
 * Reports per model and dtype the median step time, the bytes it read per second, and the median over rounds of
 * bf16's time ÷ this dtype's. Writes OUT.json and OUT.md.
 *
 *   npm run bench:lora-dtypes -- [--rounds 15] [--out docs/figures/lora-dtypes]
 */
import './native-env.ts';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { cpuInfo, loadAddon } from '../src/kernels/native/addon.ts';
import type { LoraDtype } from '../src/kernels/types.ts';
import {
  LORA_STEP_MODELS,
  LORA_STEP_RANK,
  LORA_STEP_ROWS,
  LORA_VALUE_BYTES,
  type LoraStepAddon,
  loraStep,
} from './lora-step.ts';
import { median } from './util.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '15' },
    out: { type: 'string', default: 'artifacts/lora-dtypes' },
  },
});
const rounds = Number(args.rounds);
const DTYPES: LoraDtype[] = ['f32', 'bf16', 'f16', 'int8'];

interface Row {
  model: string;
  dtype: LoraDtype;
  ms: number;
  gbPerSecond: number;
  /** Median over rounds of bf16's time ÷ this dtype's (the same round). */
  vsBf16: number;
}

const addon = loadAddon() as unknown as LoraStepAddon & {
  measureReadBandwidth(bytes: number, passes: number): { value: number };
};
const rows: Row[] = [];
for (const model of LORA_STEP_MODELS) {
  const steps = new Map(DTYPES.map((dtype) => [dtype, loraStep(addon, model, dtype)]));
  for (const step of steps.values()) step.run(); // warm: first touches, pool start
  const times = new Map<LoraDtype, number[]>(DTYPES.map((d) => [d, []]));
  for (let r = 0; r < rounds; r++) {
    const order = DTYPES.map((_, i) => DTYPES[(i + r) % DTYPES.length]);
    for (const dtype of order) {
      const t0 = performance.now();
      steps.get(dtype)!.run();
      times.get(dtype)!.push(performance.now() - t0);
    }
  }
  const bf16 = times.get('bf16')!;
  for (const dtype of DTYPES) {
    const ts = times.get(dtype)!;
    const ms = median(ts);
    const bytes = steps.get(dtype)!.values * LORA_VALUE_BYTES[dtype];
    rows.push({
      model: model.name,
      dtype,
      ms,
      gbPerSecond: bytes / ms / 1e6,
      vsBf16: median(ts.map((t, i) => bf16[i] / t)),
    });
    console.error(`${model.name} ${dtype}: ${ms.toFixed(2)} ms`);
  }
  steps.clear();
}
const readBandwidth = addon.measureReadBandwidth(512 << 20, 5).value;
const info = cpuInfo();
const md = [
  `One decode step's LoRA calls (q|k|v, o, gate|up, down of every layer) at ${LORA_STEP_ROWS} rows over ` +
    `${LORA_STEP_ROWS} distinct rank-${LORA_STEP_RANK} adapters, per bank dtype, the dtypes in turn every round ` +
    `(${rounds} rounds, medians; \`npm run bench:lora-dtypes\`), ${info.threads} threads, ${info.active}. ` +
    `Memory read bandwidth in the same run: ${readBandwidth.toFixed(1)} GB/s.`,
  '',
  '| model | bank | step ms | GB/s read | × bf16 (median of paired rounds) |',
  '|---|---|---|---|---|',
  ...rows.map(
    (r) => `| ${r.model} | ${r.dtype} | ${r.ms.toFixed(2)} | ${r.gbPerSecond.toFixed(1)} | ×${r.vsBf16.toFixed(2)} |`,
  ),
].join('\n');
writeFileSync(`${args.out}.md`, `${md}\n`);
writeFileSync(
  `${args.out}.json`,
  `${JSON.stringify({ generated: new Date().toISOString(), rounds, threads: info.threads, isa: info.active, readBandwidth, rows }, null, 1)}\n`,
);
console.log(md);
