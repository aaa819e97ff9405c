/**
 * The snapshot store: save and load round trips, crash leftovers (temp directories)
 * ignored and removed, older snapshots deleted, damage refused with
 * ERR_RAFT_SNAPSHOT_CORRUPT naming the file, a chunked and restarted transfer to another
 * store producing an identical snapshot, and the meta codec against random inputs.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import fc from 'fast-check';
import type { ConfState, SnapshotMeta } from '../../src/raft/types.js';
import { crc32c } from '../../src/shared/crc32c.js';
import {
  decodeSnapshotMeta,
  encodeSnapshotMeta,
  isValidSnapshotFileName,
  newestSnapshotIndex,
  openSnapshotForSending,
  SNAPSHOT_DIR_NAME,
  SNAPSHOT_META_FILE_NAME,
  SnapshotCorruptionError,
  type SnapshotFile,
  type SnapshotReceiver,
  type SnapshotSource,
  SnapshotStaleError,
  SnapshotStore,
} from '../../src/workers/fsm/snapshot-store.js';

const SEED = 20240611;

let tmp = '';

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'snapshot-store-'));
});

afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const CONF: ConfState = {
  voters: ['n1', 'n2', 'n3'],
  votersOutgoing: [],
  learners: ['n4'],
  autoLeave: false,
};

function metaAt(index: number, term = 2, conf: ConfState = CONF): SnapshotMeta {
  return { index, term, conf };
}

/** Deterministic pseudo-random bytes, so a failing run can be reproduced. */
function bytesOf(lengthBytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(lengthBytes);
  let x = seed | 1;
  for (let i = 0; i < lengthBytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Saves a snapshot at `index` holding `files` (relative name → contents) and commits it. */
function save(store: SnapshotStore, index: number, files: Record<string, Uint8Array>): SnapshotMeta {
  const writer = store.begin(metaAt(index));
  for (const [name, contents] of Object.entries(files)) {
    const file = path.join(writer.dir, ...name.split('/'));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, contents);
  }
  return writer.commit();
}

/** Reads every file of the latest snapshot back, by name. */
function readBack(store: SnapshotStore): Record<string, Uint8Array> {
  const reader = store.reader();
  assert.ok(reader);
  const out: Record<string, Uint8Array> = {};
  for (const f of reader.files) out[f.name] = new Uint8Array(fs.readFileSync(reader.filePath(f.name)));
  return out;
}

/** Asserts that `fn` throws ERR_RAFT_SNAPSHOT_CORRUPT naming `file`. */
function assertCorrupt(fn: () => unknown, file: string, reason?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof SnapshotCorruptionError, String(err));
    assert.equal(err.code, 'ERR_RAFT_SNAPSHOT_CORRUPT');
    assert.equal(err.file, file);
    assert.ok(err.message.includes(file), err.message);
    if (reason) assert.match(err.message, reason);
    return true;
  });
}

function snapshotEntries(dataDir: string): string[] {
  return fs.readdirSync(path.join(dataDir, SNAPSHOT_DIR_NAME)).sort();
}

const FILES: Record<string, Uint8Array> = {
  'data.bin': bytesOf(100_000, 1),
  'empty.bin': new Uint8Array(0),
  'one.bin': Uint8Array.of(7),
  'sst/000001.sst': bytesOf(3_000, 2),
  'sst/deep/000002.sst': bytesOf(70, 3),
};

