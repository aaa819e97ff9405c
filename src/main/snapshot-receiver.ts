/**
 * The follower's half of InstallSnapshot (protocol.ts, "snapshot stream"), on the main
 * thread: the peer server hands over each connection whose handshake has role snapshot,
 * and this serves it: decodes the leader's frames, drives a `SnapshotSink` (the fsm
 * thread's store, through `FsmSnapshotSink`), answers Resume, Refuse, Installed or
 * Failed, and tells the node through `onInstalled` once a snapshot is published.
 *
 * One transfer at a time per node, and the newest stream wins: an Offer on a new
 * connection supersedes the stream in progress, whose connection is closed. Refusing the
 * newcomer instead would stall the common case, a leader that reconnects after a cut
 * while this side has not yet noticed the old connection is dead (a half-open TCP
 * connection can look alive for minutes); and the newcomer loses nothing, since the
 * sink resumes a same-meta receive from the bytes already on disk. Sink calls of every
 * stream go through one queue, in order, so the superseded stream's last writes land
 * before the newcomer's `begin`.
 *
 * A closed connection aborts nothing: what was received stays on disk for the leader's
 * next attempt (or the next leader's, with the same snapshot) to resume from.
 *
 * The sink works on another thread and may be slower than the network: once
 * `maxPendingBytes` of chunks wait for it, the socket is paused, so TCP pushes back on
 * the leader instead of this process buffering without bound.
 *
 * Anything wrong with a stream (a malformed frame, a chunk that leaves a gap, a frame
 * out of turn) closes that connection only, with a log line; nothing here throws out
 * of a socket handler.
 */
import type net from 'node:net';
import type { NodeId, SnapshotMeta, Term } from '../raft/types.js';
import { type FrameDecoder, FrameError, type Handshake, OutBuffer } from '../shared/message-codec.js';
import {
  FrameType,
  SNAPSHOT_CHUNK_FRAME_OVERHEAD_BYTES,
  SnapshotFailReason,
  SnapshotRefuseReason,
  SnapshotReplyKind,
  SnapshotSendKind,
} from '../shared/protocol.js';
import {
  decodeSnapshotSend,
  encodeSnapshotReply,
  type SnapshotReplyMessage,
  SnapshotStreamError,
} from '../shared/snapshot-stream-codec.js';
import {
  decodeSnapshotMeta,
  SnapshotCorruptionError,
  type SnapshotFile,
  SnapshotStaleError,
} from '../workers/fsm/snapshot-store.js';

/**
 * Where a received snapshot goes: the follower's `SnapshotStore`, behind whatever thread
 * owns it. Calls are made one at a time, in order (the next after the previous settled).
 */
export interface SnapshotSink {
  /**
   * Starts (or resumes) receiving the snapshot whose meta file is `metaBytes`; resolves
   * with the bytes already held of each file, by name. Rejects with `SnapshotStaleError`
   * if this node has that snapshot or a newer one, `SnapshotCorruptionError` if the meta
   * is damaged.
   */
  begin(metaBytes: Uint8Array): Promise<Map<string, number>>;
  /**
   * Stores `bytes` at `offsetBytes` of `fileName` (no gap after what is held). The sink
   * takes `bytes` over: it may transfer `bytes.buffer` to another thread, so the caller
   * passes a view whose buffer nothing else uses, and does not touch it afterwards.
   */
  write(fileName: string, offsetBytes: number, bytes: Uint8Array): Promise<void>;
  /**
   * Verifies every file and publishes the snapshot atomically; resolves with what it
   * covers. A file failing its check rejects with `SnapshotCorruptionError` and is reset,
   * so that the next attempt fetches just it.
   */
  commit(): Promise<SnapshotMeta>;
  /** Discards the snapshot being received. */
  abort(): Promise<void>;
}

/** What `SnapshotStreamReceiver` logs through; pino's `logger.info(obj, msg)` fits. */
export interface SnapshotReceiverLogger {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
}

