/*
 * lh_model_cuda: the DEVICE half of a CUDA pipeline stage.  Internal to
 * lh_train: lh_model.c owns the stage (host buffers, argument checks, slot
 * bookkeeping and the rules for when host and device copies are synchronised,
 * documented in lh_model.h under "Devices") and calls these functions; users
 * call lh_stage_create_on(..., LH_DEVICE_CUDA, ...) and the ordinary lh_stage_*
 * API instead.
 *
 * The device half holds the parameters, one gradient accumulator of the same
 * layer-major layout, the saved activations of every slot and the shared
 * scratch (carved by lh_model_layout.h, the CPU stage's plan, in device
 * memory), and runs the layers of cuda/lh_train_cuda.h in the CPU stage's
 * order.  All host pointers passed here are host memory; every function
 * copies what it needs.  In a build without CUDA, lh_stage_gpu_create fails
 * with LH_ERR_UNSUPPORTED and the rest are never reached.
 */
#ifndef LH_MODEL_CUDA_H
#define LH_MODEL_CUDA_H

#include <stdint.h>

#include "lh_model.h"
#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Everything the device half needs to know about its stage (offsets in floats, as in lh_model.c). */
typedef struct lh_stage_gpu_shape {
    lh_model_config cfg; /* checked, padded_vocab_size filled */
    lh_stage_spec spec;
    int max_B, max_T, slots;
    int64_t param_count, layers_offset, head_offset, wte_offset;
} lh_stage_gpu_shape;

typedef struct lh_stage_gpu lh_stage_gpu;

/**
 * Create the device half on the current CUDA device.  LH_ERR_UNSUPPORTED when
 * the build has no CUDA support or no device is present; LH_ERR_CAPACITY when
 * device memory runs out; LH_ERR_INTERNAL for other CUDA errors.
 */
lh_status lh_stage_gpu_create(const lh_stage_gpu_shape *shape, lh_stage_gpu **out);

/** Free the device half (NULL accepted). */
void lh_stage_gpu_free(lh_stage_gpu *gpu);

/** Copy param_count host floats into the device parameters. */
lh_status lh_stage_gpu_upload_params(lh_stage_gpu *gpu, const float *params);

/** Set the device gradient accumulator to param_count host floats, or to zero when `grads` is NULL. */
lh_status lh_stage_gpu_upload_grads(lh_stage_gpu *gpu, const float *grads);

/** Copy the device gradient accumulator into param_count host floats (waits for the device). */
lh_status lh_stage_gpu_download_grads(lh_stage_gpu *gpu, float *grads);

/** The device gradient accumulator itself (param_count floats), for collectives on device memory. */
float *lh_stage_gpu_grads(lh_stage_gpu *gpu);

/**
 * The forward pass of lh_stage_forward into `slot`, arguments already checked
 * by lh_model.c: tokens (first stage) or input (B,T,C), targets (head stage,
 * or NULL), output (B,T,C) written on a stage without the head.  When targets
 * are given, `losses` (B*T host floats) receives each position's loss.
 * Returns after the device finished (execution errors are reported here).
 */
lh_status lh_stage_gpu_forward(lh_stage_gpu *gpu, int slot, int B, int T, const int32_t *tokens, const float *input,
                               const int32_t *targets, float *output, float *losses);

/**
 * The backward pass of lh_stage_backward for the B x T micro-batch saved in
 * `slot` (arguments already checked): parameter gradients ACCUMULATE into the
 * device accumulator; d_output (B,T,C) is read on a stage without the head,
 * d_input (B,T,C) written on a stage without the embedding.  Returns after the
 * device finished.
 */
lh_status lh_stage_gpu_backward(lh_stage_gpu *gpu, int slot, int B, int T, const float *d_output, float grad_scale,
                                float *d_input);

/** Copy the logits of the last forward (rows x Vp floats) into host memory. */
lh_status lh_stage_gpu_download_logits(lh_stage_gpu *gpu, int64_t rows, float *logits);

#ifdef __cplusplus
}
#endif
#endif
