/*
 * Group-state search engine shared by the partition strategies (greedy, ils,
 * dtfm-ga, replanning): a balanced partition of the devices into D_PP groups
 * with its DT-FM cost kept up to date under device swaps.
 *
 * Why a separate engine: every partition strategy needs the same expensive
 * inner step (re-solve the bottleneck matchings of the two touched groups
 * against all others, re-solve the open-path TSP), and keeping it in one
 * place means the cost a search optimises is, by construction, the cost
 * lh_cost_dtfm later reads back from the written plan.
 */
#ifndef LH_SCHED_SEARCH_H
#define LH_SCHED_SEARCH_H

#include "lh_sched_internal.h"

typedef struct lh_gstate {
    const lh_sched_problem *p;
    int P, D, n;
    int *mem;          /* [P*D] members of each group */
    int *grp, *pos;    /* [n] group and slot of each device */
    double *dpc, *dps; /* [P] DP cost (max) and mean member sum (tie-breaker) */
    double *E, *S;     /* [P*P] bottleneck value and matched sum of group pairs */
    double *W;         /* [P*P] TSP weights: E + tiny * S */
    int *order;        /* [P] pipeline order of groups */
    double cost;       /* DT-FM COMM-COST */
    double surr;       /* tie-breaker: smaller is closer to a better plateau */
    long evaluations;  /* full or incremental evaluations done */
    int fixed_order;   /* 1: groups stay in index order (re-planning keeps stages in place) */
    lh_kernel_ws ws;
    double *cbuf;      /* [D*D] */
    int *mbuf;         /* [D] */
    double *save;      /* [4*P + 4] undo buffer */
    int *save_order;   /* [P] */
    int *fill;         /* [P] counters for lh_gs_load */
    double save_cost, save_surr;
} lh_gstate;

lh_status lh_gs_init(lh_gstate *g, const lh_sched_problem *p);
void lh_gs_free(lh_gstate *g);
/** Load a partition from labels (group_of[device] in 0..P-1, D devices each) and evaluate it. */
void lh_gs_load(lh_gstate *g, const int *group_of);
/** Swap two devices of different groups, re-evaluating incrementally. */
void lh_gs_swap(lh_gstate *g, int a, int b);
/** Undo the last lh_gs_swap(a, b) without re-solving (restores saved values). */
void lh_gs_undo_swap(lh_gstate *g, int a, int b);
/** Lexicographic (cost, surrogate) comparison: < 0 when (c1, s1) is better. */
int lh_gs_better(double c1, double s1, double c2, double s2);
/** Write the current partition as a plan: current order (TSP, or index order when fixed), bottleneck matchings chained along it. */
lh_status lh_gs_to_plan(lh_gstate *g, lh_plan **out);
/** First-improvement swap local search; stops at a local optimum or when the budget runs out.
 *  When `movable` is non-NULL only devices with movable[d] != 0 are swapped. */
void lh_gs_local_search(lh_gstate *g, lh_rng *rng, long budget_end);
void lh_gs_local_search_restricted(lh_gstate *g, lh_rng *rng, long budget_end, const unsigned char *movable);

#endif
