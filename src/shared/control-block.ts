/**
 * The control block: a small SharedArrayBuffer of named slots (layout in `protocol.ts`),
 * each written by one thread and read by any. This class is only typed access to it; it
 * holds no state of its own, so every thread makes its own over the same buffer.
 */

import {
  CONTROL_F64_APPLIED_INDEX,
  CONTROL_F64_COMMIT_INDEX,
  CONTROL_F64_DURABLE_INDEX,
  CONTROL_F64_DURABLE_TERM,
  CONTROL_F64_FSM_BATCHES,
  CONTROL_F64_LOG_BYTES,
  CONTROL_F64_LOG_DISK_BYTES,
  CONTROL_F64_PEER_BASE,
  CONTROL_F64_TERM,
  CONTROL_F64_WRITER_ENTRIES,
  CONTROL_F64_WRITER_SYNCS,
  CONTROL_MAGIC,
  CONTROL_SLOT_MAGIC,
  CONTROL_SLOT_PEER_SLOTS,
  CONTROL_SLOT_ROLE,
  CONTROL_SLOT_WINDOW_RECLAIMED_POS,
  CONTROL_SLOT_WRITER_DONE_SEQ,
  CONTROL_SLOT_WRITER_FAILED,
  controlBlockBytes,
} from './protocol.js';

/** Typed access to one control block. */
export class ControlBlock {
  readonly buffer: SharedArrayBuffer;
  readonly i32: Int32Array;
  readonly f64: Float64Array;
  readonly peerSlots: number;

  private constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.i32 = new Int32Array(buffer);
    this.f64 = new Float64Array(buffer);
    this.peerSlots = this.i32[CONTROL_SLOT_PEER_SLOTS] as number;
  }

  /** A new, zeroed control block with room for `peerSlots` peers. */
  static create(peerSlots: number): ControlBlock {
    const buffer = new SharedArrayBuffer(controlBlockBytes(peerSlots));
    const i32 = new Int32Array(buffer);
    i32[CONTROL_SLOT_PEER_SLOTS] = peerSlots;
    Atomics.store(i32, CONTROL_SLOT_MAGIC, CONTROL_MAGIC);
    return new ControlBlock(buffer);
  }

  /** Typed access to a control block made by `create` in another thread. */
  static open(buffer: SharedArrayBuffer): ControlBlock {
    const i32 = new Int32Array(buffer);
    if (Atomics.load(i32, CONTROL_SLOT_MAGIC) !== CONTROL_MAGIC) throw new TypeError('not a control block');
    return new ControlBlock(buffer);
  }

  // ---------------------------------------------------------------- log-writer's slots

  /** Log-writer: `(index, term)` is durable, with every barrier up to `seq`; wakes a waiter. */
  publishDurable(seq: number, index: number, term: number, syncs: number, entries: number): void {
    this.f64[CONTROL_F64_WRITER_SYNCS] = syncs;
    this.f64[CONTROL_F64_WRITER_ENTRIES] = entries;
    this.f64[CONTROL_F64_DURABLE_INDEX] = index;
    this.f64[CONTROL_F64_DURABLE_TERM] = term;
    // The seq store comes last: a reader that sees it also sees the stores above.
    Atomics.store(this.i32, CONTROL_SLOT_WRITER_DONE_SEQ, seq | 0);
    Atomics.notify(this.i32, CONTROL_SLOT_WRITER_DONE_SEQ);
  }

  /** Log-writer: a disk error stopped it; wakes a waiter. */
  publishWriterFailed(): void {
    Atomics.store(this.i32, CONTROL_SLOT_WRITER_FAILED, 1);
    Atomics.notify(this.i32, CONTROL_SLOT_WRITER_DONE_SEQ);
  }

  get writerDoneSeq(): number {
    return Atomics.load(this.i32, CONTROL_SLOT_WRITER_DONE_SEQ);
  }
  get writerFailed(): boolean {
    return Atomics.load(this.i32, CONTROL_SLOT_WRITER_FAILED) === 1;
  }
  get durableIndex(): number {
    return this.f64[CONTROL_F64_DURABLE_INDEX] as number;
  }
  get durableTerm(): number {
    return this.f64[CONTROL_F64_DURABLE_TERM] as number;
  }
  /** Log-writer: the log's size (records, and files on disk). */
  publishLogSize(logBytes: number, diskBytes: number): void {
    this.f64[CONTROL_F64_LOG_BYTES] = logBytes;
    this.f64[CONTROL_F64_LOG_DISK_BYTES] = diskBytes;
  }
  get logBytes(): number {
    return this.f64[CONTROL_F64_LOG_BYTES] as number;
  }
  get logDiskBytes(): number {
    return this.f64[CONTROL_F64_LOG_DISK_BYTES] as number;
  }
  /** fdatasyncs the log-writer has done. */
  get writerSyncs(): number {
    return this.f64[CONTROL_F64_WRITER_SYNCS] as number;
  }
  /** Entries the log-writer has written. */
  get writerEntries(): number {
    return this.f64[CONTROL_F64_WRITER_ENTRIES] as number;
  }

  // ---------------------------------------------------------------- fsm's slots

  /** fsm: everything up to `index` is applied, in `batches` onApply batches so far. */
  publishApplied(index: number, batches: number): void {
    this.f64[CONTROL_F64_FSM_BATCHES] = batches;
    // Read for status only (the coordinator learns what is applied from the result ring).
    this.f64[CONTROL_F64_APPLIED_INDEX] = index;
  }
  /** onApply batches the fsm has run. */
  get fsmBatches(): number {
    return this.f64[CONTROL_F64_FSM_BATCHES] as number;
  }
  get appliedIndex(): number {
    return this.f64[CONTROL_F64_APPLIED_INDEX] as number;
  }

  // ---------------------------------------------------------------- coordinator's slots

  set windowReclaimedPos(pos: number) {
    Atomics.store(this.i32, CONTROL_SLOT_WINDOW_RECLAIMED_POS, pos | 0);
  }
  get windowReclaimedPos(): number {
    return Atomics.load(this.i32, CONTROL_SLOT_WINDOW_RECLAIMED_POS) >>> 0;
  }
  set role(code: number) {
    Atomics.store(this.i32, CONTROL_SLOT_ROLE, code);
  }
  get role(): number {
    return Atomics.load(this.i32, CONTROL_SLOT_ROLE);
  }
  set term(term: number) {
    this.f64[CONTROL_F64_TERM] = term;
  }
  get term(): number {
    return this.f64[CONTROL_F64_TERM] as number;
  }
  set commitIndex(index: number) {
    this.f64[CONTROL_F64_COMMIT_INDEX] = index;
  }
  get commitIndex(): number {
    return this.f64[CONTROL_F64_COMMIT_INDEX] as number;
  }
  setPeer(slot: number, matchIndex: number, lastAckMs: number): void {
    if (slot >= this.peerSlots) return;
    this.f64[CONTROL_F64_PEER_BASE + 2 * slot] = matchIndex;
    this.f64[CONTROL_F64_PEER_BASE + 2 * slot + 1] = lastAckMs;
  }
  peerMatchIndex(slot: number): number {
    return this.f64[CONTROL_F64_PEER_BASE + 2 * slot] as number;
  }
  peerLastAckMs(slot: number): number {
    return this.f64[CONTROL_F64_PEER_BASE + 2 * slot + 1] as number;
  }
}

/** `a - b` for free-running u32 positions, as a signed distance (|distance| < 2^31). */
export function posDiff(a: number, b: number): number {
  return (a - b) | 0;
}
