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
 */
#include "commands.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>
#include <unistd.h>

#include "lh_checkpoint.h"
#include "lh_comm.h"
#include "lh_data.h"
#include "lh_infer.h"
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
            "  --duration SECONDS    stop after this long (default 0 = until SIGINT/SIGTERM)\n\n"
            "Pipeline mode: under `mpirun -np (P x R + 1)` the model is split into P pipeline stages\n"
            "(--stages P) on the first P x R ranks, each replica a pipeline with a KV cache per slot on\n"
            "every stage, and the last rank runs the HTTP server.\n"
            "  --stages P            pipeline stages per replica (default 1)\n"
            "  --plan FILE           place stages and replicas as this plan says (e.g. one written by\n"
            "                        `longhaul serve-sim --latency --out FILE`); replaces --stages/--replicas\n"
            "  --act-bits B          activations between stages: 0 = fp32 (default), 1..8 = quantized\n");
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

/* ---- pipeline mode: the model split over MPI ranks, this server on the last rank ---- */

typedef struct pipeline_spec {
    const char *checkpoint;
    const lh_model_config *random_config; /* when there is no checkpoint */
    const char *plan_path;                /* NULL: rank order over stages x replicas */
    uint64_t seed;
    int stages, replicas, slots, act_bits;
} pipeline_spec;

typedef struct pipeline_run {
    lh_comm *world;
    lh_plan *plan;
    lh_infer *inf;
    int frontend; /* this rank runs the server */
    int rank;
    int vocab;
    float *logits; /* slots x vocab: the last batch's rows */
    lh_infer_entry *entries;
} pipeline_run;

