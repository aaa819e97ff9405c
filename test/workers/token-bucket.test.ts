/**
 * The snapshot throttle on a virtual clock: no sleeps, no wall-clock assertions. It
 * checks the rate over a long run, the burst after an idle spell, and the invariant that
 * by any moment no more than `burst + rate × elapsed` bytes have been let through.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Clock, TokenBucket } from '../../src/workers/replicator/token-bucket.js';

/** A clock that only moves when someone sleeps on it (or a test advances it). */
class VirtualClock implements Clock {
  nowMsValue = 0;
  readonly sleepsMs: number[] = [];
  nowMs(): number {
    return this.nowMsValue;
  }
  async sleepMs(ms: number): Promise<void> {
    this.sleepsMs.push(ms);
    this.nowMsValue += ms;
  }
}

describe('token bucket', () => {
  test('paces a long run to the rate, after one burst', async () => {
    const clock = new VirtualClock();
    const rate = 1_000_000;
    const burst = 100_000;
    const bucket = new TokenBucket(rate, burst, clock);
    let sentBytes = 0;
    for (let i = 0; i < 200; i++) {
      // Chunks of varied size, some larger than the burst: debt lets them through.
      const n = 10_000 + ((i * 7919) % 150_000);
      await bucket.take(n);
      sentBytes += n;
      // Invariant: what has left is bounded by the burst plus what the rate earned, give
      // or take the chunk just let through (it leaves, then the bucket waits for it).
      assert.ok(sentBytes - n <= burst + (rate * clock.nowMs()) / 1000 + 1e-6, `at chunk ${i}`);
    }
    // Over the whole run: exactly (sent - burst) / rate of waiting.
    assert.ok(Math.abs(clock.nowMs() - ((sentBytes - burst) * 1000) / rate) < 1e-6, String(clock.nowMs()));
    assert.ok(Math.abs(bucket.waitedMs - clock.nowMs()) < 1e-6);
  });

  test('refills while idle, never beyond the burst', async () => {
    const clock = new VirtualClock();
    const bucket = new TokenBucket(1000, 500, clock);
    await bucket.take(500);
    assert.deepEqual(clock.sleepsMs, [], 'the first burst leaves at once');
    clock.nowMsValue += 60_000; // a long idle spell earns only the burst back
    await bucket.take(500);
    assert.deepEqual(clock.sleepsMs, []);
    await bucket.take(250);
    assert.deepEqual(clock.sleepsMs, [250]);
  });

  test('rate 0 is unlimited; bad parameters are refused', async () => {
    const clock = new VirtualClock();
    const bucket = new TokenBucket(0, 1, clock);
    for (let i = 0; i < 10; i++) await bucket.take(1 << 30);
    assert.deepEqual(clock.sleepsMs, []);
    assert.throws(() => new TokenBucket(-1, 1, clock), RangeError);
    assert.throws(() => new TokenBucket(1, 0, clock), RangeError);
    assert.throws(() => new TokenBucket(Number.NaN, 1, clock), RangeError);
  });
});
