/**
 * `<dataDir>/snapshot/`: where snapshots live (DESIGN.md, "On disk"), braft's
 * `LocalSnapshotStorage` in synchronous, thread-free form.
 *
 *   <dataDir>/snapshot/<index, 20 digits>/        a complete snapshot
 *       __raft_snapshot_meta                      what it covers + its files' sizes and CRCs
 *       <the user's files, possibly in subdirectories>
 *   <dataDir>/snapshot/temp-<random>/             a local save in progress
 *   <dataDir>/snapshot/receive-<index>-<crc>/     a snapshot being received from the leader
 *
 * A snapshot becomes visible in one step, the rename of its finished directory to its
 * final name; everything in it (files, meta, directory entries) is fsynced before, and
 * the parent directory after. A crash therefore leaves the previous snapshot as the
 * latest, plus a temp directory that the next open removes. The zero-padded names sort
 * as numbers, so listings need no parsing to agree with the index order.
 *
 * The meta file (all integers little-endian):
 *
 *   0       4        6          8          16         24
 *   +-------+--------+----------+----------+----------+------------------------------+
 *   | magic | version| reserved | index    | term     | voters | votersOutgoing |      |
 *   | "RFSN"| u16    | u16 = 0  | u64      | u64      | learners: each u16 count, then |
 *   +-------+--------+----------+----------+----------+ u8 length + UTF-8 id per id    |
 *   | autoLeave u8 (0/1) | fileCount u32 | per file: u16 name length, UTF-8 name,      |
 *   |                    |               | u64 bytes, u32 CRC32C of the contents       |
 *   +--------------------+---------------+---------------------------------------------+
 *   | CRC32C u32 of every byte before it                                               |
 *   +----------------------------------------------------------------------------------+
 *
 * File names are relative paths with `/` between components, sorted, so the same
 * snapshot always encodes to the same bytes.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ConfState, Index, NodeId, SnapshotMeta } from '../../raft/types.js';
import { crc32c } from '../../shared/crc32c.js';
import { readU16, readU32, readU64, writeU16, writeU32, writeU64 } from '../../shared/entry-codec.js';
import { MAX_ID_BYTES } from '../../shared/protocol.js';

// ================================================================== names and constants

/** Name of the directory within the data directory that holds every snapshot. */
export const SNAPSHOT_DIR_NAME = 'snapshot';
/** Name of the meta file inside each snapshot directory; no user file may take it. */
export const SNAPSHOT_META_FILE_NAME = '__raft_snapshot_meta';
/** The four magic bytes: ASCII "RFSN", so a foreign or misplaced file is refused. */
export const SNAPSHOT_META_MAGIC: readonly number[] = Object.freeze([0x52, 0x46, 0x53, 0x4e]);
/** The meta layout version this code writes and reads. */
export const SNAPSHOT_META_VERSION = 1;
/** Digits of a snapshot directory's name: enough for any u64 index, so names sort as numbers. */
export const SNAPSHOT_INDEX_DIGITS = 20;
/** Longest file name (relative path, UTF-8) a snapshot may hold: PATH_MAX on Linux. */
export const MAX_SNAPSHOT_FILE_NAME_BYTES = 4096;

const TEMP_PREFIX = 'temp-';
const RECEIVE_PREFIX = 'receive-';
const FINAL_NAME = /^\d{20}$/;
const RECEIVE_NAME = /^receive-(\d{20})-[0-9a-f]{8}$/;

const VERSION_OFFSET = 4;
const RESERVED_OFFSET = 6;
const INDEX_OFFSET = 8;
const TERM_OFFSET = 16;
const CONF_OFFSET = 24;
const CRC_BYTES = 4;
/** Magic, version, reserved, index, term, three empty id lists, autoLeave, no files, CRC. */
const MIN_META_BYTES = CONF_OFFSET + 3 * 2 + 1 + 4 + CRC_BYTES;
/** Bytes per file entry besides its name: name length u16, size u64, CRC u32. */
const FILE_ENTRY_FIXED_BYTES = 2 + 8 + 4;
/** Most ids in one list of a ConfState: the u16 count. */
const MAX_IDS_PER_LIST = 0xffff;

/** Reads are done in slices of this size when verifying, so a large file never sits in memory. */
const VERIFY_CHUNK_BYTES = 1 << 20;

const utf8Encoder = new TextEncoder();
// fatal: invalid UTF-8 is corruption, not U+FFFD; ignoreBOM: a leading U+FEFF is part of a name.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// ================================================================== errors

/**
 * A snapshot on disk, or one being received, does not match its meta: a file's size or
 * CRC32C differs, or the meta itself is damaged. `file` names the culprit.
 */
export class SnapshotCorruptionError extends Error {
  /** Stable code for callers and logs. */
  readonly code = 'ERR_RAFT_SNAPSHOT_CORRUPT';
  /** The file that failed verification (a path, or a description for received bytes). */
  readonly file: string;
  /** What is wrong, in words. */
  readonly reason: string;

  /** Builds the error; the message names the file and the reason. */
  constructor(file: string, reason: string) {
    super(`raft snapshot is corrupt: ${file}: ${reason}`);
    this.name = 'SnapshotCorruptionError';
    this.file = file;
    this.reason = reason;
  }
}

/**
 * A snapshot was to be committed (or received) at an index that is not newer than the
 * latest complete one: it would replace nothing, and the directory name is taken.
 */
