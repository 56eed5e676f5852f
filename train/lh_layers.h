/*
 * lh_layers: the CPU layers of the GPT-2 model, one forward/backward pair per
 * layer on raw float pointers, in the style of llm.c.
 *
 * Conventions, shared by every function here:
 *  - N is the number of token positions (B*T); shapes are given row-major in
 *    the comment of each function.
 *  - Backward functions ACCUMULATE (+=) into parameter gradients, so several
 *    micro-batches can be summed before an optimizer step, and into the
 *    gradient of an input that also feeds a residual connection (dinp of
 *    LayerNorm).  Where a backward writes a gradient that is not shared
 *    (matmul's dinp, attention's dqkv, GELU's dinp) it OVERWRITES, so callers do
 *    not need to clear scratch buffers between layers.
 *  - Matrix products go to BLAS (OpenBLAS sgemm); the rest is OpenMP-parallel
 *    over independent rows or channels, never with atomics or per-thread
 *    partial sums, so results do not depend on the thread count except through
 *    the BLAS library's own blocking.
 */
#ifndef LH_LAYERS_H
#define LH_LAYERS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** out (N,C) = wte[tokens] + wpe[position]; tokens (B,T); wte (Vp,C); wpe (>=T,C). */
void lh_encoder_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe, int B, int T, int C);

/** dwte (Vp,C) += scatter of dout rows by token; dwpe (>=T,C) += sum over the batch. dout (B,T,C). */
void lh_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B, int T, int C);

/** out (N,C) = (inp - mean) * rstd * weight + bias; mean, rstd (N) are saved for backward. */
void lh_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                          const float *bias, int N, int C);

/** dinp (N,C) += ..., dweight, dbias (C) += ...; from dout (N,C) and the saved inp/mean/rstd. */
void lh_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, const float *mean, const float *rstd, int N, int C);

/** out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC); bias may be NULL. */
void lh_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);

/**
 * dinp (N,C) = dout (N,OC) @ weight (OC,C)  [overwritten; skipped when dinp is NULL]
 * dweight (OC,C) += dout^T @ inp;  dbias (OC) += column sums of dout [skipped when NULL].
 */
void lh_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, int N, int C, int OC);

/**
 * Causal multi-head self-attention.  qkv (B,T,3C) holds q, k, v for NH heads of
 * size C/NH; out (B,T,C); att (B,NH,T,T) receives the softmax probabilities
 * (only t2 <= t is written and read), which backward needs.
 */
void lh_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH);

/** dqkv (B,T,3C) [overwritten] from dout (B,T,C), the forward's qkv and att. */
void lh_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int C,
                           int NH);

/** out (N) = gelu(inp), tanh approximation (lh_math.h). */
void lh_gelu_forward(float *out, const float *inp, int64_t N);

/** dinp (N) = dout * gelu'(inp)  [overwritten]. */
void lh_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t N);

/** out (N) = a + b. */
void lh_residual_forward(float *out, const float *a, const float *b, int64_t N);

/**
 * Softmax over the first V of each row of logits (N,Vp) into probs (N,Vp)
 * (padded columns set to 0), and losses (N) = -log probs[target].  targets
 * may be NULL (inference): then only probs are computed.
 */
void lh_softmax_crossentropy_forward(float *probs, float *losses, const float *logits, const int32_t *targets,
                                     int64_t N, int V, int Vp);

/**
 * dlogits (N,Vp) = (probs - onehot(target)) * dloss  [overwritten; padded
 * columns 0], where dloss is the gradient of the total loss with respect to
 * each position's loss (1/N for a mean).
 */
void lh_softmax_crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, float dloss,
                                      int64_t N, int V, int Vp);

#ifdef __cplusplus
}
#endif
#endif
