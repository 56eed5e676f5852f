/*
 * Link emulation arithmetic (see lh_netem.h).  Matrices are n x n because
 * emulation runs on one machine with a handful of ranks; a link clock is the
 * time its last queued bit leaves.
 */
#include "lh_netem.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lh_netem {
    int n;
    double time_scale;
    double *latency_s;     /* n*n */
    double *bandwidth_bps; /* n*n */
    double *free_at_s;     /* n*n: when link src->dst finishes its queued bits */
};

lh_status lh_netem_create(int n, const double *latency_s, const double *bandwidth_bps, double time_scale,
                          lh_netem **out)
{
    if (!out || !latency_s || !bandwidth_bps) return lh_fail(LH_ERR_INVALID_ARG, "netem: NULL argument");
    *out = NULL;
    if (n < 1 || n > 4096) return lh_fail(LH_ERR_INVALID_ARG, "netem: %d ranks, expected 1..4096", n);
    if (!(time_scale >= 1e-6 && time_scale <= 1e9))
        return lh_fail(LH_ERR_INVALID_ARG, "netem: time scale %g outside [1e-6, 1e9]", time_scale);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (i == j) continue;
            double l = latency_s[(size_t)i * n + j], b = bandwidth_bps[(size_t)i * n + j];
            if (!(l >= 0 && l < 3600))
                return lh_fail(LH_ERR_INVALID_ARG, "netem: link %d->%d latency %g s outside [0, 3600)", i, j, l);
            if (!(b > 0 && isfinite(b)))
                return lh_fail(LH_ERR_INVALID_ARG, "netem: link %d->%d bandwidth %g bit/s must be > 0", i, j, b);
        }
    lh_netem *e = calloc(1, sizeof *e);
    size_t nn = (size_t)n * n;
    if (e) {
        e->latency_s = malloc(nn * sizeof(double));
        e->bandwidth_bps = malloc(nn * sizeof(double));
        e->free_at_s = calloc(nn, sizeof(double));
    }
    if (!e || !e->latency_s || !e->bandwidth_bps || !e->free_at_s) {
        lh_netem_free(e);
        return lh_fail(LH_ERR_NOMEM, "netem: out of memory for %d ranks", n);
    }
    e->n = n;
    e->time_scale = time_scale;
    memcpy(e->latency_s, latency_s, nn * sizeof(double));
    memcpy(e->bandwidth_bps, bandwidth_bps, nn * sizeof(double));
    for (int i = 0; i < n; i++) { /* the diagonal is never scheduled; keep it sane */
        e->latency_s[(size_t)i * n + i] = 0;
        e->bandwidth_bps[(size_t)i * n + i] = 1e18;
    }
    *out = e;
    return LH_OK;
}

lh_status lh_netem_create_uniform(int n, double latency_s, double bandwidth_bps, double time_scale,
                                  lh_netem **out)
{
    if (n < 1 || n > 4096) return lh_fail(LH_ERR_INVALID_ARG, "netem: %d ranks, expected 1..4096", n);
    size_t nn = (size_t)n * n;
    double *l = malloc(nn * sizeof(double)), *b = malloc(nn * sizeof(double));
    if (!l || !b) {
        free(l);
        free(b);
        return lh_fail(LH_ERR_NOMEM, "netem: out of memory");
    }
    for (size_t i = 0; i < nn; i++) {
        l[i] = latency_s;
        b[i] = bandwidth_bps;
    }
    lh_status s = lh_netem_create(n, l, b, time_scale, out);
    free(l);
    free(b);
    return s;
}

lh_status lh_netem_clone(const lh_netem *e, lh_netem **out)
{
    if (!e) return lh_fail(LH_ERR_INVALID_ARG, "netem clone: NULL");
    return lh_netem_create(e->n, e->latency_s, e->bandwidth_bps, e->time_scale, out);
}

void lh_netem_free(lh_netem *e)
{
    if (!e) return;
    free(e->latency_s);
    free(e->bandwidth_bps);
    free(e->free_at_s);
    free(e);
}

int lh_netem_size(const lh_netem *e)
{
    return e ? e->n : 0;
}

double lh_netem_time_scale(const lh_netem *e)
{
    return e ? e->time_scale : 1.0;
}

lh_status lh_netem_link(const lh_netem *e, int src, int dst, double *latency_s, double *bandwidth_bps)
{
    if (!e || src < 0 || dst < 0 || src >= e->n || dst >= e->n)
        return lh_fail(LH_ERR_INVALID_ARG, "netem: link %d->%d outside %d ranks", src, dst, e ? e->n : 0);
    if (latency_s) *latency_s = e->latency_s[(size_t)src * e->n + dst];
    if (bandwidth_bps) *bandwidth_bps = e->bandwidth_bps[(size_t)src * e->n + dst];
    return LH_OK;
}

lh_status lh_netem_schedule(lh_netem *e, int src, int dst, double now_s, size_t wire_bytes, double *sent_s,
                            double *deliver_s)
{
    if (!e || src < 0 || dst < 0 || src >= e->n || dst >= e->n)
        return lh_fail(LH_ERR_INVALID_ARG, "netem: link %d->%d outside %d ranks", src, dst, e ? e->n : 0);
    size_t k = (size_t)src * e->n + dst;
    double start = now_s > e->free_at_s[k] ? now_s : e->free_at_s[k];
    double done = start + (double)wire_bytes * 8.0 / e->bandwidth_bps[k] * e->time_scale;
    if (src == dst) done = start; /* a rank talking to itself uses no link */
    e->free_at_s[k] = done;
    if (sent_s) *sent_s = done;
    if (deliver_s) *deliver_s = done + (src == dst ? 0 : e->latency_s[k] * e->time_scale);
    return LH_OK;
}

void lh_netem_reset(lh_netem *e)
{
    if (e) memset(e->free_at_s, 0, (size_t)e->n * e->n * sizeof(double));
}

void lh_netem_describe(const lh_netem *e, char *out, size_t cap)
{
    if (!e) {
        snprintf(out, cap, "real network (no emulation)");
        return;
    }
    double lmin = INFINITY, lmax = 0, bmin = INFINITY, bmax = 0;
    for (int i = 0; i < e->n; i++)
        for (int j = 0; j < e->n; j++) {
            if (i == j) continue;
            size_t k = (size_t)i * e->n + j;
            lmin = fmin(lmin, e->latency_s[k]);
            lmax = fmax(lmax, e->latency_s[k]);
            bmin = fmin(bmin, e->bandwidth_bps[k]);
            bmax = fmax(bmax, e->bandwidth_bps[k]);
        }
    if (e->n < 2) lmin = lmax = bmin = bmax = 0;
    snprintf(out, cap,
             "EMULATED network: %d ranks, latency %.3g..%.3g ms, bandwidth %.4g..%.4g Mbit/s, time scale x%g "
             "(wall-clock delays are %g x these)",
             e->n, lmin * 1e3, lmax * 1e3, bmin / 1e6, bmax / 1e6, e->time_scale, e->time_scale);
}
