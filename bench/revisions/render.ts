/**
 * bench:revisions' report as markdown and SVG, from its JSON alone (so `--render FILE` redraws a saved run).
 * Besides the ratios, a drift check: within one run, "1 merged" does the base's exact work, so its throughput
 * over the run's own "base" should be about 1; far from 1 means the machine changed under that run, and the
 * pair it belongs to says more about the machine than about the code.
 */
import { barChart } from '../../src/bench/charts/bar-chart.ts';
import type { MachinePeaks } from '../machine.ts';
import type { Metrics } from './engine-run.ts';
import type { KvDtypeResult } from './kv-dtype.ts';
import type { Comparison } from './paired.ts';
import { comparisonTable, throughputChart } from './report.ts';
import type { Checkout } from './worktree.ts';

export interface Section {
  command: string;
  runs: { pair: number; order: string; base: Metrics; head: Metrics; loadBefore?: number[] }[];
  comparisons: Comparison[];
}

export interface RevisionsReport {
  command: string;
  startedAt: string;
  base: Checkout & { label: string };
  head: Checkout & { label: string };
  machine: { cpu: { best: string; active: string; threads: number }; peaks: MachinePeaks };
  engine: Section | null;
  serving: Section | null;
  kv: KvDtypeResult | null;
  finishedAt: string | null;
}

/** merged / base output tok/s inside each run (same work, so ≈ 1 unless the machine drifted). */
function driftTable(section: Section): string[] {
  const key = (m: Metrics, w: string) => Object.keys(m).find((k) => k.endsWith(`${w} · output tok/s`));
  const ratio = (m: Metrics) => {
    const merged = key(m, '1 merged');
    const base = key(m, 'base');
    return merged && base ? (m[merged] / m[base]).toFixed(3) : 'n/a';
  };
  return [
    '| pair | order | base run: merged / base | head run: merged / base |',
    '|---|---|---|---|',
    ...section.runs.map((r) => `| ${r.pair + 1} | ${r.order} | ${ratio(r.base)} | ${ratio(r.head)} |`),
  ];
}

export function renderReport(report: RevisionsReport, name: string): { markdown: string; svgs: [string, string][] } {
  const a = `base ${report.base.sha.slice(0, 7)}`;
  const b = `head ${report.head.sha.slice(0, 7)}`;
  const { peaks, cpu } = report.machine;
  const lines = [
    `Command: \`${report.command}\` (${report.startedAt} .. ${report.finishedAt ?? 'unfinished'})`,
    '',
    `Base: ${report.base.label}; head: ${report.head.label}`,
    '',
    `Machine: ${cpu.threads} threads, best ISA ${cpu.best} (active ${cpu.active}); measured read ` +
      `${peaks.readGBs.toFixed(1)} GB/s, copy ${peaks.copyGBs.toFixed(1)} GB/s, f32 FMA ${peaks.f32Gflops.toFixed(0)} GFLOP/s` +
      (peaks.bf16Gflops ? `, bf16 dot ${peaks.bf16Gflops.toFixed(0)} GFLOP/s` : ', no bf16 dot'),
    '',
  ];
  const svgs: [string, string][] = [];
  for (const key of ['engine', 'serving'] as const) {
    const section = report[key];
    if (!section) continue;
    lines.push(`### ${key}: \`${section.command}\`, ${section.runs.length} pairs`, '');
    lines.push(...comparisonTable(section.comparisons, a, b), '');
    lines.push('Drift check (same work inside one run):', '', ...driftTable(section), '');
    svgs.push([`${name}-${key}.svg`, throughputChart(`bench:${key}: ${a} vs ${b}`, section.comparisons, a, b)]);
  }
  if (report.kv) {
    const { bytesPerToken, load, comparisons } = report.kv;
    lines.push(
      `### KV cache f32 vs bf16 (head; concurrency ${load.concurrency}, ${load.adapters} adapters round-robin, ` +
        `${load.inputTokens} in / ${load.outputTokens} out, ${load.requests} requests, ${comparisons[0]?.a.length ?? 0} pairs)`,
      '',
      `KV bytes per token: f32 ${bytesPerToken.f32}, bf16 ${bytesPerToken.bf16} ` +
        `(ratio ${(bytesPerToken.bf16 / bytesPerToken.f32).toFixed(3)})`,
      '',
      ...comparisonTable(comparisons, 'f32 KV', 'bf16 KV'),
      '',
    );
    const tput = comparisons.find((c) => c.metric === 'output tok/s');
    if (tput)
      svgs.push([
        `${name}-kv.svg`,
        barChart({
          title: `KV cache dtype at concurrency ${load.concurrency}: output tokens/s (median)`,
          xLabel: 'KV cache',
          yLabel: 'output tokens/s',
          categories: [`f32 (${bytesPerToken.f32} B/token)`, `bf16 (${bytesPerToken.bf16} B/token)`],
          series: [{ name: 'output tok/s', values: [tput.medianA, tput.medianB] }],
        }),
      ]);
  }
  return { markdown: `${lines.join('\n')}\n`, svgs };
}
