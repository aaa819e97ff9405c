import {
  applyConfChange,
  type ConfChange,
  decodeConfChange,
  encodeConfChange,
  InvalidConfChangeError,
  isJoint,
  isVoter,
  members,
} from './conf-change.js';
import { ProposalDropped, RaftInvariantError } from './errors.js';
import {
  CAMPAIGN_TRANSFER,
  type Message,
  MessageType,
  message,
  mustFollowPersist,
  voteRespType,
} from './messages.js';
import { Progress, ProgressState } from './progress.js';
import { jointCommitted, jointVoteResult, VoteResult } from './quorum.js';
import { RaftLog } from './raft-log.js';
import type { Rng } from './rng.js';
import { isGap, type Storage } from './storage.js';
import {
  type ConfState,
  type Entry,
  EntryType,
  entryBytes,
  type HardState,
  type Index,
  NO_NODE,
  type NodeId,
  type ReadState,
  Role,
  type SnapshotMeta,
  type Term,
} from './types.js';

/** Tunables of one core. Times are in ticks: the driver decides how long a tick is. */
export interface RaftConfig {
  readonly id: NodeId;
  readonly storage: Storage;
  /** The source of randomness for election timeouts; seeded by the caller. */
  readonly rng: Rng;
  /** A follower that hears nothing for this many ticks (randomised up to twice it) campaigns. */
  readonly electionTicks: number;
  /** A leader sends heartbeats this often. Must be less than electionTicks. */
  readonly heartbeatTicks: number;
  /** Thesis §9.6: ask for votes without raising the term first. Default true. */
  readonly preVote?: boolean;
  /** Thesis §6.2: a leader that has not heard from a quorum for electionTicks steps down. Default true. */
  readonly checkQuorum?: boolean;
  /** The most entry bytes in one AppendEntries. Default 1 MiB. */
  readonly maxSizePerMsgBytes?: number;
  /** AppendEntries in flight per follower. Default 256. */
  readonly maxInflightMsgs?: number;
  /** Entry bytes in flight per follower. Default 32 MiB. */
  readonly maxInflightBytes?: number;
  /** Entry bytes per apply work item. Default 64 MiB. */
  readonly maxApplyBytes?: number;
  /**
   * Ticks taken off a leader lease to allow for clock-rate drift between nodes. Must be
   * at least 1 (ticks are only counted when they end). Default 1.
   */
  readonly leaseSafetyTicks?: number;
}

/** The part of a Ready that the log-writer handles: persist, then acknowledge, then send. */
export interface AppendWork {
  /** A snapshot from the leader that replaces the log; written before `entries`. */
  readonly snapshot: SnapshotMeta | null;
  /** Entries to write; any stored entry at or after entries[0].index is replaced. */
  readonly entries: readonly Entry[];
  /** Term and vote to persist, when they changed. */
  readonly hardState: HardState | null;
  /** Messages that may only leave once the above is durable. Some may be addressed to this node. */
  readonly messages: readonly Message[];
  /** The last entry (or the snapshot) written, which `persisted(work)` acknowledges. Null when no log write. */
  readonly ack: { readonly index: Index; readonly term: Term } | null;
}

/** The part of a Ready for the state machine: load the snapshot (if any), then apply the entries in order. */
export interface ApplyWork {
  readonly snapshot: SnapshotMeta | null;
  readonly entries: readonly Entry[];
}

export interface SoftState {
  readonly role: Role;
  readonly leader: NodeId;
}

/**
 * What the driver must do next. Contract:
 * 1. send `messages` now (they do not depend on unpersisted state);
 * 2. hand `append` to storage; append work items are processed strictly in order; once
 *    one is durable, call `persisted(append)` and then send its `messages`
 *    (stepping those addressed to this node back into it);
 * 3. give `apply` to the state machine, in order, and call `applied()` as it finishes;
 * 4. serve the reads in `readStates` once the state machine has applied their index, and
 *    fail those in `droppedReads`.
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly messages: readonly Message[];
  readonly append: AppendWork | null;
  readonly apply: ApplyWork | null;
  readonly readStates: readonly ReadState[];
  readonly droppedReads: readonly number[];
}

/** A configuration entry in the log and the configuration it produces (thesis §4.1: latest in log wins). */
interface ConfLogEntry {
  readonly index: Index;
  readonly conf: ConfState;
}

/** A read waiting for the heartbeat round that proves this node still leads. */
interface PendingRead {
  readonly context: number;
  readonly from: NodeId;
  readonly index: Index;
  /** The heartbeat round whose quorum acknowledgement releases this read. */
  readonly round: number;
}

export interface ProgressStatus {
  readonly match: Index;
  readonly next: Index;
  readonly state: ProgressState;
  readonly inflightMsgs: number;
  readonly inflightBytes: number;
  readonly recentActive: boolean;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: Term;
  readonly vote: NodeId;
  readonly leader: NodeId;
  readonly committed: Index;
  readonly applying: Index;
  readonly applied: Index;
  readonly lastIndex: Index;
  readonly stableIndex: Index;
  readonly conf: ConfState;
  readonly leadTransferee: NodeId;
  readonly leaseValid: boolean;
  readonly progress: ReadonlyMap<NodeId, ProgressStatus>;
}

const EMPTY_DATA = new Uint8Array(0);

/**
 * The Raft algorithm as a deterministic state machine (in the style of etcd-io/raft).
 * It is driven by `tick()`, `step(message)`, `propose(...)` and `readIndex(...)`, and tells
 * its driver what to do through `ready()`. It performs no I/O, reads no clock, starts no
 * timer and draws randomness only from the seeded `rng` it is given.
 */