describe('snapshot store: save and load', () => {
  test('an empty store has no snapshot', () => {
    const store = new SnapshotStore(tmp);
    assert.equal(store.latest(), null);
    assert.equal(store.reader(), null);
    assert.equal(store.openForSending(5), null);
    assert.deepEqual(snapshotEntries(tmp), []);
  });

  test('several files, nested ones included, round trip with their meta', () => {
    const store = new SnapshotStore(tmp);
    const meta = metaAt(42, 7, {
      voters: ['a', 'ü'],
      votersOutgoing: ['a', 'b', 'c'],
      learners: [],
      autoLeave: true,
    });
    const writer = store.begin(meta);
    assert.match(path.basename(writer.dir), /^temp-[0-9a-f]+$/);
    for (const [name, contents] of Object.entries(FILES)) {
      const file = path.join(writer.dir, ...name.split('/'));
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, contents);
      writer.addFile(name);
    }
    assert.deepEqual(writer.commit(), meta);
    assert.deepEqual(snapshotEntries(tmp), ['00000000000000000042']);

    // A fresh store (a restart) sees the same snapshot.
    const reopened = new SnapshotStore(tmp);
    const latest = reopened.latest();
    assert.ok(latest);
    assert.deepEqual(latest.meta, meta);
    assert.equal(latest.dir, path.join(tmp, SNAPSHOT_DIR_NAME, '00000000000000000042'));
    assert.deepEqual(
      latest.files.map((f) => f.name),
      Object.keys(FILES).sort(),
    );
    for (const f of latest.files) {
      const contents = FILES[f.name] as Uint8Array;
      assert.equal(f.bytes, contents.byteLength);
      assert.equal(f.crc32c, crc32c(contents));
    }
    assert.deepEqual(readBack(reopened), FILES);
    assert.ok(fs.existsSync(path.join(latest.dir, SNAPSHOT_META_FILE_NAME)));
  });

  test('a file declared with addFile but never written fails the commit, and abort cleans up', () => {
    const store = new SnapshotStore(tmp);
    const writer = store.begin(metaAt(3));
    fs.writeFileSync(path.join(writer.dir, 'a'), 'a');
    writer.addFile('a');
    writer.addFile('b');
    assert.throws(() => writer.commit(), /b was declared/);
    writer.abort();
    assert.deepEqual(snapshotEntries(tmp), []);
    assert.equal(store.latest(), null);
    assert.throws(() => writer.addFile('c'), /already committed or aborted/);
  });

  test('the reserved meta name and invalid names are refused', () => {
    const store = new SnapshotStore(tmp);
    const writer = store.begin(metaAt(3));
    fs.writeFileSync(path.join(writer.dir, SNAPSHOT_META_FILE_NAME), 'mine');
    assert.throws(() => writer.commit(), /reserved/);
    writer.abort();
    const other = store.begin(metaAt(3));
    for (const bad of ['', '../x', '/abs', 'a//b', 'a/./b', 'a\\b', SNAPSHOT_META_FILE_NAME]) {
      assert.throws(() => other.addFile(bad), RangeError, bad);
    }
    other.abort();
  });

  test('a snapshot not newer than the latest is refused as stale', () => {
    const store = new SnapshotStore(tmp);
    save(store, 10, { a: Uint8Array.of(1) });
    for (const index of [5, 10]) {
      assert.throws(
        () => store.begin(metaAt(index)),
        (err: unknown) => err instanceof SnapshotStaleError && err.code === 'ERR_RAFT_SNAPSHOT_STALE',
      );
    }
    // Two saves in flight: the one that commits second with a lower index loses.
    const w20 = store.begin(metaAt(20));
    const w15 = store.begin(metaAt(15));
    w20.commit();
    assert.throws(() => w15.commit(), SnapshotStaleError);
    w15.abort();
    assert.deepEqual(snapshotEntries(tmp), ['00000000000000000020']);
  });

  test('a commit deletes every older snapshot', () => {
    const store = new SnapshotStore(tmp);
    save(store, 5, { a: bytesOf(10, 5) });
    // Older leftovers a crash during an earlier deletion could have left.
    fs.mkdirSync(path.join(tmp, SNAPSHOT_DIR_NAME, '00000000000000000001'));
    fs.mkdirSync(path.join(tmp, SNAPSHOT_DIR_NAME, '00000000000000000003', 'x'), { recursive: true });
    assert.equal(store.latest()?.meta.index, 5);
    save(store, 9, { b: bytesOf(20, 9) });
    assert.deepEqual(snapshotEntries(tmp), ['00000000000000000009']);
    assert.deepEqual(readBack(store), { b: bytesOf(20, 9) });
    save(store, 2 ** 40, { c: bytesOf(30, 11) });
    assert.deepEqual(snapshotEntries(tmp), ['00000001099511627776']);
    assert.equal(store.latest()?.meta.index, 2 ** 40);
  });

  test('an interrupted save leaves the previous snapshot as the latest; open removes the temp dir', () => {
    const store = new SnapshotStore(tmp);
    save(store, 10, { a: bytesOf(500, 1) });
    // Crash while the user writes its files...
    const w1 = store.begin(metaAt(20));
    fs.writeFileSync(path.join(w1.dir, 'a'), bytesOf(600, 2));
    // ...and crash after the meta was written and fsynced but before the rename.
    const w2 = store.begin(metaAt(30));
    fs.writeFileSync(path.join(w2.dir, 'a'), bytesOf(700, 3));
    fs.writeFileSync(path.join(w2.dir, SNAPSHOT_META_FILE_NAME), encodeSnapshotMeta(metaAt(30), []));
    assert.equal(store.latest()?.meta.index, 10);
    assert.equal(snapshotEntries(tmp).filter((n) => n.startsWith('temp-')).length, 2);

    const reopened = new SnapshotStore(tmp);
    assert.deepEqual(snapshotEntries(tmp), ['00000000000000000010']);
    assert.equal(reopened.latest()?.meta.index, 10);
    assert.deepEqual(readBack(reopened), { a: bytesOf(500, 1) });
  });
});

