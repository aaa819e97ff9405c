/**
 * The example state machines, driven through ApplyRunner as the fsm worker drives them and
 * loaded through loadStateMachine as the worker loads them; and loadStateMachine's refusals.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import Counter, { counterCommand } from '../../examples/counter.js';
import KvStore, { type KvCommand, kvCommand } from '../../examples/kv.js';
import {
  loadStateMachine,
  type StateMachine,
  type StateMachineContext,
} from '../../src/main/state-machine.js';
import { EntryType } from '../../src/raft/types.js';
import type { Value } from '../../src/shared/value-codec.js';
import { type ApplyEntry, ApplyRunner } from '../../src/workers/fsm/apply-runner.js';

const ctx: StateMachineContext = { nodeId: 'n1', dataDir: '/tmp/raftline-test-n1', options: {} };

/** Applies `commands` as entries from index 1 on and returns their results in order. */
async function applyAll(runner: ApplyRunner, commands: Uint8Array[], first = 1): Promise<Value[]> {
  const batch: ApplyEntry[] = commands.map((data, i) => ({
    index: first + i,
    term: 1,
    type: EntryType.Normal,
    data,
  }));
  const results: Value[] = [];
  const outcome = await runner.applyBatch(batch, (_index, _term, r) => results.push(r));
  assert.deepEqual(outcome, { appliedIndex: first + commands.length - 1 });
  return results;
}

const text = (s: string) => new TextEncoder().encode(s);

function isBadCommand(r: Value): boolean {
  return typeof r === 'object' && r !== null && typeof (r as { error?: unknown }).error === 'string'
    ? (r as { error: string }).error.startsWith('bad command')
    : false;
}

