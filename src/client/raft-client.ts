/**
 * `RaftClient`: talks to a raftline cluster over the client protocol (`protocol.ts`,
 * "client frames"), the way braft's client talks to a braft group.
 *
 * One TCP connection to one node at a time. Many requests are in flight on it, each with
 * its own request id, and replies are matched by id in whatever order they come back.
 * Requests issued in the same event-loop turn are encoded into one buffer and leave in one
 * socket write, so a thousand concurrent applies cost a few syscalls, not a thousand.
 *
 * Leadership: a node that does not lead answers ERR_RAFT_NOT_LEADER with the leader's
 * address when it knows it; the client then moves to that node and sends the request
 * again (nothing was proposed on the follower, so this is safe even for an apply). With
 * no hint it tries the other endpoints after a short backoff. Both are bounded by
 * `maxRedirects`.
 *
 * Writes are exactly-once (Raft thesis §6.3, `client-session.ts`): the client opens a
 * session under a random id before its first write, and numbers every `apply` and
 * `applyBatch`; the cluster applies each number at most once and answers a copy with the
 * first one's result. So a write IS retried, with its number, until `requestTimeoutMs`:
 * after a lost connection, a node's ERR_RAFT_TIMEOUT, SHUTDOWN, UNAVAILABLE or BUSY, any
 * number of ERR_RAFT_NOT_LEADER, or no answer within `retryAfterMs` (then to the next
 * endpoint). A write whose session the cluster no longer has (idle past its session
 * timeout, or evicted by newer sessions) fails with ERR_RAFT_SESSION_EXPIRED, its outcome
 * unknown; the next write opens a new session.
 *
 * Failures: a request that gets no answer in `requestTimeoutMs` fails with
 * ERR_RAFT_TIMEOUT; a lost connection fails the other requests in flight on it with
 * ERR_RAFT_UNAVAILABLE (a membership change may have been made without its answer
 * arriving, and only the caller knows whether sending it again is safe). The next
 * request reconnects. Errors are the classes of `src/main/errors.ts`, rebuilt from the
 * `{ code, message }` the node sent, so `instanceof` and `code` both work.
 */

import type net from 'node:net';
import type { ReadConsistency } from '../main/coordinator.js';
import {
  AuthError,
  BusyError,
  errorFromRecord,
  ForbiddenError,
  NotLeaderError,
  ProposalRejectedError,
  RaftError,
  ShutdownError,
  TimeoutError,
  UnavailableError,
} from '../main/errors.js';
import { parseHostPort, parsePeerSpec } from '../shared/address.js';
import { ConnectorAuth, type ConnectorCredentials, type ConnectorStep, toSecret } from '../shared/auth.js';
import {
  type ClientErrorValue,
  ClientFrameError,
  ClientOp,
  clientOpName,
  decodeClientResponse,
  encodeClientReadRequest,
  encodeClientRequest,
  ReadConsistencyCode,
} from '../shared/client-codec.js';
import {
  FrameDecoder,
  type FrameDecoderOptions,
  FrameError,
  type Handshake,
  OutBuffer,
} from '../shared/message-codec.js';
import {
  CLIENT_BATCH_LENGTH_BYTES,
  CLIENT_REQUEST_FIXED_BYTES,
  DEFAULT_MAX_ENTRY_PAYLOAD_BYTES,
  DEFAULT_MAX_FRAME_BYTES,
  ENTRY_HEADER_BYTES,
  FRAME_HEADER_BYTES,
  FrameType,
  HandshakeRole,
  RAFT_MESSAGE_MAX_OVERHEAD_BYTES,
} from '../shared/protocol.js';
import { type ConnectorTls, connectToNode } from '../shared/tls-config.js';
import { encodedValueBytes, type Value } from '../shared/value-codec.js';
import { ClientSessionState } from './client-session.js';

/** The base class of every error a `RaftClient` rejects with (its subclasses are in `src/main/errors.ts`). */
export { RaftError } from '../main/errors.js';
/** What commands return and queries are. */
export type { Value } from '../shared/value-codec.js';

/** The cluster's configuration after a membership change, as the leader reports it. */
export interface ClusterConfiguration {
  /** The log index of the configuration entry that made it. */
  readonly index: number;
  /** Node ids that vote. */
  readonly voters: readonly string[];
  /** Node ids that receive the log without voting. */
  readonly learners: readonly string[];
}

