/**
 * A node with no Raft behind it: the real `PeerServer` and `serveClient` on 127.0.0.1:0,
 * answering client requests from a fake `ClientHandler` that each test writes. Used by the
 * client-server routing tests (through `RaftClient` and raw sockets) and by the CLI tests
 * (through `raftline` child processes), so the CLI, the client, the codec and the client
 * server are all real and only the coordinator is faked.
 */

import type { ClientHandler } from '../../src/main/client-server.js';
import { serveClient } from '../../src/main/client-server.js';
import { RaftError } from '../../src/main/errors.js';
import { PeerServer } from '../../src/main/peer-server.js';
import type { Value } from '../../src/shared/value-codec.js';

/** One call the fake handler received, in order. */
export interface HandlerCall {
  readonly method: keyof ClientHandler;
  readonly args: readonly unknown[];
}

/** A running fake node. */
export interface FakeHandlerNode {
  /** `127.0.0.1:<port>`. */
  readonly address: string;
  /** Every handler call, in arrival order. */
  readonly calls: HandlerCall[];
  close(): Promise<void>;
}

const unsupported = (method: string) => (): Promise<Value> =>
  Promise.reject(new RaftError('ERR_RAFT_NOT_SUPPORTED', `the fake node does not implement ${method}`));

/**
 * Starts a fake node whose handler is `handler` (methods not given reject with
 * ERR_RAFT_NOT_SUPPORTED; `statusValue` defaults to a follower's). `nodeId` is what the
 * node says in its handshake.
 */
export async function startFakeHandlerNode(
  handler: Partial<ClientHandler>,
  options: { nodeId?: string; clusterId?: string } = {},
): Promise<FakeHandlerNode> {
  const calls: HandlerCall[] = [];
  const base: ClientHandler = {
    applyEncoded: unsupported('applyEncoded'),
    read: unsupported('read'),
    statusValue: () => ({ id: options.nodeId ?? 'fake', role: 'Follower' }),
    snapshot: unsupported('snapshot'),
    transfer: unsupported('transfer'),
    addPeer: unsupported('addPeer'),
    addLearner: unsupported('addLearner'),
    removePeer: unsupported('removePeer'),
  };
  const impl = { ...base, ...handler } as ClientHandler;
  // Every call is recorded before the test's implementation runs (and may throw).
  const recording = Object.fromEntries(
    (Object.keys(base) as (keyof ClientHandler)[]).map((method) => [
      method,
      (...args: unknown[]) => {
        calls.push({ method, args });
        return (impl[method] as (...a: unknown[]) => unknown)(...args);
      },
    ]),
  ) as unknown as ClientHandler;
  const quiet = { info: () => {}, warn: () => {} };
  const server = new PeerServer({
    host: '127.0.0.1',
    port: 0,
    clusterId: options.clusterId ?? 'raftline',
    nodeId: options.nodeId ?? 'fake',
    logger: quiet,
    onMessage: () => {},
    onClientConnection: (socket, _handshake, decoder) => serveClient(socket, decoder, recording, quiet),
  });
  const { port } = await server.listen();
  return { address: `127.0.0.1:${port}`, calls, close: () => server.close() };
}

/** A leader's `statusValue`, as far as `raftline peers` and `waitForLeader` read it. */
export function leaderStatus(fields: {
  id: string;
  voters: string[];
  learners: string[];
  peers: {
    id: string;
    address: string;
    connected: boolean;
    matchIndex: number;
    lastAckAgoMs: number | null;
  }[];
  term?: number;
  commitIndex?: number;
  lastIndex?: number;
  durableIndex?: number;
}): Value {
  return {
    role: 'Leader',
    leader: fields.id,
    pid: process.pid,
    term: 3,
    commitIndex: 40,
    appliedIndex: 40,
    lastIndex: 42,
    durableIndex: 42,
    logEntries: 42,
    logBytes: 0,
    ...fields,
  };
}
