/**
 * The coordinator (DESIGN.md, "Threads of one node"): the main thread's half of a node.
 * It drives the pure `RaftCore`, owns the timers, batches proposals, writes each new
 * entry once into the log window and hands the workers what the core asks for:
 *
 *   core.ready() ──► messages ──────────────► replicator rings ──► peers
 *                ├─► append (entries, term/vote) ─► log-writer ring ─┐
 *                │      durable (control block, waitAsync) ◄─────────┘
 *                │      └─► persisted(), then the messages that waited for it
 *                └─► apply (committed entries) ──► fsm ring ──► result ring ─┐
 *                       results resolve apply() callers; reads run after ◄───┘
 *
 * It never blocks: every wait is an `Atomics.waitAsync` or a socket event.
 */

import { randomInt } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { Histogram } from 'hdr-histogram-js';
import type { Logger } from 'pino';
import {
  type ConfChangeItem,
  ConfChangeType,
  decodeConfChange,
  isJoint,
  members,
} from '../raft/conf-change.js';
import { ProposalDropped } from '../raft/errors.js';
import { type Message, MessageType, message } from '../raft/messages.js';
import { type AppendWork, type ApplyWork, RaftCore, type Ready, type SoftState } from '../raft/raft-core.js';
import { Rng } from '../raft/rng.js';
import {
  bootstrapSnapshot,
  EMPTY_SNAPSHOT,
  hasReleasedPayload,
  isReleasedPayload,
  MemoryStorage,
} from '../raft/storage.js';
import {
  type ConfState,
  type Entry,
  EntryType,
  type Index,
  NO_NODE,
  type NodeId,
  Role,
  type SnapshotMeta,
  type Term,
} from '../raft/types.js';
import {
  AddressError,
  formatHostPort,
  type PeerSpec,
  parseHostPort,
  parsePeerSpec,
} from '../shared/address.js';
import { connectorWorkerData } from '../shared/auth.js';
import { ControlBlock, posDiff } from '../shared/control-block.js';
import {
  encodedEntryBytes,
  encodeEntry,
  readU32,
  readU64,
  writeU32,
  writeU64,
} from '../shared/entry-codec.js';
import { decodeHistogram, encodeHistogram } from '../shared/histogram.js';
import { LogWindowWriter } from '../shared/log-window.js';
import {
  type DecodedRaftMessageFrame,
  encodeRaftMessageFrame,
  encodeRaftMessageHead,
  OutBuffer,
} from '../shared/message-codec.js';
import {
  BARRIER_FRAME_BYTES,
  BARRIER_SEQ_OFFSET,
  CONTROL_SLOT_WRITER_DONE_SEQ,
  ENTRIES_FLAG_WANT_RESULTS,
  ENTRIES_HEADER_BYTES,
  FSM_EVENT_BODY_OFFSET,
  FSM_EVENT_JSON_BYTES_OFFSET,
  FSM_EVENT_TYPE_OFFSET,
  FSM_QUERY_BODY_OFFSET,
  FSM_QUERY_ID_OFFSET,
  FsmEvent,
  FsmFrame,
  HARD_STATE_TERM_OFFSET,
  HARD_STATE_VOTE_OFFSET,
  REPLICATOR_BYTE_LENGTH_OFFSET,
  REPLICATOR_HEAD_BYTES_OFFSET,
  REPLICATOR_HEAD_OFFSET,
  REPLICATOR_SEGMENT_HEAD_OFFSET,
  REPLICATOR_SEGMENT_HI_OFFSET,
  REPLICATOR_SEGMENT_LAST_TERM_OFFSET,
  REPLICATOR_SEGMENT_LO_OFFSET,
  REPLICATOR_SEGMENT_TERM_OFFSET,
  REPLICATOR_WINDOW_POS_OFFSET,
  RESULT_APPLIED_INDEX_OFFSET,
  RESULT_FAILED_BODY_OFFSET,
  RESULT_INDEX_OFFSET,
  RESULT_QUERY_BODY_OFFSET,
  RESULT_QUERY_ID_OFFSET,
  RESULT_QUERY_OK_OFFSET,
  RESULT_TERM_OFFSET,
  RESULT_VALUE_BODY_OFFSET,
  RecordSource,
  ReplicatorFrame,
  ResultFrame,
  WRITER_COMPACT_FRAME_BYTES,
  WRITER_INDEX_OFFSET,
  WRITER_RESET_FRAME_BYTES,
  WRITER_TERM_OFFSET,
  WriterFrame,
} from '../shared/protocol.js';
import { atomicsWaitAsync, createRingBuffer, RingConsumer, readRingStats } from '../shared/ring.js';
import { encodeSendSnapshotFrame } from '../shared/snapshot-stream-codec.js';
import { decodeRecords, fromUtf8, utf8, writeEntriesHeader } from '../shared/thread-codec.js';
import { decodeValue, encodeValue } from '../shared/value-codec.js';
import type { FsmData, FsmReady } from '../workers/fsm/worker.js';
import type { LogWriterData, LogWriterRecovered } from '../workers/log-writer/worker.js';
import type { ReplicatorData, ReplicatorEvent, SnapshotSentEvent } from '../workers/replicator/worker.js';
import type { ErrorRecord } from '../workers/worker-support.js';
import { type ClientHandler, serveClient } from './client-server.js';
import { dataDirPaths, readAddressBook, writeAddressBook } from './data-dir.js';
import {
  BusyError,
  NotLeaderError,
  ProposalRejectedError,
  RaftError,
  ShutdownError,
  StateMachineError,
  StorageError,
  TimeoutError,
  UnavailableError,
} from './errors.js';
import { FsmSnapshotSink } from './fsm-snapshot-sink.js';
import { LatencyStages, STAGE_FSYNC } from './latency-stages.js';
import type { ResolvedOptions } from './options.js';
import { PeerServer, type TransportStatus } from './peer-server.js';
import { RingOutbox } from './ring-outbox.js';
import { SnapshotStreamReceiver } from './snapshot-receiver.js';
import type { Value } from './state-machine.js';

/**
 * Fault injection for the chaos harness only: with RAFTLINE_FAULT_UNSAFE_LEASE=1 a node
 * that believes it leads serves 'lease' reads at once, without checking its lease: the
 * stale-read bug the linearizability checker must catch. Never set in production.
 */
const FAULT_UNSAFE_LEASE = process.env.RAFTLINE_FAULT_UNSAFE_LEASE === '1';

/**
 * Ring sizes. Entry frames reference the log window, so they are small, except entries
 * that travel inline (one at most MAX_COMMAND_BYTES, runs cut at MAX_INLINE_RUN_BYTES):
 * 8 MiB holds the largest beside others. Every page of a ring is touched as it wraps, so
 * these count fully in the node's RSS.
 */
const WRITER_RING_BYTES = 8 * 1024 * 1024;
const FSM_RING_BYTES = 8 * 1024 * 1024;
/** Larger: a query's answer travels whole in one frame, and some read a large state. */
const RESULT_RING_BYTES = 16 * 1024 * 1024;
const REPLICATOR_RING_BYTES = 8 * 1024 * 1024;
/**
 * The largest command (or batch payload) `apply` accepts. An entry travels to a follower
 * in one AppendEntries frame through its replicator's ring (REPLICATOR_RING_BYTES), so a
 * larger one could not be replicated at all; half the ring leaves room for the frame's
 * head and the entries around it.
 */
export const MAX_COMMAND_BYTES = 4 * 1024 * 1024;
/**
 * The largest query `read` takes, encoded: it crosses the fsm ring in one frame
 * (FSM_RING_BYTES), beside entries.
 */
export const MAX_QUERY_BYTES = 4 * 1024 * 1024;
/** Inline record runs are cut at this size so a frame always fits its ring. */
const MAX_INLINE_RUN_BYTES = 2 * 1024 * 1024;
/**
 * Entry objects kept in the core's storage below the last entry handed to the fsm; older
 * ones keep only their term, type and size (`MemoryStorage.releaseObjects`). A follower
 * that needs them again is behind the newest entries, so its AppendEntries come from the
 * log window or the segment files, never from the objects. Enough to cover the entries
 * in flight to a follower that keeps up, so the steady state creates no stand-ins.
 */
const ENTRY_OBJECTS_KEPT = 16_384;
/** ...and at most this many bytes of their payloads (large entries): fewer objects are kept then. */
const ENTRY_PAYLOAD_BYTES_KEPT = 32 * 1024 * 1024;
/** Per-peer lines in the control block (peers added later take free lines). */
const PEER_SLOTS = 64;

/** An apply waiting for its result: the proposal itself, once it has an index (one object a write). */
type Waiter = Proposal;

interface Proposal {
  readonly data: Uint8Array;
  readonly type: EntryType;
  /** Resolve with the result's value-codec bytes rather than the decoded value (`applyEncoded`). */
  readonly encoded: boolean;
  /** The term it was proposed in; set when it gets an index. */
  term: Term;
  readonly resolve: (v: Value) => void;
  readonly reject: (e: Error) => void;
  readonly deadlineMs: number;
}

/** A membership change waiting to commit (and, if it entered a joint configuration, to leave it). */
interface ConfWaiter {
  readonly index: Index;
  readonly term: Term;
  readonly resolve: (v: Value) => void;
  readonly reject: (e: Error) => void;
  readonly deadlineMs: number;
  /** The entry committed and made a joint configuration: resolve when the joint one is left. */
  joint: boolean;
}

interface PendingRead {
  readonly query: Value;
  readonly resolve: (v: Value) => void;
  readonly reject: (e: Error) => void;
  readonly deadlineMs: number;
  /** The read index once known; -1 until the core answers. */
  index: Index;
}

interface Peer {
  readonly spec: PeerSpec;
  readonly ring: SharedArrayBuffer;
  readonly slot: number;
  readonly outbox: RingOutbox;
  readonly worker: Worker;
  connected: boolean;
  /** Set when the peer left the configuration and its replicator is being stopped. */
  closing: boolean;
}

/** Consistency of a read (DESIGN.md, "Reads"). */
export type ReadConsistency = 'linearizable' | 'lease' | 'stale';

