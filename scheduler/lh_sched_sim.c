/*
 * Discrete-event simulator of one training iteration under a plan, to check
 * the analytic iteration model op by op.
 *
 * What is simulated: every forward and backward of every micro-batch on every
 * device in the schedule's order (GPipe: all forwards then all backwards;
 * 1F1B: lh_workload_warmup forwards, then one-forward-one-backward, then
 * the cool-down backwards), every activation and gradient message on its
 * directed link (a link carries one message at a time, first come first
 * served; latency is in flight, not occupancy), the unhidden part (1 - overlap)
 * of each send and receive blocking its device, and then, per stage group,
 * the engine's ring allreduce (reduce-scatter + all-gather, 2(D-1) steps of
 * G/D bytes), each step starting when a device has received the previous
 * chunk and its outgoing link is free, each device starting when its own last
 * backward is done; then the step's control traffic as the model counts it
 * (lh_sp_step_end: tied-embedding sync, gradient-norm all-gather).
 *
 * Because each device executes a fixed op order and each directed link has a
 * single sender, processing ops in per-device order while their inputs are
 * known yields the exact event times without a global priority queue.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lh_sched_internal.h"

typedef struct sim_op {
    int fwd; /* 1 forward, 0 backward */
    int mb;
} sim_op;

static void build_ops(const lh_workload *w, int M, int s, sim_op *ops)
{
    int k = 0;
    if (w->schedule == LH_SCHEDULE_GPIPE) {
        for (int m = 0; m < M; m++) ops[k++] = (sim_op){1, m};
        for (int m = 0; m < M; m++) ops[k++] = (sim_op){0, m};
        return;
    }
    int warm = lh_workload_warmup(w, s);
    int f = 0, b = 0;
    for (; f < warm; f++) ops[k++] = (sim_op){1, f};
    while (f < M) {
        ops[k++] = (sim_op){1, f++};
        ops[k++] = (sim_op){0, b++};
    }
    while (b < M) ops[k++] = (sim_op){0, b++};
}

