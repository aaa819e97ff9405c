/**
 * Membership changes and leadership transfer with real node processes on 127.0.0.1: a
 * 4th node joins a cluster whose log was compacted (it catches up by snapshot as a
 * learner, is promoted, and then counts in the quorum); a follower and then the leader
 * are removed, and leadership is transferred, all under continuous client writes. No
 * acknowledged write is lost, and the only client errors are retryable ones.
 */

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RaftClient } from '../../src/client/raft-client.js';
import { ProcessCluster } from './process-cluster.js';

interface Status {
  role: string;
  commitIndex: number;
  leader: string | null;
  appliedIndex: number;
  lastIndex: number;
  firstIndex: number;
  voters: string[];
  learners: string[];
  stats: { snapshotsInstalled: number; compactions: number };
}

interface WriteResult {
  acked: number[];
  errors: Record<string, number>;
}

/** Errors a client may see during membership changes and transfers: each means "retry". */
const RETRYABLE = new Set([
  'ERR_RAFT_NOT_LEADER',
  'ERR_RAFT_UNAVAILABLE',
  'ERR_RAFT_TIMEOUT',
  'ERR_RAFT_BUSY',
]);

let cluster: ProcessCluster;
const acknowledged: string[] = [];

before(async () => {
  cluster = await ProcessCluster.start({
    size: 3,
    extra: {
      segmentBytes: 64 * 1024,
      snapshotLogEntries: 2000,
      snapshotMinIntervalS: 0,
      compactionMarginEntries: 500,
    },
  });
});

after(async () => {
  await cluster?.destroy();
});

function status(id: string): Promise<Status> {
  return cluster.request<Status>(id, 'status');
}

function write(id: string, prefix: string, count: number): Promise<WriteResult> {
  return cluster.request<WriteResult>(id, 'write', { prefix, from: 0, count, window: 128 }, (indexes) => {
    for (const i of indexes) acknowledged.push(`${prefix}${i}`);
  });
}

/** Every member of `among` applied the same commands, holding every acknowledged write. */
async function checkReplicas(among: string[]): Promise<void> {
  await cluster.checkReplicas(acknowledged, among);
}

/**
 * Client writes from this process until `stop()`; counts errors by code. With `follow`
 * the client follows redirects itself; without, every refusal surfaces here, and the
 * loop moves to the leader the error names (as an application would).
 */
