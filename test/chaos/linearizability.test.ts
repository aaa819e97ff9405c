/**
 * The linearizability checker (`linearizability.ts`): hand-written histories that are and
 * are not linearizable, each violation with the counterexample it should shrink to; a
 * property test over histories recorded from a simulated atomic register (always
 * linearizable) and the same histories with one read made impossible (always caught); the
 * checker against an exhaustive search of the definition on small random histories (with
 * repeated values, deletes, unknown outcomes and refused calls: this is what vouches for
 * the search's shortcuts); and 20 000-operation histories, to show it is fast enough for
 * the chaos harness.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  type CheckResult,
  checkLinearizable,
  describeCall,
  formatCounterexample,
  type Operation,
} from './linearizability.js';

const SEED = 20250707;

// ------------------------------------------------------------------ building histories

/** Times in the hand-written histories are in ms (the checker sees ns); end null: no response. */
type Span = [start: number, end: number | null];

const ns = (ms: number): bigint => BigInt(ms) * 1_000_000n;

function put(client: number, value: string | null, [s, e]: Span, key = 'k'): Operation {
  return {
    client,
    op: 'put',
    key,
    value,
    expected: null,
    start: ns(s),
    end: e === null ? null : ns(e),
    ok: e !== null,
    result: null,
  };
}

function get(client: number, result: string | null, [s, e]: Span, key = 'k'): Operation {
  return {
    client,
    op: 'get',
    key,
    value: null,
    expected: null,
    start: ns(s),
    end: e === null ? null : ns(e),
    ok: e !== null,
    result: e === null ? null : result,
  };
}

function cas(
  client: number,
  expected: string | null,
  value: string,
  result: 'swapped' | 'mismatch' | null,
  [s, e]: Span,
  key = 'k',
): Operation {
  return {
    client,
    op: 'cas',
    key,
    value,
    expected,
    start: ns(s),
    end: e === null ? null : ns(e),
    ok: e !== null,
    result,
  };
}

function assertLinearizable(history: Operation[]): CheckResult {
  const r = checkLinearizable(history);
  assert.equal(r.linearizable, true, r.counterexample ? formatCounterexample(r.counterexample) : 'timed out');
  assert.equal(r.timedOut, undefined);
  return r;
}

/** Checks the history is caught, and that the counterexample is exactly `core` (in any order). */
function assertViolation(history: Operation[], core?: Operation[]): CheckResult {
  const r = checkLinearizable(history);
  assert.equal(r.linearizable, false);
  assert.equal(r.timedOut, undefined);
  const c = r.counterexample;
  assert.ok(c, 'a violation comes with a counterexample');
  assert.ok(c.ops.length > 0);
  for (const op of c.ops) assert.ok(history.includes(op), 'counterexample ops are ops of the history');
  // The counterexample is itself a proof: alone, it is not linearizable either.
  assert.equal(checkLinearizable(c.ops).linearizable, false);
  if (core !== undefined) assert.deepEqual(new Set(c.ops), new Set(core), formatCounterexample(c));
  assert.match(formatCounterexample(c), /is not linearizable/);
  return r;
}

// ------------------------------------------------------------------ linearizable histories

