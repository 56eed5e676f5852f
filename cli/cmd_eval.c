/*
 * longhaul eval: mean validation loss of a checkpoint (llm.c or longhaul
 * format, detected from the file) on token shards, a text file or the
 * embedded corpus.
 *
 * The token stream is cut into consecutive, non-overlapping windows of T+1
 * tokens sharing one boundary token (inputs = first T, targets = last T), the
 * same windows llm.c's and our dataset's sample ids use, so the number is
 * comparable with the training run's validation loss.  The reported loss is
 * the mean over every predicted token (batches weighted by their size), and
 * the last, partial batch is evaluated with a smaller batch, so no token of
 * the chosen windows is dropped.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "lh_checkpoint.h"
#include "lh_data.h"
#include "lh_model.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: longhaul eval CHECKPOINT --data SOURCE [options]\n\n"
            "Mean cross-entropy loss (nats per token) of a model on token data.\n"
            "  CHECKPOINT          an llm.c fp32 model file or a longhaul checkpoint\n"
            "  --data SOURCE       token shard(s) 'x.bin' or 'dir/val_*.bin', a text file (byte tokens),\n"
            "                      or 'embedded' (the built-in corpus, byte tokens)\n"
            "  --seq-len T         window length (default: the model's context)\n"
            "  --batch B           windows per forward pass (default 4)\n"
            "  --max-batches N     evaluate at most N batches (default: all)\n"
            "  --threads N         CPU threads (default 2)\n"
            "  --json              print one JSON object: checkpoint, format, step, loss, tokens, ...\n");
}

static void json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(out, "\\%c", ch);
        else if (ch < 0x20) fprintf(out, "\\u%04x", ch);
        else fputc(ch, out);
    }
    fputc('"', out);
}

int cmd_eval(int argc, char **argv)
{
    static const struct option options[] = {{"data", required_argument, NULL, 'd'},
                                            {"seq-len", required_argument, NULL, 't'},
                                            {"batch", required_argument, NULL, 'b'},
                                            {"max-batches", required_argument, NULL, 'm'},
                                            {"threads", required_argument, NULL, 'j'},
                                            {"json", no_argument, NULL, 'J'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *data = NULL;
    long seq_len = 0, batch = 4, max_batches = 0, threads = 2;
    int json = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'd': data = optarg; break;
        case 't': bad = !cli_parse_long(optarg, 1, 1 << 20, &seq_len); break;
        case 'b': bad = !cli_parse_long(optarg, 1, 4096, &batch); break;
        case 'm': bad = !cli_parse_long(optarg, 1, 1L << 40, &max_batches); break;
        case 'j': bad = !cli_parse_long(optarg, 1, 1024, &threads); break;
        case 'J': json = 1; break;
        case 'h': usage(stdout); return LH_EXIT_OK;
        default: bad = 1;
        }
        if (bad) {
            fprintf(stderr, "longhaul eval: bad option or value: %s\n\n", argv[optind - 1]);
            usage(stderr);
            return LH_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !data) {
        fprintf(stderr, "longhaul eval: %s\n\n", !data ? "--data is required" : "expected exactly one CHECKPOINT");
        usage(stderr);
        return LH_EXIT_USAGE;
    }
    const char *path = argv[optind];
    lh_model_set_threads((int)threads);

    lh_checkpoint_format format;
    lh_model_config cfg;
    lh_status st = lh_checkpoint_read_config(path, &format, &cfg);
    if (st) return cli_report("eval", st);
    lh_stage *model = NULL;
    int64_t step = 0;
    if (seq_len == 0) seq_len = cfg.max_seq_len;
    if (seq_len > cfg.max_seq_len) {
        fprintf(stderr, "longhaul eval: --seq-len %ld exceeds the model's context %d\n", seq_len, cfg.max_seq_len);
        return LH_EXIT_USAGE;
    }

    uint16_t *tokens = NULL;
    size_t count = 0;
    if ((st = lh_data_load_tokens(data, (uint32_t)cfg.vocab_size, &tokens, &count))) return cli_report("eval", st);
    if (count < 2) {
        free(tokens);
        return cli_report("eval", lh_fail(LH_ERR_FORMAT, "%s: %zu tokens: need at least 2", data, count));
    }
    if ((size_t)seq_len > count - 1) seq_len = (long)(count - 1); /* a short text: one shorter window */
    size_t windows = (count - 1) / (size_t)seq_len;
    size_t batches = (windows + (size_t)batch - 1) / (size_t)batch;
    if (max_batches > 0 && batches > (size_t)max_batches) {
        batches = (size_t)max_batches;
        windows = batches * (size_t)batch;
    }
    if ((st = lh_model_open(path, (int)batch, (int)seq_len, &model, &step))) {
        free(tokens);
        return cli_report("eval", st);
    }
    int32_t *x = malloc(sizeof(int32_t) * (size_t)batch * (size_t)seq_len);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)batch * (size_t)seq_len);
    if (!x || !y) {
        st = lh_fail(LH_ERR_NOMEM, "eval: out of memory");
        goto done;
    }
    double loss_sum = 0;
    size_t evaluated = 0;
    for (size_t w = 0; w < windows; w += (size_t)batch) {
        int B = windows - w < (size_t)batch ? (int)(windows - w) : (int)batch;
        for (int b = 0; b < B; b++)
            for (long t = 0; t < seq_len; t++) {
                size_t at = (w + (size_t)b) * (size_t)seq_len + (size_t)t;
                x[b * seq_len + t] = tokens[at];
                y[b * seq_len + t] = tokens[at + 1];
            }
        float loss;
        if ((st = lh_stage_forward(model, 0, B, (int)seq_len, x, NULL, y, NULL, &loss))) goto done;
        loss_sum += (double)loss * B * seq_len;
        evaluated += (size_t)B * (size_t)seq_len;
    }
    double mean = loss_sum / (double)evaluated;
    const char *fmt_name = format == LH_CKPT_FORMAT_LLMC ? "llm.c" : "longhaul";
    if (json) {
        printf("{\"checkpoint\":");
        json_string(stdout, path);
        printf(",\"format\":\"%s\",\"step\":%lld,\"data\":", fmt_name, (long long)step);
        json_string(stdout, data);
        printf(",\"loss\":%.6f,\"perplexity\":%.4f,\"tokens\":%zu,\"windows\":%zu,\"seq_len\":%ld,\"batch\":%ld}\n", mean,
               exp(mean), evaluated, windows, seq_len, batch);
    } else {
        printf("%s (%s, step %lld) on %s: loss %.4f (perplexity %.2f) over %zu tokens in %zu windows of %ld\n", path,
               fmt_name, (long long)step, data, mean, exp(mean), evaluated, windows, seq_len);
    }
done:
    free(x);
    free(y);
    free(tokens);
    lh_stage_free(model);
    return st ? cli_report("eval", st) : LH_EXIT_OK;
}
