/**
 * The log window's writer (`src/shared/log-window.ts`, rules in protocol.ts "log window"):
 * a model-based property test (append next / truncating / after a gap, reclaim) checked
 * after every step against a model of which index is held at which position, the same run
 * across the 2^31 and 2^32 wrap of the free-running positions, and unit tests of the
 * capacity check, the skip to offset 0, overflow and `holdFor`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type Entry, EntryType } from '../../src/raft/types.js';
import { posDiff } from '../../src/shared/control-block.js';
import { decodeEntry } from '../../src/shared/entry-codec.js';
import { LogWindowWriter, windowView } from '../../src/shared/log-window.js';
import { ENTRY_HEADER_BYTES } from '../../src/shared/protocol.js';

const SEED = 20240611;

/**
 * A record that ends exactly at the end of the data area is followed, at the next
 * position, by offset 0 of the next lap: `run()` must not join the two (found by this
 * test: it once returned a region crossing the end, which `windowView` cut short).
 */
const TWO_32 = 2 ** 32;

// ------------------------------------------------------------------ the model

/** One record the writer put in the window, as the model expects it. */
interface Rec {
  readonly pos: number;
  readonly bytes: number;
  readonly entry: Entry;
}

/** What the window should hold: computed from the rules in protocol.ts, not from the writer. */
interface Model {
  readonly cap: number;
  writePos: number;
  reclaimed: number;
  /** index -> the record of the entry last appended at that index, for the entries still held. */
  readonly held: Map<number, Rec>;
  /** Every record written whose bytes are not wholly reclaimed: where a consumer may release to. */
  written: Rec[];
  /** The last index passed to `append` (the writer's idea of the log's end). */
  lastAppended: number;
  term: number;
  seq: number;
}

function newModel(w: LogWindowWriter): Model {
  assert.equal(w.usedBytes, 0, 'a model starts from an empty window');
  return {
    cap: w.capacityBytes,
    writePos: w.position,
    reclaimed: w.position,
    held: new Map(),
    written: [],
    lastAppended: w.lastIndex,
    term: 1,
    seq: 0,
  };
}

type Cmd =
  | { readonly k: 'next'; readonly size: number }
  | { readonly k: 'truncate'; readonly back: number; readonly size: number }
  | { readonly k: 'gap'; readonly gap: number; readonly size: number }
  | { readonly k: 'reclaim'; readonly pick: number }
  | { readonly k: 'reclaimStale'; readonly back: number };

const sizeArb = fc.oneof(fc.integer({ min: 0, max: 600 }), fc.integer({ min: 0, max: 24 }));
const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { arbitrary: fc.record({ k: fc.constant('next' as const), size: sizeArb }), weight: 8 },
  {
    arbitrary: fc.record({ k: fc.constant('truncate' as const), back: fc.nat({ max: 12 }), size: sizeArb }),
    weight: 2,
  },
  {
    arbitrary: fc.record({
      k: fc.constant('gap' as const),
      gap: fc.integer({ min: 2, max: 40 }),
      size: sizeArb,
    }),
    weight: 1,
  },
  { arbitrary: fc.record({ k: fc.constant('reclaim' as const), pick: fc.nat() }), weight: 4 },
  {
    arbitrary: fc.record({ k: fc.constant('reclaimStale' as const), back: fc.nat({ max: 5000 }) }),
    weight: 1,
  },
);

function payload(seq: number, size: number): Uint8Array {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (seq * 31 + i * 7 + 3) & 0xff;
  return data;
}

const TYPES = [EntryType.Normal, EntryType.ConfChange, EntryType.Noop] as const;

