/*
 * CUDA implementation of the model's layers (contract in lh_train_cuda.h).
 *
 * Design: correctness and determinism first, llm.c-style simplicity second,
 * peak speed third.  Row-wise operations (LayerNorm, softmax, attention rows)
 * use one warp per row with shuffle reductions; cross-row reductions are
 * gathers with one thread per output element; matmuls are cuBLAS SGEMM with the
 * row-major <-> column-major transposition spelled out at each call.  The
 * element-wise formulas come from lh_math.h, the same code the CPU compiles.
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>

#include "lh_math.h"
#include "lh_train_cuda.h"

struct lh_cuda_ctx {
    cudaStream_t stream;
    cublasHandle_t cublas;
};

static lh_status cuda_check(cudaError_t err, const char *what)
{
    if (err != cudaSuccess) return lh_fail(LH_ERR_INTERNAL, "cuda: %s: %s", what, cudaGetErrorString(err));
    return LH_OK;
}

static lh_status launch_check(const char *what) { return cuda_check(cudaGetLastError(), what); }

static lh_status cublas_check(cublasStatus_t st, const char *what)
{
    if (st != CUBLAS_STATUS_SUCCESS) return lh_fail(LH_ERR_INTERNAL, "cublas: %s: status %d", what, (int)st);
    return LH_OK;
}

static unsigned int blocks_for(int64_t n, int threads) { return (unsigned int)((n + threads - 1) / threads); }

/* ---- warp reductions ---- */

__device__ __forceinline__ float warp_sum(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    return v;
}

/* ---- kernels ---- */

__global__ void encoder_forward_kernel(float *out, const int32_t *tokens, const float *wte, const float *wpe, int B,
                                       int T, int C)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t n = (int64_t)B * T * C;
    if (i >= n) return;
    int64_t bt = i / C;
    int c = (int)(i % C), t = (int)(bt % T);
    out[i] = wte[(int64_t)tokens[bt] * C + c] + wpe[(int64_t)t * C + c];
}

/* one thread per channel: scatter of every position in order (deterministic, no atomics) */
__global__ void encoder_backward_kernel(float *dwte, float *dwpe, const float *dout, const int32_t *tokens, int B,
                                        int T, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    for (int64_t bt = 0; bt < (int64_t)B * T; bt++) {
        float d = dout[bt * C + c];
        dwte[(int64_t)tokens[bt] * C + c] += d;
        dwpe[(bt % T) * C + c] += d;
    }
}

/* one warp per row */
__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                                         const float *bias, int N, int C)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = inp + (int64_t)row * C;
    float sum = 0.0f;
    for (int c = lane; c < C; c += 32) sum += x[c];
    float m = warp_sum(sum) / C;
    float var = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - m;
        var += d * d;
    }
    float s = lh_layernorm_rstd(warp_sum(var) / C);
    float *o = out + (int64_t)row * C;
    for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * s * weight[c] + bias[c];
    if (lane == 0) {
        mean[row] = m;
        rstd[row] = s;
    }
}

__global__ void layernorm_backward_input_kernel(float *dinp, const float *dout, const float *inp,
                                                const float *weight, const float *mean, const float *rstd, int N,
                                                int C)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = inp + (int64_t)row * C, *d = dout + (int64_t)row * C;
    float m = mean[row], s = rstd[row];
    float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float norm = (x[c] - m) * s, dnorm = weight[c] * d[c];
        dnorm_mean += dnorm;
        dnorm_norm_mean += dnorm * norm;
    }
    dnorm_mean = warp_sum(dnorm_mean) / C;
    dnorm_norm_mean = warp_sum(dnorm_norm_mean) / C;
    float *dx = dinp + (int64_t)row * C;
    for (int c = lane; c < C; c += 32) {
        float norm = (x[c] - m) * s, dnorm = weight[c] * d[c];
        dx[c] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
    }
}

/* one thread per channel, rows in order */
__global__ void layernorm_backward_params_kernel(float *dweight, float *dbias, const float *dout, const float *inp,
                                                 const float *mean, const float *rstd, int N, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float dw = 0.0f, db = 0.0f;
    for (int n = 0; n < N; n++) {
        float d = dout[(int64_t)n * C + c];
        dw += (inp[(int64_t)n * C + c] - mean[n]) * rstd[n] * d;
        db += d;
    }
    dweight[c] += dw;
    dbias[c] += db;
}

__global__ void add_bias_kernel(float *out, const float *bias, int N, int OC)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (int64_t)N * OC) out[i] += bias[i % OC];
}

