/**
 * The snapshot stream's messages (layouts and reasons in `protocol.ts`, "snapshot
 * stream"): SNAPSHOT_SEND bodies from the leader, SNAPSHOT_REPLY bodies from the
 * follower, and the coordinator's SendSnapshot ring frame that starts a transfer.
 *
 * `FrameDecoder` cuts the stream into frames and bounds each by `maxFrameBytes`; the
 * decoders here check what is inside a body: the kind, reserved bytes, every number, and
 * lengths that must agree with the bytes present. A bad body is a `SnapshotStreamError`
 * value with a stable code, never an exception; the connection is then closed. Encoders
 * throw RangeError for what cannot be encoded: bugs of the caller, not input from outside.
 */
import type { Index, Term } from '../raft/types.js';
import { isU64Safe, readU32, readU64, writeU32, writeU64 } from './entry-codec.js';
import type { OutBuffer } from './message-codec.js';
import {
  FRAME_BODY_BYTES_OFFSET,
  FRAME_HEADER_BYTES,
  FRAME_TYPE_OFFSET,
  FrameType,
  REPLICATOR_SEND_SNAPSHOT_FRAME_BYTES,
  REPLICATOR_SNAPSHOT_INDEX_OFFSET,
  REPLICATOR_SNAPSHOT_TERM_OFFSET,
  ReplicatorFrame,
  SNAPSHOT_CHUNK_DATA_OFFSET,
  SNAPSHOT_CHUNK_FILE_OFFSET,
  SNAPSHOT_CHUNK_OFFSET_OFFSET,
  SNAPSHOT_DONE_BODY_BYTES,
  SNAPSHOT_FAILED_MESSAGE_OFFSET,
  SNAPSHOT_INSTALLED_BODY_BYTES,
  SNAPSHOT_INSTALLED_INDEX_OFFSET,
  SNAPSHOT_INSTALLED_TERM_OFFSET,
  SNAPSHOT_OFFER_META_OFFSET,
  SNAPSHOT_OFFER_TERM_OFFSET,
  SNAPSHOT_REASON_OFFSET,
  SNAPSHOT_REFUSE_LATEST_OFFSET,
  SNAPSHOT_REFUSE_MESSAGE_OFFSET,
  SNAPSHOT_RESUME_FILE_COUNT_OFFSET,
  SNAPSHOT_RESUME_HELD_OFFSET,
  SNAPSHOT_RESUME_MAX_CHUNK_OFFSET,
  SNAPSHOT_STREAM_KIND_OFFSET,
  SNAPSHOT_STREAM_MAX_MESSAGE_BYTES,
  SnapshotFailReason,
  SnapshotRefuseReason,
  SnapshotReplyKind,
  SnapshotSendKind,
} from './protocol.js';

// ------------------------------------------------------------------ messages as values

/** The leader offers a snapshot: its meta file's bytes, and the term it leads in. */
export interface SnapshotOffer {
  readonly kind: SnapshotSendKind.Offer;
  readonly leaderTerm: Term;
  /** The meta file exactly as stored; decoded and verified by the follower's store. */
  readonly metaBytes: Uint8Array;
}

/** Bytes of file `fileIndex` (in the meta's order) starting at `offsetBytes`. */
export interface SnapshotChunk {
  readonly kind: SnapshotSendKind.Chunk;
  readonly fileIndex: number;
  readonly offsetBytes: number;
  /** A view of the received body when decoded. */
  readonly data: Uint8Array;
}

/** Every chunk was sent. */
export interface SnapshotDone {
  readonly kind: SnapshotSendKind.Done;
}

/** What a leader sends on a snapshot stream. */
export type SnapshotSendMessage = SnapshotOffer | SnapshotChunk | SnapshotDone;

/** The follower accepts the offer and says where each file continues. */
export interface SnapshotResume {
  readonly kind: SnapshotReplyKind.Resume;
  /** The largest Chunk data it accepts. */
  readonly maxChunkBytes: number;
  /** Bytes it already holds of each file, from the file's start, in the meta's order. */
  readonly heldBytes: readonly number[];
}

