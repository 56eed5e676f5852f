/*
 * Finite-difference gradient checks for every CPU layer and for whole stages.
 *
 * Each check defines a scalar loss L = sum(out * R) for a fixed random R (so
 * every output element matters), runs the layer's backward with dout = R, and
 * compares each analytic input/parameter gradient with the central difference
 * (L(x+eps) - L(x-eps)) / 2eps.  The layers are float, so the loss is summed in
 * double and eps is chosen per layer to balance truncation against float
 * rounding; tolerances are relative with an absolute floor.  The double
 * precision reference for the whole model is the PyTorch float64 golden test
 * (test_model.c).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lh_layers.h"
#include "lh_math.h"
#include "lh_model.h"
#include "lh_test.h"

static uint64_t rng_state = 42;

static float frand(void) /* uniform in [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static float *rand_floats(int64_t n, float scale)
{
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}

static float *zeros(int64_t n) { return calloc((size_t)n, sizeof(float)); }

static double dot_double(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/*
 * Compare analytic[i] with the central difference of loss() w.r.t. x[i] for
 * every i (or `stride`-spaced ones).  Returns the worst error measured as
 * |num - ana| / (abs_floor + |num| + |ana|).
 */
static double fd_check(double (*loss)(void *), void *ctx, float *x, const float *analytic, int64_t n, float eps,
                       double abs_floor, int64_t stride)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i += stride) {
        float saved = x[i];
        x[i] = saved + eps;
        double lp = loss(ctx);
        x[i] = saved - eps;
        double lm = loss(ctx);
        x[i] = saved;
        double num = (lp - lm) / (2.0 * (double)eps);
        double err = fabs(num - analytic[i]) / (abs_floor + fabs(num) + fabs(analytic[i]));
        if (err > worst) worst = err;
    }
    if (getenv("LH_TEST_VERBOSE")) fprintf(stderr, "  fd_check: worst relative error %.3g over %lld\n", worst, (long long)n);
    return worst;
}

/* ---- the vectorisable exp / tanh of lh_math.h against libm in double ---- */
static void test_fast_exp_tanh(void)
{
    double worst_exp = 0, worst_tanh = 0;
    for (int i = 0; i <= 200000; i++) {
        float x = -87.0f + 175.0f * (float)i / 200000.0f;
        double e = exp((double)x), rel = fabs(lh_expf(x) - e) / e;
        if (rel > worst_exp) worst_exp = rel;
        float y = -10.0f + 20.0f * (float)i / 200000.0f;
        double d = fabs(lh_tanhf(y) - tanh((double)y));
        if (d > worst_tanh) worst_tanh = d;
    }
    if (getenv("LH_TEST_VERBOSE")) fprintf(stderr, "  exp rel %.3g tanh abs %.3g\n", worst_exp, worst_tanh);
    CU_ASSERT(worst_exp < 5e-7);  /* a few float ulp */
    CU_ASSERT(worst_tanh < 5e-7); /* absolute: what GELU adds to 1 */
    CU_ASSERT_EQUAL(lh_tanhf(50.0f), 1.0f);
    CU_ASSERT_EQUAL(lh_tanhf(-50.0f), -1.0f);
    CU_ASSERT(lh_expf(-1000.0f) >= 0.0f && lh_expf(-1000.0f) < 1e-37f);
    CU_ASSERT(isfinite(lh_expf(1000.0f)));
    CU_ASSERT(isfinite(lh_expf(NAN))); /* clamps instead of undefined behaviour */
}

/* ---- matmul ---- */
typedef struct {
    int N, C, OC;
    float *inp, *w, *b, *out, *r;
} mm_ctx;

static double mm_loss(void *p)
{
    mm_ctx *c = p;
    lh_matmul_forward(c->out, c->inp, c->w, c->b, c->N, c->C, c->OC);
    return dot_double(c->out, c->r, (int64_t)c->N * c->OC);
}

