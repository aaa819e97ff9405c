/**
 * The far end of the network rows of `native.ts`, run by native-net.ts as a child process
 * (a second node, as in a cluster). Talks to its parent in JSON lines: it prints
 * `{"port":N}` once listening; the parent writes commands on stdin.
 *
 *   node dist/native-bench/native-net-peer.js peer-sink <clusterId> <nodeId>
 *       A PeerServer (src/main/peer-server.ts): decodes every frame and verifies every
 *       entry's CRCs, as a follower's peer server does. On `expect <frames>` it waits until
 *       that many RAFT_MESSAGE frames arrived, then prints frames, entries, record bytes
 *       and the time from the first frame to the last, and exits.
 *   node dist/native-bench/native-net-peer.js discard-sink <clusterId> <nodeId>
 *       A plain socket that answers the handshake and counts bytes (the stand-in for the C
 *       sink when there is no compiler). On `expect <bytes>`: the same, counting bytes.
 *   node dist/native-bench/native-net-peer.js pong <clusterId> <nodeId> <peerId> <peerPort>
 *       A PeerServer plus a PeerLink back to the parent's PeerServer: every MsgHeartbeat
 *       is answered with a MsgHeartbeatResp on the link, as a follower answers a leader.
 *       Prints `{"ready":true}` once its link is up; exits when stdin ends.
 */
import net from 'node:net';
import { createInterface } from 'node:readline';
import { PeerServer } from '../src/main/peer-server.js';
import { MessageType, message } from '../src/raft/messages.js';
import { encodeHandshakeFrame, encodeRaftMessageFrame, OutBuffer } from '../src/shared/message-codec.js';
import { HandshakeRole } from '../src/shared/protocol.js';
import { PeerLink } from '../src/workers/replicator/peer-link.js';

const HOST = '127.0.0.1';

function say(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** Counts units as they arrive; the rate is taken from the first arrival to the last. */
class Counter {
  units = 0;
  entries = 0;
  recordBytes = 0;
  firstMs = 0;
  lastMs = 0;
  private expected = Number.POSITIVE_INFINITY;
  private onDone: (() => void) | null = null;

  add(units: number, entries: number, recordBytes: number): void {
    const nowMs = performance.now();
    if (this.units === 0) this.firstMs = nowMs;
    this.lastMs = nowMs;
    this.units += units;
    this.entries += entries;
    this.recordBytes += recordBytes;
    this.check();
  }

  /** Calls `done` once `expected` units have arrived (at once if they have). */
  expect(expected: number, done: () => void): void {
    this.expected = expected;
    this.onDone = done;
    this.check();
  }

  private check(): void {
    if (this.onDone !== null && this.units >= this.expected) {
      const done = this.onDone;
      this.onDone = null;
      done();
    }
  }
}

/** Calls `onExpect(n)` for each `expect <n>` line and `onEnd` when stdin ends. */
function readCommands(onExpect: (n: number) => void, onEnd: () => void): void {
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    const [command, arg] = line.trim().split(/\s+/);
    if (command === 'expect') onExpect(Number(arg));
  });
  lines.on('close', onEnd);
}

async function peerSink(clusterId: string, nodeId: string): Promise<void> {
  const counter = new Counter();
  const server = new PeerServer({
    host: HOST,
    port: 0,
    clusterId,
    nodeId,
    onMessage: (frame) => counter.add(1, frame.message.entries.length, frame.entryRecords.byteLength),
  });
  const { port } = await server.listen();
  say({ port });
  readCommands(
    (frames) =>
      counter.expect(frames, () => {
        say({
          frames: counter.units,
          entries: counter.entries,
          record_bytes: counter.recordBytes,
          seconds: (counter.lastMs - counter.firstMs) / 1000,
          frame_errors: server.frameErrors + server.protocolErrors,
        });
        void server.close().then(() => process.exit(0));
      }),
    () => void server.close().then(() => process.exit(0)),
  );
}

async function discardSink(clusterId: string, nodeId: string): Promise<void> {
  const counter = new Counter();
  const out = new OutBuffer(64);
  encodeHandshakeFrame(out, { role: HandshakeRole.Peer, clusterId, nodeId });
  const answer = out.view().slice();
  const server = net.createServer((socket) => {
    socket.write(answer);
    socket.on('data', (chunk: Buffer) => counter.add(chunk.byteLength, 0, 0));
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  say({ port: (server.address() as net.AddressInfo).port });
  const exit = (): void => {
    server.close();
    process.exit(0);
  };
  readCommands(
    (bytes) =>
      counter.expect(bytes, () => {
        say({ bytes: counter.units, seconds: (counter.lastMs - counter.firstMs) / 1000 });
        exit();
      }),
    exit,
  );
}

async function pong(clusterId: string, nodeId: string, peerId: string, peerPort: number): Promise<void> {
  const out = new OutBuffer(256);
  const link = new PeerLink({
    host: HOST,
    port: peerPort,
    clusterId,
    nodeId,
    peerId,
    onConnect: () => say({ ready: true }),
  });
  const server = new PeerServer({
    host: HOST,
    port: 0,
    clusterId,
    nodeId,
    onMessage: (frame) => {
      const m = frame.message;
      if (m.type !== MessageType.MsgHeartbeat) return;
      // Encoded afresh for every answer, as the coordinator does.
      out.clear();
      encodeRaftMessageFrame(
        out,
        message({
          type: MessageType.MsgHeartbeatResp,
          from: nodeId,
          to: peerId,
          term: m.term,
          context: m.context,
        }),
      );
      link.send(out.view().slice());
    },
  });
  const { port } = await server.listen();
  say({ port });
  link.start();
  readCommands(
    () => {},
    () => void Promise.all([link.stop(), server.close()]).then(() => process.exit(0)),
  );
}

const [role, ...args] = process.argv.slice(2);
const [clusterId = 'native-bench', nodeId = 'sink', peerId = '', peerPort = '0'] = args;
if (role === 'peer-sink') await peerSink(clusterId, nodeId);
else if (role === 'discard-sink') await discardSink(clusterId, nodeId);
else if (role === 'pong') await pong(clusterId, nodeId, peerId, Number(peerPort));
else {
  process.stderr.write(
    'usage: native-net-peer.js peer-sink|discard-sink|pong <clusterId> <nodeId> [peerId peerPort]\n',
  );
  process.exit(2);
}
