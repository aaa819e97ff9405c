/**
 * The stored entry record: the byte layout pinned field by field against protocol.ts,
 * round trips, every decode error, decoding random bytes, and the recovery scan (a
 * buffer cut at every byte offset; every byte flipped; preallocated zeros; sequence).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { type Entry, EntryType } from '../../src/raft/types.js';
import { crc32cTable } from '../../src/shared/crc32c.js';
import {
  type DecodedEntry,
  decodeEntry,
  type EntryDecodeError,
  encodedEntryBytes,
  encodeEntry,
  readU32,
  readU64,
  scanEntries,
  writeU32,
  writeU64,
} from '../../src/shared/entry-codec.js';
import {
  DEFAULT_ENTRY_LIMITS,
  ENTRY_HEADER_BYTES,
  ENTRY_HEADER_CRC_OFFSET,
  ENTRY_INDEX_OFFSET,
  ENTRY_PAYLOAD_BYTES_OFFSET,
  ENTRY_PAYLOAD_CRC_OFFSET,
  ENTRY_RESERVED_OFFSET,
  ENTRY_TERM_OFFSET,
  ENTRY_TYPE_OFFSET,
} from '../../src/shared/protocol.js';

const SEED = 20140519;

function check<Ts extends unknown[]>(prop: fc.IProperty<Ts>, numRuns: number): void {
  fc.assert(prop, { seed: SEED, numRuns, includeErrorInReport: true });
}

// fc.record builds null-prototype objects; spread them into plain ones to compare with decoded entries.
const entryArb: fc.Arbitrary<Entry> = fc
  .record({
    index: fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
    term: fc.oneof(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })),
    type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange, EntryType.Noop),
    data: fc.oneof(fc.uint8Array({ maxLength: 100 }), fc.uint8Array({ maxLength: 5000 })),
  })
  .map((e) => ({ ...e }));

function encode(entry: Entry): Uint8Array {
  const out = new Uint8Array(encodedEntryBytes(entry));
  assert.equal(encodeEntry(entry, out, 0), out.byteLength);
  return out;
}

function isEntry(r: DecodedEntry | EntryDecodeError): r is DecodedEntry {
  return r.kind === 'entry';
}

/** Rewrites the header CRC after a test has changed a header field on purpose. */
function resealHeader(bytes: Uint8Array, offset: number): void {
  const first = crc32cTable(bytes, offset, offset + 4);
  writeU32(bytes, offset + ENTRY_HEADER_CRC_OFFSET, crc32cTable(bytes, offset + 8, offset + 32, first));
}

describe('entry record layout', () => {
  test('a known entry encodes to the bytes protocol.ts describes', () => {
    const data = new TextEncoder().encode('hello');
    const bytes = encode({ index: 0x0102_0304_0506, term: 7, type: EntryType.ConfChange, data });
    assert.equal(bytes.byteLength, 32 + 5);
    // payloadBytes u32 LE at 0
    assert.deepEqual([...bytes.subarray(0, 4)], [5, 0, 0, 0]);
    // term u64 LE at 8
    assert.deepEqual([...bytes.subarray(8, 16)], [7, 0, 0, 0, 0, 0, 0, 0]);
    // index u64 LE at 16
    assert.deepEqual([...bytes.subarray(16, 24)], [6, 5, 4, 3, 2, 1, 0, 0]);
    // type u8 at 24, reserved zeros at 25..28
    assert.deepEqual([...bytes.subarray(24, 28)], [1, 0, 0, 0]);
    // payload CRC at 28, over the payload only
    assert.equal(readU32(bytes, 28), crc32cTable(data, 0, 5));
    // header CRC at 4, over [0,4) and [8,32)
    const headerCrc = crc32cTable(bytes, 8, 32, crc32cTable(bytes, 0, 4));
    assert.equal(readU32(bytes, 4), headerCrc);
    assert.deepEqual([...bytes.subarray(32)], [...data]);
    // The constants say the same.
    assert.deepEqual(
      [
        ENTRY_PAYLOAD_BYTES_OFFSET,
        ENTRY_HEADER_CRC_OFFSET,
        ENTRY_TERM_OFFSET,
        ENTRY_INDEX_OFFSET,
        ENTRY_TYPE_OFFSET,
        ENTRY_RESERVED_OFFSET,
        ENTRY_PAYLOAD_CRC_OFFSET,
        ENTRY_HEADER_BYTES,
      ],
      [0, 4, 8, 16, 24, 25, 28, 32],
    );
  });

  test('u64 helpers are exact up to 2^53-1 and refuse more', () => {
    const b = new Uint8Array(8);
    for (const v of [0, 1, 0xffff_ffff, 0x1_0000_0000, Number.MAX_SAFE_INTEGER]) {
      writeU64(b, 0, v);
      assert.equal(readU64(b, 0), v);
    }
    b.fill(0xff);
    assert.equal(readU64(b, 0), -1);
  });
});

