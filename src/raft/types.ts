/**
 * The vocabulary of the Raft core: indexes, terms, node ids, entries, durable state and
 * configurations. Plain data only; nothing here performs I/O.
 */

/** A position in the replicated log. The first real entry has index 1; 0 means "none". */
export type Index = number;
/** A Raft term. 0 is the term of the empty log. */
export type Term = number;
/** A node's identity within a cluster, e.g. `n1`. The empty string means "no node". */
export type NodeId = string;

/** No node: used for "no leader" and "voted for nobody". */
export const NO_NODE: NodeId = '';

/** What an entry carries. The numbers are part of the stored format: never renumber. */
export enum EntryType {
  /** A command for the user's state machine. */
  Normal = 0,
  /** A membership change, encoded by `conf-change.ts`. */
  ConfChange = 1,
  /** The empty entry a new leader appends to commit entries of earlier terms (Raft §5.4.2). */
  Noop = 2,
  /**
   * Many commands in one entry (the seed's BatchCommitter), laid out by
   * `src/shared/batch-codec.ts`. The core treats it as a command; the fsm applies each
   * command in turn, with one result each.
   */
  Batch = 3,
  /**
   * A client session's write (Raft thesis §6.3): a session header (client id, sequence
   * number, acknowledged-below point, the leader's clock) and a command or a batch, laid
   * out by `src/shared/session-codec.ts`. The core treats it as a command; the fsm applies
   * it at most once per (client, sequence number).
   */
  Session = 4,
}

/** One log entry. `data` is opaque to the core. */
export interface Entry {
  readonly index: Index;
  readonly term: Term;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** Bytes an entry is charged for in flow control: its payload plus a fixed header. */
export const ENTRY_OVERHEAD_BYTES = 24;

export function entryBytes(e: Entry): number {
  return e.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

/**
 * The state that must be durable before any message that depends on it leaves: the
 * current term and the vote cast in it. (The commit index is not persisted: it is
 * learned again from the leader after a restart.)
 */
export interface HardState {
  readonly term: Term;
  readonly vote: NodeId;
}

/**
 * A cluster configuration. Outside joint consensus `votersOutgoing` is empty. During
 * joint consensus (Raft §6) decisions need a majority of `voters` AND of `votersOutgoing`.
 * Learners receive the log but neither vote nor count towards commitment.
 */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly votersOutgoing: readonly NodeId[];
  readonly learners: readonly NodeId[];
  /** When true, the leader leaves the joint configuration on its own once it commits. */
  readonly autoLeave: boolean;
}

export const EMPTY_CONF: ConfState = { voters: [], votersOutgoing: [], learners: [], autoLeave: false };

/** What a snapshot covers: the last included entry and the configuration at that point. */
export interface SnapshotMeta {
  readonly index: Index;
  readonly term: Term;
  readonly conf: ConfState;
}

/** Roles, in Raft's words. PreCandidate is the PreVote phase (thesis §9.6). */
export enum Role {
  Follower = 'Follower',
  PreCandidate = 'PreCandidate',
  Candidate = 'Candidate',
  Leader = 'Leader',
}

/** A confirmed read: once the local state machine has applied `index`, the read may be served. */
export interface ReadState {
  readonly index: Index;
  /** The caller's id for the read, echoed back. */
  readonly context: number;
}
