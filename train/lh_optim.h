/*
 * lh_optim: the parts of the optimizer that are pure functions of the step and
 * of scalars, kept apart from the stage so the engine can compute the learning
 * rate and the clipping factor once and apply them to every stage.
 *
 * Gradient clipping by global norm across a pipeline: each stage reports
 * lh_stage_grad_sumsq(), the engine sums those over stages (an all-reduce),
 * calls lh_clip_scale(sqrt(sum), max_norm) and applies the factor with
 * lh_stage_scale_grads() before lh_stage_adamw_step().
 */
#ifndef LH_OPTIM_H
#define LH_OPTIM_H

#include <stdint.h>

#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Shape of the decay after warm-up. */
typedef enum lh_lr_decay {
    LH_DECAY_COSINE = 0, /* half cosine from max_lr to min_lr */
    LH_DECAY_LINEAR,     /* straight line from max_lr to min_lr */
    LH_DECAY_CONSTANT    /* stay at max_lr */
} lh_lr_decay;

/** Warm-up plus decay learning-rate schedule. */
typedef struct lh_lr_schedule {
    double max_lr;
    double min_lr_fraction; /* min_lr = max_lr * min_lr_fraction, in [0, 1] */
    int64_t warmup_steps;   /* linear ramp from max_lr/warmup to max_lr over these steps */
    int64_t total_steps;    /* decay ends here; later steps stay at min_lr */
    lh_lr_decay decay;
} lh_lr_schedule;

/** Check a schedule: max_lr >= 0, fraction in [0,1], 0 <= warmup <= total, total >= 1. */
lh_status lh_lr_schedule_check(const lh_lr_schedule *schedule);

/**
 * Learning rate for 0-based optimizer step `step`: during warm-up
 * max_lr * (step+1) / warmup_steps, then the decay from max_lr (at step =
 * warmup_steps) to min_lr (at step = total_steps).
 */
double lh_lr_at(const lh_lr_schedule *schedule, int64_t step);

/**
 * Factor to multiply gradients by so their global norm is at most max_norm:
 * max_norm / norm when norm > max_norm, else 1.  max_norm <= 0 disables
 * clipping (returns 1).  A non-finite norm returns 0 so a step with inf/NaN
 * gradients cannot move the weights; callers should also report it.
 */
float lh_clip_scale(double grad_norm, double max_norm);

#ifdef __cplusplus
}
#endif
#endif
