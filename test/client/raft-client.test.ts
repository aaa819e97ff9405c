/**
 * RaftClient against fake nodes: small TCP servers built from FrameDecoder and the client
 * codec that answer the handshake as PeerServer does and reply to requests as each test
 * wants. Covers pipelining with replies out of order and batched writes, leader redirects
 * (with and without a hint), timeouts, connection loss and reconnection, a node of another
 * cluster, and errors rebuilt as the classes of errors.ts. Loopback only, every wait bounded.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, type TestContext, test } from 'node:test';
import { RaftClient } from '../../src/client/raft-client.js';
import {
  BusyError,
  NotLeaderError,
  RaftError,
  TimeoutError,
  UnavailableError,
} from '../../src/main/errors.js';
import {
  type ClientErrorValue,
  ClientFrameError,
  ClientOp,
  type ClientRequest,
  decodeClientRequest,
  encodeClientResponse,
} from '../../src/shared/client-codec.js';
import { encodeHandshakeFrame, FrameDecoder, FrameError, OutBuffer } from '../../src/shared/message-codec.js';
import { FrameType, HandshakeRole } from '../../src/shared/protocol.js';
import { decodeValue, type Value } from '../../src/shared/value-codec.js';

const CLUSTER = 'raftline';

/** How a fake node answers: a value, an error, or nothing (undefined: the test replies later). */
type Reply = { ok: true; value: Value } | { ok: false; error: ClientErrorValue } | undefined;

/** One fake node's connection, as its handler sees it. */
interface FakeConn {
  readonly socket: net.Socket;
  /** Sends a reply now (for tests that answer later or out of order). */
  reply(requestId: number, r: NonNullable<Reply>): void;
}

interface FakeNode {
  readonly address: string;
  readonly server: net.Server;
  /** Requests received, in arrival order. */
  readonly requests: ClientRequest[];
  /** Connections accepted. */
  connections: number;
  /** 'data' events on all connections: how many writes the client's requests took, at most. */
  chunks: number;
  readonly sockets: Set<net.Socket>;
}

/**
 * Starts a fake node on 127.0.0.1:0. `handle` answers each request (its payload copied
 * first: the decoder's views die with the chunk).
 */
async function fakeNode(
  t: TestContext,
  handle: (req: ClientRequest, conn: FakeConn) => Reply,
  options: { clusterId?: string; nodeId?: string } = {},
): Promise<FakeNode> {
  const hello = new OutBuffer(64);
  encodeHandshakeFrame(hello, {
    role: HandshakeRole.Peer,
    clusterId: options.clusterId ?? CLUSTER,
    nodeId: options.nodeId ?? 'fake',
  });
  const helloBytes = hello.view().slice();
  const node: FakeNode = {
    address: '',
    server: net.createServer(),
    requests: [],
    connections: 0,
    chunks: 0,
    sockets: new Set(),
  };
  node.server.on('connection', (socket) => {
    node.connections++;
    node.sockets.add(socket);
    socket.on('close', () => node.sockets.delete(socket));
    socket.on('error', () => {});
    socket.setNoDelay(true);
    const decoder = new FrameDecoder();
    const out = new OutBuffer(1024);
    const conn: FakeConn = {
      socket,
      reply(requestId, r) {
        if (socket.destroyed) return;
        encodeClientResponse(
          out,
          r.ok ? { requestId, ok: true, value: r.value } : { requestId, ok: false, error: r.error },
        );
        socket.write(out.view().slice());
        out.clear();
      },
    };
    socket.on('data', (chunk: Buffer) => {
      node.chunks++;
      decoder.push(chunk);
      for (;;) {
        const frame = decoder.next();
        if (frame === null) return;
        if (frame instanceof FrameError) {
          socket.destroy();
          return;
        }
        if (frame.type === FrameType.Handshake) {
          // As PeerServer does: check the client's handshake, answer with ours.
          if (frame.handshake.role !== HandshakeRole.Client || frame.handshake.clusterId !== CLUSTER) {
            socket.destroy();
            return;
          }
          socket.write(helloBytes);
          continue;
        }
        if (frame.type !== FrameType.ClientRequest) {
          socket.destroy();
          return;
        }
        const req = decodeClientRequest(frame.body);
        if (req instanceof ClientFrameError) {
          socket.destroy();
          return;
        }
        // A client opens its session before its first write: answered here, not recorded.
        if (req.op === ClientOp.SessionRegister) {
          conn.reply(req.requestId, { ok: true, value: null });
          continue;
        }
        const kept: ClientRequest = {
          ...req,
          payload: req.payload.slice(),
          ...(req.session !== undefined ? { session: req.session.slice() } : {}),
        };
        node.requests.push(kept);
        const r = handle(kept, conn);
        if (r !== undefined) conn.reply(req.requestId, r);
      }
    });
  });
  await new Promise<void>((resolve) => node.server.listen(0, '127.0.0.1', resolve));
  const port = (node.server.address() as net.AddressInfo).port;
  (node as { address: string }).address = `127.0.0.1:${port}`;
  t.after(async () => {
    for (const s of node.sockets) s.destroy();
    await new Promise<void>((resolve) => node.server.close(() => resolve()));
  });
  return node;
}

