/**
 * One `raftline bench` run as a child process, against the local 3-node cluster it starts
 * itself (fsync on), with `--json` read back for the figures. Its output (summary and
 * progress) goes to a log file; its temporary cluster directory is placed under `tmpDir`
 * (through TMPDIR) so that it can be removed even if the run is cut short.
 *
 * Stopping it early (`abort`): `raftline bench` has no signal handler of its own, so its
 * node processes are found first (its descendants in /proc) and each is sent SIGTERM by
 * pid (a clean shutdown), as is the bench process; SIGKILL follows after a grace period.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadFigures } from './etcd-load.js';
import { descendantsOf, snapshotProcs } from './proc-cpu.js';

const RAFTLINE_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** One load point against raftline. */
export interface RaftlineLoadPoint {
  concurrency: number;
  connections: number;
  threads: number;
  valueBytes: number;
  keys: number;
  warmupS: number;
  durationS: number;
  jsonFile: string;
  logFile: string;
  tmpDir: string;
  /** Called when the measured interval starts and ends, with the bench process's pid. */
  onMeasureStart: (benchPid: number) => void;
  onMeasureEnd: (benchPid: number) => void;
}

/** The part of `raftline bench --json` read here. */
interface BenchJson {
  requests: number;
  requestsPerSec: number;
  latencyUs: { p50: number; p99: number };
  errors: Record<string, number>;
}

/** A running `raftline bench`. */
export class RaftlineLoad {
  private child: ChildProcess | null = null;
  /** The bench's node processes as seen once its cluster was up, `pid` → start time. */
  private nodes = new Map<number, string>();
  /** Settles when `run` has finished cleaning up. */
  private done: Promise<unknown> = Promise.resolve();

  /** The command line, for the log. */
  static args(p: RaftlineLoadPoint): string[] {
    return [
      RAFTLINE_MAIN,
      'bench',
      '--duration',
      String(p.durationS),
      '--warmup',
      String(p.warmupS),
      '--connections',
      String(p.connections),
      '--pipeline',
      String(p.concurrency / p.connections),
      '--threads',
      String(p.threads),
      '--value-size',
      String(p.valueBytes),
      '--keys',
      String(p.keys),
      '--json',
      p.jsonFile,
    ];
  }

  /** Runs the bench to its end and returns its figures. */
  run(p: RaftlineLoadPoint): Promise<LoadFigures> {
    const result = this.runOnce(p);
    this.done = result.catch(() => {});
    return result;
  }

  private async runOnce(p: RaftlineLoadPoint): Promise<LoadFigures> {
    if (p.concurrency % p.connections !== 0) throw new Error('concurrency must be a multiple of connections');
    fs.rmSync(p.jsonFile, { force: true });
    fs.mkdirSync(p.tmpDir, { recursive: true });
    const log = fs.createWriteStream(p.logFile, { flags: 'a' });
    const args = RaftlineLoad.args(p);
    log.write(`$ node ${args.map((a) => path.relative(process.cwd(), a) || a).join(' ')}\n`);
    const child = spawn(process.execPath, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TMPDIR: p.tmpDir },
    });
    this.child = child;
    const pid = child.pid as number;
    const marks: NodeJS.Timeout[] = [];
    let stderr = '';
    let loadStarted = false;
    child.stdout?.pipe(log, { end: false });
    child.stderr?.on('data', (d: Buffer) => {
      log.write(d);
      if (loadStarted) return;
      stderr += d.toString();
      // `raftline bench` prints "leader nX at host:port" just before it starts the load.
      if (/^leader \S+ at /m.test(stderr)) {
        loadStarted = true;
        this.nodes = processesBelow(pid);
        marks.push(setTimeout(() => p.onMeasureStart(pid), p.warmupS * 1000));
        marks.push(setTimeout(() => p.onMeasureEnd(pid), (p.warmupS + p.durationS) * 1000));
      }
    });
    try {
      const { code, signal } = await new Promise<{ code: number | null; signal: string | null }>(
        (resolve, reject) => {
          child.once('error', reject);
          child.once('exit', (c, s) => resolve({ code: c, signal: s }));
        },
      );
      if (code !== 0) {
        throw new Error(`raftline bench exited (${signal ?? `code ${code}`}); see ${p.logFile}`);
      }
      const j = JSON.parse(fs.readFileSync(p.jsonFile, 'utf8')) as BenchJson;
      return {
        requestsPerSec: j.requestsPerSec,
        p50Us: j.latencyUs.p50,
        p99Us: j.latencyUs.p99,
        requests: j.requests,
        errors: j.errors,
      };
    } finally {
      for (const t of marks) clearTimeout(t);
      // A bench that ended normally stopped its nodes; one that was killed left them running.
      await stopAll(this.nodes, 5000);
      this.child = null;
      this.nodes.clear();
      await new Promise<void>((resolve) => log.end(resolve));
      fs.rmSync(p.tmpDir, { recursive: true, force: true });
    }
  }

  /**
   * Stops a run in progress, by pid: the bench process and its nodes (those seen when the
   * cluster came up plus any below the bench now) get SIGTERM; `run` then reaps the nodes
   * (SIGKILL after a grace period) and removes their data. Resolves when that is done.
   */
  async abort(): Promise<void> {
    const child = this.child;
    if (child?.pid !== undefined) for (const [p, s] of processesBelow(child.pid)) this.nodes.set(p, s);
    for (const [p, s] of this.nodes) signalSame(p, s, 'SIGTERM');
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await this.done;
  }

  /** Last resort at process exit: SIGKILL the bench and its nodes, synchronously. */
  killNow(): void {
    const child = this.child;
    if (child?.pid !== undefined) for (const [p, s] of processesBelow(child.pid)) this.nodes.set(p, s);
    for (const [p, s] of this.nodes) signalSame(p, s, 'SIGKILL');
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

/** SIGTERM to each process still running, SIGKILL to those left after `graceMs`. */
async function stopAll(pids: ReadonlyMap<number, string>, graceMs: number): Promise<void> {
  const alive = (): [number, string][] => [...pids].filter(([p, s]) => startTimeOf(p) === s);
  if (alive().length === 0) return;
  for (const [p, s] of alive()) signalSame(p, s, 'SIGTERM');
  const deadline = performance.now() + graceMs;
  while (performance.now() < deadline && alive().length > 0) await new Promise((r) => setTimeout(r, 100));
  for (const [p, s] of alive()) signalSame(p, s, 'SIGKILL');
}

/** The processes below `root` now, `pid` → start time (to tell a reused pid apart). */
function processesBelow(root: number): Map<number, string> {
  const snap = snapshotProcs();
  const below = descendantsOf(root, snap);
  const out = new Map<number, string>();
  for (const key of snap.procs.keys()) {
    const [pid, start] = key.split(':');
    if (below.has(Number(pid))) out.set(Number(pid), start as string);
  }
  return out;
}

/** The start time of process `pid` (field 22 of /proc/<pid>/stat), or null if there is none. */
function startTimeOf(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Sends `sig` to `pid` only while it is still the process that started at `start`. */
function signalSame(pid: number, start: string, sig: NodeJS.Signals): void {
  if (startTimeOf(pid) !== start) return;
  try {
    process.kill(pid, sig);
  } catch {
    // gone meanwhile
  }
}
