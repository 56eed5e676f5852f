/*
 * The device half of a CUDA stage (contract in lh_model_cuda.h; the rules for
 * when host and device copies are synchronised are in lh_model.h, "Devices").
 *
 * This is plain C on top of the layer API of cuda/lh_train_cuda.h: the same
 * memory plan and the same sequence of layer calls as the CPU stage in
 * lh_model.c, with every buffer in device memory.  Kernels run on the
 * context's stream; the host<->device copies (lh_cuda_upload / download, plain
 * cudaMemcpy on the legacy default stream) are ordered with them because that
 * stream is a blocking one.  Each forward and backward ends with
 * lh_cuda_sync, so execution errors are reported by the call that caused them.
 *
 * Only compiled into something real when the CUDA kernels are (LONGHAUL_CUDA):
 * otherwise lh_stage_gpu_create reports that the build has no CUDA support.
 */
#include "lh_model_cuda.h"

#if LH_TRAIN_HAVE_CUDA

#include <stdlib.h>

#include "lh_model_layout.h"
#include "lh_train_cuda.h"

/* One slot: the tensors of lh_model_layout.h in one device buffer, plus the token ids. */
typedef struct gpu_slot {
    float *buffer;             /* device: every float of the slot */
    int32_t *ids;              /* device: tokens (B,T) then targets (B,T) */
    int32_t *tokens, *targets; /* into ids */
    lh_slot_acts saved;        /* device pointers into buffer; `layers` is a host array */
} gpu_slot;

struct lh_stage_gpu {
    lh_stage_gpu_shape sh;
    lh_cuda_ctx *ctx;
    float *params, *grads;   /* device, param_count each */
    gpu_slot *slots;         /* host array */
    float *scratch_buffer;   /* device */
    lh_scratch_acts scratch; /* device pointers into scratch_buffer, with d_att_pre */
};

#define CK(expr)                   \
    do {                           \
        lh_status ck_st_ = (expr); \
        if (ck_st_) return ck_st_; \
    } while (0)

static lh_status alloc_floats(float **p, int64_t n)
{
    return lh_cuda_alloc((void **)p, (size_t)(n < 1 ? 1 : n) * sizeof(float));
}

lh_status lh_stage_gpu_create(const lh_stage_gpu_shape *sh, lh_stage_gpu **out)
{
    *out = NULL;
    if (lh_cuda_device_count() == 0)
        return lh_fail(LH_ERR_UNSUPPORTED,
                       "stage: device \"cuda\" requested but no CUDA device was found (no GPU, or no driver); "
                       "use \"cpu\"");
    lh_stage_gpu *g = calloc(1, sizeof *g);
    if (!g) return lh_fail(LH_ERR_NOMEM, "stage: out of memory");
    g->sh = *sh;
    lh_status st = lh_cuda_ctx_create(&g->ctx);
    lh_act_dims dims = lh_act_dims_of(&sh->cfg, &sh->spec, sh->max_B, sh->max_T);
    int layers = sh->spec.layer_count;
    if (!st) st = alloc_floats(&g->params, sh->param_count);
    if (!st) st = alloc_floats(&g->grads, sh->param_count);
    if (!st) st = lh_cuda_zero(g->grads, (size_t)sh->param_count * sizeof(float));
    if (!st) {
        g->slots = calloc((size_t)sh->slots, sizeof *g->slots);
        if (!g->slots) st = lh_fail(LH_ERR_NOMEM, "stage: out of memory");
    }
    for (int k = 0; k < sh->slots && !st; k++) {
        gpu_slot *a = &g->slots[k];
        a->saved.layers = calloc((size_t)(layers > 0 ? layers : 1), sizeof *a->saved.layers);
        if (!a->saved.layers) {
            st = lh_fail(LH_ERR_NOMEM, "stage: out of memory");
            break;
        }
        st = alloc_floats(&a->buffer, lh_slot_floats(&dims));
        if (!st) st = lh_cuda_alloc((void **)&a->ids, (size_t)(2 * dims.BT) * sizeof(int32_t));
        if (st) break;
        a->tokens = a->ids;
        a->targets = a->ids + dims.BT;
        lh_slot_layout(&dims, a->buffer, &a->saved);
    }
    /* the CPU stage's scratch, plus attention backward's (B,NH,T,T) score gradients */
    if (!st) st = alloc_floats(&g->scratch_buffer, lh_scratch_floats(&dims, 1));
    if (st) {
        lh_stage_gpu_free(g);
        return lh_fail_prefix(st, "stage: creating the CUDA stage (%lld parameters, %d slot(s) of %d x %d)",
                              (long long)sh->param_count, sh->slots, sh->max_B, sh->max_T);
    }
    lh_scratch_layout(&dims, 1, g->scratch_buffer, &g->scratch);
    *out = g;
    return LH_OK;
}

