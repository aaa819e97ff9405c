/**
 * The segmented log on disk: recovery of what was appended, rollover, truncation without
 * stale records, torn tails cut and reported, damage elsewhere refused with the file and
 * offset, and reads across segments.
 */

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import fc from 'fast-check';
import type { Entry } from '../../src/raft/types.js';
import { encodeEntries } from '../../src/shared/entry-codec.js';
import { ENTRY_HEADER_BYTES } from '../../src/shared/protocol.js';
import {
  type CutTail,
  LogCorruptionError,
  type RecoveredLog,
  SegmentLog,
  type SegmentLogOptions,
  segmentFileName,
} from '../../src/workers/log-writer/segment-log.js';
import { appendEntries, entries, entryOf } from './log-fixtures.js';

const SMALL_SEGMENT_BYTES = 4096;

let dir = '';

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'segment-log-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Warning {
  obj: object;
  msg: string;
}

function open(options: Partial<SegmentLogOptions> = {}): {
  log: SegmentLog;
  recovered: RecoveredLog;
  warnings: Warning[];
} {
  const warnings: Warning[] = [];
  const logger = { info: () => {}, warn: (obj: object, msg: string) => warnings.push({ obj, msg }) };
  const { log, recovered } = SegmentLog.open({ dir, segmentBytes: SMALL_SEGMENT_BYTES, logger, ...options });
  return { log, recovered, warnings };
}

function segmentFiles(): string[] {
  return fs
    .readdirSync(dir)
    .filter((name) => name.endsWith('.seg'))
    .sort();
}

/** Appends `list`, syncs, closes, and returns what a reopen recovers. */
function writeAndReopen(list: readonly Entry[]): RecoveredLog {
  const { log } = open();
  appendEntries(log, list);
  log.sync();
  log.close();
  const reopened = open();
  reopened.log.close();
  return reopened.recovered;
}

/** Offset of the record of `index` within a segment whose records all carry `payloadBytes`. */
function offsetOf(index: number, segmentFirstIndex: number, payloadBytes = 100): number {
  return (index - segmentFirstIndex) * (ENTRY_HEADER_BYTES + payloadBytes);
}

function flipByte(file: string, offsetBytes: number): void {
  const bytes = fs.readFileSync(file);
  bytes[offsetBytes] = (bytes[offsetBytes] as number) ^ 0x40;
  fs.writeFileSync(file, bytes);
}

