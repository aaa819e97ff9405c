/**
 * Group-commit figures of the log-writer's disk side (src/workers/log-writer/segment-log.ts):
 * batches of N records of 100-byte payloads are appended and synced after each batch, as
 * the log-writer does once per drained ring batch.
 *
 *   npx tsc -p . && node dist/native-bench/segment-bench.js [--secs 2] [--dir /path] [--batches 1,16,256]
 *       [--rounds 1] [--nosync]
 *
 * --dir chooses the filesystem measured (default: a temporary directory under os.tmpdir(),
 * which may be a different disk than the data directory). Prints one line per batch size:
 * batches/s, entries/s, fdatasync/s, and the mean time spent in sync() per batch (with
 * --rounds R the cases run R times interleaved and the median run is printed). A baseline
 * line measures the same appends into a file that grows (no preallocation), which is what
 * preallocation is meant to beat.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SegmentLog } from '../src/workers/log-writer/segment-log.js';
import { encodeBatch } from './bench-records.js';

const PAYLOAD_BYTES = 100;

const argv = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < argv.length ? (argv[at + 1] as string) : fallback;
};
const budgetMs = Number(option('secs', '2')) * 1000;
const batchSizes = option('batches', '1,16,256').split(',').map(Number);
const parentDir = option('dir', os.tmpdir());
const sync = !argv.includes('--nosync');
const rounds = Number(option('rounds', '1'));

interface Figures {
  batches: number;
  entries: number;
  syncs: number;
  elapsedMs: number;
  syncMs: number;
}

function print(name: string, f: Figures): void {
  const perSec = (n: number): string => ((n * 1000) / f.elapsedMs).toFixed(0).padStart(8);
  console.log(
    `${name.padEnd(34)} ${perSec(f.batches)} batches/s ${perSec(f.entries)} entries/s ${perSec(f.syncs)} fdatasync/s ` +
      `${(f.syncMs / f.batches).toFixed(3).padStart(7)} ms sync/batch`,
  );
}

/** Appends batches of `batchEntries` records and syncs after each, for the budget. */
function benchSegmentLog(batchEntries: number): Figures {
  const dir = fs.mkdtempSync(path.join(parentDir, 'segment-bench-'));
  const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x5a);
  try {
    const { log } = SegmentLog.open({ dir, sync });
    // The first segment's preallocation (64 MiB of zeroes) is not part of the steady state.
    log.append(encodeBatch(1, 1, payload), 1, 1, 1);
    log.sync();
    let next = 2;
    const f: Figures = { batches: 0, entries: 0, syncs: 0, elapsedMs: 0, syncMs: 0 };
    const startMs = performance.now();
    do {
      // Encoding is timed too; it is ~1 µs per record against a sync of a millisecond or so.
      const records = encodeBatch(next, batchEntries, payload);
      log.append(records, next, next + batchEntries - 1, 1);
      next += batchEntries;
      const syncStartMs = performance.now();
      log.sync();
      f.syncMs += performance.now() - syncStartMs;
      f.batches++;
      f.entries += batchEntries;
      if (sync) f.syncs++;
      f.elapsedMs = performance.now() - startMs;
    } while (f.elapsedMs < budgetMs);
    log.close();
    return f;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The same appends, single records, into a file that grows with each write. */
function benchGrowingFile(): Figures {
  const dir = fs.mkdtempSync(path.join(parentDir, 'segment-bench-'));
  try {
    const fd = fs.openSync(path.join(dir, 'growing'), 'w');
    const records = encodeBatch(1, 1, new Uint8Array(PAYLOAD_BYTES).fill(0x5a));
    const f: Figures = { batches: 0, entries: 0, syncs: 0, elapsedMs: 0, syncMs: 0 };
    let positionBytes = 0;
    const startMs = performance.now();
    do {
      fs.writeSync(fd, records, 0, records.byteLength, positionBytes);
      positionBytes += records.byteLength;
      const syncStartMs = performance.now();
      if (sync) fs.fdatasyncSync(fd);
      f.syncMs += performance.now() - syncStartMs;
      f.batches++;
      f.entries++;
      if (sync) f.syncs++;
      f.elapsedMs = performance.now() - startMs;
    } while (f.elapsedMs < budgetMs);
    fs.closeSync(fd);
    return f;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The run of median rate among `runs` (by batches/s): one noisy run does not decide. */
function median(runs: Figures[]): Figures {
  const sorted = [...runs].sort((a, b) => a.batches / a.elapsedMs - b.batches / b.elapsedMs);
  return sorted[Math.floor(sorted.length / 2)] as Figures;
}

console.log(
  `# ${PAYLOAD_BYTES}-byte payloads, sync=${sync}, in ${parentDir}, ${budgetMs / 1000} s per run, ` +
    `median of ${rounds} interleaved run(s)`,
);
const cases: { name: string; run: () => Figures }[] = [
  ...batchSizes.map((n) => ({ name: `segment log, batch ${n}`, run: () => benchSegmentLog(n) })),
  { name: 'baseline: growing file, batch 1', run: benchGrowingFile },
];
const results = cases.map((): Figures[] => []);
// Rounds interleave the cases, so a burst of load elsewhere on the machine hits them alike.
for (let round = 0; round < rounds; round++) {
  for (const [i, c] of cases.entries()) results[i]?.push(c.run());
}
for (const [i, c] of cases.entries()) print(c.name, median(results[i] as Figures[]));
