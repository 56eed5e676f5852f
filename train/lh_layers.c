/*
 * CPU implementation of the model's layers (see lh_layers.h for the contract).
 *
 * Why this shape: the matmuls are >90% of the FLOPs of a GPT-2 step, so they go
 * to OpenBLAS; everything else is memory-bound and is written as plain loops
 * over contiguous rows that GCC vectorises at -O3 (-march=x86-64-v3), with
 * OpenMP over independent rows or channel blocks.  Reductions that cross rows
 * (LayerNorm's dweight, bias gradients, the embedding scatter) are split by
 * channel, not by row, so every output element is summed in one fixed order by
 * one thread: the result is the same for any thread count.
 */
#include "lh_layers.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "lh_math.h"

/* Channel block for loops that parallelise a cross-row reduction by column. */
#define LH_CHANNEL_BLOCK 64

/* Dot product with 8 independent accumulators so GCC emits one vector lane each. */
static inline float dot8(const float *a, const float *b, int n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

/* Sum and max of n floats with 8 independent lanes (vectorisable without -ffast-math). */
static inline float sum8(const float *a, int n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k];
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) sum += a[i];
    return sum;
}

static inline float max8(const float *a, int n)
{
    float acc[8];
    for (int k = 0; k < 8; k++) acc[k] = -INFINITY;
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] = a[i + k] > acc[k] ? a[i + k] : acc[k];
    float m = -INFINITY;
    for (int k = 0; k < 8; k++) m = acc[k] > m ? acc[k] : m;
    for (; i < n; i++) m = a[i] > m ? a[i] : m;
    return m;
}

void lh_encoder_forward(float *out, const int32_t *tokens, const float *wte, const float *wpe, int B, int T, int C)
{
    // out (B,T,C), tokens (B,T), wte (Vp,C), wpe (maxT,C)
#pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
        int t = (int)(bt % T);
        const float *wte_row = wte + (int64_t)tokens[bt] * C;
        const float *wpe_row = wpe + (int64_t)t * C;
        float *out_row = out + bt * C;
        for (int c = 0; c < C; c++) out_row[c] = wte_row[c] + wpe_row[c];
    }
}

void lh_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B, int T, int C)
{
    // Parallel over channel blocks: each thread owns columns [c0, c1) of dwte and
    // dwpe, so repeated tokens never race and the sum order is fixed.
    int blocks = (C + LH_CHANNEL_BLOCK - 1) / LH_CHANNEL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        int c0 = blk * LH_CHANNEL_BLOCK, c1 = c0 + LH_CHANNEL_BLOCK < C ? c0 + LH_CHANNEL_BLOCK : C;
        for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
            int t = (int)(bt % T);
            const float *d = dout + bt * C;
            float *gte = dwte + (int64_t)tokens[bt] * C;
            float *gpe = dwpe + (int64_t)t * C;
            for (int c = c0; c < c1; c++) {
                gte[c] += d[c];
                gpe[c] += d[c];
            }
        }
    }
}

void lh_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                          const float *bias, int N, int C)
{
    // out (N,C), mean (N), rstd (N), inp (N,C), weight (C), bias (C)
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (int64_t)n * C;
        float sum = 0.0f;
        for (int c = 0; c < C; c++) sum += x[c];
        float m = sum / C;
        float var = 0.0f;
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            var += d * d;
        }
        var /= C;
        float s = lh_layernorm_rstd(var);
        float *o = out + (int64_t)n * C;
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * weight[c] + bias[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

void lh_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                           const float *weight, const float *mean, const float *rstd, int N, int C)
{
    // dinp: per row, independent.
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (int64_t)n * C;
        const float *d = dout + (int64_t)n * C;
        float *dx = dinp + (int64_t)n * C;
        float m = mean[n], s = rstd[n];
        float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
        for (int c = 0; c < C; c++) {
            float norm = (x[c] - m) * s;
            float dnorm = weight[c] * d[c];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        dnorm_mean /= C;
        dnorm_norm_mean /= C;
        for (int c = 0; c < C; c++) {
            float norm = (x[c] - m) * s;
            float dnorm = weight[c] * d[c];
            dx[c] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
        }
    }
    // dweight, dbias: reductions over rows, parallel by channel block.
    int blocks = (C + LH_CHANNEL_BLOCK - 1) / LH_CHANNEL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        int c0 = blk * LH_CHANNEL_BLOCK, c1 = c0 + LH_CHANNEL_BLOCK < C ? c0 + LH_CHANNEL_BLOCK : C;
        for (int n = 0; n < N; n++) {
            const float *x = inp + (int64_t)n * C;
            const float *d = dout + (int64_t)n * C;
            float m = mean[n], s = rstd[n];
            for (int c = c0; c < c1; c++) {
                dweight[c] += (x[c] - m) * s * d[c];
                dbias[c] += d[c];
            }
        }
    }
}

