/**
 * Who may join: the shared-secret challenge–response of every connection to a node
 * (layouts and the order of frames in `protocol.ts`, "HANDSHAKE body" and "AUTH body").
 *
 * Each side puts a fresh random nonce in its HANDSHAKE; each side then proves that it
 * holds the cluster secret with an HMAC-SHA256 over both handshakes (both nonces, the
 * role, the cluster id, both node ids, both election timeouts) and the side it speaks
 * for. So a proof cannot be replayed: not on another connection (other nonces), not for
 * another role or node (other input), and not reflected back at its sender (the side
 * differs). A client may add a second proof under the admin secret, which lets it ask
 * for the operations that change the cluster.
 *
 * The secrets come from files or environment variables, never from a command line (where
 * `ps` shows them to every user), and are never logged: `Secret` prints as `[secret]`.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { encodeAuthFrame, encodeHandshakeFrame, type Handshake, OutBuffer } from './message-codec.js';
import { AUTH_PROOF_BYTES, HANDSHAKE_NONCE_BYTES, type HandshakeRole } from './protocol.js';
import type { ConnectorTls } from './tls-config.js';

/** Environment variable a node, the CLI and `bench` read the cluster secret from when no file is named. */
export const SECRET_ENV = 'RAFTLINE_SECRET';
/** Environment variable read for the admin secret when no file is named. */
export const ADMIN_SECRET_ENV = 'RAFTLINE_ADMIN_SECRET';
/**
 * The shortest secret accepted: 16 bytes. An HMAC is only as strong as its key, and a
 * short password can be guessed offline from one recorded handshake.
 */
export const MIN_SECRET_BYTES = 16;

/**
 * A secret's bytes, wrapped so that a log line, `JSON.stringify` or `util.inspect` of
 * an options object shows `[secret]` and never the bytes.
 */
export class Secret {
  readonly #bytes: Uint8Array;
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }
  /** The key bytes, for the HMAC only. */
  get bytes(): Uint8Array {
    return this.#bytes;
  }
  toJSON(): string {
    return '[secret]';
  }
  toString(): string {
    return '[secret]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return '[secret]';
  }
}

/**
 * A secret given as text or bytes (a `RaftClient` option, an environment variable, a
 * file's contents). Trailing white space is cut, since files and `echo` end in a newline
 * that nobody means as part of the secret. Throws RangeError naming `what` when it is
 * shorter than `MIN_SECRET_BYTES`.
 */
export function toSecret(value: string | Uint8Array, what: string): Secret {
  let bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  let end = bytes.byteLength;
  // Space, tab, CR, LF.
  while (end > 0 && [0x20, 0x09, 0x0d, 0x0a].includes(bytes[end - 1] as number)) end--;
  bytes = bytes.subarray(0, end);
  if (bytes.byteLength < MIN_SECRET_BYTES) {
    throw new RangeError(
      `${what} holds ${bytes.byteLength} bytes; a secret needs at least ${MIN_SECRET_BYTES} (e.g. \`openssl rand -hex 32\`)`,
    );
  }
  return new Secret(bytes);
}

