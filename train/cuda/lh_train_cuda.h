/*
 * lh_train_cuda: the model's layers on an NVIDIA GPU, with the same shapes,
 * semantics (accumulate vs overwrite, padded vocabulary) and element-wise math
 * (lh_math.h, compiled for host and device) as the CPU layers in lh_layers.h,
 * so the two backends are interchangeable per layer and checkable against
 * each other on the same vectors (tests/train/test_cuda_layers.c).
 *
 * Matmuls go to cuBLAS (row-major tensors are passed as their column-major
 * transposes); the rest are kernels.  Every reduction that crosses rows or
 * tokens (bias and LayerNorm parameter gradients, the embedding scatter, the
 * key/value gradients of attention) is a gather by one thread per output
 * element in a fixed order: no atomics, so results are deterministic run to
 * run.  All pointers are device pointers; calls are asynchronous on the
 * context's stream and report launch errors; lh_cuda_sync() reports execution
 * errors.  Plain C interface: the rest of longhaul never includes CUDA headers.
 */
#ifndef LH_TRAIN_CUDA_H
#define LH_TRAIN_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lh_cuda_ctx lh_cuda_ctx;

/** Number of usable CUDA devices (0, not an error, when there is no driver or device). */
int lh_cuda_device_count(void);

/** Make device `index` (0 .. count-1) current for this host thread (cudaSetDevice). */
lh_status lh_cuda_set_device(int index);

/** The device current for this host thread (cudaGetDevice). */
lh_status lh_cuda_get_device(int *index);

/** Create a context (stream + cuBLAS handle) on the current device. */
lh_status lh_cuda_ctx_create(lh_cuda_ctx **out);

/** Free a context (NULL accepted). */
void lh_cuda_ctx_free(lh_cuda_ctx *ctx);

/** Wait for the context's work; reports any asynchronous kernel error. */
lh_status lh_cuda_sync(lh_cuda_ctx *ctx);

/**
 * Device memory helpers.  lh_cuda_alloc fails with LH_ERR_CAPACITY when the
 * device is out of memory (LH_ERR_INTERNAL for other CUDA errors); upload and
 * download are synchronous cudaMemcpy calls on the legacy default stream, so
 * they are ordered with the context's (blocking) stream; lh_cuda_zero is a
 * cudaMemset on that stream too.
 */
lh_status lh_cuda_alloc(void **ptr, size_t bytes);
void lh_cuda_release(void *ptr);
lh_status lh_cuda_upload(void *device_dst, const void *host_src, size_t bytes);
lh_status lh_cuda_download(void *host_dst, const void *device_src, size_t bytes);
lh_status lh_cuda_zero(void *device_ptr, size_t bytes);

/* The layers: see lh_layers.h for shapes and semantics. */
lh_status lh_cuda_encoder_forward(lh_cuda_ctx *ctx, float *out, const int32_t *tokens, const float *wte,
                                  const float *wpe, int B, int T, int C);
lh_status lh_cuda_encoder_backward(lh_cuda_ctx *ctx, float *dwte, float *dwpe, const float *dout,
                                   const int32_t *tokens, int B, int T, int C);
lh_status lh_cuda_layernorm_forward(lh_cuda_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
                                    const float *weight, const float *bias, int N, int C);
lh_status lh_cuda_layernorm_backward(lh_cuda_ctx *ctx, float *dinp, float *dweight, float *dbias, const float *dout,
                                     const float *inp, const float *weight, const float *mean, const float *rstd,
                                     int N, int C);
lh_status lh_cuda_matmul_forward(lh_cuda_ctx *ctx, float *out, const float *inp, const float *weight,
                                 const float *bias, int N, int C, int OC);
lh_status lh_cuda_matmul_backward(lh_cuda_ctx *ctx, float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, int N, int C, int OC);
lh_status lh_cuda_attention_forward(lh_cuda_ctx *ctx, float *out, float *att, const float *qkv, int B, int T, int C,
                                    int NH);
/** dpre_scratch: B*NH*T*T floats of device scratch. */
lh_status lh_cuda_attention_backward(lh_cuda_ctx *ctx, float *dqkv, float *dpre_scratch, const float *dout,
                                     const float *qkv, const float *att, int B, int T, int C, int NH);
lh_status lh_cuda_gelu_forward(lh_cuda_ctx *ctx, float *out, const float *inp, int64_t N);
lh_status lh_cuda_gelu_backward(lh_cuda_ctx *ctx, float *dinp, const float *inp, const float *dout, int64_t N);
lh_status lh_cuda_residual_forward(lh_cuda_ctx *ctx, float *out, const float *a, const float *b, int64_t N);
lh_status lh_cuda_softmax_crossentropy_forward(lh_cuda_ctx *ctx, float *probs, float *losses, const float *logits,
                                               const int32_t *targets, int64_t N, int V, int Vp);
lh_status lh_cuda_softmax_crossentropy_backward(lh_cuda_ctx *ctx, float *dlogits, const float *probs,
                                                const int32_t *targets, float dloss, int64_t N, int V, int Vp);
/** AdamW over n parameters with one weight-decay value (call once per decay segment). */
lh_status lh_cuda_adamw(lh_cuda_ctx *ctx, float *params, const float *grads, float *m, float *v, int64_t n,
                        float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step);

#ifdef __cplusplus
}
#endif
#endif
