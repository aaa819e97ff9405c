/**
 * MemoryStorage against an array model, with objects released (`releaseObjects`): every
 * lookup answers as if nothing had been released, except that a released entry comes
 * back as a new object whose payload is the stand-in, with the real size.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  EMPTY_SNAPSHOT,
  hasReleasedPayload,
  isGap,
  isReleasedPayload,
  MemoryStorage,
  StorageGap,
} from '../../src/raft/storage.js';
import { EMPTY_CONF, type Entry, EntryType } from '../../src/raft/types.js';

type Op =
  | { kind: 'append'; back: number; n: number; termBump: number; sizes: number[]; conf: boolean[] }
  | { kind: 'release'; ahead: number; maxBytes: number; beyond: number }
  | { kind: 'compact'; ahead: number }
  | { kind: 'snapshot'; skip: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('append' as const),
    back: fc.nat(5),
    n: fc.integer({ min: 1, max: 40 }),
    termBump: fc.nat(2),
    sizes: fc.array(fc.nat(300), { minLength: 40, maxLength: 40 }),
    conf: fc.array(fc.boolean(), { minLength: 40, maxLength: 40 }),
  }),
  fc.record({
    kind: fc.constant('release' as const),
    ahead: fc.nat(60),
    maxBytes: fc.oneof(fc.constant(Number.POSITIVE_INFINITY), fc.nat(3000)),
    beyond: fc.nat(30),
  }),
  fc.record({ kind: fc.constant('compact' as const), ahead: fc.nat(60) }),
  fc.record({ kind: fc.constant('snapshot' as const), skip: fc.integer({ min: 1, max: 30 }) }),
);

test('MemoryStorage with released objects answers like an array of entries', () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const s = new MemoryStorage(EMPTY_SNAPSHOT);
      // The model: every entry ever appended and still held, by index.
      let prev = 0;
      let prevTerm = 0;
      let model: Entry[] = [];
      let term = 1;
      const last = () => prev + model.length;
      for (const o of ops) {
        if (o.kind === 'append') {
          const first = Math.max(prev + 1, last() + 1 - o.back);
          term += o.termBump;
          const ents: Entry[] = [];
          for (let k = 0; k < o.n; k++) {
            const conf = o.conf[k] === true;
            ents.push({
              index: first + k,
              term,
              type: conf ? EntryType.ConfChange : EntryType.Normal,
              data: new Uint8Array(o.sizes[k] as number).fill(7),
            });
          }
          s.append(ents);
          model = model.slice(0, first - prev - 1).concat(ents);
        } else if (o.kind === 'release') {
          const limit = prev + o.ahead + o.beyond;
          s.releaseObjects(prev + o.ahead, o.maxBytes, limit);
          // Within the byte bound, or released all it may.
          if (s.heldPayloadBytes() > o.maxBytes) {
            for (let i = prev + 1; i <= Math.min(limit, last()); i++) {
              const e = (s.entries(i, i + 1, 0) as Entry[])[0] as Entry;
              assert.ok(isReleasedPayload(e.data) || e.type === EntryType.ConfChange, `entry ${i} held`);
            }
          }
        } else if (o.kind === 'compact') {
          const at = Math.min(last(), prev + o.ahead);
          if (at <= prev) continue;
          s.createSnapshot(at, EMPTY_CONF);
          const t = s.term(at);
          s.compact(at);
          model = model.slice(at - prev);
          prev = at;
          prevTerm = t as number;
        } else {
          const at = last() + o.skip;
          term += 1;
          s.applySnapshot({ index: at, term, conf: EMPTY_CONF });
          model = [];
          prev = at;
          prevTerm = term;
        }
        // Every lookup against the model.
        assert.equal(s.firstIndex(), prev + 1);
        assert.equal(s.lastIndex(), last());
        assert.equal(s.term(prev), prevTerm);
        if (prev > 0) assert.equal(s.term(prev - 1), StorageGap.Compacted);
        assert.equal(s.term(last() + 1), StorageGap.Unavailable);
        for (const e of model) assert.equal(s.term(e.index), e.term);
        // Asked again from where each answer stopped: released and held entries come in
        // separate answers.
        const all: Entry[] = [];
        while (all.length < model.length) {
          const got = s.entries(prev + 1 + all.length, last() + 1, Number.MAX_SAFE_INTEGER);
          assert.ok(!isGap(got));
          assert.ok(got.length > 0);
          const released = isReleasedPayload((got[0] as Entry).data);
          for (const e of got) assert.equal(isReleasedPayload(e.data), released);
          all.push(...got);
        }
        assert.equal(all.length, model.length);
        // The held bytes: every held object's payload, but for configuration changes kept
        // below the released point.
        let heldAll = 0;
        let heldPlain = 0;
        for (let k = 0; k < model.length; k++) {
          if (all[k] !== model[k]) continue;
          const bytes = (model[k] as Entry).data.byteLength;
          heldAll += bytes;
          if ((model[k] as Entry).type !== EntryType.ConfChange) heldPlain += bytes;
        }
        assert.ok(s.heldPayloadBytes() >= heldPlain && s.heldPayloadBytes() <= heldAll);
        for (let k = 0; k < model.length; k++) {
          const got = all[k] as Entry;
          const want = model[k] as Entry;
          assert.equal(got.index, want.index);
          assert.equal(got.term, want.term);
          assert.equal(got.type, want.type);
          assert.equal(got.data.byteLength, want.data.byteLength);
          if (got !== want) {
            // Released: a stand-in, never a configuration change.
            assert.ok(isReleasedPayload(got.data));
            assert.notEqual(got.type, EntryType.ConfChange);
          }
        }
        assert.deepEqual(
          s.confEntries().map((e) => e.index),
          model.filter((e) => e.type === EntryType.ConfChange).map((e) => e.index),
        );
      }
    }),
    { numRuns: 300 },
  );
});

test('releaseObjects drops the objects up to the index and entries() honours maxBytes with real sizes', () => {
  const s = new MemoryStorage(EMPTY_SNAPSHOT);
  const ents: Entry[] = [];
  for (let i = 1; i <= 100; i++) {
    ents.push({ index: i, term: 1, type: EntryType.Normal, data: new Uint8Array(100).fill(i) });
  }
  s.append(ents);
  assert.equal(s.heldObjects(), 100);
  s.releaseObjects(60);
  assert.equal(s.heldObjects(), 40);
  // 124 bytes an entry (100 + the 24-byte overhead): 1000 bytes hold 8 of them.
  const held = s.entries(61, 101, 1000);
  assert.ok(!isGap(held));
  assert.equal(held.length, 8);
  assert.equal(held[0], ents[60]);
  assert.ok(!hasReleasedPayload(held));
  // An answer that starts among released entries stops where the held ones begin.
  const got = s.entries(55, 101, 1000);
  assert.ok(!isGap(got));
  assert.equal(got.length, 6);
  assert.ok(got.every((e) => isReleasedPayload(e.data)));
  assert.deepEqual(
    got.map((e) => e.index),
    [55, 56, 57, 58, 59, 60],
  );
  // A payload stand-in larger than any seen before still reads as released.
  s.append([{ index: 101, term: 1, type: EntryType.Normal, data: new Uint8Array(200_000) }]);
  s.releaseObjects(101);
  const big = s.entries(101, 102, 1);
  assert.ok(!isGap(big));
  assert.equal((big[0] as Entry).data.byteLength, 200_000);
  assert.ok(isReleasedPayload((big[0] as Entry).data));
  assert.ok(!isReleasedPayload(new Uint8Array(10)));
});