describe('snapshot store: damage', () => {
  test('a flipped byte in a user file is reported naming that file', () => {
    const store = new SnapshotStore(tmp);
    save(store, 8, FILES);
    const dir = path.join(tmp, SNAPSHOT_DIR_NAME, '00000000000000000008');
    const victim = path.join(dir, 'sst', '000001.sst');
    const bytes = fs.readFileSync(victim);
    bytes[1234] = (bytes[1234] as number) ^ 0x10;
    fs.writeFileSync(victim, bytes);
    assertCorrupt(() => store.latest(), victim, /CRC32C/);
    assertCorrupt(() => store.reader(), victim, /CRC32C/);
  });

  test('a truncated or missing user file is reported naming that file', () => {
    const store = new SnapshotStore(tmp);
    save(store, 8, FILES);
    const dir = path.join(tmp, SNAPSHOT_DIR_NAME, '00000000000000000008');
    const victim = path.join(dir, 'data.bin');
    fs.truncateSync(victim, 99_999);
    assertCorrupt(() => store.latest(), victim, /99999 bytes/);
    assertCorrupt(() => store.openForSending(8), victim, /99999 bytes/);
    fs.rmSync(victim);
    assertCorrupt(() => store.latest(), victim, /missing/);
  });

  test('a flipped byte anywhere in the meta is reported naming the meta file', () => {
    const store = new SnapshotStore(tmp);
    save(store, 8, FILES);
    const metaFile = path.join(tmp, SNAPSHOT_DIR_NAME, '00000000000000000008', SNAPSHOT_META_FILE_NAME);
    const good = fs.readFileSync(metaFile);
    for (let i = 0; i < good.byteLength; i++) {
      const bad = Buffer.from(good);
      bad[i] = (bad[i] as number) ^ 0x01;
      fs.writeFileSync(metaFile, bad);
      assertCorrupt(() => store.latest(), metaFile);
    }
    fs.writeFileSync(metaFile, good.subarray(0, good.byteLength - 1));
    assertCorrupt(() => store.latest(), metaFile);
    fs.rmSync(metaFile);
    assertCorrupt(() => store.latest(), metaFile, /missing/);
  });

  test('a damaged latest snapshot is never passed over for an older one', () => {
    const store = new SnapshotStore(tmp);
    save(store, 8, { a: bytesOf(10, 1) });
    // An older complete snapshot that somehow survived (e.g. copied back by hand).
    const older = path.join(tmp, SNAPSHOT_DIR_NAME, '00000000000000000004');
    fs.cpSync(path.join(tmp, SNAPSHOT_DIR_NAME, '00000000000000000008'), older, { recursive: true });
    fs.writeFileSync(
      path.join(older, SNAPSHOT_META_FILE_NAME),
      encodeSnapshotMeta(metaAt(4), [{ name: 'a', bytes: 10, crc32c: crc32c(bytesOf(10, 1)) }]),
    );
    const victim = path.join(tmp, SNAPSHOT_DIR_NAME, '00000000000000000008', 'a');
    fs.writeFileSync(victim, bytesOf(10, 2));
    assertCorrupt(() => store.latest(), victim);
  });

  test('a meta that names another index than its directory is refused', () => {
    const store = new SnapshotStore(tmp);
    save(store, 8, {});
    const metaFile = path.join(tmp, SNAPSHOT_DIR_NAME, '00000000000000000008', SNAPSHOT_META_FILE_NAME);
    fs.writeFileSync(metaFile, encodeSnapshotMeta(metaAt(9), []));
    assertCorrupt(() => store.latest(), metaFile, /index 9/);
  });
});

