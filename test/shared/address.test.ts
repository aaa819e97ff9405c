/**
 * Listen addresses and peer specs: what parses, and that every refusal names the string
 * the user wrote.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AddressError, formatHostPort, parseHostPort, parsePeerSpec } from '../../src/shared/address.js';

describe('parseHostPort', () => {
  test('IPv4, names, bracketed IPv6, port 0 and 65535', () => {
    assert.deepEqual(parseHostPort('127.0.0.1:7001'), { host: '127.0.0.1', port: 7001 });
    assert.deepEqual(parseHostPort('node-1.example:80'), { host: 'node-1.example', port: 80 });
    assert.deepEqual(parseHostPort('[::1]:7001'), { host: '::1', port: 7001 });
    assert.deepEqual(parseHostPort('localhost:0'), { host: 'localhost', port: 0 });
    assert.deepEqual(parseHostPort('h:65535'), { host: 'h', port: 65535 });
    assert.deepEqual(parseHostPort('[fe80::1%eth0]:1'), { host: 'fe80::1%eth0', port: 1 });
    assert.deepEqual(parseHostPort('[::ffff:10.0.0.1]:2'), { host: '::ffff:10.0.0.1', port: 2 });
  });

  test('refusals name the input', () => {
    const bad = [
      '127.0.0.1',
      ':7001',
      '127.0.0.1:',
      '127.0.0.1:x',
      '127.0.0.1:70000',
      '127.0.0.1:0x1f',
      '127.0.0.1:1e3',
      '127.0.0.1: 7',
      '127.0.0.1:-1',
      '::1:7001',
      '[::1:7001',
      '[::1]7001',
      '[]:7001',
      'my host:7001',
      'a=b:7001',
      'a/b:7001',
      '[::1 ]:7001',
      '[host]:7001',
      '',
    ];
    for (const input of bad) {
      assert.throws(
        () => parseHostPort(input),
        (e: unknown) =>
          e instanceof AddressError && e.input === input && e.message.includes(JSON.stringify(input)),
        input,
      );
    }
  });

  test('formatHostPort round-trips, bracketing IPv6', () => {
    for (const s of ['127.0.0.1:7001', '[::1]:9', 'a.b:0']) assert.equal(formatHostPort(parseHostPort(s)), s);
  });
});

describe('parsePeerSpec', () => {
  test('id=host:port', () => {
    assert.deepEqual(parsePeerSpec('n1=127.0.0.1:7001'), { id: 'n1', host: '127.0.0.1', port: 7001 });
    assert.deepEqual(parsePeerSpec('n2=[::1]:7002'), { id: 'n2', host: '::1', port: 7002 });
    // Only the first '=' separates: the rest is the address, which then fails on its own terms.
    assert.throws(() => parsePeerSpec('a=b=c:1'), AddressError);
  });

  test('refusals name the whole spec', () => {
    const bad = [
      '127.0.0.1:7001',
      '=127.0.0.1:7001',
      ' n1=127.0.0.1:7001',
      'n1 =127.0.0.1:7001',
      'n1=127.0.0.1',
      'n1=127.0.0.1:0',
      `${'x'.repeat(256)}=127.0.0.1:7001`,
    ];
    for (const input of bad) {
      assert.throws(
        () => parsePeerSpec(input),
        (e: unknown) =>
          e instanceof AddressError && e.input === input && e.message.includes(JSON.stringify(input)),
        input,
      );
    }
    // 255 UTF-8 bytes is the longest id the handshake carries.
    assert.equal(parsePeerSpec(`${'x'.repeat(255)}=h:1`).id.length, 255);
  });
});