/** How a `RaftClient` is set up. */
export interface RaftClientOptions {
  /** Nodes to contact, `host:port` each (`[::1]:7001` for IPv6). At least one. */
  readonly endpoints: readonly string[];
  /** The cluster's id; a node of another cluster is refused. Default `'raftline'`. */
  readonly clusterId?: string;
  /** How long a request may wait for its answer, redirects included. Default 10000. */
  readonly requestTimeoutMs?: number;
  /** How long connecting to one node (TCP and handshake) may take. Default 2000. */
  readonly connectTimeoutMs?: number;
  /** How many times one request may be sent elsewhere after ERR_RAFT_NOT_LEADER. Default 5. */
  readonly maxRedirects?: number;
  /** A write with no answer for this long is sent again, same seq, to the next endpoint. Default 3000. */
  readonly retryAfterMs?: number;
  /**
   * Largest frame sent or accepted, header included. Default `DEFAULT_MAX_FRAME_BYTES`, as
   * the node's: a larger request is refused here instead of making the node close the
   * connection under every request in flight.
   */
  readonly maxFrameBytes?: number;
  /**
   * The cluster secret (at least 16 bytes; trailing white space is cut), when the nodes
   * have one: the client proves it, and refuses a node that does not prove it back.
   * Default none. Read it from a file or the environment, never take it from a command line.
   */
  readonly secret?: string | Uint8Array;
  /**
   * The admin secret, when the nodes have one: without it, Transfer, AddPeer, AddLearner,
   * RemovePeer and Snapshot fail with ERR_RAFT_FORBIDDEN. Default none.
   */
  readonly adminSecret?: string | Uint8Array;
  /**
   * TLS, when the nodes listen with it: `ca` (PEM) is what a node's certificate must be
   * signed by; `cert` and `key` (PEM) are presented if given. Default plain TCP.
   */
  readonly tls?: {
    readonly ca: string | Uint8Array;
    readonly cert?: string | Uint8Array;
    readonly key?: string | Uint8Array;
  };
}

/** How a read is served. */
export interface ReadOptions {
  /** Default `'linearizable'`. */
  readonly consistency?: ReadConsistency;
}

const CONSISTENCY_CODES: Readonly<Record<ReadConsistency, ReadConsistencyCode>> = {
  linearizable: ReadConsistencyCode.Linearizable,
  lease: ReadConsistencyCode.Lease,
  stale: ReadConsistencyCode.Stale,
};

const NO_BYTES = new Uint8Array(0);
const utf8 = new TextEncoder();
const U32_MAX = 0xffff_ffff;
/**
 * Node errors after which a session op is sent again (same seq): the node did not apply
 * it, or may have, and a copy is answered with the first one's result either way.
 */
const RETRYABLE_FOR_SESSIONS: ReadonlySet<string> = new Set([
  'ERR_RAFT_TIMEOUT',
  'ERR_RAFT_SHUTDOWN',
  'ERR_RAFT_UNAVAILABLE',
  'ERR_RAFT_BUSY',
]);
/** The cluster no longer has the client's session (or the write's result). */
const SESSION_EXPIRED = 'ERR_RAFT_SESSION_EXPIRED';
/** First backoff before trying another endpoint without a leader hint; doubles per attempt. */
const BACKOFF_BASE_MS = 25;
/** Ceiling of that backoff: an election rarely takes longer. */
const BACKOFF_MAX_MS = 500;

/** One request from the call until it settles, across redirects. */
interface Pending {
  readonly op: ClientOp;
  readonly flags: number;
  readonly payload: Uint8Array;
  readonly commands: readonly Uint8Array[] | undefined;
  readonly query: Value;
  /** Frame size, checked against `maxFrameBytes` once, before the first send. */
  readonly frameBytes: number;
  readonly resolve: (value: Value) => void;
  readonly reject: (error: Error) => void;
  timer: NodeJS.Timeout | null;
  /** The connection it is in flight on, or null while (re)connecting or backing off. */
  conn: Connection | null;
  requestId: number;
  redirects: number;
  settled: boolean;
  /** Session ops: the 16-byte client id (register) or the 32-byte header (writes). */
  readonly session: Uint8Array | undefined;
  /** Writes: the session and seq they were numbered in. */
  readonly sess: ClientSessionState | null;
  readonly seq: number;
  /** When the request fails with ERR_RAFT_TIMEOUT (performance.now() ms). */
  readonly deadlineMs: number;
  /** Session ops: how many times it was sent again after a failure (for the backoff). */
  retries: number;
  /** Session ops: the failure that made it be sent again last; what it fails with at its deadline. */
  lastError: Error | null;
  /**
   * Session ops: a copy was sent and its fate is unknown (no answer, a lost connection, a
   * timeout). Then no later failure says the write was not applied: it fails as unknown.
   */
  maybeApplied: boolean;
}

/** One TCP connection to one node. */
interface Connection {
  readonly endpoint: string;
  readonly socket: net.Socket;
  readonly decoder: FrameDecoder;
  /** Frames encoded this turn, written in one `socket.write` by `flush`. */
  readonly out: OutBuffer;
  /** Requests sent on this connection and not yet answered, by request id. */
  readonly inFlight: Map<number, Pending>;
  /** True once the node's handshake has been checked. */
  ready: boolean;
  /** Takes no new requests (the leader is elsewhere); closed once `inFlight` is empty. */
  retiring: boolean;
  closed: boolean;
  flushScheduled: boolean;
}

/**
 * A client of a raftline cluster. See the module comment for how requests, leadership
 * changes and failures are handled. Safe to call from many places at once: every method
 * may be called before `connect()` (they connect on demand) and concurrently.
 */
export class RaftClient {
  private readonly endpoints: readonly string[];
  private readonly clusterId: string;
  private readonly requestTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxRedirects: number;
  private readonly retryAfterMs: number;
  /** The client session writes are numbered in; replaced when the cluster says it expired. */
  private session = new ClientSessionState();
  private readonly maxFrameBytes: number;
  private readonly maxEntryPayloadBytes: number;
  private readonly credentials: ConnectorCredentials;
  private readonly tls: ConnectorTls | null;
  /** The endpoint the next connection tries first: the last one that worked, or a leader hint. */
  private target: string;
  private current: Connection | null = null;
  private connecting: Promise<Connection> | null = null;
  /** Every open connection, the current one and retiring ones, for `close()`. */
  private readonly connections = new Set<Connection>();
  private nextRequestId = 1;
  private closed = false;

