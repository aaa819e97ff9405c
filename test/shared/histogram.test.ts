/**
 * The latency histograms (`src/shared/histogram.ts`): what the bench threads encode must
 * decode to the same distribution, merging per-thread histograms must equal recording
 * everything in one, the percentile summary must match known data, and the
 * coordinated-omission correction must add exactly HdrHistogram's synthetic values.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  createLatencyHistogram,
  decodeHistogram,
  encodeHistogram,
  type Histogram,
  mergeHistograms,
  percentiles,
  recordCorrected,
} from '../../src/shared/histogram.js';

/** A deterministic generator (LCG) so failures replay. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Latency-like values in µs: mostly around 1-5 ms, with a tail out to ~2 s. */
function latenciesUs(n: number, seed: number): number[] {
  const r = lcg(seed);
  return Array.from({ length: n }, () => {
    const base = 1000 + Math.floor(r() * 4000);
    return r() < 0.01 ? base * (1 + Math.floor(r() * 400)) : base;
  });
}

/**
 * The distribution at a spread of percentiles, for equality checks. Not `maxValue`: a
 * recording histogram knows it exactly, but the encoding keeps bucket counts only, so a
 * decoded one reports the top of the max's bucket (`assertSameMax`).
 */
function shape(h: Histogram): number[] {
  const ps = [0, 1, 10, 25, 50, 75, 90, 99, 99.9, 99.99, 100];
  return [h.totalCount, ...ps.map((p) => h.getValueAtPercentile(p))];
}

/** Same max within the 3-significant-digit resolution, never below the true one. */
function assertSameMax(decoded: Histogram, recorded: Histogram): void {
  assert.ok(decoded.maxValue >= recorded.maxValue, `${decoded.maxValue} >= ${recorded.maxValue}`);
  assert.ok(decoded.maxValue <= recorded.maxValue * 1.001, `${decoded.maxValue} ≈ ${recorded.maxValue}`);
}

describe('histogram encoding', () => {
  test('decode(encode(h)) has the same distribution, count, max and mean', () => {
    const h = createLatencyHistogram();
    for (const v of latenciesUs(20_000, 1)) h.recordValue(v);
    const encoded = encodeHistogram(h);
    assert.equal(typeof encoded, 'string');
    assert.match(encoded, /^[A-Za-z0-9+/]+=*$/, 'base64');
    const d = decodeHistogram(encoded);
    assert.deepEqual(shape(d), shape(h));
    assertSameMax(d, h);
    assert.ok(Math.abs(d.mean - h.mean) < 1e-6);
    assert.deepEqual({ ...percentiles(d), max: 0 }, { ...percentiles(h), max: 0 });
  });

  test('an empty histogram round-trips to an empty one', () => {
    const d = decodeHistogram(encodeHistogram(createLatencyHistogram()));
    assert.equal(d.totalCount, 0);
    assert.deepEqual(percentiles(d), {
      p50: 0,
      p90: 0,
      p99: 0,
      p999: 0,
      p9999: 0,
      max: 0,
      mean: 0,
      count: 0,
    });
  });

  test('a value beyond 60 s records (auto-resize) and survives encode, decode and merge', () => {
    const h = createLatencyHistogram();
    h.recordValue(90_000_000);
    const d = decodeHistogram(encodeHistogram(h));
    d.recordValue(120_000_000);
    const m = mergeHistograms([d, createLatencyHistogram()]);
    assert.equal(m.totalCount, 2);
    assert.ok(Math.abs(m.maxValue - 120_000_000) / 120_000_000 < 1e-3);
  });
});

