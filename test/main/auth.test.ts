/**
 * Who may join, over loopback TCP: `PeerServer` with secrets against `PeerLink`,
 * `SnapshotSender`'s handshake, `RaftClient`'s and raw sockets that lie. Also the
 * election timeouts the peers announce (`leaseReadsSafe`). Every server, link and socket
 * is closed when its test ends, and every wait is bounded.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { RaftClient } from '../../src/client/raft-client.js';
import { type ClientHandler, serveClient } from '../../src/main/client-server.js';
import type { NodeStatus } from '../../src/main/coordinator.js';
import { FsmSnapshotSink } from '../../src/main/fsm-snapshot-sink.js';
import { MetricsServer } from '../../src/main/metrics-server.js';
import { type ClientAccess, PeerServer, type PeerServerOptions } from '../../src/main/peer-server.js';
import { SnapshotStreamReceiver } from '../../src/main/snapshot-receiver.js';
import { MessageType, message } from '../../src/raft/messages.js';
import { type Secret, toSecret } from '../../src/shared/auth.js';
import {
  encodeHandshakeFrame,
  encodeRaftMessageFrame,
  FrameDecoder,
  FrameError,
  OutBuffer,
} from '../../src/shared/message-codec.js';
import { FrameType, HandshakeRole } from '../../src/shared/protocol.js';
import { installSnapshotIntake } from '../../src/workers/fsm/snapshot-intake.js';
import { SnapshotStore } from '../../src/workers/fsm/snapshot-store.js';
import { SnapshotSender, type SnapshotSendResult } from '../../src/workers/replicator/snapshot-sender.js';
import {
  CLUSTER,
  HOST,
  heartbeat,
  recordingLogger,
  sleep,
  startLink,
  waitFor,
} from './transport-fixtures.js';

const SECRET = toSecret('the cluster secret of this test', 'test');
const OTHER = toSecret('not the cluster secret of this test', 'test');
const ADMIN = toSecret('the admin secret of this test', 'test');
const TEST_TIMEOUT_MS = 15_000;

/** A handler that answers every op at once, so the admin check is what decides. */
const FAKE_HANDLER = {
  read: async () => 'read',
  statusValue: () => ({ id: 'n2' }),
  snapshot: async () => ({ index: 1, term: 1, fresh: true }),
  transfer: async () => 'transferred',
  addPeer: async () => 'added',
  addLearner: async () => 'added',
  removePeer: async () => 'removed',
} as unknown as ClientHandler;

async function startServer(
  t: TestContext,
  overrides: Partial<PeerServerOptions> = {},
): Promise<{
  server: PeerServer;
  port: number;
  log: ReturnType<typeof recordingLogger>;
  messages: string[];
  access: ClientAccess[];
}> {
  const log = recordingLogger();
  const messages: string[] = [];
  const access: ClientAccess[] = [];
  const server = new PeerServer({
    host: HOST,
    port: 0,
    clusterId: CLUSTER,
    nodeId: 'n2',
    electionTimeoutMs: 1000,
    logger: log,
    onMessage: (frame, from) => messages.push(`${from}:${frame.message.index}`),
    onClientConnection: (socket, _hs, decoder, a) => {
      access.push(a);
      serveClient(socket, decoder, FAKE_HANDLER, log as unknown as Parameters<typeof serveClient>[3], a);
    },
    ...overrides,
  });
  t.after(() => server.close());
  const { port } = await server.listen();
  return { server, port, log, messages, access };
}

function secrets(secret: Secret | null, adminSecret: Secret | null = null): PeerServerOptions['secrets'] {
  return { secret, adminSecret };
}

/** Opens a raw socket, writes `bytes`, and collects the frames the server answers until it closes. */
async function rawExchange(
  port: number,
  bytes: Uint8Array,
  timeoutMs = 3000,
): Promise<{ frames: string[]; closed: boolean }> {
  const socket = net.connect({ host: HOST, port });
  const decoder = new FrameDecoder();
  const frames: string[] = [];
  let closed = false;
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let f = decoder.next(); f !== null && !(f instanceof FrameError); f = decoder.next()) {
      frames.push(
        f.type === FrameType.Handshake
          ? `handshake authFollows=${f.handshake.authFollows}`
          : `type ${f.type}`,
      );
    }
  });
  const done = new Promise<void>((resolve) =>
    socket.on('close', () => {
      closed = true;
      resolve();
    }),
  );
  socket.write(bytes);
  await Promise.race([done, sleep(timeoutMs)]);
  socket.destroy();
  return { frames, closed };
}

