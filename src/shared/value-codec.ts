/**
 * A compact binary codec for `Value`: the results of applied commands and the queries and
 * answers of reads. They cross threads (fsm worker → coordinator) and later the client wire,
 * so the format is self-delimiting, little-endian and checked like any input from outside.
 *
 * Layout: one tag byte, then the tag's payload.
 *
 * | tag | value      | payload                                                        |
 * |-----|------------|----------------------------------------------------------------|
 * | 0   | undefined  | none                                                           |
 * | 1   | null       | none                                                           |
 * | 2   | false      | none                                                           |
 * | 3   | true       | none                                                           |
 * | 4   | int32      | i32: every integer number in -2^31..2^31-1 except -0           |
 * | 5   | float64    | f64: every other number (fractions, -0, NaN, ±Infinity, big)   |
 * | 6   | bigint64   | i64: a bigint in -2^63..2^63-1                                 |
 * | 7   | bigint     | u32 byte count, ASCII decimal with optional '-': any other one |
 * | 8   | string     | u32 byte count, UTF-8                                          |
 * | 9   | bytes      | u32 byte count, the bytes (a Uint8Array)                       |
 * | 10  | array      | u32 item count, the items                                      |
 * | 11  | object     | u32 key count, then per key: u32 byte count, UTF-8, the value  |
 *
 * Encoding sizes the value first, so an unsupported value throws before `out` changes and
 * the value is then written with one `append`. Decoding never trusts a count or a length:
 * each is checked against the bytes left before anything is allocated from it.
 */
import type { OutBuffer } from './message-codec.js';

/**
 * What a state machine returns from `onApply` (through `done`) and what queries and their
 * answers are: JSON's values plus undefined, bigint and bytes.
 */
export type Value =
  | undefined
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | Value[]
  | { [k: string]: Value };

/** The tag bytes. Part of the format: never renumber. */
export enum ValueTag {
  Undefined = 0,
  Null = 1,
  False = 2,
  True = 3,
  Int32 = 4,
  Float64 = 5,
  BigInt64 = 6,
  BigIntDecimal = 7,
  String = 8,
  Bytes = 9,
  Array = 10,
  Object = 11,
}

/**
 * Deepest nesting of arrays and objects accepted, both ways. Encoding: a cycle would
 * otherwise recurse until the stack overflows. Decoding: a few bytes per level are enough
 * to build a hostile input that would overflow the stack.
 */
export const MAX_VALUE_DEPTH = 256;

/** The longest length a u32 prefix can carry. */
const U32_MAX = 0xffff_ffff;

// ------------------------------------------------------------------ errors

/** Malformed bytes given to `decodeValue`. The only error `decodeValue` throws. */
export class ValueDecodeError extends Error {
  override readonly name = 'ValueDecodeError';
  /** Stable code to match on. */
  readonly code = 'ERR_VALUE_DECODE';
  /** Where in the buffer decoding stopped. */
  readonly offset: number;

  constructor(message: string, offset: number) {
    super(`${message} (at byte ${offset})`);
    this.offset = offset;
  }
}

/** Names a value's type for an error: `function`, `symbol`, `Map`, `Int16Array`, `Foo`... */
function typeName(v: unknown): string {
  if (typeof v !== 'object' || v === null) return typeof v;
  const proto: unknown = Object.getPrototypeOf(v);
  const ctor = (proto as { constructor?: { name?: unknown } } | null)?.constructor;
  return typeof ctor?.name === 'string' && ctor.name !== '' ? ctor.name : 'object';
}

function unsupported(v: unknown): TypeError {
  return new TypeError(
    `cannot encode a value of type ${typeName(v)}: only undefined, null, booleans, numbers, bigints, ` +
      'strings, Uint8Array, arrays and plain objects',
  );
}

function isPlainObject(v: object): boolean {
  const proto: unknown = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

// ------------------------------------------------------------------ sizing

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/**
 * UTF-8 length of `s`. Throws TypeError for a lone surrogate: UTF-8 cannot carry it and
 * TextEncoder would quietly turn it into U+FFFD, so the value would not come back as sent.
 */
function utf8Bytes(s: string): number {
  let byteCount = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) byteCount += 1;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) throw new TypeError('cannot encode a string with a lone surrogate');
      // Two UTF-16 units, four bytes.
      byteCount += 2;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff)
      throw new TypeError('cannot encode a string with a lone surrogate');
    else byteCount += 2;
  }
  if (byteCount > U32_MAX) throw new RangeError(`a string of ${byteCount} bytes is too long to encode`);
  return byteCount;
}

