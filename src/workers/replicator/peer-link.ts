/**
 * The one outbound TCP connection from this node to one peer (DESIGN.md: the replicator
 * "owns the outbound TCP connection to one peer"). It carries this node's RAFT_MESSAGE
 * frames to the peer and nothing back: the peer's answers travel on the peer's own
 * outbound link to us, so each direction of a pair of nodes has exactly one writer.
 *
 * Life of a connection:
 * 1. connect, `setNoDelay(true)` (Raft messages are latency-bound; Nagle would hold a
 *    heartbeat back behind an unacknowledged AppendEntries);
 * 2. write our HANDSHAKE (role peer, cluster id, our node id, election timeout, a fresh
 *    nonce): always the first bytes;
 * 3. wait for the peer's HANDSHAKE answer (protocol.ts: "the accepting side checks it and
 *    answers with its own, so both sides check the cluster id") and check that it names
 *    our cluster and the peer we meant to reach: an address that points at the wrong node
 *    would otherwise deliver our messages to a node they are not for; with a cluster
 *    secret, check the peer's proof too and send ours (`src/shared/auth.ts`);
 * 4. connected: `send()` writes frames until the connection closes;
 * 5. after any close or error, reconnect after a capped, jittered exponential backoff.
 *
 * Raft tolerates message loss, so nothing is queued while disconnected and little while
 * congested: `send()` refuses, the caller counts the peer as unreachable, and Raft's own
 * retries (heartbeats, probes) repair the gap once the link is back.
 */
import type net from 'node:net';
import {
  ConnectorAuth,
  type ConnectorCredentials,
  type ConnectorStep,
  NO_CREDENTIALS,
} from '../../shared/auth.js';
import { FrameDecoder, FrameError } from '../../shared/message-codec.js';
import { FrameType, HandshakeRole } from '../../shared/protocol.js';
import { type ConnectorTls, connectToNode } from '../../shared/tls-config.js';

/** What `PeerLink` logs through; pino's `logger.info(obj, msg)` fits. */
export interface PeerLinkLogger {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
}

/** Configuration of a `PeerLink`. */
export interface PeerLinkOptions {
  /** The peer's listen address. */
  readonly host: string;
  readonly port: number;
  /** Our cluster id, sent in the handshake; the peer's answer must name the same. */
  readonly clusterId: string;
  /** Our node id, sent in the handshake. */
  readonly nodeId: string;
  /** The node id we expect at host:port; its handshake answer must name it. */
  readonly peerId: string;
  /** The cluster secret to prove and to demand from the peer. Default none. */
  readonly credentials?: ConnectorCredentials;
  /** Our election timeout, announced in the handshake (the peer compares it with its own). Default 0. */
  readonly electionTimeoutMs?: number;
  /** TLS to the peer: its certificate checked against the CA, ours presented. Default plain TCP. */
  readonly tls?: ConnectorTls | null;
  /** First reconnect delay before jitter. Default 50. */
  readonly minBackoffMs?: number;
  /** Largest reconnect delay. Default 2000. */
  readonly maxBackoffMs?: number;
  /** How long TCP connect plus the peer's handshake answer may take. Default 1000. */
  readonly connectTimeoutMs?: number;
  /**
   * Most bytes the socket may hold unsent. A `send()` that would go beyond is refused and
   * the link reports congestion (`onCongestion(true)`, one log line): a peer that reads
   * slowly must not make this process buffer without bound. A `send()` on an empty buffer
   * is always accepted, so one frame larger than this still leaves. Default 64 MiB.
   */
  readonly maxBufferedBytes?: number;
  /** Source of the backoff jitter, in [0, 1). Default `Math.random`; tests inject their own. */
  readonly rng?: () => number;
  /** Default: logs nothing. */
  readonly logger?: PeerLinkLogger;
  /** Called each time a connection has been verified (the peer's handshake checked): `send()` now writes. */
  readonly onConnect?: () => void;
  /**
   * Called when a connected link goes down (only after `onConnect`: failed attempts are
   * counted and logged, not reported here), including on `stop()`. `send()` now refuses.
   */
  readonly onDisconnect?: (reason: string) => void;
  /** Called when the link becomes congested (true: sends are being dropped) and when it drains (false). */
  readonly onCongestion?: (congested: boolean) => void;
}

