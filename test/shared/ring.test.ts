import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import {
  createRingBuffer,
  FRAME_HEADER_BYTES,
  frameRecordBytes,
  RingConsumer,
  RingProducer,
  readRingStats,
  ringBufferBytes,
} from '../../src/shared/ring.js';
import {
  checkFrame,
  fillFrame,
  frameLengthFor,
  type RingWorkerData,
  type RingWorkerResult,
} from './ring-worker.js';

/** Bound on every wait in these tests: a broken ring fails them instead of hanging them. */
const WAIT_TIMEOUT_MS = 5000;

function patternFrame(seq: number, lengthBytes: number): Uint8Array {
  const frame = new Uint8Array(lengthBytes);
  for (let i = 0; i < lengthBytes; i++) frame[i] = (seq * 13 + i * 5 + 1) & 0xff;
  return frame;
}

describe('ring: single thread', () => {
  test('a frame of exactly the capacity less the header fills the ring; one byte more is a RangeError', () => {
    const buffer = createRingBuffer(64);
    const producer = new RingProducer(buffer);
    const consumer = new RingConsumer(buffer);
    assert.throws(() => producer.tryWrite(new Uint8Array(61)), {
      name: 'RangeError',
      message: /61 bytes can never fit in a ring of 64 bytes \(largest frame: 60 bytes\)/,
    });
    assert.throws(() => producer.waitForSpace(61, 0), RangeError);
    assert.throws(() => producer.tryReserve(1000), RangeError);
    assert.equal(producer.tryWrite(patternFrame(1, 60)), true);
    assert.equal(readRingStats(buffer).usedBytes, 64);
    assert.equal(producer.tryWrite(new Uint8Array(0)), false, 'a full ring takes not even an empty frame');
    assert.equal(producer.waitForSpace(0, 0), 'timed-out');
    assert.deepEqual(consumer.tryRead(), patternFrame(1, 60));
    assert.equal(producer.canWrite(0), false, 'not released yet');
    consumer.release();
    assert.equal(producer.canWrite(60), true);
  });

  test('capacity must be a power of two within bounds; a foreign buffer is refused', () => {
    assert.throws(() => createRingBuffer(100), RangeError);
    assert.throws(() => createRingBuffer(8), RangeError);
    assert.throws(() => createRingBuffer(2 ** 31), RangeError);
    assert.throws(() => createRingBuffer(64, { initialPositionBytes: 2 }), RangeError);
    assert.throws(() => new RingConsumer(new SharedArrayBuffer(ringBufferBytes(64))), TypeError);
  });

  test('a frame split across the end of the data area is copied; a contiguous one is a view', () => {
    const buffer = createRingBuffer(32);
    const producer = new RingProducer(buffer);
    const consumer = new RingConsumer(buffer);
    assert.equal(producer.tryWrite(patternFrame(1, 16)), true); // record 20 bytes at [0, 20)
    const first = consumer.tryRead();
    assert.ok(first !== null && first.buffer === buffer, 'contiguous: a view into the ring');
    consumer.release();
    assert.equal(producer.tryWrite(patternFrame(2, 20)), true); // header at 20, payload [24, 32) + [0, 12)
    const split = consumer.tryRead();
    assert.ok(split !== null && split.buffer !== buffer, 'split: a copy');
    assert.deepEqual(split, patternFrame(2, 20));
  });

  test('a reservation split across the end is committed through a scratch copy', () => {
    const buffer = createRingBuffer(32, { initialPositionBytes: 2 ** 32 - 8 });
    const producer = new RingProducer(buffer);
    const consumer = new RingConsumer(buffer);
    const target = producer.tryReserve(12);
    assert.ok(target !== null && target.buffer !== buffer);
    target.set(patternFrame(3, 12));
    assert.throws(() => producer.publish(), /reservation is pending/);
    producer.commit();
    assert.equal(consumer.tryRead(), null, 'staged, not published');
    assert.equal(producer.publish(), 1);
    assert.deepEqual(consumer.tryRead(), patternFrame(3, 12));
  });

  test('drain: a handler that throws leaves its frame in the ring and releases the ones before', () => {
    const buffer = createRingBuffer(64);
    const producer = new RingProducer(buffer);
    const consumer = new RingConsumer(buffer);
    for (let seq = 0; seq < 3; seq++) assert.equal(producer.tryStage(patternFrame(seq, 4)), true);
    assert.equal(producer.publish(), 3);
    const seen: number[] = [];
    assert.throws(
      () =>
        consumer.drain((frame) => {
          if (frame[0] === patternFrame(1, 4)[0]) throw new Error('poison');
          seen.push(frame[0] as number);
        }),
      /poison/,
    );
    assert.equal(readRingStats(buffer).framesReleased, 1);
    assert.deepEqual(consumer.tryRead(), patternFrame(1, 4), 'the frame that threw is read again');
    assert.equal(
      consumer.drain(() => {}),
      1,
    );
    assert.equal(readRingStats(buffer).usedBytes, 0);
  });

  test('close wakes an asynchronous sleeper on either side', async () => {
    const buffer = createRingBuffer(16);
    const producer = new RingProducer(buffer);
    const consumer = new RingConsumer(buffer);
    const dataWait = consumer.waitForDataAsync(WAIT_TIMEOUT_MS);
    assert.equal(readRingStats(buffer).consumerSleeping, true);
    producer.close();
    assert.equal(await dataWait, 'closed');

    const other = createRingBuffer(16);
    const otherProducer = new RingProducer(other);
    const otherConsumer = new RingConsumer(other);
    assert.equal(otherProducer.tryWrite(new Uint8Array(12)), true);
    const spaceWait = otherProducer.waitForSpaceAsync(0, WAIT_TIMEOUT_MS);
    assert.equal(readRingStats(other).producerSleeping, true);
    otherConsumer.close();
    assert.equal(await spaceWait, 'closed');
    const stats = readRingStats(other);
    assert.equal(stats.producerSleeps, 1);
    assert.equal(stats.spaceNotifies, 1);
  });

  test('a wait publishes what is staged and releases what was read, so the sides never wait on each other', () => {
    const buffer = createRingBuffer(32);
    const producer = new RingProducer(buffer);
    const consumer = new RingConsumer(buffer);
    assert.equal(producer.tryStage(patternFrame(1, 12)), true);
    assert.equal(producer.tryStage(patternFrame(2, 12)), true);
    assert.equal(consumer.hasData(), false, 'staged only');
    assert.equal(producer.waitForSpace(0, 0), 'timed-out', 'the ring is full');
    assert.equal(consumer.hasData(), true, 'the wait published the staged frames');
    assert.deepEqual(consumer.tryRead(), patternFrame(1, 12));
    assert.equal(producer.canWrite(12), false, 'read, not released');
    assert.equal(consumer.waitForData(0), 'ready');
    assert.equal(producer.canWrite(12), true, 'the wait released the frame read before it');
  });

  test('frames published before close are still delivered, then the wait says closed', () => {
    const buffer = createRingBuffer(64);
    const producer = new RingProducer(buffer);
    const consumer = new RingConsumer(buffer);
    assert.equal(producer.tryStage(patternFrame(7, 9)), true);
    producer.close();
    assert.equal(consumer.waitForData(0), 'ready');
    assert.deepEqual(consumer.tryRead(), patternFrame(7, 9));
    assert.equal(consumer.waitForData(0), 'closed');
  });

  test('an async wait with nothing coming times out, while its owner keeps Node alive', async () => {
    const consumer = new RingConsumer(createRingBuffer(16));
    // A pending Atomics.waitAsync holds no handle: without this timer the process would
    // exit under the test with the promise unsettled.
    const keepAlive = setInterval(() => {}, 1000);
    try {
      assert.equal(await consumer.waitForDataAsync(5), 'timed-out');
    } finally {
      clearInterval(keepAlive);
    }
  });
});