  constructor(options: RaftClientOptions) {
    if (options.endpoints.length === 0) throw new RangeError('RaftClient needs at least one endpoint');
    // Parsed now so that a typo fails at construction, naming the bad endpoint.
    for (const e of options.endpoints) parseHostPort(e);
    this.endpoints = [...options.endpoints];
    this.clusterId = options.clusterId ?? 'raftline';
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 2000;
    this.maxRedirects = options.maxRedirects ?? 5;
    this.retryAfterMs = options.retryAfterMs ?? 3000;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    // No Raft entries travel to a client, but FrameDecoder insists that a frame can hold
    // one largest entry: give it the entry limit that the frame limit implies.
    this.maxEntryPayloadBytes = Math.min(
      DEFAULT_MAX_ENTRY_PAYLOAD_BYTES,
      this.maxFrameBytes - RAFT_MESSAGE_MAX_OVERHEAD_BYTES - ENTRY_HEADER_BYTES,
    );
    // Built once here so that a bad limit throws now, not on the first connection.
    new FrameDecoder(this.decoderOptions());
    for (const [name, v] of [
      ['requestTimeoutMs', this.requestTimeoutMs],
      ['connectTimeoutMs', this.connectTimeoutMs],
      ['maxRedirects', this.maxRedirects],
      ['retryAfterMs', this.retryAfterMs],
    ] as const) {
      if (!Number.isFinite(v) || v < 0) throw new RangeError(`${name} ${v} is not a non-negative number`);
    }
    this.target = this.endpoints[0] as string;
    const t = options.tls;
    const pem = (v: string | Uint8Array): Uint8Array => (typeof v === 'string' ? Buffer.from(v) : v);
    this.tls =
      t === undefined
        ? null
        : {
            ca: pem(t.ca),
            ...(t.cert !== undefined ? { cert: pem(t.cert) } : {}),
            ...(t.key !== undefined ? { key: pem(t.key) } : {}),
          };
    this.credentials = {
      secret: options.secret === undefined ? null : toSecret(options.secret, 'RaftClient option secret'),
      adminSecret:
        options.adminSecret === undefined
          ? null
          : toSecret(options.adminSecret, 'RaftClient option adminSecret'),
    };
  }

  /** The endpoint of the node the client is connected to, or null. */
  get connectedEndpoint(): string | null {
    return this.current !== null && !this.current.closed ? this.current.endpoint : null;
  }

  /**
   * Connects to the first reachable endpoint (trying them in order). Optional: requests
   * connect on demand. Rejects with the endpoints' failures when none answers.
   */
  async connect(): Promise<void> {
    await this.connection();
  }

  /** Proposes `command`; resolves with the state machine's result once it is applied. */
  apply(command: Uint8Array): Promise<Value> {
    return this.write(ClientOp.SessionApply, command, undefined);
  }

  /**
   * Proposes `commands` as ONE log entry (the BatchCommitter): one replication and one
   * fsync for all of them, applied one by one in order. Resolves with their results, one
   * per command.
   */
  applyBatch(commands: readonly Uint8Array[]): Promise<Value[]> {
    return this.write(ClientOp.SessionApplyBatch, NO_BYTES, commands) as Promise<Value[]>;
  }

  /** Runs `query` against the state machine, served as `consistency` asks (default linearizable). */
  read(query: Value, options: ReadOptions = {}): Promise<Value> {
    const consistency = options.consistency ?? 'linearizable';
    const code = CONSISTENCY_CODES[consistency];
    if (code === undefined) return Promise.reject(new RangeError(`unknown read consistency ${consistency}`));
    return this.request(ClientOp.Read, code, NO_BYTES, undefined, query);
  }

  /** The status of the node the client is connected to (connecting first if needed). */
  status(): Promise<Value> {
    return this.request(ClientOp.Status, 0, NO_BYTES, undefined, undefined);
  }

  /**
   * The status of the node at `endpoint` (`host:port`), over a connection of its own that
   * is closed afterwards: it does not move the client's connection.
   */
  async statusOf(endpoint: string): Promise<Value> {
    if (this.closed) throw closedError();
    parseHostPort(endpoint);
    const conn = await this.open(endpoint);
    try {
      const { pending, promise } = this.newPending(ClientOp.Status, 0, NO_BYTES, undefined, undefined);
      // No redirects: the answer must come from this node.
      pending.redirects = this.maxRedirects;
      this.send(pending, conn);
      this.flush(conn);
      return await promise;
    } finally {
      conn.socket.end();
    }
  }

  /** Asks the leader to hand leadership to node `id`. */
  async transfer(id: string): Promise<Value> {
    return this.request(ClientOp.Transfer, 0, textPayload(id, 'node id'), undefined, undefined);
  }

