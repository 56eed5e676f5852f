/*
 * Scheduler core: binding a topology to a workload, the link oracle, and the
 * two exact combinatorial kernels every DT-FM fitness evaluation needs
 * (bottleneck perfect matching and open-path TSP).
 *
 * Bottleneck matching is solved by binary search over the sorted distinct
 * edge costs with a Kuhn augmenting-path feasibility test (n^2 log n^2 + n^3
 * log n); inside the feasible threshold the initial greedy assignment takes
 * the cheapest edges first, which keeps the matched sum small, a cheap
 * tie-breaker the search uses on flat landscapes.  Open-path TSP is Held-Karp
 * (2^n n^2) up to 13 nodes, above that nearest-neighbour from every start
 * followed by 2-opt (documented as a heuristic in the report).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_sched_internal.h"

void lh_rng_shuffle(lh_rng *r, int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = lh_rng_below(r, i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---------------- problem ---------------- */

void lh_sched_problem_free(lh_sched_problem *p)
{
    if (!p) return;
    free(p->lat);
    free(p->ibw);
    free(p->rlat);
    free(p->ribw);
    free(p);
}

const lh_topology *lh_sched_problem_topology(const lh_sched_problem *p)
{
    return p->t;
}

const lh_workload *lh_sched_problem_workload(const lh_sched_problem *p)
{
    return &p->w;
}

void lh_sched_link(const lh_sched_problem *p, int a, int b, double *latency_s, double *inv_bw)
{
    if (a == b) {
        *latency_s = 0;
        *inv_bw = 0;
        return;
    }
    if (p->mode != 2) {
        lh_sp_link(p, a, b, latency_s, inv_bw);
        return;
    }
    int ok1, ok2;
    lh_link l1 = lh_topology_link(p->t, a, b, &ok1), l2 = lh_topology_link(p->t, b, a, &ok2);
    *latency_s = 0.5 * (l1.latency_s + l2.latency_s);
    *inv_bw = 1.0 / (0.5 * (l1.bandwidth_bps + l2.bandwidth_bps));
}

static lh_status build_region_tables(lh_sched_problem *p)
{
    const lh_topology *t = p->t;
    int R = t->n_regions;
    p->n_regions = R;
    p->rlat = calloc((size_t)R * R, sizeof *p->rlat);
    p->ribw = calloc((size_t)R * R, sizeof *p->ribw);
    if (!p->rlat || !p->ribw) return lh_fail(LH_ERR_NOMEM, "scheduler: cannot allocate %d x %d region tables", R, R);
    /* A representative device per region resolves the region pair (no pair overrides in this mode). */
    int *rep = malloc((size_t)R * 2 * sizeof *rep);
    if (!rep) return lh_fail(LH_ERR_NOMEM, "scheduler: out of memory");
    for (int r = 0; r < 2 * R; r++) rep[r] = -1;
    for (int i = 0; i < t->n_devices; i++) {
        int r = t->devices[i].region_index;
        if (rep[2 * r] < 0) rep[2 * r] = i;
        else if (rep[2 * r + 1] < 0) rep[2 * r + 1] = i;
    }
    for (int a = 0; a < R; a++)
        for (int b = 0; b < R; b++) {
            int da = rep[2 * a], db = (a == b) ? rep[2 * b + 1] : rep[2 * b];
            if (da < 0 || db < 0) continue; /* region pair never used */
            int ok1, ok2;
            lh_link l1 = lh_topology_link(t, da, db, &ok1), l2 = lh_topology_link(t, db, da, &ok2);
            if (!ok1 || !ok2) {
                free(rep);
                return lh_fail(LH_ERR_FORMAT, "topology: no link between devices %d and %d", da, db);
            }
            p->rlat[(size_t)a * R + b] = 0.5 * (l1.latency_s + l2.latency_s);
            p->ribw[(size_t)a * R + b] = 1.0 / (0.5 * (l1.bandwidth_bps + l2.bandwidth_bps));
        }
    free(rep);
    return LH_OK;
}

