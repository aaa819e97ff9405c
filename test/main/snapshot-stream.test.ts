/**
 * InstallSnapshot end to end on loopback TCP: a leader's `SnapshotSender` (replicator
 * side) streams a real `SnapshotStore`'s snapshot to a follower's `PeerServer` +
 * `SnapshotStreamReceiver`, which stores it through `FsmSnapshotSink` and the fsm
 * thread's `installSnapshotIntake` (here joined by a `MessageChannel` in one thread).
 *
 * Covered: a multi-file snapshot of a few MiB arrives intact; a connection cut halfway
 * (by a proxy the test controls) resumes from what arrived; a stale offer is refused and
 * counts as done; a replaced snapshot is sent as the newest; malformed frames and
 * protocol breaches close the stream without harming the node; a newer stream
 * supersedes an older one; the throttle paces the stream on an injected virtual clock;
 * `stop()` cancels without a report. No assertion depends on wall-clock time; every
 * wait is bounded, and every socket, server and port is closed when its test ends.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, type TestContext, test } from 'node:test';
import { MessageChannel, Worker } from 'node:worker_threads';
import { FsmSnapshotSink } from '../../src/main/fsm-snapshot-sink.js';
import { PeerServer } from '../../src/main/peer-server.js';
import { type SnapshotReceiverOptions, SnapshotStreamReceiver } from '../../src/main/snapshot-receiver.js';
import type { NodeId, SnapshotMeta, Term } from '../../src/raft/types.js';
import { writeU32 } from '../../src/shared/entry-codec.js';
import { encodeHandshakeFrame, FrameDecoder, FrameError, OutBuffer } from '../../src/shared/message-codec.js';
import {
  FrameType,
  HandshakeRole,
  SnapshotFailReason,
  SnapshotRefuseReason,
  SnapshotReplyKind,
  SnapshotSendKind,
} from '../../src/shared/protocol.js';
import {
  decodeSnapshotReply,
  encodeSnapshotSend,
  type SnapshotReplyMessage,
  SnapshotStreamError,
} from '../../src/shared/snapshot-stream-codec.js';
import { installSnapshotIntake } from '../../src/workers/fsm/snapshot-intake.js';
import { openSnapshotForSending, SnapshotStore } from '../../src/workers/fsm/snapshot-store.js';
import {
  SnapshotSender,
  type SnapshotSenderOptions,
  type SnapshotSendResult,
} from '../../src/workers/replicator/snapshot-sender.js';
import type { Clock } from '../../src/workers/replicator/token-bucket.js';

const HOST = '127.0.0.1';
const CLUSTER = 'snapcluster';
const LEADER = 'n1';
const FOLLOWER = 'n2';
const TEST_TIMEOUT_MS = 30_000;
const CONF = { voters: [LEADER, FOLLOWER, 'n3'], votersOutgoing: [], learners: [], autoLeave: false };

/** Deterministic pseudo-random bytes (xorshift), so a failure can be reproduced. */
function bytesOf(lengthBytes: number, seed: number): Uint8Array {
  const out = new Uint8Array(lengthBytes);
  const words = new Uint32Array(out.buffer, 0, lengthBytes >>> 2);
  let x = seed | 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  for (let i = words.length * 4; i < lengthBytes; i++) out[i] = i & 0xff;
  return out;
}

/** A few MiB over several files, one nested, one empty. */
const FILES: Record<string, Uint8Array> = {
  'a.bin': bytesOf(1_500_000, 1),
  'dir/b.bin': bytesOf(2 * 1024 * 1024 + 3, 2),
  empty: new Uint8Array(0),
  'small.txt': new TextEncoder().encode('hello snapshot\n'),
};
const TOTAL_BYTES = Object.values(FILES).reduce((sum, f) => sum + f.byteLength, 0);

