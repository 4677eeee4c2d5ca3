/**
 * VeRA with shared factors vs the same adapter materialized per layer: the LoRA work of one decode step of
 * SmolLM2-135M (30 layers; per layer the forward's calls q|k|v, o, gate|up, down) for one VeRA adapter of rank r
 * on every projection, stored as slots hold it now (A and B once per shape, λd / λb per module) and as it was
 * (plainPacked: diag(λd)·A, Bt·diag(λb) per module), with a rank-16 LoRA adapter on the same modules as a yardstick.
 * The three are timed interleaved in every repeat (medians), at M = 1, 4 and 16 rows of the adapter, in the bank
 * dtype given (bf16: what a 16-bit checkpoint's slots use). Slot bytes are the weights a step reads.
 *
 *   npm run bench:lora-shared -- [--rank 256] [--dtype bf16] [--repeats 9] [--out docs/figures/lora-shared]
 */
import './native-env.ts';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { barChart } from '../src/bench/charts/bar-chart.ts';
import { cpuInfo } from '../src/kernels/native/addon.ts';
import { nativeLoraKernels as kernels } from '../src/kernels/native/lora.ts';
import { plainPacked } from '../src/kernels/packed-plain.ts';
import type { LoraBank, LoraDtype, LoraModuleOutput, LoraRows, PackedAdapter } from '../src/kernels/types.ts';
import { median, printTable, randomF32 } from './util.ts';

const LAYERS = 30;
const HIDDEN = 576;
const KV = 192;
const INTERMEDIATE = 1536;
/** Per layer: [K, N] of q, k, v, o, gate, up, down (module index layer·7 + i). */
const SHAPES: [number, number][] = [
  [HIDDEN, HIDDEN],
  [HIDDEN, KV],
  [HIDDEN, KV],
  [HIDDEN, HIDDEN],
  [HIDDEN, INTERMEDIATE],
  [HIDDEN, INTERMEDIATE],
  [INTERMEDIATE, HIDDEN],
];
/** The forward's applyAdapters calls per layer: modules (indices into SHAPES) sharing one x. */
const CALLS = [[0, 1, 2], [3], [4, 5], [6]];
const ROWS = [1, 4, 16];

/** One packed adapter: every module at rank r; `shared`: one A per K and one Bt per N plus λ vectors (VeRA). */
function adapter(rank: number, shared: boolean, seed: number): PackedAdapter {
  const count = LAYERS * SHAPES.length;
  const rankOf = Int32Array.from({ length: count }, () => rank);
  const inFeatures = Int32Array.from({ length: count }, (_, m) => SHAPES[m % SHAPES.length][0]);
  const outFeatures = Int32Array.from({ length: count }, (_, m) => SHAPES[m % SHAPES.length][1]);
  const offsetA = new Int32Array(count);
  const offsetB = new Int32Array(count);
  const parts: Float32Array[] = [];
  let at = 0;
  const place = (values: Float32Array) => {
    parts.push(values);
    at += values.length;
    return at - values.length;
  };
  const aAt = new Map<number, number>();
  const bAt = new Map<number, number>();
  for (let m = 0; m < count; m++) {
    const [k, n] = SHAPES[m % SHAPES.length];
    if (!shared || !aAt.has(k)) aAt.set(k, place(randomF32(rank * k, seed + m, 1 / Math.sqrt(k))));
    if (!shared || !bAt.has(n)) bAt.set(n, place(randomF32(rank * n, seed + 7919 + m, 1 / Math.sqrt(rank))));
    offsetA[m] = aAt.get(k)!;
    offsetB[m] = bAt.get(n)!;
  }
  const weights = new Float32Array(at);
  let pos = 0;
  for (const p of parts) {
    weights.set(p, pos);
    pos += p.length;
  }
  const packed: PackedAdapter = {
    weights,
    rank: rankOf,
    offsetA,
    offsetB,
    scale: Float32Array.from({ length: count }, () => (shared ? 1 : 2)),
    inFeatures,
    outFeatures,
  };
  if (!shared) return packed;
  const offsetRankScale = Int32Array.from({ length: count }, (_, m) => m * rank);
  const offsetColumnScale = new Int32Array(count);
  let columns = 0;
  for (let m = 0; m < count; m++) {
    offsetColumnScale[m] = columns;
    columns += outFeatures[m];
  }
  return {
    ...packed,
    rankScale: randomF32(count * rank, seed + 1, 1),
    offsetRankScale,
    columnScale: randomF32(columns, seed + 2, 0.1),
    offsetColumnScale,
  };
}

/** Bytes a slot holds for the adapter: each distinct A / Bt region once, in the bank's dtype, plus f32 vectors. */
function slotBytes(p: PackedAdapter, dtype: LoraDtype): number {
  const element = dtype === 'f32' ? 4 : 2;
  const regions = new Set<string>();
  for (let m = 0; m < p.rank.length; m++) {
    regions.add(`${p.offsetA[m]}:${p.rank[m] * p.inFeatures[m]}`);
    regions.add(`${p.offsetB[m]}:${p.rank[m] * p.outFeatures[m]}`);
  }
  let n = 0;
  for (const r of regions) n += Number(r.split(':')[1]) * element;
  return n + (p.rankScale?.byteLength ?? 0) + (p.columnScale?.byteLength ?? 0);
}

