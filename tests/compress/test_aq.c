/*
 * Tests of the AQ-SGD codec: sender and receiver caches stay bit-identical over
 * hundreds of steps of random deltas (every storage, width, rounding and
 * grouping), a corrupted cache is detected and repaired by a full-precision
 * resend, file-backed caches survive a reopen, and malformed messages are
 * rejected without touching the cache.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lh_compress.h"
#include "lh_quant_math.h"
#include "lh_test.h"

#if LH_COMPRESS_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

enum { ROWS = 16, CH = 24, E = ROWS * CH, MAXS = 10, BATCH = 3 };

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

/* choose BATCH distinct ids */
static void pick_ids(uint64_t *ids)
{
    for (int k = 0; k < BATCH; k++) {
        uint64_t id;
        int dup;
        do {
            id = (uint64_t)(rng_uniform() * MAXS);
            dup = 0;
            for (int j = 0; j < k; j++)
                dup |= ids[j] == id;
        } while (dup);
        ids[k] = id;
    }
}

static lh_aq_config base_config(void)
{
    lh_aq_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.sample_rows = ROWS;
    cfg.channels = CH;
    cfg.max_samples = MAXS;
    cfg.storage = LH_AQ_STORE_FP32;
    cfg.quant = lh_quant_params_default(4);
    cfg.seed = 42;
    return cfg;
}

static int caches_equal(lh_aq_codec *a, lh_aq_codec *b)
{
    for (uint64_t id = 0; id < MAXS; id++) {
        if (lh_aq_has(a, id) != lh_aq_has(b, id)) return 0;
        if (lh_aq_has(a, id) != 1) continue;
        void *pa, *pb;
        size_t na, nb;
        if (lh_aq_entry_raw(a, id, &pa, &na) || lh_aq_entry_raw(b, id, &pb, &nb)) return 0;
        if (na != nb || memcmp(pa, pb, na) != 0) return 0;
        uint64_t da, db;
        if (lh_aq_digest(a, id, &da) || lh_aq_digest(b, id, &db) || da != db) return 0;
    }
    return 1;
}

/* Run `steps` steps of drifting activations through a sender/receiver pair. */
static void run_link(lh_aq_codec *snd, lh_aq_codec *rcv, float *truth, int steps, uint64_t step0)
{
    size_t cap = lh_aq_bound(snd, BATCH), len, n, n_bad;
    uint8_t *msg = malloc(cap);
    float act[BATCH * E], out[BATCH * E], ent[E];
    uint64_t ids[BATCH], got[BATCH], bad[BATCH];
    int identical = 1, outputs_match = 1, first_exact = 1;
    double err = 0, norm = 0;
    for (int step = 0; step < steps; step++) {
        pick_ids(ids);
        int fresh[BATCH];
        for (int k = 0; k < BATCH; k++) {
            fresh[k] = lh_aq_has(snd, ids[k]) == 0;
            float *t = truth + ids[k] * E;
            for (int i = 0; i < E; i++)
                t[i] += 0.05f * rng_gauss(); /* the sample's activation drifts */
            memcpy(act + k * E, t, sizeof(float) * E);
        }
        LH_ASSERT_OK(lh_aq_encode(snd, act, ids, BATCH, step0 + step, msg, cap, &len));
        LH_ASSERT_OK(lh_aq_decode(rcv, msg, len, out, BATCH, got, &n, bad, &n_bad));
        CU_ASSERT_EQUAL(n, BATCH);
        CU_ASSERT_EQUAL(n_bad, 0);
        for (int k = 0; k < BATCH; k++) {
            CU_ASSERT_EQUAL(got[k], ids[k]);
            LH_ASSERT_OK(lh_aq_get(rcv, ids[k], ent));
            if (memcmp(ent, out + k * E, sizeof ent) != 0 && !fresh[k]) outputs_match = 0;
            if (fresh[k] && memcmp(out + k * E, act + k * E, sizeof ent) != 0) first_exact = 0;
            if (step >= steps - 20)
                for (int i = 0; i < E; i++) {
                    err += pow(out[k * E + i] - act[k * E + i], 2);
                    norm += pow(act[k * E + i], 2);
                }
        }
        if (!caches_equal(snd, rcv)) identical = 0;
    }
    CU_ASSERT(identical);
    CU_ASSERT(outputs_match);
    CU_ASSERT(first_exact);
    /* the cache tracks the activation: error relative to the activation stays small */
    CU_ASSERT(sqrt(err / norm) < 0.2);
    free(msg);
}

