/**
 * The client session table (Raft thesis §6.3): for each client, the results of its recent
 * writes by sequence number, so that a retried write is answered with the result it had
 * instead of being applied twice.
 *
 * Everything here is decided from the log alone, in log order, so every replica (and a
 * node replaying its log, or loading a snapshot) holds the same table at the same index:
 * - time is the largest `leaderTimeMs` seen in a session entry so far, never this
 *   machine's clock;
 * - a session expires once that time is more than `timeoutMs` past its last write;
 * - beyond `maxSessions` sessions, registering a new one evicts the one written to least
 *   recently (in log order).
 * The table is ordered by last activity (a `Map`'s insertion order, re-inserted on each
 * touch), so the oldest session is always the first: expiry and eviction look only there.
 *
 * A write names the lowest seq its client has not had answered (`ackBelow`): results
 * below it are dropped, and so is everything below a session's `floorSeq`. A write at a
 * seq below the floor, or from a client with no session, is refused (expired), never
 * applied: its earlier result, if there was one, is gone, and applying it again could
 * apply it twice.
 */

import type { Value } from '../../shared/value-codec.js';

/** Results a session keeps at most; beyond it, the oldest is dropped and the floor rises past it. */
export const MAX_RESULTS_PER_SESSION = 4096;

/** A result slot whose write is being applied in the current batch. */
export const PENDING: unique symbol = Symbol('pending');
export type SlotValue = Value | typeof PENDING;

/** One client's session. */
export interface ClientSession {
  /** The client id as a Map key (`keyOf`). */
  readonly key: string;
  /** The client id's 16 bytes (a copy). */
  readonly clientId: Uint8Array;
  /** Table time of the client's last register or write. */
  lastActiveMs: number;
  /** Every seq below this has been answered and forgotten: a write below it is refused. */
  floorSeq: number;
  /** Results by seq, oldest first (in log order). */
  readonly results: Map<number, SlotValue>;
}

/** What `begin` decided for a write. */
export type WriteDecision =
  /** Apply it; then `complete` the slot with its result. */
  | { readonly kind: 'apply'; readonly session: ClientSession }
  /** Already applied: answer `result` (PENDING: applied earlier in this batch, result not known yet). */
  | { readonly kind: 'duplicate'; readonly session: ClientSession; readonly result: SlotValue }
  /** Refused: the session or the result is gone. */
  | { readonly kind: 'expired'; readonly message: string };

/** The limits of a table; every node of a cluster must use the same (they decide what is refused). */
export interface SessionLimits {
  /** Most sessions kept; beyond it the least recently written is evicted. */
  readonly maxSessions: number;
  /** A session with no write for longer than this (in leader time) expires. */
  readonly timeoutMs: number;
}

/** The client session table of one replica. See the module comment. */
export class ClientSessions {
  private readonly sessions = new Map<string, ClientSession>();
  private clock = 0;

  constructor(private readonly limits: SessionLimits) {
    // Checked by `resolveOptions` already; a table without limits would evict every session at once.
    if (!Number.isSafeInteger(limits.maxSessions) || limits.maxSessions < 1)
      throw new RangeError(`maxClientSessions ${limits.maxSessions} is not a positive integer`);
    if (!Number.isSafeInteger(limits.timeoutMs) || limits.timeoutMs < 1)
      throw new RangeError(`clientSessionTimeoutMs ${limits.timeoutMs} is not a positive integer`);
  }

  /** The table's time: the largest leader time seen (ms). */
  get clockMs(): number {
    return this.clock;
  }

  /** How many sessions are open. */
  get size(): number {
    return this.sessions.size;
  }

  /** The sessions, least recently active first. */
  values(): IterableIterator<ClientSession> {
    return this.sessions.values();
  }

  /** The session of `key`, or undefined. Does not touch it. */
  get(key: string): ClientSession | undefined {
    return this.sessions.get(key);
  }

  /** Opens (or refreshes) the session of `clientId` at leader time `timeMs`. */
  register(clientId: Uint8Array, timeMs: number): ClientSession {
    this.advance(timeMs);
    const key = keyOf(clientId);
    const existing = this.sessions.get(key);
    if (existing !== undefined) {
      this.touch(existing);
      return existing;
    }
    const session: ClientSession = {
      key,
      clientId: clientId.slice(),
      lastActiveMs: this.clock,
      floorSeq: 1,
      results: new Map(),
    };
    this.sessions.set(key, session);
    this.evictBeyond(this.limits.maxSessions);
    return session;
  }

