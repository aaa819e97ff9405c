/**
 * The latency distribution as HdrHistogram "percentile distribution" text (.hgrm), the
 * format `HistogramLogProcessor` and the HdrHistogram plotter
 * (hdrhistogram.github.io/HdrHistogram/plotFiles.html) read.
 */

import type { Histogram } from 'hdr-histogram-js';

/**
 * Recorded values are microseconds; the plotter labels its axis "Latency (milliseconds)",
 * so the output is scaled to milliseconds (Java's `outputValueUnitScalingRatio` of 1000).
 */
export const HGRM_US_PER_OUTPUT_UNIT = 1000;

/** Percentile reporting ticks per half distance: HdrHistogram's customary 5. */
export const HGRM_TICKS_PER_HALF_DISTANCE = 5;

/**
 * `h` (µs) as .hgrm text with values in **milliseconds**: the `Value Percentile
 * TotalCount 1/(1-Percentile)` header, one line per percentile tick, and the `#[Mean`,
 * `#[Max` and `#[Buckets` footer lines. Ends with a newline.
 */
export function formatHgrm(h: Histogram): string {
  const text = h.outputPercentileDistribution(HGRM_TICKS_PER_HALF_DISTANCE, HGRM_US_PER_OUTPUT_UNIT);
  return text.endsWith('\n') ? text : `${text}\n`;
}
