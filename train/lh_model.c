/*
 * GPT-2 stages: parameter layout, activations, forward/backward orchestration
 * and AdamW (the contract is in lh_model.h; the layer math in lh_layers.c).
 *
 * Memory plan.  Parameters, gradients and the two AdamW moments are four flat
 * buffers of identical layer-major layout, so every per-parameter operation is
 * one loop and every range the engine ships is contiguous.  Activations that
 * backward needs are kept per slot (one set per in-flight micro-batch); values
 * backward does not need (the projection outputs before the residual add, the
 * logits) and all activation GRADIENTS live in one shared scratch set, because
 * backward walks the layers one at a time and only ever needs the gradient of
 * the current residual stream plus one layer's temporaries.  Residual
 * connections are identities, so a single running buffer `d_residual` carries
 * the residual-stream gradient through the whole backward pass.  How a slot
 * and the scratch are carved into tensors is lh_model_layout.h, shared with
 * the device half so that both run on the same plan.
 *
 * Devices.  A CUDA stage keeps this file's host half (parameters, gradients,
 * moments, segments, argument checks, slot bookkeeping) and hands the math to
 * its device half in lh_model_cuda.c; the flags in `struct lh_stage` record
 * which copy is newer, following the rules in lh_model.h ("Devices").  The
 * host activation buffers are not allocated for a CUDA stage.
 */
#include "lh_model.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "lh_layers.h"
#include "lh_math.h"
#include "lh_model_cuda.h"
#include "lh_model_layout.h"

/* ---- shapes ---- */

int64_t lh_layer_tensor_floats(int channels, lh_layer_tensor which)
{
    int64_t C = channels;
    switch (which) {
    case LH_LN1W: case LH_LN1B: case LH_ATTPROJB: case LH_LN2W: case LH_LN2B: case LH_FCPROJB: return C;
    case LH_QKVW: return 3 * C * C;
    case LH_QKVB: return 3 * C;
    case LH_ATTPROJW: return C * C;
    case LH_FCW: case LH_FCPROJW: return 4 * C * C;
    case LH_FCB: return 4 * C;
    default: return 0;
    }
}

int64_t lh_layer_tensor_offset(int channels, lh_layer_tensor which)
{
    int64_t off = 0;
    for (int t = 0; t < (int)which; t++) off += lh_layer_tensor_floats(channels, (lh_layer_tensor)t);
    return off;
}

int64_t lh_layer_param_floats(int channels)
{
    return 12 * (int64_t)channels * channels + 13 * (int64_t)channels;
}

int64_t lh_model_param_count(const lh_model_config *c)
{
    int64_t C = c->channels;
    return ((int64_t)c->padded_vocab_size + c->max_seq_len) * C + c->num_layers * lh_layer_param_floats(c->channels) +
           2 * C;
}

lh_status lh_model_config_check(lh_model_config *c)
{
    if (!c) return lh_fail(LH_ERR_INVALID_ARG, "model config: NULL");
    /* Bounds keep every size product (Vp*C, L*12C^2, B*NH*T*T) far from int64 overflow. */
    if (c->max_seq_len < 1 || c->max_seq_len > 65536)
        return lh_fail(LH_ERR_INVALID_ARG, "model config: max_seq_len must be in [1, 65536], got %d", c->max_seq_len);
    if (c->vocab_size < 1 || c->vocab_size > (1 << 24))
        return lh_fail(LH_ERR_INVALID_ARG, "model config: vocab_size must be in [1, 16777216], got %d", c->vocab_size);
    if (c->padded_vocab_size == 0) c->padded_vocab_size = (c->vocab_size + 127) / 128 * 128;
    if (c->padded_vocab_size < c->vocab_size || c->padded_vocab_size > (1 << 24))
        return lh_fail(LH_ERR_INVALID_ARG, "model config: padded_vocab_size %d must be in [vocab_size %d, 16777216]",
                       c->padded_vocab_size, c->vocab_size);
    if (c->num_layers < 1 || c->num_layers > 1024)
        return lh_fail(LH_ERR_INVALID_ARG, "model config: num_layers must be in [1, 1024], got %d", c->num_layers);
    if (c->channels < 1 || c->channels > 65536)
        return lh_fail(LH_ERR_INVALID_ARG, "model config: channels must be in [1, 65536], got %d", c->channels);
    if (c->num_heads < 1 || c->num_heads > c->channels || c->channels % c->num_heads != 0)
        return lh_fail(LH_ERR_INVALID_ARG, "model config: num_heads %d must divide channels %d", c->num_heads,
                       c->channels);
    return LH_OK;
}

lh_stage_spec lh_stage_spec_whole(const lh_model_config *config)
{
    lh_stage_spec s = {0, config->num_layers, 1, 1};
    return s;
}

/* ---- the stage ---- */

