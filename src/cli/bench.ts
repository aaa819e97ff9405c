/**
 * `raftline bench`: drive a cluster as hard as it goes (or at a fixed rate) and report
 * the latency. Without `--cluster` it starts a local 3-node cluster (fsync on, temporary
 * data directories, removed afterwards). The load comes from a piscina pool of client
 * threads; each records its own HDR histogram, and they are merged here. The leader's own
 * histograms (propose → durable → committed → applied, fsync, replication) are read
 * before and after the measured interval and subtracted.
 */

import fs from 'node:fs';
import os from 'node:os';
import { MessageChannel } from 'node:worker_threads';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import type { Histogram } from 'hdr-histogram-js';
import { Piscina } from 'piscina';
import { RaftClient } from '../client/raft-client.js';
import type { Value } from '../main/state-machine.js';
import { ADMIN_SECRET_ENV, clientSecretOptions, SECRET_ENV } from '../shared/auth.js';
import { decodeHistogram, mergeHistograms } from '../shared/histogram.js';
import { clientTlsOption } from '../shared/tls-config.js';
import type { BenchTask, BenchWorkerResult } from './bench-worker.js';
import { waitForLeader } from './cluster-status.js';
import { LocalCluster } from './local-cluster.js';
import type { BenchRun } from './report/bench-run.js';
import { formatHgrm } from './report/hgrm.js';
import { renderHtmlReport } from './report/html-report.js';
import { toJsonReport } from './report/json-report.js';
import { formatSummary } from './report/summary-table.js';

/** `bench`'s options as commander parses them. */
export interface BenchOptions {
  cluster?: string;
  clusterId: string;
  secretFile?: string;
  adminSecretFile?: string;
  tlsCa?: string;
  duration: string;
  warmup: string;
  connections: string;
  pipeline: string;
  batch: string;
  valueSize: string;
  keys: string;
  readRatio: string;
  rate?: string;
  threads?: string;
  sync: boolean;
  json?: string;
  hgrm?: string;
  report?: string;
  showLogs: boolean;
}

/** Adds `bench` to the program. */
export function addBenchCommand(program: Command): void {
  program
    .command('bench')
    .description(
      'load a cluster and report throughput and latency (starts a local 3-node cluster without --cluster)',
    )
    .option('--cluster <list>', 'an existing cluster: host:port,host:port,...')
    .option('--cluster-id <id>', 'the cluster id', 'raftline')
    .option('--secret-file <file>', `the cluster secret, if the nodes have one (default: $${SECRET_ENV})`)
    .option(
      '--admin-secret-file <file>',
      `the admin secret, if the nodes have one (default: $${ADMIN_SECRET_ENV})`,
    )
    .option('--tls-ca <file>', 'the nodes listen with TLS: the CA that signed their certificates (PEM)')
    .option('--duration <s>', 'measured seconds', '10')
    .option('--warmup <s>', 'seconds of load before measuring', '2')
    .option('--connections <n>', 'client connections', '8')
    .option('--pipeline <n>', 'requests in flight per connection', '32')
    .option('--batch <n>', 'commands per request (one log entry per request)', '1')
    .option('--value-size <bytes>', 'bytes of each value put', '16')
    .option('--keys <n>', 'distinct keys', '10000')
    .option('--read-ratio <r>', 'share of requests that are linearizable reads, 0..1', '0')
    .option(
      '--rate <req/s>',
      'open loop at this many requests per second (latency from the intended send time)',
    )
    .option('--threads <n>', 'client threads (default: min(connections, cores))')
    .option('--no-sync', 'local cluster only: start the nodes without fdatasync')
    .option('--json <file>', 'write the results as JSON')
    .option('--hgrm <file>', 'write the latency distribution in HdrHistogram .hgrm text')
    .option('--report <file>', 'write a self-contained HTML report')
    .option('--show-logs', 'local cluster only: show the nodes log lines', false)
    .action(async (o: BenchOptions) => {
      await bench(o);
    });
}

function positive(name: string, v: string, integer = true, allowZero = false): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (!allowZero && n === 0) || (integer && !Number.isInteger(n))) {
    throw Object.assign(new Error(`--${name}: expected a ${integer ? 'whole ' : ''}number > 0, got ${v}`), {
      code: 'ERR_RAFT_INVALID_OPTION',
    });
  }
  return n;
}

