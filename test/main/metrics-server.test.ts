/**
 * `MetricsServer` over a fake source: /metrics must be valid Prometheus text exposition
 * (checked by a strict parser written here, not by prom-client, which wrote it) with the
 * expected names and values; /status is the status as JSON; unknown paths are 404; a
 * source that throws answers 500 and the server keeps serving.
 */

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { NodeStatus } from '../../src/main/coordinator.js';
import { MetricsServer, type MetricsSource } from '../../src/main/metrics-server.js';
import { Role } from '../../src/raft/types.js';
import { createLatencyHistogram, type Histogram } from '../../src/shared/histogram.js';

/** One sample line of the exposition. */
interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** What the parser found: the samples, and the declared type and help of every family. */
interface Exposition {
  readonly samples: Sample[];
  readonly types: Map<string, string>;
  readonly helps: Map<string, string>;
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** A sample value as the text format spells it: a Go float, NaN or ±Inf. */
function parseValue(text: string, line: string): number {
  if (text === 'NaN') return Number.NaN;
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  assert.match(text, /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/, `bad value in: ${line}`);
  return Number(text);
}

/** Text between the braces: `a="x",b="y\"z"`, escapes limited to \\, \" and \n. */
function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    assert.ok(eq > i, `bad label in: ${line}`);
    const name = text.slice(i, eq);
    assert.match(name, LABEL_NAME, `bad label name in: ${line}`);
    assert.equal(text[eq + 1], '"', `unquoted label value in: ${line}`);
    let value = '';
    let j = eq + 2;
    for (;;) {
      assert.ok(j < text.length, `unterminated label value in: ${line}`);
      const c = text[j];
      if (c === '"') break;
      if (c === '\\') {
        const next = text[j + 1];
        if (next === '\\') value += '\\';
        else if (next === '"') value += '"';
        else if (next === 'n') value += '\n';
        else assert.fail(`bad escape \\${next} in: ${line}`);
        j += 2;
      } else {
        value += c;
        j++;
      }
    }
    assert.ok(!(name in labels), `duplicate label ${name} in: ${line}`);
    labels[name] = value;
    j++;
    if (j < text.length) {
      assert.equal(text[j], ',', `expected , between labels in: ${line}`);
      j++;
    }
    i = j;
  }
  return labels;
}

/** The family a sample belongs to: its own name, or a summary/histogram's name for the suffixed series. */
function familyOf(name: string, types: Map<string, string>): string {
  if (types.has(name)) return name;
  for (const suffix of ['_sum', '_count', '_bucket']) {
    const base = name.slice(0, -suffix.length);
    if (name.endsWith(suffix) && ['summary', 'histogram'].includes(types.get(base) ?? '')) return base;
  }
  return name;
}

/**
 * A strict parser for the Prometheus text format 0.0.4: every line is blank, a comment, or
 * `name{labels} value [timestamp]`; every family has `# HELP` and `# TYPE` before its
 * samples; no series appears twice.
 */
function parseExposition(text: string): Exposition {
  assert.ok(text.endsWith('\n'), 'exposition must end with a newline');
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helps = new Map<string, string>();
  const seen = new Set<string>();
  const sampleLine = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const help = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line);
      const type = new RegExp(`^# TYPE (${NAME}) (\\S+)$`).exec(line);
      if (help) {
        assert.ok(!helps.has(help[1]), `second HELP for ${help[1]}`);
        // In HELP text only \\ and \n are escapes.
        assert.doesNotMatch(help[2].replace(/\\[\\n]/g, ''), /\\/, `bad escape in: ${line}`);
        helps.set(help[1], help[2]);
      } else if (type) {
        assert.ok(!types.has(type[1]), `second TYPE for ${type[1]}`);
        assert.ok(TYPES.has(type[2]), `unknown type in: ${line}`);
        assert.ok(!samples.some((s) => s.name === type[1]), `TYPE after samples of ${type[1]}`);
        types.set(type[1], type[2]);
      } else {
        assert.match(line, /^# /, `malformed comment: ${line}`);
      }
      continue;
    }
    const m = sampleLine.exec(line);
    assert.ok(m, `malformed sample line: ${line}`);
    const [, name, labelText, valueText] = m;
    const family = familyOf(name, types);
    assert.ok(types.has(family), `no TYPE for ${name}`);
    assert.ok(helps.has(family), `no HELP for ${name}`);
    const labels = labelText === undefined ? {} : parseLabels(labelText, line);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    assert.ok(!seen.has(key), `duplicate series: ${line}`);
    seen.add(key);
    samples.push({ name, labels, value: parseValue(valueText, line) });
  }
  return { samples, types, helps };
}

