/**
 * One chaos run (`npm run chaos`, `cli.ts`): a cluster of kv node processes behind fault
 * proxies, clients recording a history, the nemesis applying the seed's fault schedule;
 * then everything healed, the cluster left to settle, and the checks:
 *
 * 1. the cluster recovers: a write is acknowledged after the heal;
 * 2. it settles: one leader, and every node has applied the leader's last index;
 * 3. every node holds the same state (read with stale reads from each node), and the key
 *    the torn-tail faults made up is absent everywhere;
 * 4. no acknowledged write is lost (`checks.ts`, `lostWrites`);
 * 5. the history, with a final read of every key appended, is linearizable.
 *
 * Besides these, a node process that ends on its own (other than refusing a damaged log),
 * or that will not restart, fails the run.
 */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RaftClient } from '../../src/client/raft-client.js';
import { compareStates, type LostReport, lostWrites, type NodeState } from './checks.js';
import { ChaosCluster, type NodeStatusView, sleep } from './cluster.js';
import { PLANTED_KEY } from './disk-faults.js';
import {
  type CheckResult,
  checkLinearizable,
  formatCounterexample,
  type Operation,
} from './linearizability.js';
import {
  FAULT_KINDS,
  type FaultCounts,
  type FaultKind,
  type FaultLogEntry,
  Nemesis,
  planFaults,
} from './nemesis.js';
import { type Recorded, Workload } from './workload.js';

/** How a chaos run is set up. */
export interface ChaosOptions {
  readonly durationS: number;
  readonly seed: number;
  readonly nodes: number;
  readonly clients: number;
  readonly keys: number;
  readonly keyRotationS: number;
  readonly electionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  /** Budget of the linearizability search. */
  readonly checkTimeoutMs: number;
  /** The fault kinds the nemesis may use (default: all). */
  readonly faults?: readonly FaultKind[];
  /** A self-test: this share of the gets is served `stale` but recorded as linearizable (`Workload`). */
  readonly plantStaleReads?: number;
  /** A self-test: every node runs with RAFTLINE_FAULT_UNSAFE_LEASE=1 (lease reads unchecked). */
  readonly plantUnsafeLease?: boolean;
  /** Keep the data directories even on success. */
  readonly keepData: boolean;
  /** Where progress and summary lines go. */
  readonly print: (line: string) => void;
}

/** Defaults of everything but the duration and the seed. */
export const CHAOS_DEFAULTS = {
  nodes: 3,
  clients: 8,
  keys: 6,
  keyRotationS: 5,
  electionTimeoutMs: 400,
  heartbeatIntervalMs: 50,
  checkTimeoutMs: 60_000,
  keepData: false,
} as const;

/** What a run found. */
export interface ChaosSummary {
  readonly seed: number;
  readonly nodes: number;
  readonly durationS: number;
  readonly wallS: number;
  readonly ok: boolean;
  readonly failures: string[];
  readonly ops: number;
  /** Puts and cas calls that were answered. */
  readonly acknowledged: number;
  readonly counts: {
    put: number;
    get: number;
    cas: number;
    readsAnswered: number;
    failed: number;
    unknown: number;
    casSwapped: number;
    casMismatch: number;
  };
  readonly keys: number;
  readonly lost: number;
  readonly lostDetails: string[];
  readonly linearizable: boolean | 'unknown';
  readonly check: {
    keys: number;
    operations: number;
    timedOut: boolean;
    ms: number;
    counterexample?: string;
  };
  readonly faults: FaultCounts;
  readonly diskFaults: Record<string, number>;
  readonly faultLog: FaultLogEntry[];
  readonly proxies: { connections: number; refused: number; destroyed: number; bytes: number };
  readonly finalLeader: string | null;
  readonly finalAppliedIndex: number | null;
  readonly stateDiffs: string[];
  readonly dataDir: string | null;
  readonly lastLine: string;
}

/** Clusters still running: killed by pid whatever way the process ends. */
const live = new Set<ChaosCluster>();

/** Kills every node process of every run still going (SIGINT, SIGTERM, exit). */
export function killEverything(): void {
  for (const c of live) c.killAllNow();
}

/** Removes the data directories of the runs still going (after `killEverything`); returns them. */
export function removeLiveData(): string[] {
  const roots = [...live].map((c) => c.options.root);
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  return roots;
}

/** The summary's last line. */
export function summaryLine(s: {
  ops: number;
  acknowledged: number;
  lost: number;
  linearizable: boolean | 'unknown';
  faults: FaultCounts;
  durationS: number;
}): string {
  const f = s.faults;
  return (
    `chaos: ops=${s.ops} acknowledged=${s.acknowledged} lost=${s.lost} linearizable=${s.linearizable} ` +
    `faults=kill:${f.kill},pause:${f.pause},partition:${f.partition},disk:${f.disk} duration=${s.durationS}`
  );
}

