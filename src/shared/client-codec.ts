/**
 * CLIENT_REQUEST and CLIENT_RESPONSE frames (layouts and reasons in `protocol.ts`, "client
 * frames"): what a `RaftClient` and a node's client server say to each other.
 *
 * The encoders append whole frames (header included) to an `OutBuffer`, so a batch of
 * requests or replies leaves in one socket write, and they write commands and values
 * straight into it: nothing is allocated per request beyond the result objects. They
 * throw RangeError (or the value codec's TypeError) for what cannot be encoded, and then
 * leave `out` unchanged, so a caller can answer with an error instead.
 *
 * The decoders take a frame body as `FrameDecoder` yields it and treat every byte as
 * hostile: a malformed body is a `ClientFrameError` value with a stable code, never an
 * exception. Byte fields of a decoded request (`payload`, `commands`) are views of the
 * body, not copies: a caller that keeps them past the socket's next read must copy them.
 * A decoded ApplyBatch builds its `commands` only when they are first read.
 */

import { readU16, readU32, writeU16, writeU32 } from './entry-codec.js';
import type { OutBuffer } from './message-codec.js';
import {
  CLIENT_BATCH_LENGTH_BYTES,
  CLIENT_REQUEST_FIXED_BYTES,
  CLIENT_REQUEST_FLAGS_OFFSET,
  CLIENT_REQUEST_ID_OFFSET,
  CLIENT_REQUEST_OP_OFFSET,
  CLIENT_REQUEST_RESERVED_OFFSET,
  CLIENT_RESPONSE_FIXED_BYTES,
  CLIENT_RESPONSE_ID_OFFSET,
  CLIENT_RESPONSE_RESERVED_BYTES,
  CLIENT_RESPONSE_RESERVED_OFFSET,
  CLIENT_RESPONSE_STATUS_OFFSET,
  ClientOp,
  ClientStatus,
  FRAME_BODY_BYTES_OFFSET,
  FRAME_BYTES_LIMIT,
  FRAME_HEADER_BYTES,
  FRAME_TYPE_OFFSET,
  FrameType,
  ReadConsistencyCode,
  SESSION_CLIENT_ID_BYTES,
  SESSION_REQUEST_HEADER_BYTES,
} from './protocol.js';
import { isZeroId, sessionHeaderProblem } from './session-codec.js';
import { decodeValue, encodedValueBytes, encodeValue, type Value, ValueDecodeError } from './value-codec.js';

/** The client protocol's enums, declared with their layouts in `protocol.ts`; re-exported so codec users need one import. */
/** What a client request asks (wire numbers, never renumbered; layouts in `protocol.ts`). */
export { ClientOp, ClientStatus, ReadConsistencyCode };

/** The name of `op` for messages, e.g. `AddPeer`; the number itself for one that is not an op. */
export function clientOpName(op: number): string {
  const name = (ClientOp as Record<number, unknown>)[op];
  return typeof name === 'string' ? name : String(op);
}

// ------------------------------------------------------------------ values

/**
 * A client request. Decoded: `payload` is the body after the fixed part, a view; for
 * ApplyBatch `commands` are views of the commands inside it (the payload itself is then
 * exactly an `EntryType.Batch` entry's payload, `batch-codec.ts`, so a node proposes it
 * without copying).
 *
 * To encode: for ApplyBatch, give `commands` (they are written straight into the frame
 * and `payload` is ignored) or a `payload` that is already a batch.
 */
export interface ClientRequest {
  /** What is asked. */
  readonly op: ClientOp;
  /** Read: a `ReadConsistencyCode`; zero for every other op. */
  readonly flags: number;
  /** Chosen by the client (u32), echoed by the response. */
  readonly requestId: number;
  /** The op's payload (`protocol.ts`, "CLIENT_REQUEST body"). */
  readonly payload: Uint8Array;
  /** ApplyBatch and SessionApplyBatch only: the commands, in order. */
  readonly commands?: Uint8Array[];
  /**
   * Session ops only: SessionRegister the 16-byte client id, SessionApply(Batch) the
   * 32-byte header `[clientId][seq u64][ackBelow u64]` that comes before `payload`
   * (`protocol.ts`, "session entry payload").
   */
  readonly session?: Uint8Array;
}

