/**
 * The fsm thread's snapshot intake, alone in a worker (snapshot-stream.test.ts): it opens
 * the store of `workerData.dataDir` and serves `snapshot-intake` requests on its
 * `parentPort`, as the fsm worker does, so `FsmSnapshotSink` is tested across a real
 * thread boundary (chunk buffers transferred, errors rebuilt).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { installSnapshotIntake } from '../../src/workers/fsm/snapshot-intake.js';
import { SnapshotStore } from '../../src/workers/fsm/snapshot-store.js';

if (parentPort === null) throw new Error('snapshot-intake-worker must run in a worker thread');
installSnapshotIntake(
  parentPort,
  SnapshotStore.open((workerData as { dataDir: string }).dataDir, { sync: false }),
);
parentPort.postMessage({ type: 'ready' });
