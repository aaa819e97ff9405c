/**
 * Regression tests for what fuzzing and reviewing the servers found (issue 7): each test
 * names the bug it pins.
 */

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { kvCommand } from '../../examples/kv.js';
import { RaftClient } from '../../src/client/raft-client.js';
import { MAX_REQUESTS_IN_FLIGHT } from '../../src/main/client-server.js';
import { MAX_ACCEPTED_TERM, PeerServer } from '../../src/main/peer-server.js';
import { type Message, MessageType, message } from '../../src/raft/messages.js';
import { parseHostPort } from '../../src/shared/address.js';
import {
  ClientFrameError,
  decodeClientResponse,
  encodeClientReadRequest,
  encodeClientRequest,
} from '../../src/shared/client-codec.js';
import {
  encodeHandshakeFrame,
  encodeRaftMessageFrame,
  FrameDecoder,
  FrameError,
  OutBuffer,
} from '../../src/shared/message-codec.js';
import { ClientOp, FrameType, HandshakeRole, ReadConsistencyCode } from '../../src/shared/protocol.js';
import { startFakeHandlerNode } from '../client/fake-handler-node.js';
import { FuzzCluster } from './cluster.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Pipelined requests of `op` (Status, or a stale Read of `null`) after a client handshake, as one buffer. */
function requests(op: ClientOp.Status | ClientOp.Read, count: number): Uint8Array {
  const out = new OutBuffer(64 * 1024);
  encodeHandshakeFrame(out, { role: HandshakeRole.Client, clusterId: 'raftline', nodeId: '' });
  for (let i = 0; i < count; i++) {
    if (op === ClientOp.Status)
      encodeClientRequest(out, { op, flags: 0, requestId: i, payload: new Uint8Array(0) });
    else encodeClientReadRequest(out, i, ReadConsistencyCode.Stale, null);
  }
  return out.view().slice();
}

/**
 * Sends `count` pipelined requests of `op` to a fake node whose answers are 64 KiB each,
 * reads nothing for a while, and returns how many the node served meanwhile; then reads
 * and checks that every request is answered: served, or refused with ERR_RAFT_BUSY
 * because `MAX_REQUESTS_IN_FLIGHT` were in flight on the connection.
 */
async function servedWhileNotReading(op: ClientOp.Status | ClientOp.Read, count: number): Promise<number> {
  const answer = new Uint8Array(64 * 1024);
  const node = await startFakeHandlerNode({
    statusValue: () => answer,
    read: () => new Promise((resolve) => setImmediate(() => resolve(answer))),
  });
  const method = op === ClientOp.Status ? 'statusValue' : 'read';
  const served = (): number => node.calls.filter((c) => c.method === method).length;
  const { host, port } = parseHostPort(node.address);
  const socket = net.connect({ host, port });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.pause(); // read nothing
    socket.write(requests(op, count));
    await sleep(500);
    const servedMeanwhile = served();

    const decoder = new FrameDecoder({ clientResponses: true });
    const ids: number[] = [];
    let busy = 0;
    const done = new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        decoder.push(chunk);
        for (let f = decoder.next(); f !== null; f = decoder.next()) {
          if (f instanceof FrameError) return reject(f);
          if (f.type !== FrameType.ClientResponse) continue;
          const r = decodeClientResponse(f.body);
          if (r instanceof ClientFrameError) return reject(r);
          if (!r.ok) {
            assert.equal(r.error.code, 'ERR_RAFT_BUSY');
            busy++;
          }
          ids.push(r.requestId);
          if (ids.length === count) resolve();
        }
      });
    });
    socket.resume();
    await done;
    assert.deepEqual(
      [...ids].sort((a, b) => a - b),
      Array.from({ length: count }, (_, i) => i),
    );
    assert.equal(served() + busy, count);
    return servedMeanwhile;
  } finally {
    socket.destroy();
    await node.close();
  }
}

