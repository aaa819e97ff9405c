/**
 * The node-to-node transport over loopback TCP: `PeerLink` (outbound, in the replicator)
 * against `PeerServer` (inbound, on the main thread), and each of them against a raw
 * socket that misbehaves. Every server, link and socket is closed when its test ends,
 * and every wait is bounded.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import { PeerServer, type PeerServerOptions } from '../../src/main/peer-server.js';
import { type Message, MessageType, message } from '../../src/raft/messages.js';
import { EntryType } from '../../src/raft/types.js';
import {
  ClientOp,
  type ClientRequest,
  decodeClientRequest,
  encodeClientRequest,
} from '../../src/shared/client-codec.js';
import {
  type DecodedRaftMessageFrame,
  encodeHandshakeFrame,
  encodeRaftMessageFrame,
  type FrameDecoder,
  type Handshake,
  OutBuffer,
} from '../../src/shared/message-codec.js';
import { FrameType, HandshakeRole } from '../../src/shared/protocol.js';
import { backoffDelayMs, PeerLink, type PeerLinkOptions } from '../../src/workers/replicator/peer-link.js';
import { CLUSTER, HOST, type LogLine, recordingLogger, sleep, waitFor } from './transport-fixtures.js';

const TEST_TIMEOUT_MS = 15_000;

function warnings(lines: readonly LogLine[], containing: string): LogLine[] {
  return lines.filter((l) => l.level === 'warn' && l.msg.includes(containing));
}

/** A heartbeat-sized message from `from` to `to`, numbered by `index` so order can be checked. */
function msg(from: string, to: string, index: number, withEntries = false): Message {
  return message({
    type: MessageType.MsgApp,
    from,
    to,
    term: 3,
    index,
    logTerm: 3,
    commit: index,
    entries: withEntries
      ? [
          {
            index: index + 1,
            term: 3,
            type: EntryType.Normal,
            data: new TextEncoder().encode(`cmd-${index}`),
          },
          { index: index + 2, term: 3, type: EntryType.Normal, data: new Uint8Array(0) },
        ]
      : [],
  });
}

/** The encoded frames of `messages`, back to back, in a buffer of their own (send takes ownership). */
function frames(messages: readonly Message[]): Uint8Array {
  const out = new OutBuffer(256);
  for (const m of messages) encodeRaftMessageFrame(out, m);
  return out.view().slice();
}

function handshakeBytes(hs: Handshake): Uint8Array {
  const out = new OutBuffer(64);
  encodeHandshakeFrame(out, hs);
  return out.view().slice();
}

interface Received {
  readonly from: string;
  readonly frame: DecodedRaftMessageFrame;
}

/** A listening server on an OS-chosen port (or `port`), closed when the test ends. */
async function startServer(
  t: TestContext,
  overrides: Partial<PeerServerOptions> = {},
): Promise<{
  server: PeerServer;
  port: number;
  received: Received[];
  log: ReturnType<typeof recordingLogger>;
}> {
  const received: Received[] = [];
  const log = recordingLogger();
  const server = new PeerServer({
    host: HOST,
    port: 0,
    clusterId: CLUSTER,
    nodeId: 'n2',
    logger: log,
    onMessage: (frame, from) => received.push({ from, frame }),
    ...overrides,
  });
  t.after(() => server.close());
  const { port } = await server.listen();
  return { server, port, received, log };
}

/** A started link, stopped when the test ends, that records its connects and disconnects. */
function startLink(
  t: TestContext,
  port: number,
  overrides: Partial<PeerLinkOptions> = {},
): { link: PeerLink; log: ReturnType<typeof recordingLogger>; events: string[] } {
  const log = recordingLogger();
  const events: string[] = [];
  const link = new PeerLink({
    host: HOST,
    port,
    clusterId: CLUSTER,
    nodeId: 'n1',
    peerId: 'n2',
    minBackoffMs: 10,
    maxBackoffMs: 100,
    logger: log,
    onConnect: () => events.push('connect'),
    onDisconnect: (reason) => events.push(`disconnect: ${reason}`),
    ...overrides,
  });
  t.after(() => link.stop());
  link.start();
  return { link, log, events };
}