/* One activation slot: its bookkeeping, and the tensors of lh_model_layout.h in one buffer. */
typedef struct slot_acts {
    int B, T;        /* shape of the saved forward; 0 = nothing saved */
    int has_targets; /* the forward computed probs/loss, so backward may run */
    float *buffer;
    int32_t *tokens, *targets; /* (B,T) copies: embedding backward, loss backward */
    lh_slot_acts saved;        /* pointers into buffer */
} slot_acts;

/* A range of parameters with one weight-decay setting. */
typedef struct param_segment {
    int64_t offset, count;
    int decay;
} param_segment;

/* Which copy of a CUDA stage's gradients is newer (see lh_model.h, "Devices"). */
enum {
    GRADS_SYNCED = 0, /* host == device (after a backward) */
    GRADS_ZERO,       /* host is zero; the device accumulator must be cleared before the next backward */
    GRADS_HOST_NEWER  /* the host may have been written; upload it before the next backward */
};

struct lh_stage {
    lh_model_config cfg;
    lh_stage_spec spec;
    int max_B, max_T, slots;
    int64_t param_count;
    int64_t layers_offset, head_offset, wte_offset; /* floats; wte_offset -1 when none */
    float *params, *grads, *m, *v;
    param_segment *segments;
    int segment_count;
    slot_acts *acts;
    /* shared scratch (not needed across forward/backward); CPU stages only */
    float *scratch_buffer;
    lh_scratch_acts scratch; /* pointers into scratch_buffer */
    float *logits;           /* (B,T,Vp) host logits: scratch.logits, or a CUDA stage's host copy */
    /* CUDA stages only (device == LH_DEVICE_CUDA) */
    lh_compute_device device;
    lh_stage_gpu *gpu;        /* the device half */
    int gpu_params_stale;     /* host parameters may differ from the device's: upload before compute */
    int gpu_grads;            /* GRADS_* */
    int gpu_logits_pending;   /* the device holds logits of the last forward that the host lacks */
    int64_t gpu_logits_rows;  /* B*T of that forward */
    float *gpu_losses;        /* (max B*T) host copy of the per-position losses */
};

static void *zalloc_floats(int64_t n)
{
    if (n < 1) n = 1;
    return calloc((size_t)n, sizeof(float));
}

static void add_segment(lh_stage *s, int64_t offset, int64_t count, int decay)
{
    s->segments[s->segment_count++] = (param_segment){offset, count, decay};
}

const char *lh_compute_device_name(lh_compute_device device)
{
    switch (device) {
    case LH_DEVICE_CPU: return "cpu";
    case LH_DEVICE_CUDA: return "cuda";
    default: return "unknown";
    }
}

lh_status lh_stage_create(const lh_model_config *config, const lh_stage_spec *spec, int max_batch, int max_seq,
                          int slots, lh_stage **out)
{
    return lh_stage_create_on(config, spec, max_batch, max_seq, slots, LH_DEVICE_CPU, out);
}

