/**
 * The inbound side of the node's transport: the TCP server on the node's listen address.
 * Every other node's `PeerLink` to us ends here, and so do client connections and a
 * leader's snapshot streams: they are told apart by the role in the first frame's
 * handshake, so one port serves all three.
 *
 * Per connection: a `FrameDecoder` expecting a handshake first; the handshake must name our
 * cluster (a node of another cluster is refused, DESIGN.md "On the wire") and is answered
 * with ours, so the connecting side checks us too. After that a peer connection carries
 * only RAFT_MESSAGE frames, each from the node that shook hands and to us, delivered to
 * `onMessage` synchronously in arrival order. We never send anything else on a peer
 * connection: our replies travel on our own outbound `PeerLink` to that peer.
 *
 * With a cluster secret (`secrets`), a connection is also challenged (`src/shared/auth.ts`):
 * our answer carries our proof, and the connector's AUTH frame must carry its own before
 * anything it sends is served. A failed proof closes the connection, is counted
 * (`authFailures`) and logged at most once per `AUTH_LOG_INTERVAL_MS`, with the count.
 *
 * Each peer's handshake also names its election timeout. A leader's lease assumes no
 * voter elects a new leader sooner than its own timeout runs out; a peer with another
 * timeout breaks that, and `leaseReadsSafe` turns false until it goes (DESIGN.md, "Reads").
 *
 * Anything wrong with a connection (a malformed frame, a wrong cluster, a message from an
 * impostor) closes that connection only, with a log line; it never throws out of a socket
 * handler, so one bad peer or a port scanner cannot crash the node.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { HostPort } from '../shared/address.js';
import {
  checkConnector,
  connectorPolicyRefusal,
  type ListenerSecrets,
  listenerAnswer,
  listenerDemand,
  NO_SECRETS,
} from '../shared/auth.js';
import {
  type AuthProofs,
  type DecodedRaftMessageFrame,
  FrameDecoder,
  FrameError,
  type Handshake,
} from '../shared/message-codec.js';
import {
  DEFAULT_MAX_ENTRY_PAYLOAD_BYTES,
  DEFAULT_MAX_FRAME_BYTES,
  FrameType,
  HandshakeRole,
} from '../shared/protocol.js';
import { createRateLimitedLog, type RateLimitedLog } from '../shared/rate-limited-log.js';
import { serverTlsOptions, type TlsMaterial } from '../shared/tls-config.js';

/** What `PeerServer` logs through; pino's `logger.info(obj, msg)` fits. */
export interface PeerServerLogger {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
}