/** What `status()` reports. */
export interface NodeStatus {
  readonly id: NodeId;
  /** The process the node runs in. */
  readonly pid: number;
  /** Entries in the log after the snapshot (the log's size in entries). */
  readonly logEntries: number;
  /** Bytes of the log's records in the segment files, and the files' size on disk (preallocation included). */
  readonly logBytes: number;
  readonly logDiskBytes: number;
  readonly role: Role;
  readonly term: Term;
  readonly leader: NodeId | null;
  readonly commitIndex: Index;
  readonly appliedIndex: Index;
  readonly lastIndex: Index;
  readonly durableIndex: Index;
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /** Voters of the outgoing half while a joint configuration is in force (empty otherwise). */
  readonly votersOutgoing: readonly NodeId[];
  /** The latest snapshot: index and term (0 if none but the founding configuration). */
  readonly snapshotIndex: Index;
  readonly snapshotTerm: Term;
  /** The first index still in the log (entries below were compacted away). */
  readonly firstIndex: Index;
  readonly peers: readonly {
    id: NodeId;
    address: string;
    connected: boolean;
    matchIndex: Index;
    lastAckAgoMs: number | null;
  }[];
  readonly pendingApplies: number;
  readonly logWindow: { usedBytes: number; capacityBytes: number; overflowEntries: number };
  readonly stateMachineError: string | null;
  /** Why the node stopped serving (a disk error, a crashed thread), or null while it serves. */
  readonly fatal: { code: string; message: string } | null;
  /** Counters since start: how well batching works at every boundary. */
  readonly stats: NodeStats;
  /** This process's memory (`process.memoryUsage()`; the heap figures are the main thread's). */
  readonly memory: {
    rssBytes: number;
    heapUsedBytes: number;
    heapTotalBytes: number;
    /** Shared memory (rings, the log window) and other buffers outside the heaps. */
    arrayBuffersBytes: number;
    /** Log entries the core holds as objects; the others keep only term, type and size. */
    entryObjects: number;
    /** Payload bytes of those entries. */
    entryPayloadBytes: number;
  };
}

/** Counters since the node started (DESIGN.md: measure entries per fsync, per AppendEntries, wake-ups per entry). */
export interface NodeStats {
  /** fdatasyncs by the log-writer, and entries it wrote. */
  readonly fsyncs: number;
  readonly entriesWritten: number;
  /** AppendEntries messages sent to followers, and the entries they carried. */
  readonly appendEntriesSent: number;
  readonly entriesSent: number;
  /** AppendEntries whose entries the replicator read from segment files (followers behind the window). */
  readonly segmentMessagesSent: number;
  /** onApply batches run by the fsm. */
  readonly applyBatches: number;
  /** Times a thread of this node actually went to sleep waiting on one of its rings (each costs a wake-up). */
  readonly ringSleeps: number;
  /** Entries proposed by this node as leader (a batch entry counts once). */
  readonly proposals: number;
  /** Elections this node started (times it became a candidate). */
  readonly elections: number;
  /** Snapshots saved here, and snapshots streamed to followers (completed) and installed from a leader. */
  readonly snapshotsSaved: number;
  readonly snapshotsSent: number;
  readonly snapshotsInstalled: number;
  /** Snapshot bytes streamed to followers, and bytes a resumed stream did not send again. */
  readonly snapshotBytesSent: number;
  readonly snapshotBytesResumed: number;
  /** Times the log was compacted after a snapshot. */
  readonly compactions: number;
}

/** The main thread's half of a node. Events: 'role', 'leaderStart', 'leaderStop', 'leaderChange', 'error'. */
export class Coordinator extends EventEmitter implements ClientHandler {
  readonly opts: ResolvedOptions;
  private readonly log: Logger;
  private core!: RaftCore;
  private storage!: MemoryStorage;
  private readonly control = ControlBlock.create(PEER_SLOTS);
  private readonly window: LogWindowWriter;
  private readonly writerOutbox: RingOutbox;
  private readonly fsmOutbox: RingOutbox;
  private readonly results: RingConsumer;
  private readonly writerRing: SharedArrayBuffer;
  private readonly fsmRing: SharedArrayBuffer;
  private readonly resultRing: SharedArrayBuffer;
  private writer: Worker | undefined;
  private fsm: Worker | undefined;
  private server: PeerServer | undefined;
  /** Receives snapshots a leader streams here, into the fsm thread's store. */
  private snapshotReceiver: SnapshotStreamReceiver | undefined;
  private snapshotSink: FsmSnapshotSink | undefined;
  private readonly peers = new Map<NodeId, Peer>();
  /** Where every node we may talk to listens: the `peers` option, then what membership changes taught us. */
  private readonly addresses = new Map<NodeId, PeerSpec>();
  /** Control-block lines free for replicators, lowest first. */
  private readonly freeSlots: number[] = [];
  /** The configuration the replicators were last matched to. */
  private replicatorConf: ConfState | null = null;
  private readonly confWaiters = new Map<Index, ConfWaiter>();
  /** Founding voters from the data directory's record (empty: this node joined a running cluster). */
  private readonly founders: readonly NodeId[];
  /** Followers already warned that no snapshot can be made for them. */
  private readonly snapshotlessWarned = new Set<NodeId>();
  /** Whether the state machine saves snapshots at all (it has `onSnapshotSave`). */
  private canSnapshot = false;
  private lastSnapshotAtMs = 0;
  /** Record bytes handed to the log-writer since start, and at the last snapshot: the bytes trigger. */
  private logBytesAppended = 0;
  private logBytesAtSnapshot = 0;
  private snapshotsSaved = 0;
  /** A snapshot saved past the durable log (see adoptSnapshot): adopted once the log reaches it. */
  private snapshotAwaitingLog: Index = 0;
  private snapshotsSent = 0;
  private snapshotsInstalled = 0;
  private snapshotBytesSent = 0;
  private snapshotBytesResumed = 0;
  private compactions = 0;
  private readonly scratch = new OutBuffer(64 * 1024);

  private readonly proposals: Proposal[] = [];
  private readonly waiters = new Map<Index, Waiter>();
  private readonly reads = new Map<number, PendingRead>();
  private readonly readsAwaitingApply: number[] = [];
  /** The newest snapshot taken or asked for (the bootstrap one until then). */
  private lastSnapshot: { index: Index; term: Term } = { index: 0, term: 0 };
  /**
   * The newest snapshot known to be on disk (index 0: none; the founding configuration is
   * not one): what a failed save falls back to.
   */
  private savedSnapshot: { index: Index; term: Term } = { index: 0, term: 0 };

  /** Whether a snapshot exists on disk, to send to a follower. */
  private get snapshotOnDisk(): boolean {
    return this.savedSnapshot.index > 0;
  }
  /** `snapshot()` calls waiting for the fsm, in the order their frames were sent. */
  private readonly snapshotWaiters: { resolve: (v: Value) => void; reject: (e: Error) => void }[] = [];
  private readSeq = 0;

  private appendSeq = 0;
  /** Append work items handed to the log-writer and not yet durable, with where their window bytes begin. */
  private readonly pendingAppends: { seq: number; work: AppendWork; windowPos: number }[] = [];
  private appliedIndex: Index = 0;
  /** The last entry (or snapshot) handed to the fsm: what it will have applied when it reads the next frame. */
  private fsmHandedIndex: Index = 0;
  private readonly handoff = { pos: 0, byteLength: 0, last: 0 };

  private tickTimer: NodeJS.Timeout | null = null;
  private ticksDone = 0;
  private tickOriginMs = 0;
  private readonly tickMs: number;
  private readyScheduled = false;
  private stopped = false;
  private fatal: RaftError | null = null;
  private stateMachineError: string | null = null;
  private softState: SoftState = { role: Role.Follower, leader: NO_NODE };
  private lastTerm: Term = 0;
  private listenAddress = '';
  private appendEntriesSent = 0;
  /** The server's latency breakdown: propose → durable → committed → applied, and replication. */
  private readonly stages = new LatencyStages();
  /** The log-writer's fdatasync latency histogram, as it last sent it. */
  private fsyncHistogram: Histogram | null = null;
  private entriesSent = 0;
  private segmentMessagesSent = 0;
  private proposalCount = 0;
  private electionCount = 0;

  constructor(opts: ResolvedOptions, logger: Logger, founders: readonly NodeId[]) {
    super();
    this.opts = opts;
    this.log = logger;
    this.founders = founders;
    for (let slot = 0; slot < PEER_SLOTS; slot++) this.freeSlots.push(slot);
    for (const [id, address] of Object.entries(readAddressBook(opts.dataDir))) {
      try {
        this.addresses.set(id, { id, ...parseHostPort(address) });
      } catch {
        // A damaged entry only loses an address; the `peers` option may still supply it.
      }
    }
    for (const p of opts.peers) this.addresses.set(p.id, p);
    this.tickMs = opts.heartbeatIntervalMs;
    this.window = new LogWindowWriter(opts.logWindowBytes);
    this.writerRing = createRingBuffer(WRITER_RING_BYTES);
    this.fsmRing = createRingBuffer(FSM_RING_BYTES);
    this.resultRing = createRingBuffer(RESULT_RING_BYTES);
    this.writerOutbox = new RingOutbox(this.writerRing);
    this.fsmOutbox = new RingOutbox(this.fsmRing);
    this.results = new RingConsumer(this.resultRing);
  }

  /** The address the peer server listens on. */
  get address(): string {
    return this.listenAddress;
  }

  // ================================================================ start

  /**
   * Recovers the log, starts the threads and the peer server. On any failure whatever was
   * started is stopped again, so a node that fails to start leaves no thread or socket behind.
   */
  async start(): Promise<void> {
    try {
      await this.startParts();
    } catch (err) {
      this.stopped = true;
      if (this.tickTimer) clearInterval(this.tickTimer);
      await this.server?.close().catch(() => {});
      await Promise.all([
        ...[...this.peers.values()].map((p) => p.worker.terminate()),
        this.writer?.terminate(),
        this.fsm?.terminate(),
      ]);
      throw err;
    }
  }

