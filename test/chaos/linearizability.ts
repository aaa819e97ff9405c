/**
 * A linearizability checker for histories of the key-value store (`examples/kv.ts`): the
 * Wing & Gong search as refined by Lowe (WGL), with the memoization Porcupine uses, over a
 * model of one register per key.
 *
 * - **Model.** Every key is a register that starts absent (null). `put` sets it (a put
 *   whose `value` is null deletes the key); `get` returns it; `cas(expected, value)` sets it
 *   when it holds `expected` (null: absent) and reports `'swapped'`, else reports
 *   `'mismatch'` and changes nothing.
 * - **P-compositionality.** A history is linearizable if and only if its restriction to
 *   each key is, so each key is searched alone: a search is exponential in the number of
 *   operations that overlap in time, and splitting by key keeps that number small.
 * - **Unknown outcomes.** An operation without a response (`end === null`) may take effect
 *   at any moment after `start` or not at all (Porcupine gives it the return time +∞). A get
 *   without a response constrains nothing and is dropped. A cas without a response takes
 *   effect only where the register holds its expected value (anywhere else it would change
 *   nothing, which is the same as not taking effect).
 * - **Failed calls.** An operation with `ok === false` and a response is a definite failure
 *   (refused before it was proposed): it did not take effect and is ignored. `ok === false`
 *   with `end === null` is an unknown outcome. A cas that answered `'mismatch'` is a call
 *   that succeeded (`ok: true`) with result `'mismatch'`.
 * - **Real time.** An operation must take effect between its invocation and its response.
 *   Two operations where one's response and the other's invocation carry the same
 *   timestamp count as concurrent (the lenient reading, as in Porcupine).
 *
 * The search (per key) is WGL: a depth-first search over configurations (the set of
 * operations linearized, the register's value), walking a doubly linked list of call and
 * return events in time order. The operations that may take effect next are those invoked
 * before the first response still pending; linearizing one lifts its call and return out
 * of the list; meeting a return means that operation should already have taken effect, so
 * the search backtracks. All answered operations linearized: linearizable; nothing left to
 * undo: not linearizable. A configuration entered once is never entered again (the cache;
 * stored compactly, see ConfigCache), which is what makes the search practical. Refinements,
 * each preserving the verdict (the brute-force comparison in the tests checks them):
 * - a read (get, mismatched cas) that is legal where the search stands is taken at once and
 *   its alternatives never tried: moving a read earlier never hurts, nothing sees it;
 * - children are tried in a just-in-time order (Lowe): that read; else the operation whose
 *   response comes first (or a pending write of the value it needs); then the rest;
 * - values nobody observes are merged into one, so configurations differing only in which
 *   unread value was written last are one;
 * - operations without a response are not in the list: alike ones (same kind and values)
 *   queue in invocation order, one is taken only where it changes the value, is useful to
 *   the next operation (which must then see what it wrote), and never to be overwritten by a
 *   put at once; one whose value nobody observes and no mismatched cas could need is dropped.
 *
 * A violation comes with a counterexample: the key's history shrunk, by removals that keep
 * it a proof (see {@link shrink}), to a handful of operations, and a sentence saying where
 * the longest legal order found gets stuck.
 */

export type KvOp = 'put' | 'get' | 'cas';

export interface Operation {
  /** Client id. */
  client: number;
  op: KvOp;
  key: string;
  /** put: the value written (null: delete the key); cas: the new value; get: null. */
  value: string | null;
  /** cas: the value expected (null = key absent); else null. */
  expected: string | null;
  /** Invocation time, ns (`process.hrtime.bigint()`). */
  start: bigint;
  /**
   * Response time, ns; null = no response (timed out / unknown outcome: may or may not
   * have taken effect, at any time after start).
   */
  end: bigint | null;
  /**
   * Whether the call returned success. A failed call with a definite error (e.g. NOT_LEADER
   * before proposing) did not take effect and is ignored by the checker (callers may drop
   * it first); `ok=false` with `end=null` is an unknown outcome.
   */
  ok: boolean;
  /** get: the value read (null = absent); cas: 'swapped' | 'mismatch'; put: null. */
  result: string | null;
}

export interface Counterexample {
  key: string;
  /** The offending operations (a sub-history of the key's history that is itself not linearizable), by start. */
  ops: Operation[];
  /** Where the search gets stuck, in words. */
  why: string;
}

export interface CheckResult {
  linearizable: boolean;
  /** Keys checked, operations considered (the history less its definite failures). */
  keys: number;
  operations: number;
  /** When not linearizable: the key and a minimal-ish description of the offending ops. */
  counterexample?: Counterexample;
  /** True if the search hit its budget and gave up (then linearizable is false and timedOut true). */
  timedOut?: boolean;
}

