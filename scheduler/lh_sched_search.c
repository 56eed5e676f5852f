/*
 * The group-state engine (see lh_sched_search.h).
 *
 * A swap of devices a (group g) and b (group h) only changes the DP costs of
 * g and h and the 2(P-1) matchings that involve g or h, so a move costs
 * O(D^2 + P D^2 log D + TSP) instead of a full O(P^2 D^2 log D) evaluation.
 * The undo buffer keeps the old values so rejected moves cost nothing more.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lh_sched_search.h"

#define TIE_EPS 1e-9

lh_status lh_gs_init(lh_gstate *g, const lh_sched_problem *p)
{
    memset(g, 0, sizeof *g);
    g->p = p;
    g->P = p->stages;
    g->D = p->replicas;
    g->n = p->n;
    int P = g->P, D = g->D, n = g->n;
    g->mem = malloc((size_t)n * sizeof(int));
    g->grp = malloc((size_t)n * sizeof(int));
    g->pos = malloc((size_t)n * sizeof(int));
    g->dpc = calloc((size_t)P, sizeof(double));
    g->dps = calloc((size_t)P, sizeof(double));
    g->E = calloc((size_t)P * P, sizeof(double));
    g->S = calloc((size_t)P * P, sizeof(double));
    g->W = calloc((size_t)P * P, sizeof(double));
    g->order = malloc((size_t)P * sizeof(int));
    g->cbuf = malloc((size_t)D * D * sizeof(double));
    g->mbuf = malloc((size_t)D * sizeof(int));
    g->save = malloc((size_t)(4 * P + 4) * sizeof(double));
    g->save_order = malloc((size_t)P * sizeof(int));
    g->fill = malloc((size_t)P * sizeof(int));
    if (!g->fill || !g->save_order || !g->mem || !g->grp || !g->pos || !g->dpc || !g->dps || !g->E || !g->S || !g->W || !g->order || !g->cbuf ||
        !g->mbuf || !g->save) {
        lh_gs_free(g);
        return lh_fail(LH_ERR_NOMEM, "scheduler search: out of memory for %d devices", n);
    }
    lh_status st = lh_kernel_ws_init(&g->ws, D, P);
    if (st) lh_gs_free(g);
    return st;
}

void lh_gs_free(lh_gstate *g)
{
    free(g->mem);
    free(g->grp);
    free(g->pos);
    free(g->dpc);
    free(g->dps);
    free(g->E);
    free(g->S);
    free(g->W);
    free(g->order);
    free(g->cbuf);
    free(g->mbuf);
    free(g->save);
    free(g->save_order);
    free(g->fill);
    lh_kernel_ws_free(&g->ws);
    memset(g, 0, sizeof *g);
}

static void group_dp(lh_gstate *g, int k)
{
    const int *m = g->mem + (size_t)k * g->D;
    double worst = 0, total = 0;
    for (int i = 0; i < g->D; i++) {
        double s = 0;
        for (int j = 0; j < g->D; j++)
            if (j != i) s += lh_sp_dp_cost(g->p, g->p->c_dp, m[i], m[j]);
        worst = fmax(worst, s);
        total += s;
    }
    g->dpc[k] = worst;
    g->dps[k] = total / g->D;
}

static void edge(lh_gstate *g, int a, int b)
{
    int D = g->D, P = g->P;
    const int *ma = g->mem + (size_t)a * D, *mb = g->mem + (size_t)b * D;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) g->cbuf[i * D + j] = lh_sp_pp_cost(g->p, ma[i], mb[j]);
    double v, s;
    lh_bm_solve(&g->ws, D, g->cbuf, g->mbuf, &v, &s);
    g->E[a * P + b] = g->E[b * P + a] = v;
    g->S[a * P + b] = g->S[b * P + a] = s;
    double w = v + 1e-7 * s / D;
    g->W[a * P + b] = g->W[b * P + a] = w;
}

static void path(lh_gstate *g)
{
    int P = g->P;
    double len;
    if (g->fixed_order)
        for (int k = 0; k < P; k++) g->order[k] = k;
    else
        lh_tsp_solve(&g->ws, P, g->W, g->order, &len, NULL);
    double dp = 0, dps = 0, pe = 0, ps = 0;
    for (int k = 0; k < P; k++) {
        dp = fmax(dp, g->dpc[k]);
        dps += g->dps[k];
    }
    for (int k = 0; k + 1 < P; k++) {
        pe += g->E[g->order[k] * P + g->order[k + 1]];
        ps += g->S[g->order[k] * P + g->order[k + 1]];
    }
    g->cost = dp + 2.0 * pe;
    g->surr = dps / P + 2.0 * ps / g->D;
    g->evaluations++;
}

void lh_gs_load(lh_gstate *g, const int *group_of)
{
    int P = g->P, D = g->D;
    int *cnt = g->fill;
    memset(cnt, 0, (size_t)P * sizeof *cnt);
    for (int d = 0; d < g->n; d++) {
        int k = group_of[d];
        g->grp[d] = k;
        g->pos[d] = cnt[k];
        g->mem[k * D + cnt[k]] = d;
        cnt[k]++;
    }
    for (int k = 0; k < P; k++) group_dp(g, k);
    for (int a = 0; a < P; a++)
        for (int b = a + 1; b < P; b++) edge(g, a, b);
    path(g);
}

void lh_gs_swap(lh_gstate *g, int a, int b)
{
    int P = g->P, D = g->D;
    int ga = g->grp[a], gb = g->grp[b], pa = g->pos[a], pb = g->pos[b];
    /* Save what will change: dpc/dps of both groups, rows ga and gb of E/S (W follows), cost, surr. */
    double *sv = g->save;
    memcpy(g->save_order, g->order, (size_t)P * sizeof(int));
    g->save_cost = g->cost;
    g->save_surr = g->surr;
    sv[0] = g->dpc[ga];
    sv[1] = g->dps[ga];
    sv[2] = g->dpc[gb];
    sv[3] = g->dps[gb];
    for (int k = 0; k < P; k++) {
        sv[4 + k] = g->E[ga * P + k];
        sv[4 + P + k] = g->S[ga * P + k];
        sv[4 + 2 * P + k] = g->E[gb * P + k];
        sv[4 + 3 * P + k] = g->S[gb * P + k];
    }
    g->mem[ga * D + pa] = b;
    g->mem[gb * D + pb] = a;
    g->grp[a] = gb;
    g->pos[a] = pb;
    g->grp[b] = ga;
    g->pos[b] = pa;
    group_dp(g, ga);
    group_dp(g, gb);
    for (int k = 0; k < P; k++) {
        if (k != ga) edge(g, ga, k);
        if (k != gb && k != ga) edge(g, gb, k);
    }
    path(g);
}

