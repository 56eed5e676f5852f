/*
 * bench_data: is the data path ever the bottleneck of a training step?
 *
 * Each measurement runs next to a baseline taken in the same run on the same
 * bytes, so the ratio means something on any machine:
 *   shard_read     lh_shard_read of a file    vs  malloc + fread of the same file (page cache warm)
 *   shard_decode   lh_shard_decode in memory  vs  memcpy of the same bytes
 *   next_batch     lh_dataset_next_batch      vs  memcpy of the batch's int32 bytes
 *   byte_encode    lh_tokenizer_encode        vs  memcpy of the text
 *   corpus         lh_corpus_generate         (no baseline: a one-off cost, reported in MB/s)
 * Usage: bench_data [--json] [--tokens N]  (default 16M tokens; best of 5 repetitions)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lh_data.h"
#include "lh_io.h"
#include "lh_time.h"

static int json;
static volatile uint64_t sink;

static void report(const char *name, double bytes, double ours_s, double base_s, const char *baseline)
{
    double ours = bytes / ours_s / 1e9, base = base_s > 0 ? bytes / base_s / 1e9 : 0;
    if (json)
        printf("{\"bench\":\"data\",\"case\":\"%s\",\"bytes\":%.0f,\"seconds\":%.6f,\"gb_per_s\":%.3f,"
               "\"baseline\":\"%s\",\"baseline_seconds\":%.6f,\"baseline_gb_per_s\":%.3f}\n",
               name, bytes, ours_s, ours, baseline, base_s, base);
    else if (base_s > 0)
        printf("%-13s %8.2f GB/s   %-22s %8.2f GB/s   (%.2fx of baseline)\n", name, ours, baseline, base,
               ours / base);
    else
        printf("%-13s %8.3f GB/s\n", name, ours);
}

#define BEST_OF(reps, best, code)                                   \
    do {                                                            \
        best = 1e30;                                                \
        for (int rep_ = 0; rep_ < (reps); rep_++) {                 \
            double t0_ = lh_now_s();                                \
            code;                                                   \
            double dt_ = lh_now_s() - t0_;                          \
            if (dt_ < best) best = dt_;                             \
        }                                                           \
    } while (0)

int main(int argc, char **argv)
{
    size_t n_tokens = (size_t)16 << 20;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--tokens") == 0 && i + 1 < argc) n_tokens = strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_data [--json] [--tokens N]\n");
            return 2;
        }
    }
    uint16_t *tokens = malloc(n_tokens * sizeof *tokens);
    for (size_t i = 0; i < n_tokens; i++) tokens[i] = (uint16_t)((i * 2654435761u) % 50257);
    char path[64];
    snprintf(path, sizeof path, "/tmp/bench_data_%ld.bin", (long)getpid());
    if (lh_shard_write(path, tokens, n_tokens)) {
        fprintf(stderr, "bench_data: %s\n", lh_last_error());
        return 1;
    }
    size_t image_len = lh_shard_image_bound(n_tokens);
    double ours, base;

    /* shard_read vs fread */
    BEST_OF(5, base, { /* a minimal reader: fresh buffer, one fread, no checks */
        uint8_t *buf = malloc(image_len);
        FILE *f = fopen(path, "rb");
        sink += fread(buf, 1, image_len, f);
        fclose(f);
        sink += buf[image_len - 1];
        free(buf);
    });
    BEST_OF(5, ours, {
        uint16_t *t;
        size_t n;
        if (lh_shard_read(path, 50257, &t, &n)) return 1;
        sink += t[n - 1];
        free(t);
    });
    report("shard_read", (double)image_len, ours, base, "fread");
    unlink(path);

    /* shard_decode vs memcpy */
    uint8_t *raw = malloc(image_len);
    size_t written;
    if (lh_shard_encode(tokens, n_tokens, raw, image_len, &written)) return 1;
    uint16_t *out = malloc(n_tokens * sizeof *out);
    BEST_OF(5, base, { memcpy(out, raw + LH_SHARD_HEADER_BYTES, n_tokens * 2); sink += out[7]; });
    BEST_OF(5, ours, {
        size_t n;
        if (lh_shard_decode(raw, image_len, "bench", 50257, out, n_tokens, &n)) return 1;
        sink += out[7];
    });
    report("shard_decode", (double)image_len, ours, base, "memcpy");

    /* next_batch (GPT-2 small shape, shuffled) vs memcpy of the output bytes */
    lh_dataset_config cfg;
    lh_dataset_config_default(&cfg);
    cfg.seq_len = 1024;
    cfg.val_fraction = 0;
    lh_dataset *ds;
    if (lh_dataset_create_from_tokens(tokens, n_tokens, &cfg, &ds)) {
        fprintf(stderr, "bench_data: %s\n", lh_last_error());
        return 1;
    }
    const uint32_t B = 16, T = 1024, batches = 64;
    int32_t *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    int32_t *src = malloc((size_t)B * T * sizeof *src);
    memset(src, 1, (size_t)B * T * sizeof *src);
    BEST_OF(5, base, {
        for (uint32_t k = 0; k < batches; k++) {
            memcpy(in, src, (size_t)B * T * 4);
            memcpy(tg, src, (size_t)B * T * 4);
            sink += (uint64_t)in[k] + (uint64_t)tg[k];
        }
    });
    BEST_OF(5, ours, {
        for (uint32_t k = 0; k < batches; k++) {
            if (lh_dataset_next_batch(ds, B, in, tg, NULL)) return 1;
            sink += (uint64_t)in[k] + (uint64_t)tg[k];
        }
    });
    report("next_batch", (double)batches * B * T * 8, ours, base, "memcpy");
    lh_dataset_free(ds);

    /* byte tokenizer encode vs memcpy of the text */
    char *text;
    size_t text_len;
    if (lh_corpus_default(&text, &text_len)) return 1;
    lh_tokenizer *tok;
    if (lh_tokenizer_create_byte(&tok)) return 1;
    char *copy = malloc(text_len);
    BEST_OF(5, base, { memcpy(copy, text, text_len); sink += (uint8_t)copy[text_len / 2]; });
    BEST_OF(5, ours, {
        size_t n;
        if (lh_tokenizer_encode(tok, text, text_len, out, n_tokens, &n)) return 1;
        sink += out[n / 2];
    });
    report("byte_encode", (double)text_len, ours, base, "memcpy");

    /* corpus generation */
    BEST_OF(3, ours, { sink += lh_corpus_generate(LH_CORPUS_DEFAULT_SEED, copy, text_len); });
    report("corpus", (double)text_len, ours, 0, "");

    lh_tokenizer_free(tok);
    free(copy);
    free(text);
    free(in);
    free(tg);
    free(src);
    free(out);
    free(raw);
    free(tokens);
    return 0;
}
