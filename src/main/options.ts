/**
 * `RaftNode.start` options: their defaults and their validation. A wrong option fails at
 * start with an `InvalidOptionError` that names it; an unknown option is refused too
 * (a typo such as `electionTimeout` must not silently fall back to a default).
 */

import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  AddressError,
  type HostPort,
  type PeerSpec,
  parseHostPort,
  parsePeerSpec,
} from '../shared/address.js';
import { ADMIN_SECRET_ENV, loadSecret, SECRET_ENV, type Secret } from '../shared/auth.js';
import { readPemFile, TlsMaterial } from '../shared/tls-config.js';
import { InvalidOptionError } from './errors.js';

/** What a caller passes to `RaftNode.start`. */
export interface RaftNodeOptions {
  /** This node's id; must appear in `peers`. */
  id: string;
  /** Where the log, `raft_meta` and the lock live. */
  dataDir: string;
  /** host:port the peer server listens on (port 0 picks a free one, for tests of one node). */
  listen: string;
  /**
   * Every founding voter as `id=host:port`, this node included. On a restart the
   * configuration comes from the data directory (snapshot and log) and this list only
   * supplies addresses; with `join` it lists the members to reach and this node.
   */
  peers: string[];
  /**
   * Start as a new, empty member of a running cluster (etcd's `initial-cluster-state
   * existing`): no founding configuration; the node waits for the leader to add it
   * (`addPeer`/`addLearner`) and send it a snapshot. Default false.
   */
  join?: boolean;
  /** The user's state machine module (file path or URL); its default export is a class or factory. */
  stateMachine: string | URL;
  /** Passed to the state machine factory as `ctx.options`. Must be structured-cloneable. */
  stateMachineOptions?: Record<string, unknown>;
  /** Peers of another cluster id are refused. Default 'raftline'. */
  clusterId?: string;
  /** A follower that hears nothing for this long (randomised up to twice it) campaigns. Default 1000. */
  electionTimeoutMs?: number;
  /** A leader sends heartbeats this often. Default 100; at most electionTimeoutMs / 3. */
  heartbeatIntervalMs?: number;
  /**
   * Default true: every acknowledged write was `fdatasync`ed first. false skips the syncs:
   * much faster, but a machine crash (not just a process crash) can lose acknowledged
   * writes, and with them Raft's guarantees. For people who choose speed over durability.
   */
  sync?: boolean;
  /** Size of each preallocated segment file. Default 64 MiB. */
  segmentBytes?: number;
  /**
   * Shared memory for recent encoded entries (a power of two). Default 32 MiB: seconds of
   * entries at full load; entries that find it full travel inline, and a follower behind
   * it is served from the segment files.
   */
  logWindowBytes?: number;
  /**
   * Most `apply` calls waiting at once; beyond it `apply` fails with ERR_RAFT_BUSY. Default
   * 10000: throughput stops growing at a few thousand waiting (test/cluster/overload.test.ts),
   * so more only adds queueing delay, and at ten times the load a node can carry 100000
   * made its goodput fall to 40 % of its peak while 10000 kept it at the peak.
   */
  maxPendingApplies?: number;
  /** An `apply` or `read` not answered in this time fails with ERR_RAFT_TIMEOUT. Default 10000. */
  requestTimeoutMs?: number;
  /** How long `shutdown()` waits for pending requests before failing them. Default 2000. */
  shutdownDrainMs?: number;
  /** The most entry bytes in one AppendEntries. Default 1 MiB. */
  maxAppendBytes?: number;
  /** AppendEntries in flight per follower. Default 256. */
  maxInflightAppends?: number;
  /** Save a snapshot at least this often when anything was applied since the last one (0: never). Default 3600. */
  snapshotIntervalS?: number;
  /** Save a snapshot once the log on disk holds this many bytes of records (0: never). Default 128 MiB. */
  snapshotLogBytes?: number;
  /** Save a snapshot once this many entries were applied since the last one (0: never). Default 500000. */
  snapshotLogEntries?: number;
  /** The byte and entry triggers wait at least this long after the last snapshot. Default 5. */
  snapshotMinIntervalS?: number;
  /**
   * Entries kept before a snapshot's index when the log is compacted, so that a follower
   * only slightly behind catches up from the log rather than by a snapshot. Default 10000.
   */
  compactionMarginEntries?: number;
  /** Bytes per chunk when a snapshot is streamed to a follower. Default 1 MiB. */
  snapshotChunkBytes?: number;
  /** Bytes per second a snapshot is streamed at, per follower (0: unlimited). Default 128 MiB. */
  snapshotBytesPerSecond?: number;
  /** A learner added by `addPeer` is promoted to voter once within this many entries of the leader. Default 1000. */
  promoteMarginEntries?: number;
  /** pino level for this node's log lines on stderr. Default 'info'. */
  logLevel?: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /**
   * A file holding the cluster secret (at least 16 bytes; trailing white space is cut).
   * Every peer, snapshot stream and client must then prove it, and the node proves it to
   * them (`src/shared/auth.ts`). Default: the environment variable RAFTLINE_SECRET, else none.
   */
  secretFile?: string;
  /**
   * A file holding the admin secret: only clients proving it may transfer leadership,
   * change membership or ask for a snapshot (others get ERR_RAFT_FORBIDDEN). Default: the
   * environment variable RAFTLINE_ADMIN_SECRET, else none (every client may).
   */
  adminSecretFile?: string;
  /**
   * TLS on the listen port: this node's certificate and key, and the CA that signed every
   * node's (PEM files; all three or none). Peers then authenticate each other by
   * certificate (mutual TLS) and clients check the node against the CA. Default none.
   */
  tlsCertFile?: string;
  tlsKeyFile?: string;
  tlsCaFile?: string;
  /**
   * Most client sessions (exactly-once writes of `RaftClient`s) kept; beyond it the least
   * recently written one is evicted, and its client's next write is refused with
   * ERR_RAFT_SESSION_EXPIRED. The same on every node. Default 10000.
   */
  maxClientSessions?: number;
  /**
   * A client session with no write for this long, by the leaders' clocks as stamped in the
   * log, expires. The same on every node. Default 3600000 (one hour).
   */
  clientSessionTimeoutMs?: number;
  /**
   * Most connections open at once on the listen port (peers, clients, snapshot streams and
   * connections still shaking hands); one more is closed as soon as it is accepted, so a
   * flood of connections cannot exhaust the process's file descriptors. The last
   * `PEER_RESERVED_CONNECTIONS` (16) are kept from clients, for peers and snapshot
   * streams. Default 1024 (the usual `ulimit -n`), at least 32.
   */
  maxConnections?: number;
  /** A connection that has not completed its handshake (and proof) in this time is closed. Default 5000. */
  handshakeTimeoutMs?: number;
  /**
   * A client connection with no request in flight and no traffic for this long is closed
   * (a `RaftClient` reconnects on its next request). 0: never. Default 300000 (5 minutes).
   */
  clientIdleTimeoutMs?: number;
}

