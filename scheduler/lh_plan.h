/*
 * lh_plan: where every pipeline stage of every data-parallel replica runs.
 *
 * A plan has D_PP stages and D_DP replicas; device[r][s] runs stage s of
 * replica r, and every device appears at most once.  Stage s owns transformer
 * layers [first_layer[s], first_layer[s] + num_layers[s]); stage 0 also holds
 * the embeddings and the last stage the final LayerNorm and the output head
 * (the tied embedding is kept on both; see docs/architecture.md).
 * File format: docs/formats.md, "plan".
 */
#ifndef LH_PLAN_H
#define LH_PLAN_H

#include <stddef.h>

#include "lh_status.h"
#include "lh_topology.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lh_plan {
    int stages;       /* D_PP */
    int replicas;     /* D_DP */
    int layers;       /* total transformer blocks */
    int *first_layer; /* [stages] */
    int *num_layers;  /* [stages], each >= 1 */
    int *device;      /* [replicas * stages], device[r * stages + s] */
    /* Optional provenance, written by `longhaul plan`. */
    char strategy[64];   /* "" when unknown */
    char cost_model[64]; /* "" when unknown */
    double cost_s;       /* estimated cost in seconds; < 0 when unknown */
} lh_plan;

/**
 * Allocate a plan with layers split as evenly as possible and devices in
 * Megatron's rank order: stage s of replica r on device s * replicas + r.
 */
lh_status lh_plan_create(int stages, int replicas, int layers, lh_plan **out);

/** Free a plan (NULL is accepted). */
void lh_plan_free(lh_plan *p);

/** Deep copy. */
lh_status lh_plan_clone(const lh_plan *p, lh_plan **out);

/** Parse a plan document held in memory; `name` is used in messages. */
lh_status lh_plan_parse(const char *name, const char *text, size_t len, lh_plan **out);

/** Load and validate a plan file. */
lh_status lh_plan_load(const char *path, lh_plan **out);

/** Write a plan file atomically. */
lh_status lh_plan_save(const lh_plan *p, const char *path);

/**
 * Check internal consistency (layer ranges contiguous and covering, devices
 * distinct and non-negative) and, when `t` is non-NULL, that every device
 * exists in the topology.
 */
lh_status lh_plan_validate(const lh_plan *p, const lh_topology *t);

/** The device of stage `s` in replica `r`. */
static inline int lh_plan_device(const lh_plan *p, int replica, int stage)
{
    return p->device[replica * p->stages + stage];
}

/** Find which (replica, stage) a device runs; returns 0 if it runs none. */
int lh_plan_find_device(const lh_plan *p, int device, int *replica, int *stage);

#ifdef __cplusplus
}
#endif
#endif
