/**
 * Read-only access to the Raft log's segment files (src/workers/log-writer/segment-log.ts)
 * for a replicator thread whose follower lags behind the in-memory log window.
 *
 * The reader runs in another thread than the log-writer, which keeps appending to (and
 * rarely truncating or unlinking) the very files being read. Nothing is shared with the
 * writer but the files, so every byte is distrusted: a record is returned only after both
 * of its CRCs and its index (the expected next one) were checked, and any doubt ends the
 * read with `null`, which the caller treats as "cannot serve this from disk now" (retry
 * later, or send a snapshot). What the races look like and why they are caught:
 * - An append in progress leaves a torn record or zeroes where the next record goes:
 *   a CRC fails or the index is not the next one.
 * - A truncation zeroes the removed bytes, then the new records overwrite them: a record
 *   read while that happens fails its CRCs; whole records of the new log carry a new term,
 *   which the check of `expectedLastTerm` at `hi` catches.
 * - Later segments are unlinked by a truncation (and old ones after a snapshot), and may
 *   be recreated under the same name. A cached descriptor would still read the old inode,
 *   whose records are intact, so after reading from a descriptor the reader checks with
 *   fstat that the file still has a name (`nlink > 0`): unlinking is final, so bytes read
 *   before a check that passes were read from the live file.
 *
 * Efficient for a follower catching up (reads of lo, lo+n, lo+2n...): descriptors stay
 * open, the segment list is re-read only when needed, and a sparse per-segment table of
 * record offsets (every `HINT_STRIDE_RECORDS`-th record, plus where the last read ended)
 * lets a read start at its first record instead of scanning its segment from the start.
 * Those offsets are hints: each is checked against the record found there and dropped
 * when wrong (a truncation moved the records).
 *
 * Synchronous on purpose, like the segment log: the replicator thread is dedicated to one
 * follower, and `fs.readSync` into a reused buffer allocates nothing per read.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32cRange, crc32cTable } from '../../shared/crc32c.js';
import { readU32, readU64 } from '../../shared/entry-codec.js';
import {
  DEFAULT_ENTRY_LIMITS,
  ENTRY_HEADER_BYTES,
  ENTRY_HEADER_CRC_OFFSET,
  ENTRY_HEADER_CRC_RESUME_OFFSET,
  ENTRY_INDEX_OFFSET,
  ENTRY_PAYLOAD_BYTES_OFFSET,
  ENTRY_PAYLOAD_CRC_OFFSET,
  ENTRY_RESERVED_OFFSET,
  ENTRY_TERM_OFFSET,
  ENTRY_TYPE_OFFSET,
  type EntryLimits,
  KNOWN_ENTRY_TYPES,
} from '../../shared/protocol.js';
import { segmentFileName } from '../log-writer/segment-log.js';

/** An offset hint is kept for every record whose position in its segment is a multiple of this. */
export const HINT_STRIDE_RECORDS = 64;
/** Descriptors kept open at most: a sequential reader needs two (a segment and the next). */
export const MAX_OPEN_SEGMENTS = 4;
/** Smallest read-ahead: below it the syscall, not the copy, dominates. */
const MIN_READ_BYTES = 16 * 1024;
/** Largest read-ahead of one `readSync` (a single record may still need more). */
const MAX_READ_BYTES = 1024 * 1024;
/** Initial size of the reusable read buffer; it grows to the largest read. */
const INITIAL_BUFFER_BYTES = 64 * 1024;
/**
 * Attempts per read: the first with the cached segment list, then re-listed ones. The
 * third covers a segment replaced between the re-listing and the read.
 */
const MAX_ATTEMPTS = 3;
const SEGMENT_NAME = /^(\d{20})\.seg$/;

/** What `SegmentReader.read` returns: verified records, ready for the wire. */
export interface SegmentRead {
  /** The stored records of indexes `lo..lastIndex` back to back, in a fresh ArrayBuffer. */
  readonly records: Uint8Array;
  /** Number of records: `lastIndex - lo + 1`, at least 1. */
  readonly count: number;
  /** Index of the last record returned. */
  readonly lastIndex: number;
}

