/*
 * Serving placement: the "serve-latency" cost model and strategy.
 *
 * Why the objective is the worst replica: a serving front end hands a request
 * to whichever replica is free, so the latency it can promise per token is the
 * slowest replica's.  The sum over replicas is kept as a tie-breaker so the
 * search still improves replicas that are not the worst (Petals-style routing
 * would pick the fastest free one, and a better second replica helps then).
 *
 * Why a swap local search: with the stage split fixed, a plan is an
 * assignment of N devices to N (replica, stage) slots.  Swapping two slots
 * changes at most two replicas, so a move is scored in O(stages + replicas)
 * from cached per-replica latencies; that makes a few hundred thousand
 * candidate moves cost milliseconds for the sizes served from one plan.
 * Moves are ranked lexicographically by (devices over their memory, worst
 * latency, total latency), so an infeasible start is repaired by the same
 * search that then optimises latency.  Budgets are counted in evaluated
 * moves, so the result is deterministic for a seed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_sched_internal.h"
#include "lh_serve_sched.h"
#include "lh_time.h"

/* ---------------- inference accounting ---------------- */

static double serve_stage_params(const lh_workload *w, int layers, int is_first, int is_last)
{
    double h = w->hidden;
    double params = lh_workload_block_params(w, layers);
    if (is_first) params += (double)w->vocab * h + (double)w->seq_len * h;
    if (is_last) params += (double)w->vocab * h + 2.0 * h;
    return params;
}

double lh_serve_stage_memory(const lh_workload *w, int layers, int is_first, int is_last)
{
    double weights = serve_stage_params(w, layers, is_first, is_last) * w->act_bytes;
    double kv = 2.0 * layers * (double)w->batch * w->seq_len * w->hidden * w->act_bytes;
    return weights + kv;
}

double lh_serve_token_flops(const lh_workload *w, int layers, int is_last)
{
    double h = w->hidden;
    double flops = 2.0 * lh_workload_block_params(w, layers) + (double)layers * 4.0 * w->seq_len * h;
    if (is_last) flops += 2.0 * h * w->vocab;
    return flops;
}

double lh_serve_token_act_bytes(const lh_workload *w)
{
    return (double)w->hidden * w->act_bits / 8.0;
}

/* One pipeline hop for one token: latency + bits / bandwidth. */
static double token_link_s(const lh_sched_problem *p, double token_bits, int a, int b)
{
    double lat, ibw;
    lh_sp_link(p, a, b, &lat, &ibw);
    return lat + token_bits * ibw;
}

static lh_status check_plan_shape(const lh_sched_problem *p, const lh_plan *plan)
{
    if (plan->stages != p->stages || plan->replicas != p->replicas)
        return lh_fail(LH_ERR_MISMATCH, "plan is %d stages x %d replicas but the workload asks for %d x %d",
                       plan->stages, plan->replicas, p->stages, p->replicas);
    if (plan->layers != p->w.layers)
        return lh_fail(LH_ERR_MISMATCH, "plan splits %d layers but the workload has %d", plan->layers,
                       p->w.layers);
    return lh_plan_validate(plan, p->t);
}

static double stage_compute_s(const lh_sched_problem *p, const lh_plan *plan, int s, int device)
{
    return lh_serve_token_flops(&p->w, plan->num_layers[s], s == plan->stages - 1) /
           p->t->devices[device].flops;
}

lh_status lh_serve_replica_latency(const lh_sched_problem *p, const lh_plan *plan, double *latency_s)
{
    lh_status st = check_plan_shape(p, plan);
    if (st) return st;
    double bits = lh_serve_token_act_bytes(&p->w) * 8.0;
    for (int r = 0; r < plan->replicas; r++) {
        double sum = 0;
        for (int s = 0; s < plan->stages; s++) {
            int d = lh_plan_device(plan, r, s);
            sum += stage_compute_s(p, plan, s, d);
            if (s + 1 < plan->stages) sum += token_link_s(p, bits, d, lh_plan_device(plan, r, s + 1));
        }
        latency_s[r] = sum;
    }
    return LH_OK;
}