/** The follower does not take the offer. */
export interface SnapshotRefuse {
  readonly kind: SnapshotReplyKind.Refuse;
  readonly reason: SnapshotRefuseReason;
  /** Index of the follower's newest snapshot (0 if none): why a Stale refusal is stale. */
  readonly latestIndex: Index;
  /** For logs. */
  readonly message: string;
}

/** The snapshot was verified and published on the follower. */
export interface SnapshotInstalled {
  readonly kind: SnapshotReplyKind.Installed;
  readonly index: Index;
  readonly term: Term;
}

/** An accepted transfer failed; the leader may offer again. */
export interface SnapshotFailed {
  readonly kind: SnapshotReplyKind.Failed;
  readonly reason: SnapshotFailReason;
  /** For logs. */
  readonly message: string;
}

/** What a follower answers on a snapshot stream. */
export type SnapshotReplyMessage = SnapshotResume | SnapshotRefuse | SnapshotInstalled | SnapshotFailed;

// ------------------------------------------------------------------ errors

/** Why a snapshot-stream body was refused. Stable codes: log them, match on them. */
export type SnapshotStreamErrorCode =
  /** The kind byte is not one this direction carries. */
  | 'ERR_SNAPSHOT_STREAM_UNKNOWN_KIND'
  /** The body is shorter than its kind's fixed part. */
  | 'ERR_SNAPSHOT_STREAM_TRUNCATED'
  /** Lengths disagree: a count with the bytes present, or bytes after a fixed-size body. */
  | 'ERR_SNAPSHOT_STREAM_BAD_LENGTH'
  /** A reserved byte is not zero. */
  | 'ERR_SNAPSHOT_STREAM_RESERVED'
  /** A number is out of range: above 2^53-1, or zero where zero means nothing. */
  | 'ERR_SNAPSHOT_STREAM_BAD_NUMBER'
  /** A reason byte is not one of its enum. */
  | 'ERR_SNAPSHOT_STREAM_BAD_REASON'
  /** A message is not valid UTF-8 or is longer than `SNAPSHOT_STREAM_MAX_MESSAGE_BYTES`. */
  | 'ERR_SNAPSHOT_STREAM_BAD_MESSAGE';

/** A refused snapshot-stream body. Returned, not thrown: a bad peer is an expected outcome. */
export class SnapshotStreamError extends Error {
  override readonly name = 'SnapshotStreamError';
  /** The stable reason. */
  readonly code: SnapshotStreamErrorCode;

