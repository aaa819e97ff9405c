/**
 * One thread of the etcd put load (a piscina task), shaped like one thread of `raftline
 * bench` (src/cli/bench-worker.ts) so that the two are measured the same way: a closed
 * loop of `pipeline` puts in flight on each of `connections` connections, 1024 requests
 * encoded up front and reused, a warm-up whose requests are not counted, then the
 * measured interval. A request counts when it was sent inside that interval; latency runs
 * from send to answer, in µs, into this thread's own HDR histogram (returned encoded,
 * merged by the manager).
 *
 * Two clients: `node-http2` (grpc-put.ts: a thin gRPC over node:http2) and `node-etcd3`
 * (the npm `etcd3` package over grpc-js, as ../shared/peers/etcd.sh uses it, loaded from
 * `etcd3Dir` rather than from this repository's dependencies).
 */

import { createRequire } from 'node:module';
import path from 'node:path';
import { createLatencyHistogram, encodeHistogram } from '../../src/shared/histogram.js';
import { encodePutFrame, GrpcPutConnection } from './grpc-put.js';

/** The Node load generators this worker can run. */
export type NodeEtcdClient = 'node-http2' | 'node-etcd3';

/** What the manager asks of one thread. */
export interface EtcdLoadTask {
  readonly client: NodeEtcdClient;
  readonly endpoint: string;
  readonly connections: number;
  readonly pipeline: number;
  readonly valueBytes: number;
  readonly keys: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly seed: number;
  /** A directory whose node_modules holds `etcd3` (for `node-etcd3`). */
  readonly etcd3Dir: string;
}

/** What one thread measured (after the warm-up). */
export interface EtcdLoadResult {
  readonly requests: number;
  readonly errors: Record<string, number>;
  /** The latency histogram (µs), encoded. */
  readonly histogram: string;
}

/** Requests built once and reused, as `raftline bench` does. */
const REQUEST_POOL = 1024;

/** One put on one connection: the only thing that differs between the clients. */
type Putter = { put(i: number): Promise<void>; close(): Promise<void> };

/** A small seeded generator (xorshift32), so threads draw different keys reproducibly. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x1_0000_0000;
  };
}

async function openPutters(task: EtcdLoadTask, keys: string[], value: Buffer): Promise<Putter[]> {
  const putters: Putter[] = [];
  if (task.client === 'node-http2') {
    const frames = keys.map((k) => encodePutFrame(Buffer.from(k), value));
    for (let i = 0; i < task.connections; i++) {
      const c = await GrpcPutConnection.connect(task.endpoint);
      putters.push({ put: (j) => c.put(frames[j] as Buffer), close: () => c.close() });
    }
  } else {
    const require = createRequire(path.join(task.etcd3Dir, 'package.json'));
    const { Etcd3 } = require('etcd3') as {
      Etcd3: new (o: {
        hosts: string[];
        dialTimeout: number;
      }) => { put(k: string): { value(v: Buffer): Promise<unknown> }; close(): void };
    };
    for (let i = 0; i < task.connections; i++) {
      // Each Etcd3 object is its own gRPC channel.
      const c = new Etcd3({ hosts: [task.endpoint], dialTimeout: 3000 });
      await c.put('warmup').value(Buffer.from('x'));
      putters.push({
        put: (j) => c.put(keys[j] as string).value(value) as Promise<unknown> as Promise<void>,
        close: async () => c.close(),
      });
    }
  }
  return putters;
}

export default async function run(task: EtcdLoadTask): Promise<EtcdLoadResult> {
  const random = rng(task.seed * 0x9e3779b1);
  const keys: string[] = [];
  for (let i = 0; i < REQUEST_POOL; i++) keys.push(`k${Math.floor(random() * task.keys)}`);
  const value = Buffer.alloc(task.valueBytes, 'v');
  const putters = await openPutters(task, keys, value);

  const histogram = createLatencyHistogram();
  const errors: Record<string, number> = {};
  let requests = 0;
  let seq = 0;
  const startMs = performance.now();
  const measureFromMs = startMs + task.warmupMs;
  const stopMs = measureFromMs + task.durationMs;
  const once = async (p: Putter): Promise<void> => {
    const sentMs = performance.now();
    try {
      await p.put(seq++ % REQUEST_POOL);
      if (sentMs >= measureFromMs) {
        histogram.recordValue(Math.max(1, Math.round((performance.now() - sentMs) * 1000)));
        requests++;
      }
    } catch (err) {
      if (sentMs >= measureFromMs) {
        const code = (err as { code?: string }).code ?? 'ERR_UNKNOWN';
        errors[code] = (errors[code] ?? 0) + 1;
      }
    }
  };
  const loops: Promise<void>[] = [];
  for (const p of putters) {
    for (let j = 0; j < task.pipeline; j++) {
      loops.push(
        (async () => {
          while (performance.now() < stopMs) await once(p);
        })(),
      );
    }
  }
  await Promise.all(loops);
  await Promise.all(putters.map((p) => p.close()));
  return { requests, errors, histogram: encodeHistogram(histogram) };
}
