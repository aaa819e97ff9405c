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
 */
export class Unstable {
  snapshot: SnapshotMeta | null = null;
  snapshotInProgress = false;
  entries: Entry[] = [];
  offset: Index;
  inProgress: Index;

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
    this.inProgress = this.offset + this.entries.length;
    if (this.snapshot) this.snapshotInProgress = true;
  }

  /**
   * The driver reports entries through (index, term) durable. A report is ignored when
   * the log no longer holds that entry with that term: entries were replaced since
   * (the ABA case: etcd's newStorageAppendRespMsg explains it step by step).
   */
  stableTo(index: Index, term: Term): void {
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
        throw new RaftInvariantError(`unstable: append at ${after} below pending snapshot ${this.snapshot.index}`);
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