/** Configuration of a `PeerServer`. */
export interface PeerServerOptions {
  /** Address to listen on. */
  readonly host: string;
  /** Port to listen on; 0 lets the OS choose (see `listen()`'s result). */
  readonly port: number;
  /** Our cluster id: a handshake naming another is refused. */
  readonly clusterId: string;
  /** Our node id: sent in our handshake answer; every message received must be addressed to it. */
  readonly nodeId: string;
  /** Largest frame accepted, header included. Default `DEFAULT_MAX_FRAME_BYTES`. */
  readonly maxFrameBytes?: number;
  /** Largest entry payload accepted. Default `DEFAULT_MAX_ENTRY_PAYLOAD_BYTES`. */
  readonly maxEntryPayloadBytes?: number;
  /** How long a new connection may take to send its handshake (and proof) before it is closed. Default 5000. */
  readonly handshakeTimeoutMs?: number;
  /**
   * Most connections open at once, of every role and those still shaking hands; one more
   * is closed as soon as it is accepted. Clients may not take the last
   * `PEER_RESERVED_CONNECTIONS`. Default `DEFAULT_MAX_CONNECTIONS`.
   */
  readonly maxConnections?: number;
  /**
   * Set as the idle timeout (`socket.setTimeout`) of every client connection handed over;
   * the client handler closes it on 'timeout' if no request is in flight. 0: none (default).
   */
  readonly clientIdleTimeoutMs?: number;
  /** The secrets connections must prove. Default none: the cluster id is the only check. */
  readonly secrets?: ListenerSecrets;
  /**
   * Our election timeout, announced in our handshake answer and compared with each peer's
   * (`leaseReadsSafe`). Default 0: not compared.
   */
  readonly electionTimeoutMs?: number;
  /**
   * TLS on the listen port (`src/shared/tls-config.ts`): peers and snapshot streams must
   * present a certificate signed by its CA; a plain connection is refused. Default none.
   */
  readonly tls?: TlsMaterial | null;
  /** Default: logs nothing. */
  readonly logger?: PeerServerLogger;
  /**
   * Receives every RAFT_MESSAGE from a verified peer, synchronously, in the order the
   * connection delivered them. `frame.message.entries[i].data` and `frame.entryRecords`
   * are views into the received bytes (no copy): keep them as long as needed, but note
   * that a small view keeps its whole read chunk (up to 64 KiB) alive; copy what is kept
   * long. If it throws, the error is logged and that connection is closed.
   */
  readonly onMessage: (frame: DecodedRaftMessageFrame, fromPeer: string) => void;
  /**
   * Takes over a connection whose handshake has role client and our cluster id; our
   * handshake answer has already been written. From then on the server no longer reads
   * the socket: the callee attaches its own 'data' listener before returning (the socket
   * stays flowing, so a chunk arriving with no listener would be lost) and decodes with
   * `decoder`, which may already hold bytes that arrived behind the handshake (call
   * `decoder.next()` before waiting for more). The server still destroys the socket on
   * `close()`. `access.admin`: the client may run admin operations (it proved the admin
   * secret, or none is configured). Without this option client connections are refused.
   */
  readonly onClientConnection?: (
    socket: net.Socket,
    handshake: Handshake,
    decoder: FrameDecoder,
    access: ClientAccess,
  ) => void;
  /**
   * Takes over a connection whose handshake has role snapshot (a leader streaming a
   * snapshot to us, `src/main/snapshot-receiver.ts`), our cluster id and another node's
   * id; our handshake answer has already been written. The hand-over works as for
   * `onClientConnection`: attach a 'data' listener before returning, and drain `decoder`
   * first, since the leader sends its Offer right behind its handshake. If it throws, the
   * error is logged and the connection closed. Without this option snapshot streams are
   * refused.
   */
  readonly onSnapshotConnection?: (socket: net.Socket, handshake: Handshake, decoder: FrameDecoder) => void;
}

/** What a client connection may do, and what it is told of the transport. */
export interface ClientAccess {
  /** Transfer, AddPeer, AddLearner, RemovePeer and Snapshot are allowed. */
  readonly admin: boolean;
  /** The transport's part of the node's status, added to a Status answer. */
  readonly transportStatus?: () => TransportStatus;
}

/** A peer whose election timeout differs from ours (see `leaseReadsSafe`). */
export interface TimeoutMismatch {
  readonly id: string;
  readonly electionTimeoutMs: number;
}

/** Who may join, as a node's status reports it. */
export interface TransportStatus {
  /** A cluster secret is configured: every connection must prove it. */
  readonly secret: boolean;
  /** An admin secret is configured: admin operations need it. */
  readonly adminSecret: boolean;
  /** The listen port speaks TLS. */
  readonly tls: boolean;
  /** Connections that failed the TLS handshake, since start. */
  readonly tlsFailures: number;
  /** Connections refused for a missing or wrong proof, since start. */
  readonly authFailures: number;
  /** Connections refused at the handshake for any reason, since start. */
  readonly connectionsRefused: number;
  /** False while some peer has another election timeout: 'lease' reads then go through ReadIndex. */
  readonly leaseReadsSafe: boolean;
  readonly electionTimeoutMismatches: readonly TimeoutMismatch[];
  /** Connections open now on the listen port, of every role. */
  readonly openConnections: number;
  /** Connections closed at once for `maxConnections`, since start. */
  readonly connectionsOverLimit: number;
}

/** Failed proofs are logged at most once per this period, with the count of the others. */
export const AUTH_LOG_INTERVAL_MS = 10_000;

/** How long a refused connection may take to read our last words before it is destroyed. */
const REFUSAL_LINGER_MS = 1000;