void lh_stage_gpu_free(lh_stage_gpu *g)
{
    if (!g) return;
    if (g->slots)
        for (int k = 0; k < g->sh.slots; k++) {
            lh_cuda_release(g->slots[k].buffer);
            lh_cuda_release(g->slots[k].ids);
            free(g->slots[k].saved.layers);
        }
    free(g->slots);
    lh_cuda_release(g->scratch_buffer);
    lh_cuda_release(g->params);
    lh_cuda_release(g->grads);
    lh_cuda_ctx_free(g->ctx);
    free(g);
}

lh_status lh_stage_gpu_upload_params(lh_stage_gpu *g, const float *params)
{
    return lh_cuda_upload(g->params, params, (size_t)g->sh.param_count * sizeof(float));
}

lh_status lh_stage_gpu_upload_grads(lh_stage_gpu *g, const float *grads)
{
    size_t bytes = (size_t)g->sh.param_count * sizeof(float);
    return grads ? lh_cuda_upload(g->grads, grads, bytes) : lh_cuda_zero(g->grads, bytes);
}

lh_status lh_stage_gpu_download_grads(lh_stage_gpu *g, float *grads)
{
    CK(lh_cuda_sync(g->ctx));
    return lh_cuda_download(grads, g->grads, (size_t)g->sh.param_count * sizeof(float));
}

float *lh_stage_gpu_grads(lh_stage_gpu *g) { return g->grads; }

lh_status lh_stage_gpu_download_logits(lh_stage_gpu *g, int64_t rows, float *logits)
{
    if (!g->scratch.logits) return lh_fail(LH_ERR_INVALID_ARG, "stage: no logits on a stage without the head");
    CK(lh_cuda_sync(g->ctx));
    return lh_cuda_download(logits, g->scratch.logits, (size_t)(rows * g->sh.cfg.padded_vocab_size) * sizeof(float));
}

/* ---- device views of the parameter / gradient buffers (layer-major, lh_model.h) ---- */

static float *layer_tensor(const lh_stage_gpu *g, float *base, int local, lh_layer_tensor which)
{
    int C = g->sh.cfg.channels;
    return base + g->sh.layers_offset + local * lh_layer_param_floats(C) + lh_layer_tensor_offset(C, which);
}

static float *wte(const lh_stage_gpu *g, float *base) { return base + g->sh.wte_offset; }
static float *wpe(const lh_stage_gpu *g, float *base)
{
    return base + (int64_t)g->sh.cfg.padded_vocab_size * g->sh.cfg.channels;
}
static float *lnfw(const lh_stage_gpu *g, float *base) { return base + g->sh.head_offset; }
static float *lnfb(const lh_stage_gpu *g, float *base) { return base + g->sh.head_offset + g->sh.cfg.channels; }

/* ---- forward / backward: lh_stage_forward / lh_stage_backward of lh_model.c, call for call ---- */

