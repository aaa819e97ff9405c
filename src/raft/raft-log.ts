import { RaftInvariantError } from './errors.js';
import { isGap, type Storage, StorageGap } from './storage.js';
import { type Entry, entryBytes, type Index, type SnapshotMeta, type Term } from './types.js';
import { Unstable } from './unstable.js';

/**
 * The log as the core sees it: the durable part (Storage) with the unstable part on top,
 * plus the commit and apply positions.
 *
 *   firstIndex-1          stable last           lastIndex
 *   (snapshot)   storage ... |  unstable ...        |
 *
 * Invariant: applied <= applying <= committed <= lastIndex (thesis §3.5 and Figure 3.2:
 * nothing is applied before it is committed).
 */
export class RaftLog {
  readonly unstable: Unstable;
  committed: Index;
  /** Highest index handed out to the state machine in an apply work item. */
  applying: Index;
  /** Highest index the driver reported applied. */
  applied: Index;
  /** A snapshot restored from the leader that the state machine has not been given yet. */
  snapshotToApply: SnapshotMeta | null = null;

  constructor(readonly storage: Storage) {
    const first = storage.firstIndex();
    this.unstable = new Unstable(storage.lastIndex() + 1);
    // Everything up to the snapshot is committed and, once the snapshot is loaded, applied.
    const snapIndex = storage.snapshot().index;
    this.committed = snapIndex;
    this.applying = snapIndex;
    this.applied = snapIndex;
    if (snapIndex < first - 1) throw new RaftInvariantError('storage: snapshot below first index');
  }

  firstIndex(): Index {
    const s = this.unstable.snapshot;
    return s ? s.index + 1 : this.storage.firstIndex();
  }

  lastIndex(): Index {
    return this.unstable.lastIndex() ?? this.storage.lastIndex();
  }

  /** The last index known durable with the current log's content. */
  stableIndex(): Index {
    return this.unstable.snapshot ? 0 : this.unstable.offset - 1;
  }

  /** The term at `i`, 0 for index 0, or a StorageGap. */
  term(i: Index): Term | StorageGap {
    const first = this.firstIndex();
    if (i < first - 1) return StorageGap.Compacted;
    if (i > this.lastIndex()) return StorageGap.Unavailable;
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    if (i === 0) return 0;
    return this.storage.term(i);
  }

  lastTerm(): Term {
    const t = this.term(this.lastIndex());
    if (t < 0) throw new RaftInvariantError(`log: no term for last index ${this.lastIndex()}`);
    return t;
  }

  matchTerm(i: Index, t: Term): boolean {
    const x = this.term(i);
    return x >= 0 && x === t;
  }

  /**
   * Raft §5.4.1: the candidate's log is at least as up-to-date as ours if its last term
   * is later, or equal with a last index at least as long.
   */
  isUpToDate(lastIndex: Index, lastTerm: Term): boolean {
    const myTerm = this.lastTerm();
    return lastTerm > myTerm || (lastTerm === myTerm && lastIndex >= this.lastIndex());
  }

  /** The first entry of `ents` whose term differs from ours (or that we lack); 0 if none. */
  findConflict(ents: readonly Entry[]): Index {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term`, with that term: a leader can
   * skip every entry of a term the follower does not have (the fast back-off of the
   * thesis §5.3 "conflicting term" optimisation).
   */
  findConflictByTerm(index: Index, term: Term): { index: Index; term: Term } {
    let i = index;
    for (; i > 0; i--) {
      const t = this.term(i);
      if (t < 0) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
    }
    return { index: 0, term: 0 };
  }

  /**
   * AppendEntries consistency check and append (Raft §5.3). Returns the last index that
   * now matches the leader, or -1 if the entry at `prevIndex` does not have `prevTerm`.
   * The caller commits. Returns the first index appended through `appendedFrom`.
   */
  maybeAppend(
    prevIndex: Index,
    prevTerm: Term,
    ents: readonly Entry[],
  ): { lastNew: Index; appended: Entry[] } | null {
    if (!this.matchTerm(prevIndex, prevTerm)) return null;
    const lastNew = prevIndex + ents.length;
    const ci = this.findConflict(ents);
    if (ci === 0) return { lastNew, appended: [] };
    if (ci <= this.committed) {
      throw new RaftInvariantError(
        `log: entry ${ci} conflicts with committed entry (committed ${this.committed})`,
      );
    }
    const appended = ents.slice(ci - (ents[0] as Entry).index);
    this.append(appended);
    return { lastNew, appended };
  }

  append(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const after = (ents[0] as Entry).index - 1;
    if (after < this.committed) {
      throw new RaftInvariantError(`log: append after ${after} is below committed ${this.committed}`);
    }
    this.unstable.truncateAndAppend(ents);
  }

  commitTo(i: Index): boolean {
    if (i <= this.committed) return false;
    if (i > this.lastIndex()) {
      throw new RaftInvariantError(`log: commit ${i} is past the last index ${this.lastIndex()}`);
    }
    this.committed = i;
    return true;
  }

  /** Entries [lo, hi), the first always, then up to `maxBytes`. */
  slice(lo: Index, hi: Index, maxBytes: number): Entry[] | StorageGap {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) return StorageGap.Compacted;
    if (hi > this.lastIndex() + 1) return StorageGap.Unavailable;
    const out: Entry[] = [];
    let bytes = 0;
    const uOff = this.unstable.offset;
    if (lo < uOff) {
      const fromStorage = this.storage.entries(lo, Math.min(hi, uOff), maxBytes);
      if (isGap(fromStorage)) return fromStorage;
      for (const e of fromStorage) {
        bytes += entryBytes(e);
        out.push(e);
      }
      if (out.length < Math.min(hi, uOff) - lo) return out; // size limit reached
    }
    for (let i = Math.max(lo, uOff); i < hi; i++) {
      const e = this.unstable.entries[i - uOff] as Entry;
      bytes += entryBytes(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  /** A snapshot from the leader replaces the log (Raft §7). */
  restore(s: SnapshotMeta): void {
    this.committed = s.index;
    this.applying = s.index;
    this.unstable.restore(s);
    this.snapshotToApply = s;
  }

  hasNextApply(): boolean {
    return this.snapshotToApply !== null || this.applying < this.committed;
  }
}
