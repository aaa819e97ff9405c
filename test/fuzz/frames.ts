/**
 * What the fuzzer throws: valid frames of every kind that crosses a node's listen port
 * (handshakes, Raft messages, client requests, snapshot-stream frames), and mutations of
 * them: bit flips, byte and field overwrites with boundary values, length fields that
 * disagree (the frame header's, and the lengths and counts inside bodies), frame types
 * swapped, truncation, splicing and concatenation, inserted and deleted bytes, random
 * garbage, and structure-aware damage behind intact checksums (an entry's header or a
 * snapshot meta changed and its CRC32C recomputed, so the checks after the CRC are
 * reached too).
 *
 * Everything is drawn from a seeded `Rng`, so a run is reproduced by its seed.
 */

import { kvCommand } from '../../examples/kv.js';
import { MAX_ACCEPTED_TERM } from '../../src/main/peer-server.js';
import { type Message, MessageType } from '../../src/raft/messages.js';
import type { Rng } from '../../src/raft/rng.js';
import { type ConfState, type Entry, EntryType, type SnapshotMeta } from '../../src/raft/types.js';
import { encodeClientReadRequest, encodeClientRequest } from '../../src/shared/client-codec.js';
import { crc32c } from '../../src/shared/crc32c.js';
import { readU32, writeU32, writeU64 } from '../../src/shared/entry-codec.js';
import { encodeHandshakeFrame, encodeRaftMessageFrame, OutBuffer } from '../../src/shared/message-codec.js';
import {
  CLIENT_REQUEST_FIXED_BYTES,
  CLIENT_REQUEST_FLAGS_OFFSET,
  CLIENT_REQUEST_OP_OFFSET,
  CLIENT_REQUEST_RESERVED_OFFSET,
  ClientOp,
  DEFAULT_MAX_FRAME_BYTES,
  ENTRY_HEADER_BYTES,
  ENTRY_HEADER_CRC_OFFSET,
  ENTRY_INDEX_OFFSET,
  ENTRY_PAYLOAD_BYTES_OFFSET,
  ENTRY_PAYLOAD_CRC_OFFSET,
  ENTRY_RESERVED_OFFSET,
  ENTRY_TERM_OFFSET,
  ENTRY_TYPE_OFFSET,
  FRAME_HEADER_BYTES,
  FRAME_TYPE_OFFSET,
  HANDSHAKE_CLUSTER_ID_OFFSET,
  HANDSHAKE_MAX_BODY_BYTES,
  HANDSHAKE_ROLE_OFFSET,
  HANDSHAKE_VERSION_OFFSET,
  HandshakeRole,
  MAX_U64_SAFE,
  MESSAGE_COMMIT_OFFSET,
  MESSAGE_ENTRY_COUNT_OFFSET,
  MESSAGE_FIXED_BYTES,
  MESSAGE_FLAGS_OFFSET,
  MESSAGE_FROM_BYTES_OFFSET,
  MESSAGE_INDEX_OFFSET,
  MESSAGE_LOG_TERM_OFFSET,
  MESSAGE_TERM_OFFSET,
  MESSAGE_TO_BYTES_OFFSET,
  MESSAGE_TYPE_OFFSET,
  ReadConsistencyCode,
  SESSION_ACK_BELOW_OFFSET,
  SESSION_REQUEST_HEADER_BYTES,
  SESSION_SEQ_OFFSET,
  SNAPSHOT_CHUNK_FILE_OFFSET,
  SNAPSHOT_CHUNK_OFFSET_OFFSET,
  SNAPSHOT_OFFER_META_OFFSET,
  SNAPSHOT_OFFER_TERM_OFFSET,
} from '../../src/shared/protocol.js';
import { encodeSnapshotSend } from '../../src/shared/snapshot-stream-codec.js';
import type { Value } from '../../src/shared/value-codec.js';
import { encodeSnapshotMeta, type SnapshotFile } from '../../src/workers/fsm/snapshot-store.js';

/**
 * An offer's leader term this far above the node's term at the start is surely not below
 * the node's term during the run (elections add one each): the node accepts the offer.
 */
export const LIVE_TERM_MARGIN = 10_000;

/** What the generators need to know about the cluster under attack. */
export interface FrameContext {
  readonly clusterId: string;
  /** The fuzzed node's id: Raft messages are addressed to it. */
  readonly targetId: string;
  /** Every member's id. */
  readonly memberIds: ReadonlySet<string>;
  /** Raft messages carry terms below this (stale: the core ignores them). At least 2. */
  readonly staleTermBelow: number;
  readonly maxFrameBytes: number;
}

/** A frame with what its mutators need to know of its structure. */
export interface BaseFrame {
  /** e.g. `hs-client`, `raft-MsgApp`, `req-Read`, `snap-Offer`. */
  readonly kind: string;
  readonly bytes: Uint8Array;
  /** Absolute offsets of fields worth overwriting (lengths, counts, codes), beside the header's. */
  readonly fields: readonly number[];
  /** Stored entry records inside the frame: where each starts. */
  readonly records: readonly number[];
  /** Where an Offer's meta file lies, if any: [start, end). */
  readonly meta: readonly [number, number] | null;
  /** Where a client request's payload starts (0 if none): its bytes may be mutated alone. */
  readonly payloadStart: number;
}

/** A unit of bytes to write, and how it was made. */
export interface Unit {
  readonly bytes: Uint8Array;
  /** The base frame's kind, or `garbage`. */
  readonly kind: string;
  /** The mutations applied, in order (empty: a valid frame as built). */
  readonly mutations: readonly string[];
}

// ------------------------------------------------------------------ helpers

const out = new OutBuffer(64 * 1024);

