/*
 * Learning-rate schedule and global-norm clipping factor (see lh_optim.h).
 * Computed in double: the schedule is evaluated once per step, so precision
 * costs nothing, and it keeps the cosine exact at the end points.
 */
#include "lh_optim.h"

#include <math.h>

lh_status lh_lr_schedule_check(const lh_lr_schedule *s)
{
    if (!(s->max_lr >= 0) || !isfinite(s->max_lr))
        return lh_fail(LH_ERR_INVALID_ARG, "lr schedule: max_lr must be finite and >= 0, got %g", s->max_lr);
    if (!(s->min_lr_fraction >= 0 && s->min_lr_fraction <= 1))
        return lh_fail(LH_ERR_INVALID_ARG, "lr schedule: min_lr_fraction must be in [0, 1], got %g",
                       s->min_lr_fraction);
    if (s->total_steps < 1)
        return lh_fail(LH_ERR_INVALID_ARG, "lr schedule: total_steps must be >= 1, got %lld", (long long)s->total_steps);
    if (s->warmup_steps < 0 || s->warmup_steps > s->total_steps)
        return lh_fail(LH_ERR_INVALID_ARG, "lr schedule: warmup_steps must be in [0, total_steps %lld], got %lld",
                       (long long)s->total_steps, (long long)s->warmup_steps);
    if (s->decay != LH_DECAY_COSINE && s->decay != LH_DECAY_LINEAR && s->decay != LH_DECAY_CONSTANT)
        return lh_fail(LH_ERR_INVALID_ARG, "lr schedule: unknown decay %d", (int)s->decay);
    return LH_OK;
}

double lh_lr_at(const lh_lr_schedule *s, int64_t step)
{
    if (step < 0) step = 0;
    if (step < s->warmup_steps) return s->max_lr * (double)(step + 1) / (double)s->warmup_steps;
    if (s->decay == LH_DECAY_CONSTANT) return s->max_lr;
    double min_lr = s->max_lr * s->min_lr_fraction;
    int64_t span = s->total_steps - s->warmup_steps;
    double progress = span > 0 ? (double)(step - s->warmup_steps) / (double)span : 1.0;
    if (progress > 1.0) progress = 1.0;
    double coeff = s->decay == LH_DECAY_COSINE ? 0.5 * (1.0 + cos(M_PI * progress)) : 1.0 - progress;
    return min_lr + coeff * (s->max_lr - min_lr);
}

float lh_clip_scale(double grad_norm, double max_norm)
{
    if (!isfinite(grad_norm)) return 0.0f;
    if (max_norm <= 0 || grad_norm <= max_norm) return 1.0f;
    return (float)(max_norm / grad_norm);
}