describe('mergeHistograms', () => {
  test('merging per-thread histograms equals recording everything in one', () => {
    const all = createLatencyHistogram();
    const parts: Histogram[] = [];
    for (let t = 0; t < 4; t++) {
      const h = createLatencyHistogram();
      for (const v of latenciesUs(5000 + t * 1000, 10 + t)) {
        h.recordValue(v);
        all.recordValue(v);
      }
      parts.push(h);
    }
    // As the bench does it: each thread's histogram crosses a thread boundary encoded.
    const merged = mergeHistograms(parts.map((h) => decodeHistogram(encodeHistogram(h))));
    assert.deepEqual(shape(merged), shape(all));
    assertSameMax(merged, all);
    assert.ok(Math.abs(merged.mean - all.mean) < 1e-6);
  });

  test('the inputs are left unchanged, and an empty list gives an empty histogram', () => {
    const a = createLatencyHistogram();
    a.recordValue(100);
    const b = createLatencyHistogram();
    b.recordValue(200);
    const m = mergeHistograms([a, b]);
    assert.equal(m.totalCount, 2);
    assert.equal(a.totalCount, 1);
    assert.equal(b.totalCount, 1);
    assert.equal(mergeHistograms([]).totalCount, 0);
  });
});

describe('percentiles', () => {
  test('1..10000 µs: percentiles within the 3-significant-digit resolution', () => {
    const h = createLatencyHistogram();
    for (let v = 1; v <= 10_000; v++) h.recordValue(v);
    const p = percentiles(h);
    const near = (actual: number, expected: number): void =>
      assert.ok(Math.abs(actual - expected) <= expected * 1e-3 + 1, `${actual} ≈ ${expected}`);
    near(p.p50, 5000);
    near(p.p90, 9000);
    near(p.p99, 9900);
    near(p.p999, 9990);
    near(p.p9999, 9999);
    assert.equal(p.max, 10_000);
    near(p.mean, 5000.5);
    assert.equal(p.count, 10_000);
  });

  test('are ordered and bounded by max', () => {
    const h = createLatencyHistogram();
    for (const v of latenciesUs(10_000, 3)) h.recordValue(v);
    const p = percentiles(h);
    const order = [p.p50, p.p90, p.p99, p.p999, p.p9999];
    for (let i = 1; i < order.length; i++) assert.ok((order[i] as number) >= (order[i - 1] as number));
    // Percentiles report their bucket's highest equivalent value: at most 0.1 % above max.
    assert.ok(p.p9999 <= p.max * 1.001);
  });
});

describe('recordCorrected', () => {
  test('a value of 10 intervals adds the 9 synthetic values a stalled sender missed', () => {
    const h = createLatencyHistogram();
    recordCorrected(h, 1000, 100);
    // 1000, 900, ..., 100: what requests due every 100 µs during the stall would have waited.
    assert.equal(h.totalCount, 10);
    assert.equal(h.getValueAtPercentile(0), 100);
    assert.equal(h.maxValue, 1000);
    assert.ok(Math.abs(h.mean - 550) < 1e-9);
    for (let k = 1; k <= 10; k++) assert.equal(h.getValueAtPercentile(k * 10), k * 100);
  });

  test('a value within the interval, or no interval, records just the value', () => {
    const h = createLatencyHistogram();
    recordCorrected(h, 80, 100);
    recordCorrected(h, 100, 100);
    recordCorrected(h, 5000, 0);
    recordCorrected(h, 5000, -1);
    assert.equal(h.totalCount, 4);
  });

  test('values are rounded to whole µs, at least 1', () => {
    const h = createLatencyHistogram();
    recordCorrected(h, 0.2, 0);
    recordCorrected(h, 2.6, 0);
    assert.equal(h.getValueAtPercentile(0), 1);
    assert.equal(h.maxValue, 3);
  });

  test('equals plain recording plus the expected series, value by value', () => {
    const corrected = createLatencyHistogram();
    const manual = createLatencyHistogram();
    const intervalUs = 250;
    for (const v of latenciesUs(2000, 7)) {
      recordCorrected(corrected, v, intervalUs);
      manual.recordValue(v);
      for (let missed = v - intervalUs; missed >= intervalUs; missed -= intervalUs)
        manual.recordValue(missed);
    }
    assert.deepEqual(shape(corrected), shape(manual));
  });
});