static lh_status serve_evaluate(const lh_sched_problem *p, const lh_plan *plan, lh_cost_report *out)
{
    lh_status st = check_plan_shape(p, plan);
    if (st) return st;
    int P = plan->stages, D = plan->replicas;
    memset(out, 0, sizeof *out);
    out->stages = P;
    out->stage_compute_s = calloc((size_t)P, sizeof(double));
    out->stage_dp_s = calloc((size_t)P, sizeof(double));
    out->link_s = calloc((size_t)(P > 1 ? P - 1 : 1), sizeof(double));
    out->stage_memory_bytes = calloc((size_t)P, sizeof(double));
    if (!out->stage_compute_s || !out->stage_dp_s || !out->link_s || !out->stage_memory_bytes) {
        lh_cost_report_clear(out);
        return lh_fail(LH_ERR_NOMEM, "serve-latency: out of memory");
    }
    out->bottleneck_from = out->bottleneck_to = -1;
    out->bottleneck_s = -1;
    snprintf(out->bottleneck_kind, sizeof out->bottleneck_kind, "pipeline");
    double bits = lh_serve_token_act_bytes(&p->w) * 8.0;
    double worst = -1;
    for (int r = 0; r < D; r++) {
        double comp = 0, link = 0;
        for (int s = 0; s < P; s++) {
            int d = lh_plan_device(plan, r, s);
            double c = stage_compute_s(p, plan, s, d);
            comp += c;
            if (c > out->stage_compute_s[s]) out->stage_compute_s[s] = c;
            if (s + 1 < P) {
                int e = lh_plan_device(plan, r, s + 1);
                double l = token_link_s(p, bits, d, e);
                link += l;
                if (l > out->link_s[s]) out->link_s[s] = l;
                if (l > out->bottleneck_s) {
                    out->bottleneck_s = l;
                    out->bottleneck_from = d;
                    out->bottleneck_to = e;
                }
            }
        }
        if (comp + link > worst) {
            worst = comp + link;
            out->compute_s = comp;
            out->pp_s = link;
        }
    }
    if (out->bottleneck_s < 0) out->bottleneck_s = 0;
    out->total_s = worst;
    out->memory_ok = 1;
    double worst_frac = -INFINITY;
    for (int s = 0; s < P; s++) {
        double need = lh_serve_stage_memory(&p->w, plan->num_layers[s], s == 0, s == P - 1);
        out->stage_memory_bytes[s] = need;
        for (int r = 0; r < D; r++) {
            int d = lh_plan_device(plan, r, s);
            double frac = need / p->t->devices[d].memory_bytes;
            if (frac > 1.0) out->memory_ok = 0;
            if (frac > worst_frac) {
                worst_frac = frac;
                out->memory_worst_device = d;
            }
        }
    }
    return LH_OK;
}

const lh_cost_model lh_cost_serve_latency = {
    "serve-latency",
    "serving: worst replica's per-token latency (one-token compute per stage + link latency + one token's "
    "activation), inference memory (weights + KV cache)",
    serve_evaluate};

/* ---------------- the strategy ---------------- */

typedef struct serve_search {
    const lh_sched_problem *p;
    int P, D, N;
    double token_bits;
    double *comp; /* [N * P]: device d on stage s */
    double *need; /* [P] */
    int *slot;    /* [D * P]: device of (r, s) */
    double *lat;  /* [D] per-replica latency */
    int over;     /* slots whose device cannot hold the stage */
    long evaluations;
} serve_search;

/* Lexicographic score: devices over memory, then worst, then total latency. */
typedef struct serve_score {
    int over;
    double worst, total;
} serve_score;

static int score_better(serve_score a, serve_score b)
{
    const double eps = 1e-12;
    if (a.over != b.over) return a.over < b.over;
    if (a.worst < b.worst - eps * fmax(1.0, fabs(b.worst))) return 1;
    if (a.worst > b.worst + eps * fmax(1.0, fabs(b.worst))) return 0;
    return a.total < b.total - eps * fmax(1.0, fabs(b.total));
}

static double path_latency(const serve_search *q, const int *row)
{
    double sum = 0;
    for (int s = 0; s < q->P; s++) {
        sum += q->comp[(size_t)row[s] * q->P + s];
        if (s + 1 < q->P) sum += token_link_s(q->p, q->token_bits, row[s], row[s + 1]);
    }
    return sum;
}

static int slot_over(const serve_search *q, int device, int s)
{
    return q->need[s] > q->p->t->devices[device].memory_bytes;
}

static serve_score current_score(serve_search *q)
{
    serve_score sc = {q->over, 0, 0};
    for (int r = 0; r < q->D; r++) {
        sc.total += q->lat[r];
        if (q->lat[r] > sc.worst) sc.worst = q->lat[r];
    }
    return sc;
}