function take(encode: (o: OutBuffer) => void): Uint8Array {
  out.clear();
  encode(out);
  return out.view().slice();
}

function bytesOf(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const r = rng.nextU32();
    b[i] = r;
    if (i + 1 < n) b[i + 1] = r >>> 8;
    if (i + 2 < n) b[i + 2] = r >>> 16;
    if (i + 3 < n) b[i + 3] = r >>> 24;
  }
  return b;
}

/** Sizes skewed small: most frames are short, a few are kilobytes. */
function size(rng: Rng, max: number): number {
  const r = rng.int(100);
  if (r < 60) return rng.int(Math.min(max, 16) + 1);
  if (r < 90) return rng.int(Math.min(max, 256) + 1);
  return rng.int(max + 1);
}

/** `parts` back to back, in a buffer of their own. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const b = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    b.set(p, at);
    at += p.byteLength;
  }
  return b;
}

function setBodyBytes(frame: Uint8Array, bodyBytes: number): void {
  if (frame.byteLength >= 4) writeU32(frame, 0, bodyBytes >>> 0);
}

function fixHeaderLength(frame: Uint8Array): void {
  if (frame.byteLength >= FRAME_HEADER_BYTES) setBodyBytes(frame, frame.byteLength - FRAME_HEADER_BYTES);
}

const ASCII = 'abcdefghijklmnopqrstuvwxyz0123456789-_/=.:';
function text(rng: Rng, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += ASCII[rng.int(ASCII.length)];
  return s;
}

/** A random `Value`, up to `depth` levels deep. */
export function randomValue(rng: Rng, depth = 3): Value {
  switch (rng.int(depth > 0 ? 12 : 9)) {
    case 0:
      return undefined;
    case 1:
      return null;
    case 2:
      return rng.chance(0.5);
    case 3:
      return rng.int(2000) - 1000;
    case 4:
      return rng.pick([0.5, -0, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, 1e300]);
    case 5:
      return rng.chance(0.5) ? BigInt(rng.int(1000)) : 2n ** 70n * BigInt(rng.int(100) - 50);
    case 6:
      return rng.chance(0.9) ? text(rng, size(rng, 40)) : 'ünïcødé ✓ 𝄞';
    case 7:
      return bytesOf(rng, size(rng, 40));
    case 8:
      return text(rng, 3);
    case 9:
    case 10: {
      const items: Value[] = [];
      const n = rng.int(5);
      for (let i = 0; i < n; i++) items.push(randomValue(rng, depth - 1));
      return items;
    }
    default: {
      const o: { [k: string]: Value } = {};
      const n = rng.int(4);
      for (let i = 0; i < n; i++) o[rng.pick(['op', 'key', 'k', text(rng, 4)])] = randomValue(rng, depth - 1);
      return o;
    }
  }
}

// ------------------------------------------------------------------ handshakes

function handshakeFields(bytes: Uint8Array): number[] {
  const body = FRAME_HEADER_BYTES;
  const clusterLen = bytes[body + HANDSHAKE_CLUSTER_ID_OFFSET] as number;
  return [
    body,
    body + HANDSHAKE_VERSION_OFFSET,
    body + HANDSHAKE_VERSION_OFFSET + 1,
    body + HANDSHAKE_ROLE_OFFSET,
    body + HANDSHAKE_CLUSTER_ID_OFFSET,
    body + HANDSHAKE_CLUSTER_ID_OFFSET + 1 + clusterLen,
  ];
}

/** A valid handshake of `role`, naming `nodeId` and our cluster (or `clusterId`). */
export function handshake(role: HandshakeRole, nodeId: string, clusterId: string): BaseFrame {
  const bytes = take((o) => encodeHandshakeFrame(o, { role, clusterId, nodeId }));
  const kind = `hs-${HandshakeRole[role]}`;
  return { kind, bytes, fields: handshakeFields(bytes), records: [], meta: null, payloadStart: 0 };
}

// ------------------------------------------------------------------ Raft messages

const MESSAGE_TYPES = Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number');
const ENTRY_TYPES = [EntryType.Normal, EntryType.ConfChange, EntryType.Noop, EntryType.Batch];

function conf(ctx: FrameContext, rng: Rng): ConfState {
  return {
    voters: [...ctx.memberIds],
    votersOutgoing: rng.chance(0.2) ? ['n9'] : [],
    learners: rng.chance(0.2) ? [text(rng, 4)] : [],
    autoLeave: rng.chance(0.1),
  };
}

