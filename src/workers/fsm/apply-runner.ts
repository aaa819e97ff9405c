/**
 * Drives a user's `StateMachine.onApply` over batches of committed entries, as braft's
 * `FSMCaller::do_committed` does: commands go to `onApply` a run of consecutive ones at a
 * time, other entries are passed over, results are reported per entry, and a failure stops
 * all later applying.
 *
 * Pure and thread-free: the fsm worker loop feeds it batches and forwards the results.
 */
import type { ApplyIterator, StateMachine } from '../../main/state-machine.js';
import { EntryType } from '../../raft/types.js';
import type { Value } from '../../shared/value-codec.js';

/** A committed entry as the runner receives it (the fields of the stored record it needs). */
export interface ApplyEntry {
  readonly index: number;
  readonly term: number;
  readonly type: number;
  readonly data: Uint8Array;
}

/** Receives the result of each applied command, in log order. */
export type ApplyResultCallback = (index: number, term: number, result: Value) => void;

/** What `applyBatch` settles with: the batch was applied up to `appliedIndex`. */
export interface ApplySuccess {
  readonly appliedIndex: number;
}

/**
 * What `applyBatch` settles with after the state machine failed: every entry before
 * `failedIndex` is applied, that entry and every later one are not and never will be.
 */
export interface ApplyFailure {
  readonly error: Error;
  readonly failedIndex: number;
}

/** The for-of protocol's step result, one object reused for every step. */
interface ReusableResult {
  done: boolean;
  value: ApplyIterator;
}

/**
 * The one `ApplyIterator` a runner hands to every `onApply` call, over one run
 * `entries[pos, runEnd)` of commands. Reused: no allocation per entry or per call.
 */
class RunIterator implements ApplyIterator {
  private entries: readonly ApplyEntry[] = [];
  /** The current entry's position in `entries`. */
  pos = 0;
  /** End of the run (exclusive). */
  runEnd = 0;
  private result: Value = undefined;
  private onResult: ApplyResultCallback = () => {};
  /**
   * What `onResult` threw, if it did: kept here rather than thrown into the user's
   * `onApply`, which could swallow it. The runner fails with it once `onApply` returns.
   */
  resultError: Error | null = null;
  /** False outside `onApply`: a kept reference must not touch a later run. */
  private active = false;
  /** The for-of protocol object. */
  private readonly forOf = new ForOfCursor(this);

  open(entries: readonly ApplyEntry[], start: number, runEnd: number, onResult: ApplyResultCallback): void {
    this.entries = entries;
    this.pos = start;
    this.runEnd = runEnd;
    this.result = undefined;
    this.onResult = onResult;
    this.resultError = null;
    this.active = true;
  }

  close(): void {
    this.active = false;
    // Let go of the batch and the callback.
    this.entries = [];
    this.onResult = noResult;
  }

  valid(): boolean {
    return this.active && this.pos < this.runEnd;
  }

  next(): void {
    this.checkActive();
    if (this.pos >= this.runEnd) return;
    const e = this.entries[this.pos] as ApplyEntry;
    const result = this.result;
    // Reset before reporting, so the next entry never inherits this one's result.
    this.result = undefined;
    this.pos++;
    try {
      this.onResult(e.index, e.term, result);
    } catch (err) {
      this.resultError ??= new Error(`reporting the result of entry ${e.index} failed: ${describe(err)}`, {
        cause: err,
      });
    }
  }

  index(): number {
    return this.current().index;
  }

  term(): number {
    return this.current().term;
  }

  data(): Uint8Array {
    return this.current().data;
  }

  done(result?: Value): void {
    this.current();
    this.result = result;
  }

  [Symbol.iterator](): Iterator<ApplyIterator> {
    this.checkActive();
    this.forOf.started = false;
    return this.forOf;
  }

  private current(): ApplyEntry {
    this.checkActive();
    if (this.pos >= this.runEnd) throw new RangeError('the ApplyIterator has passed its last entry');
    return this.entries[this.pos] as ApplyEntry;
  }

  private checkActive(): void {
    if (!this.active) throw new Error('the ApplyIterator was used after onApply returned');
  }
}

function noResult(): void {}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * `for (const it of iter)` over a `RunIterator`: yields the iterator itself, standing first
 * at the entry it stands at now, then moving one entry per loop turn.
 */
class ForOfCursor implements Iterator<ApplyIterator> {
  started = false;
  private readonly step: ReusableResult;

  constructor(private readonly iter: RunIterator) {
    this.step = { done: false, value: iter };
  }

  next(): IteratorResult<ApplyIterator> {
    if (this.started) this.iter.next();
    else this.started = true;
    this.step.done = !this.iter.valid();
    return this.step as IteratorResult<ApplyIterator>;
  }
}

function isPromiseLike(v: unknown): v is PromiseLike<unknown> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/**
 * The index of the first entry of the run not applied: the one the iterator stands at, or,
 * when it has moved past the whole run, the entry after the run.
 */
