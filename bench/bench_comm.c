/*
 * bench_comm: what framing, encryption and compression cost or save, each
 * measured against its baseline in the same run.
 *
 *   p2p        ranks 0 and 1: ping-pong latency (8 B, median) and one-way streaming
 *              bandwidth (64 KiB .. 16 MiB, best of 3) of raw MPI_Send/MPI_Recv, of the
 *              framed transport, and of the framed transport with encryption.
 *              Which wire is used is mpirun's choice: run once as is (shared
 *              memory) and once with `--mca btl self,tcp`; --label names it.
 *   allreduce  all ranks on an emulated network (default 100 Mbit/s, 50 ms):
 *              fp32 allreduce (ring, and the direct exchange that the
 *              compressed one uses) against the compressed allreduce at 2, 4
 *              and 8 bits: wall time and bytes on the wire per rank.
 *
 *   mpirun -np 2 bench_comm --p2p [--json] [--label shm]
 *   mpirun -np 4 bench_comm --allreduce [--json] [--floats N] [--mbps 100] [--latency-ms 50]
 *
 * With --json every measurement is one JSON object on its own line (rank 0).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "lh_comm.h"
#include "lh_comm_compressed.h"
#include "lh_time.h"

static int rank_, size_, json_out;
static const char *label = "default";

static void report(const char *bench, const char *variant, double bytes, double seconds, double value,
                   const char *unit, double baseline_value)
{
    if (rank_ != 0) return;
    if (json_out)
        printf("{\"bench\":\"comm_%s\",\"variant\":\"%s\",\"wire\":\"%s\",\"bytes\":%.0f,\"seconds\":%.6g,"
               "\"value\":%.6g,\"unit\":\"%s\",\"baseline\":%.6g,\"ratio_to_baseline\":%.4f}\n",
               bench, variant, label, bytes, seconds, value, unit, baseline_value,
               baseline_value > 0 ? value / baseline_value : 0.0);
    else
        printf("%-10s %-22s %-8s %10.0f B  %10.3f %-7s (baseline %.3f, x%.3f)\n", bench, variant, label, bytes, value,
               unit, baseline_value, baseline_value > 0 ? value / baseline_value : 0.0);
    fflush(stdout);
}

static void die(lh_status st, const char *what)
{
    fprintf(stderr, "bench_comm rank %d: %s: %s: %s\n", rank_, what, lh_status_name(st), lh_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
}

#define CHECK(expr)                                     \
    do {                                                \
        lh_status st_ = (expr);                         \
        if (st_) die(st_, #expr);                       \
    } while (0)

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median round trip / 2 of an 8-byte message; `c` NULL means raw MPI.  The median, because on a shared
 * machine a descheduled process adds milliseconds to a few round trips and would dominate a mean. */
