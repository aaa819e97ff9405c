/**
 * Connection limits and timeouts at a live node's listen port: `maxConnections` (and the
 * share kept from clients for peers), `handshakeTimeoutMs`, `clientIdleTimeoutMs`, and
 * the rate limit on the log lines of refused and malformed connections. Each test starts
 * a one-node cluster with its own data directory.
 *
 * Timeouts are set far below their defaults, and a test only asserts that a connection is
 * closed well before the default would close it (or stays open while a request is in
 * flight), never how soon.
 */

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import pino from 'pino';
import { counterCommand } from '../../examples/counter.js';
import { RaftClient } from '../../src/client/raft-client.js';
import { DEFAULT_HANDSHAKE_TIMEOUT_MS, PEER_RESERVED_CONNECTIONS } from '../../src/main/peer-server.js';
import { RaftNode, type RaftNodeOptions } from '../../src/main/raft-node.js';
import { encodeHandshakeFrame, OutBuffer } from '../../src/shared/message-codec.js';
import { HandshakeRole } from '../../src/shared/protocol.js';
import { freePort } from '../cluster/process-cluster.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-conn-limits-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
const SLOW_QUERY_SM = new URL('./slow-query-sm.js', import.meta.url);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A log line as pino writes it. */
interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly suppressed?: number;
  readonly [k: string]: unknown;
}
const WARN = 40;

let nextDir = 0;

/** A one-node cluster with `extra` options, logging into `lines`. */
async function startNode(extra: Partial<RaftNodeOptions>): Promise<{ node: RaftNode; lines: LogLine[] }> {
  const port = await freePort();
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'warn' },
    { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) },
  );
  const node = await RaftNode.start(
    {
      id: 'n1',
      dataDir: path.join(root, `n${nextDir++}`),
      listen: `127.0.0.1:${port}`,
      peers: [`n1=127.0.0.1:${port}`],
      stateMachine: SLOW_QUERY_SM,
      electionTimeoutMs: 300,
      heartbeatIntervalMs: 50,
      sync: false,
      ...extra,
    },
    logger,
  );
  return { node, lines };
}

/** A raw TCP connection to `address`, from `localAddress`; resolves once connected. */
async function connect(address: string, localAddress = '127.0.0.1'): Promise<net.Socket> {
  const [host, port] = address.split(':') as [string, string];
  const socket = net.connect({ host, port: Number(port), localAddress });
  socket.on('error', () => {});
  // Flowing, what arrives thrown away: a paused socket would never see the node's close
  // behind the unread handshake answer.
  socket.resume();
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('close', () => reject(new Error('closed before connecting')));
  });
  return socket;
}

