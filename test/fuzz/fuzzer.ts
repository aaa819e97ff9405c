/**
 * The fuzzer: plans connections with `frames.ts` and `model.ts`, writes them to one
 * node's listen port, many at once, and checks what comes back.
 *
 * A refused frame closes its connection, so anything written after it is never parsed.
 * To make most of what is sent count, each connection is planned unit by unit against
 * the model: a valid handshake (sometimes a mutated one), then frames the node accepts
 * (valid ones and mutations that survive: a damaged query, a garbage command, a stale
 * message with odd numbers), and last one hostile unit, usually refused. All of it leaves
 * in one write, so a connection costs one round of accept, parse and close on the node.
 *
 * What is checked per connection: one the model says is refused is closed by the node
 * (never left hanging); on a client connection that ends cleanly every request is
 * answered, and every answer, like every snapshot-stream reply, is well-formed.
 */

import net from 'node:net';
import { Rng } from '../../src/raft/rng.js';
import { ClientFrameError, decodeClientResponse } from '../../src/shared/client-codec.js';
import { FrameDecoder, FrameError } from '../../src/shared/message-codec.js';
import { FrameType, HandshakeRole, SnapshotReplyKind } from '../../src/shared/protocol.js';
import { decodeSnapshotReply, SnapshotStreamError } from '../../src/shared/snapshot-stream-codec.js';
import {
  type BaseFrame,
  clientRequest,
  concat,
  disrupt,
  type FrameContext,
  garbage,
  handshake,
  mutate,
  raftMessage,
  snapshotFrame,
  type Unit,
} from './frames.js';
import {
  type Category,
  type ConnState,
  type Evaluation,
  Model,
  type ModelContext,
  NEW_CONNECTION,
  type Role,
} from './model.js';

export interface FuzzerOptions {
  readonly host: string;
  readonly port: number;
  readonly ctx: FrameContext & ModelContext;
  /**
   * Stop planning once the node is to parse this many frames that are mutated or random
   * (`FuzzStats.framesMutatedOrRandom`); valid frames around them come on top.
   */
  readonly frames: number;
  readonly seed: number;
  /** Connections in flight at once. Default 48. */
  readonly concurrency?: number;
  /** Largest share of parsed frames that may be Apply/ApplyBatch requests (each a log entry). Default 0.02. */
  readonly applyShare?: number;
  /** A connection that neither closes nor finishes in this time is counted as hung. Default 20000. */
  readonly connectionTimeoutMs?: number;
  /**
   * Relative weights of the connections' openings: garbage, and handshakes of each role.
   * Default `{ garbage: 5, client: 42, peer: 42, snapshot: 11 }`: Raft
   * messages cost the node least per frame, client requests most (an answer each, many a
   * trip to the state machine thread).
   */
  readonly mix?: Partial<Record<'garbage' | 'client' | 'peer' | 'snapshot', number>>;
  /** Called about every second with the figures so far. */
  readonly onProgress?: (stats: FuzzStats) => void;
  /** Stop early (the harness sets it when a node died). */
  readonly shouldStop?: () => boolean;
}

/** What a run did and saw. */
export interface FuzzStats {
  connections: number;
  connectionsByRole: Record<string, number>;
  /** How planned connections end: clean (we close), rejected (the node closes), incomplete (a frame cut off at our close). */
  connectionsByEnd: Record<string, number>;
  /** Frames the node parses (accepted + refused), by the model. */
  framesParsed: number;
  /** ... of which accepted. */
  framesAccepted: number;
  /** ... of which refused (one per refused connection). */
  framesRejected: number;
  /** Parsed frames that came from a mutated unit or random garbage. */
  framesMutatedOrRandom: number;
  /** Parsed frames sent as built (valid handshakes and carriers). */
  framesValidAsBuilt: number;
  /** Units written (a unit is one frame, mutated or not, or several after a length change). */
  unitsSent: number;
  bytesSent: number;
  /** Refused connections by category (the counter or log line the node keeps). */
  rejectedByCategory: Record<string, number>;
  /** Refusal codes, `category:code`. */
  rejectedByCode: Record<string, number>;
  /** Accepted frames by kind. */
  acceptedByKind: Record<string, number>;
  /** Units written, by mutation (`as-built` for none). */
  unitsByMutation: Record<string, number>;
  /** Units the model kept off the wire, by harm. */
  unitsWithheld: Record<string, number>;
  /** Client requests sent that the node accepts, and answers received. */
  clientRequests: number;
  clientResponses: number;
  clientErrorResponses: number;
  /** Connections that ended cleanly and were owed answers, and those among them that got fewer. */
  cleanClientConnections: number;
  cleanClientConnectionsShort: number;
  /** Answers or replies from the node that do not decode: a bug of the node's encoders. */
  malformedFromNode: number;
  snapshotReplies: Record<string, number>;
  /** Refused connections the node did not close within the timeout. */
  hung: number;
  /** Refused connections that the node closed, as it should. */
  closedByNode: number;
  /** Socket errors on our side, by code (resets after a refusal are normal). */
  socketErrors: Record<string, number>;
  /** Decoders that threw instead of returning an error (model side): a bug each. */
  decoderThrows: string[];
  elapsedMs: number;
}

