/*
 * lh_model: the GPT-2 model as pipeline STAGES.
 *
 * A stage owns a contiguous range of transformer layers [first, first+count),
 * plus the token/position embeddings when it is the first stage and the final
 * LayerNorm + tied output head + cross-entropy when it is the last.  The whole
 * model is simply the one-stage case.  Each stage has its own flat parameter
 * buffer laid out LAYER-MAJOR (embedding block, then one block per layer, then
 * the head block), a gradient buffer of the same layout, and AdamW moments, so
 * a checkpoint record, a gradient all-reduce or an optimizer step for one
 * stage is one contiguous range.
 *
 * Tied embeddings across stages (Megatron-LM's scheme): when the first and last
 * stage differ, BOTH hold a copy of wte (the last stage's copy sits at the end
 * of its head block).  They are initialised identically, the engine sums the
 * two wte gradients between the two stages after every backward
 * (lh_stage_wte_grad gives the buffer), and since both then apply the same
 * AdamW update to the same values the copies stay equal.  This costs one
 * Vp*C all-reduce per step instead of shipping the head's logits gradient.
 *
 * Activation slots: a pipeline schedule (1F1B) keeps several micro-batches in
 * flight on one stage, so a stage is created with `slots` independent sets of
 * saved activations; forward(slot) saves into that set and backward(slot)
 * consumes it.  The whole-model case uses one slot.
 *
 * Gradients accumulate over backward calls until lh_stage_zero_grads().
 *
 * Devices.  A stage runs its math on the CPU (lh_stage_create, or
 * lh_stage_create_on with LH_DEVICE_CPU) or on a CUDA GPU (LH_DEVICE_CUDA,
 * implemented in lh_model_cuda.c with the kernels of cuda/lh_train_cuda.h).
 * Every function below has the same contract for both; only the numbers
 * differ, by float rounding (cuBLAS sums in another order than OpenBLAS).  On
 * a CUDA stage:
 *  - forward and backward take and return HOST buffers (tokens, targets,
 *    input, output, d_output, d_input, *loss) and copy them to and from the
 *    device; the activations saved per slot, the parameter copy used by the
 *    kernels and the gradient accumulator live on the device.
 *  - The host buffers (lh_stage_params / grads / adam_m / adam_v and the typed
 *    views) stay AUTHORITATIVE and keep the layer-major layout: checkpoints,
 *    the data-parallel all-reduce, the tied-wte sum, grad_sumsq, scale_grads
 *    and the AdamW step all work on them, on the CPU.  The one exception is a
 *    collective on the device gradients (NCCL), bracketed by
 *    lh_stage_device_grads and lh_stage_device_grads_done.
 *  - Parameters: the device copy is marked stale by lh_stage_init_params,
 *    lh_stage_adamw_step and by every call that returns a writable pointer to
 *    parameters (lh_stage_params, lh_stage_layer_tensor / wte / wpe / lnfw /
 *    lnfb with grads = 0); the next forward or backward uploads the whole
 *    buffer first.  So write parameters through a pointer fetched AFTER the
 *    last forward/backward (as checkpoint loaders do), never through one kept
 *    from before it.
 *  - Gradients: backward accumulates on the device and then downloads the
 *    whole accumulated gradient into the host buffer before it returns, so
 *    after any backward the host gradients are current.  lh_stage_zero_grads
 *    and lh_stage_init_params clear the host buffer and have the next backward
 *    clear the device one; lh_stage_scale_grads and every call that returns a
 *    writable pointer to gradients (lh_stage_grads, the typed views with
 *    grads = 1) make the next backward upload the host gradients first (so an
 *    all-reduce written through lh_stage_grads is what further backwards add
 *    to).  AdamW moments exist on the host only.
 *  - Logits are copied from the device on the first lh_stage_logits call after
 *    a forward (lazily: training never reads them).
 * A stage is not thread-safe on either device.
 */
