/*
 * The quantized frame: parameters, scales, the wire header, the optional zstd
 * stage, and the DirectQ encode/decode built from the kernels.
 *
 * Frames are produced in blocks of LHQ_BLOCK elements (codes computed into an
 * L1-resident buffer, then packed straight into the destination) so the input
 * is read once after the absmax pass.  Decoding never trusts the header: every
 * size is recomputed from the shape and compared with what arrived, the CRC is
 * checked before any payload byte is interpreted, and decoded scales must be
 * finite and non-negative.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "lh_io.h"
#include "lh_quant_internal.h"
#include "lh_quant_math.h"

struct lh_quant_ctx {
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    uint8_t *bytes; /* zstd staging / decompressed payload */
    size_t bytes_cap;
    float *scales; /* decoded scales */
    size_t scales_cap;
    double *sumsq; /* encoder, scale clipping: sum of squares per group */
    size_t sumsq_cap;
};

lh_status lh_quant_ctx_create(lh_quant_ctx **out)
{
    *out = NULL;
    lh_quant_ctx *c = calloc(1, sizeof *c);
    if (!c) return lh_fail(LH_ERR_NOMEM, "lh_quant_ctx_create: out of memory");
    *out = c;
    return LH_OK;
}

void lh_quant_ctx_free(lh_quant_ctx *c)
{
    if (!c) return;
    ZSTD_freeCCtx(c->cctx);
    ZSTD_freeDCtx(c->dctx);
    free(c->bytes);
    free(c->scales);
    free(c->sumsq);
    free(c);
}

static lh_status ctx_bytes(lh_quant_ctx *c, size_t n)
{
    if (n <= c->bytes_cap) return LH_OK;
    uint8_t *p = realloc(c->bytes, n);
    if (!p) return lh_fail(LH_ERR_NOMEM, "compress: cannot allocate %zu scratch bytes", n);
    c->bytes = p;
    c->bytes_cap = n;
    return LH_OK;
}

static lh_status ctx_scales(lh_quant_ctx *c, size_t n)
{
    if (n <= c->scales_cap) return LH_OK;
    float *p = realloc(c->scales, n * sizeof *p);
    if (!p) return lh_fail(LH_ERR_NOMEM, "compress: cannot allocate %zu scales", n);
    c->scales = p;
    c->scales_cap = n;
    return LH_OK;
}

static lh_status ctx_sumsq(lh_quant_ctx *c, size_t n)
{
    if (n <= c->sumsq_cap) return LH_OK;
    double *p = realloc(c->sumsq, n * sizeof *p);
    if (!p) return lh_fail(LH_ERR_NOMEM, "compress: cannot allocate %zu sums of squares", n);
    c->sumsq = p;
    c->sumsq_cap = n;
    return LH_OK;
}

/* ---- parameters ------------------------------------------------------------ */

lh_quant_params lh_quant_params_default(int bits)
{
    lh_quant_params p;
    memset(&p, 0, sizeof p);
    p.bits = bits;
    p.grid = LH_GRID_NORMAL;
    p.grouping = LH_GROUP_CHANNEL;
    p.scale_type = LH_SCALE_FP16;
    p.rounding = LH_ROUND_NEAREST;
    p.clip_rms = 0.0f; /* scale = absmax */
    return p;
}

