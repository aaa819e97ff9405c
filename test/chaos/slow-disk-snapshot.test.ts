/**
 * A finding of the chaos harness (`npm run chaos -- --duration 60 --seed 3 --faults disk`),
 * kept as a regression test: a follower whose disk is slow (RAFTLINE_FAULT_FSYNC_DELAY_MS)
 * applies committed entries its own log has not made durable yet, and saves a snapshot at
 * that applied index. It used to die on `MemoryStorage.createSnapshot: bad index N`
 * (thrown from `Coordinator.onSnapshotSaved` inside the result ring's drain); since
 * 95b61b1 the snapshot is adopted once the log reaches it. The follower must stay up, keep
 * serving, and save snapshots. Before the fix this failed within about 5 s.
 */

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { ChaosCluster, sleep } from './cluster.js';
import { Workload } from './workload.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-chaos-slowdisk-'));
let cluster: ChaosCluster | null = null;

after(async () => {
  cluster?.killAllNow();
  await cluster?.stop().catch(() => {});
  fs.rmSync(root, { recursive: true, force: true });
});

test('a follower with a slow disk survives its own snapshots', { timeout: 90_000 }, async () => {
  const c = await ChaosCluster.start({
    nodes: 3,
    root,
    electionTimeoutMs: 400,
    heartbeatIntervalMs: 50,
    segmentBytes: 512 * 1024,
    snapshotLogEntries: 1000,
    snapshotMinIntervalS: 1,
    compactionMarginEntries: 100,
    logWindowBytes: 8 * 1024 * 1024,
    logLevel: 'warn',
  });
  cluster = c;
  const leader = await c.waitForLeader(15_000);
  assert.ok(leader !== null);
  const follower = c.nodes.find((n) => n.id !== leader);
  assert.ok(follower);
  await follower.kill();
  await follower.start({ env: { RAFTLINE_FAULT_FSYNC_DELAY_MS: '50' } });
  const w = new Workload({
    clients: 8,
    keys: 6,
    keyRotationMs: 5000,
    endpoints: new Map(c.nodes.map((n) => [n.id, n.address])),
    seed: 1,
    requestTimeoutMs: 1500,
    opDeadlineMs: 4000,
    thinkMs: 0,
  });
  w.start();
  const t0 = performance.now();
  while (performance.now() - t0 < 12_000 && c.exits.every((e) => e.expected)) await sleep(200);
  await w.stop();
  const crashed = c.exits.filter((e) => !e.expected);
  assert.deepEqual(crashed, [], `a node exited on its own: ${JSON.stringify(crashed)}`);
  const status = await follower.status();
  assert.ok(status !== null, 'the slow follower does not answer');
  assert.equal(status.fatal, null, `the slow follower stopped serving: ${JSON.stringify(status.fatal)}`);
  assert.ok(
    (status.stats.snapshotsSaved ?? 0) > 0,
    'the slow follower saved no snapshot: the scene did not happen',
  );
  assert.ok(w.history.filter((r) => r.op.ok).length > 1000, 'too little was done');
});