#ifndef LH_MODEL_H
#define LH_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Shape of a GPT-2 model (the fields of llm.c's checkpoint header). */
typedef struct lh_model_config {
    int max_seq_len;       /* rows of the position embedding (maxT) */
    int vocab_size;        /* real vocabulary V: tokens and targets are < V */
    int padded_vocab_size; /* Vp >= V: rows of wte; 0 = round V up to a multiple of 128 on check */
    int num_layers;        /* L */
    int num_heads;         /* NH; must divide channels */
    int channels;          /* C */
} lh_model_config;

/**
 * Validate a config (positive sizes, heads divide channels, Vp >= V, sizes
 * small enough that every tensor size fits in int64) and fill a zero
 * padded_vocab_size.  Errors name the offending field.
 */
lh_status lh_model_config_check(lh_model_config *config);

/** The tensors of one transformer layer, in llm.c's order. */
typedef enum lh_layer_tensor {
    LH_LN1W = 0, /* (C) */
    LH_LN1B,     /* (C) */
    LH_QKVW,     /* (3C, C) */
    LH_QKVB,     /* (3C) */
    LH_ATTPROJW, /* (C, C) */
    LH_ATTPROJB, /* (C) */
    LH_LN2W,     /* (C) */
    LH_LN2B,     /* (C) */
    LH_FCW,      /* (4C, C) */
    LH_FCB,      /* (4C) */
    LH_FCPROJW,  /* (C, 4C) */
    LH_FCPROJB,  /* (C) */
    LH_LAYER_TENSORS
} lh_layer_tensor;

/** Number of floats of layer tensor `which` for C channels. */
int64_t lh_layer_tensor_floats(int channels, lh_layer_tensor which);

/** Offset (floats) of tensor `which` inside a layer's parameter block. */
int64_t lh_layer_tensor_offset(int channels, lh_layer_tensor which);

/** Floats of one layer's parameter block: 12 C^2 + 13 C. */
int64_t lh_layer_param_floats(int channels);

/** Parameters of the whole model (wte counted once, padded rows included). */
int64_t lh_model_param_count(const lh_model_config *config);

/** Which part of the model a stage runs. */
typedef struct lh_stage_spec {
    int first_layer;   /* first transformer layer owned */
    int layer_count;   /* number of layers owned (may be 0 for an embedding- or head-only stage) */
    int has_embedding; /* owns wte + wpe and takes tokens as input */
    int has_head;      /* owns lnf + (a copy of) wte and produces logits / loss */
} lh_stage_spec;

/** The one-stage spec covering the whole model. */
lh_stage_spec lh_stage_spec_whole(const lh_model_config *config);

typedef struct lh_stage lh_stage;

/** Where a stage runs its math. */
typedef enum lh_compute_device {
    LH_DEVICE_CPU = 0, /* OpenMP + OpenBLAS (always available) */
    LH_DEVICE_CUDA = 1 /* the current CUDA device, cuBLAS + kernels (CUDA builds with a GPU) */
} lh_compute_device;

/** "cpu" or "cuda" (the names job files use); "unknown" for other values. */
const char *lh_compute_device_name(lh_compute_device device);

/**
 * Choose this process's GPU before creating CUDA stages: ranks sharing a host
 * take GPUs round-robin by their rank on the host (`local_rank`), GPU
 * local_rank mod count.  A no-op for LH_DEVICE_CPU; LH_ERR_UNSUPPORTED without
 * CUDA support or without a device.
 */
lh_status lh_compute_device_bind(lh_compute_device device, int local_rank);

/** The CUDA device this process computes on (after lh_compute_device_bind); LH_ERR_UNSUPPORTED without CUDA. */
lh_status lh_compute_device_current(int *index);

/**
 * Create a CPU stage of `config` running `spec`, able to process batches of up
 * to max_batch x max_seq tokens, with `slots` (>= 1) activation sets.
 * Parameters are zero until lh_stage_init_params() or a checkpoint load.
 * Same as lh_stage_create_on(..., LH_DEVICE_CPU, out).
 */
lh_status lh_stage_create(const lh_model_config *config, const lh_stage_spec *spec, int max_batch, int max_seq,
                          int slots, lh_stage **out);