export interface CheckOptions {
  /** Budget for the whole search, all keys together. Default 30 000 ms. */
  timeoutMs?: number;
  /**
   * Budget for shrinking a counterexample, on top of `timeoutMs`. Default 2 000 ms; 0 reports
   * the key's whole history. Shrinking stops early without harm: what it has is still a proof.
   */
  shrinkMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_SHRINK_MS = 2_000;

/**
 * Checks that `history` is linearizable with respect to a map of registers. Throws
 * TypeError / RangeError for a malformed operation (unknown op, a cas result other than
 * 'swapped' | 'mismatch', a response before its invocation).
 */
export function checkLinearizable(history: readonly Operation[], opts: CheckOptions = {}): CheckResult {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const shrinkMs = opts.shrinkMs ?? DEFAULT_SHRINK_MS;
  const deadline = performance.now() + timeoutMs;

  const byKey = new Map<string, Operation[]>();
  let operations = 0;
  history.forEach((op, i) => {
    validate(op, i);
    if (!op.ok && op.end !== null) return; // a definite failure: it did not take effect
    operations++;
    if (op.end === null && op.op === 'get') return; // an unanswered read constrains nothing
    const ops = byKey.get(op.key);
    if (ops === undefined) byKey.set(op.key, [op]);
    else ops.push(op);
  });
  const keys = new Set(history.filter((op) => op.ok || op.end === null).map((op) => op.key)).size;

  // Small keys first: if the budget runs out, as many keys as possible have been checked.
  const order = [...byKey].sort((a, b) => a[1].length - b[1].length);
  let timedOut = false;
  for (const [key, all] of order) {
    const ops = pruneUnknownWrites(all);
    const verdict = search(prepare(ops), deadline, false).verdict;
    if (verdict === 'linearizable') continue;
    if (verdict === 'timeout') {
      timedOut = true;
      continue;
    }
    const shrunk = shrink(ops, performance.now() + shrinkMs);
    const why = explain(key, shrunk, performance.now() + Math.max(shrinkMs, 1000));
    return { linearizable: false, keys, operations, counterexample: { key, ops: byStart(shrunk), why } };
  }
  return timedOut
    ? { linearizable: false, keys, operations, timedOut: true }
    : { linearizable: true, keys, operations };
}

/** A readable account of a counterexample: the key, why, and the operations by start time. */
export function formatCounterexample(c: Counterexample): string {
  const ops = byStart(c.ops);
  const ms = (t: bigint): string => relMs(ops, t);
  const rows = ops.map((op) => {
    const when = `${ms(op.start)} .. ${op.end === null ? '(no response)' : ms(op.end)}`;
    return `  client ${String(op.client).padEnd(4)} ${describeCall(op).padEnd(40)} ${when}`;
  });
  return [
    `key ${JSON.stringify(c.key)} is not linearizable (${ops.length} operations)`,
    c.why,
    'operations (ms from the first invocation: invoked .. answered):',
    ...rows,
  ].join('\n');
}

/** One operation as `put("a")`, `get() -> "a"`, `cas(absent -> "b") swapped`, `put("c") ?` (no response). */
export function describeCall(op: Operation): string {
  const unknown = op.end === null;
  switch (op.op) {
    case 'put':
      return `put(${show(op.value)})${unknown ? ' ?' : ''}`;
    case 'get':
      return unknown ? 'get() ?' : `get() -> ${show(op.result)}`;
    case 'cas':
      return `cas(${show(op.expected)} -> ${show(op.value)}) ${unknown ? '?' : op.result}`;
  }
}

// ------------------------------------------------------------------ input

function validate(op: Operation, i: number): void {
  const where = `history[${i}]`;
  if (op.op !== 'put' && op.op !== 'get' && op.op !== 'cas')
    throw new TypeError(`${where}: unknown op ${String(op.op)}`);
  if (typeof op.key !== 'string') throw new TypeError(`${where}: key must be a string`);
  if (typeof op.start !== 'bigint') throw new TypeError(`${where}: start must be a bigint`);
  if (op.end !== null && typeof op.end !== 'bigint')
    throw new TypeError(`${where}: end must be a bigint or null`);
  if (op.end !== null && op.end < op.start)
    throw new RangeError(`${where}: end ${op.end} < start ${op.start}`);
  const answered = op.end !== null && op.ok;
  if (op.op === 'cas' && answered && op.result !== 'swapped' && op.result !== 'mismatch')
    throw new TypeError(`${where}: a cas result is 'swapped' or 'mismatch', not ${String(op.result)}`);
  if (op.op !== 'get' && typeof op.value !== 'string' && op.value !== null)
    throw new TypeError(`${where}: a ${op.op} value must be a string or null`);
  if (op.op === 'get' && answered && op.result !== null && typeof op.result !== 'string')
    throw new TypeError(`${where}: a get result must be a string or null`);
}

/** Does `op` change nothing (a read: a get, or a cas that reported a mismatch)? Only for answered ops. */
function readOnly(op: Operation): boolean {
  return op.op === 'get' || (op.op === 'cas' && op.result === 'mismatch');
}

/** The value an op saw, if it reveals one: a get's result, a cas's expected value. */
function observes(op: Operation, value: string | null): boolean {
  if (op.op === 'get') return op.end !== null && op.result === value;
  return op.op === 'cas' && op.expected === value;
}

/**
 * Drops unknown-outcome writes that cannot matter: nobody observes the value and no
 * mismatched cas that ends after the write's invocation could be explained by it. Such a
 * write can always be left out (it "did not take effect"), and leaving it in would only
 * multiply the orders the search tries. The converse holds trivially, so this keeps the
 * verdict.
 */
function pruneUnknownWrites(ops: Operation[]): Operation[] {
  if (!ops.some((op) => op.end === null)) return ops;
  const observed = new Set<string | null>();
  let lastMismatchEnd: bigint | null = null;
  for (const op of ops) {
    if (op.op === 'get' && op.end !== null) observed.add(op.result);
    if (op.op === 'cas') observed.add(op.expected);
    if (op.op === 'cas' && op.end !== null && op.result === 'mismatch')
      if (lastMismatchEnd === null || op.end > lastMismatchEnd) lastMismatchEnd = op.end;
  }
  return ops.filter(
    (op) =>
      op.end !== null || observed.has(op.value) || (lastMismatchEnd !== null && lastMismatchEnd >= op.start),
  );
}

// ------------------------------------------------------------------ the search

const PUT = 0;
const GET = 1;
const CAS_SWAP = 2;
const CAS_MISMATCH = 3;

/** Value id of absent (null), when someone observes absence. */
const ABSENT = 0;
/** Value id standing for every value nobody observes (see {@link prepare}). */
const UNSEEN = 1;

/** `match` of a return event. */
const RETURN = -2;

/** One key's history in the search's terms: interned values, the event list, the unknown ops. */
interface Prepared {
  readonly ops: readonly Operation[];
  /** Per op: PUT | GET | CAS_SWAP | CAS_MISMATCH (an unknown cas is a CAS_SWAP that may stay out). */
  readonly kind: Uint8Array;
  /** Per op: the value id written (PUT), read (GET) or expected (CAS_*). */
  readonly a: Int32Array;
  /** Per op: the value id a CAS_SWAP writes. */
  readonly b: Int32Array;
  /** Per op: 1 if it has a response (it must be linearized), 0 if its outcome is unknown. */
  readonly answered: Uint8Array;
  readonly answeredCount: number;
  /** Per op: answered ones numbered 0.. in order of invocation; unknown-outcome ones 0.. apart. */
  readonly slot: Int32Array;
  /** Per op: its call event. Events are numbered 1..E in time order. */
  readonly callEvent: Int32Array;
  /**
   * The events of answered ops as a doubly linked list: index 0 is the head sentinel, -1
   * the end. (Unknown-outcome ops have a call event, for its place in time, but no place
   * in the list: they wait in `classes`.)
   */
  readonly next: Int32Array;
  readonly prev: Int32Array;
  /** Per event: its op. */
  readonly eventOp: Int32Array;
  /** Per event: for a call, its return event (-1 if none); for a return, RETURN. */
  readonly match: Int32Array;
  /**
   * Unknown-outcome ops that act alike (same kind and values) are interchangeable once
   * invoked: if a linearization takes a later one while an earlier one stays out, swapping
   * them gives another. So each class is taken in order of invocation: a queue.
   */
  readonly classes: readonly Int32Array[];
  /** The register's value id at the start: absent. */
  readonly initial: number;
  /** Value ids: ABSENT (null), UNSEEN, then the values observed. */
  readonly values: readonly (string | null)[];
}

/**
 * Interns values and builds the event list. With `collapse`, every value no operation
 * observes (no get returns it, no cas expects it) becomes the one value UNSEEN: the model
 * only ever compares the register with observed values, so such values are
 * indistinguishable, and the cache then merges configurations that differ only in which
 * unread value was last written.
 */
function prepare(ops: readonly Operation[], collapse = true): Prepared {
  const n = ops.length;
  const observed = new Set<string | null>();
  for (const op of ops) {
    if (op.op === 'get' && op.end !== null) observed.add(op.result);
    if (op.op === 'cas') observed.add(op.expected);
  }
  const ids = new Map<string, number>();
  const values: (string | null)[] = [null, '(a value nobody reads)'];
  const id = (v: string | null): number => {
    if (collapse && !observed.has(v)) return UNSEEN;
    if (v === null) return ABSENT;
    let i = ids.get(v);
    if (i === undefined) {
      i = values.length;
      ids.set(v, i);
      values.push(v);
    }
    return i;
  };
  const initial = id(null);
  const kind = new Uint8Array(n);
  const a = new Int32Array(n);
  const b = new Int32Array(n);
  const answered = new Uint8Array(n);
  let answeredCount = 0;
  let base = ops[0]?.start ?? 0n;
  for (const op of ops) if (op.start < base) base = op.start;
  // Events: time (exact: relative to the first invocation), call or return, op.
  const times: number[] = [];
  const isRet: number[] = [];
  const evOp: number[] = [];
  ops.forEach((op, i) => {
    if (op.op === 'put') {
      kind[i] = PUT;
      a[i] = id(op.value);
    } else if (op.op === 'get') {
      kind[i] = GET;
      a[i] = id(op.result);
    } else {
      kind[i] = op.end !== null && op.result === 'mismatch' ? CAS_MISMATCH : CAS_SWAP;
      a[i] = id(op.expected);
      b[i] = id(op.value);
    }
    times.push(Number(op.start - base));
    isRet.push(0);
    evOp.push(i);
    if (op.end !== null) {
      answered[i] = 1;
      answeredCount++;
      times.push(Number(op.end - base));
      isRet.push(1);
      evOp.push(i);
    }
  });
  const E = times.length;
  const order = Array.from({ length: E }, (_, i) => i);
  // By time; at equal times calls before returns (they overlap: lenient); then by op.
  order.sort(
    (x, y) =>
      (times[x] as number) - (times[y] as number) ||
      (isRet[x] as number) - (isRet[y] as number) ||
      (evOp[x] as number) - (evOp[y] as number),
  );
  const eventOp = new Int32Array(E + 1);
  const isReturn = new Uint8Array(E + 1);
  order.forEach((ev, pos) => {
    eventOp[pos + 1] = evOp[ev] as number;
    isReturn[pos + 1] = isRet[ev] as number;
  });
  const callEvent = new Int32Array(n);
  const returnEvent = new Int32Array(n).fill(-1);
  for (let e = 1; e <= E; e++) {
    if (isReturn[e]) returnEvent[eventOp[e] as number] = e;
    else callEvent[eventOp[e] as number] = e;
  }
  const match = new Int32Array(E + 1);
  const next = new Int32Array(E + 1).fill(-1);
  const prev = new Int32Array(E + 1).fill(-1);
  const slot = new Int32Array(n);
  const queues = new Map<string, number[]>();
  let last = 0;
  let knownSlots = 0;
  let unknownSlots = 0;
  for (let e = 1; e <= E; e++) {
    const op = eventOp[e] as number;
    if (isReturn[e]) match[e] = RETURN;
    else {
      match[e] = returnEvent[op] as number;
      if (answered[op]) slot[op] = knownSlots++;
      else {
        slot[op] = unknownSlots++;
        const cls = `${kind[op]}:${a[op]}:${b[op]}`;
        const q = queues.get(cls);
        if (q === undefined) queues.set(cls, [op]);
        else q.push(op);
        continue; // not in the list
      }
    }
    next[last] = e;
    prev[e] = last;
    last = e;
  }
  const classes = [...queues.values()].map((q) => Int32Array.from(q));
  return {
    ops,
    kind,
    a,
    b,
    answered,
    answeredCount,
    slot,
    callEvent,
    next,
    prev,
    eventOp,
    match,
    classes,
    initial,
    values,
  };
}

/** Where the deepest attempt got stuck (only when traced). */
interface Stuck {
  /** The ops linearized, in order. */
  readonly prefix: number[];
  /** The register's value id after them. */
  readonly state: number;
  /** The op that had to be linearized next (its response came), or -1. */
  readonly blocked: number;
}

interface SearchOutcome {
  verdict: 'linearizable' | 'violation' | 'timeout';
  stuck?: Stuck;
}

/** A deterministic xorshift, for the Zobrist keys: the same history always searches the same way. */
function zobrist(n: number, seed: number): Int32Array {
  const out = new Int32Array(n);
  let x = seed | 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x;
  }
  return out;
}

