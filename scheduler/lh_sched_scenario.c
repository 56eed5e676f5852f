/*
 * Built-in topologies: the five DT-FM scenarios (so their numbers can be
 * reproduced without files) and a generator of random geo-distributed
 * topologies of any size (for scaling experiments).
 *
 * Every scenario is expressed with regions, so even 10,000 devices cost only
 * O(regions^2) link entries.  Scenario 2's single-GPU spot instances are
 * one-device regions; DT-FM's "self-links unused" holds because a device is
 * never linked to itself.  Devices are V100-32GB: 50 TFLOP/s sustained fp16.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_sched_internal.h"

const char *const lh_scenario_names[] = {"dc-ondemand", "dc-spot", "two-campus", "four-regions", "world", NULL};

#define V100_FLOPS 50e12
#define V100_MEMORY 32e9

static lh_link mk(double ms, double gbps)
{
    lh_link l = {ms / 1000.0, gbps * 1e9};
    return l;
}

/* Build a topology with `n_regions` regions of the given sizes (devices assigned region by region). */
static lh_status regions_topology(int n_regions, const int *sizes, const char *const *names, const char *prefix,
                                  lh_topology **out)
{
    int n = 0;
    for (int r = 0; r < n_regions; r++) n += sizes[r];
    lh_topology *t;
    lh_status st = lh_topology_create(n, &t);
    if (st) return st;
    int d = 0;
    for (int r = 0; r < n_regions && !st; r++) {
        char name[LH_NAME_MAX];
        if (names) snprintf(name, sizeof name, "%s", names[r]);
        else snprintf(name, sizeof name, "%s%d", prefix, r);
        int idx;
        st = lh_topology_add_region(t, name, &idx);
        if (!st && idx != r + 1)
            st = lh_fail(LH_ERR_INTERNAL, "scenario: region %s got index %d, expected %d", name, idx, r + 1);
        for (int k = 0; k < sizes[r] && !st; k++, d++) {
            lh_device *dev = &t->devices[d];
            snprintf(dev->region, sizeof dev->region, "%s", name);
            snprintf(dev->name, sizeof dev->name, "%.40s-gpu%d", name, k);
            dev->region_index = idx;
            dev->flops = V100_FLOPS;
            dev->memory_bytes = V100_MEMORY;
        }
    }
    if (st) {
        lh_topology_free(t);
        return st;
    }
    *out = t;
    return LH_OK;
}

/* Region indices as added: "default" (from lh_topology_create) is index 0, ours start at 1. */
#define RI(k) ((k) + 1)

static lh_status set_all(lh_topology *t, int n_regions, lh_link intra, lh_link inter, const unsigned char *has_intra)
{
    lh_status st = LH_OK;
    for (int a = 0; a < n_regions && !st; a++)
        for (int b = a; b < n_regions && !st; b++) {
            if (a == b && has_intra && !has_intra[a]) continue;
            st = lh_topology_set_region_link(t, RI(a), RI(b), a == b ? intra : inter, 1);
        }
    return st;
}

static const char *const world_names[8] = {"oregon", "virginia", "ohio", "tokyo", "seoul", "london", "frankfurt",
                                           "ireland"};
/* DT-FM scenario 5 (ms, Gbit/s), upper triangle in world_names order. */
static const double world_ms[8][8] = {
    {0, 67, 49, 96, 124, 136, 143, 124}, {0, 0, 11, 143, 172, 76, 90, 67}, {0, 0, 0, 130, 159, 86, 99, 77},
    {0, 0, 0, 0, 34, 210, 223, 199},     {0, 0, 0, 0, 0, 238, 235, 228},  {0, 0, 0, 0, 0, 0, 14, 12},
    {0, 0, 0, 0, 0, 0, 0, 24},           {0}};
static const double world_gbps[8][8] = {{0, 0.79, 1.1, 0.523, 0.46, 0.42, 0.404, 0.482},
                                        {0, 0, 1.12, 0.524, 0.5, 1.16, 1.02, 1.05},
                                        {0, 0, 0, 0.694, 0.529, 1.05, 0.799, 1.14},
                                        {0, 0, 0, 0, 1.1, 0.366, 0.36, 0.465},
                                        {0, 0, 0, 0, 0, 0.342, 0.358, 0.335},
                                        {0, 0, 0, 0, 0, 0, 1.14, 1.09},
                                        {0, 0, 0, 0, 0, 0, 0, 1.08},
                                        {0}};

static lh_status build_world(lh_topology **out)
{
    int sizes[8] = {8, 8, 8, 8, 8, 8, 8, 8};
    lh_status st = regions_topology(8, sizes, world_names, NULL, out);
    for (int a = 0; a < 8 && !st; a++)
        for (int b = a; b < 8 && !st; b++)
            st = lh_topology_set_region_link(*out, RI(a), RI(b),
                                             a == b ? mk(5, 2) : mk(world_ms[a][b], world_gbps[a][b]), 1);
    return st;
}

