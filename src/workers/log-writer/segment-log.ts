/**
 * The Raft log on disk (DESIGN.md, "On disk"): `<dataDir>/log/<firstIndex>.seg` segment
 * files holding stored entry records (src/shared/protocol.ts) back to back from offset 0.
 *
 * Synchronous on purpose: it runs inside the log-writer worker thread, where blocking is
 * the job, and synchronous calls keep the ordering of writes, syncs and unlinks obvious.
 *
 * Why the files look the way they do:
 * - A segment is preallocated with written zeroes (not ftruncate, which leaves a sparse
 *   file). Appends then overwrite allocated blocks, so an fdatasync flushes data only and
 *   needs no journal commit for new blocks or a new file size; on the target disk that
 *   doubles the fdatasync rate. The zero area after the last record marks the end, which
 *   `scanEntries` recognises (`zeroes`).
 * - Whatever is removed (a Raft conflicting suffix, a torn tail) is overwritten with zeroes,
 *   because stale records left behind the new end would read as data following damage
 *   after a later crash, and recovery would then refuse to start.
 * - Preallocation writes `<name>.seg.tmp` and renames it into place, so a crash while
 *   zero-filling never leaves a half-allocated segment under a real name.
 * - Later segments are unlinked newest first, so a crash part-way leaves a contiguous
 *   prefix of the log, never a hole.
 *
 * An in-memory table of record offsets per segment makes truncation and `readRange` seek
 * directly, without rescanning files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readU32, readU64, scanEntries } from '../../shared/entry-codec.js';
import {
  DEFAULT_ENTRY_LIMITS,
  ENTRY_HEADER_BYTES,
  ENTRY_INDEX_OFFSET,
  ENTRY_PAYLOAD_BYTES_OFFSET,
  ENTRY_TERM_OFFSET,
  type EntryLimits,
} from '../../shared/protocol.js';

/** Default size of a segment file: 64 MiB, preallocated when the segment is created. */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Digits of the zero-padded first index in a segment's file name (2^64 has 20). */
export const SEGMENT_NAME_DIGITS = 20;
/** Suffix of a segment file. */
export const SEGMENT_SUFFIX = '.seg';
/** Suffix of a segment being preallocated; such leftovers of a crash are removed on open. */
export const SEGMENT_TMP_SUFFIX = '.seg.tmp';

/** Zeroes are written in chunks of this size: large enough for few syscalls, small enough to keep. */
const ZERO_CHUNK_BYTES = 1024 * 1024;
/** A segment made for an oversized record is rounded up to whole pages. */
const PAGE_BYTES = 4096;
const SEGMENT_NAME = /^(\d{20})\.seg$/;

let zeroChunk: Uint8Array | null = null;

/** The minimal logger the log needs; pino's `Logger` satisfies it. */
export interface SegmentLogLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Options of `SegmentLog.open`. */
export interface SegmentLogOptions {
  /** Directory of the segments, normally `<dataDir>/log`; created if missing. */
  readonly dir: string;
  /** Size of a new segment file (default `DEFAULT_SEGMENT_BYTES`). Existing files keep their size. */
  readonly segmentBytes?: number;
  /**
   * Whether to fdatasync/fsync at all (default true). False trades durability for speed:
   * an OS crash or power loss may then lose acknowledged entries and votes. Only for tests
   * and benchmarks, or clusters that accept that.
   */
  readonly sync?: boolean;
  /** Where the tail cut by recovery is reported. Silent if absent. */
  readonly logger?: SegmentLogLogger;
  /** Decoder limits used by recovery; must allow every payload the node ever accepted. */
  readonly limits?: EntryLimits;
}

/** A torn tail that recovery removed from the last segment. */
export interface CutTail {
  /** The segment file. */
  readonly file: string;
  /** Where the valid records end and the cut begins. */
  readonly offsetBytes: number;
  /** Non-zero bytes that were overwritten with zeroes. */
  readonly droppedBytes: number;
  /** Why, in the scan's words. */
  readonly reason: string;
}