/** One history line of `--history`: the operation with its times as decimal strings of ns. */
export function historyLine(op: Operation): string {
  return JSON.stringify({
    client: op.client,
    op: op.op,
    key: op.key,
    value: op.value,
    expected: op.expected,
    start: op.start.toString(),
    end: op.end === null ? null : op.end.toString(),
    ok: op.ok,
    result: op.result,
  });
}

/** Runs one chaos run; never throws for what it finds (that is in the summary). */
export async function runChaos(
  o: ChaosOptions,
  files: { history?: string; json?: string } = {},
): Promise<ChaosSummary> {
  const t0 = performance.now();
  const since = (): string => `${((performance.now() - t0) / 1000).toFixed(1).padStart(6)}s`;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `raftline-chaos-${o.seed}-`));
  const failures: string[] = [];
  if (o.plantUnsafeLease) {
    o.print(
      'chaos: self-test: every node serves lease reads without checking its lease (RAFTLINE_FAULT_UNSAFE_LEASE=1)',
    );
  }
  if (o.plantStaleReads !== undefined) {
    o.print(
      `chaos: self-test: ${o.plantStaleReads * 100}% of the gets are stale reads recorded as linearizable`,
    );
  }
  o.print(
    `chaos: seed=${o.seed} nodes=${o.nodes} duration=${o.durationS}s clients=${o.clients} keys=${o.keys} data=${root}`,
  );
  const cluster = await startCluster(o, root);
  live.add(cluster);
  const nemesis = new Nemesis(cluster, t0, o.print);
  const workload = new Workload({
    clients: o.clients,
    keys: o.keys,
    keyRotationMs: o.keyRotationS * 1000,
    endpoints: new Map(cluster.nodes.map((n) => [n.id, n.address])),
    seed: o.seed,
    requestTimeoutMs: 1500,
    opDeadlineMs: 4000,
    thinkMs: 10,
    ...(o.plantStaleReads !== undefined ? { plantStaleReads: o.plantStaleReads } : {}),
  });
  let finalLeader: string | null = null;
  let finalApplied: number | null = null;
  let stateDiffs: string[] = [];
  const states: NodeState[] = [];
  const finalReads: Recorded[] = [];
  let progress: NodeJS.Timeout | null = null;
  try {
    const first = await cluster.waitForLeader(15_000);
    if (first === null) throw new Error('no leader was elected at start');
    o.print(`[${since()}] cluster up: ${cluster.ids.join(', ')}; leader ${first}`);
    workload.start();
    progress = setInterval(() => o.print(`[${since()}] ${progressLine(workload.history)}`), 10_000);
    // The duration counts from the first client call, not from the processes' start.
    const endMs = performance.now() + o.durationS * 1000;
    await nemesis.run(planFaults(o.seed, o.durationS * 1000, o.nodes, o.faults), endMs);
    await sleep(Math.max(0, endMs - performance.now()));

    // Heal, and see that the cluster serves writes again.
    await nemesis.healAll();
    const healedMs = performance.now();
    o.print(`[${since()}] everything healed; waiting for an acknowledged write`);
    while (workload.lastWriteAckMs < healedMs && performance.now() - healedMs < 20_000) await sleep(100);
    if (workload.lastWriteAckMs < healedMs)
      failures.push('no write was acknowledged within 20 s of the heal');
    else
      o.print(
        `[${since()}] writes acknowledged again after ${((workload.lastWriteAckMs - healedMs) / 1000).toFixed(1)} s`,
      );
    await sleep(1000);
    clearInterval(progress);
    progress = null;
    await workload.stop();
    o.print(`[${since()}] clients stopped: ${progressLine(workload.history)}`);

    // Settle: one leader, every node applied its last index.
    const quiet = await waitQuiet(cluster, 30_000);
    if (quiet.leader === null) failures.push(`the cluster did not settle in 30 s: ${quiet.detail}`);
    else {
      finalLeader = quiet.leader;
      finalApplied = quiet.index;
      o.print(`[${since()}] settled: leader ${quiet.leader}, every node applied index ${quiet.index}`);
    }

    // What every node holds: stale reads, from each node's own state machine.
    const keys = [...workload.keysUsed, PLANTED_KEY];
    for (const n of cluster.nodes) {
      try {
        const values = new Map<string, string | null>();
        for (const key of keys) values.set(key, (await n.readLocal({ op: 'get', key })) as string | null);
        states.push({ node: n.id, values, size: Number(await n.readLocal({ op: 'size' })) });
      } catch (err) {
        failures.push(`cannot read the state of ${n.id}: ${(err as Error).message}`);
      }
    }
    stateDiffs = compareStates(states);
    if (stateDiffs.length > 0)
      failures.push(`the nodes' states differ: ${stateDiffs.slice(0, 5).join('; ')}`);
    for (const s of states) {
      const planted = s.values.get(PLANTED_KEY);
      if (planted !== null && planted !== undefined)
        failures.push(`${s.node} applied a made-up torn record: ${PLANTED_KEY}=${planted}`);
    }

    // A final linearizable read of every key joins the history: a lost write shows there too.
    if (finalLeader !== null) {
      const reader = new RaftClient({
        endpoints: [cluster.node(finalLeader).address],
        requestTimeoutMs: 5000,
      });
      const client = 1_000_000;
      try {
        for (const key of workload.keysUsed) {
          const start = process.hrtime.bigint();
          const value = (await reader.read({ op: 'get', key })) as string | null;
          const op: Operation = {
            client,
            op: 'get',
            key,
            value: null,
            expected: null,
            start,
            end: process.hrtime.bigint(),
            ok: true,
            result: value,
          };
          finalReads.push({ op, meta: { node: finalLeader, consistency: 'linearizable', attempts: 1 } });
        }
      } catch (err) {
        failures.push(`the final reads failed: ${(err as Error).message}`);
      } finally {
        await reader.close();
      }
    }
  } catch (err) {
    failures.push(`the run broke off: ${(err as Error).stack ?? String(err)}`);
  } finally {
    if (progress !== null) clearInterval(progress);
    nemesis.stop();
    await workload.stop().catch(() => {});
    await cluster.stop().catch(() => {});
    live.delete(cluster);
  }
  failures.push(...nemesis.findings);
  for (const e of cluster.exits) {
    if (!e.expected)
      failures.push(`${e.id} (pid ${e.pid}) exited on its own: code ${e.code} signal ${e.signal}`);
  }

  // The checks on the history.
  const history = [...workload.history, ...finalReads];
  const finalValues = new Map<string, string | null>();
  for (const r of finalReads) finalValues.set(r.op.key, r.op.result);
  const lost: LostReport =
    finalReads.length > 0
      ? lostWrites(history, finalValues)
      : { lost: 0, details: ['not computed: no final reads'] };
  if (lost.lost > 0)
    failures.push(`${lost.lost} acknowledged writes lost: ${lost.details.slice(0, 5).join('; ')}`);
  o.print(`[${since()}] checking linearizability of ${history.length} operations`);
  const checkStart = performance.now();
  let check: CheckResult;
  try {
    check = checkLinearizable(
      history.map((r) => r.op),
      { timeoutMs: o.checkTimeoutMs },
    );
  } catch (err) {
    failures.push(`the checker refused the history: ${(err as Error).message}`);
    check = { linearizable: false, keys: 0, operations: 0, timedOut: true };
  }
  const checkMs = performance.now() - checkStart;
  const linearizable: boolean | 'unknown' = check.timedOut ? 'unknown' : check.linearizable;
  let counterexample: string | undefined;
  if (check.counterexample) {
    counterexample = `${formatCounterexample(check.counterexample)}\n${describeOps(check.counterexample.ops, history)}`;
    failures.push(`the history is not linearizable (key ${check.counterexample.key})`);
  } else if (check.timedOut) {
    failures.push(`the linearizability check ran out of its ${o.checkTimeoutMs} ms budget`);
  }

  const c = countOps(workload.history);
  const ok = failures.length === 0;
  const keep = !ok || o.keepData;
  const summaryBase = {
    ops: history.length,
    acknowledged: c.acknowledged,
    lost: lost.lost,
    linearizable,
    faults: nemesis.counts,
    durationS: o.durationS,
  };
  const last = summaryLine(summaryBase);
  const summary: ChaosSummary = {
    seed: o.seed,
    nodes: o.nodes,
    durationS: o.durationS,
    wallS: (performance.now() - t0) / 1000,
    ok,
    failures,
    ops: history.length,
    acknowledged: c.acknowledged,
    counts: c.counts,
    keys: workload.keysUsed.size,
    lost: lost.lost,
    lostDetails: lost.details,
    linearizable,
    check: {
      keys: check.keys,
      operations: check.operations,
      timedOut: check.timedOut === true,
      ms: Math.round(checkMs),
      ...(counterexample !== undefined ? { counterexample } : {}),
    },
    faults: nemesis.counts,
    diskFaults: nemesis.diskCounts,
    faultLog: nemesis.log,
    proxies: cluster.mesh ? cluster.mesh.counters() : { connections: 0, refused: 0, destroyed: 0, bytes: 0 },
    finalLeader,
    finalAppliedIndex: finalApplied,
    stateDiffs,
    dataDir: keep ? root : null,
    lastLine: last,
  };

  if (files.history) writeHistory(files.history, history);
  if (!ok) {
    writeHistory(path.join(root, 'history.jsonl'), history);
    writeHistoryWithMeta(path.join(root, 'history-meta.jsonl'), history);
  }
  if (process.env.CHAOS_HISTORY_META) writeHistoryWithMeta(process.env.CHAOS_HISTORY_META, history);
  if (files.json) fs.writeFileSync(files.json, `${JSON.stringify(summary, null, 2)}\n`);
  if (!keep) fs.rmSync(root, { recursive: true, force: true });

  printSummary(o, summary);
  return summary;
}

