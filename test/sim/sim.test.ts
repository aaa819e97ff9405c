import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RaftCore } from '../../src/raft/raft-core.js';
import { Rng } from '../../src/raft/rng.js';
import { MemoryStorage } from '../../src/raft/storage.js';
import { type Entry, EntryType } from '../../src/raft/types.js';
import { Checker, encodeValue, Violation } from './checker.js';
import { runSeed } from './world.js';

/**
 * Seeds on which the simulator once found a bug, with the bug each one found. Each was
 * confirmed by putting the bug back and watching this seed fail; it stays here so the bug
 * cannot come back unnoticed.
 */
const REGRESSIONS: { seed: number; nodes: number; bug: string }[] = [
  {
    seed: 1904,
    nodes: 3,
    bug: 'a candidate led on the others\u2019 votes before its own term was durable; after a crash it won the same term again and wrote a different entry at the same (index, term)',
  },
  {
    seed: 1,
    nodes: 3,
    bug: 'every AppendEntries in a full inflight window was lost and nothing freed the window',
  },
  {
    seed: 4,
    nodes: 5,
    bug: 'every AppendEntries in a full inflight window was lost and nothing freed the window',
  },
  {
    seed: 29,
    nodes: 3,
    bug: 'an AppendEntries counted in flight was lost and heartbeat replies never resent it',
  },
  {
    seed: 2,
    nodes: 5,
    bug: 'an AppendEntries counted in flight was lost and heartbeat replies never resent it',
  },
];

describe('simulator regression seeds', () => {
  for (const r of REGRESSIONS) {
    test(`seed ${r.seed}, ${r.nodes} nodes: ${r.bug}`, () => {
      const res = runSeed({ seed: r.seed, nodes: r.nodes, steps: 3000 });
      assert.equal(res.violation, null);
    });
  }
});

describe('simulator sweep', () => {
  for (const nodes of [3, 5]) {
    test(`100 seeds with ${nodes} nodes: no violation; every fault, snapshot install, membership change and transfer happened`, () => {
      let drops = 0;
      let dups = 0;
      let reorders = 0;
      let partitions = 0;
      let crashes = 0;
      let pauses = 0;
      let reads = 0;
      let snapshots = 0;
      let installs = 0;
      let confChanges = 0;
      let transfers = 0;
      for (let seed = 1; seed <= 100; seed++) {
        const r = runSeed({ seed, nodes, steps: 3000 });
        assert.equal(r.violation, null, `seed ${seed}`);
        drops += r.stats.drops;
        dups += r.stats.dups;
        reorders += r.stats.reorders;
        partitions += r.stats.partitions;
        crashes += r.stats.crashes;
        pauses += r.stats.pauses;
        reads += r.stats.reads;
        snapshots += r.stats.snapshots;
        installs += r.stats.snapshotInstalls;
        confChanges += r.stats.confChanges;
        transfers += r.stats.transfers;
      }
      const counts = {
        drops,
        dups,
        reorders,
        partitions,
        crashes,
        pauses,
        reads,
        snapshots,
        installs,
        confChanges,
        transfers,
      };
      for (const [name, n] of Object.entries(counts)) {
        assert.ok(n > 0, `${name} = ${n}`);
      }
    });
  }

  test('a seed replays exactly', () => {
    const a = runSeed({ seed: 77, nodes: 3, steps: 2000 });
    const b = runSeed({ seed: 77, nodes: 3, steps: 2000 });
    assert.deepEqual(a.stats, b.stats);
  });
});

function entry(index: number, term: number, value: number): Entry {
  return { index, term, type: EntryType.Normal, data: encodeValue(value) };
}

describe('the checker catches what it must', () => {
  test('two leaders in one term', () => {
    const c = new Checker();
    const core = new RaftCore({
      id: 'a',
      storage: new MemoryStorage({
        index: 1,
        term: 1,
        conf: { voters: ['a'], votersOutgoing: [], learners: [], autoLeave: false },
      }),
      rng: new Rng(1),
      electionTicks: 10,
      heartbeatTicks: 1,
    });
    c.onLeader('a', 2, core);
    assert.throws(() => c.onLeader('b', 2, core), Violation);
  });

  test('two different entries at one (index, term)', () => {
    const c = new Checker();
    c.onAppend('a', [entry(2, 1, 10)], 1);
    assert.throws(() => c.onAppend('b', [entry(2, 1, 11)], 1), Violation);
  });

  test('the same entry after a different previous term', () => {
    const c = new Checker();
    c.onAppend('a', [entry(3, 2, 10)], 1);
    assert.throws(() => c.onAppend('b', [entry(3, 2, 10)], 2), Violation);
  });

  test('a different entry applied at an index', () => {
    const c = new Checker();
    c.onApply('a', 1, entry(2, 1, 10));
    assert.throws(() => c.onApply('b', 1, entry(2, 1, 11)), Violation);
  });

  test('an entry applied out of order', () => {
    const c = new Checker();
    assert.throws(() => c.onApply('a', 1, entry(3, 1, 10)), Violation);
  });

  test('a snapshot whose state differs from what was applied', () => {
    const c = new Checker();
    c.onApply('a', 1, entry(2, 1, 10));
    c.onApply('a', 2, entry(3, 1, 11));
    c.onSnapshotLoad('b', 3, [10, 11]);
    assert.throws(() => c.onSnapshotLoad('b', 3, [10, 12]), Violation);
    assert.throws(() => c.onSnapshotLoad('b', 3, [10]), Violation);
  });
});

test('a founding configuration at index 0 is refused (a joiner would derive another one)', () => {
  const conf = { voters: ['a', 'b', 'c'], votersOutgoing: [], learners: [], autoLeave: false };
  assert.throws(
    () =>
      new RaftCore({
        id: 'a',
        storage: new MemoryStorage({ index: 0, term: 0, conf }),
        rng: new Rng(1),
        electionTicks: 10,
        heartbeatTicks: 1,
      }),
    /bootstrap the initial configuration as a snapshot at index 1/,
  );
});
