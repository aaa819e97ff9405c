/**
 * The parent side of the IPC that the test harnesses use to drive a node process
 * (`ipc-node.ts` is the child's): `ProcessCluster` and the fuzz harness's `FuzzCluster`
 * fork one of these per member and send it requests.
 *
 * Messages from the child: `ready` (it serves), `start-error` (it could not start),
 * `reply` (the answer to a request, by id) and `acked` (progress of a 'write' request,
 * by its id). When the child exits, what is still waiting fails.
 */

import type { ChildProcess } from 'node:child_process';

/** What the child sends. */
interface ChildMessage {
  readonly type: string;
  readonly id?: number;
  readonly result?: unknown;
  readonly indexes?: number[];
  readonly error?: { readonly code?: string; readonly message: string };
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly onAcked: ((indexes: number[]) => void) | undefined;
}

/** One member's process, from its fork until it exits. */
export class MemberProcess {
  readonly child: ChildProcess;
  /** Resolves once the child serves; rejects if it fails to start or exits first. */
  readonly ready: Promise<void>;
  private readonly name: string;
  private nextRequestId = 1;
  private readonly pending = new Map<number, Pending>();
  /** How the child ended, once it has: later requests fail at once instead of waiting. */
  private exit: string | null = null;

  /** `name` (the member's id) prefixes the errors; `onExit` is told how the child ended. */
  constructor(
    child: ChildProcess,
    name: string,
    onExit?: (code: number | null, signal: NodeJS.Signals | null) => void,
  ) {
    this.child = child;
    this.name = name;
    this.ready = new Promise<void>((resolve, reject) => {
      child.on('message', (msg: ChildMessage) => {
        if (msg.type === 'ready') resolve();
        else if (msg.type === 'start-error')
          reject(new Error(`${name} failed to start: ${msg.error?.message}`));
        else if (msg.type === 'acked' && msg.id !== undefined)
          this.pending.get(msg.id)?.onAcked?.(msg.indexes ?? []);
        else if (msg.type === 'reply' && msg.id !== undefined) this.settle(msg.id, msg);
      });
      child.once('exit', (code, signal) => {
        this.exit = `${name} exited (${code ?? signal})`;
        reject(new Error(`${this.exit} before it was ready`));
        for (const p of this.pending.values()) p.reject(new Error(this.exit));
        this.pending.clear();
        onExit?.(code, signal);
      });
    });
    // A start that fails is reported through `ready` to whoever awaits it.
    this.ready.catch(() => {});
  }

  /**
   * Sends request `op` with `args`; resolves with the child's result, or rejects with its
   * error (message and `code`). `timeoutMs`: rejects if no answer comes in that time.
   * `onAcked`: told the progress a 'write' request reports.
   */
  request<T = unknown>(
    op: string,
    args: Record<string, unknown> = {},
    opts: { timeoutMs?: number; onAcked?: (indexes: number[]) => void } = {},
  ): Promise<T> {
    if (this.exit !== null) return Promise.reject(new Error(this.exit));
    const id = this.nextRequestId++;
    return new Promise<T>((resolve, reject) => {
      const timer =
        opts.timeoutMs === undefined
          ? null
          : setTimeout(() => {
              this.pending.delete(id);
              reject(new Error(`${this.name}: ${op} got no answer in ${opts.timeoutMs} ms`));
            }, opts.timeoutMs);
      const done = (): void => {
        if (timer !== null) clearTimeout(timer);
      };
      this.pending.set(id, {
        resolve: (value) => {
          done();
          resolve(value as T);
        },
        reject: (error) => {
          done();
          reject(error);
        },
        onAcked: opts.onAcked,
      });
      // A channel that closed before the exit event fails the send, not the wait.
      this.child.send({ id, op, ...args }, (error) => {
        if (error === null || !this.pending.has(id)) return;
        this.pending.delete(id);
        done();
        reject(error);
      });
    });
  }

  private settle(id: number, msg: ChildMessage): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (msg.error) p.reject(Object.assign(new Error(msg.error.message), { code: msg.error.code }));
    else p.resolve(msg.result);
  }
}
