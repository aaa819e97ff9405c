/**
 * The Raft paper, sentence by sentence (Ongaro & Ousterhout 2014, "In Search of an
 * Understandable Consensus Algorithm", Figure 2 and §5), plus the thesis sections the core
 * also implements (Ongaro 2014, "Consensus: Bridging Theory and Practice"). Each test names
 * the sentence it checks; quotations are marked with double quotes, paraphrases are not.
 *
 * Most tests drive one RaftCore directly with hand-built messages, so that every message
 * the core sends and every write it asks for can be inspected; the multi-node scenarios use
 * SyncCluster. Nothing here reads a clock: time is `tick()`.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Message, MessageType, message } from '../../src/raft/messages.js';
import { type RaftConfig, RaftCore } from '../../src/raft/raft-core.js';
import { Rng } from '../../src/raft/rng.js';
import { bootstrapSnapshot, MemoryStorage } from '../../src/raft/storage.js';
import {
  type Entry,
  EntryType,
  type HardState,
  type Index,
  NO_NODE,
  type NodeId,
  type ReadState,
  Role,
  type Term,
} from '../../src/raft/types.js';
import { SyncCluster } from './sync-cluster.js';

const E = 10; // electionTicks
const V3: readonly NodeId[] = ['n1', 'n2', 'n3'];
const V5: readonly NodeId[] = ['n1', 'n2', 'n3', 'n4', 'n5'];

// ---------------------------------------------------------------- helpers

/** An entry whose payload is a function of (index, term): by Log Matching, equal ids mean equal entries. */
function entry(index: Index, term: Term): Entry {
  return { index, term, type: EntryType.Normal, data: new Uint8Array([index & 0xff, term & 0xff]) };
}

/**
 * A storage whose log holds `terms[i - 1]` at index i. Index 1 is the bootstrap snapshot
 * (term 1), so `terms[0]` must be 1; later entries are stored as log entries.
 */
function logStorage(
  voters: readonly NodeId[],
  terms: readonly Term[] = [1],
  hard?: HardState,
): MemoryStorage {
  assert.equal(terms[0], 1, 'index 1 is the bootstrap snapshot, whose term is 1');
  const s = new MemoryStorage(bootstrapSnapshot(voters));
  s.append(terms.slice(1).map((t, i) => entry(i + 2, t)));
  if (hard) s.setHardState(hard);
  return s;
}

/** The terms of indexes 1..last as the core sees its log. */
function logTerms(core: RaftCore): Term[] {
  const out: Term[] = [];
  for (let i = 1; i <= core.log.lastIndex(); i++) out.push(core.log.term(i));
  return out;
}

/** The terms of indexes 1..last as the storage holds them. */
function storedTerms(s: MemoryStorage): Term[] {
  const out: Term[] = [];
  for (let i = s.snapshot().index; i <= s.lastIndex(); i++) out.push(s.term(i));
  return out;
}

interface Harness {
  readonly core: RaftCore;
  readonly storage: MemoryStorage;
  readonly readStates: ReadState[];
}

interface CoreOptions extends Partial<Omit<RaftConfig, 'id' | 'storage'>> {
  readonly storage?: MemoryStorage;
  readonly seed?: number;
}

/**
 * One core. Unless told otherwise it runs the paper's algorithm: no PreVote (a campaign
 * raises the term at once). CheckQuorum keeps the project default (on).
 */
function newCore(id: NodeId, voters: readonly NodeId[], opts: CoreOptions = {}): Harness {
  const { storage = logStorage(voters), seed = 7, ...cfg } = opts;
  const core = new RaftCore({
    id,
    storage,
    rng: new Rng(seed),
    electionTicks: E,
    heartbeatTicks: 1,
    preVote: false,
    ...cfg,
  });
  return { core, storage, readStates: [] };
}

/**
 * Handles Readys the way a driver with an instantly durable disk would: write, then
 * `persisted`, then release the messages that waited for the write (stepping those the
 * core addressed to itself). Returns the messages for other nodes, in send order.
 */
function flush(h: Harness): Message[] {
  const out: Message[] = [];
  for (let guard = 0; h.core.hasReady(); guard++) {
    assert.ok(guard < 100, 'flush: the core keeps producing Readys');
    const rd = h.core.ready();
    out.push(...rd.messages);
    if (rd.append) {
      h.storage.write(rd.append);
      h.core.persisted(rd.append);
      for (const m of rd.append.messages) {
        if (m.to === h.core.id) h.core.step(m);
        else out.push(m);
      }
    }
    const entries = rd.apply?.entries ?? [];
    const last = entries[entries.length - 1];
    if (last) h.core.applied(last.index);
    h.readStates.push(...rd.readStates);
  }
  return out;
}

function ofType(msgs: readonly Message[], type: MessageType): Message[] {
  return msgs.filter((m) => m.type === type);
}

/** `core` campaigns and hears a grant from each of `granters`; returns the messages it sent. */
function campaignWith(h: Harness, granters: readonly NodeId[]): Message[] {
  h.core.campaign();
  const out = flush(h);
  for (const from of granters) {
    h.core.step(message({ type: MessageType.MsgVoteResp, from, to: h.core.id, term: h.core.term }));
    out.push(...flush(h));
  }
  return out;
}

/** A leader of a fresh cluster, elected at term 1 with n2's vote; its no-op is not acknowledged yet. */
function newLeader(voters: readonly NodeId[], opts: CoreOptions = {}): Harness {
  const h = newCore('n1', voters, opts);
  campaignWith(h, ['n2']);
  assert.equal(h.core.role, Role.Leader);
  return h;
}

/** `from` acknowledges everything up to `index` to the leader `h`. */
function ack(h: Harness, from: NodeId, index: Index): Message[] {
  h.core.step(message({ type: MessageType.MsgAppResp, from, to: h.core.id, term: h.core.term, index }));
  return flush(h);
}

function appendMsg(
  from: NodeId,
  to: NodeId,
  term: Term,
  prev: [Index, Term],
  ents: Entry[],
  commit = 0,
): Message {
  return message({
    type: MessageType.MsgApp,
    from,
    to,
    term,
    index: prev[0],
    logTerm: prev[1],
    entries: ents,
    commit,
  });
}

function voteMsg(
  from: NodeId,
  to: NodeId,
  term: Term,
  last: [Index, Term],
  type = MessageType.MsgVote,
): Message {
  return message({ type, from, to, term, index: last[0], logTerm: last[1] });
}

/** Puts `h` in `role` at term 1 (a follower stays at term 0, as it starts). */
function inRole(role: Role): Harness {
  const h = newCore('n1', V3);
  if (role === Role.Candidate) campaignWith(h, []);
  if (role === Role.Leader) campaignWith(h, ['n2']);
  assert.equal(h.core.role, role);
  return h;
}

