/*
 * longhaul train: `mpirun -np N longhaul train job.json`.
 *
 * Rank 0 is the coordinator: it reads the job (so workers need not share a
 * file system for it), the topology and the plan, or runs the scheduler, and
 * broadcasts what every rank needs.  Every rank then builds its part of the
 * engine.  A failure after MPI is up ends the whole job with MPI_Abort, since
 * peers blocked in a collective would otherwise wait forever; the error is
 * printed first, naming the rank.
 */
#include <getopt.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "lh_checkpoint.h"
#include "lh_comm.h"
#include "lh_data.h"
#include "lh_engine.h"
#include "lh_io.h"
#include "lh_job.h"
#include "lh_log.h"
#include "lh_model.h"
#include "lh_sched.h"
#include "lh_time.h"
#include "lh_topology.h"

/* Micro-batches per replica in the closing validation pass: enough for a stable figure, bounded on slow links. */
#define FINAL_EVAL_BATCHES 32

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun -np N longhaul train JOB.json [options]\n\n"
            "Train the model a job file describes across N ranks (N = pipeline_stages x data_parallel).\n\n"
            "options:\n"
            "  --steps N      stop after N steps (default: the job's steps or epochs)\n"
            "  --plan FILE    use this plan instead of the job's plan or the scheduler\n"
            "  --resume       continue from the job's newest committed checkpoint, if any\n"
            "  --quiet        no per-step progress lines\n"
            "  --help         this text\n");
}

