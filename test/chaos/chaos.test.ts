/**
 * `npm run chaos` in CI: one short run (60 s of faults, about 70-80 s in all) with a fixed
 * seed, whose first round of faults holds every kind (every seed's does: see
 * `planFaults`). The last line must report lost=0 and linearizable=true, and every kind
 * of fault in it must have happened.
 *
 * Seed 36 draws a flipped middle byte, a full disk and a torn tail for its disk faults;
 * its slow disk would come after 80 s at the earliest. A slow disk meets a known raftline
 * bug (`slow-disk-snapshot.test.ts`, NEEDS.md); once that is fixed, any seed will do.
 */

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));
const SEED = 36;
const DURATION_S = 60;

test(`npm run chaos -- --duration ${DURATION_S} --seed ${SEED}: nothing lost, linearizable, every fault kind`, {
  timeout: 300_000,
}, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-chaos-ci-'));
  const json = path.join(dir, 'summary.json');
  try {
    const child = spawn(
      process.execPath,
      [CLI, '--duration', String(DURATION_S), '--seed', String(SEED), '--json', json],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    // The harness bounds itself; this is the backstop (SIGTERM: it kills its nodes by pid).
    const backstop = setTimeout(() => child.kill('SIGTERM'), 280_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    clearTimeout(backstop);

    const lines = out.trimEnd().split('\n');
    const last = lines.at(-1) ?? '';
    const m =
      /^chaos: ops=(\d+) acknowledged=(\d+) lost=(\d+) linearizable=(\w+) faults=kill:(\d+),pause:(\d+),partition:(\d+),disk:(\d+) duration=(\d+)$/.exec(
        last,
      );
    assert.ok(m, `the last line is not the summary:\n${out}`);
    const [, ops, acknowledged, lost, linearizable, kill, pause, partition, disk, duration] = m;
    assert.equal(lost, '0', out);
    assert.equal(linearizable, 'true', out);
    for (const [kind, n] of Object.entries({ kill, pause, partition, disk })) {
      assert.ok(Number(n) > 0, `no ${kind} fault happened:\n${out}`);
    }
    assert.equal(duration, String(DURATION_S));
    assert.ok(Number(ops) > 1000 && Number(acknowledged) > 500, `too little work was done:\n${out}`);
    assert.equal(code, 0, `the run failed:\n${out}`);
    const summary = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.equal(summary.ok, true);
    assert.equal(summary.seed, SEED);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
