/*
 * Gradient codec with error feedback for the data-parallel path.
 *
 * Quantizing a gradient throws information away; error feedback keeps it: the
 * part that was not sent (v - deQ(Q(v))) is added to the next step's gradient,
 * so over steps every bit of signal arrives.  The residual is computed by the
 * encoder from the codes it just produced (same kernels as the decoder), so
 * the residual is exactly what the receivers did not get.  Ranges let comm/
 * compress each chunk of a reduce-scatter separately; each range keeps its own
 * slice of the residual.
 */
#include <stdlib.h>
#include <string.h>

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
