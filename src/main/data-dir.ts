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
 * the founding voters. Until snapshots exist the founders' configuration is the log's
 * starting point, so a restart with a different `peers` list or cluster id would
 * silently build a different log: it is refused instead.
 */
export interface ClusterRecord {
  readonly clusterId: string;
  readonly voters: readonly string[];
}

/** Reads the record, or writes it on first start; throws on a mismatch naming the option. */
export function checkClusterRecord(
  dataDir: string,
  want: ClusterRecord,
  onMismatch: (option: string, message: string) => Error,
): void {
  const file = dataDirPaths(dataDir).cluster;
  if (!fs.existsSync(file)) {
    const tmp = `${file}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(want)}\n`);
    const fd = fs.openSync(tmp, 'r');
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, file);
    return;
  }
  const have = JSON.parse(fs.readFileSync(file, 'utf8')) as ClusterRecord;
  if (have.clusterId !== want.clusterId) {
    throw onMismatch(
      'clusterId',
      `${dataDir} belongs to cluster '${have.clusterId}', not '${want.clusterId}'`,
    );
  }
  const a = [...have.voters].sort().join(',');
  const b = [...want.voters].sort().join(',');
  if (a !== b) throw onMismatch('peers', `${dataDir} was created with voters ${a}, not ${b}`);
}