export class RaftCore {
  readonly id: NodeId;
  term: Term = 0;
  vote: NodeId = NO_NODE;
  lead: NodeId = NO_NODE;
  role: Role = Role.Follower;
  readonly log: RaftLog;

  private readonly rng: Rng;
  private readonly electionTicks: number;
  private readonly heartbeatTicks: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly maxSizePerMsgBytes: number;
  private readonly maxInflightMsgs: number;
  private readonly maxInflightBytes: number;
  private readonly maxApplyBytes: number;
  private readonly leaseSafetyTicks: number;

  /** Configuration entries in the log, oldest first; the first is the snapshot's. */
  private confLog: ConfLogEntry[];
  private conf: ConfState;
  private readonly prs = new Map<NodeId, Progress>();
  private readonly votes = new Map<NodeId, boolean>();

  /** Ticks since this core was made: the leader's clock for leases. */
  private ticks = 0;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /**
   * After a restart a node has forgotten when it last heard from a leader; it refuses to
   * vote for one election timeout as if it had just heard from one, so a lease granted
   * before the crash still holds.
   */
  private restartGuard: boolean;
  /** The newest term known durable: replies that vouch for our term wait until it is. */
  private durableTerm: Term;
  private leadTransferee: NodeId = NO_NODE;
  /** As leader: the index of the no-op this term began with. */
  private termStartIndex: Index = 0;
  /** Once a TimeoutNow has left, another node may win this term's successor at any time. */
  private leaseDisabled = false;

  // Heartbeat rounds: every broadcast carries a new round number as its context.
  private round = 0;
  /** round -> leader tick at which that round's heartbeats left (rounds not yet acknowledged). */
  private readonly roundTicks = new Map<number, number>();
  /** Newest round a quorum has acknowledged, and the tick at which it was sent. */
  private quorumRound = 0;
  private leaseStartTick = Number.NEGATIVE_INFINITY;
  private readonly pendingReads: PendingRead[] = [];
  /** Reads that arrived before this leader committed an entry of its term. */
  private readonly deferredReads: { context: number; from: NodeId }[] = [];

  // What the next Ready will carry.
  private msgs: Message[] = [];
  private msgsAfterAppend: Message[] = [];
  private readStates: ReadState[] = [];
  private droppedReads: number[] = [];
  private needBcastAppend = false;
  private needBcastHeartbeat = false;
  private prevHardState: HardState;
  private prevSoftState: SoftState;
  private readonly commitScratch: number[] = [];

  constructor(cfg: RaftConfig) {
    if (cfg.id === NO_NODE) throw new RangeError('RaftConfig.id must not be empty');
    if (!(cfg.heartbeatTicks >= 1)) throw new RangeError('RaftConfig.heartbeatTicks must be >= 1');
    if (!(cfg.electionTicks > cfg.heartbeatTicks)) {
      throw new RangeError('RaftConfig.electionTicks must be greater than heartbeatTicks');
    }
    this.id = cfg.id;
    this.rng = cfg.rng;
    this.electionTicks = cfg.electionTicks;
    this.heartbeatTicks = cfg.heartbeatTicks;
    this.preVote = cfg.preVote ?? true;
    this.checkQuorum = cfg.checkQuorum ?? true;
    this.maxSizePerMsgBytes = cfg.maxSizePerMsgBytes ?? 1 << 20;
    this.maxInflightMsgs = cfg.maxInflightMsgs ?? 256;
    this.maxInflightBytes = cfg.maxInflightBytes ?? 32 << 20;
    this.maxApplyBytes = cfg.maxApplyBytes ?? 64 << 20;
    this.leaseSafetyTicks = cfg.leaseSafetyTicks ?? 1;
    if (!(this.leaseSafetyTicks >= 1)) throw new RangeError('RaftConfig.leaseSafetyTicks must be >= 1');

    this.log = new RaftLog(cfg.storage);
    const { hardState, snapshot } = cfg.storage.initialState();
    if (snapshot.index === 0 && members(snapshot.conf).length > 0) {
      // A node that joins later starts from an empty index-0 state and learns the
      // configuration from the log or a snapshot. If the founders kept theirs at index 0,
      // the joiner would rebuild a different configuration from the same log.
      throw new RangeError(
        'storage: bootstrap the initial configuration as a snapshot at index 1 (see bootstrapSnapshot)',
      );
    }
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.durableTerm = hardState.term;
    // A node that never persisted a term has never acknowledged a leader: nothing to guard.
    this.restartGuard = hardState.term > 0;
    this.confLog = [{ index: snapshot.index, conf: snapshot.conf }];
    this.conf = snapshot.conf;
    for (const e of cfg.storage.confEntries()) this.appendConfEntry(e);
    this.prevHardState = { term: this.term, vote: this.vote };
    this.prevSoftState = { role: this.role, leader: this.lead };
    this.becomeFollower(this.term, NO_NODE);
  }

  // ---------------------------------------------------------------- public API

