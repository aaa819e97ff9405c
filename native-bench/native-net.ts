/**
 * raftline's side of the loopback TCP rows, with the far end in a child process
 * (native-net-peer.ts, or the C sink of native-bench/c/tcp.c):
 *
 * - **Replicator stream.** The replicator worker's send path (src/workers/replicator/
 *   worker.ts) on this thread: per AppendEntries, the message head and the entry records
 *   from a SharedArrayBuffer "log window" are copied into an `OutBuffer`, which is sliced
 *   and handed to a `PeerLink` (src/workers/replicator/peer-link.ts) connected to the sink
 *   after raftline's handshake. At most `MAX_UNFLUSHED_BYTES` may wait in the socket for
 *   the kernel (Raft's inflight window bounds it in a node; here nothing answers). The
 *   rate is the sink's: bytes (or frames) from the first arrival to the last.
 * - **Heartbeat round trip.** A `PeerServer` and a `PeerLink` here, the same pair in the
 *   child: MsgHeartbeat goes out on our link, the child's PeerServer decodes it and its
 *   PeerLink sends MsgHeartbeatResp back to our PeerServer, which sends the next. Both
 *   frames are encoded afresh each time. Two connections, one per direction, as between
 *   two nodes; the ring hops to and from the replicator threads are not included.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PeerServer } from '../src/main/peer-server.js';
import { MessageType, message } from '../src/raft/messages.js';
import { windowView } from '../src/shared/log-window.js';
import {
  encodeHandshakeFrame,
  encodeRaftMessageFrame,
  encodeRaftMessageHead,
  OutBuffer,
} from '../src/shared/message-codec.js';
import { HandshakeRole } from '../src/shared/protocol.js';
import { PeerLink } from '../src/workers/replicator/peer-link.js';
import { encodeBatch } from './bench-records.js';

const HOST = '127.0.0.1';
const CLUSTER_ID = 'native-bench';
const SENDER_ID = 'n1';
const SINK_ID = 'n2';
/** Bytes handed to the socket but not yet to the kernel before the sender pauses. */
const MAX_UNFLUSHED_BYTES = 4 * 1024 * 1024;
const PEER_SCRIPT = fileURLToPath(new URL('./native-net-peer.js', import.meta.url));

/** A child speaking JSON lines on stdout. */
class LineChild {
  readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: Record<string, unknown>[] = [];
  private waiter: (() => void) | null = null;
  private stderr = '';
  private exited: string | null = null;

  constructor(command: string, args: readonly string[]) {
    this.child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      if (line.trim() === '') return;
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
      this.waiter?.();
    });
    this.child.stderr.setEncoding('utf8').on('data', (s: string) => {
      this.stderr += s;
    });
    this.child.on('exit', (code, signal) => {
      this.exited = `exited with ${code ?? signal}${this.stderr === '' ? '' : `: ${this.stderr.trim()}`}`;
      this.waiter?.();
    });
    this.child.on('error', (error) => {
      this.exited = error.message;
      this.waiter?.();
    });
  }

  /** The next line that has `key`, waiting for it; rejects if the child exits first or after `timeoutMs`. */
  async next(key: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const deadlineMs = performance.now() + timeoutMs;
    for (;;) {
      const at = this.lines.findIndex((line) => key in line);
      if (at >= 0) return this.lines.splice(at, 1)[0] as Record<string, unknown>;
      if (this.exited !== null) throw new Error(`${key}: child ${this.exited}`);
      const leftMs = deadlineMs - performance.now();
      if (leftMs <= 0) throw new Error(`timed out waiting for ${key} from the child`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, leftMs);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
  }

  /** Ends its stdin and waits for it to exit, killing it after `timeoutMs`. */
  async end(timeoutMs: number): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }
}

/** Where the replicator stream goes. */
export type SinkKind =
  /** native-bench/c/tcp.c `sink`: reads and discards, in C. */
  | { readonly kind: 'c'; readonly tcpProgram: string }
  /** native-net-peer.ts `discard-sink`: reads and discards, in Node. */
  | { readonly kind: 'node-discard' }
  /** native-net-peer.ts `peer-sink`: a PeerServer that decodes and verifies everything. */
  | { readonly kind: 'peer-server' };

export interface StreamFigures {
  /** Frame bytes (heads and records) received per second, 10^6 bytes. */
  readonly mbPerSec: number;
  readonly entriesPerSec: number;
  readonly messagesPerSec: number;
  /** Bytes of one AppendEntries frame. */
  readonly frameBytes: number;
  /** Frames the sink received in the timed part. */
  readonly frames: number;
}

