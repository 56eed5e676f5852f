/*
 * The replication simulator's engine: an event heap, per-node and per-copy
 * state, fixed dispatch, and the metrics.
 *
 * Why this design: the point is to compare copy-placement policies on the same
 * trace, so everything that is not the policy (dispatch, tie order, download
 * timing) is fixed and deterministic, and the policy only sees the read
 * functions and acts through place/fetch/drop/wake, which check every rule
 * (disk room, one download per node, never drop a copy in use).  Arrivals are
 * read straight from the sorted trace instead of the heap, so the heap holds
 * only what is in flight (completions, downloads, wake-ups) and memory stays
 * O(nodes + models * nodes) however long the trace.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_serve_sim.h"

/* Cap on nodes * models copy slots so a hostile input cannot ask for gigabytes of state. */
#define LH_REPL_MAX_SLOTS ((size_t)1 << 25)

typedef struct sim_event {
    double t;
    int kind; /* lh_repl_event_kind: heap order at equal t is kind, then seq */
    int node, model;
    long seq;
} sim_event;

struct lh_repl_sim {
    const lh_repl_trace *trace;
    const lh_repl_nodes *nodes;
    int N, M;
    double now;
    int in_init;
    unsigned char *copy;    /* [N*M] 0 none, 1 downloading, 2 complete */
    double *last_used;      /* [N*M] */
    double *used_disk;      /* [N] used + reserved */
    int *serving;           /* [N] model or -1 */
    int *fetching;          /* [N] model or -1 */
    int *holders, *pending; /* [M] */
    /* Per-model FIFO of queued request indices: [qoff[m], qoff[m+1]) holds every request of m in order. */
    size_t *qoff, *qhead, *qtail;
    size_t *qbuf;
    sim_event *heap;
    size_t heap_n, heap_cap;
    long seq;
    double pending_wake; /* earliest wake-up pushed and not yet fired, or +inf */
    double stored_bytes, stored_integral, stored_since;
    lh_repl_result res;
};

/* ---------------- heap ---------------- */

static int ev_before(const sim_event *a, const sim_event *b)
{
    if (a->t != b->t) return a->t < b->t;
    if (a->kind != b->kind) return a->kind < b->kind;
    return a->seq < b->seq;
}

static lh_status heap_push(lh_repl_sim *s, double t, int kind, int node, int model)
{
    if (s->heap_n == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
        sim_event *h = realloc(s->heap, cap * sizeof *h);
        if (!h) return lh_fail(LH_ERR_NOMEM, "serve-sim: out of memory for %zu events", cap);
        s->heap = h, s->heap_cap = cap;
    }
    sim_event e = {t, kind, node, model, s->seq++};
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!ev_before(&e, &s->heap[up])) break;
        s->heap[i] = s->heap[up];
        i = up;
    }
    s->heap[i] = e;
    return LH_OK;
}