static void recompute(serve_search *q)
{
    q->over = 0;
    for (int r = 0; r < q->D; r++) {
        q->lat[r] = path_latency(q, q->slot + (size_t)r * q->P);
        for (int s = 0; s < q->P; s++)
            q->over += slot_over(q, q->slot[r * q->P + s], s);
    }
}

/* Score after swapping slots i and j (indices into slot[]), without keeping the swap. */
static serve_score score_swap(serve_search *q, int i, int j)
{
    int P = q->P, ri = i / P, rj = j / P, si = i % P, sj = j % P;
    int di = q->slot[i], dj = q->slot[j];
    serve_score sc;
    sc.over =
        q->over - slot_over(q, di, si) - slot_over(q, dj, sj) + slot_over(q, dj, si) + slot_over(q, di, sj);
    q->slot[i] = dj, q->slot[j] = di;
    double li = path_latency(q, q->slot + (size_t)ri * P);
    double lj = ri == rj ? li : path_latency(q, q->slot + (size_t)rj * P);
    q->slot[i] = di, q->slot[j] = dj;
    sc.worst = 0, sc.total = 0;
    for (int r = 0; r < q->D; r++) {
        double l = r == ri ? li : r == rj ? lj : q->lat[r];
        sc.total += l;
        if (l > sc.worst) sc.worst = l;
    }
    q->evaluations++;
    return sc;
}

static void apply_swap(serve_search *q, int i, int j)
{
    int P = q->P, ri = i / P, rj = j / P, si = i % P, sj = j % P;
    int di = q->slot[i], dj = q->slot[j];
    q->over += -slot_over(q, di, si) - slot_over(q, dj, sj) + slot_over(q, dj, si) + slot_over(q, di, sj);
    q->slot[i] = dj, q->slot[j] = di;
    q->lat[ri] = path_latency(q, q->slot + (size_t)ri * P);
    if (rj != ri) q->lat[rj] = path_latency(q, q->slot + (size_t)rj * P);
}

/*
 * Greedy start: build whole replica paths one at a time, best first.  For a
 * candidate first device the path is extended stage by stage with the unused
 * device that adds the least (link from the previous device + one-token
 * compute), preferring devices that can hold the stage; of all candidate
 * first devices the cheapest path is kept.  On region-structured topologies
 * this keeps a replica inside one region while a region has room, which is
 * what avoids slow links (serving has no data-parallel traffic, so nothing
 * pulls a stage's devices together).  Above 64 unused devices the candidate
 * first devices are a deterministic evenly spaced sample of 64.
 */
static void greedy_start(serve_search *q, unsigned char *used, int *path, int *trial)
{
    int P = q->P, D = q->D, N = q->N;
    memset(used, 0, (size_t)N);
    for (int r = 0; r < D; r++) {
        int free_count = N - r * P;
        int step = free_count > 64 ? free_count / 64 : 1;
        double best_cost = INFINITY;
        int best_over = 1 << 30, seen = 0;
        for (int start = 0; start < N; start++) {
            if (used[start]) continue;
            if (seen++ % step) continue;
            used[start] = 1;
            trial[0] = start;
            int over = slot_over(q, start, 0);
            double cost = q->comp[(size_t)start * P];
            for (int s = 1; s < P; s++) {
                int pick = -1, pick_over = 1;
                double pick_add = INFINITY;
                for (int d = 0; d < N; d++) {
                    if (used[d]) continue;
                    double add =
                        q->comp[(size_t)d * P + s] + token_link_s(q->p, q->token_bits, trial[s - 1], d);
                    int o = slot_over(q, d, s);
                    if (o < pick_over || (o == pick_over && add < pick_add))
                        pick = d, pick_over = o, pick_add = add;
                }
                trial[s] = pick;
                used[pick] = 1;
                over += pick_over;
                cost += pick_add;
            }
            for (int s = 0; s < P; s++)
                used[trial[s]] = 0;
            if (over < best_over || (over == best_over && cost < best_cost)) {
                best_over = over, best_cost = cost;
                memcpy(path, trial, (size_t)P * sizeof *path);
            }
        }
        for (int s = 0; s < P; s++) {
            q->slot[r * P + s] = path[s];
            used[path[s]] = 1;
        }
    }
    recompute(q);
}

