/*
 * lh_generate: sampling text from a whole-model stage (what `longhaul
 * generate` runs), with a KV cache for serving.
 *
 * Incremental decoding keeps every layer's keys and values of the tokens seen
 * so far, so each new token costs one row through the model instead of a
 * forward over the whole context.  GPT-2's positions are absolute, so once the
 * context is full (max_seq_len tokens) the window cannot slide without
 * recomputing: lh_generate then falls back to a full forward over the last
 * max_seq tokens per new token.
 */
#ifndef LH_GENERATE_H
#define LH_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "lh_model.h"
#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Keys and values of every layer for up to max_seq_len positions. */
typedef struct lh_kv_cache lh_kv_cache;

/** A cache for the layers of `stage` (any stage of a split model; the stage must outlive it). */
lh_status lh_kv_cache_create(lh_stage *stage, lh_kv_cache **out);

/** Free (NULL accepted). */
void lh_kv_cache_free(lh_kv_cache *cache);

/** Forget all positions. */
void lh_kv_cache_reset(lh_kv_cache *cache);

/** Positions held. */
int lh_kv_cache_length(const lh_kv_cache *cache);

/**
 * Run `token` at position lh_kv_cache_length() through the model, append its
 * keys and values, and return a pointer to its logits (Vp floats, the first V
 * meaningful; valid until the next call).  LH_ERR_CAPACITY when the cache
 * holds max_seq_len positions already; LH_ERR_INVALID_ARG for a token outside
 * [0, V).  The logits equal those of lh_stage_forward at that position up to
 * float rounding.
 */
lh_status lh_kv_cache_step(lh_kv_cache *cache, int32_t token, const float **logits);

/**
 * The same step for any pipeline stage: the first stage takes `token`, a
 * later one `input` (its predecessor's output row, C floats); a stage without
 * the head writes its output row to `output` (C floats), the last stage
 * returns its logits.  Running every stage's step in order equals
 * lh_kv_cache_step on the whole model.  The cache keeps only the stage's own
 * layers' keys and values.
 */
lh_status lh_kv_cache_step_stage(lh_kv_cache *cache, int32_t token, const float *input, float *output,
                                 const float **logits);

/** How to pick the next token. */
typedef struct lh_sampling {
    float temperature; /* <= 0: greedy (argmax); else logits are divided by it */
    int top_k;         /* > 0: sample only among the k most likely tokens; 0: all */
    uint64_t seed;     /* random stream for sampling */
} lh_sampling;

/**
 * Pick a token from `logits` (V values): argmax when temperature <= 0, else a
 * draw from softmax(logits / temperature) restricted to the top_k largest.
 * *rng is the sampling state (advanced).  Ties in argmax go to the lower id.
 */
int32_t lh_sample_token(const float *logits, int V, const lh_sampling *sampling, uint64_t *rng);

/**
 * Append `count` sampled tokens to tokens[0..*length), which must have room
 * for *length + count ids; *length grows as tokens are produced.  Uses a KV
 * cache while the context fits the model's max_seq_len, then a full forward
 * over the last max_seq tokens (the stage's max_seq) per token.  `on_token` (may be NULL) is
 * called after each new token, e.g. to print it as it comes; returning
 * nonzero stops early.  Needs a whole-model stage with max_batch >= 1 and
 * *length >= 1 (start from an end-of-text token when there is no prompt).
 */
lh_status lh_generate(lh_stage *stage, int32_t *tokens, size_t *length, size_t count, const lh_sampling *sampling,
                      int (*on_token)(int32_t token, void *user), void *user);

#ifdef __cplusplus
}
#endif
#endif
