/**
 * Throwaway certificates for TLS tests, made with the machine's `openssl` at test time in
 * a temp dir: a CA, a node certificate it signed (for 127.0.0.1 and localhost, usable as
 * server and client), and a rogue CA with a node certificate of its own.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface TestCerts {
  readonly dir: string;
  /** Files, for options and flags. */
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly rogueCertFile: string;
  readonly rogueKeyFile: string;
  readonly rogueCaFile: string;
  /** The same as bytes. */
  readonly ca: Uint8Array;
  readonly cert: Uint8Array;
  readonly key: Uint8Array;
  readonly rogueCert: Uint8Array;
  readonly rogueKey: Uint8Array;
  readonly rogueCa: Uint8Array;
  remove(): void;
}

/** Whether `openssl` can be run here. */
export function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA and a node pair it signed, under `prefix` in `dir`. */
function caAndNode(dir: string, prefix: string): void {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, [
    'req',
    '-x509',
    ...ec,
    '-keyout',
    `${prefix}ca.key`,
    '-out',
    `${prefix}ca.pem`,
    '-days',
    '2',
    '-subj',
    `/CN=${prefix}raftline-test-ca`,
  ]);
  openssl(dir, [
    'req',
    ...ec,
    '-keyout',
    `${prefix}node.key`,
    '-out',
    `${prefix}node.csr`,
    '-subj',
    '/CN=raftline-test-node',
  ]);
  fs.writeFileSync(
    path.join(dir, `${prefix}ext.cnf`),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${prefix}node.csr`,
    '-CA',
    `${prefix}ca.pem`,
    '-CAkey',
    `${prefix}ca.key`,
    '-CAcreateserial',
    '-out',
    `${prefix}node.pem`,
    '-days',
    '2',
    '-extfile',
    `${prefix}ext.cnf`,
  ]);
}

/** Makes the certificates; call `remove()` when done. */
export function makeTestCerts(): TestCerts {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'raftline-tls-'));
  caAndNode(dir, '');
  caAndNode(dir, 'rogue-');
  const file = (name: string): string => path.join(dir, name);
  const read = (name: string): Uint8Array => fs.readFileSync(file(name));
  return {
    dir,
    caFile: file('ca.pem'),
    certFile: file('node.pem'),
    keyFile: file('node.key'),
    rogueCertFile: file('rogue-node.pem'),
    rogueKeyFile: file('rogue-node.key'),
    rogueCaFile: file('rogue-ca.pem'),
    ca: read('ca.pem'),
    cert: read('node.pem'),
    key: read('node.key'),
    rogueCert: read('rogue-node.pem'),
    rogueKey: read('rogue-node.key'),
    rogueCa: read('rogue-ca.pem'),
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
