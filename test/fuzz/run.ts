/**
 * A fuzz run from the command line, for longer runs than CI's:
 *
 *   node dist/test/fuzz/run.js --frames 10000000 [--seed N] [--concurrency 48] [--mix client=42,peer=42,snapshot=11,garbage=5] [--apply-share 0.02] [--client-loops 4] [--sync] [--json report.json]
 *
 * Prints progress and the figures; exits 1 if a check failed (the same checks as
 * `fuzz.test.ts`, listed by `judge`).
 */

import fs from 'node:fs';
import { describe, runFuzz } from './harness.js';
import { judge } from './judge.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const frames = Number(arg('frames') ?? 1_000_000);
const seed = Number(arg('seed') ?? Date.now() % 0x7fff_ffff);
const concurrency = Number(arg('concurrency') ?? 48);
const json = arg('json');
const applyShare = arg('apply-share');
const clientLoops = arg('client-loops');
// --mix client=42,peer=42,snapshot=11,garbage=5
const mix = Object.fromEntries(
  (arg('mix') ?? '')
    .split(',')
    .filter((kv) => kv !== '')
    .map((kv) => {
      const [k, v] = kv.split('=');
      return [k, Number(v)];
    }),
);
if (!Number.isInteger(frames) || frames < 1 || !Number.isInteger(seed) || !Number.isInteger(concurrency)) {
  console.error(
    'usage: run.js --frames N [--seed N] [--concurrency N] [--mix k=v,...] [--apply-share F] [--client-loops N] [--sync] [--json FILE]',
  );
  process.exit(2);
}

const report = await runFuzz({
  frames,
  seed,
  concurrency,
  mix,
  ...(applyShare !== undefined ? { applyShare: Number(applyShare) } : {}),
  ...(clientLoops !== undefined ? { clientLoops: Number(clientLoops) } : {}),
  sync: process.argv.includes('--sync'),
  log: (line) => console.log(line),
});
for (const line of describe(report)) console.log(line);
if (json !== undefined) fs.writeFileSync(json, JSON.stringify(report, null, 2));
const failures = judge(report);
for (const f of failures) console.log(`FAIL: ${f}`);
console.log(failures.length === 0 ? 'all checks passed' : `${failures.length} checks failed`);
process.exit(failures.length === 0 ? 0 : 1);
