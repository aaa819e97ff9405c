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
 */

import hdr from 'hdr-histogram-js';
import { RaftNode } from '../../src/main/raft-node.js';
import type { Value } from '../../src/main/state-machine.js';

interface Request {
  id: number;
  op: string;
  [k: string]: unknown;
}

const options = JSON.parse(process.argv[2] as string);
const send = (m: object): void => {
  process.send?.(m);
};

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
    send({ type: 'acked', id: reqId, indexes: unsent });
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

// A test may run this process under `ulimit -f` to make the disk fail: without a handler,
// SIGXFSZ kills the process; with one, the write fails with EFBIG and the node must stop
// cleanly on its own.
process.on('SIGXFSZ', () => {});

async function main(): Promise<void> {
  const node = await RaftNode.start(options);
  send({ type: 'ready', address: node.address, pid: process.pid });
  process.on('message', async (req: Request) => {
    try {
      let result: unknown;
      switch (req.op) {
        case 'status':
          result = { ...node.status(), cpu: process.cpuUsage() };
          break;
        case 'apply':
          result = await node.apply(encoder.encode(req.command as string));
          break;
        case 'read':
          result = await node.read(req.query as Value, { consistency: req.consistency as 'linearizable' });
          break;
        case 'write':
          result = await write(
            node,
            req.id,
            req.prefix as string,
            req.from as number,
            req.count as number,
            req.window as number,
            (req.pad as number | undefined) ?? 0,
          );
          break;
        case 'snapshot':
          result = await node.snapshot();
          break;
        case 'addPeer':
          result = await node.addPeer(req.peer as string, req.address as string);
          break;
        case 'addLearner':
          result = await node.addLearner(req.peer as string, req.address as string);
          break;
        case 'removePeer':
          result = await node.removePeer(req.peer as string);
          break;
        case 'transfer':
          result = node.transferLeadership(req.peer as string);
          break;
        case 'bench':
          result = await bench(node, req.seconds as number, req.window as number, req.payloadBytes as number);
          break;
        case 'shutdown':
          await node.shutdown();
          send({ type: 'reply', id: req.id, result: null });
          process.exit(0);
          return;
        default:
          throw new Error(`unknown op ${req.op}`);
      }
      send({ type: 'reply', id: req.id, result });
    } catch (err) {
      const e = err as { code?: string; message?: string };
      send({
        type: 'reply',
        id: req.id,
        error: { code: e.code ?? 'unknown', message: e.message ?? String(err) },
      });
    }
  });
}

main().catch((err) => {
  send({
    type: 'start-error',
    error: { code: (err as { code?: string }).code, message: (err as Error).message },
  });
  process.exit(1);
});