describe('SegmentLog', () => {
  test('a new log is empty and creates its directory', () => {
    fs.rmSync(dir, { recursive: true });
    const { log, recovered } = open();
    assert.equal(fs.statSync(dir).isDirectory(), true);
    assert.deepEqual(
      { ...recovered, records: recovered.records.byteLength },
      { firstIndex: 0, lastIndex: 0, lastTerm: 0, entryCount: 0, records: 0, cutTail: null },
    );
    assert.equal(log.firstIndex(), 0);
    assert.equal(log.lastIndex(), 0);
    assert.equal(log.lastTerm(), 0);
    log.close();
  });

  test('append then reopen recovers every record, in a fresh transferable buffer', () => {
    const list = [...entries(1, 5, 1), ...entries(6, 9, 2)];
    const recovered = writeAndReopen(list);
    assert.equal(recovered.firstIndex, 1);
    assert.equal(recovered.lastIndex, 9);
    assert.equal(recovered.lastTerm, 2);
    assert.equal(recovered.entryCount, 9);
    assert.equal(recovered.cutTail, null);
    assert.deepEqual(recovered.records, encodeEntries(list));
    assert.equal(recovered.records.byteOffset, 0);
    assert.equal(recovered.records.buffer.byteLength, recovered.records.byteLength);
  });

  test('segments are preallocated with written zeroes, named by their first index', () => {
    const { log } = open();
    appendEntries(log, entries(1, 2, 1));
    log.close();
    assert.deepEqual(segmentFiles(), [segmentFileName(1)]);
    assert.equal(segmentFileName(1), '00000000000000000001.seg');
    const file = path.join(dir, segmentFileName(1));
    const stat = fs.statSync(file);
    assert.equal(stat.size, SMALL_SEGMENT_BYTES);
    // Written, not sparse: every block is allocated.
    assert.ok(stat.blocks * 512 >= SMALL_SEGMENT_BYTES, `${stat.blocks} blocks`);
    const bytes = fs.readFileSync(file);
    assert.ok(bytes.subarray(2 * 132).every((b) => b === 0));
  });

  test('a spare segment prepared ahead becomes the next segment; a leftover spare is removed on open', () => {
    const { log } = open();
    appendEntries(log, entries(1, 20, 1));
    // Zeroed in steps smaller than a segment, as the writer does between batches.
    let steps = 0;
    while (log.prepareSpare(1000)) steps++;
    assert.equal(steps, Math.ceil(SMALL_SEGMENT_BYTES / 1000) - 1);
    assert.ok(fs.existsSync(path.join(dir, 'spare.seg.tmp')));
    appendEntries(log, entries(21, 80, 1)); // rolls over into the spare
    assert.ok(!fs.existsSync(path.join(dir, 'spare.seg.tmp')), 'the spare became a segment');
    assert.ok(segmentFiles().length >= 2);
    log.prepareSpare(1000); // a new spare, half done, then a crash
    log.sync();
    const { recovered } = open();
    assert.equal(recovered.lastIndex, 80);
    assert.deepEqual(recovered.records, encodeEntries(entries(1, 80, 1)));
    assert.ok(!fs.existsSync(path.join(dir, 'spare.seg.tmp')), 'a half-prepared spare is removed on open');
  });

  test('compactTo deletes the segments wholly at or below an index; the log reopens from the first kept one', () => {
    const { log } = open();
    appendEntries(log, entries(1, 200, 1));
    log.sync();
    const before = segmentFiles();
    assert.ok(before.length >= 4, `${before.length} segments`);
    const compactIndex = 120;
    const deleted = log.compactTo(compactIndex);
    assert.ok(deleted >= 1);
    assert.ok(log.firstIndex() <= compactIndex + 1, 'entries after the index are all kept');
    assert.equal(segmentFiles().length, before.length - deleted);
    assert.throws(() => log.readRange(1, 1), RangeError);
    const first = log.firstIndex();
    assert.deepEqual(log.readRange(first, 200), encodeEntries(entries(first, 200, 1)));
    appendEntries(log, entries(201, 210, 1));
    log.sync();
    const { recovered } = open();
    assert.equal(recovered.firstIndex, first);
    assert.equal(recovered.lastIndex, 210);
    assert.deepEqual(recovered.records, encodeEntries(entries(first, 210, 1)));
    // Never the open segment, however far the index goes.
    const again = open().log;
    again.compactTo(10_000);
    assert.equal(again.lastIndex(), 210);
  });

  test('reset drops the whole log (a snapshot from the leader replaced it); appends resume at any index', () => {
    const { log } = open();
    appendEntries(log, entries(1, 200, 1));
    log.sync();
    assert.ok(segmentFiles().length >= 2);
    log.reset();
    assert.equal(log.lastIndex(), 0);
    assert.equal(log.firstIndex(), 0);
    assert.deepEqual(segmentFiles(), []);
    appendEntries(log, entries(501, 510, 4));
    log.sync();
    log.close();
    const { recovered } = open();
    assert.equal(recovered.firstIndex, 501);
    assert.equal(recovered.lastIndex, 510);
    assert.deepEqual(recovered.records, encodeEntries(entries(501, 510, 4)));
  });

  test('the first append may start after a snapshot; gaps are refused', () => {
    const { log } = open();
    appendEntries(log, entries(2, 4, 3));
    assert.equal(log.firstIndex(), 2);
    assert.equal(log.lastIndex(), 4);
    assert.equal(log.lastTerm(), 3);
    assert.throws(() => appendEntries(log, entries(6, 6, 3)), RangeError);
    assert.throws(() => log.append(encodeEntries(entries(5, 5, 3)), 5, 5, 4), RangeError, 'wrong last term');
    assert.throws(() => log.append(encodeEntries(entries(5, 6, 3)), 5, 5, 3), RangeError, 'too many records');
    assert.throws(() => log.append(encodeEntries(entries(6, 6, 3)), 5, 5, 3), RangeError, 'wrong index');
    assert.equal(log.lastIndex(), 4);
    log.close();
    const reopened = open();
    assert.equal(reopened.recovered.firstIndex, 2);
    assert.equal(reopened.recovered.entryCount, 3);
    assert.deepEqual(reopened.recovered.records, encodeEntries(entries(2, 4, 3)));
    reopened.log.close();
  });

  test('segments roll over; a record larger than a segment gets one of its own', () => {
    const list = [...entries(1, 100, 1), entryOf(101, 2, 6000), ...entries(102, 140, 2)];
    const { log } = open();
    // In several batches, some spanning a segment boundary.
    appendEntries(log, list.slice(0, 7));
    appendEntries(log, list.slice(7, 60));
    appendEntries(log, list.slice(60, 101));
    appendEntries(log, list.slice(101));
    log.sync();
    log.close();
    const files = segmentFiles();
    assert.ok(files.length >= 5, `${files.length} segments`);
    // 31 records of 132 bytes fit in 4096.
    assert.deepEqual(files.slice(0, 4), [1, 32, 63, 94].map(segmentFileName));
    assert.ok(files.includes(segmentFileName(101)));
    assert.equal(fs.statSync(path.join(dir, segmentFileName(101))).size, 8192);
    const { log: reopened, recovered } = open();
    assert.equal(recovered.firstIndex, 1);
    assert.equal(recovered.lastIndex, 140);
    assert.equal(recovered.lastTerm, 2);
    assert.deepEqual(recovered.records, encodeEntries(list));
    reopened.close();
  });

  test('readRange returns records across segments, sees unsynced appends, refuses outside the log', () => {
    const list = [...entries(5, 80, 1), ...entries(81, 120, 2, 10)];
    const { log } = open();
    appendEntries(log, list.slice(0, 50));
    appendEntries(log, list.slice(50));
    const encoded = list.map((e) => encodeEntries([e]));
    const expected = (lo: number, hi: number): Uint8Array => {
      const parts = encoded.slice(lo - 5, hi - 5 + 1);
      return Buffer.concat(parts);
    };
    for (const [lo, hi] of [
      [5, 5],
      [5, 120],
      [30, 40],
      [35, 36],
      [36, 36],
      [66, 67],
      [90, 120],
      [120, 120],
    ] as const) {
      assert.deepEqual(Buffer.from(log.readRange(lo, hi)), expected(lo, hi), `${lo}..${hi}`);
    }
    assert.throws(() => log.readRange(4, 6), RangeError);
    assert.throws(() => log.readRange(100, 121), RangeError);
    assert.throws(() => log.readRange(10, 9), RangeError);
    log.close();
  });

  test('truncate then append then reopen gives the new suffix and no stale records', () => {
    const { log } = open();
    appendEntries(log, entries(1, 70, 1));
    log.sync();
    // Conflicting suffix from 20 (inside the first segment): later segments go.
    appendEntries(log, entries(20, 25, 2));
    assert.equal(log.lastIndex(), 25);
    assert.equal(log.lastTerm(), 2);
    log.sync();
    assert.deepEqual(segmentFiles(), [segmentFileName(1)]);
    const file = path.join(dir, segmentFileName(1));
    const bytes = fs.readFileSync(file);
    assert.ok(
      bytes.subarray(offsetOf(26, 1)).every((b) => b === 0),
      'removed bytes are zeroed',
    );
    // Explicit truncation to a record inside the segment, then the last term is the kept one.
    log.truncateFrom(22);
    assert.equal(log.lastIndex(), 21);
    assert.equal(log.lastTerm(), 2);
    log.truncateFrom(20);
    assert.equal(log.lastIndex(), 19);
    assert.equal(log.lastTerm(), 1);
    log.truncateFrom(500);
    assert.equal(log.lastIndex(), 19);
    appendEntries(log, entries(20, 21, 3));
    log.sync();
    log.close();
    const expected = encodeEntries([...entries(1, 19, 1), ...entries(20, 21, 3)]);
    const { log: reopened, recovered } = open();
    assert.equal(recovered.lastIndex, 21);
    assert.equal(recovered.lastTerm, 3);
    assert.equal(recovered.cutTail, null);
    assert.deepEqual(recovered.records, expected);
    assert.deepEqual(reopened.readRange(1, 21), expected);
    reopened.close();
  });

  test('truncation at a segment boundary and down to an empty log', () => {
    const { log } = open();
    appendEntries(log, entries(10, 80, 1));
    // Index 41 is the first of the second segment: that segment is left empty and reused.
    log.truncateFrom(41);
    assert.equal(log.lastIndex(), 40);
    assert.equal(log.lastTerm(), 1);
    assert.deepEqual(segmentFiles(), [10, 41].map(segmentFileName));
    appendEntries(log, entries(41, 45, 2));
    assert.deepEqual(segmentFiles(), [10, 41].map(segmentFileName));
    assert.throws(() => log.truncateFrom(9), RangeError);
    log.truncateFrom(10);
    assert.equal(log.firstIndex(), 0);
    assert.equal(log.lastIndex(), 0);
    assert.equal(log.lastTerm(), 0);
    assert.deepEqual(segmentFiles(), [segmentFileName(10)]);
    log.sync();
    log.close();
    // An empty log (one all-zero segment) reopens as empty and accepts any first index.
    const { log: reopened, recovered } = open();
    assert.equal(recovered.entryCount, 0);
    assert.equal(recovered.lastIndex, 0);
    appendEntries(reopened, entries(300, 302, 4));
    assert.deepEqual(segmentFiles(), [segmentFileName(300)]);
    reopened.sync();
    reopened.close();
    const final = open();
    assert.equal(final.recovered.firstIndex, 300);
    assert.deepEqual(final.recovered.records, encodeEntries(entries(300, 302, 4)));
    final.log.close();
  });

  test('append accepts records in a view of a SharedArrayBuffer', () => {
    const encoded = encodeEntries(entries(1, 40, 1));
    const window = new Uint8Array(new SharedArrayBuffer(encoded.byteLength + 64));
    window.set(encoded, 64);
    const { log } = open();
    log.append(window.subarray(64), 1, 40, 1);
    log.sync();
    log.close();
    const { log: reopened, recovered } = open();
    assert.deepEqual(recovered.records, encoded);
    reopened.close();
  });

  test('a file cut in the middle of a record is cut at the last whole record, logged, and appendable', () => {
    const { log } = open();
    appendEntries(log, entries(1, 40, 1));
    log.sync();
    log.close();
    const file = path.join(dir, segmentFileName(32));
    const cutAt = offsetOf(40, 32) + 50;
    fs.truncateSync(file, cutAt);

    const { log: reopened, recovered, warnings } = open();
    const expectedCut: CutTail = {
      file,
      offsetBytes: offsetOf(40, 32),
      droppedBytes: 50,
      reason: `record at ${offsetOf(40, 32)} needs 132 bytes, 50 remain`,
    };
    assert.deepEqual(recovered.cutTail, expectedCut);
    assert.deepEqual(warnings, [{ obj: expectedCut, msg: 'log tail cut' }]);
    assert.equal(recovered.lastIndex, 39);
    assert.deepEqual(recovered.records, encodeEntries(entries(1, 39, 1)));
    assert.ok(
      fs
        .readFileSync(file)
        .subarray(offsetOf(40, 32))
        .every((b) => b === 0),
    );
    appendEntries(reopened, entries(40, 45, 2));
    reopened.sync();
    reopened.close();

    const final = open();
    assert.equal(final.recovered.cutTail, null);
    assert.deepEqual(final.warnings, []);
    assert.deepEqual(final.recovered.records, encodeEntries([...entries(1, 39, 1), ...entries(40, 45, 2)]));
    final.log.close();
  });

  for (const [what, writtenBytes] of [
    ['header and part of the payload', 80],
    ['half of the header', 16],
    ['one byte of the header', 1],
  ] as const) {
    test(`a record half written into the zero area (${what}) is cut as a torn write`, () => {
      const { log } = open();
      appendEntries(log, entries(1, 10, 1));
      log.sync();
      log.close();
      const file = path.join(dir, segmentFileName(1));
      const bytes = fs.readFileSync(file);
      const lastAt = offsetOf(10, 1);
      bytes.fill(0, lastAt + writtenBytes);
      // The written part may itself end in zero bytes (high bytes of term and index).
      let dirtyEnd = lastAt + writtenBytes;
      while (bytes[dirtyEnd - 1] === 0) dirtyEnd--;
      fs.writeFileSync(file, bytes);

      const { log: reopened, recovered, warnings } = open();
      assert.equal(recovered.lastIndex, 9);
      assert.equal(recovered.cutTail?.offsetBytes, lastAt);
      assert.equal(recovered.cutTail?.droppedBytes, dirtyEnd - lastAt);
      assert.match(recovered.cutTail?.reason ?? '', /CRC32C/);
      assert.equal(warnings.length, 1);
      assert.deepEqual(recovered.records, encodeEntries(entries(1, 9, 1)));
      appendEntries(reopened, entries(10, 12, 2));
      reopened.sync();
      reopened.close();
      const final = open();
      assert.deepEqual(final.recovered.records, encodeEntries([...entries(1, 9, 1), ...entries(10, 12, 2)]));
      assert.equal(final.recovered.cutTail, null);
      final.log.close();
    });
  }

  test('a byte flipped in an earlier record of the last segment refuses to open, naming file and offset', () => {
    const { log } = open();
    appendEntries(log, entries(1, 10, 1));
    log.sync();
    log.close();
    const file = path.join(dir, segmentFileName(1));
    const before = fs.readFileSync(file);
    for (const within of [2, 12, 60]) {
      fs.writeFileSync(file, before);
      flipByte(file, offsetOf(5, 1) + within);
      assert.throws(
        () => open(),
        (err: unknown) => {
          assert.ok(err instanceof LogCorruptionError);
          assert.equal(err.code, 'ERR_RAFT_LOG_CORRUPT');
          assert.equal(err.file, file);
          assert.equal(err.offsetBytes, offsetOf(5, 1));
          assert.ok(err.message.includes(file), err.message);
          assert.ok(err.message.includes(String(offsetOf(5, 1))), err.message);
          return true;
        },
      );
    }
    // Nothing was cut: the file is as damaged as before.
    const after = fs.readFileSync(file);
    assert.equal(after.byteLength, before.byteLength);
    assert.notDeepEqual(after, before);
  });

  test('a byte flipped in a non-last segment refuses to open, even in its last record', () => {
    const { log } = open();
    appendEntries(log, entries(1, 70, 1));
    log.sync();
    log.close();
    const first = path.join(dir, segmentFileName(1));
    const pristine = fs.readFileSync(first);
    // Record 20 (data follows) and record 31, the segment's last: only zeroes follow it,
    // which would pass for a torn write in the last segment, but not here.
    for (const index of [20, 31]) {
      fs.writeFileSync(first, pristine);
      flipByte(first, offsetOf(index, 1) + 40);
      assert.throws(
        () => open(),
        (err: unknown) =>
          err instanceof LogCorruptionError &&
          err.file === first &&
          err.offsetBytes === offsetOf(index, 1) &&
          err.message.includes(first) &&
          err.message.includes(String(offsetOf(index, 1))),
      );
    }
  });

  test('a non-last segment cut short, or a missing segment, refuses to open', () => {
    const { log } = open();
    appendEntries(log, entries(1, 100, 1));
    log.sync();
    log.close();
    const second = path.join(dir, segmentFileName(32));
    const secondBytes = fs.readFileSync(second);
    fs.truncateSync(second, offsetOf(50, 32) + 10);
    assert.throws(
      () => open(),
      (err: unknown) =>
        err instanceof LogCorruptionError && err.file === second && err.message.includes(second),
    );
    // The segment ends early (zeroes) and the next one does not continue it.
    const zeroed = Buffer.from(secondBytes);
    zeroed.fill(0, offsetOf(50, 32));
    fs.writeFileSync(second, zeroed);
    assert.throws(
      () => open(),
      (err: unknown) =>
        err instanceof LogCorruptionError &&
        err.file === second &&
        err.offsetBytes === offsetOf(50, 32) &&
        /ends at index 49 but the next segment .*00000000000000000063\.seg starts at index 63/.test(
          err.message,
        ),
    );
    fs.writeFileSync(second, secondBytes);
    fs.unlinkSync(second);
    assert.throws(() => open(), LogCorruptionError);
  });

  test('a leftover preallocation file is removed on open', () => {
    const { log } = open();
    appendEntries(log, entries(1, 3, 1));
    log.close();
    fs.writeFileSync(path.join(dir, '00000000000000000004.seg.tmp'), new Uint8Array(100).fill(7));
    const { log: reopened, recovered } = open();
    assert.equal(recovered.lastIndex, 3);
    assert.deepEqual(fs.readdirSync(dir).sort(), [segmentFileName(1)]);
    reopened.close();
  });

  test('sync: false still writes everything; methods throw after close', () => {
    const { log } = open({ sync: false });
    appendEntries(log, entries(1, 50, 1));
    log.sync();
    log.close();
    assert.throws(() => log.sync(), /closed/);
    assert.throws(() => appendEntries(log, entries(51, 51, 1)), /closed/);
    const { log: reopened, recovered } = open({ sync: false });
    assert.deepEqual(recovered.records, encodeEntries(entries(1, 50, 1)));
    reopened.close();
  });

  test('random appends, truncations, syncs and reopens match a model', () => {
    type Op =
      | { kind: 'append'; back: number; count: number; payloadBytes: number; termUp: boolean }
      | { kind: 'truncate'; back: number }
      | { kind: 'reopen' }
      | { kind: 'read'; from: number; span: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          kind: fc.constant('append' as const),
          back: fc.nat(40),
          count: fc.integer({ min: 1, max: 60 }),
          payloadBytes: fc.oneof(fc.nat(200), fc.integer({ min: 3000, max: 9000 })),
          termUp: fc.boolean(),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), back: fc.nat(80) }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
      {
        weight: 2,
        arbitrary: fc.record({ kind: fc.constant('read' as const), from: fc.nat(300), span: fc.nat(100) }),
      },
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.array(op, { maxLength: 25 }), (start, ops) => {
        fs.rmSync(dir, { recursive: true, force: true });
        let { log } = open({ sync: false });
        // The model: the records of firstIndex.. in order.
        let model: Entry[] = [];
        let term = 1;
        try {
          for (const o of ops) {
            const first = model.length === 0 ? 0 : (model[0] as Entry).index;
            const last = model.length === 0 ? 0 : (model.at(-1) as Entry).index;
            if (o.kind === 'append') {
              const from = model.length === 0 ? start : Math.max(first, last + 1 - o.back);
              if (o.termUp) term++;
              const batch = entries(from, from + o.count - 1, term, o.payloadBytes);
              appendEntries(log, batch);
              model = [...model.filter((e) => e.index < from), ...batch];
            } else if (o.kind === 'truncate') {
              if (model.length === 0) continue;
              const from = Math.max(first, last + 1 - o.back);
              log.truncateFrom(from);
              model = model.filter((e) => e.index < from);
            } else if (o.kind === 'reopen') {
              log.sync();
              log.close();
              const reopened = open({ sync: false });
              log = reopened.log;
              assert.equal(reopened.recovered.cutTail, null);
              assert.deepEqual(reopened.recovered.records, encodeEntries(model));
            } else if (model.length > 0) {
              const lo = first + (o.from % model.length);
              const hi = Math.min(last, lo + o.span);
              assert.deepEqual(
                log.readRange(lo, hi),
                encodeEntries(model.filter((e) => e.index >= lo && e.index <= hi)),
              );
            }
            assert.equal(log.lastIndex(), model.length === 0 ? 0 : (model.at(-1) as Entry).index);
            assert.equal(log.lastTerm(), model.length === 0 ? 0 : (model.at(-1) as Entry).term);
            assert.equal(log.firstIndex(), model.length === 0 ? 0 : (model[0] as Entry).index);
          }
          log.sync();
          log.close();
          const final = open({ sync: false });
          final.log.close();
          assert.deepEqual(final.recovered.records, encodeEntries(model));
          assert.deepEqual(final.warnings, []);
        } finally {
          log.close();
        }
      }),
      { seed: 20240601, numRuns: 60 },
    );
  });
});
