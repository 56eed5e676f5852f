/*
 * Tests of data/: shard format (bytes as llm.c writes them, every rejection),
 * tokenizers (exact byte round trip, GPT-2 file validation), the embedded
 * corpus (determinism pinned by checksum), the dataset's contracts (stable
 * ids, replica partition, per-epoch permutation, resume) and tokenize.
 * Files go to a fresh mkdtemp folder that is removed at the end.
 */
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lh_data.h"
#include "lh_io.h"
#include "lh_test.h"

static char tmp_dir[64];

static int make_tmp(void)
{
    strcpy(tmp_dir, "/tmp/lh_test_data_XXXXXX");
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
}

static int drop_tmp(void)
{
    remove_tree(tmp_dir);
    return 0;
}

static const char *tmp_path(const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    return path;
}

static void put_le32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(u >> (8 * i));
}

/* A shard image built byte by byte the way llm.c's write_datafile lays it out. */
static uint8_t *handmade_shard(const uint16_t *tokens, int32_t count, size_t *len)
{
    *len = 1024 + 2 * (size_t)count;
    uint8_t *img = calloc(1, *len);
    put_le32(img, 20240520);
    put_le32(img + 4, 1);
    put_le32(img + 8, count);
    for (int32_t i = 0; i < count; i++) {
        img[1024 + 2 * i] = (uint8_t)(tokens[i] & 0xff);
        img[1024 + 2 * i + 1] = (uint8_t)(tokens[i] >> 8);
    }
    return img;
}

/* ---- shards ---- */

static void test_shard_encode_matches_llmc_layout(void)
{
    const uint16_t tokens[] = {0, 1, 50256, 65535, 258};
    size_t hand_len;
    uint8_t *hand = handmade_shard(tokens, 5, &hand_len);
    CU_ASSERT_EQUAL(lh_shard_image_bound(5), hand_len);
    uint8_t *ours = malloc(hand_len);
    size_t written;
    LH_ASSERT_OK(lh_shard_encode(tokens, 5, ours, hand_len, &written));
    CU_ASSERT_EQUAL(written, hand_len);
    CU_ASSERT_EQUAL(memcmp(hand, ours, hand_len), 0);
    uint16_t back[5];
    size_t n;
    LH_ASSERT_OK(lh_shard_decode(hand, hand_len, "hand", 0, back, 5, &n));
    CU_ASSERT_EQUAL(n, 5);
    CU_ASSERT_EQUAL(memcmp(back, tokens, sizeof tokens), 0);
    LH_ASSERT_FAILS_WITH(lh_shard_encode(tokens, 5, ours, hand_len - 1, &written), LH_ERR_CAPACITY, "needs 1034");
    LH_ASSERT_FAILS_WITH(lh_shard_decode(hand, hand_len, "hand", 0, back, 4, &n), LH_ERR_CAPACITY, "5 tokens");
    free(hand);
    free(ours);
}

static void test_shard_rejects_bad_images(void)
{
    const uint16_t tokens[] = {10, 20, 300};
    size_t len, n = 99;
    uint8_t *img = handmade_shard(tokens, 3, &len);
    LH_ASSERT_OK(lh_shard_parse(img, len, "ok.bin", 0, &n));
    CU_ASSERT_EQUAL(n, 3);
    LH_ASSERT_FAILS_WITH(lh_shard_parse(img, 1023, "short.bin", 0, &n), LH_ERR_TRUNCATED,
                         "short.bin: 1023 bytes is shorter than the 1024-byte shard header");
    CU_ASSERT_EQUAL(n, 0);
    LH_ASSERT_FAILS_WITH(lh_shard_parse(img, len - 1, "cut.bin", 0, &n), LH_ERR_TRUNCATED,
                         "cut.bin: header declares 3 tokens (1030 bytes) but the file has 1029 bytes");
    uint8_t *longer = calloc(1, len + 2);
    memcpy(longer, img, len);
    LH_ASSERT_FAILS_WITH(lh_shard_parse(longer, len + 2, "long.bin", 0, &n), LH_ERR_FORMAT, "(2 extra)");
    free(longer);
    LH_ASSERT_FAILS_WITH(lh_shard_parse(img, len, "v.bin", 300, &n), LH_ERR_FORMAT,
                         "v.bin: token 300 at index 2 is outside the vocabulary of 300");
    LH_ASSERT_OK(lh_shard_parse(img, len, "v.bin", 301, &n));
    put_le32(img + 8, -1);
    LH_ASSERT_FAILS_WITH(lh_shard_parse(img, len, "neg.bin", 0, &n), LH_ERR_FORMAT, "negative token count -1");
    put_le32(img + 8, 0x7fffffff);
    LH_ASSERT_FAILS_WITH(lh_shard_parse(img, len, "huge.bin", 0, &n), LH_ERR_TRUNCATED, "declares 2147483647 tokens");
    put_le32(img + 8, 3);
    put_le32(img + 4, 2);
    LH_ASSERT_FAILS_WITH(lh_shard_parse(img, len, "ver.bin", 0, &n), LH_ERR_FORMAT, "unsupported shard version 2");
    put_le32(img + 4, 1);
    put_le32(img, 20240328); /* a tokenizer file is not a shard */
    LH_ASSERT_FAILS_WITH(lh_shard_parse(img, len, "tok.bin", 0, &n), LH_ERR_FORMAT,
                         "bad magic 20240328 (expected 20240520)");
    LH_ASSERT_FAILS_WITH(lh_shard_parse(NULL, 0, NULL, 0, &n), LH_ERR_TRUNCATED, "<memory>");
    free(img);
}

