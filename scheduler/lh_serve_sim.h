/*
 * lh_repl_sim: demand-driven model replication for serving (the Crynux
 * model-distribution idea), as a scheduling policy plus a deterministic,
 * trace-driven, event-driven simulator to compare policies on.
 *
 * The world being modelled:
 *  - nodes with a disk (bytes) and a download bandwidth (Gbit/s); each node
 *    serves one request at a time and downloads one model at a time (it can
 *    serve while downloading: GPU and network are separate);
 *  - models with a size; a copy occupies its bytes of disk from the moment a
 *    download starts (space is reserved) until the policy drops it;
 *  - requests {arrival time, model, service time}; a request runs only on a
 *    node that holds a complete copy of its model (tasks go only to holders).
 *
 * Dispatch is fixed (the policies only decide where copies live): an arriving
 * request takes the lowest-id free holder (a *hit*); otherwise it queues in its
 * model's FIFO.  Whenever a node becomes free or finishes a download it takes
 * the earliest-arrived queued request among the models it holds.  Events at the
 * same instant run in the order: completions, finished downloads, arrivals,
 * policy wake-ups; the policy reacts after every event.  Everything is
 * deterministic, so a small trace can be reproduced by hand (docs/serving.md).
 *
 * Policies sit behind a vtable so a new one needs no change to the simulator.
 * Two are built in: "fixed" (Crynux: N0 initial copies, fetch when fewer than
 * F are free, drop extra copies idle for a while) and "demand" (longhaul:
 * copies follow the measured offered load with hysteresis, LRU eviction of
 * surplus copies when a disk is full, fastest idle downloader first).
 */
#ifndef LH_REPL_SIM_H
#define LH_REPL_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_REPL_ID_MAX       64
#define LH_REPL_MAX_MODELS   4096
#define LH_REPL_MAX_NODES    100000
#define LH_REPL_MAX_REQUESTS 10000000

typedef struct lh_repl_model {
    char id[LH_REPL_ID_MAX];
    double bytes; /* > 0 */
} lh_repl_model;

typedef struct lh_repl_request {
    double t;          /* arrival, seconds from the start, non-decreasing in a trace */
    int model;         /* index into the trace's models */
    double duration_s; /* service time once started, > 0 */
} lh_repl_request;

/** A request trace and the models it names (format "longhaul-serve-trace", docs/serving.md). */
typedef struct lh_repl_trace {
    int n_models;
    lh_repl_model *models;
    size_t n_requests;
    lh_repl_request *requests;
} lh_repl_trace;

typedef struct lh_repl_node {
    char id[LH_REPL_ID_MAX];
    double disk_bytes;    /* > 0 */
    double download_gbps; /* > 0 */
} lh_repl_node;

/** The node set (format "longhaul-serve-nodes"). */
typedef struct lh_repl_nodes {
    int n_nodes;
    lh_repl_node *nodes;
} lh_repl_nodes;

/** Parse a trace held in memory; `name` is used in messages.  Errors name the JSON path. */
lh_status lh_repl_trace_parse(const char *name, const char *text, size_t len, lh_repl_trace **out);
/** Load a trace file. */
lh_status lh_repl_trace_load(const char *path, lh_repl_trace **out);
/** Free a trace (NULL is accepted). */
void lh_repl_trace_free(lh_repl_trace *t);

/** Parse a node set held in memory. */
lh_status lh_repl_nodes_parse(const char *name, const char *text, size_t len, lh_repl_nodes **out);
/** Load a node-set file. */
lh_status lh_repl_nodes_load(const char *path, lh_repl_nodes **out);
/** Free a node set (NULL is accepted). */
void lh_repl_nodes_free(lh_repl_nodes *n);

/** Synthetic trace: Poisson arrivals, Zipf popularity whose ranking is reshuffled every `shift_every_s`. */
typedef struct lh_repl_synth_options {
    uint64_t seed;
    double duration_s;                       /* arrivals in [0, duration_s) */
    double rate_per_s;                       /* mean arrival rate */
    int n_models;                            /* models "m0".."m<n-1>" */
    double zipf_s;                           /* popularity exponent: weight of rank k is 1 / k^zipf_s */
    double shift_every_s;                    /* <= 0: popularity never shifts */
    double mean_service_s;                   /* exponential service times with this mean (at least 0.05 s) */
    double model_bytes_min, model_bytes_max; /* sizes drawn uniformly */
} lh_repl_synth_options;

