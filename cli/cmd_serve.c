/*
 * longhaul serve: an OpenAI-compatible completions server over HTTP for a
 * checkpoint (llm.c or longhaul) or a random model, on the local backend:
 * R replicas x S slots in this process (see serve/lh_serve.h and
 * docs/serving.md).  The MPI pipeline backend plugs into the same server.
 *
 * Signals: SIGINT and SIGTERM are blocked before any thread starts, so every
 * thread inherits the mask and this thread alone receives them with
 * sigtimedwait; shutdown then runs in order (fail in-flight requests, join
 * the scheduler, stop libmicrohttpd) instead of inside a signal handler.
 * --duration serves for a bounded time, for scripts and tests.
 *
 * lh_serve is only built when libmicrohttpd was found at configure time; a
 * build without it still has the command, which then says so and fails.
 */
#include "commands.h"

#if !defined(__has_include) || __has_include("lh_serve.h")
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lh_checkpoint.h"
#include "lh_data.h"
#include "lh_model.h"
#include "lh_serve.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: longhaul serve (--checkpoint FILE | --random-model L,C,NH,T,V) [options]\n\n"
            "Serve completions over HTTP: POST /v1/completions (OpenAI-compatible, stream=true for\n"
            "server-sent events), GET /health, GET /metrics.\n"
            "  --checkpoint FILE     an llm.c fp32 model file or a longhaul checkpoint\n"
            "  --random-model SPEC   a randomly initialised model: layers,channels,heads,context,vocab\n"
            "  --seed S              seed of the random model (default 1337)\n"
            "  --tokenizer SPEC      'byte' (default) or an llm.c GPT-2 tokenizer file (then prompts are\n"
            "                        token-id lists); its vocabulary must equal the model's\n"
            "  --host ADDR           IPv4 address to listen on (default 127.0.0.1)\n"
            "  --port P              TCP port (default 8080; 0 = any free port, printed)\n"
            "  --replicas R          model replicas requests are routed over (default 1)\n"
            "  --slots S             concurrent requests per replica, batched per step (default 8)\n"
            "  --max-queue Q         requests waiting for a slot before 429 (default 64)\n"
            "  --max-body BYTES      larger request bodies get 413 (default 1048576)\n"
            "  --model-name NAME     \"model\" in responses (default longhaul)\n"
            "  --threads N           CPU threads for the model (default 2)\n"
            "  --duration SECONDS    stop after this long (default 0 = until SIGINT/SIGTERM)\n");
}

static int parse_long(const char *text, long min, long max, long *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < min || v > max) return -1;
    *out = v;
    return 0;
}