/** Appends a fresh entry at `index`, checks the verdict against the model and updates it. */
function doAppend(w: LogWindowWriter, m: Model, index: number, size: number): void {
  const seq = ++m.seq;
  const entry: Entry = { index, term: m.term, type: TYPES[seq % 3] as EntryType, data: payload(seq, size) };
  const recordBytes = ENTRY_HEADER_BYTES + size;
  const used = posDiff(m.writePos, m.reclaimed);
  const offset = m.writePos & (m.cap - 1);
  const skip = offset + recordBytes > m.cap ? m.cap - offset : 0;
  const fits = m.cap - used - skip >= recordBytes;
  const ok = w.append(entry);
  assert.equal(
    ok,
    fits,
    `append(${index}, ${recordBytes} B) at offset ${offset} with ${used} B used (skip ${skip}) returned ${ok}`,
  );
  m.lastAppended = index;
  // Truncation drops index and everything after it; a gap (or a truncation below the range) drops it all.
  for (const i of [...m.held.keys()]) if (i >= index) m.held.delete(i);
  if (m.held.size > 0 && !m.held.has(index - 1)) m.held.clear();
  if (!ok) {
    // Not in the window: the range restarts after it.
    m.held.clear();
    assert.equal(w.has(index), false, `refused entry ${index} must not be held`);
    return;
  }
  const pos = (m.writePos + skip) >>> 0;
  const rec: Rec = { pos, bytes: recordBytes, entry };
  m.held.set(index, rec);
  m.written.push(rec);
  m.writePos = (pos + recordBytes) >>> 0;
}

function doReclaim(w: LogWindowWriter, m: Model, pos: number): void {
  if (posDiff(pos, m.reclaimed) > 0) {
    m.reclaimed = pos >>> 0;
    for (const [i, rec] of [...m.held]) if (posDiff(rec.pos, m.reclaimed) < 0) m.held.delete(i);
    m.written = m.written.filter((rec) => posDiff((rec.pos + rec.bytes) >>> 0, m.reclaimed) > 0);
  }
  assert.equal(w.reclaim(pos), m.reclaimed, `reclaim(${pos}) must return the reclaimed position`);
}

