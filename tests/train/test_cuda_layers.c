/*
 * CUDA layers against the CPU layers on the same random vectors: every
 * forward output and every gradient must agree to float rounding.  Built only
 * when the CUDA kernels are compiled; on a machine without a GPU the test
 * reports that it skipped (CI compiles it; a GPU machine runs it).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lh_layers.h"
#include "lh_math.h"
#include "lh_test.h"
#include "lh_train_cuda.h"

static lh_cuda_ctx *ctx;
static uint64_t rng_state = 99;

static float frand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static float *host_rand(int64_t n)
{
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = frand();
    return p;
}

static void *dev_copy(const void *host, size_t bytes)
{
    void *d = NULL;
    if (lh_cuda_alloc(&d, bytes) || lh_cuda_upload(d, host, bytes)) return NULL;
    return d;
}

/* download n floats from dev and compare with host reference */
static double compare(const float *dev, const float *ref, int64_t n)
{
    float *h = malloc((size_t)n * sizeof(float));
    if (lh_cuda_sync(ctx) || lh_cuda_download(h, dev, (size_t)n * sizeof(float))) {
        free(h);
        return INFINITY;
    }
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)h[i] - ref[i]) / (1e-3 + fabs((double)ref[i]));
        if (d > worst) worst = d;
    }
    free(h);
    return worst;
}

static int have_gpu(void)
{
    if (ctx) return 1;
    if (lh_cuda_device_count() == 0) {
        fprintf(stderr, " [no CUDA device: skipped] ");
        return 0;
    }
    return lh_cuda_ctx_create(&ctx) == LH_OK;
}

static void test_matmul_layernorm_gelu(void)
{
    if (!have_gpu()) return;
    int N = 37, C = 48, OC = 80;
    float *inp = host_rand(N * C), *w = host_rand(OC * C), *b = host_rand(OC), *dout = host_rand(N * OC);
    float *out = calloc(N * OC, 4), *dinp = calloc(N * C, 4), *dw = calloc(OC * C, 4), *db = calloc(OC, 4);
    lh_matmul_forward(out, inp, w, b, N, C, OC);
    lh_matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
    float *d_inp = dev_copy(inp, N * C * 4), *d_w = dev_copy(w, OC * C * 4), *d_b = dev_copy(b, OC * 4);
    float *d_dout = dev_copy(dout, N * OC * 4), *d_out, *d_dinp, *d_dw, *d_db;
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_out, N * OC * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_dinp, N * C * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_dw, OC * C * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_db, OC * 4));
    LH_ASSERT_OK(lh_cuda_zero(d_dw, OC * C * 4));
    LH_ASSERT_OK(lh_cuda_zero(d_db, OC * 4));
    LH_ASSERT_OK(lh_cuda_matmul_forward(ctx, d_out, d_inp, d_w, d_b, N, C, OC));
    LH_ASSERT_OK(lh_cuda_matmul_backward(ctx, d_dinp, d_dw, d_db, d_dout, d_inp, d_w, N, C, OC));
    CU_ASSERT(compare(d_out, out, N * OC) < 1e-4);
    CU_ASSERT(compare(d_dinp, dinp, N * C) < 1e-4);
    CU_ASSERT(compare(d_dw, dw, OC * C) < 1e-4);
    CU_ASSERT(compare(d_db, db, OC) < 1e-4);

    /* layernorm on the matmul output rows (N, OC) */
    float *lw = host_rand(OC), *lb = host_rand(OC), *ln = calloc(N * OC, 4), *mean = calloc(N, 4), *rstd = calloc(N, 4);
    float *dln_in = calloc(N * OC, 4), *dlw = calloc(OC, 4), *dlb = calloc(OC, 4);
    lh_layernorm_forward(ln, mean, rstd, out, lw, lb, N, OC);
    lh_layernorm_backward(dln_in, dlw, dlb, dout, out, lw, mean, rstd, N, OC);
    float *d_lw = dev_copy(lw, OC * 4), *d_lb = dev_copy(lb, OC * 4), *d_ln, *d_mean, *d_rstd, *d_dln, *d_dlw, *d_dlb;
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_ln, N * OC * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_mean, N * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_rstd, N * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_dln, N * OC * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_dlw, OC * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_dlb, OC * 4));
    LH_ASSERT_OK(lh_cuda_zero(d_dln, N * OC * 4));
    LH_ASSERT_OK(lh_cuda_zero(d_dlw, OC * 4));
    LH_ASSERT_OK(lh_cuda_zero(d_dlb, OC * 4));
    LH_ASSERT_OK(lh_cuda_upload(d_out, out, N * OC * 4)); /* the exact CPU input */
    LH_ASSERT_OK(lh_cuda_layernorm_forward(ctx, d_ln, d_mean, d_rstd, d_out, d_lw, d_lb, N, OC));
    LH_ASSERT_OK(lh_cuda_layernorm_backward(ctx, d_dln, d_dlw, d_dlb, d_dout, d_out, d_lw, d_mean, d_rstd, N, OC));
    CU_ASSERT(compare(d_ln, ln, N * OC) < 1e-4);
    CU_ASSERT(compare(d_dln, dln_in, N * OC) < 1e-3);
    CU_ASSERT(compare(d_dlw, dlw, OC) < 1e-4);

    /* gelu */
    float *g = calloc(N * OC, 4), *dg = calloc(N * OC, 4);
    lh_gelu_forward(g, out, N * OC);
    lh_gelu_backward(dg, out, dout, N * OC);
    LH_ASSERT_OK(lh_cuda_gelu_forward(ctx, d_ln, d_out, N * OC));
    CU_ASSERT(compare(d_ln, g, N * OC) < 1e-5);
    LH_ASSERT_OK(lh_cuda_gelu_backward(ctx, d_ln, d_out, d_dout, N * OC));
    CU_ASSERT(compare(d_ln, dg, N * OC) < 1e-5);
    void *frees[] = {d_inp, d_w, d_b, d_dout, d_out, d_dinp, d_dw, d_db, d_lw, d_lb, d_ln, d_mean, d_rstd, d_dln,
                     d_dlw, d_dlb};
    for (size_t i = 0; i < sizeof frees / sizeof frees[0]; i++) lh_cuda_release(frees[i]);
    free(inp), free(w), free(b), free(dout), free(out), free(dinp), free(dw), free(db);
    free(lw), free(lb), free(ln), free(mean), free(rstd), free(dln_in), free(dlw), free(dlb), free(g), free(dg);
}

