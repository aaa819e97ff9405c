/**
 * Who may join, end to end: three `raftline serve` processes with a cluster secret and an
 * admin secret (files). A client with both writes, reads and runs admin operations; one
 * without the admin secret is refused those with ERR_RAFT_FORBIDDEN; one without the
 * cluster secret or with another is refused with ERR_RAFT_AUTH; a node restarted with
 * another secret is refused by the others, which log it, while they keep serving; back
 * with the right secret it catches up.
 */
import assert from 'node:assert/strict';
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { kvCommand } from '../../examples/kv.js';
import { freePort } from '../../src/cli/local-cluster.js';
import { RaftClient, type Value } from '../../src/client/raft-client.js';
import { haveOpenssl, makeTestCerts } from '../main/tls-certs.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const CLUSTER_SECRET = 'cluster secret of the auth end-to-end test';
const ADMIN_SECRET = 'admin secret of the auth end-to-end test';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-auth-e2e-'));
const secretFile = path.join(dir, 'secret');
const otherSecretFile = path.join(dir, 'other-secret');
const adminSecretFile = path.join(dir, 'admin-secret');
fs.writeFileSync(secretFile, `${CLUSTER_SECRET}\n`, { mode: 0o600 });
fs.writeFileSync(otherSecretFile, 'a different secret, just as long\n', { mode: 0o600 });
fs.writeFileSync(adminSecretFile, `${ADMIN_SECRET}\n`, { mode: 0o600 });

interface NodeProc {
  readonly id: string;
  readonly address: string;
  child: ChildProcessWithoutNullStreams | null;
  /** Every line the node wrote on stderr (pino JSON). */
  log: string;
}