lh_status lh_quant_params_check(const lh_quant_params *p)
{
    if (!p) return lh_fail(LH_ERR_INVALID_ARG, "quant params: NULL");
    if (!((p->bits >= 1 && p->bits <= 8) || p->bits == LH_QUANT_BITS_RAW))
        return lh_fail(LH_ERR_INVALID_ARG, "quant params: bits must be 1..8 or 32, got %d", p->bits);
    if (p->grid != LH_GRID_NORMAL && p->grid != LH_GRID_UNIFORM)
        return lh_fail(LH_ERR_INVALID_ARG, "quant params: unknown grid %d", (int)p->grid);
    if (p->grouping != LH_GROUP_CHANNEL && p->grouping != LH_GROUP_BLOCK && p->grouping != LH_GROUP_TENSOR)
        return lh_fail(LH_ERR_INVALID_ARG, "quant params: unknown grouping %d", (int)p->grouping);
    if (p->grouping == LH_GROUP_BLOCK && p->group_size == 0)
        return lh_fail(LH_ERR_INVALID_ARG, "quant params: block grouping needs group_size >= 1");
    if (p->scale_type != LH_SCALE_FP16 && p->scale_type != LH_SCALE_FP32)
        return lh_fail(LH_ERR_INVALID_ARG, "quant params: unknown scale type %d", (int)p->scale_type);
    if (p->rounding != LH_ROUND_NEAREST && p->rounding != LH_ROUND_STOCHASTIC)
        return lh_fail(LH_ERR_INVALID_ARG, "quant params: unknown rounding %d", (int)p->rounding);
    if (p->zstd_level < 0 || p->zstd_level > ZSTD_maxCLevel())
        return lh_fail(LH_ERR_INVALID_ARG, "quant params: zstd_level must be 0..%d, got %d", ZSTD_maxCLevel(),
                       p->zstd_level);
    if (!(p->clip_rms >= 0.0f && p->clip_rms <= 3.4028235e38f))
        return lh_fail(LH_ERR_INVALID_ARG,
                       "quant params: clip_rms must be 0 (scale = absmax) or a finite k > 0 "
                       "(scale = min(absmax, k * RMS)), got %g",
                       (double)p->clip_rms);
    return LH_OK;
}

size_t lhq_scale_count(lh_grouping g, uint32_t group_size, size_t rows, size_t cols)
{
    switch (g) {
    case LH_GROUP_CHANNEL:
        return cols;
    case LH_GROUP_BLOCK:
        return (rows * cols + group_size - 1) / group_size;
    default:
        return 1;
    }
}

size_t lhq_payload_bytes(int bits, lh_scale_type st, size_t n_scales, size_t n)
{
    if (bits == LH_QUANT_BITS_RAW) return n * 4;
    return n_scales * (st == LH_SCALE_FP16 ? 2 : 4) + lh_pack_bytes(n, bits);
}

static int shape_ok(size_t rows, size_t cols)
{
    return rows >= 1 && cols >= 1 && rows <= UINT32_MAX && cols <= UINT32_MAX && rows * cols <= UINT32_MAX &&
           rows * cols / cols == rows;
}

size_t lh_quant_bound(const lh_quant_params *p, size_t rows, size_t cols)
{
    if (!p || lh_quant_params_check(p) != LH_OK || !shape_ok(rows, cols)) return 0;
    size_t ns = lhq_scale_count(p->grouping, p->group_size, rows, cols);
    size_t raw = lhq_payload_bytes(p->bits, p->scale_type, ns, rows * cols);
    if (raw > UINT32_MAX) return 0;
    return LH_QUANT_HEADER_BYTES + raw;
}

lh_status lhq_make_scale(float absmax, lh_scale_type st, uint8_t *dst, float *scale)
{
    if (st == LH_SCALE_FP16) {
        if (absmax > 65504.0f)
            return lh_fail(LH_ERR_INVALID_ARG,
                           "quantize: group scale %g exceeds the fp16 scale range (65504); use fp32 scales",
                           absmax);
        uint16_t h = lh_qm_half_scale_up(absmax);
        dst[0] = (uint8_t)h;
        dst[1] = (uint8_t)(h >> 8);
        *scale = lh_qm_half_to_float(h);
    } else {
        lh_put_le32(dst, lh_qm_f2u(absmax));
        *scale = absmax;
    }
    return LH_OK;
}

/* ---- header ---------------------------------------------------------------- */

static void write_header(uint8_t *h, const lh_quant_info *info, uint32_t payload_len)
{
    memcpy(h, LH_QUANT_MAGIC, 4);
    h[4] = LH_QUANT_VERSION;
    h[5] = 0; /* fp32 */
    h[6] = (uint8_t)info->bits;
    h[7] = (uint8_t)info->grid;
    h[8] = (uint8_t)info->grouping;
    h[9] = (uint8_t)info->scale_type;
    h[10] = (uint8_t)((info->zstd ? 1 : 0) | (info->stochastic ? 2 : 0));
    h[11] = 0;
    lh_put_le32(h + 12, info->rows);
    lh_put_le32(h + 16, info->cols);
    lh_put_le32(h + 20, info->grouping == LH_GROUP_BLOCK ? info->group_size : 0);
    lh_put_le32(h + 24, payload_len);
}

