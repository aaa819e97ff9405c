import { type ConfChangeItem, ConfChangeType } from '../../src/raft/conf-change.js';
import {
  describeConf,
  describeEntry,
  describeMessage,
  describeReady,
  describeSnapshot,
} from '../../src/raft/describe.js';
import { ProposalDropped } from '../../src/raft/errors.js';
import { type Message, MessageType } from '../../src/raft/messages.js';
import type { RaftStatus } from '../../src/raft/raft-core.js';
import { bootstrapSnapshot, EMPTY_SNAPSHOT, isGap, MemoryStorage } from '../../src/raft/storage.js';
import { type Index, type NodeId, Role } from '../../src/raft/types.js';
import type { CmdArg, TestData } from './datadriven.js';
import { SyncCluster, type SyncNode } from './sync-cluster.js';

/**
 * The commands of the transcript tests (test/raft/testdata/*.txt), named after etcd-io/raft's
 * rafttest so that its transcripts read across. Every step is explicit: a Ready is handled
 * only when a transcript says `process-ready` or `stabilize`, a message moves only when it
 * is delivered, and time passes only with `tick-*`. Everything printed goes through
 * src/raft/describe.ts, the formatter the simulator's traces use too.
 *
 * Commands (ids are strings such as "1"):
 *   add-nodes N [voters=(1 2 3)] [learners=(4)] [prevote=true] [checkquorum=true] [max-msg-bytes=N]
 *       N new nodes, numbered after the existing ones. With a configuration they start from
 *       the bootstrap snapshot (index 1, term 1) holding it; without one they start empty and
 *       learn it from the leader. The options are cluster-wide: a later add-nodes may
 *       repeat them but not change them.
 *   campaign ID                 start an election now
 *   propose ID DATA             propose a normal entry
 *   propose-conf-change ID v4 l5 r2
 *                               v = add voter, l = add learner, r = remove; no change = leave joint
 *   tick-election ID            tick the minimum election timeout (a follower's randomized
 *                               timeout may be longer: transcripts elect with `campaign`)
 *   tick-heartbeat ID           tick one heartbeat interval
 *   process-ready ID...         handle each node's Ready: send, persist (then send what
 *                               waited for it), apply
 *   deliver-msgs ID... [drop=ID...] [type=MsgApp]
 *                               step queued messages into their recipients, or drop them
 *   stabilize [ID...]           process-ready and deliver-msgs until nothing moves
 *   status ID                   role, term, commit, configuration; a leader's progress
 *   raft-log ID                 the durable log (the node's MemoryStorage)
 *   read-index ID ctx=N [lease=true]
 *   transfer-leadership from=ID to=ID
 *   restart ID                  rebuild the core from its storage (only durable state survives)
 *   report-unreachable ID TARGET
 *   compact ID INDEX            snapshot at an applied INDEX, then compact the storage up to it
 */

/** Ticks of the simulated clock, as small as etcd's rafttest uses so transcripts stay short. */
const ELECTION_TICKS = 3;
const HEARTBEAT_TICKS = 1;

/** Collects a command's output; `withIndent` nests what a sub-step prints under its header. */
class Output {
  private lines: string[] = [];
  private indent = '';

  write(text: string): void {
    for (const line of text.split('\n')) this.lines.push(this.indent + line);
  }

  withIndent(fn: () => void): void {
    const prev = this.indent;
    this.indent += '  ';
    try {
      fn();
    } finally {
      this.indent = prev;
    }
  }

  take(): string {
    const s = this.lines.join('\n');
    this.lines = [];
    return s;
  }
}

/** Cluster-wide settings fixed by the first add-nodes. */
interface ClusterSettings {
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly maxSizePerMsgBytes: number | undefined;
}

/** A usage error in a transcript (bad arguments), as opposed to a Raft outcome, which is printed. */
export class TranscriptUsageError extends Error {
  readonly code = 'ERR_TRANSCRIPT_USAGE';
}

function compareIds(a: NodeId, b: NodeId): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

/** One line of a node's state, then (on a leader) one line per follower's progress. */
function describeStatus(st: RaftStatus): string {
  let head =
    `${st.id} ${st.role} term=${st.term} vote=${st.vote || 'none'} lead=${st.leader || 'none'}` +
    ` commit=${st.committed} applied=${st.applied} last=${st.lastIndex} ${describeConf(st.conf)}`;
  if (st.role !== Role.Leader) return head;
  if (st.leadTransferee) head += ` transferee=${st.leadTransferee}`;
  head += st.leaseValid ? ' lease=valid' : ' lease=none';
  const lines = [head];
  for (const id of [...st.progress.keys()].sort(compareIds)) {
    const pr = st.progress.get(id);
    if (!pr) continue;
    let s = `  ${id}: ${pr.state} match=${pr.match} next=${pr.next}`;
    if (pr.inflightMsgs > 0) s += ` inflight=${pr.inflightMsgs}`;
    if (!pr.recentActive) s += ' inactive';
    lines.push(s);
  }
  return lines.join('\n');
}