static void test_caches_stay_identical(void)
{
    for (int storage = 0; storage < 3; storage++)
        for (int variant = 0; variant < 9; variant++) {
            lh_aq_config cfg = base_config();
            cfg.storage = (lh_aq_storage)storage;
            switch (variant) {
            case 0:
                break;
            case 1:
                cfg.quant.bits = 2;
                cfg.quant.rounding = LH_ROUND_STOCHASTIC;
                break;
            case 2:
                cfg.quant.bits = 3;
                cfg.quant.grouping = LH_GROUP_BLOCK;
                cfg.quant.group_size = 64;
                break;
            case 3:
                cfg.quant.grid = LH_GRID_UNIFORM;
                cfg.quant.zstd_level = 3;
                cfg.quant.scale_type = LH_SCALE_FP32;
                break;
            case 4:
                cfg.quant.bits = 8;
                cfg.quant.grouping = LH_GROUP_TENSOR;
                cfg.quant.rounding = LH_ROUND_STOCHASTIC;
                break;
            /* scale clipping: min(absmax, k * RMS of the deltas) per group */
            case 5:
                cfg.quant.bits = 2;
                cfg.quant.clip_rms = 2.0f;
                break;
            case 6:
                cfg.quant.bits = 2;
                cfg.quant.clip_rms = 1.5f;
                cfg.quant.rounding = LH_ROUND_STOCHASTIC;
                cfg.quant.grouping = LH_GROUP_BLOCK;
                cfg.quant.group_size = 64;
                break;
            case 7:
                cfg.quant.bits = 3;
                cfg.quant.clip_rms = 2.5f;
                cfg.quant.grouping = LH_GROUP_TENSOR;
                cfg.quant.scale_type = LH_SCALE_FP32;
                cfg.quant.zstd_level = 3;
                break;
            case 8:
                cfg.quant.bits = 1;
                cfg.quant.clip_rms = 1.0f;
                cfg.quant.grid = LH_GRID_UNIFORM;
                break;
            }
            lh_aq_codec *snd, *rcv;
            LH_ASSERT_OK(lh_aq_create(&cfg, &snd));
            LH_ASSERT_OK(lh_aq_create(&cfg, &rcv));
            rng_state = 100 + variant;
            float *truth = calloc(MAXS * E, sizeof(float));
            for (int i = 0; i < MAXS * E; i++)
                truth[i] = rng_gauss();
            run_link(snd, rcv, truth, 300, 0);
            free(truth);
            lh_aq_free(snd);
            lh_aq_free(rcv);
        }
}

