/**
 * `bench --report`: the run as ONE self-contained HTML page. Everything is inline — CSS,
 * and SVG charts drawn here at render time — and nothing is fetched (no script, font,
 * image or stylesheet from the network, no JavaScript at all), so the file can be mailed,
 * attached to an issue or opened offline years later and look the same.
 *
 * Charts: the latency percentile curve on HdrHistogram's log x-axis (1/(1-p): 0 %, 90 %,
 * 99 %, 99.9 %, ...), client and server stages together; throughput per second; the
 * server breakdown as a table with percentile bars; then errors and the configuration.
 */

import type { Histogram } from 'hdr-histogram-js';
import { percentiles } from '../../shared/histogram.js';
import { type BenchRun, errorCount, ratesOf } from './bench-run.js';
import { formatCount, formatMs, LATENCY_COLUMNS } from './summary-table.js';

/** `s` safe as HTML text or a quoted attribute value. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const esc = (v: string | number | boolean): string => escapeHtml(String(v));

/** A coordinate with one decimal: enough for a 1000-unit view box. NaN shows as "NaN" on purpose (tests look). */
const n1 = (v: number): string => v.toFixed(1);

/** Series colours: the client first (the figure that matters), then the server stages. */
const PALETTE = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#dc2626', '#0891b2', '#db2777', '#65a30d'];

const CHART_W = 1000;
const CHART_H = 380;
// The right pad leaves room for the last x label (99.9999%), centred on the plot's edge.
const PAD = { left: 72, right: 44, top: 16, bottom: 52 };
const PLOT_W = CHART_W - PAD.left - PAD.right;
const PLOT_H = CHART_H - PAD.top - PAD.bottom;