/** A well-formed Raft message from `from` to the fuzzed node, in a stale term. */
export function raftMessage(ctx: FrameContext, rng: Rng, from: string): BaseFrame {
  const type = rng.pick(MESSAGE_TYPES);
  const term = rng.between(1, ctx.staleTermBelow - 1);
  const index = rng.int(50);
  const entries: Entry[] = [];
  if (type === MessageType.MsgApp || rng.chance(0.03)) {
    const n = rng.int(5);
    for (let i = 0; i < n; i++) {
      const data = rng.chance(0.5)
        ? kvCommand({ op: 'put', key: `fz/${rng.int(100)}`, value: text(rng, 8) })
        : bytesOf(rng, size(rng, 300));
      entries.push({ index: index + 1 + i, term, type: rng.pick(ENTRY_TYPES), data });
    }
  }
  let snapshot: SnapshotMeta | null = null;
  if (type === MessageType.MsgSnap || rng.chance(0.03)) {
    snapshot = { index: rng.between(1, 100), term, conf: conf(ctx, rng) };
  }
  const m: Message = {
    type,
    from,
    to: ctx.targetId,
    term,
    logTerm: rng.int(term + 1),
    index,
    commit: rng.int(index + 1),
    entries,
    reject: rng.chance(0.2),
    rejectHint: rng.int(index + 1),
    context: rng.int(1000),
    snapshot,
  };
  const bytes = take((o) => encodeRaftMessageFrame(o, m));
  const body = FRAME_HEADER_BYTES;
  const fields = [
    body + MESSAGE_TYPE_OFFSET,
    body + MESSAGE_FLAGS_OFFSET,
    body + MESSAGE_FROM_BYTES_OFFSET,
    body + MESSAGE_TO_BYTES_OFFSET,
    body + MESSAGE_TERM_OFFSET,
    body + MESSAGE_TERM_OFFSET + 7,
    body + MESSAGE_INDEX_OFFSET,
    body + MESSAGE_COMMIT_OFFSET + 7,
    body + MESSAGE_ENTRY_COUNT_OFFSET,
  ];
  let pos = body + MESSAGE_FIXED_BYTES + (bytes[body + MESSAGE_FROM_BYTES_OFFSET] as number);
  pos += bytes[body + MESSAGE_TO_BYTES_OFFSET] as number;
  if (snapshot !== null) {
    // index, term, flags, three u16 counts, then the ids with their length bytes.
    fields.push(pos, pos + 7, pos + 15, pos + 16, pos + 17, pos + 19, pos + 21, pos + 23);
    pos += 23;
    for (const list of [snapshot.conf.voters, snapshot.conf.votersOutgoing, snapshot.conf.learners]) {
      for (const id of list) pos += 1 + new TextEncoder().encode(id).byteLength;
    }
  }
  const records: number[] = [];
  for (const e of entries) {
    records.push(pos);
    fields.push(pos + ENTRY_PAYLOAD_BYTES_OFFSET, pos + ENTRY_TYPE_OFFSET);
    pos += ENTRY_HEADER_BYTES + e.data.byteLength;
  }
  return { kind: `raft-${MessageType[type]}`, bytes, fields, records, meta: null, payloadStart: 0 };
}

// ------------------------------------------------------------------ client requests

const CLIENT_KINDS: readonly [ClientOp, number][] = [
  [ClientOp.Read, 50],
  [ClientOp.Apply, 14],
  [ClientOp.ApplyBatch, 8],
  // Rare: a node's status is costly to build (histograms, compressed).
  [ClientOp.Status, 1],
  [ClientOp.Transfer, 5],
  [ClientOp.AddPeer, 5],
  [ClientOp.AddLearner, 5],
  [ClientOp.RemovePeer, 5],
  [ClientOp.Snapshot, 4],
  // Exactly-once writes: a session's registration, and writes in it (each a log entry).
  [ClientOp.SessionRegister, 2],
  [ClientOp.SessionApply, 6],
  [ClientOp.SessionApplyBatch, 3],
];
const CLIENT_WEIGHT = CLIENT_KINDS.reduce((s, [, w]) => s + w, 0);

function pickWeighted<T>(rng: Rng, items: readonly [T, number][], total: number): T {
  let r = rng.int(total);
  for (const [item, w] of items) {
    if (r < w) return item;
    r -= w;
  }
  return (items[0] as [T, number])[0];
}

function kvCommandBytes(rng: Rng): Uint8Array {
  const key = `fz/${rng.int(1000)}`;
  switch (rng.int(4)) {
    case 0:
      return kvCommand({ op: 'put', key, value: text(rng, size(rng, 64)) });
    case 1:
      return kvCommand({ op: 'delete', key });
    case 2:
      return kvCommand({ op: 'cas', key, expected: rng.chance(0.5) ? null : 'x', value: 'y' });
    default:
      return bytesOf(rng, size(rng, 64));
  }
}

/** Requests that each become a log entry, counted against the run's share of applies. */
const LOG_WRITE_OPS: ReadonlySet<ClientOp> = new Set([
  ClientOp.Apply,
  ClientOp.ApplyBatch,
  ClientOp.SessionRegister,
  ClientOp.SessionApply,
  ClientOp.SessionApplyBatch,
]);

/** A client id for a session request: random, one in a few all but zero (still valid). */
function sessionClientId(rng: Rng): Uint8Array {
  const id = rng.chance(0.2) ? new Uint8Array(16) : bytesOf(rng, 16);
  if (id.every((b) => b === 0)) id[15] = 1;
  return id;
}

/** A valid SessionApply header: `[clientId][seq][ackBelow]`, 1 <= ackBelow <= seq. */
function sessionHeader(rng: Rng): Uint8Array {
  const h = new Uint8Array(SESSION_REQUEST_HEADER_BYTES);
  h.set(sessionClientId(rng), 0);
  const seq = 1 + (rng.chance(0.1) ? MAX_U64_SAFE - 1 : rng.int(1000));
  writeU64(h, SESSION_SEQ_OFFSET, seq);
  writeU64(h, SESSION_ACK_BELOW_OFFSET, 1 + Math.floor(((seq - 1) * rng.int(1000)) / 1000));
  return h;
}

/** Requests the node always refuses to run well-formed (the model withholds them): only worth sending damaged. */
const CARRIER_KINDS = CLIENT_KINDS.filter(([op]) => op !== ClientOp.RemovePeer && op !== ClientOp.Snapshot);
const CARRIER_WEIGHT = CARRIER_KINDS.reduce((s, [, w]) => s + w, 0);
/** Carriers once the run's share of Apply requests is used up. */
const READ_KINDS = CARRIER_KINDS.filter(([op]) => !LOG_WRITE_OPS.has(op));
const READ_WEIGHT = READ_KINDS.reduce((s, [, w]) => s + w, 0);

