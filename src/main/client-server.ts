/**
 * The client side of the node's listen address: a connection whose handshake says
 * "client" is handed here by the peer server. Requests carry ids, many are in flight on
 * one connection, and replies go back in whatever order they finish, gathered into one
 * socket write per event-loop turn.
 *
 * Membership requests (AddPeer, AddLearner: `id=host:port`; RemovePeer: an id) are parsed
 * here with `address.ts`: a malformed spec is answered with ERR_RAFT_BAD_REQUEST naming
 * it, and the handler only ever sees a valid id and a normalised `host:port`.
 */

import type net from 'node:net';
import type { Logger } from 'pino';
import { EntryType } from '../raft/types.js';
import { formatHostPort, type PeerSpec, parsePeerSpec } from '../shared/address.js';
import {
  type ClientErrorValue,
  ClientOp,
  type ClientRequest,
  clientOpName,
  decodeClientRequest,
  encodeClientResponse,
} from '../shared/client-codec.js';
import { type FrameDecoder, FrameError, OutBuffer } from '../shared/message-codec.js';
import { FrameType } from '../shared/protocol.js';
import { decodeValue } from '../shared/value-codec.js';
import type { ReadConsistency } from './coordinator.js';
import { NotLeaderError } from './errors.js';
import type { Value } from './state-machine.js';

/** What a client request can ask of the node. */
export interface ClientHandler {
  apply(data: Uint8Array, type: EntryType.Normal | EntryType.Batch): Promise<Value>;
  read(query: Value, consistency: ReadConsistency): Promise<Value>;
  /** The node's status as a Value, with its latency histograms encoded. */
  statusValue(): Value;
  /** Saves a snapshot on this node; resolves with `{ index, term, fresh }`. */
  snapshot(): Promise<Value>;
  /** Hands leadership to `target`; rejects with NotLeaderError (with the hint) on a non-leader. */
  transfer(target: string): Promise<Value>;
  /**
   * Adds `id`, reachable at `address` (host:port), as a voter: it joins as a learner, and
   * is promoted once caught up. Resolves with the configuration `{ index, voters, learners }`
   * once the promotion commits. NotLeaderError on a non-leader.
   */
  addPeer(id: string, address: string): Promise<Value>;
  /** Adds `id` at `address` as a learner; resolves with the configuration once committed. */
  addLearner(id: string, address: string): Promise<Value>;
  /** Removes voter or learner `id`; resolves with the configuration once committed. */
  removePeer(id: string): Promise<Value>;
}

const CONSISTENCY: readonly ReadConsistency[] = ['linearizable', 'lease', 'stale'];
/**
 * Answers waiting to be sent (encoded this turn, or queued in the socket) beyond which no
 * more requests are read from the connection until the client has taken them: a client
 * that pipelines requests and does not read its answers would otherwise make the node
 * buffer them without bound (a 13-byte Status request is answered with kilobytes).
 */
export const MAX_PENDING_ANSWER_BYTES = 1024 * 1024;
/**
 * Requests of one connection being worked on (read, not yet answered) beyond which no
 * more are read until some are answered: answers that arrive later (reads, applies) are
 * then bounded too. Far above what a `RaftClient` keeps in flight; more simply wait in
 * TCP, so nothing is refused.
 */
export const MAX_REQUESTS_IN_FLIGHT = 1024;
/** Text payloads (ids, peer specs): the codec has already checked that they are UTF-8. */
const utf8 = new TextDecoder('utf-8');