function sizeOf(v: unknown, depth: number): number {
  switch (typeof v) {
    case 'undefined':
    case 'boolean':
      return 1;
    case 'number':
      return isInt32(v) ? 5 : 9;
    case 'bigint':
      return v >= INT64_MIN && v <= INT64_MAX ? 9 : 5 + v.toString().length;
    case 'string':
      return 5 + utf8Bytes(v);
    case 'object': {
      if (v === null) return 1;
      if (depth >= MAX_VALUE_DEPTH)
        throw new TypeError(`cannot encode a value nested deeper than ${MAX_VALUE_DEPTH} levels (a cycle?)`);
      if (v instanceof Uint8Array) return 5 + v.byteLength;
      if (Array.isArray(v)) {
        let byteCount = 5;
        for (let i = 0; i < v.length; i++) byteCount += sizeOf(v[i], depth + 1);
        return byteCount;
      }
      if (!isPlainObject(v)) throw unsupported(v);
      let byteCount = 5;
      const record = v as Record<string, unknown>;
      for (const key of Object.keys(record)) byteCount += 4 + utf8Bytes(key) + sizeOf(record[key], depth + 1);
      return byteCount;
    }
    default:
      throw unsupported(v);
  }
}

function isInt32(v: number): boolean {
  return (v | 0) === v && !Object.is(v, -0);
}

/**
 * Bytes `v` encodes to. Throws TypeError for what `Value` does not allow (functions,
 * symbols, Map, class instances, typed arrays other than Uint8Array, a string with a lone
 * surrogate, a cycle). Symbol-keyed and non-enumerable properties are ignored, as by JSON.
 */
export function encodedValueBytes(v: Value): number {
  return sizeOf(v, 0);
}

// ------------------------------------------------------------------ encoding

const utf8Encoder = new TextEncoder();
const scratch = new DataView(new ArrayBuffer(8));

/** Strings up to this many UTF-16 units are copied by hand when ASCII: cheaper than `encodeInto`. */
const SHORT_STRING = 32;

/**
 * Appends `v` to `out` and returns the bytes written. Throws as `encodedValueBytes` does,
 * and then `out` is unchanged.
 */
export function encodeValue(v: Value, out: OutBuffer): number {
  const byteCount = sizeOf(v, 0);
  const start = out.append(byteCount);
  const end = writeValue(out.bytes, start, v);
  // Only a getter that answers differently the second time can get here.
  if (end !== start + byteCount) throw new Error('the value changed while it was being encoded');
  return byteCount;
}

function writeU32(b: Uint8Array, p: number, n: number): void {
  b[p] = n;
  b[p + 1] = n >>> 8;
  b[p + 2] = n >>> 16;
  b[p + 3] = n >>> 24;
}

/** Writes a u32 byte count and the UTF-8 of `s` at `p`; returns the offset after them. */
function writeString(b: Uint8Array, p: number, s: string): number {
  const at = p + 4;
  if (s.length <= SHORT_STRING) {
    let i = 0;
    for (; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      b[at + i] = c;
    }
    if (i === s.length) {
      writeU32(b, p, i);
      return at + i;
    }
  }
  // The region was sized for exactly these bytes, so encodeInto cannot fall short of the
  // string unless it changed; the caller's final check catches that.
  const { written } = utf8Encoder.encodeInto(s, b.subarray(at));
  writeU32(b, p, written);
  return at + written;
}

