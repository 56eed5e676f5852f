/*
 * llm.c and longhaul checkpoint readers and writers (formats in
 * lh_checkpoint.h and docs/model.md).
 *
 * Both readers work on a `source`, either an open FILE or a memory image, with
 * one bounds-checked read_at(): every offset and length derived from a file is
 * validated against the source length before use, so a hostile file can cause
 * an error but never an out-of-bounds read or an oversized allocation (the
 * only allocation driven by file content is a fixed 1 MiB discard buffer).
 * Data is read straight into the stage's buffers, so loading GPT-2 124M does
 * not need a second copy of the 500 MB file in memory.
 *
 * Byte order: both formats are little-endian, like llm.c; this code assumes a
 * little-endian host (x86-64, aarch64), which CMake's targets are.
 */
#include "lh_checkpoint.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_bytes.h"
#include "lh_io.h"

/* ---- sources ---- */

typedef struct source {
    const char *name; /* for messages */
    FILE *file;
    const uint8_t *mem;
    uint64_t len;
} source;

static lh_status source_open(source *src, const char *path)
{
    memset(src, 0, sizeof *src);
    src->name = path;
    src->file = fopen(path, "rb");
    if (!src->file) return lh_fail(errno == ENOENT ? LH_ERR_NOT_FOUND : LH_ERR_IO, "%s: %s", path, strerror(errno));
    if (fseeko(src->file, 0, SEEK_END) != 0) {
        fclose(src->file);
        return lh_fail(LH_ERR_IO, "%s: seek: %s", path, strerror(errno));
    }
    off_t end = ftello(src->file);
    if (end < 0) {
        fclose(src->file);
        return lh_fail(LH_ERR_IO, "%s: tell: %s", path, strerror(errno));
    }
    src->len = (uint64_t)end;
    return LH_OK;
}

static void source_buffer(source *src, const void *data, size_t len, const char *name)
{
    memset(src, 0, sizeof *src);
    src->name = name;
    src->mem = data;
    src->len = len;
}

static void source_close(source *src)
{
    if (src->file) fclose(src->file);
    src->file = NULL;
}

static lh_status source_read(source *src, uint64_t offset, void *dst, uint64_t bytes)
{
    if (offset > src->len || bytes > src->len - offset)
        return lh_fail(LH_ERR_TRUNCATED, "%s: needs bytes [%llu, %llu) but the file has %llu", src->name,
                       (unsigned long long)offset, (unsigned long long)(offset + bytes), (unsigned long long)src->len);
    if (bytes == 0) return LH_OK;
    if (src->mem) {
        memcpy(dst, src->mem + offset, bytes);
        return LH_OK;
    }
    if (fseeko(src->file, (off_t)offset, SEEK_SET) != 0 || fread(dst, 1, bytes, src->file) != bytes)
        return lh_fail(LH_ERR_IO, "%s: read %llu bytes at %llu failed", src->name, (unsigned long long)bytes,
                       (unsigned long long)offset);
    return LH_OK;
}

static lh_status check_finite(const float *p, int64_t n, const char *file, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(p[i]))
            return lh_fail(LH_ERR_FORMAT, "%s: %s[%lld] is not finite", file, what, (long long)i);
    return LH_OK;
}

static lh_status config_mismatch(const char *file, const lh_model_config *f, const lh_model_config *s)
{
#define LH_CMP(field)                                                                                           \
    if (f->field != s->field)                                                                                   \
        return lh_fail(LH_ERR_MISMATCH, "%s: " #field " is %d in the file but %d in the model", file, f->field, \
                       s->field);
    LH_CMP(max_seq_len) LH_CMP(vocab_size) LH_CMP(padded_vocab_size) LH_CMP(num_layers) LH_CMP(num_heads)
    LH_CMP(channels)
#undef LH_CMP
    return LH_OK;
}

lh_status lh_checkpoint_detect(const char *path, lh_checkpoint_format *format)
{
    *format = LH_CKPT_FORMAT_UNKNOWN;
    source src;
    lh_status st = source_open(&src, path);
    if (st) return st;
    uint8_t head[8] = {0};
    st = source_read(&src, 0, head, src.len < 8 ? src.len : 8);
    source_close(&src);
    if (st) return st;
    int32_t magic;
    memcpy(&magic, head, 4);
    if (src.len >= 8 && memcmp(head, LH_CKPT_MAGIC, 8) == 0)
        *format = LH_CKPT_FORMAT_LONGHAUL;
    else if (src.len >= 4 && magic == LH_LLMC_MAGIC)
        *format = LH_CKPT_FORMAT_LLMC;
    else
        return lh_fail(LH_ERR_FORMAT, "%s: neither an llm.c model file (magic %d) nor a longhaul checkpoint", path,
                       LH_LLMC_MAGIC);
    return LH_OK;
}

/* ---- llm.c ---- */

