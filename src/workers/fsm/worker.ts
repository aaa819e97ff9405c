/**
 * The fsm thread (DESIGN.md): loads the user's state machine and applies committed
 * entries in order, in batches, through braft's iterator (`ApplyRunner`); results go back
 * on the result ring, one frame per entry only when the coordinator waits on them. It
 * also runs read queries and the role callbacks, in ring order with the applies.
 *
 * An exception in `onApply` stops applying for good (braft): the runner reports it to
 * `onError`, this thread sends a Failed frame, and every later batch is refused; queries
 * still run against the state as it was.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import type { Value } from '../../main/state-machine.js';
import { loadStateMachine } from '../../main/state-machine.js';
import type { Entry, SnapshotMeta } from '../../raft/types.js';
import { ControlBlock } from '../../shared/control-block.js';
import { readU32, writeU32, writeU64 } from '../../shared/entry-codec.js';
import { windowView } from '../../shared/log-window.js';
import { OutBuffer } from '../../shared/message-codec.js';
import {
  ENTRIES_FLAG_WANT_RESULTS,
  FSM_EVENT_BODY_OFFSET,
  FSM_EVENT_JSON_BYTES_OFFSET,
  FSM_EVENT_TYPE_OFFSET,
  FSM_QUERY_BODY_OFFSET,
  FSM_QUERY_ID_OFFSET,
  FsmEvent,
  FsmFrame,
  RESULT_APPLIED_FRAME_BYTES,
  RESULT_APPLIED_INDEX_OFFSET,
  RESULT_FAILED_BODY_OFFSET,
  RESULT_INDEX_OFFSET,
  RESULT_QUERY_BODY_OFFSET,
  RESULT_QUERY_ID_OFFSET,
  RESULT_QUERY_OK_OFFSET,
  RESULT_TERM_OFFSET,
  RESULT_VALUE_BODY_OFFSET,
  RecordSource,
  ResultFrame,
} from '../../shared/protocol.js';
import { RingConsumer, RingProducer } from '../../shared/ring.js';
import {
  decodeRecords,
  emptyEntriesHeader,
  fromUtf8,
  inlineRecords,
  readEntriesHeader,
  utf8,
} from '../../shared/thread-codec.js';
import { decodeValue, encodeValue } from '../../shared/value-codec.js';
import { errorRecord, workerLogger } from '../worker-support.js';
import { ApplyRunner } from './apply-runner.js';
import { ClientSessions } from './client-sessions.js';
import { CommandExpander } from './command-expander.js';
import { decodeSessionFile, encodeSessionFile, SESSION_FILE_NAME } from './session-file.js';
import { installSnapshotIntake } from './snapshot-intake.js';
import { SnapshotStore } from './snapshot-store.js';

/** What the coordinator passes in `workerData`. */
export interface FsmData {
  readonly nodeId: string;
  readonly dataDir: string;
  readonly stateMachine: string;
  readonly stateMachineOptions: Record<string, unknown>;
  readonly ring: SharedArrayBuffer;
  readonly results: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
  readonly window: SharedArrayBuffer;
  readonly logLevel: string;
  /** Whether snapshot files are fsynced (the node's `sync` option). */
  readonly sync: boolean;
  /** Most client sessions kept (the node's `maxClientSessions`). */
  readonly maxClientSessions: number;
  /** A client session idle this long, in leader time, expires (`clientSessionTimeoutMs`). */
  readonly clientSessionTimeoutMs: number;
}

/** What the fsm posts once its state machine is loaded (from the latest snapshot, if any). */
export interface FsmReady {
  readonly type: 'ready';
  readonly snapshot: SnapshotMeta | null;
  /** Whether the state machine can save snapshots (has `onSnapshotSave`). */
  readonly canSnapshot: boolean;
}

/**
 * The largest result frame sent to the coordinator: a quarter of its result ring (16 MiB),
 * so that a frame always fits beside the others in flight.
 */
