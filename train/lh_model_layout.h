/*
 * lh_model_layout: the activation memory plan of a stage, shared by the CPU
 * stage (lh_model.c, host memory) and the device half of a CUDA stage
 * (lh_model_cuda.c, device memory).  Internal to lh_train.
 *
 * Why one description: the CUDA stage must run lh_model.c's layer sequence on
 * the same buffers, so both halves carve the same two allocations the same
 * way.  Written twice, a tensor added or resized on one side only would
 * silently shift every later pointer on the other; here the list is written
 * once and the float count of an allocation is derived from the same walk
 * that hands out the pointers, so the size and the carving cannot disagree.
 *
 * The two allocations (what lives where, and why, is in lh_model.c's header):
 *   - a SLOT (one per in-flight micro-batch): the activations backward needs,
 *     for the stage's largest micro-batch (max_B x max_T);
 *   - the SCRATCH (one per stage): values backward does not need plus the
 *     activation gradients.  The device adds attention backward's score
 *     gradients (B,NH,T,T), which the CPU layer computes row by row instead.
 *
 * Only pointer arithmetic happens here, never a dereference, so the base may
 * be a device pointer.  A NULL base only counts (pointers come out NULL).
 */
#ifndef LH_MODEL_LAYOUT_H
#define LH_MODEL_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "lh_model.h"

/* Sizes (in floats) the plan is built from, for the stage's largest micro-batch. */
typedef struct lh_act_dims {
    int64_t BT;  /* max_B * max_T: the rows of every (B,T,...) tensor */
    int64_t C;   /* channels */
    int64_t Vp;  /* padded vocabulary */
    int64_t att; /* max_B * NH * max_T * max_T: one layer's attention matrix */
    int layer_count, has_head;
} lh_act_dims;

static inline lh_act_dims lh_act_dims_of(const lh_model_config *cfg, const lh_stage_spec *spec, int max_B, int max_T)
{
    lh_act_dims d;
    d.BT = (int64_t)max_B * max_T;
    d.C = cfg->channels;
    d.Vp = cfg->padded_vocab_size;
    d.att = (int64_t)max_B * cfg->num_heads * max_T * max_T;
    d.layer_count = spec->layer_count;
    d.has_head = spec->has_head;
    return d;
}

/* Saved activations of one layer for one micro-batch (pointers into a slot's buffer). */
typedef struct lh_layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd; /* (B,T,C), (B,T), (B,T) */
    float *qkv;                       /* (B,T,3C) */
    float *atty;                      /* (B,T,C) attention output before the projection */
    float *att;                       /* (B,NH,T,T) softmax probabilities */
    float *residual2;                 /* (B,T,C) input + attention branch */
    float *ln2, *ln2_mean, *ln2_rstd; /* (B,T,C), (B,T), (B,T) */
    float *fch, *fch_gelu;            /* (B,T,4C) */
    float *residual3;                 /* (B,T,C) layer output */
} lh_layer_acts;

/* The tensors of one slot (pointers into its buffer). */
typedef struct lh_slot_acts {
    float *input;          /* (B,T,C) residual stream entering the first owned layer */
    lh_layer_acts *layers; /* host array of layer_count, owned by the caller */
    float *lnf, *lnf_mean, *lnf_rstd; /* head only: (B,T,C), (B,T), (B,T) */
    float *probs, *losses;            /* head only: (B,T,Vp), (B,T) */
} lh_slot_acts;

/* The shared scratch (pointers into the stage's scratch buffer). */
typedef struct lh_scratch_acts {
    float *proj;       /* (B,T,C) matmul output before the residual add */
    float *d_residual; /* (B,T,C) the residual-stream gradient, carried through backward */
    float *d_ln;       /* (B,T,C) */
    float *d_atty;     /* (B,T,C) */
    float *d_qkv;      /* (B,T,3C) */
    float *d_fch;      /* (B,T,4C) */
    float *d_fch_gelu; /* (B,T,4C) */
    float *logits;     /* head only: (B,T,Vp), reused as dlogits in backward */
    float *d_att_pre;  /* device only, and only with layers: (B,NH,T,T) attention score gradients */
} lh_scratch_acts;

