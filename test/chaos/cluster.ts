/**
 * The node processes of a chaos run: `raftline serve --fsm kv` children on 127.0.0.1,
 * each reaching the others through the fault proxies (`proxy.ts`), started, SIGKILLed,
 * SIGSTOPped and restarted by pid.
 *
 * A node's `--peers` names itself at its real listen address and every other node at the
 * port of the proxy between them, so the proxies carry all peer traffic while clients
 * connect to the real addresses. The proxies live for the whole run, so a restarted node
 * gets the same `--peers`.
 *
 * Each node's stdout and stderr (pino JSON lines) go to `<root>/logs/<id>.log`. The
 * harness watches stderr for "node stopped serving", the line a node logs when a disk
 * error stops it.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/cli/local-cluster.js';
import { RaftClient, type Value } from '../../src/client/raft-client.js';
import { ProxyMesh } from './proxy.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** What a node prints when its modules fail to load (not a fault of the node's). */
const MODULE_LOAD_ERROR =
  /SyntaxError: The requested module|ERR_MODULE_NOT_FOUND|Cannot find module|SyntaxError: Unexpected end of input/;

/** How the nodes of a chaos cluster are configured. */
export interface ChaosClusterOptions {
  readonly nodes: number;
  /** Parent of the data directories and logs. */
  readonly root: string;
  readonly electionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  /** Segment file size: small, so that snapshots let the log be compacted during a short run. */
  readonly segmentBytes: number;
  readonly snapshotLogEntries: number;
  readonly snapshotMinIntervalS: number;
  readonly compactionMarginEntries: number;
  readonly logWindowBytes: number;
  readonly logLevel: string;
  /** Environment for every start of every node (e.g. `RAFTLINE_FAULT_UNSAFE_LEASE` for a self-test). */
  readonly env?: Readonly<Record<string, string>>;
}

/**
 * The 3-node cluster of the staged scenes (`stale-read`, `lease-timeouts`): fast
 * elections, no automatic snapshots, small segments and window.
 */
export function sceneClusterOptions(
  root: string,
  env?: Readonly<Record<string, string>>,
): ChaosClusterOptions {
  return {
    nodes: 3,
    root,
    electionTimeoutMs: 400,
    heartbeatIntervalMs: 50,
    segmentBytes: 512 * 1024,
    snapshotLogEntries: 0,
    snapshotMinIntervalS: 5,
    compactionMarginEntries: 1000,
    logWindowBytes: 8 * 1024 * 1024,
    logLevel: 'warn',
    ...(env ? { env } : {}),
  };
}

/**
 * One `RaftClient` per node, by node id, that never follows redirects (a scene talks to
 * the node it means); each is also pushed to `all`, for the test to close.
 */
export function clientPerNode(c: ChaosCluster, all: RaftClient[]): Map<string, RaftClient> {
  return new Map(
    c.nodes.map((n) => {
      const client = new RaftClient({ endpoints: [n.address], maxRedirects: 0, requestTimeoutMs: 3000 });
      all.push(client);
      return [n.id, client] as const;
    }),
  );
}

/** How one start of a node differs from a normal start (the disk faults). */
export interface StartOptions {
  /** Extra environment, e.g. `RAFTLINE_FAULT_FSYNC_DELAY_MS`. */
  readonly env?: Readonly<Record<string, string>>;
  /** Run under `ulimit -f` (KiB): writes past this offset fail with EFBIG. */
  readonly fileSizeLimitKiB?: number;
  /** `--segment-bytes` for this start only (existing segments keep their size). */
  readonly segmentBytes?: number;
  /** The start may fail (the process may exit before it listens) without that being a finding. */
  readonly mayFailToStart?: boolean;
  /** `--log-level` for this start only (e.g. `info`, to see what recovery and the log-writer do). */
  readonly logLevel?: string;
  /** `--election-timeout-ms` for this start only. */
  readonly electionTimeoutMs?: number;
}

