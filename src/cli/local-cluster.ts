/**
 * A local cluster of `raftline serve` child processes on 127.0.0.1, for `raftline
 * cluster` (trying things out) and `raftline bench` without `--cluster`. Each node is its
 * own OS process with its own threads and data directory; `stop()` ends each with SIGTERM
 * (a clean shutdown) and waits for it.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

/** How to start a local cluster. */
export interface LocalClusterOptions {
  nodes: number;
  /** Parent of the nodes' data directories; a temporary one (removed by `stop`) if absent. */
  dir?: string;
  /** Node i listens on basePort + i - 1; free ports if absent. */
  basePort?: number;
  fsm: string;
  sync: boolean;
  electionTimeoutMs: number;
  heartbeatIntervalMs: number;
  logLevel: string;
  clusterId?: string;
  /** Where the nodes' stderr (their log lines) goes: this process's stderr, or nowhere. */
  showLogs: boolean;
}

/** One node of a local cluster. */
export interface LocalMember {
  readonly id: string;
  readonly address: string;
  readonly dataDir: string;
  child: ChildProcess;
}

/** A free port on 127.0.0.1, found by binding port 0 and closing again. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A running local cluster. */
export class LocalCluster {
  readonly members: LocalMember[];
  readonly dir: string;
  private readonly temporary: boolean;

  private constructor(members: LocalMember[], dir: string, temporary: boolean) {
    this.members = members;
    this.dir = dir;
    this.temporary = temporary;
  }

  /** The nodes' addresses, host:port. */
  get endpoints(): string[] {
    return this.members.map((m) => m.address);
  }

  /** Starts every node and waits until each listens. */
  static async start(o: LocalClusterOptions): Promise<LocalCluster> {
    const temporary = o.dir === undefined;
    const dir = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-'));
    const ports: number[] = [];
    for (let i = 0; i < o.nodes; i++)
      ports.push(o.basePort !== undefined ? o.basePort + i : await freePort());
    const peers = ports.map((p, i) => `n${i + 1}=127.0.0.1:${p}`).join(',');
    const members: LocalMember[] = [];
    const started: Promise<void>[] = [];
    for (let i = 0; i < o.nodes; i++) {
      const id = `n${i + 1}`;
      const dataDir = path.join(dir, id);
      const args = [
        MAIN,
        'serve',
        '--id',
        id,
        '--listen',
        `127.0.0.1:${ports[i]}`,
        '--peers',
        peers,
        '--data-dir',
        dataDir,
        '--fsm',
        o.fsm,
        '--election-timeout-ms',
        String(o.electionTimeoutMs),
        '--heartbeat-interval-ms',
        String(o.heartbeatIntervalMs),
        '--log-level',
        o.logLevel,
        ...(o.clusterId ? ['--cluster-id', o.clusterId] : []),
        ...(o.sync ? [] : ['--no-sync']),
      ];
      const child = spawn(process.execPath, args, {
        stdio: ['ignore', 'pipe', o.showLogs ? 'inherit' : 'ignore'],
      });
      const member: LocalMember = { id, address: `127.0.0.1:${ports[i]}`, dataDir, child };
      members.push(member);
      started.push(
        new Promise<void>((resolve, reject) => {
          let out = '';
          child.stdout?.on('data', (chunk: Buffer) => {
            out += chunk.toString();
            if (out.includes('listening on')) resolve();
          });
          child.once('exit', (code) =>
            reject(new Error(`node ${id} exited with code ${code} before it listened`)),
          );
        }),
      );
    }
    const cluster = new LocalCluster(members, dir, temporary);
    try {
      await Promise.all(started);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** Stops every node with SIGTERM (SIGKILL after `graceMs`), then removes a temporary directory. */
  async stop(graceMs = 5000): Promise<void> {
    await Promise.all(
      this.members.map(
        (m) =>
          new Promise<void>((resolve) => {
            if (m.child.exitCode !== null || m.child.signalCode !== null) {
              resolve();
              return;
            }
            const timer = setTimeout(() => m.child.kill('SIGKILL'), graceMs);
            m.child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            m.child.kill('SIGTERM');
          }),
      ),
    );
    if (this.temporary) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
