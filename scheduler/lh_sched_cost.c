/*
 * Cost models: the DT-FM COMM-COST (to compare with the paper number for
 * number) and longhaul's iteration-time model (to predict what the engine
 * will actually take).
 *
 * Both evaluate *the plan as written*: stage order is the pipeline order and
 * replica index is the device matching.  The DT-FM paper's search reports the
 * optimum over matchings and orders; our strategies write that optimum into
 * the plan, so evaluating the plan reproduces the searched number.
 *
 * Iteration model (per replica r, M micro-batches, stages s = 0..P-1):
 *   f_s = forward FLOPs / device FLOP/s, b_s = 2 f_s, x_s = message bits / bw,
 *   lat_s = link latency.  With overlap o in [0,1], each op (F or B) blocks
 *   its device c_s = (1-o)(x_{s-1} + x_s) for the unhidden part of its receive
 *   and send, and each directed link is busy x_s per micro-batch.
 *   GPipe:  sum_s (f_s + c_s) + sum_l (lat_l + x_l) + (M-1) max(f_s + c_s, x_l)
 *         + the same with b_s                        (forward, then backward)
 *   1F1B:   L_{0,P-1} + (M-1) max(x_l, max_{s<=e, e-s+1<M} L_{s,e} / (e-s+1)),
 *           L_{s,e} = sum_{k=s..e} (f_k+b_k+2c_k) + 2 sum_{l=s..e-1} (lat_l + x_l): the cycle
 *           through stages s..e carries e-s+1 micro-batches in steady 1F1B, so a slow link
 *           costs its round trip every (e-s+1) micro-batches (max-plus cycle mean); only
 *           stages s >= P-M alternate at all (earlier ones warm up with every micro-batch)
 *   Data-parallel sync is the engine's compressed ring allreduce
 *   (reduce-scatter + all-gather: 2(D-1) steps of G/D bytes each):
 *   max(2(D-1) max_r x_r + max_r lat_r, 2(D-1)/D sum_r (x_r + lat_r)), the
 *   slowest link's throughput or the chain of steps around the ring, started per stage when that stage's
 *   last backward is done (stage s drains sum_{k<s}(b_k+lat_k+x_k) before
 *   stage 0), so later stages' syncs hide under earlier stages' drain.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_sched_internal.h"

double lh_sp_stage_c_dp(const lh_sched_problem *p, const lh_plan *plan, int stage)
{
    if (p->w.dtfm_c_dp_bytes > 0) return p->w.dtfm_c_dp_bytes;
    return lh_workload_grad_bytes(&p->w, plan->num_layers[stage], 0, 0);
}

double lh_sp_stage_memory(const lh_sched_problem *p, const lh_plan *plan, int stage)
{
    return lh_workload_stage_memory(&p->w, plan->num_layers[stage], stage, stage == 0, stage == plan->stages - 1);
}

static lh_status check_shape(const lh_sched_problem *p, const lh_plan *plan)
{
    if (plan->stages != p->stages || plan->replicas != p->replicas)
        return lh_fail(LH_ERR_MISMATCH, "plan is %d stages x %d replicas but the workload asks for %d x %d",
                       plan->stages, plan->replicas, p->stages, p->replicas);
    if (plan->layers != p->w.layers)
        return lh_fail(LH_ERR_MISMATCH, "plan splits %d layers but the workload has %d", plan->layers, p->w.layers);
    return lh_plan_validate(plan, p->t);
}

static lh_status report_alloc(lh_cost_report *r, int stages)
{
    memset(r, 0, sizeof *r);
    r->stages = stages;
    r->stage_compute_s = calloc((size_t)stages, sizeof(double));
    r->stage_dp_s = calloc((size_t)stages, sizeof(double));
    r->link_s = calloc((size_t)(stages > 1 ? stages - 1 : 1), sizeof(double));
    r->stage_memory_bytes = calloc((size_t)stages, sizeof(double));
    if (!r->stage_compute_s || !r->stage_dp_s || !r->link_s || !r->stage_memory_bytes) {
        lh_cost_report_clear(r);
        return lh_fail(LH_ERR_NOMEM, "cost report: out of memory");
    }
    r->bottleneck_from = r->bottleneck_to = -1;
    r->memory_worst_device = -1;
    return LH_OK;
}

static void fill_memory(const lh_sched_problem *p, const lh_plan *plan, lh_cost_report *r)
{
    r->memory_ok = 1;
    double worst = -INFINITY;
    for (int s = 0; s < plan->stages; s++) {
        double need = lh_sp_stage_memory(p, plan, s);
        r->stage_memory_bytes[s] = need;
        for (int k = 0; k < plan->replicas; k++) {
            int d = lh_plan_device(plan, k, s);
            double frac = need / p->t->devices[d].memory_bytes;
            if (frac > 1.0) r->memory_ok = 0;
            if (frac > worst) {
                worst = frac;
                r->memory_worst_device = d;
            }
        }
    }
}

/* DT-FM DataPCost of one stage group: max over members of the sum of their DP terms. */
static double group_dp_cost(const lh_sched_problem *p, const lh_plan *plan, int s, int *worst_a, int *worst_b)
{
    double c_dp = lh_sp_stage_c_dp(p, plan, s);
    double worst = 0, worst_term = -1;
    int D = plan->replicas;
    for (int i = 0; i < D; i++) {
        int a = lh_plan_device(plan, i, s);
        double sum = 0;
        for (int j = 0; j < D; j++) {
            if (j == i) continue;
            int b = lh_plan_device(plan, j, s);
            double term = lh_sp_dp_cost(p, c_dp, a, b);
            sum += term;
            if (worst_a && term > worst_term) {
                worst_term = term;
                *worst_a = a;
                *worst_b = b;
            }
        }
        if (sum > worst) worst = sum;
    }
    return worst;
}