/** Options after defaults and checks. */
export interface ResolvedOptions {
  readonly id: string;
  readonly dataDir: string;
  readonly listen: HostPort;
  readonly peers: readonly PeerSpec[];
  readonly stateMachine: string;
  readonly stateMachineOptions: Record<string, unknown>;
  readonly clusterId: string;
  readonly electionTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly sync: boolean;
  readonly segmentBytes: number;
  readonly logWindowBytes: number;
  readonly maxPendingApplies: number;
  readonly requestTimeoutMs: number;
  readonly shutdownDrainMs: number;
  readonly maxAppendBytes: number;
  readonly maxInflightAppends: number;
  readonly join: boolean;
  readonly snapshotIntervalS: number;
  readonly snapshotLogBytes: number;
  readonly snapshotLogEntries: number;
  readonly snapshotMinIntervalS: number;
  readonly compactionMarginEntries: number;
  readonly snapshotChunkBytes: number;
  readonly snapshotBytesPerSecond: number;
  readonly promoteMarginEntries: number;
  readonly logLevel: string;
  /** The cluster secret, or null. Prints as `[secret]`. */
  readonly secret: Secret | null;
  /** The admin secret, or null. Prints as `[secret]`. */
  readonly adminSecret: Secret | null;
  /** TLS on the listen port, or null. The key never prints. */
  readonly tls: TlsMaterial | null;
  readonly maxClientSessions: number;
  readonly clientSessionTimeoutMs: number;
  readonly maxConnections: number;
  readonly handshakeTimeoutMs: number;
  readonly clientIdleTimeoutMs: number;
}

