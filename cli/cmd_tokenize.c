/*
 * longhaul tokenize: text -> llm.c token shards, and back for inspection.
 *
 * The work is in data/ (lh_tokenize_to_shards), so this file only parses
 * flags strictly (a typo in a number is an error, never a silent default)
 * and prints what was written.  --decode exists so a user can check a shard
 * by eye, including shards made by llm.c with its GPT-2 tokenizer file.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "lh_data.h"
#include "lh_io.h"

#define TEXT_MAX_BYTES ((size_t)4 << 30)

static void usage(FILE *out)
{
    fprintf(out,
            "usage: longhaul tokenize INPUT.txt --out DIR [options]\n"
            "       longhaul tokenize --embedded --out DIR [options]\n"
            "       longhaul tokenize --decode SHARD.bin [--tokenizer byte|FILE] [--max-tokens N]\n\n"
            "Turn a text file (any bytes) into llm.c token shards DIR/train_NNNNNN.bin and\n"
            "DIR/val_NNNNNN.bin (the tail of the text), or print a shard as text.\n\n"
            "options:\n"
            "  --out DIR             output folder (created if missing)\n"
            "  --embedded            tokenize the built-in default corpus instead of INPUT\n"
            "  --tokenizer NAME      'byte' (default; vocab 257, EOT 256) or, with --decode,\n"
            "                        an llm.c GPT-2 tokenizer file (gpt2_tokenizer.bin)\n"
            "  --shard-tokens N      most tokens per shard (default 100000000)\n"
            "  --val-fraction F      fraction of tokens for validation, in [0, 1) (default 0.1)\n"
            "  --docs MODE           end-of-text tokens: none (default), lines (before every\n"
            "                        non-empty line) or paragraphs (before every blank-line-\n"
            "                        separated block)\n"
            "  --replace             delete existing train_*.bin / val_*.bin in DIR first\n"
            "  --decode SHARD        print the shard's tokens decoded to stdout\n"
            "  --max-tokens N        with --decode: stop after N tokens (default all)\n");
}

static int parse_size(const char *flag, const char *text, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end || text[0] == '-') {
        fprintf(stderr, "longhaul tokenize: %s wants a non-negative integer, got '%s'\n", flag, text);
        return 0;
    }
    *out = (size_t)v;
    return 1;
}

static int decode_shard(const char *path, const char *tokenizer_spec, size_t max_tokens)
{
    lh_tokenizer *tok;
    lh_status st = lh_tokenizer_open(tokenizer_spec, &tok);
    if (st) return cli_report("tokenize", st);
    uint16_t *tokens;
    size_t n;
    st = lh_shard_read(path, lh_tokenizer_vocab_size(tok), &tokens, &n);
    if (st) {
        lh_tokenizer_free(tok);
        return cli_report("tokenize", st);
    }
    if (max_tokens && max_tokens < n) n = max_tokens;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *bytes;
        size_t len;
        lh_tokenizer_token_bytes(tok, tokens[i], &bytes, &len); /* ids were checked against the vocabulary */
        fwrite(bytes, 1, len, stdout);
    }
    free(tokens);
    lh_tokenizer_free(tok);
    return fflush(stdout) == 0 ? LH_EXIT_OK : LH_EXIT_FAILURE;
}