/** A round step (1, 2 or 5 × 10^k) that cuts `range` into about `target` intervals. */
function niceStep(range: number, target: number): number {
  const raw = range / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

/** A tick label: no trailing zeros, no float noise (0.30000000000000004). */
function tickLabel(v: number): string {
  const clean = Number(v.toPrecision(6));
  return Math.abs(clean) >= 10_000 ? formatCount(clean) : String(clean);
}

/** A y axis: maps a value to a y coordinate, with its ticks. */
interface YAxis {
  readonly y: (v: number) => number;
  readonly ticks: readonly number[];
  readonly log: boolean;
}

/** Linear from 0 to a round number above `maxValue` (at least 1 step when everything is 0). */
function linearAxis(maxValue: number): YAxis {
  const step = niceStep(maxValue > 0 ? maxValue : 1, 5);
  const top = Math.max(step, Math.ceil(maxValue / step) * step);
  const ticks: number[] = [];
  for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
  return { y: (v) => PAD.top + PLOT_H * (1 - v / top), ticks, log: false };
}

/** Log10 over whole decades around [minValue, maxValue] (both > 0). */
function logAxis(minValue: number, maxValue: number): YAxis {
  const lo = Math.floor(Math.log10(minValue));
  const hi = Math.max(lo + 1, Math.ceil(Math.log10(maxValue)));
  const ticks: number[] = [];
  for (let k = lo; k <= hi; k++) ticks.push(10 ** k);
  return {
    y: (v) => PAD.top + PLOT_H * (1 - (Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)),
    ticks,
    log: true,
  };
}

/** Horizontal grid lines and labels of `axis`, and the y title. */
function yAxisSvg(axis: YAxis, title: string): string {
  const parts = axis.ticks.map((v) => {
    const y = n1(axis.y(v));
    return (
      `<line x1="${PAD.left}" x2="${CHART_W - PAD.right}" y1="${y}" y2="${y}" class="grid"/>` +
      `<text x="${PAD.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${esc(tickLabel(v))}</text>`
    );
  });
  const midY = n1(PAD.top + PLOT_H / 2);
  parts.push(
    `<text x="16" y="${midY}" text-anchor="middle" transform="rotate(-90 16 ${midY})" class="title">${esc(title)}</text>`,
  );
  return parts.join('');
}

/** The label of decade `k` of the 1/(1-p) axis: 0 %, 90 %, 99 %, 99.9 %, ... */
function percentileLabel(k: number): string {
  if (k === 0) return '0%';
  if (k === 1) return '90%';
  return `99${k > 2 ? `.${'9'.repeat(k - 2)}` : ''}%`;
}

/** A series of the percentile chart. */
interface LatencySeries {
  readonly name: string;
  readonly h: Histogram;
  readonly color: string;
}

/** Samples along the log x-axis per decade: smooth enough for a step-shaped curve. */
const SAMPLES_PER_DECADE = 60;

/**
 * The percentile curves: x = log10(1/(1-p)), like HdrHistogram's plotter; y in ms, on a
 * log scale when the values span more than 1.5 decades (a linear scale would flatten
 * everything below the tail), linear from 0 otherwise.
 */
function percentileChart(series: readonly LatencySeries[]): string {
  const live = series.filter((s) => s.h.totalCount > 0);
  if (live.length === 0) return '<p class="empty">No latencies were recorded.</p>';
  const maxCount = Math.max(...live.map((s) => s.h.totalCount));
  // As many decades as the data resolves (1 / count), at least to 99.9 %, at most 99.9999 %.
  const decades = Math.min(6, Math.max(3, Math.ceil(Math.log10(maxCount))));
  const x = (decade: number): number => PAD.left + (PLOT_W * decade) / decades;
  const minMs = Math.max(0.001, Math.min(...live.map((s) => s.h.getValueAtPercentile(0) / 1000)));
  const maxMs = Math.max(...live.map((s) => s.h.maxValue / 1000));
  const axis = maxMs / minMs > 10 ** 1.5 ? logAxis(minMs, maxMs) : linearAxis(maxMs);

  const out: string[] = [];
  out.push(yAxisSvg(axis, axis.log ? 'latency (ms, log scale)' : 'latency (ms)'));
  for (let k = 0; k <= decades; k++) {
    const xk = n1(x(k));
    out.push(`<line x1="${xk}" x2="${xk}" y1="${PAD.top}" y2="${PAD.top + PLOT_H}" class="grid"/>`);
    out.push(
      `<text x="${xk}" y="${PAD.top + PLOT_H + 20}" text-anchor="middle">${esc(percentileLabel(k))}</text>`,
    );
  }
  out.push(
    `<text x="${n1(PAD.left + PLOT_W / 2)}" y="${CHART_H - 8}" text-anchor="middle" class="title">percentile</text>`,
  );
  // The client last, so that it is drawn on top of the stages.
  for (const s of [...live].reverse()) {
    // A series stops where its data does: beyond 1/count a percentile is just the max.
    const lastDecade = Math.min(decades, Math.max(1, Math.log10(s.h.totalCount)));
    const n = Math.max(2, Math.ceil(lastDecade * SAMPLES_PER_DECADE));
    const points: string[] = [];
    for (let i = 0; i <= n; i++) {
      const decade = (lastDecade * i) / n;
      const p = 100 * (1 - 10 ** -decade);
      points.push(`${n1(x(decade))},${n1(axis.y(s.h.getValueAtPercentile(p) / 1000))}`);
    }
    const width = s === live[0] ? 2.5 : 1.75;
    out.push(
      `<path d="M${points.join('L')}" fill="none" stroke="${esc(s.color)}" stroke-width="${width}" stroke-linejoin="round"><title>${esc(s.name)}</title></path>`,
    );
  }
  return svg(out.join(''), 'Latency by percentile');
}

/** The chart frame: scales with the page (view box), with an accessible label. */
function svg(body: string, label: string): string {
  return `<svg viewBox="0 0 ${CHART_W} ${CHART_H}" role="img" aria-label="${esc(label)}" class="chart">${body}</svg>`;
}

/** Colour swatches naming the series. */
function legend(items: readonly { name: string; color: string; dashed?: boolean }[]): string {
  const li = items.map(
    (i) =>
      `<li><span class="sw${i.dashed ? ' dashed' : ''}" style="border-color:${esc(i.color)}"></span>${esc(i.name)}</li>`,
  );
  return `<ul class="legend">${li.join('')}</ul>`;
}

/** Completions per second over the measured interval, with the run's mean as a dashed line. */
function throughputChart(run: BenchRun): string {
  const t = run.timeline;
  if (t.length === 0) return '<p class="empty">No per-second timeline was recorded.</p>';
  // Commands are drawn only when batching makes them differ from requests.
  const showCommands = t.some((p) => p.commands !== p.requests);
  const maxPerSec = Math.max(...t.map((p) => Math.max(p.requests, showCommands ? p.commands : 0)));
  const axis = linearAxis(maxPerSec);
  const spanS = Math.max(run.durationS, ...t.map((p) => p.tMs / 1000 + 1));
  const x = (s: number): number => PAD.left + (PLOT_W * s) / spanS;
  const out: string[] = [yAxisSvg(axis, 'per second')];
  const stepS = niceStep(spanS, 10);
  for (let s = 0; s <= spanS + 1e-9; s += stepS) {
    const xs = n1(x(s));
    out.push(`<line x1="${xs}" x2="${xs}" y1="${PAD.top}" y2="${PAD.top + PLOT_H}" class="grid"/>`);
    out.push(`<text x="${xs}" y="${PAD.top + PLOT_H + 20}" text-anchor="middle">${esc(tickLabel(s))}</text>`);
  }
  out.push(
    `<text x="${n1(PAD.left + PLOT_W / 2)}" y="${CHART_H - 8}" text-anchor="middle" class="title">seconds into the measured interval</text>`,
  );
  const line = (pick: (p: (typeof t)[number]) => number, color: string, area: boolean): void => {
    // Each count covers a whole second: plotted at the middle of it.
    const pts = t.map((p) => `${n1(x(p.tMs / 1000 + 0.5))},${n1(axis.y(pick(p)))}`);
    if (area) {
      const base = n1(axis.y(0));
      const first = n1(x((t[0] as (typeof t)[number]).tMs / 1000 + 0.5));
      const last = n1(x((t[t.length - 1] as (typeof t)[number]).tMs / 1000 + 0.5));
      out.push(
        `<path d="M${first},${base}L${pts.join('L')}L${last},${base}Z" fill="${color}" fill-opacity="0.08"/>`,
      );
    }
    out.push(
      `<path d="M${pts.join('L')}" fill="none" stroke="${color}" stroke-width="2.25" stroke-linejoin="round"/>`,
    );
    for (const pt of t.length <= 60 ? pts : []) {
      const [cx, cy] = pt.split(',');
      out.push(`<circle cx="${cx}" cy="${cy}" r="2.5" fill="${color}"/>`);
    }
  };
  if (showCommands) line((p) => p.commands, PALETTE[1] as string, false);
  line((p) => p.requests, PALETTE[0] as string, true);
  const { requestsPerSec } = ratesOf(run);
  const meanY = n1(axis.y(requestsPerSec));
  out.push(
    `<path d="M${PAD.left},${meanY}L${CHART_W - PAD.right},${meanY}" stroke="#6b7280" stroke-width="1.25" stroke-dasharray="6 4"/>`,
  );
  const items = [{ name: 'requests/s', color: PALETTE[0] as string }];
  if (showCommands) items.push({ name: 'commands/s', color: PALETTE[1] as string });
  return (
    svg(out.join(''), 'Throughput per second') +
    legend([
      ...items,
      { name: `mean ${formatCount(requestsPerSec, 0)} requests/s`, color: '#6b7280', dashed: true },
    ])
  );
}

/**
 * Latency table rows (client first, then each server stage) with a bar per row: p50 dark,
 * up to p99 lighter, up to p99.9 lightest, on one linear scale shared by all rows so the
 * stages compare at a glance.
 */
function breakdownTable(series: readonly LatencySeries[]): string {
  const rows = series.map((s) => ({ s, p: percentiles(s.h) }));
  const scaleUs = Math.max(1, ...rows.map((r) => r.p.p999));
  const BAR_W = 160;
  const BAR_H = 14;
  const w = (us: number): number => (BAR_W * Math.min(us, scaleUs)) / scaleUs;
  const head = ['latency, ms', 'count', ...LATENCY_COLUMNS.map((c) => c.label), ''];
  const body = rows.map(({ s, p }) => {
    const bar =
      `<svg viewBox="0 0 ${BAR_W} ${BAR_H}" width="${BAR_W}" height="${BAR_H}" class="bar" aria-hidden="true">` +
      `<rect x="0" y="0" width="${n1(w(p.p999))}" height="${BAR_H}" fill="${esc(s.color)}" fill-opacity="0.25"/>` +
      `<rect x="0" y="0" width="${n1(w(p.p99))}" height="${BAR_H}" fill="${esc(s.color)}" fill-opacity="0.5"/>` +
      `<rect x="0" y="0" width="${n1(w(p.p50))}" height="${BAR_H}" fill="${esc(s.color)}"/>` +
      '</svg>';
    const cells = [
      `<td><span class="sw" style="border-color:${esc(s.color)}"></span>${esc(s.name)}</td>`,
      `<td>${esc(formatCount(p.count))}</td>`,
      ...LATENCY_COLUMNS.map((c) => `<td>${esc(formatMs(p[c.key]))}</td>`),
      `<td class="barcell">${bar}</td>`,
    ];
    return `<tr>${cells.join('')}</tr>`;
  });
  return (
    `<div class="scroll"><table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>` +
    `<tbody>${body.join('')}</tbody></table></div>` +
    `<p class="note">Bars: p50 (solid), p99, p99.9 (lightest), one linear scale to ${esc(formatMs(scaleUs))} ms.</p>`
  );
}

/** A two-column table of names and values. */
function keyValueTable(
  head: readonly [string, string],
  rows: readonly (readonly [string, string])[],
): string {
  const body = rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('');
  return `<table class="kv"><thead><tr><th>${esc(head[0])}</th><th>${esc(head[1])}</th></tr></thead><tbody>${body}</tbody></table>`;
}

/** A figure such as 'entries per fsync': 3 significant digits is all these ratios carry. */
function formatFigure(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  return Math.abs(n) >= 1000 ? formatCount(n, 0) : String(Number(n.toPrecision(3)));
}

const CSS = `
*{box-sizing:border-box}
body{margin:0;background:#f5f6f8;color:#1f2937;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1100px;margin:0 auto;padding:32px 24px 48px}
h1{font-size:28px;margin:0 0 4px;letter-spacing:-.01em}
h2{font-size:17px;margin:0 0 12px}
.sub{color:#6b7280;margin:0 0 20px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:12px}
.kpi{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:14px 16px}
.kpi .v{font-size:30px;font-weight:650;line-height:1.15;font-variant-numeric:tabular-nums;white-space:nowrap}
.kpi .v small{font-size:15px;font-weight:500;color:#6b7280;margin-left:3px}
.kpi .l{color:#6b7280;font-size:12px;text-transform:uppercase;letter-spacing:.05em;margin-top:2px}
.kpi.bad .v{color:#dc2626}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:18px 20px;margin-top:16px}
.chart{width:100%;height:auto;display:block}
.chart text{font:13px system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;fill:#6b7280}
.chart text.title{fill:#374151}
.chart .grid{stroke:#e9ebef;stroke-width:1}
.legend{list-style:none;display:flex;flex-wrap:wrap;gap:6px 18px;margin:8px 0 0 ${PAD.left / 10}%;padding:0;font-size:13px;color:#374151}
.sw{display:inline-block;width:16px;height:0;border-top:3px solid;vertical-align:middle;margin-right:6px}
.sw.dashed{border-top-style:dashed}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums;font-size:14px}
th,td{padding:6px 9px;border-bottom:1px solid #eef0f3;text-align:right;white-space:nowrap}
th{color:#6b7280;font-weight:600;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
th:first-child,td:first-child{text-align:left}
table.kv td:last-child{text-align:left;white-space:normal;word-break:break-word}
table.kv th:last-child{text-align:left}
.figures table{max-width:560px}
td.barcell{padding-top:4px;padding-bottom:4px}
.bar{display:block}
.note,.empty{color:#6b7280;font-size:13px;margin:8px 0 0}
.grid2{display:grid;align-items:start;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:16px}
.grid2 .card{margin-top:0}
.gap{margin-top:16px}
footer{color:#9ca3af;font-size:12px;margin-top:24px}
`;

/** One key figure in large type. */
function kpi(value: string, unit: string, label: string, bad = false): string {
  const u = unit ? `<small>${esc(unit)}</small>` : '';
  return `<div class="kpi${bad ? ' bad' : ''}"><div class="v">${esc(value)}${u}</div><div class="l">${esc(label)}</div></div>`;
}

/**
 * The run as a complete, self-contained HTML document (UTF-8): no external resources and
 * no script; every string from the run is escaped. Latencies are shown in milliseconds.
 */
export function renderHtmlReport(run: BenchRun): string {
  const { requestsPerSec, commandsPerSec } = ratesOf(run);
  const client = percentiles(run.latency);
  const errors = errorCount(run);
  const stages = Object.entries(run.server?.histograms ?? {});
  const series: LatencySeries[] = [
    { name: 'client', h: run.latency, color: PALETTE[0] as string },
    ...stages.map(([name, h], i) => ({ name, h, color: PALETTE[(i + 1) % PALETTE.length] as string })),
  ];
  const cluster = run.config.cluster;
  const sub = [
    `started ${run.startedAt}`,
    `${formatCount(run.durationS, 1)} s measured`,
    `${formatCount(run.requests)} requests`,
    ...(cluster !== undefined ? [String(cluster)] : []),
  ].join(' · ');

  const kpis = [
    kpi(formatCount(requestsPerSec, 0), '', 'requests / s'),
    kpi(formatCount(commandsPerSec, 0), '', 'commands / s'),
    kpi(formatMs(client.p50), 'ms', 'p50 latency'),
    kpi(formatMs(client.p99), 'ms', 'p99 latency'),
    kpi(formatMs(client.p999), 'ms', 'p99.9 latency'),
    kpi(formatMs(client.max), 'ms', 'max latency'),
    kpi(formatCount(errors), '', 'errors', errors > 0),
  ].join('');

  const errorRows = Object.entries(run.errors)
    .filter(([, n]) => n > 0)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const attempts = run.requests + errors;
  const errorsHtml =
    errorRows.length === 0
      ? '<p class="empty">No errors.</p>'
      : keyValueTable(
          ['code', 'count'],
          errorRows.map(([code, n]) => [
            code,
            `${formatCount(n)} (${attempts > 0 ? Number(((100 * n) / attempts).toPrecision(2)) : 0} % of requests)`,
          ]),
        );
  const figures = Object.entries(run.server?.figures ?? {});
  const figuresHtml =
    figures.length === 0
      ? ''
      : `<div class="gap figures">${keyValueTable(
          ['server figure', 'value'],
          figures.map(([k, v]) => [k, formatFigure(v)]),
        )}</div>`;

  const title = `raftline bench — ${run.startedAt}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>raftline bench</h1>
<p class="sub">${esc(sub)}</p>
<section class="kpis">${kpis}</section>
<section class="card">
<h2>Client latency by percentile${stages.length > 0 ? ', with the leader’s stages' : ''}</h2>
${percentileChart(series)}
${legend(series.filter((s) => s.h.totalCount > 0))}
</section>
<section class="card">
<h2>Throughput</h2>
${throughputChart(run)}
</section>
<section class="card">
<h2>${stages.length > 0 ? 'Latency breakdown: client and leader stages' : 'Client latency'}</h2>
${breakdownTable(series)}
${figuresHtml}
</section>
<div class="grid2 gap">
<section class="card">
<h2>Errors</h2>
${errorsHtml}
</section>
<section class="card">
<h2>Configuration</h2>
${keyValueTable(
  ['setting', 'value'],
  Object.entries(run.config).map(([k, v]) => [k, String(v)]),
)}
</section>
</div>
<footer>Generated by raftline bench. Latencies in milliseconds, from HdrHistograms recorded in microseconds (3 significant digits).</footer>
</main>
</body>
</html>
`;
}
