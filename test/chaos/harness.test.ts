/**
 * The chaos harness's parts, without a cluster: the fault schedule, the proxy, the disk
 * faults against the real segment recovery, how client errors are classified, and the
 * end-of-run checks.
 */

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { kvCommand } from '../../examples/kv.js';
import { BusyError, NotLeaderError, TimeoutError, UnavailableError } from '../../src/main/errors.js';
import { EntryType } from '../../src/raft/types.js';
import { encodeEntries } from '../../src/shared/entry-codec.js';
import { LogCorruptionError, SegmentLog } from '../../src/workers/log-writer/segment-log.js';
import { compareStates, lostWrites } from './checks.js';
import {
  fileSizeLimitFor,
  flipMiddleByte,
  lastSegment,
  plantFlippedTail,
  plantTornTail,
} from './disk-faults.js';
import type { Operation } from './linearizability.js';
import { FAULT_KINDS, planFaults } from './nemesis.js';
import { LinkProxy } from './proxy.js';
import { historyLine, summaryLine } from './run.js';
import { classifyWriteError, type Recorded } from './workload.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-chaos-unit-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

describe('the fault schedule', () => {
  test('is a function of the seed', () => {
    assert.deepEqual(planFaults(42, 60_000, 3), planFaults(42, 60_000, 3));
    assert.notDeepEqual(planFaults(42, 60_000, 3), planFaults(43, 60_000, 3));
  });

  test('has every fault kind in its first round, for any seed', () => {
    for (let seed = 0; seed < 200; seed++) {
      const first = planFaults(seed, 60_000, seed % 2 === 0 ? 3 : 5).slice(0, FAULT_KINDS.length);
      assert.deepEqual(new Set(first.map((s) => s.kind)), new Set(FAULT_KINDS), `seed ${seed}`);
      // The first round fits well within a 60 s run: hold, gap, and up to ~2 s to heal each.
      const ms = first.reduce((t, s) => t + s.holdMs + s.gapMs + 2000, 0);
      assert.ok(ms < 40_000, `seed ${seed}: first round takes ${ms} ms`);
    }
  });

  test('pauses last longer than an election (400 ms, randomised up to 800 ms)', () => {
    for (const s of planFaults(7, 600_000, 3)) if (s.kind === 'pause') assert.ok(s.holdMs >= 1200);
  });

  test('leaving kinds out keeps the steps of the others', () => {
    const all = planFaults(9, 120_000, 3).filter((s) => s.kind === 'disk');
    const disks = planFaults(9, 120_000, 3, ['disk']);
    assert.ok(disks.every((s) => s.kind === 'disk'));
    assert.deepEqual(disks.slice(0, all.length), all);
  });
});

/** An echo server on 127.0.0.1. */
async function echoServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Connects to `port`, sends `text`, resolves with the echo, or with the error / 'closed'. */
function roundTrip(port: number, text: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const t = setTimeout(() => {
      s.destroy();
      resolve(`timeout:${got}`);
    }, timeoutMs);
    s.on('data', (d) => {
      got += d.toString();
      if (got.length >= text.length) {
        clearTimeout(t);
        s.end();
        resolve(got);
      }
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(t);
      resolve(got.length >= text.length ? got : `closed:${got}`);
    });
    s.write(text);
  });
}

