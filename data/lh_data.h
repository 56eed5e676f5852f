/*
 * lh_data: everything between text on disk and (inputs, targets, sample ids)
 * in a training step.
 *
 *  - Token shards in llm.c's format, so shards made by llm.c's scripts
 *    (fineweb, tinyshakespeare) train here unchanged and ours train there.
 *  - Tokenizers: a byte-level one (any UTF-8 or binary text, exact round
 *    trip, no vocabulary file) and llm.c's GPT-2 tokenizer file for decoding
 *    model output.  BPE *encoding* needs the merge table, which llm.c's file
 *    does not hold, so GPT-2 text is tokenized by llm.c's Python scripts.
 *  - A dataset whose sample ids are stable: id i is always the (T+1)-token
 *    window starting at token i*T of the concatenated stream, whatever the
 *    number of replicas, the seed or the epoch.  AQ-SGD keeps one cached
 *    activation per sample per pipeline link, so an id must name the same
 *    tokens every epoch.  Replica r of R owns a fixed contiguous range of ids
 *    (a sample always goes to the same replica, so its cache lives in one
 *    place); each epoch visits that range in an order shuffled from
 *    (seed, epoch, replica); the validation split is a fixed tail of the ids.
 *  - An embedded default corpus generated deterministically in C (license:
 *    ours, see data/CORPUS.md), so the demo and tests need no file.
 *
 * Every reader of outside bytes works from a memory image first (what the
 * fuzz targets call); the path-taking functions read the file and call it.
 * All functions follow lh_status.h; nothing here exits.  Byte order on disk
 * is little-endian, independent of the host.
 */
#ifndef LH_DATA_H
#define LH_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Token shards (llm.c format):                                              */
/*   header: 256 little-endian int32 = 1024 bytes;                           */
/*           [0] = 20240520 (magic), [1] = 1 (version), [2] = token count,   */
/*           the rest 0 (ignored on reading);                                */
/*   body:   count little-endian uint16 token ids.                           */
/*   The file size must be exactly 1024 + 2*count.                           */
/* ------------------------------------------------------------------------ */

#define LH_SHARD_MAGIC 20240520
#define LH_SHARD_VERSION 1
#define LH_SHARD_HEADER_INTS 256
#define LH_SHARD_HEADER_BYTES 1024
/** Most tokens one shard can hold (the count is an int32). */
#define LH_SHARD_MAX_TOKENS ((size_t)INT32_MAX)
/** Largest vocabulary a shard can address (uint16 ids). */
#define LH_SHARD_MAX_VOCAB 65536u

/**
 * Validate a shard image (the whole file in memory): magic, version, count
 * and exact size; with vocab_size > 0 also that every id is < vocab_size.
 * `name` (a path or "<memory>") starts every error message.  On success
 * *count is the number of tokens.
 */
lh_status lh_shard_parse(const void *image, size_t image_len, const char *name, uint32_t vocab_size,
                         size_t *count);

/**
 * Validate like lh_shard_parse and copy the tokens into `out` (host order).
 * Fails with LH_ERR_CAPACITY when out_cap < the count.
 */
lh_status lh_shard_decode(const void *image, size_t image_len, const char *name, uint32_t vocab_size,
                          uint16_t *out, size_t out_cap, size_t *count);

/** Bytes of a shard image holding `count` tokens: 1024 + 2*count. */
size_t lh_shard_image_bound(size_t count);

/** Write the shard image of `tokens` into `out` (out_cap >= lh_shard_image_bound(count)). */
lh_status lh_shard_encode(const uint16_t *tokens, size_t count, void *out, size_t out_cap, size_t *written);

/** Write `tokens` as one shard file at `path`, atomically (lh_io.h). */
lh_status lh_shard_write(const char *path, const uint16_t *tokens, size_t count);

/**
 * Read and validate the shard at `path` (vocab_size as in lh_shard_parse)
 * into a new array; free *tokens with free().
 */
lh_status lh_shard_read(const char *path, uint32_t vocab_size, uint16_t **tokens, size_t *count);

