/*
 * Tokenizers: byte-level (encode + decode) and llm.c's GPT-2 file (decode).
 *
 * Both kinds share one representation, a byte blob plus an offset table
 * (offsets[id]..offsets[id+1] are token id's bytes), so decoding has one
 * code path and the byte tokenizer is just a 257-entry table built in code.
 *
 * Why vocab 257 for bytes: 256 ids make every byte string representable, so
 * any file trains without preprocessing and decoding is an exact inverse;
 * the extra id 256 is an end-of-text marker that `longhaul tokenize
 * --eot-per-line` can place between documents (as GPT-2's 50256 does).  Plain
 * encoding never emits it, so decode(encode(x)) == x for every x.
 *
 * The GPT-2 file parser trusts nothing: the declared vocabulary is bounded
 * by what the file could hold before anything is allocated, every length
 * byte is checked against the bytes left, zero lengths (which llm.c asserts
 * against) and trailing bytes are errors, and the EOT id must be in range.
 */
#include "lh_data.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lh_bytes.h"
#include "lh_io.h"

typedef enum { KIND_BYTE, KIND_GPT2 } tokenizer_kind;

struct lh_tokenizer {
    tokenizer_kind kind;
    uint32_t vocab_size;
    int32_t eot;
    size_t max_token_len;
    uint8_t *blob;
    size_t *offsets; /* vocab_size + 1 entries */
};

/* The GPT-2 tokenizer has 50257 ids; this bound only stops absurd headers. */
#define GPT2_MAX_VOCAB (1u << 24)
#define GPT2_FILE_MAX_BYTES ((size_t)1 << 30)

static lh_status tokenizer_alloc(tokenizer_kind kind, uint32_t vocab, size_t blob_len, lh_tokenizer **out)
{
    lh_tokenizer *t = calloc(1, sizeof *t);
    if (t) {
        t->blob = malloc(blob_len ? blob_len : 1);
        t->offsets = malloc(((size_t)vocab + 1) * sizeof *t->offsets);
    }
    if (!t || !t->blob || !t->offsets) {
        lh_tokenizer_free(t);
        return lh_fail(LH_ERR_NOMEM, "tokenizer: cannot allocate %" PRIu32 " tokens", vocab);
    }
    t->kind = kind;
    t->vocab_size = vocab;
    t->eot = -1;
    *out = t;
    return LH_OK;
}

lh_status lh_tokenizer_create_byte(lh_tokenizer **out)
{
    *out = NULL;
    const size_t eot_len = sizeof LH_EOT_TEXT - 1;
    lh_tokenizer *t = NULL;
    lh_status st = tokenizer_alloc(KIND_BYTE, LH_BYTE_VOCAB_SIZE, 256 + eot_len, &t);
    if (st) return st;
    for (size_t b = 0; b < 256; b++) {
        t->blob[b] = (uint8_t)b;
        t->offsets[b] = b;
    }
    memcpy(t->blob + 256, LH_EOT_TEXT, eot_len);
    t->offsets[256] = 256;
    t->offsets[257] = 256 + eot_len;
    t->eot = (int32_t)LH_BYTE_EOT;
    t->max_token_len = eot_len;
    *out = t;
    return LH_OK;
}

lh_status lh_tokenizer_parse_gpt2(const void *image, size_t image_len, const char *name, lh_tokenizer **out)
{
    *out = NULL;
    if (!name) name = "<memory>";
    if (!image && image_len) return lh_fail(LH_ERR_INVALID_ARG, "%s: NULL image", name);
    const uint8_t *p = image;
    if (image_len < 1024)
        return lh_fail(LH_ERR_TRUNCATED, "%s: %zu bytes is shorter than the 1024-byte tokenizer header", name,
                       image_len);
    uint32_t magic = lh_get_le32(p), version = lh_get_le32(p + 4), vocab = lh_get_le32(p + 8);
    if (magic != LH_GPT2_TOKENIZER_MAGIC)
        return lh_fail(LH_ERR_FORMAT, "%s: bad magic %" PRIu32 " (expected %d): not an llm.c tokenizer file", name,
                       magic, LH_GPT2_TOKENIZER_MAGIC);
    if (version != 1 && version != 2)
        return lh_fail(LH_ERR_FORMAT, "%s: unsupported tokenizer version %" PRIu32 " (this build reads 1 and 2)",
                       name, version);
    size_t body_len = image_len - 1024;
    /* Each token takes at least 2 bytes (length byte + >= 1 byte), which bounds the vocabulary. */
    if (vocab == 0 || vocab > GPT2_MAX_VOCAB || vocab > body_len / 2) {
        if (vocab == 0 || vocab > GPT2_MAX_VOCAB)
            return lh_fail(LH_ERR_FORMAT, "%s: vocabulary size %" PRIu32 " is outside [1, %u]", name, vocab,
                           GPT2_MAX_VOCAB);
        return lh_fail(LH_ERR_TRUNCATED, "%s: declares %" PRIu32 " tokens but its %zu body bytes hold at most %zu",
                       name, vocab, body_len, body_len / 2);
    }
    int32_t eot;
    if (version == 1) {
        /* Version 1 did not store the EOT id; llm.c assumes GPT-2's 50256. */
        eot = vocab > 50256 ? 50256 : -1;
    } else {
        uint32_t e = lh_get_le32(p + 12);
        if (e >= vocab)
            return lh_fail(LH_ERR_FORMAT, "%s: end-of-text id %" PRIu32 " is outside the vocabulary of %" PRIu32,
                           name, e, vocab);
        eot = (int32_t)e;
    }
    lh_tokenizer *t = NULL;
    /* body_len bounds the token bytes even when the file is cut short mid-table. */
    lh_status st = tokenizer_alloc(KIND_GPT2, vocab, body_len, &t);
    if (st) return st;
    t->eot = eot;
    const uint8_t *q = p + 1024, *end = p + image_len;
    size_t used = 0;
    for (uint32_t id = 0; id < vocab; id++) {
        if (q >= end) {
            lh_tokenizer_free(t);
            return lh_fail(LH_ERR_TRUNCATED, "%s: file ends before token %" PRIu32 " of %" PRIu32, name, id, vocab);
        }
        size_t len = *q++;
        if (len == 0) {
            lh_tokenizer_free(t);
            return lh_fail(LH_ERR_FORMAT, "%s: token %" PRIu32 " has length 0 (at byte %zu)", name, id,
                           (size_t)(q - 1 - p));
        }
        if ((size_t)(end - q) < len) {
            lh_tokenizer_free(t);
            return lh_fail(LH_ERR_TRUNCATED, "%s: token %" PRIu32 " declares %zu bytes but only %zu remain", name, id,
                           len, (size_t)(end - q));
        }
        t->offsets[id] = used;
        memcpy(t->blob + used, q, len);
        used += len;
        q += len;
        if (len > t->max_token_len) t->max_token_len = len;
    }
    t->offsets[vocab] = used;
    if (q != end) {
        size_t extra = (size_t)(end - q);
        lh_tokenizer_free(t);
        return lh_fail(LH_ERR_FORMAT, "%s: %zu unexpected bytes after the last of %" PRIu32 " tokens", name, extra,
                       vocab);
    }
    *out = t;
    return LH_OK;
}

