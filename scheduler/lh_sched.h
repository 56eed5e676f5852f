/*
 * lh_sched: placing pipeline stages and data-parallel replicas on devices
 * joined by slow, uneven links (the DT-FM problem), and predicting what an
 * iteration will cost under a placement.
 *
 * Why this shape:
 *  - A *problem* (opaque) binds a topology to a workload once: it validates
 *    N = D_PP * D_DP, symmetrises links (average of both directions, as DT-FM
 *    does) and picks a link oracle: dense matrices for small N, region tables
 *    for 10,000 devices, so every cost model and strategy reads links the same
 *    way and in O(1).
 *  - Cost models and strategies sit behind small vtables so researchers can
 *    add one without touching callers, and `longhaul sched-bench` can iterate
 *    over all of them.
 *  - A strategy's output is an lh_plan whose replica index *is* the device
 *    matching between consecutive stages, and whose stage index *is* the
 *    pipeline order; cost models evaluate exactly that plan, so the cost a
 *    strategy reports is the cost its plan realises (a known DT-FM pitfall).
 *  - Searches are deterministic for a seed: budgets are counted in evaluated
 *    candidates, never in wall-clock time (a time limit is available but is
 *    documented as breaking determinism).
 */
#ifndef LH_SCHED_H
#define LH_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "lh_plan.h"
#include "lh_status.h"
#include "lh_topology.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Workload                                                            */
/* ------------------------------------------------------------------ */

typedef enum lh_pipe_schedule { LH_SCHEDULE_GPIPE = 0, LH_SCHEDULE_1F1B = 1 } lh_pipe_schedule;

/** What is trained: a GPT-style decoder and how it is split and batched. */
typedef struct lh_workload {
    int layers;           /* transformer blocks */
    int hidden;           /* model width */
    int seq_len;          /* tokens per sequence */
    int vocab;            /* vocabulary size (output head on the last stage) */
    int stages;           /* D_PP */
    int replicas;         /* D_DP */
    int batch;            /* sequences per replica per iteration */
    int micro_batch;      /* sequences per micro-batch; divides batch */
    int act_bytes;        /* bytes per activation element in compute (2 = fp16) */
    int grad_bytes;       /* bytes per gradient element before compression (4 = fp32) */
    double act_bits;      /* bits per activation element on the wire (compression width) */
    double grad_bits;     /* bits per gradient element on the wire */
    double optimizer_bytes_per_param; /* weights+grads+optimizer state per parameter */
    lh_pipe_schedule schedule;
    int depth;            /* 1F1B warm-up depth: stage s runs depth x (stages-s-1) forwards first (0 = 1) */
    double overlap;       /* 0..1: share of pipeline transfer hidden under compute */
    /* DT-FM constants: when > 0 they replace the derived message sizes in the
     * DT-FM cost model (c_DP: one stage's gradients, c_PP: one stage's
     * activations for a replica's batch, both in bytes). */
    double dtfm_c_dp_bytes;
    double dtfm_c_pp_bytes;
} lh_workload;

/** GPT3-XL (1.3B) on 8x8 with the DT-FM paper's constants c_DP = 0.65 GB, c_PP = 0.47124922 GB. */
void lh_workload_dtfm_gpt3xl(lh_workload *w);

/** Check ranges and divisibility; errors name the field. */
lh_status lh_workload_validate(const lh_workload *w);

/** Parse a workload document (format "longhaul-workload", version 1); `name` is used in messages. */
lh_status lh_workload_parse(const char *name, const char *text, size_t len, lh_workload *out);

/** Load and validate a workload file. */
lh_status lh_workload_load(const char *path, lh_workload *out);

/**
 * Forwards stage `stage` runs before its first backward: all micro-batches
 * under GPipe; under 1F1B depth x (stages - stage - 1), at most all.
 */
int lh_workload_warmup(const lh_workload *w, int stage);

/** Parameters of `layers` transformer blocks (12h^2 + 13h each). */
double lh_workload_block_params(const lh_workload *w, int layers);

/** Bytes of one activation message (one micro-batch crossing one stage boundary, one direction). */
double lh_workload_act_message_bytes(const lh_workload *w);

/** Bytes of a stage's gradients on the wire (after compression), for `layers` blocks (+ embeddings if first/last). */
double lh_workload_grad_bytes(const lh_workload *w, int layers, int is_first, int is_last);

/** Forward FLOPs of one micro-batch through `layers` blocks (+ output head when is_last); backward is 2x. */
double lh_workload_forward_flops(const lh_workload *w, int layers, int is_last);

/** Memory a stage needs on one device (weights, grads, optimizer, stashed activations). */
double lh_workload_stage_memory(const lh_workload *w, int layers, int stage, int is_first, int is_last);

/** c_DP used by the DT-FM cost for a stage (override or derived, bytes). */
double lh_workload_dtfm_c_dp(const lh_workload *w, int layers);

/** c_PP used by the DT-FM cost (override or derived: batch activations, bytes). */
double lh_workload_dtfm_c_pp(const lh_workload *w);

