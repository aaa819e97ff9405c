/**
 * A fuzz run against a live cluster: three node processes (`cluster.ts`), a `RaftClient`
 * writing and reading all along, and the fuzzer (`fuzzer.ts`) throwing frames at the
 * leader's listen port. `runFuzz` returns every figure and leaves the judging to its
 * caller (`fuzz.test.ts` asserts, `run.ts` prints).
 */

import { kvCommand } from '../../examples/kv.js';
import { RaftClient } from '../../src/client/raft-client.js';
import { DEFAULT_MAX_ENTRY_PAYLOAD_BYTES, DEFAULT_MAX_FRAME_BYTES } from '../../src/shared/protocol.js';
import { FuzzCluster, type UnexpectedExit } from './cluster.js';
import type { Memory, NodeStats, ServerCounters } from './fuzz-node.js';
import { Fuzzer, type FuzzerOptions, type FuzzStats } from './fuzzer.js';
import { lateRssGrowth } from './judge.js';
import { CATEGORIES, type Category } from './model.js';

export interface FuzzRunOptions {
  /** Mutated or random frames the node must parse (valid frames around them come on top). */
  readonly frames: number;
  readonly seed?: number;
  /** Connections in flight at once. */
  readonly concurrency?: number;
  /** Relative weights of the connections' openings (`FuzzerOptions.mix`). */
  readonly mix?: FuzzerOptions['mix'];
  /** Largest share of frames that may be Apply requests (`FuzzerOptions.applyShare`). */
  readonly applyShare?: number;
  /** Concurrent client loops writing and reading through RaftClient. Default 4. */
  readonly clientLoops?: number;
  /** fdatasync on every node (default false: the run is about input, not durability). */
  readonly sync?: boolean;
  /** Writes after the run, each of which must succeed. Default 200. */
  readonly afterWrites?: number;
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

/** What the client saw. */
export interface ClientFigures {
  /** Writes and reads that succeeded. */
  ops: number;
  writes: number;
  reads: number;
  /** Attempts that failed and were retried, by error code. */
  failures: Record<string, number>;
  /** Reads that returned something other than what was written. */
  wrongReads: number;
  maxLatencyMs: number;
}

/** The fuzzed node's memory at one moment of the run. */
export interface MemoryPoint {
  readonly seconds: number;
  /** Frames planned and sent so far (as of the last progress report). */
  readonly frames: number;
  readonly rss: number;
  readonly heapUsed: number;
}

export interface FuzzReport {
  readonly seed: number;
  readonly fuzzedNode: string;
  readonly termAtStart: number;
  readonly snapshotIndexAtStart: number;
  readonly fuzz: FuzzStats;
  /** The fuzzed node's memory after a full GC before the run, and after it. */
  readonly memoryBefore: Memory;
  readonly memoryAfter: Memory;
  /** Largest rss and heapUsed sampled during the run (every 20 ms, no GC forced). */
  readonly maxRss: number;
  readonly maxHeapUsed: number;
  /** CPU time the fuzzed node's process used during the run (all its threads), and the fuzzer's. */
  readonly nodeCpuMs: number;
  readonly fuzzerCpuMs: number;
  /** Memory sampled every second during the run. */
  readonly timeline: readonly MemoryPoint[];
  /** The fuzzed node's event-loop delay during the run. */
  readonly loopDelayMs: NodeStats['loopDelayMs'];
  /** The node's counter and log-line deltas over the run, beside what the model planned. */
  readonly observed: Record<Category, number>;
  readonly planned: Record<Category, number>;
  readonly counters: { readonly before: ServerCounters; readonly after: ServerCounters };
  /** Log lines during the run by message (the fuzzed node). */
  readonly logDelta: Record<string, number>;
  readonly warnSamples: string[];
  readonly clientDuring: ClientFigures;
  readonly clientAfter: ClientFigures;
  /** Connections open on the fuzzed node before and after (its peers' links, the client's). */
  readonly openConnections: { readonly before: number; readonly after: number };
  /** TCP socket handles on the fuzzed node's main thread before and after. */
  readonly tcpSockets: { readonly before: number; readonly after: number };
  readonly unexpectedExits: UnexpectedExit[];
  /** Whether every node reached the same applied index after the run. */
  readonly replicasConverged: boolean;
  readonly leaderChanges: number;
  readonly wallMs: number;
}

const LOG_CLIENT_FRAME = 'client connection closed: malformed frame';
const LOG_CLIENT_REQUEST = 'client connection closed: malformed request';

function newFigures(): ClientFigures {
  return { ops: 0, writes: 0, reads: 0, failures: {}, wrongReads: 0, maxLatencyMs: 0 };
}

/**
 * Writes `key = value` and reads it back (linearizable), retrying each step until it
 * succeeds or `stop()` says to give up. Failures are counted, by code.
 */
async function writeAndRead(
  client: RaftClient,
  key: string,
  value: string,
  figures: ClientFigures,
  stop: () => boolean,
): Promise<boolean> {
  const attempt = async (f: () => Promise<unknown>): Promise<unknown> => {
    for (;;) {
      const t0 = performance.now();
      try {
        const v = await f();
        figures.maxLatencyMs = Math.max(figures.maxLatencyMs, performance.now() - t0);
        figures.ops++;
        return v;
      } catch (err) {
        const code = (err as { code?: string }).code ?? (err as Error).message;
        figures.failures[code] = (figures.failures[code] ?? 0) + 1;
        if (stop()) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  try {
    await attempt(() => client.apply(kvCommand({ op: 'put', key, value })));
    figures.writes++;
    const got = await attempt(() => client.read({ op: 'get', key }, { consistency: 'linearizable' }));
    figures.reads++;
    if (got !== value) figures.wrongReads++;
    return true;
  } catch {
    return false;
  }
}

function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

export async function runFuzz(options: FuzzRunOptions): Promise<FuzzReport> {
  const log = options.log ?? (() => {});
  const seed = options.seed ?? 0x5eed;
  const wall0 = performance.now();
  const cluster = await FuzzCluster.start({ sync: options.sync ?? false });
  const endpoints = cluster.ids().map((id) => cluster.address(id));
  const client = new RaftClient({ endpoints, clusterId: cluster.clusterId, requestTimeoutMs: 10_000 });
  try {
    // A term of at least 2, so that term 1 is stale: the fuzzer's Raft messages carry it.
    let { leader, term } = await cluster.waitForLeader();
    if (term < 2) {
      const other = cluster.ids().find((id) => id !== leader) as string;
      await cluster.request(leader, 'transfer', { peer: other });
      for (let i = 0; i < 100; i++) {
        ({ leader, term } = await cluster.waitForLeader());
        if (term >= 2) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const target = leader;
    // Some state, and a snapshot on the fuzzed node: offers at index 1 are then stale.
    const warm = newFigures();
    for (let i = 0; i < 20; i++) await writeAndRead(client, `warm/${i}`, `w${i}`, warm, () => false);
    const snap = await cluster.request<{ index: number }>(target, 'snapshot');
    const status = await cluster.request<{ term: number; snapshotIndex: number }>(target, 'status');
    log(
      `fuzzing ${target} (${cluster.address(target)}, pid ${cluster.pid(target)}), term ${status.term}, snapshot ${snap.index}`,
    );

    const memoryBefore = await cluster.request<Memory>(target, 'mark');
    const before = await cluster.request<NodeStats>(target, 'stats');

    // The client writes and reads all along.
    const during = newFigures();
    let fuzzing = true;
    let leaderChanges = 0;
    let lastLeader = target;
    const loops = Array.from({ length: options.clientLoops ?? 4 }, async (_, k) => {
      for (let i = 0; fuzzing && (options.clientLoops ?? 4) > 0; i++) {
        await writeAndRead(client, `cl/${k}/${i}`, `v${k}.${i}`, during, () => !fuzzing);
      }
    });
    // The fuzzed node's memory over the run, against the frames parsed so far: a leak
    // grows with the frames; the node's own buffers fill early and level off.
    const timeline: MemoryPoint[] = [];
    let framesSoFar = 0;
    const t0 = performance.now();
    const sampler = setInterval(() => {
      void cluster
        .request<NodeStats>(target, 'stats', {}, 5000)
        .then((s) =>
          timeline.push({
            seconds: (performance.now() - t0) / 1000,
            frames: framesSoFar,
            rss: s.memory.rss,
            heapUsed: s.memory.heapUsed,
          }),
        )
        .catch(() => {});
    }, 1000);
    const watch = setInterval(() => {
      void cluster
        .waitForLeader(2000)
        .then(({ leader: now }) => {
          if (now !== lastLeader) {
            leaderChanges++;
            lastLeader = now;
          }
        })
        .catch(() => {});
    }, 1000);

    const fuzzer = new Fuzzer({
      host: '127.0.0.1',
      port: cluster.member(target).port,
      frames: options.frames,
      seed,
      concurrency: options.concurrency ?? 48,
      ...(options.mix ? { mix: options.mix } : {}),
      ...(options.applyShare !== undefined ? { applyShare: options.applyShare } : {}),
      ctx: {
        clusterId: cluster.clusterId,
        targetId: target,
        memberIds: new Set(cluster.ids()),
        staleTermBelow: status.term,
        snapshotIndex: status.snapshotIndex,
        maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
        maxEntryPayloadBytes: DEFAULT_MAX_ENTRY_PAYLOAD_BYTES,
      },
      shouldStop: () => cluster.unexpectedExits.length > 0,
      onProgress: (s) => {
        framesSoFar = s.framesParsed;
        log(
          `${(s.elapsedMs / 1000).toFixed(0)} s: ${s.framesParsed} frames parsed, ${s.connections} connections, ` +
            `client ${during.ops} ops`,
        );
      },
    });
    const cpu0 = process.cpuUsage();
    const fuzz = await fuzzer.run();
    const cpu = process.cpuUsage(cpu0);
    fuzzing = false;
    clearInterval(watch);
    clearInterval(sampler);
    await Promise.all(loops);
    const after = await cluster.request<NodeStats>(target, 'stats');
    log(`fuzzing done in ${(fuzz.elapsedMs / 1000).toFixed(1)} s; checking the cluster`);

    // Afterwards every write must succeed (the client still follows a moved leader).
    const clientAfter = newFigures();
    for (let i = 0; i < (options.afterWrites ?? 200); i++) {
      const deadline = Date.now() + 20_000;
      await writeAndRead(client, `after/${i}`, `a${i}`, clientAfter, () => Date.now() > deadline);
    }
    const memoryAfter = await cluster.request<Memory>(target, 'gc');
    const afterGc = await cluster.request<NodeStats>(target, 'stats');

    // Every node applies the same log.
    let replicasConverged = false;
    for (let i = 0; i < 100 && !replicasConverged; i++) {
      const statuses = await Promise.all(
        cluster.ids().map((id) => cluster.request<{ appliedIndex: number; lastIndex: number }>(id, 'status')),
      );
      const first = statuses[0] as { appliedIndex: number; lastIndex: number };
      replicasConverged = statuses.every(
        (s) => s.appliedIndex === first.appliedIndex && s.lastIndex === first.lastIndex,
      );
      if (!replicasConverged) await new Promise((r) => setTimeout(r, 100));
    }

    const logDelta = delta(after.logCounts, before.logCounts);
    const c0 = before.counters;
    const c1 = after.counters;
    const observed: Record<Category, number> = {
      frame: c1.frameErrors - c0.frameErrors,
      refused: c1.connectionsRefused - c0.connectionsRefused,
      protocol: c1.protocolErrors - c0.protocolErrors,
      'client-frame': logDelta[LOG_CLIENT_FRAME] ?? 0,
      'client-request': logDelta[LOG_CLIENT_REQUEST] ?? 0,
      'snapshot-breach': c1.snapshotProtocolErrors - c0.snapshotProtocolErrors,
      'snapshot-refused': c1.snapshotRefused - c0.snapshotRefused,
    };
    const planned = {} as Record<Category, number>;
    for (const c of CATEGORIES) planned[c] = fuzz.rejectedByCategory[c] ?? 0;
    return {
      seed,
      fuzzedNode: target,
      termAtStart: status.term,
      snapshotIndexAtStart: status.snapshotIndex,
      fuzz,
      memoryBefore,
      memoryAfter,
      maxRss: after.maxRss,
      maxHeapUsed: after.maxHeapUsed,
      loopDelayMs: after.loopDelayMs,
      timeline,
      nodeCpuMs: after.cpuMs - before.cpuMs,
      fuzzerCpuMs: (cpu.user + cpu.system) / 1000,
      observed,
      planned,
      counters: { before: c0, after: c1 },
      logDelta,
      warnSamples: after.warnSamples,
      clientDuring: during,
      clientAfter,
      openConnections: { before: c0.openConnections, after: afterGc.counters.openConnections },
      tcpSockets: { before: before.tcpSockets, after: afterGc.tcpSockets },
      unexpectedExits: [...cluster.unexpectedExits],
      replicasConverged,
      leaderChanges,
      wallMs: performance.now() - wall0,
    };
  } finally {
    await client.close().catch(() => {});
    await cluster.destroy();
  }
}

/** The `n` largest entries of a count map, as `key count` pairs. */
function top(counts: Record<string, number>, n: number): string {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

/** The report as text lines, for people. */
export function describe(r: FuzzReport): string[] {
  const mb = (b: number): string => `${(b / 1048576).toFixed(1)} MB`;
  const f = r.fuzz;
  const lines = [
    `seed ${r.seed}; fuzzed node ${r.fuzzedNode} (term ${r.termAtStart}, snapshot ${r.snapshotIndexAtStart})`,
    `frames parsed by the node: ${f.framesParsed} (accepted ${f.framesAccepted}, refused ${f.framesRejected}); ` +
      `mutated or random ${f.framesMutatedOrRandom}, valid as built ${f.framesValidAsBuilt}`,
    `units sent ${f.unitsSent}, ${mb(f.bytesSent)}, over ${f.connections} connections in ${(f.elapsedMs / 1000).toFixed(1)} s ` +
      `(${Math.round(f.framesParsed / (f.elapsedMs / 1000))} frames/s)`,
    `connections by role ${JSON.stringify(f.connectionsByRole)}, by end ${JSON.stringify(f.connectionsByEnd)}`,
    `refused, planned ${JSON.stringify(r.planned)}`,
    `refused, observed ${JSON.stringify(r.observed)}`,
    `closed by the node ${f.closedByNode}, hung ${f.hung}; client requests ${f.clientRequests}, answers ${f.clientResponses} ` +
      `(${f.clientErrorResponses} errors), clean client connections ${f.cleanClientConnections} (short ${f.cleanClientConnectionsShort}); ` +
      `malformed from node ${f.malformedFromNode}`,
    `withheld ${JSON.stringify(f.unitsWithheld)}; snapshot replies ${JSON.stringify(f.snapshotReplies)}`,
    `memory: before ${mb(r.memoryBefore.rss)} rss / ${mb(r.memoryBefore.heapUsed)} heap; max ${mb(r.maxRss)} rss / ` +
      `${mb(r.maxHeapUsed)} heap; after (GC) ${mb(r.memoryAfter.rss)} rss / ${mb(r.memoryAfter.heapUsed)} heap ` +
      `(anon ${mb(r.memoryBefore.rssAnon)} -> ${mb(r.memoryAfter.rssAnon)}, file ${mb(r.memoryBefore.rssFile)} -> ` +
      `${mb(r.memoryAfter.rssFile)}, heapTotal ${mb(r.memoryBefore.heapTotal)} -> ${mb(r.memoryAfter.heapTotal)})`,
    `cpu: fuzzed node ${(r.nodeCpuMs / 1000).toFixed(1)} s, fuzzer and client ${(r.fuzzerCpuMs / 1000).toFixed(1)} s; ` +
      `rss growth after a quarter of the frames: ${mb(lateRssGrowth(r))}`,
    `memory timeline (s: frames rss heap): ${r.timeline
      .filter((_, i) => i % 5 === 0 || i === r.timeline.length - 1)
      .map((p) => `${p.seconds.toFixed(0)}: ${p.frames} ${mb(p.rss)} ${mb(p.heapUsed)}`)
      .join(' | ')}`,
    `event-loop delay p50 ${r.loopDelayMs.p50.toFixed(1)} ms, p99 ${r.loopDelayMs.p99.toFixed(1)} ms, max ${r.loopDelayMs.max.toFixed(1)} ms`,
    `client during: ${r.clientDuring.ops} ops (${r.clientDuring.writes} writes, ${r.clientDuring.reads} reads), ` +
      `failures ${JSON.stringify(r.clientDuring.failures)}, wrong reads ${r.clientDuring.wrongReads}, max latency ${r.clientDuring.maxLatencyMs.toFixed(0)} ms`,
    `client after: ${r.clientAfter.ops} ops, failures ${JSON.stringify(r.clientAfter.failures)}, wrong reads ${r.clientAfter.wrongReads}`,
    `open connections before ${r.openConnections.before}, after ${r.openConnections.after} ` +
      `(TCP handles ${r.tcpSockets.before}, ${r.tcpSockets.after}); leader changes ${r.leaderChanges}; ` +
      `replicas converged ${r.replicasConverged}; crashes ${JSON.stringify(r.unexpectedExits)}`,
    `refusal codes: ${top(f.rejectedByCode, 16)}`,
    `accepted kinds: ${top(f.acceptedByKind, 16)}`,
    `units by mutation: ${top(f.unitsByMutation, 20)}`,
    `decoder throws ${f.decoderThrows.length}; socket errors ${JSON.stringify(f.socketErrors)}`,
    `wall time ${(r.wallMs / 1000).toFixed(1)} s`,
  ];
  return lines;
}
