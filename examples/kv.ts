/**
 * A key-value store of strings with compare-and-swap: the example of a state machine whose
 * commands carry structure, and whose results tell the proposer what happened.
 *
 * Commands are built with `kvCommand` in a small binary layout (little-endian):
 *
 * ```
 * put:    u8 1, u32 key bytes, key UTF-8, u32 value bytes, value UTF-8
 * delete: u8 2, u32 key bytes, key UTF-8
 * cas:    u8 3, u32 key bytes, key UTF-8, u8 0 (expect absent) | u8 1 + u32 bytes + UTF-8, u32 value bytes, value UTF-8
 * ```
 *
 * Results: put → `{ ok: true, prev }` (the value replaced, or null); delete →
 * `{ ok: true, deleted }`; cas → `{ ok, current }` where `ok` says whether the key held
 * `expected` (null: the key was absent) and `current` is the value now stored (null: none).
 * A malformed command is answered with `{ error: 'bad command ...' }`, never a throw: every
 * replica refuses it alike.
 *
 * Reads: `{ op: 'get', key }` → the value or null; `{ op: 'size' }` → the number of keys.
 */
import fs from 'node:fs';
import path from 'node:path';
import type {
  ApplyIterator,
  SnapshotReader,
  SnapshotWriter,
  StateMachine,
  Value,
} from '../src/main/state-machine.js';

/** A command of the key-value store. */
export type KvCommand =
  | { op: 'put'; key: string; value: string }
  | { op: 'delete'; key: string }
  | { op: 'cas'; key: string; expected: string | null; value: string };

/** A read of the key-value store. */
export type KvQuery = { op: 'get'; key: string } | { op: 'size' };

/** The op byte of each command. Part of the command format: never renumber. */
enum KvOp {
  Put = 1,
  Delete = 2,
  Cas = 3,
}

const encoder = new TextEncoder();
// fatal: a key that is not valid UTF-8 is a bad command, not a key renamed with U+FFFD.
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Matches a lone surrogate, which UTF-8 cannot carry (TextEncoder would replace it). */
const LONE_SURROGATE = /\p{Cs}/u;

function utf8(s: unknown, what: string): Uint8Array {
  if (typeof s !== 'string') throw new TypeError(`${what} must be a string`);
  if (LONE_SURROGATE.test(s)) throw new RangeError(`${what} has a lone surrogate`);
  return encoder.encode(s);
}

/**
 * The command bytes for `cmd`. Throws TypeError for a key, value or expected value that is
 * not a string (expected may be null), RangeError for a string UTF-8 cannot carry.
 */
export function kvCommand(cmd: KvCommand): Uint8Array {
  const key = utf8(cmd.key, 'key');
  const parts: Uint8Array[] = [];
  let op: KvOp;
  switch (cmd.op) {
    case 'put':
      op = KvOp.Put;
      parts.push(utf8(cmd.value, 'value'));
      break;
    case 'delete':
      op = KvOp.Delete;
      break;
    case 'cas':
      op = KvOp.Cas;
      if (cmd.expected !== null) parts.push(utf8(cmd.expected, 'expected'));
      parts.push(utf8(cmd.value, 'value'));
      break;
    default:
      throw new TypeError(`unknown kv op ${String((cmd as { op: unknown }).op)}`);
  }
  let byteCount = 1 + 4 + key.byteLength + (op === KvOp.Cas ? 1 : 0);
  for (const p of parts) byteCount += 4 + p.byteLength;
  const out = new Uint8Array(byteCount);
  const view = new DataView(out.buffer);
  out[0] = op;
  let pos = 1;
  const put = (bytes: Uint8Array): void => {
    view.setUint32(pos, bytes.byteLength, true);
    out.set(bytes, pos + 4);
    pos += 4 + bytes.byteLength;
  };
  put(key);
  if (op === KvOp.Cas) out[pos++] = cmd.op === 'cas' && cmd.expected !== null ? 1 : 0;
  for (const p of parts) put(p);
  return out;
}

/** Why a command was refused while decoding it. */
class BadCommand {
  constructor(readonly why: string) {}
}