lh_status lh_stage_create_on(const lh_model_config *config, const lh_stage_spec *spec, int max_batch, int max_seq,
                             int slots, lh_compute_device device, lh_stage **out)
{
    *out = NULL;
    if (device != LH_DEVICE_CPU && device != LH_DEVICE_CUDA)
        return lh_fail(LH_ERR_INVALID_ARG, "stage: unknown device %d (use LH_DEVICE_CPU or LH_DEVICE_CUDA)",
                       (int)device);
    lh_model_config cfg = *config;
    lh_status st = lh_model_config_check(&cfg);
    if (st) return st;
    if (spec->first_layer < 0 || spec->layer_count < 0 || spec->first_layer + spec->layer_count > cfg.num_layers)
        return lh_fail(LH_ERR_INVALID_ARG, "stage: layers [%d, %d) outside the model's %d layers", spec->first_layer,
                       spec->first_layer + spec->layer_count, cfg.num_layers);
    if (spec->layer_count == 0 && !spec->has_embedding && !spec->has_head)
        return lh_fail(LH_ERR_INVALID_ARG, "stage: owns no layers, no embedding and no head");
    if (max_batch < 1 || max_batch > 65536)
        return lh_fail(LH_ERR_INVALID_ARG, "stage: max_batch must be in [1, 65536], got %d", max_batch);
    if (max_seq < 1 || max_seq > cfg.max_seq_len)
        return lh_fail(LH_ERR_INVALID_ARG, "stage: max_seq must be in [1, max_seq_len %d], got %d", cfg.max_seq_len,
                       max_seq);
    if ((int64_t)max_batch * max_seq > (1 << 24))
        return lh_fail(LH_ERR_INVALID_ARG, "stage: max_batch x max_seq = %lld exceeds 16777216 positions",
                       (long long)max_batch * max_seq);
    if (slots < 1 || slots > 1024) return lh_fail(LH_ERR_INVALID_ARG, "stage: slots must be in [1, 1024], got %d", slots);

    lh_stage *s = calloc(1, sizeof *s);
    if (!s) return lh_fail(LH_ERR_NOMEM, "stage: out of memory");
    s->cfg = cfg;
    s->spec = *spec;
    s->max_B = max_batch;
    s->max_T = max_seq;
    s->slots = slots;
    s->device = device;

    int64_t C = cfg.channels, Vp = cfg.padded_vocab_size, maxT = cfg.max_seq_len;
    int64_t LP = lh_layer_param_floats(cfg.channels);
    int64_t off = 0;
    s->segments = calloc((size_t)(4 + 12 * spec->layer_count), sizeof(param_segment));
    if (!s->segments) goto nomem;
    s->wte_offset = -1;
    if (spec->has_embedding) {
        s->wte_offset = 0;
        add_segment(s, 0, Vp * C + maxT * C, 1);
        off = Vp * C + maxT * C;
    }
    s->layers_offset = off;
    for (int l = 0; l < spec->layer_count; l++)
        for (int t = 0; t < LH_LAYER_TENSORS; t++) {
            int decay = t == LH_QKVW || t == LH_ATTPROJW || t == LH_FCW || t == LH_FCPROJW;
            add_segment(s, off + l * LP + lh_layer_tensor_offset(cfg.channels, t),
                        lh_layer_tensor_floats(cfg.channels, t), decay);
        }
    off += spec->layer_count * LP;
    s->head_offset = off;
    if (spec->has_head) {
        add_segment(s, off, 2 * C, 0);
        off += 2 * C;
        if (!spec->has_embedding) {
            s->wte_offset = off;
            add_segment(s, off, Vp * C, 1);
            off += Vp * C;
        }
    }
    s->param_count = off;
    if (device == LH_DEVICE_CUDA) {
        /* the device half first: a build or machine without CUDA fails before the big host allocations */
        lh_stage_gpu_shape shape = {cfg, *spec, max_batch, max_seq, slots, off, s->layers_offset, s->head_offset,
                                    s->wte_offset};
        st = lh_stage_gpu_create(&shape, &s->gpu);
        if (st) {
            lh_stage_free(s);
            return st;
        }
        s->gpu_params_stale = 1;
        s->gpu_grads = GRADS_ZERO;
    }
    s->params = zalloc_floats(off);
    s->grads = zalloc_floats(off);
    s->m = zalloc_floats(off);
    s->v = zalloc_floats(off);
    if (!s->params || !s->grads || !s->m || !s->v) goto nomem;

    /* activations per slot */
    lh_act_dims dims = lh_act_dims_of(&cfg, spec, max_batch, max_seq);
    int64_t BT = dims.BT;
    s->acts = calloc((size_t)slots, sizeof(slot_acts));
    if (!s->acts) goto nomem;
    if (device == LH_DEVICE_CUDA) {
        /* activations live on the device; the host keeps the slots' shapes, the logits and the losses */
        s->logits = spec->has_head ? zalloc_floats(BT * Vp) : NULL;
        s->gpu_losses = zalloc_floats(BT);
        if ((spec->has_head && !s->logits) || !s->gpu_losses) goto nomem;
        *out = s;
        return LH_OK;
    }
    for (int k = 0; k < slots; k++) {
        slot_acts *a = &s->acts[k];
        a->buffer = zalloc_floats(lh_slot_floats(&dims));
        a->tokens = calloc((size_t)BT, sizeof(int32_t));
        a->targets = calloc((size_t)BT, sizeof(int32_t));
        a->saved.layers = calloc((size_t)(spec->layer_count > 0 ? spec->layer_count : 1), sizeof(lh_layer_acts));
        if (!a->buffer || !a->tokens || !a->targets || !a->saved.layers) goto nomem;
        lh_slot_layout(&dims, a->buffer, &a->saved);
    }
    s->scratch_buffer = zalloc_floats(lh_scratch_floats(&dims, 0));
    if (!s->scratch_buffer) goto nomem;
    lh_scratch_layout(&dims, 0, s->scratch_buffer, &s->scratch);
    s->logits = s->scratch.logits;
    *out = s;
    return LH_OK;
nomem:
    lh_stage_free(s);
    return lh_fail(LH_ERR_NOMEM, "stage: out of memory for %lld parameters and %d activation slot(s) of %d x %d",
                   (long long)off, slots, max_batch, max_seq);
}

void lh_stage_free(lh_stage *s)
{
    if (!s) return;
    if (s->acts)
        for (int k = 0; k < s->slots; k++) {
            free(s->acts[k].buffer);
            free(s->acts[k].tokens);
            free(s->acts[k].targets);
            free(s->acts[k].saved.layers);
        }
    free(s->acts);
    free(s->scratch_buffer);
    if (s->device == LH_DEVICE_CUDA) free(s->logits); /* a CPU stage's logits are part of its scratch */
    free(s->gpu_losses);
    lh_stage_gpu_free(s->gpu);
    free(s->segments);
    free(s->params);
    free(s->grads);
    free(s->m);
    free(s->v);
    free(s);
}

