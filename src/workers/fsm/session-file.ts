/**
 * The client session table as a snapshot file (`__raft_client_sessions`, beside the
 * state machine's files): saved with every snapshot and loaded with it, so a node
 * restarted from a snapshot, or a follower that installed one, dedupes exactly as the
 * replicas that applied the log (`client-sessions.ts`). All integers little-endian:
 *
 *   0       4         6          8          16          20          24
 *   +-------+---------+----------+----------+-----------+-----------+------------------
 *   | magic | version | reserved | clockMs  | sessions  | reserved  | sessions, least
 *   | "RFCS"| u16     | u16 = 0  | u64      | u32 count | u32 = 0   | recently active first
 *   +-------+---------+----------+----------+-----------+-----------+------------------
 *   per session:  clientId 16 bytes | lastActiveMs u64 | floorSeq u64 | results u32 count
 *   per result:   seq u64 | valueBytes u32 | value-codec bytes (valueBytes)
 *   then:         CRC32C u32 of every byte before it
 *
 * The order of the sessions is the table's order of last activity, which decides what is
 * evicted next: it is part of the state. A decoder refuses a wrong magic, version or CRC,
 * a non-zero reserved field, counts that do not fit the bytes, a repeated client or seq,
 * a result below its session's floor, a session active after the table's clock, and bytes
 * left over.
 */

import { crc32c } from '../../shared/crc32c.js';
import { readU16, readU32, readU64, writeU16, writeU32, writeU64 } from '../../shared/entry-codec.js';
import { OutBuffer } from '../../shared/message-codec.js';
import { SESSION_CLIENT_ID_BYTES } from '../../shared/protocol.js';
import { isZeroId } from '../../shared/session-codec.js';
import { decodeValue, encodeValue, ValueDecodeError } from '../../shared/value-codec.js';
import {
  type ClientSession,
  type ClientSessions,
  keyOf,
  PENDING,
  type SlotValue,
} from './client-sessions.js';

/** The file's name in a snapshot directory: reserved for the runtime, like the meta file. */
export const SESSION_FILE_NAME = '__raft_client_sessions';
/** ASCII "RFCS". */
export const SESSION_FILE_MAGIC: readonly number[] = Object.freeze([0x52, 0x46, 0x43, 0x53]);
/** The layout version this code writes and reads. */
export const SESSION_FILE_VERSION = 1;

const VERSION_OFFSET = 4;
const RESERVED_OFFSET = 6;
const CLOCK_OFFSET = 8;
const COUNT_OFFSET = 16;
const RESERVED2_OFFSET = 20;
const HEADER_BYTES = 24;
const CRC_BYTES = 4;
/** clientId, lastActiveMs, floorSeq, result count. */
const SESSION_FIXED_BYTES = SESSION_CLIENT_ID_BYTES + 8 + 8 + 4;
/** seq, valueBytes. */
const RESULT_FIXED_BYTES = 8 + 4;

/** A session file that is damaged or not a session file. */
export class SessionFileError extends Error {
  override readonly name = 'SessionFileError';
  readonly code = 'ERR_RAFT_SESSION_FILE_CORRUPT';
}

/** What a session file holds. */
export interface DecodedSessions {
  readonly clockMs: number;
  /** Least recently active first. */
  readonly sessions: ClientSession[];
}

/**
 * Encodes `table`. Throws if a write is still being applied (a PENDING slot): a snapshot
 * is only ever taken between batches, so that would be a bug, and saving without it could
 * apply the write again after a restart.
 */
export function encodeSessionFile(table: ClientSessions): Uint8Array {
  const out = new OutBuffer(4096);
  const head = out.append(HEADER_BYTES);
  out.bytes.set(SESSION_FILE_MAGIC, head);
  writeU16(out.bytes, head + VERSION_OFFSET, SESSION_FILE_VERSION);
  writeU16(out.bytes, head + RESERVED_OFFSET, 0);
  writeU64(out.bytes, head + CLOCK_OFFSET, table.clockMs);
  writeU32(out.bytes, head + COUNT_OFFSET, table.size);
  writeU32(out.bytes, head + RESERVED2_OFFSET, 0);
  for (const s of table.values()) {
    const at = out.append(SESSION_FIXED_BYTES);
    out.bytes.set(s.clientId, at);
    writeU64(out.bytes, at + SESSION_CLIENT_ID_BYTES, s.lastActiveMs);
    writeU64(out.bytes, at + SESSION_CLIENT_ID_BYTES + 8, s.floorSeq);
    let count = 0;
    for (const [seq, result] of s.results) {
      // Seqs below the floor can linger out of order (`forgetBelow`): they are not state.
      if (seq < s.floorSeq) continue;
      if (result === PENDING) throw new Error(`write ${seq} of a client session is still being applied`);
      const r = out.append(RESULT_FIXED_BYTES);
      writeU64(out.bytes, r, seq);
      const valueBytes = encodeValue(result, out);
      writeU32(out.bytes, r + 8, valueBytes);
      count++;
    }
    writeU32(out.bytes, at + SESSION_CLIENT_ID_BYTES + 16, count);
  }
  const crcAt = out.append(CRC_BYTES);
  writeU32(out.bytes, crcAt, crc32c(out.bytes.subarray(0, crcAt)));
  return out.view().slice();
}

