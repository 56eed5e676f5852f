/*
 * "ils-time": placement that minimises longhaul's own iteration-time model
 * instead of the DT-FM COMM-COST.
 *
 * Why a separate strategy: DT-FM's objective counts a whole batch of
 * activations per pipeline edge and a sharded parameter server for gradients,
 * while longhaul's engine streams micro-batches (hidden under compute when
 * links allow) and syncs gradients with a compressed ring allreduce.  The two
 * objectives disagree (on DT-FM's data-center scenario the COMM-COST optimum
 * is 2.4x slower per iteration than rank order under our model), so a user
 * who trusts the engine model should search that model directly.
 *
 * How: start from the best of rank order, hier, greedy and (small N) ils
 * under the iteration model, then sample moves (seeded): swap two devices'
 * slots, or (one move in four) swap two whole stages across every replica,
 * which re-orders the pipeline without breaking data-parallel groups; keep
 * the ones that shorten the iteration (or, on a plateau, a tie-breaker)
 * while every device still holds its stage;
 * finally try re-splitting layers by device speed.  The model is evaluated in
 * full for every candidate (O(N)), which is cheap next to matching-based
 * DT-FM evaluation and keeps the search exact with respect to the model.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_sched_internal.h"
#include "lh_time.h"

/* The model's iteration time, and a tie-breaker that still moves when the max-based time is flat:
 * the summed DP syncs and slowest per-boundary link times (lower is better on the same plateau). */
static lh_status iteration_cost(const lh_sched_problem *p, const lh_plan *plan, double *cost, double *soft)
{
    lh_cost_report r;
    lh_status st = lh_cost_iteration.evaluate(p, plan, &r);
    if (st) return st;
    *cost = r.memory_ok ? r.total_s : INFINITY;
    double s = 0;
    for (int k = 0; k < r.stages; k++) s += r.stage_dp_s[k] + (k + 1 < r.stages ? r.link_s[k] : 0);
    if (soft) *soft = s;
    lh_cost_report_clear(&r);
    return LH_OK;
}

/* Exchange the devices of stages a and b in every replica (the move is its own inverse). */
static void swap_stages(lh_plan *plan, int a, int b)
{
    for (int r = 0; r < plan->replicas; r++) {
        int *row = plan->device + (size_t)r * plan->stages, t = row[a];
        row[a] = row[b];
        row[b] = t;
    }
}

static int better(double c1, double s1, double c2, double s2)
{
    if (isinf(c2)) return c1 < c2 || (c1 == c2 && s1 < s2);
    double tol = 1e-12 * fmax(1.0, c2);
    if (c1 < c2 - tol) return 1;
    return c1 <= c2 + tol && s1 < s2 - 1e-12 * fmax(1.0, s2);
}

