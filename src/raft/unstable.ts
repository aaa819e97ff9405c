import { RaftInvariantError } from './errors.js';
import type { Entry, Index, SnapshotMeta, Term } from './types.js';

/**
 * Entries (and at most one snapshot) that the core holds but the driver has not yet
 * reported durable. With asynchronous writes some of them are "in progress": handed out
 * in an append work item, not yet acknowledged.
 *
 *   offset                 inProgress              offset+entries.length
 *     |  handed out, waiting  |  not handed out yet  |
 *     v                       v                      v
 *   [ e(offset) ...          e(inProgress) ...        ]
 *
 * Invariant: offset <= inProgress <= offset + entries.length.
 * Invariant: with a snapshot pending, offset == snapshot.index + 1.
 *
 * An acknowledgement names the last (index, term) its write carried, but that alone can
 * be fooled (the ABA case, as in etcd's newStorageAppendRespMsg):
 *   1. write W1 carries 2:t2 3:t2 and is handed out;
 *   2. a leader of t3 replaces index 2: W2 carries 2:t3 and is handed out;
 *   3. a leader of t4 (which had t2's entries) restores them: W3 carries 2:t2 3:t2;
 *   4. W1 and W2 become durable: the disk holds 2:t3, yet W1's ack (3, t2) matches the log.
 * So every handed-out write is remembered by its first index, and an acknowledgement marks
 * entries stable only below the first index of any write still in flight after it.
 */
export class Unstable {
  snapshot: SnapshotMeta | null = null;
  snapshotInProgress = false;
  entries: Entry[] = [];
  offset: Index;
  inProgress: Index;
  /** First index of each write handed out and not yet acknowledged, oldest first. */
  private readonly inFlightFirsts: Index[] = [];

  constructor(offset: Index) {
    this.offset = offset;
    this.inProgress = offset;
  }

  lastIndex(): Index | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    if (this.snapshot) return this.snapshot.index;
    return undefined;
  }

  /** The term at `i` if this part of the log knows it. */
  maybeTerm(i: Index): Term | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.index === i) return this.snapshot.term;
      return undefined;
    }
    const e = this.entries[i - this.offset];
    return e ? e.term : undefined;
  }

  /** Entries not yet handed out for persistence. */
  nextEntries(): Entry[] {
    const from = this.inProgress - this.offset;
    return from >= this.entries.length ? [] : this.entries.slice(from);
  }

  hasNextEntries(): boolean {
    return this.inProgress - this.offset < this.entries.length;
  }

  hasNextSnapshot(): boolean {
    return this.snapshot !== null && !this.snapshotInProgress;
  }

  /** Marks everything current as handed out. */
  acceptInProgress(): void {
    if (this.hasNextSnapshot()) this.inFlightFirsts.push((this.snapshot as SnapshotMeta).index);
    else if (this.hasNextEntries()) this.inFlightFirsts.push(this.inProgress);
    this.inProgress = this.offset + this.entries.length;
    if (this.snapshot) this.snapshotInProgress = true;
  }

  /**
   * The oldest write in flight, whose last entry was (ackIndex, term), is durable. What it
   * wrote becomes stable up to where a later write (in flight or not yet handed out)
   * replaces it, and only if the log still holds that entry with that term.
   */
  stableTo(ackIndex: Index, term: Term): void {
    // Acknowledgements arrive in the order writes were handed out: this one is the oldest.
    this.inFlightFirsts.shift();
    let limit = this.inProgress - 1;
    for (const first of this.inFlightFirsts) if (first - 1 < limit) limit = first - 1;
    const index = Math.min(ackIndex, limit);
    if (index < ackIndex) {
      // A later write replaces part of this one; only the prefix below it is as written.
      if (index >= this.offset && !this.snapshot) this.markStable(index);
      return;
    }
    if (this.snapshot && this.snapshotInProgress && index >= this.snapshot.index) {
      const t = index === this.snapshot.index ? this.snapshot.term : this.maybeTerm(index);
      if (t === term) {
        this.snapshot = null;
        this.snapshotInProgress = false;
      }
    }
    if (this.snapshot) return; // the snapshot before these entries is not durable yet
    if (index < this.offset) return;
    if (this.maybeTerm(index) !== term) return;
    this.markStable(index);
  }

  private markStable(index: Index): void {
    const n = index + 1 - this.offset;
    this.entries = this.entries.slice(n);
    this.offset = index + 1;
    this.inProgress = Math.max(this.inProgress, this.offset);
  }

  restore(s: SnapshotMeta): void {
    this.offset = s.index + 1;
    this.inProgress = this.offset;
    this.entries = [];
    this.snapshot = s;
    this.snapshotInProgress = false;
  }

  /** Appends `ents`, first cutting off anything at or after `ents[0].index`. */
  truncateAndAppend(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const after = (ents[0] as Entry).index;
    const end = this.offset + this.entries.length;
    if (after === end) {
      for (const e of ents) this.entries.push(e);
    } else if (after <= this.offset) {
      // The whole unstable part is replaced; durable entries from `after` on will be
      // overwritten by the append work item that carries these.
      if (this.snapshot && after <= this.snapshot.index) {
        throw new RaftInvariantError(
          `unstable: append at ${after} below pending snapshot ${this.snapshot.index}`,
        );
      }
      this.offset = after;
      this.inProgress = after;
      this.entries = ents.slice();
    } else {
      if (after > end) throw new RaftInvariantError(`unstable: gap: appending ${after}, last ${end - 1}`);
      this.entries.length = after - this.offset;
      for (const e of ents) this.entries.push(e);
      this.inProgress = Math.min(this.inProgress, after);
    }
  }
}
