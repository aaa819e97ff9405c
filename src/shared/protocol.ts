/**
 * Every stored and wire format of raftline, declared in one place: type codes, field
 * offsets, sizes and limits, each with its picture and the reason for each field. The
 * codecs (`entry-codec.ts`, `message-codec.ts`) implement exactly what is written here;
 * no other file invents a byte layout (DESIGN.md, "Crossing threads").
 *
 * Conventions for every layout below:
 * - Little-endian throughout: every machine we run on is little-endian, so a reader that
 *   wants a `DataView` or a typed array over a field pays no byte swap.
 * - `u64` holds a JavaScript number in 0..2^53-1 (`Number.MAX_SAFE_INTEGER`): indexes, terms
 *   and contexts are plain numbers in the core. 64 bits on the wire keep the format
 *   honest for other languages; a decoder refuses a value above 2^53-1 instead of rounding it.
 * - Strings (node ids, the cluster id) are UTF-8 with a one-byte length in front, so no
 *   id is longer than 255 bytes (the same limit as the conf-change payload in
 *   `src/raft/conf-change.ts`). Decoders refuse invalid UTF-8 instead of substituting U+FFFD,
 *   which would silently rename a node.
 * - Reserved bytes are written as zero and a decoder refuses anything else: a later
 *   version can then give them a meaning, and an old reader refuses what it cannot read
 *   rather than misreading it.
 *
 * The ring's own header and framing are drawn in `ring.ts` (it is one generic structure);
 * what travels inside the rings, the control block and the log window are declared below.
 * `raft_meta` is laid out in `src/workers/log-writer/meta-store.ts`, the snapshot meta
 * file in `src/workers/fsm/snapshot-store.ts`.
 */

import { EntryType } from '../raft/types.js';

/** Largest value a `u64` field may hold: JavaScript numbers are exact up to here. */
export const MAX_U64_SAFE = Number.MAX_SAFE_INTEGER;

/** Node ids and the cluster id are prefixed by one length byte: at most this many UTF-8 bytes. */
export const MAX_ID_BYTES = 255;

// ================================================================== stored entry record
//
// One log entry, as written to a segment file, held in the log window and sent inside a
// RAFT_MESSAGE frame: the same bytes everywhere, so a follower writes what it received
// and nobody encodes an entry twice (DESIGN.md, "On disk" and "On the wire").
//
//   0         4         8                   16                  24   25        28        32
//   +---------+---------+-------------------+-------------------+----+---------+---------+-----------
//   | payload | header  |       term        |       index       |type| reserved| payload | payload
//   | Bytes   | CRC32C  |       u64         |       u64         | u8 | 3 × 0   | CRC32C  | (payloadBytes)
//   | u32     | u32     |                   |                   |    |         | u32     |
//   +---------+---------+-------------------+-------------------+----+---------+---------+-----------
//   '--- header CRC covers bytes [0,4) and [8,32): every header byte but itself ---'
//                                                                  payload CRC covers the payload only
//
// - payloadBytes: how many payload bytes follow the 32-byte header. A reader learns the
//   record's extent from the first four bytes.
// - headerCrc: CRC32C over the other 28 header bytes, checked BEFORE the length is
//   trusted. This is why there are two checksums instead of one covering the whole record:
//   with a single CRC, a bit flip that enlarges payloadBytes in the middle of a segment
//   makes the record appear to run past the end of the file, which is exactly what a torn
//   write at the tail looks like, and recovery would silently cut committed entries. With
//   the header checked first, "the buffer ends before this record does" (torn) is only
//   reported for a header that is intact, and a damaged length is reported as corruption.
//   braft's segment header makes the same split (header checksum + data checksum).
//   Because the header CRC covers payloadCrc, one header check plus one payload check
//   covers every byte of the record exactly once.
// - term, index: the entry's term and index, u64 (see the conventions above). They sit at
//   8-byte-aligned offsets within the record, so a record placed at an 8-aligned offset
//   can be read through aligned 64-bit views.
// - type: `EntryType` (Normal 0, ConfChange 1, Noop 2, Batch 3, Session 4). A decoder
//   refuses other codes.
// - reserved: three zero bytes that pad the header to 32, so payloadCrc is 4-aligned and
//   the payload starts 32-aligned relative to the record.
// - payloadCrc: CRC32C of the payload, so a torn or rotted payload is detected.
//
// Records are packed back to back with no padding between them: the payload length is the
// user's, padding every 16-byte command to a multiple of 8 would add up to 7 bytes to a
// 48-byte record, and the codecs read fields byte by byte, which costs the same at any
// offset. (The core's flow control charges `ENTRY_OVERHEAD_BYTES` = 24 per entry in
// src/raft/types.ts; the real overhead is `ENTRY_HEADER_BYTES` = 32. Only the budget's
// accuracy depends on it, not the format.)
//
// This is DESIGN.md's "length, CRC32C, term, index, type, payload" with the checksum split
// in two, for the reason given under headerCrc.
//
// Validity: index >= 1 and term >= 1 (index 0 / term 0 mean "no entry"); both <= 2^53-1;
// type known; reserved bytes zero; payloadBytes <= the configured maximum.

/** Size of the fixed header in front of every stored entry's payload. */
export const ENTRY_HEADER_BYTES = 32;
/** Offset of `payloadBytes` (u32): the number of payload bytes after the header. */
export const ENTRY_PAYLOAD_BYTES_OFFSET = 0;
/** Offset of `headerCrc` (u32): CRC32C over header bytes [0,4) and [8,32). */
export const ENTRY_HEADER_CRC_OFFSET = 4;
/** Offset of `term` (u64). */
export const ENTRY_TERM_OFFSET = 8;
/** Offset of `index` (u64). */
export const ENTRY_INDEX_OFFSET = 16;
/** Offset of `type` (u8, an `EntryType`). */
export const ENTRY_TYPE_OFFSET = 24;
/** Offset of the three reserved bytes, which must be zero. */
export const ENTRY_RESERVED_OFFSET = 25;
/** Length of the reserved run. */
export const ENTRY_RESERVED_BYTES = 3;
/** Offset of `payloadCrc` (u32): CRC32C of the payload. */
export const ENTRY_PAYLOAD_CRC_OFFSET = 28;
/** Where the header CRC's coverage resumes after skipping the CRC field itself. */
export const ENTRY_HEADER_CRC_RESUME_OFFSET = ENTRY_TERM_OFFSET;

/** The entry types a decoder accepts: the numbers of `EntryType`, which are part of this format. */
export const KNOWN_ENTRY_TYPES: readonly number[] = [
  EntryType.Normal,
  EntryType.ConfChange,
  EntryType.Noop,
  EntryType.Batch,
  EntryType.Session,
];

