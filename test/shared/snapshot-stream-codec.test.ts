/**
 * The snapshot stream's codec: every message round trips through `FrameDecoder` and back
 * (fast-check), bytes sit where protocol.ts draws them, malformed bodies are refused with
 * their stable code (never thrown, never allocated from a lying count), the decoder keeps
 * the two directions apart, and the SendSnapshot ring frame round trips.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { writeU32, writeU64 } from '../../src/shared/entry-codec.js';
import { encodeHandshakeFrame, FrameDecoder, FrameError, OutBuffer } from '../../src/shared/message-codec.js';
import {
  FRAME_HEADER_BYTES,
  FrameType,
  HandshakeRole,
  REPLICATOR_SEND_SNAPSHOT_FRAME_BYTES,
  ReplicatorFrame,
  SNAPSHOT_CHUNK_FRAME_OVERHEAD_BYTES,
  SNAPSHOT_STREAM_MAX_MESSAGE_BYTES,
  SnapshotFailReason,
  SnapshotRefuseReason,
  SnapshotReplyKind,
  SnapshotSendKind,
} from '../../src/shared/protocol.js';
import {
  decodeSendSnapshotFrame,
  decodeSnapshotReply,
  decodeSnapshotSend,
  encodeSendSnapshotFrame,
  encodeSnapshotReply,
  encodeSnapshotSend,
  type SnapshotReplyMessage,
  type SnapshotSendMessage,
  SnapshotStreamError,
  type SnapshotStreamErrorCode,
  writeChunkFrameHead,
} from '../../src/shared/snapshot-stream-codec.js';

const SEED = 20240612;
const u64 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const positive = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const bytes = (maxLength: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength });
const text = fc.string({ maxLength: 60 });

const sendArb: fc.Arbitrary<SnapshotSendMessage> = fc.oneof(
  fc.record(
    { kind: fc.constant(SnapshotSendKind.Offer as const), leaderTerm: positive, metaBytes: bytes(300) },
    { noNullPrototype: true },
  ),
  fc.record(
    {
      kind: fc.constant(SnapshotSendKind.Chunk as const),
      fileIndex: fc.integer({ min: 0, max: 0xffff_ffff }),
      offsetBytes: u64,
      data: bytes(3000),
    },
    { noNullPrototype: true },
  ),
  fc.constant({ kind: SnapshotSendKind.Done as const }),
);

const replyArb: fc.Arbitrary<SnapshotReplyMessage> = fc.oneof(
  fc.record(
    {
      kind: fc.constant(SnapshotReplyKind.Resume as const),
      maxChunkBytes: fc.integer({ min: 1, max: 0xffff_ffff }),
      heldBytes: fc.array(u64, { maxLength: 20 }),
    },
    { noNullPrototype: true },
  ),
  fc.record(
    {
      kind: fc.constant(SnapshotReplyKind.Refuse as const),
      reason: fc.constantFrom(...enumNumbers(SnapshotRefuseReason)),
      latestIndex: u64,
      message: text,
    },
    { noNullPrototype: true },
  ),
  fc.record(
    { kind: fc.constant(SnapshotReplyKind.Installed as const), index: positive, term: positive },
    { noNullPrototype: true },
  ),
  fc.record(
    {
      kind: fc.constant(SnapshotReplyKind.Failed as const),
      reason: fc.constantFrom(...enumNumbers(SnapshotFailReason)),
      message: text,
    },
    { noNullPrototype: true },
  ),
);

function enumNumbers(e: object): number[] {
  return Object.values(e).filter((v): v is number => typeof v === 'number');
}

/** A handshake frame of `role`, then the bytes `encode` appends. */
function stream(role: HandshakeRole, encode: (out: OutBuffer) => void): Uint8Array {
  const out = new OutBuffer(64);
  encodeHandshakeFrame(out, { role, clusterId: 'c', nodeId: 'n1' });
  encode(out);
  return out.view().slice();
}