static lh_status dtfm_evaluate(const lh_sched_problem *p, const lh_plan *plan, lh_cost_report *out)
{
    lh_status st = check_shape(p, plan);
    if (st) return st;
    st = report_alloc(out, plan->stages);
    if (st) return st;
    int P = plan->stages, D = plan->replicas;
    double dp = 0, pp = 0, pp_max_link = -1;
    int dp_worst_stage = 0, pp_from = -1, pp_to = -1;
    for (int s = 0; s < P; s++) {
        out->stage_dp_s[s] = group_dp_cost(p, plan, s, NULL, NULL);
        if (out->stage_dp_s[s] > dp) {
            dp = out->stage_dp_s[s];
            dp_worst_stage = s;
        }
    }
    for (int s = 0; s + 1 < P; s++) {
        double edge = 0;
        for (int r = 0; r < D; r++) {
            int a = lh_plan_device(plan, r, s), b = lh_plan_device(plan, r, s + 1);
            double c = lh_sp_pp_cost(p, a, b);
            if (c > edge) edge = c;
            if (c > pp_max_link) {
                pp_max_link = c;
                pp_from = a;
                pp_to = b;
            }
        }
        out->link_s[s] = edge;
        pp += edge;
    }
    out->dp_s = dp;
    out->pp_s = 2.0 * pp;
    out->total_s = out->dp_s + out->pp_s;
    if (out->pp_s >= out->dp_s && pp_from >= 0) {
        out->bottleneck_from = pp_from;
        out->bottleneck_to = pp_to;
        out->bottleneck_s = pp_max_link;
        snprintf(out->bottleneck_kind, sizeof out->bottleneck_kind, "pipeline");
    } else if (D > 1) {
        int a = -1, b = -1;
        group_dp_cost(p, plan, dp_worst_stage, &a, &b);
        out->bottleneck_from = a;
        out->bottleneck_to = b;
        out->bottleneck_s = lh_sp_dp_cost(p, lh_sp_stage_c_dp(p, plan, dp_worst_stage), a, b);
        snprintf(out->bottleneck_kind, sizeof out->bottleneck_kind, "data-parallel");
    }
    fill_memory(p, plan, out);
    return LH_OK;
}

const lh_cost_model lh_cost_dtfm = {
    "dtfm", "DT-FM COMM-COST: max group sharded-PS cost + 2 x pipeline path (Yuan et al. 2022)", dtfm_evaluate};

/* ---------------- iteration-time model ---------------- */

typedef struct stage_times {
    double f, b;    /* compute per micro-batch */
    double x, lat;  /* to the next stage: transfer and latency of one message */
} stage_times;

