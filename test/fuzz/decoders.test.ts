/**
 * Decoder review (issue 7): the gaps found in the unit tests of the decoders a node runs
 * on bytes from the network, and the bug fixed in one of them.
 *
 * - `decodeSnapshotMeta` reads a meta file a leader sends in its Offer. Its tests damaged
 *   metas at random, which the CRC32C catches first; every check behind the CRC (version,
 *   reserved bytes, numbers, lists and counts that run past the end, file names that
 *   would leave the snapshot directory, order, trailing bytes) was untested on bytes with
 *   a valid CRC, which is what a hostile leader sends.
 * - `decodeClientRequest` built one view object per command of an ApplyBatch: a 64 MiB
 *   frame of empty commands (4 bytes each) became 16 million objects, ~1.6 GiB of heap and
 *   seconds of the node's main thread, before anything checked the batch's size against
 *   the entry limit. The node never reads them; they are now built on first access.
 */

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ClientFrameError, decodeClientRequest } from '../../src/shared/client-codec.js';
import { crc32c } from '../../src/shared/crc32c.js';
import { writeU32 } from '../../src/shared/entry-codec.js';
import { FrameDecoder, FrameError } from '../../src/shared/message-codec.js';
import { ClientOp, FRAME_HEADER_BYTES, FrameType, PROTOCOL_VERSION } from '../../src/shared/protocol.js';
import {
  decodeSnapshotMeta,
  encodeSnapshotMeta,
  SnapshotCorruptionError,
} from '../../src/workers/fsm/snapshot-store.js';
import { liveHeapBytes } from './heap.js';

// ------------------------------------------------------------------ snapshot meta

/** Little-endian bytes, appended field by field. */
class Bytes {
  private readonly parts: number[] = [];
  u8(v: number): this {
    this.parts.push(v & 0xff);
    return this;
  }
  u16(v: number): this {
    return this.u8(v).u8(v >>> 8);
  }
  u32(v: number): this {
    return this.u16(v & 0xffff).u16(v >>> 16);
  }
  /** A u64 from its two u32 halves. */
  u64(lo: number, hi = 0): this {
    return this.u32(lo).u32(hi);
  }
  raw(bytes: ArrayLike<number>): this {
    for (let i = 0; i < bytes.length; i++) this.u8(bytes[i] as number);
    return this;
  }
  text(s: string): this {
    return this.raw(new TextEncoder().encode(s));
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }
  /** The bytes with a CRC32C of them appended, as a meta file ends. */
  withCrc(): Uint8Array {
    const body = this.bytes();
    const out = new Uint8Array(body.byteLength + 4);
    out.set(body);
    writeU32(out, body.byteLength, crc32c(body));
    return out;
  }
}

interface MetaFields {
  version?: number;
  reserved?: number;
  index?: [number, number];
  term?: [number, number];
  /** Voters, outgoing, learners: each as [count, ids] (the count may lie). */
  lists?: [number, string[]][];
  autoLeave?: number;
  /** [count, entries]: each entry [nameLength, name, sizeLo, sizeHi]. */
  files?: [number, [number, string, number, number][]];
  trailing?: number[];
}

/** A meta file with a valid CRC whose fields are whatever `f` says. */
function meta(f: MetaFields = {}): Uint8Array {
  const b = new Bytes()
    .raw([0x52, 0x46, 0x53, 0x4e])
    .u16(f.version ?? 1)
    .u16(f.reserved ?? 0);
  b.u64(...(f.index ?? [5, 0])).u64(...(f.term ?? [2, 0]));
  for (const [count, ids] of f.lists ?? [
    [3, ['n1', 'n2', 'n3']],
    [0, []],
    [0, []],
  ]) {
    b.u16(count);
    for (const id of ids) b.u8(new TextEncoder().encode(id).byteLength).text(id);
  }
  b.u8(f.autoLeave ?? 0);
  const [count, files] = f.files ?? [1, [[4, 'data', 10, 0]]];
  b.u32(count);
  for (const [nameLength, name, lo, hi] of files) b.u16(nameLength).text(name).u64(lo, hi).u32(0xabcdef);
  b.raw(f.trailing ?? []);
  return b.withCrc();
}

function refused(bytes: Uint8Array, reason: RegExp): void {
  assert.throws(
    () => decodeSnapshotMeta(bytes, 'offered meta'),
    (err: unknown) => err instanceof SnapshotCorruptionError && reason.test(err.reason),
  );
}