// ---------------------------------------------------------------- §5.1 terms

describe('§5.1: terms', () => {
  // Figure 2, Rules for Servers, all servers:
  // "If RPC request or response contains term T > currentTerm: set currentTerm = T,
  // convert to follower (§5.1)"
  test('"If RPC request or response contains term T > currentTerm: set currentTerm = T, convert to follower"', () => {
    const kinds = [
      MessageType.MsgApp,
      MessageType.MsgHeartbeat,
      MessageType.MsgAppResp,
      MessageType.MsgHeartbeatResp,
    ];
    for (const role of [Role.Follower, Role.Candidate, Role.Leader]) {
      for (const type of kinds) {
        const h = inRole(role);
        const t = h.core.term + 1;
        const last: [Index, Term] = [h.core.log.lastIndex(), h.core.log.lastTerm()];
        h.core.step(message({ type, from: 'n2', to: 'n1', term: t, index: last[0], logTerm: last[1] }));
        const what = `${role} stepping ${MessageType[type]}`;
        assert.equal(h.core.term, t, what);
        assert.equal(h.core.role, Role.Follower, what);
        // A request from a leader also tells us who leads; a response does not.
        const fromLeader = type === MessageType.MsgApp || type === MessageType.MsgHeartbeat;
        assert.equal(h.core.lead, fromLeader ? 'n2' : NO_NODE, what);
        assert.equal(h.core.vote, NO_NODE, `${what}: a new term starts with no vote`);
      }
    }
  });

  // §5.1: "If a candidate or leader discovers that its term is out of date, it immediately
  // reverts to follower state." Without CheckQuorum this holds for a RequestVote too; with
  // it, a leader inside its lease ignores the request (thesis §4.2.3, tested below).
  test('"If a candidate or leader discovers that its term is out of date, it immediately reverts to follower state"', () => {
    for (const role of [Role.Candidate, Role.Leader]) {
      const h = newCore('n1', V3, { checkQuorum: false });
      campaignWith(h, role === Role.Leader ? ['n2'] : []);
      assert.equal(h.core.role, role);
      // n3 campaigns at a later term with a log as long as ours (it holds our no-op too).
      h.core.step(voteMsg('n3', 'n1', 5, [h.core.log.lastIndex(), h.core.log.lastTerm()]));
      assert.equal(h.core.role, Role.Follower, role);
      assert.equal(h.core.term, 5, role);
    }
  });

  // §5.1: "If a server receives a request with a stale term number, it rejects the request."
  // Figure 2, AppendEntries and RequestVote receivers: "1. Reply false if term < currentTerm".
  test('"If a server receives a request with a stale term number, it rejects the request"', () => {
    const h = newCore('n1', V3);
    h.core.step(appendMsg('n2', 'n1', 2, [1, 1], [entry(2, 2)]));
    flush(h);
    assert.deepEqual(logTerms(h.core), [1, 2]);

    // A deposed leader of term 1 sends entries: they are refused and it learns our term.
    h.core.step(appendMsg('n3', 'n1', 1, [1, 1], [entry(2, 1), entry(3, 1)], 3));
    const out = flush(h);
    assert.deepEqual(logTerms(h.core), [1, 2], 'no entry of the stale leader is appended');
    assert.equal(h.core.log.committed, 1, 'nor is its commit index taken');
    assert.equal(h.core.lead, 'n2');
    const resp = ofType(out, MessageType.MsgAppResp);
    assert.equal(resp.length, 1);
    assert.equal(resp[0]?.to, 'n3');
    assert.equal(resp[0]?.term, 2, 'the reply carries the current term');

    // A candidate of a stale term gets no vote.
    h.core.step(voteMsg('n3', 'n1', 1, [9, 9]));
    const votes = ofType(flush(h), MessageType.MsgVoteResp);
    assert.ok(
      votes.every((m) => m.reject),
      'no vote is granted for a stale term',
    );
    assert.equal(h.core.vote, NO_NODE);
    assert.equal(h.core.term, 2);
  });
});

// ---------------------------------------------------------------- §5.2 leader election