lh_status lh_simulate_iteration(const lh_sched_problem *p, const lh_plan *plan, lh_sim_result *out)
{
    memset(out, 0, sizeof *out);
    out->busiest_link_from = out->busiest_link_to = -1;
    if (plan->stages != p->stages || plan->replicas != p->replicas || plan->layers != p->w.layers)
        return lh_fail(LH_ERR_MISMATCH, "simulator: plan is %d x %d with %d layers, workload is %d x %d with %d",
                       plan->stages, plan->replicas, plan->layers, p->stages, p->replicas, p->w.layers);
    lh_status st = lh_plan_validate(plan, p->t);
    if (st) return st;
    const lh_workload *w = &p->w;
    int P = plan->stages, D = plan->replicas, M = w->batch / w->micro_batch;
    double o = w->overlap, msg_bits = lh_workload_act_message_bytes(w) * 8.0;
    size_t pm = (size_t)P * M;
    sim_op *ops = malloc((size_t)P * 2 * M * sizeof *ops);
    double *fwd_arr = malloc(pm * sizeof(double)), *bwd_arr = malloc(pm * sizeof(double));
    double *fdone = malloc(pm * sizeof(double));
    double *f = malloc((size_t)P * sizeof(double)), *b = malloc((size_t)P * sizeof(double));
    double *x = calloc((size_t)P, sizeof(double)), *lat = calloc((size_t)P, sizeof(double));
    double *dev_free = malloc((size_t)P * sizeof(double)), *lf_fwd = malloc((size_t)P * sizeof(double));
    double *lf_bwd = malloc((size_t)P * sizeof(double));
    int *next = malloc((size_t)P * sizeof(int));
    double *stage_done = malloc((size_t)D * P * sizeof(double)); /* [r*P + s] */
    double *ring_recv = malloc((size_t)D * sizeof(double)), *ring_link = malloc((size_t)D * sizeof(double));
    double *ring_new = malloc((size_t)D * sizeof(double));
    if (!ops || !fwd_arr || !bwd_arr || !fdone || !f || !b || !x || !lat || !dev_free || !lf_fwd || !lf_bwd ||
        !next || !stage_done || !ring_recv || !ring_link || !ring_new) {
        st = lh_fail(LH_ERR_NOMEM, "simulator: out of memory for %d stages x %d micro-batches", P, M);
        goto done;
    }
    for (int s = 0; s < P; s++) build_ops(w, M, s, ops + (size_t)s * 2 * M);
    double pipeline = 0;
    for (int r = 0; r < D; r++) {
        for (int s = 0; s < P; s++) {
            int d = lh_plan_device(plan, r, s);
            f[s] = lh_workload_forward_flops(w, plan->num_layers[s], s == P - 1) / p->t->devices[d].flops;
            b[s] = 2.0 * f[s];
            if (s + 1 < P) {
                double ibw;
                lh_sp_link(p, d, lh_plan_device(plan, r, s + 1), &lat[s], &ibw);
                x[s] = msg_bits * ibw;
                double busy = 2.0 * M * x[s]; /* both directions of the pair, M messages each */
                if (busy > out->busiest_link_busy_s) {
                    out->busiest_link_busy_s = busy;
                    out->busiest_link_from = d;
                    out->busiest_link_to = lh_plan_device(plan, r, s + 1);
                }
            }
            dev_free[s] = lf_fwd[s] = lf_bwd[s] = 0;
            next[s] = 0;
        }
        for (size_t i = 0; i < pm; i++) fwd_arr[i] = bwd_arr[i] = fdone[i] = NAN;
        for (int m = 0; m < M; m++) fwd_arr[m] = 0; /* stage 0 has its inputs at t = 0 */
        int remaining = P * 2 * M, progress = 1;
        while (remaining > 0 && progress) {
            progress = 0;
            for (int s = 0; s < P; s++) {
                while (next[s] < 2 * M) {
                    sim_op op = ops[(size_t)s * 2 * M + next[s]];
                    size_t k = (size_t)s * M + op.mb;
                    double xin = op.fwd ? (s > 0 ? x[s - 1] : 0) : (s + 1 < P ? x[s] : 0);
                    double xout = op.fwd ? (s + 1 < P ? x[s] : 0) : (s > 0 ? x[s - 1] : 0);
                    double ready;
                    if (op.fwd) ready = fwd_arr[k];
                    else {
                        if (isnan(fdone[k])) break;
                        ready = s == P - 1 ? fdone[k] : bwd_arr[k];
                    }
                    if (isnan(ready)) break;
                    double start = fmax(dev_free[s], ready) + (1.0 - o) * xin;
                    double end = start + (op.fwd ? f[s] : b[s]);
                    dev_free[s] = end + (1.0 - o) * xout;
                    if (op.fwd) {
                        fdone[k] = end;
                        if (s + 1 < P) {
                            double ls = fmax(end, lf_fwd[s]);
                            lf_fwd[s] = ls + x[s];
                            fwd_arr[(size_t)(s + 1) * M + op.mb] = ls + x[s] + lat[s];
                            out->events++;
                        }
                    } else if (s > 0) {
                        double ls = fmax(end, lf_bwd[s - 1]);
                        lf_bwd[s - 1] = ls + x[s - 1];
                        bwd_arr[(size_t)(s - 1) * M + op.mb] = ls + x[s - 1] + lat[s - 1];
                        out->events++;
                    }
                    out->events++;
                    next[s]++;
                    remaining--;
                    progress = 1;
                }
            }
        }
        if (remaining > 0) {
            st = lh_fail(LH_ERR_INTERNAL, "simulator: schedule deadlocked with %d ops left in replica %d", remaining, r);
            goto done;
        }
        for (int s = 0; s < P; s++) {
            stage_done[r * P + s] = dev_free[s];
            pipeline = fmax(pipeline, dev_free[s]);
        }
    }
    double iteration = pipeline, dp_max = 0;
    if (D > 1) {
        for (int s = 0; s < P; s++) {
            double g = lh_workload_grad_bytes(w, plan->num_layers[s], s == 0, s == P - 1);
            double chunk_bits = g * 8.0 / D;
            double start_min = INFINITY;
            for (int r = 0; r < D; r++) {
                ring_recv[r] = stage_done[r * P + s]; /* ready to send step 0 */
                ring_link[r] = 0;
                start_min = fmin(start_min, ring_recv[r]);
            }
            double end = 0;
            for (int step = 0; step < 2 * (D - 1); step++) {
                for (int r = 0; r < D; r++) {
                    int a = lh_plan_device(plan, r, s), bdev = lh_plan_device(plan, (r + 1) % D, s);
                    double l, ibw;
                    lh_sp_link(p, a, bdev, &l, &ibw);
                    double t_x = chunk_bits * ibw;
                    double ls = fmax(ring_recv[r], ring_link[r]);
                    ring_link[r] = ls + t_x;
                    ring_new[(r + 1) % D] = fmax(ls + t_x + l, stage_done[((r + 1) % D) * P + s]);
                    out->events++;
                }
                for (int r = 0; r < D; r++) {
                    ring_recv[r] = ring_new[r];
                    end = fmax(end, ring_new[r]);
                }
            }
            iteration = fmax(iteration, end);
            dp_max = fmax(dp_max, end - start_min);
            for (int r = 0; r < D; r++) stage_done[r * P + s] = end;
        }
    }
    out->pipeline_s = pipeline;
    out->dp_s = dp_max;
    out->iteration_s = fmax(iteration, lh_sp_step_end(p, plan, stage_done, NULL));
done:
    free(ops), free(fwd_arr), free(bwd_arr), free(fdone), free(f), free(b), free(x), free(lat);
    free(dev_free), free(lf_fwd), free(lf_bwd), free(next), free(stage_done), free(ring_recv), free(ring_link),
        free(ring_new);
    return st;
}

lh_status lh_choose_depth(const lh_sched_problem *p, const lh_plan *plan, int *depth, double *iteration_s)
{
    struct lh_sched_problem q = *p; /* a shallow copy: only its workload's depth changes */
    int P = plan->stages, M = p->w.batch / p->w.micro_batch;
    int deepest = P > 1 ? (M + P - 2) / (P - 1) : 1; /* stage 0 then warms up with every micro-batch */
    int depths[64], n = 0;
    double times[64], best = INFINITY;
    q.w.schedule = LH_SCHEDULE_1F1B;
    /* 1, 2, 3, 4, then ~1.5x apart up to the deepest: a few dozen simulations at most, whatever M */
    for (int d = 1; n < 64; d = d < 4 ? d + 1 : (d * 3 + 1) / 2) {
        if (d > deepest) d = deepest;
        q.w.depth = d;
        lh_cost_report rep;
        lh_status st = lh_cost_iteration.evaluate(&q, plan, &rep);
        if (st) return st;
        int fits = rep.memory_ok;
        lh_cost_report_clear(&rep);
        if (!fits && d > 1) break; /* deeper only needs more memory */
        lh_sim_result sim;
        if ((st = lh_simulate_iteration(&q, plan, &sim))) return st;
        depths[n] = d;
        times[n++] = sim.iteration_s;
        best = fmin(best, sim.iteration_s);
        if (d == deepest) break;
    }
    int k = 0;
    while (times[k] > 1.01 * best) k++; /* the shallowest within 1% of the fastest */
    *depth = depths[k];
    if (iteration_s) *iteration_s = times[k];
    return LH_OK;
}