static void test_shard_file_round_trip(void)
{
    enum { N = 70000 }; /* more than one 64 KiB write chunk */
    uint16_t *tokens = malloc(N * sizeof *tokens);
    for (size_t i = 0; i < N; i++) tokens[i] = (uint16_t)(i * 2654435761u >> 7);
    LH_ASSERT_OK(lh_shard_write(tmp_path("rt.bin"), tokens, N));
    uint16_t *back;
    size_t n;
    LH_ASSERT_OK(lh_shard_read(tmp_path("rt.bin"), 0, &back, &n));
    CU_ASSERT_EQUAL(n, N);
    CU_ASSERT_EQUAL(memcmp(back, tokens, N * sizeof *tokens), 0);
    free(back);
    char *raw;
    size_t raw_len;
    LH_ASSERT_OK(lh_read_file(tmp_path("rt.bin"), 1 << 20, &raw, &raw_len));
    CU_ASSERT_EQUAL(raw_len, 1024 + 2 * (size_t)N);
    LH_ASSERT_OK(lh_shard_parse(raw, raw_len, "rt", 0, &n));
    /* Truncate the file on disk: the reader must say so, not read garbage. */
    LH_ASSERT_OK(lh_write_file_atomic(tmp_path("cut.bin"), raw, raw_len - 3));
    LH_ASSERT_FAILS_WITH(lh_shard_read(tmp_path("cut.bin"), 0, &back, &n), LH_ERR_TRUNCATED, "cut.bin: header declares 70000");
    CU_ASSERT_PTR_NULL(back);
    LH_ASSERT_OK(lh_write_file_atomic(tmp_path("tiny.bin"), raw, 10));
    LH_ASSERT_FAILS_WITH(lh_shard_read(tmp_path("tiny.bin"), 0, &back, &n), LH_ERR_TRUNCATED, "10 bytes is shorter");
    LH_ASSERT_FAILS_WITH(lh_shard_read(tmp_path("rt.bin"), 256, &back, &n), LH_ERR_FORMAT, "outside the vocabulary of 256");
    LH_ASSERT_FAILS_WITH(lh_shard_read(tmp_path("absent.bin"), 0, &back, &n), LH_ERR_IO, "absent.bin: cannot open");
    LH_ASSERT_FAILS_WITH(lh_shard_read(tmp_dir, 0, &back, &n), LH_ERR_IO, "not a regular file");
    free(raw);
    free(tokens);
    /* An empty shard is valid. */
    LH_ASSERT_OK(lh_shard_write(tmp_path("empty.bin"), NULL, 0));
    LH_ASSERT_OK(lh_shard_read(tmp_path("empty.bin"), 0, &back, &n));
    CU_ASSERT_EQUAL(n, 0);
    free(back);
}

static void test_shard_series_and_pattern_load(void)
{
    uint16_t tokens[10];
    for (int i = 0; i < 10; i++) tokens[i] = (uint16_t)(100 + i);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/series/sub", tmp_dir);
    size_t shards;
    LH_ASSERT_OK(lh_shard_write_series(dir, "train", tokens, 10, 4, &shards));
    CU_ASSERT_EQUAL(shards, 3);
    char path[512];
    size_t n;
    uint16_t *back;
    snprintf(path, sizeof path, "%s/train_000002.bin", dir);
    LH_ASSERT_OK(lh_shard_read(path, 0, &back, &n));
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(back[1], 109);
    free(back);
    snprintf(path, sizeof path, "%s/train_*.bin", dir);
    LH_ASSERT_OK(lh_data_load_tokens(path, 0, &back, &n));
    CU_ASSERT_EQUAL(n, 10);
    CU_ASSERT_EQUAL(memcmp(back, tokens, sizeof tokens), 0);
    free(back);
    snprintf(path, sizeof path, "%s/nothing_*.bin", dir);
    LH_ASSERT_FAILS_WITH(lh_data_load_tokens(path, 0, &back, &n), LH_ERR_NOT_FOUND, "no shard matches");
    LH_ASSERT_FAILS_WITH(lh_shard_write_series(dir, "x", tokens, 10, 0, &shards), LH_ERR_INVALID_ARG, "shard size 0");
}

/* Files written by scripts/data_fuzz_corpus.py (Python struct, llm.c's layout) read as intended. */
static void test_reads_files_written_by_python(void)
{
    uint16_t *tokens;
    size_t n;
    LH_ASSERT_OK(lh_shard_read(LH_DATA_SEED_DIR "/data_shard/valid_bytes.bin", 257, &tokens, &n));
    const char *text = "The dog barks. Anna has a red ball.";
    CU_ASSERT_EQUAL(n, strlen(text));
    for (size_t i = 0; i < n && i < strlen(text); i++) CU_ASSERT_EQUAL(tokens[i], (uint8_t)text[i]);
    free(tokens);
    LH_ASSERT_OK(lh_shard_read(LH_DATA_SEED_DIR "/data_shard/valid_high_ids.bin", 0, &tokens, &n));
    CU_ASSERT(n == 5 && tokens[1] == 50256 && tokens[2] == 65535);
    free(tokens);
    LH_ASSERT_FAILS_WITH(lh_shard_read(LH_DATA_SEED_DIR "/data_shard/truncated_body.bin", 0, &tokens, &n),
                         LH_ERR_TRUNCATED, "header declares 35 tokens");
    lh_tokenizer *tok;
    LH_ASSERT_OK(lh_tokenizer_open(LH_DATA_SEED_DIR "/data_tokenizer/valid_v2.bin", &tok));
    CU_ASSERT_EQUAL(lh_tokenizer_eot(tok), 4);
    int32_t ids[] = {1, 2, 3};
    char out[16];
    size_t w;
    LH_ASSERT_OK(lh_tokenizer_decode(tok, ids, 3, out, sizeof out, &w));
    CU_ASSERT(w == 7 && memcmp(out, " the\xe2\x82\xac", 7) == 0); /* " the€" */
    lh_tokenizer_free(tok);
}

/* ---- tokenizers ---- */