void lh_gs_undo_swap(lh_gstate *g, int a, int b)
{
    int P = g->P, D = g->D;
    int ga = g->grp[a], gb = g->grp[b], pa = g->pos[a], pb = g->pos[b];
    /* After the swap a sits in gb's old group; restore membership first. */
    g->mem[ga * D + pa] = b;
    g->mem[gb * D + pb] = a;
    g->grp[a] = gb;
    g->pos[a] = pb;
    g->grp[b] = ga;
    g->pos[b] = pa;
    /* Now a is back in its original group (old ga == current gb). */
    int oa = gb, ob = ga;
    double *sv = g->save;
    g->dpc[oa] = sv[0];
    g->dps[oa] = sv[1];
    g->dpc[ob] = sv[2];
    g->dps[ob] = sv[3];
    for (int k = 0; k < P; k++) {
        double e1 = sv[4 + k], s1 = sv[4 + P + k], e2 = sv[4 + 2 * P + k], s2 = sv[4 + 3 * P + k];
        if (k != oa) {
            g->E[oa * P + k] = g->E[k * P + oa] = e1;
            g->S[oa * P + k] = g->S[k * P + oa] = s1;
            g->W[oa * P + k] = g->W[k * P + oa] = e1 + 1e-7 * s1 / D;
        }
        if (k != ob) {
            g->E[ob * P + k] = g->E[k * P + ob] = e2;
            g->S[ob * P + k] = g->S[k * P + ob] = s2;
            g->W[ob * P + k] = g->W[k * P + ob] = e2 + 1e-7 * s2 / D;
        }
    }
    memcpy(g->order, g->save_order, (size_t)P * sizeof(int));
    g->cost = g->save_cost;
    g->surr = g->save_surr;
}