__global__ void bias_backward_kernel(float *dbias, const float *dout, int N, int OC)
{
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= OC) return;
    float sum = 0.0f;
    for (int n = 0; n < N; n++) sum += dout[(int64_t)n * OC + o];
    dbias[o] += sum;
}

/* one warp per (b, h, t) query row */
__global__ void attention_forward_kernel(float *out, float *att, const float *qkv, int B, int T, int C, int NH)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= B * NH * T) return;
    int t = row % T, h = (row / T) % NH, b = row / (T * NH);
    int hs = C / NH;
    int64_t C3 = 3 * (int64_t)C;
    float scale = 1.0f / sqrtf((float)hs);
    const float *q = qkv + ((int64_t)b * T + t) * C3 + h * hs;
    float *att_row = att + (((int64_t)b * NH + h) * T + t) * T;
    float maxval = -INFINITY;
    for (int t2 = lane; t2 <= t; t2 += 32) {
        const float *k = qkv + ((int64_t)b * T + t2) * C3 + C + h * hs;
        float dotv = 0.0f;
        for (int i = 0; i < hs; i++) dotv += q[i] * k[i];
        dotv *= scale;
        att_row[t2] = dotv;
        maxval = fmaxf(maxval, dotv);
    }
    maxval = warp_max(maxval);
    float sum = 0.0f;
    for (int t2 = lane; t2 <= t; t2 += 32) {
        float e = lh_expf(att_row[t2] - maxval);
        att_row[t2] = e;
        sum += e;
    }
    float inv = 1.0f / warp_sum(sum);
    for (int t2 = lane; t2 <= t; t2 += 32) att_row[t2] *= inv;
    __syncwarp();
    float *o = out + ((int64_t)b * T + t) * C + h * hs;
    for (int i = lane; i < hs; i += 32) {
        float acc = 0.0f;
        for (int t2 = 0; t2 <= t; t2++) acc += att_row[t2] * qkv[((int64_t)b * T + t2) * C3 + 2 * C + h * hs + i];
        o[i] = acc;
    }
}

/* step 1: dpre[b,h,t,t2] = att (datt - sum att*datt) * scale, datt = dout_t . v_t2; one warp per row */
__global__ void attention_backward_scores_kernel(float *dpre, const float *dout, const float *qkv, const float *att,
                                                 int B, int T, int C, int NH)
{
    int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (row >= B * NH * T) return;
    int t = row % T, h = (row / T) % NH, b = row / (T * NH);
    int hs = C / NH;
    int64_t C3 = 3 * (int64_t)C;
    float scale = 1.0f / sqrtf((float)hs);
    const float *d = dout + ((int64_t)b * T + t) * C + h * hs;
    const float *att_row = att + (((int64_t)b * NH + h) * T + t) * T;
    float *dpre_row = dpre + (((int64_t)b * NH + h) * T + t) * T;
    float weighted = 0.0f;
    for (int t2 = lane; t2 <= t; t2 += 32) {
        const float *v = qkv + ((int64_t)b * T + t2) * C3 + 2 * C + h * hs;
        float datt = 0.0f;
        for (int i = 0; i < hs; i++) datt += d[i] * v[i];
        dpre_row[t2] = datt;
        weighted += datt * att_row[t2];
    }
    weighted = warp_sum(weighted);
    for (int t2 = lane; t2 <= t; t2 += 32) dpre_row[t2] = att_row[t2] * (dpre_row[t2] - weighted) * scale;
}

/* step 2: one thread per (b, t, h, i): dq gathers over keys, dk and dv gather over later queries */
__global__ void attention_backward_qkv_kernel(float *dqkv, const float *dpre, const float *dout, const float *qkv,
                                              const float *att, int B, int T, int C, int NH)
{
    int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)B * T * C) return;
    int hs = C / NH;
    int c = (int)(idx % C);
    int64_t bt = idx / C;
    int t = (int)(bt % T), b = (int)(bt / T), h = c / hs, i = c % hs;
    int64_t C3 = 3 * (int64_t)C;
    const float *dpre_bh = dpre + ((int64_t)b * NH + h) * T * T;
    const float *att_bh = att + ((int64_t)b * NH + h) * T * T;
    float dq = 0.0f, dk = 0.0f, dv = 0.0f;
    for (int t2 = 0; t2 <= t; t2++)  /* this position as a query */
        dq += dpre_bh[(int64_t)t * T + t2] * qkv[((int64_t)b * T + t2) * C3 + C + h * hs + i];
    for (int tq = t; tq < T; tq++) { /* this position as a key / value */
        dk += dpre_bh[(int64_t)tq * T + t] * qkv[((int64_t)b * T + tq) * C3 + h * hs + i];
        dv += att_bh[(int64_t)tq * T + t] * dout[((int64_t)b * T + tq) * C + h * hs + i];
    }
    float *row = dqkv + bt * C3 + h * hs + i;
    row[0] = dq;
    row[C] = dk;
    row[2 * C] = dv;
}

