/**
 * One raftline node in its own OS process for the fuzz harness (`cluster.ts` forks
 * three). Unlike `test/cluster/node-process.ts` it watches itself: it samples its own
 * memory and event-loop delay, counts its log lines by message instead of printing them
 * (a fuzz run makes hundreds of thousands), and reports the counters of its peer server
 * and snapshot receiver, which the node keeps but does not publish.
 *
 * argv[2] is the JSON of the RaftNodeOptions. Requests from the parent over IPC:
 *   { id, op: 'status' }                 the node's status
 *   { id, op: 'stats' }                  memory (now, max since 'mark'), loop delay, counters, log counts
 *   { id, op: 'mark' }                   runs a full GC (the process has --expose-gc) and restarts
 *                                        the max and loop-delay trackers; answers the memory after GC
 *   { id, op: 'gc' }                     runs a full GC; answers the memory after it
 *   { id, op: 'snapshot' }               node.snapshot()
 *   { id, op: 'transfer', peer }         node.transferLeadership(peer)
 *   { id, op: 'shutdown' }
 */

import fs from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pino from 'pino';
import { RaftNode } from '../../src/main/raft-node.js';
import { sendToParent, serveParent } from '../cluster/ipc-node.js';

/** The counters a node keeps on its servers (`PeerServer`, `SnapshotStreamReceiver`). */
export interface ServerCounters {
  readonly connectionsAccepted: number;
  readonly connectionsRefused: number;
  readonly framesReceived: number;
  readonly frameErrors: number;
  readonly protocolErrors: number;
  readonly openConnections: number;
  readonly snapshotRefused: number;
  readonly snapshotProtocolErrors: number;
  readonly snapshotFailed: number;
  readonly snapshotInstalled: number;
}

/** Memory figures in bytes. */
export interface Memory {
  readonly rss: number;
  readonly heapUsed: number;
  readonly heapTotal: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /** From /proc/self/status: anonymous, file-backed and shared resident memory (Linux; 0 elsewhere). */
  readonly rssAnon: number;
  readonly rssFile: number;
  readonly rssShmem: number;
}

function procStatus(): { rssAnon: number; rssFile: number; rssShmem: number } {
  try {
    const text = fs.readFileSync('/proc/self/status', 'utf8');
    const kb = (name: string): number =>
      Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(text)?.[1] ?? 0) * 1024;
    return { rssAnon: kb('RssAnon'), rssFile: kb('RssFile'), rssShmem: kb('RssShmem') };
  } catch {
    return { rssAnon: 0, rssFile: 0, rssShmem: 0 };
  }
}

/** What 'stats' answers. */
export interface NodeStats {
  readonly pid: number;
  /** CPU time of the whole process (every thread), in ms. */
  readonly cpuMs: number;
  readonly memory: Memory;
  /** Largest rss and heapUsed sampled (every 20 ms) since the last 'mark'. */
  readonly maxRss: number;
  readonly maxHeapUsed: number;
  /** Event-loop delay since the last 'mark', in ms. */
  readonly loopDelayMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly counters: ServerCounters;
  /** TCP socket handles alive on the main thread (the servers' connections), from the event loop itself. */
  readonly tcpSockets: number;
  /** Log lines by message, at every level. */
  readonly logCounts: Record<string, number>;
  /** The first few log lines at warn level or above, for a report. */
  readonly warnSamples: string[];
}

const options = JSON.parse(process.argv[2] as string);
// ------------------------------------------------------------------ log counting

const logCounts = new Map<string, number>();
const warnSamples: string[] = [];
const MSG = /"msg":"((?:[^"\\]|\\.)*)"/;
const LEVEL = /"level":(\d+)/;
/** pino writes each line with one `write`; this destination only counts them. */
const countingDestination = {
  write(line: string): void {
    const msg = MSG.exec(line)?.[1] ?? '(no msg)';
    logCounts.set(msg, (logCounts.get(msg) ?? 0) + 1);
    const level = Number(LEVEL.exec(line)?.[1] ?? 0);
    if (level >= 40 && warnSamples.length < 40 && (logCounts.get(msg) ?? 0) <= 3)
      warnSamples.push(line.trim());
  },
};

// ------------------------------------------------------------------ memory and loop delay

let maxRss = 0;
let maxHeapUsed = 0;
/** Memory now; also moves the maxima. `detail` adds /proc/self/status (slower: not for the 20 ms sampler). */
function sample(detail = false): Memory {
  const m = process.memoryUsage();
  if (m.rss > maxRss) maxRss = m.rss;
  if (m.heapUsed > maxHeapUsed) maxHeapUsed = m.heapUsed;
  return {
    ...(detail ? procStatus() : { rssAnon: 0, rssFile: 0, rssShmem: 0 }),
    rss: m.rss,
    heapUsed: m.heapUsed,
    heapTotal: m.heapTotal,
    external: m.external,
    arrayBuffers: m.arrayBuffers,
  };
}
const sampler = setInterval(() => sample(), 20);
sampler.unref();
const loopDelay = monitorEventLoopDelay({ resolution: 2 });
loopDelay.enable();

function fullGc(): Memory {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) {
    gc();
    gc();
  }
  return sample(true);
}

// ------------------------------------------------------------------ counters

/** The node's servers, reached through its private fields: the harness reads their counters only. */
function counters(node: RaftNode): ServerCounters {
  const coordinator = (node as unknown as { coordinator: Record<string, unknown> }).coordinator;
  const server = coordinator.server as Record<string, number> & { connectionCount: number };
  const receiver = coordinator.snapshotReceiver as Record<string, number>;
  return {
    connectionsAccepted: server.connectionsAccepted as number,
    connectionsRefused: server.connectionsRefused as number,
    framesReceived: server.framesReceived as number,
    frameErrors: server.frameErrors as number,
    protocolErrors: server.protocolErrors as number,
    openConnections: server.connectionCount,
    snapshotRefused: receiver.refused as number,
    snapshotProtocolErrors: receiver.protocolErrors as number,
    snapshotFailed: receiver.failed as number,
    snapshotInstalled: receiver.installed as number,
  };
}

function stats(node: RaftNode): NodeStats {
  return {
    pid: process.pid,
    cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
    memory: sample(true),
    maxRss,
    maxHeapUsed,
    loopDelayMs: {
      p50: loopDelay.percentile(50) / 1e6,
      p99: loopDelay.percentile(99) / 1e6,
      max: loopDelay.max / 1e6,
    },
    counters: counters(node),
    tcpSockets: process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length,
    logCounts: Object.fromEntries(logCounts),
    warnSamples: [...warnSamples],
  };
}

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  // Info and up are counted on the main thread (where the servers are); the worker threads
  // log on their own at the node's logLevel.
  const logger = pino({ level: 'info', base: { node: options.id } }, countingDestination);
  const node = await RaftNode.start(options, logger);
  serveParent(node, {
    status: () => node.status(),
    stats: () => stats(node),
    mark: () => {
      const memory = fullGc();
      maxRss = memory.rss;
      maxHeapUsed = memory.heapUsed;
      loopDelay.reset();
      return memory;
    },
    gc: () => fullGc(),
    snapshot: () => node.snapshot(),
    transfer: (req) => node.transferLeadership(req.peer as string),
  });
}

main().catch((err) => {
  sendToParent({ type: 'start-error', error: { message: (err as Error).message } });
  process.exit(1);
});