describe('peer links with a cluster secret', () => {
  test('the same secret: the link comes up and messages flow', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const { server, port, messages } = await startServer(t, { secrets: secrets(SECRET) });
    const { link } = startLink(t, port, { credentials: { secret: SECRET } });
    await waitFor(() => link.connected, 'the link');
    assert.ok(link.send(heartbeat(1)));
    assert.ok(link.send(heartbeat(2)));
    await waitFor(() => messages.length === 2, 'two messages');
    assert.deepEqual(messages, ['n1:1', 'n1:2']);
    assert.equal(server.authFailures, 0);
  });

  test('a wrong secret: the link never comes up, the server counts and logs the failures at a bounded rate', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const { server, port, log, messages } = await startServer(t, { secrets: secrets(SECRET) });
    const { link, log: linkLog } = startLink(t, port, { credentials: { secret: OTHER } });
    await waitFor(() => link.connectAttempts >= 10, 'ten attempts');
    assert.equal(link.connects, 0);
    assert.equal(messages.length, 0);
    // The link refuses the node's proof (it was made with another secret), so the node
    // sees connections that never prove anything: closed by the connector, or timed out.
    const warned = linkLog.lines.filter(
      (l) => l.level === 'warn' && /failed to prove the cluster secret/.test(String(l.fields.reason)),
    );
    assert.equal(warned.length, 1, 'the link logs the failure once, not per retry');
    assert.equal(server.connectionsAccepted, 0);
    assert.ok(!log.lines.some((l) => l.msg === 'peer connected'));
  });

  test('no secret on the link: refused by the server, which says so in a handshake, counts and logs once', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const { server, port, log } = await startServer(t, { secrets: secrets(SECRET) });
    const { link, log: linkLog } = startLink(t, port, { credentials: { secret: null } });
    await waitFor(() => server.authFailures >= 10, 'ten refusals');
    assert.equal(link.connects, 0);
    const lines = log.lines.filter(
      (l) => l.level === 'warn' && l.msg.includes('without a proof of the cluster secret'),
    );
    assert.ok(
      lines.length >= 1 && lines.length <= 2,
      `rate-limited: ${lines.length} lines for ${server.authFailures} refusals`,
    );
    assert.ok(
      linkLog.lines.some((l) =>
        /requires the cluster secret, and none is configured here/.test(String(l.fields.reason)),
      ),
      'the link says why',
    );
  });

  test('a link with a secret refuses a node without one (an impostor)', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const { port, messages } = await startServer(t, {});
    const { link, log } = startLink(t, port, { credentials: { secret: SECRET } });
    await waitFor(() => link.connectAttempts >= 3, 'three attempts');
    assert.equal(link.connects, 0);
    assert.equal(messages.length, 0);
    assert.ok(log.lines.some((l) => /proves no secret/.test(String(l.fields.reason))));
  });

  test('a connector that announces a proof and never sends it is closed at the handshake timeout, as an auth failure', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const { server, port } = await startServer(t, { secrets: secrets(SECRET), handshakeTimeoutMs: 200 });
    const out = new OutBuffer(128);
    encodeHandshakeFrame(out, {
      role: HandshakeRole.Peer,
      clusterId: CLUSTER,
      nodeId: 'n1',
      authFollows: true,
      nonce: new Uint8Array(32),
    });
    const got = await rawExchange(port, out.view().slice());
    assert.equal(got.closed, true);
    assert.deepEqual(got.frames, ['handshake authFollows=true', `type ${FrameType.Auth}`]);
    assert.equal(server.authFailures, 1);
  });

  test('a raw connection that sends Raft messages without a handshake proof is refused before any is delivered', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const { server, port, messages } = await startServer(t, { secrets: secrets(SECRET) });
    const out = new OutBuffer(256);
    encodeHandshakeFrame(out, { role: HandshakeRole.Peer, clusterId: CLUSTER, nodeId: 'n1' });
    encodeRaftMessageFrame(out, message({ type: MessageType.MsgHeartbeat, from: 'n1', to: 'n2', term: 1 }));
    const got = await rawExchange(port, out.view().slice());
    assert.equal(got.closed, true);
    assert.deepEqual(
      got.frames,
      ['handshake authFollows=true'],
      'a handshake that demands a proof, no proof of ours',
    );
    assert.equal(messages.length, 0);
    assert.equal(server.authFailures, 1);
  });
});