// ------------------------------------------------------------------ session entry payload
//
// The payload of an `EntryType.Session` entry: one write of a client session (Raft thesis
// §6.3, exactly-once writes). The session header travels in the log entry itself, not beside
// it, so every replica, and a node replaying its log after a restart, makes the same
// dedupe decision from the same bytes. Laid out by `session-codec.ts`.
//
//   0                16         24          32             40     41         48
//   +----------------+----------+-----------+--------------+------+----------+-------------
//   | clientId       | seq      | ackBelow  | leaderTimeMs | kind | reserved | body
//   | 16 bytes       | u64      | u64       | u64          | u8   | 7 × 0    | (to the end)
//   +----------------+----------+-----------+--------------+------+----------+-------------
//   '--- bytes [0,32) are the client's SessionApply header, copied as they came ---'
//
// - clientId: 16 random bytes the client chose (`crypto.randomBytes`): 2^128 ids, so two
//   clients never pick the same one by chance. All zero is refused (an unset id).
// - seq: the client's number for this write, from 1, one per `apply`/`applyBatch` call;
//   every retry of a write carries the same seq. Register carries 0.
// - ackBelow: the lowest seq the client has not had answered yet, 1..seq: the node may
//   forget the results below it (thesis: "the client can tell the cluster which responses
//   it has received"). Register carries 0.
// - leaderTimeMs: the leader's wall clock (ms since the epoch) when it proposed the entry.
//   Session expiry is judged by these times, never by a replica's own clock, so every
//   replica expires the same sessions at the same entry. Replicas take the largest time
//   seen so far in log order, so a new leader whose clock is behind moves nothing back.
// - kind: a `SessionEntryKind`. A decoder refuses other codes.
// - reserved: pads the header to 48; zero, refused otherwise.
// - body: Register: empty. Command: the command bytes, exactly as the state machine sees
//   them. Batch: a batch payload (`batch-codec.ts`), its commands applied one by one.
//
// The result a session entry answers its proposer with is a value-codec array: `[0, r]`
// (applied now, or earlier: r is the stored result) or `[1, code, message]` (refused,
// e.g. ERR_RAFT_SESSION_EXPIRED). The node's client server unwraps it; only it proposes
// session entries, so a user's result never has to be told apart from this wrapping.

/** What a session entry does. The numbers are part of the stored format: never renumber. */
export enum SessionEntryKind {
  /** Opens the client's session (or refreshes it if it is open): no command. */
  Register = 1,
  /** One command, applied at most once per (client, seq). */
  Command = 2,
  /** A batch payload, applied at most once per (client, seq); its result is the array of results. */
  Batch = 3,
}
/** Bytes of a client id. */
export const SESSION_CLIENT_ID_BYTES = 16;
/** Offset of `clientId` in the session entry payload (and in a SessionApply request's payload). */
export const SESSION_CLIENT_ID_OFFSET = 0;
/** Offset of `seq` (u64). */
export const SESSION_SEQ_OFFSET = 16;
/** Offset of `ackBelow` (u64). */
export const SESSION_ACK_BELOW_OFFSET = 24;
/** Size of the client's part of the header: what a SessionApply request carries before its command. */
export const SESSION_REQUEST_HEADER_BYTES = 32;
/** Offset of `leaderTimeMs` (u64). */
export const SESSION_LEADER_TIME_OFFSET = 32;
/** Offset of `kind` (u8, a `SessionEntryKind`). */
export const SESSION_KIND_OFFSET = 40;
/** Offset of the seven reserved bytes, which must be zero. */
export const SESSION_RESERVED_OFFSET = 41;
/** Length of the reserved run. */
export const SESSION_RESERVED_BYTES = 7;
/** Size of the session entry header; the body follows. */
export const SESSION_ENTRY_HEADER_BYTES = 48;
/** First element of a session entry's result: the write was applied (now or before). */
export const SESSION_RESULT_APPLIED = 0;
/** First element of a session entry's result: the write was refused (code and message follow). */
export const SESSION_RESULT_REFUSED = 1;

/**
 * Hard ceiling of the format: payloadBytes is a u32. No configuration may exceed it.
 */
export const ENTRY_PAYLOAD_BYTES_LIMIT = 0xffff_ffff;

/**
 * Default largest payload a decoder accepts (16 MiB). A length above the configured
 * maximum is refused before anything is read or allocated from it. Commands are usually
 * small; a state machine that needs bigger ones raises this on every node alike.
 */
export const DEFAULT_MAX_ENTRY_PAYLOAD_BYTES = 16 * 1024 * 1024;

/** The configurable limits of an entry decoder. */
export interface EntryLimits {
  /** Largest accepted payload, in bytes; at most `ENTRY_PAYLOAD_BYTES_LIMIT`. */
  readonly maxEntryPayloadBytes: number;
}

/** The limits used when a caller gives none. */
export const DEFAULT_ENTRY_LIMITS: EntryLimits = Object.freeze({
  maxEntryPayloadBytes: DEFAULT_MAX_ENTRY_PAYLOAD_BYTES,
});

// ================================================================== wire frame header
//
// A TCP connection carries a stream of length-prefixed frames. The first frame in each
// direction is a HANDSHAKE; after that, frames of the connection's role.
//
//   0                   4      5
//   +-------------------+------+--------------------------------
//   | bodyBytes u32     | type | body (bodyBytes bytes)
//   +-------------------+------+--------------------------------
//
// - bodyBytes: the length of the body after this 5-byte header, so a reader knows how many
//   bytes to wait for. The whole frame, header included, must fit the receiver's
//   `maxFrameBytes`; a larger value is refused as soon as the header has arrived, before
//   any byte of the body is buffered for it.
// - type: a `FrameType`. Zero is never valid, so a run of zero bytes is refused.
//
// There is no per-frame version byte: the version is agreed once, in the handshake, and
// cannot change within a connection; checking it a million times a second buys nothing.
// There is no per-frame checksum either: TCP checksums the transport, and entries carry
// their own CRCs, which the receiver verifies before it writes them.

/** Size of the frame header: u32 bodyBytes + u8 type. */
export const FRAME_HEADER_BYTES = 5;
/** Offset of `bodyBytes` (u32) in the frame header. */
export const FRAME_BODY_BYTES_OFFSET = 0;
/** Offset of `type` (u8, a `FrameType`) in the frame header. */
export const FRAME_TYPE_OFFSET = 4;

/** Hard ceiling of the format: bodyBytes is a u32. */
export const FRAME_BYTES_LIMIT = 0xffff_ffff;

/**
 * Default largest frame (header included) a receiver accepts: 64 MiB. It must hold the
 * largest RAFT_MESSAGE the sender may build: the core always sends at least one entry per
 * MsgApp even when that entry alone exceeds `maxSizePerMsgBytes`, so the frame limit must
 * exceed the entry limit by `RAFT_MESSAGE_MAX_OVERHEAD_BYTES` (checked by `FrameDecoder`).
 */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** What a frame carries. The numbers are part of the wire format: never renumber. */
export enum FrameType {
  /** The first frame of a connection, in each direction: magic, version, role, cluster and node id. */
  Handshake = 1,
  /** One Raft message between peers (`src/raft/messages.ts`), entries as stored records. */
  RaftMessage = 2,
  /**
   * Leader to follower on a snapshot stream (a connection whose handshake has role
   * snapshot): Offer, Chunk or Done ("snapshot stream" below).
   */
  SnapshotSend = 3,
  /** Follower to leader on a snapshot stream: Resume, Refuse, Installed or Failed ("snapshot stream" below). */
  SnapshotReply = 4,
  /**
   * The proof of a shared secret (HMAC-SHA256), right after a HANDSHAKE whose flags say
   * one follows, and nowhere else ("AUTH body" below).
   */
  Auth = 5,
  /**
   * A `RaftClient`'s request, carrying a request id so that many are in flight on one
   * connection ("client frames" below). Only on a connection whose handshake has role client.
   */
  ClientRequest = 16,
  /** The node's reply to one request id; replies come back in any order ("client frames" below). */
  ClientResponse = 17,
}

/**
 * Frame types whose codes are taken but whose bodies are not defined yet. A decoder
 * refuses them. None at present (3 and 4 were held for the snapshot stream, which now
 * defines them); kept so that a future reservation has its place.
 */
export const RESERVED_FRAME_TYPES: readonly FrameType[] = [];