/** A client that is closed when the test ends. */
function client(
  t: TestContext,
  endpoints: string[],
  options: Partial<ConstructorParameters<typeof RaftClient>[0]> = {},
): RaftClient {
  const c = new RaftClient({ endpoints, requestTimeoutMs: 5000, connectTimeoutMs: 1000, ...options });
  t.after(() => c.close());
  return c;
}

const text = new TextEncoder();
const untext = new TextDecoder();

/** Whether `req` is an apply: the client sends every apply in its session. */
function isApply(req: ClientRequest): boolean {
  return req.op === ClientOp.SessionApply;
}

/** Echoes an apply's command as a string; answers reads with the query. */
function echo(req: ClientRequest): Reply {
  if (isApply(req)) return { ok: true, value: untext.decode(req.payload) };
  if (req.op === ClientOp.SessionApplyBatch)
    return { ok: true, value: (req.commands ?? []).map((c) => untext.decode(c)) };
  if (req.op === ClientOp.Read)
    return {
      ok: true,
      value: { flags: req.flags, query: decodeValue(req.payload, 0, req.payload.byteLength) },
    };
  if (req.op === ClientOp.AddPeer || req.op === ClientOp.AddLearner || req.op === ClientOp.RemovePeer)
    // What a leader answers a membership change with: a configuration (here, saying what came).
    return { ok: true, value: { index: req.op, voters: [untext.decode(req.payload)], learners: [] } };
  return { ok: true, value: { op: req.op, payload: untext.decode(req.payload) } };
}

