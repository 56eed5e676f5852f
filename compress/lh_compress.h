/*
 * lh_compress: fp32 tensors to as few bytes as training can bear, and back.
 *
 * Over a slow link the bytes are the cost, so everything here trades a little
 * CPU for fewer bytes, and does it at memory speed so the trade stays cheap:
 *
 *   - lh_quant_*   one quantized frame (the wire format below): any width 1..8
 *                  bits, or raw fp32 (bits = 32).  Used directly it is the
 *                  "DirectQ" baseline and the backward-pass codec.
 *   - lh_aq_*      the AQ-SGD activation codec (Wang et al., NeurIPS 2022):
 *                  each side of a pipeline link keeps m(sample), the activation
 *                  last sent for that sample; the sender sends Q(a - m) and both
 *                  sides apply m += deQ(Q(a - m)) with the same code, so the two
 *                  copies stay bit-identical without extra traffic.  A digest of
 *                  every updated entry travels with the message, so a divergence
 *                  is detected and repaired by a full-precision resend.
 *   - lh_grad_*    data-parallel gradients with error feedback (what was not
 *                  sent this step is added to the next one).  The collective
 *                  itself lives in comm/.
 *
 * Grid.  The reference quantizer (codes in [-2^(b-1), 2^(b-1)-1] times
 * absmax/2^(b-1)) cannot represent +absmax.  Ours is symmetric and its end
 * points are exactly -scale and +scale, with 2^b levels (no level is wasted on
 * a zero).  Two level sets exist: LH_GRID_UNIFORM (evenly spaced; what the
 * stochastic-rounding convergence proofs assume) and LH_GRID_NORMAL (the
 * default: levels placed by Lloyd-Max for Gaussian data normalised by its
 * absmax, which beats the reference's error at 3 bits and up at the same
 * size).  Rounding is to nearest or stochastic; stochastic rounding between
 * the two neighbouring levels is unbiased on either grid and its random bits
 * come from a counter-based hash of (seed, sample, step, element), so both
 * ends of a link, a CPU and a GPU, reproduce them with no shared RNG state.
 *
 * Wire format of one frame (version 1, all integers little-endian):
 *
 *   off size field
 *     0   4  magic "LHQW"
 *     4   1  version (1)
 *     5   1  element type of the decoded tensor (0 = fp32)
 *     6   1  bits: 1..8 quantized, 32 raw fp32 (no scales)
 *     7   1  grid (0 normal, 1 uniform)
 *     8   1  grouping (0 per channel, 1 per block of group_size, 2 whole tensor)
 *     9   1  scale type (0 fp16, 1 fp32)
 *    10   1  flags: bit0 payload is zstd-compressed, bit1 stochastic rounding
 *    11   1  reserved, must be 0
 *    12   4  rows (tokens)
 *    16   4  cols (channels; fastest-varying)
 *    20   4  group_size (grouping 1 only, else 0)
 *    24   4  payload bytes that follow the header
 *    28   4  CRC-32C of bytes 0..27 and of the payload
 *    32      payload: scales (one per group, fp16 or fp32), then codes densely
 *            bit-packed: element i (row-major) occupies stream bits
 *            [i*bits, (i+1)*bits), bit 0 = least significant bit of byte 0.
 *            With flag bit0 the whole payload is one zstd frame instead.
 *            A raw frame (bits 32) has grid 0, grouping 2, scale type 0, flag
 *            bit1 clear, and its payload is rows*cols fp32 values.
 *
 * A frame is therefore codes + scales + 32 bytes; the zstd stage is only kept
 * when it shrinks the payload.  Decoding validates every field, the exact
 * payload size implied by the shape, and the CRC before touching the output.
 *
 * Shapes: a tensor is (rows, cols) row-major, channel fastest; a per-channel
 * scale is the absmax over rows of one column.  Everything is single-threaded
 * and reentrant; contexts are not shared between threads.
 *
 * Scale clipping (clip_rms > 0, encoder only).  A group's scale is normally
 * its absmax, so at 2..3 bits a few outliers stretch the grid and most values
 * fall on the inner levels.  With clip_rms = k the scale is
 * min(absmax, k * sqrt(mean of squares of the group)) (then rounded up to fp16
 * as usual); values beyond it saturate to the outer levels.  The decoder does
 * not know or care (value = level * scale), so the wire format is unchanged.
 */
