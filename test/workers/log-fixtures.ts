/** Entries and segment-log helpers shared by the log-writer and segment-reader tests. */

import { type Entry, EntryType } from '../../src/raft/types.js';
import { encodeEntries } from '../../src/shared/entry-codec.js';
import type { SegmentLog } from '../../src/workers/log-writer/segment-log.js';

/** The entry of `index`: a payload derived from index and term, of `payloadBytes` bytes. */
export function entryOf(index: number, term: number, payloadBytes = 100): Entry {
  const data = new Uint8Array(payloadBytes);
  for (let i = 0; i < payloadBytes; i++) data[i] = (index * 31 + term * 7 + i) & 0xff;
  return { index, term, type: EntryType.Normal, data };
}

/** Entries of indexes lo..hi in `term`. */
export function entries(lo: number, hi: number, term: number, payloadBytes = 100): Entry[] {
  const out: Entry[] = [];
  for (let index = lo; index <= hi; index++) out.push(entryOf(index, term, payloadBytes));
  return out;
}

/** Appends `list` (consecutive entries) to `log` as one batch. */
export function appendEntries(log: SegmentLog, list: readonly Entry[]): void {
  const first = list[0] as Entry;
  const last = list.at(-1) as Entry;
  log.append(encodeEntries(list), first.index, last.index, last.term);
}