int cmd_tokenize(int argc, char **argv)
{
    enum { OPT_OUT = 1000, OPT_EMBEDDED, OPT_TOKENIZER, OPT_SHARD_TOKENS, OPT_VAL, OPT_DOCS, OPT_REPLACE, OPT_DECODE,
           OPT_MAX_TOKENS };
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},
        {"out", required_argument, NULL, OPT_OUT},
        {"embedded", no_argument, NULL, OPT_EMBEDDED},
        {"tokenizer", required_argument, NULL, OPT_TOKENIZER},
        {"shard-tokens", required_argument, NULL, OPT_SHARD_TOKENS},
        {"val-fraction", required_argument, NULL, OPT_VAL},
        {"docs", required_argument, NULL, OPT_DOCS},
        {"replace", no_argument, NULL, OPT_REPLACE},
        {"decode", required_argument, NULL, OPT_DECODE},
        {"max-tokens", required_argument, NULL, OPT_MAX_TOKENS},
        {NULL, 0, NULL, 0},
    };
    lh_tokenize_options opts;
    lh_tokenize_options_default(&opts);
    const char *out_dir = NULL, *tokenizer_spec = "byte", *decode_path = NULL;
    int embedded = 0;
    size_t max_tokens = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return LH_EXIT_OK;
        case OPT_OUT:
            out_dir = optarg;
            break;
        case OPT_EMBEDDED:
            embedded = 1;
            break;
        case OPT_TOKENIZER:
            tokenizer_spec = optarg;
            break;
        case OPT_SHARD_TOKENS:
            if (!parse_size("--shard-tokens", optarg, &opts.shard_tokens)) return LH_EXIT_USAGE;
            break;
        case OPT_VAL: {
            char *end;
            errno = 0;
            opts.val_fraction = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(opts.val_fraction >= 0 && opts.val_fraction < 1)) {
                fprintf(stderr, "longhaul tokenize: --val-fraction wants a number in [0, 1), got '%s'\n", optarg);
                return LH_EXIT_USAGE;
            }
            break;
        }
        case OPT_DOCS:
            if (strcmp(optarg, "none") == 0) opts.docs = LH_DOCS_NONE;
            else if (strcmp(optarg, "lines") == 0) opts.docs = LH_DOCS_LINES;
            else if (strcmp(optarg, "paragraphs") == 0) opts.docs = LH_DOCS_PARAGRAPHS;
            else {
                fprintf(stderr, "longhaul tokenize: --docs wants none, lines or paragraphs, got '%s'\n", optarg);
                return LH_EXIT_USAGE;
            }
            break;
        case OPT_REPLACE:
            opts.replace = 1;
            break;
        case OPT_DECODE:
            decode_path = optarg;
            break;
        case OPT_MAX_TOKENS:
            if (!parse_size("--max-tokens", optarg, &max_tokens)) return LH_EXIT_USAGE;
            break;
        default:
            usage(stderr);
            return LH_EXIT_USAGE;
        }
    }
    int positional = argc - optind;
    if (decode_path) {
        if (positional || out_dir || embedded) {
            fprintf(stderr, "longhaul tokenize: --decode takes no INPUT, --out or --embedded\n\n");
            usage(stderr);
            return LH_EXIT_USAGE;
        }
        return decode_shard(decode_path, tokenizer_spec, max_tokens);
    }
    if (!out_dir || positional != (embedded ? 0 : 1)) {
        fprintf(stderr, "longhaul tokenize: give --out DIR and either one INPUT file or --embedded\n\n");
        usage(stderr);
        return LH_EXIT_USAGE;
    }
    const char *input = embedded ? "<embedded corpus>" : argv[optind];
    char *text;
    size_t len;
    lh_status st = embedded ? lh_corpus_default(&text, &len) : lh_read_file(input, TEXT_MAX_BYTES, &text, &len);
    if (st) return cli_report("tokenize", st);
    lh_tokenizer *tok;
    st = lh_tokenizer_open(tokenizer_spec, &tok);
    if (st) {
        free(text);
        return cli_report("tokenize", st);
    }
    lh_tokenize_result res;
    unsigned vocab = lh_tokenizer_vocab_size(tok);
    st = lh_tokenize_to_shards(text, len, tok, &opts, out_dir, &res);
    free(text);
    lh_tokenizer_free(tok);
    if (st) return cli_report("tokenize", lh_fail_prefix(st, "%s", input));
    printf("%s: %zu bytes -> %zu train tokens in %zu shard(s), %zu val tokens in %zu shard(s) under %s "
           "(tokenizer %s, vocab %u)\n",
           input, len, res.train_tokens, res.train_shards, res.val_tokens, res.val_shards, out_dir, tokenizer_spec,
           vocab);
    return LH_EXIT_OK;
}
