/**
 * Latency histograms (HdrHistogram, microseconds) shared by the bench client threads, the
 * log-writer thread and the coordinator. Every thread records into its own histogram and
 * ships it as a compressed base64 string (the HdrHistogram V2 wire format, so any
 * HdrHistogram implementation can read it); whoever reports decodes and merges them — the
 * way autocannon combines its workers.
 *
 * The plain JavaScript implementation is used rather than the WebAssembly one: it needs
 * no asynchronous initialisation, so it works the same in the main thread, in worker
 * threads and in piscina tasks, and a histogram needs no explicit `destroy()`.
 */

// The package is CommonJS: under Node's ESM the default import is its `module.exports`.
import hdr, { type Histogram } from 'hdr-histogram-js';

/** A latency histogram (re-exported from hdr-histogram-js). Values are whole microseconds. */
export type { Histogram };

/** The smallest value told apart: 1 µs, the resolution latencies are recorded at. */
export const LOWEST_DISCERNIBLE_US = 1;
/**
 * The highest value the histogram is sized for: 60 s, well past any request timeout.
 * Larger values still record (the histogram grows, see `createLatencyHistogram`).
 */
export const HIGHEST_TRACKABLE_US = 60_000_000;
/** Three significant digits: values are exact to 0.1 % across the whole range. */
export const SIGNIFICANT_DIGITS = 3;

/**
 * A new, empty latency histogram: microseconds, 1 µs .. 60 s, 3 significant digits,
 * 32-bit counters, plain JavaScript (no WebAssembly).
 *
 * `autoResize` is on so that an outlier beyond 60 s (a stalled open-loop run measures
 * from the intended send time, which can be far in the past) widens the histogram instead
 * of throwing in the middle of a run.
 */
export function createLatencyHistogram(): Histogram {
  return hdr.build({
    lowestDiscernibleValue: LOWEST_DISCERNIBLE_US,
    highestTrackableValue: HIGHEST_TRACKABLE_US,
    numberOfSignificantValueDigits: SIGNIFICANT_DIGITS,
    bitBucketSize: 32,
    autoResize: true,
    useWebAssembly: false,
  });
}

/**
 * `h` as a compressed base64 string (HdrHistogram V2 compressed encoding): a few hundred
 * bytes for a typical run, cheap to post between threads or put in a status answer.
 */
export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

/**
 * The histogram `encoded` holds (from `encodeHistogram` or any HdrHistogram encoder),
 * decoded into a plain JavaScript histogram that auto-resizes like a fresh one.
 */
export function decodeHistogram(encoded: string): Histogram {
  const h = hdr.decodeFromCompressedBase64(encoded, 32, false);
  h.autoResize = true;
  return h;
}

/**
 * One new histogram holding every value recorded in `list` (the inputs are unchanged).
 * An empty list gives an empty histogram.
 */
export function mergeHistograms(list: readonly Histogram[]): Histogram {
  const merged = createLatencyHistogram();
  for (const h of list) merged.add(h);
  return merged;
}

/** The summary figures of a latency histogram, all in microseconds (`count` is a count). */
export interface LatencyPercentilesUs {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly p9999: number;
  /**
   * The largest value recorded: exact in the histogram that recorded it; after encoding
   * (which keeps bucket counts only) the top of its bucket, at most 0.1 % above.
   */
  readonly max: number;
  readonly mean: number;
  readonly count: number;
}

/** The percentiles, max, mean and count of `h` in microseconds; all zero when `h` is empty. */
export function percentiles(h: Histogram): LatencyPercentilesUs {
  if (h.totalCount === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, p9999: 0, max: 0, mean: 0, count: 0 };
  return {
    p50: h.getValueAtPercentile(50),
    p90: h.getValueAtPercentile(90),
    p99: h.getValueAtPercentile(99),
    p999: h.getValueAtPercentile(99.9),
    p9999: h.getValueAtPercentile(99.99),
    max: h.maxValue,
    mean: h.mean,
    count: h.totalCount,
  };
}

/**
 * Records `valueUs` (rounded to a whole µs, at least 1) and corrects for coordinated
 * omission: if the value is longer than `expectedIntervalUs`, the requests a stalled
 * sender *would* have sent meanwhile are added as synthetic values `valueUs - k *
 * expectedIntervalUs` (k = 1, 2, ... while the value stays ≥ `expectedIntervalUs`), each
 * of which would have waited that long. `expectedIntervalUs <= 0` records just the value.
 *
 * Which one to use — never both for the same run, or the stall is counted twice:
 * - Latency measured from the **intended** send time (the open loop of `bench --rate`,
 *   request k due at start + k / rate): the measurement already includes the time a
 *   request waited behind a stall, so record with plain `h.recordValue(valueUs)`.
 * - Latency measured from the **actual** send time by a sender that meant to send every
 *   `expectedIntervalUs` (a paced loop that blocks on its previous request): use this,
 *   with `expectedIntervalUs` = that sender's intended interval (1e6 / its rate per
 *   second), so the requests it failed to send during a stall are not silently missing.
 */
export function recordCorrected(h: Histogram, valueUs: number, expectedIntervalUs: number): void {
  const value = Math.max(LOWEST_DISCERNIBLE_US, Math.round(valueUs));
  // HdrHistogram corrects with whole-unit arithmetic; a fractional interval would leave
  // the synthetic values off the caller's grid.
  const interval = expectedIntervalUs > 0 ? Math.max(1, Math.round(expectedIntervalUs)) : 0;
  h.recordValueWithExpectedInterval(value, interval);
}
