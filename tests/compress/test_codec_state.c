/*
 * Tests of codec state save/load (checkpoints): an AQ-SGD cache (every storage
 * mode) or a gradient residual saved and loaded into a fresh codec continues
 * bit for bit (the next message is byte-identical, the receiver decodes the
 * same values); truncated, corrupted, malformed and mismatched states are
 * rejected with the right status and leave the codec unchanged.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lh_bytes.h"
#include "lh_compress.h"
#include "lh_io.h"
#include "lh_test.h"

enum { ROWS = 4, CH = 16, E = ROWS * CH, MAXS = 12, BATCH = 3, STEPS = 6 };

static uint64_t rng_state;
static double rng_uniform(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}

static lh_aq_config aq_config(lh_aq_storage storage)
{
    lh_aq_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.sample_rows = ROWS;
    cfg.channels = CH;
    cfg.max_samples = MAXS;
    cfg.storage = storage;
    cfg.quant = lh_quant_params_default(3);
    cfg.quant.rounding = LH_ROUND_STOCHASTIC;
    cfg.seed = 5;
    return cfg;
}

static void fill(float *a, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        a[i] = (float)((rng_uniform() - 0.5) * scale);
}

/* ids of step s: a sliding window over 0..MAXS-1, so later steps revisit samples (deltas) */
static void step_ids(int s, uint64_t *ids)
{
    for (int k = 0; k < BATCH; k++)
        ids[k] = (uint64_t)((s * 2 + k) % 7);
}

/* One message from snd to rcv at `step`; the encoded bytes go to msg (cap bytes), their length to *len. */
static void send_one(lh_aq_codec *snd, lh_aq_codec *rcv, int step, const float *act, uint8_t *msg, size_t cap,
                     size_t *len, float *out)
{
    uint64_t ids[BATCH], got[BATCH], bad[BATCH];
    size_t n, nb;
    step_ids(step, ids);
    LH_ASSERT_OK(lh_aq_encode(snd, act, ids, BATCH, (uint64_t)step, msg, cap, len));
    LH_ASSERT_OK(lh_aq_decode(rcv, msg, *len, out, BATCH, got, &n, bad, &nb));
    CU_ASSERT_EQUAL(n, BATCH);
}

/* Save a codec's state into a new buffer. */
static uint8_t *save_aq(const lh_aq_codec *c, size_t *len)
{
    size_t need = lh_aq_state_bytes(c);
    uint8_t *buf = malloc(need + 16);
    CU_ASSERT_FATAL(buf != NULL);
    LH_ASSERT_OK(lh_aq_save_state(c, buf, need + 16, len));
    CU_ASSERT_EQUAL(*len, need);
    return buf;
}

