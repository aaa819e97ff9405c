/**
 * `native.js --quick` end to end, as a child process: every row's figures are produced
 * (finite, positive numbers), ratios exist where both sides do, and the table prints.
 * Never a timing threshold: the figures of a 0.25-second case on a shared machine mean
 * nothing, only their presence is checked. Without a C compiler the native figures must
 * say so instead, and the raftline rows must still be there.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Row } from '../../native-bench/native-table.js';

const RUNNER = fileURLToPath(new URL('../../native-bench/native.js', import.meta.url));
const run = promisify(execFile);

interface Report {
  compiler: { cc: string } | { missing: string };
  rows: (Row & { ratio: number | null })[];
  failures: string[];
  machine: { start: { loadAverage: number[]; nproc: number }; end: { loadAverage: number[] } };
}

const isFigure = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v > 0;

test('native.js --quick produces every figure and prints the table', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'native-smoke-'));
  try {
    const jsonFile = path.join(dir, 'native.json');
    const { stdout } = await run(process.execPath, [RUNNER, '--quick', '--json', jsonFile], {
      timeout: 28_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const report = JSON.parse(fs.readFileSync(jsonFile, 'utf8')) as Report;
    assert.deepEqual(report.failures, []);
    const sections = new Set(report.rows.map((r) => r.section));
    assert.deepEqual([...sections], ['disk', 'ring', 'tcp', 'crc32c', 'entry']);

    const compilerMissing = 'missing' in report.compiler ? report.compiler.missing : null;
    let pairs = 0;
    for (const row of report.rows) {
      assert.ok(row.raftline !== undefined || row.native !== undefined, `${row.id} has no side`);
      if (row.raftline !== undefined)
        assert.ok(isFigure(row.raftline.value), `${row.id} raftline: ${JSON.stringify(row.raftline)}`);
      if (row.native !== undefined) {
        if (compilerMissing === null)
          assert.ok(isFigure(row.native.value), `${row.id} native: ${JSON.stringify(row.native)}`);
        else assert.equal(row.native.missing, compilerMissing, row.id);
      }
      if (row.raftline !== undefined && row.native !== undefined && compilerMissing === null) {
        assert.ok(isFigure(row.ratio), `${row.id} ratio ${row.ratio}`);
        pairs++;
      }
      // Every row is a line of the printed table.
      assert.ok(stdout.includes(row.label), `table line for ${row.id}`);
    }
    if (compilerMissing === null) assert.ok(pairs >= 20, `${pairs} pairs`);

    assert.match(stdout, /^row\s+unit\s+raftline\s+native\s+ratio$/m);
    assert.match(stdout, /# start: .*load average [\d.]+ [\d.]+ [\d.]+ .*nproc \d+/);
    assert.match(stdout, /# end: .*load average [\d.]+ [\d.]+ [\d.]+ /);
    assert.ok(report.machine.start.nproc >= 1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
