/**
 * `RaftNode` end to end inside one process (each node still has its real worker
 * threads, segment files and loopback sockets): the API, its errors, reads at each
 * consistency, a state machine that throws, a damaged log, the data directory lock and
 * a log window small enough that entries must travel inline.
 */

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { counterCommand } from '../../examples/counter.js';
import { kvCommand } from '../../examples/kv.js';
import {
  DataDirLockedError,
  InvalidOptionError,
  NotLeaderError,
  RaftNode,
  type RaftNodeOptions,
  ShutdownError,
  StateMachineError,
} from '../../src/index.js';
import { freePort } from '../cluster/process-cluster.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-node-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

const COUNTER = new URL('../../examples/counter.js', import.meta.url);
const KV = new URL('../../examples/kv.js', import.meta.url);
const RECORDING = new URL('../cluster/recording-sm.js', import.meta.url);
const encoder = new TextEncoder();
let dirs = 0;

async function cluster(
  size: number,
  extra: Partial<RaftNodeOptions> = {},
): Promise<{ nodes: RaftNode[]; options: RaftNodeOptions[] }> {
  const ports: number[] = [];
  for (let i = 0; i < size; i++) ports.push(await freePort());
  const base = path.join(root, `c${dirs++}`);
  const peers = ports.map((p, i) => `n${i + 1}=127.0.0.1:${p}`);
  const options = ports.map(
    (p, i): RaftNodeOptions => ({
      id: `n${i + 1}`,
      dataDir: path.join(base, `n${i + 1}`),
      listen: `127.0.0.1:${p}`,
      peers,
      stateMachine: COUNTER,
      electionTimeoutMs: 300,
      heartbeatIntervalMs: 30,
      logLevel: 'silent',
      ...extra,
    }),
  );
  const nodes = await Promise.all(options.map((o) => RaftNode.start(o)));
  return { nodes, options };
}

/** Options of a one-node cluster in `root/<name>` listening on `port`. */
function singleNode(name: string, port: number, extra: Partial<RaftNodeOptions> = {}): RaftNodeOptions {
  return {
    id: 'n1',
    dataDir: path.join(root, name),
    listen: `127.0.0.1:${port}`,
    peers: [`n1=127.0.0.1:${port}`],
    stateMachine: COUNTER,
    electionTimeoutMs: 300,
    heartbeatIntervalMs: 30,
    logLevel: 'silent',
    ...extra,
  };
}

async function leaderOf(nodes: RaftNode[]): Promise<RaftNode> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const leaders = nodes.filter((n) => n.status().role === 'Leader');
    const lead = leaders[0];
    if (leaders.length === 1 && lead && nodes.every((n) => n.status().leader === lead.id)) return lead;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('no leader');
}

test('a bad option fails at start and names the option', async () => {
  const o = { id: 'n1', dataDir: path.join(root, 'bad'), listen: '127.0.0.1:1', peers: ['n1=127.0.0.1:1'] };
  await assert.rejects(
    RaftNode.start({ ...o, stateMachine: COUNTER, electionTimeout: 5 } as unknown as RaftNodeOptions),
    (err: unknown) => err instanceof InvalidOptionError && err.option === 'electionTimeout',
  );
  await assert.rejects(
    RaftNode.start({ ...o, stateMachine: COUNTER, heartbeatIntervalMs: 500 }),
    (err: unknown) => err instanceof InvalidOptionError && /electionTimeoutMs/.test(err.message),
  );
  await assert.rejects(
    RaftNode.start({ ...o, stateMachine: new URL('file:///nonexistent/sm.js') }),
    /nonexistent\/sm\.js/,
  );
});

test('a listen address in use fails the start and leaves nothing behind', async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as net.AddressInfo).port;
  const options = singleNode('in-use', port);
  await assert.rejects(RaftNode.start(options), /EADDRINUSE/);
  await new Promise((resolve) => blocker.close(resolve));
  // The data directory was unlocked and every thread stopped: the same node now starts.
  const node = await RaftNode.start(options);
  await node.shutdown();
});

