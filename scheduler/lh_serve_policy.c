/*
 * The built-in replication policies.
 *
 * "fixed" is the Crynux rule as its network runs it: every model starts on N0
 * nodes; whenever fewer than F holders are free (downloads in flight count as
 * soon-free), more nodes are told to fetch it; a copy beyond the N0 is dropped
 * once it has been idle for idle_drop_s.  It only fetches onto disks with room.
 * Its weakness is that it reacts: a popularity shift is noticed only once the
 * free holders are used up, and disks filled with copies of yesterday's
 * popular model are never reclaimed for today's (the N0 base copies are kept).
 *
 * "demand" (longhaul's) sizes each model's copy count from the measured
 * offered load: an exponentially decaying arrival-rate estimate times the mean
 * service time is the number of busy servers a model needs (Little's law), so
 * target = max(min_copies, ceil(headroom * load) + 1).  It grows to the target
 * ahead of the queue (and, while requests are queued, by one copy per queued
 * request up to F, like Crynux), only onto idle nodes (a busy node could not
 * take the work anyway), the one with the fastest download first, and makes
 * room by evicting least-recently-used copies of models that are above their
 * own target and have not been used for hold_s.  It shrinks with hysteresis:
 * only above floor(shrink_slack * target) + 1 copies and only copies idle for
 * hold_s, so a model whose demand flickers is not fetched and dropped in a
 * loop.  The defaults (headroom 2, hold 300 s, min 3) were picked on the
 * synthetic sweep in docs/serving.md; without the idle requirement on
 * eviction and with fetches onto busy nodes the policy moved ~1.5-2x more
 * bytes at high load for a lower hit rate.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lh_serve_sim.h"

void lh_repl_policy_defaults(lh_repl_policy_params *p)
{
    p->initial_copies = 10;
    p->floor_free = 3;
    p->idle_drop_s = 600;
    p->rate_window_s = 120;
    p->headroom = 2.0;
    p->shrink_slack = 1.5;
    p->hold_s = 300;
    p->min_copies = 3;
}

static lh_status check_params(const lh_repl_policy_params *p)
{
    if (p->initial_copies < 0 || p->floor_free < 0 || p->min_copies < 0)
        return lh_fail(LH_ERR_INVALID_ARG,
                       "serve policy: initial_copies, floor_free and min_copies must be >= 0");
    if (!(p->idle_drop_s > 0) || !(p->rate_window_s > 0) || !(p->hold_s > 0))
        return lh_fail(LH_ERR_INVALID_ARG, "serve policy: idle_drop_s, rate_window_s and hold_s must be > 0");
    if (!(p->headroom > 0) || !(p->shrink_slack >= 1))
        return lh_fail(LH_ERR_INVALID_ARG, "serve policy: headroom must be > 0 and shrink_slack >= 1");
    return LH_OK;
}

/* Both policies start alike: model m on N0 nodes from node (m * N0) mod N onwards, skipping full disks. */
static lh_status place_initial(lh_repl_sim *sim, int copies)
{
    int N = lh_repl_sim_nodes(sim), M = lh_repl_sim_models(sim);
    for (int m = 0; m < M; m++) {
        int placed = 0;
        int start = (int)(((long long)m * copies) % N);
        for (int j = 0; j < N && placed < copies; j++) {
            int n = (start + j) % N;
            if (lh_repl_sim_free_disk(sim, n) < lh_repl_sim_model(sim, m)->bytes) continue;
            lh_status st = lh_repl_sim_place(sim, n, m);
            if (st) return st;
            placed++;
        }
    }
    return LH_OK;
}

static double download_s(const lh_repl_sim *sim, int node, int model)
{
    return lh_repl_sim_model(sim, model)->bytes * 8.0 / (lh_repl_sim_node(sim, node)->download_gbps * 1e9);
}

/* ---------------- fixed threshold (Crynux) ---------------- */

typedef struct fixed_state {
    lh_repl_policy_params p;
} fixed_state;

static lh_status fixed_create(const lh_repl_sim *sim, const lh_repl_policy_params *params, void **state)
{
    (void)sim;
    lh_status st = check_params(params);
    if (st) return st;
    fixed_state *f = malloc(sizeof *f);
    if (!f) return lh_fail(LH_ERR_NOMEM, "serve policy fixed: out of memory");
    f->p = *params;
    *state = f;
    return LH_OK;
}

