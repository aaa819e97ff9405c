/**
 * Property tests for the core's sub-algorithms: each fast piece of code is compared with a
 * naive version of what it computes (quorum arithmetic, the inflight window, the log), and
 * the configuration-change codec is checked for round trips and robustness. Every property
 * runs from a fixed seed with a bounded number of runs, so a failure replays exactly.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  applyConfChange,
  type ConfChange,
  type ConfChangeItem,
  ConfChangeType,
  decodeConfChange,
  encodeConfChange,
  InvalidConfChangeError,
  isJoint,
} from '../../src/raft/conf-change.js';
import { Inflights } from '../../src/raft/inflights.js';
import {
  jointCommitted,
  jointVoteResult,
  majorityCommitted,
  majorityVoteResult,
  VoteResult,
} from '../../src/raft/quorum.js';
import { RaftLog } from '../../src/raft/raft-log.js';
import { bootstrapSnapshot, isGap, MemoryStorage, StorageGap } from '../../src/raft/storage.js';
import {
  type ConfState,
  type Entry,
  EntryType,
  type Index,
  type NodeId,
  type Term,
} from '../../src/raft/types.js';

const SEED = 20140519; // the day the Raft paper's extended version went online
const POOL: readonly NodeId[] = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8'];

function check<Ts extends unknown[]>(prop: fc.IProperty<Ts>, numRuns: number, examples: Ts[] = []): void {
  // The failing assertion goes into the message: the test reporter does not print `cause`.
  fc.assert(prop, { seed: SEED, numRuns, examples, includeErrorInReport: true });
}

/** A configuration half: distinct ids from POOL, 0 to 7 of them. */
const votersArb = fc.uniqueArray(fc.constantFrom(...POOL), { maxLength: 7 });

// ---------------------------------------------------------------- (a) commit index

/**
 * Naive majority commit index: for every candidate index, count the voters that
 * acknowledged at least that much; the answer is the largest index a strict majority has.
 * An empty configuration constrains nothing.
 */
function naiveCommitted(voters: readonly NodeId[], acked: (id: NodeId) => Index): Index {
  if (voters.length === 0) return Number.POSITIVE_INFINITY;
  const top = Math.max(...voters.map(acked));
  let best = Number.NEGATIVE_INFINITY;
  for (let i = 0; i <= top; i++) {
    const have = voters.filter((v) => acked(v) >= i).length;
    if (2 * have > voters.length) best = i;
  }
  return best;
}

describe('(a) quorum: committed index', () => {
  const ackedArb = fc.array(fc.nat({ max: 20 }), { minLength: POOL.length, maxLength: POOL.length });
  const ackedBy =
    (values: readonly number[]) =>
    (id: NodeId): Index =>
      values[POOL.indexOf(id)] as number;

  test('majorityCommitted equals the naive count, with or without a reused scratch array', () => {
    const scratch: number[] = [];
    check(
      fc.property(votersArb, ackedArb, (voters, values) => {
        const acked = ackedBy(values);
        const want = naiveCommitted(voters, acked);
        assert.equal(majorityCommitted(voters, acked), want);
        assert.equal(majorityCommitted(voters, acked, scratch), want);
      }),
      400,
    );
  });

  test('jointCommitted is the smaller of the two naive majorities (empty half = +Infinity)', () => {
    check(
      fc.property(votersArb, votersArb, ackedArb, (incoming, outgoing, values) => {
        const acked = ackedBy(values);
        const want = Math.min(naiveCommitted(incoming, acked), naiveCommitted(outgoing, acked));
        assert.equal(jointCommitted(incoming, outgoing, acked), want);
      }),
      400,
    );
  });
});

// ---------------------------------------------------------------- (b) vote results

type Vote = boolean | undefined;

/**
 * Naive election outcome: enumerate every way the missing votes could still come in. Won if
 * the candidate wins in all of them, Lost if in none, Pending otherwise. `wins` decides one
 * complete assignment.
 */