export class SnapshotStaleError extends Error {
  /** Stable code for callers and logs. */
  readonly code = 'ERR_RAFT_SNAPSHOT_STALE';
  /** Index of the refused snapshot. */
  readonly index: Index;
  /** Index of the latest complete snapshot. */
  readonly latestIndex: Index;

  /** Builds the error; the message names both indexes. */
  constructor(index: Index, latestIndex: Index) {
    super(`snapshot at index ${index} is not newer than the latest, at index ${latestIndex}`);
    this.name = 'SnapshotStaleError';
    this.index = index;
    this.latestIndex = latestIndex;
  }
}

// ================================================================== meta codec

/** One user file of a snapshot, as the meta records it. */
export interface SnapshotFile {
  /** Relative path within the snapshot directory, `/` between components. */
  readonly name: string;
  /** Size of the file in bytes. */
  readonly bytes: number;
  /** CRC32C of the whole file. */
  readonly crc32c: number;
}

/** A decoded meta file: what the snapshot covers and which files it holds. */
export interface DecodedSnapshotMeta {
  readonly meta: SnapshotMeta;
  readonly files: readonly SnapshotFile[];
}

/**
 * Whether `name` may be a file of a snapshot: a relative path of non-empty components
 * other than `.` and `..`, `/` between them, no backslash or NUL, not the meta file, at
 * most `MAX_SNAPSHOT_FILE_NAME_BYTES`. Checked on both sides because a received meta
 * comes from another machine and must not name a file outside the snapshot directory.
 */
export function isValidSnapshotFileName(name: string): boolean {
  if (name === '' || name === SNAPSHOT_META_FILE_NAME) return false;
  if (name.includes('\\') || name.includes('\0')) return false;
  if (utf8Encoder.encode(name).byteLength > MAX_SNAPSHOT_FILE_NAME_BYTES) return false;
  for (const part of name.split('/')) {
    if (part === '' || part === '.' || part === '..') return false;
  }
  return true;
}

/**
 * Encodes a meta file (layout in the module comment). `files` may come in any order; they
 * are stored sorted by name. RangeError for what cannot be stored: index or term outside
 * 1..2^53-1, an id over `MAX_ID_BYTES`, more than 65535 ids in a list, an invalid or
 * repeated file name, a size that is not a safe integer or a CRC that is not a u32.
 */
export function encodeSnapshotMeta(meta: SnapshotMeta, files: readonly SnapshotFile[]): Uint8Array {
  if (!Number.isSafeInteger(meta.index) || meta.index < 1) {
    throw new RangeError(`snapshot index ${meta.index} cannot be stored`);
  }
  if (!Number.isSafeInteger(meta.term) || meta.term < 1) {
    throw new RangeError(`snapshot term ${meta.term} cannot be stored`);
  }
  const lists = [meta.conf.voters, meta.conf.votersOutgoing, meta.conf.learners].map((ids) => {
    if (ids.length > MAX_IDS_PER_LIST) throw new RangeError(`${ids.length} ids exceed ${MAX_IDS_PER_LIST}`);
    return ids.map((id) => {
      const encoded = utf8Encoder.encode(id);
      if (encoded.byteLength > MAX_ID_BYTES) {
        throw new RangeError(`node id of ${encoded.byteLength} bytes exceeds ${MAX_ID_BYTES}`);
      }
      return encoded;
    });
  });
  const sorted = [...files].sort((a, b) => compareNames(a.name, b.name));
  const names = sorted.map((f, i) => {
    if (!isValidSnapshotFileName(f.name))
      throw new RangeError(`invalid snapshot file name ${JSON.stringify(f.name)}`);
    if (i > 0 && sorted[i - 1]?.name === f.name) throw new RangeError(`snapshot file ${f.name} listed twice`);
    if (!Number.isSafeInteger(f.bytes) || f.bytes < 0)
      throw new RangeError(`file size ${f.bytes} cannot be stored`);
    if (!Number.isInteger(f.crc32c) || f.crc32c < 0 || f.crc32c > 0xffff_ffff) {
      throw new RangeError(`CRC32C ${f.crc32c} is not a u32`);
    }
    return utf8Encoder.encode(f.name);
  });

  let totalBytes = CONF_OFFSET;
  for (const ids of lists) {
    totalBytes += 2;
    for (const id of ids) totalBytes += 1 + id.byteLength;
  }
  totalBytes += 1 + 4;
  for (const name of names) totalBytes += FILE_ENTRY_FIXED_BYTES + name.byteLength;
  const crcOffset = totalBytes;
  totalBytes += CRC_BYTES;

  const out = new Uint8Array(totalBytes);
  out.set(SNAPSHOT_META_MAGIC, 0);
  writeU16(out, VERSION_OFFSET, SNAPSHOT_META_VERSION);
  writeU16(out, RESERVED_OFFSET, 0);
  writeU64(out, INDEX_OFFSET, meta.index);
  writeU64(out, TERM_OFFSET, meta.term);
  let at = CONF_OFFSET;
  for (const ids of lists) {
    writeU16(out, at, ids.length);
    at += 2;
    for (const id of ids) {
      out[at++] = id.byteLength;
      out.set(id, at);
      at += id.byteLength;
    }
  }
  out[at++] = meta.conf.autoLeave ? 1 : 0;
  writeU32(out, at, names.length);
  at += 4;
  sorted.forEach((f, i) => {
    const name = names[i] as Uint8Array;
    writeU16(out, at, name.byteLength);
    at += 2;
    out.set(name, at);
    at += name.byteLength;
    writeU64(out, at, f.bytes);
    at += 8;
    writeU32(out, at, f.crc32c);
    at += 4;
  });
  writeU32(out, crcOffset, crc32c(out.subarray(0, crcOffset)));
  return out;
}

