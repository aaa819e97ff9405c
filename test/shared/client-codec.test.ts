/**
 * Client frames: round trips of requests of every op and of responses (ok and error)
 * through `FrameDecoder`, the layout pinned against protocol.ts, decoded batches being
 * views, which frame types each kind of connection carries, and random or truncated bodies
 * yielding only typed refusals, never an exception.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  ClientFrameError,
  ClientOp,
  type ClientResponse,
  decodeClientRequest,
  decodeClientResponse,
  encodeClientReadRequest,
  encodeClientRequest,
  encodeClientResponse,
  encodeClientResponseEncoded,
  type ReadConsistencyCode,
} from '../../src/shared/client-codec.js';
import {
  encodeHandshakeFrame,
  type Frame,
  FrameDecoder,
  FrameError,
  type Handshake,
  OutBuffer,
} from '../../src/shared/message-codec.js';
import {
  CLIENT_REQUEST_FIXED_BYTES,
  CLIENT_RESPONSE_FIXED_BYTES,
  FRAME_HEADER_BYTES,
  FrameType,
  HandshakeRole,
  RESERVED_FRAME_TYPES,
} from '../../src/shared/protocol.js';
import { decodeValue, encodeValue, type Value } from '../../src/shared/value-codec.js';

const SEED = 20240611;

function check<Ts extends unknown[]>(prop: fc.IProperty<Ts>, numRuns: number): void {
  fc.assert(prop, { seed: SEED, numRuns, includeErrorInReport: true });
}

const valueArb: fc.Arbitrary<Value> = fc.letrec<{ value: Value }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom<Value>(undefined, null, true, false),
    fc.integer(),
    fc.double(),
    fc.bigInt(),
    fc.string({ unit: 'binary', maxLength: 20 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), tie('value'), {
      maxKeys: 5,
      noNullPrototype: true,
    }),
  ),
})).value;

const requestIdArb = fc.integer({ min: 0, max: 0xffff_ffff });
const textArb = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 });
const utf8 = new TextEncoder();

/** A request to encode, with what its decoded form must show. */
interface RequestCase {
  readonly encode: (out: OutBuffer) => number;
  readonly op: ClientOp;
  readonly flags: number;
  readonly requestId: number;
  readonly payload?: Uint8Array;
  readonly commands?: Uint8Array[];
  readonly query?: Value;
}

const requestArb: fc.Arbitrary<RequestCase> = fc.oneof(
  fc.tuple(requestIdArb, fc.uint8Array({ maxLength: 100 })).map(([requestId, payload]) => ({
    encode: (out: OutBuffer) =>
      encodeClientRequest(out, { op: ClientOp.Apply, flags: 0, requestId, payload }),
    op: ClientOp.Apply,
    flags: 0,
    requestId,
    payload,
  })),
  fc
    .tuple(requestIdArb, fc.array(fc.uint8Array({ maxLength: 30 }), { maxLength: 20 }))
    .map(([requestId, commands]) => ({
      encode: (out: OutBuffer) =>
        encodeClientRequest(out, {
          op: ClientOp.ApplyBatch,
          flags: 0,
          requestId,
          payload: new Uint8Array(0),
          commands,
        }),
      op: ClientOp.ApplyBatch,
      flags: 0,
      requestId,
      commands,
    })),
  fc.tuple(requestIdArb, fc.constantFrom(0, 1, 2), valueArb).map(([requestId, consistency, query]) => ({
    encode: (out: OutBuffer) => encodeClientReadRequest(out, requestId, consistency, query),
    op: ClientOp.Read,
    flags: consistency,
    requestId,
    query,
  })),
  fc.tuple(requestIdArb, fc.constantFrom(ClientOp.Status, ClientOp.Snapshot)).map(([requestId, op]) => ({
    encode: (out: OutBuffer) =>
      encodeClientRequest(out, { op, flags: 0, requestId, payload: new Uint8Array(0) }),
    op,
    flags: 0,
    requestId,
    payload: new Uint8Array(0),
  })),
  fc
    .tuple(
      requestIdArb,
      fc.constantFrom(ClientOp.Transfer, ClientOp.AddPeer, ClientOp.AddLearner, ClientOp.RemovePeer),
      textArb,
    )
    .map(([requestId, op, text]) => {
      const payload = utf8.encode(text);
      return {
        encode: (out: OutBuffer) => encodeClientRequest(out, { op, flags: 0, requestId, payload }),
        op,
        flags: 0,
        requestId,
        payload,
      };
    }),
);

