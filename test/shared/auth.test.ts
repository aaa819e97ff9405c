/**
 * The challenge–response primitives of `src/shared/auth.ts`: loading secrets, the proofs
 * and what they cover, and both sides of the exchange driven against each other without
 * sockets (the servers are tested in `test/main/auth.test.ts`).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import type { InvalidOptionError } from '../../src/main/errors.js';
import { resolveOptions } from '../../src/main/options.js';
import {
  ConnectorAuth,
  type ConnectorCredentials,
  checkConnector,
  computeProof,
  connectorPolicyRefusal,
  type ListenerSecrets,
  listenerAnswer,
  loadSecret,
  MIN_SECRET_BYTES,
  NO_CREDENTIALS,
  NO_SECRETS,
  ProofSide,
  proofMatches,
  readSecretFile,
  toSecret,
} from '../../src/shared/auth.js';
import { FrameDecoder, FrameError, type Handshake } from '../../src/shared/message-codec.js';
import { FrameType, HandshakeRole } from '../../src/shared/protocol.js';

const SECRET = toSecret('correct horse battery staple', 'test');
const OTHER = toSecret('another secret, just as long', 'test');
const ADMIN = toSecret('the admin secret for this test', 'test');
const NODE = { role: HandshakeRole.Peer, clusterId: 'c', nodeId: 'n2', electionTimeoutMs: 1000 };

function connectorHello(overrides: Partial<Handshake> = {}): Handshake {
  return {
    role: HandshakeRole.Peer,
    clusterId: 'c',
    nodeId: 'n1',
    electionTimeoutMs: 1000,
    authFollows: true,
    nonce: new Uint8Array(32).fill(7),
    ...overrides,
  };
}

/** Decodes the frames of `bytes` (a node's answer), handshake first. */
function framesOf(bytes: Uint8Array): ReturnType<FrameDecoder['next']>[] {
  const decoder = new FrameDecoder();
  decoder.push(bytes);
  const frames: ReturnType<FrameDecoder['next']>[] = [];
  for (let f = decoder.next(); f !== null; f = decoder.next()) {
    frames.push(f);
    if (f instanceof FrameError) break;
  }
  return frames;
}

/**
 * Runs one whole exchange: the connector's hello, the node's answer, the connector's
 * verdict and reply, the node's verdict. What each side concluded.
 */
function exchange(
  credentials: ConnectorCredentials,
  secrets: ListenerSecrets,
  role = HandshakeRole.Client,
): { connector: string; node: string; admin?: boolean } {
  const auth = new ConnectorAuth(
    { role, clusterId: 'c', nodeId: role === HandshakeRole.Client ? '' : 'n1', electionTimeoutMs: 0 },
    credentials,
  );
  const hello = framesOf(auth.helloBytes)[0];
  assert.ok(hello && !(hello instanceof FrameError) && hello.type === FrameType.Handshake);
  const policy = connectorPolicyRefusal(secrets, hello.handshake);
  if (policy !== null) return { connector: 'not asked', node: `refused: ${policy}` };
  const answer = listenerAnswer(secrets, NODE, hello.handshake);
  let step: ReturnType<ConnectorAuth['onAuth']> = { kind: 'wait' };
  for (const f of framesOf(answer.bytes)) {
    assert.ok(f !== null && !(f instanceof FrameError));
    if (f.type === FrameType.Handshake) step = auth.onHandshake(f.handshake);
    else if (f.type === FrameType.Auth) step = auth.onAuth(f.auth.proof);
    if (step.kind === 'refuse') return { connector: `refused: ${step.reason}`, node: 'not asked' };
  }
  if (step.kind !== 'done') return { connector: 'still waiting', node: 'not asked' };
  // The node decodes the connector's AUTH frame behind its handshake, as a server does.
  const decoder = new FrameDecoder();
  decoder.push(auth.helloBytes);
  decoder.next();
  decoder.push(step.reply);
  const proofFrame = step.reply.byteLength > 0 ? decoder.next() : null;
  assert.ok(!(proofFrame instanceof FrameError));
  const proofs = proofFrame !== null && proofFrame.type === FrameType.Auth ? proofFrame.auth : null;
  const verdict = checkConnector(secrets, hello.handshake, answer.handshake, proofs);
  if (!verdict.ok) return { connector: 'done', node: `refused: ${verdict.reason}` };
  return { connector: 'done', node: 'accepted', admin: verdict.admin };
}

