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
  encodeClientResponseEncoded,
} from '../shared/client-codec.js';
import { readU32, writeU32 } from '../shared/entry-codec.js';
import { type FrameDecoder, FrameError, OutBuffer } from '../shared/message-codec.js';
import {
  CLIENT_RESPONSE_ID_OFFSET,
  FRAME_HEADER_BYTES,
  FrameType,
  SESSION_RESULT_APPLIED,
  SESSION_RESULT_REFUSED,
} from '../shared/protocol.js';
import { encodeSessionEntry, SessionEntryKind } from '../shared/session-codec.js';
import { decodeValue, ValueTag } from '../shared/value-codec.js';
import { MAX_QUERY_BYTES, type ReadConsistency } from './coordinator.js';
import { NotLeaderError } from './errors.js';
import type { ClientAccess } from './peer-server.js';
import type { Value } from './state-machine.js';

/** What a client request can ask of the node. */
export interface ClientHandler {
  /**
   * Proposes `data` as one entry; resolves with the state machine's result as value-codec
   * bytes (`Coordinator.applyEncoded`), which the answer carries as they are. A session
   * entry's result is the fsm's `[APPLIED, result]` or `[REFUSED, code, message]`.
   */
  applyEncoded(
    data: Uint8Array,
    type: EntryType.Normal | EntryType.Batch | EntryType.Session,
  ): Promise<Value>;
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
  /**
   * True while `apply` would refuse a write with ERR_RAFT_BUSY (too many applies waiting).
   * Optional: with it, a write is refused before anything is built for it (no promise, no
   * error object), which is what keeps refusing cheap at many times the load the node can
   * carry; without it, `apply` refuses as usual.
   */
  applyBusy?(): boolean;
}

const CONSISTENCY: readonly ReadConsistency[] = ['linearizable', 'lease', 'stale'];
/**
 * The most values a Read query may decode to. Each takes tens to hundreds of bytes of heap
 * however few bytes it came in (an empty byte string is 5), so a query of many tiny items
 * would cost the main thread ~40 times its size; this bounds it to a few MiB, refused
 * before anything is built. Queries are keys and small records, far below it.
 */
export const MAX_QUERY_VALUES = 65_536;
/** A connection that may do everything: no admin secret is configured. */
const FULL_ACCESS: ClientAccess = Object.freeze({ admin: true });
/** The operations that change the cluster rather than its data: they need `access.admin`. */
const ADMIN_OPS: ReadonlySet<ClientOp> = new Set([
  ClientOp.Transfer,
  ClientOp.AddPeer,
  ClientOp.AddLearner,
  ClientOp.RemovePeer,
  ClientOp.Snapshot,
]);
/**
 * Answers waiting to be sent (encoded this turn, or queued in the socket) beyond which no
 * more requests are read from the connection until the client has taken them: a client
 * that pipelines requests and does not read its answers would otherwise make the node
 * buffer them without bound (a 13-byte Status request is answered with kilobytes).
 */
export const MAX_PENDING_ANSWER_BYTES = 1024 * 1024;
/**
 * Requests of one connection being worked on (read, not yet answered) beyond which a
 * request is answered ERR_RAFT_BUSY at once, before its payload is looked at: answers
 * that arrive later (reads, applies) are then bounded too. Busy at once rather than left
 * to wait in TCP: a request that waited there would be served seconds late under an
 * overload (its client cannot tell a slow cluster from a dead one) and would hide the
 * overload from the client, which is the one that can slow down. The BUSY answers count
 * against `MAX_PENDING_ANSWER_BYTES` like any other, so a client that does not read them
 * is still paused.
 */
export const MAX_REQUESTS_IN_FLIGHT = 1024;
/**
 * The ERR_RAFT_BUSY answers, encoded once with request id 0: a refusal copies one and
 * writes its request id in, so refusing costs a copy of ~100 bytes instead of an error
 * object, a promise and a value encoding (`busyAnswer`).
 */
