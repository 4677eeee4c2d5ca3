/**
 * The log for code off the main thread (the engine's and the loader's worker threads): the same lines the
 * server's own log writes (log.ts), straight to stderr, so a warning found on a worker thread reaches the
 * operator like any other. Created on first use.
 */
import { isatty } from 'node:tty';
import { createServeLog, type ServeLog } from './log.ts';

let log: ServeLog | null = null;

export function defaultAdapterLog(): ServeLog {
  log ??= createServeLog(isatty(2));
  return log;
}