#ifndef LH_COMPRESS_H
#define LH_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Parameters                                                                */

#define LH_QUANT_MAGIC        "LHQW"
#define LH_QUANT_VERSION      1
#define LH_QUANT_HEADER_BYTES 32
/** bits value meaning "raw fp32, not quantized" (AQ-SGD first visit, repair). */
#define LH_QUANT_BITS_RAW 32

typedef enum lh_grid {
    LH_GRID_NORMAL = 0, /* Lloyd-Max levels for absmax-normalised Gaussian data */
    LH_GRID_UNIFORM = 1 /* 2^b evenly spaced levels from -scale to +scale */
} lh_grid;

typedef enum lh_grouping {
    LH_GROUP_CHANNEL = 0, /* one scale per column, absmax over all rows */
    LH_GROUP_BLOCK = 1,   /* one scale per group_size consecutive values (row-major) */
    LH_GROUP_TENSOR = 2   /* one scale for everything */
} lh_grouping;

typedef enum lh_scale_type { LH_SCALE_FP16 = 0, LH_SCALE_FP32 = 1 } lh_scale_type;

typedef enum lh_rounding { LH_ROUND_NEAREST = 0, LH_ROUND_STOCHASTIC = 1 } lh_rounding;

/** How to quantize one tensor.  Start from lh_quant_params_default(). */
typedef struct lh_quant_params {
    int bits; /* 1..8, or LH_QUANT_BITS_RAW */
    lh_grid grid;
    lh_grouping grouping;
    uint32_t group_size;      /* LH_GROUP_BLOCK only: values per scale, >= 1 */
    lh_scale_type scale_type; /* fp16 scales fail on |x| > 65504: use fp32 there */
    lh_rounding rounding;
    int zstd_level; /* 0: no zstd stage; 1..22: zstd level over the payload */
    float clip_rms; /* 0: scale = group absmax; k > 0: scale = min(absmax, k * RMS of the group) */
} lh_quant_params;

/** Key of the stochastic-rounding stream; element index is the fourth input. */
typedef struct lh_sr_key {
    uint64_t seed, sample, step;
} lh_sr_key;

/** Normal grid, per-channel fp16 scales, round to nearest, no zstd, no clipping, at `bits`. */
lh_quant_params lh_quant_params_default(int bits);

/** Check a parameter set; LH_ERR_INVALID_ARG naming the bad field. */
lh_status lh_quant_params_check(const lh_quant_params *p);

/* ------------------------------------------------------------------------ */
/* One frame: DirectQ, backward activation gradients, building block of all. */

/** Scratch and zstd state; one per thread.  Free with lh_quant_ctx_free. */
typedef struct lh_quant_ctx lh_quant_ctx;

/** Create a context (LH_ERR_NOMEM on failure). */
lh_status lh_quant_ctx_create(lh_quant_ctx **out);

/** Free a context (NULL is accepted). */
void lh_quant_ctx_free(lh_quant_ctx *ctx);

/** Largest frame lh_quant_encode can write for this shape; 0 if p or the shape is invalid. */
size_t lh_quant_bound(const lh_quant_params *p, size_t rows, size_t cols);

/** Header fields of a frame, as lh_quant_peek reads and validates them. */
typedef struct lh_quant_info {
    int bits;
    lh_grid grid;
    lh_grouping grouping;
    uint32_t group_size;
    lh_scale_type scale_type;
    int zstd;       /* payload is zstd-compressed */
    int stochastic; /* encoded with stochastic rounding (informational) */
    uint32_t rows, cols;
    size_t frame_bytes; /* header + payload */
} lh_quant_info;

/**
 * Quantize x (rows x cols, row-major) into dst.  `key` seeds stochastic
 * rounding and may be NULL for round-to-nearest.  Writes *dst_len bytes;
 * LH_ERR_CAPACITY if dst_cap < needed (lh_quant_bound is always enough);
 * LH_ERR_INVALID_ARG for NaN/Inf input or an fp16 scale overflow.
 */
lh_status lh_quant_encode(lh_quant_ctx *ctx, const lh_quant_params *p, const float *x, size_t rows,
                          size_t cols, const lh_sr_key *key, void *dst, size_t dst_cap, size_t *dst_len);

/** Read and validate the header of the frame at src (not the payload CRC). */
lh_status lh_quant_peek(const void *src, size_t src_len, lh_quant_info *info);

