/**
 * Progress while a run is going: a cli-progress bar on a terminal, a plain line every few seconds
 * otherwise (logs, CI), nothing with --progress off.
 */
import cliProgress from 'cli-progress';
import type { ProgressMode } from './options.ts';
import type { RequestRecord } from './record.ts';

export interface Progress {
  done(record: RequestRecord): void;
  stop(): void;
}

export interface ProgressTarget {
  label: string;
  /** Requests to send, or null with a duration. */
  requestCount: number | null;
  durationSeconds: number | null;
}

const LINE_INTERVAL_MS = 5000;

export function createProgress(
  mode: ProgressMode,
  target: ProgressTarget,
  stream: NodeJS.WriteStream = process.stderr,
): Progress {
  const useBar = mode === 'bar' || (mode === 'auto' && stream.isTTY === true);
  if (mode === 'off') return { done() {}, stop() {} };
  return useBar ? barProgress(target, stream) : lineProgress(target, stream);
}

function barProgress(target: ProgressTarget, stream: NodeJS.WriteStream): Progress {
  const byTime = target.requestCount === null;
  const total = byTime ? Math.round(target.durationSeconds ?? 0) : (target.requestCount as number);
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: byTime
        ? `${target.label} |{bar}| {value}/{total} s | {completed} done | {errors} errors`
        : `${target.label} |{bar}| {value}/{total} requests | {errors} errors | {elapsed} s`,
      hideCursor: true,
      clearOnComplete: false,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  const started = performance.now();
  let completed = 0;
  let errors = 0;
  const elapsed = () => Math.round((performance.now() - started) / 1000);
  bar.start(total, 0, { completed, errors, elapsed: 0 });
  const tick = setInterval(() => {
    bar.update(byTime ? Math.min(total, elapsed()) : completed, { completed, errors, elapsed: elapsed() });
  }, 200);
  return {
    done(record) {
      completed++;
      if (record.error || record.lastContentMs === null) errors++;
    },
    stop() {
      clearInterval(tick);
      bar.update(byTime ? total : completed, { completed, errors, elapsed: elapsed() });
      bar.stop();
    },
  };
}

function lineProgress(target: ProgressTarget, stream: NodeJS.WriteStream): Progress {
  const started = performance.now();
  let completed = 0;
  let errors = 0;
  const of = target.requestCount === null ? ` (run of ${target.durationSeconds}s)` : `/${target.requestCount}`;
  const line = () => {
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    stream.write(`${target.label}: ${completed}${of} requests done, ${errors} errors, ${seconds}s\n`);
  };
  const tick = setInterval(line, LINE_INTERVAL_MS);
  tick.unref();
  return {
    done(record) {
      completed++;
      if (record.error || record.lastContentMs === null) errors++;
    },
    stop() {
      clearInterval(tick);
      line();
    },
  };
}