function run(w: LogWindowWriter, m: Model, cmd: Cmd): void {
  switch (cmd.k) {
    case 'next':
      doAppend(w, m, m.lastAppended + 1, cmd.size);
      break;
    case 'truncate':
      // A follower's log was cut: a new leader's entry at or below the last index.
      m.term++;
      doAppend(w, m, Math.max(1, m.lastAppended - cmd.back), cmd.size);
      break;
    case 'gap':
      doAppend(w, m, m.lastAppended + cmd.gap, cmd.size);
      break;
    case 'reclaim': {
      // Where a consumer may release to: the start or end of a record it was sent, or the write position.
      const candidates: number[] = [];
      const inside = (p: number): boolean => posDiff(p, m.reclaimed) >= 0 && posDiff(m.writePos, p) >= 0;
      for (const rec of m.written) {
        if (inside(rec.pos)) candidates.push(rec.pos);
        const end = (rec.pos + rec.bytes) >>> 0;
        if (inside(end)) candidates.push(end);
      }
      candidates.push(m.writePos);
      doReclaim(w, m, candidates[cmd.pick % candidates.length] as number);
      break;
    }
    case 'reclaimStale':
      // At or behind the reclaimed position: changes nothing.
      doReclaim(w, m, (m.reclaimed - cmd.back) >>> 0);
      break;
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Every invariant of the window, against the model. */
function checkWindow(w: LogWindowWriter, m: Model): void {
  const cap = m.cap;
  assert.equal(w.position, m.writePos, 'write position');
  assert.equal(w.usedBytes, posDiff(m.writePos, m.reclaimed), 'usedBytes');
  assert.ok(w.usedBytes >= 0 && w.usedBytes <= cap, `usedBytes ${w.usedBytes} within 0..${cap}`);

  const keys = [...m.held.keys()].sort((a, b) => a - b);
  for (let j = 1; j < keys.length; j++)
    assert.equal(keys[j], (keys[j - 1] as number) + 1, 'held is contiguous');
  const lo = keys.length > 0 ? (keys[0] as number) : m.lastAppended;
  const hi = keys.length > 0 ? (keys[keys.length - 1] as number) : m.lastAppended;
  assert.equal(w.has(0), false);
  for (let i = Math.max(1, lo - 4); i <= m.lastAppended + 3; i++) {
    assert.equal(w.has(i), m.held.has(i), `has(${i}); model holds [${keys[0]}, ${hi}]`);
  }
  if (lo > 50) assert.equal(w.has(lo - 50), false);

  for (const i of keys) {
    const rec = m.held.get(i) as Rec;
    assert.equal(w.posOf(i), rec.pos, `posOf(${i})`);
    assert.equal(w.recordBytesOf(i), rec.bytes, `recordBytesOf(${i})`);
    assert.ok((rec.pos & (cap - 1)) + rec.bytes <= cap, `record ${i} never wraps`);
    assert.ok(posDiff(rec.pos, m.reclaimed) >= 0, `record ${i} starts at or after the reclaimed position`);
    assert.ok(
      posDiff(m.writePos, (rec.pos + rec.bytes) >>> 0) >= 0,
      `record ${i} ends at or before position`,
    );
    const decoded = decodeEntry(windowView(w.bytes, w.posOf(i), w.recordBytesOf(i)), 0);
    assert.equal(decoded.kind, 'entry', `record ${i} decodes: ${JSON.stringify(decoded)}`);
    if (decoded.kind !== 'entry') return;
    assert.equal(decoded.recordBytes, rec.bytes);
    assert.equal(decoded.entry.index, rec.entry.index);
    assert.equal(decoded.entry.term, rec.entry.term);
    assert.equal(decoded.entry.type, rec.entry.type);
    assert.deepEqual(new Uint8Array(decoded.entry.data), rec.entry.data, `payload of ${i}`);
  }

  const byPos = keys
    .map((i) => m.held.get(i) as Rec)
    .sort((a, b) => posDiff(a.pos, m.reclaimed) - posDiff(b.pos, m.reclaimed));
  for (let j = 1; j < byPos.length; j++) {
    const prev = byPos[j - 1] as Rec;
    const next = byPos[j] as Rec;
    assert.ok(posDiff(next.pos, (prev.pos + prev.bytes) >>> 0) >= 0, 'held records never overlap');
  }

  // holdFor: the first held record at or after i, else the write position.
  for (const i of [1, lo - 1, lo, hi, hi + 1, m.lastAppended + 1]) {
    if (i < 1) continue;
    const from = Math.max(i, keys.length > 0 ? lo : i);
    const expected = m.held.has(from) ? (m.held.get(from) as Rec).pos : m.writePos;
    assert.equal(w.holdFor(i), expected, `holdFor(${i})`);
  }

  // run: the longest run of back-to-back records from lo, up to hi, that does not cross the
  // end of the data area (protocol.ts: every region a consumer is sent is contiguous).
  const out = { pos: -1, byteLength: -1, last: -1 };
  for (const start of keys) {
    for (const stop of [hi, start + (start % 5), start + 1000]) {
      w.run(start, stop, out);
      let last = start;
      for (let i = start; i < stop && m.held.has(i + 1); i++) {
        const cur = m.held.get(i) as Rec;
        const end = (cur.pos + cur.bytes) >>> 0;
        if ((m.held.get(i + 1) as Rec).pos !== end) break;
        if (last === i && (end & (cap - 1)) !== 0) last = i + 1;
      }
      assert.equal(out.last, last, `run(${start}, ${stop}).last`);
      assert.equal(out.pos, (m.held.get(start) as Rec).pos, `run(${start}, ${stop}).pos`);
      const parts: Uint8Array[] = [];
      for (let i = start; i <= last; i++) {
        const rec = m.held.get(i) as Rec;
        parts.push(windowView(w.bytes, rec.pos, rec.bytes));
      }
      const expected = concat(parts);
      assert.equal(out.byteLength, expected.byteLength, `run(${start}, ${stop}).byteLength`);
      assert.ok((out.pos & (cap - 1)) + out.byteLength <= cap, 'a run is contiguous');
      assert.deepEqual(
        windowView(w.bytes, out.pos, out.byteLength),
        expected,
        `run(${start}, ${stop}) bytes`,
      );
    }
  }
}

/**
 * Puts an empty writer's free-running positions at `start`, as if it had written and
 * reclaimed `start` bytes already (a state reachable through the public API, see the
 * wrap test below, but only after ~10^6 appends). White-box: sets the private fields.
 */
function startAt(w: LogWindowWriter, start: number): void {
  const inner = w as unknown as { writePos: number; reclaimedPos: number };
  inner.writePos = start;
  inner.reclaimedPos = start;
  assert.equal(w.position, start, 'LogWindowWriter private fields renamed? update startAt()');
  assert.equal(w.usedBytes, 0);
}

// ------------------------------------------------------------------ the tests

describe('log window: model-based', () => {
  test('append next / truncating / after a gap and reclaim keep every invariant', {
    timeout: 60_000,
  }, () => {
    fc.assert(
      fc.property(
        fc.constantFrom(4096, 8192),
        fc.constantFrom(0, 0, 2 ** 31 - 3000, TWO_32 - 2500, TWO_32 - 8192 - 77),
        fc.array(cmdArb, { minLength: 1, maxLength: 200, size: 'max' }),
        (cap, start, cmds) => {
          const w = new LogWindowWriter(cap);
          if (start !== 0) startAt(w, start);
          const m = newModel(w);
          checkWindow(w, m);
          for (const cmd of cmds) {
            run(w, m, cmd);
            checkWindow(w, m);
          }
        },
      ),
      { seed: SEED, numRuns: 100, includeErrorInReport: true },
    );
  });

  test('free-running positions cross 2^32 through the public API alone', { timeout: 60_000 }, () => {
    const cap = 4096;
    const w = new LogWindowWriter(cap);
    // Records of half the capacity plus one byte: every append after the first skips to the
    // next lap, so each one advances the position by a whole capacity (~10^6 appends, < 1 s).
    const big = new Uint8Array(cap / 2 + 1 - ENTRY_HEADER_BYTES);
    const target = TWO_32 - 6 * cap;
    let index = 0;
    while (w.position < target) {
      index++;
      if (!w.append({ index, term: 1, type: EntryType.Normal, data: big })) assert.fail(`append ${index}`);
      w.reclaim(w.position);
    }
    assert.ok(w.position >= target && w.position < TWO_32 - cap, `position ${w.position}`);
    const m = newModel(w);
    const startPos = w.position;
    const [cmds] = fc.sample(fc.array(cmdArb, { minLength: 1500, maxLength: 1500 }), {
      seed: SEED,
      numRuns: 1,
    });
    let wrapped = false;
    for (const cmd of cmds as Cmd[]) {
      run(w, m, cmd);
      checkWindow(w, m);
      if (w.position < startPos) wrapped = true;
    }
    assert.ok(wrapped, `the position crossed 2^32 (now ${w.position}, started at ${startPos})`);
  });
});

describe('log window: unit', () => {
  test('capacity must be a power of two >= 4096', () => {
    for (const bad of [
      0,
      -4096,
      1024,
      2048,
      4095,
      4097,
      6144,
      4096.5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
    ]) {
      assert.throws(() => new LogWindowWriter(bad), {
        name: 'RangeError',
        message: /log window capacity .* must be a power of two >= 4096/,
      });
    }
    for (const good of [4096, 8192, 2 ** 20]) {
      const w = new LogWindowWriter(good);
      assert.equal(w.capacityBytes, good);
      assert.ok(w.buffer instanceof SharedArrayBuffer);
      assert.equal(w.buffer.byteLength, good);
      assert.equal(w.bytes.byteLength, good);
      assert.equal(w.position, 0);
      assert.equal(w.usedBytes, 0);
      assert.equal(w.has(1), false);
      assert.equal(w.holdFor(1), 0);
    }
  });

  test('posDiff is the signed distance across the 2^32 wrap', () => {
    assert.equal(posDiff(5, 0xffff_fffb), 10);
    assert.equal(posDiff(0xffff_fffb, 5), -10);
    assert.equal(posDiff(0, 0xffff_ffff), 1);
    assert.equal(posDiff(0xffff_ffff, 0), -1);
    assert.equal(posDiff(0x8000_0010, 0x7fff_fff0), 0x20);
    assert.equal(posDiff(4096, 0), 4096);
    assert.equal(posDiff(7, 7), 0);
    // Masking a free-running position is continuous across the wrap for a power-of-two capacity.
    assert.equal((TWO_32 - 1) & 4095, 4095);
    assert.equal(((TWO_32 - 1 + 1) >>> 0) & 4095, 0);
  });

  test('a record that would wrap skips to offset 0; the skipped bytes stay used until reclaimed', () => {
    const w = new LogWindowWriter(4096);
    const e = (index: number, size: number): Entry => ({
      index,
      term: 1,
      type: EntryType.Normal,
      data: payload(index, size),
    });
    assert.equal(w.append(e(1, 4000)), true); // 4032 bytes at 0
    assert.equal(w.position, 4032);
    assert.equal(w.append(e(2, 100)), false, '132 bytes do not fit in 64 free bytes');
    assert.equal(w.overflowEntries, 1);
    assert.equal(w.has(1), false, 'the range restarts after the refused entry');
    assert.equal(w.has(2), false);
    assert.equal(w.position, 4032, 'a refused entry writes nothing');
    assert.equal(w.reclaim(4032), 4032);
    assert.equal(w.usedBytes, 0);
    assert.equal(w.append(e(3, 100)), true);
    assert.equal(w.posOf(3), 4096, 'skipped the 64 bytes before the end');
    assert.equal(w.position, 4096 + 132);
    assert.equal(w.usedBytes, 64 + 132);
    assert.equal(w.append(e(4, 0)), true);
    const out = { pos: 0, byteLength: 0, last: 0 };
    w.run(3, 4, out);
    assert.deepEqual(out, { pos: 4096, byteLength: 164, last: 4 });
    const d = decodeEntry(windowView(w.bytes, w.posOf(4), w.recordBytesOf(4)), 0);
    assert.equal(d.kind, 'entry');
  });

  test('a record that ends exactly at the end of the data area does not skip', () => {
    const w = new LogWindowWriter(4096);
    const e = (index: number, size: number): Entry => ({
      index,
      term: 1,
      type: EntryType.Noop,
      data: payload(index, size),
    });
    assert.equal(w.append(e(1, 4000)), true);
    assert.equal(w.reclaim(w.position), 4032);
    assert.equal(w.append(e(2, 32)), true, '64 bytes fit exactly in the last 64');
    assert.equal(w.posOf(2), 4032);
    assert.equal(w.position, 4096);
    assert.equal(w.append(e(3, 4000)), true, 'the next record starts the next lap at offset 0');
    assert.equal(w.posOf(3), 4096);
    assert.equal(w.usedBytes, 4096, 'full to the last byte');
    assert.equal(w.append(e(4, 0)), false);
  });

  test('run() stops at the end of the data area even when the next record starts the next lap', {}, () => {
    const e = (index: number, size: number): Entry => ({
      index,
      term: 1,
      type: EntryType.Normal,
      data: payload(index, size),
    });
    const v = new LogWindowWriter(4096);
    assert.equal(v.append(e(1, 3968)), true); // 4000 bytes at 0
    v.reclaim(4000);
    assert.equal(v.append(e(2, 64)), true); // 96 bytes at 4000, ends at 4096 exactly
    assert.equal(v.append(e(3, 10)), true); // 42 bytes at 4096 (offset 0), no skip
    assert.equal(v.posOf(3), 4096);
    const out = { pos: 0, byteLength: 0, last: 0 };
    v.run(2, 3, out);
    assert.ok(
      (out.pos & 4095) + out.byteLength <= 4096,
      `run(2, 3) = ${JSON.stringify(out)} crosses the end of the data area`,
    );
    assert.deepEqual(out, { pos: 4000, byteLength: 96, last: 2 });
  });

  test('a skip is counted against the free space: a record that fits only without it is refused', () => {
    const w = new LogWindowWriter(4096);
    const e = (index: number, size: number): Entry => ({
      index,
      term: 1,
      type: EntryType.Noop,
      data: payload(index, size),
    });
    assert.equal(w.append(e(1, 968)), true); // 1000 bytes at 0
    assert.equal(w.append(e(2, 1968)), true); // 2000 bytes at 1000
    assert.equal(w.append(e(3, 968)), true); // 1000 bytes at 3000
    assert.equal(w.reclaim(1000), 1000);
    assert.equal(w.usedBytes, 3000);
    // 1096 bytes free, 96 of them before the end: 1064 bytes would fit only without the skip.
    assert.equal(w.append(e(4, 1032)), false);
    assert.equal(w.position, 4000);
    assert.equal(w.append(e(5, 968)), true, '96 skipped + 1000 = 1096: fits exactly');
    assert.equal(w.posOf(5), 4096);
    assert.equal(w.usedBytes, 4096);
  });

  test('overflow: the range restarts after an entry that did not fit', () => {
    const w = new LogWindowWriter(4096);
    const data = new Uint8Array(968); // 1000-byte records: four fit
    for (let i = 1; i <= 4; i++)
      assert.equal(w.append({ index: i, term: 1, type: EntryType.Normal, data }), true);
    assert.equal(w.append({ index: 5, term: 1, type: EntryType.Normal, data }), false);
    assert.equal(w.overflowEntries, 1);
    for (let i = 1; i <= 6; i++) assert.equal(w.has(i), false, `has(${i})`);
    assert.equal(w.holdFor(1), w.position);
    assert.equal(w.reclaim(2000), 2000); // frees the bytes of entries 1 and 2
    assert.equal(w.append({ index: 6, term: 1, type: EntryType.Normal, data }), true);
    assert.equal(w.has(5), false);
    assert.equal(w.has(6), true);
    assert.equal(w.firstIndex, 6);
    assert.equal(w.lastIndex, 6);
  });

  test('holdFor: the first byte needed by a reader of entries from i on', () => {
    const w = new LogWindowWriter(8192);
    for (let i = 1; i <= 5; i++) {
      assert.equal(w.append({ index: i, term: 2, type: EntryType.Normal, data: payload(i, i * 10) }), true);
    }
    const pos = [0, 42, 94, 156, 228]; // records of 32 + 10i bytes, back to back
    for (let i = 1; i <= 5; i++) assert.equal(w.posOf(i), pos[i - 1]);
    assert.equal(w.position, 310);
    assert.equal(w.holdFor(0), 0, 'below the range: the first held entry');
    assert.equal(w.holdFor(1), 0);
    assert.equal(w.holdFor(3), pos[2]);
    assert.equal(w.holdFor(5), pos[4]);
    assert.equal(w.holdFor(6), w.position, 'past the range: nothing needed but what comes next');
    assert.equal(w.holdFor(100), w.position);
    assert.equal(w.reclaim(w.holdFor(3)), pos[2]);
    assert.equal(w.has(2), false);
    assert.equal(w.has(3), true);
    assert.equal(w.holdFor(1), pos[2], 'entries 1-2 are gone: a reader from 1 needs 3 on');
    // Truncation at 4: the new 4 is written after the old 5, and the reader of 4 needs it.
    assert.equal(w.append({ index: 4, term: 3, type: EntryType.Normal, data: payload(9, 3) }), true);
    assert.equal(w.posOf(4), 310);
    assert.equal(w.holdFor(4), 310);
    assert.equal(w.holdFor(3), pos[2]);
    assert.equal(w.holdFor(5), w.position);
    assert.equal(w.has(5), false);
  });
});
