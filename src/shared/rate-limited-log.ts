/**
 * A log line that cannot flood the log: the first event is logged at once, and after it at
 * most one line per interval, carrying the count of the events that were not logged.
 *
 * Why: events that a remote end can cause at will (malformed frames, refused or
 * unauthenticated connections, connections over the limit) would otherwise let a port
 * scanner or a misconfigured client fill the disk and slow the node down through its own
 * logging. One line per interval with a count says as much as the thousand lines it stands
 * for.
 *
 * Timeline for an interval of 1000 ms:
 *
 *     t=0     event A  -> logged  { ...A }                        (window opens until t=1000)
 *     t=10    event B  -> counted                                  (timer armed for t=1000)
 *     t=20    event C  -> counted
 *     t=1000  timer    -> logged  { ...C, suppressed: 2 }          (window until t=2000)
 *     t=2500  event D  -> logged  { ...D }                         (window until t=3500)
 *
 * The trailing line is the last suppressed event, so its fields are a real example of what
 * was suppressed; its `suppressed` count includes it. Because a timer reports the count at the end of the window, no count is
 * lost when the events stop. The timer is unref'd: it never keeps a process alive.
 */

/** What a rate-limited log writes through; pino's `logger.warn(obj, msg)` fits. */
export interface WarnLogger {
  warn(obj: object, msg: string): void;
}

/** Logs `(obj, msg)` as a warning, subject to the rate limit. */
export type RateLimitedLog = (obj: object, msg: string) => void;

/**
 * Returns a function that logs through `logger.warn` at most one line per `intervalMs`;
 * the lines after the first carry `suppressed`, the number of events not logged since the
 * previous line. Use one per kind of event (e.g. one for refused connections), not one
 * per remote: its memory is constant whoever calls it.
 */
export function createRateLimitedLog(logger: WarnLogger, intervalMs: number): RateLimitedLog {
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new RangeError(`createRateLimitedLog: intervalMs must be a positive number, got ${intervalMs}`);
  }
  /** Until when (Date.now() ms) a new event is counted rather than logged. */
  let windowEndMs = 0;
  let suppressed = 0;
  let lastObj: object = {};
  let lastMsg = '';
  let timer: NodeJS.Timeout | null = null;

  const flush = (): void => {
    timer = null;
    if (suppressed === 0) return;
    logger.warn({ ...lastObj, suppressed }, lastMsg);
    suppressed = 0;
    windowEndMs = Date.now() + intervalMs;
  };

  return (obj, msg) => {
    const nowMs = Date.now();
    if (nowMs >= windowEndMs && timer === null) {
      windowEndMs = nowMs + intervalMs;
      logger.warn(obj, msg);
      return;
    }
    suppressed++;
    lastObj = obj;
    lastMsg = msg;
    if (timer === null) {
      timer = setTimeout(flush, Math.max(0, windowEndMs - nowMs));
      timer.unref();
    }
  };
}
