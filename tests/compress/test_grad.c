/*
 * Tests of the gradient codec: error feedback delivers the whole signal over
 * steps (sum of what was sent = sum of gradients - final residual), ranges keep
 * separate residuals, and decode_add sums the frames of several replicas.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lh_compress.h"
#include "lh_test.h"

static uint64_t rng_state;
static double rng_uniform(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}
static float rng_gauss(void)
{
    return (float)(sqrt(-2 * log(rng_uniform())) * cos(6.283185307179586 * rng_uniform()));
}

/* clip_rms 0: absmax scales; > 0: clipped scales, whose cut-off part stays in the residual */
static void error_feedback_delivers_signal(float clip_rms)
{
    enum { N = 1000, STEPS = 200 };
    lh_quant_params p = lh_quant_params_default(2);
    p.grouping = LH_GROUP_BLOCK;
    p.group_size = 128;
    p.scale_type = LH_SCALE_FP32;
    p.clip_rms = clip_rms;
    lh_grad_codec *g;
    LH_ASSERT_OK(lh_grad_create(N, &p, 1, &g));
    lh_quant_ctx *ctx;
    LH_ASSERT_OK(lh_quant_ctx_create(&ctx));
    float *grad = malloc(N * sizeof(float)), *dec = malloc(N * sizeof(float));
    double *sent = calloc(N, sizeof(double)), *truth = calloc(N, sizeof(double));
    size_t cap = lh_grad_bound(g, N), len;
    uint8_t *buf = malloc(cap);
    rng_state = 1;
    /* a small persistent signal under large noise: 2-bit rounding alone would lose it */
    float signal[N];
    for (int i = 0; i < N; i++)
        signal[i] = 0.01f * (float)(i % 7 - 3);
    for (int s = 0; s < STEPS; s++) {
        for (int i = 0; i < N; i++) {
            grad[i] = signal[i] + rng_gauss();
            truth[i] += grad[i];
        }
        LH_ASSERT_OK(lh_grad_encode(g, grad, (uint64_t)s, buf, cap, &len));
        LH_ASSERT_OK(lh_quant_decode(ctx, buf, len, dec, 1, N));
        for (int i = 0; i < N; i++)
            sent[i] += dec[i];
        if (s == 0) {
            /* step 0 sends the gradient itself: absmax scales reach its largest value, clipped ones do not */
            float gmax = 0, dmax = 0;
            for (int i = 0; i < N; i++) {
                gmax = fmaxf(gmax, fabsf(grad[i]));
                dmax = fmaxf(dmax, fabsf(dec[i]));
            }
            CU_ASSERT(clip_rms > 0 ? dmax < 0.9f * gmax : dmax >= gmax);
        }
    }
    const float *r = lh_grad_residual(g);
    double worst = 0, rmax = 0;
    for (int i = 0; i < N; i++) {
        worst = fmax(worst, fabs(sent[i] + r[i] - truth[i]));
        rmax = fmax(rmax, fabs(r[i]));
    }
    CU_ASSERT(worst < 1e-2); /* sum sent = sum of gradients - residual (float rounding only) */
    CU_ASSERT(rmax < 5.0);   /* the residual stays bounded */
    /* the mean of what was sent recovers the small signal */
    double err = 0;
    for (int i = 0; i < N; i++)
        err += fabs(sent[i] / STEPS - signal[i]);
    CU_ASSERT(err / N < 0.1);
    lh_grad_reset(g);
    CU_ASSERT_EQUAL(lh_grad_residual(g)[3], 0.0f);
    free(grad);
    free(dec);
    free(sent);
    free(truth);
    free(buf);
    lh_quant_ctx_free(ctx);
    lh_grad_free(g);
}

static void test_error_feedback_delivers_signal(void)
{
    error_feedback_delivers_signal(0.0f);
}

static void test_error_feedback_with_clip(void)
{
    error_feedback_delivers_signal(2.0f);
    error_feedback_delivers_signal(1.5f);
}

static void test_ranges_and_reduction(void)
{
    enum { N = 512 };
    lh_quant_params p = lh_quant_params_default(4);
    p.grouping = LH_GROUP_BLOCK;
    p.group_size = 64;
    p.rounding = LH_ROUND_STOCHASTIC;
    lh_grad_codec *a, *b;
    LH_ASSERT_OK(lh_grad_create(N, &p, 7, &a));
    LH_ASSERT_OK(lh_grad_create(N, &p, 8, &b));
    float ga[N], gb[N], sum[N], da[N], db[N];
    rng_state = 2;
    for (int i = 0; i < N; i++) {
        ga[i] = rng_gauss();
        gb[i] = rng_gauss();
    }
    lh_quant_ctx *ctx;
    LH_ASSERT_OK(lh_quant_ctx_create(&ctx));
    size_t cap = lh_grad_bound(a, N), la, lb;
    uint8_t *fa = malloc(cap), *fb = malloc(cap);
    /* second half only: the first half's residual stays zero */
    LH_ASSERT_OK(lh_grad_encode_range(a, ga, N / 2, N / 2, 0, fa, cap, &la));
    CU_ASSERT_EQUAL(lh_grad_residual(a)[0], 0.0f);
    int nonzero = 0;
    for (int i = N / 2; i < N; i++)
        nonzero += lh_grad_residual(a)[i] != 0.0f;
    CU_ASSERT(nonzero > 0);
    LH_ASSERT_OK(lh_quant_decode(ctx, fa, la, da, 1, N / 2));
    for (int i = 0; i < N / 2; i++)
        CU_ASSERT(fabsf(da[i] + lh_grad_residual(a)[N / 2 + i] - ga[N / 2 + i]) < 1e-5f);
    lh_grad_reset(a);
    /* a two-replica sum with decode_add */
    LH_ASSERT_OK(lh_grad_encode(a, ga, 1, fa, cap, &la));
    LH_ASSERT_OK(lh_grad_encode(b, gb, 1, fb, cap, &lb));
    memset(sum, 0, sizeof sum);
    LH_ASSERT_OK(lh_quant_decode_add(ctx, fa, la, sum, 1, N));
    LH_ASSERT_OK(lh_quant_decode_add(ctx, fb, lb, sum, 1, N));
    LH_ASSERT_OK(lh_quant_decode(ctx, fa, la, da, 1, N));
    LH_ASSERT_OK(lh_quant_decode(ctx, fb, lb, db, 1, N));
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL(sum[i], da[i] + db[i]);
    LH_ASSERT_FAILS_WITH(lh_grad_encode_range(a, ga, N - 4, 8, 2, fa, cap, &la), LH_ERR_INVALID_ARG,
                         "outside");
    lh_quant_params pc = lh_quant_params_default(4);
    lh_grad_codec *c;
    LH_ASSERT_FAILS_WITH(lh_grad_create(N, &pc, 1, &c), LH_ERR_INVALID_ARG, "per-channel");
    free(fa);
    free(fb);
    lh_quant_ctx_free(ctx);
    lh_grad_free(a);
    lh_grad_free(b);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"error feedback delivers the signal", test_error_feedback_delivers_signal},
        {"ranges and reduction", test_ranges_and_reduction},
        {"error feedback with clipped scales", test_error_feedback_with_clip},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"compress_grad", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return lh_test_run(suites);
}
