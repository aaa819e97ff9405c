/**
 * The stored entry record (layout and reasons in `protocol.ts`, "stored entry record"):
 * encoding into a caller's buffer, decoding with full validation, and the recovery scan
 * over a buffer of records.
 *
 * Decoding never throws on bad bytes and never allocates from a length it has not checked
 * against the configured maximum; every failure is a value (`EntryDecodeError`). Broken
 * invariants of the caller (an offset outside the buffer, an entry that cannot be stored)
 * throw `RangeError` at once.
 *
 * Also home to the little-endian field helpers that `message-codec.ts` shares.
 */
import type { Entry, EntryType, Index, Term } from '../raft/types.js';
import { crc32c, crc32cRange, crc32cTable } from './crc32c.js';
import {
  DEFAULT_ENTRY_LIMITS,
  ENTRY_HEADER_BYTES,
  ENTRY_HEADER_CRC_OFFSET,
  ENTRY_HEADER_CRC_RESUME_OFFSET,
  ENTRY_INDEX_OFFSET,
  ENTRY_PAYLOAD_BYTES_LIMIT,
  ENTRY_PAYLOAD_BYTES_OFFSET,
  ENTRY_PAYLOAD_CRC_OFFSET,
  ENTRY_RESERVED_BYTES,
  ENTRY_RESERVED_OFFSET,
  ENTRY_TERM_OFFSET,
  ENTRY_TYPE_OFFSET,
  type EntryLimits,
  KNOWN_ENTRY_TYPES,
} from './protocol.js';

// ------------------------------------------------------------------ little-endian fields
//
// Byte-wise reads and writes rather than a DataView: a DataView per call would allocate,
// and V8 compiles these to a handful of loads either way.

const TWO_POW_32 = 0x1_0000_0000;
/** The high 32-bit word of a u64 holding a safe integer is at most this (2^53-1 >> 32). */
const MAX_SAFE_HIGH_WORD = 0x1f_ffff;

/** Reads the u16 at `offset`. */
export function readU16(bytes: Uint8Array, offset: number): number {
  return (bytes[offset] as number) | ((bytes[offset + 1] as number) << 8);
}

/** Writes `value` (0..0xffff) as a u16 at `offset`. */
export function writeU16(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value;
  bytes[offset + 1] = value >>> 8;
}

/** Reads the u32 at `offset` as a non-negative number. */
export function readU32(bytes: Uint8Array, offset: number): number {
  return (
    ((bytes[offset] as number) |
      ((bytes[offset + 1] as number) << 8) |
      ((bytes[offset + 2] as number) << 16)) +
    (bytes[offset + 3] as number) * 0x100_0000
  );
}

/** Writes `value` (0..2^32-1) as a u32 at `offset`. */
export function writeU32(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value;
  bytes[offset + 1] = value >>> 8;
  bytes[offset + 2] = value >>> 16;
  bytes[offset + 3] = value >>> 24;
}

/**
 * Reads the u64 at `offset`. Returns -1 when the value exceeds 2^53-1, which no field of
 * ours may hold: the caller turns that into its own typed error.
 */
export function readU64(bytes: Uint8Array, offset: number): number {
  const high = readU32(bytes, offset + 4);
  if (high > MAX_SAFE_HIGH_WORD) return -1;
  return high * TWO_POW_32 + readU32(bytes, offset);
}

/** Writes `value` (a safe non-negative integer) as a u64 at `offset`. */
export function writeU64(bytes: Uint8Array, offset: number, value: number): void {
  // ToUint32 takes the value modulo 2^32 exactly for every safe integer.
  const low = value >>> 0;
  writeU32(bytes, offset, low);
  writeU32(bytes, offset + 4, (value - low) / TWO_POW_32);
}