const MAX_RESULT_FRAME_BYTES = 4 * 1024 * 1024;

const data = workerData as FsmData;
const port = parentPort;
if (port === null) throw new Error('fsm must run in a worker thread');
const logger = workerLogger(data.logLevel, { node: data.nodeId, thread: 'fsm' });
const control = ControlBlock.open(data.control);
const windowBytes = new Uint8Array(data.window);
const ring = new RingConsumer(data.ring);
const results = new RingProducer(data.results);
const scratch = new OutBuffer(64 * 1024);

/** Stages one result frame, waiting (this thread only) while the coordinator catches up. */
function stage(frame: Uint8Array): void {
  while (!results.tryStage(frame)) {
    results.publish();
    if (results.waitForSpace(frame.byteLength, 1000) === 'closed') return;
  }
}

async function run(): Promise<void> {
  const sm = await loadStateMachine(data.stateMachine, {
    nodeId: data.nodeId,
    dataDir: data.dataDir,
    options: data.stateMachineOptions,
  });
  const runner = new ApplyRunner(sm);
  // The client session table (exactly-once writes) is part of the state: it is loaded
  // with every snapshot the state machine loads, and saved with every one it saves.
  const sessions = new ClientSessions({
    maxSessions: data.maxClientSessions,
    timeoutMs: data.clientSessionTimeoutMs,
  });
  // The latest snapshot, verified file by file, is the state to start from; the log
  // replays only what follows it.
  const snapshots = SnapshotStore.open(data.dataDir, { sync: data.sync });
  // Snapshots a leader streams to this node arrive through the main thread and are
  // stored here, by the thread that owns the store.
  installSnapshotIntake(port as NonNullable<typeof port>, snapshots);
  const latest = snapshots.reader();
  if (latest) {
    if (typeof sm.onSnapshotLoad !== 'function') {
      throw new Error(
        `a snapshot exists at index ${latest.meta.index} but the state machine has no onSnapshotLoad`,
      );
    }
    await sm.onSnapshotLoad(latest);
    loadSessions(sessions, latest.dir);
    logger.info({ index: latest.meta.index, term: latest.meta.term }, 'state machine loaded a snapshot');
  }
  // A pending Atomics.waitAsync does not keep a thread alive: without a handle of its
  // own this worker would exit as soon as it first waits for work.
  const keepAlive = setInterval(() => {}, 1 << 30);
  const ready: FsmReady = {
    type: 'ready',
    snapshot: latest ? latest.meta : null,
    canSnapshot: typeof sm.onSnapshotSave === 'function',
  };
  (port as NonNullable<typeof port>).postMessage(ready);
  const header = emptyEntriesHeader();
  const entries: Entry[] = [];
  let wantResults = false;
  let failed = false;
  let batches = 0;
  const sendResult = (index: number, term: number, result: Value): void => {
    if (!wantResults) return;
    scratch.clear();
    scratch.append(RESULT_VALUE_BODY_OFFSET);
    scratch.bytes.fill(0, 0, RESULT_VALUE_BODY_OFFSET);
    scratch.bytes[0] = ResultFrame.Value;
    writeU64(scratch.bytes, RESULT_INDEX_OFFSET, index);
    writeU64(scratch.bytes, RESULT_TERM_OFFSET, term);
    try {
      encodeValue(result, scratch);
    } catch (err) {
      // A result the codec cannot carry (a Map, a function...) is the user's bug in one
      // entry's result, not a reason to stop applying: the caller gets an error value.
      encodeValue({ error: `the state machine's result cannot be sent: ${(err as Error).message}` }, scratch);
    }
    if (scratch.length > MAX_RESULT_FRAME_BYTES) {
      // A result that cannot cross the result ring (a batch of half a million results,
      // say) is answered as an error of that request, not a reason to stop applying.
      const resultBytes = scratch.length - RESULT_VALUE_BODY_OFFSET;
      scratch.clear();
      scratch.append(RESULT_VALUE_BODY_OFFSET);
      encodeValue(
        {
          error: `the state machine's result is ${resultBytes} bytes; at most ${MAX_RESULT_FRAME_BYTES} can be sent`,
        },
        scratch,
      );
      scratch.bytes.fill(0, 0, RESULT_VALUE_BODY_OFFSET);
      scratch.bytes[0] = ResultFrame.Value;
      writeU64(scratch.bytes, RESULT_INDEX_OFFSET, index);
      writeU64(scratch.bytes, RESULT_TERM_OFFSET, term);
    }
    stage(scratch.view());
  };
  // Batch and session entries become the commands the state machine sees, and their
  // results each entry's answer.
  const expander = new CommandExpander(sessions, sendResult);
  const applied = new Uint8Array(RESULT_APPLIED_FRAME_BYTES);
  applied[0] = ResultFrame.Applied;

  // Frames are copied out of the ring before any await: the ring's bytes are released
  // (and may be overwritten) once a drain is done, while an async onApply is still running.
  const frames: Uint8Array[] = [];
  /** A snapshot save finishing in the background (onSnapshotSave returned a function). */
  let background: Promise<void> = Promise.resolve();
  for (;;) {
    const outcome = await ring.waitForDataAsync();
    ring.drain((f) => frames.push(f.slice()));
    for (const frame of frames) {
      switch (frame[0]) {
        case FsmFrame.Entries: {
          if (failed) break;
          readEntriesHeader(frame, header);
          const records =
            header.source === RecordSource.Window
              ? windowView(windowBytes, header.windowPos, header.byteLength)
              : inlineRecords(frame, header);
          entries.length = 0;
          decodeRecords(records, header.recordCount, entries);
          wantResults = (header.flags & ENTRIES_FLAG_WANT_RESULTS) !== 0;
          const got = await runner.applyBatch(expander.expand(entries), expander.onResult);
          expander.finish('error' in got);
          if ('error' in got) {
            failed = true;
            logger.error(
              { err: got.error, index: got.failedIndex },
              'state machine onApply threw: applying stopped',
            );
            const body = utf8(JSON.stringify(errorRecord(got.error)));
            const f = new Uint8Array(RESULT_FAILED_BODY_OFFSET + body.byteLength);
            f[0] = ResultFrame.Failed;
            writeU64(f, RESULT_INDEX_OFFSET, got.failedIndex);
            f.set(body, RESULT_FAILED_BODY_OFFSET);
            stage(f);
            break;
          }
          control.publishApplied(got.appliedIndex, ++batches);
          writeU64(applied, RESULT_APPLIED_INDEX_OFFSET, got.appliedIndex);
          stage(applied);
          break;
        }
        case FsmFrame.Query: {
          const id = readU32(frame, FSM_QUERY_ID_OFFSET);
          let ok = 1;
          scratch.clear();
          scratch.append(RESULT_QUERY_BODY_OFFSET);
          try {
            const q = decodeValue(frame, FSM_QUERY_BODY_OFFSET, frame.byteLength);
            const value = await runner.runQuery(q);
            encodeValue(value, scratch);
            // An answer is one frame of the result ring: a larger one is this query's
            // error, not a reason to stop the state machine (the ring would refuse it).
            if (scratch.length > results.maxFrameBytes) {
              throw new Error(
                `the answer is ${scratch.length - RESULT_QUERY_BODY_OFFSET} bytes; at most ${results.maxFrameBytes - RESULT_QUERY_BODY_OFFSET} can be sent`,
              );
            }
          } catch (err) {
            ok = 0;
            scratch.clear();
            scratch.append(RESULT_QUERY_BODY_OFFSET);
            const msg = utf8(err instanceof Error ? err.message : String(err));
            const at = scratch.append(msg.byteLength);
            scratch.bytes.set(msg, at);
          }
          scratch.bytes.fill(0, 0, RESULT_QUERY_BODY_OFFSET);
          scratch.bytes[0] = ResultFrame.Query;
          scratch.bytes[RESULT_QUERY_OK_OFFSET] = ok;
          writeU32(scratch.bytes, RESULT_QUERY_ID_OFFSET, id);
          stage(scratch.view());
          break;
        }
        case FsmFrame.Event:
          callEvent(sm, frame);
          break;
        case FsmFrame.Snapshot:
          // Applying waits while onSnapshotSave runs: every entry before this frame is
          // applied and none after it, so the state it captures is the state at `index`.
          // A save that finishes in the background is awaited before the next one starts,
          // so results go back in the order the coordinator asked.
          await background;
          background = (
            await saveSnapshot(sm, snapshots, sessions, frame, (f) => {
              stage(f);
              results.publish();
            })
          ).rest;
          break;
        case FsmFrame.LoadSnapshot: {
          // A snapshot from the leader replaced the log: it was committed to the store
          // (by the intake) before the core accepted it; load it instead of the state.
          await background;
          const { index } = JSON.parse(
            fromUtf8(
              frame,
              FSM_EVENT_BODY_OFFSET,
              FSM_EVENT_BODY_OFFSET + readU32(frame, FSM_EVENT_JSON_BYTES_OFFSET),
            ),
          ) as { index: number };
          const reader = snapshots.reader();
          if (reader === null || reader.meta.index !== index) {
            throw new Error(
              `asked to load the leader's snapshot at ${index}, but the latest stored is ${reader?.meta.index ?? 'none'}`,
            );
          }
          if (typeof sm.onSnapshotLoad !== 'function') {
            throw new Error(
              `the leader sent a snapshot (index ${index}) but the state machine has no onSnapshotLoad`,
            );
          }
          await sm.onSnapshotLoad(reader);
          loadSessions(sessions, reader.dir);
          logger.info({ index }, "state machine loaded the leader's snapshot");
          control.publishApplied(index, ++batches);
          writeU64(applied, RESULT_APPLIED_INDEX_OFFSET, index);
          stage(applied);
          break;
        }
        default:
          throw new Error(`fsm: unknown frame kind ${frame[0]}`);
      }
    }
    frames.length = 0;
    results.publish();
    if (outcome === 'closed' && !ring.hasData()) break;
  }
  await background;
  clearInterval(keepAlive);
  try {
    await sm.onShutdown?.();
  } catch (err) {
    logger.warn({ err }, 'state machine onShutdown threw');
  }
  ring.close();
  results.close();
  (port as NonNullable<typeof port>).postMessage({ type: 'closed' });
}