/** Configuration of a `SnapshotStreamReceiver`. */
export interface SnapshotReceiverOptions {
  /** Where received snapshots go. */
  readonly sink: SnapshotSink;
  /**
   * Called once a snapshot from `leaderId` (leading in `leaderTerm`) is published in the
   * store: the node loads it and resets its log. Called even if the leader's connection
   * dropped meanwhile: the snapshot is installed either way. If it throws, the error is
   * logged.
   */
  readonly onInstalled: (meta: SnapshotMeta, leaderId: NodeId, leaderTerm: Term) => void;
  /**
   * Asked before an offer is accepted: null to accept, or why not (the leader is told,
   * and counts the transfer failed). For example, refuse a leader whose term is older
   * than this node's. Default: accept every offer.
   */
  readonly acceptOffer?: (meta: SnapshotMeta, leaderId: NodeId, leaderTerm: Term) => string | null;
  /**
   * Largest chunk data accepted, told to the leader in Resume. Default 16 MiB; never more
   * than the decoder's frame limit leaves after the headers.
   */
  readonly maxChunkBytes?: number;
  /** Chunk bytes waiting for the sink beyond which the socket is paused. Default 8 MiB. */
  readonly maxPendingBytes?: number;
  /** A stream with nothing from the leader and nothing to do for this long is closed. Default 60000. */
  readonly idleTimeoutMs?: number;
  /** Default: logs nothing. */
  readonly logger?: SnapshotReceiverLogger;
}

/** Default `maxChunkBytes`: twice the largest `snapshotChunkBytes` a node may be given. */
export const DEFAULT_MAX_RECEIVE_CHUNK_BYTES = 16 * 1024 * 1024;
/** Default `maxPendingBytes`. */
export const DEFAULT_MAX_PENDING_BYTES = 8 * 1024 * 1024;
/** Default `idleTimeoutMs`. */
export const DEFAULT_SNAPSHOT_IDLE_TIMEOUT_MS = 60_000;

const NO_LOGGER: SnapshotReceiverLogger = { info() {}, warn() {} };

/** Where a stream is in its life. */
type StreamState = 'offer' | 'beginning' | 'receiving' | 'committing' | 'over';

/** One snapshot-stream connection. */
interface Stream {
  readonly socket: net.Socket;
  readonly decoder: FrameDecoder;
  readonly leaderId: NodeId;
  readonly remote: string;
  state: StreamState;
  leaderTerm: Term;
  meta: SnapshotMeta | null;
  files: readonly SnapshotFile[];
  /** Per file (meta order): bytes held or queued to the sink. A chunk may not start beyond. */
  heldBytes: number[];
  /** Chunk bytes handed to the sink queue and not yet written. */
  pendingBytes: number;
  /** Sink calls queued for this stream and not yet settled. */
  pendingOps: number;
  paused: boolean;
  /** Set once the transfer failed: queued writes and the commit are skipped. */
  failed: boolean;
}

/**
 * Serves snapshot streams for one node. The peer server calls `serve` for each
 * connection with role snapshot (its `onSnapshotConnection` option); `close()` at
 * shutdown. Counters are read-only for callers.
 */
export class SnapshotStreamReceiver {
  /** Snapshots published. */
  installed = 0;
  /** Offers refused (stale ones included). */
  refused = 0;
  /** Transfers that failed after acceptance (a bad file, a sink failure, a protocol breach). */
  failed = 0;
  /** Streams closed for a malformed or out-of-turn frame. */
  protocolErrors = 0;
  /** Streams superseded by a newer one. */
  superseded = 0;
  /** Chunk data bytes received. */
  bytesReceived = 0;

  readonly #o: SnapshotReceiverOptions;
  readonly #logger: SnapshotReceiverLogger;
  readonly #maxPendingBytes: number;
  readonly #idleTimeoutMs: number;
  readonly #streams = new Set<Stream>();
  /** The stream whose offer was accepted last: the one transfer in progress. */
  #current: Stream | null = null;
  /** Every sink call, in order, from every stream. */
  #queue: Promise<void> = Promise.resolve();

  constructor(options: SnapshotReceiverOptions) {
    this.#o = options;
    this.#logger = options.logger ?? NO_LOGGER;
    this.#maxPendingBytes = options.maxPendingBytes ?? DEFAULT_MAX_PENDING_BYTES;
    this.#idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_SNAPSHOT_IDLE_TIMEOUT_MS;
  }