interface Plan {
  readonly id: number;
  readonly role: Role;
  readonly bytes: Uint8Array;
  readonly end: 'clean' | 'rejected' | 'incomplete';
  readonly requests: number;
}

function bump(map: Record<string, number>, key: string, by = 1): void {
  map[key] = (map[key] ?? 0) + by;
}

export class Fuzzer {
  readonly stats: FuzzStats = {
    connections: 0,
    connectionsByRole: {},
    connectionsByEnd: {},
    framesParsed: 0,
    framesAccepted: 0,
    framesRejected: 0,
    framesMutatedOrRandom: 0,
    framesValidAsBuilt: 0,
    unitsSent: 0,
    bytesSent: 0,
    rejectedByCategory: {},
    rejectedByCode: {},
    acceptedByKind: {},
    unitsByMutation: {},
    unitsWithheld: {},
    clientRequests: 0,
    clientResponses: 0,
    clientErrorResponses: 0,
    cleanClientConnections: 0,
    cleanClientConnectionsShort: 0,
    malformedFromNode: 0,
    snapshotReplies: {},
    hung: 0,
    closedByNode: 0,
    socketErrors: {},
    decoderThrows: [],
    elapsedMs: 0,
  };
  private readonly o: FuzzerOptions;
  private readonly rng: Rng;
  private readonly model: Model;
  private readonly ctx: FrameContext & ModelContext;
  private nextId = 0;
  private appliesPlanned = 0;

  constructor(options: FuzzerOptions) {
    this.o = options;
    this.rng = new Rng(options.seed);
    this.ctx = options.ctx;
    this.model = new Model(options.ctx);
  }

