/**
 * `<dataDir>/raft_meta`: the current term and the vote cast in it (DESIGN.md, "On disk"),
 * which must be durable before any message depending on them leaves.
 *
 *   0        4         6           8            16           16+n
 *   +--------+---------+-----------+------------+------------+---------+
 *   | magic  | version | n =       | term       | vote       | CRC32C  |
 *   | "RFMT" | u16     | u16 bytes | u64        | n bytes    | u32     |
 *   +--------+---------+-----------+------------+------------+---------+
 *   CRC32C covers every byte before it. All integers little-endian.
 *
 * Replaced atomically rather than overwritten in place: the new contents go to
 * `raft_meta.tmp`, which is fsynced and renamed over `raft_meta`, and then the directory
 * is fsynced. A crash therefore leaves either the old or the new file, never a mix; the
 * CRC catches what the filesystem did not promise (bit rot, a foreign file).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { HardState } from '../../raft/types.js';
import { crc32c } from '../../shared/crc32c.js';
import { readU16, readU32, readU64, writeU16, writeU32, writeU64 } from '../../shared/entry-codec.js';
import { MAX_ID_BYTES } from '../../shared/protocol.js';

/** Name of the file within the data directory. */
export const META_FILE_NAME = 'raft_meta';
/** Name of the replacement being written; a leftover of a crash is ignored and overwritten. */
export const META_TMP_FILE_NAME = 'raft_meta.tmp';
/** The four magic bytes: ASCII "RFMT", so a foreign or misplaced file is refused. */
export const META_MAGIC: readonly number[] = Object.freeze([0x52, 0x46, 0x4d, 0x54]);
/** The layout version this code writes and reads. */
export const META_VERSION = 1;

const VERSION_OFFSET = 4;
const VOTE_BYTES_OFFSET = 6;
const TERM_OFFSET = 8;
const VOTE_OFFSET = 16;
const CRC_BYTES = 4;

/** `raft_meta` exists but cannot be read as term and vote: the node must not guess them. */
export class MetaCorruptionError extends Error {
  /** Stable code for callers and logs. */
  readonly code = 'ERR_RAFT_META_CORRUPT';
  /** The file that was refused. */
  readonly file: string;

  /** Builds the error; the message names the file and the reason. */
  constructor(file: string, reason: string) {
    super(`raft meta is corrupt: ${file}: ${reason}`);
    this.name = 'MetaCorruptionError';
    this.file = file;
  }
}

/**
 * Reads the term and vote from `<dataDir>/raft_meta`; null if the file does not exist
 * (a node that never voted). Throws `MetaCorruptionError` if it exists but is damaged.
 */
export function readMeta(dataDir: string): HardState | null {
  const file = path.join(dataDir, META_FILE_NAME);
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  if (bytes.byteLength < VOTE_OFFSET + CRC_BYTES) {
    throw new MetaCorruptionError(file, `${bytes.byteLength} bytes is shorter than the smallest record`);
  }
  for (let i = 0; i < META_MAGIC.length; i++) {
    if (bytes[i] !== META_MAGIC[i]) throw new MetaCorruptionError(file, 'wrong magic bytes');
  }
  const voteBytes = readU16(bytes, VOTE_BYTES_OFFSET);
  const crcOffset = VOTE_OFFSET + voteBytes;
  // The length is checked against the file before the CRC, which it locates.
  if (crcOffset + CRC_BYTES !== bytes.byteLength) {
    throw new MetaCorruptionError(
      file,
      `a ${voteBytes}-byte vote needs ${crcOffset + CRC_BYTES} bytes but the file has ${bytes.byteLength}`,
    );
  }
  const storedCrc = readU32(bytes, crcOffset);
  const computedCrc = crc32c(bytes.subarray(0, crcOffset));
  if (storedCrc !== computedCrc) {
    throw new MetaCorruptionError(file, `CRC32C is ${computedCrc}, stored ${storedCrc}`);
  }
  // Checked after the CRC: an intact file from another version is a different problem.
  const version = readU16(bytes, VERSION_OFFSET);
  if (version !== META_VERSION) {
    throw new MetaCorruptionError(file, `version ${version}, this node reads version ${META_VERSION}`);
  }
  const term = readU64(bytes, TERM_OFFSET);
  if (term < 0) throw new MetaCorruptionError(file, 'term above 2^53-1');
  let vote: string;
  try {
    vote = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(VOTE_OFFSET, crcOffset));
  } catch {
    throw new MetaCorruptionError(file, 'vote is not valid UTF-8');
  }
  return { term, vote };
}

/**
 * Replaces `<dataDir>/raft_meta` with `hs` atomically (write the temporary file, fsync,
 * rename, fsync the directory). With `sync` false nothing is fsynced: still atomic
 * against a process crash, but an OS crash may lose the vote (durability for speed).
 * RangeError for a term that is not a safe non-negative integer or a vote over
 * `MAX_ID_BYTES` bytes.
 */
export function writeMeta(dataDir: string, hs: HardState, sync: boolean): void {
  if (!Number.isSafeInteger(hs.term) || hs.term < 0) throw new RangeError(`term ${hs.term} cannot be stored`);
  const vote = new TextEncoder().encode(hs.vote);
  if (vote.byteLength > MAX_ID_BYTES) {
    throw new RangeError(`vote of ${vote.byteLength} bytes exceeds ${MAX_ID_BYTES}`);
  }
  const crcOffset = VOTE_OFFSET + vote.byteLength;
  const bytes = new Uint8Array(crcOffset + CRC_BYTES);
  bytes.set(META_MAGIC, 0);
  writeU16(bytes, VERSION_OFFSET, META_VERSION);
  writeU16(bytes, VOTE_BYTES_OFFSET, vote.byteLength);
  writeU64(bytes, TERM_OFFSET, hs.term);
  bytes.set(vote, VOTE_OFFSET);
  writeU32(bytes, crcOffset, crc32c(bytes.subarray(0, crcOffset)));

  fs.mkdirSync(dataDir, { recursive: true });
  const tmp = path.join(dataDir, META_TMP_FILE_NAME);
  const fd = fs.openSync(tmp, 'w');
  try {
    for (let doneBytes = 0; doneBytes < bytes.byteLength; ) {
      doneBytes += fs.writeSync(fd, bytes, doneBytes, bytes.byteLength - doneBytes);
    }
    if (sync) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path.join(dataDir, META_FILE_NAME));
  if (sync) {
    const dirFd = fs.openSync(dataDir, 'r');
    try {
      fs.fsyncSync(dirFd);
    } finally {
      fs.closeSync(dirFd);
    }
  }
}
