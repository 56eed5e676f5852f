/*
 * Reading, writing and generating the replication simulator's inputs.
 *
 * The readers are as strict as the other longhaul formats (unknown keys,
 * duplicate ids, out-of-range numbers and decreasing arrival times are errors
 * naming the JSON path) because a trace that silently loses requests would
 * make a policy look better than it is.  Model ids in requests are resolved
 * through a sorted index, so a 10-million-request trace parses in
 * O(R log M).  The synthetic generator exists so policies can be compared on
 * popularity shifts without shipping large trace files; it is deterministic
 * for its options (splitmix64, no libc rand).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_io.h"
#include "lh_json.h"
#include "lh_serve_sim.h"

#define TRACE_FORMAT "longhaul-serve-trace"
#define NODES_FORMAT "longhaul-serve-nodes"

typedef struct id_index {
    const char *id;
    int index;
} id_index;

static int cmp_id(const void *a, const void *b)
{
    return strcmp(((const id_index *)a)->id, ((const id_index *)b)->id);
}

/* Sorted index of `n` ids found at `base + i * stride`; *dup gets a duplicated position or -1. */
static id_index *build_index(const char *base, size_t stride, int n, int *dup)
{
    id_index *ix = malloc((size_t)(n ? n : 1) * sizeof *ix);
    *dup = -1;
    if (!ix) return NULL;
    for (int i = 0; i < n; i++)
        ix[i] = (id_index){base + (size_t)i * stride, i};
    qsort(ix, (size_t)n, sizeof *ix, cmp_id);
    for (int i = 1; i < n; i++)
        if (strcmp(ix[i].id, ix[i - 1].id) == 0) {
            *dup = ix[i].index > ix[i - 1].index ? ix[i].index : ix[i - 1].index;
            break;
        }
    return ix;
}

void lh_repl_trace_free(lh_repl_trace *t)
{
    if (!t) return;
    free(t->models);
    free(t->requests);
    free(t);
}

void lh_repl_nodes_free(lh_repl_nodes *n)
{
    if (!n) return;
    free(n->nodes);
    free(n);
}

static lh_status read_models(lh_jpath *p, json_object *root, lh_repl_trace *t)
{
    json_object *arr;
    size_t n;
    lh_status st = lh_json_get_array(p, root, "models", &arr, &n);
    if (st) return st;
    if (n < 1) return lh_json_fail(p, "models", "needs at least one model");
    if (n > LH_REPL_MAX_MODELS) return lh_json_fail(p, "models", "more than %d models", LH_REPL_MAX_MODELS);
    t->models = calloc(n, sizeof *t->models);
    if (!t->models) return lh_fail(LH_ERR_NOMEM, "%s: out of memory", p->file);
    t->n_models = (int)n;
    static const char *const keys[] = {"id", "bytes", NULL};
    size_t saved = lh_jpath_push_key(p, "models");
    for (size_t i = 0; i < n && !st; i++) {
        size_t saved_i = lh_jpath_push_index(p, i);
        json_object *m = json_object_array_get_idx(arr, i);
        st = lh_json_expect_object(p, m);
        if (!st) st = lh_json_check_keys(p, m, keys);
        if (!st) st = lh_json_get_string(p, m, "id", t->models[i].id, sizeof t->models[i].id);
        if (!st && !t->models[i].id[0]) st = lh_json_fail(p, "id", "must not be empty");
        if (!st) st = lh_json_get_double(p, m, "bytes", 1.0, 1e18, &t->models[i].bytes);
        lh_jpath_pop(p, saved_i);
    }
    lh_jpath_pop(p, saved);
    return st;
}