/** What `SegmentLog.open` found on disk. */
export interface RecoveredLog {
  /** Index of the first entry, 0 if the log is empty. */
  readonly firstIndex: number;
  /** Index of the last entry, 0 if the log is empty. */
  readonly lastIndex: number;
  /** Term of the last entry, 0 if the log is empty. */
  readonly lastTerm: number;
  readonly entryCount: number;
  /** Every valid record back to back, in index order, in a fresh ArrayBuffer (transferable). */
  readonly records: Uint8Array;
  /** The torn tail that was cut, or null if the log was clean. */
  readonly cutTail: CutTail | null;
}

/**
 * The log on disk is damaged somewhere other than a torn tail: committed data may be
 * wrong or missing, so the node must not start (DESIGN.md, "On disk").
 */
export class LogCorruptionError extends Error {
  /** Stable code for callers and logs. */
  readonly code = 'ERR_RAFT_LOG_CORRUPT';
  /** The segment file where the damage was found. */
  readonly file: string;
  /** Offset within `file` of the first record that could not be accepted. */
  readonly offsetBytes: number;
  /** What is wrong, in words. */
  readonly reason: string;

  /** Builds the error; the message names the file, the offset and the reason. */
  constructor(file: string, offsetBytes: number, reason: string) {
    super(`raft log is corrupt: ${file} at offset ${offsetBytes}: ${reason}`);
    this.name = 'LogCorruptionError';
    this.file = file;
    this.offsetBytes = offsetBytes;
    this.reason = reason;
  }
}

/** One segment file and what is known about its records. */
interface Segment {
  /** Index of its first record: its name. */
  readonly firstIndex: number;
  readonly file: string;
  /** Open descriptor, or -1. Only the last segment keeps one open. */
  fd: number;
  /** Size of the file: records must end within it. */
  readonly capacityBytes: number;
  /** Where the next record goes: the end of the last record. */
  writeEndBytes: number;
  /** Offset of each record: `offsets[i]` is the record of index `firstIndex + i`. */
  readonly offsets: number[];
}

const NO_LOGGER: SegmentLogLogger = { info: () => {}, warn: () => {} };

/**
 * The segmented Raft log. Appends write without syncing; `sync()` makes everything
 * written so far durable with one fdatasync per written file (group commit).
 */
export class SegmentLog {
  private readonly dir: string;
  private readonly segmentBytes: number;
  private readonly syncEnabled: boolean;
  /** Segments in index order. Only the last one may hold no records. */
  private readonly segments: Segment[] = [];
  /** Segments written (or zeroed) since the last `sync()`. */
  private readonly dirty = new Set<Segment>();
  private lastIndexValue = 0;
  private lastTermValue = 0;
  private closed = false;
  /**
   * The next segment, zero-filled ahead of need a step at a time while the writer is idle
   * (`prepareSpare`), so that starting a segment under load is a rename, not a 64 MiB
   * write. Null until the first step; `spareBytes` counts the zeroed (and synced) bytes.
   */
  private spareFd: number | null = null;
  private spareBytes = 0;

  private constructor(dir: string, segmentBytes: number, syncEnabled: boolean) {
    this.dir = dir;
    this.segmentBytes = segmentBytes;
    this.syncEnabled = syncEnabled;
  }

  /**
   * Opens (creating if needed) the log in `options.dir` and recovers it: every segment is
   * read and scanned. A torn tail of the last segment is zeroed, synced, logged and
   * reported in `cutTail`; any other damage throws `LogCorruptionError`, since cutting it
   * could drop committed entries.
   */
  static open(options: SegmentLogOptions): { log: SegmentLog; recovered: RecoveredLog } {
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes < ENTRY_HEADER_BYTES) {
      throw new RangeError(
        `segmentBytes ${segmentBytes} must be an integer of at least ${ENTRY_HEADER_BYTES}`,
      );
    }
    const logger = options.logger ?? NO_LOGGER;
    const limits = options.limits ?? DEFAULT_ENTRY_LIMITS;
    const log = new SegmentLog(options.dir, segmentBytes, options.sync ?? true);
    fs.mkdirSync(log.dir, { recursive: true });

