/**
 * The native side of `native.ts`: finds the machine's C compiler, builds the programs in
 * native-bench/c/ at run time (our own sources, nothing downloaded) and runs them as
 * child processes that print JSON lines.
 *
 * The compiler is `$CC`, else `cc`. The binaries go into a fresh temporary directory,
 * never into dist/, so another engineer's `npm run build` cannot delete them mid-run.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The programs in native-bench/c/, by name (the file is `<name>.c`). */
export const C_PROGRAMS = ['fsync', 'ring', 'tcp', 'cpu'] as const;
export type CProgram = (typeof C_PROGRAMS)[number];

/** Where the C sources are, from dist/native-bench/ (compiled) back to native-bench/c/. */
export const C_SOURCE_DIR = fileURLToPath(new URL('../../native-bench/c/', import.meta.url));

/** The compiler found, or why there is none. */
export type Compiler = { readonly cc: string; readonly version: string } | { readonly missing: string };

/** Looks for `$CC` or `cc` and asks it for its version. */
export function findCompiler(): Compiler {
  const cc = process.env.CC !== undefined && process.env.CC !== '' ? process.env.CC : 'cc';
  const got = spawnSync(cc, ['--version'], { encoding: 'utf8' });
  if (got.error !== undefined) {
    const code = (got.error as NodeJS.ErrnoException).code;
    return { missing: code === 'ENOENT' ? `${cc} not found` : `${cc}: ${got.error.message}` };
  }
  if (got.status !== 0) return { missing: `${cc} --version exited with ${got.status}` };
  return { cc, version: (got.stdout.split('\n')[0] ?? '').trim() };
}

/** Built programs by name; a program that failed to build maps to its error instead. */
export type Built = Record<CProgram, { readonly path: string } | { readonly error: string }>;

/**
 * Compiles every program with `-O2 -std=c11 -pthread` into `outDir`. CPU features are
 * chosen inside the programs at run time (cpu.c asks the CPU for SSE4.2 / CRC32), so no
 * -march flag ties the binaries to this machine.
 */
export function buildPrograms(cc: string, outDir: string): Built {
  const built = {} as Record<CProgram, { path: string } | { error: string }>;
  for (const name of C_PROGRAMS) {
    const out = path.join(outDir, name);
    const got = spawnSync(
      cc,
      ['-O2', '-std=c11', '-Wall', '-pthread', '-o', out, path.join(C_SOURCE_DIR, `${name}.c`)],
      { encoding: 'utf8' },
    );
    if (got.error !== undefined) built[name] = { error: got.error.message };
    else if (got.status !== 0) built[name] = { error: `cc exited with ${got.status}: ${got.stderr.trim()}` };
    else built[name] = { path: out };
  }
  return built;
}

/** A program's JSON lines, parsed; rejects with its stderr if it fails or prints something else. */
export function runJsonLines(
  program: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const name = `${path.basename(program)} ${args.join(' ')}`;
      if (code !== 0) {
        reject(new Error(`${name}: exit ${code ?? signal}${stderr === '' ? '' : `: ${stderr.trim()}`}`));
        return;
      }
      try {
        resolve(parseJsonLines(stdout));
      } catch (error) {
        reject(new Error(`${name}: ${(error as Error).message}`));
      }
    });
  });
}

/** Every non-empty line of `text` as a JSON object. */
export function parseJsonLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const value: unknown = JSON.parse(line);
      if (typeof value !== 'object' || value === null) throw new Error(`not a JSON object: ${line}`);
      return value as Record<string, unknown>;
    });
}

/** The number at `key` of a parsed line, or a thrown error naming what is missing. */
export function numberAt(line: Record<string, unknown> | undefined, key: string): number {
  const value = line?.[key];
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new Error(`expected a number at ${key} in ${JSON.stringify(line)}`);
  }
  return value;
}