/** A raw client socket, destroyed when the test ends; collects what the server sends and whether it closed. */
async function rawSocket(
  t: TestContext,
  port: number,
): Promise<{ socket: net.Socket; closed: () => boolean }> {
  const socket = net.connect({ host: HOST, port });
  let isClosed = false;
  socket.on('error', () => {});
  socket.on('close', () => {
    isClosed = true;
  });
  socket.on('data', () => {});
  t.after(() => {
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return { socket, closed: () => isClosed };
}

/** A port on which nothing listens (it was free a moment ago). */
async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, HOST, resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe('backoffDelayMs', () => {
  test('doubles from min, stays within [base/2, base), and is capped at max', () => {
    const min = 50;
    const max = 2000;
    let previousLow = 0;
    for (let attempt = 0; attempt < 12; attempt++) {
      const base = Math.min(max, min * 2 ** attempt);
      const low = backoffDelayMs(attempt, min, max, 0);
      const high = backoffDelayMs(attempt, min, max, 0.999999);
      assert.equal(low, base / 2, `attempt ${attempt}`);
      assert.ok(high < base && high > base * 0.99, `attempt ${attempt}`);
      assert.ok(low >= previousLow, 'never shrinks');
      previousLow = low;
    }
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6].map((a) => backoffDelayMs(a, min, max, 0.5)),
      [37.5, 75, 150, 300, 600, 1200, 1500],
    );
    // Far past the cap the exponent cannot overflow to Infinity or NaN.
    for (const attempt of [60, 1100, Number.MAX_SAFE_INTEGER]) {
      const d = backoffDelayMs(attempt, min, max, 0.999999);
      assert.ok(Number.isFinite(d) && d <= max && d >= max / 2, `attempt ${attempt}`);
    }
  });
});