function tempDir(t: TestContext, name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `snapshot-stream-${name}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Saves a snapshot at `index` holding `files` into the store of `dataDir`. */
function saveSnapshot(
  dataDir: string,
  index: number,
  files: Record<string, Uint8Array>,
  term = 2,
): SnapshotMeta {
  const store = new SnapshotStore(dataDir, { sync: false });
  const writer = store.begin({ index, term, conf: CONF });
  for (const [name, contents] of Object.entries(files)) {
    const file = path.join(writer.dir, ...name.split('/'));
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, contents);
  }
  return writer.commit();
}

/** Every file of the latest snapshot of `dataDir`, verified against its CRC by `latest()`. */
function latestFiles(dataDir: string): { meta: SnapshotMeta; files: Record<string, Uint8Array> } | null {
  const store = new SnapshotStore(dataDir, { sync: false });
  const reader = store.reader();
  if (reader === null) return null;
  const files: Record<string, Uint8Array> = {};
  for (const f of reader.files) files[f.name] = new Uint8Array(fs.readFileSync(reader.filePath(f.name)));
  return { meta: reader.meta, files };
}

/** Polls `condition` every 5 ms; fails after `timeoutMs`. */
async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

// ------------------------------------------------------------------ the follower

interface Follower {
  readonly dataDir: string;
  readonly port: number;
  readonly receiver: SnapshotStreamReceiver;
  readonly installed: { meta: SnapshotMeta; leaderId: NodeId; leaderTerm: Term }[];
}

/**
 * A follower node's snapshot path: PeerServer → SnapshotStreamReceiver → FsmSnapshotSink
 * → (MessageChannel) → installSnapshotIntake → SnapshotStore. `serveSnapshots: false`
 * leaves the server without `onSnapshotConnection`.
 */
async function startFollower(
  t: TestContext,
  options: Partial<SnapshotReceiverOptions> & {
    serveSnapshots?: boolean;
    dataDir?: string;
    worker?: boolean;
  } = {},
): Promise<Follower> {
  const dataDir = options.dataDir ?? tempDir(t, 'follower');
  let sink: FsmSnapshotSink;
  let stopIntake = (): void => {};
  if (options.worker === true) {
    // The store in a thread of its own, as in a node.
    const worker = new Worker(new URL('./snapshot-intake-worker.js', import.meta.url), {
      workerData: { dataDir },
    });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
    });
    t.after(() => worker.terminate());
    sink = new FsmSnapshotSink(worker);
  } else {
    const store = new SnapshotStore(dataDir, { sync: false });
    const channel = new MessageChannel();
    const stopChannel = installSnapshotIntake(channel.port2, store);
    stopIntake = () => {
      stopChannel();
      channel.port1.close();
      channel.port2.close();
    };
    sink = new FsmSnapshotSink(channel.port1);
  }
  const installed: Follower['installed'] = [];
  const receiver = new SnapshotStreamReceiver({
    sink,
    onInstalled: (meta, leaderId, leaderTerm) => installed.push({ meta, leaderId, leaderTerm }),
    ...options,
  });
  const server = new PeerServer({
    host: HOST,
    port: 0,
    clusterId: CLUSTER,
    nodeId: FOLLOWER,
    onMessage: () => {},
    ...(options.serveSnapshots === false
      ? {}
      : { onSnapshotConnection: (socket, hs, decoder) => receiver.serve(socket, hs, decoder) }),
  });
  const { port } = await server.listen();
  t.after(async () => {
    receiver.close();
    await server.close();
    sink.close();
    stopIntake();
  });
  return { dataDir, port, receiver, installed };
}

// ------------------------------------------------------------------ the leader

interface Leader {
  readonly sender: SnapshotSender;
  readonly results: SnapshotSendResult[];
  /** The next result. */
  result(): Promise<SnapshotSendResult>;
}

function startSender(
  t: TestContext,
  dataDir: string,
  port: number,
  extra: Partial<SnapshotSenderOptions> = {},
): Leader {
  const results: SnapshotSendResult[] = [];
  let consumed = 0;
  const sender = new SnapshotSender({
    host: HOST,
    port,
    clusterId: CLUSTER,
    nodeId: LEADER,
    peerId: FOLLOWER,
    dataDir,
    minBackoffMs: 5,
    maxBackoffMs: 20,
    rng: () => 0.5,
    ...extra,
    onDone: (r) => results.push(r),
  });
  t.after(() => sender.stop());
  return {
    sender,
    results,
    result: async () => {
      await waitFor(() => results.length > consumed, 'a transfer result', 20_000);
      return results[consumed++] as SnapshotSendResult;
    },
  };
}

/**
 * A TCP proxy to `targetPort` that cuts the first connection (both sides) once
 * `cutAfterBytes` have gone from the client to the target; later connections pass.
 */
async function cuttingProxy(
  t: TestContext,
  targetPort: number,
  cutAfterBytes: number,
): Promise<{ port: number; cuts: () => number }> {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  let cuts = 0;
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  };
  const server = net.createServer((client) => {
    const cutThis = connections++ === 0;
    const upstream = net.connect({ host: HOST, port: targetPort });
    track(client);
    track(upstream);
    let forwardedBytes = 0;
    client.on('data', (chunk: Buffer) => {
      if (cutThis && forwardedBytes + chunk.byteLength >= cutAfterBytes) {
        cuts++;
        client.destroy();
        upstream.destroy();
        return;
      }
      forwardedBytes += chunk.byteLength;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as net.AddressInfo).port, cuts: () => cuts };
}

/** A raw connection to a follower that speaks the snapshot stream by hand. */
async function rawStream(
  t: TestContext,
  port: number,
): Promise<{
  socket: net.Socket;
  send(encode: (out: OutBuffer) => void): void;
  replies: SnapshotReplyMessage[];
  closed: () => boolean;
}> {
  const socket = net.connect({ host: HOST, port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let closed = false;
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
  });
  t.after(() => {
    socket.destroy();
  });
  const decoder = new FrameDecoder({ snapshotReplies: true });
  const replies: SnapshotReplyMessage[] = [];
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    for (let f = decoder.next(); f !== null && !(f instanceof FrameError); f = decoder.next()) {
      if (f.type !== FrameType.SnapshotReply) continue;
      const m = decodeSnapshotReply(f.body);
      if (!(m instanceof SnapshotStreamError)) replies.push(m);
    }
  });
  const send = (encode: (out: OutBuffer) => void): void => {
    const out = new OutBuffer(64);
    encode(out);
    socket.write(out.view().slice());
  };
  send((out) =>
    encodeHandshakeFrame(out, { role: HandshakeRole.Snapshot, clusterId: CLUSTER, nodeId: LEADER }),
  );
  return { socket, send, replies, closed: () => closed };
}

/** A clock that moves only when slept on: the throttle's pacing, measured without waiting. */
class VirtualClock implements Clock {
  nowMsValue = 0;
  readonly sleepsMs: number[] = [];
  nowMs(): number {
    return this.nowMsValue;
  }
  async sleepMs(ms: number): Promise<void> {
    this.sleepsMs.push(ms);
    this.nowMsValue += ms;
    // Let the event loop run (socket writes, replies) as real time would.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

// ------------------------------------------------------------------ tests

describe('snapshot stream: transfers', () => {
  test('a multi-file snapshot of a few MiB arrives intact', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const leaderDir = tempDir(t, 'leader');
    const meta = saveSnapshot(leaderDir, 10, FILES);
    const follower = await startFollower(t);
    const leader = startSender(t, leaderDir, follower.port);

    leader.sender.send(10, 4);
    const result = await leader.result();
    assert.deepEqual(result, { index: 10, ok: true, bytes: TOTAL_BYTES, resumedBytes: 0, reason: null });
    assert.equal(leader.sender.connectAttempts, 1);

    const got = latestFiles(follower.dataDir);
    assert.ok(got);
    assert.deepEqual(got.meta, meta);
    assert.deepEqual(got.files, FILES);
    assert.deepEqual(follower.installed, [{ meta, leaderId: LEADER, leaderTerm: 4 }]);
    assert.equal(follower.receiver.installed, 1);
    assert.equal(follower.receiver.bytesReceived, TOTAL_BYTES);
  });

  test('through a store in a thread of its own, with errors rebuilt across the boundary', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const leaderDir = tempDir(t, 'leader');
    const meta = saveSnapshot(leaderDir, 10, FILES);
    const follower = await startFollower(t, { worker: true });
    const leader = startSender(t, leaderDir, follower.port);
    leader.sender.send(10, 4);
    const result = await leader.result();
    assert.equal(result.ok, true, result.reason ?? '');
    assert.deepEqual(latestFiles(follower.dataDir), { meta, files: FILES });

    // A second offer of the same snapshot: the store says stale, the error crosses the
    // thread as a record and is rebuilt, and the leader counts the transfer done.
    leader.sender.send(10, 5);
    assert.deepEqual(await leader.result(), { index: 10, ok: true, bytes: 0, resumedBytes: 0, reason: null });
    assert.equal(follower.receiver.refused, 1);
  });

  test('a receiver that pauses its socket for a slow store resumes it (chunk buffers move to the thread)', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    // Regression: the pending-bytes count was decremented by the chunk's byteLength read
    // after the sink had transferred its buffer (0 then), so a stream larger than
    // maxPendingBytes paused its socket for good and never completed.
    const leaderDir = tempDir(t, 'leader');
    const meta = saveSnapshot(leaderDir, 10, FILES);
    const follower = await startFollower(t, { worker: true, maxPendingBytes: 64 * 1024 });
    const leader = startSender(t, leaderDir, follower.port);
    leader.sender.send(10, 4);
    const result = await leader.result();
    assert.equal(result.ok, true, result.reason ?? '');
    assert.deepEqual(latestFiles(follower.dataDir), { meta, files: FILES });
  });

  test('a connection cut halfway resumes from what arrived', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const leaderDir = tempDir(t, 'leader');
    const meta = saveSnapshot(leaderDir, 10, FILES);
    const follower = await startFollower(t);
    const proxy = await cuttingProxy(t, follower.port, Math.floor(TOTAL_BYTES / 2));
    const leader = startSender(t, leaderDir, proxy.port, { chunkBytes: 64 * 1024 });

    leader.sender.send(10, 4);
    const result = await leader.result();
    assert.equal(proxy.cuts(), 1);
    assert.equal(result.ok, true, result.reason ?? '');
    assert.equal(leader.sender.connectAttempts, 2);
    assert.ok(result.resumedBytes > 0, `resumed ${result.resumedBytes} bytes`);
    assert.ok(result.bytes < TOTAL_BYTES * 2, `sent ${result.bytes} bytes of ${TOTAL_BYTES}`);
    // What was resumed plus what the second connection sent covers the snapshot.
    assert.ok(result.bytes + result.resumedBytes >= TOTAL_BYTES);

    const got = latestFiles(follower.dataDir);
    assert.ok(got);
    assert.deepEqual(got.meta, meta);
    assert.deepEqual(got.files, FILES);
    assert.equal(follower.installed.length, 1);
  });

  test('a stale offer is refused cleanly and counts as done', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const leaderDir = tempDir(t, 'leader');
    saveSnapshot(leaderDir, 10, FILES);
    const followerDir = tempDir(t, 'follower');
    const own = saveSnapshot(followerDir, 12, { 'mine.bin': Uint8Array.of(1, 2, 3) });
    const follower = await startFollower(t, { dataDir: followerDir });
    const leader = startSender(t, leaderDir, follower.port);

    leader.sender.send(10, 4);
    assert.deepEqual(await leader.result(), { index: 10, ok: true, bytes: 0, resumedBytes: 0, reason: null });
    assert.equal(follower.receiver.refused, 1);
    assert.deepEqual(follower.installed, []);
    assert.deepEqual(latestFiles(followerDir)?.meta, own, 'the newer local snapshot is untouched');
  });

  test('a snapshot replaced by a newer one is sent as the newest', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const leaderDir = tempDir(t, 'leader');
    saveSnapshot(leaderDir, 10, FILES);
    const newer = saveSnapshot(leaderDir, 15, { 'x.bin': bytesOf(10_000, 3) }, 3);
    assert.equal(openSnapshotForSending(leaderDir, 10), null);
    const follower = await startFollower(t);
    const leader = startSender(t, leaderDir, follower.port);

    leader.sender.send(10, 4);
    const result = await leader.result();
    assert.equal(result.ok, true);
    assert.equal(result.index, 15);
    assert.deepEqual(latestFiles(follower.dataDir)?.meta, newer);

    // Nothing at or after the asked index: failed, without a connection.
    leader.sender.send(16, 4);
    const missing = await leader.result();
    assert.equal(missing.ok, false);
    assert.match(missing.reason ?? '', /no snapshot at index 16/);
    assert.equal(leader.sender.connectAttempts, 1);
  });

  test('a follower without snapshot streams refuses them; the sender gives up after its attempts', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const leaderDir = tempDir(t, 'leader');
    saveSnapshot(leaderDir, 10, FILES);
    const follower = await startFollower(t, { serveSnapshots: false });
    const leader = startSender(t, leaderDir, follower.port, { maxAttempts: 2 });
    leader.sender.send(10, 4);
    const result = await leader.result();
    assert.equal(result.ok, false);
    assert.equal(leader.sender.connectAttempts, 2);
  });

  test('a deposed leader stops streaming and reports failure', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const leaderDir = tempDir(t, 'leader');
    saveSnapshot(leaderDir, 10, FILES);
    const follower = await startFollower(t);
    let leading = true;
    let chunks = 0;
    const leader = startSender(t, leaderDir, follower.port, {
      chunkBytes: 64 * 1024,
      stillLeading: (term) => {
        assert.equal(term, 4);
        if (++chunks === 5) leading = false;
        return leading;
      },
    });
    leader.sender.send(10, 4);
    const result = await leader.result();
    assert.equal(result.ok, false);
    assert.match(result.reason ?? '', /no longer leading in term 4/);
    assert.equal(result.bytes, 4 * 64 * 1024);
    assert.equal(leader.sender.connectAttempts, 1, 'not retried');
    assert.deepEqual(follower.installed, []);
  });
});

describe('FsmSnapshotSink', () => {
  test('rebuilds errors by class, and fails requests once its thread is gone', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const dataDir = tempDir(t, 'follower');
    const worker = new Worker(new URL('./snapshot-intake-worker.js', import.meta.url), {
      workerData: { dataDir },
    });
    t.after(() => worker.terminate());
    await new Promise((resolve) => worker.once('message', resolve));
    const sink = new FsmSnapshotSink(worker);
    t.after(() => sink.close());
    await assert.rejects(sink.begin(Uint8Array.of(1, 2, 3)), (err: Error) => {
      assert.equal((err as { code?: string }).code, 'ERR_RAFT_SNAPSHOT_CORRUPT');
      assert.equal(err.name, 'SnapshotCorruptionError');
      return true;
    });
    await assert.rejects(sink.write('a', 0, Uint8Array.of(1)), { code: 'ERR_RAFT_SNAPSHOT_INVALID' });
    await worker.terminate();
    await assert.rejects(sink.commit(), { code: 'ERR_RAFT_SHUTDOWN' });
  });
});

describe('snapshot stream: the throttle', () => {
  test('paces the stream to bytesPerSecond on an injected clock', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const leaderDir = tempDir(t, 'leader');
    saveSnapshot(leaderDir, 10, FILES);
    const follower = await startFollower(t);
    const clock = new VirtualClock();
    const bytesPerSecond = 1024 * 1024;
    const leader = startSender(t, leaderDir, follower.port, {
      clock,
      bytesPerSecond,
      chunkBytes: 256 * 1024,
    });

    leader.sender.send(10, 4);
    const result = await leader.result();
    assert.equal(result.ok, true, result.reason ?? '');
    assert.equal(result.bytes, TOTAL_BYTES);
    // A slow rate shrinks chunks to an eighth of a second's worth (128 KiB here), and the
    // first of them is the bucket's burst: the rest of the bytes wait their turn, exactly.
    const burstBytes = bytesPerSecond / 8;
    const expectedMs = ((TOTAL_BYTES - burstBytes) * 1000) / bytesPerSecond;
    assert.ok(
      Math.abs(clock.nowMs() - expectedMs) < 1e-6,
      `virtual ${clock.nowMs()} ms, expected ${expectedMs}`,
    );
    for (const ms of clock.sleepsMs)
      assert.ok(ms <= (burstBytes * 1000) / bytesPerSecond + 1e-6, `a sleep of ${ms} ms`);
    assert.deepEqual(latestFiles(follower.dataDir)?.files, FILES);
  });

  test('stop() cancels a transfer mid-stream without a report', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const leaderDir = tempDir(t, 'leader');
    saveSnapshot(leaderDir, 10, FILES);
    const follower = await startFollower(t);
    let sleeping = 0;
    // A clock whose sleeps end only when aborted: the transfer parks on its first wait.
    const clock: Clock = {
      nowMs: () => 0,
      sleepMs: (_ms, signal) =>
        new Promise<void>((resolve) => {
          sleeping++;
          signal?.addEventListener('abort', () => resolve(), { once: true });
        }),
    };
    const leader = startSender(t, leaderDir, follower.port, {
      clock,
      bytesPerSecond: 100_000,
      chunkBytes: 64 * 1024,
    });
    leader.sender.send(10, 4);
    await waitFor(() => sleeping === 1, 'the transfer to wait on its throttle');
    assert.equal(leader.sender.busy, true);
    await leader.sender.stop();
    assert.equal(leader.sender.busy, false);
    assert.deepEqual(leader.results, []);
    assert.equal(follower.receiver.installed, 0);
    leader.sender.send(10, 4);
    assert.equal(leader.sender.busy, false, 'a stopped sender starts nothing');
  });
});

describe('snapshot stream: hostile and concurrent streams', () => {
  test('a malformed frame closes that stream without throwing; the node serves the next', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const leaderDir = tempDir(t, 'leader');
    saveSnapshot(leaderDir, 10, FILES);
    const follower = await startFollower(t);

    // An unknown message kind.
    const bad = await rawStream(t, follower.port);
    bad.send((out) => {
      const at = out.append(5 + 8);
      writeU32(out.bytes, at, 8);
      out.bytes[at + 4] = FrameType.SnapshotSend;
      out.bytes.fill(0, at + 5, at + 13);
      out.bytes[at + 5] = 9;
    });
    await waitFor(bad.closed, 'the follower to close the malformed stream');

    // A chunk before any offer.
    const early = await rawStream(t, follower.port);
    early.send((out) =>
      encodeSnapshotSend(out, {
        kind: SnapshotSendKind.Chunk,
        fileIndex: 0,
        offsetBytes: 0,
        data: Uint8Array.of(1),
      }),
    );
    await waitFor(early.closed, 'the follower to close a stream that skipped its offer');

    // A Raft message on a snapshot stream: refused by the frame decoder.
    const wrongType = await rawStream(t, follower.port);
    wrongType.send((out) => {
      const at = out.append(5);
      writeU32(out.bytes, at, 0);
      out.bytes[at + 4] = FrameType.RaftMessage;
    });
    await waitFor(wrongType.closed, 'the follower to close a stream carrying a Raft message');
    assert.equal(follower.receiver.protocolErrors, 3);

    // A damaged meta is refused as invalid, with an answer.
    const damaged = await rawStream(t, follower.port);
    damaged.send((out) =>
      encodeSnapshotSend(out, {
        kind: SnapshotSendKind.Offer,
        leaderTerm: 4,
        metaBytes: Uint8Array.of(1, 2, 3),
      }),
    );
    await waitFor(() => damaged.replies.length === 1 && damaged.closed(), 'the refusal');
    assert.equal(damaged.replies[0]?.kind, SnapshotReplyKind.Refuse);
    assert.equal((damaged.replies[0] as { reason: number }).reason, SnapshotRefuseReason.Invalid);

    const leader = startSender(t, leaderDir, follower.port);
    leader.sender.send(10, 4);
    assert.equal((await leader.result()).ok, true);
    assert.deepEqual(latestFiles(follower.dataDir)?.files, FILES);
  });

  test('a chunk that leaves a gap or runs past its file is answered Failed', {
    timeout: TEST_TIMEOUT_MS,
  }, async (t) => {
    const leaderDir = tempDir(t, 'leader');
    saveSnapshot(leaderDir, 10, FILES);
    const source = openSnapshotForSending(leaderDir, 10);
    assert.ok(source);
    t.after(() => source.close());
    const follower = await startFollower(t);

    for (const [offsetBytes, dataBytes, why] of [
      [100, 10, /leaves a gap/],
      [0, 1_500_001, /past the 1500000 bytes/],
    ] as const) {
      const raw = await rawStream(t, follower.port);
      raw.send((out) =>
        encodeSnapshotSend(out, { kind: SnapshotSendKind.Offer, leaderTerm: 4, metaBytes: source.metaBytes }),
      );
      await waitFor(() => raw.replies.length === 1, 'the resume');
      assert.equal(raw.replies[0]?.kind, SnapshotReplyKind.Resume);
      raw.send((out) =>
        encodeSnapshotSend(out, {
          kind: SnapshotSendKind.Chunk,
          fileIndex: 0,
          offsetBytes,
          data: new Uint8Array(dataBytes),
        }),
      );
      await waitFor(() => raw.replies.length === 2 && raw.closed(), 'the failure');
      const failed = raw.replies[1];
      assert.ok(failed?.kind === SnapshotReplyKind.Failed, JSON.stringify(failed));
      assert.equal(failed.reason, SnapshotFailReason.Protocol);
      assert.match(failed.message, why);
    }
    assert.deepEqual(follower.installed, []);
  });

  test('a newer stream supersedes the one in progress', { timeout: TEST_TIMEOUT_MS }, async (t) => {
    const leaderDir = tempDir(t, 'leader');
    const meta = saveSnapshot(leaderDir, 10, FILES);
    const source = openSnapshotForSending(leaderDir, 10);
    assert.ok(source);
    t.after(() => source.close());
    const follower = await startFollower(t);

    // An older stream got as far as a first chunk, then went quiet (half-open).
    const stale = await rawStream(t, follower.port);
    stale.send((out) =>
      encodeSnapshotSend(out, { kind: SnapshotSendKind.Offer, leaderTerm: 3, metaBytes: source.metaBytes }),
    );
    await waitFor(() => stale.replies.length === 1, 'the resume');
    const first = new Uint8Array(1000);
    source.read(0, 0, first);
    stale.send((out) =>
      encodeSnapshotSend(out, { kind: SnapshotSendKind.Chunk, fileIndex: 0, offsetBytes: 0, data: first }),
    );
    await waitFor(() => follower.receiver.bytesReceived === 1000, "the older stream's chunk");

    const leader = startSender(t, leaderDir, follower.port);
    leader.sender.send(10, 4);
    const result = await leader.result();
    assert.equal(result.ok, true);
    assert.equal(result.resumedBytes, 1000, "the older stream's chunk was kept");
    await waitFor(stale.closed, 'the superseded stream to be closed');
    assert.equal(follower.receiver.superseded, 1);
    assert.deepEqual(follower.installed, [{ meta, leaderId: LEADER, leaderTerm: 4 }]);
    assert.deepEqual(latestFiles(follower.dataDir)?.files, FILES);
  });
});
