/**
 * The end-of-run checks that do not need the linearizability search: every node applied
 * the same state, and no acknowledged write was lost.
 */

import type { Recorded } from './workload.js';

/** What one node holds at the end: the value of every key (null: absent) and its key count. */
export interface NodeState {
  readonly node: string;
  readonly values: ReadonlyMap<string, string | null>;
  readonly size: number;
}

/** The differences between the nodes' states, in words (empty: identical). */
export function compareStates(states: readonly NodeState[]): string[] {
  const diffs: string[] = [];
  const first = states[0];
  if (first === undefined) return ['no node state was read'];
  for (const s of states.slice(1)) {
    if (s.size !== first.size)
      diffs.push(`${s.node} holds ${s.size} keys, ${first.node} holds ${first.size}`);
    for (const [key, v] of first.values) {
      const w = s.values.get(key);
      if (w !== v) diffs.push(`key ${key}: ${first.node} has ${show(v)}, ${s.node} has ${show(w ?? null)}`);
    }
  }
  return diffs;
}

/** The outcome of `lostWrites`. */
export interface LostReport {
  /** Acknowledged writes whose effect is gone (see `lostWrites`). */
  readonly lost: number;
  /** Per key with a loss: the values that vanished. */
  readonly details: string[];
}

/**
 * Acknowledged writes (puts, and cas that swapped) whose effect is not visible at the end.
 *
 * Values are unique, and an acknowledged put reports the value it replaced (`prev`), an
 * acknowledged swap the value it expected: each is an edge "v was replaced" of the key's
 * chain of values. An acknowledged write's value v is accounted for when it is the final
 * value, or some acknowledged write replaced it. Otherwise only a write with an unknown
 * outcome can have replaced it (its `prev` never reached us), and each such write replaced
 * one value at most. So on each key, `lost` is the number of unaccounted values beyond the
 * number of unknown-outcome writes on that key; and if the key ends absent although a
 * write to it was acknowledged, at least one (no write deletes).
 *
 * This is a floor, not the whole truth: a lost write can hide behind an unknown one. The
 * linearizability check, whose history includes the final reads, is the complete test.
 */
export function lostWrites(
  history: readonly Recorded[],
  finalValues: ReadonlyMap<string, string | null>,
): LostReport {
  interface KeyInfo {
    acked: string[];
    replaced: Set<string | null>;
    unknown: number;
  }
  const byKey = new Map<string, KeyInfo>();
  const info = (key: string): KeyInfo => {
    let i = byKey.get(key);
    if (i === undefined) {
      i = { acked: [], replaced: new Set(), unknown: 0 };
      byKey.set(key, i);
    }
    return i;
  };
  for (const { op, meta } of history) {
    if (op.op === 'get') continue;
    const k = info(op.key);
    if (op.end === null) {
      k.unknown++;
      continue;
    }
    if (!op.ok) continue;
    if (op.op === 'put') {
      k.acked.push(op.value as string);
      k.replaced.add(meta.prev ?? null);
    } else if (op.result === 'swapped') {
      k.acked.push(op.value as string);
      k.replaced.add(op.expected);
    }
  }
  let lost = 0;
  const details: string[] = [];
  for (const [key, k] of byKey) {
    if (k.acked.length === 0) continue;
    const final = finalValues.has(key) ? (finalValues.get(key) as string | null) : null;
    const missing = k.acked.filter((v) => v !== final && !k.replaced.has(v));
    let n = Math.max(0, missing.length - k.unknown);
    if (final === null) n = Math.max(n, 1);
    if (n > 0) {
      lost += n;
      details.push(
        `key ${key}: ends ${show(final)}; acknowledged values never replaced: ${missing.slice(0, 10).map(show).join(', ')}${missing.length > 10 ? ', ...' : ''} (${k.unknown} writes of unknown outcome)`,
      );
    }
  }
  return { lost, details };
}

function show(v: string | null): string {
  return v === null ? 'absent' : JSON.stringify(v);
}
