/**
 * The fuzzer's model of what a node does with the bytes of one connection, built from the
 * node's own decoders (`FrameDecoder`, `decodeClientRequest`, `decodeValue`,
 * `decodeSnapshotSend`, `decodeSnapshotMeta`) and the checks its servers make around them
 * (`peer-server.ts`, `client-server.ts`, `snapshot-receiver.ts`): which frames it accepts,
 * where it closes the connection and which counter or log line says so.
 *
 * The fuzzer uses it to plan connections (a refused frame ends a connection, so frames
 * after it would never be parsed: the model says where that is, and the fuzzer puts the
 * refused frame last), to keep frames that would do real harm off the wire (a message in
 * the current term from an impostor, a membership change; see `Harm`), and as the oracle
 * the node's counters are checked against. A decoder that throws instead of returning its
 * error is recorded as a finding (`Evaluation.thrown`).
 */

import { MAX_ACCEPTED_TERM } from '../../src/main/peer-server.js';
import { MessageType } from '../../src/raft/messages.js';
import { parsePeerSpec } from '../../src/shared/address.js';
import { ClientFrameError, ClientOp, decodeClientRequest } from '../../src/shared/client-codec.js';
import { FrameDecoder, FrameError } from '../../src/shared/message-codec.js';
import { FrameType, HandshakeRole, SnapshotSendKind } from '../../src/shared/protocol.js';
import { decodeSnapshotSend, SnapshotStreamError } from '../../src/shared/snapshot-stream-codec.js';
import { decodeValue } from '../../src/shared/value-codec.js';
import { decodeSnapshotMeta } from '../../src/workers/fsm/snapshot-store.js';
import { LIVE_TERM_MARGIN } from './frames.js';

export interface ModelContext {
  readonly clusterId: string;
  readonly targetId: string;
  readonly memberIds: ReadonlySet<string>;
  /** The fuzzed node's term when the run started: a Raft message below it is stale. */
  readonly staleTermBelow: number;
  /** The fuzzed node's snapshot index when the run started: an offer at or below it is stale. */
  readonly snapshotIndex: number;
  readonly maxFrameBytes: number;
  readonly maxEntryPayloadBytes: number;
}

/** Who, in the node, refuses a connection, and the counter or log line that records it. */
export type Category =
  /** A FrameError before the handshake or on a peer connection: PeerServer.frameErrors. */
  | 'frame'
  /** A handshake from another cluster, or claiming the node's own id: PeerServer.connectionsRefused. */
  | 'refused'
  /**
   * A Raft message not from the node that shook hands, not to us, or with a term above
   * MAX_ACCEPTED_TERM: PeerServer.protocolErrors.
   */
  | 'protocol'
  /** A FrameError on a client connection: log "client connection closed: malformed frame". */
  | 'client-frame'
  /** A CLIENT_REQUEST body refused by decodeClientRequest: log "client connection closed: malformed request". */
  | 'client-request'
  /** A bad frame or message on a snapshot stream, or one out of turn: SnapshotStreamReceiver.protocolErrors. */
  | 'snapshot-breach'
  /** An offer refused (bad meta, stale term, stale snapshot): SnapshotStreamReceiver.refused. */
  | 'snapshot-refused';

export const CATEGORIES: readonly Category[] = [
  'frame',
  'refused',
  'protocol',
  'client-frame',
  'client-request',
  'snapshot-breach',
  'snapshot-refused',
];

/** Why a well-formed frame is kept off the wire. */
export type Harm =
  /** A peer handshake naming a member: it would replace that member's link to the node. */
  | 'member-impostor'
  /** A Raft message in the node's term or later (or term 0): the core would act on it. */
  | 'live-term'
  /** A membership change, a snapshot or a leadership transfer to a member. */
  | 'admin'
  /** An offer the node could accept: it would install the fuzzer's snapshot. */
  | 'live-offer'
  /** Not harmful, but what the node does depends on its term at that moment: the model cannot say. */
  | 'unpredictable'
  /**
   * A handshake announcing an AUTH frame (a mutated flags byte): the node, which has no
   * secret here, then waits for the proof, and whether it counts a refusal depends on when
   * the fuzzer's connection ends: the model cannot say. (The AUTH frame's decoding is
   * fuzzed in test/shared/message-codec.test.ts.)
   */
  | 'auth-announced';

export type Role = 'none' | 'peer' | 'client' | 'snapshot';

/** A connection's state between units: the role its handshake gave it. */
export interface ConnState {
  readonly role: Role;
  /** The accepted handshake frame's bytes, to prime a fresh decoder. */
  readonly handshake: Uint8Array | null;
  /** The node id the handshake named. */
  readonly peerId: string;
}

export const NEW_CONNECTION: ConnState = { role: 'none', handshake: null, peerId: '' };