static void test_byte_tokenizer_round_trip(void)
{
    lh_tokenizer *tok;
    LH_ASSERT_OK(lh_tokenizer_open("byte", &tok));
    CU_ASSERT_EQUAL(lh_tokenizer_vocab_size(tok), 257);
    CU_ASSERT_EQUAL(lh_tokenizer_eot(tok), 256);
    CU_ASSERT_STRING_EQUAL(lh_tokenizer_kind(tok), "byte");
    CU_ASSERT_TRUE(lh_tokenizer_can_encode(tok));
    uint8_t text[1000];
    for (int i = 0; i < 1000; i++) text[i] = (uint8_t)((i * 7919) ^ (i >> 3)); /* every byte value, NULs included */
    uint16_t ids[1000];
    size_t n;
    LH_ASSERT_OK(lh_tokenizer_encode(tok, text, 1000, ids, lh_tokenizer_encode_bound(tok, 1000), &n));
    CU_ASSERT_EQUAL(n, 1000);
    int32_t ids32[1001];
    for (int i = 0; i < 1000; i++) ids32[i] = ids[i];
    char out[2000];
    size_t w;
    LH_ASSERT_OK(lh_tokenizer_decode(tok, ids32, 1000, out, sizeof out, &w));
    CU_ASSERT_EQUAL(w, 1000);
    CU_ASSERT_EQUAL(memcmp(out, text, 1000), 0);
    ids32[0] = 256;
    LH_ASSERT_OK(lh_tokenizer_decode(tok, ids32, 1, out, sizeof out, &w));
    CU_ASSERT_EQUAL(w, strlen(LH_EOT_TEXT));
    CU_ASSERT_EQUAL(memcmp(out, "<|endoftext|>", w), 0);
    CU_ASSERT(lh_tokenizer_decode_bound(tok, 3) >= 3 * strlen(LH_EOT_TEXT));
    ids32[1] = 257;
    LH_ASSERT_FAILS_WITH(lh_tokenizer_decode(tok, ids32, 2, out, sizeof out, &w), LH_ERR_INVALID_ARG,
                         "token 257 at position 1");
    ids32[1] = -5;
    LH_ASSERT_FAILS_WITH(lh_tokenizer_decode(tok, ids32, 2, out, sizeof out, &w), LH_ERR_INVALID_ARG, "token -5");
    LH_ASSERT_FAILS_WITH(lh_tokenizer_decode(tok, ids32, 1, out, 5, &w), LH_ERR_CAPACITY, "full at token 0");
    LH_ASSERT_FAILS_WITH(lh_tokenizer_encode(tok, text, 10, ids, 9, &n), LH_ERR_CAPACITY, "buffer has 9");
    const uint8_t *b;
    size_t blen;
    LH_ASSERT_OK(lh_tokenizer_token_bytes(tok, 'A', &b, &blen));
    CU_ASSERT(blen == 1 && b[0] == 'A');
    LH_ASSERT_FAILS_WITH(lh_tokenizer_token_bytes(tok, 300, &b, &blen), LH_ERR_INVALID_ARG, "token id 300");
    lh_tokenizer_free(tok);
    lh_tokenizer_free(NULL);
}

/* Appends a token (length byte + bytes) to a tokenizer image under construction. */
static size_t put_token(uint8_t *img, size_t pos, const char *s)
{
    size_t n = strlen(s);
    img[pos] = (uint8_t)n;
    memcpy(img + pos + 1, s, n);
    return pos + 1 + n;
}

static size_t handmade_gpt2(uint8_t *img, int version, int32_t vocab, int32_t eot)
{
    memset(img, 0, 1024);
    put_le32(img, 20240328);
    put_le32(img + 4, version);
    put_le32(img + 8, vocab);
    put_le32(img + 12, eot);
    size_t pos = 1024;
    pos = put_token(img, pos, "a");
    pos = put_token(img, pos, " bc");
    pos = put_token(img, pos, "<|endoftext|>");
    pos = put_token(img, pos, "\xff\xfe");
    return pos;
}

static void test_gpt2_tokenizer_file(void)
{
    uint8_t img[1200];
    size_t len = handmade_gpt2(img, 2, 4, 2);
    lh_tokenizer *tok;
    LH_ASSERT_OK(lh_tokenizer_parse_gpt2(img, len, "tok.bin", &tok));
    CU_ASSERT_EQUAL(lh_tokenizer_vocab_size(tok), 4);
    CU_ASSERT_EQUAL(lh_tokenizer_eot(tok), 2);
    CU_ASSERT_STRING_EQUAL(lh_tokenizer_kind(tok), "gpt2");
    CU_ASSERT_FALSE(lh_tokenizer_can_encode(tok));
    int32_t ids[] = {0, 1, 3, 2, 0};
    char out[64];
    size_t w;
    CU_ASSERT(lh_tokenizer_decode_bound(tok, 5) >= 5 * 13);
    LH_ASSERT_OK(lh_tokenizer_decode(tok, ids, 5, out, sizeof out, &w));
    CU_ASSERT_EQUAL(w, 1 + 3 + 2 + 13 + 1);
    CU_ASSERT_EQUAL(memcmp(out, "a bc\xff\xfe<|endoftext|>a", w), 0);
    uint16_t enc[4];
    size_t n;
    LH_ASSERT_FAILS_WITH(lh_tokenizer_encode(tok, "a", 1, enc, 4, &n), LH_ERR_UNSUPPORTED, "can only decode");
    lh_tokenizer_free(tok);

    LH_ASSERT_OK(lh_write_file_atomic(tmp_path("gpt2.bin"), img, len));
    LH_ASSERT_OK(lh_tokenizer_open(tmp_path("gpt2.bin"), &tok));
    CU_ASSERT_EQUAL(lh_tokenizer_vocab_size(tok), 4);
    lh_tokenizer_free(tok);

    /* Version 1 has no EOT field: GPT-2's 50256 is assumed, absent in a 4-token vocabulary. */
    len = handmade_gpt2(img, 1, 4, 12345);
    LH_ASSERT_OK(lh_tokenizer_parse_gpt2(img, len, "v1.bin", &tok));
    CU_ASSERT_EQUAL(lh_tokenizer_eot(tok), -1);
    lh_tokenizer_free(tok);

    len = handmade_gpt2(img, 2, 4, 4);
    LH_ASSERT_FAILS_WITH(lh_tokenizer_parse_gpt2(img, len, "t", &tok), LH_ERR_FORMAT, "end-of-text id 4 is outside");
    CU_ASSERT_PTR_NULL(tok);
    len = handmade_gpt2(img, 3, 4, 2);
    LH_ASSERT_FAILS_WITH(lh_tokenizer_parse_gpt2(img, len, "t", &tok), LH_ERR_FORMAT, "unsupported tokenizer version 3");
    len = handmade_gpt2(img, 2, 4, 2);
    LH_ASSERT_FAILS_WITH(lh_tokenizer_parse_gpt2(img, len - 1, "t", &tok), LH_ERR_TRUNCATED,
                         "token 3 declares 2 bytes but only 1 remain");
    LH_ASSERT_FAILS_WITH(lh_tokenizer_parse_gpt2(img, len - 3, "t", &tok), LH_ERR_TRUNCATED, "file ends before token 3");
    img[len] = 'x';
    LH_ASSERT_FAILS_WITH(lh_tokenizer_parse_gpt2(img, len + 1, "t", &tok), LH_ERR_FORMAT, "1 unexpected bytes");
    img[1024] = 0;
    LH_ASSERT_FAILS_WITH(lh_tokenizer_parse_gpt2(img, len, "t", &tok), LH_ERR_FORMAT, "token 0 has length 0");
    len = handmade_gpt2(img, 2, 50257, 2);
    LH_ASSERT_FAILS_WITH(lh_tokenizer_parse_gpt2(img, len, "t", &tok), LH_ERR_TRUNCATED, "declares 50257 tokens");
    len = handmade_gpt2(img, 2, 0, 0);
    LH_ASSERT_FAILS_WITH(lh_tokenizer_parse_gpt2(img, len, "t", &tok), LH_ERR_FORMAT, "vocabulary size 0");
    put_le32(img, 20240520);
    LH_ASSERT_FAILS_WITH(lh_tokenizer_parse_gpt2(img, len, "t", &tok), LH_ERR_FORMAT, "not an llm.c tokenizer file");
    LH_ASSERT_FAILS_WITH(lh_tokenizer_parse_gpt2(img, 100, "t", &tok), LH_ERR_TRUNCATED, "100 bytes is shorter");
    LH_ASSERT_FAILS_WITH(lh_tokenizer_open(tmp_path("none.bin"), &tok), LH_ERR_IO, "cannot open");
    LH_ASSERT_FAILS_WITH(lh_tokenizer_open("", &tok), LH_ERR_INVALID_ARG, "empty");
}

