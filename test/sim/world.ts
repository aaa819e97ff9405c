import { type ConfChangeItem, ConfChangeType, members } from '../../src/raft/conf-change.js';
import { describeMessage, describeReady } from '../../src/raft/describe.js';
import { type Message, MessageType } from '../../src/raft/messages.js';
import { type AppendWork, RaftCore } from '../../src/raft/raft-core.js';
import { Rng } from '../../src/raft/rng.js';
import { bootstrapSnapshot, EMPTY_SNAPSHOT, MemoryStorage } from '../../src/raft/storage.js';
import { type Entry, type Index, type NodeId, Role } from '../../src/raft/types.js';
import { Checker, encodeValue, entryValue, Violation } from './checker.js';

/**
 * A seeded world of Raft cores: a network that drops, duplicates, delays, reorders and
 * partitions; disks that finish writes late and lose unfinished ones on a crash; clients
 * that propose, read, move leadership and change membership. No threads, sockets or
 * timers: time is an integer and every choice comes from one seeded Rng, so a seed
 * replays exactly.
 */

export interface SimOptions {
  readonly seed: number;
  readonly nodes: number;
  /** Time units of faulty operation; a healing phase follows. */
  readonly steps: number;
  /** Keep a trace of the last events, printed on a violation. */
  readonly trace?: boolean;
}

export interface SimStats {
  drops: number;
  dups: number;
  reorders: number;
  partitions: number;
  crashes: number;
  pauses: number;
  commits: number;
  elections: number;
  reads: number;
  acked: number;
  snapshots: number;
  /** Snapshots from a leader made durable by a follower (InstallSnapshot). */
  snapshotInstalls: number;
  confChanges: number;
  transfers: number;
}

export function emptyStats(): SimStats {
  return {
    drops: 0,
    dups: 0,
    reorders: 0,
    partitions: 0,
    crashes: 0,
    pauses: 0,
    commits: 0,
    elections: 0,
    reads: 0,
    acked: 0,
    snapshots: 0,
    snapshotInstalls: 0,
    confChanges: 0,
    transfers: 0,
  };
}

export interface SimResult {
  readonly seed: number;
  readonly stats: SimStats;
  readonly violation: string | null;
  readonly trace: string[];
}

const TICK_UNITS = 4;
const ELECTION_TICKS = 10;
const HEARTBEAT_TICKS = 2;
/** Ticks the cluster gets after healing to elect a leader, commit, and converge. */
const HEAL_TICKS = 300;

interface InFlight {
  readonly msg: Message;
  readonly at: number;
  readonly seq: number;
  /** A snapshot's state travels with MsgSnap, as a replicator would stream it. */
  readonly snapValues: number[] | null;
}

interface DiskItem {
  readonly work: AppendWork;
  readonly at: number;
}

interface PendingRead {
  readonly context: number;
  /** The index of the newest write acknowledged before the read started. */
  readonly mustSee: Index;
}

interface Proposal {
  readonly value: number;
  readonly index: Index;
  readonly term: number;
}

class SimNode {
  core: RaftCore | null = null;
  disk: DiskItem[] = [];
  /** State machine: client values applied, and the index applied. */
  values: number[] = [];
  appliedIndex: Index = 0;
  /** The snapshot state durable in storage, matching storage.snapshot(). */
  storedSnapValues: number[] = [];
  /** Snapshots received and not yet written or loaded, by index. */
  incomingSnaps = new Map<Index, number[]>();
  seenCommit: Index = 0;
  reads = new Map<number, PendingRead>();
  proposals: Proposal[] = [];
  downUntil = 0;
  /** A paused process (SIGSTOP, a long GC): it neither ticks, receives nor writes. */
  paused = false;
  pausedAt = 0;
  pausedUntil = 0;
  readonly phase: number;

  constructor(
    readonly id: NodeId,
    readonly storage: MemoryStorage,
    phase: number,
  ) {
    this.phase = phase;
  }
}