    const names = fs.readdirSync(log.dir);
    let removedTmp = false;
    for (const name of names) {
      if (name.endsWith(SEGMENT_TMP_SUFFIX)) {
        fs.unlinkSync(path.join(log.dir, name));
        removedTmp = true;
      }
    }
    if (removedTmp) log.syncDir();
    const segmentNames = names.filter((name) => SEGMENT_NAME.test(name)).sort();

    let recordBytes = 0;
    let cutTail: CutTail | null = null;
    try {
      for (let i = 0; i < segmentNames.length; i++) {
        const name = segmentNames[i] as string;
        const file = path.join(log.dir, name);
        const isLast = i === segmentNames.length - 1;
        const nameIndex = Number(name.slice(0, SEGMENT_NAME_DIGITS));
        if (!Number.isSafeInteger(nameIndex) || nameIndex < 1) {
          throw new LogCorruptionError(file, 0, 'segment name is not an index in 1..2^53-1');
        }
        const previous = log.segments.at(-1);
        if (previous !== undefined) {
          const previousLast = previous.firstIndex + previous.offsets.length - 1;
          if (previous.offsets.length === 0) {
            throw new LogCorruptionError(
              previous.file,
              0,
              `segment holds no records but is followed by ${file}`,
            );
          }
          if (nameIndex !== previousLast + 1) {
            throw new LogCorruptionError(
              previous.file,
              previous.writeEndBytes,
              `segment ends at index ${previousLast} but the next segment ${file} starts at index ${nameIndex}`,
            );
          }
        }

        const bytes = fs.readFileSync(file);
        const scan = scanEntries(bytes, 0, bytes.byteLength, { expectedFirstIndex: nameIndex, limits });
        const validEndBytes = scan.validEndOffset;
        const stop = scan.stop;
        if (stop.kind === 'torn' || stop.kind === 'damaged') {
          const tornTail = stop.kind === 'torn' || stop.tornWrite;
          if (!isLast || !tornTail) throw new LogCorruptionError(file, validEndBytes, stop.error.message);
          cutTail = log.cutTornTail(file, bytes, validEndBytes, stop.error.message);
          logger.warn(cutTail, 'log tail cut');
        }
        if (scan.recordCount > 0 && previous !== undefined) {
          const firstTerm = readU64(bytes, ENTRY_TERM_OFFSET);
          if (firstTerm < log.lastTermValue) {
            throw new LogCorruptionError(
              file,
              0,
              `term ${firstTerm} follows term ${log.lastTermValue} of the previous segment`,
            );
          }
        }

        const offsets: number[] = [];
        for (let offset = 0; offset < validEndBytes; ) {
          offsets.push(offset);
          offset += ENTRY_HEADER_BYTES + readU32(bytes, offset + ENTRY_PAYLOAD_BYTES_OFFSET);
        }
        log.segments.push({
          firstIndex: nameIndex,
          file,
          fd: -1,
          capacityBytes: bytes.byteLength,
          writeEndBytes: validEndBytes,
          offsets,
        });
        if (scan.recordCount > 0) {
          log.lastIndexValue = scan.lastIndex;
          log.lastTermValue = scan.lastTerm;
          recordBytes += validEndBytes;
        }
      }
    } catch (err) {
      log.close();
      throw err;
    }