/* ---- corpus ---- */

static void test_corpus_is_deterministic_and_pinned(void)
{
    char *a, *b;
    size_t na, nb;
    LH_ASSERT_OK(lh_corpus_default(&a, &na));
    LH_ASSERT_OK(lh_corpus_default(&b, &nb));
    CU_ASSERT_EQUAL(na, nb);
    CU_ASSERT_EQUAL(memcmp(a, b, na), 0);
    /* Pinned: sample ids (and AQ-SGD caches keyed by them) assume this exact text; see docs/data.md. */
    CU_ASSERT_EQUAL(na, 1048569);
    CU_ASSERT_EQUAL(lh_crc32c(0, a, na), 0x19335313u);
    CU_ASSERT(na <= LH_CORPUS_DEFAULT_BYTES && na > LH_CORPUS_DEFAULT_BYTES - 2048);
    CU_ASSERT_EQUAL(a[na - 1], '\n');
    size_t lines = 0;
    int printable = 1;
    for (size_t i = 0; i < na; i++) {
        if (a[i] == '\n') lines++;
        else if (a[i] < 32 || a[i] > 126) printable = 0;
    }
    CU_ASSERT_TRUE(printable);
    CU_ASSERT(lines > 5000);
    CU_ASSERT_PTR_NOT_NULL(strstr(a, "The dog barks."));
    CU_ASSERT_PTR_NULL(strstr(a, "The dog meows."));
    /* A smaller buffer gets a prefix of whole lines of the same stream. */
    char small[300];
    size_t ns = lh_corpus_generate(LH_CORPUS_DEFAULT_SEED, small, sizeof small);
    CU_ASSERT(ns > 0 && ns <= sizeof small);
    CU_ASSERT_EQUAL(small[ns - 1], '\n');
    CU_ASSERT_EQUAL(memcmp(small, a, ns), 0);
    CU_ASSERT_EQUAL(lh_corpus_generate(LH_CORPUS_DEFAULT_SEED, small, 3), 0);
    size_t nother = lh_corpus_generate(7, b, nb);
    CU_ASSERT(nother > 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, ns), 0);
    uint16_t *tokens;
    size_t nt;
    LH_ASSERT_OK(lh_corpus_default_tokens(&tokens, &nt));
    CU_ASSERT_EQUAL(nt, na);
    CU_ASSERT_EQUAL(tokens[0], (uint8_t)a[0]);
    CU_ASSERT_EQUAL(tokens[nt - 1], '\n');
    free(tokens);
    free(a);
    free(b);
}

/* ---- dataset ---- */

static uint16_t *ramp_tokens(size_t n)
{
    uint16_t *t = malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++) t[i] = (uint16_t)(i % 50000);
    return t;
}

static void test_dataset_samples_are_windows(void)
{
    uint16_t *tokens = ramp_tokens(1001);
    lh_dataset_config cfg;
    lh_dataset_config_default(&cfg);
    cfg.seq_len = 10;
    cfg.val_fraction = 0.0;
    lh_dataset *ds;
    LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, 1001, &cfg, &ds));
    free(tokens); /* the dataset holds its own copy */
    CU_ASSERT_EQUAL(lh_dataset_total_samples(ds), 100);
    CU_ASSERT_EQUAL(lh_dataset_replica_samples(ds), 100);
    int32_t in[10], tg[10];
    LH_ASSERT_OK(lh_dataset_get_sample(ds, 99, in, tg));
    for (int t = 0; t < 10; t++) {
        CU_ASSERT_EQUAL(in[t], 990 + t);
        CU_ASSERT_EQUAL(tg[t], 991 + t);
    }
    LH_ASSERT_FAILS_WITH(lh_dataset_get_sample(ds, 100, in, tg), LH_ERR_INVALID_ARG, "sample id 100 is outside");
    int32_t bin[3 * 10], btg[3 * 10];
    uint64_t ids[3];
    LH_ASSERT_OK(lh_dataset_next_batch(ds, 3, bin, btg, ids));
    for (int b = 0; b < 3; b++) {
        CU_ASSERT(ids[b] < 100);
        CU_ASSERT_EQUAL(bin[b * 10], (int32_t)ids[b] * 10);
        CU_ASSERT_EQUAL(btg[b * 10 + 9], (int32_t)ids[b] * 10 + 10);
    }
    lh_dataset_free(ds);
    lh_dataset_free(NULL);
}

