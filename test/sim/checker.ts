import type { RaftCore } from '../../src/raft/raft-core.js';
import { type Entry, EntryType, type Index, type NodeId, type Term } from '../../src/raft/types.js';

/**
 * The safety properties of Raft (paper Figure 3), checked as the simulation runs. Every
 * check compares one node's view with a global record built from what every node has
 * done so far; the first disagreement is a violation.
 */
export class Violation extends Error {}

/** What an applied entry was, as the state machine saw it. */
export interface AppliedEntry {
  readonly term: Term;
  /** The client value for a Normal entry; -1 for a no-op, -2 for a configuration change. */
  readonly value: number;
}

export function entryValue(e: Entry): number {
  if (e.type === EntryType.Noop) return -1;
  if (e.type === EntryType.ConfChange) return -2;
  return decodeValue(e.data);
}

export function encodeValue(v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v);
  return b;
}

export function decodeValue(d: Uint8Array): number {
  if (d.byteLength !== 4) return -3;
  return new DataView(d.buffer, d.byteOffset, 4).getUint32(0);
}

export class Checker {
  /** Election Safety: term -> the one leader of that term. */
  private readonly leaders = new Map<Term, NodeId>();
  /** Log Matching: (index, term) -> value and the term of the entry before it. */
  private readonly logEntries = new Map<number, { value: number; prevTerm: Term }>();
  /** The committed log as first observed on any node: index -> term. */
  readonly committedTerms: Term[] = [0, 1];
  /** State Machine Safety: what was applied at each index, as first observed. */
  readonly applied: AppliedEntry[] = [
    { term: 0, value: -1 },
    // Index 1 is the bootstrap snapshot: the initial configuration, no client values.
    { term: 1, value: -2 },
  ];
  /** Number of client values applied in entries 1..i, for snapshot checks. */
  private readonly valueCount: number[] = [0, 0];
  /** Client values in applied order. */
  readonly values: number[] = [];

  private static key(index: Index, term: Term): number {
    return index * 1_048_576 + term;
  }

  onLeader(id: NodeId, term: Term, core: RaftCore): void {
    const prev = this.leaders.get(term);
    if (prev !== undefined && prev !== id) {
      throw new Violation(`election safety: ${prev} and ${id} are both leaders of term ${term}`);
    }
    this.leaders.set(term, id);
    // Leader Completeness: the new leader holds every committed entry.
    const first = core.log.firstIndex();
    for (let i = Math.max(first, 1); i < this.committedTerms.length; i++) {
      const t = core.log.term(i);
      if (t !== this.committedTerms[i]) {
        throw new Violation(
          `leader completeness: ${id} leads term ${term} without committed entry ${i} (term ${this.committedTerms[i]}, has ${t})`,
        );
      }
    }
    if (core.log.lastIndex() < this.committedTerms.length - 1) {
      throw new Violation(
        `leader completeness: ${id} leads term ${term} but its log ends before the commit index`,
      );
    }
  }

  /** Entries a node is about to write, in log order; `prevTerm` is the term before the first. */
  onAppend(id: NodeId, entries: readonly Entry[], prevTerm: Term | null): void {
    let pt = prevTerm;
    for (const e of entries) {
      const k = Checker.key(e.index, e.term);
      const v = entryValue(e);
      const seen = this.logEntries.get(k);
      if (seen === undefined) {
        this.logEntries.set(k, { value: v, prevTerm: pt ?? -1 });
      } else {
        if (seen.value !== v) {
          throw new Violation(
            `log matching: ${id} has entry ${e.term}/${e.index} = ${v}, elsewhere ${seen.value}`,
          );
        }
        if (pt !== null && seen.prevTerm >= 0 && seen.prevTerm !== pt) {
          throw new Violation(
            `log matching: ${id} has ${e.term}/${e.index} after term ${pt}, elsewhere after term ${seen.prevTerm}`,
          );
        }
        if (seen.prevTerm < 0 && pt !== null) seen.prevTerm = pt;
      }
      pt = e.term;
    }
  }

  /** A node's commit index moved from `from` to `to`: those entries must never change. */
  onCommit(id: NodeId, core: RaftCore, from: Index, to: Index): void {
    for (let i = from + 1; i <= to; i++) {
      const t = core.log.term(i);
      if (t < 0) continue; // compacted under a snapshot: checked when the snapshot loads
      const known = this.committedTerms[i];
      if (known === undefined) {
        if (i !== this.committedTerms.length) {
          throw new Violation(
            `commit: ${id} committed ${i} before ${this.committedTerms.length} was known committed`,
          );
        }
        this.committedTerms.push(t);
      } else if (known !== t) {
        throw new Violation(
          `committed entry lost: ${id} has term ${t} at committed index ${i}, committed term ${known}`,
        );
      }
    }
  }

  /** A node applied `e` right after `prevIndex`. */
  onApply(id: NodeId, prevIndex: Index, e: Entry): void {
    if (e.index !== prevIndex + 1) throw new Violation(`apply: ${id} applied ${e.index} after ${prevIndex}`);
    const v = entryValue(e);
    const seen = this.applied[e.index];
    if (seen === undefined) {
      if (e.index !== this.applied.length)
        throw new Violation(`apply: ${id} applied ${e.index} out of global order`);
      this.applied.push({ term: e.term, value: v });
      const before = this.valueCount[e.index - 1] as number;
      if (v >= 0) this.values.push(v);
      this.valueCount.push(before + (v >= 0 ? 1 : 0));
    } else if (seen.term !== e.term || seen.value !== v) {
      throw new Violation(
        `state machine safety: ${id} applied ${e.term}/${e.index}=${v}, another node applied ${seen.term}/${e.index}=${seen.value}`,
      );
    }
  }

  /** The client values applied in entries 1..index, in order. */
  valuesThrough(index: Index): readonly number[] {
    const n = this.valueCount[index];
    if (n === undefined) throw new Violation(`no entry was applied at ${index}`);
    return this.values.slice(0, n);
  }

  /** A node loaded a snapshot at `index` whose state is `values`. */
  onSnapshotLoad(id: NodeId, index: Index, values: readonly number[]): void {
    const n = this.valueCount[index];
    if (n === undefined)
      throw new Violation(`snapshot: ${id} loaded a snapshot at ${index} that nobody applied`);
    if (values.length !== n)
      throw new Violation(`snapshot: ${id} snapshot at ${index} has ${values.length} values, want ${n}`);
    for (let i = 0; i < n; i++) {
      if (values[i] !== this.values[i])
        throw new Violation(`snapshot: ${id} snapshot at ${index} differs at value ${i}`);
    }
  }
}