static void test_attention_and_crossentropy(void)
{
    if (!have_gpu()) return;
    int B = 2, T = 40, C = 64, NH = 4, V = 50, Vp = 64;
    int64_t nq = (int64_t)B * T * 3 * C, no = (int64_t)B * T * C, na = (int64_t)B * NH * T * T;
    float *qkv = host_rand(nq), *dout = host_rand(no), *out = calloc(no, 4), *att = calloc(na, 4);
    float *dqkv = calloc(nq, 4);
    lh_attention_forward(out, att, qkv, B, T, C, NH);
    lh_attention_backward(dqkv, dout, qkv, att, B, T, C, NH);
    float *d_qkv = dev_copy(qkv, nq * 4), *d_dout = dev_copy(dout, no * 4), *d_out, *d_att, *d_dqkv, *d_dpre;
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_out, no * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_att, na * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_dqkv, nq * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_dpre, na * 4));
    LH_ASSERT_OK(lh_cuda_attention_forward(ctx, d_out, d_att, d_qkv, B, T, C, NH));
    LH_ASSERT_OK(lh_cuda_attention_backward(ctx, d_dqkv, d_dpre, d_dout, d_qkv, d_att, B, T, C, NH));
    CU_ASSERT(compare(d_out, out, no) < 1e-4);
    CU_ASSERT(compare(d_dqkv, dqkv, nq) < 1e-3);

    int64_t N = 33;
    float *logits = host_rand(N * Vp), *probs = calloc(N * Vp, 4), *losses = calloc(N, 4), *dl = calloc(N * Vp, 4);
    int32_t *targets = malloc(N * 4);
    for (int i = 0; i < N; i++) targets[i] = (i * 7) % V;
    lh_softmax_crossentropy_forward(probs, losses, logits, targets, N, V, Vp);
    lh_softmax_crossentropy_backward(dl, probs, targets, 1.0f / N, N, V, Vp);
    float *d_logits = dev_copy(logits, N * Vp * 4), *d_probs, *d_losses, *d_dl;
    int32_t *d_targets = dev_copy(targets, N * 4);
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_probs, N * Vp * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_losses, N * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_dl, N * Vp * 4));
    LH_ASSERT_OK(lh_cuda_softmax_crossentropy_forward(ctx, d_probs, d_losses, d_logits, d_targets, N, V, Vp));
    LH_ASSERT_OK(lh_cuda_softmax_crossentropy_backward(ctx, d_dl, d_probs, d_targets, 1.0f / N, N, V, Vp));
    CU_ASSERT(compare(d_probs, probs, N * Vp) < 1e-4);
    CU_ASSERT(compare(d_losses, losses, N) < 1e-4);
    CU_ASSERT(compare(d_dl, dl, N * Vp) < 1e-4);
    void *frees[] = {d_qkv, d_dout, d_out, d_att, d_dqkv, d_dpre, d_logits, d_probs, d_losses, d_dl, d_targets};
    for (size_t i = 0; i < sizeof frees / sizeof frees[0]; i++) lh_cuda_release(frees[i]);
    free(qkv), free(dout), free(out), free(att), free(dqkv), free(logits), free(probs), free(losses), free(dl);
    free(targets);
}

