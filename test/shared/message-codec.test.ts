/**
 * Wire frames: round trips of every Message shape and of handshakes, the layout pinned
 * against protocol.ts, any split of a stream decoding to the same frames, every refusal
 * code, encoder refusals, and a fuzz of random and mutated streams that must only ever
 * produce frames or FrameErrors, never an exception or an allocation above the limit.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type Message, MessageType, message } from '../../src/raft/messages.js';
import { type ConfState, type Entry, EntryType, type SnapshotMeta } from '../../src/raft/types.js';
import {
  encodedEntryBytes,
  encodeEntry,
  writeU16,
  writeU32,
  writeU64,
} from '../../src/shared/entry-codec.js';
import {
  encodedFrameBytes,
  encodeFrame,
  encodeHandshakeFrame,
  encodeRaftMessageFrame,
  encodeRaftMessageFrameWithRecords,
  type Frame,
  FrameDecoder,
  type FrameDecoderOptions,
  FrameError,
  type FrameErrorCode,
  type Handshake,
  OutBuffer,
  type OutgoingFrame,
} from '../../src/shared/message-codec.js';
import {
  FRAME_HEADER_BYTES,
  FrameType,
  HANDSHAKE_MAX_BODY_BYTES,
  HandshakeRole,
  MESSAGE_CONTEXT_OFFSET,
  MESSAGE_ENTRY_COUNT_OFFSET,
  MESSAGE_FIXED_BYTES,
  MESSAGE_FLAGS_OFFSET,
  MESSAGE_FROM_BYTES_OFFSET,
  MESSAGE_TERM_OFFSET,
  MESSAGE_TYPE_OFFSET,
  PROTOCOL_VERSION,
} from '../../src/shared/protocol.js';

const SEED = 20140519;

function check<Ts extends unknown[]>(prop: fc.IProperty<Ts>, numRuns: number): void {
  fc.assert(prop, { seed: SEED, numRuns, includeErrorInReport: true });
}

// ------------------------------------------------------------------ arbitraries

const MESSAGE_TYPES = Object.values(MessageType).filter((v): v is MessageType => typeof v === 'number');

// 'binary' draws any code point but lone surrogates, which UTF-8 cannot carry.
const idArb = fc.oneof(
  fc.constantFrom('n1', 'n2', 'n3', 'node-4'),
  fc.string({ unit: 'binary', maxLength: 12 }),
);
const u64Arb = fc.oneof(fc.nat({ max: 1000 }), fc.maxSafeNat());
const positiveArb = fc.oneof(
  fc.integer({ min: 1, max: 1000 }),
  fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
);

// fc.record builds null-prototype objects; spread them into plain ones to compare with decoded values.
const entryArb: fc.Arbitrary<Entry> = fc
  .record({
    index: positiveArb,
    term: positiveArb,
    type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange, EntryType.Noop),
    data: fc.uint8Array({ maxLength: 100 }),
  })
  .map((e) => ({ ...e }));

const confArb: fc.Arbitrary<ConfState> = fc
  .record({
    voters: fc.array(idArb, { maxLength: 5 }),
    votersOutgoing: fc.array(idArb, { maxLength: 5 }),
    learners: fc.array(idArb, { maxLength: 5 }),
    autoLeave: fc.boolean(),
  })
  .map((c) => ({ ...c }));

const snapshotArb: fc.Arbitrary<SnapshotMeta | null> = fc.option(
  fc.record({ index: u64Arb, term: u64Arb, conf: confArb }).map((s) => ({ ...s })),
  { nil: null },
);

const messageArb: fc.Arbitrary<Message> = fc
  .record({
    type: fc.constantFrom(...MESSAGE_TYPES),
    from: idArb,
    to: idArb,
    term: u64Arb,
    logTerm: u64Arb,
    index: u64Arb,
    commit: u64Arb,
    entries: fc.array(entryArb, { maxLength: 6 }),
    reject: fc.boolean(),
    rejectHint: u64Arb,
    context: u64Arb,
    snapshot: snapshotArb,
  })
  .map((m) => ({ ...m }));

const handshakeArb: fc.Arbitrary<Handshake> = fc
  .record({
    role: fc.constantFrom(HandshakeRole.Peer, HandshakeRole.Client, HandshakeRole.Snapshot),
    clusterId: fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }),
    nodeId: fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }),
    authFollows: fc.boolean(),
    electionTimeoutMs: fc.integer({ min: 0, max: 0xffff_ffff }),
    nonce: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  })
  .map((h) => ({ ...h }));

/** `hs` as a decoder gives it back: no proof announced, timeout 0, a zero nonce when left out. */
function decoded(hs: Handshake): Handshake {
  return { authFollows: false, electionTimeoutMs: 0, nonce: new Uint8Array(32), ...hs };
}