const KNOWN = new Set([
  'id',
  'dataDir',
  'listen',
  'peers',
  'stateMachine',
  'stateMachineOptions',
  'clusterId',
  'electionTimeoutMs',
  'heartbeatIntervalMs',
  'sync',
  'segmentBytes',
  'logWindowBytes',
  'maxPendingApplies',
  'requestTimeoutMs',
  'shutdownDrainMs',
  'maxAppendBytes',
  'maxInflightAppends',
  'join',
  'snapshotIntervalS',
  'snapshotLogBytes',
  'snapshotLogEntries',
  'snapshotMinIntervalS',
  'compactionMarginEntries',
  'snapshotChunkBytes',
  'snapshotBytesPerSecond',
  'promoteMarginEntries',
  'logLevel',
  'secretFile',
  'adminSecretFile',
  'tlsCertFile',
  'tlsKeyFile',
  'tlsCaFile',
  'maxClientSessions',
  'clientSessionTimeoutMs',
  'maxConnections',
  'handshakeTimeoutMs',
  'clientIdleTimeoutMs',
]);
const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

function int(o: Record<string, unknown>, name: string, dflt: number, min: number, max: number): number {
  // Only an absent option takes the default: an explicit null is a mistake to report.
  const v = o[name] === undefined ? dflt : o[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new InvalidOptionError(name, `must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function str(o: Record<string, unknown>, name: string, dflt?: string): string {
  const v = o[name] === undefined ? dflt : o[name];
  if (typeof v !== 'string' || v.length === 0) {
    throw new InvalidOptionError(name, `must be a non-empty string, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** The secret in the file named by option `name`, else in environment variable `envName`, else null. */
function secretOption(o: Record<string, unknown>, name: string, envName: string): Secret | null {
  const file = o[name] === undefined ? undefined : str(o, name);
  try {
    return loadSecret(file, envName);
  } catch (err) {
    throw new InvalidOptionError(file === undefined ? envName : name, (err as Error).message);
  }
}

/** The PEM files of `tlsCertFile`, `tlsKeyFile` and `tlsCaFile`: all three, or none (null). */
function tlsOption(o: Record<string, unknown>): TlsMaterial | null {
  const names = ['tlsCertFile', 'tlsKeyFile', 'tlsCaFile'] as const;
  const given = names.filter((n) => o[n] !== undefined);
  if (given.length === 0) return null;
  const missing = names.find((n) => o[n] === undefined);
  if (missing !== undefined) {
    throw new InvalidOptionError(missing, `is needed with ${given.join(' and ')}: TLS takes all three files`);
  }
  const [cert, key, ca] = names.map((n) => {
    try {
      return readPemFile(str(o, n), n === 'tlsCertFile' ? 'certificate' : n === 'tlsKeyFile' ? 'key' : 'CA');
    } catch (err) {
      if (err instanceof InvalidOptionError) throw err;
      throw new InvalidOptionError(n, (err as Error).message);
    }
  }) as [Uint8Array, Uint8Array, Uint8Array];
  return new TlsMaterial(cert, key, ca);
}

/** Applies defaults and checks every option; throws InvalidOptionError naming the first bad one. */
export function resolveOptions(input: RaftNodeOptions): ResolvedOptions {
  if (input === null || typeof input !== 'object')
    throw new InvalidOptionError('options', 'must be an object');
  const o = input as unknown as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!KNOWN.has(key)) throw new InvalidOptionError(key, 'is not a RaftNode option');
  }
  const id = str(o, 'id');
  const dataDir = path.resolve(str(o, 'dataDir'));
  let listen: HostPort;
  try {
    listen = parseHostPort(str(o, 'listen'));
  } catch (err) {
    if (err instanceof AddressError) throw new InvalidOptionError('listen', err.message);
    throw err;
  }
  if (!Array.isArray(o.peers) || o.peers.length === 0) {
    throw new InvalidOptionError('peers', 'must be a non-empty array of "id=host:port"');
  }
  const peers: PeerSpec[] = [];
  for (const spec of o.peers) {
    if (typeof spec !== 'string')
      throw new InvalidOptionError('peers', `entries must be strings, got ${JSON.stringify(spec)}`);
    let p: PeerSpec;
    try {
      p = parsePeerSpec(spec);
    } catch (err) {
      if (err instanceof AddressError) throw new InvalidOptionError('peers', err.message);
      throw err;
    }
    if (peers.some((q) => q.id === p.id))
      throw new InvalidOptionError('peers', `node id ${p.id} appears twice`);
    peers.push(p);
  }
  if (!peers.some((p) => p.id === id))
    throw new InvalidOptionError('peers', `must include this node's id ${id}`);
  const sm = o.stateMachine;
  let stateMachine: string;
  if (sm instanceof URL) stateMachine = sm.href;
  else if (typeof sm === 'string' && sm.length > 0) {
    stateMachine = /^[a-z]+:/.test(sm) ? sm : pathToFileURL(path.resolve(sm)).href;
  } else throw new InvalidOptionError('stateMachine', 'must be a module path or URL');
  if (stateMachine.startsWith('file:')) fileURLToPath(stateMachine);
  const smOptions = o.stateMachineOptions === undefined ? {} : o.stateMachineOptions;
  if (smOptions === null || typeof smOptions !== 'object') {
    throw new InvalidOptionError('stateMachineOptions', 'must be an object');
  }
  const heartbeatIntervalMs = int(o, 'heartbeatIntervalMs', 100, 1, 60_000);
  const electionTimeoutMs = int(o, 'electionTimeoutMs', 1000, 3, 600_000);
  if (electionTimeoutMs < 3 * heartbeatIntervalMs) {
    throw new InvalidOptionError(
      'electionTimeoutMs',
      `must be at least 3 × heartbeatIntervalMs (${3 * heartbeatIntervalMs}), got ${electionTimeoutMs}`,
    );
  }
  const sync = o.sync === undefined ? true : o.sync;
  if (typeof sync !== 'boolean') throw new InvalidOptionError('sync', 'must be true or false');
  const logWindowBytes = int(o, 'logWindowBytes', 32 * 1024 * 1024, 64 * 1024, 2 ** 30);
  if ((logWindowBytes & (logWindowBytes - 1)) !== 0) {
    throw new InvalidOptionError('logWindowBytes', `must be a power of two, got ${logWindowBytes}`);
  }
  const join = o.join === undefined ? false : o.join;
  if (typeof join !== 'boolean') throw new InvalidOptionError('join', 'must be true or false');
  const logLevel = str(o, 'logLevel', 'info');
  if (!LEVELS.has(logLevel))
    throw new InvalidOptionError('logLevel', `must be one of ${[...LEVELS].join(', ')}`);
  return {
    id,
    dataDir,
    listen,
    peers,
    stateMachine,
    stateMachineOptions: smOptions as Record<string, unknown>,
    clusterId: str(o, 'clusterId', 'raftline'),
    electionTimeoutMs,
    heartbeatIntervalMs,
    sync,
    segmentBytes: int(o, 'segmentBytes', 64 * 1024 * 1024, 64 * 1024, 2 ** 31),
    logWindowBytes,
    maxPendingApplies: int(o, 'maxPendingApplies', 10_000, 1, 10_000_000),
    requestTimeoutMs: int(o, 'requestTimeoutMs', 10_000, 1, 3_600_000),
    shutdownDrainMs: int(o, 'shutdownDrainMs', 2000, 0, 600_000),
    maxAppendBytes: int(o, 'maxAppendBytes', 1024 * 1024, 1024, 16 * 1024 * 1024),
    maxInflightAppends: int(o, 'maxInflightAppends', 256, 1, 65_536),
    join,
    snapshotIntervalS: int(o, 'snapshotIntervalS', 3600, 0, 365 * 86_400),
    snapshotLogBytes: int(o, 'snapshotLogBytes', 128 * 1024 * 1024, 0, 2 ** 50),
    snapshotLogEntries: int(o, 'snapshotLogEntries', 500_000, 0, 2 ** 50),
    snapshotMinIntervalS: int(o, 'snapshotMinIntervalS', 5, 0, 86_400),
    compactionMarginEntries: int(o, 'compactionMarginEntries', 10_000, 0, 2 ** 40),
    snapshotChunkBytes: int(o, 'snapshotChunkBytes', 1024 * 1024, 4096, 8 * 1024 * 1024),
    snapshotBytesPerSecond: int(o, 'snapshotBytesPerSecond', 128 * 1024 * 1024, 0, 2 ** 40),
    promoteMarginEntries: int(o, 'promoteMarginEntries', 1000, 0, 2 ** 40),
    logLevel,
    secret: secretOption(o, 'secretFile', SECRET_ENV),
    adminSecret: secretOption(o, 'adminSecretFile', ADMIN_SECRET_ENV),
    tls: tlsOption(o),
    maxClientSessions: int(o, 'maxClientSessions', 10_000, 1, 10_000_000),
    clientSessionTimeoutMs: int(o, 'clientSessionTimeoutMs', 3_600_000, 1000, 365 * 86_400_000),
    maxConnections: int(o, 'maxConnections', 1024, 32, 1_000_000),
    handshakeTimeoutMs: int(o, 'handshakeTimeoutMs', 5000, 10, 600_000),
    clientIdleTimeoutMs: int(o, 'clientIdleTimeoutMs', 300_000, 0, 365 * 86_400_000),
  };
}