test('one node: apply, reads at every consistency, events, status, a second node on the same dir, shutdown', async () => {
  const port = await freePort();
  const options = singleNode('single', port);
  const node = await RaftNode.start(options);
  const started = new Promise<number>((resolve) => node.once('leaderStart', resolve));
  await assert.rejects(RaftNode.start(options), DataDirLockedError);
  const term = await started;
  assert.ok(term >= 1);
  assert.equal(await node.apply(counterCommand('inc', 5)), 5);
  assert.equal(await node.apply(counterCommand('dec', 2)), 3);
  const results = await Promise.all(Array.from({ length: 500 }, () => node.apply(counterCommand('inc'))));
  assert.deepEqual(
    results,
    Array.from({ length: 500 }, (_, i) => 4 + i),
  );
  assert.equal(await node.read('get'), 503);
  assert.equal(await node.read('get', { consistency: 'lease' }), 503);
  assert.equal(await node.read('get', { consistency: 'stale' }), 503);
  await assert.rejects(node.read('nonsense'), /get/);
  const s = node.status();
  assert.equal(s.role, 'Leader');
  assert.equal(s.appliedIndex, s.commitIndex);
  assert.equal(s.durableIndex, s.lastIndex);
  await node.shutdown();
  await assert.rejects(node.apply(counterCommand('inc')), ShutdownError);
  // The lock is released: the node starts again and replays its log.
  const again = await RaftNode.start(options);
  await new Promise<void>((resolve) => again.once('leaderStart', () => resolve()));
  assert.equal(await again.apply(counterCommand('inc')), 504);
  await again.shutdown();
});

test('three nodes: NotLeaderError names the leader; followers serve linearizable reads; kv compare-and-swap', async () => {
  const { nodes } = await cluster(3, { stateMachine: KV });
  try {
    const lead = await leaderOf(nodes);
    const follower = nodes.find((n) => n !== lead) as RaftNode;
    await assert.rejects(
      follower.apply(kvCommand({ op: 'put', key: 'a', value: '1' })),
      (err: unknown) =>
        err instanceof NotLeaderError && err.leaderId === lead.id && err.leaderAddress === lead.address,
    );
    await lead.apply(kvCommand({ op: 'put', key: 'a', value: '1' }));
    assert.deepEqual(await lead.apply(kvCommand({ op: 'cas', key: 'a', expected: '2', value: '3' })), {
      ok: false,
      current: '1',
    });
    assert.deepEqual(await lead.apply(kvCommand({ op: 'cas', key: 'a', expected: '1', value: '3' })), {
      ok: true,
      current: '3',
    });
    // A linearizable read on a follower sees every write acknowledged before it.
    assert.equal(await follower.read({ op: 'get', key: 'a' }), '3');
    assert.equal(await follower.read({ op: 'get', key: 'a' }, { consistency: 'lease' }), '3');
  } finally {
    await Promise.all(nodes.map((n) => n.shutdown()));
  }
});

test('an onApply that throws stops applying on every node, and is reported', async () => {
  const { nodes } = await cluster(3, { stateMachine: RECORDING });
  try {
    const lead = await leaderOf(nodes);
    const errors: Error[] = [];
    lead.on('error', (err: Error) => errors.push(err));
    assert.equal(await lead.apply(encoder.encode('x')), 1);
    await assert.rejects(lead.apply(encoder.encode('boom')), StateMachineError);
    await assert.rejects(lead.apply(encoder.encode('y')), StateMachineError);
    assert.match(lead.status().stateMachineError ?? '', /boom/);
    assert.ok(errors.some((e) => e instanceof StateMachineError));
    // Nothing after the failed entry is applied, and queries are refused: the state may be half-changed.
    const applied = lead.status().appliedIndex;
    await lead.read('count', { consistency: 'stale' }).then(
      () => assert.fail('a query ran on a failed state machine'),
      (err: Error) => assert.match(err.message, /stopped at index/),
    );
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(lead.status().appliedIndex, applied);
    // The command is deterministic, so every replica fails at the same entry.
    const deadline = Date.now() + 5000;
    while (nodes.some((n) => n.status().stateMachineError === null) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const n of nodes) assert.match(n.status().stateMachineError ?? '', /boom/);
  } finally {
    await Promise.all(nodes.map((n) => n.shutdown()));
  }
});

