/*
 * The emulated CUDA device of fake_cuda.h: the lh_cuda_* API on the CPU
 * layers, with poisoned allocations and pointer-domain checks.
 */
#include "fake_cuda.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_layers.h"
#include "lh_train_cuda.h"

struct lh_cuda_ctx {
    int unused;
};

typedef struct block {
    char *base;
    size_t bytes;
} block;

#define MAX_BLOCKS 4096
#define MAX_LOG 65536

static block blocks[MAX_BLOCKS];
static int n_blocks;
static int devices = 1;
static int violations;
static int fail_in;
typedef struct logged_op {
    char kind;
    size_t bytes;
} logged_op;
static logged_op op_log[MAX_LOG];
static int n_log;

void lh_fake_cuda_set_devices(int count) { devices = count; }
int lh_fake_cuda_violations(void) { return violations; }
void lh_fake_cuda_reset_log(void) { n_log = 0; }
void lh_fake_cuda_fail_in(int n) { fail_in = n; }

int lh_fake_cuda_count(char kind, size_t bytes)
{
    int n = 0;
    for (int i = 0; i < n_log; i++) n += op_log[i].kind == kind && op_log[i].bytes == bytes;
    return n;
}

static void log_op(char kind, size_t bytes)
{
    if (n_log < MAX_LOG) op_log[n_log++] = (logged_op){kind, bytes};
}

/* The allocation holding p, or NULL. */
static const block *find(const void *p)
{
    const char *c = p;
    for (int i = 0; i < n_blocks; i++)
        if (blocks[i].base && c >= blocks[i].base && c < blocks[i].base + blocks[i].bytes) return &blocks[i];
    return NULL;
}

/* A device argument: `bytes` bytes from p inside one allocation.  NULL passes when allowed. */
static void dev(const char *what, const void *p, size_t bytes, int may_be_null)
{
    if (!p && may_be_null) return;
    const block *b = p ? find(p) : NULL;
    if (!b || (const char *)p + bytes > b->base + b->bytes) {
        violations++;
        fprintf(stderr, "\n  fake cuda: %s: %s (%zu bytes at %p)\n", what,
                b ? "runs past the end of its device allocation" : "is not device memory", bytes, p);
    }
}

static void host(const char *what, const void *p)
{
    if (!p || find(p)) {
        violations++;
        fprintf(stderr, "\n  fake cuda: %s: expected host memory, got %p\n", what, p);
    }
}

static lh_status call(const char *what)
{
    if (fail_in > 0 && --fail_in == 0) return lh_fail(LH_ERR_INTERNAL, "cuda: %s: injected failure", what);
    return LH_OK;
}

#define F sizeof(float)
#define I sizeof(int32_t)

int lh_cuda_device_count(void) { return devices; }

static int current_device;

lh_status lh_cuda_set_device(int index)
{
    if (index < 0 || index >= devices) return lh_fail(LH_ERR_UNSUPPORTED, "fake cuda: no device %d", index);
    current_device = index;
    return LH_OK;
}

lh_status lh_cuda_get_device(int *index)
{
    *index = current_device;
    return LH_OK;
}

lh_status lh_cuda_ctx_create(lh_cuda_ctx **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? LH_OK : lh_fail(LH_ERR_NOMEM, "fake cuda: out of memory");
}

void lh_cuda_ctx_free(lh_cuda_ctx *ctx) { free(ctx); }
lh_status lh_cuda_sync(lh_cuda_ctx *ctx) { return LH_OK; }

lh_status lh_cuda_alloc(void **ptr, size_t bytes)
{
    *ptr = NULL;
    int slot = -1;
    for (int i = 0; i < n_blocks && slot < 0; i++)
        if (!blocks[i].base) slot = i;
    if (slot < 0 && n_blocks < MAX_BLOCKS) slot = n_blocks++;
    if (slot < 0) return lh_fail(LH_ERR_CAPACITY, "fake cuda: too many allocations");
    char *p = malloc(bytes ? bytes : 1);
    if (!p) return lh_fail(LH_ERR_CAPACITY, "fake cuda: out of device memory allocating %zu bytes", bytes);
    float nan = NAN; /* what was never written reads as NaN */
    for (size_t i = 0; i + F <= bytes; i += F) memcpy(p + i, &nan, F);
    blocks[slot] = (block){p, bytes};
    *ptr = p;
    return LH_OK;
}

void lh_cuda_release(void *ptr)
{
    if (!ptr) return;
    for (int i = 0; i < n_blocks; i++)
        if (blocks[i].base == ptr) {
            free(ptr);
            blocks[i].base = NULL;
            return;
        }
    violations++;
    fprintf(stderr, "\n  fake cuda: release of %p, which is not a device allocation\n", ptr);
}