/**
 * Streams AppendEntries of `entriesPerMessage` entries of `payloadBytes` each to `sink`
 * through a PeerLink for `seconds`.
 */
export async function measureReplicatorStream(
  sink: SinkKind,
  entriesPerMessage: number,
  payloadBytes: number,
  seconds: number,
): Promise<StreamFigures> {
  const out = new OutBuffer(256 * 1024);
  // The records, encoded once into a shared "log window" as the coordinator writes them.
  const records = encodeBatch(1, entriesPerMessage, new Uint8Array(payloadBytes).fill(0x5a));
  let windowBytesLength = 1024;
  while (windowBytesLength < records.byteLength) windowBytesLength *= 2;
  const windowBytes = new Uint8Array(new SharedArrayBuffer(windowBytesLength));
  windowBytes.set(records, 0);
  const headOut = new OutBuffer(256);
  encodeRaftMessageHead(
    headOut,
    message({
      type: MessageType.MsgApp,
      from: SENDER_ID,
      to: SINK_ID,
      term: 1,
      logTerm: 0,
      index: 0,
      commit: 0,
    }),
    records.byteLength,
    entriesPerMessage,
  );
  const head = headOut.view().slice();
  const frameBytes = head.byteLength + records.byteLength;

  const handshakeOut = new OutBuffer(64);
  encodeHandshakeFrame(handshakeOut, { role: HandshakeRole.Peer, clusterId: CLUSTER_ID, nodeId: SINK_ID });
  const child =
    sink.kind === 'c'
      ? new LineChild(sink.tcpProgram, ['sink', Buffer.from(handshakeOut.view()).toString('hex')])
      : new LineChild(process.execPath, [
          PEER_SCRIPT,
          sink.kind === 'peer-server' ? 'peer-sink' : 'discard-sink',
          CLUSTER_ID,
          SINK_ID,
        ]);
  let link: PeerLink | null = null;
  try {
    const port = (await child.next('port', 10_000)).port as number;
    let framesSent = 0;
    const sent = await new Promise<number>((resolve, reject) => {
      let unflushedBytes = 0;
      let stopped = false;
      let pumpQueued = false;
      let deadlineMs = 0;
      const onWritten = (error: Error | null): void => {
        if (error !== null) {
          reject(error);
          return;
        }
        unflushedBytes -= frameBytes;
        if (stopped) {
          if (unflushedBytes === 0) resolve(framesSent);
        } else if (!pumpQueued && unflushedBytes <= MAX_UNFLUSHED_BYTES / 2) {
          pumpQueued = true;
          setImmediate(pump);
        }
      };
      // The replicator's loop body: copy head + window records into `out`, slice, send.
      const pump = (): void => {
        pumpQueued = false;
        const l = link as PeerLink;
        while (!stopped && unflushedBytes < MAX_UNFLUSHED_BYTES) {
          const at = out.append(frameBytes);
          out.bytes.set(head, at);
          out.bytes.set(windowView(windowBytes, 0, records.byteLength), at + head.byteLength);
          if (!l.send(out.view().slice(), onWritten)) {
            reject(new Error('PeerLink refused a send (disconnected or congested)'));
            return;
          }
          out.clear();
          unflushedBytes += frameBytes;
          framesSent++;
          if ((framesSent & 15) === 0 && performance.now() >= deadlineMs) stopped = true;
        }
      };
      link = new PeerLink({
        host: HOST,
        port,
        clusterId: CLUSTER_ID,
        nodeId: SENDER_ID,
        peerId: SINK_ID,
        connectTimeoutMs: 5000,
        onConnect: () => {
          clearTimeout(connectTimer);
          deadlineMs = performance.now() + seconds * 1000;
          pump();
        },
        onDisconnect: (reason) => {
          if (!stopped || unflushedBytes > 0) reject(new Error(`link down: ${reason}`));
        },
      });
      // PeerLink retries for ever; a sink that never answers must fail the row, not hang the run.
      const connectTimer = setTimeout(
        () => reject(new Error('no connection to the sink within 10 s')),
        10_000,
      );
      link.start();
    });
    const l = link as PeerLink | null;
    if (sink.kind === 'c') {
      // The C sink reads until the end of the stream, then reports.
      await l?.stop();
      link = null;
      const got = await child.next('bytes', 30_000);
      const bytes = got.bytes as number;
      const secs = got.seconds as number;
      const frames = bytes / frameBytes;
      return {
        mbPerSec: bytes / secs / 1e6,
        entriesPerSec: (frames * entriesPerMessage) / secs,
        messagesPerSec: frames / secs,
        frameBytes,
        frames,
      };
    }
    // A Node sink reports once it has seen everything that was sent.
    const handshakeBytes = handshakeOut.length;
    child.child.stdin.write(
      `expect ${sink.kind === 'peer-server' ? sent : sent * frameBytes + handshakeBytes}\n`,
    );
    const got = await child.next('seconds', 60_000);
    const secs = got.seconds as number;
    const frames = sink.kind === 'peer-server' ? (got.frames as number) : (got.bytes as number) / frameBytes;
    if (sink.kind === 'peer-server' && (got.frame_errors as number) > 0) {
      throw new Error(`the PeerServer sink refused ${got.frame_errors} frame(s)`);
    }
    return {
      mbPerSec: (frames * frameBytes) / secs / 1e6,
      entriesPerSec: (frames * entriesPerMessage) / secs,
      messagesPerSec: frames / secs,
      frameBytes,
      frames,
    };
  } finally {
    await (link as PeerLink | null)?.stop();
    await child.end(5000);
  }
}

