/**
 * `npm run bench:kernels`: the machine's measured peaks, then each kernel group against them.
 * Every figure is a median over repeats. Sections take the measured `MachinePeaks`; a new group adds
 * its own `run…Bench(machine, options)` to SECTIONS below (reporting helpers: bench/util.ts).
 *
 *   npm run bench:kernels -- [--quick] [--dtypes f32,bf16,f16] [--repeats 5] [--no-llama] [--only qgemm]
 *     [--qgemm-out docs/figures/qgemm] [--gemm-out docs/figures/gemm]
 */
import './native-env.ts';
import { parseArgs } from 'node:util';
import type { WeightDType } from '../src/kernels/types.ts';
import { runAttentionBench } from './attention.ts';
import { LLAMA8B_SHAPES, runGemmBench, SMOLLM2_SHAPES } from './gemm.ts';
import { runLoraBench } from './lora.ts';
import { type MachinePeaks, measureMachine } from './machine.ts';
import { QGEMM_SHAPES, runQgemmBench } from './qgemm.ts';
import { printSection, printTable } from './util.ts';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    dtypes: { type: 'string', default: 'f32,bf16,f16' },
    repeats: { type: 'string', default: '5' },
    'no-llama': { type: 'boolean', default: false },
    /** Run only the sections whose title starts with one of these words (gemm, qgemm, lora, attention). */
    only: { type: 'string' },
    'qgemm-out': { type: 'string' },
    'gemm-out': { type: 'string' },
  },
});

const repeats = args.quick ? 3 : Number(args.repeats);
const dtypes = args.dtypes.split(',') as WeightDType[];

function printMachine(m: MachinePeaks) {
  printTable(
    ['peak', 'value'],
    [
      ['f32 FMA', `${m.f32Gflops.toFixed(0)} GFLOP/s`],
      ['bf16 dot (vdpbf16ps)', m.bf16Gflops > 0 ? `${m.bf16Gflops.toFixed(0)} GFLOP/s` : 'n/a'],
      ['AMX bf16 (TDPBF16PS)', m.amxBf16Gflops ? `${m.amxBf16Gflops.toFixed(0)} GFLOP/s` : 'n/a'],
      ['memory read', `${m.readGBs.toFixed(1)} GB/s`],
      ['memory copy (read + write)', `${m.copyGBs.toFixed(1)} GB/s`],
    ],
  );
}

const SECTIONS: { title: string; run: (machine: MachinePeaks) => void }[] = [
  {
    title: 'GEMM (base projections)',
    run: (machine) =>
      runGemmBench(machine, {
        shapes: args['no-llama'] || args.quick ? SMOLLM2_SHAPES : [...SMOLLM2_SHAPES, ...LLAMA8B_SHAPES],
        dtypes,
        repeats,
        ...(args['gemm-out'] ? { out: args['gemm-out'] } : {}),
      }),
  },
  {
    title: 'Quantized GEMM (Q8_0 / Q4_K blocks, int8 dots) beside bf16',
    run: (machine) => {
      runQgemmBench(machine, {
        shapes:
          args['no-llama'] || args.quick ? QGEMM_SHAPES.filter((s) => s.name.startsWith('smollm2')) : QGEMM_SHAPES,
        repeats,
        ...(args['qgemm-out'] ? { out: args['qgemm-out'] } : {}),
      });
    },
  },
  {
    title: 'LoRA (SGMV prefill, BGMV decode) as a fraction of the base GEMM at the same shapes',
    run: () => {
      runLoraBench({ repeats: args.quick ? 3 : 9 });
    },
  },
  {
    title: 'Decode attention, f32 vs bf16 KV cache (Hq/Hkv 32/8, D 64, 2048 tokens)',
    run: (machine) => {
      runAttentionBench({ repeats: args.quick ? 3 : 7, readGBs: machine.readGBs });
    },
  },
];

const machine = measureMachine(args.quick ? { seconds: 0.2, bufferBytes: 512 << 20, passes: 3 } : {});
printSection(`machine: ${machine.threads} threads, ISA ${machine.isa}`);
printMachine(machine);
const only = args.only?.split(',').map((w) => w.toLowerCase());
for (const section of SECTIONS) {
  const word = section.title.split(' ')[0].toLowerCase();
  if (only && !only.some((w) => (w === 'qgemm' ? word === 'quantized' : word.startsWith(w)))) continue;
  printSection(section.title);
  section.run(machine);
}
