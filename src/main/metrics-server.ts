/**
 * A small HTTP endpoint for operators: `GET /metrics` answers Prometheus text exposition
 * (format 0.0.4) built by prom-client, `GET /status` answers the node's status as JSON.
 *
 * Everything is read from the source when a scrape arrives (prom-client `collect()`
 * callbacks), never pushed from the hot path: a node that nobody scrapes pays nothing.
 * Each server owns a private `Registry` because tests run several nodes in one process,
 * and metrics registered in prom-client's global registry would collide between them.
 */

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Histogram } from 'hdr-histogram-js';
import { Counter, Gauge, Registry } from 'prom-client';
import { Role } from '../raft/types.js';
import type { NodeStats, NodeStatus } from './coordinator.js';
import type { TransportStatus } from './peer-server.js';

/** A latency histogram (microseconds) together with the stage name it is labelled with. */
export interface StageHistogram {
  readonly stage: string;
  readonly histogram: Histogram;
}

/**
 * Where a `MetricsServer` reads from; `RaftNode` is one. `histograms()` may return bare
 * histograms (the stage is then the record's key, as `RaftNode.histograms()` does) or
 * `{ stage, histogram }` pairs. Histogram values are microseconds, as everywhere in raftline.
 */
export interface MetricsSource {
  status(): NodeStatus;
  histograms?(): Record<string, Histogram | StageHistogram>;
}

/** Options of a `MetricsServer`. Port 0 picks a free port; `listen()` tells which. */
export interface MetricsServerOptions {
  readonly host: string;
  readonly port: number;
  readonly source: MetricsSource;
}

/** The quantiles exposed for every latency stage, as label value and HDR percentile. */
const QUANTILES: readonly (readonly [label: string, percentile: number])[] = [
  ['0.5', 50],
  ['0.9', 90],
  ['0.99', 99],
  ['0.999', 99.9],
];

/**
 * The `NodeStats` counters with fixed metric names. Stats fields added later (e.g.
 * `elections`) are not lost: `ensureExtraCounters` exposes them under a derived name.
 */
const STAT_COUNTERS: Readonly<Record<string, { name: string; help: string }>> = {
  fsyncs: { name: 'raftline_fsyncs_total', help: 'fdatasyncs done by the log writer since start' },
  entriesWritten: {
    name: 'raftline_entries_written_total',
    help: 'Log entries written by the log writer since start',
  },
  appendEntriesSent: {
    name: 'raftline_append_entries_sent_total',
    help: 'AppendEntries messages sent to followers since start',
  },
  entriesSent: {
    name: 'raftline_entries_sent_total',
    help: 'Log entries carried by AppendEntries messages since start',
  },
  segmentMessagesSent: {
    name: 'raftline_segment_messages_sent_total',
    help: 'AppendEntries whose entries were read from segment files (followers behind the log window)',
  },
  applyBatches: {
    name: 'raftline_apply_batches_total',
    help: 'onApply batches run by the state machine since start',
  },
  ringSleeps: {
    name: 'raftline_ring_sleeps_total',
    help: "Times one of the node's threads slept waiting on a ring (each costs a wake-up)",
  },
};

/** Prometheus metric names: what prom-client accepts, and what derived names must match. */
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/** A finite number, or undefined: status fields may be missing or of the wrong type in other versions. */
function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/**
 * Sets an unlabelled gauge, or removes its sample when the value is missing, so that a
 * field the source does not report shows up as absent rather than as a misleading 0.
 */
function setOrClear(gauge: Gauge, value: number | undefined): void {
  if (value === undefined) gauge.remove({});
  else gauge.set(value);
}

/** Same as `setOrClear` for a counter: prom-client counters cannot be set, only reset and increased. */
function setCounter(counter: Counter, value: number | undefined): void {
  counter.reset();
  // A negative value would throw inside prom-client; a counter going backwards is a source bug, not ours to crash on.
  if (value === undefined || value < 0) counter.remove({});
  else counter.inc(value);
}

/** `entriesWritten` → `raftline_entries_written_total`. */
function counterNameOf(key: string): string {
  const snake = key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^a-zA-Z0-9_]/g, '_')
    .toLowerCase();
  return `raftline_${snake}${snake.endsWith('_total') ? '' : '_total'}`;
}

/** The message of whatever was thrown, for a 500 answer. */
function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Serves `/metrics` (Prometheus) and `/status` (JSON) for one node. Errors thrown by the
 * source answer 500 with their message; they never reach the process.
 */
