/**
 * Disk faults the chaos harness makes in a stopped node's log (`<dataDir>/log/*.seg`; the
 * format is in `src/shared/protocol.ts`, recovery in `src/workers/log-writer/segment-log.ts`).
 *
 * Raft is only safe if what a node acknowledged as durable stays durable. Damaging a
 * record the node had already fsynced and acknowledged is outside that model: it can lose
 * a committed entry in any Raft, and would be reported as data loss that no implementation
 * can avoid. So the faults that the node must survive only touch bytes that were never
 * acknowledged:
 *
 * - **torn tail**: a record for index `last + 1` (a put the harness made up, of key
 *   `PLANTED_KEY`) is written after the last valid record, cut short at a random byte, as a
 *   crash in the middle of an append leaves it. Recovery must cut it (the node starts, and
 *   the planted put is never applied anywhere).
 * - **flipped tail byte**: the same made-up record written whole, with one payload byte
 *   flipped: a write that reached the disk damaged. Its header is intact and only zeroes
 *   follow, so recovery must treat it as a torn write and cut it. (A flip in the header of
 *   the last record is refused instead, by design: a damaged length is not trusted.)
 *
 * One fault damages acknowledged data on purpose, to check the refusal:
 *
 * - **flipped middle byte**: one byte of a record followed by other records is flipped.
 *   Recovery must refuse to start (ERR_RAFT_LOG_CORRUPT) rather than serve wrong data.
 *   The harness then puts the byte back (the copy taken before the fault) and starts the
 *   node normally, since a node whose log was wiped may not rejoin under its old id.
 */

import fs from 'node:fs';
import path from 'node:path';
import { kvCommand } from '../../examples/kv.js';
import { EntryType } from '../../src/raft/types.js';
import { encodeEntry, readU32, scanEntries } from '../../src/shared/entry-codec.js';
import { ENTRY_HEADER_BYTES, ENTRY_PAYLOAD_BYTES_OFFSET } from '../../src/shared/protocol.js';

/** The key of the puts the torn-tail faults make up; it must never hold a value anywhere. */
export const PLANTED_KEY = 'chaos-planted';

const SEGMENT_NAME = /^(\d{20})\.seg$/;

/** One segment file as a scan found it. */
export interface SegmentInfo {
  readonly file: string;
  readonly firstIndex: number;
  readonly capacityBytes: number;
  /** Where the valid records end. */
  readonly validEndBytes: number;
  /** Offset of each valid record. */
  readonly offsets: number[];
  readonly lastIndex: number;
  readonly lastTerm: number;
}

/** The segment files of `dataDir`, oldest first. */
export function segmentFiles(dataDir: string): string[] {
  const dir = path.join(dataDir, 'log');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((n) => SEGMENT_NAME.test(n))
    .sort()
    .map((n) => path.join(dir, n));
}

/** Scans one segment file. */
export function scanSegment(file: string): SegmentInfo {
  const bytes = fs.readFileSync(file);
  const firstIndex = Number(path.basename(file).slice(0, 20));
  const scan = scanEntries(bytes, 0, bytes.byteLength, { expectedFirstIndex: firstIndex });
  const offsets: number[] = [];
  for (let at = 0; at < scan.validEndOffset; ) {
    offsets.push(at);
    at += ENTRY_HEADER_BYTES + readU32(bytes, at + ENTRY_PAYLOAD_BYTES_OFFSET);
  }
  return {
    file,
    firstIndex,
    capacityBytes: bytes.byteLength,
    validEndBytes: scan.validEndOffset,
    offsets,
    lastIndex: scan.lastIndex,
    lastTerm: scan.lastTerm,
  };
}

/** The last segment of `dataDir`, or null when it has none. */
export function lastSegment(dataDir: string): SegmentInfo | null {
  const files = segmentFiles(dataDir);
  const last = files.at(-1);
  return last === undefined ? null : scanSegment(last);
}

/** What a disk fault did, for the fault log. */
export interface DiskFaultReport {
  readonly kind: 'torn-tail' | 'flip-tail' | 'flip-middle';
  readonly file: string;
  readonly offsetBytes: number;
  readonly detail: string;
  /** Undoes the damage (flip-middle only: puts the byte back). */
  readonly restore?: () => void;
}

/** A made-up record: a put of `PLANTED_KEY` at `index`, in `term`. */
function plantedRecord(index: number, term: number, tag: string): Uint8Array {
  const data = kvCommand({ op: 'put', key: PLANTED_KEY, value: `planted-${tag}` });
  const out = new Uint8Array(ENTRY_HEADER_BYTES + data.byteLength);
  encodeEntry({ index, term: Math.max(1, term), type: EntryType.Normal, data }, out, 0);
  return out;
}

/**
 * Writes a made-up record after the last valid record of the last segment: cut after
 * `keepFraction` of its bytes (torn tail), or whole with one payload bit flipped. Null when
 * there is no tail to damage (no segment yet, or the last one is full to its last byte).
 */
