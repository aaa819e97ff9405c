/**
 * Bad input that hurt a node, found while fuzzing (issue 7) in code outside the codecs and
 * servers, each fixed and kept as a test: the 9 MiB command (`apply` refuses commands
 * above MAX_COMMAND_BYTES), the batch whose results overflowed the result ring (the fsm
 * answers such a result with an error value), the Read query of many tiny values (decoded
 * with a bound, MAX_QUERY_VALUES) and the query too large for the fsm's ring
 * (ERR_RAFT_TOO_LARGE; a linearizable one used to stop the node).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kvCommand } from '../../examples/kv.js';
import { RaftClient } from '../../src/client/raft-client.js';
import { MAX_QUERY_VALUES } from '../../src/main/client-server.js';
import { decodeValue } from '../../src/shared/value-codec.js';
import { FuzzCluster } from './cluster.js';
import { liveHeapBytes } from './heap.js';

test('an ApplyBatch of 500,000 empty commands is answered with an error, and the leader goes on', {
  timeout: 60_000,
}, async () => {
  const cluster = await FuzzCluster.start({ size: 1 });
  const client = new RaftClient({ endpoints: [cluster.address('n1')], requestTimeoutMs: 20_000 });
  try {
    await cluster.waitForLeader();
    // 2 MB of request: 500,000 commands of 0 bytes, each a bad kv command.
    // Its 500,000 results would not fit the result ring: the batch is answered with one
    // error value instead, and applying goes on.
    const answer = await client.applyBatch(Array.from({ length: 500_000 }, () => new Uint8Array(0)));
    assert.match(String((answer as unknown as { error?: string }).error), /can be sent/);
    await client.apply(kvCommand({ op: 'put', key: 'k', value: 'v' }));
    assert.equal(await client.read({ op: 'get', key: 'k' }), 'v');
  } finally {
    await client.close();
    await cluster.destroy();
  }
});

test('a 9 MiB command is refused with ERR_RAFT_TOO_LARGE, and the leader lives', {
  timeout: 60_000,
}, async () => {
  const cluster = await FuzzCluster.start();
  const client = new RaftClient({
    endpoints: cluster.ids().map((id) => cluster.address(id)),
    requestTimeoutMs: 10_000,
  });
  try {
    await cluster.waitForLeader();
    await assert.rejects(client.apply(new Uint8Array(9 * 1024 * 1024)), { code: 'ERR_RAFT_TOO_LARGE' });
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(cluster.unexpectedExits, []);
    await client.apply(new Uint8Array(16));
  } finally {
    await client.close();
    await cluster.destroy();
  }
});

test('a Read query of many tiny values is refused before it is built', () => {
  const count = 400_000; // a 2 MB query: 400,000 empty byte strings
  const bytes = new Uint8Array(5 + 5 * count);
  bytes[0] = 10; // array
  new DataView(bytes.buffer).setUint32(1, count, true);
  for (let i = 0; i < count; i++) bytes[5 + 5 * i] = 9; // bytes of length 0
  // Without a bound it decodes, at ~40 bytes of heap per byte of query.
  assert.equal((decodeValue(bytes, 0, bytes.byteLength) as unknown[]).length, count);
  const before = liveHeapBytes();
  assert.throws(() => decodeValue(bytes, 0, bytes.byteLength, MAX_QUERY_VALUES), {
    code: 'ERR_VALUE_DECODE',
    message: /more than 65536 values/,
  });
  const grown = liveHeapBytes() - before;
  assert.ok(grown < bytes.byteLength, `${grown} bytes of heap for a refused ${bytes.byteLength}-byte query`);
  // A query within the bound decodes as before: 1,000 items and the array.
  const small = bytes.slice(0, 5 + 5 * 1000);
  new DataView(small.buffer).setUint32(1, 1000, true);
  assert.equal((decodeValue(small, 0, small.byteLength, 1001) as unknown[]).length, 1000);
  assert.throws(() => decodeValue(small, 0, small.byteLength, 1000), { code: 'ERR_VALUE_DECODE' });
});

test('an oversized or overfull Read query is refused, and the node serves on', {
  timeout: 60_000,
}, async () => {
  const cluster = await FuzzCluster.start({ size: 1 });
  const client = new RaftClient({ endpoints: [cluster.address('n1')], requestTimeoutMs: 10_000 });
  try {
    await cluster.waitForLeader();
    await client.apply(kvCommand({ op: 'put', key: 'k', value: 'v' }));
    // A query of 10 MB did not fit the fsm's ring: a linearizable one stopped the node.
    const big = 'x'.repeat(10_000_000);
    for (const consistency of ['linearizable', 'lease', 'stale'] as const) {
      await assert.rejects(client.read({ op: 'get', key: big }, { consistency }), {
        code: 'ERR_RAFT_TOO_LARGE',
      });
    }
    await assert.rejects(client.read(Array.from({ length: 100_000 }, () => new Uint8Array(0))), {
      message: /more than 65536 values/,
    });
    assert.equal(await client.read({ op: 'get', key: 'k' }), 'v');
    assert.deepEqual(cluster.unexpectedExits, []);
  } finally {
    await client.close();
    await cluster.destroy();
  }
});
