/**
 * The other thread of the ring tests (ring.test.ts): a producer or a consumer of a ring,
 * started with `new Worker(new URL('./ring-worker.js', import.meta.url), { workerData })`.
 * It also exports the frame generator and checker both sides share, so a frame's length and
 * every byte of it follow from its sequence number alone.
 *
 * A gate (one Int32 in its own SharedArrayBuffer) holds the worker back at a chosen point,
 * so the test can put the other side to sleep first: a handshake instead of a sleep.
 */
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { RingConsumer, RingProducer } from '../../src/shared/ring.js';

/** What the test passes in `workerData`. */
export interface RingWorkerData {
  /**
   * Which end of the ring this worker holds; 'echo' consumes `ringBuffer` and writes every
   * frame back, unchanged, into `replyBuffer`.
   */
  role: 'producer' | 'consumer' | 'echo';
  /** The ring, from createRingBuffer. */
  ringBuffer: SharedArrayBuffer;
  /** The ring the echo role answers on. */
  replyBuffer?: SharedArrayBuffer;
  /** One Int32: 0 holds the worker back, 1 lets it go. */
  gateBuffer: SharedArrayBuffer;
  /** Frames to write (producer) or expect (consumer). */
  frames: number;
  /** The largest payload to generate. */
  maxFrameBytes: number;
  /** Bound on every wait, so a broken ring fails the test instead of hanging it. */
  timeoutMs: number;
}

/** What the worker posts back when it is done. */
export interface RingWorkerResult {
  /** Frames written (producer) or read and verified (consumer). */
  frames: number;
  /** The first thing that went wrong, or null. */
  error: string | null;
  /** Consumer only: the first wait for data returned 'ready' (it was woken, not timed out). */
  firstWait?: string;
}

/**
 * The payload length of frame `seq`: mostly 0–64 bytes (zero-length included), now and then
 * up to `maxFrameBytes`, so frames of every size cross the end of the data area.
 */
export function frameLengthFor(seq: number, maxFrameBytes: number): number {
  const hash = Math.imul(seq ^ (seq >>> 7), 0x9e3779b1) >>> 0;
  const length = hash % 53 === 0 ? hash % (maxFrameBytes + 1) : hash % 65;
  return Math.min(length, maxFrameBytes);
}

/** Fills `frame` with the content of frame `seq`: its sequence number first, then a pattern. */
export function fillFrame(seq: number, frame: Uint8Array): void {
  for (let i = 0; i < frame.length; i++) frame[i] = (seq * 31 + i * 7) & 0xff;
  if (frame.length >= 4) new DataView(frame.buffer, frame.byteOffset, 4).setUint32(0, seq, true);
}

/** Returns why `frame` is not frame `seq`, or null when every byte is right. */
export function checkFrame(seq: number, frame: Uint8Array, maxFrameBytes: number): string | null {
  const expectedBytes = frameLengthFor(seq, maxFrameBytes);
  if (frame.length !== expectedBytes) return `frame ${seq}: ${frame.length} bytes, expected ${expectedBytes}`;
  if (frame.length >= 4) {
    const got = new DataView(frame.buffer, frame.byteOffset, 4).getUint32(0, true);
    if (got !== seq) return `frame ${seq}: carries sequence number ${got}`;
  }
  for (let i = 4; i < frame.length; i++) {
    if (frame[i] !== ((seq * 31 + i * 7) & 0xff)) return `frame ${seq}: byte ${i} is wrong`;
  }
  return null;
}

function waitForGate(gate: Int32Array, timeoutMs: number): boolean {
  // A loop, because Atomics.wait may return early; bounded by the timeout.
  const deadlineMs = performance.now() + timeoutMs;
  while (Atomics.load(gate, 0) === 0) {
    const leftMs = deadlineMs - performance.now();
    if (leftMs <= 0) return false;
    Atomics.wait(gate, 0, 0, leftMs);
  }
  return true;
}

