/*
 * Text file -> token shards, the library half of `longhaul tokenize`.
 *
 * Kept out of the CLI so it is unit-tested like everything else and so the
 * training engine can turn a text source into shards itself.  The output
 * layout (train_NNNNNN.bin, val_NNNNNN.bin in one folder) matches llm.c's
 * naming, so "DIR/train_*.bin" selects the training stream in sorted order.
 * The validation split is the tail of the token stream, mirroring the
 * dataset's tail split of sample ids.  A folder that already holds shards is
 * refused (or emptied of them on request) because leftover higher-numbered
 * shards from an earlier, longer run would silently join the new stream.
 */
#include "lh_data.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void lh_tokenize_options_default(lh_tokenize_options *opts)
{
    opts->shard_tokens = 100000000;
    opts->val_fraction = 0.1;
    opts->docs = LH_DOCS_NONE;
    opts->replace = 0;
}

static int is_shard_name(const char *name)
{
    size_t n = strlen(name);
    if (n < 5 || strcmp(name + n - 4, ".bin") != 0) return 0;
    return strncmp(name, "train_", 6) == 0 || strncmp(name, "val_", 4) == 0;
}

/* Refuse, or with `replace` delete, existing shards in `dir` (a missing dir is fine). */
static lh_status clear_old_shards(const char *dir, int replace)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return LH_OK;
        return lh_fail(LH_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    }
    lh_status st = LH_OK;
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        if (!is_shard_name(e->d_name)) continue;
        if (!replace) {
            st = lh_fail(LH_ERR_INVALID_ARG, "%s already holds shards (%s); choose another folder or replace them",
                         dir, e->d_name);
            break;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0) st = lh_fail(LH_ERR_IO, "%s: cannot delete: %s", path, strerror(errno));
    }
    closedir(d);
    return st;
}

static int blank_line(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

/* Encode `text` into `out` (capacity 2*len + 1 covers one EOT per line), inserting EOTs per `docs`. */
static lh_status encode_documents(const char *text, size_t len, const lh_tokenizer *tok, lh_doc_mode docs,
                                  uint16_t *out, size_t cap, size_t *count)
{
    size_t n = 0;
    if (docs == LH_DOCS_NONE) return lh_tokenizer_encode(tok, text, len, out, cap, count);
    int32_t eot = lh_tokenizer_eot(tok);
    int prev_blank = 1;
    for (size_t start = 0; start < len;) {
        const char *nl = memchr(text + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - text) + 1 : len;
        int blank = blank_line(text + start, end - start);
        int new_doc = !blank && (docs == LH_DOCS_LINES || prev_blank);
        if (new_doc) out[n++] = (uint16_t)eot;
        size_t got;
        lh_status st = lh_tokenizer_encode(tok, text + start, end - start, out + n, cap - n, &got);
        if (st) return st;
        n += got;
        prev_blank = blank;
        start = end;
    }
    *count = n;
    return LH_OK;
}

lh_status lh_tokenize_to_shards(const void *text, size_t text_len, const lh_tokenizer *tok,
                                const lh_tokenize_options *opts, const char *out_dir, lh_tokenize_result *result)
{
    memset(result, 0, sizeof *result);
    if (!lh_tokenizer_can_encode(tok))
        return lh_fail(LH_ERR_UNSUPPORTED, "the %s tokenizer can only decode (no merge table in llm.c's file); "
                       "use --tokenizer byte", lh_tokenizer_kind(tok));
    if (lh_tokenizer_vocab_size(tok) > LH_SHARD_MAX_VOCAB)
        return lh_fail(LH_ERR_UNSUPPORTED, "a vocabulary of %u ids does not fit uint16 shards",
                       lh_tokenizer_vocab_size(tok));
    if (!(opts->val_fraction >= 0.0 && opts->val_fraction < 1.0))
        return lh_fail(LH_ERR_INVALID_ARG, "val fraction %g is outside [0, 1)", opts->val_fraction);
    if (opts->shard_tokens == 0 || opts->shard_tokens > LH_SHARD_MAX_TOKENS)
        return lh_fail(LH_ERR_INVALID_ARG, "shard size %zu tokens is outside [1, %zu]", opts->shard_tokens,
                       LH_SHARD_MAX_TOKENS);
    if (opts->docs != LH_DOCS_NONE && opts->docs != LH_DOCS_LINES && opts->docs != LH_DOCS_PARAGRAPHS)
        return lh_fail(LH_ERR_INVALID_ARG, "unknown document mode %d", (int)opts->docs);
    if (opts->docs != LH_DOCS_NONE && lh_tokenizer_eot(tok) < 0)
        return lh_fail(LH_ERR_INVALID_ARG, "the %s tokenizer has no end-of-text id to separate documents",
                       lh_tokenizer_kind(tok));
    size_t cap = lh_tokenizer_encode_bound(tok, text_len) * (opts->docs == LH_DOCS_NONE ? 1 : 2) + 1;
    uint16_t *tokens = malloc(cap * sizeof *tokens);
    if (!tokens) return lh_fail(LH_ERR_NOMEM, "tokenize: cannot allocate %zu tokens", cap);
    size_t n;
    lh_status st = encode_documents(text, text_len, tok, opts->docs, tokens, cap, &n);
    size_t n_val = (size_t)((double)n * opts->val_fraction);
    if (!st && n == 0) st = lh_fail(LH_ERR_INVALID_ARG, "tokenize: the text is empty");
    if (!st && opts->val_fraction > 0 && n_val == 0)
        st = lh_fail(LH_ERR_INVALID_ARG, "tokenize: %zu tokens leave none for a validation fraction of %g", n,
                     opts->val_fraction);
    if (!st) st = clear_old_shards(out_dir, opts->replace);
    if (!st) st = lh_shard_write_series(out_dir, "train", tokens, n - n_val, opts->shard_tokens,
                                        &result->train_shards);
    if (!st) st = lh_shard_write_series(out_dir, "val", tokens + (n - n_val), n_val, opts->shard_tokens,
                                        &result->val_shards);
    free(tokens);
    if (st) return st;
    result->train_tokens = n - n_val;
    result->val_tokens = n_val;
    return LH_OK;
}
