/**
 * The replicator's reader of segment files: byte-identical records across segments, the
 * byte budget, sequential catch-up without rescans, and `null` (never wrong records) when
 * the files were truncated, rewritten, unlinked, damaged or are still being written,
 * including while a log-writer in another thread appends and truncates.
 */

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import type { Entry } from '../../src/raft/types.js';
import { decodeEntryAt, encodedEntryBytes, encodeEntries } from '../../src/shared/entry-codec.js';
import { ENTRY_HEADER_BYTES } from '../../src/shared/protocol.js';
import { SegmentLog, segmentFileName } from '../../src/workers/log-writer/segment-log.js';
import { SegmentReader } from '../../src/workers/replicator/segment-reader.js';
import { appendEntries, entries, entryOf } from './log-fixtures.js';

const SMALL_SEGMENT_BYTES = 4096;
/** Bytes of a record with the default 100-byte payload. */
const RECORD_BYTES = ENTRY_HEADER_BYTES + 100;

let dir = '';
let reader: SegmentReader | null = null;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segment-reader-'));
});

afterEach(() => {
  reader?.close();
  reader = null;
  fs.rmSync(dir, { recursive: true, force: true });
});

function openLog(): SegmentLog {
  return SegmentLog.open({ dir, segmentBytes: SMALL_SEGMENT_BYTES, sync: false }).log;
}

function newReader(): SegmentReader {
  reader = new SegmentReader(dir);
  return reader;
}

function segmentFiles(): string[] {
  return fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.seg'))
    .sort();
}

function flipByte(file: string, offsetBytes: number): void {
  const fd = fs.openSync(file, 'r+');
  const one = new Uint8Array(1);
  fs.readSync(fd, one, 0, 1, offsetBytes);
  one[0] = (one[0] as number) ^ 0x40;
  fs.writeSync(fd, one, 0, 1, offsetBytes);
  fs.closeSync(fd);
}

/** Asserts `read` returned lo..hi exactly as `log.readRange` has them, in a fresh buffer. */
function assertRead(
  got: ReturnType<SegmentReader['read']>,
  log: SegmentLog,
  lo: number,
  hi: number,
  what = `${lo}..${hi}`,
): void {
  assert.ok(got !== null, `${what}: null`);
  assert.equal(got.lastIndex, hi, what);
  assert.equal(got.count, hi - lo + 1, what);
  assert.deepEqual(got.records, log.readRange(lo, hi), what);
  assert.equal(got.records.byteOffset, 0);
  assert.equal(got.records.buffer.byteLength, got.records.byteLength, `${what}: not a fresh buffer`);
}

