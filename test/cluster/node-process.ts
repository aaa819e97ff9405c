/**
 * One raftline node in its own OS process, driven by its parent over IPC: the cluster
 * tests and benchmarks fork three of these on 127.0.0.1 and kill them with SIGKILL.
 *
 * argv[2] is the JSON of the RaftNodeOptions. Requests from the parent:
 *   { id, op: 'status' } | { id, op: 'read', query, consistency } | { id, op: 'apply', command }
 *   { id, op: 'write', prefix, from, count, window, pad? }  (pipelined applies run here, in the
 *     node's process, so IPC does not limit them; answers the indexes acknowledged)
 *   { id, op: 'bench', seconds, window, payloadBytes }  (throughput and latency percentiles)
 *   { id, op: 'snapshot' } | { id, op: 'addPeer' | 'addLearner', peer, address }
 *   { id, op: 'removePeer', peer } | { id, op: 'transfer', peer } | { id, op: 'shutdown' }
 *   { id, op: 'memory', reset?, gc? }  (process.memoryUsage() now, after a full GC with `gc`;
 *     the highest RSS and heap sampled every 20 ms and the event-loop delay since the last
 *     reset; the sampling starts at the first call)
 */

import { monitorEventLoopDelay } from 'node:perf_hooks';
import hdr from 'hdr-histogram-js';
import { RaftNode } from '../../src/main/raft-node.js';
import type { Value } from '../../src/main/state-machine.js';
import { sendToParent, serveParent } from './ipc-node.js';
import type { MemoryReport } from './process-cluster.js';

const options = JSON.parse(process.argv[2] as string);

const encoder = new TextEncoder();

async function write(
  node: RaftNode,
  reqId: number,
  prefix: string,
  from: number,
  count: number,
  window: number,
  pad: number,
): Promise<object> {
  const acked: number[] = [];
  // Acknowledgements stream to the parent as they happen, so a test that SIGKILLs this
  // process still knows every write it was told had succeeded.
  let unsent: number[] = [];
  const flush = (): void => {
    if (unsent.length === 0) return;
    sendToParent({ type: 'acked', id: reqId, indexes: unsent });
    unsent = [];
  };
  const timer = setInterval(flush, 5);
  const errors: Record<string, number> = {};
  let next = from;
  const end = from + count;
  const worker = async (): Promise<void> => {
    while (next < end) {
      const i = next++;
      try {
        await node.apply(encoder.encode(`${prefix}${i}`.padEnd(pad, '.')));
        acked.push(i);
        unsent.push(i);
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'unknown';
        errors[code] = (errors[code] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  clearInterval(timer);
  flush();
  return { acked, errors };
}

async function bench(node: RaftNode, seconds: number, window: number, payloadBytes: number): Promise<object> {
  const h = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
  });
  const payload = new Uint8Array(payloadBytes).fill(120);
  const stopAt = performance.now() + seconds * 1000;
  let ops = 0;
  let errors = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < stopAt) {
      const t0 = performance.now();
      try {
        await node.apply(payload);
        h.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
        ops++;
      } catch {
        errors++;
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: window }, worker));
  const elapsedS = (performance.now() - t0) / 1000;
  return {
    ops,
    errors,
    elapsedS,
    opsPerSec: ops / elapsedS,
    p50Us: h.getValueAtPercentile(50),
    p90Us: h.getValueAtPercentile(90),
    p99Us: h.getValueAtPercentile(99),
    p999Us: h.getValueAtPercentile(99.9),
    maxUs: h.maxValue,
  };
}

/** How often the memory peaks are sampled: often enough to see a burst of a few hundred ms. */
const MEMORY_SAMPLE_MS = 20;
let memorySampler: NodeJS.Timeout | null = null;
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
let maxRss = 0;
let maxHeapUsed = 0;

function sampleMemory(): NodeJS.MemoryUsage {
  const m = process.memoryUsage();
  if (m.rss > maxRss) maxRss = m.rss;
  if (m.heapUsed > maxHeapUsed) maxHeapUsed = m.heapUsed;
  return m;
}

/**
 * The memory report; `gc` first runs a full collection (the cluster forks this process
 * with --expose-gc) so that `heapUsed` is what is alive, not what awaits collection.
 */
function memory(reset: boolean, gc: boolean): MemoryReport {
  if (memorySampler === null) {
    memorySampler = setInterval(sampleMemory, MEMORY_SAMPLE_MS);
    memorySampler.unref();
    loopDelay.enable();
  }
  if (gc) globalThis.gc?.();
  const m = sampleMemory();
  const report = {
    rss: m.rss,
    heapUsed: m.heapUsed,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
    maxRss,
    maxHeapUsed,
    loopDelayP99Ms: loopDelay.percentile(99) / 1e6,
    loopDelayMaxMs: loopDelay.max / 1e6,
  };
  if (reset) {
    maxRss = m.rss;
    maxHeapUsed = m.heapUsed;
    loopDelay.reset();
  }
  return report;
}

// A test may run this process under `ulimit -f` to make the disk fail: without a handler,
// SIGXFSZ kills the process; with one, the write fails with EFBIG and the node must stop
// cleanly on its own.
process.on('SIGXFSZ', () => {});

async function main(): Promise<void> {
  const node = await RaftNode.start(options);
  serveParent(node, {
    status: () => ({ ...node.status(), cpu: process.cpuUsage() }),
    apply: (req) => node.apply(encoder.encode(req.command as string)),
    read: (req) => node.read(req.query as Value, { consistency: req.consistency as 'linearizable' }),
    write: (req) =>
      write(
        node,
        req.id,
        req.prefix as string,
        req.from as number,
        req.count as number,
        req.window as number,
        (req.pad as number | undefined) ?? 0,
      ),
    snapshot: () => node.snapshot(),
    addPeer: (req) => node.addPeer(req.peer as string, req.address as string),
    addLearner: (req) => node.addLearner(req.peer as string, req.address as string),
    removePeer: (req) => node.removePeer(req.peer as string),
    transfer: (req) => node.transferLeadership(req.peer as string),
    bench: (req) => bench(node, req.seconds as number, req.window as number, req.payloadBytes as number),
    memory: (req) => memory(req.reset === true, req.gc === true),
  });
}

main().catch((err) => {
  sendToParent({
    type: 'start-error',
    error: { code: (err as { code?: string }).code, message: (err as Error).message },
  });
  process.exit(1);
});