static void test_matmul_grad(void)
{
    mm_ctx c = {.N = 6, .C = 7, .OC = 5};
    c.inp = rand_floats(c.N * c.C, 1);
    c.w = rand_floats(c.OC * c.C, 1);
    c.b = rand_floats(c.OC, 1);
    c.out = zeros(c.N * c.OC);
    c.r = rand_floats(c.N * c.OC, 1);
    float *dinp = rand_floats(c.N * c.C, 1); /* overwritten, so garbage must not matter */
    float *dw = zeros(c.OC * c.C), *db = zeros(c.OC);
    lh_matmul_backward(dinp, dw, db, c.r, c.inp, c.w, c.N, c.C, c.OC);
    CU_ASSERT(fd_check(mm_loss, &c, c.inp, dinp, c.N * c.C, 1e-2f, 1e-3, 1) < 1e-3);
    CU_ASSERT(fd_check(mm_loss, &c, c.w, dw, c.OC * c.C, 1e-2f, 1e-3, 1) < 1e-3);
    CU_ASSERT(fd_check(mm_loss, &c, c.b, db, c.OC, 1e-2f, 1e-3, 1) < 1e-3);
    /* accumulation: a second backward doubles the parameter gradients */
    float dw0 = dw[3], db0 = db[2];
    lh_matmul_backward(NULL, dw, db, c.r, c.inp, c.w, c.N, c.C, c.OC);
    CU_ASSERT_DOUBLE_EQUAL(dw[3], 2 * dw0, 1e-5);
    CU_ASSERT_DOUBLE_EQUAL(db[2], 2 * db0, 1e-5);
    free(c.inp), free(c.w), free(c.b), free(c.out), free(c.r), free(dinp), free(dw), free(db);
}

/* ---- layernorm ---- */
typedef struct {
    int N, C;
    float *inp, *w, *b, *out, *mean, *rstd, *r;
} ln_ctx;

static double ln_loss(void *p)
{
    ln_ctx *c = p;
    lh_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C);
    return dot_double(c->out, c->r, (int64_t)c->N * c->C);
}

static void test_layernorm_grad(void)
{
    ln_ctx c = {.N = 5, .C = 70}; /* C > the 64-channel block, to cross a block boundary */
    c.inp = rand_floats(c.N * c.C, 2);
    c.w = rand_floats(c.C, 1);
    c.b = rand_floats(c.C, 1);
    c.out = zeros(c.N * c.C);
    c.mean = zeros(c.N);
    c.rstd = zeros(c.N);
    c.r = rand_floats(c.N * c.C, 1);
    ln_loss(&c);
    /* forward: each row normalised to mean 0, variance 1 before the affine part */
    double m = 0;
    for (int i = 0; i < c.C; i++) m += c.inp[i];
    CU_ASSERT_DOUBLE_EQUAL(c.mean[0], m / c.C, 1e-5);
    float *dinp = zeros(c.N * c.C), *dw = zeros(c.C), *db = zeros(c.C);
    lh_layernorm_backward(dinp, dw, db, c.r, c.inp, c.w, c.mean, c.rstd, c.N, c.C);
    CU_ASSERT(fd_check(ln_loss, &c, c.inp, dinp, c.N * c.C, 1e-2f, 1e-2, 1) < 5e-3);
    CU_ASSERT(fd_check(ln_loss, &c, c.w, dw, c.C, 1e-2f, 1e-2, 1) < 1e-3);
    CU_ASSERT(fd_check(ln_loss, &c, c.b, db, c.C, 1e-2f, 1e-2, 1) < 1e-3);
    free(c.inp), free(c.w), free(c.b), free(c.out), free(c.mean), free(c.rstd), free(c.r);
    free(dinp), free(dw), free(db);
}

/* ---- gelu ---- */
typedef struct {
    int64_t n;
    float *inp, *out, *r;
} gelu_ctx;

static double gelu_loss(void *p)
{
    gelu_ctx *c = p;
    lh_gelu_forward(c->out, c->inp, c->n);
    return dot_double(c->out, c->r, c->n);
}