describe('§5.2: leader election', () => {
  // Figure 2, followers: "If election timeout elapses without receiving AppendEntries RPC
  // from current leader or granting vote to candidate: convert to candidate"
  test('"If election timeout elapses without receiving AppendEntries RPC from current leader ...: convert to candidate"', () => {
    const h = newCore('n1', V3);
    let ticks = 0;
    while (h.core.role === Role.Follower && ticks < 2 * E) {
      h.core.tick();
      ticks++;
    }
    assert.equal(h.core.role, Role.Candidate);
    assert.ok(ticks >= E && ticks < 2 * E, `campaigned after ${ticks} ticks, outside [E, 2E)`);
    assert.equal(h.core.term, 1);
  });

  // §5.2: "Leaders send periodic heartbeats (AppendEntries RPCs that carry no log entries)
  // to all followers in order to maintain their authority."
  test('a follower that keeps receiving heartbeats from its leader never starts an election', () => {
    const h = newCore('n1', V3);
    for (let i = 0; i < 10 * E; i++) {
      h.core.step(message({ type: MessageType.MsgHeartbeat, from: 'n2', to: 'n1', term: 1 }));
      h.core.tick();
      flush(h);
    }
    assert.equal(h.core.role, Role.Follower);
    assert.equal(h.core.term, 1);
    assert.equal(h.core.lead, 'n2');
  });

  // §5.2: "Raft uses randomized election timeouts to ensure that split votes are rare ...
  // election timeouts are chosen randomly from a fixed interval".
  test('"Raft uses randomized election timeouts": timeouts vary with the seed and stay in [E, 2E)', () => {
    const seen = new Set<number>();
    for (let seed = 1; seed <= 40; seed++) {
      const h = newCore('n1', V3, { seed });
      let ticks = 0;
      while (h.core.role === Role.Follower && ticks < 3 * E) {
        h.core.tick();
        ticks++;
      }
      assert.ok(ticks >= E && ticks < 2 * E, `seed ${seed}: campaigned after ${ticks} ticks`);
      seen.add(ticks);
    }
    assert.ok(seen.size >= 3, `only ${seen.size} distinct timeouts over 40 seeds`);
  });

  // Figure 2, candidates: "On conversion to candidate, start election: Increment
  // currentTerm; Vote for self; Reset election timer; Send RequestVote RPCs to all other servers"
  test('"On conversion to candidate, start election: Increment currentTerm, Vote for self, ... Send RequestVote RPCs to all other servers"', () => {
    const h = newCore('n1', V5);
    h.core.campaign();
    assert.equal(h.core.role, Role.Candidate);
    assert.equal(h.core.term, 1);
    assert.equal(h.core.vote, 'n1');
    const rd = h.core.ready();
    assert.deepEqual(rd.append?.hardState, { term: 1, vote: 'n1' }, 'term and vote go to stable storage');
    const reqs = ofType(rd.messages, MessageType.MsgVote);
    assert.deepEqual(reqs.map((m) => m.to).sort(), ['n2', 'n3', 'n4', 'n5']);
    for (const m of reqs) {
      assert.equal(m.term, 1);
      // RequestVote arguments: lastLogIndex and lastLogTerm of the candidate.
      assert.equal(m.index, 1);
      assert.equal(m.logTerm, 1);
    }
  });

  // Figure 2, candidates: "If votes received from majority of servers: become leader" and
  // §5.2: "A candidate wins an election if it receives votes from a majority of the servers
  // in the full cluster for the same term."
  test('"If votes received from majority of servers: become leader"', () => {
    const cases: { voters: readonly NodeId[]; votes: Record<NodeId, boolean>; want: Role }[] = [
      { voters: ['n1'], votes: {}, want: Role.Leader },
      { voters: V3, votes: { n2: true }, want: Role.Leader },
      { voters: V3, votes: { n2: true, n3: true }, want: Role.Leader },
      { voters: V3, votes: { n2: false }, want: Role.Candidate },
      { voters: V3, votes: { n2: false, n3: false }, want: Role.Follower },
      { voters: V3, votes: { n2: false, n3: true }, want: Role.Leader },
      { voters: V5, votes: { n2: true }, want: Role.Candidate },
      { voters: V5, votes: { n2: true, n3: true }, want: Role.Leader },
      { voters: V5, votes: { n2: false, n3: false }, want: Role.Candidate },
      { voters: V5, votes: { n2: true, n3: false, n4: false }, want: Role.Candidate },
      { voters: V5, votes: { n2: false, n3: false, n4: false }, want: Role.Follower },
      { voters: V5, votes: { n2: true, n3: false, n4: false, n5: false }, want: Role.Follower },
    ];
    for (const c of cases) {
      const h = newCore('n1', c.voters);
      h.core.campaign();
      flush(h);
      for (const [from, granted] of Object.entries(c.votes)) {
        h.core.step(
          message({ type: MessageType.MsgVoteResp, from, to: 'n1', term: h.core.term, reject: !granted }),
        );
        flush(h);
      }
      assert.equal(h.core.role, c.want, `${c.voters.length} voters, votes ${JSON.stringify(c.votes)}`);
      assert.equal(h.core.term, 1, 'a lost election does not change the term');
    }
  });

  // §5.2: "Each server will vote for at most one candidate in a given term, on a
  // first-come-first-served basis".
  test('"Each server will vote for at most one candidate in a given term, on a first-come-first-served basis"', () => {
    const h = newCore('n1', V3);
    const up: [Index, Term] = [1, 1];
    const answer = (from: NodeId, term: Term): boolean => {
      h.core.step(voteMsg(from, 'n1', term, up));
      const resp = ofType(flush(h), MessageType.MsgVoteResp);
      assert.equal(resp.length, 1, `one answer to ${from}`);
      assert.equal(resp[0]?.to, from);
      return resp[0]?.reject === false;
    };
    assert.equal(answer('n2', 1), true, 'first come');
    assert.equal(h.core.vote, 'n2');
    assert.equal(answer('n3', 1), false, 'second candidate of the same term');
    assert.equal(answer('n2', 1), true, 'a repeated request from the same candidate is granted again');
    assert.equal(h.core.vote, 'n2');
    assert.equal(answer('n3', 2), true, 'a new term, a new vote');
    assert.equal(h.core.vote, 'n3');
  });

  // Figure 2, persistent state: "(Updated on stable storage before responding to RPCs)
  // currentTerm ... votedFor".
  test('"Updated on stable storage before responding to RPCs": a granted vote leaves only after term and vote are written', () => {
    const h = newCore('n1', V3);
    h.core.step(voteMsg('n2', 'n1', 1, [1, 1]));
    const rd = h.core.ready();
    assert.equal(ofType(rd.messages, MessageType.MsgVoteResp).length, 0, 'not sent before the write');
    assert.ok(rd.append);
    assert.deepEqual(rd.append.hardState, { term: 1, vote: 'n2' });
    const after = ofType(rd.append.messages, MessageType.MsgVoteResp);
    assert.equal(after.length, 1);
    assert.equal(after[0]?.reject, false);
  });

  // §5.2: "While waiting for votes, a candidate may receive an AppendEntries RPC from
  // another server claiming to be leader. If the leader's term (included in its RPC) is at
  // least as large as the candidate's current term, then the candidate recognizes the leader
  // as legitimate and returns to follower state. If the term in the RPC is smaller than the
  // candidate's current term, then the candidate rejects the RPC and continues in candidate state."
  test('"If the leader\'s term is at least as large as the candidate\'s current term, then the candidate ... returns to follower state"', () => {
    for (const type of [MessageType.MsgApp, MessageType.MsgHeartbeat]) {
      const h = newCore('n1', V3);
      campaignWith(h, []);
      campaignWith(h, []); // term 2
      assert.equal(h.core.term, 2);

      h.core.step(message({ type, from: 'n2', to: 'n1', term: 1, index: 1, logTerm: 1 }));
      assert.equal(h.core.role, Role.Candidate, `${MessageType[type]} of a smaller term is rejected`);

      h.core.step(message({ type, from: 'n2', to: 'n1', term: 2, index: 1, logTerm: 1 }));
      assert.equal(h.core.role, Role.Follower, `${MessageType[type]} of the same term`);
      assert.equal(h.core.term, 2);
      assert.equal(h.core.lead, 'n2');
    }
  });

  // Figure 2, candidates: "If election timeout elapses: start new election"
  test('"If election timeout elapses: start new election"', () => {
    const h = newCore('n1', V3);
    campaignWith(h, []);
    assert.equal(h.core.term, 1);
    for (let i = 0; i < 2 * E && h.core.term === 1; i++) h.core.tick();
    assert.equal(h.core.role, Role.Candidate);
    assert.equal(h.core.term, 2);
    assert.equal(h.core.vote, 'n1');
  });

  // Thesis §4.2.3: "if a server receives a RequestVote request within the minimum election
  // timeout of hearing from a current leader, it does not update its term or grant its
  // vote." A restarted server does not know when it last heard from a leader, so it
  // behaves as if it just had (this also keeps a leader's lease safe across its restart).
  test('thesis §4.2.3: "within the minimum election timeout of hearing from a current leader, it does not update its term or grant its vote"', () => {
    const c = new SyncCluster([...V3]);
    assert.equal(c.elect('n1'), 'n1');
    const n3 = c.node('n3').core;
    const req = voteMsg('n3', 'n2', 2, [n3.log.lastIndex(), n3.log.lastTerm()]);
    const grantedTo = (id: NodeId): boolean => {
      const rd = c.processReady(id);
      const msgs = rd ? [...rd.messages, ...(rd.append?.messages ?? [])] : [];
      c.queue = [];
      return ofType(msgs, MessageType.MsgVoteResp).some((m) => !m.reject);
    };

    // n2 heard from n1 just now.
    c.node('n2').core.step(req);
    assert.equal(grantedTo('n2'), false);
    assert.equal(c.node('n2').core.term, 1, 'the term is not updated either');

    // After a restart (term 1 on disk) the guard holds for one election timeout.
    const n2 = c.restart('n2').core;
    for (let i = 0; i < E - 1; i++) n2.tick();
    n2.step(req);
    assert.equal(grantedTo('n2'), false, 'still inside the election timeout after the restart');
    assert.equal(n2.term, 1);
    n2.tick();
    n2.step(req);
    assert.equal(grantedTo('n2'), true, 'one election timeout after the restart');
    assert.equal(n2.term, 2);
  });
});