  /**
   * Adds node `spec` (`id=host:port`, where the node listens) as a voter: the leader adds
   * it as a learner, streams it the log (or a snapshot) and promotes it once it has caught
   * up. Resolves with the configuration once the promotion has committed. A malformed spec
   * rejects with an `AddressError` before anything is sent. The node should already run,
   * started empty (`join: true`, `raftline serve --join`): until it answers it cannot catch up.
   *
   * Rejects with ERR_RAFT_INVALID_CONF_CHANGE (the change does not apply to the configuration),
   * ERR_RAFT_CONF_CHANGE_PENDING (another change is in progress: retry later) or
   * ERR_RAFT_TIMEOUT (the outcome is then unknown: look at the configuration). Follows
   * the leader like `apply`.
   */
  async addPeer(spec: string): Promise<ClusterConfiguration> {
    return this.changeMembership(ClientOp.AddPeer, peerSpecPayload(spec));
  }

  /**
   * Adds node `spec` (`id=host:port`) as a learner: it receives the log but never votes
   * and does not count towards a quorum. Resolves with the configuration once committed.
   * Errors as `addPeer`.
   */
  async addLearner(spec: string): Promise<ClusterConfiguration> {
    return this.changeMembership(ClientOp.AddLearner, peerSpecPayload(spec));
  }

  /**
   * Removes voter or learner `id` from the configuration. Resolves with the configuration
   * once committed. Errors as `addPeer`.
   */
  async removePeer(id: string): Promise<ClusterConfiguration> {
    return this.changeMembership(ClientOp.RemovePeer, textPayload(id, 'node id'));
  }

  /** Asks the connected node to take a snapshot now. */
  snapshot(): Promise<Value> {
    return this.request(ClientOp.Snapshot, 0, NO_BYTES, undefined, undefined);
  }

  /**
   * Closes every connection. Requests still waiting fail with ERR_RAFT_CLIENT_CLOSED (an
   * apply's outcome is then unknown); later calls fail the same way. Resolves once the
   * sockets are closed.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const waits: Promise<void>[] = [];
    for (const conn of this.connections) {
      waits.push(new Promise((resolve) => conn.socket.once('close', () => resolve())));
      this.fail(conn, closedError());
    }
    this.current = null;
    await Promise.all(waits);
  }

  // ---------------------------------------------------------------- requests

  private async changeMembership(op: ClientOp, payload: Uint8Array): Promise<ClusterConfiguration> {
    const value = await this.request(op, 0, payload, undefined, undefined);
    const conf = configurationOf(value);
    if (conf === null) {
      throw new RaftError(
        'ERR_RAFT_BAD_RESPONSE',
        `the node answered ${clientOpName(op)} with ${describeValue(value)}, not a configuration { index, voters, learners }`,
      );
    }
    return conf;
  }

  /** A write in the client session: numbered now, sent once the session is registered. */
  private write(
    op: ClientOp.SessionApply | ClientOp.SessionApplyBatch,
    payload: Uint8Array,
    commands: readonly Uint8Array[] | undefined,
  ): Promise<Value> {
    if (this.closed) return Promise.reject(closedError());
    const sess = this.session;
    const { seq, header } = sess.begin();
    let created: { pending: Pending; promise: Promise<Value> };
    try {
      created = this.newPending(op, 0, payload, commands, undefined, header, sess, seq);
    } catch (err) {
      sess.answered(seq);
      return Promise.reject(err);
    }
    const p = created.pending;
    if (sess.registered) this.dispatch(p);
    else {
      this.register(sess).then(
        () => {
          if (!p.settled) this.dispatch(p);
        },
        (err: Error) => this.settle(p, err),
      );
    }
    return created.promise;
  }

  /** Opens `sess` on the cluster, once; a failed registration is tried again by the next write. */
  private register(sess: ClientSessionState): Promise<void> {
    sess.registration ??= this.request(
      ClientOp.SessionRegister,
      0,
      NO_BYTES,
      undefined,
      undefined,
      sess.clientId,
      sess,
    ).then(
      () => {
        sess.registered = true;
        sess.lastFailure = null;
      },
      (err: unknown) => {
        sess.registration = null;
        throw err;
      },
    );
    return sess.registration;
  }

  private request(
    op: ClientOp,
    flags: number,
    payload: Uint8Array,
    commands: readonly Uint8Array[] | undefined,
    query: Value,
    session?: Uint8Array,
    sess: ClientSessionState | null = null,
  ): Promise<Value> {
    if (this.closed) return Promise.reject(closedError());
    let created: { pending: Pending; promise: Promise<Value> };
    try {
      created = this.newPending(op, flags, payload, commands, query, session, sess);
    } catch (err) {
      return Promise.reject(err);
    }
    this.dispatch(created.pending);
    return created.promise;
  }

