/*
 * KV-cache decoding and sampling (see lh_generate.h).  The cached step reuses
 * the CPU layers with N = 1 row, and computes attention for the new query
 * against the cached keys/values in the same order as the full forward, so
 * its logits match lh_stage_forward's to float rounding (tested).
 *
 * Sampling:  Top-k uses a partial selection over a copy of
 * the logits (O(V k) worst case, k is small in practice) and the softmax is
 * computed in double over the kept tokens only, so a large temperature or a
 * tiny k cannot produce a zero or non-finite normaliser.
 */
#include "lh_generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lh_layers.h"
#include "lh_math.h"

/* ---- KV cache ---- */

struct lh_kv_cache {
    lh_stage *stage;
    int first_layer, L, C, NH, maxT, V, Vp, length; /* L: the stage's own layers */
    int has_embedding, has_head;
    float *keys, *values; /* (L, maxT, C) each */
    float *buffer;        /* the per-step scratch below */
    float *x, *ln, *stats, *qkv, *y, *proj, *fch, *fch_gelu, *att, *logits;
};

lh_status lh_kv_cache_create(lh_stage *stage, lh_kv_cache **out)
{
    *out = NULL;
    const lh_stage_spec *spec = lh_stage_get_spec(stage);
    const lh_model_config *c = lh_stage_config(stage);
    lh_kv_cache *k = calloc(1, sizeof *k);
    if (!k) return lh_fail(LH_ERR_NOMEM, "kv cache: out of memory");
    k->stage = stage;
    k->first_layer = spec->first_layer;
    k->L = spec->layer_count;
    k->has_embedding = spec->has_embedding;
    k->has_head = spec->has_head;
    k->C = c->channels;
    k->NH = c->num_heads;
    k->maxT = c->max_seq_len;
    k->V = c->vocab_size;
    k->Vp = c->padded_vocab_size;
    int64_t kv = (int64_t)(k->L > 0 ? k->L : 1) * k->maxT * k->C, C = k->C;
    int64_t scratch = C /* x */ + C /* ln */ + 2 /* mean, rstd */ + 3 * C + C + C + 4 * C + 4 * C + k->maxT + k->Vp;
    k->keys = malloc((size_t)kv * sizeof(float));
    k->values = malloc((size_t)kv * sizeof(float));
    k->buffer = calloc((size_t)scratch, sizeof(float));
    if (!k->keys || !k->values || !k->buffer) {
        int positions = k->maxT;
        lh_kv_cache_free(k);
        return lh_fail(LH_ERR_NOMEM, "kv cache: out of memory for %d positions", positions);
    }
    float *p = k->buffer;
    k->x = p; p += C;
    k->ln = p; p += C;
    k->stats = p; p += 2;
    k->qkv = p; p += 3 * C;
    k->y = p; p += C;
    k->proj = p; p += C;
    k->fch = p; p += 4 * C;
    k->fch_gelu = p; p += 4 * C;
    k->att = p; p += k->maxT;
    k->logits = p;
    *out = k;
    return LH_OK;
}

void lh_kv_cache_free(lh_kv_cache *k)
{
    if (!k) return;
    free(k->keys);
    free(k->values);
    free(k->buffer);
    free(k);
}

void lh_kv_cache_reset(lh_kv_cache *k) { k->length = 0; }

int lh_kv_cache_length(const lh_kv_cache *k) { return k->length; }

static float dot(const float *a, const float *b, int n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

/* the same 8-lane sum as lh_layers.c's softmax, so both paths round alike */
static float sum8(const float *a, int n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j];
    float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) sum += a[i];
    return sum;
}