describe('snapshot store: sending and receiving', () => {
  /** Sends every file of `source` from where `receiver` stands, `chunkBytes` at a time; stops after `maxChunks`. */
  function pump(
    source: SnapshotSource,
    receiver: SnapshotReceiver,
    chunkBytes: number,
    maxChunks: number,
  ): number {
    const buf = new Uint8Array(chunkBytes);
    let chunks = 0;
    source.files.forEach((f, fileIdx) => {
      let offsetBytes = receiver.receivedBytes(f.name);
      while (offsetBytes < f.bytes && chunks < maxChunks) {
        const n = source.read(fileIdx, offsetBytes, buf);
        receiver.write(f.name, offsetBytes, buf.subarray(0, n));
        offsetBytes += n;
        chunks++;
      }
    });
    return chunks;
  }

  test('a snapshot sent in small chunks, with a restart in the middle, arrives identical and verified', () => {
    const leader = new SnapshotStore(path.join(tmp, 'leader'));
    const meta = save(leader, 77, FILES);
    const source = leader.openForSending(77);
    assert.ok(source);
    assert.deepEqual(source.meta, meta);
    // The leader moves on while the transfer runs: the open files stay readable.
    save(leader, 90, { other: Uint8Array.of(1) });
    assert.equal(leader.openForSending(77), null);

    const followerDir = path.join(tmp, 'follower');
    const follower = new SnapshotStore(followerDir);
    save(follower, 3, { old: Uint8Array.of(9) });
    const first = follower.beginReceive(source.metaBytes);
    assert.deepEqual(first.meta, meta);
    assert.equal(pump(source, first, 1000, 60), 60);
    // Cut in the middle of the first file, which is 100 000 bytes.
    assert.equal(first.receivedBytes('data.bin'), 60_000);
    assert.throws(() => first.commit(), /incomplete/);
    assert.throws(() => first.write('data.bin', 70_000, new Uint8Array(10)), /gap/);
    assert.throws(() => first.write('nope', 0, new Uint8Array(1)), RangeError);

    // Restart: the process dies without closing anything; a new store resumes.
    const restarted = new SnapshotStore(followerDir);
    const second = restarted.beginReceive(source.metaBytes);
    assert.equal(second.dir, first.dir);
    assert.equal(second.receivedBytes('data.bin'), 60_000);
    // A retransmitted chunk, overlapping what arrived and reaching beyond it, is fine.
    const overlap = new Uint8Array(1500);
    assert.equal(source.read(0, 59_500, overlap), 1500);
    second.write('data.bin', 59_500, overlap);
    second.write('data.bin', 59_500, overlap);
    assert.equal(second.receivedBytes('data.bin'), 61_000);
    pump(source, second, 333, Number.POSITIVE_INFINITY);
    for (const f of source.files) assert.equal(second.receivedBytes(f.name), f.bytes);
    assert.deepEqual(second.commit(), meta);
    source.close();

    assert.deepEqual(snapshotEntries(followerDir), ['00000000000000000077']);
    const latest = restarted.latest();
    assert.ok(latest);
    assert.deepEqual(latest.meta, meta);
    assert.deepEqual(readBack(restarted), FILES);
    const sentMeta = fs.readFileSync(path.join(latest.dir, SNAPSHOT_META_FILE_NAME));
    assert.deepEqual(new Uint8Array(sentMeta), source.metaBytes);
  });

  test('a file received wrong is reported at commit, reset, and fetched again', () => {
    const leader = new SnapshotStore(path.join(tmp, 'leader'));
    save(leader, 5, FILES);
    const source = leader.openForSending(5);
    assert.ok(source);
    const follower = new SnapshotStore(path.join(tmp, 'follower'));
    const receiver = follower.beginReceive(source.metaBytes);
    pump(source, receiver, 4096, Number.POSITIVE_INFINITY);
    const victim = path.join(receiver.dir, 'sst', '000001.sst');
    const bytes = fs.readFileSync(victim);
    bytes[0] = (bytes[0] as number) ^ 0xff;
    fs.writeFileSync(victim, bytes);
    assertCorrupt(() => receiver.commit(), victim, /CRC32C/);
    assert.equal(receiver.receivedBytes('sst/000001.sst'), 0);
    assert.equal(receiver.receivedBytes('data.bin'), 100_000);
    pump(source, receiver, 4096, Number.POSITIVE_INFINITY);
    receiver.commit();
    source.close();
    assert.deepEqual(readBack(follower), FILES);
  });

  test('damaged or stale meta bytes are refused before anything is written', () => {
    const leader = new SnapshotStore(path.join(tmp, 'leader'));
    save(leader, 5, FILES);
    const source = leader.openForSending(5);
    assert.ok(source);
    const followerDir = path.join(tmp, 'follower');
    const follower = new SnapshotStore(followerDir);
    const bad = Uint8Array.from(source.metaBytes);
    bad[30] = (bad[30] as number) ^ 1;
    assertCorrupt(() => follower.beginReceive(bad), 'received snapshot meta');
    save(follower, 6, {});
    assert.throws(() => follower.beginReceive(source.metaBytes), SnapshotStaleError);
    assert.deepEqual(snapshotEntries(followerDir), ['00000000000000000006']);
    source.close();
  });

  test('abort, another transfer, or a newer local snapshot removes a partial receive', () => {
    const leader = new SnapshotStore(path.join(tmp, 'leader'));
    save(leader, 5, FILES);
    const s5 = leader.openForSending(5);
    assert.ok(s5);
    const followerDir = path.join(tmp, 'follower');
    const follower = new SnapshotStore(followerDir);
    const r1 = follower.beginReceive(s5.metaBytes);
    pump(s5, r1, 1000, 3);
    r1.abort();
    assert.deepEqual(snapshotEntries(followerDir), []);

    const r2 = follower.beginReceive(s5.metaBytes);
    assert.equal(r2.receivedBytes('data.bin'), 0);
    pump(s5, r2, 1000, 3);
    save(leader, 6, { x: Uint8Array.of(1) });
    const s6 = leader.openForSending(6);
    assert.ok(s6);
    follower.beginReceive(s6.metaBytes);
    assert.equal(snapshotEntries(followerDir).length, 1);
    assert.match(snapshotEntries(followerDir)[0] as string, /^receive-00000000000000000006-/);

    save(follower, 7, {});
    new SnapshotStore(followerDir);
    assert.deepEqual(snapshotEntries(followerDir), ['00000000000000000007']);
    s5.close();
    s6.close();
  });

  test('close keeps a partial receive for the next begin with the same meta; abort after close removes it', () => {
    const leader = new SnapshotStore(path.join(tmp, 'leader'));
    save(leader, 5, FILES);
    const source = leader.openForSending(5);
    assert.ok(source);
    const followerDir = path.join(tmp, 'follower');
    const follower = new SnapshotStore(followerDir);
    const first = follower.beginReceive(source.metaBytes);
    pump(source, first, 1000, 7);
    first.close();
    first.close();
    assert.throws(() => first.write('data.bin', 7000, new Uint8Array(1)), /already committed or aborted/);
    const second = follower.beginReceive(source.metaBytes);
    assert.equal(second.receivedBytes('data.bin'), 7000);
    second.close();
    second.abort();
    assert.deepEqual(snapshotEntries(followerDir), []);
    source.close();
  });
});