static lh_status read_requests(lh_jpath *p, json_object *root, lh_repl_trace *t)
{
    json_object *arr;
    size_t n;
    lh_status st = lh_json_get_array(p, root, "requests", &arr, &n);
    if (st) return st;
    if (n > LH_REPL_MAX_REQUESTS)
        return lh_json_fail(p, "requests", "more than %d requests", LH_REPL_MAX_REQUESTS);
    int dup;
    id_index *ix = build_index(t->models[0].id, sizeof t->models[0], t->n_models, &dup);
    if (!ix) return lh_fail(LH_ERR_NOMEM, "%s: out of memory", p->file);
    if (dup >= 0) {
        size_t saved = lh_jpath_push_key(p, "models");
        lh_jpath_push_index(p, (size_t)dup);
        st = lh_json_fail(p, "id", "model id \"%s\" appears twice", t->models[dup].id);
        lh_jpath_pop(p, saved);
        free(ix);
        return st;
    }
    t->requests = calloc(n ? n : 1, sizeof *t->requests);
    if (!t->requests) {
        free(ix);
        return lh_fail(LH_ERR_NOMEM, "%s: out of memory for %zu requests", p->file, n);
    }
    t->n_requests = n;
    static const char *const keys[] = {"t", "model", "duration_s", NULL};
    size_t saved = lh_jpath_push_key(p, "requests");
    for (size_t i = 0; i < n && !st; i++) {
        size_t saved_i = lh_jpath_push_index(p, i);
        json_object *r = json_object_array_get_idx(arr, i);
        lh_repl_request *q = &t->requests[i];
        char model[LH_REPL_ID_MAX];
        st = lh_json_expect_object(p, r);
        if (!st) st = lh_json_check_keys(p, r, keys);
        if (!st) st = lh_json_get_double(p, r, "t", 0.0, 1e12, &q->t);
        if (!st && i > 0 && q->t < t->requests[i - 1].t)
            st = lh_json_fail(p, "t",
                              "arrival %g is before the previous request's %g (sort the trace by time)", q->t,
                              t->requests[i - 1].t);
        if (!st) st = lh_json_get_string(p, r, "model", model, sizeof model);
        if (!st) {
            id_index key = {model, -1};
            id_index *hit = bsearch(&key, ix, (size_t)t->n_models, sizeof *ix, cmp_id);
            if (!hit)
                st = lh_json_fail(p, "model", "unknown model \"%s\" (not in $.models)", model);
            else
                q->model = hit->index;
        }
        if (!st) st = lh_json_get_double(p, r, "duration_s", 1e-9, 1e9, &q->duration_s);
        lh_jpath_pop(p, saved_i);
    }
    lh_jpath_pop(p, saved);
    free(ix);
    return st;
}

lh_status lh_repl_trace_parse(const char *name, const char *text, size_t len, lh_repl_trace **out)
{
    *out = NULL;
    json_object *root;
    lh_status st = lh_json_parse(name, text, len, &root);
    if (st) return st;
    lh_jpath p;
    lh_jpath_init(&p, name);
    int64_t version;
    static const char *const keys[] = {"format", "version", "models", "requests", NULL};
    lh_repl_trace *t = calloc(1, sizeof *t);
    if (!t) st = lh_fail(LH_ERR_NOMEM, "%s: out of memory", name);
    if (!st) st = lh_json_check_header(&p, root, TRACE_FORMAT, 1, &version);
    if (!st) st = lh_json_check_keys(&p, root, keys);
    if (!st) st = read_models(&p, root, t);
    if (!st) st = read_requests(&p, root, t);
    json_object_put(root);
    if (st) {
        lh_repl_trace_free(t);
        return st;
    }
    *out = t;
    return LH_OK;
}

lh_status lh_repl_nodes_parse(const char *name, const char *text, size_t len, lh_repl_nodes **out)
{
    *out = NULL;
    json_object *root;
    lh_status st = lh_json_parse(name, text, len, &root);
    if (st) return st;
    lh_jpath p;
    lh_jpath_init(&p, name);
    int64_t version;
    static const char *const keys[] = {"format", "version", "nodes", NULL};
    static const char *const node_keys[] = {"id", "disk_bytes", "download_gbps", NULL};
    lh_repl_nodes *ns = calloc(1, sizeof *ns);
    json_object *arr = NULL;
    size_t n = 0;
    if (!ns) st = lh_fail(LH_ERR_NOMEM, "%s: out of memory", name);
    if (!st) st = lh_json_check_header(&p, root, NODES_FORMAT, 1, &version);
    if (!st) st = lh_json_check_keys(&p, root, keys);
    if (!st) st = lh_json_get_array(&p, root, "nodes", &arr, &n);
    if (!st && n < 1) st = lh_json_fail(&p, "nodes", "needs at least one node");
    if (!st && n > LH_REPL_MAX_NODES) st = lh_json_fail(&p, "nodes", "more than %d nodes", LH_REPL_MAX_NODES);
    if (!st && !(ns->nodes = calloc(n, sizeof *ns->nodes)))
        st = lh_fail(LH_ERR_NOMEM, "%s: out of memory", name);
    if (!st) ns->n_nodes = (int)n;
    size_t saved = lh_jpath_push_key(&p, "nodes");
    for (size_t i = 0; i < n && !st; i++) {
        size_t saved_i = lh_jpath_push_index(&p, i);
        json_object *o = json_object_array_get_idx(arr, i);
        lh_repl_node *nd = &ns->nodes[i];
        st = lh_json_expect_object(&p, o);
        if (!st) st = lh_json_check_keys(&p, o, node_keys);
        if (!st) st = lh_json_get_string(&p, o, "id", nd->id, sizeof nd->id);
        if (!st && !nd->id[0]) st = lh_json_fail(&p, "id", "must not be empty");
        if (!st) st = lh_json_get_double(&p, o, "disk_bytes", 1.0, 1e18, &nd->disk_bytes);
        if (!st) st = lh_json_get_double(&p, o, "download_gbps", 1e-6, 1e6, &nd->download_gbps);
        lh_jpath_pop(&p, saved_i);
    }
    if (!st) {
        int dup;
        id_index *ix = build_index(ns->nodes[0].id, sizeof ns->nodes[0], ns->n_nodes, &dup);
        if (!ix)
            st = lh_fail(LH_ERR_NOMEM, "%s: out of memory", name);
        else if (dup >= 0) {
            lh_jpath_push_index(&p, (size_t)dup);
            st = lh_json_fail(&p, "id", "node id \"%s\" appears twice", ns->nodes[dup].id);
        }
        free(ix);
    }
    lh_jpath_pop(&p, saved);
    json_object_put(root);
    if (st) {
        lh_repl_nodes_free(ns);
        return st;
    }
    *out = ns;
    return LH_OK;
}