/** Default `minBackoffMs`. */
export const DEFAULT_MIN_BACKOFF_MS = 50;
/** Default `maxBackoffMs`. */
export const DEFAULT_MAX_BACKOFF_MS = 2000;
/** Default `connectTimeoutMs`. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 1000;
/** Default `maxBufferedBytes`: 64 MiB, the default largest frame, so any one frame fits. */
export const DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024 * 1024;

/**
 * Delay before reconnect attempt number `attempt` (0 for the first retry): the base
 * `min(maxMs, minMs * 2^attempt)` with "equal jitter", i.e. uniformly in [base/2, base).
 * Jitter keeps the nodes of a cluster that lost a peer together from reconnecting in
 * lockstep; keeping half the base keeps the backoff growing, which full jitter does not
 * guarantee. `rand` is in [0, 1). Never above `maxMs`.
 */
export function backoffDelayMs(attempt: number, minMs: number, maxMs: number, rand: number): number {
  // Clamp the exponent: 2^1100 is Infinity, and the cap is reached long before anyway.
  const base = Math.min(maxMs, minMs * 2 ** Math.min(Math.max(0, attempt), 52));
  return base * (0.5 + rand / 2);
}

const NO_LOGGER: PeerLinkLogger = { info() {}, warn() {} };

/** Where a link is in its life; see the module comment. */
type LinkState = 'idle' | 'connecting' | 'handshaking' | 'connected' | 'waiting' | 'stopped';

/**
 * The outbound link to one peer. Create it, `start()` it, `send()` encoded frames while
 * `connected`, `stop()` it at shutdown. Single-threaded: use it from the thread that
 * created it. Timers are not `unref()`'d: the owner keeps the process alive and `stop()`
 * clears every timer and socket.
 */
export class PeerLink {
  /** The peer this link reaches. */
  readonly peerId: string;
  /** Connections that were verified (handshake answered and checked). Read-only for callers. */
  connects = 0;
  /** TCP connections attempted, verified or not. Read-only for callers. */
  connectAttempts = 0;
  /** `send()` calls refused (disconnected or congested); each may have held several frames. */
  sendsDropped = 0;
  /** Bytes of the refused sends. */
  bytesDropped = 0;
  /** Bytes accepted by `send()` and handed to the socket. */
  bytesSent = 0;

  private readonly host: string;
  private readonly port: number;
  private readonly clusterId: string;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly connectTimeoutMs: number;
  private readonly maxBufferedBytes: number;
  private readonly rng: () => number;
  private readonly logger: PeerLinkLogger;
  private readonly onConnect: (() => void) | undefined;
  private readonly onDisconnect: ((reason: string) => void) | undefined;
  private readonly onCongestion: ((congested: boolean) => void) | undefined;
  private readonly nodeId: string;
  private readonly credentials: ConnectorCredentials;
  private readonly electionTimeoutMs: number;
  private readonly tls: ConnectorTls | null;
  /** The current connection's exchange of handshakes and proofs; a fresh nonce each time. */
  private auth: ConnectorAuth | null = null;

  private state: LinkState = 'idle';
  private socket: net.Socket | null = null;
  /** Decodes the peer's handshake answer; a fresh one per connection. */
  private decoder: FrameDecoder | null = null;
  /** Why the current socket is being closed, when we close it; else the socket's error. */
  private closeReason: string | null = null;
  /** Connect timeout while connecting or handshaking; reconnect delay while waiting. */
  private timer: NodeJS.Timeout | null = null;
  /** Failed attempts since the last verified connection: the backoff exponent. */
  private attempt = 0;
  /** The last failure reason logged, so a peer that stays down is logged once, not per retry. */
  private lastLoggedFailure: string | null = null;
  private congestedNow = false;
  private stopWaiters: (() => void)[] = [];

