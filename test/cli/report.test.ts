/**
 * The bench reports (`src/cli/report/`), all pure functions of a synthetic `BenchRun`: the
 * text summary carries the figures, the .hgrm text is HdrHistogram's format, the JSON has
 * the documented keys with finite numbers, and the HTML page is self-contained (nothing
 * fetched, no script), escapes what it shows, and draws finite SVG.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BenchRun } from '../../src/cli/report/bench-run.js';
import { formatHgrm } from '../../src/cli/report/hgrm.js';
import { escapeHtml, renderHtmlReport } from '../../src/cli/report/html-report.js';
import { toJsonReport } from '../../src/cli/report/json-report.js';
import { formatMs, formatSummary } from '../../src/cli/report/summary-table.js';
import {
  createLatencyHistogram,
  decodeHistogram,
  type Histogram,
  percentiles,
} from '../../src/shared/histogram.js';

/** A histogram of `n` values spread over [lowUs, highUs], deterministic. */
function spread(n: number, lowUs: number, highUs: number): Histogram {
  const h = createLatencyHistogram();
  for (let i = 0; i < n; i++) h.recordValue(Math.round(lowUs + ((highUs - lowUs) * ((i * 7919) % n)) / n));
  h.recordValue(highUs * 20); // one tail value
  return h;
}

function sampleRun(): BenchRun {
  return {
    config: {
      cluster: 'local 3-node cluster (fsm kv)',
      sync: true,
      connections: 8,
      batch: 4,
      note: '<script>alert("x")</script> & co',
    },
    startedAt: '2025-01-15T10:20:30.000Z',
    durationS: 10,
    requests: 50_000,
    commands: 200_000,
    errors: { ERR_RAFT_TIMEOUT: 7, ERR_RAFT_NOT_LEADER: 2 },
    latency: spread(50_000, 800, 6000),
    timeline: Array.from({ length: 10 }, (_, i) => ({
      tMs: i * 1000,
      requests: 5000 + i,
      commands: 4 * (5000 + i),
    })),
    server: {
      histograms: {
        'propose→durable': spread(10_000, 300, 1500),
        'propose→committed': spread(10_000, 500, 2500),
        fsync: spread(4000, 200, 900),
      },
      figures: { 'entries per fsync': 2.5, 'ring wake-ups per entry': 0.0125 },
    },
  };
}

/** A run with nothing in it: every report must still render (and without NaN). */
function emptyRun(): BenchRun {
  return {
    config: {},
    startedAt: '2025-01-15T10:20:30.000Z',
    durationS: 0,
    requests: 0,
    commands: 0,
    errors: {},
    latency: createLatencyHistogram(),
    timeline: [],
  };
}

describe('formatSummary', () => {
  test('shows throughput, the client percentiles, errors by code and the server breakdown', () => {
    const run = sampleRun();
    const text = formatSummary(run);
    assert.match(text, /requests\/s\s+5,000\.0/);
    assert.match(text, /commands\/s\s+20,000\.0/);
    const p = percentiles(run.latency);
    const clientLine = text.split('\n').find((l) => l.trim().startsWith('client'));
    assert.ok(clientLine, text);
    for (const us of [p.p50, p.p90, p.p99, p.p999, p.p9999, p.max])
      assert.ok(clientLine.includes(formatMs(us)));
    for (const label of ['p50', 'p90', 'p99', 'p99.9', 'p99.99', 'max']) assert.ok(text.includes(label));
    assert.match(text, /ERR_RAFT_TIMEOUT\s+7/);
    assert.match(text, /ERR_RAFT_NOT_LEADER\s+2/);
    for (const name of ['propose→durable', 'propose→committed', 'fsync'])
      assert.ok(text.includes(name), name);
    assert.match(text, /entries per fsync\s+2\.50/);
    assert.match(text, /ring wake-ups per entry\s+0\.013/);
    // The errors come before the server breakdown.
    assert.ok(text.indexOf('ERR_RAFT_TIMEOUT') < text.indexOf('propose→durable'));
  });

  test('formatMs: 3 decimals below 1 ms, 2 above', () => {
    assert.equal(formatMs(523), '0.523');
    assert.equal(formatMs(1234), '1.23');
    assert.equal(formatMs(123_456), '123.46');
  });

  test('an empty run: no errors, no server section, no NaN', () => {
    const text = formatSummary(emptyRun());
    assert.match(text, /errors: none/);
    assert.ok(!text.includes('server'));
    assert.ok(!/NaN|Infinity/.test(text), text);
  });
});

