/**
 * The checks a fuzz run must pass, shared by `fuzz.test.ts` and `run.ts`.
 */

import type { FuzzReport } from './harness.js';
import { CATEGORIES } from './model.js';

/**
 * Memory bounds, on the fuzzed node's process.
 *
 * RSS counts every thread of the node and grows for reasons that have nothing to do with
 * the fuzzer, measured with /proc/<pid>/smaps during runs:
 * - the node's shared rings and log window are allocated at start but become resident
 *   only as traffic first reaches each page: 16 + 16 + 16 MiB (log-writer, state machine,
 *   results), 8 MiB per replicator and the 4 MiB window of these runs, 68 MiB in all;
 * - V8 grows the main thread's heap to its working size (heapTotal ~17 -> ~50 MiB here);
 * - glibc keeps what the threads' malloc arenas freed (socket buffers of tens of thousands
 *   of connections): ~40 MiB after 3M frames, most of which MALLOC_ARENA_MAX=1 avoids.
 * What the fuzz traffic itself may hold at once is small: 48 connections in flight, each
 * with at most one partly received frame of a few KiB (no planned frame is above
 * ~70 KiB, and a header announcing more is refused, or never filled, before anything is
 * allocated for it).
 *
 * So RSS gets a loose bound, against allocation bombs and gross leaks, and the leaks the
 * fuzzer could cause are looked for where they would be, after a full GC:
 * - `MAX_RSS_GROWTH_BYTES`: the largest RSS sampled (every 20 ms) during the run, over the
 *   RSS before it (after a full GC): 68 + ~33 + ~40 MiB explained above, and a margin.
 *   Runs of 1M fuzzed frames peak at 80-110 MiB of growth here; a decoder that builds an
 *   object per few bytes of a large frame (gigabytes), or a leak of 100 bytes per frame,
 *   crosses it.
 * - `MAX_HEAP_USED_BYTES`: the main thread's heap at any sample: it peaks at 30-55 MiB.
 * - `MAX_HEAP_GROWTH_AFTER_GC_BYTES`: the main thread's live heap after a full GC, over the
 *   same before the run: what the fuzzer left behind in JavaScript (sockets, decoders,
 *   per-connection state). The node's own growth (the kv keys of the client's writes, a
 *   log bounded by compaction every 20,000 entries) is ~5 MiB: a leak of 14 bytes per
 *   frame over 1.2M parsed frames crosses it.
 * - `MAX_BUFFER_GROWTH_AFTER_GC_BYTES`: `external` + `arrayBuffers` (Buffers and
 *   ArrayBuffers outside the heap: socket chunks, frames) after a full GC: flat in every
 *   run (under 1 MiB).
 * - and no TCP handle or connection left open (`judge`).
 */
export const MAX_RSS_GROWTH_BYTES = 160 * 1024 * 1024;
export const MAX_HEAP_USED_BYTES = 128 * 1024 * 1024;
export const MAX_HEAP_GROWTH_AFTER_GC_BYTES = 16 * 1024 * 1024;
export const MAX_BUFFER_GROWTH_AFTER_GC_BYTES = 16 * 1024 * 1024;

/** RSS growth from the first sample after a quarter of the frames to the largest sample after it. */
export function lateRssGrowth(r: FuzzReport): number {
  const from = r.timeline.findIndex((p) => p.frames >= r.fuzz.framesParsed / 4);
  if (from < 0) return 0;
  const base = (r.timeline[from] as { rss: number }).rss;
  let max = base;
  for (const p of r.timeline.slice(from)) max = Math.max(max, p.rss);
  return max - base;
}

/** What went wrong with a run; empty when it passed. */
export function judge(r: FuzzReport, minFrames = 0): string[] {
  const failures: string[] = [];
  const f = r.fuzz;
  const check = (ok: boolean, what: string): void => {
    if (!ok) failures.push(what);
  };
  check(r.unexpectedExits.length === 0, `a node exited: ${JSON.stringify(r.unexpectedExits)}`);
  check(
    f.framesMutatedOrRandom >= minFrames,
    `only ${f.framesMutatedOrRandom} mutated or random frames parsed, ${minFrames} wanted`,
  );
  check(f.decoderThrows.length === 0, `a decoder threw: ${f.decoderThrows[0]}`);
  check(f.hung === 0, `${f.hung} connections were neither closed by the node nor finished`);
  check(
    f.closedByNode === f.connectionsByEnd.rejected,
    `${f.connectionsByEnd.rejected} connections refused by plan, ${f.closedByNode} closed by the node`,
  );
  check(f.malformedFromNode === 0, `${f.malformedFromNode} answers from the node did not decode`);
  check(
    f.cleanClientConnectionsShort === 0,
    `${f.cleanClientConnectionsShort} client connections missed answers`,
  );
  for (const c of CATEGORIES) {
    check(
      r.observed[c] === r.planned[c],
      `refusals of category ${c}: the model planned ${r.planned[c]}, the node recorded ${r.observed[c]}`,
    );
  }
  const growth = r.maxRss - r.memoryBefore.rss;
  check(
    growth < MAX_RSS_GROWTH_BYTES,
    `rss grew by ${(growth / 1048576).toFixed(1)} MiB during the run (bound ${MAX_RSS_GROWTH_BYTES / 1048576} MiB)`,
  );
  check(
    r.maxHeapUsed < MAX_HEAP_USED_BYTES,
    `the heap reached ${(r.maxHeapUsed / 1048576).toFixed(1)} MiB (bound ${MAX_HEAP_USED_BYTES / 1048576} MiB)`,
  );
  const heapGrowth = r.memoryAfter.heapUsed - r.memoryBefore.heapUsed;
  check(
    heapGrowth < MAX_HEAP_GROWTH_AFTER_GC_BYTES,
    `heap after GC grew by ${(heapGrowth / 1048576).toFixed(1)} MiB (bound ${MAX_HEAP_GROWTH_AFTER_GC_BYTES / 1048576} MiB)`,
  );
  const buffers = (m: FuzzReport['memoryBefore']): number => m.external + m.arrayBuffers;
  const bufferGrowth = buffers(r.memoryAfter) - buffers(r.memoryBefore);
  check(
    bufferGrowth < MAX_BUFFER_GROWTH_AFTER_GC_BYTES,
    `buffers outside the heap grew by ${(bufferGrowth / 1048576).toFixed(1)} MiB after GC ` +
      `(bound ${MAX_BUFFER_GROWTH_AFTER_GC_BYTES / 1048576} MiB)`,
  );
  check(r.clientDuring.ops > 0, 'the client got nothing done during the run');
  check(
    r.clientDuring.wrongReads === 0 && r.clientAfter.wrongReads === 0,
    'a read returned what was not written',
  );
  const afterFailures = Object.values(r.clientAfter.failures).reduce((s, n) => s + n, 0);
  check(afterFailures === 0, `writes after the run failed: ${JSON.stringify(r.clientAfter.failures)}`);
  check(
    r.clientAfter.writes === r.clientAfter.reads && r.clientAfter.writes > 0,
    'not every write after the run was read back',
  );
  check(r.replicasConverged, 'the replicas did not reach the same applied index');
  check(
    r.tcpSockets.after <= r.tcpSockets.before + 1,
    `TCP handles left open on the node: ${r.tcpSockets.before} before, ${r.tcpSockets.after} after`,
  );
  check(
    r.openConnections.after <= r.openConnections.before + 1,
    `connections left open on the node: ${r.openConnections.before} before, ${r.openConnections.after} after`,
  );
  return failures;
}