function parseBool(d: TestData, arg: CmdArg): boolean {
  const v = arg.vals[0];
  if (arg.vals.length === 1 && (v === 'true' || v === 'false')) return v === 'true';
  throw new TranscriptUsageError(`${d.pos}: ${arg.key} wants true or false`);
}

function parseInt10(d: TestData, what: string, v: string | undefined): number {
  if (v === undefined || !/^\d+$/.test(v)) {
    throw new TranscriptUsageError(`${d.pos}: ${what} wants a number, got ${v}`);
  }
  return Number(v);
}

/** Arguments written without `=`: node ids, data, conf changes. */
function positional(d: TestData): string[] {
  return d.args.filter((a) => a.vals.length === 0).map((a) => a.key);
}

function keyword(d: TestData, key: string): CmdArg | undefined {
  return d.args.find((a) => a.key === key && a.vals.length > 0);
}

const utf8 = new TextEncoder();

interface Command {
  readonly keys: readonly string[];
  readonly run: (d: TestData) => void;
}

/** The state of one transcript file: a SyncCluster plus the output being collected. */
export class InteractionEnv {
  private cluster: SyncCluster | null = null;
  private settings: ClusterSettings | null = null;
  private readonly out = new Output();

  /** Each command with the `key=value` arguments it accepts; any other key is a typo. */
  private readonly commands: Readonly<Record<string, Command>> = {
    'add-nodes': {
      keys: ['voters', 'learners', 'prevote', 'checkquorum', 'max-msg-bytes'],
      run: (d) => this.addNodes(d),
    },
    campaign: { keys: [], run: (d) => this.node(d, this.oneId(d)).core.campaign() },
    propose: { keys: [], run: (d) => this.propose(d) },
    'propose-conf-change': { keys: [], run: (d) => this.proposeConfChange(d) },
    'tick-election': { keys: [], run: (d) => this.tick(d, ELECTION_TICKS) },
    'tick-heartbeat': { keys: [], run: (d) => this.tick(d, HEARTBEAT_TICKS) },
    'process-ready': { keys: [], run: (d) => this.processReadyCmd(d) },
    'deliver-msgs': { keys: ['drop', 'type'], run: (d) => this.deliverMsgs(d) },
    stabilize: { keys: [], run: (d) => this.stabilize(d) },
    status: {
      keys: [],
      run: (d) => this.out.write(describeStatus(this.node(d, this.oneId(d)).core.status())),
    },
    'raft-log': { keys: [], run: (d) => this.raftLog(this.node(d, this.oneId(d))) },
    'read-index': { keys: ['ctx', 'lease'], run: (d) => this.readIndex(d) },
    'transfer-leadership': { keys: ['from', 'to'], run: (d) => this.transferLeadership(d) },
    restart: { keys: [], run: (d) => this.restart(d) },
    'report-unreachable': { keys: [], run: (d) => this.reportUnreachable(d) },
    compact: { keys: [], run: (d) => this.compact(d) },
  };

  /** Runs one transcript block and returns what it printed. */
  handle(d: TestData): string {
    const command = this.commands[d.cmd];
    if (!command) throw new TranscriptUsageError(`${d.pos}: unknown command ${d.cmd}`);
    for (const a of d.args) {
      if (a.vals.length > 0 && !command.keys.includes(a.key)) {
        throw new TranscriptUsageError(`${d.pos}: ${d.cmd} takes no argument ${a.key}`);
      }
    }
    command.run(d);
    return this.out.take();
  }

  // ---------------------------------------------------------------- helpers

  private env(d: TestData): SyncCluster {
    if (!this.cluster) throw new TranscriptUsageError(`${d.pos}: add-nodes first`);
    return this.cluster;
  }

  private node(d: TestData, id: NodeId): SyncNode {
    const n = this.env(d).nodes.get(id);
    if (!n) throw new TranscriptUsageError(`${d.pos}: no node ${id}`);
    return n;
  }

  private oneId(d: TestData): NodeId {
    const ids = positional(d);
    if (ids.length !== 1) throw new TranscriptUsageError(`${d.pos}: ${d.cmd} wants one node id`);
    return ids[0] as NodeId;
  }

  private printDropped(reason: ProposalDropped): void {
    this.out.write(`dropped: ${ProposalDropped[reason]}`);
  }

  // ---------------------------------------------------------------- commands

