/**
 * Wire frames (layouts and reasons in `protocol.ts`): encoding into a growable outgoing
 * buffer, and an incremental `FrameDecoder` fed raw TCP chunks.
 *
 * The decoder treats every byte as hostile: a bad frame is a `FrameError` value with a
 * stable `code`, never an exception, and nothing is allocated from a length before that
 * length has been checked against the configured maximum. After an error the stream is
 * out of step, so the decoder keeps answering the same error and the connection must be
 * closed. Encoders throw RangeError for what cannot be encoded (an id over 255 bytes, an
 * unsafe number): those are bugs of the caller, not input from outside.
 */
import { type Message, MessageType } from '../raft/messages.js';
import type { ConfState, Entry, NodeId, SnapshotMeta } from '../raft/types.js';
import {
  assertEncodableEntry,
  decodeEntryAt,
  type EntryDecodeError,
  encodeEntry,
  isU64Safe,
  readU16,
  readU32,
  readU64,
  writeU16,
  writeU32,
  writeU64,
} from './entry-codec.js';
import {
  AUTH_FLAG_ADMIN_PROOF,
  AUTH_FLAG_PROOF,
  AUTH_FLAGS_KNOWN,
  AUTH_FLAGS_OFFSET,
  AUTH_MAX_BODY_BYTES,
  AUTH_PROOF_BYTES,
  AUTH_PROOFS_OFFSET,
  DEFAULT_MAX_ENTRY_PAYLOAD_BYTES,
  DEFAULT_MAX_FRAME_BYTES,
  ENTRY_HEADER_BYTES,
  ENTRY_PAYLOAD_BYTES_LIMIT,
  FRAME_BODY_BYTES_OFFSET,
  FRAME_BYTES_LIMIT,
  FRAME_HEADER_BYTES,
  FRAME_TYPE_OFFSET,
  FrameType,
  HANDSHAKE_CLUSTER_ID_OFFSET,
  HANDSHAKE_FLAG_AUTH_FOLLOWS,
  HANDSHAKE_FLAGS_KNOWN,
  HANDSHAKE_MAGIC,
  HANDSHAKE_MAGIC_OFFSET,
  HANDSHAKE_MAX_BODY_BYTES,
  HANDSHAKE_MIN_BODY_BYTES,
  HANDSHAKE_NONCE_BYTES,
  HANDSHAKE_ROLE_OFFSET,
  HANDSHAKE_TAIL_BYTES,
  HANDSHAKE_TAIL_ELECTION_TIMEOUT_OFFSET,
  HANDSHAKE_TAIL_FLAGS_OFFSET,
  HANDSHAKE_TAIL_NONCE_OFFSET,
  HANDSHAKE_VERSION_OFFSET,
  HandshakeRole,
  MAX_CONF_IDS,
  MAX_ID_BYTES,
  MESSAGE_COMMIT_OFFSET,
  MESSAGE_CONTEXT_OFFSET,
  MESSAGE_ENTRY_COUNT_OFFSET,
  MESSAGE_FIXED_BYTES,
  MESSAGE_FLAG_REJECT,
  MESSAGE_FLAG_SNAPSHOT,
  MESSAGE_FLAGS_KNOWN,
  MESSAGE_FLAGS_OFFSET,
  MESSAGE_FROM_BYTES_OFFSET,
  MESSAGE_INDEX_OFFSET,
  MESSAGE_LOG_TERM_OFFSET,
  MESSAGE_REJECT_HINT_OFFSET,
  MESSAGE_TERM_OFFSET,
  MESSAGE_TO_BYTES_OFFSET,
  MESSAGE_TYPE_OFFSET,
  PROTOCOL_VERSION,
  RAFT_MESSAGE_MAX_OVERHEAD_BYTES,
  RESERVED_FRAME_TYPES,
  SNAPSHOT_FIXED_BYTES,
  SNAPSHOT_FLAG_AUTO_LEAVE,
  SNAPSHOT_FLAGS_OFFSET,
  SNAPSHOT_INDEX_OFFSET,
  SNAPSHOT_LEARNERS_OFFSET,
  SNAPSHOT_OUTGOING_OFFSET,
  SNAPSHOT_TERM_OFFSET,
  SNAPSHOT_VOTERS_OFFSET,
} from './protocol.js';

// ------------------------------------------------------------------ frames as values

/**
 * What a HANDSHAKE frame says. The version is always `PROTOCOL_VERSION`: others are
 * refused. The last three fields may be left out when encoding (false, 0, zeros); a
 * decoded handshake always has them.
 */
export interface Handshake {
  readonly role: HandshakeRole;
  readonly clusterId: string;
  readonly nodeId: NodeId;
  /** The sender's next frame is an AUTH frame (it holds a secret). */
  readonly authFollows?: boolean;
  /** The sender's election timeout; 0 for a client. */
  readonly electionTimeoutMs?: number;
  /** `HANDSHAKE_NONCE_BYTES` bytes, random per connection when a proof will cover them. */
  readonly nonce?: Uint8Array;
}

/** A HANDSHAKE frame. */
export interface HandshakeFrame {
  readonly type: FrameType.Handshake;
  readonly handshake: Handshake;
}

/** What an AUTH frame carries: the proofs present, each `AUTH_PROOF_BYTES` bytes. */
export interface AuthProofs {
  /** HMAC under the cluster secret, or null. */
  readonly proof: Uint8Array | null;
  /** HMAC under the admin secret (a client's), or null. */
  readonly adminProof: Uint8Array | null;
}

/** An AUTH frame (protocol.ts, "AUTH body"). */
export interface AuthFrame {
  readonly type: FrameType.Auth;
  readonly auth: AuthProofs;
}

/** A RAFT_MESSAGE frame to send. */
export interface RaftMessageFrame {
  readonly type: FrameType.RaftMessage;
  readonly message: Message;
}

/**
 * A received RAFT_MESSAGE frame. The entries' `data` and `entryRecords` are views into
 * the received bytes, not copies.
 */
export interface DecodedRaftMessageFrame extends RaftMessageFrame {
  /**
   * The message's entries as the stored records they arrived in, back to back and already
   * verified: a follower copies this span as is into its log window (DESIGN.md: "a
   * follower writes what it received"). Empty when the message has no entries.
   */
  readonly entryRecords: Uint8Array;
}

/** Any frame this version can send. */
export type OutgoingFrame = HandshakeFrame | AuthFrame | RaftMessageFrame;

/**
 * A received CLIENT_REQUEST frame: its body, a view of the received bytes, for
 * `decodeClientRequest` (`client-codec.ts`). Yielded only on a connection whose handshake
 * has role client.
 */
export interface ClientRequestFrame {
  readonly type: FrameType.ClientRequest;
  readonly body: Uint8Array;
}

/**
 * A received CLIENT_RESPONSE frame: its body, a view of the received bytes, for
 * `decodeClientResponse` (`client-codec.ts`). Yielded only by a decoder built with
 * `clientResponses: true` (a `RaftClient`'s).
 */
export interface ClientResponseFrame {
  readonly type: FrameType.ClientResponse;
  readonly body: Uint8Array;
}

/** A received client frame. Its body is decoded by `client-codec.ts`, not here. */
export type ClientFrame = ClientRequestFrame | ClientResponseFrame;

