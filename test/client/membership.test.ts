/**
 * Membership administration over the client protocol: the AddLearner op in the codec (its
 * pinned layout and round trip), the client server routing AddPeer / AddLearner /
 * RemovePeer to its `ClientHandler` with the parsed id and address, a malformed spec
 * answered with an error on a connection that stays usable, handler refusals coming back
 * with their codes, and `RaftClient.addPeer/addLearner/removePeer` following a NotLeader
 * redirect and checking the configuration they resolve with. The handler is a fake: no
 * Raft runs here. Loopback only, port 0, every wait bounded.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import { RaftClient } from '../../src/client/raft-client.js';
import { NotLeaderError, RaftError, TimeoutError } from '../../src/main/errors.js';
import { InvalidConfChangeError } from '../../src/raft/conf-change.js';
import { AddressError } from '../../src/shared/address.js';
import {
  ClientFrameError,
  ClientOp,
  type ClientResponse,
  clientOpName,
  decodeClientRequest,
  decodeClientResponse,
  encodeClientRequest,
} from '../../src/shared/client-codec.js';
import { encodeHandshakeFrame, FrameDecoder, FrameError, OutBuffer } from '../../src/shared/message-codec.js';
import { FRAME_HEADER_BYTES, FrameType, HandshakeRole } from '../../src/shared/protocol.js';
import type { Value } from '../../src/shared/value-codec.js';
import { type FakeHandlerNode, startFakeHandlerNode } from './fake-handler-node.js';

const utf8 = new TextEncoder();

/** The configuration a fake leader answers with. */
function conf(index: number, voters: string[], learners: string[] = []): Value {
  return { index, voters, learners };
}

async function fakeNode(
  t: TestContext,
  ...args: Parameters<typeof startFakeHandlerNode>
): Promise<FakeHandlerNode> {
  const node = await startFakeHandlerNode(...args);
  t.after(() => node.close());
  return node;
}

function client(t: TestContext, endpoints: string[], requestTimeoutMs = 5000): RaftClient {
  const c = new RaftClient({ endpoints, requestTimeoutMs, connectTimeoutMs: 2000 });
  t.after(() => c.close());
  return c;
}

/**
 * Sends `requests` on one raw client connection (the handshake and every request in one
 * write) and resolves with the responses, by request id, once all have come back.
 */
async function rawExchange(
  address: string,
  requests: { op: ClientOp; requestId: number; text: string }[],
): Promise<Map<number, ClientResponse>> {
  const [host, port] = address.split(':') as [string, string];
  const out = new OutBuffer(256);
  encodeHandshakeFrame(out, { role: HandshakeRole.Client, clusterId: 'raftline', nodeId: '' });
  for (const r of requests) {
    encodeClientRequest(out, { op: r.op, flags: 0, requestId: r.requestId, payload: utf8.encode(r.text) });
  }
  const bytes = out.view().slice();
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port: Number(port) });
    const decoder = new FrameDecoder({ clientResponses: true });
    const got = new Map<number, ClientResponse>();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`only ${got.size} of ${requests.length} responses within 5 s`));
    }, 5000);
    socket.on('connect', () => socket.write(bytes));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      if (got.size < requests.length) reject(new Error(`closed after ${got.size} responses`));
    });
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      for (;;) {
        const frame = decoder.next();
        if (frame === null) return;
        if (frame instanceof FrameError) {
          socket.destroy();
          return;
        }
        if (frame.type !== FrameType.ClientResponse) continue; // the node's handshake
        const resp = decodeClientResponse(frame.body);
        if (resp instanceof ClientFrameError) {
          socket.destroy();
          return;
        }
        got.set(resp.requestId, resp);
        if (got.size === requests.length) {
          clearTimeout(timer);
          socket.end();
          resolve(got);
        }
      }
    });
  });
}