/**
 * Write `tokens` as consecutive shards of at most `shard_tokens` tokens each,
 * named "<dir>/<prefix>_000000.bin", "<dir>/<prefix>_000001.bin", ... (dir is
 * created).  An empty `tokens` writes nothing.  *shards_written may be NULL.
 */
lh_status lh_shard_write_series(const char *dir, const char *prefix, const uint16_t *tokens, size_t count,
                                size_t shard_tokens, size_t *shards_written);

/* ------------------------------------------------------------------------ */
/* Tokenizers                                                               */
/* ------------------------------------------------------------------------ */

/** Byte-level tokenizer: id b < 256 is the byte b; id 256 is end-of-text. */
#define LH_BYTE_VOCAB_SIZE 257u
#define LH_BYTE_EOT 256u
/** What end-of-text decodes to (the same text as GPT-2's). */
#define LH_EOT_TEXT "<|endoftext|>"

/*
 * llm.c GPT-2 tokenizer file: 256 little-endian uint32 header, [0] = 20240328,
 * [1] = version (1 or 2), [2] = vocab size, [3] = EOT id (version 2; version 1
 * means 50256); then per token id, in order, a uint8 length (>= 1) and that
 * many bytes; nothing after the last token.
 */
#define LH_GPT2_TOKENIZER_MAGIC 20240328

typedef struct lh_tokenizer lh_tokenizer;

/** The byte-level tokenizer (vocab 257, EOT 256). */
lh_status lh_tokenizer_create_byte(lh_tokenizer **out);

/** Parse an llm.c GPT-2 tokenizer file image (every length is validated). */
lh_status lh_tokenizer_parse_gpt2(const void *image, size_t image_len, const char *name, lh_tokenizer **out);

/** Read and parse an llm.c GPT-2 tokenizer file. */
lh_status lh_tokenizer_load_gpt2(const char *path, lh_tokenizer **out);

/** "byte" -> the byte tokenizer; anything else is a GPT-2 tokenizer file path. */
lh_status lh_tokenizer_open(const char *spec, lh_tokenizer **out);

/** Free a tokenizer (NULL is accepted). */
void lh_tokenizer_free(lh_tokenizer *tok);

/** Number of token ids (257 for bytes, 50257 for GPT-2). */
uint32_t lh_tokenizer_vocab_size(const lh_tokenizer *tok);

/** The end-of-text id, or -1 when the tokenizer has none. */
int32_t lh_tokenizer_eot(const lh_tokenizer *tok);

/** "byte" or "gpt2". */
const char *lh_tokenizer_kind(const lh_tokenizer *tok);

/** Whether lh_tokenizer_encode works (byte: yes; gpt2: no, decode only). */
int lh_tokenizer_can_encode(const lh_tokenizer *tok);

/** The bytes token `id` decodes to (not NUL-terminated); LH_ERR_INVALID_ARG when id >= vocab. */
lh_status lh_tokenizer_token_bytes(const lh_tokenizer *tok, uint32_t id, const uint8_t **bytes, size_t *len);

/** Largest number of bytes lh_tokenizer_decode can produce for `n_tokens` tokens. */
size_t lh_tokenizer_decode_bound(const lh_tokenizer *tok, size_t n_tokens);

/**
 * Concatenate the bytes of `n_tokens` ids into `out` (not NUL-terminated);
 * *written is the length.  An id outside the vocabulary fails with
 * LH_ERR_INVALID_ARG naming its position; a short `out` with LH_ERR_CAPACITY.
 */
lh_status lh_tokenizer_decode(const lh_tokenizer *tok, const int32_t *tokens, size_t n_tokens, char *out,
                              size_t out_cap, size_t *written);

/** Largest number of tokens lh_tokenizer_encode can produce for `text_len` bytes. */
size_t lh_tokenizer_encode_bound(const lh_tokenizer *tok, size_t text_len);

/**
 * Tokenize `text_len` bytes (any bytes, not only UTF-8) into `out`.  Byte
 * tokenizer only; a GPT-2 tokenizer fails with LH_ERR_UNSUPPORTED.
 * decode(encode(x)) == x for every byte string x.
 */