describe('the link proxy', () => {
  test('forwards, cuts, delays, hangs and heals', async () => {
    const echo = await echoServer();
    const proxy = new LinkProxy('a', 'b', echo.port);
    const port = await proxy.listen();
    try {
      assert.equal(await roundTrip(port, 'hello'), 'hello');

      proxy.cut();
      assert.equal(await roundTrip(port, 'hello'), 'closed:');
      assert.ok(proxy.counters.refused >= 1);

      proxy.heal();
      proxy.delay(150, 0);
      const t0 = performance.now();
      assert.equal(await roundTrip(port, 'slow'), 'slow');
      // Both directions are delayed.
      assert.ok(performance.now() - t0 >= 290, `took ${performance.now() - t0} ms`);

      proxy.heal();
      proxy.hang();
      assert.equal(await roundTrip(port, 'hung', 300), 'timeout:');

      // A connection made while healthy is destroyed by a cut.
      proxy.heal();
      const s = net.connect({ host: '127.0.0.1', port });
      s.on('error', () => {});
      const closed = new Promise<void>((r) => s.on('close', () => r()));
      await new Promise<void>((r) => s.on('connect', () => r()));
      await new Promise((r) => setTimeout(r, 50));
      proxy.cut();
      await closed;
      proxy.heal();
      assert.equal(await roundTrip(port, 'again'), 'again');
    } finally {
      await proxy.close();
      await echo.close();
    }
  });
});

/** A data directory whose log holds entries 2..`last` of term 3 (small kv puts). */
function logWith(name: string, last: number, segmentBytes = 64 * 1024): string {
  const dataDir = path.join(root, name);
  const { log } = SegmentLog.open({ dir: path.join(dataDir, 'log'), segmentBytes });
  const entries = [];
  for (let i = 2; i <= last; i++) {
    entries.push({
      index: i,
      term: 3,
      type: EntryType.Normal,
      data: kvCommand({ op: 'put', key: 'k', value: `v${i}` }),
    });
  }
  log.append(encodeEntries(entries), 2, last, 3);
  log.sync();
  log.close();
  return dataDir;
}

function recover(dataDir: string) {
  const { log, recovered } = SegmentLog.open({ dir: path.join(dataDir, 'log'), segmentBytes: 64 * 1024 });
  log.close();
  return recovered;
}

describe('the disk faults against segment recovery', () => {
  test('a torn tail is cut and the log keeps every real entry', () => {
    for (const keep of [0.01, 0.3, 0.5, 0.99]) {
      const dir = logWith(`torn-${keep}`, 50);
      const report = plantTornTail(dir, keep, 't');
      assert.ok(report !== null);
      const r = recover(dir);
      assert.equal(r.lastIndex, 50);
      assert.ok(r.cutTail !== null, `keep ${keep}: the tail was not reported cut`);
    }
  });

  test('a flipped byte in a made-up tail record is cut as a torn write', () => {
    for (let bit = 0; bit < 8; bit++) {
      const dir = logWith(`flip-tail-${bit}`, 30);
      assert.ok(plantFlippedTail(dir, bit / 8, bit, 'f') !== null);
      const r = recover(dir);
      assert.equal(r.lastIndex, 30);
      assert.ok(r.cutTail !== null);
    }
  });

  test('a flipped byte in the middle is refused, and putting it back recovers everything', () => {
    for (const pick of [0, 0.25, 0.5, 0.999]) {
      const dir = logWith(`flip-middle-${pick}`, 40);
      const report = flipMiddleByte(dir, pick, 5);
      assert.ok(report?.restore);
      assert.throws(() => recover(dir), LogCorruptionError);
      report.restore();
      const r = recover(dir);
      assert.equal(r.lastIndex, 40);
      assert.equal(r.cutTail, null);
    }
  });

  test('a log of one record has no middle to flip', () => {
    assert.equal(flipMiddleByte(logWith('one', 2), 0.5, 1), null);
  });

  test('the full-disk limit leaves room for the spare and lies below the open segment', () => {
    const dir = logWith('full', 400, 512 * 1024);
    const seg = lastSegment(dir);
    assert.ok(seg !== null);
    const limit = fileSizeLimitFor(dir, 64 * 1024, 16 * 1024);
    assert.ok(limit !== null);
    assert.ok(limit.limitKiB * 1024 >= 64 * 1024);
    assert.ok(limit.limitKiB * 1024 < seg.capacityBytes);
    assert.ok(limit.limitKiB * 1024 >= seg.validEndBytes);
  });
});