  /** Sizes and checks a request, and starts its timeout. Throws for one that cannot be sent. */
  private newPending(
    op: ClientOp,
    flags: number,
    payload: Uint8Array,
    commands: readonly Uint8Array[] | undefined,
    query: Value,
    session?: Uint8Array,
    sess: ClientSessionState | null = null,
    seq = 0,
  ): { pending: Pending; promise: Promise<Value> } {
    let frameBytes = FRAME_HEADER_BYTES + CLIENT_REQUEST_FIXED_BYTES + (session?.byteLength ?? 0);
    if (commands !== undefined) {
      frameBytes += CLIENT_BATCH_LENGTH_BYTES;
      for (const c of commands) frameBytes += CLIENT_BATCH_LENGTH_BYTES + c.byteLength;
    } else if (op === ClientOp.Read) {
      frameBytes += encodedValueBytes(query); // throws TypeError for an unencodable query
    } else frameBytes += payload.byteLength;
    if (frameBytes > this.maxFrameBytes) {
      throw new RaftError(
        'ERR_RAFT_REQUEST_TOO_LARGE',
        `a request of ${frameBytes} bytes exceeds the ${this.maxFrameBytes}-byte frame limit`,
      );
    }
    let resolve!: (value: Value) => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<Value>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const pending: Pending = {
      op,
      flags,
      payload,
      commands,
      query,
      frameBytes,
      resolve,
      reject,
      timer: null,
      conn: null,
      requestId: 0,
      redirects: 0,
      settled: false,
      session,
      sess,
      seq,
      deadlineMs: performance.now() + this.requestTimeoutMs,
      retries: 0,
      maybeApplied: false,
      lastError: null,
    };
    this.armTimer(pending);
    return { pending, promise };
  }

  /**
   * Starts `p`'s timer: its deadline, or for a session op (safe to send again) whichever
   * comes first of that and `retryAfterMs`, when it is sent again elsewhere.
   */
  private armTimer(p: Pending): void {
    const left = p.deadlineMs - performance.now();
    const retry = p.session !== undefined && this.retryAfterMs < left;
    const wait = retry ? this.retryAfterMs : left;
    // Which one fired is decided here, not from the clock then: a timer may fire a
    // millisecond early, and the deadline's must not be taken for a retry.
    p.timer = setTimeout(() => this.onTimer(p, retry), Math.max(0, wait));
  }

  /** `p`'s timer fired: it fails at its deadline; before it, a session op is sent again elsewhere. */
  private onTimer(p: Pending, retry: boolean): void {
    p.timer = null;
    if (!retry) {
      const late = `no answer to ${clientOpName(p.op)} in ${this.requestTimeoutMs} ms${outcomeNote(p.op)}`;
      this.settle(p, p.lastError ?? p.sess?.lastFailure ?? new TimeoutError(late));
      return;
    }
    // The node has been silent on this request for retryAfterMs: try the next one.
    const conn = p.conn;
    if (conn !== null) p.maybeApplied = true;
    if (conn !== null) this.moveTo(this.endpointAfter(conn.endpoint), conn);
    this.detach(p);
    this.armTimer(p);
    this.dispatch(p);
  }

  /** Takes `p` off the connection it is in flight on (its answer there, if any, is ignored). */
  private detach(p: Pending): void {
    const conn = p.conn;
    if (conn === null) return;
    conn.inFlight.delete(p.requestId);
    p.conn = null;
    this.maybeRetire(conn);
  }