lh_status lh_cuda_upload(void *dst, const void *src, size_t bytes)
{
    dev("upload destination", dst, bytes, 0);
    host("upload source", src);
    log_op('u', bytes);
    memcpy(dst, src, bytes);
    return LH_OK;
}

lh_status lh_cuda_download(void *dst, const void *src, size_t bytes)
{
    host("download destination", dst);
    dev("download source", src, bytes, 0);
    log_op('d', bytes);
    memcpy(dst, src, bytes);
    return LH_OK;
}

lh_status lh_cuda_zero(void *ptr, size_t bytes)
{
    dev("zero", ptr, bytes, 0);
    log_op('z', bytes);
    memset(ptr, 0, bytes);
    return LH_OK;
}

lh_status lh_cuda_encoder_forward(lh_cuda_ctx *ctx, float *out, const int32_t *tokens, const float *wte,
                                  const float *wpe, int B, int T, int C)
{
    size_t n = (size_t)B * T;
    dev("encoder out", out, n * C * F, 0);
    dev("encoder tokens", tokens, n * I, 0);
    dev("encoder wte", wte, (size_t)C * F, 0);
    dev("encoder wpe", wpe, (size_t)T * C * F, 0);
    lh_status st = call("encoder forward");
    if (!st) lh_encoder_forward(out, tokens, wte, wpe, B, T, C);
    return st;
}

lh_status lh_cuda_encoder_backward(lh_cuda_ctx *ctx, float *dwte, float *dwpe, const float *dout,
                                   const int32_t *tokens, int B, int T, int C)
{
    size_t n = (size_t)B * T;
    dev("encoder dwte", dwte, (size_t)C * F, 0);
    dev("encoder dwpe", dwpe, (size_t)T * C * F, 0);
    dev("encoder dout", dout, n * C * F, 0);
    dev("encoder tokens", tokens, n * I, 0);
    lh_status st = call("encoder backward");
    if (!st) lh_encoder_backward(dwte, dwpe, dout, tokens, B, T, C);
    return st;
}

lh_status lh_cuda_layernorm_forward(lh_cuda_ctx *ctx, float *out, float *mean, float *rstd, const float *inp,
                                    const float *weight, const float *bias, int N, int C)
{
    dev("layernorm out", out, (size_t)N * C * F, 0);
    dev("layernorm mean", mean, (size_t)N * F, 0);
    dev("layernorm rstd", rstd, (size_t)N * F, 0);
    dev("layernorm inp", inp, (size_t)N * C * F, 0);
    dev("layernorm weight", weight, (size_t)C * F, 0);
    dev("layernorm bias", bias, (size_t)C * F, 0);
    lh_status st = call("layernorm forward");
    if (!st) lh_layernorm_forward(out, mean, rstd, inp, weight, bias, N, C);
    return st;
}

lh_status lh_cuda_layernorm_backward(lh_cuda_ctx *ctx, float *dinp, float *dweight, float *dbias, const float *dout,
                                     const float *inp, const float *weight, const float *mean, const float *rstd,
                                     int N, int C)
{
    dev("layernorm dinp", dinp, (size_t)N * C * F, 0);
    dev("layernorm dweight", dweight, (size_t)C * F, 0);
    dev("layernorm dbias", dbias, (size_t)C * F, 0);
    dev("layernorm dout", dout, (size_t)N * C * F, 0);
    dev("layernorm inp", inp, (size_t)N * C * F, 0);
    dev("layernorm weight", weight, (size_t)C * F, 0);
    dev("layernorm mean", mean, (size_t)N * F, 0);
    dev("layernorm rstd", rstd, (size_t)N * F, 0);
    lh_status st = call("layernorm backward");
    if (!st) lh_layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
    return st;
}

lh_status lh_cuda_matmul_forward(lh_cuda_ctx *ctx, float *out, const float *inp, const float *weight,
                                 const float *bias, int N, int C, int OC)
{
    dev("matmul out", out, (size_t)N * OC * F, 0);
    dev("matmul inp", inp, (size_t)N * C * F, 0);
    dev("matmul weight", weight, (size_t)OC * C * F, 0);
    dev("matmul bias", bias, (size_t)OC * F, 1);
    lh_status st = call("matmul forward");
    if (!st) lh_matmul_forward(out, inp, weight, bias, N, C, OC);
    return st;
}

lh_status lh_cuda_matmul_backward(lh_cuda_ctx *ctx, float *dinp, float *dweight, float *dbias, const float *dout,
                                  const float *inp, const float *weight, int N, int C, int OC)
{
    dev("matmul dinp", dinp, (size_t)N * C * F, 1);
    dev("matmul dweight", dweight, (size_t)OC * C * F, 0);
    dev("matmul dbias", dbias, (size_t)OC * F, 1);
    dev("matmul dout", dout, (size_t)N * OC * F, 0);
    dev("matmul inp", inp, (size_t)N * C * F, 0);
    dev("matmul weight", weight, (size_t)OC * C * F, 0);
    lh_status st = call("matmul backward");
    if (!st) lh_matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
    return st;
}

