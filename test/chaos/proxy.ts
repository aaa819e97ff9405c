/**
 * The fault-injecting TCP proxies of the chaos harness: one per directed pair of nodes.
 *
 * Node `a`'s `peers` list names node `b` at the port of the proxy `a→b`, which forwards to
 * `b`'s real listen address. Every connection `a` opens to `b` goes through it: the
 * replicator's link (AppendEntries one way, their answers the other) and the second
 * connection a snapshot stream uses. So cutting `a→b` silences what `a` sends to `b` and
 * what `b` answers on those connections; a partition between `a` and `b` cuts both `a→b`
 * and `b→a`.
 *
 * ```
 *   node a ──► proxy a→b ──► node b        (b's own links to a go through proxy b→a)
 *   clients ─────────────────► node b      (clients connect directly: never through a proxy)
 * ```
 *
 * What a link can do:
 * - `up`: forward both ways, each chunk after `delayMs` (plus up to `jitterMs`), in order.
 * - `cut`: existing connections are destroyed (both ends see a reset or close) and new ones
 *   are accepted and closed at once, as a firewall that rejects would.
 * - `hang`: a silent partition. Nothing is forwarded any more, in either direction, and new
 *   connections are accepted but never connected onwards, so senders see no error at all
 *   until their own timeouts fire. Healing destroys the hung connections (a long TCP
 *   partition ends the same way once keepalives or timeouts give up), so nothing held
 *   back is delivered late.
 */

import net from 'node:net';

/** How a link behaves now. */
export type LinkMode = 'up' | 'cut' | 'hang';

/** Counters of one proxy, for the summary. */
export interface LinkCounters {
  /** Connections forwarded to the target. */
  connections: number;
  /** Connections closed at once because the link was cut. */
  refused: number;
  /** Connections destroyed by `cut()` or by healing a hung link. */
  destroyed: number;
  /** Bytes forwarded, both directions. */
  bytes: number;
}

/** One direction of a forwarded connection: chunks wait here while the link is delayed. */
class Lane {
  private readonly queue: { dueMs: number; chunk: Buffer }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private lastDueMs = 0;

  constructor(
    private readonly from: net.Socket,
    private readonly to: net.Socket,
    private readonly proxy: LinkProxy,
  ) {}

  /** A chunk arrived from `from`: forward it now, or after the link's delay, in order. */
  push(chunk: Buffer): void {
    const delayMs = this.proxy.delayFor();
    if (delayMs <= 0 && this.queue.length === 0) {
      this.write(chunk);
      return;
    }
    // Never before a chunk queued earlier: TCP delivers in order.
    const dueMs = Math.max(performance.now() + delayMs, this.lastDueMs);
    this.lastDueMs = dueMs;
    this.queue.push({ dueMs, chunk });
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== null || this.queue.length === 0) return;
    const head = this.queue[0] as { dueMs: number };
    this.timer = setTimeout(
      () => {
        this.timer = null;
        const now = performance.now();
        while (this.queue.length > 0 && (this.queue[0] as { dueMs: number }).dueMs <= now + 0.5) {
          this.write((this.queue.shift() as { chunk: Buffer }).chunk);
        }
        this.schedule();
      },
      Math.max(0, head.dueMs - performance.now()),
    );
  }

  private write(chunk: Buffer): void {
    if (this.to.destroyed) return;
    this.proxy.counters.bytes += chunk.byteLength;
    if (!this.to.write(chunk)) {
      // Backpressure: stop reading the sender until the receiver drains.
      this.from.pause();
      this.to.once('drain', () => {
        if (this.proxy.mode === 'up') this.from.resume();
      });
    }
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
  }
}

/** One accepted connection and, once connected, its onward connection to the target. */
interface Pair {
  readonly inbound: net.Socket;
  outbound: net.Socket | null;
  lanes: Lane[];
}

/** The proxy of one directed link `from → to`. */
export class LinkProxy {
  /** The port it listens on (127.0.0.1); 0 until `listen()` resolved. */
  port = 0;
  mode: LinkMode = 'up';
  delayMs = 0;
  jitterMs = 0;
  readonly counters: LinkCounters = { connections: 0, refused: 0, destroyed: 0, bytes: 0 };
  private readonly server: net.Server;
  private readonly pairs = new Set<Pair>();

  constructor(
    readonly from: string,
    readonly to: string,
    private readonly targetPort: number,
    private readonly targetHost = '127.0.0.1',
  ) {
    this.server = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
  }