// ---------------------------------------------------------------- §5.4.1 election restriction

describe('§5.4.1: election restriction', () => {
  // §5.4.1: "Raft determines which of two logs is more up-to-date by comparing the index and
  // term of the last entries in the logs. If the logs have last entries with different terms,
  // then the log with the later term is more up-to-date. If the logs end with the same term,
  // then whichever log is longer is more up-to-date." and "the voter denies its vote if its
  // own log is more up-to-date than that of the candidate."
  test('"the voter denies its vote if its own log is more up-to-date than that of the candidate"', () => {
    // The voter's log ends with (index 3, term 2).
    const cases: { last: [Index, Term]; grant: boolean }[] = [
      { last: [3, 2], grant: true }, // same last entry
      { last: [4, 2], grant: true }, // same term, longer
      { last: [2, 2], grant: false }, // same term, shorter
      { last: [1, 3], grant: true }, // later term, shorter
      { last: [9, 1], grant: false }, // earlier term, longer
      { last: [3, 1], grant: false }, // earlier term, same length
    ];
    for (const c of cases) {
      // CheckQuorum off: with it, a node restarted at term 2 ignores votes for an
      // election timeout (thesis §4.2.3, tested above), which is not what this checks.
      const storage = logStorage(V3, [1, 1, 2], { term: 2, vote: NO_NODE });
      const h = newCore('n1', V3, { storage, checkQuorum: false });
      h.core.step(voteMsg('n2', 'n1', 3, c.last));
      const resp = ofType(flush(h), MessageType.MsgVoteResp);
      assert.equal(resp.length, 1);
      assert.equal(resp[0]?.reject, !c.grant, `candidate last entry ${JSON.stringify(c.last)}`);
      assert.equal(h.core.vote, c.grant ? 'n2' : NO_NODE);
      assert.equal(h.core.term, 3, 'the term is updated whether or not the vote is granted');
    }
  });
});

// ---------------------------------------------------------------- §5.3 log replication

