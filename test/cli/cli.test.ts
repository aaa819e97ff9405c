/**
 * The `raftline` command and `RaftClient` against real node processes on 127.0.0.1:
 * a local cluster, the kv and admin commands with their exit codes, a client following
 * the leader after a transfer, and `bench` with a tiny duration writing JSON, .hgrm and
 * HTML.
 *
 * The membership commands (`peers`, `add-peer`, `add-learner`, `remove-peer`) run against
 * fake nodes: the real client server and codec in this process with a fake
 * `ClientHandler` behind them (`test/client/fake-handler-node.ts`), so what the CLI sends,
 * prints and exits with is checked without depending on the coordinator. One end-to-end
 * test runs against real nodes: a node joining with `serve --join`, added, listed, removed.
 * `serve`'s new flags are checked at start: a bad value fails naming its flag.
 */

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { kvCommand } from '../../examples/kv.js';
import type { MembersView } from '../../src/cli/admin.js';
import { waitForLeader } from '../../src/cli/cluster-status.js';
import { freePort, LocalCluster } from '../../src/cli/local-cluster.js';
import { RaftClient } from '../../src/client/raft-client.js';
import { NotLeaderError, RaftError, TimeoutError } from '../../src/main/errors.js';
import { InvalidConfChangeError } from '../../src/raft/conf-change.js';
import type { Value } from '../../src/shared/value-codec.js';
import { type FakeHandlerNode, leaderStatus, startFakeHandlerNode } from '../client/fake-handler-node.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const run = promisify(execFile);

/** Runs `raftline args...`; resolves with its exit code and output (never rejects on a non-zero exit). */
async function raftline(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

let cluster: LocalCluster;
let endpoints: string;

before(async () => {
  cluster = await LocalCluster.start({
    nodes: 3,
    fsm: 'kv',
    sync: true,
    electionTimeoutMs: 500,
    heartbeatIntervalMs: 50,
    logLevel: 'error',
    showLogs: false,
  });
  endpoints = cluster.endpoints.join(',');
});

after(async () => {
  await cluster?.stop();
});

test('kv put, get, cas and del through the CLI; status and peers; refusals have their exit codes', async () => {
  let r = await raftline('kv', 'put', 'hello', 'world', '--cluster', endpoints);
  assert.equal(r.code, 0, r.stderr);
  r = await raftline('kv', 'get', 'hello', '--cluster', endpoints);
  assert.equal(r.stdout.trim(), 'world');
  r = await raftline('kv', 'cas', 'hello', 'nope', 'x', '--cluster', endpoints);
  assert.deepEqual(JSON.parse(r.stdout), { ok: false, current: 'world' });
  r = await raftline('kv', 'del', 'hello', '--cluster', endpoints);
  assert.deepEqual(JSON.parse(r.stdout), { ok: true, deleted: true });
  r = await raftline('status', '--json', '--cluster', endpoints);
  assert.equal(r.code, 0, r.stderr);
  const statuses = JSON.parse(r.stdout) as { ok: boolean; status: { role: string; pid: number } }[];
  assert.equal(statuses.length, 3);
  assert.equal(statuses.filter((s) => s.status.role === 'Leader').length, 1);
  assert.ok(statuses.every((s) => s.ok && s.status.pid > 0));
  r = await raftline('peers', '--json', '--cluster', endpoints);
  assert.equal(r.code, 0, r.stderr);
  const view = JSON.parse(r.stdout) as MembersView;
  assert.equal(view.members.length, 3);
  assert.deepEqual(view.members.map((m) => m.role).sort(), ['voter', 'voter', 'voter']);
  assert.equal(view.members.filter((m) => m.leader).length, 1);
  assert.equal(view.members[0]?.id, view.leader);
  assert.deepEqual(view.members.map((m) => m.address).sort(), [...cluster.endpoints].sort());
  r = await raftline('snapshot', '--cluster', endpoints);
  assert.equal(r.code, 0, r.stderr);
  const snap = JSON.parse(r.stdout) as { index: number; fresh: boolean };
  assert.ok(snap.index > 1 && snap.fresh, r.stdout);
  r = await raftline('kv', 'get', 'x', '--cluster', '127.0.0.1:1', '--timeout-ms', '500');
  assert.equal(r.code, 3, `${r.stdout}${r.stderr}`);
  r = await raftline('kv', 'put', 'onlykey', '--cluster', endpoints);
  assert.equal(r.code, 2);
});

test('a client follows the leader: started on a follower, and again after a leadership transfer', async () => {
  const admin = new RaftClient({ endpoints: cluster.endpoints });
  const leader = await waitForLeader(admin, cluster.endpoints, 10_000);
  const follower = cluster.endpoints.find((e) => e !== leader.address) as string;
  const client = new RaftClient({ endpoints: [follower, ...cluster.endpoints] });
  try {
    await client.connect();
    assert.deepEqual(await client.apply(kvCommand({ op: 'put', key: 'a', value: '1' })), {
      ok: true,
      prev: null,
    });
    assert.equal(client.connectedEndpoint, leader.address);
    const target = cluster.members.find((m) => m.address !== leader.address) as {
      id: string;
      address: string;
    };
    const r = await raftline('transfer', target.id, '--cluster', endpoints);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await client.apply(kvCommand({ op: 'put', key: 'a', value: '2' })), {
      ok: true,
      prev: '1',
    });
    assert.equal(client.connectedEndpoint, target.address);
    assert.equal(await client.read({ op: 'get', key: 'a' }, { consistency: 'linearizable' }), '2');
    const results = await client.applyBatch([
      kvCommand({ op: 'put', key: 'b', value: '1' }),
      kvCommand({ op: 'cas', key: 'b', expected: '1', value: '2' }),
      kvCommand({ op: 'delete', key: 'zzz' }),
    ]);
    assert.deepEqual(results, [
      { ok: true, prev: null },
      { ok: true, current: '2' },
      { ok: true, deleted: false },
    ]);
  } finally {
    await client.close();
    await admin.close();
  }
});

