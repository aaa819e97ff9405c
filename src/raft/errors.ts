/**
 * A broken invariant inside the core: a bug, never an expected outcome. It is thrown at
 * once, so a simulation stops at the step that broke it.
 */
export class RaftInvariantError extends Error {
  readonly code = 'ERR_RAFT_INVARIANT';
}

/**
 * Why a proposal was not appended: expected outcomes, returned as negative numbers so
 * that `propose` returns a plain number (the new entry's index when it succeeds).
 */
export enum ProposalDropped {
  /** This node is not the leader; `leader` in status() is the hint. */
  NotLeader = -1,
  /** A leadership transfer is under way (thesis §3.10: stop accepting client requests). */
  TransferInProgress = -2,
  /** An earlier configuration change is not committed yet (or the leader has not committed in its term). */
  ConfChangePending = -3,
  /** The configuration change does not apply to the current configuration. */
  InvalidConfChange = -4,
}