lh_status lh_repl_trace_load(const char *path, lh_repl_trace **out)
{
    char *text;
    size_t len;
    lh_status st = lh_read_file(path, (size_t)1 << 30, &text, &len);
    if (st) return st;
    st = lh_repl_trace_parse(path, text, len, out);
    free(text);
    return st;
}

lh_status lh_repl_nodes_load(const char *path, lh_repl_nodes **out)
{
    char *text;
    size_t len;
    lh_status st = lh_read_file(path, (size_t)256 << 20, &text, &len);
    if (st) return st;
    st = lh_repl_nodes_parse(path, text, len, out);
    free(text);
    return st;
}

static json_object *header(const char *format)
{
    json_object *root = json_object_new_object();
    json_object_object_add(root, "format", json_object_new_string(format));
    json_object_object_add(root, "version", json_object_new_int(1));
    return root;
}

lh_status lh_repl_trace_save(const lh_repl_trace *t, const char *path)
{
    json_object *root = header(TRACE_FORMAT), *models = json_object_new_array(),
                *reqs = json_object_new_array();
    for (int m = 0; m < t->n_models; m++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(t->models[m].id));
        json_object_object_add(o, "bytes", json_object_new_double(t->models[m].bytes));
        json_object_array_add(models, o);
    }
    for (size_t i = 0; i < t->n_requests; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "t", json_object_new_double(t->requests[i].t));
        json_object_object_add(o, "model", json_object_new_string(t->models[t->requests[i].model].id));
        json_object_object_add(o, "duration_s", json_object_new_double(t->requests[i].duration_s));
        json_object_array_add(reqs, o);
    }
    json_object_object_add(root, "models", models);
    json_object_object_add(root, "requests", reqs);
    lh_status st = lh_json_write_file(path, root);
    json_object_put(root);
    return st;
}

lh_status lh_repl_nodes_save(const lh_repl_nodes *n, const char *path)
{
    json_object *root = header(NODES_FORMAT), *nodes = json_object_new_array();
    for (int i = 0; i < n->n_nodes; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_string(n->nodes[i].id));
        json_object_object_add(o, "disk_bytes", json_object_new_double(n->nodes[i].disk_bytes));
        json_object_object_add(o, "download_gbps", json_object_new_double(n->nodes[i].download_gbps));
        json_object_array_add(nodes, o);
    }
    json_object_object_add(root, "nodes", nodes);
    lh_status st = lh_json_write_file(path, root);
    json_object_put(root);
    return st;
}

/* ---------------- synthetic inputs ---------------- */

typedef struct serve_rng {
    uint64_t s;
} serve_rng;