lh_status lh_quant_peek(const void *src, size_t src_len, lh_quant_info *info)
{
    const uint8_t *h = src;
    memset(info, 0, sizeof *info);
    if (!src || src_len < LH_QUANT_HEADER_BYTES)
        return lh_fail(LH_ERR_TRUNCATED, "quant frame: %zu bytes, shorter than the %d-byte header", src_len,
                       LH_QUANT_HEADER_BYTES);
    if (memcmp(h, LH_QUANT_MAGIC, 4) != 0) return lh_fail(LH_ERR_FORMAT, "quant frame: bad magic");
    if (h[4] != LH_QUANT_VERSION)
        return lh_fail(LH_ERR_UNSUPPORTED, "quant frame: version %u, this build reads %d", h[4],
                       LH_QUANT_VERSION);
    if (h[5] != 0) return lh_fail(LH_ERR_UNSUPPORTED, "quant frame: element type %u (only 0 = fp32)", h[5]);
    int bits = h[6];
    if (!((bits >= 1 && bits <= 8) || bits == LH_QUANT_BITS_RAW))
        return lh_fail(LH_ERR_FORMAT, "quant frame: bits %d not in 1..8 or 32", bits);
    if (h[7] > 1) return lh_fail(LH_ERR_FORMAT, "quant frame: unknown grid %u", h[7]);
    if (h[8] > 2) return lh_fail(LH_ERR_FORMAT, "quant frame: unknown grouping %u", h[8]);
    if (h[9] > 1) return lh_fail(LH_ERR_FORMAT, "quant frame: unknown scale type %u", h[9]);
    if (h[10] & ~3u) return lh_fail(LH_ERR_FORMAT, "quant frame: unknown flags 0x%02x", h[10]);
    if (h[11] != 0) return lh_fail(LH_ERR_FORMAT, "quant frame: reserved byte is %u, not 0", h[11]);
    info->bits = bits;
    info->grid = (lh_grid)h[7];
    info->grouping = (lh_grouping)h[8];
    info->scale_type = (lh_scale_type)h[9];
    info->zstd = h[10] & 1;
    info->stochastic = (h[10] >> 1) & 1;
    info->rows = lh_get_le32(h + 12);
    info->cols = lh_get_le32(h + 16);
    info->group_size = lh_get_le32(h + 20);
    uint32_t payload = lh_get_le32(h + 24);
    if (bits == LH_QUANT_BITS_RAW && (h[7] || h[8] != LH_GROUP_TENSOR || h[9] || info->stochastic))
        return lh_fail(LH_ERR_FORMAT, "quant frame: raw fp32 frame with quantizer fields set");
    if (info->grouping == LH_GROUP_BLOCK ? info->group_size == 0 : info->group_size != 0)
        return lh_fail(LH_ERR_FORMAT, "quant frame: group_size %u inconsistent with grouping %d",
                       info->group_size, (int)info->grouping);
    if (!shape_ok(info->rows, info->cols))
        return lh_fail(LH_ERR_FORMAT, "quant frame: bad shape %u x %u (empty or over 2^32 elements)",
                       info->rows, info->cols);
    size_t ns = lhq_scale_count(info->grouping, info->group_size, info->rows, info->cols);
    size_t raw = lhq_payload_bytes(bits, info->scale_type, ns, (size_t)info->rows * info->cols);
    if (raw > UINT32_MAX) return lh_fail(LH_ERR_FORMAT, "quant frame: payload over 4 GiB");
    if (!info->zstd && payload != raw)
        return lh_fail(LH_ERR_FORMAT, "quant frame: payload is %u bytes, the shape needs %zu", payload, raw);
    if (info->zstd && (payload == 0 || payload >= raw))
        return lh_fail(LH_ERR_FORMAT, "quant frame: zstd payload of %u bytes for %zu raw bytes", payload,
                       raw);
    info->frame_bytes = LH_QUANT_HEADER_BYTES + (size_t)payload;
    if (src_len < info->frame_bytes)
        return lh_fail(LH_ERR_TRUNCATED, "quant frame: %zu bytes, the header declares %zu", src_len,
                       info->frame_bytes);
    return LH_OK;
}