/**
 * The set of (linearized ops, register value) configurations already entered: each entered
 * one either led to success (the search then stops) or failed, so meeting one again fails.
 *
 * A set of linearized ops is kept, and stored, compactly: the answered ops are numbered in
 * order of invocation, and since an answered op must be linearized by its response, those
 * linearized are nearly always a prefix plus a few beyond it (as many as overlap in time).
 * The encoding is the frontier (the first answered op not linearized), the bitset words from
 * the frontier's word to the last linearized answered op, then the bitset of the
 * unknown-outcome ops (few, but they never leave). A full bitset per configuration would
 * cost n/8 bytes: 2.5 kB for a key with 20 000 operations.
 *
 * Open addressing over typed arrays, keyed by two Zobrist hashes of the set mixed with the
 * value; encodings live in one arena and are compared on a hash match. Past `maxWords` of
 * encodings it stops remembering (still correct, only slower).
 */
class ConfigCache {
  private slots: Int32Array;
  private mask: number;
  private count = 0;
  private h1: Int32Array;
  private h2: Int32Array;
  private st: Int32Array;
  private off: Int32Array;
  private len: Int32Array;
  private arena: Int32Array;
  private used = 0;

  constructor(private readonly maxWords: number) {
    const cap = 1024;
    this.slots = new Int32Array(cap * 2).fill(-1);
    this.mask = cap * 2 - 1;
    this.h1 = new Int32Array(cap);
    this.h2 = new Int32Array(cap);
    this.st = new Int32Array(cap);
    this.off = new Int32Array(cap);
    this.len = new Int32Array(cap);
    this.arena = new Int32Array(cap * 4);
  }