static void test_encoder_and_adamw(void)
{
    if (!have_gpu()) return;
    int B = 3, T = 5, C = 70, V = 9;
    int32_t tokens[15] = {1, 2, 1, 8, 0, 3, 3, 3, 4, 5, 6, 7, 8, 1, 2};
    float *wte = host_rand(V * C), *wpe = host_rand(T * C), *dout = host_rand(B * T * C);
    float *out = calloc(B * T * C, 4), *dwte = calloc(V * C, 4), *dwpe = calloc(T * C, 4);
    lh_encoder_forward(out, tokens, wte, wpe, B, T, C);
    lh_encoder_backward(dwte, dwpe, dout, tokens, B, T, C);
    float *d_wte = dev_copy(wte, V * C * 4), *d_wpe = dev_copy(wpe, T * C * 4), *d_dout = dev_copy(dout, B * T * C * 4);
    int32_t *d_tok = dev_copy(tokens, sizeof tokens);
    float *d_out, *d_dwte, *d_dwpe;
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_out, B * T * C * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_dwte, V * C * 4));
    LH_ASSERT_OK(lh_cuda_alloc((void **)&d_dwpe, T * C * 4));
    LH_ASSERT_OK(lh_cuda_zero(d_dwte, V * C * 4));
    LH_ASSERT_OK(lh_cuda_zero(d_dwpe, T * C * 4));
    LH_ASSERT_OK(lh_cuda_encoder_forward(ctx, d_out, d_tok, d_wte, d_wpe, B, T, C));
    LH_ASSERT_OK(lh_cuda_encoder_backward(ctx, d_dwte, d_dwpe, d_dout, d_tok, B, T, C));
    CU_ASSERT(compare(d_out, out, B * T * C) < 1e-6);
    CU_ASSERT(compare(d_dwte, dwte, V * C) < 1e-5);
    CU_ASSERT(compare(d_dwpe, dwpe, T * C) < 1e-5);
    /* AdamW: the shared lh_adamw_update on both sides */
    int n = 1000;
    float *p = host_rand(n), *gr = host_rand(n), *m = calloc(n, 4), *v = calloc(n, 4), *p_ref = malloc(n * 4);
    memcpy(p_ref, p, n * 4);
    float *d_p = dev_copy(p, n * 4), *d_g = dev_copy(gr, n * 4), *d_m = dev_copy(m, n * 4), *d_v = dev_copy(v, n * 4);
    LH_ASSERT_OK(lh_cuda_adamw(ctx, d_p, d_g, d_m, d_v, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, 1));
    float bc1 = 1.0f - 0.9f, bc2 = 1.0f - 0.95f;
    for (int i = 0; i < n; i++)
        p_ref[i] = lh_adamw_update(p_ref[i], gr[i], &m[i], &v[i], 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f, bc1, bc2);
    CU_ASSERT(compare(d_p, p_ref, n) < 1e-5);
    void *frees[] = {d_wte, d_wpe, d_dout, d_tok, d_out, d_dwte, d_dwpe, d_p, d_g, d_m, d_v};
    for (size_t i = 0; i < sizeof frees / sizeof frees[0]; i++) lh_cuda_release(frees[i]);
    free(wte), free(wpe), free(dout), free(out), free(dwte), free(dwpe), free(p), free(gr), free(m), free(v);
    free(p_ref);
}

CU_TestInfo cuda_tests[] = {
    {"matmul, layernorm, gelu: GPU vs CPU", test_matmul_layernorm_gelu},
    {"attention, cross-entropy: GPU vs CPU", test_attention_and_crossentropy},
    {"encoder, AdamW: GPU vs CPU", test_encoder_and_adamw},
    CU_TEST_INFO_NULL,
};

CU_SuiteInfo suites[] = {
    {"cuda layers", NULL, NULL, NULL, NULL, cuda_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
    int failures = lh_test_run(suites);
    lh_cuda_ctx_free(ctx);
    return failures;
}