/** An error as a CLIENT_RESPONSE carries it: a `RaftError` as a record (`src/main/errors.ts`). */
export interface ClientErrorValue {
  /** The stable `RaftError` code, e.g. `ERR_RAFT_NOT_LEADER`. */
  readonly code: string;
  /** The human-readable message. */
  readonly message: string;
  /** ERR_RAFT_NOT_LEADER: the leader's node id, when known. */
  readonly leaderId?: string;
  /** ERR_RAFT_NOT_LEADER: the leader's client address `host:port`, when known. */
  readonly leaderAddress?: string;
}

/** A client response: the result of request `requestId`, or why it failed. */
export type ClientResponse =
  | { readonly requestId: number; readonly ok: true; readonly value: Value }
  | { readonly requestId: number; readonly ok: false; readonly error: ClientErrorValue };

/** Why a client frame body was refused. Stable codes: log them, match on them. */
export type ClientFrameErrorCode =
  /** The body is shorter than its fixed part, or an ApplyBatch command runs past its end. */
  | 'ERR_CLIENT_TRUNCATED'
  /** A reserved field is not zero. */
  | 'ERR_CLIENT_RESERVED'
  /** The op is not a `ClientOp`. */
  | 'ERR_CLIENT_UNKNOWN_OP'
  /** The flags are not defined for the op (a Read consistency above 2, any flag on other ops). */
  | 'ERR_CLIENT_BAD_FLAGS'
  /** The payload does not fit the op: bytes where none belong, an empty id, bytes after a batch. */
  | 'ERR_CLIENT_BAD_PAYLOAD'
  /** A session header that is not one: a zero client id, seq 0, ackBelow outside 1..seq, a short register. */
  | 'ERR_CLIENT_BAD_SESSION'
  /** A text payload (an id, a peer spec) is not valid UTF-8. */
  | 'ERR_CLIENT_BAD_UTF8'
  /** The response status is not a `ClientStatus`. */
  | 'ERR_CLIENT_BAD_STATUS'
  /** The response value is not valid value-codec bytes. */
  | 'ERR_CLIENT_BAD_VALUE'
  /** An error response whose value is not `{ code: string, message: string, ... }`. */
  | 'ERR_CLIENT_BAD_ERROR';

/**
 * A refused client frame body. Returned, not thrown: a bad peer is an expected outcome.
 * An `Error` so that it can be handed to `socket.destroy(error)` and logged with its code.
 */
export class ClientFrameError extends Error {
  override readonly name = 'ClientFrameError';
  /** The stable reason. */
  readonly code: ClientFrameErrorCode;

