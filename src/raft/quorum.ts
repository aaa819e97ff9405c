import type { Index, NodeId } from './types.js';

/**
 * Quorum arithmetic for majority and joint configurations (Raft §5, §6). Pure functions
 * over id lists: the tracker supplies each voter's acknowledged index or vote.
 */

/** The outcome of an election as far as the votes received so far can tell. */
export enum VoteResult {
  Pending = 'Pending',
  Lost = 'Lost',
  Won = 'Won',
}

/**
 * The highest index acknowledged by a majority of `voters`: sort the acknowledged
 * indexes descending and take the one at position ⌊n/2⌋. An empty configuration imposes no
 * constraint (it returns +Infinity) so that it is neutral inside a joint configuration.
 *
 * `scratch` is reused between calls to avoid allocating on the commit path.
 */
export function majorityCommitted(
  voters: readonly NodeId[],
  acked: (id: NodeId) => Index,
  scratch: number[] = [],
): Index {
  const n = voters.length;
  if (n === 0) return Number.POSITIVE_INFINITY;
  scratch.length = n;
  for (let i = 0; i < n; i++) scratch[i] = acked(voters[i] as NodeId);
  // Insertion sort, descending: configurations are small (3-7 voters).
  for (let i = 1; i < n; i++) {
    const v = scratch[i] as number;
    let j = i - 1;
    while (j >= 0 && (scratch[j] as number) < v) {
      scratch[j + 1] = scratch[j] as number;
      j--;
    }
    scratch[j + 1] = v;
  }
  return scratch[n >> 1] as number;
}

/** Joint consensus: an index is committed only when both halves have it (Raft §6). */
export function jointCommitted(
  incoming: readonly NodeId[],
  outgoing: readonly NodeId[],
  acked: (id: NodeId) => Index,
  scratch?: number[],
): Index {
  const a = majorityCommitted(incoming, acked, scratch);
  const b = majorityCommitted(outgoing, acked, scratch);
  return Math.min(a, b);
}

/** `vote(id)` is true (granted), false (rejected) or undefined (no answer yet). */
export function majorityVoteResult(
  voters: readonly NodeId[],
  vote: (id: NodeId) => boolean | undefined,
): VoteResult {
  if (voters.length === 0) return VoteResult.Won;
  let yes = 0;
  let missing = 0;
  for (const id of voters) {
    const v = vote(id);
    if (v === undefined) missing++;
    else if (v) yes++;
  }
  const q = (voters.length >> 1) + 1;
  if (yes >= q) return VoteResult.Won;
  if (yes + missing >= q) return VoteResult.Pending;
  return VoteResult.Lost;
}

export function jointVoteResult(
  incoming: readonly NodeId[],
  outgoing: readonly NodeId[],
  vote: (id: NodeId) => boolean | undefined,
): VoteResult {
  const a = majorityVoteResult(incoming, vote);
  const b = majorityVoteResult(outgoing, vote);
  if (a === b) return a;
  if (a === VoteResult.Lost || b === VoteResult.Lost) return VoteResult.Lost;
  return VoteResult.Pending;
}