function writeValue(b: Uint8Array, p: number, v: Value): number {
  switch (typeof v) {
    case 'undefined':
      b[p] = ValueTag.Undefined;
      return p + 1;
    case 'boolean':
      b[p] = v ? ValueTag.True : ValueTag.False;
      return p + 1;
    case 'number':
      if (isInt32(v)) {
        b[p] = ValueTag.Int32;
        writeU32(b, p + 1, v);
        return p + 5;
      }
      b[p] = ValueTag.Float64;
      scratch.setFloat64(0, v, true);
      for (let i = 0; i < 8; i++) b[p + 1 + i] = scratch.getUint8(i);
      return p + 9;
    case 'bigint':
      if (v >= INT64_MIN && v <= INT64_MAX) {
        b[p] = ValueTag.BigInt64;
        scratch.setBigInt64(0, v, true);
        for (let i = 0; i < 8; i++) b[p + 1 + i] = scratch.getUint8(i);
        return p + 9;
      } else {
        const digits = v.toString();
        b[p] = ValueTag.BigIntDecimal;
        writeU32(b, p + 1, digits.length);
        for (let i = 0; i < digits.length; i++) b[p + 5 + i] = digits.charCodeAt(i);
        return p + 5 + digits.length;
      }
    case 'string':
      b[p] = ValueTag.String;
      return writeString(b, p + 1, v);
    default: {
      // sizeOf has accepted the value, so it is null, a Uint8Array, an array or a plain object.
      if (v === null) {
        b[p] = ValueTag.Null;
        return p + 1;
      }
      if (v instanceof Uint8Array) {
        b[p] = ValueTag.Bytes;
        writeU32(b, p + 1, v.byteLength);
        b.set(v, p + 5);
        return p + 5 + v.byteLength;
      }
      if (Array.isArray(v)) {
        b[p] = ValueTag.Array;
        writeU32(b, p + 1, v.length);
        let q = p + 5;
        for (let i = 0; i < v.length; i++) q = writeValue(b, q, v[i]);
        return q;
      }
      const keys = Object.keys(v);
      b[p] = ValueTag.Object;
      writeU32(b, p + 1, keys.length);
      let q = p + 5;
      for (const key of keys) {
        q = writeString(b, q, key);
        q = writeValue(b, q, v[key]);
      }
      return q;
    }
  }
}

// ------------------------------------------------------------------ decoding

// fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: a leading U+FEFF is content.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decoding state. Safe as module state: decoding is synchronous and runs no user code. */
let buf: Uint8Array = new Uint8Array(0);
let pos = 0;
let limit = 0;
/** The current decode's `maxValues`, and how many it may still build. */
let valuesMax = 0;
let valuesLeft = 0;

/**
 * Decodes the one value that fills `bytes[offset, end)`. Strings and bytes are copies: the
 * source may be a ring that is reused right after. Throws `ValueDecodeError`, and nothing
 * else, for malformed input: an unknown tag, a length or count beyond `end`, invalid UTF-8,
 * a bad bigint, a duplicate key, nesting deeper than `MAX_VALUE_DEPTH`, bytes left over
 * after the value, or more than `maxValues` values in all (every value counts, items of
 * arrays and objects included). A decoded value takes tens to hundreds of bytes of heap
 * whatever its encoded size (an empty byte string is 5 bytes on the wire), so input from
 * outside is decoded with a bound on values, checked before any array or object is built.
 */
export function decodeValue(
  bytes: Uint8Array,
  offset: number,
  end: number,
  maxValues = Number.POSITIVE_INFINITY,
): Value {
  if (
    !(bytes instanceof Uint8Array) ||
    !Number.isInteger(offset) ||
    !Number.isInteger(end) ||
    offset < 0 ||
    end < offset ||
    end > bytes.byteLength
  ) {
    throw new ValueDecodeError(`bad range ${offset}..${end} of a ${bytes?.byteLength}-byte buffer`, offset);
  }
  buf = bytes;
  pos = offset;
  limit = end;
  valuesMax = maxValues;
  valuesLeft = maxValues - 1;
  if (valuesLeft < 0) throw new ValueDecodeError(`at most ${maxValues} values may be decoded`, offset);
  try {
    const value = readValue(0);
    if (pos !== end) throw new ValueDecodeError(`${end - pos} bytes left after the value`, pos);
    return value;
  } finally {
    // Let go of the caller's buffer.
    buf = EMPTY;
  }
}

const EMPTY = new Uint8Array(0);

function need(n: number, what: string): void {
  if (limit - pos < n) throw new ValueDecodeError(`${what} needs ${n} bytes, ${limit - pos} left`, pos);
}

function readU32(): number {
  const p = pos;
  pos += 4;
  return (
    (buf[p] as number) +
    (buf[p + 1] as number) * 0x100 +
    (buf[p + 2] as number) * 0x1_0000 +
    (buf[p + 3] as number) * 0x100_0000
  );
}

/** Reads a u32 length and checks that many bytes follow. */
function readLength(what: string): number {
  need(4, `the length of ${what}`);
  const n = readU32();
  if (n > limit - pos) throw new ValueDecodeError(`${what} of ${n} bytes, ${limit - pos} left`, pos - 4);
  return n;
}