describe('linearizable histories', () => {
  test('empty', () => {
    assert.deepEqual(checkLinearizable([]), { linearizable: true, keys: 0, operations: 0 });
  });

  test('sequential: put, get, cas swapped and mismatched, delete by put(null)', () => {
    const r = assertLinearizable([
      get(1, null, [0, 1]),
      put(1, 'a', [2, 3]),
      get(2, 'a', [4, 5]),
      cas(1, 'a', 'b', 'swapped', [6, 7]),
      cas(2, 'a', 'c', 'mismatch', [8, 9]),
      get(3, 'b', [10, 11]),
      put(3, null, [12, 13]),
      cas(1, null, 'd', 'swapped', [14, 15]),
      get(2, 'd', [16, 17]),
    ]);
    assert.equal(r.keys, 1);
    assert.equal(r.operations, 9);
  });

  test('concurrent writes: reads may see either order while they overlap, then agree', () => {
    assertLinearizable([
      put(1, 'a', [0, 10]),
      put(2, 'b', [1, 11]),
      get(3, 'b', [2, 4]), // b took effect first ...
      get(4, 'a', [5, 12]), // ... then a
      get(3, 'a', [13, 14]),
    ]);
  });

  test('a read overlapping a write may see the old or the new value', () => {
    assertLinearizable([
      put(1, 'a', [0, 1]),
      put(1, 'b', [2, 10]),
      get(2, 'a', [3, 4]),
      get(3, 'b', [5, 6]),
      get(2, 'b', [11, 12]),
    ]);
  });

  test('two concurrent cas from the same value: one swaps, one mismatches', () => {
    assertLinearizable([
      put(1, 'a', [0, 1]),
      cas(2, 'a', 'x', 'mismatch', [2, 10]),
      cas(3, 'a', 'y', 'swapped', [3, 9]),
      get(1, 'y', [11, 12]),
    ]);
  });

  test('touching intervals count as concurrent', () => {
    assertLinearizable([put(1, 'a', [0, 5]), get(2, null, [5, 6])]);
  });

  test('keys are independent', () => {
    const r = assertLinearizable([
      put(1, 'a', [0, 1], 'x'),
      put(2, 'b', [2, 3], 'y'),
      get(3, 'a', [4, 5], 'x'),
      get(3, null, [6, 7], 'z'),
      get(4, 'b', [8, 9], 'y'),
    ]);
    assert.equal(r.keys, 3);
  });

  test('unknown outcomes: a write with no response may take effect late ...', () => {
    assertLinearizable([
      put(1, 'a', [0, 1]),
      put(2, 'b', [2, null]),
      get(3, 'a', [10, 11]),
      get(3, 'b', [100, 101]), // applied long after the client gave up
      get(3, 'b', [102, 103]),
    ]);
  });

  test('... or never', () => {
    assertLinearizable([put(1, 'a', [0, 1]), put(2, 'b', [2, null]), get(3, 'a', [1000, 1001])]);
    assertLinearizable([put(1, 'a', [0, 1]), cas(2, 'a', 'b', null, [2, null]), get(3, 'a', [1000, 1001])]);
  });

  test('an unknown cas takes effect only where it matches', () => {
    assertLinearizable([
      put(1, 'a', [0, 1]),
      cas(2, 'a', 'b', null, [2, null]),
      get(3, 'b', [5, 6]),
      put(1, 'c', [7, 8]),
      get(3, 'c', [9, 10]),
    ]);
  });

  test('an unknown write can explain a mismatch', () => {
    assertLinearizable([
      put(1, 'a', [0, 1]),
      put(2, 'z', [2, null]), // nobody reads z, yet it is why the cas below mismatched
      cas(3, 'a', 'b', 'mismatch', [5, 6]),
    ]);
  });

  test('failed calls with a definite error, and reads with no response, are ignored', () => {
    const refused: Operation = { ...put(1, 'never', [0, 1]), ok: false };
    const lostRead = get(2, null, [0, null]);
    const r = assertLinearizable([refused, lostRead, put(1, 'a', [2, 3]), get(2, 'a', [4, 5])]);
    assert.equal(r.operations, 3);
  });
});

// ------------------------------------------------------------------ violations