static void round_trip(lh_aq_storage storage)
{
    lh_aq_config cfg = aq_config(storage);
    lh_aq_codec *snd, *rcv, *snd2, *rcv2;
    LH_ASSERT_OK(lh_aq_create(&cfg, &snd));
    LH_ASSERT_OK(lh_aq_create(&cfg, &rcv));
    size_t cap = lh_aq_bound(snd, BATCH), len, len2;
    uint8_t *msg = malloc(cap), *msg2 = malloc(cap);
    float act[BATCH * E], out[BATCH * E], out2[BATCH * E];
    rng_state = 77 + (uint64_t)storage;
    for (int s = 0; s < STEPS; s++) {
        fill(act, BATCH * E, 4.0);
        send_one(snd, rcv, s, act, msg, cap, &len, out);
    }
    size_t slen, rlen;
    uint8_t *sstate = save_aq(snd, &slen), *rstate = save_aq(rcv, &rlen);
    CU_ASSERT_EQUAL(slen, rlen);                                      /* both sides hold the same samples */
    CU_ASSERT_EQUAL(memcmp(sstate, rstate, slen), 0);                 /* ... bit for bit */
    CU_ASSERT_EQUAL(slen, 48 + 7 * (8 + lh_aq_entry_bytes(snd)) + 4); /* ids 0..6 were seen */

    /* fresh codecs (other quantizer settings are allowed: the cache is valid whatever quantized it) */
    lh_aq_config other = cfg;
    LH_ASSERT_OK(lh_aq_create(&other, &snd2));
    LH_ASSERT_OK(lh_aq_create(&other, &rcv2));
    LH_ASSERT_OK(lh_aq_load_state(snd2, sstate, slen));
    LH_ASSERT_OK(lh_aq_load_state(rcv2, rstate, rlen));
    for (uint64_t id = 0; id < MAXS; id++) {
        CU_ASSERT_EQUAL(lh_aq_has(snd2, id), lh_aq_has(snd, id));
        CU_ASSERT_EQUAL(lh_aq_has(rcv2, id), id < 7);
    }
    /* the next steps: byte-identical messages, identical decoded activations */
    for (int s = STEPS; s < STEPS + 3; s++) {
        fill(act, BATCH * E, 4.0);
        send_one(snd, rcv, s, act, msg, cap, &len, out);
        send_one(snd2, rcv2, s, act, msg2, cap, &len2, out2);
        CU_ASSERT_EQUAL(len, len2);
        CU_ASSERT_EQUAL(memcmp(msg, msg2, len), 0);
        CU_ASSERT_EQUAL(memcmp(out, out2, sizeof out), 0);
    }
    /* saving again gives the same bytes on both */
    size_t a, b;
    uint8_t *x = save_aq(snd, &a), *y = save_aq(snd2, &b);
    CU_ASSERT_TRUE(a == b && memcmp(x, y, a) == 0);
    free(x);
    free(y);
    /* too small a destination */
    uint8_t small[64];
    LH_ASSERT_FAILS_WITH(lh_aq_save_state(snd, small, sizeof small, &a), LH_ERR_CAPACITY, "needed");
    free(sstate);
    free(rstate);
    free(msg);
    free(msg2);
    lh_aq_free(snd);
    lh_aq_free(rcv);
    lh_aq_free(snd2);
    lh_aq_free(rcv2);
}

static void test_aq_round_trip_fp32(void)
{
    round_trip(LH_AQ_STORE_FP32);
}
static void test_aq_round_trip_fp16(void)
{
    round_trip(LH_AQ_STORE_FP16);
}
static void test_aq_round_trip_int8(void)
{
    round_trip(LH_AQ_STORE_INT8);
}

/* An empty state clears a cache: every next visit is full precision again. */
static void test_aq_empty_state_clears(void)
{
    lh_aq_config cfg = aq_config(LH_AQ_STORE_FP32);
    lh_aq_codec *empty, *c, *r;
    LH_ASSERT_OK(lh_aq_create(&cfg, &empty));
    LH_ASSERT_OK(lh_aq_create(&cfg, &c));
    LH_ASSERT_OK(lh_aq_create(&cfg, &r));
    size_t len;
    uint8_t *st = save_aq(empty, &len);
    CU_ASSERT_EQUAL(len, 52);
    size_t cap = lh_aq_bound(c, BATCH), mlen;
    uint8_t *msg = malloc(cap);
    float act[BATCH * E], out[BATCH * E];
    rng_state = 3;
    fill(act, BATCH * E, 1.0);
    send_one(c, r, 0, act, msg, cap, &mlen, out);
    CU_ASSERT_EQUAL(lh_aq_has(c, 0), 1);
    LH_ASSERT_OK(lh_aq_load_state(c, st, len));
    for (uint64_t id = 0; id < MAXS; id++)
        CU_ASSERT_EQUAL(lh_aq_has(c, id), 0);
    free(st);
    free(msg);
    lh_aq_free(empty);
    lh_aq_free(c);
    lh_aq_free(r);
}

/* Recompute the trailing CRC-32C (all the state formats end with one over everything before). */
static void fix_crc(uint8_t *buf, size_t len)
{
    lh_put_le32(buf + len - 4, lh_crc32c(0, buf, len - 4));
}

