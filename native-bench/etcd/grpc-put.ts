/**
 * etcd's `KV.Put` spoken directly over `node:http2`: a thin gRPC client with no grpc-js
 * and no protobuf library, so that a Node load generator costs about as little per put as
 * raftline's own client does per request (grpc-js with `etcd3` tops out near 5.5k puts/s
 * per event loop on this machine; see ../shared/peers/README.md).
 *
 * A gRPC request is an HTTP/2 POST to `/etcdserverpb.KV/Put` whose body is one
 * length-prefixed message; the outcome is the `grpc-status` trailer (or header, in a
 * trailers-only answer). The response message itself (a header with the revision) is
 * not decoded: it is only read and dropped.
 *
 *   gRPC frame:     ┌──────────┬─────────────────────┬────────────────────┐
 *                   │ 0 (1 B)  │ length (4 B, BE)    │ PutRequest (length)│
 *                   └──────────┴─────────────────────┴────────────────────┘
 *     compressed flag ┘
 *
 *   PutRequest:     0x0a varint(len) key      field 1, bytes
 *                   0x12 varint(len) value    field 2, bytes
 */

import http2 from 'node:http2';

/** Protobuf base-128 varint of a non-negative integer below 2^31. */
function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

/** One gRPC frame holding `PutRequest { key, value }`, ready to write as the request body. */
export function encodePutFrame(key: Uint8Array, value: Uint8Array): Buffer {
  const message = Buffer.concat([
    Buffer.from([0x0a, ...varint(key.length)]),
    key,
    Buffer.from([0x12, ...varint(value.length)]),
    value,
  ]);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt8(0, 0);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

const PUT_HEADERS = {
  ':method': 'POST',
  ':path': '/etcdserverpb.KV/Put',
  'content-type': 'application/grpc',
  te: 'trailers',
};

/** A failed put: `code` is `GRPC_<status>` or the HTTP/2 error's code. */
export class PutError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** One HTTP/2 connection to an etcd member, carrying any number of concurrent puts. */
export class GrpcPutConnection {
  private readonly session: http2.ClientHttp2Session;

  private constructor(session: http2.ClientHttp2Session) {
    this.session = session;
  }

  /** Connects to `endpoint` (`http://host:port`) and waits until the session is up. */
  static connect(endpoint: string): Promise<GrpcPutConnection> {
    return new Promise((resolve, reject) => {
      const session = http2.connect(endpoint, { settings: { enablePush: false } });
      session.once('connect', () => {
        session.removeListener('error', reject);
        // A session error after connecting fails the streams in flight; they report it.
        session.on('error', () => {});
        resolve(new GrpcPutConnection(session));
      });
      session.once('error', reject);
    });
  }

  /** Sends one prepared frame (`encodePutFrame`) and resolves when etcd says `grpc-status: 0`. */
  put(frame: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      let status: string | undefined;
      const stream = this.session.request(PUT_HEADERS, { endStream: false });
      stream.on('response', (headers) => {
        const s = headers['grpc-status'];
        if (s !== undefined) status = String(s);
      });
      stream.on('trailers', (trailers) => {
        const s = trailers['grpc-status'];
        if (s !== undefined) status = String(s);
      });
      // The answer must be read for the stream to end.
      stream.on('data', () => {});
      stream.once('error', (err: Error & { code?: string }) =>
        reject(new PutError(err.code ?? 'ERR_HTTP2', err.message)),
      );
      stream.once('close', () => {
        if (status === '0') resolve();
        else reject(new PutError(`GRPC_${status ?? 'NONE'}`, `put failed: grpc-status ${status}`));
      });
      stream.end(frame);
    });
  }

  /** Closes the connection once its streams are done. */
  close(): Promise<void> {
    return new Promise((resolve) => this.session.close(() => resolve()));
  }
}