/* Every replica's epoch is a permutation of its own contiguous range; ranges tile the split. */
static void test_dataset_replicas_partition_and_permute(void)
{
    const size_t n_tokens = 16 * 1003 + 1;
    uint16_t *tokens = ramp_tokens(n_tokens);
    lh_dataset_config cfg;
    lh_dataset_config_default(&cfg);
    cfg.seq_len = 16;
    cfg.val_fraction = 0.0;
    cfg.replicas = 4;
    uint8_t owner[1003];
    memset(owner, 0xff, sizeof owner);
    for (uint32_t r = 0; r < 4; r++) {
        cfg.replica = r;
        lh_dataset *ds;
        LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, n_tokens, &cfg, &ds));
        uint64_t per = lh_dataset_replica_samples(ds), first = lh_dataset_first_sample_id(ds);
        CU_ASSERT_EQUAL(per, 250); /* 1003 / 4: the last 3 samples go to no replica */
        CU_ASSERT_EQUAL(first, r * 250);
        for (uint64_t epoch = 0; epoch < 3; epoch++) {
            uint8_t seen[250] = {0};
            int moved = 0;
            for (uint64_t i = 0; i < per; i++) {
                uint64_t id;
                LH_ASSERT_OK(lh_dataset_sample_at(ds, epoch, i, &id));
                CU_ASSERT_FATAL(id >= first && id < first + per);
                seen[id - first]++;
                if (id != first + i) moved++;
                if (epoch == 0) owner[id] = (uint8_t)r;
            }
            for (int i = 0; i < 250; i++) CU_ASSERT_EQUAL(seen[i], 1);
            CU_ASSERT(moved > 200); /* shuffled, not the identity */
        }
        /* Different epochs give different orders; the same (seed, epoch, replica) the same. */
        uint64_t a0, a1, b0;
        int differ = 0;
        for (uint64_t i = 0; i < 20; i++) {
            LH_ASSERT_OK(lh_dataset_sample_at(ds, 0, i, &a0));
            LH_ASSERT_OK(lh_dataset_sample_at(ds, 1, i, &a1));
            LH_ASSERT_OK(lh_dataset_sample_at(ds, 0, i, &b0));
            CU_ASSERT_EQUAL(a0, b0);
            differ += a0 != a1;
        }
        CU_ASSERT(differ > 10);
        LH_ASSERT_FAILS_WITH(lh_dataset_sample_at(ds, 0, 250, &a0), LH_ERR_INVALID_ARG, "index 250 is outside");
        lh_dataset_free(ds);
    }
    for (int i = 0; i < 1000; i++) CU_ASSERT_EQUAL(owner[i], i / 250);
    /* Sample ids name the same tokens whatever the replica count. */
    cfg.replicas = 1;
    cfg.replica = 0;
    lh_dataset *one, *four;
    LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, n_tokens, &cfg, &one));
    cfg.replicas = 4;
    cfg.replica = 3;
    LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, n_tokens, &cfg, &four));
    int32_t x[16], y[16];
    LH_ASSERT_OK(lh_dataset_get_sample(one, 777, x, NULL));
    LH_ASSERT_OK(lh_dataset_get_sample(four, 777, y, NULL));
    CU_ASSERT_EQUAL(memcmp(x, y, sizeof x), 0);
    lh_dataset_free(one);
    lh_dataset_free(four);
    free(tokens);
}

static void test_dataset_seed_and_no_shuffle(void)
{
    uint16_t *tokens = ramp_tokens(4 * 500 + 1);
    lh_dataset_config cfg;
    lh_dataset_config_default(&cfg);
    cfg.seq_len = 4;
    cfg.val_fraction = 0.0;
    lh_dataset *a, *b, *plain;
    LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, 2001, &cfg, &a));
    cfg.seed = 1338;
    LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, 2001, &cfg, &b));
    cfg.shuffle = 0;
    LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, 2001, &cfg, &plain));
    int differ = 0;
    for (uint64_t i = 0; i < 500; i++) {
        uint64_t ia, ib, ip;
        LH_ASSERT_OK(lh_dataset_sample_at(a, 0, i, &ia));
        LH_ASSERT_OK(lh_dataset_sample_at(b, 0, i, &ib));
        LH_ASSERT_OK(lh_dataset_sample_at(plain, 5, i, &ip));
        differ += ia != ib;
        CU_ASSERT_EQUAL(ip, i);
    }
    CU_ASSERT(differ > 400);
    lh_dataset_free(a);
    lh_dataset_free(b);
    lh_dataset_free(plain);
    /* Tiny ranges (1, 2, 3 samples) are still permutations. */
    for (size_t n = 1; n <= 3; n++) {
        cfg.shuffle = 1;
        LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, 4 * n + 1, &cfg, &a));
        for (uint64_t e = 0; e < 8; e++) {
            unsigned mask = 0;
            for (uint64_t i = 0; i < n; i++) {
                uint64_t id;
                LH_ASSERT_OK(lh_dataset_sample_at(a, e, i, &id));
                CU_ASSERT(id < n);
                mask |= 1u << id;
            }
            CU_ASSERT_EQUAL(mask, (1u << n) - 1);
        }
        lh_dataset_free(a);
    }
    free(tokens);
}