/** Whether `value` fits a u64 field: an integer in 0..2^53-1. */
export function isU64Safe(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

// ------------------------------------------------------------------ results

/** The buffer ends before the record does: more bytes are needed (or the tail was torn). */
export interface EntryTorn {
  readonly kind: 'torn';
  /** Where the record starts. */
  readonly offset: number;
  /** Bytes the record needs from `offset`: the header's size until the header is whole and checked. */
  readonly neededBytes: number;
  /** Bytes the buffer holds from `offset`. */
  readonly availableBytes: number;
  /** The same, in words, for logs. */
  readonly message: string;
}

/** A checksum does not match: the bytes were damaged. */
export interface EntryCorrupt {
  readonly kind: 'corrupt';
  /** Where the record starts. */
  readonly offset: number;
  /** Which checksum failed. A failed header means the length cannot be trusted either. */
  readonly part: 'header' | 'payload';
  readonly storedCrc: number;
  readonly computedCrc: number;
  /** The same, in words, for logs. */
  readonly message: string;
}

/** Which rule an intact record breaks. `sequence` is only reported by `scanEntries`. */
export type EntryInvalidField = 'payloadBytes' | 'type' | 'reserved' | 'term' | 'index' | 'sequence';

/** The checksums match but a field is out of range: written by a bug or another format. */
export interface EntryInvalid {
  readonly kind: 'invalid';
  /** Where the record starts. */
  readonly offset: number;
  readonly field: EntryInvalidField;
  /** The same, in words, for logs. */
  readonly message: string;
}

/** Why a record could not be decoded. */
export type EntryDecodeError = EntryTorn | EntryCorrupt | EntryInvalid;

/** A decoded record: the entry, whose `data` is a view into the decoded buffer, and its size. */
export interface DecodedEntry {
  readonly kind: 'entry';
  readonly entry: Entry;
  /** Bytes the record occupies: the next record starts this far after it. */
  readonly recordBytes: number;
}

// ------------------------------------------------------------------ encode

/** Bytes `entry` occupies as a stored record: the header plus its payload. */
export function encodedEntryBytes(entry: Entry): number {
  return ENTRY_HEADER_BYTES + entry.data.byteLength;
}

/**
 * Writes `entry` as a stored record into `out` at `offset` and returns the bytes written
 * (`encodedEntryBytes(entry)`). Allocates nothing. Throws RangeError if the entry cannot
 * be stored (index or term outside 1..2^53-1, unknown type, payload over the format's
 * limit) or `out` is too small: both are the caller's bugs, never input from outside.
 */
export function encodeEntry(entry: Entry, out: Uint8Array, offset: number): number {
  assertEncodableEntry(entry);
  const payloadBytes = entry.data.byteLength;
  const recordBytes = ENTRY_HEADER_BYTES + payloadBytes;
  if (!Number.isInteger(offset) || offset < 0 || offset + recordBytes > out.byteLength) {
    throw new RangeError(
      `record of ${recordBytes} bytes does not fit at ${offset} in ${out.byteLength} bytes`,
    );
  }
  writeU32(out, offset + ENTRY_PAYLOAD_BYTES_OFFSET, payloadBytes);
  writeU64(out, offset + ENTRY_TERM_OFFSET, entry.term);
  writeU64(out, offset + ENTRY_INDEX_OFFSET, entry.index);
  out[offset + ENTRY_TYPE_OFFSET] = entry.type;
  for (let i = 0; i < ENTRY_RESERVED_BYTES; i++) out[offset + ENTRY_RESERVED_OFFSET + i] = 0;
  out.set(entry.data, offset + ENTRY_HEADER_BYTES);
  writeU32(out, offset + ENTRY_PAYLOAD_CRC_OFFSET, crc32c(entry.data));
  writeU32(out, offset + ENTRY_HEADER_CRC_OFFSET, headerCrc(out, offset));
  return recordBytes;
}

/** `entries` encoded as stored records back to back, in one new buffer (tools, tests, recovery). */
export function encodeEntries(entries: readonly Entry[]): Uint8Array {
  let totalBytes = 0;
  for (const e of entries) totalBytes += encodedEntryBytes(e);
  const out = new Uint8Array(totalBytes);
  let at = 0;
  for (const e of entries) at += encodeEntry(e, out, at);
  return out;
}

/**
 * Throws RangeError unless `entry` can be stored: index and term in 1..2^53-1, a known
 * type, a payload within the format's limit. Encoders call it before writing anything,
 * so a refused entry leaves their output untouched.
 */
export function assertEncodableEntry(entry: Entry): void {
  if (!isU64Safe(entry.index) || entry.index < 1)
    throw new RangeError(`entry index ${entry.index} cannot be stored`);
  if (!isU64Safe(entry.term) || entry.term < 1)
    throw new RangeError(`entry term ${entry.term} cannot be stored`);
  if (!KNOWN_ENTRY_TYPES.includes(entry.type))
    throw new RangeError(`entry type ${entry.type} cannot be stored`);
  if (entry.data.byteLength > ENTRY_PAYLOAD_BYTES_LIMIT) {
    throw new RangeError(`entry payload of ${entry.data.byteLength} bytes cannot be stored`);
  }
}

/** CRC32C of the header at `offset`, skipping the header CRC field itself. */
function headerCrc(bytes: Uint8Array, offset: number): number {
  const first = crc32cTable(bytes, offset, offset + ENTRY_HEADER_CRC_OFFSET);
  return crc32cTable(bytes, offset + ENTRY_HEADER_CRC_RESUME_OFFSET, offset + ENTRY_HEADER_BYTES, first);
}

// ------------------------------------------------------------------ decode

/**
 * Decodes the record at `offset` of `bytes[.., end)` with full validation, in this order:
 * enough bytes for a header (else torn); header CRC (else corrupt); fields in range (else
 * invalid: the length is refused here, before anything is read from it); enough bytes
 * for the payload (else torn); payload CRC (else corrupt). The entry's `data` is a view
 * into `bytes`: copy it if the buffer will be reused. Never throws on bad bytes; throws
 * RangeError only when `offset`/`end` lie outside the buffer.
 */
export function decodeEntry(
  bytes: Uint8Array,
  offset: number,
  limits: EntryLimits = DEFAULT_ENTRY_LIMITS,
  end: number = bytes.byteLength,
): DecodedEntry | EntryDecodeError {
  const result = decodeEntryAt(bytes, offset, end, limits.maxEntryPayloadBytes);
  if ('kind' in result) return result;
  return { kind: 'entry', entry: result, recordBytes: ENTRY_HEADER_BYTES + result.data.byteLength };
}

/**
 * `decodeEntry` without the wrapper object: the entry (whose record is
 * `ENTRY_HEADER_BYTES + data.byteLength` long) or the error. For loops that decode many
 * records, such as the frame decoder and the scan.
 */
export function decodeEntryAt(
  bytes: Uint8Array,
  offset: number,
  end: number,
  maxEntryPayloadBytes: number,
): Entry | EntryDecodeError {
  if (!(offset >= 0 && offset <= end && end <= bytes.byteLength)) {
    throw new RangeError(`decode at ${offset} of [0, ${end}) in a buffer of ${bytes.byteLength} bytes`);
  }
  const availableBytes = end - offset;
  if (availableBytes < ENTRY_HEADER_BYTES) {
    return torn(offset, ENTRY_HEADER_BYTES, availableBytes);
  }
  const storedHeaderCrc = readU32(bytes, offset + ENTRY_HEADER_CRC_OFFSET);
  const computedHeaderCrc = headerCrc(bytes, offset);
  if (storedHeaderCrc !== computedHeaderCrc) {
    return corrupt(offset, 'header', storedHeaderCrc, computedHeaderCrc);
  }
  const payloadBytes = readU32(bytes, offset + ENTRY_PAYLOAD_BYTES_OFFSET);
  if (payloadBytes > maxEntryPayloadBytes) {
    return invalid(
      offset,
      'payloadBytes',
      `payload of ${payloadBytes} bytes exceeds ${maxEntryPayloadBytes}`,
    );
  }
  const type = bytes[offset + ENTRY_TYPE_OFFSET] as number;
  if (!KNOWN_ENTRY_TYPES.includes(type)) return invalid(offset, 'type', `unknown entry type ${type}`);
  for (let i = 0; i < ENTRY_RESERVED_BYTES; i++) {
    if (bytes[offset + ENTRY_RESERVED_OFFSET + i] !== 0) {
      return invalid(offset, 'reserved', 'reserved header bytes are not zero');
    }
  }
  const term = readU64(bytes, offset + ENTRY_TERM_OFFSET);
  if (term < 1) return invalid(offset, 'term', `term is 0 or above 2^53-1`);
  const index = readU64(bytes, offset + ENTRY_INDEX_OFFSET);
  if (index < 1) return invalid(offset, 'index', `index is 0 or above 2^53-1`);
  const recordBytes = ENTRY_HEADER_BYTES + payloadBytes;
  if (availableBytes < recordBytes) return torn(offset, recordBytes, availableBytes);
  const payloadStart = offset + ENTRY_HEADER_BYTES;
  const storedPayloadCrc = readU32(bytes, offset + ENTRY_PAYLOAD_CRC_OFFSET);
  const computedPayloadCrc = crc32cRange(bytes, payloadStart, payloadStart + payloadBytes);
  if (storedPayloadCrc !== computedPayloadCrc) {
    return corrupt(offset, 'payload', storedPayloadCrc, computedPayloadCrc);
  }
  return {
    index,
    term,
    type: type as EntryType,
    data: bytes.subarray(payloadStart, payloadStart + payloadBytes),
  };
}

function torn(offset: number, neededBytes: number, availableBytes: number): EntryTorn {
  const message = `record at ${offset} needs ${neededBytes} bytes, ${availableBytes} remain`;
  return { kind: 'torn', offset, neededBytes, availableBytes, message };
}

function corrupt(
  offset: number,
  part: 'header' | 'payload',
  storedCrc: number,
  computedCrc: number,
): EntryCorrupt {
  const message = `record at ${offset}: ${part} CRC32C is ${hex(computedCrc)}, stored ${hex(storedCrc)}`;
  return { kind: 'corrupt', offset, part, storedCrc, computedCrc, message };
}

function invalid(offset: number, field: EntryInvalidField, why: string): EntryInvalid {
  return { kind: 'invalid', offset, field, message: `record at ${offset}: ${why}` };
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

// ------------------------------------------------------------------ recovery scan

/**
 * How a scan stopped. The scan reports facts; the log-writer decides (DESIGN.md, "On
 * disk": a torn or corrupt tail is cut, corruption in the middle stops the node):
 * - `end`, `zeroes`: nothing to repair.
 * - `torn`: the buffer ends inside a record whose header, if whole, is intact: a write
 *   interrupted by a crash, or a file cut short. Cut at `validEndOffset`.
 * - `damaged` with `tornWrite`: a checksum failed and only zero bytes follow: a write
 *   into preallocated space interrupted by a crash. Cut at `validEndOffset`.
 * - `damaged` without `tornWrite`: data follows the damage, or the record is intact but
 *   invalid: corruption in the middle, or a format this node cannot read. Stop rather
 *   than serve wrong data.
 * A writer that truncates the log must zero or cut what it removes, or the stale bytes
 * would later read as data following damage.
 */
export type ScanStop =
  /** The buffer ends exactly after the last valid record. */
  | { readonly kind: 'end' }
  /** Only zero bytes follow the last valid record: preallocated space never written. */
  | { readonly kind: 'zeroes' }
  /** The buffer ends inside the record at `validEndOffset`. */
  | { readonly kind: 'torn'; readonly error: EntryTorn }
  /** The record at `validEndOffset` is corrupt or invalid (including an out-of-sequence index or term). */
  | {
      readonly kind: 'damaged';
      readonly error: EntryCorrupt | EntryInvalid;
      /**
       * Whether the damage looks like a write interrupted by a crash: a checksum failed
       * and nothing but zero bytes follows it. The damage ends at the record's end when
       * its header is intact, else right after its header (a damaged length is not
       * trusted). Always false for an invalid record: its checksums match, so whoever
       * wrote it finished.
       */
      readonly tornWrite: boolean;
    };

/** What `scanEntries` found. */
export interface EntryScan {
  /** Valid records from the start of the scan, back to back. */
  readonly recordCount: number;
  /** Offset just after the last valid record: where a log would be cut. */
  readonly validEndOffset: number;
  /** Index of the first valid record, 0 if none. */
  readonly firstIndex: Index;
  /** Index of the last valid record, 0 if none. */
  readonly lastIndex: Index;
  /** Term of the last valid record, 0 if none. */
  readonly lastTerm: Term;
  readonly stop: ScanStop;
}

/** Options of `scanEntries`. */
export interface ScanOptions {
  readonly limits?: EntryLimits;
  /** The index the first record must carry (a segment's name says it); any if absent. */
  readonly expectedFirstIndex?: Index;
}

/**
 * Walks the records in `bytes[start, end)` and reports the last valid offset and why it
 * stopped (`ScanStop`). Beyond each record's own checks, the records must form a log:
 * each index one more than the one before, terms never decreasing. Never throws on bad
 * bytes. The entries themselves are not kept: the caller decodes what it needs.
 */
export function scanEntries(
  bytes: Uint8Array,
  start = 0,
  end: number = bytes.byteLength,
  options: ScanOptions = {},
): EntryScan {
  const maxEntryPayloadBytes = (options.limits ?? DEFAULT_ENTRY_LIMITS).maxEntryPayloadBytes;
  let offset = start;
  let recordCount = 0;
  let firstIndex = 0;
  let lastIndex = 0;
  let lastTerm = 0;
  const finish = (stop: ScanStop): EntryScan => ({
    recordCount,
    validEndOffset: offset,
    firstIndex,
    lastIndex,
    lastTerm,
    stop,
  });
  while (offset < end) {
    const got = decodeEntryAt(bytes, offset, end, maxEntryPayloadBytes);
    if ('kind' in got) {
      if (allZero(bytes, offset, end)) return finish({ kind: 'zeroes' });
      if (got.kind === 'torn') return finish({ kind: 'torn', error: got });
      if (got.kind === 'invalid') return finish({ kind: 'damaged', error: got, tornWrite: false });
      // A damaged header means its length is untrusted: the damage is its header only.
      const damageEnd =
        got.part === 'header'
          ? offset + ENTRY_HEADER_BYTES
          : offset + ENTRY_HEADER_BYTES + readU32(bytes, offset + ENTRY_PAYLOAD_BYTES_OFFSET);
      return finish({
        kind: 'damaged',
        error: got,
        tornWrite: allZero(bytes, Math.min(damageEnd, end), end),
      });
    }
    const expectedIndex = recordCount === 0 ? options.expectedFirstIndex : lastIndex + 1;
    if (expectedIndex !== undefined && got.index !== expectedIndex) {
      const error = invalid(offset, 'sequence', `index ${got.index} where ${expectedIndex} was expected`);
      return finish({ kind: 'damaged', error, tornWrite: false });
    }
    if (got.term < lastTerm) {
      const error = invalid(offset, 'sequence', `term ${got.term} after term ${lastTerm}`);
      return finish({ kind: 'damaged', error, tornWrite: false });
    }
    if (recordCount === 0) firstIndex = got.index;
    recordCount++;
    lastIndex = got.index;
    lastTerm = got.term;
    offset += ENTRY_HEADER_BYTES + got.data.byteLength;
  }
  return finish({ kind: 'end' });
}

function allZero(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (bytes[i] !== 0) return false;
  return true;
}