/**
 * A received snapshot-stream frame: its body, a view of the received bytes or a copy
 * made to join a split frame, for `snapshot-stream-codec.ts`. SNAPSHOT_SEND is yielded
 * only after a handshake with role snapshot; SNAPSHOT_REPLY only by a decoder built with
 * `snapshotReplies: true` (the leader's side of the stream).
 */
export interface SnapshotStreamFrame {
  readonly type: FrameType.SnapshotSend | FrameType.SnapshotReply;
  readonly body: Uint8Array;
}

/** Any frame `FrameDecoder` yields. */
export type Frame = HandshakeFrame | AuthFrame | DecodedRaftMessageFrame | ClientFrame | SnapshotStreamFrame;

// ------------------------------------------------------------------ errors

/** Why a byte stream was refused. Stable codes: log them, match on them. */
export type FrameErrorCode =
  /** The frame, header included, is larger than `maxFrameBytes` (or a handshake larger than its layout allows). */
  | 'ERR_FRAME_TOO_LONG'
  /** The frame type code is not one of `FrameType`. */
  | 'ERR_FRAME_UNKNOWN_TYPE'
  /**
   * The frame type code is reserved (`RESERVED_FRAME_TYPES`) and not implemented by this
   * version, or it is not one this connection carries: a client frame between peers, a
   * RAFT_MESSAGE on a client connection, a request where responses are expected.
   */
  | 'ERR_FRAME_UNSUPPORTED_TYPE'
  /** The first frame of the connection is not a HANDSHAKE: probably not a raftline peer. */
  | 'ERR_FRAME_HANDSHAKE_EXPECTED'
  /** A second HANDSHAKE on one connection. */
  | 'ERR_FRAME_UNEXPECTED_HANDSHAKE'
  /** The HANDSHAKE said an AUTH frame follows, and the next frame is something else. */
  | 'ERR_FRAME_AUTH_EXPECTED'
  /** An AUTH frame anywhere but right after a HANDSHAKE that announced it. */
  | 'ERR_FRAME_UNEXPECTED_AUTH'
  /** The HANDSHAKE does not start with "RFTL". */
  | 'ERR_FRAME_BAD_MAGIC'
  /** The HANDSHAKE names a protocol version other than `PROTOCOL_VERSION`. */
  | 'ERR_FRAME_BAD_VERSION'
  /** The HANDSHAKE's role is not a `HandshakeRole`. */
  | 'ERR_FRAME_BAD_ROLE'
  /** An id that must not be empty is (cluster id; a peer's node id). */
  | 'ERR_FRAME_BAD_ID'
  /** An id is not valid UTF-8. */
  | 'ERR_FRAME_BAD_UTF8'
  /** The RAFT_MESSAGE type code is not a `MessageType`. */
  | 'ERR_FRAME_UNKNOWN_MESSAGE_TYPE'
  /** A flags byte has bits this version does not define. */
  | 'ERR_FRAME_BAD_FLAGS'
  /** A u64 field holds a value above 2^53-1. */
  | 'ERR_FRAME_BAD_NUMBER'
  /** A field, id or entry record runs past the end of the frame body. */
  | 'ERR_FRAME_TRUNCATED'
  /** The content ends before the frame body does. */
  | 'ERR_FRAME_TRAILING_BYTES'
  /** An entry record is corrupt (CRC mismatch) or invalid; `entryError` says which and where. */
  | 'ERR_FRAME_BAD_ENTRY';

/**
 * A refused frame. It is returned, not thrown: a bad peer is an expected outcome. It is
 * an `Error` so that it can be handed to `socket.destroy(error)` and logged with its code.
 */
export class FrameError extends Error {
  override readonly name = 'FrameError';
  /** The stable reason. */
  readonly code: FrameErrorCode;
  /** Where the refused frame starts in the connection's byte stream. */
  readonly streamOffset: number;
  /** For `ERR_FRAME_BAD_ENTRY` and a truncated record: what the entry decoder said. */
  readonly entryError: EntryDecodeError | null;

  constructor(
    code: FrameErrorCode,
    message: string,
    streamOffset: number,
    entryError: EntryDecodeError | null = null,
  ) {
    super(`${message} (frame at stream offset ${streamOffset})`);
    this.code = code;
    this.streamOffset = streamOffset;
    this.entryError = entryError;
  }
}

// ------------------------------------------------------------------ outgoing buffer

/**
 * A growable byte buffer that frames are encoded into, back to back, so a batch of frames
 * leaves in one `socket.write`. It grows by doubling and is reused after `clear()`: in
 * steady state encoding allocates nothing.
 *
 * `view()` returns a view, not a copy: call `clear()` only once the bytes handed out have
 * been written (the `socket.write` callback), or they would be overwritten.
 */
export class OutBuffer {
  private buffer: Uint8Array;
  private usedBytes = 0;

  constructor(initialCapacityBytes = 64 * 1024) {
    this.buffer = new Uint8Array(Math.max(16, initialCapacityBytes));
  }

  /** Bytes encoded so far. */
  get length(): number {
    return this.usedBytes;
  }

  /** The whole backing array. Valid until the next `append`, which may replace it. */
  get bytes(): Uint8Array {
    return this.buffer;
  }

  /**
   * Makes room for `byteCount` more bytes, counts them as used and returns the offset in
   * `bytes` where the caller writes them.
   */
  append(byteCount: number): number {
    const offset = this.usedBytes;
    const needed = offset + byteCount;
    if (needed > this.buffer.byteLength) {
      let capacity = this.buffer.byteLength * 2;
      while (capacity < needed) capacity *= 2;
      const grown = new Uint8Array(capacity);
      grown.set(this.buffer.subarray(0, offset));
      this.buffer = grown;
    }
    this.usedBytes = needed;
    return offset;
  }

  /** The encoded bytes: a view of `bytes[0, length)`. */
  view(): Uint8Array {
    return this.buffer.subarray(0, this.usedBytes);
  }

  /** Forgets the encoded bytes and keeps the capacity. */
  clear(): void {
    this.usedBytes = 0;
  }
}

// ------------------------------------------------------------------ UTF-8 ids

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: a leading U+FEFF is part of the id.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * UTF-8 length of an id, checked against the one-byte length prefix. Throws RangeError for
 * an id over `MAX_ID_BYTES` or one with a lone surrogate, which UTF-8 cannot carry and
 * which would otherwise arrive renamed to U+FFFD.
 */
function idBytes(id: string, what: string): number {
  let byteCount = 0;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c < 0x80) byteCount += 1;
    else if (c < 0x800) byteCount += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = id.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) throw new RangeError(`${what} has a lone surrogate`);
      byteCount += 4;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) throw new RangeError(`${what} has a lone surrogate`);
    else byteCount += 3;
  }
  if (byteCount > MAX_ID_BYTES)
    throw new RangeError(`${what} is ${byteCount} bytes; at most ${MAX_ID_BYTES}`);
  return byteCount;
}

/** Writes an id's length byte and its UTF-8 bytes at `offset`; returns the offset after them. */
function writeId(out: Uint8Array, offset: number, id: string, byteCount: number): number {
  out[offset] = byteCount;
  return writeIdBytes(out, offset + 1, id, byteCount);
}

