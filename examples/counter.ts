/**
 * The counter: the smallest useful state machine, and the one the load-testing CLI drives.
 *
 * Commands are UTF-8 text so they can be typed and sent from a shell: `inc <n>`, `dec <n>`
 * (n defaults to 1) and `set <n>`, n a safe integer. The result of each is the new value.
 * A command that cannot be executed (garbled, or a result beyond 2^53-1) is answered with
 * `{ error: 'bad command ...' }`: every replica refuses it alike, so it is a result, not a
 * failure of the node.
 *
 * Reads: `query('get')` or `query(undefined)` answers the current value.
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

/** A counter operation. */
export type CounterOp = 'inc' | 'dec' | 'set';

const encoder = new TextEncoder();

/**
 * The command bytes for `op n`. `n` is optional for inc and dec (the counter then moves by
 * 1) and required for set. Throws RangeError for an n that is not a safe integer.
 */
export function counterCommand(op: CounterOp, n?: number): Uint8Array {
  if (op !== 'inc' && op !== 'dec' && op !== 'set') throw new RangeError(`unknown counter op ${String(op)}`);
  if (n === undefined) {
    if (op === 'set') throw new RangeError('set needs a value');
    return encoder.encode(op);
  }
  if (!Number.isSafeInteger(n)) throw new RangeError(`${n} is not a safe integer`);
  return encoder.encode(`${op} ${n}`);
}

/** Commands are short: anything longer is refused before being turned into a string. */
const MAX_COMMAND_BYTES = 64;
const COMMAND = /^(inc|dec|set)(?: (-?\d{1,16}))?$/;

/** The counter state machine. The runtime constructs it with a `StateMachineContext`, which it does not need: it keeps no files. */
export default class Counter implements StateMachine {
  private value = 0;

  /** The current value: what a read answers. */
  get current(): number {
    return this.value;
  }

  onApply(iter: ApplyIterator): void {
    for (const it of iter) it.done(this.execute(it.data()));
  }

  query(q: Value): Value {
    if (q === undefined || q === 'get') return this.value;
    // A read runs on one replica and changes nothing, so a bad one may simply fail.
    throw new Error(`the counter answers the query 'get', not ${describe(q)}`);
  }

  /** The whole state is one number: it goes in `counter.json` (the runtime syncs the file). */
  onSnapshotSave(writer: SnapshotWriter): void {
    fs.writeFileSync(path.join(writer.dir, 'counter.json'), JSON.stringify({ value: this.value }));
  }

  onSnapshotLoad(reader: SnapshotReader): void {
    const saved = JSON.parse(fs.readFileSync(path.join(reader.dir, 'counter.json'), 'utf8')) as {
      value: number;
    };
    this.value = saved.value;
  }

  /** Executes one command and returns its result: the new value, or an error value. */
  private execute(data: Uint8Array): Value {
    const text = data.byteLength <= MAX_COMMAND_BYTES ? asciiText(data) : null;
    const match = text === null ? null : COMMAND.exec(text);
    if (match === null) return badCommand(data, 'expected inc [n], dec [n] or set <n>');
    const op = match[1] as CounterOp;
    const arg = match[2];
    if (arg === undefined && op === 'set') return badCommand(data, 'set needs a value');
    // "+ 0" turns "-0" into 0: the value must not become -0, which would encode differently.
    const n = arg === undefined ? 1 : Number(arg) + 0;
    if (!Number.isSafeInteger(n)) return badCommand(data, `${arg} is not a safe integer`);
    const next = op === 'set' ? n : op === 'inc' ? this.value + n : this.value - n;
    if (!Number.isSafeInteger(next)) return badCommand(data, 'the result would not be a safe integer');
    this.value = next;
    return next;
  }
}

/** The command as ASCII text, or null if it has other bytes (it is then no counter command). */
function asciiText(data: Uint8Array): string | null {
  let text = '';
  for (let i = 0; i < data.byteLength; i++) {
    const b = data[i] as number;
    if (b >= 0x80) return null;
    text += String.fromCharCode(b);
  }
  return text;
}

function badCommand(data: Uint8Array, why: string): Value {
  const shown = new TextDecoder().decode(data.subarray(0, MAX_COMMAND_BYTES));
  return {
    error: `bad command ${JSON.stringify(shown)}${data.byteLength > MAX_COMMAND_BYTES ? '...' : ''}: ${why}`,
  };
}

function describe(q: Value): string {
  try {
    return JSON.stringify(q, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)) ?? String(q);
  } catch {
    return typeof q;
  }
}
