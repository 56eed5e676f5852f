/*
 * Internals shared by the scheduler's .c files (not installed, not public).
 *
 * The problem keeps one of three link oracles, chosen once so the hot loops
 * never branch on topology layout more than once per lookup: dense symmetric
 * matrices (small N), region tables (large N without device-pair overrides),
 * or the topology itself (large N with overrides, two binary searches).
 */
#ifndef LH_SCHED_INTERNAL_H
#define LH_SCHED_INTERNAL_H

#include "lh_sched.h"

#define LH_SCHED_DENSE_MAX 2048

struct lh_sched_problem {
    const lh_topology *t;
    lh_workload w;
    int n, stages, replicas;
    int mode;       /* 0 dense, 1 region, 2 topology lookups */
    double *lat;    /* dense: n*n symmetric latency (s) */
    double *ibw;    /* dense: n*n symmetric 1/bandwidth (s/bit) */
    int n_regions;
    double *rlat, *ribw; /* region mode: R*R symmetric */
    double c_dp;    /* DT-FM c_DP for the search (largest stage, bytes) */
    double c_pp;    /* DT-FM c_PP (bytes) */
};

static inline void lh_sp_link(const lh_sched_problem *p, int a, int b, double *lat, double *ibw)
{
    if (p->mode == 0) {
        size_t k = (size_t)a * p->n + b;
        *lat = p->lat[k];
        *ibw = p->ibw[k];
    } else if (p->mode == 1) {
        size_t k = (size_t)p->t->devices[a].region_index * p->n_regions + p->t->devices[b].region_index;
        *lat = p->rlat[k];
        *ibw = p->ribw[k];
    } else {
        lh_sched_link(p, a, b, lat, ibw);
    }
}

/** DT-FM pipeline edge cost between two devices: alpha + c_PP / beta. */
static inline double lh_sp_pp_cost(const lh_sched_problem *p, int a, int b)
{
    double lat, ibw;
    lh_sp_link(p, a, b, &lat, &ibw);
    return lat + p->c_pp * 8.0 * ibw;
}

/** DT-FM data-parallel term between two devices: 2 (alpha + c_DP / (D_DP beta)). */
static inline double lh_sp_dp_cost(const lh_sched_problem *p, double c_dp, int a, int b)
{
    double lat, ibw;
    lh_sp_link(p, a, b, &lat, &ibw);
    return 2.0 * (lat + c_dp * 8.0 * ibw / p->replicas);
}

/* splitmix64: tiny deterministic generator for the strategies. */
typedef struct lh_rng {
    uint64_t s;
} lh_rng;
static inline uint64_t lh_rng_next(lh_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline int lh_rng_below(lh_rng *r, int n)
{
    return (int)(lh_rng_next(r) % (uint64_t)n);
}
static inline double lh_rng_unit(lh_rng *r)
{
    return (double)(lh_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}
void lh_rng_shuffle(lh_rng *r, int *a, int n);

/** Workspace-based kernels for hot loops (no allocation per call). */
typedef struct lh_kernel_ws {
    int cap_n;       /* matching size it was made for */
    int cap_tsp;     /* TSP size it was made for */
    double *vals;    /* n*n */
    int *order_idx;  /* n*n */
    int *match_row, *match_col, *seen;
    int *tsp_scratch; /* 2 * tsp_n, for the heuristic */
    double *hk;      /* 2^k * k */
    int *hk_parent;
} lh_kernel_ws;

lh_status lh_kernel_ws_init(lh_kernel_ws *ws, int n, int tsp_n);
void lh_kernel_ws_free(lh_kernel_ws *ws);
/** Bottleneck matching with workspace; *sum gets the matched sum (tie-breaker). */
void lh_bm_solve(lh_kernel_ws *ws, int n, const double *cost, int *match, double *value, double *sum);
/** Open-path TSP with workspace. */
void lh_tsp_solve(lh_kernel_ws *ws, int n, const double *w, int *order, double *length, int *exact);

/** Per-stage DT-FM c_DP for a plan (override or derived from the plan's layers). */
double lh_sp_stage_c_dp(const lh_sched_problem *p, const lh_plan *plan, int stage);

/** Finish a strategy's plan: check it, fill provenance and its realised DT-FM cost. */
lh_status lh_sp_finish_plan(const lh_sched_problem *p, lh_plan *plan, const char *strategy);

/** Swap devices that cannot hold their stage with ones that can; *swaps counts the swaps. */
lh_status lh_sp_repair_memory(const lh_sched_problem *p, lh_plan *plan, int *swaps);

/** Memory check for one device on one stage of a plan. */
double lh_sp_stage_memory(const lh_sched_problem *p, const lh_plan *plan, int stage);

/*
 * When a step ends, given when each stage has its data-parallel-synced
 * gradients (stage_done[r * stages + s]), as the engine runs the rest: per
 * replica the tied-embedding allreduce between its first and last stage (fp32
 * vocab x hidden gradients; reduce-scatter then all-gather of halves, two
 * one-way trips; none when vocab is 0), then the all-gather of per-stage
 * gradient norms over the pipeline (every stage sends to every other at once,
 * so the slowest pair's latency; a ring of stages-1 hops past 8 stages).
 * *control_s gets the longest such tail past the last sync.
 */
double lh_sp_step_end(const lh_sched_problem *p, const lh_plan *plan, const double *stage_done, double *control_s);

#endif
