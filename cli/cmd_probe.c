/*
 * longhaul probe: measure the network and compute of the ranks of an mpirun
 * and write the topology file the scheduler plans with.  Runs collectively on
 * every rank; rank 0 writes the file.  --emulate-* runs it on an emulated
 * network instead (to check the probe, or to produce a topology for a
 * what-if), and the file then says EMULATED in its name.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "commands.h"
#include "lh_comm.h"
#include "lh_log.h"
#include "lh_probe.h"
#include "lh_topology.h"

static void probe_usage(FILE *out)
{
    fprintf(out,
            "usage: mpirun -np N longhaul probe --out FILE [options]\n"
            "  --out FILE                 topology file to write (rank 0, atomically)\n"
            "  --key-file FILE            job secret (32 raw bytes or 64 hex digits, mode 600): encrypt the probe\n"
            "  --pings N                  round trips per pair for latency (default 5)\n"
            "  --sample-bytes N           first bandwidth sample in bytes (default 262144)\n"
            "  --sample-seconds S         grow samples until one transfer takes S seconds (default 0.2)\n"
            "  --matmul N                 n of the compute-speed matmul (default 256)\n"
            "  --time-limit S             fail after S seconds (default 120)\n"
            "  --emulate-topology FILE    emulate the links of this topology file (device i = rank i)\n"
            "  --emulate-latency-ms L     or emulate every link with L ms one-way latency ...\n"
            "  --emulate-bandwidth-mbps B ... and B Mbit/s (both needed to emulate)\n"
            "  --time-scale S             stretch emulated links by S (default 1)\n");
}

static int parse_number(const char *flag, const char *text, double lo, double hi, double *out)
{
    char *end = NULL;
    double v = strtod(text, &end);
    if (!end || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "longhaul probe: %s: expected a number in [%g, %g], got '%s'\n", flag, lo, hi, text);
        return 0;
    }
    *out = v;
    return 1;
}

/* Every rank reads the same topology file: its links become the emulated network. */
static lh_status netem_from_topology(const char *path, int size, double scale, lh_netem **out)
{
    lh_topology *t = NULL;
    lh_status st = lh_topology_load(path, &t);
    if (st) return st;
    if (t->n_devices != size) {
        int n = t->n_devices;
        lh_topology_free(t);
        return lh_fail(LH_ERR_MISMATCH, "%s has %d devices, but %d ranks are running", path, n, size);
    }
    double *lat = malloc((size_t)size * size * sizeof(double)), *bw = malloc((size_t)size * size * sizeof(double));
    if (!lat || !bw) st = lh_fail(LH_ERR_NOMEM, "probe: out of memory");
    if (!st) st = lh_topology_dense(t, lat, bw);
    if (!st) st = lh_netem_create(size, lat, bw, scale, out);
    free(lat);
    free(bw);
    lh_topology_free(t);
    return st ? lh_fail_prefix(st, "emulating %s", path) : LH_OK;
}

int cmd_probe(int argc, char **argv)
{
    const char *out_path = NULL, *key_path = NULL, *emu_topology = NULL;
    double pings = 0, sample = 0, sample_s = 0, matmul = 0, limit = 0, lat_ms = -1, mbps = -1, scale = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            probe_usage(stdout);
            return LH_EXIT_OK;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "longhaul probe: %s: unknown option or missing value\n\n", a);
            probe_usage(stderr);
            return LH_EXIT_USAGE;
        }
        const char *v = argv[++i];
        int ok = 1;
        if (!strcmp(a, "--out")) out_path = v;
        else if (!strcmp(a, "--key-file")) key_path = v;
        else if (!strcmp(a, "--emulate-topology")) emu_topology = v;
        else if (!strcmp(a, "--pings")) ok = parse_number(a, v, 1, 1000, &pings);
        else if (!strcmp(a, "--sample-bytes")) ok = parse_number(a, v, 1024, 1 << 30, &sample);
        else if (!strcmp(a, "--sample-seconds")) ok = parse_number(a, v, 1e-4, 60, &sample_s);
        else if (!strcmp(a, "--matmul")) ok = parse_number(a, v, 8, 4096, &matmul);
        else if (!strcmp(a, "--time-limit")) ok = parse_number(a, v, 1, 86400, &limit);
        else if (!strcmp(a, "--emulate-latency-ms")) ok = parse_number(a, v, 0, 1e6, &lat_ms);
        else if (!strcmp(a, "--emulate-bandwidth-mbps")) ok = parse_number(a, v, 1e-3, 1e9, &mbps);
        else if (!strcmp(a, "--time-scale")) ok = parse_number(a, v, 1e-3, 1e6, &scale);
        else {
            fprintf(stderr, "longhaul probe: unknown option %s\n\n", a);
            probe_usage(stderr);
            return LH_EXIT_USAGE;
        }
        if (!ok) return LH_EXIT_USAGE;
    }
    if (!out_path || ((lat_ms >= 0) != (mbps > 0)) || (emu_topology && lat_ms >= 0)) {
        fprintf(stderr, "longhaul probe: %s\n\n",
                !out_path ? "--out is required"
                : emu_topology ? "--emulate-topology and --emulate-latency-ms/--emulate-bandwidth-mbps exclude each other"
                               : "--emulate-latency-ms and --emulate-bandwidth-mbps go together");
        probe_usage(stderr);
        return LH_EXIT_USAGE;
    }
    uint8_t secret[LH_KEY_BYTES];
    if (key_path) {
        lh_status st = lh_key_load(key_path, secret);
        if (st) return cli_report("probe", st);
    }
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) MPI_Init(&argc, &argv);
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    lh_log_set_rank(rank);
    lh_netem *emu = NULL;
    lh_comm *c = NULL;
    lh_probe_result *r = NULL;
    lh_status st = LH_OK;
    if (lat_ms >= 0) st = lh_netem_create_uniform(size, lat_ms / 1e3, mbps * 1e6, scale, &emu);
    if (emu_topology) st = netem_from_topology(emu_topology, size, scale, &emu);
    lh_comm_options o = {.job_secret = key_path ? secret : NULL, .emulation = emu};
    if (!st) st = lh_comm_create(MPI_COMM_WORLD, &o, &c);
    lh_probe_options po = {.latency_pings = (int)pings, .bandwidth_bytes = (size_t)sample, .matmul_n = (int)matmul,
                           .time_limit_s = limit, .bandwidth_target_s = sample_s};
    if (!st) st = lh_probe_run(c, &po, &r);
    if (!st && rank == 0) {
        st = lh_probe_write_topology(r, out_path);
        if (!st)
            LH_INFO("probe: %d ranks measured in %.1f s%s; wrote %s", size, r->elapsed_s,
                    r->emulated ? " on an EMULATED network" : "", out_path);
    }
    int rc = st ? cli_report("probe", st) : LH_EXIT_OK;
    lh_probe_result_free(r);
    lh_comm_free(c);
    lh_netem_free(emu);
    if (!inited) MPI_Finalize();
    return rc;
}
