import { parseArgs } from 'node:util';
import { emptyStats, runSeed, type SimStats } from './world.js';

/**
 * `npm run sim -- --seeds N [--nodes K] [--seed S] [--steps T]`
 *
 * Runs seeds S..S+N-1 (S defaults to 1) and ends with one summary line. On a violation it
 * prints the seed, the violation and a trace of the last events (the seed is re-run with
 * tracing on), and exits 1. `--seed S` alone runs just that seed.
 */

function usage(msg: string): never {
  process.stderr.write(`sim: ${msg}\nusage: npm run sim -- --seeds N [--nodes K] [--seed S] [--steps T]\n`);
  process.exit(2);
}

function positiveInt(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) usage(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}

function main(): void {
  let parsed: ReturnType<typeof parseArgs<{ options: Record<string, { type: 'string' }> }>>;
  try {
    parsed = parseArgs({
      options: {
        seeds: { type: 'string' },
        nodes: { type: 'string' },
        seed: { type: 'string' },
        steps: { type: 'string' },
      },
      strict: true,
    });
  } catch (err) {
    usage((err as Error).message);
  }
  const v = parsed.values;
  const single = v.seed !== undefined && v.seeds === undefined;
  const seeds = single ? 1 : positiveInt('seeds', v.seeds, 100);
  const first = positiveInt('seed', v.seed, 1);
  const nodes = positiveInt('nodes', v.nodes, 3);
  const steps = positiveInt('steps', v.steps, 3000);
  if (nodes < 1 || nodes > 9) usage('--nodes must be between 1 and 9');

  const total: SimStats = emptyStats();
  const started = process.hrtime.bigint();
  for (let s = first; s < first + seeds; s++) {
    const r = runSeed({ seed: s, nodes, steps });
    for (const k of Object.keys(total) as (keyof SimStats)[]) total[k] += r.stats[k];
    if (r.violation) {
      const traced = runSeed({ seed: s, nodes, steps, trace: true });
      process.stdout.write(`${traced.trace.join('\n')}\n\n`);
      process.stdout.write(`sim: VIOLATION seed=${s} nodes=${nodes} steps=${steps}: ${r.violation}\n`);
      process.stdout.write(
        `sim: reproduce with: npm run sim -- --seed ${s} --nodes ${nodes} --steps ${steps}\n`,
      );
      process.exit(1);
    }
  }
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(
    `sim: ${seeds} seeds in ${secs.toFixed(1)}s; reads=${total.reads} acked=${total.acked} pauses=${total.pauses} snapshots=${total.snapshots} ` +
      `installs=${total.snapshotInstalls} ` +
      `confchanges=${total.confChanges} transfers=${total.transfers}\n`,
  );
  process.stdout.write(
    `sim: seeds=${seeds} nodes=${nodes} violations=0 drops=${total.drops} dups=${total.dups} reorders=${total.reorders} ` +
      `partitions=${total.partitions} crashes=${total.crashes} commits=${total.commits} elections=${total.elections}\n`,
  );
}

main();