describe('non-linearizable histories', () => {
  test('a stale read after a completed write', () => {
    const a = put(1, 'a', [0, 1]);
    const b = put(1, 'b', [2, 3]);
    const stale = get(2, 'a', [4, 5]);
    const r = assertViolation(
      [get(3, null, [-2, -1]), a, get(3, 'a', [1, 2]), b, get(3, 'b', [3, 4]), stale],
      [a, b, stale],
    );
    assert.match(
      r.counterexample?.why ?? '',
      /client 2 get\(\) -> "a" must take effect.*it read "a".*holds "b"|holds "b".*client 2 get\(\) -> "a"/s,
    );
  });

  test('a lost write: an acknowledged put, then the key reads absent', () => {
    const w = put(1, 'a', [0, 1]);
    const r = get(2, null, [2, 3]);
    assertViolation([w, get(1, 'a', [1, 2]), r], [w, r]);
  });

  test('a lost update: two cas from the same value both swap', () => {
    const w = put(1, 'a', [0, 1]);
    const x = cas(2, 'a', 'x', 'swapped', [2, 10]);
    const y = cas(3, 'a', 'y', 'swapped', [3, 9]);
    assertViolation([w, x, y, get(1, 'x', [11, 12])], [w, x, y]);
  });

  test('a cas that succeeds against a value never written', () => {
    const w = put(1, 'a', [0, 1]);
    const c = cas(2, 'ghost', 'b', 'swapped', [2, 3]);
    const r = assertViolation([w, get(3, 'a', [1, 2]), c], [c]);
    assert.match(
      r.counterexample?.why ?? '',
      /At the start the register holds absent; next, client 2 cas\("ghost" -> "b"\) swapped must take effect \(it was answered at 1\.000 ms\), but it swapped, so the register held the "ghost" it expected\./,
    );
  });

  test('a cas that mismatches although the register holds what it expected', () => {
    const w = put(1, 'a', [0, 1]);
    const c = cas(2, 'a', 'b', 'mismatch', [2, 3]);
    assertViolation([w, c], [w, c]);
  });

  test('two reads that see values in an order no sequential order allows', () => {
    // a is written, then b (their writes do not overlap); one reader sees b, a later one sees a.
    const a = put(1, 'a', [0, 1]);
    const b = put(2, 'b', [2, 10]);
    const seesB = get(3, 'b', [3, 4]);
    const seesA = get(4, 'a', [5, 6]);
    assertViolation([a, b, seesB, seesA, get(1, 'b', [11, 12])], [a, b, seesB, seesA]);
  });

  test('a get returning a value never written', () => {
    const bad = get(2, 'nobody wrote this', [6, 7]);
    const r = assertViolation([put(1, 'a', [0, 1]), get(2, 'a', [2, 3]), put(1, 'b', [4, 5]), bad], [bad]);
    assert.match(
      r.counterexample?.why ?? '',
      /At the start the register holds absent; next, client 2 get\(\) -> "nobody wrote this" must take effect/,
    );
  });

  test('a read from the future: the value is written only after the read returned', () => {
    const early = get(2, 'a', [0, 1]);
    const w = put(1, 'a', [2, 3]);
    assertViolation([early, w], [early, w]);
  });

  test('an unknown write cannot take effect before it was invoked', () => {
    const early = get(2, 'a', [0, 1]);
    const w = put(1, 'a', [2, null]);
    assertViolation([early, w], [early, w]);
  });

  test('a definitely failed put cannot explain a read', () => {
    const refused: Operation = { ...put(1, 'a', [0, 1]), ok: false };
    const r = get(2, 'a', [2, 3]);
    assertViolation([refused, r], [r]);
  });

  test('one bad key among good ones is named', () => {
    const history: Operation[] = [];
    for (let k = 0; k < 5; k++) {
      history.push(
        put(1, `v${k}`, [10 * k, 10 * k + 1], `key${k}`),
        get(2, `v${k}`, [10 * k + 2, 10 * k + 3], `key${k}`),
      );
    }
    history.push(get(3, 'v1', [100, 101], 'key3'));
    const r = assertViolation(history);
    assert.equal(r.counterexample?.key, 'key3');
    assert.equal(r.keys, 5);
  });

  test('formatCounterexample', () => {
    const r = checkLinearizable([put(1, 'a', [0, 1]), get(2, null, [2, 3])]);
    assert.ok(r.counterexample);
    const text = formatCounterexample(r.counterexample);
    assert.match(text, /^key "k" is not linearizable \(2 operations\)$/m);
    assert.match(text, /client 1 +put\("a"\) +0\.000 \.\. 1\.000/);
    assert.match(text, /client 2 +get\(\) -> absent +2\.000 \.\. 3\.000/);
    assert.equal(describeCall(cas(1, null, 'x', null, [0, null])), 'cas(absent -> "x") ?');
  });

  test('malformed operations are refused', () => {
    assert.throws(
      () => checkLinearizable([{ ...cas(1, 'a', 'b', 'swapped', [0, 1]), result: 'true' }]),
      TypeError,
    );
    assert.throws(() => checkLinearizable([put(1, 'a', [5, 1])]), RangeError);
  });
});

// ------------------------------------------------------------------ a simulated register

interface SimOptions {
  clients: number;
  keys: number;
  ops: number;
  /** Probability that an op gets no response (it then takes effect or not, at random). */
  unknown: number;
}

