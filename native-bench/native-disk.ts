/**
 * raftline's side of the fdatasync rows: the log-writer's group commit through
 * `SegmentLog` (src/workers/log-writer/segment-log.ts), on the calling thread.
 *
 * Each group commit is what the log-writer worker does per drained ring batch: `append`
 * the batch's records (already encoded, as they arrive from the log window), `sync()`
 * (one fdatasync), then one `prepareSpare` step of 1 MiB (zero-filling the next segment
 * ahead; the worker's SPARE_STEP_BYTES). Only those three calls are timed. Outside the
 * clock: renumbering the batch (the records are encoded once; each batch rewrites their
 * index fields and header CRCs, so the files hold valid records) and `compactTo`, which
 * deletes filled segments so a fast disk does not fill up (in a node, compaction follows
 * snapshots).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32cTable } from '../src/shared/crc32c.js';
import { writeU32, writeU64 } from '../src/shared/entry-codec.js';
import {
  ENTRY_HEADER_BYTES,
  ENTRY_HEADER_CRC_OFFSET,
  ENTRY_HEADER_CRC_RESUME_OFFSET,
  ENTRY_INDEX_OFFSET,
} from '../src/shared/protocol.js';
import { SegmentLog } from '../src/workers/log-writer/segment-log.js';
import { encodeBatch } from './bench-records.js';

/** The log-writer's zero-fill step after each group commit (SPARE_STEP_BYTES in its worker.ts). */
const SPARE_STEP_BYTES = 1024 * 1024;

/** Figures of one batch size, rates over the timed calls only. */
export interface GroupCommitFigures {
  readonly batchEntries: number;
  readonly recordBytes: number;
  /** Group commits in the timed part. */
  readonly commits: number;
  readonly entriesPerSec: number;
  readonly commitsPerSec: number;
  /** Record bytes made durable per second (10^6 bytes). */
  readonly mbPerSec: number;
  /** Median time of one group commit (append + sync + spare step), µs. */
  readonly p50CommitUs: number;
  /** Share of the timed part spent zero-filling the spare segment (prepareSpare), 0..1. */
  readonly spareShare: number;
  readonly busySeconds: number;
}

/**
 * Group commits of `batchEntries` records of `payloadBytes` each into a fresh log in a
 * temporary directory under `parentDir`, for `seconds` of wall time after a warm-up of a
 * quarter of that (the first segment's creation and the spare's first steps are not the
 * steady state). `segmentBytes` defaults to the node's 64 MiB; the smoke test passes less.
 */
export function measureGroupCommit(
  parentDir: string,
  batchEntries: number,
  payloadBytes: number,
  seconds: number,
  segmentBytes?: number,
): GroupCommitFigures {
  const dir = fs.mkdtempSync(path.join(parentDir, 'segment-'));
  const recordBytes = ENTRY_HEADER_BYTES + payloadBytes;
  try {
    const { log } = SegmentLog.open({
      dir,
      sync: true,
      ...(segmentBytes === undefined ? {} : { segmentBytes }),
    });
    const records = encodeBatch(1, batchEntries, new Uint8Array(payloadBytes).fill(0x5a));
    let next = 1;
    /** Gives the records indexes next.. and fixes their header CRCs (layout: protocol.ts). */
    const renumber = (): void => {
      for (let k = 0, at = 0; k < batchEntries; k++, at += recordBytes) {
        writeU64(records, at + ENTRY_INDEX_OFFSET, next + k);
        const first = crc32cTable(records, at, at + ENTRY_HEADER_CRC_OFFSET);
        const crc = crc32cTable(records, at + ENTRY_HEADER_CRC_RESUME_OFFSET, at + ENTRY_HEADER_BYTES, first);
        writeU32(records, at + ENTRY_HEADER_CRC_OFFSET, crc);
      }
    };
    let spareMs = 0;
    const commit = (): number => {
      renumber();
      const startMs = performance.now();
      log.append(records, next, next + batchEntries - 1, 1);
      log.sync();
      const spareStartMs = performance.now();
      log.prepareSpare(SPARE_STEP_BYTES);
      const endMs = performance.now();
      spareMs += endMs - spareStartMs;
      const ms = endMs - startMs;
      next += batchEntries;
      log.compactTo(next - 1);
      return ms;
    };
    const warmUpEndMs = performance.now() + (seconds * 1000) / 4;
    do commit();
    while (performance.now() < warmUpEndMs);

    const commitMs: number[] = [];
    let busyMs = 0;
    spareMs = 0;
    const endMs = performance.now() + seconds * 1000;
    do {
      const ms = commit();
      busyMs += ms;
      commitMs.push(ms);
    } while (performance.now() < endMs);
    log.close();
    commitMs.sort((a, b) => a - b);
    const commits = commitMs.length;
    const busySeconds = busyMs / 1000;
    return {
      batchEntries,
      recordBytes,
      commits,
      entriesPerSec: (commits * batchEntries) / busySeconds,
      commitsPerSec: commits / busySeconds,
      mbPerSec: (commits * batchEntries * recordBytes) / busySeconds / 1e6,
      p50CommitUs: (commitMs[Math.floor(commits / 2)] as number) * 1000,
      spareShare: spareMs / busyMs,
      busySeconds,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
