/**
 * `npm run bench:cuda-report -- DIR`: the charts and the summary of one GPU run (scripts/gpu/run-h200.sh's
 * artifacts, committed under docs/cuda/<machine>-<date>/): engine throughput against PyTorch + PEFT on the same
 * GPU, and each kernel as a fraction of the ceilings the same run measured (HBM copy bandwidth, bf16 tensor
 * peak). Writes DIR/summary.json, DIR/cuda-engine.svg and DIR/cuda-roofline.svg; reads only DIR.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { barChart } from '../src/bench/charts/bar-chart.ts';
import { DEFAULT_FRAME } from '../src/bench/charts/svg.ts';

interface Figure {
  name: string;
  note: string;
  [key: string]: number | string | null;
}
interface KernelRun {
  hbm_gbs: number;
  bf16_tflops: number;
  checks: { name: string; ok: boolean; detail: string }[];
  figures: Figure[];
}
interface EngineWorkload {
  name: string;
  adapters: number;
  distinctAdaptersUsed: number;
  tokPerS: number;
  decodeTokPerS: number;
  decodeStepMs: number;
}
interface EngineRun {
  date: string;
  device: { name: string; cublas: string };
  workload: Record<string, unknown>;
  weightBytesPerDecodeStep: number;
  workloads: EngineWorkload[];
  ratios: Record<string, number>;
}
interface PeftScenario {
  skipped: boolean;
  reason?: string;
  output_tok_s?: number;
  decode_step_ms?: number;
  unique_adapters_in_batch?: number;
  projected?: { new_tokens: number; output_tok_s: number };
}
interface PeftRun {
  versions: Record<string, string>;
  config: { new_tokens: number; concurrency: number; prompt_len: number };
  scenarios: Record<string, PeftScenario>;
}

const dir = process.argv[2];
if (!dir) {
  console.error('usage: npm run bench:cuda-report -- DIR (a GPU run: cuda-bench.json, engine.json, peft.json)');
  process.exit(1);
}
const read = <T>(name: string): T => JSON.parse(readFileSync(join(dir, name), 'utf8')) as T;
const bench = read<KernelRun>('cuda-bench.json');
const check = read<KernelRun>('cuda-check.json');
const engine = read<EngineRun>('engine.json');
const peft = read<PeftRun>('peft.json');

const figure = (name: string): Figure => {
  const f = bench.figures.find((x) => x.name === name);
  if (!f) throw new Error(`${dir}/cuda-bench.json has no figure '${name}'`);
  return f;
};
const num = (f: Figure, key: string): number => Number(f[key]);

// ── engine vs PEFT ────────────────────────────────────────────────────────────────────────────────────────
const PEFT_SCENARIO: Record<string, string> = {
  base: 'base',
  '1 adapter': 'lora1',
  '32 adapters zipf': 'lora32',
  '100 adapters zipf': 'lora100',
};
const rows = engine.workloads.map((w) => {
  const p = peft.scenarios[PEFT_SCENARIO[w.name]];
  const peftTokS = p && !p.skipped ? (p.projected?.output_tok_s ?? p.output_tok_s ?? null) : null;
  return {
    workload: w.name,
    loraplexOutputTokS: w.tokPerS,
    loraplexDecodeStepMs: w.decodeStepMs,
    peftOutputTokS: peftTokS,
    peftDecodeStepMs: p?.decode_step_ms ?? null,
    peftNote: p?.skipped ? `skipped: ${p.reason}` : null,
    overPeft: peftTokS ? w.tokPerS / peftTokS : null,
  };
});
const baseStepMs = engine.workloads.find((w) => w.name === 'base')?.decodeStepMs ?? Number.NaN;
const floorMs = (engine.weightBytesPerDecodeStep / (bench.hbm_gbs * 1e9)) * 1e3;

// ── kernels as fractions of the ceilings ─────────────────────────────────────────────────────────────────
const loraDecode = [8, 16, 64].flatMap((r) =>
  ['q|k|v', 'gate|up', 'down'].map((m) => ({
    name: `LoRA r${r} ${m}`,
    frac: num(figure(`decode 64 rows, 64 adapters, r${r}, ${m}`), 'frac_hbm'),
  })),
);
const attention = ['64 seqs kv 1024', '64 seqs kv 2048'].flatMap((s) =>
  ['bf16', 'f32'].map((d) => ({
    name: `attn ${s.replace(' seqs kv ', '×')} ${d}`,
    frac: num(figure(`attention decode ${s} Hq32 Hkv8 D128 ${d}`), 'frac_hbm'),
  })),
);
const gemmDecode = ['qkv 4096->6144', 'o 4096->4096', 'gate|up 4096->28672', 'down 14336->4096'].map((s) => ({
  name: `GEMM M=64 ${s.split(' ')[0]}`,
  frac: num(figure(`gemm bf16 M=64 ${s}`), 'cublas_frac_hbm'),
}));
const gemmPrefill = ['qkv 4096->6144', 'o 4096->4096', 'gate|up 4096->28672', 'down 14336->4096'].map((s) => ({
  name: `GEMM M=2048 ${s.split(' ')[0]}`,
  frac: num(figure(`gemm bf16 M=2048 ${s}`), 'cublas_frac_bf16'),
}));

const summary = {
  source: dir,
  date: engine.date,
  device: engine.device.name,
  ceilings: { hbmCopyGBs: bench.hbm_gbs, bf16TensorTflops: bench.bf16_tflops },
  kernelChecks: { total: check.checks.length, failed: check.checks.filter((c) => !c.ok).map((c) => c.name) },
  engine: {
    rows,
    ratios: engine.ratios,
    baseDecodeStepMs: baseStepMs,
    weightReadFloorMs: floorMs,
    baseStepOverFloor: baseStepMs / floorMs,
  },
  peft: { versions: peft.versions, newTokens: peft.config.new_tokens },
  fractionOfHbm: { loraDecode64Adapters: loraDecode, attentionDecode: attention, gemmDecode },
  fractionOfBf16Peak: { gemmPrefill },
};
writeFileSync(join(dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);

const wide = { ...DEFAULT_FRAME, width: 1100 };
writeFileSync(
  join(dir, 'cuda-engine.svg'),
  barChart(
    {
      title: `${engine.device.name}, Llama-3.1-8B shape bf16, 64 sequences × 128 in / 128 out: output tokens/s`,
      xLabel: 'workload (rank-16 adapters on all seven projections; Zipf α=1 over requests)',
      yLabel: 'output tokens/s',
      categories: rows.map((r) => r.workload),
      series: [
        { name: 'loraplex --backend cuda', values: rows.map((r) => r.loraplexOutputTokS) },
        { name: 'PyTorch + PEFT mixed batch', values: rows.map((r) => r.peftOutputTokS) },
      ],
    },
    wide,
  ),
);
const kernels = [...loraDecode, ...attention, ...gemmDecode, ...gemmPrefill];
writeFileSync(
  join(dir, 'cuda-roofline.svg'),
  barChart(
    {
      title: `${engine.device.name} kernels: fraction of the ceiling measured in the same run`,
      xLabel: 'decode (64 rows): fraction of HBM copy bandwidth · prefill GEMM (M=2048): fraction of the bf16 peak',
      yLabel: 'fraction of the ceiling',
      categories: kernels.map((k) => k.name),
      series: [{ name: 'achieved / ceiling', values: kernels.map((k) => k.frac) }],
    },
    { ...wide, width: 1700 },
  ),
);
console.log(JSON.stringify(summary, null, 2));