  private async startParts(): Promise<void> {
    const o = this.opts;
    const paths = dataDirPaths(o.dataDir);
    const writerData: LogWriterData = {
      dataDir: o.dataDir,
      logDir: paths.log,
      segmentBytes: o.segmentBytes,
      sync: o.sync,
      ring: this.writerRing,
      control: this.control.buffer,
      window: this.window.buffer,
      logLevel: o.logLevel,
      nodeId: o.id,
    };
    this.writer = new Worker(new URL('../workers/log-writer/worker.js', import.meta.url), {
      workerData: writerData,
    });
    const recovered = await firstMessage<LogWriterRecovered>(this.writer, 'recovered', 'log-writer');
    this.writer.on('message', (m: { type: string; error?: ErrorRecord; histogram?: string }) => {
      if (m.type === 'error' && m.error) this.fail(new StorageError(`log-writer: ${m.error.message}`));
      else if (m.type === 'fsync-histogram' && m.histogram)
        this.fsyncHistogram = decodeHistogram(m.histogram);
    });
    this.writer.on('error', (err) => this.fail(new StorageError(`log-writer crashed: ${err.message}`)));

    // The fsm starts first: it loads the latest snapshot, which is where the log resumes.
    const fsmData: FsmData = {
      nodeId: o.id,
      dataDir: o.dataDir,
      stateMachine: o.stateMachine,
      stateMachineOptions: o.stateMachineOptions,
      ring: this.fsmRing,
      results: this.resultRing,
      control: this.control.buffer,
      window: this.window.buffer,
      logLevel: o.logLevel,
      sync: o.sync,
      maxClientSessions: o.maxClientSessions,
      clientSessionTimeoutMs: o.clientSessionTimeoutMs,
    };
    this.fsm = new Worker(new URL('../workers/fsm/worker.js', import.meta.url), { workerData: fsmData });
    const { snapshot, canSnapshot } = await firstMessage<FsmReady>(this.fsm, 'ready', 'fsm');
    this.canSnapshot = canSnapshot;
    if (!canSnapshot) {
      this.log.warn(
        {},
        'the state machine has no onSnapshotSave: no snapshots are taken, so the log is never compacted',
      );
    }
    this.fsm.on('error', (err) => this.fail(new StateMachineError(`fsm thread crashed: ${err.message}`)));
    this.fsm.on('message', (m: { type: string; error?: ErrorRecord }) => {
      if (m.type === 'error' && m.error)
        this.fail(new StateMachineError(`fsm thread stopped: ${m.error.message}`));
    });

    // Where the log starts: the latest snapshot; else the founders' configuration at index
    // 1; else (a node that joined) nothing, until the leader sends a snapshot.
    this.storage = new MemoryStorage(
      snapshot ?? (this.founders.length > 0 ? bootstrapSnapshot(this.founders) : EMPTY_SNAPSHOT),
    );
    const snap = this.storage.snapshot();
    const snapIndex = snap.index;
    if (recovered.hardState) this.storage.setHardState(recovered.hardState);
    if (recovered.entryCount > 0) {
      // The log usually starts before the snapshot (compaction keeps a margin): only what
      // follows the snapshot goes to the core (and will be applied again).
      if (recovered.firstIndex > snapIndex + 1) {
        throw new StorageError(
          `the log starts at index ${recovered.firstIndex}, after the snapshot at ${snapIndex}: entries are missing`,
        );
      }
      const all = decodeRecords(recovered.records, recovered.entryCount, []);
      for (const e of all) if (e.type === EntryType.ConfChange) this.learnAddressesFrom(e);
      const at = all[snapIndex - recovered.firstIndex];
      if (snapIndex >= recovered.firstIndex && (at === undefined || at.term !== snap.term)) {
        // The log ends before the snapshot or disagrees with it at its index: it is what
        // a snapshot from the leader replaced (the node stopped before the log was reset).
        // Every entry of it is covered by the snapshot or was never committed.
        this.log.warn(
          { snapshotIndex: snapIndex, firstIndex: recovered.firstIndex, lastIndex: recovered.lastIndex },
          'the log does not continue the snapshot: it is discarded',
        );
        this.resetWriterLog(snapIndex, snap.term);
      } else {
        const tail = all.slice(Math.max(0, snapIndex + 1 - recovered.firstIndex));
        if (tail.length > 0) this.storage.append(tail);
      }
    }
    this.appliedIndex = snapshot ? snapIndex : 0;
    this.fsmHandedIndex = this.appliedIndex;
    this.lastSnapshot = { index: snapIndex, term: this.storage.snapshot().term };
    if (snapshot) this.savedSnapshot = this.lastSnapshot;
    this.lastSnapshotAtMs = performance.now();
    this.core = new RaftCore({
      id: o.id,
      storage: this.storage,
      rng: new Rng(randomInt(1, 2 ** 31)),
      electionTicks: Math.max(3, Math.round(o.electionTimeoutMs / this.tickMs)),
      heartbeatTicks: 1,
      maxSizePerMsgBytes: o.maxAppendBytes,
      maxInflightMsgs: o.maxInflightAppends,
    });
    this.lastTerm = this.core.term;
    this.log.info(
      {
        term: this.core.term,
        vote: this.core.vote,
        snapshotIndex: snapIndex,
        lastIndex: recovered.lastIndex,
        entries: recovered.entryCount,
      },
      'node recovered',
    );

    this.snapshotSink = new FsmSnapshotSink(this.fsm);
    this.snapshotReceiver = new SnapshotStreamReceiver({
      sink: this.snapshotSink,
      logger: this.log,
      onInstalled: (meta, leader, leaderTerm) => this.onSnapshotInstalled(meta, leader, leaderTerm),
      // A deposed leader's snapshot is refused before any byte of it is stored.
      acceptOffer: (_meta, leader, leaderTerm) =>
        leaderTerm < this.core.term
          ? `term ${leaderTerm} of ${leader} is older than this node's term ${this.core.term}`
          : null,
    });
    this.server = new PeerServer({
      host: o.listen.host,
      port: o.listen.port,
      clusterId: o.clusterId,
      nodeId: o.id,
      logger: this.log,
      // Who may join (src/shared/auth.ts), and our timeout, compared with each peer's.
      secrets: { secret: o.secret, adminSecret: o.adminSecret },
      tls: o.tls,
      electionTimeoutMs: o.electionTimeoutMs,
      maxConnections: o.maxConnections,
      handshakeTimeoutMs: o.handshakeTimeoutMs,
      clientIdleTimeoutMs: o.clientIdleTimeoutMs,
      onMessage: (frame) => this.onPeerMessage(frame),
      onClientConnection: (socket, _handshake, decoder, access) =>
        serveClient(socket, decoder, this, this.log, access),
      onSnapshotConnection: (socket, handshake, decoder) =>
        this.snapshotReceiver?.serve(socket, handshake, decoder),
    });
    const bound = await this.server.listen();
    this.listenAddress = formatHostPort(bound);

    this.syncReplicators();
    void this.watchWriter();
    void this.watchResults();
    this.tickOriginMs = performance.now();
    this.tickTimer = setInterval(() => this.catchUpTicks(), this.tickMs);
    this.log.info({ listen: this.listenAddress, peers: o.peers.length }, 'node started');
    this.scheduleReady();
  }

  // ---------------------------------------------------------------- replicators

  /**
   * Matches the replicator workers to the configuration in force: one for every other
   * member whose address is known; the replicators of members that left are stopped.
   * (A node may also talk to a non-member, e.g. a joining node answering the leader that
   * is adding it: `send` starts that replicator on demand.)
   */
  private syncReplicators(): void {
    const conf = this.core.confState();
    if (conf === this.replicatorConf) return;
    const before = this.replicatorConf ? new Set(members(this.replicatorConf)) : new Set<NodeId>();
    this.replicatorConf = conf;
    const now = new Set(members(conf));
    for (const id of now) {
      if (id !== this.opts.id && !this.peers.has(id)) this.replicatorFor(id);
    }
    for (const id of before) {
      if (!now.has(id) && id !== this.opts.id) this.stopReplicator(id);
    }
  }

  /** The replicator for `id`, started if needed; undefined when its address is unknown. */
  private replicatorFor(id: NodeId): Peer | undefined {
    const have = this.peers.get(id);
    if (have && !have.closing) return have;
    const spec = this.addresses.get(id);
    const slot = this.freeSlots.shift();
    if (!spec || slot === undefined || have) {
      if (slot !== undefined) this.freeSlots.unshift(slot);
      return undefined;
    }
    this.control.setPeer(slot, 0, 0);
    return this.startReplicator(spec, slot);
  }

  private stopReplicator(id: NodeId): void {
    const peer = this.peers.get(id);
    if (!peer || peer.closing) return;
    peer.closing = true;
    this.log.info({ peer: id }, 'replicator stopped: the peer left the configuration');
    void closeWorker(peer.worker, () => peer.outbox.close()).then(() => {
      if (this.peers.get(id) === peer) this.peers.delete(id);
      this.freeSlots.push(peer.slot);
      this.freeSlots.sort((a, b) => a - b);
    });
  }

  /** Records the addresses a configuration-change entry carries. */
  private learnAddressesFrom(e: Entry): void {
    let items: readonly ConfChangeItem[];
    try {
      items = decodeConfChange(e.data).changes;
    } catch {
      return; // the core refuses it too
    }
    this.learnAddresses(items);
  }

  /** Records new members' addresses (and keeps them on disk, for restarts). */
  private learnAddresses(items: readonly ConfChangeItem[]): void {
    let changed = false;
    for (const item of items) {
      if (item.address === undefined || item.id === this.opts.id) continue;
      const known = this.addresses.get(item.id);
      if (known && formatHostPort(known) === item.address) continue;
      try {
        this.addresses.set(item.id, { id: item.id, ...parseHostPort(item.address) });
        changed = true;
      } catch {
        this.log.warn({ peer: item.id, address: item.address }, 'a membership change carries a bad address');
      }
    }
    if (changed) {
      const book: Record<string, string> = {};
      for (const [id, spec] of this.addresses) book[id] = formatHostPort(spec);
      writeAddressBook(this.opts.dataDir, book);
    }
  }

  private startReplicator(spec: PeerSpec, slot: number): Peer {
    const ring = createRingBuffer(REPLICATOR_RING_BYTES);
    const data: ReplicatorData = {
      nodeId: this.opts.id,
      peerId: spec.id,
      host: spec.host,
      port: spec.port,
      clusterId: this.opts.clusterId,
      ring,
      control: this.control.buffer,
      window: this.window.buffer,
      logLevel: this.opts.logLevel,
      logDir: dataDirPaths(this.opts.dataDir).log,
      dataDir: this.opts.dataDir,
      snapshotChunkBytes: this.opts.snapshotChunkBytes,
      snapshotBytesPerSecond: this.opts.snapshotBytesPerSecond,
      connector: connectorWorkerData({
        credentials: { secret: this.opts.secret, adminSecret: null },
        electionTimeoutMs: this.opts.electionTimeoutMs,
        tls: this.opts.tls,
      }),
    };
    const worker = new Worker(new URL('../workers/replicator/worker.js', import.meta.url), {
      workerData: data,
    });
    const peer: Peer = {
      spec,
      ring,
      slot,
      outbox: new RingOutbox(ring),
      worker,
      connected: false,
      closing: false,
    };
    worker.on('message', (m: ReplicatorEvent | { type: 'error'; error: ErrorRecord } | SnapshotSentEvent) => {
      if (m.type === 'snapshot-sent') {
        if (m.ok) this.snapshotsSent++;
        this.snapshotBytesSent += m.bytes;
        this.snapshotBytesResumed += m.resumedBytes;
        this.log.info(
          { peer: spec.id, index: m.index, ok: m.ok, bytes: m.bytes, resumedBytes: m.resumedBytes },
          'snapshot stream to a follower ended',
        );
        if (this.core && !this.stopped) {
          this.core.reportSnapshot(spec.id, m.ok);
          this.scheduleReady();
        }
      } else if (m.type === 'link') {
        // The link itself logs its ups and downs (once per change); only the core is told here.
        peer.connected = m.connected;
        if (!m.connected && this.core) {
          this.core.reportUnreachable(spec.id);
          this.scheduleReady();
        }
      } else if (m.type === 'error') {
        this.fail(new RaftError('ERR_RAFT_INTERNAL', `replicator for ${spec.id} failed: ${m.error.message}`));
      }
    });
    worker.on('error', (err) =>
      this.fail(new RaftError('ERR_RAFT_INTERNAL', `replicator for ${spec.id} crashed: ${err.message}`)),
    );
    this.peers.set(spec.id, peer);
    return peer;
  }

