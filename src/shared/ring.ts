/**
 * A single-producer/single-consumer ring of variable-length byte frames in one
 * SharedArrayBuffer: the way the threads of a node hand each other bulk traffic
 * (DESIGN.md, "Crossing threads"). One thread writes through a {@link RingProducer}, one
 * other thread reads through a {@link RingConsumer}; the buffer itself travels to a worker
 * in `workerData`.
 *
 * ## Buffer layout
 *
 * ```
 *  byte   line  Int32 slot / BigInt64 slot   written by            why it sits here
 *  ────   ────  ───────────────────────────  ────────────────────  ───────────────────────────────────────
 *     0     0   [0] magic 'RING'             creator, once         constants: read by both sides, never
 *           .   [1] layout version           creator, once         written again, so this line is only
 *           .   [2] capacityBytes            creator, once         ever shared, never bounced
 *   128     1   [32] tail                    producer              the published write position; the
 *                                                                  consumer loads it whenever it catches up
 *   256     2   [64] head                    consumer              the released read position; the
 *                                                                  producer loads it only when short of room
 *   384     3   [96] consumerSleeping        consumer 1, prod. 0   the consumer's Atomics.wait word; written
 *                                                                  only around sleeps, so the producer's
 *                                                                  per-publish load of it stays a cache hit
 *   512     4   [128] producerSleeping       producer 1, cons. 0   the same, in the other direction
 *   640     5   [160] producerClosed         producer              end-of-stream flags: rare writes, read on
 *           .   [161] consumerClosed         consumer              the slow path before sleeping
 *   768     6   [192] framesPublished u32    producer              the producer's counters: a line of their
 *           .   [193] publishes u32          producer              own, so counting never writes to a line
 *           .   BigInt64 [97] dataNotifies   producer              the consumer polls
 *           .   BigInt64 [98] producerSleeps producer
 *   896     7   [224] framesReleased u32     consumer              the consumer's counters, likewise
 *           .   [225] releases u32           consumer
 *           .   BigInt64 [113] spaceNotifies consumer
 *           .   BigInt64 [114] consumerSleeps consumer
 *  1024         data area, capacityBytes (a power of two)
 * ```
 *
 * Lines are 128 bytes, not 64: on x86 the adjacent-line prefetcher moves 64-byte lines in
 * pairs, so two hot words 64 bytes apart still ping-pong between cores (Folly's
 * `hardware_destructive_interference_size` and crossbeam's `CachePadded` use 128 too).
 *
 * ## Frames
 *
 * ```
 *   pos & mask
 *       v
 *   ... [ length: u32 | payload: length bytes | pad to 4 ] [ length | ...
 *       '-------------- record: align4(4 + length) -----'
 * ```
 *
 * A record starts at a 4-aligned offset and the capacity is a multiple of 4, so the length
 * word is always contiguous. The payload may run off the end of the data area and continue
 * at offset 0 (a split frame). Splitting instead of padding to the end with a skip marker
 * keeps every byte of capacity usable and lets one frame be as large as the ring
 * (`capacityBytes - 4`); with a skip marker the largest frame that can always be written is
 * half the ring. The price is one copy: the consumer gets a view into the ring for every
 * frame that is contiguous, and a fresh copy for the one frame per lap that is split
 * (at most one per release window: unreleased bytes never exceed the capacity, so they
 * cross the end of the data area at most once). Zero-length frames are allowed.
 *
 * ## Positions, empty and full
 *
 * `head` and `tail` are free-running byte counters modulo 2^32, stored as Int32 and read
 * back with `>>> 0`. The offset of a position is `pos & (capacityBytes - 1)`; because the
 * capacity is a power of two it divides 2^32, so the offset stays continuous when the
 * counter wraps from 2^32 - 1 to 0, and `used = (tail - head) >>> 0` is exact as long as it
 * is below 2^32, which the ring guarantees (used <= capacityBytes <= 2^30). Nothing breaks
 * after 2^31 or 2^32 bytes: only differences and masks are ever taken.
 *
 * - **Empty**: `tail == head` (used == 0).
 * - **Full, for a frame of `n` payload bytes**: `used + align4(4 + n) > capacityBytes`.
 *   At `used == capacityBytes` nothing fits, not even a zero-length frame.
 *
 * Unlike undici's `fixed-queue.js`, whose indexes live in `[0, size)` and which leaves one
 * slot empty to tell full from empty, the free-running counters keep the distance itself,
 * so the whole capacity is usable.
 *
 * Why not 53-bit counters: a BigInt64Array with Atomics costs an allocation per load and a
 * BigInt-to-Number conversion before every mask. Measured on the project machine (Node 20,
 * `node dist/native-bench/ring-bench.js --indexes`, 2·10^7 iterations; the host's load moves
 * the figures, the ratio holds): `Atomics.store` + `Atomics.load` of an Int32 15–26 ns, of
 * a BigInt64 (`BigInt(i)` in, `Number(...)` out) 40–66 ns. Two Int32 halves cannot be
 * stored in one atomic step and would need a seqlock (four stores per publish, ~30 ns).
 *
 * The counters follow the same reasoning. The wake-up counters are BigInt64, bumped with
 * `Atomics.add` (13–22 ns, against 8–13 for an Int32) only around a sleep or a notify,
 * which costs microseconds anyway, so they never wrap. The frame and batch counters
 * change on every publish and release, the hot path, so they are Int32 that only their
 * owner writes, with plain stores (no locked instruction; an aligned Int32 access never
 * tears) ordered before the `Atomics.store` of the position. They wrap modulo 2^32:
 * readers take differences with `(now - then) >>> 0` and sample more often than every 2^32
 * frames (minutes at full speed).
 * Measured with `ring-bench.js --single --batch 1` (both ends on one thread, every frame
 * published and released alone): 160 ns per frame with four `Atomics.add` of BigInt64
 * counters per frame, 115 ns with these plain Int32 stores.
 *
 * ## Batching
 *
 * Written frames stay invisible until {@link RingProducer.publish}: one `Atomics.store`
 * of the tail and at most one `Atomics.notify` per batch. Read frames keep their bytes
 * until {@link RingConsumer.release}: one `Atomics.store` of the head and at most one
 * `Atomics.notify` per batch.
 *
 * ## Sleeping without lost wake-ups
 *
 * A side that finds nothing to do sleeps on its own "sleeping" word; the other side calls
 * `Atomics.notify` only when it finds that word set, so a busy ring costs no notify at all.
 * The sleeper (the consumer waiting for data; the producer waiting for room is the mirror
 * image, with head and producerSleeping):
 *
 *   1. finds the ring empty;
 *   2. stores consumerSleeping = 1;
 *   3. checks again for data (and for producerClosed); if there is some, stores 0 and
 *      returns;
 *   4. `Atomics.wait(consumerSleeping, 1)`: sleeps only while the word is still 1;
 *   5. on waking, stores consumerSleeping = 0 and checks again.
 *
 * The waker (the producer publishing):
 *
 *   a. stores the new tail (or producerClosed);
 *   b. loads consumerSleeping; if it is 1, exchanges it for 0 and, if the exchange saw 1,
 *      calls `Atomics.notify`.
 *
 * Without step 3 a wake-up is lost: the consumer does 1, the producer does a and then b
 * (sees 0, no notify), the consumer does 2 and 4 and sleeps with a frame in the ring.
 * With it, all these Atomics are sequentially consistent, so either the producer's load in
 * b comes after the store in 2 (it sees 1 and notifies), or it comes before, and then the
 * store in a also comes before 2, so the load in 3 sees the new tail. What is left is the
 * producer notifying between 3 and 4, when nobody waits yet: it has cleared the word in b,
 * and `Atomics.wait` sleeps only if the word still holds 1, checked under the same lock
 * that `notify` takes, so 4 returns "not-equal" at once. Waiting on the sleeping word
 * rather than on `tail` is what lets `close()` wake a sleeper too: closing does not move
 * the tail. Because the waker clears the word, one sleep costs at most one notify. A notify
 * can still find nobody asleep (the consumer saw data in 3 and cleared the word itself after
 * the producer's load in b): `dataNotifies` counts notifies sent, `consumerSleeps` the
 * sleeps that really happened.
 *
 * Each endpoint runs one wait at a time; two overlapping waits on one side are a bug.
 *
 * ## Blocking and the event loop
 *
 * `waitForData`/`waitForSpace` block the calling thread in `Atomics.wait`: for workers.
 * `waitForDataAsync`/`waitForSpaceAsync` use `Atomics.waitAsync` and never block: for the
 * main thread. A pending `waitAsync` does **not** keep Node alive: if nothing else holds
 * the event loop open (a socket, a timer, the `Worker` object of the other side), the
 * process may exit with the promise unsettled. The owner of the ring keeps such a handle
 * for as long as it waits.
 *
 * ## Wake-up accounting
 *
 * The header counts notifies sent and waits that actually slept (an `Atomics.wait` that
 * returned "ok" or "timed-out", a `waitAsync` that went asynchronous), next to frames and
 * batches, so that the project can report wake-ups per entry; see {@link readRingStats}.
 */