describe('client errors', () => {
  test('only refusals before proposing count as not applied', () => {
    assert.equal(classifyWriteError(new NotLeaderError('n2', '127.0.0.1:1')), 'not-applied');
    assert.equal(
      classifyWriteError(
        new NotLeaderError(null, null, 'the entry was replaced by another leader before it committed'),
      ),
      'not-applied',
    );
    assert.equal(classifyWriteError(new BusyError('busy')), 'not-applied');
    assert.equal(classifyWriteError(new TimeoutError('late')), 'unknown');
    assert.equal(classifyWriteError(new UnavailableError('connection lost')), 'unknown');
    assert.equal(classifyWriteError({ code: 'ERR_RAFT_STORAGE' }), 'unknown');
    assert.equal(classifyWriteError({ code: 'ERR_RAFT_SHUTDOWN' }), 'unknown');
    assert.equal(classifyWriteError(new Error('what')), 'unknown');
  });
});

/** A recorded call, for the checks below; times in ms. */
function rec(
  op: Operation['op'],
  key: string,
  value: string | null,
  start: number,
  end: number | null,
  extra: Partial<Operation> = {},
  prev?: string | null,
): Recorded {
  return {
    op: {
      client: 1,
      op,
      key,
      value,
      expected: null,
      start: BigInt(start) * 1_000_000n,
      end: end === null ? null : BigInt(end) * 1_000_000n,
      ok: end !== null,
      result: null,
      ...extra,
    },
    meta: { node: 'n1', attempts: 1, ...(prev !== undefined ? { prev } : {}) },
  };
}

describe('the end-of-run checks', () => {
  test('no write is lost when every value was replaced or is final', () => {
    const h = [
      rec('put', 'a', '1', 0, 1, {}, null),
      rec('put', 'a', '2', 2, 3, {}, '1'),
      rec('cas', 'a', '3', 4, 5, { expected: '2', result: 'swapped' }),
    ];
    assert.deepEqual(lostWrites(h, new Map([['a', '3']])), { lost: 0, details: [] });
  });

  test('a value that vanished is lost', () => {
    const h = [rec('put', 'a', '1', 0, 1, {}, null), rec('put', 'a', '2', 2, 3, {}, null)];
    // '2' replaced absent, so '1' vanished without anybody replacing it.
    const r = lostWrites(h, new Map([['a', '2']]));
    assert.equal(r.lost, 1);
    assert.match(r.details[0] as string, /"1"/);
  });

  test('a write of unknown outcome may have replaced a value', () => {
    const h = [
      rec('put', 'a', '1', 0, 1, {}, null),
      rec('put', 'a', 'u', 2, null),
      rec('put', 'a', '2', 3, 4, {}, 'u'),
    ];
    assert.equal(lostWrites(h, new Map([['a', '2']])).lost, 0);
  });

  test('a key that ends absent after an acknowledged write lost it', () => {
    assert.equal(lostWrites([rec('put', 'a', '1', 0, 1, {}, null)], new Map([['a', null]])).lost, 1);
  });

  test('states are compared key by key', () => {
    const a = { node: 'n1', values: new Map([['k', '1']]), size: 1 };
    const b = { node: 'n2', values: new Map([['k', '2']]), size: 1 };
    assert.deepEqual(compareStates([a, a]), []);
    assert.equal(compareStates([a, b]).length, 1);
  });

  test('the summary line and history lines have the documented shape', () => {
    const line = summaryLine({
      ops: 10,
      acknowledged: 5,
      lost: 0,
      linearizable: true,
      faults: { kill: 1, pause: 2, partition: 3, delay: 4, disk: 5 },
      durationS: 60,
    });
    assert.equal(
      line,
      'chaos: ops=10 acknowledged=5 lost=0 linearizable=true faults=kill:1,pause:2,partition:3,disk:5 duration=60',
    );
    const h = JSON.parse(historyLine(rec('put', 'a', '1', 1, 2).op));
    assert.deepEqual(Object.keys(h), [
      'client',
      'op',
      'key',
      'value',
      'expected',
      'start',
      'end',
      'ok',
      'result',
    ]);
    assert.equal(h.start, '1000000');
  });
});