static double replica_pipeline(const lh_workload *w, const stage_times *t, int P, int M, double *drain_offset)
{
    double o = w->overlap;
    double makespan;
    if (w->schedule == LH_SCHEDULE_GPIPE) {
        double fwd = 0, bwd = 0, fwd_slot = 0, bwd_slot = 0;
        for (int s = 0; s < P; s++) {
            double xin = s > 0 ? t[s - 1].x : 0, xout = s + 1 < P ? t[s].x : 0;
            double comm_block = (1.0 - o) * (xin + xout);
            fwd += t[s].f + comm_block;
            bwd += t[s].b + comm_block;
            fwd_slot = fmax(fwd_slot, t[s].f + comm_block);
            bwd_slot = fmax(bwd_slot, t[s].b + comm_block);
            if (s + 1 < P) {
                fwd += t[s].lat + t[s].x;
                bwd += t[s].lat + t[s].x;
                fwd_slot = fmax(fwd_slot, t[s].x);
                bwd_slot = fmax(bwd_slot, t[s].x);
            }
        }
        makespan = fwd + (M - 1) * fwd_slot + bwd + (M - 1) * bwd_slot;
    } else {
        double latency = 0, slot = 0;
        for (int s = 0; s < P; s++) {
            double xin = s > 0 ? t[s - 1].x : 0, xout = s + 1 < P ? t[s].x : 0;
            latency += t[s].f + t[s].b + 2.0 * (1.0 - o) * (xin + xout);
            slot = fmax(slot, t[s].f + t[s].b + 2.0 * (1.0 - o) * (xin + xout));
            if (s + 1 < P) {
                latency += 2.0 * (t[s].lat + t[s].x);
                slot = fmax(slot, t[s].x);
            }
        }
        /* In steady 1F1B, B(j-1) on stage s is followed by F(j + w_s) (w_s = its warm-up forwards), whose
         * activation reaches stage s' where the next op is B(j + w_s - w_s'), whose gradient comes back to s:
         * a cycle through stages s..s' carrying w_s - w_s' + 1 micro-batches (s'-s+1 at depth 1).  Its
         * length over its token count bounds the slot (max-plus cycle mean); cycles with >= M tokens never
         * repeat and give no bound, and stages whose warm-up covers every micro-batch never alternate. */
        for (int s = 0; s < P; s++) {
            double len = 0;
            int ws = lh_workload_warmup(w, s);
            if (ws >= M) continue; /* warms up with every micro-batch: never alternates */
            for (int e = s; e < P && ws - lh_workload_warmup(w, e) + 1 < M; e++) {
                double xin = e > 0 ? t[e - 1].x : 0, xout = e + 1 < P ? t[e].x : 0;
                len += t[e].f + t[e].b + 2.0 * (1.0 - o) * (xin + xout);
                if (e > s) len += 2.0 * (t[e - 1].lat + t[e - 1].x);
                slot = fmax(slot, len / (ws - lh_workload_warmup(w, e) + 1));
            }
        }
        makespan = latency + (M - 1) * slot;
    }
    /* Stage s's last backward ends this long before stage 0's. */
    double acc = 0;
    for (int s = 0; s < P; s++) {
        drain_offset[s] = acc;
        acc += t[s].b + (s + 1 < P ? t[s].lat + t[s].x : 0);
    }
    return makespan;
}

/* Ring allreduce (reduce-scatter + all-gather) over one stage group, ring in replica order. */
static double ring_allreduce_s(const lh_sched_problem *p, const lh_plan *plan, int s, double grad_bytes, int *from,
                               int *to)
{
    int D = plan->replicas;
    if (D == 1) return 0;
    double chunk_bits = grad_bytes * 8.0 / D, max_x = 0, max_lat = 0, around = 0, worst = -1;
    for (int r = 0; r < D; r++) {
        int a = lh_plan_device(plan, r, s), b = lh_plan_device(plan, (r + 1) % D, s);
        double lat, ibw;
        lh_sp_link(p, a, b, &lat, &ibw);
        double x = chunk_bits * ibw;
        max_x = fmax(max_x, x);
        max_lat = fmax(max_lat, lat);
        around += x + lat;
        if (x + lat > worst) {
            worst = x + lat;
            if (from) *from = a;
            if (to) *to = b;
        }
    }
    /* 2(D-1) steps: the slowest link must carry every chunk (throughput bound), and a chunk's
     * dependency chain walks 2(D-1) consecutive ring links, i.e. 2(D-1)/D laps (latency bound). */
    double steps = 2.0 * (D - 1);
    return fmax(steps * max_x + max_lat, steps / D * around);
}

