#!/usr/bin/env node
/**
 * The `raftline` command. So far only the Raft core and its simulator exist; the threaded
 * node, the cluster runner and `raftline bench` come with the issues that build them.
 * Until then this says so plainly and runs nothing.
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
    'Built so far: the pure Raft core (src/raft) and a deterministic simulator that attacks it.',
    'Not built yet: the threaded node, the CLI commands (serve, cluster, bench, status, ...) and',
    'the latency report. So this ran no cluster and measured nothing.',
    '',
    'To watch the core under faults:  npm run sim -- --seeds 200 --nodes 3',
    '',
  ].join('\n'),
);
process.exit(args.length > 0 ? 2 : 0);