  constructor(code: ClientFrameErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

// ------------------------------------------------------------------ helpers

const NO_BYTES = new Uint8Array(0);
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const U32_MAX = 0xffff_ffff;

/** Ops whose payload must be empty. */
function wantsEmptyPayload(op: ClientOp): boolean {
  return op === ClientOp.Status || op === ClientOp.Snapshot;
}

/** Ops whose payload is a non-empty UTF-8 string. */
function wantsText(op: ClientOp): boolean {
  return (
    op === ClientOp.Transfer ||
    op === ClientOp.AddPeer ||
    op === ClientOp.AddLearner ||
    op === ClientOp.RemovePeer
  );
}

/** Every op's number (the enum object also maps numbers back to names: those keys are skipped). */
const KNOWN_OPS: ReadonlySet<number> = new Set(
  Object.values(ClientOp).filter((v): v is ClientOp => typeof v === 'number'),
);

function isKnownOp(op: number): op is ClientOp {
  return KNOWN_OPS.has(op);
}

function checkRequestId(requestId: number): void {
  if (!Number.isInteger(requestId) || requestId < 0 || requestId > U32_MAX)
    throw new RangeError(`request id ${requestId} is not a u32`);
}

/** Whether `op` writes through a client session. */
export function isSessionWrite(op: ClientOp): boolean {
  return op === ClientOp.SessionApply || op === ClientOp.SessionApplyBatch;
}

/** Bytes of the session header `op` carries before its payload (0 for ops without a session). */
function sessionHeaderBytes(op: ClientOp): number {
  if (op === ClientOp.SessionRegister) return SESSION_CLIENT_ID_BYTES;
  return isSessionWrite(op) ? SESSION_REQUEST_HEADER_BYTES : 0;
}

/** Throws RangeError unless `session` is the header `op` needs (encoders check what they send). */
function checkSession(op: ClientOp, session: Uint8Array | undefined): void {
  const bytes = sessionHeaderBytes(op);
  if (bytes === 0) {
    if (session !== undefined) throw new RangeError(`op ${clientOpName(op)} carries no session`);
    return;
  }
  if (session === undefined || session.byteLength !== bytes)
    throw new RangeError(`op ${clientOpName(op)} needs a ${bytes}-byte session header`);
  const problem =
    op === ClientOp.SessionRegister
      ? isZeroId(session, 0)
        ? 'the client id is all zero'
        : null
      : sessionHeaderProblem(session, 0);
  if (problem !== null) throw new RangeError(problem);
}

function checkFrameBytes(frameBytes: number): void {
  if (frameBytes > FRAME_BYTES_LIMIT)
    throw new RangeError(`a frame of ${frameBytes} bytes exceeds the format`);
}

/**
 * Walks a batch payload without allocating: its command count, or -1 when it is not a
 * well-formed batch (a count or a length that runs past the end, or bytes left over).
 */
function batchCount(payload: Uint8Array): number {
  if (payload.byteLength < CLIENT_BATCH_LENGTH_BYTES) return -1;
  const count = readU32(payload, 0);
  let at = CLIENT_BATCH_LENGTH_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + CLIENT_BATCH_LENGTH_BYTES > payload.byteLength) return -1;
    at += CLIENT_BATCH_LENGTH_BYTES + readU32(payload, at);
    if (at > payload.byteLength) return -1;
  }
  return at === payload.byteLength ? count : -1;
}

/** Writes a frame header and the fixed part of a CLIENT_REQUEST at `start`; returns where the payload goes. */
function writeRequestHead(
  buf: Uint8Array,
  start: number,
  frameBytes: number,
  op: ClientOp,
  flags: number,
  requestId: number,
): number {
  writeU32(buf, start + FRAME_BODY_BYTES_OFFSET, frameBytes - FRAME_HEADER_BYTES);
  buf[start + FRAME_TYPE_OFFSET] = FrameType.ClientRequest;
  const body = start + FRAME_HEADER_BYTES;
  buf[body + CLIENT_REQUEST_OP_OFFSET] = op;
  buf[body + CLIENT_REQUEST_FLAGS_OFFSET] = flags;
  writeU16(buf, body + CLIENT_REQUEST_RESERVED_OFFSET, 0);
  writeU32(buf, body + CLIENT_REQUEST_ID_OFFSET, requestId);
  return body + CLIENT_REQUEST_FIXED_BYTES;
}

// ------------------------------------------------------------------ requests

/**
 * Appends the CLIENT_REQUEST frame for `req` to `out`; returns the bytes written. Throws
 * RangeError, leaving `out` unchanged, for what the format cannot carry: an unknown op,
 * flags the op does not define, a request id that is not a u32, a payload that does not
 * fit the op, or a frame over 4 GiB.
 */