lh_status lh_kv_cache_step_stage(lh_kv_cache *k, int32_t token, const float *input, float *output,
                                 const float **logits)
{
    if (k->length >= k->maxT)
        return lh_fail(LH_ERR_CAPACITY, "kv cache: full at the model's %d positions", k->maxT);
    if (k->has_embedding && (token < 0 || token >= k->V))
        return lh_fail(LH_ERR_INVALID_ARG, "kv cache: token %d outside the vocabulary [0, %d)", token, k->V);
    if (!k->has_embedding && !input) return lh_fail(LH_ERR_INVALID_ARG, "kv cache: a later stage needs its input row");
    if (k->has_head ? !logits : !output)
        return lh_fail(LH_ERR_INVALID_ARG, "kv cache: %s is NULL", k->has_head ? "logits" : "output");
    lh_stage *s = k->stage;
    int C = k->C, NH = k->NH, hs = C / NH, pos = k->length;
    float scale = 1.0f / sqrtf((float)hs);
    if (k->has_embedding) {
        const float *wte = lh_stage_wte(s, 0) + (int64_t)token * C, *wpe = lh_stage_wpe(s, 0) + (int64_t)pos * C;
        for (int c = 0; c < C; c++) k->x[c] = wte[c] + wpe[c];
    } else {
        memcpy(k->x, input, (size_t)C * sizeof(float));
    }
    for (int i = 0; i < k->L; i++) {
        int l = k->first_layer + i;
        float *(*w)(lh_stage *, int, lh_layer_tensor, int) = lh_stage_layer_tensor;
        lh_layernorm_forward(k->ln, k->stats, k->stats + 1, k->x, w(s, l, LH_LN1W, 0), w(s, l, LH_LN1B, 0), 1, C);
        lh_matmul_forward(k->qkv, k->ln, w(s, l, LH_QKVW, 0), w(s, l, LH_QKVB, 0), 1, C, 3 * C);
        float *keys = k->keys + (int64_t)i * k->maxT * C, *values = k->values + (int64_t)i * k->maxT * C;
        memcpy(keys + (int64_t)pos * C, k->qkv + C, (size_t)C * sizeof(float));
        memcpy(values + (int64_t)pos * C, k->qkv + 2 * C, (size_t)C * sizeof(float));
        for (int h = 0; h < NH; h++) {
            const float *q = k->qkv + h * hs;
            float maxval = -INFINITY;
            for (int t2 = 0; t2 <= pos; t2++) {
                k->att[t2] = dot(q, keys + (int64_t)t2 * C + h * hs, hs) * scale;
                if (k->att[t2] > maxval) maxval = k->att[t2];
            }
            for (int t2 = 0; t2 <= pos; t2++) k->att[t2] = lh_expf(k->att[t2] - maxval);
            float inv = 1.0f / sum8(k->att, pos + 1);
            float *y = k->y + h * hs;
            for (int j = 0; j < hs; j++) y[j] = 0.0f;
            for (int t2 = 0; t2 <= pos; t2++) {
                float a = k->att[t2] * inv;
                const float *v = values + (int64_t)t2 * C + h * hs;
                for (int j = 0; j < hs; j++) y[j] += a * v[j];
            }
        }
        lh_matmul_forward(k->proj, k->y, w(s, l, LH_ATTPROJW, 0), w(s, l, LH_ATTPROJB, 0), 1, C, C);
        for (int c = 0; c < C; c++) k->x[c] += k->proj[c];
        lh_layernorm_forward(k->ln, k->stats, k->stats + 1, k->x, w(s, l, LH_LN2W, 0), w(s, l, LH_LN2B, 0), 1, C);
        lh_matmul_forward(k->fch, k->ln, w(s, l, LH_FCW, 0), w(s, l, LH_FCB, 0), 1, C, 4 * C);
        lh_gelu_forward(k->fch_gelu, k->fch, 4 * C);
        lh_matmul_forward(k->proj, k->fch_gelu, w(s, l, LH_FCPROJW, 0), w(s, l, LH_FCPROJB, 0), 1, 4 * C, C);
        for (int c = 0; c < C; c++) k->x[c] += k->proj[c];
    }
    k->length = pos + 1;
    if (!k->has_head) {
        memcpy(output, k->x, (size_t)C * sizeof(float));
        return LH_OK;
    }
    lh_layernorm_forward(k->ln, k->stats, k->stats + 1, k->x, lh_stage_lnfw(s, 0), lh_stage_lnfb(s, 0), 1, C);
    lh_matmul_forward(k->logits, k->ln, lh_stage_wte(s, 0), NULL, 1, C, k->Vp);
    *logits = k->logits;
    return LH_OK;
}

