/**
 * The server's own log: on a terminal, plain lines and progress bars (cli-progress); otherwise one JSON
 * object per line (pino) for log collectors, with progress reported at the start and end of each stage.
 */
import cliProgress from 'cli-progress';
import pino from 'pino';

export interface ServeLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  /** Something failed that an operator must see (an engine fault). */
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A stage (e.g. 'weights') moved on: `done` of `total`. */
  progress(stage: string, done: number, total: number): void;
}

/** `destination`: where JSON lines go (stderr by default; tests pass a stream). */
export function createServeLog(tty = process.stderr.isTTY === true, destination?: pino.DestinationStream): ServeLog {
  return tty ? terminalLog() : structuredLog(destination ?? pino.destination({ dest: 2, sync: true }));
}

function terminalLog(): ServeLog {
  const bars = new Map<string, cliProgress.SingleBar>();
  const line = (msg: string, fields?: Record<string, unknown>) => {
    const extra = fields
      ? ` ${Object.entries(fields)
          .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
          .join(' ')}`
      : '';
    console.error(`loraplex: ${msg}${extra}`);
  };
  return {
    info: line,
    warn: line,
    error: line,
    progress(stage, done, total) {
      if (total === 0) return;
      let bar = bars.get(stage);
      if (!bar) {
        bar = new cliProgress.SingleBar(
          {
            format: `loraplex: loading ${stage.padEnd(8)} [{bar}] {value}/{total}`,
            stream: process.stderr,
            hideCursor: true,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(total, done);
        bars.set(stage, bar);
      }
      bar.update(done);
      if (done >= total) bar.stop();
    },
  };
}

function structuredLog(destination: pino.DestinationStream): ServeLog {
  const logger = pino({ base: { service: 'loraplex' } }, destination);
  return {
    info: (msg, fields) => logger.info(fields ?? {}, msg),
    warn: (msg, fields) => logger.warn(fields ?? {}, msg),
    error: (msg, fields) => logger.error(fields ?? {}, msg),
    progress(stage, done, total) {
      if (done === 0 || done >= total) logger.info({ stage, done, total }, `loading ${stage}: ${done}/${total}`);
    },
  };
}