const errorArb = fc.record(
  {
    code: fc.string({ maxLength: 30 }),
    message: fc.string({ unit: 'binary', maxLength: 60 }),
    leaderId: fc.string({ maxLength: 10 }),
    leaderAddress: fc.string({ maxLength: 20 }),
  },
  { requiredKeys: ['code', 'message'], noNullPrototype: true },
);

const responseArb: fc.Arbitrary<ClientResponse> = fc.oneof(
  fc
    .tuple(requestIdArb, valueArb)
    .map(([requestId, value]): ClientResponse => ({ requestId, ok: true, value })),
  fc
    .tuple(requestIdArb, errorArb)
    .map(([requestId, error]): ClientResponse => ({ requestId, ok: false, error })),
);

const PEER_HELLO: Handshake = { role: HandshakeRole.Peer, clusterId: 'c', nodeId: 'n1' };
const CLIENT_HELLO: Handshake = { role: HandshakeRole.Client, clusterId: 'c', nodeId: '' };

/** The handshake frame's bytes. */
function hello(hs: Handshake): Uint8Array {
  const out = new OutBuffer(64);
  encodeHandshakeFrame(out, hs);
  return out.view().slice();
}

/** Every frame (or the error) a decoder yields for `bytes` after the handshake. */
function decodeAll(
  bytes: Uint8Array,
  clientResponses: boolean,
  hs: Handshake,
  split = 0,
): (Frame | FrameError)[] {
  const decoder = new FrameDecoder({ clientResponses });
  const stream = concat(hello(hs), bytes);
  const frames: (Frame | FrameError)[] = [];
  const step = split > 0 ? split : stream.byteLength;
  for (let at = 0; at < stream.byteLength; at += step) {
    decoder.push(stream.subarray(at, at + step));
    for (let f = decoder.next(); f !== null; f = decoder.next()) {
      if (!(f instanceof FrameError) && f.type === FrameType.Handshake) continue;
      frames.push(f);
      if (f instanceof FrameError) return frames;
    }
  }
  return frames;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  // A plain Uint8Array, not a Buffer, so that deepEqual compares bytes only.
  return new Uint8Array(Buffer.concat(parts));
}

/** A frame of `type` around `body`. */
function rawFrame(type: number, body: Uint8Array): Uint8Array {
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  new DataView(header.buffer).setUint32(0, body.byteLength, true);
  header[4] = type;
  return concat(header, body);
}

