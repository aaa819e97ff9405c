/**
 * A cluster (3 nodes unless told otherwise) of `fuzz-node.ts` processes on 127.0.0.1 for the fuzz harness: the
 * fuzzed node is a process of its own, so its memory figures are its own and not the
 * fuzzer's, and a crash of it is an exit the harness sees.
 */

import { type ChildProcess, fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/cli/local-cluster.js';
import type { RaftNodeOptions } from '../../src/main/raft-node.js';
import { MemberProcess } from '../cluster/member-process.js';
import { MemberTable } from '../cluster/member-table.js';

const NODE_SCRIPT = fileURLToPath(new URL('./fuzz-node.js', import.meta.url));
const KV = new URL('../../examples/kv.js', import.meta.url).href;

interface Member {
  readonly id: string;
  readonly port: number;
  readonly dataDir: string;
  child: ChildProcess | null;
  /** Its requests awaiting answers; null while it is not running. */
  proc: MemberProcess | null;
}

/** How a member process ended when nobody asked it to. */
export interface UnexpectedExit {
  readonly id: string;
  readonly code: number | null;
  readonly signal: string | null;
}

export interface FuzzClusterOptions {
  /** Members, n1..nN. Default 3. */
  readonly size?: number;
  readonly clusterId?: string;
  readonly electionTimeoutMs?: number;
  readonly heartbeatIntervalMs?: number;
  readonly sync?: boolean;
  /** Extra RaftNodeOptions for every member. */
  readonly extra?: Partial<RaftNodeOptions>;
}

export class FuzzCluster {
  readonly root: string;
  readonly clusterId: string;
  readonly members = new MemberTable<Member>();
  /** Members that exited without `stop`: a crash. */
  readonly unexpectedExits: UnexpectedExit[] = [];
  private readonly opts: FuzzClusterOptions;
  private stopping = false;

  private constructor(root: string, opts: FuzzClusterOptions) {
    this.root = root;
    this.opts = opts;
    this.clusterId = opts.clusterId ?? 'raftline';
  }

  static async start(opts: FuzzClusterOptions = {}): Promise<FuzzCluster> {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-fuzz-'));
    const c = new FuzzCluster(root, opts);
    for (let i = 1; i <= (opts.size ?? 3); i++) {
      const id = `n${i}`;
      c.members.set(id, {
        id,
        port: await freePort(),
        dataDir: path.join(root, id),
        child: null,
        proc: null,
      });
    }
    const peers = c.members.peerSpecs();
    try {
      await Promise.all([...c.members.keys()].map((id) => c.startMember(id, peers)));
    } catch (err) {
      await c.destroy();
      throw err;
    }
    return c;
  }

  ids(): string[] {
    return this.members.ids();
  }

  member(id: string): Member {
    return this.members.member(id);
  }

  address(id: string): string {
    return this.members.address(id);
  }

  pid(id: string): number | undefined {
    return this.member(id).child?.pid;
  }

  private async startMember(id: string, peers: string[]): Promise<void> {
    const m = this.member(id);
    const options: RaftNodeOptions = {
      id,
      dataDir: m.dataDir,
      listen: `127.0.0.1:${m.port}`,
      peers,
      clusterId: this.clusterId,
      stateMachine: KV,
      electionTimeoutMs: this.opts.electionTimeoutMs ?? 1000,
      heartbeatIntervalMs: this.opts.heartbeatIntervalMs ?? 100,
      sync: this.opts.sync ?? false,
      logLevel: 'error',
      // A small log window: its pages are touched as entries pass through it, and the
      // default 64 MiB would make the node's RSS climb for as long as a run lasts
      // whatever the fuzzer does. Entries that do not fit travel inline: slower, same result.
      logWindowBytes: 4 * 1024 * 1024,
      // Snapshots (and log compaction) every 20,000 entries: the node's in-memory log then
      // stays bounded however long a run is, and snapshots are taken while it is attacked.
      snapshotLogEntries: 20_000,
      ...this.opts.extra,
    };
    const child = fork(NODE_SCRIPT, [JSON.stringify(options)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
      // RAFTLINE_FUZZ_PROF=<dir> writes a CPU profile of every node's main thread there.
      execArgv: [
        '--expose-gc',
        ...(process.env.RAFTLINE_FUZZ_PROF
          ? ['--cpu-prof', `--cpu-prof-dir=${process.env.RAFTLINE_FUZZ_PROF}`]
          : []),
      ],
    });
    m.child = child;
    const proc = new MemberProcess(child, id, (code, signal) => {
      if (!this.stopping) this.unexpectedExits.push({ id, code, signal });
      if (m.child !== child) return;
      m.child = null;
      m.proc = null;
    });
    m.proc = proc;
    await proc.ready;
  }

  /** Starts a member again on its data directory (after it exited). */
  async restart(id: string): Promise<void> {
    const peers = this.members.peerSpecs();
    await this.startMember(id, peers);
  }

  /** Sends a request to a member's process. */
  request<T = unknown>(
    id: string,
    op: string,
    args: Record<string, unknown> = {},
    timeoutMs = 30_000,
  ): Promise<T> {
    const proc = this.member(id).proc;
    if (!proc) return Promise.reject(new Error(`${id} is not running`));
    return proc.request<T>(op, args, { timeoutMs });
  }

  /** Waits until one member leads and the others follow it; returns its id and term. */
  async waitForLeader(timeoutMs = 15_000): Promise<{ leader: string; term: number }> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const statuses = await Promise.all(
        this.ids().map((id) =>
          this.request<{ role: string; leader: string | null; term: number }>(id, 'status'),
        ),
      );
      const leaders = statuses.filter((s) => s.role === 'Leader');
      const lead = leaders[0];
      if (leaders.length === 1 && lead !== undefined) {
        const leader = this.ids()[statuses.indexOf(lead)] as string;
        if (statuses.every((s) => s.leader === leader && s.term === lead.term))
          return { leader, term: lead.term };
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`no single leader within ${timeoutMs} ms`);
  }

  /** Shuts every member down cleanly (SIGKILL after a grace period) and removes the data directories. */
  async destroy(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      [...this.members.values()].map(async (m) => {
        const child = m.child;
        if (!child) return;
        const gone = new Promise((r) => child.once('exit', r));
        const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
        await this.request(m.id, 'shutdown', {}, 5000).catch(() => child.kill('SIGKILL'));
        await gone;
        clearTimeout(kill);
      }),
    );
    fs.rmSync(this.root, { recursive: true, force: true });
  }
}