/** A node that did not come up: it exited first, or did not listen in time. */
export class StartError extends Error {
  constructor(
    readonly nodeId: string,
    readonly exitCode: number | null,
    readonly signal: string | null,
    /** The last lines the process wrote. */
    readonly output: string,
  ) {
    super(
      `${nodeId} did not start (exit ${exitCode ?? signal}): ${output.split('\n').slice(-3).join(' | ')}`,
    );
  }
}

/** How a node process ended. */
export interface NodeExit {
  readonly id: string;
  readonly pid: number;
  readonly code: number | null;
  readonly signal: string | null;
  /** False when the harness did not kill it: it ended on its own. */
  expected: boolean;
  readonly atMs: number;
}

/** Status fields the harness uses (`RaftNode.status()`). */
export interface NodeStatusView {
  readonly id: string;
  readonly role: string;
  readonly term: number;
  readonly leader: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastIndex: number;
  readonly durableIndex: number;
  readonly snapshotIndex: number;
  readonly firstIndex: number;
  /** Why the node stopped serving, or null while it serves. */
  readonly fatal: { code: string; message: string } | null;
  readonly stats: Record<string, number>;
}

/** One node: its process (if running) and its files. */
export class ChaosNode {
  proc: ChildProcess | null = null;
  pid: number | null = null;
  paused = false;
  /** The last "node stopped serving" log line since the latest start, or null. */
  stoppedServing: string | null = null;
  /** The "log tail cut" line recovery logged at the latest start, or null. */
  tailCut: string | null = null;
  /** Since the latest start: the log was replaced by a snapshot from the leader (logged at info level). */
  logReplaced = false;
  /** How the latest start differed from a normal one. */
  startOptions: StartOptions = {};
  private killing = false;
  private exitWaiters: (() => void)[] = [];
  private readonly admin: RaftClient;
  private readonly log: fs.WriteStream;

  constructor(
    readonly id: string,
    readonly port: number,
    readonly dataDir: string,
    readonly logFile: string,
    private readonly cluster: ChaosCluster,
  ) {
    this.admin = new RaftClient({
      endpoints: [this.address],
      maxRedirects: 0,
      requestTimeoutMs: 800,
      connectTimeoutMs: 400,
    });
    this.log = fs.createWriteStream(logFile, { flags: 'a' });
    this.log.on('error', () => {});
  }

