/**
 * The client session table (`client-sessions.ts`), its snapshot file (`session-file.ts`)
 * and the session entry codec (`session-codec.ts`): dedupe, the forgotten point, eviction
 * order, expiry by the leader times in the log, and strict decoding.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32c } from '../../src/shared/crc32c.js';
import { writeU32, writeU64 } from '../../src/shared/entry-codec.js';
import {
  SESSION_ENTRY_HEADER_BYTES,
  SESSION_KIND_OFFSET,
  SESSION_LEADER_TIME_OFFSET,
  SESSION_RESERVED_OFFSET,
} from '../../src/shared/protocol.js';
import {
  decodeSessionEntry,
  encodeSessionEntry,
  SessionEntryError,
  SessionEntryKind,
} from '../../src/shared/session-codec.js';
import {
  ClientSessions,
  keyOf,
  MAX_RESULTS_PER_SESSION,
  PENDING,
} from '../../src/workers/fsm/client-sessions.js';
import {
  decodeSessionFile,
  encodeSessionFile,
  SessionFileError,
} from '../../src/workers/fsm/session-file.js';

/** A client id whose bytes are all `n` (n > 0). */
function id(n: number): Uint8Array {
  return new Uint8Array(16).fill(n);
}

/** A 32-byte request header: id, seq, ackBelow. */
function header(client: Uint8Array, seq: number, ackBelow: number): Uint8Array {
  const h = new Uint8Array(32);
  h.set(client, 0);
  writeU64(h, 16, seq);
  writeU64(h, 24, ackBelow);
  return h;
}

function table(maxSessions = 100, timeoutMs = 1000): ClientSessions {
  return new ClientSessions({ maxSessions, timeoutMs });
}

/** Begins and completes write `seq` of `client` with `result`; returns the decision's kind. */
function write(
  t: ClientSessions,
  client: Uint8Array,
  seq: number,
  ackBelow: number,
  timeMs: number,
  result = seq,
) {
  const d = t.begin(client, seq, ackBelow, timeMs);
  if (d.kind === 'apply') t.complete(d.session, seq, result);
  return d;
}

describe('client session table', () => {
  test('a write applies once; its retry is answered with the stored result', () => {
    const t = table();
    t.register(id(1), 10);
    assert.equal(write(t, id(1), 1, 1, 11, 100).kind, 'apply');
    const again = t.begin(id(1), 1, 1, 12);
    assert.equal(again.kind, 'duplicate');
    assert.equal(again.kind === 'duplicate' ? again.result : null, 100);
    // A retry seen before the first copy's result is known: PENDING, answered later.
    const d = t.begin(id(1), 2, 1, 13);
    assert.equal(d.kind, 'apply');
    const early = t.begin(id(1), 2, 1, 13);
    assert.equal(early.kind === 'duplicate' ? early.result : null, PENDING);
  });

  test('an unregistered client is refused, never applied', () => {
    const t = table();
    const d = t.begin(id(2), 1, 1, 5);
    assert.equal(d.kind, 'expired');
    assert.match(d.kind === 'expired' ? d.message : '', /unknown/);
  });

  test('results below ackBelow are forgotten; a write below the floor is refused', () => {
    const t = table();
    t.register(id(1), 1);
    for (let seq = 1; seq <= 3; seq++) write(t, id(1), seq, 1, 1);
    write(t, id(1), 4, 3, 2); // the client has had 1 and 2 answered
    const s = t.get(keyOf(id(1)));
    assert.deepEqual([...(s?.results.keys() ?? [])], [3, 4]);
    assert.equal(s?.floorSeq, 3);
    const late = t.begin(id(1), 2, 3, 3);
    assert.equal(late.kind, 'expired');
    assert.match(late.kind === 'expired' ? late.message : '', /forgotten/);
    // A stale ackBelow never lowers the floor.
    assert.equal(t.begin(id(1), 2, 1, 3).kind, 'expired');
  });

  test('a client that never acknowledges keeps at most MAX_RESULTS_PER_SESSION results', () => {
    const t = table();
    t.register(id(1), 1);
    for (let seq = 1; seq <= MAX_RESULTS_PER_SESSION + 10; seq++) write(t, id(1), seq, 1, 1);
    const s = t.get(keyOf(id(1)));
    assert.equal(s?.results.size, MAX_RESULTS_PER_SESSION);
    assert.equal(s?.floorSeq, 11);
    assert.equal(t.begin(id(1), 10, 1, 1).kind, 'expired');
    assert.equal(t.begin(id(1), 11, 1, 1).kind, 'duplicate');
  });

  test('beyond maxSessions the least recently written session is evicted, in log order', () => {
    const t = table(3);
    t.register(id(1), 1);
    t.register(id(2), 2);
    t.register(id(3), 3);
    write(t, id(1), 1, 1, 4); // 1 is now the most recent; 2 the least
    t.register(id(4), 5);
    assert.deepEqual(
      [...t.values()].map((s) => s.clientId[0]),
      [3, 1, 4],
    );
    assert.equal(t.begin(id(2), 1, 1, 6).kind, 'expired');
    // Registering an open session refreshes it rather than adding one.
    t.register(id(3), 7);
    assert.deepEqual(
      [...t.values()].map((s) => s.clientId[0]),
      [1, 4, 3],
    );
  });

  test('expiry follows the leader times in the log, never going back', () => {
    const t = table(100, 1000);
    t.register(id(1), 1000);
    t.register(id(2), 1500);
    // A leader whose clock is behind: time stays at the largest seen.
    write(t, id(2), 1, 1, 1200);
    assert.equal(t.clockMs, 1500);
    assert.equal(t.get(keyOf(id(2)))?.lastActiveMs, 1500);
    // 2000 is exactly 1000 after session 1's last write: not yet expired.
    t.register(id(3), 2000);
    assert.notEqual(t.get(keyOf(id(1))), undefined);
    t.register(id(3), 2001);
    assert.equal(t.get(keyOf(id(1))), undefined, 'idle for more than the timeout');
    assert.equal(t.begin(id(1), 1, 1, 2001).kind, 'expired');
    assert.notEqual(t.get(keyOf(id(2))), undefined);
  });
});