/**
 * The largest data area a ring may have. The free-running 32-bit counters tell full from
 * empty only while the capacity is below 2^32, and the capacity itself is kept in an Int32
 * slot; 2^30 leaves a wide margin (and is more than any ring of a node needs).
 */
export const MAX_RING_CAPACITY_BYTES = 2 ** 30;

/** The smallest data area a ring may have. */
export const MIN_RING_CAPACITY_BYTES = 16;

/** Bytes of the length word in front of every frame. */
export const FRAME_HEADER_BYTES = 4;

/** Why a wait returned: the thing waited for is there, the time ran out, or the other side closed. */
export type RingWaitResult = 'ready' | 'timed-out' | 'closed';

/** Options for {@link createRingBuffer}. */
export interface CreateRingOptions {
  /**
   * Where the free-running head and tail counters start (a multiple of 4 below 2^32,
   * default 0). Tests set it just below 2^31 or 2^32 to cross the wrap-around quickly.
   */
  initialPositionBytes?: number;
}

/** Options for {@link RingProducer} and {@link RingConsumer}. */
export interface RingEndpointOptions {
  /**
   * How many times a synchronous wait polls the ring before it sleeps (default 0). A short
   * spin saves a sleep and a notify when the other side is about to act; on a machine with
   * fewer cores than busy threads it only burns a core. Asynchronous waits never spin.
   */
  spinIterations?: number;
}

/**
 * The counters in a ring's header, as read at one moment (each counter is exact, the set is
 * not a snapshot). Frame and batch counters wrap modulo 2^32: compare two samples with
 * `(now - then) >>> 0`. Wake-up counters do not wrap.
 */
