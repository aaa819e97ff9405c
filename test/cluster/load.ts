/**
 * Load generators for the overload and slow-follower tests. Successes and ERR_RAFT_BUSY
 * answers get latency histograms of their own, so a test can tell how fast the excess is
 * turned away from how fast the admitted requests are served (`raftline bench` merges
 * every error into one count and keeps no histogram of refusals, hence this).
 *
 * - `closedLoad`: `RaftClient`s keeping a window of applies in flight: the peak a real
 *   client sees, and the normal load before and after an overload.
 * - `openLoad`: raw client connections sending pre-encoded Apply frames at a fixed rate
 *   whatever happens to the answers: an offered load the cluster cannot refuse by being
 *   slow. It skips `RaftClient` (a promise and a timer per request) because this process
 *   shares the machine's cores with the nodes it loads: every microsecond it spends per
 *   request is taken from them, and at ten times the peak it would be the bottleneck.
 */

import net from 'node:net';
import { RaftClient } from '../../src/client/raft-client.js';
import { parseHostPort } from '../../src/shared/address.js';
import {
  ClientFrameError,
  decodeClientResponse,
  encodeClientRequest,
} from '../../src/shared/client-codec.js';
import { readU32 } from '../../src/shared/entry-codec.js';
import {
  createLatencyHistogram,
  type Histogram,
  type LatencyPercentilesUs,
  percentiles,
} from '../../src/shared/histogram.js';
import { encodeHandshakeFrame, FrameDecoder, FrameError, OutBuffer } from '../../src/shared/message-codec.js';
import {
  CLIENT_RESPONSE_ID_OFFSET,
  CLIENT_RESPONSE_STATUS_OFFSET,
  ClientOp,
  ClientStatus,
  FrameType,
  HandshakeRole,
} from '../../src/shared/protocol.js';

/** What one load phase saw. */
export interface LoadResult {
  readonly ok: number;
  readonly busy: number;
  /** Other failures by code (timeouts, lost connections, ...). */
  readonly errors: Record<string, number>;
  /** Requests sent. */
  readonly sent: number;
  /**
   * Open loop: requests that were due but not sent, because their connection had too many
   * outstanding or the node had not taken its previous bytes yet (TCP pushed back).
   */
  readonly unsent: number;
  /** From the first request to the last answer. */
  readonly elapsedS: number;
  readonly okPerSec: number;
  readonly sentPerSec: number;
  /** Latency of successful applies, from when each was sent. */
  readonly okLatency: LatencyPercentilesUs;
  /** Latency of ERR_RAFT_BUSY answers, from when each was sent. */
  readonly busyLatency: LatencyPercentilesUs;
}

/** Counts and histograms of one phase, filled in as answers arrive. */
class Tally {
  ok = 0;
  busy = 0;
  sent = 0;
  unsent = 0;
  readonly errors: Record<string, number> = {};
  readonly okHistogram: Histogram = createLatencyHistogram();
  readonly busyHistogram: Histogram = createLatencyHistogram();

  succeeded(sentMs: number, nowMs: number): void {
    this.ok++;
    this.okHistogram.recordValue(latencyUs(sentMs, nowMs));
  }

  failed(code: string, sentMs: number, nowMs: number): void {
    if (code === 'ERR_RAFT_BUSY') {
      this.busy++;
      this.busyHistogram.recordValue(latencyUs(sentMs, nowMs));
    } else this.errors[code] = (this.errors[code] ?? 0) + 1;
  }

  result(elapsedS: number): LoadResult {
    return {
      ok: this.ok,
      busy: this.busy,
      errors: this.errors,
      sent: this.sent,
      unsent: this.unsent,
      elapsedS,
      okPerSec: this.ok / elapsedS,
      sentPerSec: this.sent / elapsedS,
      okLatency: percentiles(this.okHistogram),
      busyLatency: percentiles(this.busyHistogram),
    };
  }
}

