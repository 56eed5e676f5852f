/*
 * lh_serve_sched: placing a model for *serving* rather than training.
 *
 * Serving is training with the backward pass taken away: the same stages, the
 * same links and the same lh_plan, but what matters is how long one generated
 * token takes to travel through a replica's pipeline (Petals routes a client
 * through servers the same way), not samples per second.  So this header adds
 *
 *  - an inference memory model (weights at compute precision + a KV cache; no
 *    gradients, no optimizer state, no stashed activations),
 *  - the cost model "serve-latency": a replica's per-token latency is the sum
 *    of each stage's compute for ONE token plus each pipeline link's latency
 *    and one token's activation over its bandwidth; the plan's objective is
 *    the WORST replica (any replica may get any request, so the slowest one is
 *    the latency a user can be promised), with memory feasibility,
 *  - the strategy "serve-latency": greedy low-latency paths, then a swap
 *    local search (worst replica first, total as tie-breaker), deterministic
 *    for a seed,
 *  - lookups that know these names and fall back to the training registries,
 *    so the training-side registries (and their tests, which iterate over
 *    every built-in strategy with DT-FM expectations) stay untouched.
 */
#ifndef LH_SERVE_SCHED_H
#define LH_SERVE_SCHED_H

#include "lh_sched.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Bytes one device needs to serve stage layers [.., +layers) : weights at
 * `act_bytes` per parameter (embeddings on the first stage, head + final
 * LayerNorm on the last) plus the KV cache of `batch` concurrent sequences of
 * `seq_len` tokens: 2 * layers * batch * seq_len * hidden * act_bytes.
 */
double lh_serve_stage_memory(const lh_workload *w, int layers, int is_first, int is_last);

/**
 * Forward FLOPs of ONE new token (decode step with a KV cache) through
 * `layers` blocks: 2 * block parameters + 4 * seq_len * hidden per layer of
 * attention over the full context, plus 2 * hidden * vocab for the head when
 * `is_last`.
 */
double lh_serve_token_flops(const lh_workload *w, int layers, int is_last);

/** Bytes of one token's activation crossing a stage boundary: hidden * act_bits / 8. */
double lh_serve_token_act_bytes(const lh_workload *w);

/**
 * Per-token latency of every replica of `plan` (caller-owned array of
 * plan->replicas doubles), in seconds.  No memory check.
 */
lh_status lh_serve_replica_latency(const lh_sched_problem *p, const lh_plan *plan, double *latency_s);

/**
 * "serve-latency": total_s = worst replica's per-token latency; compute_s and
 * pp_s split that replica into compute and link time; dp_s = 0;
 * stage_compute_s[s] = slowest device's one-token compute on stage s;
 * link_s[s] = slowest link between stages s and s+1 (latency + one token);
 * stage_memory_bytes from lh_serve_stage_memory; memory_ok and the
 * bottleneck link as in the training models.
 */
extern const lh_cost_model lh_cost_serve_latency;

/** Strategy "serve-latency": minimise the worst replica's token latency within device memory. */
extern const lh_strategy lh_strategy_serve_latency;

/** "serve-latency" or any name lh_cost_model_find knows; NULL when unknown. */
const lh_cost_model *lh_serve_cost_model_find(const char *name);

/** "serve-latency" or any name lh_strategy_find knows; NULL when unknown. */
const lh_strategy *lh_serve_strategy_find(const char *name);

#ifdef __cplusplus
}
#endif
#endif
