/*
 * Placement strategies behind one interface (lh_strategy).
 *
 *  rank     what Megatron-LM and DeepSpeed do: stage s of replica r on rank
 *           s*D_DP + r (pipeline outermost), no look at the network.
 *  random   a uniformly random assignment, kept as drawn (DT-FM's baseline).
 *  greedy   grow one stage group at a time around the first free device,
 *           adding the device with the cheapest links to the group; then the
 *           exact pipeline order and matchings.
 *  dtfm-ga  a port of DT-FM's GCMA search: population 100, five-point
 *           crossover with balance repair, one cyclic-partitioning pass with
 *           their "default" gain, their replacement rule, 5,000 candidates.
 *           Ported for comparison, including its flat-landscape weakness.
 *  ils      longhaul's search for N up to a few thousand: structured starts
 *           (the hier plan, a nearest-neighbour chain cut into compact or
 *           interleaved groups, greedy, random, regions transposed or back to
 *           back) improved by swap local search on (COMM-COST,
 *           tie-breaker) and iterated with small random kicks.  The
 *           tie-breaker (mean DP sums and matched sums along the path) gives
 *           the search a slope on the plateaus where max/bottleneck costs are
 *           flat, which is exactly where DT-FM's GA stalls (case 2).
 *  hier     the scalable strategy (lh_sched_hier.c).
 *  ils-time minimises longhaul's iteration-time model instead (lh_sched_time.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lh_sched_search.h"
#include "lh_time.h"

lh_status lh_sched_hier_run(const lh_sched_problem *p, const lh_strategy_options *o, lh_plan **out);
lh_status lh_sched_time_run(const lh_sched_problem *p, const lh_strategy_options *o, lh_plan **out);

static lh_status need_dense(const lh_sched_problem *p, const char *name)
{
    if (p->mode != 0)
        return lh_fail(LH_ERR_UNSUPPORTED,
                       "strategy %s: %d devices is above its limit of %d; use strategy \"hier\" for large jobs", name,
                       p->n, LH_SCHED_DENSE_MAX);
    return LH_OK;
}

static lh_status finish_or_free(const lh_sched_problem *p, lh_plan **out, const char *name)
{
    lh_status st = lh_sp_finish_plan(p, *out, name);
    if (st) {
        lh_plan_free(*out);
        *out = NULL;
    }
    return st;
}

/* ---------------- rank / random ---------------- */

static lh_status place_labels_in_order(const lh_sched_problem *p, const int *slot_device, const char *name,
                                       lh_plan **out)
{
    lh_plan *plan;
    lh_status st = lh_plan_create(p->stages, p->replicas, p->w.layers, &plan);
    if (st) return st;
    for (int s = 0; s < p->stages; s++)
        for (int r = 0; r < p->replicas; r++) plan->device[r * p->stages + s] = slot_device[s * p->replicas + r];
    st = lh_sp_finish_plan(p, plan, name);
    if (st) {
        lh_plan_free(plan);
        return st;
    }
    *out = plan;
    return LH_OK;
}

static lh_status run_rank(const lh_sched_problem *p, const lh_strategy_options *o, lh_plan **out)
{
    int *ids = malloc((size_t)p->n * sizeof *ids);
    if (!ids) return lh_fail(LH_ERR_NOMEM, "strategy rank: out of memory");
    for (int i = 0; i < p->n; i++) ids[i] = i;
    lh_status st = place_labels_in_order(p, ids, "rank", out);
    free(ids);
    if (!st && o && o->curve) st = lh_anytime_add(o->curve, 0, (*out)->cost_s, 1);
    return st;
}

static lh_status run_random(const lh_sched_problem *p, const lh_strategy_options *o, lh_plan **out)
{
    int *ids = malloc((size_t)p->n * sizeof *ids);
    if (!ids) return lh_fail(LH_ERR_NOMEM, "strategy random: out of memory");
    for (int i = 0; i < p->n; i++) ids[i] = i;
    lh_rng rng = {o ? o->seed : 0};
    lh_rng_shuffle(&rng, ids, p->n);
    lh_status st = place_labels_in_order(p, ids, "random", out);
    free(ids);
    if (!st && o && o->curve) st = lh_anytime_add(o->curve, 0, (*out)->cost_s, 1);
    return st;
}

