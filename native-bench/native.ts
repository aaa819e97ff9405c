/**
 * Physical limits of this machine beside raftline's own parts, in one run, as ratios
 * (issue 6). Small C programs (native-bench/c/, built at run time with the machine's `cc`)
 * measure what the hardware and kernel allow; the same quantities are then measured
 * through raftline's code, and each pair is printed with raftline / native.
 *
 *   npm run bench:native                  # builds (npm run build), then runs the default (~1.5 min)
 *   npx tsc -p . && node dist/native-bench/native.js [--seconds 3] [--quick] [--json FILE]
 *       [--only disk,ring,tcp,cpu]
 *
 *   --seconds S   time per measured case (default 3); CPU cases get S/8 each, plus as long
 *                 again for warm-up
 *   --quick       0.25 s per case, 8 MiB preallocated files and segments: every figure,
 *                 none to trust (the smoke test, test/native-bench/native-smoke.test.ts)
 *   --json FILE   also write every row, the machine's state and the checks as JSON
 *   --only LIST   run only these sections
 *   CC=...        the compiler (default `cc`); without one, the native column says so and
 *                 the raftline rows still run
 *
 * Rows (each compares like with like; ratio = raftline / native):
 *
 * [disk] in a temporary directory on the repository's filesystem (os.tmpdir() if it is the
 *   same device, else dist/native-bench-work/; the header says which):
 *   - group commit, N entries per fdatasync: SegmentLog.append of N 128-byte records
 *     (96 B payloads) + sync() + the log-writer's 1 MiB spare zero-fill step, against
 *     C pwrite of the same bytes + fdatasync into a preallocated file; N = 1 (128 B,
 *     commits/s), 32 (4 KiB), 512 (64 KiB), 8192 (1 MiB) (MB/s durable);
 *     raftline-only: entries/s made durable at each N;
 *   - native-only: the same appends into a growing file (what preallocation avoids).
 * [ring] src/shared/ring.ts between two worker threads (ring-bench.js, publish every 64
 *   frames, raw drain, 1 MiB) against a C11-atomics ring of the same framing between two
 *   pthreads (c/ring.c): 64 B messages (msgs/s) and 4 KiB messages (MB/s).
 * [tcp] loopback, the far end in a second process:
 *   - replicator stream: AppendEntries (head + records copied from a SharedArrayBuffer
 *     window, as the replicator worker does) through a PeerLink, into a C sink that
 *     discards (64 × 1 KiB and 256 × 16 B entries per message) or into a PeerServer that
 *     decodes and verifies every entry as a follower does (64 × 1 KiB), against C writing
 *     64 KiB chunks to a C reader (MB/s); raftline-only: entries/s;
 *   - heartbeat round trip: MsgHeartbeat (65-byte frame) out on a PeerLink, decoded by the
 *     other process's PeerServer, MsgHeartbeatResp back on its PeerLink to ours, against a
 *     C 64-byte ping-pong on one connection (round trips/s, and µs per round trip).
 * [crc32c] over many 64 B / 4 KiB / 64 KiB buffers (MB/s): the JS table loop against the
 *   same loop in C; @node-rs/crc32 (the SIMD package) and crc32c() (raftline's pick by
 *   size) against the C loop over the CPU's CRC32C instruction. Comparing the first two
 *   raftline figures weighs the package against the table loop.
 * [entry] encodeEntry / decodeEntryAt (both CRCs verified) with 16 B and 4 KiB payloads,
 *   against the same record layout in C (entries/s).
 *
 * The machine's state (load average, nproc, CPU busy by others during the run) is
 * printed at the start and the end: this machine is shared, so read the ratios with it.
 * Exit status 1 if a figure that should exist could not be measured (a missing compiler
 * is not a failure: its rows say so).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type Built,
  buildPrograms,
  type Compiler,
  findCompiler,
  numberAt,
  runJsonLines,
} from './native-c.js';
import {
  type CpuFigures,
  CRC_SIZES,
  crcCheck,
  ENTRY_PAYLOADS,
  entryCheckHex,
  measureCpu,
} from './native-cpu.js';
import { measureGroupCommit } from './native-disk.js';
import { measureHeartbeatRoundTrip, measureReplicatorStream, type SinkKind } from './native-net.js';
import { formatFigure, formatTable, type Row, ratioOf, type Side } from './native-table.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RING_BENCH = fileURLToPath(new URL('./ring-bench.js', import.meta.url));
const SECTIONS = ['disk', 'ring', 'tcp', 'cpu'] as const;
type Section = (typeof SECTIONS)[number];

/** Payload of the disk rows' entries: 96 B, so a record is 128 B and 32 of them fill 4 KiB. */
const DISK_PAYLOAD_BYTES = 96;
const DISK_BATCHES = [1, 32, 512, 8192] as const;
const GROW_SIZES = [4096, 65536, 1048576] as const;
const RING_SIZES = [64, 4096] as const;
const RING_BATCH_FRAMES = 64;
const RING_CAPACITY_BYTES = 1 << 20;
const TCP_WRITE_BYTES = 65536;
const PING_BYTES = 64;

