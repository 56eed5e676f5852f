/*
 * Fuzz target for the checkpoint codec-state parsers: the engine's state file
 * (LHST, lh_engine_state_parse) and the states inside it, AQ-SGD caches
 * (LHAS, lh_aq_load_state), compressed-allreduce residuals (LHCS,
 * lh_callreduce_state_peek) and gradient residuals (LHGS, lh_grad_load_state).
 *
 * The first input byte picks the mode: 0 as is, 1 with the trailing CRC-32C
 * recomputed by the harness (every one of these formats ends with a CRC of all
 * the bytes before it), so the fuzzer reaches the checks behind the checksum.
 * The rest is dispatched on its magic; the sections of a parsed LHST are fed
 * to their loaders in turn.  Any input must load or fail cleanly.
 *
 * Build with -DLH_FUZZ_GEN_CORPUS for a main() that writes seed states into
 * argv[1] (each in both modes).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_bytes.h"
#include "lh_comm_compressed.h"
#include "lh_compress.h"
#include "lh_engine.h"
#include "lh_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { ROWS = 4, CH = 8, E = ROWS * CH, MAXS = 6, NS = 3, MAX_N = 1 << 16 };

static lh_aq_config fuzz_config(lh_aq_storage storage)
{
    lh_aq_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.sample_rows = ROWS;
    cfg.channels = CH;
    cfg.max_samples = MAXS;
    cfg.storage = storage;
    cfg.quant = lh_quant_params_default(4);
    cfg.seed = 9;
    return cfg;
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* An AQ state into a codec of the storage it claims (offset 12), so the entry checks are reachable. */
static void load_aq(const uint8_t *d, size_t n)
{
    lh_aq_storage storage = n > 12 && d[12] <= 2 ? (lh_aq_storage)d[12] : LH_AQ_STORE_FP32;
    lh_aq_config cfg = fuzz_config(storage);
    lh_aq_codec *c = NULL;
    if (lh_aq_create(&cfg, &c) == LH_OK) (void)lh_aq_load_state(c, d, n);
    lh_aq_free(c);
}

/* A gradient residual state into a codec of the length it claims (bounded). */
static void load_grad(const uint8_t *d, size_t n)
{
    uint64_t len = n >= 16 ? le64(d + 8) : 1;
    if (len == 0 || len > MAX_N) len = 1;
    lh_quant_params p = lh_quant_params_default(4);
    p.grouping = LH_GROUP_TENSOR;
    lh_grad_codec *g = NULL;
    if (lh_grad_create((size_t)len, &p, 1, &g) == LH_OK) (void)lh_grad_load_state(g, d, n);
    lh_grad_free(g);
}

static void load_callreduce(const uint8_t *d, size_t n)
{
    lh_callreduce_state_info info;
    if (lh_callreduce_state_peek(d, n, &info) != LH_OK) return;
    load_grad(info.worker, info.worker_bytes);
    load_grad(info.server, info.server_bytes);
}

static void dispatch(const uint8_t *d, size_t n)
{
    if (n >= 4 && !memcmp(d, "LHST", 4)) {
        lh_engine_state_info info;
        if (lh_engine_state_parse(d, n, &info) != LH_OK) return;
        for (int i = 0; i < info.n_sections; i++) {
            if (info.sections[i].kind == LH_ENGINE_STATE_GRAD)
                load_callreduce(info.sections[i].data, info.sections[i].bytes);
            else if (info.sections[i].kind == LH_ENGINE_STATE_TIED)
                load_grad(info.sections[i].data, info.sections[i].bytes);
            else
                load_aq(info.sections[i].data, info.sections[i].bytes);
        }
    } else if (n >= 4 && !memcmp(d, "LHCS", 4)) {
        load_callreduce(d, n);
    } else if (n >= 4 && !memcmp(d, "LHGS", 4)) {
        load_grad(d, n);
    } else {
        load_aq(d, n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] % 2;
    data++;
    size--;
    if (mode == 0 || size < 4) {
        dispatch(data, size);
        return 0;
    }
    uint8_t *fixed = malloc(size);
    if (!fixed) return 0;
    memcpy(fixed, data, size);
    uint32_t c = lh_crc32c(0, fixed, size - 4);
    for (int i = 0; i < 4; i++)
        fixed[size - 4 + i] = (uint8_t)(c >> (8 * i));
    dispatch(fixed, size);
    free(fixed);
    return 0;
}

#ifdef LH_FUZZ_GEN_CORPUS
static int write_seed(const char *dir, const char *name, const uint8_t *d, size_t n)
{
    for (int mode = 0; mode < 2; mode++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s_m%d.bin", dir, name, mode);
        FILE *f = fopen(path, "wb");
        if (!f) return 1;
        uint8_t m = (uint8_t)mode;
        fwrite(&m, 1, 1, f);
        fwrite(d, 1, n, f);
        fclose(f);
    }
    return 0;
}

/* An AQ state of `storage` after two messages (ids 0..2, then 2, 4, 0: deltas and a new sample). */
static size_t aq_state(lh_aq_storage storage, uint8_t *out, size_t cap)
{
    lh_aq_config cfg = fuzz_config(storage);
    lh_aq_codec *c;
    if (lh_aq_create(&cfg, &c)) return 0;
    float act[NS * E];
    uint64_t ids[2][NS] = {{0, 1, 2}, {2, 4, 0}};
    size_t mcap = lh_aq_bound(c, NS), len = 0;
    uint8_t *msg = malloc(mcap);
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < NS * E; i++)
            act[i] = (float)((i * 29 + s * 7) % 17) * 0.125f - 1.0f;
        if (lh_aq_encode(c, act, ids[s], NS, (uint64_t)s, msg, mcap, &len)) return 0;
    }
    free(msg);
    if (lh_aq_save_state(c, out, cap, &len)) len = 0;
    lh_aq_free(c);
    return len;
}