/** Whole µs, at least 1 (the histogram's lowest value), at most its highest. */
function latencyUs(fromMs: number, toMs: number): number {
  return Math.min(60_000_000, Math.max(1, Math.round((toMs - fromMs) * 1000)));
}

export interface ClosedLoadOptions {
  readonly endpoints: readonly string[];
  /** Client connections (one `RaftClient` each). */
  readonly connections: number;
  /** Applies kept in flight per connection. */
  readonly windowPerConnection: number;
  readonly durationMs: number;
  /** The command every apply sends. */
  readonly command: Uint8Array;
}

/** Runs `RaftClient`s in a closed loop for `durationMs`, then closes them. */
export async function closedLoad(o: ClosedLoadOptions): Promise<LoadResult> {
  const clients: RaftClient[] = [];
  try {
    for (let i = 0; i < o.connections; i++) {
      const c = new RaftClient({ endpoints: o.endpoints });
      clients.push(c);
      await c.connect();
    }
    const tally = new Tally();
    const startMs = performance.now();
    const stopMs = startMs + o.durationMs;
    const lane = async (client: RaftClient): Promise<void> => {
      while (performance.now() < stopMs) {
        const sentMs = performance.now();
        tally.sent++;
        try {
          await client.apply(o.command);
          tally.succeeded(sentMs, performance.now());
        } catch (err) {
          tally.failed((err as { code?: string }).code ?? 'ERR_UNKNOWN', sentMs, performance.now());
        }
      }
    };
    const lanes: Promise<void>[] = [];
    for (const c of clients) for (let j = 0; j < o.windowPerConnection; j++) lanes.push(lane(c));
    await Promise.all(lanes);
    return tally.result((performance.now() - startMs) / 1000);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

export interface OpenLoadOptions {
  /** `host:port` of the node to load (the leader: a follower answers NOT_LEADER). */
  readonly endpoint: string;
  readonly clusterId?: string;
  readonly connections: number;
  /** Applies sent per second, over all connections. */
  readonly ratePerSec: number;
  readonly durationMs: number;
  readonly command: Uint8Array;
  /**
   * Requests outstanding on one connection beyond which a due request is not sent but
   * counted `unsent`: a node that stops answering cannot make this process grow without
   * end. Default 16384 (the request ids of a connection cycle through 65536 slots).
   */
  readonly maxOutstandingPerConnection?: number;
  /** How long to wait for the last answers after the sending stopped. Default 15000. */
  readonly settleMs?: number;
}

const BUSY_CODE = new TextEncoder().encode('ERR_RAFT_BUSY');
/** How far into an error answer's body its code is looked for (the record's first field). */
const CODE_SEARCH_BYTES = 64;

/** Whether an error answer's body holds the string ERR_RAFT_BUSY near its start (its `code`). */
function holdsBusyCode(body: Uint8Array): boolean {
  const end = Math.min(body.byteLength, CODE_SEARCH_BYTES) - BUSY_CODE.byteLength;
  outer: for (let at = 0; at <= end; at++) {
    for (let i = 0; i < BUSY_CODE.byteLength; i++) if (body[at + i] !== BUSY_CODE[i]) continue outer;
    return true;
  }
  return false;
}

/** Bytes queued in one connection's socket beyond which due requests are counted `unsent`. */
const MAX_UNSENT_BYTES = 64 * 1024;
/** Send times are kept per request id modulo this; ids cycle through it. */
const ID_SLOTS = 65_536;

/** One raw client connection of `openLoad`. */
interface RawConnection {
  readonly socket: net.Socket;
  readonly decoder: FrameDecoder;
  readonly out: OutBuffer;
  /** performance.now() when request id `i` was sent, at `i % ID_SLOTS`. */
  readonly sentMs: Float64Array;
  nextId: number;
  outstanding: number;
  lost: boolean;
}

/**
 * Sends `ratePerSec` applies to `endpoint` for `durationMs` over raw client connections
 * (request k is due at start + k / rate; each 1 ms timer turn sends every request due by
 * then, one socket write per connection), then waits for the answers still owed.
 */
export async function openLoad(o: OpenLoadOptions): Promise<LoadResult> {
  const maxOutstanding = o.maxOutstandingPerConnection ?? 16_384;
  const tally = new Tally();
  const conns: RawConnection[] = [];
  const onAnswers = (c: RawConnection): void => {
    const nowMs = performance.now();
    for (;;) {
      const frame = c.decoder.next();
      if (frame === null) return;
      if (frame instanceof FrameError) throw frame;
      if (frame.type !== FrameType.ClientResponse) continue; // the node's handshake answer
      const body = frame.body;
      c.outstanding--;
      const sentMs = c.sentMs[readU32(body, CLIENT_RESPONSE_ID_OFFSET) % ID_SLOTS] as number;
      // Only the answers that are neither a success nor a BUSY are decoded: decoding every
      // one would make this process, not the node, the bottleneck of an overload.
      if (body[CLIENT_RESPONSE_STATUS_OFFSET] === ClientStatus.Ok) tally.succeeded(sentMs, nowMs);
      else if (holdsBusyCode(body)) tally.failed('ERR_RAFT_BUSY', sentMs, nowMs);
      else {
        const r = decodeClientResponse(body);
        if (r instanceof ClientFrameError) throw r;
        tally.failed(r.ok ? 'ERR_UNEXPECTED_OK' : r.error.code, sentMs, nowMs);
      }
    }
  };
  try {
    const { host, port } = parseHostPort(o.endpoint);
    for (let i = 0; i < o.connections; i++) {
      const socket = net.connect({ host, port, noDelay: true });
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      const c: RawConnection = {
        socket,
        decoder: new FrameDecoder({ clientResponses: true }),
        out: new OutBuffer(64 * 1024),
        sentMs: new Float64Array(ID_SLOTS),
        nextId: 0,
        outstanding: 0,
        lost: false,
      };
      socket.on('data', (chunk: Buffer) => {
        c.decoder.push(chunk);
        onAnswers(c);
      });
      socket.on('error', () => {});
      socket.on('close', () => {
        c.lost = true;
      });
      encodeHandshakeFrame(c.out, {
        role: HandshakeRole.Client,
        clusterId: o.clusterId ?? 'raftline',
        nodeId: '',
      });
      conns.push(c);
    }
    const startMs = performance.now();
    const stopMs = startMs + o.durationMs;
    const intervalMs = 1000 / o.ratePerSec;
    let k = 0;
    while (performance.now() < stopMs) {
      const nowMs = performance.now();
      for (let dueMs = startMs + k * intervalMs; dueMs <= nowMs && dueMs < stopMs; dueMs += intervalMs) {
        const c = conns[k % conns.length] as RawConnection;
        k++;
        // A connection whose bytes the node has not taken yet is not written more: the
        // latency measured is then the node's, not this process's send queue.
        if (c.outstanding >= maxOutstanding || c.lost || c.socket.writableLength > MAX_UNSENT_BYTES) {
          tally.unsent++;
          continue;
        }
        const id = c.nextId;
        c.nextId = (id + 1) % ID_SLOTS;
        c.sentMs[id] = nowMs;
        c.outstanding++;
        tally.sent++;
        encodeClientRequest(c.out, { op: ClientOp.Apply, flags: 0, requestId: id, payload: o.command });
      }
      for (const c of conns) {
        if (c.out.length === 0 || c.lost) continue;
        c.socket.write(c.out.view().slice());
        c.out.clear();
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    const settleBy = performance.now() + (o.settleMs ?? 15_000);
    while (conns.some((c) => c.outstanding > 0 && !c.lost) && performance.now() < settleBy) {
      await new Promise((r) => setTimeout(r, 5));
    }
    for (const c of conns) {
      if (c.outstanding > 0) tally.errors.ERR_NO_ANSWER = (tally.errors.ERR_NO_ANSWER ?? 0) + c.outstanding;
    }
    return tally.result((performance.now() - startMs) / 1000);
  } finally {
    for (const c of conns) c.socket.destroy();
  }
}