// Bug: a client that pipelined requests and never read the answers made the node buffer
// every answer: 1.2 MB of Status requests (13 bytes each) grew a live node by ~180 MB in
// a few seconds (and kept its main thread busy for six), and a longer stream would
// exhaust its memory. The client server now stops reading a connection while more than
// MAX_PENDING_ANSWER_BYTES of answers wait, and refuses requests over
// MAX_REQUESTS_IN_FLIGHT with ERR_RAFT_BUSY (client-server.ts).
test('a client that does not read its Status answers is not read either, and loses none', async () => {
  // 2000 answers of 64 KiB: 128 MiB if all were buffered. 1 MiB waiting, plus what the
  // kernel's socket buffers took (a few MiB on loopback), is some tens of answers.
  const served = await servedWhileNotReading(ClientOp.Status, 2000);
  assert.ok(served < 500, `${served} of 2000 requests were served to a client that reads nothing`);
});

test('the same for requests answered later (reads): at most MAX_REQUESTS_IN_FLIGHT are taken on', async () => {
  const count = 4 * MAX_REQUESTS_IN_FLIGHT;
  const served = await servedWhileNotReading(ClientOp.Read, count);
  assert.ok(
    served <= MAX_REQUESTS_IN_FLIGHT + 64,
    `${served} of ${count} requests were served to a client that reads nothing`,
  );
});

/** A peer handshake from `from` and a heartbeat in `term` to `to`, as one buffer. */
function heartbeatFrom(from: string, to: string, term: number): Uint8Array {
  const out = new OutBuffer(256);
  encodeHandshakeFrame(out, { role: HandshakeRole.Peer, clusterId: 'raftline', nodeId: from });
  encodeRaftMessageFrame(out, message({ type: MessageType.MsgHeartbeat, from, to, term }));
  return out.view().slice();
}

/** Connects to `port`, writes `bytes`, and resolves once the other side closes; rejects after 5 s. */
function sendAndAwaitClose(port: number, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('the node did not close the connection'));
    }, 5000);
    socket.on('error', () => {});
    socket.on('connect', () => socket.write(bytes));
    // Read (and drop) what comes: a paused socket would never see the end.
    socket.resume();
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// Bug: one well-formed RAFT_MESSAGE from anyone who shook hands with the cluster id, with
// a term of 2^53-1, killed a 3-node cluster for good: the node adopted the term, crashed
// at its next election (term + 1 cannot be encoded), told the others first, and crashed
// again at every restart (the term is persisted). The peer server now refuses terms above
// MAX_ACCEPTED_TERM (2^53-1 - 2^32: no cluster gets there by holding elections).
test('the peer server refuses a term no cluster reaches, and delivers one just below', {
  timeout: 30_000,
}, async () => {
  const received: Message[] = [];
  const server = new PeerServer({
    host: '127.0.0.1',
    port: 0,
    clusterId: 'raftline',
    nodeId: 'n1',
    onMessage: (frame) => received.push(frame.message),
  });
  const { port } = await server.listen();
  try {
    for (const term of [Number.MAX_SAFE_INTEGER, MAX_ACCEPTED_TERM + 1]) {
      await sendAndAwaitClose(port, heartbeatFrom('intruder', 'n1', term));
    }
    assert.equal(received.length, 0);
    assert.equal(server.protocolErrors, 2);

    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    socket.write(heartbeatFrom('intruder', 'n1', MAX_ACCEPTED_TERM));
    for (let i = 0; i < 100 && received.length === 0; i++) await sleep(10);
    socket.destroy();
    assert.equal(received[0]?.term, MAX_ACCEPTED_TERM);
    assert.equal(server.protocolErrors, 2);
  } finally {
    await server.close();
  }
});

test('a heartbeat in term 2^53-1 sent to a leader no longer takes the cluster down', {
  timeout: 60_000,
}, async () => {
  const cluster = await FuzzCluster.start();
  const client = new RaftClient({
    endpoints: cluster.ids().map((id) => cluster.address(id)),
    clusterId: cluster.clusterId,
  });
  try {
    const { leader } = await cluster.waitForLeader();
    await sendAndAwaitClose(
      cluster.member(leader).port,
      heartbeatFrom('intruder', leader, Number.MAX_SAFE_INTEGER),
    );
    // Before the fix every node had exited within about two election timeouts.
    await sleep(3000);
    assert.deepEqual(cluster.unexpectedExits, []);
    await client.apply(kvCommand({ op: 'put', key: 'k', value: 'v' }));
    assert.equal(await client.read({ op: 'get', key: 'k' }), 'v');
    const { term } = await cluster.waitForLeader();
    assert.ok(term < 100, `term ${term}`);
  } finally {
    await client.close();
    await cluster.destroy();
  }
});