describe('clients with secrets', () => {
  test('the cluster secret lets a client in; admin ops need the admin secret (ERR_RAFT_FORBIDDEN), nothing else does', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const { port } = await startServer(t, { secrets: secrets(SECRET, ADMIN) });
    const endpoint = `${HOST}:${port}`;
    const user = new RaftClient({
      clusterId: CLUSTER,
      endpoints: [endpoint],
      secret: 'the cluster secret of this test',
    });
    const admin = new RaftClient({
      clusterId: CLUSTER,
      endpoints: [endpoint],
      secret: 'the cluster secret of this test',
      adminSecret: 'the admin secret of this test',
    });
    t.after(() => Promise.all([user.close(), admin.close()]));
    assert.equal(await user.read('q', { consistency: 'stale' }), 'read');
    const forbidden = await user.transfer('n3').then(
      () => 'allowed',
      (err: { code?: string }) => err.code,
    );
    assert.equal(forbidden, 'ERR_RAFT_FORBIDDEN');
    for (const op of [
      () => user.snapshot(),
      () => user.removePeer('n3'),
      () => user.addPeer('n4=127.0.0.1:1'),
    ]) {
      assert.equal(
        await op().then(
          () => 'allowed',
          (err: { code?: string }) => err.code,
        ),
        'ERR_RAFT_FORBIDDEN',
      );
    }
    assert.equal(await admin.transfer('n3'), 'transferred');
  });

  test('a client without the secret, or with another one, gets ERR_RAFT_AUTH and the server counts it', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const { server, port, access } = await startServer(t, { secrets: secrets(SECRET) });
    const endpoint = `${HOST}:${port}`;
    for (const secret of [undefined, 'not the cluster secret of this test']) {
      const client = new RaftClient({
        clusterId: CLUSTER,
        endpoints: [endpoint],
        ...(secret ? { secret } : {}),
        connectTimeoutMs: 2000,
      });
      t.after(() => client.close());
      const got = await client.read('q', { consistency: 'stale' }).then(
        () => 'allowed',
        (err: { code?: string; message?: string }) => `${err.code}: ${err.message}`,
      );
      assert.match(got, /^ERR_RAFT_AUTH: /);
    }
    assert.equal(access.length, 0, 'no client connection was handed over');
    await waitFor(() => server.authFailures >= 1, 'the counted refusal');
  });

  test('no admin secret configured: every client may run admin ops, as before', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const { port, access } = await startServer(t, {});
    const client = new RaftClient({ clusterId: CLUSTER, endpoints: [`${HOST}:${port}`] });
    t.after(() => client.close());
    assert.equal(await client.transfer('n3'), 'transferred');
    assert.equal(access[0]?.admin, true);
  });

  test('the status a client gets says who may join', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const { port } = await startServer(t, { secrets: secrets(SECRET, ADMIN) });
    const client = new RaftClient({
      clusterId: CLUSTER,
      endpoints: [`${HOST}:${port}`],
      secret: 'the cluster secret of this test',
    });
    t.after(() => client.close());
    const status = (await client.status()) as unknown as { transport: Record<string, unknown> };
    assert.equal(status.transport.secret, true);
    assert.equal(status.transport.adminSecret, true);
    assert.equal(status.transport.leaseReadsSafe, true);
  });
});

describe('election timeouts in the handshake', () => {
  test('a peer with another timeout turns lease reads off, logged once; one with ours turns them back on', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const { server, port, log } = await startServer(t, {});
    assert.equal(server.leaseReadsSafe, true);
    const first = startLink(t, port, { credentials: { secret: null }, electionTimeoutMs: 10_000 });
    await waitFor(() => first.link.connected, 'the slow peer');
    assert.equal(server.leaseReadsSafe, false);
    assert.deepEqual(server.electionTimeoutMismatches, [{ id: 'n1', electionTimeoutMs: 10_000 }]);
    // It reconnects with the same timeout: no second line.
    await first.link.stop();
    const again = startLink(t, port, { credentials: { secret: null }, electionTimeoutMs: 10_000 });
    await waitFor(() => again.link.connected && again.link.connects === 1, 'the slow peer again');
    await again.link.stop();
    const mismatchLines = log.lines.filter((l) => l.msg.includes('another election timeout'));
    assert.equal(mismatchLines.length, 1);
    // Restarted with our timeout: leases are safe again.
    const fixed = startLink(t, port, { credentials: { secret: null }, electionTimeoutMs: 1000 });
    await waitFor(() => fixed.link.connected, 'the fixed peer');
    await waitFor(() => server.leaseReadsSafe, 'lease reads back on');
    assert.deepEqual(server.electionTimeoutMismatches, []);
  });
});