  /** Advances the logical clock by one tick. */
  tick(): void {
    this.ticks++;
    if (this.role === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  /** Starts an election now (as if the election timer had fired). */
  campaign(): void {
    this.hup(false);
  }

  /**
   * Appends a command. Returns the new entry's index (its term is `term`) or a negative
   * ProposalDropped reason. Entries proposed between two `ready()` calls travel together.
   */
  propose(data: Uint8Array, type: EntryType = EntryType.Normal): Index | ProposalDropped {
    if (this.role !== Role.Leader) return ProposalDropped.NotLeader;
    if (this.leadTransferee !== NO_NODE) return ProposalDropped.TransferInProgress;
    if (type === EntryType.ConfChange) {
      const check = this.checkConfChange(data);
      if (check !== 0) return check;
    }
    const index = this.log.lastIndex() + 1;
    const e: Entry = { index, term: this.term, type, data };
    this.appendEntries([e]);
    return index;
  }

  /** Proposes a membership change (joint consensus when voters change). */
  proposeConfChange(cc: ConfChange): Index | ProposalDropped {
    let data: Uint8Array;
    try {
      data = encodeConfChange(cc);
    } catch (err) {
      if (err instanceof InvalidConfChangeError) return ProposalDropped.InvalidConfChange;
      throw err;
    }
    return this.propose(data, EntryType.ConfChange);
  }

  /**
   * Asks for a linearizable read (thesis §6.4). The answer comes in a later Ready: a
   * ReadState with this `context`, or the context in `droppedReads`. With `lease` a
   * leader whose lease holds answers at once without a heartbeat round (§6.4.1).
   */
  readIndex(context: number, lease = false): void {
    if (this.role === Role.Leader) {
      this.leaderRead(context, this.id, lease);
    } else if (this.lead !== NO_NODE) {
      this.send(message({ type: MessageType.MsgReadIndex, from: this.id, to: this.lead, term: 0, context }));
    } else {
      this.droppedReads.push(context);
    }
  }

  /**
   * Hands leadership to `target` (thesis §3.10): catch it up, then tell it to campaign.
   * Returns false if this node is not the leader or `target` is not a voter.
   */
  transferLeadership(target: NodeId): boolean {
    if (this.role !== Role.Leader) return false;
    if (target === this.id) return this.leadTransferee === NO_NODE;
    if (!isVoter(this.conf, target) || !this.prs.has(target)) return false;
    if (this.leadTransferee === target) return true;
    this.leadTransferee = target;
    // The transfer must finish within one election timeout or it is abandoned.
    this.electionElapsed = 0;
    const pr = this.prs.get(target) as Progress;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(target);
    else this.maybeSendAppend(target, true);
    return true;
  }

  /** Feeds a message from another node (or one this node addressed to itself). */
  step(m: Message): void {
    if (m.term > this.term) {
      if (m.type === MessageType.MsgVote || m.type === MessageType.MsgPreVote) {
        const force = m.context === CAMPAIGN_TRANSFER;
        // Thesis §4.2.3: a node that has heard from a live leader within the minimum
        // election timeout ignores requests for votes, so removed or partitioned
        // servers cannot disrupt the cluster.
        if (!force && this.inLease()) return;
      }
      if (m.type === MessageType.MsgPreVote) {
        // Answering a pre-vote never changes our term.
      } else if (m.type === MessageType.MsgPreVoteResp && !m.reject) {
        // A granted pre-vote for term+1: we will raise our term only if we win.
      } else {
        const fromLeader =
          m.type === MessageType.MsgApp ||
          m.type === MessageType.MsgHeartbeat ||
          m.type === MessageType.MsgSnap;
        this.becomeFollower(m.term, fromLeader ? m.from : NO_NODE);
      }
    } else if (m.term < this.term && m.term !== 0) {
      if (
        (this.checkQuorum || this.preVote) &&
        (m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgApp)
      ) {
        // A stale leader (e.g. back from a partition) learns our term and steps down;
        // without this it could keep failing CheckQuorum-free clusters forever.
        this.send(message({ type: MessageType.MsgAppResp, from: this.id, to: m.from, term: this.term }));
      } else if (m.type === MessageType.MsgPreVote) {
        this.send(
          message({
            type: MessageType.MsgPreVoteResp,
            from: this.id,
            to: m.from,
            term: this.term,
            reject: true,
          }),
        );
      }
      return;
    }

    switch (m.type) {
      case MessageType.MsgVote:
      case MessageType.MsgPreVote:
        this.handleVoteRequest(m);
        return;
      default:
        break;
    }
    switch (this.role) {
      case Role.Leader:
        this.stepLeader(m);
        break;
      case Role.Candidate:
      case Role.PreCandidate:
        this.stepCandidate(m);
        break;
      case Role.Follower:
        this.stepFollower(m);
        break;
    }
  }

  /**
   * The driver made an append work item durable (items complete in the order they were
   * handed out). The log part is acknowledged by (index, term), never by index alone: the
   * entries may have been replaced since they were handed out.
   */
  persisted(work: AppendWork): void {
    if (work.hardState && work.hardState.term > this.durableTerm) this.durableTerm = work.hardState.term;
    const ack = work.ack;
    if (!ack) return;
    this.log.unstable.stableTo(ack.index, ack.term);
    if (this.role === Role.Leader) {
      // The leader's own vote in the commit quorum is its durable prefix (Raft §10.2.1).
      const self = this.prs.get(this.id);
      if (self?.maybeUpdate(this.log.stableIndex()) && this.maybeCommit()) this.needBcastAppend = true;
    }
  }

  /** The state machine has applied everything up to `index`. */
  applied(index: Index): void {
    if (index > this.log.applying) {
      throw new RaftInvariantError(`applied(${index}) is past what was handed out (${this.log.applying})`);
    }
    if (index > this.log.applied) this.log.applied = index;
  }

  /** The transport could not reach `id`; stop streaming optimistically to it. */
  reportUnreachable(id: NodeId): void {
    const pr = this.prs.get(id);
    if (this.role === Role.Leader && pr && pr.state === ProgressState.Replicate) pr.becomeProbe();
  }

  /** The snapshot sent to `id` finished (or failed). Either way, probe again from there. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    const pr = this.prs.get(id);
    if (this.role !== Role.Leader || !pr || pr.state !== ProgressState.Snapshot) return;
    if (!ok) pr.pendingSnapshot = 0;
    pr.becomeProbe();
    // Wait for the follower's reply (or the next heartbeat reply) before probing.
    pr.probeSent = true;
  }

  /** The configuration in force (the latest in the log, thesis §4.1). */
  confState(): ConfState {
    return this.conf;
  }

  /** The configuration in force at `index`, for a snapshot taken there. */
  configurationAt(index: Index): ConfState {
    let c = (this.confLog[0] as ConfLogEntry).conf;
    if (index < (this.confLog[0] as ConfLogEntry).index) {
      throw new RaftInvariantError(`configurationAt(${index}): older than the oldest kept configuration`);
    }
    for (const e of this.confLog) {
      if (e.index > index) break;
      c = e.conf;
    }
    return c;
  }

  /** The log was compacted up to `index` by the driver: forget configurations below it. */
  compacted(index: Index): void {
    while (this.confLog.length > 1 && (this.confLog[1] as ConfLogEntry).index <= index) this.confLog.shift();
  }

  hasReady(): boolean {
    const u = this.log.unstable;
    return (
      this.needBcastAppend ||
      this.needBcastHeartbeat ||
      this.msgs.length > 0 ||
      this.msgsAfterAppend.length > 0 ||
      u.hasNextEntries() ||
      u.hasNextSnapshot() ||
      this.hardStateChanged() ||
      this.log.hasNextApply() ||
      this.readStates.length > 0 ||
      this.droppedReads.length > 0 ||
      this.softStateChanged()
    );
  }

  /** Hands out everything the driver must do now (see Ready). Never returns stale work twice. */
  ready(): Ready {
    if (this.needBcastHeartbeat) {
      this.needBcastHeartbeat = false;
      if (this.role === Role.Leader) this.bcastHeartbeat();
    }
    if (this.needBcastAppend) {
      this.needBcastAppend = false;
      if (this.role === Role.Leader) this.bcastAppend(true);
    }

    let softState: SoftState | null = null;
    if (this.softStateChanged()) {
      softState = { role: this.role, leader: this.lead };
      this.prevSoftState = softState;
    }

    const u = this.log.unstable;
    let append: AppendWork | null = null;
    const hsChanged = this.hardStateChanged();
    if (u.hasNextEntries() || u.hasNextSnapshot() || hsChanged || this.msgsAfterAppend.length > 0) {
      const snapshot = u.hasNextSnapshot() ? u.snapshot : null;
      const entries = u.nextEntries();
      const hardState = hsChanged ? { term: this.term, vote: this.vote } : null;
      if (hardState) this.prevHardState = hardState;
      const last = entries[entries.length - 1];
      const ack = last
        ? { index: last.index, term: last.term }
        : snapshot
          ? { index: snapshot.index, term: snapshot.term }
          : null;
      append = { snapshot, entries, hardState, messages: this.msgsAfterAppend, ack };
      u.acceptInProgress();
      this.msgsAfterAppend = [];
    }

    let apply: ApplyWork | null = null;
    if (this.log.hasNextApply()) {
      const snapshot = this.log.snapshotToApply;
      this.log.snapshotToApply = null;
      let entries: Entry[] = [];
      if (this.log.applying < this.log.committed) {
        const got = this.log.slice(this.log.applying + 1, this.log.committed + 1, this.maxApplyBytes);
        if (isGap(got)) {
          throw new RaftInvariantError(
            `apply: entries ${this.log.applying + 1}..${this.log.committed} unavailable`,
          );
        }
        entries = got;
        const lastApply = entries[entries.length - 1];
        if (lastApply) this.log.applying = lastApply.index;
      }
      apply = { snapshot, entries };
    }

    const rd: Ready = {
      softState,
      messages: this.msgs,
      append,
      apply,
      readStates: this.readStates,
      droppedReads: this.droppedReads,
    };
    this.msgs = [];
    this.readStates = [];
    this.droppedReads = [];
    return rd;
  }

  /**
   * Whether this leader may serve a read from its lease without a heartbeat round.
   *
   * The lease is counted in this core's ticks, so it is only as good as the driver's
   * clock: the driver must derive ticks from a monotonic clock and, after any stall (a
   * paused process, a long GC, a blocked event loop), call `tick()` for every tick that
   * passed before it asks for a lease read. The simulator models exactly that.
   */
  leaseValid(): boolean {
    return (
      this.role === Role.Leader &&
      this.checkQuorum &&
      !this.leaseDisabled &&
      this.leadTransferee === NO_NODE &&
      this.committedInTerm() &&
      this.ticks < this.leaseStartTick + this.electionTicks - this.leaseSafetyTicks
    );
  }

  status(): RaftStatus {
    const progress = new Map<NodeId, ProgressStatus>();
    if (this.role === Role.Leader) {
      for (const [id, pr] of this.prs) {
        progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          inflightMsgs: pr.inflights.size(),
          inflightBytes: pr.inflights.totalBytes(),
          recentActive: pr.recentActive,
        });
      }
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.lead,
      committed: this.log.committed,
      applying: this.log.applying,
      applied: this.log.applied,
      lastIndex: this.log.lastIndex(),
      stableIndex: this.log.stableIndex(),
      conf: this.conf,
      leadTransferee: this.leadTransferee,
      leaseValid: this.leaseValid(),
      progress,
    };
  }

