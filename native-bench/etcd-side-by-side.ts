/**
 * etcd and raftline side by side, in one run: for each value size and concurrency, put
 * load on a 3-member etcd 3.4 cluster and on a 3-node raftline cluster (both on
 * 127.0.0.1, both fsyncing to the same disk), the same number of requests in flight over
 * the same number of connections and client threads, and print puts/s, p50 and p99 of
 * each and the throughput ratio raftline / etcd. See native-bench/etcd/README.md.
 *
 *   npm run bench:etcd
 *   npx tsc -p . && node dist/native-bench/etcd-side-by-side.js [--seconds 10] [--warmup 2]
 *       [--sizes 16,256] [--concurrency 1,16,256] [--connections 4] [--keys 100000]
 *       [--etcd-load auto|etcd-benchmark|node-http2|node-etcd3] [--json FILE]
 *
 * Exit codes: 0 every point measured, 1 etcd cannot run here or a point failed, 2 usage,
 * 130 interrupted (every process it started is stopped first).
 */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EtcdCluster, EtcdSetupError, ensureEtcd } from './etcd/etcd-cluster.js';
import {
  ETCD_BENCHMARK_BIN,
  type EtcdGenerator,
  haveEtcd3,
  installEtcd3,
  type LoadFigures,
  PEERS_ETCD_DIR,
  runBenchmarkLoad,
  runNodeLoad,
} from './etcd/etcd-load.js';
import {
  type CpuSplit,
  descendantsOf,
  hostNow,
  type ProcSnapshot,
  snapshotProcs,
  splitCpu,
} from './etcd/proc-cpu.js';
import { RaftlineLoad } from './etcd/raftline-load.js';

const HELP = `usage: node dist/native-bench/etcd-side-by-side.js [options]

etcd 3.4 (3 members) and raftline (3 nodes), both on 127.0.0.1 with fsync on, loaded
with puts of the same value size at the same concurrency; prints both and the ratio.

  --seconds S        measured seconds per point and system (default 10)
  --warmup S         seconds of load before measuring (default 2)
  --sizes LIST       value sizes in bytes (default 16,256)
  --concurrency LIST requests in flight in total (default 1,16,256)
  --connections N    at most N connections per system (default 4); each point uses the
                     largest divisor of its concurrency not above N, and as many client
                     threads as connections, up to nproc
  --keys N           key space (default 100000)
  --etcd-load G      etcd's load generator: auto (default: etcd-benchmark if a binary is at
                     ${ETCD_BENCHMARK_BIN}, else node-http2), etcd-benchmark,
                     node-http2 (thin gRPC over node:http2, piscina threads), or
                     node-etcd3 (npm etcd3 over grpc-js, installed into ${PEERS_ETCD_DIR}/client)
  --json FILE        write every row (and the host, versions and settings) as JSON
  -h, --help         this text
`;

const WORK_DIR = path.join(PEERS_ETCD_DIR, 'side-by-side');
const LOG_DIR = path.join(WORK_DIR, 'logs');

function usage(message: string): never {
  process.stderr.write(`etcd-side-by-side: ${message}\n\n${HELP}`);
  process.exit(2);
}

function numberList(name: string, v: string, min: number): number[] {
  const list = v.split(',').map((s) => Number(s.trim()));
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < min)) {
    usage(`--${name}: expected a comma-separated list of whole numbers >= ${min}, got ${v}`);
  }
  return list;
}

function positive(name: string, v: string, allowZero = false): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (!allowZero && n === 0))
    usage(`--${name}: expected a number > 0, got ${v}`);
  return n;
}

