import { readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';

/**
 * A small reimplementation of cockroachdb/datadriven, the transcript format of etcd-io/raft's
 * tests. A file is a sequence of blocks:
 *
 *   # optional comment lines
 *   command arg1 key=value key=(a b c)
 *   ----
 *   expected output
 *
 * Blocks are separated by blank lines, so an expected output that itself contains a blank
 * line is fenced by a doubled separator instead:
 *
 *   command
 *   ----
 *   ----
 *   output with
 *
 *   a blank line
 *   ----
 *   ----
 *
 * With REWRITE=1 the file is written back with the actual outputs in place of the expected
 * ones, so a behaviour change shows up as a reviewable diff of the transcript rather than
 * as hand-edited expectations ("only commit the changes if you understand what caused them").
 */

/** One argument of a command line: `arg` (no values), `key=value` or `key=(v1 v2)`. */
export interface CmdArg {
  readonly key: string;
  readonly vals: readonly string[];
}

/** One block of a transcript file. */
export interface TestData {
  /** `file.txt:line` of the command, for error messages. */
  readonly pos: string;
  readonly cmd: string;
  readonly args: readonly CmdArg[];
  /** The command line as written, kept verbatim on rewrite. */
  readonly line: string;
  readonly expected: string;
}

const SEPARATOR = '----';

/** Parts of a file: text kept verbatim (comments, blank lines) and blocks whose output may be replaced. */
export type Chunk =
  | { readonly kind: 'text'; readonly line: string }
  | { readonly kind: 'block'; readonly data: TestData };

function isBlank(line: string): boolean {
  return line.trim() === '';
}

/** Splits a command line on whitespace, keeping `key=(a b c)` in one token. */
function tokenize(line: string, pos: string): string[] {
  const tokens: string[] = [];
  let cur = '';
  let depth = 0;
  for (const ch of line) {
    if (ch === '(') depth++;
    else if (ch === ')') depth--;
    if (depth < 0) throw new Error(`${pos}: unbalanced ')' in ${JSON.stringify(line)}`);
    if (depth === 0 && /\s/.test(ch)) {
      if (cur !== '') tokens.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  if (depth !== 0) throw new Error(`${pos}: unbalanced '(' in ${JSON.stringify(line)}`);
  if (cur !== '') tokens.push(cur);
  return tokens;
}

function parseArg(token: string): CmdArg {
  const eq = token.indexOf('=');
  if (eq < 0) return { key: token, vals: [] };
  const key = token.slice(0, eq);
  const value = token.slice(eq + 1);
  if (value.startsWith('(') && value.endsWith(')')) {
    return {
      key,
      vals: value
        .slice(1, -1)
        .split(/[\s,]+/)
        .filter((v) => v !== ''),
    };
  }
  return { key, vals: [value] };
}

/** Parses a transcript. `name` is used in positions only. */
export function parse(text: string, name: string): Chunk[] {
  const lines = text.replace(/\n$/, '').split('\n');
  const chunks: Chunk[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i] as string;
    if (isBlank(line) || line.startsWith('#')) {
      chunks.push({ kind: 'text', line });
      i++;
      continue;
    }
    const pos = `${name}:${i + 1}`;
    const [cmd, ...rest] = tokenize(line, pos);
    if (cmd === undefined) throw new Error(`${pos}: empty command`);
    i++;
    if (lines[i] !== SEPARATOR) throw new Error(`${pos}: expected '${SEPARATOR}' after the command`);
    i++;
    const expected: string[] = [];
    if (lines[i] === SEPARATOR) {
      // Fenced output: runs until a doubled separator.
      i++;
      while (!(lines[i] === SEPARATOR && lines[i + 1] === SEPARATOR)) {
        if (i >= lines.length) throw new Error(`${pos}: unterminated '${SEPARATOR}' fence`);
        expected.push(lines[i] as string);
        i++;
      }
      i += 2;
    } else {
      while (i < lines.length && !isBlank(lines[i] as string)) {
        expected.push(lines[i] as string);
        i++;
      }
    }
    chunks.push({
      kind: 'block',
      data: { pos, cmd, args: rest.map(parseArg), line, expected: expected.join('\n') },
    });
  }
  return chunks;
}

function formatBlock(line: string, output: string): string {
  const fenced = output.split('\n').some(isBlank);
  return fenced
    ? `${line}\n${SEPARATOR}\n${SEPARATOR}\n${output}\n${SEPARATOR}\n${SEPARATOR}\n`
    : `${line}\n${SEPARATOR}\n${output}\n`;
}

/** Thrown when a command's output differs from the transcript. */
export class TranscriptMismatchError extends Error {
  readonly code = 'ERR_TRANSCRIPT_MISMATCH';
}

/**
 * Runs every block of the transcript at `path` through `handle`, in order (later blocks
 * depend on the state earlier ones left behind). Stops at the first mismatch, since the
 * state after it is not the one the rest of the file describes. With `rewrite` every block
 * runs and the file is rewritten with the actual outputs.
 */
export function runFile(
  path: string,
  handle: (d: TestData) => string,
  rewrite: boolean = process.env.REWRITE === '1',
): void {
  const name = basename(path);
  const chunks = parse(readFileSync(path, 'utf8'), name);
  let rewritten = '';
  for (const chunk of chunks) {
    if (chunk.kind === 'text') {
      rewritten += `${chunk.line}\n`;
      continue;
    }
    const d = chunk.data;
    // An empty output would end the block at once and read back as a different block.
    const actual = handle(d).replace(/\n+$/, '') || 'ok';
    if (rewrite) {
      rewritten += formatBlock(d.line, actual);
    } else if (actual !== d.expected) {
      throw new TranscriptMismatchError(
        `${d.pos}: ${d.line}\n--- expected\n${d.expected}\n--- actual\n${actual}\n` +
          `(run with REWRITE=1 to accept the actual output, after reading it)`,
      );
    }
  }
  if (rewrite) writeFileSync(path, rewritten);
}
