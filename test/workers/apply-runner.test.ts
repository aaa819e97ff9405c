/**
 * ApplyRunner: runs of commands batched into one onApply call, non-commands passed over,
 * re-calls after partial consumption (braft's rule for the entry the iterator stands at),
 * results per index, failures that stop applying for good, and queries.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ApplyIterator, StateMachine } from '../../src/main/state-machine.js';
import { EntryType } from '../../src/raft/types.js';
import type { Value } from '../../src/shared/value-codec.js';
import { type ApplyEntry, ApplyRunner } from '../../src/workers/fsm/apply-runner.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Entries first..first+types.length-1 in term 1, each carrying `c<index>` as its data. */
function entries(first: number, types: EntryType[]): ApplyEntry[] {
  return types.map((type, i) => ({
    index: first + i,
    term: 1,
    type,
    data: type === EntryType.Normal ? encoder.encode(`c${first + i}`) : new Uint8Array(0),
  }));
}

function normals(first: number, count: number): ApplyEntry[] {
  return entries(first, new Array<EntryType>(count).fill(EntryType.Normal));
}

/** Collects onResult calls as [index, result]. */
function collector(): {
  results: [number, Value][];
  onResult: (index: number, term: number, r: Value) => void;
} {
  const results: [number, Value][] = [];
  return { results, onResult: (index, _term, r) => results.push([index, r]) };
}

/** A state machine that records each onApply call's indexes and answers `r<index>`. */
class Recorder implements StateMachine {
  calls: number[][] = [];
  applied: string[] = [];
  errors: Error[] = [];
  /** How many entries one onApply call handles before returning (Infinity: all). */
  perCall = Number.POSITIVE_INFINITY;

  onApply(iter: ApplyIterator): void {
    const call: number[] = [];
    this.calls.push(call);
    for (const it of iter) {
      call.push(it.index());
      this.applied.push(decoder.decode(it.data()));
      it.done(`r${it.index()}`);
      if (call.length >= this.perCall) break;
    }
  }

  onError(error: Error): void {
    this.errors.push(error);
  }
}