/* ---------------- shared constructions ---------------- */

/* Greedy compact groups: labels[d] = group. */
static lh_status greedy_labels(const lh_sched_problem *p, const int *device_order, int *labels)
{
    int n = p->n, D = p->replicas;
    double *acc = malloc((size_t)n * sizeof *acc);
    if (!acc) return lh_fail(LH_ERR_NOMEM, "greedy: out of memory");
    for (int i = 0; i < n; i++) labels[i] = -1;
    for (int g = 0; g < p->stages; g++) {
        int seed = -1;
        for (int k = 0; k < n && seed < 0; k++)
            if (labels[device_order[k]] < 0) seed = device_order[k];
        labels[seed] = g;
        for (int i = 0; i < n; i++) acc[i] = labels[i] < 0 ? lh_sp_dp_cost(p, p->c_dp, i, seed) : 0;
        for (int size = 1; size < D; size++) {
            int pick = -1;
            for (int k = 0; k < n; k++) {
                int d = device_order[k];
                if (labels[d] >= 0) continue;
                if (pick < 0 || acc[d] < acc[pick]) pick = d;
            }
            labels[pick] = g;
            for (int i = 0; i < n; i++)
                if (labels[i] < 0) acc[i] += lh_sp_dp_cost(p, p->c_dp, i, pick);
        }
    }
    free(acc);
    return LH_OK;
}

/* Nearest-neighbour chain over pipeline link costs: neighbours in the chain share fast links. */
static lh_status nn_chain(const lh_sched_problem *p, int start, int *chain)
{
    int n = p->n;
    unsigned char *used = calloc((size_t)n, 1);
    if (!used) return lh_fail(LH_ERR_NOMEM, "scheduler: out of memory");
    chain[0] = start;
    used[start] = 1;
    for (int k = 1; k < n; k++) {
        int prev = chain[k - 1], pick = -1;
        double best = INFINITY;
        for (int d = 0; d < n; d++) {
            if (used[d]) continue;
            double c = lh_sp_pp_cost(p, prev, d);
            if (c < best) {
                best = c;
                pick = d;
            }
        }
        chain[k] = pick;
        used[pick] = 1;
    }
    free(used);
    return LH_OK;
}

/* Devices sorted by (rank inside region, region) when transposed, else by (region, id). */
static void region_order(const lh_sched_problem *p, int transposed, int *chain)
{
    const lh_topology *t = p->t;
    int n = p->n, R = t->n_regions;
    int *seen = calloc((size_t)R, sizeof *seen), *rank = malloc((size_t)n * sizeof *rank);
    if (!seen || !rank) {
        for (int i = 0; i < n; i++) chain[i] = i;
        free(seen);
        free(rank);
        return;
    }
    for (int d = 0; d < n; d++) rank[d] = seen[t->devices[d].region_index]++;
    /* Counting sort by the secondary key, then stable by the primary key. */
    int k = 0;
    if (transposed) {
        int max_rank = 0;
        for (int d = 0; d < n; d++) max_rank = rank[d] > max_rank ? rank[d] : max_rank;
        for (int q = 0; q <= max_rank; q++)
            for (int r = 0; r < R; r++)
                for (int d = 0; d < n; d++)
                    if (rank[d] == q && t->devices[d].region_index == r) chain[k++] = d;
    } else {
        for (int r = 0; r < R; r++)
            for (int d = 0; d < n; d++)
                if (t->devices[d].region_index == r) chain[k++] = d;
    }
    free(seen);
    free(rank);
}