// ================================================================== HANDSHAKE body
//
//   0           4         6      7        8                 8+c      9+c
//   +-----------+---------+------+--------+-----------------+--------+---------------
//   | magic     | version | role | c =    | clusterId       | n =    | nodeId
//   | "RFTL"    | u16     | u8   | u8 len | (c bytes UTF-8) | u8 len | (n bytes UTF-8)
//   +-----------+---------+------+--------+-----------------+--------+---------------
//
//   9+c+n   10+c+n               14+c+n                          46+c+n
//   +-------+--------------------+-------------------------------+
//   | flags | electionTimeoutMs  | nonce                         |
//   | u8    | u32                | 32 bytes                      |
//   +-------+--------------------+-------------------------------+
//
// - magic: the bytes "RFTL", so a connection from something that is not raftline (an HTTP
//   probe, another cluster software) is recognised and refused at once.
// - version: `PROTOCOL_VERSION`. A receiver refuses any other: both sides of a cluster run
//   the same release, and a clear refusal beats a misread frame.
// - role: peer (a Raft node's replicator), client (a `RaftClient`) or snapshot (a leader's
//   replicator streaming a snapshot, "snapshot stream" below): a connection to the wrong
//   port is refused instead of being fed frames it does not expect.
// - clusterId: a peer from another cluster is refused (DESIGN.md, "On the wire"). Not empty.
// - nodeId: who is speaking. Not empty for a peer or a snapshot stream; a client may
//   leave it empty.
// - flags: `HANDSHAKE_FLAG_AUTH_FOLLOWS`, "my next frame is an AUTH frame"; other bits are
//   refused. A node sets it when it has a cluster secret, a client also when it has only
//   the admin secret. The receiver then knows at once whether a proof is coming, instead
//   of waiting for one that never will.
// - electionTimeoutMs: the sender's election timeout, 0 for a client. A leader's lease
//   is only safe if no voter can elect a new leader sooner than the lease runs out: a
//   node that sees a peer with a timeout other than its own serves lease reads as
//   ReadIndex instead (`peer-server.ts`).
// - nonce: 32 random bytes per connection, each side its own; the proofs of the AUTH
//   frames cover both, so a proof recorded on one connection is worthless on another.
//   Zero when the sender needs no proof (no secret anywhere), which is then harmless.
//
// The connecting side sends its handshake first; the accepting side checks it and answers
// with its own, so both sides check the cluster id. On a mismatch the checking side
// closes the connection. With a secret, the exchange continues ("AUTH body" below).

/** The four magic bytes at the start of every HANDSHAKE body: ASCII "RFTL". */
export const HANDSHAKE_MAGIC: readonly number[] = Object.freeze([0x52, 0x46, 0x54, 0x4c]);
/**
 * The wire protocol version this code speaks. Bump it on any change to a frame layout.
 * 2: the handshake's flags, election timeout and nonce; the AUTH frame.
 */
export const PROTOCOL_VERSION = 2;
/** Offset of the magic (4 bytes) in the HANDSHAKE body. */
export const HANDSHAKE_MAGIC_OFFSET = 0;
/** Offset of `version` (u16). */
export const HANDSHAKE_VERSION_OFFSET = 4;
/** Offset of `role` (u8, a `HandshakeRole`). */
export const HANDSHAKE_ROLE_OFFSET = 6;
/** Offset of the cluster id's length byte; the id and then the node id follow. */
export const HANDSHAKE_CLUSTER_ID_OFFSET = 7;
/** Bytes of the fixed tail after the node id: flags u8, electionTimeoutMs u32, nonce. */
export const HANDSHAKE_TAIL_BYTES = 1 + 4 + 32;
/** Offsets within that tail. */
export const HANDSHAKE_TAIL_FLAGS_OFFSET = 0;
export const HANDSHAKE_TAIL_ELECTION_TIMEOUT_OFFSET = 1;
export const HANDSHAKE_TAIL_NONCE_OFFSET = 5;
/** Bytes of a handshake nonce. */
export const HANDSHAKE_NONCE_BYTES = 32;
/** The sender's next frame is an AUTH frame. */
export const HANDSHAKE_FLAG_AUTH_FOLLOWS = 0x01;
/** Every flag this version defines. */
export const HANDSHAKE_FLAGS_KNOWN = HANDSHAKE_FLAG_AUTH_FOLLOWS;
/** Smallest HANDSHAKE body: everything but the two ids' bytes. */
export const HANDSHAKE_MIN_BODY_BYTES = 9 + HANDSHAKE_TAIL_BYTES;
/** Largest HANDSHAKE body: both ids at their longest. A larger first frame is refused at its header. */
export const HANDSHAKE_MAX_BODY_BYTES = HANDSHAKE_MIN_BODY_BYTES + 2 * MAX_ID_BYTES;

// ================================================================== AUTH body
//
//   0       1          4                          36                          68
//   +-------+----------+--------------------------+---------------------------+
//   | flags | 3 × 0    | proof (32 bytes)         | adminProof (32 bytes)     |
//   | u8    |          | if AUTH_FLAG_PROOF       | if AUTH_FLAG_ADMIN_PROOF  |
//   +-------+----------+--------------------------+---------------------------+
//
// The body is exactly 4 bytes plus 32 per flag set; anything else is refused.
//
// - proof: HMAC-SHA256 under the cluster secret over both handshakes' nonces, the role,
//   the cluster id, both node ids, both election timeouts and which side proves
//   (`src/shared/auth.ts` builds the exact input). Both sides prove: a node refuses a
//   connector without it, and a connector (a peer, a snapshot stream, a client) refuses a
//   node without it, so nobody talks to an impostor.
// - adminProof: the same under the admin secret, from a client only: it may then ask for
//   the operations that change the cluster (transfer, membership, snapshot).
//
// Order on a connection with a secret (1.5 round trips, as the connector waits anyway):
//
//   connector                                       listener
//   HANDSHAKE {flags: AUTH_FOLLOWS, nonceC}  ──►
//                                            ◄──    HANDSHAKE {flags: AUTH_FOLLOWS, nonceS}
//                                            ◄──    AUTH {listener's proof}
//   checks the listener's proof
//   AUTH {connector's proof [, adminProof]}  ──►    checks it, then serves the role's frames
//   the role's frames (requests, Offer, ...) ──►
//
// A failed check closes the connection. The listener proves first because the connector
// must check whom it talks to before it sends anything that matters; the listener's
// proof is useless to an attacker elsewhere, since it covers the attacker's nonce AND
// the listener's fresh one and says "listener". Without TLS an attacker on the path can
// still relay a whole connection: the proofs authenticate, they do not encrypt.

/** Offset of `flags` (u8) in the AUTH body. */
export const AUTH_FLAGS_OFFSET = 0;
/** Offset of the first proof. */
export const AUTH_PROOFS_OFFSET = 4;
/** Bytes of one proof: an HMAC-SHA256. */
export const AUTH_PROOF_BYTES = 32;
/** A proof under the cluster secret is present. */
export const AUTH_FLAG_PROOF = 0x01;
/** A proof under the admin secret is present (after the cluster proof, if any). */
export const AUTH_FLAG_ADMIN_PROOF = 0x02;
/** Every flag this version defines. */
export const AUTH_FLAGS_KNOWN = AUTH_FLAG_PROOF | AUTH_FLAG_ADMIN_PROOF;
/** Largest AUTH body: both proofs. */
export const AUTH_MAX_BODY_BYTES = AUTH_PROOFS_OFFSET + 2 * AUTH_PROOF_BYTES;

/** Who opened a connection. The numbers are part of the wire format: never renumber. */
export enum HandshakeRole {
  /** Another node of the cluster: RAFT_MESSAGE frames follow. */
  Peer = 1,
  /** A `RaftClient`: CLIENT_REQUEST frames follow (see "client frames" below). */
  Client = 2,
  /**
   * A leader streaming a snapshot to this node on a connection of its own: SNAPSHOT_SEND
   * frames follow, SNAPSHOT_REPLY frames answer ("snapshot stream" below).
   */
  Snapshot = 3,
}