describe('PeerLink to PeerServer', { timeout: TEST_TIMEOUT_MS }, () => {
  test('delivers RAFT_MESSAGE frames in order, with their entries', async (t) => {
    const { server, port, received } = await startServer(t);
    const { link, events } = startLink(t, port);
    assert.equal(link.connected, false);
    await waitFor(() => link.connected, 'the link to connect');
    assert.deepEqual(events, ['connect']);

    const total = 500;
    let written = 0;
    let sentBytes = 0;
    for (let i = 0; i < total; i += 10) {
      const batch = [];
      for (let k = i; k < i + 10; k++) batch.push(msg('n1', 'n2', k, k % 3 === 0));
      const bytes = frames(batch);
      sentBytes += bytes.byteLength;
      assert.equal(
        link.send(bytes, (error) => {
          assert.equal(error, null);
          written++;
        }),
        true,
      );
    }
    // sendv: one batch whose frames are split across three buffers at arbitrary points.
    const split = frames([msg('n1', 'n2', total, true), msg('n1', 'n2', total + 1)]);
    let splitWritten = false;
    const parts = [split.subarray(0, 7), split.subarray(7, 100), split.subarray(100)];
    assert.equal(
      link.sendv(parts, (error) => {
        splitWritten = error === null;
      }),
      true,
    );
    sentBytes += split.byteLength;
    await waitFor(
      () => received.length === total + 2 && written === total / 10 && splitWritten,
      'every frame',
    );
    assert.equal(new TextDecoder().decode(received[total]?.frame.message.entries[0]?.data), `cmd-${total}`);
    assert.equal(received[total + 1]?.frame.message.index, total + 1);
    received.slice(0, total).forEach((r, k) => {
      assert.equal(r.from, 'n1');
      assert.equal(r.frame.type, FrameType.RaftMessage);
      assert.equal(r.frame.message.index, k, 'in order');
      assert.equal(r.frame.message.to, 'n2');
      if (k % 3 === 0) {
        assert.equal(r.frame.message.entries.length, 2);
        assert.equal(new TextDecoder().decode(r.frame.message.entries[0]?.data), `cmd-${k}`);
        assert.equal(r.frame.entryRecords.byteLength > 0, true);
      } else {
        assert.equal(r.frame.message.entries.length, 0);
      }
    });
    assert.equal(link.bytesSent, sentBytes);
    assert.equal(link.sendsDropped, 0);
    assert.equal(link.connects, 1);
    assert.equal(server.connectionsAccepted, 1);
    assert.equal(server.framesReceived, total + 2);
    assert.equal(server.frameErrors + server.protocolErrors + server.connectionsRefused, 0);

    await link.stop();
    assert.equal(link.connected, false);
    assert.deepEqual(events, ['connect', 'disconnect: stopped']);
    assert.equal(link.send(frames([msg('n1', 'n2', 0)])), false);
  });

  test('reconnects with backoff after the server restarts on the same port', async (t) => {
    const first = await startServer(t);
    const { link, log, events } = startLink(t, first.port, {
      minBackoffMs: 20,
      maxBackoffMs: 200,
      rng: () => 0.5,
    });
    await waitFor(() => link.connected, 'the first connection');
    assert.equal(link.send(frames([msg('n1', 'n2', 1)])), true);
    await waitFor(() => first.received.length === 1, 'the first message');

    await first.server.close();
    await waitFor(() => !link.connected, 'the link to notice');
    assert.equal(events[1], 'disconnect: closed by the peer');
    const dropped = frames([msg('n1', 'n2', 2)]);
    assert.equal(link.send(dropped), false, 'refused while disconnected');
    assert.equal(link.sendsDropped, 1);
    assert.equal(link.bytesDropped, dropped.byteLength);

    // Down for 400 ms. Delays (rng 0.5): 15, 30, 60, 120, 150, 150... ms plus connect time,
    // so roughly 5 or 6 attempts, never one per millisecond.
    await sleep(400);
    const attemptsWhileDown = link.connectAttempts - 1;
    assert.ok(attemptsWhileDown >= 3 && attemptsWhileDown <= 8, `${attemptsWhileDown} attempts while down`);
    // The outage is logged once as a state change, not once per refused retry.
    assert.equal(warnings(log.lines, 'cannot reach peer').length, 1);
    assert.equal(warnings(log.lines, 'peer link down').length, 1);

    const second = await startServer(t, { port: first.port });
    await waitFor(() => link.connected, 'the reconnection', 2000);
    assert.deepEqual(events, ['connect', 'disconnect: closed by the peer', 'connect']);
    assert.equal(link.connects, 2);
    assert.equal(link.send(frames([msg('n1', 'n2', 3)])), true);
    await waitFor(() => second.received.length === 1, 'the message after reconnecting');
    assert.equal(second.received[0]?.frame.message.index, 3);
    assert.equal(first.received.length, 1);
  });

  test('a link with another cluster id is refused and keeps retrying quietly', async (t) => {
    const { server, port, received, log } = await startServer(t);
    const { link, log: linkLog, events } = startLink(t, port, { clusterId: 'beta' });
    await waitFor(() => server.connectionsRefused >= 3, 'three refusals');
    assert.equal(link.connected, false);
    assert.equal(link.connects, 0);
    assert.deepEqual(events, []);
    assert.equal(link.send(frames([msg('n1', 'n2', 1)])), false);
    assert.equal(received.length, 0);
    assert.equal(server.connectionsAccepted, 0);
    const refusals = warnings(log.lines, 'another cluster');
    assert.equal(refusals.length, 1, 'the same refusal is logged once, not per retry');
    assert.equal(refusals[0]?.fields.ourClusterId, 'alpha');
    assert.equal(refusals[0]?.fields.theirClusterId, 'beta');
    assert.match(String(refusals[0]?.fields.remote), /^127\.0\.0\.1:\d+$/);
    assert.ok(warnings(linkLog.lines, 'cannot reach peer').length <= 2);
  });

  test('the link refuses a server that is not the expected peer', async (t) => {
    const { port, received } = await startServer(t, { nodeId: 'n3' });
    const { link, log } = startLink(t, port, { peerId: 'n2' });
    await waitFor(() => link.connectAttempts >= 3, 'three attempts');
    assert.equal(link.connects, 0);
    assert.equal(received.length, 0);
    const lines = warnings(log.lines, 'cannot reach peer');
    assert.equal(lines.length, 1);
    assert.match(String(lines[0]?.fields.reason), /"n3", not the expected peer/);
  });

  test('send() returns false while disconnected and nothing is queued; stop() ends the retries', async (t) => {
    const port = await freePort();
    const log = recordingLogger();
    const link = new PeerLink({
      host: HOST,
      port,
      clusterId: CLUSTER,
      nodeId: 'n1',
      peerId: 'n2',
      minBackoffMs: 10,
      maxBackoffMs: 40,
      logger: log,
    });
    t.after(() => link.stop());
    const bytes = frames([msg('n1', 'n2', 1)]);
    assert.equal(link.send(bytes), false, 'before start');
    link.start();
    assert.equal(link.send(bytes), false, 'while connecting');
    await waitFor(() => link.connectAttempts >= 3, 'three attempts');
    assert.equal(link.send(bytes), false, 'while refused');
    assert.equal(link.sendsDropped, 3);
    assert.equal(link.bytesDropped, 3 * bytes.byteLength);
    assert.equal(link.bytesSent, 0);
    assert.equal(warnings(log.lines, 'cannot reach peer').length, 1);
    assert.equal(warnings(log.lines, 'cannot reach peer')[0]?.fields.reason, 'ECONNREFUSED');

    await link.stop();
    const attempts = link.connectAttempts;
    await sleep(120);
    assert.equal(link.connectAttempts, attempts, 'no reconnect after stop');
    assert.throws(() => link.start(), /stopped/);
  });

  test('a congested link drops sends and reports it until the socket drains', async (t) => {
    // A fake peer that answers the handshake, then stops reading.
    const sockets: net.Socket[] = [];
    const fake = net.createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => {});
      socket.once('data', () => {
        socket.write(handshakeBytes({ role: HandshakeRole.Peer, clusterId: CLUSTER, nodeId: 'n2' }));
        socket.pause();
      });
    });
    t.after(() => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => fake.close(() => resolve()));
    });
    await new Promise<void>((resolve) => fake.listen(0, HOST, resolve));
    const congestion: boolean[] = [];
    const { link } = startLink(t, (fake.address() as net.AddressInfo).port, {
      maxBufferedBytes: 1024 * 1024,
      onCongestion: (c) => congestion.push(c),
    });
    await waitFor(() => link.connected, 'the link to connect');

    // Never modified, so it may be handed over many times.
    const chunk = frames(Array.from({ length: 2000 }, (_, k) => msg('n1', 'n2', k)));
    let accepted = 0;
    for (let i = 0; i < 2000 && link.send(chunk); i++) accepted++;
    assert.ok(accepted > 0 && accepted < 2000, `${accepted} sends accepted`);
    assert.equal(link.congested, true);
    assert.deepEqual(congestion, [true]);
    assert.ok(link.bufferedBytes <= 1024 * 1024 + chunk.byteLength);
    assert.equal(link.send(chunk), false);
    // All parts or none: a frame is never cut in two by a refusal.
    const bufferedBefore = link.bufferedBytes;
    assert.equal(link.sendv([chunk.subarray(0, 10), chunk.subarray(10)]), false);
    assert.equal(link.bufferedBytes, bufferedBefore);
    assert.equal(link.sendsDropped, 3);

    for (const s of sockets) {
      s.on('data', () => {});
      s.resume();
    }
    await waitFor(() => !link.congested, 'the drain');
    assert.deepEqual(congestion, [true, false]);
    assert.equal(link.send(chunk), true);
  });
});