describe("snapshot store: the replicator thread's view", () => {
  test('newestSnapshotIndex and openSnapshotForSending leave a save in progress alone', () => {
    const dataDir = path.join(tmp, 'leader');
    assert.equal(newestSnapshotIndex(dataDir), 0, 'no snapshot directory yet');
    const store = new SnapshotStore(dataDir);
    assert.equal(newestSnapshotIndex(dataDir), 0);
    const meta = save(store, 12, FILES);
    // The fsm thread is saving the next snapshot meanwhile.
    const inProgress = store.begin(metaAt(20));
    fs.writeFileSync(path.join(inProgress.dir, 'partial'), Uint8Array.of(1, 2, 3));

    assert.equal(newestSnapshotIndex(dataDir), 12);
    const source = openSnapshotForSending(dataDir, 12);
    assert.ok(source);
    assert.deepEqual(source.meta, meta);
    assert.deepEqual(
      source.files.map((f) => f.name),
      Object.keys(FILES).sort(),
    );
    assert.equal(openSnapshotForSending(dataDir, 11), null);
    assert.ok(fs.existsSync(path.join(inProgress.dir, 'partial')), 'the save in progress was not touched');

    // The save finishes and deletes snapshot 12 while it is open: still readable.
    inProgress.commit();
    assert.equal(newestSnapshotIndex(dataDir), 20);
    assert.equal(openSnapshotForSending(dataDir, 12), null);
    const buf = new Uint8Array(10);
    assert.equal(source.read(0, 0, buf), 10);
    assert.deepEqual(buf, (FILES['data.bin'] as Uint8Array).subarray(0, 10));
    source.close();
  });
});

