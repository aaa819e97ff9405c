/**
 * The commands that talk to a running cluster through `RaftClient`: `kv`, `counter`,
 * `status`, `peers`, `transfer`, `add-peer`, `add-learner`, `remove-peer`, `snapshot`.
 */

import { type Command, InvalidArgumentError } from 'commander';
import { counterCommand } from '../../examples/counter.js';
import { kvCommand } from '../../examples/kv.js';
import { type ClusterConfiguration, RaftClient } from '../client/raft-client.js';
import type { Value } from '../main/state-machine.js';
import { parsePeerSpec } from '../shared/address.js';
import { ADMIN_SECRET_ENV, clientSecretOptions, SECRET_ENV } from '../shared/auth.js';
import { clientTlsOption } from '../shared/tls-config.js';
import { statusOfAll, waitForLeader } from './cluster-status.js';

const DEFAULT_CLUSTER = '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003';
/** Most requests answer within an election or two. */
const DEFAULT_TIMEOUT_MS = '5000';
/**
 * A membership change waits for its entry to commit, and `add-peer` also for the new node
 * to catch up (perhaps from a snapshot) before its promotion: give them longer.
 */
const MEMBERSHIP_TIMEOUT_MS = '30000';

interface ClusterOption {
  cluster: string;
  clusterId: string;
  timeoutMs: string;
  secretFile?: string;
  adminSecretFile?: string;
  tlsCa?: string;
}

function endpointsOf(o: ClusterOption): string[] {
  return o.cluster.split(',').filter((e) => e.length > 0);
}

/** Runs `fn` with a client of the cluster, closing it afterwards. */
async function withClient<T>(
  o: ClusterOption,
  fn: (c: RaftClient, endpoints: string[]) => Promise<T>,
): Promise<T> {
  const endpoints = endpointsOf(o);
  const client = new RaftClient({
    endpoints,
    clusterId: o.clusterId,
    requestTimeoutMs: Number(o.timeoutMs),
    ...clientSecretOptions(o),
    ...clientTlsOption(o),
  });
  try {
    return await fn(client, endpoints);
  } finally {
    await client.close();
  }
}

function print(v: Value): void {
  process.stdout.write(`${typeof v === 'string' ? v : JSON.stringify(v, bigintSafe)}\n`);
}

function bigintSafe(_key: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  return v;
}

function clusterOptions(cmd: Command, timeoutMs = DEFAULT_TIMEOUT_MS): Command {
  return cmd
    .option('--cluster <list>', 'nodes to contact: host:port,host:port,...', DEFAULT_CLUSTER)
    .option('--cluster-id <id>', 'the cluster id', 'raftline')
    .option('--timeout-ms <ms>', 'per-request timeout', timeoutMs)
    .option('--secret-file <file>', `the cluster secret, if the nodes have one (default: $${SECRET_ENV})`)
    .option(
      '--admin-secret-file <file>',
      `the admin secret, for transfer, membership and snapshot (default: $${ADMIN_SECRET_ENV})`,
    )
    .option('--tls-ca <file>', 'the nodes listen with TLS: the CA that signed their certificates (PEM)');
}

/** Checks an `id=host:port` argument before anything is sent: a typo is a usage error (exit 2). */
function peerSpecArgument(value: string): string {
  try {
    parsePeerSpec(value);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
  return value;
}

/** `conf` in one line: `configuration at index 12: voters n1,n2,n3; learners n4`. */
function describeConfiguration(conf: ClusterConfiguration): string {
  const list = (ids: readonly string[]): string => (ids.length === 0 ? '-' : ids.join(','));
  return `configuration at index ${conf.index}: voters ${list(conf.voters)}; learners ${list(conf.learners)}`;
}

/**
 * Runs a membership change and prints the configuration it led to. A timeout leaves the
 * change's outcome unknown (it may still commit): the message says how to find out.
 */
async function changeMembership(
  o: ClusterOption & { json?: boolean },
  change: (c: RaftClient) => Promise<ClusterConfiguration>,
  done: string,
): Promise<void> {
  await withClient(o, async (c) => {
    let conf: ClusterConfiguration;
    try {
      conf = await change(c);
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ERR_RAFT_TIMEOUT' && err instanceof Error) {
        err.message += '; the change may still be made: `raftline peers` shows the configuration';
      }
      throw err;
    }
    if (o.json) process.stdout.write(`${JSON.stringify(conf)}\n`);
    else process.stdout.write(`${done}; ${describeConfiguration(conf)}\n`);
  });
}

