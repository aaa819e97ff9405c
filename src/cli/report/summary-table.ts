/**
 * The plain-text summary `raftline bench` prints when it finishes: throughput, the client
 * latency percentiles, errors by code, then the leader's own breakdown by stage and its
 * batching figures.
 */

import type { Histogram } from 'hdr-histogram-js';
import { percentiles } from '../../shared/histogram.js';
import { type BenchRun, ratesOf } from './bench-run.js';

/**
 * `us` microseconds as milliseconds, for people: 3 decimals below 1 ms (0.052), 2 from
 * there (1.23, 12.35, 1234.57). HdrHistogram keeps 3 significant digits, so more would
 * be noise and fewer would hide sub-millisecond differences.
 */
export function formatMs(us: number): string {
  const ms = us / 1000;
  return ms < 1 ? ms.toFixed(3) : ms.toFixed(2);
}

/** `n` with thousands separators and at most `decimals` decimals, the same on every locale. */
export function formatCount(n: number, decimals = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: decimals, minimumFractionDigits: decimals });
}

/** The latency columns, in order, shared by the text summary and the HTML report. */
export const LATENCY_COLUMNS = [
  { label: 'p50', key: 'p50' },
  { label: 'p90', key: 'p90' },
  { label: 'p99', key: 'p99' },
  { label: 'p99.9', key: 'p999' },
  { label: 'p99.99', key: 'p9999' },
  { label: 'max', key: 'max' },
  { label: 'mean', key: 'mean' },
] as const;

/** Rows of cells as left-aligned first column and right-aligned others, two spaces apart. */
function table(rows: readonly (readonly string[])[], indent = '  '): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows
    .map((r) =>
      (
        indent + r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')
      ).trimEnd(),
    )
    .join('\n');
}

function latencyRow(name: string, h: Histogram): string[] {
  const p = percentiles(h);
  return [name, ...LATENCY_COLUMNS.map((c) => formatMs(p[c.key])), formatCount(p.count)];
}

/** A figure such as 'entries per fsync': two decimals, or three when it is below 1. */
function formatFigure(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  return Math.abs(n) < 1 && n !== 0 ? n.toFixed(3) : formatCount(n, 2);
}

/** The run's summary as a plain-text table (latencies in ms), ending without a newline. */
export function formatSummary(run: BenchRun): string {
  const { requestsPerSec, commandsPerSec } = ratesOf(run);
  const out: string[] = [];
  out.push(`raftline bench: ${run.startedAt}, ${formatCount(run.durationS, 1)} s measured`);
  out.push('');
  out.push(
    table([
      ['requests/s', formatCount(requestsPerSec, 1), `(${formatCount(run.requests)} requests)`],
      ['commands/s', formatCount(commandsPerSec, 1), `(${formatCount(run.commands)} commands)`],
    ]),
  );
  out.push('');
  const header = ['latency (ms)', ...LATENCY_COLUMNS.map((c) => c.label), 'count'];
  out.push(table([header, latencyRow('client', run.latency)]));
  out.push('');
  const errors = Object.entries(run.errors)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (errors.length === 0) {
    out.push('  errors: none');
  } else {
    out.push(table([['errors', 'count'], ...errors.map(([code, n]) => [code, formatCount(n)])]));
  }
  const stages = Object.entries(run.server?.histograms ?? {});
  if (stages.length > 0) {
    out.push('');
    out.push(table([['server (ms)', ...header.slice(1)], ...stages.map(([name, h]) => latencyRow(name, h))]));
  }
  const figures = Object.entries(run.server?.figures ?? {});
  if (figures.length > 0) {
    out.push('');
    out.push(table([['server figures', ''], ...figures.map(([name, n]) => [name, formatFigure(n)])]));
  }
  return out.join('\n');
}
