/**
 * Put load on an etcd cluster from one of three generators, each returning the same
 * figures: puts per second over the measured interval, p50 and p99 in µs, errors.
 *
 * - `etcd-benchmark`: etcd's own Go `benchmark` tool, used only when a binary sits at
 *   /tmp/peers-etcd/bin/benchmark (Debian does not package it). Run as etcd.sh runs it: a
 *   short pilot (which is also the warm-up) sizes a timed run of about `durationS`.
 * - `node-http2`: piscina threads running etcd-load-worker.ts with the thin gRPC client.
 * - `node-etcd3`: the same threads with the npm `etcd3` client (grpc-js), as etcd.sh.
 */

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { Piscina } from 'piscina';
import { decodeHistogram, mergeHistograms, percentiles } from '../../src/shared/histogram.js';
import type { EtcdLoadResult, EtcdLoadTask, NodeEtcdClient } from './etcd-load-worker.js';

/** Where etcd.sh keeps its work data, its npm client and (if anyone put one there) etcd's tool. */
export const PEERS_ETCD_DIR = '/tmp/peers-etcd';
export const ETCD_BENCHMARK_BIN = `${PEERS_ETCD_DIR}/bin/benchmark`;
export const ETCD3_CLIENT_DIR = `${PEERS_ETCD_DIR}/client`;

/** Every load generator for etcd. */
export type EtcdGenerator = 'etcd-benchmark' | NodeEtcdClient;

/** One load point's figures. */
export interface LoadFigures {
  requestsPerSec: number;
  p50Us: number;
  p99Us: number;
  requests: number;
  errors: Record<string, number>;
}

/** One load point against etcd. */
export interface EtcdLoadPoint {
  generator: EtcdGenerator;
  endpoint: string;
  /** Puts in flight in total. */
  concurrency: number;
  connections: number;
  threads: number;
  valueBytes: number;
  keys: number;
  warmupS: number;
  durationS: number;
  /** Called when the measured interval starts, and when it ends (for CPU accounting). */
  onMeasureStart: () => void;
  onMeasureEnd: () => void;
}

/** `total` split into `parts` nearly equal whole shares, none zero (as `raftline bench` splits). */
export function split(total: number, parts: number): number[] {
  const n = Math.min(parts, total);
  return Array.from({ length: n }, (_, i) => Math.floor(total / n) + (i < total % n ? 1 : 0));
}

/** Whether the npm `etcd3` client is installed where etcd.sh installs it. */
export function haveEtcd3(): boolean {
  return fs.existsSync(`${ETCD3_CLIENT_DIR}/node_modules/etcd3/package.json`);
}

/** npm-installs `etcd3` into /tmp/peers-etcd/client (not into this repository), as etcd.sh does. */
export async function installEtcd3(logFile: string): Promise<void> {
  fs.mkdirSync(ETCD3_CLIENT_DIR, { recursive: true });
  const pkg = `${ETCD3_CLIENT_DIR}/package.json`;
  if (!fs.existsSync(pkg)) fs.writeFileSync(pkg, '{ "name": "peers-etcd-client", "private": true }\n');
  const out = fs.openSync(logFile, 'a');
  const code = await new Promise<number | null>((resolve) => {
    const child = spawn('npm', ['install', 'etcd3', 'hdr-histogram-js', '--no-audit', '--no-fund'], {
      cwd: ETCD3_CLIENT_DIR,
      stdio: ['ignore', out, out],
    });
    child.once('exit', resolve);
    child.once('error', () => resolve(null));
  });
  fs.closeSync(out);
  if (code !== 0 || !haveEtcd3()) throw new Error(`npm install etcd3 failed (see ${logFile})`);
}

