/*
 * lh_infer: pipeline-parallel inference, the engine with the backward pass
 * taken away.
 *
 * The plan's devices 0..N-1 are MPI ranks 0..N-1, each running one stage of
 * one replica with a KV cache per slot (a slot is one sequence being
 * generated), so decoding sends one token's activation row per sequence per
 * step, never the prefix.  One more rank, the FRONTEND (the server), drives
 * the replicas: it sends a batch of work to a replica's first stage, the rows
 * flow stage to stage (fp32 or direct-quantized: there is no per-sample
 * history to delta against), and the last stage returns the logits of each
 * sequence's newest token to the frontend.  Workers sit in lh_infer_serve()
 * until the frontend calls lh_infer_shutdown().
 *
 * A batch holds entries {slot, count, reset}: `count` tokens of that slot's
 * sequence (a prompt's prefill, or 1 when decoding), with the slot's cache
 * emptied first when `reset` is set.
 */
#ifndef LH_INFER_H
#define LH_INFER_H

#include <stdint.h>

#include "lh_comm.h"
#include "lh_model.h"
#include "lh_plan.h"
#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lh_infer lh_infer;

/** One sequence's share of a batch. */
typedef struct lh_infer_entry {
    int slot;  /* 0 .. slots-1 of the replica */
    int count; /* tokens of this entry (>= 1) */
    int reset; /* empty the slot's caches before these tokens (a new sequence) */
} lh_infer_entry;

/** How to build the pipeline. */
typedef struct lh_infer_options {
    lh_model_config config;
    const char *checkpoint; /* llm.c or longhaul weights; NULL = initialise from `seed` */
    uint64_t seed;
    int slots;        /* sequences per replica at once */
    int act_bits;     /* activation rows between stages: 0 = fp32, 1..8 = direct quantization */
    int frontend;     /* rank of the frontend in `world`: the one rank outside the plan */
} lh_infer_options;

/**
 * Collective over `world` (plan devices + 1 ranks): every worker builds its
 * stage with KV caches for `slots` sequences and loads the weights; the
 * frontend only records the plan.
 */
lh_status lh_infer_create(const lh_infer_options *options, const lh_plan *plan, lh_comm *world, lh_infer **out);

/** Free (NULL accepted). */
void lh_infer_free(lh_infer *inf);

/** Worker ranks: serve batches until the frontend shuts the pipeline down. */
lh_status lh_infer_serve(lh_infer *inf);

/**
 * Frontend: run one batch on `replica`: `n` entries whose tokens lie in
 * `tokens` one entry after another; `logits` receives n rows of vocab_size
 * floats, the logits after each entry's last token.
 */
lh_status lh_infer_step(lh_infer *inf, int replica, int n, const lh_infer_entry *entries, const int32_t *tokens,
                        float *logits);

/** Frontend: tell every worker to return from lh_infer_serve. */
lh_status lh_infer_shutdown(lh_infer *inf);

/** Replicas and slots per replica (for the frontend's scheduling). */
int lh_infer_replicas(const lh_infer *inf);
int lh_infer_slots(const lh_infer *inf);

/** Positions a slot can hold (the model's context). */
int lh_infer_context(const lh_infer *inf);

#ifdef __cplusplus
}
#endif
#endif
