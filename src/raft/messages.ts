import type { Entry, Index, NodeId, SnapshotMeta, Term } from './types.js';

/**
 * Messages between Raft cores, named as in etcd-io/raft. The numbers are part of the
 * wire format (issue 3 encodes them): never renumber.
 */
export enum MessageType {
  /** AppendEntries: `index`/`logTerm` name the entry before `entries`; `commit` is the leader's. */
  MsgApp = 1,
  /** Reply to MsgApp/MsgSnap. On success `index` is the last index known to match;
   * on rejection `index` is the rejected prevIndex and `rejectHint`/`logTerm` a better guess. */
  MsgAppResp = 2,
  MsgVote = 3,
  MsgVoteResp = 4,
  MsgPreVote = 5,
  MsgPreVoteResp = 6,
  /** Keeps followers' election timers quiet; carries `commit` and a `context` to echo. */
  MsgHeartbeat = 7,
  MsgHeartbeatResp = 8,
  /** InstallSnapshot: the bytes travel outside the core; the message carries the meta. */
  MsgSnap = 9,
  /** Leadership transfer: the target campaigns at once, skipping PreVote and leases. */
  MsgTimeoutNow = 10,
  /** A follower asks the leader to confirm a read; `context` names the read. */
  MsgReadIndex = 11,
  /** The leader's answer: `index` is the read index, 0 with `reject` when it could not serve. */
  MsgReadIndexResp = 12,
}

/**
 * One message. A single shape with optional fields, like etcd's `raftpb.Message`, so one
 * codec serves every type.
 */
export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
  /** MsgApp: prevLogTerm. MsgVote/PreVote: the candidate's last term. MsgAppResp reject: hint term. */
  readonly logTerm: Term;
  /** MsgApp: prevLogIndex. MsgVote: the candidate's last index. MsgAppResp: see MessageType. */
  readonly index: Index;
  readonly commit: Index;
  readonly entries: readonly Entry[];
  readonly reject: boolean;
  readonly rejectHint: Index;
  /** Heartbeats and read-index traffic: an opaque number echoed back. MsgVote: 1 = transfer. */
  readonly context: number;
  readonly snapshot: SnapshotMeta | null;
}

const NO_ENTRIES: readonly Entry[] = Object.freeze([]);

/** Builds a message with every field not given set to its zero value. */
export function message(fields: Partial<Message> & Pick<Message, 'type' | 'from' | 'to' | 'term'>): Message {
  return {
    logTerm: 0,
    index: 0,
    commit: 0,
    entries: NO_ENTRIES,
    reject: false,
    rejectHint: 0,
    context: 0,
    snapshot: null,
    ...fields,
  };
}

/** MsgVote's context when a leadership transfer asked for the election. */
export const CAMPAIGN_TRANSFER = 1;

/** The response type that answers a vote request type. */
export function voteRespType(t: MessageType): MessageType {
  return t === MessageType.MsgPreVote ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp;
}

/**
 * Responses that may only leave once the local writes before them are durable: they
 * promise the receiver something about this node's log or vote.
 */
export function mustFollowPersist(t: MessageType): boolean {
  return t === MessageType.MsgAppResp || t === MessageType.MsgVoteResp || t === MessageType.MsgPreVoteResp;
}