lh_status lhq_frame_open(lh_quant_ctx *ctx, const void *src, size_t src_len, lhq_frame *f)
{
    memset(f, 0, sizeof *f);
    lh_status st = lh_quant_peek(src, src_len, &f->info);
    if (st) return st;
    const uint8_t *h = src;
    size_t payload = f->info.frame_bytes - LH_QUANT_HEADER_BYTES;
    uint32_t crc = lh_crc32c(0, h, 28);
    crc = lh_crc32c(crc, h + LH_QUANT_HEADER_BYTES, payload);
    if (crc != lh_get_le32(h + 28)) return lh_fail(LH_ERR_CORRUPT, "quant frame: CRC mismatch");
    size_t n = (size_t)f->info.rows * f->info.cols;
    f->n_scales = lhq_scale_count(f->info.grouping, f->info.group_size, f->info.rows, f->info.cols);
    size_t raw = lhq_payload_bytes(f->info.bits, f->info.scale_type, f->n_scales, n);
    const uint8_t *p = h + LH_QUANT_HEADER_BYTES;
    if (f->info.zstd) {
        unsigned long long declared = ZSTD_getFrameContentSize(p, payload);
        if (declared != raw)
            return lh_fail(LH_ERR_CORRUPT, "quant frame: zstd frame declares %llu bytes, expected %zu",
                           declared, raw);
        if ((st = ctx_bytes(ctx, raw))) return st;
        if (!ctx->dctx && !(ctx->dctx = ZSTD_createDCtx()))
            return lh_fail(LH_ERR_NOMEM, "quant frame: cannot create zstd context");
        size_t got = ZSTD_decompressDCtx(ctx->dctx, ctx->bytes, raw, p, payload);
        if (ZSTD_isError(got))
            return lh_fail(LH_ERR_CORRUPT, "quant frame: zstd: %s", ZSTD_getErrorName(got));
        if (got != raw)
            return lh_fail(LH_ERR_CORRUPT, "quant frame: zstd gave %zu bytes, expected %zu", got, raw);
        p = ctx->bytes;
    }
    if (f->info.bits == LH_QUANT_BITS_RAW) {
        f->codes = p;
        return LH_OK;
    }
    if ((st = ctx_scales(ctx, f->n_scales))) return st;
    for (size_t g = 0; g < f->n_scales; g++) {
        float s = f->info.scale_type == LH_SCALE_FP16
                      ? lh_qm_half_to_float((uint16_t)(p[2 * g] | p[2 * g + 1] << 8))
                      : lh_qm_u2f(lh_get_le32(p + 4 * g));
        if (!(s >= 0.0f && s <= 3.4028235e38f))
            return lh_fail(LH_ERR_CORRUPT, "quant frame: scale %zu is %g (negative or not finite)", g, s);
        ctx->scales[g] = s;
    }
    f->scales = ctx->scales;
    f->codes = p + f->n_scales * (f->info.scale_type == LH_SCALE_FP16 ? 2 : 4);
    return LH_OK;
}

lh_status lhq_frame_finish(lh_quant_ctx *ctx, const lh_quant_info *info, int zstd_level, uint8_t *dst,
                           size_t raw_len, size_t *frame_len)
{
    lh_quant_info hi = *info;
    size_t payload = raw_len;
    hi.zstd = 0;
    if (zstd_level > 0 && raw_len > 0) {
        lh_status st = ctx_bytes(ctx, raw_len);
        if (st) return st;
        if (!ctx->cctx && !(ctx->cctx = ZSTD_createCCtx()))
            return lh_fail(LH_ERR_NOMEM, "quantize: cannot create zstd context");
        /* only worth it if strictly smaller; a too-small destination means "no" */
        size_t z = ZSTD_compressCCtx(ctx->cctx, ctx->bytes, raw_len - 1, dst + LH_QUANT_HEADER_BYTES, raw_len,
                                     zstd_level);
        if (!ZSTD_isError(z) && z < raw_len) {
            memcpy(dst + LH_QUANT_HEADER_BYTES, ctx->bytes, z);
            payload = z;
            hi.zstd = 1;
        }
    }
    write_header(dst, &hi, (uint32_t)payload);
    uint32_t crc = lh_crc32c(0, dst, 28);
    crc = lh_crc32c(crc, dst + LH_QUANT_HEADER_BYTES, payload);
    lh_put_le32(dst + 28, crc);
    *frame_len = LH_QUANT_HEADER_BYTES + payload;
    return LH_OK;
}