function naiveOutcome(
  missing: readonly NodeId[],
  wins: (vote: (id: NodeId) => boolean) => boolean,
): VoteResult {
  let won = 0;
  const total = 2 ** missing.length;
  for (let mask = 0; mask < total; mask++) {
    const filled = new Map<NodeId, boolean>();
    missing.forEach((id, bit) => {
      filled.set(id, ((mask >> bit) & 1) === 1);
    });
    if (wins((id) => filled.get(id) as boolean)) won++;
  }
  if (won === total) return VoteResult.Won;
  if (won === 0) return VoteResult.Lost;
  return VoteResult.Pending;
}

/** One half wins with a strict majority of yes votes; an empty half never stands in the way. */
function halfWins(voters: readonly NodeId[], vote: (id: NodeId) => boolean): boolean {
  return voters.length === 0 || 2 * voters.filter(vote).length > voters.length;
}

describe('(b) quorum: vote results', () => {
  const votesArb = fc.array(fc.constantFrom<Vote>(true, false, undefined), {
    minLength: POOL.length,
    maxLength: POOL.length,
  });
  const answers = (votes: readonly Vote[]) => (id: NodeId) => votes[POOL.indexOf(id)];
  const complete = (known: (id: NodeId) => Vote, rest: (id: NodeId) => boolean) => (id: NodeId) =>
    known(id) ?? rest(id);

  test('majorityVoteResult equals the enumeration of every way the missing votes can go', () => {
    check(
      fc.property(votersArb, votesArb, (voters, votes) => {
        const vote = answers(votes);
        const missing = voters.filter((v) => vote(v) === undefined);
        const want = naiveOutcome(missing, (rest) => halfWins(voters, complete(vote, rest)));
        assert.equal(majorityVoteResult(voters, vote), want);
      }),
      400,
    );
  });

  test('jointVoteResult equals the enumeration over both halves', () => {
    check(
      fc.property(votersArb, votersArb, votesArb, (incoming, outgoing, votes) => {
        const vote = answers(votes);
        const missing = [...new Set([...incoming, ...outgoing])].filter((v) => vote(v) === undefined);
        const want = naiveOutcome(missing, (rest) => {
          const v = complete(vote, rest);
          return halfWins(incoming, v) && halfWins(outgoing, v);
        });
        assert.equal(jointVoteResult(incoming, outgoing, vote), want);
      }),
      400,
    );
  });
});

// ---------------------------------------------------------------- (c) inflight window

type InflightOp =
  | { kind: 'add'; step: number; bytes: number }
  | { kind: 'free'; offset: number }
  | { kind: 'reset'; base: number };

const inflightOpArb: fc.Arbitrary<InflightOp> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('add' as const),
      step: fc.integer({ min: 1, max: 5 }),
      bytes: fc.nat({ max: 80 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('free' as const), offset: fc.integer({ min: -3, max: 12 }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reset' as const), base: fc.nat({ max: 30 }) }) },
);

describe('(c) Inflights against an array model', () => {
  test('add / freeLE / reset keep size, bytes and full() equal to the model', () => {
    check(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 200 })),
        fc.array(inflightOpArb, { maxLength: 60 }),
        (capacity, maxBytes, ops) => {
          const inf = new Inflights(capacity, maxBytes);
          let model: { index: Index; bytes: number }[] = [];
          let last = 0; // the last index added: messages in the window cover increasing indexes
          for (const op of ops) {
            switch (op.kind) {
              case 'add': {
                const index = last + op.step;
                if (model.length === capacity) {
                  assert.throws(
                    () => inf.add(index, op.bytes),
                    'adding to a window holding `capacity` messages',
                  );
                } else {
                  inf.add(index, op.bytes);
                  model.push({ index, bytes: op.bytes });
                  last = index;
                }
                break;
              }
              case 'free': {
                const index = (model[0]?.index ?? last) + op.offset;
                inf.freeLE(index);
                model = model.filter((m) => m.index > index);
                break;
              }
              case 'reset':
                inf.reset();
                model = [];
                last = op.base; // after a reset the window may start anywhere (e.g. back at match + 1)
                break;
            }
            const bytes = model.reduce((sum, m) => sum + m.bytes, 0);
            assert.equal(inf.size(), model.length);
            assert.equal(inf.totalBytes(), bytes);
            assert.equal(inf.full(), model.length === capacity || (maxBytes > 0 && bytes >= maxBytes));
          }
        },
      ),
      500,
    );
  });
});