// ================================================================== RAFT_MESSAGE body
//
// One `Message` of `src/raft/messages.ts`. Every field is always present, at a fixed
// offset, whatever the message type: a heartbeat pays ~40 bytes it does not need, and in
// exchange the codec has no per-type branches to get wrong, and any field the core
// starts using on a new message type already travels.
//
//   0      1       2      3      4            12           20           28
//   +------+-------+------+------+------------+------------+------------+-----------
//   | type | flags | f =  | t =  | term       | logTerm    | index      | commit   ...
//   | u8   | u8    | u8   | u8   | u64        | u64        | u64        | u64
//   +------+-------+------+------+------------+------------+------------+-----------
//   36           44           52           56        56+f      56+f+t
//   +------------+------------+------------+---------+---------+----------------+-----------
//   | rejectHint | context    | entryCount | from    | to      | snapshot meta  | entries:
//   | u64        | u64        | u32        | f bytes | t bytes | (if flags.bit1)| entryCount stored
//   +------------+------------+------------+---------+---------+----------------+ records, to the end
//
// - type: `MessageType` (1..12). A decoder refuses other codes.
// - flags: bit 0 = reject, bit 1 = a snapshot meta follows the ids. Other bits zero.
// - f, t: UTF-8 lengths of `from` and `to`; the ids follow the fixed part so that every
//   number sits at a fixed offset.
// - term, logTerm, index, commit, rejectHint: as in `Message`; u64.
// - context: `Message.context`, a non-negative integer (heartbeat round, read id, or
//   CAMPAIGN_TRANSFER); u64.
// - entryCount: how many records follow. It is a cross-check, not an allocation size: the
//   records must be exactly this many and fill the body to its last byte.
// - snapshot meta (MsgSnap): see below. It comes before the entries so the entries run to
//   the end of the frame and their bytes form one contiguous span, which a follower copies
//   as is into its log window.
// - entries: stored entry records, byte for byte as above, each verified (both CRCs) on
//   arrival before the follower writes it.

/** Offset of `type` (u8, a `MessageType`) in the RAFT_MESSAGE body. */
export const MESSAGE_TYPE_OFFSET = 0;
/** Offset of `flags` (u8, `MESSAGE_FLAG_*`). */
export const MESSAGE_FLAGS_OFFSET = 1;
/** Offset of the UTF-8 length of `from` (u8). */
export const MESSAGE_FROM_BYTES_OFFSET = 2;
/** Offset of the UTF-8 length of `to` (u8). */
export const MESSAGE_TO_BYTES_OFFSET = 3;
/** Offset of `term` (u64). */
export const MESSAGE_TERM_OFFSET = 4;
/** Offset of `logTerm` (u64). */
export const MESSAGE_LOG_TERM_OFFSET = 12;
/** Offset of `index` (u64). */
export const MESSAGE_INDEX_OFFSET = 20;
/** Offset of `commit` (u64). */
export const MESSAGE_COMMIT_OFFSET = 28;
/** Offset of `rejectHint` (u64). */
export const MESSAGE_REJECT_HINT_OFFSET = 36;
/** Offset of `context` (u64). */
export const MESSAGE_CONTEXT_OFFSET = 44;
/** Offset of `entryCount` (u32). */
export const MESSAGE_ENTRY_COUNT_OFFSET = 52;
/** Size of the fixed part; `from` starts here. */
export const MESSAGE_FIXED_BYTES = 56;

/** `flags` bit: `Message.reject`. */
export const MESSAGE_FLAG_REJECT = 0x01;
/** `flags` bit: a snapshot meta follows the ids (`Message.snapshot` is not null). */
export const MESSAGE_FLAG_SNAPSHOT = 0x02;
/** Every defined `flags` bit; a decoder refuses the others. */
export const MESSAGE_FLAGS_KNOWN = MESSAGE_FLAG_REJECT | MESSAGE_FLAG_SNAPSHOT;

// ------------------------------------------------------------------ snapshot meta
//
// `SnapshotMeta` with its `ConfState`, inside a RAFT_MESSAGE whose snapshot flag is set.
//
//   0            8            16      17         19          21         23
//   +------------+------------+-------+----------+-----------+----------+-----------------
//   | index      | term       | flags | voters   | outgoing  | learners | ids: voters, then
//   | u64        | u64        | u8    | u16 count| u16 count | u16 count| outgoing, then learners,
//   +------------+------------+-------+----------+-----------+----------+ each u8 len + UTF-8
//
// - index, term: the last entry the snapshot covers.
// - flags: bit 0 = `ConfState.autoLeave`; other bits zero.
// - counts: u16, since learners may outnumber 255; each id costs at least one byte, so a
//   count can never make a decoder allocate beyond the frame it already holds.

/** Offset of the snapshot's `index` (u64) within the snapshot meta. */
export const SNAPSHOT_INDEX_OFFSET = 0;
/** Offset of the snapshot's `term` (u64). */
export const SNAPSHOT_TERM_OFFSET = 8;
/** Offset of `flags` (u8, `SNAPSHOT_FLAG_*`). */
export const SNAPSHOT_FLAGS_OFFSET = 16;
/** Offset of the voter count (u16). */
export const SNAPSHOT_VOTERS_OFFSET = 17;
/** Offset of the outgoing-voter count (u16). */
export const SNAPSHOT_OUTGOING_OFFSET = 19;
/** Offset of the learner count (u16). */
export const SNAPSHOT_LEARNERS_OFFSET = 21;
/** Size of the fixed part of the snapshot meta; the ids follow. */
export const SNAPSHOT_FIXED_BYTES = 23;
/** Snapshot `flags` bit: `ConfState.autoLeave`. */
export const SNAPSHOT_FLAG_AUTO_LEAVE = 0x01;
/** Largest count of any one id list. */
export const MAX_CONF_IDS = 0xffff;

/**
 * The most bytes a RAFT_MESSAGE frame adds around its entry records when it carries no
 * snapshot: frame header, fixed part and both ids at their longest. A receiver's
 * `maxFrameBytes` must be at least this plus one largest record.
 */
export const RAFT_MESSAGE_MAX_OVERHEAD_BYTES = FRAME_HEADER_BYTES + MESSAGE_FIXED_BYTES + 2 * MAX_ID_BYTES;

