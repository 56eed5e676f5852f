/*
 * Internal kernels shared by the frame codec (lh_quant.c), the AQ-SGD codec
 * (lh_aq.c) and the gradient codec (lh_grad.c).  They work on blocks of at
 * most LHQ_BLOCK elements so codes stay in L1 between quantizing, packing and
 * the cache update, and every side of a link runs literally the same function
 * for the same step (which is what keeps AQ-SGD caches bit-identical).
 */
#ifndef LH_QUANT_INTERNAL_H
#define LH_QUANT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "lh_bytes.h"
#include "lh_compress.h"

#define LHQ_BLOCK 2048 /* multiple of 32 (digest lanes) and of 8 (byte-aligned packing) */

/** The tables of one grid and width. */
typedef struct lhq_tab {
    const float *levels, *mids, *invgap;
    const int16_t *thr15; /* positive Q15 thresholds (round to nearest) */
    int bits;
    int big_u; /* 0 from lhq_tab_get; an encoder with clipped scales sets 1: |u| may be far above 1 */
} lhq_tab;

lhq_tab lhq_tab_get(lh_grid grid, int bits);

/** Where the "m" of a delta (x - m) lives, if anywhere. */
typedef struct lhq_ref {
    const float *f32;    /* or */
    const uint16_t *f16; /* both NULL: no reference, quantize x itself */
} lhq_ref;

/**
 * colmax[c] = max(colmax[c], |x - m|) over rows; returns nonzero if any value
 * is NaN or infinite.
 */
int lhq_absmax_cols(const float *x, lhq_ref m, size_t rows, size_t cols, float *colmax);

/** max |x - m| over n values into *amax; nonzero if any value is NaN or infinite. */
int lhq_absmax(const float *x, lhq_ref m, size_t n, float *amax);

/*
 * The same passes for scale clipping, also summing squares (lh_quant_math.h):
 * colss[c] += sum over rows of lh_qm_sq(x - m), row after row; and *sumsq =
 * the 8-lane sum of lh_qm_sq(x - m) over the n values (element i into lane
 * i % 8, lanes added 0..7).  colmax / *amax and the return value are exactly
 * those of lhq_absmax_cols / lhq_absmax.
 */
int lhq_absmax_sumsq_cols(const float *x, lhq_ref m, size_t rows, size_t cols, float *colmax, double *colss);
int lhq_absmax_sumsq(const float *x, lhq_ref m, size_t n, float *amax, double *sumsq);

/** Scalar twins of the two above (the reference the vector paths are tested against). */
int lhq_absmax_sumsq_cols_scalar(const float *x, lhq_ref m, size_t rows, size_t cols, float *colmax,
                                 double *colss);
int lhq_absmax_sumsq_scalar(const float *x, lhq_ref m, size_t n, float *amax, double *sumsq);

/**
 * codes[i] for n values u = (x - m) * inv_s[i * s_stride]; stochastic when
 * key is non-NULL, with element indices idx0 .. idx0+n-1.  |u| <= ~1 unless
 * t->big_u is set (scale clipping); then values beyond +-1 saturate as the
 * scalar rules say, whatever their size.
 */
void lhq_codes(const float *x, lhq_ref m, const float *inv_s, int s_stride, size_t n, const lhq_tab *t,
               const uint64_t *key, uint32_t idx0, uint8_t *codes);

typedef enum lhq_dq_mode {
    LHQ_DQ_STORE,      /* out = v */
    LHQ_DQ_ADD,        /* out += v */
    LHQ_DQ_UPDATE_F32, /* m32 += v; act (if non-NULL) = new m */
    LHQ_DQ_UPDATE_F16, /* m16 = half(m16 + v); act (if non-NULL) = new m */
    LHQ_DQ_RESIDUAL    /* out = x - v (x passed as act) */
} lhq_dq_mode;

/** v = t->levels[code] * s[i * s_stride]; applied per mode (see above). */
void lhq_dequant(const uint8_t *codes, const float *s, int s_stride, size_t n, const lhq_tab *t,
                 lhq_dq_mode mode, float *out, uint16_t *m16, float *act);

/** 32 lanes of the entry digest; element i of an entry feeds lane i & 31. */
typedef struct lhq_digest {
    uint32_t lane[32];
} lhq_digest;

void lhq_digest_init(lhq_digest *d);
/** Feed n stored values starting at entry element index i0 (i0 % 32 == 0 unless n is the tail). */
void lhq_digest_f32(lhq_digest *d, const float *v, size_t i0, size_t n);
void lhq_digest_f16(lhq_digest *d, const uint16_t *v, size_t i0, size_t n);
void lhq_digest_u8(lhq_digest *d, const uint8_t *v, size_t i0, size_t n);
uint64_t lhq_digest_final(const lhq_digest *d, uint64_t n_elems);

/** A validated, decompressed view of a frame's payload. */
typedef struct lhq_frame {
    lh_quant_info info;
    const float *scales; /* n_scales floats (NULL for raw) */
    size_t n_scales;
    const uint8_t *codes; /* packed codes, or raw fp32 bytes for bits 32 */
} lhq_frame;

/** Number of scales of a frame of this shape. */
size_t lhq_scale_count(lh_grouping g, uint32_t group_size, size_t rows, size_t cols);

/** Bytes of the uncompressed payload. */
size_t lhq_payload_bytes(int bits, lh_scale_type st, size_t n_scales, size_t n);

/** Validate, CRC-check and (if needed) decompress a frame into ctx scratch. */
lh_status lhq_frame_open(lh_quant_ctx *ctx, const void *src, size_t src_len, lhq_frame *f);

/**
 * Finish a frame whose header fields are in `info` and whose uncompressed
 * payload (raw_len bytes) is already at dst + 32: apply the zstd stage when it
 * shrinks the payload, write header and CRC, set *frame_len.
 */
lh_status lhq_frame_finish(lh_quant_ctx *ctx, const lh_quant_info *info, int zstd_level, uint8_t *dst,
                           size_t raw_len, size_t *frame_len);

/**
 * Scale clipping in the encoders: scale[g] = lh_qm_clip_scale(scale[g], ss[g],
 * count of group g, k) for the ns groups of a frame of rows x cols (per
 * channel: rows values per group; block: group_size, the last group possibly
 * shorter; tensor: all).  Called between the absmax pass and lhq_make_scale.
 */
void lhq_clip_scales(float *scale, const double *ss, size_t ns, lh_grouping g, uint32_t group_size,
                     size_t rows, size_t cols, float k);

/**
 * Compute the scale of an absmax: fp16 rounds up so absmax stays representable
 * (fails above 65504); writes the stored form into dst and returns the float
 * scale used for quantizing in *scale.
 */
lh_status lhq_make_scale(float absmax, lh_scale_type st, uint8_t *dst, float *scale);

/**
 * The frame encoder behind lh_quant_encode; when residual_out is non-NULL it
 * also writes residual_out = x - deQ(Q(x)) (the gradient codec's error feedback).
 */
lh_status lhq_encode(lh_quant_ctx *ctx, const lh_quant_params *p, const float *x, size_t rows, size_t cols,
                     const lh_sr_key *key, void *dst, size_t dst_cap, size_t *dst_len, float *residual_out);

#endif