type Op =
  | { kind: 'stage'; lengthBytes: number; viaReserve: boolean }
  | { kind: 'write'; lengthBytes: number }
  | { kind: 'publish' }
  | { kind: 'read' }
  | { kind: 'release' }
  | { kind: 'drain'; maxFrames: number }
  | { kind: 'canWrite'; lengthBytes: number };

function opArbitrary(capacityBytes: number): fc.Arbitrary<Op> {
  // Lengths up to a little past the largest frame, biased toward the edges: zero, tiny,
  // exactly the largest, one too many.
  const lengthBytes = fc.oneof(
    fc.integer({ min: 0, max: capacityBytes }),
    fc.constantFrom(
      0,
      1,
      3,
      4,
      5,
      capacityBytes - FRAME_HEADER_BYTES,
      capacityBytes - FRAME_HEADER_BYTES + 1,
    ),
    fc.integer({ min: 0, max: 12 }),
  );
  return fc.oneof(
    {
      weight: 4,
      arbitrary: fc.record({ kind: fc.constant('stage' as const), lengthBytes, viaReserve: fc.boolean() }),
    },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('write' as const), lengthBytes }) },
    { weight: 2, arbitrary: fc.constant({ kind: 'publish' as const }) },
    { weight: 4, arbitrary: fc.constant({ kind: 'read' as const }) },
    { weight: 2, arbitrary: fc.constant({ kind: 'release' as const }) },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('drain' as const),
        maxFrames: fc.integer({ min: 0, max: 6 }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('canWrite' as const), lengthBytes }) },
  );
}