// ================================================================== snapshot stream
//
// Raft's InstallSnapshot, braft's chunked copy: a follower behind the leader's
// compacted log receives the leader's snapshot files. They travel on a connection of
// their own, opened by the leader's replicator to the follower's listen address with a
// HANDSHAKE of role snapshot, so that heartbeats and AppendEntries keep flowing on the
// peer link during a transfer of many seconds and the follower starts no election. The
// follower answers with its own handshake (role peer, its node id), which the leader
// checks names the node it meant. Then the leader sends only SNAPSHOT_SEND frames and
// the follower only SNAPSHOT_REPLY frames (`FrameDecoder` refuses anything else):
//
//   leader                                        follower
//   Offer {leaderTerm, meta file}      ──►        opens (or reopens) the receive directory
//                                      ◄──        Resume {maxChunkBytes, bytes held per file}
//                                                 or Refuse {reason, latestIndex, message}
//   Chunk {file, offset, data}  × N    ──►        written in order; a gap is refused
//   Done                               ──►        every CRC32C checked, published atomically
//                                      ◄──        Installed {index, term} or Failed {reason, message}
//
// Resuming: the follower's store keeps what it received across connections and restarts,
// keyed by the meta's index and CRC. After a cut the leader reconnects, offers the same
// meta, and the Resume tells it where each file continues; a file already whole is
// skipped. So a cut costs at most the bytes that were in flight, not the transfer.
//
// Every body starts with its kind byte; numbers sit at 4- or 8-aligned offsets after it.
//
// SNAPSHOT_SEND bodies (leader → follower):
//
//   Offer   0      1          8             16
//           +------+----------+-------------+------------------------------------------
//           | 1    | 7 × 0    | leaderTerm  | the snapshot's meta file, exactly as stored
//           | u8   |          | u64         | (snapshot-store.ts), to the end of the body
//           +------+----------+-------------+------------------------------------------
//   Chunk   0      1          4             8             16
//           +------+----------+-------------+-------------+-----------------------------
//           | 2    | 3 × 0    | fileIndex   | offsetBytes | data, to the end of the body
//           | u8   |          | u32         | u64         | (at most Resume.maxChunkBytes)
//           +------+----------+-------------+-------------+-----------------------------
//   Done    0      1          8
//           | 3    | 7 × 0    |      no more chunks: verify and publish
//
// - leaderTerm: the term in which the leader sends; the follower's node may refuse a
//   leader it knows to be deposed.
// - meta: carries the snapshot's index, term, configuration and every file's name, size
//   and CRC32C, itself CRC-checked: the follower learns from it what to expect and how
//   to verify it, and names its receive directory after it.
// - fileIndex: the file's position in the meta's (sorted) file list, not its name: the
//   name was sent once, in the meta.
// - offsetBytes: where `data` goes in that file. It may not leave a gap after what the
//   follower holds; it may overlap it (a resent chunk), and the overlap is skipped.
//
// SNAPSHOT_REPLY bodies (follower → leader):
//
//   Resume     0      1          4             8               12         16
//              +------+----------+-------------+---------------+----------+-----------------
//              | 1    | 3 × 0    | fileCount   | maxChunkBytes | 0 u32    | fileCount × u64:
//              | u8   |          | u32         | u32           |          | bytes held per file
//              +------+----------+-------------+---------------+----------+-----------------
//   Refuse     0      1          2          8             16
//              | 2    | reason u8| 6 × 0    | latestIndex | UTF-8 message, to the end
//   Installed  0      1          8          16
//              | 3    | 7 × 0    | index u64| term u64
//   Failed     0      1          2          8
//              | 4    | reason u8| 6 × 0    | UTF-8 message, to the end
//
// - fileCount: must equal the meta's file count and the bytes present (checked before
//   anything is allocated from it); the held bytes are in the meta's file order.
// - maxChunkBytes: the largest `data` this follower accepts in one Chunk: what its frame
//   limit leaves after the headers, or less. The leader sends no larger chunk.
// - Refuse.reason (`SnapshotRefuseReason`): stale means the follower already has this
//   snapshot or a newer one (latestIndex says which), and the leader counts the
//   transfer as done; the others end the transfer as failed.
// - Failed.reason (`SnapshotFailReason`): the transfer may be retried: a file that failed
//   its CRC was reset, so a new Offer resends just that file.
// - messages: for logs only, at most `SNAPSHOT_STREAM_MAX_MESSAGE_BYTES`.

/** What a SNAPSHOT_SEND body carries: its first byte. Part of the wire format: never renumber. */
export enum SnapshotSendKind {
  /** The meta file and the leader's term: the first message of a stream. */
  Offer = 1,
  /** Bytes of one file at an offset. */
  Chunk = 2,
  /** Every chunk was sent: verify and publish. */
  Done = 3,
}

/** What a SNAPSHOT_REPLY body carries: its first byte. Part of the wire format: never renumber. */
export enum SnapshotReplyKind {
  /** The offer is accepted; here is what the follower already holds. */
  Resume = 1,
  /** The offer is not accepted (`SnapshotRefuseReason`). */
  Refuse = 2,
  /** The snapshot was verified and published. */
  Installed = 3,
  /** The transfer failed after it was accepted (`SnapshotFailReason`). */
  Failed = 4,
}

/** Why a follower refuses an Offer. Part of the wire format: never renumber. */
export enum SnapshotRefuseReason {
  /** It already has this snapshot or a newer one: nothing to send, the transfer is done. */
  Stale = 1,
  /** The meta is damaged or names files this node cannot store. */
  Invalid = 2,
  /** The node does not take a snapshot from this leader (e.g. its term is older). */
  Rejected = 3,
  /** A local failure (disk, state machine thread) prevented starting. */
  Error = 4,
}

/** Why an accepted transfer failed. Part of the wire format: never renumber. */
export enum SnapshotFailReason {
  /** A file did not match its size or CRC32C; it was reset, so a retry resends it. */
  Corrupt = 1,
  /** The leader broke the stream's rules (a gap, an unknown file, a chunk too long). */
  Protocol = 2,
  /** A local failure (disk, state machine thread). */
  Error = 3,
}

/** Offset of the kind byte in every SNAPSHOT_SEND and SNAPSHOT_REPLY body. */
export const SNAPSHOT_STREAM_KIND_OFFSET = 0;
/** Offset of Offer's `leaderTerm` (u64). */
export const SNAPSHOT_OFFER_TERM_OFFSET = 8;
/** Offset of Offer's meta bytes. */
export const SNAPSHOT_OFFER_META_OFFSET = 16;
/** Offset of Chunk's `fileIndex` (u32). */
export const SNAPSHOT_CHUNK_FILE_OFFSET = 4;
/** Offset of Chunk's `offsetBytes` (u64). */
export const SNAPSHOT_CHUNK_OFFSET_OFFSET = 8;
/** Offset of Chunk's data. */
export const SNAPSHOT_CHUNK_DATA_OFFSET = 16;
/** Size of a Done body. */
export const SNAPSHOT_DONE_BODY_BYTES = 8;
/** Offset of Resume's `fileCount` (u32). */
export const SNAPSHOT_RESUME_FILE_COUNT_OFFSET = 4;
/** Offset of Resume's `maxChunkBytes` (u32). */
export const SNAPSHOT_RESUME_MAX_CHUNK_OFFSET = 8;
/** Offset of Resume's held bytes, one u64 per file. */
export const SNAPSHOT_RESUME_HELD_OFFSET = 16;
/** Offset of the reason byte of Refuse and Failed. */
export const SNAPSHOT_REASON_OFFSET = 1;
/** Offset of Refuse's `latestIndex` (u64). */
export const SNAPSHOT_REFUSE_LATEST_OFFSET = 8;
/** Offset of Refuse's message. */
export const SNAPSHOT_REFUSE_MESSAGE_OFFSET = 16;
/** Offset of Installed's `index` (u64). */
export const SNAPSHOT_INSTALLED_INDEX_OFFSET = 8;
/** Offset of Installed's `term` (u64). */
export const SNAPSHOT_INSTALLED_TERM_OFFSET = 16;
/** Size of an Installed body. */
export const SNAPSHOT_INSTALLED_BODY_BYTES = 24;
/** Offset of Failed's message. */
export const SNAPSHOT_FAILED_MESSAGE_OFFSET = 8;
/** Longest message a Refuse or Failed carries; encoders cut longer ones, decoders refuse them. */
export const SNAPSHOT_STREAM_MAX_MESSAGE_BYTES = 2048;
/** Bytes a Chunk frame adds around its data: frame header and Chunk's fixed part. */
export const SNAPSHOT_CHUNK_FRAME_OVERHEAD_BYTES = FRAME_HEADER_BYTES + SNAPSHOT_CHUNK_DATA_OFFSET;
/** Default bytes of data per Chunk: big enough that per-frame costs vanish, small enough to pace. */
export const DEFAULT_SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

