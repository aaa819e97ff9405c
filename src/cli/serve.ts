/** `raftline serve`: run one node in this process until SIGINT or SIGTERM. */

import type { Command } from 'commander';
import { InvalidOptionError } from '../main/errors.js';
import { MetricsServer } from '../main/metrics-server.js';
import type { RaftNodeOptions } from '../main/options.js';
import { RaftNode } from '../main/raft-node.js';
import { parseHostPort } from '../shared/address.js';
import { ADMIN_SECRET_ENV, SECRET_ENV } from '../shared/auth.js';
import { fsmModuleUrl } from './fsm-module.js';

/**
 * The numeric `RaftNodeOptions` that `serve` takes as flags. Commander names each
 * flag's value after the option (`--snapshot-interval-s` gives `snapshotIntervalS`), so one
 * name serves both; the node checks the range and applies its default when a flag is absent.
 */
const NUMERIC_FLAGS = [
  ['electionTimeoutMs', '<ms>', 'election timeout (default 1000)'],
  [
    'heartbeatIntervalMs',
    '<ms>',
    'heartbeat interval, at most a third of the election timeout (default 100)',
  ],
  ['segmentBytes', '<bytes>', 'size of each preallocated segment file (default 64 MiB)'],
  ['logWindowBytes', '<bytes>', 'shared memory for recent entries, a power of two (default 32 MiB)'],
  [
    'snapshotIntervalS',
    '<s>',
    'save a snapshot at least this often when anything was applied since the last one (0: never; default 3600)',
  ],
  [
    'snapshotLogBytes',
    '<bytes>',
    'save a snapshot once the log on disk holds this many bytes (0: never; default 128 MiB)',
  ],
  [
    'snapshotLogEntries',
    '<n>',
    'save a snapshot once this many entries were applied since the last one (0: never; default 500000)',
  ],
  [
    'snapshotMinIntervalS',
    '<s>',
    'the byte and entry triggers wait at least this long after the last snapshot (default 5)',
  ],
  [
    'compactionMarginEntries',
    '<n>',
    'entries kept before a snapshot when the log is compacted, so a follower slightly behind catches up from the log (default 10000)',
  ],
  ['snapshotChunkBytes', '<bytes>', 'chunk size when a snapshot is sent to a follower (default 1 MiB)'],
  [
    'snapshotBytesPerSecond',
    '<bytes>',
    'rate a snapshot is sent at, per follower (0: unlimited; default 128 MiB)',
  ],
  [
    'promoteMarginEntries',
    '<n>',
    'a node added by add-peer is promoted to voter once within this many entries of the leader (default 1000)',
  ],
  [
    'maxPendingApplies',
    '<n>',
    'applies waiting at once; more are refused with ERR_RAFT_BUSY (default 10000)',
  ],
  [
    'maxConnections',
    '<n>',
    'connections open at once on the listen port; the last 16 are kept for peers (default 1024)',
  ],
  ['handshakeTimeoutMs', '<ms>', 'a connection with no complete handshake by then is closed (default 5000)'],
  [
    'clientIdleTimeoutMs',
    '<ms>',
    'a client connection with nothing in flight and no traffic for this long is closed (0: never; default 300000)',
  ],
] as const satisfies readonly (readonly [keyof RaftNodeOptions, string, string])[];

type NumericOption = (typeof NUMERIC_FLAGS)[number][0];

/** The options of `serve`, as commander parses them. */
export type ServeOptions = {
  id: string;
  listen: string;
  peers: string;
  dataDir: string;
  fsm: string;
  clusterId: string;
  metrics?: string;
  join: boolean;
  sync: boolean;
  logLevel: string;
  secretFile?: string;
  adminSecretFile?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
} & { [K in NumericOption]?: string };