/** Counters of a reader's work, for tests and benchmarks. */
export interface SegmentReaderStats {
  /** Calls of `read`. */
  readonly reads: number;
  /** Directory listings (readdirSync). */
  readonly relists: number;
  /** Segment files opened. */
  readonly opens: number;
  /** `readSync` calls. */
  readonly preads: number;
  /** Bytes those calls returned, read-ahead included. */
  readonly preadBytes: number;
  /** Offset hints found wrong and dropped. */
  readonly staleHints: number;
}

/** What the reader knows about one segment file. */
interface SegmentState {
  /** Index of its first record: its name. */
  readonly firstIndex: number;
  readonly file: string;
  /** Open descriptor, or -1. */
  fd: number;
  /**
   * Size of the file when opened. Segments are preallocated and never resized (a replaced
   * file is caught by the link check), so reads stop here without a syscall returning 0.
   */
  sizeBytes: number;
  /**
   * `strideOffsetsBytes[m]` is the offset of the record of index
   * `firstIndex + m * HINT_STRIDE_RECORDS` when last seen, -1 if unknown. Entry 0 is
   * always 0 (a segment starts with its first record).
   */
  readonly strideOffsetsBytes: number[];
  /** Index of the record after the last one read, 0 if none: where a sequential reader goes next. */
  cursorIndex: number;
  /** Offset of that record. */
  cursorOffsetBytes: number;
}

/** The attempt should be repeated with a fresh segment list. */
const RETRY = Symbol('retry');

/**
 * Reads verified stored records from the segment files in `logDir`, concurrently with the
 * log-writer. Read-only: never writes, truncates or unlinks. Not thread-safe (one per thread).
 */
export class SegmentReader {
  private readonly dir: string;
  private readonly maxEntryPayloadBytes: number;
  /** First indexes of the segments at the last listing, ascending. */
  private firstIndexes: number[] = [];
  private readonly segments = new Map<number, SegmentState>();
  /** Segments with an open descriptor, least recently used first (Set keeps insertion order). */
  private readonly openSegments = new Set<SegmentState>();
  private closed = false;

  // The state of the read in progress. `buf[outStartBytes, atBytes)` holds the verified
  // records so far (or, while locating the first one, nothing: outStart follows at);
  // `buf[atBytes, dataEndBytes)` holds file bytes from `atFileBytes` on, not yet parsed.
  private buf = new Uint8Array(INITIAL_BUFFER_BYTES);
  private outStartBytes = 0;
  private atBytes = 0;
  private dataEndBytes = 0;
  private atFileBytes = 0;
  private readHi = 0;
  private readMaxBytes = 0;
  private relistedThisAttempt = false;
  /** Mean record size of the last read, to size the read-ahead; 0 until known. */
  private meanRecordBytes = 0;

  private statReads = 0;
  private statRelists = 0;
  private statOpens = 0;
  private statPreads = 0;
  private statPreadBytes = 0;
  private statStaleHints = 0;

  /**
   * A reader of the segments in `logDir` (normally `<dataDir>/log`). Nothing is opened
   * until the first read. `limits` must allow every payload the node ever accepted, like
   * the log-writer's: a larger length is treated as damage.
   */
  constructor(logDir: string, limits: EntryLimits = DEFAULT_ENTRY_LIMITS) {
    this.dir = logDir;
    this.maxEntryPayloadBytes = limits.maxEntryPayloadBytes;
  }