  /**
   * Takes over `socket`, whose handshake (role snapshot, from node `handshake.nodeId`)
   * the peer server accepted and answered; `decoder` may already hold frames that came
   * behind the handshake. Returns at once; the stream runs on the socket's events.
   */
  serve(socket: net.Socket, handshake: Handshake, decoder: FrameDecoder): void {
    const stream: Stream = {
      socket,
      decoder,
      leaderId: handshake.nodeId,
      remote: `${socket.remoteAddress}:${socket.remotePort}`,
      state: 'offer',
      leaderTerm: 0,
      meta: null,
      files: [],
      heldBytes: [],
      pendingBytes: 0,
      pendingOps: 0,
      paused: false,
      failed: false,
    };
    this.#streams.add(stream);
    socket.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      this.#drainSafely(stream);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.#logger.info(
        { leader: stream.leaderId, remote: stream.remote, code: err.code ?? err.message },
        'snapshot stream error',
      );
    });
    socket.on('close', () => {
      this.#streams.delete(stream);
      if (stream.state !== 'over') {
        this.#logger.info(
          { leader: stream.leaderId, state: stream.state },
          'snapshot stream closed before it ended',
        );
      }
      stream.state = 'over';
      if (this.#current === stream) this.#current = null;
    });
    socket.setTimeout(this.#idleTimeoutMs, () => {
      // Waiting on our own sink is not idleness of the leader.
      if (stream.pendingOps > 0) return;
      this.#logger.warn({ leader: stream.leaderId, state: stream.state }, 'snapshot stream idle; closing it');
      socket.destroy();
    });
    // Frames that arrived together with the handshake are already in the decoder.
    this.#drainSafely(stream);
  }

  /** Closes every stream. Sink calls already queued still run; what was received stays on disk. */
  close(): void {
    for (const stream of this.#streams) {
      stream.state = 'over';
      stream.socket.destroy();
    }
    this.#streams.clear();
    this.#current = null;
  }

  /** `#drain`, with any exception (a bug, or a throwing callback) closing the stream instead of escaping a socket handler. */
  #drainSafely(stream: Stream): void {
    try {
      this.#drain(stream);
    } catch (err) {
      this.#logger.warn(
        { err, leader: stream.leaderId },
        'snapshot stream handler threw; closing the stream',
      );
      this.#end(stream);
      stream.socket.destroy();
    }
  }

  /** Decodes and handles every complete frame buffered for `stream`. */
  #drain(stream: Stream): void {
    for (;;) {
      if (stream.socket.destroyed || stream.state === 'over') return;
      const frame = stream.decoder.next();
      if (frame === null) return;
      if (frame instanceof FrameError)
        return void this.#breach(stream, `malformed frame: ${frame.code}: ${frame.message}`);
      if (frame.type !== FrameType.SnapshotSend) {
        // Unreachable: after a snapshot handshake the decoder yields SNAPSHOT_SEND frames only.
        return void this.#breach(stream, `frame type ${frame.type} on a snapshot stream`);
      }
      const m = decodeSnapshotSend(frame.body);
      if (m instanceof SnapshotStreamError)
        return void this.#breach(stream, `malformed message: ${m.code}: ${m.message}`);
      if (m.kind === SnapshotSendKind.Offer) {
        if (stream.state !== 'offer') return void this.#breach(stream, `an offer while ${stream.state}`);
        this.#offer(stream, m.leaderTerm, m.metaBytes);
      } else if (m.kind === SnapshotSendKind.Chunk) {
        if (stream.state !== 'receiving') return void this.#breach(stream, `a chunk while ${stream.state}`);
        this.#chunk(stream, m.fileIndex, m.offsetBytes, m.data, frame.body);
      } else {
        if (stream.state !== 'receiving') return void this.#breach(stream, `done while ${stream.state}`);
        this.#done(stream);
      }
    }
  }

  #offer(stream: Stream, leaderTerm: Term, metaBytes: Uint8Array): void {
    let meta: SnapshotMeta;
    let files: readonly SnapshotFile[];
    try {
      ({ meta, files } = decodeSnapshotMeta(metaBytes, `snapshot meta offered by ${stream.leaderId}`));
    } catch (err) {
      return void this.#refuse(stream, SnapshotRefuseReason.Invalid, 0, (err as Error).message);
    }
    const refusal = this.#o.acceptOffer?.(meta, stream.leaderId, leaderTerm) ?? null;
    if (refusal !== null) return void this.#refuse(stream, SnapshotRefuseReason.Rejected, 0, refusal);
    const previous = this.#current;
    if (previous !== null && previous !== stream) {
      this.superseded++;
      this.#logger.info(
        {
          leader: stream.leaderId,
          index: meta.index,
          previousLeader: previous.leaderId,
          previousIndex: previous.meta?.index,
        },
        'a new snapshot stream supersedes the one in progress',
      );
      previous.state = 'over';
      previous.socket.destroy();
    }
    this.#current = stream;
    stream.state = 'beginning';
    stream.leaderTerm = leaderTerm;
    stream.meta = meta;
    stream.files = files;
    this.#enqueue(stream, async () => {
      let held: Map<string, number>;
      try {
        held = await this.#o.sink.begin(metaBytes);
      } catch (err) {
        if (err instanceof SnapshotStaleError) {
          return void this.#refuse(stream, SnapshotRefuseReason.Stale, err.latestIndex, err.message);
        }
        const reason =
          err instanceof SnapshotCorruptionError ? SnapshotRefuseReason.Invalid : SnapshotRefuseReason.Error;
        return void this.#refuse(stream, reason, 0, (err as Error).message);
      }
      if (stream.state !== 'beginning') return;
      stream.heldBytes = files.map((f) => Math.min(held.get(f.name) ?? 0, f.bytes));
      stream.state = 'receiving';
      const maxChunkBytes = Math.min(
        this.#o.maxChunkBytes ?? DEFAULT_MAX_RECEIVE_CHUNK_BYTES,
        stream.decoder.maxFrameBytes - SNAPSHOT_CHUNK_FRAME_OVERHEAD_BYTES,
        0xffff_ffff,
      );
      this.#reply(stream, { kind: SnapshotReplyKind.Resume, maxChunkBytes, heldBytes: stream.heldBytes });
      this.#logger.info(
        {
          leader: stream.leaderId,
          index: meta.index,
          term: meta.term,
          heldBytes: stream.heldBytes.reduce((sum, b) => sum + b, 0),
          totalBytes: files.reduce((sum, f) => sum + f.bytes, 0),
        },
        'receiving a snapshot',
      );
    });
  }

  #chunk(stream: Stream, fileIndex: number, offsetBytes: number, data: Uint8Array, body: Uint8Array): void {
    const file = stream.files[fileIndex];
    if (file === undefined)
      return void this.#fail(stream, SnapshotFailReason.Protocol, `no file ${fileIndex} in the snapshot`);
    const maxChunkBytes = this.#o.maxChunkBytes ?? DEFAULT_MAX_RECEIVE_CHUNK_BYTES;
    if (data.byteLength > maxChunkBytes) {
      return void this.#fail(
        stream,
        SnapshotFailReason.Protocol,
        `a chunk of ${data.byteLength} bytes; at most ${maxChunkBytes}`,
      );
    }
    const held = stream.heldBytes[fileIndex] as number;
    if (offsetBytes > held) {
      return void this.#fail(
        stream,
        SnapshotFailReason.Protocol,
        `chunk at ${offsetBytes} of ${file.name} leaves a gap after ${held}`,
      );
    }
    const endBytes = offsetBytes + data.byteLength;
    if (endBytes > file.bytes) {
      return void this.#fail(
        stream,
        SnapshotFailReason.Protocol,
        `chunk ends at ${endBytes}, past the ${file.bytes} bytes of ${file.name}`,
      );
    }
    stream.heldBytes[fileIndex] = Math.max(held, endBytes);
    this.bytesReceived += data.byteLength;
    // The sink takes the chunk's buffer over. A frame split across socket reads was joined
    // by the decoder into a buffer of its own (not a Buffer from the socket, which may hold
    // other frames): that one can be handed over as is; anything else is copied.
    const ownBuffer =
      !Buffer.isBuffer(body) && body.byteOffset === 0 && body.byteLength === body.buffer.byteLength;
    const bytes = ownBuffer ? data : new Uint8Array(data);
    // Counted once, here: the sink transfers the buffer to the fsm thread, after which
    // `bytes.byteLength` reads 0.
    const chunkBytes = bytes.byteLength;
    stream.pendingBytes += chunkBytes;
    if (!stream.paused && stream.pendingBytes > this.#maxPendingBytes) {
      stream.paused = true;
      stream.socket.pause();
    }
    this.#enqueue(stream, async () => {
      try {
        // Written even if the connection closed meanwhile: the bytes are good, and the
        // next attempt resumes after them.
        if (!stream.failed) await this.#o.sink.write(file.name, offsetBytes, bytes);
      } catch (err) {
        this.#fail(stream, failReason(err), (err as Error).message);
      } finally {
        stream.pendingBytes -= chunkBytes;
        if (stream.paused && stream.pendingBytes <= this.#maxPendingBytes / 2) {
          stream.paused = false;
          if (!stream.socket.destroyed) stream.socket.resume();
        }
      }
    });
  }

  #done(stream: Stream): void {
    const incomplete = stream.files.findIndex((f, i) => stream.heldBytes[i] !== f.bytes);
    if (incomplete >= 0) {
      const f = stream.files[incomplete] as SnapshotFile;
      return void this.#fail(
        stream,
        SnapshotFailReason.Protocol,
        `done before ${f.name} was sent whole: ${stream.heldBytes[incomplete]} of ${f.bytes} bytes`,
      );
    }
    stream.state = 'committing';
    this.#enqueue(stream, async () => {
      // A write failure already answered Failed and ended the stream. A connection
      // closed after Done is no reason to skip: every byte is here, so publish.
      if (stream.failed) return;
      let meta: SnapshotMeta;
      try {
        meta = await this.#o.sink.commit();
      } catch (err) {
        return void this.#fail(stream, failReason(err), (err as Error).message);
      }
      this.installed++;
      this.#reply(stream, { kind: SnapshotReplyKind.Installed, index: meta.index, term: meta.term });
      stream.state = 'over';
      stream.socket.end();
      if (this.#current === stream) this.#current = null;
      this.#logger.info(
        { leader: stream.leaderId, index: meta.index, term: meta.term },
        'snapshot installed',
      );
      try {
        this.#o.onInstalled(meta, stream.leaderId, stream.leaderTerm);
      } catch (err) {
        this.#logger.warn({ err, index: meta.index }, 'onInstalled threw');
      }
    });
  }

  /**
   * Runs `op` after every sink call queued before it, from any stream. `op` handles its
   * own errors; one that escapes is logged, and the queue goes on.
   */
  #enqueue(stream: Stream, op: () => Promise<void>): void {
    stream.pendingOps++;
    this.#queue = this.#queue
      .then(op)
      .catch((err: unknown) =>
        this.#logger.warn({ err, leader: stream.leaderId }, 'snapshot sink call failed'),
      )
      .finally(() => {
        stream.pendingOps--;
      });
  }

  #refuse(stream: Stream, reason: SnapshotRefuseReason, latestIndex: number, message: string): void {
    this.refused++;
    const level = reason === SnapshotRefuseReason.Stale ? 'info' : 'warn';
    this.#logger[level](
      { leader: stream.leaderId, reason, latestIndex, message },
      'refused a snapshot offer',
    );
    this.#reply(stream, { kind: SnapshotReplyKind.Refuse, reason, latestIndex, message });
    this.#end(stream);
  }

  /** Answers Failed and ends the stream; its queued writes and commit are skipped. */
  #fail(stream: Stream, reason: SnapshotFailReason, message: string): void {
    if (stream.failed) return;
    stream.failed = true;
    this.failed++;
    this.#logger.warn(
      { leader: stream.leaderId, index: stream.meta?.index, reason, message },
      'snapshot transfer failed',
    );
    this.#reply(stream, { kind: SnapshotReplyKind.Failed, reason, message });
    this.#end(stream);
  }

  /** A frame this stream should never carry: close at once, no answer (the stream is out of step). */
  #breach(stream: Stream, why: string): void {
    this.protocolErrors++;
    this.#logger.warn(
      { leader: stream.leaderId, remote: stream.remote, state: stream.state, err: why },
      'snapshot stream protocol error; closing it',
    );
    this.#end(stream);
    stream.socket.destroy();
  }

  /** Ends `stream` after what was written so far. */
  #end(stream: Stream): void {
    stream.state = 'over';
    if (this.#current === stream) this.#current = null;
    if (!stream.socket.destroyed) stream.socket.end();
  }

  #reply(stream: Stream, m: SnapshotReplyMessage): void {
    if (stream.socket.destroyed || !stream.socket.writable) return;
    const out = new OutBuffer(64);
    encodeSnapshotReply(out, m);
    stream.socket.write(out.view());
  }
}

/** The Failed reason for an error from the sink. */
function failReason(err: unknown): SnapshotFailReason {
  return err instanceof SnapshotCorruptionError ? SnapshotFailReason.Corrupt : SnapshotFailReason.Error;
}
