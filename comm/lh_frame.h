/*
 * lh_frame: the wire format of every message between longhaul workers.
 *
 * Why a frame at all when MPI already delivers bytes reliably: workers sit on
 * different sites, links can be intercepted or misconfigured, and a mismatch
 * between what one rank sends and what its neighbour expects (shape drift, a
 * restarted peer, a stale key) must surface as an error that names the peer
 * and the problem, never as silently wrong tensors.  So every message carries
 * a fixed 56-byte header, covered by its own CRC-32C so a corrupt header is
 * reported as corruption before any of its fields is trusted, and a trailer:
 * a CRC-32C of the payload (plain links) or a 16-byte Poly1305 tag
 * (encrypted links: ChaCha20-Poly1305 IETF, header as associated data).
 *
 * Layout (all integers little-endian):
 *     0  u32 magic "LHMF"        4  u8 version (1)   5 u8 kind
 *     6  u8 flags (bit0 sealed)  7  u8 channel
 *     8  u32 src rank           12  u32 dst rank
 *    16  u64 sequence number (per link direction and channel, from 0)
 *    24  u64 message length     32  u64 offset of this frame in the message
 *    40  u64 emulated delivery time, ns of CLOCK_MONOTONIC (0 = real network)
 *    48  u32 payload length     52  u32 CRC-32C of bytes 0..51
 *    56  payload (ciphertext when sealed), then the 4- or 16-byte trailer.
 *
 * Nonces are (sequence, channel): sequence numbers only grow and every link
 * direction of every communicator of every session has its own key
 * (lh_frame_derive_link_key), so a (key, nonce) pair is never used twice.
 * This file is pure (no MPI): lh_frame_open is the parser the fuzzer drives.
 */
#ifndef LH_FRAME_H
#define LH_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_FRAME_MAGIC 0x464D484Cu /* "LHMF" read as a little-endian u32 */
#define LH_FRAME_VERSION 1
#define LH_FRAME_HEADER_BYTES 56
#define LH_FRAME_PLAIN_TRAILER_BYTES 4
#define LH_FRAME_SEALED_TRAILER_BYTES 16
#define LH_FRAME_FLAG_SEALED 0x01u
#define LH_FRAME_MAX_PAYLOAD 0x7FFFFFFFu
#define LH_KEY_BYTES 32
#define LH_SESSION_SALT_BYTES 16

/** What a frame carries; the receiver states which kind it expects. */
typedef enum lh_frame_kind {
    LH_FRAME_DATA = 1,       /* point-to-point user data (activations, gradients) */
    LH_FRAME_COLLECTIVE = 2, /* a chunk of a collective operation */
    LH_FRAME_PROBE = 3,      /* network probe traffic */
    LH_FRAME_CONTROL = 4,    /* barriers and handshakes */
    LH_FRAME_KIND_MAX = 4
} lh_frame_kind;

/** The decoded header fields (magic, version and checksums are handled internally). */
typedef struct lh_frame_header {
    uint8_t kind;
    uint8_t flags;
    uint8_t channel;
    uint32_t src;
    uint32_t dst;
    uint64_t seq;
    uint64_t msg_len;
    uint64_t offset;
    uint64_t deliver_at_ns;
    uint32_t payload_len;
} lh_frame_header;

/** What the receiver expects of the next frame on a link; used by lh_frame_check. */
typedef struct lh_frame_expect {
    uint8_t kind;
    uint8_t channel;
    uint32_t src;
    uint32_t dst;
    uint64_t seq;
    uint64_t msg_len;
    uint64_t offset;
    uint32_t payload_len;
} lh_frame_expect;

/** Human name of a frame kind ("data", "collective", ...; "unknown" otherwise). */
const char *lh_frame_kind_name(int kind);

/** Bytes a frame with `payload_len` payload bytes occupies on the wire. */
size_t lh_frame_bound(size_t payload_len, int sealed);

/**
 * Encode one frame into `out` (capacity `cap` >= lh_frame_bound).  With `key`
 * (LH_KEY_BYTES) the payload is encrypted and authenticated and the sealed flag
 * is set; with NULL it travels in clear with a CRC-32C.  `h->flags` is ignored.
 */
lh_status lh_frame_seal(const lh_frame_header *h, const void *payload, const uint8_t *key, void *out,
                        size_t cap, size_t *out_len);

/**
 * Decode and verify a received frame of `len` bytes.  Checks, in order: size,
 * magic, header CRC, version, kind, flags against the link's mode (a plain
 * frame on an encrypted link is rejected, and vice versa), declared length
 * against the bytes received, then the payload CRC or authentication tag.  The
 * payload (decrypted) is written to `payload` (capacity `cap`).  Messages name
 * the claimed sender; the caller adds which link it was listening on.
 */
lh_status lh_frame_open(const void *frame, size_t len, const uint8_t *key, lh_frame_header *h, void *payload,
                        size_t cap);

/**
 * Compare a verified header with what the receiver expects and fail with a
 * message naming the peer: wrong sender/receiver or kind/channel is
 * LH_ERR_COMM ("unexpected frame"), a sequence number below the expected one
 * is a replay, above it a gap or reordering, and length/offset disagreements
 * are LH_ERR_MISMATCH.
 */
lh_status lh_frame_check(const lh_frame_header *h, const lh_frame_expect *want);

/**
 * Derive the key of one link direction: a session key is BLAKE2b keyed by the
 * job secret over (salt, communicator id), and the link key is crypto_kdf of
 * the session key with subkey id (src << 32 | dst).  The salt is fresh per
 * session so restarting a job never reuses a (key, nonce) pair.
 */
lh_status lh_frame_derive_link_key(const uint8_t secret[LH_KEY_BYTES], const uint8_t salt[LH_SESSION_SALT_BYTES],
                                   uint64_t comm_id, uint32_t src, uint32_t dst, uint8_t out[LH_KEY_BYTES]);

/**
 * Load a job secret from a key file: exactly 32 raw bytes, or 64 hex digits
 * (surrounding whitespace allowed).  Files readable by group or others are
 * refused, since the secret protects every link of the job.
 */
lh_status lh_key_load(const char *path, uint8_t out[LH_KEY_BYTES]);

/** Parse a key given as file contents (the checks of lh_key_load without the file). */
lh_status lh_key_parse(const char *name, const void *data, size_t len, uint8_t out[LH_KEY_BYTES]);

#ifdef __cplusplus
}
#endif
#endif