  // ================================================================ API

  /**
   * True while `apply` refuses with ERR_RAFT_BUSY: `maxPendingApplies` applies wait
   * (proposed and not yet applied). The client server asks first, so that it refuses the
   * excess of an overload without building anything for it (`client-server.ts`).
   */
  applyBusy(): boolean {
    return this.proposals.length + this.waiters.size >= this.opts.maxPendingApplies;
  }

  /**
   * Proposes `data` as one entry of `type` (Normal, or Batch: a batch-codec payload whose
   * commands are applied in turn); resolves with the state machine's result once applied
   * (for a batch, the array of its commands' results).
   */
  apply(
    data: Uint8Array,
    type: EntryType.Normal | EntryType.Batch | EntryType.Session = EntryType.Normal,
  ): Promise<Value> {
    return this.propose(data, type, false);
  }

  /**
   * `apply`, resolving with the result as the fsm encoded it (value-codec bytes, itself a
   * Value: a byte string), for a caller that only passes it on: the client server copies
   * them into its answer instead of decoding a value here to encode it again.
   */
  applyEncoded(
    data: Uint8Array,
    type: EntryType.Normal | EntryType.Batch | EntryType.Session,
  ): Promise<Value> {
    return this.propose(data, type, true);
  }

  private propose(
    data: Uint8Array,
    type: EntryType.Normal | EntryType.Batch | EntryType.Session,
    encoded: boolean,
  ): Promise<Value> {
    const refusal = this.refuseWrite();
    if (refusal) return Promise.reject(refusal);
    if (data.byteLength > MAX_COMMAND_BYTES) {
      return Promise.reject(
        new RaftError(
          'ERR_RAFT_TOO_LARGE',
          `a command of ${data.byteLength} bytes; at most ${MAX_COMMAND_BYTES} can be replicated`,
        ),
      );
    }
    if (this.applyBusy()) {
      return Promise.reject(new BusyError(`${this.opts.maxPendingApplies} applies are already waiting`));
    }
    return new Promise<Value>((resolve, reject) => {
      this.proposals.push({
        data,
        type,
        encoded,
        term: 0,
        resolve,
        reject,
        deadlineMs: performance.now() + this.opts.requestTimeoutMs,
      });
      this.scheduleReady();
    });
  }

  /** Runs `query` against the state machine at the asked consistency. */
  read(query: Value, consistency: ReadConsistency): Promise<Value> {
    if (this.stopped) return Promise.reject(new ShutdownError());
    if (this.fatal) return Promise.reject(this.fatal);
    return new Promise<Value>((resolve, reject) => {
      const ctx = this.nextReadId();
      const read: PendingRead = {
        query,
        resolve,
        reject,
        deadlineMs: performance.now() + this.opts.requestTimeoutMs,
        index: -1,
      };
      this.reads.set(ctx, read);
      if (
        consistency === 'stale' ||
        (FAULT_UNSAFE_LEASE && consistency === 'lease' && this.core.role === Role.Leader)
      ) {
        read.index = 0;
        this.sendQuery(ctx, read);
        return;
      }
      // A lease is only as good as the clock that counts it: catch up first.
      this.catchUpTicks();
      // A lease is safe only while every peer counts elections with our timeout (peer-server.ts).
      this.core.readIndex(ctx, consistency === 'lease' && this.server?.leaseReadsSafe !== false);
      this.scheduleReady();
    });
  }

  /**
   * Saves a snapshot of the state machine as applied now (braft's `Node::snapshot`).
   * Resolves with its index and term. The log is not compacted yet (next issue): the
   * snapshot makes a restart load the state and replay only the entries after it.
   */
  snapshot(): Promise<Value> {
    if (this.stopped) return Promise.reject(new ShutdownError());
    if (this.fatal) return Promise.reject(this.fatal);
    if (this.stateMachineError) return Promise.reject(new StateMachineError(this.stateMachineError));
    // The frame queues behind every entry already handed to the fsm, which applies them
    // all before saving: the snapshot covers the last of them, not just what it has
    // reported applied so far.
    const index = this.fsmHandedIndex;
    const term = this.core.log.term(index);
    if (index <= this.lastSnapshot.index || term < 0) {
      return Promise.resolve({ index: this.lastSnapshot.index, term: this.lastSnapshot.term, fresh: false });
    }
    // Claimed now, so a second call before this one finishes does not ask for the same index.
    this.lastSnapshot = { index, term };
    this.lastSnapshotAtMs = performance.now();
    this.logBytesAtSnapshot = this.logBytesAppended;
    const conf = this.core.configurationAt(index);
    return new Promise<Value>((resolve, reject) => {
      this.snapshotWaiters.push({ resolve, reject });
      const json = utf8(JSON.stringify({ index, term, conf }));
      const f = this.fsmOutbox.reserve(FSM_EVENT_BODY_OFFSET + json.byteLength);
      f.fill(0, 0, FSM_EVENT_BODY_OFFSET);
      f[0] = FsmFrame.Snapshot;
      writeU32(f, FSM_EVENT_JSON_BYTES_OFFSET, json.byteLength);
      f.set(json, FSM_EVENT_BODY_OFFSET);
      this.fsmOutbox.commit();
      this.fsmOutbox.flush();
    });
  }

  /** A client's transfer request: redirected when this node does not lead, refused for a non-voter. */
  transfer(target: NodeId): Promise<Value> {
    if (this.core.role !== Role.Leader) return Promise.reject(this.notLeader());
    if (!this.transferLeadership(target)) {
      return Promise.reject(
        new RaftError(
          'ERR_RAFT_TRANSFER_REFUSED',
          `leadership cannot be handed to ${target}: it is not a voter`,
        ),
      );
    }
    return Promise.resolve(true);
  }

  addPeer(id: NodeId, address: string): Promise<Value> {
    return this.changeMembership('voter', id, address);
  }

  addLearner(id: NodeId, address: string): Promise<Value> {
    return this.changeMembership('learner', id, address);
  }

  removePeer(id: NodeId): Promise<Value> {
    return this.changeMembership('remove', id, null);
  }

  /** Moves to the voters `specs` (`id=host:port`): new ones catch up as learners, then one joint change. */
  async changePeers(specs: readonly string[]): Promise<Value> {
    const refusal = this.refuseWrite();
    if (refusal) throw refusal;
    const wanted: PeerSpec[] = [];
    for (const spec of specs) {
      try {
        wanted.push(parsePeerSpec(spec));
      } catch (err) {
        if (err instanceof AddressError) throw new RaftError('ERR_RAFT_INVALID_CONF_CHANGE', err.message);
        throw err;
      }
    }
    if (wanted.length === 0)
      throw new RaftError('ERR_RAFT_INVALID_CONF_CHANGE', 'a configuration needs at least one voter');
    const conf = this.core.confState();
    const fresh = wanted.filter((p) => !conf.voters.includes(p.id));
    for (const p of fresh) {
      if (!this.core.confState().learners.includes(p.id)) {
        await this.proposeConf([{ type: ConfChangeType.AddLearner, id: p.id, address: formatHostPort(p) }]);
      }
      await this.waitCaughtUp(p.id);
    }
    const changes: ConfChangeItem[] = fresh.map((p) => ({
      type: ConfChangeType.AddVoter,
      id: p.id,
      address: formatHostPort(p),
    }));
    for (const id of this.core.confState().voters) {
      if (!wanted.some((p) => p.id === id)) changes.push({ type: ConfChangeType.Remove, id });
    }
    if (changes.length === 0) return confValue(this.core.log.committed, this.core.confState());
    return this.proposeConf(changes);
  }

  /**
   * One membership change, as braft's add_peer/remove_peer. A new voter joins as a learner
   * first, is promoted once it has caught up (by snapshot if needed), and the promotion
   * goes through joint consensus: adding a node never costs availability.
   */
  private async changeMembership(
    kind: 'voter' | 'learner' | 'remove',
    id: NodeId,
    address: string | null,
  ): Promise<Value> {
    const refusal = this.refuseWrite();
    if (refusal) throw refusal;
    if (address !== null) {
      try {
        parseHostPort(address);
      } catch (err) {
        if (err instanceof AddressError) {
          throw new RaftError('ERR_RAFT_INVALID_CONF_CHANGE', `bad address for ${id}: ${err.message}`);
        }
        throw err;
      }
    }
    const conf = this.core.confState();
    if (kind === 'remove') return this.proposeConf([{ type: ConfChangeType.Remove, id }]);
    const addr = address ?? undefined;
    if (kind === 'learner') return this.proposeConf([{ type: ConfChangeType.AddLearner, id, address: addr }]);
    if (conf.voters.includes(id) && !isJoint(conf)) return confValue(this.core.log.committed, conf);
    if (!conf.learners.includes(id)) {
      await this.proposeConf([{ type: ConfChangeType.AddLearner, id, address: addr }]);
    }
    await this.waitCaughtUp(id);
    return this.proposeConf([{ type: ConfChangeType.AddVoter, id, address: addr }]);
  }

  /** Proposes a configuration change; resolves once it (and the joint phase it starts) commits. */
  private proposeConf(changes: ConfChangeItem[]): Promise<Value> {
    const refusal = this.refuseWrite();
    if (refusal) return Promise.reject(refusal);
    this.learnAddresses(changes);
    const index = this.core.proposeConfChange({ changes });
    if (index < 0) {
      switch (index) {
        case ProposalDropped.ConfChangePending:
          return Promise.reject(
            new RaftError(
              'ERR_RAFT_CONF_CHANGE_PENDING',
              'an earlier membership change is not committed yet (or this leader has not committed in its term); retry',
            ),
          );
        case ProposalDropped.InvalidConfChange:
          return Promise.reject(
            new RaftError(
              'ERR_RAFT_INVALID_CONF_CHANGE',
              `the change does not apply to the configuration ${describeConf(this.core.confState())}`,
            ),
          );
        default:
          return Promise.reject(this.notLeader(dropReason(index)));
      }
    }
    this.log.info(
      { index, changes: changes.map((c) => `${ConfChangeType[c.type]} ${c.id}`) },
      'membership change proposed',
    );
    this.scheduleReady();
    return new Promise<Value>((resolve, reject) => {
      this.confWaiters.set(index, {
        index,
        term: this.core.term,
        resolve,
        reject,
        deadlineMs: performance.now() + this.opts.requestTimeoutMs,
        joint: false,
      });
    });
  }