  // ---------------------------------------------------------------- roles

  private reset(term: Term): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NO_NODE;
    }
    this.lead = NO_NODE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout = this.electionTicks + this.rng.int(this.electionTicks);
    this.leadTransferee = NO_NODE;
    this.leaseDisabled = false;
    this.votes.clear();
    this.roundTicks.clear();
    this.quorumRound = this.round;
    this.leaseStartTick = Number.NEGATIVE_INFINITY;
    for (const r of this.pendingReads) this.dropRead(r.context, r.from);
    this.pendingReads.length = 0;
    for (const r of this.deferredReads) this.dropRead(r.context, r.from);
    this.deferredReads.length = 0;
    this.resetProgress();
  }

  private resetProgress(): void {
    this.prs.clear();
    const next = this.log.lastIndex() + 1;
    for (const id of members(this.conf)) {
      const pr = new Progress(next, this.maxInflightMsgs, this.maxInflightBytes);
      if (id === this.id) pr.match = this.log.stableIndex();
      this.prs.set(id, pr);
    }
  }

  private becomeFollower(term: Term, lead: NodeId): void {
    this.reset(term);
    this.role = Role.Follower;
    this.lead = lead;
  }

  private becomePreCandidate(): void {
    if (this.role === Role.Leader)
      throw new RaftInvariantError('invalid transition [leader -> pre-candidate]');
    // Pre-vote changes neither term nor vote (thesis §9.6).
    this.role = Role.PreCandidate;
    this.votes.clear();
    this.lead = NO_NODE;
  }

  private becomeCandidate(): void {
    if (this.role === Role.Leader) throw new RaftInvariantError('invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.role = Role.Candidate;
  }

  private becomeLeader(): void {
    if (this.role === Role.Follower) throw new RaftInvariantError('invalid transition [follower -> leader]');
    this.reset(this.term);
    this.role = Role.Leader;
    this.lead = this.id;
    for (const [id, pr] of this.prs) {
      // Thesis §6.2: every follower starts out as recently active, so CheckQuorum gives
      // them one election timeout to answer.
      pr.recentActive = true;
      if (id === this.id) pr.becomeReplicate();
    }
    // Raft §5.4.2 / §8: commit an entry of our own term, which commits everything before it.
    this.termStartIndex = this.log.lastIndex() + 1;
    this.appendEntries([
      { index: this.termStartIndex, term: this.term, type: EntryType.Noop, data: EMPTY_DATA },
    ]);
  }

  private hup(transfer: boolean): void {
    if (this.role === Role.Leader) return;
    if (!this.promotable()) return;
    if (this.preVote && !transfer) this.campaignPre();
    else this.campaignElection(transfer);
  }

  private promotable(): boolean {
    return isVoter(this.conf, this.id);
  }

  private campaignPre(): void {
    this.becomePreCandidate();
    this.votes.set(this.id, true);
    if (this.pollResult() === VoteResult.Won) {
      this.campaignElection(false);
      return;
    }
    this.sendVoteRequests(MessageType.MsgPreVote, this.term + 1, false);
  }

  private campaignElection(transfer: boolean): void {
    this.becomeCandidate();
    // Our own vote counts only once it is durable: it comes back to us after the append.
    this.msgsAfterAppend.push(
      message({ type: MessageType.MsgVoteResp, from: this.id, to: this.id, term: this.term }),
    );
    this.sendVoteRequests(MessageType.MsgVote, this.term, transfer);
  }

  private sendVoteRequests(type: MessageType, term: Term, transfer: boolean): void {
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.voterIds()) {
      if (id === this.id) continue;
      this.send(
        message({
          type,
          from: this.id,
          to: id,
          term,
          index: lastIndex,
          logTerm: lastTerm,
          context: transfer ? CAMPAIGN_TRANSFER : 0,
        }),
      );
    }
  }

  private voterIds(): NodeId[] {
    const ids = new Set<NodeId>([...this.conf.voters, ...this.conf.votersOutgoing]);
    return [...ids];
  }

  private pollResult(): VoteResult {
    return jointVoteResult(this.conf.voters, this.conf.votersOutgoing, (id) => this.votes.get(id));
  }

  private inLease(): boolean {
    if (!this.checkQuorum) return false;
    if (this.electionElapsed >= this.electionTicks) return false;
    return this.lead !== NO_NODE || this.restartGuard;
  }

  // ---------------------------------------------------------------- ticks

  private tickElection(): void {
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTicks) this.restartGuard = false;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTicks) {
      this.electionElapsed = 0;
      if (this.checkQuorum) {
        if (!this.quorumActive()) {
          this.becomeFollower(this.term, NO_NODE);
          return;
        }
        for (const [id, pr] of this.prs) if (id !== this.id) pr.recentActive = false;
      }
      if (this.leadTransferee !== NO_NODE) this.leadTransferee = NO_NODE;
    }
    if (this.heartbeatElapsed >= this.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  private quorumActive(): boolean {
    return (
      jointVoteResult(this.conf.voters, this.conf.votersOutgoing, (id) =>
        id === this.id ? true : (this.prs.get(id)?.recentActive ?? false),
      ) === VoteResult.Won
    );
  }

  // ---------------------------------------------------------------- votes

  private handleVoteRequest(m: Message): void {
    const pre = m.type === MessageType.MsgPreVote;
    // Raft §5.2 / §5.4.1: one vote per term, first come first served, and only for a
    // candidate whose log is at least as up-to-date as ours. A pre-vote for a later term
    // is a hypothetical question and may be granted to anyone up-to-date.
    const canVote =
      this.vote === m.from || (this.vote === NO_NODE && this.lead === NO_NODE) || (pre && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      this.send(message({ type: voteRespType(m.type), from: this.id, to: m.from, term: m.term }));
      if (!pre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send(
        message({ type: voteRespType(m.type), from: this.id, to: m.from, term: this.term, reject: true }),
      );
    }
  }

  private stepCandidate(m: Message): void {
    const myRespType = this.role === Role.PreCandidate ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp;
    switch (m.type) {
      case MessageType.MsgApp:
      case MessageType.MsgHeartbeat:
      case MessageType.MsgSnap:
        // Raft §5.2: a candidate that hears from a leader of its term returns to follower.
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case MessageType.MsgReadIndex:
        this.send(readIndexResp(this.id, m.from, m.context, 0, true));
        return;
      default:
        break;
    }
    if (m.type !== myRespType) return;
    if (!this.votes.has(m.from)) this.votes.set(m.from, !m.reject);
    switch (this.pollResult()) {
      case VoteResult.Won:
        if (this.role === Role.PreCandidate) {
          this.campaignElection(false);
        } else if (this.votes.get(this.id) === true) {
          this.becomeLeader();
        }
        // Otherwise the others' votes won, but our own term and vote are not durable yet.
        // Leading now could let a crash erase the term, and a restarted node could then win
        // the same term again (its voters would re-grant it) and write different entries
        // at the same (index, term). Our own vote arrives once they are durable.
        break;
      case VoteResult.Lost:
        this.becomeFollower(this.term, NO_NODE);
        break;
      case VoteResult.Pending:
        break;
    }
  }

  // ---------------------------------------------------------------- follower

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.MsgApp:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        break;
      case MessageType.MsgHeartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
        this.send(
          message({
            type: MessageType.MsgHeartbeatResp,
            from: this.id,
            to: m.from,
            term: this.term,
            context: m.context,
          }),
        );
        break;
      case MessageType.MsgSnap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        break;
      case MessageType.MsgTimeoutNow:
        // Thesis §3.10: the leader caught us up; start an election now, past any lease.
        this.hup(true);
        break;
      case MessageType.MsgReadIndex:
        if (this.lead === NO_NODE) this.send(readIndexResp(this.id, m.from, m.context, 0, true));
        else this.send(message({ ...m, from: m.from, to: this.lead, term: 0 }));
        break;
      case MessageType.MsgReadIndexResp:
        if (m.reject) this.droppedReads.push(m.context);
        else this.readStates.push({ index: m.index, context: m.context });
        break;
      default:
        break;
    }
  }

  private handleAppendEntries(m: Message): void {
    if (m.index < this.log.committed) {
      // Everything up to our commit index already matches any leader's log.
      this.ackAppend(m.from, this.log.committed);
      return;
    }
    const res = this.log.maybeAppend(m.index, m.logTerm, m.entries);
    if (res) {
      this.onLogAppended(res.appended);
      // Commit only what we know matches the leader (Raft Figure 2, AppendEntries rule 5).
      this.log.commitTo(Math.min(m.commit, res.lastNew));
      this.ackAppend(m.from, res.lastNew);
      return;
    }
    // Rejected: hint where our log could match, skipping a whole term at a time.
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.send(
      message({
        type: MessageType.MsgAppResp,
        from: this.id,
        to: m.from,
        term: this.term,
        index: m.index,
        reject: true,
        rejectHint: hint.index,
        logTerm: hint.term,
      }),
    );
  }

  /** Tells the leader our log matches its log up to `index` (sent once that is durable). */
  private ackAppend(to: NodeId, index: Index): void {
    this.send(message({ type: MessageType.MsgAppResp, from: this.id, to, term: this.term, index }));
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (!s) return;
    // Either way our log now matches the leader's up to that index.
    this.ackAppend(m.from, this.restore(s) ? this.log.lastIndex() : this.log.committed);
  }

  private restore(s: SnapshotMeta): boolean {
    if (s.index <= this.log.committed) return false;
    if (this.log.matchTerm(s.index, s.term)) {
      // We already hold that entry: the snapshot only tells us it is committed.
      this.log.commitTo(s.index);
      return false;
    }
    this.log.restore(s);
    this.confLog = [{ index: s.index, conf: s.conf }];
    this.switchToConf(s.conf);
    return true;
  }

  // ---------------------------------------------------------------- leader

  private stepLeader(m: Message): void {
    const pr = this.prs.get(m.from);
    switch (m.type) {
      case MessageType.MsgReadIndex:
        this.leaderRead(m.context, m.from, false);
        return;
      case MessageType.MsgAppResp:
        if (!pr) return;
        pr.recentActive = true;
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.MsgHeartbeatResp:
        if (!pr) return;
        pr.recentActive = true;
        pr.probeSent = false;
        if (m.context > pr.ackedContext) pr.ackedContext = m.context;
        // If every AppendEntries in the window was lost, no reply will ever free it: the
        // follower is alive (it answered), so make room for one more append. Either it
        // fills the gap or the follower rejects it and we fall back to probing.
        if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
        this.advanceRounds();
        // A follower behind us may have lost appends we still count as in flight: an
        // append, even an empty one, either carries what it lacks or is rejected, and
        // the rejection puts it back to probing.
        if (pr.match < this.log.lastIndex()) this.maybeSendAppend(m.from, true);
        return;
      default:
        return;
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    if (m.reject) {
      let hint = m.rejectHint;
      if (m.logTerm > 0) hint = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.maybeSendAppend(m.from, false);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === ProgressState.Probe) {
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Snapshot && pr.match + 1 >= this.log.firstIndex()) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Replicate) {
      pr.inflights.freeLE(m.index);
    }
    // The new commit index reaches followers with the next Ready's broadcast, so many
    // acknowledgements processed together cost one round of messages.
    if (this.maybeCommit()) this.needBcastAppend = true;
    if (this.role !== Role.Leader) return; // the commit removed us from the configuration
    if (wasPaused || pr.state === ProgressState.Replicate) {
      while (this.maybeSendAppend(m.from, false) && pr.state === ProgressState.Replicate) {
        // fill the window
      }
    }
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  /**
   * Raft §5.3-5.4: advance the commit index to the highest index a quorum holds durably,
   * but only directly for an entry of the current term (Figure 8).
   */
  private maybeCommit(): boolean {
    const idx = jointCommitted(
      this.conf.voters,
      this.conf.votersOutgoing,
      (id) => this.prs.get(id)?.match ?? 0,
      this.commitScratch,
    );
    if (!Number.isFinite(idx) || idx <= this.log.committed) return false;
    if (this.log.term(idx) !== this.term) return false;
    const firstInTerm = !this.committedInTerm();
    this.log.commitTo(idx);
    if (firstInTerm && this.committedInTerm()) this.releaseDeferredReads();
    this.afterCommitAsLeader();
    return true;
  }

  /** Configuration housekeeping once a leader's commit index moves (Raft §6). */
  private afterCommitAsLeader(): void {
    const latest = this.confLog[this.confLog.length - 1] as ConfLogEntry;
    if (latest.index > this.log.committed) return;
    if (isJoint(this.conf) && this.conf.autoLeave) {
      // C_old,new is committed: now propose C_new.
      this.appendEntries([
        {
          index: this.log.lastIndex() + 1,
          term: this.term,
          type: EntryType.ConfChange,
          data: encodeConfChange({ changes: [] }),
        },
      ]);
      return;
    }
    if (!isVoter(this.conf, this.id)) {
      // Raft §6: a leader that is not part of C_new steps down once C_new is committed.
      // Hand over to the most up-to-date voter so the cluster does not wait for a timeout.
      let best: NodeId = NO_NODE;
      let bestMatch = -1;
      for (const id of this.conf.voters) {
        const pr = this.prs.get(id);
        if (pr && pr.match > bestMatch) {
          best = id;
          bestMatch = pr.match;
        }
      }
      if (best !== NO_NODE && bestMatch === this.log.lastIndex()) this.sendTimeoutNow(best);
      this.becomeFollower(this.term, NO_NODE);
    }
  }

  /**
   * Whether this leader has committed its term's first entry, and so knows the latest
   * commit index (thesis §6.4). Comparing terms alone is not enough: the bootstrap
   * snapshot has term 1, so a first leader of term 1 would pass before its no-op commits.
   */
  private committedInTerm(): boolean {
    return this.role === Role.Leader && this.log.committed >= this.termStartIndex;
  }

  private appendEntries(ents: Entry[]): void {
    this.log.append(ents);
    this.onLogAppended(ents);
    this.needBcastAppend = true;
  }

  /** Sends to every follower whatever it lacks (and, with `sendIfEmpty`, the commit index). */
  private bcastAppend(sendIfEmpty: boolean): void {
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      if (!this.maybeSendAppend(id, sendIfEmpty)) continue;
      while (pr.state === ProgressState.Replicate && this.maybeSendAppend(id, false)) {
        // fill the window
      }
    }
  }

  /** Sends one AppendEntries (or a snapshot) to `to` if its progress allows. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.get(to);
    if (this.role !== Role.Leader || !pr || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.log.term(prevIndex);
    const lastIndex = this.log.lastIndex();
    if (prevTerm < 0) return this.maybeSendSnapshot(to, pr);
    let ents: readonly Entry[] = [];
    if (pr.next <= lastIndex) {
      const got = this.log.slice(pr.next, lastIndex + 1, this.maxSizePerMsgBytes);
      if (isGap(got)) return this.maybeSendSnapshot(to, pr);
      ents = got;
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (const e of ents) bytes += entryBytes(e);
    this.send(
      message({
        type: MessageType.MsgApp,
        from: this.id,
        to,
        term: this.term,
        index: prevIndex,
        logTerm: prevTerm,
        entries: ents,
        commit: this.log.committed,
      }),
    );
    pr.sentEntries(prevIndex + ents.length, ents.length, bytes);
    return true;
  }

  private maybeSendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false; // do not stream a snapshot to a node that may be down
    const snap = this.log.storage.snapshot();
    pr.becomeSnapshot(snap.index);
    this.send(message({ type: MessageType.MsgSnap, from: this.id, to, term: this.term, snapshot: snap }));
    return true;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.leaseDisabled = true;
    this.send(message({ type: MessageType.MsgTimeoutNow, from: this.id, to, term: this.term }));
  }

  // ---------------------------------------------------------------- heartbeats, reads, leases

  /**
   * Heartbeats carry a new round number as context. Each follower echoes the newest
   * round it saw; the newest round a quorum has echoed proves that, when that round
   * left, we were still the leader (thesis §6.4) and that no other node will be elected
   * for an election timeout after it left (our lease, §6.4.1).
   */
  private bcastHeartbeat(): void {
    this.round++;
    this.roundTicks.set(this.round, this.ticks);
    for (const [id, pr] of this.prs) {
      if (id === this.id) continue;
      this.send(
        message({
          type: MessageType.MsgHeartbeat,
          from: this.id,
          to: id,
          term: this.term,
          // Only what the follower is known to hold may be committed on it.
          commit: Math.min(pr.match, this.log.committed),
          context: this.round,
        }),
      );
    }
    this.advanceRounds();
  }

  private advanceRounds(): void {
    const acked = jointCommitted(
      this.conf.voters,
      this.conf.votersOutgoing,
      (id) => (id === this.id ? this.round : (this.prs.get(id)?.ackedContext ?? 0)),
      this.commitScratch,
    );
    if (!Number.isFinite(acked) || acked <= this.quorumRound) return;
    this.quorumRound = acked;
    const sentAt = this.roundTicks.get(acked);
    if (sentAt !== undefined) this.leaseStartTick = Math.max(this.leaseStartTick, sentAt);
    for (const r of this.roundTicks.keys()) if (r <= acked) this.roundTicks.delete(r);
    let released = 0;
    for (const r of this.pendingReads) {
      if (r.round > acked) break;
      this.answerRead(r.context, r.from, r.index);
      released++;
    }
    if (released > 0) this.pendingReads.splice(0, released);
  }

  private leaderRead(context: number, from: NodeId, lease: boolean): void {
    if (!this.committedInTerm()) {
      // Thesis §6.4 step 1: until the leader commits an entry of its term it does not
      // know the latest commit index.
      this.deferredReads.push({ context, from });
      return;
    }
    if (lease && this.leaseValid()) {
      this.answerRead(context, from, this.log.committed);
      return;
    }
    this.pendingReads.push({ context, from, index: this.log.committed, round: this.round + 1 });
    this.needBcastHeartbeat = true;
  }

  private releaseDeferredReads(): void {
    const reads = this.deferredReads.splice(0);
    for (const r of reads) this.leaderRead(r.context, r.from, false);
  }

  private answerRead(context: number, from: NodeId, index: Index): void {
    if (from === this.id) this.readStates.push({ index, context });
    else this.send(readIndexResp(this.id, from, context, index, false));
  }

  private dropRead(context: number, from: NodeId): void {
    if (from === this.id) this.droppedReads.push(context);
    else this.send(readIndexResp(this.id, from, context, 0, true));
  }

  // ---------------------------------------------------------------- configuration

  /** Validates a proposed change against the latest configuration (thesis §4.1, §4.3). */
  private checkConfChange(data: Uint8Array): 0 | ProposalDropped {
    const latest = this.confLog[this.confLog.length - 1] as ConfLogEntry;
    // One change at a time, and only after this leader has committed an entry of its
    // term (the fix to single-server changes in Ongaro's 2015 raft-dev post applies here too).
    if (latest.index > this.log.committed || !this.committedInTerm())
      return ProposalDropped.ConfChangePending;
    try {
      applyConfChange(this.conf, decodeConfChange(data));
    } catch (err) {
      if (err instanceof InvalidConfChangeError) return ProposalDropped.InvalidConfChange;
      throw err;
    }
    return 0;
  }

  /** Entries were appended to the log: configuration entries take effect at once. */
  private onLogAppended(ents: readonly Entry[]): void {
    if (ents.length === 0) return;
    const first = (ents[0] as Entry).index;
    let changed = false;
    while (
      this.confLog.length > 1 &&
      (this.confLog[this.confLog.length - 1] as ConfLogEntry).index >= first
    ) {
      this.confLog.pop();
      changed = true;
    }
    for (const e of ents) {
      if (e.type === EntryType.ConfChange && this.appendConfEntry(e)) changed = true;
    }
    if (changed) this.switchToConf((this.confLog[this.confLog.length - 1] as ConfLogEntry).conf);
  }

  /** Computes the configuration a ConfChange entry produces. Invalid entries change nothing. */
  private appendConfEntry(e: Entry): boolean {
    const prev = (this.confLog[this.confLog.length - 1] as ConfLogEntry).conf;
    let next: ConfState;
    try {
      next = applyConfChange(prev, decodeConfChange(e.data));
    } catch (err) {
      if (err instanceof InvalidConfChangeError) return false;
      throw err;
    }
    this.confLog.push({ index: e.index, conf: next });
    this.conf = next;
    return true;
  }

  private switchToConf(conf: ConfState): void {
    this.conf = conf;
    const ids = new Set(members(conf));
    for (const id of [...this.prs.keys()]) if (!ids.has(id)) this.prs.delete(id);
    const next = this.log.lastIndex() + 1;
    for (const id of ids) {
      if (this.prs.has(id)) continue;
      const pr = new Progress(next, this.maxInflightMsgs, this.maxInflightBytes);
      pr.recentActive = true;
      if (id === this.id) {
        pr.match = this.log.stableIndex();
        if (this.role === Role.Leader) pr.becomeReplicate();
      }
      this.prs.set(id, pr);
    }
    if (this.role !== Role.Leader) return;
    if (this.leadTransferee !== NO_NODE && !isVoter(conf, this.leadTransferee)) this.leadTransferee = NO_NODE;
    // Acknowledged rounds were counted against the old quorum. A lease proven by the old
    // voters says nothing about the new ones, so it must be earned again; pending reads
    // are re-counted against the new configuration.
    this.leaseStartTick = Number.NEGATIVE_INFINITY;
    this.roundTicks.clear();
    this.quorumRound = 0;
    this.advanceRounds();
    // The quorum changed: the commit index may move, and new members need the log.
    this.maybeCommit();
    this.needBcastAppend = true;
  }

  // ---------------------------------------------------------------- plumbing

  private send(m: Message): void {
    // Every message but a forwarded read carries our term.
    const out = m.term === 0 && m.type !== MessageType.MsgReadIndex ? { ...m, term: this.term } : m;
    // A heartbeat reply vouches for the leader's lease and read rounds; it may only do so
    // once the term it carries is durable, or a crash could let this node forget the term
    // and vote again inside the lease.
    const vouches = m.type === MessageType.MsgHeartbeatResp && this.term > this.durableTerm;
    if (vouches || mustFollowPersist(m.type)) this.msgsAfterAppend.push(out);
    else this.msgs.push(out);
  }

  private hardStateChanged(): boolean {
    return this.term !== this.prevHardState.term || this.vote !== this.prevHardState.vote;
  }

  private softStateChanged(): boolean {
    return this.role !== this.prevSoftState.role || this.lead !== this.prevSoftState.leader;
  }
}

function readIndexResp(from: NodeId, to: NodeId, context: number, index: Index, reject: boolean): Message {
  return message({ type: MessageType.MsgReadIndexResp, from, to, term: 0, context, index, reject });
}
