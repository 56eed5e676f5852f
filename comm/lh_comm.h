/*
 * lh_comm: the only way longhaul workers talk to each other (MPI backend).
 *
 * Design:
 *  - Every message is cut into frames (lh_frame.h) of at most
 *    max_frame_payload bytes, each one MPI message.  The receiver names the
 *    peer, channel and exact byte count it expects and validates every frame
 *    (checksum or authentication tag, sender, kind, sequence number, offset),
 *    so nothing is accepted silently.  A validation failure puts the
 *    communicator in a failed state: later calls report the first error
 *    instead of reading a stream that is out of step.
 *  - Point-to-point calls are non-blocking (isend/irecv + wait) so a pipeline
 *    stage computes while its activations travel.
 *  - Collectives (allreduce, reduce-scatter, all-gather, broadcast, barrier)
 *    are built from framed point-to-point messages (ring and binomial-tree
 *    algorithms), so framing, encryption and link emulation apply to them
 *    exactly as to pipeline traffic.  lh_comm_split gives the sub-communicators
 *    of a data-parallel group or of a replica's pipeline.
 *  - Optional: authenticated encryption with per-link, per-direction keys
 *    derived from a job secret, and in-process link emulation (lh_netem.h);
 *    every rank must be configured alike (checked at creation).
 *
 * Channels 0..LH_COMM_USER_CHANNELS-1 are the caller's (like MPI tags); each
 * (peer, channel, direction) has its own sequence numbers and frames of one
 * channel arrive in order.  A communicator is used by one thread at a time.
 */
#ifndef LH_COMM_H
#define LH_COMM_H

#include <stddef.h>
#include <stdint.h>

#include <mpi.h>

#include "lh_frame.h"
#include "lh_netem.h"
#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_COMM_USER_CHANNELS 14
#define LH_COMM_DEFAULT_MAX_FRAME_PAYLOAD (1u << 20)

/** A communicator over a group of ranks; opaque. */
typedef struct lh_comm lh_comm;
/** An outstanding non-blocking send or receive; completed (and freed) by lh_comm_wait. */
typedef struct lh_comm_request lh_comm_request;

/** How reduce-scatter and all-gather move data (same bytes per rank either way). */
typedef enum lh_comm_algorithm {
    LH_COMM_ALGO_AUTO = 0, /* direct up to LH_COMM_DIRECT_MAX_RANKS ranks, ring above */
    LH_COMM_ALGO_RING,     /* p-1 steps to the neighbour: p-1 latencies, one message in flight per link */
    LH_COMM_ALGO_DIRECT    /* every rank to every rank at once: one latency, p-1 messages in flight */
} lh_comm_algorithm;

#define LH_COMM_DIRECT_MAX_RANKS 8

/** Creation options; zero-initialise and set what you need. */
typedef struct lh_comm_options {
    /* Job secret (LH_KEY_BYTES, e.g. from lh_key_load) to encrypt every frame, or NULL for plain
     * frames with CRC-32C.  Copied. */
    const uint8_t *job_secret;
    /* Emulated links indexed by rank in the MPI communicator given to lh_comm_create, or NULL for
     * the real network.  Cloned: the communicator keeps its own link clocks. */
    const lh_netem *emulation;
    /* > 0: a send or receive that has not completed after this many seconds fails with
     * LH_ERR_TIMEOUT naming the peer (and the communicator becomes unusable); 0 waits forever.
     * Inherited by split communicators. */
    double timeout_s;
    /* Largest payload per frame (one MPI message); 0 means LH_COMM_DEFAULT_MAX_FRAME_PAYLOAD.
     * Must be equal on every rank. */
    size_t max_frame_payload;
    /* Collective algorithm; must be equal on every rank. */
    lh_comm_algorithm algorithm;
} lh_comm_options;

/** Traffic counters of one communicator (and its own collectives). */
typedef struct lh_comm_stats {
    uint64_t frames_sent, frames_received;
    uint64_t payload_bytes_sent, payload_bytes_received;
    uint64_t wire_bytes_sent, wire_bytes_received; /* headers and trailers included */
    double emulation_wait_s;                       /* time spent holding messages back for emulation */
    int emulated;                                  /* 1: the links are emulated, figures are not real */
    int encrypted;
} lh_comm_stats;

/**
 * Collective over `mpi_comm`: duplicate it, agree on the options (ranks that
 * disagree on encryption, emulation or frame size all fail with a message),
 * draw a fresh session salt on rank 0, and derive link keys.  Logs the network
 * as EMULATED when it is.
 */
lh_status lh_comm_create(MPI_Comm mpi_comm, const lh_comm_options *options, lh_comm **out);

/**
 * Collective over `parent`: ranks with the same `color` (>= 0) form a new
 * communicator ordered by `key`; a negative color gives *out = NULL.  The child
 * shares the parent's secret, emulated links (by original rank) and frame size,
 * with its own keys and sequence numbers.
 */
