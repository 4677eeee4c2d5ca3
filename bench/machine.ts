/**
 * The machine's measured peaks, the yardsticks of every kernel figure: f32 FMA, bf16 dot and AMX bf16
 * throughput (all threads, register- or tile-resident) and memory read / copy bandwidth (a buffer well past the caches).
 */
import { cpuInfo } from '../src/kernels/native/addon.ts';
import {
  measureAmxBf16Peak,
  measureBf16DotPeak,
  measureCopyBandwidth,
  measureFmaPeak,
  measureReadBandwidth,
} from '../src/kernels/native/gemm.ts';

export interface MachinePeaks {
  threads: number;
  isa: string;
  f32Gflops: number;
  /** 0 without AVX-512 BF16. */
  bf16Gflops: number;
  /** AMX TDPBF16PS; 0 without AMX-BF16, absent from figures measured before it was. */
  amxBf16Gflops?: number;
  readGBs: number;
  /** bytes read + written per second, as STREAM counts a copy */
  copyGBs: number;
}

export interface MachineOptions {
  /** Seconds per compute peak. */
  seconds?: number;
  /** Bytes of the read buffer (the copy uses half of it twice). */
  bufferBytes?: number;
  passes?: number;
}

export function measureMachine(options: MachineOptions = {}): MachinePeaks {
  const { seconds = 0.5, bufferBytes = 1 << 30, passes = 5 } = options;
  const info = cpuInfo();
  return {
    threads: info.threads,
    isa: info.active,
    f32Gflops: measureFmaPeak(seconds).value,
    bf16Gflops: measureBf16DotPeak(seconds).value,
    amxBf16Gflops: measureAmxBf16Peak(seconds).value,
    readGBs: measureReadBandwidth(bufferBytes, passes).value,
    copyGBs: measureCopyBandwidth(bufferBytes / 2, passes).value,
  };
}