// ==================================================================================
// Between the threads of one node (DESIGN.md, "Crossing threads")
// ==================================================================================
//
// None of these layouts leave the machine, so they carry no version or magic beyond the
// control block's; both ends are always the same build. Fields are little-endian like
// everything else here; indexes and terms are u64 (a safe integer), window positions u32.

// ================================================================== control block
//
// One small SharedArrayBuffer per node, named slots written by exactly one thread each
// and read by any (DESIGN.md). Int32 slots can be waited on; Float64 slots hold indexes
// and terms (safe integers) and are plain stores ordered before an Int32 Atomics.store
// by the same writer, so a reader that sees the Int32 change also sees them.
//
//   byte   Int32 slot                      written by     why
//   ────   ────────────────────────────    ────────────   ──────────────────────────────────
//      0   [0] magic 'CTRL'                creator        a wrong buffer is refused
//      4   [1] peer slots                  creator        how many per-peer lines follow
//    128   [32] writerDoneSeq              log-writer     the last WRITER_BARRIER made durable;
//                                                         the coordinator waitAsync()s on it
//    132   [33] (free: the coordinator counts the writer's and the fsm's holds on the
//                 log window itself, from what it handed out)
//    136   [34] writerFailed               log-writer     1 once a disk error stopped it
//    384   [96] windowReclaimedPos         coordinator    window bytes before this may be
//                                                         overwritten: a replicator that copied
//                                                         older bytes throws its copy away
//    388   [97] role                       coordinator    0 follower, 1 pre-candidate,
//                                                         2 candidate, 3 leader
//    512   f64 [64] durableIndex           log-writer     (index, term) of the last durable
//    520   f64 [65] durableTerm            log-writer     entry, published with writerDoneSeq
//    528   f64 [66] writerSyncs            log-writer     fdatasyncs done, and entries written:
//    536   f64 [67] writerEntries          log-writer     entries per sync is the group commit
//    544   f64 [68] logBytes               log-writer     record bytes in the segments, and
//    552   f64 [69] logDiskBytes           log-writer     the files' size, preallocation included
//    640   f64 [80] appliedIndex           fsm            last entry the state machine applied
//    648   f64 [81] fsmBatches             fsm            onApply batches: entries per batch
//    768   f64 [96] term                   coordinator    current term
//    776   f64 [97] commitIndex            coordinator    highest committed index
//   1024   per peer p, 16 bytes each:
//          f64 [128 + 2p] matchIndex       coordinator    highest index known replicated on p
//          f64 [129 + 2p] lastAckMs        coordinator    performance.now() of p's last reply
//
// Each writer's slots sit on their own 128-byte line so that one thread's hot stores
// never invalidate another's (the same reason as the ring's header).

/** 'CTRL' in ASCII, little-endian. */
export const CONTROL_MAGIC = 0x4c525443;
export const CONTROL_SLOT_MAGIC = 0;
export const CONTROL_SLOT_PEER_SLOTS = 1;
export const CONTROL_SLOT_WRITER_DONE_SEQ = 32;
export const CONTROL_SLOT_WRITER_FAILED = 34;
export const CONTROL_SLOT_WINDOW_RECLAIMED_POS = 96;
export const CONTROL_SLOT_ROLE = 97;
export const CONTROL_F64_DURABLE_INDEX = 64;
export const CONTROL_F64_DURABLE_TERM = 65;
export const CONTROL_F64_WRITER_SYNCS = 66;
export const CONTROL_F64_WRITER_ENTRIES = 67;
export const CONTROL_F64_LOG_BYTES = 68;
export const CONTROL_F64_LOG_DISK_BYTES = 69;
export const CONTROL_F64_APPLIED_INDEX = 80;
export const CONTROL_F64_FSM_BATCHES = 81;
export const CONTROL_F64_TERM = 96;
export const CONTROL_F64_COMMIT_INDEX = 97;
/** First Float64 slot of the per-peer lines: two slots (match index, last ack) per peer. */
export const CONTROL_F64_PEER_BASE = 128;
/** Bytes before the per-peer lines. */
export const CONTROL_FIXED_BYTES = 1024;

/** Bytes of a control block with `peerSlots` per-peer lines. */
export function controlBlockBytes(peerSlots: number): number {
  return CONTROL_FIXED_BYTES + peerSlots * 16;
}

// ================================================================== log window
//
// The encoded recent entries, written once by the coordinator and read by the
// log-writer, the replicators and the fsm (DESIGN.md). It is a byte ring of stored
// entry records (the format above), capacity a power of two, addressed by free-running
// u32 positions like the rings (offset = position & (capacity - 1)).
//
//   offset 0                                                       capacity
//   | ...reclaimed... | rec i | rec i+1 | ... | rec j | free | pad |
//                     ^ reclaimedPos                  ^ writePos
//
// - A record never wraps: if it does not fit before the end of the data area the
//   writer skips to offset 0 and the skipped bytes ("pad") are simply never referred to.
// - Nobody reads the window by index. The coordinator sends each consumer explicit
//   (position, byte length) regions, each contiguous, in its ring frames, so a truncated
//   and rewritten suffix lands at new positions and a consumer still holding an older
//   region reads the bytes it was promised.
// - Bytes are overwritten only behind `windowReclaimedPos` (control block), which the
//   coordinator moves up to the older of `writerReleasedPos` and `fsmReleasedPos`: the
//   log-writer and the fsm never see their regions reclaimed. A replicator has no hold:
//   it copies its regions, then checks that the reclaimed position has not passed them,
//   and drops the message if it has (Raft resends).
// - Entries that do not fit (the window is full of unapplied entries, or they are older
//   than the window) travel inline in the ring frame instead: slower, never stuck.

// ================================================================== ring frames
//
// Every ring frame starts with a one-byte kind. Entry-carrying frames name their
// records either as a window region or inline, after a common 40-byte header:
//
//   0      1        2         3     4             8             16            24
//   +------+--------+---------+-----+-------------+-------------+-------------+
//   | kind | source | flags   | 0   | recordCount | firstIndex  | lastIndex   |
//   | u8   | u8     | u8      | u8  | u32         | u64         | u64         |
//   +------+--------+---------+-----+-------------+-------------+-------------+
//   24            32          36          40
//   +-------------+-----------+-----------+---------------------------------+
//   | lastTerm    | windowPos | byteLength| inline records (source=inline)  |
//   | u64         | u32       | u32       | byteLength bytes                |
//   +-------------+-----------+-----------+---------------------------------+

/** Where an entry-carrying frame's records are. */
export enum RecordSource {
  /** In the log window at `windowPos`, `byteLength` bytes, contiguous. */
  Window = 0,
  /** Right after the header, in the frame itself. */
  Inline = 1,
}
export const ENTRIES_KIND_OFFSET = 0;
export const ENTRIES_SOURCE_OFFSET = 1;
export const ENTRIES_FLAGS_OFFSET = 2;
export const ENTRIES_RECORD_COUNT_OFFSET = 4;
export const ENTRIES_FIRST_INDEX_OFFSET = 8;
export const ENTRIES_LAST_INDEX_OFFSET = 16;
export const ENTRIES_LAST_TERM_OFFSET = 24;
export const ENTRIES_WINDOW_POS_OFFSET = 32;
export const ENTRIES_BYTE_LENGTH_OFFSET = 36;
export const ENTRIES_HEADER_BYTES = 40;
/** fsm ENTRIES flag: the coordinator waits on a result for some of these entries. */
export const ENTRIES_FLAG_WANT_RESULTS = 0x01;

// ------------------------------------------------------------ coordinator -> log-writer

