import {
  EMPTY_CONF,
  ENTRY_OVERHEAD_BYTES,
  type Entry,
  EntryType,
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
  /**
   * Entries [lo, hi), at least one if any, then as many as fit in `maxBytes` (an
   * implementation may stop earlier; the caller asks again from where it stopped).
   */
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
 * Payload stand-ins for entries whose objects were released (`releaseObjects`): views of
 * the right length over one zeroed buffer, so flow control still counts real sizes. They
 * must never be sent or applied: `isReleasedPayload` lets a driver check before it encodes
 * an entry's bytes itself instead of taking them from the log window or the segments.
 */
const releasedBuffers = new WeakSet<ArrayBufferLike>();
let releasedPayload = new Uint8Array(64 * 1024);
releasedBuffers.add(releasedPayload.buffer);

function releasedPayloadOf(bytes: number): Uint8Array {
  if (bytes > releasedPayload.byteLength) {
    releasedPayload = new Uint8Array(Math.max(bytes, 2 * releasedPayload.byteLength));
    releasedBuffers.add(releasedPayload.buffer);
  }
  return releasedPayload.subarray(0, bytes);
}

/** Whether `data` is the stand-in of a released entry's payload (see `releaseObjects`). */
export function isReleasedPayload(data: Uint8Array): boolean {
  return releasedBuffers.has(data.buffer);
}

/** Whether any of `entries` carries a released entry's stand-in payload. */
export function hasReleasedPayload(entries: readonly Entry[]): boolean {
  for (const e of entries) if (isReleasedPayload(e.data)) return true;
  return false;
}

const INITIAL_CAPACITY = 1024;

/**
 * An in-memory Storage: the simulator's and the unit tests' log, and the coordinator's
 * view of the durable log (the log-writer holds the real one). It holds what a real disk
 * would hold after every append work item processed so far: nothing more.
 *
 * Every entry's term, type and payload size live in typed arrays. The entry objects are
 * kept too, until `releaseObjects` drops the old ones: a node under load holds hundreds of
 * thousands of entries between compactions, and as objects (with their payload views)
 * they were most of its heap. A released entry is handed out again as a new object whose
 * payload is a stand-in (`isReleasedPayload`); a driver serves such entries from its log
 * files instead.
 */
export class MemoryStorage implements Storage {
  private hard: HardState = { term: 0, vote: '' };
  private snap: SnapshotMeta;
  /** The index and term of the entry just before the first one held. */
  private prevIndex: Index;
  private prevTerm: Term;
  /** Entries held: entry i is at slot i - prevIndex - 1 of `ents` and of the typed arrays. */
  private count = 0;
  /** The entry objects; undefined at or below `releasedIndex` (but ConfChange entries stay). */
  private ents: (Entry | undefined)[] = [];
  private terms = new Float64Array(INITIAL_CAPACITY);
  private types = new Uint8Array(INITIAL_CAPACITY);
  private payloadBytes = new Uint32Array(INITIAL_CAPACITY);
  /** Objects of entries at or below this index may have been released. */
  private releasedIndex: Index;
  /** Payload bytes of the entries above `releasedIndex` (the objects held, but for a few configuration changes). */
  private heldBytes = 0;

  constructor(snapshot: SnapshotMeta) {
    this.snap = snapshot;
    this.prevIndex = snapshot.index;
    this.prevTerm = snapshot.term;
    this.releasedIndex = snapshot.index;
  }

  initialState(): { hardState: HardState; snapshot: SnapshotMeta } {
    return { hardState: this.hard, snapshot: this.snap };
  }

  confEntries(): Entry[] {
    const out: Entry[] = [];
    for (let k = 0; k < this.count; k++) {
      const e = this.ents[k];
      if (e && e.type === EntryType.ConfChange && e.index > this.snap.index) out.push(e);
    }
    return out;
  }

  firstIndex(): Index {
    return this.prevIndex + 1;
  }

  lastIndex(): Index {
    return this.prevIndex + this.count;
  }

  term(i: Index): Term | StorageGap {
    if (i < this.prevIndex) return StorageGap.Compacted;
    if (i === this.prevIndex) return this.prevTerm;
    if (i > this.lastIndex()) return StorageGap.Unavailable;
    return this.terms[i - this.prevIndex - 1] as Term;
  }

  entries(lo: Index, hi: Index, maxBytes: number): Entry[] | StorageGap {
    if (lo <= this.prevIndex) return StorageGap.Compacted;
    if (hi > this.lastIndex() + 1) return StorageGap.Unavailable;
    const out: Entry[] = [];
    let bytes = 0;
    // Released entries and held ones never share an answer: a driver sends a run of
    // stand-ins from its log files as a whole, and must never meet one among entries it
    // encodes itself.
    const released = this.ents[lo - this.prevIndex - 1] === undefined;
    for (let i = lo; i < hi; i++) {
      const k = i - this.prevIndex - 1;
      const e = this.ents[k];
      if (out.length > 0 && (e === undefined) !== released) break;
      bytes += (this.payloadBytes[k] as number) + ENTRY_OVERHEAD_BYTES;
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(e ?? this.standIn(i, k));
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
    const kept = first - this.prevIndex - 1;
    for (let k = Math.max(kept, this.releasedIndex - this.prevIndex); k < this.count; k++) {
      this.heldBytes -= this.payloadBytes[k] as number;
    }
    this.count = kept;
    this.ents.length = this.count;
    if (this.releasedIndex >= first) this.releasedIndex = first - 1;
    this.reserve(this.count + entries.length);
    for (const e of entries) {
      const k = this.count++;
      this.ents.push(e);
      this.terms[k] = e.term;
      this.types[k] = e.type;
      this.payloadBytes[k] = e.data.byteLength;
      this.heldBytes += e.data.byteLength;
    }
  }

  /** Replaces the whole log by a snapshot received from the leader. */
  applySnapshot(meta: SnapshotMeta): void {
    this.snap = meta;
    this.prevIndex = meta.index;
    this.prevTerm = meta.term;
    this.releasedIndex = meta.index;
    this.heldBytes = 0;
    this.count = 0;
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
    const n = index - this.prevIndex;
    for (let k = Math.max(0, this.releasedIndex - this.prevIndex); k < n; k++) {
      this.heldBytes -= this.payloadBytes[k] as number;
    }
    this.ents.splice(0, n);
    this.terms.copyWithin(0, n, this.count);
    this.types.copyWithin(0, n, this.count);
    this.payloadBytes.copyWithin(0, n, this.count);
    this.count -= n;
    this.prevIndex = index;
    this.prevTerm = term as Term;
    if (this.releasedIndex < index) this.releasedIndex = index;
  }

  /**
   * Drops the objects of entries up to `index` (ConfChange entries excepted), keeping
   * their terms, types and sizes: `entries` then hands out stand-ins for them. Then, while
   * the payloads still held exceed `maxHeldBytes`, goes on releasing, up to `limit`. Only
   * for a driver that can serve those entries' bytes from elsewhere, and only for entries
   * it has already handed to the state machine (`limit`).
   */
  releaseObjects(index: Index, maxHeldBytes = Number.POSITIVE_INFINITY, limit: Index = index): void {
    const hard = Math.min(limit, this.lastIndex());
    const upTo = Math.min(index, hard);
    let i = this.releasedIndex + 1;
    for (; i <= upTo; i++) this.release(i);
    for (; i <= hard && this.heldBytes > maxHeldBytes; i++) this.release(i);
    if (i - 1 > this.releasedIndex) this.releasedIndex = i - 1;
  }

  /** Payload bytes of the entries whose objects are held (see `heldObjects`). */
  heldPayloadBytes(): number {
    return this.heldBytes;
  }

  private release(i: Index): void {
    const k = i - this.prevIndex - 1;
    this.heldBytes -= this.payloadBytes[k] as number;
    if (this.types[k] !== EntryType.ConfChange) this.ents[k] = undefined;
  }

  /** Entries whose objects are held, not counting the configuration changes kept below the released ones. */
  heldObjects(): number {
    return this.count - Math.max(0, this.releasedIndex - this.prevIndex);
  }

  private standIn(index: Index, k: number): Entry {
    return {
      index,
      term: this.terms[k] as Term,
      type: this.types[k] as EntryType,
      data: releasedPayloadOf(this.payloadBytes[k] as number),
    };
  }

  private reserve(capacity: number): void {
    if (capacity <= this.terms.length) return;
    let next = this.terms.length * 2;
    while (next < capacity) next *= 2;
    const terms = new Float64Array(next);
    terms.set(this.terms.subarray(0, this.count));
    const types = new Uint8Array(next);
    types.set(this.types.subarray(0, this.count));
    const bytes = new Uint32Array(next);
    bytes.set(this.payloadBytes.subarray(0, this.count));
    this.terms = terms;
    this.types = types;
    this.payloadBytes = bytes;
  }
}
