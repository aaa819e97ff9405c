/**
 * The leader's half of InstallSnapshot (protocol.ts, "snapshot stream"): streams one
 * snapshot from this node's store to one follower, on a TCP connection of its own so
 * that the peer link's heartbeats and AppendEntries keep flowing meanwhile. Driven by
 * the replicator thread, one sender per follower, one transfer at a time.
 *
 * One transfer:
 * 1. open the snapshot asked for, or the newest if a newer one replaced it (the replaced
 *    one's files are deleted, and the newer one serves the follower better anyway);
 * 2. connect to the follower's listen address, send our HANDSHAKE (role snapshot) and the
 *    Offer at once, and wait for the follower's handshake (it must name the peer we
 *    meant) and its answer: Resume, or Refuse (stale: it has this snapshot or a newer
 *    one, so the transfer is done). With a cluster secret the Offer waits until the
 *    follower proved the secret, and follows our own proof (`src/shared/auth.ts`);
 * 3. send each file from where the follower's Resume says it continues, in chunks read
 *    straight into their frames, paced by the token bucket and by the socket: a write
 *    the socket cannot take at once waits for 'drain', so at most one chunk sits in
 *    this process's buffers;
 * 4. send Done and wait for Installed (the follower checks every CRC and publishes).
 *
 * A cut connection, a timeout or a Failed answer costs a reconnect after a capped,
 * jittered backoff, up to `maxAttempts` connections; each new connection resumes from
 * what the follower holds, so a cut costs only what was in flight. The transfer ends
 * with exactly one `onDone`, unless it was replaced by another (`send` with another
 * index or term) or stopped: then its replacement reports, or nobody.
 *
 * Reads are synchronous, one chunk (1 MiB by default) at a time: short enough that the
 * replicator's ring keeps being served between them.
 */
import type net from 'node:net';
import type { Index, NodeId, Term } from '../../raft/types.js';
import {
  ConnectorAuth,
  type ConnectorCredentials,
  type ConnectorStep,
  NO_CREDENTIALS,
} from '../../shared/auth.js';
import { FrameDecoder, FrameError, OutBuffer } from '../../shared/message-codec.js';
import {
  DEFAULT_SNAPSHOT_CHUNK_BYTES,
  FrameType,
  HandshakeRole,
  SNAPSHOT_CHUNK_FRAME_OVERHEAD_BYTES,
  SnapshotRefuseReason,
  SnapshotReplyKind,
  SnapshotSendKind,
} from '../../shared/protocol.js';
import {
  decodeSnapshotReply,
  encodeSnapshotSend,
  type SnapshotReplyMessage,
  SnapshotStreamError,
  writeChunkFrameHead,
} from '../../shared/snapshot-stream-codec.js';
import { type ConnectorTls, connectToNode } from '../../shared/tls-config.js';
import { newestSnapshotIndex, openSnapshotForSending, type SnapshotSource } from '../fsm/snapshot-store.js';
import { backoffDelayMs } from './peer-link.js';
import { type Clock, SYSTEM_CLOCK, TokenBucket } from './token-bucket.js';

/** What `SnapshotSender` logs through; pino's `logger.info(obj, msg)` fits. */
export interface SnapshotSenderLogger {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
}

/** How a transfer ended: what the replicator posts as `snapshot-sent`. */
export interface SnapshotSendResult {
  /** The index of the snapshot sent: the one asked for, or the newer one that replaced it. */
  readonly index: Index;
  /** True once the follower installed it, or refused it as stale (it has it or a newer one). */
  readonly ok: boolean;
  /** Chunk data bytes written to sockets, over every connection of the transfer. */
  readonly bytes: number;
  /**
   * Bytes not sent because the follower already held them, summed over the
   * transfer's connections: after a cut, what arrived before it counts here.
   */
  readonly resumedBytes: number;
  /** Why it failed, for logs; null when ok. */
  readonly reason: string | null;
}