/* ------------------------------------------------------------------ */
/* Problem                                                             */
/* ------------------------------------------------------------------ */

typedef struct lh_sched_problem lh_sched_problem;

/**
 * Bind a validated topology and workload.  Fails when the device count is not
 * stages*replicas, when a link is missing or has zero bandwidth, or when the
 * workload is invalid.  `t` must outlive the problem.
 */
lh_status lh_sched_problem_create(const lh_topology *t, const lh_workload *w, lh_sched_problem **out);

/** Free a problem (NULL is accepted). */
void lh_sched_problem_free(lh_sched_problem *p);

/** The topology the problem was created with (borrowed). */
const lh_topology *lh_sched_problem_topology(const lh_sched_problem *p);
/** The problem's own copy of the workload. */
const lh_workload *lh_sched_problem_workload(const lh_sched_problem *p);

/** Symmetrised link between distinct devices: latency (s) and 1/bandwidth (s/bit). */
void lh_sched_link(const lh_sched_problem *p, int a, int b, double *latency_s, double *inv_bw);

/* ------------------------------------------------------------------ */
/* Exact combinatorial kernels (public so they can be tested)          */
/* ------------------------------------------------------------------ */

/**
 * Bottleneck perfect matching on an n x n row-major cost matrix: minimise the
 * largest matched cost.  match[i] receives the column of row i; *value the
 * bottleneck.  Among bottleneck-optimal matchings the one returned also has a
 * small sum (greedy by cost), which the search uses as a tie-breaker.
 */
lh_status lh_bottleneck_matching(int n, const double *cost, int *match, double *value);

/**
 * Shortest open Hamiltonian path on a symmetric n x n matrix (open-loop TSP).
 * Exact (Held-Karp) when n <= LH_TSP_EXACT_MAX, otherwise nearest-neighbour
 * from every start plus 2-opt; *exact tells which.  order[] gets the nodes.
 */
#define LH_TSP_EXACT_MAX 13
lh_status lh_open_path_tsp(int n, const double *w, int *order, double *length, int *exact);

/* ------------------------------------------------------------------ */
/* Cost models                                                         */
/* ------------------------------------------------------------------ */

/** What a cost model found for a plan.  Arrays are owned; free with lh_cost_report_clear. */
typedef struct lh_cost_report {
    double total_s;       /* the model's objective: DT-FM COMM-COST or iteration time */
    double dp_s;          /* data-parallel part */
    double pp_s;          /* pipeline part (DT-FM: 2 x path; iteration: pipeline makespan) */
    double compute_s;     /* iteration model: slowest replica's compute on the critical path */
    double bubble_s;      /* iteration model: idle time from fill/drain */
    double control_s;     /* iteration model: tied-embedding sync and gradient-norm exchange after the syncs */
    int stages;
    double *stage_compute_s; /* [stages] slowest device's fwd+bwd for one micro-batch */
    double *stage_dp_s;      /* [stages] data-parallel sync of the stage's group */
    double *link_s;          /* [stages-1] slowest link between stage s and s+1 (one message) */
    double *stage_memory_bytes; /* [stages] need per device */
    int bottleneck_from, bottleneck_to; /* devices of the most expensive single link used */
    double bottleneck_s;
    char bottleneck_kind[16];           /* "pipeline" or "data-parallel" */
    int memory_ok;                      /* every device holds its stage */
    int memory_worst_device;            /* device most over (or closest to) its limit */
} lh_cost_report;

/** Release a report's arrays (the struct itself is the caller's). */
void lh_cost_report_clear(lh_cost_report *r);

typedef struct lh_cost_model {
    const char *name;
    const char *summary;
    /** Evaluate exactly this plan (its stage order and replica matching). */
    lh_status (*evaluate)(const lh_sched_problem *p, const lh_plan *plan, lh_cost_report *out);
} lh_cost_model;

/** The DT-FM COMM-COST: max group DP cost + 2 x pipeline path, as in Yuan et al. 2022. */
extern const lh_cost_model lh_cost_dtfm;
/** longhaul's iteration-time model (compute, bubble, overlap, compressed ring allreduce, memory). */
extern const lh_cost_model lh_cost_iteration;

/** Find a cost model by name ("dtfm", "iteration"); NULL when unknown. */
const lh_cost_model *lh_cost_model_find(const char *name);

/* ------------------------------------------------------------------ */
/* Strategies                                                          */
/* ------------------------------------------------------------------ */

/** Best cost found against elapsed time, for anytime curves. */
typedef struct lh_anytime {
    size_t count, cap;
    double *t_s;
    double *cost_s;
    long *evaluations;
} lh_anytime;

/** Append a point (allocates as needed). */
lh_status lh_anytime_add(lh_anytime *a, double t_s, double cost_s, long evaluations);
/** Free the arrays and zero the struct. */
void lh_anytime_clear(lh_anytime *a);

typedef struct lh_strategy_options {
    uint64_t seed;
    long max_evaluations; /* candidate-move budget; <= 0 means the strategy's default */
    double time_limit_s;  /* > 0 stops early (breaks determinism); 0 = none */
    lh_anytime *curve;    /* may be NULL */
} lh_strategy_options;

