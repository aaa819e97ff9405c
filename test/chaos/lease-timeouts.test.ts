/**
 * A finding of the chaos harness's tests (NEEDS.md, item 4): a leader's lease is counted in
 * its own election timeout, and nothing checks that its followers use the same one. A
 * leader configured with 10 s among followers with 400 ms, cut off from them, keeps
 * serving `lease` reads from its old state after they have elected a new leader that
 * acknowledged a newer write.
 *
 * Fixed by exchanging election timeouts in the peer handshake: a node that sees a peer
 * with another timeout serves `lease` reads as ReadIndex (`peer-server.ts`,
 * `leaseReadsSafe`), which the cut-off leader cannot complete. The test also checks that
 * the leader says so in its status.
 */

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { kvCommand } from '../../examples/kv.js';
import type { RaftClient, Value } from '../../src/client/raft-client.js';
import { ChaosCluster, clientPerNode, sceneClusterOptions, sleep } from './cluster.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-chaos-lease-'));
let cluster: ChaosCluster | null = null;
const clients: RaftClient[] = [];

after(async () => {
  cluster?.killAllNow();
  await cluster?.stop().catch(() => {});
  await Promise.all(clients.map((c) => c.close()));
  fs.rmSync(root, { recursive: true, force: true });
});

test('a leader with a longer election timeout than its followers serves no stale lease read', {
  timeout: 60_000,
}, async () => {
  const c = await ChaosCluster.start(sceneClusterOptions(root));
  cluster = c;
  const clientOf = clientPerNode(c, clients);
  const first = await c.waitForLeader(15_000);
  assert.ok(first !== null);
  // One follower restarts with a much longer election timeout, and is made leader.
  const slow = c.nodes.find((n) => n.id !== first);
  assert.ok(slow);
  await slow.kill();
  await slow.start({ electionTimeoutMs: 10_000 });
  for (let i = 0; i < 100 && (await c.leader()) !== slow.id; i++) {
    const current = await c.leader();
    if (current !== null && current !== slow.id) {
      await (clientOf.get(current) as RaftClient).transfer(slow.id).catch(() => {});
    }
    await sleep(200);
  }
  assert.equal(await c.leader(), slow.id, 'the transfer did not happen');
  const slowStatus = (await c.statuses()).get(slow.id) as unknown as {
    transport?: { leaseReadsSafe: boolean; electionTimeoutMismatches: { id: string }[] };
  } | null;
  assert.equal(slowStatus?.transport?.leaseReadsSafe, false, 'the leader reports that leases are off');
  const put = (node: string, value: string): Promise<Value> =>
    (clientOf.get(node) as RaftClient).apply(kvCommand({ op: 'put', key: 'x', value }));
  await put(slow.id, 'v1');

  c.mesh.isolate(slow.id, 'cut');
  let fresh: string | null = null;
  for (let i = 0; i < 100 && fresh === null; i++) {
    for (const [id, s] of await c.statuses()) if (id !== slow.id && s?.role === 'Leader') fresh = id;
    if (fresh === null) await sleep(100);
  }
  assert.ok(fresh !== null, 'the others elected no leader');
  await put(fresh, 'v2');

  const lease = await (clientOf.get(slow.id) as RaftClient)
    .read({ op: 'get', key: 'x' }, { consistency: 'lease' })
    .then(
      (v: Value) => `answered ${JSON.stringify(v)}`,
      (err: { code?: string }) => `failed ${err.code}`,
    );
  assert.notEqual(lease, 'answered "v1"', 'a stale lease read: v2 was acknowledged before it began');
});
