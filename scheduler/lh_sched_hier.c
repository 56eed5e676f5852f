/*
 * "hier": the scalable placement strategy (10,000 devices in well under a
 * second of search).
 *
 * Idea: devices of one region are interchangeable as far as links go, so the
 * hard part of DT-FM placement is at the level of regions, not devices.
 *  1. Order the regions along a short open path of pipeline link costs
 *     (exact Held-Karp for few regions, nearest neighbour + 2-opt beyond).
 *  2. Lay the devices out in that order (fastest devices first inside a
 *     region), so any contiguous run of the sequence sits in one region or in
 *     neighbouring ones.
 *  3. Cut the sequence into the plan with a family of tilings: blocks of `a`
 *     consecutive stages filled replica by replica (a = P keeps each pipeline
 *     inside a region: DP crosses regions; a = 1 keeps each DP group inside a
 *     region: the pipeline crosses regions), and blocks of `b` replicas filled
 *     stage by stage; intermediate tilings trade the two.
 *  4. Score every tiling with the exact DT-FM cost of the plan it writes: the
 *     pipeline part in O(N), the DP part in O(P (D + R^2)) from per-region
 *     counts when links are region-level (no device-pair overrides), and keep
 *     the best.  The cost reported is the cost of the plan written.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lh_sched_internal.h"
#include "lh_time.h"

typedef struct hier_ctx {
    const lh_sched_problem *p;
    int n, P, D, R;
    int *seq;       /* device sequence */
    int *dev;       /* candidate plan: dev[r*P + s] */
    int *region;    /* region of each device (compacted to used regions) */
    double *wdp;    /* R*R DP term per pair of regions (distinct devices) */
    int *cnt;       /* R, zero between uses */
    int *present;   /* regions present in the group being scored */
} hier_ctx;

static double group_dp_direct(const hier_ctx *h, int s)
{
    double worst = 0;
    for (int i = 0; i < h->D; i++) {
        double sum = 0;
        for (int j = 0; j < h->D; j++)
            if (i != j) sum += lh_sp_dp_cost(h->p, h->p->c_dp, h->dev[i * h->P + s], h->dev[j * h->P + s]);
        worst = fmax(worst, sum);
    }
    return worst;
}

/* O(D + k^2) with k the number of distinct regions in the group (cnt is all-zero between calls). */
static double group_dp_regions(hier_ctx *h, int s)
{
    size_t R = (size_t)h->R;
    int k = 0;
    for (int r = 0; r < h->D; r++) {
        int reg = h->region[h->dev[r * h->P + s]];
        if (h->cnt[reg]++ == 0) h->present[k++] = reg;
    }
    double worst = 0;
    for (int i = 0; i < k; i++) {
        int a = h->present[i];
        double sum = -h->wdp[a * R + a];
        for (int j = 0; j < k; j++) sum += h->cnt[h->present[j]] * h->wdp[a * R + h->present[j]];
        worst = fmax(worst, sum);
    }
    for (int i = 0; i < k; i++) h->cnt[h->present[i]] = 0;
    return worst;
}

static double candidate_cost(hier_ctx *h)
{
    double dp = 0, pp = 0;
    int fast = h->p->mode == 1;
    for (int s = 0; s < h->P; s++) dp = fmax(dp, fast ? group_dp_regions(h, s) : group_dp_direct(h, s));
    for (int s = 0; s + 1 < h->P; s++) {
        double e = 0;
        for (int r = 0; r < h->D; r++) e = fmax(e, lh_sp_pp_cost(h->p, h->dev[r * h->P + s], h->dev[r * h->P + s + 1]));
        pp += e;
    }
    return dp + 2.0 * pp;
}

/* Blocks of `a` stages, each filled replica by replica. */
static void tile_stage_blocks(hier_ctx *h, int a)
{
    int k = 0;
    for (int q = 0; q < h->P / a; q++)
        for (int r = 0; r < h->D; r++)
            for (int s = q * a; s < q * a + a; s++) h->dev[r * h->P + s] = h->seq[k++];
}

/* Blocks of `b` replicas, each filled stage by stage. */
static void tile_replica_blocks(hier_ctx *h, int b)
{
    int k = 0;
    for (int q = 0; q < h->D / b; q++)
        for (int s = 0; s < h->P; s++)
            for (int r = q * b; r < q * b + b; r++) h->dev[r * h->P + s] = h->seq[k++];
}

static lh_status order_regions(const double *w, int R, int *order)
{
    double len;
    if (R <= 64) return lh_open_path_tsp(R, w, order, &len, NULL);
    /* Large region counts: nearest neighbour from region 0 (O(R^2)). */
    unsigned char *used = calloc((size_t)R, 1);
    if (!used) return lh_fail(LH_ERR_NOMEM, "strategy hier: out of memory for %d regions", R);
    order[0] = 0;
    used[0] = 1;
    for (int k = 1; k < R; k++) {
        int prev = order[k - 1], pick = -1;
        for (int j = 0; j < R; j++)
            if (!used[j] && (pick < 0 || w[(size_t)prev * R + j] < w[(size_t)prev * R + pick])) pick = j;
        order[k] = pick;
        used[pick] = 1;
    }
    free(used);
    return LH_OK;
}

typedef struct dev_key {
    int pos;
    double flops;
    int id;
} dev_key;

