/*
 * lh_probe: measure the network and the compute of a job's ranks and write a
 * topology file the scheduler reads (docs/formats.md, "topology").
 *
 * What is measured, and why this way:
 *  - Latency of every pair: minimum round trip of small framed messages / 2.
 *    The minimum filters scheduling noise; halving assumes symmetric delay,
 *    because one-way delay needs synchronised clocks that real sites lack.
 *  - Bandwidth of every ordered pair: the time to push a sample one way and
 *    get a 1-byte acknowledgement back, minus the small-message round trip,
 *    best of `bandwidth_reps`.  The sample grows until one transfer lasts
 *    `bandwidth_target_s`, so neither latency jitter nor a shaper's burst
 *    allowance (tbf lets its bucket through at line rate) inflates the
 *    figure.  Directions are measured separately: WAN links are often
 *    asymmetric.
 *  - Compute: FLOP/s of a short single-precision matmul (OpenBLAS, the CPU
 *    backend's engine), all ranks at once, as they will run in training.
 * Pairs are scheduled as a round-robin tournament (p-1 rounds of disjoint
 * pairs), so the probe takes O(p) rounds and never loads a link with two
 * measurements at once.  It goes through lh_comm, so on an emulated network it
 * measures the emulation; the figures are then divided by the time scale and
 * the topology is labelled EMULATED.  Time is bounded: ranks check a deadline
 * together after each round and fail with LH_ERR_TIMEOUT past it.
 */
#ifndef LH_PROBE_H
#define LH_PROBE_H

#include <stddef.h>

#include "lh_comm.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Probe settings; zero fields take the defaults in brackets. */
typedef struct lh_probe_options {
    int latency_pings;      /* round trips per pair [5] */
    size_t bandwidth_bytes; /* bytes of the first bandwidth sample [256 KiB] */
    int bandwidth_reps;     /* samples per direction and size [2] */
    double bandwidth_target_s; /* grow the sample until one transfer takes this long [0.2 s] */
    int matmul_n;           /* n of the n x n x n matmul [256] */
    double time_limit_s;    /* fail past this [120] */
} lh_probe_options;

/** Measured figures; matrices are n x n, row = sender, in SI units. */
typedef struct lh_probe_result {
    int n;
    double *latency_s;     /* one-way, diagonal 0 */
    double *bandwidth_bps; /* bits per second, diagonal 0 */
    double *flops;         /* per rank */
    double *memory_bytes;  /* per rank: host memory / ranks on the host */
    char (*names)[64];     /* "host-r3" */
    char (*hosts)[64];     /* host name (used as the region) */
    int emulated;
    double time_scale;
    double elapsed_s;
} lh_probe_result;

/** Collective: measure every pair and every rank; every rank gets the whole result. */
lh_status lh_probe_run(lh_comm *c, const lh_probe_options *options, lh_probe_result **out);

/** Free (NULL accepted). */
void lh_probe_result_free(lh_probe_result *r);

/** The topology document as JSON text (caller frees with free()). */
lh_status lh_probe_topology_json(const lh_probe_result *r, char **text);

/** Write the topology atomically to `path` (call on one rank). */
lh_status lh_probe_write_topology(const lh_probe_result *r, const char *path);

#ifdef __cplusplus
}
#endif
#endif