const USAGE = `usage: node dist/native-bench/native.js [--seconds S] [--quick] [--json FILE] [--only disk,ring,tcp,cpu]`;

// ------------------------------------------------------------------ machine state

interface MachineState {
  readonly at: string;
  readonly loadAverage: readonly number[];
  readonly nproc: number;
  /** Per-CPU time counters, summed, ms. */
  readonly cpuBusyMs: number;
  readonly cpuTotalMs: number;
  /** CPU seconds of this process and its waited-for children (/proc/self/stat), or null off Linux. */
  readonly ownCpuSeconds: number | null;
}

function machineState(): MachineState {
  let busy = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    const t = cpu.times;
    busy += t.user + t.nice + t.sys + t.irq;
    total += t.user + t.nice + t.sys + t.irq + t.idle;
  }
  return {
    at: new Date().toISOString(),
    loadAverage: os.loadavg().map((x) => +x.toFixed(2)),
    nproc: os.availableParallelism(),
    cpuBusyMs: busy,
    cpuTotalMs: total,
    ownCpuSeconds: ownCpuSeconds(),
  };
}

/** utime + stime + cutime + cstime of this process (Linux clock ticks are 1/100 s: USER_HZ). */
function ownCpuSeconds(): number | null {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime is field 14 of the whole line, i.e. index 11 after "pid (comm) ".
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
    return Number.isFinite(ticks) ? ticks / 100 : null;
  } catch {
    return null;
  }
}

function describeState(label: string, s: MachineState): string {
  return `${label}: ${s.at}, load average ${s.loadAverage.join(' ')} (1/5/15 min), nproc ${s.nproc}`;
}

/** CPU use during the run, in cores: all of the host, and what this run (with its children) used. */
function describeUse(start: MachineState, end: MachineState): { text: string; json: object } {
  const wallSeconds = (Date.parse(end.at) - Date.parse(start.at)) / 1000;
  const totalMs = end.cpuTotalMs - start.cpuTotalMs;
  const hostCores = totalMs > 0 ? ((end.cpuBusyMs - start.cpuBusyMs) / totalMs) * end.nproc : 0;
  const ownCores =
    start.ownCpuSeconds !== null && end.ownCpuSeconds !== null && wallSeconds > 0
      ? (end.ownCpuSeconds - start.ownCpuSeconds) / wallSeconds
      : null;
  const others = ownCores === null ? null : Math.max(0, hostCores - ownCores);
  const text =
    `during the run (${wallSeconds.toFixed(0)} s): host CPU busy ${hostCores.toFixed(2)} of ${end.nproc} cores` +
    (ownCores === null
      ? ''
      : `; this run and its children ${ownCores.toFixed(2)}; other processes ${(others as number).toFixed(2)}`);
  return { text, json: { wallSeconds, hostCores, ownCores, otherCores: others } };
}

