/**
 * The counter, whose query `{ sleepMs }` blocks the fsm thread that long before it
 * answers: a request that stays in flight for a known time, for the client idle-timeout
 * test (a connection waiting for an answer is not idle).
 */
import Counter from '../../examples/counter.js';
import type { Value } from '../../src/main/state-machine.js';

export default class SlowQueryCounter extends Counter {
  override query(q: Value): Value {
    const sleepMs = (q as { sleepMs?: unknown } | null)?.sleepMs;
    if (typeof sleepMs === 'number') {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, sleepMs);
      return 'slept';
    }
    return super.query(q);
  }
}
