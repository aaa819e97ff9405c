/**
 * raft_meta: term and vote round trip, atomic replacement through raft_meta.tmp, and
 * damaged files refused with ERR_RAFT_META_CORRUPT naming the file.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import {
  META_FILE_NAME,
  META_TMP_FILE_NAME,
  MetaCorruptionError,
  readMeta,
  writeMeta,
} from '../../src/workers/log-writer/meta-store.js';

let dataDir = '';
let metaFile = '';

beforeEach(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'meta-store-'));
  metaFile = path.join(dataDir, META_FILE_NAME);
});

afterEach(() => {
  fs.rmSync(dataDir, { recursive: true, force: true });
});

/** Asserts that reading throws the corruption error naming the file. */
function assertCorrupt(reason: RegExp): void {
  assert.throws(
    () => readMeta(dataDir),
    (err: unknown) => {
      assert.ok(err instanceof MetaCorruptionError);
      assert.equal(err.code, 'ERR_RAFT_META_CORRUPT');
      assert.equal(err.file, metaFile);
      assert.ok(err.message.includes(metaFile), err.message);
      assert.match(err.message, reason);
      return true;
    },
  );
}

describe('meta store', () => {
  test('no file reads as null', () => {
    assert.equal(readMeta(dataDir), null);
    assert.equal(readMeta(path.join(dataDir, 'missing')), null);
  });

  test('term and vote round trip, including no vote, large terms and non-ASCII ids', () => {
    for (const hs of [
      { term: 0, vote: '' },
      { term: 1, vote: 'n1' },
      { term: 2 ** 32 + 5, vote: 'node-ü-東京' },
      { term: Number.MAX_SAFE_INTEGER, vote: 'x'.repeat(255) },
    ]) {
      for (const sync of [true, false]) {
        writeMeta(dataDir, hs, sync);
        assert.deepEqual(readMeta(dataDir), hs);
      }
    }
  });

  test('creates the data directory if needed', () => {
    const nested = path.join(dataDir, 'a', 'b');
    writeMeta(nested, { term: 3, vote: 'n2' }, true);
    assert.deepEqual(readMeta(nested), { term: 3, vote: 'n2' });
  });

  test('a write replaces the file through raft_meta.tmp, leaving no temporary file', () => {
    writeMeta(dataDir, { term: 4, vote: 'n1' }, true);
    const inodeBefore = fs.statSync(metaFile).ino;
    // A leftover of a crash mid-replace is ignored by reads and overwritten by writes.
    fs.writeFileSync(path.join(dataDir, META_TMP_FILE_NAME), 'half written');
    assert.deepEqual(readMeta(dataDir), { term: 4, vote: 'n1' });
    writeMeta(dataDir, { term: 5, vote: 'n3' }, true);
    assert.deepEqual(readMeta(dataDir), { term: 5, vote: 'n3' });
    assert.deepEqual(fs.readdirSync(dataDir), [META_FILE_NAME]);
    // Renamed into place, not rewritten in place.
    assert.notEqual(fs.statSync(metaFile).ino, inodeBefore);
  });

  test('refuses what it cannot store', () => {
    assert.throws(() => writeMeta(dataDir, { term: -1, vote: '' }, false), RangeError);
    assert.throws(() => writeMeta(dataDir, { term: 1.5, vote: '' }, false), RangeError);
    assert.throws(() => writeMeta(dataDir, { term: 1, vote: 'x'.repeat(256) }, false), RangeError);
    assert.equal(readMeta(dataDir), null);
  });

  test('every flipped byte is refused as corrupt', () => {
    writeMeta(dataDir, { term: 77, vote: 'n1' }, false);
    const pristine = fs.readFileSync(metaFile);
    for (let at = 0; at < pristine.byteLength; at++) {
      const bytes = Buffer.from(pristine);
      bytes[at] = (bytes[at] as number) ^ 0x01;
      fs.writeFileSync(metaFile, bytes);
      assertCorrupt(/./);
    }
  });

  test('truncated, extended, empty and foreign files are refused as corrupt', () => {
    writeMeta(dataDir, { term: 9, vote: 'n2' }, false);
    const pristine = fs.readFileSync(metaFile);
    fs.writeFileSync(metaFile, pristine.subarray(0, pristine.byteLength - 1));
    assertCorrupt(/needs/);
    fs.writeFileSync(metaFile, Buffer.concat([pristine, Buffer.from([0])]));
    assertCorrupt(/needs/);
    fs.writeFileSync(metaFile, new Uint8Array(0));
    assertCorrupt(/shorter/);
    fs.writeFileSync(metaFile, 'term=9 vote=n2 and some more text');
    assertCorrupt(/magic/);
  });
});