/**
 * Decode a frame into out (rows x cols); the frame's shape must equal the
 * given one (LH_ERR_MISMATCH otherwise).  Truncated, corrupted or malformed
 * input returns LH_ERR_TRUNCATED / LH_ERR_CORRUPT / LH_ERR_FORMAT and leaves
 * out unspecified but never reads or writes out of bounds.  Trailing bytes
 * after the frame are an error (LH_ERR_FORMAT).
 */
lh_status lh_quant_decode(lh_quant_ctx *ctx, const void *src, size_t src_len, float *out, size_t rows,
                          size_t cols);

/** As lh_quant_decode but accumulates: out += decoded (for reductions). */
lh_status lh_quant_decode_add(lh_quant_ctx *ctx, const void *src, size_t src_len, float *out, size_t rows,
                              size_t cols);

/* ------------------------------------------------------------------------ */
/* Lower-level pieces, exposed for comm/, the CUDA path and tests.          */

/** Level table of a grid in units of the scale: 2^bits ascending values, first -1, last +1. */
const float *lh_quant_levels(lh_grid grid, int bits);

/** Bytes of `n` codes of `bits` each, densely packed. */
size_t lh_pack_bytes(size_t n, int bits);

/** Pack n codes (each < 2^bits) into dst (lh_pack_bytes(n, bits) bytes). */
void lh_pack_codes(const uint8_t *codes, size_t n, int bits, uint8_t *dst);

/** Unpack n codes of `bits` each from src (lh_pack_bytes(n, bits) bytes). */
void lh_unpack_codes(const uint8_t *src, size_t n, int bits, uint8_t *codes);

/** The stochastic-rounding uniform in [0,1) for element `index` under `key` (24-bit resolution). */
float lh_sr_uniform(const lh_sr_key *key, uint64_t index);

/* ------------------------------------------------------------------------ */
/* AQ-SGD activation codec: one side (sender or receiver) of one link.      */

typedef enum lh_aq_storage {
    LH_AQ_STORE_FP32 = 0, /* m(sample) kept exactly */
    LH_AQ_STORE_FP16 = 1, /* half the memory; both sides round m to fp16 after each update */
    LH_AQ_STORE_INT8 = 2  /* a quarter (+4 bytes per row): int8 per value with one fp32 scale per row
                             (token), rounded to nearest even after each update on both sides */
} lh_aq_storage;

typedef struct lh_aq_config {
    size_t sample_rows;   /* tokens per sample (seq) */
    size_t channels;      /* hidden size: the per-channel scale axis */
    uint64_t max_samples; /* sample ids are 0 .. max_samples-1 (dataset indices) */
    lh_aq_storage storage;
    const char *mmap_path; /* NULL: anonymous memory; else a cache file, created or reopened */
    lh_quant_params quant; /* how deltas are quantized (bits 1..8) */
    uint64_t seed;         /* stochastic-rounding seed, equal on both sides */
} lh_aq_config;

typedef struct lh_aq_codec lh_aq_codec;

/** Create one side of a link.  A reopened mmap file must match the config (LH_ERR_MISMATCH). */
lh_status lh_aq_create(const lh_aq_config *cfg, lh_aq_codec **out);

/** Free (and unmap / close the cache file, which keeps its contents). NULL is accepted. */
void lh_aq_free(lh_aq_codec *c);

/** Largest message for a micro-batch of n_samples (all in full precision); 0 if n_samples is 0 or over a 4
 * GiB frame. */
size_t lh_aq_bound(const lh_aq_codec *c, size_t n_samples);

/**
 * Sender: encode the activations of a micro-batch, act = n_samples x
 * sample_rows x channels, whose dataset ids are `ids`.  Samples seen before
 * go as quantized deltas (per-channel scales over the micro-batch); unseen or
 * invalidated ones go in fp32 and seed the cache.  Updates this side's cache.
 */
lh_status lh_aq_encode(lh_aq_codec *c, const float *act, const uint64_t *ids, size_t n_samples, uint64_t step,
                       void *dst, size_t dst_cap, size_t *dst_len);

/** Number of samples in an AQ message (validates the message header only). */
lh_status lh_aq_peek(const void *src, size_t src_len, size_t *n_samples);