  /**
   * Waits until learner `id` is within `promoteMarginEntries` of this leader's log. Fails
   * with ERR_RAFT_TIMEOUT when it makes no progress for `requestTimeoutMs` (a large
   * snapshot may take longer than that in all, so only a stall counts).
   */
  private async waitCaughtUp(id: NodeId): Promise<void> {
    let lastMatch = -1;
    let lastProgressMs = performance.now();
    for (;;) {
      const refusal = this.refuseWrite();
      if (refusal) throw refusal;
      const pr = this.core.status().progress.get(id);
      if (!pr) throw new RaftError('ERR_RAFT_INVALID_CONF_CHANGE', `${id} is no longer a member`);
      const now = performance.now();
      if (pr.match + this.opts.promoteMarginEntries >= this.core.log.lastIndex() && pr.match > 0) return;
      if (pr.match !== lastMatch) {
        lastMatch = pr.match;
        lastProgressMs = now;
      } else if (now - lastProgressMs > this.opts.requestTimeoutMs) {
        throw new TimeoutError(
          `learner ${id} made no progress in ${this.opts.requestTimeoutMs} ms (match index ${pr.match}); not promoted`,
        );
      }
      await new Promise((r) => setTimeout(r, this.tickMs));
    }
  }

  /** Asks the leader to hand over to `target`. */
  transferLeadership(target: NodeId): boolean {
    const ok = this.core.transferLeadership(target);
    this.scheduleReady();
    return ok;
  }

  /** Who may join, as the peer server sees it (null before it listens). */
  transportStatus(): TransportStatus | null {
    return this.server?.transportStatus() ?? null;
  }

  status(): NodeStatus {
    const s = this.core.status();
    const now = performance.now();
    return {
      id: s.id,
      pid: process.pid,
      logEntries: s.lastIndex - this.storage.snapshot().index,
      logBytes: this.control.logBytes,
      logDiskBytes: this.control.logDiskBytes,
      role: s.role,
      term: s.term,
      leader: s.leader === NO_NODE ? null : s.leader,
      commitIndex: s.committed,
      appliedIndex: this.appliedIndex,
      lastIndex: s.lastIndex,
      durableIndex: this.control.durableIndex,
      voters: [...s.conf.voters],
      learners: [...s.conf.learners],
      votersOutgoing: [...s.conf.votersOutgoing],
      snapshotIndex: this.snapshotOnDisk ? this.storage.snapshot().index : 0,
      snapshotTerm: this.snapshotOnDisk ? this.storage.snapshot().term : 0,
      firstIndex: this.storage.firstIndex(),
      peers: [...this.peers.values()].map((p) => {
        const ack = this.control.peerLastAckMs(p.slot);
        return {
          id: p.spec.id,
          address: formatHostPort(p.spec),
          connected: p.connected,
          matchIndex: s.progress.get(p.spec.id)?.match ?? this.control.peerMatchIndex(p.slot),
          lastAckAgoMs: ack > 0 ? Math.round(now - ack) : null,
        };
      }),
      pendingApplies: this.proposals.length + this.waiters.size,
      logWindow: {
        usedBytes: this.window.usedBytes,
        capacityBytes: this.window.capacityBytes,
        overflowEntries: this.window.overflowEntries,
      },
      stateMachineError: this.stateMachineError,
      fatal: this.fatal ? { code: this.fatal.code, message: this.fatal.message } : null,
      stats: {
        fsyncs: this.control.writerSyncs,
        entriesWritten: this.control.writerEntries,
        appendEntriesSent: this.appendEntriesSent,
        entriesSent: this.entriesSent,
        segmentMessagesSent: this.segmentMessagesSent,
        applyBatches: this.control.fsmBatches,
        ringSleeps: this.ringBuffers().reduce((sum, b) => sum + readRingStats(b).consumerSleeps, 0),
        proposals: this.proposalCount,
        elections: this.electionCount,
        snapshotsSaved: this.snapshotsSaved,
        snapshotsSent: this.snapshotsSent,
        snapshotsInstalled: this.snapshotsInstalled,
        snapshotBytesSent: this.snapshotBytesSent,
        snapshotBytesResumed: this.snapshotBytesResumed,
        compactions: this.compactions,
      },
      memory: memoryStatus(this.storage),
    };
  }

  /**
   * The server's latency histograms (µs) by stage: propose→durable, →committed, →applied
   * (on a leader), replication round trip, and the log-writer's fdatasync.
   */
  histograms(): Record<string, Histogram> {
    const all = this.stages.histograms();
    if (this.fsyncHistogram) all[STAGE_FSYNC] = this.fsyncHistogram;
    return all;
  }

  /** `status()` plus the latency histograms, encoded: what a client's Status request gets. */
  statusValue(): Value {
    const histograms: Record<string, string> = {};
    for (const [name, h] of Object.entries(this.histograms())) histograms[name] = encodeHistogram(h);
    return { ...(this.status() as unknown as Record<string, Value>), histograms };
  }

  /** Every ring of this node. */
  private ringBuffers(): SharedArrayBuffer[] {
    const rings = [this.writerRing, this.fsmRing, this.resultRing];
    for (const p of this.peers.values()) rings.push(p.ring);
    return rings;
  }

  private refuseWrite(): RaftError | null {
    if (this.stopped) return new ShutdownError();
    if (this.fatal) return this.fatal;
    if (this.stateMachineError) return new StateMachineError(this.stateMachineError);
    if (this.core.role !== Role.Leader) return this.notLeader();
    return null;
  }

  private notLeader(detail?: string): NotLeaderError {
    // During a transfer the hint is the node taking over: that is where the client goes next.
    const transferee = this.core.role === Role.Leader ? this.core.status().leadTransferee : NO_NODE;
    const lead =
      transferee !== NO_NODE ? transferee : this.core.lead === this.opts.id ? NO_NODE : this.core.lead;
    if (lead === NO_NODE) return new NotLeaderError(null, null, detail);
    const spec = this.addresses.get(lead);
    return new NotLeaderError(lead, spec ? formatHostPort(spec) : null, detail);
  }

  private nextReadId(): number {
    // Read ids travel as u32 in query frames and as the core's read context.
    this.readSeq = this.readSeq >= 0xffff_fff0 ? 1 : this.readSeq + 1;
    return this.readSeq;
  }

  // ================================================================ the Ready loop

  private scheduleReady(): void {
    if (this.readyScheduled || this.stopped) return;
    this.readyScheduled = true;
    // setImmediate, not a microtask: every request that arrives in this turn of the event
    // loop (API calls, socket reads) joins the same batch.
    setImmediate(() => {
      this.readyScheduled = false;
      this.processReady();
    });
  }

  private processReady(): void {
    if (this.stopped || this.fatal) return;
    try {
      if (this.proposals.length > 0) this.proposeBatch();
      while (this.core.hasReady()) this.handleReady(this.core.ready());
      this.syncReplicators();
      // Publish every ring once per turn: frames staged outside a Ready (the messages that
      // waited for a durable write) must not wait for the next one.
      this.flushRings();
      this.publishControl();
    } catch (err) {
      // A broken invariant: stop serving (status says why) rather than go on with a core
      // and rings in an unknown state, or crash the process from a timer callback.
      this.fail(err instanceof RaftError ? err : new RaftError('ERR_RAFT_INTERNAL', (err as Error).message));
    }
  }

  private proposeBatch(): void {
    const term = this.core.term;
    let last = 0;
    for (const p of this.proposals) {
      const index = this.core.propose(p.data, p.type);
      if (index < 0) {
        // During a leadership transfer writes fail fast, as not-leader (retryable: the
        // client follows the new leader) rather than wait for the transfer.
        p.reject(
          index === ProposalDropped.NotLeader || index === ProposalDropped.TransferInProgress
            ? this.notLeader(dropReason(index))
            : new ProposalRejectedError(`proposal dropped: ${ProposalDropped[index] ?? index}`),
        );
        continue;
      }
      // A waiter left at this index from an earlier term of ours lost its entry: a leader
      // only reuses an index that is not in its log, so that entry never committed.
      const stale = this.waiters.get(index);
      if (stale) {
        this.waiters.delete(index);
        stale.reject(this.notLeader('the entry was replaced by another leader before it committed'));
      }
      p.term = term;
      this.waiters.set(index, p);
      last = index;
      this.proposalCount++;
    }
    this.proposals.length = 0;
    if (last > 0) this.stages.proposed(last, performance.now());
  }

  private handleReady(rd: Ready): void {
    if (rd.softState) this.onSoftState(rd.softState);
    if (this.core.term !== this.lastTerm) {
      this.log.info({ term: this.core.term, from: this.lastTerm }, 'term changed');
      this.lastTerm = this.core.term;
    }
    for (const m of rd.messages) this.send(m);
    if (rd.append) this.handleAppend(rd.append);
    if (rd.apply) this.handleApply(rd.apply);
    for (const rs of rd.readStates) {
      const read = this.reads.get(rs.context);
      if (!read) continue;
      read.index = rs.index;
      if (rs.index <= this.appliedIndex) this.sendQuery(rs.context, read);
      else this.readsAwaitingApply.push(rs.context);
    }
    for (const ctx of rd.droppedReads) {
      const read = this.reads.get(ctx);
      if (!read) continue;
      this.reads.delete(ctx);
      read.reject(new UnavailableError('the read could not be confirmed by a leader; retry'));
    }
  }

  private onSoftState(ss: SoftState): void {
    const prev = this.softState;
    this.softState = ss;
    if (prev.role !== ss.role) {
      if (ss.role === Role.Candidate) this.electionCount++;
      this.log.info({ role: ss.role, from: prev.role, term: this.core.term }, 'role changed');
      this.emit('role', ss.role, this.core.term);
    }
    if (prev.leader !== ss.leader) {
      this.log.info({ leader: ss.leader || null, term: this.core.term }, 'leader changed');
      this.emit('leaderChange', ss.leader || null, this.core.term);
    }
    const wasLeader = prev.role === Role.Leader;
    const isLeader = ss.role === Role.Leader;
    if (!wasLeader && isLeader) {
      this.fsmEvent(FsmEvent.LeaderStart, { term: this.core.term });
      this.emit('leaderStart', this.core.term);
    } else if (wasLeader && !isLeader) {
      this.fsmEvent(FsmEvent.LeaderStop, {
        code: 'ERR_RAFT_NOT_LEADER',
        message: `stepped down in term ${this.core.term}`,
      });
      this.emit('leaderStop', this.core.term);
      this.stages.reset();
    }
    if (prev.leader !== ss.leader) {
      if (prev.leader !== NO_NODE && prev.leader !== this.opts.id) {
        this.fsmEvent(FsmEvent.StopFollowing, { leaderId: prev.leader, term: this.core.term });
      }
      if (ss.leader !== NO_NODE && ss.leader !== this.opts.id) {
        this.fsmEvent(FsmEvent.StartFollowing, { leaderId: ss.leader, term: this.core.term });
      }
    }
    this.control.role = roleCode(ss.role);
  }