describe('entry round trip', () => {
  test('decode(encode(e)) = e at any offset, with data a view into the buffer', () => {
    check(
      fc.property(entryArb, fc.nat({ max: 40 }), fc.nat({ max: 40 }), (entry, before, after) => {
        const recordBytes = encodedEntryBytes(entry);
        const buf = new Uint8Array(before + recordBytes + after).fill(0xa5);
        assert.equal(encodeEntry(entry, buf, before), recordBytes);
        // Nothing written outside the record.
        assert.ok(buf.subarray(0, before).every((b) => b === 0xa5));
        assert.ok(buf.subarray(before + recordBytes).every((b) => b === 0xa5));
        const got = decodeEntry(buf, before);
        assert.ok(isEntry(got), JSON.stringify(got));
        assert.equal(got.recordBytes, recordBytes);
        assert.deepEqual(got.entry, entry);
        assert.equal(got.entry.data.buffer, buf.buffer, 'data is a view, not a copy');
      }),
      400,
    );
  });

  test('encodeEntry refuses what cannot be stored, and a buffer too small', () => {
    const ok: Entry = { index: 1, term: 1, type: EntryType.Normal, data: new Uint8Array(3) };
    const out = new Uint8Array(64);
    for (const bad of [
      { ...ok, index: 0 },
      { ...ok, term: 0 },
      { ...ok, index: 2 ** 53 },
      { ...ok, term: 1.5 },
      { ...ok, type: 5 as EntryType },
    ]) {
      assert.throws(() => encodeEntry(bad, out, 0), RangeError);
    }
    assert.throws(() => encodeEntry(ok, out, 64 - 34), RangeError);
    assert.throws(() => encodeEntry(ok, out, -1), RangeError);
    assert.equal(encodeEntry(ok, out, 64 - 35), 35);
  });
});

describe('entry decode errors', () => {
  const entry: Entry = { index: 42, term: 3, type: EntryType.Normal, data: new Uint8Array([1, 2, 3, 4, 5]) };

  test('too few bytes: torn, needing the header first, then the whole record', () => {
    const bytes = encode(entry);
    for (let cut = 0; cut < bytes.byteLength; cut++) {
      const got = decodeEntry(bytes.subarray(0, cut), 0);
      assert.equal(got.kind, 'torn');
      if (got.kind !== 'torn') continue;
      assert.equal(got.neededBytes, cut < 32 ? 32 : 37);
      assert.equal(got.availableBytes, cut);
    }
  });

  test('a flipped header byte is a corrupt header, a flipped payload byte a corrupt payload', () => {
    const clean = encode(entry);
    for (let i = 0; i < clean.byteLength; i++) {
      const bytes = clean.slice();
      bytes[i] = (bytes[i] as number) ^ 0x10;
      const got = decodeEntry(bytes, 0);
      assert.equal(got.kind, 'corrupt', `byte ${i}`);
      if (got.kind === 'corrupt') assert.equal(got.part, i < 32 ? 'header' : 'payload');
    }
  });

  test('intact but out-of-range fields are invalid', () => {
    const cases: [string, (b: Uint8Array) => void][] = [
      ['payloadBytes', (b) => writeU32(b, 0, DEFAULT_ENTRY_LIMITS.maxEntryPayloadBytes + 1)],
      ['type', (b) => (b[24] = 9)],
      ['reserved', (b) => (b[26] = 1)],
      ['term', (b) => writeU64(b, 8, 0)],
      ['index', (b) => writeU64(b, 16, 0)],
      ['index', (b) => writeU32(b, 20, 0x20_0000)],
    ];
    for (const [field, damage] of cases) {
      const bytes = encode(entry);
      damage(bytes);
      resealHeader(bytes, 0);
      const got = decodeEntry(bytes, 0);
      assert.equal(got.kind, 'invalid', field);
      if (got.kind === 'invalid') assert.equal(got.field, field);
    }
  });

  test('the length is checked against the configured maximum before the payload is awaited', () => {
    const bytes = encode({ ...entry, data: new Uint8Array(100) });
    const got = decodeEntry(bytes.subarray(0, 32), 0, { maxEntryPayloadBytes: 99 });
    assert.equal(got.kind, 'invalid');
    assert.equal(decodeEntry(bytes.subarray(0, 32), 0, { maxEntryPayloadBytes: 100 }).kind, 'torn');
  });

  test('random bytes never throw; whatever decodes re-encodes to the same bytes', () => {
    check(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat({ max: 300 }), (bytes, max) => {
        const got = decodeEntry(bytes, 0, { maxEntryPayloadBytes: max });
        assert.ok(['entry', 'torn', 'corrupt', 'invalid'].includes(got.kind));
        if (isEntry(got)) assert.deepEqual(encode(got.entry), bytes.subarray(0, got.recordBytes));
      }),
      2000,
    );
  });

  test('an offset outside the buffer is a bug and throws', () => {
    assert.throws(() => decodeEntry(new Uint8Array(10), 11), RangeError);
    assert.throws(() => decodeEntry(new Uint8Array(10), 0, DEFAULT_ENTRY_LIMITS, 11), RangeError);
  });
});