__global__ void gelu_forward_kernel(float *out, const float *inp, int64_t N)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N) out[i] = lh_gelu(inp[i]);
}

__global__ void gelu_backward_kernel(float *dinp, const float *inp, const float *dout, int64_t N)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N) dinp[i] = lh_gelu_grad(inp[i]) * dout[i];
}

__global__ void residual_forward_kernel(float *out, const float *a, const float *b, int64_t N)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < N) out[i] = a[i] + b[i];
}

/* one warp per row of the (N, Vp) logits */
__global__ void softmax_crossentropy_forward_kernel(float *probs, float *losses, const float *logits,
                                                    const int32_t *targets, int64_t N, int V, int Vp)
{
    int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (row >= N) return;
    const float *x = logits + row * Vp;
    float *p = probs + row * Vp;
    float maxval = -INFINITY;
    for (int i = lane; i < V; i += 32) maxval = fmaxf(maxval, x[i]);
    maxval = warp_max(maxval);
    float sum = 0.0f;
    for (int i = lane; i < V; i += 32) sum += lh_expf(x[i] - maxval);
    sum = warp_sum(sum);
    float inv = 1.0f / sum;
    for (int i = lane; i < V; i += 32) p[i] = lh_expf(x[i] - maxval) * inv;
    for (int i = V + lane; i < Vp; i += 32) p[i] = 0.0f;
    if (targets && lane == 0) losses[row] = -(x[targets[row]] - maxval - logf(sum));
}

__global__ void softmax_crossentropy_backward_kernel(float *dlogits, const float *probs, const int32_t *targets,
                                                     float dloss, int64_t N, int V, int Vp)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N * Vp) return;
    int64_t row = i / Vp;
    int col = (int)(i % Vp);
    float d = col < V ? probs[i] * dloss : 0.0f;
    if (col == targets[row]) d -= dloss;
    dlogits[i] = d;
}

__global__ void adamw_kernel(float *params, const float *grads, float *m, float *v, int64_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float bc1, float bc2)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float mi = m[i], vi = v[i];
    params[i] = lh_adamw_update(params[i], grads[i], &mi, &vi, lr, beta1, beta2, eps, weight_decay, bc1, bc2);
    m[i] = mi;
    v[i] = vi;
}

/* ---- host API ---- */

extern "C" {

int lh_cuda_device_count(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        (void)cudaGetLastError(); /* clear the sticky "no driver" error */
        return 0;
    }
    return count;
}

lh_status lh_cuda_set_device(int index)
{
    cudaError_t err = cudaSetDevice(index);
    if (err != cudaSuccess)
        return lh_fail(LH_ERR_UNSUPPORTED, "cuda: cannot use device %d: %s", index, cudaGetErrorString(err));
    return LH_OK;
}

lh_status lh_cuda_get_device(int *index)
{
    cudaError_t err = cudaGetDevice(index);
    if (err != cudaSuccess)
        return lh_fail(LH_ERR_UNSUPPORTED, "cuda: no current device: %s", cudaGetErrorString(err));
    return LH_OK;
}

lh_status lh_cuda_ctx_create(lh_cuda_ctx **out)
{
    *out = NULL;
    lh_cuda_ctx *ctx = (lh_cuda_ctx *)calloc(1, sizeof *ctx);
    if (!ctx) return lh_fail(LH_ERR_NOMEM, "cuda: out of memory");
    lh_status st = cuda_check(cudaStreamCreate(&ctx->stream), "stream create");
    if (!st) st = cublas_check(cublasCreate(&ctx->cublas), "create");
    if (!st) st = cublas_check(cublasSetStream(ctx->cublas, ctx->stream), "set stream");
    /* plain fp32 GEMMs, so results compare with the CPU's to float rounding */
    if (!st) st = cublas_check(cublasSetMathMode(ctx->cublas, CUBLAS_PEDANTIC_MATH), "math mode");
    if (st) {
        lh_cuda_ctx_free(ctx);
        return st;
    }
    *out = ctx;
    return LH_OK;
}

