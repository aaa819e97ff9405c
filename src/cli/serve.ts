/** `raftline serve`: run one node in this process until SIGINT or SIGTERM. */

import type { Command } from 'commander';
import { MetricsServer } from '../main/metrics-server.js';
import { RaftNode } from '../main/raft-node.js';
import { parseHostPort } from '../shared/address.js';
import { fsmModuleUrl } from './fsm-module.js';

/** The options of `serve`, as commander parses them. */
export interface ServeOptions {
  id: string;
  listen: string;
  peers: string;
  dataDir: string;
  fsm: string;
  clusterId: string;
  metrics?: string;
  electionTimeoutMs: string;
  heartbeatIntervalMs: string;
  sync: boolean;
  logLevel: string;
  segmentBytes?: string;
  logWindowBytes?: string;
}

/** Adds `serve` to the program. */
export function addServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run one raftline node until SIGINT or SIGTERM')
    .requiredOption('--id <id>', 'this node id (must be one of --peers)')
    .requiredOption('--listen <host:port>', 'address for peers and clients')
    .requiredOption('--peers <list>', 'every voter: id=host:port,id=host:port,...')
    .requiredOption('--data-dir <dir>', 'log, raft_meta and lock')
    .option('--fsm <name|path>', 'state machine: counter, kv, or a module path', 'counter')
    .option('--cluster-id <id>', 'peers and clients of another cluster id are refused', 'raftline')
    .option('--metrics <host:port>', 'serve Prometheus text at /metrics and JSON at /status')
    .option('--election-timeout-ms <ms>', 'election timeout', '1000')
    .option('--heartbeat-interval-ms <ms>', 'heartbeat interval', '100')
    .option('--no-sync', 'do not fdatasync (fast, but a machine crash can lose acknowledged writes)')
    .option('--segment-bytes <bytes>', 'size of each preallocated segment file')
    .option('--log-window-bytes <bytes>', 'shared memory for recent entries (a power of two)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', 'info')
    .action(async (o: ServeOptions) => {
      await serve(o);
    });
}

function num(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n))
    throw Object.assign(new Error(`--${name}: not a number: ${value}`), { code: 'ERR_RAFT_INVALID_OPTION' });
  return n;
}

async function serve(o: ServeOptions): Promise<void> {
  const segmentBytes = num('segment-bytes', o.segmentBytes);
  const logWindowBytes = num('log-window-bytes', o.logWindowBytes);
  const node = await RaftNode.start({
    id: o.id,
    listen: o.listen,
    peers: o.peers.split(',').filter((p) => p.length > 0),
    dataDir: o.dataDir,
    stateMachine: fsmModuleUrl(o.fsm),
    clusterId: o.clusterId,
    electionTimeoutMs: num('election-timeout-ms', o.electionTimeoutMs) as number,
    heartbeatIntervalMs: num('heartbeat-interval-ms', o.heartbeatIntervalMs) as number,
    sync: o.sync,
    logLevel: o.logLevel as 'info',
    ...(segmentBytes !== undefined ? { segmentBytes } : {}),
    ...(logWindowBytes !== undefined ? { logWindowBytes } : {}),
  });
  let metrics: MetricsServer | null = null;
  if (o.metrics) {
    const { host, port } = parseHostPort(o.metrics);
    metrics = new MetricsServer({ host, port, source: node });
    const bound = await metrics.listen();
    process.stdout.write(`metrics on http://${bound.host}:${bound.port}/metrics\n`);
  }
  process.stdout.write(`raftline node ${node.id} (pid ${process.pid}) listening on ${node.address}\n`);
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await metrics?.close();
    await node.shutdown();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}
