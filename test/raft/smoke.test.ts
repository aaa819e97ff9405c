import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Role } from '../../src/raft/types.js';
import { SyncCluster } from './sync-cluster.js';

test('three nodes elect a leader and commit a proposal on all of them', () => {
  const c = new SyncCluster(['n1', 'n2', 'n3']);
  assert.equal(c.elect('n1'), 'n1');
  assert.equal(c.node('n1').core.role, Role.Leader);
  const idx = c.node('n1').core.propose(new TextEncoder().encode('hello'));
  assert.ok(idx > 0);
  c.stabilize();
  for (const id of ['n1', 'n2', 'n3']) {
    const n = c.node(id);
    assert.equal(n.core.log.committed, idx, id);
    assert.equal(new TextDecoder().decode(n.applied[n.applied.length - 1]?.data), 'hello');
  }
});
