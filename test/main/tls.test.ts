/**
 * TLS on the listen port, over loopback, with certificates made by `openssl` at test
 * time: peers authenticate each other by certificate, a plain or rogue connection is
 * refused and counted, clients check the node against the CA. Every server, link and
 * socket is closed when its test ends; every wait is bounded.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, type TestContext, test } from 'node:test';
import { RaftClient } from '../../src/client/raft-client.js';
import { type ClientHandler, serveClient } from '../../src/main/client-server.js';
import { PeerServer } from '../../src/main/peer-server.js';
import { MessageType, message } from '../../src/raft/messages.js';
import { encodeHandshakeFrame, encodeRaftMessageFrame, OutBuffer } from '../../src/shared/message-codec.js';
import { HandshakeRole } from '../../src/shared/protocol.js';
import { TlsMaterial } from '../../src/shared/tls-config.js';
import { haveOpenssl, makeTestCerts, type TestCerts } from './tls-certs.js';
import { CLUSTER, HOST, heartbeat, sleep, startLink, waitFor } from './transport-fixtures.js';

const TEST_TIMEOUT_MS = 15_000;

const NO_LOG = { info() {}, warn() {} };
let certs: TestCerts;

before(() => {
  certs = makeTestCerts();
});
after(() => certs?.remove());

async function startTlsServer(
  t: TestContext,
): Promise<{ server: PeerServer; port: number; messages: number[] }> {
  const messages: number[] = [];
  const server = new PeerServer({
    host: HOST,
    port: 0,
    clusterId: CLUSTER,
    nodeId: 'n2',
    logger: NO_LOG,
    tls: new TlsMaterial(certs.cert, certs.key, certs.ca),
    onMessage: (frame) => messages.push(frame.message.index),
    onClientConnection: (socket, _hs, decoder, access) =>
      serveClient(
        socket,
        decoder,
        { read: async () => 'read over tls', statusValue: () => ({}) } as unknown as ClientHandler,
        NO_LOG as unknown as Parameters<typeof serveClient>[3],
        access,
      ),
  });
  t.after(() => server.close());
  const { port } = await server.listen();
  return { server, port, messages };
}

describe('TLS on the listen port', { skip: haveOpenssl() ? false : 'no openssl on this machine' }, () => {
  test('a peer with a certificate of the CA connects (mutual TLS) and its messages flow', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const { server, port, messages } = await startTlsServer(t);
    const link = startLink(t, port, { tls: { ca: certs.ca, cert: certs.cert, key: certs.key } }).link;
    await waitFor(() => link.connected, 'the link');
    assert.ok(link.send(heartbeat(5)));
    await waitFor(() => messages.length === 1, 'the message');
    assert.deepEqual(messages, [5]);
    assert.equal(server.tlsFailures, 0);
  });

  test('a peer with no certificate, or one of another CA, is refused and counted', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const { server, port, messages } = await startTlsServer(t);
    const bare = startLink(t, port, { tls: { ca: certs.ca } }).link;
    const rogue = startLink(t, port, {
      tls: { ca: certs.ca, cert: certs.rogueCert, key: certs.rogueKey },
    }).link;
    await waitFor(() => bare.connectAttempts >= 3 && rogue.connectAttempts >= 3, 'several attempts');
    assert.equal(bare.connects, 0);
    assert.equal(rogue.connects, 0);
    assert.equal(messages.length, 0);
    assert.ok(server.authFailures + server.tlsFailures >= 2, 'refusals counted');
  });

  test('a link that trusts another CA refuses the node', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const { port } = await startTlsServer(t);
    const link = startLink(t, port, {
      tls: { ca: certs.rogueCa, cert: certs.rogueCert, key: certs.rogueKey },
    }).link;
    await waitFor(() => link.connectAttempts >= 3, 'several attempts');
    assert.equal(link.connects, 0);
  });

  test('a plain TCP connection is refused: no handshake answer, closed, counted', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const { server, port, messages } = await startTlsServer(t);
    const out = new OutBuffer(256);
    encodeHandshakeFrame(out, { role: HandshakeRole.Peer, clusterId: CLUSTER, nodeId: 'n1' });
    encodeRaftMessageFrame(out, message({ type: MessageType.MsgHeartbeat, from: 'n1', to: 'n2', term: 1 }));
    const socket = net.connect({ host: HOST, port });
    socket.on('error', () => {});
    let received = 0;
    socket.on('data', (c: Buffer) => {
      received += c.byteLength;
    });
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write(out.view().slice());
    await Promise.race([closed, sleep(5000)]);
    assert.equal(socket.destroyed, true, 'the node closed the plain connection');
    socket.destroy();
    assert.equal(messages.length, 0);
    await waitFor(() => server.tlsFailures === 1, 'the counted failure');
    // Whatever came back was a TLS alert, not a raftline handshake (which starts with its length and type 1).
    assert.ok(received < 64);
  });

  test('a client that trusts the CA is served; one without TLS, or trusting another CA, is refused', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const { port } = await startTlsServer(t);
    const endpoint = `${HOST}:${port}`;
    const good = new RaftClient({ clusterId: CLUSTER, endpoints: [endpoint], tls: { ca: certs.ca } });
    const plain = new RaftClient({ clusterId: CLUSTER, endpoints: [endpoint], connectTimeoutMs: 2000 });
    const wrongCa = new RaftClient({ clusterId: CLUSTER, endpoints: [endpoint], tls: { ca: certs.rogueCa } });
    t.after(() => Promise.all([good.close(), plain.close(), wrongCa.close()]));
    assert.equal(await good.read('q', { consistency: 'stale' }), 'read over tls');
    for (const c of [plain, wrongCa]) {
      const got = await c.read('q', { consistency: 'stale' }).then(
        () => 'served',
        (err: { code?: string }) => err.code,
      );
      assert.equal(got, 'ERR_RAFT_UNAVAILABLE');
    }
  });
});
