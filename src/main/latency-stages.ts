/**
 * The server's own latency breakdown (HDR histograms, microseconds): how long a batch of
 * proposals takes to become durable on the leader, committed, and applied, and how long
 * an AppendEntries takes to be acknowledged by each follower. Time is taken per batch and
 * per message, never per entry, so the hot path pays a few number stores per batch.
 */

import type { Histogram } from 'hdr-histogram-js';
import type { Index } from '../raft/types.js';
import { createLatencyHistogram } from '../shared/histogram.js';

/** Stage names, as reports and /metrics show them. */
export const STAGE_DURABLE = 'propose→durable';
export const STAGE_COMMITTED = 'propose→committed';
export const STAGE_APPLIED = 'propose→applied';
export const STAGE_REPLICATION = 'replication RTT';
/** The log-writer's fdatasync, timed in its own thread. */
export const STAGE_FSYNC = 'fsync';

interface ProposedBatch {
  readonly lastIndex: Index;
  readonly proposedMs: number;
}

/** At most this many AppendEntries are timed per follower at once; older ones are forgotten. */
const MAX_TIMED_APPENDS = 4096;

/** Times proposal batches through the stages of a write, and AppendEntries round trips. */
export class LatencyStages {
  readonly durable: Histogram = createLatencyHistogram();
  readonly committed: Histogram = createLatencyHistogram();
  readonly applied: Histogram = createLatencyHistogram();
  readonly replication: Histogram = createLatencyHistogram();
  private readonly batches: ProposedBatch[] = [];
  private durableCursor = 0;
  private committedCursor = 0;
  private readonly appends = new Map<string, { index: Index; sentMs: number }[]>();

  /** A batch of proposals ending at `lastIndex` was handed to the core at `nowMs`. */
  proposed(lastIndex: Index, nowMs: number): void {
    this.batches.push({ lastIndex, proposedMs: nowMs });
  }

  /** This leader's log is durable up to `index`. */
  madeDurable(index: Index, nowMs: number): void {
    this.durableCursor = this.advance(this.durableCursor, index, nowMs, this.durable);
  }

  /** The commit index reached `index`. */
  madeCommitted(index: Index, nowMs: number): void {
    this.committedCursor = this.advance(this.committedCursor, index, nowMs, this.committed);
  }

  /** The state machine applied up to `index`: the batches up to there are done. */
  madeApplied(index: Index, nowMs: number): void {
    const done = this.advance(0, index, nowMs, this.applied);
    if (done === 0) return;
    this.batches.splice(0, done);
    this.durableCursor = Math.max(0, this.durableCursor - done);
    this.committedCursor = Math.max(0, this.committedCursor - done);
  }

  /** Leadership was lost: pending batches will not finish as timed. */
  reset(): void {
    this.batches.length = 0;
    this.durableCursor = 0;
    this.committedCursor = 0;
    this.appends.clear();
  }

  /** An AppendEntries up to `index` left for `peer`. */
  appendSent(peer: string, index: Index, nowMs: number): void {
    let q = this.appends.get(peer);
    if (!q) {
      q = [];
      this.appends.set(peer, q);
    }
    if (q.length >= MAX_TIMED_APPENDS) q.shift();
    q.push({ index, sentMs: nowMs });
  }

  /** `peer` acknowledged its log up to `index`. */
  appendAcked(peer: string, index: Index, nowMs: number): void {
    const q = this.appends.get(peer);
    if (!q) return;
    let n = 0;
    while (n < q.length && (q[n] as { index: Index }).index <= index) {
      recordMs(this.replication, nowMs - (q[n] as { sentMs: number }).sentMs);
      n++;
    }
    if (n > 0) q.splice(0, n);
  }

  /** Every stage's histogram, by name. */
  histograms(): Record<string, Histogram> {
    return {
      [STAGE_DURABLE]: this.durable,
      [STAGE_COMMITTED]: this.committed,
      [STAGE_APPLIED]: this.applied,
      [STAGE_REPLICATION]: this.replication,
    };
  }

  private advance(cursor: number, index: Index, nowMs: number, h: Histogram): number {
    let c = cursor;
    while (c < this.batches.length && (this.batches[c] as ProposedBatch).lastIndex <= index) {
      recordMs(h, nowMs - (this.batches[c] as ProposedBatch).proposedMs);
      c++;
    }
    return c;
  }
}

function recordMs(h: Histogram, ms: number): void {
  h.recordValue(Math.max(1, Math.round(ms * 1000)));
}