/**
 * Receiver: decode a message into act (n_samples x sample_rows x channels,
 * capacity act_cap_samples) and ids_out, updating this side's cache.  When
 * an updated entry's digest differs from the sender's, that entry is
 * invalidated here, its id is written to bad_ids (capacity n_samples;
 * *n_bad counts them), its rows of act are NOT valid, and the call returns
 * LH_ERR_CORRUPT after decoding the rest.  The caller sends bad_ids back;
 * the sender calls lh_aq_invalidate and re-encodes, and the full-precision
 * resend re-seeds both sides.
 */
lh_status lh_aq_decode(lh_aq_codec *c, const void *src, size_t src_len, float *act, size_t act_cap_samples,
                       uint64_t *ids_out, size_t *n_samples, uint64_t *bad_ids, size_t *n_bad);

/** Forget these samples: their next encode/decode is full precision. */
lh_status lh_aq_invalidate(lh_aq_codec *c, const uint64_t *ids, size_t n);

/** Whether sample `id` has a cache entry (1) or not (0); -1 if id is out of range. */
int lh_aq_has(const lh_aq_codec *c, uint64_t id);

/** Digest (64-bit) of the cache entry of `id`, as carried in messages. */
lh_status lh_aq_digest(const lh_aq_codec *c, uint64_t id, uint64_t *digest);

/** Copy the cache entry of `id` out as fp32 (sample_rows x channels). */
lh_status lh_aq_get(const lh_aq_codec *c, uint64_t id, float *out);

/** Raw storage of an entry (for tests and fault injection): pointer and byte count. */
lh_status lh_aq_entry_raw(lh_aq_codec *c, uint64_t id, void **data, size_t *bytes);

/** Flush a file-backed cache to disk (msync); no-op for anonymous memory. */
lh_status lh_aq_sync(lh_aq_codec *c);

/** Bytes of memory (or file) the cache uses per sample entry. */
size_t lh_aq_entry_bytes(const lh_aq_codec *c);

/*
 * Cache state, for checkpoints ("LHAS", docs/formats.md): every entry this
 * side holds, as stored (any storage mode), so a codec that reloads it
 * encodes or decodes the next message exactly as the one that saved it.  On
 * load the storage, sample shape and max_samples must equal the codec's
 * (LH_ERR_MISMATCH); quantizer parameters and seed need not, since the cached
 * values are valid whatever quantized them.
 */

/** Exact size of the state lh_aq_save_state writes now (it grows as samples are seen); 0 if c is NULL. */
size_t lh_aq_state_bytes(const lh_aq_codec *c);

/** Write the state into dst (capacity dst_cap, LH_ERR_CAPACITY if below lh_aq_state_bytes). */
lh_status lh_aq_save_state(const lh_aq_codec *c, void *dst, size_t dst_cap, size_t *dst_len);

/**
 * Validate a state for this codec without applying it: header, config match,
 * exact size, CRC-32C, ids ascending and in range, finite values.  Fails with
 * LH_ERR_TRUNCATED / LH_ERR_FORMAT / LH_ERR_UNSUPPORTED (version) /
 * LH_ERR_MISMATCH / LH_ERR_CORRUPT (CRC) and a message saying what is wrong.
 */
lh_status lh_aq_check_state(const lh_aq_codec *c, const void *src, size_t src_len);

/**
 * Replace this side's cache by a saved state: validated as lh_aq_check_state
 * first; on failure nothing changes.  Entries not in the state are forgotten.
 */
lh_status lh_aq_load_state(lh_aq_codec *c, const void *src, size_t src_len);

/* ------------------------------------------------------------------------ */
/* Gradient codec with error feedback (data-parallel path).                  */

typedef struct lh_grad_codec lh_grad_codec;

/** A codec for a flat gradient of n values; residual starts at zero. */
lh_status lh_grad_create(size_t n, const lh_quant_params *p, uint64_t seed, lh_grad_codec **out);

/** Free (NULL is accepted). */
void lh_grad_free(lh_grad_codec *g);

/** Largest frame for `count` values (one range). */
size_t lh_grad_bound(const lh_grad_codec *g, size_t count);

/**
 * Encode grad[offset .. offset+count) (grad points at the whole gradient) as
 * one frame of shape 1 x count: v = grad + residual; send Q(v); residual =
 * v - deQ(Q(v)).  comm/ calls it per chunk of a reduce-scatter.  Decode with
 * lh_quant_decode / lh_quant_decode_add.
 */