  /**
   * Decides what to do with write `seq` of `clientId` (which has had every seq below
   * `ackBelow` answered), proposed at leader time `timeMs`. For 'apply' the slot is
   * marked PENDING; the caller fills it with `complete`.
   */
  begin(clientId: Uint8Array, seq: number, ackBelow: number, timeMs: number): WriteDecision {
    this.advance(timeMs);
    const session = this.sessions.get(keyOf(clientId));
    if (session === undefined) {
      return {
        kind: 'expired',
        message:
          'the client session is unknown: it expired or was evicted (or was never registered); the write was not applied now, and may or may not have been applied before',
      };
    }
    this.touch(session);
    if (ackBelow > session.floorSeq) this.forgetBelow(session, ackBelow);
    if (seq < session.floorSeq) {
      return {
        kind: 'expired',
        message: `write ${seq} is below the session's forgotten point ${session.floorSeq}: its result is no longer kept; it was not applied now`,
      };
    }
    const result = session.results.get(seq);
    if (result !== undefined || session.results.has(seq)) return { kind: 'duplicate', session, result };
    session.results.set(seq, PENDING);
    if (session.results.size > MAX_RESULTS_PER_SESSION) {
      // A client that never acknowledges would otherwise grow its session without bound.
      const oldest = session.results.keys().next().value as number;
      this.forgetBelow(session, oldest + 1);
    }
    return { kind: 'apply', session };
  }

  /** Stores the result of write `seq`, applied after `begin` said so (unless dropped meanwhile). */
  complete(session: ClientSession, seq: number, result: Value): void {
    if (session.results.get(seq) === PENDING) session.results.set(seq, result);
  }

  /** Drops every slot still PENDING (the state machine failed before answering them). */
  dropPending(): void {
    for (const s of this.sessions.values()) {
      for (const [seq, r] of s.results) if (r === PENDING) s.results.delete(seq);
    }
  }

  /** Replaces the whole table (a snapshot was loaded). Sessions come least recently active first. */
  replace(clockMs: number, sessions: readonly ClientSession[]): void {
    this.sessions.clear();
    this.clock = clockMs;
    for (const s of sessions) this.sessions.set(s.key, s);
    // A table saved under a larger limit is trimmed as a register would have trimmed it.
    this.evictBeyond(this.limits.maxSessions);
  }

  private advance(timeMs: number): void {
    if (timeMs > this.clock) this.clock = timeMs;
    const deadline = this.clock - this.limits.timeoutMs;
    for (const s of this.sessions.values()) {
      if (s.lastActiveMs >= deadline) break;
      this.sessions.delete(s.key);
    }
  }

  private touch(session: ClientSession): void {
    session.lastActiveMs = this.clock;
    // Re-inserted last: the Map's order stays the order of last activity.
    this.sessions.delete(session.key);
    this.sessions.set(session.key, session);
  }

  private evictBeyond(max: number): void {
    for (const s of this.sessions.values()) {
      if (this.sessions.size <= max) break;
      this.sessions.delete(s.key);
    }
  }

  /** Raises the floor of `session` to `seq` and drops the results below it. */
  private forgetBelow(session: ClientSession, seq: number): void {
    // Never lowered: the floor is the promise that nothing below it is applied again.
    if (seq > session.floorSeq) session.floorSeq = seq;
    seq = session.floorSeq;
    // Results are held oldest first, nearly in seq order: drop from the front; any lower
    // seq left further on is unreachable (below the floor) and goes when encoded or trimmed.
    for (const k of session.results.keys()) {
      if (k >= seq) break;
      session.results.delete(k);
    }
  }
}

/**
 * The Map key of a 16-byte client id: a string of 8 UTF-16 units, two bytes each. Built
 * once per session entry, so without the Buffer and hex a readable key would cost.
 */
export function keyOf(clientId: Uint8Array): string {
  const u = (i: number): number => (clientId[i] as number) | ((clientId[i + 1] as number) << 8);
  return String.fromCharCode(u(0), u(2), u(4), u(6), u(8), u(10), u(12), u(14));
}