describe('SegmentReader', () => {
  test('reads across segment boundaries return the records readRange returns', () => {
    const log = openLog();
    // Mixed sizes, a record larger than a segment, and a term change.
    appendEntries(log, entries(1, 70, 1));
    appendEntries(log, [entryOf(71, 2, 6000)]);
    appendEntries(log, entries(72, 140, 2, 7));
    appendEntries(log, entries(141, 200, 3, 300));
    assert.ok(segmentFiles().length >= 10, `${segmentFiles().length} segments`);
    const r = newReader();
    const termOf = (index: number): number => (index <= 70 ? 1 : index <= 140 ? 2 : 3);
    const ranges: [number, number][] = [
      [1, 1],
      [1, 31],
      [31, 32],
      [30, 95],
      [70, 72],
      [71, 71],
      [1, 200],
      [139, 200],
      [200, 200],
      [5, 6],
    ];
    for (const [lo, hi] of ranges) assertRead(r.read(lo, hi, termOf(hi), Infinity), log, lo, hi);
    log.close();
  });

  test('maxBytes cuts at a record boundary, returning at least one record, without the term check', () => {
    const log = openLog();
    appendEntries(log, entries(1, 100, 1));
    const r = newReader();
    // Exactly three records fit.
    assertRead(r.read(10, 50, 99, 3 * RECORD_BYTES), log, 10, 12);
    assertRead(r.read(10, 50, 99, 4 * RECORD_BYTES - 1), log, 10, 12);
    // Smaller than one record: still one.
    assertRead(r.read(10, 50, 99, 1), log, 10, 10);
    assertRead(r.read(10, 50, 99, 0), log, 10, 10);
    // Across a segment boundary (31 records per segment).
    assertRead(r.read(30, 100, 99, 10 * RECORD_BYTES), log, 30, 39);
    // The budget reached exactly at hi: the term at hi is checked.
    assert.equal(r.read(10, 12, 99, 3 * RECORD_BYTES), null);
    assertRead(r.read(10, 12, 1, 3 * RECORD_BYTES), log, 10, 12);
    // A single oversized record.
    appendEntries(log, [entryOf(101, 1, 9000)]);
    assertRead(r.read(101, 101, 1, 100), log, 101, 101);
    log.close();
  });

  test('sequential catch-up reads a large log without rescanning or re-listing', () => {
    const log = openLog();
    const lastIndex = 20_000;
    for (let lo = 1; lo <= lastIndex; lo += 1000) appendEntries(log, entries(lo, lo + 999, 1));
    const segments = segmentFiles().length;
    assert.ok(segments > 600, `${segments} segments`);
    const r = newReader();
    const parts: Uint8Array[] = [];
    let next = 1;
    let reads = 0;
    while (next <= lastIndex) {
      const hi = Math.min(next + 199, lastIndex);
      const got = r.read(next, hi, 1, 16 * 1024);
      assert.ok(got !== null, `read at ${next}`);
      parts.push(got.records);
      next = got.lastIndex + 1;
      reads++;
    }
    assert.deepEqual(Buffer.concat(parts), Buffer.from(log.readRange(1, lastIndex)));
    const stats = r.stats();
    assert.equal(stats.relists, 1, 'listed once');
    assert.equal(stats.opens, segments, 'each segment opened once');
    assert.equal(stats.staleHints, 0);
    // Each read starts where the last ended: the files are read about once.
    const fileBytes = lastIndex * RECORD_BYTES;
    assert.ok(stats.preadBytes < 2 * fileBytes, `${stats.preadBytes} bytes read for ${fileBytes}`);
    // About one pread per segment (the 4 KiB segments are smaller than a read) and per read.
    assert.ok(stats.preads <= segments + 2 * reads, `${stats.preads} preads for ${reads} reads`);
    log.close();
  });

  test('random access uses the sparse offsets rather than scanning from the segment start', () => {
    const log = SegmentLog.open({ dir, segmentBytes: 1024 * 1024, sync: false }).log;
    appendEntries(log, entries(1, 7000, 1));
    assert.equal(segmentFiles().length, 1);
    const r = newReader();
    assertRead(r.read(6990, 7000, 1, Infinity), log, 6990, 7000);
    const before = r.stats().preadBytes;
    // Every stride of the segment was learned by the first scan.
    for (const lo of [6500, 3001, 65, 129, 4444, 1]) {
      assertRead(r.read(lo, lo + 3, 1, Infinity), log, lo, lo + 3);
    }
    const perReadBytes = (r.stats().preadBytes - before) / 6;
    assert.ok(perReadBytes < 64 * 1024, `${perReadBytes} bytes per random read`);
    log.close();
  });

  test('after truncation and rewrite in a new term, the old expected term gives null, the new succeeds', () => {
    const log = openLog();
    appendEntries(log, entries(1, 300, 1));
    const r = newReader();
    // Warm the cursor, hints and descriptors at the region to be rewritten.
    assertRead(r.read(50, 60, 1, Infinity), log, 50, 60);
    assertRead(r.read(61, 250, 1, Infinity), log, 61, 250);
    // Within a segment, with records of another size, so the learned offsets are stale.
    appendEntries(log, entries(55, 100, 2, 40));
    assert.equal(r.read(50, 60, 1, Infinity), null);
    assertRead(r.read(50, 60, 2, Infinity), log, 50, 60);
    assertRead(r.read(61, 100, 2, Infinity), log, 61, 100);
    assert.equal(r.read(101, 101, 1, Infinity), null, 'beyond the new last index');
    // Dropping whole segments, recreated under names some of which existed before.
    appendEntries(log, entries(80, 400, 3));
    assert.equal(r.read(150, 250, 1, Infinity), null);
    assertRead(r.read(150, 250, 3, Infinity), log, 150, 250);
    assertRead(r.read(1, 400, 3, Infinity), log, 1, 400);
    assert.ok(r.stats().staleHints > 0);
    log.close();
  });

  test('a segment replaced under the same name is not read through a stale descriptor', () => {
    const log = openLog();
    appendEntries(log, entries(1, 62, 1));
    const r = newReader();
    // 32..62 fill the second segment; its descriptor is now cached.
    assertRead(r.read(32, 62, 1, Infinity), log, 32, 62);
    // Truncate to 19 (unlinks segment 32), then rewrite 20.. with another term: the file
    // named ...32.seg is a new inode; the old one still holds intact term-1 records.
    const inode = fs.statSync(path.join(dir, segmentFileName(32))).ino;
    log.truncateFrom(20);
    appendEntries(log, entries(20, 62, 2, 100));
    assert.notEqual(fs.statSync(path.join(dir, segmentFileName(32))).ino, inode);
    assert.equal(r.read(32, 40, 1, Infinity), null);
    assertRead(r.read(32, 40, 2, Infinity), log, 32, 40);
    // Cut by the budget, so no term check: still the new records, never the old inode's.
    assertRead(r.read(32, 62, 1, 5 * RECORD_BYTES), log, 32, 36);
    log.close();
  });

  test('an unlinked segment gives null', () => {
    const log = openLog();
    appendEntries(log, entries(1, 200, 1));
    const r = newReader();
    assertRead(r.read(40, 50, 1, Infinity), log, 40, 50);
    // Unlinked while its descriptor is cached (segment 32..62)...
    fs.unlinkSync(path.join(dir, segmentFileName(32)));
    assert.equal(r.read(40, 50, 1, Infinity), null);
    assert.equal(r.read(20, 40, 1, Infinity), null, 'a range running into the hole');
    // ...and the first segments removed after a snapshot.
    fs.unlinkSync(path.join(dir, segmentFileName(1)));
    assert.equal(r.read(5, 10, 1, Infinity), null);
    assertRead(r.read(63, 200, 1, Infinity), log, 63, 200);
    log.close();
  });

  test('a flipped byte gives null; records elsewhere still read', () => {
    const log = openLog();
    appendEntries(log, entries(1, 100, 1));
    const r = newReader();
    assertRead(r.read(1, 100, 1, Infinity), log, 1, 100);
    // Payload of 40, header of 70.
    flipByte(path.join(dir, segmentFileName(32)), 8 * RECORD_BYTES + ENTRY_HEADER_BYTES + 50);
    flipByte(path.join(dir, segmentFileName(63)), 7 * RECORD_BYTES + 20);
    assert.equal(r.read(40, 40, 1, Infinity), null);
    assert.equal(r.read(35, 45, 1, Infinity), null);
    assert.equal(r.read(70, 80, 1, Infinity), null);
    assert.equal(r.read(65, 75, 1, Infinity), null, 'skipping over a damaged header');
    assert.equal(r.read(1, 100, 1, Infinity), null);
    // Records behind a damaged header cannot be found in its segment (its length is
    // untrusted); the next segment starts afresh.
    assert.equal(r.read(71, 93, 1, Infinity), null);
    for (const [lo, hi] of [
      [1, 39],
      [41, 69],
      [94, 100],
    ] as const) {
      const got = r.read(lo, hi, 1, Infinity);
      assert.ok(got !== null, `${lo}..${hi}`);
      assert.deepEqual(got.records, encodeEntries(entries(lo, hi, 1)));
    }
    log.close();
  });

  test('a range beyond the last index, a torn append, or no log at all give null', () => {
    const r0 = new SegmentReader(path.join(dir, 'missing'));
    assert.equal(r0.read(1, 1, 1, Infinity), null);
    r0.close();
    const log = openLog();
    const r = newReader();
    assert.equal(r.read(1, 1, 1, Infinity), null, 'empty directory');
    appendEntries(log, entries(1, 45, 1));
    assert.equal(r.read(40, 46, 1, Infinity), null);
    assert.equal(r.read(46, 46, 1, Infinity), null);
    assert.equal(r.read(1000, 2000, 1, Infinity), null);
    // A budget reached before the end of the log is not past what is on disk.
    assertRead(r.read(40, 46, 1, 3 * RECORD_BYTES), log, 40, 42);
    // A record whose header is written but whose payload is not (yet).
    const torn = encodeEntries([entryOf(46, 1)]).subarray(0, ENTRY_HEADER_BYTES + 10);
    const fd = fs.openSync(path.join(dir, segmentFileName(32)), 'r+');
    fs.writeSync(fd, torn, 0, torn.byteLength, 14 * RECORD_BYTES);
    fs.closeSync(fd);
    assert.equal(r.read(40, 46, 1, Infinity), null);
    assertRead(r.read(40, 45, 1, Infinity), log, 40, 45);
    log.close();
  });

  test('appends between reads are picked up, in new segments too', () => {
    const log = openLog();
    appendEntries(log, entries(1, 20, 1));
    const r = newReader();
    assertRead(r.read(1, 20, 1, Infinity), log, 1, 20);
    assert.equal(r.read(21, 21, 1, Infinity), null);
    appendEntries(log, entries(21, 25, 1));
    assertRead(r.read(21, 25, 1, Infinity), log, 21, 25);
    // From the known last segment into segments created since the listing.
    appendEntries(log, entries(26, 130, 2));
    assertRead(r.read(22, 130, 2, Infinity), log, 22, 130);
    appendEntries(log, entries(131, 200, 2));
    assertRead(r.read(190, 200, 2, Infinity), log, 190, 200);
    log.close();
  });

  test('programming errors throw; bad contents never do', () => {
    const r = newReader();
    assert.throws(() => r.read(0, 1, 1, 100), RangeError);
    assert.throws(() => r.read(5, 4, 1, 100), RangeError);
    assert.throws(() => r.read(1.5, 4, 1, 100), RangeError);
    assert.throws(() => r.read(1, 4, 1, Number.NaN), RangeError);
    fs.writeFileSync(path.join(dir, segmentFileName(1)), new Uint8Array(10).fill(0xff));
    fs.writeFileSync(path.join(dir, segmentFileName(7)), new Uint8Array(0));
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'not a segment');
    assert.equal(r.read(1, 3, 1, 100), null);
    assert.equal(r.read(7, 9, 1, 100), null);
    // Intact records whose terms go down cannot be a log.
    fs.writeFileSync(
      path.join(dir, segmentFileName(20)),
      encodeEntries([...entries(20, 22, 2), ...entries(23, 24, 1)]),
    );
    assert.equal(r.read(20, 24, 1, Infinity), null);
    assert.deepEqual(r.read(20, 22, 2, Infinity)?.records, encodeEntries(entries(20, 22, 2)));
    r.close();
    r.close();
    assert.throws(() => r.read(1, 1, 1, 100), /closed/);
  });

  test('property: appends, truncations and reads agree with a model of the log', () => {
    type Op =
      | { kind: 'append'; count: number; payloadBytes: number; termUp: boolean }
      | { kind: 'truncate'; back: number; rewrite: number; payloadBytes: number }
      | { kind: 'read'; from: number; span: number; maxBytes: number; wrongTerm: boolean };
    const payload = fc.oneof(fc.nat(200), fc.constant(100), fc.integer({ min: 3000, max: 6000 }));
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constant('append' as const),
          count: fc.integer({ min: 1, max: 80 }),
          payloadBytes: payload,
          termUp: fc.boolean(),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('truncate' as const),
          back: fc.nat(120),
          rewrite: fc.nat(60),
          payloadBytes: payload,
        }),
      },
      {
        weight: 5,
        arbitrary: fc.record({
          kind: fc.constant('read' as const),
          from: fc.nat(400),
          span: fc.nat(150),
          maxBytes: fc.oneof(fc.constant(Infinity), fc.nat(20_000)),
          wrongTerm: fc.boolean(),
        }),
      },
    );
    let run = 0;
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const runDir = path.join(dir, `run-${run++}`);
        const log = SegmentLog.open({ dir: runDir, segmentBytes: SMALL_SEGMENT_BYTES, sync: false }).log;
        const r = new SegmentReader(runDir);
        /** model[i] is the entry of index i + 1. */
        const model: Entry[] = [];
        let maxTerm = 1;
        try {
          for (const o of ops) {
            if (o.kind === 'append') {
              if (o.termUp) maxTerm++;
              const list = entries(model.length + 1, model.length + o.count, maxTerm, o.payloadBytes);
              appendEntries(log, list);
              model.push(...list);
            } else if (o.kind === 'truncate') {
              const from = Math.max(1, model.length - o.back);
              if (model.length === 0) continue;
              maxTerm++;
              model.length = from - 1;
              if (o.rewrite === 0) {
                log.truncateFrom(from);
              } else {
                const list = entries(from, from + o.rewrite - 1, maxTerm, o.payloadBytes);
                appendEntries(log, list);
                model.push(...list);
              }
            } else {
              const lo = 1 + o.from;
              const hi = lo + o.span;
              const hiEntry = model[hi - 1];
              const expectedTerm = (hiEntry?.term ?? 1) + (o.wrongTerm ? 1 : 0);
              // What the reader must return, from the model.
              let k = lo - 1;
              let keptBytes = 0;
              let expected: Entry[] | null = [];
              while (k < hi) {
                const e = model[k];
                if (e === undefined) {
                  expected = null;
                  break;
                }
                const recordBytes = encodedEntryBytes(e);
                if (keptBytes > 0 && keptBytes + recordBytes > o.maxBytes) break;
                keptBytes += recordBytes;
                expected.push(e);
                k++;
              }
              if (expected !== null && k === hi && model[hi - 1]?.term !== expectedTerm) expected = null;
              const got = r.read(lo, hi, expectedTerm, o.maxBytes);
              if (expected === null) {
                assert.equal(got, null, `read ${lo}..${hi} of 1..${model.length}`);
              } else {
                assert.ok(got !== null, `read ${lo}..${hi} of 1..${model.length}: null`);
                assert.equal(got.lastIndex, k);
                assert.equal(got.count, expected.length);
                assert.deepEqual(got.records, encodeEntries(expected));
              }
            }
          }
        } finally {
          r.close();
          log.close();
          fs.rmSync(runDir, { recursive: true, force: true });
        }
      }),
      { seed: 20240611, numRuns: 150 },
    );
  });

  test('a log-writer thread appending and truncating concurrently never yields wrong records', async (t) => {
    // The writer appends in batches of random sizes, sometimes rewriting a suffix in a
    // higher term. Every record of index i and term t has the content entryOf(i, t), so
    // any returned record can be checked on its own; and a read may return null, but
    // never a record that fails that check or a batch out of sequence.
    const segmentLogUrl = new URL('../../src/workers/log-writer/segment-log.js', import.meta.url).href;
    const codecUrl = new URL('../../src/shared/entry-codec.js', import.meta.url).href;
    const code = `
      const { workerData, parentPort } = require('node:worker_threads');
      (async () => {
        const { SegmentLog } = await import(workerData.segmentLogUrl);
        const { encodeEntry, encodedEntryBytes } = await import(workerData.codecUrl);
        const log = SegmentLog.open({ dir: workerData.dir, segmentBytes: 4096, sync: false }).log;
        const entryOf = (index, term, payloadBytes) => {
          const data = new Uint8Array(payloadBytes);
          for (let i = 0; i < payloadBytes; i++) data[i] = (index * 31 + term * 7 + i) & 0xff;
          return { index, term, type: 0, data };
        };
        let seed = 12345;
        const rand = (n) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
        let last = 0;
        let term = 1;
        const deadline = Date.now() + workerData.ms;
        while (Date.now() < deadline) {
          let from = last + 1;
          if (last > 50 && rand(10) === 0) { from = last - rand(50); term++; }
          const count = 1 + rand(40);
          const list = [];
          for (let i = 0; i < count; i++) list.push(entryOf(from + i, term, rand(4) === 0 ? 1 + rand(600) : 100));
          let bytes = 0;
          for (const e of list) bytes += encodedEntryBytes(e);
          const out = new Uint8Array(bytes);
          let at = 0;
          for (const e of list) at += encodeEntry(e, out, at);
          log.append(out, from, from + count - 1, term);
          last = from + count - 1;
          Atomics.store(workerData.last, 1, term);
          Atomics.store(workerData.last, 0, last);
        }
        log.close();
        parentPort.postMessage('done');
      })();
    `;
    // [last index, its term], published by the writer after each append.
    const last = new Int32Array(new SharedArrayBuffer(8));
    const worker = new Worker(code, {
      eval: true,
      workerData: { dir, segmentLogUrl, codecUrl, ms: 1500, last },
    });
    let done = false;
    const finished = new Promise<void>((resolve, reject) => {
      worker.on('message', () => {
        done = true;
        resolve();
      });
      worker.on('error', (err) => {
        done = true;
        reject(err);
      });
    });
    const r = newReader();
    let served = 0;
    let nulls = 0;
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const deadlineMs = Date.now() + 20_000;
    while (!done && Date.now() < deadlineMs) {
      const known = Atomics.load(last, 0);
      if (known < 1) {
        await new Promise((resolve) => setImmediate(resolve));
        continue;
      }
      const knownTerm = Atomics.load(last, 1);
      // Half the reads near the tail, in the current term, most likely to race the writer.
      const lo = rand(2) === 0 ? Math.max(1, known - rand(60)) : 1 + rand(known);
      const hi = Math.min(known, lo + rand(100));
      const got = r.read(lo, hi, knownTerm - rand(2), rand(2) === 0 ? Infinity : rand(8000));
      if (got === null) {
        nulls++;
      } else {
        served++;
        assert.ok(got.lastIndex >= lo && got.lastIndex <= hi);
        let at = 0;
        let previousTerm = 0;
        for (let index = lo; index <= got.lastIndex; index++) {
          const e = decodeEntryAt(got.records, at, got.records.byteLength, 1 << 20);
          assert.ok(!('kind' in e), `record ${index}`);
          assert.equal(e.index, index);
          assert.ok(e.term >= previousTerm);
          previousTerm = e.term;
          assert.deepEqual(e.data, entryOf(index, e.term, e.data.byteLength).data);
          at += ENTRY_HEADER_BYTES + e.data.byteLength;
        }
        assert.equal(at, got.records.byteLength);
      }
      // Let the message that ends the loop in.
      if ((served + nulls) % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await finished;
    await worker.terminate();
    t.diagnostic(`${served} reads served, ${nulls} null`);
    assert.ok(served > 100, `${served} reads served, ${nulls} null`);
  });
});
