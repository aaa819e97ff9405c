/**
 * What one `raftline bench` run measured: the input of every report (summary table, .hgrm,
 * JSON, HTML). Reports are pure functions of a `BenchRun`, so they are tested without a
 * network and can be re-rendered from saved data.
 */

import type { Histogram } from 'hdr-histogram-js';

/** One second of the measured interval: requests and commands completed in it. */
export interface TimelinePoint {
  /** Start of the second, in ms from the start of the measured interval. */
  tMs: number;
  requests: number;
  commands: number;
}

/** The server's own breakdown, read from the leader (before/after difference). */
export interface ServerBreakdown {
  /** Latency histograms (µs) by stage name, e.g. 'propose→durable', 'fsync', 'replication RTT'. */
  histograms: Record<string, Histogram>;
  /** Scalar figures by name, e.g. 'entries per fsync', 'ring wake-ups per entry'. */
  figures: Record<string, number>;
}

/** One bench run's results. */
export interface BenchRun {
  /** The run's settings (shown as given; values are escaped wherever rendered). */
  config: Record<string, string | number | boolean>;
  /** When the run started, ISO 8601. */
  startedAt: string;
  /** Length of the measured interval (warm-up excluded), in seconds. */
  durationS: number;
  /** Requests completed in the measured interval. */
  requests: number;
  /** Commands completed in the measured interval (a request carries `batch` commands). */
  commands: number;
  /** Failed requests by error code. */
  errors: Record<string, number>;
  /** The merged client latency histogram (µs). */
  latency: Histogram;
  /** Per-second completions over the measured interval. */
  timeline: TimelinePoint[];
  /** The leader's latency breakdown, when it could be read. */
  server?: ServerBreakdown;
}

/** Requests and commands per second over the measured interval (0 for a zero-length run). */
export function ratesOf(run: BenchRun): { requestsPerSec: number; commandsPerSec: number } {
  // A zero or negative duration would give Infinity/NaN, which JSON cannot carry.
  if (!(run.durationS > 0)) return { requestsPerSec: 0, commandsPerSec: 0 };
  return { requestsPerSec: run.requests / run.durationS, commandsPerSec: run.commands / run.durationS };
}

/** The total number of failed requests, all codes together. */
export function errorCount(run: BenchRun): number {
  return Object.values(run.errors).reduce((s, n) => s + n, 0);
}