/**
 * lh_stage_create on a chosen device.  LH_DEVICE_CUDA uses the current CUDA
 * device (device 0 unless the caller selected another with
 * lh_compute_device_bind or CUDA_VISIBLE_DEVICES) and allocates the parameters, one gradient
 * accumulator, the activation slots and the scratch there, besides the host
 * parameter / gradient / moment buffers.  It fails with LH_ERR_UNSUPPORTED
 * when this build has no CUDA support or when no CUDA device is present (never
 * falling back to the CPU), with LH_ERR_CAPACITY when device memory runs out,
 * LH_ERR_INTERNAL for another CUDA error and LH_ERR_INVALID_ARG for an
 * unknown device.  See "Devices" above for when the
 * host and device copies are synchronised.
 */
lh_status lh_stage_create_on(const lh_model_config *config, const lh_stage_spec *spec, int max_batch, int max_seq,
                             int slots, lh_compute_device device, lh_stage **out);

/** The device a stage runs on. */
lh_compute_device lh_stage_device(const lh_stage *stage);

/** Free a stage (NULL is accepted). */
void lh_stage_free(lh_stage *stage);

/** The stage's config and spec. */
const lh_model_config *lh_stage_config(const lh_stage *stage);
const lh_stage_spec *lh_stage_get_spec(const lh_stage *stage);

/** Largest batch and sequence length forward accepts (as created). */
int lh_stage_max_batch(const lh_stage *stage);
int lh_stage_max_seq(const lh_stage *stage);

/** Floats in this stage's parameter (and gradient, and each AdamW moment) buffer. */
int64_t lh_stage_param_count(const lh_stage *stage);

/**
 * The flat layer-major parameter / gradient / AdamW buffers (lh_stage_param_count floats each), on the host.
 * On a CUDA stage lh_stage_params marks the device parameters stale and lh_stage_grads the device
 * gradients (see "Devices"); the pointers themselves never change.
 */
float *lh_stage_params(lh_stage *stage);
float *lh_stage_grads(lh_stage *stage);
float *lh_stage_adam_m(lh_stage *stage);
float *lh_stage_adam_v(lh_stage *stage);

/**
 * Typed views.  lh_stage_layer_tensor returns tensor `which` of GLOBAL layer
 * `layer` (must be owned) in the parameter buffer, or in the gradient buffer
 * when `grads` is set; NULL when not owned.  Like lh_stage_params /
 * lh_stage_grads, these views mark the device copy of that buffer stale on a
 * CUDA stage.
 */
float *lh_stage_layer_tensor(lh_stage *stage, int layer, lh_layer_tensor which, int grads);

/**
 * Embedding / head views (NULL when the stage lacks that part). wte is (Vp,C), wpe (maxT,C), lnf (C).
 * On a CUDA stage they mark the device copy of the parameters (grads = 0) or gradients stale.
 */
float *lh_stage_wte(lh_stage *stage, int grads);
float *lh_stage_wpe(lh_stage *stage, int grads);
float *lh_stage_lnfw(lh_stage *stage, int grads);
float *lh_stage_lnfb(lh_stage *stage, int grads);

/**
 * Offset (floats) of the stage's wte inside its parameter/gradient/moment
 * buffers and its length Vp*C; -1 when the stage holds no wte.  On a split
 * model the engine sums the first and last stage's wte GRADIENTS (this range of
 * lh_stage_grads) after backward and before the optimizer step.
 */
int64_t lh_stage_wte_offset(const lh_stage *stage);

/**
 * Initialise parameters as GPT-2 does (normal(0, 0.02) weights, residual
 * projections scaled by 1/sqrt(2L), wpe 0.01, LayerNorm 1/0, biases 0, padded
 * wte rows 0).  Each tensor's values depend only on (seed, global layer,
 * tensor), never on the partition, so any split of the model starts from the
 * same weights as the whole model and both wte copies are equal.  Also clears
 * gradients and AdamW moments.  Runs on the host for every device (a CUDA
 * stage uploads the parameters at its next forward/backward).
 */
void lh_stage_init_params(lh_stage *stage, uint64_t seed);