export class World {
  readonly rng: Rng;
  readonly stats = emptyStats();
  readonly checker = new Checker();
  private readonly nodes: SimNode[] = [];
  private readonly byId = new Map<NodeId, SimNode>();
  private net: InFlight[] = [];
  private seq = 0;
  private now = 0;
  private nextValue = 1;
  private nextContext = 1;
  /** Index of the newest acknowledged write. */
  private maxAcked: Index = 0;
  /** Cut links: "a|b" for both directions. */
  private cut = new Set<string>();
  /** After healing: the latest delivery time per link, to keep links in order. */
  private readonly linkAt = new Map<string, number>();
  private healAt = 0;
  private readonly traceLines: string[] = [];
  private readonly tracing: boolean;
  private faulty = true;
  private readonly dropRate: number;
  private readonly dupRate: number;
  private readonly crashRate: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly slowDiskRate: number;

  constructor(readonly opts: SimOptions) {
    this.rng = new Rng(opts.seed * 2654435761);
    this.tracing = opts.trace ?? false;
    // Each seed gets its own weather.
    this.dropRate = this.rng.pick([0.01, 0.05, 0.1]);
    this.dupRate = this.rng.pick([0.01, 0.03]);
    this.crashRate = this.rng.pick([0.001, 0.003, 0.006, 0.02]);
    this.slowDiskRate = this.rng.pick([0.05, 0.2, 0.5]);
    // Most seeds run the production settings; some run without PreVote or CheckQuorum,
    // which exercises the plain Raft paths (and disables leases).
    this.preVote = this.rng.chance(0.8);
    this.checkQuorum = this.rng.chance(0.8);
    const ids: NodeId[] = [];
    for (let i = 1; i <= opts.nodes; i++) ids.push(`n${i}`);
    // One spare node outside the configuration, for membership changes to add.
    const all = [...ids, `n${opts.nodes + 1}`];
    for (const id of all) {
      const storage = new MemoryStorage(ids.includes(id) ? bootstrapSnapshot(ids) : EMPTY_SNAPSHOT);
      const n = new SimNode(id, storage, this.rng.int(TICK_UNITS));
      this.nodes.push(n);
      this.byId.set(id, n);
      this.start(n);
    }
  }

  private trace(line: string): void {
    if (!this.tracing) return;
    this.traceLines.push(`[${this.now}] ${line}`);
    if (this.traceLines.length > 400) this.traceLines.splice(0, 100);
  }

  private start(n: SimNode): void {
    n.core = new RaftCore({
      id: n.id,
      storage: n.storage,
      rng: new Rng(this.rng.nextU32()),
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: HEARTBEAT_TICKS,
      preVote: this.preVote,
      checkQuorum: this.checkQuorum,
      maxSizePerMsgBytes: 64,
      maxInflightMsgs: 4,
    });
    // The state machine restarts from the durable snapshot; the log is re-applied as it commits.
    n.values = n.storedSnapValues.slice();
    n.appliedIndex = n.storage.snapshot().index;
    n.seenCommit = n.core.log.committed;
    n.disk = [];
    n.incomingSnaps.clear();
    n.reads.clear();
    n.proposals = [];
  }

  run(): SimResult {
    try {
      for (this.now = 0; this.now < this.opts.steps; this.now++) {
        this.resumePaused();
        this.maybeFault();
        this.clientOps();
        this.stepTime();
      }
      this.heal();
      return { seed: this.opts.seed, stats: this.stats, violation: null, trace: this.traceLines };
    } catch (err) {
      if (!(err instanceof Violation)) throw err;
      return { seed: this.opts.seed, stats: this.stats, violation: err.message, trace: this.traceLines };
    }
  }

  // ------------------------------------------------------------------ time

