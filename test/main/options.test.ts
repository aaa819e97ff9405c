/**
 * `resolveOptions` (src/main/options.ts): defaults, the state machine path turned into a
 * file URL, and every bad option refused with an `InvalidOptionError` that names it.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { InvalidOptionError, RaftError } from '../../src/main/errors.js';
import { type RaftNodeOptions, resolveOptions } from '../../src/main/options.js';

function base(): RaftNodeOptions {
  return {
    id: 'n1',
    dataDir: '/tmp/raftline-options-test/n1',
    listen: '127.0.0.1:7001',
    peers: ['n1=127.0.0.1:7001', 'n2=127.0.0.1:7002', 'n3=127.0.0.1:7003'],
    stateMachine: '/srv/app/sm.js',
  };
}

/** `resolveOptions` with `patch` applied to valid options; `undefined` deletes a key. */
function resolveWith(patch: Record<string, unknown>) {
  const o: Record<string, unknown> = { ...base() };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete o[k];
    else o[k] = v;
  }
  return resolveOptions(o as unknown as RaftNodeOptions);
}

/** Asserts the patched options fail with an InvalidOptionError naming `option`. */
function assertRefused(patch: Record<string, unknown>, option: string, message?: RegExp): void {
  assert.throws(
    () => resolveWith(patch),
    (err: unknown) => {
      assert.ok(err instanceof InvalidOptionError, `expected InvalidOptionError, got ${String(err)}`);
      assert.ok(err instanceof RaftError);
      assert.equal(err.code, 'ERR_RAFT_INVALID_OPTION');
      assert.equal(err.option, option);
      assert.ok(err.message.includes(option), `message ${JSON.stringify(err.message)} names ${option}`);
      if (message) assert.match(err.message, message);
      return true;
    },
    `${JSON.stringify(patch)} must be refused as ${option}`,
  );
}

