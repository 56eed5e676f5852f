/*
 * bench_train: the training engine's throughput on an emulated network, each
 * configuration against fp32 activations under classic 1F1B on the same
 * links, in the same run.
 *
 *   mpirun -np 4 bench_train [--json] [--stages 4] [--mbps 100] [--latency-ms 1] [--time-scale 10]
 *                            [--batch 64] [--micro 4] [--steps 8] [--flops 1e12]
 *
 * Configurations: fp32 and AQ-SGD fw2/bw4 (scales clipped at 2 x RMS), each
 * at depth 1 (classic 1F1B) and at the depth lh_engine_choose_depth picks for
 * these links; with more than one replica (ranks / stages) also AQ-SGD with
 * 4-bit data-parallel gradients.  The model is a GPT of 4 layers x 128
 * channels, sequence 64, on the first batch x 2 sequences of the embedded
 * corpus, so that after two steps every sample has been seen and AQ-SGD runs
 * in its steady state (deltas, not first visits); the first three steps are
 * not timed.  --flops is what the depth choice assumes of each device.  The
 * ranks share the host's cores (OMP_NUM_THREADS overrides), as in `longhaul
 * train`.
 * With --json every measurement is one JSON object on its own line (rank 0).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpi.h>

#include "lh_comm.h"
#include "lh_data.h"
#include "lh_engine.h"
#include "lh_netem.h"
#include "lh_time.h"

#define WARMUP_STEPS 3

static int rank_, json_out;

static void die(lh_status st, const char *what)
{
    fprintf(stderr, "bench_train rank %d: %s: %s: %s\n", rank_, what, lh_status_name(st), lh_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
}

#define CHECK(expr)                                     \
    do {                                                \
        lh_status st_ = (expr);                         \
        if (st_) die(st_, #expr);                       \
    } while (0)

typedef struct options {
    int stages, batch, micro, steps;
    double mbps, latency_ms, time_scale, flops;
} options;

/* A uniform topology of n devices with the emulated link (unscaled: the job's time scale stretches it). */
static lh_topology *uniform_topology(int n, const options *o)
{
    lh_topology *t;
    CHECK(lh_topology_create(n, &t));
    for (int i = 0; i < n; i++) t->devices[i].flops = o->flops;
    lh_link link = {o->latency_ms * 1e-3, o->mbps * 1e6};
    CHECK(lh_topology_set_region_link(t, 0, 0, link, 1));
    CHECK(lh_topology_validate(t));
    return t;
}

static void base_job(lh_job *job, const options *o, int replicas)
{
    lh_job_defaults(job);
    job->seed = 3;
    job->model = (lh_job_model){.layers = 4, .channels = 128, .heads = 4, .context = 64, .vocab = 257};
    job->batch.batch_size = o->batch;
    job->batch.micro_batch = o->micro;
    job->batch.seq_len = 64;
    job->batch.steps = WARMUP_STEPS + o->steps;
    job->data.val_fraction = 0;
    job->verify_every = 0;
    job->placement.pipeline_stages = o->stages;
    job->placement.data_parallel = replicas;
    job->placement.emulate = 1;
    job->placement.time_scale = o->time_scale;
}

/* Seconds per step over the timed steps (all ranks) and wire bytes per step (rank 0's report). */
static double run(const lh_job *job, const lh_plan *plan, lh_comm *world, const uint16_t *tokens, size_t n_tokens,
                  double *wire_per_step)
{
    lh_engine *e;
    CHECK(lh_engine_create(job, plan, world, tokens, n_tokens, &e));
    double t0 = 0, wire = 0;
    int timed = 0;
    for (int64_t s = 0; s < job->batch.steps; s++) {
        if (s == WARMUP_STEPS) {
            MPI_Barrier(MPI_COMM_WORLD);
            t0 = lh_now_s();
        }
        lh_step_report r;
        CHECK(lh_engine_step(e, &r));
        if (r.step >= WARMUP_STEPS) wire += (double)r.wire_bytes, timed++;
    }
    MPI_Barrier(MPI_COMM_WORLD);
    double seconds = (lh_now_s() - t0) / (double)(job->batch.steps - WARMUP_STEPS);
    lh_step_report r;
    CHECK(lh_engine_flush_report(e, &r));
    if (r.step >= WARMUP_STEPS) wire += (double)r.wire_bytes, timed++;
    *wire_per_step = timed ? wire / timed : 0;
    lh_engine_free(e);
    return seconds;
}