static lh_status fixed_react(void *state, lh_repl_sim *sim, const lh_repl_event *ev)
{
    const fixed_state *f = state;
    if (ev->kind == LH_REPL_EV_INIT) return place_initial(sim, f->p.initial_copies);
    int N = lh_repl_sim_nodes(sim), M = lh_repl_sim_models(sim);
    double now = lh_repl_sim_now(sim);
    lh_status st;
    /* Grow: fetch until F holders are free or coming; idle nodes first, then lowest id. */
    for (int m = 0; m < M; m++) {
        int have = lh_repl_sim_free_holders(sim, m) + lh_repl_sim_pending(sim, m);
        for (int pass = 0; pass < 2 && have < f->p.floor_free; pass++)
            for (int n = 0; n < N && have < f->p.floor_free; n++) {
                int idle = lh_repl_sim_serving(sim, n) < 0;
                if (idle != (pass == 0) || lh_repl_sim_copy_state(sim, n, m) ||
                    lh_repl_sim_fetching(sim, n) >= 0 ||
                    lh_repl_sim_free_disk(sim, n) < lh_repl_sim_model(sim, m)->bytes)
                    continue;
                if ((st = lh_repl_sim_fetch(sim, n, m))) return st;
                have++;
            }
    }
    /* Shrink: copies beyond N0 idle for idle_drop_s, as long as F stay free. */
    double wake = INFINITY;
    for (int m = 0; m < M; m++) {
        if (lh_repl_sim_holders(sim, m) <= f->p.initial_copies) continue;
        for (int n = 0; n < N && lh_repl_sim_holders(sim, m) > f->p.initial_copies; n++) {
            if (lh_repl_sim_copy_state(sim, n, m) != 2 || lh_repl_sim_serving(sim, n) == m) continue;
            double due = lh_repl_sim_last_used(sim, n, m) + f->p.idle_drop_s;
            if (due > now) {
                if (due < wake) wake = due;
                continue;
            }
            if (lh_repl_sim_free_holders(sim, m) - 1 + lh_repl_sim_pending(sim, m) < f->p.floor_free)
                continue;
            if ((st = lh_repl_sim_drop(sim, n, m))) return st;
        }
    }
    if (wake < INFINITY) return lh_repl_sim_wake_at(sim, wake);
    return LH_OK;
}

const lh_repl_policy lh_repl_policy_fixed = {
    "fixed",
    "Crynux: N0 initial copies, fetch while fewer than F holders are free, drop extras idle for a while",
    fixed_create, fixed_react, free};

/* ---------------- demand-driven (longhaul) ---------------- */

typedef struct demand_model {
    double rate; /* decayed arrival count / window, as of rate_t */
    double rate_t;
    double service; /* mean service time estimate (s) */
    int seen;
} demand_model;

typedef struct demand_state {
    lh_repl_policy_params p;
    int M;
    demand_model *m;
    int *target; /* [M] this reaction's targets */
} demand_state;

static void demand_destroy(void *state)
{
    demand_state *d = state;
    if (!d) return;
    free(d->m);
    free(d->target);
    free(d);
}

static lh_status demand_create(const lh_repl_sim *sim, const lh_repl_policy_params *params, void **state)
{
    lh_status st = check_params(params);
    if (st) return st;
    demand_state *d = calloc(1, sizeof *d);
    if (!d) return lh_fail(LH_ERR_NOMEM, "serve policy demand: out of memory");
    d->p = *params;
    d->M = lh_repl_sim_models(sim);
    d->m = calloc((size_t)d->M, sizeof *d->m);
    d->target = calloc((size_t)d->M, sizeof *d->target);
    if (!d->m || !d->target) {
        demand_destroy(d);
        return lh_fail(LH_ERR_NOMEM, "serve policy demand: out of memory");
    }
    *state = d;
    return LH_OK;
}

static double demand_load(const demand_state *d, int m, double now)
{
    const demand_model *x = &d->m[m];
    if (!x->seen) return 0;
    return x->rate * exp(-(now - x->rate_t) / d->p.rate_window_s) * x->service;
}

/* Bytes node n could free by evicting idle copies of models above their target (and above min_copies). */
static int can_evict(const demand_state *d, const lh_repl_sim *sim, int n, int m)
{
    if (lh_repl_sim_copy_state(sim, n, m) != 2 || lh_repl_sim_serving(sim, n) == m) return 0;
    int h = lh_repl_sim_holders(sim, m);
    if (h <= d->target[m] || h <= d->p.min_copies) return 0;
    return lh_repl_sim_last_used(sim, n, m) + d->p.hold_s <= lh_repl_sim_now(sim); /* not in recent use */
}

static double evictable(const demand_state *d, const lh_repl_sim *sim, int n, int except)
{
    double bytes = 0;
    for (int m = 0; m < d->M; m++)
        if (m != except && can_evict(d, sim, n, m)) bytes += lh_repl_sim_model(sim, m)->bytes;
    return bytes;
}

/* Evict least-recently-used surplus copies on n until `need` bytes are free. */
static lh_status make_room(const demand_state *d, lh_repl_sim *sim, int n, int except, double need)
{
    while (lh_repl_sim_free_disk(sim, n) < need) {
        int victim = -1;
        for (int m = 0; m < d->M; m++) {
            if (m == except || !can_evict(d, sim, n, m)) continue;
            if (victim < 0 || lh_repl_sim_last_used(sim, n, m) < lh_repl_sim_last_used(sim, n, victim))
                victim = m;
        }
        if (victim < 0)
            return lh_fail(LH_ERR_INTERNAL, "serve policy demand: eviction plan fell short on node %d", n);
        lh_status st = lh_repl_sim_drop(sim, n, victim);
        if (st) return st;
    }
    return LH_OK;
}