describe('§5.3: log replication', () => {
  // Figure 2, leaders: "Upon election: send initial empty AppendEntries RPCs (heartbeat) to
  // each server". §8: "Raft handles this by having each leader commit a blank no-op entry
  // into the log at the start of its term."
  test('"each leader commit[s] a blank no-op entry into the log at the start of its term" and sends it to every server', () => {
    const h = newCore('n1', V3);
    const out = campaignWith(h, ['n2']);
    assert.equal(h.core.role, Role.Leader);
    const noop = h.core.log.slice(2, 3, Number.POSITIVE_INFINITY);
    assert.ok(Array.isArray(noop));
    assert.equal(noop[0]?.type, EntryType.Noop);
    assert.equal(noop[0]?.term, 1);
    assert.equal(noop[0]?.data.byteLength, 0);
    const apps = ofType(out, MessageType.MsgApp);
    assert.deepEqual(apps.map((m) => m.to).sort(), ['n2', 'n3']);
    for (const m of apps) {
      assert.equal(m.term, 1);
      assert.deepEqual(
        [m.index, m.logTerm],
        [1, 1],
        'prevLogIndex/prevLogTerm name the entry before the no-op',
      );
      assert.deepEqual(
        m.entries.map((e) => [e.index, e.term, e.type]),
        [[2, 1, EntryType.Noop]],
      );
    }
    // Once a majority holds it the no-op commits, and everything before it.
    ack(h, 'n2', 2);
    assert.equal(h.core.log.committed, 2);
  });

  // Figure 2, leaders: "If command received from client: append entry to local log, respond
  // after entry applied to state machine" and "If there exists an N such that N >
  // commitIndex, a majority of matchIndex[i] ≥ N, and log[N].term == currentTerm: set
  // commitIndex = N". §5.3: "A log entry is committed once the leader that created the entry
  // has replicated it on a majority of the servers".
  test('"A log entry is committed once the leader that created the entry has replicated it on a majority of the servers"', () => {
    const cases: { voters: readonly NodeId[]; acks: NodeId[]; committed: boolean }[] = [
      { voters: ['n1'], acks: [], committed: true },
      { voters: V3, acks: [], committed: false },
      { voters: V3, acks: ['n2'], committed: true },
      { voters: V3, acks: ['n3'], committed: true },
      { voters: V5, acks: ['n2'], committed: false },
      { voters: V5, acks: ['n4', 'n5'], committed: true },
      { voters: V5, acks: ['n2', 'n3', 'n4', 'n5'], committed: true },
    ];
    for (const c of cases) {
      const h = newCore('n1', c.voters);
      campaignWith(
        h,
        c.voters.filter((v) => v !== 'n1'),
      );
      assert.equal(h.core.role, Role.Leader);
      const before = h.core.log.committed;
      const idx = h.core.propose(new TextEncoder().encode('x'));
      assert.equal(idx, 3, 'after the bootstrap snapshot (1) and the no-op (2)');
      flush(h);
      for (const id of c.acks) ack(h, id, idx);
      const what = `${c.voters.length} voters, acks from ${c.acks.join(',') || 'nobody'}`;
      assert.equal(h.core.log.committed, c.committed ? idx : before, what);
      for (const id of c.acks)
        assert.equal(h.core.status().progress.get(id)?.match, idx, `${what}: matchIndex`);
      // "respond after entry applied": the entry reaches the state machine only once committed.
      const applied = h.core.log.applied;
      assert.equal(applied >= idx, c.committed, `${what}: applied ${applied}`);
    }
  });

  // Figure 2, AppendEntries receiver: "2. Reply false if log doesn't contain an entry at
  // prevLogIndex whose term matches prevLogTerm (§5.3)". §5.3: "If the follower does not
  // find an entry in its log with the same index and term, then it refuses the new entries."
  test('"Reply false if log doesn\'t contain an entry at prevLogIndex whose term matches prevLogTerm"', () => {
    // The follower holds terms [1, 1, 2] at indexes 1..3.
    const cases: { prev: [Index, Term]; ok: boolean }[] = [
      { prev: [1, 1], ok: true },
      { prev: [2, 1], ok: true },
      { prev: [3, 2], ok: true },
      { prev: [3, 3], ok: false }, // same index, other term
      { prev: [2, 2], ok: false },
      { prev: [4, 2], ok: false }, // no entry at all
      { prev: [9, 3], ok: false },
    ];
    for (const c of cases) {
      const h = newCore('n1', V3, { storage: logStorage(V3, [1, 1, 2], { term: 2, vote: NO_NODE }) });
      h.core.step(appendMsg('n2', 'n1', 3, c.prev, [entry(c.prev[0] + 1, 3)]));
      const rd = h.core.ready();
      assert.equal(ofType(rd.messages, MessageType.MsgAppResp).length, 0, 'the reply waits for the write');
      const resp = ofType(rd.append?.messages ?? [], MessageType.MsgAppResp);
      const what = `prev ${JSON.stringify(c.prev)}`;
      assert.equal(resp.length, 1, what);
      assert.equal(resp[0]?.reject, !c.ok, what);
      if (c.ok) {
        assert.equal(resp[0]?.index, c.prev[0] + 1, `${what}: the last index now known to match`);
        assert.deepEqual(
          rd.append?.entries.map((e) => e.index),
          [c.prev[0] + 1],
        );
      } else {
        assert.equal(resp[0]?.index, c.prev[0], `${what}: names the rejected prevLogIndex`);
        assert.ok((resp[0]?.rejectHint ?? 99) <= 3, `${what}: the hint is inside the follower's log`);
        assert.deepEqual(logTerms(h.core), [1, 1, 2], `${what}: the log is untouched`);
      }
    }
  });

  // Figure 2, AppendEntries receiver: "3. If an existing entry conflicts with a new one (same
  // index but different terms), delete the existing entry and all that follow it (§5.3)
  // 4. Append any new entries not already in the log"
  test('"If an existing entry conflicts with a new one ..., delete the existing entry and all that follow it" / "Append any new entries not already in the log"', () => {
    const cases: { prev: [Index, Term]; ents: Entry[]; want: Term[] }[] = [
      { prev: [3, 2], ents: [entry(4, 3), entry(5, 3)], want: [1, 1, 2, 3, 3] },
      { prev: [2, 1], ents: [entry(3, 3), entry(4, 3)], want: [1, 1, 3, 3] },
      { prev: [1, 1], ents: [entry(2, 3)], want: [1, 3] },
      { prev: [1, 1], ents: [entry(2, 3), entry(3, 3), entry(4, 3)], want: [1, 3, 3, 3] },
      // Entries already present are not a conflict: a delayed, shorter AppendEntries must
      // not cut off what follows them.
      { prev: [1, 1], ents: [entry(2, 1)], want: [1, 1, 2] },
      { prev: [2, 1], ents: [], want: [1, 1, 2] },
      { prev: [1, 1], ents: [entry(2, 1), entry(3, 2), entry(4, 3)], want: [1, 1, 2, 3] },
    ];
    for (const c of cases) {
      const h = newCore('n1', V3, { storage: logStorage(V3, [1, 1, 2], { term: 2, vote: NO_NODE }) });
      h.core.step(appendMsg('n2', 'n1', 3, c.prev, c.ents));
      flush(h);
      const what = `prev ${JSON.stringify(c.prev)}, ${c.ents.length} entries`;
      assert.deepEqual(logTerms(h.core), c.want, what);
      assert.deepEqual(storedTerms(h.storage), c.want, `${what}: on disk`);
    }
  });

  // Figure 2, AppendEntries receiver: "5. If leaderCommit > commitIndex, set commitIndex =
  // min(leaderCommit, index of last new entry)". §5.3: "Once a follower learns that a log
  // entry is committed, it applies the entry to its local state machine (in log order)."
  test('"If leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of last new entry)"', () => {
    // The leader is n2, for term 3; the follower was at term 2.
    const cases: { log: Term[]; prev: [Index, Term]; ents: Entry[]; commit: Index; want: Index }[] = [
      { log: [1], prev: [1, 1], ents: [entry(2, 1), entry(3, 3)], commit: 3, want: 3 },
      { log: [1], prev: [1, 1], ents: [entry(2, 1), entry(3, 3)], commit: 2, want: 2 },
      { log: [1], prev: [1, 1], ents: [entry(2, 1), entry(3, 3)], commit: 9, want: 3 },
      { log: [1], prev: [1, 1], ents: [], commit: 0, want: 1 },
      // The follower still holds entries 3..4 of term 2 from an earlier leader. The leader's
      // log is [1, 1, 2, 3] and it has committed index 4 (its entry of term 3), but this
      // AppendEntries carries entries only up to index 3 (a size-limited batch). Entry 4 of
      // term 2 is not known to match the leader's log: committing it would apply an entry
      // that the cluster never committed.
      { log: [1, 1, 2, 2], prev: [2, 1], ents: [entry(3, 2)], commit: 4, want: 3 },
      { log: [1, 1, 2, 2], prev: [2, 1], ents: [], commit: 4, want: 2 },
    ];
    for (const c of cases) {
      const h = newCore('n1', V3, { storage: logStorage(V3, c.log, { term: 2, vote: NO_NODE }) });
      h.core.step(appendMsg('n2', 'n1', 3, c.prev, c.ents, c.commit));
      flush(h);
      const what = `log ${JSON.stringify(c.log)}, prev ${JSON.stringify(c.prev)}, commit ${c.commit}`;
      assert.equal(h.core.log.committed, c.want, what);
      assert.equal(h.core.log.applied, c.want, `${what}: applied in log order`);
    }
  });

  // §5.3: "In Raft, the leader handles inconsistencies by forcing the followers' logs to
  // duplicate its own." and "After a rejection, the leader decrements nextIndex and retries
  // the AppendEntries RPC. Eventually nextIndex will reach a point where the leader and
  // follower logs match." The logs are those of Figure 7: a leader for term 8 and six
  // followers (a)-(f).
  test('Figure 7: "the leader handles inconsistencies by forcing the followers\' logs to duplicate its own"', () => {
    const leaderLog = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    const followers: { name: string; log: Term[]; rejects: boolean }[] = [
      { name: 'a', log: [1, 1, 1, 4, 4, 5, 5, 6, 6], rejects: true },
      { name: 'b', log: [1, 1, 1, 4], rejects: true },
      { name: 'c', log: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6], rejects: false },
      { name: 'd', log: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], rejects: false },
      { name: 'e', log: [1, 1, 1, 4, 4, 4, 4], rejects: true },
      { name: 'f', log: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3], rejects: true },
    ];
    for (const f of followers) {
      // CheckQuorum off so the nodes, restarted from these logs at term 7, vote at once.
      const c = new SyncCluster([...V3], { preVote: false, checkQuorum: false });
      c.addNode('n1', logStorage(V3, leaderLog, { term: 7, vote: NO_NODE }));
      c.addNode('n2', logStorage(V3, f.log, { term: 7, vote: NO_NODE }));
      c.addNode('n3', logStorage(V3, leaderLog, { term: 7, vote: NO_NODE }));
      const toN2: Message[] = [];
      const fromN2: Message[] = [];
      const record = (m: Message): boolean => {
        if (m.type === MessageType.MsgApp && m.to === 'n2') toN2.push(m);
        if (m.type === MessageType.MsgAppResp && m.from === 'n2') fromN2.push(m);
        return false;
      };
      c.node('n1').core.campaign();
      c.stabilize(record);
      // §5.3: the leader "includes that index in future AppendEntries RPCs (including
      // heartbeats) so that the other servers eventually find out."
      c.tick('n1');
      c.stabilize(record);
      const lead = c.node('n1');
      assert.equal(lead.core.role, Role.Leader, f.name);
      assert.equal(lead.core.term, 8, f.name);
      const want = [...leaderLog, 8];
      assert.deepEqual(storedTerms(lead.storage), want, `(${f.name}): the leader never rewrites its own log`);
      assert.deepEqual(storedTerms(c.node('n2').storage), want, `(${f.name}): follower log`);
      assert.equal(c.node('n2').core.log.committed, want.length, `(${f.name}): follower commit`);

      // Nothing is lost or reordered here, so the k-th reply answers the k-th AppendEntries.
      assert.equal(toN2.length, fromN2.length, f.name);
      const rejections = fromN2.filter((m) => m.reject).length;
      assert.equal(rejections > 0, f.rejects, `(${f.name}): ${rejections} rejections`);
      // After each rejection the leader retries from an earlier point in its log.
      fromN2.forEach((resp, k) => {
        if (!resp.reject) return;
        const [sent, retry] = [toN2[k], toN2[k + 1]];
        assert.ok(sent && retry, `(${f.name}): no retry after a rejection`);
        assert.ok(
          retry.index < sent.index,
          `(${f.name}): retry at ${retry.index} after a rejection at ${sent.index}`,
        );
      });
      const lastResp = fromN2[fromN2.length - 1];
      assert.equal(lastResp?.reject, false, f.name);
      assert.equal(lastResp?.index, want.length, f.name);
    }
  });
});

