/**
 * A replicator thread (DESIGN.md): owns the one outbound TCP connection to one peer and
 * sends what the coordinator puts on its ring. AppendEntries arrive as a message head
 * plus a log-window region, so entries are copied from shared memory straight into the
 * socket buffer, never encoded again. Several AppendEntries are in flight at once: the
 * core's inflight window (messages and bytes) decides how many; this thread never waits
 * for a reply (replies come back on the peer's own connection to our peer server).
 *
 * Heartbeats, votes and TimeoutNow travel on the same ring as plain wire frames; nothing
 * here waits on a disk, so a slow follower disk never delays them.
 *
 * A SendSnapshot frame starts a snapshot transfer (`SnapshotSender`) on a connection of
 * its own; it runs between ring drains, so the link keeps being served meanwhile.
 */

import { parentPort, workerData } from 'node:worker_threads';
import { connectorFromWorkerData, type WorkerConnectorData } from '../../shared/auth.js';
import { ControlBlock, posDiff } from '../../shared/control-block.js';
import { readU32, readU64, writeU32 } from '../../shared/entry-codec.js';
import { windowView } from '../../shared/log-window.js';
import { OutBuffer } from '../../shared/message-codec.js';
import {
  FRAME_BODY_BYTES_OFFSET,
  FRAME_HEADER_BYTES,
  MESSAGE_ENTRY_COUNT_OFFSET,
  REPLICATOR_BYTE_LENGTH_OFFSET,
  REPLICATOR_HEAD_BYTES_OFFSET,
  REPLICATOR_HEAD_OFFSET,
  REPLICATOR_SEGMENT_HEAD_OFFSET,
  REPLICATOR_SEGMENT_HI_OFFSET,
  REPLICATOR_SEGMENT_LAST_TERM_OFFSET,
  REPLICATOR_SEGMENT_LO_OFFSET,
  REPLICATOR_SEGMENT_TERM_OFFSET,
  REPLICATOR_WINDOW_POS_OFFSET,
  REPLICATOR_WIRE_BODY_OFFSET,
  ReplicatorFrame,
} from '../../shared/protocol.js';
import { RingConsumer } from '../../shared/ring.js';
import { decodeSendSnapshotFrame } from '../../shared/snapshot-stream-codec.js';
import { errorRecord, workerLogger } from '../worker-support.js';
import { PeerLink } from './peer-link.js';
import { SegmentReader } from './segment-reader.js';
import { SnapshotSender } from './snapshot-sender.js';

/** What the coordinator passes in `workerData`. */
export interface ReplicatorData {
  readonly nodeId: string;
  readonly peerId: string;
  readonly host: string;
  readonly port: number;
  readonly clusterId: string;
  readonly ring: SharedArrayBuffer;
  readonly control: SharedArrayBuffer;
  readonly window: SharedArrayBuffer;
  readonly logLevel: string;
  /** `<dataDir>/log`, read for followers behind the log window. */
  readonly logDir: string;
  /** The node's data directory: snapshots to send are in `<dataDir>/snapshot`. */
  readonly dataDir: string;
  /** Most data bytes per snapshot chunk (the node's `snapshotChunkBytes`). */
  readonly snapshotChunkBytes: number;
  /** Snapshot streaming throttle per follower, bytes per second; 0 is unlimited. */
  readonly snapshotBytesPerSecond: number;
  /** The cluster secret, the node's election timeout and TLS material, for every connection it opens. */
  readonly connector: WorkerConnectorData;
}

/** Posted to the coordinator when the link changes state (rare: not per message). */
export interface ReplicatorEvent {
  readonly type: 'link';
  readonly peerId: string;
  readonly connected: boolean;
}

/**
 * Posted to the coordinator when a snapshot transfer started by a SendSnapshot frame ends
 * (a transfer replaced by a newer SendSnapshot posts nothing; its replacement does).
 */
export interface SnapshotSentEvent {
  readonly type: 'snapshot-sent';
  /** The snapshot sent: the one asked for, or the newer one that replaced it. */
  readonly index: number;
  /** Installed, or refused as stale (the follower has it or a newer one). */
  readonly ok: boolean;
  /** Chunk data bytes sent, over every connection of the transfer. */
  readonly bytes: number;
  /** Bytes not sent because the follower already held them (after a cut, or from before). */
  readonly resumedBytes: number;
}

const data = workerData as ReplicatorData;
const port = parentPort;
if (port === null) throw new Error('replicator must run in a worker thread');
const logger = workerLogger(data.logLevel, { node: data.nodeId, thread: `replicator-${data.peerId}` });
const control = ControlBlock.open(data.control);
const windowBytes = new Uint8Array(data.window);
const ring = new RingConsumer(data.ring);
const out = new OutBuffer(256 * 1024);
/** Messages whose window region was reclaimed while we copied it: Raft resends them. */
let staleRegions = 0;
/** Messages for a lagging follower whose records could not be read from the segments. */
let segmentMisses = 0;
const segments = new SegmentReader(data.logDir);
/** The control block's role code of a leader. */
const ROLE_LEADER = 3;
/** The most record bytes one segment read returns; the core keeps messages far smaller. */
const MAX_SEGMENT_READ_BYTES = 64 * 1024 * 1024;

/** The cluster secret, our election timeout and TLS pair (`src/shared/auth.ts`). */
const connector = connectorFromWorkerData(data.connector);

