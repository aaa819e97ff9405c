/**
 * `RaftNode`: the public face of one raftline node (braft's `Node`). It validates the
 * options, locks the data directory and starts the coordinator with its worker threads.
 *
 * ```ts
 * const node = await RaftNode.start({ id: 'n1', dataDir, listen, peers, stateMachine });
 * node.on('leaderStart', (term) => ...);
 * const result = await node.apply(command);          // NotLeaderError names the leader
 * const value = await node.read(query, { consistency: 'linearizable' });
 * await node.shutdown();
 * ```
 *
 * Events: `role` (role, term), `leaderStart` (term), `leaderStop` (term),
 * `leaderChange` (leaderId | null, term), `error` (a RaftError that stopped the node or
 * its state machine).
 */

import { EventEmitter } from 'node:events';
import type { Histogram } from 'hdr-histogram-js';
import pino, { type Logger } from 'pino';
import { EntryType } from '../raft/types.js';
import { encodeBatch } from '../shared/batch-codec.js';
import { Coordinator, type NodeStatus, type ReadConsistency } from './coordinator.js';
import { checkClusterRecord, DataDirLock } from './data-dir.js';
import { InvalidOptionError, ShutdownError } from './errors.js';
import { type RaftNodeOptions, resolveOptions } from './options.js';
import type { TransportStatus } from './peer-server.js';
import type { Value } from './state-machine.js';

export type { NodeStatus, ReadConsistency } from './coordinator.js';

/** `RaftNode.status()`: the coordinator's status and the transport's (null before the server runs). */
export interface RaftNodeStatus extends NodeStatus {
  readonly transport: TransportStatus | null;
}
export type { RaftNodeOptions } from './options.js';

/** A cluster configuration, as membership changes resolve with it. */
export interface Configuration {
  /** The index of the configuration entry. */
  readonly index: number;
  readonly voters: string[];
  readonly learners: string[];
}

/** One running node. Make it with `RaftNode.start`. */
export class RaftNode extends EventEmitter {
  private readonly coordinator: Coordinator;
  private readonly lock: DataDirLock;
  private shutdownPromise: Promise<void> | null = null;

