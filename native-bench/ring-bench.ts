/**
 * Throughput of src/shared/ring.ts between two worker threads, to set beside the machine's
 * reference (`peers/lib/ring_bench.cjs`: a bare SAB ring, ~12M msg/s for 32-byte messages).
 *
 *   npx tsc -p . && node dist/native-bench/ring-bench.js [--secs 5] [--size 32]
 *       [--capacity 1048576] [--batch 64] [--read drain|raw] [--write stage|reserve] [--spin 0]
 *   node dist/native-bench/ring-bench.js --indexes     # Int32 against BigInt64 Atomics, one thread
 *   node dist/native-bench/ring-bench.js --single [--batch 1]   # ns per frame, both ends on one thread
 *
 * --batch 1 publishes every frame; --batch N publishes every N frames (and whenever the ring
 * is full). The consumer drains everything visible and releases once per drain. Every frame
 * carries its sequence number, which the consumer checks. Prints one JSON line.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { createRingBuffer, RingConsumer, RingProducer, readRingStats } from '../src/shared/ring.js';

interface BenchOptions {
  secs: number;
  sizeBytes: number;
  capacityBytes: number;
  batchFrames: number;
  read: 'drain' | 'raw';
  write: 'stage' | 'reserve';
  spinIterations: number;
}

interface BenchWorkerData {
  role: 'producer' | 'consumer';
  options: BenchOptions;
  ringBuffer: SharedArrayBuffer;
  /** Int32 [0]: go, [1]: stop. */
  controlBuffer: SharedArrayBuffer;
}

interface ConsumerReport {
  frames: number;
  elapsedSecs: number;
  errors: number;
}

const GO = 0;
const STOP = 1;

function parseOptions(argv: string[]): BenchOptions & { indexes: boolean; single: boolean } {
  const value = (name: string, fallback: string): string => {
    const at = argv.indexOf(`--${name}`);
    return at >= 0 && at + 1 < argv.length ? (argv[at + 1] as string) : fallback;
  };
  return {
    indexes: argv.includes('--indexes'),
    single: argv.includes('--single'),
    secs: Number(value('secs', '5')),
    sizeBytes: Number(value('size', '32')),
    capacityBytes: Number(value('capacity', String(1 << 20))),
    batchFrames: Number(value('batch', '64')),
    read: value('read', 'raw') === 'drain' ? 'drain' : 'raw',
    write: value('write', 'stage') === 'reserve' ? 'reserve' : 'stage',
    spinIterations: Number(value('spin', '0')),
  };
}

/** Int32 positions against BigInt64 ones: the measurement behind the choice in ring.ts. */
function benchIndexes(): void {
  const iterations = 20_000_000;
  const buffer = new SharedArrayBuffer(1024);
  const int32 = new Int32Array(buffer);
  const int64 = new BigInt64Array(buffer);
  const time = (name: string, run: (n: number) => number): void => {
    run(100_000);
    const startMs = performance.now();
    const sink = run(iterations);
    const nsPerOp = ((performance.now() - startMs) * 1e6) / iterations;
    console.log(JSON.stringify({ bench: 'indexes', name, ns_per_op: +nsPerOp.toFixed(2), sink }));
  };
  for (let round = 0; round < 2; round++) {
    time('int32 store+load', (n) => {
      let sum = 0;
      for (let i = 0; i < n; i++) {
        Atomics.store(int32, 32, i | 0);
        sum = (sum + (Atomics.load(int32, 32) >>> 0)) | 0;
      }
      return sum;
    });
    time('bigint64 store+load (BigInt in, Number out)', (n) => {
      let sum = 0;
      for (let i = 0; i < n; i++) {
        Atomics.store(int64, 16, BigInt(i));
        sum = (sum + Number(Atomics.load(int64, 16))) % 1e9;
      }
      return sum;
    });
    time('int32 add', (n) => {
      for (let i = 0; i < n; i++) Atomics.add(int32, 40, (i & 7) + 1);
      return int32[40] as number;
    });
    time('bigint64 add BigInt(k)', (n) => {
      for (let i = 0; i < n; i++) Atomics.add(int64, 20, BigInt((i & 7) + 1));
      return Number(int64[20]);
    });
  }
}

/**
 * The cost of the ring's own code per frame, without threads: write, publish every
 * `batchFrames`, drain. No scheduler noise, so it shows small changes that the two-thread
 * figure (which swings with the host's load) hides.
 */
function benchSingleThread(options: BenchOptions): void {
  const buffer = createRingBuffer(options.capacityBytes);
  const producer = new RingProducer(buffer);
  const consumer = new RingConsumer(buffer);
  const payload = new Uint8Array(options.sizeBytes).fill(0x5a);
  let sink = 0;
  const onRaw = (bytes: Uint8Array, offsetBytes: number): void => {
    sink = (sink + (bytes[offsetBytes] as number)) | 0;
  };
  const run = (frames: number): void => {
    for (let written = 0; written < frames; ) {
      for (let i = 0; i < options.batchFrames; i++, written++) {
        if (!producer.tryStage(payload)) break;
      }
      producer.publish();
      if (options.read === 'raw') consumer.drainRaw(onRaw);
      else consumer.drain((frame) => onRaw(frame, 0));
    }
  };
  run(1_000_000);
  for (let round = 0; round < 3; round++) {
    const frames = 20_000_000;
    const startMs = performance.now();
    run(frames);
    const nsPerFrame = ((performance.now() - startMs) * 1e6) / frames;
    console.log(
      JSON.stringify({
        bench: 'single-thread',
        batch_frames: options.batchFrames,
        read: options.read,
        size_bytes: options.sizeBytes,
        ns_per_frame: +nsPerFrame.toFixed(1),
        sink,
      }),
    );
  }
}