export class MetricsServer {
  private readonly opts: MetricsServerOptions;
  private readonly registry = new Registry();
  private readonly server: http.Server;
  /** The status read at the start of the current scrape: every collector sees the same one. */
  private snapshot: NodeStatus | null = null;
  private histogramSnapshot: [stage: string, histogram: Histogram][] = [];
  /** Scrapes run one after another, so one scrape's collectors never see another's snapshot. */
  private scrapes: Promise<unknown> = Promise.resolve();
  private readonly extraCounters = new Map<string, Counter>();
  private listening = false;

  constructor(opts: MetricsServerOptions) {
    this.opts = opts;
    this.registerMetrics();
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        // Only reached if writing the answer itself failed (e.g. the client went away).
        if (!res.headersSent) this.reply(res, 500, 'text/plain; charset=utf-8', `${messageOf(e)}\n`);
        else res.destroy();
      });
    });
    // An error on a live server (e.g. a socket failure) must not become an uncaught 'error' event.
    this.server.on('error', () => {});
  }

  /** Starts listening; resolves with the address actually bound (the port chosen when 0 was asked for). */
  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      this.server.once('error', onError);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', onError);
        this.listening = true;
        const a = this.server.address() as AddressInfo;
        resolve({ host: a.address, port: a.port });
      });
    });
  }

  /** Stops accepting connections and closes idle keep-alive ones; resolves once the server is down. */
  close(): Promise<void> {
    if (!this.listening) return Promise.resolve();
    this.listening = false;
    return new Promise((resolve, reject) => {
      this.server.close((e) => (e ? reject(e) : resolve()));
      // fetch() keeps connections alive: without this, close() waits for them to time out.
      this.server.closeIdleConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (path !== '/metrics' && path !== '/status') {
      this.reply(res, 404, 'text/plain; charset=utf-8', 'not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      this.reply(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    let body: string;
    try {
      body =
        path === '/metrics' ? await this.scrape() : `${JSON.stringify(this.opts.source.status(), null, 2)}\n`;
    } catch (e) {
      this.reply(res, 500, 'text/plain; charset=utf-8', `${messageOf(e)}\n`);
      return;
    }
    this.reply(
      res,
      200,
      path === '/metrics' ? this.registry.contentType : 'application/json; charset=utf-8',
      body,
    );
  }

  private reply(res: http.ServerResponse, code: number, type: string, body: string): void {
    res.statusCode = code;
    res.setHeader('Content-Type', type);
    res.setHeader('Content-Length', Buffer.byteLength(body));
    // Node drops the body of an answer to HEAD by itself.
    res.end(body);
  }

  /** One scrape: read the source once, then let prom-client run the collectors over that reading. */
  private scrape(): Promise<string> {
    const run = async (): Promise<string> => {
      const status = this.opts.source.status();
      const histograms = this.opts.source.histograms?.() ?? {};
      this.snapshot = status;
      this.histogramSnapshot = Object.entries(histograms).map(([key, h]) =>
        'histogram' in h && 'stage' in h ? [String(h.stage), h.histogram] : [key, h as Histogram],
      );
      this.ensureExtraCounters(status.stats);
      try {
        return await this.registry.metrics();
      } finally {
        this.snapshot = null;
        this.histogramSnapshot = [];
      }
    };
    const result = this.scrapes.then(run, run);
    this.scrapes = result.catch(() => {});
    return result;
  }

  /** Registers a counter for every numeric stats field without a fixed name, the first time it is seen. */
  private ensureExtraCounters(stats: NodeStats | undefined): void {
    if (typeof stats !== 'object' || stats === null) return;
    for (const [key, value] of Object.entries(stats)) {
      if (key in STAT_COUNTERS || this.extraCounters.has(key) || num(value) === undefined) continue;
      const name = counterNameOf(key);
      if (!METRIC_NAME.test(name) || this.registry.getSingleMetric(name)) continue;
      const counter: Counter = new Counter({
        name,
        help: `NodeStats.${key}: counted since start`,
        registers: [this.registry],
        collect: () =>
          setCounter(counter, num((this.snapshot?.stats as Record<string, unknown> | undefined)?.[key])),
      });
      this.extraCounters.set(key, counter);
    }
  }

  private registerMetrics(): void {
    const registers = [this.registry];
    const status = (): NodeStatus | null => this.snapshot;

    const role: Gauge<'role'> = new Gauge({
      name: 'raftline_role',
      help: "The node's Raft role: 1 for the current one, 0 for the others",
      labelNames: ['role'],
      registers,
      collect: () => {
        role.reset();
        const s = status();
        if (!s) return;
        const current = String(s.role);
        for (const r of Object.values(Role)) role.set({ role: r }, r === current ? 1 : 0);
        // A role this build does not know about still shows up.
        if (!(Object.values(Role) as string[]).includes(current)) role.set({ role: current }, 1);
      },
    });

    const simple = (name: string, help: string, read: (s: NodeStatus) => unknown): void => {
      const gauge: Gauge = new Gauge({
        name,
        help,
        registers,
        collect: () => {
          const s = status();
          setOrClear(gauge, s ? num(read(s)) : undefined);
        },
      });
    };
    simple('raftline_term', 'The current Raft term', (s) => s.term);
    simple('raftline_commit_index', 'The highest log index known to be committed', (s) => s.commitIndex);
    simple(
      'raftline_applied_index',
      'The highest log index applied by the state machine',
      (s) => s.appliedIndex,
    );
    simple('raftline_durable_index', 'The highest log index fsynced to local disk', (s) => s.durableIndex);
    simple('raftline_last_index', 'The index of the last entry in the local log', (s) => s.lastIndex);
    simple('raftline_is_leader', '1 if this node is the leader, else 0', (s) =>
      s.role === Role.Leader ? 1 : 0,
    );
    simple('raftline_log_entries', 'Entries in the log after the snapshot', (s) => s.logEntries);
    simple('raftline_log_bytes', 'Bytes of the log records in the segment files', (s) => s.logBytes);
    simple(
      'raftline_log_disk_bytes',
      'Bytes the segment files take on disk, preallocation included',
      (s) => s.logDiskBytes,
    );
    simple('raftline_pending_applies', 'Proposals and waiters not yet answered', (s) => s.pendingApplies);
    // Memory under the names prom-client's default metrics use, read from the status.
    simple('process_resident_memory_bytes', 'Resident memory size in bytes', (s) => s.memory?.rssBytes);
    simple(
      'nodejs_heap_size_used_bytes',
      "The main thread's heap in use, in bytes",
      (s) => s.memory?.heapUsedBytes,
    );
    simple(
      'nodejs_heap_size_total_bytes',
      "The main thread's heap size, in bytes",
      (s) => s.memory?.heapTotalBytes,
    );
    simple(
      'raftline_array_buffers_bytes',
      'Shared memory (rings, the log window) and other buffers outside the heaps, in bytes',
      (s) => s.memory?.arrayBuffersBytes,
    );
    simple(
      'raftline_entry_objects',
      'Log entries the core holds as objects (the others keep only term, type and size)',
      (s) => s.memory?.entryObjects,
    );
    simple(
      'raftline_entry_payload_bytes',
      'Payload bytes of the log entries the core holds as objects',
      (s) => s.memory?.entryPayloadBytes,
    );
    simple(
      'raftline_log_window_used_bytes',
      'Bytes of the shared log window in use',
      (s) => s.logWindow?.usedBytes,
    );
    simple(
      'raftline_log_window_capacity_bytes',
      'Capacity of the shared log window in bytes',
      (s) => s.logWindow?.capacityBytes,
    );
    simple(
      'raftline_log_window_overflow_entries',
      'Entries too large for the log window, sent inline instead',
      (s) => s.logWindow?.overflowEntries,
    );
    simple(
      'raftline_state_machine_failed',
      '1 if the state machine has thrown and the node stopped applying, else 0',
      (s) => (s.stateMachineError === undefined ? undefined : s.stateMachineError === null ? 0 : 1),
    );

    // Who may join (`RaftNode.status().transport`); absent from a bare coordinator status.
    const transport = (s: NodeStatus): TransportStatus | null | undefined =>
      (s as NodeStatus & { transport?: TransportStatus | null }).transport;
    const authFailures: Counter = new Counter({
      name: 'raftline_auth_failures_total',
      help: 'Connections refused for a missing or wrong proof of the cluster or admin secret',
      registers,
      collect: () => {
        const s = status();
        setCounter(authFailures, num(s ? transport(s)?.authFailures : undefined));
      },
    });
    const overLimit: Counter = new Counter({
      name: 'raftline_connections_over_limit_total',
      help: 'Connections closed as soon as accepted because maxConnections were open',
      registers,
      collect: () => {
        const s = status();
        setCounter(overLimit, num(s ? transport(s)?.connectionsOverLimit : undefined));
      },
    });
    simple(
      'raftline_connections_open',
      'Connections open on the listen port: peers, clients, snapshot streams and handshakes',
      (s) => transport(s)?.openConnections,
    );
    simple(
      'raftline_lease_reads_safe',
      '1 while every peer has our election timeout (lease reads allowed), 0 while they are served as ReadIndex',
      (s) => {
        const t = transport(s);
        return t === null || t === undefined ? undefined : t.leaseReadsSafe ? 1 : 0;
      },
    );

    for (const [key, { name, help }] of Object.entries(STAT_COUNTERS)) {
      const counter: Counter = new Counter({
        name,
        help,
        registers,
        collect: () =>
          setCounter(counter, num((status()?.stats as Record<string, unknown> | undefined)?.[key])),
      });
    }
    // Batching at a glance (DESIGN.md): how many entries each fdatasync and each AppendEntries carries.
    simple('raftline_entries_per_fsync', 'Entries written per fdatasync since start', (s) => {
      const fsyncs = num(s.stats?.fsyncs);
      const entries = num(s.stats?.entriesWritten);
      return fsyncs && entries !== undefined ? entries / fsyncs : undefined;
    });
    simple('raftline_entries_per_append_entries', 'Entries carried per AppendEntries since start', (s) => {
      const sent = num(s.stats?.appendEntriesSent);
      const entries = num(s.stats?.entriesSent);
      return sent && entries !== undefined ? entries / sent : undefined;
    });

    const perPeer = (
      name: string,
      help: string,
      read: (s: NodeStatus, p: NodeStatus['peers'][number]) => unknown,
    ): void => {
      const gauge: Gauge<'peer'> = new Gauge({
        name,
        help,
        labelNames: ['peer'],
        registers,
        collect: () => {
          // Peers come and go with membership changes: start from nothing so removed ones disappear.
          gauge.reset();
          const s = status();
          for (const p of s?.peers ?? []) {
            const v = num(read(s as NodeStatus, p));
            if (v !== undefined) gauge.set({ peer: String(p.id) }, v);
          }
        },
      });
    };
    perPeer(
      'raftline_peer_match_index',
      'The highest log index known to be replicated on the peer',
      (_s, p) => p.matchIndex,
    );
    perPeer('raftline_peer_lag_entries', 'Entries the peer is behind the leader (leader only)', (s, p) => {
      const last = num(s.lastIndex);
      const match = num(p.matchIndex);
      // Only a leader tracks match indexes; on a follower the difference means nothing.
      return s.role === Role.Leader && last !== undefined && match !== undefined
        ? Math.max(0, last - match)
        : undefined;
    });
    perPeer('raftline_peer_connected', '1 if the connection to the peer is up, else 0', (_s, p) =>
      typeof p.connected === 'boolean' ? (p.connected ? 1 : 0) : undefined,
    );
    perPeer(
      'raftline_peer_last_ack_seconds',
      'Seconds since the peer last acknowledged an AppendEntries',
      (_s, p) => {
        const ms = num(p.lastAckAgoMs);
        return ms === undefined ? undefined : ms / 1000;
      },
    );

    // Summary-like gauges: the HDR histograms cannot be fed into a prom-client Summary after the fact.
    const latency: Gauge<'stage' | 'quantile'> = new Gauge({
      name: 'raftline_stage_latency_seconds',
      help: 'Latency of each stage of a write, by quantile, since start (HDR histogram)',
      labelNames: ['stage', 'quantile'],
      registers,
      collect: () => {
        latency.reset();
        for (const [stage, h] of this.histogramSnapshot) {
          if (h.totalCount === 0) continue;
          for (const [quantile, percentile] of QUANTILES) {
            latency.set({ stage, quantile }, h.getValueAtPercentile(percentile) / 1e6);
          }
        }
      },
    });
    const count: Gauge<'stage'> = new Gauge({
      name: 'raftline_stage_latency_seconds_count',
      help: 'Latencies recorded for each stage since start',
      labelNames: ['stage'],
      registers,
      collect: () => {
        count.reset();
        for (const [stage, h] of this.histogramSnapshot) count.set({ stage }, h.totalCount);
      },
    });
    const sum: Gauge<'stage'> = new Gauge({
      name: 'raftline_stage_latency_seconds_sum',
      help: 'Sum of the latencies recorded for each stage since start (count × HDR mean, within 0.1 %)',
      labelNames: ['stage'],
      registers,
      collect: () => {
        sum.reset();
        for (const [stage, h] of this.histogramSnapshot) {
          sum.set({ stage }, h.totalCount === 0 ? 0 : (h.mean * h.totalCount) / 1e6);
        }
      },
    });
  }
}
