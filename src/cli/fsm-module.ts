/** `--fsm counter|kv|<module path>`: the state machine module a served node loads. */

import path from 'node:path';
import { pathToFileURL } from 'node:url';

/** The built-in state machines, by the name `--fsm` takes. */
export const BUILTIN_FSMS: Readonly<Record<string, URL>> = {
  counter: new URL('../../examples/counter.js', import.meta.url),
  kv: new URL('../../examples/kv.js', import.meta.url),
};

/** The module URL for `--fsm name`: a built-in name, or a path to a module of the user's. */
export function fsmModuleUrl(name: string): string {
  const builtin = BUILTIN_FSMS[name];
  if (builtin) return builtin.href;
  return pathToFileURL(path.resolve(name)).href;
}
