/*
 * longhaul generate: sample text from a checkpoint (llm.c or longhaul format),
 * greedy or with temperature / top-k, printing tokens as they are produced.
 *
 * The tokenizer must match the model's vocabulary: the byte tokenizer (257
 * ids) for models trained on byte tokens, or llm.c's GPT-2 tokenizer file
 * (gpt2_tokenizer.bin, 50257 ids) for GPT-2 weights.  GPT-2's tokenizer file
 * has no merge table, so a GPT-2 prompt is given as token ids
 * (--prompt-tokens); byte models take --prompt text.  Without a prompt the
 * model starts from the end-of-text token, as GPT-2 sampling does.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "lh_checkpoint.h"
#include "lh_data.h"
#include "lh_generate.h"
#include "lh_model.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: longhaul generate CHECKPOINT [options]\n\n"
            "Sample text from a model.\n"
            "  CHECKPOINT            an llm.c fp32 model file or a longhaul checkpoint\n"
            "  --tokenizer SPEC      'byte' (default) or an llm.c GPT-2 tokenizer file\n"
            "  --prompt TEXT         start from this text (byte tokenizer only)\n"
            "  --prompt-tokens IDS   start from these comma-separated token ids\n"
            "  --tokens N            tokens to generate (default 64)\n"
            "  --greedy              always take the most likely token\n"
            "  --temperature F       sampling temperature (default 1.0; 0 = greedy)\n"
            "  --top-k K             sample among the K most likely tokens (default 0 = all)\n"
            "  --seed S              sampling seed (default 1337)\n"
            "  --threads N           CPU threads (default 2)\n"
            "  --json                print one JSON object {prompt_tokens, tokens, text} at the end\n");
}

typedef struct printer {
    const lh_tokenizer *tok;
    int stream;
} printer;

static int print_token(int32_t token, void *user)
{
    printer *p = user;
    const uint8_t *bytes;
    size_t len;
    if (p->stream && lh_tokenizer_token_bytes(p->tok, (uint32_t)token, &bytes, &len) == LH_OK) {
        fwrite(bytes, 1, len, stdout);
        fflush(stdout);
    }
    return 0;
}

static void json_bytes(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') fprintf(out, "\\%c", ch);
        else if (ch == '\n') fputs("\\n", out);
        else if (ch < 0x20 || ch >= 0x7f) fprintf(out, "\\u%04x", ch); /* bytes, not code points */
        else fputc(ch, out);
    }
    fputc('"', out);
}

