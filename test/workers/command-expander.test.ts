/**
 * `CommandExpander` with the real `ApplyRunner` and a recording state machine: session
 * writes reach `onApply` once per (client, seq) whatever the copies in the log, retries
 * are answered with the first copy's result, refusals are answers, and the table saved in
 * a snapshot and loaded again dedupes the same. A fast-check property drives random
 * schedules of retries, batches and snapshot restores against a model.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { ApplyIterator, StateMachine } from '../../src/main/state-machine.js';
import { type Entry, EntryType } from '../../src/raft/types.js';
import { encodeBatch } from '../../src/shared/batch-codec.js';
import { writeU64 } from '../../src/shared/entry-codec.js';
import { encodeSessionEntry, SessionEntryKind } from '../../src/shared/session-codec.js';
import type { Value } from '../../src/shared/value-codec.js';
import { ApplyRunner } from '../../src/workers/fsm/apply-runner.js';
import { ClientSessions } from '../../src/workers/fsm/client-sessions.js';
import { CommandExpander } from '../../src/workers/fsm/command-expander.js';
import { decodeSessionFile, encodeSessionFile } from '../../src/workers/fsm/session-file.js';

const text = new TextEncoder();
const untext = new TextDecoder();

/** A state machine that records every command it applies and answers `applied:<n>`. */
class Recorder implements StateMachine {
  readonly applied: string[] = [];
  onApply(iter: ApplyIterator): void {
    for (const it of iter) {
      this.applied.push(untext.decode(it.data()));
      it.done(`applied:${this.applied.length}`);
    }
  }
}

function clientId(n: number): Uint8Array {
  return new Uint8Array(16).fill(n + 1);
}

function sessionHeader(client: number, seq: number, ackBelow: number): Uint8Array {
  const h = new Uint8Array(32);
  h.set(clientId(client), 0);
  writeU64(h, 16, seq);
  writeU64(h, 24, ackBelow);
  return h;
}

/** One replica: table, expander, runner; answers by index. */
class Replica {
  readonly sm = new Recorder();
  readonly answers = new Map<number, Value[]>();
  sessions: ClientSessions;
  expander: CommandExpander;
  private runner = new ApplyRunner(this.sm);

  constructor(readonly limits = { maxSessions: 100, timeoutMs: 3_600_000 }) {
    this.sessions = new ClientSessions(limits);
    this.expander = this.newExpander();
  }

  private newExpander(): CommandExpander {
    return new CommandExpander(this.sessions, (index, _term, result) => {
      const list = this.answers.get(index) ?? [];
      list.push(result);
      this.answers.set(index, list);
    });
  }

  async apply(entries: Entry[]): Promise<void> {
    const got = await this.runner.applyBatch(this.expander.expand(entries), this.expander.onResult);
    this.expander.finish('error' in got);
    assert.ok(!('error' in got), 'the state machine does not fail');
  }

  /** Saves the table as a snapshot would and loads it into a fresh table (a restart). */
  restore(): void {
    const decoded = decodeSessionFile(encodeSessionFile(this.sessions), 'snapshot');
    this.sessions = new ClientSessions(this.limits);
    this.sessions.replace(decoded.clockMs, decoded.sessions);
    this.expander = this.newExpander();
  }
}

let nextIndex = 1;
function entry(type: EntryType, data: Uint8Array): Entry {
  return { index: nextIndex++, term: 1, type, data };
}
function register(client: number, timeMs = 1): Entry {
  return entry(
    EntryType.Session,
    encodeSessionEntry(SessionEntryKind.Register, clientId(client), timeMs, new Uint8Array(0)),
  );
}
function command(client: number, seq: number, ackBelow: number, cmd: string, timeMs = 1): Entry {
  return entry(
    EntryType.Session,
    encodeSessionEntry(
      SessionEntryKind.Command,
      sessionHeader(client, seq, ackBelow),
      timeMs,
      text.encode(cmd),
    ),
  );
}
function batch(client: number, seq: number, ackBelow: number, cmds: string[], timeMs = 1): Entry {
  return entry(
    EntryType.Session,
    encodeSessionEntry(
      SessionEntryKind.Batch,
      sessionHeader(client, seq, ackBelow),
      timeMs,
      encodeBatch(cmds.map((c) => text.encode(c))),
    ),
  );
}