test("braft's role callbacks reach the state machine: leader start and stop, start and stop following", async () => {
  const { nodes } = await cluster(3, { stateMachine: RECORDING });
  try {
    const lead = await leaderOf(nodes);
    const term = lead.status().term;
    const followers = nodes.filter((n) => n !== lead);
    // Events travel on the fsm ring in order with the applies: one apply flushes them.
    await lead.apply(encoder.encode('x'));
    assert.ok(
      ((await lead.read('events', { consistency: 'stale' })) as string[]).includes(`leaderStart ${term}`),
    );
    for (const f of followers) {
      const deadline = Date.now() + 5000;
      let events: string[] = [];
      while (Date.now() < deadline) {
        events = (await f.read('events', { consistency: 'stale' })) as string[];
        if (events.includes(`startFollowing ${lead.id} ${term}`)) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(events.includes(`startFollowing ${lead.id} ${term}`), JSON.stringify(events));
    }
    // Hand leadership over: the old leader's state machine hears leaderStop.
    const target = followers[0] as RaftNode;
    assert.equal(lead.transferLeadership(target.id), true);
    const deadline = Date.now() + 5000;
    while (target.status().role !== 'Leader' && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(target.status().role, 'Leader');
    const events = (await lead.read('events', { consistency: 'stale' })) as string[];
    assert.ok(events.includes('leaderStop ERR_RAFT_NOT_LEADER'), JSON.stringify(events));
  } finally {
    await Promise.all(nodes.map((n) => n.shutdown()));
  }
});

test('a log window too small for the load: entries travel inline and every node applies the same', async () => {
  const { nodes, options } = await cluster(3, { stateMachine: RECORDING, logWindowBytes: 64 * 1024 });
  try {
    const lead = await leaderOf(nodes);
    const big = 'x'.repeat(3000);
    const results = await Promise.all(
      Array.from({ length: 400 }, (_, i) => lead.apply(encoder.encode(`${i}:${big}`))),
    );
    assert.deepEqual(
      results,
      Array.from({ length: 400 }, (_, i) => i + 1),
    );
    const last = lead.status().lastIndex;
    const deadline = Date.now() + 10_000;
    while (nodes.some((n) => n.status().appliedIndex < last) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const logs = await Promise.all(nodes.map((n) => n.read('all', { consistency: 'stale' })));
    for (const log of logs) assert.deepEqual(log, logs[0]);
    assert.equal((logs[0] as string[]).length, 400);
    assert.ok(
      lead.status().logWindow.overflowEntries > 0,
      'the test did not make entries overflow the window',
    );

    // A follower that was down is behind the window: its replicator reads the segments.
    const follower = nodes.find((n) => n !== lead) as RaftNode;
    const fi = nodes.indexOf(follower);
    await follower.shutdown();
    const more = await Promise.all(
      Array.from({ length: 300 }, (_, i) => lead.apply(encoder.encode(`late${i}:${big}`))),
    );
    assert.equal(more.length, 300);
    const restarted = await RaftNode.start(options[fi] as RaftNodeOptions);
    nodes[fi] = restarted;
    const target = lead.status().lastIndex;
    const until = Date.now() + 15_000;
    while (restarted.status().appliedIndex < target && Date.now() < until)
      await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(
      await restarted.read('all', { consistency: 'stale' }),
      await lead.read('all', { consistency: 'stale' }),
    );
    assert.ok(
      lead.status().stats.segmentMessagesSent > 0,
      'no AppendEntries was read from the segment files',
    );
  } finally {
    await Promise.all(nodes.map((n) => n.shutdown()));
  }
});

test('snapshot(): a restart loads the snapshot and replays only the entries after it', async () => {
  const port = await freePort();
  const options = singleNode('snapshot', port, { stateMachine: RECORDING });
  const node = await RaftNode.start(options);
  let snap: { index: number; term: number; fresh: boolean };
  try {
    await new Promise<void>((resolve) => node.once('leaderStart', () => resolve()));
    for (let i = 0; i < 100; i++) await node.apply(encoder.encode(`a${i}`));
    snap = await node.snapshot();
    assert.equal(snap.fresh, true);
    assert.equal(snap.index, node.status().appliedIndex);
    assert.equal((await node.snapshot()).fresh, false, 'nothing applied since: no new snapshot');
    for (let i = 0; i < 50; i++) await node.apply(encoder.encode(`b${i}`));
  } finally {
    await node.shutdown();
  }

  const again = await RaftNode.start(options);
  try {
    await new Promise<void>((resolve) => again.once('leaderStart', () => resolve()));
    await again.apply(encoder.encode('c0'));
    const all = (await again.read('all', { consistency: 'stale' })) as string[];
    assert.deepEqual(all, [
      ...Array.from({ length: 100 }, (_, i) => `a${i}`),
      ...Array.from({ length: 50 }, (_, i) => `b${i}`),
      'c0',
    ]);
    // Only the 50 entries after the snapshot and the new one were applied by this process.
    assert.equal(await again.read('appliedSinceStart', { consistency: 'stale' }), 51);
    const events = (await again.read('events', { consistency: 'stale' })) as string[];
    assert.ok(events.includes(`snapshotLoad ${snap.index}`), JSON.stringify(events));
  } finally {
    await again.shutdown();
  }
});

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('snapshot triggers: the interval fires only when something was applied; log bytes fire on their own', async () => {
  const port = await freePort();
  const node = await RaftNode.start(
    singleNode('triggers-interval', port, {
      snapshotIntervalS: 1,
      snapshotMinIntervalS: 0,
      snapshotLogBytes: 0,
      snapshotLogEntries: 0,
    }),
  );
  try {
    await new Promise<void>((resolve) => node.once('leaderStart', () => resolve()));
    await node.apply(encoder.encode('inc'));
    await until('the interval snapshot', () => node.status().stats.snapshotsSaved === 1);
    const first = node.status().snapshotIndex;
    assert.equal(first, node.status().appliedIndex);
    // Nothing applied since: the next intervals pass without a snapshot.
    const quietUntil = Date.now() + 2500;
    await until('2.5 s', () => Date.now() >= quietUntil);
    assert.equal(node.status().stats.snapshotsSaved, 1);
    await node.apply(encoder.encode('inc'));
    await until('the next interval snapshot', () => node.status().stats.snapshotsSaved === 2);
    assert.ok(node.status().snapshotIndex > first);
  } finally {
    await node.shutdown();
  }

  const port2 = await freePort();
  const bytesNode = await RaftNode.start(
    singleNode('triggers-bytes', port2, {
      snapshotIntervalS: 0,
      snapshotMinIntervalS: 0,
      snapshotLogBytes: 64 * 1024,
      snapshotLogEntries: 0,
      compactionMarginEntries: 10,
      segmentBytes: 64 * 1024,
    }),
  );
  try {
    await new Promise<void>((resolve) => bytesNode.once('leaderStart', () => resolve()));
    // About 140 bytes a record: 2000 of them cross the 64 KiB trigger several times.
    const command = encoder.encode('inc'.padEnd(100, ' '));
    for (let i = 0; i < 2000; i++) await bytesNode.apply(command);
    await until('a bytes-triggered snapshot and compaction', () => bytesNode.status().stats.compactions >= 1);
    const s = bytesNode.status();
    assert.ok(s.stats.snapshotsSaved >= 2, `${s.stats.snapshotsSaved} snapshots`);
    assert.ok(s.firstIndex > 1, 'the log was compacted');
  } finally {
    await bytesNode.shutdown();
  }
});

test('a byte flipped in the middle of the log: the node refuses to start, naming the file and offset', async () => {
  const port = await freePort();
  const options = singleNode('corrupt', port, { segmentBytes: 64 * 1024 });
  const dataDir = options.dataDir;
  const node = await RaftNode.start(options);
  await new Promise<void>((resolve) => node.once('leaderStart', () => resolve()));
  for (let i = 0; i < 20; i++) await node.apply(counterCommand('inc'));
  await node.shutdown();
  const logDir = path.join(dataDir, 'log');
  const segment = path.join(logDir, fs.readdirSync(logDir).filter((f) => f.endsWith('.seg'))[0] as string);
  const bytes = fs.readFileSync(segment);
  const offset = 100; // inside the third record: valid records follow it
  bytes[offset] = (bytes[offset] as number) ^ 0xff;
  fs.writeFileSync(segment, bytes);
  await assert.rejects(RaftNode.start(options), (err: Error) => {
    assert.match(err.message, new RegExp(segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    assert.match(err.message, /offset/);
    return true;
  });
});

test('reads too large for the fsm ring: the query or the answer is refused, and the node serves on', async () => {
  const port = await freePort();
  const node = await RaftNode.start(
    singleNode('big-reads', port, { stateMachine: new URL('./big-answer-sm.js', import.meta.url) }),
  );
  try {
    await new Promise<number>((resolve) => node.once('leaderStart', resolve));
    assert.equal(await node.apply(counterCommand('inc', 7)), 7);
    // An answer of 20 MB does not fit the 16 MiB result ring: it used to stop the fsm thread.
    await assert.rejects(node.read({ answerBytes: 20_000_000 }), {
      code: 'ERR_RAFT_QUERY',
      message: /at most/,
    });
    // A query of 10 MB does not fit the fsm ring: a linearizable one used to stop the node.
    for (const consistency of ['linearizable', 'stale'] as const) {
      await assert.rejects(node.read({ pad: 'x'.repeat(10_000_000) }, { consistency }), {
        code: 'ERR_RAFT_TOO_LARGE',
      });
    }
    const answer = await node.read({ answerBytes: 1_000_000 });
    assert.equal((answer as Uint8Array).byteLength, 1_000_000);
    assert.equal(await node.read('get'), 7);
    assert.equal(await node.apply(counterCommand('inc')), 8);
    assert.equal(node.status().fatal, null);
  } finally {
    await node.shutdown();
  }
});
