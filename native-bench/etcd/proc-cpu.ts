/**
 * Who used the CPU during a measurement, from /proc: the system under test (its server
 * processes), its load generator, and everybody else ("other": the shared machine's foreign
 * load, which taints a row when it is large). Linux only; elsewhere every figure is 0.
 *
 * A process is keyed by `pid:starttime`, so a pid reused between two snapshots is not
 * mistaken for the old process. A process present only in the later snapshot counts with
 * all of its CPU time. Kernel threads (children of kthreadd, pid 2) are left out.
 */

import fs from 'node:fs';
import os from 'node:os';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const TICKS_PER_S = 100;

/** One process as /proc/<pid>/stat shows it. */
export interface ProcEntry {
  readonly pid: number;
  readonly ppid: number;
  readonly comm: string;
  /** utime + stime, in clock ticks, over all its threads. */
  readonly ticks: number;
}

/** Every process at one instant, keyed by `pid:starttime`. */
export interface ProcSnapshot {
  readonly atMs: number;
  readonly procs: ReadonlyMap<string, ProcEntry>;
}

/** Reads every /proc/<pid>/stat (a process that ends meanwhile is skipped). */
export function snapshotProcs(): ProcSnapshot {
  const procs = new Map<string, ProcEntry>();
  let names: string[] = [];
  try {
    names = fs.readdirSync('/proc');
  } catch {
    return { atMs: performance.now(), procs };
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // comm may hold spaces and parentheses: the fields start after the last ')'.
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');
    const pid = Number(name);
    const ppid = Number(f[1]);
    if (pid === 2 || ppid === 2) continue;
    procs.set(`${pid}:${f[19]}`, { pid, ppid, comm, ticks: Number(f[11]) + Number(f[12]) });
  }
  return { atMs: performance.now(), procs };
}

/** Every pid below `root` (not `root` itself) in the snapshot. */
export function descendantsOf(root: number, snap: ProcSnapshot): Set<number> {
  const children = new Map<number, number[]>();
  for (const p of snap.procs.values()) {
    const list = children.get(p.ppid) ?? [];
    list.push(p.pid);
    children.set(p.ppid, list);
  }
  const out = new Set<number>();
  const stack = [...(children.get(root) ?? [])];
  while (stack.length > 0) {
    const pid = stack.pop() as number;
    if (out.has(pid)) continue;
    out.add(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** CPU cores used between two snapshots, split by who used them. */
export interface CpuSplit {
  /** The system under test: etcd members, or raftline's node processes. */
  readonly serverCores: number;
  /** The load generator's process (its worker threads included). */
  readonly clientCores: number;
  /** Processes that this benchmark did not start: load from someone else. */
  readonly otherCores: number;
  /** The busiest of those, `comm:cores`, when there are any worth naming. */
  readonly otherTop: string;
}

/**
 * Splits the CPU used between `a` and `b`. `server` and `client` name pids; `ours` says
 * whether any other pid belongs to this benchmark (then it is in none of the three).
 */
export function splitCpu(
  a: ProcSnapshot,
  b: ProcSnapshot,
  server: ReadonlySet<number>,
  client: ReadonlySet<number>,
  ours: (pid: number) => boolean,
): CpuSplit {
  const secs = (b.atMs - a.atMs) / 1000;
  if (secs <= 0) return { serverCores: 0, clientCores: 0, otherCores: 0, otherTop: '' };
  let serverTicks = 0;
  let clientTicks = 0;
  let otherTicks = 0;
  const byComm = new Map<string, number>();
  for (const [key, p] of b.procs) {
    const d = p.ticks - (a.procs.get(key)?.ticks ?? 0);
    if (d <= 0) continue;
    if (server.has(p.pid)) serverTicks += d;
    else if (client.has(p.pid)) clientTicks += d;
    else if (!ours(p.pid)) {
      otherTicks += d;
      byComm.set(p.comm, (byComm.get(p.comm) ?? 0) + d);
    }
  }
  const cores = (ticks: number): number => Math.round((ticks / TICKS_PER_S / secs) * 100) / 100;
  const otherTop = [...byComm.entries()]
    .sort((x, y) => y[1] - x[1])
    .slice(0, 3)
    .filter(([, t]) => cores(t) >= 0.05)
    .map(([c, t]) => `${c}:${cores(t).toFixed(2)}`)
    .join(',');
  return {
    serverCores: cores(serverTicks),
    clientCores: cores(clientTicks),
    otherCores: cores(otherTicks),
    otherTop,
  };
}

/** The machine now: CPUs this process may use (what `nproc` prints) and the load averages. */
export function hostNow(): { nproc: number; loadAverage: number[]; text: string } {
  const loadAverage = os.loadavg().map((l) => Math.round(l * 100) / 100);
  const nproc = os.availableParallelism();
  const [l1, l5, l15] = loadAverage.map((l) => l.toFixed(2));
  return { nproc, loadAverage, text: `nproc ${nproc}, load average ${l1} ${l5} ${l15} (1/5/15 min)` };
}
