/**
 * Optional TLS on the node's one listen port (`node:tls`). With it, every connection is
 * encrypted; peers (and a leader's snapshot streams) must present a certificate signed by
 * the cluster's CA (mutual TLS), and every connector checks the node's certificate
 * against the CA, so an attacker on the path can neither read nor relay. Clients need no
 * certificate of their own: the cluster secret (`auth.ts`) says who may join.
 *
 * The PEM files are read once at start; a bad one fails then, naming the option.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';

/** A node's certificate, its key and the CA both sides check against. The key never prints. */
export class TlsMaterial {
  readonly cert: Uint8Array;
  readonly #key: Uint8Array;
  readonly ca: Uint8Array;
  constructor(cert: Uint8Array, key: Uint8Array, ca: Uint8Array) {
    this.cert = cert;
    this.#key = key;
    this.ca = ca;
  }
  /** The private key, for `tls` only. */
  get key(): Uint8Array {
    return this.#key;
  }
  toJSON(): string {
    return '[tls material]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[tls material]';
  }
}

/** What a connector needs: the CA to check the node against, and its own pair for mutual TLS. */
export interface ConnectorTls {
  readonly ca: Uint8Array;
  readonly cert?: Uint8Array;
  readonly key?: Uint8Array;
}

/** Reads `file` as PEM; throws an Error naming the file if it cannot be read or holds no PEM block. */
export function readPemFile(file: string, what: string): Uint8Array {
  let contents: Buffer;
  try {
    contents = readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  if (!contents.includes('-----BEGIN ')) throw new Error(`the ${what} file ${file} holds no PEM block`);
  return contents;
}

/** The listener's options: our pair, and client certificates asked for and checked against the CA. */
export function serverTlsOptions(m: TlsMaterial, handshakeTimeoutMs: number): tls.TlsOptions {
  return {
    cert: Buffer.from(m.cert),
    key: Buffer.from(m.key),
    ca: Buffer.from(m.ca),
    minVersion: 'TLSv1.2',
    // Asked of everyone, demanded only of peers (`PeerServer` checks `authorized` by role):
    // a client proves itself with the cluster secret, not a certificate.
    requestCert: true,
    rejectUnauthorized: false,
    handshakeTimeout: handshakeTimeoutMs,
  };
}

/**
 * Opens a connection to a node: plain TCP, or TLS checking the node against `tlsOptions.ca`
 * (and presenting our pair when given). `ready` is the event after which our first bytes
 * may matter: 'connect' for TCP, 'secureConnect' once the TLS handshake checked out.
 * Bytes written before it are queued.
 */
export function connectToNode(
  host: string,
  port: number,
  tlsOptions: ConnectorTls | null,
): { socket: net.Socket; ready: 'connect' | 'secureConnect' } {
  if (tlsOptions === null) return { socket: net.connect({ host, port }), ready: 'connect' };
  const socket = tls.connect({
    host,
    port,
    ca: Buffer.from(tlsOptions.ca),
    ...(tlsOptions.cert !== undefined ? { cert: Buffer.from(tlsOptions.cert) } : {}),
    ...(tlsOptions.key !== undefined ? { key: Buffer.from(tlsOptions.key) } : {}),
    minVersion: 'TLSv1.2',
    // An IP address is checked against the certificate's IP names; SNI takes host names only.
    ...(net.isIP(host) === 0 ? { servername: host } : {}),
  });
  return { socket, ready: 'secureConnect' };
}

/**
 * A command's `--tls-ca` (and `--tls-cert`/`--tls-key`) as the `tls` option of a
 * `RaftClient`, or nothing. Throws an Error with code ERR_RAFT_INVALID_OPTION naming the flag.
 */
export function clientTlsOption(flags: { tlsCa?: string; tlsCert?: string; tlsKey?: string }): {
  tls?: ConnectorTls;
} {
  const read = (file: string | undefined, flag: string, what: string): Uint8Array | undefined => {
    if (file === undefined) return undefined;
    try {
      return readPemFile(file, what);
    } catch (err) {
      throw Object.assign(new Error(`${flag}: ${(err as Error).message}`), {
        code: 'ERR_RAFT_INVALID_OPTION',
      });
    }
  };
  const ca = read(flags.tlsCa, '--tls-ca', 'CA');
  if (ca === undefined) {
    if (flags.tlsCert !== undefined || flags.tlsKey !== undefined) {
      throw Object.assign(new Error('--tls-cert and --tls-key need --tls-ca'), {
        code: 'ERR_RAFT_INVALID_OPTION',
      });
    }
    return {};
  }
  const cert = read(flags.tlsCert, '--tls-cert', 'certificate');
  const key = read(flags.tlsKey, '--tls-key', 'key');
  return { tls: { ca, ...(cert !== undefined ? { cert } : {}), ...(key !== undefined ? { key } : {}) } };
}
