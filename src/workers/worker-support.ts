/**
 * What every worker thread shares: its logger and how errors cross to the coordinator.
 * An `Error` sent with `postMessage` arrives as a plain `Error` with its class and `code`
 * lost (STYLE.md), so errors travel as `{ name, code, message }` records.
 */

import pino, { type Logger } from 'pino';

/** An error as it crosses a thread boundary. */
export interface ErrorRecord {
  readonly name: string;
  readonly code: string;
  readonly message: string;
}

/** The record of `err`, whatever was thrown. */
export function errorRecord(err: unknown): ErrorRecord {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return {
      name: err.name,
      code: typeof code === 'string' ? code : 'ERR_RAFT_INTERNAL',
      message: err.message,
    };
  }
  return { name: 'Error', code: 'ERR_RAFT_INTERNAL', message: String(err) };
}

/**
 * A worker's logger: one JSON line per event on stderr, synchronous so a line is not lost
 * when a thread stops on an error (workers log rarely: start, stop, errors, peer links).
 */
export function workerLogger(level: string, bindings: Record<string, string>): Logger {
  return pino({ level, base: bindings }, pino.destination({ fd: 2, sync: true }));
}