/* ---- encode ---------------------------------------------------------------- */

/*
 * Groups smaller than this are handled a block at a time with per-element
 * scales: setting up the vector kernel for every 64-value group costs more
 * than spreading the scales.
 */
#define LHQ_SMALL_GROUP 512

/* a[i] / b[i] = the (inverse) scale of element b0 + i, for len elements */
static void spread_scales(const float *a, const float *b, uint32_t group, size_t b0, size_t len, float *a_el,
                          float *b_el)
{
    for (size_t i = 0; i < len;) {
        size_t g = (b0 + i) / group, end = (g + 1) * (size_t)group - b0;
        if (end > len) end = len;
        if (a_el)
            for (size_t k = i; k < end; k++)
                a_el[k] = a[g];
        if (b_el)
            for (size_t k = i; k < end; k++)
                b_el[k] = b[g];
        i = end;
    }
}

lh_status lhq_encode(lh_quant_ctx *ctx, const lh_quant_params *p, const float *x, size_t rows, size_t cols,
                     const lh_sr_key *key, void *dst_v, size_t dst_cap, size_t *dst_len, float *residual_out)
{
    uint8_t *dst = dst_v;
    *dst_len = 0;
    lh_status st = lh_quant_params_check(p);
    if (st) return st;
    if (!ctx || !x || !dst) return lh_fail(LH_ERR_INVALID_ARG, "quantize: NULL argument");
    if (!shape_ok(rows, cols))
        return lh_fail(LH_ERR_INVALID_ARG, "quantize: shape %zu x %zu is empty or over 2^32 elements", rows,
                       cols);
    if (p->rounding == LH_ROUND_STOCHASTIC && !key)
        return lh_fail(LH_ERR_INVALID_ARG, "quantize: stochastic rounding needs a key");
    size_t need = lh_quant_bound(p, rows, cols);
    if (need == 0) return lh_fail(LH_ERR_INVALID_ARG, "quantize: frame over 4 GiB");
    if (dst_cap < need)
        return lh_fail(LH_ERR_CAPACITY, "quantize: destination holds %zu bytes, %zu needed", dst_cap, need);
    size_t n = rows * cols;
    lh_quant_info info;
    memset(&info, 0, sizeof info);
    info.bits = p->bits;
    info.rows = (uint32_t)rows;
    info.cols = (uint32_t)cols;
    uint8_t *payload = dst + LH_QUANT_HEADER_BYTES;
    lhq_ref noref = {NULL, NULL};

    if (p->bits == LH_QUANT_BITS_RAW) {
        float amax;
        if (lhq_absmax(x, noref, n, &amax))
            return lh_fail(LH_ERR_INVALID_ARG, "quantize: input has NaN or Inf");
        info.grouping = LH_GROUP_TENSOR;
        memcpy(payload, x, n * 4); /* little-endian hosts only (x86-64, aarch64) */
        if (residual_out) memset(residual_out, 0, n * sizeof(float));
        return lhq_frame_finish(ctx, &info, p->zstd_level, dst, n * 4, dst_len);
    }

    info.grid = p->grid;
    info.grouping = p->grouping;
    info.group_size = p->grouping == LH_GROUP_BLOCK ? p->group_size : 0;
    info.scale_type = p->scale_type;
    info.stochastic = p->rounding == LH_ROUND_STOCHASTIC;
    size_t ns = lhq_scale_count(p->grouping, p->group_size, rows, cols);
    size_t sbytes = p->scale_type == LH_SCALE_FP16 ? 2 : 4;
    if ((st = ctx_scales(ctx, 2 * ns))) return st;
    float *scale = ctx->scales, *inv = ctx->scales + ns;

    /* scales: absmax per group, and with clipping the sums of squares in the same pass */
    int bad;
    double *ss = NULL;
    if (p->clip_rms > 0.0f) {
        if ((st = ctx_sumsq(ctx, ns))) return st;
        ss = ctx->sumsq;
    }
    if (p->grouping == LH_GROUP_CHANNEL) {
        memset(scale, 0, ns * sizeof(float));
        if (ss) {
            memset(ss, 0, ns * sizeof(double));
            bad = lhq_absmax_sumsq_cols(x, noref, rows, cols, scale, ss);
        } else {
            bad = lhq_absmax_cols(x, noref, rows, cols, scale);
        }
    } else if (p->grouping == LH_GROUP_TENSOR) {
        bad = ss ? lhq_absmax_sumsq(x, noref, n, &scale[0], &ss[0]) : lhq_absmax(x, noref, n, &scale[0]);
    } else {
        bad = 0;
        for (size_t g = 0; g < ns; g++) {
            size_t a = g * p->group_size, len = n - a < p->group_size ? n - a : p->group_size;
            bad |= ss ? lhq_absmax_sumsq(x + a, noref, len, &scale[g], &ss[g])
                      : lhq_absmax(x + a, noref, len, &scale[g]);
        }
    }
    if (bad) return lh_fail(LH_ERR_INVALID_ARG, "quantize: input has NaN or Inf");
    if (ss) lhq_clip_scales(scale, ss, ns, p->grouping, p->group_size, rows, cols, p->clip_rms);
    for (size_t g = 0; g < ns; g++) {
        if ((st = lhq_make_scale(scale[g], p->scale_type, payload + g * sbytes, &scale[g]))) return st;
        inv[g] = lh_qm_inv_scale(scale[g]);
    }

    /* codes, block by block */
    lhq_tab t = lhq_tab_get(p->grid, p->bits);
    t.big_u = p->clip_rms > 0.0f; /* values beyond a clipped scale: |u| > 1 */
    uint64_t k64 = key ? lh_qm_key(key->seed, key->sample, key->step) : 0;
    const uint64_t *kp = p->rounding == LH_ROUND_STOCHASTIC ? &k64 : NULL;
    uint8_t *packed = payload + ns * sbytes;
    uint8_t codes[LHQ_BLOCK];
    for (size_t b0 = 0; b0 < n; b0 += LHQ_BLOCK) {
        size_t len = n - b0 < LHQ_BLOCK ? n - b0 : LHQ_BLOCK;
        if (p->grouping == LH_GROUP_BLOCK && p->group_size < LHQ_SMALL_GROUP) {
            /* small groups: one call over the block with the scales spread per element */
            float inv_el[LHQ_BLOCK], sc_el[LHQ_BLOCK];
            spread_scales(inv, scale, p->group_size, b0, len, inv_el, sc_el);
            lhq_codes(x + b0, noref, inv_el, 1, len, &t, kp, (uint32_t)b0, codes);
            if (residual_out)
                lhq_dequant(codes, sc_el, 1, len, &t, LHQ_DQ_RESIDUAL, residual_out + b0, NULL,
                            (float *)(x + b0));
            lh_pack_codes(codes, len, p->bits, packed + b0 * (size_t)p->bits / 8);
            continue;
        }
        /* split the block into runs that share one scale stride */
        for (size_t i = b0; i < b0 + len;) {
            size_t run;
            const float *is;
            const float *sc;
            int stride;
            if (p->grouping == LH_GROUP_CHANNEL) {
                size_t c = i % cols;
                run = cols - c;
                is = inv + c;
                sc = scale + c;
                stride = 1;
            } else if (p->grouping == LH_GROUP_TENSOR) {
                run = b0 + len - i;
                is = inv;
                sc = scale;
                stride = 0;
            } else {
                size_t g = i / p->group_size;
                run = (g + 1) * p->group_size - i;
                is = inv + g;
                sc = scale + g;
                stride = 0;
            }
            if (run > b0 + len - i) run = b0 + len - i;
            lhq_codes(x + i, noref, is, stride, run, &t, kp, (uint32_t)i, codes + (i - b0));
            if (residual_out)
                lhq_dequant(codes + (i - b0), sc, stride, run, &t, LHQ_DQ_RESIDUAL, residual_out + i, NULL,
                            (float *)(x + i));
            i += run;
        }
        lh_pack_codes(codes, len, p->bits, packed + b0 * (size_t)p->bits / 8);
    }
    return lhq_frame_finish(ctx, &info, p->zstd_level, dst, ns * sbytes + lh_pack_bytes(n, p->bits), dst_len);
}