const lh_model_config *lh_stage_config(const lh_stage *s) { return &s->cfg; }
const lh_stage_spec *lh_stage_get_spec(const lh_stage *s) { return &s->spec; }
int64_t lh_stage_param_count(const lh_stage *s) { return s->param_count; }
int lh_stage_max_batch(const lh_stage *s) { return s->max_B; }
int lh_stage_max_seq(const lh_stage *s) { return s->max_T; }
lh_compute_device lh_stage_device(const lh_stage *s) { return s->device; }

/* A writable host pointer to the parameters (grads = 0) or gradients was handed out: on a CUDA stage the
 * device copy may be out of date from now on. */
static void host_written(lh_stage *s, int grads)
{
    if (!s->gpu) return;
    if (grads) s->gpu_grads = GRADS_HOST_NEWER;
    else s->gpu_params_stale = 1;
}

float *lh_stage_params(lh_stage *s)
{
    host_written(s, 0);
    return s->params;
}

float *lh_stage_grads(lh_stage *s)
{
    host_written(s, 1);
    return s->grads;
}

float *lh_stage_adam_m(lh_stage *s) { return s->m; }
float *lh_stage_adam_v(lh_stage *s) { return s->v; }
int64_t lh_stage_wte_offset(const lh_stage *s) { return s->wte_offset; }

const float *lh_stage_logits(const lh_stage *cs)
{
    /* the lazy copy updates a cache inside the stage; stages are never created const */
    lh_stage *s = (lh_stage *)cs;
    if (s->gpu && s->gpu_logits_pending && s->logits) {
        if (lh_stage_gpu_download_logits(s->gpu, s->gpu_logits_rows, s->logits)) return NULL;
        s->gpu_logits_pending = 0;
    }
    return s->logits;
}

static float *buf(lh_stage *s, int grads)
{
    host_written(s, grads);
    return grads ? s->grads : s->params;
}

float *lh_stage_layer_tensor(lh_stage *s, int layer, lh_layer_tensor which, int grads)
{
    int local = layer - s->spec.first_layer;
    if (local < 0 || local >= s->spec.layer_count || which < 0 || which >= LH_LAYER_TENSORS) return NULL;
    return buf(s, grads) + s->layers_offset + local * lh_layer_param_floats(s->cfg.channels) +
           lh_layer_tensor_offset(s->cfg.channels, which);
}

float *lh_stage_wte(lh_stage *s, int grads) { return s->wte_offset < 0 ? NULL : buf(s, grads) + s->wte_offset; }

float *lh_stage_wpe(lh_stage *s, int grads)
{
    return s->spec.has_embedding ? buf(s, grads) + (int64_t)s->cfg.padded_vocab_size * s->cfg.channels : NULL;
}

float *lh_stage_lnfw(lh_stage *s, int grads) { return s->spec.has_head ? buf(s, grads) + s->head_offset : NULL; }

float *lh_stage_lnfb(lh_stage *s, int grads)
{
    return s->spec.has_head ? buf(s, grads) + s->head_offset + s->cfg.channels : NULL;
}