/* The engine's collectives pick the direct algorithm up to this many ranks (LH_COMM_DIRECT_MAX_RANKS). */
#define ENGINE_DIRECT_MAX_RANKS 8

double lh_sp_step_end(const lh_sched_problem *p, const lh_plan *plan, const double *stage_done, double *control_s)
{
    const lh_workload *w = &p->w;
    int P = plan->stages, D = plan->replicas;
    /* the engine's tied exchange: both directions at once, at the gradient width */
    double end = 0, synced = 0, tied_bits = (double)w->vocab * w->hidden * fmin(w->grad_bits, 32.0);
    for (int r = 0; r < D; r++) {
        double last = 0;
        for (int s = 0; s < P; s++) last = fmax(last, stage_done[r * P + s]);
        synced = fmax(synced, last);
        if (P > 1 && w->vocab > 0) {
            double lat, ibw;
            lh_sp_link(p, lh_plan_device(plan, r, 0), lh_plan_device(plan, r, P - 1), &lat, &ibw);
            double both = fmax(stage_done[r * P], stage_done[r * P + P - 1]);
            last = fmax(last, both + lat + tied_bits * ibw);
        }
        double norm = 0;
        if (P > ENGINE_DIRECT_MAX_RANKS) {
            for (int s = 0; s < P; s++) {
                double lat, ibw;
                lh_sp_link(p, lh_plan_device(plan, r, s), lh_plan_device(plan, r, (s + 1) % P), &lat, &ibw);
                norm = fmax(norm, lat);
            }
            norm *= P - 1;
        } else {
            for (int a = 0; a < P; a++)
                for (int b = a + 1; b < P; b++) {
                    double lat, ibw;
                    lh_sp_link(p, lh_plan_device(plan, r, a), lh_plan_device(plan, r, b), &lat, &ibw);
                    norm = fmax(norm, lat);
                }
        }
        end = fmax(end, last + norm);
    }
    if (control_s) *control_s = end - synced;
    return end;
}

static lh_status iteration_evaluate(const lh_sched_problem *p, const lh_plan *plan, lh_cost_report *out)
{
    lh_status st = check_shape(p, plan);
    if (st) return st;
    st = report_alloc(out, plan->stages);
    if (st) return st;
    const lh_workload *w = &p->w;
    int P = plan->stages, D = plan->replicas, M = w->batch / w->micro_batch;
    stage_times *t = malloc((size_t)P * sizeof *t);
    double *drain = malloc((size_t)P * sizeof *drain), *stage_ready = calloc((size_t)P, sizeof *stage_ready);
    if (!t || !drain || !stage_ready) {
        free(t);
        free(drain);
        free(stage_ready);
        lh_cost_report_clear(out);
        return lh_fail(LH_ERR_NOMEM, "iteration model: out of memory");
    }
    double msg_bits = lh_workload_act_message_bytes(w) * 8.0;
    double pipeline = 0, worst_link = -1;
    for (int r = 0; r < D; r++) {
        for (int s = 0; s < P; s++) {
            int d = lh_plan_device(plan, r, s);
            double flops = lh_workload_forward_flops(w, plan->num_layers[s], s == P - 1);
            t[s].f = flops / p->t->devices[d].flops;
            t[s].b = 2.0 * t[s].f;
            t[s].x = t[s].lat = 0;
            if (s + 1 < P) {
                int e = lh_plan_device(plan, r, s + 1);
                double ibw;
                lh_sp_link(p, d, e, &t[s].lat, &ibw);
                t[s].x = msg_bits * ibw;
                double one = t[s].lat + t[s].x;
                out->link_s[s] = fmax(out->link_s[s], one);
                if (one > worst_link) {
                    worst_link = one;
                    out->bottleneck_from = d;
                    out->bottleneck_to = e;
                    out->bottleneck_s = one;
                    snprintf(out->bottleneck_kind, sizeof out->bottleneck_kind, "pipeline");
                }
            }
            out->stage_compute_s[s] = fmax(out->stage_compute_s[s], t[s].f + t[s].b);
        }
        double mk = replica_pipeline(w, t, P, M, drain);
        pipeline = fmax(pipeline, mk);
        for (int s = 0; s < P; s++) stage_ready[s] = fmax(stage_ready[s], mk - drain[s]);
    }
    double dp_max = 0;
    int dp_from = -1, dp_to = -1;
    double dp_worst_extra = 0;
    double *stage_done = calloc((size_t)P * D, sizeof *stage_done);
    if (!stage_done) {
        free(t);
        free(drain);
        free(stage_ready);
        lh_cost_report_clear(out);
        return lh_fail(LH_ERR_NOMEM, "iteration model: out of memory");
    }
    for (int s = 0; s < P; s++) {
        double g = lh_workload_grad_bytes(w, plan->num_layers[s], s == 0, s == P - 1);
        int a = -1, b = -1;
        out->stage_dp_s[s] = ring_allreduce_s(p, plan, s, g, &a, &b);
        dp_max = fmax(dp_max, out->stage_dp_s[s]);
        double end = stage_ready[s] + out->stage_dp_s[s];
        for (int r = 0; r < D; r++) stage_done[r * P + s] = end;
        if (end - pipeline > dp_worst_extra) {
            dp_worst_extra = end - pipeline;
            dp_from = a;
            dp_to = b;
        }
    }
    double busiest_compute = 0;
    for (int s = 0; s < P; s++) busiest_compute = fmax(busiest_compute, out->stage_compute_s[s]);
    out->compute_s = M * busiest_compute;
    out->pp_s = pipeline;
    out->dp_s = dp_max;
    out->bubble_s = pipeline - out->compute_s;
    out->total_s = lh_sp_step_end(p, plan, stage_done, &out->control_s);
    free(stage_done);
    if (dp_from >= 0 && dp_worst_extra > 0 && dp_worst_extra > worst_link) {
        out->bottleneck_from = dp_from;
        out->bottleneck_to = dp_to;
        out->bottleneck_s = dp_worst_extra;
        snprintf(out->bottleneck_kind, sizeof out->bottleneck_kind, "data-parallel");
    }
    fill_memory(p, plan, out);
    free(t);
    free(drain);
    free(stage_ready);
    return LH_OK;
}

