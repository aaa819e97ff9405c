/**
 * CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of stored entries.
 *
 * Two implementations, chosen by size, because measurement says neither wins everywhere
 * (`node dist/native-bench/codec-bench.js --only crc`, this 2-vCPU machine, Node 20):
 *
 *   bytes    table loop (JS)        @node-rs/crc32 (SSE4.2 through N-API)
 *   16       48 ns    (330 MB/s)    160 ns  (100 MB/s)   one N-API call costs ~130-150 ns
 *   48       120 ns   (400 MB/s)    137 ns  (350 MB/s)
 *   64       151 ns   (420 MB/s)    131 ns  (490 MB/s)   crossover
 *   256      585 ns   (440 MB/s)    177 ns  (1.4 GB/s)
 *   4 KiB    9.4 µs   (440 MB/s)    0.94 µs (4.4 GB/s)
 *   64 KiB   145 µs   (450 MB/s)    11 µs   (5.9 GB/s)
 *
 * Below `NATIVE_MIN_BYTES` the table loop is faster (no boundary crossing); from it on the
 * native hardware instruction is, by 10× and more for 4 KiB. Entry headers (28 bytes
 * covered) and small commands therefore stay in JavaScript, larger payloads go native.
 *
 * Both accept a `seed`, the CRC of the bytes before (so `crc32c(b, crc32c(a))` equals the
 * CRC of a followed by b), and work on views of a SharedArrayBuffer (the log window).
 */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/**
 * From this length on, the native implementation is used. Set from the crossover measured
 * by `native-bench/codec-bench.ts`: between 48 and 64 bytes on this machine, where one
 * N-API call costs as much as the table loop over ~55 bytes.
 */
export const NATIVE_MIN_BYTES = 64;

/** The reflected Castagnoli polynomial. */
const POLY = 0x82f63b78;

// Int32Array rather than Uint32Array: every value in the loop is then an int32, whereas a
// Uint32Array element above 2^31-1 reads as a double.
const TABLE = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
  TABLE[n] = c;
}

/**
 * CRC32C of `bytes[start, end)` by the byte-at-a-time table loop. Allocates nothing, which
 * is why the entry codec uses it for headers (no subarray view is needed).
 */
export function crc32cTable(bytes: Uint8Array, start: number, end: number, seed = 0): number {
  let c = ~seed;
  for (let i = start; i < end; i++) c = (TABLE[(c ^ (bytes[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}

/**
 * CRC32C of `bytes[start, end)`, continuing from `seed` (the CRC of what came before; 0 to
 * start afresh). Returns an unsigned 32-bit number. Short ranges allocate nothing; long
 * ones allocate one subarray view to hand to the native code.
 */
export function crc32cRange(bytes: Uint8Array, start: number, end: number, seed = 0): number {
  if (end - start < NATIVE_MIN_BYTES) return crc32cTable(bytes, start, end, seed);
  return nativeCrc32c(bytes.subarray(start, end), seed) >>> 0;
}

/** CRC32C of all of `bytes`, continuing from `seed` (0 to start afresh); unsigned 32-bit. */
export function crc32c(bytes: Uint8Array, seed = 0): number {
  if (bytes.byteLength < NATIVE_MIN_BYTES) return crc32cTable(bytes, 0, bytes.byteLength, seed);
  return nativeCrc32c(bytes, seed) >>> 0;
}