/** Defaults: 1 hour, 2 req/s, 20 models, zipf 1.1, shift every 15 min, 4 s service, 2..16 GB. */
void lh_repl_synth_defaults(lh_repl_synth_options *o);
/** Generate a synthetic trace (deterministic for the options). */
lh_status lh_repl_trace_synthetic(const lh_repl_synth_options *o, lh_repl_trace **out);
/** `n` nodes with 40..120 GB disks and 0.1..2.5 Gbit/s downloads drawn from `seed`. */
lh_status lh_repl_nodes_synthetic(int n, uint64_t seed, lh_repl_nodes **out);
/** Write a trace as a JSON file (atomically), e.g. to keep a synthetic one. */
lh_status lh_repl_trace_save(const lh_repl_trace *t, const char *path);
/** Write a node set as a JSON file (atomically). */
lh_status lh_repl_nodes_save(const lh_repl_nodes *n, const char *path);

/* ------------------------------------------------------------------ */
/* Policies                                                            */
/* ------------------------------------------------------------------ */

/** Knobs shared by the built-in policies (each documents which it reads). */
typedef struct lh_repl_policy_params {
    int initial_copies; /* N0: copies of every model at t=0 (both policies); Crynux: 10 */
    int floor_free; /* F: fetch when fewer holders than this are free (fixed; demand's reactive floor); 3 */
    double idle_drop_s;   /* fixed: drop a copy beyond N0 idle this long; 600 */
    double rate_window_s; /* demand: time constant of the arrival-rate estimate; 120 */
    double headroom;      /* demand: target copies = max(min_copies, ceil(headroom * offered load) + 1); 2 */
    double shrink_slack;  /* demand: drop only above floor(target * shrink_slack) + 1 copies; 1.5 */
    double hold_s;        /* demand: a copy must be idle this long to be dropped or evicted; 300 */
    int min_copies;       /* demand: never drop below this many copies; 3 */
} lh_repl_policy_params;

/** The defaults above. */
void lh_repl_policy_defaults(lh_repl_policy_params *p);

typedef struct lh_repl_sim lh_repl_sim;

typedef enum lh_repl_event_kind {
    LH_REPL_EV_INIT = 0,       /* before the first event: place initial copies */
    LH_REPL_EV_COMPLETE = 1,   /* a request finished on `node` */
    LH_REPL_EV_DOWNLOADED = 2, /* `node` finished fetching `model` */
    LH_REPL_EV_ARRIVAL = 3,    /* request `request` for `model` arrived (and was dispatched or queued) */
    LH_REPL_EV_WAKE = 4        /* a wake-up the policy asked for */
} lh_repl_event_kind;

typedef struct lh_repl_event {
    lh_repl_event_kind kind;
    double t;
    int node;     /* -1 when none */
    int model;    /* -1 when none */
    long request; /* -1 when none */
} lh_repl_event;

typedef struct lh_repl_policy {
    const char *name;
    const char *summary;
    /** Allocate per-run state (may set *state to NULL). */
    lh_status (*create)(const lh_repl_sim *sim, const lh_repl_policy_params *params, void **state);
    /** React to an event with lh_repl_sim_place (INIT only), _fetch, _drop and _wake_at. */
    lh_status (*react)(void *state, lh_repl_sim *sim, const lh_repl_event *ev);
    void (*destroy)(void *state);
} lh_repl_policy;

extern const lh_repl_policy lh_repl_policy_fixed;
extern const lh_repl_policy lh_repl_policy_demand;
/** Find a policy by name ("fixed", "demand"); NULL when unknown. */
const lh_repl_policy *lh_repl_policy_find(const char *name);
/** Built-in policies in order (NULL-terminated). */
extern const lh_repl_policy *const lh_repl_policies[];