describe('counter', () => {
  test('counterCommand builds the text commands', () => {
    assert.equal(new TextDecoder().decode(counterCommand('inc')), 'inc');
    assert.equal(new TextDecoder().decode(counterCommand('dec', 5)), 'dec 5');
    assert.equal(new TextDecoder().decode(counterCommand('set', -3)), 'set -3');
    assert.throws(() => counterCommand('set'), RangeError);
    assert.throws(() => counterCommand('inc', 1.5), RangeError);
  });

  test('inc, dec and set answer the new value; query reads it', async () => {
    const sm = new Counter();
    const runner = new ApplyRunner(sm);
    const results = await applyAll(runner, [
      counterCommand('inc'),
      counterCommand('inc', 10),
      counterCommand('dec'),
      counterCommand('dec', 20),
      counterCommand('set', 42),
      counterCommand('inc', -2),
    ]);
    assert.deepEqual(results, [1, 11, 10, -10, 42, 40]);
    assert.equal(await runner.runQuery('get'), 40);
    assert.equal(await runner.runQuery(undefined), 40);
    await assert.rejects(runner.runQuery('what'));
  });

  test('bad commands answer an error value and change nothing', async () => {
    const runner = new ApplyRunner(new Counter());
    const results = await applyAll(runner, [
      counterCommand('set', 7),
      text('mul 3'),
      text('inc  1'),
      text('inc 1.5'),
      text('set'),
      text(''),
      text('inc 99999999999999999'),
      new Uint8Array([0xff, 0xfe]),
      text(`inc ${'1'.repeat(100)}`),
      counterCommand('set', Number.MAX_SAFE_INTEGER),
      counterCommand('inc'),
      counterCommand('dec'),
    ]);
    assert.equal(results[0], 7);
    for (const r of results.slice(1, 9)) assert.ok(isBadCommand(r), JSON.stringify(r));
    assert.match((results[1] as { error: string }).error, /"mul 3"/);
    assert.equal(results[9], Number.MAX_SAFE_INTEGER);
    assert.ok(isBadCommand(results[10]), 'overflow is refused');
    assert.equal(results[11], Number.MAX_SAFE_INTEGER - 1);
  });

  test('"set -0" stores 0, not -0', async () => {
    const runner = new ApplyRunner(new Counter());
    const [r] = await applyAll(runner, [text('set -0')]);
    assert.ok(Object.is(r, 0));
  });

  test('a snapshot saved and loaded gives the same value', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'counter-snap-'));
    try {
      const sm = new Counter();
      await applyAll(new ApplyRunner(sm), [text('set 41'), text('inc')]);
      sm.onSnapshotSave({ dir, meta: { index: 3, term: 1 } });
      const restored = new Counter();
      restored.onSnapshotLoad({ dir, meta: { index: 3, term: 1 } });
      assert.equal(restored.query('get'), 42);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('kv', () => {
  test('put, delete and cas answer what happened; query reads', async () => {
    const runner = new ApplyRunner(new KvStore());
    const commands: KvCommand[] = [
      { op: 'put', key: 'a', value: '1' },
      { op: 'put', key: 'a', value: '2' },
      { op: 'put', key: 'ключ', value: 'значение 😀' },
      { op: 'delete', key: 'a' },
      { op: 'delete', key: 'a' },
      { op: 'cas', key: 'c', expected: null, value: 'created' },
      { op: 'cas', key: 'c', expected: null, value: 'again' },
      { op: 'cas', key: 'c', expected: 'wrong', value: 'x' },
      { op: 'cas', key: 'c', expected: 'created', value: 'swapped' },
      { op: 'cas', key: 'missing', expected: 'v', value: 'x' },
      { op: 'put', key: '', value: '' },
    ];
    const results = await applyAll(runner, commands.map(kvCommand));
    assert.deepStrictEqual(results, [
      { ok: true, prev: null },
      { ok: true, prev: '1' },
      { ok: true, prev: null },
      { ok: true, deleted: true },
      { ok: true, deleted: false },
      { ok: true, current: 'created' },
      { ok: false, current: 'created' },
      { ok: false, current: 'created' },
      { ok: true, current: 'swapped' },
      { ok: false, current: null },
      { ok: true, prev: null },
    ]);
    assert.equal(await runner.runQuery({ op: 'get', key: 'c' }), 'swapped');
    assert.equal(await runner.runQuery({ op: 'get', key: 'ключ' }), 'значение 😀');
    assert.equal(await runner.runQuery({ op: 'get', key: 'a' }), null);
    assert.equal(await runner.runQuery({ op: 'get', key: '' }), '');
    assert.equal(await runner.runQuery({ op: 'size' }), 3);
    await assert.rejects(runner.runQuery({ op: 'scan' }));
    await assert.rejects(runner.runQuery('get'));
  });

  test('bad commands answer an error value and change nothing', async () => {
    const runner = new ApplyRunner(new KvStore());
    const good = kvCommand({ op: 'put', key: 'k', value: 'v' });
    const cas = kvCommand({ op: 'cas', key: 'k', expected: 'v', value: 'w' });
    const badFlag = cas.slice();
    badFlag[1 + 4 + 1] = 2;
    const badUtf8 = kvCommand({ op: 'put', key: 'k', value: 'x' });
    badUtf8[badUtf8.byteLength - 1] = 0xff;
    const results = await applyAll(runner, [
      new Uint8Array(0),
      new Uint8Array([9]),
      good.subarray(0, good.byteLength - 1),
      new Uint8Array([...good, 0]),
      new Uint8Array([1, 0xff, 0xff, 0xff, 0xff]),
      badFlag,
      badUtf8,
      text('put k v'),
    ]);
    for (const r of results) assert.ok(isBadCommand(r), JSON.stringify(r));
    assert.equal(await runner.runQuery({ op: 'size' }), 0);
  });

  test('kvCommand refuses what it cannot encode', () => {
    assert.throws(() => kvCommand({ op: 'put', key: 1 as unknown as string, value: 'v' }), TypeError);
    assert.throws(() => kvCommand({ op: 'put', key: 'k', value: '\ud800' }), RangeError);
    assert.throws(() => kvCommand({ op: 'get', key: 'k' } as unknown as KvCommand), TypeError);
  });
});

describe('loadStateMachine', () => {
  test('loads the examples from their modules (class default exports)', async () => {
    const counter = await loadStateMachine(new URL('../../examples/counter.js', import.meta.url), ctx);
    const runner = new ApplyRunner(counter);
    assert.deepEqual(await applyAll(runner, [counterCommand('inc', 3)]), [3]);
    const kv = await loadStateMachine(new URL('../../examples/kv.js', import.meta.url).href, ctx);
    assert.ok(kv instanceof KvStore);
  });

  const moduleUrl = (source: string) => `data:text/javascript,${encodeURIComponent(source)}`;

  test('a factory default export is called with the context, and may be async', async () => {
    const url = moduleUrl(
      'export default async (ctx) => ({ ctx, onApply(iter) { for (const it of iter) it.done(ctx.nodeId); } });',
    );
    const sm = (await loadStateMachine(url, ctx)) as StateMachine & { ctx: StateMachineContext };
    assert.deepEqual(sm.ctx, ctx);
    assert.deepEqual(await applyAll(new ApplyRunner(sm), [text('x')]), ['n1']);
  });

  test('a class default export is constructed with the context', async () => {
    const url = moduleUrl('export default class { constructor(ctx) { this.ctx = ctx; } onApply() {} }');
    const sm = (await loadStateMachine(url, ctx)) as StateMachine & { ctx: StateMachineContext };
    assert.equal(sm.ctx, ctx);
  });

  const refusals: [string, string, RegExp][] = [
    ['no default export', 'export const x = 1;', /has no default export/],
    ['a default export that is no function', 'export default 42;', /is a number, not a class or a factory/],
    ['no onApply', 'export default class { query() {} }', /has no onApply\(\) method/],
    [
      'a factory returning nothing',
      'export default () => undefined;',
      /built a undefined, not a state machine/,
    ],
    [
      'a callback that is no function',
      'export default () => ({ onApply() {}, query: 1 });',
      /query that is not/,
    ],
    ['a throwing constructor', 'export default class { constructor() { throw new Error("nope"); } }', /nope/],
    ['a syntax error', 'export default class {', /cannot import/],
  ];
  for (const [what, source, message] of refusals) {
    test(`refuses ${what} with an Error naming the module`, async () => {
      const url = moduleUrl(source);
      await assert.rejects(loadStateMachine(url, ctx), (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.match(err.message, message);
        assert.ok(err.message.includes(url), err.message);
        return true;
      });
    });
  }

  test('refuses a module that does not exist', async () => {
    const url = new URL('./no-such-state-machine.js', import.meta.url);
    await assert.rejects(loadStateMachine(url, ctx), (err: unknown) => {
      assert.ok(err instanceof Error && err.message.includes(url.href), String(err));
      return true;
    });
  });
});