/* ---- initialisation ---- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Fill n floats with normal(0, std) from a stream keyed by (seed, tensor_key). */
static void fill_normal(float *dst, int64_t n, float std, uint64_t seed, uint64_t tensor_key)
{
    uint64_t state = seed ^ (tensor_key * 0xD1B54A32D192ED03ull);
    for (int64_t i = 0; i < n; i += 2) {
        double u1 = ((splitmix64(&state) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
        double u2 = (splitmix64(&state) >> 11) * 0x1.0p-53;
        double r = sqrt(-2.0 * log(u1));
        dst[i] = (float)(std * r * cos(2.0 * M_PI * u2));
        if (i + 1 < n) dst[i + 1] = (float)(std * r * sin(2.0 * M_PI * u2));
    }
}

static void fill_const(float *dst, int64_t n, float value)
{
    for (int64_t i = 0; i < n; i++) dst[i] = value;
}

#define KEY_WTE 1u
#define KEY_WPE 2u
#define KEY_LNF 3u
#define KEY_LAYER(l, t) (1000u + (uint64_t)(l) * 64u + (uint64_t)(t))

static void init_wte(lh_stage *s, float *wte, uint64_t seed)
{
    int64_t V = s->cfg.vocab_size, Vp = s->cfg.padded_vocab_size, C = s->cfg.channels;
    fill_normal(wte, V * C, 0.02f, seed, KEY_WTE);
    memset(wte + V * C, 0, (size_t)((Vp - V) * C) * sizeof(float));
}

void lh_stage_init_params(lh_stage *s, uint64_t seed)
{
    int64_t C = s->cfg.channels;
    float residual_std = 0.02f / sqrtf(2.0f * s->cfg.num_layers);
    if (s->spec.has_embedding) {
        init_wte(s, lh_stage_wte(s, 0), seed);
        fill_normal(lh_stage_wpe(s, 0), (int64_t)s->cfg.max_seq_len * C, 0.01f, seed, KEY_WPE);
    }
    for (int l = s->spec.first_layer; l < s->spec.first_layer + s->spec.layer_count; l++)
        for (int t = 0; t < LH_LAYER_TENSORS; t++) {
            float *p = lh_stage_layer_tensor(s, l, t, 0);
            int64_t n = lh_layer_tensor_floats(s->cfg.channels, t);
            switch (t) {
            case LH_LN1W: case LH_LN2W: fill_const(p, n, 1.0f); break;
            case LH_QKVW: case LH_FCW: fill_normal(p, n, 0.02f, seed, KEY_LAYER(l, t)); break;
            case LH_ATTPROJW: case LH_FCPROJW: fill_normal(p, n, residual_std, seed, KEY_LAYER(l, t)); break;
            default: fill_const(p, n, 0.0f); break;
            }
        }
    if (s->spec.has_head) {
        fill_const(lh_stage_lnfw(s, 0), C, 1.0f);
        fill_const(lh_stage_lnfb(s, 0), C, 0.0f);
        if (!s->spec.has_embedding) init_wte(s, lh_stage_wte(s, 0), seed);
    }
    memset(s->grads, 0, (size_t)s->param_count * sizeof(float));
    memset(s->m, 0, (size_t)s->param_count * sizeof(float));
    memset(s->v, 0, (size_t)s->param_count * sizeof(float));
    if (s->gpu) {
        s->gpu_params_stale = 1;
        s->gpu_grads = GRADS_ZERO;
    }
}

/* ---- forward / backward ---- */

static lh_status check_tokens(const int32_t *tokens, int64_t n, int V, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return lh_fail(LH_ERR_INVALID_ARG, "stage: %s[%lld] = %d outside the vocabulary [0, %d)", what,
                           (long long)i, tokens[i], V);
    return LH_OK;
}

/* Upload the host parameters if they may have changed since the last upload (CUDA stages). */
static lh_status gpu_sync_params(lh_stage *s)
{
    if (!s->gpu_params_stale) return LH_OK;
    lh_status st = lh_stage_gpu_upload_params(s->gpu, s->params);
    if (!st) s->gpu_params_stale = 0;
    return st;
}

/* lh_stage_forward on the device half; the arguments are checked. */
static lh_status gpu_forward(lh_stage *s, int slot, int B, int T, const int32_t *tokens, const float *input,
                             const int32_t *targets, float *output, float *loss)
{
    int64_t BT = (int64_t)B * T;
    slot_acts *a = &s->acts[slot];
    if (!s->spec.has_head) targets = NULL;
    s->gpu_logits_pending = 0;
    lh_status st = gpu_sync_params(s);
    if (!st) st = lh_stage_gpu_forward(s->gpu, slot, B, T, tokens, input, targets, output, s->gpu_losses);
    if (st) return lh_fail_prefix(st, "stage forward (cuda)");
    if (s->spec.has_head) {
        s->gpu_logits_pending = 1;
        s->gpu_logits_rows = BT;
        if (targets) {
            double sum = 0.0; /* the CPU stage's order */
            for (int64_t i = 0; i < BT; i++) sum += s->gpu_losses[i];
            if (loss) *loss = (float)(sum / (double)BT);
            a->has_targets = 1;
        }
    }
    a->B = B;
    a->T = T;
    return LH_OK;
}

lh_status lh_stage_forward(lh_stage *s, int slot, int B, int T, const int32_t *tokens, const float *input,
                           const int32_t *targets, float *output, float *loss)
{
    if (slot < 0 || slot >= s->slots)
        return lh_fail(LH_ERR_INVALID_ARG, "stage forward: slot %d outside [0, %d)", slot, s->slots);
    if (B < 1 || B > s->max_B || T < 1 || T > s->max_T)
        return lh_fail(LH_ERR_INVALID_ARG, "stage forward: batch %d x %d exceeds the stage's %d x %d", B, T, s->max_B,
                       s->max_T);
    int C = s->cfg.channels, NH = s->cfg.num_heads, V = s->cfg.vocab_size, Vp = s->cfg.padded_vocab_size;
    int64_t BT = (int64_t)B * T;
    slot_acts *a = &s->acts[slot];
    a->B = 0;
    a->has_targets = 0;
    lh_status st;
    /* every argument is checked before any work, so both devices fail alike */
    if (s->spec.has_embedding) {
        if (!tokens) return lh_fail(LH_ERR_INVALID_ARG, "stage forward: the first stage needs tokens");
        if ((st = check_tokens(tokens, BT, V, "tokens"))) return st;
    } else if (!input) {
        return lh_fail(LH_ERR_INVALID_ARG, "stage forward: a stage after the first needs input activations");
    }
    if (s->spec.has_head && targets && (st = check_tokens(targets, BT, V, "targets"))) return st;
    if (!s->spec.has_head && !output) return lh_fail(LH_ERR_INVALID_ARG, "stage forward: output buffer is NULL");
    if (s->gpu) return gpu_forward(s, slot, B, T, tokens, input, targets, output, loss);

    if (s->spec.has_embedding) {
        memcpy(a->tokens, tokens, (size_t)BT * sizeof(int32_t));
        lh_encoder_forward(a->saved.input, tokens, lh_stage_wte(s, 0), lh_stage_wpe(s, 0), B, T, C);
    } else {
        memcpy(a->saved.input, input, (size_t)(BT * C) * sizeof(float));
    }
    if (s->spec.has_head && targets) memcpy(a->targets, targets, (size_t)BT * sizeof(int32_t));

    const float *residual = a->saved.input;
    for (int i = 0; i < s->spec.layer_count; i++) {
        int l = s->spec.first_layer + i;
        lh_layer_acts *la = &a->saved.layers[i];
        float *(*w)(lh_stage *, int, lh_layer_tensor, int) = lh_stage_layer_tensor;
        lh_layernorm_forward(la->ln1, la->ln1_mean, la->ln1_rstd, residual, w(s, l, LH_LN1W, 0), w(s, l, LH_LN1B, 0),
                             (int)BT, C);
        lh_matmul_forward(la->qkv, la->ln1, w(s, l, LH_QKVW, 0), w(s, l, LH_QKVB, 0), (int)BT, C, 3 * C);
        lh_attention_forward(la->atty, la->att, la->qkv, B, T, C, NH);
        lh_matmul_forward(s->scratch.proj, la->atty, w(s, l, LH_ATTPROJW, 0), w(s, l, LH_ATTPROJB, 0), (int)BT, C, C);
        lh_residual_forward(la->residual2, residual, s->scratch.proj, BT * C);
        lh_layernorm_forward(la->ln2, la->ln2_mean, la->ln2_rstd, la->residual2, w(s, l, LH_LN2W, 0),
                             w(s, l, LH_LN2B, 0), (int)BT, C);
        lh_matmul_forward(la->fch, la->ln2, w(s, l, LH_FCW, 0), w(s, l, LH_FCB, 0), (int)BT, C, 4 * C);
        lh_gelu_forward(la->fch_gelu, la->fch, BT * 4 * C);
        lh_matmul_forward(s->scratch.proj, la->fch_gelu, w(s, l, LH_FCPROJW, 0), w(s, l, LH_FCPROJB, 0), (int)BT,
                          4 * C, C);
        lh_residual_forward(la->residual3, la->residual2, s->scratch.proj, BT * C);
        residual = la->residual3;
    }
    if (s->spec.has_head) {
        lh_layernorm_forward(a->saved.lnf, a->saved.lnf_mean, a->saved.lnf_rstd, residual, lh_stage_lnfw(s, 0),
                             lh_stage_lnfb(s, 0), (int)BT, C);
        lh_matmul_forward(s->logits, a->saved.lnf, lh_stage_wte(s, 0), NULL, (int)BT, C, Vp);
        if (targets) {
            lh_softmax_crossentropy_forward(a->saved.probs, a->saved.losses, s->logits, a->targets, BT, V, Vp);
            double sum = 0.0;
            for (int64_t i = 0; i < BT; i++) sum += a->saved.losses[i];
            if (loss) *loss = (float)(sum / (double)BT);
            a->has_targets = 1;
        }
    } else {
        memcpy(output, residual, (size_t)(BT * C) * sizeof(float));
    }
    a->B = B;
    a->T = T;
    return LH_OK;
}

/* lh_stage_backward on the device half; the arguments are checked. */
static lh_status gpu_backward(lh_stage *s, int slot, const float *d_output, float grad_scale, float *d_input)
{
    slot_acts *a = &s->acts[slot];
    s->gpu_logits_pending = 0; /* the device logits become dlogits */
    lh_status st = gpu_sync_params(s);
    if (!st && s->gpu_grads == GRADS_ZERO) st = lh_stage_gpu_upload_grads(s->gpu, NULL);
    if (!st && s->gpu_grads == GRADS_HOST_NEWER) st = lh_stage_gpu_upload_grads(s->gpu, s->grads);
    if (!st) st = lh_stage_gpu_backward(s->gpu, slot, a->B, a->T, d_output, grad_scale, d_input);
    if (!st) st = lh_stage_gpu_download_grads(s->gpu, s->grads);
    /* after a failure the host buffer is the reference again (the device may hold part of this backward) */
    s->gpu_grads = st ? GRADS_HOST_NEWER : GRADS_SYNCED;
    return st ? lh_fail_prefix(st, "stage backward (cuda)") : LH_OK;
}

lh_status lh_stage_backward(lh_stage *s, int slot, const float *d_output, float grad_scale, float *d_input)
{
    if (slot < 0 || slot >= s->slots)
        return lh_fail(LH_ERR_INVALID_ARG, "stage backward: slot %d outside [0, %d)", slot, s->slots);
    slot_acts *a = &s->acts[slot];
    if (a->B == 0) return lh_fail(LH_ERR_INVALID_ARG, "stage backward: slot %d holds no forward pass", slot);
    if (s->spec.has_head && !a->has_targets)
        return lh_fail(LH_ERR_INVALID_ARG, "stage backward: the forward in slot %d had no targets", slot);
    if (!s->spec.has_head && !d_output) return lh_fail(LH_ERR_INVALID_ARG, "stage backward: d_output is NULL");
    if (!s->spec.has_embedding && !d_input) return lh_fail(LH_ERR_INVALID_ARG, "stage backward: d_input is NULL");
    if (s->gpu) return gpu_backward(s, slot, d_output, grad_scale, d_input);
    int B = a->B, T = a->T, C = s->cfg.channels, NH = s->cfg.num_heads, V = s->cfg.vocab_size,
        Vp = s->cfg.padded_vocab_size;
    int64_t BT = (int64_t)B * T;
    int N = (int)BT;
    float *dres = s->scratch.d_residual;
    const float *last_residual =
        s->spec.layer_count > 0 ? a->saved.layers[s->spec.layer_count - 1].residual3 : a->saved.input;

    if (s->spec.has_head) {
        float *dlogits = s->logits; /* the logits are not needed any more */
        lh_softmax_crossentropy_backward(dlogits, a->saved.probs, a->targets, grad_scale / (float)BT, BT, V, Vp);
        lh_matmul_backward(s->scratch.d_ln, lh_stage_wte(s, 1), NULL, dlogits, a->saved.lnf, lh_stage_wte(s, 0), N,
                           C, Vp);
        memset(dres, 0, (size_t)(BT * C) * sizeof(float));
        lh_layernorm_backward(dres, lh_stage_lnfw(s, 1), lh_stage_lnfb(s, 1), s->scratch.d_ln, last_residual,
                              lh_stage_lnfw(s, 0), a->saved.lnf_mean, a->saved.lnf_rstd, N, C);
    } else {
        memcpy(dres, d_output, (size_t)(BT * C) * sizeof(float));
    }

    for (int i = s->spec.layer_count - 1; i >= 0; i--) {
        int l = s->spec.first_layer + i;
        lh_layer_acts *la = &a->saved.layers[i];
        const float *residual = i > 0 ? a->saved.layers[i - 1].residual3 : a->saved.input;
        float *(*w)(lh_stage *, int, lh_layer_tensor, int) = lh_stage_layer_tensor;
        /* residual3 = residual2 + fcproj(gelu(fc(ln2(residual2)))): dres is d residual3 */
        lh_matmul_backward(s->scratch.d_fch_gelu, w(s, l, LH_FCPROJW, 1), w(s, l, LH_FCPROJB, 1), dres, la->fch_gelu,
                           w(s, l, LH_FCPROJW, 0), N, 4 * C, C);
        lh_gelu_backward(s->scratch.d_fch, la->fch, s->scratch.d_fch_gelu, BT * 4 * C);
        lh_matmul_backward(s->scratch.d_ln, w(s, l, LH_FCW, 1), w(s, l, LH_FCB, 1), s->scratch.d_fch, la->ln2,
                           w(s, l, LH_FCW, 0), N, C, 4 * C);
        lh_layernorm_backward(dres, w(s, l, LH_LN2W, 1), w(s, l, LH_LN2B, 1), s->scratch.d_ln, la->residual2,
                              w(s, l, LH_LN2W, 0), la->ln2_mean, la->ln2_rstd, N, C);
        /* dres is now d residual2; residual2 = residual + attproj(attention(qkv(ln1(residual)))) */
        lh_matmul_backward(s->scratch.d_atty, w(s, l, LH_ATTPROJW, 1), w(s, l, LH_ATTPROJB, 1), dres, la->atty,
                           w(s, l, LH_ATTPROJW, 0), N, C, C);
        lh_attention_backward(s->scratch.d_qkv, s->scratch.d_atty, la->qkv, la->att, B, T, C, NH);
        lh_matmul_backward(s->scratch.d_ln, w(s, l, LH_QKVW, 1), w(s, l, LH_QKVB, 1), s->scratch.d_qkv, la->ln1,
                           w(s, l, LH_QKVW, 0), N, C, 3 * C);
        lh_layernorm_backward(dres, w(s, l, LH_LN1W, 1), w(s, l, LH_LN1B, 1), s->scratch.d_ln, residual,
                              w(s, l, LH_LN1W, 0), la->ln1_mean, la->ln1_rstd, N, C);
    }
    if (s->spec.has_embedding)
        lh_encoder_backward(lh_stage_wte(s, 1), lh_stage_wpe(s, 1), dres, a->tokens, B, T, C);
    else
        memcpy(d_input, dres, (size_t)(BT * C) * sizeof(float));
    return LH_OK;
}

/* ---- gradients and optimizer ---- */

void lh_stage_zero_grads(lh_stage *s)
{
    memset(s->grads, 0, (size_t)s->param_count * sizeof(float));
    if (s->gpu) s->gpu_grads = GRADS_ZERO;
}

double lh_stage_grad_sumsq(const lh_stage *s)
{
    int64_t n = s->param_count;
    /* the head's wte copy is the tail of the buffer: skip it on a stage without the embedding */
    if (s->spec.has_head && !s->spec.has_embedding) n = s->wte_offset;
    const float *g = s->grads;
    double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (int64_t i = 0; i < n; i++) sum += (double)g[i] * g[i];
    return sum;
}

lh_status lh_stage_device_grads(lh_stage *s, float **device_grads)
{
    *device_grads = NULL;
    if (!s->gpu) return lh_fail(LH_ERR_INVALID_ARG, "stage: device gradients of a CPU stage");
    lh_status st = LH_OK;
    if (s->gpu_grads == GRADS_ZERO) st = lh_stage_gpu_upload_grads(s->gpu, NULL);
    if (!st && s->gpu_grads == GRADS_HOST_NEWER) st = lh_stage_gpu_upload_grads(s->gpu, s->grads);
    if (st) return lh_fail_prefix(st, "stage: device gradients");
    /* until lh_stage_device_grads_done the device copy is the newer one; a backward in between would add to it */
    s->gpu_grads = GRADS_SYNCED;
    *device_grads = lh_stage_gpu_grads(s->gpu);
    return LH_OK;
}

lh_status lh_stage_device_grads_done(lh_stage *s)
{
    if (!s->gpu) return lh_fail(LH_ERR_INVALID_ARG, "stage: device gradients of a CPU stage");
    lh_status st = lh_stage_gpu_download_grads(s->gpu, s->grads);
    return st ? lh_fail_prefix(st, "stage: copying device gradients to the host") : LH_OK;
}

void lh_stage_scale_grads(lh_stage *s, float scale)
{
    float *g = s->grads;
    int64_t n = s->param_count;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) g[i] *= scale;
    if (s->gpu) s->gpu_grads = GRADS_HOST_NEWER;
}

lh_status lh_stage_adamw_step(lh_stage *s, const lh_adamw_params *p, int64_t step)
{
    if (step < 1) return lh_fail(LH_ERR_INVALID_ARG, "adamw: step must be >= 1 (1-based), got %lld", (long long)step);
    if (!(p->beta1 >= 0 && p->beta1 < 1) || !(p->beta2 >= 0 && p->beta2 < 1) || !(p->eps > 0) || !(p->lr >= 0) ||
        !(p->weight_decay >= 0))
        return lh_fail(LH_ERR_INVALID_ARG, "adamw: need 0 <= beta1, beta2 < 1, eps > 0, lr >= 0, weight_decay >= 0");
    float bc1 = 1.0f - powf(p->beta1, (float)step);
    float bc2 = 1.0f - powf(p->beta2, (float)step);
    /* one parallel region for all segments (a fork/join per tensor costs more than small tensors' updates) */
#pragma omp parallel
    for (int k = 0; k < s->segment_count; k++) {
        const param_segment *seg = &s->segments[k];
        float wd = seg->decay ? p->weight_decay : 0.0f;
        float *w = s->params + seg->offset, *g = s->grads + seg->offset;
        float *m = s->m + seg->offset, *v = s->v + seg->offset;
        int64_t n = seg->count;
#pragma omp for schedule(static) nowait
        for (int64_t i = 0; i < n; i++)
            w[i] = lh_adamw_update(w[i], g[i], &m[i], &v[i], p->lr, p->beta1, p->beta2, p->eps, wd, bc1, bc2);
    }
    if (s->gpu) s->gpu_params_stale = 1;
    return LH_OK;
}

void lh_model_set_threads(int threads)
{
    if (threads < 1) threads = 1;
    omp_set_num_threads(threads);
    openblas_set_num_threads(1); /* the matmuls are split across OpenMP threads: lh_layers.c */
}
