/**
 * One run of bench/engine.ts in a checkout, read from its stdout (the script writes no JSON, and the old
 * checkouts print the same lines): output tok/s per dtype and workload, and batch-1 decode ms/token.
 *
 *   ── bf16
 *   1 adapter       232.1 output tok/s     696 total tok/s   (17.65 s; runs 17.65)
 *   batch-1 decode: 14.20 ms/token (70.4 tok/s), ...
 */
import { runScript } from './run-child.ts';

/** Metric name → value, e.g. `bf16 · 8 adapters · output tok/s`. */
export type Metrics = Record<string, number>;

export function parseEngineOutput(stdout: string): Metrics {
  const metrics: Metrics = {};
  let dtype = '';
  for (const line of stdout.split('\n')) {
    const header = /^── (\S+)/.exec(line);
    if (header) dtype = header[1];
    const workload = /^(\S.*?)\s+([\d.]+) output tok\/s/.exec(line);
    if (workload && dtype) metrics[`${dtype} · ${workload[1]} · output tok/s`] = Number(workload[2]);
    const decode = /^batch-1 decode: ([\d.]+) ms\/token/.exec(line);
    if (decode && dtype) metrics[`${dtype} · batch-1 decode · ms/token`] = Number(decode[1]);
  }
  if (Object.keys(metrics).length === 0) throw new Error(`no figures in bench/engine.ts output:\n${stdout}`);
  return metrics;
}

export async function runEngineBench(dir: string, args: string[]): Promise<Metrics> {
  return parseEngineOutput(await runScript(dir, 'bench/engine.ts', args));
}
