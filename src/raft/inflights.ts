import type { Index } from './types.js';

/**
 * The window of AppendEntries a leader has sent to one follower and not yet seen
 * acknowledged, bounded both in messages and in bytes (so a slow follower cannot make
 * the leader hold more than `maxBytes` of unacknowledged entries for it).
 *
 * A ring of (lastIndex, bytes) pairs, oldest first:
 *
 *   start            start+count
 *     v                  v
 *   [ i0 | i1 | i2 | .. |    free    ]      indexes increase from start onwards
 *
 * Empty when count == 0; full when count == capacity or bytes >= maxBytes.
 */
export class Inflights {
  private readonly indexes: Float64Array;
  private readonly sizes: Float64Array;
  private start = 0;
  private count = 0;
  private bytes = 0;

  constructor(
    readonly capacity: number,
    readonly maxBytes: number,
  ) {
    if (capacity < 1) throw new Error(`Inflights: capacity must be >= 1, got ${capacity}`);
    this.indexes = new Float64Array(capacity);
    this.sizes = new Float64Array(capacity);
  }

  /** Records a message whose last entry is `lastIndex`, carrying `bytes` of entries. */
  add(lastIndex: Index, bytes: number): void {
    if (this.count === this.capacity) throw new Error('Inflights.add: window is full');
    const slot = (this.start + this.count) % this.capacity;
    this.indexes[slot] = lastIndex;
    this.sizes[slot] = bytes;
    this.count++;
    this.bytes += bytes;
  }

  /** Frees every message whose last index is <= `index` (the follower has them). */
  freeLE(index: Index): void {
    while (this.count > 0 && (this.indexes[this.start] as number) <= index) {
      this.bytes -= this.sizes[this.start] as number;
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
    if (this.count === 0) {
      this.start = 0;
      this.bytes = 0;
    }
  }

  /** Frees the oldest message, whatever its index (see the heartbeat reply in raft-core). */
  freeFirstOne(): void {
    if (this.count > 0) this.freeLE(this.indexes[this.start] as number);
  }

  full(): boolean {
    return this.count === this.capacity || (this.maxBytes > 0 && this.bytes >= this.maxBytes);
  }

  size(): number {
    return this.count;
  }

  totalBytes(): number {
    return this.bytes;
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
    this.bytes = 0;
  }
}
