/*
 * bench_compress: speed, size and error of the compress/ codecs on one core,
 * each next to memcpy of the same buffer measured in the same run (the codec
 * is worth it only if it runs near memory speed), plus the AQ-SGD reference
 * quantizer's error on the same data (what we must not be worse than).
 *
 * Data: N(0,1) activations of rows x cols (default 1024 x 1600, the issue's
 * 1 x 1024 x 1600), per-channel scales unless --group G.  Times are the best
 * of --reps runs (the machine is shared; the best run is the least disturbed).
 * At 2 bits one more row, quantize_clip2, encodes with scale clipping
 * (clip_rms 2: scale = min(absmax, 2 RMS)).
 *
 *   bench_compress [--json] [--rows R] [--cols C] [--reps N] [--group G] [--zstd L]
 *
 * With --json, one object per (op, bits): op, bits, gbps (fp32 bytes read by
 * quantize / written by dequantize per second), memcpy_gbps, wire_bytes,
 * raw_bytes, rel_l2, and the settings.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_compress.h"
#include "lh_time.h"

static uint64_t rng_state = 12345;
static double rng_uniform(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return ((rng_state >> 11) + 0.5) / 9007199254740992.0;
}
static float rng_gauss(void)
{
    return (float)(sqrt(-2 * log(rng_uniform())) * cos(6.283185307179586 * rng_uniform()));
}

static double rel_l2(const float *x, const float *y, size_t n)
{
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
        s += (double)x[i] * x[i];
    }
    return sqrt(e / s);
}

/* The AC-SGD reference: absmax per channel, codes in [-2^(b-1), 2^(b-1)-1], round to nearest. */
static void reference_roundtrip(const float *x, float *y, size_t rows, size_t cols, int bits)
{
    float *s = calloc(cols, sizeof *s);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            s[c] = fmaxf(s[c], fabsf(x[r * cols + c]));
    float lo = -(float)(1 << (bits - 1)), hi = (float)((1 << (bits - 1)) - 1);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            float step = s[c] / (float)(1 << (bits - 1));
            float q = step > 0 ? nearbyintf(x[r * cols + c] / step) : 0;
            q = fminf(fmaxf(q, lo), hi);
            y[r * cols + c] = q * step;
        }
    free(s);
}

typedef struct result {
    const char *op;
    int bits;
    double gbps, memcpy_gbps;
    size_t wire, raw;
    double rel;
} result;

static int json;
static size_t g_rows = 1024, g_cols = 1600, g_group;
static int g_reps = 7, g_zstd;

static void report(const result *r)
{
    if (json)
        printf("{\"op\":\"%s\",\"bits\":%d,\"gbps\":%.3f,\"memcpy_gbps\":%.3f,\"wire_bytes\":%zu,\"raw_"
               "bytes\":%zu,"
               "\"rel_l2\":%.5f,\"rows\":%zu,\"cols\":%zu,\"group\":%zu,\"zstd\":%d,\"threads\":1}\n",
               r->op, r->bits, r->gbps, r->memcpy_gbps, r->wire, r->raw, r->rel, g_rows, g_cols, g_group,
               g_zstd);
    else
        printf("%-18s %2d bits  %7.2f GB/s  (memcpy %6.2f GB/s, %4.0f%%)  wire %9zu / %9zu B  rel_l2 %.4f\n",
               r->op, r->bits, r->gbps, r->memcpy_gbps, 100 * r->gbps / r->memcpy_gbps, r->wire, r->raw,
               r->rel);
}

