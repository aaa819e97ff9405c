#!/usr/bin/env node
/**
 * The `raftline` command. The threaded node and `RaftNode` exist; the commands (serve,
 * cluster, bench, status, peers, transfer, snapshot) and the latency reports come with
 * the CLI issue. Until then this says so plainly and runs nothing.
 */
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const args = process.argv.slice(2);
if (args.includes('--version') || args.includes('-V')) {
  process.stdout.write(`${pkg.version}\n`);
  process.exit(0);
}

process.stdout.write(
  [
    `raftline ${pkg.version}`,
    '',
    'Built so far: the Raft core, its simulator, and the threaded node with its RaftNode API.',
    'Not built yet: the CLI commands (serve, cluster, bench, status, ...) and the latency report.',
    '',
    'To load a local 3-process cluster:  npm start   (node dist/native-bench/apply-bench.js)',
    'To watch the core under faults:     npm run sim -- --seeds 200 --nodes 3',
    '',
  ].join('\n'),
);
process.exit(args.length > 0 ? 2 : 0);