// ------------------------------------------------------------------ recovery scan

/** A log of consecutive records from `firstIndex`, and where each record starts. */
function buildLog(payloadSizes: readonly number[], firstIndex = 1): { bytes: Uint8Array; starts: number[] } {
  const entries = payloadSizes.map(
    (size, i): Entry => ({
      index: firstIndex + i,
      term: 1 + Math.floor(i / 3),
      type: i % 5 === 4 ? EntryType.Noop : EntryType.Normal,
      data: Uint8Array.from({ length: size }, (_, k) => (k * 7 + i + 1) & 0xff),
    }),
  );
  let total = 0;
  for (const e of entries) total += encodedEntryBytes(e);
  const bytes = new Uint8Array(total);
  const starts: number[] = [];
  let pos = 0;
  for (const e of entries) {
    starts.push(pos);
    pos += encodeEntry(e, bytes, pos);
  }
  starts.push(pos);
  return { bytes, starts };
}

/** Number of whole records before `offset`, given the record starts (plus the end). */
function recordsBefore(starts: readonly number[], offset: number): number {
  let k = 0;
  while (k + 1 < starts.length && (starts[k + 1] as number) <= offset) k++;
  return k;
}

describe('scanEntries', () => {
  const sizes = [0, 5, 70, 1, 200, 33, 0, 64];
  const { bytes, starts } = buildLog(sizes, 10);

  test('a clean log scans to its end', () => {
    const scan = scanEntries(bytes);
    assert.deepEqual(scan, {
      recordCount: sizes.length,
      validEndOffset: bytes.byteLength,
      firstIndex: 10,
      lastIndex: 10 + sizes.length - 1,
      lastTerm: 1 + Math.floor((sizes.length - 1) / 3),
      stop: { kind: 'end' },
    });
  });

  test('cut at every byte offset: a torn tail at the last record boundary', () => {
    for (let cut = 0; cut <= bytes.byteLength; cut++) {
      const scan = scanEntries(bytes.subarray(0, cut));
      const k = recordsBefore(starts, cut);
      assert.equal(scan.recordCount, k, `cut ${cut}`);
      assert.equal(scan.validEndOffset, starts[k], `cut ${cut}`);
      assert.equal(scan.lastIndex, k === 0 ? 0 : 10 + k - 1);
      if (cut === starts[k]) assert.equal(scan.stop.kind, 'end', `cut ${cut}`);
      else if (bytes.subarray(starts[k], cut).every((b) => b === 0)) assert.equal(scan.stop.kind, 'zeroes');
      else assert.equal(scan.stop.kind, 'torn', `cut ${cut}`);
    }
  });

  test('flip any byte with any mask: the damaged record is found, data after it noticed', () => {
    for (let i = 0; i < bytes.byteLength; i++) {
      for (const mask of [0x01, 0x80, 0xff, 0x5a]) {
        const damaged = bytes.slice();
        damaged[i] = (damaged[i] as number) ^ mask;
        const scan = scanEntries(damaged);
        const k = recordsBefore(starts, i);
        assert.equal(scan.stop.kind, 'damaged', `byte ${i} mask ${mask}`);
        assert.equal(scan.validEndOffset, starts[k], `byte ${i}`);
        assert.equal(scan.recordCount, k);
        if (scan.stop.kind !== 'damaged') continue;
        assert.equal(scan.stop.error.kind, 'corrupt');
        // Damage in any record but the last is followed by data: corruption in the middle.
        if (k < sizes.length - 1) assert.equal(scan.stop.tornWrite, false, `byte ${i}`);
      }
    }
  });

  test('preallocated space: zeros after the log, and a torn write into it', () => {
    const space = new Uint8Array(bytes.byteLength + 4096);
    space.set(bytes);
    const scan = scanEntries(space);
    assert.equal(scan.stop.kind, 'zeroes');
    assert.equal(scan.validEndOffset, bytes.byteLength);

    // The last record's payload only partly reached the disk.
    const last = sizes.length - 1;
    const torn = space.slice();
    torn.fill(0, (starts[last] as number) + ENTRY_HEADER_BYTES + 10, bytes.byteLength);
    const tornScan = scanEntries(torn);
    assert.equal(tornScan.validEndOffset, starts[last]);
    assert.ok(tornScan.stop.kind === 'damaged' && tornScan.stop.tornWrite);

    // Only the first half of its header reached the disk.
    const headerTorn = space.slice();
    headerTorn.fill(0, (starts[last] as number) + 16, bytes.byteLength);
    const headerScan = scanEntries(headerTorn);
    assert.equal(headerScan.validEndOffset, starts[last]);
    assert.ok(headerScan.stop.kind === 'damaged' && headerScan.stop.tornWrite);

    // A damaged record in the middle, in the same space: data follows, not a torn write.
    const middle = space.slice();
    middle[(starts[2] as number) + 40] ^= 1;
    const middleScan = scanEntries(middle);
    assert.equal(middleScan.validEndOffset, starts[2]);
    assert.ok(middleScan.stop.kind === 'damaged' && !middleScan.stop.tornWrite);
  });

  test('records must form a log: consecutive indexes, terms never decreasing', () => {
    assert.equal(scanEntries(bytes, 0, bytes.byteLength, { expectedFirstIndex: 10 }).stop.kind, 'end');
    const wrongFirst = scanEntries(bytes, 0, bytes.byteLength, { expectedFirstIndex: 11 });
    assert.ok(wrongFirst.stop.kind === 'damaged' && wrongFirst.stop.error.kind === 'invalid');
    assert.equal(wrongFirst.validEndOffset, 0);

    const gap = bytes.slice();
    writeU64(gap, (starts[3] as number) + ENTRY_INDEX_OFFSET, 99);
    resealHeader(gap, starts[3] as number);
    const gapScan = scanEntries(gap);
    assert.equal(gapScan.validEndOffset, starts[3]);
    assert.ok(gapScan.stop.kind === 'damaged' && gapScan.stop.error.kind === 'invalid');
    assert.ok(gapScan.stop.kind === 'damaged' && !gapScan.stop.tornWrite);

    const older = bytes.slice();
    writeU64(older, (starts[5] as number) + ENTRY_TERM_OFFSET, 1);
    resealHeader(older, starts[5] as number);
    const olderScan = scanEntries(older);
    assert.equal(olderScan.validEndOffset, starts[5]);
    assert.ok(olderScan.stop.kind === 'damaged' && olderScan.stop.error.kind === 'invalid');
  });

  test('random logs cut anywhere and followed by garbage: the scan keeps every whole record', () => {
    check(
      fc.property(
        fc.array(fc.nat({ max: 300 }), { maxLength: 12 }),
        fc.nat(),
        fc.uint8Array({ maxLength: 64 }),
        (sizes, cutSeed, garbage) => {
          const { bytes, starts } = buildLog(sizes);
          const cut = cutSeed % (bytes.byteLength + 1);
          const buf = new Uint8Array(cut + garbage.byteLength);
          buf.set(bytes.subarray(0, cut));
          buf.set(garbage, cut);
          const scan = scanEntries(buf);
          const k = recordsBefore(starts, cut);
          // The whole records before the cut survive; the garbage cannot complete another
          // (it would need two matching CRCs).
          assert.equal(scan.recordCount, k);
          assert.equal(scan.validEndOffset, starts[k]);
          if (garbage.byteLength === 0 && cut === starts[k]) assert.equal(scan.stop.kind, 'end');
        },
      ),
      500,
    );
  });
});