void lh_cuda_ctx_free(lh_cuda_ctx *ctx)
{
    if (!ctx) return;
    if (ctx->cublas) cublasDestroy(ctx->cublas);
    if (ctx->stream) cudaStreamDestroy(ctx->stream);
    free(ctx);
}

lh_status lh_cuda_sync(lh_cuda_ctx *ctx) { return cuda_check(cudaStreamSynchronize(ctx->stream), "synchronize"); }

lh_status lh_cuda_alloc(void **ptr, size_t bytes)
{
    cudaError_t err = cudaMalloc(ptr, bytes);
    if (err == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError(); /* not sticky: clear it so later calls do not report it */
        *ptr = NULL;
        return lh_fail(LH_ERR_CAPACITY, "cuda: out of device memory allocating %zu bytes", bytes);
    }
    return cuda_check(err, "malloc");
}

void lh_cuda_release(void *ptr)
{
    if (ptr) cudaFree(ptr);
}

lh_status lh_cuda_upload(void *dst, const void *src, size_t bytes)
{
    return cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "upload");
}

lh_status lh_cuda_download(void *dst, const void *src, size_t bytes)
{
    return cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "download");
}

lh_status lh_cuda_zero(void *ptr, size_t bytes) { return cuda_check(cudaMemset(ptr, 0, bytes), "memset"); }

lh_status lh_cuda_encoder_forward(lh_cuda_ctx *ctx, float *out, const int32_t *tokens, const float *wte,
                                  const float *wpe, int B, int T, int C)
{
    int64_t n = (int64_t)B * T * C;
    encoder_forward_kernel<<<blocks_for(n, 256), 256, 0, ctx->stream>>>(out, tokens, wte, wpe, B, T, C);
    return launch_check("encoder forward");
}

lh_status lh_cuda_encoder_backward(lh_cuda_ctx *ctx, float *dwte, float *dwpe, const float *dout,
                                   const int32_t *tokens, int B, int T, int C)
{
    encoder_backward_kernel<<<blocks_for(C, 128), 128, 0, ctx->stream>>>(dwte, dwpe, dout, tokens, B, T, C);
    return launch_check("encoder backward");
}

lh_status lh_cuda_layernorm_forward(lh_cuda_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
                                    const float *weight, const float *bias, int N, int C)
{
    layernorm_forward_kernel<<<blocks_for(N, 8), 256, 0, ctx->stream>>>(out, mean, rstd, inp, weight, bias, N, C);
    return launch_check("layernorm forward");
}

lh_status lh_cuda_layernorm_backward(lh_cuda_ctx *ctx, float *dinp, float *dweight, float *dbias, const float *dout,
                                     const float *inp, const float *weight, const float *mean, const float *rstd,
                                     int N, int C)
{
    layernorm_backward_input_kernel<<<blocks_for(N, 8), 256, 0, ctx->stream>>>(dinp, dout, inp, weight, mean, rstd,
                                                                               N, C);
    lh_status st = launch_check("layernorm backward (input)");
    if (st) return st;
    layernorm_backward_params_kernel<<<blocks_for(C, 128), 128, 0, ctx->stream>>>(dweight, dbias, dout, inp, mean,
                                                                                  rstd, N, C);
    return launch_check("layernorm backward (parameters)");
}

lh_status lh_cuda_matmul_forward(lh_cuda_ctx *ctx, float *out, const float *inp, const float *weight,
                                 const float *bias, int N, int C, int OC)
{
    /* column-major view: out^T (OC x N) = weight (as C x OC, transposed) * inp^T (C x N) */
    const float one = 1.0f, zero = 0.0f;
    lh_status st = cublas_check(cublasSgemm(ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, &one, weight, C, inp, C,
                                            &zero, out, OC),
                                "matmul forward");
    if (st || !bias) return st;
    int64_t n = (int64_t)N * OC;
    add_bias_kernel<<<blocks_for(n, 256), 256, 0, ctx->stream>>>(out, bias, N, OC);
    return launch_check("matmul bias");
}