// ---------------------------------------------------------------- §5.4.2 committing entries from previous terms

describe('§5.4.2: committing entries from previous terms', () => {
  // §5.4.2: "Raft never commits log entries from previous terms by counting replicas. Only
  // log entries from the leader's current term are committed by counting replicas; once an
  // entry from the current term has been committed in this way, then all prior entries are
  // committed indirectly because of the Log Matching Property." (Figure 8)
  test('Figure 8: "Raft never commits log entries from previous terms by counting replicas"', () => {
    // n1 holds an entry of term 2 at index 2 and is elected for term 3 (like S1 in Figure 8 (c)).
    const storage = logStorage(V5, [1, 2], { term: 2, vote: NO_NODE });
    const h = newCore('n1', V5, { storage });
    campaignWith(h, ['n2', 'n3']);
    assert.equal(h.core.role, Role.Leader);
    assert.equal(h.core.term, 3);
    assert.equal(h.core.log.lastIndex(), 3, 'its no-op of term 3');
    assert.equal(h.core.log.committed, 1);

    // The term-2 entry is now on a majority (n1, n2, n3): still not committed.
    ack(h, 'n2', 2);
    ack(h, 'n3', 2);
    assert.equal(h.core.log.committed, 1, 'an entry of term 2 on 3 of 5 servers');
    // One more copy of the term-3 entry is not a majority yet either.
    ack(h, 'n2', 3);
    assert.equal(h.core.log.committed, 1);
    // A majority holds the term-3 entry: it commits, and index 2 with it.
    ack(h, 'n3', 3);
    assert.equal(h.core.log.committed, 3);
    assert.equal(h.core.log.applied, 3);
  });
});

// ---------------------------------------------------------------- durability and the quorum