function runProducer(data: RingWorkerData): RingWorkerResult {
  const producer = new RingProducer(data.ringBuffer);
  const gate = new Int32Array(data.gateBuffer);
  if (!waitForGate(gate, data.timeoutMs)) return { frames: 0, error: 'producer: the gate never opened' };
  let scratch = new Uint8Array(data.maxFrameBytes);
  for (let seq = 0; seq < data.frames; seq++) {
    const lengthBytes = frameLengthFor(seq, data.maxFrameBytes);
    // Every third frame is encoded in place through a reservation; the others are copied in.
    const viaReserve = seq % 3 === 0;
    for (;;) {
      if (viaReserve) {
        const target = producer.tryReserve(lengthBytes);
        if (target !== null) {
          fillFrame(seq, target);
          producer.commit();
          break;
        }
      } else {
        if (scratch.length < lengthBytes) scratch = new Uint8Array(lengthBytes);
        const payload = scratch.subarray(0, lengthBytes);
        fillFrame(seq, payload);
        if (producer.tryStage(payload)) break;
      }
      const outcome = producer.waitForSpace(lengthBytes, data.timeoutMs);
      if (outcome !== 'ready') return { frames: seq, error: `producer: waitForSpace returned ${outcome}` };
    }
    // Batches of 1 to 16 frames, one publish each.
    if (((seq * 7) & 15) === 0 || seq % 16 === 15) producer.publish();
  }
  producer.close();
  return { frames: data.frames, error: null };
}

function runConsumer(data: RingWorkerData): RingWorkerResult {
  const consumer = new RingConsumer(data.ringBuffer);
  const gate = new Int32Array(data.gateBuffer);
  // Asleep on an empty ring before the test writes anything: the test sees consumerSleeping.
  const firstWait = consumer.waitForData(data.timeoutMs);
  if (firstWait !== 'ready')
    return { frames: 0, error: `consumer: first wait returned ${firstWait}`, firstWait };
  // Read nothing until the test has filled the ring and gone to sleep waiting for room.
  if (!waitForGate(gate, data.timeoutMs))
    return { frames: 0, error: 'consumer: the gate never opened', firstWait };
  let seq = 0;
  let error: string | null = null;
  const check = (frame: Uint8Array): void => {
    if (error === null) error = checkFrame(seq, frame, data.maxFrameBytes);
    seq++;
  };
  for (;;) {
    consumer.drain(check);
    if (error !== null) break;
    const outcome = consumer.waitForData(data.timeoutMs);
    if (outcome === 'closed') break;
    if (outcome === 'timed-out') {
      error = `consumer: timed out after ${seq} frames`;
      break;
    }
  }
  consumer.close();
  if (error === null && seq !== data.frames) error = `consumer: read ${seq} frames, expected ${data.frames}`;
  return { frames: seq, error, firstWait };
}

/** Sends every frame straight back, one at a time, so each one crosses a sleep on both sides. */
function runEcho(data: RingWorkerData): RingWorkerResult {
  if (data.replyBuffer === undefined) return { frames: 0, error: 'echo: no reply ring' };
  const requests = new RingConsumer(data.ringBuffer);
  const replies = new RingProducer(data.replyBuffer);
  let frames = 0;
  for (;;) {
    const outcome = requests.waitForData(data.timeoutMs);
    if (outcome === 'closed') break;
    if (outcome === 'timed-out') return { frames, error: `echo: timed out after ${frames} frames` };
    for (let frame = requests.tryRead(); frame !== null; frame = requests.tryRead()) {
      while (!replies.tryStage(frame)) {
        const space = replies.waitForSpace(frame.length, data.timeoutMs);
        if (space !== 'ready') return { frames, error: `echo: waitForSpace returned ${space}` };
      }
      frames++;
    }
    // Give the requests back before the replies become visible: whoever sees a reply finds
    // room for its next request.
    requests.release();
    replies.publish();
  }
  replies.close();
  return { frames, error: null };
}

if (!isMainThread && parentPort !== null) {
  const data = workerData as RingWorkerData;
  const result =
    data.role === 'producer' ? runProducer(data) : data.role === 'echo' ? runEcho(data) : runConsumer(data);
  parentPort.postMessage(result);
}
