/**
 * Catch-up read throughput of the replicator's segment reader
 * (src/workers/replicator/segment-reader.ts): a follower that lags behind the in-memory
 * window is sent the log from disk in batches of `maxBytes`, each read starting where the
 * last ended (lo, lo+n, lo+2n...), with every record's CRCs and index verified.
 *
 *   npx tsc -p . && node dist/native-bench/segment-reader-bench.js [--entries 500000] [--secs 2]
 *       [--batches 65536,1048576] [--segment-mib 64] [--dir /path]
 *
 * The log (100-byte payloads) is written once without syncing, so the reads come from the
 * page cache: this measures the reader's own cost (syscalls, CRC32C, copies), not the
 * disk. Prints one line per batch size: MB/s of records and entries/s, and, as a
 * reference, the same batches through `SegmentLog.readRange`, which knows the offsets and
 * verifies nothing.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SegmentLog } from '../src/workers/log-writer/segment-log.js';
import { SegmentReader } from '../src/workers/replicator/segment-reader.js';
import { encodeBatch } from './bench-records.js';

const PAYLOAD_BYTES = 100;
const RECORD_BYTES = 32 + PAYLOAD_BYTES;

const argv = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < argv.length ? (argv[at + 1] as string) : fallback;
};
const entryCount = Number(option('entries', '500000'));
const budgetMs = Number(option('secs', '2')) * 1000;
const batchBytesList = option('batches', '65536,1048576').split(',').map(Number);
const segmentBytes = Number(option('segment-mib', '64')) * 1024 * 1024;
const parentDir = option('dir', os.tmpdir());

interface Figures {
  bytes: number;
  entries: number;
  reads: number;
  elapsedMs: number;
}

/** Passes over the whole log in batches of `batchBytes`, for the budget; `read` returns the last index read. */
function measure(batchBytes: number, read: (lo: number, hi: number) => number): Figures {
  const f: Figures = { bytes: 0, entries: 0, reads: 0, elapsedMs: 0 };
  const batchEntries = Math.max(1, Math.floor(batchBytes / RECORD_BYTES));
  const startMs = performance.now();
  do {
    for (let lo = 1; lo <= entryCount; ) {
      const last = read(lo, Math.min(entryCount, lo + batchEntries - 1));
      f.entries += last - lo + 1;
      f.bytes += (last - lo + 1) * RECORD_BYTES;
      f.reads++;
      lo = last + 1;
    }
    f.elapsedMs = performance.now() - startMs;
  } while (f.elapsedMs < budgetMs);
  return f;
}

function print(name: string, f: Figures): void {
  const seconds = f.elapsedMs / 1000;
  console.log(
    `${name.padEnd(40)} ${(f.bytes / 1e6 / seconds).toFixed(0).padStart(6)} MB/s ` +
      `${(f.entries / seconds).toFixed(0).padStart(9)} entries/s ` +
      `${((f.elapsedMs * 1000) / f.reads).toFixed(1).padStart(8)} µs/read`,
  );
}

const dir = fs.mkdtempSync(path.join(parentDir, 'segment-reader-bench-'));
try {
  const { log } = SegmentLog.open({ dir, segmentBytes, sync: false });
  const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x5a);
  const chunkEntries = 10_000;
  for (let lo = 1; lo <= entryCount; lo += chunkEntries) {
    const count = Math.min(chunkEntries, entryCount - lo + 1);
    log.append(encodeBatch(lo, count, payload), lo, lo + count - 1, 1);
  }
  const segments = fs.readdirSync(dir).filter((name) => name.endsWith('.seg')).length;
  console.log(
    `# ${entryCount} entries of ${PAYLOAD_BYTES}-byte payloads (${((entryCount * RECORD_BYTES) / 1e6).toFixed(0)} MB) ` +
      `in ${segments} segment(s) of ${segmentBytes / 1024 / 1024} MiB, page cache, ${budgetMs / 1000} s per case`,
  );
  for (const batchBytes of batchBytesList) {
    const reader = new SegmentReader(dir);
    const f = measure(batchBytes, (lo, hi) => {
      const got = reader.read(lo, hi, 1, batchBytes);
      if (got === null) throw new Error(`read ${lo}..${hi} returned null`);
      return got.lastIndex;
    });
    const stats = reader.stats();
    reader.close();
    print(`SegmentReader, maxBytes ${batchBytes}`, f);
    console.log(
      `#   ${(stats.preads / stats.reads).toFixed(2)} preads/read, ${(stats.preadBytes / f.bytes).toFixed(3)} bytes read per byte returned, ` +
        `${stats.relists} listing(s), ${stats.staleHints} stale hints`,
    );
    print(
      `reference: SegmentLog.readRange, ${batchBytes}`,
      measure(batchBytes, (lo, hi) => {
        log.readRange(lo, hi);
        return hi;
      }),
    );
  }
  log.close();
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