describe('what counts towards a quorum: only what is on stable storage', () => {
  // Figure 2: "matchIndex[] for each server, index of highest log entry known to be
  // replicated on server"; an entry in the leader's memory is not yet replicated on the
  // leader. Thesis §10.2.1 (paraphrased): the leader may write to its own disk in parallel
  // with sending to its followers; its own copy counts once the write completes.
  test("the leader's own entry counts towards the quorum only once it has been persisted", () => {
    const h = newLeader(V3);
    ack(h, 'n2', 2);
    ack(h, 'n3', 2);
    const idx = h.core.propose(new TextEncoder().encode('x'));
    const rd = h.core.ready();
    assert.ok(rd.append);
    assert.deepEqual(
      rd.append.entries.map((e) => e.index),
      [idx],
    );
    // Replication does not wait for the leader's disk.
    assert.deepEqual(
      ofType(rd.messages, MessageType.MsgApp)
        .map((m) => m.to)
        .sort(),
      ['n2', 'n3'],
    );

    h.core.step(message({ type: MessageType.MsgAppResp, from: 'n2', to: 'n1', term: 1, index: idx }));
    assert.equal(
      h.core.log.committed,
      idx - 1,
      'n2 alone is not a majority while the leader has not written',
    );

    h.storage.write(rd.append);
    h.core.persisted(rd.append);
    assert.equal(h.core.log.committed, idx, "the leader's durable copy completes the majority");
  });

  // Thesis §10.2.1 (paraphrased): the leader may commit an entry before it is on its own
  // disk if a majority of the followers have it; that is still safe.
  test('a majority of followers commits an entry the leader has not written yet', () => {
    const h = newLeader(V3);
    ack(h, 'n2', 2);
    ack(h, 'n3', 2);
    const idx = h.core.propose(new TextEncoder().encode('x'));
    const rd = h.core.ready();
    assert.ok(rd.append, "the leader's write is still pending");
    h.core.step(message({ type: MessageType.MsgAppResp, from: 'n2', to: 'n1', term: 1, index: idx }));
    h.core.step(message({ type: MessageType.MsgAppResp, from: 'n3', to: 'n1', term: 1, index: idx }));
    assert.equal(h.core.log.committed, idx);
  });

  // Figure 2, candidates: "Vote for self", with persistent state "(Updated on stable storage
  // before responding to RPCs) ... votedFor": the candidate's own vote is a vote like any
  // other and counts once it is durable.
  test("a candidate's own vote counts only after it is persisted", () => {
    // One voter: the election is won by the candidate's own vote alone.
    const solo = newCore('n1', ['n1']);
    solo.core.campaign();
    const rd = solo.core.ready();
    assert.equal(solo.core.role, Role.Candidate);
    assert.ok(rd.append);
    assert.deepEqual(rd.append.hardState, { term: 1, vote: 'n1' });
    const self = rd.append.messages.filter((m) => m.to === 'n1');
    assert.deepEqual(
      self.map((m) => [m.type, m.reject]),
      [[MessageType.MsgVoteResp, false]],
    );
    assert.equal(solo.core.role, Role.Candidate, 'not a leader before the vote is on disk');
    solo.storage.write(rd.append);
    solo.core.persisted(rd.append);
    for (const m of self) solo.core.step(m);
    assert.equal(solo.core.role, Role.Leader);

    // Three voters: one peer's vote is not a majority until the candidate's own is durable.
    const h = newCore('n1', V3);
    h.core.campaign();
    const rd3 = h.core.ready();
    h.core.step(message({ type: MessageType.MsgVoteResp, from: 'n2', to: 'n1', term: 1 }));
    assert.equal(h.core.role, Role.Candidate);
    assert.ok(rd3.append);
    h.storage.write(rd3.append);
    h.core.persisted(rd3.append);
    for (const m of rd3.append.messages) if (m.to === 'n1') h.core.step(m);
    assert.equal(h.core.role, Role.Leader);
  });
});

// ---------------------------------------------------------------- reads, liveness

describe('§8 and thesis §6: read-only queries and leader liveness', () => {
  // §8: "a leader must check whether it has been deposed before processing a read-only
  // request ... Raft handles this by having the leader exchange heartbeat messages with a
  // majority of the cluster before responding to read-only requests." Thesis §6.4: "It
  // issues a new round of heartbeats and waits for their acknowledgments from a majority of
  // the cluster."
  test('ReadIndex: "issues a new round of heartbeats and waits for their acknowledgments from a majority of the cluster"', () => {
    const c = new SyncCluster([...V3]);
    assert.equal(c.elect('n1'), 'n1');
    const n1 = c.node('n1');
    const committed = n1.core.log.committed;
    const heartbeatsTo = (msgs: readonly Message[], id: NodeId): Message[] =>
      msgs.filter((m) => m.type === MessageType.MsgHeartbeat && m.to === id);
    /** Delivers `hbs` to their follower and its answer back to n1. */
    const roundTrip = (hbs: Message[]): void => {
      for (const m of hbs) c.node(m.to).core.step(m);
      for (const m of hbs) c.processReady(m.to);
      c.deliver('n1');
      c.processReady('n1');
    };

    // A heartbeat round that left before the read does not vouch for it.
    c.tick('n1');
    c.processReady('n1');
    const oldRound = c.queue.splice(0);
    assert.equal(heartbeatsTo(oldRound, 'n2').length, 1);

    n1.core.readIndex(42);
    c.processReady('n1');
    const newRound = c.queue.splice(0);
    assert.equal(heartbeatsTo(newRound, 'n2').length, 1, 'the read starts a heartbeat round');
    assert.ok(
      (heartbeatsTo(newRound, 'n2')[0]?.context ?? 0) > (heartbeatsTo(oldRound, 'n2')[0]?.context ?? 0),
    );
    assert.deepEqual(n1.readStates, [], 'no answer before any acknowledgement');

    roundTrip(heartbeatsTo(oldRound, 'n2'));
    assert.deepEqual(n1.readStates, [], 'an acknowledgement of an older round');

    roundTrip(heartbeatsTo(newRound, 'n2'));
    assert.deepEqual(n1.readStates, [{ index: committed, context: 42 }], 'n1 and n2 are a majority of three');
  });

  // Thesis §6.4: "If the leader has not yet marked an entry from its current term
  // committed, it waits until it has done so."
  test('ReadIndex: a new leader answers no read before it has committed an entry of its term', () => {
    // Elected for term 2: at term 1 the bootstrap snapshot (term 1) is already an entry of
    // the leader's term, so there would be nothing to wait for.
    const h = newCore('n1', V3);
    campaignWith(h, []);
    campaignWith(h, ['n2']);
    assert.equal(h.core.role, Role.Leader);
    assert.equal(h.core.term, 2);
    h.core.readIndex(7);
    assert.equal(
      ofType(flush(h), MessageType.MsgHeartbeat).length,
      0,
      'no round is started for the read yet',
    );
    // Even a heartbeat round acknowledged by a majority does not answer it.
    h.core.tick();
    const round = ofType(flush(h), MessageType.MsgHeartbeat).find((m) => m.to === 'n2');
    assert.ok(round);
    h.core.step(
      message({ type: MessageType.MsgHeartbeatResp, from: 'n2', to: 'n1', term: 2, context: round.context }),
    );
    flush(h);
    assert.deepEqual(h.readStates, []);

    const after = ack(h, 'n2', 2); // the no-op commits: the read may proceed, with a round of its own
    const hb = ofType(after, MessageType.MsgHeartbeat).find((m) => m.to === 'n3');
    assert.ok(hb, 'a heartbeat round starts once the no-op is committed');
    assert.deepEqual(h.readStates, []);
    h.core.step(
      message({ type: MessageType.MsgHeartbeatResp, from: 'n3', to: 'n1', term: 2, context: hb.context }),
    );
    flush(h);
    assert.deepEqual(h.readStates, [{ index: 2, context: 7 }]);
  });

  // Thesis §6.2: "a leader steps down if an election timeout elapses without a successful
  // round of heartbeats to a majority of its cluster".
  test('CheckQuorum: a leader that hears from no majority for an election timeout steps down', () => {
    for (const answered of [false, true]) {
      const h = newLeader(V3);
      for (let i = 0; i < 2 * E; i++) {
        h.core.tick();
        for (const m of ofType(flush(h), MessageType.MsgHeartbeat)) {
          if (answered && m.to === 'n2') {
            h.core.step(
              message({
                type: MessageType.MsgHeartbeatResp,
                from: 'n2',
                to: 'n1',
                term: 1,
                context: m.context,
              }),
            );
          }
        }
      }
      assert.equal(h.core.role, answered ? Role.Leader : Role.Follower, `n2 answers: ${answered}`);
      assert.equal(h.core.term, 1);
    }
  });
});