static void report(const options *o, const char *variant, int depth, double step_s, double wire, double tokens,
                   double baseline_step_s)
{
    if (rank_ != 0) return;
    double tps = tokens / step_s, base = tokens / baseline_step_s;
    if (json_out)
        printf("{\"bench\":\"train_step\",\"variant\":\"%s\",\"stages\":%d,\"mbps\":%g,\"latency_ms\":%g,"
               "\"time_scale\":%g,\"depth\":%d,\"step_s\":%.6g,\"wire_bytes_per_step\":%.0f,\"value\":%.6g,"
               "\"unit\":\"tokens/s\",\"baseline\":%.6g,\"ratio_to_baseline\":%.4f}\n",
               variant, o->stages, o->mbps, o->latency_ms, o->time_scale, depth, step_s, wire, tps, base, tps / base);
    else
        printf("%-22s depth %-3d %8.4f s/step %10.0f tokens/s  %10.0f B/step on the wire  (x%.2f fp32 depth 1)\n",
               variant, depth, step_s, tps, wire, tps / base);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    options o = {.stages = 4, .batch = 64, .micro = 4, .steps = 8, .mbps = 100, .latency_ms = 1,
                 .time_scale = 10, .flops = 1e12};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json_out = 1;
        else if (!strcmp(a, "--stages") && v) o.stages = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && v) o.batch = atoi(argv[++i]);
        else if (!strcmp(a, "--micro") && v) o.micro = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && v) o.steps = atoi(argv[++i]);
        else if (!strcmp(a, "--mbps") && v) o.mbps = atof(argv[++i]);
        else if (!strcmp(a, "--latency-ms") && v) o.latency_ms = atof(argv[++i]);
        else if (!strcmp(a, "--time-scale") && v) o.time_scale = atof(argv[++i]);
        else if (!strcmp(a, "--flops") && v) o.flops = atof(argv[++i]);
        else {
            if (rank_ == 0) fprintf(stderr, "bench_train: unknown or incomplete option %s\n", a);
            MPI_Finalize();
            return 2;
        }
    }
    if (o.stages < 1 || size % o.stages || o.steps < 1 || o.micro < 1 || o.batch % o.micro || o.mbps <= 0 ||
        o.latency_ms < 0 || o.time_scale <= 0 || o.flops <= 0) {
        if (rank_ == 0)
            fprintf(stderr, "bench_train: need ranks divisible by --stages, --micro dividing --batch, and positive "
                            "--steps, --mbps, --time-scale, --flops\n");
        MPI_Finalize();
        return 2;
    }
    int replicas = size / o.stages;
    if (!getenv("OMP_NUM_THREADS")) { /* the ranks share this host's cores, as longhaul train shares them */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        lh_model_set_threads(cores > size ? (int)(cores / size) : 1);
    }

    lh_netem *net;
    CHECK(lh_netem_create_uniform(size, o.latency_ms * 1e-3, o.mbps * 1e6, o.time_scale, &net));
    lh_comm_options copts = {.emulation = net};
    lh_comm *world;
    CHECK(lh_comm_create(MPI_COMM_WORLD, &copts, &world));
    uint16_t *all;
    size_t n_all;
    CHECK(lh_corpus_default_tokens(&all, &n_all));
    size_t n_tokens = (size_t)o.batch * 2 * replicas * 64 + 1; /* two steps per epoch */
    if (n_tokens > n_all) die(LH_ERR_INVALID_ARG, "the embedded corpus is too small for --batch");
    lh_topology *topology = uniform_topology(size, &o);
    lh_plan *plan;
    lh_job job;
    base_job(&job, &o, replicas);
    CHECK(lh_plan_create(o.stages, replicas, job.model.layers, &plan));
    double tokens = (double)o.batch * 64 * replicas;
    if (rank_ == 0 && !json_out)
        printf("bench_train: %d stages x %d replicas, GPT 4 x 128, %d micro-batches of %d, %g Mbit/s, %g ms, "
               "time scale %g\n",
               o.stages, replicas, o.batch / o.micro, o.micro, o.mbps, o.latency_ms, o.time_scale);

    struct {
        const char *name;
        lh_compress_mode mode;
        int gradient_bits;
    } configs[] = {{"fp32", LH_COMPRESS_FP32, 0}, {"aqsgd_fw2_bw4", LH_COMPRESS_AQSGD, 0},
                   {"aqsgd_fw2_bw4_grad4", LH_COMPRESS_AQSGD, 4}};
    int n_configs = replicas > 1 ? 3 : 2;
    double baseline = 0;
    for (int c = 0; c < n_configs; c++) {
        job.compression.mode = configs[c].mode;
        job.compression.forward_bits = 2;
        job.compression.backward_bits = 4;
        job.compression.clip = configs[c].mode == LH_COMPRESS_FP32 ? 0 : 2;
        job.compression.gradient_bits = configs[c].gradient_bits;
        int chosen = 1;
        job.pipeline_depth = 1;
        if (rank_ == 0) CHECK(lh_engine_choose_depth(&job, topology, plan, &chosen, NULL));
        MPI_Bcast(&chosen, 1, MPI_INT, 0, MPI_COMM_WORLD);
        for (int pass = 0; pass < (chosen > 1 ? 2 : 1); pass++) {
            job.pipeline_depth = pass ? chosen : 1;
            double wire, step_s = run(&job, plan, world, all, n_tokens, &wire);
            if (c == 0 && pass == 0) baseline = step_s;
            report(&o, configs[c].name, job.pipeline_depth, step_s, wire, tokens, baseline);
        }
    }
    lh_plan_free(plan);
    lh_topology_free(topology);
    free(all);
    lh_comm_free(world);
    lh_netem_free(net);
    MPI_Finalize();
    return 0;
}