/**
 * Decodes a meta file with full validation: length, magic, CRC32C, version, every field
 * in range, names valid, sorted and unique, nothing left over. Throws
 * `SnapshotCorruptionError` naming `source` (the file, or a description of where the
 * bytes came from) on any failure; never returns a guess.
 */
export function decodeSnapshotMeta(bytes: Uint8Array, source: string): DecodedSnapshotMeta {
  const fail = (reason: string): never => {
    throw new SnapshotCorruptionError(source, reason);
  };
  if (bytes.byteLength < MIN_META_BYTES) fail(`${bytes.byteLength} bytes is shorter than the smallest meta`);
  for (let i = 0; i < SNAPSHOT_META_MAGIC.length; i++) {
    if (bytes[i] !== SNAPSHOT_META_MAGIC[i]) fail('wrong magic bytes');
  }
  // The CRC comes before any length field is trusted: a damaged count would otherwise
  // send the parser anywhere.
  const crcOffset = bytes.byteLength - CRC_BYTES;
  const storedCrc = readU32(bytes, crcOffset);
  const computedCrc = crc32c(bytes.subarray(0, crcOffset));
  if (storedCrc !== computedCrc) fail(`meta CRC32C is ${hex(computedCrc)}, stored ${hex(storedCrc)}`);
  // Checked after the CRC: an intact meta from another version is a different problem.
  const version = readU16(bytes, VERSION_OFFSET);
  if (version !== SNAPSHOT_META_VERSION) {
    fail(`version ${version}, this node reads version ${SNAPSHOT_META_VERSION}`);
  }
  if (readU16(bytes, RESERVED_OFFSET) !== 0) fail('reserved bytes are not zero');
  const index = readU64(bytes, INDEX_OFFSET);
  if (index < 1) fail('index is 0 or above 2^53-1');
  const term = readU64(bytes, TERM_OFFSET);
  if (term < 1) fail('term is 0 or above 2^53-1');

  let at = CONF_OFFSET;
  const need = (n: number, what: string): void => {
    if (at + n > crcOffset) fail(`${what} runs past the end of the meta`);
  };
  const decodeUtf8 = (n: number, what: string): string => {
    need(n, what);
    try {
      return utf8Decoder.decode(bytes.subarray(at, at + n));
    } catch {
      return fail(`${what} is not valid UTF-8`);
    } finally {
      at += n;
    }
  };
  const readIds = (what: string): NodeId[] => {
    need(2, `${what} count`);
    const count = readU16(bytes, at);
    at += 2;
    const ids: NodeId[] = [];
    for (let i = 0; i < count; i++) {
      need(1, `${what} id length`);
      const idBytes = bytes[at++] as number;
      ids.push(decodeUtf8(idBytes, `${what} id`));
    }
    return ids;
  };
  const voters = readIds('voters');
  const votersOutgoing = readIds('votersOutgoing');
  const learners = readIds('learners');
  need(1, 'autoLeave');
  const autoLeaveByte = bytes[at++] as number;
  if (autoLeaveByte > 1) fail(`autoLeave is ${autoLeaveByte}, not 0 or 1`);
  need(4, 'file count');
  const fileCount = readU32(bytes, at);
  at += 4;
  // Bounded by the bytes present before anything is allocated from it.
  if (fileCount * FILE_ENTRY_FIXED_BYTES > crcOffset - at) fail(`${fileCount} files cannot fit in the meta`);
  const files: SnapshotFile[] = [];
  for (let i = 0; i < fileCount; i++) {
    need(2, 'file name length');
    const nameBytes = readU16(bytes, at);
    at += 2;
    const name = decodeUtf8(nameBytes, 'file name');
    if (!isValidSnapshotFileName(name)) fail(`invalid file name ${JSON.stringify(name)}`);
    const previous = files[files.length - 1];
    if (previous !== undefined && compareNames(previous.name, name) >= 0) {
      fail(`file names are not sorted and unique at ${JSON.stringify(name)}`);
    }
    need(12, 'file size and CRC32C');
    const fileBytes = readU64(bytes, at);
    if (fileBytes < 0) fail(`size of ${name} is above 2^53-1`);
    const fileCrc = readU32(bytes, at + 8);
    at += 12;
    files.push({ name, bytes: fileBytes, crc32c: fileCrc });
  }
  if (at !== crcOffset) fail(`${crcOffset - at} bytes left over after the file list`);
  const conf: ConfState = { voters, votersOutgoing, learners, autoLeave: autoLeaveByte === 1 };
  return { meta: { index, term, conf }, files };
}

/** Orders names by code unit, the same on every machine (no locale). */
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

// ================================================================== the store

/** Options of `SnapshotStore`. */
export interface SnapshotStoreOptions {
  /**
   * Whether to fsync files and directories (default true). Without it a commit is still
   * atomic against a process crash, but an OS crash may lose or tear the snapshot, the
   * same trade as the node's `sync` option.
   */
  readonly sync?: boolean;
}