/** Configuration of a `SnapshotSender`. */
export interface SnapshotSenderOptions {
  /** The follower's listen address: the same as its peer link's. */
  readonly host: string;
  readonly port: number;
  /** Our cluster id, sent in the handshake; the follower's answer must name the same. */
  readonly clusterId: string;
  /** Our node id (the leader's), sent in the handshake. */
  readonly nodeId: NodeId;
  /** The follower's node id: its handshake answer must name it. */
  readonly peerId: NodeId;
  /** The cluster secret to prove and to demand from the follower. Default none. */
  readonly credentials?: ConnectorCredentials;
  /** Our election timeout, announced in the handshake. Default 0. */
  readonly electionTimeoutMs?: number;
  /** TLS to the follower, as the peer link's. Default plain TCP. */
  readonly tls?: ConnectorTls | null;
  /** Our data directory, whose `snapshot/` holds what we send. */
  readonly dataDir: string;
  /** Most data bytes per Chunk (the follower may ask for less). Default 1 MiB. */
  readonly chunkBytes?: number;
  /** Throttle, in bytes per second per transfer; 0 (the default) is unlimited. */
  readonly bytesPerSecond?: number;
  /** Connections one transfer may use before it is reported failed. Default 5. */
  readonly maxAttempts?: number;
  /** First reconnect delay before jitter. Default 100. */
  readonly minBackoffMs?: number;
  /** Largest reconnect delay. Default 2000. */
  readonly maxBackoffMs?: number;
  /** How long connecting, both handshakes and the answer to the Offer may take. Default 30000. */
  readonly offerTimeoutMs?: number;
  /** How long a full socket may go without draining, mid-stream. Default 30000. */
  readonly drainTimeoutMs?: number;
  /** How long the follower may take to verify and publish after Done. Default 300000. */
  readonly installTimeoutMs?: number;
  /**
   * Checked before every chunk: whether this node still leads in `leaderTerm`. A deposed
   * leader stops at once (reported as failed): its snapshot is still committed data, but
   * the new leader decides what the follower needs. Default: always true.
   */
  readonly stillLeading?: (leaderTerm: Term) => boolean;
  /** Time for the throttle and the backoff. Default: the system clock. */
  readonly clock?: Clock;
  /** Source of the backoff jitter, in [0, 1). Default `Math.random`. */
  readonly rng?: () => number;
  /** Default: logs nothing. */
  readonly logger?: SnapshotSenderLogger;
  /** Called once per transfer that ends (not for one replaced or stopped). */
  readonly onDone: (result: SnapshotSendResult) => void;
}

/** Default `maxAttempts`. */
export const DEFAULT_SNAPSHOT_SEND_ATTEMPTS = 5;
/**
 * A throttled transfer sends at least this many chunks a second (chunks shrink to fit),
 * so a slow rate trickles evenly instead of in 1 MiB bursts with long silences.
 */
const PACED_CHUNKS_PER_SECOND = 8;
/** ...but no chunk is made smaller than this: per-frame costs would dominate. */
const MIN_PACED_CHUNK_BYTES = 16 * 1024;

const NO_LOGGER: SnapshotSenderLogger = { info() {}, warn() {} };

/** One connection of a transfer failed; `retryable` says whether another may do better. */
class SessionError extends Error {
  readonly retryable: boolean;
  constructor(message: string, retryable: boolean) {
    super(message);
    this.retryable = retryable;
  }
}

/** One transfer: a snapshot index and leader term, over one or more connections. */
interface Transfer {
  readonly askedIndex: Index;
  readonly leaderTerm: Term;
  /** Aborted when the transfer is replaced or the sender stopped. */
  readonly cancel: AbortController;
  /** Chunk bytes written, over every connection. */
  bytes: number;
  /** Bytes skipped because the follower held them, over every connection. */
  resumedBytes: number;
  /** Settles when the transfer's work is over (whether or not it reported). */
  finished: Promise<void>;
}

/**
 * Streams snapshots to one follower. `send()` starts (or replaces) a transfer; `stop()`
 * at shutdown. Single-threaded: use it from the thread that created it.
 */
export class SnapshotSender {
  /** Transfers started (replacements included). Read-only for callers. */
  transfersStarted = 0;
  /** Connections opened, over every transfer. Read-only for callers. */
  connectAttempts = 0;

  readonly #o: SnapshotSenderOptions;
  readonly #chunkBytes: number;
  readonly #bytesPerSecond: number;
  readonly #maxAttempts: number;
  readonly #clock: Clock;
  readonly #logger: SnapshotSenderLogger;
  #current: Transfer | null = null;
  #stopped = false;