// ------------------------------------------------------------------ where the disk rows write

interface WorkDir {
  readonly dir: string;
  readonly note: string;
}

/** A fresh directory on the repository's filesystem: os.tmpdir() if it is the same device, else under dist/. */
function chooseWorkDir(): WorkDir {
  const tmp = os.tmpdir();
  const sameDevice = fs.statSync(tmp).dev === fs.statSync(REPO_ROOT).dev;
  const parent = sameDevice ? tmp : path.join(REPO_ROOT, 'dist', 'native-bench-work');
  fs.mkdirSync(parent, { recursive: true });
  const dir = fs.mkdtempSync(path.join(parent, 'raftline-native-'));
  const fsType = filesystemType(dir);
  const note = sameDevice
    ? `${dir} (os.tmpdir(), the same filesystem as the repository; ${fsType})`
    : `${dir} (os.tmpdir() is another filesystem than the repository, so under its ignored dist/; ${fsType})`;
  return { dir, note };
}

function filesystemType(dir: string): string {
  const names: Record<number, string> = {
    61267: 'ext2/3/4',
    1481003842: 'xfs',
    2435016766: 'btrfs',
    16914836: 'tmpfs: fdatasync does not reach a disk here',
    2035054128: 'overlayfs',
    801189825: 'zfs',
  };
  try {
    const type = fs.statfsSync(dir).type;
    return names[type] ?? `filesystem type 0x${type.toString(16)}`;
  } catch {
    return 'filesystem type unknown';
  }
}

// ------------------------------------------------------------------ helpers

/** Runs `measure`; its side, or the error as the reason the figure is missing. */
async function side<T>(measure: () => T | Promise<T>, toSide: (figures: T) => Side): Promise<Side> {
  try {
    return toSide(await measure());
  } catch (error) {
    return { value: null, missing: (error as Error).message.split('\n')[0] as string };
  }
}

const f = formatFigure;
const sizeName = (bytes: number): string =>
  bytes >= 1 << 20 ? `${bytes / (1 << 20)} MiB` : bytes >= 1024 ? `${bytes / 1024} KiB` : `${bytes} B`;

interface Context {
  readonly seconds: number;
  readonly cpuBudgetMs: number;
  /** Preallocated file / segment size of the disk rows: 64 MiB, less with --quick. */
  readonly preallocBytes: number;
  readonly workDir: string;
  readonly compiler: Compiler;
  readonly built: Built | null;
  readonly checks: Record<string, unknown>;
}

/** A native side: the program's path, or the side explaining why there is none. */
function program(ctx: Context, name: keyof Built): string | Side {
  if ('missing' in ctx.compiler) return { value: null, missing: ctx.compiler.missing };
  const b = ctx.built?.[name];
  if (b === undefined) return { value: null, missing: 'not built' };
  if ('error' in b) return { value: null, missing: `build of ${name}.c failed: ${b.error}` };
  return b.path;
}

async function nativeSide(
  ctx: Context,
  name: keyof Built,
  args: readonly string[],
  toSide: (lines: Record<string, unknown>[]) => Side,
): Promise<Side> {
  const p = program(ctx, name);
  if (typeof p !== 'string') return p;
  return side(() => runJsonLines(p, args, 120_000 + ctx.seconds * 20_000), toSide);
}

// ------------------------------------------------------------------ sections