function recordsBytes(frames: ModelFrame[]): number {
  return frames.reduce((sum, frame) => sum + frameRecordBytes(frame.lengthBytes), 0);
}

interface ModelFrame {
  seq: number;
  lengthBytes: number;
  /** Free-running position of the frame's length word. */
  position: number;
}

/**
 * The naive model: arrays of frames and a byte count. `used` is everything not yet
 * released (read, published and staged frames), and a frame fits iff used + record <= capacity.
 */
class RingModel {
  staged: ModelFrame[] = [];
  visible: ModelFrame[] = [];
  unreleasedBytes = 0;
  writePosition: number;

  constructor(
    readonly capacityBytes: number,
    initialPositionBytes: number,
  ) {
    this.writePosition = initialPositionBytes;
  }

  /** What the header shows: published frames not yet released. */
  publishedBytes(): number {
    return this.unreleasedBytes + recordsBytes(this.visible);
  }

  /** What the producer must count: everything not yet released, staged frames included. */
  usedBytes(): number {
    return this.publishedBytes() + recordsBytes(this.staged);
  }

  fits(lengthBytes: number): boolean {
    return this.usedBytes() + frameRecordBytes(lengthBytes) <= this.capacityBytes;
  }

  isSplit(frame: ModelFrame): boolean {
    const payloadOffset = ((frame.position % this.capacityBytes) + FRAME_HEADER_BYTES) % this.capacityBytes;
    return payloadOffset + frame.lengthBytes > this.capacityBytes;
  }
}