/** `--snapshot-interval-s` for `snapshotIntervalS`. */
function flagOf(option: string): string {
  if (option === 'stateMachine') return '--fsm';
  if (option === 'sync') return '--no-sync';
  // The TLS files' flags are shorter than their options; an environment variable is its own name.
  if (option === 'tlsCertFile' || option === 'tlsKeyFile' || option === 'tlsCaFile')
    return `--tls-${option.slice(3, -4).toLowerCase()}`;
  if (/^[A-Z_]+$/.test(option)) return option;
  return `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Adds `serve` to the program. */
export function addServeCommand(program: Command): void {
  const cmd = program
    .command('serve')
    .description('run one raftline node until SIGINT or SIGTERM')
    .requiredOption('--id <id>', 'this node id (must be one of --peers)')
    .requiredOption('--listen <host:port>', 'address for peers and clients')
    .requiredOption(
      '--peers <list>',
      'every founding voter: id=host:port,id=host:port,...; with --join, this node and the members to reach',
    )
    .requiredOption('--data-dir <dir>', 'log, raft_meta, snapshots and lock')
    .option(
      '--join',
      'start as a new, empty member of a running cluster and wait to be added ' +
        '(raftline add-peer or add-learner); its state comes from the leader',
    )
    .option('--fsm <name|path>', 'state machine: counter, kv, or a module path', 'counter')
    .option('--cluster-id <id>', 'peers and clients of another cluster id are refused', 'raftline')
    .option('--metrics <host:port>', 'serve Prometheus text at /metrics and JSON at /status')
    .option('--no-sync', 'do not fdatasync (fast, but a machine crash can lose acknowledged writes)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent', 'info')
    .option(
      '--secret-file <file>',
      `the cluster secret (16+ bytes) every peer and client must prove (default: $${SECRET_ENV}, else none)`,
    )
    .option(
      '--admin-secret-file <file>',
      `the secret clients need for transfer, membership and snapshot (default: $${ADMIN_SECRET_ENV}, else none)`,
    )
    .option('--tls-cert <file>', "TLS: this node's certificate (PEM; with --tls-key and --tls-ca)")
    .option('--tls-key <file>', "TLS: this node's private key (PEM)")
    .option('--tls-ca <file>', "TLS: the CA that signed every node's certificate (PEM)");
  for (const [option, value, description] of NUMERIC_FLAGS) {
    cmd.option(`${flagOf(option)} ${value}`, description);
  }
  cmd.action(async (o: ServeOptions) => {
    await serve(o);
  });
}

/** The value of a numeric flag; a value that is not a number fails, naming the flag. */
function num(option: NumericOption, value: string): number {
  const n = value.trim() === '' ? Number.NaN : Number(value);
  if (!Number.isFinite(n)) {
    throw Object.assign(new Error(`${flagOf(option)}: not a number: ${JSON.stringify(value)}`), {
      code: 'ERR_RAFT_INVALID_OPTION',
    });
  }
  return n;
}

/**
 * The node's options from the flags. A value that is not a number fails
 * (ERR_RAFT_INVALID_OPTION) naming its flag; the node checks the ranges.
 */
export function nodeOptionsOf(o: ServeOptions): RaftNodeOptions {
  const numeric: Partial<Record<NumericOption, number>> = {};
  for (const [option] of NUMERIC_FLAGS) {
    const value = o[option];
    if (value !== undefined) numeric[option] = num(option, value);
  }
  return {
    id: o.id,
    listen: o.listen,
    peers: o.peers.split(',').filter((p) => p.length > 0),
    dataDir: o.dataDir,
    stateMachine: fsmModuleUrl(o.fsm),
    clusterId: o.clusterId,
    sync: o.sync,
    logLevel: o.logLevel as 'info',
    ...(o.join ? { join: true } : {}),
    ...(o.secretFile !== undefined ? { secretFile: o.secretFile } : {}),
    ...(o.adminSecretFile !== undefined ? { adminSecretFile: o.adminSecretFile } : {}),
    ...(o.tlsCert !== undefined ? { tlsCertFile: o.tlsCert } : {}),
    ...(o.tlsKey !== undefined ? { tlsKeyFile: o.tlsKey } : {}),
    ...(o.tlsCa !== undefined ? { tlsCaFile: o.tlsCa } : {}),
    ...numeric,
  };
}

async function serve(o: ServeOptions): Promise<void> {
  // The signal handlers come first. Installed after the "listening on" line instead, a
  // SIGTERM sent as soon as that line is read could arrive before them and kill the
  // process outright, skipping the clean shutdown:
  //   1. serve writes "listening on" and is descheduled;
  //   2. the parent reads the line and sends SIGTERM;
  //   3. no handler yet: the default action ends the process.
  // A signal during start is remembered, and the node shut down once it has started.
  let node: RaftNode | null = null;
  let metrics: MetricsServer | null = null;
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping || node === null) {
      stopping = true;
      return;
    }
    stopping = true;
    await metrics?.close();
    await node.shutdown();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
  try {
    node = await RaftNode.start(nodeOptionsOf(o));
  } catch (err) {
    // The node names the option as the API spells it (`snapshotChunkBytes`); say which
    // flag that is, unless the message already does.
    if (err instanceof InvalidOptionError && !err.message.includes(flagOf(err.option))) {
      err.message = `${flagOf(err.option)}: ${err.message}`;
    }
    throw err;
  }
  if (stopping) {
    // A signal came while the node was starting.
    stopping = false;
    await stop();
    return;
  }
  if (o.metrics) {
    const { host, port } = parseHostPort(o.metrics);
    metrics = new MetricsServer({ host, port, source: node });
    const bound = await metrics.listen();
    process.stdout.write(`metrics on http://${bound.host}:${bound.port}/metrics\n`);
  }
  process.stdout.write(`raftline node ${node.id} (pid ${process.pid}) listening on ${node.address}\n`);
  if (o.join) {
    process.stdout.write(
      `joining: waiting to be added (raftline add-peer ${node.id}=${node.address}, or add-learner)\n`,
    );
  }
}