lh_status lh_cuda_attention_forward(lh_cuda_ctx *ctx, float *out, float *att, const float *qkv, int B, int T, int C,
                                    int NH)
{
    dev("attention out", out, (size_t)B * T * C * F, 0);
    dev("attention att", att, (size_t)B * NH * T * T * F, 0);
    dev("attention qkv", qkv, (size_t)B * T * 3 * C * F, 0);
    lh_status st = call("attention forward");
    if (!st) lh_attention_forward(out, att, qkv, B, T, C, NH);
    return st;
}

lh_status lh_cuda_attention_backward(lh_cuda_ctx *ctx, float *dqkv, float *dpre_scratch, const float *dout,
                                     const float *qkv, const float *att, int B, int T, int C, int NH)
{
    dev("attention dqkv", dqkv, (size_t)B * T * 3 * C * F, 0);
    dev("attention dpre scratch", dpre_scratch, (size_t)B * NH * T * T * F, 0);
    dev("attention dout", dout, (size_t)B * T * C * F, 0);
    dev("attention qkv", qkv, (size_t)B * T * 3 * C * F, 0);
    dev("attention att", att, (size_t)B * NH * T * T * F, 0);
    lh_status st = call("attention backward");
    if (!st) lh_attention_backward(dqkv, dout, qkv, att, B, T, C, NH);
    return st;
}

lh_status lh_cuda_gelu_forward(lh_cuda_ctx *ctx, float *out, const float *inp, int64_t N)
{
    dev("gelu out", out, (size_t)N * F, 0);
    dev("gelu inp", inp, (size_t)N * F, 0);
    lh_status st = call("gelu forward");
    if (!st) lh_gelu_forward(out, inp, N);
    return st;
}

/* Gelu backward and the residual add share a shape: one output and two inputs of N floats each.
 * `names` label out, in1, in2 in violation messages. */
static lh_status elementwise_2_in(const char *op, void (*cpu)(float *, const float *, const float *, int64_t),
                                  const char *const names[3], float *out, const float *in1, const float *in2,
                                  int64_t N)
{
    dev(names[0], out, (size_t)N * F, 0);
    dev(names[1], in1, (size_t)N * F, 0);
    dev(names[2], in2, (size_t)N * F, 0);
    lh_status st = call(op);
    if (!st) cpu(out, in1, in2, N);
    return st;
}

lh_status lh_cuda_gelu_backward(lh_cuda_ctx *ctx, float *dinp, const float *inp, const float *dout, int64_t N)
{
    static const char *const names[3] = {"gelu dinp", "gelu inp", "gelu dout"};
    return elementwise_2_in("gelu backward", lh_gelu_backward, names, dinp, inp, dout, N);
}

lh_status lh_cuda_residual_forward(lh_cuda_ctx *ctx, float *out, const float *a, const float *b, int64_t N)
{
    static const char *const names[3] = {"residual out", "residual a", "residual b"};
    return elementwise_2_in("residual forward", lh_residual_forward, names, out, a, b, N);
}

lh_status lh_cuda_softmax_crossentropy_forward(lh_cuda_ctx *ctx, float *probs, float *losses, const float *logits,
                                               const int32_t *targets, int64_t N, int V, int Vp)
{
    dev("softmax probs", probs, (size_t)N * Vp * F, 0);
    dev("softmax losses", losses, (size_t)N * F, targets == NULL);
    dev("softmax logits", logits, (size_t)N * Vp * F, 0);
    dev("softmax targets", targets, (size_t)N * I, 1);
    lh_status st = call("softmax cross-entropy forward");
    if (!st) lh_softmax_crossentropy_forward(probs, losses, logits, targets, N, V, Vp);
    return st;
}

lh_status lh_cuda_softmax_crossentropy_backward(lh_cuda_ctx *ctx, float *dlogits, const float *probs,
                                                const int32_t *targets, float dloss, int64_t N, int V, int Vp)
{
    dev("softmax dlogits", dlogits, (size_t)N * Vp * F, 0);
    dev("softmax probs", probs, (size_t)N * Vp * F, 0);
    dev("softmax targets", targets, (size_t)N * I, 0);
    lh_status st = call("softmax cross-entropy backward");
    if (!st) lh_softmax_crossentropy_backward(dlogits, probs, targets, dloss, N, V, Vp);
    return st;
}

lh_status lh_cuda_adamw(lh_cuda_ctx *ctx, float *params, const float *grads, float *m, float *v, int64_t n,
                        float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step)
{
    return lh_fail(LH_ERR_UNSUPPORTED, "fake cuda: adamw is not emulated (the stage runs AdamW on the host)");
}