lh_status lh_tokenizer_load_gpt2(const char *path, lh_tokenizer **out)
{
    *out = NULL;
    char *data;
    size_t len;
    lh_status st = lh_read_file(path, GPT2_FILE_MAX_BYTES, &data, &len);
    if (st) return st;
    st = lh_tokenizer_parse_gpt2(data, len, path, out);
    free(data);
    return st;
}

lh_status lh_tokenizer_open(const char *spec, lh_tokenizer **out)
{
    *out = NULL;
    if (!spec || !*spec) return lh_fail(LH_ERR_INVALID_ARG, "tokenizer: empty name (use \"byte\" or a file)");
    if (strcmp(spec, "byte") == 0) return lh_tokenizer_create_byte(out);
    return lh_tokenizer_load_gpt2(spec, out);
}

void lh_tokenizer_free(lh_tokenizer *tok)
{
    if (!tok) return;
    free(tok->blob);
    free(tok->offsets);
    free(tok);
}

uint32_t lh_tokenizer_vocab_size(const lh_tokenizer *tok)
{
    return tok->vocab_size;
}

int32_t lh_tokenizer_eot(const lh_tokenizer *tok)
{
    return tok->eot;
}

const char *lh_tokenizer_kind(const lh_tokenizer *tok)
{
    return tok->kind == KIND_BYTE ? "byte" : "gpt2";
}

int lh_tokenizer_can_encode(const lh_tokenizer *tok)
{
    return tok->kind == KIND_BYTE;
}

lh_status lh_tokenizer_token_bytes(const lh_tokenizer *tok, uint32_t id, const uint8_t **bytes, size_t *len)
{
    if (id >= tok->vocab_size) {
        *bytes = NULL;
        *len = 0;
        return lh_fail(LH_ERR_INVALID_ARG, "token id %" PRIu32 " is outside the vocabulary of %" PRIu32, id,
                       tok->vocab_size);
    }
    *bytes = tok->blob + tok->offsets[id];
    *len = tok->offsets[id + 1] - tok->offsets[id];
    return LH_OK;
}

size_t lh_tokenizer_decode_bound(const lh_tokenizer *tok, size_t n_tokens)
{
    return n_tokens * tok->max_token_len;
}

lh_status lh_tokenizer_decode(const lh_tokenizer *tok, const int32_t *tokens, size_t n_tokens, char *out,
                              size_t out_cap, size_t *written)
{
    *written = 0;
    size_t pos = 0;
    for (size_t i = 0; i < n_tokens; i++) {
        int32_t id = tokens[i];
        if (id < 0 || (uint32_t)id >= tok->vocab_size)
            return lh_fail(LH_ERR_INVALID_ARG, "decode: token %" PRId32 " at position %zu is outside the vocabulary of %" PRIu32,
                           id, i, tok->vocab_size);
        size_t len = tok->offsets[id + 1] - tok->offsets[id];
        if (out_cap - pos < len)
            return lh_fail(LH_ERR_CAPACITY, "decode: output buffer of %zu bytes is full at token %zu", out_cap, i);
        memcpy(out + pos, tok->blob + tok->offsets[id], len);
        pos += len;
    }
    *written = pos;
    return LH_OK;
}

size_t lh_tokenizer_encode_bound(const lh_tokenizer *tok, size_t text_len)
{
    return text_len;
}

lh_status lh_tokenizer_encode(const lh_tokenizer *tok, const void *text, size_t text_len, uint16_t *out,
                              size_t out_cap, size_t *n_tokens)
{
    *n_tokens = 0;
    if (tok->kind != KIND_BYTE)
        return lh_fail(LH_ERR_UNSUPPORTED, "the %s tokenizer file holds no merge table, so it can only decode; "
                       "tokenize GPT-2 text with llm.c's scripts or use the byte tokenizer", lh_tokenizer_kind(tok));
    if (out_cap < text_len)
        return lh_fail(LH_ERR_CAPACITY, "encode: %zu bytes need %zu tokens, buffer has %zu", text_len, text_len,
                       out_cap);
    const uint8_t *p = text;
    for (size_t i = 0; i < text_len; i++) out[i] = p[i];
    *n_tokens = text_len;
    return LH_OK;
}
