/**
 * The log-writer thread (DESIGN.md): appends entries to segment files and persists term
 * and vote, with group commit: it drains every frame that is ready, writes them all,
 * syncs once, and only then publishes the last barrier it passed, with the durable
 * `(index, term)`, in the control block. It sleeps in `Atomics.wait` on its ring.
 *
 * Start-up: it opens (and recovers) the log and `raft_meta`, and posts what it found to
 * the coordinator, records included (one transferred buffer, not per-entry messages).
 * A disk error stops it cleanly: it marks the control block and reports the error; it
 * never acknowledges what it could not write.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { ControlBlock } from '../../shared/control-block.js';
import { readU32, readU64 } from '../../shared/entry-codec.js';
import { createLatencyHistogram, encodeHistogram } from '../../shared/histogram.js';
import { windowView } from '../../shared/log-window.js';
import {
  BARRIER_SEQ_OFFSET,
  HARD_STATE_TERM_OFFSET,
  HARD_STATE_VOTE_OFFSET,
  RecordSource,
  WRITER_INDEX_OFFSET,
  WRITER_TERM_OFFSET,
  WriterFrame,
} from '../../shared/protocol.js';
import { RingConsumer } from '../../shared/ring.js';
import { emptyEntriesHeader, fromUtf8, inlineRecords, readEntriesHeader } from '../../shared/thread-codec.js';
import { errorRecord, workerLogger } from '../worker-support.js';
import { readMeta, writeMeta } from './meta-store.js';
import { SegmentLog } from './segment-log.js';

/** What the coordinator passes in `workerData`. */
export interface LogWriterData {
  readonly dataDir: string;
  readonly logDir: string;
  readonly segmentBytes: number;
  readonly sync: boolean;
  readonly ring: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
  readonly window: SharedArrayBuffer;
  readonly logLevel: string;
  readonly nodeId: string;
}

/** What the log-writer posts once it has recovered the log. */
export interface LogWriterRecovered {
  readonly type: 'recovered';
  readonly hardState: { term: number; vote: string } | null;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly entryCount: number;
  readonly records: Uint8Array;
}

/**
 * Fault injection for the chaos harness (`npm run chaos`): a slow disk. Every group
 * commit waits this long before its fdatasync. 0 (the default) in production.
 */
const FAULT_FSYNC_DELAY_MS = Number(process.env.RAFTLINE_FAULT_FSYNC_DELAY_MS ?? 0) || 0;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Bytes of the spare segment zeroed per idle step: about a millisecond of work here. */
const SPARE_STEP_BYTES = 1024 * 1024;

const data = workerData as LogWriterData;
const port = parentPort;
if (port === null) throw new Error('log-writer must run in a worker thread');
const logger = workerLogger(data.logLevel, { node: data.nodeId, thread: 'log-writer' });
const control = ControlBlock.open(data.control);
const windowBytes = new Uint8Array(data.window);
const ring = new RingConsumer(data.ring);

