/**
 * How the client server refuses what it cannot take (`client-server.ts`): requests over
 * `MAX_REQUESTS_IN_FLIGHT` on one connection, and writes while the node says it is busy
 * (`ClientHandler.applyBusy`), are answered ERR_RAFT_BUSY at once, without reaching the
 * handler; nothing is left waiting in TCP. Runs the real `PeerServer` and `serveClient`
 * over loopback with a handler whose applies never finish.
 */

import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { type ClientHandler, MAX_REQUESTS_IN_FLIGHT, serveClient } from '../../src/main/client-server.js';
import { RaftError } from '../../src/main/errors.js';
import { PeerServer } from '../../src/main/peer-server.js';
import {
  ClientFrameError,
  decodeClientResponse,
  encodeClientRequest,
} from '../../src/shared/client-codec.js';
import { encodeHandshakeFrame, FrameDecoder, FrameError, OutBuffer } from '../../src/shared/message-codec.js';
import { ClientOp, FrameType, HandshakeRole } from '../../src/shared/protocol.js';
import type { Value } from '../../src/shared/value-codec.js';

const refuse = (): Promise<Value> => Promise.reject(new RaftError('ERR_RAFT_NOT_SUPPORTED', 'not here'));

/** A server whose handler's applies never settle (counted), and which is busy when `busy()` says so. */
async function startServer(
  busy: () => boolean,
): Promise<{ port: number; applies: () => number; close(): Promise<void> }> {
  let applies = 0;
  const handler: ClientHandler = {
    applyEncoded: () => {
      applies++;
      return new Promise<Value>(() => {});
    },
    read: refuse,
    statusValue: () => ({}),
    snapshot: refuse,
    transfer: refuse,
    addPeer: refuse,
    addLearner: refuse,
    removePeer: refuse,
    applyBusy: busy,
  };
  const server = new PeerServer({
    host: '127.0.0.1',
    port: 0,
    clusterId: 'raftline',
    nodeId: 'n1',
    onMessage: () => {},
    onClientConnection: (socket, _hs, decoder) => serveClient(socket, decoder, handler, { warn() {} }),
  });
  const { port } = await server.listen();
  return { port, applies: () => applies, close: () => server.close() };
}

/** Sends `count` pipelined applies (ids 0..count-1) and collects the answers for `waitMs`. */
async function pipelinedApplies(port: number, count: number, waitMs: number): Promise<Map<number, string>> {
  const out = new OutBuffer(64 * 1024);
  encodeHandshakeFrame(out, { role: HandshakeRole.Client, clusterId: 'raftline', nodeId: '' });
  const payload = new TextEncoder().encode('inc 1');
  for (let id = 0; id < count; id++)
    encodeClientRequest(out, { op: ClientOp.Apply, flags: 0, requestId: id, payload });
  const socket = net.connect({ host: '127.0.0.1', port });
  const answers = new Map<number, string>();
  const decoder = new FrameDecoder({ clientResponses: true });
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let f = decoder.next(); f !== null; f = decoder.next()) {
      if (f instanceof FrameError) throw f;
      if (f.type !== FrameType.ClientResponse) continue;
      const r = decodeClientResponse(f.body);
      if (r instanceof ClientFrameError) throw r;
      answers.set(r.requestId, r.ok ? 'ok' : r.error.code);
    }
  });
  socket.write(out.view().slice());
  await new Promise((r) => setTimeout(r, waitMs));
  socket.destroy();
  return answers;
}

test('requests over MAX_REQUESTS_IN_FLIGHT on a connection are answered ERR_RAFT_BUSY at once', async () => {
  const server = await startServer(() => false);
  try {
    const extra = 100;
    const answers = await pipelinedApplies(server.port, MAX_REQUESTS_IN_FLIGHT + extra, 1000);
    // The first MAX_REQUESTS_IN_FLIGHT reached the handler and wait; the rest were refused.
    assert.equal(server.applies(), MAX_REQUESTS_IN_FLIGHT);
    assert.equal(answers.size, extra);
    for (let id = MAX_REQUESTS_IN_FLIGHT; id < MAX_REQUESTS_IN_FLIGHT + extra; id++) {
      assert.equal(answers.get(id), 'ERR_RAFT_BUSY', `request ${id}`);
    }
  } finally {
    await server.close();
  }
});

test('while the handler is busy, writes are refused before they reach it', async () => {
  let busy = false;
  const server = await startServer(() => busy);
  try {
    busy = true;
    const answers = await pipelinedApplies(server.port, 500, 500);
    assert.equal(server.applies(), 0, 'a write reached the busy handler');
    assert.equal(answers.size, 500);
    assert.ok([...answers.values()].every((code) => code === 'ERR_RAFT_BUSY'));
    busy = false;
    const later = await pipelinedApplies(server.port, 10, 300);
    assert.equal(server.applies(), 10, 'writes were refused once the handler was no longer busy');
    assert.equal(later.size, 0);
  } finally {
    await server.close();
  }
});
