/**
 * Encoders and readers for the frames that cross the rings between the threads of one
 * node (layouts in `protocol.ts`, "ring frames"). Readers take a frame view and an
 * offset and return plain numbers: nothing here allocates except where a string or a
 * list of entries is asked for.
 */

import type { Entry, Index, Term } from '../raft/types.js';
import { decodeEntryAt, readU32, readU64, writeU32, writeU64 } from './entry-codec.js';
import {
  DEFAULT_MAX_ENTRY_PAYLOAD_BYTES,
  ENTRIES_BYTE_LENGTH_OFFSET,
  ENTRIES_FIRST_INDEX_OFFSET,
  ENTRIES_FLAGS_OFFSET,
  ENTRIES_HEADER_BYTES,
  ENTRIES_KIND_OFFSET,
  ENTRIES_LAST_INDEX_OFFSET,
  ENTRIES_LAST_TERM_OFFSET,
  ENTRIES_RECORD_COUNT_OFFSET,
  ENTRIES_SOURCE_OFFSET,
  ENTRIES_WINDOW_POS_OFFSET,
  RecordSource,
} from './protocol.js';

/** The fields of an entry-carrying frame's header. */
export interface EntriesHeader {
  kind: number;
  source: RecordSource;
  flags: number;
  recordCount: number;
  firstIndex: Index;
  lastIndex: Index;
  lastTerm: Term;
  windowPos: number;
  byteLength: number;
}

/** Writes an entry-carrying frame's header at `offset` of `buf`. */
export function writeEntriesHeader(buf: Uint8Array, offset: number, h: EntriesHeader): void {
  buf[offset + ENTRIES_KIND_OFFSET] = h.kind;
  buf[offset + ENTRIES_SOURCE_OFFSET] = h.source;
  buf[offset + ENTRIES_FLAGS_OFFSET] = h.flags;
  buf[offset + 3] = 0;
  writeU32(buf, offset + ENTRIES_RECORD_COUNT_OFFSET, h.recordCount);
  writeU64(buf, offset + ENTRIES_FIRST_INDEX_OFFSET, h.firstIndex);
  writeU64(buf, offset + ENTRIES_LAST_INDEX_OFFSET, h.lastIndex);
  writeU64(buf, offset + ENTRIES_LAST_TERM_OFFSET, h.lastTerm);
  writeU32(buf, offset + ENTRIES_WINDOW_POS_OFFSET, h.windowPos >>> 0);
  writeU32(buf, offset + ENTRIES_BYTE_LENGTH_OFFSET, h.byteLength);
}

/** Reads an entry-carrying frame's header into `out` (reused by the caller: no allocation). */
export function readEntriesHeader(frame: Uint8Array, out: EntriesHeader): EntriesHeader {
  out.kind = frame[ENTRIES_KIND_OFFSET] as number;
  out.source = frame[ENTRIES_SOURCE_OFFSET] as number;
  out.flags = frame[ENTRIES_FLAGS_OFFSET] as number;
  out.recordCount = readU32(frame, ENTRIES_RECORD_COUNT_OFFSET);
  out.firstIndex = readU64(frame, ENTRIES_FIRST_INDEX_OFFSET);
  out.lastIndex = readU64(frame, ENTRIES_LAST_INDEX_OFFSET);
  out.lastTerm = readU64(frame, ENTRIES_LAST_TERM_OFFSET);
  out.windowPos = readU32(frame, ENTRIES_WINDOW_POS_OFFSET);
  out.byteLength = readU32(frame, ENTRIES_BYTE_LENGTH_OFFSET);
  return out;
}

/** A zeroed header to reuse with `readEntriesHeader`. */
export function emptyEntriesHeader(): EntriesHeader {
  return {
    kind: 0,
    source: RecordSource.Inline,
    flags: 0,
    recordCount: 0,
    firstIndex: 0,
    lastIndex: 0,
    lastTerm: 0,
    windowPos: 0,
    byteLength: 0,
  };
}

/** The records of an inline frame: a view of the frame's tail. */
export function inlineRecords(frame: Uint8Array, h: EntriesHeader): Uint8Array {
  return frame.subarray(ENTRIES_HEADER_BYTES, ENTRIES_HEADER_BYTES + h.byteLength);
}

/**
 * Decodes `count` stored records from `bytes` into entries whose `data` are views of it.
 * The bytes were verified when they were first stored or received, and are decoded again
 * here (both CRCs), so a bug that hands out the wrong region fails loudly, not silently.
 */
export function decodeRecords(bytes: Uint8Array, count: number, into: Entry[]): Entry[] {
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const got = decodeEntryAt(bytes, offset, bytes.byteLength, DEFAULT_MAX_ENTRY_PAYLOAD_BYTES);
    if ('kind' in got) throw new Error(`thread frame: record ${i} of ${count} is ${got.kind}`);
    into.push(got);
    offset += 32 + got.data.byteLength;
  }
  return into;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/** UTF-8 bytes of `s` (rare frames only: events, errors). */
export function utf8(s: string): Uint8Array {
  return utf8Encoder.encode(s);
}

/** The string in `bytes[start, end)`. */
export function fromUtf8(bytes: Uint8Array, start = 0, end = bytes.byteLength): string {
  return utf8Decoder.decode(bytes.subarray(start, end));
}
