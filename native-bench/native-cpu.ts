/**
 * raftline's side of the CPU rows, on the calling thread, the same cases as
 * native-bench/c/cpu.c so each pair compares like with like:
 *
 * - CRC32C over many distinct 64 B / 4 KiB / 64 KiB buffers (~4 MiB in all, so small
 *   sizes are not served from one cache line): the JavaScript table loop (`crc32cTable`),
 *   the SIMD package `@node-rs/crc32` called directly, and `crc32c()`, raftline's choice
 *   between the two by size (src/shared/crc32c.ts);
 * - stored entry records with 16 B and 4 KiB payloads: `encodeEntry` into one buffer,
 *   then `decodeEntryAt` over it (both CRCs verified), as codec-bench.ts does.
 *
 * Also the check values native.ts compares with cpu.c: the CRC of "123456789" and one
 * encoded record, so a pair is known to compute the same thing.
 */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import { type Entry, EntryType } from '../src/raft/types.js';
import { crc32c, crc32cTable } from '../src/shared/crc32c.js';
import { decodeEntryAt, encodedEntryBytes, encodeEntry } from '../src/shared/entry-codec.js';
import { DEFAULT_ENTRY_LIMITS } from '../src/shared/protocol.js';
import { filled, measureRate, type Rate } from './bench-timing.js';

/** The CRC buffer sizes, bytes. */
export const CRC_SIZES = [64, 4096, 65536] as const;
/** The entry payload sizes, bytes. */
export const ENTRY_PAYLOADS = [16, 4096] as const;

/** The three JavaScript-side CRC32C implementations. */
export type CrcImpl = 'table' | 'node-rs' | 'crc32c';

export interface CpuFigures {
  readonly crc: { readonly impl: CrcImpl; readonly sizeBytes: number; readonly rate: Rate }[];
  readonly entry: { readonly op: 'encode' | 'decode'; readonly payloadBytes: number; readonly rate: Rate }[];
}

/** Every case, `budgetMs` of warm-up then `budgetMs` measured each. */
export function measureCpu(budgetMs: number): CpuFigures {
  const figures: CpuFigures = { crc: [], entry: [] };
  for (const sizeBytes of CRC_SIZES) {
    const count = Math.max(64, Math.floor((4 << 20) / sizeBytes));
    const backing = filled(sizeBytes * count);
    const views: Uint8Array[] = [];
    for (let i = 0; i < count; i++) views.push(backing.subarray(i * sizeBytes, (i + 1) * sizeBytes));
    const totalBytes = sizeBytes * count;
    const rounds: Record<CrcImpl, () => number> = {
      table: () => {
        let x = 0;
        for (const v of views) x ^= crc32cTable(v, 0, v.byteLength);
        return x;
      },
      'node-rs': () => {
        let x = 0;
        for (const v of views) x ^= nativeCrc32c(v);
        return x;
      },
      crc32c: () => {
        let x = 0;
        for (const v of views) x ^= crc32c(v);
        return x;
      },
    };
    for (const impl of ['table', 'node-rs', 'crc32c'] as const) {
      figures.crc.push({ impl, sizeBytes, rate: measureRate(budgetMs, count, totalBytes, rounds[impl]) });
    }
  }
  for (const payloadBytes of ENTRY_PAYLOADS) {
    const count = payloadBytes <= 16 ? 4096 : 256;
    const payloads = filled(count * payloadBytes, 7);
    const entries: Entry[] = [];
    for (let i = 0; i < count; i++) {
      entries.push({
        index: 1_000_000 + i,
        term: 7,
        type: EntryType.Normal,
        data: payloads.subarray(i * payloadBytes, (i + 1) * payloadBytes),
      });
    }
    let recordBytes = 0;
    for (const e of entries) recordBytes += encodedEntryBytes(e);
    const out = new Uint8Array(recordBytes);
    const encode = (): number => {
      let pos = 0;
      for (const e of entries) pos += encodeEntry(e, out, pos);
      return pos;
    };
    figures.entry.push({
      op: 'encode',
      payloadBytes,
      rate: measureRate(budgetMs, count, recordBytes, encode),
    });
    const max = DEFAULT_ENTRY_LIMITS.maxEntryPayloadBytes;
    const decode = (): number => {
      let pos = 0;
      let x = 0;
      while (pos < recordBytes) {
        const got = decodeEntryAt(out, pos, recordBytes, max);
        if ('kind' in got) throw new Error(got.message);
        x ^= got.index;
        pos += encodedEntryBytes(got);
      }
      return x;
    };
    figures.entry.push({
      op: 'decode',
      payloadBytes,
      rate: measureRate(budgetMs, count, recordBytes, decode),
    });
  }
  return figures;
}

/** CRC32C of "123456789" by the table loop and by @node-rs/crc32, as hex: e3069283 both. */
export function crcCheck(): { table: string; nodeRs: string } {
  const bytes = new TextEncoder().encode('123456789');
  const hex = (n: number): string => (n >>> 0).toString(16).padStart(8, '0');
  return { table: hex(crc32cTable(bytes, 0, bytes.byteLength)), nodeRs: hex(nativeCrc32c(bytes)) };
}

/** One record in hex, the entry cpu.c encodes for its check: index 1000000, term 7, payload 0..15. */
export function entryCheckHex(): string {
  const data = new Uint8Array(16).map((_, i) => i);
  const out = new Uint8Array(48);
  encodeEntry({ index: 1_000_000, term: 7, type: EntryType.Normal, data }, out, 0);
  return Buffer.from(out).toString('hex');
}
