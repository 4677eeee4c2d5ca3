/**
 * Benchmarks are entry points like the CLI: LORAPLEX_THREADS, LORAPLEX_ISA and LORAPLEX_BF16_DOT reach the
 * addon here, through the one native configuration (the addon reads no environment itself). Imported first.
 */
import { nativeConfig } from '../src/cli/options.ts';
import { configureNative } from '../src/kernels/native/config.ts';

const { LORAPLEX_THREADS: threads, LORAPLEX_ISA: isa, LORAPLEX_BF16_DOT: bf16Dot } = process.env;
configureNative(nativeConfig({ threads: threads ? Number(threads) : undefined, isa, bf16Dot }));