  // ---------------------------------------------------------------- messages

  private send(m: Message): void {
    if (m.to === this.opts.id) {
      this.core.step(m);
      return;
    }
    const peer = this.peers.get(m.to) ?? this.replicatorFor(m.to);
    if (!peer || peer.closing) return;
    if (m.type === MessageType.MsgSnap) {
      this.sendSnapshot(peer, m);
      return;
    }
    const s = this.scratch;
    s.clear();
    const n = m.entries.length;
    if (m.type === MessageType.MsgApp) {
      this.appendEntriesSent++;
      this.entriesSent += n;
      if (n > 0) this.stages.appendSent(m.to, (m.entries[n - 1] as Entry).index, performance.now());
    }
    if (n > 0 && this.window.has((m.entries[0] as Entry).index)) {
      const lo = (m.entries[0] as Entry).index;
      const hi = (m.entries[n - 1] as Entry).index;
      this.window.run(lo, hi, this.handoff);
      if (this.handoff.last === hi) {
        // The entries are one contiguous window region: send the head only; the
        // replicator copies the records from shared memory.
        s.append(REPLICATOR_HEAD_OFFSET);
        const headBytes = encodeRaftMessageHead(s, m, this.handoff.byteLength, n);
        const b = s.bytes;
        b.fill(0, 0, REPLICATOR_HEAD_OFFSET);
        b[0] = ReplicatorFrame.WindowMessage;
        writeU32(b, REPLICATOR_HEAD_BYTES_OFFSET, headBytes);
        writeU32(b, REPLICATOR_WINDOW_POS_OFFSET, this.handoff.pos);
        writeU32(b, REPLICATOR_BYTE_LENGTH_OFFSET, this.handoff.byteLength);
        peer.outbox.write(s.view());
        return;
      }
    }
    if (n > 0) {
      const lo = (m.entries[0] as Entry).index;
      const last = m.entries[n - 1] as Entry;
      if (last.index <= this.control.durableIndex && this.core.role === Role.Leader) {
        // A follower behind the window: its replicator reads the records from the segment
        // files (they are durable, so they are there), not this thread. The replicator
        // checks our term before and after reading, so publish it first.
        this.control.term = this.core.term;
        this.segmentMessagesSent++;
        s.append(REPLICATOR_SEGMENT_HEAD_OFFSET);
        const headBytes = encodeRaftMessageHead(s, m, 0, 0);
        const b = s.bytes;
        b.fill(0, 0, REPLICATOR_SEGMENT_HEAD_OFFSET);
        b[0] = ReplicatorFrame.SegmentMessage;
        writeU32(b, REPLICATOR_HEAD_BYTES_OFFSET, headBytes);
        writeU64(b, REPLICATOR_SEGMENT_LO_OFFSET, lo);
        writeU64(b, REPLICATOR_SEGMENT_HI_OFFSET, last.index);
        writeU64(b, REPLICATOR_SEGMENT_LAST_TERM_OFFSET, last.term);
        writeU64(b, REPLICATOR_SEGMENT_TERM_OFFSET, this.core.term);
        peer.outbox.write(s.view());
        return;
      }
    }
    // No entries, or entries not yet durable and not in the window: encode them here.
    if (hasReleasedPayload(m.entries)) {
      this.fail(releasedEntryError(m.entries));
      return;
    }
    s.append(4);
    s.bytes.fill(0, 0, 4);
    s.bytes[0] = ReplicatorFrame.Wire;
    encodeRaftMessageFrame(s, m);
    peer.outbox.write(s.view());
  }

  /**
   * The core wants `peer` to get the snapshot: its replicator streams the latest one from
   * disk on a connection of its own and reports back ('snapshot-sent'). When there is no
   * snapshot on disk yet (only the founding configuration), one is taken first and the
   * core is told this attempt failed, so it asks again with the new one.
   */
  private sendSnapshot(peer: Peer, m: Message): void {
    const meta = m.snapshot;
    if (!this.snapshotOnDisk || !meta || meta.index < 2) {
      if (!this.canSnapshot) {
        if (!this.snapshotlessWarned.has(peer.spec.id)) {
          this.snapshotlessWarned.add(peer.spec.id);
          this.log.warn(
            { peer: peer.spec.id },
            'a follower needs a snapshot, but the state machine cannot save one (no onSnapshotSave)',
          );
        }
      } else if (this.snapshotWaiters.length === 0) {
        this.snapshot().catch((err: Error) =>
          this.log.warn({ err: err.message }, 'snapshot for a follower failed'),
        );
      }
      setImmediate(() => {
        if (this.stopped || this.fatal) return;
        this.core.reportSnapshot(peer.spec.id, false);
        this.scheduleReady();
      });
      return;
    }
    this.log.info(
      { peer: peer.spec.id, index: meta.index, term: meta.term },
      'sending a snapshot to a follower',
    );
    peer.outbox.write(encodeSendSnapshotFrame(meta.index, this.core.term));
  }

  /**
   * A snapshot from `leader` is installed in the store (the intake committed it): the core
   * hears of it as the MsgSnap it stands for, and then loads it or, if it already has
   * those entries, just learns they are committed.
   */
  private onSnapshotInstalled(meta: SnapshotMeta, leader: NodeId, leaderTerm: Term): void {
    if (this.stopped || this.fatal) return;
    // It is the newest snapshot in the store now, whether or not the core needs it (it
    // may hold those entries already): a local save must not claim an older index.
    if (meta.index > this.savedSnapshot.index) {
      this.savedSnapshot = { index: meta.index, term: meta.term };
      if (meta.index > this.lastSnapshot.index) this.lastSnapshot = this.savedSnapshot;
    }
    this.log.info({ index: meta.index, term: meta.term, leader }, "leader's snapshot received");
    this.core.step(
      message({
        type: MessageType.MsgSnap,
        from: leader,
        to: this.opts.id,
        term: leaderTerm,
        snapshot: meta,
      }),
    );
    this.scheduleReady();
  }

  private onPeerMessage(frame: DecodedRaftMessageFrame): void {
    if (this.stopped || this.fatal) return;
    const m = frame.message;
    const peer = this.peers.get(m.from);
    if (peer && (m.type === MessageType.MsgAppResp || m.type === MessageType.MsgHeartbeatResp)) {
      const now = performance.now();
      this.control.setPeer(peer.slot, m.reject ? this.control.peerMatchIndex(peer.slot) : m.index, now);
      if (m.type === MessageType.MsgAppResp && !m.reject) this.stages.appendAcked(m.from, m.index, now);
    }
    this.core.step(m);
    this.scheduleReady();
  }

  // ---------------------------------------------------------------- the log-writer

  private handleAppend(work: AppendWork): void {
    if (work.snapshot) this.resetWriterLog(work.snapshot.index, work.snapshot.term);
    const out = this.writerOutbox;
    for (const e of work.entries) if (e.type === EntryType.ConfChange) this.learnAddressesFrom(e);
    const windowPos = this.window.position;
    this.forEachRun(work.entries, true, WriterFrame.Entries, 0, out);
    if (work.hardState) {
      const vote = utf8(work.hardState.vote);
      const f = out.reserve(HARD_STATE_VOTE_OFFSET + 1 + vote.byteLength);
      f.fill(0, 0, HARD_STATE_VOTE_OFFSET);
      f[0] = WriterFrame.HardState;
      writeU64(f, HARD_STATE_TERM_OFFSET, work.hardState.term);
      f[HARD_STATE_VOTE_OFFSET] = vote.byteLength;
      f.set(vote, HARD_STATE_VOTE_OFFSET + 1);
      out.commit();
    }
    const seq = ++this.appendSeq;
    const f = out.reserve(BARRIER_FRAME_BYTES);
    f.fill(0);
    f[0] = WriterFrame.Barrier;
    writeU32(f, BARRIER_SEQ_OFFSET, seq);
    out.commit();
    this.pendingAppends.push({ seq, work, windowPos });
  }

  /** Asks the log-writer to drop the whole log: a snapshot at `(index, term)` replaces it. */
  private resetWriterLog(index: Index, term: Term): void {
    const f = this.writerOutbox.reserve(WRITER_RESET_FRAME_BYTES);
    f.fill(0);
    f[0] = WriterFrame.ResetLog;
    writeU64(f, WRITER_INDEX_OFFSET, index);
    writeU64(f, WRITER_TERM_OFFSET, term);
    this.writerOutbox.commit();
  }

  /**
   * Hands `entries` to a worker as frames of `kind`: runs that are one contiguous window
   * region go by reference, the rest inline. With `writeWindow` the entries are first
   * written into the window (new entries: the only place an entry is ever encoded).
   */
  private forEachRun(
    entries: readonly Entry[],
    writeWindow: boolean,
    kind: number,
    flags: number,
    out: RingOutbox,
  ): void {
    const n = entries.length;
    let start = 0;
    let inWindow = false;
    let startPos = 0;
    let endPos = 0;
    let inlineBytes = 0;
    for (let k = 0; k < n; k++) {
      const e = entries[k] as Entry;
      // New entries go into the window here: the only place an entry is ever encoded.
      // One that does not fit travels inline instead.
      const here = writeWindow ? this.window.append(e) : this.window.has(e.index);
      if (k > start) {
        const joins = here
          ? inWindow && this.window.follows(e.index, endPos)
          : !inWindow && inlineBytes < MAX_INLINE_RUN_BYTES;
        if (!joins) {
          this.emitRun(entries, start, k, inWindow, startPos, endPos, inlineBytes, kind, flags, out);
          start = k;
        }
      }
      if (k === start) {
        inWindow = here;
        startPos = here ? this.window.posOf(e.index) : 0;
        endPos = startPos;
        inlineBytes = 0;
      }
      if (here) endPos = (endPos + this.window.recordBytesOf(e.index)) >>> 0;
      else inlineBytes += encodedEntryBytes(e);
    }
    if (n > start) this.emitRun(entries, start, n, inWindow, startPos, endPos, inlineBytes, kind, flags, out);
  }