/**
 * A valid client request. Its payload is harmless: ids no node has, specs that do not
 * parse. A `carrier` (a frame meant to be accepted) is never RemovePeer or Snapshot,
 * which are sent only damaged, and with `applies` false not Apply or ApplyBatch either.
 */
export function clientRequest(rng: Rng, carrier = false, applies = true): BaseFrame {
  const op = !carrier
    ? pickWeighted(rng, CLIENT_KINDS, CLIENT_WEIGHT)
    : applies
      ? pickWeighted(rng, CARRIER_KINDS, CARRIER_WEIGHT)
      : pickWeighted(rng, READ_KINDS, READ_WEIGHT);
  const requestId = rng.nextU32();
  let bytes: Uint8Array;
  const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
  switch (op) {
    case ClientOp.Read: {
      const query: Value = rng.chance(0.6)
        ? rng.chance(0.8)
          ? { op: 'get', key: `fz/${rng.int(1000)}` }
          : { op: 'size' }
        : randomValue(rng);
      const consistency = rng.pick([
        ReadConsistencyCode.Stale,
        ReadConsistencyCode.Stale,
        ReadConsistencyCode.Lease,
        ReadConsistencyCode.Linearizable,
      ]);
      bytes = take((o) => encodeClientReadRequest(o, requestId, consistency, query));
      break;
    }
    case ClientOp.Apply:
      bytes = take((o) => encodeClientRequest(o, { op, flags: 0, requestId, payload: kvCommandBytes(rng) }));
      break;
    case ClientOp.ApplyBatch: {
      const commands: Uint8Array[] = [];
      const n = rng.int(4);
      for (let i = 0; i < n; i++) commands.push(kvCommandBytes(rng));
      bytes = take((o) =>
        encodeClientRequest(o, { op, flags: 0, requestId, payload: new Uint8Array(0), commands }),
      );
      break;
    }
    case ClientOp.Status:
    case ClientOp.Snapshot:
      bytes = take((o) => encodeClientRequest(o, { op, flags: 0, requestId, payload: new Uint8Array(0) }));
      break;
    case ClientOp.SessionRegister: {
      const session = sessionClientId(rng);
      bytes = take((o) =>
        encodeClientRequest(o, { op, flags: 0, requestId, payload: new Uint8Array(0), session }),
      );
      break;
    }
    case ClientOp.SessionApply: {
      const session = sessionHeader(rng);
      bytes = take((o) =>
        encodeClientRequest(o, { op, flags: 0, requestId, payload: kvCommandBytes(rng), session }),
      );
      break;
    }
    case ClientOp.SessionApplyBatch: {
      const session = sessionHeader(rng);
      const commands: Uint8Array[] = [];
      const n = rng.int(4);
      for (let i = 0; i < n; i++) commands.push(kvCommandBytes(rng));
      bytes = take((o) =>
        encodeClientRequest(o, { op, flags: 0, requestId, payload: new Uint8Array(0), commands, session }),
      );
      break;
    }
    case ClientOp.Transfer:
    case ClientOp.RemovePeer:
      bytes = take((o) =>
        encodeClientRequest(o, { op, flags: 0, requestId, payload: utf8(`fz-${text(rng, 3)}`) }),
      );
      break;
    default:
      // AddPeer, AddLearner: a spec that does not parse (no port).
      bytes = take((o) =>
        encodeClientRequest(o, { op, flags: 0, requestId, payload: utf8(`fz-${text(rng, 2)}=127.0.0.1`) }),
      );
  }
  const body = FRAME_HEADER_BYTES;
  const fields = [
    body + CLIENT_REQUEST_OP_OFFSET,
    body + CLIENT_REQUEST_FLAGS_OFFSET,
    body + CLIENT_REQUEST_RESERVED_OFFSET,
    body + CLIENT_REQUEST_FIXED_BYTES,
    body + CLIENT_REQUEST_FIXED_BYTES + 1,
  ];
  if (op === ClientOp.ApplyBatch && bytes.byteLength > body + CLIENT_REQUEST_FIXED_BYTES + 8) {
    fields.push(body + CLIENT_REQUEST_FIXED_BYTES + 4);
  }
  if (op === ClientOp.SessionApply || op === ClientOp.SessionApplyBatch) {
    // The session header's id, seq (low and high bytes) and ackBelow, and for a batch its count.
    const head = body + CLIENT_REQUEST_FIXED_BYTES;
    fields.push(
      head + SESSION_SEQ_OFFSET,
      head + SESSION_SEQ_OFFSET + 7,
      head + SESSION_ACK_BELOW_OFFSET,
      head + SESSION_ACK_BELOW_OFFSET + 7,
    );
    if (op === ClientOp.SessionApplyBatch) fields.push(head + SESSION_REQUEST_HEADER_BYTES);
  }
  return {
    kind: `req-${ClientOp[op]}`,
    bytes,
    fields,
    records: [],
    meta: null,
    payloadStart: body + CLIENT_REQUEST_FIXED_BYTES,
  };
}

// ------------------------------------------------------------------ snapshot stream