describe('snapshot meta codec', () => {
  const idArb = fc
    .string({ unit: 'binary', maxLength: 40 })
    .filter((id) => new TextEncoder().encode(id).byteLength <= 255);
  const confArb: fc.Arbitrary<ConfState> = fc.record(
    {
      voters: fc.array(idArb, { maxLength: 9 }),
      votersOutgoing: fc.array(idArb, { maxLength: 9 }),
      learners: fc.array(idArb, { maxLength: 9 }),
      autoLeave: fc.boolean(),
    },
    { noNullPrototype: true },
  );
  const metaArb: fc.Arbitrary<SnapshotMeta> = fc.record(
    {
      index: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      term: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      conf: confArb,
    },
    { noNullPrototype: true },
  );
  // Random components joined by '/', kept only if the store's own rule accepts them.
  const nameArb = fc
    .array(fc.string({ unit: 'binary', minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 3 })
    .map((parts) => parts.join('/'))
    .filter(isValidSnapshotFileName);
  const filesArb: fc.Arbitrary<SnapshotFile[]> = fc.uniqueArray(
    fc.record(
      {
        name: nameArb,
        bytes: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        crc32c: fc.integer({ min: 0, max: 0xffff_ffff }),
      },
      { noNullPrototype: true },
    ),
    { selector: (f) => f.name, maxLength: 6 },
  );

  test('random metas and file lists round trip, files sorted by name', () => {
    fc.assert(
      fc.property(metaArb, filesArb, (meta, files) => {
        const bytes = encodeSnapshotMeta(meta, files);
        const decoded = decodeSnapshotMeta(bytes, 'm');
        assert.deepEqual(decoded.meta, meta);
        const sorted = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        assert.deepEqual(decoded.files, sorted);
        // Deterministic: the same snapshot always encodes to the same bytes.
        assert.deepEqual(encodeSnapshotMeta(meta, [...files].reverse()), bytes);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  test('any flipped bit or cut end is refused with ERR_RAFT_SNAPSHOT_CORRUPT', () => {
    fc.assert(
      fc.property(metaArb, filesArb, fc.nat(), fc.integer({ min: 0, max: 7 }), (meta, files, at, bit) => {
        const bytes = encodeSnapshotMeta(meta, files);
        const flipped = Uint8Array.from(bytes);
        const i = at % bytes.byteLength;
        flipped[i] = (flipped[i] as number) ^ (1 << bit);
        assertCorrupt(() => decodeSnapshotMeta(flipped, 'm'), 'm');
        assertCorrupt(() => decodeSnapshotMeta(bytes.subarray(0, i), 'm'), 'm');
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  test('what cannot be stored is refused when encoding', () => {
    const ok = metaAt(1);
    assert.throws(() => encodeSnapshotMeta(metaAt(0), []), RangeError);
    assert.throws(() => encodeSnapshotMeta({ ...ok, term: 0 }, []), RangeError);
    assert.throws(() => encodeSnapshotMeta(metaAt(2 ** 53), []), RangeError);
    assert.throws(
      () => encodeSnapshotMeta(metaAt(1, 1, { ...CONF, voters: ['x'.repeat(256)] }), []),
      RangeError,
    );
    const file = { name: 'a', bytes: 1, crc32c: 0 };
    assert.throws(() => encodeSnapshotMeta(ok, [file, file]), /twice/);
    assert.throws(() => encodeSnapshotMeta(ok, [{ ...file, name: '../a' }]), RangeError);
    assert.throws(() => encodeSnapshotMeta(ok, [{ ...file, bytes: -1 }]), RangeError);
    assert.throws(() => encodeSnapshotMeta(ok, [{ ...file, crc32c: 2 ** 32 }]), RangeError);
  });
});