function plantTail(
  dataDir: string,
  how: { kind: 'torn-tail'; keepFraction: number } | { kind: 'flip-tail'; flipFraction: number; bit: number },
  tag: string,
): DiskFaultReport | null {
  const seg = lastSegment(dataDir);
  if (seg === null) return null;
  const index = seg.offsets.length > 0 ? seg.lastIndex + 1 : seg.firstIndex;
  const record = plantedRecord(index, seg.lastTerm, tag);
  const room = seg.capacityBytes - seg.validEndBytes;
  // A segment filled to its last byte has no tail to damage.
  if (room === 0) return null;
  let bytes: Uint8Array;
  let detail: string;
  if (how.kind === 'torn-tail') {
    const keep = Math.min(room, Math.max(1, Math.floor(record.byteLength * how.keepFraction)));
    const cut = Math.min(keep, record.byteLength - 1);
    bytes = record.subarray(0, cut);
    detail = `${cut} of ${record.byteLength} bytes of a made-up record for index ${index}`;
  } else {
    bytes = record.subarray(0, Math.min(room, record.byteLength));
    const payloadBytes = record.byteLength - ENTRY_HEADER_BYTES;
    const at = ENTRY_HEADER_BYTES + Math.min(payloadBytes - 1, Math.floor(payloadBytes * how.flipFraction));
    if (at < bytes.byteLength) {
      bytes[at] = (bytes[at] as number) ^ (1 << how.bit);
      detail = `a made-up record for index ${index}, bit ${how.bit} of its byte ${at} flipped`;
    } else detail = `a made-up record for index ${index}, cut short by the end of the segment`;
  }
  const fd = fs.openSync(seg.file, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.byteLength, seg.validEndBytes);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return { kind: how.kind, file: seg.file, offsetBytes: seg.validEndBytes, detail };
}

/** A torn write after the last record (see the module comment). */
export function plantTornTail(dataDir: string, keepFraction: number, tag: string): DiskFaultReport | null {
  return plantTail(dataDir, { kind: 'torn-tail', keepFraction }, tag);
}

/** A damaged, never acknowledged record after the last one (see the module comment). */
export function plantFlippedTail(
  dataDir: string,
  flipFraction: number,
  bit: number,
  tag: string,
): DiskFaultReport | null {
  return plantTail(dataDir, { kind: 'flip-tail', flipFraction, bit: bit & 7 }, tag);
}

/**
 * Flips bit `bit` of a byte inside a record that other records follow; `pick` in [0, 1)
 * chooses the record and the byte. Null when no such record exists (a log of one record).
 * `restore()` puts the byte back.
 */
export function flipMiddleByte(dataDir: string, pick: number, bit: number): DiskFaultReport | null {
  // Every record but the very last one of the log is followed by data.
  const candidates: { file: string; start: number; end: number }[] = [];
  const files = segmentFiles(dataDir);
  files.forEach((file, i) => {
    const seg = scanSegment(file);
    const isLast = i === files.length - 1;
    const usable = isLast ? seg.offsets.length - 1 : seg.offsets.length;
    for (let r = 0; r < usable; r++) {
      const start = seg.offsets[r] as number;
      const end = r + 1 < seg.offsets.length ? (seg.offsets[r + 1] as number) : seg.validEndBytes;
      candidates.push({ file, start, end });
    }
  });
  if (candidates.length === 0) return null;
  // The newest records: the damage lands where the log is read, not in a long-compacted file.
  const recent = candidates.slice(-Math.min(candidates.length, 200));
  const c = recent[Math.min(recent.length - 1, Math.floor(pick * recent.length))] as (typeof recent)[number];
  const recordBytes = c.end - c.start;
  const at = c.start + Math.min(recordBytes - 1, Math.floor(((pick * 7919) % 1) * recordBytes));
  const fd = fs.openSync(c.file, 'r+');
  const one = Buffer.alloc(1);
  try {
    fs.readSync(fd, one, 0, 1, at);
    const original = one[0] as number;
    one[0] = original ^ (1 << (bit & 7));
    fs.writeSync(fd, one, 0, 1, at);
    fs.fsyncSync(fd);
    return {
      kind: 'flip-middle',
      file: c.file,
      offsetBytes: at,
      detail: `bit ${bit & 7} of byte ${at - c.start} of the record at ${c.start} flipped`,
      restore: () => {
        const fd2 = fs.openSync(c.file, 'r+');
        try {
          fs.writeSync(fd2, Buffer.from([original]), 0, 1, at);
          fs.fsyncSync(fd2);
        } finally {
          fs.closeSync(fd2);
        }
      },
    };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The `ulimit -f` (KiB) that makes a node's next writes fail: `marginBytes` past where its
 * last segment's records end (or, when that reaches the segment's size, just above the
 * spare), always leaving room for a spare segment of `spareSegmentBytes` (the node
 * zero-fills one ahead of need, and must not fail on that alone) and below the open
 * segment's size, so that appends to it hit the limit. Null when the node has no segment.
 */
export function fileSizeLimitFor(
  dataDir: string,
  spareSegmentBytes: number,
  marginBytes: number,
): { limitKiB: number; writeEndBytes: number; file: string } | null {
  const seg = lastSegment(dataDir);
  if (seg === null) return null;
  const minKiB = Math.ceil(spareSegmentBytes / 1024) + 8;
  let limitKiB = Math.max(minKiB, Math.ceil((seg.validEndBytes + marginBytes) / 1024));
  if (limitKiB * 1024 >= seg.capacityBytes) limitKiB = minKiB;
  if (limitKiB * 1024 >= seg.capacityBytes) return null;
  return { limitKiB, writeEndBytes: seg.validEndBytes, file: seg.file };
}
