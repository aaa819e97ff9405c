/**
 * The planted bug of issue 7: "the linearizability checker catches a planted stale read".
 *
 * The scene: a leader takes a write (v1); it is paused (SIGSTOP) and cut off from its
 * peers by the proxies; the others elect a new leader, which takes a write (v2); a read is
 * sent to the old leader while it is still paused, so it waits in its socket, and the old
 * leader is resumed, still cut off. Woken, it reads its socket before its timers have
 * caught up: for a moment it still believes it leads.
 *
 * 1. raftline as built: that queued `lease` read, and a `linearizable` one after it, must
 *    fail. A `stale` read there returns v1; recorded as if it had been linearizable, it is
 *    a stale read the checker must reject, naming the key; without it the history is
 *    linearizable.
 * 2. The bug planted inside the node: every node runs with RAFTLINE_FAULT_UNSAFE_LEASE=1 (a
 *    node that believes it leads serves `lease` reads without checking its lease). The
 *    queued `lease` read then returns v1, and recorded as what it claims to be, the
 *    checker must reject the history.
 *
 * (Leases are only as safe as the election timeouts they assume: a leader configured with
 * a longer election timeout than its followers serves stale lease reads as built. That is
 * a configuration hazard reported in NEEDS.md, not used here: every node has 400 ms.)
 */

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { kvCommand } from '../../examples/kv.js';
import type { RaftClient, Value } from '../../src/client/raft-client.js';
import type { ReadConsistency } from '../../src/main/coordinator.js';
import { ChaosCluster, clientPerNode, sceneClusterOptions, sleep } from './cluster.js';
import { checkLinearizable, formatCounterexample, type Operation } from './linearizability.js';

const roots: string[] = [];
const clusters: ChaosCluster[] = [];
const clients: RaftClient[] = [];

after(async () => {
  for (const c of clusters) c.killAllNow();
  await Promise.all(clusters.map((c) => c.stop().catch(() => {})));
  await Promise.all(clients.map((c) => c.close()));
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

const KEY = 'x';

/** What the scene produced: the honest history, and the reads served by the old leader. */
interface Scene {
  readonly history: Operation[];
  /** The queued read on the old leader, with its times, and how it ended. */
  readonly queued: { start: bigint; end: bigint; outcome: { value: Value } | { error: string } };
  readonly old: { client: RaftClient; id: string };
  readonly cluster: ChaosCluster;
}

async function scene(queuedConsistency: ReadConsistency, env?: Record<string, string>): Promise<Scene> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-chaos-stale-'));
  roots.push(root);
  const c = await ChaosCluster.start(sceneClusterOptions(root, env));
  clusters.push(c);
  const clientOf = clientPerNode(c, clients);
  const history: Operation[] = [];
  const put = async (node: string, value: string, client: number): Promise<void> => {
    const start = process.hrtime.bigint();
    const r = (await (clientOf.get(node) as RaftClient).apply(kvCommand({ op: 'put', key: KEY, value }))) as {
      ok: boolean;
    };
    assert.equal(r.ok, true);
    const end = process.hrtime.bigint();
    history.push({ client, op: 'put', key: KEY, value, expected: null, start, end, ok: true, result: null });
  };

  const old = await c.waitForLeader(15_000);
  assert.ok(old !== null, 'no leader');
  const oldClient = clientOf.get(old) as RaftClient;
  await oldClient.connect();
  await put(old, 'v1', 1);

  c.node(old).pause();
  c.mesh.isolate(old, 'cut');
  let fresh: string | null = null;
  for (let i = 0; i < 100 && fresh === null; i++) {
    fresh = await c.leader();
    if (fresh === old) fresh = null;
    if (fresh === null) await sleep(100);
  }
  assert.ok(fresh !== null, 'no new leader while the old one is paused');
  await put(fresh, 'v2', 2);

  // Sent while the old leader is stopped: it waits in the socket until SIGCONT.
  const start = process.hrtime.bigint();
  const pending = oldClient.read({ op: 'get', key: KEY }, { consistency: queuedConsistency }).then(
    (value: Value) => ({ value }),
    (err: { code?: string; message?: string }) => ({ error: `${err.code}: ${err.message}` }),
  );
  await sleep(100);
  c.node(old).resume();
  const outcome = await pending;
  const end = process.hrtime.bigint();
  return { history, queued: { start, end, outcome }, old: { client: oldClient, id: old }, cluster: c };
}

/** The checker must reject `history` plus a get of `KEY` that returned 'v1' after v2 was acknowledged. */
function assertCaught(history: Operation[], start: bigint, end: bigint): void {
  assert.equal(checkLinearizable(history).linearizable, true, 'the honest history must be linearizable');
  const planted: Operation = {
    client: 3,
    op: 'get',
    key: KEY,
    value: null,
    expected: null,
    start,
    end,
    ok: true,
    result: 'v1',
  };
  const check = checkLinearizable([...history, planted]);
  assert.equal(check.linearizable, false, 'the checker accepted a stale read');
  assert.ok(check.counterexample);
  assert.equal(check.counterexample.key, KEY);
  assert.ok(check.counterexample.ops.some((op) => op.op === 'get' && op.result === 'v1'));
  assert.match(formatCounterexample(check.counterexample), /get\(\) -> "v1"/);
}

test('an old leader paused and cut off serves no lease or linearizable read; a stale read there is caught', {
  timeout: 60_000,
}, async () => {
  const s = await scene('lease');
  assert.ok(
    'error' in s.queued.outcome,
    `the queued lease read was answered: ${JSON.stringify(s.queued.outcome)}`,
  );
  const linearizable = await s.old.client.read({ op: 'get', key: KEY }).then(
    (v: Value) => `answered ${JSON.stringify(v)}`,
    (err: { code?: string }) => `failed ${err.code}`,
  );
  assert.match(linearizable, /^failed /, `a linearizable read on the old leader was ${linearizable}`);

  // The plant from outside: a stale read there, recorded as linearizable.
  const start = process.hrtime.bigint();
  const stale = await s.old.client.read({ op: 'get', key: KEY }, { consistency: 'stale' });
  const end = process.hrtime.bigint();
  assert.equal(stale, 'v1', 'the stale read should see the old value: the plant did not take');
  assertCaught(s.history, start, end);
  s.cluster.mesh.healAll();
});

test('the lease check switched off in the node (RAFTLINE_FAULT_UNSAFE_LEASE=1): its stale lease read is caught', {
  timeout: 120_000,
}, async () => {
  // Woken, the old leader may run its timers before it reads its socket: it then steps
  // down first, and the planted bug has no chance to show. That happens about one time in
  // four here, so the scene is played again (up to 8 times) until the bug shows.
  const tries: string[] = [];
  for (let attempt = 1; attempt <= 8; attempt++) {
    const s = await scene('lease', { RAFTLINE_FAULT_UNSAFE_LEASE: '1' });
    s.cluster.killAllNow();
    if ('value' in s.queued.outcome && s.queued.outcome.value === 'v1') {
      assertCaught(s.history, s.queued.start, s.queued.end);
      return;
    }
    tries.push(JSON.stringify(s.queued.outcome));
  }
  assert.fail(`the planted bug never served the stale value: ${tries.join('; ')}`);
});