describe('ring: property test against an array model', () => {
  test('FIFO order, content, full and empty exactly as the model says, across the 2^31 and 2^32 wraps', () => {
    const scenario = fc
      .record({
        capacityBytes: fc.constantFrom(16, 32, 64, 256),
        initialPositionBytes: fc.constantFrom(0, 2 ** 31 - 40, 2 ** 32 - 4, 2 ** 32 - 100, 2 ** 32 - 256),
      })
      .chain(({ capacityBytes, initialPositionBytes }) =>
        fc.record({
          capacityBytes: fc.constant(capacityBytes),
          initialPositionBytes: fc.constant(initialPositionBytes),
          ops: fc.array(opArbitrary(capacityBytes), { minLength: 1, maxLength: 200 }),
        }),
      );
    fc.assert(
      fc.property(scenario, ({ capacityBytes, initialPositionBytes, ops }) => {
        const buffer = createRingBuffer(capacityBytes, { initialPositionBytes });
        const producer = new RingProducer(buffer);
        const consumer = new RingConsumer(buffer);
        const model = new RingModel(capacityBytes, initialPositionBytes);
        // Views read since the last release: they must still hold their bytes until it.
        let heldViews: { seq: number; view: Uint8Array }[] = [];
        let seq = 0;

        const expectFrame = (frame: Uint8Array | null, expected: ModelFrame | undefined): void => {
          if (expected === undefined) {
            assert.equal(frame, null, 'the model says the ring is empty');
            return;
          }
          assert.ok(frame !== null, `the model expects frame ${expected.seq}`);
          assert.deepEqual(
            frame,
            patternFrame(expected.seq, expected.lengthBytes),
            `content of frame ${expected.seq}`,
          );
          assert.equal(
            frame.buffer !== buffer,
            model.isSplit(expected),
            `copy only for a split frame ${expected.seq}`,
          );
          model.unreleasedBytes += frameRecordBytes(expected.lengthBytes);
          heldViews.push({ seq: expected.seq, view: frame });
        };
        const release = (): void => {
          for (const { seq: heldSeq, view } of heldViews) {
            assert.deepEqual(
              view,
              patternFrame(heldSeq, view.length),
              `frame ${heldSeq} changed before release`,
            );
          }
          heldViews = [];
          model.unreleasedBytes = 0;
        };
        /** Stages one frame through `write` and says whether the model let it in. */
        const stage = (lengthBytes: number, write: (payload: Uint8Array) => boolean): boolean => {
          if (lengthBytes > capacityBytes - FRAME_HEADER_BYTES) {
            assert.throws(() => write(new Uint8Array(lengthBytes)), RangeError);
            return false;
          }
          const fits = model.fits(lengthBytes);
          assert.equal(write(patternFrame(seq, lengthBytes)), fits, `room for ${lengthBytes} bytes`);
          if (fits) {
            model.staged.push({ seq, lengthBytes, position: model.writePosition });
            model.writePosition += frameRecordBytes(lengthBytes);
            seq++;
          }
          return fits;
        };

        for (const op of ops) {
          switch (op.kind) {
            case 'stage':
              stage(op.lengthBytes, (payload) => {
                if (!op.viaReserve) return producer.tryStage(payload);
                const target = producer.tryReserve(payload.length);
                if (target === null) return false;
                target.set(payload);
                producer.commit();
                return true;
              });
              break;
            case 'write':
              // A successful tryWrite publishes everything staged before it, too.
              if (stage(op.lengthBytes, (payload) => producer.tryWrite(payload))) {
                model.visible.push(...model.staged);
                model.staged = [];
              }
              break;
            case 'publish':
              assert.equal(producer.publish(), model.staged.length);
              model.visible.push(...model.staged);
              model.staged = [];
              break;
            case 'read':
              expectFrame(consumer.tryRead(), model.visible.shift());
              break;
            case 'release':
              release();
              consumer.release();
              break;
            case 'drain': {
              const expectedFrames = Math.min(op.maxFrames, model.visible.length);
              let handled = 0;
              const drained = consumer.drain((frame) => {
                expectFrame(frame, model.visible.shift());
                handled++;
              }, op.maxFrames);
              assert.equal(drained, expectedFrames);
              assert.equal(handled, expectedFrames);
              release();
              break;
            }
            case 'canWrite':
              if (op.lengthBytes > capacityBytes - FRAME_HEADER_BYTES) {
                assert.throws(() => producer.canWrite(op.lengthBytes), RangeError);
              } else {
                assert.equal(producer.canWrite(op.lengthBytes), model.fits(op.lengthBytes));
              }
              break;
          }
          assert.equal(producer.stagedFrames, model.staged.length);
          assert.equal(consumer.hasData(), model.visible.length > 0, 'empty exactly when the model is');
          assert.equal(
            readRingStats(buffer).usedBytes,
            model.publishedBytes(),
            'published, unreleased bytes',
          );
        }
        // Everything published comes out, in order, after the run.
        producer.publish();
        model.visible.push(...model.staged);
        model.staged = [];
        consumer.drain((frame) => expectFrame(frame, model.visible.shift()));
        release();
        assert.equal(model.visible.length, 0);
        assert.equal(consumer.tryRead(), null);
        const stats = readRingStats(buffer);
        assert.equal(stats.usedBytes, 0);
        assert.equal(stats.framesPublished, seq);
        assert.equal(stats.framesReleased, seq);
        assert.equal(stats.dataNotifies + stats.spaceNotifies, 0, 'nobody slept, so nobody was notified');
      }),
      { numRuns: 300 },
    );
  });
});

function startWorker(data: RingWorkerData): { worker: Worker; result: Promise<RingWorkerResult> } {
  const worker = new Worker(new URL('./ring-worker.js', import.meta.url), { workerData: data });
  const result = new Promise<RingWorkerResult>((resolve, reject) => {
    worker.once('message', (message: RingWorkerResult) => resolve(message));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`ring worker exited with code ${code} before reporting`)));
  });
  return { worker, result };
}

function openGate(gateBuffer: SharedArrayBuffer): void {
  const gate = new Int32Array(gateBuffer);
  Atomics.store(gate, 0, 1);
  Atomics.notify(gate, 0);
}

