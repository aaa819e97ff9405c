/**
 * Throughput and latency of pipelined `apply` calls against a 3-process cluster on
 * 127.0.0.1 (each node its own OS process with its worker threads, real fdatasync).
 * The load loop runs inside the leader's process, so it measures the node, not IPC.
 *
 *   node dist/native-bench/apply-bench.js [--seconds 5] [--window 256] [--payload 16] [--no-sync]
 */

import { parseArgs } from 'node:util';
import type { NodeStats } from '../src/main/coordinator.js';
import { ProcessCluster } from '../test/cluster/process-cluster.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    window: { type: 'string', default: '256' },
    payload: { type: 'string', default: '16' },
    'no-sync': { type: 'boolean', default: false },
    idle: { type: 'string', default: '0' },
  },
});

interface BenchResult {
  ops: number;
  errors: number;
  elapsedS: number;
  opsPerSec: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
}

const cluster = await ProcessCluster.start({
  size: 3,
  // The counter example: a state of one number, so the figures measure the runtime, not
  // a state machine that grows with every entry (the recording one the tests use keeps
  // every command and snapshots them all).
  stateMachine: new URL('../examples/counter.js', import.meta.url).href,
  sync: !values['no-sync'],
  electionTimeoutMs: 1000,
  heartbeatIntervalMs: 100,
});
try {
  const lead = await cluster.waitForLeader();
  const idleSeconds = Number(values.idle);
  if (idleSeconds > 0) {
    // Idle CPU: user+system time each process used while the cluster had nothing to do.
    const before = await Promise.all(
      cluster.ids().map((id) => cluster.request<{ cpu: NodeJS.CpuUsage }>(id, 'status')),
    );
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const after = await Promise.all(
      cluster.ids().map((id) => cluster.request<{ cpu: NodeJS.CpuUsage }>(id, 'status')),
    );
    cluster.ids().forEach((id, i) => {
      const b = (before[i] as { cpu: NodeJS.CpuUsage }).cpu;
      const a = (after[i] as { cpu: NodeJS.CpuUsage }).cpu;
      const cpuMs = (a.user - b.user + a.system - b.system) / 1000;
      console.log(
        `idle ${id}${id === lead ? ' (leader)' : ''}: ${cpuMs.toFixed(1)} ms CPU in ${idleSeconds} s = ${((cpuMs / (idleSeconds * 1000)) * 100).toFixed(2)}% of one core`,
      );
    });
  }
  await cluster.request(lead, 'bench', {
    seconds: 1,
    window: Number(values.window),
    payloadBytes: Number(values.payload),
  });
  const before = await cluster.request<{ stats: NodeStats; appliedIndex: number }>(lead, 'status');
  const r = await cluster.request<BenchResult>(lead, 'bench', {
    seconds: Number(values.seconds),
    window: Number(values.window),
    payloadBytes: Number(values.payload),
  });
  const s = await cluster.request<{ commitIndex: number; stats: NodeStats; appliedIndex: number }>(
    lead,
    'status',
  );
  console.log(
    `apply: ${r.ops} ops in ${r.elapsedS.toFixed(2)} s = ${Math.round(r.opsPerSec)} ops/s, errors ${r.errors}; ` +
      `latency µs p50 ${r.p50Us} p90 ${r.p90Us} p99 ${r.p99Us} p99.9 ${r.p999Us} max ${r.maxUs} ` +
      `(window ${values.window}, payload ${values.payload} B, sync ${!values['no-sync']}, commit index ${s.commitIndex})`,
  );
  const d = (k: keyof NodeStats): number => s.stats[k] - before.stats[k];
  const applied = s.appliedIndex - before.appliedIndex;
  console.log(
    `leader batching: ${(d('entriesWritten') / d('fsyncs')).toFixed(1)} entries/fsync (${d('fsyncs')} fsyncs), ` +
      `${(d('entriesSent') / d('appendEntriesSent')).toFixed(1)} entries/AppendEntries, ` +
      `${(applied / d('applyBatches')).toFixed(1)} entries/apply batch, ` +
      `${(d('ringSleeps') / applied).toFixed(3)} ring sleeps (wake-ups) per entry`,
  );
} finally {
  await cluster.destroy();
}