/** Writes an id's UTF-8 bytes at `offset`, without a length byte; returns the offset after them. */
function writeIdBytes(out: Uint8Array, offset: number, id: string, byteCount: number): number {
  // An id whose UTF-8 length equals its UTF-16 length is pure ASCII: copy it without
  // TextEncoder, whose encodeInto allocates a view and a result object.
  if (byteCount === id.length) {
    for (let i = 0; i < byteCount; i++) out[offset + i] = id.charCodeAt(i);
    return offset + byteCount;
  }
  const { written } = utf8Encoder.encodeInto(id, out.subarray(offset, offset + byteCount));
  if (written !== byteCount) throw new Error(`id encoded to ${written} bytes, expected ${byteCount}`);
  return offset + byteCount;
}

/** Decodes `byteCount` bytes of UTF-8 at `start`, or returns null if they are not valid UTF-8. */
function readId(bytes: Uint8Array, start: number, byteCount: number): string | null {
  // Ids are short and nearly always ASCII: building the string by hand takes ~10 ns for
  // "n1", TextDecoder ~130 ns (measured), and every RAFT_MESSAGE carries two ids.
  let id = '';
  for (let i = start; i < start + byteCount; i++) {
    const b = bytes[i] as number;
    if (b >= 0x80) return readUtf8Id(bytes, start, byteCount);
    id += String.fromCharCode(b);
  }
  return id;
}

