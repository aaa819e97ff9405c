/**
 * The coordinator's producing end of one ring. The main thread must never block, and a
 * full ring pushes back rather than drops (DESIGN.md), so when the ring has no room the
 * frames wait here, in order, and an `Atomics.waitAsync` on the ring's free space moves
 * them in as the consumer catches up. Callers see a ring that always accepts.
 */

import { RingProducer } from '../shared/ring.js';

/** A ring producer that never refuses: overflow waits in memory, in order. */
export class RingOutbox {
  readonly producer: RingProducer;
  private readonly pending: Uint8Array[] = [];
  private pendingBytes = 0;
  /** The running drain, if any: only one wait for space may be pending on a ring end. */
  private draining: Promise<void> | null = null;
  private reservedScratch: Uint8Array | null = null;
  private closed = false;

  constructor(buffer: SharedArrayBuffer) {
    this.producer = new RingProducer(buffer);
  }

  /** Frames waiting for room in the ring, and their bytes: how far the consumer is behind. */
  get backlogFrames(): number {
    return this.pending.length;
  }
  get backlogBytes(): number {
    return this.pendingBytes;
  }

  /**
   * Space for one frame of `lengthBytes`, to fill and then `commit()`: a view into the
   * ring when there is room and no backlog, else a fresh buffer that joins the backlog.
   */
  reserve(lengthBytes: number): Uint8Array {
    if (this.reservedScratch !== null) throw new Error('RingOutbox: a reservation is pending');
    // Refused now, whatever the backlog: a frame the ring can never hold would otherwise
    // fail later, inside the drain, where nobody awaits it.
    if (lengthBytes > this.producer.maxFrameBytes) {
      throw new RangeError(
        `a frame of ${lengthBytes} bytes exceeds the ring's ${this.producer.maxFrameBytes}`,
      );
    }
    if (this.pending.length === 0) {
      const view = this.producer.tryReserve(lengthBytes);
      if (view !== null) return view;
    }
    this.reservedScratch = new Uint8Array(lengthBytes);
    return this.reservedScratch;
  }

  /** Stages the reserved frame. It becomes visible at the next `flush()`. */
  commit(): void {
    const scratch = this.reservedScratch;
    if (scratch === null) {
      this.producer.commit();
      return;
    }
    this.reservedScratch = null;
    this.pending.push(scratch);
    this.pendingBytes += scratch.byteLength;
  }

  /** Writes a whole frame (copied). */
  write(frame: Uint8Array): void {
    this.reserve(frame.byteLength).set(frame);
    this.commit();
  }

  /** Publishes what was staged (one store, at most one notify) and starts draining any backlog. */
  flush(): void {
    this.producer.publish();
    if (this.pending.length > 0 && this.draining === null && !this.closed) {
      this.draining = this.drain().finally(() => {
        this.draining = null;
      });
    }
  }

  /** Closes the producing end once the backlog is in: the consumer sees "closed" after the last frame. */
  async close(): Promise<void> {
    this.flush();
    // Let a running drain finish rather than wait for space alongside it.
    while (this.pending.length > 0 && !this.producer.consumerClosed) {
      if (this.draining !== null) await this.draining;
      else await this.moveBacklog();
    }
    this.closed = true;
    this.producer.close();
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0 && !this.closed && !this.producer.consumerClosed) {
      await this.moveBacklog();
    }
  }

  private async moveBacklog(): Promise<void> {
    const first = this.pending[0] as Uint8Array;
    if (!this.producer.canWrite(first.byteLength)) {
      const outcome = await this.producer.waitForSpaceAsync(first.byteLength, 1000);
      if (outcome === 'closed') return;
    }
    while (this.pending.length > 0) {
      const frame = this.pending[0] as Uint8Array;
      if (!this.producer.tryStage(frame)) break;
      this.pending.shift();
      this.pendingBytes -= frame.byteLength;
    }
    this.producer.publish();
  }
}