/** A valid meta file: index 1 (older than the fuzzed node's snapshot), a few files. */
export function snapshotMetaBytes(ctx: FrameContext, rng: Rng, index = 1): Uint8Array {
  const files: SnapshotFile[] = [];
  const n = rng.int(4);
  const names = new Set<string>();
  for (let i = 0; i < n; i++) {
    const name = rng.chance(0.3) ? `dir/${text(rng, 3)}` : text(rng, rng.between(1, 8)).replace(/\//g, '_');
    if (names.has(name) || name === '.' || name === '..' || name.startsWith('/') || name.endsWith('/'))
      continue;
    if (name.split('/').some((p) => p === '' || p === '.' || p === '..')) continue;
    names.add(name);
    files.push({ name, bytes: rng.int(5000), crc32c: rng.nextU32() });
  }
  return encodeSnapshotMeta({ index, term: 1, conf: conf(ctx, rng) }, files);
}

/** A valid SNAPSHOT_SEND frame: mostly Offers (the only frame a stream may open with). */
export function snapshotFrame(ctx: FrameContext, rng: Rng): BaseFrame {
  const r = rng.int(10);
  const body = FRAME_HEADER_BYTES;
  if (r < 7) {
    const metaBytes = snapshotMetaBytes(ctx, rng);
    // Mostly a stale leader term, refused before anything is stored; sometimes one far
    // ahead of the node's, which is accepted and reaches the state machine thread, where
    // the snapshot is refused as older than the node's own.
    const leaderTerm = rng.chance(0.7) ? 1 : ctx.staleTermBelow + LIVE_TERM_MARGIN + rng.int(1000);
    const bytes = take((o) => encodeSnapshotSend(o, { kind: 1, leaderTerm, metaBytes }));
    const metaStart = body + SNAPSHOT_OFFER_META_OFFSET;
    return {
      kind: 'snap-Offer',
      bytes,
      fields: [
        body,
        body + 1,
        body + SNAPSHOT_OFFER_TERM_OFFSET,
        body + SNAPSHOT_OFFER_TERM_OFFSET + 7,
        metaStart + 4,
      ],
      records: [],
      meta: [metaStart, bytes.byteLength],
      payloadStart: 0,
    };
  }
  if (r < 9) {
    const data = bytesOf(rng, size(rng, 2000));
    const bytes = take((o) =>
      encodeSnapshotSend(o, { kind: 2, fileIndex: rng.int(4), offsetBytes: rng.int(100), data }),
    );
    return {
      kind: 'snap-Chunk',
      bytes,
      fields: [body, body + 1, body + SNAPSHOT_CHUNK_FILE_OFFSET, body + SNAPSHOT_CHUNK_OFFSET_OFFSET + 7],
      records: [],
      meta: null,
      payloadStart: 0,
    };
  }
  const bytes = take((o) => encodeSnapshotSend(o, { kind: 3 }));
  return {
    kind: 'snap-Done',
    bytes,
    fields: [body, body + 1, body + 7],
    records: [],
    meta: null,
    payloadStart: 0,
  };
}

// ------------------------------------------------------------------ garbage

const PROBES = [
  'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
  'SSH-2.0-OpenSSH_9.6\r\n',
  '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03',
  '*1\r\n$4\r\nPING\r\n',
  '\0\0\0\0\0\0\0\0',
];

/** Bytes that are not a frame: random, zeros, a protocol probe, or a header over a random body. */
export function garbage(ctx: FrameContext, rng: Rng): Uint8Array {
  switch (rng.int(6)) {
    case 0:
      return new TextEncoder().encode(rng.pick(PROBES));
    case 1:
      return new Uint8Array(size(rng, 64) + 1);
    case 2: {
      // A plausible header (a real type, a length that matches) over random bytes.
      const n = size(rng, 2000);
      const b = bytesOf(rng, FRAME_HEADER_BYTES + n);
      setBodyBytes(b, n);
      b[FRAME_TYPE_OFFSET] = rng.pick([1, 2, 3, 4, 16, 17]);
      return b;
    }
    case 3: {
      // A header only, claiming a body of up to the limit or beyond.
      const b = new Uint8Array(FRAME_HEADER_BYTES);
      setBodyBytes(b, interestingLength(ctx, rng, rng.int(100)));
      b[FRAME_TYPE_OFFSET] = rng.pick([1, 2, 16, 3, 0, 255]);
      return b;
    }
    default:
      return bytesOf(rng, size(rng, 4000) + 1);
  }
}

// ------------------------------------------------------------------ mutations

/** Header lengths worth trying against a frame whose real body is `bodyBytes`. */
function interestingLength(ctx: FrameContext, rng: Rng, bodyBytes: number): number {
  const max = ctx.maxFrameBytes - FRAME_HEADER_BYTES;
  switch (rng.int(12)) {
    case 0:
      return 0;
    case 1:
      return bodyBytes + rng.between(1, 8);
    case 2:
      return Math.max(0, bodyBytes - rng.between(1, 8));
    case 3:
      return max;
    case 4:
      return max + 1;
    case 5:
      return 0xffff_ffff;
    case 6:
      return 0x7fff_ffff;
    case 7:
      return HANDSHAKE_MAX_BODY_BYTES + 1;
    case 8:
      return rng.nextU32();
    case 9:
      return rng.int(bodyBytes * 2 + 16);
    case 10:
      return DEFAULT_MAX_FRAME_BYTES;
    default:
      return bodyBytes * 2;
  }
}

const U32_VALUES = [
  0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x1_0000, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff,
];
const BYTE_VALUES = [0, 1, 2, 3, 4, 5, 0x7f, 0x80, 0xfe, 0xff];

function writeU64Raw(b: Uint8Array, at: number, lo: number, hi: number): void {
  writeU32(b, at, lo >>> 0);
  writeU32(b, at + 4, hi >>> 0);
}

/** Recomputes a stored record's header CRC (and its payload CRC when `payloadToo`), if the record still fits. */
function fixRecordCrc(b: Uint8Array, at: number, payloadToo: boolean): void {
  if (at + ENTRY_HEADER_BYTES > b.byteLength) return;
  if (payloadToo) {
    const n = readU32(b, at + ENTRY_PAYLOAD_BYTES_OFFSET);
    const start = at + ENTRY_HEADER_BYTES;
    if (start + n <= b.byteLength)
      writeU32(b, at + ENTRY_PAYLOAD_CRC_OFFSET, crc32c(b.subarray(start, start + n)));
  }
  const header = new Uint8Array(ENTRY_HEADER_BYTES - 4);
  header.set(b.subarray(at, at + ENTRY_HEADER_CRC_OFFSET), 0);
  header.set(b.subarray(at + ENTRY_TERM_OFFSET, at + ENTRY_HEADER_BYTES), ENTRY_HEADER_CRC_OFFSET);
  writeU32(b, at + ENTRY_HEADER_CRC_OFFSET, crc32c(header));
}

type Mutator = (ctx: FrameContext, rng: Rng, base: BaseFrame, b: Uint8Array) => Uint8Array;

/**
 * Mutations that keep the frame header's length true to the bytes, so the stream stays
 * in step and the damage is met by the body decoders. Those `survivableFor` a kind often
 * leave a frame the node accepts (the connection then carries on); the rest are mostly
 * refused. Weights are for drawing among all of them.
 */
const MUTATORS: Record<string, { weight: number; fn: Mutator }> = {
  // One to three bit flips, anywhere but the header's length.
  bitflip: {
    weight: 10,
    fn: (_c, rng, _base, b) => {
      const n = rng.between(1, 3);
      for (let i = 0; i < n && b.byteLength > 4; i++) {
        const at = 4 + rng.int(b.byteLength - 4);
        b[at] = (b[at] as number) ^ (1 << rng.int(8));
      }
      return b;
    },
  },
  // A byte set to a boundary value.
  byte: {
    weight: 6,
    fn: (_c, rng, _base, b) => {
      if (b.byteLength > 4) b[4 + rng.int(b.byteLength - 4)] = rng.pick(BYTE_VALUES);
      return b;
    },
  },
  // A known field (a length, a count, a code) overwritten with a boundary value.
  field: {
    weight: 14,
    fn: (_c, rng, base, b) => {
      if (base.fields.length === 0) return b;
      const at = rng.pick(base.fields);
      if (at >= b.byteLength) return b;
      if (rng.chance(0.5) || at + 4 > b.byteLength) b[at] = rng.pick(BYTE_VALUES);
      else writeU32(b, at, rng.pick(U32_VALUES));
      return b;
    },
  },
  // A u32 or u64 at a random offset set to a boundary value (2^53-1, 2^53, 2^64-1...).
  word: {
    weight: 4,
    fn: (_c, rng, _base, b) => {
      if (b.byteLength < FRAME_HEADER_BYTES + 8) return b;
      const at = FRAME_HEADER_BYTES + rng.int(b.byteLength - FRAME_HEADER_BYTES - 7);
      const pick = rng.int(4);
      if (pick === 0) writeU64Raw(b, at, 0xffff_ffff, 0x1f_ffff);
      else if (pick === 1) writeU64Raw(b, at, 0, 0x20_0000);
      else if (pick === 2) writeU64Raw(b, at, 0xffff_ffff, 0xffff_ffff);
      else writeU32(b, at, rng.pick(U32_VALUES));
      return b;
    },
  },
  // The frame type swapped for another (real or not).
  type: {
    weight: 4,
    fn: (_c, rng, _base, b) => {
      if (b.byteLength > FRAME_TYPE_OFFSET)
        b[FRAME_TYPE_OFFSET] = rng.chance(0.7) ? rng.pick([0, 1, 2, 3, 4, 5, 15, 16, 17, 18]) : rng.int(256);
      return b;
    },
  },
  // Bytes inserted into the body; the header is corrected, so inner lengths disagree.
  insert: {
    weight: 5,
    fn: (_c, rng, _base, b) => {
      const at = FRAME_HEADER_BYTES + rng.int(Math.max(1, b.byteLength - FRAME_HEADER_BYTES + 1));
      const r = concat([b.subarray(0, at), bytesOf(rng, rng.between(1, 16)), b.subarray(at)]);
      fixHeaderLength(r);
      return r;
    },
  },
  // Bytes deleted from the body; the header is corrected.
  delete: {
    weight: 5,
    fn: (_c, rng, _base, b) => {
      if (b.byteLength <= FRAME_HEADER_BYTES) return b;
      const at = FRAME_HEADER_BYTES + rng.int(b.byteLength - FRAME_HEADER_BYTES);
      const n = rng.between(1, Math.min(16, b.byteLength - at));
      const r = concat([b.subarray(0, at), b.subarray(at + n)]);
      fixHeaderLength(r);
      return r;
    },
  },
  // The body cut short, and the header made to agree: a truncated body, in step.
  shorten: {
    weight: 4,
    fn: (_c, rng, _base, b) => {
      const r = b.slice(0, FRAME_HEADER_BYTES + rng.int(Math.max(1, b.byteLength - FRAME_HEADER_BYTES)));
      fixHeaderLength(r);
      return r;
    },
  },
  // A region of the body repeated; the header is corrected.
  dup: {
    weight: 2,
    fn: (_c, rng, _base, b) => {
      if (b.byteLength <= FRAME_HEADER_BYTES) return b;
      const at = FRAME_HEADER_BYTES + rng.int(b.byteLength - FRAME_HEADER_BYTES);
      const n = rng.between(1, Math.min(64, b.byteLength - at));
      const r = concat([b.subarray(0, at + n), b.subarray(at, at + n), b.subarray(at + n)]);
      fixHeaderLength(r);
      return r;
    },
  },
  // An entry record's header field changed behind a recomputed header CRC: the checks
  // after the CRC (length over the limit, type, reserved, index or term 0, torn) are reached.
  entry: {
    weight: 6,
    fn: (ctx, rng, base, b) => {
      if (base.records.length === 0) return b;
      const at = rng.pick(base.records);
      if (at + ENTRY_HEADER_BYTES > b.byteLength) return b;
      switch (rng.int(7)) {
        case 0:
          writeU32(b, at + ENTRY_PAYLOAD_BYTES_OFFSET, interestingLength(ctx, rng, readU32(b, at)) >>> 0);
          break;
        case 1:
          b[at + ENTRY_TYPE_OFFSET] = rng.pick([0, 1, 2, 3, 4, 5, 255]);
          break;
        case 2:
          b[at + ENTRY_RESERVED_OFFSET + rng.int(3)] = rng.between(1, 255);
          break;
        case 3:
          writeU64Raw(
            b,
            at + ENTRY_TERM_OFFSET,
            rng.chance(0.5) ? 0 : 0xffff_ffff,
            rng.chance(0.5) ? 0 : 0x20_0000,
          );
          break;
        case 4:
          writeU64Raw(
            b,
            at + ENTRY_INDEX_OFFSET,
            rng.chance(0.5) ? 0 : 0xffff_ffff,
            rng.chance(0.5) ? 0 : 0x20_0000,
          );
          break;
        case 5:
          writeU64Raw(b, at + ENTRY_INDEX_OFFSET, rng.nextU32(), 0);
          break;
        default:
          // No change but the payload CRC left wrong: a corrupt payload behind a good header.
          b[at + ENTRY_PAYLOAD_CRC_OFFSET] = (b[at + ENTRY_PAYLOAD_CRC_OFFSET] as number) ^ 1;
      }
      fixRecordCrc(b, at, false);
      return b;
    },
  },
  // An entry's payload changed with both CRCs recomputed: a valid record whose command
  // is garbage (the state machine sees it only if the message is not stale: it is).
  payload: {
    weight: 4,
    fn: (_c, rng, base, b) => {
      if (base.records.length === 0) return b;
      const at = rng.pick(base.records);
      const n = readU32(b, at + ENTRY_PAYLOAD_BYTES_OFFSET);
      if (n === 0 || at + ENTRY_HEADER_BYTES + n > b.byteLength) return b;
      const p = at + ENTRY_HEADER_BYTES + rng.int(n);
      b[p] = (b[p] as number) ^ (1 + rng.int(255));
      fixRecordCrc(b, at, true);
      return b;
    },
  },
  // The snapshot meta changed with its CRC recomputed: decodeSnapshotMeta's field checks are reached.
  meta: {
    weight: 8,
    fn: (_c, rng, base, b) => {
      if (base.meta === null) return b;
      const [start, end] = base.meta;
      const crcAt = end - 4;
      if (crcAt <= start) return b;
      const k = rng.between(1, 3);
      for (let i = 0; i < k; i++) {
        const at = start + rng.int(crcAt - start);
        if (rng.chance(0.5)) b[at] = rng.pick(BYTE_VALUES);
        else b[at] = (b[at] as number) ^ (1 << rng.int(8));
      }
      writeU32(b, crcAt, crc32c(b.subarray(start, crcAt)));
      return b;
    },
  },
  // A client request's payload (a query's value bytes, a command) damaged, frame intact:
  // the node answers an error and the connection carries on.
  value: {
    weight: 16,
    fn: (_c, rng, base, b) => {
      if (base.payloadStart === 0 || base.payloadStart >= b.byteLength) return b;
      const n = b.byteLength - base.payloadStart;
      const k = rng.between(1, 3);
      for (let i = 0; i < k; i++) {
        const at = base.payloadStart + rng.int(n);
        const r = rng.int(3);
        if (r === 0) b[at] = (b[at] as number) ^ (1 << rng.int(8));
        else if (r === 1) b[at] = rng.pick(BYTE_VALUES);
        else if (at + 4 <= b.byteLength) writeU32(b, at, rng.pick(U32_VALUES));
      }
      return b;
    },
  },
  // A Raft message's term at or near the top of the safe integers: a node adopting one
  // could never campaign again (the peer server refuses terms above MAX_ACCEPTED_TERM).
  term: {
    weight: 2,
    fn: (_c, rng, base, b) => {
      if (!base.kind.startsWith('raft-') || b.byteLength < FRAME_HEADER_BYTES + MESSAGE_FIXED_BYTES) return b;
      const term = rng.pick([Number.MAX_SAFE_INTEGER, MAX_ACCEPTED_TERM + 1, MAX_ACCEPTED_TERM, 2 ** 52]);
      writeU64Raw(b, FRAME_HEADER_BYTES + MESSAGE_TERM_OFFSET, term % 2 ** 32, Math.floor(term / 2 ** 32));
      return b;
    },
  },
  // A Raft message made another: its type, its reject flag or its log term changed.
  raftfield: {
    weight: 2,
    fn: (_c, rng, base, b) => {
      if (!base.kind.startsWith('raft-') || b.byteLength < FRAME_HEADER_BYTES + MESSAGE_FIXED_BYTES) return b;
      const body = FRAME_HEADER_BYTES;
      const r = rng.int(3);
      if (r === 0) b[body + MESSAGE_TYPE_OFFSET] = rng.pick(MESSAGE_TYPES);
      else if (r === 1) b[body + MESSAGE_FLAGS_OFFSET] = (b[body + MESSAGE_FLAGS_OFFSET] as number) ^ 1;
      else writeU64Raw(b, body + MESSAGE_LOG_TERM_OFFSET, rng.nextU32(), rng.int(0x20_0000));
      return b;
    },
  },
  // Numbers that do not affect the framing: request id, term, index, commit, context.
  number: {
    weight: 6,
    fn: (_c, rng, base, b) => {
      if (base.kind.startsWith('req-') && b.byteLength >= FRAME_HEADER_BYTES + 8) {
        writeU32(b, FRAME_HEADER_BYTES + 4, rng.nextU32());
      } else if (base.kind.startsWith('raft-') && b.byteLength >= FRAME_HEADER_BYTES + MESSAGE_FIXED_BYTES) {
        // index, commit, rejectHint, context: any u64 up to 2^53-1 (and sometimes beyond).
        const at = FRAME_HEADER_BYTES + MESSAGE_INDEX_OFFSET + 8 * rng.int(4);
        writeU64Raw(b, at, rng.nextU32(), rng.chance(0.9) ? rng.int(0x20_0000) : 0x20_0000 + rng.int(1000));
      }
      return b;
    },
  },
};

const MUTATOR_NAMES = Object.keys(MUTATORS);
const MUTATOR_TOTAL = MUTATOR_NAMES.reduce((s, k) => s + (MUTATORS[k]?.weight ?? 0), 0);
/**
 * The mutations that usually leave a frame of `base`'s kind acceptable, repeated by
 * weight; empty if there are none.
 */
function survivableFor(base: BaseFrame): readonly string[] {
  if (base.kind.startsWith('req-'))
    return base.payloadStart > 0 && base.payloadStart < base.bytes.byteLength
      ? ['value', 'value', 'value', 'value', 'number']
      : ['number'];
  if (base.kind.startsWith('raft-'))
    return base.records.length > 0 ? ['payload', 'payload', 'raftfield', 'number'] : ['raftfield', 'number'];
  return [];
}

function pickMutator(rng: Rng, survivable: readonly string[]): string {
  if (survivable.length > 0) return rng.pick(survivable);
  let r = rng.int(MUTATOR_TOTAL);
  for (const k of MUTATOR_NAMES) {
    const w = MUTATORS[k]?.weight ?? 0;
    if (r < w) return k;
    r -= w;
  }
  return 'bitflip';
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * `base` with one to three mutations. `survivable` draws only those that usually keep
 * the frame acceptable (for a kind that has some; else any). The result is a copy;
 * `base` is not changed. A mutation that changed nothing (one that does not apply to
 * the kind, or an overwrite with the same value) is not listed: `mutations` is empty
 * when the bytes are the base's.
 */
export function mutate(ctx: FrameContext, rng: Rng, base: BaseFrame, survivable: boolean): Unit {
  let b: Uint8Array = base.bytes.slice();
  const gentle = survivable ? survivableFor(base) : [];
  const n = gentle.length > 0 ? 1 : rng.between(1, 3);
  const names: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = pickMutator(rng, gentle);
    const before = b.slice();
    b = (MUTATORS[name] as { fn: Mutator }).fn(ctx, rng, base, b);
    if (!sameBytes(before, b)) names.push(name);
  }
  return { bytes: b, kind: base.kind, mutations: sameBytes(b, base.bytes) ? [] : names };
}

/**
 * Mutations that put the stream out of step or end it: the header's length changed
 * (completed with random bytes or with the next frame when it is small: concatenation),
 * the frame cut short with nothing after it, two frames spliced, garbage after a frame.
 * `next` is the frame that would have followed.
 */
export function disrupt(ctx: FrameContext, rng: Rng, base: BaseFrame, next: BaseFrame): Unit {
  const unit = disrupted(ctx, rng, base, next);
  return sameBytes(unit.bytes, base.bytes) ? { ...unit, mutations: [] } : unit;
}

function disrupted(ctx: FrameContext, rng: Rng, base: BaseFrame, next: BaseFrame): Unit {
  const b = base.bytes.slice();
  switch (rng.int(5)) {
    case 0: {
      const bodyBytes = b.byteLength - FRAME_HEADER_BYTES;
      const claimed = interestingLength(ctx, rng, bodyBytes);
      setBodyBytes(b, claimed);
      const missing = claimed - bodyBytes;
      // A small shortfall is filled, so the node parses the frame: with the next frame
      // (two frames under one header) or random bytes.
      if (missing > 0 && missing <= 64 * 1024 && rng.chance(0.7)) {
        const fill = rng.chance(0.5) ? next.bytes : bytesOf(rng, missing);
        const filler =
          fill.byteLength >= missing
            ? fill.subarray(0, missing)
            : concat([fill, bytesOf(rng, missing - fill.byteLength)]);
        return { bytes: concat([b, filler]), kind: base.kind, mutations: ['length', 'fill'] };
      }
      return { bytes: b, kind: base.kind, mutations: ['length'] };
    }
    case 1:
      // Truncated: nothing follows, so the node waits for the rest until the connection ends.
      return { bytes: b.slice(0, rng.int(b.byteLength)), kind: base.kind, mutations: ['truncate'] };
    case 2: {
      // Spliced: the head of this frame and the tail of the next.
      const cut = rng.int(b.byteLength + 1);
      const from = rng.int(next.bytes.byteLength + 1);
      return {
        bytes: concat([b.subarray(0, cut), next.bytes.subarray(from)]),
        kind: base.kind,
        mutations: ['splice'],
      };
    }
    case 3:
      // Garbage after a good frame.
      return { bytes: concat([b, garbage(ctx, rng)]), kind: base.kind, mutations: ['garbage-after'] };
    default: {
      // Cut, then the next frame whole: it is read from the wrong place.
      const cut = FRAME_HEADER_BYTES + rng.int(Math.max(1, b.byteLength - FRAME_HEADER_BYTES));
      return {
        bytes: concat([b.subarray(0, cut), next.bytes]),
        kind: base.kind,
        mutations: ['cut-then-next'],
      };
    }
  }
}