/* Hands out consecutive ranges of one float buffer; `used` ends as the buffer's size. */
typedef struct lh_carver {
    float *base; /* NULL: count only */
    int64_t used;
} lh_carver;

static inline float *lh_carve(lh_carver *c, int64_t floats)
{
    float *p = c->base ? c->base + c->used : NULL;
    c->used += floats;
    return p;
}

/*
 * Point `view` into a slot buffer at `base` and return the buffer's float
 * count.  view->layers must be set by the caller (layer_count entries), or be
 * NULL to only count.
 */
static inline int64_t lh_slot_layout(const lh_act_dims *d, float *base, lh_slot_acts *view)
{
    int64_t BT = d->BT, C = d->C;
    lh_carver c = {base, 0};
    view->input = lh_carve(&c, BT * C);
    for (int l = 0; l < d->layer_count; l++) {
        lh_layer_acts counted_only;
        lh_layer_acts *la = view->layers ? &view->layers[l] : &counted_only;
        la->ln1 = lh_carve(&c, BT * C);
        la->ln1_mean = lh_carve(&c, BT);
        la->ln1_rstd = lh_carve(&c, BT);
        la->qkv = lh_carve(&c, 3 * BT * C);
        la->atty = lh_carve(&c, BT * C);
        la->att = lh_carve(&c, d->att);
        la->residual2 = lh_carve(&c, BT * C);
        la->ln2 = lh_carve(&c, BT * C);
        la->ln2_mean = lh_carve(&c, BT);
        la->ln2_rstd = lh_carve(&c, BT);
        la->fch = lh_carve(&c, 4 * BT * C);
        la->fch_gelu = lh_carve(&c, 4 * BT * C);
        la->residual3 = lh_carve(&c, BT * C);
    }
    int head = d->has_head;
    view->lnf = head ? lh_carve(&c, BT * C) : NULL;
    view->lnf_mean = head ? lh_carve(&c, BT) : NULL;
    view->lnf_rstd = head ? lh_carve(&c, BT) : NULL;
    view->probs = head ? lh_carve(&c, BT * d->Vp) : NULL;
    view->losses = head ? lh_carve(&c, BT) : NULL;
    return c.used;
}

/* Floats in one slot buffer. */
static inline int64_t lh_slot_floats(const lh_act_dims *d)
{
    lh_slot_acts counted_only = {0};
    return lh_slot_layout(d, NULL, &counted_only);
}

/*
 * Point `view` into the scratch buffer at `base` and return the buffer's
 * float count.  with_d_att_pre: the device's attention backward needs its
 * (B,NH,T,T) buffer (only allocated when the stage owns layers).
 */
static inline int64_t lh_scratch_layout(const lh_act_dims *d, int with_d_att_pre, float *base, lh_scratch_acts *view)
{
    int64_t BT = d->BT, C = d->C;
    lh_carver c = {base, 0};
    view->proj = lh_carve(&c, BT * C);
    view->d_residual = lh_carve(&c, BT * C);
    view->d_ln = lh_carve(&c, BT * C);
    view->d_atty = lh_carve(&c, BT * C);
    view->d_qkv = lh_carve(&c, 3 * BT * C);
    view->d_fch = lh_carve(&c, 4 * BT * C);
    view->d_fch_gelu = lh_carve(&c, 4 * BT * C);
    view->logits = d->has_head ? lh_carve(&c, BT * d->Vp) : NULL;
    view->d_att_pre = with_d_att_pre && d->layer_count > 0 ? lh_carve(&c, d->att) : NULL;
    return c.used;
}

/* Floats in the scratch buffer. */
static inline int64_t lh_scratch_floats(const lh_act_dims *d, int with_d_att_pre)
{
    lh_scratch_acts counted_only;
    return lh_scratch_layout(d, with_d_att_pre, NULL, &counted_only);
}

#endif
