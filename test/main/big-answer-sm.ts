/**
 * The counter, whose query `{ answerBytes }` answers with that many zero bytes: a read
 * whose answer is larger than the fsm's result ring can carry in one frame.
 */
import Counter from '../../examples/counter.js';
import type { Value } from '../../src/main/state-machine.js';

export default class BigAnswerCounter extends Counter {
  override query(q: Value): Value {
    const answerBytes = (q as { answerBytes?: unknown } | null)?.answerBytes;
    if (typeof answerBytes === 'number') return new Uint8Array(answerBytes);
    return super.query(q);
  }
}