/**
 * Loads the client session table saved beside the snapshot in `dir`; a snapshot without
 * one (no session was ever opened before it) leaves an empty table. A damaged file
 * throws: deduping from a wrong table could apply a write twice.
 */
function loadSessions(sessions: ClientSessions, dir: string): void {
  const file = path.join(dir, SESSION_FILE_NAME);
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    sessions.replace(0, []);
    return;
  }
  const decoded = decodeSessionFile(bytes, file);
  sessions.replace(decoded.clockMs, decoded.sessions);
}

/**
 * Saves a snapshot as asked by a Snapshot frame and hands `send` the result frame. Resolves
 * once applying may go on: when `onSnapshotSave` returns. If it returned a function (the
 * rest of the save, on a captured view), `rest` settles when that is done and committed.
 */
async function saveSnapshot(
  sm: import('../../main/state-machine.js').StateMachine,
  snapshots: SnapshotStore,
  sessions: ClientSessions,
  frame: Uint8Array,
  send: (f: Uint8Array) => void,
): Promise<{ rest: Promise<void> }> {
  const jsonBytes = readU32(frame, FSM_EVENT_JSON_BYTES_OFFSET);
  const meta = JSON.parse(
    fromUtf8(frame, FSM_EVENT_BODY_OFFSET, FSM_EVENT_BODY_OFFSET + jsonBytes),
  ) as SnapshotMeta;
  let writer: ReturnType<SnapshotStore['begin']> | null = null;
  const finish = (err: unknown): void => {
    let ok = 1;
    let answer: object = { index: meta.index, term: meta.term };
    try {
      if (err !== null) throw err;
      writer?.commit();
      logger.info({ index: meta.index, term: meta.term }, 'snapshot saved');
    } catch (e) {
      writer?.abort();
      ok = 0;
      answer = errorRecord(e);
      logger.warn({ err: e, index: meta.index }, 'snapshot failed');
    }
    send(snapshotResult(ok, answer));
  };
  let rest: unknown;
  try {
    if (typeof sm.onSnapshotSave !== 'function') throw new Error('the state machine has no onSnapshotSave');
    writer = snapshots.begin(meta);
    // Written now, while applying waits: the table as of `meta.index`. Only once sessions
    // were used, so the snapshots of a node without clients stay the user's files alone.
    if (sessions.size > 0 || sessions.clockMs > 0)
      fs.writeFileSync(path.join(writer.dir, SESSION_FILE_NAME), encodeSessionFile(sessions));
    rest = await sm.onSnapshotSave({ dir: writer.dir, meta: { index: meta.index, term: meta.term } });
  } catch (err) {
    finish(err);
    return { rest: Promise.resolve() };
  }
  if (typeof rest !== 'function') {
    finish(null);
    return { rest: Promise.resolve() };
  }
  // Applying goes on while the rest of the save runs: the caller awaits `rest` only
  // before the next snapshot, a snapshot load, or shutdown.
  const background = Promise.resolve()
    .then(() => (rest as () => Promise<void>)())
    .then(
      () => finish(null),
      (err: unknown) => finish(err ?? new Error('onSnapshotSave failed')),
    );
  return { rest: background };
}