/** Runs one point with a Node generator: one piscina thread per `threads`, connections split among them. */
export async function runNodeLoad(p: EtcdLoadPoint & { generator: NodeEtcdClient }): Promise<LoadFigures> {
  if (p.concurrency % p.connections !== 0) throw new Error('concurrency must be a multiple of connections');
  const pipeline = p.concurrency / p.connections;
  const perThread = split(p.connections, p.threads);
  const pool = new Piscina({
    filename: new URL('./etcd-load-worker.js', import.meta.url).href,
    minThreads: perThread.length,
    maxThreads: perThread.length,
    idleTimeout: 1000,
  });
  const marks = [
    setTimeout(p.onMeasureStart, p.warmupS * 1000),
    setTimeout(p.onMeasureEnd, (p.warmupS + p.durationS) * 1000),
  ];
  try {
    const results = (await Promise.all(
      perThread.map((connections, i) => {
        const task: EtcdLoadTask = {
          client: p.generator,
          endpoint: p.endpoint,
          connections,
          pipeline,
          valueBytes: p.valueBytes,
          keys: p.keys,
          warmupMs: p.warmupS * 1000,
          durationMs: p.durationS * 1000,
          seed: 1 + i,
          etcd3Dir: ETCD3_CLIENT_DIR,
        };
        return pool.run(task);
      }),
    )) as EtcdLoadResult[];
    const latency = mergeHistograms(results.map((r) => decodeHistogram(r.histogram)));
    const pct = percentiles(latency);
    const errors: Record<string, number> = {};
    for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    const requests = results.reduce((s, r) => s + r.requests, 0);
    return { requestsPerSec: requests / p.durationS, p50Us: pct.p50, p99Us: pct.p99, requests, errors };
  } finally {
    for (const t of marks) clearTimeout(t);
    await pool.destroy();
  }
}

/**
 * Figures from the Go tool's report. Its latency lines read `50% in 0.0050 secs.` in etcd
 * 3.4's tool and `50% in 5.000 ms.` in later ones; both are understood.
 */
export function parseBenchmarkOutput(text: string): LoadFigures & { totalS: number } {
  const t = text.replace(/\r/g, '\n');
  const num = (re: RegExp): RegExpExecArray => {
    const m = re.exec(t);
    if (!m) throw new Error(`etcd benchmark output lacks ${re.source}:\n${t.slice(-800)}`);
    return m;
  };
  const us = (pct: string): number => {
    const m = num(new RegExp(`\\s${pct}% in ([0-9.eE+-]+) (secs|ms)`));
    return Math.round(Number(m[1]) * (m[2] === 'ms' ? 1e3 : 1e6));
  };
  const errors: Record<string, number> = {};
  const dist = /Error distribution:\n([\s\S]*)$/.exec(t)?.[1] ?? '';
  for (const line of dist.split('\n')) {
    const m = /^\[(\d+)\]\s+(.*)/.exec(line.trim());
    if (m) errors[(m[2] as string).slice(0, 60)] = Number(m[1]);
  }
  const totalS = Number(num(/Total:\s+([0-9.eE+-]+)/)[1]);
  const requestsPerSec = Number(num(/Requests\/sec:\s+([0-9.eE+-]+)/)[1]);
  return {
    totalS,
    requestsPerSec,
    p50Us: us('50'),
    p99Us: us('99'),
    requests: Math.round(requestsPerSec * totalS),
    errors,
  };
}

/** Runs the Go tool once for `total` puts; `onSpawn` learns its pid (to stop it, to count its CPU). */
function runBenchmarkOnce(
  p: EtcdLoadPoint,
  total: number,
  onSpawn: (pid: number | undefined) => void,
): Promise<string> {
  const args = [
    '--precise',
    `--endpoints=${p.endpoint}`,
    `--conns=${p.connections}`,
    `--clients=${p.concurrency}`,
    'put',
    '--key-size=8',
    `--key-space-size=${p.keys}`,
    '--sequential-keys=false',
    `--val-size=${p.valueBytes}`,
    `--total=${total}`,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(ETCD_BENCHMARK_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    onSpawn(child.pid);
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGTERM'), (p.durationS * 3 + 20) * 1000);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      onSpawn(undefined);
      if (code === 0) resolve(out);
      else reject(new Error(`etcd benchmark exited (${signal ?? `code ${code}`}): ${out.slice(-400)}`));
    });
  });
}

/**
 * Runs one point with etcd's Go tool. A pilot of max(400, 20 × concurrency) puts measures
 * the rate (and warms up); the timed run then asks for rate × durationS puts. `onSpawn`
 * is told each child's pid, and undefined when it ended.
 */
export async function runBenchmarkLoad(
  p: EtcdLoadPoint,
  onSpawn: (pid: number | undefined) => void,
): Promise<LoadFigures> {
  const pilot = parseBenchmarkOutput(await runBenchmarkOnce(p, Math.max(400, p.concurrency * 20), onSpawn));
  const total = Math.max(p.concurrency, Math.round(pilot.requestsPerSec * p.durationS));
  p.onMeasureStart();
  const out = await runBenchmarkOnce(p, total, onSpawn);
  p.onMeasureEnd();
  const { totalS: _t, ...figures } = parseBenchmarkOutput(out);
  return figures;
}