/** A complete, verified snapshot: what it covers, where it is and the files it holds. */
export interface SnapshotInfo {
  readonly meta: SnapshotMeta;
  /** The snapshot's directory: `<dataDir>/snapshot/<index, 20 digits>`. */
  readonly dir: string;
  readonly files: readonly SnapshotFile[];
}

/**
 * Snapshots of one node: saving (`begin`), finding and verifying the latest (`latest`,
 * `reader`), and moving one to a follower (`openForSending`, `beginReceive`). Every call
 * is synchronous and blocks its thread for the disk work, which is meant for the fsm
 * worker (or a helper thread), never the main thread. One store per data directory:
 * the node's LOCK file keeps other processes out.
 */
export class SnapshotStore {
  /** `<dataDir>/snapshot`. */
  readonly dir: string;
  readonly #sync: boolean;

  /**
   * Opens the store: creates `<dataDir>/snapshot` if needed and removes what a crash left
   * behind: every `temp-*` directory (a local save that never reached its rename) and
   * every `receive-*` directory no newer than the latest snapshot. A newer partial
   * receive is kept so that it can resume (`beginReceive` with the same meta).
   */
  constructor(dataDir: string, options: SnapshotStoreOptions = {}) {
    this.dir = path.join(dataDir, SNAPSHOT_DIR_NAME);
    this.#sync = options.sync ?? true;
    fs.mkdirSync(this.dir, { recursive: true });
    const newest = this.#newestIndex();
    for (const name of fs.readdirSync(this.dir)) {
      const receive = RECEIVE_NAME.exec(name);
      if (name.startsWith(TEMP_PREFIX) || (receive !== null && Number(receive[1]) <= newest)) {
        fs.rmSync(path.join(this.dir, name), { recursive: true, force: true });
      }
    }
  }

  /** Same as the constructor, for callers that read better with a verb. */
  static open(dataDir: string, options: SnapshotStoreOptions = {}): SnapshotStore {
    return new SnapshotStore(dataDir, options);
  }

  /**
   * Starts saving a snapshot covering `meta`: creates `<dataDir>/snapshot/temp-<random>/`
   * for the user's `onSnapshotSave` to fill. Nothing is visible until `commit`.
   */
  begin(meta: SnapshotMeta): SnapshotWriter {
    // Checked now, before the user spends time writing files; commit checks again.
    const newest = this.#newestIndex();
    if (meta.index <= newest) throw new SnapshotStaleError(meta.index, newest);
    const dir = path.join(this.dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    fs.mkdirSync(dir);
    return new SnapshotWriter(this.dir, this.#sync, dir, meta);
  }

  /**
   * The newest complete snapshot, verified: the meta's CRC32C, and every file's size and
   * CRC32C (which reads every byte). Null if there is none.
   *
   * A snapshot failing verification throws `SnapshotCorruptionError` naming the file. It
   * is never skipped in favour of an older snapshot: once a snapshot is committed the log
   * before it may be deleted and older snapshots are, so an older snapshot plus the
   * remaining log has a gap. Loading it would silently build a state missing entries that
   * this node already applied (and may have acknowledged); only an operator, or a fresh
   * copy from the leader, can repair that.
   */
  latest(): SnapshotInfo | null {
    const index = this.#newestIndex();
    if (index === 0) return null;
    const dir = this.#finalDir(index);
    const { meta, files } = this.#readMeta(dir, index);
    for (const f of files) verifyFile(path.join(dir, ...f.name.split('/')), f);
    return { meta, dir, files };
  }

  /** The latest snapshot (verified, as `latest`), as `onSnapshotLoad` gets it; null if none. */
  reader(): SnapshotReader | null {
    const info = this.latest();
    return info === null ? null : new SnapshotReader(info);
  }

  /**
   * Opens the snapshot at `index` to stream it to a follower; null if there is no such
   * snapshot (a newer one replaced it: send that one instead). The meta's CRC and every
   * file's size are checked, not the file CRCs: reading every byte twice would double the
   * cost of a transfer, and the receiver verifies every CRC anyway.
   *
   * Every file is opened at once, so a newer snapshot deleting this one while it is being
   * sent does not disturb the transfer (POSIX keeps an unlinked open file readable).
   * Call `close` when done.
   */
  openForSending(index: Index): SnapshotSource | null {
    return openSource(this.dir, index);
  }

  /**
   * Starts receiving a snapshot whose meta the leader sent as `metaBytes` (decoded and
   * verified here: `SnapshotCorruptionError` if damaged, `SnapshotStaleError` if not
   * newer than the latest local snapshot).
   *
   * Resumable: the receiving directory is named after the meta's index and CRC, so
   * calling this again with the same meta, even after a restart of the process, picks
   * up what was already received (`receivedBytes`). Any other partial receive is
   * discarded: one transfer at a time.
   */
  beginReceive(metaBytes: Uint8Array): SnapshotReceiver {
    const decoded = decodeSnapshotMeta(metaBytes, 'received snapshot meta');
    const newest = this.#newestIndex();
    if (decoded.meta.index <= newest) throw new SnapshotStaleError(decoded.meta.index, newest);
    const metaCrc = readU32(metaBytes, metaBytes.byteLength - CRC_BYTES);
    const name = `${RECEIVE_PREFIX}${padIndex(decoded.meta.index)}-${metaCrc.toString(16).padStart(8, '0')}`;
    for (const other of fs.readdirSync(this.dir)) {
      if (other.startsWith(RECEIVE_PREFIX) && other !== name) {
        fs.rmSync(path.join(this.dir, other), { recursive: true, force: true });
      }
    }
    const dir = path.join(this.dir, name);
    fs.mkdirSync(dir, { recursive: true });
    return new SnapshotReceiver(this.dir, this.#sync, dir, Uint8Array.from(metaBytes), decoded);
  }

  /** Index of the newest complete (renamed) snapshot directory, 0 if none. */
  #newestIndex(): Index {
    return newestIndex(this.dir);
  }

  #finalDir(index: Index): string {
    return path.join(this.dir, padIndex(index));
  }

  /** Reads and decodes the meta of the snapshot directory `dir`, which must cover `index`. */
  #readMeta(dir: string, index: Index): DecodedSnapshotMeta {
    const metaFile = path.join(dir, SNAPSHOT_META_FILE_NAME);
    let metaBytes: Uint8Array;
    try {
      metaBytes = fs.readFileSync(metaFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new SnapshotCorruptionError(metaFile, 'the meta file is missing');
      }
      throw err;
    }
    const decoded = decodeSnapshotMeta(metaBytes, metaFile);
    if (decoded.meta.index !== index) {
      throw new SnapshotCorruptionError(
        metaFile,
        `meta covers index ${decoded.meta.index}, the directory says ${index}`,
      );
    }
    return decoded;
  }
}