test('bench with a tiny duration writes a valid JSON summary, an .hgrm file and an HTML report', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-bench-'));
  try {
    const files = {
      json: path.join(dir, 'r.json'),
      hgrm: path.join(dir, 'r.hgrm'),
      html: path.join(dir, 'r.html'),
    };
    const r = await raftline(
      'bench',
      '--cluster',
      endpoints,
      '--duration',
      '1',
      '--warmup',
      '0.2',
      '--connections',
      '2',
      '--pipeline',
      '4',
      '--batch',
      '4',
      '--json',
      files.json,
      '--hgrm',
      files.hgrm,
      '--report',
      files.html,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /requests\/s/);
    const j = JSON.parse(fs.readFileSync(files.json, 'utf8'));
    for (const k of ['requestsPerSec', 'commandsPerSec', 'latencyUs', 'errors', 'config'])
      assert.ok(k in j, k);
    assert.ok(j.requestsPerSec > 0);
    assert.ok(Math.abs(j.commandsPerSec - 4 * j.requestsPerSec) < 1e-6 * j.commandsPerSec + 1e-9);
    for (const k of ['p50', 'p90', 'p99', 'p999', 'max'])
      assert.ok(Number.isFinite(j.latencyUs[k]) && j.latencyUs[k] > 0, k);
    const hgrm = fs.readFileSync(files.hgrm, 'utf8');
    assert.match(hgrm, /Value\s+Percentile\s+TotalCount\s+1\/\(1-Percentile\)/);
    assert.match(hgrm, /#\[Max\s+=/);
    const html = fs.readFileSync(files.html, 'utf8');
    assert.match(html, /<svg/);
    assert.doesNotMatch(html, /https?:\/\//);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

describe('membership commands against fake nodes', () => {
  // A leader n1 and a follower n2 that redirects to it. The leader keeps a configuration
  // and changes it as asked, refusing what Raft would refuse.
  let leader: FakeHandlerNode;
  let follower: FakeHandlerNode;
  let fakes: string;
  let index = 42;
  const voters = ['n1', 'n2', 'n3'];
  const learners = ['n4'];
  const configuration = (): Value => ({ index, voters: [...voters], learners: [...learners] });
  const calls = (node: FakeHandlerNode): string[] =>
    node.calls.filter((c) => c.method !== 'statusValue').map((c) => `${c.method} ${c.args.join(' ')}`);

  before(async () => {
    leader = await startFakeHandlerNode(
      {
        statusValue: () =>
          leaderStatus({
            id: 'n1',
            voters,
            learners,
            lastIndex: index,
            durableIndex: index,
            peers: [
              { id: 'n2', address: follower.address, connected: true, matchIndex: index, lastAckAgoMs: 3 },
              { id: 'n3', address: '127.0.0.1:7003', connected: false, matchIndex: 30, lastAckAgoMs: null },
              {
                id: 'n4',
                address: '127.0.0.1:7004',
                connected: true,
                matchIndex: index - 1,
                lastAckAgoMs: 5,
              },
            ],
          }),
        addPeer: async (id) => {
          if (id === 'busy')
            throw new RaftError('ERR_RAFT_CONF_CHANGE_PENDING', 'a configuration change is in progress');
          // As the coordinator does: adding a voter again changes nothing.
          if (voters.includes(id)) return configuration();
          voters.push(id);
          if (learners.includes(id)) learners.splice(learners.indexOf(id), 1);
          index++;
          return configuration();
        },
        addLearner: async (id) => {
          if (voters.includes(id) || learners.includes(id))
            throw new InvalidConfChangeError(`${id} is already a member`);
          learners.push(id);
          index++;
          return configuration();
        },
        removePeer: (id) => {
          if (id === 'slow') return new Promise<Value>(() => {});
          if (id === 'late') return Promise.reject(new TimeoutError('the change did not commit in 10000 ms'));
          const list = voters.includes(id) ? voters : learners.includes(id) ? learners : null;
          if (list === null) return Promise.reject(new InvalidConfChangeError(`${id} is not a member`));
          list.splice(list.indexOf(id), 1);
          index++;
          return Promise.resolve(configuration());
        },
      },
      { nodeId: 'n1' },
    );
    const notLeader = (): Promise<Value> => Promise.reject(new NotLeaderError('n1', leader.address));
    follower = await startFakeHandlerNode(
      {
        statusValue: () => ({ id: 'n2', role: 'Follower', leader: 'n1', voters, learners, peers: [] }),
        addPeer: notLeader,
        addLearner: notLeader,
        removePeer: notLeader,
      },
      { nodeId: 'n2' },
    );
    // The follower first: every change is redirected to the leader.
    fakes = `${follower.address},${leader.address}`;
  });

  after(async () => {
    await leader?.close();
    await follower?.close();
  });

  test('peers lists every member with its role, address, link and match index, and marks the leader', async () => {
    let r = await raftline('peers', '--json', '--cluster', fakes);
    assert.equal(r.code, 0, r.stderr);
    const view = JSON.parse(r.stdout) as MembersView;
    assert.deepEqual(view, {
      leader: 'n1',
      leaderAddress: leader.address,
      term: 3,
      commitIndex: 40,
      lastIndex: 42,
      voters: ['n1', 'n2', 'n3'],
      learners: ['n4'],
      members: [
        {
          id: 'n1',
          role: 'voter',
          leader: true,
          address: leader.address,
          connected: null,
          matchIndex: 42,
          lagEntries: 0,
          lastAckAgoMs: null,
        },
        {
          id: 'n2',
          role: 'voter',
          leader: false,
          address: follower.address,
          connected: true,
          matchIndex: 42,
          lagEntries: 0,
          lastAckAgoMs: 3,
        },
        {
          id: 'n3',
          role: 'voter',
          leader: false,
          address: '127.0.0.1:7003',
          connected: false,
          matchIndex: 30,
          lagEntries: 12,
          lastAckAgoMs: null,
        },
        {
          id: 'n4',
          role: 'learner',
          leader: false,
          address: '127.0.0.1:7004',
          connected: true,
          matchIndex: 41,
          lagEntries: 1,
          lastAckAgoMs: 5,
        },
      ],
    });

    r = await raftline('peers', '--cluster', fakes);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines[0], `leader n1 at ${leader.address}, term 3, commit 40, last index 42`);
    assert.match(lines[1] as string, /^id\s+role\s+leader\s+address\s+link\s+match\s+lag\s+last ack$/);
    const esc = (s: string): string => s.replace(/[.]/g, '\\.');
    assert.match(
      lines[2] as string,
      new RegExp(`^n1\\s+voter\\s+\\*\\s+${esc(leader.address)}\\s+-\\s+42\\s+0\\s+-$`),
    );
    assert.match(
      lines[3] as string,
      new RegExp(`^n2\\s+voter\\s+${esc(follower.address)}\\s+up\\s+42\\s+0\\s+3 ms ago$`),
    );
    assert.match(lines[4] as string, /^n3\s+voter\s+127\.0\.0\.1:7003\s+down\s+30\s+12\s+-$/);
    assert.match(lines[5] as string, /^n4\s+learner\s+127\.0\.0\.1:7004\s+up\s+41\s+1\s+5 ms ago$/);
    assert.equal(lines.length, 6);
  });

  test('add-peer, add-learner and remove-peer follow the leader and print the configuration', async () => {
    let r = await raftline('add-peer', 'n5=127.0.0.1:7005', '--cluster', fakes);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'n5 is a voter; configuration at index 43: voters n1,n2,n3,n5; learners n4\n');
    r = await raftline('add-learner', 'n6=127.0.0.1:7006', '--json', '--cluster', fakes);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      index: 44,
      voters: ['n1', 'n2', 'n3', 'n5'],
      learners: ['n4', 'n6'],
    });
    r = await raftline('remove-peer', 'n5', '--cluster', fakes);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'n5 is removed; configuration at index 45: voters n1,n2,n3; learners n4,n6\n');
    r = await raftline('remove-peer', 'n6', '--cluster', fakes);
    assert.equal(r.code, 0, r.stderr);
    // Each command asked the follower first (a new process, a new client), then the leader.
    assert.deepEqual(calls(follower), [
      'addPeer n5 127.0.0.1:7005',
      'addLearner n6 127.0.0.1:7006',
      'removePeer n5',
      'removePeer n6',
    ]);
    assert.deepEqual(calls(leader), calls(follower));
  });

  test('refused, malformed and unanswered changes exit with their codes', async () => {
    const before = calls(leader).length;
    // Refused by the cluster: 4.
    let r = await raftline('remove-peer', 'n9', '--cluster', fakes);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^raftline: n9 is not a member$/m);
    r = await raftline('add-learner', 'n4=127.0.0.1:7004', '--cluster', fakes);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /n4 is already a member/);
    r = await raftline('add-peer', 'busy=127.0.0.1:7010', '--cluster', fakes);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /in progress/);
    assert.equal(calls(leader).length - before, 3);

    // Malformed: 2, and nothing is sent.
    r = await raftline('add-peer', 'n7', '--cluster', fakes);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /invalid address "n7": expected id=host:port/);
    r = await raftline('add-learner', 'n7=127.0.0.1:0', '--cluster', fakes);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /port 0/);
    r = await raftline('remove-peer', '--cluster', fakes);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(calls(leader).length - before, 3);

    // No answer in time, from the node or the client: 3, saying how to find out.
    r = await raftline('remove-peer', 'late', '--cluster', fakes);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /did not commit in 10000 ms.*raftline peers/);
    r = await raftline('remove-peer', 'slow', '--cluster', fakes, '--timeout-ms', '300');
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /outcome is unknown/);
    // Nobody reachable, or no leader: 3.
    r = await raftline('add-peer', 'n8=127.0.0.1:7008', '--cluster', '127.0.0.1:1', '--timeout-ms', '500');
    assert.equal(r.code, 3, r.stderr);
    r = await raftline('peers', '--cluster', follower.address, '--timeout-ms', '300');
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /no leader/);
  });
});