/** Resolves true once `socket` is closed, false if it is still open after `withinMs`. */
function closedWithin(socket: net.Socket, withinMs: number): Promise<boolean> {
  if (socket.destroyed || socket.closed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), withinMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function clientHandshake(): Uint8Array {
  const out = new OutBuffer(64);
  encodeHandshakeFrame(out, { role: HandshakeRole.Client, clusterId: 'raftline', nodeId: '' });
  return out.view().slice();
}

test('maxConnections: connections over the limit are closed at once, clients leave the peer share free', async () => {
  const maxConnections = 40;
  const { node, lines } = await startNode({ maxConnections, handshakeTimeoutMs: 60_000 });
  const sockets: net.Socket[] = [];
  try {
    // 60 connections that send nothing: the first 40 are kept (no handshake timeout for a
    // minute), the other 20 closed at once.
    for (let i = 0; i < 60; i++) sockets.push(await connect(node.address));
    const closed = await Promise.all(sockets.map((s) => closedWithin(s, 2000)));
    assert.equal(closed.filter((c) => c).length, 20, 'connections over maxConnections were not closed');
    assert.deepEqual(
      closed.slice(0, maxConnections).filter((c) => c),
      [],
      'a connection within the limit was closed',
    );
    const transport = node.status().transport;
    assert.equal(transport?.openConnections, maxConnections);
    assert.equal(transport?.connectionsOverLimit, 20);
    // The node is full: a client cannot get in now, and it can once the silent ones go.
    for (const s of sockets) s.destroy();
    sockets.length = 0;
    await sleep(100);
    const client = new RaftClient({ endpoints: [node.address] });
    try {
      assert.equal(await client.apply(counterCommand('inc', 1)), 1);
    } finally {
      await client.close();
    }
    // Clients may hold all but PEER_RESERVED_CONNECTIONS: one more client is closed
    // after its handshake, while a connection of any other kind still gets in.
    const clientShare = maxConnections - PEER_RESERVED_CONNECTIONS;
    const hello = clientHandshake();
    for (let i = 0; i <= clientShare; i++) {
      const s = await connect(node.address);
      s.write(hello);
      sockets.push(s);
    }
    const clientsClosed = await Promise.all(sockets.map((s) => closedWithin(s, 2000)));
    assert.deepEqual(
      clientsClosed.map((c, i) => (c ? i : -1)).filter((i) => i >= 0),
      [clientShare],
      'not exactly the client over the share was closed',
    );
    const silent = await connect(node.address);
    sockets.push(silent);
    assert.equal(await closedWithin(silent, 500), false, 'the peer share was not kept free');
    // Each refusal was logged once at most: one line a second whatever the flood.
    const overLimitLines = lines.filter((l) => l.level === WARN && /too many/.test(l.msg));
    assert.ok(overLimitLines.length >= 1 && overLimitLines.length <= 3, `${overLimitLines.length} lines`);
  } finally {
    for (const s of sockets) s.destroy();
    await node.shutdown();
  }
});

test('handshakeTimeoutMs: a connection with no complete handshake is closed', async () => {
  const handshakeTimeoutMs = 200;
  const { node } = await startNode({ handshakeTimeoutMs });
  const silent = await connect(node.address);
  const partial = await connect(node.address);
  try {
    partial.write(clientHandshake().subarray(0, 5)); // half a handshake, then nothing
    const bound = DEFAULT_HANDSHAKE_TIMEOUT_MS / 2; // well before the default would act
    assert.equal(await closedWithin(silent, bound), true, 'a silent connection stayed open');
    assert.equal(await closedWithin(partial, bound), true, 'a connection with half a handshake stayed open');
    assert.ok((node.status().transport?.connectionsRefused ?? 0) >= 2);
  } finally {
    silent.destroy();
    partial.destroy();
    await node.shutdown();
  }
});

test('clientIdleTimeoutMs: an idle client connection is closed, one waiting for an answer is not', async () => {
  const clientIdleTimeoutMs = 300;
  const { node } = await startNode({ clientIdleTimeoutMs });
  const client = new RaftClient({ endpoints: [node.address], requestTimeoutMs: 10_000 });
  const idle = await connect(node.address);
  try {
    idle.write(clientHandshake());
    // A read kept in flight for five idle timeouts: its connection sends and receives
    // nothing meanwhile, and must not be closed under it.
    const slow = await client.read({ sleepMs: 5 * clientIdleTimeoutMs }, { consistency: 'stale' });
    assert.equal(slow, 'slept');
    assert.equal(
      await closedWithin(idle, 10 * clientIdleTimeoutMs),
      true,
      'an idle client connection stayed open',
    );
    // The client's own connection goes idle after its answer and is closed too; the
    // client reconnects on its next request.
    await sleep(3 * clientIdleTimeoutMs);
    assert.equal(await client.apply(counterCommand('inc', 2)), 2);
  } finally {
    idle.destroy();
    await client.close();
    await node.shutdown();
  }
});

test('malformed connections from many addresses: at most a log line a second, with the count of the rest', async () => {
  const { node, lines } = await startNode({});
  const sockets: net.Socket[] = [];
  try {
    // 50 connections from 50 loopback addresses, each sending garbage: 50 different
    // remotes, so only the node-wide limit keeps the log short.
    const garbage = new Uint8Array(64).fill(0xff);
    for (let i = 0; i < 50; i++) {
      const s = await connect(node.address, `127.0.0.${i + 2}`);
      s.write(garbage);
      sockets.push(s);
    }
    const closed = await Promise.all(sockets.map((s) => closedWithin(s, 2000)));
    assert.ok(
      closed.every((c) => c),
      'a malformed connection stayed open',
    );
    const early = lines.filter((l) => l.level === WARN && /malformed/.test(l.msg)).length;
    assert.ok(early <= 2, `${early} lines for 50 malformed connections within about a second`);
    // The trailing line reports the others.
    await sleep(1500);
    const all = lines.filter((l) => l.level === WARN && /malformed/.test(l.msg));
    const accounted = all.reduce((sum, l) => sum + (l.suppressed ?? 1), 0);
    assert.equal(accounted, 50, `lines account for ${accounted} of 50 connections: ${JSON.stringify(all)}`);
  } finally {
    for (const s of sockets) s.destroy();
    await node.shutdown();
  }
});