/** Starts the cluster of a run; if it does not come up, says so with the seed and keeps the data. */
async function startCluster(o: ChaosOptions, root: string): Promise<ChaosCluster> {
  try {
    return await ChaosCluster.start({
      nodes: o.nodes,
      root,
      electionTimeoutMs: o.electionTimeoutMs,
      heartbeatIntervalMs: o.heartbeatIntervalMs,
      segmentBytes: 512 * 1024,
      snapshotLogEntries: 4000,
      snapshotMinIntervalS: 3,
      compactionMarginEntries: 1000,
      logWindowBytes: 8 * 1024 * 1024,
      logLevel: 'warn',
      ...(o.plantUnsafeLease ? { env: { RAFTLINE_FAULT_UNSAFE_LEASE: '1' } } : {}),
    });
  } catch (err) {
    throw new Error(
      `chaos: FAILED seed=${o.seed}: the cluster did not start (data kept in ${root}): ${(err as Error).message}`,
    );
  }
}

/** The history with what the harness knows of each call: node, read consistency, replaced value, error, attempts. */
function writeHistoryWithMeta(file: string, history: readonly Recorded[]): void {
  fs.writeFileSync(
    file,
    history.map((r) => `${JSON.stringify({ ...JSON.parse(historyLine(r.op)), ...r.meta })}\n`).join(''),
  );
}