describe('formatHgrm', () => {
  test('is HdrHistogram percentile-distribution text in ms with the footer lines', () => {
    const h = sampleRun().latency;
    const text = formatHgrm(h);
    const lines = text.split('\n');
    assert.match(lines[0] as string, /^\s*Value\s+Percentile\s+TotalCount\s+1\/\(1-Percentile\)\s*$/);
    assert.ok(text.endsWith('\n'));
    const footer = lines.filter((l) => l.trim().length > 0).slice(-3);
    assert.match(footer[0] as string, /^#\[Mean\s+=\s+[\d.]+, StdDeviation\s+=\s+[\d.]+\]$/);
    assert.match(footer[1] as string, /^#\[Max\s+=\s+[\d.]+, Total count\s+=\s+\d+\]$/);
    assert.match(footer[2] as string, /^#\[Buckets\s+=\s+\d+, SubBuckets\s+=\s+\d+\]$/);
    // Values are scaled to milliseconds, the plotter's unit.
    const max = Number((footer[1] as string).match(/Max\s+=\s+([\d.]+)/)?.[1]);
    assert.ok(Math.abs(max - h.maxValue / 1000) < 0.01, `${max} ms vs ${h.maxValue} µs`);
    const total = Number((footer[1] as string).match(/Total count\s+=\s+(\d+)/)?.[1]);
    assert.equal(total, h.totalCount);
    // Data lines: value, percentile, count (and 1/(1-p) except on the 100 % line).
    const data = lines.slice(2).filter((l) => /^\s+\d/.test(l));
    assert.ok(data.length > 20);
    for (const l of data) assert.match(l, /^\s+[\d.]+\s+[\d.]+\s+\d+(\s+[\d.]+)?$/);
  });
});

describe('toJsonReport', () => {
  test('has the required keys, finite numbers, and survives JSON', () => {
    const run = sampleRun();
    const r = toJsonReport(run);
    assert.equal(r.requestsPerSec, 5000);
    assert.equal(r.commandsPerSec, 20_000);
    const p = percentiles(run.latency);
    for (const k of ['p50', 'p90', 'p99', 'p999', 'p9999', 'max', 'mean'] as const) {
      assert.equal(typeof r.latencyUs[k], 'number', k);
      assert.ok(Number.isFinite(r.latencyUs[k]), k);
    }
    assert.equal(r.latencyUs.p99, p.p99);
    assert.equal(r.latencyUs.max, p.max);
    assert.deepEqual(r.errors, { ERR_RAFT_TIMEOUT: 7, ERR_RAFT_NOT_LEADER: 2 });
    assert.deepEqual(r.config, run.config);
    assert.equal(r.timeline.length, 10);
    assert.deepEqual(r.timeline[3], { tMs: 3000, requests: 5003, commands: 20_012 });
    assert.ok(r.server);
    assert.deepEqual(Object.keys(r.server.latencyUs), ['propose→durable', 'propose→committed', 'fsync']);
    assert.equal(r.server.figures['entries per fsync'], 2.5);
    // The encoded histogram decodes to the run's.
    assert.equal(decodeHistogram(r.latencyUs.histogram).totalCount, run.latency.totalCount);
    assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
  });

  test('a zero-length run gives zeros, not NaN or Infinity, and no server key', () => {
    const r = toJsonReport(emptyRun());
    assert.equal(r.requestsPerSec, 0);
    assert.equal(r.latencyUs.p50, 0);
    assert.equal(r.server, undefined);
    assert.ok(!/NaN|Infinity|null/.test(JSON.stringify(r)));
  });
});

/** Every number in the SVG geometry: path data and numeric attributes. */
function svgGeometry(html: string): { paths: string[]; attrs: string[] } {
  const svgs = html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
  const paths: string[] = [];
  const attrs: string[] = [];
  for (const s of svgs) {
    for (const m of s.matchAll(/\sd="([^"]*)"/g)) paths.push(m[1] as string);
    for (const m of s.matchAll(/\s(?:x|y|x1|x2|y1|y2|cx|cy|r|width|height)="([^"]*)"/g))
      attrs.push(m[1] as string);
  }
  return { paths, attrs };
}

describe('renderHtmlReport', () => {
  test('is one self-contained page: nothing from the network, no script', () => {
    const html = renderHtmlReport(sampleRun());
    assert.ok(html.startsWith('<!doctype html>'));
    assert.ok(!/https?:\/\//i.test(html), 'no http(s) URL anywhere');
    assert.ok(!/\s(?:src|href|srcset|xlink:href)\s*=/i.test(html), 'no src/href attribute');
    assert.ok(!/@import|url\(/i.test(html), 'no CSS import or url()');
    assert.ok(!/<script|<link|<iframe|<img/i.test(html), 'no script, link, iframe or img element');
  });

  test('escapes the strings it shows', () => {
    const html = renderHtmlReport(sampleRun());
    assert.ok(html.includes(escapeHtml('<script>alert("x")</script> & co')));
    assert.ok(!html.includes('<script>alert'));
    assert.equal(
      escapeHtml(`<a href="x">'&'</a>`),
      '&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;',
    );
  });

  test('shows the key figures, the charts, the breakdown and the configuration', () => {
    const run = sampleRun();
    const html = renderHtmlReport(run);
    const p = percentiles(run.latency);
    assert.ok(html.includes('<svg'));
    assert.ok(
      (html.match(/<svg viewBox="0 0 1000 380"/g) ?? []).length === 2,
      'percentile and throughput charts',
    );
    assert.ok(html.includes('5,000'), 'requests/s');
    for (const us of [p.p50, p.p99, p.p999, p.max]) assert.ok(html.includes(formatMs(us)));
    for (const label of ['0%', '90%', '99%', '99.9%', '99.99%'])
      assert.ok(html.includes(`>${label}<`), label);
    for (const name of [
      'propose→durable',
      'propose→committed',
      'fsync',
      'entries per fsync',
      'ERR_RAFT_TIMEOUT',
    ]) {
      assert.ok(html.includes(name), name);
    }
    assert.ok(html.includes('local 3-node cluster (fsm kv)'));
  });

  test("every SVG path's numbers are finite and inside the chart", () => {
    for (const run of [sampleRun(), emptyRun()]) {
      const { paths, attrs } = svgGeometry(renderHtmlReport(run));
      for (const d of paths) {
        assert.match(d, /^[MLZ0-9.,\s-]+$/, `path data: ${d.slice(0, 80)}`);
        const nums = d.match(/-?\d+(?:\.\d+)?/g) ?? [];
        assert.ok(nums.length >= 2);
        for (const n of nums) {
          const v = Number(n);
          assert.ok(Number.isFinite(v), n);
          assert.ok(v >= 0 && v <= 1000, `${v} inside the 1000×380 view box`);
        }
      }
      for (const a of attrs) assert.ok(Number.isFinite(Number(a)), `attribute value ${a}`);
    }
    assert.ok(svgGeometry(renderHtmlReport(sampleRun())).paths.length >= 5);
  });

  test('renders an empty run (no latencies, no timeline, no server) without NaN', () => {
    const html = renderHtmlReport(emptyRun());
    assert.ok(!/NaN|Infinity|undefined/.test(html));
    assert.ok(html.includes('No latencies were recorded.'));
    assert.ok(html.includes('No errors.'));
  });

  test('a single-value run and a one-second timeline still draw finite charts', () => {
    const run = emptyRun();
    run.durationS = 1;
    run.requests = 1;
    run.commands = 1;
    run.latency.recordValue(1500);
    run.timeline = [{ tMs: 0, requests: 1, commands: 1 }];
    const html = renderHtmlReport(run);
    assert.ok(!/NaN|Infinity/.test(html));
    assert.ok(html.includes('<svg'));
  });
});