    // A second pass reads the valid records straight into the result (from the page
    // cache by now), so recovery holds one segment plus the result rather than the whole
    // log twice. A fresh ArrayBuffer, not Buffer.concat: small Buffers share a pool, and
    // the caller transfers this buffer to another thread.
    const records = new Uint8Array(recordBytes);
    let at = 0;
    for (const segment of log.segments) {
      log.withFd(segment, (fd) => readAll(fd, records, at, segment.writeEndBytes, 0));
      at += segment.writeEndBytes;
    }
    const firstIndex = log.firstIndex();
    const recovered: RecoveredLog = {
      firstIndex,
      lastIndex: log.lastIndexValue,
      lastTerm: log.lastTermValue,
      entryCount: firstIndex === 0 ? 0 : log.lastIndexValue - firstIndex + 1,
      records,
      cutTail,
    };
    return { log, recovered };
  }

  /**
   * Log compaction after a snapshot: deletes the segments whose every entry is at or
   * below `index`, oldest first (so a crash midway leaves a log that still starts at a
   * segment boundary). The open segment is never deleted. Returns the segments deleted.
   */
  compactTo(index: number): number {
    this.assertOpen();
    let deleted = 0;
    while (this.segments.length > 1 && (this.segments[1] as Segment).firstIndex <= index + 1) {
      const segment = this.segments.shift() as Segment;
      this.dirty.delete(segment);
      this.closeFd(segment);
      fs.unlinkSync(segment.file);
      deleted++;
    }
    if (deleted > 0) this.syncDir();
    return deleted;
  }

  /**
   * A snapshot from the leader replaced the whole log: deletes every segment, newest
   * first (a crash midway leaves a prefix of the old log, which recovery checks against
   * the snapshot), and syncs the directory. The next append may start at any index.
   */
  reset(): void {
    this.assertOpen();
    if (this.segments.length === 0) return;
    while (this.segments.length > 0) this.dropLastSegment();
    this.lastIndexValue = 0;
    this.lastTermValue = 0;
    this.syncDir();
  }

  /** Bytes of the records in the log (what the segments hold, not their preallocated size). */
  logBytes(): number {
    let bytes = 0;
    for (const seg of this.segments) bytes += seg.writeEndBytes;
    return bytes;
  }

  /** Bytes the segment files take on disk, preallocation included. */
  diskBytes(): number {
    let bytes = 0;
    for (const seg of this.segments) bytes += seg.capacityBytes;
    return bytes;
  }

  /** Index of the first entry on disk, 0 if the log is empty. */
  firstIndex(): number {
    return this.lastIndexValue === 0 ? 0 : (this.segments[0] as Segment).firstIndex;
  }

  /** Index of the last entry, 0 if the log is empty. */
  lastIndex(): number {
    return this.lastIndexValue;
  }

  /** Term of the last entry, 0 if the log is empty. */
  lastTerm(): number {
    return this.lastTermValue;
  }

  /**
   * Writes `records`, the encoded stored records of indexes `firstIndex..lastIndex` back
   * to back, after the log; nothing is synced (call `sync()`). If `firstIndex` is within
   * the log, the entries from it on are first removed (Raft's conflicting suffix). The
   * first append into an empty log may start at any index (the log follows a snapshot);
   * otherwise a gap after `lastIndex()` throws RangeError. The records' framing and
   * indexes are checked (RangeError if they do not match the arguments), not their CRCs:
   * the caller verified them on arrival or encoded them itself.
   */
  append(records: Uint8Array, firstIndex: number, lastIndex: number, lastTerm: number): void {
    this.assertOpen();
    if (!Number.isSafeInteger(firstIndex) || firstIndex < 1 || !Number.isSafeInteger(lastIndex)) {
      throw new RangeError(`append of indexes ${firstIndex}..${lastIndex}`);
    }
    const count = lastIndex - firstIndex + 1;
    if (count < 1) throw new RangeError(`append of indexes ${firstIndex}..${lastIndex}: no entries`);
    const recordOffsets = recordOffsetsOf(records, firstIndex, count);
    const lastRecordTerm = readU64(records, (recordOffsets[count - 1] as number) + ENTRY_TERM_OFFSET);
    if (lastRecordTerm !== lastTerm) {
      throw new RangeError(
        `append says last term ${lastTerm} but record ${lastIndex} has term ${lastRecordTerm}`,
      );
    }
    if (this.lastIndexValue !== 0) {
      if (firstIndex > this.lastIndexValue + 1) {
        throw new RangeError(`append at ${firstIndex} leaves a gap after last index ${this.lastIndexValue}`);
      }
      if (firstIndex <= this.lastIndexValue) this.truncateFrom(firstIndex);
    }

    // Greedy: as many whole records as fit go into the open segment with one write; the
    // rest start a new segment.
    let i = 0;
    while (i < count) {
      const startBytes = recordOffsets[i] as number;
      const segment = this.segmentForAppend(firstIndex + i, (recordOffsets[i + 1] as number) - startBytes);
      const roomBytes = segment.capacityBytes - segment.writeEndBytes;
      let j = i + 1;
      while (j < count && (recordOffsets[j + 1] as number) - startBytes <= roomBytes) j++;
      const endBytes = recordOffsets[j] as number;
      const shiftBytes = segment.writeEndBytes - startBytes;
      this.dirty.add(segment);
      writeAll(this.fdOf(segment), records, startBytes, endBytes - startBytes, segment.writeEndBytes);
      for (let k = i; k < j; k++) segment.offsets.push((recordOffsets[k] as number) + shiftBytes);
      segment.writeEndBytes += endBytes - startBytes;
      // Kept exact after every write, so a failed write later leaves a consistent state.
      this.lastIndexValue = firstIndex + j - 1;
      this.lastTermValue = readU64(records, (recordOffsets[j - 1] as number) + ENTRY_TERM_OFFSET);
      i = j;
    }
  }

  /**
   * Removes the entries from `index` on: the segment holding it is cut at that record and
   * the removed bytes are overwritten with zeroes; later segments are unlinked (newest
   * first) and the directory is synced. The zeroing is made durable by the next `sync()`.
   * No-op beyond `lastIndex()`; RangeError below `firstIndex()` (those entries are
   * covered by a snapshot and cannot conflict).
   */
  truncateFrom(index: number): void {
    this.assertOpen();
    if (!Number.isSafeInteger(index)) throw new RangeError(`truncate from index ${index}`);
    if (this.lastIndexValue === 0 || index > this.lastIndexValue) return;
    const firstIndex = this.firstIndex();
    if (index < firstIndex) {
      throw new RangeError(`truncate from ${index} below the first index ${firstIndex}`);
    }
    const position = this.segmentPositionOf(index);
    if (position < this.segments.length - 1) {
      for (let k = this.segments.length - 1; k > position; k--) this.dropLastSegment();
      this.syncDir();
    }
    const segment = this.segments[position] as Segment;
    const keptRecords = index - segment.firstIndex;
    const cutBytes = segment.offsets[keptRecords] as number;
    this.dirty.add(segment);
    zeroRange(this.fdOf(segment), cutBytes, segment.writeEndBytes);
    segment.offsets.length = keptRecords;
    segment.writeEndBytes = cutBytes;
    if (index === firstIndex) {
      this.lastIndexValue = 0;
      this.lastTermValue = 0;
    } else {
      this.lastIndexValue = index - 1;
      this.lastTermValue = this.readTermOf(index - 1);
    }
  }

  /**
   * Makes everything written since the last call durable: one fdatasync per file written
   * (normally just the open segment). No-op when opened with `sync: false`.
   */
  sync(): void {
    this.assertOpen();
    if (this.syncEnabled) {
      for (const segment of this.dirty) fs.fdatasyncSync(this.fdOf(segment));
    }
    this.dirty.clear();
  }

  /**
   * The records of indexes `lo..hi` (inclusive) back to back, read from the files into a
   * fresh buffer: for a peer that lags behind the in-memory window. Sees unsynced appends.
   * RangeError unless `firstIndex() <= lo <= hi <= lastIndex()`.
   */
  readRange(lo: number, hi: number): Uint8Array {
    this.assertOpen();
    const firstIndex = this.firstIndex();
    if (
      !Number.isSafeInteger(lo) ||
      !Number.isSafeInteger(hi) ||
      this.lastIndexValue === 0 ||
      lo < firstIndex ||
      hi > this.lastIndexValue ||
      lo > hi
    ) {
      throw new RangeError(`read of ${lo}..${hi} outside the log ${firstIndex}..${this.lastIndexValue}`);
    }
    const first = this.segmentPositionOf(lo);
    const last = this.segmentPositionOf(hi);
    const spans: { segment: Segment; startBytes: number; endBytes: number }[] = [];
    let totalBytes = 0;
    for (let p = first; p <= last; p++) {
      const segment = this.segments[p] as Segment;
      const segmentLast = segment.firstIndex + segment.offsets.length - 1;
      const startBytes = segment.offsets[Math.max(lo, segment.firstIndex) - segment.firstIndex] as number;
      const endRecord = Math.min(hi, segmentLast) - segment.firstIndex + 1;
      const endBytes =
        endRecord < segment.offsets.length ? (segment.offsets[endRecord] as number) : segment.writeEndBytes;
      spans.push({ segment, startBytes, endBytes });
      totalBytes += endBytes - startBytes;
    }
    const out = new Uint8Array(totalBytes);
    let at = 0;
    for (const { segment, startBytes, endBytes } of spans) {
      this.withFd(segment, (fd) => readAll(fd, out, at, endBytes - startBytes, startBytes));
      at += endBytes - startBytes;
    }
    return out;
  }

  /**
   * Closes the files. Does not sync: call `sync()` first for anything that must survive.
   * Idempotent; every other method throws afterwards.
   */
  /**
   * Zero-fills up to `maxBytes` more of the spare segment (and syncs them), so the next
   * segment is ready before it is needed. Returns true while work remains. Meant for idle
   * moments: each call blocks for about one chunk's write and sync.
   */
  prepareSpare(maxBytes: number): boolean {
    this.assertOpen();
    if (this.spareBytes >= this.segmentBytes) return false;
    if (this.spareFd === null) {
      this.spareFd = fs.openSync(this.spareFile(), 'w+');
      this.spareBytes = 0;
    }
    const end = Math.min(this.segmentBytes, this.spareBytes + maxBytes);
    zeroRange(this.spareFd, this.spareBytes, end);
    if (this.syncEnabled) fs.fdatasyncSync(this.spareFd);
    this.spareBytes = end;
    return end < this.segmentBytes;
  }

  /** The spare's file name: a temporary name, so a crash leaves nothing that open() keeps. */
  private spareFile(): string {
    return path.join(this.dir, `spare${SEGMENT_TMP_SUFFIX}`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.spareFd !== null) {
      fs.closeSync(this.spareFd);
      this.spareFd = null;
      fs.rmSync(this.spareFile(), { force: true });
    }
    for (const segment of this.segments) {
      if (segment.fd >= 0) {
        fs.closeSync(segment.fd);
        segment.fd = -1;
      }
    }
    this.dirty.clear();
  }

  // ---------------------------------------------------------------- internals

  private assertOpen(): void {
    if (this.closed) throw new Error(`segment log in ${this.dir} is closed`);
  }

  /**
   * The segment the record of `index`, `recordBytes` long, goes into: the open one if it
   * fits, else a new one. The old segment is synced before the new one is created, so
   * segments become durable in order. An open segment without records is replaced rather
   * than kept, since its name must be the index of its first record.
   */
  private segmentForAppend(index: number, recordBytes: number): Segment {
    const open = this.segments.at(-1);
    if (open !== undefined) {
      const empty = open.offsets.length === 0;
      const fits = open.writeEndBytes + recordBytes <= open.capacityBytes;
      if (fits && (!empty || open.firstIndex === index)) return open;
      if (empty) {
        // The directory sync in createSegment covers this unlink too.
        this.dropLastSegment();
      } else {
        if (this.syncEnabled && this.dirty.has(open)) fs.fdatasyncSync(this.fdOf(open));
        this.dirty.delete(open);
        this.closeFd(open);
      }
    }
    const capacityBytes = Math.max(this.segmentBytes, Math.ceil(recordBytes / PAGE_BYTES) * PAGE_BYTES);
    return this.createSegment(index, capacityBytes);
  }

  /** Creates a zero-filled segment through a temporary name and appends it to the table. */
  private createSegment(firstIndex: number, capacityBytes: number): Segment {
    const file = path.join(this.dir, segmentFileName(firstIndex));
    if (
      this.spareFd !== null &&
      this.spareBytes >= this.segmentBytes &&
      capacityBytes === this.segmentBytes
    ) {
      // The spare is whole, zeroed and synced: it only needs its name.
      const fd = this.spareFd;
      this.spareFd = null;
      this.spareBytes = 0;
      fs.renameSync(this.spareFile(), file);
      this.syncDir();
      const segment: Segment = { firstIndex, file, fd, capacityBytes, writeEndBytes: 0, offsets: [] };
      this.segments.push(segment);
      return segment;
    }
    const tmp = `${path.join(this.dir, String(firstIndex).padStart(SEGMENT_NAME_DIGITS, '0'))}${SEGMENT_TMP_SUFFIX}`;
    const fd = fs.openSync(tmp, 'w+');
    try {
      zeroRange(fd, 0, capacityBytes);
      if (this.syncEnabled) fs.fdatasyncSync(fd);
      fs.renameSync(tmp, file);
    } catch (err) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    this.syncDir();
    const segment: Segment = { firstIndex, file, fd, capacityBytes, writeEndBytes: 0, offsets: [] };
    this.segments.push(segment);
    return segment;
  }

  /** Closes and unlinks the last segment; the caller syncs the directory. */
  private dropLastSegment(): void {
    const segment = this.segments.pop() as Segment;
    this.dirty.delete(segment);
    this.closeFd(segment);
    fs.unlinkSync(segment.file);
  }

  /**
   * Zeroes the torn tail of the last segment from `validEndBytes` to its last non-zero
   * byte (the rest is already zero) and syncs it, before anything is appended after it.
   */
  private cutTornTail(file: string, bytes: Uint8Array, validEndBytes: number, reason: string): CutTail {
    let dirtyEndBytes = bytes.byteLength;
    while (dirtyEndBytes > validEndBytes && bytes[dirtyEndBytes - 1] === 0) dirtyEndBytes--;
    const fd = fs.openSync(file, 'r+');
    try {
      zeroRange(fd, validEndBytes, dirtyEndBytes);
      if (this.syncEnabled) fs.fdatasyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    return { file, offsetBytes: validEndBytes, droppedBytes: dirtyEndBytes - validEndBytes, reason };
  }

  /** Term of the record of `index`, read from its file (8 bytes). */
  private readTermOf(index: number): number {
    const segment = this.segments[this.segmentPositionOf(index)] as Segment;
    const field = new Uint8Array(8);
    const positionBytes = (segment.offsets[index - segment.firstIndex] as number) + ENTRY_TERM_OFFSET;
    this.withFd(segment, (fd) => readAll(fd, field, 0, 8, positionBytes));
    return readU64(field, 0);
  }

  /** Position in `segments` of the segment holding `index`, which must be in the log. */
  private segmentPositionOf(index: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((this.segments[mid] as Segment).firstIndex <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The segment's descriptor, opened for writing if needed (the last segment keeps it). */
  private fdOf(segment: Segment): number {
    if (segment.fd < 0) segment.fd = fs.openSync(segment.file, 'r+');
    return segment.fd;
  }

  /** Runs `use` with a descriptor of `segment`; one opened only for it is closed after. */
  private withFd(segment: Segment, use: (fd: number) => void): void {
    if (segment.fd >= 0) {
      use(segment.fd);
      return;
    }
    const fd = fs.openSync(segment.file, 'r');
    try {
      use(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  private closeFd(segment: Segment): void {
    if (segment.fd >= 0) {
      fs.closeSync(segment.fd);
      segment.fd = -1;
    }
  }

  /** Makes created, renamed and unlinked names durable. */
  private syncDir(): void {
    if (!this.syncEnabled) return;
    const fd = fs.openSync(this.dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** The file name of the segment whose first record has index `firstIndex`. */
export function segmentFileName(firstIndex: number): string {
  return `${String(firstIndex).padStart(SEGMENT_NAME_DIGITS, '0')}${SEGMENT_SUFFIX}`;
}

/**
 * Start offsets of the `count` records in `records` plus the end offset (count + 1
 * numbers), checking that they fill it exactly and carry indexes from `firstIndex` on.
 */
function recordOffsetsOf(records: Uint8Array, firstIndex: number, count: number): number[] {
  const offsets: number[] = [];
  let offset = 0;
  for (let k = 0; k < count; k++) {
    if (offset + ENTRY_HEADER_BYTES > records.byteLength) {
      throw new RangeError(`records end after ${k} of ${count} records`);
    }
    const index = readU64(records, offset + ENTRY_INDEX_OFFSET);
    if (index !== firstIndex + k) {
      throw new RangeError(`record ${k} has index ${index} where ${firstIndex + k} was expected`);
    }
    offsets.push(offset);
    offset += ENTRY_HEADER_BYTES + readU32(records, offset + ENTRY_PAYLOAD_BYTES_OFFSET);
  }
  if (offset !== records.byteLength) {
    throw new RangeError(`${count} records span ${offset} bytes but ${records.byteLength} were given`);
  }
  offsets.push(offset);
  return offsets;
}

/** Writes `lengthBytes` of `bytes` from `offset` at file position `positionBytes`, however many calls it takes. */
function writeAll(
  fd: number,
  bytes: Uint8Array,
  offset: number,
  lengthBytes: number,
  positionBytes: number,
): void {
  let doneBytes = 0;
  while (doneBytes < lengthBytes) {
    doneBytes += fs.writeSync(
      fd,
      bytes,
      offset + doneBytes,
      lengthBytes - doneBytes,
      positionBytes + doneBytes,
    );
  }
}

/** Fills `out[offset, offset + lengthBytes)` from file position `positionBytes`; throws on a short file. */
function readAll(
  fd: number,
  out: Uint8Array,
  offset: number,
  lengthBytes: number,
  positionBytes: number,
): void {
  let doneBytes = 0;
  while (doneBytes < lengthBytes) {
    const n = fs.readSync(fd, out, offset + doneBytes, lengthBytes - doneBytes, positionBytes + doneBytes);
    if (n === 0) throw new Error(`unexpected end of segment file at ${positionBytes + doneBytes}`);
    doneBytes += n;
  }
}

/** Overwrites the file range `[startBytes, endBytes)` with zeroes, in 1 MiB writes. */
function zeroRange(fd: number, startBytes: number, endBytes: number): void {
  zeroChunk ??= new Uint8Array(ZERO_CHUNK_BYTES);
  for (let at = startBytes; at < endBytes; ) {
    const lengthBytes = Math.min(ZERO_CHUNK_BYTES, endBytes - at);
    writeAll(fd, zeroChunk, 0, lengthBytes, at);
    at += lengthBytes;
  }
}