const nodes: NodeProc[] = [];
const clients: RaftClient[] = [];

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((n) => stop(n)));
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Starts `node` with `secret` as its secret file (and `extra` flags) and waits for its "listening" line. */
async function start(node: NodeProc, peers: string, secret: string, extra: string[] = []): Promise<void> {
  const child = spawn(
    process.execPath,
    [
      MAIN,
      'serve',
      '--id',
      node.id,
      '--listen',
      node.address,
      '--peers',
      peers,
      '--data-dir',
      path.join(dir, node.id),
      '--fsm',
      'kv',
      '--election-timeout-ms',
      '500',
      '--heartbeat-interval-ms',
      '50',
      '--log-level',
      'warn',
      '--secret-file',
      secret,
      '--admin-secret-file',
      adminSecretFile,
      ...extra,
    ],
    // No secret in the environment: the files are what is being tested.
    {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, RAFTLINE_SECRET: '', RAFTLINE_ADMIN_SECRET: '' },
    },
  );
  node.child = child;
  child.stderr.on('data', (c: Buffer) => {
    node.log += c.toString();
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(
      () => reject(new Error(`${node.id}: no "listening" line in 20 s: ${out}${node.log}`)),
      20_000,
    );
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${node.id} exited with ${code}: ${out}${node.log}`));
    });
  });
}

async function stop(node: NodeProc): Promise<void> {
  const child = node.child;
  if (child === null) return;
  node.child = null;
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

function client(
  endpoints: string[],
  options: { secret?: string; adminSecret?: string; tls?: { ca: Uint8Array } },
): RaftClient {
  const c = new RaftClient({ endpoints, requestTimeoutMs: 5000, connectTimeoutMs: 2000, ...options });
  clients.push(c);
  return c;
}

const outcome = (p: Promise<unknown>): Promise<string> =>
  p.then(
    (v) => `ok ${JSON.stringify(v)}`,
    (err: { code?: string }) => `${err.code}`,
  );

async function eventually<T>(what: string, fn: () => Promise<T | null>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const got = await fn().catch(() => null);
    if (got !== null) return got;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('a cluster with a cluster secret and an admin secret: who gets in, who may do what', {
  timeout: 120_000,
}, async () => {
  for (const id of ['n1', 'n2', 'n3'])
    nodes.push({ id, address: `127.0.0.1:${await freePort()}`, child: null, log: '' });
  const peers = nodes.map((n) => `${n.id}=${n.address}`).join(',');
  const endpoints = nodes.map((n) => n.address);
  await Promise.all(nodes.map((n) => start(n, peers, secretFile)));

  // With both secrets: writes, reads and admin operations.
  const admin = client(endpoints, { secret: CLUSTER_SECRET, adminSecret: ADMIN_SECRET });
  await eventually('a first write', async () => admin.apply(kvCommand({ op: 'put', key: 'k', value: 'v1' })));
  assert.equal(await admin.read({ op: 'get', key: 'k' }), 'v1');
  const snap = (await admin.snapshot()) as { index: number };
  assert.ok(snap.index > 0);
  const leader = (await admin.status()) as { id: string; leader: string };
  const target = nodes.find((n) => n.id !== leader.leader)?.id as string;
  await admin.transfer(target);
  await eventually('the transfer', async () => {
    const s = (await admin.status()) as { leader: string | null };
    return s.leader === target ? true : null;
  });

  // The cluster secret without the admin secret: data yes, admin operations no.
  const user = client(endpoints, { secret: CLUSTER_SECRET });
  assert.match(await outcome(user.apply(kvCommand({ op: 'put', key: 'k', value: 'v2' }))), /^ok/);
  assert.equal(await outcome(user.transfer(leader.leader)), 'ERR_RAFT_FORBIDDEN');
  assert.equal(await outcome(user.snapshot()), 'ERR_RAFT_FORBIDDEN');
  assert.equal(await outcome(user.removePeer('n3')), 'ERR_RAFT_FORBIDDEN');
  const members = (await admin.status()) as { voters: string[] };
  assert.deepEqual([...members.voters].sort(), ['n1', 'n2', 'n3'], 'the refused removal did nothing');

  // No cluster secret, or another one: refused, and the nodes count and log it.
  assert.equal(await outcome(client(endpoints, {}).read({ op: 'get', key: 'k' })), 'ERR_RAFT_AUTH');
  assert.equal(
    await outcome(
      client(endpoints, { secret: 'a different secret, just as long' }).read({ op: 'get', key: 'k' }),
    ),
    'ERR_RAFT_AUTH',
  );
  await eventually('the refusals logged', async () =>
    nodes.some((n) => n.log.includes('without a proof of the cluster secret')) ? true : null,
  );

  // A node restarted with another secret: refused by the others (logged), which keep serving.
  const n3 = nodes.find((n) => n.id === 'n3') as NodeProc;
  await eventually('a leader other than n3', async () => {
    const s = (await admin.status()) as { leader: string | null };
    if (s.leader === 'n3') await admin.transfer('n1');
    return s.leader !== null && s.leader !== 'n3' ? true : null;
  });
  await stop(n3);
  const before = nodes.map((n) => n.log.length);
  await start(n3, peers, otherSecretFile);
  await eventually('the impostor refused and logged by n1 or n2', async () =>
    nodes.filter((n) => n.id !== 'n3').some((n, i) => /cluster secret/.test(n.log.slice(before[i])))
      ? true
      : null,
  );
  assert.match(
    n3.log,
    /failed to prove the cluster secret|left before proving/,
    'n3 too sees the others fail',
  );
  for (let i = 0; i < 20; i++) {
    assert.match(await outcome(user.apply(kvCommand({ op: 'put', key: `during-${i}`, value: 'x' }))), /^ok/);
  }
  const status = (await admin.status()) as { transport: { authFailures: number; secret: boolean } };
  assert.equal(status.transport.secret, true);

  // Back with the right secret, it catches up.
  await stop(n3);
  await start(n3, peers, secretFile);
  const n3client = client([n3.address], { secret: CLUSTER_SECRET });
  await eventually('n3 caught up', async () => {
    const v: Value = await n3client.read({ op: 'get', key: 'during-19' }, { consistency: 'stale' });
    return v === 'x' ? true : null;
  });
});

test('a TLS cluster (mutual TLS between nodes) works, and a plain connection to it is refused', {
  timeout: 120_000,
  skip: haveOpenssl() ? false : 'no openssl on this machine',
}, async () => {
  const certs = makeTestCerts();
  try {
    const tlsNodes: NodeProc[] = [];
    for (const id of ['t1', 't2', 't3'])
      tlsNodes.push({ id, address: `127.0.0.1:${await freePort()}`, child: null, log: '' });
    nodes.push(...tlsNodes);
    const peers = tlsNodes.map((n) => `${n.id}=${n.address}`).join(',');
    const endpoints = tlsNodes.map((n) => n.address);
    const flags = ['--tls-cert', certs.certFile, '--tls-key', certs.keyFile, '--tls-ca', certs.caFile];
    await Promise.all(tlsNodes.map((n) => start(n, peers, secretFile, flags)));

    // The nodes elect a leader over mutual TLS, and a client that trusts the CA writes and reads.
    const good = client(endpoints, { secret: CLUSTER_SECRET, tls: { ca: certs.ca } });
    await eventually('a write over TLS', async () =>
      good.apply(kvCommand({ op: 'put', key: 't', value: 'tls' })),
    );
    assert.equal(await good.read({ op: 'get', key: 't' }), 'tls');
    const status = (await good.status()) as { transport: { tls: boolean } };
    assert.equal(status.transport.tls, true);

    // A plain client (with the right secret) is refused at the TLS handshake, and the nodes count it.
    const plain = client(endpoints, { secret: CLUSTER_SECRET });
    assert.equal(await outcome(plain.read({ op: 'get', key: 't' })), 'ERR_RAFT_UNAVAILABLE');
    await eventually('the refusal logged', async () =>
      tlsNodes.some((n) => n.log.includes('failed the TLS handshake')) ? true : null,
    );
    const after = (await good.status()) as { transport: { tlsFailures: number } };
    assert.ok(after.transport.tlsFailures >= 1, 'the refused plain connection is counted');
  } finally {
    certs.remove();
  }
});