export interface RingStats {
  /** Size of the data area. */
  capacityBytes: number;
  /** Bytes published and not yet released by the consumer. */
  usedBytes: number;
  /** Frames made visible to the consumer, modulo 2^32. */
  framesPublished: number;
  /** Calls to publish that made at least one frame visible, modulo 2^32. */
  publishes: number;
  /** Frames whose bytes the consumer has given back, modulo 2^32. */
  framesReleased: number;
  /** Calls to release that gave back at least one frame, modulo 2^32. */
  releases: number;
  /** Notifies the producer sent to wake a sleeping consumer. */
  dataNotifies: number;
  /** Waits in which the consumer actually slept. */
  consumerSleeps: number;
  /** Notifies the consumer sent to wake a producer waiting for room. */
  spaceNotifies: number;
  /** Waits in which the producer actually slept. */
  producerSleeps: number;
  /** The producer has closed its end. */
  producerClosed: boolean;
  /** The consumer has closed its end. */
  consumerClosed: boolean;
  /** The consumer has announced that it is (about to be) asleep, waiting for data. */
  consumerSleeping: boolean;
  /** The producer has announced that it is (about to be) asleep, waiting for room. */
  producerSleeping: boolean;
}

const RING_MAGIC = 0x52494e47; // 'RING'
const RING_LAYOUT_VERSION = 1;
const CACHE_LINE_BYTES = 128;
const HEADER_BYTES = 8 * CACHE_LINE_BYTES;

// Int32 slot indexes (byte offset / 4), one hot word per 128-byte line; see the layout
// above. Plain constants rather than an enum, so the hot paths index with literals.
const SLOT_MAGIC = 0; // byte 0
const SLOT_VERSION = 1; // byte 4
const SLOT_CAPACITY_BYTES = 2; // byte 8
const SLOT_TAIL = 32; // byte 128
const SLOT_HEAD = 64; // byte 256
const SLOT_CONSUMER_SLEEPING = 96; // byte 384
const SLOT_PRODUCER_SLEEPING = 128; // byte 512
const SLOT_PRODUCER_CLOSED = 160; // byte 640
const SLOT_CONSUMER_CLOSED = 161; // byte 644

const SLOT_FRAMES_PUBLISHED = 192; // byte 768: the producer's counters
const SLOT_PUBLISHES = 193; // byte 772
const SLOT_FRAMES_RELEASED = 224; // byte 896: the consumer's counters
const SLOT_RELEASES = 225; // byte 900

// BigInt64 counter indexes (byte offset / 8); see the layout above.
const COUNTER_DATA_NOTIFIES = 97; // byte 776
const COUNTER_PRODUCER_SLEEPS = 98; // byte 784
const COUNTER_SPACE_NOTIFIES = 113; // byte 904
const COUNTER_CONSUMER_SLEEPS = 114; // byte 912

/**
 * Up to this many bytes a byte loop beats `Uint8Array.prototype.set`, whose fixed cost
 * dominates small copies. Measured with `ring-bench.js --single --batch 64` (ns per frame,
 * write + read): 8 bytes 26 by loop / 35 by set; 16 bytes 37 / 33; 32 bytes 65 / 37.
 */
const SMALL_COPY_BYTES = 12;

/** What `Atomics.waitAsync` returns. */
export type WaitAsyncResult =
  | { async: false; value: 'not-equal' | 'timed-out' }
  | { async: true; value: Promise<'ok' | 'timed-out'> };

// `Atomics.waitAsync` is in Node since 16, but in TypeScript's lib only from ES2024.
export const atomicsWaitAsync = (
  Atomics as unknown as {
    waitAsync: (array: Int32Array, index: number, value: number, timeoutMs?: number) => WaitAsyncResult;
  }
).waitAsync;

/** One end's half of the sleeping-flag protocol: the flag it sleeps on and its two counters. */
interface SleepSide {
  readonly sleepingSlot: number;
  /** Counts waits that really slept. */
  readonly sleepsCounter: number;
  /** Counts notifies the other end sent to wake this one. */
  readonly notifiesCounter: number;
}

/** The consumer sleeps waiting for data; the producer wakes it. */
const CONSUMER_SIDE: SleepSide = {
  sleepingSlot: SLOT_CONSUMER_SLEEPING,
  sleepsCounter: COUNTER_CONSUMER_SLEEPS,
  notifiesCounter: COUNTER_DATA_NOTIFIES,
};

/** The producer sleeps waiting for space; the consumer wakes it. */
const PRODUCER_SIDE: SleepSide = {
  sleepingSlot: SLOT_PRODUCER_SLEEPING,
  sleepsCounter: COUNTER_PRODUCER_SLEEPS,
  notifiesCounter: COUNTER_SPACE_NOTIFIES,
};

/**
 * Steps 2-5 of the protocol in the module comment, for either end: raise the flag, look
 * again (`outcome` non-null means data/space arrived, the other end closed, or time ran
 * out), and only then sleep on the flag. The next turn of the loop returns the outcome.
 */
function sleepUntil(
  control: Int32Array,
  counters: BigInt64Array,
  side: SleepSide,
  deadlineMs: number,
  outcome: () => RingWaitResult | null,
): RingWaitResult {
  for (;;) {
    const result = outcome();
    if (result !== null) return result;
    Atomics.store(control, side.sleepingSlot, 1);
    if (outcome() === null) {
      const slept = Atomics.wait(control, side.sleepingSlot, 1, remainingMs(deadlineMs));
      if (slept !== 'not-equal') Atomics.add(counters, side.sleepsCounter, 1n);
    }
    Atomics.store(control, side.sleepingSlot, 0);
  }
}

/** {@link sleepUntil} for the main thread: sleeps in `Atomics.waitAsync`, never blocks. */
async function sleepUntilAsync(
  control: Int32Array,
  counters: BigInt64Array,
  side: SleepSide,
  deadlineMs: number,
  outcome: () => RingWaitResult | null,
): Promise<RingWaitResult> {
  for (;;) {
    const result = outcome();
    if (result !== null) return result;
    Atomics.store(control, side.sleepingSlot, 1);
    if (outcome() === null) {
      const wait = atomicsWaitAsync(control, side.sleepingSlot, 1, remainingMs(deadlineMs));
      if (wait.async) {
        Atomics.add(counters, side.sleepsCounter, 1n);
        await wait.value;
      }
    }
    Atomics.store(control, side.sleepingSlot, 0);
  }
}

