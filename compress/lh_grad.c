/*
 * Gradient codec with error feedback for the data-parallel path.
 *
 * Quantizing a gradient throws information away; error feedback keeps it: the
 * part that was not sent (v - deQ(Q(v))) is added to the next step's gradient,
 * so over steps every bit of signal arrives.  The residual is computed by the
 * encoder from the codes it just produced (same kernels as the decoder), so
 * the residual is exactly what the receivers did not get.  Ranges let comm/
 * compress each chunk of a reduce-scatter separately; each range keeps its own
 * slice of the residual.  With scale clipping (params.clip_rms > 0) the part
 * of an outlier beyond the clipped scale is not lost either: it stays in the
 * residual and goes out over the following steps.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lh_io.h"
#include "lh_quant_internal.h"

struct lh_grad_codec {
    size_t n;
    lh_quant_params params;
    uint64_t seed;
    float *residual;
    float *v; /* grad + residual, per range */
    lh_quant_ctx *ctx;
};

lh_status lh_grad_create(size_t n, const lh_quant_params *p, uint64_t seed, lh_grad_codec **out)
{
    *out = NULL;
    lh_status st = lh_quant_params_check(p);
    if (st) return lh_fail_prefix(st, "grad codec");
    if (n == 0 || n > UINT32_MAX) return lh_fail(LH_ERR_INVALID_ARG, "grad codec: %zu values (1..2^32-1)", n);
    if (p->grouping == LH_GROUP_CHANNEL)
        return lh_fail(LH_ERR_INVALID_ARG,
                       "grad codec: per-channel scales make no sense for a flat 1 x n gradient; "
                       "use block or tensor grouping");
    lh_grad_codec *g = calloc(1, sizeof *g);
    if (!g) return lh_fail(LH_ERR_NOMEM, "grad codec: out of memory");
    g->n = n;
    g->params = *p;
    g->seed = seed;
    g->residual = calloc(n, sizeof(float));
    g->v = malloc(n * sizeof(float));
    if (!g->residual || !g->v || (st = lh_quant_ctx_create(&g->ctx))) {
        lh_grad_free(g);
        return st ? st : lh_fail(LH_ERR_NOMEM, "grad codec: cannot allocate 2 x %zu floats", n);
    }
    *out = g;
    return LH_OK;
}

void lh_grad_free(lh_grad_codec *g)
{
    if (!g) return;
    free(g->residual);
    free(g->v);
    lh_quant_ctx_free(g->ctx);
    free(g);
}

size_t lh_grad_bound(const lh_grad_codec *g, size_t count)
{
    return lh_quant_bound(&g->params, 1, count);
}

lh_status lh_grad_encode_range(lh_grad_codec *g, const float *grad, size_t offset, size_t count,
                               uint64_t step, void *dst, size_t dst_cap, size_t *dst_len)
{
    *dst_len = 0;
    if (!g || !grad || !dst) return lh_fail(LH_ERR_INVALID_ARG, "grad encode: NULL argument");
    if (count == 0 || offset > g->n || count > g->n - offset)
        return lh_fail(LH_ERR_INVALID_ARG, "grad encode: range [%zu, %zu) outside the %zu values", offset,
                       offset + count, g->n);
    float *v = g->v + offset, *r = g->residual + offset;
    const float *x = grad + offset;
    for (size_t i = 0; i < count; i++)
        v[i] = x[i] + r[i];
    /* the stream key: (seed, range offset, step), so ranges never share random bits */
    lh_sr_key key = {g->seed, offset, step};
    lh_status st = lhq_encode(g->ctx, &g->params, v, 1, count, &key, dst, dst_cap, dst_len, r);
    if (st) {
        /* nothing was sent: keep the residual as it was */
        return lh_fail_prefix(st, "grad encode");
    }
    return LH_OK;
}

lh_status lh_grad_encode(lh_grad_codec *g, const float *grad, uint64_t step, void *dst, size_t dst_cap,
                         size_t *dst_len)
{
    return lh_grad_encode_range(g, grad, 0, g ? g->n : 0, step, dst, dst_cap, dst_len);
}

const float *lh_grad_residual(const lh_grad_codec *g)
{
    return g->residual;
}

void lh_grad_reset(lh_grad_codec *g)
{
    memset(g->residual, 0, g->n * sizeof(float));
}

