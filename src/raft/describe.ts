import { decodeConfChange, InvalidConfChangeError } from './conf-change.js';
import { type Message, MessageType } from './messages.js';
import type { Ready } from './raft-core.js';
import { type ConfState, type Entry, EntryType, type SnapshotMeta } from './types.js';

/**
 * One text form for cores' messages, entries and Readys, used by the transcript tests
 * and by the simulator's traces, so a failing seed reads like a transcript.
 */

const dataDecoder = new TextDecoder();

export function describeEntry(e: Entry): string {
  switch (e.type) {
    case EntryType.Noop:
      return `${e.term}/${e.index} noop`;
    case EntryType.ConfChange: {
      let what: string;
      try {
        const cc = decodeConfChange(e.data);
        what =
          cc.changes.length === 0
            ? 'leave-joint'
            : cc.changes.map((c) => `${['', 'v', 'l', 'r'][c.type] ?? '?'}${c.id}`).join(' ');
      } catch (err) {
        if (!(err instanceof InvalidConfChangeError)) throw err;
        what = 'invalid';
      }
      return `${e.term}/${e.index} conf(${what})`;
    }
    default:
      return `${e.term}/${e.index} ${describeData(e.data)}`;
  }
}

function describeData(d: Uint8Array): string {
  if (d.byteLength === 0) return 'EMPTY';
  let printable = true;
  for (const b of d) if (b < 0x20 || b > 0x7e) printable = false;
  if (printable) return dataDecoder.decode(d);
  let hex = '0x';
  for (const b of d) hex += b.toString(16).padStart(2, '0');
  return hex;
}

export function describeConf(c: ConfState): string {
  let s = `voters=(${c.voters.join(' ')})`;
  if (c.votersOutgoing.length > 0) s += `&&(${c.votersOutgoing.join(' ')})`;
  if (c.learners.length > 0) s += ` learners=(${c.learners.join(' ')})`;
  if (c.autoLeave) s += ' autoleave';
  return s;
}

export function describeSnapshot(s: SnapshotMeta): string {
  return `index=${s.index} term=${s.term} ${describeConf(s.conf)}`;
}

export function describeMessage(m: Message): string {
  let s = `${m.from}->${m.to} ${MessageType[m.type]} Term:${m.term} Log:${m.logTerm}/${m.index}`;
  if (m.reject) s += ` Rejected (Hint: ${m.rejectHint})`;
  if (m.commit !== 0) s += ` Commit:${m.commit}`;
  if (m.context !== 0) s += ` Context:${m.context}`;
  if (m.entries.length > 0) s += ` Entries:[${m.entries.map(describeEntry).join(', ')}]`;
  if (m.snapshot) s += ` Snapshot:[${describeSnapshot(m.snapshot)}]`;
  return s;
}

/** A Ready as indented lines, in the order the driver handles it. */
export function describeReady(rd: Ready): string {
  const out: string[] = [];
  if (rd.softState) out.push(`Lead:${rd.softState.leader || 'none'} State:${rd.softState.role}`);
  if (rd.messages.length > 0) {
    out.push('Messages:');
    for (const m of rd.messages) out.push(`  ${describeMessage(m)}`);
  }
  if (rd.append) {
    const a = rd.append;
    if (a.hardState) out.push(`HardState Term:${a.hardState.term} Vote:${a.hardState.vote || 'none'}`);
    if (a.snapshot) out.push(`Snapshot: ${describeSnapshot(a.snapshot)}`);
    if (a.entries.length > 0) {
      out.push('Entries:');
      for (const e of a.entries) out.push(`  ${describeEntry(e)}`);
    }
    if (a.messages.length > 0) {
      out.push('OnSync:');
      for (const m of a.messages) out.push(`  ${describeMessage(m)}`);
    }
  }
  if (rd.apply) {
    if (rd.apply.snapshot) out.push(`ApplySnapshot: ${describeSnapshot(rd.apply.snapshot)}`);
    if (rd.apply.entries.length > 0) {
      out.push('CommittedEntries:');
      for (const e of rd.apply.entries) out.push(`  ${describeEntry(e)}`);
    }
  }
  if (rd.readStates.length > 0) {
    out.push(`ReadStates: ${rd.readStates.map((r) => `ctx=${r.context}@${r.index}`).join(' ')}`);
  }
  if (rd.droppedReads.length > 0) out.push(`DroppedReads: ${rd.droppedReads.join(' ')}`);
  return out.join('\n');
}