lh_status lh_sched_problem_create(const lh_topology *t, const lh_workload *w, lh_sched_problem **out)
{
    *out = NULL;
    if (!t || !w) return lh_fail(LH_ERR_INVALID_ARG, "scheduler: topology and workload are required");
    lh_status st = lh_workload_validate(w);
    if (st) return st;
    long long need = (long long)w->stages * w->replicas;
    if (t->n_devices != need)
        return lh_fail(LH_ERR_MISMATCH,
                       "scheduler: %d devices cannot be split into %d stages x %d replicas (needs N = D_PP*D_DP = "
                       "%lld)%s",
                       t->n_devices, w->stages, w->replicas, need,
                       t->n_devices % w->stages ? "; N is not divisible by the number of stages" : "");
    st = lh_topology_validate(t);
    if (st) return lh_fail_prefix(st, "scheduler");
    for (size_t i = 0; i < t->n_pair_links; i++)
        if (!(t->pair_links[i].link.bandwidth_bps > 0) || !isfinite(t->pair_links[i].link.bandwidth_bps))
            return lh_fail(LH_ERR_FORMAT, "topology: link %d->%d has bandwidth %g bit/s; it must be > 0",
                           t->pair_links[i].from, t->pair_links[i].to, t->pair_links[i].link.bandwidth_bps);
    for (int i = 0; i < t->n_regions * t->n_regions; i++)
        if (t->has_region_link[i] && !(t->region_links[i].bandwidth_bps > 0))
            return lh_fail(LH_ERR_FORMAT, "topology: region link %s->%s has bandwidth %g bit/s; it must be > 0",
                           t->regions[i / t->n_regions], t->regions[i % t->n_regions],
                           t->region_links[i].bandwidth_bps);
    if (t->has_default_link && !(t->default_link.bandwidth_bps > 0))
        return lh_fail(LH_ERR_FORMAT, "topology: default_link bandwidth must be > 0");
    for (int i = 0; i < t->n_devices; i++)
        if (!(t->devices[i].flops > 0) || !(t->devices[i].memory_bytes > 0))
            return lh_fail(LH_ERR_FORMAT, "topology: device %d (%s) needs flops > 0 and memory_bytes > 0", i,
                           t->devices[i].name);

    lh_sched_problem *p = calloc(1, sizeof *p);
    if (!p) return lh_fail(LH_ERR_NOMEM, "scheduler: out of memory");
    p->t = t;
    p->w = *w;
    p->n = t->n_devices;
    p->stages = w->stages;
    p->replicas = w->replicas;
    int max_layers = (w->layers + w->stages - 1) / w->stages;
    p->c_dp = lh_workload_dtfm_c_dp(w, max_layers);
    p->c_pp = lh_workload_dtfm_c_pp(w);
    int n = p->n;
    if (n <= LH_SCHED_DENSE_MAX) {
        p->mode = 0;
        size_t nn = (size_t)n * n;
        double *bw = malloc(nn * sizeof *bw);
        p->lat = malloc(nn * sizeof *p->lat);
        p->ibw = malloc(nn * sizeof *p->ibw);
        if (!bw || !p->lat || !p->ibw) {
            free(bw);
            lh_sched_problem_free(p);
            return lh_fail(LH_ERR_NOMEM, "scheduler: cannot allocate %d x %d link matrices", n, n);
        }
        st = lh_topology_dense(t, p->lat, bw);
        if (st) {
            free(bw);
            lh_sched_problem_free(p);
            return st;
        }
        for (int a = 0; a < n; a++) {
            p->lat[(size_t)a * n + a] = 0;
            p->ibw[(size_t)a * n + a] = 0;
            for (int b = a + 1; b < n; b++) {
                size_t ab = (size_t)a * n + b, ba = (size_t)b * n + a;
                double lat = 0.5 * (p->lat[ab] + p->lat[ba]);
                double ibw = 1.0 / (0.5 * (bw[ab] + bw[ba]));
                p->lat[ab] = p->lat[ba] = lat;
                p->ibw[ab] = p->ibw[ba] = ibw;
            }
        }
        free(bw);
    } else if (t->n_pair_links == 0) {
        p->mode = 1;
        st = build_region_tables(p);
        if (st) {
            lh_sched_problem_free(p);
            return st;
        }
    } else {
        p->mode = 2;
    }
    *out = p;
    return LH_OK;
}