/**
 * Forward pass of one micro-batch of B x T tokens into activation `slot`.
 *  - first stage: `tokens` (B,T) in [0,V), `input` NULL;  otherwise `input` (B,T,C), `tokens` NULL.
 *  - not last stage: writes `output` (B,T,C);  `targets` and `loss` unused.
 *  - last stage: computes logits (lh_stage_logits); when `targets` (B,T) is
 *    given, also the mean cross-entropy into *loss (may be NULL) and saves what
 *    backward needs.  `output` unused.
 * Fails with LH_ERR_INVALID_ARG for out-of-range sizes, slots or token ids
 * (checked before any work, on both devices), and on a CUDA stage with
 * LH_ERR_INTERNAL when a CUDA call fails.
 */
lh_status lh_stage_forward(lh_stage *stage, int slot, int B, int T, const int32_t *tokens, const float *input,
                           const int32_t *targets, float *output, float *loss);

/**
 * Backward pass for the micro-batch saved in `slot`; gradients ACCUMULATE.
 *  - last stage: the loss gradient is grad_scale / (B*T) per position (the
 *    mean loss times grad_scale, e.g. 1/micro_batches); `d_output` unused.
 *    The forward must have been given targets.
 *  - other stages: `d_output` (B,T,C) is the gradient of the stage output.
 *  - not first stage: writes `d_input` (B,T,C); first stage: `d_input` unused.
 * On a CUDA stage the host gradient buffer holds the whole accumulated
 * gradient when this returns.
 */
lh_status lh_stage_backward(lh_stage *stage, int slot, const float *d_output, float grad_scale, float *d_input);

/**
 * Logits (B,T,Vp) of the last forward on a head stage (row stride Vp; only the
 * first V columns are meaningful); valid until the next forward or backward.
 * NULL on a stage without the head.  On a CUDA stage the first call after a
 * forward copies them from the device; NULL if that copy fails (the reason is
 * in lh_last_error()).
 */
const float *lh_stage_logits(const lh_stage *stage);

/** Set all gradients to zero (on a CUDA stage the device accumulator is cleared at the next backward). */
void lh_stage_zero_grads(lh_stage *stage);

/**
 * Sum of squares of this stage's gradients, in double.  The head's wte copy on
 * a stage WITHOUT the embedding is left out, so summing this over all stages
 * (after the tied wte gradients were summed) gives the model's squared norm
 * with wte counted once.
 */
double lh_stage_grad_sumsq(const lh_stage *stage);

/**
 * CUDA stages: the device gradient accumulator (lh_stage_param_count floats,
 * the host buffer's layout), first brought up to date with the host
 * gradients, for a collective that runs on device memory (NCCL).  Whatever
 * changes it must be followed by lh_stage_device_grads_done, which copies it
 * back into the host buffer, authoritative again.  LH_ERR_INVALID_ARG on a CPU
 * stage.
 */
lh_status lh_stage_device_grads(lh_stage *stage, float **device_grads);

/** After lh_stage_device_grads: copy the device gradients into the host buffer (waits for the device). */
lh_status lh_stage_device_grads_done(lh_stage *stage);

/** Multiply all gradients by `scale` (gradient clipping), on the host buffer for every device. */
void lh_stage_scale_grads(lh_stage *stage, float scale);

/** AdamW hyper-parameters (lr comes from the schedule each step). */
typedef struct lh_adamw_params {
    float lr, beta1, beta2, eps, weight_decay;
} lh_adamw_params;

/**
 * One AdamW step with 1-based step number `step` (bias correction).  Weight
 * decay applies to the matrices and embeddings (wte, wpe, qkvw, attprojw,
 * fcw, fcprojw) and not to biases or LayerNorm gains, as in GPT-2/nanoGPT
 * training.  Runs on the host buffers for every device; a CUDA stage uploads
 * the new parameters at its next forward/backward.
 */
lh_status lh_stage_adamw_step(lh_stage *stage, const lh_adamw_params *params, int64_t step);

/** Threads for OpenMP loops and OpenBLAS (n >= 1). */
void lh_model_set_threads(int threads);

#ifdef __cplusplus
}
#endif
#endif