  private addNodes(d: TestData): void {
    const count = parseInt10(d, 'add-nodes', positional(d)[0]);
    const pv = keyword(d, 'prevote');
    const cq = keyword(d, 'checkquorum');
    const mb = keyword(d, 'max-msg-bytes');
    const given: ClusterSettings = {
      preVote: pv ? parseBool(d, pv) : false,
      checkQuorum: cq ? parseBool(d, cq) : false,
      maxSizePerMsgBytes: mb ? parseInt10(d, 'max-msg-bytes', mb.vals[0]) : undefined,
    };
    if (!this.settings) {
      this.settings = given;
      this.cluster = new SyncCluster([], {
        electionTicks: ELECTION_TICKS,
        heartbeatTicks: HEARTBEAT_TICKS,
        preVote: given.preVote,
        checkQuorum: given.checkQuorum,
        config:
          given.maxSizePerMsgBytes === undefined ? {} : { maxSizePerMsgBytes: given.maxSizePerMsgBytes },
      });
    } else if (
      // SyncCluster builds every core (and rebuilds it on restart) from one set of options,
      // so a later add-nodes may only repeat them.
      (pv && given.preVote !== this.settings.preVote) ||
      (cq && given.checkQuorum !== this.settings.checkQuorum) ||
      (mb && given.maxSizePerMsgBytes !== this.settings.maxSizePerMsgBytes)
    ) {
      throw new TranscriptUsageError(
        `${d.pos}: prevote/checkquorum/max-msg-bytes are fixed by the first add-nodes`,
      );
    }
    const voters = keyword(d, 'voters')?.vals ?? [];
    const learners = keyword(d, 'learners')?.vals ?? [];
    // Founders share one bootstrap snapshot (index 1) holding the initial configuration; a
    // node added with no configuration starts empty and learns it from the leader.
    const snapshot =
      voters.length + learners.length > 0 ? bootstrapSnapshot(voters, learners) : EMPTY_SNAPSHOT;
    const cluster = this.env(d);
    for (let i = 0; i < count; i++) {
      const id = String(cluster.nodes.size + 1);
      const n = cluster.addNode(id, new MemoryStorage(snapshot));
      this.out.write(describeStatus(n.core.status()));
    }
  }

  private propose(d: TestData): void {
    const [id, data, ...extra] = positional(d);
    if (id === undefined || data === undefined || extra.length > 0) {
      throw new TranscriptUsageError(`${d.pos}: propose ID DATA`);
    }
    const r = this.node(d, id).core.propose(utf8.encode(data));
    if (r < 0) this.printDropped(r);
  }

  private proposeConfChange(d: TestData): void {
    const [id, ...specs] = positional(d);
    if (id === undefined) throw new TranscriptUsageError(`${d.pos}: propose-conf-change ID [v1 l2 r3 ...]`);
    const types: Readonly<Record<string, ConfChangeType>> = {
      v: ConfChangeType.AddVoter,
      l: ConfChangeType.AddLearner,
      r: ConfChangeType.Remove,
    };
    const changes: ConfChangeItem[] = specs.map((s) => {
      const type = types[s.charAt(0)];
      if (type === undefined || s.length < 2) throw new TranscriptUsageError(`${d.pos}: bad change ${s}`);
      return { type, id: s.slice(1) };
    });
    const r = this.node(d, id).core.proposeConfChange({ changes });
    if (r < 0) this.printDropped(r);
  }

  private tick(d: TestData, ticks: number): void {
    const n = this.node(d, this.oneId(d));
    for (let i = 0; i < ticks; i++) n.core.tick();
  }

  private processReadyCmd(d: TestData): void {
    const ids = positional(d);
    if (ids.length === 0) throw new TranscriptUsageError(`${d.pos}: process-ready ID...`);
    for (const id of ids) {
      this.node(d, id);
      if (ids.length === 1) {
        this.processReady(id);
      } else {
        this.out.write(`> ${id} handling Ready`);
        this.out.withIndent(() => this.processReady(id));
      }
    }
  }

  /**
   * Handles one Ready through SyncCluster (messages queued, writes durable at once,
   * entries applied at once) and prints it.
   */
  private processReady(id: NodeId): void {
    const cluster = this.cluster as SyncCluster;
    const rd = cluster.processReady(id);
    const text = rd ? describeReady(rd) : '';
    this.out.write(text || '<empty Ready>');
    // SyncCluster reports applied entries but not a snapshot loaded with no entries after
    // it; without this the node's applied index would lag behind its state machine.
    const snap = rd?.apply?.snapshot;
    if (snap && rd.apply?.entries.length === 0) cluster.node(id).core.applied(snap.index);
  }