// ------------------------------------------------------------------ helpers

function encodeAll(frames: readonly OutgoingFrame[]): Uint8Array {
  const out = new OutBuffer(16);
  for (const f of frames) encodeFrame(out, f);
  return out.view().slice();
}

/** Feeds `chunks` in order and collects every frame, stopping at the first error. */
function decodeChunks(
  chunks: readonly Uint8Array[],
  options: FrameDecoderOptions = {},
): Frame[] | FrameError {
  const decoder = new FrameDecoder(options);
  const frames: Frame[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (let f = decoder.next(); f !== null; f = decoder.next()) {
      if (f instanceof FrameError) return f;
      frames.push(f);
    }
  }
  return frames;
}

function decodeOne(
  bytes: Uint8Array,
  options: FrameDecoderOptions = { expectHandshake: false },
): Frame | FrameError {
  const got = decodeChunks([bytes], options);
  if (got instanceof FrameError) return got;
  assert.equal(got.length, 1, 'exactly one frame');
  return got[0] as Frame;
}

function assertMessageFrame(got: Frame | FrameError): Message {
  assert.ok(!(got instanceof FrameError), got instanceof FrameError ? got.message : '');
  assert.equal(got.type, FrameType.RaftMessage);
  return (got as { message: Message }).message;
}

function errorCode(got: Frame[] | Frame | FrameError): FrameErrorCode | 'none' {
  return got instanceof FrameError ? got.code : 'none';
}

function msgFrame(m: Message): OutgoingFrame {
  return { type: FrameType.RaftMessage, message: m };
}

const HELLO: OutgoingFrame = {
  type: FrameType.Handshake,
  handshake: decoded({ role: HandshakeRole.Peer, clusterId: 'c1', nodeId: 'n1', electionTimeoutMs: 1000 }),
};

// ------------------------------------------------------------------ round trips

describe('frame round trips', () => {
  test('every Message shape: decode(encode(m)) = m, entries as views into the frame', () => {
    check(
      fc.property(messageArb, (m) => {
        const bytes = encodeAll([msgFrame(m)]);
        assert.equal(bytes.byteLength, encodedFrameBytes(msgFrame(m)));
        const got = decodeOne(bytes);
        const decoded = assertMessageFrame(got);
        assert.deepEqual(decoded, m);
        for (const e of decoded.entries) assert.equal(e.data.buffer, bytes.buffer, 'entry data is a view');
        // entryRecords is exactly the stored records, back to back.
        let recordBytes = 0;
        for (const e of m.entries) recordBytes += encodedEntryBytes(e);
        const records = new Uint8Array(recordBytes);
        let pos = 0;
        for (const e of m.entries) pos += encodeEntry(e, records, pos);
        assert.deepEqual((got as { entryRecords: Uint8Array }).entryRecords, records);
        // The replicator's path, copying stored records, produces the very same bytes.
        const out = new OutBuffer();
        encodeRaftMessageFrameWithRecords(out, { ...m, entries: [] }, records, m.entries.length);
        assert.deepEqual(out.view(), bytes);
      }),
      600,
    );
  });

  test('handshakes round trip, with the version and magic in place', () => {
    check(
      fc.property(handshakeArb, (hs) => {
        const bytes = encodeAll([{ type: FrameType.Handshake, handshake: hs }]);
        assert.deepEqual([...bytes.subarray(5, 9)], [0x52, 0x46, 0x54, 0x4c]);
        assert.equal(bytes[9], PROTOCOL_VERSION);
        const got = decodeOne(bytes, {});
        assert.deepEqual(got, { type: FrameType.Handshake, handshake: hs });
      }),
      300,
    );
  });

  test('auth frames round trip behind the handshake that announces them, with either proof or both', () => {
    const proofArb = fc.option(fc.uint8Array({ minLength: 32, maxLength: 32 }), { nil: null });
    check(
      fc.property(proofArb, proofArb, (proof, adminProof) => {
        const auth: OutgoingFrame = { type: FrameType.Auth, auth: { proof, adminProof } };
        const bytes = encodeAll([auth]);
        assert.equal(bytes.byteLength, encodedFrameBytes(auth));
        assert.equal(bytes.byteLength, 5 + 4 + 32 * ((proof ? 1 : 0) + (adminProof ? 1 : 0)));
        assert.deepEqual(decodeChunks([authHello, bytes]), [authHelloFrame, auth]);
      }),
      100,
    );
  });

  test('a client may have an empty node id', () => {
    const hs = decoded({ role: HandshakeRole.Client, clusterId: 'c', nodeId: '' });
    assert.deepEqual(decodeOne(encodeAll([{ type: FrameType.Handshake, handshake: hs }]), {}), {
      type: FrameType.Handshake,
      handshake: hs,
    });
  });

  test('a heartbeat has the layout protocol.ts draws', () => {
    const m = message({
      type: MessageType.MsgHeartbeat,
      from: 'n1',
      to: 'n22',
      term: 5,
      commit: 9,
      context: 3,
    });
    const bytes = encodeAll([msgFrame(m)]);
    const body = bytes.subarray(FRAME_HEADER_BYTES);
    assert.equal(bytes.byteLength, 5 + 56 + 2 + 3);
    assert.deepEqual([...bytes.subarray(0, 5)], [56 + 5, 0, 0, 0, FrameType.RaftMessage]);
    assert.deepEqual([...body.subarray(0, 4)], [MessageType.MsgHeartbeat, 0, 2, 3]);
    assert.equal(body[MESSAGE_TERM_OFFSET], 5);
    assert.equal(body[28], 9);
    assert.equal(body[MESSAGE_CONTEXT_OFFSET], 3);
    assert.equal(new TextDecoder().decode(body.subarray(MESSAGE_FIXED_BYTES)), 'n1n22');
  });

  test('OutBuffer grows and keeps earlier frames intact', () => {
    const out = new OutBuffer(16);
    const messages = fc.sample(messageArb, { seed: SEED, numRuns: 50 });
    const sizes = messages.map((m) => encodeRaftMessageFrame(out, m));
    assert.equal(
      out.length,
      sizes.reduce((a, b) => a + b, 0),
    );
    const got = decodeChunks([out.view()], { expectHandshake: false });
    assert.ok(Array.isArray(got));
    assert.deepEqual(
      got.map((f) => (f as { message: Message }).message),
      messages,
    );
    out.clear();
    assert.equal(out.length, 0);
  });
});