lh_status lh_sched_time_run(const lh_sched_problem *p, const lh_strategy_options *o, lh_plan **out)
{
    *out = NULL;
    double t0 = lh_now_s();
    long budget = (o && o->max_evaluations > 0) ? o->max_evaluations : 20000;
    lh_rng rng = {(o ? o->seed : 0) ^ 0x71e5ULL};
    const char *starts[] = {"rank", "hier", "greedy", "ils"};
    lh_plan *best = NULL;
    double best_cost = INFINITY, best_soft = INFINITY;
    long evaluated = 0;
    lh_status st = LH_OK;
    for (int k = 0; k < 4 && !st; k++) {
        const lh_strategy *s = lh_strategy_find(starts[k]);
        if ((size_t)p->n > s->max_devices || (k == 3 && p->n > 256)) continue;
        lh_strategy_options so = {o ? o->seed : 0, 0, 0, NULL};
        lh_plan *cand = NULL;
        st = s->run(p, &so, &cand);
        if (st == LH_ERR_UNSUPPORTED) {
            st = LH_OK;
            continue;
        }
        double c = INFINITY, soft = INFINITY;
        if (!st) st = iteration_cost(p, cand, &c, &soft);
        evaluated++;
        if (!st && better(c, soft, best_cost, best_soft)) {
            lh_plan_free(best);
            best = cand;
            best_cost = c;
            best_soft = soft;
            if (o && o->curve) st = lh_anytime_add(o->curve, lh_now_s() - t0, c, evaluated);
        } else {
            lh_plan_free(cand);
        }
    }
    if (st) {
        lh_plan_free(best);
        return lh_fail_prefix(st, "strategy ils-time");
    }
    if (!best) return lh_fail(LH_ERR_INTERNAL, "strategy ils-time: no start plan");
    int P = best->stages, D = best->replicas, n = p->n;
    double *need = malloc((size_t)P * sizeof *need);
    if (!need) {
        lh_plan_free(best);
        return lh_fail(LH_ERR_NOMEM, "strategy ils-time: out of memory");
    }
    for (int s = 0; s < P; s++) need[s] = lh_sp_stage_memory(p, best, s);
    while (!st && evaluated < budget && n > 1 &&
           !(o && o->time_limit_s > 0 && lh_now_s() - t0 > o->time_limit_s)) {
        if (P > 1 && lh_rng_below(&rng, 4) == 0) {
            /* Move a whole stage group: swap the devices of two stages in every replica (re-orders the
             * pipeline without breaking up data-parallel groups). */
            int sa = lh_rng_below(&rng, P), sb = lh_rng_below(&rng, P);
            if (sa == sb) continue;
            int fits_all = 1;
            for (int r = 0; r < D && fits_all; r++)
                fits_all = need[sb] <= p->t->devices[best->device[r * P + sa]].memory_bytes &&
                           need[sa] <= p->t->devices[best->device[r * P + sb]].memory_bytes;
            if (!fits_all) continue;
            swap_stages(best, sa, sb);
            double c, soft;
            st = iteration_cost(p, best, &c, &soft);
            evaluated++;
            if (!st && better(c, soft, best_cost, best_soft)) {
                int improved = c < best_cost;
                best_cost = c;
                best_soft = soft;
                if (improved && o && o->curve) st = lh_anytime_add(o->curve, lh_now_s() - t0, c, evaluated);
            } else {
                swap_stages(best, sa, sb); /* undo */
            }
            continue;
        }
        int i = lh_rng_below(&rng, n), j = lh_rng_below(&rng, n);
        if (i == j) continue;
        int si = i % P, sj = j % P;
        int di = best->device[i], dj = best->device[j];
        if (need[sj] > p->t->devices[di].memory_bytes || need[si] > p->t->devices[dj].memory_bytes) continue;
        best->device[i] = dj;
        best->device[j] = di;
        double c, soft;
        st = iteration_cost(p, best, &c, &soft);
        evaluated++;
        if (!st && better(c, soft, best_cost, best_soft)) {
            int improved = c < best_cost;
            best_cost = c;
            best_soft = soft;
            if (improved && o && o->curve) st = lh_anytime_add(o->curve, lh_now_s() - t0, c, evaluated);
        } else {
            best->device[i] = di;
            best->device[j] = dj;
        }
    }
    free(need);
    /* Uneven layers for heterogeneous devices, kept only when the model says it helps. */
    lh_plan *balanced = NULL;
    if (!st) st = lh_plan_clone(best, &balanced);
    if (!st && lh_plan_balance_layers(p, balanced) == LH_OK) {
        double c;
        st = iteration_cost(p, balanced, &c, NULL);
        if (!st && c < best_cost) {
            lh_plan_free(best);
            best = balanced;
            balanced = NULL;
            best_cost = c;
        }
    }
    lh_plan_free(balanced);
    if (!st) st = lh_sched_check_plan(p, best);
    if (st) {
        lh_plan_free(best);
        return lh_fail_prefix(st, "strategy ils-time");
    }
    snprintf(best->strategy, sizeof best->strategy, "ils-time");
    snprintf(best->cost_model, sizeof best->cost_model, "iteration");
    best->cost_s = best_cost;
    if (o && o->curve) st = lh_anytime_add(o->curve, lh_now_s() - t0, best_cost, evaluated);
    *out = best;
    return st;
}
