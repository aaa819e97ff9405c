/**
 * A disk that fails while the node runs: the log-writer's write fails (EFBIG, from a
 * file-size limit set with `ulimit -f` on the node's process), and the node must stop
 * serving cleanly: the apply that needed the write fails with ERR_RAFT_STORAGE, so do
 * later ones, nothing is acknowledged that is not on disk, and the process stays up to
 * report it.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/cli/local-cluster.js';

const NODE_SCRIPT = fileURLToPath(new URL('./node-process.js', import.meta.url));
const COUNTER = new URL('../../examples/counter.js', import.meta.url).href;
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-disk-'));
let child: ChildProcess | null = null;

after(() => {
  child?.kill('SIGKILL');
  fs.rmSync(root, { recursive: true, force: true });
});

test('a write error stops the node cleanly: applies fail with ERR_RAFT_STORAGE, none is acknowledged', async () => {
  const port = await freePort();
  const options = {
    id: 'n1',
    dataDir: path.join(root, 'n1'),
    listen: `127.0.0.1:${port}`,
    peers: [`n1=127.0.0.1:${port}`],
    stateMachine: COUNTER,
    electionTimeoutMs: 300,
    heartbeatIntervalMs: 30,
    logLevel: 'silent',
    segmentBytes: 64 * 1024,
  };
  // 512 KiB per file: 64 KiB segments fit; an entry of 600 KiB needs a segment of its own
  // that does not.
  const proc = spawn(
    'bash',
    ['-c', 'ulimit -f 512 && exec "$0" "$@"', process.execPath, NODE_SCRIPT, JSON.stringify(options)],
    {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'advanced',
    },
  );
  child = proc;
  let next = 1;
  const pending = new Map<
    number,
    (m: { result?: unknown; error?: { code: string; message: string } }) => void
  >();
  const ready = new Promise<void>((resolve, reject) => {
    proc.on(
      'message',
      (m: { type: string; id?: number; result?: unknown; error?: { code: string; message: string } }) => {
        if (m.type === 'ready') resolve();
        else if (m.type === 'start-error') reject(new Error(JSON.stringify(m)));
        else if (m.type === 'reply' && m.id !== undefined) pending.get(m.id)?.(m);
      },
    );
    proc.once('exit', (code, signal) => reject(new Error(`node exited (${code ?? signal})`)));
  });
  await ready;
  const request = (op: string, args: Record<string, unknown> = {}) =>
    new Promise<{ result?: unknown; error?: { code: string; message: string } }>((resolve) => {
      const id = next++;
      pending.set(id, resolve);
      proc.send({ id, op, ...args });
    });
  const deadline = Date.now() + 10_000;
  while (((await request('status')).result as { role: string }).role !== 'Leader') {
    assert.ok(Date.now() < deadline, 'no leader');
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual((await request('apply', { command: 'inc 1' })).result, 1);

  // Too big for the file-size limit (the counter would refuse it, but the write fails first).
  const big = `set 7${' '.repeat(600 * 1024)}`;
  const failed = await request('apply', { command: big });
  assert.equal(failed.error?.code, 'ERR_RAFT_STORAGE', JSON.stringify(failed));
  const after = await request('apply', { command: 'inc 1' });
  assert.equal(after.error?.code, 'ERR_RAFT_STORAGE', JSON.stringify(after));
  const status = (await request('status')).result as { appliedIndex: number; durableIndex: number };
  // Nothing past what reached the disk was applied.
  assert.ok(status.appliedIndex <= status.durableIndex);
  assert.equal(proc.exitCode, null, 'the process is still up to report the error');
});