lh_status lh_grad_encode_range(lh_grad_codec *g, const float *grad, size_t offset, size_t count,
                               uint64_t step, void *dst, size_t dst_cap, size_t *dst_len);

/** The whole gradient as one frame (offset 0, count n). */
lh_status lh_grad_encode(lh_grad_codec *g, const float *grad, uint64_t step, void *dst, size_t dst_cap,
                         size_t *dst_len);

/** The error-feedback residual (n values). */
const float *lh_grad_residual(const lh_grad_codec *g);

/** Zero the residual (e.g. when a checkpoint holds none to restore). */
void lh_grad_reset(lh_grad_codec *g);

/*
 * Residual state, for checkpoints ("LHGS", docs/formats.md): the n residual
 * values, so a codec that reloads it encodes the next gradient exactly as the
 * one that saved it.  On load n must equal the codec's (LH_ERR_MISMATCH).
 */

/** Exact size of the state lh_grad_save_state writes (16 + 4n + 4 bytes); 0 if g is NULL. */
size_t lh_grad_state_bytes(const lh_grad_codec *g);

/** Write the state into dst (capacity dst_cap, LH_ERR_CAPACITY if below lh_grad_state_bytes). */
lh_status lh_grad_save_state(const lh_grad_codec *g, void *dst, size_t dst_cap, size_t *dst_len);

/**
 * Validate a state for this codec without applying it: header, n, exact size,
 * CRC-32C, finite values (LH_ERR_TRUNCATED / FORMAT / UNSUPPORTED / MISMATCH /
 * CORRUPT with a message).
 */
lh_status lh_grad_check_state(const lh_grad_codec *g, const void *src, size_t src_len);

/** Replace the residual by a saved state, validated first; on failure nothing changes. */
lh_status lh_grad_load_state(lh_grad_codec *g, const void *src, size_t src_len);

/* ------------------------------------------------------------------------ */
/* CUDA hot paths (device pointers).  Without a CUDA build or device they    */
/* return LH_ERR_UNSUPPORTED.  Same math and wire payload as the CPU code.   */

/** 1 when this build has the kernels and a device is visible, else 0. */
int lh_compress_cuda_available(void);

/**
 * AQ-SGD sender hot path on the device, for n_samples samples of
 * sample_rows x channels fp32 values (d_act and the cache rows d_m, both
 * contiguous n_samples x sample_rows x channels): delta = act - m; per-channel
 * absmax over all rows, clipped to clip_rms * RMS of the column when clip_rms
 * > 0 (lh_quant_params.clip_rms; the sum of squares is accumulated in the CPU
 * encoder's order, so the scales match it bit for bit) -> d_scales[channels]
 * holds the scale actually used (an fp16 value when scale_type is
 * LH_SCALE_FP16, so the host can write the frame in either format); codes
 * packed into d_codes exactly as the CPU frame
 * payload (lh_pack_bytes(n_samples*sample_rows*channels, bits) bytes); then
 * m += deQ(codes).  d_ids (device, n_samples ids) selects stochastic rounding
 * keyed by (seed, id, step) and element index within the sample, as on the
 * CPU; NULL rounds to nearest.  Requires sample_rows*channels % 8 == 0.
 * Returns LH_ERR_INVALID_ARG for NaN/Inf deltas, an fp16 scale overflow
 * (checked on the host after the absmax kernel; nothing is updated then) or a
 * negative / non-finite clip_rms.
 */
lh_status lh_compress_cuda_aq_encode(const float *d_act, float *d_m, size_t n_samples, size_t sample_rows,
                                     size_t channels, int bits, lh_grid grid, lh_scale_type scale_type,
                                     float clip_rms, const uint64_t *d_ids, uint64_t seed, uint64_t step,
                                     float *d_scales, uint8_t *d_codes, void *stream);

/** AQ-SGD receiver hot path: m += deQ(codes, scales); d_act_out = new m (may be NULL). */
lh_status lh_compress_cuda_aq_decode(const uint8_t *d_codes, const float *d_scales, float *d_m,
                                     float *d_act_out, size_t n_samples, size_t sample_rows, size_t channels,
                                     int bits, lh_grid grid, void *stream);

#ifdef __cplusplus
}
#endif
#endif
