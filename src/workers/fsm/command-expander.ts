/**
 * Turns committed entries into the commands the state machine sees, and the state
 * machine's per-command results back into each entry's answer:
 * - a batch entry (`EntryType.Batch`) becomes its commands, one Normal entry each with the
 *   batch's index; their results are gathered into one array, the entry's answer;
 * - a session entry (`EntryType.Session`, Raft thesis §6.3) is looked up in the client
 *   session table first: a write already applied is answered with its stored result and
 *   never reaches the state machine; a write whose session or result is gone is refused
 *   (ERR_RAFT_SESSION_EXPIRED); any other is applied (a command or a batch, as above) and
 *   its result stored. Session answers are wrapped `[0, result]` / `[1, code, message]`
 *   (`protocol.ts`, "session entry payload").
 * Entries answered without applying stay in the list as no-ops, so they count as applied.
 *
 * Every decision is taken in log order from the entries' bytes alone (`client-sessions.ts`),
 * so all replicas agree. Pure and thread-free: the fsm worker and the tests drive it.
 */

import { type Entry, EntryType } from '../../raft/types.js';
import { decodeBatch } from '../../shared/batch-codec.js';
import { SESSION_RESULT_APPLIED, SESSION_RESULT_REFUSED } from '../../shared/protocol.js';
import {
  decodeSessionEntry,
  type SessionEntry,
  SessionEntryError,
  SessionEntryKind,
} from '../../shared/session-codec.js';
import { encodedValueBytes, type Value } from '../../shared/value-codec.js';
import { type ClientSession, type ClientSessions, PENDING } from './client-sessions.js';

/** Hands one entry's answer on (to the result ring). */
export type SendResult = (index: number, term: number, result: Value) => void;

/**
 * The largest result kept in the session table, encoded: what one result frame can carry
 * (a larger one is answered with an error value anyway), so a retry gets the same answer.
 */
export const MAX_KEPT_RESULT_BYTES = 4 * 1024 * 1024 - 64;

/** The code a refused session write is answered with. */
export const SESSION_EXPIRED_CODE = 'ERR_RAFT_SESSION_EXPIRED';

/** A session write being applied: the session and seq its result is stored under. */
interface PendingSessionWrite {
  readonly session: ClientSession;
  readonly seq: number;
}

/** A retry of a write applied earlier in the same batch, answered in `finish`. */
interface DeferredDuplicate extends PendingSessionWrite {
  readonly index: number;
  readonly term: number;
}

/** One per fsm: `expand` a batch of entries, hand `onResult` to the runner, then `finish`. */
export class CommandExpander {
  /** Batch entries being applied: their command count and the results so far, by index. */
  private readonly batches = new Map<number, { count: number; results: Value[] }>();
  /** Session writes being applied, by index: where their result is stored. */
  private readonly sessionWrites = new Map<number, PendingSessionWrite>();
  /** Retries of a write applied earlier in the same batch: answered once it has its result. */
  private readonly deferred: DeferredDuplicate[] = [];

  constructor(
    private readonly sessions: ClientSessions,
    private readonly send: SendResult,
  ) {}

  /**
   * The entries to give the runner for `entries` (consecutive committed entries in log
   * order). Entries answered here (refused, duplicates, registrations, malformed) are
   * answered through `send` at once, or in `finish`.
   */
  expand(entries: Entry[]): Entry[] {
    let plain = true;
    for (const e of entries) {
      if (e.type === EntryType.Batch || e.type === EntryType.Session) {
        plain = false;
        break;
      }
    }
    if (plain) return entries;
    const out: Entry[] = [];
    for (const e of entries) {
      if (e.type === EntryType.Batch) this.expandBatch(e, e.data, out, null);
      else if (e.type === EntryType.Session) this.expandSession(e, out);
      else out.push(e);
    }
    return out;
  }

  /** The runner's result callback: gathers batch results and stores session results. */
  readonly onResult = (index: number, term: number, result: Value): void => {
    const batch = this.batches.get(index);
    if (batch !== undefined) {
      batch.results.push(result);
      if (batch.results.length < batch.count) return;
      this.batches.delete(index);
      this.answer(index, term, batch.results);
      return;
    }
    this.answer(index, term, result);
  };

  /**
   * Ends a batch: answers the retries deferred to it, and forgets its bookkeeping. After a
   * failure of the state machine, writes left unapplied are dropped from the table.
   */
  finish(failed: boolean): void {
    for (const d of this.deferred) {
      const stored = d.session.results.get(d.seq);
      if (stored === PENDING) continue; // its first copy was never applied: nobody is answered
      if (stored === undefined && !d.session.results.has(d.seq)) {
        this.send(d.index, d.term, refused(`write ${d.seq} was forgotten before its retry was answered`));
        continue;
      }
      this.send(d.index, d.term, [SESSION_RESULT_APPLIED, stored as Value]);
    }
    this.deferred.length = 0;
    this.batches.clear();
    this.sessionWrites.clear();
    if (failed) this.sessions.dropPending();
  }