static lh_status build_four_regions(lh_topology **out)
{
    static const char *const names[4] = {"virginia", "oregon", "california", "ohio"};
    static const double ms[4][4] = {{0, 67, 59, 11}, {0, 0, 12, 49}, {0, 0, 0, 52}, {0}};
    static const double gbps[4][4] = {{0, 1.15, 1.05, 1.12}, {0, 0, 1.25, 1.10}, {0, 0, 0, 1.02}, {0}};
    int sizes[4] = {16, 16, 16, 16};
    lh_status st = regions_topology(4, sizes, names, NULL, out);
    for (int a = 0; a < 4 && !st; a++)
        for (int b = a; b < 4 && !st; b++)
            st = lh_topology_set_region_link(*out, RI(a), RI(b), a == b ? mk(5, 2) : mk(ms[a][b], gbps[a][b]), 1);
    return st;
}

lh_status lh_scenario_build(const char *name, lh_topology **out)
{
    *out = NULL;
    if (!name) return lh_fail(LH_ERR_INVALID_ARG, "scenario: no name given");
    int which = -1;
    for (int i = 0; lh_scenario_names[i]; i++)
        if (strcmp(name, lh_scenario_names[i]) == 0) which = i;
    if (which < 0 && name[0] >= '1' && name[0] <= '5' && name[1] == 0) which = name[0] - '1';
    lh_status st;
    switch (which) {
    case 0: { /* 8 instances x 8 GPUs: 100 Gbit/s inside, 3.125 Gbit/s across, 0 ms */
        int sizes[8] = {8, 8, 8, 8, 8, 8, 8, 8};
        st = regions_topology(8, sizes, NULL, "instance", out);
        if (!st) st = set_all(*out, 8, mk(0, 100), mk(0, 3.125), NULL);
        break;
    }
    case 1: { /* 8 instances of 4 GPUs + 32 single-GPU instances; everything else 1.25 Gbit/s */
        int sizes[40];
        unsigned char intra[40];
        for (int i = 0; i < 40; i++) {
            sizes[i] = i < 8 ? 4 : 1;
            intra[i] = i < 8;
        }
        st = regions_topology(40, sizes, NULL, "spot", out);
        if (!st) st = set_all(*out, 40, mk(0, 100), mk(0, 1.25), intra);
        break;
    }
    case 2: { /* two campuses of 32: 1 ms / 5 Gbit/s inside, 11 ms / 1.12 Gbit/s across */
        static const char *const names[2] = {"ohio", "virginia"};
        int sizes[2] = {32, 32};
        st = regions_topology(2, sizes, names, NULL, out);
        if (!st) st = set_all(*out, 2, mk(1, 5), mk(11, 1.12), NULL);
        break;
    }
    case 3:
        st = build_four_regions(out);
        break;
    case 4:
        st = build_world(out);
        break;
    default:
        return lh_fail(LH_ERR_NOT_FOUND,
                       "scenario \"%s\" is not built in; choose dc-ondemand, dc-spot, two-campus, four-regions, world "
                       "(or 1-5)",
                       name);
    }
    if (!st) st = lh_topology_validate(*out);
    if (st) {
        lh_topology_free(*out);
        *out = NULL;
    }
    return st;
}

/* Approximate city coordinates (degrees) for the measured regions, used to place synthetic ones. */
static const double world_coords[8][2] = {{45.8, -119.7}, {38.9, -77.4}, {40.0, -83.0}, {35.7, 139.7},
                                          {37.6, 127.0},  {51.5, -0.1},  {50.1, 8.7},   {53.3, -6.3}};

static double great_circle_km(double lat1, double lon1, double lat2, double lon2)
{
    const double rad = 3.14159265358979323846 / 180.0;
    double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
    double a = sin(dlat / 2) * sin(dlat / 2) + cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);
    return 2 * 6371.0 * atan2(sqrt(a), sqrt(1 - a));
}

