/** Finding the leader of a cluster and the status of each node, for the admin commands and bench. */

import type { RaftClient } from '../client/raft-client.js';

/** One node's answer to a status request, or why there was none. */
export type NodeAnswer =
  | { readonly endpoint: string; readonly ok: true; readonly status: Record<string, unknown> }
  | { readonly endpoint: string; readonly ok: false; readonly error: string };

/** Asks every endpoint for its status, in parallel. */
export async function statusOfAll(client: RaftClient, endpoints: string[]): Promise<NodeAnswer[]> {
  return Promise.all(
    endpoints.map(async (endpoint): Promise<NodeAnswer> => {
      try {
        return { endpoint, ok: true, status: (await client.statusOf(endpoint)) as Record<string, unknown> };
      } catch (err) {
        return { endpoint, ok: false, error: (err as Error).message };
      }
    }),
  );
}

/** Waits until one node reports itself leader; returns its id and address. */
export async function waitForLeader(
  client: RaftClient,
  endpoints: string[],
  timeoutMs: number,
): Promise<{ id: string; address: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answers = await statusOfAll(client, endpoints);
    for (const a of answers) {
      if (a.ok && a.status.role === 'Leader') return { id: a.status.id as string, address: a.endpoint };
    }
    if (Date.now() > deadline) {
      throw Object.assign(new Error(`no leader among ${endpoints.join(', ')} within ${timeoutMs} ms`), {
        code: 'ERR_RAFT_UNAVAILABLE',
      });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