function run(): void {
  const hardState = readMeta(data.dataDir);
  const { log, recovered } = SegmentLog.open({
    dir: data.logDir,
    segmentBytes: data.segmentBytes,
    sync: data.sync,
    logger,
  });
  logger.info(
    { firstIndex: recovered.firstIndex, lastIndex: recovered.lastIndex, entries: recovered.entryCount },
    'log recovered',
  );
  const msg: LogWriterRecovered = {
    type: 'recovered',
    hardState,
    firstIndex: recovered.firstIndex,
    lastIndex: recovered.lastIndex,
    lastTerm: recovered.lastTerm,
    entryCount: recovered.entryCount,
    records: recovered.records,
  };
  (port as NonNullable<typeof port>).postMessage(msg, [recovered.records.buffer as ArrayBuffer]);

  const header = emptyEntriesHeader();
  let lastIndex = log.lastIndex();
  let lastTerm = log.lastTerm();
  let doneSeq = 0;
  let dirty = false;
  let syncs = 0;
  const fsync = createLatencyHistogram();
  let lastHistogramPostMs = 0;
  let entriesWritten = 0;
  let barrierSeen = false;
  let compacted = false;
  let seq = 0;
  control.publishLogSize(log.logBytes(), log.diskBytes());
  let vote: string;
  const onFrame = (frame: Uint8Array): void => {
    switch (frame[0]) {
      case WriterFrame.Entries: {
        readEntriesHeader(frame, header);
        const records =
          header.source === RecordSource.Window
            ? windowView(windowBytes, header.windowPos, header.byteLength)
            : inlineRecords(frame, header);
        log.append(records, header.firstIndex, header.lastIndex, header.lastTerm);
        lastIndex = header.lastIndex;
        lastTerm = header.lastTerm;
        entriesWritten += header.recordCount;
        dirty = true;
        break;
      }
      case WriterFrame.HardState:
        vote = fromUtf8(
          frame,
          HARD_STATE_VOTE_OFFSET + 1,
          HARD_STATE_VOTE_OFFSET + 1 + (frame[HARD_STATE_VOTE_OFFSET] as number),
        );
        // raft_meta is replaced and synced at once: votes are rare and must be durable
        // before the vote leaves, which the barrier after it guarantees.
        writeMeta(data.dataDir, { term: readU64(frame, HARD_STATE_TERM_OFFSET), vote }, data.sync);
        break;
      case WriterFrame.Compact: {
        // Segments wholly below a snapshot (minus the coordinator's margin) go. The open
        // segment stays, so the log never becomes empty this way.
        const deleted = log.compactTo(readU64(frame, WRITER_INDEX_OFFSET));
        if (deleted > 0) {
          logger.info({ upTo: readU64(frame, WRITER_INDEX_OFFSET), segments: deleted }, 'log compacted');
          compacted = true;
        }
        break;
      }
      case WriterFrame.ResetLog:
        // Entries already written in this batch were for the old log: a snapshot replaces it.
        log.reset();
        lastIndex = readU64(frame, WRITER_INDEX_OFFSET);
        lastTerm = readU64(frame, WRITER_TERM_OFFSET);
        logger.info({ index: lastIndex, term: lastTerm }, 'log replaced by a snapshot from the leader');
        compacted = true;
        break;
      case WriterFrame.Barrier:
        seq = readU32(frame, BARRIER_SEQ_OFFSET);
        barrierSeen = true;
        break;
      default:
        throw new Error(`log-writer: unknown frame kind ${frame[0]}`);
    }
  };
  for (;;) {
    // Idle: zero the next segment ahead, one small step at a time, checking for work
    // between steps, so a segment is never created in the middle of a burst.
    while (!ring.hasData() && !ring.producerClosed && log.prepareSpare(SPARE_STEP_BYTES)) {}
    const outcome = ring.waitForData();
    // Group commit: everything that is ready now goes into one sync.
    // drain() releases what it read: the writer has copied it into the files by then.
    while (ring.drain(onFrame) > 0) {}
    if (dirty) {
      if (FAULT_FSYNC_DELAY_MS > 0) Atomics.wait(sleepCell, 0, 0, FAULT_FSYNC_DELAY_MS);
      const t0 = performance.now();
      log.sync();
      fsync.recordValue(Math.max(1, Math.round((performance.now() - t0) * 1000)));
      syncs++;
      dirty = false;
      // The histogram goes to the coordinator at most once a second: rare control traffic.
      if (t0 - lastHistogramPostMs >= 1000) {
        lastHistogramPostMs = t0;
        (port as NonNullable<typeof port>).postMessage({
          type: 'fsync-histogram',
          histogram: encodeHistogram(fsync),
        });
      }
    }
    if (barrierSeen || compacted) control.publishLogSize(log.logBytes(), log.diskBytes());
    compacted = false;
    if (barrierSeen) {
      barrierSeen = false;
      doneSeq = seq;
      control.publishDurable(doneSeq, lastIndex, lastTerm, syncs, entriesWritten);
    }
    if (outcome === 'closed' && !ring.hasData()) break;
    // Under steady load the ring may never be empty: one step per group commit, after its
    // acknowledgement is out, still gets the spare ready long before the segment fills.
    log.prepareSpare(SPARE_STEP_BYTES);
  }
  log.close();
  ring.close();
  (port as NonNullable<typeof port>).postMessage({ type: 'closed' });
}

try {
  run();
} catch (err) {
  logger.error({ err }, 'log-writer stopped on an error');
  control.publishWriterFailed();
  port.postMessage({ type: 'error', error: errorRecord(err) });
}