/**
 * Step b of the protocol: wake `side` if it said it sleeps. A plain load first, so a busy
 * ring pays no read-modify-write; the exchange makes sure only one notify is sent per sleep.
 */
function wake(control: Int32Array, counters: BigInt64Array, side: SleepSide): void {
  if (
    Atomics.load(control, side.sleepingSlot) !== 0 &&
    Atomics.exchange(control, side.sleepingSlot, 0) !== 0
  ) {
    Atomics.notify(control, side.sleepingSlot, 1);
    Atomics.add(counters, side.notifiesCounter, 1n);
  }
}

/** Total size of the SharedArrayBuffer for a ring of `capacityBytes`: header plus data area. */
export function ringBufferBytes(capacityBytes: number): number {
  checkCapacity(capacityBytes);
  return HEADER_BYTES + capacityBytes;
}

/**
 * The largest payload a ring of `capacityBytes` accepts in one frame: the whole data area
 * less the length word.
 */
export function maxFrameBytes(capacityBytes: number): number {
  return capacityBytes - FRAME_HEADER_BYTES;
}

/** Bytes a frame of `lengthBytes` payload takes in the data area: length word, payload, padding to 4. */
export function frameRecordBytes(lengthBytes: number): number {
  return (FRAME_HEADER_BYTES + lengthBytes + 3) & ~3;
}

/**
 * Allocates and initialises a ring with a data area of `capacityBytes` (a power of two
 * between {@link MIN_RING_CAPACITY_BYTES} and {@link MAX_RING_CAPACITY_BYTES}). Pass the
 * returned buffer to both threads; each builds its own endpoint on it.
 */
export function createRingBuffer(capacityBytes: number, options: CreateRingOptions = {}): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(ringBufferBytes(capacityBytes));
  const control = new Int32Array(buffer, 0, HEADER_BYTES / 4);
  const initialPositionBytes = options.initialPositionBytes ?? 0;
  if (
    !Number.isInteger(initialPositionBytes) ||
    initialPositionBytes < 0 ||
    initialPositionBytes >= 2 ** 32 ||
    initialPositionBytes % 4 !== 0
  ) {
    throw new RangeError(
      `createRingBuffer: initialPositionBytes must be a multiple of 4 in [0, 2^32), got ${initialPositionBytes}`,
    );
  }
  control[SLOT_VERSION] = RING_LAYOUT_VERSION;
  control[SLOT_CAPACITY_BYTES] = capacityBytes;
  control[SLOT_TAIL] = initialPositionBytes | 0;
  control[SLOT_HEAD] = initialPositionBytes | 0;
  // Stored last and with a fence: an endpoint that sees the magic sees the rest.
  Atomics.store(control, SLOT_MAGIC, RING_MAGIC);
  return buffer;
}

/** Reads the counters in a ring's header; any thread may call it at any time. */
export function readRingStats(buffer: SharedArrayBuffer): RingStats {
  const { control, counters, capacityBytes } = openRing(buffer, 'readRingStats');
  const count = (slot: number): number => Number(Atomics.load(counters, slot));
  // Head first: the tail read after it can only be further on, so usedBytes is never
  // negative (it may briefly exceed the capacity, by what was released in between).
  const head = Atomics.load(control, SLOT_HEAD) >>> 0;
  const tail = Atomics.load(control, SLOT_TAIL) >>> 0;
  return {
    capacityBytes,
    usedBytes: (tail - head) >>> 0,
    framesPublished: Atomics.load(control, SLOT_FRAMES_PUBLISHED) >>> 0,
    publishes: Atomics.load(control, SLOT_PUBLISHES) >>> 0,
    framesReleased: Atomics.load(control, SLOT_FRAMES_RELEASED) >>> 0,
    releases: Atomics.load(control, SLOT_RELEASES) >>> 0,
    dataNotifies: count(COUNTER_DATA_NOTIFIES),
    consumerSleeps: count(COUNTER_CONSUMER_SLEEPS),
    spaceNotifies: count(COUNTER_SPACE_NOTIFIES),
    producerSleeps: count(COUNTER_PRODUCER_SLEEPS),
    producerClosed: Atomics.load(control, SLOT_PRODUCER_CLOSED) !== 0,
    consumerClosed: Atomics.load(control, SLOT_CONSUMER_CLOSED) !== 0,
    consumerSleeping: Atomics.load(control, SLOT_CONSUMER_SLEEPING) !== 0,
    producerSleeping: Atomics.load(control, SLOT_PRODUCER_SLEEPING) !== 0,
  };
}

/**
 * The writing end of a ring. Exactly one thread may hold a producer for a given ring at a
 * time (nothing enforces it: two producers corrupt the ring).
 *
 * Frames are written ("staged") into the ring, invisible to the consumer until
 * {@link publish}. {@link tryWrite} is stage-and-publish for one frame.
 */
export class RingProducer {
  /** Size of the data area. */
  readonly capacityBytes: number;
  /** The largest payload one frame may carry (`capacityBytes - 4`). */
  readonly maxFrameBytes: number;
  private readonly control: Int32Array;
  private readonly counters: BigInt64Array;
  private readonly bytes: Uint8Array;
  private readonly words: Int32Array;
  private readonly mask: number;
  private readonly spinIterations: number;
  /** Write position including staged frames (u32). */
  private tail: number;
  /** Write position the consumer can see (u32). */
  private publishedTail: number;
  /** Last head loaded from the header: the consumer may be further, never behind. */
  private headCache: number;
  private staged = 0;
  /** Our copies of the header's u32 counters, which only this side writes. */
  private framesPublished: number;
  private publishes: number;
  /** Payload length of the pending reservation, or -1 when there is none. */
  private reservedLengthBytes = -1;
  /** Where a reservation that would be split is written before commit copies it in. */
  private reservedScratch: Uint8Array | null = null;