// ================================================================== for the replicator thread

/**
 * Index of the newest complete snapshot in `<dataDir>/snapshot`, 0 if there is none (or
 * no snapshot directory yet). Unlike `SnapshotStore.open` it removes nothing, so a
 * replicator thread may call it while the fsm thread is saving: the fsm's `temp-*`
 * directory of a save in progress is left alone.
 */
export function newestSnapshotIndex(dataDir: string): Index {
  try {
    return newestIndex(path.join(dataDir, SNAPSHOT_DIR_NAME));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
}

/**
 * `SnapshotStore.openForSending` for a thread that does not own the store (a
 * replicator): opens the snapshot at `index` of `<dataDir>/snapshot` for streaming,
 * without the store's clean-up of leftovers, which would delete the fsm thread's save in
 * progress. Null if there is no such snapshot, including when a newer one replaced it
 * while this was opening it: ask `newestSnapshotIndex` and open that one instead.
 */
export function openSnapshotForSending(dataDir: string, index: Index): SnapshotSource | null {
  return openSource(path.join(dataDir, SNAPSHOT_DIR_NAME), index);
}

/** Opens the snapshot at `index` in the store directory `root` (see `openForSending`). */
function openSource(root: string, index: Index): SnapshotSource | null {
  const dir = path.join(root, padIndex(index));
  const metaFile = path.join(dir, SNAPSHOT_META_FILE_NAME);
  let metaBytes: Uint8Array;
  try {
    // A plain Uint8Array rather than the Buffer subclass: it travels to another thread
    // and compares equal to what the receiver stores.
    const buf = fs.readFileSync(metaFile);
    metaBytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const { meta, files } = decodeSnapshotMeta(metaBytes, metaFile);
  const fds: number[] = [];
  try {
    for (const f of files) {
      const file = path.join(dir, ...f.name.split('/'));
      const fd = fs.openSync(file, 'r');
      fds.push(fd);
      const actualBytes = fs.fstatSync(fd).size;
      if (actualBytes !== f.bytes) {
        throw new SnapshotCorruptionError(file, `${actualBytes} bytes, the meta says ${f.bytes}`);
      }
    }
  } catch (err) {
    for (const fd of fds) fs.closeSync(fd);
    // A newer snapshot deleting this one between the meta read and here is a race, not
    // damage: the directory is gone (or going), and the caller opens the newest instead.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !fs.existsSync(metaFile)) return null;
    throw err;
  }
  return new SnapshotSource(meta, metaBytes, files, fds);
}

// ================================================================== saving

/**
 * A snapshot being saved locally. The user's `onSnapshotSave` writes its files into
 * `dir` (subdirectories allowed); `commit` publishes them, `abort` throws them away.
 * After either, the writer is finished and refuses further calls.
 */
export class SnapshotWriter {
  /** Where the user's files go: `<dataDir>/snapshot/temp-<random>`. */
  readonly dir: string;
  /** What the snapshot covers. */
  readonly meta: SnapshotMeta;
  readonly #root: string;
  readonly #sync: boolean;
  readonly #declared = new Set<string>();
  #finished = false;

  /** Made by `SnapshotStore.begin`; `root` is the store's directory. @internal */
  constructor(root: string, sync: boolean, dir: string, meta: SnapshotMeta) {
    this.#root = root;
    this.#sync = sync;
    this.dir = dir;
    this.meta = meta;
  }

  /**
   * Declares that `name` (a relative path, `/` between components) will be in the
   * snapshot. Optional, since every file in `dir` is included at commit anyway; what it
   * adds is a check: `commit` fails if a declared file is missing, which catches a save
   * that silently wrote less than it meant to.
   */
  addFile(name: string): void {
    this.#assertOpen();
    if (!isValidSnapshotFileName(name))
      throw new RangeError(`invalid snapshot file name ${JSON.stringify(name)}`);
    this.#declared.add(name);
  }

  /**
   * Publishes the snapshot: fsyncs every file (computing its size and CRC32C on the way),
   * writes and fsyncs the meta, fsyncs the directories, renames the temp directory to
   * `<dataDir>/snapshot/<index>` and fsyncs the parent; then deletes older snapshots.
   * Returns the meta. If it throws (a declared file missing, a stale index, an I/O error)
   * nothing was published; call `abort` to clean up.
   */
  commit(): SnapshotMeta {
    this.#assertOpen();
    const names = listFiles(this.dir);
    const present = new Set(names);
    for (const name of this.#declared) {
      if (!present.has(name))
        throw new Error(`snapshot file ${name} was declared with addFile but not written`);
    }
    const files: SnapshotFile[] = [];
    for (const name of names) {
      if (name === SNAPSHOT_META_FILE_NAME) {
        throw new RangeError(
          `the state machine wrote ${SNAPSHOT_META_FILE_NAME}, a name reserved for the store`,
        );
      }
      if (!isValidSnapshotFileName(name))
        throw new RangeError(`invalid snapshot file name ${JSON.stringify(name)}`);
      files.push(checksumFile(path.join(this.dir, ...name.split('/')), name, this.#sync));
    }
    const metaBytes = encodeSnapshotMeta(this.meta, files);
    publish(this.#root, this.#sync, this.dir, metaBytes, this.meta.index);
    this.#finished = true;
    return this.meta;
  }

  /** Throws the snapshot away: removes the temp directory. Safe to call after a failed commit. */
  abort(): void {
    if (this.#finished) return;
    this.#finished = true;
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  #assertOpen(): void {
    if (this.#finished) throw new Error('snapshot writer already committed or aborted');
  }
}

// ================================================================== loading

/** What `onSnapshotLoad` gets: a verified snapshot, read-only by convention. */
export class SnapshotReader {
  /** The snapshot's directory. */
  readonly dir: string;
  /** What the snapshot covers. */
  readonly meta: SnapshotMeta;
  /** The user's files, with sizes and CRCs as verified. */
  readonly files: readonly SnapshotFile[];

  /** Made by `SnapshotStore.reader`. @internal */
  constructor(info: SnapshotInfo) {
    this.dir = info.dir;
    this.meta = info.meta;
    this.files = info.files;
  }

  /** Absolute path of the snapshot's file `name` (a relative path, `/` between components). */
  filePath(name: string): string {
    return path.join(this.dir, ...name.split('/'));
  }
}

// ================================================================== streaming

/** A committed snapshot opened for streaming to a follower (`SnapshotStore.openForSending`). */
export class SnapshotSource {
  /** What the snapshot covers. */
  readonly meta: SnapshotMeta;
  /** The meta file's bytes, exactly as stored: the first thing to send. */
  readonly metaBytes: Uint8Array;
  /** The user's files, in the order of the meta; `read` takes an index into this. */
  readonly files: readonly SnapshotFile[];
  readonly #fds: number[];
  #closed = false;

  /** Made by `SnapshotStore.openForSending`. @internal */
  constructor(meta: SnapshotMeta, metaBytes: Uint8Array, files: readonly SnapshotFile[], fds: number[]) {
    this.meta = meta;
    this.metaBytes = metaBytes;
    this.files = files;
    this.#fds = fds;
  }

  /**
   * Reads from file `fileIdx` at `offsetBytes` into `buf`, as much as fits; returns the
   * bytes read, 0 at the end of the file.
   */
  read(fileIdx: number, offsetBytes: number, buf: Uint8Array): number {
    if (this.#closed) throw new Error('snapshot source is closed');
    const fd = this.#fds[fileIdx];
    const file = this.files[fileIdx];
    if (fd === undefined || file === undefined) throw new RangeError(`no file ${fileIdx} in the snapshot`);
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || offsetBytes > file.bytes) {
      throw new RangeError(`offset ${offsetBytes} outside ${file.name} of ${file.bytes} bytes`);
    }
    const wantBytes = Math.min(buf.byteLength, file.bytes - offsetBytes);
    let doneBytes = 0;
    while (doneBytes < wantBytes) {
      const n = fs.readSync(fd, buf, doneBytes, wantBytes - doneBytes, offsetBytes + doneBytes);
      if (n === 0) break;
      doneBytes += n;
    }
    return doneBytes;
  }

  /** Closes the files. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of this.#fds) fs.closeSync(fd);
  }
}

/**
 * A snapshot being received from the leader (`SnapshotStore.beginReceive`). Each file is
 * received in order from its start; a chunk may overlap what was already received (a
 * retransmission), but may not leave a gap, so `receivedBytes` is always a contiguous
 * prefix equal to the file's length on disk, which is what makes resuming after a
 * restart possible.
 */
export class SnapshotReceiver {
  /** The receiving directory: `<dataDir>/snapshot/receive-<index>-<meta CRC>`. */
  readonly dir: string;
  /** What the snapshot covers. */
  readonly meta: SnapshotMeta;
  /** The files to receive, from the meta. */
  readonly files: readonly SnapshotFile[];
  readonly #root: string;
  readonly #sync: boolean;
  readonly #metaBytes: Uint8Array;
  readonly #byName = new Map<
    string,
    { file: SnapshotFile; path: string; receivedBytes: number; fd: number | null }
  >();
  #finished = false;
  /** Set by a successful `commit`: the directory is now the published snapshot, never to be removed here. */
  #published = false;

  /** Made by `SnapshotStore.beginReceive`; `root` is the store's directory. @internal */
  constructor(root: string, sync: boolean, dir: string, metaBytes: Uint8Array, decoded: DecodedSnapshotMeta) {
    this.#root = root;
    this.#sync = sync;
    this.dir = dir;
    this.#metaBytes = metaBytes;
    this.meta = decoded.meta;
    this.files = decoded.files;
    for (const file of decoded.files) {
      const filePath = path.join(dir, ...file.name.split('/'));
      let onDiskBytes = 0;
      try {
        onDiskBytes = fs.statSync(filePath).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      // Longer than the meta allows can only be damage: start that file over.
      if (onDiskBytes > file.bytes) {
        fs.truncateSync(filePath, 0);
        onDiskBytes = 0;
      }
      this.#byName.set(file.name, { file, path: filePath, receivedBytes: onDiskBytes, fd: null });
    }
  }

  /** Bytes of `fileName` received so far, from its start: where the sender should resume. */
  receivedBytes(fileName: string): number {
    return this.#entry(fileName).receivedBytes;
  }

  /**
   * Stores `bytes` at `offsetBytes` of `fileName`. Bytes already received are skipped
   * (not compared: the CRC at commit catches a retransmission that differs). RangeError
   * for a file not in the meta, a gap (`offsetBytes` beyond `receivedBytes`), or bytes
   * past the size the meta gives.
   */
  write(fileName: string, offsetBytes: number, bytes: Uint8Array): void {
    this.#assertOpen();
    const entry = this.#entry(fileName);
    if (!Number.isSafeInteger(offsetBytes) || offsetBytes < 0 || offsetBytes > entry.receivedBytes) {
      throw new RangeError(
        `chunk at ${offsetBytes} of ${fileName} leaves a gap: ${entry.receivedBytes} bytes received`,
      );
    }
    const endBytes = offsetBytes + bytes.byteLength;
    if (endBytes > entry.file.bytes) {
      throw new RangeError(`chunk ends at ${endBytes}, past the ${entry.file.bytes} bytes of ${fileName}`);
    }
    if (endBytes <= entry.receivedBytes) return;
    if (entry.fd === null) {
      fs.mkdirSync(path.dirname(entry.path), { recursive: true });
      entry.fd = fs.openSync(entry.path, fs.existsSync(entry.path) ? 'r+' : 'w+');
    }
    const fresh = bytes.subarray(entry.receivedBytes - offsetBytes);
    for (let doneBytes = 0; doneBytes < fresh.byteLength; ) {
      doneBytes += fs.writeSync(
        entry.fd,
        fresh,
        doneBytes,
        fresh.byteLength - doneBytes,
        entry.receivedBytes + doneBytes,
      );
    }
    entry.receivedBytes = endBytes;
  }

  /**
   * Verifies and publishes the received snapshot: every file complete (RangeError if
   * not), fsynced, and its size and CRC32C as the meta says (read back from disk, which
   * is what will be loaded). A file failing the check is truncated to 0 bytes so that a
   * retry fetches only it, and `SnapshotCorruptionError` names it; the receiver stays
   * usable. Then the meta is written and the directory published as by a local commit,
   * deleting older snapshots. Returns the meta.
   */
  commit(): SnapshotMeta {
    this.#assertOpen();
    for (const entry of this.#byName.values()) {
      if (entry.receivedBytes !== entry.file.bytes) {
        throw new RangeError(
          `snapshot file ${entry.file.name} is incomplete: ${entry.receivedBytes} of ${entry.file.bytes} bytes`,
        );
      }
    }
    this.#closeFiles();
    for (const entry of this.#byName.values()) {
      // An empty file no chunk ever arrived for still has to exist.
      if (entry.file.bytes === 0 && !fs.existsSync(entry.path)) {
        fs.mkdirSync(path.dirname(entry.path), { recursive: true });
        fs.writeFileSync(entry.path, new Uint8Array(0));
      }
      const actual = checksumFile(entry.path, entry.file.name, this.#sync);
      if (actual.bytes !== entry.file.bytes || actual.crc32c !== entry.file.crc32c) {
        fs.truncateSync(entry.path, 0);
        entry.receivedBytes = 0;
        throw new SnapshotCorruptionError(
          entry.path,
          `received ${actual.bytes} bytes with CRC32C ${hex(actual.crc32c)}, the meta says ${entry.file.bytes} bytes with ${hex(entry.file.crc32c)}`,
        );
      }
    }
    publish(this.#root, this.#sync, this.dir, this.#metaBytes, this.meta.index);
    this.#finished = true;
    this.#published = true;
    return this.meta;
  }

  /**
   * Stops using this receiver and keeps what it received: closes the files, leaves the
   * receiving directory. A later `beginReceive` with the same meta resumes from it (the
   * leader reconnected after a cut); another meta, or a newer local snapshot, removes
   * it. Idempotent; the receiver refuses further calls.
   */
  close(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#closeFiles();
  }

  /**
   * Gives up the transfer: closes and removes the receiving directory. Also after
   * `close`; nothing after a successful `commit`.
   */
  abort(): void {
    if (this.#published) return;
    this.#finished = true;
    this.#closeFiles();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  #entry(fileName: string): { file: SnapshotFile; path: string; receivedBytes: number; fd: number | null } {
    const entry = this.#byName.get(fileName);
    if (entry === undefined) throw new RangeError(`${fileName} is not a file of the snapshot being received`);
    return entry;
  }

  #closeFiles(): void {
    for (const entry of this.#byName.values()) {
      if (entry.fd !== null) {
        fs.closeSync(entry.fd);
        entry.fd = null;
      }
    }
  }

  #assertOpen(): void {
    if (this.#finished) throw new Error('snapshot receiver already committed or aborted');
  }
}

// ================================================================== publishing

/**
 * Index of the newest complete (renamed) snapshot directory in `root` (the store's
 * `<dataDir>/snapshot`), 0 if none.
 */
function newestIndex(root: string): Index {
  let newest = 0;
  for (const name of fs.readdirSync(root)) {
    if (FINAL_NAME.test(name)) newest = Math.max(newest, Number(name));
  }
  return newest;
}

/**
 * Writes the meta into the finished directory `tempDir`, makes everything durable,
 * renames it to its final name in `root`, and deletes older snapshots. Shared by local
 * saves and receives.
 */
function publish(root: string, sync: boolean, tempDir: string, metaBytes: Uint8Array, index: Index): void {
  const newest = newestIndex(root);
  if (index <= newest) throw new SnapshotStaleError(index, newest);
  writeFileFully(path.join(tempDir, SNAPSHOT_META_FILE_NAME), metaBytes, sync);
  if (sync) {
    // Children before parents: each directory's entries must be durable before the
    // rename publishes them.
    for (const sub of listDirs(tempDir).reverse()) fsyncDir(sub);
    fsyncDir(tempDir);
  }
  fs.renameSync(tempDir, path.join(root, padIndex(index)));
  if (sync) fsyncDir(root);
  // Deleting is not atomic, but it need not be: only the newest directory is ever read,
  // and a half-deleted older one is removed again by the next commit.
  for (const name of fs.readdirSync(root)) {
    if (FINAL_NAME.test(name) && Number(name) < index) {
      fs.rmSync(path.join(root, name), { recursive: true, force: true });
    }
  }
}

// ================================================================== file helpers

/** `index` as a directory name: zero-padded so that names sort as numbers. */
function padIndex(index: Index): string {
  return String(index).padStart(SNAPSHOT_INDEX_DIGITS, '0');
}

/**
 * Relative paths (`/` between components) of every regular file under `root`, sorted.
 * Anything else (a symlink, a socket) is refused: it could not be sent to a follower.
 */
function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string, prefix: string): void => {
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
      const rel = prefix === '' ? d.name : `${prefix}/${d.name}`;
      if (d.isDirectory()) walk(path.join(dir, d.name), rel);
      else if (d.isFile()) out.push(rel);
      else throw new RangeError(`snapshot entry ${rel} is not a regular file or directory`);
    }
  };
  walk(root, '');
  return out.sort(compareNames);
}

/** Every directory under `root` (not `root` itself), parents before their children. */
function listDirs(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!d.isDirectory()) continue;
      const sub = path.join(dir, d.name);
      out.push(sub);
      walk(sub);
    }
  };
  walk(root);
  return out;
}

/** Reads `file` through once for its size and CRC32C, fsyncing it if `sync`. */
function checksumFile(file: string, name: string, sync: boolean): SnapshotFile {
  const fd = fs.openSync(file, 'r');
  try {
    const buf = new Uint8Array(VERIFY_CHUNK_BYTES);
    let totalBytes = 0;
    let crc = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.byteLength, totalBytes);
      if (n === 0) break;
      crc = crc32c(buf.subarray(0, n), crc);
      totalBytes += n;
    }
    if (sync) fs.fsyncSync(fd);
    return { name, bytes: totalBytes, crc32c: crc };
  } finally {
    fs.closeSync(fd);
  }
}

/** Throws `SnapshotCorruptionError` naming `file` unless it has the size and CRC32C `expected` gives. */
function verifyFile(file: string, expected: SnapshotFile): void {
  let actual: SnapshotFile;
  try {
    actual = checksumFile(file, expected.name, false);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new SnapshotCorruptionError(file, 'the file is missing');
    throw err;
  }
  if (actual.bytes !== expected.bytes) {
    throw new SnapshotCorruptionError(file, `${actual.bytes} bytes, the meta says ${expected.bytes}`);
  }
  if (actual.crc32c !== expected.crc32c) {
    throw new SnapshotCorruptionError(
      file,
      `CRC32C is ${hex(actual.crc32c)}, the meta says ${hex(expected.crc32c)}`,
    );
  }
}

/** Writes `bytes` as the whole of `file`, fsyncing it if `sync`. */
function writeFileFully(file: string, bytes: Uint8Array, sync: boolean): void {
  const fd = fs.openSync(file, 'w');
  try {
    for (let doneBytes = 0; doneBytes < bytes.byteLength; ) {
      doneBytes += fs.writeSync(fd, bytes, doneBytes, bytes.byteLength - doneBytes);
    }
    if (sync) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Makes the entries of directory `dir` durable. */
function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
