/*
 * Re-planning after devices are lost or added.
 *
 * What costs money after a failure is moving stage state (weights, optimizer
 * moments: ~16 bytes per parameter) across slow links, so the new plan keeps
 * every surviving device on the stage it already holds, with stages kept at
 * their index (no re-ordering of the pipeline).  Holes are filled with new or
 * displaced devices greedily by cheapest links to the stage group; then only
 * devices that must fetch state anyway are swapped among themselves, which
 * improves the DT-FM cost without adding a single transfer.  Survivors are
 * matched by device name, so topologies may renumber devices.  Above the dense
 * limit (region-level links) the same policy runs on per-region counts,
 * without the swap search.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lh_sched_search.h"

static int cmp_name(const void *a, const void *b, void *arg)
{
    const lh_topology *t = arg;
    return strcmp(t->devices[*(const int *)a].name, t->devices[*(const int *)b].name);
}

/* Device of `t` named `name` using `sorted` (indices sorted by name); -1 when absent. */
static int find_by_name(const lh_topology *t, const int *sorted, const char *name)
{
    int lo = 0, hi = t->n_devices - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(t->devices[sorted[mid]].name, name);
        if (c == 0) return sorted[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/*
 * Large N (region-level links): the same policy without the dense search.
 * Holes are filled from the free region whose links to the stage group are
 * cheapest (per-region counts, O(R^2) per hole); replicas inside a stage keep
 * the survivors' old order, newcomers after them.
 */
static lh_status replan_regions(const lh_sched_problem *p, int *labels, const int *old_stage, const int *old_replica,
                                lh_plan **out)
{
    int n = p->n, P = p->stages, D = p->replicas, R = p->n_regions;
    const lh_topology *t = p->t;
    int *cnt = calloc((size_t)P * R, sizeof *cnt), *count = calloc((size_t)P, sizeof *count);
    int *free_in = calloc((size_t)R, sizeof *free_in), *order = malloc((size_t)n * sizeof *order);
    double *w = malloc((size_t)R * R * sizeof *w);
    lh_status st = LH_OK;
    if (!cnt || !count || !free_in || !order || !w) {
        st = lh_fail(LH_ERR_NOMEM, "replan: out of memory for %d devices", n);
        goto done;
    }
    for (int a = 0; a < R; a++)
        for (int b = 0; b < R; b++)
            w[(size_t)a * R + b] = 2.0 * (p->rlat[(size_t)a * R + b] + p->c_dp * 8.0 * p->ribw[(size_t)a * R + b] / D);
    for (int d = 0; d < n; d++)
        if (labels[d] >= 0) {
            cnt[(size_t)labels[d] * R + t->devices[d].region_index]++;
            count[labels[d]]++;
        }
    /* Shed the worst-connected survivors of over-full stages. */
    for (int s = 0; s < P; s++)
        while (count[s] > D) {
            int worst = -1;
            double worst_sum = -1;
            for (int d = 0; d < n; d++) {
                if (labels[d] != s) continue;
                int a = t->devices[d].region_index;
                double sum = -w[(size_t)a * R + a];
                for (int b = 0; b < R; b++) sum += cnt[(size_t)s * R + b] * w[(size_t)a * R + b];
                if (sum > worst_sum) {
                    worst_sum = sum;
                    worst = d;
                }
            }
            labels[worst] = -1;
            cnt[(size_t)s * R + t->devices[worst].region_index]--;
            count[s]--;
        }
    for (int d = 0; d < n; d++)
        if (labels[d] < 0) free_in[t->devices[d].region_index]++;
    for (int s = 0; s < P; s++)
        while (count[s] < D) {
            int best_region = -1;
            double best = INFINITY;
            for (int a = 0; a < R; a++) {
                if (!free_in[a]) continue;
                double sum = 0;
                for (int b = 0; b < R; b++) sum += cnt[(size_t)s * R + b] * w[(size_t)a * R + b];
                if (sum < best) {
                    best = sum;
                    best_region = a;
                }
            }
            int pick = -1;
            for (int d = 0; d < n && pick < 0; d++)
                if (labels[d] < 0 && t->devices[d].region_index == best_region) pick = d;
            if (pick < 0) {
                st = lh_fail(LH_ERR_INTERNAL, "replan: ran out of free devices for stage %d", s);
                goto done;
            }
            labels[pick] = s;
            free_in[best_region]--;
            cnt[(size_t)s * R + best_region]++;
            count[s]++;
        }
    lh_plan *plan;
    st = lh_plan_create(P, D, p->w.layers, &plan);
    if (st) goto done;
    /* Per stage: survivors in their old replica order, then newcomers by index. */
    for (int s = 0; s < P; s++) {
        int k = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int d = 0; d < n; d++) {
                if (labels[d] != s) continue;
                int kept = old_stage[d] == s;
                if (pass == 0 && kept) order[k++] = d;
                if (pass == 1 && !kept) order[k++] = d;
            }
        /* insertion sort of the kept prefix by old replica */
        int kept_n = 0;
        while (kept_n < k && old_stage[order[kept_n]] == s) kept_n++;
        for (int i = 1; i < kept_n; i++)
            for (int j = i; j > 0 && old_replica[order[j]] < old_replica[order[j - 1]]; j--) {
                int tmp = order[j];
                order[j] = order[j - 1];
                order[j - 1] = tmp;
            }
        for (int r = 0; r < D; r++) plan->device[r * P + s] = order[r];
    }
    *out = plan;
done:
    free(cnt), free(count), free(free_in), free(order), free(w);
    return st;
}

lh_status lh_replan(const lh_sched_problem *p, const lh_topology *old_topology, const lh_plan *old, uint64_t seed,
                    lh_plan **out, int *moved)
{
    *out = NULL;
    if (p->mode == 2)
        return lh_fail(LH_ERR_UNSUPPORTED,
                       "replan: %d devices with device-pair link overrides is not supported above %d devices", p->n,
                       LH_SCHED_DENSE_MAX);
    lh_status st = lh_plan_validate(old, old_topology);
    if (st) return lh_fail_prefix(st, "replan: old plan");
    int n = p->n, P = p->stages, D = p->replicas;
    if (old->stages != P || old->layers != p->w.layers)
        return lh_fail(LH_ERR_MISMATCH,
                       "replan: the old plan has %d stages over %d layers, the new workload %d over %d; keeping "
                       "stages in place needs the same pipeline",
                       old->stages, old->layers, P, p->w.layers);
    int *labels = malloc((size_t)n * sizeof *labels), *old_stage = malloc((size_t)n * sizeof *old_stage);
    int *old_replica = malloc((size_t)n * sizeof *old_replica), *by_name = malloc((size_t)n * sizeof *by_name);
    int *count = calloc((size_t)P, sizeof *count);
    unsigned char *movable = calloc((size_t)n, 1);
    double *acc = malloc((size_t)n * sizeof *acc);
    lh_gstate g;
    memset(&g, 0, sizeof g);
    if (!labels || !old_stage || !old_replica || !by_name || !count || !movable || !acc) {
        st = lh_fail(LH_ERR_NOMEM, "replan: out of memory");
        goto done;
    }
    for (int d = 0; d < n; d++) {
        labels[d] = old_stage[d] = old_replica[d] = -1;
        by_name[d] = d;
    }
    qsort_r(by_name, (size_t)n, sizeof *by_name, cmp_name, (void *)p->t);
    for (int r = 0; r < old->replicas; r++)
        for (int s = 0; s < P; s++) {
            int od = lh_plan_device(old, r, s);
            int nd = find_by_name(p->t, by_name, old_topology->devices[od].name);
            if (nd >= 0) {
                old_stage[nd] = s;
                old_replica[nd] = r;
            }
        }
    if (p->mode == 1) {
        for (int d = 0; d < n; d++) labels[d] = old_stage[d];
        st = replan_regions(p, labels, old_stage, old_replica, out);
        if (!st) st = lh_sp_finish_plan(p, *out, "replan");
        if (st) {
            lh_plan_free(*out);
            *out = NULL;
            goto done;
        }
        goto count_moves;
    }
    /* Keep survivors in place; a stage with more survivors than D replicas sheds its worst-connected ones. */
    for (int d = 0; d < n; d++)
        if (old_stage[d] >= 0) {
            labels[d] = old_stage[d];
            count[old_stage[d]]++;
        }
    for (int s = 0; s < P; s++)
        while (count[s] > D) {
            int worst = -1;
            double worst_sum = -1;
            for (int d = 0; d < n; d++) {
                if (labels[d] != s) continue;
                double sum = 0;
                for (int e = 0; e < n; e++)
                    if (e != d && labels[e] == s) sum += lh_sp_dp_cost(p, p->c_dp, d, e);
                if (sum > worst_sum) {
                    worst_sum = sum;
                    worst = d;
                }
            }
            labels[worst] = -1;
            count[s]--;
        }
    /* Fill holes: for each stage, add the free device with the cheapest links to its members. */
    for (int s = 0; s < P; s++) {
        for (int d = 0; d < n; d++) {
            acc[d] = 0;
            if (labels[d] >= 0) continue;
            for (int e = 0; e < n; e++)
                if (labels[e] == s) acc[d] += lh_sp_dp_cost(p, p->c_dp, d, e);
        }
        while (count[s] < D) {
            int pick = -1;
            for (int d = 0; d < n; d++)
                if (labels[d] < 0 && (pick < 0 || acc[d] < acc[pick])) pick = d;
            if (pick < 0) {
                st = lh_fail(LH_ERR_INTERNAL, "replan: ran out of free devices for stage %d", s);
                goto done;
            }
            labels[pick] = s;
            movable[pick] = 1;
            count[s]++;
            for (int d = 0; d < n; d++)
                if (labels[d] < 0) acc[d] += lh_sp_dp_cost(p, p->c_dp, d, pick);
        }
    }
    st = lh_gs_init(&g, p);
    if (st) goto done;
    g.fixed_order = 1;
    lh_gs_load(&g, labels);
    lh_rng rng = {seed ^ 0x7e91a11ULL};
    lh_gs_local_search_restricted(&g, &rng, g.evaluations + 20000, movable);
    st = lh_gs_to_plan(&g, out);
    if (st) goto done;
    st = lh_sp_finish_plan(p, *out, "replan");
    if (st) {
        lh_plan_free(*out);
        *out = NULL;
        goto done;
    }
count_moves:;
    int m = 0;
    for (int r = 0; r < D; r++)
        for (int s = 0; s < P; s++) {
            int d = lh_plan_device(*out, r, s);
            if (old_stage[d] != s) m++;
        }
    *moved = m;
done:
    lh_gs_free(&g);
    free(labels), free(old_stage), free(old_replica), free(by_name), free(count), free(movable), free(acc);
    return st;
}