  /** Opens the producing end of the ring in `buffer` (made by {@link createRingBuffer}). */
  constructor(buffer: SharedArrayBuffer, options: RingEndpointOptions = {}) {
    const ring = openRing(buffer, 'RingProducer');
    this.control = ring.control;
    this.counters = ring.counters;
    this.bytes = ring.bytes;
    this.words = ring.words;
    this.capacityBytes = ring.capacityBytes;
    this.maxFrameBytes = maxFrameBytes(ring.capacityBytes);
    this.mask = ring.capacityBytes - 1;
    this.spinIterations = checkSpinIterations(options.spinIterations);
    this.tail = Atomics.load(this.control, SLOT_TAIL) >>> 0;
    this.publishedTail = this.tail;
    this.headCache = Atomics.load(this.control, SLOT_HEAD) >>> 0;
    this.framesPublished = Atomics.load(this.control, SLOT_FRAMES_PUBLISHED);
    this.publishes = Atomics.load(this.control, SLOT_PUBLISHES);
  }

  /** Frames written since the last publish, not yet visible to the consumer. */
  get stagedFrames(): number {
    return this.staged;
  }

  /** True once the consumer has closed its end: whatever is written will not be read. */
  get consumerClosed(): boolean {
    return Atomics.load(this.control, SLOT_CONSUMER_CLOSED) !== 0;
  }

  /**
   * Whether a frame of `lengthBytes` fits now, given what the consumer has released.
   * Throws RangeError if it can never fit.
   */
  canWrite(lengthBytes: number): boolean {
    return this.hasRoom(this.recordBytes(lengthBytes, 'canWrite'));
  }

  /**
   * Writes `payload` as one frame and publishes it (with anything staged before it).
   * Returns false, writing nothing, when the ring has no room for it now: the ring never
   * drops, the caller waits ({@link waitForSpace}) or retries. Throws RangeError when the
   * payload is larger than {@link maxFrameBytes}.
   */
  tryWrite(payload: Uint8Array): boolean {
    if (!this.tryStage(payload)) return false;
    this.publish();
    return true;
  }

  /**
   * Writes `payload` as one frame without publishing it, for batches: stage many, then
   * {@link publish} once. Returns false, writing nothing, when there is no room now. Throws
   * RangeError when the payload is larger than {@link maxFrameBytes}.
   */
  tryStage(payload: Uint8Array): boolean {
    this.assertNoReservation('tryStage');
    const lengthBytes = payload.length;
    const recordBytes = this.recordBytes(lengthBytes, 'tryStage');
    if (!this.hasRoom(recordBytes)) return false;
    const offset = this.tail & this.mask;
    this.words[offset >> 2] = lengthBytes;
    const payloadOffset = (offset + FRAME_HEADER_BYTES) & this.mask;
    const firstBytes = this.capacityBytes - payloadOffset;
    if (lengthBytes <= firstBytes) {
      this.copyIn(payload, 0, lengthBytes, payloadOffset);
    } else {
      this.copyIn(payload, 0, firstBytes, payloadOffset);
      this.copyIn(payload, firstBytes, lengthBytes, 0);
    }
    this.tail = (this.tail + recordBytes) >>> 0;
    this.staged++;
    return true;
  }

  /**
   * Reserves a frame of `lengthBytes` for the caller to fill in place (encode straight into
   * the ring), or returns null when there is no room now. The returned array is a view into
   * the ring when the frame is contiguous, or a scratch copy when it would be split (copied
   * in by {@link commit}). Exactly one reservation may be pending; {@link commit} stages it.
   */
  tryReserve(lengthBytes: number): Uint8Array | null {
    this.assertNoReservation('tryReserve');
    const recordBytes = this.recordBytes(lengthBytes, 'tryReserve');
    if (!this.hasRoom(recordBytes)) return null;
    const payloadOffset = ((this.tail & this.mask) + FRAME_HEADER_BYTES) & this.mask;
    this.reservedLengthBytes = lengthBytes;
    if (payloadOffset + lengthBytes <= this.capacityBytes) {
      this.reservedScratch = null;
      return this.bytes.subarray(payloadOffset, payloadOffset + lengthBytes);
    }
    this.reservedScratch = new Uint8Array(lengthBytes);
    return this.reservedScratch;
  }

  /** Stages the frame reserved by {@link tryReserve}; it becomes visible at the next {@link publish}. */
  commit(): void {
    const lengthBytes = this.reservedLengthBytes;
    if (lengthBytes < 0) throw new Error('RingProducer.commit: no reservation is pending');
    const offset = this.tail & this.mask;
    this.words[offset >> 2] = lengthBytes;
    const scratch = this.reservedScratch;
    if (scratch !== null) {
      const payloadOffset = (offset + FRAME_HEADER_BYTES) & this.mask;
      const firstBytes = this.capacityBytes - payloadOffset;
      this.bytes.set(scratch.subarray(0, firstBytes), payloadOffset);
      this.bytes.set(scratch.subarray(firstBytes), 0);
    }
    this.reservedLengthBytes = -1;
    this.reservedScratch = null;
    this.tail = (this.tail + frameRecordBytes(lengthBytes)) >>> 0;
    this.staged++;
  }

