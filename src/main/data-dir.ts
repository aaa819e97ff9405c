/**
 * The data directory's layout (DESIGN.md, "On disk") and its lock. The lock is an
 * exclusive `flock` on `<dataDir>/LOCK` (fs-ext), taken without waiting: a second node on
 * the same directory fails at once. The kernel drops it when the process dies, so a
 * `kill -9` never leaves a stale lock behind.
 */

import fs from 'node:fs';
import path from 'node:path';
import { flockSync } from 'fs-ext';
import { DataDirLockedError } from './errors.js';

/** Paths inside one data directory. */
export function dataDirPaths(dataDir: string): { lock: string; log: string; cluster: string } {
  return {
    lock: path.join(dataDir, 'LOCK'),
    log: path.join(dataDir, 'log'),
    cluster: path.join(dataDir, 'cluster.json'),
  };
}

/** A held lock on a data directory. */
export class DataDirLock {
  private fd: number | null;

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** Creates `dataDir` if needed and locks it, or throws DataDirLockedError. */
  static acquire(dataDir: string): DataDirLock {
    fs.mkdirSync(dataDir, { recursive: true });
    const fd = fs.openSync(dataDirPaths(dataDir).lock, 'w');
    try {
      flockSync(fd, 'exnb');
    } catch (err) {
      fs.closeSync(fd);
      const code = (err as { code?: string }).code;
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK') throw new DataDirLockedError(dataDir);
      throw err;
    }
    fs.writeSync(fd, `${process.pid}\n`);
    return new DataDirLock(fd);
  }

  release(): void {
    if (this.fd === null) return;
    try {
      flockSync(this.fd, 'un');
    } finally {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}

/**
 * The cluster a data directory belongs to, recorded on first start: the cluster id and
 * the founding voters (none for a node that joined a running cluster). The founders are
 * the log's starting point (the bootstrap configuration at index 1), so they come from
 * this record on every later start, never from the `peers` option: after membership
 * changes `peers` only supplies addresses. A different cluster id is refused.
 */
export interface ClusterRecord {
  readonly clusterId: string;
  readonly voters: readonly string[];
}

/** Reads the record, or writes `want` on first start; returns the record in force. Throws on a cluster id mismatch. */
export function checkClusterRecord(
  dataDir: string,
  want: ClusterRecord,
  onMismatch: (option: string, message: string) => Error,
): ClusterRecord {
  const file = dataDirPaths(dataDir).cluster;
  if (!fs.existsSync(file)) {
    writeFileAtomically(file, `${JSON.stringify(want)}\n`);
    return want;
  }
  const have = JSON.parse(fs.readFileSync(file, 'utf8')) as ClusterRecord;
  if (have.clusterId !== want.clusterId) {
    throw onMismatch(
      'clusterId',
      `${dataDir} belongs to cluster '${have.clusterId}', not '${want.clusterId}'`,
    );
  }
  return have;
}

/** Replaces `file` with `text`: a temporary file, fsynced, renamed over it, then the directory fsynced. */
export function writeFileAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, text);
  const fd = fs.openSync(tmp, 'r');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  const dir = fs.openSync(path.dirname(file), 'r');
  fs.fsyncSync(dir);
  fs.closeSync(dir);
}

/**
 * Addresses of members this node learned after it started (nodes added to the cluster):
 * `<dataDir>/addresses.json`, `{ id: "host:port" }`. A restart needs them to reach members
 * its `peers` option does not list.
 */
export function readAddressBook(dataDir: string): Record<string, string> {
  try {
    return JSON.parse(fs.readFileSync(path.join(dataDir, 'addresses.json'), 'utf8')) as Record<
      string,
      string
    >;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
}

export function writeAddressBook(dataDir: string, book: Record<string, string>): void {
  writeFileAtomically(path.join(dataDir, 'addresses.json'), `${JSON.stringify(book)}\n`);
}
