/**
 * The Value codec: the byte layout pinned per tag, round trips of the edge values and of
 * arbitrary values, decoded bytes being copies, refusals of unsupported values, and hostile
 * input: random, truncated and mutated bytes only ever throw ValueDecodeError.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { OutBuffer } from '../../src/shared/message-codec.js';
import {
  decodeValue,
  encodedValueBytes,
  encodeValue,
  MAX_VALUE_DEPTH,
  type Value,
  ValueDecodeError,
  ValueTag,
} from '../../src/shared/value-codec.js';

const SEED = 20140519;

function check<Ts extends unknown[]>(prop: fc.IProperty<Ts>, numRuns: number): void {
  fc.assert(prop, { seed: SEED, numRuns, includeErrorInReport: true });
}

function encode(v: Value): Uint8Array {
  const out = new OutBuffer(16);
  const n = encodeValue(v, out);
  assert.equal(n, out.length);
  assert.equal(n, encodedValueBytes(v));
  return out.view().slice();
}

function roundTrip(v: Value): Value {
  const bytes = encode(v);
  return decodeValue(bytes, 0, bytes.byteLength);
}

function assertDecodeError(bytes: Uint8Array, offset = 0, end = bytes.byteLength): ValueDecodeError {
  try {
    decodeValue(bytes, offset, end);
  } catch (err) {
    assert.ok(err instanceof ValueDecodeError, `expected ValueDecodeError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_VALUE_DECODE');
    return err;
  }
  assert.fail('decodeValue accepted malformed bytes');
}

/** Decodes, accepting success or ValueDecodeError; anything else fails the test. */
function decodeOrRefuse(bytes: Uint8Array, offset = 0, end = bytes.byteLength): void {
  try {
    decodeValue(bytes, offset, end);
  } catch (err) {
    if (!(err instanceof ValueDecodeError)) throw err;
  }
}

const valueArb: fc.Arbitrary<Value> = fc.letrec<{ value: Value }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom<Value>(undefined, null, true, false),
    fc.integer(),
    fc.double(),
    fc.oneof(fc.bigInt(), fc.bigInt({ min: -(2n ** 200n), max: 2n ** 200n })),
    fc.string({ unit: 'binary' }),
    fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), tie('value'), {
      maxKeys: 5,
      noNullPrototype: true,
    }),
  ),
})).value;

