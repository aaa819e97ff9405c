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
 * Anything wrong with a connection (a malformed frame, a wrong cluster, a message from an
 * impostor) closes that connection only, with a log line; it never throws out of a socket
 * handler, so one bad peer or a port scanner cannot crash the node.
 */
import net from 'node:net';
import type { HostPort } from '../shared/address.js';
import {
  type DecodedRaftMessageFrame,
  encodeHandshakeFrame,
  FrameDecoder,
  FrameError,
  type Handshake,
  OutBuffer,
} from '../shared/message-codec.js';
import {
  DEFAULT_MAX_ENTRY_PAYLOAD_BYTES,
  DEFAULT_MAX_FRAME_BYTES,
  FrameType,
  HandshakeRole,
} from '../shared/protocol.js';

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
  /** How long a new connection may take to send its handshake before it is closed. Default 5000. */
  readonly handshakeTimeoutMs?: number;
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
   * `close()`. Without this option client connections are refused.
   */
  readonly onClientConnection?: (socket: net.Socket, handshake: Handshake, decoder: FrameDecoder) => void;
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

/** Default `handshakeTimeoutMs`. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;

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
  /** Closes a connection that does not send its handshake in time. */
  handshakeTimer: NodeJS.Timeout | null;
}

/**
 * The node's TCP server for peer (and later client) connections. `listen()`, then frames
 * flow to `onMessage`; `close()` at shutdown. Counters are read-only for callers.
 */
export class PeerServer {
  /** Connections whose handshake was accepted (peers and clients). */
  connectionsAccepted = 0;
  /** Connections refused at the handshake: other cluster, our own node id, unserved role, timeout. */
  connectionsRefused = 0;
  /** RAFT_MESSAGE frames delivered to `onMessage`. */
  framesReceived = 0;
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
  private readonly logger: PeerServerLogger;
  /** Our handshake answer, encoded once and never modified, so every connection can be given the same bytes. */
  private readonly handshakeBytes: Uint8Array;
  private readonly server: net.Server;
  /** Every open socket, including handed-over client sockets, so `close()` can destroy them. */
  private readonly sockets = new Set<net.Socket>();
  /** The current connection of each peer: a peer has one link to us, so a newer one supersedes. */
  private readonly peers = new Map<string, Connection>();
  /** Rate limiter of repeated warnings: key → when last logged, and how many were not. */
  private readonly warned = new Map<string, { at: number; suppressed: number }>();
  private listening = false;

  constructor(options: PeerServerOptions) {
    this.options = options;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxEntryPayloadBytes = options.maxEntryPayloadBytes ?? DEFAULT_MAX_ENTRY_PAYLOAD_BYTES;
    this.handshakeTimeoutMs = options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.logger = options.logger ?? NO_LOGGER;
    // Built once here so that inconsistent limits throw now, not on the first connection.
    new FrameDecoder({ maxFrameBytes: this.maxFrameBytes, maxEntryPayloadBytes: this.maxEntryPayloadBytes });
    const out = new OutBuffer(64);
    encodeHandshakeFrame(out, {
      role: HandshakeRole.Peer,
      clusterId: options.clusterId,
      nodeId: options.nodeId,
    });
    this.handshakeBytes = out.view().slice();
    this.server = net.createServer((socket) => this.onConnection(socket));
    // After listen() succeeded, a server error (rare: e.g. EMFILE on accept) is logged, never thrown.
    this.server.on('error', (error) => {
      if (this.listening) this.logger.warn({ err: error }, 'peer server error');
    });
  }

  /** Open connections, peers and clients. */
  get connectionCount(): number {
    return this.sockets.size;
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
    };
    this.sockets.add(socket);
    socket.setNoDelay(true);
    conn.handshakeTimer = setTimeout(() => {
      conn.handshakeTimer = null;
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
      this.sockets.delete(socket);
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

  /**
   * Checks a handshake and answers it, or refuses the connection. Returns true when this
   * server keeps reading the connection (an accepted peer), false when it was refused or
   * handed over to the client handler.
   */
  private acceptHandshake(conn: Connection, hs: Handshake, listener: (chunk: Buffer) => void): boolean {
    const { socket, remote } = conn;
    if (conn.handshakeTimer !== null) {
      clearTimeout(conn.handshakeTimer);
      conn.handshakeTimer = null;
    }
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
    if (hs.role === HandshakeRole.Client) {
      const handler = ours.onClientConnection;
      if (handler === undefined) {
        return this.refuse(
          conn,
          `client ${socket.remoteAddress}`,
          { remote },
          'refused a client: this server takes peers only',
        );
      }
      this.connectionsAccepted++;
      socket.off('data', listener);
      socket.write(this.handshakeBytes);
      handler(socket, hs, conn.decoder);
      return false;
    }
    if (hs.role === HandshakeRole.Snapshot) return this.handOverSnapshot(conn, hs, listener);
    if (hs.nodeId === ours.nodeId) {
      return this.refuse(
        conn,
        `self ${socket.remoteAddress}`,
        { remote, nodeId: hs.nodeId },
        'refused a peer that claims our own node id (a node listed as its own peer?)',
      );
    }
    this.connectionsAccepted++;
    conn.peerId = hs.nodeId;
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
    socket.write(this.handshakeBytes);
    this.logger.info({ remote, peer: hs.nodeId }, 'peer connected');
    return true;
  }

  /**
   * Hands a snapshot stream (see `onSnapshotConnection`) over, or refuses it. It does not
   * replace the peer's link in `peers`: the stream is a second connection beside it.
   */
  private handOverSnapshot(conn: Connection, hs: Handshake, listener: (chunk: Buffer) => void): false {
    const { socket, remote } = conn;
    const handler = this.options.onSnapshotConnection;
    if (handler === undefined) {
      return this.refuse(
        conn,
        `snapshot ${socket.remoteAddress}`,
        { remote, peer: hs.nodeId },
        'refused a snapshot stream: this server takes none',
      );
    }
    if (hs.nodeId === this.options.nodeId) {
      return this.refuse(
        conn,
        `self ${socket.remoteAddress}`,
        { remote, nodeId: hs.nodeId },
        'refused a snapshot stream that claims our own node id',
      );
    }
    this.connectionsAccepted++;
    socket.off('data', listener);
    socket.write(this.handshakeBytes);
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

  private refuse(conn: Connection, key: string, fields: object, message: string): false {
    this.connectionsRefused++;
    this.warnLimited(key, fields, message);
    conn.socket.destroy();
    return false;
  }

  /**
   * Logs a warning at most once per `WARN_REPEAT_MS` per key: a misconfigured peer retries
   * every couple of seconds forever, and one line a minute (with the count of repeats)
   * says as much as thirty.
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
    this.logger.warn(
      seen === undefined ? fields : { ...fields, repeatedSinceLastLog: seen.suppressed },
      message,
    );
  }
}