/** Frames on the log-writer's ring. The numbers are private to one build. */
export enum WriterFrame {
  /**
   * Records to append (the common header). A first index at or below the writer's last
   * index truncates the conflicting suffix first (Raft §5.3).
   */
  Entries = 1,
  /** `[kind u8][0 u8 x3][term u64][voteBytes u8][vote UTF-8]`: replace `raft_meta`. */
  HardState = 2,
  /**
   * `[kind u8][0 u8 x3][seq u32]`: once everything before it is durable, publish `seq` as
   * `writerDoneSeq`. One barrier per append work item; the writer syncs once for all the
   * barriers it finds ready (group commit).
   */
  Barrier = 3,
  /**
   * `[kind u8][0 x7][index u64]`: log compaction after a snapshot: delete the segments
   * whose every entry is at or below `index`.
   */
  Compact = 4,
  /**
   * `[kind u8][0 x7][index u64][term u64]`: a snapshot from the leader at `(index, term)`
   * replaces the whole log: delete every segment; the next append starts after `index`.
   * Durable (directory synced) before the barrier that follows it is published.
   */
  ResetLog = 5,
}
export const WRITER_INDEX_OFFSET = 8;
export const WRITER_TERM_OFFSET = 16;
export const WRITER_COMPACT_FRAME_BYTES = 16;
export const WRITER_RESET_FRAME_BYTES = 24;
export const HARD_STATE_TERM_OFFSET = 4;
export const HARD_STATE_VOTE_OFFSET = 12;
export const BARRIER_SEQ_OFFSET = 4;
export const BARRIER_FRAME_BYTES = 8;

// ------------------------------------------------------------ coordinator -> fsm

/** Frames on the fsm's ring. */
export enum FsmFrame {
  /** Committed records to apply in order (the common header; flags: ENTRIES_FLAG_WANT_RESULTS). */
  Entries = 1,
  /** `[kind u8][0 x3][requestId u32][query: value-codec bytes]`: run `query()` now. */
  Query = 2,
  /**
   * `[kind u8][event u8][0 x2][jsonBytes u32][JSON]`: a role or configuration event for the
   * state machine's callbacks, ordered with the applies around it. Rare, so JSON.
   */
  Event = 3,
  /**
   * `[kind u8][0 x3][jsonBytes u32][JSON { index, term, conf }]`: save a snapshot of the
   * state as applied up to `index` (every Entries frame before this one). Rare, so JSON.
   */
  Snapshot = 4,
  /**
   * `[kind u8][0 x3][jsonBytes u32][JSON { index, term }]`: the leader's snapshot at
   * `index` was installed in the store: load it (`onSnapshotLoad`), replacing the state.
   */
  LoadSnapshot = 5,
}
export const FSM_QUERY_ID_OFFSET = 4;
export const FSM_QUERY_BODY_OFFSET = 8;
export const FSM_EVENT_TYPE_OFFSET = 1;
export const FSM_EVENT_JSON_BYTES_OFFSET = 4;
export const FSM_EVENT_BODY_OFFSET = 8;

/** The callbacks an Event frame triggers. */
export enum FsmEvent {
  LeaderStart = 1,
  LeaderStop = 2,
  StartFollowing = 3,
  StopFollowing = 4,
  ConfigurationCommitted = 5,
}

// ------------------------------------------------------------ fsm -> coordinator

/** Frames on the fsm's result ring. */
export enum ResultFrame {
  /** `[kind u8][0 x7][index u64][term u64][result: value-codec bytes]`: one entry's result. */
  Value = 1,
  /** `[kind u8][0 x7][appliedIndex u64]`: everything up to here is applied. */
  Applied = 2,
  /** `[kind u8][ok u8][0 x2][requestId u32][value-codec bytes, or UTF-8 error message]`. */
  Query = 3,
  /** `[kind u8][0 x7][failedIndex u64][UTF-8 JSON {code, message}]`: onApply threw; applying stopped. */
  Failed = 4,
  /** `[kind u8][ok u8][0 x2][jsonBytes u32][JSON { index, term } or { code, message }]`: a snapshot was saved, or not. */
  Snapshot = 5,
}
export const RESULT_INDEX_OFFSET = 8;
export const RESULT_TERM_OFFSET = 16;
export const RESULT_VALUE_BODY_OFFSET = 24;
export const RESULT_APPLIED_INDEX_OFFSET = 8;
export const RESULT_APPLIED_FRAME_BYTES = 16;
export const RESULT_QUERY_OK_OFFSET = 1;
export const RESULT_QUERY_ID_OFFSET = 4;
export const RESULT_QUERY_BODY_OFFSET = 8;
export const RESULT_FAILED_BODY_OFFSET = 16;

// ------------------------------------------------------------ coordinator -> replicator

/** Frames on a replicator's ring. */
export enum ReplicatorFrame {
  /** `[kind u8][0 x3][wire frames...]`: complete wire frames, sent as they are. */
  Wire = 1,
  /**
   * `[kind u8][0 x3][headBytes u32][windowPos u32][byteLength u32][head]`: a RAFT_MESSAGE
   * whose head (frame header, fixed part, ids) is here and whose records are one window
   * region. The replicator copies head and region into its socket buffer, then checks
   * the region was not reclaimed meanwhile.
   */
  WindowMessage = 2,
  /**
   * `[kind u8][0 x3][headBytes u32][lo u64][hi u64][lastTerm u64][term u64][head]`: a
   * RAFT_MESSAGE for a follower behind the log window. The head was encoded for zero
   * records; the replicator reads records lo..hi from the segment files, checks the
   * record at hi has `lastTerm`, patches the head's frame length and entry count, and
   * sends. It sends nothing if the node's term or role changed meanwhile (only a leader
   * in `term` never truncates its log, so only then is the read stable), or if the
   * records cannot all be read: Raft resends.
   */
  SegmentMessage = 3,
  /**
   * `[kind u8][0 x7][snapshotIndex u64][leaderTerm u64]`: stream the snapshot at
   * `snapshotIndex` to this peer ("snapshot stream" above), on a connection of its own;
   * if a newer snapshot has replaced it, the newest instead. `leaderTerm` is the term in
   * which the coordinator leads: the stream stops if the node's term or role changes.
   * The same (index, term) again leaves a running transfer alone; any other replaces it.
   * The replicator posts `{ type: 'snapshot-sent', ... }` when a transfer ends (a replaced
   * one posts nothing: its replacement will). Encoded by `encodeSendSnapshotFrame`.
   */
  SendSnapshot = 4,
}
/** Offset of SendSnapshot's `snapshotIndex` (u64). */
export const REPLICATOR_SNAPSHOT_INDEX_OFFSET = 8;
/** Offset of SendSnapshot's `leaderTerm` (u64). */
export const REPLICATOR_SNAPSHOT_TERM_OFFSET = 16;
/** Size of a SendSnapshot frame. */
export const REPLICATOR_SEND_SNAPSHOT_FRAME_BYTES = 24;
export const REPLICATOR_SEGMENT_LO_OFFSET = 8;
export const REPLICATOR_SEGMENT_HI_OFFSET = 16;
export const REPLICATOR_SEGMENT_LAST_TERM_OFFSET = 24;
export const REPLICATOR_SEGMENT_TERM_OFFSET = 32;
export const REPLICATOR_SEGMENT_HEAD_OFFSET = 40;
export const REPLICATOR_WIRE_BODY_OFFSET = 4;
export const REPLICATOR_HEAD_BYTES_OFFSET = 4;
export const REPLICATOR_WINDOW_POS_OFFSET = 8;
export const REPLICATOR_BYTE_LENGTH_OFFSET = 12;
export const REPLICATOR_HEAD_OFFSET = 16;

