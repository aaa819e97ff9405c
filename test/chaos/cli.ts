/**
 * `npm run chaos -- --duration S [--seed X] [--nodes 3|5] [--json FILE] [--history FILE]`
 *
 * Runs the fault harness (`run.ts`) once. The last line is the summary:
 *
 * ```
 * chaos: ops=N acknowledged=A lost=0 linearizable=true faults=kill:K,pause:P,partition:Q,disk:D duration=S
 * ```
 *
 * Exit code 0 when every check passed; 1 on any failure (after a line naming the seed and
 * the command that replays its fault schedule); 2 on a usage error; 130 when interrupted.
 * Every node process is killed by pid on the way out, whichever way that is.
 */

import { parseArgs } from 'node:util';
import { FAULT_KINDS, type FaultKind } from './nemesis.js';
import { CHAOS_DEFAULTS, killEverything, removeLiveData, runChaos } from './run.js';

const USAGE =
  'usage: npm run chaos -- --duration S [--seed X] [--nodes 3|5] [--json FILE] [--history FILE]\n' +
  '                        [--faults kill,pause,partition,delay,disk] [--clients N] [--keys N]\n' +
  '                        [--key-rotation-s S] [--check-timeout-ms MS] [--keep]\n' +
  '                        [--plant-stale-reads 0.5] [--plant-unsafe-lease]';

function usage(msg: string): never {
  process.stderr.write(`chaos: ${msg}\n${USAGE}\n`);
  process.exit(2);
}

function int(name: string, v: string | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    usage(`--${name} must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  return n;
}

async function main(): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        duration: { type: 'string' },
        seed: { type: 'string' },
        nodes: { type: 'string' },
        json: { type: 'string' },
        history: { type: 'string' },
        clients: { type: 'string' },
        keys: { type: 'string' },
        'key-rotation-s': { type: 'string' },
        'check-timeout-ms': { type: 'string' },
        faults: { type: 'string' },
        'plant-stale-reads': { type: 'string' },
        'plant-unsafe-lease': { type: 'boolean' },
        keep: { type: 'boolean' },
        help: { type: 'boolean' },
      },
      strict: true,
    }));
  } catch (err) {
    usage((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.duration === undefined) usage('--duration is required');
  const durationS = int('duration', values.duration as string, 0, 5, 24 * 3600);
  const seed = int('seed', values.seed as string | undefined, Date.now() % 1_000_000, 0, 2 ** 32 - 1);
  const nodes = int('nodes', values.nodes as string | undefined, CHAOS_DEFAULTS.nodes, 3, 5);
  if (nodes !== 3 && nodes !== 5) usage('--nodes must be 3 or 5');
  const clients = int('clients', values.clients as string | undefined, CHAOS_DEFAULTS.clients, 1, 64);
  const keys = int('keys', values.keys as string | undefined, CHAOS_DEFAULTS.keys, 1, 1000);
  const keyRotationS = int(
    'key-rotation-s',
    values['key-rotation-s'] as string | undefined,
    CHAOS_DEFAULTS.keyRotationS,
    1,
    24 * 3600,
  );
  const checkTimeoutMs = int(
    'check-timeout-ms',
    values['check-timeout-ms'] as string | undefined,
    CHAOS_DEFAULTS.checkTimeoutMs,
    1000,
    3_600_000,
  );

  const faults = ((values.faults as string | undefined) ?? FAULT_KINDS.join(','))
    .split(',')
    .filter((k) => k.length > 0);
  for (const k of faults) {
    if (!FAULT_KINDS.includes(k as FaultKind)) usage(`--faults: unknown fault kind ${JSON.stringify(k)}`);
  }

  const plantRaw = values['plant-stale-reads'] as string | undefined;
  const plant = plantRaw === undefined ? undefined : Number(plantRaw);
  if (plant !== undefined && !(plant > 0 && plant <= 1))
    usage('--plant-stale-reads must be a share in (0, 1]');

  const stop = (signal: string): void => {
    killEverything();
    const removed = removeLiveData();
    process.stdout.write(
      `chaos: interrupted by ${signal} (seed=${seed}); every node process killed, ${removed.join(', ') || 'no data'} removed\n`,
    );
    process.exit(130);
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('exit', killEverything);
  // Bounded in time whatever happens: the run, the heal, the settling and the check.
  const watchdog = setTimeout(
    () => {
      killEverything();
      process.stdout.write(
        `chaos: FAILED seed=${seed}: the run did not finish in time; every node process killed\n`,
      );
      process.exit(1);
    },
    (durationS + 180) * 1000 + checkTimeoutMs,
  );

  const summary = await runChaos(
    {
      durationS,
      seed,
      nodes,
      clients,
      keys,
      keyRotationS,
      electionTimeoutMs: CHAOS_DEFAULTS.electionTimeoutMs,
      heartbeatIntervalMs: CHAOS_DEFAULTS.heartbeatIntervalMs,
      checkTimeoutMs,
      faults: faults as FaultKind[],
      ...(plant !== undefined ? { plantStaleReads: plant } : {}),
      ...(values['plant-unsafe-lease'] === true ? { plantUnsafeLease: true } : {}),
      keepData: values.keep === true,
      print: (line) => process.stdout.write(`${line}\n`),
    },
    {
      ...(values.history !== undefined ? { history: values.history as string } : {}),
      ...(values.json !== undefined ? { json: values.json as string } : {}),
    },
  );
  clearTimeout(watchdog);
  process.exitCode = summary.ok ? 0 : 1;
}

main().catch((err) => {
  killEverything();
  const message = (err as Error).message ?? String(err);
  process.stdout.write(
    message.startsWith('chaos: ') ? `${message}\n` : `chaos: ${(err as Error).stack ?? message}\n`,
  );
  process.exit(1);
});