describe('client session file', () => {
  function sample(): ClientSessions {
    const t = table(10, 60_000);
    t.register(id(1), 100);
    t.register(id(2), 200);
    write(t, id(1), 1, 1, 300, 7);
    const d = t.begin(id(1), 2, 1, 300);
    if (d.kind === 'apply') t.complete(d.session, 2, { error: 'bad command', n: [1, 2n, 'x'] });
    write(t, id(2), 5, 5, 400, 9);
    return t;
  }

  test('round trip keeps the sessions, their order, floors and results', () => {
    const t = sample();
    const bytes = encodeSessionFile(t);
    const back = decodeSessionFile(bytes, 'test');
    assert.equal(back.clockMs, 400);
    const restored = table(10, 60_000);
    restored.replace(back.clockMs, back.sessions);
    assert.deepEqual(
      [...restored.values()].map((s) => ({
        id: s.clientId[0],
        at: s.lastActiveMs,
        floor: s.floorSeq,
        r: [...s.results],
      })),
      [
        {
          id: 1,
          at: 300,
          floor: 1,
          r: [
            [1, 7],
            [2, { error: 'bad command', n: [1, 2n, 'x'] }],
          ],
        },
        { id: 2, at: 400, floor: 5, r: [[5, 9]] },
      ],
    );
    // The same table encodes to the same bytes (every replica's snapshot agrees).
    assert.deepEqual(encodeSessionFile(restored), bytes);
    assert.equal(restored.begin(id(1), 2, 1, 500).kind, 'duplicate');
  });

  test('every flipped byte and every truncation is refused', () => {
    const bytes = encodeSessionFile(sample());
    for (let i = 0; i < bytes.byteLength; i++) {
      const bad = bytes.slice();
      bad[i] = (bad[i] as number) ^ 0x10;
      assert.throws(() => decodeSessionFile(bad, 'flip'), SessionFileError, `byte ${i}`);
    }
    for (let n = 0; n < bytes.byteLength; n++) {
      assert.throws(() => decodeSessionFile(bytes.subarray(0, n), 'cut'), SessionFileError, `${n} bytes`);
    }
  });

  test('well-checksummed but impossible contents are refused with the reason', () => {
    /** The sample file after `edit`, its CRC recomputed so that only the edit is wrong. */
    const edited = (edit: (b: Uint8Array) => void): Uint8Array => {
      const b = encodeSessionFile(sample()).slice();
      edit(b);
      writeU32(b, b.byteLength - 4, crc32c(b.subarray(0, b.byteLength - 4)));
      return b;
    };
    assert.doesNotThrow(() =>
      decodeSessionFile(
        edited(() => {}),
        'ok',
      ),
    );
    // The first session (client 1) starts after the 24-byte header; its floor is at +24.
    assert.throws(
      () =>
        decodeSessionFile(
          edited((b) => writeU64(b, 24 + 24, 2)),
          'x',
        ),
      /below the floor/,
    );
    const secondId = (b: Uint8Array): number => Buffer.from(b).indexOf(Buffer.from(id(2)));
    assert.throws(
      () =>
        decodeSessionFile(
          edited((b) => b.set(id(1), secondId(b))),
          'x',
        ),
      /appears twice/,
    );
    assert.throws(
      () =>
        decodeSessionFile(
          edited((b) => (b[4] = 2)),
          'x',
        ),
      /version 2/,
    );
    assert.throws(
      () =>
        decodeSessionFile(
          edited((b) => (b[20] = 1)),
          'x',
        ),
      /reserved/,
    );
    // Session 1 active after the table's clock (400).
    assert.throws(
      () =>
        decodeSessionFile(
          edited((b) => writeU64(b, 24 + 16, 500)),
          'x',
        ),
      /clock/,
    );
    const pending = table();
    pending.register(id(1), 1);
    pending.begin(id(1), 1, 1, 1);
    assert.throws(() => encodeSessionFile(pending), /still being applied/);
  });
});