  /**
   * `p` failed with `error` where sending it again is safe for a session op (the cluster
   * applies a write once, whatever the copies): it is sent again after a backoff, until its
   * deadline. Any other request fails with `error`.
   */
  private lose(p: Pending, error: Error): void {
    // Only a failure that may pass is worth waiting out: not a wrong cluster or a refusal.
    const transient = error instanceof RaftError && RETRYABLE_FOR_SESSIONS.has(error.code);
    if (p.session === undefined || !transient || this.closed || performance.now() >= p.deadlineMs) {
      this.settle(p, error);
      return;
    }
    if ((error as RaftError).code !== 'ERR_RAFT_BUSY') p.maybeApplied = true;
    this.detach(p);
    p.lastError = error;
    // A write waiting for its session's registration fails, at its deadline, as that does.
    if (p.op === ClientOp.SessionRegister && p.sess !== null) p.sess.lastFailure = error;
    p.retries++;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (p.retries - 1));
    setTimeout(() => {
      if (!p.settled) this.dispatch(p);
    }, delay);
  }

  /** Sends `p` on the current connection, connecting first when there is none. */
  private dispatch(p: Pending): void {
    // A request coming back from a backoff after close() is not in any connection's
    // in-flight map, so close() could not fail it: fail it here.
    if (this.closed) {
      this.settle(p, closedError());
      return;
    }
    const conn = this.current;
    // The common case stays synchronous, so requests made in one turn share one write.
    if (conn?.ready && !conn.closed && !conn.retiring) {
      this.send(p, conn);
      return;
    }
    this.connection().then(
      (c) => {
        if (!p.settled) this.send(p, c);
      },
      (err: Error) => this.lose(p, err),
    );
  }

  /** Registers `p` on `conn` under a fresh request id and encodes it for this turn's write. */
  private send(p: Pending, conn: Connection): void {
    if (p.settled) return;
    if (conn.closed) {
      this.lose(p, lostError(conn, p.op));
      return;
    }
    // The acknowledged-below point as of this send: answers that came since count.
    if (p.sess !== null && p.seq > 0 && p.session !== undefined) p.sess.stamp(p.session);
    let id = this.nextRequestId;
    // u32 ids wrap after four billion requests; skip one still in flight, however unlikely.
    while (conn.inFlight.has(id)) id = id === U32_MAX ? 1 : id + 1;
    this.nextRequestId = id === U32_MAX ? 1 : id + 1;
    try {
      if (p.op === ClientOp.Read) encodeClientReadRequest(conn.out, id, p.flags, p.query);
      else
        encodeClientRequest(conn.out, {
          op: p.op,
          flags: p.flags,
          requestId: id,
          payload: p.payload,
          ...(p.commands !== undefined ? { commands: p.commands as Uint8Array[] } : {}),
          ...(p.session !== undefined ? { session: p.session } : {}),
        });
    } catch (err) {
      // Nothing was written: the encoders leave the buffer unchanged when they throw.
      this.settle(p, err as Error);
      return;
    }
    p.requestId = id;
    p.conn = conn;
    conn.inFlight.set(id, p);
    if (!conn.flushScheduled) {
      conn.flushScheduled = true;
      // After the current microtasks too: requests issued from resolved promises in the
      // same turn join this write.
      setImmediate(() => this.flush(conn));
    }
  }

  private flush(conn: Connection): void {
    conn.flushScheduled = false;
    if (conn.closed || conn.out.length === 0) return;
    // socket.write keeps the buffer until the kernel has it: hand it a copy, one per turn,
    // and reuse the OutBuffer right away.
    conn.socket.write(conn.out.view().slice());
    conn.out.clear();
  }

  /** Settles `p` once: with a value, or with an error. Clears its timer and its in-flight slot. */
  private settle(p: Pending, error: Error | null, value?: Value): void {
    if (p.settled) return;
    p.settled = true;
    // Answered, or given up on: either way the cluster may forget its result.
    p.sess?.answered(p.seq);
    if (p.timer !== null) clearTimeout(p.timer);
    p.timer = null;
    const conn = p.conn;
    if (conn !== null) {
      conn.inFlight.delete(p.requestId);
      p.conn = null;
      this.maybeRetire(conn);
    }
    if (error !== null) p.reject(p.maybeApplied ? outcomeUnknown(p, error) : error);
    else p.resolve(value);
  }

  /** An answer arrived on `conn`. */
  private onResponse(
    conn: Connection,
    requestId: number,
    ok: boolean,
    value: Value,
    error: ClientErrorValue | null,
  ): void {
    const p = conn.inFlight.get(requestId);
    // Unknown: it timed out already, and the node answered anyway.
    if (p === undefined) return;
    if (ok) {
      this.settle(p, null, value);
      return;
    }
    const e = error as ClientErrorValue;
    // A session op may follow the leader for as long as its deadline allows.
    if (e.code === 'ERR_RAFT_NOT_LEADER' && (p.redirects < this.maxRedirects || p.session !== undefined)) {
      if (p.session !== undefined) p.lastError = errorFromWire(e);
      this.redirect(p, conn, e.leaderAddress);
      return;
    }
    if (RETRYABLE_FOR_SESSIONS.has(e.code)) {
      this.lose(p, errorFromWire(e));
      return;
    }
    if (e.code === SESSION_EXPIRED && p.sess === this.session) this.session = new ClientSessionState();
    this.settle(p, errorFromWire(e));
  }

  /**
   * Sends `p` again elsewhere after ERR_RAFT_NOT_LEADER from `conn`: to the leader when the
   * node named it, else to the next endpoint after a backoff (an election may be running).
   */
  private redirect(p: Pending, conn: Connection, leaderAddress: string | undefined): void {
    p.redirects++;
    conn.inFlight.delete(p.requestId);
    p.conn = null;
    let hint: string | null = null;
    if (leaderAddress !== undefined && leaderAddress !== conn.endpoint) {
      try {
        parseHostPort(leaderAddress);
        hint = leaderAddress;
      } catch {
        // A hint we cannot parse is no hint.
      }
    }
    const next = hint ?? this.endpointAfter(conn.endpoint);
    this.moveTo(next, conn);
    // Past maxRedirects (a session op, following the leader to its deadline), hints wait
    // the backoff too: two nodes naming each other must not be bounced between at once.
    if (hint !== null && p.redirects <= this.maxRedirects) this.dispatch(p);
    else {
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(p.redirects - 1, 16));
      setTimeout(() => {
        if (!p.settled) this.dispatch(p);
      }, delay);
    }
    this.maybeRetire(conn);
  }

  /** Makes `endpoint` the one new requests go to; `from` (the node that redirected) retires. */
  private moveTo(endpoint: string, from: Connection): void {
    if (this.target === endpoint && this.current !== from) return; // another request moved already
    this.target = endpoint;
    if (this.current === from) {
      from.retiring = true;
      this.current = null;
    }
  }

  /** The configured endpoint after `endpoint`, round robin; the first when it is not one of them. */
  private endpointAfter(endpoint: string): string {
    const i = this.endpoints.indexOf(endpoint);
    return this.endpoints[(i + 1) % this.endpoints.length] as string;
  }

  /** Closes a retiring connection once nothing is in flight on it. */
  private maybeRetire(conn: Connection): void {
    if (conn.retiring && conn.inFlight.size === 0 && !conn.closed) {
      this.flush(conn);
      conn.socket.end();
    }
  }

  // ---------------------------------------------------------------- connections

  /** The current connection, or one being opened: to `target` first, then every other endpoint. */
  private connection(): Promise<Connection> {
    const conn = this.current;
    if (conn?.ready && !conn.closed && !conn.retiring) return Promise.resolve(conn);
    if (this.connecting !== null) return this.connecting;
    const attempt = this.connectAny().finally(() => {
      if (this.connecting === attempt) this.connecting = null;
    });
    this.connecting = attempt;
    return attempt;
  }

  private async connectAny(): Promise<Connection> {
    const order = [this.target, ...this.endpoints.filter((e) => e !== this.target)];
    const failures: RaftError[] = [];
    for (const endpoint of order) {
      if (this.closed) throw closedError();
      try {
        const conn = await this.open(endpoint);
        if (this.closed) {
          conn.socket.destroy();
          throw closedError();
        }
        this.current = conn;
        this.target = endpoint;
        return conn;
      } catch (err) {
        failures.push(err as RaftError);
      }
    }
    // One failure, or the same one everywhere (a wrong cluster id), is reported as it is;
    // mixed failures as "unavailable", listing each.
    const first = failures[0] as RaftError;
    if (failures.every((f) => f.code === first.code)) {
      if (failures.length === 1) throw first;
      throw rebuild(first.code, `no endpoint could be used: ${failures.map((f) => f.message).join('; ')}`);
    }
    throw new UnavailableError(`no endpoint could be used: ${failures.map((f) => f.message).join('; ')}`);
  }

  private decoderOptions(): FrameDecoderOptions {
    return {
      maxFrameBytes: this.maxFrameBytes,
      maxEntryPayloadBytes: Math.max(0, this.maxEntryPayloadBytes),
      clientResponses: true,
    };
  }

  /** Opens a connection to `endpoint` and checks the node's handshake. Rejects with a RaftError. */
  private open(endpoint: string): Promise<Connection> {
    return new Promise<Connection>((resolve, reject) => {
      const { host, port } = parseHostPort(endpoint);
      const { socket, ready } = connectToNode(host, port, this.tls);
      socket.setNoDelay(true);
      const conn: Connection = {
        endpoint,
        socket,
        decoder: new FrameDecoder(this.decoderOptions()),
        out: new OutBuffer(16 * 1024),
        inFlight: new Map(),
        ready: false,
        retiring: false,
        closed: false,
        flushScheduled: false,
      };
      this.connections.add(conn);
      let opening = true;
      const refuse = (error: RaftError): void => {
        if (!opening) return;
        opening = false;
        clearTimeout(timer);
        socket.destroy();
        reject(error);
      };
      const timer = setTimeout(
        () => refuse(new UnavailableError(`${endpoint}: no handshake within ${this.connectTimeoutMs} ms`)),
        this.connectTimeoutMs,
      );
      // The handshake: role client, our cluster id, no node id (a client has none), and
      // our proofs once the node proved itself (`src/shared/auth.ts`).
      const auth = new ConnectorAuth(
        { role: HandshakeRole.Client, clusterId: this.clusterId, nodeId: '', electionTimeoutMs: 0 },
        this.credentials,
      );
      socket.on(ready, () => {
        socket.write(auth.helloBytes);
      });
      socket.on('data', (chunk: Buffer) => {
        conn.decoder.push(chunk);
        for (;;) {
          if (conn.closed) return;
          const frame = conn.decoder.next();
          if (frame === null) return;
          if (frame instanceof FrameError) {
            const error = new UnavailableError(`${endpoint}: protocol error: ${frame.code} ${frame.message}`);
            if (opening) refuse(error);
            else this.breakConnection(conn, error);
            return;
          }
          if (frame.type === FrameType.Handshake || frame.type === FrameType.Auth) {
            let step: ConnectorStep;
            if (frame.type === FrameType.Auth) step = auth.onAuth(frame.auth.proof);
            else {
              const wrong = nodeHandshakeError(endpoint, this.clusterId, frame.handshake);
              if (wrong !== null) return void refuse(wrong);
              step = auth.onHandshake(frame.handshake);
            }
            if (step.kind === 'refuse') return void refuse(new AuthError(`${endpoint}: ${step.reason}`));
            if (step.kind === 'wait') continue;
            if (step.reply.byteLength > 0) socket.write(step.reply);
            opening = false;
            clearTimeout(timer);
            conn.ready = true;
            resolve(conn);
            continue;
          }
          // The decoder built with clientResponses yields nothing else after the handshake.
          if (frame.type !== FrameType.ClientResponse) return;
          const resp = decodeClientResponse(frame.body);
          if (resp instanceof ClientFrameError) {
            this.breakConnection(
              conn,
              new UnavailableError(`${endpoint}: protocol error: ${resp.code} ${resp.message}`),
            );
            return;
          }
          if (resp.ok) this.onResponse(conn, resp.requestId, true, resp.value, null);
          else this.onResponse(conn, resp.requestId, false, undefined, resp.error);
        }
      });
      let socketError: string | null = null;
      socket.on('error', (err: NodeJS.ErrnoException) => {
        // Reported through 'close', which always follows; kept to say why.
        socketError =
          err.code === 'ECONNREFUSED'
            ? 'connection refused (is a node listening there?)'
            : (err.code ?? err.message);
      });
      socket.on('close', () => {
        conn.closed = true;
        this.connections.delete(conn);
        if (this.current === conn) this.current = null;
        if (opening) {
          refuse(
            new UnavailableError(`${endpoint}: ${socketError ?? 'connection closed before the handshake'}`),
          );
        }
        for (const p of [...conn.inFlight.values()]) this.lose(p, lostError(conn, p.op));
      });
    });
  }

  /** Closes `conn` after a protocol error; its requests fail as on any lost connection. */
  private breakConnection(conn: Connection, error: RaftError): void {
    if (this.current === conn) this.current = null;
    for (const p of [...conn.inFlight.values()]) {
      this.settle(p, new UnavailableError(`${error.message}${outcomeNote(p.op)}`));
    }
    conn.socket.destroy();
  }

  /** Fails everything on `conn` with `error` and closes it. */
  private fail(conn: Connection, error: RaftError): void {
    for (const p of [...conn.inFlight.values()]) this.settle(p, error);
    conn.closed = true;
    conn.socket.destroy();
  }
}