function readUtf8Id(bytes: Uint8Array, start: number, byteCount: number): string | null {
  try {
    return utf8Decoder.decode(bytes.subarray(start, start + byteCount));
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ encode

const KNOWN_MESSAGE_TYPES: ReadonlySet<number> = new Set(
  Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number'),
);

const KNOWN_ROLES: ReadonlySet<number> = new Set(
  Object.values(HandshakeRole).filter((v): v is HandshakeRole => typeof v === 'number'),
);

function checkU64(value: number, what: string): void {
  if (!isU64Safe(value)) throw new RangeError(`${what} ${value} is not an integer in 0..2^53-1`);
}

function checkFrameBytes(frameBytes: number): void {
  if (frameBytes > FRAME_BYTES_LIMIT)
    throw new RangeError(`a frame of ${frameBytes} bytes exceeds the format`);
}

/** Bytes the HANDSHAKE frame for `hs` occupies, header included. Throws RangeError if it cannot be encoded. */
function handshakeFrameBytes(hs: Handshake): number {
  if (!KNOWN_ROLES.has(hs.role)) throw new RangeError(`unknown handshake role ${hs.role}`);
  const clusterIdBytes = idBytes(hs.clusterId, 'cluster id');
  const nodeIdBytes = idBytes(hs.nodeId, 'node id');
  if (clusterIdBytes === 0) throw new RangeError('the cluster id is empty');
  if (hs.role !== HandshakeRole.Client && nodeIdBytes === 0)
    throw new RangeError("a peer's node id is empty");
  const timeoutMs = hs.electionTimeoutMs ?? 0;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > 0xffff_ffff)
    throw new RangeError(`electionTimeoutMs ${timeoutMs} is not a u32`);
  if (hs.nonce !== undefined && hs.nonce.byteLength !== HANDSHAKE_NONCE_BYTES)
    throw new RangeError(`a handshake nonce has ${HANDSHAKE_NONCE_BYTES} bytes, not ${hs.nonce.byteLength}`);
  return FRAME_HEADER_BYTES + HANDSHAKE_MIN_BODY_BYTES + clusterIdBytes + nodeIdBytes;
}

/** Bytes the AUTH frame for `a` occupies, header included. */
function authFrameBytes(a: AuthProofs): number {
  let byteCount = FRAME_HEADER_BYTES + AUTH_PROOFS_OFFSET;
  for (const proof of [a.proof, a.adminProof]) {
    if (proof === null) continue;
    if (proof.byteLength !== AUTH_PROOF_BYTES)
      throw new RangeError(`a proof has ${AUTH_PROOF_BYTES} bytes, not ${proof.byteLength}`);
    byteCount += AUTH_PROOF_BYTES;
  }
  return byteCount;
}

/** Bytes of the snapshot meta for `s`. */
function snapshotBytes(s: SnapshotMeta): number {
  checkU64(s.index, 'snapshot index');
  checkU64(s.term, 'snapshot term');
  let byteCount = SNAPSHOT_FIXED_BYTES;
  for (const list of [s.conf.voters, s.conf.votersOutgoing, s.conf.learners]) {
    if (list.length > MAX_CONF_IDS)
      throw new RangeError(`more than ${MAX_CONF_IDS} ids in one configuration list`);
    for (const id of list) byteCount += 1 + idBytes(id, 'configuration id');
  }
  return byteCount;
}

/**
 * Bytes of a RAFT_MESSAGE frame for `m` whose entry records take `recordBytes`. Checks
 * every field that could not be encoded.
 */
function messageFrameBytes(m: Message, recordBytes: number): number {
  if (!KNOWN_MESSAGE_TYPES.has(m.type)) throw new RangeError(`unknown message type ${m.type}`);
  checkU64(m.term, 'term');
  checkU64(m.logTerm, 'logTerm');
  checkU64(m.index, 'index');
  checkU64(m.commit, 'commit');
  checkU64(m.rejectHint, 'rejectHint');
  checkU64(m.context, 'context');
  const ids = idBytes(m.from, 'from') + idBytes(m.to, 'to');
  const snapshot = m.snapshot === null ? 0 : snapshotBytes(m.snapshot);
  const frameBytes = FRAME_HEADER_BYTES + MESSAGE_FIXED_BYTES + ids + snapshot + recordBytes;
  checkFrameBytes(frameBytes);
  return frameBytes;
}

function entriesRecordBytes(entries: readonly Entry[]): number {
  let byteCount = 0;
  for (const e of entries) {
    assertEncodableEntry(e);
    byteCount += ENTRY_HEADER_BYTES + e.data.byteLength;
  }
  return byteCount;
}

/** Bytes `frame` occupies on the wire, header included. Throws RangeError if it cannot be encoded. */
export function encodedFrameBytes(frame: OutgoingFrame): number {
  if (frame.type === FrameType.Handshake) return handshakeFrameBytes(frame.handshake);
  if (frame.type === FrameType.Auth) return authFrameBytes(frame.auth);
  return messageFrameBytes(frame.message, entriesRecordBytes(frame.message.entries));
}

/**
 * Appends `frame` to `out` and returns the bytes written. Entries are encoded straight
 * into `out` (no per-entry allocation). Throws RangeError for a frame that cannot be
 * encoded; `out` is then unchanged.
 */
export function encodeFrame(out: OutBuffer, frame: OutgoingFrame): number {
  if (frame.type === FrameType.Handshake) return encodeHandshakeFrame(out, frame.handshake);
  if (frame.type === FrameType.Auth) return encodeAuthFrame(out, frame.auth);
  return encodeRaftMessageFrame(out, frame.message);
}

/** Appends a HANDSHAKE frame announcing `hs` with `PROTOCOL_VERSION`; returns the bytes written. */
export function encodeHandshakeFrame(out: OutBuffer, hs: Handshake): number {
  const frameBytes = handshakeFrameBytes(hs);
  const start = out.append(frameBytes);
  const buf = out.bytes;
  writeFrameHeader(buf, start, FrameType.Handshake, frameBytes);
  const body = start + FRAME_HEADER_BYTES;
  for (let i = 0; i < HANDSHAKE_MAGIC.length; i++)
    buf[body + HANDSHAKE_MAGIC_OFFSET + i] = HANDSHAKE_MAGIC[i] as number;
  writeU16(buf, body + HANDSHAKE_VERSION_OFFSET, PROTOCOL_VERSION);
  buf[body + HANDSHAKE_ROLE_OFFSET] = hs.role;
  let pos = writeId(
    buf,
    body + HANDSHAKE_CLUSTER_ID_OFFSET,
    hs.clusterId,
    idBytes(hs.clusterId, 'cluster id'),
  );
  pos = writeId(buf, pos, hs.nodeId, idBytes(hs.nodeId, 'node id'));
  buf[pos + HANDSHAKE_TAIL_FLAGS_OFFSET] = hs.authFollows === true ? HANDSHAKE_FLAG_AUTH_FOLLOWS : 0;
  writeU32(buf, pos + HANDSHAKE_TAIL_ELECTION_TIMEOUT_OFFSET, hs.electionTimeoutMs ?? 0);
  // `append` does not clear reused bytes: an absent nonce is written as zeros.
  if (hs.nonce === undefined) buf.fill(0, pos + HANDSHAKE_TAIL_NONCE_OFFSET, pos + HANDSHAKE_TAIL_BYTES);
  else buf.set(hs.nonce, pos + HANDSHAKE_TAIL_NONCE_OFFSET);
  pos += HANDSHAKE_TAIL_BYTES;
  assertFilled(pos, start, frameBytes);
  return frameBytes;
}

/** Appends an AUTH frame carrying the proofs of `a`; returns the bytes written. */
export function encodeAuthFrame(out: OutBuffer, a: AuthProofs): number {
  const frameBytes = authFrameBytes(a);
  const start = out.append(frameBytes);
  const buf = out.bytes;
  writeFrameHeader(buf, start, FrameType.Auth, frameBytes);
  const body = start + FRAME_HEADER_BYTES;
  buf.fill(0, body, body + AUTH_PROOFS_OFFSET);
  buf[body + AUTH_FLAGS_OFFSET] =
    (a.proof !== null ? AUTH_FLAG_PROOF : 0) | (a.adminProof !== null ? AUTH_FLAG_ADMIN_PROOF : 0);
  let pos = body + AUTH_PROOFS_OFFSET;
  for (const proof of [a.proof, a.adminProof]) {
    if (proof === null) continue;
    buf.set(proof, pos);
    pos += AUTH_PROOF_BYTES;
  }
  assertFilled(pos, start, frameBytes);
  return frameBytes;
}

/** Appends a RAFT_MESSAGE frame carrying `m`, encoding its entries as stored records; returns the bytes written. */
export function encodeRaftMessageFrame(out: OutBuffer, m: Message): number {
  const frameBytes = messageFrameBytes(m, entriesRecordBytes(m.entries));
  const start = out.append(frameBytes);
  const buf = out.bytes;
  let pos = writeMessageHead(buf, start, frameBytes, m, m.entries.length);
  for (const e of m.entries) pos += encodeEntry(e, buf, pos);
  assertFilled(pos, start, frameBytes);
  return frameBytes;
}

/**
 * Appends a RAFT_MESSAGE frame carrying `m` whose entries are `records`: `recordCount`
 * stored records, back to back, exactly as they sit in the log window or a segment. This
 * is the replicator's path: entries are copied, not encoded again (DESIGN.md: "never
 * encodes an entry twice"). `m.entries` must be empty; the records are trusted (they were
 * verified when stored) and the receiver verifies them again.
 */
export function encodeRaftMessageFrameWithRecords(
  out: OutBuffer,
  m: Message,
  records: Uint8Array,
  recordCount: number,
): number {
  if (m.entries.length !== 0) throw new RangeError('a message with encoded records carries no Entry objects');
  if (
    !Number.isInteger(recordCount) ||
    recordCount < 0 ||
    recordCount * ENTRY_HEADER_BYTES > records.byteLength
  ) {
    throw new RangeError(`${recordCount} records cannot fit in ${records.byteLength} bytes`);
  }
  const frameBytes = messageFrameBytes(m, records.byteLength);
  const start = out.append(frameBytes);
  const buf = out.bytes;
  const pos = writeMessageHead(buf, start, frameBytes, m, recordCount);
  buf.set(records, pos);
  assertFilled(pos + records.byteLength, start, frameBytes);
  return frameBytes;
}

/**
 * Appends only the head of a RAFT_MESSAGE frame (frame header, fixed part, ids, snapshot
 * meta) for `m` whose `recordCount` entries, `recordBytes` long, will follow from
 * elsewhere: the coordinator's half of the replicator path, where the records come from
 * the log window. `m.entries` is ignored. Returns the head's bytes.
 */
export function encodeRaftMessageHead(
  out: OutBuffer,
  m: Message,
  recordBytes: number,
  recordCount: number,
): number {
  const frameBytes = messageFrameBytes(m, recordBytes);
  const headBytes = frameBytes - recordBytes;
  const start = out.append(headBytes);
  const pos = writeMessageHead(out.bytes, start, frameBytes, m, recordCount);
  assertFilled(pos, start, headBytes);
  return headBytes;
}

function writeFrameHeader(buf: Uint8Array, start: number, type: FrameType, frameBytes: number): void {
  writeU32(buf, start + FRAME_BODY_BYTES_OFFSET, frameBytes - FRAME_HEADER_BYTES);
  buf[start + FRAME_TYPE_OFFSET] = type;
}

/** Writes the frame header, the fixed part, the ids and the snapshot meta; returns where the records go. */
function writeMessageHead(
  buf: Uint8Array,
  start: number,
  frameBytes: number,
  m: Message,
  entryCount: number,
): number {
  writeFrameHeader(buf, start, FrameType.RaftMessage, frameBytes);
  const body = start + FRAME_HEADER_BYTES;
  const fromBytes = idBytes(m.from, 'from');
  const toBytes = idBytes(m.to, 'to');
  buf[body + MESSAGE_TYPE_OFFSET] = m.type;
  buf[body + MESSAGE_FLAGS_OFFSET] =
    (m.reject ? MESSAGE_FLAG_REJECT : 0) | (m.snapshot !== null ? MESSAGE_FLAG_SNAPSHOT : 0);
  buf[body + MESSAGE_FROM_BYTES_OFFSET] = fromBytes;
  buf[body + MESSAGE_TO_BYTES_OFFSET] = toBytes;
  writeU64(buf, body + MESSAGE_TERM_OFFSET, m.term);
  writeU64(buf, body + MESSAGE_LOG_TERM_OFFSET, m.logTerm);
  writeU64(buf, body + MESSAGE_INDEX_OFFSET, m.index);
  writeU64(buf, body + MESSAGE_COMMIT_OFFSET, m.commit);
  writeU64(buf, body + MESSAGE_REJECT_HINT_OFFSET, m.rejectHint);
  writeU64(buf, body + MESSAGE_CONTEXT_OFFSET, m.context);
  writeU32(buf, body + MESSAGE_ENTRY_COUNT_OFFSET, entryCount);
  // The ids' lengths sit in the fixed part, so the ids follow it without length bytes.
  let pos = body + MESSAGE_FIXED_BYTES;
  pos = writeIdBytes(buf, pos, m.from, fromBytes);
  pos = writeIdBytes(buf, pos, m.to, toBytes);
  if (m.snapshot !== null) pos = writeSnapshot(buf, pos, m.snapshot);
  return pos;
}

function writeSnapshot(buf: Uint8Array, offset: number, s: SnapshotMeta): number {
  const conf: ConfState = s.conf;
  writeU64(buf, offset + SNAPSHOT_INDEX_OFFSET, s.index);
  writeU64(buf, offset + SNAPSHOT_TERM_OFFSET, s.term);
  buf[offset + SNAPSHOT_FLAGS_OFFSET] = conf.autoLeave ? SNAPSHOT_FLAG_AUTO_LEAVE : 0;
  writeU16(buf, offset + SNAPSHOT_VOTERS_OFFSET, conf.voters.length);
  writeU16(buf, offset + SNAPSHOT_OUTGOING_OFFSET, conf.votersOutgoing.length);
  writeU16(buf, offset + SNAPSHOT_LEARNERS_OFFSET, conf.learners.length);
  let pos = offset + SNAPSHOT_FIXED_BYTES;
  for (const list of [conf.voters, conf.votersOutgoing, conf.learners]) {
    for (const id of list) pos = writeId(buf, pos, id, idBytes(id, 'configuration id'));
  }
  return pos;
}

/** Broken invariant: the size computed up front and the bytes written disagree. */
function assertFilled(pos: number, start: number, frameBytes: number): void {
  if (pos !== start + frameBytes)
    throw new Error(`frame encoder wrote ${pos - start} of ${frameBytes} bytes`);
}

// ------------------------------------------------------------------ decode bodies

/** The `entries` of every decoded message without entries: shared and frozen, not allocated per frame. */
const NO_ENTRIES: readonly Entry[] = Object.freeze([]);
const NO_BYTES = new Uint8Array(0);

function handshakeError(streamOffset: number, code: FrameErrorCode, why: string): FrameError {
  return new FrameError(code, `handshake: ${why}`, streamOffset);
}

function messageError(
  streamOffset: number,
  code: FrameErrorCode,
  why: string,
  entryError: EntryDecodeError | null = null,
): FrameError {
  return new FrameError(code, `raft message: ${why}`, streamOffset, entryError);
}

function decodeHandshake(body: Uint8Array, streamOffset: number): HandshakeFrame | FrameError {
  const end = body.byteLength;
  if (end < HANDSHAKE_MIN_BODY_BYTES)
    return handshakeError(streamOffset, 'ERR_FRAME_TRUNCATED', `body of ${end} bytes is too short`);
  for (let i = 0; i < HANDSHAKE_MAGIC.length; i++) {
    if (body[HANDSHAKE_MAGIC_OFFSET + i] !== HANDSHAKE_MAGIC[i]) {
      return handshakeError(
        streamOffset,
        'ERR_FRAME_BAD_MAGIC',
        'no "RFTL" magic: not a raftline connection',
      );
    }
  }
  const version = readU16(body, HANDSHAKE_VERSION_OFFSET);
  if (version !== PROTOCOL_VERSION) {
    return handshakeError(
      streamOffset,
      'ERR_FRAME_BAD_VERSION',
      `protocol version ${version}; this node speaks ${PROTOCOL_VERSION}`,
    );
  }
  const role = body[HANDSHAKE_ROLE_OFFSET] as number;
  if (!KNOWN_ROLES.has(role))
    return handshakeError(streamOffset, 'ERR_FRAME_BAD_ROLE', `unknown role ${role}`);
  let pos = HANDSHAKE_CLUSTER_ID_OFFSET;
  const clusterIdBytes = body[pos++] as number;
  // The node id's length byte must follow the cluster id.
  if (pos + clusterIdBytes + 1 > end)
    return handshakeError(streamOffset, 'ERR_FRAME_TRUNCATED', 'cluster id runs past the frame');
  const clusterId = readId(body, pos, clusterIdBytes);
  if (clusterId === null)
    return handshakeError(streamOffset, 'ERR_FRAME_BAD_UTF8', 'cluster id is not valid UTF-8');
  if (clusterIdBytes === 0) return handshakeError(streamOffset, 'ERR_FRAME_BAD_ID', 'empty cluster id');
  pos += clusterIdBytes;
  const nodeIdBytes = body[pos++] as number;
  if (pos + nodeIdBytes > end)
    return handshakeError(streamOffset, 'ERR_FRAME_TRUNCATED', 'node id runs past the frame');
  const nodeId = readId(body, pos, nodeIdBytes);
  if (nodeId === null)
    return handshakeError(streamOffset, 'ERR_FRAME_BAD_UTF8', 'node id is not valid UTF-8');
  // Only a client may be anonymous: a peer and a snapshot stream say which node speaks.
  if (role !== HandshakeRole.Client && nodeIdBytes === 0)
    return handshakeError(streamOffset, 'ERR_FRAME_BAD_ID', 'empty peer node id');
  pos += nodeIdBytes;
  if (pos + HANDSHAKE_TAIL_BYTES > end)
    return handshakeError(streamOffset, 'ERR_FRAME_TRUNCATED', 'flags, timeout and nonce run past the frame');
  if (pos + HANDSHAKE_TAIL_BYTES !== end) {
    return handshakeError(
      streamOffset,
      'ERR_FRAME_TRAILING_BYTES',
      `${end - pos - HANDSHAKE_TAIL_BYTES} bytes after the nonce`,
    );
  }
  const flags = body[pos + HANDSHAKE_TAIL_FLAGS_OFFSET] as number;
  if ((flags & ~HANDSHAKE_FLAGS_KNOWN) !== 0)
    return handshakeError(streamOffset, 'ERR_FRAME_BAD_FLAGS', `unknown flags 0x${flags.toString(16)}`);
  const nonceAt = pos + HANDSHAKE_TAIL_NONCE_OFFSET;
  return {
    type: FrameType.Handshake,
    handshake: {
      role: role as HandshakeRole,
      clusterId,
      nodeId,
      authFollows: (flags & HANDSHAKE_FLAG_AUTH_FOLLOWS) !== 0,
      electionTimeoutMs: readU32(body, pos + HANDSHAKE_TAIL_ELECTION_TIMEOUT_OFFSET),
      // A copy: the nonce is kept for the proofs, and must not pin the whole read chunk.
      nonce: new Uint8Array(body.subarray(nonceAt, nonceAt + HANDSHAKE_NONCE_BYTES)),
    },
  };
}

function decodeAuth(body: Uint8Array, streamOffset: number): AuthFrame | FrameError {
  const end = body.byteLength;
  if (end < AUTH_PROOFS_OFFSET)
    return new FrameError('ERR_FRAME_TRUNCATED', `auth: body of ${end} bytes is too short`, streamOffset);
  const flags = body[AUTH_FLAGS_OFFSET] as number;
  if ((flags & ~AUTH_FLAGS_KNOWN) !== 0)
    return new FrameError('ERR_FRAME_BAD_FLAGS', `auth: unknown flags 0x${flags.toString(16)}`, streamOffset);
  for (let i = AUTH_FLAGS_OFFSET + 1; i < AUTH_PROOFS_OFFSET; i++) {
    if (body[i] !== 0)
      return new FrameError('ERR_FRAME_BAD_FLAGS', 'auth: reserved bytes are not zero', streamOffset);
  }
  const hasProof = (flags & AUTH_FLAG_PROOF) !== 0;
  const hasAdmin = (flags & AUTH_FLAG_ADMIN_PROOF) !== 0;
  const expected = AUTH_PROOFS_OFFSET + AUTH_PROOF_BYTES * ((hasProof ? 1 : 0) + (hasAdmin ? 1 : 0));
  if (end < expected)
    return new FrameError('ERR_FRAME_TRUNCATED', 'auth: a proof runs past the frame', streamOffset);
  if (end > expected)
    return new FrameError(
      'ERR_FRAME_TRAILING_BYTES',
      `auth: ${end - expected} bytes after the proofs`,
      streamOffset,
    );
  const at = AUTH_PROOFS_OFFSET;
  const proof = hasProof ? new Uint8Array(body.subarray(at, at + AUTH_PROOF_BYTES)) : null;
  const adminAt = hasProof ? at + AUTH_PROOF_BYTES : at;
  const adminProof = hasAdmin ? new Uint8Array(body.subarray(adminAt, adminAt + AUTH_PROOF_BYTES)) : null;
  return { type: FrameType.Auth, auth: { proof, adminProof } };
}

/** Reads `count` length-prefixed ids from `pos`; the ids and the offset after them, or an error. */
function readIdList(
  body: Uint8Array,
  pos: number,
  count: number,
  streamOffset: number,
): { ids: NodeId[]; end: number } | FrameError {
  // No allocation from `count`: the array grows as ids are read, and each id takes at least
  // its length byte, so a lying count runs out of body first.
  const ids: NodeId[] = [];
  for (let i = 0; i < count; i++) {
    if (pos >= body.byteLength)
      return messageError(streamOffset, 'ERR_FRAME_TRUNCATED', 'configuration ids run past the frame');
    const idBytes = body[pos++] as number;
    if (pos + idBytes > body.byteLength)
      return messageError(streamOffset, 'ERR_FRAME_TRUNCATED', 'configuration id runs past the frame');
    const id = readId(body, pos, idBytes);
    if (id === null)
      return messageError(streamOffset, 'ERR_FRAME_BAD_UTF8', 'configuration id is not valid UTF-8');
    ids.push(id);
    pos += idBytes;
  }
  return { ids, end: pos };
}

function decodeRaftMessage(
  body: Uint8Array,
  streamOffset: number,
  maxEntryPayloadBytes: number,
): DecodedRaftMessageFrame | FrameError {
  const end = body.byteLength;
  if (end < MESSAGE_FIXED_BYTES)
    return messageError(streamOffset, 'ERR_FRAME_TRUNCATED', `body of ${end} bytes is too short`);
  const type = body[MESSAGE_TYPE_OFFSET] as number;
  if (!KNOWN_MESSAGE_TYPES.has(type))
    return messageError(streamOffset, 'ERR_FRAME_UNKNOWN_MESSAGE_TYPE', `unknown message type ${type}`);
  const flags = body[MESSAGE_FLAGS_OFFSET] as number;
  if ((flags & ~MESSAGE_FLAGS_KNOWN) !== 0)
    return messageError(streamOffset, 'ERR_FRAME_BAD_FLAGS', `unknown flags 0x${flags.toString(16)}`);
  const term = readU64(body, MESSAGE_TERM_OFFSET);
  const logTerm = readU64(body, MESSAGE_LOG_TERM_OFFSET);
  const index = readU64(body, MESSAGE_INDEX_OFFSET);
  const commit = readU64(body, MESSAGE_COMMIT_OFFSET);
  const rejectHint = readU64(body, MESSAGE_REJECT_HINT_OFFSET);
  const context = readU64(body, MESSAGE_CONTEXT_OFFSET);
  // readU64 answers -1 for a value above 2^53-1; the minimum finds any of them at once.
  if (Math.min(term, logTerm, index, commit, rejectHint, context) < 0) {
    return messageError(streamOffset, 'ERR_FRAME_BAD_NUMBER', 'a number field is above 2^53-1');
  }
  const entryCount = readU32(body, MESSAGE_ENTRY_COUNT_OFFSET);
  const fromBytes = body[MESSAGE_FROM_BYTES_OFFSET] as number;
  const toBytes = body[MESSAGE_TO_BYTES_OFFSET] as number;
  let pos = MESSAGE_FIXED_BYTES;
  if (pos + fromBytes + toBytes > end)
    return messageError(streamOffset, 'ERR_FRAME_TRUNCATED', 'node ids run past the frame');
  const from = readId(body, pos, fromBytes);
  if (from === null) return messageError(streamOffset, 'ERR_FRAME_BAD_UTF8', '`from` is not valid UTF-8');
  pos += fromBytes;
  const to = readId(body, pos, toBytes);
  if (to === null) return messageError(streamOffset, 'ERR_FRAME_BAD_UTF8', '`to` is not valid UTF-8');
  pos += toBytes;

  let snapshot: SnapshotMeta | null = null;
  if ((flags & MESSAGE_FLAG_SNAPSHOT) !== 0) {
    if (pos + SNAPSHOT_FIXED_BYTES > end)
      return messageError(streamOffset, 'ERR_FRAME_TRUNCATED', 'snapshot meta runs past the frame');
    const snapIndex = readU64(body, pos + SNAPSHOT_INDEX_OFFSET);
    const snapTerm = readU64(body, pos + SNAPSHOT_TERM_OFFSET);
    if (snapIndex < 0 || snapTerm < 0)
      return messageError(streamOffset, 'ERR_FRAME_BAD_NUMBER', 'a snapshot number is above 2^53-1');
    const snapFlags = body[pos + SNAPSHOT_FLAGS_OFFSET] as number;
    if ((snapFlags & ~SNAPSHOT_FLAG_AUTO_LEAVE) !== 0) {
      return messageError(
        streamOffset,
        'ERR_FRAME_BAD_FLAGS',
        `unknown snapshot flags 0x${snapFlags.toString(16)}`,
      );
    }
    const voterCount = readU16(body, pos + SNAPSHOT_VOTERS_OFFSET);
    const outgoingCount = readU16(body, pos + SNAPSHOT_OUTGOING_OFFSET);
    const learnerCount = readU16(body, pos + SNAPSHOT_LEARNERS_OFFSET);
    pos += SNAPSHOT_FIXED_BYTES;
    const voters = readIdList(body, pos, voterCount, streamOffset);
    if (voters instanceof FrameError) return voters;
    const outgoing = readIdList(body, voters.end, outgoingCount, streamOffset);
    if (outgoing instanceof FrameError) return outgoing;
    const learners = readIdList(body, outgoing.end, learnerCount, streamOffset);
    if (learners instanceof FrameError) return learners;
    pos = learners.end;
    const conf: ConfState = {
      voters: voters.ids,
      votersOutgoing: outgoing.ids,
      learners: learners.ids,
      autoLeave: (snapFlags & SNAPSHOT_FLAG_AUTO_LEAVE) !== 0,
    };
    snapshot = { index: snapIndex, term: snapTerm, conf };
  }

  const recordsStart = pos;
  // entryCount is checked against what the body can hold before the loop, and the array
  // grows only as records are verified: a lying count allocates nothing.
  if (entryCount > (end - pos) / ENTRY_HEADER_BYTES) {
    return messageError(
      streamOffset,
      'ERR_FRAME_TRUNCATED',
      `${entryCount} entries cannot fit in the ${end - pos} bytes left`,
    );
  }
  let entries: readonly Entry[] = NO_ENTRIES;
  if (entryCount > 0) {
    const decoded: Entry[] = [];
    for (let i = 0; i < entryCount; i++) {
      const got = decodeEntryAt(body, pos, end, maxEntryPayloadBytes);
      if ('kind' in got) {
        if (got.kind === 'torn')
          return messageError(streamOffset, 'ERR_FRAME_TRUNCATED', `entry ${i}: ${got.message}`, got);
        return messageError(streamOffset, 'ERR_FRAME_BAD_ENTRY', `entry ${i}: ${got.message}`, got);
      }
      decoded.push(got);
      pos += ENTRY_HEADER_BYTES + got.data.byteLength;
    }
    entries = decoded;
  }
  if (pos !== end)
    return messageError(
      streamOffset,
      'ERR_FRAME_TRAILING_BYTES',
      `${end - pos} bytes after ${entryCount} entries`,
    );
  const message: Message = {
    type: type as MessageType,
    from,
    to,
    term,
    logTerm,
    index,
    commit,
    entries,
    reject: (flags & MESSAGE_FLAG_REJECT) !== 0,
    rejectHint,
    context,
    snapshot,
  };
  const entryRecords = entryCount > 0 ? body.subarray(recordsStart, end) : NO_BYTES;
  return { type: FrameType.RaftMessage, message, entryRecords };
}

// ------------------------------------------------------------------ the incremental decoder

/** Configuration of a `FrameDecoder`. */
export interface FrameDecoderOptions {
  /** Largest frame accepted, header included. Default `DEFAULT_MAX_FRAME_BYTES`. */
  readonly maxFrameBytes?: number;
  /** Largest entry payload accepted. Default `DEFAULT_MAX_ENTRY_PAYLOAD_BYTES`. */
  readonly maxEntryPayloadBytes?: number;
  /**
   * Whether the first frame must be a HANDSHAKE and no later one may be (DESIGN.md: "the
   * first frame of a connection is a handshake"). Default true; false decodes a bare
   * stream of frames (tools, tests).
   */
  readonly expectHandshake?: boolean;
  /**
   * This decoder reads a node's answers to a `RaftClient`: after the handshake it yields
   * CLIENT_RESPONSE frames and refuses every other type. Default false: it yields
   * RAFT_MESSAGE frames, or CLIENT_REQUEST frames once it has decoded a handshake with
   * role client (the accepting side learns the role only from that handshake), and
   * refuses the others, so peer and client frames never mix on one connection.
   */
  readonly clientResponses?: boolean;
  /**
   * This decoder reads a follower's answers on a snapshot stream: after the handshake it
   * yields SNAPSHOT_REPLY frames and refuses every other type. Default false (a decoder
   * on the accepting side learns of a snapshot stream from the handshake's role, and
   * then yields SNAPSHOT_SEND frames only).
   */
  readonly snapshotReplies?: boolean;
}

/**
 * Turns a TCP byte stream, in chunks split anywhere, into frames. Call `push(chunk)` for
 * every chunk, then `next()` until it returns null.
 *
 * Memory: chunks are kept by reference, not copied. A frame that lies within one chunk is
 * decoded from a view of it; only a frame split across chunks is copied, into one buffer
 * of exactly its size, allocated once all its bytes have arrived, and only after its
 * header has been checked against `maxFrameBytes`. So the decoder never allocates more
 * than `maxFrameBytes` at once, however the bytes lie. Decoded entries' `data` are views
 * into those bytes: a caller that reuses its read buffers (`net.Socket`'s `onread`) must
 * copy what it keeps.
 */
export class FrameDecoder {
  /** Largest frame accepted, header included. */
  readonly maxFrameBytes: number;
  /** Largest entry payload accepted. */
  readonly maxEntryPayloadBytes: number;
  /** Frames decoded so far. */
  frameCount = 0;
  /** Bytes copied to join frames split across chunks (the rest were decoded in place). */
  copiedBytes = 0;
  /** The largest single allocation made for a split frame: never above `maxFrameBytes`. */
  largestCopyBytes = 0;

  private readonly expectHandshake: boolean;
  private handshakeSeen = false;
  /** The handshake announced an AUTH frame, which must be the very next frame. */
  private authExpected = false;
  /** The one frame type besides HANDSHAKE this connection carries (see `clientResponses`). */
  private carries: FrameType;
  /** Unconsumed chunks; the first is consumed up to `headOffset`. */
  private readonly chunks: Uint8Array[] = [];
  private headOffset = 0;
  private buffered = 0;
  /** Stream offset of the next unconsumed byte. */
  private streamOffset = 0;
  /** The checked header of the frame whose body is awaited, or -1 while awaiting a header. */
  private pendingBodyBytes = -1;
  private pendingType = 0;
  private pendingStreamOffset = 0;
  private failure: FrameError | null = null;

  constructor(options: FrameDecoderOptions = {}) {
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxEntryPayloadBytes = options.maxEntryPayloadBytes ?? DEFAULT_MAX_ENTRY_PAYLOAD_BYTES;
    this.expectHandshake = options.expectHandshake ?? true;
    this.carries =
      options.clientResponses === true
        ? FrameType.ClientResponse
        : options.snapshotReplies === true
          ? FrameType.SnapshotReply
          : FrameType.RaftMessage;
    if (
      !Number.isInteger(this.maxEntryPayloadBytes) ||
      this.maxEntryPayloadBytes < 0 ||
      this.maxEntryPayloadBytes > ENTRY_PAYLOAD_BYTES_LIMIT
    ) {
      throw new RangeError(`maxEntryPayloadBytes ${this.maxEntryPayloadBytes} is not a valid limit`);
    }
    // A frame must be able to carry one largest entry, since the core always sends one.
    const needed = RAFT_MESSAGE_MAX_OVERHEAD_BYTES + ENTRY_HEADER_BYTES + this.maxEntryPayloadBytes;
    if (
      !Number.isInteger(this.maxFrameBytes) ||
      this.maxFrameBytes < needed ||
      this.maxFrameBytes > FRAME_BYTES_LIMIT
    ) {
      throw new RangeError(`maxFrameBytes ${this.maxFrameBytes} must be in ${needed}..${FRAME_BYTES_LIMIT}`);
    }
  }

  /** Bytes pushed and not yet consumed by a frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /**
   * Adds a chunk of the stream. The chunk is kept by reference until its frames have been
   * consumed. After an error, chunks are dropped: the stream is beyond repair.
   */
  push(chunk: Uint8Array): void {
    if (this.failure !== null || chunk.byteLength === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
  }

  /**
   * The next complete frame; null when more bytes are needed; a `FrameError` when the
   * stream is refused, and the same error on every later call.
   */
  next(): Frame | FrameError | null {
    if (this.failure !== null) return this.failure;
    if (this.pendingBodyBytes < 0) {
      if (this.buffered < FRAME_HEADER_BYTES) return null;
      // The header may be split across chunks: read it byte by byte.
      const bodyBytes =
        this.peek(FRAME_BODY_BYTES_OFFSET) +
        this.peek(FRAME_BODY_BYTES_OFFSET + 1) * 0x100 +
        this.peek(FRAME_BODY_BYTES_OFFSET + 2) * 0x1_0000 +
        this.peek(FRAME_BODY_BYTES_OFFSET + 3) * 0x100_0000;
      const type = this.peek(FRAME_TYPE_OFFSET);
      this.pendingStreamOffset = this.streamOffset;
      const refused = this.checkHeader(type, bodyBytes);
      if (refused !== null) return this.fail(refused);
      this.skip(FRAME_HEADER_BYTES);
      this.pendingBodyBytes = bodyBytes;
      this.pendingType = type;
    }
    if (this.buffered < this.pendingBodyBytes) return null;
    const body = this.take(this.pendingBodyBytes);
    this.pendingBodyBytes = -1;
    let frame: Frame | FrameError;
    if (this.pendingType === FrameType.Handshake) frame = decodeHandshake(body, this.pendingStreamOffset);
    else if (this.pendingType === FrameType.Auth) frame = decodeAuth(body, this.pendingStreamOffset);
    else if (this.pendingType === FrameType.RaftMessage)
      frame = decodeRaftMessage(body, this.pendingStreamOffset, this.maxEntryPayloadBytes);
    // checkHeader let through only the one frame type this connection carries; a client
    // body is decoded by client-codec.ts, a snapshot-stream body by
    // snapshot-stream-codec.ts, each refusing bad bytes the same way.
    else if (this.pendingType === FrameType.ClientRequest) frame = { type: FrameType.ClientRequest, body };
    else if (this.pendingType === FrameType.ClientResponse) frame = { type: FrameType.ClientResponse, body };
    else if (this.pendingType === FrameType.SnapshotSend) frame = { type: FrameType.SnapshotSend, body };
    else frame = { type: FrameType.SnapshotReply, body };
    if (frame instanceof FrameError) return this.fail(frame);
    if (frame.type === FrameType.Auth) this.authExpected = false;
    if (frame.type === FrameType.Handshake) {
      this.handshakeSeen = true;
      this.authExpected = frame.handshake.authFollows === true;
      // A client announced itself: requests follow, and no Raft message may.
      if (frame.handshake.role === HandshakeRole.Client) this.carries = FrameType.ClientRequest;
      // A leader opened a snapshot stream: only its snapshot frames follow.
      else if (frame.handshake.role === HandshakeRole.Snapshot) this.carries = FrameType.SnapshotSend;
    }
    this.frameCount++;
    return frame;
  }

  /**
   * Refuses a header as soon as it arrives, before any of its body is awaited: a wrong
   * first frame, an unknown or reserved type, a length over the limit.
   */
  private checkHeader(type: number, bodyBytes: number): FrameError | null {
    const at = this.streamOffset;
    if (this.expectHandshake && !this.handshakeSeen && type !== FrameType.Handshake) {
      return new FrameError(
        'ERR_FRAME_HANDSHAKE_EXPECTED',
        `the first frame has type ${type}, not a handshake: not a raftline peer?`,
        at,
      );
    }
    if (this.authExpected && type !== FrameType.Auth) {
      return new FrameError(
        'ERR_FRAME_AUTH_EXPECTED',
        `frame type ${type} where the handshake announced an auth frame`,
        at,
      );
    }
    if (type === FrameType.Auth) {
      if (!this.authExpected) {
        return new FrameError(
          'ERR_FRAME_UNEXPECTED_AUTH',
          'an auth frame not announced by the handshake just before it',
          at,
        );
      }
      if (bodyBytes > AUTH_MAX_BODY_BYTES) {
        return new FrameError(
          'ERR_FRAME_TOO_LONG',
          `an auth frame of ${bodyBytes} body bytes; at most ${AUTH_MAX_BODY_BYTES}`,
          at,
        );
      }
      return null;
    }
    if (type === FrameType.Handshake) {
      if (this.expectHandshake && this.handshakeSeen) {
        return new FrameError('ERR_FRAME_UNEXPECTED_HANDSHAKE', 'a second handshake on one connection', at);
      }
      if (bodyBytes > HANDSHAKE_MAX_BODY_BYTES) {
        return new FrameError(
          'ERR_FRAME_TOO_LONG',
          `a handshake of ${bodyBytes} body bytes; at most ${HANDSHAKE_MAX_BODY_BYTES}`,
          at,
        );
      }
      return null;
    }
    if (type === this.carries) {
      if (bodyBytes > this.maxFrameBytes - FRAME_HEADER_BYTES) {
        return new FrameError(
          'ERR_FRAME_TOO_LONG',
          `a frame of ${bodyBytes + FRAME_HEADER_BYTES} bytes; at most ${this.maxFrameBytes}`,
          at,
        );
      }
      return null;
    }
    if (
      type === FrameType.RaftMessage ||
      type === FrameType.ClientRequest ||
      type === FrameType.ClientResponse ||
      type === FrameType.SnapshotSend ||
      type === FrameType.SnapshotReply
    ) {
      return new FrameError(
        'ERR_FRAME_UNSUPPORTED_TYPE',
        `frame type ${type} is not carried on this connection (it carries type ${this.carries})`,
        at,
      );
    }
    if ((RESERVED_FRAME_TYPES as readonly number[]).includes(type)) {
      return new FrameError(
        'ERR_FRAME_UNSUPPORTED_TYPE',
        `frame type ${type} is reserved, not implemented`,
        at,
      );
    }
    return new FrameError('ERR_FRAME_UNKNOWN_TYPE', `unknown frame type ${type}`, at);
  }

  private fail(error: FrameError): FrameError {
    this.failure = error;
    // Let go of the buffered bytes: nothing more will be decoded from them.
    this.chunks.length = 0;
    this.buffered = 0;
    return error;
  }

  /** The byte `i` positions after the next unconsumed one; the caller checked it is buffered. */
  private peek(i: number): number {
    let k = 0;
    let at = this.headOffset + i;
    for (;;) {
      const chunk = this.chunks[k] as Uint8Array;
      if (at < chunk.byteLength) return chunk[at] as number;
      at -= chunk.byteLength;
      k++;
    }
  }

  /** Drops `n` buffered bytes. */
  private skip(n: number): void {
    this.buffered -= n;
    this.streamOffset += n;
    let left = n;
    while (left > 0) {
      const chunk = this.chunks[0] as Uint8Array;
      const inChunk = chunk.byteLength - this.headOffset;
      if (left < inChunk) {
        this.headOffset += left;
        return;
      }
      left -= inChunk;
      this.chunks.shift();
      this.headOffset = 0;
    }
  }

  /** Takes `n` buffered bytes: a view when they lie in one chunk, else one copy of exactly `n` bytes. */
  private take(n: number): Uint8Array {
    if (n === 0) return NO_BYTES;
    const head = this.chunks[0] as Uint8Array;
    if (head.byteLength - this.headOffset >= n) {
      const view = head.subarray(this.headOffset, this.headOffset + n);
      this.skip(n);
      return view;
    }
    // Bounded: n passed checkHeader, so n < maxFrameBytes, and all n bytes are here already.
    const joined = new Uint8Array(n);
    let filled = 0;
    let k = 0;
    let from = this.headOffset;
    while (filled < n) {
      const chunk = this.chunks[k] as Uint8Array;
      const piece = Math.min(chunk.byteLength - from, n - filled);
      joined.set(chunk.subarray(from, from + piece), filled);
      filled += piece;
      from = 0;
      k++;
    }
    this.copiedBytes += n;
    if (n > this.largestCopyBytes) this.largestCopyBytes = n;
    this.skip(n);
    return joined;
  }
}