static lh_status pipeline_start(const pipeline_spec *ps, pipeline_run *pr)
{
    MPI_Init(NULL, NULL);
    int size;
    MPI_Comm_rank(MPI_COMM_WORLD, &pr->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    pr->frontend = pr->rank == size - 1;
    lh_infer_options o = {.checkpoint = ps->checkpoint, .seed = ps->seed, .slots = ps->slots,
                          .act_bits = ps->act_bits, .frontend = size - 1};
    lh_status st = LH_OK;
    if (ps->checkpoint) {
        lh_checkpoint_format format;
        st = lh_checkpoint_read_config(ps->checkpoint, &format, &o.config);
    } else {
        o.config = *ps->random_config;
    }
    if (!st && ps->plan_path) {
        st = lh_plan_load(ps->plan_path, &pr->plan);
        if (!st && pr->plan->layers != o.config.num_layers)
            st = lh_fail(LH_ERR_MISMATCH, "%s: the plan splits %d layers but the model has %d", ps->plan_path,
                         pr->plan->layers, o.config.num_layers);
    } else if (!st) {
        st = lh_plan_create(ps->stages, ps->replicas, o.config.num_layers, &pr->plan);
    }
    if (!st && size != pr->plan->stages * pr->plan->replicas + 1)
        st = lh_fail(LH_ERR_MISMATCH, "%d stages x %d replicas need %d ranks (one more for the server); mpirun "
                     "started %d", pr->plan->stages, pr->plan->replicas, pr->plan->stages * pr->plan->replicas + 1,
                     size);
    lh_comm_options copts = {0}; /* no timeout: workers wait for requests as long as the server lives */
    if (!st) st = lh_comm_create(MPI_COMM_WORLD, &copts, &pr->world);
    if (!st) st = lh_infer_create(&o, pr->plan, pr->world, &pr->inf);
    pr->vocab = o.config.vocab_size;
    return st;
}

static lh_status pipeline_prefill(void *ctx, int replica, int slot, const int32_t *prompt, int n, const float **logits)
{
    pipeline_run *pr = ctx;
    lh_infer_entry e = {slot, n, 1};
    lh_status st = lh_infer_step(pr->inf, replica, 1, &e, prompt, pr->logits);
    *logits = pr->logits;
    return st;
}

static lh_status pipeline_decode(void *ctx, int replica, int n, const int *slots, const int32_t *tokens,
                                 const float **rows)
{
    pipeline_run *pr = ctx;
    for (int i = 0; i < n; i++) pr->entries[i] = (lh_infer_entry){slots[i], 1, 0};
    lh_status st = lh_infer_step(pr->inf, replica, n, pr->entries, tokens, pr->logits);
    for (int i = 0; i < n; i++) rows[i] = pr->logits + (size_t)i * pr->vocab;
    return st;
}

static void pipeline_release(void *ctx, int replica, int slot)
{
    (void)ctx, (void)replica, (void)slot; /* the next prefill of the slot resets its caches */
}

static lh_status pipeline_backend_create(pipeline_run *pr, lh_serve_backend *out)
{
    int slots = lh_infer_slots(pr->inf);
    pr->logits = malloc((size_t)slots * pr->vocab * sizeof(float));
    pr->entries = malloc((size_t)slots * sizeof *pr->entries);
    if (!pr->logits || !pr->entries) return lh_fail(LH_ERR_NOMEM, "serve: out of memory");
    *out = (lh_serve_backend){.ctx = pr,
                              .replicas = lh_infer_replicas(pr->inf),
                              .slots_per_replica = slots,
                              .vocab_size = pr->vocab,
                              .context_length = lh_infer_context(pr->inf),
                              .prefill = pipeline_prefill,
                              .decode = pipeline_decode,
                              .release = pipeline_release,
                              .destroy = NULL};
    return LH_OK;
}

/* Shut the pipeline down (server rank), free, finalise; a failure ends every rank. */
static int pipeline_finish(pipeline_run *pr, lh_status st)
{
    if (pr->frontend && pr->inf) {
        lh_status down = lh_infer_shutdown(pr->inf);
        if (!st) st = down;
    }
    if (st) {
        fprintf(stderr, "longhaul serve: rank %d: error (%s): %s\n", pr->rank, lh_status_name(st), lh_last_error());
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, LH_EXIT_FAILURE);
    }
    lh_infer_free(pr->inf);
    lh_comm_free(pr->world);
    lh_plan_free(pr->plan);
    free(pr->logits);
    free(pr->entries);
    MPI_Finalize();
    return LH_EXIT_OK;
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
                                            {"stages", required_argument, NULL, 'P'},
                                            {"act-bits", required_argument, NULL, 'A'},
                                            {"plan", required_argument, NULL, 'L'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    const char *checkpoint = NULL, *tokenizer_spec = "byte", *host = "127.0.0.1", *model_name = "longhaul";
    const char *plan_path = NULL;
    lh_model_config random_config;
    int have_random = 0, c;
    long seed = 1337, port = 8080, replicas = 1, slots = 8, max_queue = 64, max_body = 1 << 20, threads = 2;
    long stages = 1, act_bits = 0;
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
        case 's': bad = !cli_parse_long(optarg, 0, __LONG_MAX__, &seed); break;
        case 'k': tokenizer_spec = optarg; break;
        case 'H': host = optarg; break;
        case 'p': bad = !cli_parse_long(optarg, 0, 65535, &port); break;
        case 'R': bad = !cli_parse_long(optarg, 1, 1024, &replicas); break;
        case 'S': bad = !cli_parse_long(optarg, 1, 4096, &slots); break;
        case 'q': bad = !cli_parse_long(optarg, 1, 1 << 20, &max_queue); break;
        case 'b': bad = !cli_parse_long(optarg, 64, 1L << 30, &max_body); break;
        case 'm': model_name = optarg; break;
        case 'j': bad = !cli_parse_long(optarg, 1, 1024, &threads); break;
        case 'P': bad = !cli_parse_long(optarg, 1, 1024, &stages); break;
        case 'A': bad = !cli_parse_long(optarg, 0, 8, &act_bits); break;
        case 'L': plan_path = optarg; break;
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
    int pipeline = getenv("OMPI_COMM_WORLD_SIZE") != NULL;
    if (!pipeline && (stages > 1 || plan_path)) {
        fprintf(stderr, "longhaul serve: --stages %ld needs mpirun -np %ld (stages x replicas + 1 for the server)\n",
                stages, stages * replicas + 1);
        return LH_EXIT_USAGE;
    }

    lh_tokenizer *tok = NULL;
    lh_stage *model = NULL;
    lh_serve_backend backend = {0};
    lh_server *server = NULL;
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL); /* before any thread exists */

    lh_status st = LH_OK;
    pipeline_run pr = {0};
    if (pipeline) {
        pipeline_spec ps = {checkpoint, have_random ? &random_config : NULL, plan_path, (uint64_t)seed, (int)stages,
                            (int)replicas, (int)slots, (int)act_bits};
        st = pipeline_start(&ps, &pr);
        if (!st && !pr.frontend) { /* a worker: serve batches until the server shuts the pipeline down */
            st = lh_infer_serve(pr.inf);
            return pipeline_finish(&pr, st);
        }
        if (!st) st = pipeline_backend_create(&pr, &backend);
    }
    if (!st) st = lh_tokenizer_open(tokenizer_spec, &tok);
    if (!st && pipeline) {
        /* the pipeline holds the model */
    } else if (!st && checkpoint) {
        st = lh_model_open(checkpoint, 1, 0, &model, NULL);
    } else if (!st) {
        st = lh_model_config_check(&random_config);
        lh_stage_spec whole = lh_stage_spec_whole(&random_config);
        if (!st) st = lh_stage_create(&random_config, &whole, 1, random_config.max_seq_len, 1, &model);
        if (!st) lh_stage_init_params(model, (uint64_t)seed);
        if (st) lh_fail_prefix(st, "--random-model: ");
    }
    if (!st && !pipeline) st = lh_serve_local_create(model, (int)replicas, (int)slots, &backend);
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
               lh_server_port(server), (long)backend.replicas, (long)backend.slots_per_replica,
               backend.context_length, lh_tokenizer_kind(tok));
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
    if (pipeline) return pipeline_finish(&pr, st);
    pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
    return st ? cli_report("serve", st) : LH_EXIT_OK;
}