async function diskRows(ctx: Context): Promise<Row[]> {
  const rows: Row[] = [];
  const secs = String(ctx.seconds);
  for (const batch of DISK_BATCHES) {
    const bytes = batch * (32 + DISK_PAYLOAD_BYTES);
    const single = batch === 1;
    const prealloc = [ctx.workDir, 'prealloc', String(bytes), secs, String(ctx.preallocBytes)];
    const native = await nativeSide(ctx, 'fsync', prealloc, ([r]) => ({
      value: single ? numberAt(r, 'syncs_per_s') : numberAt(r, 'MB_per_s'),
      detail:
        `C pwrite ${sizeName(bytes)} + fdatasync, preallocated file: ${f(numberAt(r, 'syncs_per_s'))} syncs/s, ` +
        `${f(numberAt(r, 'MB_per_s'))} MB/s, p50 ${f(numberAt(r, 'p50_us'))} µs, p99 ${f(numberAt(r, 'p99_us'))} µs`,
    }));
    let entriesPerSec: number | null = null;
    const raftline = await side(
      () => measureGroupCommit(ctx.workDir, batch, DISK_PAYLOAD_BYTES, ctx.seconds, ctx.preallocBytes),
      (g) => {
        entriesPerSec = g.entriesPerSec;
        return {
          value: single ? g.commitsPerSec : g.mbPerSec,
          detail:
            `SegmentLog append ${batch} × 128 B + sync + spare step: ${f(g.commitsPerSec)} commits/s, ` +
            `${f(g.mbPerSec)} MB/s, ${f(g.entriesPerSec)} entries/s, p50 ${f(g.p50CommitUs)} µs per commit, ` +
            `${(g.spareShare * 100).toFixed(0)}% of the time zero-filling the spare segment`,
        };
      },
    );
    rows.push({
      id: `disk.commit.${batch}`,
      section: 'disk',
      label: `group commit, ${batch} × 128 B = ${sizeName(bytes)}/fdatasync`,
      unit: single ? 'commits/s' : 'MB/s',
      raftline,
      native,
    });
    rows.push({
      id: `disk.entries.${batch}`,
      section: 'disk',
      label: `  entries made durable, ${batch} per commit`,
      unit: 'entries/s',
      raftline:
        entriesPerSec === null
          ? { value: null, missing: raftline.missing ?? 'not measured' }
          : { value: entriesPerSec },
    });
  }
  for (const bytes of GROW_SIZES) {
    rows.push({
      id: `disk.grow.${bytes}`,
      section: 'disk',
      label: `fdatasync, ${sizeName(bytes)} appends, growing file`,
      unit: 'MB/s',
      native: await nativeSide(
        ctx,
        'fsync',
        [ctx.workDir, 'grow', String(bytes), String(ctx.seconds)],
        ([r]) => ({
          value: numberAt(r, 'MB_per_s'),
          detail:
            `C write past the end + fdatasync: ${f(numberAt(r, 'syncs_per_s'))} syncs/s, ` +
            `p50 ${f(numberAt(r, 'p50_us'))} µs, p99 ${f(numberAt(r, 'p99_us'))} µs`,
        }),
      ),
    });
  }
  return rows;
}

async function ringRows(ctx: Context): Promise<Row[]> {
  const rows: Row[] = [];
  for (const size of RING_SIZES) {
    const small = size < 1024;
    const args = [String(size), String(ctx.seconds), String(RING_BATCH_FRAMES), String(RING_CAPACITY_BYTES)];
    const native = await nativeSide(ctx, 'ring', args, ([r]) => ({
      value: small ? numberAt(r, 'msgs_per_s') : numberAt(r, 'MB_per_s'),
      detail: `C11 atomics, 2 pthreads: ${f(numberAt(r, 'msgs_per_s'))} msgs/s, ${f(numberAt(r, 'MB_per_s'))} MB/s`,
    }));
    const raftline = await side(
      () =>
        runJsonLines(
          process.execPath,
          [
            RING_BENCH,
            '--secs',
            String(ctx.seconds),
            '--size',
            String(size),
            '--batch',
            String(RING_BATCH_FRAMES),
            '--capacity',
            String(RING_CAPACITY_BYTES),
            '--read',
            'raw',
          ],
          60_000 + ctx.seconds * 10_000,
        ),
      (lines) => {
        const r = lines.at(-1);
        if (numberAt(r, 'errors') !== 0)
          throw new Error(`ring-bench saw ${numberAt(r, 'errors')} sequence errors`);
        return {
          value: small ? numberAt(r, 'msgs_per_s') : numberAt(r, 'MB_per_s'),
          detail:
            `ring.ts, 2 worker threads: ${f(numberAt(r, 'msgs_per_s'))} msgs/s, ${f(numberAt(r, 'MB_per_s'))} MB/s, ` +
            `${numberAt(r, 'process_cpu_cores')} cores busy, ${r?.wakeups_per_frame} wake-ups/frame`,
        };
      },
    );
    rows.push({
      id: `ring.${size}`,
      section: 'ring',
      label: `SPSC ring, ${sizeName(size)} messages, 2 threads`,
      unit: small ? 'msgs/s' : 'MB/s',
      raftline,
      native,
    });
  }
  return rows;
}