  constructor(options: PeerLinkOptions) {
    this.host = options.host;
    this.port = options.port;
    this.clusterId = options.clusterId;
    this.peerId = options.peerId;
    this.minBackoffMs = options.minBackoffMs ?? DEFAULT_MIN_BACKOFF_MS;
    this.maxBackoffMs = options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.rng = options.rng ?? Math.random;
    this.logger = options.logger ?? NO_LOGGER;
    this.onConnect = options.onConnect;
    this.onDisconnect = options.onDisconnect;
    this.onCongestion = options.onCongestion;
    if (!(this.minBackoffMs > 0 && this.maxBackoffMs >= this.minBackoffMs)) {
      throw new RangeError(`backoff ${this.minBackoffMs}..${this.maxBackoffMs} ms: need 0 < min <= max`);
    }
    if (!(this.connectTimeoutMs > 0))
      throw new RangeError(`connectTimeoutMs ${this.connectTimeoutMs} must be > 0`);
    if (!(this.maxBufferedBytes > 0))
      throw new RangeError(`maxBufferedBytes ${this.maxBufferedBytes} must be > 0`);
    this.nodeId = options.nodeId;
    this.credentials = options.credentials ?? NO_CREDENTIALS;
    this.electionTimeoutMs = options.electionTimeoutMs ?? 0;
    this.tls = options.tls ?? null;
    // Throws RangeError for an id that cannot be encoded: a configuration bug, reported at once.
    this.newAuth();
  }

  private newAuth(): ConnectorAuth {
    return new ConnectorAuth(
      {
        role: HandshakeRole.Peer,
        clusterId: this.clusterId,
        nodeId: this.nodeId,
        electionTimeoutMs: this.electionTimeoutMs,
      },
      this.credentials,
    );
  }

  /** True while a verified connection is up: `send()` writes. */
  get connected(): boolean {
    return this.state === 'connected';
  }

  /** True while sends are refused because the socket holds `maxBufferedBytes` unsent. */
  get congested(): boolean {
    return this.congestedNow;
  }

  /** Bytes written to the socket and not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.socket === null ? 0 : this.socket.writableLength;
  }

  /** Starts connecting; from now on the link keeps reconnecting until `stop()`. Calling it again does nothing. */
  start(): void {
    if (this.state === 'stopped')
      throw new Error(`peer link to ${this.peerId} was stopped; create a new one`);
    if (this.state !== 'idle') return;
    this.connect();
  }

  /**
   * Writes `bytes`, one or more whole encoded frames back to back, on the connection.
   * Never split one frame across calls (either call may be refused); see `sendv`.
   *
   * Returns false, writing nothing, while not connected or while congested: the message
   * is lost, which Raft tolerates; the caller treats the peer as unreachable. Nothing is
   * queued for a later connection.
   *
   * Ownership: when send returns true the link owns `bytes` (the socket writes from them,
   * no copy is made): the caller must not modify them until `onWritten` has been called,
   * or ever if it passes none. `onWritten` is called exactly once, with null once the
   * bytes are handed to the kernel, or with the error if the connection died first; then
   * the caller may reuse the buffer (e.g. `OutBuffer.clear()`). When send returns false
   * the caller keeps the bytes and `onWritten` is never called.
   */
  send(bytes: Uint8Array, onWritten?: (error: Error | null) => void): boolean {
    const socket = this.writableSocket(bytes.byteLength);
    if (socket === null) return false;
    this.bytesSent += bytes.byteLength;
    if (onWritten === undefined) socket.write(bytes);
    else socket.write(bytes, (error) => onWritten(error ?? null));
    return true;
  }