static int parse_model_spec(const char *text, lh_model_config *c)
{
    int L, C, NH, T, V, used = 0;
    if (sscanf(text, "%d,%d,%d,%d,%d%n", &L, &C, &NH, &T, &V, &used) != 5 || text[used] != '\0') return -1;
    memset(c, 0, sizeof *c);
    c->num_layers = L;
    c->channels = C;
    c->num_heads = NH;
    c->max_seq_len = T;
    c->vocab_size = V;
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    static const struct option options[] = {{"checkpoint", required_argument, NULL, 'c'},
                                            {"random-model", required_argument, NULL, 'r'},
                                            {"seed", required_argument, NULL, 's'},
                                            {"tokenizer", required_argument, NULL, 'k'},
                                            {"host", required_argument, NULL, 'H'},
                                            {"port", required_argument, NULL, 'p'},
                                            {"replicas", required_argument, NULL, 'R'},
                                            {"slots", required_argument, NULL, 'S'},
                                            {"max-queue", required_argument, NULL, 'q'},
                                            {"max-body", required_argument, NULL, 'b'},
                                            {"model-name", required_argument, NULL, 'm'},
                                            {"threads", required_argument, NULL, 'j'},
                                            {"duration", required_argument, NULL, 'd'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *checkpoint = NULL, *tokenizer_spec = "byte", *host = "127.0.0.1", *model_name = "longhaul";
    lh_model_config random_config;
    int have_random = 0, c;
    long seed = 1337, port = 8080, replicas = 1, slots = 8, max_queue = 64, max_body = 1 << 20, threads = 2;
    double duration = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        int bad = 0;
        char *end;
        switch (c) {
        case 'c': checkpoint = optarg; break;
        case 'r':
            bad = parse_model_spec(optarg, &random_config);
            have_random = 1;
            break;
        case 's': bad = parse_long(optarg, 0, __LONG_MAX__, &seed); break;
        case 'k': tokenizer_spec = optarg; break;
        case 'H': host = optarg; break;
        case 'p': bad = parse_long(optarg, 0, 65535, &port); break;
        case 'R': bad = parse_long(optarg, 1, 1024, &replicas); break;
        case 'S': bad = parse_long(optarg, 1, 4096, &slots); break;
        case 'q': bad = parse_long(optarg, 1, 1 << 20, &max_queue); break;
        case 'b': bad = parse_long(optarg, 64, 1L << 30, &max_body); break;
        case 'm': model_name = optarg; break;
        case 'j': bad = parse_long(optarg, 1, 1024, &threads); break;
        case 'd':
            duration = strtod(optarg, &end);
            bad = *optarg == '\0' || *end != '\0' || !(duration >= 0 && duration <= 1e9);
            break;
        case 'h': usage(stdout); return LH_EXIT_OK;
        default: bad = 1;
        }
        if (bad) {
            fprintf(stderr, "longhaul serve: bad option or value: %s\n\n", argv[optind - 1]);
            usage(stderr);
            return LH_EXIT_USAGE;
        }
    }
    if (optind != argc || !checkpoint == !have_random) {
        fprintf(stderr, "longhaul serve: %s\n\n",
                optind != argc ? "unexpected argument" : "give exactly one of --checkpoint or --random-model");
        usage(stderr);
        return LH_EXIT_USAGE;
    }
    lh_model_set_threads((int)threads);

    lh_tokenizer *tok = NULL;
    lh_stage *model = NULL;
    lh_serve_backend backend = {0};
    lh_server *server = NULL;
    lh_status st = lh_tokenizer_open(tokenizer_spec, &tok);
    if (!st && checkpoint) {
        st = lh_model_open(checkpoint, 1, 0, &model, NULL);
    } else if (!st) {
        st = lh_model_config_check(&random_config);
        lh_stage_spec whole = lh_stage_spec_whole(&random_config);
        if (!st) st = lh_stage_create(&random_config, &whole, 1, random_config.max_seq_len, 1, &model);
        if (!st) lh_stage_init_params(model, (uint64_t)seed);
        if (st) lh_fail_prefix(st, "--random-model: ");
    }
    if (!st) st = lh_serve_local_create(model, (int)replicas, (int)slots, &backend);

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL); /* before any thread exists */
    if (!st) {
        lh_server_options opt = {.bind_address = host,
                                 .port = (int)port,
                                 .max_queue = (int)max_queue,
                                 .max_body_bytes = (size_t)max_body,
                                 .model_name = model_name};
        st = lh_server_start(&opt, &backend, tok, &server);
    }
    if (!st) {
        printf("longhaul serve: http://%s:%d (%ld replicas x %ld slots, context %d, %s tokenizer)\n", host,
               lh_server_port(server), replicas, slots, backend.context_length, lh_tokenizer_kind(tok));
        fflush(stdout);
        struct timespec wait = {duration > 0 ? (time_t)duration : 3600,
                                duration > 0 ? (long)((duration - (double)(time_t)duration) * 1e9) : 0};
        for (;;) {
            int sig = sigtimedwait(&stop_signals, NULL, &wait);
            if (sig == SIGINT || sig == SIGTERM || duration > 0) break;
        }
        lh_server_metrics m;
        lh_server_get_metrics(server, &m);
        printf("longhaul serve: stopping after %.1f s: %llu completions (%llu failed, %llu rejected), %llu tokens, "
               "p50 %.1f ms, p99 %.1f ms\n",
               m.uptime_s, (unsigned long long)m.completions_ok, (unsigned long long)m.completions_failed,
               (unsigned long long)m.rejected_4xx, (unsigned long long)m.tokens_generated, 1e3 * m.latency_p50_s,
               1e3 * m.latency_p99_s);
    }
    lh_server_stop(server);
    lh_serve_backend_free(&backend);
    lh_stage_free(model);
    lh_tokenizer_free(tok);
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
    return st ? cli_report("serve", st) : LH_EXIT_OK;
}

#else /* no libmicrohttpd in this build */
#include <stdio.h>

int cmd_serve(int argc, char **argv)
{
    fprintf(stderr, "longhaul serve: this build has no HTTP server: libmicrohttpd (libmicrohttpd-dev) was not found "
                    "when it was configured\n");
    return LH_EXIT_FAILURE;
}
#endif
