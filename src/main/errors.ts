/**
 * The errors a `RaftNode` hands its callers: one hierarchy with stable codes (as undici
 * does), so callers match on `code` or use `instanceof`, and errors rebuilt from a
 * `{ code, message }` record after crossing a thread keep both.
 */

/** Every error raftline reports to a caller. */
export class RaftError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = new.target.name;
  }
}

/** This node is not the leader. `leaderId`/`leaderAddress` say who is, when known. */
export class NotLeaderError extends RaftError {
  readonly leaderId: string | null;
  readonly leaderAddress: string | null;
  constructor(leaderId: string | null, leaderAddress: string | null, detail = 'this node is not the leader') {
    super(
      'ERR_RAFT_NOT_LEADER',
      leaderId ? `${detail}; the leader is ${leaderId} (${leaderAddress})` : `${detail}; no leader is known`,
    );
    this.leaderId = leaderId;
    this.leaderAddress = leaderAddress;
  }
}

/** Too many requests are waiting: back off and retry. Nothing was proposed. */
export class BusyError extends RaftError {
  constructor(message: string) {
    super('ERR_RAFT_BUSY', message);
  }
}

/** The node is shutting down or has stopped. */
export class ShutdownError extends RaftError {
  constructor(message = 'the node is shutting down') {
    super('ERR_RAFT_SHUTDOWN', message);
  }
}

/** No answer in time. For `apply`, the command may still be applied later: its outcome is unknown. */
export class TimeoutError extends RaftError {
  constructor(message: string) {
    super('ERR_RAFT_TIMEOUT', message);
  }
}

/** A write or read could not be served as asked (e.g. a read lost its leader). Safe to retry. */
export class UnavailableError extends RaftError {
  constructor(message: string) {
    super('ERR_RAFT_UNAVAILABLE', message);
  }
}

/** The state machine threw in `onApply`; the node stopped applying (braft's behaviour). */
export class StateMachineError extends RaftError {
  constructor(message: string) {
    super('ERR_RAFT_STATE_MACHINE', message);
  }
}

/** The disk failed; the node stopped rather than serve wrong data. */
export class StorageError extends RaftError {
  constructor(message: string) {
    super('ERR_RAFT_STORAGE', message);
  }
}

/** A proposal the core refused (e.g. a leadership transfer is in progress). */
export class ProposalRejectedError extends RaftError {
  constructor(message: string) {
    super('ERR_RAFT_PROPOSAL_DROPPED', message);
  }
}

/** A `RaftNode.start` option is missing or wrong. The message names the option. */
export class InvalidOptionError extends RaftError {
  readonly option: string;
  constructor(option: string, message: string) {
    super('ERR_RAFT_INVALID_OPTION', `option ${option}: ${message}`);
    this.option = option;
  }
}

/** Another process holds the data directory. */
export class DataDirLockedError extends RaftError {
  constructor(dataDir: string) {
    super(
      'ERR_RAFT_DATA_DIR_LOCKED',
      `data directory ${dataDir} is in use by another raftline node (its LOCK is held)`,
    );
  }
}

/**
 * The operation needs the admin credential (a client that proved the admin secret) and
 * this connection has none. Nothing was done.
 */
export class ForbiddenError extends RaftError {
  constructor(message: string) {
    super('ERR_RAFT_FORBIDDEN', message);
  }
}

/**
 * A connection was refused for its credentials: the node or the client lacks the
 * cluster secret, or they hold different ones, or the other end is an impostor.
 */
export class AuthError extends RaftError {
  constructor(message: string) {
    super('ERR_RAFT_AUTH', message);
  }
}

/** Rebuilds an error that crossed a thread as `{ code, message }`. */
export function errorFromRecord(record: { code: string; message: string }): RaftError {
  switch (record.code) {
    case 'ERR_RAFT_STATE_MACHINE':
      return new StateMachineError(record.message);
    case 'ERR_RAFT_STORAGE':
      return new StorageError(record.message);
    default:
      return new RaftError(record.code, record.message);
  }
}