// ==================================================================================
// Client frames (DESIGN.md, "On the wire": "Client connections carry request ids")
// ==================================================================================
//
// A `RaftClient` connects to a node's listen address and sends a HANDSHAKE with role
// client, the cluster id and an empty node id; the node answers with its own (role peer,
// its node id). After that the client sends only CLIENT_REQUEST frames and the node only
// CLIENT_RESPONSE frames; a frame of any other type closes the connection, and so does a
// client frame on a connection between peers (`FrameDecoder` refuses both).
//
// ================================================================== CLIENT_REQUEST body
//
//   0      1       2          4              8
//   +------+-------+----------+--------------+---------------------------------
//   | op   | flags | reserved | requestId    | payload (to the end of the body)
//   | u8   | u8    | u16 = 0  | u32          | depends on op
//   +------+-------+----------+--------------+---------------------------------
//
// - op: a `ClientOp`. A decoder refuses other codes, so an old node refuses a new
//   operation instead of guessing.
// - flags: for Read, the consistency (`ReadConsistencyCode`); zero for every other op.
// - reserved: pads the fixed part to 8 so requestId and the payload are 4-aligned.
// - requestId: chosen by the client, echoed in the response. The client keeps many
//   requests in flight on one connection and matches replies by it, in any order; u32
//   wraps after four billion requests, long after the ones it could collide with are gone.
// - payload, by op:
//     Apply       the command bytes, exactly as the state machine will see them.
//     ApplyBatch  `[count u32]` then count × `[len u32][command bytes]`: the
//                 BatchCommitter. The node commits all the commands as ONE log entry
//                 (`EntryType.Batch`, whose payload is exactly these bytes: see
//                 `batch-codec.ts`), applies them one by one and answers with an array of
//                 their results, one per command in order. An empty batch is
//                 just count 0; the count is checked against the bytes before anything is
//                 allocated from it, and no bytes may follow the last command.
//     Read        the query, value-codec bytes (`value-codec.ts`), checked by the node
//                 when it decodes them.
//     Status      empty: the node's status.
//     Transfer    UTF-8 node id of the voter to hand leadership to. Not empty.
//     AddPeer     UTF-8 `id=host:port` (`address.ts`). Not empty.
//     RemovePeer  UTF-8 node id. Not empty.
//     Snapshot    empty: take a snapshot now.
//     AddLearner  UTF-8 `id=host:port`. Not empty.
//     SessionRegister    `[clientId 16 bytes]`, exactly: open the client's session (a
//                 Register session entry). Answered with null once committed; sent
//                 once before the client's first session write, and again (same id) until
//                 answered: registering an open session only refreshes it.
//     SessionApply       `[clientId 16][seq u64][ackBelow u64]` then the command: Apply
//                 at most once per (clientId, seq) ("session entry payload" above). The node
//                 copies these 32 bytes into a Command session entry and stamps its clock.
//                 seq >= 1 and 1 <= ackBelow <= seq, or the request is refused.
//     SessionApplyBatch  the same 32 bytes then a batch as ApplyBatch's payload: a Batch
//                 session entry. The answer is the array of results.
//     A session write whose session the node no longer has (it expired, or was evicted
//     for a more recent one) or whose seq is below the session's ackBelow (its result was
//     forgotten) is answered ERR_RAFT_SESSION_EXPIRED, never applied again.
//
// ================================================================== CLIENT_RESPONSE body
//
//   0        1          4              8
//   +--------+----------+--------------+---------------------------------
//   | status | reserved | requestId    | value-codec bytes (to the end of the body)
//   | u8     | 3 × 0    | u32          |
//   +--------+----------+--------------+---------------------------------
//
// - status: `ClientStatus`: 0 ok, 1 error.
// - requestId: the request this answers.
// - on ok: the result `Value` (ApplyBatch: an array of the per-command results).
// - on error: the object `{ code: string, message: string, leaderId?: string,
//   leaderAddress?: string }`: a `RaftError` as a record (`src/main/errors.ts`), so the
//   client rebuilds the same class and `instanceof` works across the wire. leaderId and
//   leaderAddress come with ERR_RAFT_NOT_LEADER when the node knows the leader: the
//   client reconnects there and retries, as braft's client does. A decoder refuses an
//   error value that is not an object or whose code or message is not a string, or whose
//   leaderId/leaderAddress is present and not a string; other keys are ignored, so a later
//   version can add some without breaking older clients.

/** What a client request asks. The numbers are part of the wire format: never renumber. */
export enum ClientOp {
  /** Propose one command; the answer is its result. */
  Apply = 1,
  /** Propose many commands as one log entry; the answer is an array of their results. */
  ApplyBatch = 2,
  /** Run a query against the state machine, at the consistency given in `flags`. */
  Read = 3,
  /** The node's status. */
  Status = 4,
  /** Hand leadership to the node named in the payload. */
  Transfer = 5,
  /** Add the voter `id=host:port` named in the payload. */
  AddPeer = 6,
  /** Remove the node named in the payload. */
  RemovePeer = 7,
  /** Take a snapshot now. */
  Snapshot = 8,
  /** Add the learner `id=host:port` named in the payload: it receives the log but does not vote. */
  AddLearner = 9,
  /** Open the client session named in the payload (16-byte client id). */
  SessionRegister = 10,
  /** Apply, at most once per (client id, seq): a 32-byte session header, then the command. */
  SessionApply = 11,
  /** ApplyBatch, at most once per (client id, seq): a 32-byte session header, then the batch. */
  SessionApplyBatch = 12,
}

/** A Read request's `flags`: how fresh the answer must be. Part of the wire format. */
export enum ReadConsistencyCode {
  /** Confirmed with a quorum (ReadIndex): never stale. */
  Linearizable = 0,
  /** Served under the leader's lease: not stale unless clocks drift beyond the lease margin. */
  Lease = 1,
  /** Served by any node from its own state: may be stale. */
  Stale = 2,
}

/** A CLIENT_RESPONSE's `status`. Part of the wire format. */
export enum ClientStatus {
  /** The value is the result. */
  Ok = 0,
  /** The value is an error record `{ code, message, leaderId?, leaderAddress? }`. */
  Error = 1,
}

/** Offset of `op` (u8, a `ClientOp`) in the CLIENT_REQUEST body. */
export const CLIENT_REQUEST_OP_OFFSET = 0;
/** Offset of `flags` (u8). */
export const CLIENT_REQUEST_FLAGS_OFFSET = 1;
/** Offset of the reserved u16, which must be zero. */
export const CLIENT_REQUEST_RESERVED_OFFSET = 2;
/** Offset of `requestId` (u32). */
export const CLIENT_REQUEST_ID_OFFSET = 4;
/** Size of the fixed part of the CLIENT_REQUEST body; the payload follows. */
export const CLIENT_REQUEST_FIXED_BYTES = 8;

/** Offset of `status` (u8, a `ClientStatus`) in the CLIENT_RESPONSE body. */
export const CLIENT_RESPONSE_STATUS_OFFSET = 0;
/** Offset of the three reserved bytes, which must be zero. */
export const CLIENT_RESPONSE_RESERVED_OFFSET = 1;
/** Length of the reserved run. */
export const CLIENT_RESPONSE_RESERVED_BYTES = 3;
/** Offset of `requestId` (u32). */
export const CLIENT_RESPONSE_ID_OFFSET = 4;
/** Size of the fixed part of the CLIENT_RESPONSE body; the value follows. */
export const CLIENT_RESPONSE_FIXED_BYTES = 8;

/** Size of an ApplyBatch payload's count and of each command's length field. */
export const CLIENT_BATCH_LENGTH_BYTES = 4;

/** Size of a SessionRegister payload: the client id alone. */
export const CLIENT_SESSION_REGISTER_BYTES = SESSION_CLIENT_ID_BYTES;
