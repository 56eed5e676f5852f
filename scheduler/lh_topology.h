/*
 * lh_topology: the devices of a job and the links between them.
 *
 * A topology is what the coordinator measures (comm/ probe) or what a user
 * writes by hand (docs/formats.md, "topology").  Links are resolved from the
 * most specific entry that names an ordered pair: a device pair beats a
 * region pair, which beats "default_link".  Storage is O(regions^2 + explicit
 * pairs), not O(devices^2), so a 10,000-device topology costs kilobytes; use
 * lh_topology_dense() when a strategy wants full matrices for a small N.
 *
 * Units inside longhaul are SI: seconds, bits per second, FLOP/s, bytes.  The
 * file uses milliseconds and Gbit/s because that is how people quote links.
 */
#ifndef LH_TOPOLOGY_H
#define LH_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>

#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_NAME_MAX 64

typedef struct lh_device {
    int id;                   /* index in the topology, 0..n-1 */
    char name[LH_NAME_MAX];   /* free text, e.g. "ohio-a100-3" */
    char region[LH_NAME_MAX]; /* region name; devices in one region share region links */
    int region_index;         /* index into lh_topology.regions */
    double flops;             /* sustained compute speed, FLOP/s */
    double memory_bytes;      /* usable accelerator (or host) memory */
} lh_device;

typedef struct lh_link {
    double latency_s;     /* one-way delay, seconds */
    double bandwidth_bps; /* bits per second, > 0 */
} lh_link;

typedef struct lh_pair_link {
    int from, to; /* device indices, ordered */
    lh_link link;
} lh_pair_link;

typedef struct lh_topology {
    int n_devices;
    lh_device *devices;
    int n_regions;
    char (*regions)[LH_NAME_MAX];
    /* n_regions x n_regions, row = from-region; has_region_link[i] says set. */
    lh_link *region_links;
    unsigned char *has_region_link;
    /* Explicit device-pair links, sorted by (from, to) for binary search. */
    size_t n_pair_links;
    lh_pair_link *pair_links;
    int has_default_link;
    lh_link default_link;
} lh_topology;

/** Deep copy. */
lh_status lh_topology_clone(const lh_topology *t, lh_topology **out);

/**
 * Stretch every link by `time_scale` (> 0): latencies x s, bandwidths / s, as
 * an emulated network with that time scale behaves (lh_netem.h).
 */
void lh_topology_scale_links(lh_topology *t, double time_scale);

/** Parse a topology document held in memory; `name` is used in messages. */
lh_status lh_topology_parse(const char *name, const char *text, size_t len, lh_topology **out);

/** Load and validate a topology file. */
lh_status lh_topology_load(const char *path, lh_topology **out);

/** Write `t` as a topology file (atomically): its devices, region links, pair links and default. */
lh_status lh_topology_save(const lh_topology *t, const char *path);

/**
 * Build a topology programmatically: `n` devices, all in region "default"
 * with flops 1e12 and memory 16 GiB, no links.  Fill fields, then call
 * lh_topology_set_* and finally lh_topology_validate().
 */
lh_status lh_topology_create(int n_devices, lh_topology **out);

/** Free a topology (NULL is accepted). */
void lh_topology_free(lh_topology *t);

/** Add or replace a region (returns its index in *index). */
lh_status lh_topology_add_region(lh_topology *t, const char *name, int *index);

/** Set the link from region a to region b (both directions when `symmetric`). */
lh_status lh_topology_set_region_link(lh_topology *t, int a, int b, lh_link link, int symmetric);

/** Set the link between two devices (both directions when `symmetric`). */
lh_status lh_topology_set_pair_link(lh_topology *t, int from, int to, lh_link link, int symmetric);

/** Check that every ordered pair of distinct devices resolves to a link. */
lh_status lh_topology_validate(const lh_topology *t);

/** The link from device `from` to device `to` (from != to); ok is 0 when none resolves. */
lh_link lh_topology_link(const lh_topology *t, int from, int to, int *ok);

/**
 * Fill caller-owned n*n row-major matrices (either may be NULL) with the
 * resolved latency (s) and bandwidth (bit/s); the diagonal gets 0 and +inf.
 */
lh_status lh_topology_dense(const lh_topology *t, double *latency_s, double *bandwidth_bps);

#ifdef __cplusplus
}
#endif
#endif