/* Floats of llm.c's 16 tensors, in file order. */
static void llmc_tensor_floats(const lh_model_config *c, int64_t sizes[16])
{
    int64_t L = c->num_layers, C = c->channels;
    sizes[0] = (int64_t)c->padded_vocab_size * C;
    sizes[1] = (int64_t)c->max_seq_len * C;
    for (int t = 0; t < LH_LAYER_TENSORS; t++) sizes[2 + t] = L * lh_layer_tensor_floats(c->channels, t);
    sizes[14] = C;
    sizes[15] = C;
}

uint64_t lh_llmc_file_bytes(const lh_model_config *c)
{
    int64_t sizes[16], total = 0;
    llmc_tensor_floats(c, sizes);
    for (int i = 0; i < 16; i++) total += sizes[i];
    return LH_LLMC_HEADER_BYTES + 4 * (uint64_t)total;
}

static const char *const llmc_names[16] = {"wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
                                           "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};

static lh_status llmc_header(source *src, lh_model_config *config)
{
    int32_t h[256];
    if (src->len < LH_LLMC_HEADER_BYTES)
        return lh_fail(LH_ERR_TRUNCATED, "%s: %llu bytes is shorter than the llm.c header (1024)", src->name,
                       (unsigned long long)src->len);
    lh_status st = source_read(src, 0, h, sizeof h);
    if (st) return st;
    if (h[0] != LH_LLMC_MAGIC)
        return lh_fail(LH_ERR_FORMAT, "%s: bad llm.c magic %d (expected %d)", src->name, h[0], LH_LLMC_MAGIC);
    if (h[1] != LH_LLMC_VERSION_FP32)
        return h[1] == 5 ? lh_fail(LH_ERR_UNSUPPORTED, "%s: llm.c version 5 (bf16) is not supported; export fp32 "
                                                       "(version 3)", src->name)
                         : lh_fail(LH_ERR_FORMAT, "%s: unknown llm.c version %d (expected 3)", src->name, h[1]);
    lh_model_config c = {.max_seq_len = h[2], .vocab_size = h[3], .num_layers = h[4], .num_heads = h[5],
                         .channels = h[6], .padded_vocab_size = h[7]};
    if (c.padded_vocab_size == 0) c.padded_vocab_size = c.vocab_size; /* pre-padding llm.c files */
    st = lh_model_config_check(&c);
    if (st) return lh_fail_prefix(st, "%s: llm.c header", src->name);
    uint64_t want = lh_llmc_file_bytes(&c);
    if (src->len != want)
        return lh_fail(src->len < want ? LH_ERR_TRUNCATED : LH_ERR_FORMAT,
                       "%s: llm.c file is %llu bytes but its header describes %llu", src->name,
                       (unsigned long long)src->len, (unsigned long long)want);
    *config = c;
    return LH_OK;
}

lh_status lh_llmc_parse_header(const void *data, size_t len, lh_model_config *config)
{
    source src;
    source_buffer(&src, data, len, "llm.c header");
    if (len < LH_LLMC_HEADER_BYTES)
        return lh_fail(LH_ERR_TRUNCATED, "llm.c header: %zu bytes, need 1024", len);
    /* parse without the file-size rule: pretend the buffer is the whole file */
    int32_t h[256];
    memcpy(h, data, sizeof h);
    lh_model_config c = {.max_seq_len = h[2], .vocab_size = h[3], .num_layers = h[4], .num_heads = h[5],
                         .channels = h[6], .padded_vocab_size = h[7]};
    if (c.padded_vocab_size == 0) c.padded_vocab_size = c.vocab_size;
    if (lh_model_config_check(&c) == LH_OK) src.len = lh_llmc_file_bytes(&c);
    return llmc_header(&src, config);
}

lh_status lh_llmc_read_config(const char *path, lh_model_config *config)
{
    source src;
    lh_status st = source_open(&src, path);
    if (st) return st;
    st = llmc_header(&src, config);
    source_close(&src);
    return st;
}

static lh_status llmc_load(lh_stage *s, source *src)
{
    lh_model_config fc;
    lh_status st = llmc_header(src, &fc);
    if (st) return st;
    if ((st = config_mismatch(src->name, &fc, lh_stage_config(s)))) return st;
    const lh_stage_spec *spec = lh_stage_get_spec(s);
    int64_t sizes[16];
    llmc_tensor_floats(&fc, sizes);
    uint64_t offsets[16], off = LH_LLMC_HEADER_BYTES;
    for (int i = 0; i < 16; i++) {
        offsets[i] = off;
        off += 4 * (uint64_t)sizes[i];
    }
    float *wte = lh_stage_wte(s, 0);
    if (wte) {
        if ((st = source_read(src, offsets[0], wte, 4 * (uint64_t)sizes[0]))) return st;
        if ((st = check_finite(wte, sizes[0], src->name, "wte"))) return st;
    }
    if (spec->has_embedding) {
        if ((st = source_read(src, offsets[1], lh_stage_wpe(s, 0), 4 * (uint64_t)sizes[1]))) return st;
        if ((st = check_finite(lh_stage_wpe(s, 0), sizes[1], src->name, "wpe"))) return st;
    }
    for (int t = 0; t < LH_LAYER_TENSORS; t++) {
        int64_t per_layer = lh_layer_tensor_floats(fc.channels, t);
        for (int l = spec->first_layer; l < spec->first_layer + spec->layer_count; l++) {
            float *dst = lh_stage_layer_tensor(s, l, t, 0);
            if ((st = source_read(src, offsets[2 + t] + 4 * (uint64_t)(l * per_layer), dst, 4 * (uint64_t)per_layer)))
                return st;
            if ((st = check_finite(dst, per_layer, src->name, llmc_names[2 + t]))) return st;
        }
    }
    if (spec->has_head) {
        if ((st = source_read(src, offsets[14], lh_stage_lnfw(s, 0), 4 * (uint64_t)fc.channels))) return st;
        if ((st = source_read(src, offsets[15], lh_stage_lnfb(s, 0), 4 * (uint64_t)fc.channels))) return st;
        if ((st = check_finite(lh_stage_lnfw(s, 0), fc.channels, src->name, "lnfw"))) return st;
        if ((st = check_finite(lh_stage_lnfb(s, 0), fc.channels, src->name, "lnfb"))) return st;
    }
    int64_t n = lh_stage_param_count(s);
    memset(lh_stage_grads(s), 0, (size_t)n * sizeof(float));
    memset(lh_stage_adam_m(s), 0, (size_t)n * sizeof(float));
    memset(lh_stage_adam_v(s), 0, (size_t)n * sizeof(float));
    return LH_OK;
}

lh_status lh_llmc_load(lh_stage *s, const char *path)
{
    source src;
    lh_status st = source_open(&src, path);
    if (st) return st;
    st = llmc_load(s, &src);
    source_close(&src);
    return st;
}

lh_status lh_llmc_load_buffer(lh_stage *s, const void *data, size_t len)
{
    source src;
    source_buffer(&src, data, len, "llm.c buffer");
    return llmc_load(s, &src);
}

lh_status lh_llmc_save(lh_stage *s, const char *path)
{
    const lh_model_config *c = lh_stage_config(s);
    const lh_stage_spec *spec = lh_stage_get_spec(s);
    if (!spec->has_embedding || !spec->has_head || spec->first_layer != 0 || spec->layer_count != c->num_layers)
        return lh_fail(LH_ERR_UNSUPPORTED, "%s: llm.c export needs the whole model in one stage", path);
    int32_t h[256] = {0};
    h[0] = LH_LLMC_MAGIC;
    h[1] = LH_LLMC_VERSION_FP32;
    h[2] = c->max_seq_len;
    h[3] = c->vocab_size;
    h[4] = c->num_layers;
    h[5] = c->num_heads;
    h[6] = c->channels;
    h[7] = c->padded_vocab_size;
    lh_atomic_file *f;
    lh_status st = lh_atomic_file_open(path, &f);
    if (st) return st;
    if ((st = lh_atomic_file_write(f, h, sizeof h))) goto fail;
    if ((st = lh_atomic_file_write(f, lh_stage_wte(s, 0), 4 * (size_t)c->padded_vocab_size * c->channels))) goto fail;
    if ((st = lh_atomic_file_write(f, lh_stage_wpe(s, 0), 4 * (size_t)c->max_seq_len * c->channels))) goto fail;
    for (int t = 0; t < LH_LAYER_TENSORS; t++)
        for (int l = 0; l < c->num_layers; l++)
            if ((st = lh_atomic_file_write(f, lh_stage_layer_tensor(s, l, t, 0),
                                           4 * (size_t)lh_layer_tensor_floats(c->channels, t))))
                goto fail;
    if ((st = lh_atomic_file_write(f, lh_stage_lnfw(s, 0), 4 * (size_t)c->channels))) goto fail;
    if ((st = lh_atomic_file_write(f, lh_stage_lnfb(s, 0), 4 * (size_t)c->channels))) goto fail;
    return lh_atomic_file_commit(f);
fail:
    lh_atomic_file_abort(f);
    return st;
}

/* ---- longhaul ---- */

#define CKPT_HEADER_BYTES 64
#define CKPT_ENTRY_BYTES 32
#define CKPT_FLAG_OPTIMIZER 1u
#define CKPT_FLAG_PARTIAL 2u

enum { REC_EMBEDDING = 1, REC_LAYER = 2, REC_HEAD = 3 };

typedef struct ckpt_entry {
    uint32_t kind;
    int32_t layer;
    uint64_t offset, floats;
    uint32_t crc;
} ckpt_entry;

typedef struct ckpt_header {
    lh_model_config config;
    int64_t step;
    uint32_t record_count, flags;
} ckpt_header;

/* A record's parameters are 1 or 2 pieces (wte + wpe for the embedding); -1 offset = not held by the stage. */
typedef struct record_layout {
    int pieces;
    int64_t floats[2];
    int64_t stage_offset[2];
} record_layout;

static int64_t record_floats(const lh_model_config *c, uint32_t kind)
{
    switch (kind) {
    case REC_EMBEDDING: return ((int64_t)c->padded_vocab_size + c->max_seq_len) * c->channels;
    case REC_LAYER: return lh_layer_param_floats(c->channels);
    default: return 2 * (int64_t)c->channels;
    }
}

/* Where record (kind, layer) lives in `s`; offsets -1 for parts `s` does not hold. */
static record_layout layout_for(lh_stage *s, uint32_t kind, int layer)
{
    const lh_model_config *c = lh_stage_config(s);
    float *base = lh_stage_params(s);
    record_layout r = {0};
    if (kind == REC_EMBEDDING) {
        r.pieces = 2;
        r.floats[0] = (int64_t)c->padded_vocab_size * c->channels;
        r.floats[1] = (int64_t)c->max_seq_len * c->channels;
        r.stage_offset[0] = lh_stage_wte(s, 0) ? lh_stage_wte(s, 0) - base : -1;
        r.stage_offset[1] = lh_stage_wpe(s, 0) ? lh_stage_wpe(s, 0) - base : -1;
    } else if (kind == REC_LAYER) {
        r.pieces = 1;
        r.floats[0] = lh_layer_param_floats(c->channels);
        float *p = lh_stage_layer_tensor(s, layer, LH_LN1W, 0);
        r.stage_offset[0] = p ? p - base : -1;
    } else {
        r.pieces = 1;
        r.floats[0] = 2 * (int64_t)c->channels;
        r.stage_offset[0] = lh_stage_lnfw(s, 0) ? lh_stage_lnfw(s, 0) - base : -1;
    }
    return r;
}

static void encode_header(uint8_t out[CKPT_HEADER_BYTES], const ckpt_header *h)
{
    memset(out, 0, CKPT_HEADER_BYTES);
    memcpy(out, LH_CKPT_MAGIC, 8);
    lh_put_le32(out + 8, LH_CKPT_VERSION);
    lh_put_le32(out + 12, CKPT_HEADER_BYTES);
    const lh_model_config *c = &h->config;
    int32_t cfg[6] = {c->max_seq_len, c->vocab_size, c->padded_vocab_size, c->num_layers, c->num_heads, c->channels};
    memcpy(out + 16, cfg, sizeof cfg);
    lh_put_le64(out + 40, (uint64_t)h->step);
    lh_put_le32(out + 48, h->record_count);
    lh_put_le32(out + 52, h->flags);
    lh_put_le32(out + 60, lh_crc32c(0, out, 60));
}

/* Which stage owns each record slot (0 embedding, 1..L layers, L+1 head); NULL where none. */
static lh_status find_owners(const char *path, lh_stage *const *stages, int stage_count, int L, lh_stage **owner)
{
    for (int i = 0; i < stage_count; i++) {
        const lh_stage_spec *sp = lh_stage_get_spec(stages[i]);
        int slots[2] = {sp->has_embedding ? 0 : -1, sp->has_head ? L + 1 : -1};
        for (int k = 0; k < 2; k++)
            if (slots[k] >= 0) {
                if (owner[slots[k]])
                    return lh_fail(LH_ERR_INVALID_ARG, "%s: two stages own the %s", path, k ? "head" : "embedding");
                owner[slots[k]] = stages[i];
            }
        for (int l = sp->first_layer; l < sp->first_layer + sp->layer_count; l++) {
            if (owner[1 + l]) return lh_fail(LH_ERR_INVALID_ARG, "%s: two stages own layer %d", path, l);
            owner[1 + l] = stages[i];
        }
    }
    return LH_OK;
}

static const char *slot_name(int slot, int L, char *buf, size_t cap)
{
    if (slot == 0) return "the embedding";
    if (slot == L + 1) return "the head";
    snprintf(buf, cap, "layer %d", slot - 1);
    return buf;
}

/* Write the records of `stages` (all of them when !partial, else those owned). */
static lh_status ckpt_write(const char *path, lh_stage *const *stages, int stage_count, int64_t step, int partial)
{
    if (stage_count < 1) return lh_fail(LH_ERR_INVALID_ARG, "%s: no stages to save", path);
    if (step < 0) return lh_fail(LH_ERR_INVALID_ARG, "%s: negative step %lld", path, (long long)step);
    const lh_model_config *c = lh_stage_config(stages[0]);
    for (int i = 1; i < stage_count; i++) {
        lh_status st = config_mismatch(path, lh_stage_config(stages[i]), c);
        if (st) return lh_fail_prefix(st, "stages disagree");
    }
    int L = c->num_layers, slots = L + 2;
    lh_stage **owner = calloc((size_t)slots, sizeof *owner);
    ckpt_entry *entries = calloc((size_t)slots, sizeof *entries);
    uint8_t *table = calloc((size_t)slots * CKPT_ENTRY_BYTES + 4, 1);
    lh_status st = LH_OK;
    lh_atomic_file *f = NULL;
    char name[32];
    if (!owner || !entries || !table) {
        st = lh_fail(LH_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if ((st = find_owners(path, stages, stage_count, L, owner))) goto done;
    int count = 0;
    for (int r = 0; r < slots; r++) {
        if (owner[r]) {
            count++;
        } else if (!partial) {
            st = lh_fail(LH_ERR_INVALID_ARG, "%s: no stage owns %s", path, slot_name(r, L, name, sizeof name));
            goto done;
        }
    }
    uint64_t offset = CKPT_HEADER_BYTES + (uint64_t)count * CKPT_ENTRY_BYTES + 4;
    int n = 0;
    for (int r = 0; r < slots; r++) {
        if (!owner[r]) continue;
        ckpt_entry *e = &entries[n];
        e->kind = r == 0 ? REC_EMBEDDING : r == L + 1 ? REC_HEAD : REC_LAYER;
        e->layer = e->kind == REC_LAYER ? r - 1 : -1;
        e->floats = (uint64_t)record_floats(c, e->kind);
        e->offset = offset;
        offset += 12 * e->floats; /* params, m, v */
        record_layout lay = layout_for(owner[r], e->kind, e->layer);
        float *bufs[3] = {lh_stage_params(owner[r]), lh_stage_adam_m(owner[r]), lh_stage_adam_v(owner[r])};
        uint32_t crc = 0;
        for (int b = 0; b < 3; b++)
            for (int p = 0; p < lay.pieces; p++)
                crc = lh_crc32c(crc, bufs[b] + lay.stage_offset[p], 4 * (size_t)lay.floats[p]);
        e->crc = crc;
        uint8_t *t = table + (size_t)n * CKPT_ENTRY_BYTES;
        lh_put_le32(t, e->kind);
        lh_put_le32(t + 4, (uint32_t)e->layer);
        lh_put_le64(t + 8, e->offset);
        lh_put_le64(t + 16, e->floats);
        lh_put_le32(t + 24, e->crc);
        lh_put_le32(t + 28, 0);
        n++;
    }
    lh_put_le32(table + (size_t)count * CKPT_ENTRY_BYTES, lh_crc32c(0, table, (size_t)count * CKPT_ENTRY_BYTES));
    uint8_t header[CKPT_HEADER_BYTES];
    ckpt_header h = {*c, step, (uint32_t)count, CKPT_FLAG_OPTIMIZER | (partial ? CKPT_FLAG_PARTIAL : 0u)};
    encode_header(header, &h);
    if ((st = lh_atomic_file_open(path, &f))) goto done;
    if ((st = lh_atomic_file_write(f, header, sizeof header))) goto done;
    if ((st = lh_atomic_file_write(f, table, (size_t)count * CKPT_ENTRY_BYTES + 4))) goto done;
    n = 0;
    for (int r = 0; r < slots; r++) {
        if (!owner[r]) continue;
        record_layout lay = layout_for(owner[r], entries[n].kind, entries[n].layer);
        float *bufs[3] = {lh_stage_params(owner[r]), lh_stage_adam_m(owner[r]), lh_stage_adam_v(owner[r])};
        for (int b = 0; b < 3; b++)
            for (int p = 0; p < lay.pieces; p++)
                if ((st = lh_atomic_file_write(f, bufs[b] + lay.stage_offset[p], 4 * (size_t)lay.floats[p])))
                    goto done;
        n++;
    }
    st = lh_atomic_file_commit(f);
    f = NULL;
done:
    lh_atomic_file_abort(f);
    free(owner);
    free(entries);
    free(table);
    return st;
}

lh_status lh_ckpt_save(const char *path, lh_stage *const *stages, int stage_count, int64_t step)
{
    return ckpt_write(path, stages, stage_count, step, 0);
}

lh_status lh_ckpt_save_part(const char *path, lh_stage *stage, int64_t step)
{
    return ckpt_write(path, &stage, 1, step, 1);
}

/* A file's validated header and its records in canonical slots (present[] marks those it holds). */
typedef struct ckpt_index {
    ckpt_header h;
    ckpt_entry *entries; /* L + 2 */
    uint8_t *present;    /* L + 2 */
} ckpt_index;

static void ckpt_index_free(ckpt_index *ix)
{
    free(ix->entries);
    free(ix->present);
    ix->entries = NULL;
    ix->present = NULL;
}

static lh_status ckpt_read_index(source *src, ckpt_index *ix)
{
    memset(ix, 0, sizeof *ix);
    ckpt_header *h = &ix->h;
    uint8_t hb[CKPT_HEADER_BYTES];
    if (src->len < CKPT_HEADER_BYTES)
        return lh_fail(LH_ERR_TRUNCATED, "%s: %llu bytes is shorter than a longhaul checkpoint header", src->name,
                       (unsigned long long)src->len);
    lh_status st = source_read(src, 0, hb, sizeof hb);
    if (st) return st;
    if (memcmp(hb, LH_CKPT_MAGIC, 8) != 0) return lh_fail(LH_ERR_FORMAT, "%s: not a longhaul checkpoint", src->name);
    if (lh_get_le32(hb + 8) != LH_CKPT_VERSION)
        return lh_fail(LH_ERR_UNSUPPORTED, "%s: checkpoint version %u, this build reads %d", src->name, lh_get_le32(hb + 8),
                       LH_CKPT_VERSION);
    if (lh_get_le32(hb + 12) != CKPT_HEADER_BYTES)
        return lh_fail(LH_ERR_FORMAT, "%s: header size %u (expected %d)", src->name, lh_get_le32(hb + 12), CKPT_HEADER_BYTES);
    if (lh_get_le32(hb + 60) != lh_crc32c(0, hb, 60)) return lh_fail(LH_ERR_CORRUPT, "%s: header checksum mismatch", src->name);
    int32_t cfg[6];
    memcpy(cfg, hb + 16, sizeof cfg);
    h->config = (lh_model_config){.max_seq_len = cfg[0], .vocab_size = cfg[1], .padded_vocab_size = cfg[2],
                                  .num_layers = cfg[3], .num_heads = cfg[4], .channels = cfg[5]};
    if (h->config.padded_vocab_size == 0) return lh_fail(LH_ERR_FORMAT, "%s: padded_vocab_size is 0", src->name);
    if ((st = lh_model_config_check(&h->config))) return lh_fail_prefix(st, "%s", src->name);
    h->step = (int64_t)lh_get_le64(hb + 40);
    h->record_count = lh_get_le32(hb + 48);
    h->flags = lh_get_le32(hb + 52);
    if (h->step < 0) return lh_fail(LH_ERR_FORMAT, "%s: negative step", src->name);
    if (h->flags & ~(CKPT_FLAG_OPTIMIZER | CKPT_FLAG_PARTIAL))
        return lh_fail(LH_ERR_FORMAT, "%s: unknown flags 0x%x", src->name, h->flags);
    uint32_t slots = (uint32_t)h->config.num_layers + 2, count = h->record_count;
    if (h->flags & CKPT_FLAG_PARTIAL) {
        if (count < 1 || count > slots)
            return lh_fail(LH_ERR_FORMAT, "%s: partial checkpoint with %u records (expected 1 to %u)", src->name, count,
                           slots);
    } else if (count != slots) {
        return lh_fail(LH_ERR_FORMAT, "%s: %u records for %d layers (expected %u)", src->name, count,
                       h->config.num_layers, slots);
    }
    uint64_t table_bytes = (uint64_t)count * CKPT_ENTRY_BYTES;
    uint8_t *table = malloc(table_bytes + 4);
    ix->entries = calloc(slots, sizeof *ix->entries);
    ix->present = calloc(slots, 1);
    if (!table || !ix->entries || !ix->present) {
        st = lh_fail(LH_ERR_NOMEM, "%s: out of memory", src->name);
        goto fail;
    }
    if ((st = source_read(src, CKPT_HEADER_BYTES, table, table_bytes + 4))) goto fail;
    if (lh_get_le32(table + table_bytes) != lh_crc32c(0, table, table_bytes)) {
        st = lh_fail(LH_ERR_CORRUPT, "%s: record table checksum mismatch", src->name);
        goto fail;
    }
    uint64_t data_start = CKPT_HEADER_BYTES + table_bytes + 4;
    uint64_t per_float = (h->flags & CKPT_FLAG_OPTIMIZER) ? 12 : 4;
    for (uint32_t r = 0; r < count; r++) {
        const uint8_t *t = table + (size_t)r * CKPT_ENTRY_BYTES;
        ckpt_entry e = {lh_get_le32(t), (int32_t)lh_get_le32(t + 4), lh_get_le64(t + 8), lh_get_le64(t + 16), lh_get_le32(t + 24)};
        uint32_t slot;
        if (e.kind == REC_EMBEDDING && e.layer == -1) slot = 0;
        else if (e.kind == REC_HEAD && e.layer == -1) slot = slots - 1;
        else if (e.kind == REC_LAYER && e.layer >= 0 && e.layer < h->config.num_layers) slot = 1 + (uint32_t)e.layer;
        else {
            st = lh_fail(LH_ERR_FORMAT, "%s: record %u has kind %u / layer %d", src->name, r, e.kind, e.layer);
            goto fail;
        }
        if (ix->present[slot]) {
            st = lh_fail(LH_ERR_FORMAT, "%s: record %u repeats kind %u layer %d", src->name, r, e.kind, e.layer);
            goto fail;
        }
        if (e.floats != (uint64_t)record_floats(&h->config, e.kind)) {
            st = lh_fail(LH_ERR_FORMAT, "%s: record %u holds %llu floats, the config needs %lld", src->name, r,
                         (unsigned long long)e.floats, (long long)record_floats(&h->config, e.kind));
            goto fail;
        }
        uint64_t bytes = per_float * e.floats;
        if (e.offset < data_start || e.offset > src->len || bytes > src->len - e.offset) {
            st = lh_fail(LH_ERR_TRUNCATED, "%s: record %u at [%llu, +%llu) lies outside the file (%llu bytes)",
                         src->name, r, (unsigned long long)e.offset, (unsigned long long)bytes,
                         (unsigned long long)src->len);
            goto fail;
        }
        ix->present[slot] = 1;
        ix->entries[slot] = e;
    }
    free(table);
    return LH_OK;
fail:
    free(table);
    ckpt_index_free(ix);
    return st;
}

/* Read one record into the stage (parts it does not hold go to a discard buffer), verifying the CRC. */
static lh_status ckpt_read_record(source *src, lh_stage *s, const ckpt_entry *e, int has_opt, float *discard,
                                  int64_t discard_floats)
{
    record_layout lay = layout_for(s, e->kind, e->layer);
    float *bufs[3] = {lh_stage_params(s), lh_stage_adam_m(s), lh_stage_adam_v(s)};
    uint64_t off = e->offset;
    uint32_t crc = 0;
    lh_status st;
    for (int b = 0; b < (has_opt ? 3 : 1); b++)
        for (int p = 0; p < lay.pieces; p++) {
            if (lay.stage_offset[p] >= 0) {
                float *dst = bufs[b] + lay.stage_offset[p];
                if ((st = source_read(src, off, dst, 4 * (uint64_t)lay.floats[p]))) return st;
                crc = lh_crc32c(crc, dst, 4 * (size_t)lay.floats[p]);
                off += 4 * (uint64_t)lay.floats[p];
            } else {
                for (int64_t done = 0; done < lay.floats[p];) {
                    int64_t n = lay.floats[p] - done < discard_floats ? lay.floats[p] - done : discard_floats;
                    if ((st = source_read(src, off, discard, 4 * (uint64_t)n))) return st;
                    crc = lh_crc32c(crc, discard, 4 * (size_t)n);
                    off += 4 * (uint64_t)n;
                    done += n;
                }
            }
        }
    if (crc != e->crc) {
        if (e->kind == REC_LAYER)
            return lh_fail(LH_ERR_CORRUPT, "%s: layer %d record checksum mismatch", src->name, e->layer);
        return lh_fail(LH_ERR_CORRUPT, "%s: %s record checksum mismatch", src->name,
                       e->kind == REC_EMBEDDING ? "embedding" : "head");
    }
    if (!has_opt) { /* no moments in the file: start them from zero */
        for (int p = 0; p < lay.pieces; p++)
            if (lay.stage_offset[p] >= 0) {
                memset(bufs[1] + lay.stage_offset[p], 0, 4 * (size_t)lay.floats[p]);
                memset(bufs[2] + lay.stage_offset[p], 0, 4 * (size_t)lay.floats[p]);
            }
    }
    for (int b = 0; b < (has_opt ? 3 : 1); b++)
        for (int p = 0; p < lay.pieces; p++)
            if (lay.stage_offset[p] >= 0) {
                lh_status fst = check_finite(bufs[b] + lay.stage_offset[p], lay.floats[p], src->name,
                                             b == 0 ? "parameters" : "adam moments");
                if (fst) return fst;
            }
    return LH_OK;
}

/* Load what `s` owns from the records spread over `n` sources (one full file, or the parts of a split). */
static lh_status ckpt_load_sources(lh_stage *s, source *srcs, int n, int64_t *step)
{
    ckpt_index *ix = calloc((size_t)n, sizeof *ix);
    const int64_t discard_floats = 1 << 18;
    float *discard = malloc((size_t)discard_floats * sizeof(float));
    lh_status st = LH_OK;
    char name[32];
    if (!ix || !discard) {
        st = lh_fail(LH_ERR_NOMEM, "checkpoint: out of memory");
        goto done;
    }
    for (int i = 0; i < n && !st; i++) {
        if ((st = ckpt_read_index(&srcs[i], &ix[i]))) break;
        if ((st = config_mismatch(srcs[i].name, &ix[i].h.config, lh_stage_config(s)))) break;
        if (ix[i].h.step != ix[0].h.step)
            st = lh_fail(LH_ERR_MISMATCH, "checkpoint parts disagree on the step: %s has %lld, %s has %lld",
                         srcs[0].name, (long long)ix[0].h.step, srcs[i].name, (long long)ix[i].h.step);
    }
    if (st) goto done;
    const lh_stage_spec *sp = lh_stage_get_spec(s);
    int L = lh_stage_config(s)->num_layers;
    for (int slot = 0; slot < L + 2 && !st; slot++) {
        int needed = slot == 0       ? sp->has_embedding || sp->has_head /* the head's wte copy */
                     : slot == L + 1 ? sp->has_head
                                     : slot - 1 >= sp->first_layer && slot - 1 < sp->first_layer + sp->layer_count;
        if (!needed) continue;
        int i = 0;
        while (i < n && !ix[i].present[slot]) i++;
        if (i == n) {
            st = lh_fail(LH_ERR_NOT_FOUND, "%s%s: no record of %s", srcs[0].name, n > 1 ? " (and the other parts)" : "",
                         slot_name(slot, L, name, sizeof name));
            break;
        }
        st = ckpt_read_record(&srcs[i], s, &ix[i].entries[slot], (ix[i].h.flags & CKPT_FLAG_OPTIMIZER) != 0, discard,
                              discard_floats);
    }
    if (!st) {
        memset(lh_stage_grads(s), 0, (size_t)lh_stage_param_count(s) * sizeof(float));
        if (step) *step = ix[0].h.step;
    }
done:
    if (ix)
        for (int i = 0; i < n; i++) ckpt_index_free(&ix[i]);
    free(ix);
    free(discard);
    return st;
}

lh_status lh_ckpt_load_parts(lh_stage *s, const char *const *paths, int count, int64_t *step)
{
    if (count < 1) return lh_fail(LH_ERR_INVALID_ARG, "checkpoint: no files to load");
    source *srcs = calloc((size_t)count, sizeof *srcs);
    if (!srcs) return lh_fail(LH_ERR_NOMEM, "checkpoint: out of memory");
    lh_status st = LH_OK;
    int opened = 0;
    for (; opened < count && !st; opened++)
        if ((st = source_open(&srcs[opened], paths[opened]))) break;
    if (!st) st = ckpt_load_sources(s, srcs, count, step);
    for (int i = 0; i < opened; i++) source_close(&srcs[i]);
    free(srcs);
    return st;
}

lh_status lh_ckpt_load(lh_stage *s, const char *path, int64_t *step)
{
    return lh_ckpt_load_parts(s, &path, 1, step);
}

lh_status lh_ckpt_load_buffer(lh_stage *s, const void *data, size_t len, int64_t *step)
{
    source src;
    source_buffer(&src, data, len, "checkpoint buffer");
    return ckpt_load_sources(s, &src, 1, step);
}

static lh_status ckpt_info(source *src, lh_checkpoint_info *info)
{
    ckpt_index ix;
    lh_status st = ckpt_read_index(src, &ix);
    if (st) return st;
    info->config = ix.h.config;
    info->step = ix.h.step;
    info->record_count = (int)ix.h.record_count;
    info->has_optimizer = (ix.h.flags & CKPT_FLAG_OPTIMIZER) != 0;
    info->partial = (ix.h.flags & CKPT_FLAG_PARTIAL) != 0;
    ckpt_index_free(&ix);
    return LH_OK;
}

lh_status lh_ckpt_read_info(const char *path, lh_checkpoint_info *info)
{
    source src;
    lh_status st = source_open(&src, path);
    if (st) return st;
    st = ckpt_info(&src, info);
    source_close(&src);
    return st;
}

lh_status lh_ckpt_read_info_buffer(const void *data, size_t len, lh_checkpoint_info *info)
{
    source src;
    source_buffer(&src, data, len, "checkpoint buffer");
    return ckpt_info(&src, info);
}

lh_status lh_checkpoint_read_config(const char *path, lh_checkpoint_format *format, lh_model_config *config)
{
    lh_status st = lh_checkpoint_detect(path, format);
    if (st) return st;
    if (*format == LH_CKPT_FORMAT_LLMC) return lh_llmc_read_config(path, config);
    lh_checkpoint_info info;
    st = lh_ckpt_read_info(path, &info);
    if (!st) *config = info.config;
    return st;
}

lh_status lh_model_open(const char *path, int max_batch, int max_seq, lh_stage **out, int64_t *step)
{
    *out = NULL;
    lh_checkpoint_format fmt;
    lh_model_config cfg;
    lh_status st = lh_checkpoint_read_config(path, &fmt, &cfg);
    if (st) return st;
    if (max_seq <= 0 || max_seq > cfg.max_seq_len) max_seq = cfg.max_seq_len;
    lh_stage_spec spec = lh_stage_spec_whole(&cfg);
    lh_stage *s;
    if ((st = lh_stage_create(&cfg, &spec, max_batch, max_seq, 1, &s))) return st;
    int64_t file_step = 0;
    st = fmt == LH_CKPT_FORMAT_LLMC ? lh_llmc_load(s, path) : lh_ckpt_load(s, path, &file_step);
    if (st) {
        lh_stage_free(s);
        return st;
    }
    if (step) *step = file_step;
    *out = s;
    return LH_OK;
}