/** The frames of `bytes`, decoded with `options`, fed in `pieces` chunks split anywhere. */
function frames(bytes: Uint8Array, snapshotReplies: boolean, pieces = 1) {
  const decoder = new FrameDecoder({ snapshotReplies });
  const step = Math.max(1, Math.ceil(bytes.byteLength / pieces));
  for (let at = 0; at < bytes.byteLength; at += step) decoder.push(bytes.subarray(at, at + step));
  const out = [];
  for (;;) {
    const f = decoder.next();
    if (f === null) return out;
    out.push(f);
    if (f instanceof FrameError) return out;
  }
}

/** A raw body with kind `kind` followed by `rest`. */
function body(kind: number, ...rest: number[]): Uint8Array {
  return Uint8Array.of(kind, ...rest);
}

describe('snapshot stream codec: round trips', () => {
  test('every SNAPSHOT_SEND message survives encode, FrameDecoder and decode, split anywhere', () => {
    fc.assert(
      fc.property(
        fc.array(sendArb, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1, max: 9 }),
        (ms, pieces) => {
          const wire = stream(HandshakeRole.Snapshot, (out) => {
            for (const m of ms) encodeSnapshotSend(out, m);
          });
          const got = frames(wire, false, pieces);
          assert.equal(got.length, ms.length + 1);
          ms.forEach((m, i) => {
            const f = got[i + 1];
            assert.ok(f !== undefined && !(f instanceof FrameError) && f.type === FrameType.SnapshotSend);
            const decoded = decodeSnapshotSend(f.body);
            assert.ok(!(decoded instanceof SnapshotStreamError), String(decoded));
            assert.deepEqual(normalise(decoded), normalise(m));
          });
        },
      ),
      { seed: SEED, numRuns: 300 },
    );
  });

  test('every SNAPSHOT_REPLY message survives encode, FrameDecoder and decode', () => {
    fc.assert(
      fc.property(replyArb, (m) => {
        const wire = stream(HandshakeRole.Peer, (out) => encodeSnapshotReply(out, m));
        const got = frames(wire, true, 3);
        const f = got[1];
        assert.ok(f !== undefined && !(f instanceof FrameError) && f.type === FrameType.SnapshotReply);
        const decoded = decodeSnapshotReply(f.body);
        assert.ok(!(decoded instanceof SnapshotStreamError), String(decoded));
        assert.deepEqual(decoded, m);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  test('a chunk has the layout protocol.ts draws, and writeChunkFrameHead frames data in place', () => {
    const data = Uint8Array.of(9, 8, 7);
    const out = new OutBuffer(8);
    const n = encodeSnapshotSend(out, {
      kind: SnapshotSendKind.Chunk,
      fileIndex: 2,
      offsetBytes: 2 ** 40 + 5,
      data,
    });
    const wire = out.view();
    assert.equal(n, SNAPSHOT_CHUNK_FRAME_OVERHEAD_BYTES + 3);
    assert.deepEqual(
      [...wire],
      [19, 0, 0, 0, FrameType.SnapshotSend, 2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 0, 1, 0, 0, 9, 8, 7],
    );
    const inPlace = new Uint8Array(SNAPSHOT_CHUNK_FRAME_OVERHEAD_BYTES + 3).fill(0xee);
    inPlace.set(data, SNAPSHOT_CHUNK_FRAME_OVERHEAD_BYTES);
    writeChunkFrameHead(inPlace, 0, 2, 2 ** 40 + 5, 3);
    assert.deepEqual(inPlace, wire);
  });

  test('a long message is cut at a character boundary to the limit', () => {
    const out = new OutBuffer(8);
    // Three-byte characters: the limit is not a multiple of 3, so a naive cut splits one.
    encodeSnapshotReply(out, {
      kind: SnapshotReplyKind.Failed,
      reason: SnapshotFailReason.Error,
      message: '€'.repeat(2000),
    });
    const decoded = decodeSnapshotReply(out.view().subarray(FRAME_HEADER_BYTES));
    assert.ok(!(decoded instanceof SnapshotStreamError) && decoded.kind === SnapshotReplyKind.Failed);
    assert.equal(decoded.message, '€'.repeat(Math.floor(SNAPSHOT_STREAM_MAX_MESSAGE_BYTES / 3)));
  });

  test('the SendSnapshot ring frame round trips; what cannot be encoded is refused', () => {
    const frame = encodeSendSnapshotFrame(2 ** 50 + 3, 7);
    assert.equal(frame.byteLength, REPLICATOR_SEND_SNAPSHOT_FRAME_BYTES);
    assert.equal(frame[0], ReplicatorFrame.SendSnapshot);
    assert.deepEqual(decodeSendSnapshotFrame(frame), { snapshotIndex: 2 ** 50 + 3, leaderTerm: 7 });
    assert.throws(() => encodeSendSnapshotFrame(0, 1), RangeError);
    assert.throws(() => encodeSendSnapshotFrame(1, 1.5), RangeError);
    assert.throws(() => encodeSendSnapshotFrame(2 ** 53, 1), RangeError);
    assert.throws(() => decodeSendSnapshotFrame(frame.subarray(0, 16)), /not a SendSnapshot frame/);
  });

  test('encoders refuse what cannot be encoded', () => {
    const out = new OutBuffer(8);
    assert.throws(
      () =>
        encodeSnapshotSend(out, {
          kind: SnapshotSendKind.Offer,
          leaderTerm: 0,
          metaBytes: new Uint8Array(1),
        }),
      RangeError,
    );
    assert.throws(
      () =>
        encodeSnapshotSend(out, {
          kind: SnapshotSendKind.Chunk,
          fileIndex: -1,
          offsetBytes: 0,
          data: new Uint8Array(1),
        }),
      RangeError,
    );
    assert.throws(
      () => encodeSnapshotReply(out, { kind: SnapshotReplyKind.Resume, maxChunkBytes: 0, heldBytes: [] }),
      RangeError,
    );
    assert.throws(
      () =>
        encodeSnapshotReply(out, {
          kind: SnapshotReplyKind.Refuse,
          reason: 99 as SnapshotRefuseReason,
          latestIndex: 0,
          message: '',
        }),
      RangeError,
    );
    assert.throws(
      () => encodeSnapshotReply(out, { kind: SnapshotReplyKind.Installed, index: 0, term: 1 }),
      RangeError,
    );
  });
});

describe('snapshot stream codec: malformed input', () => {
  const sendCases: [string, Uint8Array, SnapshotStreamErrorCode][] = [
    ['empty body', new Uint8Array(0), 'ERR_SNAPSHOT_STREAM_TRUNCATED'],
    ['unknown kind', body(9, 0, 0, 0, 0, 0, 0, 0), 'ERR_SNAPSHOT_STREAM_UNKNOWN_KIND'],
    ['kind 0', body(0), 'ERR_SNAPSHOT_STREAM_UNKNOWN_KIND'],
    [
      'offer shorter than its fixed part',
      body(SnapshotSendKind.Offer, 0, 0, 0, 0, 0, 0, 0, 1),
      'ERR_SNAPSHOT_STREAM_TRUNCATED',
    ],
    ['offer with term 0', offerBody(0, 0), 'ERR_SNAPSHOT_STREAM_BAD_NUMBER'],
    ['offer with a term above 2^53-1', offerBody(-1, 0), 'ERR_SNAPSHOT_STREAM_BAD_NUMBER'],
    ['offer with a reserved byte set', offerBody(3, 1), 'ERR_SNAPSHOT_STREAM_RESERVED'],
    [
      'chunk shorter than its fixed part',
      body(SnapshotSendKind.Chunk, 0, 0, 0, 1, 0, 0, 0),
      'ERR_SNAPSHOT_STREAM_TRUNCATED',
    ],
    ['chunk offset above 2^53-1', chunkBody(0xff), 'ERR_SNAPSHOT_STREAM_BAD_NUMBER'],
    [
      'done with a byte too many',
      body(SnapshotSendKind.Done, 0, 0, 0, 0, 0, 0, 0, 0),
      'ERR_SNAPSHOT_STREAM_BAD_LENGTH',
    ],
    ['done too short', body(SnapshotSendKind.Done, 0, 0), 'ERR_SNAPSHOT_STREAM_TRUNCATED'],
    [
      'done with a reserved byte set',
      body(SnapshotSendKind.Done, 0, 0, 0, 0, 0, 0, 1),
      'ERR_SNAPSHOT_STREAM_RESERVED',
    ],
  ];
  for (const [name, b, code] of sendCases) {
    test(`SNAPSHOT_SEND: ${name} is refused with ${code}`, () => {
      const got = decodeSnapshotSend(b);
      assert.ok(got instanceof SnapshotStreamError, `decoded ${JSON.stringify(got)}`);
      assert.equal(got.code, code);
    });
  }

  const replyCases: [string, Uint8Array, SnapshotStreamErrorCode][] = [
    ['empty body', new Uint8Array(0), 'ERR_SNAPSHOT_STREAM_TRUNCATED'],
    ['unknown kind', body(77), 'ERR_SNAPSHOT_STREAM_UNKNOWN_KIND'],
    ['a file count larger than the body', resumeBody(1_000_000_000, 1, 2), 'ERR_SNAPSHOT_STREAM_BAD_LENGTH'],
    ['a file count smaller than the body', resumeBody(1, 1, 2), 'ERR_SNAPSHOT_STREAM_BAD_LENGTH'],
    ['maxChunkBytes 0', resumeBody(0, 0, 0), 'ERR_SNAPSHOT_STREAM_BAD_NUMBER'],
    ['held bytes above 2^53-1', resumeBody(1, 1, 1, 0xff), 'ERR_SNAPSHOT_STREAM_BAD_NUMBER'],
    ['refuse with an unknown reason', refuseBody(42, 'x'), 'ERR_SNAPSHOT_STREAM_BAD_REASON'],
    ['refuse too short', body(SnapshotReplyKind.Refuse, 1, 0, 0), 'ERR_SNAPSHOT_STREAM_TRUNCATED'],
    [
      'refuse message not UTF-8',
      refuseBody(1, '', Uint8Array.of(0xff, 0xfe)),
      'ERR_SNAPSHOT_STREAM_BAD_MESSAGE',
    ],
    [
      'refuse message over the limit',
      refuseBody(1, 'a'.repeat(SNAPSHOT_STREAM_MAX_MESSAGE_BYTES + 1)),
      'ERR_SNAPSHOT_STREAM_BAD_MESSAGE',
    ],
    ['installed with index 0', installedBody(0, 1), 'ERR_SNAPSHOT_STREAM_BAD_NUMBER'],
    ['installed too long', concat(installedBody(3, 1), Uint8Array.of(0)), 'ERR_SNAPSHOT_STREAM_BAD_LENGTH'],
    [
      'failed with reason 0',
      body(SnapshotReplyKind.Failed, 0, 0, 0, 0, 0, 0, 0),
      'ERR_SNAPSHOT_STREAM_BAD_REASON',
    ],
    [
      'failed with a reserved byte set',
      body(SnapshotReplyKind.Failed, 1, 0, 0, 0, 0, 0, 3),
      'ERR_SNAPSHOT_STREAM_RESERVED',
    ],
  ];
  for (const [name, b, code] of replyCases) {
    test(`SNAPSHOT_REPLY: ${name} is refused with ${code}`, () => {
      const got = decodeSnapshotReply(b);
      assert.ok(got instanceof SnapshotStreamError, `decoded ${JSON.stringify(got)}`);
      assert.equal(got.code, code);
    });
  }

  test('random bytes never throw: each body decodes or is refused', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
        const s = decodeSnapshotSend(b);
        const r = decodeSnapshotReply(b);
        assert.ok(s instanceof SnapshotStreamError || typeof s.kind === 'number');
        assert.ok(r instanceof SnapshotStreamError || typeof r.kind === 'number');
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  test('FrameDecoder keeps the directions apart and bounds a frame before buffering it', () => {
    const reply = stream(HandshakeRole.Snapshot, (out) =>
      encodeSnapshotReply(out, { kind: SnapshotReplyKind.Installed, index: 1, term: 1 }),
    );
    const onFollower = frames(reply, false).at(-1);
    assert.ok(onFollower instanceof FrameError && onFollower.code === 'ERR_FRAME_UNSUPPORTED_TYPE');

    const send = stream(HandshakeRole.Peer, (out) =>
      encodeSnapshotSend(out, { kind: SnapshotSendKind.Done }),
    );
    const onLeader = frames(send, true).at(-1);
    assert.ok(onLeader instanceof FrameError && onLeader.code === 'ERR_FRAME_UNSUPPORTED_TYPE');

    // A snapshot frame on a peer connection, and a Raft message on a snapshot stream.
    const onPeer = frames(
      stream(HandshakeRole.Peer, (out) => encodeSnapshotSend(out, { kind: SnapshotSendKind.Done })),
      false,
    ).at(-1);
    assert.ok(onPeer instanceof FrameError && onPeer.code === 'ERR_FRAME_UNSUPPORTED_TYPE');

    // A chunk claiming 4 GiB is refused from its 5-byte header alone.
    const huge = stream(HandshakeRole.Snapshot, (out) => {
      const at = out.append(FRAME_HEADER_BYTES);
      writeU32(out.bytes, at, 0xffff_fff0);
      out.bytes[at + 4] = FrameType.SnapshotSend;
    });
    const decoder = new FrameDecoder();
    decoder.push(huge);
    assert.ok(!(decoder.next() instanceof FrameError));
    const refused = decoder.next();
    assert.ok(refused instanceof FrameError && refused.code === 'ERR_FRAME_TOO_LONG');
    assert.equal(decoder.largestCopyBytes, 0);
  });
});

/** `m` with its byte fields as plain arrays, so views and copies compare equal. */
function normalise(m: SnapshotSendMessage): unknown {
  if (m.kind === SnapshotSendKind.Offer) return { ...m, metaBytes: [...m.metaBytes] };
  if (m.kind === SnapshotSendKind.Chunk) return { ...m, data: [...m.data] };
  return m;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

/** An Offer body with `term` (-1: above 2^53-1) and reserved byte 1 set to `reserved`. */
function offerBody(term: number, reserved: number): Uint8Array {
  const b = new Uint8Array(20);
  b[0] = SnapshotSendKind.Offer;
  b[1] = reserved;
  if (term < 0) b.fill(0xff, 8, 16);
  else writeU64(b, 8, term);
  return b;
}

/** A Chunk body whose offset's top byte is `top`. */
function chunkBody(top: number): Uint8Array {
  const b = new Uint8Array(20);
  b[0] = SnapshotSendKind.Chunk;
  b[15] = top;
  return b;
}

/** A Resume body claiming `count` files, with `present` u64s, and maxChunkBytes. */
function resumeBody(count: number, maxChunkBytes: number, present: number, topOfFirst = 0): Uint8Array {
  const b = new Uint8Array(16 + 8 * present);
  b[0] = SnapshotReplyKind.Resume;
  writeU32(b, 4, count);
  writeU32(b, 8, maxChunkBytes);
  if (present > 0) b[16 + 7] = topOfFirst;
  return b;
}

function refuseBody(reason: number, message: string, raw?: Uint8Array): Uint8Array {
  const text = raw ?? new TextEncoder().encode(message);
  const b = new Uint8Array(16 + text.byteLength);
  b[0] = SnapshotReplyKind.Refuse;
  b[1] = reason;
  b.set(text, 16);
  return b;
}

function installedBody(index: number, term: number): Uint8Array {
  const b = new Uint8Array(24);
  b[0] = SnapshotReplyKind.Installed;
  writeU64(b, 8, index);
  writeU64(b, 16, term);
  return b;
}