static uint64_t rng_next(serve_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1]: never 0, so -log(u) is finite. */
static double rng_unit(serve_rng *r)
{
    return ((double)(rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
}

void lh_repl_synth_defaults(lh_repl_synth_options *o)
{
    o->seed = 1;
    o->duration_s = 3600;
    o->rate_per_s = 2.0;
    o->n_models = 20;
    o->zipf_s = 1.1;
    o->shift_every_s = 900;
    o->mean_service_s = 4.0;
    o->model_bytes_min = 2e9;
    o->model_bytes_max = 16e9;
}

lh_status lh_repl_trace_synthetic(const lh_repl_synth_options *o, lh_repl_trace **out)
{
    *out = NULL;
    if (!(o->duration_s > 0) || !(o->rate_per_s > 0) || o->n_models < 1 || o->n_models > LH_REPL_MAX_MODELS ||
        !(o->zipf_s >= 0) || !(o->mean_service_s > 0) || !(o->model_bytes_min > 0) ||
        !(o->model_bytes_max >= o->model_bytes_min))
        return lh_fail(
            LH_ERR_INVALID_ARG,
            "synthetic trace: need duration > 0, rate > 0, 1..%d models, zipf >= 0, service > 0 and "
            "0 < min bytes <= max bytes",
            LH_REPL_MAX_MODELS);
    double expected = o->duration_s * o->rate_per_s;
    if (expected > LH_REPL_MAX_REQUESTS / 2)
        return lh_fail(LH_ERR_INVALID_ARG, "synthetic trace: %.0f expected requests is more than %d",
                       expected, LH_REPL_MAX_REQUESTS / 2);
    int M = o->n_models;
    lh_repl_trace *t = calloc(1, sizeof *t);
    double *cdf = malloc((size_t)M * sizeof *cdf);
    int *rank_to_model = malloc((size_t)M * sizeof *rank_to_model);
    size_t cap = (size_t)(expected + 10.0 * sqrt(expected) + 16);
    if (t) t->models = calloc((size_t)M, sizeof *t->models);
    if (t) t->requests = malloc(cap * sizeof *t->requests);
    if (!t || !cdf || !rank_to_model || !t->models || !t->requests) {
        lh_repl_trace_free(t);
        free(cdf), free(rank_to_model);
        return lh_fail(LH_ERR_NOMEM, "synthetic trace: out of memory");
    }
    serve_rng rng = {o->seed};
    t->n_models = M;
    for (int m = 0; m < M; m++) {
        snprintf(t->models[m].id, sizeof t->models[m].id, "m%d", m);
        t->models[m].bytes =
            floor(o->model_bytes_min + (o->model_bytes_max - o->model_bytes_min) * rng_unit(&rng));
        rank_to_model[m] = m;
    }
    double total = 0;
    for (int k = 0; k < M; k++)
        cdf[k] = (total += 1.0 / pow(k + 1.0, o->zipf_s));
    for (int k = 0; k < M; k++)
        cdf[k] /= total;
    double now = 0, next_shift = o->shift_every_s > 0 ? o->shift_every_s : INFINITY;
    lh_status st = LH_OK;
    for (;;) {
        now += -log(rng_unit(&rng)) / o->rate_per_s;
        if (now >= o->duration_s) break;
        while (now >= next_shift) { /* a popularity shift: reshuffle which model has which rank */
            for (int i = M - 1; i > 0; i--) {
                int j = (int)(rng_next(&rng) % (uint64_t)(i + 1));
                int x = rank_to_model[i];
                rank_to_model[i] = rank_to_model[j], rank_to_model[j] = x;
            }
            next_shift += o->shift_every_s;
        }
        if (t->n_requests == cap) { /* a rare Poisson excess: grow */
            lh_repl_request *more = realloc(t->requests, 2 * cap * sizeof *more);
            if (!more) {
                st = lh_fail(LH_ERR_NOMEM, "synthetic trace: out of memory for %zu requests", 2 * cap);
                break;
            }
            t->requests = more, cap *= 2;
        }
        double u = rng_unit(&rng);
        int k = 0;
        while (k < M - 1 && cdf[k] < u)
            k++;
        double service = -log(rng_unit(&rng)) * o->mean_service_s;
        t->requests[t->n_requests++] =
            (lh_repl_request){now, rank_to_model[k], service < 0.05 ? 0.05 : service};
    }
    free(cdf), free(rank_to_model);
    if (st) {
        lh_repl_trace_free(t);
        return st;
    }
    *out = t;
    return LH_OK;
}

lh_status lh_repl_nodes_synthetic(int n, uint64_t seed, lh_repl_nodes **out)
{
    *out = NULL;
    if (n < 1 || n > LH_REPL_MAX_NODES)
        return lh_fail(LH_ERR_INVALID_ARG, "synthetic nodes: count must be 1..%d, got %d", LH_REPL_MAX_NODES,
                       n);
    static const double gbps[] = {0.1, 0.5, 1.0, 2.5};
    lh_repl_nodes *ns = calloc(1, sizeof *ns);
    if (ns) ns->nodes = calloc((size_t)n, sizeof *ns->nodes);
    if (!ns || !ns->nodes) {
        lh_repl_nodes_free(ns);
        return lh_fail(LH_ERR_NOMEM, "synthetic nodes: out of memory");
    }
    serve_rng rng = {seed ^ 0x5eedull};
    ns->n_nodes = n;
    for (int i = 0; i < n; i++) {
        snprintf(ns->nodes[i].id, sizeof ns->nodes[i].id, "node%d", i);
        ns->nodes[i].disk_bytes = 40e9 + 10e9 * (double)(rng_next(&rng) % 9); /* 40..120 GB */
        ns->nodes[i].download_gbps = gbps[rng_next(&rng) % 4];
    }
    *out = ns;
    return LH_OK;
}
