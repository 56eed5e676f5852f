/*
 * Fuzz target for the quantized frame decoder (LHQW): whatever the bytes, peek
 * and decode either succeed or return an error; they never crash or touch
 * memory outside the input and the output tensor.  The output is sized from
 * the header when it is small enough, else from a fixed shape (which must then
 * fail with a shape mismatch).
 *
 * Build with -DLH_FUZZ_GEN_CORPUS for a main() that writes the seed corpus
 * (valid frames of every width, grid, grouping, scale type, zstd on/off) into
 * the directory given as argv[1].
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_compress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lh_quant_ctx *ctx;
    if (!ctx && lh_quant_ctx_create(&ctx) != LH_OK) return 0;
    lh_quant_info info;
    size_t rows = 4, cols = 4;
    if (lh_quant_peek(data, size, &info) == LH_OK && (size_t)info.rows * info.cols <= (1u << 20)) {
        rows = info.rows;
        cols = info.cols;
    }
    float *out = malloc(rows * cols * sizeof(float));
    if (!out) return 0;
    memset(out, 0, rows * cols * sizeof(float));
    lh_status st = lh_quant_decode(ctx, data, size, out, rows, cols);
    if (st == LH_OK) {
        /* a frame that decodes must also accumulate */
        if (lh_quant_decode_add(ctx, data, size, out, rows, cols) != LH_OK) abort();
    }
    free(out);
    return 0;
}

#ifdef LH_FUZZ_GEN_CORPUS
int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    lh_quant_ctx *ctx;
    lh_quant_ctx_create(&ctx);
    float x[6 * 20];
    for (int i = 0; i < 120; i++)
        x[i] = (float)((i * 37) % 23) - 11.0f + (i % 3 ? 0.25f : 0.0f);
    int count = 0;
    for (int b = 1; b <= 8; b++)
        for (int variant = 0; variant < 4; variant++) {
            lh_quant_params p = lh_quant_params_default(b);
            p.grid = (lh_grid)(variant & 1);
            p.grouping = (lh_grouping)(variant % 3);
            p.group_size = p.grouping == LH_GROUP_BLOCK ? 16 : 0;
            p.scale_type = (lh_scale_type)(variant >> 1);
            p.zstd_level = variant == 3 ? 3 : 0;
            p.rounding = variant == 2 ? LH_ROUND_STOCHASTIC : LH_ROUND_NEAREST;
            lh_sr_key key = {1, 2, 3};
            uint8_t buf[1024];
            size_t len;
            if (lh_quant_encode(ctx, &p, x, 6, 20, &key, buf, sizeof buf, &len) != LH_OK) return 1;
            char path[512];
            snprintf(path, sizeof path, "%s/frame_b%d_v%d.bin", argv[1], b, variant);
            FILE *f = fopen(path, "wb");
            if (!f) return 1;
            fwrite(buf, 1, len, f);
            fclose(f);
            count++;
        }
    lh_quant_params r = lh_quant_params_default(LH_QUANT_BITS_RAW);
    r.zstd_level = 1;
    uint8_t buf[1024];
    size_t len;
    for (int i = 0; i < 120; i++)
        x[i] = (float)(i % 4);
    if (lh_quant_encode(ctx, &r, x, 6, 20, NULL, buf, sizeof buf, &len) != LH_OK) return 1;
    char path[512];
    snprintf(path, sizeof path, "%s/frame_raw_zstd.bin", argv[1]);
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, len, f);
    fclose(f);
    printf("%d frames\n", count + 1);
    lh_quant_ctx_free(ctx);
    return 0;
}
#endif
