/**
 * The child side of the IPC that the test harnesses use to drive a node process
 * (`node-process.ts` for `ProcessCluster`, `test/fuzz/fuzz-node.ts` for `FuzzCluster`):
 * requests `{ id, op, ...args }` from the parent, each answered by
 * `{ type: 'reply', id, result }` or `{ type: 'reply', id, error: { code, message } }`.
 * 'shutdown' is common to both: it shuts the node down, answers, and exits.
 */

/** A request from the parent. */
export interface IpcRequest {
  readonly id: number;
  readonly op: string;
  readonly [k: string]: unknown;
}

/** Answers one op; what it returns (or resolves with) is the reply's result. */
export type IpcOp = (req: IpcRequest) => unknown;

/** Sends `message` to the parent, if there is one. */
export function sendToParent(message: object): void {
  process.send?.(message);
}

/**
 * Tells the parent the node serves, then answers its requests with `ops` until a
 * 'shutdown', which shuts `node` down, answers and exits. An op that throws or rejects is
 * answered with its error's code and message; an unknown op, with an error naming it.
 */
export function serveParent(
  node: { readonly address: string; shutdown(): Promise<void> },
  ops: Readonly<Record<string, IpcOp>>,
): void {
  sendToParent({ type: 'ready', address: node.address, pid: process.pid });
  process.on('message', async (req: IpcRequest) => {
    try {
      if (req.op === 'shutdown') {
        await node.shutdown();
        sendToParent({ type: 'reply', id: req.id, result: null });
        process.exit(0);
      }
      const op = ops[req.op];
      if (op === undefined) throw new Error(`unknown op ${req.op}`);
      sendToParent({ type: 'reply', id: req.id, result: await op(req) });
    } catch (err) {
      const e = err as { code?: string; message?: string };
      sendToParent({
        type: 'reply',
        id: req.id,
        error: { code: e.code ?? 'unknown', message: e.message ?? String(err) },
      });
    }
  });
}
