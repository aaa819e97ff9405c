/**
 * The clients of a chaos run: several concurrent loops in the harness process doing put,
 * get and cas on a small key space through `RaftClient`, each call recorded as an
 * `Operation` for the linearizability checker.
 *
 * **Keys.** `keys` keys at a time, renamed every `keyRotationMs` (`g3-k1` is key 1 of
 * generation 3). The checker's search is exponential in the operations that overlap on one
 * key, and an operation with an unknown outcome overlaps everything after it, so a key
 * lives a few seconds: the contention on each key stays high, the search stays small.
 *
 * **Values.** Every put and cas writes a value no other call writes (`<process>.<seq>`),
 * so a read names the write it saw, and `prev` (what a put replaced) chains the writes.
 *
 * **Leaders.** Each loop has a `RaftClient` per node with `maxRedirects: 0` and follows
 * ERR_RAFT_NOT_LEADER itself, by node id to the node's real address: the address a node
 * names in its hint is the proxy it reaches the leader through, which is for peers only.
 * Half of a loop's reads go to its home node (`slot % nodes`) instead of the one it follows.
 *
 * **Outcomes** (`classifyWriteError`). A call ends as
 * - acknowledged (`ok: true`);
 * - failed, definitely not applied (`ok: false`, `end` set): it never left (no connection
 *   to any node before the deadline), or every node it reached refused it before
 *   proposing or told it the entry was replaced (ERR_RAFT_NOT_LEADER, ERR_RAFT_BUSY,
 *   ERR_RAFT_PROPOSAL_DROPPED). Such a call is tried again on another node until its
 *   deadline, which is safe: none of its attempts can take effect;
 * - unknown (`ok: false`, `end: null`): anything else once it was sent: ERR_RAFT_TIMEOUT,
 *   a lost connection (ERR_RAFT_UNAVAILABLE), ERR_RAFT_STORAGE or ERR_RAFT_SHUTDOWN (both
 *   also fail entries that were already proposed), ...: it may take effect at any time
 *   after its start, or never. The loop then continues as a new process id (as Jepsen
 *   does), since its old one may still have a call in flight.
 * A read that gets no answer changes nothing and constrains nothing: it is recorded as
 * failed, whatever the error. Reads are tried again, like definite failures, until the
 * deadline.
 */

import { kvCommand } from '../../examples/kv.js';
import { RaftClient, type Value } from '../../src/client/raft-client.js';
import type { ReadConsistency } from '../../src/main/coordinator.js';
import { NotLeaderError } from '../../src/main/errors.js';
import { Rng } from '../../src/raft/rng.js';
import { sleep } from './cluster.js';
import type { Operation } from './linearizability.js';

/** What the harness knows about an operation beyond the checker's fields. */
export interface OpMeta {
  /** The node that answered (or that the last attempt went to). */
  node: string | null;
  /** Reads: how they were served. */
  consistency?: ReadConsistency;
  /** Acknowledged puts: the value they replaced (null: the key was absent). */
  prev?: string | null;
  /** The error of the last attempt, when it did not succeed. */
  error?: string;
  attempts: number;
}

/** One recorded call. */
export interface Recorded {
  readonly op: Operation;
  readonly meta: OpMeta;
}

/** How the clients run. */
export interface WorkloadOptions {
  readonly clients: number;
  readonly keys: number;
  readonly keyRotationMs: number;
  /** Node id → real address. */
  readonly endpoints: ReadonlyMap<string, string>;
  readonly seed: number;
  /** One attempt's timeout (`RaftClient` `requestTimeoutMs`). */
  readonly requestTimeoutMs: number;
  /** A call is given up (definite failure) or declared unknown by then. */
  readonly opDeadlineMs: number;
  /** Pause between one call's end and the next call, at most (uniform). */
  readonly thinkMs: number;
  /**
   * A self-test of the harness: serve this share (0..1) of the gets with consistency
   * `stale` while recording them as linearizable reads. The checks must then fail.
   */
  readonly plantStaleReads?: number;
}