/** The value of the one sample of `name` whose labels include `labels`. */
function sampleValue(e: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const found = e.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  assert.ok(found.length <= 1, `several samples of ${name} match ${JSON.stringify(labels)}`);
  return found[0]?.value;
}

/** A peer id with every character that label values must escape. */
const ODD_PEER = 'n"3\\x\ny';

function leaderStatus(): NodeStatus {
  return {
    id: 'n1',
    pid: 4242,
    logEntries: 100,
    logBytes: 13_200,
    logDiskBytes: 67_108_864,
    role: Role.Leader,
    term: 7,
    leader: 'n1',
    commitIndex: 95,
    appliedIndex: 94,
    lastIndex: 100,
    durableIndex: 99,
    voters: ['n1', 'n2', ODD_PEER],
    learners: [],
    votersOutgoing: [],
    snapshotIndex: 50,
    snapshotTerm: 6,
    firstIndex: 41,
    peers: [
      { id: 'n2', address: '127.0.0.1:7002', connected: true, matchIndex: 90, lastAckAgoMs: 250 },
      { id: ODD_PEER, address: '127.0.0.1:7003', connected: false, matchIndex: 40, lastAckAgoMs: null },
    ],
    pendingApplies: 3,
    logWindow: { usedBytes: 4096, capacityBytes: 65536, overflowEntries: 2 },
    stateMachineError: null,
    fatal: null,
    stats: {
      fsyncs: 10,
      entriesWritten: 250,
      appendEntriesSent: 40,
      entriesSent: 400,
      segmentMessagesSent: 1,
      applyBatches: 12,
      ringSleeps: 33,
      // A field added by a later version: it must show up without a code change.
      elections: 3,
    } as NodeStatus['stats'],
    memory: {
      rssBytes: 150_000_000,
      heapUsedBytes: 40_000_000,
      heapTotalBytes: 60_000_000,
      arrayBuffersBytes: 90_000_000,
      entryObjects: 16_384,
      entryPayloadBytes: 1_000_000,
    },
  };
}

function histogramOf(valuesUs: number[]): Histogram {
  const h = createLatencyHistogram();
  for (const v of valuesUs) h.recordValue(v);
  return h;
}

/** A source whose answers the tests change as they go. */
class FakeSource implements MetricsSource {
  current: NodeStatus = leaderStatus();
  fail: string | null = null;
  failHistograms = false;
  readonly fsync = histogramOf([100, 200, 300, 400, 5000]);
  readonly durable = histogramOf(Array.from({ length: 1000 }, (_, i) => (i + 1) * 10));

  status(): NodeStatus {
    if (this.fail !== null) throw new Error(this.fail);
    return this.current;
  }

  histograms(): Record<string, Histogram | { stage: string; histogram: Histogram }> {
    if (this.failHistograms) throw new TypeError('histograms broke');
    return {
      fsync: this.fsync,
      durable: { stage: 'propose→durable', histogram: this.durable },
      empty: createLatencyHistogram(),
    };
  }
}

const source = new FakeSource();
const server = new MetricsServer({ host: '127.0.0.1', port: 0, source });
const { host, port } = await server.listen();
after(() => server.close());
const base = `http://${host}:${port}`;

