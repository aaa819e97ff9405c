import type { Message } from '../../src/raft/messages.js';
import { type RaftConfig, RaftCore, type Ready } from '../../src/raft/raft-core.js';
import { Rng } from '../../src/raft/rng.js';
import { bootstrapSnapshot, EMPTY_SNAPSHOT, MemoryStorage } from '../../src/raft/storage.js';
import type { Entry, NodeId, ReadState } from '../../src/raft/types.js';

/**
 * A small, synchronous driver for a few cores, for unit tests and transcripts: storage
 * writes complete at once, messages go into one queue that the test delivers (or drops)
 * explicitly. No timers, no threads: every step is the test's choice.
 */
export interface SyncNode {
  readonly id: NodeId;
  core: RaftCore;
  storage: MemoryStorage;
  /** Entries applied so far, in order. */
  applied: Entry[];
  readStates: ReadState[];
  droppedReads: number[];
}

export interface SyncClusterOptions {
  electionTicks?: number;
  heartbeatTicks?: number;
  preVote?: boolean;
  checkQuorum?: boolean;
  seed?: number;
  /** Extra core settings. */
  config?: Partial<RaftConfig>;
}

export class SyncCluster {
  readonly nodes = new Map<NodeId, SyncNode>();
  /** Messages sent and not yet delivered, oldest first. */
  queue: Message[] = [];
  private readonly opts: Required<Omit<SyncClusterOptions, 'config'>> & { config: Partial<RaftConfig> };

  constructor(voters: NodeId[], opts: SyncClusterOptions = {}, extraNodes: NodeId[] = []) {
    this.opts = {
      electionTicks: opts.electionTicks ?? 10,
      heartbeatTicks: opts.heartbeatTicks ?? 1,
      preVote: opts.preVote ?? true,
      checkQuorum: opts.checkQuorum ?? true,
      seed: opts.seed ?? 1,
      config: opts.config ?? {},
    };
    // Founders start from the bootstrap snapshot (index 1); extra nodes start empty.
    for (const id of voters) this.addNode(id, new MemoryStorage(bootstrapSnapshot(voters)));
    for (const id of extraNodes) this.addNode(id, new MemoryStorage(EMPTY_SNAPSHOT));
  }

  addNode(id: NodeId, storage: MemoryStorage): SyncNode {
    const n: SyncNode = {
      id,
      storage,
      core: this.makeCore(id, storage),
      applied: [],
      readStates: [],
      droppedReads: [],
    };
    this.nodes.set(id, n);
    return n;
  }

  /** Restarts a node from what its storage holds (in this driver every write is durable at once). */
  restart(id: NodeId): SyncNode {
    const n = this.node(id);
    n.core = this.makeCore(id, n.storage);
    n.applied = [];
    return n;
  }

  private makeCore(id: NodeId, storage: MemoryStorage): RaftCore {
    let seed = this.opts.seed;
    for (const ch of id) seed = (seed * 31 + ch.charCodeAt(0)) >>> 0;
    return new RaftCore({
      id,
      storage,
      rng: new Rng(seed),
      electionTicks: this.opts.electionTicks,
      heartbeatTicks: this.opts.heartbeatTicks,
      preVote: this.opts.preVote,
      checkQuorum: this.opts.checkQuorum,
      ...this.opts.config,
    });
  }

  node(id: NodeId): SyncNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  /** Handles one Ready of `id`, if it has one; returns it. */
  processReady(id: NodeId): Ready | null {
    const n = this.node(id);
    if (!n.core.hasReady()) return null;
    const rd = n.core.ready();
    this.queue.push(...rd.messages);
    if (rd.append) {
      n.storage.write(rd.append);
      n.core.persisted(rd.append);
      for (const m of rd.append.messages) {
        if (m.to === id) n.core.step(m);
        else this.queue.push(m);
      }
    }
    if (rd.apply) {
      if (rd.apply.snapshot) {
        n.applied = [];
      }
      for (const e of rd.apply.entries) n.applied.push(e);
      const last = rd.apply.entries[rd.apply.entries.length - 1];
      const upTo = last ? last.index : rd.apply.snapshot?.index;
      if (upTo !== undefined) n.core.applied(upTo);
    }
    n.readStates.push(...rd.readStates);
    n.droppedReads.push(...rd.droppedReads);
    return rd;
  }

  /** Delivers queued messages addressed to `to` (all of them if `to` is omitted). */
  deliver(to?: NodeId, drop: (m: Message) => boolean = () => false): Message[] {
    const keep: Message[] = [];
    const take: Message[] = [];
    for (const m of this.queue) (to === undefined || m.to === to ? take : keep).push(m);
    this.queue = keep;
    for (const m of take) {
      const n = this.nodes.get(m.to);
      if (n && !drop(m)) n.core.step(m);
    }
    return take;
  }

  /** Processes Readys and delivers messages until nothing moves (or `maxRounds`). */
  stabilize(drop: (m: Message) => boolean = () => false, maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const id of this.nodes.keys()) if (this.processReady(id)) moved = true;
      if (this.queue.length > 0) {
        this.deliver(undefined, drop);
        moved = true;
      }
      if (!moved) return;
    }
    throw new Error('SyncCluster.stabilize: did not settle');
  }

  /** Ticks `id` until it campaigns, then stabilizes; returns the leader's id. */
  elect(id: NodeId): NodeId {
    const n = this.node(id);
    n.core.campaign();
    this.stabilize();
    return n.core.lead;
  }

  tick(id: NodeId, times = 1): void {
    for (let i = 0; i < times; i++) this.node(id).core.tick();
  }
}