function wholePositive(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) usage(`--${name}: expected a whole number > 0, got ${v}`);
  return n;
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        seconds: { type: 'string', default: '10' },
        warmup: { type: 'string', default: '2' },
        sizes: { type: 'string', default: '16,256' },
        concurrency: { type: 'string', default: '1,16,256' },
        connections: { type: 'string', default: '4' },
        keys: { type: 'string', default: '100000' },
        'etcd-load': { type: 'string', default: 'auto' },
        json: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    usage((err as Error).message);
  }
})();
if (values.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const durationS = positive('seconds', values.seconds);
const warmupS = positive('warmup', values.warmup, true);
const sizes = numberList('sizes', values.sizes, 0);
const concurrencies = numberList('concurrency', values.concurrency, 1);
const maxConnections = wholePositive('connections', values.connections);
const keys = wholePositive('keys', values.keys);
const etcdLoadChoice = values['etcd-load'];
if (!['auto', 'etcd-benchmark', 'node-http2', 'node-etcd3'].includes(etcdLoadChoice)) {
  usage(`--etcd-load: expected auto, etcd-benchmark, node-http2 or node-etcd3, got ${etcdLoadChoice}`);
}
const nproc = os.availableParallelism();

/** What each system did at one point. */
interface SystemResult extends Partial<LoadFigures> {
  error?: string;
  cpu?: CpuSplit;
}

/** One row: a value size and a concurrency, both systems. */
interface Row {
  valueBytes: number;
  concurrency: number;
  connections: number;
  pipeline: number;
  threads: number;
  /** Which system ran first at this point (they alternate). */
  first: 'etcd' | 'raftline';
  etcd: SystemResult;
  raftline: SystemResult;
  /** raftline requests/s ÷ etcd puts/s. */
  ratio: number | null;
}

const t0 = performance.now();
const say = (line: string): void => {
  process.stderr.write(`[${Math.round((performance.now() - t0) / 1000)}s] ${line}\n`);
};

// ---------- clean-up: every process started here is stopped by pid, also on error and signals ----------

let etcd: EtcdCluster | null = null;
const raftline = new RaftlineLoad();
let benchmarkPid: number | undefined;
let stopping = false;

async function cleanUp(): Promise<void> {
  if (benchmarkPid !== undefined) {
    try {
      process.kill(benchmarkPid, 'SIGTERM');
    } catch {
      // ended meanwhile
    }
  }
  await Promise.all([etcd?.stop(), raftline.abort()]);
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) return;
    stopping = true;
    say(`${sig}: stopping etcd and raftline...`);
    void cleanUp().finally(() => process.exit(130));
  });
}
process.on('exit', () => {
  etcd?.killNow();
  raftline.killNow();
});

// ---------- setup ----------

const hostStart = hostNow();
const startedAt = new Date().toISOString();
// This run's logs only (etcd members append across the restarts of one run).
fs.rmSync(LOG_DIR, { recursive: true, force: true });
fs.mkdirSync(LOG_DIR, { recursive: true });
let etcdBin: string;
let etcdVersion: string;
try {
  ({ bin: etcdBin, version: etcdVersion } = ensureEtcd(say));
} catch (err) {
  process.stderr.write(`etcd-side-by-side: cannot run etcd here: ${(err as Error).message}\n`);
  process.exit(1);
}
if (!etcdVersion.startsWith('3.4.')) say(`note: etcd ${etcdVersion}, not the 3.4 that etcd.sh measures`);