  /**
   * Like `send`, for bytes that lie in several buffers, e.g. a RAFT_MESSAGE head from
   * `encodeRaftMessageHead` and its entry records copied from the log window. All parts
   * are accepted or none, so a frame is never cut in two: two `send` calls for the halves
   * of one frame could see the first accepted and the second refused (congestion), and the
   * peer would then read the next frame's bytes as the rest of this one. The parts are
   * written in order, corked into one write. Ownership of every part as in `send`;
   * `onWritten` is called once, after the last part.
   */
  sendv(parts: readonly Uint8Array[], onWritten?: (error: Error | null) => void): boolean {
    let total = 0;
    for (const part of parts) total += part.byteLength;
    const socket = this.writableSocket(total);
    if (socket === null) return false;
    this.bytesSent += total;
    socket.cork();
    const last = parts.length - 1;
    for (let i = 0; i < last; i++) socket.write(parts[i] as Uint8Array);
    // Writes complete in order, so the last one's callback means all are done (or failed).
    if (last < 0) {
      if (onWritten !== undefined) queueMicrotask(() => onWritten(null));
    } else if (onWritten === undefined) socket.write(parts[last] as Uint8Array);
    else socket.write(parts[last] as Uint8Array, (error) => onWritten(error ?? null));
    socket.uncork();
    return true;
  }

  /**
   * The socket to write `byteCount` bytes on, or null when they must be dropped (counted,
   * and congestion reported on its first occurrence).
   */
  private writableSocket(byteCount: number): net.Socket | null {
    const socket = this.socket;
    // destroyed: we closed it (a protocol error) and its 'close' event has not run yet.
    if (this.state !== 'connected' || socket === null || socket.destroyed) return this.drop(byteCount);
    const queued = socket.writableLength;
    if (queued > 0 && queued + byteCount > this.maxBufferedBytes) {
      if (!this.congestedNow) {
        this.congestedNow = true;
        this.logger.warn(
          { peer: this.peerId, bufferedBytes: queued, maxBufferedBytes: this.maxBufferedBytes },
          'peer link congested: dropping sends until the socket drains',
        );
        this.onCongestion?.(true);
      }
      return this.drop(byteCount);
    }
    // The buffer has room again: 'drain' only fires after a write above the socket's
    // high-water mark, which a small maxBufferedBytes may never reach.
    if (this.congestedNow) this.uncongest(true);
    return socket;
  }

  /**
   * Closes the connection and cancels every timer; no reconnect follows. Resolves once
   * the socket is closed. A connected link reports `onDisconnect('stopped')`.
   */
  stop(): Promise<void> {
    const wasConnected = this.state === 'connected';
    this.state = 'stopped';
    this.clearTimer();
    const socket = this.socket;
    if (wasConnected) this.onDisconnect?.('stopped');
    if (socket === null) return Promise.resolve();
    return new Promise((resolve) => {
      this.stopWaiters.push(resolve);
      this.closeReason = 'stopped';
      socket.destroy();
    });
  }

  private connect(): void {
    this.timer = null;
    this.connectAttempts++;
    this.state = 'connecting';
    this.closeReason = null;
    this.decoder = new FrameDecoder({ expectHandshake: true });
    const auth = this.newAuth();
    this.auth = auth;
    const { socket, ready } = connectToNode(this.host, this.port, this.tls);
    this.socket = socket;
    socket.setNoDelay(true);
    // Nothing flows back on this connection, so a dead peer is otherwise only noticed
    // when the kernel gives up retransmitting (minutes); keepalive probes notice sooner.
    socket.setKeepAlive(true, 5000);
    this.timer = setTimeout(
      () => this.fail(socket, 'timeout: no connection and handshake answer'),
      this.connectTimeoutMs,
    );
    // Per-connection closures, not per-message ones: each binds the socket it belongs to,
    // so a late event from an old socket cannot disturb its successor.
    socket.once(ready, () => {
      if (this.socket !== socket) return;
      this.state = 'handshaking';
      socket.write(auth.helloBytes);
    });
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('drain', () => {
      if (this.socket === socket && this.congestedNow) this.uncongest(true);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (this.socket === socket && this.closeReason === null) this.closeReason = error.code ?? error.message;
    });
    socket.on('close', () => this.onClose(socket));
  }