/** A small deterministic PRNG (mulberry32), so generated histories are reproducible. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Records a history of clients running against a real atomic map: each op takes effect at
 * one instant (its linearization point) inside its interval, and its result is what the map
 * gave at that instant. Clients are sequential; an op with no response lets the client move
 * on after a timeout while the op takes effect later (or never). Values are unique.
 */
function simulate(seed: number, o: SimOptions): Operation[] {
  const rand = rng(seed);
  const int = (n: number): number => Math.floor(rand() * n);
  interface Pending {
    op: Operation;
    at: number; // linearization point; Infinity: never takes effect
  }
  const pending: Pending[] = [];
  const clock = Array.from({ length: o.clients }, () => int(50));
  const seen: string[] = [];
  for (let i = 0; i < o.ops; i++) {
    const client = int(o.clients);
    const start = (clock[client] as number) + 1 + int(20);
    const duration = 1 + int(60);
    const key = `k${int(o.keys)}`;
    const unknown = rand() < o.unknown;
    const r = rand();
    const value = `v${i}`;
    const kind = r < 0.4 ? 'get' : r < 0.75 ? 'put' : 'cas';
    const expected =
      kind !== 'cas'
        ? null
        : rand() < 0.15 || seen.length === 0
          ? null
          : (seen[seen.length - 1 - int(Math.min(4, seen.length))] as string);
    const op: Operation = {
      client,
      op: kind,
      key,
      value: kind === 'get' ? null : value,
      expected,
      start: BigInt(start),
      end: unknown ? null : BigInt(start + duration),
      ok: !unknown,
      result: null,
    };
    // Distinct instants: the fraction keeps points apart from each other and from interval ends.
    const inside = start + rand() * duration;
    const at = !unknown ? inside : rand() < 0.5 ? Number.POSITIVE_INFINITY : start + rand() * 5 * duration;
    pending.push({ op, at });
    if (kind !== 'get') seen.push(value);
    clock[client] = start + duration;
  }
  const state = new Map<string, string>();
  for (const { op, at } of [...pending].sort((x, y) => x.at - y.at)) {
    if (at === Number.POSITIVE_INFINITY) break;
    const cur = state.get(op.key) ?? null;
    if (op.op === 'get') op.result = op.end === null ? null : cur;
    else if (op.op === 'put') state.set(op.key, op.value as string);
    else if (cur === op.expected) {
      state.set(op.key, op.value as string);
      op.result = 'swapped';
    } else op.result = 'mismatch';
  }
  for (const { op } of pending) if (op.end === null) op.result = null;
  return pending.map((p) => p.op);
}