/*
 * Residual state for checkpoints (docs/formats.md, "gradient residual
 * state"): "LHGS", u32 version, u64 n, n fp32 values, CRC-32C of all before.
 */

#define GRAD_STATE_MAGIC   "LHGS"
#define GRAD_STATE_VERSION 1
#define GRAD_STATE_HEADER  16

size_t lh_grad_state_bytes(const lh_grad_codec *g)
{
    return g ? GRAD_STATE_HEADER + 4 * g->n + 4 : 0;
}

lh_status lh_grad_save_state(const lh_grad_codec *g, void *dst_v, size_t dst_cap, size_t *dst_len)
{
    uint8_t *dst = dst_v;
    if (dst_len) *dst_len = 0;
    if (!g || !dst || !dst_len) return lh_fail(LH_ERR_INVALID_ARG, "grad save state: NULL argument");
    size_t need = lh_grad_state_bytes(g);
    if (dst_cap < need)
        return lh_fail(LH_ERR_CAPACITY, "grad save state: destination holds %zu bytes, %zu needed", dst_cap,
                       need);
    memcpy(dst, GRAD_STATE_MAGIC, 4);
    lh_put_le32(dst + 4, GRAD_STATE_VERSION);
    lh_put_le64(dst + 8, g->n);
    for (size_t i = 0; i < g->n; i++) {
        uint32_t u;
        memcpy(&u, &g->residual[i], 4);
        lh_put_le32(dst + GRAD_STATE_HEADER + 4 * i, u);
    }
    lh_put_le32(dst + need - 4, lh_crc32c(0, dst, need - 4));
    *dst_len = need;
    return LH_OK;
}

lh_status lh_grad_check_state(const lh_grad_codec *g, const void *src, size_t len)
{
    const uint8_t *s = src;
    if (!g) return lh_fail(LH_ERR_INVALID_ARG, "grad state: NULL codec");
    if (!s || len < GRAD_STATE_HEADER + 4)
        return lh_fail(LH_ERR_TRUNCATED, "grad state: %zu bytes, shorter than the %d-byte minimum", len,
                       GRAD_STATE_HEADER + 4);
    if (memcmp(s, GRAD_STATE_MAGIC, 4) != 0)
        return lh_fail(LH_ERR_FORMAT, "grad state: bad magic (not a gradient residual state)");
    if (lh_get_le32(s + 4) != GRAD_STATE_VERSION)
        return lh_fail(LH_ERR_UNSUPPORTED, "grad state: version %u, this build reads %d", lh_get_le32(s + 4),
                       GRAD_STATE_VERSION);
    uint64_t n = lh_get_le64(s + 8);
    if (n != g->n)
        return lh_fail(LH_ERR_MISMATCH, "grad state: residual of %llu values, this codec has %zu",
                       (unsigned long long)n, g->n);
    size_t need = lh_grad_state_bytes(g);
    if (len < need)
        return lh_fail(LH_ERR_TRUNCATED, "grad state: %zu bytes, %zu values need %zu", len, g->n, need);
    if (len > need) return lh_fail(LH_ERR_FORMAT, "grad state: %zu trailing bytes", len - need);
    uint32_t want = lh_get_le32(s + need - 4), got = lh_crc32c(0, s, need - 4);
    if (want != got)
        return lh_fail(LH_ERR_CORRUPT, "grad state: CRC-32C mismatch (stored %08x, computed %08x)", want,
                       got);
    for (size_t i = 0; i < g->n; i++) {
        uint32_t u = lh_get_le32(s + GRAD_STATE_HEADER + 4 * i);
        float v;
        memcpy(&v, &u, 4);
        if (!isfinite(v)) return lh_fail(LH_ERR_FORMAT, "grad state: residual value %zu is not finite", i);
    }
    return LH_OK;
}

lh_status lh_grad_load_state(lh_grad_codec *g, const void *src, size_t len)
{
    lh_status st = lh_grad_check_state(g, src, len);
    if (st) return st;
    const uint8_t *s = src;
    for (size_t i = 0; i < g->n; i++) {
        uint32_t u = lh_get_le32(s + GRAD_STATE_HEADER + 4 * i);
        memcpy(&g->residual[i], &u, 4);
    }
    return LH_OK;
}
