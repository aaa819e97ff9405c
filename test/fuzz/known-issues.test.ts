/**
 * Bad input that hurt a node, found while fuzzing (issue 7) in code outside the codecs and
 * servers. A test still marked `todo` names where the fix belongs: it runs and reports
 * without failing the suite, and passes once the fix is in. Fixed, and plain tests now:
 * the 9 MiB command (`apply` refuses commands above MAX_COMMAND_BYTES) and the batch whose
 * results overflowed the result ring (the fsm answers such a result with an error value).
 */

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kvCommand } from '../../examples/kv.js';
import { RaftClient } from '../../src/client/raft-client.js';
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

test('decoding a Read query costs a bounded multiple of its bytes', {
  todo:
    'value-codec / client-server: a query of empty byte strings (5 bytes each) becomes one Uint8Array ' +
    '(~200 bytes of heap) per 5 bytes: a 64 MiB Read frame took ~2.4 GiB of heap and 14 s of the main ' +
    'thread here. Bound the items a query may decode to, or the bytes of a query.',
}, () => {
  const count = 400_000; // a 2 MB query
  const bytes = new Uint8Array(5 + 5 * count);
  bytes[0] = 10; // array
  new DataView(bytes.buffer).setUint32(1, count, true);
  for (let i = 0; i < count; i++) bytes[5 + 5 * i] = 9; // bytes of length 0
  const before = liveHeapBytes();
  const value = decodeValue(bytes, 0, bytes.byteLength) as unknown[];
  const grown = liveHeapBytes() - before;
  assert.equal(value.length, count);
  assert.ok(
    grown < 8 * bytes.byteLength,
    `${(grown / bytes.byteLength).toFixed(0)} bytes of heap per byte of query`,
  );
});