/* ---------------- reports, curves ---------------- */

void lh_cost_report_clear(lh_cost_report *r)
{
    if (!r) return;
    free(r->stage_compute_s);
    free(r->stage_dp_s);
    free(r->link_s);
    free(r->stage_memory_bytes);
    memset(r, 0, sizeof *r);
}

lh_status lh_anytime_add(lh_anytime *a, double t_s, double cost_s, long evaluations)
{
    if (a->count == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        double *t = realloc(a->t_s, cap * sizeof *t);
        if (t) a->t_s = t;
        double *c = realloc(a->cost_s, cap * sizeof *c);
        if (c) a->cost_s = c;
        long *e = realloc(a->evaluations, cap * sizeof *e);
        if (e) a->evaluations = e;
        if (!t || !c || !e) return lh_fail(LH_ERR_NOMEM, "anytime curve: out of memory");
        a->cap = cap;
    }
    a->t_s[a->count] = t_s;
    a->cost_s[a->count] = cost_s;
    a->evaluations[a->count] = evaluations;
    a->count++;
    return LH_OK;
}

void lh_anytime_clear(lh_anytime *a)
{
    free(a->t_s);
    free(a->cost_s);
    free(a->evaluations);
    memset(a, 0, sizeof *a);
}

/* ---------------- kernels ---------------- */

lh_status lh_kernel_ws_init(lh_kernel_ws *ws, int n, int tsp_n)
{
    memset(ws, 0, sizeof *ws);
    if (n < 1) n = 1;
    if (tsp_n < 1) tsp_n = 1;
    ws->cap_n = n;
    ws->cap_tsp = tsp_n;
    size_t nn = (size_t)n * n;
    ws->vals = malloc(nn * sizeof *ws->vals);
    ws->order_idx = malloc(nn * sizeof *ws->order_idx);
    ws->match_row = malloc((size_t)n * sizeof(int));
    ws->match_col = malloc((size_t)n * sizeof(int));
    ws->seen = malloc((size_t)(n > tsp_n ? n : tsp_n) * sizeof(int));
    ws->tsp_scratch = malloc((size_t)2 * tsp_n * sizeof(int));
    if (tsp_n <= LH_TSP_EXACT_MAX) {
        size_t states = ((size_t)1 << tsp_n) * tsp_n;
        ws->hk = malloc(states * sizeof *ws->hk);
        ws->hk_parent = malloc(states * sizeof *ws->hk_parent);
    }
    if (!ws->vals || !ws->order_idx || !ws->match_row || !ws->match_col || !ws->seen || !ws->tsp_scratch ||
        (tsp_n <= LH_TSP_EXACT_MAX && (!ws->hk || !ws->hk_parent))) {
        lh_kernel_ws_free(ws);
        return lh_fail(LH_ERR_NOMEM, "scheduler: cannot allocate kernel workspace for n=%d", n);
    }
    return LH_OK;
}

void lh_kernel_ws_free(lh_kernel_ws *ws)
{
    free(ws->vals);
    free(ws->order_idx);
    free(ws->match_row);
    free(ws->match_col);
    free(ws->seen);
    free(ws->tsp_scratch);
    free(ws->hk);
    free(ws->hk_parent);
    memset(ws, 0, sizeof *ws);
}

static int cmp_idx_by_val(const void *a, const void *b, void *arg)
{
    const double *vals = arg;
    double x = vals[*(const int *)a], y = vals[*(const int *)b];
    if (x < y) return -1;
    if (x > y) return 1;
    return *(const int *)a - *(const int *)b;
}

/* Sort indices 0..m-1 of vals ascending: insertion sort for small m (hot path), qsort otherwise. */
static void sort_indices(int *idx, const double *vals, int m)
{
    for (int i = 0; i < m; i++) idx[i] = i;
    if (m <= 96) {
        for (int i = 1; i < m; i++) {
            int k = idx[i];
            double v = vals[k];
            int j = i - 1;
            while (j >= 0 && vals[idx[j]] > v) {
                idx[j + 1] = idx[j];
                j--;
            }
            idx[j + 1] = k;
        }
    } else {
        qsort_r(idx, (size_t)m, sizeof *idx, cmp_idx_by_val, (void *)vals);
    }
}

