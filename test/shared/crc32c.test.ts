/**
 * CRC32C: published check values, and the exported (size-switched) function, the table
 * loop and @node-rs/crc32 compared with a naive bit-at-a-time model on random inputs, with
 * seeds, sub-ranges and shared memory.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import { crc32c, crc32cRange, crc32cTable, NATIVE_MIN_BYTES } from '../../src/shared/crc32c.js';

const SEED = 20140519;

function check<Ts extends unknown[]>(prop: fc.IProperty<Ts>, numRuns: number): void {
  fc.assert(prop, { seed: SEED, numRuns, includeErrorInReport: true });
}

/**
 * The naive model: the CRC32C definition one bit at a time, no table (reflected
 * polynomial 0x82F63B78, initial value and final XOR all ones; `seed` continues a CRC).
 */
function naiveCrc32c(bytes: Uint8Array, seed = 0): number {
  let c = ~seed >>> 0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return ~c >>> 0;
}

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('crc32c check values', () => {
  test('"123456789" is 0xE3069283 in every implementation', () => {
    const bytes = ascii('123456789');
    assert.equal(naiveCrc32c(bytes), 0xe3069283);
    assert.equal(crc32cTable(bytes, 0, bytes.byteLength), 0xe3069283);
    assert.equal(nativeCrc32c(bytes) >>> 0, 0xe3069283);
    assert.equal(crc32c(bytes), 0xe3069283);
  });

  test('RFC 3720 (iSCSI) B.4 vectors', () => {
    const zeros = new Uint8Array(32);
    const ones = new Uint8Array(32).fill(0xff);
    const up = Uint8Array.from({ length: 32 }, (_, i) => i);
    const down = Uint8Array.from({ length: 32 }, (_, i) => 31 - i);
    for (const f of [crc32c, naiveCrc32c, (b: Uint8Array) => nativeCrc32c(b) >>> 0]) {
      assert.equal(f(zeros), 0x8a9136aa);
      assert.equal(f(ones), 0x62a8ab43);
      assert.equal(f(up), 0x46dd794e);
      assert.equal(f(down), 0x113fdb5c);
    }
  });

  test('the empty input is 0, and leaves a seed unchanged', () => {
    assert.equal(crc32c(new Uint8Array(0)), 0);
    assert.equal(crc32c(new Uint8Array(0), 0xdeadbeef), 0xdeadbeef);
  });
});

describe('crc32c implementations agree', () => {
  // Lengths on both sides of the switch, and some long enough for the native path to matter.
  const bytesArb = fc.oneof(
    fc.uint8Array({ maxLength: 2 * NATIVE_MIN_BYTES }),
    fc.uint8Array({ minLength: NATIVE_MIN_BYTES - 2, maxLength: NATIVE_MIN_BYTES + 2 }),
    fc.uint8Array({ maxLength: 5000 }),
  );
  const seedArb = fc.oneof(fc.constant(0), fc.nat({ max: 0xffff_ffff }));

  test('exported, table and native match the bitwise model, with any seed', () => {
    check(
      fc.property(bytesArb, seedArb, (bytes, seed) => {
        const expected = naiveCrc32c(bytes, seed);
        assert.equal(crc32c(bytes, seed), expected);
        assert.equal(crc32cTable(bytes, 0, bytes.byteLength, seed), expected);
        assert.equal(nativeCrc32c(bytes, seed) >>> 0, expected);
      }),
      500,
    );
  });

  test('a CRC continues across a split: crc(a ++ b) = crc(b, crc(a))', () => {
    check(
      fc.property(bytesArb, bytesArb, (a, b) => {
        const joined = new Uint8Array(a.byteLength + b.byteLength);
        joined.set(a);
        joined.set(b, a.byteLength);
        assert.equal(crc32c(b, crc32c(a)), crc32c(joined));
      }),
      300,
    );
  });

  test('crc32cRange equals crc32c of the subarray, also on a SharedArrayBuffer', () => {
    check(
      fc.property(bytesArb, fc.nat(), fc.nat(), seedArb, (bytes, x, y, seed) => {
        const start = bytes.byteLength === 0 ? 0 : x % (bytes.byteLength + 1);
        const end = start + (bytes.byteLength === 0 ? 0 : y % (bytes.byteLength - start + 1));
        const expected = naiveCrc32c(bytes.subarray(start, end), seed);
        assert.equal(crc32cRange(bytes, start, end, seed), expected);
        const shared = new Uint8Array(new SharedArrayBuffer(Math.max(1, bytes.byteLength)));
        shared.set(bytes);
        assert.equal(crc32cRange(shared, start, end, seed), expected);
        assert.equal(crc32c(shared.subarray(start, end), seed), expected);
      }),
      300,
    );
  });

  test('results are unsigned 32-bit integers', () => {
    check(
      fc.property(bytesArb, (bytes) => {
        const c = crc32c(bytes);
        assert.ok(Number.isInteger(c) && c >= 0 && c <= 0xffff_ffff);
      }),
      200,
    );
  });
});
