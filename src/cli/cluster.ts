/** `raftline cluster`: a local cluster of child processes for trying things out. */

import type { Command } from 'commander';
import { RaftClient } from '../client/raft-client.js';
import { waitForLeader } from './cluster-status.js';
import { LocalCluster } from './local-cluster.js';

interface ClusterCommandOptions {
  nodes: string;
  dir?: string;
  basePort: string;
  fsm: string;
  sync: boolean;
  electionTimeoutMs: string;
  heartbeatIntervalMs: string;
  logLevel: string;
}

/** Adds `cluster` to the program. */
export function addClusterCommand(program: Command): void {
  program
    .command('cluster')
    .description('run a local cluster of node processes until Ctrl-C or SIGTERM')
    .option('--nodes <n>', 'how many nodes', '3')
    .option('--dir <dir>', 'parent of the nodes data directories (kept); a temporary one otherwise')
    .option('--base-port <port>', 'node i listens on base-port + i - 1', '7001')
    .option('--fsm <name|path>', 'state machine: counter, kv, or a module path', 'kv')
    .option('--no-sync', 'do not fdatasync')
    .option('--election-timeout-ms <ms>', 'election timeout', '1000')
    .option('--heartbeat-interval-ms <ms>', 'heartbeat interval', '100')
    .option('--log-level <level>', 'the nodes log level', 'warn')
    .action(async (o: ClusterCommandOptions) => {
      const nodes = Number(o.nodes);
      if (!Number.isInteger(nodes) || nodes < 1 || nodes > 15) {
        throw Object.assign(new Error(`--nodes: expected 1..15, got ${o.nodes}`), {
          code: 'ERR_RAFT_INVALID_OPTION',
        });
      }
      const cluster = await LocalCluster.start({
        nodes,
        ...(o.dir !== undefined ? { dir: o.dir } : {}),
        basePort: Number(o.basePort),
        fsm: o.fsm,
        sync: o.sync,
        electionTimeoutMs: Number(o.electionTimeoutMs),
        heartbeatIntervalMs: Number(o.heartbeatIntervalMs),
        logLevel: o.logLevel,
        showLogs: true,
      });
      for (const m of cluster.members) {
        process.stdout.write(`${m.id}  ${m.address}  pid ${m.child.pid}  data ${m.dataDir}\n`);
      }
      const client = new RaftClient({ endpoints: cluster.endpoints });
      try {
        const leader = await waitForLeader(client, cluster.endpoints, 20_000);
        process.stdout.write(`leader: ${leader.id} at ${leader.address}\n`);
        process.stdout.write(`try:   raftline kv put hello world --cluster ${cluster.endpoints.join(',')}\n`);
        process.stdout.write('Ctrl-C stops every node.\n');
      } finally {
        await client.close();
      }
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      process.stdout.write('stopping...\n');
      await cluster.stop();
    });
}