async function tcpRows(ctx: Context): Promise<Row[]> {
  const rows: Row[] = [];
  const native = await nativeSide(
    ctx,
    'tcp',
    ['stream', String(ctx.seconds), String(TCP_WRITE_BYTES)],
    ([r]) => ({
      value: numberAt(r, 'MB_per_s'),
      detail: `C ${sizeName(TCP_WRITE_BYTES)} writes → C reader, two processes`,
    }),
  );
  const tcp = program(ctx, 'tcp');
  const discard: SinkKind =
    typeof tcp === 'string' ? { kind: 'c', tcpProgram: tcp } : { kind: 'node-discard' };
  const discardName = discard.kind === 'c' ? 'C sink' : 'Node sink';
  const streams: { id: string; sink: SinkKind; sinkName: string; entries: number; payload: number }[] = [
    { id: 'stream.1k', sink: discard, sinkName: discardName, entries: 64, payload: 1024 },
    { id: 'stream.16', sink: discard, sinkName: discardName, entries: 256, payload: 16 },
    { id: 'follower.1k', sink: { kind: 'peer-server' }, sinkName: 'PeerServer', entries: 64, payload: 1024 },
  ];
  for (const s of streams) {
    let entriesPerSec: number | null = null;
    const raftline = await side(
      () => measureReplicatorStream(s.sink, s.entries, s.payload, ctx.seconds),
      (g) => {
        entriesPerSec = g.entriesPerSec;
        return {
          value: g.mbPerSec,
          detail: `OutBuffer copy + PeerLink.send of ${g.frameBytes} B frames → ${
            s.sink.kind === 'peer-server'
              ? 'PeerServer decoding and verifying each entry'
              : s.sink.kind === 'c'
                ? 'C sink discarding'
                : 'Node sink discarding (no C compiler)'
          }: ${f(g.messagesPerSec)} AppendEntries/s`,
        };
      },
    );
    rows.push({
      id: `tcp.${s.id}`,
      section: 'tcp',
      label: `AppendEntries ${s.entries} × ${sizeName(s.payload)} → ${s.sinkName}`,
      unit: 'MB/s',
      raftline,
      native,
    });
    rows.push({
      id: `tcp.${s.id}.entries`,
      section: 'tcp',
      label: `  entries streamed, ${s.entries} × ${sizeName(s.payload)} → ${s.sinkName}`,
      unit: 'entries/s',
      raftline:
        entriesPerSec === null
          ? { value: null, missing: raftline.missing ?? 'not measured' }
          : { value: entriesPerSec },
    });
  }
  let nativeUs: Side = { value: null, missing: 'not measured' };
  const nativeRt = await nativeSide(
    ctx,
    'tcp',
    ['pingpong', String(ctx.seconds), String(PING_BYTES)],
    ([r]) => {
      const detail = `C ${PING_BYTES} B ping-pong, one connection, TCP_NODELAY: p50 ${f(numberAt(r, 'p50_us'))} µs, p99 ${f(numberAt(r, 'p99_us'))} µs`;
      nativeUs = { value: numberAt(r, 'mean_us'), detail };
      return { value: numberAt(r, 'rt_per_s'), detail };
    },
  );
  if (nativeRt.value === null) nativeUs = nativeRt;
  let raftlineUs: Side = { value: null, missing: 'not measured' };
  const raftlineRt = await side(
    () => measureHeartbeatRoundTrip(ctx.seconds),
    (g) => {
      const detail = `MsgHeartbeat (${g.frameBytes} B) PeerLink → PeerServer, MsgHeartbeatResp back the same way: p50 ${f(g.p50Us)} µs, p99 ${f(g.p99Us)} µs`;
      raftlineUs = { value: g.meanUs, detail };
      return { value: g.roundTripsPerSec, detail };
    },
  );
  if (raftlineRt.value === null) raftlineUs = raftlineRt;
  rows.push({
    id: 'tcp.rtt',
    section: 'tcp',
    label: `~${PING_BYTES} B request/response round trips`,
    unit: 'round trips/s',
    raftline: raftlineRt,
    native: nativeRt,
  });
  rows.push({
    id: 'tcp.rtt.us',
    section: 'tcp',
    label: '  time per round trip (mean)',
    unit: 'µs',
    lowerIsBetter: true,
    raftline: { ...raftlineUs, detail: '' },
    native: { ...nativeUs, detail: '' },
  });
  return rows;
}