/* What a policy may read. */
/** Simulated time of the event being handled (s). */
double lh_repl_sim_now(const lh_repl_sim *s);
/** Number of nodes / models. */
int lh_repl_sim_nodes(const lh_repl_sim *s);
int lh_repl_sim_models(const lh_repl_sim *s);
/** A node's / model's description (borrowed from the inputs). */
const lh_repl_node *lh_repl_sim_node(const lh_repl_sim *s, int node);
const lh_repl_model *lh_repl_sim_model(const lh_repl_sim *s, int model);
/** Request `index` of the trace (for ARRIVAL events: its model and service time). */
const lh_repl_request *lh_repl_sim_request(const lh_repl_sim *s, long index);
/** 2 = complete copy, 1 = downloading, 0 = none. */
int lh_repl_sim_copy_state(const lh_repl_sim *s, int node, int model);
/** Model the node is serving now, or -1 when free. */
int lh_repl_sim_serving(const lh_repl_sim *s, int node);
/** Model the node is downloading now, or -1. */
int lh_repl_sim_fetching(const lh_repl_sim *s, int node);
/** Disk bytes not used or reserved. */
double lh_repl_sim_free_disk(const lh_repl_sim *s, int node);
/** When the node last started or finished serving `model`, or when its copy became complete. */
double lh_repl_sim_last_used(const lh_repl_sim *s, int node, int model);
/** Nodes holding a complete copy of `model`. */
int lh_repl_sim_holders(const lh_repl_sim *s, int model);
/** Of those, the ones not serving anything now. */
int lh_repl_sim_free_holders(const lh_repl_sim *s, int model);
/** Downloads of `model` in flight. */
int lh_repl_sim_pending(const lh_repl_sim *s, int model);
/** Requests for `model` waiting for a holder. */
long lh_repl_sim_queued(const lh_repl_sim *s, int model);

/* What a policy may do.  Each fails (LH_ERR_INVALID_ARG / LH_ERR_CAPACITY) with a message when not allowed.
 */
/** INIT only: a complete copy at t=0, free of charge.  Needs disk room. */
lh_status lh_repl_sim_place(lh_repl_sim *s, int node, int model);
/** Start downloading `model` to `node`: the node must hold no copy, not be downloading, and have room. */
lh_status lh_repl_sim_fetch(lh_repl_sim *s, int node, int model);
/** Delete a complete copy that the node is not serving right now. */
lh_status lh_repl_sim_drop(lh_repl_sim *s, int node, int model);
/** Ask for a WAKE event at time t (> now; earlier pending wake-ups are kept). */
lh_status lh_repl_sim_wake_at(lh_repl_sim *s, double t);

/* ------------------------------------------------------------------ */
/* Running                                                             */
/* ------------------------------------------------------------------ */

typedef struct lh_repl_result {
    long requests;                              /* in the trace */
    long served;                                /* started (all of them unless no copy could ever appear) */
    long unserved;                              /* still queued when nothing else could happen */
    long hits;                                  /* found a free holder on arrival */
    double hit_rate;                            /* hits / requests */
    double wait_mean_s, wait_p50_s, wait_p99_s; /* over served requests; nearest-rank percentiles */
    long downloads;                             /* fetches started */
    double download_s;                          /* sum of their durations (bytes * 8 / node bandwidth) */
    double bytes_moved;                         /* sum of their sizes */
    long drops;                                 /* copies deleted */
    long initial_copies;                        /* placed at t=0 (not counted as moved) */
    double end_s;                               /* last request finished */
    double mean_stored_bytes; /* time-average over [0, end_s] of bytes on all disks (incl. reserved) */
    long events;              /* events processed */
} lh_repl_result;

/**
 * Simulate `trace` on `nodes` under `policy`.  Fails when the inputs are
 * inconsistent (a request names a model out of range) or the policy returns an
 * error; a policy that leaves requests without any copy ends the run with them
 * counted in `unserved`.
 */
lh_status lh_repl_simulate(const lh_repl_trace *trace, const lh_repl_nodes *nodes,
                           const lh_repl_policy *policy, const lh_repl_policy_params *params,
                           lh_repl_result *out);

#ifdef __cplusplus
}
#endif
#endif
