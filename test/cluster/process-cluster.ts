/**
 * A cluster of node processes on 127.0.0.1 for tests and benchmarks: start, stop,
 * SIGKILL and restart members, and talk to each over IPC (`node-process.ts`).
 */

import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/cli/local-cluster.js';
import { MemberProcess } from './member-process.js';
import { MemberTable } from './member-table.js';

const NODE_SCRIPT = fileURLToPath(new URL('./node-process.js', import.meta.url));
const RECORDING_SM = new URL('./recording-sm.js', import.meta.url).href;

export { freePort };

interface Member {
  readonly id: string;
  readonly port: number;
  readonly dataDir: string;
  child: ChildProcess | null;
  /** Its requests awaiting answers; null while it is not running. */
  proc: MemberProcess | null;
  /** Options for this member only (e.g. `join` for a node added later). */
  extra: Record<string, unknown>;
  /** Environment for this member's process beside the parent's (e.g. `RAFTLINE_FAULT_FSYNC_DELAY_MS`). */
  env: Record<string, string>;
}

/** A member's memory (`node-process.ts`, op 'memory'): bytes, and its main thread's loop delay in ms. */
export interface MemoryReport {
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /** The highest RSS and heap sampled (every 20 ms) since the last reset. */
  readonly maxRss: number;
  readonly maxHeapUsed: number;
  readonly loopDelayP99Ms: number;
  readonly loopDelayMaxMs: number;
}

export interface ClusterOptions {
  size?: number;
  stateMachine?: string;
  electionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  sync?: boolean;
  logLevel?: string;
  extra?: Record<string, unknown>;
}

/** A cluster of `size` node processes. */
export class ProcessCluster {
  readonly root: string;
  readonly members = new MemberTable<Member>();
  private readonly opts: Required<Omit<ClusterOptions, 'extra'>> & { extra: Record<string, unknown> };
  private peers: string[] = [];

  private constructor(root: string, opts: ClusterOptions) {
    this.root = root;
    this.opts = {
      size: opts.size ?? 3,
      stateMachine: opts.stateMachine ?? RECORDING_SM,
      electionTimeoutMs: opts.electionTimeoutMs ?? 500,
      heartbeatIntervalMs: opts.heartbeatIntervalMs ?? 50,
      sync: opts.sync ?? true,
      logLevel: opts.logLevel ?? 'warn',
      extra: opts.extra ?? {},
    };
  }

  static async start(opts: ClusterOptions = {}): Promise<ProcessCluster> {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-cluster-'));
    const c = new ProcessCluster(root, opts);
    for (let i = 1; i <= c.opts.size; i++) {
      const id = `n${i}`;
      c.members.set(id, {
        id,
        port: await freePort(),
        dataDir: path.join(root, id),
        child: null,
        proc: null,
        extra: {},
        env: {},
      });
    }
    c.peers = c.members.peerSpecs();
    await Promise.all([...c.members.keys()].map((id) => c.startMember(id)));
    return c;
  }

  ids(): string[] {
    return this.members.ids();
  }

  member(id: string): Member {
    return this.members.member(id);
  }

  /**
   * Starts (or restarts) a member's process and waits until it serves. `env`, when given,
   * replaces the member's extra environment (kept for its later restarts).
   */
  async startMember(id: string, env?: Record<string, string>): Promise<void> {
    const m = this.member(id);
    if (env !== undefined) m.env = env;
    const options = {
      id,
      dataDir: m.dataDir,
      listen: `127.0.0.1:${m.port}`,
      peers: m.extra.join ? [...this.peers, `${id}=127.0.0.1:${m.port}`] : this.peers,
      stateMachine: this.opts.stateMachine,
      electionTimeoutMs: this.opts.electionTimeoutMs,
      heartbeatIntervalMs: this.opts.heartbeatIntervalMs,
      sync: this.opts.sync,
      logLevel: this.opts.logLevel,
      ...this.opts.extra,
      ...m.extra,
    };
    const child = fork(NODE_SCRIPT, [JSON.stringify(options)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
      // For the 'memory' request's `gc`: live memory, not what awaits collection.
      execArgv: ['--expose-gc'],
      env: { ...process.env, ...m.env },
    });
    m.child = child;
    const proc = new MemberProcess(child, id, () => {
      if (m.child !== child) return;
      m.child = null;
      m.proc = null;
    });
    m.proc = proc;
    await proc.ready;
  }