describe('layout', () => {
  test('each tag has its pinned bytes', () => {
    const cases: [Value, number[]][] = [
      [undefined, [ValueTag.Undefined]],
      [null, [ValueTag.Null]],
      [false, [ValueTag.False]],
      [true, [ValueTag.True]],
      [1, [ValueTag.Int32, 1, 0, 0, 0]],
      [-2, [ValueTag.Int32, 0xfe, 0xff, 0xff, 0xff]],
      [1.5, [ValueTag.Float64, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f]],
      [258n, [ValueTag.BigInt64, 2, 1, 0, 0, 0, 0, 0, 0]],
      [-(2n ** 64n), [ValueTag.BigIntDecimal, 21, 0, 0, 0, ...Buffer.from('-18446744073709551616')]],
      ['hé', [ValueTag.String, 3, 0, 0, 0, 0x68, 0xc3, 0xa9]],
      [new Uint8Array([9, 8]), [ValueTag.Bytes, 2, 0, 0, 0, 9, 8]],
      [[true], [ValueTag.Array, 1, 0, 0, 0, ValueTag.True]],
      [{ a: null }, [ValueTag.Object, 1, 0, 0, 0, 1, 0, 0, 0, 0x61, ValueTag.Null]],
    ];
    for (const [v, bytes] of cases) assert.deepEqual([...encode(v)], bytes, String(v));
  });

  test('only int32 numbers other than -0 take the int32 tag', () => {
    for (const n of [0, 2 ** 31 - 1, -(2 ** 31)]) assert.equal(encode(n)[0], ValueTag.Int32, String(n));
    for (const n of [-0, 2 ** 31, -(2 ** 31) - 1, 0.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
      assert.equal(encode(n)[0], ValueTag.Float64, String(n));
    }
  });

  test('bigints outside 64 bits fall back to decimal', () => {
    assert.equal(encode(2n ** 63n - 1n)[0], ValueTag.BigInt64);
    assert.equal(encode(-(2n ** 63n))[0], ValueTag.BigInt64);
    assert.equal(encode(2n ** 63n)[0], ValueTag.BigIntDecimal);
    assert.equal(encode(-(2n ** 63n) - 1n)[0], ValueTag.BigIntDecimal);
  });

  test('values are appended after what the buffer holds', () => {
    const out = new OutBuffer(16);
    encodeValue('first', out);
    const at = out.length;
    const n = encodeValue({ k: [1, 2n, 'x'.repeat(100)] }, out);
    assert.equal(out.length, at + n);
    assert.equal(decodeValue(out.bytes, 0, at), 'first');
    assert.deepEqual(decodeValue(out.bytes, at, at + n), { k: [1, 2n, 'x'.repeat(100)] });
  });
});

describe('round trip', () => {
  test('edge values come back identical', () => {
    const values: Value[] = [
      undefined,
      null,
      true,
      false,
      0,
      -0,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.MAX_SAFE_INTEGER,
      Number.MIN_VALUE,
      -1.25e300,
      0n,
      -1n,
      2n ** 63n - 1n,
      -(2n ** 63n),
      2n ** 63n,
      -(10n ** 50n),
      '',
      'ascii',
      'ü€😀 and \u0000 and \ufeff at the start',
      '\ufeffbom',
      'x'.repeat(33),
      'é'.repeat(20),
      new Uint8Array(0),
      new Uint8Array([0, 255, 7]),
      [],
      [undefined, null, [[]], {}],
      {},
      { a: 1, b: { c: [new Uint8Array([1])] }, '': 'empty key', ключ: undefined },
      { 2: 'two', 1: 'one', z: 'z' },
    ];
    for (const v of values) assert.deepStrictEqual(roundTrip(v), v);
  });

  test('a "__proto__" key stays a key and does not set the prototype', () => {
    const v = JSON.parse('{"__proto__": {"polluted": true}, "x": 1}') as Value;
    const back = roundTrip(v) as Record<string, Value>;
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
    assert.deepEqual(Object.keys(back), ['__proto__', 'x']);
    assert.deepStrictEqual(Object.getOwnPropertyDescriptor(back, '__proto__')?.value, { polluted: true });
    assert.equal((back as { polluted?: unknown }).polluted, undefined);
  });

  test('a null-prototype object and a Buffer encode as plain object and bytes', () => {
    const bare = Object.create(null) as Record<string, Value>;
    bare.k = 'v';
    assert.deepStrictEqual(roundTrip(bare), { k: 'v' });
    const back = roundTrip(Buffer.from([1, 2, 3]));
    assert.deepStrictEqual(back, new Uint8Array([1, 2, 3]));
    assert.equal(Object.getPrototypeOf(back), Uint8Array.prototype);
  });

  test('symbol keys are ignored, like JSON', () => {
    assert.deepStrictEqual(roundTrip({ a: 1, [Symbol('s')]: 2 } as Value), { a: 1 });
  });

  test('nesting up to MAX_VALUE_DEPTH round trips', () => {
    let v: Value = 1;
    for (let i = 0; i < MAX_VALUE_DEPTH; i++) v = i % 2 === 0 ? [v] : { k: v };
    assert.deepStrictEqual(roundTrip(v), v);
  });

  test('arbitrary values come back identical (property)', () => {
    check(
      fc.property(valueArb, (v) => {
        assert.deepStrictEqual(roundTrip(v), v);
      }),
      2000,
    );
  });
});

describe('decoded bytes are copies', () => {
  test('changing the source after decoding changes nothing decoded', () => {
    const source = encode({ b: new Uint8Array([1, 2, 3]), s: 'text' });
    const decoded = decodeValue(source, 0, source.byteLength) as { b: Uint8Array; s: string };
    assert.notEqual(decoded.b.buffer, source.buffer);
    source.fill(0);
    assert.deepStrictEqual(decoded, { b: new Uint8Array([1, 2, 3]), s: 'text' });
  });

  test('copies also when the source is a Buffer, whose slice() is a view', () => {
    const source = Buffer.from(encode(new Uint8Array([5, 6])));
    const decoded = decodeValue(source, 0, source.byteLength) as Uint8Array;
    source.fill(0);
    assert.deepStrictEqual(decoded, new Uint8Array([5, 6]));
  });
});

describe('unsupported values', () => {
  class Point {
    x = 1;
  }
  const cases: [unknown, string][] = [
    [() => 1, 'function'],
    [Symbol('s'), 'symbol'],
    [new Map(), 'Map'],
    [new Set(), 'Set'],
    [new Date(0), 'Date'],
    [new Point(), 'Point'],
    [new Int16Array(2), 'Int16Array'],
    [new Uint8ClampedArray(2), 'Uint8ClampedArray'],
    [new ArrayBuffer(2), 'ArrayBuffer'],
    [[1, { deep: [new Map()] }], 'Map'],
  ];
  for (const [v, name] of cases) {
    test(`${name} throws a TypeError naming it and leaves the buffer unchanged`, () => {
      const out = new OutBuffer(16);
      encodeValue('before', out);
      const before = out.view().slice();
      assert.throws(
        () => encodeValue(v as Value, out),
        (err: unknown) => err instanceof TypeError && err.message.includes(name),
      );
      assert.deepEqual(out.view(), before);
    });
  }

  test('a cycle throws a TypeError, not a stack overflow', () => {
    const a: Value[] = [];
    a.push(a);
    assert.throws(() => encodedValueBytes(a), TypeError);
    const o: Record<string, Value> = {};
    o.self = o;
    assert.throws(() => encode(o), TypeError);
  });

  test('a string with a lone surrogate throws a TypeError (it would not come back)', () => {
    assert.throws(() => encode('a\ud800b'), TypeError);
    assert.throws(() => encode('\udc00'), TypeError);
    assert.throws(() => encode({ 'k\ud83d': 1 }), TypeError);
    assert.equal(roundTrip('\ud83d\ude00'), '😀');
  });
});

describe('malformed input', () => {
  test('each refusal throws ValueDecodeError', () => {
    const u32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];
    const cases: number[][] = [
      [],
      [12],
      [255],
      [ValueTag.Int32, 1, 2, 3],
      [ValueTag.Float64, 1, 2, 3, 4, 5, 6, 7],
      [ValueTag.BigInt64, 0],
      [ValueTag.String, 5, 0, 0, 0, 0x61],
      [ValueTag.String, ...u32(0xffffffff)],
      [ValueTag.String, 2, 0, 0, 0, 0xc3, 0x28],
      [ValueTag.String, 1, 0, 0, 0, 0xff],
      [ValueTag.Bytes, 3, 0, 0],
      [ValueTag.Bytes, 3, 0, 0, 0, 1, 2],
      [ValueTag.BigIntDecimal, 0, 0, 0, 0],
      [ValueTag.BigIntDecimal, 1, 0, 0, 0, 0x2d],
      [ValueTag.BigIntDecimal, 2, 0, 0, 0, 0x31, 0x20],
      [ValueTag.BigIntDecimal, 2, 0, 0, 0, 0x20, 0x31],
      [ValueTag.Array, ...u32(0xffffffff), ValueTag.Null],
      [ValueTag.Array, 2, 0, 0, 0, ValueTag.Null],
      [ValueTag.Object, ...u32(1000), ValueTag.Null],
      [ValueTag.Object, 2, 0, 0, 0, 1, 0, 0, 0, 0x61, ValueTag.Null, 1, 0, 0, 0, 0x61, ValueTag.True],
      [ValueTag.Object, 1, 0, 0, 0, 1, 0, 0, 0, 0x80, ValueTag.Null],
      [ValueTag.Null, ValueTag.Null],
    ];
    for (const bytes of cases) assertDecodeError(new Uint8Array(bytes));
  });

  test('bad ranges throw ValueDecodeError', () => {
    const bytes = encode(1);
    assertDecodeError(bytes, 0, bytes.byteLength + 1);
    assertDecodeError(bytes, -1, 2);
    assertDecodeError(bytes, 3, 2);
    assertDecodeError(bytes, 0.5, 2);
  });

  test('nesting beyond MAX_VALUE_DEPTH throws ValueDecodeError, not a stack overflow', () => {
    const depth = 100_000;
    const bytes = new Uint8Array(depth * 5 + 1);
    for (let i = 0; i < depth; i++) bytes.set([ValueTag.Array, 1, 0, 0, 0], i * 5);
    bytes[depth * 5] = ValueTag.Null;
    assertDecodeError(bytes);
  });

  test('every strict prefix of an encoding is refused (property)', () => {
    check(
      fc.property(valueArb, fc.nat(), (v, cut) => {
        const bytes = encode(v);
        const end = cut % bytes.byteLength;
        assertDecodeError(bytes, 0, end);
      }),
      1000,
    );
  });

  test('random bytes decode or throw ValueDecodeError (property)', () => {
    check(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => decodeOrRefuse(bytes)),
      5000,
    );
    // Tag bytes first, so the random tail goes through every tag's path.
    check(
      fc.property(fc.integer({ min: 0, max: 12 }), fc.uint8Array({ maxLength: 32 }), (tag, tail) =>
        decodeOrRefuse(new Uint8Array([tag, ...tail])),
      ),
      5000,
    );
  });

  test('mutated encodings decode or throw ValueDecodeError (property)', () => {
    check(
      fc.property(valueArb, fc.nat(), fc.integer({ min: 0, max: 255 }), (v, at, byte) => {
        const bytes = encode(v);
        bytes[at % bytes.byteLength] = byte;
        decodeOrRefuse(bytes);
      }),
      2000,
    );
  });
});
