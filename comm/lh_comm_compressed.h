/*
 * lh_callreduce: the compressed allreduce for data-parallel gradient sync over
 * slow links.
 *
 * Shape of the algorithm (reduce-scatter + all-gather, both quantized):
 *   1. Reduce-scatter: rank r owns block r (lh_comm_block_range).  Every rank
 *      quantizes each other rank's block of (gradient + its worker residual)
 *      with compress/'s gradient codec (error feedback: the residual keeps what
 *      quantization dropped and adds it to the next step) and sends it
 *      directly to the owner; all p-1 transfers run at once, so a step pays
 *      one link latency instead of the ring's p-1.  The owner adds the
 *      dequantized contributions to its own exact block, in rank order.
 *   2. All-gather: the owner quantizes its reduced block (with a second,
 *      "server" residual of its own) and every rank, the owner included,
 *      decodes the same bytes, so all ranks end bitwise identical.
 * Each rank sends 2(p-1)/p of the gradient, as a ring does, but at `bits`
 * instead of 32 per value, plus one scale per group and the frame headers.
 *
 * Error bound (round to nearest; documented in docs/comm.md and tested): for
 * element i of block b with owner o,
 *     |result_i - exact_sum_i| <= G/2 * ( sum_{k != o} S_k(i) + S_o'(i) )
 * where S_k(i) is the scale (group absmax) of contributor k's quantized group
 * holding i, S_o'(i) that of the owner's reduced group, and G the widest gap of
 * the level grid in units of the scale.  With error feedback the error summed
 * over steps telescopes: sum_t result_t - sum_t exact_t = -(sum of the current
 * residuals), which stays bounded however many steps run.
 */
#ifndef LH_COMM_COMPRESSED_H
#define LH_COMM_COMPRESSED_H

#include <stddef.h>
#include <stdint.h>

#include "lh_comm.h"
#include "lh_compress.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A compressed allreduce for one flat gradient of fixed length; opaque. */
typedef struct lh_callreduce lh_callreduce;

/**
 * The parameters used for gradients: `bits` (1..8), normal grid, one fp32
 * scale per block of 256 values, round to nearest, no zstd (frame sizes must
 * be known to the receiver in advance).
 */
lh_quant_params lh_callreduce_default_params(int bits);

/**
 * Collective over `c`: prepare to allreduce `n` floats with parameters `p`
 * (zstd_level must be 0; grouping must be per block or per tensor).  With
 * `error_feedback` 0 the residuals are dropped every step (for comparison).
 */
lh_status lh_callreduce_create(lh_comm *c, size_t n, const lh_quant_params *p, uint64_t seed, int error_feedback,
                               lh_callreduce **out);

/** Free (NULL accepted). */
void lh_callreduce_free(lh_callreduce *a);

/**
 * Collective: replace `data` (n floats) by the approximate sum over all ranks.
 * `step` keys stochastic rounding when the parameters ask for it.
 */
lh_status lh_callreduce_run(lh_callreduce *a, float *data, uint64_t step);

/** Worker residual: n values (zero on this rank's own block, which travels exactly). */
const float *lh_callreduce_worker_residual(const lh_callreduce *a);

/** Server residual of this rank's block: `count` values for elements [offset, offset + count). */
const float *lh_callreduce_server_residual(const lh_callreduce *a, size_t *offset, size_t *count);

/** G: the widest gap between adjacent levels of the grid, in units of the scale. */
double lh_callreduce_max_gap(const lh_quant_params *p);

/*
 * Residual state, for checkpoints ("LHCS", docs/formats.md): this rank's
 * worker and server residuals (two gradient-codec states, "LHGS") with the
 * group size, rank and block they belong to.  Each rank saves and loads its
 * own; nothing here is collective.  A rank that reloads the state of the same
 * rank of a group of the same size over the same n runs the next
 * lh_callreduce_run exactly as the one that saved it.
 */

/** Exact size of the state lh_callreduce_save_state writes; 0 if a is NULL. */
size_t lh_callreduce_state_bytes(const lh_callreduce *a);

/** Write this rank's residual state into dst (capacity dst_cap; LH_ERR_CAPACITY if too small). */
lh_status lh_callreduce_save_state(const lh_callreduce *a, void *dst, size_t dst_cap, size_t *dst_len);

/** What an LHCS state says about itself (pointers into the state passed to lh_callreduce_state_peek). */
typedef struct lh_callreduce_state_info {
    uint64_t n;                         /* gradient length */
    uint32_t ranks, rank;               /* group size and the rank that saved it */
    uint64_t block_offset, block_count; /* that rank's block */
    const uint8_t *worker, *server;     /* the two LHGS states */
    size_t worker_bytes, server_bytes;
} lh_callreduce_state_info;

/**
 * Read and validate the frame of an LHCS state (header, sizes, CRC-32C; not
 * the nested LHGS states, which need a codec): no allreduce needed.
 */
lh_status lh_callreduce_state_peek(const void *src, size_t src_len, lh_callreduce_state_info *info);

/**
 * Replace this rank's residuals by a saved state.  The gradient length, group
 * size, rank and block must be this allreduce's (LH_ERR_MISMATCH naming
 * both); both residual states are validated before either is applied, so on
 * failure nothing changes.
 */
lh_status lh_callreduce_load_state(lh_callreduce *a, const void *src, size_t src_len);

#ifdef __cplusplus
}
#endif
#endif