/** Resolves with how a promise settled, bounded so a hang fails the test instead of stalling it. */
async function settledWithin<T>(p: Promise<T>, ms: number): Promise<{ value?: T; error?: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not settled within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([
      p.then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      ),
      bound,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('RaftClient', () => {
  test('every op reaches the node with its payload and flags', async (t) => {
    const node = await fakeNode(t, echo);
    const c = client(t, [node.address]);
    await c.connect();
    assert.equal(c.connectedEndpoint, node.address);
    assert.equal(await c.apply(text.encode('x')), 'x');
    assert.deepEqual(await c.applyBatch([text.encode('a'), text.encode('bc'), new Uint8Array(0)]), [
      'a',
      'bc',
      '',
    ]);
    assert.deepEqual(await c.read({ k: 1 }, { consistency: 'lease' }), { flags: 1, query: { k: 1 } });
    assert.deepEqual(await c.read('q'), { flags: 0, query: 'q' });
    assert.deepEqual(await c.read('q', { consistency: 'stale' }), { flags: 2, query: 'q' });
    assert.deepEqual(await c.status(), { op: ClientOp.Status, payload: '' });
    assert.deepEqual(await c.transfer('n2'), { op: ClientOp.Transfer, payload: 'n2' });
    assert.deepEqual(await c.addPeer('n4=127.0.0.1:7004'), {
      index: ClientOp.AddPeer,
      voters: ['n4=127.0.0.1:7004'],
      learners: [],
    });
    assert.deepEqual(await c.addLearner('n5=127.0.0.1:7005'), {
      index: ClientOp.AddLearner,
      voters: ['n5=127.0.0.1:7005'],
      learners: [],
    });
    assert.deepEqual(await c.removePeer('n4'), { index: ClientOp.RemovePeer, voters: ['n4'], learners: [] });
    assert.deepEqual(await c.snapshot(), { op: ClientOp.Snapshot, payload: '' });
    assert.deepEqual(await c.statusOf(node.address), { op: ClientOp.Status, payload: '' });
    await assert.rejects(c.transfer(''), RangeError);
    assert.equal(node.connections, 2, 'one connection, plus one for statusOf');
  });

  test('1000 pipelined requests on one connection, answered in random order, sent in few writes', async (t) => {
    const N = 1000;
    const waiting: { id: number; conn: FakeConn; payload: string }[] = [];
    const node = await fakeNode(t, (req, conn) => {
      waiting.push({ id: req.requestId, conn, payload: untext.decode(req.payload) });
      if (waiting.length === N) {
        // Every request is in flight at once: answer them all, shuffled.
        for (let i = waiting.length - 1; i > 0; i--) {
          const j = Math.floor(Math.random() * (i + 1));
          [waiting[i], waiting[j]] = [waiting[j] as (typeof waiting)[0], waiting[i] as (typeof waiting)[0]];
        }
        for (const w of waiting) w.conn.reply(w.id, { ok: true, value: `r${w.payload}` });
      }
      return undefined;
    });
    const c = client(t, [node.address]);
    await c.connect();
    const chunksBefore = node.chunks;
    const calls: Promise<Value>[] = [];
    for (let i = 0; i < N; i++) calls.push(c.apply(text.encode(String(i))));
    const got = await settledWithin(Promise.all(calls), 5000);
    assert.equal(got.error, undefined);
    assert.deepEqual(
      got.value,
      calls.map((_, i) => `r${i}`),
    );
    assert.equal(node.connections, 1);
    assert.equal(new Set(node.requests.map((r) => r.requestId)).size, N, 'distinct request ids');
    // Issued in one turn, the requests leave in one write (TCP may split it into a few reads).
    assert.ok(node.chunks - chunksBefore < 50, `${node.chunks - chunksBefore} reads for ${N} requests`);
  });

  test('ERR_RAFT_NOT_LEADER with a leader address: the request is retried on the leader', async (t) => {
    const leader = await fakeNode(t, (req) => (isApply(req) ? { ok: true, value: 'from B' } : echo(req)), {
      nodeId: 'b',
    });
    const follower = await fakeNode(
      t,
      () => ({
        ok: false,
        error: {
          code: 'ERR_RAFT_NOT_LEADER',
          message: 'not the leader',
          leaderId: 'b',
          leaderAddress: leader.address,
        },
      }),
      { nodeId: 'a' },
    );
    const c = client(t, [follower.address]);
    assert.equal(await c.apply(text.encode('cmd')), 'from B');
    assert.equal(follower.requests.length, 1);
    assert.equal(leader.requests.length, 1);
    assert.equal(untext.decode(leader.requests[0]?.payload), 'cmd');
    assert.equal(c.connectedEndpoint, leader.address, 'later requests go to the leader');
    assert.equal(await c.apply(text.encode('again')), 'from B');
    assert.equal(follower.requests.length, 1);

    // Bounded: with no redirects allowed the caller gets the NotLeaderError and its hint
    // (a write, safe to send again, follows the leader until its deadline instead).
    const strict = client(t, [follower.address], { maxRedirects: 0 });
    const got = await settledWithin(strict.transfer('b'), 3000);
    assert.ok(got.error instanceof NotLeaderError, String(got.error));
    assert.ok(got.error instanceof RaftError);
    assert.equal(got.error.code, 'ERR_RAFT_NOT_LEADER');
    assert.equal(got.error.leaderId, 'b');
    assert.equal(got.error.leaderAddress, leader.address);
    assert.equal(got.error.message, 'not the leader');
  });

  test('ERR_RAFT_NOT_LEADER without a hint: the other endpoints are tried, a bounded number of times', async (t) => {
    const noHint = (): Reply => ({
      ok: false,
      error: { code: 'ERR_RAFT_NOT_LEADER', message: 'no leader known' },
    });
    const a = await fakeNode(t, noHint);
    const b = await fakeNode(t, echo);
    const c = client(t, [a.address, b.address]);
    assert.equal(await c.apply(text.encode('y')), 'y');
    assert.equal(c.connectedEndpoint, b.address);

    // Nobody leads: the request gives up after maxRedirects + 1 tries.
    const lonely = client(t, [a.address], { maxRedirects: 2 });
    const before = a.requests.length;
    const got = await settledWithin(lonely.transfer('n2'), 4000);
    assert.ok(got.error instanceof NotLeaderError, String(got.error));
    assert.equal(got.error.leaderAddress, null);
    assert.equal(a.requests.length - before, 3);

    // A write keeps looking for a leader until its deadline, every copy with the same seq.
    const patient = client(t, [a.address], { maxRedirects: 2, requestTimeoutMs: 1500 });
    const from = a.requests.length;
    const write = await settledWithin(patient.apply(text.encode('w')), 4000);
    assert.ok(write.error instanceof NotLeaderError, String(write.error));
    const copies = a.requests.slice(from);
    assert.ok(copies.length > 3, `${copies.length} tries`);
    const seqs = new Set(copies.map((r) => Buffer.from(r.session?.subarray(0, 24) ?? []).toString('hex')));
    assert.equal(seqs.size, 1, 'one client id and seq across the copies');
  });

  test('a request without an answer fails with ERR_RAFT_TIMEOUT', async (t) => {
    const node = await fakeNode(t, () => undefined);
    const c = client(t, [node.address], { requestTimeoutMs: 100 });
    const started = performance.now();
    const got = await settledWithin(c.apply(text.encode('lost')), 3000);
    assert.ok(got.error instanceof TimeoutError, String(got.error));
    assert.equal(got.error.code, 'ERR_RAFT_TIMEOUT');
    assert.match(got.error.message, /outcome is unknown/);
    assert.ok(performance.now() - started >= 90);
    // A late answer for the timed-out id is ignored; the connection stays usable.
    assert.equal(node.connections, 1);
  });

  test('connection loss fails reads in flight with ERR_RAFT_UNAVAILABLE; writes are sent again, same seq', async (t) => {
    let drop = true;
    const node = await fakeNode(t, (req, conn) => {
      if (drop && node.requests.length === 3) {
        drop = false;
        conn.socket.destroy();
        return undefined;
      }
      return drop ? undefined : echo(req);
    });
    const c = client(t, [node.address]);
    const inFlight = [c.apply(text.encode('1')), c.read('2'), c.apply(text.encode('3'))];
    const results = await Promise.all(inFlight.map((p) => settledWithin(p, 3000)));
    const read = results[1] as { error: Error };
    assert.ok(read.error instanceof UnavailableError, String(read.error));
    assert.equal(read.error.code, 'ERR_RAFT_UNAVAILABLE');
    assert.doesNotMatch(read.error.message, /outcome/, 'a read has no outcome to worry about');
    assert.deepEqual(
      [results[0]?.value, results[2]?.value],
      ['1', '3'],
      'the writes were sent again on a new connection and answered',
    );
    const header = (r: ClientRequest): string => Buffer.from(r.session ?? []).toString('hex', 0, 24);
    const writes = node.requests.filter(isApply);
    assert.equal(writes.length, 4, 'two writes, each sent twice');
    assert.equal(new Set(writes.map(header)).size, 2, 'a copy carries the seq of the first');
    assert.equal(await c.apply(text.encode('after')), 'after');
    assert.equal(node.connections, 2);
  });

  test('a write the node never answers is sent again after retryAfterMs, to the next endpoint', async (t) => {
    const silent = await fakeNode(t, () => undefined);
    const answering = await fakeNode(t, echo);
    const c = client(t, [silent.address, answering.address], { retryAfterMs: 200 });
    const got = await settledWithin(c.apply(text.encode('late')), 3000);
    assert.equal(got.value, 'late');
    assert.equal(silent.requests.length, 1);
    assert.equal(answering.requests.length, 1);
    assert.equal(
      Buffer.from(answering.requests[0]?.session ?? []).toString('hex', 0, 24),
      Buffer.from(silent.requests[0]?.session ?? []).toString('hex', 0, 24),
      'the same client id and seq',
    );
  });

  test('a write whose first copy went unanswered fails as of unknown outcome, whatever the last copy was told', async (t) => {
    // The first node takes the write and never answers (it may have applied it); the
    // second refuses every copy as not leader, until the deadline. Reporting that refusal
    // would tell the caller the write was not applied, and a caller that then writes again
    // (the chaos workload did) applies it twice.
    const silent = await fakeNode(t, () => undefined);
    const refusing = await fakeNode(t, (req) =>
      isApply(req) ? { ok: false, error: { code: 'ERR_RAFT_NOT_LEADER', message: 'not me' } } : echo(req),
    );
    const c = client(t, [silent.address, refusing.address], { retryAfterMs: 100, requestTimeoutMs: 1000 });
    await assert.rejects(
      c.apply(text.encode('w')),
      (e: unknown) =>
        e instanceof RaftError && e.code === 'ERR_RAFT_TIMEOUT' && /may or may not/.test(e.message),
    );
    assert.ok(refusing.requests.filter(isApply).length >= 1);
  });

  test('ERR_RAFT_SESSION_EXPIRED fails the write, and the next write opens a new session', async (t) => {
    let expire = true;
    const node = await fakeNode(t, (req) => {
      if (isApply(req) && expire) {
        expire = false;
        return { ok: false, error: { code: 'ERR_RAFT_SESSION_EXPIRED', message: 'gone' } };
      }
      return echo(req);
    });
    const c = client(t, [node.address]);
    await assert.rejects(
      c.apply(text.encode('a')),
      (e: unknown) => e instanceof RaftError && e.code === 'ERR_RAFT_SESSION_EXPIRED',
    );
    assert.equal(await c.apply(text.encode('b')), 'b');
    const [first, second] = node.requests.map((r) => Buffer.from(r.session ?? []).toString('hex', 0, 16));
    assert.notEqual(first, second, 'a new client id');
  });

  test('no endpoint reachable fails the request with ERR_RAFT_UNAVAILABLE', async (t) => {
    // A port that was just free: nothing listens there.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const c = client(t, [`127.0.0.1:${port}`], { requestTimeoutMs: 500 });
    const got = await settledWithin(c.apply(text.encode('x')), 3000);
    assert.ok(got.error instanceof UnavailableError, String(got.error));
  });

  test('a node of another cluster is refused', async (t) => {
    const node = await fakeNode(t, echo, { clusterId: 'other' });
    const c = client(t, [node.address]);
    const got = await settledWithin(c.connect(), 3000);
    assert.ok(got.error instanceof RaftError, String(got.error));
    assert.equal(got.error.code, 'ERR_RAFT_WRONG_CLUSTER');
    assert.match(got.error.message, /"other"/);
    const req = await settledWithin(c.apply(text.encode('x')), 3000);
    assert.equal((req.error as RaftError).code, 'ERR_RAFT_WRONG_CLUSTER');
    assert.equal(node.requests.length, 0);
  });

  test('errors come back as the classes of errors.ts', async (t) => {
    const node = await fakeNode(t, (req) =>
      req.op === ClientOp.Transfer
        ? { ok: false, error: { code: 'ERR_RAFT_BUSY', message: 'too many' } }
        : { ok: false, error: { code: 'ERR_RAFT_SOMETHING_NEW', message: 'new' } },
    );
    const c = client(t, [node.address]);
    await assert.rejects(
      c.transfer('n2'),
      (e: unknown) => e instanceof BusyError && e.message === 'too many',
    );
    await assert.rejects(
      c.status(),
      (e: unknown) => e instanceof RaftError && e.code === 'ERR_RAFT_SOMETHING_NEW' && e.message === 'new',
    );
  });

  test('close() fails waiting requests and later calls', async (t) => {
    const node = await fakeNode(t, () => undefined);
    const c = client(t, [node.address]);
    // Observed at once: the rejection comes while this test awaits close().
    const waiting = settledWithin(c.apply(text.encode('x')), 3000);
    await c.connect();
    await c.close();
    const got = await waiting;
    assert.equal((got.error as RaftError).code, 'ERR_RAFT_CLIENT_CLOSED');
    await assert.rejects(
      c.apply(text.encode('y')),
      (e: unknown) => (e as RaftError).code === 'ERR_RAFT_CLIENT_CLOSED',
    );
  });
});