static int parse_args(int argc, char **argv, train_request *a)
{
    static const struct option options[] = {{"steps", required_argument, NULL, 's'},
                                            {"plan", required_argument, NULL, 'p'},
                                            {"quiet", no_argument, NULL, 'q'},
                                            {"resume", no_argument, NULL, 'r'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (c) {
        case 's': {
            long steps;
            if (!cli_parse_long(optarg, 1, __LONG_MAX__, &steps)) {
                fprintf(stderr, "longhaul train: --steps needs a positive integer, got '%s'\n", optarg);
                return LH_EXIT_USAGE;
            }
            a->steps = steps;
            break;
        }
        case 'p': a->plan_path = optarg; break;
        case 'q': a->quiet = 1; break;
        case 'r': a->resume = 1; break;
        case 'h': usage(stdout); return -1;
        default: usage(stderr); return LH_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return LH_EXIT_USAGE;
    }
    a->job_path = argv[optind];
    return LH_EXIT_OK;
}

/* Broadcast a status from rank 0 (with its message) so every rank fails together. */
static lh_status agree(lh_status st, int rank)
{
    char msg[1024];
    int code = (int)st;
    MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank == 0) snprintf(msg, sizeof msg, "%s", lh_last_error());
    MPI_Bcast(msg, sizeof msg, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (code != LH_OK && rank != 0) return lh_fail((lh_status)code, "%s", msg);
    return (lh_status)code;
}

/* Rank 0: the plan from a file, the scheduler, or rank order. */
static lh_status decide_plan(const lh_job *job, const char *plan_path, const lh_topology *topology, lh_plan **out)
{
    int stages = job->placement.pipeline_stages, replicas = job->placement.data_parallel;
    if (plan_path && plan_path[0]) {
        lh_status st = lh_plan_load(plan_path, out);
        if (!st) st = lh_plan_validate(*out, topology);
        if (!st && ((*out)->stages != stages || (*out)->replicas != replicas))
            st = lh_fail(LH_ERR_MISMATCH, "%s: plan is %d stages x %d replicas but the job asks for %d x %d",
                         plan_path, (*out)->stages, (*out)->replicas, stages, replicas);
        return st;
    }
    if (!topology) {
        LH_INFO("placement: rank order (no topology to plan with)");
        lh_status st = lh_plan_create(stages, replicas, job->model.layers, out);
        if (!st) snprintf((*out)->strategy, sizeof (*out)->strategy, "rank");
        return st;
    }
    lh_workload w = lh_engine_workload(job);
    lh_sched_problem *problem;
    lh_status st = lh_sched_problem_create(topology, &w, &problem);
    if (st) return st;
    const char *name = job->placement.strategy;
    const lh_strategy *strategy = lh_strategy_find(strcmp(name, "auto") == 0 ? "ils" : name);
    if (strategy && strcmp(name, "auto") == 0 && (size_t)topology->n_devices > strategy->max_devices)
        strategy = lh_strategy_find("hier"); /* auto: the best search that fits, else the scalable one */
    if (strategy) name = strategy->name;
    if (!strategy) {
        lh_sched_problem_free(problem);
        return lh_fail(LH_ERR_NOT_FOUND, "placement.strategy: no strategy named \"%s\"", name);
    }
    lh_strategy_options opts = {.seed = job->seed};
    double t0 = lh_now_s();
    st = strategy->run(problem, &opts, out);
    /* The strategies place devices; layers then follow each stage's slowest device. */
    if (!st) st = lh_plan_balance_layers(problem, *out);
    if (!st) {
        LH_INFO("placement: %s placed %d stages x %d replicas in %.3f s (DT-FM cost %.4g s)", name, stages, replicas,
                lh_now_s() - t0, (*out)->cost_s);
        if ((*out)->layers != job->model.layers) st = lh_fail(LH_ERR_INTERNAL, "scheduler returned a plan of the wrong size");
    }
    lh_sched_problem_free(problem);
    return st;
}

/*
 * Rank 0, pipeline.depth "auto": simulate the plan on the links the job will
 * see (an emulated network stretched by its time scale) at each depth and
 * take the scheduler's choice; without a topology there is nothing to
 * simulate, and classic 1F1B (depth 1) runs, said in the log.
 */
static lh_status resolve_depth(lh_job *job, const lh_topology *topology, const lh_plan *plan)
{
    if (job->pipeline_depth != LH_JOB_DEPTH_AUTO) return LH_OK;
    job->pipeline_depth = 1;
    if (job->schedule == LH_JOB_SCHEDULE_GPIPE) return LH_OK;
    if (!topology) {
        LH_INFO("pipeline: depth 1 (\"auto\" needs a topology to simulate)");
        return LH_OK;
    }
    int depth = 1;
    double est = 0;
    lh_status st = lh_engine_choose_depth(job, topology, plan, &depth, &est);
    if (st) return st;
    job->pipeline_depth = depth;
    LH_INFO("pipeline: 1F1B depth %d chosen by simulation (%.4g s per step estimated%s)", depth, est,
            job->placement.emulate ? " on the emulated links" : "");
    return LH_OK;
}

/* Rank 0 holds `plan`; every rank ends with its own copy. */
static lh_status broadcast_plan(lh_plan **plan, int rank)
{
    int dims[3] = {0};
    if (rank == 0) {
        dims[0] = (*plan)->stages;
        dims[1] = (*plan)->replicas;
        dims[2] = (*plan)->layers;
    }
    MPI_Bcast(dims, 3, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank != 0) {
        lh_status st = lh_plan_create(dims[0], dims[1], dims[2], plan);
        if (st) return st;
    }
    MPI_Bcast((*plan)->first_layer, dims[0], MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast((*plan)->num_layers, dims[0], MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast((*plan)->device, dims[0] * dims[1], MPI_INT, 0, MPI_COMM_WORLD);
    return lh_plan_validate(*plan, NULL);
}

/* Rank 0 read the job file (or holds the embedded text); everyone parses the same bytes. */
static lh_status broadcast_job(const train_request *req, lh_job *job, int rank)
{
    const char *path = req->job_path;
    char *text = NULL;
    size_t len = 0;
    lh_status st = LH_OK;
    if (rank == 0 && req->job_text) {
        len = strlen(req->job_text);
        text = strdup(req->job_text);
        if (!text) st = lh_fail(LH_ERR_NOMEM, "out of memory");
    } else if (rank == 0) {
        st = lh_read_file(path, (size_t)16 << 20, &text, &len);
    }
    st = agree(st, rank);
    if (st) return st;
    uint64_t len64 = len;
    MPI_Bcast(&len64, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (rank != 0 && !(text = malloc((size_t)len64 + 1))) return lh_fail(LH_ERR_NOMEM, "out of memory");
    MPI_Bcast(text, (int)len64, MPI_CHAR, 0, MPI_COMM_WORLD);
    st = lh_job_parse(path, text, (size_t)len64, job);
    if (!st && !req->job_text) st = lh_job_resolve_paths(job, path);
    free(text);
    return st;
}

/* The emulated network, built by every rank from matrices rank 0 broadcasts. */
static lh_status build_emulation(const lh_job *job, const lh_topology *topology, int rank, int size, lh_netem **out)
{
    *out = NULL;
    if (!job->placement.emulate) return LH_OK;
    double *lat = malloc((size_t)size * size * sizeof *lat), *bw = malloc((size_t)size * size * sizeof *bw);
    lh_status st = (!lat || !bw) ? lh_fail(LH_ERR_NOMEM, "out of memory") : LH_OK;
    if (!st && rank == 0) {
        if (topology->n_devices < size)
            st = lh_fail(LH_ERR_MISMATCH, "%s: %d devices cannot emulate %d ranks", job->placement.topology,
                         topology->n_devices, size);
        for (int i = 0; i < size && !st; i++)
            for (int j = 0; j < size; j++) {
                int ok = 1;
                lh_link l = i == j ? (lh_link){0, INFINITY} : lh_topology_link(topology, i, j, &ok);
                lat[i * size + j] = l.latency_s;
                bw[i * size + j] = i == j ? 1e15 : l.bandwidth_bps;
            }
    }
    st = agree(st, rank);
    if (!st) {
        MPI_Bcast(lat, size * size, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        MPI_Bcast(bw, size * size, MPI_DOUBLE, 0, MPI_COMM_WORLD);
        st = lh_netem_create(size, lat, bw, job->placement.time_scale, out);
    }
    free(lat);
    free(bw);
    return st;
}

static void fmt_bytes(double b, char *out, size_t cap)
{
    const char *unit[] = {"B", "kB", "MB", "GB", "TB"};
    int u = 0;
    while (b >= 1000 && u < 4) {
        b /= 1000;
        u++;
    }
    snprintf(out, cap, "%.3g %s", b, unit[u]);
}

static void print_progress(const lh_step_report *r, int64_t total, int emulated)
{
    char wire[32], raw[32];
    fmt_bytes((double)r->wire_bytes, wire, sizeof wire);
    fmt_bytes((double)r->raw_bytes, raw, sizeof raw);
    double compute = r->step_s > 0 ? 100.0 * r->compute_s / r->step_s : 0;
    double comm = r->step_s > 0 ? 100.0 * r->comm_s / r->step_s : 0;
    printf("step %5lld/%lld | loss %.4f | lr %.2e | %7.0f tok/s | rank0 compute %3.0f%% comm %3.0f%% | "
           "wire %s (fp32 %s)%s\n",
           (long long)r->step + 1, (long long)total, r->loss, r->lr, r->tokens_per_s, compute, comm, wire, raw,
           emulated ? " [emulated links]" : "");
    fflush(stdout);
}

static void write_metric(FILE *f, const lh_step_report *r, int emulated)
{
    if (!f) return;
    fprintf(f,
            "{\"step\": %lld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, \"step_s\": %.6f, "
            "\"tokens_per_s\": %.3f, \"compute_s\": %.6f, \"comm_s\": %.6f, \"raw_bytes\": %llu, "
            "\"wire_bytes\": %llu, \"emulated\": %s}\n",
            (long long)r->step, r->loss, r->lr, r->grad_norm, r->step_s, r->tokens_per_s, r->compute_s, r->comm_s,
            (unsigned long long)r->raw_bytes, (unsigned long long)r->wire_bytes, emulated ? "true" : "false");
    fflush(f);
}

/* What rank 0 has reported so far. */
typedef struct progress {
    FILE *metrics;
    int64_t start, total, log_every;
    int emulated, quiet;
    double first_loss, tokens_done;
    uint64_t raw, wire;
    lh_step_report last;
} progress;

/* Log one step's report (a no-op for report->step -1: none was complete). */
static void progress_add(progress *p, const lh_step_report *r)
{
    if (r->step < 0) return;
    if (r->step == p->start) p->first_loss = r->loss;
    p->raw += r->raw_bytes;
    p->wire += r->wire_bytes;
    p->tokens_done += r->tokens_per_s * r->step_s;
    write_metric(p->metrics, r, p->emulated);
    if (!p->quiet && ((r->step + 1) % p->log_every == 0 || r->step + 1 == p->total))
        print_progress(r, p->total, p->emulated);
    p->last = *r;
}

/* This rank's index among the ranks on its host, and their number. */
static void host_position(int *local_rank, int *local_ranks)
{
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, local_rank);
    MPI_Comm_size(local, local_ranks);
    MPI_Comm_free(&local);
}

/* Ranks on this host share its cores: give each an equal share of threads
 * unless the user chose with OMP_NUM_THREADS. */
static void choose_threads(void)
{
    if (getenv("OMP_NUM_THREADS")) return;
    int local_rank = 0, local_ranks = 1;
    host_position(&local_rank, &local_ranks);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = cores > local_ranks ? (int)(cores / local_ranks) : 1;
    lh_model_set_threads(threads);
    LH_DEBUG("%d ranks on this host, %ld cores: %d threads per rank", local_ranks, cores, threads);
}

static void print_plan(const lh_plan *plan, const lh_topology *t)
{
    printf("plan (%s):\n", plan->strategy[0] ? plan->strategy : "given");
    for (int r = 0; r < plan->replicas; r++) {
        printf("  replica %d:", r);
        for (int s = 0; s < plan->stages; s++) {
            int d = lh_plan_device(plan, r, s);
            if (t && d < t->n_devices) printf("%s %s", s ? " ->" : "", t->devices[d].name);
            else printf("%s rank %d", s ? " ->" : "", d);
            printf("[layers %d-%d]", plan->first_layer[s], plan->first_layer[s] + plan->num_layers[s] - 1);
        }
        printf("\n");
    }
}

/*
 * Fault injection for the failure tests: LONGHAUL_FAULT="exit:RANK:STEP" makes
 * that rank exit with status 3 before the step, "hang:RANK:STEP" makes it stop
 * answering (sleep until killed).  The others must end the job with an error
 * naming the rank, within peer_timeout_s.
 */
typedef struct fault_injection {
    int kind; /* 0 none, 1 exit, 2 hang */
    int rank;
    int64_t step;
} fault_injection;

static fault_injection parse_fault_injection(void)
{
    fault_injection f = {0, -1, -1};
    const char *spec = getenv("LONGHAUL_FAULT");
    char kind[16];
    long long step;
    if (spec && sscanf(spec, "%15[a-z]:%d:%lld", kind, &f.rank, &step) == 3) {
        f.step = step;
        f.kind = strcmp(kind, "exit") == 0 ? 1 : strcmp(kind, "hang") == 0 ? 2 : 0;
    }
    if (spec && !f.kind) LH_WARN("LONGHAUL_FAULT=%s is not exit:RANK:STEP or hang:RANK:STEP; ignored", spec);
    return f;
}

static void inject_fault(const fault_injection *f, int rank, int64_t step)
{
    if (!f->kind || f->rank != rank || f->step != step) return;
    LH_WARN("fault injection: rank %d %s at step %lld", rank, f->kind == 1 ? "exits" : "hangs", (long long)step);
    if (f->kind == 1) _exit(3);
    for (;;) lh_sleep_s(1.0);
}

/* A job that starts from a checkpoint may leave the shape to it; a shape it gives must match. */
static lh_status shape_from_checkpoint(lh_job *job)
{
    lh_checkpoint_format format;
    lh_model_config cfg;
    lh_status st = lh_checkpoint_read_config(job->model.init_checkpoint, &format, &cfg);
    if (st) return st;
    struct { const char *name; int *field; int value; } dims[] = {
        {"layers", &job->model.layers, cfg.num_layers},   {"channels", &job->model.channels, cfg.channels},
        {"heads", &job->model.heads, cfg.num_heads},      {"context", &job->model.context, cfg.max_seq_len},
        {"vocab", &job->model.vocab, cfg.vocab_size},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        if (*dims[i].field == 0) *dims[i].field = dims[i].value;
        else if (*dims[i].field != dims[i].value)
            return lh_fail(LH_ERR_MISMATCH, "$.model.%s is %d but %s has %d", dims[i].name, *dims[i].field,
                           job->model.init_checkpoint, dims[i].value);
    }
    if (job->batch.seq_len == 0) job->batch.seq_len = job->model.context;
    if (job->batch.seq_len > job->model.context)
        return lh_fail(LH_ERR_MISMATCH, "$.batch.seq_len %d is longer than the checkpoint's context %d",
                       job->batch.seq_len, job->model.context);
    return LH_OK;
}

static _Noreturn void abort_job(int rank, lh_status st)
{
    fprintf(stderr, "longhaul train: rank %d: error (%s): %s\n", rank, lh_status_name(st), lh_last_error());
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, LH_EXIT_FAILURE);
    _exit(LH_EXIT_FAILURE); /* MPI_Abort does not return; this keeps the compiler sure of it */
}

static lh_status run(const train_request *args, int rank, int size)
{
    lh_job job;
    lh_status st = broadcast_job(args, &job, rank);
    if (st) return st;
    if (job.model.init_checkpoint[0]) {
        st = shape_from_checkpoint(&job);
        if (st) return st;
    }
    /* Say so plainly rather than ignore settings the engine does not honour yet. */
    if (job.data.val[0])
        return lh_fail(LH_ERR_UNSUPPORTED, "%s: $.data.val: a separate validation file is not supported yet; use "
                       "val_fraction", args->job_path);
    if (job.placement.pipeline_stages * job.placement.data_parallel != size)
        return lh_fail(LH_ERR_MISMATCH, "%s: the job needs %d x %d = %d ranks; mpirun started %d", args->job_path,
                       job.placement.pipeline_stages, job.placement.data_parallel,
                       job.placement.pipeline_stages * job.placement.data_parallel, size);

    lh_topology *topology = NULL;
    lh_plan *plan = NULL;
    if (rank == 0) {
        if (args->topology_text)
            st = lh_topology_parse(job.placement.topology, args->topology_text, strlen(args->topology_text),
                                   &topology);
        else if (job.placement.topology[0])
            st = lh_topology_load(job.placement.topology, &topology);
        if (!st) st = decide_plan(&job, args->plan_path ? args->plan_path : job.placement.plan, topology, &plan);
        if (!st) st = resolve_depth(&job, topology, plan);
        if (!st) st = lh_mkdir_p(job.output_dir);
        if (!st) {
            char path[LH_PATH_MAX + 32];
            snprintf(path, sizeof path, "%s/plan.json", job.output_dir);
            st = lh_plan_save(plan, path);
            if (!st) LH_INFO("plan written to %s", path);
        }
    }
    st = agree(st, rank);
    if (!st) st = broadcast_plan(&plan, rank);
    if (!st) MPI_Bcast(&job.pipeline_depth, 1, MPI_INT, 0, MPI_COMM_WORLD);

    lh_netem *netem = NULL;
    uint8_t secret[LH_KEY_BYTES];
    lh_comm *world = NULL;
    if (!st) st = build_emulation(&job, topology, rank, size, &netem);
    if (!st && job.security.key_file[0]) st = lh_key_load(job.security.key_file, secret);
    if (!st) {
        lh_comm_options opts = {.job_secret = job.security.key_file[0] ? secret : NULL,
                                .emulation = netem,
                                .timeout_s = job.peer_timeout_s};
        st = lh_comm_create(MPI_COMM_WORLD, &opts, &world);
    }

    uint16_t *tokens = NULL;
    size_t n_tokens = 0;
    if (!st) st = lh_data_load_tokens(job.data.train, (uint32_t)job.model.vocab, &tokens, &n_tokens);
    lh_engine *engine = NULL;
    if (!st && job.device != LH_DEVICE_CPU) {
        int local_rank = 0, local_ranks = 1;
        host_position(&local_rank, &local_ranks);
        st = lh_compute_device_bind(job.device, local_rank);
    }
    if (!st) st = lh_engine_create(&job, plan, world, tokens, n_tokens, &engine);

    /* Where to start: a committed checkpoint of this job, else the initial weights, else the seed. */
    int resumed = 0;
    if (!st && job.checkpoint.dir[0] && (job.checkpoint.resume || args->resume))
        st = lh_engine_resume(engine, job.checkpoint.dir, &resumed);
    if (!st && !resumed && job.model.init_checkpoint[0]) st = lh_engine_load_weights(engine, job.model.init_checkpoint);

    FILE *metrics = NULL;
    if (!st && rank == 0) {
        char path[LH_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/metrics.jsonl", job.output_dir);
        metrics = fopen(path, resumed ? "a" : "w");
        if (!metrics) LH_WARN("cannot write %s; metrics go to the log only", path);
    }
    int64_t total = engine ? lh_engine_total_steps(engine) : 0;
    if (args->steps > 0 && args->steps < total) total = args->steps;
    if (!st && rank == 0) {
        printf("longhaul train: job '%s', %d stages x %d replicas, %lld steps, compression %s", job.name,
               plan->stages, plan->replicas, (long long)total, lh_compress_mode_name(job.compression.mode));
        if (job.compression.mode != LH_COMPRESS_FP32)
            printf(" fw%d/bw%d", job.compression.forward_bits, job.compression.backward_bits);
        if (job.compression.gradient_bits) printf(", gradients %d bits", job.compression.gradient_bits);
        if (job.transport == LH_TRANSPORT_NCCL) printf(", gradients over NCCL");
        if (job.schedule == LH_JOB_SCHEDULE_1F1B && job.pipeline_depth > 1)
            printf(", 1F1B depth %d", job.pipeline_depth);
        if (netem) printf(", EMULATED network (time scale %g)", job.placement.time_scale);
        printf("\n");
        print_plan(plan, topology);
    }

    lh_step_report r;
    int64_t start = engine ? lh_engine_current_step(engine) : 0;
    progress prog = {.metrics = metrics, .start = start, .total = total, .log_every = job.log_every,
                     .emulated = netem != NULL, .quiet = args->quiet, .first_loss = NAN, .last = {.step = -1}};
    double t0 = lh_now_s();
    fault_injection fault = parse_fault_injection();
    if (!st && rank == 0 && resumed) printf("resumed at step %lld\n", (long long)start);
    for (int64_t i = start; i < total && !st; i++) {
        inject_fault(&fault, rank, i);
        st = lh_engine_step(engine, &r);
        if (!st) progress_add(&prog, &r);
        int save = job.checkpoint.dir[0] && job.checkpoint.every_steps > 0 && (i + 1) % job.checkpoint.every_steps == 0 &&
                   i + 1 < total;
        int eval = job.eval_every > 0 && (i + 1) % job.eval_every == 0 && i + 1 < total;
        /* Reports arrive one step late: collect this step's first, so a committed checkpoint's steps are all in the
         * metrics file and a validation line follows its step's line. */
        if (!st && (save || eval) && !(st = lh_engine_flush_report(engine, &r))) progress_add(&prog, &r);
        if (!st && save) st = lh_engine_save_checkpoint(engine, job.checkpoint.dir);
        if (!st && eval) {
            double val;
            st = lh_engine_evaluate(engine, 8, &val);
            if (!st && rank == 0) printf("step %lld: validation loss %.4f\n", (long long)i + 1, val);
        }
    }
    if (!st && engine && !(st = lh_engine_flush_report(engine, &r))) progress_add(&prog, &r);
    if (!st && job.checkpoint.dir[0] && lh_engine_current_step(engine) > start)
        st = lh_engine_save_checkpoint(engine, job.checkpoint.dir);
    double val = NAN;
    if (!st && job.data.val_fraction > 0) st = lh_engine_evaluate(engine, FINAL_EVAL_BATCHES, &val);
    if (!st && rank == 0) {
        double elapsed = lh_now_s() - t0;
        char w[32], rw[32];
        fmt_bytes((double)prog.wire, w, sizeof w);
        fmt_bytes((double)prog.raw, rw, sizeof rw);
        printf("\nlonghaul train: done in %.1f s\n", elapsed);
        printf("  loss        %.4f -> %.4f (validation %.4f)\n", prog.first_loss, prog.last.loss, val);
        printf("  throughput  %.0f tokens/s%s\n", prog.tokens_done / (elapsed > 0 ? elapsed : 1),
               netem ? " (network emulated)" : "");
        printf("  bytes sent  %s on the wire vs %s as fp32 (%.1fx less)\n", w, rw,
               prog.wire ? (double)prog.raw / prog.wire : 0.0);
        if (metrics) fprintf(metrics, "{\"event\": \"end\", \"val_loss\": %.6f, \"elapsed_s\": %.3f}\n", val, elapsed);
    }
    if (metrics) fclose(metrics);
    /* After a failure peers may be blocked in a collective or dead: report and end the job now
     * rather than tear down communicators that might wait on them. */
    if (st) abort_job(rank, st);
    lh_engine_free(engine);
    free(tokens);
    lh_comm_free(world);
    lh_netem_free(netem);
    lh_plan_free(plan);
    lh_topology_free(topology);
    return st;
}

int train_run(const train_request *req)
{
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) MPI_Init(NULL, NULL);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    lh_log_set_rank(rank);
    choose_threads();
    lh_status st = run(req, rank, size);
    if (st) abort_job(rank, st);
    MPI_Finalize();
    return LH_EXIT_OK;
}

int cmd_train(int argc, char **argv)
{
    train_request req;
    int rc = parse_args(argc, argv, &req);
    if (rc) return rc < 0 ? LH_EXIT_OK : rc;
    return train_run(&req);
}