static size_t grad_state(size_t n, uint8_t *out, size_t cap)
{
    lh_quant_params p = lh_quant_params_default(2);
    p.grouping = LH_GROUP_TENSOR;
    lh_grad_codec *g;
    if (lh_grad_create(n, &p, 1, &g)) return 0;
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((i * 13) % 11) * 0.1f - 0.5f;
    size_t fcap = lh_grad_bound(g, n), len = 0;
    uint8_t *f = malloc(fcap);
    if (lh_grad_encode(g, x, 0, f, fcap, &len) || lh_grad_save_state(g, out, cap, &len)) len = 0;
    free(f);
    free(x);
    lh_grad_free(g);
    return len;
}

/* An LHCS state by hand (creating an allreduce needs MPI): rank 1 of 2 over 20 values, block [10, +10). */
static size_t callreduce_state(uint8_t *out, size_t cap)
{
    uint8_t w[256], s[256];
    size_t wl = grad_state(20, w, sizeof w), sl = grad_state(10, s, sizeof s);
    size_t total = 56 + wl + sl + 4;
    if (!wl || !sl || total > cap) return 0;
    memcpy(out, "LHCS", 4);
    lh_put_le32(out + 4, 1);
    lh_put_le64(out + 8, 20);
    lh_put_le32(out + 16, 2);
    lh_put_le32(out + 20, 1);
    lh_put_le64(out + 24, 10);
    lh_put_le64(out + 32, 10);
    lh_put_le64(out + 40, wl);
    lh_put_le64(out + 48, sl);
    memcpy(out + 56, w, wl);
    memcpy(out + 56 + wl, s, sl);
    lh_put_le32(out + total - 4, lh_crc32c(0, out, total - 4));
    return total;
}

/* An engine state file by hand: replica 1, stage 0 of 2 x 2, step 4, sections AQ sender + residuals. */
static size_t engine_state(uint8_t *out, size_t cap)
{
    uint8_t aq[2048], cr[1024];
    size_t al = aq_state(LH_AQ_STORE_FP32, aq, sizeof aq), cl = callreduce_state(cr, sizeof cr);
    size_t total = 56 + 16 + al + 16 + cl + 4;
    if (!al || !cl || total > cap) return 0;
    memset(out, 0, 56);
    memcpy(out, "LHST", 4);
    lh_put_le32(out + 4, 1);
    lh_put_le32(out + 8, 56);
    lh_put_le32(out + 12, 2);
    lh_put_le32(out + 16, 1);
    lh_put_le32(out + 20, 0);
    lh_put_le32(out + 24, 2);
    lh_put_le32(out + 28, 2);
    lh_put_le64(out + 32, 4);
    lh_put_le64(out + 40, 0x0123456789abcdefull);
    lh_put_le64(out + 48, total);
    size_t off = 56;
    lh_put_le32(out + off, LH_ENGINE_STATE_AQ_SEND);
    lh_put_le32(out + off + 4, 0);
    lh_put_le64(out + off + 8, al);
    memcpy(out + off + 16, aq, al);
    off += 16 + al;
    lh_put_le32(out + off, LH_ENGINE_STATE_GRAD);
    lh_put_le32(out + off + 4, 0);
    lh_put_le64(out + off + 8, cl);
    memcpy(out + off + 16, cr, cl);
    off += 16 + cl;
    lh_put_le32(out + off, lh_crc32c(0, out, off));
    lh_engine_state_info info;
    return lh_engine_state_parse(out, total, &info) == LH_OK ? total : 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    static uint8_t buf[8192];
    static const char *const names[] = {"aq_fp32", "aq_fp16", "aq_int8"};
    for (int s = 0; s < 3; s++) {
        size_t n = aq_state((lh_aq_storage)s, buf, sizeof buf);
        if (!n || write_seed(argv[1], names[s], buf, n)) return 1;
    }
    size_t n = grad_state(40, buf, sizeof buf);
    if (!n || write_seed(argv[1], "grad", buf, n)) return 1;
    n = callreduce_state(buf, sizeof buf);
    if (!n || write_seed(argv[1], "callreduce", buf, n)) return 1;
    n = engine_state(buf, sizeof buf);
    if (!n || write_seed(argv[1], "engine", buf, n)) return 1;
    if (write_seed(argv[1], "engine_truncated", buf, n / 2)) return 1;
    buf[n / 2] ^= 0x40; /* inside the residual section: the nested CRC fails, the outer one only in mode 0 */
    if (write_seed(argv[1], "engine_flipped", buf, n)) return 1;
    printf("16 seeds\n");
    return 0;
}
#endif