const lh_cost_model lh_cost_iteration = {
    "iteration",
    "longhaul iteration time: per-stage compute, GPipe/1F1B bubble, overlap, compressed ring allreduce, memory",
    iteration_evaluate};

const lh_cost_model *lh_cost_model_find(const char *name)
{
    if (!name) return NULL;
    if (strcmp(name, lh_cost_dtfm.name) == 0) return &lh_cost_dtfm;
    if (strcmp(name, lh_cost_iteration.name) == 0) return &lh_cost_iteration;
    return NULL;
}

/* ---------------- plan helpers ---------------- */

lh_status lh_sched_check_plan(const lh_sched_problem *p, const lh_plan *plan)
{
    lh_status st = check_shape(p, plan);
    if (st) return st;
    /* lh_plan_validate proves devices are distinct; with N = P*D slots every device is used exactly once. */
    for (int s = 0; s < plan->stages; s++) {
        double need = lh_sp_stage_memory(p, plan, s);
        for (int r = 0; r < plan->replicas; r++) {
            int d = lh_plan_device(plan, r, s);
            if (need > p->t->devices[d].memory_bytes)
                return lh_fail(LH_ERR_CAPACITY,
                               "plan: stage %d needs %.3g GB but device %d (%s) has %.3g GB", s, need / 1e9, d,
                               p->t->devices[d].name, p->t->devices[d].memory_bytes / 1e9);
        }
    }
    return LH_OK;
}

static int fits(const lh_sched_problem *p, int device, double need)
{
    return need <= p->t->devices[device].memory_bytes;
}

/*
 * Make a plan respect device memory by swapping each device that cannot hold
 * its stage with one, in another stage, that can hold it while the first can
 * hold theirs; stages are tried from the least demanding and replicas from
 * the same replica outwards, so pipelines stay as they were where possible.
 */