describe('applyBatch', () => {
  test('a run of commands goes to one onApply call, with results per index', async () => {
    const sm = new Recorder();
    const runner = new ApplyRunner(sm);
    const { results, onResult } = collector();
    assert.deepEqual(await runner.applyBatch(normals(1, 5), onResult), { appliedIndex: 5 });
    assert.deepEqual(sm.calls, [[1, 2, 3, 4, 5]]);
    assert.deepEqual(sm.applied, ['c1', 'c2', 'c3', 'c4', 'c5']);
    assert.deepEqual(results, [
      [1, 'r1'],
      [2, 'r2'],
      [3, 'r3'],
      [4, 'r4'],
      [5, 'r5'],
    ]);
    assert.equal(runner.appliedIndex, 5);
  });

  test('no-ops and configuration changes are passed over but count as applied', async () => {
    const sm = new Recorder();
    const runner = new ApplyRunner(sm);
    const { results, onResult } = collector();
    const { Normal: N, Noop, ConfChange } = EntryType;
    const batch = entries(10, [Noop, N, N, ConfChange, N, Noop, Noop]);
    assert.deepEqual(await runner.applyBatch(batch, onResult), { appliedIndex: 16 });
    assert.deepEqual(sm.calls, [[11, 12], [14]]);
    assert.deepEqual(
      results.map(([i]) => i),
      [11, 12, 14],
    );
    // A batch of nothing but non-commands never calls onApply.
    assert.deepEqual(await runner.applyBatch(entries(17, [Noop, ConfChange]), onResult), {
      appliedIndex: 18,
    });
    assert.equal(sm.calls.length, 2);
  });

  test('an empty batch answers the applied index so far', async () => {
    const runner = new ApplyRunner(new Recorder());
    assert.deepEqual(await runner.applyBatch([], () => {}), { appliedIndex: 0 });
    await runner.applyBatch(normals(1, 2), () => {});
    assert.deepEqual(await runner.applyBatch([], () => {}), { appliedIndex: 2 });
  });

  test('onApply returning early is called again with the entries after the one it stood at', async () => {
    const sm = new Recorder();
    sm.perCall = 2;
    const runner = new ApplyRunner(sm);
    const { results, onResult } = collector();
    assert.deepEqual(await runner.applyBatch(normals(1, 5), onResult), { appliedIndex: 5 });
    assert.deepEqual(sm.calls, [[1, 2], [3, 4], [5]]);
    assert.deepEqual(sm.applied, ['c1', 'c2', 'c3', 'c4', 'c5']);
    assert.deepEqual(
      results.map(([i, r]) => `${i}:${String(r)}`),
      ['1:r1', '2:r2', '3:r3', '4:r4', '5:r5'],
    );
  });

  test("braft's own loop works, and the standing entry counts as applied when onApply returns", async () => {
    const seen: number[][] = [];
    const sm: StateMachine = {
      onApply(iter) {
        const call: number[] = [];
        seen.push(call);
        // Handles one entry and returns without next(): braft moves past it.
        if (iter.valid()) {
          call.push(iter.index());
          iter.done(iter.term() * 100 + iter.index());
        }
      },
    };
    const { results, onResult } = collector();
    const runner = new ApplyRunner(sm);
    await runner.applyBatch(normals(1, 3), onResult);
    assert.deepEqual(seen, [[1], [2], [3]]);
    assert.deepEqual(results, [
      [1, 101],
      [2, 102],
      [3, 103],
    ]);

    const loopSeen: number[] = [];
    const loop = new ApplyRunner({
      onApply(iter) {
        for (; iter.valid(); iter.next()) loopSeen.push(iter.index());
      },
    });
    assert.deepEqual(await loop.applyBatch(normals(1, 4), () => {}), { appliedIndex: 4 });
    assert.deepEqual(loopSeen, [1, 2, 3, 4]);
  });

  test('entries consumed without done() answer undefined; the last done() wins', async () => {
    const runner = new ApplyRunner({
      onApply(iter) {
        for (const it of iter) {
          if (it.index() === 2) {
            it.done('first');
            it.done('second');
          }
        }
      },
    });
    const { results, onResult } = collector();
    await runner.applyBatch(normals(1, 3), onResult);
    assert.deepEqual(results, [
      [1, undefined],
      [2, 'second'],
      [3, undefined],
    ]);
  });

  test('an async onApply is awaited and its results are reported in order', async () => {
    const runner = new ApplyRunner({
      async onApply(iter) {
        for (const it of iter) {
          await new Promise((resolve) => setImmediate(resolve));
          it.done(it.index() * 2);
        }
      },
    });
    const { results, onResult } = collector();
    assert.deepEqual(await runner.applyBatch(normals(7, 3), onResult), { appliedIndex: 9 });
    assert.deepEqual(results, [
      [7, 14],
      [8, 16],
      [9, 18],
    ]);
  });

  test('one iterator object is reused across calls, and refuses use after onApply returned', async () => {
    const iters: ApplyIterator[] = [];
    const runner = new ApplyRunner({
      onApply(iter) {
        iters.push(iter);
        for (const it of iter) assert.equal(it, iter);
      },
    });
    await runner.applyBatch(normals(1, 2), () => {});
    await runner.applyBatch(entries(3, [EntryType.Normal, EntryType.Noop, EntryType.Normal]), () => {});
    assert.equal(iters.length, 3);
    assert.ok(iters.every((it) => it === iters[0]));
    const stale = iters[0] as ApplyIterator;
    assert.equal(stale.valid(), false);
    assert.throws(() => stale.done(1), /after onApply returned/);
    assert.throws(() => stale.next(), /after onApply returned/);
    assert.throws(() => stale.data(), /after onApply returned/);
  });

  test('reading past the last entry throws', async () => {
    let caught: unknown;
    const runner = new ApplyRunner({
      onApply(iter) {
        for (const _ of iter);
        try {
          iter.index();
        } catch (err) {
          caught = err;
        }
      },
    });
    await runner.applyBatch(normals(1, 1), () => {});
    assert.ok(caught instanceof RangeError);
  });
});