const CONNECTION_BUSY_ANSWER = encodedBusyAnswer(
  `${MAX_REQUESTS_IN_FLIGHT} requests are already in flight on this connection`,
);
const NODE_BUSY_ANSWER = encodedBusyAnswer('too many applies are waiting on this node (maxPendingApplies)');
/** Where a CLIENT_RESPONSE frame holds its request id. */
const ANSWER_REQUEST_ID_OFFSET = FRAME_HEADER_BYTES + CLIENT_RESPONSE_ID_OFFSET;
/** The ops that propose a log entry, refused up front while the node is busy (`applyBusy`). */
const WRITE_OPS: ReadonlySet<number> = new Set([
  ClientOp.Apply,
  ClientOp.ApplyBatch,
  ClientOp.SessionRegister,
  ClientOp.SessionApply,
  ClientOp.SessionApplyBatch,
]);
/** Text payloads (ids, peer specs): the codec has already checked that they are UTF-8. */
const utf8 = new TextDecoder('utf-8');

/** Serves one client connection until it closes. */
export function serveClient(
  socket: net.Socket,
  decoder: FrameDecoder,
  handler: ClientHandler,
  logger: Pick<Logger, 'warn'>,
  access: ClientAccess = FULL_ACCESS,
): void {
  const out = new OutBuffer(16 * 1024);
  let flushScheduled = false;
  let closed = false;
  /** Requests read and not yet answered. */
  let inFlight = 0;
  /** Reading is paused while more answers wait than `MAX_PENDING_ANSWER_BYTES`. */
  let readPaused = false;
  const answersFull = (): boolean => out.length + socket.writableLength > MAX_PENDING_ANSWER_BYTES;
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
    scheduleFlush();
  };
  /** Answers `requestId` with a result already encoded, `value[start, end)`. */
  const respondEncoded = (requestId: number, value: Uint8Array, start: number, end: number): void => {
    inFlight--;
    if (closed) return;
    encodeClientResponseEncoded(out, requestId, value, start, end);
    scheduleFlush();
  };
  /** Proposes `data` and answers `requestId` with its result, passed on as the fsm encoded it. */
  const propose = (
    requestId: number,
    data: Uint8Array,
    type: EntryType.Normal | EntryType.Batch | EntryType.Session,
  ): void => {
    let p: Promise<Value>;
    try {
      p = handler.applyEncoded(data, type);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (answer) => {
        const bytes = answer as Uint8Array;
        if (type !== EntryType.Session) respondEncoded(requestId, bytes, 0, bytes.byteLength);
        // A session write's answer is [APPLIED, result]: the result's bytes are passed on.
        else if (isAppliedSessionAnswer(bytes))
          respondEncoded(requestId, bytes, SESSION_ANSWER_RESULT_OFFSET, bytes.byteLength);
        else respond(requestId, sessionAnswer(decodeValue(bytes, 0, bytes.byteLength)));
      },
      (err: unknown) => respond(requestId, { ok: false, error: errorValue(err) }),
    );
  };
  const scheduleFlush = (): void => {
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  };
  /** Answers `requestId` with a pre-encoded ERR_RAFT_BUSY (never counted in flight). */
  const busyAnswer = (requestId: number, encoded: Uint8Array): void => {
    const at = out.append(encoded.byteLength);
    const bytes = out.bytes;
    bytes.set(encoded, at);
    writeU32(bytes, at + ANSWER_REQUEST_ID_OFFSET, requestId);
    scheduleFlush();
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
    if (!access.admin && ADMIN_OPS.has(req.op)) {
      // Refused before anything is parsed or started: without the credential, nothing happens.
      respond(req.requestId, {
        ok: false,
        error: {
          code: 'ERR_RAFT_FORBIDDEN',
          message: `${clientOpName(req.op)} needs the admin credential (the client's adminSecret)`,
        },
      });
      return;
    }
    switch (req.op) {
      case ClientOp.Apply:
        propose(req.requestId, req.payload, EntryType.Normal);
        return;
      case ClientOp.ApplyBatch:
        // The request's payload is already a batch entry's payload (batch-codec.ts).
        propose(req.requestId, req.payload, EntryType.Batch);
        return;
      case ClientOp.SessionRegister:
      case ClientOp.SessionApply:
      case ClientOp.SessionApplyBatch:
        propose(req.requestId, sessionEntry(req), EntryType.Session);
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
        if (req.payload.byteLength > MAX_QUERY_BYTES) {
          respond(req.requestId, {
            ok: false,
            error: {
              code: 'ERR_RAFT_TOO_LARGE',
              message: `a query of ${req.payload.byteLength} bytes; at most ${MAX_QUERY_BYTES}`,
            },
          });
          return;
        }
        let query: Value;
        try {
          query = decodeValue(req.payload, 0, req.payload.byteLength, MAX_QUERY_VALUES);
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
          // Who may join, as the peer server sees it (peer-server.ts).
          if (access.transportStatus !== undefined) {
            value = {
              ...(value as Record<string, Value>),
              transport: access.transportStatus() as unknown as Value,
            };
          }
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
      if (inFlight >= MAX_REQUESTS_IN_FLIGHT) {
        busyAnswer(req.requestId, CONNECTION_BUSY_ANSWER);
        continue;
      }
      if (WRITE_OPS.has(req.op) && handler.applyBusy?.() === true) {
        busyAnswer(req.requestId, NODE_BUSY_ANSWER);
        continue;
      }
      handle(req);
    }
  };
  socket.on('data', (chunk: Buffer) => {
    decoder.push(chunk);
    drain();
  });
  socket.on('drain', resumeReading);
  // The peer server sets the idle timeout (`clientIdleTimeoutMs`). A connection waiting
  // for an answer is not idle, however long the answer takes: the answer's write is
  // traffic, which starts the idle period again.
  socket.on('timeout', () => {
    if (inFlight > 0 || closed) return;
    closed = true;
    socket.destroy();
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
  });
  // Bytes that arrived with the handshake are already in the decoder.
  drain();
}