static int kuhn_augment(int n, const double *cost, double thr, int row, int *match_row, int *match_col, int *seen,
                        int stamp)
{
    for (int c = 0; c < n; c++) {
        if (cost[(size_t)row * n + c] > thr || seen[c] == stamp) continue;
        seen[c] = stamp;
        if (match_col[c] < 0 || kuhn_augment(n, cost, thr, match_col[c], match_row, match_col, seen, stamp)) {
            match_row[row] = c;
            match_col[c] = row;
            return 1;
        }
    }
    return 0;
}

/* Perfect matching using only edges <= thr: greedy by ascending cost, then augment. */
static int feasible(int n, const double *cost, const int *sorted, double thr, int *match_row, int *match_col,
                    int *seen)
{
    for (int i = 0; i < n; i++) match_row[i] = match_col[i] = -1;
    int matched = 0;
    for (int k = 0; k < n * n && matched < n; k++) {
        int e = sorted[k];
        if (cost[e] > thr) break;
        int r = e / n, c = e % n;
        if (match_row[r] < 0 && match_col[c] < 0) {
            match_row[r] = c;
            match_col[c] = r;
            matched++;
        }
    }
    for (int c = 0; c < n; c++) seen[c] = -1;
    int stamp = 0;
    for (int r = 0; r < n && matched < n; r++) {
        if (match_row[r] >= 0) continue;
        if (!kuhn_augment(n, cost, thr, r, match_row, match_col, seen, stamp++)) return 0;
        matched++;
    }
    return matched == n;
}

void lh_bm_solve(lh_kernel_ws *ws, int n, const double *cost, int *match, double *value, double *sum)
{
    int m = n * n;
    int *sorted = ws->order_idx;
    sort_indices(sorted, cost, m);
    /* Binary search over positions in the sorted order; the bottleneck is at least the max row minimum. */
    int lo = 0, hi = m - 1;
    double floor_v = 0;
    for (int r = 0; r < n; r++) {
        double best = INFINITY;
        for (int c = 0; c < n; c++) best = fmin(best, cost[(size_t)r * n + c]);
        floor_v = fmax(floor_v, best);
    }
    for (int c = 0; c < n; c++) {
        double best = INFINITY;
        for (int r = 0; r < n; r++) best = fmin(best, cost[(size_t)r * n + c]);
        floor_v = fmax(floor_v, best);
    }
    while (lo < m - 1 && cost[sorted[lo]] < floor_v) lo++;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (feasible(n, cost, sorted, cost[sorted[mid]], ws->match_row, ws->match_col, ws->seen)) hi = mid;
        else lo = mid + 1;
    }
    double thr = cost[sorted[lo]];
    feasible(n, cost, sorted, thr, ws->match_row, ws->match_col, ws->seen);
    double s = 0, v = 0;
    for (int r = 0; r < n; r++) {
        match[r] = ws->match_row[r];
        double c = cost[(size_t)r * n + match[r]];
        s += c;
        v = fmax(v, c);
    }
    *value = v;
    if (sum) *sum = s;
}

lh_status lh_bottleneck_matching(int n, const double *cost, int *match, double *value)
{
    if (n < 1) return lh_fail(LH_ERR_INVALID_ARG, "bottleneck matching: n must be >= 1, got %d", n);
    for (int i = 0; i < n * n; i++)
        if (isnan(cost[i])) return lh_fail(LH_ERR_INVALID_ARG, "bottleneck matching: cost[%d] is NaN", i);
    lh_kernel_ws ws;
    lh_status st = lh_kernel_ws_init(&ws, n, 1);
    if (st) return st;
    lh_bm_solve(&ws, n, cost, match, value, NULL);
    lh_kernel_ws_free(&ws);
    return LH_OK;
}

static double path_length(int n, const double *w, const int *order)
{
    double len = 0;
    for (int i = 0; i + 1 < n; i++) len += w[(size_t)order[i] * n + order[i + 1]];
    return len;
}