function readString(what: string): string {
  const n = readLength(what);
  const start = pos;
  pos += n;
  if (n <= SHORT_STRING) {
    let s = '';
    for (let i = start; i < pos; i++) {
      const c = buf[i] as number;
      if (c >= 0x80) return readUtf8(start, n, what);
      s += String.fromCharCode(c);
    }
    return s;
  }
  return readUtf8(start, n, what);
}

function readUtf8(start: number, n: number, what: string): string {
  try {
    return utf8Decoder.decode(buf.subarray(start, start + n));
  } catch {
    throw new ValueDecodeError(`${what} is not valid UTF-8`, start);
  }
}

function readValue(depth: number): Value {
  need(1, 'a tag');
  const tagAt = pos;
  const tag = buf[pos++] as number;
  switch (tag) {
    case ValueTag.Undefined:
      return undefined;
    case ValueTag.Null:
      return null;
    case ValueTag.False:
      return false;
    case ValueTag.True:
      return true;
    case ValueTag.Int32:
      need(4, 'an int32');
      return readU32() | 0;
    case ValueTag.Float64:
      need(8, 'a float64');
      for (let i = 0; i < 8; i++) scratch.setUint8(i, buf[pos + i] as number);
      pos += 8;
      return scratch.getFloat64(0, true);
    case ValueTag.BigInt64:
      need(8, 'a bigint64');
      for (let i = 0; i < 8; i++) scratch.setUint8(i, buf[pos + i] as number);
      pos += 8;
      return scratch.getBigInt64(0, true);
    case ValueTag.BigIntDecimal:
      return readDecimal();
    case ValueTag.String:
      return readString('a string');
    case ValueTag.Bytes: {
      const n = readLength('bytes');
      // A copy, never a view: the source buffer is reused once the caller moves on.
      const copy = new Uint8Array(n);
      copy.set(buf.subarray(pos, pos + n));
      pos += n;
      return copy;
    }
    case ValueTag.Array: {
      if (depth >= MAX_VALUE_DEPTH)
        throw new ValueDecodeError(`nested deeper than ${MAX_VALUE_DEPTH}`, tagAt);
      need(4, 'an array count');
      const count = readU32();
      // Every item takes at least its tag byte.
      if (count > limit - pos)
        throw new ValueDecodeError(`${count} items cannot fit in ${limit - pos} bytes`, tagAt);
      takeValues(count, tagAt);
      const items: Value[] = [];
      for (let i = 0; i < count; i++) items.push(readValue(depth + 1));
      return items;
    }
    case ValueTag.Object: {
      if (depth >= MAX_VALUE_DEPTH)
        throw new ValueDecodeError(`nested deeper than ${MAX_VALUE_DEPTH}`, tagAt);
      need(4, 'an object key count');
      const count = readU32();
      // Every entry takes at least a key length and a tag byte.
      if (count > (limit - pos) / 5)
        throw new ValueDecodeError(`${count} keys cannot fit in ${limit - pos} bytes`, tagAt);
      takeValues(count, tagAt);
      const record: { [k: string]: Value } = {};
      for (let i = 0; i < count; i++) {
        const keyAt = pos;
        const key = readString('a key');
        if (Object.hasOwn(record, key))
          throw new ValueDecodeError(`duplicate key ${JSON.stringify(key)}`, keyAt);
        const value = readValue(depth + 1);
        // Plain assignment of "__proto__" would set the prototype instead of adding a key.
        if (key === '__proto__')
          Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
        else record[key] = value;
      }
      return record;
    }
    default:
      throw new ValueDecodeError(`unknown value tag ${tag}`, tagAt);
  }
}

/** Counts `n` more values against the decode's bound, before anything is built for them. */
function takeValues(n: number, at: number): void {
  valuesLeft -= n;
  if (valuesLeft < 0) throw new ValueDecodeError(`more than ${valuesMax} values`, at);
}

function readDecimal(): bigint {
  const start = pos;
  const n = readLength('a bigint');
  const from = pos;
  pos += n;
  // Checked by hand: BigInt() would also accept "", surrounding whitespace and "0x..." forms.
  let i = from;
  if (i < pos && buf[i] === 0x2d /* - */) i++;
  if (i === pos) throw new ValueDecodeError('a bigint without digits', start);
  let digits = '';
  for (let j = from; j < pos; j++) {
    const c = buf[j] as number;
    if (j >= i && (c < 0x30 || c > 0x39)) throw new ValueDecodeError('a bigint with a non-digit', j);
    digits += String.fromCharCode(c);
  }
  return BigInt(digits);
}