static void test_corruption_detected_and_repaired(void)
{
    lh_aq_config cfg = base_config();
    lh_aq_codec *snd, *rcv;
    LH_ASSERT_OK(lh_aq_create(&cfg, &snd));
    LH_ASSERT_OK(lh_aq_create(&cfg, &rcv));
    rng_state = 5;
    float act[BATCH * E], out[BATCH * E];
    for (int i = 0; i < BATCH * E; i++)
        act[i] = rng_gauss();
    uint64_t ids[BATCH] = {1, 4, 7}, got[BATCH], bad[BATCH];
    size_t cap = lh_aq_bound(snd, BATCH), len, n, n_bad;
    uint8_t *msg = malloc(cap);
    LH_ASSERT_OK(lh_aq_encode(snd, act, ids, BATCH, 0, msg, cap, &len));
    LH_ASSERT_OK(lh_aq_decode(rcv, msg, len, out, BATCH, got, &n, bad, &n_bad));
    CU_ASSERT(caches_equal(snd, rcv));

    /* flip one bit of the receiver's entry for sample 4 */
    void *p;
    size_t bytes;
    LH_ASSERT_OK(lh_aq_entry_raw(rcv, 4, &p, &bytes));
    ((uint8_t *)p)[bytes / 2] ^= 0x10;
    CU_ASSERT(!caches_equal(snd, rcv));

    for (int i = 0; i < BATCH * E; i++)
        act[i] += 0.1f * rng_gauss();
    LH_ASSERT_OK(lh_aq_encode(snd, act, ids, BATCH, 1, msg, cap, &len));
    LH_ASSERT_FAILS_WITH(lh_aq_decode(rcv, msg, len, out, BATCH, got, &n, bad, &n_bad), LH_ERR_CORRUPT,
                         "diverged");
    CU_ASSERT_EQUAL(n_bad, 1);
    CU_ASSERT_EQUAL(bad[0], 4);
    CU_ASSERT_EQUAL(lh_aq_has(rcv, 4), 0);
    CU_ASSERT_EQUAL(lh_aq_has(rcv, 1), 1);

    /* repair: the sender forgets the id and re-encodes the same step */
    LH_ASSERT_OK(lh_aq_invalidate(snd, bad, n_bad));
    LH_ASSERT_OK(lh_aq_encode(snd, act, ids, BATCH, 1, msg, cap, &len));
    LH_ASSERT_OK(lh_aq_decode(rcv, msg, len, out, BATCH, got, &n, bad, &n_bad));
    CU_ASSERT_EQUAL(n_bad, 0);
    CU_ASSERT(memcmp(out + E, act + E, sizeof(float) * E) == 0); /* sample 4 went in full precision */
    CU_ASSERT(caches_equal(snd, rcv));

    /* a receiver that lost an entry (e.g. restarted without its file) also asks for a resend */
    LH_ASSERT_OK(lh_aq_invalidate(rcv, &ids[2], 1));
    LH_ASSERT_OK(lh_aq_encode(snd, act, ids, BATCH, 2, msg, cap, &len));
    CU_ASSERT_EQUAL(lh_aq_decode(rcv, msg, len, out, BATCH, got, &n, bad, &n_bad), LH_ERR_CORRUPT);
    CU_ASSERT(n_bad == 1 && bad[0] == 7);
    free(msg);
    lh_aq_free(snd);
    lh_aq_free(rcv);
}

