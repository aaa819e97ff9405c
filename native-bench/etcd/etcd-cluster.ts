/**
 * A 3-member etcd cluster on 127.0.0.1, started the way ../shared/peers/etcd.sh starts it:
 * Debian's etcd-server (3.4), client ports 23791-23793, peer ports 23801-23803, the same
 * flags (zap logger at warn, an 8 GiB backend quota), data on the disk (fsync on: etcd
 * 3.4 always fdatasyncs its WAL). `stop()` ends exactly the processes `start()` spawned,
 * by pid: SIGTERM, then SIGKILL after a grace period.
 */

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const ETCD_CLIENT_PORTS = [23791, 23792, 23793] as const;
export const ETCD_PEER_PORTS = [23801, 23802, 23803] as const;

/** A reason why etcd cannot run here: printed as is, and the run exits non-zero. */
export class EtcdSetupError extends Error {
  override readonly name = 'EtcdSetupError';
}

/** The `etcd` binary on PATH, or null. */
function findOnPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

/**
 * The etcd binary and its version, installing Debian's etcd-server when it is missing (as
 * etcd.sh does: apt-get install, then update and retry). Throws `EtcdSetupError` saying
 * why when that is not possible.
 */
export function ensureEtcd(log: (line: string) => void): { bin: string; version: string } {
  let bin = findOnPath('etcd');
  if (!bin) {
    if (process.platform !== 'linux' || !findOnPath('apt-get')) {
      throw new EtcdSetupError('etcd is not installed and there is no apt-get here to install etcd-server');
    }
    if (process.getuid?.() !== 0) {
      throw new EtcdSetupError('etcd is not installed; run as root or `apt-get install etcd-server` first');
    }
    log('etcd not found: apt-get install etcd-server');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = (): boolean =>
      spawnSync('apt-get', ['install', '-y', '-qq', 'etcd-server'], { env, stdio: 'ignore' }).status === 0;
    if (!install()) {
      spawnSync('apt-get', ['update', '-qq'], { env, stdio: 'ignore' });
      if (!install()) throw new EtcdSetupError('apt-get install etcd-server failed');
    }
    bin = findOnPath('etcd');
    if (!bin) throw new EtcdSetupError('etcd-server was installed but no etcd binary is on PATH');
  }
  const out = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  const version = /etcd Version:\s*(\S+)/.exec(out.stdout ?? '')?.[1];
  if (!version)
    throw new EtcdSetupError(`${bin} --version did not name a version: ${out.stderr || out.error}`);
  return { bin, version };
}

/** Whether something accepts connections on 127.0.0.1:port. */
function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A running cluster of three etcd processes. */
export class EtcdCluster {
  readonly endpoints: readonly string[] = ETCD_CLIENT_PORTS.map((p) => `http://127.0.0.1:${p}`);
  private readonly children: ChildProcess[];
  private readonly dataRoot: string;
  private stopping: Promise<void> | null = null;

  private constructor(children: ChildProcess[], dataRoot: string) {
    this.children = children;
    this.dataRoot = dataRoot;
  }

  /** The etcd processes' pids. */
  get pids(): number[] {
    return this.children.map((c) => c.pid).filter((p): p is number => p !== undefined);
  }

