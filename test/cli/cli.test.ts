/**
 * The `raftline` command and `RaftClient` against real node processes on 127.0.0.1:
 * a local cluster, the kv and admin commands with their exit codes, a client following
 * the leader after a transfer, and `bench` with a tiny duration writing JSON, .hgrm and
 * HTML.
 */

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { kvCommand } from '../../examples/kv.js';
import { waitForLeader } from '../../src/cli/cluster-status.js';
import { LocalCluster } from '../../src/cli/local-cluster.js';
import { RaftClient } from '../../src/client/raft-client.js';

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
  assert.equal((JSON.parse(r.stdout) as { peers: unknown[] }).peers.length, 2);
  r = await raftline('snapshot', '--cluster', endpoints);
  assert.equal(r.code, 0, r.stderr);
  const snap = JSON.parse(r.stdout) as { index: number; fresh: boolean };
  assert.ok(snap.index > 1 && snap.fresh, r.stdout);
  r = await raftline('add-peer', 'n4=127.0.0.1:1', '--cluster', endpoints);
  assert.equal(r.code, 4);
  assert.match(r.stderr, /not supported yet/);
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