lh_status lh_cuda_matmul_backward(lh_cuda_ctx *ctx, float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, int N, int C, int OC)
{
    const float one = 1.0f, zero = 0.0f;
    lh_status st;
    if (dinp) {
        /* dinp^T (C x N) = weight^T (C x OC, column-major of row-major weight) * dout^T (OC x N) */
        st = cublas_check(cublasSgemm(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, &one, weight, C, dout, OC,
                                      &zero, dinp, C),
                          "matmul backward (input)");
        if (st) return st;
    }
    /* dweight^T (C x OC) += inp^T (C x N) * dout (N x OC) */
    st = cublas_check(cublasSgemm(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, &one, inp, C, dout, OC, &one,
                                  dweight, C),
                      "matmul backward (weight)");
    if (st || !dbias) return st;
    bias_backward_kernel<<<blocks_for(OC, 128), 128, 0, ctx->stream>>>(dbias, dout, N, OC);
    return launch_check("matmul backward (bias)");
}

lh_status lh_cuda_attention_forward(lh_cuda_ctx *ctx, float *out, float *att, const float *qkv, int B, int T, int C,
                                    int NH)
{
    int64_t rows = (int64_t)B * NH * T;
    attention_forward_kernel<<<blocks_for(rows, 8), 256, 0, ctx->stream>>>(out, att, qkv, B, T, C, NH);
    return launch_check("attention forward");
}

lh_status lh_cuda_attention_backward(lh_cuda_ctx *ctx, float *dqkv, float *dpre_scratch, const float *dout,
                                     const float *qkv, const float *att, int B, int T, int C, int NH)
{
    int64_t rows = (int64_t)B * NH * T;
    attention_backward_scores_kernel<<<blocks_for(rows, 8), 256, 0, ctx->stream>>>(dpre_scratch, dout, qkv, att, B, T,
                                                                                   C, NH);
    lh_status st = launch_check("attention backward (scores)");
    if (st) return st;
    int64_t n = (int64_t)B * T * C;
    attention_backward_qkv_kernel<<<blocks_for(n, 256), 256, 0, ctx->stream>>>(dqkv, dpre_scratch, dout, qkv, att, B,
                                                                               T, C, NH);
    return launch_check("attention backward (qkv)");
}

lh_status lh_cuda_gelu_forward(lh_cuda_ctx *ctx, float *out, const float *inp, int64_t N)
{
    gelu_forward_kernel<<<blocks_for(N, 256), 256, 0, ctx->stream>>>(out, inp, N);
    return launch_check("gelu forward");
}

lh_status lh_cuda_gelu_backward(lh_cuda_ctx *ctx, float *dinp, const float *inp, const float *dout, int64_t N)
{
    gelu_backward_kernel<<<blocks_for(N, 256), 256, 0, ctx->stream>>>(dinp, inp, dout, N);
    return launch_check("gelu backward");
}

lh_status lh_cuda_residual_forward(lh_cuda_ctx *ctx, float *out, const float *a, const float *b, int64_t N)
{
    residual_forward_kernel<<<blocks_for(N, 256), 256, 0, ctx->stream>>>(out, a, b, N);
    return launch_check("residual forward");
}

lh_status lh_cuda_softmax_crossentropy_forward(lh_cuda_ctx *ctx, float *probs, float *losses, const float *logits,
                                               const int32_t *targets, int64_t N, int V, int Vp)
{
    softmax_crossentropy_forward_kernel<<<blocks_for(N, 8), 256, 0, ctx->stream>>>(probs, losses, logits, targets, N,
                                                                                   V, Vp);
    return launch_check("softmax cross-entropy forward");
}

lh_status lh_cuda_softmax_crossentropy_backward(lh_cuda_ctx *ctx, float *dlogits, const float *probs,
                                                const int32_t *targets, float dloss, int64_t N, int V, int Vp)
{
    softmax_crossentropy_backward_kernel<<<blocks_for(N * Vp, 256), 256, 0, ctx->stream>>>(dlogits, probs, targets,
                                                                                           dloss, N, V, Vp);
    return launch_check("softmax cross-entropy backward");
}

lh_status lh_cuda_adamw(lh_cuda_ctx *ctx, float *params, const float *grads, float *m, float *v, int64_t n, float lr,
                        float beta1, float beta2, float eps, float weight_decay, int64_t step)
{
    if (step < 1) return lh_fail(LH_ERR_INVALID_ARG, "cuda adamw: step must be >= 1, got %lld", (long long)step);
    float bc1 = 1.0f - powf(beta1, (float)step), bc2 = 1.0f - powf(beta2, (float)step);
    adamw_kernel<<<blocks_for(n, 256), 256, 0, ctx->stream>>>(params, grads, m, v, n, lr, beta1, beta2, eps,
                                                              weight_decay, bc1, bc2);
    return launch_check("adamw");
}

} /* extern "C" */