let etcdGenerator: EtcdGenerator;
if (etcdLoadChoice === 'auto') {
  etcdGenerator = isExecutable(ETCD_BENCHMARK_BIN) ? 'etcd-benchmark' : 'node-http2';
} else {
  etcdGenerator = etcdLoadChoice as EtcdGenerator;
}
if (etcdGenerator === 'etcd-benchmark' && !isExecutable(ETCD_BENCHMARK_BIN)) {
  process.stderr.write(
    `etcd-side-by-side: --etcd-load etcd-benchmark, but there is no ${ETCD_BENCHMARK_BIN}\n`,
  );
  process.exit(1);
}
if (etcdGenerator === 'node-etcd3' && !haveEtcd3()) {
  say(`npm install etcd3 into ${PEERS_ETCD_DIR}/client`);
  try {
    await installEtcd3(path.join(LOG_DIR, 'npm.log'));
  } catch (err) {
    process.stderr.write(`etcd-side-by-side: ${(err as Error).message}\n`);
    process.exit(1);
  }
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The largest divisor of `n` not above `max`: connections that all carry the same pipeline. */
function connectionsFor(n: number, max: number): number {
  for (let c = Math.min(n, max); c > 1; c--) if (n % c === 0) return c;
  return 1;
}

const GENERATOR_TEXT: Record<EtcdGenerator, string> = {
  'etcd-benchmark': `etcd's own Go benchmark tool (${ETCD_BENCHMARK_BIN}), --conns = connections, --clients = concurrency`,
  'node-http2':
    'node-http2: a thin gRPC KV.Put client over node:http2 (native-bench/etcd/grpc-put.ts) in piscina threads',
  'node-etcd3': 'node-etcd3: the npm etcd3 client (grpc-js) in piscina threads, as peers/etcd.sh uses it',
};
const RAFTLINE_GENERATOR =
  'raftline bench: RaftClient over TCP in piscina threads, against the 3-node cluster it starts (fsync on)';

process.stdout.write(
  [
    `etcd and raftline side by side, ${startedAt}`,
    `  host at start: ${hostStart.text}; node ${process.version}`,
    `  etcd ${etcdVersion} (${etcdBin}), 3 members on 127.0.0.1:23791-3, data on ${WORK_DIR}/data (fsync on)`,
    `  etcd load:     ${GENERATOR_TEXT[etcdGenerator]}`,
    `  raftline load: ${RAFTLINE_GENERATOR}`,
    `  ${durationS} s measured after ${warmupS} s warm-up per point and system; closed loop; ${keys} keys; logs in ${LOG_DIR}`,
    '',
  ].join('\n'),
);
if (etcdLoadChoice === 'auto' && etcdGenerator !== 'etcd-benchmark') {
  say(`etcd's benchmark tool: no binary at ${ETCD_BENCHMARK_BIN}; using ${etcdGenerator}`);
}

// ---------- the points ----------

/** Snapshots around a measured interval, and what to make of them. */
function cpuRecorder(): {
  start: () => void;
  end: () => void;
  /** The split; `serverBelow` names the server processes as all those below that pid. */
  split: (server: Set<number> | { serverBelow: number }, client: Set<number>) => CpuSplit | undefined;
} {
  let a: ProcSnapshot | null = null;
  let b: ProcSnapshot | null = null;
  return {
    start: () => {
      a = snapshotProcs();
    },
    end: () => {
      b = snapshotProcs();
    },
    split: (server, client) => {
      if (!a || !b) return undefined;
      const ours = new Set([...descendantsOf(process.pid, a), ...descendantsOf(process.pid, b)]);
      ours.add(process.pid);
      const serverPids =
        server instanceof Set
          ? server
          : new Set([...descendantsOf(server.serverBelow, a), ...descendantsOf(server.serverBelow, b)]);
      return splitCpu(a, b, serverPids, client, (pid) => ours.has(pid));
    },
  };
}

async function runEtcd(row: Row, index: number): Promise<SystemResult> {
  const cpu = cpuRecorder();
  let clientPid: number | undefined;
  try {
    etcd = await EtcdCluster.start({
      bin: etcdBin,
      dataRoot: path.join(WORK_DIR, 'data'),
      logDir: LOG_DIR,
      token: `side-by-side-${process.pid}-${index}`,
      onSpawned: (c) => {
        etcd = c;
      },
    });
    const endpoint = await etcd.leaderEndpoint();
    const point = {
      endpoint,
      concurrency: row.concurrency,
      connections: row.connections,
      threads: row.threads,
      valueBytes: row.valueBytes,
      keys,
      warmupS,
      durationS,
      onMeasureStart: cpu.start,
      onMeasureEnd: cpu.end,
    };
    let figures: LoadFigures;
    if (etcdGenerator === 'etcd-benchmark') {
      figures = await runBenchmarkLoad({ ...point, generator: etcdGenerator }, (pid) => {
        benchmarkPid = pid;
        if (pid !== undefined) clientPid = pid;
      });
    } else {
      clientPid = process.pid;
      figures = await runNodeLoad({ ...point, generator: etcdGenerator });
    }
    const split = cpu.split(new Set(etcd.pids), new Set(clientPid === undefined ? [] : [clientPid]));
    return { ...figures, ...(split ? { cpu: split } : {}) };
  } catch (err) {
    if (err instanceof EtcdSetupError) throw err;
    return { error: (err as Error).message };
  } finally {
    // Left set until stopped, so that a signal meanwhile waits for the same stop.
    await etcd?.stop();
    etcd = null;
  }
}

async function runRaftline(row: Row): Promise<SystemResult> {
  const cpu = cpuRecorder();
  let benchPid = 0;
  const mark = (f: () => void) => (pid: number) => {
    benchPid = pid;
    f();
  };
  try {
    const figures = await raftline.run({
      concurrency: row.concurrency,
      connections: row.connections,
      threads: row.threads,
      valueBytes: row.valueBytes,
      keys,
      warmupS,
      durationS,
      jsonFile: path.join(LOG_DIR, `raftline-${row.valueBytes}B-c${row.concurrency}.json`),
      logFile: path.join(LOG_DIR, `raftline-${row.valueBytes}B-c${row.concurrency}.log`),
      tmpDir: path.join(WORK_DIR, 'raftline-tmp'),
      onMeasureStart: mark(cpu.start),
      onMeasureEnd: mark(cpu.end),
    });
    // The nodes are the bench's children: gone by now, but in the snapshots.
    const split = cpu.split({ serverBelow: benchPid }, new Set([benchPid]));
    return { ...figures, ...(split ? { cpu: split } : {}) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

const rows: Row[] = [];
let index = 0;
try {
  for (const valueBytes of sizes) {
    for (const concurrency of concurrencies) {
      if (stopping) break;
      const connections = connectionsFor(concurrency, maxConnections);
      const row: Row = {
        valueBytes,
        concurrency,
        connections,
        pipeline: concurrency / connections,
        threads: Math.min(connections, nproc),
        first: index % 2 === 0 ? 'etcd' : 'raftline',
        etcd: {},
        raftline: {},
        ratio: null,
      };
      const label = `${valueBytes} B × ${concurrency} (${connections} conn × ${row.pipeline}, ${row.threads} threads)`;
      const order: ('etcd' | 'raftline')[] =
        row.first === 'etcd' ? ['etcd', 'raftline'] : ['raftline', 'etcd'];
      for (const system of order) {
        if (stopping) break;
        say(`${label}: ${system}...`);
        const r = system === 'etcd' ? await runEtcd(row, index) : await runRaftline(row);
        row[system] = r;
        say(
          `${label}: ${system} ${
            r.error
              ? `FAILED: ${r.error}`
              : `${fmtRate(r.requestsPerSec)}/s, p50 ${ms(r.p50Us)} ms, p99 ${ms(r.p99Us)} ms`
          }`,
        );
      }
      const e = row.etcd.requestsPerSec;
      const f = row.raftline.requestsPerSec;
      row.ratio = e && f !== undefined ? Math.round((f / e) * 100) / 100 : null;
      rows.push(row);
      index++;
    }
  }
} catch (err) {
  if (!stopping) {
    process.stderr.write(
      `etcd-side-by-side: ${err instanceof EtcdSetupError ? 'cannot run etcd here: ' : ''}${(err as Error).message}\n`,
    );
    await cleanUp();
    process.exit(1);
  }
}
if (stopping) await new Promise(() => {}); // the signal handler exits once all is stopped

// ---------- the table ----------

function fmtRate(n: number | undefined): string {
  return n === undefined ? '-' : Math.round(n).toLocaleString('en-US');
}
function ms(us: number | undefined): string {
  if (us === undefined) return '-';
  const v = us / 1000;
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}
function cores(c: number | undefined): string {
  return c === undefined ? '-' : c.toFixed(2);
}

const hostEnd = hostNow();
const header = [
  'value B',
  'conc',
  'conn×pipe',
  'thr',
  'etcd puts/s',
  'p50 ms',
  'p99 ms',
  'raftline req/s',
  'p50 ms',
  'p99 ms',
  'ratio',
];
const table = rows.map((r) => [
  String(r.valueBytes),
  String(r.concurrency),
  `${r.connections}×${r.pipeline}`,
  String(r.threads),
  fmtRate(r.etcd.requestsPerSec),
  ms(r.etcd.p50Us),
  ms(r.etcd.p99Us),
  fmtRate(r.raftline.requestsPerSec),
  ms(r.raftline.p50Us),
  ms(r.raftline.p99Us),
  r.ratio === null ? '-' : `${r.ratio.toFixed(2)}×`,
]);
const cpuHeader = [
  'value B',
  'conc',
  'first',
  'etcd srv',
  'etcd cli',
  'other',
  'raftline srv',
  'raftline cli',
  'other',
];
const cpuTable = rows.map((r) => [
  String(r.valueBytes),
  String(r.concurrency),
  r.first,
  cores(r.etcd.cpu?.serverCores),
  cores(r.etcd.cpu?.clientCores),
  cores(r.etcd.cpu?.otherCores),
  cores(r.raftline.cpu?.serverCores),
  cores(r.raftline.cpu?.clientCores),
  cores(r.raftline.cpu?.otherCores),
]);

function render(head: string[], body: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => (r[i] as string).length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i] as number)).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

const notes: string[] = [];
for (const r of rows) {
  for (const system of ['etcd', 'raftline'] as const) {
    const s = r[system];
    const label = `${r.valueBytes} B × ${r.concurrency}, ${system}`;
    if (s.error) notes.push(`${label}: FAILED: ${s.error}`);
    const errs = Object.entries(s.errors ?? {}).filter(([, n]) => n > 0);
    if (errs.length > 0) notes.push(`${label}: errors ${errs.map(([k, n]) => `${k} ${n}`).join(', ')}`);
    if (s.cpu && s.cpu.otherCores > 0.1)
      notes.push(`${label}: other load ${s.cpu.otherCores} cores (${s.cpu.otherTop})`);
  }
}

process.stdout.write(
  [
    '',
    render(header, table),
    '',
    'CPU cores used while measuring (srv: etcd members / raftline nodes; cli: the load generator;',
    `other: processes this run did not start, the shared machine's load; ${nproc} cores in all):`,
    render(cpuHeader, cpuTable),
    '',
    ...(notes.length > 0 ? ['notes:', ...notes.map((n) => `  ${n}`), ''] : []),
    `host at start: ${hostStart.text}`,
    `host at end:   ${hostEnd.text}`,
    `etcd load: ${etcdGenerator}; raftline load: raftline bench. ratio = raftline req/s ÷ etcd puts/s.`,
    '',
  ].join('\n'),
);

if (values.json) {
  const report = {
    startedAt,
    host: {
      nproc,
      loadAverageStart: hostStart.loadAverage,
      loadAverageEnd: hostEnd.loadAverage,
      node: process.version,
      platform: `${os.type()} ${os.release()}`,
    },
    etcd: {
      version: etcdVersion,
      bin: etcdBin,
      generator: etcdGenerator,
      generatorText: GENERATOR_TEXT[etcdGenerator],
    },
    raftline: { generator: 'raftline bench', generatorText: RAFTLINE_GENERATOR },
    settings: { durationS, warmupS, sizes, concurrencies, maxConnections, keys, fsync: true },
    rows,
  };
  fs.writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
  say(`rows written to ${values.json}`);
}
process.exitCode = rows.some((r) => r.etcd.error || r.raftline.error) ? 1 : 0;