// ---------------------------------------------------------------- (d) conf change codec

const itemArb: fc.Arbitrary<ConfChangeItem> = fc.record({
  type: fc.constantFrom(ConfChangeType.AddVoter, ConfChangeType.AddLearner, ConfChangeType.Remove),
  // Any code points (no lone surrogates, which UTF-8 cannot carry): at most 64 bytes.
  id: fc.string({ unit: 'binary', maxLength: 16 }),
});
const confChangeArb: fc.Arbitrary<ConfChange> = fc.record({ changes: fc.array(itemArb, { maxLength: 12 }) });

function isInvalidConfChange(err: unknown): boolean {
  return err instanceof InvalidConfChangeError && err.code === 'ERR_RAFT_INVALID_CONF_CHANGE';
}

/** Bytes shaped like an encoded change (a count, then type/length/id triples) but with arbitrary values. */
const nearlyEncodedArb: fc.Arbitrary<Uint8Array> = fc
  .tuple(
    fc.integer({ min: -1, max: 1 }),
    fc.array(
      fc.tuple(
        fc.integer({ min: 0, max: 4 }),
        fc.integer({ min: -1, max: 1 }),
        fc.uint8Array({ maxLength: 6 }),
      ),
      {
        maxLength: 4,
      },
    ),
  )
  .map(([countSkew, items]) => {
    const out = [Math.max(0, items.length + countSkew)];
    for (const [type, lenSkew, id] of items) out.push(type, Math.max(0, id.length + lenSkew), ...id);
    return Uint8Array.from(out);
  });

describe('(d) conf change codec', () => {
  test('decodeConfChange(encodeConfChange(cc)) is cc', () => {
    check(
      fc.property(confChangeArb, (cc) => {
        // Compared as plain data: fast-check may build records without a prototype.
        const plain = { changes: cc.changes.map(({ type, id }) => ({ type, id })) };
        assert.deepEqual(decodeConfChange(encodeConfChange(cc)), plain);
      }),
      500,
      // U+FEFF is a code point like any other inside a node id, including at its start.
      [[{ changes: [{ type: ConfChangeType.AddVoter, id: '\uFEFFn1' }] }]],
    );
  });

  test('addresses travel with the changes that carry them', () => {
    const cc = {
      changes: [
        { type: ConfChangeType.AddLearner, id: 'n4', address: '127.0.0.1:7004' },
        { type: ConfChangeType.Remove, id: 'n1' },
        { type: ConfChangeType.AddVoter, id: 'n5', address: '[::1]:7005' },
      ],
    };
    assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc);
    // A truncated address is refused like a truncated id.
    const bytes = encodeConfChange(cc);
    assert.throws(() => decodeConfChange(bytes.subarray(0, bytes.byteLength - 1)), isInvalidConfChange);
    assert.throws(
      () =>
        encodeConfChange({
          changes: [{ type: ConfChangeType.AddVoter, id: 'n6', address: 'x'.repeat(256) }],
        }),
      isInvalidConfChange,
    );
  });

  test('encodeConfChange refuses what the format cannot hold, with InvalidConfChangeError', () => {
    const long = 'x'.repeat(256);
    assert.throws(
      () => encodeConfChange({ changes: [{ type: ConfChangeType.AddVoter, id: long }] }),
      isInvalidConfChange,
    );
    const many = Array.from({ length: 256 }, (_, i) => ({ type: ConfChangeType.AddLearner, id: `n${i}` }));
    assert.throws(() => encodeConfChange({ changes: many }), isInvalidConfChange);
    // 255 bytes and 255 changes are the limits, inclusive.
    const ok = encodeConfChange({ changes: [{ type: ConfChangeType.Remove, id: `${'é'.repeat(127)}x` }] });
    assert.equal(ok.byteLength, 1 + 2 + 255);
    assert.equal(decodeConfChange(encodeConfChange({ changes: many.slice(0, 255) })).changes.length, 255);
  });

  test('decodeConfChange on arbitrary bytes either throws InvalidConfChangeError or returns a change that encodes back to the same bytes', () => {
    check(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 48 }), nearlyEncodedArb), (bytes) => {
        let cc: ConfChange;
        try {
          cc = decodeConfChange(bytes);
        } catch (err) {
          assert.ok(isInvalidConfChange(err), `threw ${String(err)} on [${[...bytes].join(', ')}]`);
          return;
        }
        const known = [ConfChangeType.AddVoter, ConfChangeType.AddLearner, ConfChangeType.Remove];
        assert.ok(
          cc.changes.every((c) => known.includes(c.type)),
          `accepted an unknown change type in [${[...bytes].join(', ')}]`,
        );
        assert.deepEqual(encodeConfChange(cc), bytes, 'the encoding is canonical');
      }),
      1000,
    );
  });
});