  private answer(index: number, term: number, result: Value): void {
    if (this.sessionWrites.size > 0) {
      const write = this.sessionWrites.get(index);
      if (write !== undefined) {
        this.sessionWrites.delete(index);
        const kept = keepable(result);
        this.sessions.complete(write.session, write.seq, kept);
        this.send(index, term, [SESSION_RESULT_APPLIED, kept]);
        return;
      }
    }
    this.send(index, term, result);
  }

  /** Expands a batch payload `payload` of entry `e` (a plain batch, or a session write's body). */
  private expandBatch(e: Entry, payload: Uint8Array, out: Entry[], write: PendingSessionWrite | null): void {
    const commands = decodeBatch(payload);
    if (commands === null || commands.length === 0) {
      // Malformed is deterministic (every replica refuses it alike): an answer, not a failure.
      this.answerNow(e, commands === null ? { error: 'malformed batch entry' } : [], write);
      out.push(noop(e));
      return;
    }
    this.batches.set(e.index, { count: commands.length, results: [] });
    for (const data of commands) out.push({ index: e.index, term: e.term, type: EntryType.Normal, data });
  }

  private expandSession(e: Entry, out: Entry[]): void {
    const write = this.decide(e, decodeSessionEntry(e.data));
    if (write === null) {
      out.push(noop(e));
      return;
    }
    this.sessionWrites.set(e.index, write);
    if (write.kind === SessionEntryKind.Batch) this.expandBatch(e, write.body, out, write);
    else out.push({ index: e.index, term: e.term, type: EntryType.Normal, data: write.body });
  }

  /**
   * Looks session entry `e` up in the table: the write to apply, or null when it was
   * answered here (malformed, a registration, refused, or a retry).
   */
  private decide(
    e: Entry,
    s: SessionEntry | SessionEntryError,
  ): (PendingSessionWrite & { readonly kind: SessionEntryKind; readonly body: Uint8Array }) | null {
    if (s instanceof SessionEntryError) {
      this.send(e.index, e.term, [SESSION_RESULT_REFUSED, s.code, s.message]);
      return null;
    }
    if (s.kind === SessionEntryKind.Register) {
      this.sessions.register(s.clientId, s.leaderTimeMs);
      this.send(e.index, e.term, [SESSION_RESULT_APPLIED, null]);
      return null;
    }
    const decision = this.sessions.begin(s.clientId, s.seq, s.ackBelow, s.leaderTimeMs);
    if (decision.kind === 'expired') {
      this.send(e.index, e.term, refused(decision.message));
      return null;
    }
    if (decision.kind === 'duplicate') {
      if (decision.result === PENDING) {
        this.deferred.push({ index: e.index, term: e.term, session: decision.session, seq: s.seq });
      } else this.send(e.index, e.term, [SESSION_RESULT_APPLIED, decision.result]);
      return null;
    }
    return { session: decision.session, seq: s.seq, kind: s.kind, body: s.body };
  }

  /** Answers entry `e` with `result` without applying anything (stored first for a session write). */
  private answerNow(e: Entry, result: Value, write: PendingSessionWrite | null): void {
    if (write === null) {
      this.send(e.index, e.term, result);
      return;
    }
    this.sessionWrites.delete(e.index);
    this.sessions.complete(write.session, write.seq, result);
    this.send(e.index, e.term, [SESSION_RESULT_APPLIED, result]);
  }
}

function noop(e: Entry): Entry {
  return { index: e.index, term: e.term, type: EntryType.Noop, data: e.data };
}

function refused(message: string): Value {
  return [SESSION_RESULT_REFUSED, SESSION_EXPIRED_CODE, message];
}

/**
 * `result` as the session table keeps it: the same answer a client gets, so a retry is
 * answered alike. A result the value codec cannot carry, or one too large to send, is kept
 * as the error value it is answered with.
 */
function keepable(result: Value): Value {
  let bytes: number;
  try {
    bytes = encodedValueBytes(result);
  } catch (err) {
    return { error: `the state machine's result cannot be sent: ${(err as Error).message}` };
  }
  if (bytes > MAX_KEPT_RESULT_BYTES)
    return {
      error: `the state machine's result is ${bytes} bytes; at most ${MAX_KEPT_RESULT_BYTES} can be sent`,
    };
  return result;
}