describe('PeerServer against raw sockets', { timeout: TEST_TIMEOUT_MS }, () => {
  const peerHandshake = (nodeId: string, clusterId = CLUSTER): Uint8Array =>
    handshakeBytes({ role: HandshakeRole.Peer, clusterId, nodeId });

  test('garbage after a valid handshake closes that connection only', async (t) => {
    const { server, port, received, log } = await startServer(t);
    const { link } = startLink(t, port);
    await waitFor(() => link.connected, 'the good link');
    link.send(frames([msg('n1', 'n2', 1)]));

    const bad = await rawSocket(t, port);
    // A frame header of body length 0 and type 0: no such frame type.
    bad.socket.write(Buffer.concat([peerHandshake('n3'), Buffer.from([0, 0, 0, 0, 0, 9, 9, 9])]));
    await waitFor(bad.closed, 'the bad connection to be closed');
    assert.equal(server.frameErrors, 1);
    const lines = warnings(log.lines, 'malformed frame');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.fields.code, 'ERR_FRAME_UNKNOWN_TYPE');

    // A non-raftline client (an HTTP probe) is refused the same way.
    const probe = await rawSocket(t, port);
    probe.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await waitFor(probe.closed, 'the probe to be closed');
    assert.equal(server.frameErrors, 2);

    assert.equal(link.connected, true);
    assert.equal(link.send(frames([msg('n1', 'n2', 2)])), true);
    await waitFor(() => received.length === 2, 'the good link still served');
    assert.deepEqual(
      received.map((r) => [r.from, r.frame.message.index]),
      [
        ['n1', 1],
        ['n1', 2],
      ],
    );
  });

  test("a message whose from is not the handshake's node id, or not to us, is refused", async (t) => {
    const { server, port, received, log } = await startServer(t);

    const impostor = await rawSocket(t, port);
    impostor.socket.write(
      Buffer.concat([peerHandshake('n3'), frames([msg('n3', 'n2', 1), msg('n4', 'n2', 2)])]),
    );
    await waitFor(impostor.closed, 'the impostor to be closed');
    // The first message was fine and is delivered; the second closes the connection.
    assert.deepEqual(
      received.map((r) => [r.from, r.frame.message.index]),
      [['n3', 1]],
    );

    const misrouted = await rawSocket(t, port);
    misrouted.socket.write(Buffer.concat([peerHandshake('n3'), frames([msg('n3', 'n9', 3)])]));
    await waitFor(misrouted.closed, 'the misrouted connection to be closed');
    assert.equal(received.length, 1);
    assert.equal(server.protocolErrors, 2);
    assert.equal(warnings(log.lines, 'not from the node that shook hands')[0]?.fields.from, 'n4');
  });

  test('answers a peer with its handshake, refuses its own node id and a silent connection', async (t) => {
    const { server, port } = await startServer(t, { handshakeTimeoutMs: 100 });

    const peer = await rawSocket(t, port);
    const answer: Buffer[] = [];
    peer.socket.on('data', (chunk: Buffer) => answer.push(chunk));
    peer.socket.write(peerHandshake('n3'));
    const expected = peerHandshake('n2');
    await waitFor(() => Buffer.concat(answer).byteLength >= expected.byteLength, 'the answer');
    assert.deepEqual(new Uint8Array(Buffer.concat(answer)), expected);

    const self = await rawSocket(t, port);
    self.socket.write(peerHandshake('n2'));
    await waitFor(self.closed, 'our own id to be refused');

    const silent = await rawSocket(t, port);
    await waitFor(silent.closed, 'the silent connection to time out', 2000);
    assert.equal(server.connectionsRefused, 2);
    assert.equal(peer.closed(), false);

    // A second connection from the same peer supersedes the first (the peer gave up on it).
    const again = await rawSocket(t, port);
    again.socket.write(peerHandshake('n3'));
    await waitFor(peer.closed, 'the old connection to be closed');
    assert.equal(again.closed(), false);
    assert.equal(server.connectionCount, 1);
  });

  test('client connections are refused without a handler and handed over with one', async (t) => {
    const refusing = await startServer(t);
    const client = await rawSocket(t, refusing.port);
    const clientHs = handshakeBytes({ role: HandshakeRole.Client, clusterId: CLUSTER, nodeId: '' });
    client.socket.write(clientHs);
    await waitFor(client.closed, 'the client to be refused');
    assert.equal(refusing.server.connectionsRefused, 1);

    const handed: { handshake: Handshake; decoder: FrameDecoder; socket: net.Socket }[] = [];
    const serving = await startServer(t, {
      onClientConnection: (socket, handshake, decoder) => {
        socket.on('data', (chunk: Buffer) => decoder.push(chunk));
        handed.push({ socket, handshake, decoder });
      },
    });
    const client2 = await rawSocket(t, serving.port);
    // The handshake and the next frame in one write: the frame must reach the handler's decoder.
    const request = new OutBuffer(64);
    encodeClientRequest(request, { op: ClientOp.Status, flags: 0, requestId: 7, payload: new Uint8Array(0) });
    client2.socket.write(Buffer.concat([clientHs, request.view()]));
    await waitFor(() => handed.length === 1, 'the hand-over');
    assert.equal(handed[0]?.handshake.role, HandshakeRole.Client);
    const next = handed[0]?.decoder.next();
    assert.ok(
      next !== null &&
        next !== undefined &&
        !(next instanceof Error) &&
        next.type === FrameType.ClientRequest,
    );
    assert.equal((decodeClientRequest(next.body) as ClientRequest).requestId, 7);
    assert.equal(serving.received.length, 0, 'client frames do not reach onMessage');

    await serving.server.close();
    await waitFor(client2.closed, 'close() to destroy the handed-over socket');
  });
});
