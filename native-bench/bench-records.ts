/** Records for the log benchmarks. */

import { type Entry, EntryType } from '../src/raft/types.js';
import { encodeEntries } from '../src/shared/entry-codec.js';

/** Encodes `count` records from `firstIndex` into one buffer, as the log window holds them. */
export function encodeBatch(firstIndex: number, count: number, payload: Uint8Array): Uint8Array {
  const list: Entry[] = [];
  for (let i = 0; i < count; i++)
    list.push({ index: firstIndex + i, term: 1, type: EntryType.Normal, data: payload });
  return encodeEntries(list);
}
