/**
 * What a user implements: the replicated state machine, with braft's callbacks, and the
 * module format the fsm worker loads it from.
 *
 * The state machine runs in the fsm worker thread, so it is given as a module URL rather
 * than an object (DESIGN.md, "Public shape"): the worker imports the module and builds the
 * state machine from its default export, which is either a class or a factory function.
 *
 * Determinism is the user's side of the contract: given the same entries in the same order,
 * every replica must reach the same state and return the same results. A command that must
 * be refused is answered with a result that says so (`done({ error: ... })`), never with a
 * throw: a throw from `onApply` stops the node from applying (see `onApply`).
 */
import type { Value } from '../shared/value-codec.js';

export type { Value } from '../shared/value-codec.js';

/**
 * The committed entries handed to one `onApply` call, braft's `braft::Iterator`. It stands
 * at one entry at a time:
 *
 * ```ts
 * onApply(iter) {
 *   for (const it of iter) it.done(this.execute(it.data()));
 * }
 * // or, braft's own loop:
 * onApply(iter) {
 *   for (; iter.valid(); iter.next()) iter.done(this.execute(iter.data()));
 * }
 * ```
 *
 * The iterator, and the bytes `data()` returns, are only valid until `onApply` returns (or
 * its promise settles): the runtime reuses both. Copy what must be kept.
 */
export interface ApplyIterator extends Iterable<ApplyIterator> {
  /** Whether the iterator stands at an entry. False once every entry has been passed. */
  valid(): boolean;
  /** Moves to the next entry. The entry left behind counts as applied. */
  next(): void;
  /** The log index of the current entry. */
  index(): number;
  /** The term of the current entry. */
  term(): number;
  /** The command bytes the proposer passed to `apply`. A view, valid until `onApply` returns. */
  data(): Uint8Array;
  /**
   * Sets the result the proposer of the current entry receives. Optional: an entry applied
   * without `done` answers `undefined`. Called twice, the last result wins.
   */
  done(result?: Value): void;
  /**
   * Yields this same iterator, standing at each entry in turn, so `for (const it of iter)`
   * visits every entry once. Breaking out of the loop leaves it at the entry being handled.
   */
  [Symbol.iterator](): Iterator<ApplyIterator>;
}

/**
 * Where `onSnapshotSave` writes the state machine's files: any regular files (and
 * subdirectories) under `dir`. The runtime then records their sizes and CRC32Cs in the
 * snapshot's meta, syncs everything and renames the directory into place; until then the
 * previous snapshot stays the latest.
 */
export interface SnapshotWriter {
  /** The directory the state machine writes its snapshot files into. */
  readonly dir: string;
  /** What the snapshot covers: the last applied entry it includes. */
  readonly meta: { readonly index: number; readonly term: number };
}

/** Where `onSnapshotLoad` reads a snapshot from (one saved here, or received from the leader). */
export interface SnapshotReader {
  /** The directory holding the snapshot files the state machine wrote. */
  readonly dir: string;
  /** What the snapshot covers: the last applied entry it includes, and the configuration then. */
  readonly meta: { readonly index: number; readonly term: number };
}

/** Why a leader stepped down, as `onLeaderStop` receives it. */
export interface LeaderStopStatus {
  /** A stable reason, e.g. `ERR_HIGHER_TERM`, `ERR_TRANSFERRED`, `ERR_SHUTDOWN`. */
  readonly code: string;
  /** Words for a log. */
  readonly message: string;
}

/** The leader this node follows, as `onStartFollowing` and `onStopFollowing` receive it (braft's LeaderChangeContext). */
export interface FollowingContext {
  readonly leaderId: string;
  readonly term: number;
}

/** A configuration that has been committed. */
export interface CommittedConfiguration {
  readonly voters: string[];
  readonly learners: string[];
}

/**
 * The user's replicated state machine, braft's `braft::StateMachine`. Only `onApply` is
 * required. Callbacks are called one at a time, never concurrently, in the fsm worker:
 * while one returns a pending promise the next waits.
 */