describe('client requests', () => {
  test('every op round trips through FrameDecoder and decodeClientRequest', () => {
    check(
      fc.property(
        fc.array(requestArb, { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 50 }),
        (cases, split) => {
          const out = new OutBuffer(16);
          let total = 0;
          for (const c of cases) total += c.encode(out);
          assert.equal(total, out.length);
          const frames = decodeAll(out.view(), false, CLIENT_HELLO, split);
          assert.equal(frames.length, cases.length);
          frames.forEach((f, i) => {
            const c = cases[i] as RequestCase;
            assert.ok(!(f instanceof FrameError), String(f));
            assert.equal(f.type, FrameType.ClientRequest);
            const req = decodeClientRequest(f.body);
            assert.ok(!(req instanceof ClientFrameError), String(req));
            assert.equal(req.op, c.op);
            assert.equal(req.flags, c.flags);
            assert.equal(req.requestId, c.requestId);
            if (c.payload !== undefined) assert.deepEqual(new Uint8Array(req.payload), c.payload);
            if (c.commands !== undefined) {
              assert.deepEqual(
                req.commands?.map((x) => new Uint8Array(x)),
                c.commands.map((x) => new Uint8Array(x)),
              );
            } else assert.equal(req.commands, undefined);
            if (c.op === ClientOp.Read) {
              assert.deepEqual(decodeValue(req.payload, 0, req.payload.byteLength), c.query);
            }
            // Encoding the decoded request gives the same frame again.
            if (c.op !== ClientOp.Read) {
              const again = new OutBuffer(16);
              encodeClientRequest(again, req);
              assert.deepEqual(again.view().subarray(FRAME_HEADER_BYTES), f.body);
            }
          });
        },
      ),
      300,
    );
  });

  test('pinned layout of an ApplyBatch request; commands are views of the body', () => {
    const out = new OutBuffer(16);
    encodeClientRequest(out, {
      op: ClientOp.ApplyBatch,
      flags: 0,
      requestId: 0x01020304,
      payload: new Uint8Array(0),
      commands: [Uint8Array.of(7), Uint8Array.of(8, 9)],
    });
    const body = out.view().subarray(FRAME_HEADER_BYTES);
    assert.deepEqual(
      [...out.view()],
      [
        ...[23, 0, 0, 0, FrameType.ClientRequest],
        ...[ClientOp.ApplyBatch, 0, 0, 0, 4, 3, 2, 1],
        ...[2, 0, 0, 0],
        ...[1, 0, 0, 0, 7],
        ...[2, 0, 0, 0, 8, 9],
      ],
    );
    const req = decodeClientRequest(body);
    assert.ok(!(req instanceof ClientFrameError));
    assert.equal(req.payload.buffer, body.buffer);
    assert.equal(req.payload.byteOffset, body.byteOffset + CLIENT_REQUEST_FIXED_BYTES);
    for (const c of req.commands ?? []) assert.equal(c.buffer, body.buffer);
  });

  test('malformed bodies are refused with their code', () => {
    const head = (op: number, flags = 0, reserved = 0): number[] => [op, flags, reserved, 0, 1, 0, 0, 0];
    const cases: [string, number[], string][] = [
      ['short', [1, 0, 0], 'ERR_CLIENT_TRUNCATED'],
      ['unknown op', head(13), 'ERR_CLIENT_UNKNOWN_OP'],
      ['op 255', head(255), 'ERR_CLIENT_UNKNOWN_OP'],
      ['empty add-learner', head(ClientOp.AddLearner), 'ERR_CLIENT_BAD_PAYLOAD'],
      ['op 0', head(0), 'ERR_CLIENT_UNKNOWN_OP'],
      ['read consistency 3', head(ClientOp.Read, 3), 'ERR_CLIENT_BAD_FLAGS'],
      ['flags on apply', head(ClientOp.Apply, 1), 'ERR_CLIENT_BAD_FLAGS'],
      ['reserved', head(ClientOp.Apply, 0, 1), 'ERR_CLIENT_RESERVED'],
      ['status with payload', [...head(ClientOp.Status), 1], 'ERR_CLIENT_BAD_PAYLOAD'],
      ['empty transfer', head(ClientOp.Transfer), 'ERR_CLIENT_BAD_PAYLOAD'],
      ['transfer not UTF-8', [...head(ClientOp.Transfer), 0xff], 'ERR_CLIENT_BAD_UTF8'],
      ['batch without count', head(ClientOp.ApplyBatch), 'ERR_CLIENT_TRUNCATED'],
      ['batch count lies', [...head(ClientOp.ApplyBatch), 0xff, 0xff, 0xff, 0xff], 'ERR_CLIENT_TRUNCATED'],
      [
        'batch command too long',
        [...head(ClientOp.ApplyBatch), 1, 0, 0, 0, 9, 0, 0, 0, 1],
        'ERR_CLIENT_TRUNCATED',
      ],
      ['bytes after the batch', [...head(ClientOp.ApplyBatch), 0, 0, 0, 0, 1], 'ERR_CLIENT_BAD_PAYLOAD'],
    ];
    for (const [name, bytes, code] of cases) {
      const got = decodeClientRequest(Uint8Array.from(bytes));
      assert.ok(got instanceof ClientFrameError, name);
      assert.equal(got.code, code, name);
    }
  });

  test('encoders refuse what the format cannot carry, leaving the buffer unchanged', () => {
    const out = new OutBuffer(16);
    const none = new Uint8Array(0);
    assert.throws(
      () => encodeClientRequest(out, { op: 99 as ClientOp, flags: 0, requestId: 1, payload: none }),
      RangeError,
    );
    assert.throws(
      () => encodeClientRequest(out, { op: ClientOp.Apply, flags: 1, requestId: 1, payload: none }),
      RangeError,
    );
    assert.throws(
      () => encodeClientRequest(out, { op: ClientOp.Apply, flags: 0, requestId: -1, payload: none }),
      RangeError,
    );
    assert.throws(
      () => encodeClientRequest(out, { op: ClientOp.Apply, flags: 0, requestId: 2 ** 32, payload: none }),
      RangeError,
    );
    assert.throws(
      () =>
        encodeClientRequest(out, { op: ClientOp.Status, flags: 0, requestId: 1, payload: Uint8Array.of(1) }),
      RangeError,
    );
    assert.throws(
      () => encodeClientRequest(out, { op: ClientOp.Transfer, flags: 0, requestId: 1, payload: none }),
      RangeError,
    );
    assert.throws(
      () =>
        encodeClientRequest(out, {
          op: ClientOp.ApplyBatch,
          flags: 0,
          requestId: 1,
          payload: Uint8Array.of(1),
        }),
      RangeError,
    );
    assert.throws(() => encodeClientReadRequest(out, 1, 3 as ReadConsistencyCode, null), RangeError);
    assert.throws(() => encodeClientReadRequest(out, 1, 0, (() => 1) as unknown as Value), TypeError);
    assert.throws(
      () => encodeClientResponse(out, { requestId: 1, ok: true, value: Symbol('x') as unknown as Value }),
      TypeError,
    );
    assert.equal(out.length, 0);
  });

  test('random and truncated bodies only yield requests or typed refusals', () => {
    check(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 1, max: 8 }), (bytes, op) => {
        // Bias toward a valid op so the payload checks are reached, not only the op check.
        const body = bytes.byteLength > 0 ? concat(Uint8Array.of(op), bytes.subarray(1)) : bytes;
        for (const b of [bytes, body]) {
          const got = decodeClientRequest(b);
          if (got instanceof ClientFrameError) assert.match(got.code, /^ERR_CLIENT_/);
          else {
            const again = new OutBuffer(16);
            encodeClientRequest(again, got);
            assert.deepEqual(again.view().subarray(FRAME_HEADER_BYTES), b);
          }
        }
      }),
      2000,
    );
    check(
      fc.property(requestArb, fc.nat(), (c, cut) => {
        const out = new OutBuffer(16);
        c.encode(out);
        const body = out.view().subarray(FRAME_HEADER_BYTES);
        const truncated = body.subarray(0, cut % body.byteLength);
        const got = decodeClientRequest(truncated);
        // A cut Apply, Read or Transfer is still a well-formed request with a shorter
        // payload (the frame carries the length); the rest must refuse.
        if (got instanceof ClientFrameError) assert.match(got.code, /^ERR_CLIENT_/);
        else
          assert.ok(
            [
              ClientOp.Apply,
              ClientOp.Read,
              ClientOp.Transfer,
              ClientOp.AddPeer,
              ClientOp.AddLearner,
              ClientOp.RemovePeer,
            ].includes(got.op),
          );
      }),
      1000,
    );
  });
});