lh_status lh_tokenizer_encode(const lh_tokenizer *tok, const void *text, size_t text_len, uint16_t *out,
                              size_t out_cap, size_t *n_tokens);

/* ------------------------------------------------------------------------ */
/* Embedded default corpus                                                  */
/* ------------------------------------------------------------------------ */

#define LH_CORPUS_DEFAULT_SEED 20240520u
#define LH_CORPUS_DEFAULT_BYTES ((size_t)1 << 20)

/**
 * Generate English-like text from our probabilistic grammar (data/CORPUS.md):
 * the same (seed, out_cap) gives the same bytes on every platform.  Writes
 * whole lines only, as many as fit, and returns the number of bytes written
 * (no NUL).  Integer arithmetic only.
 */
size_t lh_corpus_generate(uint64_t seed, char *out, size_t out_cap);

/** The default corpus (LH_CORPUS_DEFAULT_SEED, LH_CORPUS_DEFAULT_BYTES) in a new buffer; free() it. */
lh_status lh_corpus_default(char **text, size_t *len);

/** The default corpus through the byte tokenizer, in a new array; free() it. */
lh_status lh_corpus_default_tokens(uint16_t **tokens, size_t *count);

/**
 * Load a token stream from a source as job.json names it:
 *   "embedded"         the default corpus, byte-tokenized;
 *   "*.bin"            one shard; a pattern with '*', '?' or '[' matches
 *                      shards, concatenated in sorted name order;
 *   anything else      a text file, byte-tokenized.
 * vocab_size > 0 checks every id.  free() *tokens.
 */
lh_status lh_data_load_tokens(const char *source, uint32_t vocab_size, uint16_t **tokens, size_t *count);

/* ------------------------------------------------------------------------ */
/* Text to shards (what `longhaul tokenize` does)                           */
/* ------------------------------------------------------------------------ */

typedef enum lh_doc_mode {
    LH_DOCS_NONE = 0,     /* the text is one document: tokens only */
    LH_DOCS_LINES = 1,    /* every non-empty line is a document: EOT before each */
    LH_DOCS_PARAGRAPHS = 2 /* documents are separated by blank lines: EOT before each */
} lh_doc_mode;

typedef struct lh_tokenize_options {
    size_t shard_tokens; /* most tokens per shard file */
    double val_fraction; /* tail fraction of the tokens written as val_*.bin, in [0, 1) */
    lh_doc_mode docs;    /* where end-of-text tokens go (needs a tokenizer with EOT) */
    int replace;         /* 1: delete existing train_*.bin and val_*.bin in out_dir first; 0: refuse if any exist */
} lh_tokenize_options;

/** Defaults: 100M tokens per shard (llm.c's size), val_fraction 0.1, LH_DOCS_NONE, replace 0. */
void lh_tokenize_options_default(lh_tokenize_options *opts);

typedef struct lh_tokenize_result {
    size_t train_tokens, val_tokens;
    size_t train_shards, val_shards;
} lh_tokenize_result;

/**
 * Tokenize `text` and write <out_dir>/train_NNNNNN.bin and
 * <out_dir>/val_NNNNNN.bin (the last floor(tokens * val_fraction) tokens).
 * Fails before writing anything when the tokenizer cannot encode, the token
 * count is too small for both splits, ids exceed the uint16 range, or
 * out_dir already holds shards (a stale train_000007.bin would otherwise be
 * picked up by a "train_*.bin" pattern) and opts->replace is 0.
 */
lh_status lh_tokenize_to_shards(const void *text, size_t text_len, const lh_tokenizer *tok,
                                const lh_tokenize_options *opts, const char *out_dir, lh_tokenize_result *result);

/* ------------------------------------------------------------------------ */
/* Dataset                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum lh_split {
    LH_SPLIT_TRAIN = 0, /* sample ids before the validation tail */
    LH_SPLIT_VAL = 1,   /* the validation tail (needs val_fraction > 0) */
    LH_SPLIT_ALL = 2    /* every sample, ignoring val_fraction (e.g. a separate validation file) */
} lh_split;