describe('snapshot streams with a cluster secret', () => {
  const CONF = { voters: ['n1', 'n2'], votersOutgoing: [], learners: [], autoLeave: false };

  function tempDir(t: TestContext, name: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `raftline-auth-${name}-`));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  /** A follower's snapshot path behind a server with `secret`: what it installs. */
  async function follower(
    t: TestContext,
    secret: Secret,
  ): Promise<{ port: number; installed: number[]; server: PeerServer }> {
    const store = new SnapshotStore(tempDir(t, 'follower'), { sync: false });
    const channel = new MessageChannel();
    const stopIntake = installSnapshotIntake(channel.port2, store);
    const sink = new FsmSnapshotSink(channel.port1);
    const installed: number[] = [];
    const receiver = new SnapshotStreamReceiver({ sink, onInstalled: (meta) => installed.push(meta.index) });
    const { server, port } = await startServer(t, {
      secrets: secrets(secret),
      onSnapshotConnection: (socket, hs, decoder) => receiver.serve(socket, hs, decoder),
    });
    t.after(() => {
      receiver.close();
      sink.close();
      stopIntake();
      channel.port1.close();
      channel.port2.close();
    });
    return { port, installed, server };
  }

  function sender(t: TestContext, port: number, secret: Secret): { results: SnapshotSendResult[] } {
    const dataDir = tempDir(t, 'leader');
    const writer = new SnapshotStore(dataDir, { sync: false }).begin({ index: 7, term: 2, conf: CONF });
    fs.writeFileSync(path.join(writer.dir, 'state.bin'), new Uint8Array(100_000).fill(3));
    writer.commit();
    const results: SnapshotSendResult[] = [];
    const s = new SnapshotSender({
      host: HOST,
      port,
      clusterId: CLUSTER,
      nodeId: 'n1',
      peerId: 'n2',
      dataDir,
      credentials: { secret },
      maxAttempts: 2,
      minBackoffMs: 5,
      maxBackoffMs: 10,
      offerTimeoutMs: 3000,
      onDone: (r) => results.push(r),
    });
    t.after(() => s.stop());
    s.send(7, 2);
    return { results };
  }

  test('the same secret: the snapshot arrives', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const f = await follower(t, SECRET);
    const { results } = sender(t, f.port, SECRET);
    await waitFor(() => results.length === 1, 'the transfer');
    assert.equal(results[0]?.ok, true, results[0]?.reason ?? '');
    assert.deepEqual(f.installed, [7]);
  });

  test('another secret: the leader refuses the follower, nothing is offered or installed', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const f = await follower(t, SECRET);
    const { results } = sender(t, f.port, OTHER);
    await waitFor(() => results.length === 1, 'the failed transfer');
    assert.equal(results[0]?.ok, false);
    assert.match(results[0]?.reason ?? '', /failed to prove the cluster secret/);
    assert.deepEqual(f.installed, []);
    await waitFor(() => f.server.authFailures >= 1, 'the counted failure');
  });
});

describe('metrics', () => {
  test('auth failures and whether lease reads are safe are exported', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const transport = {
      secret: true,
      adminSecret: false,
      tls: false,
      tlsFailures: 0,
      authFailures: 3,
      connectionsRefused: 5,
      leaseReadsSafe: false,
      electionTimeoutMismatches: [{ id: 'n3', electionTimeoutMs: 10_000 }],
    };
    const status = { id: 'n1', role: 'Follower', term: 1, stats: {}, peers: [], transport };
    const metrics = new MetricsServer({
      host: HOST,
      port: 0,
      source: { status: () => status as unknown as NodeStatus },
    });
    const { port } = await metrics.listen();
    t.after(() => metrics.close());
    const text = await (await fetch(`http://${HOST}:${port}/metrics`)).text();
    assert.match(text, /^raftline_auth_failures_total 3$/m);
    assert.match(text, /^raftline_lease_reads_safe 0$/m);
  });
});