int lh_gs_better(double c1, double s1, double c2, double s2)
{
    if (isinf(c2) || isinf(c1)) return c1 < c2 ? -1 : (c1 > c2 ? 1 : 0);
    double tol = TIE_EPS * fmax(1.0, fabs(c2));
    if (c1 < c2 - tol) return -1;
    if (c1 > c2 + tol) return 1;
    if (s1 < s2 - TIE_EPS * fmax(1.0, fabs(s2))) return -1;
    if (s1 > s2 + TIE_EPS * fmax(1.0, fabs(s2))) return 1;
    return 0;
}

void lh_gs_local_search(lh_gstate *g, lh_rng *rng, long budget_end)
{
    lh_gs_local_search_restricted(g, rng, budget_end, NULL);
}

void lh_gs_local_search_restricted(lh_gstate *g, lh_rng *rng, long budget_end, const unsigned char *movable)
{
    int n = g->n;
    int *perm = malloc((size_t)n * sizeof *perm);
    if (!perm) return;
    for (int i = 0; i < n; i++) perm[i] = i;
    int improved = 1;
    while (improved && g->evaluations < budget_end) {
        improved = 0;
        lh_rng_shuffle(rng, perm, n);
        for (int ii = 0; ii < n && g->evaluations < budget_end; ii++) {
            int a = perm[ii];
            if (movable && !movable[a]) continue;
            for (int jj = ii + 1; jj < n && g->evaluations < budget_end; jj++) {
                int b = perm[jj];
                if (g->grp[a] == g->grp[b] || (movable && !movable[b])) continue;
                double c0 = g->cost, s0 = g->surr;
                lh_gs_swap(g, a, b);
                if (lh_gs_better(g->cost, g->surr, c0, s0) < 0) {
                    improved = 1;
                } else {
                    lh_gs_undo_swap(g, a, b);
                }
            }
        }
    }
    free(perm);
}

lh_status lh_gs_to_plan(lh_gstate *g, lh_plan **out)
{
    const lh_sched_problem *p = g->p;
    int P = g->P, D = g->D;
    lh_plan *plan;
    lh_status st = lh_plan_create(P, D, p->w.layers, &plan);
    if (st) return st;
    int *cur = malloc((size_t)D * sizeof *cur);
    if (!cur) {
        lh_plan_free(plan);
        return lh_fail(LH_ERR_NOMEM, "scheduler: out of memory");
    }
    int first = g->order[0];
    for (int r = 0; r < D; r++) cur[r] = g->mem[first * D + r];
    for (int r = 0; r < D; r++) plan->device[r * P + 0] = cur[r];
    for (int s = 1; s < P; s++) {
        int ga = g->order[s - 1], gb = g->order[s];
        const int *ma = g->mem + (size_t)ga * D, *mb = g->mem + (size_t)gb * D;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) g->cbuf[i * D + j] = lh_sp_pp_cost(p, ma[i], mb[j]);
        double v, sum;
        lh_bm_solve(&g->ws, D, g->cbuf, g->mbuf, &v, &sum);
        for (int r = 0; r < D; r++) {
            int row = g->pos[cur[r]];
            cur[r] = mb[g->mbuf[row]];
            plan->device[r * P + s] = cur[r];
        }
    }
    free(cur);
    *out = plan;
    return LH_OK;
}
