/**
 * The fsm thread's side of receiving a snapshot from the leader. The follower's
 * `SnapshotStore` belongs to the fsm thread (its constructor cleans up the fsm's own
 * saves, and its calls block on the disk, which the main thread must never do), so the
 * main thread's `FsmSnapshotSink` asks this thread, by `postMessage`, to begin, write,
 * commit or abort a receive. Snapshot transfers are rare and their chunks large, so
 * `postMessage` (with the chunk's buffer transferred, not copied) costs nothing that
 * matters, and the rings stay free of a format for them.
 *
 * Requests are served in arrival order, each synchronously, between the fsm's applies:
 * a write of 1 MiB holds applying back for about a millisecond.
 *
 * One receive at a time: `begin` closes the previous one, keeping its bytes on disk, so a
 * `begin` with the same meta (the leader reconnected) resumes from them.
 */
import type { MessagePort } from 'node:worker_threads';
import type { SnapshotMeta } from '../../raft/types.js';
import { errorRecord } from '../worker-support.js';
import {
  SnapshotCorruptionError,
  type SnapshotReceiver,
  SnapshotStaleError,
  type SnapshotStore,
} from './snapshot-store.js';

/** A request from the main thread (`FsmSnapshotSink`). `id` pairs it with its reply. */
export type SnapshotIntakeRequest =
  | {
      readonly type: 'snapshot-intake';
      readonly id: number;
      readonly op: 'begin';
      readonly metaBytes: Uint8Array;
    }
  | {
      readonly type: 'snapshot-intake';
      readonly id: number;
      readonly op: 'write';
      readonly fileName: string;
      readonly offsetBytes: number;
      readonly bytes: Uint8Array;
    }
  | { readonly type: 'snapshot-intake'; readonly id: number; readonly op: 'commit' | 'abort' };

/**
 * Why a request failed, as it crosses the thread: `code` is the error's stable code
 * (`ERR_RAFT_SNAPSHOT_STALE`, `ERR_RAFT_SNAPSHOT_CORRUPT`, `ERR_RAFT_SNAPSHOT_INVALID`
 * for a request the store refused as impossible, `ERR_RAFT_INTERNAL` for anything else),
 * with the fields needed to rebuild the error class on arrival.
 */
export interface SnapshotIntakeError {
  readonly code: string;
  readonly message: string;
  /** Stale: the refused index and the newest local snapshot's. */
  readonly index?: number;
  readonly latestIndex?: number;
  /** Corrupt: the file that failed, and why. */
  readonly file?: string;
  readonly reason?: string;
}

/** The answer to one request. */
export type SnapshotIntakeReply =
  | {
      readonly type: 'snapshot-intake-reply';
      readonly id: number;
      readonly ok: true;
      /** begin: bytes already held of each file, by name: where the leader resumes. */
      readonly receivedBytes?: Record<string, number>;
      /** commit: what the published snapshot covers. */
      readonly meta?: SnapshotMeta;
    }
  | {
      readonly type: 'snapshot-intake-reply';
      readonly id: number;
      readonly ok: false;
      readonly error: SnapshotIntakeError;
    };

/** Code of a request the store refused as impossible (a gap, an unknown file, no receive begun). */
export const SNAPSHOT_INVALID_CODE = 'ERR_RAFT_SNAPSHOT_INVALID';

/**
 * Serves `snapshot-intake` requests arriving on `port` (the fsm's `parentPort`) with
 * `store`, the fsm thread's own store. Other messages are left to other listeners.
 * Returns a function that removes the listener and closes a receive in progress.
 */
export function installSnapshotIntake(port: MessagePort, store: SnapshotStore): () => void {
  let receiving: SnapshotReceiver | null = null;

  const serve = (
    request: SnapshotIntakeRequest,
  ): Omit<Extract<SnapshotIntakeReply, { ok: true }>, 'type' | 'id'> => {
    switch (request.op) {
      case 'begin': {
        receiving?.close();
        receiving = null;
        const receiver = store.beginReceive(request.metaBytes);
        receiving = receiver;
        const receivedBytes: Record<string, number> = {};
        for (const f of receiver.files) receivedBytes[f.name] = receiver.receivedBytes(f.name);
        return { ok: true, receivedBytes };
      }
      case 'write':
        current().write(request.fileName, request.offsetBytes, request.bytes);
        return { ok: true };
      case 'commit': {
        const meta = current().commit();
        receiving = null;
        return { ok: true, meta };
      }
      case 'abort':
        receiving?.abort();
        receiving = null;
        return { ok: true };
      default:
        throw new RangeError(`unknown snapshot intake op ${(request as { op: unknown }).op}`);
    }
  };

  const current = (): SnapshotReceiver => {
    if (receiving === null) throw new RangeError('no snapshot is being received: begin first');
    return receiving;
  };

  const onMessage = (m: unknown): void => {
    if (typeof m !== 'object' || m === null || (m as { type?: unknown }).type !== 'snapshot-intake') return;
    const request = m as SnapshotIntakeRequest;
    let reply: SnapshotIntakeReply;
    try {
      reply = { type: 'snapshot-intake-reply', id: request.id, ...serve(request) };
    } catch (err) {
      reply = { type: 'snapshot-intake-reply', id: request.id, ok: false, error: intakeError(err) };
    }
    port.postMessage(reply);
  };

  port.on('message', onMessage);
  return () => {
    port.off('message', onMessage);
    receiving?.close();
    receiving = null;
  };
}

/** `err` as a record that keeps what is needed to rebuild its class on the other thread. */
function intakeError(err: unknown): SnapshotIntakeError {
  if (err instanceof SnapshotStaleError) {
    return { code: err.code, message: err.message, index: err.index, latestIndex: err.latestIndex };
  }
  if (err instanceof SnapshotCorruptionError) {
    return { code: err.code, message: err.message, file: err.file, reason: err.reason };
  }
  if (err instanceof RangeError) return { code: SNAPSHOT_INVALID_CODE, message: err.message };
  const record = errorRecord(err);
  return { code: record.code, message: record.message };
}
