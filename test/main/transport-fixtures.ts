/**
 * What the transport tests (`peer-transport.test.ts`, `auth.test.ts`, `tls.test.ts`) share: a
 * recording logger, bounded waits, a started `PeerLink` from n1 to n2 stopped when the
 * test ends, and a heartbeat frame.
 */
import type { TestContext } from 'node:test';
import { MessageType, message } from '../../src/raft/messages.js';
import { encodeRaftMessageFrame, OutBuffer } from '../../src/shared/message-codec.js';
import { PeerLink, type PeerLinkOptions } from '../../src/workers/replicator/peer-link.js';

export const HOST = '127.0.0.1';
export const CLUSTER = 'alpha';

export interface LogLine {
  readonly level: 'info' | 'warn';
  readonly fields: Record<string, unknown>;
  readonly msg: string;
}

/** A logger that keeps every line, so a test can check what was logged and how often. */
export function recordingLogger(): {
  lines: LogLine[];
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
} {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (o, m) => lines.push({ level: 'info', fields: o as Record<string, unknown>, msg: m }),
    warn: (o, m) => lines.push({ level: 'warn', fields: o as Record<string, unknown>, msg: m }),
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 5 ms; fails after `timeoutMs`. */
export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A started link from n1 to n2 at `port` with a short backoff, stopped when the test ends. */
export function startLink(
  t: TestContext,
  port: number,
  extra: Partial<PeerLinkOptions> = {},
): { link: PeerLink; log: ReturnType<typeof recordingLogger> } {
  const log = recordingLogger();
  const link = new PeerLink({
    host: HOST,
    port,
    clusterId: CLUSTER,
    nodeId: 'n1',
    peerId: 'n2',
    minBackoffMs: 10,
    maxBackoffMs: 50,
    logger: log,
    ...extra,
  });
  t.after(() => link.stop());
  link.start();
  return { link, log };
}

/** A heartbeat from n1 to n2, numbered by `index`, as an encoded frame of its own. */
export function heartbeat(index: number): Uint8Array {
  const out = new OutBuffer(128);
  encodeRaftMessageFrame(
    out,
    message({ type: MessageType.MsgHeartbeat, from: 'n1', to: 'n2', term: 1, index }),
  );
  return out.view().slice();
}
