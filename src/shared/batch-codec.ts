/**
 * The payload of a batch entry (`EntryType.Batch`, the seed's BatchCommitter): many
 * commands committed as one log entry, applied one by one, one result each.
 *
 *   0            4            8                 8+len0       12+len0
 *   +------------+------------+-----------------+------------+-----------------+---
 *   | count u32  | len0 u32   | command 0       | len1 u32   | command 1       | ...
 *   +------------+------------+-----------------+------------+-----------------+---
 *
 * The client protocol's ApplyBatch request carries exactly these bytes, so a node turns a
 * batch request into an entry without copying or re-encoding it.
 */

import { readU32, writeU32 } from './entry-codec.js';

/** Bytes of the count field and of each length field. */
const U32_BYTES = 4;

/** Encodes `commands` as one batch payload. */
export function encodeBatch(commands: readonly Uint8Array[]): Uint8Array {
  let bytes = U32_BYTES;
  for (const c of commands) bytes += U32_BYTES + c.byteLength;
  const out = new Uint8Array(bytes);
  writeU32(out, 0, commands.length);
  let at = U32_BYTES;
  for (const c of commands) {
    writeU32(out, at, c.byteLength);
    out.set(c, at + U32_BYTES);
    at += U32_BYTES + c.byteLength;
  }
  return out;
}

/**
 * The commands of a batch payload, as views of it; null when the payload is malformed
 * (a count or length that runs past its end, or bytes left over).
 */
export function decodeBatch(payload: Uint8Array): Uint8Array[] | null {
  if (payload.byteLength < U32_BYTES) return null;
  const count = readU32(payload, 0);
  // Every command takes at least its length field: a count beyond that is a lie, and
  // refusing it before allocating keeps a hostile count from reserving memory.
  if (count > (payload.byteLength - U32_BYTES) / U32_BYTES) return null;
  const commands: Uint8Array[] = new Array(count);
  let at = U32_BYTES;
  for (let i = 0; i < count; i++) {
    if (at + U32_BYTES > payload.byteLength) return null;
    const len = readU32(payload, at);
    at += U32_BYTES;
    if (at + len > payload.byteLength) return null;
    commands[i] = payload.subarray(at, at + len);
    at += len;
  }
  return at === payload.byteLength ? commands : null;
}