typedef struct lh_strategy {
    const char *name;
    const char *summary;
    size_t max_devices; /* largest N the strategy accepts */
    /** Place every device; the plan's cost_s is what it realises under plan->cost_model ("dtfm" for all
     *  strategies except "ils-time", which optimises and reports the "iteration" model). */
    lh_status (*run)(const lh_sched_problem *p, const lh_strategy_options *o, lh_plan **out);
} lh_strategy;

/** Number of built-in strategies. */
size_t lh_strategy_count(void);
/** The i-th built-in strategy (NULL when i >= lh_strategy_count()). */
const lh_strategy *lh_strategy_at(size_t i);
/** Find a strategy by name; NULL when unknown. */
const lh_strategy *lh_strategy_find(const char *name);

/**
 * Re-split layers over stages so that slower stages (by the slowest device of
 * each stage group) get fewer layers, within device memory.  Keeps devices.
 */
lh_status lh_plan_balance_layers(const lh_sched_problem *p, lh_plan *plan);

/** Check a plan against the problem: every device once, balanced groups, memory respected. */
lh_status lh_sched_check_plan(const lh_sched_problem *p, const lh_plan *plan);

/* ------------------------------------------------------------------ */
/* Scenarios                                                           */
/* ------------------------------------------------------------------ */

/** The five DT-FM scenarios by name: "dc-ondemand", "dc-spot", "two-campus", "four-regions", "world". Also 1..5. */
lh_status lh_scenario_build(const char *name, lh_topology **out);
/** Scenario names in order (NULL-terminated). */
extern const char *const lh_scenario_names[];

/**
 * Random geo-distributed topology: `n_devices` spread over `n_regions`
 * (1..1024) regions, the first 8 from the built-in world region table
 * (measured DT-FM delays/bandwidths), the rest placed at random coordinates
 * with delay and bandwidth from great-circle distance, with
 * intra-region 5 ms / 2 Gbit/s and device speeds/memories drawn from a small
 * GPU mix.  Deterministic for `seed`.
 */
lh_status lh_scenario_random_geo(int n_devices, int n_regions, uint64_t seed, lh_topology **out);

/**
 * Random topology of `n_devices` drawn from a region table: the regions and
 * region-pair links of `table` (a topology file whose regions carry links;
 * every used region pair, including a region with itself, needs a region
 * link), each new device placed in a uniformly drawn region and copying the
 * speed and memory of a random device of that region.  Deterministic for `seed`.
 */
lh_status lh_scenario_from_region_table(const lh_topology *table, int n_devices, uint64_t seed, lh_topology **out);

/* ------------------------------------------------------------------ */
/* Simulator                                                           */
/* ------------------------------------------------------------------ */

typedef struct lh_sim_result {
    double iteration_s;   /* makespan of one iteration */
    double pipeline_s;    /* last backward finished, all replicas */
    double dp_s;          /* data-parallel sync after the pipeline */
    long events;          /* compute ops + messages simulated */
    int busiest_link_from, busiest_link_to;
    double busiest_link_busy_s;
} lh_sim_result;

/**
 * Discrete-event simulation of one iteration: every micro-batch's forward and
 * backward on every device (GPipe or 1F1B order), every activation/gradient
 * message on its link (each directed link serialises its own traffic), then
 * each stage group's compressed ring allreduce step by step.
 */
lh_status lh_simulate_iteration(const lh_sched_problem *p, const lh_plan *plan, lh_sim_result *out);

/**
 * The 1F1B warm-up depth (lh_workload.depth) that runs `plan` fastest in the
 * simulator: depths 1, 2, 3, 4, then about 1.5x apart up to the one at which
 * stage 0 warms up with every micro-batch are simulated, deeper ones only
 * while their activation memory fits every device, and the shallowest within
 * 1% of the fastest wins (fewer micro-batches in flight, less memory).  *iteration_s (may be NULL) gets its
 * simulated iteration time.  The problem's own schedule and depth are ignored.
 */
lh_status lh_choose_depth(const lh_sched_problem *p, const lh_plan *plan, int *depth, double *iteration_s);

/* ------------------------------------------------------------------ */
/* Re-planning                                                         */
/* ------------------------------------------------------------------ */

/**
 * Given `old` placed on old_topology's devices and a new problem whose
 * topology keeps surviving devices' names, produce a plan for the new
 * topology that keeps every surviving device on its old stage where
 * possible (stage state stays put), fills holes with new devices, then
 * improves the DT-FM cost with moves that do not add state transfers
 * (above 2,048 devices: region-level fill, no swap search; device-pair
 * overrides are refused there).  The stage count and layers must match the
 * old plan.  *moved receives how many devices must fetch stage state.
 */
lh_status lh_replan(const lh_sched_problem *new_problem, const lh_topology *old_topology, const lh_plan *old,
                    uint64_t seed, lh_plan **out, int *moved);

#ifdef __cplusplus
}
#endif
#endif