/** What an error from a write means (see the module comment). */
export function classifyWriteError(err: unknown): 'not-applied' | 'unknown' {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ERR_RAFT_NOT_LEADER' || code === 'ERR_RAFT_BUSY' || code === 'ERR_RAFT_PROPOSAL_DROPPED'
    ? 'not-applied'
    : 'unknown';
}

type Attempt =
  | { kind: 'ok'; value: Value; node: string; attempts: number }
  | { kind: 'failed' | 'unknown'; error: string; node: string; attempts: number };

/** The client loops and their history. */
export class Workload {
  readonly history: Recorded[] = [];
  /** Every key any call used. */
  readonly keysUsed = new Set<string>();
  /** performance.now() of the latest acknowledged write. */
  lastWriteAckMs = 0;
  private stopping = false;
  private loops: Promise<void>[] = [];
  private nextProcess: number;
  private readonly t0 = performance.now();
  private readonly ids: string[];
  private readonly clients: RaftClient[] = [];

  constructor(private readonly o: WorkloadOptions) {
    this.nextProcess = o.clients;
    this.ids = [...o.endpoints.keys()];
  }

  start(): void {
    for (let i = 0; i < this.o.clients; i++) this.loops.push(this.loop(i));
  }

  /** Stops issuing calls and waits for the ones in flight (each ends by its deadline). */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    await Promise.all(this.clients.map((c) => c.close()));
  }

  /** The key names in use now. */
  private keyOf(rng: Rng): string {
    const generation = Math.floor((performance.now() - this.t0) / this.o.keyRotationMs);
    return `g${generation}-k${rng.int(this.o.keys)}`;
  }

  private async loop(slot: number): Promise<void> {
    const rng = new Rng((this.o.seed * 1_000_003 + slot * 7919 + 17) >>> 0);
    const perNode = new Map<string, RaftClient>();
    for (const [id, address] of this.o.endpoints) {
      const c = new RaftClient({
        endpoints: [address],
        maxRedirects: 0,
        requestTimeoutMs: this.o.requestTimeoutMs,
        connectTimeoutMs: 300,
      });
      perNode.set(id, c);
      this.clients.push(c);
    }
    let proc = slot;
    let seq = 0;
    const home = this.ids[slot % this.ids.length] as string;
    let preferred = home;
    // The last value this loop saw per key: what its cas calls usually expect.
    const seen = new Map<string, string | null>();
    while (!this.stopping) {
      const key = this.keyOf(rng);
      this.keysUsed.add(key);
      const dice = rng.int(100);
      const start = now();
      let op: Operation;
      let meta: OpMeta;
      if (dice < 40) {
        const value = `${proc}.${seq++}`;
        const r = await this.attempt(perNode, preferred, rng, false, (c) =>
          c.apply(kvCommand({ op: 'put', key, value })),
        );
        op = {
          client: proc,
          op: 'put',
          key,
          value,
          expected: null,
          start,
          end: null,
          ok: false,
          result: null,
        };
        meta = { node: r.node, attempts: r.attempts };
        if (r.kind === 'ok') {
          const v = r.value as { ok?: boolean; prev?: string | null; error?: string };
          if (v?.ok !== true) throw new Error(`put answered ${JSON.stringify(v)}`);
          op.ok = true;
          op.end = now();
          meta.prev = v.prev ?? null;
          seen.set(key, value);
          this.lastWriteAckMs = performance.now();
        } else if (r.kind === 'failed') {
          op.end = now();
          meta.error = r.error;
        } else meta.error = r.error;
      } else if (dice < 80) {
        const planted = this.o.plantStaleReads !== undefined && rng.chance(this.o.plantStaleReads);
        const consistency: ReadConsistency = planted ? 'stale' : dice < 60 ? 'linearizable' : 'lease';
        // Half the reads go to this loop's home node, whoever leads: followers serve reads
        // too (through the leader's read index), and an old leader that was paused or cut
        // off keeps being asked after a new one has taken writes, as Jepsen's clients
        // bound to one node ask theirs.
        const target = rng.chance(0.5) ? home : preferred;
        const r = await this.attempt(perNode, target, rng, true, (c) =>
          c.read({ op: 'get', key }, { consistency }),
        );
        op = {
          client: proc,
          op: 'get',
          key,
          value: null,
          expected: null,
          start,
          end: null,
          ok: false,
          result: null,
        };
        meta = { node: r.node, consistency, attempts: r.attempts };
        op.end = now();
        if (r.kind === 'ok') {
          if (r.value !== null && typeof r.value !== 'string')
            throw new Error(`get answered ${String(r.value)}`);
          op.ok = true;
          op.result = r.value;
          seen.set(key, r.value);
        } else meta.error = r.error;
      } else {
        const known = seen.get(key);
        const expected =
          rng.chance(0.85) && known !== undefined
            ? known
            : rng.chance(0.5)
              ? null
              : `${proc}.${rng.int(seq + 1)}`;
        const value = `${proc}.${seq++}`;
        const r = await this.attempt(perNode, preferred, rng, false, (c) =>
          c.apply(kvCommand({ op: 'cas', key, expected, value })),
        );
        op = { client: proc, op: 'cas', key, value, expected, start, end: null, ok: false, result: null };
        meta = { node: r.node, attempts: r.attempts };
        if (r.kind === 'ok') {
          const v = r.value as { ok?: boolean; current?: string | null; error?: string };
          if (typeof v?.ok !== 'boolean') throw new Error(`cas answered ${JSON.stringify(v)}`);
          op.ok = true;
          op.end = now();
          op.result = v.ok ? 'swapped' : 'mismatch';
          seen.set(key, v.current ?? null);
          if (v.ok) this.lastWriteAckMs = performance.now();
        } else if (r.kind === 'failed') {
          op.end = now();
          meta.error = r.error;
        } else meta.error = r.error;
      }
      this.history.push({ op, meta });
      if (isUnknownWrite(op)) {
        // A call of this process may still take effect: carry on as a new process.
        proc = this.nextProcess++;
        seq = 0;
      }
      if (meta.node !== null && op.ok) preferred = meta.node;
      if (this.o.thinkMs > 0) await sleep(rng.int(this.o.thinkMs + 1));
    }
  }

  /**
   * Sends one call, following the leader and retrying where that is safe (see the module
   * comment), until the call's deadline.
   */
  private async attempt(
    perNode: ReadonlyMap<string, RaftClient>,
    first: string,
    rng: Rng,
    read: boolean,
    send: (c: RaftClient) => Promise<Value>,
  ): Promise<Attempt> {
    const deadline = performance.now() + this.o.opDeadlineMs;
    let node = first;
    let attempts = 0;
    let lastError = 'no attempt';
    for (;;) {
      attempts++;
      const client = perNode.get(node) as RaftClient;
      let connected = false;
      try {
        await client.connect();
        connected = true;
        const value = await send(client);
        return { kind: 'ok', value, node, attempts };
      } catch (err) {
        const e = err as { code?: string; message?: string };
        lastError = `${node}: ${e.code ?? 'error'}: ${e.message ?? String(err)}`;
        // Nothing was sent when the connection could not be made.
        if (connected && !read && classifyWriteError(err) === 'unknown') {
          return { kind: 'unknown', error: lastError, node, attempts };
        }
        if (performance.now() >= deadline || this.stopping) {
          return { kind: 'failed', error: lastError, node, attempts };
        }
        const hint = err instanceof NotLeaderError ? err.leaderId : null;
        if (hint !== null && hint !== node && perNode.has(hint)) node = hint;
        else {
          node = this.ids[(this.ids.indexOf(node) + 1) % this.ids.length] as string;
          await sleep(20 + rng.int(60));
        }
      }
    }
  }
}

/** Nanoseconds on the monotonic clock, as the history records them. */
function now(): bigint {
  return process.hrtime.bigint();
}

function isUnknownWrite(op: Operation): boolean {
  return op.op !== 'get' && op.end === null;
}