  /**
   * Makes every staged frame visible to the consumer: one `Atomics.store` of the tail, and
   * one `Atomics.notify` only if the consumer said it is asleep. Returns the number of
   * frames published (0 when nothing was staged; then nothing is stored).
   */
  publish(): number {
    this.assertNoReservation('publish');
    if (this.tail === this.publishedTail) return 0;
    const frames = this.staged;
    this.staged = 0;
    // Plain stores of the counters (see the module comment on counters); like the plain
    // writes of the frames, they happen-before the Atomics.store of the tail below, and so
    // before the consumer's Atomics.load of it: the consumer reads complete frames.
    this.framesPublished = (this.framesPublished + frames) | 0;
    this.publishes = (this.publishes + 1) | 0;
    this.control[SLOT_FRAMES_PUBLISHED] = this.framesPublished;
    this.control[SLOT_PUBLISHES] = this.publishes;
    Atomics.store(this.control, SLOT_TAIL, this.tail | 0);
    this.publishedTail = this.tail;
    this.wakeConsumer();
    return frames;
  }

  /**
   * Blocks the calling thread (`Atomics.wait`: for workers; on the main thread it freezes
   * the event loop) until a frame of `lengthBytes` fits, the consumer closes, or
   * `timeoutMs` passes. Publishes staged frames first: the consumer cannot make room from
   * frames it cannot see. Throws RangeError when the frame can never fit.
   */
  waitForSpace(lengthBytes: number, timeoutMs = Number.POSITIVE_INFINITY): RingWaitResult {
    const recordBytes = this.recordBytes(lengthBytes, 'waitForSpace');
    this.publish();
    for (let i = 0; i < this.spinIterations; i++) {
      if (this.hasRoom(recordBytes) || this.consumerClosed) break;
    }
    const deadlineMs = deadlineFor(timeoutMs);
    return sleepUntil(this.control, this.counters, PRODUCER_SIDE, deadlineMs, () =>
      this.spaceOutcome(recordBytes, deadlineMs),
    );
  }

  /**
   * Like {@link waitForSpace}, but never blocks: sleeps in `Atomics.waitAsync`, for the
   * main thread. A pending wait does not keep Node alive; the caller holds a handle.
   */
  async waitForSpaceAsync(
    lengthBytes: number,
    timeoutMs = Number.POSITIVE_INFINITY,
  ): Promise<RingWaitResult> {
    const recordBytes = this.recordBytes(lengthBytes, 'waitForSpaceAsync');
    this.publish();
    const deadlineMs = deadlineFor(timeoutMs);
    return sleepUntilAsync(this.control, this.counters, PRODUCER_SIDE, deadlineMs, () =>
      this.spaceOutcome(recordBytes, deadlineMs),
    );
  }

  /**
   * Publishes what is staged and marks the producing end closed; a consumer reads the
   * remaining frames and then sees 'closed'. Writing after close is a bug it does not check.
   */
  close(): void {
    // An uncommitted reservation was never part of the stream: drop it.
    this.reservedLengthBytes = -1;
    this.reservedScratch = null;
    this.publish();
    Atomics.store(this.control, SLOT_PRODUCER_CLOSED, 1);
    this.wakeConsumer();
  }

  private spaceOutcome(recordBytes: number, deadlineMs: number): RingWaitResult | null {
    if (this.consumerClosed) return 'closed';
    if (this.hasRoom(recordBytes)) return 'ready';
    if (remainingMs(deadlineMs) <= 0) return 'timed-out';
    return null;
  }

  private hasRoom(recordBytes: number): boolean {
    if (((this.tail - this.headCache) >>> 0) + recordBytes <= this.capacityBytes) return true;
    this.headCache = Atomics.load(this.control, SLOT_HEAD) >>> 0;
    return ((this.tail - this.headCache) >>> 0) + recordBytes <= this.capacityBytes;
  }

  private wakeConsumer(): void {
    wake(this.control, this.counters, CONSUMER_SIDE);
  }

  private recordBytes(lengthBytes: number, operation: string): number {
    if (!Number.isInteger(lengthBytes) || lengthBytes < 0) {
      throw new RangeError(
        `RingProducer.${operation}: frame length must be a non-negative integer, got ${lengthBytes}`,
      );
    }
    if (lengthBytes > this.maxFrameBytes) {
      throw new RangeError(
        `RingProducer.${operation}: a frame of ${lengthBytes} bytes can never fit in a ring of ` +
          `${this.capacityBytes} bytes (largest frame: ${this.maxFrameBytes} bytes)`,
      );
    }
    return frameRecordBytes(lengthBytes);
  }

  private copyIn(source: Uint8Array, fromIndex: number, toIndex: number, targetOffset: number): void {
    if (toIndex - fromIndex <= SMALL_COPY_BYTES) {
      const bytes = this.bytes;
      for (let i = fromIndex, j = targetOffset; i < toIndex; i++, j++) bytes[j] = source[i] as number;
    } else if (fromIndex === 0 && toIndex === source.length) {
      this.bytes.set(source, targetOffset); // no subarray to allocate
    } else {
      this.bytes.set(source.subarray(fromIndex, toIndex), targetOffset);
    }
  }

  private assertNoReservation(operation: string): void {
    if (this.reservedLengthBytes >= 0) {
      throw new Error(`RingProducer.${operation}: a reservation is pending; commit() it first`);
    }
  }
}

/**
 * Called by {@link RingConsumer.drainRaw} for each frame: the payload is
 * `bytes[offsetBytes, offsetBytes + lengthBytes)`. `bytes` is the ring's data area (valid
 * until the drain returns) or, for a split frame, a fresh copy.
 */
export type RawFrameHandler = (bytes: Uint8Array, offsetBytes: number, lengthBytes: number) => void;

/**
 * The reading end of a ring. Exactly one thread may hold a consumer for a given ring at a
 * time (nothing enforces it).
 *
 * Frames are read in order; their bytes stay reserved until {@link release}, so a view
 * returned by {@link tryRead} is valid until the next release (or wait, which releases).
 */
