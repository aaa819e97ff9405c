/**
 * Fuzzing a live node (issue 7): a 3-node cluster of processes, a `RaftClient` writing and
 * reading all along, and at least a million random, truncated and mutated frames thrown
 * at the leader's listen port over tens of thousands of connections (handshakes, Raft
 * messages, client requests and snapshot-stream frames, see `frames.ts`).
 *
 * Checked (`judge.ts`): no node exits; every connection the node should refuse it closes,
 * and its counters and log lines agree, category by category, with the model of what it
 * should refuse (`model.ts`); every answer it sends decodes; the client is served during
 * the run and every write after it succeeds and reads back; the replicas converge; the
 * fuzzed node's memory stays within the bounds justified in `judge.ts` and no connection
 * is left open.
 *
 * RAFTLINE_FUZZ_FRAMES and RAFTLINE_FUZZ_SEED change the size and the seed; longer runs:
 * `node dist/test/fuzz/run.js --frames N`.
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describe as describeReport, runFuzz } from './harness.js';
import { judge } from './judge.js';

const FRAMES = Number(process.env.RAFTLINE_FUZZ_FRAMES ?? 1_000_000);
const SEED = Number(process.env.RAFTLINE_FUZZ_SEED ?? 0x7f1a);

test(`a live node survives ${FRAMES} fuzzed frames and keeps serving`, { timeout: 300_000 }, async (t) => {
  const report = await runFuzz({ frames: FRAMES, seed: SEED });
  for (const line of describeReport(report)) t.diagnostic(line);
  assert.deepEqual(judge(report, FRAMES), []);
});