describe('failure', () => {
  test('a throw stops at the entry the iterator stood at and calls onError', async () => {
    const sm = new Recorder();
    const boom = new Error('boom');
    sm.onApply = function (iter) {
      for (const it of iter) {
        it.done(`r${it.index()}`);
        if (it.index() === 3) throw boom;
        this.applied.push(decoder.decode(it.data()));
      }
    };
    const runner = new ApplyRunner(sm);
    const { results, onResult } = collector();
    const outcome = await runner.applyBatch(normals(1, 5), onResult);
    assert.deepEqual(outcome, { error: boom, failedIndex: 3 });
    assert.deepEqual(
      results.map(([i]) => i),
      [1, 2],
      'entry 3 and later are not reported',
    );
    assert.deepEqual(sm.errors, [boom]);
    assert.equal(runner.appliedIndex, 2);
    assert.equal(runner.failure, outcome);
  });

  test('after a failure every later batch answers the same failure without calling onApply', async () => {
    let calls = 0;
    const runner = new ApplyRunner({
      onApply(iter) {
        calls++;
        if (iter.index() === 4) throw new Error('bad entry');
        for (const _ of iter);
      },
    });
    const { results, onResult } = collector();
    assert.deepEqual(await runner.applyBatch(normals(1, 3), onResult), { appliedIndex: 3 });
    const first = await runner.applyBatch(normals(4, 2), onResult);
    assert.ok('error' in first && first.failedIndex === 4);
    const again = await runner.applyBatch(normals(4, 2), onResult);
    assert.equal(again, first);
    assert.equal(await runner.applyBatch(normals(6, 1), onResult), first);
    assert.equal(calls, 2);
    assert.equal(results.length, 3);
    await assert.rejects(runner.runQuery('x'), /stopped at index 4: bad entry/);
  });

  test('a rejection is a failure too; a run already passed counts, later runs do not', async () => {
    const runner = new ApplyRunner({
      async onApply(iter) {
        for (const it of iter) {
          await Promise.resolve();
          if (it.index() === 5) throw new Error('async boom');
          it.done(it.index());
        }
      },
    });
    const { results, onResult } = collector();
    const { Normal: N, Noop } = EntryType;
    const outcome = await runner.applyBatch(entries(1, [N, N, Noop, N, N, N, Noop]), onResult);
    assert.ok('error' in outcome);
    assert.equal(outcome.error.message, 'async boom');
    assert.equal(outcome.failedIndex, 5);
    assert.deepEqual(
      results.map(([i]) => i),
      [1, 2, 4],
    );
    assert.equal(runner.appliedIndex, 4);
  });

  test('a throw after passing the whole run fails at the entry after the run', async () => {
    const runner = new ApplyRunner({
      onApply(iter) {
        for (const it of iter) it.done(1);
        throw new Error('late');
      },
    });
    const { results, onResult } = collector();
    const outcome = await runner.applyBatch(
      entries(1, [EntryType.Normal, EntryType.Normal, EntryType.Noop]),
      onResult,
    );
    assert.ok('error' in outcome);
    assert.equal(outcome.failedIndex, 3);
    assert.equal(results.length, 2);
  });

  test('a non-Error throw becomes an Error; a throwing or rejecting onError is contained', async () => {
    const throwing = new ApplyRunner({
      onApply() {
        throw 'a string';
      },
      onError() {
        throw new Error('onError failed');
      },
    });
    const outcome = await throwing.applyBatch(normals(1, 1), () => {});
    assert.ok('error' in outcome);
    assert.ok(outcome.error instanceof Error);
    assert.match(outcome.error.message, /a string/);
    assert.equal(outcome.error.cause, 'a string');

    let unhandled = 0;
    const onUnhandled = () => unhandled++;
    process.on('unhandledRejection', onUnhandled);
    try {
      const rejecting = new ApplyRunner({
        onApply() {
          throw new Error('x');
        },
        // Typed void, but a user may still write it async.
        onError: (async () => {
          throw new Error('async onError failed');
        }) as () => void,
      });
      const out2 = await rejecting.applyBatch(normals(1, 1), () => {});
      assert.ok('error' in out2);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(unhandled, 0);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('runQuery', () => {
  test('answers through query(), sync or async', async () => {
    const sync = new ApplyRunner({ onApply() {}, query: (q) => ({ echo: q }) });
    assert.deepEqual(await sync.runQuery('q'), { echo: 'q' });
    const async_ = new ApplyRunner({ onApply() {}, query: async (q) => [q, q] });
    assert.deepEqual(await async_.runQuery(1), [1, 1]);
  });

  test('a state machine without query() is refused', async () => {
    const runner = new ApplyRunner({ onApply() {} });
    await assert.rejects(runner.runQuery('get'), { message: 'state machine has no query()' });
  });

  test("query()'s own error is passed on", async () => {
    const runner = new ApplyRunner({
      onApply() {},
      query() {
        throw new Error('no such key');
      },
    });
    await assert.rejects(runner.runQuery('k'), /no such key/);
  });
});

describe('a throwing onResult', () => {
  test('is kept from the user and fails the runner once onApply returns', async () => {
    let sawThrow = false;
    const runner = new ApplyRunner({
      onApply(iter) {
        try {
          for (const it of iter) it.done(it.index() === 2 ? (new Map() as unknown as Value) : it.index());
        } catch {
          sawThrow = true;
        }
      },
    });
    const reported: number[] = [];
    const outcome = await runner.applyBatch(normals(1, 4), (index, _term, result) => {
      // Like the worker, which encodes each result: a Map cannot be encoded.
      if (result instanceof Map) throw new TypeError('cannot encode a value of type Map');
      reported.push(index);
    });
    assert.equal(sawThrow, false);
    assert.ok('error' in outcome);
    assert.match(outcome.error.message, /result of entry 2 failed: cannot encode a value of type Map/);
    // All four were applied by the user; the runner stops after them.
    assert.equal(outcome.failedIndex, 5);
    assert.deepEqual(reported, [1, 3, 4]);
    assert.equal(await runner.applyBatch(normals(5, 1), () => {}), outcome);
  });

  test('also when thrown for the entry braft moves past after onApply returns', async () => {
    const runner = new ApplyRunner({
      onApply(iter) {
        iter.done('x');
      },
    });
    const outcome = await runner.applyBatch(normals(1, 3), () => {
      throw new Error('ring closed');
    });
    assert.ok('error' in outcome);
    assert.equal(outcome.failedIndex, 2);
    assert.match(outcome.error.message, /ring closed/);
  });
});