const snapshots = new SnapshotSender({
  host: data.host,
  port: data.port,
  clusterId: data.clusterId,
  nodeId: data.nodeId,
  peerId: data.peerId,
  credentials: connector.credentials,
  electionTimeoutMs: connector.electionTimeoutMs,
  tls: connector.tls,
  dataDir: data.dataDir,
  chunkBytes: data.snapshotChunkBytes,
  bytesPerSecond: data.snapshotBytesPerSecond,
  stillLeading: (term) => control.role === ROLE_LEADER && control.term === term,
  logger,
  onDone: (result) => {
    const event: SnapshotSentEvent = {
      type: 'snapshot-sent',
      index: result.index,
      ok: result.ok,
      bytes: result.bytes,
      resumedBytes: result.resumedBytes,
    };
    (port as NonNullable<typeof port>).postMessage(event);
  },
});

const link = new PeerLink({
  host: data.host,
  port: data.port,
  clusterId: data.clusterId,
  nodeId: data.nodeId,
  peerId: data.peerId,
  credentials: connector.credentials,
  electionTimeoutMs: connector.electionTimeoutMs,
  tls: connector.tls,
  logger,
  onConnect: () => post(true),
  onDisconnect: () => post(false),
});

function post(connected: boolean): void {
  const event: ReplicatorEvent = { type: 'link', peerId: data.peerId, connected };
  (port as NonNullable<typeof port>).postMessage(event);
}

function onFrame(frame: Uint8Array): void {
  if (frame[0] === ReplicatorFrame.Wire) {
    const body = frame.subarray(REPLICATOR_WIRE_BODY_OFFSET);
    // append() first: it may replace out.bytes, so read the property only after it.
    const at = out.append(body.byteLength);
    out.bytes.set(body, at);
    return;
  }
  if (frame[0] === ReplicatorFrame.SegmentMessage) {
    sendFromSegments(frame);
    return;
  }
  if (frame[0] === ReplicatorFrame.SendSnapshot) {
    const { snapshotIndex, leaderTerm } = decodeSendSnapshotFrame(frame);
    snapshots.send(snapshotIndex, leaderTerm);
    return;
  }
  if (frame[0] !== ReplicatorFrame.WindowMessage)
    throw new Error(`replicator: unknown frame kind ${frame[0]}`);
  const headBytes = readU32(frame, REPLICATOR_HEAD_BYTES_OFFSET);
  const pos = readU32(frame, REPLICATOR_WINDOW_POS_OFFSET);
  const byteLength = readU32(frame, REPLICATOR_BYTE_LENGTH_OFFSET);
  const mark = out.length;
  const at = out.append(headBytes + byteLength);
  out.bytes.set(frame.subarray(REPLICATOR_HEAD_OFFSET, REPLICATOR_HEAD_OFFSET + headBytes), at);
  out.bytes.set(windowView(windowBytes, pos, byteLength), at + headBytes);
  // The window may have been reclaimed and overwritten while we copied (we hold no
  // claim on it): checked after the copy, so a stale copy is never sent.
  if (posDiff(pos, control.windowReclaimedPos) < 0) {
    staleRegions++;
    truncateOut(mark);
  }
}

/** A message whose entries are read from the segment files (the follower is behind the window). */
function sendFromSegments(frame: Uint8Array): void {
  const headBytes = readU32(frame, REPLICATOR_HEAD_BYTES_OFFSET);
  const lo = readU64(frame, REPLICATOR_SEGMENT_LO_OFFSET);
  const hi = readU64(frame, REPLICATOR_SEGMENT_HI_OFFSET);
  const term = readU64(frame, REPLICATOR_SEGMENT_TERM_OFFSET);
  const stillLeading = (): boolean => control.role === ROLE_LEADER && control.term === term;
  if (!stillLeading()) {
    segmentMisses++;
    return;
  }
  const got = segments.read(
    lo,
    hi,
    readU64(frame, REPLICATOR_SEGMENT_LAST_TERM_OFFSET),
    MAX_SEGMENT_READ_BYTES,
  );
  // Checked again after the read: had the node stepped down meanwhile, the files could
  // have been truncated under us, and a batch could mix two logs.
  if (got === null || got.lastIndex !== hi || !stillLeading()) {
    segmentMisses++;
    return;
  }
  const at = out.append(headBytes + got.records.byteLength);
  const b = out.bytes;
  b.set(frame.subarray(REPLICATOR_SEGMENT_HEAD_OFFSET, REPLICATOR_SEGMENT_HEAD_OFFSET + headBytes), at);
  b.set(got.records, at + headBytes);
  writeU32(b, at + FRAME_BODY_BYTES_OFFSET, headBytes + got.records.byteLength - FRAME_HEADER_BYTES);
  writeU32(b, at + FRAME_HEADER_BYTES + MESSAGE_ENTRY_COUNT_OFFSET, got.count);
}

/** Forgets what was appended to `out` after `mark`. */
function truncateOut(mark: number): void {
  const keep = out.bytes.slice(0, mark);
  out.clear();
  const at = out.append(mark);
  out.bytes.set(keep, at);
}

async function run(): Promise<void> {
  link.start();
  for (;;) {
    const outcome = await ring.waitForDataAsync();
    while (ring.drain(onFrame) > 0) {
      if (out.length > 0) {
        // PeerLink takes ownership of what it is given: one copy per batch, not per message.
        link.send(out.view().slice());
        out.clear();
      }
    }
    if (outcome === 'closed' && !ring.hasData()) break;
  }
  ring.close();
  segments.close();
  await snapshots.stop();
  await link.stop();
  logger.debug({ staleRegions, segmentMisses }, 'replicator stopped');
  (port as NonNullable<typeof port>).postMessage({ type: 'closed' });
}

run().catch((err: unknown) => {
  logger.error({ err }, 'replicator stopped on an error');
  (port as NonNullable<typeof port>).postMessage({ type: 'error', error: errorRecord(err) });
});