export function encodeClientRequest(out: OutBuffer, req: ClientRequest): number {
  const { op, flags, requestId } = req;
  if (!isKnownOp(op)) throw new RangeError(`unknown client op ${op}`);
  checkRequestId(requestId);
  const maxFlags = op === ClientOp.Read ? ReadConsistencyCode.Stale : 0;
  if (!Number.isInteger(flags) || flags < 0 || flags > maxFlags)
    throw new RangeError(`flags ${flags} are not defined for op ${clientOpName(op)}`);
  checkSession(op, req.session);
  const session = req.session ?? NO_BYTES;
  const commands = op === ClientOp.ApplyBatch || op === ClientOp.SessionApplyBatch ? req.commands : undefined;
  if (commands !== undefined) return encodeBatch(out, op, requestId, session, commands);
  const payload = req.payload;
  if ((wantsEmptyPayload(op) || op === ClientOp.SessionRegister) && payload.byteLength !== 0)
    throw new RangeError(`op ${clientOpName(op)} carries no payload`);
  if (wantsText(op) && payload.byteLength === 0)
    throw new RangeError(`op ${clientOpName(op)} needs a payload`);
  if ((op === ClientOp.ApplyBatch || op === ClientOp.SessionApplyBatch) && batchCount(payload) < 0)
    throw new RangeError(`an ${clientOpName(op)} payload that is not a batch`);
  const frameBytes =
    FRAME_HEADER_BYTES + CLIENT_REQUEST_FIXED_BYTES + session.byteLength + payload.byteLength;
  checkFrameBytes(frameBytes);
  const start = out.append(frameBytes);
  const buf = out.bytes;
  const at = writeRequestHead(buf, start, frameBytes, op, flags, requestId);
  buf.set(session, at);
  buf.set(payload, at + session.byteLength);
  return frameBytes;
}

/**
 * Appends an ApplyBatch (or SessionApplyBatch, after its `session` header) request whose
 * batch is built from `commands` straight into `out`.
 */
function encodeBatch(
  out: OutBuffer,
  op: ClientOp,
  requestId: number,
  session: Uint8Array,
  commands: readonly Uint8Array[],
): number {
  if (commands.length > U32_MAX) throw new RangeError(`${commands.length} commands exceed the format`);
  let frameBytes =
    FRAME_HEADER_BYTES + CLIENT_REQUEST_FIXED_BYTES + session.byteLength + CLIENT_BATCH_LENGTH_BYTES;
  for (const c of commands) frameBytes += CLIENT_BATCH_LENGTH_BYTES + c.byteLength;
  checkFrameBytes(frameBytes);
  const start = out.append(frameBytes);
  const buf = out.bytes;
  let at = writeRequestHead(buf, start, frameBytes, op, 0, requestId);
  buf.set(session, at);
  at += session.byteLength;
  writeU32(buf, at, commands.length);
  at += CLIENT_BATCH_LENGTH_BYTES;
  for (const c of commands) {
    writeU32(buf, at, c.byteLength);
    buf.set(c, at + CLIENT_BATCH_LENGTH_BYTES);
    at += CLIENT_BATCH_LENGTH_BYTES + c.byteLength;
  }
  return frameBytes;
}

/**
 * Appends a Read request for `query` at `consistency`, encoding the query straight into
 * the frame (no intermediate buffer); returns the bytes written. Throws, leaving `out`
 * unchanged, for a query the value codec cannot carry (TypeError) or a bad request id or
 * consistency (RangeError).
 */
export function encodeClientReadRequest(
  out: OutBuffer,
  requestId: number,
  consistency: ReadConsistencyCode,
  query: Value,
): number {
  checkRequestId(requestId);
  if (!Number.isInteger(consistency) || consistency < 0 || consistency > ReadConsistencyCode.Stale)
    throw new RangeError(`unknown read consistency ${consistency}`);
  // Sized first so that an unencodable query throws before `out` changes.
  const valueBytes = encodedValueBytes(query);
  const frameBytes = FRAME_HEADER_BYTES + CLIENT_REQUEST_FIXED_BYTES + valueBytes;
  checkFrameBytes(frameBytes);
  const start = out.append(FRAME_HEADER_BYTES + CLIENT_REQUEST_FIXED_BYTES);
  writeRequestHead(out.bytes, start, frameBytes, ClientOp.Read, consistency, requestId);
  encodeValue(query, out);
  return frameBytes;
}

/**
 * Decodes a CLIENT_REQUEST body (as `FrameDecoder` yields it). Returns a `ClientFrameError`
 * for malformed bytes, never throws. `payload` and `commands` are views of `body`. A Read
 * query is not decoded here: the node decodes it once, with `decodeValue`, which refuses
 * malformed bytes with a `ValueDecodeError`.
 */