static void test_dataset_validation_split(void)
{
    uint16_t *tokens = ramp_tokens(8 * 100 + 1);
    lh_dataset_config cfg;
    lh_dataset_config_default(&cfg);
    cfg.seq_len = 8;
    cfg.val_fraction = 0.1;
    lh_dataset *train, *val, *all;
    LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, 801, &cfg, &train));
    cfg.split = LH_SPLIT_VAL;
    cfg.shuffle = 0;
    LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, 801, &cfg, &val));
    cfg.split = LH_SPLIT_ALL;
    LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, 801, &cfg, &all));
    CU_ASSERT_EQUAL(lh_dataset_replica_samples(train), 90);
    CU_ASSERT_EQUAL(lh_dataset_first_sample_id(train), 0);
    CU_ASSERT_EQUAL(lh_dataset_replica_samples(val), 10);
    CU_ASSERT_EQUAL(lh_dataset_first_sample_id(val), 90);
    CU_ASSERT_EQUAL(lh_dataset_replica_samples(all), 100);
    uint64_t ids[25];
    LH_ASSERT_OK(lh_dataset_next_batch(train, 25, NULL, NULL, ids));
    for (int i = 0; i < 25; i++) CU_ASSERT(ids[i] < 90);
    LH_ASSERT_OK(lh_dataset_next_batch(val, 12, NULL, NULL, ids)); /* wraps into epoch 1 */
    for (int i = 0; i < 12; i++) CU_ASSERT_EQUAL(ids[i], 90 + (uint64_t)(i % 10));
    CU_ASSERT_EQUAL(lh_dataset_tell(val).epoch, 1);
    CU_ASSERT_EQUAL(lh_dataset_tell(val).index, 2);
    lh_dataset_free(train);
    lh_dataset_free(val);
    lh_dataset_free(all);
    cfg.split = LH_SPLIT_VAL;
    cfg.val_fraction = 0.0;
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_tokens(tokens, 801, &cfg, &val), LH_ERR_INVALID_ARG,
                         "validation split has 0 samples");
    CU_ASSERT_PTR_NULL(val);
    free(tokens);
}

static void test_dataset_resume_gives_same_batches(void)
{
    uint16_t *tokens = ramp_tokens(32 * 37 + 1);
    lh_dataset_config cfg;
    lh_dataset_config_default(&cfg);
    cfg.seq_len = 32;
    cfg.replicas = 2;
    cfg.replica = 1;
    cfg.seed = 99;
    lh_dataset *a, *b;
    LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, 32 * 37 + 1, &cfg, &a));
    LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, 32 * 37 + 1, &cfg, &b));
    uint64_t per = lh_dataset_replica_samples(a); /* 37 samples: 34 train / 2 replicas */
    CU_ASSERT_EQUAL(per, 17);
    int32_t in_a[5 * 32], tg_a[5 * 32], in_b[5 * 32], tg_b[5 * 32];
    uint64_t id_a[5], id_b[5];
    for (int step = 0; step < 7; step++) LH_ASSERT_OK(lh_dataset_next_batch(a, 5, in_a, tg_a, id_a));
    lh_dataset_position saved = lh_dataset_tell(a);
    CU_ASSERT_EQUAL(saved.epoch, 35 / 17);
    CU_ASSERT_EQUAL(saved.index, 35 % 17);
    LH_ASSERT_OK(lh_dataset_seek(b, saved));
    for (int step = 0; step < 6; step++) {
        LH_ASSERT_OK(lh_dataset_next_batch(a, 5, in_a, tg_a, id_a));
        LH_ASSERT_OK(lh_dataset_next_batch(b, 5, in_b, tg_b, id_b));
        CU_ASSERT_EQUAL(memcmp(id_a, id_b, sizeof id_a), 0);
        CU_ASSERT_EQUAL(memcmp(in_a, in_b, sizeof in_a), 0);
        CU_ASSERT_EQUAL(memcmp(tg_a, tg_b, sizeof tg_a), 0);
    }
    lh_dataset_position bad = {0, 17};
    LH_ASSERT_FAILS_WITH(lh_dataset_seek(b, bad), LH_ERR_INVALID_ARG, "position index 17");
    /* Each epoch, read in batches that straddle epoch ends, visits every sample exactly once. */
    lh_dataset_position start = {4, 0};
    LH_ASSERT_OK(lh_dataset_seek(b, start));
    unsigned counts[37] = {0};
    for (int step = 0; step < 17; step++) { /* 17 batches of 3 = 3 epochs of 17 */
        uint64_t ids[3];
        LH_ASSERT_OK(lh_dataset_next_batch(b, 3, NULL, NULL, ids));
        for (int i = 0; i < 3; i++) counts[ids[i]]++;
    }
    for (int i = 0; i < 37; i++) CU_ASSERT_EQUAL(counts[i], (i >= 17 && i < 34) ? 3u : 0u);
    CU_ASSERT_EQUAL(lh_dataset_tell(b).epoch, 7);
    lh_dataset_free(a);
    lh_dataset_free(b);
    free(tokens);
}

static void test_dataset_rejects_bad_config(void)
{
    uint16_t tokens[100] = {0};
    tokens[50] = 300;
    lh_dataset_config cfg;
    lh_dataset_config_default(&cfg);
    lh_dataset *ds;
    cfg.seq_len = 8;
    cfg.split = LH_SPLIT_VAL;
    cfg.val_fraction = 0.05; /* floor(12 samples * 0.05) = 0 */
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_tokens(tokens, 100, &cfg, &ds), LH_ERR_INVALID_ARG,
                         "the validation split has 0 samples of 8+1 tokens (of 12)");
    cfg.split = LH_SPLIT_TRAIN;
    cfg.val_fraction = 0;
    cfg.vocab_size = 257;
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_tokens(tokens, 100, &cfg, &ds), LH_ERR_FORMAT,
                         "token 300 at index 50 is outside the vocabulary of 257");
    cfg.vocab_size = 0;
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_tokens(tokens, 8, &cfg, &ds), LH_ERR_INVALID_ARG,
                         "8 tokens are too few for one sample of 8 + 1");
    cfg.replicas = 2;
    cfg.replica = 2;
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_tokens(tokens, 100, &cfg, &ds), LH_ERR_INVALID_ARG, "replica 2 is outside");
    cfg.replica = 0;
    cfg.replicas = 20;
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_tokens(tokens, 100, &cfg, &ds), LH_ERR_INVALID_ARG,
                         "fewer than the 20 replicas");
    cfg.replicas = 1;
    cfg.seq_len = 0;
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_tokens(tokens, 100, &cfg, &ds), LH_ERR_INVALID_ARG, "seq_len");
    cfg.seq_len = 8;
    cfg.val_fraction = 1.0;
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_tokens(tokens, 100, &cfg, &ds), LH_ERR_INVALID_ARG, "val_fraction 1");
    cfg.val_fraction = 0.1;
    cfg.vocab_size = 70000;
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_tokens(tokens, 100, &cfg, &ds), LH_ERR_INVALID_ARG, "uint16");
}