// ---------------------------------------------------------------- (e) the log: unstable + storage

/**
 * The log of a follower that hears from a series of leaders. Leader t's log is built from
 * an earlier leader's log cut somewhere, plus entries of term t, so every pair of logs obeys
 * Log Matching (an (index, term) pair names one entry, with one history before it), as in a
 * real cluster. An entry's payload is a function of its (index, term).
 */
function entryOf(index: Index, term: Term): Entry {
  return { index, term, type: EntryType.Normal, data: new Uint8Array([index, term]) };
}

/** `logs[t][i]` is the term at index i in leader t's log (t >= 1, i >= 1; index 1 is the bootstrap snapshot). */
function leaderLogs(specs: readonly (readonly [number, number, number])[]): Term[][] {
  const logs: Term[][] = [[], [0, 1]];
  specs.forEach(([parentPick, cutPick, count], k) => {
    const t = k + 1;
    let base: Term[];
    if (t === 1) {
      base = [0, 1];
    } else {
      const parent = logs[1 + (parentPick % (t - 1))] as Term[];
      base = parent.slice(0, 2 + (cutPick % (parent.length - 1)));
    }
    logs[t] = [...base, ...Array.from({ length: count }, () => t)];
  });
  return logs;
}

type LogOp = readonly ['append' | 'handout' | 'persist', number, number, number];