  constructor(options: SnapshotSenderOptions) {
    this.#o = options;
    this.#chunkBytes = options.chunkBytes ?? DEFAULT_SNAPSHOT_CHUNK_BYTES;
    this.#bytesPerSecond = options.bytesPerSecond ?? 0;
    this.#maxAttempts = options.maxAttempts ?? DEFAULT_SNAPSHOT_SEND_ATTEMPTS;
    this.#clock = options.clock ?? SYSTEM_CLOCK;
    this.#logger = options.logger ?? NO_LOGGER;
    if (!(Number.isInteger(this.#chunkBytes) && this.#chunkBytes > 0)) {
      throw new RangeError(`chunkBytes ${this.#chunkBytes} must be a positive integer`);
    }
    if (!(Number.isFinite(this.#bytesPerSecond) && this.#bytesPerSecond >= 0)) {
      throw new RangeError(`bytesPerSecond ${this.#bytesPerSecond} must be >= 0`);
    }
    if (!(Number.isInteger(this.#maxAttempts) && this.#maxAttempts > 0)) {
      throw new RangeError(`maxAttempts ${this.#maxAttempts} must be a positive integer`);
    }
    // Throws RangeError for an id that cannot be encoded: a configuration bug, reported at once.
    this.#newAuth();
  }

  /** One connection's exchange of handshakes and proofs: a fresh nonce each time. */
  #newAuth(): ConnectorAuth {
    return new ConnectorAuth(
      {
        role: HandshakeRole.Snapshot,
        clusterId: this.#o.clusterId,
        nodeId: this.#o.nodeId,
        electionTimeoutMs: this.#o.electionTimeoutMs ?? 0,
      },
      this.#o.credentials ?? NO_CREDENTIALS,
    );
  }

  /** True while a transfer is running. */
  get busy(): boolean {
    return this.#current !== null;
  }

  /**
   * Streams the snapshot at `snapshotIndex` (or the newest, if a newer one replaced it)
   * while leading in `leaderTerm`. The same index and term as the running transfer
   * change nothing; anything else cancels the running transfer, without a report, and
   * starts this one.
   */
  send(snapshotIndex: Index, leaderTerm: Term): void {
    if (this.#stopped) return;
    const running = this.#current;
    if (running !== null) {
      if (running.askedIndex === snapshotIndex && running.leaderTerm === leaderTerm) return;
      this.#logger.info(
        { peer: this.#o.peerId, index: running.askedIndex, newIndex: snapshotIndex, term: leaderTerm },
        'snapshot transfer replaced by a newer request',
      );
      running.cancel.abort();
    }
    const transfer: Transfer = {
      askedIndex: snapshotIndex,
      leaderTerm,
      cancel: new AbortController(),
      bytes: 0,
      resumedBytes: 0,
      finished: Promise.resolve(),
    };
    this.#current = transfer;
    this.transfersStarted++;
    transfer.finished = this.#run(transfer).catch((err: unknown) => {
      // #run reports its own failures; this is a bug, not a transfer outcome.
      this.#logger.warn({ peer: this.#o.peerId, err }, 'snapshot sender failed unexpectedly');
    });
  }

  /** Cancels the running transfer (it reports nothing) and refuses new ones; resolves once its socket is closed. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const running = this.#current;
    if (running === null) return;
    running.cancel.abort();
    await running.finished;
  }

  async #run(t: Transfer): Promise<void> {
    let source: SnapshotSource | null;
    try {
      source = this.#openNewest(t.askedIndex);
    } catch (err) {
      // A damaged or unreadable snapshot: reported, so the core does not wait forever.
      this.#finish(t, t.askedIndex, `cannot open the snapshot: ${(err as Error).message}`);
      return;
    }
    if (source === null) {
      this.#finish(t, t.askedIndex, `no snapshot at index ${t.askedIndex} or newer`);
      return;
    }
    const index = source.meta.index;
    const bucket =
      this.#bytesPerSecond > 0
        ? new TokenBucket(this.#bytesPerSecond, this.#pacedChunkBytes(), this.#clock)
        : null;
    this.#logger.info(
      {
        peer: this.#o.peerId,
        index,
        askedIndex: t.askedIndex,
        files: source.files.length,
        totalBytes: source.files.reduce((sum, f) => sum + f.bytes, 0),
      },
      'snapshot transfer starting',
    );
    try {
      for (let attempt = 0; ; attempt++) {
        if (t.cancel.signal.aborted) return;
        try {
          await this.#session(t, source, bucket);
          this.#finish(t, index, null);
          return;
        } catch (err) {
          if (t.cancel.signal.aborted) return;
          const reason = err instanceof Error ? err.message : String(err);
          const retryable = !(err instanceof SessionError) || err.retryable;
          if (!retryable || attempt + 1 >= this.#maxAttempts) {
            this.#finish(t, index, reason);
            return;
          }
          const delayMs = backoffDelayMs(
            attempt,
            this.#o.minBackoffMs ?? 100,
            this.#o.maxBackoffMs ?? 2000,
            (this.#o.rng ?? Math.random)(),
          );
          this.#logger.info(
            { peer: this.#o.peerId, index, reason, attempt: attempt + 1, sentBytes: t.bytes },
            'snapshot transfer interrupted; resuming after a backoff',
          );
          await this.#clock.sleepMs(delayMs, t.cancel.signal);
        }
      }
    } finally {
      source.close();
      if (this.#current === t) this.#current = null;
    }
  }

  /** Reports the end of `t` (unless it was replaced or stopped). `reason` null means success. */
  #finish(t: Transfer, index: Index, reason: string | null): void {
    if (this.#current === t) this.#current = null;
    if (t.cancel.signal.aborted) return;
    const result: SnapshotSendResult = {
      index,
      ok: reason === null,
      bytes: t.bytes,
      resumedBytes: t.resumedBytes,
      reason,
    };
    const fields = { peer: this.#o.peerId, index, bytes: t.bytes, resumedBytes: t.resumedBytes };
    if (reason === null) this.#logger.info(fields, 'snapshot transfer done');
    else this.#logger.warn({ ...fields, reason }, 'snapshot transfer failed');
    this.#o.onDone(result);
  }

  /** The snapshot at `asked`, else the newest if it is newer (it replaced `asked`); null if neither. */
  #openNewest(asked: Index): SnapshotSource | null {
    let index = asked;
    // A few tries: each newer snapshot deletes the one before, possibly while we open it.
    for (let tries = 0; tries < 3; tries++) {
      const source = openSnapshotForSending(this.#o.dataDir, index);
      if (source !== null) return source;
      const newest = newestSnapshotIndex(this.#o.dataDir);
      if (newest < asked) return null;
      index = newest;
    }
    return null;
  }

  /** Chunk size as paced: smaller chunks for a slow rate (see `PACED_CHUNKS_PER_SECOND`). */
  #pacedChunkBytes(): number {
    if (this.#bytesPerSecond === 0) return this.#chunkBytes;
    const paced = Math.max(MIN_PACED_CHUNK_BYTES, Math.floor(this.#bytesPerSecond / PACED_CHUNKS_PER_SECOND));
    return Math.min(this.#chunkBytes, paced);
  }

  /** One connection: handshake, offer, chunks from where the follower resumes, done. Throws unless installed or stale. */
  async #session(t: Transfer, source: SnapshotSource, bucket: TokenBucket | null): Promise<void> {
    this.connectAttempts++;
    const o = this.#o;
    const auth = this.#newAuth();
    const { socket } = connectToNode(o.host, o.port, o.tls ?? null);
    const channel = new ReplyChannel(socket, o.clusterId, o.peerId, auth);
    const onCancel = (): void => {
      void channel.close('cancelled');
    };
    t.cancel.signal.addEventListener('abort', onCancel, { once: true });
    try {
      // Written before the connection is up: the socket queues them until it is.
      const offer = new OutBuffer(64 + source.metaBytes.byteLength);
      encodeSnapshotSend(offer, {
        kind: SnapshotSendKind.Offer,
        leaderTerm: t.leaderTerm,
        metaBytes: source.metaBytes,
      });
      channel.socket.write(auth.helloBytes);
      // With a secret, nothing but our proof may follow the handshake before the follower
      // has proved itself: the Offer names what we hold.
      if (auth.hello.authFollows === true) await channel.verified(o.offerTimeoutMs ?? 30_000);
      channel.socket.write(offer.view());
      const answer = await channel.nextReply(o.offerTimeoutMs ?? 30_000);
      if (answer.kind === SnapshotReplyKind.Refuse) {
        if (answer.reason === SnapshotRefuseReason.Stale) {
          this.#logger.info(
            { peer: o.peerId, index: source.meta.index, latestIndex: answer.latestIndex },
            'follower already has this snapshot or a newer one',
          );
          return;
        }
        // A local failure on the follower may pass; a refusal of the snapshot will not.
        throw new SessionError(
          `follower refused the snapshot (reason ${answer.reason}): ${answer.message}`,
          answer.reason === SnapshotRefuseReason.Error,
        );
      }
      if (answer.kind === SnapshotReplyKind.Failed) {
        throw new SessionError(`follower failed: ${answer.message}`, true);
      }
      if (answer.kind !== SnapshotReplyKind.Resume) {
        throw new SessionError(`follower answered the offer with kind ${answer.kind}`, true);
      }
      const held = answer.heldBytes;
      if (held.length !== source.files.length) {
        throw new SessionError(
          `follower's resume lists ${held.length} files, the snapshot has ${source.files.length}`,
          true,
        );
      }
      source.files.forEach((f, i) => {
        if ((held[i] as number) > f.bytes) {
          throw new SessionError(`follower holds ${held[i]} bytes of ${f.name}, which has ${f.bytes}`, true);
        }
      });
      for (const h of held) t.resumedBytes += h;
      const chunkBytes = Math.min(this.#pacedChunkBytes(), answer.maxChunkBytes);
      const drainTimeoutMs = o.drainTimeoutMs ?? 30_000;
      for (let fileIndex = 0; fileIndex < source.files.length; fileIndex++) {
        const fileBytes = (source.files[fileIndex] as { bytes: number }).bytes;
        for (let offsetBytes = held[fileIndex] as number; offsetBytes < fileBytes; ) {
          if (t.cancel.signal.aborted) throw new SessionError('cancelled', false);
          if (o.stillLeading !== undefined && !o.stillLeading(t.leaderTerm)) {
            throw new SessionError(`no longer leading in term ${t.leaderTerm}`, false);
          }
          channel.throwIfEnded();
          const dataBytes = Math.min(chunkBytes, fileBytes - offsetBytes);
          // A fresh frame per chunk: the socket keeps it until written, and reads go
          // straight into it after the header, so file bytes are copied once.
          const frame = new Uint8Array(SNAPSHOT_CHUNK_FRAME_OVERHEAD_BYTES + dataBytes);
          const readBytes = source.read(
            fileIndex,
            offsetBytes,
            frame.subarray(SNAPSHOT_CHUNK_FRAME_OVERHEAD_BYTES),
          );
          if (readBytes !== dataBytes) {
            throw new SessionError(
              `snapshot file ${fileIndex} ended early at ${offsetBytes + readBytes}`,
              false,
            );
          }
          writeChunkFrameHead(frame, 0, fileIndex, offsetBytes, dataBytes);
          if (bucket !== null) await bucket.take(dataBytes, t.cancel.signal);
          if (t.cancel.signal.aborted) throw new SessionError('cancelled', false);
          channel.throwIfEnded();
          const roomLeft = channel.socket.write(frame);
          t.bytes += dataBytes;
          offsetBytes += dataBytes;
          if (!roomLeft) await channel.drained(drainTimeoutMs);
        }
      }
      const done = new OutBuffer(16);
      encodeSnapshotSend(done, { kind: SnapshotSendKind.Done });
      channel.socket.write(done.view());
      const outcome = await channel.nextReply(o.installTimeoutMs ?? 300_000);
      if (outcome.kind === SnapshotReplyKind.Installed) {
        if (outcome.index !== source.meta.index) {
          throw new SessionError(`follower installed index ${outcome.index}, not ${source.meta.index}`, true);
        }
        return;
      }
      const why =
        outcome.kind === SnapshotReplyKind.Failed ? outcome.message : `an answer of kind ${outcome.kind}`;
      throw new SessionError(`follower did not install the snapshot: ${why}`, true);
    } finally {
      t.cancel.signal.removeEventListener('abort', onCancel);
      await channel.close(null);
    }
  }
}

/**
 * The leader's end of one snapshot-stream connection: checks the follower's handshake,
 * decodes its replies into a queue, and turns closes, errors and timeouts into
 * rejections of whoever waits. Every byte from the follower is treated as hostile.
 */
class ReplyChannel {
  readonly socket: net.Socket;
  readonly #clusterId: string;
  readonly #peerId: NodeId;
  readonly #auth: ConnectorAuth;
  readonly #decoder = new FrameDecoder({ expectHandshake: true, snapshotReplies: true });
  readonly #replies: SnapshotReplyMessage[] = [];
  #verified = false;
  /** Why the connection ended (or must end); null while it is usable. */
  #ended: string | null = null;
  #closed = false;
  #wake: (() => void) | null = null;
  readonly #closedPromise: Promise<void>;

  constructor(socket: net.Socket, clusterId: string, peerId: NodeId, auth: ConnectorAuth) {
    this.socket = socket;
    this.#auth = auth;
    this.#clusterId = clusterId;
    this.#peerId = peerId;
    socket.setNoDelay(true);
    // A follower that vanished is otherwise only noticed when the kernel gives up.
    socket.setKeepAlive(true, 5000);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('drain', () => this.#notify());
    socket.on('error', (err: NodeJS.ErrnoException) => this.#end(err.code ?? err.message));
    this.#closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.#closed = true;
        this.#end('connection closed by the follower');
        resolve();
      });
    });
  }

  /** Throws if the connection ended or the follower answered mid-stream (which can only be a failure). */
  throwIfEnded(): void {
    if (this.#ended !== null) throw new SessionError(this.#ended, true);
    const early = this.#replies[0];
    if (early !== undefined) {
      const why = early.kind === SnapshotReplyKind.Failed ? early.message : `an answer of kind ${early.kind}`;
      throw new SessionError(`follower stopped the stream: ${why}`, true);
    }
  }

  /** Resolves once the follower's handshake (and proof) checked out; rejects on close, refusal or after `timeoutMs`. */
  verified(timeoutMs: number): Promise<void> {
    return this.#waitFor(() => this.#verified, timeoutMs, 'no handshake answer from the follower');
  }

  /** The follower's next reply; rejects on close, a bad frame or after `timeoutMs`. */
  async nextReply(timeoutMs: number): Promise<SnapshotReplyMessage> {
    await this.#waitFor(() => this.#replies.length > 0, timeoutMs, 'no answer from the follower');
    return this.#replies.shift() as SnapshotReplyMessage;
  }

  /** Waits until the socket's buffer drained; rejects on close or after `timeoutMs`. */
  drained(timeoutMs: number): Promise<void> {
    return this.#waitFor(() => !this.socket.writableNeedDrain, timeoutMs, 'the follower stopped reading');
  }

  /** Closes the connection (with `reason` if it is a failure) and resolves once it is closed. */
  close(reason: string | null): Promise<void> {
    if (reason !== null) this.#end(reason);
    if (!this.#closed) this.socket.destroy();
    return this.#closedPromise;
  }

  async #waitFor(ready: () => boolean, timeoutMs: number, timeoutReason: string): Promise<void> {
    for (;;) {
      if (ready()) return;
      if (this.#ended !== null) throw new SessionError(this.#ended, true);
      const woke = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs);
        this.#wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      this.#wake = null;
      if (!woke) {
        this.#end(`timeout: ${timeoutReason} in ${timeoutMs} ms`);
        this.socket.destroy();
      }
    }
  }

  #notify(): void {
    this.#wake?.();
  }

  #end(reason: string): void {
    if (this.#ended === null) this.#ended = reason;
    this.#notify();
  }

  #onData(chunk: Buffer): void {
    if (this.#ended !== null) return;
    this.#decoder.push(chunk);
    for (;;) {
      const frame = this.#decoder.next();
      if (frame === null) break;
      if (frame instanceof FrameError)
        return void this.#fail(`protocol error: ${frame.code}: ${frame.message}`);
      if (frame.type === FrameType.Handshake || frame.type === FrameType.Auth) {
        let step: ConnectorStep;
        if (frame.type === FrameType.Auth) step = this.#auth.onAuth(frame.auth.proof);
        else {
          const hs = frame.handshake;
          if (hs.clusterId !== this.#clusterId) {
            return void this.#fail(`refused: the follower is in cluster ${JSON.stringify(hs.clusterId)}`);
          }
          if (hs.role !== HandshakeRole.Peer || hs.nodeId !== this.#peerId) {
            return void this.#fail(
              `refused: the node at this address is ${JSON.stringify(hs.nodeId)}, not the expected peer`,
            );
          }
          step = this.#auth.onHandshake(hs);
        }
        if (step.kind === 'refuse') return void this.#fail(step.reason);
        if (step.kind === 'done') {
          if (step.reply.byteLength > 0) this.socket.write(step.reply);
          this.#verified = true;
        }
        continue;
      }
      // The decoder yields nothing but a handshake first, then SNAPSHOT_REPLY frames.
      if (frame.type !== FrameType.SnapshotReply || !this.#verified) {
        return void this.#fail(`protocol error: unexpected frame type ${frame.type}`);
      }
      const reply = decodeSnapshotReply(frame.body);
      if (reply instanceof SnapshotStreamError)
        return void this.#fail(`protocol error: ${reply.code}: ${reply.message}`);
      this.#replies.push(reply);
    }
    this.#notify();
  }

  #fail(reason: string): void {
    this.#end(reason);
    this.socket.destroy();
  }
}