function runProducer(data: BenchWorkerData): number {
  const { options } = data;
  const control = new Int32Array(data.controlBuffer);
  const producer = new RingProducer(data.ringBuffer, { spinIterations: options.spinIterations });
  const payload = new Uint8Array(options.sizeBytes).fill(0x5a);
  const view = new DataView(payload.buffer);
  while (Atomics.load(control, GO) === 0) Atomics.wait(control, GO, 0, 100);
  let seq = 0;
  let inBatch = 0;
  for (;;) {
    if ((seq & 1023) === 0 && Atomics.load(control, STOP) !== 0) break;
    let written: boolean;
    if (options.write === 'reserve') {
      const target = producer.tryReserve(options.sizeBytes);
      written = target !== null;
      if (target !== null) {
        // The same 32 bytes as the stage path; the extra cost is the view tryReserve returns.
        view.setUint32(0, seq, true);
        target.set(payload);
        producer.commit();
      }
    } else {
      view.setUint32(0, seq, true);
      written = producer.tryStage(payload);
    }
    if (!written) {
      if (producer.waitForSpace(options.sizeBytes, 1000) === 'closed') break;
      inBatch = 0;
      continue;
    }
    seq++;
    if (++inBatch >= options.batchFrames) {
      producer.publish();
      inBatch = 0;
    }
  }
  producer.close();
  return seq;
}

function runConsumer(data: BenchWorkerData): ConsumerReport {
  const { options } = data;
  const control = new Int32Array(data.controlBuffer);
  const consumer = new RingConsumer(data.ringBuffer, { spinIterations: options.spinIterations });
  while (Atomics.load(control, GO) === 0) Atomics.wait(control, GO, 0, 100);
  const startNs = process.hrtime.bigint();
  let expected = 0;
  let errors = 0;
  const onRaw = (bytes: Uint8Array, offsetBytes: number): void => {
    const seq =
      (bytes[offsetBytes] as number) |
      ((bytes[offsetBytes + 1] as number) << 8) |
      ((bytes[offsetBytes + 2] as number) << 16) |
      ((bytes[offsetBytes + 3] as number) << 24);
    if (seq >>> 0 !== expected >>> 0) errors++;
    expected++;
  };
  const onFrame = (frame: Uint8Array): void => onRaw(frame, 0);
  for (;;) {
    if (options.read === 'raw') consumer.drainRaw(onRaw);
    else consumer.drain(onFrame);
    if (consumer.waitForData(1000) === 'closed') {
      // Frames published with the close.
      if (options.read === 'raw') consumer.drainRaw(onRaw);
      else consumer.drain(onFrame);
      break;
    }
  }
  const elapsedSecs = Number(process.hrtime.bigint() - startNs) / 1e9;
  return { frames: expected, elapsedSecs, errors };
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.indexes) {
    benchIndexes();
    return;
  }
  if (options.single) {
    benchSingleThread(options);
    return;
  }
  const ringBuffer = createRingBuffer(options.capacityBytes);
  const controlBuffer = new SharedArrayBuffer(8);
  const control = new Int32Array(controlBuffer);
  const start = (role: 'producer' | 'consumer'): { worker: Worker; report: Promise<unknown> } => {
    const data: BenchWorkerData = { role, options, ringBuffer, controlBuffer };
    const worker = new Worker(new URL(import.meta.url), { workerData: data });
    const report = new Promise((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    return { worker, report };
  };
  const producer = start('producer');
  const consumer = start('consumer');
  const cpuBefore = process.cpuUsage();
  Atomics.store(control, GO, 1);
  Atomics.notify(control, GO);
  const stopTimer = setTimeout(() => Atomics.store(control, STOP, 1), options.secs * 1000);
  const [produced, consumed] = (await Promise.all([producer.report, consumer.report])) as [
    number,
    ConsumerReport,
  ];
  clearTimeout(stopTimer);
  const cpu = process.cpuUsage(cpuBefore);
  const stats = readRingStats(ringBuffer);
  const frames = consumed.frames;
  console.log(
    JSON.stringify({
      bench: 'ring',
      size_bytes: options.sizeBytes,
      capacity_bytes: options.capacityBytes,
      batch_frames: options.batchFrames,
      read: options.read,
      write: options.write,
      spin: options.spinIterations,
      secs: +consumed.elapsedSecs.toFixed(3),
      frames,
      produced,
      errors: consumed.errors,
      msgs_per_s: Math.round(frames / consumed.elapsedSecs),
      MB_per_s: +((frames * options.sizeBytes) / consumed.elapsedSecs / 1e6).toFixed(1),
      frames_per_publish: +(stats.framesPublished / Math.max(1, stats.publishes)).toFixed(1),
      frames_per_release: +(stats.framesReleased / Math.max(1, stats.releases)).toFixed(1),
      wakeups_per_frame: +((stats.dataNotifies + stats.spaceNotifies) / Math.max(1, frames)).toExponential(2),
      sleeps: { consumer: stats.consumerSleeps, producer: stats.producerSleeps },
      notifies: { data: stats.dataNotifies, space: stats.spaceNotifies },
      process_cpu_cores: +((cpu.user + cpu.system) / 1e6 / consumed.elapsedSecs).toFixed(2),
    }),
  );
  await Promise.all([producer.worker.terminate(), consumer.worker.terminate()]);
}

if (isMainThread) {
  await main();
} else if (parentPort !== null) {
  const data = workerData as BenchWorkerData;
  parentPort.postMessage(data.role === 'producer' ? runProducer(data) : runConsumer(data));
}
