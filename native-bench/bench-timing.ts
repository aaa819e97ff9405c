/** Timing loops and test data for the CPU-bound benchmarks (codec-bench.ts, native-cpu.ts). */

/** Operations per second, MB/s (10^6 bytes) and nanoseconds per operation of one case. */
export interface Rate {
  readonly opsPerSec: number;
  readonly mbPerSec: number;
  readonly nsPerOp: number;
}

/** Folds every round's result, so the JIT cannot drop a round whose result is unused. */
let sink = 0;

/** The folded results; print it once at the end so the work is observably used. */
export function timingSink(): number {
  return sink;
}

/**
 * Runs `round` (which performs `opsPerRound` operations over `bytesPerRound` bytes) for
 * `budgetMs` as a warm-up, then for `budgetMs` again, measured: the rates of the second
 * pass. The warm-up lets the JIT reach its optimized code before the clock counts.
 */
export function measureRate(
  budgetMs: number,
  opsPerRound: number,
  bytesPerRound: number,
  round: () => number,
): Rate {
  const run = (ms: number): { rounds: number; elapsedMs: number } => {
    const startMs = performance.now();
    let rounds = 0;
    let elapsedMs = 0;
    do {
      sink = (sink + round()) | 0;
      rounds++;
      elapsedMs = performance.now() - startMs;
    } while (elapsedMs < ms);
    return { rounds, elapsedMs };
  };
  run(budgetMs);
  const { rounds, elapsedMs } = run(budgetMs);
  return {
    opsPerSec: (rounds * opsPerRound * 1000) / elapsedMs,
    mbPerSec: (rounds * bytesPerRound * 1000) / elapsedMs / 1e6,
    nsPerOp: (elapsedMs * 1e6) / (rounds * opsPerRound),
  };
}

/** `byteCount` bytes of deterministic xorshift filler (the same in native-bench/c/cpu.c), so runs compare. */
export function filled(byteCount: number, seed = 1): Uint8Array {
  const out = new Uint8Array(byteCount);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < byteCount; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x;
  }
  return out;
}