export class RingConsumer {
  /** Size of the data area. */
  readonly capacityBytes: number;
  private readonly control: Int32Array;
  private readonly counters: BigInt64Array;
  private readonly bytes: Uint8Array;
  private readonly words: Int32Array;
  private readonly mask: number;
  private readonly spinIterations: number;
  /** Read position including frames read but not released (u32). */
  private head: number;
  /** Read position the producer can see (u32). */
  private releasedHead: number;
  /** Last tail loaded from the header: the producer may be further, never behind. */
  private tailCache: number;
  private readSinceRelease = 0;
  /** Our copies of the header's u32 counters, which only this side writes. */
  private framesReleased: number;
  private releases: number;
  // The frame found by nextFrame(), passed in fields rather than an object so the hot loop
  // allocates nothing for contiguous frames.
  private frameBytes: Uint8Array;
  private frameOffset = 0;
  private frameLength = 0;

  /** Opens the consuming end of the ring in `buffer` (made by {@link createRingBuffer}). */
  constructor(buffer: SharedArrayBuffer, options: RingEndpointOptions = {}) {
    const ring = openRing(buffer, 'RingConsumer');
    this.control = ring.control;
    this.counters = ring.counters;
    this.bytes = ring.bytes;
    this.words = ring.words;
    this.capacityBytes = ring.capacityBytes;
    this.mask = ring.capacityBytes - 1;
    this.spinIterations = checkSpinIterations(options.spinIterations);
    this.head = Atomics.load(this.control, SLOT_HEAD) >>> 0;
    this.releasedHead = this.head;
    this.tailCache = Atomics.load(this.control, SLOT_TAIL) >>> 0;
    this.framesReleased = Atomics.load(this.control, SLOT_FRAMES_RELEASED);
    this.releases = Atomics.load(this.control, SLOT_RELEASES);
    this.frameBytes = ring.bytes;
  }

  /** True once the producer has closed its end (frames published before may still be unread). */
  get producerClosed(): boolean {
    return Atomics.load(this.control, SLOT_PRODUCER_CLOSED) !== 0;
  }

  /** Whether at least one published frame is waiting to be read. */
  hasData(): boolean {
    if (this.head !== this.tailCache) return true;
    this.tailCache = Atomics.load(this.control, SLOT_TAIL) >>> 0;
    return this.head !== this.tailCache;
  }

  /**
   * Reads the next published frame, or returns null when there is none. The result is a
   * view into the ring (no copy) when the frame is contiguous, valid until {@link release};
   * for a frame split across the end of the data area it is a fresh copy the caller may
   * keep. The frame's bytes go back to the producer at the next release.
   */
  tryRead(): Uint8Array | null {
    if (!this.nextFrame()) return null;
    const offset = this.frameOffset;
    return this.frameBytes.subarray(offset, offset + this.frameLength);
  }

  /**
   * Reads every available frame (at most `maxFrames`), calls `onFrame` with each (a view as
   * in {@link tryRead}, valid only during the call unless it is a copy), then releases once.
   * Returns the number of frames handled. If `onFrame` throws, the frames before it are
   * released and the one that threw stays in the ring, to be read again.
   */
  drain(onFrame: (frame: Uint8Array) => void, maxFrames = Number.POSITIVE_INFINITY): number {
    // One closure per call, not per frame; a view per frame is what this form offers.
    return this.drainRaw(
      (bytes, offset, length) => onFrame(bytes.subarray(offset, offset + length)),
      maxFrames,
    );
  }

  /**
   * Like {@link drain}, but hands out (bytes, offset, length) instead of a view, so a
   * contiguous frame costs no allocation at all: for the hottest loops.
   */
  drainRaw(onFrame: RawFrameHandler, maxFrames = Number.POSITIVE_INFINITY): number {
    let frames = 0;
    let frameStart = this.head;
    let readBefore = this.readSinceRelease;
    try {
      while (frames < maxFrames) {
        frameStart = this.head;
        readBefore = this.readSinceRelease;
        if (!this.nextFrame()) break;
        onFrame(this.frameBytes, this.frameOffset, this.frameLength);
        frames++;
      }
    } catch (error) {
      // Un-read the frame that threw, so it is neither released nor lost.
      this.head = frameStart;
      this.readSinceRelease = readBefore;
      throw error;
    } finally {
      this.release();
    }
    return frames;
  }

  /**
   * Gives the bytes of every frame read so far back to the producer: one `Atomics.store`
   * of the head, and one `Atomics.notify` only if the producer said it is asleep. Views of
   * those frames must not be used afterwards.
   */
  release(): void {
    if (this.head === this.releasedHead) return;
    // Release: our reads of the frames happen-before the store of the head below, and so
    // before the producer overwrites them.
    this.framesReleased = (this.framesReleased + this.readSinceRelease) | 0;
    this.releases = (this.releases + 1) | 0;
    this.readSinceRelease = 0;
    this.control[SLOT_FRAMES_RELEASED] = this.framesReleased;
    this.control[SLOT_RELEASES] = this.releases;
    Atomics.store(this.control, SLOT_HEAD, this.head | 0);
    this.releasedHead = this.head;
    // Step b of the protocol, in the other direction.
    wake(this.control, this.counters, PRODUCER_SIDE);
  }

  /**
   * Blocks the calling thread (`Atomics.wait`: for workers) until a frame is published, the
   * producer closes with nothing left to read, or `timeoutMs` passes. Releases the frames
   * read so far first: a producer waiting for room could otherwise wait for us forever.
   */
  waitForData(timeoutMs = Number.POSITIVE_INFINITY): RingWaitResult {
    this.release();
    for (let i = 0; i < this.spinIterations; i++) {
      if (this.hasData() || this.producerClosed) break;
    }
    const deadlineMs = deadlineFor(timeoutMs);
    return sleepUntil(this.control, this.counters, CONSUMER_SIDE, deadlineMs, () =>
      this.dataOutcome(deadlineMs),
    );
  }

