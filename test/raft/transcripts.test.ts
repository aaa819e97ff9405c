import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runFile } from './datadriven.js';
import { InteractionEnv } from './interaction-env.js';

/**
 * Runs every transcript in test/raft/testdata as a subtest, each with a fresh cluster.
 * The transcripts are read from (and, with REWRITE=1, written to) the source tree: tsc
 * does not copy them to dist/, and a rewrite must land where it can be reviewed and committed.
 * This file runs as dist/test/raft/transcripts.test.js, three levels below the project root.
 */
const testdataDir = fileURLToPath(new URL('../../../test/raft/testdata/', import.meta.url));

test('raft transcripts', async (t) => {
  const files = readdirSync(testdataDir)
    .filter((f) => f.endsWith('.txt'))
    .sort();
  if (files.length === 0) throw new Error(`no transcripts in ${testdataDir}`);
  for (const f of files) {
    await t.test(f, () => {
      const env = new InteractionEnv();
      runFile(join(testdataDir, f), (d) => env.handle(d));
    });
  }
});