async function scrape(): Promise<Exposition> {
  const res = await fetch(`${base}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

test('listen reports the bound address', () => {
  assert.equal(host, '127.0.0.1');
  assert.ok(port > 0);
});

test('/metrics: node gauges and counters', async () => {
  source.current = leaderStatus();
  const e = await scrape();
  assert.equal(sampleValue(e, 'raftline_role', { role: 'Leader' }), 1);
  for (const r of [Role.Follower, Role.PreCandidate, Role.Candidate])
    assert.equal(sampleValue(e, 'raftline_role', { role: r }), 0);
  assert.equal(sampleValue(e, 'raftline_term'), 7);
  assert.equal(sampleValue(e, 'raftline_commit_index'), 95);
  assert.equal(sampleValue(e, 'raftline_applied_index'), 94);
  assert.equal(sampleValue(e, 'raftline_durable_index'), 99);
  assert.equal(sampleValue(e, 'raftline_last_index'), 100);
  assert.equal(sampleValue(e, 'raftline_is_leader'), 1);
  assert.equal(sampleValue(e, 'raftline_log_entries'), 100);
  assert.equal(sampleValue(e, 'raftline_log_bytes'), 13_200);
  assert.equal(sampleValue(e, 'raftline_log_disk_bytes'), 67_108_864);
  assert.equal(sampleValue(e, 'raftline_pending_applies'), 3);
  assert.equal(sampleValue(e, 'process_resident_memory_bytes'), 150_000_000);
  assert.equal(sampleValue(e, 'nodejs_heap_size_used_bytes'), 40_000_000);
  assert.equal(sampleValue(e, 'nodejs_heap_size_total_bytes'), 60_000_000);
  assert.equal(sampleValue(e, 'raftline_array_buffers_bytes'), 90_000_000);
  assert.equal(sampleValue(e, 'raftline_entry_objects'), 16_384);
  assert.equal(sampleValue(e, 'raftline_entry_payload_bytes'), 1_000_000);
  assert.equal(sampleValue(e, 'raftline_log_window_used_bytes'), 4096);
  assert.equal(sampleValue(e, 'raftline_log_window_capacity_bytes'), 65536);
  assert.equal(sampleValue(e, 'raftline_log_window_overflow_entries'), 2);
  assert.equal(sampleValue(e, 'raftline_state_machine_failed'), 0);

  const counters: Record<string, number> = {
    raftline_fsyncs_total: 10,
    raftline_entries_written_total: 250,
    raftline_append_entries_sent_total: 40,
    raftline_entries_sent_total: 400,
    raftline_segment_messages_sent_total: 1,
    raftline_apply_batches_total: 12,
    raftline_ring_sleeps_total: 33,
    raftline_elections_total: 3,
  };
  for (const [name, value] of Object.entries(counters)) {
    assert.equal(e.types.get(name), 'counter', name);
    assert.equal(sampleValue(e, name), value, name);
  }
  assert.equal(sampleValue(e, 'raftline_entries_per_fsync'), 25);
  assert.equal(sampleValue(e, 'raftline_entries_per_append_entries'), 10);
  assert.equal(e.types.get('raftline_term'), 'gauge');
});

test('/metrics: counters follow the source between scrapes', async () => {
  source.current = leaderStatus();
  await scrape();
  source.current = { ...leaderStatus(), stats: { ...leaderStatus().stats, fsyncs: 20 } };
  const e = await scrape();
  assert.equal(sampleValue(e, 'raftline_fsyncs_total'), 20);
  assert.equal(sampleValue(e, 'raftline_entries_per_fsync'), 12.5);
});

test('/metrics: per-peer gauges, with label values escaped', async () => {
  source.current = leaderStatus();
  const e = await scrape();
  assert.equal(sampleValue(e, 'raftline_peer_match_index', { peer: 'n2' }), 90);
  assert.equal(sampleValue(e, 'raftline_peer_match_index', { peer: ODD_PEER }), 40);
  assert.equal(sampleValue(e, 'raftline_peer_lag_entries', { peer: 'n2' }), 10);
  assert.equal(sampleValue(e, 'raftline_peer_lag_entries', { peer: ODD_PEER }), 60);
  assert.equal(sampleValue(e, 'raftline_peer_connected', { peer: 'n2' }), 1);
  assert.equal(sampleValue(e, 'raftline_peer_connected', { peer: ODD_PEER }), 0);
  assert.equal(sampleValue(e, 'raftline_peer_last_ack_seconds', { peer: 'n2' }), 0.25);
  // Never acknowledged: no sample rather than a made-up number.
  assert.equal(sampleValue(e, 'raftline_peer_last_ack_seconds', { peer: ODD_PEER }), undefined);
});

test('/metrics: a follower has no lag, removed peers disappear, missing fields are absent', async () => {
  const s = leaderStatus();
  const { stats: _stats, logWindow: _window, ...rest } = s;
  source.current = {
    ...rest,
    role: Role.Follower,
    leader: 'n2',
    peers: [s.peers[0]],
    // A source of another version: no stats, no logWindow, an unknown extra field.
    extra: { nested: true },
  } as unknown as NodeStatus;
  const e = await scrape();
  assert.equal(sampleValue(e, 'raftline_role', { role: 'Follower' }), 1);
  assert.equal(sampleValue(e, 'raftline_role', { role: 'Leader' }), 0);
  assert.equal(sampleValue(e, 'raftline_is_leader'), 0);
  assert.equal(sampleValue(e, 'raftline_peer_lag_entries', { peer: 'n2' }), undefined);
  assert.equal(sampleValue(e, 'raftline_peer_match_index', { peer: 'n2' }), 90);
  assert.equal(sampleValue(e, 'raftline_peer_match_index', { peer: ODD_PEER }), undefined);
  assert.equal(sampleValue(e, 'raftline_fsyncs_total'), undefined);
  assert.equal(sampleValue(e, 'raftline_entries_per_fsync'), undefined);
  assert.equal(sampleValue(e, 'raftline_log_window_used_bytes'), undefined);
  // The families are still declared, so dashboards see the metric exists.
  assert.equal(e.types.get('raftline_fsyncs_total'), 'counter');
  assert.equal(sampleValue(e, 'raftline_term'), 7);
});

test('/metrics: an unknown role still shows up', async () => {
  source.current = { ...leaderStatus(), role: 'Witness' as Role };
  const e = await scrape();
  assert.equal(sampleValue(e, 'raftline_role', { role: 'Witness' }), 1);
  assert.equal(sampleValue(e, 'raftline_role', { role: 'Leader' }), 0);
});

test('/metrics: stage latencies from the HDR histograms, in seconds', async () => {
  source.current = leaderStatus();
  const e = await scrape();
  const name = 'raftline_stage_latency_seconds';
  for (const [stage, h] of [
    ['fsync', source.fsync],
    ['propose→durable', source.durable],
  ] as const) {
    for (const [quantile, percentile] of [
      ['0.5', 50],
      ['0.9', 90],
      ['0.99', 99],
      ['0.999', 99.9],
    ] as const) {
      assert.equal(sampleValue(e, name, { stage, quantile }), h.getValueAtPercentile(percentile) / 1e6);
    }
    assert.equal(sampleValue(e, `${name}_count`, { stage }), h.totalCount);
  }
  assert.equal(sampleValue(e, `${name}_count`, { stage: 'fsync' }), 5);
  // The sum comes from the HDR mean: exact to the histogram's 0.1 %.
  const sum = sampleValue(e, `${name}_sum`, { stage: 'fsync' }) ?? Number.NaN;
  assert.ok(Math.abs(sum - 0.006) < 0.006 * 1e-3, `sum ${sum}`);
  assert.ok(
    Math.abs((sampleValue(e, name, { stage: 'propose→durable', quantile: '0.5' }) ?? 0) - 0.005) < 1e-5,
  );
  // An empty histogram has a count of 0 and no quantiles.
  assert.equal(sampleValue(e, `${name}_count`, { stage: 'empty' }), 0);
  assert.equal(sampleValue(e, `${name}_sum`, { stage: 'empty' }), 0);
  assert.equal(sampleValue(e, name, { stage: 'empty', quantile: '0.5' }), undefined);
});

test('/status answers the status as JSON', async () => {
  source.current = leaderStatus();
  const res = await fetch(`${base}/status`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.deepEqual(await res.json(), JSON.parse(JSON.stringify(leaderStatus())));
});

test('anything else is 404; other methods are 405', async () => {
  for (const path of ['/', '/metrics/', '/nope', '/status.json']) {
    const res = await fetch(`${base}${path}`);
    assert.equal(res.status, 404, path);
    await res.text();
  }
  const res = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
  assert.equal(res.status, 405);
  assert.equal(res.headers.get('allow'), 'GET, HEAD');
  await res.text();
  // A query string does not change the path.
  const query = await fetch(`${base}/metrics?debug=1`);
  assert.equal(query.status, 200);
  await query.text();
});

test('a throwing source answers 500 and the server keeps serving', async () => {
  source.fail = 'status exploded';
  try {
    for (const path of ['/metrics', '/status']) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 500, path);
      assert.equal(await res.text(), 'status exploded\n');
    }
  } finally {
    source.fail = null;
  }
  source.failHistograms = true;
  try {
    const res = await fetch(`${base}/metrics`);
    assert.equal(res.status, 500);
    assert.equal(await res.text(), 'histograms broke\n');
  } finally {
    source.failHistograms = false;
  }
  // Scrapes after the failures are whole again.
  const e = await scrape();
  assert.equal(sampleValue(e, 'raftline_term'), 7);
  assert.equal((await fetch(`${base}/status`)).status, 200);
});

test('concurrent scrapes each see one consistent reading', async () => {
  let term = 0;
  const counting: MetricsSource = {
    status: () => ({ ...leaderStatus(), term: ++term, commitIndex: term }),
  };
  const s = new MetricsServer({ host: '127.0.0.1', port: 0, source: counting });
  const a = await s.listen();
  try {
    const texts = await Promise.all(
      Array.from({ length: 8 }, () => fetch(`http://${a.host}:${a.port}/metrics`).then((r) => r.text())),
    );
    const terms = texts.map((t) => {
      const e = parseExposition(t);
      assert.equal(sampleValue(e, 'raftline_term'), sampleValue(e, 'raftline_commit_index'));
      // No histograms(): the latency families are declared but empty.
      assert.equal(e.samples.filter((x) => x.name.startsWith('raftline_stage_latency')).length, 0);
      return sampleValue(e, 'raftline_term');
    });
    assert.deepEqual(
      [...terms].sort((x, y) => (x ?? 0) - (y ?? 0)),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
  } finally {
    await s.close();
  }
});