describe('CommandExpander', () => {
  test('copies of a write in one batch and in later batches apply once and answer alike', async () => {
    const r = new Replica();
    const reg = register(0);
    const a = command(0, 1, 1, 'a');
    const aAgain = command(0, 1, 1, 'a');
    const plain = entry(EntryType.Normal, text.encode('plain'));
    const b = batch(0, 2, 1, ['b1', 'b2']);
    const bAgain = batch(0, 2, 1, ['b1', 'b2']);
    await r.apply([reg, a, aAgain, plain, b, bAgain]);
    const aLater = command(0, 1, 1, 'a');
    await r.apply([aLater]);
    assert.deepEqual(r.sm.applied, ['a', 'plain', 'b1', 'b2']);
    assert.deepEqual(r.answers.get(reg.index), [[0, null]]);
    assert.deepEqual(r.answers.get(a.index), [[0, 'applied:1']]);
    assert.deepEqual(r.answers.get(aAgain.index), [[0, 'applied:1']], 'answered once its first copy was');
    assert.deepEqual(r.answers.get(plain.index), ['applied:2'], 'a plain entry is not wrapped');
    assert.deepEqual(r.answers.get(b.index), [[0, ['applied:3', 'applied:4']]]);
    assert.deepEqual(r.answers.get(bAgain.index), [[0, ['applied:3', 'applied:4']]]);
    assert.deepEqual(r.answers.get(aLater.index), [[0, 'applied:1']]);
  });

  test('refusals are answers: no session, a forgotten result, a malformed entry', async () => {
    const r = new Replica();
    const stranger = command(5, 1, 1, 'x');
    const reg = register(0);
    const w1 = command(0, 1, 1, 'w1');
    const w2 = command(0, 2, 2, 'w2'); // the client had 1 answered
    const late = command(0, 1, 1, 'w1');
    const broken = entry(EntryType.Session, new Uint8Array(10));
    await r.apply([stranger, reg, w1, w2, late, broken]);
    assert.deepEqual(r.sm.applied, ['w1', 'w2']);
    const code = (index: number): Value => (r.answers.get(index)?.[0] as Value[])?.slice(0, 2);
    assert.deepEqual(code(stranger.index), [1, 'ERR_RAFT_SESSION_EXPIRED']);
    assert.deepEqual(code(late.index), [1, 'ERR_RAFT_SESSION_EXPIRED']);
    assert.deepEqual(code(broken.index), [1, 'ERR_RAFT_BAD_SESSION_ENTRY']);
  });

  test('a session idle past the timeout, by log time, is refused on its next write', async () => {
    const r = new Replica({ maxSessions: 10, timeoutMs: 1000 });
    await r.apply([register(0, 1000), command(0, 1, 1, 'a', 1500), register(1, 2600)]);
    const next = command(0, 2, 2, 'b', 2600);
    await r.apply([next]);
    assert.deepEqual(r.sm.applied, ['a']);
    assert.deepEqual((r.answers.get(next.index) as Value[][])[0]?.slice(0, 2), [
      1,
      'ERR_RAFT_SESSION_EXPIRED',
    ]);
  });

  test('the table restored from a snapshot dedupes as the one that applied the log', async () => {
    const r = new Replica();
    await r.apply([register(0), command(0, 1, 1, 'a'), command(0, 2, 1, 'b')]);
    r.restore();
    const retry = command(0, 2, 1, 'b');
    await r.apply([retry, command(0, 3, 1, 'c')]);
    assert.deepEqual(r.sm.applied, ['a', 'b', 'c']);
    assert.deepEqual(r.answers.get(retry.index), [[0, 'applied:2']]);
  });

  test('property: a random schedule of retries applies every (client, seq) exactly once', async () => {
    const schedule = fc.record({
      // Per client, per write: how many copies reach the log, and whether it is a batch.
      writes: fc.array(
        fc.array(fc.record({ copies: fc.integer({ min: 1, max: 3 }), batch: fc.boolean() }), {
          minLength: 1,
          maxLength: 6,
        }),
        {
          minLength: 1,
          maxLength: 4,
        },
      ),
      order: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 100, maxLength: 100 }),
      cuts: fc.array(fc.boolean(), { minLength: 100, maxLength: 100 }),
      restoreAt: fc.integer({ min: 0, max: 100 }),
    });
    await fc.assert(
      fc.asyncProperty(schedule, async ({ writes, order, cuts, restoreAt }) => {
        nextIndex = 1;
        const r = new Replica();
        // Every copy of every write, in a random order (pipelined clients, retries that
        // arrive late): the key decides the position in the log.
        const copies: { client: number; seq: number; batch: boolean; key: number }[] = [];
        writes.forEach((list, client) => {
          list.forEach((w, i) => {
            for (let k = 0; k < w.copies; k++) {
              copies.push({
                client,
                seq: i + 1,
                batch: w.batch,
                key: order[copies.length % order.length] as number,
              });
            }
          });
        });
        copies.sort((x, y) => x.key - y.key);
        // The client model: a write is answered once a batch holding an applied copy ends.
        const answered = writes.map(() => new Set<number>());
        const ackBelow = (client: number, seq: number): number => {
          let low = 1;
          while (answered[client]?.has(low)) low++;
          // A copy carries the point as it was when sent: never above its own seq.
          return Math.min(low, seq);
        };
        const byIndex = new Map<number, { client: number; seq: number; first: boolean }>();
        const seen = new Set<string>();
        let pending: Entry[] = writes.map((_, c) => register(c));
        let batchNo = 0;
        const flush = async (): Promise<void> => {
          await r.apply(pending);
          for (const e of pending) {
            const w = byIndex.get(e.index);
            const a = r.answers.get(e.index)?.[0] as Value[] | undefined;
            if (w !== undefined && a?.[0] === 0) answered[w.client]?.add(w.seq);
          }
          pending = [];
          if (++batchNo === restoreAt) r.restore();
        };
        for (let i = 0; i < copies.length; i++) {
          const c = copies[i] as (typeof copies)[0];
          const name = `c${c.client}s${c.seq}`;
          const e = c.batch
            ? batch(c.client, c.seq, ackBelow(c.client, c.seq), [`${name}a`, `${name}b`])
            : command(c.client, c.seq, ackBelow(c.client, c.seq), name);
          byIndex.set(e.index, { client: c.client, seq: c.seq, first: !seen.has(name) });
          seen.add(name);
          pending.push(e);
          if (cuts[i % cuts.length]) await flush();
        }
        await flush();
        // Exactly once: every write's commands were applied one time each.
        const counts = new Map<string, number>();
        for (const cmd of r.sm.applied) counts.set(cmd, (counts.get(cmd) ?? 0) + 1);
        for (const name of seen) {
          const parts = [...counts.keys()].filter((k) => k === name || k === `${name}a` || k === `${name}b`);
          assert.ok(parts.length > 0, `${name} was never applied`);
          for (const p of parts) assert.equal(counts.get(p), 1, `${p} applied ${counts.get(p)} times`);
        }
        // Every entry answered once; copies agree with the first; a refusal only for a copy
        // whose write had been answered already.
        const firstAnswer = new Map<string, Value>();
        for (const [index, w] of byIndex) {
          const list = r.answers.get(index);
          assert.equal(list?.length, 1, `entry ${index} answered ${list?.length ?? 0} times`);
          const a = list?.[0] as Value[];
          const name = `c${w.client}s${w.seq}`;
          if (a[0] === 1) {
            assert.equal(w.first, false, `the first copy of ${name} was refused: ${String(a[2])}`);
            assert.equal(a[1], 'ERR_RAFT_SESSION_EXPIRED');
            continue;
          }
          const known = firstAnswer.get(name);
          if (known === undefined) firstAnswer.set(name, a[1] as Value);
          else assert.deepEqual(a[1], known, `a copy of ${name} answered differently`);
        }
      }),
      { numRuns: 300 },
    );
  });
});