describe('chunking', () => {
  test('any split of a stream decodes to the same frames', () => {
    check(
      fc.property(
        fc.array(messageArb, { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (messages, cutSeeds) => {
          const stream = encodeAll([HELLO, ...messages.map(msgFrame)]);
          const cuts = [...new Set(cutSeeds.map((c) => c % (stream.byteLength + 1)))].sort((a, b) => a - b);
          const chunks: Uint8Array[] = [];
          let at = 0;
          for (const c of [...cuts, stream.byteLength]) {
            chunks.push(stream.slice(at, c));
            at = c;
          }
          const maxFrameBytes = 1 << 20;
          const decoder = new FrameDecoder({ maxFrameBytes, maxEntryPayloadBytes: 1 << 16 });
          const frames: Frame[] = [];
          for (const chunk of chunks) {
            decoder.push(chunk);
            for (let f = decoder.next(); f !== null; f = decoder.next()) {
              assert.ok(!(f instanceof FrameError), f instanceof FrameError ? f.message : '');
              frames.push(f as Frame);
            }
          }
          assert.equal(decoder.bufferedBytes, 0);
          assert.ok(decoder.largestCopyBytes <= maxFrameBytes);
          assert.deepEqual(frames[0], HELLO);
          assert.deepEqual(
            frames.slice(1).map((f) => (f as { message: Message }).message),
            messages,
          );
        },
      ),
      300,
    );
  });

  test('one byte at a time', () => {
    const messages = fc.sample(messageArb, { seed: SEED, numRuns: 20 });
    const stream = encodeAll([HELLO, ...messages.map(msgFrame)]);
    const chunks = Array.from({ length: stream.byteLength }, (_, i) => stream.slice(i, i + 1));
    const got = decodeChunks(chunks);
    assert.ok(Array.isArray(got));
    assert.deepEqual(
      got.slice(1).map((f) => (f as { message: Message }).message),
      messages,
    );
  });
});

// ------------------------------------------------------------------ refusals

/** A frame with the given header fields around `body`. */
function rawFrame(type: number, body: Uint8Array, bodyBytes = body.byteLength): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + body.byteLength);
  writeU32(out, 0, bodyBytes);
  out[4] = type;
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

/** The encoded frame of `m` after `damage` changed its body (its length is kept in step). */
/** `damage` changes the body in place, or returns a new body. */
type Damage = (body: Uint8Array) => unknown;

/** Sets the body byte at `at` (negative: from the end). */
const setByte =
  (at: number, value: number): Damage =>
  (b) => {
    b[at < 0 ? b.byteLength + at : at] = value;
  };

/** Flips the bits of `mask` in the body byte at `at` (negative: from the end). */
const xorByte =
  (at: number, mask: number): Damage =>
  (b) => {
    const i = at < 0 ? b.byteLength + at : at;
    b[i] = (b[i] as number) ^ mask;
  };

function damagedMessage(m: Message, damage: Damage): Uint8Array {
  const body = encodeAll([msgFrame(m)]).slice(FRAME_HEADER_BYTES);
  const changed = damage(body);
  return rawFrame(FrameType.RaftMessage, changed instanceof Uint8Array ? changed : body);
}

function damagedHandshake(hs: Handshake, damage: Damage): Uint8Array {
  const body = encodeAll([{ type: FrameType.Handshake, handshake: hs }]).slice(FRAME_HEADER_BYTES);
  const changed = damage(body);
  return rawFrame(FrameType.Handshake, changed instanceof Uint8Array ? changed : body);
}

const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
};