/** What the node does with one more unit of bytes on a connection in `state`. */
export interface Evaluation {
  /**
   * clean: every byte is consumed by frames the node accepts; the connection stays open.
   * rejected: the node closes the connection at a frame (`category`, `code`); what follows is never parsed.
   * incomplete: the bytes end inside a frame: the node waits for more.
   * harmful: a frame would do real harm (`harm`): the unit must not be sent.
   */
  readonly outcome: 'clean' | 'rejected' | 'incomplete' | 'harmful';
  /**
   * Frames the node parses and accepts, the handshake included. A rejected unit's refused
   * frame (an offer refused, too) is not among them: the node parsed `accepted + 1` frames.
   */
  readonly accepted: number;
  /** Client requests among them: each is answered with one response. */
  readonly requests: number;
  /** Apply and ApplyBatch requests among them: each becomes a log entry. */
  readonly applies: number;
  /** Raft messages among them (delivered to the core, which ignores them as stale). */
  readonly messages: number;
  /** Accepted kinds, e.g. `Read`, `Apply`, `MsgApp`, `Handshake`, for the report. */
  readonly kinds: readonly string[];
  readonly category?: Category;
  /** A second counter the refusal moves (an offer refused as stale after the stream broke the rules). */
  readonly alsoCounted?: Category;
  /** The refusal's code (FrameError, ClientFrameError, SnapshotStreamError) or reason. */
  readonly code?: string;
  readonly harm?: Harm;
  /** The connection's state after the unit (clean only). */
  readonly state: ConnState;
  /** A decoder threw instead of returning an error: a bug. */
  readonly thrown?: string;
}

const utf8 = new TextDecoder('utf-8');

/** The decoder's private "awaiting a body" marker: a header was consumed and its body is not complete. */
function awaitingBody(decoder: FrameDecoder): boolean {
  return (decoder as unknown as { pendingBodyBytes: number }).pendingBodyBytes >= 0;
}

export class Model {
  readonly ctx: ModelContext;

  constructor(ctx: ModelContext) {
    this.ctx = ctx;
  }