/* Score after exchanging the tails (stages cut..P-1) of replicas ra and rb; the exchange is undone. */
static serve_score score_tail_exchange(serve_search *q, int ra, int rb, int cut)
{
    int P = q->P;
    int *a = q->slot + (size_t)ra * P, *b = q->slot + (size_t)rb * P;
    for (int s = cut; s < P; s++) {
        int t = a[s];
        a[s] = b[s], b[s] = t;
    }
    double la = path_latency(q, a), lb = path_latency(q, b);
    for (int s = cut; s < P; s++) {
        int t = a[s];
        a[s] = b[s], b[s] = t;
    }
    serve_score sc = {q->over, 0, 0}; /* devices keep their stages: memory is unchanged */
    for (int r = 0; r < q->D; r++) {
        double l = r == ra ? la : r == rb ? lb : q->lat[r];
        sc.total += l;
        if (l > sc.worst) sc.worst = l;
    }
    q->evaluations++;
    return sc;
}

static void apply_tail_exchange(serve_search *q, int ra, int rb, int cut)
{
    int P = q->P;
    int *a = q->slot + (size_t)ra * P, *b = q->slot + (size_t)rb * P;
    for (int s = cut; s < P; s++) {
        int t = a[s];
        a[s] = b[s], b[s] = t;
    }
    q->lat[ra] = path_latency(q, a);
    q->lat[rb] = path_latency(q, b);
}

/*
 * First-improvement descent, in a seeded order, until a local optimum or the
 * budget: tail exchanges between replicas (the path analogue of 2-opt: it
 * re-routes two replicas at one stage boundary without moving any device to
 * another stage), then swaps of any two slots (moves devices across stages
 * and repairs memory).
 */
static void descend(serve_search *q, lh_rng *rng, int *order, int *pairs, long budget)
{
    int N = q->N, P = q->P, D = q->D;
    int n_pairs = 0;
    for (int a = 0; a < D; a++)
        for (int b = a + 1; b < D; b++)
            for (int cut = 1; cut < P; cut++)
                pairs[n_pairs++] = (a * D + b) * P + cut;
    for (int i = 0; i < N; i++)
        order[i] = i;
    int improved = 1;
    while (improved && q->evaluations < budget) {
        improved = 0;
        serve_score cur = current_score(q);
        lh_rng_shuffle(rng, pairs, n_pairs);
        for (int k = 0; k < n_pairs && q->evaluations < budget; k++) {
            int cut = pairs[k] % P, ab = pairs[k] / P, a = ab / D, b = ab % D;
            serve_score sc = score_tail_exchange(q, a, b, cut);
            if (score_better(sc, cur)) {
                apply_tail_exchange(q, a, b, cut);
                cur = current_score(q);
                improved = 1;
            }
        }
        lh_rng_shuffle(rng, order, N);
        for (int x = 0; x < N && q->evaluations < budget; x++)
            for (int y = x + 1; y < N && q->evaluations < budget; y++) {
                int i = order[x], j = order[y];
                serve_score sc = score_swap(q, i, j);
                if (score_better(sc, cur)) {
                    apply_swap(q, i, j);
                    cur = current_score(q);
                    improved = 1;
                }
            }
    }
}