/* int8 storage: a quarter of the memory, same guarantees */
static void test_int8_storage(void)
{
    lh_aq_config cfg = base_config();
    cfg.storage = LH_AQ_STORE_INT8;
    lh_aq_codec *snd, *rcv;
    LH_ASSERT_OK(lh_aq_create(&cfg, &snd));
    LH_ASSERT_OK(lh_aq_create(&cfg, &rcv));
    CU_ASSERT_EQUAL(lh_aq_entry_bytes(snd), E + 4 * ROWS);
    rng_state = 21;
    float act[BATCH * E], out[BATCH * E], ent[E];
    for (int i = 0; i < BATCH * E; i++)
        act[i] = rng_gauss();
    uint64_t ids[BATCH] = {2, 5, 6}, got[BATCH], bad[BATCH];
    size_t cap = lh_aq_bound(snd, BATCH), len, n, n_bad;
    uint8_t *msg = malloc(cap);
    LH_ASSERT_OK(lh_aq_encode(snd, act, ids, BATCH, 0, msg, cap, &len));
    LH_ASSERT_OK(lh_aq_decode(rcv, msg, len, out, BATCH, got, &n, bad, &n_bad));
    /* the stored seed is within half an int8 step of the activation, per row */
    LH_ASSERT_OK(lh_aq_get(rcv, 5, ent));
    double worst = 0;
    for (int r = 0; r < ROWS; r++) {
        float amax = 0;
        for (int k = 0; k < CH; k++)
            amax = fmaxf(amax, fabsf(act[E + r * CH + k]));
        for (int k = 0; k < CH; k++)
            worst = fmax(worst, fabs(ent[r * CH + k] - act[E + r * CH + k]) / (amax / 127.0));
    }
    CU_ASSERT(worst <= 0.5001);
    /* a delta step: the receiver's output is exactly what it stores, and both sides agree */
    for (int i = 0; i < BATCH * E; i++)
        act[i] += 0.1f * rng_gauss();
    LH_ASSERT_OK(lh_aq_encode(snd, act, ids, BATCH, 1, msg, cap, &len));
    LH_ASSERT_OK(lh_aq_decode(rcv, msg, len, out, BATCH, got, &n, bad, &n_bad));
    LH_ASSERT_OK(lh_aq_get(rcv, 6, ent));
    CU_ASSERT(memcmp(ent, out + 2 * E, sizeof ent) == 0);
    CU_ASSERT(caches_equal(snd, rcv));
    /* corrupt one stored row scale on the receiver: detected, then repaired */
    void *p;
    size_t bytes;
    LH_ASSERT_OK(lh_aq_entry_raw(rcv, 2, &p, &bytes));
    ((uint8_t *)p)[bytes - 2] ^= 0x01;
    LH_ASSERT_OK(lh_aq_encode(snd, act, ids, BATCH, 2, msg, cap, &len));
    CU_ASSERT_EQUAL(lh_aq_decode(rcv, msg, len, out, BATCH, got, &n, bad, &n_bad), LH_ERR_CORRUPT);
    CU_ASSERT(n_bad == 1 && bad[0] == 2);
    LH_ASSERT_OK(lh_aq_invalidate(snd, bad, n_bad));
    LH_ASSERT_OK(lh_aq_encode(snd, act, ids, BATCH, 2, msg, cap, &len));
    LH_ASSERT_OK(lh_aq_decode(rcv, msg, len, out, BATCH, got, &n, bad, &n_bad));
    CU_ASSERT(caches_equal(snd, rcv));
    free(msg);
    lh_aq_free(snd);
    lh_aq_free(rcv);
}

static void test_file_backed_cache(void)
{
    char dir[] = "/tmp/lh_aq_testXXXXXX";
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    char ps[300], pr[300];
    snprintf(ps, sizeof ps, "%s/send.cache", dir);
    snprintf(pr, sizeof pr, "%s/recv.cache", dir);
    lh_aq_config cs = base_config(), cr = base_config();
    cs.storage = cr.storage = LH_AQ_STORE_FP16;
    cs.mmap_path = ps;
    cr.mmap_path = pr;
    lh_aq_codec *snd, *rcv;
    LH_ASSERT_OK(lh_aq_create(&cs, &snd));
    LH_ASSERT_OK(lh_aq_create(&cr, &rcv));
    CU_ASSERT_EQUAL(lh_aq_entry_bytes(snd), E * 2);
    rng_state = 9;
    float *truth = calloc(MAXS * E, sizeof(float));
    for (int i = 0; i < MAXS * E; i++)
        truth[i] = rng_gauss();
    run_link(snd, rcv, truth, 50, 0);
    uint64_t d0;
    LH_ASSERT_OK(lh_aq_sync(snd));
    int had = lh_aq_has(snd, 3);
    if (had) LH_ASSERT_OK(lh_aq_digest(snd, 3, &d0));
    lh_aq_free(snd);
    lh_aq_free(rcv);
    /* reopen: state persisted, the link carries on */
    LH_ASSERT_OK(lh_aq_create(&cs, &snd));
    LH_ASSERT_OK(lh_aq_create(&cr, &rcv));
    CU_ASSERT(caches_equal(snd, rcv));
    CU_ASSERT_EQUAL(lh_aq_has(snd, 3), had);
    if (had) {
        uint64_t d1;
        LH_ASSERT_OK(lh_aq_digest(snd, 3, &d1));
        CU_ASSERT_EQUAL(d0, d1);
    }
    run_link(snd, rcv, truth, 50, 50);
    lh_aq_free(snd);
    lh_aq_free(rcv);
    /* a different shape or storage does not reuse the file */
    lh_aq_config other = cs;
    other.storage = LH_AQ_STORE_FP32;
    LH_ASSERT_FAILS_WITH(lh_aq_create(&other, &snd), LH_ERR_MISMATCH, "needs");
    other = cs;
    other.channels = 32;
    other.max_samples = MAXS * CH / 32; /* same file size, different header */
    LH_ASSERT_FAILS_WITH(lh_aq_create(&other, &snd), LH_ERR_MISMATCH, "");
    unlink(ps);
    unlink(pr);
    rmdir(dir);
    free(truth);
}