/*
 * BLAS threading: OpenBLAS is kept single-threaded and the matmuls are split
 * across OpenMP threads here, by output columns (forward), input columns
 * (dinp) and weight rows (dweight).  Running OpenBLAS's own thread pool next to
 * OpenMP's on the same cores made the two pools spin against each other (the
 * profile showed most of the time in libgomp's wait loop); one pool avoids
 * that and makes every thread work on a disjoint block of the output.
 */
static void blas_single_thread_once(void)
{
    static int done;
    if (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
        openblas_set_num_threads(1);
        __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    }
}

/*
 * Column blocks for the split matmuls: about two per thread (one block when
 * single-threaded), at least 128 wide and a multiple of 16, handed out
 * dynamically.  More blocks than threads
 * lets a running thread take over the work of one the OS has descheduled (the
 * machine is often shared), and block results do not depend on which thread
 * computes them.
 */
static int block_width(int n)
{
    int threads = omp_get_max_threads();
    int parts = threads > 1 ? 2 * threads : 1; /* one thread: one block, no repeated operand packing */
    int width = (n + parts - 1) / parts;
    width = (width + 15) / 16 * 16;
    return width < 128 ? 128 : width;
}

void lh_matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC)
{
    // out (N,OC) = inp (N,C) @ weight (OC,C)^T (+ bias).  Each block of output
    // columns gets the bias written into it, then sgemm adds the product (beta = 1).
    blas_single_thread_once();
    int width = block_width(OC), blocks = (OC + width - 1) / width;
#pragma omp parallel for schedule(dynamic, 1)
    for (int blk = 0; blk < blocks; blk++) {
        int o0 = blk * width, o1 = o0 + width < OC ? o0 + width : OC;
        if (bias)
            for (int n = 0; n < N; n++) memcpy(out + (int64_t)n * OC + o0, bias + o0, (size_t)(o1 - o0) * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, o1 - o0, C, 1.0f, inp, C, weight + (int64_t)o0 * C, C,
                    bias ? 1.0f : 0.0f, out + o0, OC);
    }
}

void lh_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, int N, int C, int OC)
{
    blas_single_thread_once();
    int cw = block_width(C), cblocks = dinp ? (C + cw - 1) / cw : 0;
    int ow = block_width(OC), oblocks = (OC + ow - 1) / ow;
    // tasks [0, cblocks): columns of dinp; [cblocks, cblocks + oblocks): rows of dweight and dbias
#pragma omp parallel for schedule(dynamic, 1)
    for (int task = 0; task < cblocks + oblocks; task++) {
        if (task < cblocks) {
            // dinp (N,C) = dout (N,OC) @ weight (OC,C), this block of columns
            int b = task * cw, e = b + cw < C ? b + cw : C;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, e - b, OC, 1.0f, dout, OC, weight + b, C, 0.0f,
                        dinp + b, C);
        } else {
            // dweight (OC,C) += dout^T (OC,N) @ inp (N,C), this block of rows; dbias likewise
            int b = (task - cblocks) * ow, e = b + ow < OC ? b + ow : OC;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, e - b, C, N, 1.0f, dout + b, OC, inp, C, 1.0f,
                        dweight + (int64_t)b * C, C);
            if (dbias)
                for (int n = 0; n < N; n++) {
                    const float *d = dout + (int64_t)n * OC;
                    for (int o = b; o < e; o++) dbias[o] += d[o];
                }
        }
    }
}

void lh_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH)
{
    // qkv (B,T,3C): q at [0,C), k at [C,2C), v at [2C,3C), head h at h*hs.
    // att (B,NH,T,T) softmax rows; out (B,T,C).
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    int64_t C3 = 3 * (int64_t)C;
#pragma omp parallel for collapse(3) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const float *q = qkv + ((int64_t)b * T + t) * C3 + h * hs;
                float *att_row = att + (((int64_t)b * NH + h) * T + t) * T;
                float maxval = -INFINITY;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *k = qkv + ((int64_t)b * T + t2) * C3 + C + h * hs;
                    float v = dot8(q, k, hs) * scale;
                    att_row[t2] = v;
                    if (v > maxval) maxval = v;
                }
                for (int t2 = 0; t2 <= t; t2++) att_row[t2] = lh_expf(att_row[t2] - maxval);
                float sum = sum8(att_row, t + 1);
                float inv = 1.0f / sum;
                for (int t2 = 0; t2 <= t; t2++) att_row[t2] *= inv;
                float *o = out + ((int64_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) o[i] = 0.0f;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *v = qkv + ((int64_t)b * T + t2) * C3 + 2 * C + h * hs;
                    float a = att_row[t2];
                    for (int i = 0; i < hs; i++) o[i] += a * v[i];
                }
            }
}

