/**
 * The rate-limited log (`src/shared/rate-limited-log.ts`): the first event is logged at
 * once, a burst becomes one trailing line with its count, no count is lost when events
 * stop, and a quiet period lets the next event through at once. Time is node:test's mock
 * clock, so nothing here waits.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import { createRateLimitedLog } from '../../src/shared/rate-limited-log.js';

interface Line {
  readonly obj: Record<string, unknown>;
  readonly msg: string;
}

function recorder(): { lines: Line[]; warn(obj: object, msg: string): void } {
  const lines: Line[] = [];
  return { lines, warn: (obj, msg) => void lines.push({ obj: obj as Record<string, unknown>, msg }) };
}

describe('createRateLimitedLog', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 }));
  afterEach(() => mock.timers.reset());

  test('logs the first event at once, unchanged', () => {
    const logger = recorder();
    const log = createRateLimitedLog(logger, 1000);
    log({ remote: 'a' }, 'refused');
    assert.deepEqual(logger.lines, [{ obj: { remote: 'a' }, msg: 'refused' }]);
  });

  test('a burst is one trailing line at the end of the window, with the count and the last event', () => {
    const logger = recorder();
    const log = createRateLimitedLog(logger, 1000);
    for (let i = 0; i < 500; i++) {
      log({ remote: `r${i}` }, 'malformed');
      mock.timers.tick(1);
    }
    // 500 ms in: only the first line so far.
    assert.equal(logger.lines.length, 1);
    mock.timers.tick(500);
    assert.equal(logger.lines.length, 2);
    assert.deepEqual(logger.lines[1], { obj: { remote: 'r499', suppressed: 499 }, msg: 'malformed' });
    // Nothing more is pending.
    mock.timers.tick(10_000);
    assert.equal(logger.lines.length, 2);
  });

  test('a steady stream gives one line per interval and accounts for every event', () => {
    const logger = recorder();
    const log = createRateLimitedLog(logger, 1000);
    const events = 10_000;
    for (let i = 0; i < events; i++) {
      log({ i }, 'e');
      mock.timers.tick(1);
    }
    mock.timers.tick(2000);
    // 10 s of events at 1 per ms: the first line, then one per second.
    assert.ok(logger.lines.length >= 10 && logger.lines.length <= 11, `${logger.lines.length} lines`);
    // A line without a count is one event; a trailing line stands for `suppressed` events
    // (itself the last of them).
    const counted = logger.lines.reduce((sum, line) => sum + ((line.obj.suppressed as number) ?? 1), 0);
    assert.equal(counted, events);
  });

  test('after a quiet interval the next event is logged at once again', () => {
    const logger = recorder();
    const log = createRateLimitedLog(logger, 1000);
    log({ n: 1 }, 'x');
    log({ n: 2 }, 'x');
    mock.timers.tick(1000); // trailing line for n=2
    mock.timers.tick(1000); // its window passes quietly
    log({ n: 3 }, 'x');
    assert.deepEqual(
      logger.lines.map((l) => l.obj),
      [{ n: 1 }, { n: 2, suppressed: 1 }, { n: 3 }],
    );
  });

  test('a single event in a window after the first is reported at the window end, not lost', () => {
    const logger = recorder();
    const log = createRateLimitedLog(logger, 1000);
    log({ n: 1 }, 'x');
    mock.timers.tick(999);
    log({ n: 2 }, 'x');
    assert.equal(logger.lines.length, 1);
    mock.timers.tick(1);
    assert.deepEqual(logger.lines[1]?.obj, { n: 2, suppressed: 1 });
  });

  test('refuses an interval that is not a positive number', () => {
    const logger = recorder();
    assert.throws(() => createRateLimitedLog(logger, 0), /intervalMs must be a positive number, got 0/);
    assert.throws(() => createRateLimitedLog(logger, Number.NaN), /intervalMs/);
  });
});