describe('ring: two threads', () => {
  const FRAMES = 200_000;

  test('a worker produces, the main thread consumes with waitForDataAsync', { timeout: 30_000 }, async () => {
    const capacityBytes = 64 * 1024;
    const maxFrameBytes = 3000;
    // Start near 2^32 so the counters wrap while the threads run.
    const ringBuffer = createRingBuffer(capacityBytes, { initialPositionBytes: 2 ** 32 - 4096 });
    const gateBuffer = new SharedArrayBuffer(4);
    const consumer = new RingConsumer(ringBuffer);
    const { worker, result } = startWorker({
      role: 'producer',
      ringBuffer,
      gateBuffer,
      frames: FRAMES,
      maxFrameBytes,
      timeoutMs: WAIT_TIMEOUT_MS,
    });
    try {
      // Asleep on an empty ring before the producer may write (the gate holds it): this wait
      // really sleeps, and the producer's first publish has to notify.
      const firstWait = consumer.waitForDataAsync(WAIT_TIMEOUT_MS);
      assert.equal(readRingStats(ringBuffer).consumerSleeping, true);
      openGate(gateBuffer);
      let outcome = await firstWait;
      let seq = 0;
      let error: string | null = null;
      for (;;) {
        assert.notEqual(outcome, 'timed-out', `no frame for ${WAIT_TIMEOUT_MS} ms after ${seq} frames`);
        consumer.drain((frame) => {
          if (error === null) error = checkFrame(seq, frame, maxFrameBytes);
          seq++;
        });
        assert.equal(error, null);
        if (outcome === 'closed') break;
        outcome = await consumer.waitForDataAsync(WAIT_TIMEOUT_MS);
      }
      assert.deepEqual(await result, { frames: FRAMES, error: null });
      assert.equal(seq, FRAMES);
      const stats = readRingStats(ringBuffer);
      assert.equal(stats.framesPublished, FRAMES);
      assert.equal(stats.framesReleased, FRAMES);
      assert.equal(stats.usedBytes, 0);
      assert.ok(stats.consumerSleeps >= 1 && stats.dataNotifies >= 1, JSON.stringify(stats));
      assert.ok(stats.publishes < stats.framesPublished, 'frames were published in batches');
    } finally {
      await worker.terminate();
    }
  });

  test('the main thread produces with backpressure into a small ring, a worker consumes with Atomics.wait', {
    timeout: 30_000,
  }, async () => {
    const capacityBytes = 4096;
    const maxFrameBytes = 1000;
    // Start near 2^31, where the Int32 holding the counters turns negative.
    const ringBuffer = createRingBuffer(capacityBytes, { initialPositionBytes: 2 ** 31 - 1024 });
    const gateBuffer = new SharedArrayBuffer(4);
    const producer = new RingProducer(ringBuffer);
    const { worker, result } = startWorker({
      role: 'consumer',
      ringBuffer,
      gateBuffer,
      frames: FRAMES,
      maxFrameBytes,
      timeoutMs: WAIT_TIMEOUT_MS,
    });
    try {
      // Handshake: wait until the worker has said it is asleep on the empty ring.
      const deadlineMs = performance.now() + WAIT_TIMEOUT_MS;
      while (!readRingStats(ringBuffer).consumerSleeping) {
        assert.ok(performance.now() < deadlineMs, 'the consumer never went to sleep');
        await nextTurn();
      }
      let seq = 0;
      let sawFull = false;
      let scratch = new Uint8Array(maxFrameBytes);
      const payloadFor = (frameSeq: number): Uint8Array => {
        const lengthBytes = frameLengthFor(frameSeq, maxFrameBytes);
        if (scratch.length < lengthBytes) scratch = new Uint8Array(lengthBytes);
        const payload = scratch.subarray(0, lengthBytes);
        fillFrame(frameSeq, payload);
        return payload;
      };
      // Fill the ring: the worker wakes but reads nothing until the gate opens, so it must
      // fill up and refuse a frame, and our wait for room must sleep.
      while (producer.tryWrite(payloadFor(seq))) seq++;
      sawFull = true;
      const spaceWait = producer.waitForSpaceAsync(frameLengthFor(seq, maxFrameBytes), WAIT_TIMEOUT_MS);
      assert.equal(readRingStats(ringBuffer).producerSleeping, true);
      openGate(gateBuffer);
      assert.equal(await spaceWait, 'ready');
      while (seq < FRAMES) {
        const payload = payloadFor(seq);
        if (producer.tryStage(payload)) {
          seq++;
          if (seq % 8 === 0) producer.publish();
          continue;
        }
        sawFull = true;
        const outcome = await producer.waitForSpaceAsync(payload.length, WAIT_TIMEOUT_MS);
        assert.equal(outcome, 'ready', `no room for ${WAIT_TIMEOUT_MS} ms at frame ${seq}`);
      }
      producer.close();
      assert.deepEqual(await result, { frames: FRAMES, error: null, firstWait: 'ready' });
      assert.ok(sawFull);
      const stats = readRingStats(ringBuffer);
      assert.equal(stats.framesPublished, FRAMES);
      assert.equal(stats.framesReleased, FRAMES);
      assert.ok(stats.dataNotifies >= 1, 'the sleeping consumer was notified');
      assert.ok(stats.producerSleeps >= 1 && stats.spaceNotifies >= 1, JSON.stringify(stats));
    } finally {
      await worker.terminate();
    }
  });

  test('ping-pong: every frame crosses a sleep and a wake-up on both sides, none is lost', {
    timeout: 30_000,
  }, async () => {
    const roundTrips = 10_000;
    const maxFrameBytes = 200;
    const requestBuffer = createRingBuffer(256);
    const replyBuffer = createRingBuffer(256);
    const requests = new RingProducer(requestBuffer);
    const replies = new RingConsumer(replyBuffer);
    const { worker, result } = startWorker({
      role: 'echo',
      ringBuffer: requestBuffer,
      replyBuffer,
      gateBuffer: new SharedArrayBuffer(4),
      frames: roundTrips,
      maxFrameBytes,
      timeoutMs: WAIT_TIMEOUT_MS,
    });
    try {
      for (let seq = 0; seq < roundTrips; seq++) {
        const payload = new Uint8Array(frameLengthFor(seq, maxFrameBytes));
        fillFrame(seq, payload);
        assert.equal(requests.tryWrite(payload), true, 'one frame in flight always fits');
        const outcome = await replies.waitForDataAsync(WAIT_TIMEOUT_MS);
        assert.equal(outcome, 'ready', `no reply to frame ${seq} within ${WAIT_TIMEOUT_MS} ms`);
        const reply = replies.tryRead();
        assert.ok(reply !== null);
        assert.equal(checkFrame(seq, reply, maxFrameBytes), null);
        assert.equal(replies.tryRead(), null, 'exactly one reply');
      }
      requests.close();
      assert.equal(await replies.waitForDataAsync(WAIT_TIMEOUT_MS), 'closed');
      assert.deepEqual(await result, { frames: roundTrips, error: null });
      const requestStats = readRingStats(requestBuffer);
      const replyStats = readRingStats(replyBuffer);
      assert.equal(requestStats.framesReleased, roundTrips);
      assert.equal(replyStats.framesReleased, roundTrips);
    } finally {
      await worker.terminate();
    }
  });

  test('a ring that holds one frame at a time: the producer waits for room on almost every frame', {
    timeout: 30_000,
  }, async () => {
    const frames = 20_000;
    const maxFrameBytes = 12; // a record of at most 16 bytes: one fills the ring
    const ringBuffer = createRingBuffer(16);
    const gateBuffer = new SharedArrayBuffer(4);
    openGate(gateBuffer);
    const producer = new RingProducer(ringBuffer);
    const { worker, result } = startWorker({
      role: 'consumer',
      ringBuffer,
      gateBuffer,
      frames,
      maxFrameBytes,
      timeoutMs: WAIT_TIMEOUT_MS,
    });
    try {
      for (let seq = 0; seq < frames; seq++) {
        const payload = new Uint8Array(frameLengthFor(seq, maxFrameBytes));
        fillFrame(seq, payload);
        while (!producer.tryWrite(payload)) {
          const outcome = await producer.waitForSpaceAsync(payload.length, WAIT_TIMEOUT_MS);
          assert.equal(outcome, 'ready', `no room for ${WAIT_TIMEOUT_MS} ms at frame ${seq}`);
        }
      }
      producer.close();
      assert.deepEqual(await result, { frames, error: null, firstWait: 'ready' });
      assert.equal(readRingStats(ringBuffer).framesReleased, frames);
    } finally {
      await worker.terminate();
    }
  });
});