static void test_aq_bad_states_rejected(void)
{
    lh_aq_config cfg = aq_config(LH_AQ_STORE_FP32);
    lh_aq_codec *snd, *rcv, *target;
    LH_ASSERT_OK(lh_aq_create(&cfg, &snd));
    LH_ASSERT_OK(lh_aq_create(&cfg, &rcv));
    LH_ASSERT_OK(lh_aq_create(&cfg, &target));
    size_t cap = lh_aq_bound(snd, BATCH), mlen, len;
    uint8_t *msg = malloc(cap);
    float act[BATCH * E], out[BATCH * E];
    rng_state = 11;
    for (int s = 0; s < 3; s++) {
        fill(act, BATCH * E, 2.0);
        send_one(snd, rcv, s, act, msg, cap, &mlen, out);
    }
    uint8_t *good = save_aq(snd, &len);
    /* the target holds something that a failed load must not disturb */
    uint64_t ids[BATCH] = {9, 10, 11};
    fill(act, BATCH * E, 2.0);
    LH_ASSERT_OK(lh_aq_encode(target, act, ids, BATCH, 0, msg, cap, &mlen));
    uint64_t before;
    LH_ASSERT_OK(lh_aq_digest(target, 10, &before));
    uint8_t *bad = malloc(len + 8);

    LH_ASSERT_FAILS_WITH(lh_aq_load_state(target, good, len - 1), LH_ERR_TRUNCATED, "need");
    LH_ASSERT_FAILS_WITH(lh_aq_load_state(target, good, 20), LH_ERR_TRUNCATED, "minimum");
    memcpy(bad, good, len);
    bad[len] = 0;
    LH_ASSERT_FAILS_WITH(lh_aq_load_state(target, bad, len + 1), LH_ERR_FORMAT, "trailing");
    bad[100] ^= 0x10; /* an entry's value */
    LH_ASSERT_FAILS_WITH(lh_aq_load_state(target, bad, len), LH_ERR_CORRUPT, "CRC-32C mismatch");
    memcpy(bad, good, len);
    bad[0] = 'X';
    LH_ASSERT_FAILS_WITH(lh_aq_load_state(target, bad, len), LH_ERR_FORMAT, "bad magic");
    memcpy(bad, good, len);
    bad[4] = 2;
    LH_ASSERT_FAILS_WITH(lh_aq_load_state(target, bad, len), LH_ERR_UNSUPPORTED, "version 2");
    /* a NaN in an entry, or ids out of order, behind a valid CRC */
    memcpy(bad, good, len);
    memcpy(bad + 48 + 8 + 4 * 5, &(float){NAN}, 4);
    fix_crc(bad, len);
    LH_ASSERT_FAILS_WITH(lh_aq_load_state(target, bad, len), LH_ERR_FORMAT, "non-finite");
    memcpy(bad, good, len);
    size_t rec = 8 + lh_aq_entry_bytes(snd);
    memcpy(bad + 48 + rec, bad + 48, 8); /* entry 1 gets entry 0's id */
    fix_crc(bad, len);
    LH_ASSERT_FAILS_WITH(lh_aq_load_state(target, bad, len), LH_ERR_FORMAT, "not strictly ascending");
    memcpy(bad, good, len);
    bad[48] = MAXS; /* entry 0's id beyond max_samples */
    fix_crc(bad, len);
    LH_ASSERT_FAILS_WITH(lh_aq_load_state(target, bad, len), LH_ERR_FORMAT, "out of range");
    memcpy(bad, good, len);
    bad[40] = MAXS + 1; /* more entries than samples */
    fix_crc(bad, len);
    LH_ASSERT_FAILS_WITH(lh_aq_load_state(target, bad, len), LH_ERR_FORMAT, "entries for");
    LH_ASSERT_FAILS_WITH(lh_aq_check_state(target, bad, len), LH_ERR_FORMAT, "entries for");

    /* configurations that give the bytes another meaning */
    lh_aq_config c2 = cfg;
    c2.channels = 8;
    lh_aq_codec *m;
    LH_ASSERT_OK(lh_aq_create(&c2, &m));
    LH_ASSERT_FAILS_WITH(lh_aq_load_state(m, good, len), LH_ERR_MISMATCH, "samples of 4 x 16 values");
    lh_aq_free(m);
    c2 = cfg;
    c2.max_samples = MAXS + 1;
    LH_ASSERT_OK(lh_aq_create(&c2, &m));
    LH_ASSERT_FAILS_WITH(lh_aq_load_state(m, good, len), LH_ERR_MISMATCH, "max_samples 13");
    lh_aq_free(m);
    c2 = cfg;
    c2.storage = LH_AQ_STORE_FP16;
    LH_ASSERT_OK(lh_aq_create(&c2, &m));
    LH_ASSERT_FAILS_WITH(lh_aq_load_state(m, good, len), LH_ERR_MISMATCH, "stored as fp32");
    lh_aq_free(m);

    /* nothing changed on the target after all those failures */
    uint64_t after;
    LH_ASSERT_OK(lh_aq_digest(target, 10, &after));
    CU_ASSERT_EQUAL(before, after);
    CU_ASSERT_EQUAL(lh_aq_has(target, 0), 0);
    LH_ASSERT_OK(lh_aq_check_state(target, good, len));
    free(bad);
    free(good);
    free(msg);
    lh_aq_free(snd);
    lh_aq_free(rcv);
    lh_aq_free(target);
}

