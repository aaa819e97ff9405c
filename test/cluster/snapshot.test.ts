/**
 * Snapshots and log compaction with real node processes on 127.0.0.1: a cluster under
 * continuous writes snapshots on its own and keeps its log directory bounded; a restart
 * loads the snapshot and replays only the tail; a follower that fell behind compaction
 * catches up by snapshot, one only slightly behind by the log; and a snapshot install cut
 * halfway (the follower killed mid-stream) resumes where it stopped.
 */

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { ProcessCluster } from './process-cluster.js';

interface WriteResult {
  acked: number[];
  errors: Record<string, number>;
}

interface Status {
  role: string;
  appliedIndex: number;
  lastIndex: number;
  commitIndex: number;
  snapshotIndex: number;
  firstIndex: number;
  logBytes: number;
  logDiskBytes: number;
  stats: {
    snapshotsSaved: number;
    snapshotsSent: number;
    snapshotsInstalled: number;
    snapshotBytesSent: number;
    snapshotBytesResumed: number;
    compactions: number;
  };
}

/** Small segments and eager triggers, so a test of seconds crosses many segments and snapshots. */
const SEGMENT_BYTES = 64 * 1024;
const SNAPSHOT_EVERY_ENTRIES = 3000;
const MARGIN_ENTRIES = 1000;

let cluster: ProcessCluster;
const acknowledged: string[] = [];

before(async () => {
  cluster = await ProcessCluster.start({
    size: 3,
    extra: {
      segmentBytes: SEGMENT_BYTES,
      snapshotLogEntries: SNAPSHOT_EVERY_ENTRIES,
      snapshotMinIntervalS: 0,
      compactionMarginEntries: MARGIN_ENTRIES,
      // A large snapshot streams over a few seconds, so a test can cut it halfway.
      snapshotBytesPerSecond: 4 * 1024 * 1024,
      snapshotChunkBytes: 64 * 1024,
    },
  });
});

after(async () => {
  await cluster?.destroy();
});

function write(id: string, prefix: string, from: number, count: number, pad = 0): Promise<WriteResult> {
  return cluster.request<WriteResult>(id, 'write', { prefix, from, count, window: 128, pad }, (indexes) => {
    for (const i of indexes) acknowledged.push(`${prefix}${i}`.padEnd(pad, '.'));
  });
}

function status(id: string): Promise<Status> {
  return cluster.request<Status>(id, 'status');
}