describe('(e) Unstable + RaftLog against a model array', () => {
  test('after any sequence of appends, handed-out writes and their acknowledgements, term() and slice() agree with the model', () => {
    const specsArb = fc.array(fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 0, max: 4 })), {
      minLength: 1,
      maxLength: 6,
    });
    const opArb: fc.Arbitrary<LogOp> = fc.tuple(
      fc.constantFrom('append' as const, 'append' as const, 'handout' as const, 'persist' as const),
      fc.nat(),
      fc.nat(),
      fc.nat(),
    );
    check(
      fc.property(specsArb, fc.array(opArb, { maxLength: 40 }), (specs, ops) => {
        const logs = leaderLogs(specs);
        const leaders = specs.length;
        const storage = new MemoryStorage(bootstrapSnapshot(['n1']));
        const log = new RaftLog(storage);
        let model: Term[] = [0, 1]; // model[i]: the term at index i
        let term = 1; // the newest leader this follower accepted entries from
        const inFlight: { entries: Entry[]; ack: { index: Index; term: Term } }[] = [];
        const trace: string[] = [];

        const verify = (): void => {
          const last = model.length - 1;
          const where = trace.join('; ');
          assert.equal(log.lastIndex(), last, `lastIndex after ${where}`);
          for (let i = 1; i <= last; i++) assert.equal(log.term(i), model[i], `term(${i}) after ${where}`);
          assert.equal(log.term(last + 1), StorageGap.Unavailable);
          const all = log.slice(2, last + 1, Number.POSITIVE_INFINITY);
          assert.ok(!isGap(all), `slice after ${where}`);
          assert.deepEqual(
            all,
            model.slice(2).map((t, k) => entryOf(k + 2, t)),
            `slice after ${where}`,
          );
          // A byte limit keeps a non-empty prefix.
          if (last >= 2) {
            const some = log.slice(2, last + 1, 1);
            assert.ok(!isGap(some) && some.length === 1 && some[0]?.index === 2);
          }
          const u = log.unstable;
          assert.ok(
            u.offset <= u.inProgress && u.inProgress <= u.offset + u.entries.length,
            'Unstable invariant',
          );
        };

        for (const [kind, a, b, c] of ops) {
          if (kind === 'append') {
            // AppendEntries from a leader of the follower's term or a later one (others are
            // not listened to), carrying entries from..from+count-1 of that leader's log.
            term += a % (leaders - term + 1);
            const lead = logs[term] as Term[];
            const leadLast = lead.length - 1;
            const hi = Math.min(model.length, leadLast);
            if (hi < 2) continue;
            const from = 2 + (b % (hi - 1));
            const count = 1 + (c % (leadLast - from + 1));
            const ents = Array.from({ length: count }, (_, k) => entryOf(from + k, lead[from + k] as Term));
            const res = log.maybeAppend(from - 1, lead[from - 1] as Term, ents);
            trace.push(`AppendEntries ${from}..${from + count - 1} from leader ${term}`);
            // Figure 2, AppendEntries receiver, rules 2-4, on the model.
            if (model[from - 1] !== lead[from - 1]) {
              assert.equal(res, null, `accepted after ${trace.join('; ')}`);
              continue;
            }
            assert.equal(res?.lastNew, from + count - 1);
            const conflict = ents.findIndex((e) => model[e.index] !== e.term);
            if (conflict >= 0)
              model = [...model.slice(0, from + conflict), ...ents.slice(conflict).map((e) => e.term)];
          } else if (kind === 'handout') {
            if (!log.unstable.hasNextEntries()) continue;
            const entries = log.unstable.nextEntries();
            log.unstable.acceptInProgress();
            const lastEntry = entries[entries.length - 1] as Entry;
            inFlight.push({ entries, ack: { index: lastEntry.index, term: lastEntry.term } });
            trace.push(`hand out ${entries[0]?.index}..${lastEntry.index}`);
          } else {
            const w = inFlight.shift();
            if (!w) continue;
            storage.append(w.entries);
            log.unstable.stableTo(w.ack.index, w.ack.term);
            trace.push(`persist ..(${w.ack.index}, ${w.ack.term})`);
          }
          verify();
        }
        // Drain: every write completes, in order.
        if (log.unstable.hasNextEntries()) {
          const entries = log.unstable.nextEntries();
          log.unstable.acceptInProgress();
          const lastEntry = entries[entries.length - 1] as Entry;
          inFlight.push({ entries, ack: { index: lastEntry.index, term: lastEntry.term } });
          trace.push(`hand out ${entries[0]?.index}..${lastEntry.index}`);
        }
        for (const w of inFlight.splice(0)) {
          storage.append(w.entries);
          log.unstable.stableTo(w.ack.index, w.ack.term);
          trace.push(`persist ..(${w.ack.index}, ${w.ack.term})`);
          verify();
        }
        const stored: Term[] = [];
        for (let i = 1; i <= storage.lastIndex(); i++) stored.push(storage.term(i));
        assert.deepEqual(stored, model.slice(1), 'the disk ends up holding the model log');
      }),
      2000,
      [
        // The ABA case of etcd-io/raft's newStorageAppendRespMsg, pinned so that it runs on
        // every seed. Leader 1 has entry 2 of term 1, leader 2 replaced it with one of term 2,
        // leader 3 holds leader 1's again. The follower hands out a write for each in turn;
        // when the first completes, its ack (2, term 1) matches the log, yet the second
        // write, still in flight, is about to put entry (2, term 2) on the disk.
        [
          [
            [0, 0, 1],
            [0, 0, 1],
            [0, 1, 0],
          ],
          [
            ['append', 0, 0, 0],
            ['handout', 0, 0, 0],
            ['append', 1, 0, 0],
            ['handout', 0, 0, 0],
            ['append', 1, 0, 0],
          ],
        ],
      ],
    );
  });
});