/** Adds the client and admin commands to the program. */
export function addAdminCommands(program: Command): void {
  const kv = program.command('kv').description('the key-value example state machine (--fsm kv)');
  clusterOptions(
    kv.command('put <key> <value>').description('set key to value; prints the previous value'),
  ).action((key: string, value: string, o: ClusterOption) =>
    withClient(o, async (c) => print(await c.apply(kvCommand({ op: 'put', key, value })))),
  );
  clusterOptions(
    kv
      .command('get <key>')
      .description('read a key (linearizable unless --consistency says otherwise)')
      .option('--consistency <level>', 'linearizable, lease or stale', 'linearizable'),
  ).action((key: string, o: ClusterOption & { consistency: 'linearizable' }) =>
    withClient(o, async (c) => print(await c.read({ op: 'get', key }, { consistency: o.consistency }))),
  );
  clusterOptions(kv.command('del <key>').description('delete a key')).action(
    (key: string, o: ClusterOption) =>
      withClient(o, async (c) => print(await c.apply(kvCommand({ op: 'delete', key })))),
  );
  clusterOptions(
    kv
      .command('cas <key> <expected> <value>')
      .description('set key to value if it holds expected ("" for absent)'),
  ).action((key: string, expected: string, value: string, o: ClusterOption) =>
    withClient(o, async (c) =>
      print(await c.apply(kvCommand({ op: 'cas', key, expected: expected === '' ? null : expected, value }))),
    ),
  );

  const counter = program.command('counter').description('the counter example state machine (--fsm counter)');
  for (const op of ['inc', 'dec', 'set'] as const) {
    clusterOptions(
      counter.command(`${op} [n]`).description(`${op} the counter; prints the new value`),
    ).action((n: string | undefined, o: ClusterOption) =>
      withClient(o, async (c) =>
        print(await c.apply(counterCommand(op, n === undefined ? undefined : Number(n)))),
      ),
    );
  }
  clusterOptions(counter.command('get').description('read the counter (linearizable)')).action(
    (o: ClusterOption) =>
      withClient(o, async (c) => print(await c.read('get', { consistency: 'linearizable' }))),
  );

  clusterOptions(
    program
      .command('status')
      .summary('each node: role, membership, term, leader, indexes, log size')
      .description(
        'each node: id, pid, role, membership (voter or learner, in its own view), term, leader, ' +
          'commit/applied/durable index, log size',
      )
      .option('--json', 'print JSON'),
  ).action((o: ClusterOption & { json?: boolean }) =>
    withClient(o, async (c, endpoints) => {
      const answers = await statusOfAll(c, endpoints);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(answers.map(withoutHistograms), bigintSafe, 2)}\n`);
      } else {
        const rows = answers.map((a) =>
          a.ok
            ? [
                String(a.status.id),
                a.endpoint,
                String(a.status.pid),
                String(a.status.role),
                memberRole(a.status),
                String(a.status.term),
                String(a.status.leader ?? '-'),
                String(a.status.commitIndex),
                String(a.status.appliedIndex),
                String(a.status.durableIndex),
                String(a.status.logEntries),
                formatBytes(a.status.logBytes as number),
              ]
            : ['?', a.endpoint, '-', `unreachable: ${a.error}`, '', '', '', '', '', '', '', ''],
        );
        table(
          [
            'id',
            'address',
            'pid',
            'role',
            'member',
            'term',
            'leader',
            'commit',
            'applied',
            'durable',
            'log entries',
            'log size',
          ],
          rows,
        );
      }
      if (answers.every((a) => !a.ok)) process.exitCode = 3;
    }),
  );

  clusterOptions(
    program
      .command('peers')
      .summary("the leader's view of every member: role, address, link, match index")
      .description(
        "the leader's view of every member: role (voter or learner), address, link, match index, lag, last ack",
      )
      .option('--json', 'print JSON'),
  ).action((o: ClusterOption & { json?: boolean }) =>
    withClient(o, async (c, endpoints) => {
      const leader = await waitForLeader(c, endpoints, Number(o.timeoutMs));
      const view = membersOf((await c.statusOf(leader.address)) as unknown as LeaderStatus, leader.address);
      if (o.json) {
        process.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
        return;
      }
      process.stdout.write(
        `leader ${view.leader} at ${view.leaderAddress}, term ${view.term}, ` +
          `commit ${view.commitIndex}, last index ${view.lastIndex}\n`,
      );
      table(
        ['id', 'role', 'leader', 'address', 'link', 'match', 'lag', 'last ack'],
        view.members.map((m) => [
          m.id,
          m.role,
          m.leader ? '*' : '',
          m.address ?? '?',
          m.connected === null ? '-' : m.connected ? 'up' : 'down',
          m.matchIndex === null ? '-' : String(m.matchIndex),
          m.lagEntries === null ? '-' : String(m.lagEntries),
          m.lastAckAgoMs === null ? '-' : `${m.lastAckAgoMs} ms ago`,
        ]),
      );
    }),
  );

  clusterOptions(program.command('transfer <id>').description('hand leadership to node <id>')).action(
    (id: string, o: ClusterOption) =>
      withClient(o, async (c, endpoints) => {
        const leader = await waitForLeader(c, endpoints, Number(o.timeoutMs));
        if (leader.id === id) {
          process.stdout.write(`${id} already leads\n`);
          return;
        }
        await c.transfer(id);
        const deadline = Date.now() + Number(o.timeoutMs);
        for (;;) {
          const now = await waitForLeader(c, endpoints, Number(o.timeoutMs));
          if (now.id === id) {
            process.stdout.write(`leadership moved from ${leader.id} to ${id}\n`);
            return;
          }
          if (Date.now() > deadline) {
            throw Object.assign(
              new Error(`${id} did not take over within ${o.timeoutMs} ms (the leader is ${now.id})`),
              {
                code: 'ERR_RAFT_TIMEOUT',
              },
            );
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      }),
  );
  clusterOptions(
    program
      .command('add-peer')
      .summary('add a voter (id=host:port); waits until it is promoted')
      .description(
        'add a voter: the leader adds it as a learner, catches it up and promotes it; ' +
          'waits until the promotion commits. Start the node first with `raftline serve --join`',
      )
      .argument('<id=host:port>', 'the new node: its id and the address it listens on', peerSpecArgument)
      .option('--json', 'print the configuration as JSON'),
    MEMBERSHIP_TIMEOUT_MS,
  ).action((spec: string, o: ClusterOption & { json?: boolean }) => {
    const { id } = parsePeerSpec(spec);
    return changeMembership(o, (c) => c.addPeer(spec), `${id} is a voter`);
  });
  clusterOptions(
    program
      .command('add-learner')
      .summary('add a learner (id=host:port); waits until committed')
      .description('add a learner: it receives the log but does not vote; waits until the change commits')
      .argument('<id=host:port>', 'the new node: its id and the address it listens on', peerSpecArgument)
      .option('--json', 'print the configuration as JSON'),
    MEMBERSHIP_TIMEOUT_MS,
  ).action((spec: string, o: ClusterOption & { json?: boolean }) => {
    const { id } = parsePeerSpec(spec);
    return changeMembership(o, (c) => c.addLearner(spec), `${id} is a learner`);
  });
  clusterOptions(
    program
      .command('remove-peer')
      .summary('remove a voter or a learner; waits until committed')
      .description('remove a voter or a learner; waits until the change commits')
      .argument('<id>', 'the node id to remove')
      .option('--json', 'print the configuration as JSON'),
    MEMBERSHIP_TIMEOUT_MS,
  ).action((id: string, o: ClusterOption & { json?: boolean }) =>
    changeMembership(o, (c) => c.removePeer(id), `${id} is removed`),
  );
  clusterOptions(
    program
      .command('snapshot')
      .description('save a snapshot of the state machine on the first node of --cluster'),
  ).action((o: ClusterOption) => withClient(o, async (c) => print(await c.snapshot())));
}

/**
 * `voter` or `learner` as node `s` sees itself in its own configuration; `-` when it is in
 * neither (a node waiting to join, or one removed).
 */
function memberRole(s: Record<string, unknown>): string {
  const has = (list: unknown): boolean => Array.isArray(list) && list.includes(s.id);
  return has(s.voters) ? 'voter' : has(s.learners) ? 'learner' : '-';
}

/** The part of a leader's status that `peers` reads (`NodeStatus` in coordinator.ts). */
interface LeaderStatus {
  id: string;
  term: number;
  commitIndex: number;
  lastIndex: number;
  durableIndex: number;
  voters?: string[];
  learners?: string[];
  peers: {
    id: string;
    address: string;
    connected: boolean;
    matchIndex: number;
    lastAckAgoMs: number | null;
  }[];
}

/** One row of `peers`. */
export interface MemberRow {
  readonly id: string;
  /** From the leader's configuration; `none` for a peer the leader still links to but that is no member. */
  readonly role: 'voter' | 'learner' | 'none';
  readonly leader: boolean;
  /** Where it listens; null when the leader has no link to it (yet). */
  readonly address: string | null;
  /** The leader's link to it; null for the leader itself. */
  readonly connected: boolean | null;
  /** The highest index known to be in its log (the leader's: its durable index). */
  readonly matchIndex: number | null;
  /** Entries it lacks: the leader's last index minus its match index. */
  readonly lagEntries: number | null;
  readonly lastAckAgoMs: number | null;
}

/** What `peers` prints: the leader's view of every member, leader first, then voters, then learners. */
export interface MembersView {
  readonly leader: string;
  readonly leaderAddress: string;
  readonly term: number;
  readonly commitIndex: number;
  readonly lastIndex: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  readonly members: readonly MemberRow[];
}

/** The rows of `peers` from the leader's status `s`; `address` is where the leader was reached. */
export function membersOf(s: LeaderStatus, address: string): MembersView {
  const voters = s.voters ?? [];
  const learners = s.learners ?? [];
  const links = new Map(s.peers.map((p) => [p.id, p]));
  const roleOf = (id: string): MemberRow['role'] =>
    voters.includes(id) ? 'voter' : learners.includes(id) ? 'learner' : 'none';
  const members: MemberRow[] = [
    {
      id: s.id,
      role: roleOf(s.id),
      leader: true,
      address,
      connected: null,
      matchIndex: s.durableIndex,
      lagEntries: Math.max(0, s.lastIndex - s.durableIndex),
      lastAckAgoMs: null,
    },
  ];
  // Configuration order, then any peer the leader links to that is no longer a member.
  const ids = new Set([...voters, ...learners, ...s.peers.map((p) => p.id)]);
  ids.delete(s.id);
  for (const id of ids) {
    const link = links.get(id);
    members.push({
      id,
      role: roleOf(id),
      leader: false,
      address: link?.address ?? null,
      connected: link?.connected ?? null,
      matchIndex: link?.matchIndex ?? null,
      lagEntries: link === undefined ? null : Math.max(0, s.lastIndex - link.matchIndex),
      lastAckAgoMs: link?.lastAckAgoMs ?? null,
    });
  }
  return {
    leader: s.id,
    leaderAddress: address,
    term: s.term,
    commitIndex: s.commitIndex,
    lastIndex: s.lastIndex,
    voters,
    learners,
    members,
  };
}

function withoutHistograms(a: Awaited<ReturnType<typeof statusOfAll>>[number]): unknown {
  if (!a.ok) return a;
  const { histograms: _h, ...rest } = a.status;
  return { endpoint: a.endpoint, ok: true, status: rest };
}

/** `bytes` in B, KiB, MiB or GiB. */
function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

/** Prints rows under headers, columns padded. */
function table(headers: string[], rows: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  process.stdout.write(`${line(headers)}\n${rows.map(line).join('\n')}\n`);
}