  private constructor(coordinator: Coordinator, lock: DataDirLock) {
    super();
    this.coordinator = coordinator;
    this.lock = lock;
    for (const event of ['role', 'leaderStart', 'leaderStop', 'leaderChange']) {
      coordinator.on(event, (...args: unknown[]) => this.emit(event, ...args));
    }
    // An 'error' event with no listener would throw: report it, but only to listeners.
    coordinator.on('error', (err: Error) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
  }

  /**
   * Validates `options`, locks the data directory, recovers the log and starts the
   * threads. Rejects with InvalidOptionError (naming the option), DataDirLockedError,
   * or a storage error naming the file and offset of a damaged log.
   */
  static async start(options: RaftNodeOptions, logger?: Logger): Promise<RaftNode> {
    const opts = resolveOptions(options);
    const log =
      logger ??
      pino({ level: opts.logLevel, base: { node: opts.id } }, pino.destination({ fd: 2, sync: false }));
    const lock = DataDirLock.acquire(opts.dataDir);
    try {
      const record = checkClusterRecord(
        opts.dataDir,
        { clusterId: opts.clusterId, voters: opts.join ? [] : opts.peers.map((p) => p.id) },
        (option, message) => new InvalidOptionError(option, message),
      );
      const coordinator = new Coordinator(opts, log, record.voters);
      await coordinator.start();
      return new RaftNode(coordinator, lock);
    } catch (err) {
      lock.release();
      throw err;
    }
  }

  /** This node's id. */
  get id(): string {
    return this.coordinator.opts.id;
  }

  /** The address the node listens on (host:port), useful with port 0. */
  get address(): string {
    return this.coordinator.address;
  }

  /**
   * Replicates `command` and applies it; resolves with what the state machine's
   * `iter.done(result)` gave. Rejects with NotLeaderError (with the leader hint) on a
   * follower, BusyError when too many applies wait, TimeoutError (outcome unknown).
   */
  apply(command: Uint8Array): Promise<Value> {
    if (!(command instanceof Uint8Array))
      return Promise.reject(new TypeError('apply(command): command must be a Uint8Array'));
    return this.coordinator.apply(command);
  }

  /**
   * Commits `commands` as ONE log entry (the seed's BatchCommitter: one round of
   * replication and one fsync for all of them) and applies them in order; resolves with
   * one result per command.
   */
  applyBatch(commands: readonly Uint8Array[]): Promise<Value[]> {
    if (!Array.isArray(commands) || commands.some((c) => !(c instanceof Uint8Array))) {
      return Promise.reject(new TypeError('applyBatch(commands): commands must be an array of Uint8Array'));
    }
    return this.coordinator.apply(encodeBatch(commands), EntryType.Batch) as Promise<Value[]>;
  }

  /**
   * Runs `query` through the state machine's `query()`. `linearizable` (default) confirms
   * leadership with one heartbeat round (ReadIndex); `lease` skips the round while the
   * leader's lease holds; `stale` reads this node's state as it is. Followers serve
   * `linearizable` and `lease` reads by asking the leader for a read index.
   */
  read(query: Value, options: { consistency?: ReadConsistency } = {}): Promise<Value> {
    const consistency = options.consistency ?? 'linearizable';
    if (consistency !== 'linearizable' && consistency !== 'lease' && consistency !== 'stale') {
      return Promise.reject(
        new InvalidOptionError('consistency', `must be linearizable, lease or stale, got ${consistency}`),
      );
    }
    return this.coordinator.read(query, consistency);
  }

  /**
   * Saves a snapshot of the state machine as applied now, through its `onSnapshotSave`
   * (braft's `Node::snapshot`); resolves with `{ index, term, fresh }` (`fresh` false when
   * nothing was applied since the last one). A restart loads the latest snapshot and
   * replays only the log after it, and the log before it (less `compactionMarginEntries`)
   * is deleted. Snapshots are also taken on their own (`snapshotIntervalS`,
   * `snapshotLogBytes`, `snapshotLogEntries`).
   */
  snapshot(): Promise<{ index: number; term: number; fresh: boolean }> {
    return this.coordinator.snapshot() as Promise<{ index: number; term: number; fresh: boolean }>;
  }

  /**
   * Adds `id`, listening at `address` (`host:port`), as a voter (braft's `add_peer`): it
   * joins as a learner, catches up (by snapshot if the log was compacted), and only then
   * is promoted, through joint consensus. Start the new node with `join: true` first.
   * Resolves with the configuration `{ index, voters, learners }` once the promotion
   * commits; NotLeaderError on a follower.
   */
  addPeer(id: string, address: string): Promise<Configuration> {
    return this.coordinator.addPeer(id, address) as unknown as Promise<Configuration>;
  }

  /** Adds `id` at `address` as a learner: it receives the log but does not vote. */
  addLearner(id: string, address: string): Promise<Configuration> {
    return this.coordinator.addLearner(id, address) as unknown as Promise<Configuration>;
  }

  /**
   * Removes voter or learner `id` (braft's `remove_peer`). A leader that removes itself
   * steps down once the change commits, handing over to the most up-to-date voter.
   */
  removePeer(id: string): Promise<Configuration> {
    return this.coordinator.removePeer(id) as unknown as Promise<Configuration>;
  }

  /**
   * Moves to the voters `peers` (`id=host:port` each; braft's `change_peers`): new nodes
   * join as learners and catch up first, then one joint-consensus change adds and
   * removes voters together.
   */
  changePeers(peers: string[]): Promise<Configuration> {
    return this.coordinator.changePeers(peers) as unknown as Promise<Configuration>;
  }

  /** Asks this leader to hand leadership to `target`. False if this node does not lead or `target` is no voter. */
  transferLeadership(target: string): boolean {
    return this.coordinator.transferLeadership(target);
  }

  /**
   * The server's latency histograms (µs, HDR), by stage: propose→durable, →committed,
   * →applied (as leader), replication RTT, fsync. They count from the start; take two
   * and subtract for an interval.
   */
  histograms(): Record<string, Histogram> {
    return this.coordinator.histograms();
  }

  /** A snapshot of this node's state (role, term, indexes, peers), and who may join (`transport`). */
  status(): RaftNodeStatus {
    return { ...this.coordinator.status(), transport: this.coordinator.transportStatus() };
  }

  /** Waits for pending requests (up to `shutdownDrainMs`), stops every thread and releases the data directory. */
  shutdown(): Promise<void> {
    if (!this.shutdownPromise) {
      this.shutdownPromise = this.coordinator.shutdown().finally(() => {
        this.lock.release();
      });
    }
    return this.shutdownPromise;
  }
}

export { ShutdownError };