static void tsp_heuristic(int n, const double *w, int *order, double *length, int *scratch, int *used)
{
    double best = INFINITY;
    for (int start = 0; start < n; start++) {
        for (int i = 0; i < n; i++) used[i] = 0;
        scratch[0] = start;
        used[start] = 1;
        for (int k = 1; k < n; k++) {
            int prev = scratch[k - 1], pick = -1;
            double pv = INFINITY;
            for (int j = 0; j < n; j++)
                if (!used[j] && w[(size_t)prev * n + j] < pv) {
                    pv = w[(size_t)prev * n + j];
                    pick = j;
                }
            scratch[k] = pick;
            used[pick] = 1;
        }
        /* 2-opt on an open path: reversing scratch[i..j] replaces edges (i-1,i) and (j,j+1) where they exist. */
        int improved = 1;
        while (improved) {
            improved = 0;
            for (int i = 0; i < n - 1; i++)
                for (int j = i + 1; j < n; j++) {
                    double before = 0, after = 0;
                    if (i > 0) {
                        before += w[(size_t)scratch[i - 1] * n + scratch[i]];
                        after += w[(size_t)scratch[i - 1] * n + scratch[j]];
                    }
                    if (j < n - 1) {
                        before += w[(size_t)scratch[j] * n + scratch[j + 1]];
                        after += w[(size_t)scratch[i] * n + scratch[j + 1]];
                    }
                    if (after < before - 1e-12) {
                        for (int a = i, b = j; a < b; a++, b--) {
                            int t = scratch[a];
                            scratch[a] = scratch[b];
                            scratch[b] = t;
                        }
                        improved = 1;
                    }
                }
        }
        double len = path_length(n, w, scratch);
        if (len < best) {
            best = len;
            memcpy(order, scratch, (size_t)n * sizeof *order);
        }
    }
    *length = best;
}

void lh_tsp_solve(lh_kernel_ws *ws, int n, const double *w, int *order, double *length, int *exact)
{
    if (n == 1) {
        order[0] = 0;
        *length = 0;
        if (exact) *exact = 1;
        return;
    }
    /* Callers size the workspace for n (lh_kernel_ws_init(ws, _, n)); Held-Karp tables exist up to the limit. */
    if (n > LH_TSP_EXACT_MAX || !ws->hk) {
        tsp_heuristic(n, w, order, length, ws->tsp_scratch, ws->tsp_scratch + n);
        if (exact) *exact = 0;
        return;
    }
    size_t full = ((size_t)1 << n) - 1;
    double *dp = ws->hk;
    int *par = ws->hk_parent;
    for (size_t s = 0; s <= full; s++)
        for (int j = 0; j < n; j++) dp[s * n + j] = INFINITY;
    for (int j = 0; j < n; j++) {
        dp[((size_t)1 << j) * n + j] = 0;
        par[((size_t)1 << j) * n + j] = -1;
    }
    for (size_t s = 1; s <= full; s++)
        for (int j = 0; j < n; j++) {
            double cur = dp[s * n + j];
            if (!(s >> j & 1) || cur == INFINITY) continue;
            for (int k = 0; k < n; k++) {
                if (s >> k & 1) continue;
                size_t ns = s | ((size_t)1 << k);
                double v = cur + w[(size_t)j * n + k];
                if (v < dp[ns * n + k]) {
                    dp[ns * n + k] = v;
                    par[ns * n + k] = j;
                }
            }
        }
    int end = 0;
    for (int j = 1; j < n; j++)
        if (dp[full * n + j] < dp[full * n + end]) end = j;
    *length = dp[full * n + end];
    size_t s = full;
    for (int k = n - 1; k >= 0; k--) {
        order[k] = end;
        int prev = par[s * n + end];
        s &= ~((size_t)1 << end);
        end = prev;
    }
    if (exact) *exact = 1;
}

lh_status lh_open_path_tsp(int n, const double *w, int *order, double *length, int *exact)
{
    if (n < 1) return lh_fail(LH_ERR_INVALID_ARG, "open-path TSP: n must be >= 1, got %d", n);
    lh_kernel_ws ws;
    lh_status st = lh_kernel_ws_init(&ws, 1, n);
    if (st) return st;
    lh_tsp_solve(&ws, n, w, order, length, exact);
    lh_kernel_ws_free(&ws);
    return LH_OK;
}