/** Reads a secret from `file`. Throws an Error naming the file (never the contents) if it cannot be read or is too short. */
export function readSecretFile(file: string): Secret {
  let contents: Buffer;
  try {
    contents = readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the secret file ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  return toSecret(contents, `the secret file ${file}`);
}

/**
 * The secret named by `file`, else by the environment variable `envName` (in `env`), else
 * null. Throws as `readSecretFile` and `toSecret` do.
 */
export function loadSecret(
  file: string | undefined,
  envName: string,
  env: NodeJS.ProcessEnv = process.env,
): Secret | null {
  if (file !== undefined) return readSecretFile(file);
  const value = env[envName];
  if (value === undefined || value === '') return null;
  return toSecret(value, `the environment variable ${envName}`);
}

/** A fresh random handshake nonce. */
export function newNonce(): Uint8Array {
  return randomBytes(HANDSHAKE_NONCE_BYTES);
}

/** Which side a proof speaks for: part of the HMAC input, so a proof cannot be reflected. */
export enum ProofSide {
  /** The accepting node. */
  Listener = 1,
  /** The connecting peer, snapshot stream or client. */
  Connector = 2,
  /** A client proving the admin secret. */
  Admin = 3,
}

/** Domain separation: these HMACs are used for nothing else. */
const PROOF_LABEL = Buffer.from('raftline auth v1', 'utf8');
const NO_NONCE = new Uint8Array(HANDSHAKE_NONCE_BYTES);

function field(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  // Length-prefixed, so that ("ab", "c") and ("a", "bc") are different inputs.
  const len = Buffer.alloc(2);
  len.writeUInt16LE(bytes.byteLength);
  return Buffer.concat([len, bytes]);
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return b;
}

/**
 * The HMAC-SHA256 under `secret` proving `side` on the connection opened by `connector`'s
 * handshake and answered by `listener`'s. The role is the connector's.
 */
export function computeProof(
  secret: Secret,
  side: ProofSide,
  connector: Handshake,
  listener: Handshake,
): Uint8Array {
  const hmac = createHmac('sha256', secret.bytes);
  hmac.update(PROOF_LABEL);
  hmac.update(Buffer.from([side, connector.role]));
  hmac.update(field(connector.clusterId));
  hmac.update(field(connector.nodeId));
  hmac.update(field(listener.nodeId));
  hmac.update(u32(connector.electionTimeoutMs ?? 0));
  hmac.update(u32(listener.electionTimeoutMs ?? 0));
  hmac.update(connector.nonce ?? NO_NONCE);
  hmac.update(listener.nonce ?? NO_NONCE);
  return hmac.digest();
}

/** Whether `proof` is the one `computeProof` gives; compared in constant time. */
export function proofMatches(
  secret: Secret,
  side: ProofSide,
  connector: Handshake,
  listener: Handshake,
  proof: Uint8Array | null,
): boolean {
  if (proof === null || proof.byteLength !== AUTH_PROOF_BYTES) return false;
  return timingSafeEqual(computeProof(secret, side, connector, listener), proof);
}

// ------------------------------------------------------------------ the connecting side

/** What a connector (peer link, snapshot stream, client) proves. */
export interface ConnectorCredentials {
  /** The cluster secret, or null: then the node must have none either. */
  readonly secret: Secret | null;
  /** A client's admin secret, or null. */
  readonly adminSecret?: Secret | null;
}

/** No secret at all: the handshake is checked by cluster id only, as before secrets existed. */
export const NO_CREDENTIALS: ConnectorCredentials = Object.freeze({ secret: null, adminSecret: null });

/** Where a connector's exchange stands after a frame from the node. */
export type ConnectorStep =
  /** Wait for the node's AUTH frame. */
  | { readonly kind: 'wait' }
  /** The node is not to be trusted, or will not trust us: close, saying why. */
  | { readonly kind: 'refuse'; readonly reason: string }
  /** Verified: write `reply` (our AUTH frame; empty without secrets), then the role's frames. */
  | { readonly kind: 'done'; readonly reply: Uint8Array };

/**
 * One connection's exchange on the connecting side: `hello` is written first; the node's
 * HANDSHAKE goes to `onHandshake` (after the caller's own checks of cluster and node id),
 * then, if it says so, the node's AUTH frame to `onAuth`. Make one per connection: the
 * nonce is fresh each time.
 */
export class ConnectorAuth {
  /** Our handshake, as sent. */
  readonly hello: Handshake;
  /** Its encoded frame. */
  readonly helloBytes: Uint8Array;
  readonly #credentials: ConnectorCredentials;
  #listener: Handshake | null = null;

  constructor(
    ours: { role: HandshakeRole; clusterId: string; nodeId: string; electionTimeoutMs: number },
    credentials: ConnectorCredentials,
  ) {
    this.#credentials = credentials;
    const proves = credentials.secret !== null || (credentials.adminSecret ?? null) !== null;
    this.hello = { ...ours, authFollows: proves, nonce: newNonce() };
    const out = new OutBuffer(128);
    encodeHandshakeFrame(out, this.hello);
    this.helloBytes = out.view().slice();
  }

  /** The node's handshake arrived (its cluster and node id already checked by the caller). */
  onHandshake(listener: Handshake): ConnectorStep {
    this.#listener = listener;
    const secret = this.#credentials.secret;
    if (secret !== null && listener.authFollows !== true) {
      return {
        kind: 'refuse',
        reason:
          'refused: the node proves no secret (it has none configured, or it is not a node of this cluster)',
      };
    }
    if (secret === null && listener.authFollows === true) {
      return {
        kind: 'refuse',
        reason: 'refused by the node: it requires the cluster secret, and none is configured here',
      };
    }
    if (listener.authFollows === true) return { kind: 'wait' };
    return { kind: 'done', reply: this.#reply() };
  }

  /** The node's AUTH frame arrived. */
  onAuth(proof: Uint8Array | null): ConnectorStep {
    const listener = this.#listener;
    const secret = this.#credentials.secret;
    if (listener === null || secret === null)
      return { kind: 'refuse', reason: 'protocol error: unexpected auth frame' };
    if (!proofMatches(secret, ProofSide.Listener, this.hello, listener, proof)) {
      return {
        kind: 'refuse',
        reason: 'refused: the node failed to prove the cluster secret (a different secret, or an impostor)',
      };
    }
    return { kind: 'done', reply: this.#reply() };
  }

  /** Our AUTH frame, or no bytes when we prove nothing. */
  #reply(): Uint8Array {
    if (this.hello.authFollows !== true) return new Uint8Array(0);
    const listener = this.#listener as Handshake;
    const { secret } = this.#credentials;
    const adminSecret = this.#credentials.adminSecret ?? null;
    const out = new OutBuffer(80);
    encodeAuthFrame(out, {
      proof: secret === null ? null : computeProof(secret, ProofSide.Connector, this.hello, listener),
      adminProof:
        adminSecret === null ? null : computeProof(adminSecret, ProofSide.Admin, this.hello, listener),
    });
    return out.view().slice();
  }
}

// ------------------------------------------------------------------ the accepting side

/** What a node checks connections against. */
export interface ListenerSecrets {
  /** The cluster secret; null accepts anyone naming the cluster id (as before secrets existed). */
  readonly secret: Secret | null;
  /** The admin secret; null lets every client run admin operations. */
  readonly adminSecret: Secret | null;
}

/** A node without secrets. */
export const NO_SECRETS: ListenerSecrets = Object.freeze({ secret: null, adminSecret: null });

/**
 * Whether a connector's handshake may go on to be answered: a node with a secret refuses
 * a connector that announces no proof, and a node without one refuses a connector that
 * brings a cluster proof (their secrets differ: better said now than as a silent refusal
 * by the connector). Null if it may, else the reason to log.
 */
export function connectorPolicyRefusal(secrets: ListenerSecrets, connector: Handshake): string | null {
  if (secrets.secret !== null && connector.authFollows !== true) {
    return 'refused a connection without a proof of the cluster secret';
  }
  return null;
}

/**
 * What a node with a secret answers a connector that announced no proof, before closing:
 * a handshake announcing a proof that never comes. The connector learns the node wants
 * the secret (`ConnectorAuth.onHandshake` says so) instead of seeing a bare close, and
 * learns nothing else: no proof is computed for it.
 */
export function listenerDemand(ours: {
  clusterId: string;
  nodeId: string;
  electionTimeoutMs: number;
  role: HandshakeRole;
}): Uint8Array {
  const out = new OutBuffer(128);
  encodeHandshakeFrame(out, { ...ours, authFollows: true });
  return out.view().slice();
}

/** Our answer to `connector`: our handshake, and our AUTH frame when we hold the secret. */
export function listenerAnswer(
  secrets: ListenerSecrets,
  ours: { clusterId: string; nodeId: string; electionTimeoutMs: number; role: HandshakeRole },
  connector: Handshake,
): { handshake: Handshake; bytes: Uint8Array } {
  const proves = secrets.secret !== null;
  const handshake: Handshake = {
    ...ours,
    authFollows: proves,
    nonce: proves ? newNonce() : NO_NONCE,
  };
  const out = new OutBuffer(160);
  encodeHandshakeFrame(out, handshake);
  if (secrets.secret !== null) {
    encodeAuthFrame(out, {
      proof: computeProof(secrets.secret, ProofSide.Listener, connector, handshake),
      adminProof: null,
    });
  }
  return { handshake, bytes: out.view().slice() };
}

/** The verdict on a connector's AUTH frame. */
export type ConnectorVerdict =
  | { readonly ok: true; readonly admin: boolean }
  | { readonly ok: false; readonly reason: string };

/**
 * Checks the connector's proofs (`proofs` null when it sent no AUTH frame). `admin`: the
 * connector may run admin operations (it proved the admin secret, or none is configured).
 */
export function checkConnector(
  secrets: ListenerSecrets,
  connector: Handshake,
  listener: Handshake,
  proofs: { proof: Uint8Array | null; adminProof: Uint8Array | null } | null,
): ConnectorVerdict {
  const proof = proofs?.proof ?? null;
  const adminProof = proofs?.adminProof ?? null;
  if (secrets.secret === null) {
    if (proof !== null) {
      return {
        ok: false,
        reason:
          'refused a connection proving a cluster secret: this node has none (configure the same secret on every node)',
      };
    }
  } else if (!proofMatches(secrets.secret, ProofSide.Connector, connector, listener, proof)) {
    return { ok: false, reason: 'refused a connection that failed to prove the cluster secret' };
  }
  if (secrets.adminSecret === null) return { ok: true, admin: true };
  if (adminProof === null) return { ok: true, admin: false };
  if (!proofMatches(secrets.adminSecret, ProofSide.Admin, connector, listener, adminProof)) {
    return { ok: false, reason: 'refused a client that failed to prove the admin secret' };
  }
  return { ok: true, admin: true };
}

// ------------------------------------------------------------------ to the worker threads

/** What a node's replicator threads need to open authenticated connections. */
export interface WorkerConnectorSettings {
  readonly credentials: ConnectorCredentials;
  /** The node's election timeout, announced in every handshake. */
  readonly electionTimeoutMs: number;
  /** TLS to the peers (mutual: the node's own pair), or null. */
  readonly tls: ConnectorTls | null;
}

/** `WorkerConnectorSettings` as plain data, for a worker's `workerData` (a `Secret` would lose its private bytes in the structured clone). */
export interface WorkerConnectorData {
  readonly secret: Uint8Array | null;
  readonly electionTimeoutMs: number;
  readonly tls: { ca: Uint8Array; cert: Uint8Array | null; key: Uint8Array | null } | null;
}

/** The settings as a replicator thread's `workerData` carries them (never logged). */
export function connectorWorkerData(settings: WorkerConnectorSettings): WorkerConnectorData {
  const t = settings.tls;
  return {
    secret: settings.credentials.secret?.bytes ?? null,
    electionTimeoutMs: settings.electionTimeoutMs,
    tls: t === null ? null : { ca: t.ca, cert: t.cert ?? null, key: t.key ?? null },
  };
}

/** In a replicator thread: the settings its node passed (`connectorWorkerData`). */
export function connectorFromWorkerData(d: WorkerConnectorData): WorkerConnectorSettings {
  const t = d.tls;
  return {
    credentials: { secret: d.secret === null ? null : new Secret(d.secret), adminSecret: null },
    electionTimeoutMs: d.electionTimeoutMs,
    tls:
      t === null
        ? null
        : {
            ca: t.ca,
            ...(t.cert !== null ? { cert: t.cert } : {}),
            ...(t.key !== null ? { key: t.key } : {}),
          },
  };
}

// ------------------------------------------------------------------ for command-line tools

/**
 * A command's `--secret-file`/`--admin-secret-file` (else the environment variables) as
 * `RaftClient` options: only those that are set. Throws an Error with code
 * ERR_RAFT_INVALID_OPTION naming the flag or variable (never the contents).
 */
export function clientSecretOptions(
  flags: { secretFile?: string; adminSecretFile?: string },
  env: NodeJS.ProcessEnv = process.env,
): { secret?: Uint8Array; adminSecret?: Uint8Array } {
  const load = (file: string | undefined, envName: string, flag: string): Secret | null => {
    try {
      return loadSecret(file, envName, env);
    } catch (err) {
      throw Object.assign(new Error(`${file === undefined ? envName : flag}: ${(err as Error).message}`), {
        code: 'ERR_RAFT_INVALID_OPTION',
      });
    }
  };
  const secret = load(flags.secretFile, SECRET_ENV, '--secret-file');
  const adminSecret = load(flags.adminSecretFile, ADMIN_SECRET_ENV, '--admin-secret-file');
  return {
    ...(secret !== null ? { secret: secret.bytes } : {}),
    ...(adminSecret !== null ? { adminSecret: adminSecret.bytes } : {}),
  };
}
