/*
 * The CUDA stage (lh_stage_create_on(..., LH_DEVICE_CUDA, ...)) against the
 * CPU stage: the same small model, split in every way a pipeline splits it
 * (whole model, embedding + layer, middle layer, layer + head, head only,
 * embedding only), the same seed and data, two activation slots in flight,
 * then gradient scaling, AdamW, a second step, and writes through the host
 * views that must reach the device.
 *
 * Built twice from this source:
 *  - test_train_cuda_stage (CUDA builds): the real kernels and cuBLAS.  It
 *    reports a skip when lh_cuda_device_count() == 0.  Tolerance: every
 *    compared tensor must agree in the relative 2-norm, ||gpu - cpu|| /
 *    ||cpu|| <= 1e-4, and the loss to 1e-5 relative.  Why that is the right
 *    size: both sides are fp32 with the same formulas (lh_math.h); they differ
 *    only in summation order (cuBLAS vs OpenBLAS blocking, warp-shuffle vs
 *    8-lane partial sums), which costs a few ulps (6e-8) per reduction of at
 *    most 4C = 256 or B*T = 32 terms, compounded over 2 layers + head: about
 *    1e-6 relative expected, and the layer twin test (test_cuda_layers) sees
 *    1e-6 to 1e-5.  1e-4 leaves 10-100x margin for that, while any real bug
 *    (a wrong offset, a missing upload or zeroing, stale parameters) gives
 *    errors of order 1.  A norm is used rather than the worst element because
 *    gradients that nearly cancel (bias sums, rows of rare tokens) have
 *    meaningless elementwise relative errors.  AdamW runs on the host for both
 *    devices, so after the CPU gradients are copied into the CUDA stage the
 *    updated parameters and moments must be bit-identical.
 *  - test_train_stage_emulated (every build): the same orchestration code
 *    (lh_model.c + lh_model_cuda.c) on the emulated device of fake_cuda.h,
 *    whose "kernels" are the CPU layers: then everything must be EXACTLY equal,
 *    device memory starts as NaN, pointer domains are checked, and the copy
 *    log shows the synchronisation rules of lh_model.h are followed.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lh_model.h"
#include "lh_test.h"
#include "lh_train_cuda.h"

#ifdef LH_EMULATED_CUDA
#include "fake_cuda.h"
#define EXACT 1
#else
#define EXACT 0
#endif

#define TOL 1e-4
#define LOSS_TOL 1e-5
#define L_ 2
#define C_ 64
#define NH_ 4
#define V_ 257
#define B_ 2
#define T_ 16
#define SLOTS 2

static int have_gpu(void)
{
    if (lh_cuda_device_count() > 0) return 1;
    fprintf(stderr, " [no CUDA device: skipped] ");
    return 0;
}

static uint64_t rng_state = 2024;

static float frand(void) /* [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}

static lh_model_config config(void)
{
    lh_model_config c = {.max_seq_len = T_, .vocab_size = V_, .num_layers = L_, .num_heads = NH_, .channels = C_};
    lh_model_config_check(&c); /* Vp = 384 */
    return c;
}

/* Relative 2-norm error; exact comparison on the emulated device. */
static int close_enough(const char *what, const float *got, const float *want, int64_t n, double tol)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - want[i];
        num += d * d;
        den += (double)want[i] * want[i];
    }
    double rel = sqrt(num) / (sqrt(den) > 0 ? sqrt(den) : 1.0);
    int ok = EXACT ? memcmp(got, want, (size_t)n * sizeof(float)) == 0 : rel <= tol; /* NaN fails */
    if (!ok) fprintf(stderr, "\n  %s: relative error %.3g (tolerance %s)\n", what, rel, EXACT ? "exact" : "1e-4");
    return ok;
}

