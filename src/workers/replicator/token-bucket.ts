/**
 * Paces a byte stream to a rate: the snapshot sender's throttle (`snapshotBytesPerSecond`),
 * so that a transfer to one follower cannot take the leader's disk and network from the
 * replication that keeps the cluster alive (braft's `SnapshotThrottle`).
 *
 * A token bucket that may go into debt: `take(n)` always lets `n` bytes through, then
 * waits until the bucket has paid them back. Debt, rather than waiting for `n` tokens
 * first, lets a chunk larger than the bucket through at the right average rate instead
 * of never. The bucket holds at most `burstBytes`, so after an idle spell at most that
 * much leaves at once.
 *
 * Time comes from an injected `Clock`, so a test can check the pacing on a virtual clock
 * without waiting or asserting on wall-clock time.
 */
import { setTimeout as sleep } from 'node:timers/promises';

/** Where the sender's time comes from. */
export interface Clock {
  /** Milliseconds on a monotonic clock. */
  nowMs(): number;
  /**
   * Resolves after `ms` milliseconds, or early (resolving, not rejecting) when `signal`
   * aborts: the caller checks why it woke.
   */
  sleepMs(ms: number, signal?: AbortSignal): Promise<void>;
}

/** `performance.now()` and real timers. */
export const SYSTEM_CLOCK: Clock = {
  nowMs: () => performance.now(),
  sleepMs: async (ms, signal) => {
    try {
      await sleep(ms, undefined, signal === undefined ? undefined : { signal });
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
    }
  },
};

/** A throttle of `bytesPerSecond` (0: unlimited, `take` never waits). */
export class TokenBucket {
  /** The rate; 0 means unlimited. */
  readonly bytesPerSecond: number;
  /** The most bytes that may leave at once after an idle spell. */
  readonly burstBytes: number;
  /** Milliseconds spent waiting in `take`, in total. */
  waitedMs = 0;
  readonly #clock: Clock;
  /** Bytes that may leave now; negative while in debt. */
  #tokens: number;
  #lastRefillMs: number;

  constructor(bytesPerSecond: number, burstBytes: number, clock: Clock = SYSTEM_CLOCK) {
    if (!(Number.isFinite(bytesPerSecond) && bytesPerSecond >= 0)) {
      throw new RangeError(`bytesPerSecond ${bytesPerSecond} must be a number >= 0`);
    }
    if (!(Number.isFinite(burstBytes) && burstBytes > 0)) {
      throw new RangeError(`burstBytes ${burstBytes} must be > 0`);
    }
    this.bytesPerSecond = bytesPerSecond;
    this.burstBytes = burstBytes;
    this.#clock = clock;
    // Starts full: the first burst leaves at once.
    this.#tokens = burstBytes;
    this.#lastRefillMs = clock.nowMs();
  }

  /**
   * Accounts for `bytes` about to be sent and waits until the rate allows them. Resolves
   * early if `signal` aborts (the bytes stay accounted for).
   */
  async take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (this.bytesPerSecond === 0) return;
    this.#refill();
    this.#tokens -= bytes;
    if (this.#tokens >= 0) return;
    const waitMs = (-this.#tokens * 1000) / this.bytesPerSecond;
    this.waitedMs += waitMs;
    await this.#clock.sleepMs(waitMs, signal);
  }

  #refill(): void {
    const nowMs = this.#clock.nowMs();
    const earned = ((nowMs - this.#lastRefillMs) * this.bytesPerSecond) / 1000;
    this.#lastRefillMs = nowMs;
    this.#tokens = Math.min(this.burstBytes, this.#tokens + earned);
  }
}