static double pingpong(lh_comm *c, int iters)
{
    double buf = 0;
    double *rtt = malloc((size_t)iters * sizeof(double));
    MPI_Barrier(MPI_COMM_WORLD);
    for (int i = 0; i < iters; i++) {
        double t0 = lh_now_s();
        if (rank_ == 0) {
            if (c) {
                CHECK(lh_comm_send(c, &buf, 8, 1, 0));
                CHECK(lh_comm_recv(c, &buf, 8, 1, 0));
            } else {
                MPI_Send(&buf, 8, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
                MPI_Recv(&buf, 8, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            }
        } else if (rank_ == 1) {
            if (c) {
                CHECK(lh_comm_recv(c, &buf, 8, 0, 0));
                CHECK(lh_comm_send(c, &buf, 8, 0, 0));
            } else {
                MPI_Recv(&buf, 8, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                MPI_Send(&buf, 8, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
            }
        }
        rtt[i] = lh_now_s() - t0;
    }
    qsort(rtt, (size_t)iters, sizeof(double), cmp_double);
    double median = rtt[iters / 2] / 2;
    free(rtt);
    MPI_Bcast(&median, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    return median;
}

/* Seconds to stream `reps` messages of `bytes` from rank 0 to 1 (ack at the end). */
static double stream(lh_comm *c, uint8_t *buf, size_t bytes, int reps)
{
    uint8_t ack = 0;
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = lh_now_s();
    for (int i = 0; i < reps; i++) {
        if (rank_ == 0) {
            if (c) CHECK(lh_comm_send(c, buf, bytes, 1, 1));
            else MPI_Send(buf, (int)bytes, MPI_BYTE, 1, 1, MPI_COMM_WORLD);
        } else if (rank_ == 1) {
            if (c) CHECK(lh_comm_recv(c, buf, bytes, 0, 1));
            else MPI_Recv(buf, (int)bytes, MPI_BYTE, 0, 1, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        }
    }
    if (rank_ == 1) MPI_Send(&ack, 1, MPI_BYTE, 0, 2, MPI_COMM_WORLD);
    if (rank_ == 0) MPI_Recv(&ack, 1, MPI_BYTE, 1, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    double t = lh_now_s() - t0;
    MPI_Bcast(&t, 1, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    return t;
}

static void bench_p2p(int quick)
{
    if (size_ < 2) {
        fprintf(stderr, "bench_comm --p2p needs 2 ranks\n");
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    static const uint8_t secret[LH_KEY_BYTES] = {1, 2, 3};
    lh_comm *plain, *sealed;
    lh_comm_options o = {0};
    CHECK(lh_comm_create(MPI_COMM_WORLD, &o, &plain));
    o.job_secret = secret;
    CHECK(lh_comm_create(MPI_COMM_WORLD, &o, &sealed));
    int iters = quick ? 200 : 2000;
    pingpong(NULL, iters / 10); /* warm-up */
    double raw = pingpong(NULL, iters), fr = pingpong(plain, iters), enc = pingpong(sealed, iters);
    report("latency", "raw_mpi", 8, raw, raw * 1e6, "us", raw * 1e6);
    report("latency", "framed", 8, fr, fr * 1e6, "us", raw * 1e6);
    report("latency", "framed_encrypted", 8, enc, enc * 1e6, "us", raw * 1e6);
    static const size_t sizes[] = {64 << 10, 1 << 20, 16 << 20};
    uint8_t *buf = malloc(16 << 20);
    memset(buf, 7, 16 << 20);
    for (int k = 0; k < 3; k++) {
        size_t bytes = sizes[k];
        int reps = (int)((quick ? (32u << 20) : (256u << 20)) / bytes);
        if (reps < 4) reps = 4;
        stream(NULL, buf, bytes, 2);
        /* best of three, interleaved, so a burst of load hits all variants alike */
        double t_raw = INFINITY, t_fr = INFINITY, t_enc = INFINITY;
        for (int round = 0; round < 3; round++) {
            t_raw = fmin(t_raw, stream(NULL, buf, bytes, reps));
            t_fr = fmin(t_fr, stream(plain, buf, bytes, reps));
            t_enc = fmin(t_enc, stream(sealed, buf, bytes, reps));
        }
        double total = (double)bytes * reps, g_raw = total * 8 / t_raw / 1e9;
        report("bandwidth", "raw_mpi", (double)bytes, t_raw, g_raw, "Gbit/s", g_raw);
        report("bandwidth", "framed", (double)bytes, t_fr, total * 8 / t_fr / 1e9, "Gbit/s", g_raw);
        report("bandwidth", "framed_encrypted", (double)bytes, t_enc, total * 8 / t_enc / 1e9, "Gbit/s", g_raw);
    }
    free(buf);
    lh_comm_free(plain);
    lh_comm_free(sealed);
}

static void bench_allreduce(size_t n, double mbps, double latency_ms)
{
    lh_netem *emu;
    CHECK(lh_netem_create_uniform(size_, latency_ms / 1e3, mbps * 1e6, 1.0, &emu));
    lh_comm_options o = {.emulation = emu};
    lh_comm *c;
    CHECK(lh_comm_create(MPI_COMM_WORLD, &o, &c));
    float *x = malloc(n * sizeof(float)), *ref = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)sin((double)i * 0.001 + rank_) * 0.01f;
    char variant[64];
    snprintf(variant, sizeof variant, "emulated_%gMbps_%gms", mbps, latency_ms);
    label = variant;
    /* fp32 baselines: the ring and the direct exchange (what the compressed allreduce's shape is) */
    lh_comm *ring;
    o.algorithm = LH_COMM_ALGO_RING;
    CHECK(lh_comm_create(MPI_COMM_WORLD, &o, &ring));
    lh_comm_stats s;
    double t_fp32 = 0, fp32_bytes = 0;
    for (int variant_i = 0; variant_i < 2; variant_i++) {
        lh_comm *cc = variant_i == 0 ? ring : c;
        memcpy(ref, x, n * sizeof(float));
        CHECK(lh_comm_barrier(cc));
        lh_comm_reset_stats(cc);
        double t0 = lh_now_s();
        CHECK(lh_comm_allreduce_f32(cc, ref, n));
        double t = lh_now_s() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        lh_comm_get_stats(cc, &s);
        const char *name = variant_i == 0 ? "fp32_ring" : "fp32_direct";
        report("allreduce", name, (double)s.wire_bytes_sent, t, t, "s", t_fp32 > 0 ? t_fp32 : t);
        report("allreduce_bytes", name, (double)s.wire_bytes_sent, t, (double)s.wire_bytes_sent, "B/rank",
               (double)s.wire_bytes_sent);
        t_fp32 = t;
        fp32_bytes = (double)s.wire_bytes_sent;
    }
    lh_comm_free(ring);
    double t0;
    static const int bits_list[] = {2, 4, 8};
    for (int k = 0; k < 3; k++) {
        lh_quant_params qp = lh_callreduce_default_params(bits_list[k]);
        lh_callreduce *a;
        CHECK(lh_callreduce_create(c, n, &qp, 1, 1, &a));
        float *y = malloc(n * sizeof(float));
        memcpy(y, x, n * sizeof(float));
        CHECK(lh_comm_barrier(c));
        lh_comm_reset_stats(c);
        t0 = lh_now_s();
        CHECK(lh_callreduce_run(a, y, 0));
        double t = lh_now_s() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        lh_comm_get_stats(c, &s);
        double err = 0, norm = 0;
        for (size_t i = 0; i < n; i++) {
            err += ((double)y[i] - ref[i]) * ((double)y[i] - ref[i]);
            norm += (double)ref[i] * ref[i];
        }
        char name[64];
        snprintf(name, sizeof name, "compressed_%dbit", qp.bits);
        report("allreduce", name, (double)s.wire_bytes_sent, t, t, "s", t_fp32);
        report("allreduce_bytes", name, (double)s.wire_bytes_sent, t, (double)s.wire_bytes_sent, "B/rank",
               fp32_bytes);
        if (rank_ == 0 && !json_out) printf("           %-22s relative rms error vs fp32: %.4f\n", name, sqrt(err / norm));
        if (rank_ == 0 && json_out)
            printf("{\"bench\":\"comm_allreduce_error\",\"variant\":\"%s\",\"wire\":\"%s\",\"value\":%.6g,"
                   "\"unit\":\"relative_rms\"}\n", name, label, sqrt(err / norm));
        free(y);
        lh_callreduce_free(a);
    }
    free(x);
    free(ref);
    lh_comm_free(c);
    lh_netem_free(emu);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    int p2p = 0, allreduce = 0, quick = 0;
    size_t floats = 1 << 20;
    double mbps = 100, latency_ms = 50;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json_out = 1;
        else if (!strcmp(argv[i], "--p2p")) p2p = 1;
        else if (!strcmp(argv[i], "--allreduce")) allreduce = 1;
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--label") && i + 1 < argc) label = argv[++i];
        else if (!strcmp(argv[i], "--floats") && i + 1 < argc) floats = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--mbps") && i + 1 < argc) mbps = atof(argv[++i]);
        else if (!strcmp(argv[i], "--latency-ms") && i + 1 < argc) latency_ms = atof(argv[++i]);
        else {
            if (rank_ == 0)
                fprintf(stderr, "usage: mpirun -np N bench_comm [--p2p] [--allreduce] [--json] [--quick] [--label L]"
                                " [--floats N] [--mbps M] [--latency-ms L]\n");
            MPI_Finalize();
            return 2;
        }
    }
    if (!p2p && !allreduce) p2p = allreduce = 1;
    if (p2p) bench_p2p(quick);
    if (allreduce && mbps > 0 && floats > 0) bench_allreduce(floats, mbps, latency_ms);
    MPI_Finalize();
    return 0;
}