/* Every gradient tensor of the stage, one by one (so a small wrong tensor is not hidden by a big right one). */
static void compare_grads(const char *when, lh_stage *gpu, lh_stage *cpu)
{
    const lh_model_config *c = lh_stage_config(cpu);
    const lh_stage_spec *sp = lh_stage_get_spec(cpu);
    char what[160];
    int64_t Vp = c->padded_vocab_size, C = c->channels;
    if (lh_stage_wte(cpu, 1)) {
        snprintf(what, sizeof what, "%s: wte gradient", when);
        CU_ASSERT(close_enough(what, lh_stage_wte(gpu, 1), lh_stage_wte(cpu, 1), Vp * C, TOL));
    }
    if (sp->has_embedding) {
        snprintf(what, sizeof what, "%s: wpe gradient", when);
        CU_ASSERT(close_enough(what, lh_stage_wpe(gpu, 1), lh_stage_wpe(cpu, 1), (int64_t)c->max_seq_len * C, TOL));
    }
    for (int l = sp->first_layer; l < sp->first_layer + sp->layer_count; l++)
        for (int t = 0; t < LH_LAYER_TENSORS; t++) {
            snprintf(what, sizeof what, "%s: layer %d tensor %d gradient", when, l, t);
            CU_ASSERT(close_enough(what, lh_stage_layer_tensor(gpu, l, t, 1), lh_stage_layer_tensor(cpu, l, t, 1),
                                   lh_layer_tensor_floats(c->channels, t), TOL));
        }
    if (sp->has_head) {
        snprintf(what, sizeof what, "%s: lnf gradient", when);
        CU_ASSERT(close_enough(what, lh_stage_lnfw(gpu, 1), lh_stage_lnfw(cpu, 1), 2 * C, TOL));
    }
    double a = lh_stage_grad_sumsq(gpu), b = lh_stage_grad_sumsq(cpu);
    CU_ASSERT(EXACT ? a == b : fabs(a - b) <= 2 * TOL * b);
    CU_ASSERT(b > 0);
}

static int loss_close(float got, float want)
{
    int ok = EXACT ? got == want : fabs((double)got - want) <= LOSS_TOL * fabs((double)want);
    if (!ok) fprintf(stderr, "\n  loss %.9g vs CPU %.9g\n", got, want);
    return ok;
}

typedef struct batch {
    int32_t tokens[B_ * T_], targets[B_ * T_];
    float input[B_ * T_ * C_], d_output[B_ * T_ * C_];
} batch;

static void make_batch(batch *b)
{
    for (int i = 0; i < B_ * T_; i++) {
        b->tokens[i] = (int32_t)((frand() + 1.0f) * 0.5f * V_) % V_;
        b->targets[i] = (int32_t)((frand() + 1.0f) * 0.5f * V_) % V_;
    }
    for (int i = 0; i < B_ * T_ * C_; i++) {
        b->input[i] = frand();
        b->d_output[i] = 1e-2f * frand();
    }
}

/* Forward `b` into `slot` on both stages and compare what comes out. */
static void forward_both(lh_stage *gpu, lh_stage *cpu, int slot, const batch *b, int with_targets, const char *when)
{
    const lh_stage_spec *sp = lh_stage_get_spec(cpu);
    int64_t Vp = lh_stage_config(cpu)->padded_vocab_size;
    static float out_gpu[B_ * T_ * C_], out_cpu[B_ * T_ * C_];
    float loss_gpu = -1, loss_cpu = -2;
    const int32_t *tok = sp->has_embedding ? b->tokens : NULL;
    const float *in = sp->has_embedding ? NULL : b->input;
    const int32_t *tgt = sp->has_head && with_targets ? b->targets : NULL;
    LH_ASSERT_OK(lh_stage_forward(cpu, slot, B_, T_, tok, in, tgt, sp->has_head ? NULL : out_cpu, &loss_cpu));
    const float *logits_cpu = lh_stage_logits(cpu);
    LH_ASSERT_OK(lh_stage_forward(gpu, slot, B_, T_, tok, in, tgt, sp->has_head ? NULL : out_gpu, &loss_gpu));
    char what[160];
    if (sp->has_head) {
        if (tgt) CU_ASSERT(loss_close(loss_gpu, loss_cpu));
        const float *logits_gpu = lh_stage_logits(gpu);
        CU_ASSERT_PTR_NOT_NULL_FATAL(logits_gpu);
        CU_ASSERT(lh_stage_logits(gpu) == logits_gpu); /* a second call copies nothing new */
        snprintf(what, sizeof what, "%s: logits", when);
        CU_ASSERT(close_enough(what, logits_gpu, logits_cpu, B_ * T_ * Vp, TOL));
    } else {
        CU_ASSERT_PTR_NULL(lh_stage_logits(gpu));
        snprintf(what, sizeof what, "%s: output", when);
        CU_ASSERT(close_enough(what, out_gpu, out_cpu, B_ * T_ * C_, TOL));
    }
}