/* A file-backed cache saves and loads like an anonymous one (same entries, same bytes). */
static void test_aq_file_backed(void)
{
    char path[] = "/tmp/lh_test_aq_state_XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    unlink(path);
    lh_aq_config cfg = aq_config(LH_AQ_STORE_FP16), fcfg = cfg;
    fcfg.mmap_path = path;
    lh_aq_codec *snd, *rcv, *filed;
    LH_ASSERT_OK(lh_aq_create(&cfg, &snd));
    LH_ASSERT_OK(lh_aq_create(&cfg, &rcv));
    LH_ASSERT_OK(lh_aq_create(&fcfg, &filed));
    size_t cap = lh_aq_bound(snd, BATCH), mlen, len, len2;
    uint8_t *msg = malloc(cap);
    float act[BATCH * E], out[BATCH * E];
    rng_state = 21;
    for (int s = 0; s < 4; s++) {
        fill(act, BATCH * E, 2.0);
        send_one(snd, rcv, s, act, msg, cap, &mlen, out);
    }
    uint8_t *st = save_aq(rcv, &len);
    LH_ASSERT_OK(lh_aq_load_state(filed, st, len));
    uint8_t *st2 = save_aq(filed, &len2);
    CU_ASSERT_TRUE(len == len2 && memcmp(st, st2, len) == 0);
    free(st);
    free(st2);
    free(msg);
    lh_aq_free(snd);
    lh_aq_free(rcv);
    lh_aq_free(filed);
    unlink(path);
}

static lh_quant_params grad_params(void)
{
    lh_quant_params p = lh_quant_params_default(2);
    p.grouping = LH_GROUP_BLOCK;
    p.group_size = 64;
    p.scale_type = LH_SCALE_FP32;
    return p;
}