  private stepTime(): void {
    for (const n of this.nodes) {
      if (!n.core) {
        if (n.downUntil <= this.now) this.restart(n);
        continue;
      }
      if (n.paused) continue;
      if ((this.now + n.phase) % TICK_UNITS === 0) n.core.tick();
      this.runDisk(n);
    }
    this.deliverDue();
    for (const n of this.nodes) if (!n.paused) this.drain(n);
    if (this.faulty && this.cut.size > 0 && this.now >= this.healAt) {
      this.cut.clear();
      this.trace('partition healed');
    }
  }

  private deliverDue(): void {
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.net) (f.at <= this.now ? due : later).push(f);
    this.net = later;
    // Messages due together arrive in random order.
    for (let i = due.length - 1; i > 0; i--) {
      const j = this.rng.int(i + 1);
      const t = due[i] as InFlight;
      due[i] = due[j] as InFlight;
      due[j] = t;
    }
    const lastSeq = new Map<string, number>();
    for (const f of due) {
      const link = `${f.msg.from}>${f.msg.to}`;
      const prev = lastSeq.get(link) ?? -1;
      if (f.seq < prev) this.stats.reorders++;
      lastSeq.set(link, Math.max(prev, f.seq));
      this.deliver(f);
    }
  }

  private deliver(f: InFlight): void {
    const m = f.msg;
    const to = this.byId.get(m.to);
    if (!to?.core) {
      if (m.type === MessageType.MsgSnap) this.reportSnapshot(m, false);
      return;
    }
    if (to.paused) {
      // The socket buffers it; the process reads it after it resumes.
      this.net.push({ ...f, at: to.pausedUntil + this.rng.int(3) });
      return;
    }
    if (this.isCut(m.from, m.to)) {
      this.stats.drops++;
      if (m.type === MessageType.MsgSnap) this.reportSnapshot(m, false);
      return;
    }
    if (this.faulty && this.rng.chance(this.dropRate)) {
      this.stats.drops++;
      if (m.type === MessageType.MsgSnap) this.reportSnapshot(m, false);
      return;
    }
    if (this.faulty && this.rng.chance(this.dupRate)) {
      this.stats.dups++;
      this.net.push({ ...f, at: this.now + this.rng.between(1, 10) });
    }
    if (f.snapValues && m.snapshot) to.incomingSnaps.set(m.snapshot.index, f.snapValues);
    this.trace(`deliver ${describeMessage(m)}`);
    to.core.step(m);
    if (m.type === MessageType.MsgSnap) this.reportSnapshot(m, true);
  }

  /** The sender's transport learns whether the snapshot stream finished. */
  private reportSnapshot(m: Message, ok: boolean): void {
    this.byId.get(m.from)?.core?.reportSnapshot(m.to, ok);
  }

  private send(from: SimNode, m: Message): void {
    if (m.to === from.id) {
      from.core?.step(m);
      return;
    }
    let at = this.now + this.rng.between(1, 3);
    if (this.faulty) {
      if (this.rng.chance(0.05)) at += this.rng.between(5, 40);
    } else {
      // A healed network behaves like TCP: in order on each link.
      const link = `${m.from}>${m.to}`;
      at = Math.max(at, this.linkAt.get(link) ?? 0);
      this.linkAt.set(link, at);
    }
    const snapValues = m.type === MessageType.MsgSnap ? from.storedSnapValues.slice() : null;
    this.net.push({ msg: m, at, seq: this.seq++, snapValues });
  }

  private runDisk(n: SimNode): void {
    while (n.disk.length > 0 && (n.disk[0] as DiskItem).at <= this.now) {
      const { work } = n.disk.shift() as DiskItem;
      if (work.snapshot) {
        const v = n.incomingSnaps.get(work.snapshot.index);
        if (!v) throw new Error(`sim: no state for snapshot ${work.snapshot.index} on ${n.id}`);
        n.storedSnapValues = v;
        this.stats.snapshotInstalls++;
      }
      n.storage.write(work);
      n.core?.persisted(work);
      for (const m of work.messages) this.send(n, m);
      this.drain(n);
    }
  }

  /** Handles Readys until the node has nothing more to do. */
  private drain(n: SimNode): void {
    const core = n.core;
    if (!core) return;
    for (let guard = 0; core.hasReady(); guard++) {
      if (guard > 1000) throw new Error('sim: Ready loop does not settle');
      const rd = core.ready();
      if (this.tracing) this.trace(`${n.id} ready\n${describeReady(rd)}`);
      if (rd.softState?.role === Role.Leader) {
        this.stats.elections++;
        this.checker.onLeader(n.id, core.term, core);
      }
      if (core.log.committed > n.seenCommit) {
        this.checker.onCommit(n.id, core, n.seenCommit, core.log.committed);
        n.seenCommit = core.log.committed;
      }
      for (const m of rd.messages) this.send(n, m);
      if (rd.append) {
        const first = rd.append.entries[0];
        if (first) {
          const pt = core.log.term(first.index - 1);
          this.checker.onAppend(n.id, rd.append.entries, pt >= 0 ? pt : null);
        }
        // Disks finish late, in order; a slow one now and then.
        const last = n.disk[n.disk.length - 1];
        const slow = this.faulty && this.rng.chance(this.slowDiskRate);
        let at = this.now + (slow ? this.rng.between(1, 20) : this.rng.int(2));
        if (last && last.at > at) at = last.at;
        n.disk.push({ work: rd.append, at });
      }
      if (rd.apply) this.apply(n, rd.apply.snapshot?.index ?? null, rd.apply.entries);
      for (const r of rd.readStates) {
        const p = n.reads.get(r.context);
        if (!p) continue;
        n.reads.delete(r.context);
        // Linearizable reads: the read index covers every write acknowledged before the read began.
        if (r.index < p.mustSee) {
          throw new Violation(
            `read: ${n.id} read ctx=${r.context} at index ${r.index}, but index ${p.mustSee} was acknowledged before it began`,
          );
        }
        this.stats.reads++;
      }
      for (const c of rd.droppedReads) n.reads.delete(c);
    }
    if (core.log.committed > n.seenCommit) {
      this.checker.onCommit(n.id, core, n.seenCommit, core.log.committed);
      n.seenCommit = core.log.committed;
    }
  }

  private apply(n: SimNode, snapIndex: Index | null, entries: readonly Entry[]): void {
    const core = n.core as RaftCore;
    if (snapIndex !== null) {
      const v = n.incomingSnaps.get(snapIndex);
      if (!v) throw new Error(`sim: no state for snapshot ${snapIndex} on ${n.id}`);
      this.checker.onSnapshotLoad(n.id, snapIndex, v);
      n.values = v.slice();
      n.appliedIndex = snapIndex;
    }
    for (const e of entries) {
      this.checker.onApply(n.id, n.appliedIndex, e);
      n.appliedIndex = e.index;
      const v = entryValue(e);
      if (v >= 0) n.values.push(v);
      // A client's write is acknowledged when the node it proposed to applies it.
      while (n.proposals.length > 0 && (n.proposals[0] as Proposal).index <= e.index) {
        const p = n.proposals.shift() as Proposal;
        if (p.index === e.index && p.term === e.term && v === p.value) {
          this.stats.acked++;
          if (e.index > this.maxAcked) this.maxAcked = e.index;
        }
      }
    }
    if (entries.length > 0) core.applied(n.appliedIndex);
  }

  // ------------------------------------------------------------------ clients

  /** Nodes that are up and running (not crashed, not paused). */
  private liveNodes(): SimNode[] {
    return this.nodes.filter((n) => n.core !== null && !n.paused);
  }

  private leaders(): SimNode[] {
    return this.nodes.filter((n) => n.core?.role === Role.Leader && !n.paused);
  }

  private clientOps(): void {
    const live = this.liveNodes();
    if (live.length === 0) return;
    if (this.rng.chance(0.25)) {
      const leaders = this.leaders();
      const n = leaders.length > 0 && this.rng.chance(0.9) ? this.rng.pick(leaders) : this.rng.pick(live);
      this.propose(n);
    }
    if (this.rng.chance(0.08)) {
      const leaders = this.leaders();
      const n = leaders.length > 0 && this.rng.chance(0.5) ? this.rng.pick(leaders) : this.rng.pick(live);
      const context = this.nextContext++;
      n.reads.set(context, { context, mustSee: this.maxAcked });
      (n.core as RaftCore).readIndex(context, this.rng.chance(0.5));
    }
    if (this.faulty && this.rng.chance(0.002)) {
      const l = this.leaders();
      if (l.length > 0) {
        const leader = this.rng.pick(l);
        const core = leader.core as RaftCore;
        const target = this.rng.pick([...core.confState().voters]);
        if (core.transferLeadership(target)) this.stats.transfers++;
      }
    }
    if (this.faulty && this.rng.chance(0.003)) this.changeMembership();
    if (this.faulty && this.rng.chance(0.004)) this.compactOne();
  }

  private propose(n: SimNode): void {
    const core = n.core as RaftCore;
    const value = this.nextValue++;
    const idx = core.propose(encodeValue(value));
    if (idx > 0) n.proposals.push({ value, index: idx, term: core.term });
  }

  private changeMembership(): void {
    const leaders = this.leaders();
    if (leaders.length === 0) return;
    const leader = this.rng.pick(leaders);
    const core = leader.core as RaftCore;
    const conf = core.confState();
    const all = this.nodes.map((n) => n.id);
    const outside = all.filter((id) => !members(conf).includes(id));
    const voters = [...conf.voters];
    const options: ConfChangeItem[][] = [];
    for (const id of outside) {
      options.push([{ type: ConfChangeType.AddLearner, id }]);
      options.push([{ type: ConfChangeType.AddVoter, id }]);
    }
    for (const id of conf.learners) {
      options.push([{ type: ConfChangeType.AddVoter, id }]);
      options.push([{ type: ConfChangeType.Remove, id }]);
    }
    if (voters.length > 2) for (const id of voters) options.push([{ type: ConfChangeType.Remove, id }]);
    if (outside.length > 0 && voters.length > 2) {
      // Replace a voter in one step: a joint configuration with two voter changes.
      options.push([
        { type: ConfChangeType.AddVoter, id: this.rng.pick(outside) },
        { type: ConfChangeType.Remove, id: this.rng.pick(voters) },
      ]);
    }
    if (options.length === 0) return;
    const changes = this.rng.pick(options);
    if (core.proposeConfChange({ changes }) > 0) this.stats.confChanges++;
  }

  /** A node snapshots its state machine and compacts its log, keeping a few entries for laggards. */
  private compactOne(): void {
    const live = this.liveNodes();
    if (live.length === 0) return;
    const n = this.rng.pick(live);
    const core = n.core as RaftCore;
    // Only a durable prefix may be snapshotted: the stored entries must be the applied ones.
    const at = Math.min(n.appliedIndex, core.log.stableIndex());
    const snap = n.storage.snapshot();
    if (at <= snap.index) return;
    n.storage.createSnapshot(at, core.configurationAt(at));
    n.storedSnapValues = n.values.slice(0, this.valuesUpTo(n, at));
    const keep = this.rng.int(4);
    const compactTo = Math.max(n.storage.firstIndex() - 1, at - keep);
    n.storage.compact(compactTo);
    core.compacted(compactTo);
    this.stats.snapshots++;
  }

  /** How many of the node's applied values lie at or below `index`. */
  private valuesUpTo(n: SimNode, index: Index): number {
    let count = n.values.length;
    for (let i = n.appliedIndex; i > index; i--) {
      const a = this.checker.applied[i];
      if (a && a.value >= 0) count--;
    }
    return count;
  }

  // ------------------------------------------------------------------ faults

  private maybeFault(): void {
    if (!this.faulty) return;
    const live = this.liveNodes();
    if (this.rng.chance(this.crashRate) && live.length > 0) {
      // Crashes hurt most while writes are unfinished: prefer a node with some.
      const pending = live.filter((n) => n.disk.length > 0);
      const n = pending.length > 0 && this.rng.chance(0.7) ? this.rng.pick(pending) : this.rng.pick(live);
      // Often back quickly, while the election it was part of is still going on.
      const down = this.rng.chance(0.5) ? this.rng.between(1, 30) : this.rng.between(30, 300);
      this.crash(n, this.now + down);
    }
    if (this.cut.size === 0 && this.rng.chance(0.002)) this.partition();
    if (this.rng.chance(0.002) && live.length > 0) {
      // Pause a node, the leader more often than not, for longer than an election timeout.
      const leaders = this.leaders();
      const n = leaders.length > 0 && this.rng.chance(0.7) ? this.rng.pick(leaders) : this.rng.pick(live);
      n.paused = true;
      n.pausedAt = this.now;
      n.pausedUntil = this.now + this.rng.between(20, 250);
      this.stats.pauses++;
      this.trace(`pause ${n.id} until ${n.pausedUntil}`);
    }
  }

  /**
   * A paused node that resumes first catches up the ticks it missed, as a driver that
   * counts ticks from a monotonic clock would, and only then sees the messages that
   * queued up meanwhile. Clients may reach it in between.
   */
  private resumePaused(): void {
    for (const n of this.nodes) {
      if (!n.paused || (this.faulty && n.pausedUntil > this.now)) continue;
      n.paused = false;
      const core = n.core;
      if (!core) continue;
      let missed = 0;
      for (let t = n.pausedAt; t < this.now; t++) if ((t + n.phase) % TICK_UNITS === 0) missed++;
      this.trace(`resume ${n.id} after ${missed} missed ticks`);
      for (let i = 0; i < missed; i++) core.tick();
      this.drain(n);
    }
  }

  private crash(n: SimNode, until: number): void {
    this.stats.crashes++;
    n.paused = false;
    this.trace(`crash ${n.id} (${n.disk.length} unwritten items lost)`);
    n.core = null;
    n.disk = [];
    n.downUntil = until;
  }

  private restart(n: SimNode): void {
    this.trace(`restart ${n.id}`);
    this.start(n);
  }

  private partition(): void {
    const ids = this.nodes.map((n) => n.id);
    const kind = this.rng.int(5);
    if (kind >= 3) {
      // kind 3: a bridge: only the link between two nodes fails, both still reach the rest.
      // kind 4: one way only: a receives nothing from b.
      const a = this.rng.pick(ids);
      const b = this.rng.pick(ids.filter((x) => x !== a));
      if (kind === 3) this.cutLink(a, b);
      else this.cut.add(`${b}>${a}`);
      this.stats.partitions++;
      this.healAt = this.now + this.rng.between(40, 400);
      this.trace(`partition ${kind === 3 ? `bridge ${a}-${b}` : `one-way ${b}->${a}`}`);
      return;
    }
    const groups: NodeId[][] = [];
    if (kind === 0) {
      // One node cut off from everyone.
      const one = this.rng.pick(ids);
      groups.push(
        [one],
        ids.filter((x) => x !== one),
      );
    } else if (kind === 1) {
      // The leader (if any) isolated.
      const l = this.leaders();
      const one = l.length > 0 ? (this.rng.pick(l) as SimNode).id : this.rng.pick(ids);
      groups.push(
        [one],
        ids.filter((x) => x !== one),
      );
    } else {
      // A random split into two sides.
      const a: NodeId[] = [];
      const b: NodeId[] = [];
      for (const id of ids) (this.rng.chance(0.5) ? a : b).push(id);
      groups.push(a, b);
    }
    for (const x of groups[0] as NodeId[]) for (const y of groups[1] as NodeId[]) this.cutLink(x, y);
    if (this.cut.size === 0) return;
    this.stats.partitions++;
    this.healAt = this.now + this.rng.between(40, 400);
    this.trace(`partition ${groups.map((g) => g.join(',')).join(' | ')}`);
  }

  private cutLink(a: NodeId, b: NodeId): void {
    this.cut.add(a < b ? `${a}|${b}` : `${b}|${a}`);
  }

  /** Whether a message from `a` to `b` is lost to a partition. */
  private isCut(a: NodeId, b: NodeId): boolean {
    return (
      this.cut.size > 0 && (this.cut.has(a < b ? `${a}|${b}` : `${b}|${a}`) || this.cut.has(`${a}>${b}`))
    );
  }

  // ------------------------------------------------------------------ liveness

  /**
   * Heals every fault, then requires that within HEAL_TICKS ticks a leader is elected, a
   * new proposal commits, and every member of the final configuration applies the same
   * log, including every acknowledged write.
   */
  private heal(): void {
    this.faulty = false;
    this.cut.clear();
    for (const n of this.nodes) if (!n.core) n.downUntil = this.now;
    const deadline = this.now + HEAL_TICKS * TICK_UNITS;
    let probe: { node: SimNode; value: number; index: Index; term: number } | null = null;
    for (; this.now < deadline; this.now++) {
      this.resumePaused();
      this.stepTime();
      const leaders = this.leaders();
      if (leaders.length === 0) continue;
      const leader = leaders.reduce((a, b) =>
        (a.core as RaftCore).term >= (b.core as RaftCore).term ? a : b,
      );
      const core = leader.core as RaftCore;
      if (probe === null || probe.node !== leader || probe.term !== core.term) {
        const value = this.nextValue++;
        const idx = core.propose(encodeValue(value));
        if (idx > 0) {
          leader.proposals.push({ value, index: idx, term: core.term });
          probe = { node: leader, value, index: idx, term: core.term };
        }
        continue;
      }
      if (this.converged(leader, probe.index)) return;
    }
    const st = this.nodes.map((n) => {
      const s = n.core?.status();
      return s ? `${n.id}:${s.role}/t${s.term}/c${s.committed}/a${n.appliedIndex}` : `${n.id}:down`;
    });
    throw new Violation(`liveness: no convergence ${HEAL_TICKS} ticks after healing (${st.join(' ')})`);
  }

  private converged(leader: SimNode, probeIndex: Index): boolean {
    const core = leader.core as RaftCore;
    if (core.log.committed < probeIndex) return false;
    const conf = core.confState();
    if (conf.votersOutgoing.length > 0) return false;
    for (const id of members(conf)) {
      const n = this.byId.get(id);
      if (!n?.core || n.appliedIndex < core.log.committed) return false;
    }
    // Every member applied the same prefix (checked as it happened); every acknowledged write is in it.
    if (core.log.committed < this.maxAcked) {
      throw new Violation(
        `acknowledged write lost: index ${this.maxAcked} acknowledged, leader committed ${core.log.committed}`,
      );
    }
    // Every member holds exactly the client values applied up to its index, in order
    // (each apply was checked against the others as it happened).
    for (const id of members(conf)) {
      const n = this.byId.get(id) as SimNode;
      const want = this.checker.valuesThrough(n.appliedIndex);
      if (n.values.length !== want.length || n.values.some((v, i) => v !== want[i])) {
        throw new Violation(`state: ${id} holds ${n.values.length} values, expected ${want.length}`);
      }
    }
    this.stats.commits += core.log.committed;
    return true;
  }
}

export function runSeed(opts: SimOptions): SimResult {
  return new World(opts).run();
}
