/**
 * The run as a JSON-ready object (`bench --json`): figures for scripts and dashboards,
 * plus the encoded histograms so that runs can later be merged or re-plotted exactly.
 */

import type { Histogram } from 'hdr-histogram-js';
import { encodeHistogram, type LatencyPercentilesUs, percentiles } from '../../shared/histogram.js';
import { type BenchRun, ratesOf, type TimelinePoint } from './bench-run.js';

/** One latency distribution: percentiles, max and mean in µs, the count, and the histogram. */
export interface JsonLatency extends LatencyPercentilesUs {
  /** The whole histogram, HdrHistogram compressed base64 (`decodeHistogram` reads it). */
  histogram: string;
}

/** The shape `toJsonReport` returns. */
export interface JsonReport {
  startedAt: string;
  durationS: number;
  requests: number;
  commands: number;
  requestsPerSec: number;
  commandsPerSec: number;
  latencyUs: JsonLatency;
  errors: Record<string, number>;
  config: Record<string, string | number | boolean>;
  server?: {
    /** Each stage's latency, µs. */
    latencyUs: Record<string, JsonLatency>;
    figures: Record<string, number>;
  };
  timeline: TimelinePoint[];
}

/** Rounds to `decimals` places: the mean and rates carry no information beyond that. */
function round(n: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(n * f) / f;
}

/** A finite number for JSON (which has no NaN or Infinity): non-finite figures become 0. */
function finite(n: number): number {
  return Number.isFinite(n) ? n : 0;
}

function latencyOf(h: Histogram): JsonLatency {
  const p = percentiles(h);
  return { ...p, mean: round(p.mean, 3), histogram: encodeHistogram(h) };
}

/** The run as a plain object that `JSON.stringify` writes faithfully (every number finite). */
export function toJsonReport(run: BenchRun): JsonReport {
  const rates = ratesOf(run);
  const report: JsonReport = {
    startedAt: run.startedAt,
    durationS: run.durationS,
    requests: run.requests,
    commands: run.commands,
    requestsPerSec: round(rates.requestsPerSec, 2),
    commandsPerSec: round(rates.commandsPerSec, 2),
    latencyUs: latencyOf(run.latency),
    errors: { ...run.errors },
    config: { ...run.config },
    timeline: run.timeline.map((t) => ({ tMs: t.tMs, requests: t.requests, commands: t.commands })),
  };
  if (run.server) {
    const latencyUs: Record<string, JsonLatency> = {};
    for (const [name, h] of Object.entries(run.server.histograms)) latencyUs[name] = latencyOf(h);
    const figures: Record<string, number> = {};
    for (const [name, n] of Object.entries(run.server.figures)) figures[name] = round(finite(n), 4);
    report.server = { latencyUs, figures };
  }
  return report;
}