describe('the AddLearner op in the client codec', () => {
  test('pinned layout, round trip, and the refusals of a text op', () => {
    assert.equal(ClientOp.AddLearner, 9);
    assert.equal(clientOpName(ClientOp.AddLearner), 'AddLearner');
    assert.equal(clientOpName(ClientOp.AddPeer), 'AddPeer');
    assert.equal(clientOpName(77), '77');

    const out = new OutBuffer(16);
    const spec = 'n4=127.0.0.1:7004';
    const written = encodeClientRequest(out, {
      op: ClientOp.AddLearner,
      flags: 0,
      requestId: 0x01020304,
      payload: utf8.encode(spec),
    });
    assert.equal(written, out.length);
    const body = out.view().subarray(FRAME_HEADER_BYTES);
    assert.deepEqual([...body.subarray(0, 8)], [9, 0, 0, 0, 4, 3, 2, 1]);
    const req = decodeClientRequest(body);
    assert.ok(!(req instanceof ClientFrameError), String(req));
    assert.equal(req.op, ClientOp.AddLearner);
    assert.equal(req.requestId, 0x01020304);
    assert.equal(new TextDecoder().decode(req.payload), spec);

    const empty = decodeClientRequest(Uint8Array.from([9, 0, 0, 0, 1, 0, 0, 0]));
    assert.ok(empty instanceof ClientFrameError);
    assert.equal(empty.code, 'ERR_CLIENT_BAD_PAYLOAD');
    const notUtf8 = decodeClientRequest(Uint8Array.from([9, 0, 0, 0, 1, 0, 0, 0, 0xff]));
    assert.ok(notUtf8 instanceof ClientFrameError);
    assert.equal(notUtf8.code, 'ERR_CLIENT_BAD_UTF8');
    const flagged = decodeClientRequest(Uint8Array.from([9, 1, 0, 0, 1, 0, 0, 0, 0x41]));
    assert.ok(flagged instanceof ClientFrameError);
    assert.equal(flagged.code, 'ERR_CLIENT_BAD_FLAGS');
    const unknown = decodeClientRequest(Uint8Array.from([13, 0, 0, 0, 1, 0, 0, 0]));
    assert.ok(unknown instanceof ClientFrameError);
    assert.equal(unknown.code, 'ERR_CLIENT_UNKNOWN_OP');
    assert.throws(
      () =>
        encodeClientRequest(out, {
          op: ClientOp.AddLearner,
          flags: 0,
          requestId: 1,
          payload: new Uint8Array(0),
        }),
      RangeError,
    );
  });
});