describe('resolveOptions', () => {
  test('defaults are applied to everything left out', () => {
    const r = resolveOptions(base());
    assert.deepEqual(r, {
      id: 'n1',
      dataDir: path.resolve('/tmp/raftline-options-test/n1'),
      listen: { host: '127.0.0.1', port: 7001 },
      peers: [
        { id: 'n1', host: '127.0.0.1', port: 7001 },
        { id: 'n2', host: '127.0.0.1', port: 7002 },
        { id: 'n3', host: '127.0.0.1', port: 7003 },
      ],
      stateMachine: 'file:///srv/app/sm.js',
      stateMachineOptions: {},
      clusterId: 'raftline',
      electionTimeoutMs: 1000,
      heartbeatIntervalMs: 100,
      sync: true,
      segmentBytes: 64 * 1024 * 1024,
      logWindowBytes: 32 * 1024 * 1024,
      maxPendingApplies: 10_000,
      requestTimeoutMs: 10_000,
      shutdownDrainMs: 2000,
      maxAppendBytes: 1024 * 1024,
      maxInflightAppends: 256,
      join: false,
      snapshotIntervalS: 3600,
      snapshotLogBytes: 128 * 1024 * 1024,
      snapshotLogEntries: 500_000,
      snapshotMinIntervalS: 5,
      compactionMarginEntries: 10_000,
      snapshotChunkBytes: 1024 * 1024,
      snapshotBytesPerSecond: 128 * 1024 * 1024,
      promoteMarginEntries: 1000,
      logLevel: 'info',
      secret: null,
      adminSecret: null,
      tls: null,
      maxClientSessions: 10_000,
      clientSessionTimeoutMs: 3_600_000,
      maxConnections: 1024,
      handshakeTimeoutMs: 5000,
      clientIdleTimeoutMs: 300_000,
    });
  });

  test('given values are kept', () => {
    const r = resolveWith({
      clusterId: 'prod',
      electionTimeoutMs: 300,
      heartbeatIntervalMs: 100,
      sync: false,
      segmentBytes: 1024 * 1024,
      logWindowBytes: 1024 * 1024,
      maxPendingApplies: 7,
      requestTimeoutMs: 50,
      shutdownDrainMs: 0,
      maxAppendBytes: 4096,
      maxInflightAppends: 1,
      logLevel: 'silent',
      stateMachineOptions: { a: 1 },
    });
    assert.equal(r.clusterId, 'prod');
    assert.equal(r.electionTimeoutMs, 300, 'exactly 3 × heartbeatIntervalMs is allowed');
    assert.equal(r.sync, false);
    assert.equal(r.segmentBytes, 1024 * 1024);
    assert.equal(r.logWindowBytes, 1024 * 1024);
    assert.equal(r.maxPendingApplies, 7);
    assert.equal(r.requestTimeoutMs, 50);
    assert.equal(r.shutdownDrainMs, 0);
    assert.equal(r.maxAppendBytes, 4096);
    assert.equal(r.maxInflightAppends, 1);
    assert.equal(r.logLevel, 'silent');
    assert.deepEqual(r.stateMachineOptions, { a: 1 });
  });

  test('stateMachine: a path becomes a file URL; URLs are kept', () => {
    assert.equal(
      resolveWith({ stateMachine: './sm.js' }).stateMachine,
      pathToFileURL(path.resolve('sm.js')).href,
    );
    assert.equal(
      resolveWith({ stateMachine: 'lib/my sm.js' }).stateMachine,
      pathToFileURL(path.resolve('lib/my sm.js')).href,
    );
    assert.match(
      resolveWith({ stateMachine: 'lib/my sm.js' }).stateMachine,
      /^file:\/\/\/.*\/lib\/my%20sm\.js$/,
    );
    assert.equal(resolveWith({ stateMachine: '/abs/sm.mjs' }).stateMachine, 'file:///abs/sm.mjs');
    assert.equal(resolveWith({ stateMachine: 'file:///abs/sm.js' }).stateMachine, 'file:///abs/sm.js');
    assert.equal(resolveWith({ stateMachine: new URL('file:///abs/x.js') }).stateMachine, 'file:///abs/x.js');
    assert.equal(
      resolveWith({ stateMachine: 'data:text/javascript,export default 1' }).stateMachine.slice(0, 5),
      'data:',
    );
  });

  test('dataDir is resolved to an absolute path', () => {
    assert.equal(resolveWith({ dataDir: 'data/n1' }).dataDir, path.resolve('data/n1'));
  });

  test('listen accepts port 0 and bracketed IPv6', () => {
    assert.deepEqual(resolveWith({ listen: '127.0.0.1:0' }).listen, { host: '127.0.0.1', port: 0 });
    assert.deepEqual(resolveWith({ listen: '[::1]:7001' }).listen, { host: '::1', port: 7001 });
  });

  test('an unknown option is refused, naming it (a typo must not fall back to a default)', () => {
    assertRefused({ electionTimeout: 500 }, 'electionTimeout', /not a RaftNode option/);
    assertRefused({ heartbeatInterval: 50 }, 'heartbeatInterval');
    assertRefused({ peer: [] }, 'peer');
  });

  test('options must be an object', () => {
    for (const bad of [null, undefined, 'n1', 42]) {
      assert.throws(
        () => resolveOptions(bad as unknown as RaftNodeOptions),
        (err: unknown) => err instanceof InvalidOptionError && err.option === 'options',
      );
    }
  });

  test('id', () => {
    assertRefused({ id: undefined }, 'id');
    assertRefused({ id: '' }, 'id');
    assertRefused({ id: 7 }, 'id');
  });

  test('dataDir', () => {
    assertRefused({ dataDir: undefined }, 'dataDir');
    assertRefused({ dataDir: '' }, 'dataDir');
  });

  test('listen', () => {
    assertRefused({ listen: '127.0.0.1:99999' }, 'listen', /99999/);
    assertRefused({ listen: '127.0.0.1' }, 'listen');
    assertRefused({ listen: '127.0.0.1:-1' }, 'listen');
    assertRefused({ listen: undefined }, 'listen');
    assertRefused({ listen: 7001 }, 'listen');
  });

  test('peers', () => {
    assertRefused({ peers: undefined }, 'peers');
    assertRefused({ peers: [] }, 'peers');
    assertRefused({ peers: 'n1=127.0.0.1:7001' }, 'peers');
    assertRefused({ peers: ['n2=127.0.0.1:7002', 'n3=127.0.0.1:7003'] }, 'peers', /n1/);
    assertRefused(
      { peers: ['n1=127.0.0.1:7001', 'n2=127.0.0.1:7002', 'n2=127.0.0.1:7004'] },
      'peers',
      /n2 appears twice/,
    );
    assertRefused({ peers: ['n1=127.0.0.1:7001', 42] }, 'peers', /strings/);
    assertRefused({ peers: ['n1=127.0.0.1:7001', null] }, 'peers');
    assertRefused({ peers: ['n1=127.0.0.1:7001', 'n2'] }, 'peers', /n2/);
    assertRefused({ peers: ['n1=127.0.0.1:7001', 'n2=127.0.0.1:0'] }, 'peers', /port 0/);
    assertRefused({ peers: ['n1=127.0.0.1:7001', ' n2=127.0.0.1:7002'] }, 'peers');
  });

  test('stateMachine', () => {
    assertRefused({ stateMachine: undefined }, 'stateMachine');
    assertRefused({ stateMachine: '' }, 'stateMachine');
    assertRefused({ stateMachine: 42 }, 'stateMachine');
    assertRefused({ stateMachine: {} }, 'stateMachine');
  });

  test('stateMachineOptions', () => {
    assertRefused({ stateMachineOptions: 'x' }, 'stateMachineOptions');
    assertRefused({ stateMachineOptions: 5 }, 'stateMachineOptions');
  });

  test('electionTimeoutMs must be at least 3 × heartbeatIntervalMs', () => {
    assertRefused(
      { electionTimeoutMs: 299, heartbeatIntervalMs: 100 },
      'electionTimeoutMs',
      /3 × heartbeatIntervalMs/,
    );
    assert.equal(resolveWith({ electionTimeoutMs: 500 }).electionTimeoutMs, 500);
    assertRefused({ heartbeatIntervalMs: 400 }, 'electionTimeoutMs', /1200/); // default 1000 < 3 × 400
    assertRefused({ electionTimeoutMs: 2 }, 'electionTimeoutMs');
    assertRefused({ electionTimeoutMs: '1000' }, 'electionTimeoutMs');
    assertRefused({ heartbeatIntervalMs: 0 }, 'heartbeatIntervalMs');
    assertRefused({ heartbeatIntervalMs: 1.5 }, 'heartbeatIntervalMs');
  });

  test('logWindowBytes must be a power of two within bounds', () => {
    assertRefused({ logWindowBytes: 3 * 1024 * 1024 }, 'logWindowBytes', /power of two/);
    assertRefused({ logWindowBytes: 64 * 1024 + 1 }, 'logWindowBytes');
    assertRefused({ logWindowBytes: 32 * 1024 }, 'logWindowBytes');
    assertRefused({ logWindowBytes: 2 ** 31 }, 'logWindowBytes');
    assertRefused({ logWindowBytes: Number.NaN }, 'logWindowBytes');
    assert.equal(resolveWith({ logWindowBytes: 64 * 1024 }).logWindowBytes, 64 * 1024);
    assert.equal(resolveWith({ logWindowBytes: 2 ** 30 }).logWindowBytes, 2 ** 30);
  });

  test('sync must be a boolean', () => {
    assertRefused({ sync: 'false' }, 'sync');
    assertRefused({ sync: 0 }, 'sync');
    assertRefused({ sync: 1 }, 'sync');
  });

  test('logLevel must be a pino level', () => {
    assertRefused({ logLevel: 'verbose' }, 'logLevel', /fatal, error, warn, info, debug, trace, silent/);
    assertRefused({ logLevel: 'INFO' }, 'logLevel');
    assertRefused({ logLevel: 3 }, 'logLevel');
    for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']) {
      assert.equal(resolveWith({ logLevel: level }).logLevel, level);
    }
  });

  test('the other numeric options are integers within their bounds', () => {
    const cases: [string, unknown][] = [
      ['segmentBytes', 1000],
      ['segmentBytes', 2 ** 31 + 1],
      ['maxPendingApplies', 0],
      ['maxPendingApplies', 1.5],
      ['requestTimeoutMs', 0],
      ['shutdownDrainMs', -1],
      ['maxAppendBytes', 1023],
      ['maxAppendBytes', 16 * 1024 * 1024 + 1],
      ['maxInflightAppends', 0],
      ['maxInflightAppends', 65_537],
      ['maxInflightAppends', '8'],
      ['clusterId', ''],
      ['clusterId', 5],
      ['snapshotIntervalS', -1],
      ['snapshotLogBytes', 1.5],
      ['snapshotLogEntries', '100'],
      ['snapshotMinIntervalS', 86_401],
      ['compactionMarginEntries', -5],
      ['snapshotChunkBytes', 4095],
      ['snapshotChunkBytes', 8 * 1024 * 1024 + 1],
      ['snapshotBytesPerSecond', null],
      ['promoteMarginEntries', -1],
      ['join', 'yes'],
      ['maxConnections', 31],
      ['maxConnections', 1.5],
      ['handshakeTimeoutMs', 0],
      ['clientIdleTimeoutMs', -1],
      ['clientIdleTimeoutMs', '300000'],
    ];
    for (const [option, value] of cases) assertRefused({ [option]: value }, option);
  });
});