// ---------------------------------------------------------------- PreVote

describe('thesis §9.6: PreVote', () => {
  // Thesis §9.6: "In the Pre-Vote algorithm, a candidate only increments its term if it first
  // learns from a majority of the cluster that they would be willing to grant the candidate
  // their votes".
  test('"a candidate only increments its term if it first learns from a majority of the cluster that they would be willing to grant the candidate their votes"', () => {
    const h = newCore('n1', V3, { preVote: true });
    h.core.campaign();
    assert.equal(h.core.role, Role.PreCandidate);
    assert.equal(h.core.term, 0);
    assert.equal(h.core.vote, NO_NODE);
    const rd = h.core.ready();
    assert.equal(rd.append?.hardState ?? null, null, 'nothing to persist: neither term nor vote changed');
    const reqs = ofType(rd.messages, MessageType.MsgPreVote);
    assert.deepEqual(reqs.map((m) => m.to).sort(), ['n2', 'n3']);
    for (const m of reqs) assert.equal(m.term, 1, 'asks about the term it would campaign in');

    // A rejection keeps the term too.
    h.core.step(message({ type: MessageType.MsgPreVoteResp, from: 'n2', to: 'n1', term: 0, reject: true }));
    assert.equal(h.core.term, 0);
    // One grant (with its own) is a majority: now it campaigns for real, at term 1.
    h.core.step(message({ type: MessageType.MsgPreVoteResp, from: 'n3', to: 'n1', term: 1 }));
    assert.equal(h.core.role, Role.Candidate);
    assert.equal(h.core.term, 1);
    assert.equal(ofType(h.core.ready().messages, MessageType.MsgVote).length, 2);
  });

  test("PreVote: granting a pre-vote changes neither the voter's term nor its vote", () => {
    const h = newCore('n2', V3);
    h.core.step(voteMsg('n1', 'n2', 1, [1, 1], MessageType.MsgPreVote));
    const rd = h.core.ready();
    const resp = ofType([...rd.messages, ...(rd.append?.messages ?? [])], MessageType.MsgPreVoteResp);
    assert.equal(resp.length, 1);
    assert.equal(resp[0]?.reject, false);
    assert.equal(h.core.term, 0);
    assert.equal(h.core.vote, NO_NODE);
    assert.equal(rd.append?.hardState ?? null, null);
  });

  // Thesis §9.6 motivates PreVote with a server that rejoins after a partition: without it,
  // its term has grown while it was cut off and it disrupts the cluster when it returns.
  test('PreVote: a partitioned node that keeps timing out does not raise its term', () => {
    const isolated = (m: Message): boolean => m.from === 'n3' || m.to === 'n3';
    for (const preVote of [true, false]) {
      const c = new SyncCluster([...V3], { preVote });
      assert.equal(c.elect('n1'), 'n1');
      for (let i = 0; i < 10 * E; i++) {
        c.tick('n3');
        c.stabilize(isolated);
      }
      const n3 = c.node('n3').core;
      if (preVote) {
        assert.equal(n3.term, 1, 'with PreVote');
        assert.equal(n3.role, Role.PreCandidate);
        // Back in touch, it follows the leader and nobody's term moved.
        c.tick('n1');
        c.stabilize();
        assert.equal(n3.role, Role.Follower);
        assert.equal(n3.lead, 'n1');
        assert.equal(c.node('n1').core.role, Role.Leader);
        for (const id of V3) assert.equal(c.node(id).core.term, 1, id);
      } else {
        assert.ok(n3.term > 2, `without PreVote the term grows while cut off (term ${n3.term})`);
      }
    }
  });
});

// ---------------------------------------------------------------- writes in flight

describe('durability acknowledgements with several writes in flight', () => {
  // Figure 2: "Persistent state on all servers: (Updated on stable storage before responding
  // to RPCs) ... log[]". The core may have several append work items in flight; when one
  // completes, the entries it wrote may already have been replaced by a later item still
  // in flight. etcd-io/raft walks through this ABA case in newStorageAppendRespMsg:
  //   1. n1 leads term 2 and sends entries 2..3 (term 2) to n2 only; n2 starts writing them (w1);
  //   2. n3 leads term 3 and sends its entry 2 (term 3); n2 starts writing it (w2);
  //   3. n1 leads term 4 and sends its entries 2..3 (term 2) again; n2 starts writing them (w3);
  //   4. w1 completes: its ack (3, term 2) matches the log, which holds those very entries again;
  //   5. w2 completes: the disk now holds entry 2 of term 3, until w3 completes.
  // After step 5 the core must still see the log it accepted last (w3's), not the disk's.
  test('an acknowledgement does not mark entries stable that a later write still in flight overwrites', () => {
    // maxApplyBytes: 1 hands out one entry per apply work item, so entry 3 is still to be
    // applied after step 5.
    const h = newCore('n2', V5, { maxApplyBytes: 1 });
    h.core.step(appendMsg('n1', 'n2', 2, [1, 1], [entry(2, 2), entry(3, 2)]));
    const w1 = h.core.ready().append;
    h.core.step(appendMsg('n3', 'n2', 3, [1, 1], [entry(2, 3)]));
    const w2 = h.core.ready().append;
    h.core.step(appendMsg('n1', 'n2', 4, [1, 1], [entry(2, 2), entry(3, 2)], 3));
    const rd3 = h.core.ready();
    const w3 = rd3.append;
    assert.ok(w1 && w2 && w3);
    assert.deepEqual(logTerms(h.core), [1, 2, 2]);
    assert.equal(h.core.log.committed, 3);
    assert.deepEqual(
      rd3.apply?.entries.map((e) => e.index),
      [2],
    );
    h.core.applied(2);

    for (const w of [w1, w2]) {
      h.storage.write(w);
      h.core.persisted(w);
    }
    assert.deepEqual(logTerms(h.core), [1, 2, 2], 'the log the core reports is the one it accepted last');
    assert.ok(h.core.log.committed <= h.core.log.lastIndex(), 'Invariant: committed <= lastIndex');
    const rd = h.core.ready(); // the rest of the apply work: entry 3
    assert.deepEqual(
      rd.apply?.entries.map((e) => [e.index, e.term]),
      [[3, 2]],
    );

    h.storage.write(w3);
    h.core.persisted(w3);
    assert.deepEqual(logTerms(h.core), [1, 2, 2]);
    assert.deepEqual(storedTerms(h.storage), [1, 2, 2]);
  });
});