static void test_bad_messages_rejected(void)
{
    lh_aq_config cfg = base_config();
    cfg.quant.zstd_level = 1;
    lh_aq_codec *snd, *rcv;
    LH_ASSERT_OK(lh_aq_create(&cfg, &snd));
    LH_ASSERT_OK(lh_aq_create(&cfg, &rcv));
    rng_state = 11;
    float act[BATCH * E], out[BATCH * E];
    for (int i = 0; i < BATCH * E; i++)
        act[i] = rng_gauss();
    uint64_t ids[BATCH] = {0, 2, 9}, got[BATCH], bad[BATCH];
    size_t cap = lh_aq_bound(snd, BATCH), len, n, n_bad;
    uint8_t *msg = malloc(cap + 1), *cpy = malloc(cap + 1);
    LH_ASSERT_OK(lh_aq_encode(snd, act, ids, 2, 0, msg, cap, &len)); /* ids 0, 2 seeded */
    LH_ASSERT_OK(lh_aq_decode(rcv, msg, len, out, BATCH, got, &n, bad, &n_bad));
    LH_ASSERT_OK(lh_aq_encode(snd, act, ids, BATCH, 1, msg, cap, &len)); /* 2 delta + 1 full */
    /* truncations and bit flips never decode and never change the receiver's cache */
    int accepted = 0;
    for (size_t k = 0; k < len; k += 7)
        if (lh_aq_decode(rcv, msg, k, out, BATCH, got, &n, bad, &n_bad) == LH_OK) accepted++;
    for (size_t i = 0; i < len; i += 3) {
        memcpy(cpy, msg, len);
        cpy[i] ^= (uint8_t)(1u << (i % 8));
        if (lh_aq_decode(rcv, cpy, len, out, BATCH, got, &n, bad, &n_bad) == LH_OK) accepted++;
    }
    CU_ASSERT_EQUAL(accepted, 0);
    LH_ASSERT_FAILS_WITH(lh_aq_decode(rcv, msg, len, out, 2, got, &n, bad, &n_bad), LH_ERR_CAPACITY, "holds");
    LH_ASSERT_OK(lh_aq_decode(rcv, msg, len, out, BATCH, got, &n, bad, &n_bad));
    CU_ASSERT(caches_equal(snd, rcv));
    /* a receiver configured for another shape says so */
    lh_aq_config other = base_config();
    other.channels = 16;
    lh_aq_codec *r2;
    LH_ASSERT_OK(lh_aq_create(&other, &r2));
    LH_ASSERT_FAILS_WITH(lh_aq_decode(r2, msg, len, out, BATCH, got, &n, bad, &n_bad), LH_ERR_MISMATCH,
                         "expects");
    lh_aq_free(r2);
    /* sender-side argument errors */
    uint64_t dup[3] = {1, 1, 2}, far[1] = {MAXS};
    LH_ASSERT_FAILS_WITH(lh_aq_encode(snd, act, dup, 3, 2, msg, cap, &len), LH_ERR_INVALID_ARG, "twice");
    LH_ASSERT_FAILS_WITH(lh_aq_encode(snd, act, far, 1, 2, msg, cap, &len), LH_ERR_INVALID_ARG,
                         "out of range");
    LH_ASSERT_FAILS_WITH(lh_aq_encode(snd, act, ids, BATCH, 2, msg, 100, &len), LH_ERR_CAPACITY,
                         "destination");
    act[5] = NAN;
    LH_ASSERT_FAILS_WITH(lh_aq_encode(snd, act, ids, BATCH, 2, msg, cap, &len), LH_ERR_INVALID_ARG, "NaN");
    CU_ASSERT(caches_equal(snd, rcv)); /* a refused encode changed nothing */
    lh_aq_config badcfg = base_config();
    badcfg.channels = 3;
    badcfg.sample_rows = 3;
    LH_ASSERT_FAILS_WITH(lh_aq_create(&badcfg, &r2), LH_ERR_INVALID_ARG, "multiple of 8");
    free(msg);
    free(cpy);
    lh_aq_free(snd);
    lh_aq_free(rcv);
}