static int cmp_dev_key(const void *a, const void *b)
{
    const dev_key *x = a, *y = b;
    if (x->pos != y->pos) return x->pos - y->pos;
    if (x->flops != y->flops) return x->flops > y->flops ? -1 : 1;
    return x->id - y->id;
}

lh_status lh_sched_hier_run(const lh_sched_problem *p, const lh_strategy_options *o, lh_plan **out)
{
    double t0 = lh_now_s();
    const lh_topology *t = p->t;
    hier_ctx h = {p, p->n, p->stages, p->replicas, 0, NULL, NULL, NULL, NULL, NULL, NULL};
    lh_status st = LH_OK;
    int TR = t->n_regions;
    int *compact = malloc((size_t)TR * sizeof *compact), *rep = NULL, *rorder = NULL, *rpos = NULL;
    double *wpp = NULL;
    dev_key *keys = NULL;
    int *best = NULL;
    h.seq = malloc((size_t)h.n * sizeof(int));
    h.dev = malloc((size_t)h.n * sizeof(int));
    h.region = malloc((size_t)h.n * sizeof(int));
    best = malloc((size_t)h.n * sizeof(int));
    keys = malloc((size_t)h.n * sizeof *keys);
    if (!compact || !h.seq || !h.dev || !h.region || !best || !keys) {
        st = lh_fail(LH_ERR_NOMEM, "strategy hier: out of memory for %d devices", h.n);
        goto done;
    }
    for (int i = 0; i < TR; i++) compact[i] = -1;
    for (int d = 0; d < h.n; d++) {
        int r = t->devices[d].region_index;
        if (compact[r] < 0) compact[r] = h.R++;
        h.region[d] = compact[r];
    }
    int R = h.R;
    rep = malloc((size_t)R * 2 * sizeof *rep);
    rorder = malloc((size_t)R * sizeof *rorder);
    rpos = malloc((size_t)R * sizeof *rpos);
    wpp = malloc((size_t)R * R * sizeof *wpp);
    h.wdp = malloc((size_t)R * R * sizeof *h.wdp);
    h.cnt = calloc((size_t)R, sizeof *h.cnt);
    h.present = malloc((size_t)(R < h.D ? R : h.D) * sizeof *h.present);
    if (!rep || !rorder || !rpos || !wpp || !h.wdp || !h.cnt || !h.present) {
        st = lh_fail(LH_ERR_NOMEM, "strategy hier: out of memory for %d regions", R);
        goto done;
    }
    for (int i = 0; i < 2 * R; i++) rep[i] = -1;
    for (int d = 0; d < h.n; d++) {
        int r = h.region[d];
        if (rep[2 * r] < 0) rep[2 * r] = d;
        else if (rep[2 * r + 1] < 0) rep[2 * r + 1] = d;
    }
    for (int a = 0; a < R; a++)
        for (int b = 0; b < R; b++) {
            int da = rep[2 * a], db = a == b ? rep[2 * a + 1] : rep[2 * b];
            if (db < 0) { /* single-device region: no intra link is ever used */
                wpp[(size_t)a * R + b] = 0;
                h.wdp[(size_t)a * R + b] = 0;
                continue;
            }
            wpp[(size_t)a * R + b] = a == b ? 0 : lh_sp_pp_cost(p, da, db);
            h.wdp[(size_t)a * R + b] = lh_sp_dp_cost(p, p->c_dp, da, db);
        }
    st = order_regions(wpp, R, rorder);
    if (st) goto done;
    for (int k = 0; k < R; k++) rpos[rorder[k]] = k;
    for (int d = 0; d < h.n; d++) {
        keys[d].pos = rpos[h.region[d]];
        keys[d].flops = t->devices[d].flops;
        keys[d].id = d;
    }
    qsort(keys, (size_t)h.n, sizeof *keys, cmp_dev_key);
    for (int k = 0; k < h.n; k++) h.seq[k] = keys[k].id;

    double best_cost = INFINITY;
    long evaluated = 0;
    for (int family = 0; family < 2; family++) {
        int limit = family == 0 ? h.P : h.D;
        for (int a = 1; a <= limit; a++) {
            if (limit % a) continue;
            if (family == 0) tile_stage_blocks(&h, a);
            else tile_replica_blocks(&h, a);
            double c = candidate_cost(&h);
            evaluated++;
            if (c < best_cost) {
                best_cost = c;
                memcpy(best, h.dev, (size_t)h.n * sizeof *best);
                if (o && o->curve) {
                    st = lh_anytime_add(o->curve, lh_now_s() - t0, c, evaluated);
                    if (st) goto done;
                }
            }
        }
    }
    lh_plan *plan;
    st = lh_plan_create(h.P, h.D, p->w.layers, &plan);
    if (st) goto done;
    memcpy(plan->device, best, (size_t)h.n * sizeof *best);
    st = lh_sp_finish_plan(p, plan, "hier");
    if (st) {
        lh_plan_free(plan);
        goto done;
    }
    if (o && o->curve) st = lh_anytime_add(o->curve, lh_now_s() - t0, plan->cost_s, evaluated);
    *out = plan;
done:
    free(compact), free(rep), free(rorder), free(rpos), free(wpp), free(keys), free(best);
    free(h.seq), free(h.dev), free(h.region), free(h.wdp), free(h.cnt), free(h.present);
    return st;
}
