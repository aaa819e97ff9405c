import type { ConfState, NodeId } from './types.js';

/**
 * Membership changes. A change either keeps the voter set (learners come or go) and
 * applies at once, or moves the voters, which always goes through joint consensus
 * (Raft §6): first C_old,new, then, once that commits, C_new. Every node applies the
 * same entries to the same previous configuration, so validation is deterministic.
 */

export enum ConfChangeType {
  AddVoter = 1,
  AddLearner = 2,
  Remove = 3,
}

export interface ConfChangeItem {
  readonly type: ConfChangeType;
  readonly id: NodeId;
  /**
   * Where the node listens (`host:port`), for the runtime: every member learns a new
   * node's address from the entry that adds it. The core ignores it (etcd's `Context`).
   */
  readonly address?: string;
}

/** A proposed change. An empty `changes` list means "leave the joint configuration". */
export interface ConfChange {
  readonly changes: readonly ConfChangeItem[];
}

export class InvalidConfChangeError extends Error {
  readonly code = 'ERR_RAFT_INVALID_CONF_CHANGE';
}

export function isJoint(c: ConfState): boolean {
  return c.votersOutgoing.length > 0;
}

/** Every member id of a configuration, voters (both halves) first, then learners. */
export function members(c: ConfState): NodeId[] {
  const out = new Set<NodeId>([...c.voters, ...c.votersOutgoing, ...c.learners]);
  return [...out];
}

export function isVoter(c: ConfState, id: NodeId): boolean {
  return c.voters.includes(id) || c.votersOutgoing.includes(id);
}

/**
 * The configuration that results from `cc` applied to `prev`. Throws
 * InvalidConfChangeError when the change makes no sense against `prev`.
 */
export function applyConfChange(prev: ConfState, cc: ConfChange): ConfState {
  if (cc.changes.length === 0) {
    if (!isJoint(prev)) throw new InvalidConfChangeError('not in a joint configuration: nothing to leave');
    return { voters: prev.voters, votersOutgoing: [], learners: prev.learners, autoLeave: false };
  }
  if (isJoint(prev))
    throw new InvalidConfChangeError('a joint configuration must be left before another change');
  const voters = new Set(prev.voters);
  const learners = new Set(prev.learners);
  for (const ch of cc.changes) {
    if (ch.id === '') throw new InvalidConfChangeError('empty node id');
    switch (ch.type) {
      case ConfChangeType.AddVoter:
        learners.delete(ch.id);
        voters.add(ch.id);
        break;
      case ConfChangeType.AddLearner:
        if (voters.has(ch.id)) throw new InvalidConfChangeError(`${ch.id} is a voter; remove it first`);
        learners.add(ch.id);
        break;
      case ConfChangeType.Remove:
        if (!voters.delete(ch.id) && !learners.delete(ch.id)) {
          throw new InvalidConfChangeError(`${ch.id} is not a member`);
        }
        break;
      default:
        throw new InvalidConfChangeError(`unknown change type ${String(ch.type)}`);
    }
  }
  if (voters.size === 0) throw new InvalidConfChangeError('a configuration needs at least one voter');
  const sameVoters = voters.size === prev.voters.length && prev.voters.every((v) => voters.has(v));
  if (sameVoters) {
    return { voters: prev.voters, votersOutgoing: [], learners: [...learners].sort(), autoLeave: false };
  }
  return {
    voters: [...voters].sort(),
    votersOutgoing: prev.voters,
    learners: [...learners].sort(),
    autoLeave: true,
  };
}

// Encoding of a ConfChange entry's payload:
//
//   +---------+------------------------------------------------------------------+
//   | u8 n    | n × ( u8 type | u8 idLength | id UTF-8 | [u8 addrLength | addr] ) |
//   +---------+------------------------------------------------------------------+
//
// n = 0 means "leave joint". One byte for the id length keeps ids short (<= 255 bytes).
// The type's high bit (ADDRESS_FLAG) says an address follows the id.

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: a leading U+FEFF is part of the id.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

const ADDRESS_FLAG = 0x80;

export function encodeConfChange(cc: ConfChange): Uint8Array {
  if (cc.changes.length > 255) throw new InvalidConfChangeError('at most 255 changes at once');
  const ids = cc.changes.map((c) => utf8Encoder.encode(c.id));
  const addrs = cc.changes.map((c) => (c.address === undefined ? null : utf8Encoder.encode(c.address)));
  let len = 1;
  ids.forEach((id, i) => {
    if (id.byteLength > 255) throw new InvalidConfChangeError('node id longer than 255 bytes');
    len += 2 + id.byteLength;
    const addr = addrs[i];
    if (addr) {
      if (addr.byteLength > 255) throw new InvalidConfChangeError('address longer than 255 bytes');
      len += 1 + addr.byteLength;
    }
  });
  const out = new Uint8Array(len);
  out[0] = cc.changes.length;
  let off = 1;
  cc.changes.forEach((c, i) => {
    const id = ids[i] as Uint8Array;
    const addr = addrs[i];
    out[off++] = c.type | (addr ? ADDRESS_FLAG : 0);
    out[off++] = id.byteLength;
    out.set(id, off);
    off += id.byteLength;
    if (addr) {
      out[off++] = addr.byteLength;
      out.set(addr, off);
      off += addr.byteLength;
    }
  });
  return out;
}

export function decodeConfChange(buf: Uint8Array): ConfChange {
  if (buf.byteLength < 1) throw new InvalidConfChangeError('conf change: empty payload');
  const n = buf[0] as number;
  const changes: ConfChangeItem[] = [];
  let off = 1;
  for (let i = 0; i < n; i++) {
    if (off + 2 > buf.byteLength) throw new InvalidConfChangeError('conf change: truncated');
    const typeByte = buf[off++] as number;
    const type = typeByte & ~ADDRESS_FLAG;
    const idLen = buf[off++] as number;
    if (off + idLen > buf.byteLength) throw new InvalidConfChangeError('conf change: truncated id');
    if (type < ConfChangeType.AddVoter || type > ConfChangeType.Remove) {
      throw new InvalidConfChangeError(`conf change: unknown type ${type}`);
    }
    let id: string;
    try {
      id = utf8Decoder.decode(buf.subarray(off, off + idLen));
    } catch {
      throw new InvalidConfChangeError('conf change: node id is not valid UTF-8');
    }
    off += idLen;
    if ((typeByte & ADDRESS_FLAG) === 0) {
      changes.push({ type, id });
      continue;
    }
    if (off + 1 > buf.byteLength) throw new InvalidConfChangeError('conf change: truncated address');
    const addrLen = buf[off++] as number;
    if (off + addrLen > buf.byteLength) throw new InvalidConfChangeError('conf change: truncated address');
    let address: string;
    try {
      address = utf8Decoder.decode(buf.subarray(off, off + addrLen));
    } catch {
      throw new InvalidConfChangeError('conf change: address is not valid UTF-8');
    }
    off += addrLen;
    changes.push({ type, id, address });
  }
  if (off !== buf.byteLength) throw new InvalidConfChangeError('conf change: trailing bytes');
  return { changes };
}