  get size(): number {
    return this.count;
  }

  /** Adds the configuration (`enc[0..n)`, `state`); false if it was there already. */
  add(enc: Int32Array, n: number, k1: number, k2: number, state: number): boolean {
    let s = k1 & this.mask;
    for (;;) {
      const i = this.slots[s] as number;
      if (i === -1) break;
      if (this.h1[i] === k1 && this.h2[i] === k2 && this.st[i] === state && this.same(i, enc, n))
        return false;
      s = (s + 1) & this.mask;
    }
    if (this.used + n > this.maxWords) return true; // full: stop remembering
    if (this.count === this.h1.length) {
      this.grow();
      return this.add(enc, n, k1, k2, state);
    }
    if (this.used + n > this.arena.length) {
      const arena = new Int32Array(Math.max(this.arena.length * 2, this.used + n));
      arena.set(this.arena);
      this.arena = arena;
    }
    const i = this.count++;
    this.slots[s] = i;
    this.h1[i] = k1;
    this.h2[i] = k2;
    this.st[i] = state;
    this.off[i] = this.used;
    this.len[i] = n;
    this.arena.set(enc.subarray(0, n), this.used);
    this.used += n;
    return true;
  }

  private same(i: number, enc: Int32Array, n: number): boolean {
    if (this.len[i] !== n) return false;
    const off = this.off[i] as number;
    for (let w = 0; w < n; w++) if (this.arena[off + w] !== enc[w]) return false;
    return true;
  }