static lh_status run_greedy(const lh_sched_problem *p, const lh_strategy_options *o, lh_plan **out)
{
    lh_status st = need_dense(p, "greedy");
    if (st) return st;
    int n = p->n;
    int *order = malloc((size_t)n * sizeof *order), *labels = malloc((size_t)n * sizeof *labels);
    lh_gstate g;
    memset(&g, 0, sizeof g);
    if (!order || !labels) {
        st = lh_fail(LH_ERR_NOMEM, "strategy greedy: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) order[i] = i;
    st = greedy_labels(p, order, labels);
    if (!st) st = lh_gs_init(&g, p);
    if (st) goto done;
    lh_gs_load(&g, labels);
    st = lh_gs_to_plan(&g, out);
    if (!st) st = finish_or_free(p, out, "greedy");
    if (!st && o && o->curve) st = lh_anytime_add(o->curve, 0, (*out)->cost_s, g.evaluations);
done:
    lh_gs_free(&g);
    free(order);
    free(labels);
    return st;
}

/* ---------------- ils (longhaul) ---------------- */

typedef struct best_keeper {
    int *labels;
    double cost, surr;
    double t0;
    const lh_strategy_options *o;
} best_keeper;

static lh_status keep_if_better(best_keeper *b, const lh_gstate *g)
{
    if (lh_gs_better(g->cost, g->surr, b->cost, b->surr) >= 0) return LH_OK;
    int improved_cost = g->cost < b->cost - 1e-12;
    b->cost = g->cost;
    b->surr = g->surr;
    memcpy(b->labels, g->grp, (size_t)g->n * sizeof(int));
    if (improved_cost && b->o && b->o->curve) return lh_anytime_add(b->o->curve, lh_now_s() - b->t0, g->cost, g->evaluations);
    return LH_OK;
}

static int out_of_time(const lh_strategy_options *o, double t0)
{
    return o && o->time_limit_s > 0 && lh_now_s() - t0 > o->time_limit_s;
}

static lh_status run_ils(const lh_sched_problem *p, const lh_strategy_options *o, lh_plan **out)
{
    lh_status st = need_dense(p, "ils");
    if (st) return st;
    int n = p->n, P = p->stages, D = p->replicas;
    long budget = (o && o->max_evaluations > 0) ? o->max_evaluations : 6000;
    lh_rng rng = {(o ? o->seed : 0) ^ 0x5eedULL};
    double t0 = lh_now_s();
    lh_gstate g;
    memset(&g, 0, sizeof g);
    int *chain = malloc((size_t)n * sizeof *chain), *labels = malloc((size_t)n * sizeof *labels);
    int *cur = malloc((size_t)n * sizeof *cur);
    best_keeper best = {malloc((size_t)n * sizeof(int)), INFINITY, INFINITY, t0, o};
    if (!chain || !labels || !cur || !best.labels) {
        st = lh_fail(LH_ERR_NOMEM, "strategy ils: out of memory");
        goto done;
    }
    st = lh_gs_init(&g, p);
    if (st) goto done;

    /* Structured starts, each polished by local search with a share of the budget. */
    int n_starts = 7;
    for (int start = 0; start < n_starts && !st && g.evaluations < budget && !out_of_time(o, t0); start++) {
        if (start == 0) {
            /* The scalable strategy's plan: its stage groups as labels. */
            lh_plan *h = NULL;
            lh_strategy_options ho = {o ? o->seed : 0, 0, 0, NULL};
            st = lh_sched_hier_run(p, &ho, &h);
            if (st) break;
            for (int r = 0; r < D; r++)
                for (int s = 0; s < P; s++) labels[h->device[r * P + s]] = s;
            lh_plan_free(h);
        } else if (start >= 5) {
            /* Regions: transposed (k-th device of every region together: spreads DP, keeps pipelines local)
             * and compact (regions back to back). */
            region_order(p, start == 5, chain);
            for (int k = 0; k < n; k++) labels[chain[k]] = k / D;
        } else if (start < 3) {
            st = nn_chain(p, 0, chain);
            if (st) break;
            for (int k = 0; k < n; k++) labels[chain[k]] = start == 1 ? k / D : k % P;
        } else if (start == 3) {
            for (int k = 0; k < n; k++) chain[k] = k;
            st = greedy_labels(p, chain, labels);
            if (st) break;
        } else {
            for (int k = 0; k < n; k++) chain[k] = k;
            lh_rng_shuffle(&rng, chain, n);
            for (int k = 0; k < n; k++) labels[chain[k]] = k / D;
        }
        lh_gs_load(&g, labels);
        st = keep_if_better(&best, &g);
        long share = g.evaluations + budget / (2 * n_starts);
        lh_gs_local_search(&g, &rng, share < budget ? share : budget);
        if (!st) st = keep_if_better(&best, &g);
    }
    /* Iterated local search from the best start: kick with a few random swaps, re-polish, accept sideways. */
    if (!st) {
        memcpy(cur, best.labels, (size_t)n * sizeof *cur);
        double cur_cost = best.cost, cur_surr = best.surr;
        lh_gs_load(&g, cur);
        while (!st && g.evaluations < budget && !out_of_time(o, t0) && P > 1) {
            int kicks = 1 + lh_rng_below(&rng, 3);
            for (int k = 0; k < kicks; k++) {
                int a = lh_rng_below(&rng, n), b = lh_rng_below(&rng, n);
                if (g.grp[a] != g.grp[b]) lh_gs_swap(&g, a, b);
            }
            lh_gs_local_search(&g, &rng, budget);
            st = keep_if_better(&best, &g);
            if (lh_gs_better(g.cost, g.surr, cur_cost, cur_surr) <= 0) {
                memcpy(cur, g.grp, (size_t)n * sizeof *cur);
                cur_cost = g.cost;
                cur_surr = g.surr;
            } else {
                lh_gs_load(&g, cur);
            }
        }
    }
    if (st) goto done;
    lh_gs_load(&g, best.labels);
    st = lh_gs_to_plan(&g, out);
    int swaps = 0;
    if (!st) {
        st = lh_sp_repair_memory(p, *out, &swaps);
        if (st) {
            lh_plan_free(*out);
            *out = NULL;
            st = lh_fail_prefix(st, "strategy ils");
        }
    }
    if (!st) st = finish_or_free(p, out, "ils");
    /* The search prices every group with the largest stage's c_DP; when layers split unevenly and c_DP is
     * derived, the written plan can only be cheaper, so the equality holds only for uniform c_DP. */
    int uniform = p->w.dtfm_c_dp_bytes > 0 || p->w.layers % p->stages == 0;
    if (!st && swaps == 0 && uniform && fabs((*out)->cost_s - g.cost) > 1e-9 * fmax(1.0, g.cost)) {
        st = lh_fail(LH_ERR_INTERNAL, "strategy ils: plan realises %.9g s but the search found %.9g s",
                     (*out)->cost_s, g.cost);
        lh_plan_free(*out);
        *out = NULL;
    }
    if (!st && o && o->curve) st = lh_anytime_add(o->curve, lh_now_s() - t0, (*out)->cost_s, g.evaluations);
done:
    lh_gs_free(&g);
    free(chain);
    free(labels);
    free(cur);
    free(best.labels);
    return st;
}

/* ---------------- dtfm-ga (port of DT-FM's GCMA) ---------------- */

typedef struct ga_ctx {
    const lh_sched_problem *p;
    int n, P, D;
    double *pp;  /* n*n pipeline pair costs */
    double *gain; /* n*P */
    double *Gij;  /* P*P */
    double *Gi;   /* P */
    int *trace_v, *trace_p; /* P */
    int *sizes;   /* P */
} ga_ctx;

/* DT-FM's calculate_gain_default. */
static void ga_gain(ga_ctx *c, const int *lab, const unsigned char *locked)
{
    int n = c->n, P = c->P;
    for (int k = 0; k < P; k++) c->sizes[k] = 0;
    for (int v = 0; v < n; v++) c->sizes[lab[v]]++;
    for (int v = 0; v < n; v++) {
        if (locked[v]) continue;
        double *gv = c->gain + (size_t)v * P;
        for (int k = 0; k < P; k++) gv[k] = 0;
        gv[lab[v]] = INFINITY;
        for (int t = 0; t < n; t++) {
            double pc = c->pp[(size_t)v * n + t];
            if (lab[v] != lab[t]) gv[lab[t]] += pc / c->sizes[lab[t]];
            else if (v != t && gv[lab[t]] > pc) gv[lab[t]] = pc;
        }
    }
    for (int k = 0; k < P; k++) {
        c->Gi[k] = INFINITY;
        c->trace_v[k] = -1;
        c->trace_p[k] = -1;
    }
    for (int v = 0; v < n; v++)
        if (!locked[v] && c->gain[(size_t)v * P + lab[v]] < c->Gi[lab[v]]) {
            c->Gi[lab[v]] = c->gain[(size_t)v * P + lab[v]];
            c->trace_v[lab[v]] = v;
        }
    for (int k = 0; k < P; k++) {
        c->Gi[k] = -INFINITY;
        for (int j = 0; j < P; j++) c->Gij[k * P + j] = -INFINITY;
    }
    for (int k = 0; k < P; k++) {
        int v = c->trace_v[k];
        if (v < 0) continue;
        for (int j = 0; j < P; j++) {
            if (j == k) continue;
            double tg = c->gain[(size_t)v * P + j] - c->gain[(size_t)v * P + k];
            if (tg > c->Gij[k * P + j]) c->Gij[k * P + j] = tg;
            if (tg > c->Gi[k]) {
                c->Gi[k] = tg;
                c->trace_p[k] = j;
            }
        }
    }
}

static int argmax(const double *a, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (a[i] > a[best]) best = i;
    return best;
}

/* DT-FM's move_cycles (one cyclic-partitioning pass); lab is updated in place. */
static lh_status ga_cyclic(ga_ctx *c, int *lab)
{
    int n = c->n, P = c->P;
    unsigned char *locked_v = calloc((size_t)n, 1), *locked_p = calloc((size_t)P, 1);
    int *offs = malloc((size_t)(P + 1) * n * sizeof *offs);
    double *sums = calloc((size_t)(P + 1), sizeof *sums);
    int *mv_v = malloc((size_t)n * sizeof(int)), *mv_from = malloc((size_t)n * sizeof(int));
    double *eps = malloc((size_t)n * sizeof(double)), *tau = malloc((size_t)n * sizeof(double));
    if (!locked_v || !locked_p || !offs || !sums || !mv_v || !mv_from || !eps || !tau) {
        free(locked_v), free(locked_p), free(offs), free(sums), free(mv_v), free(mv_from), free(eps), free(tau);
        return lh_fail(LH_ERR_NOMEM, "dtfm-ga: out of memory");
    }
    memcpy(offs, lab, (size_t)n * sizeof *offs);
    int n_offs = 1;
    for (int cycle = 0; cycle < P; cycle++) {
        int *cur = offs + (size_t)n_offs * n;
        memcpy(cur, offs + (size_t)(n_offs - 1) * n, (size_t)n * sizeof *cur);
        int moves = 0;
        ga_gain(c, cur, locked_v);
        int S0 = argmax(c->Gi, P), Si = S0;
        for (int step = 0; step < n; step++) {
            int v = c->trace_v[Si], Pv = c->trace_p[Si];
            if (v < 0 || Pv < 0) {
                if (moves == 0) break; /* DT-FM would raise IndexError here */
                v = mv_v[moves - 1];
                Pv = S0;
            }
            cur[v] = Pv;
            locked_v[v] = 1;
            locked_p[Pv] = 1;
            mv_v[moves] = v;
            mv_from[moves] = Si;
            eps[moves] = c->Gi[Si];
            tau[moves] = c->Gij[Si * P + S0];
            moves++;
            Si = Pv;
            if (Si == S0) break;
            ga_gain(c, cur, locked_v);
        }
        if (moves == 0) break;
        double max_sum = 0, prefix = 0;
        int l = 0;
        for (int i = 1; i < moves; i++) {
            prefix += eps[i - 1];
            if (prefix + tau[i] > max_sum) {
                max_sum = prefix + tau[i];
                l = i;
            }
        }
        for (int i = moves - 1; i > l; i--) cur[mv_v[i]] = mv_from[i];
        cur[mv_v[l]] = S0;
        sums[n_offs] = max_sum;
        n_offs++;
        int all = 1;
        for (int k = 0; k < P; k++) all &= locked_p[k];
        if (all) break;
    }
    double max_sum = 0, prefix = 0;
    int m = 0;
    for (int i = 1; i < n_offs; i++) {
        prefix += sums[i - 1];
        if (prefix > max_sum) {
            max_sum = prefix;
            m = i - 1;
        }
    }
    memcpy(lab, offs + (size_t)m * n, (size_t)n * sizeof *lab);
    free(locked_v), free(locked_p), free(offs), free(sums), free(mv_v), free(mv_from), free(eps), free(tau);
    return LH_OK;
}

/* DT-FM's five_point_crossover: copy five of parent 1's labels into parent 2's, then repair balance. */
static void ga_crossover(ga_ctx *c, lh_rng *rng, const int *perm1, const int *perm2, int *child, int *scratch)
{
    int n = c->n, P = c->P, D = c->D;
    int *lab1 = scratch, *pts = scratch + n;
    for (int i = 0; i < n; i++) {
        lab1[perm1[i]] = i / D;
        child[perm2[i]] = i / D;
    }
    for (int i = 0; i < n; i++) pts[i] = i;
    lh_rng_shuffle(rng, pts, n);
    for (int k = 0; k < 5 && k < n; k++) child[pts[k]] = lab1[pts[k]];
    for (int k = 0; k < P; k++) c->sizes[k] = 0;
    for (int i = 0; i < n; i++) c->sizes[child[i]]++;
    for (int i = 0; i < n; i++) {
        if (c->sizes[child[i]] > D) {
            int j;
            for (j = 0; j < P; j++)
                if (c->sizes[j] < D) {
                    c->sizes[j]++;
                    break;
                }
            if (j == P) j = P - 1;
            c->sizes[child[i]]--;
            child[i] = j;
        }
    }
}

static void labels_to_perm(int n, int P, int D, const int *lab, int *perm, int *fill)
{
    memset(fill, 0, (size_t)P * sizeof *fill);
    for (int v = 0; v < n; v++) {
        int k = lab[v];
        perm[k * D + fill[k]++] = v;
    }
}

static lh_status run_dtfm_ga(const lh_sched_problem *p, const lh_strategy_options *o, lh_plan **out)
{
    lh_status st = need_dense(p, "dtfm-ga");
    if (st) return st;
    int n = p->n, P = p->stages, D = p->replicas;
    const int population = 100;
    long candidates = (o && o->max_evaluations > 0) ? o->max_evaluations : 5000;
    if (candidates < population) candidates = population;
    lh_rng rng = {(o ? o->seed : 0) ^ 0x6a09e667ULL};
    double t0 = lh_now_s();
    ga_ctx c = {p, n, P, D, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    lh_gstate g;
    memset(&g, 0, sizeof g);
    int *perms = malloc((size_t)population * n * sizeof(int));
    double *score = malloc((size_t)population * sizeof(double));
    int *child = malloc((size_t)n * sizeof(int)), *scratch = malloc((size_t)2 * n * sizeof(int));
    int *best = malloc((size_t)n * sizeof(int)), *child_perm = malloc((size_t)n * sizeof(int));
    c.pp = malloc((size_t)n * n * sizeof(double));
    c.gain = malloc((size_t)n * P * sizeof(double));
    c.Gij = malloc((size_t)P * P * sizeof(double));
    c.Gi = malloc((size_t)P * sizeof(double));
    c.trace_v = malloc((size_t)P * sizeof(int));
    c.trace_p = malloc((size_t)P * sizeof(int));
    c.sizes = malloc((size_t)P * sizeof(int));
    if (!perms || !score || !child || !scratch || !best || !child_perm || !c.pp || !c.gain || !c.Gij || !c.Gi ||
        !c.trace_v || !c.trace_p || !c.sizes) {
        st = lh_fail(LH_ERR_NOMEM, "strategy dtfm-ga: out of memory");
        goto done;
    }
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++) c.pp[(size_t)a * n + b] = a == b ? 0 : lh_sp_pp_cost(p, a, b);
    st = lh_gs_init(&g, p);
    if (st) goto done;
    double best_cost = INFINITY;
    long evaluated = 0;
    for (int i = 0; i < population && !st; i++) {
        int *perm = perms + (size_t)i * n;
        for (int k = 0; k < n; k++) perm[k] = k;
        lh_rng_shuffle(&rng, perm, n);
        for (int k = 0; k < n; k++) child[perm[k]] = k / D;
        lh_gs_load(&g, child);
        score[i] = g.cost;
        evaluated++;
        if (g.cost < best_cost) {
            best_cost = g.cost;
            memcpy(best, child, (size_t)n * sizeof *best);
            if (o && o->curve) st = lh_anytime_add(o->curve, lh_now_s() - t0, best_cost, evaluated);
        }
    }
    while (!st && evaluated < candidates && !out_of_time(o, t0)) {
        int p1 = lh_rng_below(&rng, population), p2 = lh_rng_below(&rng, population);
        ga_crossover(&c, &rng, perms + (size_t)p1 * n, perms + (size_t)p2 * n, child, scratch);
        st = ga_cyclic(&c, child);
        if (st) break;
        lh_gs_load(&g, child);
        evaluated++;
        double sc = g.cost;
        if (sc < best_cost) {
            best_cost = sc;
            memcpy(best, child, (size_t)n * sizeof *best);
            if (o && o->curve) st = lh_anytime_add(o->curve, lh_now_s() - t0, best_cost, evaluated);
        }
        /* DT-FM's rule as it behaves in their code: `sc > max(score[p1], bool)` compares with parent 1 only. */
        if (sc > score[p1]) continue; /* the offspring only joins the archive, never the breeding population */
        int replaced = score[p1] > score[p2] ? p1 : p2;
        labels_to_perm(n, P, D, child, child_perm, c.sizes);
        memcpy(perms + (size_t)replaced * n, child_perm, (size_t)n * sizeof(int));
        score[replaced] = sc;
    }
    if (st) goto done;
    lh_gs_load(&g, best);
    st = lh_gs_to_plan(&g, out);
    if (!st) st = finish_or_free(p, out, "dtfm-ga");
    if (!st && o && o->curve) st = lh_anytime_add(o->curve, lh_now_s() - t0, (*out)->cost_s, evaluated);
done:
    lh_gs_free(&g);
    free(perms), free(score), free(child), free(scratch), free(best), free(child_perm);
    free(c.pp), free(c.gain), free(c.Gij), free(c.Gi), free(c.trace_v), free(c.trace_p), free(c.sizes);
    return st;
}

/* ---------------- registry ---------------- */

static const lh_strategy strategies[] = {
    {"rank", "rank order: stage s of replica r on device s*D_DP + r (Megatron/DeepSpeed default)", (size_t)1 << 30,
     run_rank},
    {"random", "uniformly random assignment (seeded)", (size_t)1 << 30, run_random},
    {"greedy", "grow compact stage groups by cheapest links, then exact order and matching", LH_SCHED_DENSE_MAX,
     run_greedy},
    {"dtfm-ga", "DT-FM's hybrid genetic algorithm (GCMA) with cyclic partitioning, 5,000 candidates",
     LH_SCHED_DENSE_MAX, run_dtfm_ga},
    {"ils", "longhaul: structured starts + swap local search with plateau tie-breaker, iterated", LH_SCHED_DENSE_MAX,
     run_ils},
    {"hier", "longhaul scalable: regions ordered by a path, tiled layouts scored in O(N + P R^2)", (size_t)1 << 30,
     lh_sched_hier_run},
    {"ils-time", "longhaul: minimise the iteration-time model (best start + seeded slot swaps + layer balancing)",
     (size_t)1 << 30, lh_sched_time_run},
};

size_t lh_strategy_count(void)
{
    return sizeof strategies / sizeof strategies[0];
}

const lh_strategy *lh_strategy_at(size_t i)
{
    return i < lh_strategy_count() ? &strategies[i] : NULL;
}

const lh_strategy *lh_strategy_find(const char *name)
{
    for (size_t i = 0; name && i < lh_strategy_count(); i++)
        if (strcmp(strategies[i].name, name) == 0) return &strategies[i];
    return NULL;
}