describe('histories of a simulated atomic register', () => {
  const simArb = fc.record({
    seed: fc.integer(),
    clients: fc.integer({ min: 1, max: 8 }),
    keys: fc.integer({ min: 1, max: 3 }),
    ops: fc.integer({ min: 1, max: 120 }),
    unknown: fc.constantFrom(0, 0.05, 0.2),
  });

  test('are always linearizable', () => {
    fc.assert(
      fc.property(simArb, ({ seed, ...o }) => {
        const h = simulate(seed, o);
        const r = checkLinearizable(h, { timeoutMs: 10_000 });
        if (!r.linearizable)
          throw new Error(r.counterexample ? formatCounterexample(r.counterexample) : 'timed out');
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  test('and one read made impossible is always caught', () => {
    fc.assert(
      fc.property(simArb, fc.nat(), fc.boolean(), ({ seed, ...o }, pick, future) => {
        const h = simulate(seed, o);
        const reads = h.filter((op) => op.op === 'get' && op.end !== null);
        fc.pre(reads.length > 0);
        const victim = reads[pick % reads.length] as Operation;
        // Impossible: a value nobody wrote, or one whose every write was invoked only after
        // the read had returned (a read from the future).
        const later = h.filter(
          (op) => op.op !== 'get' && op.key === victim.key && op.start > (victim.end as bigint),
        );
        const futureValue = later.find((w) => !h.some((x) => x !== w && x.value === w.value))?.value;
        const mutated = h.map((op) =>
          op === victim ? { ...op, result: future && futureValue ? futureValue : 'impossible' } : op,
        );
        const r = checkLinearizable(mutated, { timeoutMs: 10_000 });
        assert.equal(r.linearizable, false);
        assert.equal(r.timedOut, undefined);
        assert.equal(r.counterexample?.key, victim.key);
        assert.ok(r.counterexample?.ops.some((op) => op.op === 'get' && op.start === victim.start));
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
});

// ------------------------------------------------------------------ against a brute force

/**
 * The definition, searched exhaustively: some order of the operations that took effect
 * (every answered one, any subset of the unknown ones) respects real time (a before b when a
 * was answered before b was invoked) and is legal for registers starting absent.
 */
function bruteForce(history: readonly Operation[]): boolean {
  const ops = history.filter((op) => (op.ok || op.end === null) && !(op.op === 'get' && op.end === null));
  const byKey = new Map<string, Operation[]>();
  for (const op of ops) byKey.set(op.key, [...(byKey.get(op.key) ?? []), op]);
  const precedes = (x: Operation, y: Operation): boolean => x.end !== null && x.end < y.start;
  const failed = new Set<string>();
  const extend = (key: string, rest: Operation[], state: string | null): boolean => {
    if (rest.every((op) => op.end === null)) return true;
    const memo = `${key}|${rest.map((op) => ops.indexOf(op)).join(',')}|${state}`;
    if (failed.has(memo)) return false;
    for (const op of rest) {
      if (rest.some((other) => other !== op && precedes(other, op))) continue;
      const others = rest.filter((o) => o !== op);
      let next: string | null | undefined;
      if (op.op === 'put') next = op.value;
      else if (op.op === 'get') next = op.result === state ? state : undefined;
      else if (op.end === null) next = op.expected === state ? op.value : undefined;
      else if (op.result === 'swapped') next = op.expected === state ? op.value : undefined;
      else next = op.expected !== state ? state : undefined;
      if (next !== undefined && extend(key, others, next)) return true;
      // An unknown op may also never take effect.
      if (op.end === null && extend(key, others, state)) return true;
    }
    failed.add(memo);
    return false;
  };
  return [...byKey].every(([key, keyOps]) => extend(key, keyOps, null));
}

describe('agrees with a brute-force search', () => {
  const values = ['a', 'b', 'c'];
  const opArb = fc.record({
    client: fc.nat({ max: 3 }),
    kind: fc.constantFrom('put', 'get', 'cas', 'del'),
    key: fc.constantFrom('x', 'x', 'x', 'y'),
    value: fc.constantFrom(...values),
    expected: fc.constantFrom(null, ...values),
    result: fc.constantFrom(null, ...values),
    swapped: fc.boolean(),
    start: fc.nat({ max: 30 }),
    length: fc.nat({ max: 12 }),
    fate: fc.constantFrom('answered', 'answered', 'answered', 'answered', 'unknown', 'refused'),
  });
  const historyArb = fc.array(opArb, { minLength: 1, maxLength: 9 }).map((raw) =>
    raw.map((r): Operation => {
      const op = r.kind === 'del' ? 'put' : r.kind;
      const answered = r.fate !== 'unknown';
      return {
        client: r.client,
        op,
        key: r.key,
        value: r.kind === 'get' ? null : r.kind === 'del' ? null : r.value,
        expected: op === 'cas' ? r.expected : null,
        start: BigInt(r.start),
        end: answered ? BigInt(r.start + r.length) : null,
        ok: r.fate === 'answered',
        result: !answered
          ? null
          : op === 'get'
            ? r.result
            : op === 'cas'
              ? r.swapped
                ? 'swapped'
                : 'mismatch'
              : null,
      };
    }),
  );

  test('on small random histories, and every counterexample is one', () => {
    let violations = 0;
    fc.assert(
      fc.property(historyArb, (h) => {
        const expected = bruteForce(h);
        const r = checkLinearizable(h);
        assert.equal(r.linearizable, expected);
        if (!expected) {
          violations++;
          const c = r.counterexample as NonNullable<CheckResult['counterexample']>;
          assert.equal(bruteForce(c.ops), false, formatCounterexample(c));
          assert.equal(bruteForce(h.filter((op) => op.key === c.key)), false);
        }
      }),
      { seed: SEED, numRuns: 4000 },
    );
    assert.ok(violations > 500, `${violations} of the histories were violations`);
  });

  test('on histories made to be nearly linearizable', () => {
    // Start from a simulated register and change one result at random (often still fine).
    fc.assert(
      fc.property(
        fc.integer(),
        fc.integer({ min: 1, max: 5 }),
        fc.nat(),
        fc.constantFrom('v0', 'v1', 'v2', 'v3', null),
        (seed, clients, pick, value) => {
          const h = simulate(seed, { clients, keys: 1, ops: 9, unknown: 0.15 });
          const victim = h[pick % h.length] as Operation;
          const mutated = h.map((op) => {
            if (op !== victim || op.end === null) return op;
            if (op.op === 'get') return { ...op, result: value };
            if (op.op === 'cas') return { ...op, result: op.result === 'swapped' ? 'mismatch' : 'swapped' };
            return { ...op, value };
          });
          assert.equal(checkLinearizable(mutated).linearizable, bruteForce(mutated));
        },
      ),
      { seed: SEED, numRuns: 3000 },
    );
  });
});

describe('performance', () => {
  test('20 000 ops, 10 keys, 10 clients, some without a response', () => {
    const h = simulate(SEED, { clients: 10, keys: 10, ops: 20_000, unknown: 0.01 });
    const t0 = performance.now();
    const r = checkLinearizable(h);
    const ms = performance.now() - t0;
    assert.equal(r.linearizable, true, r.timedOut ? 'timed out' : undefined);
    assert.equal(r.keys, 10);
    assert.equal(r.operations, 20_000);
    console.log(`# checked ${r.operations} ops over ${r.keys} keys in ${ms.toFixed(0)} ms`);
  });

  test('20 000 ops on one key, 10 clients', () => {
    const h = simulate(SEED + 1, { clients: 10, keys: 1, ops: 20_000, unknown: 0.002 });
    const t0 = performance.now();
    const r = checkLinearizable(h);
    assert.equal(r.linearizable, true, r.timedOut ? 'timed out' : undefined);
    console.log(`# checked ${r.operations} ops on one key in ${(performance.now() - t0).toFixed(0)} ms`);
  });

  test('a search over budget gives up: not linearizable, timed out, no counterexample', () => {
    const h = simulate(SEED + 3, { clients: 10, keys: 1, ops: 20_000, unknown: 0.01 });
    const r = checkLinearizable(h, { timeoutMs: 0 });
    assert.deepEqual(r, { linearizable: false, keys: 1, operations: 20_000, timedOut: true });
  });

  test('a stale read late in 20 000 ops is found and shrunk to itself and two puts', () => {
    const h = simulate(SEED + 2, { clients: 10, keys: 10, ops: 20_000, unknown: 0.01 });
    const answered = (op: Operation): op is Operation & { end: bigint } => op.end !== null;
    const puts = h.filter((op) => op.op === 'put' && answered(op));
    // A late read, made to return a value (written once) that a later put had overwritten,
    // both puts over before the read began.
    let found: [Operation, Operation] | undefined;
    for (const g of [...h].reverse()) {
      if (g.op !== 'get' || !answered(g)) continue;
      const before = puts.filter((p) => p.key === g.key && (p.end as bigint) < g.start);
      const last = before.at(-1);
      const first = before.find((p) => last !== undefined && (p.end as bigint) < last.start);
      if (first) {
        found = [first, g];
        break;
      }
    }
    assert.ok(found);
    const [first, read] = found;
    const stale = { ...read, result: first.value };
    const mutated = h.map((op) => (op === read ? stale : op));
    const t0 = performance.now();
    const r = checkLinearizable(mutated);
    const ms = performance.now() - t0;
    assert.equal(r.linearizable, false);
    assert.ok(r.counterexample);
    // The read, the put of what it read, and a put that overwrote that before the read
    // began (any such put will do).
    const text = formatCounterexample(r.counterexample);
    const ops = r.counterexample.ops;
    assert.equal(ops.length, 3, text);
    assert.ok(ops.includes(stale) && ops.includes(first), text);
    const other = ops.find((op) => op !== stale && op !== first) as Operation;
    assert.equal(other.op, 'put', text);
    assert.ok((first.end as bigint) < other.start && (other.end as bigint) < stale.start, text);
    console.log(
      `# found and shrunk in ${ms.toFixed(0)} ms:\n${formatCounterexample(r.counterexample).replace(/^/gm, '# ')}`,
    );
  });
});