static void test_dataset_sources(void)
{
    lh_dataset_config cfg;
    lh_dataset_config_default(&cfg);
    cfg.vocab_size = LH_BYTE_VOCAB_SIZE;
    lh_dataset *ds;
    LH_ASSERT_OK(lh_dataset_create_from_source("embedded", &cfg, &ds));
    CU_ASSERT_EQUAL(lh_dataset_total_samples(ds), (1048569 - 1) / 64);
    lh_dataset_free(ds);
    const char *text = "hello, world\nsecond line\n";
    LH_ASSERT_OK(lh_write_file_atomic(tmp_path("t.txt"), text, strlen(text)));
    cfg.seq_len = 4;
    cfg.val_fraction = 0.0;
    LH_ASSERT_OK(lh_dataset_create_from_source(tmp_path("t.txt"), &cfg, &ds));
    int32_t in[4];
    LH_ASSERT_OK(lh_dataset_get_sample(ds, 1, in, NULL));
    CU_ASSERT(in[0] == 'o' && in[1] == ',' && in[2] == ' ' && in[3] == 'w');
    lh_dataset_free(ds);
    cfg.vocab_size = 100; /* 'o' = 111 does not fit */
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_source(tmp_path("t.txt"), &cfg, &ds), LH_ERR_FORMAT,
                         "byte 104 at offset 0 is outside the vocabulary of 100");
    cfg.vocab_size = 0;
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_source(tmp_path("missing.txt"), &cfg, &ds), LH_ERR_IO, "cannot open");
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_source("", &cfg, &ds), LH_ERR_INVALID_ARG, "empty");
    cfg.seq_len = 1000;
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_source(tmp_path("t.txt"), &cfg, &ds), LH_ERR_INVALID_ARG,
                         "t.txt: dataset: 25 tokens are too few");
}

/* Mapped shards (with an empty one and windows straddling files) give the same samples as one array. */
static void test_dataset_over_several_shards(void)
{
    const size_t n = 1000;
    uint16_t *tokens = ramp_tokens(n);
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "%s/multi", tmp_dir);
    LH_ASSERT_OK(lh_mkdir_p(dir));
    const size_t cuts[] = {0, 37, 37, 500, 501, 1000}; /* shard 1 is empty, shard 3 holds one token */
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/train_%06d.bin", dir, i);
        LH_ASSERT_OK(lh_shard_write(path, tokens + cuts[i], cuts[i + 1] - cuts[i]));
    }
    lh_dataset_config cfg;
    lh_dataset_config_default(&cfg);
    cfg.seq_len = 13;
    cfg.vocab_size = 1000;
    lh_dataset *mapped, *flat;
    snprintf(path, sizeof path, "%s/train_*.bin", dir);
    LH_ASSERT_OK(lh_dataset_create_from_source(path, &cfg, &mapped));
    LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, n, &cfg, &flat));
    CU_ASSERT_EQUAL(lh_dataset_total_samples(mapped), (n - 1) / 13);
    int all_equal = 1;
    for (uint64_t id = 0; id < lh_dataset_total_samples(mapped); id++) {
        int32_t a_in[13], a_tg[13], b_in[13], b_tg[13];
        LH_ASSERT_OK(lh_dataset_get_sample(mapped, id, a_in, a_tg));
        LH_ASSERT_OK(lh_dataset_get_sample(flat, id, b_in, b_tg));
        all_equal &= memcmp(a_in, b_in, sizeof a_in) == 0 && memcmp(a_tg, b_tg, sizeof a_tg) == 0;
        all_equal &= a_in[0] == (int32_t)(id * 13) && a_tg[12] == (int32_t)(id * 13 + 13);
    }
    CU_ASSERT_TRUE(all_equal);
    lh_dataset_free(mapped);
    lh_dataset_free(flat);
    snprintf(path, sizeof path, "%s/train_000004.bin", dir);
    LH_ASSERT_OK(lh_dataset_create_from_source(path, &cfg, &mapped)); /* a single shard by name */
    CU_ASSERT_EQUAL(lh_dataset_total_samples(mapped), (499 - 1) / 13);
    lh_dataset_free(mapped);
    cfg.vocab_size = 600;
    snprintf(path, sizeof path, "%s/train_*.bin", dir);
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_source(path, &cfg, &mapped), LH_ERR_FORMAT,
                         "train_000004.bin: token 600 at index 99 is outside the vocabulary of 600");
    snprintf(path, sizeof path, "%s/absent.bin", dir);
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_source(path, &cfg, &mapped), LH_ERR_IO, "absent.bin: cannot open");
    snprintf(path, sizeof path, "%s/short.bin", dir);
    LH_ASSERT_OK(lh_write_file_atomic(path, "abc", 3));
    LH_ASSERT_FAILS_WITH(lh_dataset_create_from_source(path, &cfg, &mapped), LH_ERR_TRUNCATED, "3 bytes is shorter");
    free(tokens);
}

/* ---- tokenize ---- */