describe('secrets', () => {
  test('a file: trailing white space is cut, a short one is refused naming the file, not its contents', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-auth-'));
    try {
      const file = path.join(dir, 'secret');
      fs.writeFileSync(file, 'correct horse battery staple\n');
      assert.deepEqual(Buffer.from(readSecretFile(file).bytes).toString(), 'correct horse battery staple');
      fs.writeFileSync(file, 'short\n');
      assert.throws(
        () => readSecretFile(file),
        (err: Error) => {
          assert.match(err.message, /secret file .*secret holds 5 bytes; a secret needs at least 16/);
          assert.doesNotMatch(err.message, /short/);
          return true;
        },
      );
      assert.throws(
        () => readSecretFile(path.join(dir, 'missing')),
        /cannot read the secret file .*missing: ENOENT/,
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the file wins over the environment; the environment over nothing; empty is none', () => {
    const env = { RAFTLINE_SECRET: 'x'.repeat(MIN_SECRET_BYTES) };
    assert.equal(
      Buffer.from(loadSecret(undefined, 'RAFTLINE_SECRET', env)?.bytes ?? []).toString(),
      env.RAFTLINE_SECRET,
    );
    assert.equal(loadSecret(undefined, 'RAFTLINE_SECRET', {}), null);
    assert.equal(loadSecret(undefined, 'RAFTLINE_SECRET', { RAFTLINE_SECRET: '' }), null);
    assert.throws(
      () => loadSecret(undefined, 'RAFTLINE_SECRET', { RAFTLINE_SECRET: 'x' }),
      /RAFTLINE_SECRET holds 1 bytes/,
    );
    assert.throws(
      () => loadSecret('/nonexistent/raftline-secret', 'RAFTLINE_SECRET', env),
      /cannot read the secret file/,
    );
  });

  test('a secret never prints its bytes', () => {
    const printed = [String(SECRET), JSON.stringify({ secret: SECRET }), inspect({ secret: SECRET })].join(
      ' ',
    );
    assert.doesNotMatch(printed, /horse/);
    assert.match(printed, /\[secret\]/);
  });
});

describe('proofs', () => {
  const c = connectorHello();
  const l: Handshake = { ...NODE, authFollows: true, nonce: new Uint8Array(32).fill(9) };

  test('a proof is an HMAC-SHA256 that checks with the same inputs and secret only', () => {
    const proof = computeProof(SECRET, ProofSide.Connector, c, l);
    assert.equal(proof.byteLength, 32);
    assert.ok(proofMatches(SECRET, ProofSide.Connector, c, l, proof));
    assert.ok(!proofMatches(OTHER, ProofSide.Connector, c, l, proof), 'another secret');
    assert.ok(!proofMatches(SECRET, ProofSide.Connector, c, l, null), 'no proof');
    assert.ok(!proofMatches(SECRET, ProofSide.Connector, c, l, proof.subarray(0, 31)), 'a cut proof');
    const flipped = Uint8Array.from(proof);
    flipped[0] = (flipped[0] as number) ^ 1;
    assert.ok(!proofMatches(SECRET, ProofSide.Connector, c, l, flipped), 'one bit off');
  });

  test('it covers each side, role, id, timeout and nonce: none of them can be swapped', () => {
    const proof = computeProof(SECRET, ProofSide.Connector, c, l);
    const variants: [string, ProofSide, Handshake, Handshake][] = [
      ['reflected as the listener', ProofSide.Listener, c, l],
      ['as an admin proof', ProofSide.Admin, c, l],
      ['another role', ProofSide.Connector, { ...c, role: HandshakeRole.Snapshot }, l],
      ['another cluster', ProofSide.Connector, { ...c, clusterId: 'd' }, l],
      ['another connector', ProofSide.Connector, { ...c, nodeId: 'n3' }, l],
      ['another listener', ProofSide.Connector, c, { ...l, nodeId: 'n3' }],
      ['another connector timeout', ProofSide.Connector, { ...c, electionTimeoutMs: 999 }, l],
      ['another listener timeout', ProofSide.Connector, c, { ...l, electionTimeoutMs: 999 }],
      ['another connector nonce', ProofSide.Connector, { ...c, nonce: new Uint8Array(32).fill(8) }, l],
      ['another listener nonce', ProofSide.Connector, c, { ...l, nonce: new Uint8Array(32).fill(8) }],
      // Length prefixes: moving a byte from one id to the next is another input.
      ['ids split elsewhere', ProofSide.Connector, { ...c, clusterId: 'cn', nodeId: '1' }, l],
    ];
    for (const [what, side, cc, ll] of variants) {
      assert.ok(!proofMatches(SECRET, side, cc, ll, proof), what);
    }
  });

  test('nonces are fresh per connection', () => {
    const a = new ConnectorAuth({ ...NODE, nodeId: 'n1' }, { secret: SECRET });
    const b = new ConnectorAuth({ ...NODE, nodeId: 'n1' }, { secret: SECRET });
    assert.notDeepEqual(a.hello.nonce, b.hello.nonce);
  });
});

describe('the exchange, both sides', () => {
  test('no secrets anywhere: as before, everyone is in and admin', () => {
    assert.deepEqual(exchange(NO_CREDENTIALS, NO_SECRETS), {
      connector: 'done',
      node: 'accepted',
      admin: true,
    });
  });

  test('the same secret on both sides: accepted, both ways proven', () => {
    assert.deepEqual(
      exchange({ secret: SECRET }, { secret: SECRET, adminSecret: null }, HandshakeRole.Peer),
      {
        connector: 'done',
        node: 'accepted',
        admin: true,
      },
    );
  });

  test('a connector without the secret is refused by the node', () => {
    const got = exchange(NO_CREDENTIALS, { secret: SECRET, adminSecret: null });
    assert.match(got.node, /without a proof of the cluster secret/);
  });

  test('a connector with another secret refuses the node, which cannot prove ours', () => {
    const got = exchange({ secret: OTHER }, { secret: SECRET, adminSecret: null });
    assert.match(got.connector, /failed to prove the cluster secret/);
  });

  test('a connector with a secret refuses a node that has none (an impostor, or misconfigured)', () => {
    const got = exchange({ secret: SECRET }, NO_SECRETS);
    assert.match(got.connector, /proves no secret/);
  });

  test('the admin secret: proven means admin, absent means not, wrong means refused', () => {
    const secrets = { secret: SECRET, adminSecret: ADMIN };
    assert.deepEqual(exchange({ secret: SECRET, adminSecret: ADMIN }, secrets), {
      connector: 'done',
      node: 'accepted',
      admin: true,
    });
    assert.deepEqual(exchange({ secret: SECRET }, secrets), {
      connector: 'done',
      node: 'accepted',
      admin: false,
    });
    assert.match(
      exchange({ secret: SECRET, adminSecret: OTHER }, secrets).node,
      /failed to prove the admin secret/,
    );
  });

  test('an admin secret alone, without a cluster secret, works too', () => {
    const secrets = { secret: null, adminSecret: ADMIN };
    assert.deepEqual(exchange({ secret: null, adminSecret: ADMIN }, secrets), {
      connector: 'done',
      node: 'accepted',
      admin: true,
    });
    assert.deepEqual(exchange(NO_CREDENTIALS, secrets), {
      connector: 'done',
      node: 'accepted',
      admin: false,
    });
  });

  test("a proof recorded on one connection is refused on the next (the node's nonce changed)", () => {
    const secrets = { secret: SECRET, adminSecret: null };
    const auth = new ConnectorAuth({ ...NODE, nodeId: 'n1' }, { secret: SECRET });
    const first = listenerAnswer(secrets, NODE, auth.hello);
    const proof = computeProof(SECRET, ProofSide.Connector, auth.hello, first.handshake);
    assert.ok(checkConnector(secrets, auth.hello, first.handshake, { proof, adminProof: null }).ok);
    // The same connector hello replayed: the node answers with a fresh nonce.
    const second = listenerAnswer(secrets, NODE, auth.hello);
    assert.ok(!checkConnector(secrets, auth.hello, second.handshake, { proof, adminProof: null }).ok);
  });
});

describe('node options', () => {
  const base = {
    id: 'n1',
    dataDir: os.tmpdir(),
    listen: '127.0.0.1:0',
    peers: ['n1=127.0.0.1:1'],
    stateMachine: 'file:///nonexistent.js',
  };

  test('secretFile and adminSecretFile are read at start; a bad one fails naming the option', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-auth-opt-'));
    const saved = { s: process.env.RAFTLINE_SECRET, a: process.env.RAFTLINE_ADMIN_SECRET };
    try {
      delete process.env.RAFTLINE_SECRET;
      delete process.env.RAFTLINE_ADMIN_SECRET;
      const file = path.join(dir, 'secret');
      fs.writeFileSync(file, 'correct horse battery staple\n');
      const opts = resolveOptions({ ...base, secretFile: file, adminSecretFile: file });
      assert.equal(Buffer.from(opts.secret?.bytes ?? []).toString(), 'correct horse battery staple');
      assert.ok(opts.adminSecret !== null);
      assert.doesNotMatch(JSON.stringify(opts), /horse/, 'resolved options never print the secret');
      assert.equal(resolveOptions(base).secret, null, 'no file, no environment: no secret');
      assert.throws(
        () => resolveOptions({ ...base, secretFile: path.join(dir, 'missing') }),
        (err: InvalidOptionError) =>
          err.option === 'secretFile' && /cannot read the secret file/.test(err.message),
      );
      fs.writeFileSync(file, 'short');
      assert.throws(
        () => resolveOptions({ ...base, adminSecretFile: file }),
        (err: InvalidOptionError) => err.option === 'adminSecretFile' && /at least 16/.test(err.message),
      );
      process.env.RAFTLINE_SECRET = 'too short';
      assert.throws(
        () => resolveOptions(base),
        (err: InvalidOptionError) => err.option === 'RAFTLINE_SECRET',
      );
      process.env.RAFTLINE_SECRET = 'a secret from the environment';
      assert.equal(
        Buffer.from(resolveOptions(base).secret?.bytes ?? []).toString(),
        'a secret from the environment',
      );
    } finally {
      if (saved.s === undefined) delete process.env.RAFTLINE_SECRET;
      else process.env.RAFTLINE_SECRET = saved.s;
      if (saved.a === undefined) delete process.env.RAFTLINE_ADMIN_SECRET;
      else process.env.RAFTLINE_ADMIN_SECRET = saved.a;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
