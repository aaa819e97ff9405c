/**
 * Exactly-once writes end to end, on three real node processes running the counter
 * (`examples/counter.ts`): a write whose answer is lost is sent again by `RaftClient` with
 * the same seq, and the counter shows it applied once:
 * - the client's connection is cut after the leader applied the write, before the answer
 *   came back (a delaying TCP proxy between the client and the leader holds the answer);
 * - the leader is killed after the write committed, its answer still held by the proxy;
 * - the whole cluster is snapshotted and restarted while the answer is held: the retry is
 *   deduped by the session table loaded with the snapshot (the log replays only after it).
 */

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RaftClient } from '../../src/client/raft-client.js';
import { LinkProxy } from '../chaos/proxy.js';
import { ProcessCluster } from './process-cluster.js';

const COUNTER = new URL('../../examples/counter.js', import.meta.url).href;
const text = new TextEncoder();
/** How long the proxy holds each chunk: the write is applied long before its answer is let through. */
const HOLD_MS = 1500;

let cluster: ProcessCluster;

before(async () => {
  cluster = await ProcessCluster.start({ size: 3, stateMachine: COUNTER });
});

after(async () => {
  await cluster?.destroy();
});

/** The counter's value on `id`, as that node has applied it. */
function counterOn(id: string): Promise<number> {
  return cluster.request<number>(id, 'read', { query: 'get', consistency: 'stale' });
}

/** Waits (bounded) until every running node's counter is `value`. */
async function waitForCounter(value: number, among = cluster.running()): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const values = await Promise.all(among.map(counterOn));
    if (values.every((v) => v === value)) return;
    if (Date.now() > deadline) assert.fail(`counters ${values.join(',')} never all reached ${value}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A client whose first endpoint is a proxy in front of `lead` (the others direct), its
 * session already registered by one write of `inc 0`, and the proxy then set to hold
 * every chunk for HOLD_MS.
 */
async function clientThroughProxy(lead: string): Promise<{ client: RaftClient; proxy: LinkProxy }> {
  const proxy = new LinkProxy('client', lead, cluster.member(lead).port);
  await proxy.listen();
  const others = cluster
    .ids()
    .filter((id) => id !== lead)
    .map((id) => cluster.address(id));
  const client = new RaftClient({
    endpoints: [`127.0.0.1:${proxy.port}`, ...others],
    requestTimeoutMs: 40_000,
    connectTimeoutMs: 1000,
  });
  try {
    await client.apply(text.encode('inc 0'));
  } catch (err) {
    await client.close();
    await proxy.close();
    throw err;
  }
  proxy.delay(HOLD_MS);
  return { client, proxy };
}

test('a write whose answer is lost with its connection is applied once', async () => {
  const lead = await cluster.waitForLeader();
  const start = await counterOn(lead);
  const { client, proxy } = await clientThroughProxy(lead);
  try {
    const answer = client.apply(text.encode('inc 1'));
    // Applied on the leader while the answer sits in the proxy: cut the connection then.
    await waitForCounter(start + 1, [lead]);
    proxy.cut();
    assert.equal(await answer, start + 1, "the retry is answered with the first copy's result");
    assert.ok(proxy.counters.destroyed >= 1, 'the connection was cut');
    await waitForCounter(start + 1);
    // Later writes go on in the same session.
    assert.equal(await client.apply(text.encode('inc 1')), start + 2);
  } finally {
    await client.close();
    await proxy.close();
  }
});

test('a write committed by a leader killed before its answer left is applied once', async () => {
  const lead = await cluster.waitForLeader();
  const start = await counterOn(lead);
  const { client, proxy } = await clientThroughProxy(lead);
  try {
    const answer = client.apply(text.encode('inc 10'));
    // Committed: applied by every node, so the next leader has it.
    await waitForCounter(start + 10);
    await cluster.kill(lead);
    proxy.cut();
    assert.equal(await answer, start + 10);
    const survivors = cluster.running();
    await cluster.waitForLeader(15_000, survivors);
    await waitForCounter(start + 10, survivors);
  } finally {
    await client.close();
    await proxy.close();
    await cluster.startMember(lead);
  }
});

test('the dedupe holds across a snapshot and a restart of every node', async () => {
  const lead = await cluster.waitForLeader();
  await waitForCounter(await counterOn(lead));
  const start = await counterOn(lead);
  const { client, proxy } = await clientThroughProxy(lead);
  try {
    const answer = client.apply(text.encode('inc 100'));
    await waitForCounter(start + 100);
    // Every node snapshots past the write, and restarts from that snapshot: the log it
    // replays begins after the write, so only the saved session table knows it.
    for (const id of cluster.ids()) await cluster.request(id, 'snapshot');
    for (const id of cluster.ids()) await cluster.kill(id);
    proxy.cut();
    for (const id of cluster.ids()) await cluster.startMember(id);
    assert.equal(await answer, start + 100);
    await cluster.waitForLeader();
    await waitForCounter(start + 100);
  } finally {
    await client.close();
    await proxy.close();
  }
});