// ------------------------------------------------------------------ errors

/** Why a node's handshake answer is refused (another cluster, not a node), or null. */
function nodeHandshakeError(endpoint: string, clusterId: string, hs: Handshake): RaftError | null {
  if (hs.clusterId !== clusterId) {
    return new RaftError(
      'ERR_RAFT_WRONG_CLUSTER',
      `${endpoint} is a node of cluster ${JSON.stringify(hs.clusterId)}, not ${JSON.stringify(clusterId)}`,
    );
  }
  if (hs.role !== HandshakeRole.Peer)
    return new UnavailableError(`${endpoint} answered as a client, not as a node`);
  return null;
}

/** What a caller learns about a write that lost its answer. */
/**
 * How a session write fails once an earlier copy of it may have been applied: as of
 * unknown outcome (ERR_RAFT_TIMEOUT), whatever the last copy was told. A refusal of the
 * last copy (not leader, busy, session expired) says nothing of the earlier ones, and a
 * caller that took it for "not applied" and wrote again could apply the write twice.
 */
function outcomeUnknown(p: Pending, error: Error): Error {
  if (error instanceof TimeoutError) return error;
  return new TimeoutError(
    `${clientOpName(p.op)} failed (${(error as RaftError).code ?? 'error'}: ${error.message}) after an earlier copy went unanswered${outcomeNote(p.op)}`,
  );
}