  private deliverMsgs(d: TestData): void {
    let type: MessageType | undefined;
    const t = keyword(d, 'type');
    if (t) {
      const v: unknown = MessageType[t.vals[0] as keyof typeof MessageType];
      // Names only: a numeric enum also maps numbers back to names.
      if (typeof v !== 'number')
        throw new TranscriptUsageError(`${d.pos}: unknown message type ${t.vals[0]}`);
      type = v as MessageType;
    }
    const deliver = positional(d);
    const drop = keyword(d, 'drop')?.vals ?? [];
    for (const id of drop) {
      if (deliver.includes(id)) throw new TranscriptUsageError(`${d.pos}: both deliver to and drop ${id}`);
    }
    for (const id of deliver) this.node(d, id);
    let n = 0;
    for (const id of deliver) n += this.deliver(id, false, type);
    for (const id of drop) n += this.deliver(id, true, type);
    if (n === 0) this.out.write('no messages');
  }

  /** Steps (or drops) the queued messages to `to`, oldest first; returns how many. */
  private deliver(to: NodeId, drop: boolean, type?: MessageType): number {
    const cluster = this.cluster as SyncCluster;
    const take: Message[] = [];
    const keep: Message[] = [];
    for (const m of cluster.queue) {
      (m.to === to && (type === undefined || m.type === type) ? take : keep).push(m);
    }
    cluster.queue = keep;
    for (const m of take) {
      this.out.write(`${drop ? 'dropped: ' : ''}${describeMessage(m)}`);
      if (!drop) cluster.node(to).core.step(m);
    }
    return take.length;
  }

  /**
   * etcd's Stabilize: every node with a Ready handles it, then every node with mail
   * receives it, until a whole pass does nothing. Messages to nodes outside `ids` stay queued.
   */
  private stabilize(d: TestData): void {
    const cluster = this.env(d);
    const ids = positional(d);
    for (const id of ids) this.node(d, id);
    const nodes = ids.length > 0 ? ids : [...cluster.nodes.keys()];
    for (let pass = 0; ; pass++) {
      if (pass > 1000) throw new Error(`${d.pos}: stabilize did not settle`);
      let moved = false;
      for (const id of nodes) {
        if (!cluster.node(id).core.hasReady()) continue;
        this.out.write(`> ${id} handling Ready`);
        this.out.withIndent(() => this.processReady(id));
        moved = true;
      }
      for (const id of nodes) {
        if (!cluster.queue.some((m) => m.to === id)) continue;
        this.out.write(`> ${id} receiving messages`);
        this.out.withIndent(() => this.deliver(id, false));
        moved = true;
      }
      if (!moved) return;
    }
  }

  private raftLog(n: SyncNode): void {
    const s = n.storage;
    const snap = s.snapshot();
    if (snap.index > 0) this.out.write(`snapshot: ${describeSnapshot(snap)}`);
    const first = s.firstIndex();
    const last = s.lastIndex();
    if (last < first) {
      this.out.write(`log is empty: first index=${first}, last index=${last}`);
      return;
    }
    const ents = s.entries(first, last + 1, Number.POSITIVE_INFINITY);
    if (isGap(ents)) throw new Error(`raft-log ${n.id}: storage cannot read ${first}..${last}`);
    for (const e of ents) this.out.write(describeEntry(e));
  }

  private readIndex(d: TestData): void {
    const ctx = parseInt10(d, 'ctx', keyword(d, 'ctx')?.vals[0]);
    const lease = keyword(d, 'lease');
    this.node(d, this.oneId(d)).core.readIndex(ctx, lease ? parseBool(d, lease) : false);
  }

  private transferLeadership(d: TestData): void {
    const from = keyword(d, 'from')?.vals[0];
    const to = keyword(d, 'to')?.vals[0];
    if (from === undefined || to === undefined) {
      throw new TranscriptUsageError(`${d.pos}: transfer-leadership from=ID to=ID`);
    }
    if (!this.node(d, from).core.transferLeadership(to)) this.out.write('refused');
  }

  private restart(d: TestData): void {
    const id = this.oneId(d);
    this.node(d, id);
    this.env(d).restart(id);
  }

  private reportUnreachable(d: TestData): void {
    const [id, target, ...extra] = positional(d);
    if (id === undefined || target === undefined || extra.length > 0) {
      throw new TranscriptUsageError(`${d.pos}: report-unreachable ID TARGET`);
    }
    this.node(d, id).core.reportUnreachable(target);
  }

  private compact(d: TestData): void {
    const [id, at, ...extra] = positional(d);
    if (id === undefined || extra.length > 0) throw new TranscriptUsageError(`${d.pos}: compact ID INDEX`);
    const index: Index = parseInt10(d, 'compact', at);
    const n = this.node(d, id);
    // A state machine can only snapshot what it has applied.
    if (index > n.core.log.applied) {
      throw new TranscriptUsageError(
        `${d.pos}: index ${index} is not applied on ${id} (${n.core.log.applied})`,
      );
    }
    n.storage.createSnapshot(index, n.core.configurationAt(index));
    n.storage.compact(index);
    n.core.compacted(index);
    this.raftLog(n);
  }
}