lh_status lh_kv_cache_step(lh_kv_cache *k, int32_t token, const float **logits)
{
    if (!k->has_embedding || !k->has_head)
        return lh_fail(LH_ERR_INVALID_ARG, "kv cache: token-to-logits steps need a whole-model stage");
    return lh_kv_cache_step_stage(k, token, NULL, NULL, logits);
}

/* ---- sampling ---- */

static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int32_t lh_sample_token(const float *logits, int V, const lh_sampling *sp, uint64_t *rng)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (sp->temperature <= 0 || sp->top_k == 1) return best;
    int k = sp->top_k > 0 && sp->top_k < V ? sp->top_k : V;
    /* threshold = k-th largest logit (count ties in order of id) */
    int *kept = malloc((size_t)k * sizeof(int));
    if (!kept) return best;
    int n = 0;
    if (k == V) {
        for (int i = 0; i < V; i++) kept[n++] = i;
    } else {
        /* insertion into a small sorted list of the k largest */
        for (int i = 0; i < V; i++) {
            if (n == k && logits[i] <= logits[kept[n - 1]]) continue;
            int pos = n < k ? n++ : k - 1;
            while (pos > 0 && logits[kept[pos - 1]] < logits[i]) {
                kept[pos] = kept[pos - 1];
                pos--;
            }
            kept[pos] = i;
        }
    }
    double maxv = logits[best], total = 0;
    for (int j = 0; j < n; j++) total += exp(((double)logits[kept[j]] - maxv) / sp->temperature);
    double u = (next_u64(rng) >> 11) * 0x1.0p-53 * total, acc = 0;
    int32_t pick = kept[n - 1];
    for (int j = 0; j < n; j++) {
        acc += exp(((double)logits[kept[j]] - maxv) / sp->temperature);
        if (u < acc) {
            pick = kept[j];
            break;
        }
    }
    free(kept);
    return pick;
}

lh_status lh_generate(lh_stage *s, int32_t *tokens, size_t *length, size_t count, const lh_sampling *sp,
                      int (*on_token)(int32_t, void *), void *user)
{
    const lh_stage_spec *spec = lh_stage_get_spec(s);
    const lh_model_config *c = lh_stage_config(s);
    if (!spec->has_embedding || !spec->has_head || spec->layer_count != c->num_layers)
        return lh_fail(LH_ERR_INVALID_ARG, "generate: needs a whole-model stage");
    if (*length < 1) return lh_fail(LH_ERR_INVALID_ARG, "generate: needs at least one context token");
    int max_seq = lh_stage_max_seq(s);
    uint64_t rng = sp->seed;
    lh_status st = LH_OK;
    /* the KV cache serves while the whole context fits the model's positions */
    lh_kv_cache *cache = NULL;
    const float *row = NULL;
    if (*length <= (size_t)c->max_seq_len && lh_kv_cache_create(s, &cache) == LH_OK)
        for (size_t i = 0; i < *length && !st; i++) st = lh_kv_cache_step(cache, tokens[i], &row);
    for (size_t i = 0; i < count && !st; i++) {
        size_t len = *length;
        if (!cache) {
            int T = len < (size_t)max_seq ? (int)len : max_seq;
            if ((st = lh_stage_forward(s, 0, 1, T, tokens + (len - (size_t)T), NULL, NULL, NULL, NULL))) break;
            row = lh_stage_logits(s) + (int64_t)(T - 1) * c->padded_vocab_size;
        }
        int32_t next = lh_sample_token(row, c->vocab_size, sp, &rng);
        tokens[len] = next;
        *length = len + 1;
        if (on_token && on_token(next, user)) break;
        if (cache && i + 1 < count) {
            if (lh_kv_cache_length(cache) < c->max_seq_len) {
                st = lh_kv_cache_step(cache, next, &row);
            } else { /* context full: slide the window with full forwards from now on */
                lh_kv_cache_free(cache);
                cache = NULL;
            }
        }
    }
    lh_kv_cache_free(cache);
    return st;
}