  /** Where the node listens for peers and clients (its real address, not a proxy). */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.proc !== null;
  }

  /**
   * Starts the node and resolves once it listens. Rejects with `StartError` if it exits
   * first (e.g. a log it refuses to recover) or does not listen within `timeoutMs`.
   */
  async start(options: StartOptions = {}, timeoutMs = 20_000): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.startOnce(options, timeoutMs);
        return;
      } catch (err) {
        // A tree shared with others: someone's `tsc` may be rewriting dist/ right now, and
        // a module half written fails to load. That says nothing about the node: try again.
        const loading = err instanceof StartError && MODULE_LOAD_ERROR.test(err.output);
        if (!loading || attempt >= 5) throw err;
        const exit = [...this.cluster.exits].reverse().find((e) => e.id === this.id);
        if (exit) exit.expected = true;
        this.log.write(`--- the modules did not load (dist/ being rebuilt?): starting again\n`);
        await sleep(1000);
      }
    }
  }

  private startOnce(options: StartOptions, timeoutMs: number): Promise<void> {
    if (this.proc !== null) return Promise.reject(new Error(`${this.id} is already running`));
    const o = this.cluster.options;
    const args = [
      MAIN,
      'serve',
      '--id',
      this.id,
      '--listen',
      this.address,
      '--peers',
      this.cluster.peersOf(this.id).join(','),
      '--data-dir',
      this.dataDir,
      '--fsm',
      'kv',
      '--election-timeout-ms',
      String(options.electionTimeoutMs ?? o.electionTimeoutMs),
      '--heartbeat-interval-ms',
      String(o.heartbeatIntervalMs),
      '--segment-bytes',
      String(options.segmentBytes ?? o.segmentBytes),
      '--snapshot-log-entries',
      String(o.snapshotLogEntries),
      '--snapshot-min-interval-s',
      String(o.snapshotMinIntervalS),
      '--compaction-margin-entries',
      String(o.compactionMarginEntries),
      '--log-window-bytes',
      String(o.logWindowBytes),
      '--log-level',
      options.logLevel ?? o.logLevel,
    ];
    const env = { ...process.env, ...(o.env ?? {}), ...(options.env ?? {}) };
    // Node ignores SIGXFSZ, so under `ulimit -f` a write past the limit fails with EFBIG
    // instead of killing the process. `exec` keeps the pid: the harness signals the node.
    const proc =
      options.fileSizeLimitKiB !== undefined
        ? spawn(
            'bash',
            ['-c', `ulimit -f ${options.fileSizeLimitKiB} && exec "$0" "$@"`, process.execPath, ...args],
            { stdio: ['ignore', 'pipe', 'pipe'], env },
          )
        : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.proc = proc;
    this.pid = proc.pid ?? null;
    this.paused = false;
    this.killing = false;
    this.stoppedServing = null;
    this.tailCut = null;
    this.logReplaced = false;
    this.startOptions = options;
    if (this.pid !== null) this.cluster.livePids.add(this.pid);
    const log = this.log;
    log.write(`--- ${new Date().toISOString()} start pid ${this.pid} ${JSON.stringify(options)}\n`);
    const tail: string[] = [];
    const remember = (line: string): void => {
      tail.push(line);
      if (tail.length > 30) tail.shift();
    };
    let listening = false;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        void this.kill();
        reject(new StartError(this.id, null, 'timeout', tail.join('\n')));
      }, timeoutMs);
      lines(proc.stdout, (line) => {
        log.write(`${line}\n`);
        remember(line);
        if (!settled && line.includes(' listening on ')) {
          settled = true;
          listening = true;
          clearTimeout(timer);
          resolve();
        }
      });
      lines(proc.stderr, (line) => {
        log.write(`${line}\n`);
        remember(line);
        if (line.includes('node stopped serving')) this.stoppedServing = line;
        if (line.includes('log tail cut')) this.tailCut = line;
        if (line.includes('log replaced by a snapshot')) this.logReplaced = true;
      });
      proc.on('exit', (code, signal) => {
        const pid = this.pid as number;
        this.cluster.livePids.delete(pid);
        this.cluster.exits.push({
          id: this.id,
          pid,
          code,
          signal,
          expected: this.killing || (options.mayFailToStart === true && !listening),
          atMs: performance.now(),
        });
        log.write(`--- exit pid ${pid} code ${code} signal ${signal}\n`);
        if (this.proc === proc) {
          this.proc = null;
          this.pid = null;
          this.paused = false;
        }
        for (const w of this.exitWaiters.splice(0)) w();
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          // Let the last lines of stderr arrive before reporting them.
          setTimeout(() => reject(new StartError(this.id, code, signal, tail.join('\n'))), 50);
        }
      });
    });
  }

  /** SIGKILL, and resolves once the process is gone. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (proc === null || this.pid === null) return;
    this.killing = true;
    const gone = new Promise<void>((resolve) => this.exitWaiters.push(resolve));
    try {
      process.kill(this.pid, 'SIGKILL');
    } catch {
      // Already gone: 'exit' follows.
    }
    await gone;
  }

  /** SIGSTOP: the process keeps its sockets but runs nothing. */
  pause(): void {
    if (this.pid === null || this.paused) return;
    process.kill(this.pid, 'SIGSTOP');
    this.paused = true;
  }

  /** SIGCONT. */
  resume(): void {
    if (this.pid === null || !this.paused) return;
    process.kill(this.pid, 'SIGCONT');
    this.paused = false;
  }

  /** The node's status, or null if it does not answer in time. */
  async status(): Promise<NodeStatusView | null> {
    if (this.proc === null || this.paused) return null;
    try {
      return (await this.admin.status()) as unknown as NodeStatusView;
    } catch {
      return null;
    }
  }

  /** Asks this node, if it leads, to hand leadership to `id`. */
  async transfer(id: string): Promise<void> {
    await this.admin.transfer(id);
  }

  /** A query against this node's own state machine (a stale read): what it has applied. */
  async readLocal(query: Value): Promise<Value> {
    return this.admin.read(query, { consistency: 'stale' });
  }

  /** Closes the admin client and the log file. */
  async close(): Promise<void> {
    await this.admin.close();
    await new Promise<void>((resolve) => this.log.end(() => resolve()));
  }
}