/** Default `handshakeTimeoutMs`. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;

/** Default `maxConnections`: the usual `ulimit -n`. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/**
 * Connections of `maxConnections` that clients may not take: however many clients connect,
 * the peers (one link each way per peer) and a leader's snapshot stream still get in, or a
 * client flood would cut the node off from its cluster.
 */
export const PEER_RESERVED_CONNECTIONS = 16;
/**
 * Refusals that a remote end can cause at will (over the limit, malformed, no handshake,
 * wrong cluster) are logged at most once per this period over all keys and remotes, with
 * the count of the others: a flood from many addresses must not flood the log.
 */
export const REFUSAL_LOG_INTERVAL_MS = 1000;

/**
 * The highest term a Raft message may carry. A node adopts any higher term it hears of
 * (from anyone that shook hands with the cluster id) and later campaigns at that term + 1:
 * from a term of 2^53-1, which the wire format allows, the increment leaves the safe
 * integers and the node crashes at its next election (a frame it cannot encode), at
 * every restart after that (the term is persisted), and so do the nodes it told. No
 * cluster comes within 2^32 of the limit by holding elections (one a second would take
 * 136 years), so a message claiming such a term is refused like one from an impostor.
 */
export const MAX_ACCEPTED_TERM = Number.MAX_SAFE_INTEGER - 2 ** 32;

/** The same warning from the same remote host is logged at most once per this period. */
const WARN_REPEAT_MS = 60_000;
/** Bound of the rate limiter's memory: a scan from many hosts must not grow it. */
const WARN_KEYS_MAX = 256;

const NO_LOGGER: PeerServerLogger = { info() {}, warn() {} };

/** One accepted socket, until it closes or is handed to the client handler. */
interface Connection {
  readonly socket: net.Socket;
  readonly decoder: FrameDecoder;
  /** `address:port` of the remote end, for logs. */
  readonly remote: string;
  /** The peer's node id once its handshake was accepted; null before. */
  peerId: string | null;
  /** Closes a connection that does not send its handshake (and proof) in time. */
  handshakeTimer: NodeJS.Timeout | null;
  /** While its AUTH frame is awaited: its handshake and our answer. */
  awaitingAuth: { readonly hs: Handshake; readonly ours: Handshake } | null;
}

/**
 * The node's TCP server for peer (and later client) connections. `listen()`, then frames
 * flow to `onMessage`; `close()` at shutdown. Counters are read-only for callers.
 */
export class PeerServer {
  /** Connections whose handshake was accepted (peers and clients). */
  connectionsAccepted = 0;
  /** Connections refused at the handshake: other cluster, our own node id, unserved role, timeout, failed proof. */
  connectionsRefused = 0;
  /** Connections refused for a missing or wrong proof of a secret (counted in `connectionsRefused` too). */
  authFailures = 0;
  /** Connections that failed the TLS handshake (counted in `connectionsRefused` too). */
  tlsFailures = 0;
  /** RAFT_MESSAGE frames delivered to `onMessage`. */
  framesReceived = 0;
  /** Connections closed at once because `maxConnections` were open (clients: the client share). */
  connectionsOverLimit = 0;
  /** Connections closed for a malformed frame (`FrameError`). */
  frameErrors = 0;
  /**
   * Connections closed for a well-formed frame that breaks the protocol (wrong `from`/`to`,
   * a term above `MAX_ACCEPTED_TERM`), or a throwing `onMessage`.
   */
  protocolErrors = 0;

  private readonly options: PeerServerOptions;
  private readonly maxFrameBytes: number;
  private readonly maxEntryPayloadBytes: number;
  private readonly handshakeTimeoutMs: number;
  private readonly maxConnections: number;
  private readonly clientIdleTimeoutMs: number;
  /** Client connections handed over and still open. */
  private readonly clients = new Set<net.Socket>();
  /** Every warning about a refused or broken connection goes through it (`REFUSAL_LOG_INTERVAL_MS`). */
  private readonly refusalLog: RateLimitedLog;
  private readonly logger: PeerServerLogger;
  private readonly secrets: ListenerSecrets;
  /** The listen port speaks TLS. */
  private readonly tlsOn: boolean;
  private readonly electionTimeoutMs: number;
  private readonly authLog: RateLimitedLog;
  /** Peers whose last handshake named an election timeout other than ours, with it. */
  private readonly timeoutMismatches = new Map<string, number>();
  private readonly server: net.Server;
  /** Every open socket, including handed-over client sockets, so `close()` can destroy them. */
  private readonly sockets = new Set<net.Socket>();
  /** The current connection of each peer: a peer has one link to us, so a newer one supersedes. */
  private readonly peers = new Map<string, Connection>();
  /** Rate limiter of repeated warnings: key → when last logged, and how many were not. */
  private readonly warned = new Map<string, { at: number; suppressed: number }>();
  private listening = false;
  /** `close()` was called: connections going away now are no failures of theirs. */
  private closing = false;