typedef struct lh_dataset_config {
    uint32_t seq_len;    /* T: a sample is T+1 tokens (inputs = first T, targets = last T) */
    uint32_t vocab_size; /* ids must be < this; 0 = no check */
    uint32_t replica;    /* this data-parallel replica, in [0, replicas) */
    uint32_t replicas;   /* R >= 1 */
    uint64_t seed;       /* shuffle seed */
    int shuffle;         /* 1: a new order within the replica's range every epoch */
    lh_split split;      /* which part of the id space this dataset serves */
    double val_fraction; /* tail fraction of sample ids held out for validation, in [0, 1) */
} lh_dataset_config;

/** Defaults: T=64, no vocab check, replica 0 of 1, seed 1337, shuffle, train, val_fraction 0.1. */
void lh_dataset_config_default(lh_dataset_config *cfg);

typedef struct lh_dataset lh_dataset;

/*
 * Sample ids over a stream of N tokens: S = (N - 1) / T samples, id i =
 * tokens [i*T, i*T + T] (consecutive samples share one boundary token, as in
 * llm.c).  Validation = the last floor(S * val_fraction) ids, training = the
 * rest.  Replica r gets floor(split_size / R) ids, contiguous, starting at
 * split_start + r * floor(split_size / R); the split_size % R ids left at
 * the end of the split are used by no replica (so every replica has the
 * same number of steps per epoch).
 *
 * Threads: the const functions (get_sample, sample_at, the counts) may run
 * concurrently; next_batch and seek change the position and need one owner.
 */

/** A dataset over a copy of `tokens` (the caller keeps its array). */
lh_status lh_dataset_create_from_tokens(const uint16_t *tokens, size_t count, const lh_dataset_config *cfg,
                                        lh_dataset **out);

/**
 * A dataset over the tokens of `source` (see lh_data_load_tokens).  Shards
 * are memory-mapped and validated in place rather than copied.
 */
lh_status lh_dataset_create_from_source(const char *source, const lh_dataset_config *cfg, lh_dataset **out);

/** Free a dataset (NULL is accepted). */
void lh_dataset_free(lh_dataset *ds);

/** Samples in the whole stream (both splits): S above. */
uint64_t lh_dataset_total_samples(const lh_dataset *ds);

/** Samples this replica visits per epoch. */
uint64_t lh_dataset_replica_samples(const lh_dataset *ds);

/** First sample id of this replica's range (its ids are [first, first + replica_samples)). */
uint64_t lh_dataset_first_sample_id(const lh_dataset *ds);

/** Where a dataset is in its sequence of batches: epoch and index into that epoch's order. */
typedef struct lh_dataset_position {
    uint64_t epoch;
    uint64_t index; /* in [0, replica_samples) */
} lh_dataset_position;

/**
 * The next `batch` samples of this replica: inputs and targets are batch*T
 * int32 each (row b = sample b; targets[b][t] = inputs[b][t+1] of the
 * window), sample_ids is batch long (NULL allowed).  A batch may run over
 * an epoch's end into the next epoch (every sample is still visited exactly
 * once per epoch).
 */
lh_status lh_dataset_next_batch(lh_dataset *ds, uint32_t batch, int32_t *inputs, int32_t *targets,
                                uint64_t *sample_ids);

/** Fetch any sample of the stream by id (either split, any replica's). */
lh_status lh_dataset_get_sample(const lh_dataset *ds, uint64_t sample_id, int32_t *inputs, int32_t *targets);

/** The current position (save it with a checkpoint). */
lh_dataset_position lh_dataset_tell(const lh_dataset *ds);

/** Continue from a saved position: the following batches equal those after the save. */
lh_status lh_dataset_seek(lh_dataset *ds, lh_dataset_position pos);

/** The sample id at `index` of epoch `epoch`'s order for this replica. */
lh_status lh_dataset_sample_at(const lh_dataset *ds, uint64_t epoch, uint64_t index, uint64_t *sample_id);

#ifdef __cplusplus
}
#endif
#endif