static lh_status run_serve_latency(const lh_sched_problem *p, const lh_strategy_options *o, lh_plan **out)
{
    *out = NULL;
    const lh_workload *w = &p->w;
    int P = p->stages, D = p->replicas, N = p->n;
    if (N > LH_SCHED_DENSE_MAX)
        return lh_fail(LH_ERR_CAPACITY, "serve-latency: %d devices is more than the %d this strategy handles",
                       N, LH_SCHED_DENSE_MAX);
    double t0 = lh_now_s();
    lh_plan *plan = NULL;
    lh_status st = lh_plan_create(P, D, w->layers, &plan);
    if (st) return st;
    serve_search q = {p, P, D, N, lh_serve_token_act_bytes(w) * 8.0, NULL, NULL, NULL, NULL, 0, 0};
    q.comp = malloc((size_t)N * P * sizeof *q.comp);
    q.need = malloc((size_t)P * sizeof *q.need);
    q.slot = malloc((size_t)N * sizeof *q.slot);
    q.lat = malloc((size_t)D * sizeof *q.lat);
    int *best = malloc((size_t)N * sizeof *best);
    int *order = malloc((size_t)N * sizeof *order);
    unsigned char *used = malloc((size_t)N);
    int *path = malloc((size_t)P * sizeof *path), *trial = malloc((size_t)P * sizeof *trial);
    size_t n_pairs = (size_t)D * (D > 1 ? D - 1 : 1) / 2 * (P > 1 ? P - 1 : 1);
    int *pairs = malloc((n_pairs ? n_pairs : 1) * sizeof *pairs);
    if (!q.comp || !q.need || !q.slot || !q.lat || !best || !order || !used || !path || !trial || !pairs) {
        st = lh_fail(LH_ERR_NOMEM, "serve-latency: out of memory for %d devices", N);
        goto done;
    }
    for (int s = 0; s < P; s++) {
        q.need[s] = lh_serve_stage_memory(w, plan->num_layers[s], s == 0, s == P - 1);
        for (int d = 0; d < N; d++)
            q.comp[(size_t)d * P + s] = stage_compute_s(p, plan, s, d);
    }
    long budget = o && o->max_evaluations > 0 ? o->max_evaluations : 200000;
    lh_rng rng = {o ? o->seed : 1};

    /* Two starts: rank order (what training would use) and the greedy paths; keep the better local optimum.
     */
    serve_score best_score = {1 << 30, INFINITY, INFINITY};
    for (int start = 0; start < 2; start++) {
        if (start == 0) {
            memcpy(q.slot, plan->device, (size_t)N * sizeof *q.slot);
            recompute(&q);
        } else {
            greedy_start(&q, used, path, trial);
        }
        descend(&q, &rng, order, pairs, q.evaluations + budget / 4);
        serve_score sc = current_score(&q);
        if (score_better(sc, best_score)) {
            best_score = sc;
            memcpy(best, q.slot, (size_t)N * sizeof *best);
        }
    }
    /* Iterated local search from the best: a few random swaps, descend, keep improvements. */
    while (q.evaluations < budget && N > 1) {
        if (o && o->time_limit_s > 0 && lh_now_s() - t0 > o->time_limit_s) break;
        memcpy(q.slot, best, (size_t)N * sizeof *best);
        int kicks = 2 + lh_rng_below(&rng, 3);
        for (int k = 0; k < kicks; k++) {
            int i = lh_rng_below(&rng, N), j = lh_rng_below(&rng, N);
            int t = q.slot[i];
            q.slot[i] = q.slot[j], q.slot[j] = t;
        }
        recompute(&q);
        long before = q.evaluations;
        descend(&q, &rng, order, pairs, budget);
        if (q.evaluations == before) q.evaluations++; /* a degenerate instance still ends */
        serve_score sc = current_score(&q);
        if (score_better(sc, best_score)) {
            best_score = sc;
            memcpy(best, q.slot, (size_t)N * sizeof *best);
        }
    }
    if (best_score.over > 0) {
        int r = 0, s = 0, d = -1;
        for (int k = 0; k < N && d < 0; k++)
            if (slot_over(&q, best[k], k % P)) d = best[k], r = k / P, s = k % P;
        st = lh_fail(
            LH_ERR_CAPACITY,
            "serve-latency: no placement fits device memory: device %d (%s, %.3g bytes) would need %.3g "
            "bytes for stage %d of replica %d",
            d, p->t->devices[d].name, p->t->devices[d].memory_bytes, q.need[s], s, r);
        goto done;
    }
    memcpy(plan->device, best, (size_t)N * sizeof *best);
    snprintf(plan->strategy, sizeof plan->strategy, "serve-latency");
    snprintf(plan->cost_model, sizeof plan->cost_model, "serve-latency");
    plan->cost_s = best_score.worst;
    st = lh_plan_validate(plan, p->t);
    if (!st && o && o->curve) st = lh_anytime_add(o->curve, lh_now_s() - t0, plan->cost_s, q.evaluations);
done:
    free(q.comp), free(q.need), free(q.slot), free(q.lat);
    free(best), free(order), free(used), free(path), free(trial), free(pairs);
    if (st) {
        lh_plan_free(plan);
        return st;
    }
    *out = plan;
    return LH_OK;
}

const lh_strategy lh_strategy_serve_latency = {"serve-latency",
                                               "serving: minimise the worst replica's per-token latency "
                                               "within inference memory (greedy paths + swap ILS)",
                                               LH_SCHED_DENSE_MAX, run_serve_latency};

const lh_cost_model *lh_serve_cost_model_find(const char *name)
{
    if (name && strcmp(name, lh_cost_serve_latency.name) == 0) return &lh_cost_serve_latency;
    return lh_cost_model_find(name);
}

const lh_strategy *lh_serve_strategy_find(const char *name)
{
    if (name && strcmp(name, lh_strategy_serve_latency.name) == 0) return &lh_strategy_serve_latency;
    return lh_strategy_find(name);
}