test('several servers in one process keep separate registries', async () => {
  const other = new MetricsServer({
    host: '127.0.0.1',
    port: 0,
    source: { status: () => ({ ...leaderStatus(), term: 99 }) },
  });
  const a = await other.listen();
  try {
    const mine = await scrape();
    const theirs = parseExposition(await (await fetch(`http://${a.host}:${a.port}/metrics`)).text());
    assert.equal(sampleValue(mine, 'raftline_term'), 7);
    assert.equal(sampleValue(theirs, 'raftline_term'), 99);
  } finally {
    await other.close();
  }
  // Closing twice, or a server that never listened, is harmless.
  await other.close();
  await new MetricsServer({ host: '127.0.0.1', port: 0, source }).close();
});

test('the parser rejects malformed exposition', () => {
  const good = '# HELP a_b x\n# TYPE a_b gauge\na_b{l="v"} 1\n';
  assert.doesNotThrow(() => parseExposition(good));
  for (const bad of [
    'a_b 1\n',
    '# TYPE a_b gauge\na_b 1\n',
    '# HELP a_b x\n# TYPE a_b gauge\na_b{l="v} 1\n',
    '# HELP a_b x\n# TYPE a_b gauge\na_b{l="a\\q"} 1\n',
    '# HELP a_b x\n# TYPE a_b gauge\na_b{l="v"} one\n',
    '# HELP a_b x\n# TYPE a_b gauge\na_b 1\na_b 2\n',
    '# HELP a_b x\n# TYPE a_b gauge\na_b 1',
  ]) {
    assert.throws(() => parseExposition(bad), JSON.stringify(bad));
  }
});
