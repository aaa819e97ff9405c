/**
 * The commands that talk to a running cluster through `RaftClient`: `kv`, `counter`,
 * `status`, `peers`, `transfer`, `add-peer`, `remove-peer`, `snapshot`.
 */

import type { Command } from 'commander';
import { counterCommand } from '../../examples/counter.js';
import { kvCommand } from '../../examples/kv.js';
import { RaftClient } from '../client/raft-client.js';
import type { Value } from '../main/state-machine.js';
import { statusOfAll, waitForLeader } from './cluster-status.js';

const DEFAULT_CLUSTER = '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003';

interface ClusterOption {
  cluster: string;
  clusterId: string;
  timeoutMs: string;
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
  const client = new RaftClient({ endpoints, clusterId: o.clusterId, requestTimeoutMs: Number(o.timeoutMs) });
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

function clusterOptions(cmd: Command): Command {
  return cmd
    .option('--cluster <list>', 'nodes to contact: host:port,host:port,...', DEFAULT_CLUSTER)
    .option('--cluster-id <id>', 'the cluster id', 'raftline')
    .option('--timeout-ms <ms>', 'per-request timeout', '5000');
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
      .description('each node: id, pid, role, term, leader, commit/applied/durable index, log size')
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
                String(a.status.term),
                String(a.status.leader ?? '-'),
                String(a.status.commitIndex),
                String(a.status.appliedIndex),
                String(a.status.durableIndex),
                String(a.status.logEntries),
                formatBytes(a.status.logBytes as number),
              ]
            : ['?', a.endpoint, '-', `unreachable: ${a.error}`, '', '', '', '', '', '', ''],
        );
        table(
          [
            'id',
            'address',
            'pid',
            'role',
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
      .description("the leader's view of each peer: match index, lag, link")
      .option('--json', 'print JSON'),
  ).action((o: ClusterOption & { json?: boolean }) =>
    withClient(o, async (c, endpoints) => {
      const leader = await waitForLeader(c, endpoints, Number(o.timeoutMs));
      const s = (await c.statusOf(leader.address)) as {
        id: string;
        lastIndex: number;
        voters: string[];
        learners: string[];
        peers: {
          id: string;
          address: string;
          connected: boolean;
          matchIndex: number;
          lastAckAgoMs: number | null;
        }[];
      };
      const rows = s.peers.map((p) => ({
        id: p.id,
        address: p.address,
        kind: s.learners.includes(p.id) ? 'learner' : 'voter',
        connected: p.connected,
        matchIndex: p.matchIndex,
        lagEntries: s.lastIndex - p.matchIndex,
        lastAckAgoMs: p.lastAckAgoMs,
      }));
      if (o.json) {
        process.stdout.write(
          `${JSON.stringify({ leader: s.id, lastIndex: s.lastIndex, peers: rows }, null, 2)}\n`,
        );
        return;
      }
      process.stdout.write(`leader ${s.id} at ${leader.address}, last index ${s.lastIndex}\n`);
      table(
        ['id', 'address', 'kind', 'link', 'match', 'lag', 'last ack'],
        rows.map((r) => [
          r.id,
          r.address,
          r.kind,
          r.connected ? 'up' : 'down',
          String(r.matchIndex),
          String(r.lagEntries),
          r.lastAckAgoMs === null ? '-' : `${r.lastAckAgoMs} ms ago`,
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
  clusterOptions(program.command('add-peer <spec>').description('add a voter: id=host:port')).action(
    (spec: string, o: ClusterOption) => withClient(o, async (c) => print(await c.addPeer(spec))),
  );
  clusterOptions(program.command('remove-peer <id>').description('remove a voter')).action(
    (id: string, o: ClusterOption) => withClient(o, async (c) => print(await c.removePeer(id))),
  );
  clusterOptions(
    program
      .command('snapshot')
      .description('save a snapshot of the state machine on the first node of --cluster'),
  ).action((o: ClusterOption) => withClient(o, async (c) => print(await c.snapshot())));
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