static void test_grad_round_trip_and_rejects(void)
{
    enum { N = 300 };
    lh_quant_params p = grad_params();
    lh_grad_codec *g, *g2, *wrong;
    LH_ASSERT_OK(lh_grad_create(N, &p, 3, &g));
    LH_ASSERT_OK(lh_grad_create(N, &p, 3, &g2));
    LH_ASSERT_OK(lh_grad_create(N + 1, &p, 3, &wrong));
    float grad[N];
    size_t cap = lh_grad_bound(g, N), flen, flen2;
    uint8_t *f = malloc(cap), *f2 = malloc(cap);
    rng_state = 5;
    for (int s = 0; s < 4; s++) {
        fill(grad, N, 1.0);
        LH_ASSERT_OK(lh_grad_encode(g, grad, (uint64_t)s, f, cap, &flen));
    }
    size_t need = lh_grad_state_bytes(g), len;
    CU_ASSERT_EQUAL(need, 16 + 4 * N + 4);
    uint8_t *st = malloc(need + 1), *bad = malloc(need + 1);
    LH_ASSERT_FAILS_WITH(lh_grad_save_state(g, st, need - 1, &len), LH_ERR_CAPACITY, "needed");
    LH_ASSERT_OK(lh_grad_save_state(g, st, need, &len));
    CU_ASSERT_EQUAL(len, need);

    /* rejections leave g2's residual (zero) alone */
    LH_ASSERT_FAILS_WITH(lh_grad_load_state(wrong, st, len), LH_ERR_MISMATCH, "residual of 300 values");
    LH_ASSERT_FAILS_WITH(lh_grad_load_state(g2, st, len - 4), LH_ERR_TRUNCATED, "need");
    LH_ASSERT_FAILS_WITH(lh_grad_load_state(g2, st, 8), LH_ERR_TRUNCATED, "minimum");
    memcpy(bad, st, len);
    bad[len] = 1;
    LH_ASSERT_FAILS_WITH(lh_grad_load_state(g2, bad, len + 1), LH_ERR_FORMAT, "trailing");
    bad[200] ^= 1;
    LH_ASSERT_FAILS_WITH(lh_grad_load_state(g2, bad, len), LH_ERR_CORRUPT, "CRC-32C mismatch");
    memcpy(bad, st, len);
    memcpy(bad, "LHAS", 4);
    LH_ASSERT_FAILS_WITH(lh_grad_load_state(g2, bad, len), LH_ERR_FORMAT, "bad magic");
    memcpy(bad, st, len);
    bad[4] = 9;
    LH_ASSERT_FAILS_WITH(lh_grad_load_state(g2, bad, len), LH_ERR_UNSUPPORTED, "version 9");
    memcpy(bad, st, len);
    memcpy(bad + 16 + 4 * 7, &(float){INFINITY}, 4);
    fix_crc(bad, len);
    LH_ASSERT_FAILS_WITH(lh_grad_check_state(g2, bad, len), LH_ERR_FORMAT, "value 7 is not finite");
    for (int i = 0; i < N; i++)
        CU_ASSERT_EQUAL_FATAL(lh_grad_residual(g2)[i], 0.0f);

    /* the reloaded codec encodes the next gradient byte for byte like the original */
    LH_ASSERT_OK(lh_grad_load_state(g2, st, len));
    CU_ASSERT_EQUAL(memcmp(lh_grad_residual(g), lh_grad_residual(g2), N * sizeof(float)), 0);
    for (int s = 4; s < 6; s++) {
        fill(grad, N, 1.0);
        LH_ASSERT_OK(lh_grad_encode(g, grad, (uint64_t)s, f, cap, &flen));
        LH_ASSERT_OK(lh_grad_encode(g2, grad, (uint64_t)s, f2, cap, &flen2));
        CU_ASSERT_TRUE(flen == flen2 && memcmp(f, f2, flen) == 0);
    }
    free(st);
    free(bad);
    free(f);
    free(f2);
    lh_grad_free(g);
    lh_grad_free(g2);
    lh_grad_free(wrong);
}

int main(void)
{
    CU_TestInfo tests[] = {
        {"aq state round trip, fp32 storage", test_aq_round_trip_fp32},
        {"aq state round trip, fp16 storage", test_aq_round_trip_fp16},
        {"aq state round trip, int8 storage", test_aq_round_trip_int8},
        {"aq empty state clears the cache", test_aq_empty_state_clears},
        {"aq bad states rejected, codec unchanged", test_aq_bad_states_rejected},
        {"aq file-backed cache", test_aq_file_backed},
        {"grad residual round trip and rejects", test_grad_round_trip_and_rejects},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {{"compress_state", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return lh_test_run(suites);
}