static void test_message_size(void)
{
    /* the 1 x 1024 x 1600 activation as a 4-bit delta: codes + fp16 scales + headers */
    lh_aq_config cfg = base_config();
    cfg.sample_rows = 1024;
    cfg.channels = 1600;
    cfg.max_samples = 2;
    lh_aq_codec *snd;
    LH_ASSERT_OK(lh_aq_create(&cfg, &snd));
    float *act = malloc(sizeof(float) * 1024 * 1600);
    rng_state = 3;
    for (size_t i = 0; i < 1024 * 1600; i++)
        act[i] = rng_gauss();
    uint64_t id = 1;
    size_t cap = lh_aq_bound(snd, 1), len;
    uint8_t *msg = malloc(cap);
    LH_ASSERT_OK(lh_aq_encode(snd, act, &id, 1, 0, msg, cap, &len));
    CU_ASSERT_EQUAL(len, 40 + 24 + 32 + 1024 * 1600 * 4);
    LH_ASSERT_OK(lh_aq_encode(snd, act, &id, 1, 1, msg, cap, &len));
    CU_ASSERT_EQUAL(len, 40 + 24 + 32 + 822400);
    free(msg);
    free(act);
    lh_aq_free(snd);
}

/*
 * Scale clipping on the AQ delta path: each per-channel scale in the delta
 * frame is min(absmax, k * RMS) of that channel's deltas a - m over all rows
 * of all delta samples (rounded up to fp16), and with outliers in the deltas
 * the receiver's reconstruction is closer to the activation than with absmax
 * scales.
 */
static void test_clip_on_deltas(void)
{
    float act[BATCH * E], out[BATCH * E], prev[BATCH * E];
    uint64_t ids[BATCH] = {1, 4, 7}, got[BATCH], bad[BATCH];
    rng_state = 61;
    for (int i = 0; i < BATCH * E; i++)
        act[i] = rng_gauss();
    memcpy(prev, act, sizeof act);
    for (int i = 0; i < BATCH * E; i++)
        act[i] += 0.1f * rng_gauss() + (rng_uniform() < 0.01 ? 2.0f : 0.0f); /* drift + 20-sigma outliers */
    double err[2];
    for (int clip = 0; clip < 2; clip++) {
        lh_aq_config cfg = base_config();
        cfg.quant.bits = 2;
        cfg.quant.clip_rms = clip ? 2.0f : 0.0f;
        lh_aq_codec *snd, *rcv;
        LH_ASSERT_OK(lh_aq_create(&cfg, &snd));
        LH_ASSERT_OK(lh_aq_create(&cfg, &rcv));
        size_t cap = lh_aq_bound(snd, BATCH), len, n, n_bad;
        uint8_t *msg = malloc(cap);
        LH_ASSERT_OK(lh_aq_encode(snd, prev, ids, BATCH, 0, msg, cap, &len)); /* seeds m = prev exactly */
        LH_ASSERT_OK(lh_aq_decode(rcv, msg, len, out, BATCH, got, &n, bad, &n_bad));
        LH_ASSERT_OK(lh_aq_encode(snd, act, ids, BATCH, 1, msg, cap, &len)); /* all three are deltas */
        LH_ASSERT_OK(lh_aq_decode(rcv, msg, len, out, BATCH, got, &n, bad, &n_bad));
        CU_ASSERT(caches_equal(snd, rcv));
        const uint8_t *payload = msg + 40 + 24 * BATCH + LH_QUANT_HEADER_BYTES;
        int wrong = 0, clipped = 0;
        for (int c = 0; c < CH; c++) {
            float amax = 0;
            double ss = 0;
            for (int r = 0; r < BATCH * ROWS; r++) { /* delta rows in batch order */
                float d = act[r * CH + c] - prev[r * CH + c];
                amax = fmaxf(amax, fabsf(d));
                ss += (double)d * d;
            }
            double k = cfg.quant.clip_rms * sqrt(ss / (BATCH * ROWS));
            float want = clip && k < amax ? (float)k : amax;
            clipped += want < amax;
            uint16_t h = (uint16_t)(payload[2 * c] | payload[2 * c + 1] << 8);
            wrong += h != lh_qm_half_scale_up(want);
        }
        CU_ASSERT_EQUAL(wrong, 0);
        CU_ASSERT(clip ? clipped > CH / 2 : clipped == 0);
        double e = 0, s = 0;
        for (int i = 0; i < BATCH * E; i++) {
            double dd = act[i] - prev[i];
            e += pow(out[i] - act[i], 2);
            s += dd * dd;
        }
        err[clip] = sqrt(e / s); /* error relative to the size of the delta */
        free(msg);
        lh_aq_free(snd);
        lh_aq_free(rcv);
    }
    if (!(err[1] < 0.8 * err[0]))
        fprintf(stderr, "\n  aq delta rel_l2: absmax %.4f, clip 2 %.4f", err[0], err[1]);
    CU_ASSERT(err[1] < 0.8 * err[0]);
}