export function decodeClientRequest(body: Uint8Array): ClientRequest | ClientFrameError {
  if (body.byteLength < CLIENT_REQUEST_FIXED_BYTES)
    return new ClientFrameError('ERR_CLIENT_TRUNCATED', `a request body of ${body.byteLength} bytes`);
  const op = body[CLIENT_REQUEST_OP_OFFSET] as number;
  if (!isKnownOp(op)) return new ClientFrameError('ERR_CLIENT_UNKNOWN_OP', `unknown client op ${op}`);
  const flags = body[CLIENT_REQUEST_FLAGS_OFFSET] as number;
  const maxFlags = op === ClientOp.Read ? ReadConsistencyCode.Stale : 0;
  if (flags > maxFlags)
    return new ClientFrameError(
      'ERR_CLIENT_BAD_FLAGS',
      `flags ${flags} are not defined for op ${clientOpName(op)}`,
    );
  if (readU16(body, CLIENT_REQUEST_RESERVED_OFFSET) !== 0)
    return new ClientFrameError('ERR_CLIENT_RESERVED', 'the reserved u16 of a request is not zero');
  const requestId = readU32(body, CLIENT_REQUEST_ID_OFFSET);
  const payload =
    body.byteLength === CLIENT_REQUEST_FIXED_BYTES ? NO_BYTES : body.subarray(CLIENT_REQUEST_FIXED_BYTES);
  if (wantsEmptyPayload(op)) {
    if (payload.byteLength !== 0)
      return new ClientFrameError('ERR_CLIENT_BAD_PAYLOAD', `op ${clientOpName(op)} carries no payload`);
  } else if (wantsText(op)) {
    if (payload.byteLength === 0)
      return new ClientFrameError('ERR_CLIENT_BAD_PAYLOAD', `op ${clientOpName(op)} needs a payload`);
    try {
      utf8.decode(payload);
    } catch {
      return new ClientFrameError(
        'ERR_CLIENT_BAD_UTF8',
        `the payload of op ${clientOpName(op)} is not UTF-8`,
      );
    }
  } else if (op === ClientOp.ApplyBatch) {
    return decodeBatchRequest(op, payload, requestId, undefined);
  } else if (op === ClientOp.SessionRegister) {
    if (payload.byteLength !== SESSION_CLIENT_ID_BYTES)
      return new ClientFrameError(
        'ERR_CLIENT_BAD_SESSION',
        `a SessionRegister payload of ${payload.byteLength} bytes, not ${SESSION_CLIENT_ID_BYTES}`,
      );
    if (isZeroId(payload, 0))
      return new ClientFrameError('ERR_CLIENT_BAD_SESSION', 'the client id is all zero');
    return { op, flags, requestId, payload: NO_BYTES, session: payload };
  } else if (isSessionWrite(op)) {
    if (payload.byteLength < SESSION_REQUEST_HEADER_BYTES)
      return new ClientFrameError(
        'ERR_CLIENT_TRUNCATED',
        `a ${clientOpName(op)} payload of ${payload.byteLength} bytes has no session header`,
      );
    const problem = sessionHeaderProblem(payload, 0);
    if (problem !== null) return new ClientFrameError('ERR_CLIENT_BAD_SESSION', problem);
    const session = payload.subarray(0, SESSION_REQUEST_HEADER_BYTES);
    const rest = payload.subarray(SESSION_REQUEST_HEADER_BYTES);
    if (op === ClientOp.SessionApplyBatch) return decodeBatchRequest(op, rest, requestId, session);
    return { op, flags, requestId, payload: rest, session };
  }
  return { op, flags, requestId, payload };
}