/** Every running member applied the same commands in the same order, holding every acknowledged write. */
function checkReplicas(): Promise<string[]> {
  return cluster.checkReplicas(acknowledged);
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('under continuous writes every node snapshots and compacts: the log directory stays bounded', async (t) => {
  const lead = await cluster.waitForLeader();
  let maxDiskBytes = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      for (const id of cluster.running())
        maxDiskBytes = Math.max(maxDiskBytes, (await status(id)).logDiskBytes);
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const entries = 30_000;
  const r = await write(lead, 'a', 0, entries, 100);
  sampling = false;
  await sampler;
  assert.deepEqual(r.errors, {});
  await checkReplicas();
  const all = await Promise.all(cluster.running().map((id) => status(id)));
  for (const s of all) {
    assert.ok(s.stats.snapshotsSaved >= 3, `only ${s.stats.snapshotsSaved} snapshots`);
    assert.ok(s.stats.compactions >= 3, `only ${s.stats.compactions} compactions`);
    assert.ok(s.firstIndex > 1, 'the log was never compacted in memory');
  }
  // About 150 bytes a record: the records written are ~4.5 MB; what stays is the entries
  // since the last snapshot plus the margin, rounded up to whole 64 KiB segments.
  const writtenBytes = entries * 150;
  t.diagnostic(
    `log records written ${writtenBytes} B; largest log directory seen ${maxDiskBytes} B; ` +
      `snapshots per node ${all.map((s) => s.stats.snapshotsSaved).join(',')}`,
  );
  assert.ok(maxDiskBytes < writtenBytes / 3, `log directory reached ${maxDiskBytes} B`);
});

test('every node restarted: each loads its snapshot and replays only the tail', async () => {
  const before = await Promise.all(cluster.ids().map((id) => status(id)));
  await Promise.all(cluster.ids().map((id) => cluster.kill(id)));
  await Promise.all(cluster.ids().map((id) => cluster.startMember(id)));
  const lead = await cluster.waitForLeader();
  await write(lead, 'b', 0, 10);
  const log = await checkReplicas();
  for (const [k, id] of cluster.ids().entries()) {
    const s = await status(id);
    const replayed = await cluster.request<number>(id, 'read', {
      query: 'appliedSinceStart',
      consistency: 'stale',
    });
    assert.ok(s.snapshotIndex > 0, `${id} has no snapshot`);
    // Replayed: the commands after the snapshot it loaded (at most its last snapshot's
    // distance behind the log) plus the 10 new ones, never the whole log.
    assert.ok(replayed < log.length - 10_000, `${id} replayed ${replayed} of ${log.length} commands`);
    assert.ok((before[k] as Status).snapshotIndex > 0);
  }
});

test('a follower that fell behind compaction catches up by snapshot; one slightly behind, by the log', async () => {
  const lead = await cluster.waitForLeader();
  const follower = cluster.ids().find((id) => id !== lead) as string;

  // Far behind: more than a snapshot interval plus the margin.
  await cluster.kill(follower);
  const r = await write(lead, 'c', 0, 3 * SNAPSHOT_EVERY_ENTRIES, 100);
  assert.deepEqual(r.errors, {});
  await waitFor('the leader to compact past the follower', async () => {
    const s = await status(lead);
    return s.firstIndex > 1 && s.stats.compactions > 0;
  });
  const sentBefore = (await status(lead)).stats.snapshotsSent;
  await cluster.startMember(follower);
  await checkReplicas();
  assert.ok(
    (await status(follower)).stats.snapshotsInstalled >= 1,
    'the far follower did not get a snapshot',
  );
  assert.ok((await status(lead)).stats.snapshotsSent > sentBefore);

  // Slightly behind: fewer entries than the margin, and no new snapshot meanwhile.
  await cluster.request(lead, 'snapshot');
  await cluster.kill(follower);
  await write(lead, 'd', 0, MARGIN_ENTRIES / 4);
  const sentNow = (await status(lead)).stats.snapshotsSent;
  await cluster.startMember(follower);
  await checkReplicas();
  assert.equal((await status(follower)).stats.snapshotsInstalled, 0, 'the near follower was sent a snapshot');
  assert.equal((await status(lead)).stats.snapshotsSent, sentNow);
});

test('a snapshot install cut halfway resumes where it stopped and completes', async (t) => {
  const lead = await cluster.waitForLeader();
  const follower = cluster.ids().find((id) => id !== lead) as string;
  await cluster.kill(follower);
  // About 12 MB of state at 4 MiB/s: a stream of about three seconds.
  const r = await write(lead, 'e', 0, 12_000, 1000);
  assert.deepEqual(r.errors, {});
  await cluster.request(lead, 'snapshot');
  const before = (await status(lead)).stats;
  const t0 = Date.now();
  await cluster.startMember(follower);
  // Cut the stream once part of it has arrived: kill the follower (its socket dies with it).
  await waitFor('the stream to start', async () => (await receivedBytes(follower)) > 2 * 1024 * 1024, 20_000);
  const tCut = Date.now();
  await cluster.kill(follower);
  await cluster.startMember(follower);
  await checkReplicas();
  t.diagnostic(
    `stream cut ${tCut - t0} ms after the follower started; caught up ${Date.now() - tCut} ms after the cut`,
  );
  const after = (await status(lead)).stats;
  const resumed = after.snapshotBytesResumed - before.snapshotBytesResumed;
  const sent = after.snapshotBytesSent - before.snapshotBytesSent;
  t.diagnostic(`after the cut: ${resumed} bytes not sent again, ${sent} bytes sent in all`);
  assert.ok(resumed > 1024 * 1024, `only ${resumed} bytes were resumed`);
  assert.ok((await status(follower)).stats.snapshotsInstalled >= 1);
});

/** Bytes of the snapshot being received in a member's data directory. */
async function receivedBytes(id: string): Promise<number> {
  const dir = path.join(cluster.member(id).dataDir, 'snapshot');
  let total = 0;
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = fs.readdirSync(d);
    } catch {
      return;
    }
    for (const name of names) {
      const p = path.join(d, name);
      const st = fs.statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else total += st.size;
    }
  };
  for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    if (name.startsWith('receive-')) walk(path.join(dir, name));
  }
  return total;
}