function writeHistory(file: string, history: readonly Recorded[]): void {
  fs.writeFileSync(file, history.map((r) => `${historyLine(r.op)}\n`).join(''));
}

/** Waits until one leader leads and every node has applied its last index. */
async function waitQuiet(
  cluster: ChaosCluster,
  timeoutMs: number,
): Promise<{ leader: string | null; index: number | null; detail: string }> {
  const deadline = performance.now() + timeoutMs;
  let detail = 'no status yet';
  while (performance.now() < deadline) {
    const statuses = await cluster.statuses();
    const all = [...statuses.values()];
    const missing = [...statuses].filter(([, s]) => s === null).map(([id]) => id);
    const leaders = all.filter((s): s is NodeStatusView => s !== null && s.role === 'Leader');
    if (missing.length > 0) detail = `no status from ${missing.join(',')}`;
    else if (leaders.length !== 1) detail = `${leaders.length} nodes report themselves leader`;
    else {
      const l = leaders[0] as NodeStatusView;
      const behind = all.filter(
        (s) =>
          s !== null && (s.appliedIndex !== l.lastIndex || s.lastIndex !== l.lastIndex || s.leader !== l.id),
      ) as NodeStatusView[];
      if (l.commitIndex !== l.lastIndex)
        detail = `leader ${l.id} committed ${l.commitIndex} of ${l.lastIndex}`;
      else if (behind.length > 0)
        detail = `behind leader ${l.id} at ${l.lastIndex}: ${behind.map((s) => `${s.id} applied ${s.appliedIndex} last ${s.lastIndex} leader ${s.leader}`).join(', ')}`;
      else return { leader: l.id, index: l.lastIndex, detail: 'settled' };
    }
    await sleep(200);
  }
  return { leader: null, index: null, detail };
}

function countOps(history: readonly Recorded[]): {
  acknowledged: number;
  counts: ChaosSummary['counts'];
} {
  const counts = {
    put: 0,
    get: 0,
    cas: 0,
    readsAnswered: 0,
    failed: 0,
    unknown: 0,
    casSwapped: 0,
    casMismatch: 0,
  };
  let acknowledged = 0;
  for (const { op } of history) {
    counts[op.op]++;
    if (op.op !== 'get' && op.ok) acknowledged++;
    if (op.op === 'get' && op.ok) counts.readsAnswered++;
    if (op.op === 'cas' && op.ok) {
      if (op.result === 'swapped') counts.casSwapped++;
      else counts.casMismatch++;
    }
    if (!op.ok && op.end !== null) counts.failed++;
    if (op.end === null) counts.unknown++;
  }
  return { acknowledged, counts };
}