async function bench(o: BenchOptions): Promise<void> {
  const durationS = positive('duration', o.duration, false);
  const warmupS = positive('warmup', o.warmup, false, true);
  const connections = positive('connections', o.connections);
  const pipeline = positive('pipeline', o.pipeline);
  const batch = positive('batch', o.batch);
  const valueSize = positive('value-size', o.valueSize, true, true);
  const keys = positive('keys', o.keys);
  const readRatio = positive('read-ratio', o.readRatio, false, true);
  if (readRatio > 1)
    throw Object.assign(new Error('--read-ratio: must be 0..1'), { code: 'ERR_RAFT_INVALID_OPTION' });
  const rate = o.rate !== undefined ? positive('rate', o.rate, false) : 0;
  const threads =
    o.threads !== undefined
      ? positive('threads', o.threads)
      : Math.min(connections, os.availableParallelism());

  let local: LocalCluster | null = null;
  let endpoints: string[];
  if (o.cluster) {
    endpoints = o.cluster.split(',').filter((e) => e.length > 0);
  } else {
    process.stderr.write(`starting a local 3-node cluster (fsync ${o.sync ? 'on' : 'off'})...\n`);
    local = await LocalCluster.start({
      nodes: 3,
      fsm: 'kv',
      sync: o.sync,
      electionTimeoutMs: 1000,
      heartbeatIntervalMs: 100,
      logLevel: 'warn',
      clusterId: o.clusterId,
      showLogs: o.showLogs,
    });
    endpoints = local.endpoints;
  }
  const secrets = clientSecretOptions(o);
  const tlsOption = clientTlsOption(o);
  const admin = new RaftClient({ endpoints, clusterId: o.clusterId, ...secrets, ...tlsOption });
  let pool: Piscina | null = null;
  try {
    const leader = await waitForLeader(admin, endpoints, 20_000);
    process.stderr.write(`leader ${leader.id} at ${leader.address}\n`);
    const config: Record<string, string | number | boolean> = {
      cluster: o.cluster ?? 'local 3-node cluster (fsm kv)',
      sync: o.cluster ? 'as the cluster runs' : o.sync,
      durationS,
      warmupS,
      connections,
      pipeline,
      batch,
      valueSizeBytes: valueSize,
      keys,
      readRatio,
      rate: rate > 0 ? rate : 'closed loop',
      clientThreads: threads,
      node: process.version,
      cpus: os.availableParallelism(),
    };

    pool = new Piscina({
      filename: new URL('./bench-worker.js', import.meta.url).href,
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 1000,
    });
    const timeline: { tMs: number; requests: number; commands: number }[] = [];
    const startMs = performance.now();
    const totalS = warmupS + durationS;
    const bar = new cliProgress.SingleBar(
      {
        format: 'bench |{bar}| {value}/{total} s | {rps} req/s | {cps} cmd/s',
        noTTYOutput: true,
        notTTYSchedule: 1000,
        hideCursor: true,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(Math.ceil(totalS), 0, { rps: 0, cps: 0 });
    const onProgress = (p: { requests: number; commands: number }): void => {
      const second = Math.floor((performance.now() - startMs) / 1000);
      while (timeline.length <= second)
        timeline.push({ tMs: timeline.length * 1000, requests: 0, commands: 0 });
      const slot = timeline[second] as { requests: number; commands: number };
      slot.requests += p.requests;
      slot.commands += p.commands;
    };
    const ticker = setInterval(() => {
      const second = Math.floor((performance.now() - startMs) / 1000);
      const last = timeline[second - 1];
      bar.update(Math.min(second, Math.ceil(totalS)), { rps: last?.requests ?? 0, cps: last?.commands ?? 0 });
    }, 250);

    let before: Record<string, Histogram> = {};
    const beforeTimer = setTimeout(async () => {
      before = await serverHistograms(admin, leader.address).catch(() => ({}));
    }, warmupS * 1000);
    const perThreadConnections = split(connections, threads);
    const tasks = perThreadConnections.map((n, i) => {
      const { port1, port2 } = new MessageChannel();
      port1.on('message', onProgress);
      const task: BenchTask = {
        endpoints: [leader.address, ...endpoints.filter((e) => e !== leader.address)],
        clusterId: o.clusterId,
        ...(secrets.secret !== undefined ? { secret: secrets.secret } : {}),
        ...(tlsOption.tls !== undefined ? { tlsCa: tlsOption.tls.ca } : {}),
        connections: n,
        pipeline,
        batch,
        valueSize,
        keys,
        readRatio,
        ratePerSec: rate > 0 ? (rate * n) / connections : 0,
        warmupMs: warmupS * 1000,
        durationMs: durationS * 1000,
        requestTimeoutMs: 10_000,
        seed: 1 + i,
        progress: port2,
      };
      return (pool as Piscina)
        .run(task, { transferList: [port2] })
        .finally(() => port1.close()) as Promise<BenchWorkerResult>;
    });
    const results = await Promise.all(tasks);
    clearTimeout(beforeTimer);
    clearInterval(ticker);
    bar.update(Math.ceil(totalS));
    bar.stop();
    const after = await serverHistograms(admin, leader.address).catch(
      () => ({}) as Record<string, Histogram>,
    );
    const leaderStatus = (await admin.statusOf(leader.address)) as Record<string, Value>;

    const errors: Record<string, number> = {};
    for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    const latency = mergeHistograms(results.map((r) => decodeHistogram(r.histogram)));
    const server: BenchRun['server'] = { histograms: {}, figures: serverFigures(leaderStatus) };
    for (const [name, h] of Object.entries(after)) {
      const b = before[name];
      if (b) h.subtract(b);
      if (h.totalCount > 0) (server as { histograms: Record<string, Histogram> }).histograms[name] = h;
    }
    const run: BenchRun = {
      config,
      startedAt: new Date(Date.now() - (performance.now() - startMs)).toISOString(),
      durationS,
      requests: results.reduce((s, r) => s + r.requests, 0),
      commands: results.reduce((s, r) => s + r.commands, 0),
      errors,
      latency,
      // Only the measured seconds: the warm-up's are the ramp, not the result.
      timeline: timeline
        .filter((t) => t.tMs >= warmupS * 1000)
        .map((t) => ({ ...t, tMs: t.tMs - warmupS * 1000 })),
      server,
    };
    process.stdout.write(`${formatSummary(run)}\n`);
    if (o.json) fs.writeFileSync(o.json, `${JSON.stringify(toJsonReport(run), null, 2)}\n`);
    if (o.hgrm) fs.writeFileSync(o.hgrm, formatHgrm(latency));
    if (o.report) {
      fs.writeFileSync(o.report, renderHtmlReport(run));
      process.stderr.write(`report written to ${o.report}\n`);
    }
  } finally {
    await pool?.destroy();
    await admin.close();
    await local?.stop();
  }
}

/** `total` split into `parts` nearly equal whole shares, none zero. */
function split(total: number, parts: number): number[] {
  const n = Math.min(parts, total);
  return Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
}

/** The leader's latency histograms, decoded. */
async function serverHistograms(client: RaftClient, endpoint: string): Promise<Record<string, Histogram>> {
  const s = (await client.statusOf(endpoint)) as { histograms?: Record<string, string> };
  const out: Record<string, Histogram> = {};
  for (const [name, encoded] of Object.entries(s.histograms ?? {})) out[name] = decodeHistogram(encoded);
  return out;
}

/** Batching figures from the leader's counters (over its whole life, warm-up included). */
function serverFigures(status: Record<string, Value>): Record<string, number> {
  const s = (status.stats ?? {}) as Record<string, number>;
  const perOr0 = (a: number | undefined, b: number | undefined): number => (a && b ? a / b : 0);
  return {
    'entries per fsync': perOr0(s.entriesWritten, s.fsyncs),
    'entries per AppendEntries': perOr0(s.entriesSent, s.appendEntriesSent),
    'entries per apply batch': perOr0(status.appliedIndex as number, s.applyBatches),
    'ring wake-ups per entry': perOr0(s.ringSleeps, s.entriesWritten),
  };
}