/** A handshake announcing an auth frame, and its bytes. */
const authHelloFrame: OutgoingFrame = {
  type: FrameType.Handshake,
  handshake: decoded({ role: HandshakeRole.Peer, clusterId: 'c1', nodeId: 'n1', authFollows: true }),
};
const authHello = encodeAll([authHelloFrame]);

describe('frame refusals', () => {
  const peer: Handshake = { role: HandshakeRole.Peer, clusterId: 'c1', nodeId: 'n1' };
  const app = message({
    type: MessageType.MsgApp,
    from: 'n1',
    to: 'n2',
    term: 3,
    index: 5,
    logTerm: 2,
    entries: [{ index: 6, term: 3, type: EntryType.Normal, data: Uint8Array.of(1, 2, 3) }],
  });
  const snap = message({
    type: MessageType.MsgSnap,
    from: 'n1',
    to: 'n2',
    term: 3,
    snapshot: {
      index: 9,
      term: 2,
      conf: { voters: ['a'], votersOutgoing: [], learners: ['b'], autoLeave: false },
    },
  });
  const hello = encodeAll([HELLO]);
  const bodyStart = FRAME_HEADER_BYTES;
  const afterIds = MESSAGE_FIXED_BYTES + 4; // 'n1' + 'n2'

  const cases: [string, Uint8Array, FrameErrorCode, FrameDecoderOptions?][] = [
    [
      'HTTP instead of a handshake',
      new TextEncoder().encode('GET / HTTP/1.1\r\n\r\n'),
      'ERR_FRAME_HANDSHAKE_EXPECTED',
    ],
    ['a message before the handshake', encodeAll([msgFrame(app)]), 'ERR_FRAME_HANDSHAKE_EXPECTED'],
    ['a second handshake', concat(hello, hello), 'ERR_FRAME_UNEXPECTED_HANDSHAKE'],
    ['wrong magic', damagedHandshake(peer, setByte(0, 0x58)), 'ERR_FRAME_BAD_MAGIC'],
    [
      'wrong version',
      damagedHandshake(peer, (b) => writeU16(b, 4, PROTOCOL_VERSION + 1)),
      'ERR_FRAME_BAD_VERSION',
    ],
    ['unknown role', damagedHandshake(peer, setByte(6, 99)), 'ERR_FRAME_BAD_ROLE'],
    [
      'empty cluster id',
      rawFrame(
        FrameType.Handshake,
        concat(Uint8Array.of(0x52, 0x46, 0x54, 0x4c, PROTOCOL_VERSION, 0, 1, 0, 1, 0x6e), new Uint8Array(37)),
      ),
      'ERR_FRAME_BAD_ID',
    ],
    [
      'peer without a node id',
      rawFrame(
        FrameType.Handshake,
        concat(Uint8Array.of(0x52, 0x46, 0x54, 0x4c, PROTOCOL_VERSION, 0, 1, 1, 0x63, 0), new Uint8Array(37)),
      ),
      'ERR_FRAME_BAD_ID',
    ],
    // The node id's last byte stands before the 37-byte tail (flags, timeout, nonce).
    ['node id not UTF-8', damagedHandshake(peer, setByte(-38, 0xff)), 'ERR_FRAME_BAD_UTF8'],
    ['unknown handshake flags', damagedHandshake(peer, setByte(-37, 0x80)), 'ERR_FRAME_BAD_FLAGS'],
    [
      'handshake without its tail',
      damagedHandshake(peer, (b) => b.subarray(0, b.byteLength - 1)),
      'ERR_FRAME_TRUNCATED',
    ],
    [
      'an auth frame nobody announced',
      concat(
        hello,
        encodeAll([{ type: FrameType.Auth, auth: { proof: new Uint8Array(32), adminProof: null } }]),
      ),
      'ERR_FRAME_UNEXPECTED_AUTH',
    ],
    [
      'a message where an auth frame was announced',
      concat(
        encodeAll([{ type: FrameType.Handshake, handshake: { ...peer, authFollows: true } }]),
        encodeAll([msgFrame(app)]),
      ),
      'ERR_FRAME_AUTH_EXPECTED',
    ],
    [
      'an auth frame with unknown flags',
      concat(authHello, rawFrame(FrameType.Auth, Uint8Array.of(4, 0, 0, 0))),
      'ERR_FRAME_BAD_FLAGS',
    ],
    [
      'an auth frame with reserved bytes set',
      concat(authHello, rawFrame(FrameType.Auth, Uint8Array.of(0, 1, 0, 0))),
      'ERR_FRAME_BAD_FLAGS',
    ],
    [
      'an auth frame cut inside its proof',
      concat(authHello, rawFrame(FrameType.Auth, concat(Uint8Array.of(1, 0, 0, 0), new Uint8Array(31)))),
      'ERR_FRAME_TRUNCATED',
    ],
    [
      'an auth frame with a byte after its proofs',
      concat(authHello, rawFrame(FrameType.Auth, concat(Uint8Array.of(1, 0, 0, 0), new Uint8Array(33)))),
      'ERR_FRAME_TRAILING_BYTES',
    ],
    [
      'an auth frame too long for its layout',
      concat(authHello, rawFrame(FrameType.Auth, new Uint8Array(69))),
      'ERR_FRAME_TOO_LONG',
    ],
    [
      'an auth frame too short',
      concat(authHello, rawFrame(FrameType.Auth, Uint8Array.of(0))),
      'ERR_FRAME_TRUNCATED',
    ],
    ['cluster id runs past the end', damagedHandshake(peer, setByte(7, 200)), 'ERR_FRAME_TRUNCATED'],
    [
      'handshake trailing byte',
      damagedHandshake(peer, (b) => concat(b, Uint8Array.of(0))),
      'ERR_FRAME_TRAILING_BYTES',
    ],
    ['handshake too short', rawFrame(FrameType.Handshake, Uint8Array.of(0x52, 0x46)), 'ERR_FRAME_TRUNCATED'],
    [
      'handshake too long',
      rawFrame(FrameType.Handshake, new Uint8Array(HANDSHAKE_MAX_BODY_BYTES + 1)),
      'ERR_FRAME_TOO_LONG',
    ],
    ['frame type 0', concat(hello, rawFrame(0, new Uint8Array(3))), 'ERR_FRAME_UNKNOWN_TYPE'],
    ['frame type 99', concat(hello, rawFrame(99, new Uint8Array(3))), 'ERR_FRAME_UNKNOWN_TYPE'],
    [
      'a snapshot-stream frame on a peer connection',
      concat(hello, rawFrame(FrameType.SnapshotSend, new Uint8Array(3))),
      'ERR_FRAME_UNSUPPORTED_TYPE',
    ],
    [
      'reserved client request',
      concat(hello, rawFrame(FrameType.ClientRequest, new Uint8Array(3))),
      'ERR_FRAME_UNSUPPORTED_TYPE',
    ],
    [
      'length over the limit, refused from the header alone',
      concat(hello, rawFrame(FrameType.RaftMessage, new Uint8Array(0), 0xffff_fff0)),
      'ERR_FRAME_TOO_LONG',
    ],
    [
      'message type 0',
      concat(hello, damagedMessage(app, setByte(MESSAGE_TYPE_OFFSET, 0))),
      'ERR_FRAME_UNKNOWN_MESSAGE_TYPE',
    ],
    [
      'message type 13',
      concat(hello, damagedMessage(app, setByte(MESSAGE_TYPE_OFFSET, 13))),
      'ERR_FRAME_UNKNOWN_MESSAGE_TYPE',
    ],
    [
      'unknown flag',
      concat(hello, damagedMessage(app, setByte(MESSAGE_FLAGS_OFFSET, 4))),
      'ERR_FRAME_BAD_FLAGS',
    ],
    [
      'term above 2^53',
      concat(
        hello,
        damagedMessage(app, (b) => writeU32(b, MESSAGE_TERM_OFFSET + 4, 0x20_0000)),
      ),
      'ERR_FRAME_BAD_NUMBER',
    ],
    [
      'body shorter than the fixed part',
      concat(hello, rawFrame(FrameType.RaftMessage, new Uint8Array(55))),
      'ERR_FRAME_TRUNCATED',
    ],
    [
      'ids run past the end',
      concat(hello, damagedMessage(app, setByte(MESSAGE_FROM_BYTES_OFFSET, 250))),
      'ERR_FRAME_TRUNCATED',
    ],
    [
      '`from` not UTF-8',
      concat(hello, damagedMessage(app, setByte(MESSAGE_FIXED_BYTES, 0xc0))),
      'ERR_FRAME_BAD_UTF8',
    ],
    [
      'more entries counted than sent',
      concat(
        hello,
        damagedMessage(app, (b) => writeU32(b, MESSAGE_ENTRY_COUNT_OFFSET, 2)),
      ),
      'ERR_FRAME_TRUNCATED',
    ],
    [
      'a count no body could hold',
      concat(
        hello,
        damagedMessage(app, (b) => writeU32(b, MESSAGE_ENTRY_COUNT_OFFSET, 0xffff_ffff)),
      ),
      'ERR_FRAME_TRUNCATED',
    ],
    [
      'fewer entries counted than sent',
      concat(
        hello,
        damagedMessage(app, (b) => writeU32(b, MESSAGE_ENTRY_COUNT_OFFSET, 0)),
      ),
      'ERR_FRAME_TRAILING_BYTES',
    ],
    [
      'a record cut short',
      concat(
        hello,
        damagedMessage(app, (b) => b.slice(0, b.byteLength - 1)),
      ),
      'ERR_FRAME_TRUNCATED',
    ],
    ['a corrupt entry payload', concat(hello, damagedMessage(app, xorByte(-1, 1))), 'ERR_FRAME_BAD_ENTRY'],
    [
      'a corrupt entry header',
      concat(hello, damagedMessage(app, xorByte(afterIds + 10, 1))),
      'ERR_FRAME_BAD_ENTRY',
    ],
    [
      'an entry over the payload limit',
      concat(hello, encodeAll([msgFrame(app)])),
      'ERR_FRAME_BAD_ENTRY',
      { maxEntryPayloadBytes: 2 },
    ],
    [
      'snapshot flag without a snapshot',
      concat(hello, damagedMessage({ ...app, entries: [] }, setByte(MESSAGE_FLAGS_OFFSET, 2))),
      'ERR_FRAME_TRUNCATED',
    ],
    [
      'unknown snapshot flag',
      concat(hello, damagedMessage(snap, setByte(afterIds + 16, 2))),
      'ERR_FRAME_BAD_FLAGS',
    ],
    [
      'snapshot index above 2^53',
      concat(
        hello,
        damagedMessage(snap, (b) => writeU64(b, afterIds, 2 ** 53 + 2)),
      ),
      'ERR_FRAME_BAD_NUMBER',
    ],
    [
      'conf id not UTF-8',
      concat(hello, damagedMessage(snap, setByte(afterIds + 24, 0xff))),
      'ERR_FRAME_BAD_UTF8',
    ],
    [
      'more voters counted than sent',
      concat(
        hello,
        damagedMessage(snap, (b) => writeU16(b, afterIds + 17, 9)),
      ),
      'ERR_FRAME_TRUNCATED',
    ],
  ];

  for (const [name, bytes, code, options] of cases) {
    test(`${name}: ${code}`, () => {
      assert.equal(errorCode(decodeChunks([bytes], options)), code);
      // Split anywhere, the verdict is the same.
      for (const cut of [1, 4, 5, 6, bodyStart + 3, Math.floor(bytes.byteLength / 2)]) {
        if (cut >= bytes.byteLength) continue;
        assert.equal(errorCode(decodeChunks([bytes.subarray(0, cut), bytes.subarray(cut)], options)), code);
      }
    });
  }

  test('a length over the limit is refused before the body arrives', () => {
    const decoder = new FrameDecoder({ expectHandshake: false });
    const header = rawFrame(FrameType.RaftMessage, new Uint8Array(0), 0x7fff_ffff);
    decoder.push(header);
    const got = decoder.next();
    assert.ok(got instanceof FrameError && got.code === 'ERR_FRAME_TOO_LONG');
  });

  test('after an error the decoder keeps answering it and drops what it is fed', () => {
    const decoder = new FrameDecoder();
    decoder.push(new TextEncoder().encode('GET / HTTP/1.1\r\n'));
    const first = decoder.next();
    assert.ok(first instanceof FrameError);
    assert.equal(first.streamOffset, 0);
    decoder.push(hello);
    assert.equal(decoder.next(), first);
    assert.equal(decoder.bufferedBytes, 0);
  });

  test('errors name the offset of the refused frame in the stream', () => {
    const bad = damagedMessage(app, setByte(MESSAGE_TYPE_OFFSET, 0));
    const got = decodeChunks([concat(hello, encodeAll([msgFrame(app)]), bad)]);
    assert.ok(got instanceof FrameError);
    assert.equal(got.streamOffset, hello.byteLength + encodedFrameBytes(msgFrame(app)));
  });

  test('a bad entry carries the entry error', () => {
    const bad = damagedMessage(app, xorByte(-1, 1));
    const got = decodeOne(bad);
    assert.ok(got instanceof FrameError);
    assert.equal(got.entryError?.kind, 'corrupt');
  });

  test('inconsistent limits are a configuration bug', () => {
    assert.throws(() => new FrameDecoder({ maxFrameBytes: 1000, maxEntryPayloadBytes: 1000 }), RangeError);
    assert.throws(() => new FrameDecoder({ maxEntryPayloadBytes: -1 }), RangeError);
    assert.throws(() => new FrameDecoder({ maxFrameBytes: 2 ** 33 }), RangeError);
  });
});