  /** Bytes from the peer: only its handshake answer is expected, anything else is a protocol error. */
  private onData(socket: net.Socket, chunk: Buffer): void {
    if (this.socket !== socket) return;
    if (this.state !== 'handshaking' || this.decoder === null) {
      this.fail(socket, 'protocol error: the peer sent bytes after its handshake');
      return;
    }
    this.decoder.push(chunk);
    for (;;) {
      const frame = this.decoder.next();
      if (frame === null) return;
      if (frame instanceof FrameError) {
        this.fail(socket, `protocol error: bad handshake answer (${frame.code})`);
        return;
      }
      const auth = this.auth as ConnectorAuth;
      let step: ConnectorStep;
      if (frame.type === FrameType.Auth) step = auth.onAuth(frame.auth.proof);
      else if (frame.type !== FrameType.Handshake) {
        // Unreachable: the decoder refuses a first frame that is not a handshake.
        this.fail(socket, 'protocol error: the peer answered with a message before its handshake');
        return;
      } else {
        const hs = frame.handshake;
        if (hs.clusterId !== this.clusterId) {
          this.fail(socket, `refused: the peer is in cluster ${JSON.stringify(hs.clusterId)}`);
          return;
        }
        if (hs.role !== HandshakeRole.Peer || hs.nodeId !== this.peerId) {
          this.fail(
            socket,
            `refused: the node at this address is ${JSON.stringify(hs.nodeId)}, not the expected peer`,
          );
          return;
        }
        step = auth.onHandshake(hs);
      }
      if (step.kind === 'refuse') {
        this.fail(socket, step.reason);
        return;
      }
      if (step.kind === 'wait') continue;
      if (this.decoder.bufferedBytes > 0) {
        this.fail(socket, 'protocol error: the peer sent bytes after its handshake');
        return;
      }
      if (step.reply.byteLength > 0) socket.write(step.reply);
      break;
    }
    this.clearTimer();
    this.decoder = null;
    this.auth = null;
    this.state = 'connected';
    this.connects++;
    this.logger.info(
      { peer: this.peerId, address: `${this.host}:${this.port}`, attempts: this.attempt + 1 },
      'peer link up',
    );
    this.attempt = 0;
    this.lastLoggedFailure = null;
    this.onConnect?.();
  }

  private onClose(socket: net.Socket): void {
    if (this.socket !== socket) return;
    this.socket = null;
    this.decoder = null;
    this.clearTimer();
    const previous = this.state;
    if (previous === 'stopped') {
      for (const resolve of this.stopWaiters.splice(0)) resolve();
      return;
    }
    const reason =
      this.closeReason ??
      (previous === 'connected'
        ? 'closed by the peer'
        : previous === 'handshaking'
          ? 'closed by the peer before its handshake answer (did it refuse us?)'
          : 'closed before connecting');
    this.state = 'waiting';
    // A new connection starts with an empty buffer; not logged as a drain, the disconnect is logged.
    if (this.congestedNow) this.uncongest(false);
    if (previous === 'connected') {
      this.logger.warn({ peer: this.peerId, reason }, 'peer link down; reconnecting');
      this.lastLoggedFailure = reason;
      this.onDisconnect?.(reason);
      // onDisconnect may have stopped the link.
      if ((this.state as LinkState) === 'stopped') return;
    } else if (reason !== this.lastLoggedFailure) {
      // Logged when the failure changes, not on every retry: a peer down for an hour is one line.
      this.logger.warn(
        { peer: this.peerId, address: `${this.host}:${this.port}`, reason },
        'cannot reach peer; retrying with backoff',
      );
      this.lastLoggedFailure = reason;
    }
    const delay = backoffDelayMs(this.attempt, this.minBackoffMs, this.maxBackoffMs, this.rng());
    this.attempt++;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  /** Closes `socket` for `reason`; the 'close' event then schedules the reconnect. */
  private fail(socket: net.Socket, reason: string): void {
    if (this.socket !== socket) return;
    this.closeReason = reason;
    socket.destroy();
  }

  private drop(byteCount: number): null {
    this.sendsDropped++;
    this.bytesDropped += byteCount;
    return null;
  }

  private uncongest(log: boolean): void {
    this.congestedNow = false;
    if (log) this.logger.info({ peer: this.peerId, sendsDropped: this.sendsDropped }, 'peer link drained');
    this.onCongestion?.(false);
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }
}
