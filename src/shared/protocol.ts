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
 * Not declared here yet (their issues add them here, not elsewhere): the shared-memory
 * rings, the control block, `raft_meta` and the snapshot meta file.
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
// - type: `EntryType` (Normal 0, ConfChange 1, Noop 2). A decoder refuses other codes.
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
export const KNOWN_ENTRY_TYPES: readonly number[] = [EntryType.Normal, EntryType.ConfChange, EntryType.Noop];

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
  /** RESERVED for the snapshot-streaming issue: one chunk of an InstallSnapshot transfer. Not implemented. */
  SnapshotChunk = 3,
  /** RESERVED for the snapshot-streaming issue: the receiver's acknowledgement of chunks. Not implemented. */
  SnapshotChunkAck = 4,
  /** RESERVED for the client issue: a client request carrying a request id. Not implemented. */
  ClientRequest = 16,
  /** RESERVED for the client issue: the reply to a request id, in any order. Not implemented. */
  ClientResponse = 17,
}

/** Frame types whose codes are taken but whose bodies are not defined yet. A decoder refuses them. */
export const RESERVED_FRAME_TYPES: readonly FrameType[] = [
  FrameType.SnapshotChunk,
  FrameType.SnapshotChunkAck,
  FrameType.ClientRequest,
  FrameType.ClientResponse,
];

// ================================================================== HANDSHAKE body
//
//   0           4         6      7        8                 8+c      9+c
//   +-----------+---------+------+--------+-----------------+--------+---------------
//   | magic     | version | role | c =    | clusterId       | n =    | nodeId
//   | "RFTL"    | u16     | u8   | u8 len | (c bytes UTF-8) | u8 len | (n bytes UTF-8)
//   +-----------+---------+------+--------+-----------------+--------+---------------
//
// - magic: the bytes "RFTL", so a connection from something that is not raftline (an HTTP
//   probe, another cluster software) is recognised and refused at once.
// - version: `PROTOCOL_VERSION`. A receiver refuses any other: both sides of a cluster run
//   the same release, and a clear refusal beats a misread frame.
// - role: peer (a Raft node's replicator) or client (a `RaftClient`): a connection to the
//   wrong port is refused instead of being fed frames it does not expect.
// - clusterId: a peer from another cluster is refused (DESIGN.md, "On the wire"). Not empty.
// - nodeId: who is speaking. Not empty for a peer; a client may leave it empty.
//
// The connecting side sends its handshake first; the accepting side checks it and answers
// with its own, so both sides check the cluster id. On a mismatch the checking side
// closes the connection.

/** The four magic bytes at the start of every HANDSHAKE body: ASCII "RFTL". */
export const HANDSHAKE_MAGIC: readonly number[] = Object.freeze([0x52, 0x46, 0x54, 0x4c]);
/** The wire protocol version this code speaks. Bump it on any change to a frame layout. */
export const PROTOCOL_VERSION = 1;
/** Offset of the magic (4 bytes) in the HANDSHAKE body. */
export const HANDSHAKE_MAGIC_OFFSET = 0;
/** Offset of `version` (u16). */
export const HANDSHAKE_VERSION_OFFSET = 4;
/** Offset of `role` (u8, a `HandshakeRole`). */
export const HANDSHAKE_ROLE_OFFSET = 6;
/** Offset of the cluster id's length byte; the id and then the node id follow. */
export const HANDSHAKE_CLUSTER_ID_OFFSET = 7;
/** Smallest HANDSHAKE body: everything but the two ids' bytes. */
export const HANDSHAKE_MIN_BODY_BYTES = 9;
/** Largest HANDSHAKE body: both ids at their longest. A larger first frame is refused at its header. */
export const HANDSHAKE_MAX_BODY_BYTES = HANDSHAKE_MIN_BODY_BYTES + 2 * MAX_ID_BYTES;

/** Who opened a connection. The numbers are part of the wire format: never renumber. */
export enum HandshakeRole {
  /** Another node of the cluster: RAFT_MESSAGE frames follow. */
  Peer = 1,
  /** A `RaftClient`: client request frames follow (reserved, see `FrameType`). */
  Client = 2,
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