lh_status lh_scenario_random_geo(int n_devices, int n_regions, uint64_t seed, lh_topology **out)
{
    *out = NULL;
    if (n_devices < 1) return lh_fail(LH_ERR_INVALID_ARG, "random topology: need >= 1 device, got %d", n_devices);
    if (n_regions < 1 || n_regions > n_devices || n_regions > 1024)
        return lh_fail(LH_ERR_INVALID_ARG, "random topology: regions must be in [1, min(devices, 1024)], got %d",
                       n_regions);
    lh_rng rng = {seed ^ 0x9e0ULL};
    int *sizes = malloc((size_t)n_regions * sizeof *sizes);
    double *coord = malloc((size_t)n_regions * 2 * sizeof *coord);
    char(*names)[LH_NAME_MAX] = malloc((size_t)n_regions * sizeof *names);
    const char **name_ptrs = malloc((size_t)n_regions * sizeof *name_ptrs);
    if (!sizes || !coord || !names || !name_ptrs) {
        free(sizes), free(coord), free(names), free(name_ptrs);
        return lh_fail(LH_ERR_NOMEM, "random topology: out of memory");
    }
    for (int r = 0; r < n_regions; r++) {
        sizes[r] = 1;
        if (r < 8) {
            coord[2 * r] = world_coords[r][0];
            coord[2 * r + 1] = world_coords[r][1];
            snprintf(names[r], LH_NAME_MAX, "%s", world_names[r]);
        } else {
            coord[2 * r] = -50 + 110 * lh_rng_unit(&rng);
            coord[2 * r + 1] = -180 + 360 * lh_rng_unit(&rng);
            snprintf(names[r], LH_NAME_MAX, "region%d", r);
        }
        name_ptrs[r] = names[r];
    }
    for (int k = n_regions; k < n_devices; k++) sizes[lh_rng_below(&rng, n_regions)]++;
    lh_status st = regions_topology(n_regions, sizes, name_ptrs, NULL, out);
    for (int a = 0; a < n_regions && !st; a++)
        for (int b = a; b < n_regions && !st; b++) {
            lh_link l;
            if (a == b) l = mk(5, 2);
            else if (a < 8 && b < 8) l = mk(world_ms[a][b], world_gbps[a][b]);
            else {
                double km = great_circle_km(coord[2 * a], coord[2 * a + 1], coord[2 * b], coord[2 * b + 1]);
                l = mk(2 + km / 100.0, fmax(0.3, 1.2 - km / 20000.0) * (0.8 + 0.4 * lh_rng_unit(&rng)));
            }
            st = lh_topology_set_region_link(*out, RI(a), RI(b), l, 1);
        }
    /* A GPU mix: V100-32GB, A100-80GB, T4-16GB (sustained fp16 FLOP/s). */
    static const double mix_flops[3] = {50e12, 120e12, 25e12}, mix_mem[3] = {32e9, 80e9, 16e9};
    for (int d = 0; d < n_devices && !st; d++) {
        int kind = lh_rng_below(&rng, 3);
        (*out)->devices[d].flops = mix_flops[kind];
        (*out)->devices[d].memory_bytes = mix_mem[kind];
    }
    if (!st) st = lh_topology_validate(*out);
    if (st) {
        lh_topology_free(*out);
        *out = NULL;
    }
    free(sizes), free(coord), free(names), free(name_ptrs);
    return st;
}

lh_status lh_scenario_from_region_table(const lh_topology *table, int n_devices, uint64_t seed, lh_topology **out)
{
    *out = NULL;
    if (n_devices < 1) return lh_fail(LH_ERR_INVALID_ARG, "region table: need >= 1 device, got %d", n_devices);
    int TR = table->n_regions;
    int *members = calloc((size_t)TR, sizeof *members), *used = malloc((size_t)TR * sizeof *used);
    if (!members || !used) {
        free(members), free(used);
        return lh_fail(LH_ERR_NOMEM, "region table: out of memory");
    }
    for (int d = 0; d < table->n_devices; d++) members[table->devices[d].region_index]++;
    int R = 0;
    for (int r = 0; r < TR; r++)
        if (members[r]) used[R++] = r;
    /* Every pair of used regions (and each region with itself) must have a region link. */
    for (int a = 0; a < R; a++)
        for (int b = 0; b < R; b++)
            if (!table->has_region_link[used[a] * TR + used[b]]) {
                lh_status st = lh_fail(LH_ERR_FORMAT,
                                       "region table: no region link %s -> %s (a region table needs links for every "
                                       "region pair, including each region with itself)",
                                       table->regions[used[a]], table->regions[used[b]]);
                free(members), free(used);
                return st;
            }
    lh_rng rng = {seed ^ 0x7ab1eULL};
    int *sizes = calloc((size_t)R, sizeof *sizes);
    const char **names = calloc((size_t)(R > 0 ? R : 1), sizeof *names);
    if (!sizes || !names) {
        free(members), free(used), free(sizes), free(names);
        return lh_fail(LH_ERR_NOMEM, "region table: out of memory");
    }
    for (int k = 0; k < n_devices; k++) sizes[lh_rng_below(&rng, R)]++;
    for (int a = 0; a < R; a++) names[a] = table->regions[used[a]];
    /* Regions that drew no device are dropped by giving them none; regions_topology needs sizes >= 0 only. */
    lh_status st = regions_topology(R, sizes, names, NULL, out);
    for (int a = 0; a < R && !st; a++)
        for (int b = 0; b < R && !st; b++)
            st = lh_topology_set_region_link(*out, RI(a), RI(b), table->region_links[used[a] * TR + used[b]], 0);
    for (int d = 0; d < n_devices && !st; d++) {
        lh_device *dev = &(*out)->devices[d];
        int r = used[dev->region_index - 1];
        int nth = lh_rng_below(&rng, members[r]);
        for (int e = 0; e < table->n_devices; e++)
            if (table->devices[e].region_index == r && nth-- == 0) {
                dev->flops = table->devices[e].flops;
                dev->memory_bytes = table->devices[e].memory_bytes;
                break;
            }
    }
    if (!st) st = lh_topology_validate(*out);
    if (st) {
        lh_topology_free(*out);
        *out = NULL;
    }
    free(members), free(used), free(sizes), free(names);
    return st;
}