function clientLoad(
  endpoints: string[],
  prefix: string,
  follow: boolean,
): { stop: () => Promise<{ acked: number; errors: Record<string, number> }> } {
  const connect = (to: string[]): RaftClient =>
    new RaftClient({ endpoints: to, requestTimeoutMs: 5000, maxRedirects: follow ? 10 : 0 });
  let client = connect(endpoints);
  let target = endpoints[0];
  const clients = [client];
  const errors: Record<string, number> = {};
  let acked = 0;
  let running = true;
  let next = 0;
  const loop = async (): Promise<void> => {
    while (running) {
      const command = `${prefix}${next++}`;
      try {
        await client.apply(new TextEncoder().encode(command));
        acknowledged.push(command);
        acked++;
      } catch (err) {
        const e = err as { code?: string; leaderAddress?: string | null };
        const code = e.code ?? 'unknown';
        errors[code] = (errors[code] ?? 0) + 1;
        if (!follow && code === 'ERR_RAFT_NOT_LEADER' && e.leaderAddress) {
          if (target !== e.leaderAddress) {
            target = e.leaderAddress;
            client = connect([e.leaderAddress]);
            clients.push(client);
          }
        } else {
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
  };
  const loops = Array.from({ length: 16 }, loop);
  return {
    stop: async () => {
      running = false;
      await Promise.all(loops);
      await Promise.all(clients.map((c) => c.close()));
      return { acked, errors };
    },
  };
}

function pause(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

test('a 4th node added to a compacted cluster catches up by snapshot, is promoted, and votes', async () => {
  const lead = await cluster.waitForLeader();
  const r = await write(lead, 'a', 8000);
  assert.deepEqual(r.errors, {});
  const s = await status(lead);
  assert.ok(s.firstIndex > 1 && s.stats.compactions > 0, 'the leader never compacted its log');

  const address = await cluster.addMember('n4');
  const conf = await cluster.request<{ voters: string[]; learners: string[] }>(lead, 'addPeer', {
    peer: 'n4',
    address,
  });
  assert.deepEqual(conf.voters, ['n1', 'n2', 'n3', 'n4']);
  assert.deepEqual(conf.learners, []);
  const n4 = await status('n4');
  assert.ok(n4.stats.snapshotsInstalled >= 1, 'n4 did not catch up by snapshot');
  // braft's callbacks on the new node: the snapshot loaded, then the configurations that
  // committed after it, ending with n4 a voter.
  await cluster.waitForApplied((await status(lead)).commitIndex, ['n4']);
  const events = await cluster.request<string[]>('n4', 'read', { query: 'events', consistency: 'stale' });
  assert.ok(
    events.some((e) => e.startsWith('snapshotLoad ')),
    events.join('; '),
  );
  assert.ok(events.includes('configuration voters=n1,n2,n3,n4 learners='), events.join('; '));
  assert.ok(
    events.some((e) => e.startsWith('startFollowing ')),
    events.join('; '),
  );
  await checkReplicas(cluster.running());
  for (const id of cluster.running()) assert.deepEqual((await status(id)).voters, ['n1', 'n2', 'n3', 'n4']);

  // With the leader down, three of four remain: no quorum without n4's vote and acks.
  const old = await cluster.waitForLeader();
  await cluster.kill(old);
  const others = cluster.running();
  const next = await cluster.waitForLeader(15_000, others);
  const w = await write(next, 'b', 1000);
  assert.equal(w.acked.length, 1000, JSON.stringify(w.errors));
  await cluster.startMember(old);
  await checkReplicas(cluster.running());
});

test('a follower and then the leader removed, and leadership transferred, under load: nothing lost', async (t) => {
  const members = cluster.ids();
  const endpoints = members.map((id) => cluster.address(id));
  // One client follows redirects itself; the other surfaces every refusal, to count them.
  const load = clientLoad(endpoints, 'l', true);
  const raw = clientLoad([cluster.address(await cluster.waitForLeader())], 'r', false);
  await pause(500);

  let lead = await cluster.waitForLeader();
  const follower = members.find((id) => id !== lead) as string;
  const afterFollower = await cluster.request<{ voters: string[] }>(lead, 'removePeer', { peer: follower });
  assert.ok(!afterFollower.voters.includes(follower));
  await pause(500);

  lead = await cluster.waitForLeader(15_000, afterFollower.voters);
  const afterLeader = await cluster.request<{ voters: string[] }>(lead, 'removePeer', { peer: lead });
  assert.ok(!afterLeader.voters.includes(lead));
  const remaining = afterLeader.voters;
  const newLead = await cluster.waitForLeader(15_000, remaining);
  assert.notEqual(newLead, lead);
  await pause(500);

  const target = remaining.find((id) => id !== newLead) as string;
  assert.equal(await cluster.request<boolean>(newLead, 'transfer', { peer: target }), true);
  await pause(200);
  assert.equal(await cluster.waitForLeader(15_000, remaining), target);
  await pause(500);

  const { acked, errors } = await load.stop();
  const rawResult = await raw.stop();
  t.diagnostic(`redirecting client: ${acked} writes acknowledged; errors ${JSON.stringify(errors)}`);
  t.diagnostic(
    `client without redirects: ${rawResult.acked} acknowledged; errors ${JSON.stringify(rawResult.errors)}`,
  );
  assert.ok(acked > 100, `only ${acked} writes were acknowledged`);
  for (const code of [...Object.keys(errors), ...Object.keys(rawResult.errors)]) {
    assert.ok(RETRYABLE.has(code), `a non-retryable error: ${code}`);
  }
  // The removed nodes are out of the configuration: stop them, check the rest.
  for (const id of members) if (!remaining.includes(id)) await cluster.stop(id);
  await checkReplicas(remaining);
  for (const id of remaining) assert.deepEqual((await status(id)).voters, [...remaining].sort());
});