/** Reads one command from bytes that came from anywhere: every length is checked. */
class CommandReader {
  private pos = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  u8(what: string): number {
    if (this.pos + 1 > this.bytes.byteLength) throw new BadCommand(`${what} is missing`);
    return this.bytes[this.pos++] as number;
  }

  string(what: string): string {
    if (this.pos + 4 > this.bytes.byteLength) throw new BadCommand(`the length of ${what} is missing`);
    const n = this.view.getUint32(this.pos, true);
    const start = this.pos + 4;
    if (n > this.bytes.byteLength - start) throw new BadCommand(`${what} is cut short`);
    this.pos = start + n;
    try {
      return decoder.decode(this.bytes.subarray(start, start + n));
    } catch {
      throw new BadCommand(`${what} is not valid UTF-8`);
    }
  }

  end(): void {
    if (this.pos !== this.bytes.byteLength)
      throw new BadCommand(`${this.bytes.byteLength - this.pos} bytes after the command`);
  }
}

function decodeCommand(data: Uint8Array): KvCommand {
  const r = new CommandReader(data);
  const op = r.u8('the op');
  let cmd: KvCommand;
  switch (op) {
    case KvOp.Put: {
      const key = r.string('the key');
      cmd = { op: 'put', key, value: r.string('the value') };
      break;
    }
    case KvOp.Delete:
      cmd = { op: 'delete', key: r.string('the key') };
      break;
    case KvOp.Cas: {
      const key = r.string('the key');
      const flag = r.u8('the expected flag');
      if (flag > 1) throw new BadCommand(`expected flag ${flag} is neither 0 nor 1`);
      const expected = flag === 1 ? r.string('the expected value') : null;
      cmd = { op: 'cas', key, expected, value: r.string('the value') };
      break;
    }
    default:
      throw new BadCommand(`unknown op ${op}`);
  }
  r.end();
  return cmd;
}

/** The key-value state machine. The runtime constructs it with a `StateMachineContext`, which it does not need: it keeps no files. */
export default class KvStore implements StateMachine {
  private readonly map = new Map<string, string>();

  onApply(iter: ApplyIterator): void {
    for (const it of iter) it.done(this.execute(it.data()));
  }

  query(q: Value): Value {
    if (typeof q === 'object' && q !== null && !Array.isArray(q) && !(q instanceof Uint8Array)) {
      if (q.op === 'size') return this.map.size;
      if (q.op === 'get' && typeof q.key === 'string') return this.map.get(q.key) ?? null;
    }
    // A read runs on one replica and changes nothing, so a bad one may simply fail.
    throw new Error("the kv store answers { op: 'get', key } and { op: 'size' }");
  }

  /**
   * Writes every key and value to `kv.json`. It runs while applying waits, so the map
   * is the state at the snapshot's index; a large store would copy the map here and write
   * the copy while applying goes on.
   */
  /**
   * Captures the pairs now (a copy: the state at the snapshot's index) and writes them in
   * the background, so applying goes on while the file is written.
   */
  onSnapshotSave(writer: SnapshotWriter): () => Promise<void> {
    const pairs = [...this.map];
    return () => fs.promises.writeFile(path.join(writer.dir, 'kv.json'), JSON.stringify(pairs));
  }

  onSnapshotLoad(reader: SnapshotReader): void {
    const saved = JSON.parse(fs.readFileSync(path.join(reader.dir, 'kv.json'), 'utf8')) as [string, string][];
    this.map.clear();
    for (const [k, v] of saved) this.map.set(k, v);
  }

  private execute(data: Uint8Array): Value {
    let cmd: KvCommand;
    try {
      cmd = decodeCommand(data);
    } catch (err) {
      if (err instanceof BadCommand) return { error: `bad command: ${err.why}` };
      throw err;
    }
    const map = this.map;
    switch (cmd.op) {
      case 'put': {
        const prev = map.get(cmd.key) ?? null;
        map.set(cmd.key, cmd.value);
        return { ok: true, prev };
      }
      case 'delete':
        return { ok: true, deleted: map.delete(cmd.key) };
      case 'cas': {
        const current = map.get(cmd.key) ?? null;
        if (current !== cmd.expected) return { ok: false, current };
        map.set(cmd.key, cmd.value);
        return { ok: true, current: cmd.value };
      }
    }
  }
}