describe('client responses', () => {
  test('ok and error responses round trip through FrameDecoder', () => {
    check(
      fc.property(
        fc.array(responseArb, { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 50 }),
        (resps, split) => {
          const out = new OutBuffer(16);
          for (const r of resps) encodeClientResponse(out, r);
          const frames = decodeAll(out.view(), true, PEER_HELLO, split);
          assert.equal(frames.length, resps.length);
          frames.forEach((f, i) => {
            assert.ok(!(f instanceof FrameError), String(f));
            assert.equal(f.type, FrameType.ClientResponse);
            const got = decodeClientResponse(f.body);
            assert.ok(!(got instanceof ClientFrameError), String(got));
            assert.deepEqual(got, resps[i]);
          });
        },
      ),
      300,
    );
  });

  test('a response whose value is passed on encoded equals the one encoded from the value', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.oneof(
          fc.string(),
          fc.integer(),
          fc.constant(null),
          fc.array(fc.string(), { maxLength: 5 }),
          fc.dictionary(fc.string(), fc.integer()),
        ),
        fc.nat(7),
        (requestId, value: Value, pad) => {
          const direct = new OutBuffer();
          encodeClientResponse(direct, { requestId, ok: true, value });
          // The value's bytes inside a larger buffer, as a session answer carries them.
          const inner = new OutBuffer();
          inner.append(pad);
          encodeValue(value, inner);
          const passed = new OutBuffer();
          const n = encodeClientResponseEncoded(passed, requestId, inner.bytes, pad, inner.length);
          assert.equal(n, direct.length);
          assert.deepEqual(passed.view(), direct.view());
        },
      ),
      { numRuns: 300 },
    );
  });

  test('pinned layout of an error response', () => {
    const out = new OutBuffer(16);
    encodeClientResponse(out, { requestId: 5, ok: false, error: { code: 'E', message: 'm' } });
    const body = out.view().subarray(FRAME_HEADER_BYTES);
    assert.deepEqual([...body.subarray(0, CLIENT_RESPONSE_FIXED_BYTES)], [1, 0, 0, 0, 5, 0, 0, 0]);
    assert.deepEqual(decodeValue(body, CLIENT_RESPONSE_FIXED_BYTES, body.byteLength), {
      code: 'E',
      message: 'm',
    });
  });

  test('an error record carries only its own fields', () => {
    const out = new OutBuffer(16);
    const error = Object.assign(new Error('boom'), { code: 'ERR_X', leaderId: 'n2', stack: 'ignored' });
    encodeClientResponse(out, { requestId: 1, ok: false, error });
    const got = decodeClientResponse(out.view().subarray(FRAME_HEADER_BYTES));
    assert.deepEqual(got, {
      requestId: 1,
      ok: false,
      error: { code: 'ERR_X', message: 'boom', leaderId: 'n2' },
    });
  });

  test('malformed bodies are refused with their code', () => {
    const valueBytes = (v: Value): number[] => {
      const o = new OutBuffer(16);
      encodeValue(v, o);
      return [...o.view()];
    };
    const cases: [string, number[], string][] = [
      ['short', [0, 0, 0, 0, 1], 'ERR_CLIENT_TRUNCATED'],
      ['status 2', [2, 0, 0, 0, 1, 0, 0, 0, ...valueBytes(null)], 'ERR_CLIENT_BAD_STATUS'],
      ['reserved', [0, 0, 1, 0, 1, 0, 0, 0, ...valueBytes(null)], 'ERR_CLIENT_RESERVED'],
      ['no value', [0, 0, 0, 0, 1, 0, 0, 0], 'ERR_CLIENT_BAD_VALUE'],
      ['bad tag', [0, 0, 0, 0, 1, 0, 0, 0, 0xee], 'ERR_CLIENT_BAD_VALUE'],
      ['error not an object', [1, 0, 0, 0, 1, 0, 0, 0, ...valueBytes('x')], 'ERR_CLIENT_BAD_ERROR'],
      [
        'error without message',
        [1, 0, 0, 0, 1, 0, 0, 0, ...valueBytes({ code: 'E' })],
        'ERR_CLIENT_BAD_ERROR',
      ],
      [
        'leaderId not a string',
        [1, 0, 0, 0, 1, 0, 0, 0, ...valueBytes({ code: 'E', message: 'm', leaderId: 1 })],
        'ERR_CLIENT_BAD_ERROR',
      ],
    ];
    for (const [name, bytes, code] of cases) {
      const got = decodeClientResponse(Uint8Array.from(bytes));
      assert.ok(got instanceof ClientFrameError, name);
      assert.equal(got.code, code, name);
    }
  });

  test('random and truncated bodies only yield responses or typed refusals', () => {
    check(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.constantFrom(0, 1), (bytes, status) => {
        const body =
          bytes.byteLength >= 4 ? concat(Uint8Array.of(status, 0, 0, 0), bytes.subarray(4)) : bytes;
        for (const b of [bytes, body]) {
          const got = decodeClientResponse(b);
          if (got instanceof ClientFrameError) assert.match(got.code, /^ERR_CLIENT_/);
          else assert.ok(got.ok === true || typeof got.error.code === 'string');
        }
      }),
      2000,
    );
    check(
      fc.property(responseArb, fc.nat(), (r, cut) => {
        const out = new OutBuffer(16);
        encodeClientResponse(out, r);
        const body = out.view().subarray(FRAME_HEADER_BYTES);
        // A value-codec value never ends early and still decodes: every cut is refused.
        const got = decodeClientResponse(body.subarray(0, cut % body.byteLength));
        assert.ok(got instanceof ClientFrameError);
      }),
      1000,
    );
  });
});