function decodeBatchRequest(
  op: ClientOp.ApplyBatch | ClientOp.SessionApplyBatch,
  payload: Uint8Array,
  requestId: number,
  session: Uint8Array | undefined,
): ClientRequest | ClientFrameError {
  if (payload.byteLength < CLIENT_BATCH_LENGTH_BYTES)
    return new ClientFrameError('ERR_CLIENT_TRUNCATED', `an ${clientOpName(op)} request without a count`);
  const count = readU32(payload, 0);
  // Every command takes at least its length field: a count beyond that is a lie.
  if (count > (payload.byteLength - CLIENT_BATCH_LENGTH_BYTES) / CLIENT_BATCH_LENGTH_BYTES)
    return new ClientFrameError('ERR_CLIENT_TRUNCATED', `${count} commands cannot fit in the batch`);
  // Checked by walking the lengths, without building anything: a batch of millions of
  // empty commands (4 bytes each) is a few MiB of request but would be a view object of
  // ~100 bytes per command, gigabytes for one 64 MiB frame. The node proposes `payload`
  // as it is and never looks at `commands`; they are built on first access.
  let at = CLIENT_BATCH_LENGTH_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + CLIENT_BATCH_LENGTH_BYTES > payload.byteLength)
      return new ClientFrameError('ERR_CLIENT_TRUNCATED', `command ${i} of the batch has no length`);
    const len = readU32(payload, at);
    at += CLIENT_BATCH_LENGTH_BYTES;
    if (len > payload.byteLength - at)
      return new ClientFrameError('ERR_CLIENT_TRUNCATED', `command ${i} of the batch runs past its end`);
    at += len;
  }
  if (at !== payload.byteLength)
    return new ClientFrameError('ERR_CLIENT_BAD_PAYLOAD', `${payload.byteLength - at} bytes after the batch`);
  let commands: Uint8Array[] | undefined;
  return {
    op,
    flags: 0,
    requestId,
    payload,
    ...(session !== undefined ? { session } : {}),
    get commands(): Uint8Array[] {
      commands ??= splitBatch(payload, count);
      return commands;
    },
  };
}

/** The commands of a batch payload already checked by `decodeBatchRequest`, as views of it. */
function splitBatch(payload: Uint8Array, count: number): Uint8Array[] {
  const commands: Uint8Array[] = new Array(count);
  let at = CLIENT_BATCH_LENGTH_BYTES;
  for (let i = 0; i < count; i++) {
    const len = readU32(payload, at);
    at += CLIENT_BATCH_LENGTH_BYTES;
    commands[i] = payload.subarray(at, at + len);
    at += len;
  }
  return commands;
}

// ------------------------------------------------------------------ responses

/**
 * Appends the CLIENT_RESPONSE frame for `resp` to `out`; returns the bytes written. The
 * value is encoded straight into the frame. Throws, leaving `out` unchanged, for a value
 * the value codec cannot carry (TypeError: answer with an error instead), an error whose
 * code or message is not a string, or a request id that is not a u32 (RangeError).
 */
export function encodeClientResponse(out: OutBuffer, resp: ClientResponse): number {
  checkRequestId(resp.requestId);
  let value: Value;
  if (resp.ok) value = resp.value;
  else {
    const e = resp.error;
    if (typeof e.code !== 'string' || typeof e.message !== 'string')
      throw new RangeError('an error response needs a string code and message');
    // Only the record's own fields travel: an Error object given here would otherwise
    // fail to encode, or carry whatever else it holds.
    const record: { [k: string]: Value } = { code: e.code, message: e.message };
    if (typeof e.leaderId === 'string') record.leaderId = e.leaderId;
    if (typeof e.leaderAddress === 'string') record.leaderAddress = e.leaderAddress;
    value = record;
  }
  // Sized first so that an unencodable value throws before `out` changes.
  const valueBytes = encodedValueBytes(value);
  const frameBytes = appendResponseHead(out, resp.requestId, resp.ok, valueBytes);
  encodeValue(value, out);
  return frameBytes;
}

/**
 * Encodes an ok CLIENT_RESPONSE whose value is already value-codec bytes,
 * `value[start, end)`, copied as they are: a result as the fsm encoded it is passed on
 * without being decoded and encoded again. The caller vouches that they are one value.
 */
export function encodeClientResponseEncoded(
  out: OutBuffer,
  requestId: number,
  value: Uint8Array,
  start: number,
  end: number,
): number {
  checkRequestId(requestId);
  const frameBytes = appendResponseHead(out, requestId, true, end - start);
  const at = out.append(end - start);
  out.bytes.set(start === 0 && end === value.byteLength ? value : value.subarray(start, end), at);
  return frameBytes;
}