async function cpuRows(ctx: Context): Promise<Row[]> {
  const nativeLines: Side | Record<string, unknown>[] = await (async () => {
    const p = program(ctx, 'cpu');
    if (typeof p !== 'string') return p;
    try {
      return await runJsonLines(p, [String(ctx.cpuBudgetMs / 1000)], 300_000);
    } catch (error) {
      return { value: null, missing: (error as Error).message.split('\n')[0] as string };
    }
  })();
  const nativeCase = (name: string, size: number, toSide: (r: Record<string, unknown>) => Side): Side => {
    if (!Array.isArray(nativeLines)) return nativeLines;
    const r = nativeLines.find((line) => line.case === name && line.size_bytes === size);
    if (r === undefined) {
      return {
        value: null,
        missing: name === 'crc-hw' ? 'the CPU has no CRC32C instruction' : `cpu.c printed no ${name} ${size}`,
      };
    }
    try {
      return toSide(r);
    } catch (error) {
      return { value: null, missing: (error as Error).message };
    }
  };
  if (Array.isArray(nativeLines)) {
    const crc = nativeLines.find((line) => line.check === 'crc');
    const entry = nativeLines.find((line) => line.check === 'entry');
    ctx.checks.cCrc = crc;
    ctx.checks.cEntryMatchesJs = entry?.hex === entryCheckHex();
  }
  ctx.checks.jsCrc = crcCheck();

  let cpu: CpuFigures | null = null;
  let cpuError = '';
  try {
    cpu = measureCpu(ctx.cpuBudgetMs);
  } catch (error) {
    cpuError = (error as Error).message;
  }
  const rows: Row[] = [];
  const mb = (r: Record<string, unknown>): number => numberAt(r, 'MB_per_s');
  for (const size of CRC_SIZES) {
    const js = (impl: 'table' | 'node-rs' | 'crc32c'): number | null =>
      cpu?.crc.find((c) => c.impl === impl && c.sizeBytes === size)?.rate.mbPerSec ?? null;
    const jsSide = (impl: 'table' | 'node-rs' | 'crc32c', detail: string): Side => {
      const v = js(impl);
      return v === null ? { value: null, missing: cpuError || 'not measured' } : { value: v, detail };
    };
    const table = js('table');
    const nodeRs = js('node-rs');
    const hw = (r: Record<string, unknown>): Side => ({
      value: mb(r),
      detail: `C loop over the CPU's CRC32C instruction, 8 bytes a step: ${f(numberAt(r, 'ns_per_op'))} ns per buffer`,
    });
    rows.push({
      id: `crc32c.table.${size}`,
      section: 'crc32c',
      label: `table loop, ${sizeName(size)} buffers (JS vs C)`,
      unit: 'MB/s',
      raftline: jsSide('table', 'crc32cTable, byte at a time'),
      native: nativeCase('crc-table', size, (r) => ({ value: mb(r), detail: 'the same table loop in C' })),
    });
    rows.push({
      id: `crc32c.node-rs.${size}`,
      section: 'crc32c',
      label: `@node-rs/crc32, ${sizeName(size)} buffers`,
      unit: 'MB/s',
      raftline: jsSide(
        'node-rs',
        table !== null && nodeRs !== null
          ? `the SIMD package through N-API: ${formatRatioWords(nodeRs / table)} the JS table loop`
          : '',
      ),
      native: nativeCase('crc-hw', size, hw),
    });
    rows.push({
      id: `crc32c.crc32c.${size}`,
      section: 'crc32c',
      label: `crc32c() (raftline's pick), ${sizeName(size)}`,
      unit: 'MB/s',
      raftline: jsSide('crc32c', 'table loop below 64 B, @node-rs/crc32 from 64 B (src/shared/crc32c.ts)'),
      native: nativeCase('crc-hw', size, hw),
    });
  }
  for (const payload of ENTRY_PAYLOADS) {
    for (const op of ['encode', 'decode'] as const) {
      const rate = cpu?.entry.find((e) => e.op === op && e.payloadBytes === payload)?.rate;
      rows.push({
        id: `entry.${op}.${payload}`,
        section: 'entry',
        label: `${op === 'encode' ? 'encodeEntry' : 'decodeEntryAt'}, ${sizeName(payload)} payload`,
        unit: 'entries/s',
        raftline:
          rate === undefined
            ? { value: null, missing: cpuError || 'not measured' }
            : { value: rate.opsPerSec, detail: `${f(rate.mbPerSec)} MB/s, ${f(rate.nsPerOp)} ns per entry` },
        native: nativeCase(`entry-${op}`, payload, (r) => ({
          value: numberAt(r, 'ops_per_s'),
          detail: `same layout in C, CRCs by the instruction: ${f(mb(r))} MB/s, ${f(numberAt(r, 'ns_per_op'))} ns per entry`,
        })),
      });
    }
  }
  return rows;
}