lh_status lh_stage_gpu_forward(lh_stage_gpu *g, int slot, int B, int T, const int32_t *tokens, const float *input,
                               const int32_t *targets, float *output, float *losses)
{
    lh_cuda_ctx *ctx = g->ctx;
    int C = g->sh.cfg.channels, NH = g->sh.cfg.num_heads, V = g->sh.cfg.vocab_size,
        Vp = g->sh.cfg.padded_vocab_size;
    int64_t BT = (int64_t)B * T;
    int N = (int)BT;
    gpu_slot *a = &g->slots[slot];
    float *P = g->params;
    if (g->sh.spec.has_embedding) {
        CK(lh_cuda_upload(a->tokens, tokens, (size_t)BT * sizeof(int32_t)));
        CK(lh_cuda_encoder_forward(ctx, a->saved.input, a->tokens, wte(g, P), wpe(g, P), B, T, C));
    } else {
        CK(lh_cuda_upload(a->saved.input, input, (size_t)(BT * C) * sizeof(float)));
    }
    if (g->sh.spec.has_head && targets) CK(lh_cuda_upload(a->targets, targets, (size_t)BT * sizeof(int32_t)));

    const float *residual = a->saved.input;
    for (int i = 0; i < g->sh.spec.layer_count; i++) {
        lh_layer_acts *la = &a->saved.layers[i];
        CK(lh_cuda_layernorm_forward(ctx, la->ln1, la->ln1_mean, la->ln1_rstd, residual, layer_tensor(g, P, i, LH_LN1W),
                                     layer_tensor(g, P, i, LH_LN1B), N, C));
        CK(lh_cuda_matmul_forward(ctx, la->qkv, la->ln1, layer_tensor(g, P, i, LH_QKVW), layer_tensor(g, P, i, LH_QKVB),
                                  N, C, 3 * C));
        CK(lh_cuda_attention_forward(ctx, la->atty, la->att, la->qkv, B, T, C, NH));
        CK(lh_cuda_matmul_forward(ctx, g->scratch.proj, la->atty, layer_tensor(g, P, i, LH_ATTPROJW),
                                  layer_tensor(g, P, i, LH_ATTPROJB), N, C, C));
        CK(lh_cuda_residual_forward(ctx, la->residual2, residual, g->scratch.proj, BT * C));
        CK(lh_cuda_layernorm_forward(ctx, la->ln2, la->ln2_mean, la->ln2_rstd, la->residual2,
                                     layer_tensor(g, P, i, LH_LN2W), layer_tensor(g, P, i, LH_LN2B), N, C));
        CK(lh_cuda_matmul_forward(ctx, la->fch, la->ln2, layer_tensor(g, P, i, LH_FCW), layer_tensor(g, P, i, LH_FCB), N,
                                  C, 4 * C));
        CK(lh_cuda_gelu_forward(ctx, la->fch_gelu, la->fch, BT * 4 * C));
        CK(lh_cuda_matmul_forward(ctx, g->scratch.proj, la->fch_gelu, layer_tensor(g, P, i, LH_FCPROJW),
                                  layer_tensor(g, P, i, LH_FCPROJB), N, 4 * C, C));
        CK(lh_cuda_residual_forward(ctx, la->residual3, la->residual2, g->scratch.proj, BT * C));
        residual = la->residual3;
    }
    if (g->sh.spec.has_head) {
        CK(lh_cuda_layernorm_forward(ctx, a->saved.lnf, a->saved.lnf_mean, a->saved.lnf_rstd, residual, lnfw(g, P),
                                     lnfb(g, P), N, C));
        CK(lh_cuda_matmul_forward(ctx, g->scratch.logits, a->saved.lnf, wte(g, P), NULL, N, C, Vp));
        if (targets)
            CK(lh_cuda_softmax_crossentropy_forward(ctx, a->saved.probs, a->saved.losses, g->scratch.logits, a->targets,
                                                    BT, V, Vp));
        CK(lh_cuda_sync(ctx));
        if (targets) CK(lh_cuda_download(losses, a->saved.losses, (size_t)BT * sizeof(float)));
    } else {
        CK(lh_cuda_sync(ctx));
        CK(lh_cuda_download(output, residual, (size_t)(BT * C) * sizeof(float)));
    }
    return LH_OK;
}