describe('which connection carries which frames', () => {
  const request = rawFrame(FrameType.ClientRequest, new Uint8Array(CLIENT_REQUEST_FIXED_BYTES));
  const response = rawFrame(FrameType.ClientResponse, new Uint8Array(CLIENT_RESPONSE_FIXED_BYTES));
  const raft = rawFrame(FrameType.RaftMessage, new Uint8Array(3));

  const codeOf = (frames: (Frame | FrameError)[]): string =>
    frames.length === 0
      ? 'none'
      : frames[0] instanceof FrameError
        ? frames[0].code
        : `type ${frames[0]?.type}`;

  test('client frames are no longer reserved', () => {
    assert.ok(!(RESERVED_FRAME_TYPES as readonly number[]).includes(FrameType.ClientRequest));
    assert.ok(!(RESERVED_FRAME_TYPES as readonly number[]).includes(FrameType.ClientResponse));
  });

  test('a peer connection refuses client frames', () => {
    assert.equal(codeOf(decodeAll(request, false, PEER_HELLO)), 'ERR_FRAME_UNSUPPORTED_TYPE');
    assert.equal(codeOf(decodeAll(response, false, PEER_HELLO)), 'ERR_FRAME_UNSUPPORTED_TYPE');
  });

  test('a client connection (accepting side) carries requests only', () => {
    assert.equal(codeOf(decodeAll(request, false, CLIENT_HELLO)), `type ${FrameType.ClientRequest}`);
    assert.equal(codeOf(decodeAll(raft, false, CLIENT_HELLO)), 'ERR_FRAME_UNSUPPORTED_TYPE');
    assert.equal(codeOf(decodeAll(response, false, CLIENT_HELLO)), 'ERR_FRAME_UNSUPPORTED_TYPE');
  });

  test("a client's decoder carries responses only", () => {
    assert.equal(codeOf(decodeAll(response, true, PEER_HELLO)), `type ${FrameType.ClientResponse}`);
    assert.equal(codeOf(decodeAll(raft, true, PEER_HELLO)), 'ERR_FRAME_UNSUPPORTED_TYPE');
    assert.equal(codeOf(decodeAll(request, true, PEER_HELLO)), 'ERR_FRAME_UNSUPPORTED_TYPE');
  });

  test('a client frame is refused at its header when over maxFrameBytes', () => {
    const decoder = new FrameDecoder({ clientResponses: true });
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    new DataView(header.buffer).setUint32(0, decoder.maxFrameBytes, true);
    header[4] = FrameType.ClientResponse;
    decoder.push(hello(PEER_HELLO));
    decoder.push(header);
    assert.equal((decoder.next() as Frame).type, FrameType.Handshake);
    const got = decoder.next();
    assert.ok(got instanceof FrameError);
    assert.equal(got.code, 'ERR_FRAME_TOO_LONG');
  });
});