static void test_gelu_grad(void)
{
    gelu_ctx c = {.n = 64};
    c.inp = rand_floats(c.n, 4);
    c.out = zeros(c.n);
    c.r = rand_floats(c.n, 1);
    float *dinp = zeros(c.n);
    lh_gelu_backward(dinp, c.inp, c.r, c.n);
    CU_ASSERT(fd_check(gelu_loss, &c, c.inp, dinp, c.n, 1e-2f, 1e-2, 1) < 1e-3);
    /* known values of the tanh approximation */
    CU_ASSERT_DOUBLE_EQUAL(lh_gelu(0.0f), 0.0, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(lh_gelu(1.0f), 0.8411920, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(lh_gelu(-3.0f), -0.0036374, 1e-6);
    free(c.inp), free(c.out), free(c.r), free(dinp);
}

/* ---- attention ---- */
typedef struct {
    int B, T, C, NH;
    float *qkv, *out, *att, *r;
} att_ctx;

static double att_loss(void *p)
{
    att_ctx *c = p;
    lh_attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->C, c->NH);
    return dot_double(c->out, c->r, (int64_t)c->B * c->T * c->C);
}

static void test_attention_grad(void)
{
    att_ctx c = {.B = 2, .T = 5, .C = 12, .NH = 3};
    int64_t n = (int64_t)c.B * c.T * 3 * c.C;
    c.qkv = rand_floats(n, 1.5f);
    c.out = zeros(c.B * c.T * c.C);
    c.att = zeros(c.B * c.NH * c.T * c.T);
    c.r = rand_floats(c.B * c.T * c.C, 1);
    att_loss(&c);
    /* rows of att are probability distributions over t2 <= t */
    for (int t = 0; t < c.T; t++) {
        double s = 0;
        for (int t2 = 0; t2 <= t; t2++) s += c.att[t * c.T + t2];
        CU_ASSERT_DOUBLE_EQUAL(s, 1.0, 1e-5);
    }
    /* causality: the first position attends only to itself, so its output is v[0] */
    for (int i = 0; i < c.C; i++) CU_ASSERT_DOUBLE_EQUAL(c.out[i], c.qkv[2 * c.C + i], 1e-6);
    float *dqkv = rand_floats(n, 1); /* overwritten */
    lh_attention_backward(dqkv, c.r, c.qkv, c.att, c.B, c.T, c.C, c.NH);
    CU_ASSERT(fd_check(att_loss, &c, c.qkv, dqkv, n, 1e-2f, 1e-2, 1) < 2e-3);
    free(c.qkv), free(c.out), free(c.att), free(c.r), free(dqkv);
}

/* ---- encoder ---- */
typedef struct {
    int B, T, C;
    int32_t *tokens;
    float *wte, *wpe, *out, *r;
} enc_ctx;

static double enc_loss(void *p)
{
    enc_ctx *c = p;
    lh_encoder_forward(c->out, c->tokens, c->wte, c->wpe, c->B, c->T, c->C);
    return dot_double(c->out, c->r, (int64_t)c->B * c->T * c->C);
}

static void test_encoder_grad(void)
{
    enc_ctx c = {.B = 2, .T = 4, .C = 70};
    int V = 5;
    int32_t tokens[8] = {1, 3, 1, 4, 0, 1, 1, 2}; /* repeats exercise the scatter-add */
    c.tokens = tokens;
    c.wte = rand_floats(V * c.C, 1);
    c.wpe = rand_floats(c.T * c.C, 1);
    c.out = zeros(c.B * c.T * c.C);
    c.r = rand_floats(c.B * c.T * c.C, 1);
    float *dwte = zeros(V * c.C), *dwpe = zeros(c.T * c.C);
    lh_encoder_backward(dwte, dwpe, c.r, c.tokens, c.B, c.T, c.C);
    CU_ASSERT(fd_check(enc_loss, &c, c.wte, dwte, V * c.C, 1e-2f, 1e-3, 1) < 1e-3);
    CU_ASSERT(fd_check(enc_loss, &c, c.wpe, dwpe, c.T * c.C, 1e-2f, 1e-3, 1) < 1e-3);
    free(c.wte), free(c.wpe), free(c.out), free(c.r), free(dwte), free(dwpe);
}

/* ---- softmax + cross-entropy ---- */
typedef struct {
    int N, V, Vp;
    int32_t *targets;
    float *logits, *probs, *losses;
} ce_ctx;

static double ce_loss(void *p)
{
    ce_ctx *c = p;
    lh_softmax_crossentropy_forward(c->probs, c->losses, c->logits, c->targets, c->N, c->V, c->Vp);
    double s = 0;
    for (int i = 0; i < c->N; i++) s += c->losses[i];
    return s / c->N;
}

static void test_crossentropy_grad(void)
{
    ce_ctx c = {.N = 4, .V = 7, .Vp = 9};
    int32_t targets[4] = {0, 6, 3, 3};
    c.targets = targets;
    c.logits = rand_floats(c.N * c.Vp, 3);
    c.probs = zeros(c.N * c.Vp);
    c.losses = zeros(c.N);
    double mean = ce_loss(&c);
    /* independent check of one row's loss: logsumexp - logit[target] */
    double lse = 0;
    for (int i = 0; i < c.V; i++) lse += exp(c.logits[i]);
    CU_ASSERT_DOUBLE_EQUAL(c.losses[0], log(lse) - c.logits[0], 1e-5);
    CU_ASSERT(mean > 0);
    float *dlogits = rand_floats(c.N * c.Vp, 1);
    lh_softmax_crossentropy_backward(dlogits, c.probs, c.targets, 1.0f / c.N, c.N, c.V, c.Vp);
    CU_ASSERT(fd_check(ce_loss, &c, c.logits, dlogits, c.N * c.Vp, 1e-2f, 1e-3, 1) < 2e-3);
    /* padded columns carry no probability and no gradient */
    CU_ASSERT_EQUAL(c.probs[c.V], 0.0f);
    CU_ASSERT_EQUAL(dlogits[c.Vp - 1], 0.0f);
    free(c.logits), free(c.probs), free(c.losses), free(dlogits);
}

/* ---- whole stage ---- */
static lh_model_config tiny_config(void)
{
    lh_model_config cfg = {.max_seq_len = 6, .vocab_size = 11, .padded_vocab_size = 16, .num_layers = 2,
                           .num_heads = 2, .channels = 8};
    return cfg;
}

typedef struct {
    lh_stage *stage;
    int B, T;
    int32_t *tokens, *targets;
} stage_ctx;

static double stage_loss(void *p)
{
    stage_ctx *c = p;
    float loss = 0;
    lh_stage_forward(c->stage, 0, c->B, c->T, c->tokens, NULL, c->targets, NULL, &loss);
    return loss;
}

static void test_stage_grad(void)
{
    lh_model_config cfg = tiny_config();
    lh_stage_spec spec = lh_stage_spec_whole(&cfg);
    lh_stage *s;
    LH_ASSERT_OK(lh_stage_create(&cfg, &spec, 2, 5, 1, &s));
    lh_stage_init_params(s, 7);
    /* make every weight O(0.3) so gradients are well above float noise */
    float *p = lh_stage_params(s);
    int64_t n = lh_stage_param_count(s);
    CU_ASSERT_EQUAL(n, lh_model_param_count(&cfg));
    for (int64_t i = 0; i < n; i++) p[i] += 0.3f * frand();
    int32_t tokens[10] = {1, 2, 3, 4, 5, 10, 9, 8, 7, 6}, targets[10] = {2, 3, 4, 5, 6, 9, 8, 7, 6, 5};
    stage_ctx c = {s, 2, 5, tokens, targets};
    float loss;
    lh_stage_zero_grads(s);
    LH_ASSERT_OK(lh_stage_forward(s, 0, 2, 5, tokens, NULL, targets, NULL, &loss));
    LH_ASSERT_OK(lh_stage_backward(s, 0, NULL, 1.0f, NULL));
    float *g = malloc((size_t)n * sizeof(float));
    memcpy(g, lh_stage_grads(s), (size_t)n * sizeof(float));
    /* padded wte rows (tokens V..Vp-1) never get a gradient */
    float *dwte = lh_stage_wte(s, 1);
    for (int i = cfg.vocab_size * cfg.channels; i < cfg.padded_vocab_size * cfg.channels; i++)
        CU_ASSERT_EQUAL(dwte[i], 0.0f);
    /* element-wise: float noise in a 2-layer forward dominates tiny gradients, hence the loose bound */
    double err = fd_check(stage_loss, &c, p, g, n, 2e-3f, 2e-3, 1);
    CU_ASSERT(err < 5e-2);
    /* directional derivatives along random directions: aggregate every gradient, tight bound */
    float *saved = malloc((size_t)n * sizeof(float)), *dir = malloc((size_t)n * sizeof(float));
    memcpy(saved, p, (size_t)n * sizeof(float));
    for (int k = 0; k < 4; k++) {
        for (int64_t i = 0; i < n; i++) dir[i] = frand();
        double ana = dot_double(g, dir, n), eps = 1e-3;
        for (int64_t i = 0; i < n; i++) p[i] = saved[i] + (float)eps * dir[i];
        double lp = stage_loss(&c);
        for (int64_t i = 0; i < n; i++) p[i] = saved[i] - (float)eps * dir[i];
        double lm = stage_loss(&c);
        memcpy(p, saved, (size_t)n * sizeof(float));
        double num = (lp - lm) / (2 * eps), rel = fabs(num - ana) / (fabs(num) + fabs(ana));
        if (getenv("LH_TEST_VERBOSE")) fprintf(stderr, "  directional: analytic %g numeric %g rel %.3g\n", ana, num, rel);
        CU_ASSERT(rel < 5e-3);
    }
    free(saved), free(dir);
    free(g);
    lh_stage_free(s);
}

CU_TestInfo layer_tests[] = {
    {"fast exp and tanh accuracy", test_fast_exp_tanh},
    {"matmul gradient", test_matmul_grad},
    {"layernorm gradient", test_layernorm_grad},
    {"gelu gradient", test_gelu_grad},
    {"attention gradient", test_attention_grad},
    {"encoder gradient", test_encoder_grad},
    {"softmax cross-entropy gradient", test_crossentropy_grad},
    {"whole stage gradient", test_stage_grad},
    CU_TEST_INFO_NULL,
};

CU_SuiteInfo suites[] = {
    {"layers", NULL, NULL, NULL, NULL, layer_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
    return lh_test_run(suites);
}