lh_status lh_comm_split(lh_comm *parent, int color, int key, lh_comm **out);

/** Free a communicator (NULL accepted).  Outstanding requests must be waited first. */
void lh_comm_free(lh_comm *c);

/** This rank's index in the communicator. */
int lh_comm_rank(const lh_comm *c);
/** Number of ranks. */
int lh_comm_size(const lh_comm *c);
/** The underlying (duplicated) MPI communicator, for baselines and for the NCCL id broadcast. */
MPI_Comm lh_comm_mpi(const lh_comm *c);
/** Traffic counters so far. */
void lh_comm_get_stats(const lh_comm *c, lh_comm_stats *out);
/** Zero the counters (the emulated/encrypted flags stay). */
void lh_comm_reset_stats(lh_comm *c);

/**
 * Start sending `bytes` from `buf` to rank `dst` on `channel` (0 ..
 * LH_COMM_USER_CHANNELS-1).  The data is framed (and encrypted) before this
 * returns, so `buf` may be reused at once; lh_comm_wait completes the send.
 */
lh_status lh_comm_isend(lh_comm *c, const void *buf, size_t bytes, int dst, int channel, lh_comm_request **req);

/** Start receiving exactly `bytes` into `buf` from rank `src` on `channel`; complete with lh_comm_wait. */
lh_status lh_comm_irecv(lh_comm *c, void *buf, size_t bytes, int src, int channel, lh_comm_request **req);

/**
 * Complete a request and free it: for a receive, every frame is verified and
 * copied into the caller's buffer; on an emulated network this returns no
 * earlier than the emulated delivery (receive) or departure (send) time.
 */
lh_status lh_comm_wait(lh_comm_request *req);

/**
 * Poll a request: drives MPI progress and sets *done.  When *done is 1 the
 * request has been completed exactly as by lh_comm_wait (verified, and
 * freed: do not use it again) and the status is its result; an emulated
 * message is not done before its emulated time.  Call it between pieces of
 * compute so large transfers progress while computing.
 */
lh_status lh_comm_test(lh_comm_request *req, int *done);

/**
 * Withdraw a receive that is no longer wanted (a pipeline stage that posted
 * its next receive ahead and then failed): the MPI side is cancelled and the
 * request freed.  Only receives can be withdrawn (LH_ERR_INVALID_ARG for a
 * send, which is left alone).  The channel's sequence numbers are then out of
 * step with the peer, so the communicator is marked unusable.
 */
lh_status lh_comm_cancel(lh_comm_request *req);

/** Wait for `n` requests (all are completed and freed even after an error; the first error is returned). */
lh_status lh_comm_waitall(lh_comm_request **reqs, int n);

/** Blocking send: isend + wait. */
lh_status lh_comm_send(lh_comm *c, const void *buf, size_t bytes, int dst, int channel);
/** Blocking receive: irecv + wait. */
lh_status lh_comm_recv(lh_comm *c, void *buf, size_t bytes, int src, int channel);

/** Position of block `index` when `n` elements are split over `parts` ranks (first n % parts blocks get one more). */
void lh_comm_block_range(size_t n, int parts, int index, size_t *offset, size_t *count);

/** Sum `n` floats over all ranks, in place (reduce-scatter then all-gather). */
lh_status lh_comm_allreduce_f32(lh_comm *c, float *data, size_t n);

/**
 * Sum `n` floats of `in` over all ranks and leave this rank's block
 * (lh_comm_block_range(n, size, rank)) in `out`.
 */
lh_status lh_comm_reduce_scatter_f32(lh_comm *c, const float *in, float *out, size_t n);

/** Gather `bytes_each` bytes from every rank into `out` (size * bytes_each, rank order). */
lh_status lh_comm_allgather(lh_comm *c, const void *mine, size_t bytes_each, void *out);

/**
 * All-gather of unequal blocks in place: rank r contributes `buf + offsets[r]`
 * of `counts[r]` bytes, and ends with every block filled in.
 */
lh_status lh_comm_allgatherv_inplace(lh_comm *c, void *buf, const size_t *offsets, const size_t *counts);

/** Copy `bytes` from rank `root`'s `buf` to every rank's `buf` (binomial tree). */
lh_status lh_comm_bcast(lh_comm *c, void *buf, size_t bytes, int root);

/**
 * Collective: did every rank succeed?  Each rank passes its own status; a
 * failing rank gets its own status and message back, the others get
 * LH_ERR_MISMATCH saying that `what` failed on rank R, with the first failing
 * rank's message.  Lets a group fail together instead of some ranks waiting
 * in a later collective for a peer that gave up, and whichever rank reports
 * first names the cause.
 */
lh_status lh_comm_agree(lh_comm *c, lh_status mine, const char *what);

/** Return once every rank has entered (dissemination barrier of empty frames). */
lh_status lh_comm_barrier(lh_comm *c);

#ifdef __cplusplus
}
#endif
#endif