describe('snapshot meta with a valid CRC (what a hostile leader offers)', () => {
  test('the builder makes what encodeSnapshotMeta makes', () => {
    const expected = encodeSnapshotMeta(
      {
        index: 5,
        term: 2,
        conf: { voters: ['n1', 'n2', 'n3'], votersOutgoing: [], learners: [], autoLeave: false },
      },
      [{ name: 'data', bytes: 10, crc32c: 0xabcdef }],
    );
    assert.deepEqual(meta(), expected);
    assert.equal(decodeSnapshotMeta(meta(), 'x').meta.index, 5);
  });

  const cases: [string, MetaFields, RegExp][] = [
    ['another version', { version: 2 }, /version 2/],
    ['reserved bytes set', { reserved: 1 }, /reserved/],
    ['index 0', { index: [0, 0] }, /index is 0/],
    ['index above 2^53-1', { index: [0, 0x20_0000] }, /index is 0 or above/],
    ['term 0', { term: [0, 0] }, /term is 0/],
    ['term above 2^53-1', { term: [0xffff_ffff, 0xffff_ffff] }, /term is 0 or above/],
    ['a voter count beyond the ids', { lists: [[500, ['n1']]] }, /runs past the end/],
    ['an id longer than what follows', { lists: [[1, []]], trailing: [200, 0x41] }, /runs past the end/],
    ['autoLeave 2', { autoLeave: 2 }, /autoLeave is 2/],
    ['a file count of 2^32-1', { files: [0xffff_ffff, []] }, /cannot fit/],
    ['one file counted, none present', { files: [1, []] }, /cannot fit|runs past/],
    ['a name length beyond the meta', { files: [1, [[60000, 'x', 1, 0]]] }, /runs past the end/],
    ['a file size above 2^53-1', { files: [1, [[1, 'a', 0, 0x20_0000]]] }, /above 2\^53-1/],
    ['bytes after the file list', { trailing: [0] }, /left over/],
  ];
  for (const [name, fields, reason] of cases) test(`${name} is refused`, () => refused(meta(fields), reason));

  // A name is a path inside the snapshot directory: one that leaves it, or names the meta,
  // must never reach the file system of the follower.
  const badNames = [
    '..',
    '../etc/passwd',
    'a/../../b',
    '/abs',
    'a//b',
    'a/',
    '.',
    'a\\b',
    'a\0b',
    '__raft_snapshot_meta',
  ];
  for (const name of badNames) {
    test(`the file name ${JSON.stringify(name)} is refused`, () => {
      const length = new TextEncoder().encode(name).byteLength;
      refused(meta({ files: [1, [[length, name, 1, 0]]] }), /invalid file name/);
    });
  }

  test('names out of order or repeated are refused', () => {
    refused(
      meta({
        files: [
          2,
          [
            [1, 'b', 1, 0],
            [1, 'a', 1, 0],
          ],
        ],
      }),
      /not sorted and unique/,
    );
    refused(
      meta({
        files: [
          2,
          [
            [1, 'a', 1, 0],
            [1, 'a', 1, 0],
          ],
        ],
      }),
      /not sorted and unique/,
    );
  });

  test('a name that is not UTF-8 is refused', () => {
    const b = new Bytes().raw([0x52, 0x46, 0x53, 0x4e]).u16(1).u16(0).u64(5).u64(2);
    b.u16(0).u16(0).u16(0).u8(0).u32(1).u16(2).raw([0xc3, 0x28]).u64(1).u32(0);
    refused(b.withCrc(), /not valid UTF-8/);
  });

  test('a huge file count costs nothing: refused before any list is built', () => {
    const bytes = meta({ files: [0xffff_ffff, []] });
    const before = liveHeapBytes();
    for (let i = 0; i < 1000; i++) refused(bytes, /cannot fit/);
    assert.ok(liveHeapBytes() - before < 1024 * 1024);
  });
});

// ------------------------------------------------------------------ ApplyBatch

/** A CLIENT_REQUEST body: ApplyBatch of `count` empty commands. */
function emptyBatchBody(count: number): Uint8Array {
  const body = new Uint8Array(8 + 4 + 4 * count);
  body[0] = ClientOp.ApplyBatch;
  writeU32(body, 8, count);
  return body;
}

