/**
 * A 3-node cluster of separate OS processes on 127.0.0.1, with real threads, disks and
 * sockets: election, 10,000 applies in the same order everywhere, SIGKILL of the leader,
 * a restart of all three (every acknowledged write survives), and a follower that is
 * killed, misses writes and catches up.
 */

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ProcessCluster } from './process-cluster.js';

interface WriteResult {
  acked: number[];
  errors: Record<string, number>;
}

let cluster: ProcessCluster;
const acknowledged: string[] = [];

before(async () => {
  cluster = await ProcessCluster.start({ size: 3 });
});

after(async () => {
  await cluster?.destroy();
});

async function write(id: string, prefix: string, from: number, count: number): Promise<WriteResult> {
  // Acknowledgements arrive as they happen, so those of a process killed mid-run count too.
  return cluster.request<WriteResult>(id, 'write', { prefix, from, count, window: 256 }, (indexes) => {
    for (const i of indexes) acknowledged.push(`${prefix}${i}`);
  });
}

/** Every running member applied the same commands in the same order, and holds every acknowledged write. */
function checkReplicas(): Promise<string[]> {
  return cluster.checkReplicas(acknowledged);
}

test('a leader is elected and 10,000 applies land in the same order on all three', async () => {
  const lead = await cluster.waitForLeader();
  const r = await write(lead, 'a', 0, 10_000);
  assert.deepEqual(r.errors, {});
  assert.equal(r.acked.length, 10_000);
  const log = await checkReplicas();
  assert.equal(log.length, 10_000);
});

test('kill -9 of the leader: a new leader is elected and writes continue', async () => {
  const old = await cluster.waitForLeader();
  await cluster.kill(old);
  const lead = await cluster.waitForLeader();
  assert.notEqual(lead, old);
  const r = await write(lead, 'b', 0, 2000);
  assert.equal(r.acked.length, 2000, JSON.stringify(r.errors));
  await cluster.startMember(old);
  await checkReplicas();
});

test('all three killed and restarted: every acknowledged write is on every node', async () => {
  const lead = await cluster.waitForLeader();
  // Keep writing while the whole cluster dies: acknowledged writes must all survive.
  const before = acknowledged.length;
  const inFlight = write(lead, 'c', 0, 50_000).catch(() => null);
  while (acknowledged.length < before + 500) await new Promise((r) => setTimeout(r, 5));
  await Promise.all(cluster.ids().map((id) => cluster.kill(id)));
  await inFlight;
  const ackedBeforeKill = acknowledged.length - before;
  assert.ok(ackedBeforeKill >= 500 && ackedBeforeKill < 50_000, `${ackedBeforeKill} writes acknowledged`);
  await Promise.all(cluster.ids().map((id) => cluster.startMember(id)));
  const newLead = await cluster.waitForLeader();
  // A write in the new term commits everything before it.
  const r = await write(newLead, 'd', 0, 10);
  assert.equal(r.acked.length, 10, JSON.stringify(r.errors));
  await checkReplicas();
});

test('a follower killed and restarted catches up', async () => {
  const lead = await cluster.waitForLeader();
  const follower = cluster.ids().find((id) => id !== lead) as string;
  await cluster.kill(follower);
  const r = await write(lead, 'e', 0, 3000);
  assert.equal(r.acked.length, 3000, JSON.stringify(r.errors));
  await cluster.startMember(follower);
  const log = await checkReplicas();
  assert.ok(log.includes('e2999'));
});