describe('serve flags', () => {
  test('the snapshot, compaction, promotion and join flags reach the node; a bad value fails naming its flag', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-serve-'));
    try {
      const base = ['serve', '--id', 'n1', '--listen', '127.0.0.1:0', '--peers', 'n1=127.0.0.1:7001'];
      const dataDir = (name: string): string[] => ['--data-dir', path.join(dir, name)];
      let r = await raftline(...base, ...dataDir('a'), '--snapshot-chunk-bytes', '10');
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--snapshot-chunk-bytes: option snapshotChunkBytes: must be an integer/);
      r = await raftline(...base, ...dataDir('b'), '--compaction-margin-entries', 'lots');
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--compaction-margin-entries: not a number: "lots"/);
      r = await raftline(...base, ...dataDir('c'), '--promote-margin-entries', '-1');
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--promote-margin-entries/);
      r = await raftline(...base, ...dataDir('d'), '--snapshot-interval-s', '');
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /--snapshot-interval-s: not a number/);

      // Every new flag with a valid value: the node starts, waits to be added, and stops on SIGTERM.
      const port = await freePort();
      const child = spawn(
        process.execPath,
        [
          MAIN,
          'serve',
          '--id',
          'n4',
          '--listen',
          `127.0.0.1:${port}`,
          '--peers',
          `n1=127.0.0.1:${await freePort()},n4=127.0.0.1:${port}`,
          ...dataDir('e'),
          '--join',
          '--snapshot-interval-s',
          '60',
          '--snapshot-log-bytes',
          '1048576',
          '--snapshot-log-entries',
          '1000',
          '--snapshot-min-interval-s',
          '1',
          '--compaction-margin-entries',
          '100',
          '--snapshot-chunk-bytes',
          '65536',
          '--snapshot-bytes-per-second',
          '0',
          '--promote-margin-entries',
          '10',
          '--log-level',
          'silent',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      let err = '';
      child.stderr.on('data', (c: Buffer) => {
        err += c.toString();
      });
      const exited = new Promise<string>((resolve) =>
        child.once('exit', (code, signal) => resolve(signal ?? String(code))),
      );
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no "joining" line within 20 s: ${out}${err}`)),
          20_000,
        );
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          if (out.includes('joining:')) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`serve exited with ${code} before it listened: ${out}${err}`));
        });
      });
      assert.match(out, new RegExp(`listening on 127\\.0\\.0\\.1:${port}`));
      assert.match(out, new RegExp(`raftline add-peer n4=127\\.0\\.0\\.1:${port}`));
      child.kill('SIGTERM');
      assert.equal(await exited, '0', err);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('membership end to end: a node started with serve --join is added, listed as a voter, and removed', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-join-'));
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const peers = [...cluster.members.map((m) => `${m.id}=${m.address}`), `n4=${address}`].join(',');
  const child = spawn(
    process.execPath,
    [
      MAIN,
      'serve',
      '--id',
      'n4',
      '--listen',
      address,
      '--peers',
      peers,
      '--data-dir',
      path.join(dir, 'n4'),
      '--fsm',
      'kv',
      '--join',
      '--election-timeout-ms',
      '500',
      '--heartbeat-interval-ms',
      '50',
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('listening on')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`n4 exited with ${code} before it listened`)));
    });
    let r = await raftline('kv', 'put', 'joined', 'yes', '--cluster', endpoints);
    assert.equal(r.code, 0, r.stderr);
    r = await raftline('add-peer', `n4=${address}`, '--json', '--cluster', endpoints);
    assert.equal(r.code, 0, r.stderr);
    const added = JSON.parse(r.stdout) as { voters: string[]; learners: string[] };
    assert.ok(added.voters.includes('n4'), r.stdout);
    assert.ok(!added.learners.includes('n4'), r.stdout);
    r = await raftline('peers', '--json', '--cluster', endpoints);
    assert.equal(r.code, 0, r.stderr);
    const view = JSON.parse(r.stdout) as MembersView;
    const n4 = view.members.find((m) => m.id === 'n4');
    assert.equal(n4?.role, 'voter');
    assert.equal(n4?.address, address);
    // The new node has the data written before it joined.
    r = await raftline('kv', 'get', 'joined', '--consistency', 'stale', '--cluster', address);
    assert.equal(r.stdout.trim(), 'yes', r.stderr);
    r = await raftline('remove-peer', 'n4', '--json', '--cluster', endpoints);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!(JSON.parse(r.stdout) as { voters: string[] }).voters.includes('n4'), r.stdout);
    r = await raftline('add-learner', `n4=${address}`, '--json', '--cluster', endpoints);
    assert.equal(r.code, 0, r.stderr);
    assert.ok((JSON.parse(r.stdout) as { learners: string[] }).learners.includes('n4'), r.stdout);
    r = await raftline('remove-peer', 'n4', '--cluster', endpoints);
    assert.equal(r.code, 0, r.stderr);
  } finally {
    child.kill('SIGTERM');
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