/**
 * The session entry for a session request, stamped with this node's clock (only a
 * leader's proposal is accepted, so it is the leader's clock: `protocol.ts`, "session
 * entry payload"). The decoder gave every session op its header; the entry copies it.
 */
function sessionEntry(req: ClientRequest): Uint8Array {
  const kind =
    req.op === ClientOp.SessionRegister
      ? SessionEntryKind.Register
      : req.op === ClientOp.SessionApply
        ? SessionEntryKind.Command
        : SessionEntryKind.Batch;
  return encodeSessionEntry(kind, req.session as Uint8Array, Date.now(), req.payload);
}

/**
 * Where the result starts in a session write's answer encoded as `[APPLIED, result]`:
 * array tag and count (5 bytes), then APPLIED as an int32 (5 bytes).
 */
const SESSION_ANSWER_RESULT_OFFSET = 10;

/** Whether `bytes` encode `[SESSION_RESULT_APPLIED, result]` (checked without decoding the result). */
function isAppliedSessionAnswer(bytes: Uint8Array): boolean {
  return (
    bytes.byteLength > SESSION_ANSWER_RESULT_OFFSET &&
    bytes[0] === ValueTag.Array &&
    readU32(bytes, 1) === 2 &&
    bytes[5] === ValueTag.Int32 &&
    readU32(bytes, 6) === SESSION_RESULT_APPLIED
  );
}

/** The fsm's answer to a session entry, unwrapped: the result, or the refusal as an error. */
function sessionAnswer(answer: Value): { ok: true; value: Value } | { ok: false; error: ClientErrorValue } {
  if (Array.isArray(answer)) {
    if (answer[0] === SESSION_RESULT_APPLIED && answer.length === 2) return { ok: true, value: answer[1] };
    const [, code, message] = answer;
    if (answer[0] === SESSION_RESULT_REFUSED && typeof code === 'string' && typeof message === 'string')
      return { ok: false, error: { code, message } };
  }
  return {
    ok: false,
    error: {
      code: 'ERR_RAFT_INTERNAL',
      message: 'the state machine answered a session write without its session result',
    },
  };
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

/** A CLIENT_RESPONSE frame refusing request 0 with ERR_RAFT_BUSY and `message`. */
function encodedBusyAnswer(message: string): Uint8Array {
  const out = new OutBuffer(256);
  encodeClientResponse(out, { requestId: 0, ok: false, error: { code: 'ERR_RAFT_BUSY', message } });
  return out.view().slice();
}