  /** One frame for entries[from, to): a window region, or the records inline. */
  private emitRun(
    entries: readonly Entry[],
    from: number,
    to: number,
    inWindow: boolean,
    startPos: number,
    endPos: number,
    inlineBytes: number,
    kind: number,
    flags: number,
    out: RingOutbox,
  ): void {
    const first = entries[from] as Entry;
    const last = entries[to - 1] as Entry;
    if (kind === WriterFrame.Entries && out === this.writerOutbox) {
      this.logBytesAppended += inWindow ? posDiff(endPos, startPos) : inlineBytes;
    }
    const f = out.reserve(ENTRIES_HEADER_BYTES + (inWindow ? 0 : inlineBytes));
    writeEntriesHeader(f, 0, {
      kind,
      source: inWindow ? RecordSource.Window : RecordSource.Inline,
      flags,
      recordCount: to - from,
      firstIndex: first.index,
      lastIndex: last.index,
      lastTerm: last.term,
      windowPos: startPos,
      byteLength: inWindow ? posDiff(endPos, startPos) : inlineBytes,
    });
    if (!inWindow) {
      let at = ENTRIES_HEADER_BYTES;
      for (let k = from; k < to; k++) {
        const e = entries[k] as Entry;
        // Never reached: released entries are applied and durable. Checked because the
        // stand-in's zero bytes would be stored or applied as if they were the entry.
        if (isReleasedPayload(e.data)) throw releasedEntryError([e]);
        at += encodeEntry(e, f, at);
      }
    }
    out.commit();
  }

  /** Waits (without blocking) for the log-writer to publish durable barriers. */
  private async watchWriter(): Promise<void> {
    let seen = 0;
    while (!this.stopped && !this.fatal) {
      const w = atomicsWaitAsync(this.control.i32, CONTROL_SLOT_WRITER_DONE_SEQ, seen);
      if (w.async) await w.value;
      if (this.control.writerFailed) {
        this.fail(new StorageError('the log-writer stopped on a disk error'));
        return;
      }
      const done = this.control.writerDoneSeq;
      if (done === seen) continue;
      seen = done;
      this.onDurable(done);
    }
  }

  private onDurable(doneSeq: number): void {
    if (this.stopped || this.fatal) return;
    let n = 0;
    while (n < this.pendingAppends.length && (this.pendingAppends[n] as { seq: number }).seq <= doneSeq) n++;
    const done = this.pendingAppends.splice(0, n);
    for (const { work } of done) {
      this.storage.write(work);
      this.core.persisted(work);
      for (const m of work.messages) this.send(m);
    }
    if (this.core.role === Role.Leader)
      this.stages.madeDurable(this.core.log.stableIndex(), performance.now());
    if (this.snapshotAwaitingLog > 0 && this.snapshotAwaitingLog <= this.storage.lastIndex()) {
      this.adoptSnapshot(this.snapshotAwaitingLog);
    }
    this.reclaimWindow();
    this.processReady();
  }

  /**
   * Frees window bytes nobody needs: everything before the oldest append work item the
   * log-writer has not made durable, and before the oldest entry the fsm has not applied.
   * Both are counted here, from what was handed out, rather than from positions the
   * workers report: an entry written to the window but sent inline (the window filled up
   * mid-batch) is never read by any worker, and must not hold the window forever.
   */
  private reclaimWindow(): void {
    const oldest = this.pendingAppends[0];
    const writerHold = oldest ? oldest.windowPos : this.window.position;
    const fsmHold = this.window.holdFor(this.appliedIndex + 1);
    const hold = posDiff(writerHold, fsmHold) < 0 ? writerHold : fsmHold;
    this.control.windowReclaimedPos = this.window.reclaim(hold);
  }

  // ---------------------------------------------------------------- the fsm

  private handleApply(work: ApplyWork): void {
    if (work.snapshot) {
      // The leader's snapshot replaces the state: the fsm loads it from the store.
      const { index, term } = work.snapshot;
      this.lastSnapshot = { index, term };
      this.savedSnapshot = this.lastSnapshot;
      this.logBytesAtSnapshot = this.logBytesAppended;
      this.lastSnapshotAtMs = performance.now();
      this.snapshotsInstalled++;
      const json = utf8(JSON.stringify({ index, term }));
      const f = this.fsmOutbox.reserve(FSM_EVENT_BODY_OFFSET + json.byteLength);
      f.fill(0, 0, FSM_EVENT_BODY_OFFSET);
      f[0] = FsmFrame.LoadSnapshot;
      writeU32(f, FSM_EVENT_JSON_BYTES_OFFSET, json.byteLength);
      f.set(json, FSM_EVENT_BODY_OFFSET);
      this.fsmOutbox.commit();
      this.fsmEvent(FsmEvent.ConfigurationCommitted, confArg(work.snapshot.conf));
    }
    const flags = this.waiters.size > 0 ? ENTRIES_FLAG_WANT_RESULTS : 0;
    this.forEachRun(work.entries, false, FsmFrame.Entries, flags, this.fsmOutbox);
    const last = work.entries[work.entries.length - 1];
    if (last) this.fsmHandedIndex = last.index;
    else if (work.snapshot) this.fsmHandedIndex = work.snapshot.index;
    this.storage.releaseObjects(
      this.fsmHandedIndex - ENTRY_OBJECTS_KEPT,
      ENTRY_PAYLOAD_BYTES_KEPT,
      this.fsmHandedIndex,
    );
    for (const e of work.entries) {
      if (e.type === EntryType.ConfChange) {
        const conf = this.core.configurationAt(e.index);
        this.fsmEvent(FsmEvent.ConfigurationCommitted, confArg(conf));
        this.confCommitted(e, conf);
      }
    }
  }

  /** A configuration entry committed: settle the change waiting on it (or on leaving its joint phase). */
  private confCommitted(e: Entry, conf: ConfState): void {
    const w = this.confWaiters.get(e.index);
    if (w) {
      this.confWaiters.delete(e.index);
      if (w.term !== e.term) {
        w.reject(this.notLeader('the change was replaced by another leader before it committed'));
      } else if (isJoint(conf)) {
        w.joint = true;
        this.confWaiters.set(e.index, w);
      } else {
        w.resolve(confValue(e.index, conf));
      }
      return;
    }
    if (isJoint(conf)) return;
    // Leaving a joint configuration settles the change that entered it.
    for (const [index, waiter] of this.confWaiters) {
      if (waiter.joint && index < e.index) {
        this.confWaiters.delete(index);
        waiter.resolve(confValue(e.index, conf));
      }
    }
  }

  private fsmEvent(event: FsmEvent, arg: object): void {
    const json = utf8(JSON.stringify(arg));
    const f = this.fsmOutbox.reserve(FSM_EVENT_BODY_OFFSET + json.byteLength);
    f.fill(0, 0, FSM_EVENT_BODY_OFFSET);
    f[0] = FsmFrame.Event;
    f[FSM_EVENT_TYPE_OFFSET] = event;
    writeU32(f, FSM_EVENT_JSON_BYTES_OFFSET, json.byteLength);
    f.set(json, FSM_EVENT_BODY_OFFSET);
    this.fsmOutbox.commit();
  }

  private sendQuery(ctx: number, read: PendingRead): void {
    const s = this.scratch;
    s.clear();
    s.append(FSM_QUERY_BODY_OFFSET);
    s.bytes.fill(0, 0, FSM_QUERY_BODY_OFFSET);
    s.bytes[0] = FsmFrame.Query;
    writeU32(s.bytes, FSM_QUERY_ID_OFFSET, ctx);
    try {
      encodeValue(read.query, s);
    } catch (err) {
      this.reads.delete(ctx);
      read.reject(err as Error);
      return;
    }
    const queryBytes = s.length - FSM_QUERY_BODY_OFFSET;
    if (queryBytes > MAX_QUERY_BYTES) {
      this.reads.delete(ctx);
      read.reject(
        new RaftError('ERR_RAFT_TOO_LARGE', `a query of ${queryBytes} bytes; at most ${MAX_QUERY_BYTES}`),
      );
      return;
    }
    this.fsmOutbox.write(s.view());
    this.fsmOutbox.flush();
  }

  /** Reads the fsm's results as they come. */
  private async watchResults(): Promise<void> {
    while (!this.stopped) {
      const outcome = await this.results.waitForDataAsync();
      if (this.stopped) return;
      try {
        this.results.drain(this.onResult);
      } catch (err) {
        // A bug here must stop the node cleanly (reported, threads closed by shutdown),
        // not kill the process from inside a ring callback.
        this.fail(
          new RaftError('ERR_RAFT_INTERNAL', `handling an fsm result failed: ${(err as Error).message}`),
        );
        return;
      }
      if (outcome === 'closed') return;
      this.afterApplied();
    }
  }

  private readonly onResult = (f: Uint8Array): void => {
    switch (f[0]) {
      case ResultFrame.Value: {
        const index = readU64(f, RESULT_INDEX_OFFSET);
        const w = this.waiters.get(index);
        if (!w) return;
        this.waiters.delete(index);
        if (w.term !== readU64(f, RESULT_TERM_OFFSET)) {
          w.reject(this.notLeader('the entry was replaced by another leader before it committed'));
          return;
        }
        try {
          // A copy either way: the ring's bytes are reused once the drain moves on.
          w.resolve(
            w.encoded
              ? f.slice(RESULT_VALUE_BODY_OFFSET)
              : decodeValue(f, RESULT_VALUE_BODY_OFFSET, f.byteLength),
          );
        } catch (err) {
          w.reject(err as Error);
        }
        return;
      }
      case ResultFrame.Applied: {
        const index = readU64(f, RESULT_APPLIED_INDEX_OFFSET);
        if (index > this.appliedIndex) this.appliedIndex = index;
        return;
      }
      case ResultFrame.Query: {
        const id = readU32(f, RESULT_QUERY_ID_OFFSET);
        const read = this.reads.get(id);
        if (!read) return;
        this.reads.delete(id);
        if (f[RESULT_QUERY_OK_OFFSET] === 1) {
          try {
            read.resolve(decodeValue(f, RESULT_QUERY_BODY_OFFSET, f.byteLength));
          } catch (err) {
            read.reject(err as Error);
          }
        } else {
          read.reject(new RaftError('ERR_RAFT_QUERY', fromUtf8(f, RESULT_QUERY_BODY_OFFSET)));
        }
        return;
      }
      case ResultFrame.Snapshot: {
        const answer = JSON.parse(
          fromUtf8(f, FSM_EVENT_BODY_OFFSET, FSM_EVENT_BODY_OFFSET + readU32(f, FSM_EVENT_JSON_BYTES_OFFSET)),
        );
        const waiter = this.snapshotWaiters.shift();
        if (f[1] === 1) {
          const { index, term } = answer as { index: Index; term: Term };
          this.log.info({ index, term }, 'snapshot taken');
          this.snapshotsSaved++;
          if (index > this.savedSnapshot.index) this.savedSnapshot = { index, term };
          this.adoptSnapshot(index);
          waiter?.resolve({ index, term, fresh: true });
        } else {
          // The claimed index was not saved: the next call must try again.
          this.lastSnapshot = this.savedSnapshot;
          const record = answer as ErrorRecord;
          waiter?.reject(new RaftError(record.code, `snapshot failed: ${record.message}`));
        }
        return;
      }
      case ResultFrame.Failed: {
        const record = JSON.parse(fromUtf8(f, RESULT_FAILED_BODY_OFFSET)) as ErrorRecord;
        const index = readU64(f, RESULT_INDEX_OFFSET);
        this.stateMachineError = `onApply threw at index ${index}: ${record.message}`;
        this.log.error({ index, error: record }, 'state machine failed: this node stopped applying');
        const err = new StateMachineError(this.stateMachineError);
        for (const w of this.waiters.values()) w.reject(err);
        this.waiters.clear();
        this.emit('error', err);
        return;
      }
    }
  };