describe('ApplyBatch requests', () => {
  test('a batch of millions of empty commands is checked without building them (the bug)', () => {
    const count = 4 * 1024 * 1024; // a 16 MiB request
    const body = emptyBatchBody(count);
    const before = liveHeapBytes();
    const req = decodeClientRequest(body);
    const grown = liveHeapBytes() - before;
    assert.ok(!(req instanceof ClientFrameError));
    assert.equal(req.payload.byteLength, body.byteLength - 8);
    // Building the views took ~420 MiB of heap here (~100 bytes per command).
    assert.ok(grown < 16 * 1024 * 1024, `decoding grew the heap by ${(grown / 1048576).toFixed(0)} MiB`);
  });

  test('the commands are there when asked for, views of the body, the same array each time', () => {
    const body = new Uint8Array([
      ClientOp.ApplyBatch,
      0,
      0,
      0,
      9,
      0,
      0,
      0,
      2,
      0,
      0,
      0,
      1,
      0,
      0,
      0,
      7,
      2,
      0,
      0,
      0,
      8,
      9,
    ]);
    const req = decodeClientRequest(body);
    assert.ok(!(req instanceof ClientFrameError));
    assert.equal(req.requestId, 9);
    const commands = req.commands ?? [];
    assert.deepEqual(
      commands.map((c) => [...c]),
      [[7], [8, 9]],
    );
    for (const c of commands) assert.equal(c.buffer, body.buffer);
    assert.equal(req.commands, commands);
  });

  test('a batch that lies is refused exactly as before', () => {
    const cases: [number[], string][] = [
      [[], 'ERR_CLIENT_TRUNCATED'], // no count
      [[3, 0, 0, 0], 'ERR_CLIENT_TRUNCATED'], // count beyond the bytes
      [[1, 0, 0, 0, 5, 0, 0, 0, 1], 'ERR_CLIENT_TRUNCATED'], // a command past the end
      [[1, 0, 0, 0, 0, 0, 0, 0, 1], 'ERR_CLIENT_BAD_PAYLOAD'], // a byte after the batch
      [[2, 0, 0, 0, 0, 0, 0, 0, 0, 0], 'ERR_CLIENT_TRUNCATED'], // the second length cut
    ];
    for (const [payload, code] of cases) {
      const body = new Uint8Array(8 + payload.length);
      body[0] = ClientOp.ApplyBatch;
      body.set(payload, 8);
      const got = decodeClientRequest(body);
      assert.ok(got instanceof ClientFrameError, JSON.stringify(payload));
      assert.equal(got.code, code, JSON.stringify(payload));
    }
  });
});

// ------------------------------------------------------------------ frame lengths

describe('frame lengths against the configured maximum', () => {
  const limits = { maxFrameBytes: 1 << 20, maxEntryPayloadBytes: 1 << 16 };
  const header = (type: number, bodyBytes: number): Uint8Array => {
    const h = new Uint8Array(FRAME_HEADER_BYTES);
    writeU32(h, 0, bodyBytes);
    h[4] = type;
    return h;
  };
  const handshake = (): Uint8Array => {
    // "RFTL", this version, role client, cluster id "c", no node id; no flags, timeout 0, zero nonce.
    const bytes = new Bytes()
      .raw([0x52, 0x46, 0x54, 0x4c])
      .u16(PROTOCOL_VERSION)
      .u8(2)
      .u8(1)
      .text('c')
      .u8(0)
      .u8(0)
      .u32(0)
      .raw(new Uint8Array(32))
      .bytes();
    const frame = new Uint8Array(FRAME_HEADER_BYTES + bytes.byteLength);
    frame.set(header(FrameType.Handshake, bytes.byteLength));
    frame.set(bytes, FRAME_HEADER_BYTES);
    return frame;
  };

  test('a body of exactly the limit is awaited; one byte more is refused at the header', () => {
    const atLimit = new FrameDecoder(limits);
    atLimit.push(handshake());
    assert.equal((atLimit.next() as { type: FrameType }).type, FrameType.Handshake);
    atLimit.push(header(FrameType.ClientRequest, limits.maxFrameBytes - FRAME_HEADER_BYTES));
    assert.equal(atLimit.next(), null);

    const over = new FrameDecoder(limits);
    over.push(handshake());
    over.next();
    over.push(header(FrameType.ClientRequest, limits.maxFrameBytes - FRAME_HEADER_BYTES + 1));
    const err = over.next();
    assert.ok(err instanceof FrameError);
    assert.equal(err.code, 'ERR_FRAME_TOO_LONG');
  });

  test('a frame split into a thousand pieces is copied once, into exactly its size', () => {
    const decoder = new FrameDecoder(limits);
    decoder.push(handshake());
    decoder.next();
    const bodyBytes = 8 + 4000;
    const frame = new Uint8Array(FRAME_HEADER_BYTES + bodyBytes);
    frame.set(header(FrameType.ClientRequest, bodyBytes));
    frame[FRAME_HEADER_BYTES] = ClientOp.Apply;
    for (let at = 0; at < frame.byteLength; at += 4) {
      decoder.push(frame.subarray(at, Math.min(at + 4, frame.byteLength)));
      if (at + 4 < frame.byteLength) assert.equal(decoder.next(), null);
    }
    const got = decoder.next();
    assert.ok(got !== null && !(got instanceof FrameError) && got.type === FrameType.ClientRequest);
    assert.equal(decoder.largestCopyBytes, bodyBytes);
    assert.equal(decoder.copiedBytes, bodyBytes);
  });
});
