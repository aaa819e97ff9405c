/**
 * A `RaftClient`'s side of a client session (Raft thesis §6.3, exactly-once writes): its
 * random client id, the sequence number of each write, and the lowest one not yet
 * answered, which the cluster may forget everything below (`protocol.ts`, "session entry
 * payload").
 *
 * A write keeps its seq across every retry (after a timeout, a lost connection, a
 * redirect), so the cluster applies it at most once, and answers a retry with the result
 * of the first copy it applied.
 */

import { randomBytes } from 'node:crypto';
import { writeU64 } from '../shared/entry-codec.js';
import {
  SESSION_ACK_BELOW_OFFSET,
  SESSION_CLIENT_ID_BYTES,
  SESSION_REQUEST_HEADER_BYTES,
  SESSION_SEQ_OFFSET,
} from '../shared/protocol.js';
import { isZeroId } from '../shared/session-codec.js';

/** One client session: a fresh one is opened when the cluster says the previous one expired. */
export class ClientSessionState {
  /** 16 random bytes, never all zero. */
  readonly clientId: Uint8Array;
  /** Set once the cluster has committed the session's registration. */
  registered = false;
  /** The registration in progress (or done), shared by the writes that wait for it. */
  registration: Promise<void> | null = null;
  /** Why the registration in progress was last sent again: what its waiting writes fail with at their deadline. */
  lastFailure: Error | null = null;
  private nextSeq = 1;
  /** Seqs handed out and not yet answered. */
  private readonly unanswered = new Set<number>();
  /** The lowest seq not yet answered (`nextSeq` when all are). */
  private lowest = 1;

  constructor() {
    let id = randomBytes(SESSION_CLIENT_ID_BYTES);
    // 2^-128: but an all-zero id would be refused by every node, so draw again.
    while (isZeroId(id, 0)) id = randomBytes(SESSION_CLIENT_ID_BYTES);
    this.clientId = new Uint8Array(id.buffer, id.byteOffset, id.byteLength);
  }

  /** Starts a write: its seq, and the 32-byte header its requests carry (ackBelow set by `stamp`). */
  begin(): { readonly seq: number; readonly header: Uint8Array } {
    const seq = this.nextSeq++;
    this.unanswered.add(seq);
    const header = new Uint8Array(SESSION_REQUEST_HEADER_BYTES);
    header.set(this.clientId, 0);
    writeU64(header, SESSION_SEQ_OFFSET, seq);
    writeU64(header, SESSION_ACK_BELOW_OFFSET, seq);
    return { seq, header };
  }

  /** Writes the current acknowledged-below point into `header` before it is sent (again). */
  stamp(header: Uint8Array): void {
    writeU64(header, SESSION_ACK_BELOW_OFFSET, this.lowest);
  }

  /** Write `seq` is answered (or given up on): the cluster may forget its result. */
  answered(seq: number): void {
    if (!this.unanswered.delete(seq)) return;
    while (this.lowest < this.nextSeq && !this.unanswered.has(this.lowest)) this.lowest++;
  }

  /** The lowest seq not yet answered. */
  get ackBelow(): number {
    return this.lowest;
  }
}