/** Serves one client connection until it closes. */
export function serveClient(
  socket: net.Socket,
  decoder: FrameDecoder,
  handler: ClientHandler,
  logger: Pick<Logger, 'warn'>,
): void {
  const out = new OutBuffer(16 * 1024);
  let flushScheduled = false;
  let closed = false;
  /** Requests read and not yet answered. */
  let inFlight = 0;
  /**
   * Reading is paused while more answers wait than `MAX_PENDING_ANSWER_BYTES`, or more
   * requests than `MAX_REQUESTS_IN_FLIGHT`.
   */
  let readPaused = false;
  const answersFull = (): boolean =>
    inFlight >= MAX_REQUESTS_IN_FLIGHT || out.length + socket.writableLength > MAX_PENDING_ANSWER_BYTES;
  const flush = (): void => {
    flushScheduled = false;
    if (closed || out.length === 0) return;
    // socket.write keeps the buffer until it is sent: give it its own copy, one per turn.
    socket.write(out.view().slice());
    out.clear();
    // The socket may have taken everything at once, in which case no 'drain' follows.
    resumeReading();
  };
  const respond = (
    requestId: number,
    result: { ok: true; value: Value } | { ok: false; error: ClientErrorValue },
  ): void => {
    inFlight--;
    if (closed) return;
    try {
      encodeClientResponse(
        out,
        result.ok
          ? { requestId, ok: true, value: result.value }
          : { requestId, ok: false, error: result.error },
      );
    } catch (err) {
      // A result the value codec cannot carry is answered as an error, not dropped.
      encodeClientResponse(out, { requestId, ok: false, error: errorValue(err) });
    }
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  };
  /** Answers `requestId` with how `call` settles; a handler that throws is answered as if it rejected. */
  const settle = (requestId: number, call: () => Promise<Value>): void => {
    let p: Promise<Value>;
    try {
      p = call();
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (value) => respond(requestId, { ok: true, value }),
      (err: unknown) => respond(requestId, { ok: false, error: errorValue(err) }),
    );
  };
  /** Works on `req`; every path answers it exactly once (`respond`). */
  const handle = (req: ClientRequest): void => {
    inFlight++;
    switch (req.op) {
      case ClientOp.Apply:
        settle(req.requestId, () => handler.apply(req.payload, EntryType.Normal));
        return;
      case ClientOp.ApplyBatch:
        // The request's payload is already a batch entry's payload (batch-codec.ts).
        settle(req.requestId, () => handler.apply(req.payload, EntryType.Batch));
        return;
      case ClientOp.Read: {
        const consistency = CONSISTENCY[req.flags];
        if (consistency === undefined) {
          respond(req.requestId, {
            ok: false,
            error: { code: 'ERR_RAFT_BAD_REQUEST', message: `unknown consistency ${req.flags}` },
          });
          return;
        }
        let query: Value;
        try {
          query = decodeValue(req.payload, 0, req.payload.byteLength);
        } catch (err) {
          respond(req.requestId, { ok: false, error: errorValue(err) });
          return;
        }
        settle(req.requestId, () => handler.read(query, consistency));
        return;
      }
      case ClientOp.Status: {
        // Answered at once (nothing to wait for), so that the answer, kilobytes for a
        // 13-byte request, counts against MAX_PENDING_ANSWER_BYTES before the next request is read.
        let value: Value;
        try {
          value = handler.statusValue();
        } catch (err) {
          respond(req.requestId, { ok: false, error: errorValue(err) });
          return;
        }
        respond(req.requestId, { ok: true, value });
        return;
      }
      case ClientOp.Transfer: {
        const target = utf8.decode(req.payload);
        settle(req.requestId, () => handler.transfer(target));
        return;
      }
      case ClientOp.Snapshot:
        settle(req.requestId, () => handler.snapshot());
        return;
      case ClientOp.AddPeer:
      case ClientOp.AddLearner: {
        let spec: PeerSpec;
        try {
          spec = parsePeerSpec(utf8.decode(req.payload));
        } catch (err) {
          // A typo in a spec is the client's mistake, answered as such; the connection and
          // the requests in flight on it carry on.
          respond(req.requestId, {
            ok: false,
            error: {
              code: 'ERR_RAFT_BAD_REQUEST',
              message: `${clientOpName(req.op)}: ${(err as Error).message}`,
            },
          });
          return;
        }
        const address = formatHostPort(spec);
        settle(
          req.requestId,
          req.op === ClientOp.AddPeer
            ? () => handler.addPeer(spec.id, address)
            : () => handler.addLearner(spec.id, address),
        );
        return;
      }
      case ClientOp.RemovePeer: {
        const id = utf8.decode(req.payload);
        settle(req.requestId, () => handler.removePeer(id));
        return;
      }
      default:
        respond(req.requestId, {
          ok: false,
          error: { code: 'ERR_RAFT_BAD_REQUEST', message: `unknown op ${req.op}` },
        });
    }
  };
  const fail = (reason: string, detail: object): void => {
    logger.warn({ remote: socket.remoteAddress, ...detail }, reason);
    closed = true;
    socket.destroy();
  };
  const resumeReading = (): void => {
    if (!readPaused || closed || answersFull()) return;
    readPaused = false;
    socket.resume();
    drain();
  };
  const drain = (): void => {
    for (;;) {
      if (closed) return;
      if (answersFull()) {
        // Requests stay in the decoder (and TCP pushes back on the client) until then.
        if (!readPaused) {
          readPaused = true;
          socket.pause();
        }
        return;
      }
      let frame: ReturnType<FrameDecoder['next']>;
      try {
        frame = decoder.next();
      } catch (err) {
        fail('client connection closed: malformed frame', { code: (err as FrameError).code ?? 'unknown' });
        return;
      }
      if (frame === null) return;
      if (frame instanceof FrameError) {
        fail('client connection closed: malformed frame', { code: frame.code });
        return;
      }
      if (frame.type !== FrameType.ClientRequest) {
        fail('client connection closed: not a client request', { frameType: frame.type });
        return;
      }
      const req = decodeClientRequest(frame.body);
      if ('code' in req) {
        fail('client connection closed: malformed request', { code: req.code });
        return;
      }
      handle(req);
    }
  };
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    drain();
  });
  socket.on('drain', resumeReading);
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
  });
  // Bytes that arrived with the handshake are already in the decoder.
  drain();
}

/** An error as the client protocol carries it. */
function errorValue(err: unknown): ClientErrorValue {
  if (err instanceof NotLeaderError) {
    return {
      code: err.code,
      message: err.message,
      ...(err.leaderId !== null ? { leaderId: err.leaderId } : {}),
      ...(err.leaderAddress !== null ? { leaderAddress: err.leaderAddress } : {}),
    };
  }
  const code = (err as { code?: unknown }).code;
  return {
    code: typeof code === 'string' ? code : 'ERR_RAFT_INTERNAL',
    message: err instanceof Error ? err.message : String(err),
  };
}