/** Appends a CLIENT_RESPONSE's frame header and fixed part, for a value of `valueBytes`. */
function appendResponseHead(out: OutBuffer, requestId: number, ok: boolean, valueBytes: number): number {
  const frameBytes = FRAME_HEADER_BYTES + CLIENT_RESPONSE_FIXED_BYTES + valueBytes;
  checkFrameBytes(frameBytes);
  const start = out.append(FRAME_HEADER_BYTES + CLIENT_RESPONSE_FIXED_BYTES);
  const buf = out.bytes;
  writeU32(buf, start + FRAME_BODY_BYTES_OFFSET, frameBytes - FRAME_HEADER_BYTES);
  buf[start + FRAME_TYPE_OFFSET] = FrameType.ClientResponse;
  const body = start + FRAME_HEADER_BYTES;
  buf[body + CLIENT_RESPONSE_STATUS_OFFSET] = ok ? ClientStatus.Ok : ClientStatus.Error;
  buf.fill(
    0,
    body + CLIENT_RESPONSE_RESERVED_OFFSET,
    body + CLIENT_RESPONSE_RESERVED_OFFSET + CLIENT_RESPONSE_RESERVED_BYTES,
  );
  writeU32(buf, body + CLIENT_RESPONSE_ID_OFFSET, requestId);
  return frameBytes;
}

/**
 * Decodes a CLIENT_RESPONSE body (as `FrameDecoder` yields it). Returns a
 * `ClientFrameError` for malformed bytes, never throws. The value's strings and bytes are
 * copies (`decodeValue`), so the result outlives the socket's buffers.
 */
export function decodeClientResponse(body: Uint8Array): ClientResponse | ClientFrameError {
  if (body.byteLength < CLIENT_RESPONSE_FIXED_BYTES)
    return new ClientFrameError('ERR_CLIENT_TRUNCATED', `a response body of ${body.byteLength} bytes`);
  const status = body[CLIENT_RESPONSE_STATUS_OFFSET] as number;
  if (status !== ClientStatus.Ok && status !== ClientStatus.Error)
    return new ClientFrameError('ERR_CLIENT_BAD_STATUS', `unknown response status ${status}`);
  for (let i = 0; i < CLIENT_RESPONSE_RESERVED_BYTES; i++) {
    if (body[CLIENT_RESPONSE_RESERVED_OFFSET + i] !== 0)
      return new ClientFrameError('ERR_CLIENT_RESERVED', 'a reserved byte of a response is not zero');
  }
  const requestId = readU32(body, CLIENT_RESPONSE_ID_OFFSET);
  let value: Value;
  try {
    value = decodeValue(body, CLIENT_RESPONSE_FIXED_BYTES, body.byteLength);
  } catch (err) {
    const why = err instanceof ValueDecodeError ? `${err.code}: ${err.message}` : String(err);
    return new ClientFrameError('ERR_CLIENT_BAD_VALUE', `response ${requestId}: ${why}`);
  }
  if (status === ClientStatus.Ok) return { requestId, ok: true, value };
  const error = errorRecord(value);
  if (error === null)
    return new ClientFrameError(
      'ERR_CLIENT_BAD_ERROR',
      `response ${requestId}: the error is not { code, message }`,
    );
  return { requestId, ok: false, error };
}

/** The error record in a decoded error value, or null when it has the wrong shape. */
function errorRecord(v: Value): ClientErrorValue | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return null;
  const { code, message, leaderId, leaderAddress } = v;
  if (typeof code !== 'string' || typeof message !== 'string') return null;
  if (leaderId !== undefined && typeof leaderId !== 'string') return null;
  if (leaderAddress !== undefined && typeof leaderAddress !== 'string') return null;
  return {
    code,
    message,
    ...(leaderId !== undefined ? { leaderId } : {}),
    ...(leaderAddress !== undefined ? { leaderAddress } : {}),
  };
}