lh_status lh_quant_encode(lh_quant_ctx *ctx, const lh_quant_params *p, const float *x, size_t rows,
                          size_t cols, const lh_sr_key *key, void *dst, size_t dst_cap, size_t *dst_len)
{
    return lhq_encode(ctx, p, x, rows, cols, key, dst, dst_cap, dst_len, NULL);
}

/* ---- decode ---------------------------------------------------------------- */

static lh_status decode_impl(lh_quant_ctx *ctx, const void *src, size_t src_len, float *out, size_t rows,
                             size_t cols, int add)
{
    if (!ctx || !out) return lh_fail(LH_ERR_INVALID_ARG, "dequantize: NULL argument");
    lhq_frame f;
    lh_status st = lhq_frame_open(ctx, src, src_len, &f);
    if (st) return st;
    if (f.info.frame_bytes != src_len)
        return lh_fail(LH_ERR_FORMAT, "quant frame: %zu trailing bytes after the frame",
                       src_len - f.info.frame_bytes);
    if (f.info.rows != rows || f.info.cols != cols)
        return lh_fail(LH_ERR_MISMATCH, "quant frame: shape %u x %u, expected %zu x %zu", f.info.rows,
                       f.info.cols, rows, cols);
    size_t n = rows * cols;
    if (f.info.bits == LH_QUANT_BITS_RAW) {
        if (!add) {
            memcpy(out, f.codes, n * 4);
        } else {
            for (size_t i = 0; i < n; i++) {
                float v;
                memcpy(&v, f.codes + 4 * i, 4);
                out[i] += v;
            }
        }
        return LH_OK;
    }
    lhq_tab t = lhq_tab_get(f.info.grid, f.info.bits);
    uint8_t codes[LHQ_BLOCK];
    lhq_dq_mode mode = add ? LHQ_DQ_ADD : LHQ_DQ_STORE;
    for (size_t b0 = 0; b0 < n; b0 += LHQ_BLOCK) {
        size_t len = n - b0 < LHQ_BLOCK ? n - b0 : LHQ_BLOCK;
        lh_unpack_codes(f.codes + b0 * (size_t)f.info.bits / 8, len, f.info.bits, codes);
        if (f.info.grouping == LH_GROUP_BLOCK && f.info.group_size < LHQ_SMALL_GROUP) {
            float sc_el[LHQ_BLOCK];
            spread_scales(f.scales, NULL, f.info.group_size, b0, len, sc_el, NULL);
            lhq_dequant(codes, sc_el, 1, len, &t, mode, out + b0, NULL, NULL);
            continue;
        }
        for (size_t i = b0; i < b0 + len;) {
            size_t run;
            const float *sc;
            int stride;
            if (f.info.grouping == LH_GROUP_CHANNEL) {
                size_t c = i % cols;
                run = cols - c;
                sc = f.scales + c;
                stride = 1;
            } else if (f.info.grouping == LH_GROUP_TENSOR) {
                run = b0 + len - i;
                sc = f.scales;
                stride = 0;
            } else {
                size_t g = i / f.info.group_size;
                run = (g + 1) * (size_t)f.info.group_size - i;
                sc = f.scales + g;
                stride = 0;
            }
            if (run > b0 + len - i) run = b0 + len - i;
            lhq_dequant(codes + (i - b0), sc, stride, run, &t, mode, out + i, NULL, NULL);
            i += run;
        }
    }
    return LH_OK;
}

lh_status lh_quant_decode(lh_quant_ctx *ctx, const void *src, size_t src_len, float *out, size_t rows,
                          size_t cols)
{
    return decode_impl(ctx, src, src_len, out, rows, cols, 0);
}

lh_status lh_quant_decode_add(lh_quant_ctx *ctx, const void *src, size_t src_len, float *out, size_t rows,
                              size_t cols)
{
    return decode_impl(ctx, src, src_len, out, rows, cols, 1);
}

float lh_sr_uniform(const lh_sr_key *key, uint64_t index)
{
    uint64_t k = lh_qm_key(key->seed, key->sample, key->step);
    if (index >> 32) k = lh_qm_mix64(k + (index >> 32)); /* streams of >= 2^32 elements */
    return lh_qm_uniform(lh_qm_hash(k, (uint32_t)index));
}
