/*
 * The local backend: replicas and slots inside this process.
 *
 * Why it shares one stage between replicas: in one process the replicas run
 * on the same thread (the server's scheduler), so separate weight copies
 * would cost memory and buy nothing; what a replica means here is a separate
 * set of slots that routing balances over, exactly the shape the MPI pipeline
 * backend has.  Each slot owns an lh_kv_cache, so a decode step costs one
 * token row through the model per slot, and the logits pointer a slot returns
 * stays valid until that slot is stepped again (each cache has its own logits
 * buffer), which is the contract lh_serve_backend promises.
 */
#include <stdlib.h>
#include <string.h>

#include "lh_generate.h"
#include "lh_serve.h"

typedef struct local_backend {
    lh_stage *stage;
    int replicas, slots;
    lh_kv_cache **caches; /* replicas * slots */
} local_backend;

static void local_destroy(void *ctx)
{
    local_backend *b = ctx;
    if (!b) return;
    if (b->caches)
        for (int i = 0; i < b->replicas * b->slots; i++) lh_kv_cache_free(b->caches[i]);
    free(b->caches);
    free(b);
}

static lh_status check_slot(const local_backend *b, int replica, int slot)
{
    if (replica < 0 || replica >= b->replicas || slot < 0 || slot >= b->slots)
        return lh_fail(LH_ERR_INVALID_ARG, "local backend: no slot %d of replica %d (%d replicas x %d slots)", slot,
                       replica, b->replicas, b->slots);
    return LH_OK;
}

static lh_status local_prefill(void *ctx, int replica, int slot, const int32_t *prompt, int n, const float **logits)
{
    local_backend *b = ctx;
    lh_status st = check_slot(b, replica, slot);
    if (st) return st;
    if (n < 1) return lh_fail(LH_ERR_INVALID_ARG, "local backend: empty prompt");
    lh_kv_cache *cache = b->caches[replica * b->slots + slot];
    lh_kv_cache_reset(cache);
    for (int i = 0; i < n; i++)
        if ((st = lh_kv_cache_step(cache, prompt[i], logits)))
            return lh_fail_prefix(st, "prefill of replica %d slot %d at position %d: ", replica, slot, i);
    return LH_OK;
}

static lh_status local_decode(void *ctx, int replica, int n, const int *slots, const int32_t *tokens,
                              const float **rows)
{
    local_backend *b = ctx;
    for (int i = 0; i < n; i++) {
        lh_status st = check_slot(b, replica, slots[i]);
        if (st) return st;
        lh_kv_cache *cache = b->caches[replica * b->slots + slots[i]];
        if ((st = lh_kv_cache_step(cache, tokens[i], &rows[i])))
            return lh_fail_prefix(st, "decode of replica %d slot %d: ", replica, slots[i]);
    }
    return LH_OK;
}

static void local_release(void *ctx, int replica, int slot)
{
    local_backend *b = ctx;
    if (check_slot(b, replica, slot) == LH_OK) lh_kv_cache_reset(b->caches[replica * b->slots + slot]);
}

lh_status lh_serve_local_create(lh_stage *stage, int replicas, int slots, lh_serve_backend *out)
{
    memset(out, 0, sizeof *out);
    if (!stage) return lh_fail(LH_ERR_INVALID_ARG, "local backend: no model");
    if (replicas < 1 || replicas > 1024 || slots < 1 || slots > 4096)
        return lh_fail(LH_ERR_INVALID_ARG, "local backend: %d replicas x %d slots (need 1..1024 x 1..4096)",
                       replicas, slots);
    const lh_model_config *c = lh_stage_config(stage);
    local_backend *b = calloc(1, sizeof *b);
    if (!b) return lh_fail(LH_ERR_NOMEM, "local backend: out of memory");
    b->stage = stage;
    b->replicas = replicas;
    b->slots = slots;
    b->caches = calloc((size_t)replicas * (size_t)slots, sizeof *b->caches);
    if (!b->caches) {
        local_destroy(b);
        return lh_fail(LH_ERR_NOMEM, "local backend: out of memory");
    }
    for (int i = 0; i < replicas * slots; i++) {
        lh_status st = lh_kv_cache_create(stage, &b->caches[i]);
        if (st) {
            local_destroy(b);
            return lh_fail_prefix(st, "local backend: slot %d: ", i);
        }
    }
    out->ctx = b;
    out->replicas = replicas;
    out->slots_per_replica = slots;
    out->vocab_size = c->vocab_size;
    out->context_length = c->max_seq_len;
    out->prefill = local_prefill;
    out->decode = local_decode;
    out->release = local_release;
    out->destroy = local_destroy;
    return LH_OK;
}

void lh_serve_backend_free(lh_serve_backend *backend)
{
    if (!backend) return;
    if (backend->destroy && backend->ctx) backend->destroy(backend->ctx);
    memset(backend, 0, sizeof *backend);
}
