/**
 * The log window (layout and rules in `protocol.ts`, "log window"): the encoded recent
 * entries in one SharedArrayBuffer, written once by the coordinator and read by every
 * worker. `LogWindowWriter` is the coordinator's side; workers only need
 * `windowView`, since they are always handed explicit regions.
 */

import type { Entry, Index } from '../raft/types.js';
import { posDiff } from './control-block.js';
import { encodedEntryBytes, encodeEntry, readU32 } from './entry-codec.js';
import { ENTRY_HEADER_BYTES, ENTRY_PAYLOAD_BYTES_OFFSET } from './protocol.js';

/** A contiguous span of the window: positions are free-running u32. */
export interface WindowRegion {
  readonly pos: number;
  readonly byteLength: number;
}

/** A view of `byteLength` bytes at window position `pos` (the region must be contiguous). */
export function windowView(bytes: Uint8Array, pos: number, byteLength: number): Uint8Array {
  const offset = pos & (bytes.byteLength - 1);
  return bytes.subarray(offset, offset + byteLength);
}

/**
 * The coordinator's side of the window. It keeps, for a contiguous range of the current
 * log `[firstIndex, lastIndex]`, where each entry's record starts. An entry is either in
 * that range or not in the window at all: when one does not fit, the range restarts
 * after it, so "in the window" is always a suffix of what was written.
 *
 * Invariant: for i in [firstIndex, lastIndex], the record of entry i starts at
 * `posByIndex[i % slots]`, lies in [reclaimedPos, writePos) and never wraps.
 */
export class LogWindowWriter {
  readonly buffer: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  readonly capacityBytes: number;
  private readonly mask: number;
  private readonly posByIndex: Float64Array;
  private readonly slots: number;
  /** Next free position (u32, free-running). */
  private writePos = 0;
  private reclaimedPos = 0;
  firstIndex: Index = 1;
  lastIndex: Index = 0;
  /** Entries that did not fit and went inline: a measure of whether the window is big enough. */
  overflowEntries = 0;

  constructor(capacityBytes: number) {
    if (
      !Number.isInteger(capacityBytes) ||
      capacityBytes < 4096 ||
      (capacityBytes & (capacityBytes - 1)) !== 0
    ) {
      throw new RangeError(`log window capacity ${capacityBytes} must be a power of two >= 4096`);
    }
    this.capacityBytes = capacityBytes;
    this.mask = capacityBytes - 1;
    this.buffer = new SharedArrayBuffer(capacityBytes);
    this.bytes = new Uint8Array(this.buffer);
    // Every record is at least a header, so the window never holds more entries than this.
    this.slots = capacityBytes / ENTRY_HEADER_BYTES;
    this.posByIndex = new Float64Array(this.slots);
  }

  /** Whether entry `i` of the current log is in the window. */
  has(i: Index): boolean {
    return i >= this.firstIndex && i <= this.lastIndex;
  }

  /** Bytes in use (written and not reclaimed). */
  get usedBytes(): number {
    return posDiff(this.writePos, this.reclaimedPos);
  }

  /**
   * Writes `e` after the entries already there. An index at or below `lastIndex` first
   * drops the suffix from there (a follower's log was truncated); a gap restarts the
   * range. Returns false, writing nothing, when the record does not fit before
   * `reclaimedPos`: the caller sends it inline and the range restarts after it.
   */
  append(e: Entry): boolean {
    if (e.index <= this.lastIndex) this.lastIndex = Math.max(e.index - 1, this.firstIndex - 1);
    if (e.index !== this.lastIndex + 1 || this.lastIndex < this.firstIndex) this.firstIndex = e.index;
    const recordBytes = encodedEntryBytes(e);
    const offset = this.writePos & this.mask;
    const skip = offset + recordBytes > this.capacityBytes ? this.capacityBytes - offset : 0;
    if (skip + recordBytes + this.usedBytes > this.capacityBytes || e.index - this.firstIndex >= this.slots) {
      this.overflowEntries++;
      this.firstIndex = e.index + 1;
      this.lastIndex = e.index;
      return false;
    }
    const pos = (this.writePos + skip) >>> 0;
    encodeEntry(e, this.bytes, pos & this.mask);
    this.posByIndex[e.index % this.slots] = pos;
    this.writePos = (pos + recordBytes) >>> 0;
    this.lastIndex = e.index;
    return true;
  }

  /** Where entry `i`'s record starts. Only for `has(i)`. */
  posOf(i: Index): number {
    return this.posByIndex[i % this.slots] as number;
  }

  /**
   * Whether entry `i`'s record starts right where a region ending at `endPos` ends, so the
   * two form one contiguous region. A region that ends exactly at the end of the data area
   * never continues: the next position is offset 0 of the next lap.
   */
  follows(i: Index, endPos: number): boolean {
    return this.posOf(i) === endPos && (endPos & this.mask) !== 0;
  }

  /** Bytes of entry `i`'s record. Only for `has(i)`. */
  recordBytesOf(i: Index): number {
    return ENTRY_HEADER_BYTES + readU32(this.bytes, (this.posOf(i) & this.mask) + ENTRY_PAYLOAD_BYTES_OFFSET);
  }

  /**
   * The longest contiguous region starting at entry `lo` and ending at or before `hi`;
   * returns the last index it covers via `out`. Only for `has(lo)`.
   */
  run(lo: Index, hi: Index, out: { pos: number; byteLength: number; last: Index }): void {
    const start = this.posOf(lo);
    let end = (start + this.recordBytesOf(lo)) >>> 0;
    let last = lo;
    const stop = Math.min(hi, this.lastIndex);
    while (last < stop && this.follows(last + 1, end)) {
      last++;
      end = (end + this.recordBytesOf(last)) >>> 0;
    }
    out.pos = start;
    out.byteLength = posDiff(end, start);
    out.last = last;
  }

  /** Position of the first byte still needed by whoever reads entries from `i` on (writePos if none). */
  holdFor(i: Index): number {
    const from = Math.max(i, this.firstIndex);
    return from <= this.lastIndex ? this.posOf(from) : this.writePos;
  }

  /**
   * Frees the bytes before `pos` (the older of what the log-writer and the fsm still
   * need). Entries whose records start before it leave the range. Returns the new
   * reclaimed position, which the coordinator publishes in the control block.
   */
  reclaim(pos: number): number {
    if (posDiff(pos, this.reclaimedPos) <= 0) return this.reclaimedPos;
    this.reclaimedPos = pos >>> 0;
    while (this.firstIndex <= this.lastIndex && posDiff(this.posOf(this.firstIndex), this.reclaimedPos) < 0) {
      this.firstIndex++;
    }
    if (this.firstIndex > this.lastIndex) {
      // Nothing left in the range: also forget the skipped tail, the whole area is free.
      this.firstIndex = this.lastIndex + 1;
    }
    return this.reclaimedPos;
  }

  /** The next write position (for the log-writer's and fsm's hold when they need nothing). */
  get position(): number {
    return this.writePos;
  }
}