/** One decode step's adapter work: every layer's calls over `rows` rows of slot 0. */
function step(bank: LoraBank, rows: LoraRows, xs: Map<number, Float32Array>, ys: Map<number, Float32Array>) {
  for (let layer = 0; layer < LAYERS; layer++) {
    for (const call of CALLS) {
      const k = SHAPES[call[0]][0];
      let offset = 0;
      const modules: LoraModuleOutput[] = call.map((i) => {
        const n = SHAPES[i][1];
        offset += n;
        return { module: layer * SHAPES.length + i, yOffset: offset - n, n };
      });
      kernels.applyAdapters(bank, rows, xs.get(k)!, k, { y: ys.get(offset)!, yStride: offset, modules });
    }
  }
}

function main() {
  const { values } = parseArgs({
    options: {
      rank: { type: 'string', default: '256' },
      dtype: { type: 'string', default: 'bf16' },
      repeats: { type: 'string', default: '9' },
      out: { type: 'string' },
    },
  });
  const rank = Number(values.rank);
  const dtype = values.dtype as LoraDtype;
  const repeats = Number(values.repeats);
  const veraShared = adapter(rank, true, 11);
  const cases = [
    { name: `VeRA r${rank}, shared`, packed: veraShared },
    { name: `VeRA r${rank}, materialized`, packed: plainPacked(veraShared) },
    { name: 'LoRA r16', packed: adapter(16, false, 23) },
  ];
  const numModules = LAYERS * SHAPES.length;
  const banks = cases.map((c) => {
    const bank = kernels.createLoraBank(1, numModules, dtype);
    kernels.setLoraSlot(bank, 0, c.packed);
    return bank;
  });
  const result: { rows: number; us: number[] }[] = [];
  for (const m of ROWS) {
    const rows = kernels.createLoraRows();
    kernels.setLoraRows(rows, new Int32Array(m), m);
    const xs = new Map([HIDDEN, INTERMEDIATE].map((k) => [k, randomF32(m * k, k, 1)]));
    const ys = new Map(
      CALLS.map((c) => c.reduce((s, i) => s + SHAPES[i][1], 0)).map((n) => [n, new Float32Array(m * n)]),
    );
    const samples = cases.map(() => [] as number[]);
    for (const bank of banks) step(bank, rows, xs, ys); // warm-up
    for (let r = 0; r < repeats; r++) {
      banks.forEach((bank, i) => {
        const t0 = process.hrtime.bigint();
        let calls = 0;
        let elapsed = 0;
        do {
          step(bank, rows, xs, ys);
          calls++;
          elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
        } while (elapsed < 0.05);
        samples[i].push((elapsed / calls) * 1e6);
      });
    }
    result.push({ rows: m, us: samples.map(median) });
  }
  const bytes = cases.map((c) => slotBytes(c.packed, dtype));
  const cpu = cpuInfo();
  console.log(
    `LoRA work of one SmolLM2-135M decode step (30 layers × 4 calls), ${dtype} slots, ${cpu.active}, ${cpu.threads} threads`,
  );
  printTable(
    ['adapter', 'slot MiB', ...ROWS.map((m) => `µs M=${m}`), 'vs materialized (M=1)'],
    cases.map((c, i) => [
      c.name,
      (bytes[i] / 2 ** 20).toFixed(2),
      ...result.map((r) => r.us[i].toFixed(0)),
      (result[0].us[i] / result[0].us[1]).toFixed(3),
    ]),
  );
  if (!values.out) return;
  const artifact = {
    command: `npm run bench:lora-shared -- --rank ${rank} --dtype ${dtype} --repeats ${repeats}`,
    date: new Date().toISOString(),
    cpu,
    model: 'SmolLM2-135M shapes (30 layers, hidden 576, kv 192, intermediate 1536), every projection adapted',
    cases: cases.map((c, i) => ({
      name: c.name,
      slotBytes: bytes[i],
      microsecondsPerStep: Object.fromEntries(result.map((r) => [r.rows, r.us[i]])),
    })),
  };
  writeFileSync(`${values.out}.json`, `${JSON.stringify(artifact, null, 2)}\n`);
  writeFileSync(
    `${values.out}.svg`,
    barChart({
      title: `LoRA time per decode step, SmolLM2-135M shapes, ${dtype} slots (median of ${repeats})`,
      xLabel: 'rows of the adapter in the step',
      yLabel: 'µs per step',
      categories: ROWS.map((m) => `M = ${m}`),
      series: cases.map((c, i) => ({ name: c.name, values: result.map((r) => r.us[i]) })),
    }),
  );
  console.log(`wrote ${values.out}.json and .svg`);
}

main();