describe('the client server routes membership requests to its handler', () => {
  test('add-peer, add-learner and remove-peer reach the handler with the parsed id and address', async (t) => {
    const node = await fakeNode(t, {
      addPeer: async (id) => conf(7, ['n1', 'n2', 'n3', id]),
      addLearner: async (id) => conf(8, ['n1', 'n2', 'n3'], [id]),
      removePeer: async () => conf(9, ['n1', 'n2']),
    });
    const c = client(t, [node.address]);
    assert.deepEqual(await c.addPeer('n4=127.0.0.1:7004'), {
      index: 7,
      voters: ['n1', 'n2', 'n3', 'n4'],
      learners: [],
    });
    assert.deepEqual(await c.addLearner('n5=[::1]:7005'), {
      index: 8,
      voters: ['n1', 'n2', 'n3'],
      learners: ['n5'],
    });
    assert.deepEqual(await c.addLearner('n6=node-6.example:7006'), {
      index: 8,
      voters: ['n1', 'n2', 'n3'],
      learners: ['n6'],
    });
    assert.deepEqual(await c.removePeer('n3'), { index: 9, voters: ['n1', 'n2'], learners: [] });
    assert.deepEqual(node.calls, [
      { method: 'addPeer', args: ['n4', '127.0.0.1:7004'] },
      // An IPv6 host keeps its brackets, so the address parses again.
      { method: 'addLearner', args: ['n5', '[::1]:7005'] },
      { method: 'addLearner', args: ['n6', 'node-6.example:7006'] },
      { method: 'removePeer', args: ['n3'] },
    ]);
  });

  test('a malformed spec is answered with ERR_RAFT_BAD_REQUEST naming it; the connection carries on', async (t) => {
    const node = await fakeNode(t, {
      addPeer: async (id) => conf(3, ['n1', id]),
      removePeer: async () => conf(4, ['n1']),
    });
    const answers = await rawExchange(node.address, [
      { op: ClientOp.AddPeer, requestId: 1, text: 'n4' },
      { op: ClientOp.AddLearner, requestId: 2, text: 'n5=127.0.0.1:99999' },
      { op: ClientOp.AddPeer, requestId: 3, text: '=127.0.0.1:7004' },
      { op: ClientOp.AddLearner, requestId: 4, text: 'n6=127.0.0.1:0' },
      { op: ClientOp.AddPeer, requestId: 5, text: 'n7=127.0.0.1:7007' },
      { op: ClientOp.RemovePeer, requestId: 6, text: 'n7' },
    ]);
    const refused = (requestId: number, pattern: RegExp): void => {
      const r = answers.get(requestId);
      assert.ok(r !== undefined && !r.ok, `request ${requestId} should fail`);
      assert.equal(r.error.code, 'ERR_RAFT_BAD_REQUEST');
      assert.match(r.error.message, pattern);
    };
    refused(1, /AddPeer: invalid address "n4": expected id=host:port/);
    refused(2, /AddLearner: .*"n5=127\.0\.0\.1:99999".*above 65535/);
    refused(3, /node id is empty/);
    refused(4, /port 0/);
    assert.deepEqual(answers.get(5), {
      requestId: 5,
      ok: true,
      value: { index: 3, voters: ['n1', 'n7'], learners: [] },
    });
    assert.deepEqual(answers.get(6), {
      requestId: 6,
      ok: true,
      value: { index: 4, voters: ['n1'], learners: [] },
    });
    // Only the well-formed ones reached the handler.
    assert.deepEqual(node.calls, [
      { method: 'addPeer', args: ['n7', '127.0.0.1:7007'] },
      { method: 'removePeer', args: ['n7'] },
    ]);
  });

  test('the client refuses a malformed spec itself, before sending it', async (t) => {
    const node = await fakeNode(t, { addPeer: async (id) => conf(3, [id]) });
    const c = client(t, [node.address]);
    await assert.rejects(
      c.addPeer('n4'),
      (e: unknown) => e instanceof AddressError && /"n4"/.test(e.message),
    );
    await assert.rejects(c.addLearner('n4=:7004'), AddressError);
    await assert.rejects(c.removePeer(''), RangeError);
    assert.deepEqual(node.calls, []);
  });

  test("the handler's refusals come back with their codes, and a throwing handler is an error, not a crash", async (t) => {
    const node = await fakeNode(t, {
      addPeer: async (id) => {
        if (id === 'busy')
          throw new RaftError('ERR_RAFT_CONF_CHANGE_PENDING', 'a configuration change is in progress');
        throw new InvalidConfChangeError(`${id} is already a voter`);
      },
      addLearner: () => {
        throw new Error('handler bug');
      },
      removePeer: async () => {
        throw new TimeoutError('the change did not commit in time');
      },
      statusValue: () => ({ id: 'n1', role: 'Leader' }),
    });
    const c = client(t, [node.address]);
    await assert.rejects(
      c.addPeer('busy=127.0.0.1:7004'),
      (e: unknown) => e instanceof RaftError && e.code === 'ERR_RAFT_CONF_CHANGE_PENDING',
    );
    await assert.rejects(
      c.addPeer('n2=127.0.0.1:7002'),
      (e: unknown) =>
        e instanceof RaftError &&
        e.code === 'ERR_RAFT_INVALID_CONF_CHANGE' &&
        /n2 is already a voter/.test(e.message),
    );
    await assert.rejects(
      c.addLearner('n5=127.0.0.1:7005'),
      (e: unknown) => e instanceof RaftError && e.code === 'ERR_RAFT_INTERNAL' && e.message === 'handler bug',
    );
    await assert.rejects(c.removePeer('n3'), (e: unknown) => e instanceof TimeoutError);
    // The connection survived all of it.
    assert.deepEqual(await c.status(), { id: 'n1', role: 'Leader' });
  });

  test('an answer that is not a configuration is reported as such', async (t) => {
    const node = await fakeNode(t, {
      addPeer: async () => true,
      removePeer: async () => ({ index: 3, voters: ['n1', 2], learners: [] }),
    });
    const c = client(t, [node.address]);
    await assert.rejects(
      c.addPeer('n4=127.0.0.1:7004'),
      (e: unknown) =>
        e instanceof RaftError && e.code === 'ERR_RAFT_BAD_RESPONSE' && /AddPeer with true/.test(e.message),
    );
    await assert.rejects(
      c.removePeer('n3'),
      (e: unknown) => e instanceof RaftError && e.code === 'ERR_RAFT_BAD_RESPONSE',
    );
  });

  test('a membership request sent to a follower follows its NotLeader redirect to the leader', async (t) => {
    const leader = await fakeNode(
      t,
      {
        addPeer: async (id) => conf(11, ['n1', 'n2', 'n3', id]),
        addLearner: async (id) => conf(12, ['n1', 'n2', 'n3'], [id]),
        removePeer: async () => conf(13, ['n1', 'n2']),
      },
      { nodeId: 'n1' },
    );
    const notLeader = async (): Promise<Value> => {
      throw new NotLeaderError('n1', leader.address);
    };
    const follower = await fakeNode(
      t,
      { addPeer: notLeader, addLearner: notLeader, removePeer: notLeader },
      { nodeId: 'n2' },
    );
    const c = client(t, [follower.address]);
    assert.deepEqual(await c.addPeer('n4=127.0.0.1:7004'), {
      index: 11,
      voters: ['n1', 'n2', 'n3', 'n4'],
      learners: [],
    });
    assert.equal(c.connectedEndpoint, leader.address, 'later requests go to the leader');
    assert.deepEqual(await c.addLearner('n5=127.0.0.1:7005'), {
      index: 12,
      voters: ['n1', 'n2', 'n3'],
      learners: ['n5'],
    });
    assert.deepEqual(await c.removePeer('n3'), { index: 13, voters: ['n1', 'n2'], learners: [] });
    assert.deepEqual(follower.calls, [{ method: 'addPeer', args: ['n4', '127.0.0.1:7004'] }]);
    assert.deepEqual(leader.calls, [
      { method: 'addPeer', args: ['n4', '127.0.0.1:7004'] },
      { method: 'addLearner', args: ['n5', '127.0.0.1:7005'] },
      { method: 'removePeer', args: ['n3'] },
    ]);

    // Without redirects the caller gets the NotLeaderError and its hint.
    const strict = new RaftClient({ endpoints: [follower.address], maxRedirects: 0 });
    t.after(() => strict.close());
    await assert.rejects(
      strict.removePeer('n3'),
      (e: unknown) =>
        e instanceof NotLeaderError && e.leaderId === 'n1' && e.leaderAddress === leader.address,
    );
  });

  test('a membership request that gets no answer times out, saying its outcome is unknown', async (t) => {
    const node = await fakeNode(t, { removePeer: () => new Promise<Value>(() => {}) });
    const c = client(t, [node.address], 200);
    await assert.rejects(
      c.removePeer('n3'),
      (e: unknown) => e instanceof TimeoutError && /membership change .*outcome is unknown/.test(e.message),
    );
  });
});