/** The nodes and proxies of one chaos run. */
export class ChaosCluster {
  readonly nodes: ChaosNode[] = [];
  /** Pids of running node processes: killed by pid on exit, whatever happens. */
  readonly livePids = new Set<number>();
  /** Every process exit, expected or not. */
  readonly exits: NodeExit[] = [];
  mesh!: ProxyMesh;

  private constructor(readonly options: ChaosClusterOptions) {}

  /** Allocates ports, starts the proxies, then every node, and waits until each listens. */
  static async start(options: ChaosClusterOptions): Promise<ChaosCluster> {
    const c = new ChaosCluster(options);
    fs.mkdirSync(path.join(options.root, 'logs'), { recursive: true });
    const ports = new Map<string, number>();
    for (let i = 1; i <= options.nodes; i++) {
      const id = `n${i}`;
      const port = await freePort();
      ports.set(id, port);
      c.nodes.push(
        new ChaosNode(id, port, path.join(options.root, id), path.join(options.root, 'logs', `${id}.log`), c),
      );
    }
    c.mesh = await ProxyMesh.start([...ports.keys()], ports);
    try {
      await Promise.all(c.nodes.map((n) => n.start()));
    } catch (err) {
      // Those that did start are not left behind.
      c.killAllNow();
      await c.stop();
      throw err;
    }
    return c;
  }

  node(id: string): ChaosNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  get ids(): string[] {
    return this.nodes.map((n) => n.id);
  }

  /** `--peers` of node `id`: itself at its real address, the others at their proxies. */
  peersOf(id: string): string[] {
    return this.nodes.map((n) =>
      n.id === id ? `${n.id}=${n.address}` : `${n.id}=127.0.0.1:${this.mesh.link(id, n.id).port}`,
    );
  }

  /** Every node's status, null for those that do not answer. */
  async statuses(): Promise<Map<string, NodeStatusView | null>> {
    const all = await Promise.all(this.nodes.map(async (n) => [n.id, await n.status()] as const));
    return new Map(all);
  }

  /** The node that reports itself leader in the highest term, or null. */
  async leader(): Promise<string | null> {
    let best: NodeStatusView | null = null;
    for (const s of (await this.statuses()).values()) {
      if (s !== null && s.role === 'Leader' && (best === null || s.term > best.term)) best = s;
    }
    return best?.id ?? null;
  }

  /** Waits up to `timeoutMs` for a leader; null if none. */
  async waitForLeader(timeoutMs: number): Promise<string | null> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const l = await this.leader();
      if (l !== null || performance.now() >= deadline) return l;
      await sleep(100);
    }
  }

  /** Kills every node process by pid (SIGCONT first for a paused one, harmless otherwise). */
  killAllNow(): void {
    for (const pid of this.livePids) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {}
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  }

  /** Kills every node and waits, closes the proxies and the admin clients. */
  async stop(): Promise<void> {
    for (const n of this.nodes) n.resume();
    await Promise.all(this.nodes.map((n) => n.kill()));
    await Promise.all(this.nodes.map((n) => n.close()));
    await this.mesh?.close();
  }
}

/** Calls `onLine` for each line of a stream. */
function lines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (stream === null) return;
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      nl = buf.indexOf('\n');
    }
  });
  stream.on('end', () => {
    if (buf.length > 0) onLine(buf);
    buf = '';
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