static lh_status demand_react(void *state, lh_repl_sim *sim, const lh_repl_event *ev)
{
    demand_state *d = state;
    if (ev->kind == LH_REPL_EV_INIT) return place_initial(sim, d->p.initial_copies);
    int N = lh_repl_sim_nodes(sim), M = d->M;
    double now = lh_repl_sim_now(sim);
    lh_status st;
    if (ev->kind == LH_REPL_EV_ARRIVAL && ev->model >= 0) {
        demand_model *x = &d->m[ev->model];
        double tau = d->p.rate_window_s;
        x->rate = x->rate * exp(-(now - x->rate_t) / tau) + 1.0 / tau;
        x->rate_t = now;
        /* The trace's service time stands for the request's declared max_tokens, known at arrival. */
        double dur = lh_repl_sim_request(sim, ev->request)->duration_s;
        x->service = x->seen ? 0.8 * x->service + 0.2 * dur : dur;
        x->seen = 1;
    }
    for (int m = 0; m < M; m++) {
        double want = ceil(d->p.headroom * demand_load(d, m, now) - 1e-9) + 1.0;
        if (want < d->p.min_copies) want = d->p.min_copies;
        if (want > N) want = N;
        d->target[m] = (int)want;
    }
    /* Grow: towards the target, and by queued requests (up to F) not yet covered by downloads. */
    for (int m = 0; m < M; m++) {
        int have = lh_repl_sim_holders(sim, m) + lh_repl_sim_pending(sim, m);
        long queued = lh_repl_sim_queued(sim, m);
        int reactive =
            (int)(queued < d->p.floor_free ? queued : d->p.floor_free) - lh_repl_sim_pending(sim, m);
        int grow = d->target[m] - have;
        if (reactive > grow) grow = reactive;
        double bytes = lh_repl_sim_model(sim, m)->bytes;
        while (grow-- > 0) {
            int best = -1;
            double best_key = INFINITY;
            for (int n = 0; n < N; n++) {
                if (lh_repl_sim_copy_state(sim, n, m) || lh_repl_sim_fetching(sim, n) >= 0) continue;
                if (lh_repl_sim_free_disk(sim, n) + evictable(d, sim, n, m) < bytes) continue;
                if (lh_repl_sim_serving(sim, n) >= 0)
                    continue; /* a busy node could not take the work anyway */
                double key = download_s(sim, n, m);
                if (key < best_key) best_key = key, best = n;
            }
            if (best < 0) break;
            if ((st = make_room(d, sim, best, m, bytes))) return st;
            if ((st = lh_repl_sim_fetch(sim, best, m))) return st;
        }
    }
    /* Shrink with hysteresis: LRU idle copies held at least hold_s, while above floor(slack * target) + 1. */
    double wake = INFINITY;
    for (int m = 0; m < M; m++) {
        int keep = (int)floor(d->p.shrink_slack * d->target[m]) + 1;
        if (keep < d->p.min_copies) keep = d->p.min_copies;
        while (lh_repl_sim_holders(sim, m) > keep) {
            int victim = -1;
            for (int n = 0; n < N; n++) {
                if (lh_repl_sim_copy_state(sim, n, m) != 2 || lh_repl_sim_serving(sim, n) == m) continue;
                double due = lh_repl_sim_last_used(sim, n, m) + d->p.hold_s;
                if (due > now) {
                    if (due < wake) wake = due;
                    continue;
                }
                if (victim < 0 || lh_repl_sim_last_used(sim, n, m) < lh_repl_sim_last_used(sim, victim, m))
                    victim = n;
            }
            if (victim < 0) break;
            if ((st = lh_repl_sim_drop(sim, victim, m))) return st;
        }
        /* Targets decay without arrivals: look again within a window while the model holds more copies than
         * it would keep at zero load (a bounded number of wake-ups: the load falls by e per window). */
        int keep_idle = (int)floor(d->p.shrink_slack * (d->p.min_copies > 1 ? d->p.min_copies : 1)) + 1;
        if (keep_idle < d->p.min_copies) keep_idle = d->p.min_copies;
        if (lh_repl_sim_holders(sim, m) > keep_idle &&
            d->target[m] > (d->p.min_copies > 1 ? d->p.min_copies : 1) && now + d->p.rate_window_s < wake)
            wake = now + d->p.rate_window_s;
    }
    if (wake < INFINITY) return lh_repl_sim_wake_at(sim, wake);
    return LH_OK;
}

const lh_repl_policy lh_repl_policy_demand = {"demand",
                                              "longhaul: copies = ceil(headroom x measured load) + 1, fetch "
                                              "ahead on the fastest idle node, LRU-evict surplus, "
                                              "shrink with hysteresis",
                                              demand_create, demand_react, demand_destroy};

const lh_repl_policy *const lh_repl_policies[] = {&lh_repl_policy_fixed, &lh_repl_policy_demand, NULL};

const lh_repl_policy *lh_repl_policy_find(const char *name)
{
    for (int i = 0; name && lh_repl_policies[i]; i++)
        if (strcmp(lh_repl_policies[i]->name, name) == 0) return lh_repl_policies[i];
    return NULL;
}