export interface StateMachine {
  /**
   * Applies committed entries, in log order. Consecutive commands come in one call, so a
   * state machine can batch its work across them.
   *
   * When `onApply` returns (or its promise resolves) the entries it moved past are applied,
   * and so is the entry the iterator still stands at: braft calls `next()` after `on_apply`
   * "in case that we pass the same log twice". To stop early, return right after handling an
   * entry; `onApply` is then called again with the entries after it.
   *
   * A throw (or rejection) means the state machine cannot go on: the entry the iterator
   * stands at and all later ones are not applied, `onError` is called, and the node applies
   * nothing more (braft stops rather than skip an entry). A command that is merely invalid
   * must be answered with a result instead, since every replica refuses it alike.
   */
  onApply(iter: ApplyIterator): void | Promise<void>;
  /**
   * Writes a snapshot of the current state into `writer.dir` (braft's `on_snapshot_save`).
   * No entry is applied until this returns (or its promise settles), so the state seen
   * here is exactly the state at `writer.meta.index`.
   *
   * To let applying go on while the files are written, capture a consistent view first
   * (copy the data, or freeze a copy-on-write structure) and return a function: applying
   * resumes at once, the runtime calls the function, and the snapshot is complete when
   * the promise it returns settles (braft's `done->Run()` from another thread). The
   * function must only touch the captured view, never the live state.
   */
  onSnapshotSave?(
    writer: SnapshotWriter,
  ): void | Promise<void | (() => Promise<void>)> | (() => Promise<void>);
  /** Replaces the whole state with the snapshot in `reader.dir`. */
  onSnapshotLoad?(reader: SnapshotReader): void | Promise<void>;
  /**
   * Answers a read (`node.read(query)`) from the local state, after the runtime has ensured
   * the consistency asked for. Must not change the state: it runs on one replica only.
   */
  query?(query: Value): Value | Promise<Value>;
  /** This node became leader in `term`. */
  onLeaderStart?(term: number): void;
  /** This node stopped being leader. */
  onLeaderStop?(status: LeaderStopStatus): void;
  /** This node started following `ctx.leaderId` in `ctx.term`. */
  onStartFollowing?(ctx: FollowingContext): void;
  /** This node stopped following `ctx.leaderId`. */
  onStopFollowing?(ctx: FollowingContext): void;
  /** A membership change has been committed; `conf` is the configuration now in force. */
  onConfigurationCommitted?(conf: CommittedConfiguration): void;
  /** The node has stopped on `error` (an apply failure, a disk error) and applies nothing more. */
  onError?(error: Error): void;
  /** The node is shutting down: release what the state machine holds. Last callback called. */
  onShutdown?(): void | Promise<void>;
}

/** What a state machine module's constructor or factory is given. */
export interface StateMachineContext {
  /** This node's id, e.g. `n1`. */
  readonly nodeId: string;
  /** This node's data directory: a state machine may keep its own files under it. */
  readonly dataDir: string;
  /** The `stateMachineOptions` passed to `RaftNode.start`, passed through untouched. */
  readonly options: Record<string, unknown>;
}

/** A state machine class, the first form a module's default export may take. */
export type StateMachineClass = new (ctx: StateMachineContext) => StateMachine;

/** A state machine factory, the second form a module's default export may take. */
export type StateMachineFactory = (ctx: StateMachineContext) => StateMachine | Promise<StateMachine>;

/** The shape of a state machine module: `export default class ...` or `export default function ...`. */
export interface StateMachineModule {
  readonly default: StateMachineClass | StateMachineFactory;
}

/** Callbacks that, when present, must be functions; checked at load to fail early and clearly. */
const OPTIONAL_CALLBACKS = [
  'onSnapshotSave',
  'onSnapshotLoad',
  'query',
  'onLeaderStart',
  'onLeaderStop',
  'onStartFollowing',
  'onStopFollowing',
  'onConfigurationCommitted',
  'onError',
  'onShutdown',
] as const;

/** Whether `fn` was declared with `class`: such a function can only be called with `new`. */
function isClass(fn: unknown): boolean {
  return /^class[\s{]/.test(Function.prototype.toString.call(fn));
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Imports the state machine module at `moduleUrl` and builds its state machine from the
 * default export: a class is constructed with `new X(ctx)`, any other function is called as
 * a factory `(ctx) => StateMachine | Promise<StateMachine>`. Rejects with an Error naming
 * the module when it cannot be imported, has no usable default export, fails to build, or
 * builds something without `onApply` (or with a callback that is not a function).
 */
export async function loadStateMachine(
  moduleUrl: string | URL,
  ctx: StateMachineContext,
): Promise<StateMachine> {
  const url = moduleUrl instanceof URL ? moduleUrl.href : moduleUrl;
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (err) {
    throw new Error(`cannot import the state machine module ${url}: ${describeError(err)}`, { cause: err });
  }
  const make = mod.default;
  if (make === undefined) {
    throw new Error(
      `the state machine module ${url} has no default export: export default a class or a factory function`,
    );
  }
  if (typeof make !== 'function') {
    throw new Error(
      `the default export of the state machine module ${url} is a ${make === null ? 'null' : typeof make}, ` +
        'not a class or a factory function',
    );
  }
  let sm: unknown;
  try {
    sm = isClass(make) ? new (make as StateMachineClass)(ctx) : await (make as StateMachineFactory)(ctx);
  } catch (err) {
    throw new Error(
      `the state machine module ${url} failed to build its state machine: ${describeError(err)}`,
      {
        cause: err,
      },
    );
  }
  if (typeof sm !== 'object' || sm === null) {
    throw new Error(
      `the state machine module ${url} built a ${sm === null ? 'null' : typeof sm}, not a state machine`,
    );
  }
  const candidate = sm as Record<string, unknown>;
  if (typeof candidate.onApply !== 'function') {
    throw new Error(`the state machine built by the module ${url} has no onApply() method`);
  }
  for (const name of OPTIONAL_CALLBACKS) {
    const callback = candidate[name];
    if (callback !== undefined && typeof callback !== 'function') {
      throw new Error(`the state machine built by the module ${url} has a ${name} that is not a function`);
    }
  }
  return sm as StateMachine;
}