  /**
   * The stored records of indexes `lo..k` back to back, exactly as in the files, for some
   * `k <= hi`: reading stops before the record that would take the total past `maxBytes`,
   * but at least one record is returned. Every record was verified: both CRCs, indexes
   * consecutive from `lo`, terms not decreasing. When `k === hi`, the record at `hi` must
   * also have term `expectedLastTerm` (else the log was truncated and rewritten since the
   * caller chose what to send).
   *
   * Returns null when that cannot be done safely: the segment holding `lo` is gone
   * (removed after a snapshot), a record is damaged or out of sequence (a concurrent
   * write or truncation), the range runs past what is on disk before `maxBytes` is
   * reached, or the term at `hi` differs. Never throws on file contents; throws RangeError
   * for impossible arguments (lo < 1, hi < lo, a NaN budget), Error after `close()`, and
   * passes on I/O errors other than a vanished file (EIO, EMFILE), which no retry fixes.
   */
  read(lo: number, hi: number, expectedLastTerm: number, maxBytes: number): SegmentRead | null {
    if (!Number.isSafeInteger(lo) || lo < 1) throw new RangeError(`read from index ${lo}`);
    if (!Number.isSafeInteger(hi) || hi < lo) throw new RangeError(`read of indexes ${lo}..${hi}`);
    if (Number.isNaN(maxBytes)) throw new RangeError('read with a NaN byte budget');
    if (this.closed) throw new Error(`segment reader of ${this.dir} is closed`);
    this.statReads++;
    this.readHi = hi;
    this.readMaxBytes = maxBytes;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      this.relistedThisAttempt = false;
      if (attempt > 0) this.relist();
      let result: SegmentRead | null | typeof RETRY;
      try {
        result = this.attempt(lo, hi, expectedLastTerm);
      } catch (err) {
        // A segment unlinked between the listing and the open.
        if (!isNotFound(err)) throw err;
        result = RETRY;
      }
      if (result !== RETRY) return result;
    }
    return null;
  }

  /** Counters of the work done so far. */
  stats(): SegmentReaderStats {
    return {
      reads: this.statReads,
      relists: this.statRelists,
      opens: this.statOpens,
      preads: this.statPreads,
      preadBytes: this.statPreadBytes,
      staleHints: this.statStaleHints,
    };
  }

  /** Closes every descriptor. Idempotent; `read` throws afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const segment of this.segments.values()) this.closeFd(segment);
    this.segments.clear();
    this.firstIndexes = [];
  }

  // ---------------------------------------------------------------- internals

  /**
   * One try at the read. RETRY when a fresh segment list might help: the segment read was
   * unlinked, or the records ran out and the list was not re-read during this attempt.
   */
  private attempt(lo: number, hi: number, expectedLastTerm: number): SegmentRead | null | typeof RETRY {
    this.outStartBytes = 0;
    this.atBytes = 0;
    this.dataEndBytes = 0;
    this.atFileBytes = 0;
    const known = this.firstIndexes;
    if (known.length === 0 || lo < (known[0] as number)) this.relist();
    const position = this.positionOf(lo);
    // Before the first segment: removed after a snapshot (or never written).
    if (position < 0) return null;
    let segment = this.stateAt(position);
    if (!this.locate(segment, lo)) return this.failure(segment);

    let expected = lo;
    let lastTerm = 0;
    while (expected <= hi) {
      const recordBytes = this.header(segment, expected);
      if (recordBytes < 0) {
        // The segment's records end here (or are damaged, or being written): the next
        // record can only be the first of the next segment.
        if (this.unlinked(segment)) return RETRY;
        const next = this.nextSegment(segment, expected);
        if (next === null) return this.relistedThisAttempt ? null : RETRY;
        segment = next;
        this.dataEndBytes = this.atBytes;
        this.atFileBytes = 0;
        continue;
      }
      const keptBytes = this.atBytes - this.outStartBytes;
      if (keptBytes > 0 && keptBytes + recordBytes > this.readMaxBytes) break;
      if (!this.fill(segment, recordBytes, this.readAheadBytes(expected))) {
        return this.failure(segment);
      }
      // `header` checked the header CRC, length and index; the payload CRC remains.
      const at = this.atBytes;
      const payloadCrc = crc32cRange(this.buf, at + ENTRY_HEADER_BYTES, at + recordBytes);
      if (payloadCrc !== readU32(this.buf, at + ENTRY_PAYLOAD_CRC_OFFSET)) return this.failure(segment);
      const term = readU64(this.buf, at + ENTRY_TERM_OFFSET);
      if (term < Math.max(lastTerm, 1)) return this.failure(segment);
      lastTerm = term;
      this.atBytes += recordBytes;
      this.atFileBytes += recordBytes;
      expected++;
    }
    // Verified bytes count only if the file still had its name after they were read.
    if (this.unlinked(segment)) return RETRY;
    const lastIndex = expected - 1;
    if (lastIndex === hi && lastTerm !== expectedLastTerm) return null;
    segment.cursorIndex = expected;
    segment.cursorOffsetBytes = this.atFileBytes;
    const count = lastIndex - lo + 1;
    const records = this.buf.slice(this.outStartBytes, this.atBytes);
    this.meanRecordBytes = Math.ceil(records.byteLength / count);
    return { records, count, lastIndex };
  }

  /** The outcome of a read that failed in `segment`: retry with a fresh list unless that was done. */
  private failure(segment: SegmentState): null | typeof RETRY {
    if (this.unlinked(segment)) return RETRY;
    return this.relistedThisAttempt ? null : RETRY;
  }

  /**
   * Positions the read at the record of `lo` in `segment`, starting from the best offset
   * hint at or below it (the cursor of the last read, else a stride hint, else the start
   * of the segment) and skipping the records in between by their verified headers. A hint
   * whose record is not the expected one is dropped and the next best is tried. False if
   * `lo` is not in the segment as it is now.
   */
  private locate(segment: SegmentState, lo: number): boolean {
    const strides = segment.strideOffsetsBytes;
    for (;;) {
      let m = Math.min(Math.floor((lo - segment.firstIndex) / HINT_STRIDE_RECORDS), strides.length - 1);
      while (m > 0 && (strides[m] as number) < 0) m--;
      let index = segment.firstIndex + m * HINT_STRIDE_RECORDS;
      let offsetBytes = m > 0 ? (strides[m] as number) : 0;
      const fromCursor = segment.cursorIndex > index && segment.cursorIndex <= lo;
      if (fromCursor) {
        index = segment.cursorIndex;
        offsetBytes = segment.cursorOffsetBytes;
      }
      this.atBytes = 0;
      this.dataEndBytes = 0;
      this.outStartBytes = 0;
      this.atFileBytes = offsetBytes;
      let recordBytes = this.header(segment, index);
      if (recordBytes < 0) {
        if (!fromCursor && m === 0) return false;
        // A truncation moved the records since this hint was learned; so are, likely,
        // all hints after it.
        this.statStaleHints++;
        if (fromCursor) segment.cursorIndex = 0;
        else strides.length = m;
        continue;
      }
      while (index < lo) {
        // Skipped records need only their headers: the length is covered by the header CRC.
        const inBufferBytes = Math.min(recordBytes, this.dataEndBytes - this.atBytes);
        this.atBytes += inBufferBytes;
        if (inBufferBytes < recordBytes) this.dataEndBytes = this.atBytes;
        this.atFileBytes += recordBytes;
        this.outStartBytes = this.atBytes;
        index++;
        recordBytes = this.header(segment, index);
        if (recordBytes < 0) return false;
      }
      return true;
    }
  }

  /**
   * Checks the header at the read position: its CRC (which makes its length trustworthy),
   * a length within the limit, known type, zero reserved bytes, and `index`. Returns the
   * record's length, or -1. Learns a stride hint on the way.
   */
  private header(segment: SegmentState, index: number): number {
    if (!this.fill(segment, ENTRY_HEADER_BYTES, this.readAheadBytes(index))) return -1;
    const at = this.atBytes;
    const buf = this.buf;
    // Inline rather than through decodeEntryAt: a header alone would decode as "torn", and
    // building that result (with its message) per record, then decoding the whole record
    // again, cost a third of the throughput (native-bench/segment-reader-bench.ts).
    const headerCrc = crc32cTable(
      buf,
      at + ENTRY_HEADER_CRC_RESUME_OFFSET,
      at + ENTRY_HEADER_BYTES,
      crc32cTable(buf, at, at + ENTRY_HEADER_CRC_OFFSET),
    );
    if (headerCrc !== readU32(buf, at + ENTRY_HEADER_CRC_OFFSET)) return -1;
    const payloadBytes = readU32(buf, at + ENTRY_PAYLOAD_BYTES_OFFSET);
    if (payloadBytes > this.maxEntryPayloadBytes) return -1;
    // An intact header with fields out of range was written by another format or a bug:
    // the same refusals as decodeEntryAt's (term and index are checked by the callers).
    if (!KNOWN_ENTRY_TYPES.includes(buf[at + ENTRY_TYPE_OFFSET] as number)) return -1;
    if (
      (buf[at + ENTRY_RESERVED_OFFSET] |
        buf[at + ENTRY_RESERVED_OFFSET + 1] |
        buf[at + ENTRY_RESERVED_OFFSET + 2]) !==
      0
    ) {
      return -1;
    }
    const recordBytes = ENTRY_HEADER_BYTES + payloadBytes;
    if (readU64(this.buf, at + ENTRY_INDEX_OFFSET) !== index) return -1;
    const position = index - segment.firstIndex;
    if (position % HINT_STRIDE_RECORDS === 0 && position > 0) {
      const m = position / HINT_STRIDE_RECORDS;
      const strides = segment.strideOffsetsBytes;
      while (strides.length <= m) strides.push(-1);
      strides[m] = this.atFileBytes;
    }
    return recordBytes;
  }

  /**
   * Makes `buf[atBytes, atBytes + needBytes)` hold the file's bytes, reading at least
   * `wantBytes` at a time (but not past the file's size). False if the file ends first.
   */
  private fill(segment: SegmentState, needBytes: number, wantBytes: number): boolean {
    while (this.dataEndBytes - this.atBytes < needBytes) {
      const fd = this.fdOf(segment);
      const haveBytes = this.dataEndBytes - this.atBytes;
      const filePositionBytes = this.atFileBytes + haveBytes;
      const leftBytes = segment.sizeBytes - filePositionBytes;
      if (leftBytes < needBytes - haveBytes) return false;
      const readBytes = Math.min(Math.max(needBytes - haveBytes, wantBytes), leftBytes);
      if (this.dataEndBytes + readBytes > this.buf.byteLength) {
        if (this.outStartBytes > 0) {
          // Bytes before outStart are skipped records: drop them rather than grow.
          this.buf.copyWithin(0, this.outStartBytes, this.dataEndBytes);
          this.atBytes -= this.outStartBytes;
          this.dataEndBytes -= this.outStartBytes;
          this.outStartBytes = 0;
        }
        if (this.dataEndBytes + readBytes > this.buf.byteLength) {
          const grown = new Uint8Array(Math.max(this.dataEndBytes + readBytes, 2 * this.buf.byteLength));
          grown.set(this.buf.subarray(0, this.dataEndBytes));
          this.buf = grown;
        }
      }
      const n = fs.readSync(fd, this.buf, this.dataEndBytes, readBytes, filePositionBytes);
      this.statPreads++;
      this.statPreadBytes += n;
      if (n === 0) return false;
      this.dataEndBytes += n;
    }
    return true;
  }

  /**
   * How much to read ahead at index `index`: what the rest of the budget and of the range
   * (at the last read's mean record size) may still take, within [MIN_READ, MAX_READ].
   * Reading more than needed only costs a copy from the page cache; reading too little
   * costs another syscall.
   */
  private readAheadBytes(index: number): number {
    let wantBytes = MAX_READ_BYTES;
    const budgetBytes = this.readMaxBytes - (this.atBytes - this.outStartBytes) + ENTRY_HEADER_BYTES;
    if (budgetBytes < wantBytes) wantBytes = budgetBytes;
    if (this.meanRecordBytes > 0) {
      const rangeBytes = (this.readHi - index + 1) * this.meanRecordBytes + ENTRY_HEADER_BYTES;
      if (rangeBytes < wantBytes) wantBytes = rangeBytes;
    }
    return Math.max(wantBytes, MIN_READ_BYTES);
  }

  /**
   * The segment that must follow `segment` for the record of `index`: the next one listed
   * if it starts at `index`, after re-listing once if `segment` was the last listed.
   */
  private nextSegment(segment: SegmentState, index: number): SegmentState | null {
    let position = this.positionOf(segment.firstIndex) + 1;
    if (position >= this.firstIndexes.length) {
      if (this.relistedThisAttempt) return null;
      this.relist();
      position = this.positionOf(index);
    }
    if (position < 0 || this.firstIndexes[position] !== index) return null;
    return this.stateAt(position);
  }

  /**
   * Whether `segment`'s file lost its name (unlinked or replaced). If so it is forgotten,
   * so the next attempt opens whatever now has the name.
   */
  private unlinked(segment: SegmentState): boolean {
    if (segment.fd < 0) return false;
    if (fs.fstatSync(segment.fd).nlink > 0) return false;
    this.forget(segment);
    return true;
  }

  /** Re-reads the segment list; segments no longer listed are closed and forgotten. */
  private relist(): void {
    this.statRelists++;
    this.relistedThisAttempt = true;
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      names = [];
    }
    const firstIndexes: number[] = [];
    for (const name of names) {
      const match = SEGMENT_NAME.exec(name);
      if (match === null) continue;
      const firstIndex = Number(match[1]);
      if (Number.isSafeInteger(firstIndex) && firstIndex >= 1) firstIndexes.push(firstIndex);
    }
    firstIndexes.sort((a, b) => a - b);
    const listed = new Set(firstIndexes);
    for (const segment of this.segments.values()) {
      if (!listed.has(segment.firstIndex)) this.forget(segment);
    }
    this.firstIndexes = firstIndexes;
  }

  /** Position in the list of the last segment starting at or before `index`, -1 if none. */
  private positionOf(index: number): number {
    const list = this.firstIndexes;
    let lo = 0;
    let hi = list.length - 1;
    if (hi < 0 || (list[0] as number) > index) return -1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((list[mid] as number) <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The state of the listed segment at `position`, created on first use. */
  private stateAt(position: number): SegmentState {
    const firstIndex = this.firstIndexes[position] as number;
    let segment = this.segments.get(firstIndex);
    if (segment === undefined) {
      segment = {
        firstIndex,
        file: path.join(this.dir, segmentFileName(firstIndex)),
        fd: -1,
        sizeBytes: 0,
        strideOffsetsBytes: [0],
        cursorIndex: 0,
        cursorOffsetBytes: 0,
      };
      this.segments.set(firstIndex, segment);
    }
    return segment;
  }

  /** The segment's descriptor, opened if needed; the least recently used beyond the cap is closed. */
  private fdOf(segment: SegmentState): number {
    if (segment.fd >= 0) {
      // Most recently used goes last.
      this.openSegments.delete(segment);
      this.openSegments.add(segment);
      return segment.fd;
    }
    if (this.openSegments.size >= MAX_OPEN_SEGMENTS) {
      const oldest = this.openSegments.values().next().value as SegmentState;
      this.closeFd(oldest);
    }
    const fd = fs.openSync(segment.file, 'r');
    try {
      segment.sizeBytes = fs.fstatSync(fd).size;
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    segment.fd = fd;
    this.statOpens++;
    this.openSegments.add(segment);
    return segment.fd;
  }

  private closeFd(segment: SegmentState): void {
    if (segment.fd >= 0) {
      fs.closeSync(segment.fd);
      segment.fd = -1;
    }
    this.openSegments.delete(segment);
  }

  /** Closes and drops everything known about `segment`: its name may now be another file. */
  private forget(segment: SegmentState): void {
    this.closeFd(segment);
    if (this.segments.get(segment.firstIndex) === segment) this.segments.delete(segment.firstIndex);
  }
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}