  /** Runs until `frames` frames are planned and every connection has ended. */
  async run(): Promise<FuzzStats> {
    const started = performance.now();
    const concurrency = this.o.concurrency ?? 48;
    let lastProgress = started;
    const worker = async (): Promise<void> => {
      while (this.stats.framesMutatedOrRandom < this.o.frames && !(this.o.shouldStop?.() ?? false)) {
        const plan = this.plan();
        await this.execute(plan);
        const now = performance.now();
        if (this.o.onProgress && now - lastProgress >= 1000) {
          lastProgress = now;
          this.stats.elapsedMs = now - started;
          this.o.onProgress(this.stats);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    this.stats.elapsedMs = performance.now() - started;
    return this.stats;
  }

  // ---------------------------------------------------------------- planning

  private baseFor(role: Role, peerId: string, carrier = false): BaseFrame {
    if (role === 'client')
      return clientRequest(
        this.rng,
        carrier,
        this.appliesPlanned < (this.o.applyShare ?? 0.02) * this.o.frames,
      );
    if (role === 'snapshot') return snapshotFrame(this.ctx, this.rng);
    return raftMessage(this.ctx, this.rng, peerId);
  }

  /**
   * Plans one connection: its bytes and how the node will end it. Error objects are made
   * without stack traces meanwhile: the model's decoders build one for every refusal,
   * and capturing stacks was the largest cost of planning.
   */
  plan(): Plan {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      return this.planConnection();
    } finally {
      Error.stackTraceLimit = limit;
    }
  }

  private planConnection(): Plan {
    const rng = this.rng;
    const id = this.nextId++;
    const parts: Uint8Array[] = [];
    let state: ConnState = NEW_CONNECTION;
    let requests = 0;
    const stats = this.stats;
    const commit = (unit: Unit, ev: Evaluation): void => {
      parts.push(unit.bytes);
      stats.unitsSent++;
      stats.bytesSent += unit.bytes.byteLength;
      bump(stats.unitsByMutation, unit.mutations.length === 0 ? 'as-built' : unit.mutations.join('+'));
      const parsed = ev.accepted + (ev.outcome === 'rejected' ? 1 : 0);
      stats.framesParsed += parsed;
      stats.framesAccepted += ev.accepted;
      if (unit.mutations.length === 0 && unit.kind !== 'garbage') stats.framesValidAsBuilt += parsed;
      else stats.framesMutatedOrRandom += parsed;
      for (const k of ev.kinds) bump(stats.acceptedByKind, k);
      requests += ev.requests;
      stats.clientRequests += ev.requests;
      this.appliesPlanned += ev.applies;
      if (ev.thrown !== undefined && stats.decoderThrows.length < 20) stats.decoderThrows.push(ev.thrown);
      state = ev.state;
    };
    const finish = (end: Plan['end'], ev?: Evaluation): Plan => {
      stats.connections++;
      bump(stats.connectionsByRole, state.role);
      bump(stats.connectionsByEnd, end);
      if (end === 'rejected' && ev?.category !== undefined) {
        stats.framesRejected++;
        bump(stats.rejectedByCategory, ev.category);
        if (ev.alsoCounted !== undefined) bump(stats.rejectedByCategory, ev.alsoCounted);
        bump(stats.rejectedByCode, `${ev.category}:${ev.code ?? '-'}`);
      }
      return { id, role: state.role, bytes: concat(parts), end, requests };
    };
    const withheld = (ev: Evaluation): void => bump(stats.unitsWithheld, ev.harm ?? '?');

    // The opening: garbage, or a handshake (sometimes damaged).
    const mix = { garbage: 5, client: 42, peer: 42, snapshot: 11, ...this.o.mix };
    let roll = rng.int(mix.garbage + mix.client + mix.peer + mix.snapshot);
    if (roll < mix.garbage) {
      for (;;) {
        const unit: Unit = { bytes: garbage(this.ctx, rng), kind: 'garbage', mutations: ['garbage'] };
        const ev = this.model.evaluate(state, unit.bytes);
        if (ev.outcome === 'harmful') {
          withheld(ev);
          continue;
        }
        commit(unit, ev);
        return finish(ev.outcome, ev);
      }
    }
    roll -= mix.garbage;
    const role =
      roll < mix.client
        ? HandshakeRole.Client
        : roll < mix.client + mix.peer
          ? HandshakeRole.Peer
          : HandshakeRole.Snapshot;
    // Unique, and far apart in bits: a handshake naming a peer that is connected already
    // replaces that connection, and a mutated id must not hit another in flight.
    const nodeId =
      role === HandshakeRole.Client && rng.chance(0.5) ? '' : `fz-${id}-${rng.nextU32().toString(36)}`;
    const odd = rng.int(100);
    const clusterId = odd < 2 ? `${this.ctx.clusterId}-other` : this.ctx.clusterId;
    const hsNodeId = odd === 2 && role !== HandshakeRole.Client ? this.ctx.targetId : nodeId;
    for (let tries = 0; ; tries++) {
      const base = handshake(role, hsNodeId, clusterId);
      const r = rng.int(100);
      const unit: Unit =
        r < 8
          ? mutate(this.ctx, rng, base, false)
          : r < 12
            ? disrupt(
                this.ctx,
                rng,
                base,
                this.baseFor(role === HandshakeRole.Client ? 'client' : 'peer', nodeId),
              )
            : { bytes: base.bytes, kind: base.kind, mutations: [] };
      const ev = this.model.evaluate(state, unit.bytes);
      if (ev.outcome === 'harmful') {
        withheld(ev);
        if (tries < 10) continue;
        return finish('clean');
      }
      commit(unit, ev);
      if (ev.outcome !== 'clean' || state.role === 'none') return finish(ev.outcome, ev);
      break;
    }

    // Frames the node accepts, then one hostile unit last. A snapshot stream parses only
    // its first frame (an offer is answered and the stream ended), so it gets just that.
    // Lengths are drawn from an exponential distribution: mostly short connections, some long.
    const mean = state.role === 'peer' ? 100 : 40;
    const length =
      state.role === 'snapshot'
        ? 1
        : 1 + Math.min(10 * mean, Math.floor(-Math.log(1 - rng.int(1e9) / 1e9) * mean));
    const applyBudget = (this.o.applyShare ?? 0.02) * this.o.frames;
    let done = 0;
    let tries = 0;
    while (done < length) {
      const last = done === length - 1 || tries > 12;
      const base = this.baseFor(state.role, state.peerId, !last);
      const r = rng.int(100);
      let unit: Unit;
      if (last) {
        if (r < 62) unit = mutate(this.ctx, rng, base, false);
        else if (r < 90) unit = disrupt(this.ctx, rng, base, this.baseFor(state.role, state.peerId));
        else unit = { bytes: base.bytes, kind: base.kind, mutations: [] };
      } else if (r < 10) unit = { bytes: base.bytes, kind: base.kind, mutations: [] };
      else if (r < 85) unit = mutate(this.ctx, rng, base, true);
      else unit = mutate(this.ctx, rng, base, false);
      const ev = this.model.evaluate(state, unit.bytes);
      if (ev.outcome === 'harmful') {
        withheld(ev);
        tries++;
        if (tries > 40) return finish('clean');
        continue;
      }
      if (ev.applies > 0 && this.appliesPlanned + ev.applies > applyBudget) {
        bump(stats.unitsWithheld, 'apply-budget');
        tries++;
        continue;
      }
      // A refusal before the planned end would waste the frames after it: try another.
      if (ev.outcome !== 'clean' && !last) {
        tries++;
        continue;
      }
      commit(unit, ev);
      if (ev.outcome !== 'clean') return finish(ev.outcome, ev);
      done++;
    }
    return finish('clean');
  }

  // ---------------------------------------------------------------- executing

  private execute(plan: Plan): Promise<void> {
    const stats = this.stats;
    const ctx = this.ctx;
    return new Promise((resolve) => {
      const socket = net.connect({ host: this.o.host, port: this.o.port });
      let weEnded = false;
      let responses = 0;
      let finished = false;
      const waitForAnswers = plan.role === 'client' && plan.end === 'clean' && plan.requests > 0;
      const replies =
        plan.role === 'client' || plan.role === 'snapshot'
          ? new FrameDecoder({
              maxFrameBytes: ctx.maxFrameBytes,
              maxEntryPayloadBytes: ctx.maxEntryPayloadBytes,
              clientResponses: plan.role === 'client',
              snapshotReplies: plan.role === 'snapshot',
            })
          : null;
      const end = (): void => {
        if (weEnded) return;
        weEnded = true;
        socket.end();
      };
      const timer = setTimeout(() => {
        stats.hung++;
        socket.destroy();
      }, this.o.connectionTimeoutMs ?? 20_000);
      socket.setNoDelay(true);
      socket.on('connect', () => {
        socket.write(plan.bytes);
        if (plan.end !== 'rejected' && !waitForAnswers) end();
      });
      socket.on('data', (chunk: Buffer) => {
        if (replies === null) return;
        replies.push(chunk);
        for (;;) {
          const f = replies.next();
          if (f === null) break;
          if (f instanceof FrameError) {
            stats.malformedFromNode++;
            socket.destroy();
            return;
          }
          if (f.type === FrameType.Handshake) {
            if (f.handshake.nodeId !== ctx.targetId || f.handshake.role !== HandshakeRole.Peer)
              stats.malformedFromNode++;
          } else if (f.type === FrameType.ClientResponse) {
            const resp = decodeClientResponse(f.body);
            if (resp instanceof ClientFrameError) stats.malformedFromNode++;
            else if (!resp.ok) stats.clientErrorResponses++;
            responses++;
            stats.clientResponses++;
            if (waitForAnswers && responses >= plan.requests) end();
          } else if (f.type === FrameType.SnapshotReply) {
            const reply = decodeSnapshotReply(f.body);
            if (reply instanceof SnapshotStreamError) stats.malformedFromNode++;
            else bump(stats.snapshotReplies, SnapshotReplyKind[reply.kind] ?? String(reply.kind));
          }
        }
      });
      socket.on('error', (err: NodeJS.ErrnoException) => bump(stats.socketErrors, err.code ?? err.message));
      socket.on('close', () => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        if (plan.end === 'rejected' && !weEnded) stats.closedByNode++;
        if (waitForAnswers) {
          stats.cleanClientConnections++;
          if (responses < plan.requests) stats.cleanClientConnectionsShort++;
        }
        resolve();
      });
    });
  }
}

/** The categories a run refused connections in, with zero for the others. */
export function categories(stats: FuzzStats, all: readonly Category[]): Record<Category, number> {
  const out = {} as Record<Category, number>;
  for (const c of all) out[c] = stats.rejectedByCategory[c] ?? 0;
  return out;
}