/** Decodes a session file; throws `SessionFileError` naming `source` for anything malformed. */
export function decodeSessionFile(bytes: Uint8Array, source: string): DecodedSessions {
  const fail = (why: string): never => {
    throw new SessionFileError(`client session file ${source}: ${why}`);
  };
  if (bytes.byteLength < HEADER_BYTES + CRC_BYTES) fail(`${bytes.byteLength} bytes is shorter than a header`);
  for (let i = 0; i < SESSION_FILE_MAGIC.length; i++) {
    if (bytes[i] !== SESSION_FILE_MAGIC[i]) fail('not a client session file (wrong magic)');
  }
  const end = bytes.byteLength - CRC_BYTES;
  if (crc32c(bytes.subarray(0, end)) !== readU32(bytes, end)) fail('CRC mismatch');
  const version = readU16(bytes, VERSION_OFFSET);
  if (version !== SESSION_FILE_VERSION) fail(`version ${version}, this node reads ${SESSION_FILE_VERSION}`);
  if (readU16(bytes, RESERVED_OFFSET) !== 0 || readU32(bytes, RESERVED2_OFFSET) !== 0)
    fail('a reserved field is not zero');
  const clockMs = readU64(bytes, CLOCK_OFFSET);
  if (clockMs < 0) fail('the clock is above 2^53-1');
  const count = readU32(bytes, COUNT_OFFSET);
  if (count > (end - HEADER_BYTES) / SESSION_FIXED_BYTES) fail(`${count} sessions cannot fit in the file`);
  const sessions: ClientSession[] = [];
  const keys = new Set<string>();
  let at = HEADER_BYTES;
  for (let i = 0; i < count; i++) {
    if (end - at < SESSION_FIXED_BYTES) fail(`session ${i} is truncated`);
    const clientId = bytes.slice(at, at + SESSION_CLIENT_ID_BYTES);
    if (isZeroId(clientId, 0)) fail(`session ${i} has an all-zero client id`);
    const key = keyOf(clientId);
    const name = Buffer.from(clientId).toString('hex');
    if (keys.has(key)) fail(`client ${name} appears twice`);
    keys.add(key);
    const lastActiveMs = readU64(bytes, at + SESSION_CLIENT_ID_BYTES);
    const floorSeq = readU64(bytes, at + SESSION_CLIENT_ID_BYTES + 8);
    const resultCount = readU32(bytes, at + SESSION_CLIENT_ID_BYTES + 16);
    if (lastActiveMs < 0 || lastActiveMs > clockMs)
      fail(`session ${name} was active after the table's clock`);
    const previous = sessions[sessions.length - 1];
    if (previous !== undefined && lastActiveMs < previous.lastActiveMs)
      fail(`session ${name} is out of order of activity`);
    if (floorSeq < 1) fail(`session ${name} has floor ${floorSeq}, not in 1..2^53-1`);
    at += SESSION_FIXED_BYTES;
    if (resultCount > (end - at) / RESULT_FIXED_BYTES)
      fail(`session ${name}: ${resultCount} results cannot fit`);
    const results = new Map<number, SlotValue>();
    for (let j = 0; j < resultCount; j++) {
      if (end - at < RESULT_FIXED_BYTES) fail(`session ${name}: result ${j} is truncated`);
      const seq = readU64(bytes, at);
      const valueBytes = readU32(bytes, at + 8);
      at += RESULT_FIXED_BYTES;
      if (seq < floorSeq) fail(`session ${name}: result ${seq} is below the floor ${floorSeq}`);
      if (results.has(seq)) fail(`session ${name}: result ${seq} appears twice`);
      if (valueBytes > end - at) fail(`session ${name}: result ${seq} runs past the end`);
      try {
        results.set(seq, decodeValue(bytes, at, at + valueBytes));
      } catch (err) {
        if (err instanceof ValueDecodeError) fail(`session ${name}: result ${seq}: ${err.message}`);
        throw err;
      }
      at += valueBytes;
    }
    sessions.push({ key, clientId, lastActiveMs, floorSeq, results });
  }
  if (at !== end) fail(`${end - at} bytes after the last session`);
  return { clockMs, sessions };
}