// ---------------------------------------------------------------- (f) configuration changes

const ID_POOL = ['a', 'b', 'c', 'd', 'e'] as const;

const startConfArb: fc.Arbitrary<ConfState> = fc
  .tuple(fc.subarray([...ID_POOL], { minLength: 1 }), fc.subarray([...ID_POOL]))
  .map(([voters, maybeLearners]) => ({
    voters,
    votersOutgoing: [],
    learners: maybeLearners.filter((id) => !voters.includes(id)),
    autoLeave: false,
  }));

// Includes what must be refused: unknown types (0, 4), the empty id, an id not in the configuration.
const changeArb: fc.Arbitrary<ConfChange> = fc.record({
  changes: fc.array(
    fc.record({
      type: fc.constantFrom(
        0 as ConfChangeType,
        ConfChangeType.AddVoter,
        ConfChangeType.AddLearner,
        ConfChangeType.Remove,
        4 as ConfChangeType,
      ),
      id: fc.constantFrom('', 'f', ...ID_POOL),
    }),
    { maxLength: 4 },
  ),
});

const sameSet = (a: readonly NodeId[], b: readonly NodeId[]): boolean =>
  a.length === b.length && new Set(a).size === a.length && a.every((x) => b.includes(x));

/** What a change should do, computed with plain sets; null when it must be refused. */
function naiveApply(prev: ConfState, cc: ConfChange): { voters: Set<NodeId>; learners: Set<NodeId> } | null {
  if (cc.changes.length === 0) {
    return isJoint(prev) ? { voters: new Set(prev.voters), learners: new Set(prev.learners) } : null;
  }
  if (isJoint(prev)) return null;
  const voters = new Set(prev.voters);
  const learners = new Set(prev.learners);
  for (const { type, id } of cc.changes) {
    if (id === '') return null;
    if (type === ConfChangeType.AddVoter) {
      learners.delete(id);
      voters.add(id);
    } else if (type === ConfChangeType.AddLearner) {
      if (voters.has(id)) return null;
      learners.add(id);
    } else if (type === ConfChangeType.Remove) {
      if (!voters.has(id) && !learners.has(id)) return null;
      voters.delete(id);
      learners.delete(id);
    } else {
      return null;
    }
  }
  return voters.size === 0 ? null : { voters, learners };
}

describe('(f) applyConfChange', () => {
  test('voters never empty, learners and voters disjoint, joint exactly when the voter set changes', () => {
    check(
      fc.property(startConfArb, fc.array(changeArb, { maxLength: 10 }), (start, changes) => {
        let conf = start;
        for (const cc of changes) {
          const want = naiveApply(conf, cc);
          let next: ConfState;
          try {
            next = applyConfChange(conf, cc);
          } catch (err) {
            assert.ok(isInvalidConfChange(err), `threw ${String(err)}`);
            assert.equal(want, null, `refused ${JSON.stringify(cc)} on ${JSON.stringify(conf)}`);
            continue;
          }
          assert.ok(want, `accepted ${JSON.stringify(cc)} on ${JSON.stringify(conf)}`);
          assert.ok(next.voters.length > 0, 'voters never empty');
          assert.ok(sameSet(next.voters, [...want.voters]), 'incoming voters');
          assert.ok(sameSet(next.learners, [...want.learners]), 'learners');
          assert.ok(
            next.learners.every((l) => !next.voters.includes(l)),
            'learners ∩ voters = ∅',
          );
          if (cc.changes.length === 0) {
            assert.ok(!isJoint(next), 'leaving the joint configuration');
          } else if (sameSet(next.voters, conf.voters)) {
            assert.ok(!isJoint(next), 'same voters: applied at once, no joint configuration');
          } else {
            assert.ok(isJoint(next), 'the voters change: joint consensus');
            assert.deepEqual(next.votersOutgoing, conf.voters, 'C_old is the outgoing half');
            assert.equal(next.autoLeave, true);
          }
          conf = next;
        }
      }),
      500,
    );
  });
});
