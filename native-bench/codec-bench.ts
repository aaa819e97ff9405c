/**
 * Speed of the stored and wire formats (src/shared/protocol.ts), on one thread:
 * 1. CRC32C: the table loop in JavaScript against @node-rs/crc32 (SSE4.2 through N-API),
 *    at 16 B, 256 B, 4 KiB, 64 KiB, plus the sizes around their crossover. The measurement
 *    behind the choice in src/shared/crc32c.ts.
 * 2. Entry records: encodeEntry / decodeEntry for 16-byte and 4 KiB payloads.
 * 3. RAFT_MESSAGE frames: MsgApp batches encoded with Entry objects, or by copying stored
 *    records (the replicator's path), and decoded by FrameDecoder; plus heartbeats.
 *
 *   npx tsc -p . && node dist/native-bench/codec-bench.js [--ms 400] [--only crc|entry|frame]
 *
 * Each case runs for --ms milliseconds after a warm-up of the same length and prints one
 * line: operations/s and MB/s (MB = 10^6 bytes of payload for CRC, of records for the
 * codecs).
 */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';
import { type Message, MessageType, message } from '../src/raft/messages.js';
import { type Entry, EntryType } from '../src/raft/types.js';
import { crc32c, crc32cTable, NATIVE_MIN_BYTES } from '../src/shared/crc32c.js';
import { decodeEntryAt, encodedEntryBytes, encodeEntry } from '../src/shared/entry-codec.js';
import {
  encodeHandshakeFrame,
  encodeRaftMessageFrame,
  encodeRaftMessageFrameWithRecords,
  FrameDecoder,
  FrameError,
  OutBuffer,
} from '../src/shared/message-codec.js';
import { DEFAULT_ENTRY_LIMITS, FrameType, HandshakeRole } from '../src/shared/protocol.js';
import { filled, measureRate, timingSink } from './bench-timing.js';

const argv = process.argv.slice(2);
const option = (name: string, fallback: string): string => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 && at + 1 < argv.length ? (argv[at + 1] as string) : fallback;
};
const budgetMs = Number(option('ms', '400'));
const only = option('only', 'all');

/** Runs `round` for the budget after a warm-up (bench-timing.ts) and prints the rates. */
function measure(name: string, opsPerRound: number, bytesPerRound: number, round: () => number): void {
  const { opsPerSec, mbPerSec, nsPerOp } = measureRate(budgetMs, opsPerRound, bytesPerRound, round);
  console.log(
    `${name.padEnd(44)} ${fmtRate(opsPerSec).padStart(9)} op/s ${mbPerSec.toFixed(0).padStart(6)} MB/s ${nsPerOp.toFixed(0).padStart(7)} ns/op`,
  );
}

function fmtRate(perSec: number): string {
  if (perSec >= 1e6) return `${(perSec / 1e6).toFixed(2)}M`;
  if (perSec >= 1e3) return `${(perSec / 1e3).toFixed(1)}k`;
  return perSec.toFixed(0);
}

// ------------------------------------------------------------------ 1. CRC32C

function benchCrc(): void {
  console.log(
    `# CRC32C: table loop (JS) vs @node-rs/crc32; exported crc32c switches at ${NATIVE_MIN_BYTES} B`,
  );
  const sizes = [16, 32, 48, 64, 80, 96, 128, 256, 4096, 65536];
  for (const sizeBytes of sizes) {
    // Many distinct views over ~4 MiB, so small sizes are not served from one cache line.
    const count = Math.max(64, Math.floor((4 << 20) / sizeBytes));
    const backing = filled(sizeBytes * count);
    const views: Uint8Array[] = [];
    for (let i = 0; i < count; i++) views.push(backing.subarray(i * sizeBytes, (i + 1) * sizeBytes));
    const totalBytes = sizeBytes * count;
    measure(`crc ${sizeBytes} B table`, count, totalBytes, () => {
      let x = 0;
      for (const v of views) x ^= crc32cTable(v, 0, v.byteLength);
      return x;
    });
    measure(`crc ${sizeBytes} B native`, count, totalBytes, () => {
      let x = 0;
      for (const v of views) x ^= nativeCrc32c(v);
      return x;
    });
    measure(`crc ${sizeBytes} B exported crc32c`, count, totalBytes, () => {
      let x = 0;
      for (const v of views) x ^= crc32c(v);
      return x;
    });
  }
}

// ------------------------------------------------------------------ 2. entry records

function makeEntries(count: number, payloadBytes: number): Entry[] {
  const entries: Entry[] = [];
  for (let i = 0; i < count; i++) {
    entries.push({
      index: 1_000_000 + i,
      term: 7,
      type: EntryType.Normal,
      data: filled(payloadBytes, i + 1),
    });
  }
  return entries;
}