function outcomeNote(op: ClientOp): string {
  switch (op) {
    case ClientOp.Apply:
    case ClientOp.ApplyBatch:
    case ClientOp.SessionApply:
    case ClientOp.SessionApplyBatch:
      return '; the command may or may not have been applied (its outcome is unknown)';
    case ClientOp.AddPeer:
    case ClientOp.AddLearner:
    case ClientOp.RemovePeer:
      return '; the membership change may or may not have been made (its outcome is unknown: look at the configuration)';
    default:
      return '';
  }
}

function lostError(conn: Connection, op: ClientOp): UnavailableError {
  return new UnavailableError(`connection to ${conn.endpoint} lost${outcomeNote(op)}`);
}

function closedError(): RaftError {
  return new RaftError('ERR_RAFT_CLIENT_CLOSED', 'the client is closed');
}

/** UTF-8 of a peer spec `id=host:port`, refusing a malformed one (AddressError) before it is sent. */
function peerSpecPayload(spec: string): Uint8Array {
  if (typeof spec !== 'string') throw new TypeError('the peer spec must be a string: id=host:port');
  parsePeerSpec(spec);
  return utf8.encode(spec);
}

/** `v` as a configuration `{ index, voters, learners }`, or null when it has another shape. */
function configurationOf(v: Value): ClusterConfiguration | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Uint8Array) return null;
  const { index, voters, learners } = v;
  const ids = (x: Value | undefined): x is string[] =>
    Array.isArray(x) && x.every((id) => typeof id === 'string');
  const at = typeof index === 'bigint' ? Number(index) : index;
  if (typeof at !== 'number' || !Number.isSafeInteger(at) || at < 0) return null;
  if (!ids(voters) || !ids(learners)) return null;
  return { index: at, voters: [...voters], learners: [...learners] };
}

/** A short description of an unexpected answer, for an error message. */
function describeValue(v: Value): string {
  const text = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x)) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** UTF-8 of a text argument, refusing an empty one before it is sent. */
function textPayload(text: string, what: string): Uint8Array {
  if (typeof text !== 'string' || text.length === 0) throw new RangeError(`the ${what} is empty`);
  return utf8.encode(text);
}

/** The `errors.ts` class for `code`, with the node's message. */
function rebuild(code: string, message: string): RaftError {
  switch (code) {
    case 'ERR_RAFT_BUSY':
      return new BusyError(message);
    case 'ERR_RAFT_SHUTDOWN':
      return new ShutdownError(message);
    case 'ERR_RAFT_TIMEOUT':
      return new TimeoutError(message);
    case 'ERR_RAFT_UNAVAILABLE':
      return new UnavailableError(message);
    case 'ERR_RAFT_PROPOSAL_DROPPED':
      return new ProposalRejectedError(message);
    case 'ERR_RAFT_FORBIDDEN':
      return new ForbiddenError(message);
    case 'ERR_RAFT_AUTH':
      return new AuthError(message);
    default:
      return errorFromRecord({ code, message });
  }
}

/** Rebuilds the error a node sent, as the class of `errors.ts` its code names. */
export function errorFromWire(e: ClientErrorValue): RaftError {
  if (e.code === 'ERR_RAFT_NOT_LEADER') {
    const err = new NotLeaderError(e.leaderId ?? null, e.leaderAddress ?? null);
    // The node's own wording, not one rebuilt here.
    err.message = e.message;
    return err;
  }
  return rebuild(e.code, e.message);
}
