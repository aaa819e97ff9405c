#!/usr/bin/env node
/**
 * The `raftline` command: serve a node, run a local cluster, drive and administer a
 * cluster, and load-test it with a latency report. Every command has `--help`; exit codes
 * are in `exit-codes.ts`.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { addAdminCommands } from './admin.js';
import { addBenchCommand } from './bench.js';
import { addClusterCommand } from './cluster.js';
import { EXIT_USAGE, exitCodeFor } from './exit-codes.js';
import { addServeCommand } from './serve.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command('raftline')
  .description('a Raft consensus runtime for Node.js: serve, cluster, bench, administer')
  .version(pkg.version, '-V, --version')
  .showHelpAfterError()
  .exitOverride();
addServeCommand(program);
addClusterCommand(program);
addBenchCommand(program);
addAdminCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version end here too, with exit code 0.
    process.exitCode = err.exitCode === 0 ? 0 : EXIT_USAGE;
  } else {
    process.stderr.write(`raftline: ${(err as Error).message}\n`);
    process.exitCode = exitCodeFor(err);
  }
}
