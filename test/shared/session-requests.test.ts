/**
 * The client codec's session ops (SessionRegister, SessionApply, SessionApplyBatch): the
 * layout round-trips, and a malformed session header is refused with its code, by the
 * decoder (bytes from the wire) and by the encoder (a caller's mistake).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClientFrameError, decodeClientRequest, encodeClientRequest } from '../../src/shared/client-codec.js';
import { readU64, writeU64 } from '../../src/shared/entry-codec.js';
import { OutBuffer } from '../../src/shared/message-codec.js';
import { ClientOp, FRAME_HEADER_BYTES } from '../../src/shared/protocol.js';

const ID = new Uint8Array(16).fill(7);

function header(seq: number, ackBelow: number): Uint8Array {
  const h = new Uint8Array(32);
  h.set(ID, 0);
  writeU64(h, 16, seq);
  writeU64(h, 24, ackBelow);
  return h;
}

/** The body of the frame `encodeClientRequest` writes for `req`. */
function body(req: Parameters<typeof encodeClientRequest>[1]): Uint8Array {
  const out = new OutBuffer(256);
  encodeClientRequest(out, req);
  return out.view().slice(FRAME_HEADER_BYTES);
}

describe('session client requests', () => {
  test('SessionApply, SessionApplyBatch and SessionRegister round-trip', () => {
    const apply = decodeClientRequest(
      body({
        op: ClientOp.SessionApply,
        flags: 0,
        requestId: 9,
        payload: new Uint8Array([1, 2]),
        session: header(5, 3),
      }),
    );
    assert.ok(!(apply instanceof ClientFrameError));
    assert.equal(apply.op, ClientOp.SessionApply);
    assert.deepEqual([...apply.payload], [1, 2]);
    assert.deepEqual(apply.session, header(5, 3));

    const batch = decodeClientRequest(
      body({
        op: ClientOp.SessionApplyBatch,
        flags: 0,
        requestId: 10,
        payload: new Uint8Array(0),
        commands: [new Uint8Array([4]), new Uint8Array(0)],
        session: header(6, 6),
      }),
    );
    assert.ok(!(batch instanceof ClientFrameError));
    assert.deepEqual(
      batch.commands?.map((c) => [...c]),
      [[4], []],
    );
    assert.equal(readU64(batch.session as Uint8Array, 16), 6);

    const reg = decodeClientRequest(
      body({
        op: ClientOp.SessionRegister,
        flags: 0,
        requestId: 11,
        payload: new Uint8Array(0),
        session: ID,
      }),
    );
    assert.ok(!(reg instanceof ClientFrameError));
    assert.deepEqual(reg.session, ID);
  });

  test('a malformed session header is refused with its code', () => {
    const good = body({
      op: ClientOp.SessionApply,
      flags: 0,
      requestId: 1,
      payload: new Uint8Array([1]),
      session: header(5, 3),
    });
    const at = 8; // the session header follows the fixed part of the request
    const cases: [string, (b: Uint8Array) => Uint8Array, string][] = [
      ['zero id', (b) => b.fill(0, at, at + 16), 'ERR_CLIENT_BAD_SESSION'],
      ['seq 0', (b) => b.fill(0, at + 16, at + 24), 'ERR_CLIENT_BAD_SESSION'],
      ['seq above 2^53', (b) => b.fill(0xff, at + 16, at + 24), 'ERR_CLIENT_BAD_SESSION'],
      ['ackBelow 0', (b) => b.fill(0, at + 24, at + 32), 'ERR_CLIENT_BAD_SESSION'],
      ['ackBelow above seq', (b) => b.fill(9, at + 24, at + 25), 'ERR_CLIENT_BAD_SESSION'],
      ['no header', (b) => b.subarray(0, at + 31), 'ERR_CLIENT_TRUNCATED'],
      ['flags', (b) => b.fill(1, 1, 2), 'ERR_CLIENT_BAD_FLAGS'],
    ];
    for (const [name, damage, code] of cases) {
      const r = decodeClientRequest(damage(good.slice()));
      assert.ok(r instanceof ClientFrameError, name);
      assert.equal(r.code, code, name);
    }
    const reg = body({
      op: ClientOp.SessionRegister,
      flags: 0,
      requestId: 1,
      payload: new Uint8Array(0),
      session: ID,
    });
    const longer = new Uint8Array(reg.byteLength + 1);
    longer.set(reg);
    assert.equal((decodeClientRequest(longer) as ClientFrameError).code, 'ERR_CLIENT_BAD_SESSION');
    assert.equal(
      (decodeClientRequest(reg.subarray(0, 20)) as ClientFrameError).code,
      'ERR_CLIENT_BAD_SESSION',
    );
    const batch = body({
      op: ClientOp.SessionApplyBatch,
      flags: 0,
      requestId: 1,
      payload: new Uint8Array(0),
      commands: [new Uint8Array([1])],
      session: header(1, 1),
    });
    const trailing = new Uint8Array(batch.byteLength + 1);
    trailing.set(batch);
    assert.equal((decodeClientRequest(trailing) as ClientFrameError).code, 'ERR_CLIENT_BAD_PAYLOAD');
  });

  test('the encoder refuses a session op without its header, and a header on another op', () => {
    const out = new OutBuffer(64);
    const none = new Uint8Array(0);
    assert.throws(
      () => encodeClientRequest(out, { op: ClientOp.SessionApply, flags: 0, requestId: 1, payload: none }),
      RangeError,
    );
    assert.throws(
      () =>
        encodeClientRequest(out, {
          op: ClientOp.SessionApply,
          flags: 0,
          requestId: 1,
          payload: none,
          session: header(1, 2),
        }),
      /ackBelow/,
    );
    assert.throws(
      () =>
        encodeClientRequest(out, {
          op: ClientOp.Apply,
          flags: 0,
          requestId: 1,
          payload: none,
          session: header(1, 1),
        }),
      /carries no session/,
    );
    assert.equal(out.length, 0, 'nothing written');
  });
});