export interface RoundTripFigures {
  readonly roundTripsPerSec: number;
  readonly meanUs: number;
  readonly p50Us: number;
  readonly p99Us: number;
  /** Bytes of one MsgHeartbeat frame (the answer is the same size). */
  readonly frameBytes: number;
}

/** Heartbeat ping-pong between this process and a `pong` child for `seconds`, after a warm-up. */
export async function measureHeartbeatRoundTrip(seconds: number): Promise<RoundTripFigures> {
  const out = new OutBuffer(256);
  let link: PeerLink | null = null;
  let onAnswer: (() => void) | null = null;
  const server = new PeerServer({
    host: HOST,
    port: 0,
    clusterId: CLUSTER_ID,
    nodeId: SENDER_ID,
    onMessage: (frame) => {
      if (frame.message.type === MessageType.MsgHeartbeatResp) onAnswer?.();
    },
  });
  const { port: ourPort } = await server.listen();
  const child = new LineChild(process.execPath, [
    PEER_SCRIPT,
    'pong',
    CLUSTER_ID,
    SINK_ID,
    SENDER_ID,
    String(ourPort),
  ]);
  try {
    const port = (await child.next('port', 10_000)).port as number;
    const linkUp = new Promise<void>((resolve) => {
      link = new PeerLink({
        host: HOST,
        port,
        clusterId: CLUSTER_ID,
        nodeId: SENDER_ID,
        peerId: SINK_ID,
        onConnect: resolve,
      });
      link.start();
    });
    await Promise.all([linkUp, child.next('ready', 10_000)]);
    const l = link as unknown as PeerLink;
    let frameBytes = 0;
    let trip = 0;
    const ping = (): void => {
      out.clear();
      frameBytes = encodeRaftMessageFrame(
        out,
        message({
          type: MessageType.MsgHeartbeat,
          from: SENDER_ID,
          to: SINK_ID,
          term: 1,
          commit: 0,
          context: trip,
        }),
      );
      if (!l.send(out.view().slice())) throw new Error('PeerLink refused a heartbeat');
    };
    /** Runs round trips for `ms`; returns each one's time in µs. */
    const run = (ms: number): Promise<number[]> =>
      new Promise((resolve) => {
        const samplesUs: number[] = [];
        const endMs = performance.now() + ms;
        let sentAtMs = performance.now();
        onAnswer = () => {
          const nowMs = performance.now();
          samplesUs.push((nowMs - sentAtMs) * 1000);
          trip++;
          if (nowMs >= endMs) {
            onAnswer = null;
            resolve(samplesUs);
            return;
          }
          sentAtMs = nowMs;
          ping();
        };
        ping();
      });
    await run(Math.min(500, (seconds * 1000) / 4));
    const startMs = performance.now();
    const samplesUs = await run(seconds * 1000);
    const elapsedMs = performance.now() - startMs;
    samplesUs.sort((a, b) => a - b);
    const n = samplesUs.length;
    return {
      roundTripsPerSec: (n * 1000) / elapsedMs,
      meanUs: (elapsedMs * 1000) / n,
      p50Us: samplesUs[Math.floor(n / 2)] as number,
      p99Us: samplesUs[Math.floor(n * 0.99)] as number,
      frameBytes,
    };
  } finally {
    await (link as PeerLink | null)?.stop();
    await child.end(5000);
    await server.close();
  }
}
