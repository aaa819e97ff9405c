/**
 * Exit codes of the `raftline` command, so scripts can tell what went wrong. Messages go
 * to stderr and say it in words too.
 */
export const EXIT_OK = 0;
/** Something failed that fits no code below (the message says what). */
export const EXIT_FAILURE = 1;
/** A wrong option or argument. */
export const EXIT_USAGE = 2;
/** No node could be reached, or no leader is known. */
export const EXIT_UNAVAILABLE = 3;
/**
 * The cluster refused the request: an invalid or concurrent membership change, a command
 * the state machine rejected...
 */
export const EXIT_REFUSED = 4;

/** The exit code for an error a command failed with. */
export function exitCodeFor(err: unknown): number {
  const code = (err as { code?: unknown }).code;
  switch (code) {
    case 'ERR_RAFT_INVALID_OPTION':
    case 'commander.invalidArgument':
    // The node found the request malformed (e.g. a peer spec that is not id=host:port).
    case 'ERR_RAFT_BAD_REQUEST':
      return EXIT_USAGE;
    case 'ERR_RAFT_NOT_LEADER':
    case 'ERR_RAFT_UNAVAILABLE':
    case 'ERR_RAFT_TIMEOUT':
    case 'ECONNREFUSED':
      return EXIT_UNAVAILABLE;
    case 'ERR_RAFT_NOT_SUPPORTED':
    case 'ERR_RAFT_TOO_LARGE':
    case 'ERR_RAFT_TRANSFER_REFUSED':
    case 'ERR_RAFT_PROPOSAL_DROPPED':
    case 'ERR_RAFT_STATE_MACHINE':
    // A membership change that does not apply to the configuration (removing a stranger) or
    // that must wait for the one in progress.
    case 'ERR_RAFT_INVALID_CONF_CHANGE':
    case 'ERR_RAFT_CONF_CHANGE_PENDING':
      return EXIT_REFUSED;
    default:
      return EXIT_FAILURE;
  }
}
