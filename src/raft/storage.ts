import {
  EMPTY_CONF,
  type Entry,
  EntryType,
  entryBytes,
  type HardState,
  type Index,
  type NodeId,
  type SnapshotMeta,
  type Term,
} from './types.js';

/**
 * Why a storage lookup has no answer. These are expected outcomes, returned as values
 * (negative numbers, so a term lookup stays a plain number on the hot path):
 * - Compacted: the entry is below the first index (a snapshot covers it);
 * - Unavailable: the entry is past the last index, or not readable right now.
 */
export enum StorageGap {
  Compacted = -1,
  Unavailable = -2,
}

export function isGap(x: number | readonly Entry[]): x is StorageGap {
  return typeof x === 'number' && x < 0;
}

/**
 * The durable log as the core sees it (etcd's Storage). The core only reads it; the
 * driver writes it from the Ready's append work item, in order.
 */
export interface Storage {
  /** Term/vote as last persisted, and the latest snapshot's meta. */
  initialState(): { hardState: HardState; snapshot: SnapshotMeta };
  /** Configuration-change entries stored after the snapshot index, in index order. */
  confEntries(): Entry[];
  /** The first index still held (entries below were compacted). */
  firstIndex(): Index;
  /** The last index held; equal to firstIndex()-1 when the log is empty. */
  lastIndex(): Index;
  /** The term at `i`, valid for firstIndex()-1 <= i <= lastIndex(). */
  term(i: Index): Term | StorageGap;
  /** Entries [lo, hi), at least one if any, then as many as fit in `maxBytes`. */
  entries(lo: Index, hi: Index, maxBytes: number): Entry[] | StorageGap;
  /** The latest snapshot's meta. */
  snapshot(): SnapshotMeta;
}

/**
 * How a new cluster starts: its founding members hold a snapshot at index 1, term 1 with
 * the initial configuration (and an empty state machine). A node added later starts
 * empty and receives that snapshot, or a later one, from the leader, so every node
 * derives its configuration from the same history.
 */
export function bootstrapSnapshot(voters: readonly NodeId[], learners: readonly NodeId[] = []): SnapshotMeta {
  return {
    index: 1,
    term: 1,
    conf: { voters: [...voters], votersOutgoing: [], learners: [...learners], autoLeave: false },
  };
}

/** The state of a node that has not joined any cluster yet. */
export const EMPTY_SNAPSHOT: SnapshotMeta = { index: 0, term: 0, conf: EMPTY_CONF };

/**
 * An in-memory Storage, used by the simulator and the unit tests. It holds what a real
 * disk would hold after every append work item processed so far: nothing more.
 */
export class MemoryStorage implements Storage {
  private hard: HardState = { term: 0, vote: '' };
  private snap: SnapshotMeta;
  /** The index and term of the entry just before `ents[0]`. */
  private prevIndex: Index;
  private prevTerm: Term;
  private ents: Entry[] = [];

  constructor(snapshot: SnapshotMeta) {
    this.snap = snapshot;
    this.prevIndex = snapshot.index;
    this.prevTerm = snapshot.term;
  }

  initialState(): { hardState: HardState; snapshot: SnapshotMeta } {
    return { hardState: this.hard, snapshot: this.snap };
  }

  confEntries(): Entry[] {
    return this.ents.filter((e) => e.type === EntryType.ConfChange && e.index > this.snap.index);
  }

  firstIndex(): Index {
    return this.prevIndex + 1;
  }

  lastIndex(): Index {
    return this.prevIndex + this.ents.length;
  }

  term(i: Index): Term | StorageGap {
    if (i < this.prevIndex) return StorageGap.Compacted;
    if (i === this.prevIndex) return this.prevTerm;
    if (i > this.lastIndex()) return StorageGap.Unavailable;
    return (this.ents[i - this.prevIndex - 1] as Entry).term;
  }

  entries(lo: Index, hi: Index, maxBytes: number): Entry[] | StorageGap {
    if (lo <= this.prevIndex) return StorageGap.Compacted;
    if (hi > this.lastIndex() + 1) return StorageGap.Unavailable;
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.ents[i - this.prevIndex - 1] as Entry;
      bytes += entryBytes(e);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e);
    }
    return out;
  }

  snapshot(): SnapshotMeta {
    return this.snap;
  }

  /** Makes an append work item durable, in the order the contract requires. */
  write(work: {
    snapshot: SnapshotMeta | null;
    entries: readonly Entry[];
    hardState: HardState | null;
  }): void {
    if (work.snapshot) this.applySnapshot(work.snapshot);
    this.append(work.entries);
    if (work.hardState) this.setHardState(work.hardState);
  }

  setHardState(hs: HardState): void {
    this.hard = hs;
  }

  /** Appends entries, replacing any stored suffix from the first new index on. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = (entries[0] as Entry).index;
    if (first <= this.prevIndex) throw new Error(`MemoryStorage.append: index ${first} is compacted`);
    if (first > this.lastIndex() + 1) {
      throw new Error(`MemoryStorage.append: gap: last ${this.lastIndex()}, appending ${first}`);
    }
    this.ents.length = first - this.prevIndex - 1;
    for (const e of entries) this.ents.push(e);
  }

  /** Replaces the whole log by a snapshot received from the leader. */
  applySnapshot(meta: SnapshotMeta): void {
    this.snap = meta;
    this.prevIndex = meta.index;
    this.prevTerm = meta.term;
    this.ents = [];
  }

  /** Records a snapshot taken locally at `index` (<= lastIndex) with configuration `conf`. */
  createSnapshot(index: Index, conf: SnapshotMeta['conf']): SnapshotMeta {
    const term = this.term(index);
    if (term < 0 || index < this.snap.index)
      throw new Error(`MemoryStorage.createSnapshot: bad index ${index}`);
    this.snap = { index, term, conf };
    return this.snap;
  }

  /** Drops entries up to and including `index`, which must be covered by the snapshot. */
  compact(index: Index): void {
    if (index <= this.prevIndex) return;
    if (index > this.snap.index) throw new Error(`MemoryStorage.compact: ${index} is past the snapshot`);
    const term = this.term(index);
    this.ents.splice(0, index - this.prevIndex);
    this.prevIndex = index;
    this.prevTerm = term as Term;
  }
}