lh_status lh_stage_gpu_backward(lh_stage_gpu *g, int slot, int B, int T, const float *d_output, float grad_scale,
                                float *d_input)
{
    lh_cuda_ctx *ctx = g->ctx;
    int C = g->sh.cfg.channels, NH = g->sh.cfg.num_heads, V = g->sh.cfg.vocab_size,
        Vp = g->sh.cfg.padded_vocab_size;
    int64_t BT = (int64_t)B * T;
    int N = (int)BT, L = g->sh.spec.layer_count;
    gpu_slot *a = &g->slots[slot];
    float *P = g->params, *G = g->grads, *dres = g->scratch.d_residual;
    const float *last_residual = L > 0 ? a->saved.layers[L - 1].residual3 : a->saved.input;

    if (g->sh.spec.has_head) {
        float *dlogits = g->scratch.logits; /* the logits are not needed any more */
        CK(lh_cuda_softmax_crossentropy_backward(ctx, dlogits, a->saved.probs, a->targets, grad_scale / (float)BT, BT,
                                                 V, Vp));
        CK(lh_cuda_matmul_backward(ctx, g->scratch.d_ln, wte(g, G), NULL, dlogits, a->saved.lnf, wte(g, P), N, C, Vp));
        CK(lh_cuda_zero(dres, (size_t)(BT * C) * sizeof(float)));
        CK(lh_cuda_layernorm_backward(ctx, dres, lnfw(g, G), lnfb(g, G), g->scratch.d_ln, last_residual, lnfw(g, P),
                                      a->saved.lnf_mean, a->saved.lnf_rstd, N, C));
    } else {
        CK(lh_cuda_upload(dres, d_output, (size_t)(BT * C) * sizeof(float)));
    }

    for (int i = L - 1; i >= 0; i--) {
        lh_layer_acts *la = &a->saved.layers[i];
        const float *residual = i > 0 ? a->saved.layers[i - 1].residual3 : a->saved.input;
        /* residual3 = residual2 + fcproj(gelu(fc(ln2(residual2)))): dres is d residual3 */
        CK(lh_cuda_matmul_backward(ctx, g->scratch.d_fch_gelu, layer_tensor(g, G, i, LH_FCPROJW),
                                   layer_tensor(g, G, i, LH_FCPROJB), dres, la->fch_gelu,
                                   layer_tensor(g, P, i, LH_FCPROJW), N, 4 * C, C));
        CK(lh_cuda_gelu_backward(ctx, g->scratch.d_fch, la->fch, g->scratch.d_fch_gelu, BT * 4 * C));
        CK(lh_cuda_matmul_backward(ctx, g->scratch.d_ln, layer_tensor(g, G, i, LH_FCW), layer_tensor(g, G, i, LH_FCB),
                                   g->scratch.d_fch, la->ln2, layer_tensor(g, P, i, LH_FCW), N, C, 4 * C));
        CK(lh_cuda_layernorm_backward(ctx, dres, layer_tensor(g, G, i, LH_LN2W), layer_tensor(g, G, i, LH_LN2B),
                                      g->scratch.d_ln, la->residual2, layer_tensor(g, P, i, LH_LN2W), la->ln2_mean,
                                      la->ln2_rstd, N, C));
        /* dres is now d residual2; residual2 = residual + attproj(attention(qkv(ln1(residual)))) */
        CK(lh_cuda_matmul_backward(ctx, g->scratch.d_atty, layer_tensor(g, G, i, LH_ATTPROJW),
                                   layer_tensor(g, G, i, LH_ATTPROJB), dres, la->atty,
                                   layer_tensor(g, P, i, LH_ATTPROJW), N, C, C));
        CK(lh_cuda_attention_backward(ctx, g->scratch.d_qkv, g->scratch.d_att_pre, g->scratch.d_atty, la->qkv, la->att,
                                      B, T, C, NH));
        CK(lh_cuda_matmul_backward(ctx, g->scratch.d_ln, layer_tensor(g, G, i, LH_QKVW), layer_tensor(g, G, i, LH_QKVB),
                                   g->scratch.d_qkv, la->ln1, layer_tensor(g, P, i, LH_QKVW), N, C, 3 * C));
        CK(lh_cuda_layernorm_backward(ctx, dres, layer_tensor(g, G, i, LH_LN1W), layer_tensor(g, G, i, LH_LN1B),
                                      g->scratch.d_ln, residual, layer_tensor(g, P, i, LH_LN1W), la->ln1_mean,
                                      la->ln1_rstd, N, C));
    }
    if (g->sh.spec.has_embedding) {
        CK(lh_cuda_encoder_backward(ctx, wte(g, G), wpe(g, G), dres, a->tokens, B, T, C));
        return lh_cuda_sync(ctx);
    }
    CK(lh_cuda_sync(ctx));
    return lh_cuda_download(d_input, dres, (size_t)(BT * C) * sizeof(float));
}