function progressLine(history: readonly Recorded[]): string {
  const { acknowledged, counts } = countOps(history);
  return `ops ${history.length}: writes acknowledged ${acknowledged}, reads answered ${counts.readsAnswered}, failed ${counts.failed}, unknown ${counts.unknown}`;
}

/** Where each operation of a counterexample went and how it ended, from the harness's notes. */
function describeOps(ops: readonly Operation[], history: readonly Recorded[]): string {
  const meta = new Map(history.map((r) => [r.op, r.meta]));
  return ops
    .map((op) => {
      const m = meta.get(op);
      if (!m) return '';
      const extra = [
        `node ${m.node}`,
        m.consistency ? `read ${m.consistency}` : '',
        m.prev !== undefined ? `replaced ${JSON.stringify(m.prev)}` : '',
        m.error ? `error ${m.error}` : '',
        `attempts ${m.attempts}`,
      ].filter((x) => x !== '');
      return `  client ${op.client} ${op.op} ${op.key}: ${extra.join(', ')}`;
    })
    .filter((l) => l !== '')
    .join('\n');
}

/** The command that runs the same schedule again: the seed and every flag that differs from the default. */
export function reproduceCommand(
  o: ChaosOptions,
  s: { durationS: number; seed: number; nodes: number },
): string {
  const flags = [`--duration ${s.durationS}`, `--seed ${s.seed}`, `--nodes ${s.nodes}`];
  if (o.faults !== undefined && o.faults.length < FAULT_KINDS.length)
    flags.push(`--faults ${o.faults.join(',')}`);
  if (o.clients !== CHAOS_DEFAULTS.clients) flags.push(`--clients ${o.clients}`);
  if (o.keys !== CHAOS_DEFAULTS.keys) flags.push(`--keys ${o.keys}`);
  if (o.keyRotationS !== CHAOS_DEFAULTS.keyRotationS) flags.push(`--key-rotation-s ${o.keyRotationS}`);
  if (o.plantStaleReads !== undefined) flags.push(`--plant-stale-reads ${o.plantStaleReads}`);
  if (o.plantUnsafeLease) flags.push('--plant-unsafe-lease');
  return `npm run chaos -- ${flags.join(' ')}`;
}

function printSummary(o: ChaosOptions, s: ChaosSummary): void {
  const p = o.print;
  const c = s.counts;
  const f = s.faults;
  p(
    `chaos: history: ${s.ops} operations on ${s.keys} keys: put ${c.put}, get ${c.get}, cas ${c.cas} (swapped ${c.casSwapped}, mismatch ${c.casMismatch}); ` +
      `writes acknowledged ${s.acknowledged}, reads answered ${c.readsAnswered}, failed ${c.failed}, unknown outcome ${c.unknown}`,
  );
  p(
    `chaos: faults: kill ${f.kill}, pause ${f.pause}, partition ${f.partition}, delay ${f.delay}, disk ${f.disk} (${Object.entries(
      s.diskFaults,
    )
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')})`,
  );
  p(
    `chaos: proxies: ${s.proxies.connections} connections forwarded, ${s.proxies.refused} refused, ${s.proxies.destroyed} destroyed, ${(s.proxies.bytes / 1e6).toFixed(1)} MB`,
  );
  p(
    `chaos: end state: ${s.finalLeader === null ? 'not settled' : `leader ${s.finalLeader}, applied index ${s.finalAppliedIndex} on every node`}; ` +
      `${s.stateDiffs.length === 0 ? 'every node holds the same state' : `${s.stateDiffs.length} differences between nodes`}`,
  );
  p(
    `chaos: check: ${s.check.keys} keys, ${s.check.operations} operations in ${(s.check.ms / 1000).toFixed(1)} s: linearizable=${s.linearizable}; lost=${s.lost}; wall time ${s.wallS.toFixed(1)} s`,
  );
  if (s.check.counterexample) p(s.check.counterexample);
  if (!s.ok) {
    for (const reason of s.failures) p(`chaos: failure: ${reason}`);
    p(`chaos: FAILED seed=${s.seed}: data, logs and history kept in ${s.dataDir}`);
    p(`chaos: reproduce with: ${reproduceCommand(o, s)}`);
  } else if (s.dataDir !== null) p(`chaos: data kept in ${s.dataDir}`);
  p(s.lastLine);
}