  constructor(code: SnapshotStreamErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

// ------------------------------------------------------------------ helpers

const utf8Encoder = new TextEncoder();
// fatal: a damaged message is refused rather than shown with U+FFFD.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const REFUSE_REASONS: ReadonlySet<number> = enumValues(SnapshotRefuseReason);
const FAIL_REASONS: ReadonlySet<number> = enumValues(SnapshotFailReason);

function enumValues(e: object): ReadonlySet<number> {
  return new Set(Object.values(e).filter((v): v is number => typeof v === 'number'));
}

/** `message` as UTF-8, cut at a character boundary to `SNAPSHOT_STREAM_MAX_MESSAGE_BYTES`. */
function messageBytes(message: string): Uint8Array {
  const bytes = utf8Encoder.encode(message);
  if (bytes.byteLength <= SNAPSHOT_STREAM_MAX_MESSAGE_BYTES) return bytes;
  let cut = SNAPSHOT_STREAM_MAX_MESSAGE_BYTES;
  // Back off continuation bytes (10xxxxxx) so the cut does not split a character.
  while (cut > 0 && ((bytes[cut] as number) & 0xc0) === 0x80) cut--;
  return bytes.subarray(0, cut);
}

function checkU64(value: number, what: string, min: number): void {
  if (!isU64Safe(value) || value < min) throw new RangeError(`${what} ${value} cannot be encoded`);
}

/** Appends a frame header for `bodyBytes` and returns the offset of the body in `out.bytes`. */
function appendFrame(out: OutBuffer, type: FrameType, bodyBytes: number): number {
  const start = out.append(FRAME_HEADER_BYTES + bodyBytes);
  const buf = out.bytes;
  writeU32(buf, start + FRAME_BODY_BYTES_OFFSET, bodyBytes);
  buf[start + FRAME_TYPE_OFFSET] = type;
  // Reserved bytes are zero; OutBuffer reuses its memory, so they are cleared here.
  buf.fill(0, start + FRAME_HEADER_BYTES, start + FRAME_HEADER_BYTES + bodyBytes);
  return start + FRAME_HEADER_BYTES;
}

function error(code: SnapshotStreamErrorCode, message: string): SnapshotStreamError {
  return new SnapshotStreamError(code, message);
}

/** Null if bytes [from, to) of `body` are zero, else the error naming `what`. */
function checkReserved(body: Uint8Array, from: number, to: number, what: string): SnapshotStreamError | null {
  for (let i = from; i < to; i++) {
    if (body[i] !== 0)
      return error('ERR_SNAPSHOT_STREAM_RESERVED', `${what}: reserved byte ${i} is not zero`);
  }
  return null;
}

function readMessage(body: Uint8Array, from: number, what: string): string | SnapshotStreamError {
  const byteCount = body.byteLength - from;
  if (byteCount > SNAPSHOT_STREAM_MAX_MESSAGE_BYTES) {
    return error(
      'ERR_SNAPSHOT_STREAM_BAD_MESSAGE',
      `${what}: a message of ${byteCount} bytes; at most ${SNAPSHOT_STREAM_MAX_MESSAGE_BYTES}`,
    );
  }
  try {
    return utf8Decoder.decode(body.subarray(from));
  } catch {
    return error('ERR_SNAPSHOT_STREAM_BAD_MESSAGE', `${what}: the message is not valid UTF-8`);
  }
}

// ------------------------------------------------------------------ SNAPSHOT_SEND

/**
 * Appends a SNAPSHOT_SEND frame (header included) carrying `m`; returns the bytes
 * written. A chunk's data is copied; the sender, which reads file bytes straight into
 * its frame, uses `writeChunkFrameHead` instead.
 */
export function encodeSnapshotSend(out: OutBuffer, m: SnapshotSendMessage): number {
  switch (m.kind) {
    case SnapshotSendKind.Offer: {
      checkU64(m.leaderTerm, 'leader term', 1);
      const body = appendFrame(
        out,
        FrameType.SnapshotSend,
        SNAPSHOT_OFFER_META_OFFSET + m.metaBytes.byteLength,
      );
      out.bytes[body + SNAPSHOT_STREAM_KIND_OFFSET] = m.kind;
      writeU64(out.bytes, body + SNAPSHOT_OFFER_TERM_OFFSET, m.leaderTerm);
      out.bytes.set(m.metaBytes, body + SNAPSHOT_OFFER_META_OFFSET);
      return FRAME_HEADER_BYTES + SNAPSHOT_OFFER_META_OFFSET + m.metaBytes.byteLength;
    }
    case SnapshotSendKind.Chunk: {
      const frameBytes = FRAME_HEADER_BYTES + SNAPSHOT_CHUNK_DATA_OFFSET + m.data.byteLength;
      const start = out.append(frameBytes);
      writeChunkFrameHead(out.bytes, start, m.fileIndex, m.offsetBytes, m.data.byteLength);
      out.bytes.set(m.data, start + FRAME_HEADER_BYTES + SNAPSHOT_CHUNK_DATA_OFFSET);
      return frameBytes;
    }
    case SnapshotSendKind.Done: {
      const body = appendFrame(out, FrameType.SnapshotSend, SNAPSHOT_DONE_BODY_BYTES);
      out.bytes[body + SNAPSHOT_STREAM_KIND_OFFSET] = m.kind;
      return FRAME_HEADER_BYTES + SNAPSHOT_DONE_BODY_BYTES;
    }
    default:
      throw new RangeError(`unknown snapshot send kind ${(m as { kind: unknown }).kind}`);
  }
}

/**
 * Writes the frame header and Chunk fixed part (`SNAPSHOT_CHUNK_FRAME_OVERHEAD_BYTES`)
 * at `start` of `buf`, for `dataBytes` of data that the caller puts right after them:
 * file bytes are read straight into the frame, never copied again.
 */
export function writeChunkFrameHead(
  buf: Uint8Array,
  start: number,
  fileIndex: number,
  offsetBytes: number,
  dataBytes: number,
): void {
  if (!Number.isInteger(fileIndex) || fileIndex < 0 || fileIndex > 0xffff_ffff) {
    throw new RangeError(`file index ${fileIndex} cannot be encoded`);
  }
  checkU64(offsetBytes, 'chunk offset', 0);
  const bodyBytes = SNAPSHOT_CHUNK_DATA_OFFSET + dataBytes;
  if (bodyBytes > 0xffff_ffff) throw new RangeError(`a chunk of ${dataBytes} bytes exceeds the format`);
  writeU32(buf, start + FRAME_BODY_BYTES_OFFSET, bodyBytes);
  buf[start + FRAME_TYPE_OFFSET] = FrameType.SnapshotSend;
  const body = start + FRAME_HEADER_BYTES;
  buf.fill(0, body, body + SNAPSHOT_CHUNK_DATA_OFFSET);
  buf[body + SNAPSHOT_STREAM_KIND_OFFSET] = SnapshotSendKind.Chunk;
  writeU32(buf, body + SNAPSHOT_CHUNK_FILE_OFFSET, fileIndex);
  writeU64(buf, body + SNAPSHOT_CHUNK_OFFSET_OFFSET, offsetBytes);
}

/**
 * Decodes a SNAPSHOT_SEND body (from `FrameDecoder`). The Offer's meta and the Chunk's
 * data are views of `body`. The meta is not decoded here: the follower's store does,
 * with its own checks.
 */
export function decodeSnapshotSend(body: Uint8Array): SnapshotSendMessage | SnapshotStreamError {
  if (body.byteLength < 1) return error('ERR_SNAPSHOT_STREAM_TRUNCATED', 'an empty snapshot frame');
  const kind = body[SNAPSHOT_STREAM_KIND_OFFSET] as number;
  switch (kind) {
    case SnapshotSendKind.Offer: {
      if (body.byteLength < SNAPSHOT_OFFER_META_OFFSET) return truncated('offer', body);
      const reserved = checkReserved(body, 1, SNAPSHOT_OFFER_TERM_OFFSET, 'offer');
      if (reserved !== null) return reserved;
      const leaderTerm = readU64(body, SNAPSHOT_OFFER_TERM_OFFSET);
      if (leaderTerm < 1)
        return error('ERR_SNAPSHOT_STREAM_BAD_NUMBER', 'offer: leader term is 0 or above 2^53-1');
      return { kind, leaderTerm, metaBytes: body.subarray(SNAPSHOT_OFFER_META_OFFSET) };
    }
    case SnapshotSendKind.Chunk: {
      if (body.byteLength < SNAPSHOT_CHUNK_DATA_OFFSET) return truncated('chunk', body);
      const reserved = checkReserved(body, 1, SNAPSHOT_CHUNK_FILE_OFFSET, 'chunk');
      if (reserved !== null) return reserved;
      const offsetBytes = readU64(body, SNAPSHOT_CHUNK_OFFSET_OFFSET);
      if (offsetBytes < 0) return error('ERR_SNAPSHOT_STREAM_BAD_NUMBER', 'chunk: offset is above 2^53-1');
      return {
        kind,
        fileIndex: readU32(body, SNAPSHOT_CHUNK_FILE_OFFSET),
        offsetBytes,
        data: body.subarray(SNAPSHOT_CHUNK_DATA_OFFSET),
      };
    }
    case SnapshotSendKind.Done: {
      if (body.byteLength !== SNAPSHOT_DONE_BODY_BYTES)
        return fixedLength('done', body, SNAPSHOT_DONE_BODY_BYTES);
      const reserved = checkReserved(body, 1, SNAPSHOT_DONE_BODY_BYTES, 'done');
      if (reserved !== null) return reserved;
      return { kind };
    }
    default:
      return error('ERR_SNAPSHOT_STREAM_UNKNOWN_KIND', `unknown snapshot send kind ${kind}`);
  }
}

// ------------------------------------------------------------------ SNAPSHOT_REPLY

/** Appends a SNAPSHOT_REPLY frame (header included) carrying `m`; returns the bytes written. */
export function encodeSnapshotReply(out: OutBuffer, m: SnapshotReplyMessage): number {
  switch (m.kind) {
    case SnapshotReplyKind.Resume: {
      const count = m.heldBytes.length;
      if (count > 0xffff_ffff) throw new RangeError(`${count} files cannot be encoded`);
      if (!Number.isInteger(m.maxChunkBytes) || m.maxChunkBytes < 1 || m.maxChunkBytes > 0xffff_ffff) {
        throw new RangeError(`maxChunkBytes ${m.maxChunkBytes} cannot be encoded`);
      }
      for (const held of m.heldBytes) checkU64(held, 'held bytes', 0);
      const bodyBytes = SNAPSHOT_RESUME_HELD_OFFSET + 8 * count;
      const body = appendFrame(out, FrameType.SnapshotReply, bodyBytes);
      const buf = out.bytes;
      buf[body + SNAPSHOT_STREAM_KIND_OFFSET] = m.kind;
      writeU32(buf, body + SNAPSHOT_RESUME_FILE_COUNT_OFFSET, count);
      writeU32(buf, body + SNAPSHOT_RESUME_MAX_CHUNK_OFFSET, m.maxChunkBytes);
      m.heldBytes.forEach((held, i) => {
        writeU64(buf, body + SNAPSHOT_RESUME_HELD_OFFSET + 8 * i, held);
      });
      return FRAME_HEADER_BYTES + bodyBytes;
    }
    case SnapshotReplyKind.Refuse: {
      if (!REFUSE_REASONS.has(m.reason)) throw new RangeError(`unknown refuse reason ${m.reason}`);
      checkU64(m.latestIndex, 'latest index', 0);
      const text = messageBytes(m.message);
      const bodyBytes = SNAPSHOT_REFUSE_MESSAGE_OFFSET + text.byteLength;
      const body = appendFrame(out, FrameType.SnapshotReply, bodyBytes);
      out.bytes[body + SNAPSHOT_STREAM_KIND_OFFSET] = m.kind;
      out.bytes[body + SNAPSHOT_REASON_OFFSET] = m.reason;
      writeU64(out.bytes, body + SNAPSHOT_REFUSE_LATEST_OFFSET, m.latestIndex);
      out.bytes.set(text, body + SNAPSHOT_REFUSE_MESSAGE_OFFSET);
      return FRAME_HEADER_BYTES + bodyBytes;
    }
    case SnapshotReplyKind.Installed: {
      checkU64(m.index, 'installed index', 1);
      checkU64(m.term, 'installed term', 1);
      const body = appendFrame(out, FrameType.SnapshotReply, SNAPSHOT_INSTALLED_BODY_BYTES);
      out.bytes[body + SNAPSHOT_STREAM_KIND_OFFSET] = m.kind;
      writeU64(out.bytes, body + SNAPSHOT_INSTALLED_INDEX_OFFSET, m.index);
      writeU64(out.bytes, body + SNAPSHOT_INSTALLED_TERM_OFFSET, m.term);
      return FRAME_HEADER_BYTES + SNAPSHOT_INSTALLED_BODY_BYTES;
    }
    case SnapshotReplyKind.Failed: {
      if (!FAIL_REASONS.has(m.reason)) throw new RangeError(`unknown fail reason ${m.reason}`);
      const text = messageBytes(m.message);
      const bodyBytes = SNAPSHOT_FAILED_MESSAGE_OFFSET + text.byteLength;
      const body = appendFrame(out, FrameType.SnapshotReply, bodyBytes);
      out.bytes[body + SNAPSHOT_STREAM_KIND_OFFSET] = m.kind;
      out.bytes[body + SNAPSHOT_REASON_OFFSET] = m.reason;
      out.bytes.set(text, body + SNAPSHOT_FAILED_MESSAGE_OFFSET);
      return FRAME_HEADER_BYTES + bodyBytes;
    }
    default:
      throw new RangeError(`unknown snapshot reply kind ${(m as { kind: unknown }).kind}`);
  }
}

/** Decodes a SNAPSHOT_REPLY body (from `FrameDecoder`). */
export function decodeSnapshotReply(body: Uint8Array): SnapshotReplyMessage | SnapshotStreamError {
  if (body.byteLength < 1) return error('ERR_SNAPSHOT_STREAM_TRUNCATED', 'an empty snapshot reply');
  const kind = body[SNAPSHOT_STREAM_KIND_OFFSET] as number;
  switch (kind) {
    case SnapshotReplyKind.Resume: {
      if (body.byteLength < SNAPSHOT_RESUME_HELD_OFFSET) return truncated('resume', body);
      const reserved =
        checkReserved(body, 1, SNAPSHOT_RESUME_FILE_COUNT_OFFSET, 'resume') ??
        checkReserved(body, SNAPSHOT_RESUME_MAX_CHUNK_OFFSET + 4, SNAPSHOT_RESUME_HELD_OFFSET, 'resume');
      if (reserved !== null) return reserved;
      const count = readU32(body, SNAPSHOT_RESUME_FILE_COUNT_OFFSET);
      // The count must match the bytes present before anything is allocated from it.
      if (SNAPSHOT_RESUME_HELD_OFFSET + 8 * count !== body.byteLength) {
        return error(
          'ERR_SNAPSHOT_STREAM_BAD_LENGTH',
          `resume: ${count} files need ${SNAPSHOT_RESUME_HELD_OFFSET + 8 * count} bytes, the body has ${body.byteLength}`,
        );
      }
      const maxChunkBytes = readU32(body, SNAPSHOT_RESUME_MAX_CHUNK_OFFSET);
      if (maxChunkBytes < 1) return error('ERR_SNAPSHOT_STREAM_BAD_NUMBER', 'resume: maxChunkBytes is 0');
      const heldBytes: number[] = [];
      for (let i = 0; i < count; i++) {
        const held = readU64(body, SNAPSHOT_RESUME_HELD_OFFSET + 8 * i);
        if (held < 0)
          return error('ERR_SNAPSHOT_STREAM_BAD_NUMBER', `resume: held bytes of file ${i} above 2^53-1`);
        heldBytes.push(held);
      }
      return { kind, maxChunkBytes, heldBytes };
    }
    case SnapshotReplyKind.Refuse: {
      if (body.byteLength < SNAPSHOT_REFUSE_MESSAGE_OFFSET) return truncated('refuse', body);
      const reason = body[SNAPSHOT_REASON_OFFSET] as number;
      if (!REFUSE_REASONS.has(reason))
        return error('ERR_SNAPSHOT_STREAM_BAD_REASON', `refuse: reason ${reason}`);
      const reserved = checkReserved(
        body,
        SNAPSHOT_REASON_OFFSET + 1,
        SNAPSHOT_REFUSE_LATEST_OFFSET,
        'refuse',
      );
      if (reserved !== null) return reserved;
      const latestIndex = readU64(body, SNAPSHOT_REFUSE_LATEST_OFFSET);
      if (latestIndex < 0)
        return error('ERR_SNAPSHOT_STREAM_BAD_NUMBER', 'refuse: latest index above 2^53-1');
      const message = readMessage(body, SNAPSHOT_REFUSE_MESSAGE_OFFSET, 'refuse');
      if (message instanceof SnapshotStreamError) return message;
      return { kind, reason, latestIndex, message };
    }
    case SnapshotReplyKind.Installed: {
      if (body.byteLength !== SNAPSHOT_INSTALLED_BODY_BYTES) {
        return fixedLength('installed', body, SNAPSHOT_INSTALLED_BODY_BYTES);
      }
      const reserved = checkReserved(body, 1, SNAPSHOT_INSTALLED_INDEX_OFFSET, 'installed');
      if (reserved !== null) return reserved;
      const index = readU64(body, SNAPSHOT_INSTALLED_INDEX_OFFSET);
      const term = readU64(body, SNAPSHOT_INSTALLED_TERM_OFFSET);
      if (index < 1 || term < 1) {
        return error('ERR_SNAPSHOT_STREAM_BAD_NUMBER', 'installed: index or term is 0 or above 2^53-1');
      }
      return { kind, index, term };
    }
    case SnapshotReplyKind.Failed: {
      if (body.byteLength < SNAPSHOT_FAILED_MESSAGE_OFFSET) return truncated('failed', body);
      const reason = body[SNAPSHOT_REASON_OFFSET] as number;
      if (!FAIL_REASONS.has(reason))
        return error('ERR_SNAPSHOT_STREAM_BAD_REASON', `failed: reason ${reason}`);
      const reserved = checkReserved(
        body,
        SNAPSHOT_REASON_OFFSET + 1,
        SNAPSHOT_FAILED_MESSAGE_OFFSET,
        'failed',
      );
      if (reserved !== null) return reserved;
      const message = readMessage(body, SNAPSHOT_FAILED_MESSAGE_OFFSET, 'failed');
      if (message instanceof SnapshotStreamError) return message;
      return { kind, reason, message };
    }
    default:
      return error('ERR_SNAPSHOT_STREAM_UNKNOWN_KIND', `unknown snapshot reply kind ${kind}`);
  }
}

function truncated(what: string, body: Uint8Array): SnapshotStreamError {
  return error('ERR_SNAPSHOT_STREAM_TRUNCATED', `${what}: a body of ${body.byteLength} bytes is too short`);
}

function fixedLength(what: string, body: Uint8Array, expected: number): SnapshotStreamError {
  return error(
    body.byteLength < expected ? 'ERR_SNAPSHOT_STREAM_TRUNCATED' : 'ERR_SNAPSHOT_STREAM_BAD_LENGTH',
    `${what}: a body of ${body.byteLength} bytes, not ${expected}`,
  );
}

// ------------------------------------------------------------------ coordinator -> replicator

/** What a SendSnapshot ring frame asks of a replicator. */
export interface SendSnapshotRequest {
  readonly snapshotIndex: Index;
  readonly leaderTerm: Term;
}

/**
 * The SendSnapshot ring frame (`ReplicatorFrame.SendSnapshot`, layout in protocol.ts)
 * that the coordinator puts on a replicator's ring to stream the snapshot at
 * `snapshotIndex` to that peer while leading in `leaderTerm`. RangeError if either is
 * not an integer in 1..2^53-1.
 */
export function encodeSendSnapshotFrame(snapshotIndex: number, leaderTerm: number): Uint8Array {
  checkU64(snapshotIndex, 'snapshot index', 1);
  checkU64(leaderTerm, 'leader term', 1);
  const frame = new Uint8Array(REPLICATOR_SEND_SNAPSHOT_FRAME_BYTES);
  frame[0] = ReplicatorFrame.SendSnapshot;
  writeU64(frame, REPLICATOR_SNAPSHOT_INDEX_OFFSET, snapshotIndex);
  writeU64(frame, REPLICATOR_SNAPSHOT_TERM_OFFSET, leaderTerm);
  return frame;
}

/**
 * Reads a SendSnapshot ring frame. Both ends are the same build, so a bad frame is a bug:
 * it throws rather than returning an error value.
 */
export function decodeSendSnapshotFrame(frame: Uint8Array): SendSnapshotRequest {
  if (
    frame.byteLength !== REPLICATOR_SEND_SNAPSHOT_FRAME_BYTES ||
    frame[0] !== ReplicatorFrame.SendSnapshot
  ) {
    throw new Error(`not a SendSnapshot frame: kind ${frame[0]}, ${frame.byteLength} bytes`);
  }
  const snapshotIndex = readU64(frame, REPLICATOR_SNAPSHOT_INDEX_OFFSET);
  const leaderTerm = readU64(frame, REPLICATOR_SNAPSHOT_TERM_OFFSET);
  if (snapshotIndex < 1 || leaderTerm < 1) throw new Error('SendSnapshot frame with index or term 0');
  return { snapshotIndex, leaderTerm };
}