function benchEntries(): void {
  console.log('# stored entry records (32-byte header + payload)');
  for (const payloadBytes of [16, 4096]) {
    const count = payloadBytes <= 16 ? 4096 : 256;
    const entries = makeEntries(count, payloadBytes);
    let recordBytes = 0;
    for (const e of entries) recordBytes += encodedEntryBytes(e);
    const out = new Uint8Array(recordBytes);
    measure(`entry ${payloadBytes} B encode`, count, recordBytes, () => {
      let pos = 0;
      for (const e of entries) pos += encodeEntry(e, out, pos);
      return pos;
    });
    const max = DEFAULT_ENTRY_LIMITS.maxEntryPayloadBytes;
    measure(`entry ${payloadBytes} B decode (verify both CRCs)`, count, recordBytes, () => {
      let pos = 0;
      let x = 0;
      while (pos < recordBytes) {
        const got = decodeEntryAt(out, pos, recordBytes, max);
        if ('kind' in got) throw new Error(got.message);
        x ^= got.index;
        pos += 32 + got.data.byteLength;
      }
      return x;
    });
  }
}

// ------------------------------------------------------------------ 3. frames

function appMessage(entries: readonly Entry[]): Message {
  return message({
    type: MessageType.MsgApp,
    from: 'n1',
    to: 'n2',
    term: 7,
    logTerm: 7,
    index: 999_999,
    commit: 999_990,
    entries,
  });
}

function benchFrames(): void {
  console.log('# RAFT_MESSAGE frames (MsgApp batches; op = one entry)');
  for (const [payloadBytes, perFrame] of [
    [16, 64],
    [4096, 16],
  ] as const) {
    const frames = 64;
    const batches: Entry[][] = [];
    for (let f = 0; f < frames; f++) batches.push(makeEntries(perFrame, payloadBytes));
    const totalEntries = frames * perFrame;
    const out = new OutBuffer(1 << 20);
    let streamBytes = 0;
    const build = (): Uint8Array => {
      out.clear();
      for (const b of batches) encodeRaftMessageFrame(out, appMessage(b));
      return out.view();
    };
    const stream = build().slice();
    streamBytes = stream.byteLength;
    measure(`frame ${payloadBytes} B ×${perFrame} encode (Entry objects)`, totalEntries, streamBytes, () => {
      build();
      return out.length;
    });

    // The replicator's path: the records already sit in the log window; only copy them.
    const records: Uint8Array[] = batches.map((b) => {
      let n = 0;
      for (const e of b) n += encodedEntryBytes(e);
      const r = new Uint8Array(n);
      let pos = 0;
      for (const e of b) pos += encodeEntry(e, r, pos);
      return r;
    });
    const head = appMessage([]);
    measure(`frame ${payloadBytes} B ×${perFrame} encode (copy records)`, totalEntries, streamBytes, () => {
      out.clear();
      for (const r of records) encodeRaftMessageFrameWithRecords(out, head, r, perFrame);
      return out.length;
    });

    measure(`frame ${payloadBytes} B ×${perFrame} decode (one chunk)`, totalEntries, streamBytes, () => {
      const decoder = new FrameDecoder({ expectHandshake: false });
      decoder.push(stream);
      let x = 0;
      for (let f = decoder.next(); f !== null; f = decoder.next()) {
        if (f instanceof FrameError) throw f;
        if (f.type === FrameType.RaftMessage) x += f.message.entries.length;
      }
      return x;
    });
    const chunkBytes = 64 * 1024;
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < stream.byteLength; at += chunkBytes)
      chunks.push(stream.subarray(at, at + chunkBytes));
    measure(`frame ${payloadBytes} B ×${perFrame} decode (64 KiB chunks)`, totalEntries, streamBytes, () => {
      const decoder = new FrameDecoder({ expectHandshake: false });
      let x = 0;
      for (const c of chunks) {
        decoder.push(c);
        for (let f = decoder.next(); f !== null; f = decoder.next()) {
          if (f instanceof FrameError) throw f;
          if (f.type === FrameType.RaftMessage) x += f.message.entries.length;
        }
      }
      return x;
    });
  }

  console.log('# small frames (op = one frame)');
  const heartbeat = message({
    type: MessageType.MsgHeartbeat,
    from: 'n1',
    to: 'n2',
    term: 7,
    commit: 42,
    context: 9,
  });
  const out = new OutBuffer(1 << 20);
  const count = 4096;
  encodeHandshakeFrame(out, { role: HandshakeRole.Peer, clusterId: 'bench', nodeId: 'n1' });
  const handshakeBytes = out.length;
  for (let i = 0; i < count; i++) encodeRaftMessageFrame(out, heartbeat);
  const stream = out.view().slice();
  measure('heartbeat encode', count, stream.byteLength - handshakeBytes, () => {
    out.clear();
    for (let i = 0; i < count; i++) encodeRaftMessageFrame(out, heartbeat);
    return out.length;
  });
  measure('heartbeat decode (after a handshake)', count, stream.byteLength - handshakeBytes, () => {
    const decoder = new FrameDecoder();
    decoder.push(stream);
    let x = 0;
    for (let f = decoder.next(); f !== null; f = decoder.next()) {
      if (f instanceof FrameError) throw f;
      x++;
    }
    return x;
  });
}

console.log(`node ${process.version}, ${budgetMs} ms per case`);
if (only === 'all' || only === 'crc') benchCrc();
if (only === 'all' || only === 'entry') benchEntries();
if (only === 'all' || only === 'frame') benchFrames();
console.log(`(sink ${timingSink()})`);
