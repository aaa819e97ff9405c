/** raftline's public API. */

export * from './main/errors.js';
export type { Configuration, NodeStatus, RaftNodeOptions, ReadConsistency } from './main/raft-node.js';
export { RaftNode } from './main/raft-node.js';
export type { ApplyIterator, StateMachine, Value } from './main/state-machine.js';