static double time_memcpy(float *dst, const float *src, size_t n)
{
    double best = 1e30;
    for (int k = 0; k < g_reps; k++) {
        double t0 = lh_now_s();
        memcpy(dst, src, n * sizeof(float));
        double t = lh_now_s() - t0;
        if (t < best) best = t;
    }
    return n * 4.0 / best / 1e9;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: bench_compress [--json] [--rows R] [--cols C] [--reps N] [--group G] [--zstd L]\n");
    return 2;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc)
            g_rows = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--cols") && i + 1 < argc)
            g_cols = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc)
            g_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--group") && i + 1 < argc)
            g_group = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--zstd") && i + 1 < argc)
            g_zstd = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--help")) {
            usage();
            return 0;
        } else
            return usage();
    }
    if (g_rows == 0 || g_cols == 0 || g_reps < 1 || (g_rows * g_cols) % 8) return usage();
    size_t n = g_rows * g_cols;
    float *x = malloc(n * 4), *y = malloc(n * 4), *m = malloc(n * 4);
    for (size_t i = 0; i < n; i++)
        x[i] = rng_gauss();
    lh_quant_ctx *ctx;
    if (lh_quant_ctx_create(&ctx)) return 1;
    const int widths[] = {2, 3, 4, 8};
    for (int w = 0; w < 4; w++) {
        int bits = widths[w];
        lh_quant_params p = lh_quant_params_default(bits);
        if (g_group) {
            p.grouping = LH_GROUP_BLOCK;
            p.group_size = (uint32_t)g_group;
        }
        p.zstd_level = g_zstd;
        size_t cap = lh_quant_bound(&p, g_rows, g_cols), len = 0;
        uint8_t *buf = malloc(cap);
        lh_sr_key key = {1, 2, 3};
        for (int sr = 0; sr < 2; sr++) {
            p.rounding = sr ? LH_ROUND_STOCHASTIC : LH_ROUND_NEAREST;
            double best_q = 1e30, best_d = 1e30;
            double mc = time_memcpy(y, x, n);
            for (int k = 0; k < g_reps; k++) {
                double t0 = lh_now_s();
                if (lh_quant_encode(ctx, &p, x, g_rows, g_cols, &key, buf, cap, &len)) {
                    fprintf(stderr, "encode: %s\n", lh_last_error());
                    return 1;
                }
                double t1 = lh_now_s();
                if (lh_quant_decode(ctx, buf, len, y, g_rows, g_cols)) {
                    fprintf(stderr, "decode: %s\n", lh_last_error());
                    return 1;
                }
                double t2 = lh_now_s();
                if (t1 - t0 < best_q) best_q = t1 - t0;
                if (t2 - t1 < best_d) best_d = t2 - t1;
            }
            double mc2 = time_memcpy(m, x, n);
            if (mc2 > mc) mc = mc2;
            double rel = rel_l2(x, y, n);
            result rq = {sr ? "quantize_sr" : "quantize", bits, n * 4.0 / best_q / 1e9, mc, len, n * 4, rel};
            result rd = {
                sr ? "dequantize_sr" : "dequantize", bits, n * 4.0 / best_d / 1e9, mc, len, n * 4, rel};
            report(&rq);
            report(&rd);
        }
        /* scale clipping (clip_rms 2: scale = min(absmax, 2 RMS)) at 2 bits: its speed and its error */
        if (bits == 2) {
            lh_quant_params pc = p;
            pc.rounding = LH_ROUND_NEAREST;
            pc.clip_rms = 2.0f;
            double best_q = 1e30, mc = time_memcpy(y, x, n);
            for (int k = 0; k < g_reps; k++) {
                double t0 = lh_now_s();
                if (lh_quant_encode(ctx, &pc, x, g_rows, g_cols, NULL, buf, cap, &len)) {
                    fprintf(stderr, "encode: %s\n", lh_last_error());
                    return 1;
                }
                double t = lh_now_s() - t0;
                if (t < best_q) best_q = t;
            }
            if (lh_quant_decode(ctx, buf, len, y, g_rows, g_cols)) {
                fprintf(stderr, "decode: %s\n", lh_last_error());
                return 1;
            }
            result rc = {"quantize_clip2", bits, n * 4.0 / best_q / 1e9, mc, len, n * 4, rel_l2(x, y, n)};
            report(&rc);
        }
        /* the reference quantizer's error on the same data (scalar, not optimised: gbps for orientation) */
        if (!g_group) {
            double t0 = lh_now_s();
            reference_roundtrip(x, y, g_rows, g_cols, bits);
            double t = lh_now_s() - t0;
            size_t ref_wire = n * bits / 8 + g_cols * 2;
            result rr = {"reference_rtn", bits,  n * 4.0 / t / 1e9, time_memcpy(m, x, n),
                         ref_wire,        n * 4, rel_l2(x, y, n)};
            report(&rr);
        }
        /* AQ-SGD delta path: one sample of rows x cols whose cache already holds a nearby activation */
        if (!g_group || n % g_group == 0) {
            lh_aq_config cfg;
            memset(&cfg, 0, sizeof cfg);
            cfg.sample_rows = g_rows;
            cfg.channels = g_cols;
            cfg.max_samples = 1;
            cfg.quant = p;
            cfg.quant.rounding = LH_ROUND_NEAREST;
            lh_aq_codec *snd, *rcv;
            if (lh_aq_create(&cfg, &snd) || lh_aq_create(&cfg, &rcv)) {
                fprintf(stderr, "aq: %s\n", lh_last_error());
                return 1;
            }
            size_t acap = lh_aq_bound(snd, 1), alen, got, nb;
            uint8_t *msg = malloc(acap);
            uint64_t id = 0, ids, bad;
            if (lh_aq_encode(snd, x, &id, 1, 0, msg, acap, &alen) ||
                lh_aq_decode(rcv, msg, alen, y, 1, &ids, &got, &bad, &nb))
                return 1;
            double best_e = 1e30, best_d = 1e30, rel = 0;
            double mc = time_memcpy(y, x, n);
            for (int k = 0; k < g_reps; k++) {
                for (size_t i = 0; i < n; i++)
                    m[i] = x[i] + 0.1f * rng_gauss(); /* next epoch's activation */
                double t0 = lh_now_s();
                if (lh_aq_encode(snd, m, &id, 1, (uint64_t)k + 1, msg, acap, &alen)) return 1;
                double t1 = lh_now_s();
                if (lh_aq_decode(rcv, msg, alen, y, 1, &ids, &got, &bad, &nb)) return 1;
                double t2 = lh_now_s();
                if (t1 - t0 < best_e) best_e = t1 - t0;
                if (t2 - t1 < best_d) best_d = t2 - t1;
                rel = rel_l2(m, y, n);
            }
            result re = {"aq_encode", bits, n * 4.0 / best_e / 1e9, mc, alen, n * 4, rel};
            result rd = {"aq_decode", bits, n * 4.0 / best_d / 1e9, mc, alen, n * 4, rel};
            report(&re);
            report(&rd);
            free(msg);
            lh_aq_free(snd);
            lh_aq_free(rcv);
        }
        free(buf);
    }
    lh_quant_ctx_free(ctx);
    free(x);
    free(y);
    free(m);
    return 0;
}