describe('encoder refusals', () => {
  const base = message({ type: MessageType.MsgApp, from: 'n1', to: 'n2', term: 1 });
  const cases: [string, OutgoingFrame][] = [
    ['an id over 255 bytes', msgFrame({ ...base, from: 'x'.repeat(256) })],
    ['an id of 86 three-byte characters', msgFrame({ ...base, to: '\u20ac'.repeat(86) })],
    ['a lone surrogate', msgFrame({ ...base, from: 'n\ud800' })],
    ['an unsafe number', msgFrame({ ...base, commit: 2 ** 53 })],
    ['a negative context', msgFrame({ ...base, context: -1 })],
    ['a fractional index', msgFrame({ ...base, index: 1.5 })],
    ['an unknown message type', msgFrame({ ...base, type: 99 as MessageType })],
    [
      'an entry with index 0',
      msgFrame({
        ...base,
        entries: [{ index: 0, term: 1, type: EntryType.Normal, data: new Uint8Array(1) }],
      }),
    ],
    [
      'an empty cluster id',
      { type: FrameType.Handshake, handshake: { role: HandshakeRole.Peer, clusterId: '', nodeId: 'n' } },
    ],
    [
      'a peer without id',
      { type: FrameType.Handshake, handshake: { role: HandshakeRole.Peer, clusterId: 'c', nodeId: '' } },
    ],
    [
      'an unknown role',
      { type: FrameType.Handshake, handshake: { role: 7 as HandshakeRole, clusterId: 'c', nodeId: 'n' } },
    ],
  ];
  for (const [name, frame] of cases) {
    test(`${name} throws RangeError and leaves the buffer untouched`, () => {
      const out = new OutBuffer(16);
      encodeHandshakeFrame(out, HELLO.type === FrameType.Handshake ? HELLO.handshake : peerless());
      const before = out.view().slice();
      assert.throws(() => encodeFrame(out, frame), RangeError);
      assert.deepEqual(out.view(), before);
    });
  }

  test('an id of exactly 255 bytes is fine', () => {
    const m = { ...base, from: 'x'.repeat(255), to: '\u20ac'.repeat(85) };
    assert.deepEqual(assertMessageFrame(decodeOne(encodeAll([msgFrame(m)]))), m);
  });

  test('records and a count that cannot match throw', () => {
    const out = new OutBuffer();
    assert.throws(() => encodeRaftMessageFrameWithRecords(out, base, new Uint8Array(31), 1), RangeError);
    const withEntries = {
      ...base,
      entries: [{ index: 1, term: 1, type: EntryType.Normal, data: new Uint8Array(0) }],
    };
    assert.throws(
      () => encodeRaftMessageFrameWithRecords(out, withEntries, new Uint8Array(0), 0),
      RangeError,
    );
  });
});