lh_status lh_sp_repair_memory(const lh_sched_problem *p, lh_plan *plan, int *swaps)
{
    int P = plan->stages, D = plan->replicas;
    double *need = malloc((size_t)P * sizeof *need);
    int *by_need = malloc((size_t)P * sizeof *by_need);
    if (!need || !by_need) {
        free(need);
        free(by_need);
        return lh_fail(LH_ERR_NOMEM, "memory repair: out of memory");
    }
    for (int s = 0; s < P; s++) {
        need[s] = lh_sp_stage_memory(p, plan, s);
        by_need[s] = s;
    }
    for (int i = 1; i < P; i++)
        for (int j = i; j > 0 && need[by_need[j]] < need[by_need[j - 1]]; j--) {
            int t = by_need[j];
            by_need[j] = by_need[j - 1];
            by_need[j - 1] = t;
        }
    lh_status st = LH_OK;
    if (swaps) *swaps = 0;
    for (int s = 0; s < P && !st; s++)
        for (int r = 0; r < D && !st; r++) {
            int *slot = &plan->device[r * P + s];
            if (fits(p, *slot, need[s])) continue;
            int done = 0;
            for (int k = 0; k < P && !done; k++) {
                int s2 = by_need[k];
                if (s2 == s || !fits(p, *slot, need[s2])) continue;
                for (int dr = 0; dr < D && !done; dr++) {
                    int *other = &plan->device[((r + dr) % D) * P + s2];
                    if (fits(p, *other, need[s]) && fits(p, *other, need[s2]) == 1) {
                        int t = *slot;
                        *slot = *other;
                        *other = t;
                        done = 1;
                        if (swaps) (*swaps)++;
                    }
                }
            }
            if (!done)
                st = lh_fail(LH_ERR_CAPACITY,
                             "plan: device %d (%s, %.3g GB) fits no stage (stage %d needs %.3g GB, the smallest %.3g GB) "
                             "or no device can trade places with it",
                             *slot, p->t->devices[*slot].name, p->t->devices[*slot].memory_bytes / 1e9, s, need[s] / 1e9,
                             need[by_need[0]] / 1e9);
        }
    free(need);
    free(by_need);
    return st;
}

lh_status lh_sp_finish_plan(const lh_sched_problem *p, lh_plan *plan, const char *strategy)
{
    int swaps;
    lh_status st0 = lh_sp_repair_memory(p, plan, &swaps);
    if (st0) return lh_fail_prefix(st0, "strategy %s", strategy);
    snprintf(plan->strategy, sizeof plan->strategy, "%s", strategy);
    snprintf(plan->cost_model, sizeof plan->cost_model, "dtfm");
    lh_cost_report r;
    lh_status st = dtfm_evaluate(p, plan, &r);
    if (st) return st;
    plan->cost_s = r.total_s;
    lh_cost_report_clear(&r);
    return lh_sched_check_plan(p, plan);
}

lh_status lh_plan_balance_layers(const lh_sched_problem *p, lh_plan *plan)
{
    lh_status st = check_shape(p, plan);
    if (st) return st;
    int P = plan->stages, L = plan->layers;
    double *speed = malloc((size_t)P * sizeof *speed);
    int *layers = malloc((size_t)P * sizeof *layers);
    if (!speed || !layers) {
        free(speed);
        free(layers);
        return lh_fail(LH_ERR_NOMEM, "balance layers: out of memory");
    }
    for (int s = 0; s < P; s++) {
        speed[s] = INFINITY;
        for (int r = 0; r < plan->replicas; r++)
            speed[s] = fmin(speed[s], p->t->devices[lh_plan_device(plan, r, s)].flops);
        layers[s] = 1;
    }
    /* Greedy: give each next layer to the stage whose time after taking it is smallest and which still fits. */
    lh_plan trial = *plan;
    trial.num_layers = layers;
    for (int k = P; k < L; k++) {
        int best = -1;
        double best_t = INFINITY;
        for (int s = 0; s < P; s++) {
            layers[s]++;
            double need = lh_sp_stage_memory(p, &trial, s);
            int fits = 1;
            for (int r = 0; r < plan->replicas && fits; r++)
                if (need > p->t->devices[lh_plan_device(plan, r, s)].memory_bytes) fits = 0;
            double t = lh_workload_forward_flops(&p->w, layers[s], s == P - 1) / speed[s];
            layers[s]--;
            if (fits && t < best_t) {
                best_t = t;
                best = s;
            }
        }
        if (best < 0) {
            free(speed);
            free(layers);
            return lh_fail(LH_ERR_CAPACITY, "balance layers: layer %d fits on no stage's devices", k);
        }
        layers[best]++;
    }
    int first = 0;
    for (int s = 0; s < P; s++) {
        plan->num_layers[s] = layers[s];
        plan->first_layer[s] = first;
        first += layers[s];
    }
    free(speed);
    free(layers);
    return LH_OK;
}