void lh_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int C,
                           int NH)
{
    // One task per (batch, head): it owns that head's q/k/v columns of dqkv for
    // every t, so the dk/dv sums over queries t >= t2 need no synchronisation.
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    int64_t C3 = 3 * (int64_t)C;
#pragma omp parallel
    {
        float *datt = malloc((size_t)T * sizeof(float));
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                if (!datt) continue; /* cannot happen for sane T; leaves dqkv untouched */
                for (int t = 0; t < T; t++) {
                    float *row = dqkv + ((int64_t)b * T + t) * C3 + h * hs;
                    memset(row, 0, (size_t)hs * sizeof(float));
                    memset(row + C, 0, (size_t)hs * sizeof(float));
                    memset(row + 2 * C, 0, (size_t)hs * sizeof(float));
                }
                for (int t = 0; t < T; t++) {
                    const float *att_row = att + (((int64_t)b * NH + h) * T + t) * T;
                    const float *d = dout + ((int64_t)b * T + t) * C + h * hs;
                    const float *q = qkv + ((int64_t)b * T + t) * C3 + h * hs;
                    float *dq = dqkv + ((int64_t)b * T + t) * C3 + h * hs;
                    // out = sum_t2 att[t2] v[t2]: datt[t2] = d . v[t2], dv[t2] += att[t2] d
                    float datt_dot_att = 0.0f;
                    for (int t2 = 0; t2 <= t; t2++) {
                        const float *v = qkv + ((int64_t)b * T + t2) * C3 + 2 * C + h * hs;
                        float *dv = dqkv + ((int64_t)b * T + t2) * C3 + 2 * C + h * hs;
                        float a = att_row[t2];
                        datt[t2] = dot8(d, v, hs);
                        datt_dot_att += datt[t2] * a;
                        for (int i = 0; i < hs; i++) dv[i] += a * d[i];
                    }
                    // softmax backward: dpre[t2] = att[t2] (datt[t2] - sum_j att[j] datt[j])
                    for (int t2 = 0; t2 <= t; t2++) {
                        float dpre = att_row[t2] * (datt[t2] - datt_dot_att) * scale;
                        const float *k = qkv + ((int64_t)b * T + t2) * C3 + C + h * hs;
                        float *dk = dqkv + ((int64_t)b * T + t2) * C3 + C + h * hs;
                        for (int i = 0; i < hs; i++) {
                            dq[i] += dpre * k[i];
                            dk[i] += dpre * q[i];
                        }
                    }
                }
            }
        free(datt);
    }
}

void lh_gelu_forward(float *out, const float *inp, int64_t N)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) out[i] = lh_gelu(inp[i]);
}

void lh_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t N)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) dinp[i] = lh_gelu_grad(inp[i]) * dout[i];
}

void lh_residual_forward(float *out, const float *a, const float *b, int64_t N)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

void lh_softmax_crossentropy_forward(float *probs, float *losses, const float *logits, const int32_t *targets,
                                     int64_t N, int V, int Vp)
{
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *x = logits + n * Vp;
        float *p = probs + n * Vp;
        float maxval = max8(x, V);
        for (int i = 0; i < V; i++) p[i] = lh_expf(x[i] - maxval);
        float sum = sum8(p, V);
        float inv = 1.0f / sum;
        for (int i = 0; i < V; i++) p[i] *= inv;
        for (int i = V; i < Vp; i++) p[i] = 0.0f;
        if (targets) {
            // -log softmax computed from the logits, not log(p), so a tiny
            // probability does not turn into -log(0) = inf.
            losses[n] = -(x[targets[n]] - maxval - logf(sum));
        }
    }
}

void lh_softmax_crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, float dloss,
                                      int64_t N, int V, int Vp)
{
#pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const float *p = probs + n * Vp;
        float *d = dlogits + n * Vp;
        for (int i = 0; i < V; i++) d[i] = p[i] * dloss;
        for (int i = V; i < Vp; i++) d[i] = 0.0f;
        d[targets[n]] -= dloss;
    }
}