/*
 * The GPU sender must produce the CPU's scales, codes and cache update bit for
 * bit.  Without a device (or without CUDA in the build) the entry points must
 * say so with LH_ERR_UNSUPPORTED rather than do anything else.
 */
static void test_cuda_matches_cpu(void)
{
    if (!lh_compress_cuda_available()) {
        float dummy[8];
        uint8_t codes[8];
        LH_ASSERT_FAILS_WITH(lh_compress_cuda_aq_encode(dummy, dummy, 1, 1, 8, 4, LH_GRID_NORMAL,
                                                        LH_SCALE_FP16, 0.0f, NULL, 0, 0, dummy, codes, NULL),
                             LH_ERR_UNSUPPORTED, "CUDA");
        LH_ASSERT_FAILS_WITH(
            lh_compress_cuda_aq_decode(codes, dummy, dummy, dummy, 1, 1, 8, 4, LH_GRID_NORMAL, NULL),
            LH_ERR_UNSUPPORTED, "CUDA");
        return;
    }
#if LH_COMPRESS_HAVE_CUDA
    for (int variant = 0; variant < 4; variant++) {
        int sr = variant & 1;
        lh_aq_config cfg = base_config();
        cfg.quant.rounding = sr ? LH_ROUND_STOCHASTIC : LH_ROUND_NEAREST;
        if (variant >= 2) { /* scale clipping at 2 bits */
            cfg.quant.bits = 2;
            cfg.quant.clip_rms = 2.0f;
        }
        lh_aq_codec *snd;
        LH_ASSERT_OK(lh_aq_create(&cfg, &snd));
        enum { NB = 2 };
        float act[NB * E], m0[NB * E], m_gpu[NB * E], cpu_m[E], scales[CH];
        uint64_t ids[NB] = {3, 8};
        rng_state = 77;
        for (int i = 0; i < NB * E; i++)
            act[i] = rng_gauss();
        memcpy(m0, act, sizeof act);
        size_t cap = lh_aq_bound(snd, NB), len;
        uint8_t *msg = malloc(cap), codes[NB * E];
        LH_ASSERT_OK(lh_aq_encode(snd, act, ids, NB, 0, msg, cap, &len)); /* seeds m = act */
        for (int i = 0; i < NB * E; i++)
            act[i] += 0.3f * rng_gauss() + (rng_uniform() < 0.01 ? 5.0f : 0.0f); /* with outliers */
        LH_ASSERT_OK(lh_aq_encode(snd, act, ids, NB, 1, msg, cap, &len)); /* delta */
        float *d_act, *d_m, *d_scales;
        uint8_t *d_codes;
        uint64_t *d_ids;
        CU_ASSERT_FATAL(cudaMalloc((void **)&d_act, sizeof act) == cudaSuccess);
        CU_ASSERT_FATAL(cudaMalloc((void **)&d_m, sizeof act) == cudaSuccess);
        CU_ASSERT_FATAL(cudaMalloc((void **)&d_scales, sizeof scales) == cudaSuccess);
        CU_ASSERT_FATAL(cudaMalloc((void **)&d_codes, sizeof codes) == cudaSuccess);
        CU_ASSERT_FATAL(cudaMalloc((void **)&d_ids, sizeof ids) == cudaSuccess);
        cudaMemcpy(d_act, act, sizeof act, cudaMemcpyHostToDevice);
        cudaMemcpy(d_m, m0, sizeof m0, cudaMemcpyHostToDevice);
        cudaMemcpy(d_ids, ids, sizeof ids, cudaMemcpyHostToDevice);
        LH_ASSERT_OK(lh_compress_cuda_aq_encode(d_act, d_m, NB, ROWS, CH, cfg.quant.bits, cfg.quant.grid,
                                                cfg.quant.scale_type, cfg.quant.clip_rms, sr ? d_ids : NULL,
                                                cfg.seed, 1, d_scales, d_codes, NULL));
        size_t code_bytes = (size_t)NB * E * cfg.quant.bits / 8;
        cudaMemcpy(codes, d_codes, code_bytes, cudaMemcpyDeviceToHost);
        cudaMemcpy(scales, d_scales, sizeof scales, cudaMemcpyDeviceToHost);
        cudaMemcpy(m_gpu, d_m, sizeof m_gpu, cudaMemcpyDeviceToHost);
        /* the CPU message: header, records, then the delta frame: fp16 scales, then codes */
        const uint8_t *frame = msg + 40 + 24 * NB, *payload = frame + LH_QUANT_HEADER_BYTES;
        int scale_diff = 0;
        for (int c = 0; c < CH; c++) {
            uint16_t h = (uint16_t)(payload[2 * c] | payload[2 * c + 1] << 8);
            scale_diff += scales[c] != lh_qm_half_to_float(h);
        }
        CU_ASSERT_EQUAL(scale_diff, 0);
        CU_ASSERT(memcmp(codes, payload + 2 * CH, code_bytes) == 0);
        for (int k = 0; k < NB; k++) {
            LH_ASSERT_OK(lh_aq_get(snd, ids[k], cpu_m));
            CU_ASSERT(memcmp(cpu_m, m_gpu + k * E, sizeof cpu_m) == 0);
        }
        /* and the receiver half: m0 + deQ = the sender's new m */
        cudaMemcpy(d_m, m0, sizeof m0, cudaMemcpyHostToDevice);
        LH_ASSERT_OK(lh_compress_cuda_aq_decode(d_codes, d_scales, d_m, d_act, NB, ROWS, CH, cfg.quant.bits,
                                                cfg.quant.grid, NULL));
        cudaDeviceSynchronize();
        cudaMemcpy(m_gpu, d_act, sizeof m_gpu, cudaMemcpyDeviceToHost);
        for (int k = 0; k < NB; k++) {
            LH_ASSERT_OK(lh_aq_get(snd, ids[k], cpu_m));
            CU_ASSERT(memcmp(cpu_m, m_gpu + k * E, sizeof cpu_m) == 0);
        }
        cudaFree(d_act);
        cudaFree(d_m);
        cudaFree(d_scales);
        cudaFree(d_codes);
        cudaFree(d_ids);
        free(msg);
        lh_aq_free(snd);
    }
#endif
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"caches stay identical", test_caches_stay_identical},
        {"corruption detected and repaired", test_corruption_detected_and_repaired},
        {"int8 storage", test_int8_storage},
        {"file-backed cache", test_file_backed_cache},
        {"bad messages rejected", test_bad_messages_rejected},
        {"message size", test_message_size},
        {"clip on deltas", test_clip_on_deltas},
        {"cuda matches cpu", test_cuda_matches_cpu},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"compress_aq", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return lh_test_run(suites);
}
