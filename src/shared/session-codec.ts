/**
 * The payload of an `EntryType.Session` entry (layout and reasons in `protocol.ts`,
 * "session entry payload"): a client session's write, with the header that makes it
 * exactly-once on every replica.
 *
 * The node builds the payload from a SessionRegister/SessionApply/SessionApplyBatch
 * request (`encodeSessionEntry`); the fsm reads it back (`decodeSessionEntry`) and treats
 * every byte as possibly damaged: a malformed payload is a `SessionEntryError` value,
 * answered as a refusal of that entry (deterministic: every replica refuses it alike).
 */

import { readU64, writeU64 } from './entry-codec.js';
import {
  SESSION_ACK_BELOW_OFFSET,
  SESSION_CLIENT_ID_BYTES,
  SESSION_CLIENT_ID_OFFSET,
  SESSION_ENTRY_HEADER_BYTES,
  SESSION_KIND_OFFSET,
  SESSION_LEADER_TIME_OFFSET,
  SESSION_REQUEST_HEADER_BYTES,
  SESSION_RESERVED_BYTES,
  SESSION_RESERVED_OFFSET,
  SESSION_SEQ_OFFSET,
  SessionEntryKind,
} from './protocol.js';

export { SessionEntryKind };

/** A decoded session entry. `clientId` and `body` are views of the payload. */
export interface SessionEntry {
  readonly kind: SessionEntryKind;
  readonly clientId: Uint8Array;
  /** 0 for Register; from 1 for a write. */
  readonly seq: number;
  /** 0 for Register; 1..seq for a write. */
  readonly ackBelow: number;
  /** The proposing leader's wall clock, ms since the epoch. */
  readonly leaderTimeMs: number;
  /** Register: empty; Command: the command; Batch: a batch payload. */
  readonly body: Uint8Array;
}

/** Why a session payload was refused. */
export class SessionEntryError extends Error {
  override readonly name = 'SessionEntryError';
  readonly code = 'ERR_RAFT_BAD_SESSION_ENTRY';
}

/**
 * Checks the client's part of a session header (`[clientId 16][seq u64][ackBelow u64]`,
 * at `at` in `bytes`, as a request or an entry carries it) for a write: the reason it is
 * refused, or null when it is well formed. Also used by the client codec, so the request
 * and the entry agree on what a valid header is.
 */
export function sessionHeaderProblem(bytes: Uint8Array, at: number): string | null {
  if (bytes.byteLength - at < SESSION_REQUEST_HEADER_BYTES) return 'the session header is truncated';
  if (isZeroId(bytes, at + SESSION_CLIENT_ID_OFFSET)) return 'the client id is all zero';
  const seq = readU64(bytes, at + SESSION_SEQ_OFFSET);
  const ackBelow = readU64(bytes, at + SESSION_ACK_BELOW_OFFSET);
  // readU64 answers -1 for a value above 2^53-1, which this refuses too.
  if (seq < 1) return 'seq is not in 1..2^53-1';
  if (ackBelow < 1 || ackBelow > seq) return `ackBelow ${ackBelow} is not in 1..seq (${seq})`;
  return null;
}

/** Whether the 16 bytes of a client id at `at` are all zero. */
export function isZeroId(bytes: Uint8Array, at: number): boolean {
  for (let i = 0; i < SESSION_CLIENT_ID_BYTES; i++) if (bytes[at + i] !== 0) return false;
  return true;
}

/**
 * A session entry's payload: the 32-byte client header `requestHeader` (a view of the
 * request: clientId, seq, ackBelow, as the client sent them; for Register, the 16-byte
 * client id alone, seq and ackBelow then written as 0), the leader's clock `leaderTimeMs`,
 * `kind`, and `body` after the header. One allocation, one copy of the body.
 */
export function encodeSessionEntry(
  kind: SessionEntryKind,
  requestHeader: Uint8Array,
  leaderTimeMs: number,
  body: Uint8Array,
): Uint8Array {
  if (!Number.isSafeInteger(leaderTimeMs) || leaderTimeMs < 0)
    throw new RangeError(`leader time ${leaderTimeMs} is not a u64 of ms`);
  const wanted = kind === SessionEntryKind.Register ? SESSION_CLIENT_ID_BYTES : SESSION_REQUEST_HEADER_BYTES;
  if (requestHeader.byteLength !== wanted)
    throw new RangeError(
      `a ${SessionEntryKind[kind]} header is ${wanted} bytes, got ${requestHeader.byteLength}`,
    );
  const out = new Uint8Array(SESSION_ENTRY_HEADER_BYTES + body.byteLength);
  // Zero-filled by the allocation: a Register's seq and ackBelow, and the reserved bytes.
  out.set(requestHeader, 0);
  writeU64(out, SESSION_LEADER_TIME_OFFSET, leaderTimeMs);
  out[SESSION_KIND_OFFSET] = kind;
  out.set(body, SESSION_ENTRY_HEADER_BYTES);
  return out;
}

/** Decodes a session entry's payload, refusing anything the layout does not allow. */
export function decodeSessionEntry(payload: Uint8Array): SessionEntry | SessionEntryError {
  if (payload.byteLength < SESSION_ENTRY_HEADER_BYTES)
    return new SessionEntryError(`a session entry of ${payload.byteLength} bytes is shorter than its header`);
  const kind = payload[SESSION_KIND_OFFSET] as number;
  if (
    kind !== SessionEntryKind.Register &&
    kind !== SessionEntryKind.Command &&
    kind !== SessionEntryKind.Batch
  )
    return new SessionEntryError(`unknown session entry kind ${kind}`);
  for (let i = 0; i < SESSION_RESERVED_BYTES; i++) {
    if (payload[SESSION_RESERVED_OFFSET + i] !== 0)
      return new SessionEntryError('a reserved byte of a session entry is not zero');
  }
  const leaderTimeMs = readU64(payload, SESSION_LEADER_TIME_OFFSET);
  // readU64 answers -1 for a value above 2^53-1.
  if (leaderTimeMs < 0) return new SessionEntryError('the leader time is above 2^53-1');
  const seq = readU64(payload, SESSION_SEQ_OFFSET);
  const ackBelow = readU64(payload, SESSION_ACK_BELOW_OFFSET);
  if (kind === SessionEntryKind.Register) {
    if (isZeroId(payload, SESSION_CLIENT_ID_OFFSET))
      return new SessionEntryError('the client id is all zero');
    if (seq !== 0 || ackBelow !== 0) return new SessionEntryError('a Register entry carries a seq');
    if (payload.byteLength !== SESSION_ENTRY_HEADER_BYTES)
      return new SessionEntryError('a Register entry carries a body');
  } else {
    const problem = sessionHeaderProblem(payload, 0);
    if (problem !== null) return new SessionEntryError(problem);
  }
  return {
    kind,
    clientId: payload.subarray(SESSION_CLIENT_ID_OFFSET, SESSION_CLIENT_ID_OFFSET + SESSION_CLIENT_ID_BYTES),
    seq,
    ackBelow,
    leaderTimeMs,
    body: payload.subarray(SESSION_ENTRY_HEADER_BYTES),
  };
}