function firstNotApplied(entries: readonly ApplyEntry[], iter: RunIterator): number {
  return iter.pos < iter.runEnd
    ? (entries[iter.pos] as ApplyEntry).index
    : (entries[iter.runEnd - 1] as ApplyEntry).index + 1;
}

function asError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(`onApply threw a non-Error: ${String(thrown)}`, { cause: thrown });
}

/**
 * Applies batches of committed entries to one `StateMachine`, strictly one batch at a time
 * (await each `applyBatch` before the next).
 *
 * Only `EntryType.Normal` entries reach `onApply`; no-ops and configuration changes are
 * passed over but count as applied, and get no result. Each run of consecutive commands is
 * given to one `onApply` call through one iterator; if `onApply` returns with entries left,
 * it is called again with the rest (after the entry it stood at, which braft counts as
 * applied). Results go to `onResult` as the iterator moves past each entry, before
 * `applyBatch` settles.
 *
 * Once `onApply` throws, the runner is failed for good: the node must stop applying rather
 * than skip an entry (braft), so every later `applyBatch` answers the same failure without
 * calling the state machine, and queries are refused since the state may be half-changed.
 */
export class ApplyRunner {
  private readonly iter = new RunIterator();
  private applied = 0;
  private failed: ApplyFailure | null = null;

  constructor(private readonly sm: StateMachine) {}

  /** The index of the last entry applied (0 before any). */
  get appliedIndex(): number {
    return this.applied;
  }

  /** The failure that stopped the runner, or null while it is healthy. */
  get failure(): ApplyFailure | null {
    return this.failed;
  }

  /**
   * Applies `entries` (consecutive committed entries, in log order) and reports each
   * command's result through `onResult`. Settles with the new applied index, or with the
   * failure; never rejects.
   *
   * `onResult` runs inside the user's `onApply` (when the iterator moves on) and should not
   * throw: a result it cannot encode is better answered with an error value. If it throws
   * anyway, the user's code never sees it; the runner fails with it once `onApply` returns,
   * at the first entry not yet passed (the entry whose result was lost counts as applied).
   */
  async applyBatch(
    entries: readonly ApplyEntry[],
    onResult: ApplyResultCallback,
  ): Promise<ApplySuccess | ApplyFailure> {
    if (this.failed !== null) return this.failed;
    const sm = this.sm;
    const iter = this.iter;
    const count = entries.length;
    let i = 0;
    while (i < count) {
      if ((entries[i] as ApplyEntry).type !== EntryType.Normal) {
        i++;
        continue;
      }
      let runEnd = i + 1;
      while (runEnd < count && (entries[runEnd] as ApplyEntry).type === EntryType.Normal) runEnd++;
      iter.open(entries, i, runEnd, onResult);
      while (iter.pos < iter.runEnd) {
        try {
          const pending = sm.onApply(iter);
          // Await only a real promise: a synchronous onApply should not pay a microtask turn.
          if (isPromiseLike(pending)) await pending;
        } catch (thrown) {
          const failedIndex = firstNotApplied(entries, iter);
          iter.close();
          return this.fail(asError(thrown), failedIndex);
        }
        // braft: the entry the iterator stands at when onApply returns counts as applied.
        if (iter.pos < iter.runEnd) iter.next();
        if (iter.resultError !== null) {
          // The entries passed were applied; the runtime failed to hand out a result, and
          // carrying on would leave a proposer waiting for an answer that never comes.
          const failedIndex = firstNotApplied(entries, iter);
          const error = iter.resultError;
          iter.close();
          return this.fail(error, failedIndex);
        }
      }
      iter.close();
      i = runEnd;
    }
    if (count > 0) this.applied = (entries[count - 1] as ApplyEntry).index;
    return { appliedIndex: this.applied };
  }

  /**
   * Answers a read with the state machine's `query`. Rejects when it has none, when the
   * runner has failed, or with whatever `query` throws.
   */
  async runQuery(q: Value): Promise<Value> {
    if (this.failed !== null) {
      throw new Error(
        `the state machine stopped at index ${this.failed.failedIndex}: ${this.failed.error.message}`,
        {
          cause: this.failed.error,
        },
      );
    }
    if (typeof this.sm.query !== 'function') throw new Error('state machine has no query()');
    return await this.sm.query(q);
  }

  private fail(error: Error, failedIndex: number): ApplyFailure {
    this.applied = failedIndex - 1;
    this.failed = { error, failedIndex };
    if (typeof this.sm.onError === 'function') {
      try {
        // onError is typed void, but a user may still make it async: keep its rejection
        // from becoming an unhandled one, which would kill the worker.
        const r: unknown = this.sm.onError(error);
        if (isPromiseLike(r)) r.then(undefined, () => {});
      } catch {
        // The node is stopping on `error` already; a failing onError must not hide it.
      }
    }
    return this.failed;
  }
}