  private grow(): void {
    const cap = this.h1.length * 2;
    const grown = (old: Int32Array): Int32Array => {
      const a = new Int32Array(cap);
      a.set(old);
      return a;
    };
    this.h1 = grown(this.h1);
    this.h2 = grown(this.h2);
    this.st = grown(this.st);
    this.off = grown(this.off);
    this.len = grown(this.len);
    this.slots = new Int32Array(cap * 2).fill(-1);
    this.mask = cap * 2 - 1;
    for (let i = 0; i < this.count; i++) {
      let s = (this.h1[i] as number) & this.mask;
      while (this.slots[s] !== -1) s = (s + 1) & this.mask;
      this.slots[s] = i;
    }
  }
}

/** Encodings the cache may hold, in 32-bit words (256 MiB). */
const CACHE_MAX_WORDS = 1 << 26;

function popcount(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

const hasBit = (bits: Int32Array, i: number): boolean => ((bits[i >>> 5] as number) & (1 << (i & 31))) !== 0;
const setBit = (bits: Int32Array, i: number): void => {
  bits[i >>> 5] = (bits[i >>> 5] as number) | (1 << (i & 31));
};
const clearBit = (bits: Int32Array, i: number): void => {
  bits[i >>> 5] = (bits[i >>> 5] as number) & ~(1 << (i & 31));
};

/** Where the search is among a configuration's children (the ops it may linearize next). */
const TRY_PREFERRED = 0;
const TRY_LIST = 1;
const TRY_UNKNOWN = 2;

/**
 * WGL with memoization over one key's prepared history, as a depth-first search over
 * configurations (set of ops linearized, register value). The children of a configuration
 * are the ops that may take effect next: the answered ops invoked before the first response
 * still pending (in the list before its first return event), and the head of each class of
 * unknown-outcome ops invoked before it. They are tried in this order (Lowe's just-in-time
 * linearization, as a preference): a read that is legal now (forced: see below); else the
 * op whose response comes first, which must take effect before any other response, or if
 * it needs a value the register does not hold, a pending write of that value; then the
 * other answered ops in invocation order; then the unknown ones. Any order is complete;
 * this one meets the right one sooner.
 */
function search(p: Prepared, deadline: number, trace: boolean): SearchOutcome {
  const { kind, a, b, answered, slot, callEvent, next, prev, eventOp, match, classes } = p;
  const n = p.ops.length;
  const known = p.answeredCount;
  const knownBits = new Int32Array(((known + 31) >>> 5) + 1);
  const unknownWords = (n - known + 31) >>> 5;
  const unknownBits = new Int32Array(unknownWords);
  const enc = new Int32Array(knownBits.length + unknownWords + 2);
  const z1 = zobrist(n, 0x2545f491);
  const z2 = zobrist(n, 0x6c8e9cf5);
  const cache = new ConfigCache(CACHE_MAX_WORDS);
  const taken = new Int32Array(classes.length); // per class, how many are linearized
  // The stack: per level, the op linearized, and what to restore and resume.
  const stackOp = new Int32Array(n);
  const stackState = new Int32Array(n);
  const stackFrontier = new Int32Array(n);
  const stackPreferred = new Int32Array(n);
  const stackPhase = new Uint8Array(n);
  const stackCursor = new Int32Array(n);
  const stackFirstReturn = new Int32Array(n);
  const forced = new Uint8Array(n);
  // Per value id, the ops not yet linearized that observe it: gets that returned it, cas
  // (answered swapped, or unknown) that expect it; and the answered mismatched cas expecting it.
  const observers = new Int32Array(p.values.length);
  const mismatches = new Int32Array(p.values.length);
  const count = (op: number, by: number): void => {
    const k = kind[op];
    const x = a[op] as number;
    if (k === GET || k === CAS_SWAP) observers[x] = (observers[x] as number) + by;
    else if (k === CAS_MISMATCH) mismatches[x] = (mismatches[x] as number) + by;
  };
  for (let op = 0; op < n; op++) count(op, 1);
  let sp = 0;
  let state = p.initial;
  let h1 = 0;
  let h2 = 0;
  let done = 0; // answered ops linearized
  let frontier = 0; // the first answered slot not linearized: all before it are
  // After an unknown op, only an op that sees what it wrote may follow (see below): `pre`
  // is then the value before the unknown op, else -1.
  let pre = -1;
  let steps = 0;
  // The deepest dead end, when traced.
  let deepest = -1;
  const best = new Int32Array(trace ? n : 0);
  let low = 0; // the lowest the stack has been since `best` was last written
  let bestState = 0;
  let bestBlocked = -1;
  const outcome = (verdict: SearchOutcome['verdict']): SearchOutcome =>
    deepest < 0
      ? { verdict }
      : {
          verdict,
          stuck: { prefix: Array.from(best.subarray(0, deepest)), state: bestState, blocked: bestBlocked },
        };

  const lift = (e: number): void => {
    const ne = next[e] as number;
    next[prev[e] as number] = ne;
    if (ne !== -1) prev[ne] = prev[e] as number;
    const m = match[e] as number;
    const nm = next[m] as number;
    next[prev[m] as number] = nm;
    if (nm !== -1) prev[nm] = prev[m] as number;
  };
  const unlift = (e: number): void => {
    const m = match[e] as number;
    next[prev[m] as number] = m;
    const nm = next[m] as number;
    if (nm !== -1) prev[nm] = m;
    next[prev[e] as number] = e;
    const ne = next[e] as number;
    if (ne !== -1) prev[ne] = e;
  };
  /** Writes the encoding of the current sets (see ConfigCache) into `enc`; returns its length. */
  const encode = (front: number, doneNow: number): number => {
    enc[0] = front;
    let len = 1;
    const w0 = front >>> 5;
    // Bits set from word w0 on: all answered ops linearized, less the 32 * w0 before w0.
    const target = doneNow - 32 * w0;
    for (let w = w0, acc = 0; acc < target; w++) {
      const word = knownBits[w] as number;
      enc[len++] = word;
      acc += popcount(word);
    }
    for (let w = 0; w < unknownWords; w++) enc[len++] = unknownBits[w] as number;
    return len;
  };
  const mix1 = (s: number): number => Math.imul(s + 1, 0x9e3779b1) ^ (s >>> 7);
  const mix2 = (s: number): number => Math.imul(s + 0x3c6ef372, 0x85ebca6b) ^ (s << 11);
  /** The child to try first (a call event); sets `firstReturn`, the first return event in the list. */
  let firstReturn = -1;
  const choose = (): number => {
    let read = -1;
    for (let ev = next[0] as number; ev !== -1; ev = next[ev] as number) {
      const op = eventOp[ev] as number;
      if (match[ev] === RETURN) {
        firstReturn = ev;
        if (read !== -1) return read;
        // The op that must go next needs a value the register does not hold: prefer a
        // pending write of that value.
        const k = kind[op];
        const x = a[op] as number;
        if ((k === GET || k === CAS_SWAP) && state !== x)
          for (let w = next[0] as number; w !== ev; w = next[w] as number) {
            const o = eventOp[w] as number; // a call: `ev` is the first return
            const ko = kind[o];
            if ((ko === PUT && a[o] === x) || (ko === CAS_SWAP && b[o] === x && a[o] === state)) return w;
          }
        return callEvent[op] as number;
      }
      const k = kind[op];
      if (read === -1 && k === GET && state === a[op]) read = ev;
      if (read === -1 && k === CAS_MISMATCH && state !== a[op] && (pre === -1 || a[op] === pre)) read = ev;
    }
    firstReturn = -1; // only when every answered op is linearized
    return -1;
  };

  let preferred = choose();
  let phase = TRY_PREFERRED;
  let cursor = preferred; // TRY_PREFERRED, TRY_LIST: an event; TRY_UNKNOWN: a class
  for (;;) {
    if (done === known) return { verdict: 'linearizable' };
    if ((++steps & 0x3ff) === 0 && performance.now() > deadline) return outcome('timeout');

    // The next child to try, if any.
    let op = -1;
    if (phase === TRY_LIST) {
      if (cursor === preferred) cursor = next[cursor] as number;
      if (cursor === firstReturn) {
        phase = TRY_UNKNOWN;
        cursor = 0;
      } else op = eventOp[cursor] as number;
    }
    if (phase === TRY_UNKNOWN) {
      for (; cursor < classes.length; cursor++) {
        const q = classes[cursor] as Int32Array;
        const t = taken[cursor] as number;
        if (t < q.length && (callEvent[q[t] as number] as number) < firstReturn) {
          const u = q[t] as number;
          // Useful only if a pending op could come right after it and see what it wrote: one
          // that observes that value, or a mismatched cas that cannot go now (it expects
          // the value the register holds). Otherwise a linearization that takes it here
          // can take it later or not at all (no ops ahead of it see it).
          const w = kind[u] === PUT ? (a[u] as number) : (b[u] as number);
          if ((observers[w] as number) > 0 || (mismatches[state] as number) > 0) {
            op = u;
            break;
          }
        }
      }
    } else if (phase === TRY_PREFERRED) op = eventOp[cursor] as number;

    let dead = op === -1;
    if (!dead) {
      const k = kind[op] as number;
      const x = a[op] as number;
      const isKnown = answered[op] === 1;
      let legal: boolean;
      let after = state;
      if (k === PUT) {
        legal = true;
        after = x;
      } else if (k === GET) legal = state === x;
      else if (k === CAS_SWAP) {
        legal = state === x;
        after = b[op] as number;
      } else legal = state !== x && (pre === -1 || x === pre);
      // An unknown outcome may stay out: taking it where it changes nothing is pointless,
      // and so is taking it where nothing sees what it wrote. Some linearization with the
      // fewest unknown ops, each as late as it can be, has every unknown op followed by a
      // get or cas that sees its value, or by a mismatched cas that could not have gone
      // before it (one expecting the value before it): no put, no other read.
      if (!isKnown && after === state) legal = false;
      if (pre !== -1 && k === PUT) legal = false;
      const reads = k === GET || k === CAS_MISMATCH;
      if (legal) {
        const sl = slot[op] as number;
        let front = frontier;
        if (isKnown) {
          setBit(knownBits, sl);
          while (front < known && hasBit(knownBits, front)) front++;
        } else setBit(unknownBits, sl);
        const n1 = h1 ^ (z1[op] as number);
        const n2 = h2 ^ (z2[op] as number);
        let len = encode(front, done + (isKnown ? 1 : 0));
        // Whether (and how) the child is restricted is part of its identity for the cache.
        const childPre = isKnown ? -1 : state;
        enc[len++] = childPre;
        const m = Math.imul(childPre + 2, 0x27d4eb2d);
        if (cache.add(enc, len, n1 ^ mix1(after) ^ m, n2 ^ mix2(after) ^ m, after)) {
          stackOp[sp] = op;
          stackState[sp] = state;
          stackFrontier[sp] = frontier;
          stackPreferred[sp] = preferred;
          stackPhase[sp] = phase;
          stackCursor[sp] = cursor;
          stackFirstReturn[sp] = firstReturn;
          // A legal read is taken at once and never reconsidered: any completion from here
          // has one where it comes first (it changes nothing, and everything that had to
          // precede it already has).
          forced[sp] = reads ? 1 : 0;
          sp++;
          state = after;
          h1 = n1;
          h2 = n2;
          frontier = front;
          pre = childPre;
          count(op, -1);
          if (isKnown) {
            done++;
            lift(callEvent[op] as number);
          } else taken[cursor]++;
          preferred = choose();
          phase = TRY_PREFERRED;
          cursor = preferred;
          continue;
        }
        clearBit(isKnown ? knownBits : unknownBits, sl);
        // Seen before, so it failed; for a read that means this configuration fails too.
        dead = reads;
      }
      if (!dead) {
        if (phase === TRY_PREFERRED) {
          phase = TRY_LIST;
          cursor = next[0] as number;
        } else if (phase === TRY_LIST) cursor = next[cursor] as number;
        else cursor++;
        continue;
      }
    }

    // Dead end: every child failed (the op of the first pending response cannot take
    // effect), or a legal read led nowhere.
    if (trace && sp > deepest) {
      // The stack below `low` has not changed since the last copy: copy only the rest.
      deepest = sp;
      best.set(stackOp.subarray(low, sp), low);
      low = sp;
      bestState = state;
      bestBlocked = firstReturn === -1 ? -1 : (eventOp[firstReturn] as number);
    }
    for (;;) {
      if (sp === 0) return outcome('violation');
      sp--;
      if (sp < low) low = sp;
      const top = stackOp[sp] as number;
      state = stackState[sp] as number;
      frontier = stackFrontier[sp] as number;
      preferred = stackPreferred[sp] as number;
      phase = stackPhase[sp] as number;
      cursor = stackCursor[sp] as number;
      firstReturn = stackFirstReturn[sp] as number;
      h1 ^= z1[top] as number;
      h2 ^= z2[top] as number;
      if (answered[top]) {
        clearBit(knownBits, slot[top] as number);
        done--;
        unlift(callEvent[top] as number);
      } else {
        clearBit(unknownBits, slot[top] as number);
        taken[cursor]--;
      }
      count(top, 1);
      pre = sp > 0 && answered[stackOp[sp - 1] as number] === 0 ? (stackState[sp - 1] as number) : -1;
      if (!forced[sp]) {
        if (phase === TRY_PREFERRED) {
          phase = TRY_LIST;
          cursor = next[0] as number;
        } else if (phase === TRY_LIST) cursor = next[cursor] as number;
        else cursor++;
        break;
      }
    }
  }
}

// ------------------------------------------------------------------ counterexamples

function check(ops: readonly Operation[], deadline: number): SearchOutcome['verdict'] {
  return search(prepare(ops), deadline, false).verdict;
}

/**
 * Shrinks a non-linearizable key history by removing chunks of operations while it stays
 * non-linearizable (delta debugging: chunks of halving size), until `deadline`; reads
 * first, which frees the writes they observed. Only removals that keep the result a proof
 * are tried: a sub-history S of H that is not linearizable proves H is not only if every
 * linearization of H restricted to S is one of S. That holds for removing
 * - reads (a get, a mismatched cas): they change nothing;
 * - writes whose values no remaining operation observes (no get returns them, no cas
 *   expects them), when no mismatched cas remains: in a linearization of H, an operation
 *   that now follows such a write where it followed the removed one sees a value it does
 *   not check.
 * (Removing a write someone read, by contrast, could turn a legal read into an impossible
 * one and blame the wrong operation.) Stopping early is harmless: what is left is a proof.
 */
function shrink(ops: readonly Operation[], deadline: number): Operation[] {
  let cur = [...ops];
  const isRead = (op: Operation): boolean => op.end !== null && readOnly(op);
  for (let changed = true; changed && performance.now() < deadline; ) {
    changed = false;
    for (const only of [isRead, () => true]) {
      const candidates = cur.filter(only);
      let size = Math.ceil(candidates.length / 2);
      while (size >= 1 && performance.now() < deadline) {
        for (let i = 0; i < candidates.length && performance.now() < deadline; ) {
          const cut = new Set(candidates.slice(i, i + size));
          const rest = cur.filter((op) => !cut.has(op));
          if (removable(cut, rest) && check(rest, deadline) === 'violation') {
            cur = rest;
            candidates.splice(i, size);
            changed = true;
          } else i += size;
        }
        size = size === 1 ? 0 : Math.ceil(size / 2);
      }
    }
  }
  return cur;
}

function removable(cut: ReadonlySet<Operation>, rest: readonly Operation[]): boolean {
  const written: (string | null)[] = [];
  for (const op of cut) if (op.end === null || !readOnly(op)) written.push(op.value);
  if (written.length === 0) return true;
  for (const op of rest) {
    if (op.op === 'cas' && op.end !== null && op.result === 'mismatch') return false;
    for (const v of written) if (observes(op, v)) return false;
  }
  return true;
}

/**
 * Says where the search of `ops` (not linearizable) gets stuck: the longest legal order it
 * found, and the operation that had to come next but could not. Within `deadline`, else
 * as far as it got.
 */
function explain(key: string, ops: readonly Operation[], deadline: number): string {
  const p = prepare(ops, false); // real values, to name them
  const { stuck } = search(p, deadline, true);
  const head = `No order of these ${ops.length} operations on key ${JSON.stringify(key)} respects both real time and the register's rules.`;
  if (stuck === undefined) return head;
  const who = (i: number): string => {
    const op = ops[i] as Operation;
    return `client ${op.client} ${describeCall(op)}`;
  };
  const state = p.values[stuck.state] ?? null;
  const n = stuck.prefix.length;
  const order = `${n > 8 ? `${n - 8} operations, then ` : ''}${stuck.prefix.slice(-8).map(who).join(', ')}`;
  const prefix =
    n === 0
      ? `At the start the register holds ${show(state)}`
      : `The longest legal order found is ${order}, after which the register holds ${show(state)}`;
  let tail = '';
  if (stuck.blocked >= 0) {
    const op = ops[stuck.blocked] as Operation;
    const when = op.end === null ? '' : ` (it was answered at ${relMs(ops, op.end)} ms)`;
    let reason: string;
    if (op.op === 'get' && op.result !== state) reason = `it read ${show(op.result)}`;
    else if (op.op === 'cas' && op.result === 'swapped' && op.expected !== state)
      reason = `it swapped, so the register held the ${show(op.expected)} it expected`;
    else if (op.op === 'cas' && op.result === 'mismatch' && op.expected === state)
      reason = 'it reported a mismatch, though the register held what it expected';
    else reason = 'no order of the rest works after it either';
    tail = `; next, ${who(stuck.blocked)} must take effect${when}, but ${reason}`;
  }
  return `${head} ${prefix}${tail}.`;
}

function relMs(ops: readonly Operation[], t: bigint): string {
  let t0 = ops[0]?.start ?? t;
  for (const op of ops) if (op.start < t0) t0 = op.start;
  return (Number(t - t0) / 1e6).toFixed(3);
}

function byStart(ops: readonly Operation[]): Operation[] {
  const end = (op: Operation): bigint => op.end ?? op.start;
  return [...ops].sort((x, y) =>
    x.start !== y.start ? (x.start < y.start ? -1 : 1) : end(x) < end(y) ? -1 : end(x) > end(y) ? 1 : 0,
  );
}

function show(v: string | null): string {
  return v === null ? 'absent' : JSON.stringify(v);
}