  /**
   * Starts three members on a fresh `dataRoot` (removed first) and waits until every one
   * reports healthy and a leader is elected. Their output is appended to `logDir/mN.log`.
   * `onSpawned` receives the cluster as soon as its processes exist, so that a caller
   * interrupted meanwhile can stop them.
   */
  static async start(o: {
    bin: string;
    dataRoot: string;
    logDir: string;
    token: string;
    onSpawned?: (cluster: EtcdCluster) => void;
  }): Promise<EtcdCluster> {
    for (const port of [...ETCD_CLIENT_PORTS, ...ETCD_PEER_PORTS]) {
      if (await portInUse(port)) {
        throw new EtcdSetupError(
          `port ${port} on 127.0.0.1 is already in use (another etcd, perhaps ../shared/peers/etcd.sh, is running?)`,
        );
      }
    }
    fs.rmSync(o.dataRoot, { recursive: true, force: true });
    fs.mkdirSync(o.dataRoot, { recursive: true });
    fs.mkdirSync(o.logDir, { recursive: true });
    const initialCluster = ETCD_PEER_PORTS.map((p, i) => `m${i + 1}=http://127.0.0.1:${p}`).join(',');
    const children: ChildProcess[] = [];
    const exited: string[] = [];
    for (let i = 0; i < 3; i++) {
      const name = `m${i + 1}`;
      const client = `http://127.0.0.1:${ETCD_CLIENT_PORTS[i]}`;
      const peer = `http://127.0.0.1:${ETCD_PEER_PORTS[i]}`;
      const logFd = fs.openSync(path.join(o.logDir, `${name}.log`), 'a');
      const child = spawn(
        o.bin,
        [
          `--name=${name}`,
          `--data-dir=${path.join(o.dataRoot, name)}`,
          `--listen-client-urls=${client}`,
          `--advertise-client-urls=${client}`,
          `--listen-peer-urls=${peer}`,
          `--initial-advertise-peer-urls=${peer}`,
          `--initial-cluster=${initialCluster}`,
          '--initial-cluster-state=new',
          `--initial-cluster-token=${o.token}`,
          '--logger=zap',
          '--log-level=warn',
          '--quota-backend-bytes=8589934592',
        ],
        { stdio: ['ignore', logFd, logFd] },
      );
      fs.closeSync(logFd);
      child.once('exit', (code, signal) => exited.push(`${name} exited (${signal ?? `code ${code}`})`));
      child.once('error', (err) => exited.push(`${name}: ${err.message}`));
      children.push(child);
    }
    const cluster = new EtcdCluster(children, o.dataRoot);
    o.onSpawned?.(cluster);
    try {
      const deadline = performance.now() + 30_000;
      for (;;) {
        if (exited.length > 0) {
          throw new EtcdSetupError(`etcd did not start: ${exited.join('; ')} (see ${o.logDir}/m*.log)`);
        }
        if ((await cluster.healthy()) && (await cluster.leaderEndpoint().catch(() => null))) break;
        if (performance.now() > deadline) {
          throw new EtcdSetupError(`etcd cluster not healthy within 30 s (see ${o.logDir}/m*.log)`);
        }
        await sleep(300);
      }
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Whether every member answers `/health` with `"health":"true"`. */
  private async healthy(): Promise<boolean> {
    const answers = await Promise.all(
      this.endpoints.map((e) =>
        fetch(`${e}/health`, { signal: AbortSignal.timeout(1000) })
          .then((r) => r.json() as Promise<{ health?: string }>)
          .then((j) => j.health === 'true')
          .catch(() => false),
      ),
    );
    return answers.every(Boolean);
  }

  /** The client URL of the member that leads now (from the maintenance status of each). */
  async leaderEndpoint(): Promise<string> {
    for (const e of this.endpoints) {
      const r = await fetch(`${e}/v3/maintenance/status`, {
        method: 'POST',
        body: '{}',
        signal: AbortSignal.timeout(2000),
      });
      const s = (await r.json()) as { header?: { member_id?: string }; leader?: string };
      if (s.leader && s.leader !== '0' && s.header?.member_id === s.leader) return e;
    }
    throw new Error('no etcd member says it leads');
  }

  /**
   * Ends the processes this cluster started, one after the other (SIGTERM, SIGKILL after
   * `graceMs`), then removes its data; a second call waits for the first. One at a time because a leader stopping while its
   * followers stop too waits ~7 s for a leadership transfer that cannot happen; stopped
   * in turn, each member hands over at once and the whole takes well under a second.
   */
  stop(graceMs = 10_000): Promise<void> {
    this.stopping ??= this.stopInTurn(graceMs);
    return this.stopping;
  }

  private async stopInTurn(graceMs: number): Promise<void> {
    for (const c of this.children) {
      await new Promise<void>((resolve) => {
        if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) {
          resolve();
          return;
        }
        const timer = setTimeout(() => c.kill('SIGKILL'), graceMs);
        c.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        c.kill('SIGTERM');
      });
    }
    // GBs of WAL and bolt files after a long run.
    fs.rmSync(this.dataRoot, { recursive: true, force: true });
  }

  /** Last resort at process exit: SIGKILL whatever is still running, synchronously. */
  killNow(): void {
    for (const c of this.children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
}
