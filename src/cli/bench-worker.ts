/**
 * One thread of `raftline bench`'s load (a piscina task): `connections` RaftClients, each
 * keeping `pipeline` requests in flight (closed loop), or sending at a fixed rate (open
 * loop, latency taken from the intended send time so a stall is not hidden by the
 * requests it kept from being sent: coordinated omission). Latencies go into this
 * thread's own HDR histogram, returned encoded; the manager merges them. Progress goes
 * to the manager once a second through a MessagePort.
 */

import type { MessagePort } from 'node:worker_threads';
import { kvCommand } from '../../examples/kv.js';
import { RaftClient } from '../client/raft-client.js';
import { Rng } from '../raft/rng.js';
import { createLatencyHistogram, encodeHistogram } from '../shared/histogram.js';

/** What the manager asks of one worker thread. */
export interface BenchTask {
  readonly endpoints: string[];
  readonly clusterId: string;
  /** The cluster secret's bytes, when the nodes have one. */
  readonly secret?: Uint8Array;
  /** The CA (PEM) the nodes' TLS certificates are checked against, when they listen with TLS. */
  readonly tlsCa?: Uint8Array;
  readonly connections: number;
  readonly pipeline: number;
  readonly batch: number;
  readonly valueSize: number;
  readonly keys: number;
  readonly readRatio: number;
  /** Requests per second for this worker (open loop); 0 for a closed loop. */
  readonly ratePerSec: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly requestTimeoutMs: number;
  readonly seed: number;
  readonly progress: MessagePort;
}

/** What one worker thread measured (after the warm-up). */
export interface BenchWorkerResult {
  readonly requests: number;
  readonly commands: number;
  readonly errors: Record<string, number>;
  /** The latency histogram (µs), encoded. */
  readonly histogram: string;
}

/** Requests built once and reused, so the load loop measures the cluster, not the encoder. */
const COMMAND_POOL = 1024;

export default async function run(task: BenchTask): Promise<BenchWorkerResult> {
  const rng = new Rng(task.seed);
  const random = (): number => rng.nextU32() / 0x1_0000_0000;
  const value = 'v'.repeat(task.valueSize);
  const commands: Uint8Array[] = [];
  for (let i = 0; i < COMMAND_POOL; i++) {
    commands.push(kvCommand({ op: 'put', key: `k${Math.floor(random() * task.keys)}`, value }));
  }
  const batches: Uint8Array[][] = [];
  for (let i = 0; i < COMMAND_POOL; i++) {
    const b: Uint8Array[] = [];
    for (let j = 0; j < task.batch; j++) b.push(commands[(i + j * 7) % COMMAND_POOL] as Uint8Array);
    batches.push(b);
  }
  const clients: RaftClient[] = [];
  for (let i = 0; i < task.connections; i++) {
    const c = new RaftClient({
      endpoints: task.endpoints,
      clusterId: task.clusterId,
      requestTimeoutMs: task.requestTimeoutMs,
      ...(task.secret !== undefined ? { secret: task.secret } : {}),
      ...(task.tlsCa !== undefined ? { tls: { ca: task.tlsCa } } : {}),
    });
    await c.connect();
    clients.push(c);
  }
  const histogram = createLatencyHistogram();
  const errors: Record<string, number> = {};
  let requests = 0;
  let commandsDone = 0;
  // Progress counts every completed request, warm-up included: it is the live view.
  let liveRequests = 0;
  let liveCommands = 0;
  let reportedRequests = 0;
  let reportedCommands = 0;
  const startMs = performance.now();
  const measureFromMs = startMs + task.warmupMs;
  const stopMs = measureFromMs + task.durationMs;
  const progressTimer = setInterval(() => {
    task.progress.postMessage({
      requests: liveRequests - reportedRequests,
      commands: liveCommands - reportedCommands,
    });
    reportedRequests = liveRequests;
    reportedCommands = liveCommands;
  }, 250);

  let seq = 0;
  /** One request; latency from `sentMs` (the intended send time in an open loop). */
  const once = async (client: RaftClient, sentMs: number): Promise<void> => {
    const i = seq++ % COMMAND_POOL;
    const isRead = task.readRatio > 0 && random() < task.readRatio;
    let n = 1;
    try {
      if (isRead) {
        await client.read(
          { op: 'get', key: `k${Math.floor(random() * task.keys)}` },
          { consistency: 'linearizable' },
        );
      } else if (task.batch > 1) {
        await client.applyBatch(batches[i] as Uint8Array[]);
        n = task.batch;
      } else {
        await client.apply(commands[i] as Uint8Array);
      }
      const now = performance.now();
      liveRequests++;
      liveCommands += n;
      if (sentMs >= measureFromMs && now <= stopMs + task.requestTimeoutMs) {
        histogram.recordValue(Math.max(1, Math.round((now - sentMs) * 1000)));
        requests++;
        commandsDone += n;
      }
    } catch (err) {
      if (sentMs >= measureFromMs) {
        const code = (err as { code?: string }).code ?? 'ERR_UNKNOWN';
        errors[code] = (errors[code] ?? 0) + 1;
      }
    }
  };

  const loops: Promise<void>[] = [];
  if (task.ratePerSec > 0) {
    // Open loop: request k is due at startMs + k / rate, whatever happened to the others.
    const intervalMs = 1000 / task.ratePerSec;
    let k = 0;
    const inFlight = new Set<Promise<void>>();
    const maxInFlight = Math.max(1, task.connections * task.pipeline * 64);
    while (performance.now() < stopMs) {
      const dueMs = startMs + k * intervalMs;
      const now = performance.now();
      if (dueMs > now) {
        await new Promise((r) => setTimeout(r, Math.max(0, dueMs - now)));
        continue;
      }
      if (inFlight.size >= maxInFlight) {
        // Far behind: count what cannot even be sent as an error rather than queue without end.
        if (dueMs >= measureFromMs) errors.ERR_BENCH_BACKLOG = (errors.ERR_BENCH_BACKLOG ?? 0) + 1;
        k++;
        continue;
      }
      const p = once(clients[k % clients.length] as RaftClient, dueMs);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      k++;
    }
    loops.push(...inFlight);
  } else {
    for (const client of clients) {
      for (let j = 0; j < task.pipeline; j++) {
        loops.push(
          (async () => {
            while (performance.now() < stopMs) await once(client, performance.now());
          })(),
        );
      }
    }
  }
  await Promise.all(loops);
  clearInterval(progressTimer);
  task.progress.postMessage({
    requests: liveRequests - reportedRequests,
    commands: liveCommands - reportedCommands,
  });
  task.progress.close();
  await Promise.all(clients.map((c) => c.close()));
  return { requests, commands: commandsDone, errors, histogram: encodeHistogram(histogram) };
}