static void test_tokenize_to_shards(void)
{
    lh_tokenizer *tok;
    LH_ASSERT_OK(lh_tokenizer_create_byte(&tok));
    lh_tokenize_options opts;
    lh_tokenize_options_default(&opts);
    opts.shard_tokens = 40;
    opts.val_fraction = 0.25;
    char text[100];
    for (int i = 0; i < 100; i++) text[i] = (char)('a' + i % 26);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/tok", tmp_dir);
    lh_tokenize_result res;
    LH_ASSERT_OK(lh_tokenize_to_shards(text, 100, tok, &opts, dir, &res));
    CU_ASSERT_EQUAL(res.train_tokens, 75);
    CU_ASSERT_EQUAL(res.val_tokens, 25);
    CU_ASSERT_EQUAL(res.train_shards, 2);
    CU_ASSERT_EQUAL(res.val_shards, 1);
    char pattern[300];
    uint16_t *back;
    size_t n;
    snprintf(pattern, sizeof pattern, "%s/*_*.bin", dir); /* train_ then val_: sorted names put train first */
    LH_ASSERT_OK(lh_data_load_tokens(pattern, LH_BYTE_VOCAB_SIZE, &back, &n));
    CU_ASSERT_EQUAL(n, 100);
    int same = n == 100;
    for (size_t i = 0; same && i < n; i++) same = back[i] == (uint8_t)text[i];
    CU_ASSERT_TRUE(same);
    free(back);
    /* A second run into the same folder is refused unless asked to replace. */
    LH_ASSERT_FAILS_WITH(lh_tokenize_to_shards(text, 100, tok, &opts, dir, &res), LH_ERR_INVALID_ARG,
                         "already holds shards");
    opts.replace = 1;
    opts.shard_tokens = 1000;
    opts.val_fraction = 0;
    LH_ASSERT_OK(lh_tokenize_to_shards(text, 100, tok, &opts, dir, &res));
    CU_ASSERT_EQUAL(res.train_shards, 1);
    CU_ASSERT_EQUAL(res.val_shards, 0);
    LH_ASSERT_OK(lh_data_load_tokens(pattern, 0, &back, &n));
    CU_ASSERT_EQUAL(n, 100); /* the old train_000001 and val_000000 are gone */
    free(back);
    /* Documents: an EOT before each paragraph. */
    const char *docs = "one\ntwo\n\n\nthree\n";
    opts.docs = LH_DOCS_PARAGRAPHS;
    LH_ASSERT_OK(lh_tokenize_to_shards(docs, strlen(docs), tok, &opts, dir, &res));
    CU_ASSERT_EQUAL(res.train_tokens, strlen(docs) + 2);
    snprintf(pattern, sizeof pattern, "%s/train_000000.bin", dir);
    LH_ASSERT_OK(lh_shard_read(pattern, LH_BYTE_VOCAB_SIZE, &back, &n));
    CU_ASSERT(n == strlen(docs) + 2 && back[0] == LH_BYTE_EOT && back[1] == 'o' && back[11] == LH_BYTE_EOT &&
              back[12] == 't');
    free(back);
    opts.docs = LH_DOCS_LINES;
    LH_ASSERT_OK(lh_tokenize_to_shards(docs, strlen(docs), tok, &opts, dir, &res));
    CU_ASSERT_EQUAL(res.train_tokens, strlen(docs) + 3);
    opts.docs = LH_DOCS_NONE;
    opts.val_fraction = 0.5;
    LH_ASSERT_FAILS_WITH(lh_tokenize_to_shards("x", 1, tok, &opts, dir, &res), LH_ERR_INVALID_ARG,
                         "leave none for a validation");
    LH_ASSERT_FAILS_WITH(lh_tokenize_to_shards("", 0, tok, &opts, dir, &res), LH_ERR_INVALID_ARG, "empty");
    opts.val_fraction = 1.5;
    LH_ASSERT_FAILS_WITH(lh_tokenize_to_shards(text, 100, tok, &opts, dir, &res), LH_ERR_INVALID_ARG,
                         "outside [0, 1)");
    lh_tokenizer_free(tok);
    uint8_t img[1200];
    size_t len = handmade_gpt2(img, 2, 4, 2);
    LH_ASSERT_OK(lh_tokenizer_parse_gpt2(img, len, "g", &tok));
    opts.val_fraction = 0;
    LH_ASSERT_FAILS_WITH(lh_tokenize_to_shards(text, 100, tok, &opts, dir, &res), LH_ERR_UNSUPPORTED, "only decode");
    lh_tokenizer_free(tok);
}

int main(void)
{
    CU_TestInfo shard_tests[] = {
        {"encode matches llm.c layout", test_shard_encode_matches_llmc_layout},
        {"bad images rejected", test_shard_rejects_bad_images},
        {"file round trip", test_shard_file_round_trip},
        {"series and pattern load", test_shard_series_and_pattern_load},
        {"files written by python", test_reads_files_written_by_python},
        CU_TEST_INFO_NULL,
    };
    CU_TestInfo tokenizer_tests[] = {
        {"byte round trip", test_byte_tokenizer_round_trip},
        {"gpt2 file", test_gpt2_tokenizer_file},
        CU_TEST_INFO_NULL,
    };
    CU_TestInfo corpus_tests[] = {
        {"deterministic and pinned", test_corpus_is_deterministic_and_pinned},
        CU_TEST_INFO_NULL,
    };
    CU_TestInfo dataset_tests[] = {
        {"samples are windows", test_dataset_samples_are_windows},
        {"replicas partition and permute", test_dataset_replicas_partition_and_permute},
        {"seed and no shuffle", test_dataset_seed_and_no_shuffle},
        {"validation split", test_dataset_validation_split},
        {"resume gives same batches", test_dataset_resume_gives_same_batches},
        {"bad config rejected", test_dataset_rejects_bad_config},
        {"sources", test_dataset_sources},
        {"over several shards", test_dataset_over_several_shards},
        {"tokenize to shards", test_tokenize_to_shards},
        CU_TEST_INFO_NULL,
    };
    CU_SuiteInfo suites[] = {
        {"shard", make_tmp, drop_tmp, NULL, NULL, shard_tests},
        {"tokenizer", make_tmp, drop_tmp, NULL, NULL, tokenizer_tests},
        {"corpus", NULL, NULL, NULL, NULL, corpus_tests},
        {"dataset", make_tmp, drop_tmp, NULL, NULL, dataset_tests},
        CU_SUITE_INFO_NULL,
    };
    return lh_test_run(suites);
}
