/**
 * Live-heap measurements for the tests: a full GC before reading `heapUsed`, so what is
 * measured is what is retained, not what the collector happened to leave behind.
 */

import v8 from 'node:v8';
import vm from 'node:vm';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Bytes of heap in use after a full GC. */
export function liveHeapBytes(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}