  /**
   * Like {@link waitForData}, but never blocks: sleeps in `Atomics.waitAsync`, for the
   * main thread. A pending wait does not keep Node alive; the caller holds a handle.
   */
  async waitForDataAsync(timeoutMs = Number.POSITIVE_INFINITY): Promise<RingWaitResult> {
    this.release();
    const deadlineMs = deadlineFor(timeoutMs);
    return sleepUntilAsync(this.control, this.counters, CONSUMER_SIDE, deadlineMs, () =>
      this.dataOutcome(deadlineMs),
    );
  }

  /**
   * Releases what was read and marks the consuming end closed; a producer waiting for room
   * sees 'closed'.
   */
  close(): void {
    this.release();
    Atomics.store(this.control, SLOT_CONSUMER_CLOSED, 1);
    wake(this.control, this.counters, PRODUCER_SIDE);
  }

  private dataOutcome(deadlineMs: number): RingWaitResult | null {
    if (this.hasData()) return 'ready';
    // The producer publishes before it stores the closed flag, so once the flag is seen a
    // second look at the tail finds every frame.
    if (this.producerClosed) return this.hasData() ? 'ready' : 'closed';
    if (remainingMs(deadlineMs) <= 0) return 'timed-out';
    return null;
  }

  /** Finds the next frame and advances the read position past it; false when there is none. */
  private nextFrame(): boolean {
    if (!this.hasData()) return false;
    const offset = this.head & this.mask;
    const lengthBytes = this.words[offset >> 2] as number;
    if (lengthBytes < 0 || lengthBytes > this.capacityBytes - FRAME_HEADER_BYTES) {
      throw new Error(
        `RingConsumer: corrupt frame length ${lengthBytes} at offset ${offset} ` +
          `(a second producer or consumer on the same ring?)`,
      );
    }
    const payloadOffset = (offset + FRAME_HEADER_BYTES) & this.mask;
    if (payloadOffset + lengthBytes <= this.capacityBytes) {
      this.frameBytes = this.bytes;
      this.frameOffset = payloadOffset;
    } else {
      // The one copy: the payload runs off the end of the data area.
      const copy = new Uint8Array(lengthBytes);
      const firstBytes = this.capacityBytes - payloadOffset;
      copy.set(this.bytes.subarray(payloadOffset), 0);
      copy.set(this.bytes.subarray(0, lengthBytes - firstBytes), firstBytes);
      this.frameBytes = copy;
      this.frameOffset = 0;
    }
    this.frameLength = lengthBytes;
    this.head = (this.head + frameRecordBytes(lengthBytes)) >>> 0;
    this.readSinceRelease++;
    return true;
  }
}

interface OpenRing {
  control: Int32Array;
  counters: BigInt64Array;
  bytes: Uint8Array;
  words: Int32Array;
  capacityBytes: number;
}

function openRing(buffer: SharedArrayBuffer, who: string): OpenRing {
  if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < HEADER_BYTES + MIN_RING_CAPACITY_BYTES) {
    throw new TypeError(`${who}: expected a SharedArrayBuffer made by createRingBuffer`);
  }
  const control = new Int32Array(buffer, 0, HEADER_BYTES / 4);
  if (Atomics.load(control, SLOT_MAGIC) !== RING_MAGIC || control[SLOT_VERSION] !== RING_LAYOUT_VERSION) {
    throw new TypeError(`${who}: the buffer does not hold a ring of layout version ${RING_LAYOUT_VERSION}`);
  }
  const capacityBytes = control[SLOT_CAPACITY_BYTES] as number;
  if (buffer.byteLength !== HEADER_BYTES + capacityBytes) {
    throw new TypeError(
      `${who}: buffer is ${buffer.byteLength} bytes, the header says ${capacityBytes} + header`,
    );
  }
  return {
    control,
    counters: new BigInt64Array(buffer, 0, HEADER_BYTES / 8),
    bytes: new Uint8Array(buffer, HEADER_BYTES, capacityBytes),
    words: new Int32Array(buffer, HEADER_BYTES, capacityBytes / 4),
    capacityBytes,
  };
}

function checkCapacity(capacityBytes: number): void {
  if (
    !Number.isInteger(capacityBytes) ||
    capacityBytes < MIN_RING_CAPACITY_BYTES ||
    capacityBytes > MAX_RING_CAPACITY_BYTES ||
    (capacityBytes & (capacityBytes - 1)) !== 0
  ) {
    throw new RangeError(
      `ring capacity must be a power of two between ${MIN_RING_CAPACITY_BYTES} and ` +
        `${MAX_RING_CAPACITY_BYTES} bytes, got ${capacityBytes}`,
    );
  }
}

function checkSpinIterations(spinIterations: number | undefined): number {
  const value = spinIterations ?? 0;
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`spinIterations must be a non-negative integer, got ${spinIterations}`);
  }
  return value;
}

function deadlineFor(timeoutMs: number): number {
  if (Number.isNaN(timeoutMs) || timeoutMs < 0) {
    throw new RangeError(`timeoutMs must be >= 0, got ${timeoutMs}`);
  }
  return timeoutMs === Number.POSITIVE_INFINITY ? timeoutMs : performance.now() + timeoutMs;
}

function remainingMs(deadlineMs: number): number {
  return deadlineMs === Number.POSITIVE_INFINITY ? deadlineMs : Math.max(0, deadlineMs - performance.now());
}