  /** Starts listening on 127.0.0.1 (`port` 0: any free port); resolves with the port. */
  listen(port = 0): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        this.port = (this.server.address() as net.AddressInfo).port;
        resolve(this.port);
      });
    });
  }

  /** The delay for the next chunk: `delayMs` plus a random share of `jitterMs`. */
  delayFor(): number {
    if (this.delayMs <= 0 && this.jitterMs <= 0) return 0;
    return this.delayMs + Math.random() * this.jitterMs;
  }

  /** Rejects new connections and destroys the existing ones. */
  cut(): void {
    this.mode = 'cut';
    this.destroyAll();
  }

  /** Stops forwarding without closing anything (a silent partition). */
  hang(): void {
    if (this.mode === 'cut') this.destroyAll();
    this.mode = 'hang';
    for (const p of this.pairs) {
      p.inbound.pause();
      p.outbound?.pause();
      for (const lane of p.lanes) lane.stop();
    }
  }

  /** Adds latency to every chunk from now on, both directions. */
  delay(delayMs: number, jitterMs = 0): void {
    this.delayMs = delayMs;
    this.jitterMs = jitterMs;
  }

  /** Back to normal: forwarding, no delay. Hung connections are destroyed (see the module comment). */
  heal(): void {
    if (this.mode === 'hang') this.destroyAll();
    this.mode = 'up';
    this.delayMs = 0;
    this.jitterMs = 0;
  }

  /** Destroys every connection and stops listening. */
  async close(): Promise<void> {
    this.destroyAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(inbound: net.Socket): void {
    inbound.on('error', () => {});
    if (this.mode === 'cut') {
      this.counters.refused++;
      inbound.destroy();
      return;
    }
    const pair: Pair = { inbound, outbound: null, lanes: [] };
    this.pairs.add(pair);
    inbound.on('close', () => this.drop(pair));
    if (this.mode === 'hang') {
      // Accepted by the kernel, never answered: the sender waits for a handshake in vain.
      inbound.pause();
      return;
    }
    this.connectOnward(pair);
  }

  private connectOnward(pair: Pair): void {
    const outbound = net.connect({ host: this.targetHost, port: this.targetPort, noDelay: true });
    pair.outbound = outbound;
    outbound.on('error', () => {});
    outbound.on('close', () => this.drop(pair));
    this.counters.connections++;
    const toTarget = new Lane(pair.inbound, outbound, this);
    const toSource = new Lane(outbound, pair.inbound, this);
    pair.lanes = [toTarget, toSource];
    // Bytes the sender wrote before the onward connection was up are buffered by
    // `outbound.write` until it connects.
    pair.inbound.on('data', (chunk: Buffer) => {
      if (this.mode === 'up') toTarget.push(chunk);
    });
    outbound.on('data', (chunk: Buffer) => {
      if (this.mode === 'up') toSource.push(chunk);
    });
  }

  private drop(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    for (const lane of pair.lanes) lane.stop();
    pair.inbound.destroy();
    pair.outbound?.destroy();
  }

  private destroyAll(): void {
    for (const pair of [...this.pairs]) {
      this.counters.destroyed++;
      this.drop(pair);
    }
  }
}

/**
 * Every proxy of a cluster: `link(a, b)` is the proxy that `a` reaches `b` through. The
 * helpers cut or delay both directions between two nodes, isolate a node, or split the
 * cluster.
 */
export class ProxyMesh {
  private readonly links = new Map<string, LinkProxy>();

  private constructor(readonly ids: readonly string[]) {}

  /** Starts a proxy for every ordered pair of `ids`, forwarding to `ports[id]`. */
  static async start(ids: readonly string[], ports: ReadonlyMap<string, number>): Promise<ProxyMesh> {
    const mesh = new ProxyMesh(ids);
    for (const a of ids) {
      for (const b of ids) {
        if (a === b) continue;
        const proxy = new LinkProxy(a, b, ports.get(b) as number);
        await proxy.listen();
        mesh.links.set(`${a}>${b}`, proxy);
      }
    }
    return mesh;
  }

  /** The proxy `from` reaches `to` through. */
  link(from: string, to: string): LinkProxy {
    const p = this.links.get(`${from}>${to}`);
    if (!p) throw new Error(`no proxy ${from}→${to}`);
    return p;
  }

  /** Every proxy. */
  all(): LinkProxy[] {
    return [...this.links.values()];
  }

  /** Cuts (or hangs) both directions between `a` and `b`. */
  sever(a: string, b: string, mode: 'cut' | 'hang' = 'cut'): void {
    for (const p of [this.link(a, b), this.link(b, a)]) {
      if (mode === 'cut') p.cut();
      else p.hang();
    }
  }

  /** Cuts every link between the two groups (a partition; nodes in neither group keep their links). */
  split(left: readonly string[], right: readonly string[], mode: 'cut' | 'hang' = 'cut'): void {
    for (const a of left) for (const b of right) this.sever(a, b, mode);
  }

  /** Cuts `id` off from every other node. */
  isolate(id: string, mode: 'cut' | 'hang' = 'cut'): void {
    this.split(
      [id],
      this.ids.filter((x) => x !== id),
      mode,
    );
  }

  /** Delays both directions of every link of `id`. */
  delayNode(id: string, delayMs: number, jitterMs: number): void {
    for (const other of this.ids) {
      if (other === id) continue;
      this.link(id, other).delay(delayMs, jitterMs);
      this.link(other, id).delay(delayMs, jitterMs);
    }
  }

  /** Every link back to normal. */
  healAll(): void {
    for (const p of this.links.values()) p.heal();
  }

  /** Totals over every proxy. */
  counters(): LinkCounters {
    const t: LinkCounters = { connections: 0, refused: 0, destroyed: 0, bytes: 0 };
    for (const p of this.links.values()) {
      t.connections += p.counters.connections;
      t.refused += p.counters.refused;
      t.destroyed += p.counters.destroyed;
      t.bytes += p.counters.bytes;
    }
    return t;
  }

  async close(): Promise<void> {
    await Promise.all([...this.links.values()].map((p) => p.close()));
  }
}
