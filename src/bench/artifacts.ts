/**
 * Writes a run's artifacts into --artifact-dir: the result (bench.json), per-point records (JSONL, one
 * request per line, times in ms from the point's first request), and the SVG charts.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { benchCharts, pointSlug } from './charts/bench-charts.ts';
import type { RequestRecord } from './record.ts';
import type { BenchResult } from './result.ts';

export const RESULT_FILE = 'bench.json';

export function recordsJsonl(records: readonly RequestRecord[]): string {
  const t0 = Math.min(...records.map((r) => r.startMs));
  const rel = (t: number | null) => (t === null ? null : Number((t - t0).toFixed(3)));
  return records
    .map((r) =>
      JSON.stringify({
        ...r,
        startMs: rel(r.startMs),
        firstContentMs: rel(r.firstContentMs),
        lastContentMs: rel(r.lastContentMs),
        endMs: rel(r.endMs),
      }),
    )
    .map((line) => `${line}\n`)
    .join('');
}

/** Writes everything; returns the paths written. Sets each point's recordsFile. */
export async function writeArtifacts(dir: string, result: BenchResult, records: RequestRecord[][]): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [i, point] of result.points.entries()) {
    if (!records[i] || records[i].length === 0) continue;
    const name = `records-${pointSlug(point)}.jsonl`;
    await writeFile(join(dir, name), recordsJsonl(records[i]));
    point.recordsFile = name;
    written.push(join(dir, name));
  }
  for (const chart of benchCharts(result)) {
    await writeFile(join(dir, chart.name), chart.svg);
    written.push(join(dir, chart.name));
  }
  const resultPath = join(dir, RESULT_FILE);
  await writeFile(resultPath, `${JSON.stringify(result, null, 2)}\n`);
  written.unshift(resultPath);
  return written;
}
