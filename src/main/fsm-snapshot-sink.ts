/**
 * A `SnapshotSink` that stores a received snapshot through the fsm thread, which owns the
 * node's `SnapshotStore` (see `src/workers/fsm/snapshot-intake.ts`, its other half). The
 * main thread never touches the disk: each call becomes one request message, answered
 * by one reply with the same id.
 *
 * Chunks cross by transfer, not copy: the chunk's `ArrayBuffer` moves to the fsm thread
 * (the caller hands it over, see `SnapshotSink.write`). Errors cross as `{ code, ... }`
 * records and are rebuilt here into `SnapshotStaleError` and `SnapshotCorruptionError`,
 * so callers can use `instanceof` (STYLE.md).
 */
import { type TransferListItem, Worker } from 'node:worker_threads';
import type { SnapshotMeta } from '../raft/types.js';
import type {
  SnapshotIntakeError,
  SnapshotIntakeReply,
  SnapshotIntakeRequest,
} from '../workers/fsm/snapshot-intake.js';
import { SnapshotCorruptionError, SnapshotStaleError } from '../workers/fsm/snapshot-store.js';
import { RaftError } from './errors.js';
import type { SnapshotSink } from './snapshot-receiver.js';

/** What the sink talks through: the fsm `Worker`, or either end of a `MessageChannel` in tests. */
export interface IntakeEndpoint {
  postMessage(value: unknown, transferList?: readonly TransferListItem[]): void;
  on(event: 'message', listener: (value: unknown) => void): unknown;
  off(event: 'message', listener: (value: unknown) => void): unknown;
}

/** A request's waiting caller. */
interface Pending {
  resolve(reply: Extract<SnapshotIntakeReply, { ok: true }>): void;
  reject(error: Error): void;
}

/** `SnapshotSink` over the fsm thread. One per node; `close()` at shutdown. */
export class FsmSnapshotSink implements SnapshotSink {
  readonly #endpoint: IntakeEndpoint;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closedReason: string | null = null;
  readonly #onMessage = (m: unknown): void => this.#receive(m);
  readonly #onExit = (code: number): void => this.close(`the fsm thread exited (${code})`);

  /** Serves requests through `fsm` (the fsm `Worker`, whose thread called `installSnapshotIntake`). */
  constructor(fsm: IntakeEndpoint) {
    this.#endpoint = fsm;
    fsm.on('message', this.#onMessage);
    // A request to a dead thread would never be answered.
    if (fsm instanceof Worker) fsm.once('exit', this.#onExit);
  }

  /** Starts (or resumes) receiving the snapshot of `metaBytes`; resolves with the bytes held per file. */
  async begin(metaBytes: Uint8Array): Promise<Map<string, number>> {
    // Copied into a buffer of its own: cloning a view clones its whole buffer, which may
    // be a 64 KiB socket read, and the meta is small.
    const copy = new Uint8Array(metaBytes);
    const reply = await this.#request({ type: 'snapshot-intake', id: 0, op: 'begin', metaBytes: copy });
    return new Map(Object.entries(reply.receivedBytes ?? {}));
  }

  /**
   * Stores `bytes` at `offsetBytes` of `fileName`. `bytes.buffer` is transferred to the
   * fsm thread when it is a plain `ArrayBuffer`: the caller's view is detached after this.
   */
  async write(fileName: string, offsetBytes: number, bytes: Uint8Array): Promise<void> {
    const transfer = bytes.buffer instanceof ArrayBuffer ? [bytes.buffer] : [];
    await this.#request(
      { type: 'snapshot-intake', id: 0, op: 'write', fileName, offsetBytes, bytes },
      transfer,
    );
  }

  /** Verifies and publishes the received snapshot; resolves with what it covers. */
  async commit(): Promise<SnapshotMeta> {
    const reply = await this.#request({ type: 'snapshot-intake', id: 0, op: 'commit' });
    if (reply.meta === undefined)
      throw new RaftError('ERR_RAFT_INTERNAL', 'snapshot commit answered without a meta');
    return reply.meta;
  }

  /** Discards the snapshot being received. */
  async abort(): Promise<void> {
    await this.#request({ type: 'snapshot-intake', id: 0, op: 'abort' });
  }

  /** Stops listening and fails every request still waiting (and later ones) with `reason`. Idempotent. */
  close(reason = 'the snapshot sink is closed'): void {
    if (this.#closedReason !== null) return;
    this.#closedReason = reason;
    this.#endpoint.off('message', this.#onMessage);
    if (this.#endpoint instanceof Worker) this.#endpoint.off('exit', this.#onExit);
    for (const pending of this.#pending.values()) pending.reject(new RaftError('ERR_RAFT_SHUTDOWN', reason));
    this.#pending.clear();
  }

  #request(
    request: SnapshotIntakeRequest,
    transfer: readonly TransferListItem[] = [],
  ): Promise<Extract<SnapshotIntakeReply, { ok: true }>> {
    if (this.#closedReason !== null)
      return Promise.reject(new RaftError('ERR_RAFT_SHUTDOWN', this.#closedReason));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#endpoint.postMessage({ ...request, id }, transfer);
    });
  }

  #receive(m: unknown): void {
    if (typeof m !== 'object' || m === null || (m as { type?: unknown }).type !== 'snapshot-intake-reply')
      return;
    const reply = m as SnapshotIntakeReply;
    const pending = this.#pending.get(reply.id);
    if (pending === undefined) return;
    this.#pending.delete(reply.id);
    if (reply.ok) pending.resolve(reply);
    else pending.reject(rebuildError(reply.error));
  }
}

/** The error class the fsm thread threw, rebuilt from its record. */
function rebuildError(e: SnapshotIntakeError): Error {
  if (e.code === 'ERR_RAFT_SNAPSHOT_STALE' && e.index !== undefined && e.latestIndex !== undefined) {
    return new SnapshotStaleError(e.index, e.latestIndex);
  }
  if (e.code === 'ERR_RAFT_SNAPSHOT_CORRUPT' && e.file !== undefined && e.reason !== undefined) {
    return new SnapshotCorruptionError(e.file, e.reason);
  }
  return new RaftError(e.code, e.message);
}