describe('session entry codec', () => {
  test('round trip of a command, a batch and a registration', () => {
    const cmd = encodeSessionEntry(
      SessionEntryKind.Command,
      header(id(3), 7, 5),
      1234,
      new Uint8Array([9, 8]),
    );
    const d = decodeSessionEntry(cmd);
    assert.ok(!(d instanceof SessionEntryError));
    assert.deepEqual(
      { kind: d.kind, id: d.clientId[0], seq: d.seq, ack: d.ackBelow, t: d.leaderTimeMs, body: [...d.body] },
      { kind: SessionEntryKind.Command, id: 3, seq: 7, ack: 5, t: 1234, body: [9, 8] },
    );
    const reg = decodeSessionEntry(
      encodeSessionEntry(SessionEntryKind.Register, id(4), 99, new Uint8Array(0)),
    );
    assert.ok(!(reg instanceof SessionEntryError));
    assert.equal(reg.seq, 0);
    assert.equal(reg.body.byteLength, 0);
  });

  test('malformed payloads are refused', () => {
    const good = encodeSessionEntry(SessionEntryKind.Command, header(id(3), 7, 5), 1234, new Uint8Array([1]));
    // Each case damages a copy of `good` in place; `short` cuts it instead.
    const cases: [string, (b: Uint8Array) => void][] = [
      ['kind 0', (b) => b.fill(0, SESSION_KIND_OFFSET, SESSION_KIND_OFFSET + 1)],
      ['kind 4', (b) => b.fill(4, SESSION_KIND_OFFSET, SESSION_KIND_OFFSET + 1)],
      ['reserved', (b) => b.fill(1, SESSION_RESERVED_OFFSET + 6, SESSION_RESERVED_OFFSET + 7)],
      ['zero id', (b) => b.fill(0, 0, 16)],
      ['seq 0', (b) => writeU64(b, 16, 0)],
      ['ackBelow 0', (b) => writeU64(b, 24, 0)],
      ['ackBelow above seq', (b) => writeU64(b, 24, 8)],
      ['seq above 2^53', (b) => b.fill(0xff, 16, 24)],
      ['time above 2^53', (b) => b.fill(0xff, SESSION_LEADER_TIME_OFFSET, SESSION_LEADER_TIME_OFFSET + 8)],
    ];
    assert.ok(
      decodeSessionEntry(good.subarray(0, SESSION_ENTRY_HEADER_BYTES - 1)) instanceof SessionEntryError,
    );
    for (const [name, damage] of cases) {
      const bad = good.slice();
      damage(bad);
      const r = decodeSessionEntry(bad);
      assert.ok(r instanceof SessionEntryError, name);
    }
    const reg = encodeSessionEntry(SessionEntryKind.Register, id(4), 99, new Uint8Array(0));
    const withBody = new Uint8Array(reg.byteLength + 1);
    withBody.set(reg);
    assert.ok(decodeSessionEntry(withBody) instanceof SessionEntryError, 'a register with a body');
    const withSeq = reg.slice();
    writeU64(withSeq, 16, 1);
    assert.ok(decodeSessionEntry(withSeq) instanceof SessionEntryError, 'a register with a seq');
    assert.throws(
      () => encodeSessionEntry(SessionEntryKind.Command, id(1), 1, new Uint8Array(0)),
      RangeError,
    );
  });
});