static sim_event heap_pop(lh_repl_sim *s)
{
    sim_event top = s->heap[0], last = s->heap[--s->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->heap_n) break;
        if (c + 1 < s->heap_n && ev_before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!ev_before(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->heap_n) s->heap[i] = last;
    return top;
}

/* ---------------- accounting ---------------- */

static void advance_clock(lh_repl_sim *s, double t)
{
    if (t > s->stored_since) {
        s->stored_integral += s->stored_bytes * (t - s->stored_since);
        s->stored_since = t;
    }
    s->now = t;
}

static size_t slot(const lh_repl_sim *s, int node, int model)
{
    return (size_t)node * s->M + model;
}

/* ---------------- what a policy reads ---------------- */

double lh_repl_sim_now(const lh_repl_sim *s)
{
    return s->now;
}
int lh_repl_sim_nodes(const lh_repl_sim *s)
{
    return s->N;
}
int lh_repl_sim_models(const lh_repl_sim *s)
{
    return s->M;
}
const lh_repl_node *lh_repl_sim_node(const lh_repl_sim *s, int node)
{
    return &s->nodes->nodes[node];
}
const lh_repl_model *lh_repl_sim_model(const lh_repl_sim *s, int model)
{
    return &s->trace->models[model];
}
const lh_repl_request *lh_repl_sim_request(const lh_repl_sim *s, long index)
{
    return index >= 0 && (size_t)index < s->trace->n_requests ? &s->trace->requests[index] : NULL;
}
int lh_repl_sim_copy_state(const lh_repl_sim *s, int node, int model)
{
    return s->copy[slot(s, node, model)];
}
int lh_repl_sim_serving(const lh_repl_sim *s, int node)
{
    return s->serving[node];
}
int lh_repl_sim_fetching(const lh_repl_sim *s, int node)
{
    return s->fetching[node];
}
double lh_repl_sim_free_disk(const lh_repl_sim *s, int node)
{
    return s->nodes->nodes[node].disk_bytes - s->used_disk[node];
}
double lh_repl_sim_last_used(const lh_repl_sim *s, int node, int model)
{
    return s->last_used[slot(s, node, model)];
}
int lh_repl_sim_holders(const lh_repl_sim *s, int model)
{
    return s->holders[model];
}
int lh_repl_sim_pending(const lh_repl_sim *s, int model)
{
    return s->pending[model];
}
long lh_repl_sim_queued(const lh_repl_sim *s, int model)
{
    return (long)(s->qtail[model] - s->qhead[model]);
}

int lh_repl_sim_free_holders(const lh_repl_sim *s, int model)
{
    int k = 0;
    for (int n = 0; n < s->N; n++)
        k += s->serving[n] < 0 && s->copy[slot(s, n, model)] == 2;
    return k;
}

/* ---------------- what a policy does ---------------- */

static lh_status check_ids(const lh_repl_sim *s, const char *what, int node, int model)
{
    if (node < 0 || node >= s->N || model < 0 || model >= s->M)
        return lh_fail(LH_ERR_INVALID_ARG,
                       "serve-sim: %s: node %d / model %d out of range (%d nodes, %d models)", what, node,
                       model, s->N, s->M);
    return LH_OK;
}

static lh_status need_room(const lh_repl_sim *s, const char *what, int node, int model)
{
    double bytes = s->trace->models[model].bytes;
    if (bytes > lh_repl_sim_free_disk(s, node))
        return lh_fail(LH_ERR_CAPACITY, "serve-sim: %s: node %s has %.0f free bytes, model %s needs %.0f",
                       what, s->nodes->nodes[node].id, lh_repl_sim_free_disk(s, node),
                       s->trace->models[model].id, bytes);
    return LH_OK;
}

lh_status lh_repl_sim_place(lh_repl_sim *s, int node, int model)
{
    lh_status st = check_ids(s, "place", node, model);
    if (st) return st;
    if (!s->in_init) return lh_fail(LH_ERR_INVALID_ARG, "serve-sim: place is only allowed at initialisation");
    if (s->copy[slot(s, node, model)])
        return lh_fail(LH_ERR_INVALID_ARG, "serve-sim: place: node %s already holds model %s",
                       s->nodes->nodes[node].id, s->trace->models[model].id);
    if ((st = need_room(s, "place", node, model))) return st;
    s->copy[slot(s, node, model)] = 2;
    s->last_used[slot(s, node, model)] = 0;
    s->used_disk[node] += s->trace->models[model].bytes;
    s->stored_bytes += s->trace->models[model].bytes;
    s->holders[model]++;
    s->res.initial_copies++;
    return LH_OK;
}

lh_status lh_repl_sim_fetch(lh_repl_sim *s, int node, int model)
{
    lh_status st = check_ids(s, "fetch", node, model);
    if (st) return st;
    if (s->copy[slot(s, node, model)])
        return lh_fail(LH_ERR_INVALID_ARG, "serve-sim: fetch: node %s already has model %s",
                       s->nodes->nodes[node].id, s->trace->models[model].id);
    if (s->fetching[node] >= 0)
        return lh_fail(LH_ERR_INVALID_ARG, "serve-sim: fetch: node %s is already downloading model %s",
                       s->nodes->nodes[node].id, s->trace->models[s->fetching[node]].id);
    if ((st = need_room(s, "fetch", node, model))) return st;
    double bytes = s->trace->models[model].bytes;
    double secs = bytes * 8.0 / (s->nodes->nodes[node].download_gbps * 1e9);
    if ((st = heap_push(s, s->now + secs, LH_REPL_EV_DOWNLOADED, node, model))) return st;
    s->copy[slot(s, node, model)] = 1;
    s->fetching[node] = model;
    s->used_disk[node] += bytes;
    s->stored_bytes += bytes;
    s->pending[model]++;
    s->res.downloads++;
    s->res.download_s += secs;
    s->res.bytes_moved += bytes;
    return LH_OK;
}

lh_status lh_repl_sim_drop(lh_repl_sim *s, int node, int model)
{
    lh_status st = check_ids(s, "drop", node, model);
    if (st) return st;
    if (s->copy[slot(s, node, model)] != 2)
        return lh_fail(LH_ERR_INVALID_ARG, "serve-sim: drop: node %s holds no complete copy of model %s",
                       s->nodes->nodes[node].id, s->trace->models[model].id);
    if (s->serving[node] == model)
        return lh_fail(LH_ERR_INVALID_ARG, "serve-sim: drop: node %s is serving model %s",
                       s->nodes->nodes[node].id, s->trace->models[model].id);
    double bytes = s->trace->models[model].bytes;
    s->copy[slot(s, node, model)] = 0;
    s->used_disk[node] -= bytes;
    if (s->used_disk[node] < 0) s->used_disk[node] = 0;
    s->stored_bytes -= bytes;
    s->holders[model]--;
    s->res.drops++;
    return LH_OK;
}

lh_status lh_repl_sim_wake_at(lh_repl_sim *s, double t)
{
    if (!(t > s->now) || !isfinite(t))
        return lh_fail(LH_ERR_INVALID_ARG, "serve-sim: wake_at(%g) is not after now (%g)", t, s->now);
    if (t >= s->pending_wake)
        return LH_OK; /* an earlier wake-up will come first and the policy re-asks then */
    s->pending_wake = t;
    return heap_push(s, t, LH_REPL_EV_WAKE, -1, -1);
}

/* ---------------- dispatch ---------------- */

static lh_status start_request(lh_repl_sim *s, int node, size_t req, double *waits, long *n_waits)
{
    const lh_repl_request *r = &s->trace->requests[req];
    lh_status st = heap_push(s, s->now + r->duration_s, LH_REPL_EV_COMPLETE, node, r->model);
    if (st) return st;
    s->serving[node] = r->model;
    s->last_used[slot(s, node, r->model)] = s->now;
    waits[(*n_waits)++] = s->now - r->t;
    s->res.served++;
    return LH_OK;
}

/* A free node takes the earliest-arrived queued request among the models it holds. */
static lh_status node_takes_work(lh_repl_sim *s, int node, double *waits, long *n_waits)
{
    if (s->serving[node] >= 0) return LH_OK;
    size_t best = (size_t)-1;
    int best_model = -1;
    for (int m = 0; m < s->M; m++) {
        if (s->qhead[m] == s->qtail[m] || s->copy[slot(s, node, m)] != 2) continue;
        size_t req = s->qbuf[s->qhead[m]];
        if (best == (size_t)-1 || req < best) best = req, best_model = m;
    }
    if (best_model < 0) return LH_OK;
    s->qhead[best_model]++;
    return start_request(s, node, best, waits, n_waits);
}

/* ---------------- run ---------------- */

static void sim_free(lh_repl_sim *s)
{
    free(s->copy), free(s->last_used), free(s->used_disk), free(s->serving), free(s->fetching);
    free(s->holders), free(s->pending), free(s->qoff), free(s->qhead), free(s->qtail), free(s->qbuf);
    free(s->heap);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double nearest_rank(const double *sorted, long n, double q)
{
    if (n <= 0) return 0;
    long k = (long)ceil(q * (double)n);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return sorted[k - 1];
}

lh_status lh_repl_simulate(const lh_repl_trace *trace, const lh_repl_nodes *nodes,
                           const lh_repl_policy *policy, const lh_repl_policy_params *params,
                           lh_repl_result *out)
{
    memset(out, 0, sizeof *out);
    if (!trace || !nodes || !policy || !params)
        return lh_fail(LH_ERR_INVALID_ARG, "serve-sim: trace, nodes, policy and params are required");
    if (trace->n_models < 1 || nodes->n_nodes < 1)
        return lh_fail(LH_ERR_INVALID_ARG, "serve-sim: need at least one model and one node (got %d and %d)",
                       trace->n_models, nodes->n_nodes);
    if ((size_t)trace->n_models * (size_t)nodes->n_nodes > LH_REPL_MAX_SLOTS)
        return lh_fail(LH_ERR_CAPACITY, "serve-sim: %d models x %d nodes exceeds %zu copy slots",
                       trace->n_models, nodes->n_nodes, LH_REPL_MAX_SLOTS);
    for (size_t i = 0; i < trace->n_requests; i++) {
        const lh_repl_request *r = &trace->requests[i];
        if (r->model < 0 || r->model >= trace->n_models || !(r->duration_s > 0) || !isfinite(r->duration_s) ||
            !(r->t >= 0) || !isfinite(r->t) || (i > 0 && r->t < trace->requests[i - 1].t))
            return lh_fail(
                LH_ERR_INVALID_ARG,
                "serve-sim: request %zu is invalid (model %d of %d, t %g, duration %g; times must not "
                "decrease)",
                i, r->model, trace->n_models, r->t, r->duration_s);
    }
    lh_repl_sim s;
    memset(&s, 0, sizeof s);
    s.trace = trace, s.nodes = nodes, s.N = nodes->n_nodes, s.M = trace->n_models;
    s.pending_wake = INFINITY;
    size_t NM = (size_t)s.N * s.M, R = trace->n_requests;
    s.copy = calloc(NM, 1);
    s.last_used = calloc(NM, sizeof *s.last_used);
    s.used_disk = calloc((size_t)s.N, sizeof *s.used_disk);
    s.serving = malloc((size_t)s.N * sizeof *s.serving);
    s.fetching = malloc((size_t)s.N * sizeof *s.fetching);
    s.holders = calloc((size_t)s.M, sizeof *s.holders);
    s.pending = calloc((size_t)s.M, sizeof *s.pending);
    s.qoff = calloc((size_t)s.M + 1, sizeof *s.qoff);
    s.qhead = calloc((size_t)s.M, sizeof *s.qhead);
    s.qtail = calloc((size_t)s.M, sizeof *s.qtail);
    s.qbuf = malloc((R ? R : 1) * sizeof *s.qbuf);
    double *waits = malloc((R ? R : 1) * sizeof *waits);
    void *pstate = NULL;
    lh_status st = LH_OK;
    if (!s.copy || !s.last_used || !s.used_disk || !s.serving || !s.fetching || !s.holders || !s.pending ||
        !s.qoff || !s.qhead || !s.qtail || !s.qbuf || !waits) {
        st = lh_fail(LH_ERR_NOMEM, "serve-sim: out of memory for %d nodes x %d models, %zu requests", s.N,
                     s.M, R);
        goto done;
    }
    for (int n = 0; n < s.N; n++)
        s.serving[n] = s.fetching[n] = -1;
    for (size_t i = 0; i < R; i++)
        s.qoff[trace->requests[i].model + 1]++;
    for (int m = 0; m < s.M; m++)
        s.qoff[m + 1] += s.qoff[m];
    for (int m = 0; m < s.M; m++)
        s.qhead[m] = s.qtail[m] = s.qoff[m];
    long n_waits = 0;

    if (policy->create && (st = policy->create(&s, params, &pstate))) goto done;
    s.in_init = 1;
    lh_repl_event ev = {LH_REPL_EV_INIT, 0, -1, -1, -1};
    st = policy->react(pstate, &s, &ev);
    s.in_init = 0;
    if (st) goto done;

    size_t next = 0;
    long finished = 0;
    while (finished < (long)R) {
        /* Next event: the heap top or the next arrival, whichever comes first in (t, kind) order. */
        int take_arrival = 0;
        if (next < R) {
            if (s.heap_n == 0)
                take_arrival = 1;
            else {
                const sim_event *h = &s.heap[0];
                double ta = trace->requests[next].t;
                take_arrival = ta < h->t || (ta == h->t && LH_REPL_EV_ARRIVAL < h->kind);
            }
        } else if (s.heap_n == 0) {
            break; /* nothing can happen any more: whatever is queued stays unserved */
        }
        s.res.events++;
        if (take_arrival) {
            size_t req = next++;
            const lh_repl_request *r = &trace->requests[req];
            advance_clock(&s, r->t);
            int node = -1;
            for (int n = 0; n < s.N && node < 0; n++)
                if (s.serving[n] < 0 && s.copy[slot(&s, n, r->model)] == 2) node = n;
            if (node >= 0) {
                s.res.hits++;
                if ((st = start_request(&s, node, req, waits, &n_waits))) goto done;
            } else {
                s.qbuf[s.qtail[r->model]++] = req;
            }
            ev = (lh_repl_event){LH_REPL_EV_ARRIVAL, s.now, node, r->model, (long)req};
        } else {
            sim_event e = heap_pop(&s);
            advance_clock(&s, e.t);
            ev = (lh_repl_event){(lh_repl_event_kind)e.kind, s.now, e.node, e.model, -1};
            if (e.kind == LH_REPL_EV_COMPLETE) {
                s.serving[e.node] = -1;
                s.last_used[slot(&s, e.node, e.model)] = s.now;
                finished++;
                s.res.end_s = s.now;
                if ((st = node_takes_work(&s, e.node, waits, &n_waits))) goto done;
            } else if (e.kind == LH_REPL_EV_DOWNLOADED) {
                s.copy[slot(&s, e.node, e.model)] = 2;
                s.last_used[slot(&s, e.node, e.model)] = s.now;
                s.fetching[e.node] = -1;
                s.pending[e.model]--;
                s.holders[e.model]++;
                if ((st = node_takes_work(&s, e.node, waits, &n_waits))) goto done;
            } else {
                if (e.t == s.pending_wake) s.pending_wake = INFINITY;
            }
        }
        if (finished < (long)R && (st = policy->react(pstate, &s, &ev))) goto done;
    }
    s.res.requests = (long)R;
    s.res.unserved = (long)R - s.res.served;
    s.res.hit_rate = R ? (double)s.res.hits / (double)R : 0;
    if (n_waits > 0) {
        double sum = 0;
        for (long i = 0; i < n_waits; i++)
            sum += waits[i];
        s.res.wait_mean_s = sum / (double)n_waits;
        qsort(waits, (size_t)n_waits, sizeof *waits, cmp_double);
        s.res.wait_p50_s = nearest_rank(waits, n_waits, 0.50);
        s.res.wait_p99_s = nearest_rank(waits, n_waits, 0.99);
    }
    if (s.res.end_s < s.now && s.res.unserved) s.res.end_s = s.now;
    advance_clock(&s, s.res.end_s);
    s.res.mean_stored_bytes = s.res.end_s > 0 ? s.stored_integral / s.res.end_s : s.stored_bytes;
    *out = s.res;
done:
    if (policy->destroy) policy->destroy(pstate);
    free(waits);
    sim_free(&s);
    return st;
}