function snapshotResult(ok: number, answer: object): Uint8Array {
  const body = utf8(JSON.stringify(answer));
  const f = new Uint8Array(FSM_EVENT_BODY_OFFSET + body.byteLength);
  f[0] = ResultFrame.Snapshot;
  f[1] = ok;
  writeU32(f, FSM_EVENT_JSON_BYTES_OFFSET, body.byteLength);
  f.set(body, FSM_EVENT_BODY_OFFSET);
  return f;
}

/** Runs a role or configuration callback; a callback that throws is logged, not fatal. */
function callEvent(sm: import('../../main/state-machine.js').StateMachine, frame: Uint8Array): void {
  const jsonBytes = readU32(frame, FSM_EVENT_JSON_BYTES_OFFSET);
  const arg = JSON.parse(fromUtf8(frame, FSM_EVENT_BODY_OFFSET, FSM_EVENT_BODY_OFFSET + jsonBytes));
  try {
    switch (frame[FSM_EVENT_TYPE_OFFSET]) {
      case FsmEvent.LeaderStart:
        sm.onLeaderStart?.(arg.term);
        break;
      case FsmEvent.LeaderStop:
        sm.onLeaderStop?.(arg);
        break;
      case FsmEvent.StartFollowing:
        sm.onStartFollowing?.(arg);
        break;
      case FsmEvent.StopFollowing:
        sm.onStopFollowing?.(arg);
        break;
      case FsmEvent.ConfigurationCommitted:
        sm.onConfigurationCommitted?.(arg);
        break;
    }
  } catch (err) {
    logger.warn({ err, event: frame[FSM_EVENT_TYPE_OFFSET] }, 'state machine callback threw');
  }
}

run().catch((err: unknown) => {
  logger.error({ err }, 'fsm stopped on an error');
  (port as NonNullable<typeof port>).postMessage({ type: 'error', error: errorRecord(err) });
});