lh_status lh_compute_device_bind(lh_compute_device device, int local_rank)
{
    if (device != LH_DEVICE_CUDA) return LH_OK;
    int count = lh_cuda_device_count();
    if (count == 0)
        return lh_fail(LH_ERR_UNSUPPORTED, "device \"cuda\" requested but no CUDA device was found; use \"cpu\"");
    return lh_cuda_set_device(local_rank % count);
}

lh_status lh_compute_device_current(int *index) { return lh_cuda_get_device(index); }

#else /* no CUDA in this build */

lh_status lh_compute_device_bind(lh_compute_device device, int local_rank)
{
    (void)local_rank;
    if (device != LH_DEVICE_CUDA) return LH_OK;
    return lh_fail(LH_ERR_UNSUPPORTED, "device \"cuda\" requested but this build has no CUDA support (rebuild "
                                       "with -DLONGHAUL_CUDA=ON where nvcc is installed); use \"cpu\"");
}

lh_status lh_compute_device_current(int *index)
{
    *index = -1;
    return lh_fail(LH_ERR_UNSUPPORTED, "this build has no CUDA support: no current CUDA device");
}

lh_status lh_stage_gpu_create(const lh_stage_gpu_shape *shape, lh_stage_gpu **out)
{
    *out = NULL;
    return lh_fail(LH_ERR_UNSUPPORTED,
                   "stage: device \"cuda\" requested but this build has no CUDA support (rebuild with "
                   "-DLONGHAUL_CUDA=ON where nvcc is installed); use \"cpu\"");
}

void lh_stage_gpu_free(lh_stage_gpu *gpu) { (void)gpu; }

static lh_status no_cuda(void) { return lh_fail(LH_ERR_INTERNAL, "stage: no CUDA support in this build"); }

lh_status lh_stage_gpu_upload_params(lh_stage_gpu *gpu, const float *params) { return no_cuda(); }
lh_status lh_stage_gpu_upload_grads(lh_stage_gpu *gpu, const float *grads) { return no_cuda(); }
lh_status lh_stage_gpu_download_grads(lh_stage_gpu *gpu, float *grads) { return no_cuda(); }
float *lh_stage_gpu_grads(lh_stage_gpu *gpu) { return NULL; }
lh_status lh_stage_gpu_forward(lh_stage_gpu *gpu, int slot, int B, int T, const int32_t *tokens, const float *input,
                               const int32_t *targets, float *output, float *losses)
{
    return no_cuda();
}
lh_status lh_stage_gpu_backward(lh_stage_gpu *gpu, int slot, int B, int T, const float *d_output, float grad_scale,
                                float *d_input)
{
    return no_cuda();
}
lh_status lh_stage_gpu_download_logits(lh_stage_gpu *gpu, int64_t rows, float *logits) { return no_cuda(); }

#endif