  /**
   * A snapshot at `index` is on disk: it becomes the core's snapshot (what a follower
   * that needs compacted entries is sent) and the log is compacted up to
   * `index - compactionMarginEntries`, so a follower only slightly behind still catches
   * up from the log.
   */
  private adoptSnapshot(index: Index): void {
    if (this.stopped || this.fatal || index <= this.storage.snapshot().index) return;
    if (index > this.storage.lastIndex()) {
      // A follower applies entries the leader committed before its own log-writer made
      // them durable: the snapshot is adopted (and the log compacted) once they are.
      this.snapshotAwaitingLog = Math.max(this.snapshotAwaitingLog, index);
      return;
    }
    this.snapshotAwaitingLog = 0;
    this.storage.createSnapshot(index, this.core.configurationAt(index));
    const upTo = index - this.opts.compactionMarginEntries;
    if (upTo < this.storage.firstIndex()) return;
    this.storage.compact(upTo);
    this.core.compacted(upTo);
    this.compactions++;
    const f = this.writerOutbox.reserve(WRITER_COMPACT_FRAME_BYTES);
    f.fill(0);
    f[0] = WriterFrame.Compact;
    writeU64(f, WRITER_INDEX_OFFSET, upTo);
    this.writerOutbox.commit();
    this.writerOutbox.flush();
  }

  /**
   * The snapshot triggers (braft's snapshot timer, plus the seed's "smart" rules): a
   * snapshot is due every `snapshotIntervalS` if anything was applied, or sooner once
   * the log grew by `snapshotLogBytes` or `snapshotLogEntries` since the last one, but
   * never within `snapshotMinIntervalS` of it. One at a time.
   */
  private maybeSnapshot(nowMs: number): void {
    if (!this.canSnapshot || this.snapshotWaiters.length > 0 || this.stateMachineError) return;
    const o = this.opts;
    const entries = this.appliedIndex - this.lastSnapshot.index;
    if (entries <= 0) return;
    const elapsedS = (nowMs - this.lastSnapshotAtMs) / 1000;
    const due =
      (o.snapshotIntervalS > 0 && elapsedS >= o.snapshotIntervalS) ||
      (elapsedS >= o.snapshotMinIntervalS &&
        ((o.snapshotLogEntries > 0 && entries >= o.snapshotLogEntries) ||
          (o.snapshotLogBytes > 0 && this.logBytesAppended - this.logBytesAtSnapshot >= o.snapshotLogBytes)));
    if (!due) return;
    this.snapshot().catch((err: Error) => this.log.warn({ err: err.message }, 'scheduled snapshot failed'));
  }

  private afterApplied(): void {
    if (this.stopped || this.fatal) return;
    const applied = this.appliedIndex;
    if (applied > this.core.log.applied) this.core.applied(applied);
    this.stages.madeApplied(applied, performance.now());
    // Waiters at or below `applied` that no Value frame answered held a non-command entry
    // (the index was taken by another leader's no-op or configuration change).
    for (const [index, w] of this.waiters) {
      if (index > applied) break;
      this.waiters.delete(index);
      w.reject(this.notLeader('the entry was replaced by another leader before it committed'));
    }
    if (this.readsAwaitingApply.length > 0) {
      let keep = 0;
      for (const ctx of this.readsAwaitingApply) {
        const read = this.reads.get(ctx);
        if (!read) continue;
        if (read.index <= applied) this.sendQuery(ctx, read);
        else this.readsAwaitingApply[keep++] = ctx;
      }
      this.readsAwaitingApply.length = keep;
    }
    this.reclaimWindow();
    this.processReady();
  }

  // ---------------------------------------------------------------- time

  private catchUpTicks(): void {
    if (this.stopped || this.fatal) return;
    const due = Math.floor((performance.now() - this.tickOriginMs) / this.tickMs);
    if (due <= this.ticksDone) return;
    while (this.ticksDone < due) {
      this.core.tick();
      this.ticksDone++;
    }
    this.expireRequests();
    this.maybeSnapshot(performance.now());
    this.scheduleReady();
  }

  /**
   * Fails requests past their deadline. Every request gets the same timeout and the maps
   * keep insertion order, so deadlines only grow along them: stop at the first live one.
   */
  private expireRequests(): void {
    const now = performance.now();
    for (const [index, w] of this.waiters) {
      if (w.deadlineMs > now) break;
      this.waiters.delete(index);
      w.reject(
        new TimeoutError(
          `apply of index ${index} not answered in ${this.opts.requestTimeoutMs} ms; its outcome is unknown`,
        ),
      );
    }
    for (const [ctx, r] of this.reads) {
      if (r.deadlineMs > now) break;
      this.reads.delete(ctx);
      r.reject(new TimeoutError(`read not answered in ${this.opts.requestTimeoutMs} ms`));
    }
    for (const [index, w] of this.confWaiters) {
      if (w.deadlineMs > now) continue;
      this.confWaiters.delete(index);
      w.reject(
        new TimeoutError(
          `membership change at index ${index} not committed in ${this.opts.requestTimeoutMs} ms; its outcome is unknown`,
        ),
      );
    }
  }

  private publishControl(): void {
    const s = this.core;
    this.control.term = s.term;
    if (s.log.committed !== this.control.commitIndex && s.role === Role.Leader) {
      this.stages.madeCommitted(s.log.committed, performance.now());
    }
    this.control.commitIndex = s.log.committed;
  }

  private flushRings(): void {
    this.writerOutbox.flush();
    this.fsmOutbox.flush();
    for (const p of this.peers.values()) p.outbox.flush();
  }

  // ================================================================ stop

  /** A fatal error: stop serving, fail everything waiting, keep what is on disk. */
  private fail(err: RaftError): void {
    if (this.fatal || this.stopped) return;
    this.fatal = err;
    this.log.error({ code: err.code, err: err.message }, 'node stopped serving');
    this.rejectAll(err);
    this.emit('error', err);
  }

  private rejectAll(err: Error): void {
    for (const p of this.proposals) p.reject(err);
    this.proposals.length = 0;
    for (const w of this.waiters.values()) w.reject(err);
    this.waiters.clear();
    for (const r of this.reads.values()) r.reject(err);
    this.reads.clear();
    for (const w of this.snapshotWaiters.splice(0)) w.reject(err);
    for (const w of this.confWaiters.values()) w.reject(err);
    this.confWaiters.clear();
  }

  /** Drains pending requests (up to `shutdownDrainMs`), then stops every thread and socket. */
  async shutdown(): Promise<void> {
    if (this.stopped) return;
    const deadline = performance.now() + this.opts.shutdownDrainMs;
    while (
      !this.fatal &&
      (this.proposals.length > 0 || this.waiters.size > 0 || this.reads.size > 0) &&
      performance.now() < deadline
    ) {
      await new Promise((r) => setTimeout(r, 10));
    }
    this.stopped = true;
    this.rejectAll(new ShutdownError());
    if (this.tickTimer) clearInterval(this.tickTimer);
    await this.server?.close();
    this.snapshotReceiver?.close();
    this.snapshotSink?.close();
    const exits: Promise<void>[] = [];
    for (const p of this.peers.values()) {
      exits.push(closeWorker(p.worker, () => p.outbox.close()));
    }
    if (this.writer) exits.push(closeWorker(this.writer, () => this.writerOutbox.close()));
    if (this.fsm) exits.push(closeWorker(this.fsm, () => this.fsmOutbox.close()));
    await Promise.all(exits);
    this.results.close();
    this.log.info({}, 'node stopped');
  }
}

/** The answer to a membership change: the configuration it produced. */
function confValue(index: Index, conf: ConfState): Value {
  return { index, voters: [...conf.voters], learners: [...conf.learners] };
}

/** What `onConfigurationCommitted` receives. */
function confArg(conf: ConfState): { voters: NodeId[]; learners: NodeId[] } {
  return { voters: [...conf.voters], learners: [...conf.learners] };
}

function describeConf(conf: ConfState): string {
  const out = isJoint(conf) ? ` (joint with ${conf.votersOutgoing.join(',')})` : '';
  return `voters ${conf.voters.join(',')}${out}, learners ${conf.learners.join(',') || 'none'}`;
}

function dropReason(d: ProposalDropped): string {
  return d === ProposalDropped.TransferInProgress
    ? 'a leadership transfer is in progress; retry at the new leader'
    : 'this node is not the leader';
}

function roleCode(role: Role): number {
  switch (role) {
    case Role.Follower:
      return 0;
    case Role.PreCandidate:
      return 1;
    case Role.Candidate:
      return 2;
    case Role.Leader:
      return 3;
  }
}

/** Waits for a worker's first message of `type`; an 'error' message or an exit rejects. */
function firstMessage<T>(worker: Worker, type: string, name: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (m: { type: string; error?: ErrorRecord }): void => {
      if (m.type === type) {
        cleanup();
        resolve(m as T);
      } else if (m.type === 'error' && m.error) {
        cleanup();
        reject(new RaftError(m.error.code, `${name}: ${m.error.message}`));
      }
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onExit = (code: number): void => {
      cleanup();
      reject(new RaftError('ERR_RAFT_INTERNAL', `${name} thread exited (${code}) before it started`));
    };
    const cleanup = (): void => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}

/** Closes a worker's ring, waits for it to say 'closed' (2 s at most), then ends it. */
async function closeWorker(worker: Worker, closeRing: () => Promise<void>): Promise<void> {
  const closed = new Promise<void>((resolve) => {
    const t = setTimeout(resolve, 2000);
    worker.on('message', (m: { type: string }) => {
      if (m.type === 'closed' || m.type === 'error') {
        clearTimeout(t);
        resolve();
      }
    });
    worker.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
  await closeRing();
  await closed;
  await worker.terminate();
}

/** A released entry's stand-in reached a path that would send or apply its bytes: a bug. */
function releasedEntryError(entries: readonly Entry[]): RaftError {
  const e = entries.find((x) => isReleasedPayload(x.data)) as Entry;
  return new RaftError(
    'ERR_RAFT_INTERNAL',
    `entry ${e.index} was released from memory but is neither in the log window nor durable`,
  );
}

function memoryStatus(storage: MemoryStorage): NodeStatus['memory'] {
  const m = process.memoryUsage();
  return {
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    heapTotalBytes: m.heapTotal,
    arrayBuffersBytes: m.arrayBuffers,
    entryObjects: storage.heldObjects(),
    entryPayloadBytes: storage.heldPayloadBytes(),
  };
}