function peerless(): Handshake {
  return { role: HandshakeRole.Client, clusterId: 'c', nodeId: '' };
}

// ------------------------------------------------------------------ fuzz

/** xorshift32: a fast seeded generator for the fuzz loop. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

const KNOWN_CODES: ReadonlySet<string> = new Set<FrameErrorCode>([
  'ERR_FRAME_TOO_LONG',
  'ERR_FRAME_UNKNOWN_TYPE',
  'ERR_FRAME_UNSUPPORTED_TYPE',
  'ERR_FRAME_HANDSHAKE_EXPECTED',
  'ERR_FRAME_UNEXPECTED_HANDSHAKE',
  'ERR_FRAME_AUTH_EXPECTED',
  'ERR_FRAME_UNEXPECTED_AUTH',
  'ERR_FRAME_BAD_MAGIC',
  'ERR_FRAME_BAD_VERSION',
  'ERR_FRAME_BAD_ROLE',
  'ERR_FRAME_BAD_ID',
  'ERR_FRAME_BAD_UTF8',
  'ERR_FRAME_UNKNOWN_MESSAGE_TYPE',
  'ERR_FRAME_BAD_FLAGS',
  'ERR_FRAME_BAD_NUMBER',
  'ERR_FRAME_TRUNCATED',
  'ERR_FRAME_TRAILING_BYTES',
  'ERR_FRAME_BAD_ENTRY',
]);

describe('fuzz', () => {
  test('120k random and mutated streams: only frames or FrameErrors, no allocation above the limit', () => {
    const next = rng(SEED);
    const below = (n: number): number => next() % n;
    const limits = { maxFrameBytes: 4096, maxEntryPayloadBytes: 256 };
    const corpus = fc
      .sample(fc.array(messageArb, { maxLength: 4 }), { seed: SEED, numRuns: 200 })
      .map((ms) => encodeAll([HELLO, ...ms.map(msgFrame)]));
    const randomBytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => below(256));

    const mutate = (input: Uint8Array): Uint8Array => {
      let b: Uint8Array = input.slice();
      const rounds = 1 + below(4);
      for (let r = 0; r < rounds; r++) {
        const at = b.byteLength === 0 ? 0 : below(b.byteLength);
        switch (below(8)) {
          case 0:
            if (b.byteLength > 0) b[at] = (b[at] as number) ^ (1 << below(8));
            break;
          case 1:
            if (b.byteLength > 0) b[at] = below(256);
            break;
          case 2:
            b = b.slice(0, at);
            break;
          case 3:
            b = concat(b.subarray(0, at), randomBytes(1 + below(16)), b.subarray(at));
            break;
          case 4:
            b = concat(b.subarray(0, at), b.subarray(Math.min(b.byteLength, at + 1 + below(16))));
            break;
          case 5:
            // A length or count field set to something large or off by a little.
            if (at + 4 <= b.byteLength) writeU32(b, at, below(2) === 0 ? next() : below(64));
            break;
          case 6:
            b = concat(b, b.subarray(at, at + below(200)));
            break;
          default:
            if (at + 8 <= b.byteLength) writeU32(b, at + 4, next());
        }
      }
      return b;
    };

    let frames = 0;
    let errors = 0;
    const iterations = 120_000;
    for (let i = 0; i < iterations; i++) {
      const mode = below(100);
      let input: Uint8Array;
      if (mode < 15) input = randomBytes(below(300));
      else if (mode < 30) {
        // A plausible header in front of random bytes.
        const body = randomBytes(below(200));
        input = concat(
          rawFrame(
            [1, 2, 2, 2, below(256)][below(5)] as number,
            body,
            below(4) === 0 ? next() : body.byteLength,
          ),
        );
        if (below(2) === 0) input = concat(encodeAll([HELLO]), input);
      } else input = mutate(corpus[below(corpus.length)] as Uint8Array);

      const decoder = new FrameDecoder({ ...limits, expectHandshake: below(4) !== 0 });
      let at = 0;
      try {
        while (at < input.byteLength || at === 0) {
          const step = below(3) === 0 ? input.byteLength : 1 + below(64);
          decoder.push(input.subarray(at, at + step));
          at += step;
          let got = decoder.next();
          for (; got !== null && !(got instanceof FrameError); got = decoder.next()) {
            frames++;
            assert.ok(
              got.type === FrameType.Handshake ||
                got.type === FrameType.Auth ||
                got.type === FrameType.RaftMessage,
            );
            // Whatever decodes is well formed: it encodes again and decodes to itself (an
            // auth frame behind the handshake that announced it).
            const alone =
              got.type === FrameType.Handshake
                ? { ...got, handshake: { ...got.handshake, authFollows: false } }
                : got;
            const again: Frame[] | Frame | FrameError =
              got.type === FrameType.Auth
                ? decodeChunks([encodeAll([authHelloFrame, got])], limits)
                : decodeOne(encodeAll([alone]), {
                    ...limits,
                    expectHandshake: got.type === FrameType.Handshake,
                  });
            if (got.type === FrameType.Auth) assert.deepEqual(again, [authHelloFrame, got]);
            else assert.deepEqual(again, alone);
          }
          if (got instanceof FrameError) {
            errors++;
            assert.ok(KNOWN_CODES.has(got.code), got.code);
            assert.equal(decoder.next(), got);
            break;
          }
          if (at >= input.byteLength) break;
        }
      } catch (e) {
        const hex = Buffer.from(input).toString('hex');
        throw new Error(`iteration ${i}: ${e instanceof Error ? e.stack : String(e)}\ninput ${hex}`);
      }
      assert.ok(decoder.largestCopyBytes <= limits.maxFrameBytes);
      assert.ok(decoder.bufferedBytes <= input.byteLength);
    }
    // The fuzz reached both outcomes many times (not just the first refusal).
    assert.ok(frames > 10_000, `frames ${frames}`);
    assert.ok(errors > 50_000, `errors ${errors}`);
  });
});