function formatRatioWords(ratio: number): string {
  return ratio >= 1 ? `${ratio.toFixed(1)}× as fast as` : `${(1 / ratio).toFixed(1)}× slower than`;
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      quick: { type: 'boolean', default: false },
      json: { type: 'string' },
      only: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const seconds = values.quick ? 0.25 : Number(values.seconds ?? '3');
  if (!(seconds > 0)) {
    console.error(`--seconds must be a positive number\n${USAGE}`);
    return 2;
  }
  const only = (values.only ?? SECTIONS.join(',')).split(',').map((s) => s.trim());
  for (const s of only) {
    if (!(SECTIONS as readonly string[]).includes(s)) {
      console.error(`--only: unknown section ${s}\n${USAGE}`);
      return 2;
    }
  }
  const run = (s: Section): boolean => only.includes(s);

  const start = machineState();
  console.log(`# native-bench: raftline's parts beside the machine's limits (ratio = raftline / native)`);
  console.log(`# ${describeState('start', start)}`);
  console.log(
    `# ${os.cpus()[0]?.model ?? 'cpu ?'}, ${os.type()} ${os.release()} ${os.arch()}, node ${process.version}`,
  );
  console.log(
    `# ${seconds} s per case${values.quick ? ' (--quick: figures for the smoke test, not for decisions)' : ''}`,
  );
  const workDir = chooseWorkDir();
  const binDir = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-native-bin-'));
  const compiler = findCompiler();
  let built: Built | null = null;
  if ('missing' in compiler) {
    console.log(`# C compiler: ${compiler.missing}; native figures are skipped, the raftline rows still run`);
  } else {
    const t0 = performance.now();
    built = buildPrograms(compiler.cc, binDir);
    const failed = Object.entries(built).filter(([, b]) => 'error' in b);
    console.log(
      `# C compiler: ${compiler.cc} (${compiler.version}); built ${Object.keys(built).length - failed.length} programs in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
        (failed.length > 0 ? `; FAILED: ${failed.map(([n]) => n).join(', ')}` : ''),
    );
  }
  console.log(`# disk rows write in ${workDir.note}`);
  const ctx: Context = {
    seconds,
    cpuBudgetMs: values.quick ? 25 : (seconds * 1000) / 8,
    preallocBytes: values.quick ? 8 << 20 : 64 << 20,
    workDir: workDir.dir,
    compiler,
    built,
    checks: {},
  };

  const rows: Row[] = [];
  try {
    if (run('disk')) rows.push(...(await diskRows(ctx)));
    if (run('ring')) rows.push(...(await ringRows(ctx)));
    if (run('tcp')) rows.push(...(await tcpRows(ctx)));
    if (run('cpu')) rows.push(...(await cpuRows(ctx)));
  } finally {
    fs.rmSync(workDir.dir, { recursive: true, force: true });
    fs.rmSync(binDir, { recursive: true, force: true });
  }
  const end = machineState();
  const use = describeUse(start, end);

  console.log('');
  console.log(formatTable(rows));
  console.log('');
  const checks = ctx.checks as {
    cCrc?: { table?: string; hw?: string | null };
    jsCrc?: { table: string; nodeRs: string };
    cEntryMatchesJs?: boolean;
  };
  if (checks.jsCrc !== undefined) {
    const all = [checks.jsCrc.table, checks.jsCrc.nodeRs, checks.cCrc?.table, checks.cCrc?.hw].filter(
      (x): x is string => typeof x === 'string',
    );
    const agree = all.every((x) => x === 'e3069283');
    console.log(
      `# checks: CRC32C("123456789") = e3069283 by ${all.length} implementations: ${agree ? 'all agree' : `MISMATCH ${all.join(' ')}`}` +
        (checks.cEntryMatchesJs === undefined
          ? ''
          : `; C encodes the same record bytes as encodeEntry: ${checks.cEntryMatchesJs ? 'yes' : 'NO'}`),
    );
  }
  console.log(`# ${describeState('end', end)}`);
  console.log(`# ${use.text}`);

  // Missing figures: a missing compiler explains native ones; anything else is a failure.
  const compilerMissing = 'missing' in compiler ? compiler.missing : null;
  const failures = rows.flatMap((row) =>
    (['raftline', 'native'] as const).flatMap((name) => {
      const s = row[name];
      if (s === undefined || s.value !== null) return [];
      if (name === 'native' && compilerMissing !== null && s.missing === compilerMissing) return [];
      if (s.missing === 'the CPU has no CRC32C instruction') return [];
      return [`${row.id} ${name}: ${s.missing ?? 'not measured'}`];
    }),
  );
  if (values.json !== undefined) {
    const json = {
      version: 1,
      options: { seconds, quick: values.quick, only },
      machine: { start, end, use: use.json },
      workDir: workDir.note,
      compiler,
      checks: ctx.checks,
      rows: rows.map((row) => ({ ...row, ratio: ratioOf(row) })),
      failures,
    };
    fs.writeFileSync(values.json, `${JSON.stringify(json, null, 2)}\n`);
    console.log(`# wrote ${values.json}`);
  }
  if (failures.length > 0) {
    console.log(`# ${failures.length} figure(s) could not be measured:`);
    for (const failure of failures) console.log(`#   ${failure}`);
    return 1;
  }
  return 0;
}

process.exitCode = await main();