  /** What the node makes of `unit` written on a connection in `state`. Never throws. */
  evaluate(state: ConnState, unit: Uint8Array): Evaluation {
    try {
      return this.run(state, unit);
    } catch (err) {
      return {
        outcome: 'rejected',
        accepted: 0,
        requests: 0,
        applies: 0,
        messages: 0,
        kinds: [],
        state,
        category: 'frame',
        code: 'THREW',
        thrown: err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err),
      };
    }
  }

  private run(state: ConnState, unit: Uint8Array): Evaluation {
    const ctx = this.ctx;
    const decoder = new FrameDecoder({
      maxFrameBytes: ctx.maxFrameBytes,
      maxEntryPayloadBytes: ctx.maxEntryPayloadBytes,
    });
    if (state.handshake !== null) {
      decoder.push(state.handshake);
      decoder.next();
    }
    decoder.push(unit);
    let current = state;
    let accepted = 0;
    let requests = 0;
    let applies = 0;
    let messages = 0;
    const kinds: string[] = [];
    const end = (
      outcome: Evaluation['outcome'],
      extra: { category?: Category; alsoCounted?: Category; code?: string; harm?: Harm } = {},
    ): Evaluation => ({ outcome, accepted, requests, applies, messages, kinds, state: current, ...extra });
    for (;;) {
      const frame = decoder.next();
      if (frame === null)
        return end(awaitingBody(decoder) || decoder.bufferedBytes > 0 ? 'incomplete' : 'clean');
      if (frame instanceof FrameError) {
        const category: Category =
          current.role === 'client'
            ? 'client-frame'
            : current.role === 'snapshot'
              ? 'snapshot-breach'
              : 'frame';
        return end('rejected', { category, code: frame.code });
      }
      if (frame.type === FrameType.Handshake) {
        // FrameDecoder lets a handshake through only as the first frame.
        const hs = frame.handshake;
        if (hs.clusterId !== ctx.clusterId)
          return end('rejected', { category: 'refused', code: 'other-cluster' });
        if (hs.authFollows === true) return end('harmful', { harm: 'auth-announced' });
        if (hs.role === HandshakeRole.Client) {
          current = { role: 'client', handshake: frameBytesOf(unit), peerId: hs.nodeId };
        } else {
          if (hs.nodeId === ctx.targetId) return end('rejected', { category: 'refused', code: 'own-id' });
          if (hs.role === HandshakeRole.Peer && ctx.memberIds.has(hs.nodeId))
            return end('harmful', { harm: 'member-impostor' });
          current = {
            role: hs.role === HandshakeRole.Peer ? 'peer' : 'snapshot',
            handshake: frameBytesOf(unit),
            peerId: hs.nodeId,
          };
        }
        accepted++;
        kinds.push(`Handshake-${current.role}`);
        continue;
      }
      if (frame.type === FrameType.RaftMessage) {
        const m = frame.message;
        if (m.from !== current.peerId || m.to !== ctx.targetId)
          return end('rejected', { category: 'protocol', code: 'route' });
        if (m.term > MAX_ACCEPTED_TERM) return end('rejected', { category: 'protocol', code: 'term' });
        if (m.term === 0 || m.term >= ctx.staleTermBelow) return end('harmful', { harm: 'live-term' });
        accepted++;
        messages++;
        kinds.push(MessageType[m.type] ?? String(m.type));
        continue;
      }
      if (frame.type === FrameType.ClientRequest) {
        const req = decodeClientRequest(frame.body);
        if (req instanceof ClientFrameError)
          return end('rejected', { category: 'client-request', code: req.code });
        switch (req.op) {
          case ClientOp.Read:
            try {
              decodeValue(req.payload, 0, req.payload.byteLength);
              kinds.push('Read');
            } catch {
              kinds.push('Read-bad-query');
            }
            break;
          case ClientOp.Apply:
          case ClientOp.ApplyBatch:
          case ClientOp.SessionRegister:
          case ClientOp.SessionApply:
          case ClientOp.SessionApplyBatch:
            applies++;
            kinds.push(ClientOp[req.op]);
            break;
          case ClientOp.Status:
            kinds.push('Status');
            break;
          case ClientOp.Transfer:
            if (ctx.memberIds.has(utf8.decode(req.payload))) return end('harmful', { harm: 'admin' });
            kinds.push('Transfer-nobody');
            break;
          case ClientOp.AddPeer:
          case ClientOp.AddLearner:
            try {
              parsePeerSpec(utf8.decode(req.payload));
              return end('harmful', { harm: 'admin' });
            } catch {
              kinds.push(`${ClientOp[req.op]}-bad-spec`);
            }
            break;
          default:
            // RemovePeer, Snapshot: never sent well-formed.
            return end('harmful', { harm: 'admin' });
        }
        accepted++;
        requests++;
        continue;
      }
      if (frame.type === FrameType.SnapshotSend) {
        // The stream opens with an Offer; whatever its fate, the node answers and ends
        // the stream, so nothing after it is parsed.
        const m = decodeSnapshotSend(frame.body);
        if (m instanceof SnapshotStreamError)
          return end('rejected', { category: 'snapshot-breach', code: m.code });
        if (m.kind !== SnapshotSendKind.Offer)
          return end('rejected', { category: 'snapshot-breach', code: 'out-of-turn' });
        let metaIndex: number;
        try {
          metaIndex = decodeSnapshotMeta(m.metaBytes, 'fuzz').meta.index;
        } catch {
          kinds.push('Offer-bad-meta');
          return end('rejected', { category: 'snapshot-refused', code: 'invalid-meta' });
        }
        // A stale leader term is refused at once, and the stream ended: nothing after the
        // offer is parsed.
        if (m.leaderTerm < ctx.staleTermBelow) {
          kinds.push('Offer-stale-term');
          return end('rejected', { category: 'snapshot-refused', code: 'stale-term' });
        }
        // Between the node's term at the start and far above it: the node's term may
        // have passed it meanwhile, so what the node does is not known.
        if (m.leaderTerm < ctx.staleTermBelow + LIVE_TERM_MARGIN)
          return end('harmful', { harm: 'unpredictable' });
        if (metaIndex > ctx.snapshotIndex) return end('harmful', { harm: 'live-offer' });
        // Accepted: the state machine thread is asked to begin, and will refuse the
        // snapshot as stale. Meanwhile the stream is read on: any frame after the offer
        // is out of turn (a breach, and the refusal is still counted when it comes).
        kinds.push('Offer-stale-snapshot');
        const after = decoder.next();
        if (after === null) return end('rejected', { category: 'snapshot-refused', code: 'stale-snapshot' });
        // A unit this large may reach the node in two reads, the second after the refusal.
        if (unit.byteLength > 8192) return end('harmful', { harm: 'unpredictable' });
        return end('rejected', {
          category: 'snapshot-breach',
          code: 'after-offer',
          alsoCounted: 'snapshot-refused',
        });
      }
      // A decoder on the accepting side yields nothing else.
      return end('rejected', { category: 'frame', code: `unexpected-${frame.type}` });
    }
  }
}

/** The bytes of the handshake just decoded: the first frame of `unit`. */
function frameBytesOf(unit: Uint8Array): Uint8Array {
  const bodyBytes =
    (unit[0] as number) |
    ((unit[1] as number) << 8) |
    ((unit[2] as number) << 16) |
    ((unit[3] as number) << 24);
  return unit.slice(0, 5 + (bodyBytes >>> 0));
}