static void backward_both(lh_stage *gpu, lh_stage *cpu, int slot, const batch *b, const char *when)
{
    const lh_stage_spec *sp = lh_stage_get_spec(cpu);
    static float din_gpu[B_ * T_ * C_], din_cpu[B_ * T_ * C_];
    const float *dout = sp->has_head ? NULL : b->d_output;
    LH_ASSERT_OK(lh_stage_backward(cpu, slot, dout, 0.5f, sp->has_embedding ? NULL : din_cpu));
    LH_ASSERT_OK(lh_stage_backward(gpu, slot, dout, 0.5f, sp->has_embedding ? NULL : din_gpu));
    if (!sp->has_embedding) {
        char what[160];
        snprintf(what, sizeof what, "%s: d_input", when);
        CU_ASSERT(close_enough(what, din_gpu, din_cpu, B_ * T_ * C_, TOL));
    }
}

static void run_case(const char *name, lh_stage_spec spec)
{
    if (!have_gpu()) return;
    lh_model_config cfg = config();
    lh_stage *cpu = NULL, *gpu = NULL;
    LH_ASSERT_OK(lh_stage_create(&cfg, &spec, B_, T_, SLOTS, &cpu));
    LH_ASSERT_OK(lh_stage_create_on(&cfg, &spec, B_, T_, SLOTS, LH_DEVICE_CUDA, &gpu));
    CU_ASSERT_EQUAL(lh_stage_device(gpu), LH_DEVICE_CUDA);
    CU_ASSERT_EQUAL(lh_stage_device(cpu), LH_DEVICE_CPU);
    int64_t n = lh_stage_param_count(cpu);
    CU_ASSERT_EQUAL_FATAL(lh_stage_param_count(gpu), n);
    CU_ASSERT_EQUAL(lh_stage_wte_offset(gpu), lh_stage_wte_offset(cpu));
    lh_stage_init_params(cpu, 7);
    lh_stage_init_params(gpu, 7);
    CU_ASSERT_EQUAL(memcmp(lh_stage_params(gpu), lh_stage_params(cpu), (size_t)n * sizeof(float)), 0);
    fprintf(stderr, " [%s] ", name);

    static batch b[3];
    for (int i = 0; i < 3; i++) make_batch(&b[i]);
    char when[96];

    /* step 1: two micro-batches in flight, backwards in reverse order (as 1F1B drains them) */
    snprintf(when, sizeof when, "%s step 1 slot 0", name);
    forward_both(gpu, cpu, 0, &b[0], 1, when);
    snprintf(when, sizeof when, "%s step 1 slot 1", name);
    forward_both(gpu, cpu, 1, &b[1], 1, when);
    backward_both(gpu, cpu, 1, &b[1], when);
    snprintf(when, sizeof when, "%s step 1 slot 0", name);
    backward_both(gpu, cpu, 0, &b[0], when);
    snprintf(when, sizeof when, "%s step 1", name);
    compare_grads(when, gpu, cpu);

    /* clipping-style scaling on the host gradients */
    lh_stage_scale_grads(cpu, 0.5f);
    lh_stage_scale_grads(gpu, 0.5f);
    snprintf(when, sizeof when, "%s after scale_grads", name);
    compare_grads(when, gpu, cpu);

    /* AdamW on the host for both: with the same gradients the result is bit-identical */
    memcpy(lh_stage_grads(gpu), lh_stage_grads(cpu), (size_t)n * sizeof(float));
    lh_adamw_params p = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    LH_ASSERT_OK(lh_stage_adamw_step(cpu, &p, 1));
    LH_ASSERT_OK(lh_stage_adamw_step(gpu, &p, 1));
    CU_ASSERT_EQUAL(memcmp(lh_stage_params(gpu), lh_stage_params(cpu), (size_t)n * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(lh_stage_adam_m(gpu), lh_stage_adam_m(cpu), (size_t)n * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(lh_stage_adam_v(gpu), lh_stage_adam_v(cpu), (size_t)n * sizeof(float)), 0);
    lh_stage_zero_grads(cpu);
    lh_stage_zero_grads(gpu);

    /* step 2: the updated parameters must have reached the device and its accumulator must be clear */
    snprintf(when, sizeof when, "%s step 2", name);
    forward_both(gpu, cpu, 0, &b[2], 1, when);
    backward_both(gpu, cpu, 0, &b[2], when);
    compare_grads(when, gpu, cpu);
    /* ... and further backwards accumulate onto it */
    snprintf(when, sizeof when, "%s step 2 accumulated", name);
    forward_both(gpu, cpu, 1, &b[0], 1, when);
    backward_both(gpu, cpu, 1, &b[0], when);
    compare_grads(when, gpu, cpu);

    /* writes through the host views reach the device: a parameter, and a gradient backward adds to */
    int layer = spec.layer_count > 0 ? spec.first_layer : -1;
    for (int k = 0; k < 2; k++) {
        lh_stage *s = k ? gpu : cpu;
        if (layer >= 0) lh_stage_layer_tensor(s, layer, LH_QKVW, 0)[5] += 0.25f;
        else lh_stage_params(s)[3] -= 0.25f;
        lh_stage_grads(s)[1] += 3.0f;
    }
    snprintf(when, sizeof when, "%s after host writes", name);
    forward_both(gpu, cpu, 0, &b[1], 1, when);
    backward_both(gpu, cpu, 0, &b[1], when);
    compare_grads(when, gpu, cpu);

    /* a head stage's inference forward (no targets): logits only, and backward then refuses */
    if (spec.has_head) {
        snprintf(when, sizeof when, "%s inference", name);
        forward_both(gpu, cpu, 1, &b[2], 0, when);
        LH_ASSERT_FAILS_WITH(lh_stage_backward(gpu, 1, NULL, 1.0f, NULL), LH_ERR_INVALID_ARG, "had no targets");
    }
    lh_stage_free(cpu);
    lh_stage_free(gpu);
}

static void test_whole(void) { run_case("whole", (lh_stage_spec){0, L_, 1, 1}); }
static void test_first(void) { run_case("first", (lh_stage_spec){0, 1, 1, 0}); }
static void test_middle(void) { run_case("middle", (lh_stage_spec){1, 1, 0, 0}); }
static void test_last(void) { run_case("last", (lh_stage_spec){1, 1, 0, 1}); }
static void test_head_only(void) { run_case("head only", (lh_stage_spec){L_, 0, 0, 1}); }
static void test_embedding_only(void) { run_case("embedding only", (lh_stage_spec){0, 0, 1, 0}); }

/* The argument errors are the CPU stage's, word for word. */
static void test_same_errors(void)
{
    if (!have_gpu()) return;
    lh_model_config cfg = config();
    lh_stage_spec whole = {0, L_, 1, 1}, middle = {1, 1, 0, 0};
    lh_stage *s[2][2];
    for (int d = 0; d < 2; d++) {
        LH_ASSERT_OK(lh_stage_create_on(&cfg, &whole, B_, T_, SLOTS, d ? LH_DEVICE_CUDA : LH_DEVICE_CPU, &s[d][0]));
        LH_ASSERT_OK(lh_stage_create_on(&cfg, &middle, B_, T_, SLOTS, d ? LH_DEVICE_CUDA : LH_DEVICE_CPU, &s[d][1]));
        lh_stage_init_params(s[d][0], 3);
        lh_stage_init_params(s[d][1], 3);
    }
    static batch b;
    make_batch(&b);
    b.tokens[5] = V_; /* out of the vocabulary */
    static float out[B_ * T_ * C_];
    char cpu_msg[512];
#define SAME(call_on)                                                                              \
    do {                                                                                           \
        lh_status st_cpu = call_on(s[0]);                                                          \
        snprintf(cpu_msg, sizeof cpu_msg, "%s", lh_last_error());                                  \
        lh_status st_gpu = call_on(s[1]);                                                          \
        CU_ASSERT_NOT_EQUAL(st_cpu, LH_OK);                                                        \
        CU_ASSERT_EQUAL(st_gpu, st_cpu);                                                           \
        CU_ASSERT_STRING_EQUAL(lh_last_error(), cpu_msg);                                          \
    } while (0)
#define BAD_TOKEN(st) lh_stage_forward(st[0], 0, B_, T_, b.tokens, NULL, b.targets, NULL, NULL)
#define BAD_SLOT(st) lh_stage_forward(st[0], SLOTS, B_, T_, b.tokens, NULL, b.targets, NULL, NULL)
#define TOO_BIG(st) lh_stage_forward(st[1], 0, B_ + 1, T_, NULL, b.input, NULL, out, NULL)
#define NO_INPUT(st) lh_stage_forward(st[1], 0, B_, T_, NULL, NULL, NULL, out, NULL)
#define NO_FORWARD(st) lh_stage_backward(st[0], 1, NULL, 1.0f, NULL)
#define NO_D_INPUT(st) lh_stage_backward(st[1], 0, b.d_output, 1.0f, NULL)
    SAME(BAD_TOKEN);
    SAME(BAD_SLOT);
    SAME(TOO_BIG);
    SAME(NO_INPUT);
    SAME(NO_FORWARD);
    for (int d = 0; d < 2; d++) LH_ASSERT_OK(lh_stage_forward(s[d][1], 0, B_, T_, NULL, b.input, NULL, out, NULL));
    SAME(NO_D_INPUT);
    for (int d = 0; d < 2; d++) {
        lh_stage_free(s[d][0]);
        lh_stage_free(s[d][1]);
    }
}

#ifdef LH_EMULATED_CUDA
/* The copy log of the emulated device shows the rules of lh_model.h ("Devices") at work. */
static void test_sync_rules(void)
{
    lh_model_config cfg = config();
    lh_stage_spec whole = {0, L_, 1, 1};
    lh_stage *s;
    LH_ASSERT_OK(lh_stage_create_on(&cfg, &whole, B_, T_, SLOTS, LH_DEVICE_CUDA, &s));
    lh_stage_init_params(s, 5);
    size_t P = (size_t)lh_stage_param_count(s) * sizeof(float);
    size_t logits = (size_t)B_ * T_ * cfg.padded_vocab_size * sizeof(float);
    static batch b;
    make_batch(&b);
    float loss;
    lh_fake_cuda_reset_log();
    LH_ASSERT_OK(lh_stage_forward(s, 0, B_, T_, b.tokens, NULL, b.targets, NULL, &loss));
    CU_ASSERT_EQUAL(lh_fake_cuda_count('u', P), 1); /* parameters uploaded once ... */
    LH_ASSERT_OK(lh_stage_forward(s, 1, B_, T_, b.tokens, NULL, b.targets, NULL, &loss));
    CU_ASSERT_EQUAL(lh_fake_cuda_count('u', P), 1); /* ... and not again while unchanged */
    CU_ASSERT_EQUAL(lh_fake_cuda_count('d', logits), 0); /* logits stay on the device until asked for */
    CU_ASSERT_PTR_NOT_NULL(lh_stage_logits(s));
    CU_ASSERT_PTR_NOT_NULL(lh_stage_logits(s));
    CU_ASSERT_EQUAL(lh_fake_cuda_count('d', logits), 1);
    LH_ASSERT_OK(lh_stage_backward(s, 1, NULL, 1.0f, NULL));
    CU_ASSERT_EQUAL(lh_fake_cuda_count('z', P), 1); /* the accumulator cleared (init), gradients downloaded */
    CU_ASSERT_EQUAL(lh_fake_cuda_count('d', P), 1);
    LH_ASSERT_OK(lh_stage_backward(s, 0, NULL, 1.0f, NULL));
    CU_ASSERT_EQUAL(lh_fake_cuda_count('z', P), 1); /* accumulating: nothing uploaded or cleared */
    CU_ASSERT_EQUAL(lh_fake_cuda_count('u', P), 1);
    CU_ASSERT_EQUAL(lh_fake_cuda_count('d', P), 2);
    /* reading the norm changes nothing; writing through lh_stage_grads makes the next backward upload */
    CU_ASSERT(lh_stage_grad_sumsq(s) > 0);
    lh_stage_grads(s)[0] = 1.0f;
    LH_ASSERT_OK(lh_stage_forward(s, 0, B_, T_, b.tokens, NULL, b.targets, NULL, &loss));
    CU_ASSERT_EQUAL(lh_fake_cuda_count('u', P), 1);
    LH_ASSERT_OK(lh_stage_backward(s, 0, NULL, 1.0f, NULL));
    CU_ASSERT_EQUAL(lh_fake_cuda_count('u', P), 2);
    /* so does scaling them on the host */
    lh_stage_scale_grads(s, 0.5f);
    LH_ASSERT_OK(lh_stage_forward(s, 0, B_, T_, b.tokens, NULL, b.targets, NULL, &loss));
    LH_ASSERT_OK(lh_stage_backward(s, 0, NULL, 1.0f, NULL));
    CU_ASSERT_EQUAL(lh_fake_cuda_count('u', P), 3);
    CU_ASSERT_EQUAL(lh_fake_cuda_count('z', P), 1);
    /* the engine's step: sync (lh_stage_grads), clip, AdamW, zero; then one parameter upload, one clear */
    lh_stage_grads(s);
    lh_stage_scale_grads(s, 0.5f);
    lh_adamw_params p = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.0f};
    LH_ASSERT_OK(lh_stage_adamw_step(s, &p, 1));
    lh_stage_zero_grads(s);
    lh_fake_cuda_reset_log();
    LH_ASSERT_OK(lh_stage_forward(s, 0, B_, T_, b.tokens, NULL, b.targets, NULL, &loss));
    LH_ASSERT_OK(lh_stage_backward(s, 0, NULL, 1.0f, NULL));
    CU_ASSERT_EQUAL(lh_fake_cuda_count('u', P), 1);
    CU_ASSERT_EQUAL(lh_fake_cuda_count('z', P), 1);
    CU_ASSERT_EQUAL(lh_fake_cuda_count('d', P), 1);
    lh_stage_free(s);
    CU_ASSERT_EQUAL(lh_fake_cuda_violations(), 0);
}

/* A failing kernel: the error names the pass, and a retry starts again from the host gradients. */
static void test_failure_and_retry(void)
{
    lh_model_config cfg = config();
    lh_stage_spec last = {1, 1, 0, 1};
    lh_stage *cpu, *gpu;
    LH_ASSERT_OK(lh_stage_create(&cfg, &last, B_, T_, 1, &cpu));
    LH_ASSERT_OK(lh_stage_create_on(&cfg, &last, B_, T_, 1, LH_DEVICE_CUDA, &gpu));
    lh_stage_init_params(cpu, 9);
    lh_stage_init_params(gpu, 9);
    static batch b;
    make_batch(&b);
    static float din_cpu[B_ * T_ * C_], din_gpu[B_ * T_ * C_];
    forward_both(gpu, cpu, 0, &b, 1, "failure");
    lh_fake_cuda_fail_in(4); /* partway through the layer: some gradients already accumulated */
    LH_ASSERT_FAILS_WITH(lh_stage_backward(gpu, 0, NULL, 1.0f, din_gpu), LH_ERR_INTERNAL, "stage backward (cuda)");
    CU_ASSERT_PTR_NOT_NULL(strstr(lh_last_error(), "injected failure"));
    lh_fake_cuda_fail_in(0);
    LH_ASSERT_OK(lh_stage_backward(cpu, 0, NULL, 1.0f, din_cpu));
    LH_ASSERT_OK(lh_stage_backward(gpu, 0, NULL, 1.0f, din_gpu));
    CU_ASSERT(close_enough("retry: d_input", din_gpu, din_cpu, B_ * T_ * C_, TOL));
    compare_grads("retry", gpu, cpu);
    lh_fake_cuda_fail_in(2);
    LH_ASSERT_FAILS_WITH(lh_stage_forward(gpu, 0, B_, T_, NULL, b.input, b.targets, NULL, NULL), LH_ERR_INTERNAL,
                         "stage forward (cuda)");
    lh_fake_cuda_fail_in(0);
    LH_ASSERT_FAILS_WITH(lh_stage_backward(gpu, 0, NULL, 1.0f, din_gpu), LH_ERR_INVALID_ARG, "holds no forward pass");
    lh_stage_free(cpu);
    lh_stage_free(gpu);
    CU_ASSERT_EQUAL(lh_fake_cuda_violations(), 0);
}

static void test_no_device(void)
{
    lh_model_config cfg = config();
    lh_stage_spec whole = {0, L_, 1, 1};
    lh_stage *s = (lh_stage *)&cfg;
    lh_fake_cuda_set_devices(0);
    LH_ASSERT_FAILS_WITH(lh_stage_create_on(&cfg, &whole, B_, T_, 1, LH_DEVICE_CUDA, &s), LH_ERR_UNSUPPORTED,
                         "no CUDA device");
    CU_ASSERT_PTR_NULL(s);
    lh_fake_cuda_set_devices(1);
}

static void test_no_violations(void) { CU_ASSERT_EQUAL(lh_fake_cuda_violations(), 0); }
#endif

CU_TestInfo stage_tests[] = {
    {"whole model: CUDA stage vs CPU stage", test_whole},
    {"first stage (embedding + layer 0)", test_first},
    {"middle stage (layer 1)", test_middle},
    {"last stage (layer 1 + head)", test_last},
    {"head-only stage", test_head_only},
    {"embedding-only stage", test_embedding_only},
    {"argument errors are the CPU stage's", test_same_errors},
#ifdef LH_EMULATED_CUDA
    {"emulated: host/device synchronisation rules", test_sync_rules},
    {"emulated: a failing kernel, then a retry", test_failure_and_retry},
    {"emulated: no device is LH_ERR_UNSUPPORTED", test_no_device},
    {"emulated: no pointer-domain violations", test_no_violations},
#endif
    CU_TEST_INFO_NULL,
};

CU_SuiteInfo suites[] = {
    {"cuda stage", NULL, NULL, NULL, NULL, stage_tests},
    CU_SUITE_INFO_NULL,
};

int main(void) { return lh_test_run(suites); }