  /**
   * Starts a new node `id` that joins the running cluster (`join: true`): it starts empty
   * and waits to be added. Returns its `host:port`; the caller adds it with addPeer.
   */
  async addMember(id: string, extra: Record<string, unknown> = {}): Promise<string> {
    if (this.members.has(id)) throw new Error(`member ${id} exists`);
    const port = await freePort();
    this.members.set(id, {
      id,
      port,
      dataDir: path.join(this.root, id),
      child: null,
      proc: null,
      extra: { join: true, ...extra },
      env: {},
    });
    await this.startMember(id);
    return `127.0.0.1:${port}`;
  }

  /** `host:port` of a member's peer and client port. */
  address(id: string): string {
    return this.members.address(id);
  }

  /** Sends a request to a member's process. */
  request<T = unknown>(
    id: string,
    op: string,
    args: Record<string, unknown> = {},
    onAcked?: (indexes: number[]) => void,
  ): Promise<T> {
    const proc = this.member(id).proc;
    if (!proc) return Promise.reject(new Error(`${id} is not running`));
    return proc.request<T>(op, args, onAcked ? { onAcked } : {});
  }

  /**
   * A member's memory now (after a full GC with `gc`), and its peaks since the last
   * `reset` (which starts the next period).
   */
  memory(id: string, opts: { reset?: boolean; gc?: boolean } = {}): Promise<MemoryReport> {
    return this.request<MemoryReport>(id, 'memory', { reset: opts.reset === true, gc: opts.gc === true });
  }

  /** SIGKILLs a member (no shutdown, no flush) and waits for it to be gone. */
  async kill(id: string): Promise<void> {
    const m = this.member(id);
    const child = m.child;
    if (!child) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }

  /** Asks a member to shut down cleanly. */
  async stop(id: string): Promise<void> {
    const m = this.member(id);
    const child = m.child;
    if (!child) return;
    const gone = new Promise((r) => child.once('exit', r));
    await this.request(id, 'shutdown').catch(() => {});
    await gone;
  }

  running(): string[] {
    return this.ids().filter((id) => this.member(id).child !== null);
  }

  /** Waits until exactly one running member leads and the others follow it; returns its id. */
  async waitForLeader(timeoutMs = 15_000, among: string[] = this.running()): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const statuses = await Promise.all(
        among.map((id) => this.request<{ role: string; leader: string | null }>(id, 'status')),
      );
      const leaders = statuses.filter((s) => s.role === 'Leader');
      if (leaders.length === 1) {
        const lead = among[statuses.indexOf(leaders[0] as (typeof statuses)[number])] as string;
        if (statuses.every((s) => s.leader === lead)) return lead;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no single leader among ${among.join(',')} within ${timeoutMs} ms`);
  }

  /** Waits until every given member has applied at least `index`. */
  async waitForApplied(index: number, among: string[] = this.running(), timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const statuses = await Promise.all(
        among.map((id) => this.request<{ appliedIndex: number }>(id, 'status')),
      );
      if (statuses.every((s) => s.appliedIndex >= index)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`not every member of ${among.join(',')} applied ${index} within ${timeoutMs} ms`);
  }

  /**
   * Waits until every member of `among` applied the leader's log, then checks that they
   * applied the same commands in the same order, none twice, and that every command in
   * `acknowledged` is there. Uses the recording state machine's 'all' query. Returns the
   * commands.
   */
  async checkReplicas(
    acknowledged: readonly string[],
    among: string[] = this.running(),
    timeoutMs = 60_000,
  ): Promise<string[]> {
    const lead = await this.waitForLeader(15_000, among);
    const { lastIndex } = await this.request<{ lastIndex: number }>(lead, 'status');
    await this.waitForApplied(lastIndex, among, timeoutMs);
    const logs = await Promise.all(
      among.map((id) => this.request<string[]>(id, 'read', { query: 'all', consistency: 'stale' })),
    );
    const first = logs[0] as string[];
    for (const log of logs) assert.deepEqual(log, first, 'replicas applied different sequences');
    assert.equal(new Set(first).size, first.length, 'a command was applied twice');
    const present = new Set(first);
    const missing = acknowledged.filter((c) => !present.has(c));
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acknowledged writes are missing`);
    return first;
  }

  /** Kills every process still running and removes the data directories. */
  async destroy(): Promise<void> {
    await Promise.all(this.running().map((id) => this.kill(id)));
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}
