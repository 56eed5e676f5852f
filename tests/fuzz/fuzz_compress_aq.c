/*
 * Fuzz target for the AQ-SGD message decoder (LHAQ).  Each input is decoded by
 * a fresh receiver whose cache already holds samples 0..2 (seeded by a
 * deterministic first message), so both the delta path and the full-precision
 * path are reachable.  Any input must decode or fail cleanly.
 *
 * Build with -DLH_FUZZ_GEN_CORPUS for a main() that writes seed messages (delta,
 * mixed delta + full, zstd, stochastic, fp16 storage) into argv[1].
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_compress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { ROWS = 4, CH = 8, E = ROWS * CH, MAXS = 6, NS = 3 };

static lh_aq_config fuzz_config(int variant)
{
    lh_aq_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.sample_rows = ROWS;
    cfg.channels = CH;
    cfg.max_samples = MAXS;
    cfg.storage = variant & 8 ? LH_AQ_STORE_INT8 : variant & 1 ? LH_AQ_STORE_FP16 : LH_AQ_STORE_FP32;
    cfg.quant = lh_quant_params_default(variant & 2 ? 2 : 4);
    cfg.quant.zstd_level = variant & 4 ? 3 : 0;
    cfg.quant.rounding = variant & 2 ? LH_ROUND_STOCHASTIC : LH_ROUND_NEAREST;
    cfg.seed = 9;
    return cfg;
}

static void fill(float *a, int salt)
{
    for (int i = 0; i < NS * E; i++)
        a[i] = (float)((i * 29 + salt * 7) % 17) * 0.125f - 1.0f;
}

/* sender and receiver after a first, full-precision message for ids 0..2 */
static int seeded_pair(int variant, lh_aq_codec **snd, lh_aq_codec **rcv)
{
    lh_aq_config cfg = fuzz_config(variant);
    if (lh_aq_create(&cfg, snd) || lh_aq_create(&cfg, rcv)) return -1;
    float act[NS * E], out[NS * E];
    uint64_t ids[NS] = {0, 1, 2}, got[NS], bad[NS];
    fill(act, 0);
    size_t cap = lh_aq_bound(*snd, NS), len, n, nb;
    uint8_t *msg = malloc(cap);
    int rc = msg && !lh_aq_encode(*snd, act, ids, NS, 0, msg, cap, &len) &&
                     !lh_aq_decode(*rcv, msg, len, out, NS, got, &n, bad, &nb)
                 ? 0
                 : -1;
    free(msg);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the storage format is part of the message; pick the receiver that matches */
    int variant = size > 5 && data[5] == 1 ? 1 : size > 5 && data[5] == 2 ? 8 : 0;
    lh_aq_codec *snd = NULL, *rcv = NULL;
    if (seeded_pair(variant, &snd, &rcv) == 0) {
        size_t n = 0;
        if (lh_aq_peek(data, size, &n) == LH_OK && n <= 1024) {
            float *out = malloc(n * E * sizeof(float));
            uint64_t *ids = malloc(n * sizeof *ids), *bad = malloc(n * sizeof *bad);
            size_t got, nb;
            if (out && ids && bad) (void)lh_aq_decode(rcv, data, size, out, n, ids, &got, bad, &nb);
            free(out);
            free(ids);
            free(bad);
        } else {
            float out[NS * E];
            uint64_t ids[NS], bad[NS];
            size_t got, nb;
            (void)lh_aq_decode(rcv, data, size, out, NS, ids, &got, bad, &nb);
        }
    }
    lh_aq_free(snd);
    lh_aq_free(rcv);
    return 0;
}

#ifdef LH_FUZZ_GEN_CORPUS
int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    int count = 0;
    for (int variant = 0; variant < 10; variant++) {
        lh_aq_codec *snd, *rcv;
        if (seeded_pair(variant, &snd, &rcv)) return 1;
        float act[NS * E];
        fill(act, 1);
        uint64_t ids[NS] = {2, 4, 0}; /* 2 and 0 delta, 4 full */
        size_t cap = lh_aq_bound(snd, NS), len;
        uint8_t *msg = malloc(cap);
        if (lh_aq_encode(snd, act, ids, NS, 1, msg, cap, &len)) return 1;
        char path[512];
        snprintf(path, sizeof path, "%s/aq_v%d.bin", argv[1], variant);
        FILE *f = fopen(path, "wb");
        if (!f) return 1;
        fwrite(msg, 1, len, f);
        fclose(f);
        count++;
        free(msg);
        lh_aq_free(snd);
        lh_aq_free(rcv);
    }
    printf("%d messages\n", count);
    return 0;
}
#endif