int cmd_generate(int argc, char **argv)
{
    static const struct option options[] = {{"tokenizer", required_argument, NULL, 'k'},
                                            {"prompt", required_argument, NULL, 'p'},
                                            {"prompt-tokens", required_argument, NULL, 'P'},
                                            {"tokens", required_argument, NULL, 'n'},
                                            {"greedy", no_argument, NULL, 'g'},
                                            {"temperature", required_argument, NULL, 't'},
                                            {"top-k", required_argument, NULL, 'K'},
                                            {"seed", required_argument, NULL, 's'},
                                            {"threads", required_argument, NULL, 'j'},
                                            {"json", no_argument, NULL, 'J'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *tokenizer_spec = "byte", *prompt = NULL, *prompt_ids = NULL;
    long count = 64, top_k = 0, seed = 1337, threads = 2;
    double temperature = 1.0;
    int json = 0, greedy = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        int bad = 0;
        char *end;
        switch (c) {
        case 'k': tokenizer_spec = optarg; break;
        case 'p': prompt = optarg; break;
        case 'P': prompt_ids = optarg; break;
        case 'n': bad = !cli_parse_long(optarg, 0, 1 << 20, &count); break;
        case 'g': greedy = 1; break;
        case 't':
            temperature = strtod(optarg, &end);
            bad = *optarg == '\0' || *end != '\0' || !(temperature >= 0 && temperature <= 100);
            break;
        case 'K': bad = !cli_parse_long(optarg, 0, 1 << 24, &top_k); break;
        case 's': bad = !cli_parse_long(optarg, 0, __LONG_MAX__, &seed); break;
        case 'j': bad = !cli_parse_long(optarg, 1, 1024, &threads); break;
        case 'J': json = 1; break;
        case 'h': usage(stdout); return LH_EXIT_OK;
        default: bad = 1;
        }
        if (bad) {
            fprintf(stderr, "longhaul generate: bad option or value: %s\n\n", argv[optind - 1]);
            usage(stderr);
            return LH_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || (prompt && prompt_ids)) {
        fprintf(stderr, "longhaul generate: %s\n\n",
                prompt && prompt_ids ? "give --prompt or --prompt-tokens, not both" : "expected exactly one CHECKPOINT");
        usage(stderr);
        return LH_EXIT_USAGE;
    }
    const char *path = argv[optind];
    lh_model_set_threads((int)threads);

    lh_tokenizer *tok = NULL;
    lh_stage *model = NULL;
    int32_t *tokens = NULL;
    char *text = NULL;
    lh_status st = lh_tokenizer_open(tokenizer_spec, &tok);
    if (st) return cli_report("generate", st);
    lh_checkpoint_format format;
    lh_model_config cfg;
    if ((st = lh_checkpoint_read_config(path, &format, &cfg))) goto done;
    if ((uint32_t)cfg.vocab_size != lh_tokenizer_vocab_size(tok)) {
        st = lh_fail(LH_ERR_MISMATCH, "%s has a vocabulary of %d but the %s tokenizer has %u ids", path,
                     cfg.vocab_size, lh_tokenizer_kind(tok), lh_tokenizer_vocab_size(tok));
        goto done;
    }
    /* prompt -> tokens */
    size_t prompt_cap = prompt ? lh_tokenizer_encode_bound(tok, strlen(prompt)) : prompt_ids ? strlen(prompt_ids) : 1;
    if (prompt_cap < 1) prompt_cap = 1;
    tokens = malloc(sizeof(int32_t) * (prompt_cap + (size_t)count + 1));
    if (!tokens) {
        st = lh_fail(LH_ERR_NOMEM, "generate: out of memory");
        goto done;
    }
    size_t length = 0;
    if (prompt && *prompt) {
        uint16_t *ids = malloc(sizeof(uint16_t) * prompt_cap);
        if (!ids) {
            st = lh_fail(LH_ERR_NOMEM, "generate: out of memory");
            goto done;
        }
        st = lh_tokenizer_encode(tok, prompt, strlen(prompt), ids, prompt_cap, &length);
        for (size_t i = 0; !st && i < length; i++) tokens[i] = ids[i];
        free(ids);
        if (st) goto done;
    } else if (prompt_ids) {
        const char *p = prompt_ids;
        while (*p) {
            char *end;
            long id = strtol(p, &end, 10);
            if (end == p || id < 0 || id >= cfg.vocab_size || (*end != ',' && *end != '\0')) {
                st = lh_fail(LH_ERR_INVALID_ARG, "--prompt-tokens: '%s' is not a comma-separated list of ids below %d",
                             prompt_ids, cfg.vocab_size);
                goto done;
            }
            tokens[length++] = (int32_t)id;
            p = *end ? end + 1 : end;
        }
    }
    if (length == 0) {
        int32_t eot = lh_tokenizer_eot(tok);
        if (eot < 0) {
            st = lh_fail(LH_ERR_INVALID_ARG, "no prompt and the tokenizer has no end-of-text token to start from");
            goto done;
        }
        tokens[length++] = eot;
    }
    size_t prompt_length = length; /* the start token counts as prompt: it was not generated */
    if ((st = lh_model_open(path, 1, 0, &model, NULL))) goto done;
    lh_sampling sp = {.temperature = greedy ? 0.0f : (float)temperature, .top_k = (int)top_k, .seed = (uint64_t)seed};
    printer pr = {tok, !json};
    if (!json && prompt) fputs(prompt, stdout);
    if ((st = lh_generate(model, tokens, &length, (size_t)count, &sp, print_token, &pr))) goto done;
    if (json) {
        size_t cap = lh_tokenizer_decode_bound(tok, length - prompt_length);
        size_t written = 0;
        text = malloc(cap + 1);
        if (!text) {
            st = lh_fail(LH_ERR_NOMEM, "generate: out of memory");
            goto done;
        }
        if ((st = lh_tokenizer_decode(tok, tokens + prompt_length, length - prompt_length, text, cap, &written)))
            goto done;
        printf("{\"checkpoint\":");
        json_bytes(stdout, path, strlen(path));
        printf(",\"prompt_tokens\":%zu,\"tokens\":[", prompt_length);
        for (size_t i = prompt_length; i < length; i++) printf("%s%d", i > prompt_length ? "," : "", tokens[i]);
        printf("],\"text\":");
        json_bytes(stdout, text, written);
        printf("}\n");
    } else {
        printf("\n");
    }
done:
    free(text);
    free(tokens);
    lh_stage_free(model);
    lh_tokenizer_free(tok);
    return st ? cli_report("generate", st) : LH_EXIT_OK;
}