  constructor(options: PeerServerOptions) {
    this.options = options;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxEntryPayloadBytes = options.maxEntryPayloadBytes ?? DEFAULT_MAX_ENTRY_PAYLOAD_BYTES;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    if (!Number.isInteger(this.maxConnections) || this.maxConnections <= PEER_RESERVED_CONNECTIONS) {
      throw new RangeError(
        `maxConnections must be an integer above ${PEER_RESERVED_CONNECTIONS}, got ${this.maxConnections}`,
      );
    }
    this.clientIdleTimeoutMs = options.clientIdleTimeoutMs ?? 0;
    this.logger = options.logger ?? NO_LOGGER;
    this.refusalLog = createRateLimitedLog(this.logger, REFUSAL_LOG_INTERVAL_MS);
    // Built once here so that inconsistent limits throw now, not on the first connection.
    new FrameDecoder({ maxFrameBytes: this.maxFrameBytes, maxEntryPayloadBytes: this.maxEntryPayloadBytes });
    this.secrets = options.secrets ?? NO_SECRETS;
    this.electionTimeoutMs = options.electionTimeoutMs ?? 0;
    this.authLog = createRateLimitedLog(this.logger, AUTH_LOG_INTERVAL_MS);
    // Throws now for an id that cannot be encoded, not on the first connection.
    listenerAnswer(NO_SECRETS, this.answerFields(), {
      role: HandshakeRole.Peer,
      clusterId: options.clusterId,
      nodeId: options.nodeId,
    });
    const tlsMaterial = options.tls ?? null;
    this.tlsOn = tlsMaterial !== null;
    if (tlsMaterial === null) this.server = net.createServer((socket) => this.onConnection(socket));
    else {
      this.server = tls.createServer(serverTlsOptions(tlsMaterial, this.handshakeTimeoutMs), (socket) =>
        this.onConnection(socket),
      );
      // A plain connection, a certificate the CA did not sign, a scanner: counted and
      // logged at a bounded rate, never thrown.
      this.server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
        this.connectionsRefused++;
        this.tlsFailures++;
        this.authLog(
          {
            remote: `${socket.remoteAddress}:${socket.remotePort}`,
            code: error.code ?? error.message,
            tlsFailures: this.tlsFailures,
          },
          'refused a connection that failed the TLS handshake (plain TCP, or a certificate the CA did not sign?)',
        );
      });
    }
    // After listen() succeeded, a server error (rare: e.g. EMFILE on accept) is logged, never thrown.
    this.server.on('error', (error) => {
      if (this.listening) this.logger.warn({ err: error }, 'peer server error');
    });
  }

  /** Open connections, peers and clients. */
  get connectionCount(): number {
    return this.sockets.size;
  }

  /**
   * False while a peer announced an election timeout other than ours: a lease counted
   * with our timeout could then outlive the quorum's promise not to elect anyone else, so
   * 'lease' reads must go through ReadIndex.
   */
  get leaseReadsSafe(): boolean {
    return this.timeoutMismatches.size === 0;
  }

  /** `transportStatus`, bound once, for every client connection's Status answers. */
  private readonly statusOfTransport = (): TransportStatus => this.transportStatus();

  /** Who may join, and what was refused: for the node's status. */
  transportStatus(): TransportStatus {
    return {
      secret: this.secrets.secret !== null,
      adminSecret: this.secrets.adminSecret !== null,
      tls: this.tlsOn,
      tlsFailures: this.tlsFailures,
      authFailures: this.authFailures,
      connectionsRefused: this.connectionsRefused,
      leaseReadsSafe: this.leaseReadsSafe,
      electionTimeoutMismatches: this.electionTimeoutMismatches,
      openConnections: this.sockets.size,
      connectionsOverLimit: this.connectionsOverLimit,
    };
  }

  /** The peers whose election timeout differs from ours, as last announced. */
  get electionTimeoutMismatches(): TimeoutMismatch[] {
    return [...this.timeoutMismatches].map(([id, electionTimeoutMs]) => ({ id, electionTimeoutMs }));
  }

  /** Starts listening; resolves with the bound address (the real port when 0 was asked). */
  listen(): Promise<HostPort> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.server.once('error', onError);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', onError);
        this.listening = true;
        const address = this.server.address() as net.AddressInfo;
        this.logger.info(
          {
            host: address.address,
            port: address.port,
            clusterId: this.options.clusterId,
            nodeId: this.options.nodeId,
          },
          'peer server listening',
        );
        resolve({ host: address.address, port: address.port });
      });
    });
  }

  /** Stops listening and destroys every connection; resolves once the server is closed. */
  close(): Promise<void> {
    this.closing = true;
    for (const socket of this.sockets) socket.destroy();
    if (!this.server.listening) return Promise.resolve();
    return new Promise((resolve) => {
      this.server.close(() => {
        this.listening = false;
        resolve();
      });
    });
  }

  private onConnection(socket: net.Socket): void {
    const remote = `${socket.remoteAddress}:${socket.remotePort}`;
    if (this.sockets.size >= this.maxConnections) {
      // Closed before anything is allocated for it: a flood of connections costs a
      // file descriptor for an instant each, and one log line a second.
      this.connectionsOverLimit++;
      socket.on('error', () => {});
      socket.destroy();
      this.refusalLog(
        { remote, open: this.sockets.size, maxConnections: this.maxConnections },
        'too many connections; closing the new one',
      );
      return;
    }
    const conn: Connection = {
      socket,
      decoder: new FrameDecoder({
        maxFrameBytes: this.maxFrameBytes,
        maxEntryPayloadBytes: this.maxEntryPayloadBytes,
        expectHandshake: true,
      }),
      remote,
      peerId: null,
      handshakeTimer: null,
      awaitingAuth: null,
    };
    this.sockets.add(socket);
    socket.setNoDelay(true);
    conn.handshakeTimer = setTimeout(() => {
      conn.handshakeTimer = null;
      const pending = conn.awaitingAuth;
      if (pending !== null) {
        this.refuseAuth(conn, pending.hs, 'no proof of the cluster secret in time; closing the connection');
        return;
      }
      this.connectionsRefused++;
      this.warnLimited(
        `timeout ${socket.remoteAddress}`,
        { remote },
        'no handshake in time; closing the connection',
      );
      socket.destroy();
    }, this.handshakeTimeoutMs);
    // Plain 'data' events, not `onread` with a reused buffer: each chunk is then a fresh
    // Buffer that nobody overwrites, so the decoder may keep references to it and the
    // frames it yields (entry data, entryRecords) may be views into it.
    const onData = (chunk: Buffer): void => this.onData(conn, chunk, onData);
    socket.on('data', onData);
    // A reset by the remote is routine (a peer restarting); without a listener it would crash the process.
    socket.on('error', (error: NodeJS.ErrnoException) => {
      this.logger.info(
        { remote, peer: conn.peerId, code: error.code ?? error.message },
        'peer connection error',
      );
    });
    socket.on('close', () => {
      if (conn.handshakeTimer !== null) clearTimeout(conn.handshakeTimer);
      // The connector left after our proof, before its own: it refused us, which with the
      // same cluster id means it holds another secret. Counted like a failed proof.
      const pending = conn.awaitingAuth;
      if (pending !== null && !this.closing && this.secrets.secret !== null) {
        this.refuseAuth(
          conn,
          pending.hs,
          'a connector left before proving the cluster secret (it refused our proof: another secret?)',
        );
      }
      this.sockets.delete(socket);
      this.clients.delete(socket);
      if (conn.peerId !== null && this.peers.get(conn.peerId) === conn) {
        this.peers.delete(conn.peerId);
        this.logger.info({ remote, peer: conn.peerId }, 'peer disconnected');
      }
    });
  }

  /** Decodes and dispatches every complete frame of `chunk`; stops at the first error or when the socket goes. */
  private onData(conn: Connection, chunk: Buffer, listener: (chunk: Buffer) => void): void {
    const { socket, decoder } = conn;
    decoder.push(chunk);
    for (;;) {
      // The socket may have been destroyed by a previous frame (a refusal, close() from onMessage).
      if (socket.destroyed) return;
      const frame = decoder.next();
      if (frame === null) return;
      if (frame instanceof FrameError) {
        this.frameErrors++;
        this.warnLimited(
          `${frame.code} ${socket.remoteAddress}`,
          { remote: conn.remote, peer: conn.peerId, code: frame.code, err: frame.message },
          'malformed frame; closing the connection',
        );
        socket.destroy();
        return;
      }
      if (frame.type === FrameType.Handshake) {
        // The decoder lets only the first frame be a handshake, so this runs once per connection.
        if (!this.acceptHandshake(conn, frame.handshake, listener)) return;
        continue;
      }
      if (frame.type === FrameType.Auth) {
        // The decoder lets an AUTH frame through only right after a handshake announcing it.
        if (!this.acceptProof(conn, frame.auth, listener)) return;
        continue;
      }
      // Unreachable: after a peer handshake the decoder refuses client frames. It narrows the type.
      if (frame.type !== FrameType.RaftMessage) return void conn.socket.destroy();
      const peerId = conn.peerId as string; // set: the decoder yields no message before the handshake
      const m = frame.message;
      if (m.from !== peerId || m.to !== this.options.nodeId) {
        this.protocolErrors++;
        this.warnLimited(
          `route ${socket.remoteAddress}`,
          { remote: conn.remote, peer: peerId, from: m.from, to: m.to, nodeId: this.options.nodeId },
          'message not from the node that shook hands or not to us; closing the connection',
        );
        socket.destroy();
        return;
      }
      if (m.term > MAX_ACCEPTED_TERM) {
        this.protocolErrors++;
        this.warnLimited(
          `term ${socket.remoteAddress}`,
          { remote: conn.remote, peer: peerId, term: m.term, maxTerm: MAX_ACCEPTED_TERM },
          'message with a term no cluster reaches; closing the connection',
        );
        socket.destroy();
        return;
      }
      this.framesReceived++;
      try {
        this.options.onMessage(frame, peerId);
      } catch (error) {
        // A bug of the owner, but thrown from a socket handler it would take the process
        // down; closing the connection loses messages, which Raft tolerates.
        this.protocolErrors++;
        this.logger.warn(
          { remote: conn.remote, peer: peerId, err: error },
          'onMessage threw; closing the connection',
        );
        socket.destroy();
        return;
      }
    }
  }

  /** Our handshake's fields but the nonce and flags. */
  private answerFields(): {
    role: HandshakeRole;
    clusterId: string;
    nodeId: string;
    electionTimeoutMs: number;
  } {
    return {
      role: HandshakeRole.Peer,
      clusterId: this.options.clusterId,
      nodeId: this.options.nodeId,
      electionTimeoutMs: this.electionTimeoutMs,
    };
  }

  /**
   * Checks a handshake and answers it, or refuses the connection. Returns true when this
   * server keeps reading the connection (an accepted peer, or one whose proof is awaited),
   * false when it was refused or handed over.
   */
  private acceptHandshake(conn: Connection, hs: Handshake, listener: (chunk: Buffer) => void): boolean {
    const { socket, remote } = conn;
    const ours = this.options;
    if (hs.clusterId !== ours.clusterId) {
      return this.refuse(
        conn,
        `cluster ${socket.remoteAddress} ${hs.clusterId}`,
        {
          remote,
          ourClusterId: ours.clusterId,
          theirClusterId: hs.clusterId,
          theirNodeId: hs.nodeId,
          role: hs.role,
        },
        'refused a connection from another cluster',
      );
    }
    if (hs.role === HandshakeRole.Client && ours.onClientConnection === undefined) {
      return this.refuse(
        conn,
        `client ${socket.remoteAddress}`,
        { remote },
        'refused a client: this server takes peers only',
      );
    }
    if (hs.role === HandshakeRole.Snapshot && ours.onSnapshotConnection === undefined) {
      return this.refuse(
        conn,
        `snapshot ${socket.remoteAddress}`,
        { remote, peer: hs.nodeId },
        'refused a snapshot stream: this server takes none',
      );
    }
    if (hs.role !== HandshakeRole.Client && hs.nodeId === ours.nodeId) {
      return this.refuse(
        conn,
        `self ${socket.remoteAddress}`,
        { remote, nodeId: hs.nodeId },
        'refused a peer that claims our own node id (a node listed as its own peer?)',
      );
    }
    // With TLS, a peer or a snapshot stream is a node of the cluster only with the CA's certificate.
    if (this.tlsOn && hs.role !== HandshakeRole.Client && !(socket as tls.TLSSocket).authorized) {
      return this.refuseAuth(conn, hs, 'refused a peer without a certificate signed by the cluster CA');
    }
    const policy = connectorPolicyRefusal(this.secrets, hs);
    if (policy !== null) {
      // Said in a handshake before the close, so that the connector can tell why.
      socket.off('data', listener);
      return this.refuseAuth(conn, hs, policy, listenerDemand(this.answerFields()));
    }
    const answer = listenerAnswer(this.secrets, this.answerFields(), hs);
    socket.write(answer.bytes);
    if (hs.authFollows === true) {
      // The handshake timer keeps running: the proof must arrive within it too.
      conn.awaitingAuth = { hs, ours: answer.handshake };
      return true;
    }
    const verdict = checkConnector(this.secrets, hs, answer.handshake, null);
    if (!verdict.ok) return this.refuseAuth(conn, hs, verdict.reason);
    return this.admit(conn, hs, verdict.admin, listener);
  }

  /** Checks the connector's AUTH frame; admits the connection or refuses it. */
  private acceptProof(conn: Connection, proofs: AuthProofs, listener: (chunk: Buffer) => void): boolean {
    const pending = conn.awaitingAuth;
    // Unreachable: the decoder yields an AUTH frame only after a handshake announcing it.
    if (pending === null) {
      conn.socket.destroy();
      return false;
    }
    conn.awaitingAuth = null;
    const verdict = checkConnector(this.secrets, pending.hs, pending.ours, proofs);
    if (!verdict.ok) return this.refuseAuth(conn, pending.hs, verdict.reason);
    return this.admit(conn, pending.hs, verdict.admin, listener);
  }

  /** A verified connection: hands it to its role's handler, or registers the peer. */
  private admit(conn: Connection, hs: Handshake, admin: boolean, listener: (chunk: Buffer) => void): boolean {
    const { socket, remote } = conn;
    if (conn.handshakeTimer !== null) {
      clearTimeout(conn.handshakeTimer);
      conn.handshakeTimer = null;
    }
    if (hs.role === HandshakeRole.Client) {
      if (this.clients.size >= this.maxConnections - PEER_RESERVED_CONNECTIONS) {
        this.connectionsOverLimit++;
        socket.destroy();
        this.refusalLog(
          { remote, clients: this.clients.size, maxConnections: this.maxConnections },
          'too many client connections; closing the new one',
        );
        return false;
      }
      this.connectionsAccepted++;
      this.clients.add(socket);
      if (this.clientIdleTimeoutMs > 0) socket.setTimeout(this.clientIdleTimeoutMs);
      socket.off('data', listener);
      (this.options.onClientConnection as NonNullable<PeerServerOptions['onClientConnection']>)(
        socket,
        hs,
        conn.decoder,
        { admin, transportStatus: this.statusOfTransport },
      );
      return false;
    }
    if (hs.role === HandshakeRole.Snapshot) return this.handOverSnapshot(conn, hs, listener);
    this.connectionsAccepted++;
    conn.peerId = hs.nodeId;
    this.notePeerTimeout(hs.nodeId, hs.electionTimeoutMs ?? 0);
    const previous = this.peers.get(hs.nodeId);
    this.peers.set(hs.nodeId, conn);
    if (previous !== undefined) {
      // The peer reconnected, so it gave up on the old connection: it is half-dead.
      this.logger.info(
        { peer: hs.nodeId, old: previous.remote, remote },
        'peer reconnected; closing its old connection',
      );
      previous.socket.destroy();
    }
    this.logger.info({ remote, peer: hs.nodeId }, 'peer connected');
    return true;
  }

  /** Records a peer's announced election timeout; logs when it starts or stops differing from ours. */
  private notePeerTimeout(peer: string, theirsMs: number): void {
    if (this.electionTimeoutMs === 0) return;
    const before = this.timeoutMismatches.get(peer);
    if (theirsMs === this.electionTimeoutMs) {
      if (before === undefined) return;
      this.timeoutMismatches.delete(peer);
      this.logger.info(
        { peer, electionTimeoutMs: theirsMs, leaseReadsSafe: this.leaseReadsSafe },
        'peer now has our election timeout',
      );
      return;
    }
    this.timeoutMismatches.set(peer, theirsMs);
    if (before === theirsMs) return;
    this.logger.warn(
      { peer, theirElectionTimeoutMs: theirsMs, ourElectionTimeoutMs: this.electionTimeoutMs },
      'peer has another election timeout: lease reads are served as ReadIndex (linearizable) until all agree',
    );
  }

  /**
   * Hands a snapshot stream (see `onSnapshotConnection`) over. It does not replace the
   * peer's link in `peers`: the stream is a second connection beside it.
   */
  private handOverSnapshot(conn: Connection, hs: Handshake, listener: (chunk: Buffer) => void): false {
    const { socket, remote } = conn;
    const handler = this.options.onSnapshotConnection as NonNullable<
      PeerServerOptions['onSnapshotConnection']
    >;
    this.connectionsAccepted++;
    socket.off('data', listener);
    this.logger.info({ remote, peer: hs.nodeId }, 'snapshot stream from a leader');
    try {
      handler(socket, hs, conn.decoder);
    } catch (error) {
      this.protocolErrors++;
      this.logger.warn(
        { remote, peer: hs.nodeId, err: error },
        'onSnapshotConnection threw; closing the connection',
      );
      socket.destroy();
    }
    return false;
  }

  /** Refuses a connection for a missing or wrong proof: counted, and logged at a bounded rate. */
  private refuseAuth(conn: Connection, hs: Handshake, reason: string, lastWords?: Uint8Array): false {
    if (conn.handshakeTimer !== null) {
      clearTimeout(conn.handshakeTimer);
      conn.handshakeTimer = null;
    }
    conn.awaitingAuth = null;
    this.connectionsRefused++;
    this.authFailures++;
    this.authLog(
      { remote: conn.remote, role: hs.role, theirNodeId: hs.nodeId, authFailures: this.authFailures },
      reason,
    );
    if (lastWords === undefined) {
      conn.socket.destroy();
      return false;
    }
    // destroy() would drop the unsent bytes: end() sends them first. The timer bounds a
    // connector that never closes its half.
    conn.socket.end(lastWords);
    setTimeout(() => conn.socket.destroy(), REFUSAL_LINGER_MS).unref();
    return false;
  }

  private refuse(conn: Connection, key: string, fields: object, message: string): false {
    this.connectionsRefused++;
    this.warnLimited(key, fields, message);
    conn.socket.destroy();
    return false;
  }

  /**
   * Logs a warning at most once per `WARN_REPEAT_MS` per key: a misconfigured peer retries
   * every couple of seconds forever, and one line a minute (with the count of repeats)
   * says as much as thirty. Over all keys, at most one line per `REFUSAL_LOG_INTERVAL_MS`
   * (`refusalLog`): many remotes, or many kinds of refusal, are many keys.
   */
  private warnLimited(key: string, fields: object, message: string): void {
    const now = Date.now();
    const seen = this.warned.get(key);
    if (seen !== undefined && now - seen.at < WARN_REPEAT_MS) {
      seen.suppressed++;
      return;
    }
    if (this.warned.size >= WARN_KEYS_MAX) this.warned.clear();
    this.warned.set(key, { at: now, suppressed: 0 });
    this.refusalLog(
      seen === undefined ? fields : { ...fields, repeatedSinceLastLog: seen.suppressed },
      message,
    );
  }
}
