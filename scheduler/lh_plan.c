/*
 * Plans: creation, validation, reading and writing.
 *
 * The file lists layer ranges per stage and, per replica, the device of each
 * stage ("replicas": [[d00, d01, ...], ...]), which is also the device matching
 * between consecutive stages: replica r's stage s sends to replica r's s+1.
 */
#include "lh_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_io.h"
#include "lh_json.h"

#define PLAN_FORMAT "longhaul-plan"
#define PLAN_VERSION 1

void lh_plan_free(lh_plan *p)
{
    if (!p) return;
    free(p->first_layer);
    free(p->num_layers);
    free(p->device);
    free(p);
}

lh_status lh_plan_create(int stages, int replicas, int layers, lh_plan **out)
{
    *out = NULL;
    if (stages < 1 || replicas < 1 || layers < stages)
        return lh_fail(LH_ERR_INVALID_ARG, "plan: need stages >= 1, replicas >= 1 and layers >= stages (got %d, %d, %d)",
                       stages, replicas, layers);
    if ((long long)stages * replicas > 100000000LL)
        return lh_fail(LH_ERR_INVALID_ARG, "plan: %d x %d devices is too many", stages, replicas);
    lh_plan *p = calloc(1, sizeof *p);
    if (!p || !(p->first_layer = calloc((size_t)stages, sizeof(int))) ||
        !(p->num_layers = calloc((size_t)stages, sizeof(int))) ||
        !(p->device = calloc((size_t)stages * (size_t)replicas, sizeof(int)))) {
        lh_plan_free(p);
        return lh_fail(LH_ERR_NOMEM, "plan: out of memory");
    }
    p->stages = stages;
    p->replicas = replicas;
    p->layers = layers;
    p->cost_s = -1.0;
    int first = 0;
    for (int s = 0; s < stages; s++) {
        p->first_layer[s] = first;
        p->num_layers[s] = layers / stages + (s < layers % stages ? 1 : 0);
        first += p->num_layers[s];
    }
    /* Megatron's rank order: data-parallel ranks of a stage are adjacent. */
    for (int r = 0; r < replicas; r++)
        for (int s = 0; s < stages; s++) p->device[r * stages + s] = s * replicas + r;
    *out = p;
    return LH_OK;
}

lh_status lh_plan_clone(const lh_plan *p, lh_plan **out)
{
    lh_status st = lh_plan_create(p->stages, p->replicas, p->layers, out);
    if (st) return st;
    lh_plan *c = *out;
    memcpy(c->first_layer, p->first_layer, (size_t)p->stages * sizeof(int));
    memcpy(c->num_layers, p->num_layers, (size_t)p->stages * sizeof(int));
    memcpy(c->device, p->device, (size_t)p->stages * (size_t)p->replicas * sizeof(int));
    memcpy(c->strategy, p->strategy, sizeof c->strategy);
    memcpy(c->cost_model, p->cost_model, sizeof c->cost_model);
    c->cost_s = p->cost_s;
    return LH_OK;
}

static int compare_ints(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

lh_status lh_plan_validate(const lh_plan *p, const lh_topology *t)
{
    int first = 0;
    for (int s = 0; s < p->stages; s++) {
        if (p->num_layers[s] < 1) return lh_fail(LH_ERR_FORMAT, "plan: stage %d has no layers", s);
        if (p->first_layer[s] != first)
            return lh_fail(LH_ERR_FORMAT, "plan: stage %d starts at layer %d, expected %d (stages must be contiguous)",
                           s, p->first_layer[s], first);
        first += p->num_layers[s];
    }
    if (first != p->layers)
        return lh_fail(LH_ERR_FORMAT, "plan: stages cover %d layers but the model has %d", first, p->layers);
    size_t n = (size_t)p->stages * (size_t)p->replicas;
    int *sorted = malloc(n * sizeof *sorted);
    if (!sorted) return lh_fail(LH_ERR_NOMEM, "plan: out of memory");
    memcpy(sorted, p->device, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, compare_ints);
    lh_status st = LH_OK;
    for (size_t i = 0; i < n && !st; i++) {
        if (sorted[i] < 0) st = lh_fail(LH_ERR_FORMAT, "plan: device %d is negative", sorted[i]);
        else if (i > 0 && sorted[i] == sorted[i - 1])
            st = lh_fail(LH_ERR_FORMAT, "plan: device %d runs more than one stage", sorted[i]);
        else if (t && sorted[i] >= t->n_devices)
            st = lh_fail(LH_ERR_MISMATCH, "plan: device %d is not in the topology (%d devices)", sorted[i],
                         t->n_devices);
    }
    free(sorted);
    return st;
}

int lh_plan_find_device(const lh_plan *p, int device, int *replica, int *stage)
{
    for (int r = 0; r < p->replicas; r++)
        for (int s = 0; s < p->stages; s++)
            if (p->device[r * p->stages + s] == device) {
                if (replica) *replica = r;
                if (stage) *stage = s;
                return 1;
            }
    return 0;
}

static lh_status read_stages(lh_jpath *path, json_object *root, lh_plan *p)
{
    json_object *arr;
    size_t n;
    lh_status st = lh_json_get_array(path, root, "stages", &arr, &n);
    if (st) return st;
    if (n != (size_t)p->stages)
        return lh_json_fail(path, "stages", "has %zu entries but pipeline_stages is %d", n, p->stages);
    static const char *const keys[] = {"first_layer", "num_layers", NULL};
    size_t saved = lh_jpath_push_key(path, "stages");
    int expected_first = 0;
    for (size_t s = 0; s < n && !st; s++) {
        size_t saved_s = lh_jpath_push_index(path, s);
        json_object *o = json_object_array_get_idx(arr, s);
        int64_t first, count;
        st = lh_json_expect_object(path, o);
        if (!st) st = lh_json_check_keys(path, o, keys);
        if (!st) st = lh_json_get_int(path, o, "first_layer", 0, p->layers - 1, &first);
        if (!st) st = lh_json_get_int(path, o, "num_layers", 1, p->layers, &count);
        if (!st && first != expected_first)
            st = lh_json_fail(path, "first_layer", "is %lld but the previous stage ends at layer %d",
                              (long long)first, expected_first);
        if (!st && first + count > p->layers)
            st = lh_json_fail(path, "num_layers", "runs past the last layer (%lld + %lld > %d)", (long long)first,
                              (long long)count, p->layers);
        if (!st) {
            p->first_layer[s] = (int)first;
            p->num_layers[s] = (int)count;
            expected_first = (int)(first + count);
        }
        lh_jpath_pop(path, saved_s);
    }
    lh_jpath_pop(path, saved);
    if (!st && expected_first != p->layers)
        st = lh_json_fail(path, "stages", "cover layers [0, %d) but the model has %d layers", expected_first,
                          p->layers);
    return st;
}

static lh_status read_replicas(lh_jpath *path, json_object *root, lh_plan *p)
{
    json_object *arr;
    size_t n;
    lh_status st = lh_json_get_array(path, root, "replicas", &arr, &n);
    if (st) return st;
    if (n != (size_t)p->replicas)
        return lh_json_fail(path, "replicas", "has %zu entries but data_parallel is %d", n, p->replicas);
    size_t saved = lh_jpath_push_key(path, "replicas");
    for (size_t r = 0; r < n && !st; r++) {
        size_t saved_r = lh_jpath_push_index(path, r);
        json_object *row = json_object_array_get_idx(arr, r);
        if (!json_object_is_type(row, json_type_array))
            st = lh_json_fail(path, NULL, "expected an array of device ids, one per stage");
        else if (json_object_array_length(row) != (size_t)p->stages)
            st = lh_json_fail(path, NULL, "has %zu devices but pipeline_stages is %d", json_object_array_length(row),
                              p->stages);
        for (int s = 0; s < p->stages && !st; s++) {
            json_object *d = json_object_array_get_idx(row, (size_t)s);
            if (!json_object_is_type(d, json_type_int)) {
                size_t saved_s = lh_jpath_push_index(path, (size_t)s);
                st = lh_json_fail(path, NULL, "expected a device id (integer)");
                lh_jpath_pop(path, saved_s);
                break;
            }
            int64_t id = json_object_get_int64(d);
            if (id < 0 || id > 100000000) {
                size_t saved_s = lh_jpath_push_index(path, (size_t)s);
                st = lh_json_fail(path, NULL, "device id %lld is out of range", (long long)id);
                lh_jpath_pop(path, saved_s);
                break;
            }
            p->device[r * (size_t)p->stages + (size_t)s] = (int)id;
        }
        lh_jpath_pop(path, saved_r);
    }
    lh_jpath_pop(path, saved);
    return st;
}

lh_status lh_plan_parse(const char *name, const char *text, size_t len, lh_plan **out)
{
    *out = NULL;
    json_object *root;
    lh_status st = lh_json_parse(name, text, len, &root);
    if (st) return st;
    lh_jpath path;
    lh_jpath_init(&path, name);
    int64_t version, stages, replicas, layers;
    lh_plan *p = NULL;
    static const char *const keys[] = {"format",   "version",  "pipeline_stages", "data_parallel", "layers",
                                       "stages",   "replicas", "strategy",        "cost_model",    "cost_s",
                                       NULL};
    st = lh_json_check_header(&path, root, PLAN_FORMAT, PLAN_VERSION, &version);
    if (!st) st = lh_json_check_keys(&path, root, keys);
    if (!st) st = lh_json_get_int(&path, root, "pipeline_stages", 1, 100000, &stages);
    if (!st) st = lh_json_get_int(&path, root, "data_parallel", 1, 100000, &replicas);
    if (!st) st = lh_json_get_int(&path, root, "layers", 1, 100000, &layers);
    if (!st && layers < stages)
        st = lh_json_fail(&path, "layers", "%lld layers cannot fill %lld stages", (long long)layers,
                          (long long)stages);
    if (!st && stages * replicas > 10000000)
        st = lh_json_fail(&path, NULL, "%lld x %lld devices is too many", (long long)stages, (long long)replicas);
    if (!st) st = lh_plan_create((int)stages, (int)replicas, (int)layers, &p);
    if (!st) st = read_stages(&path, root, p);
    if (!st) st = read_replicas(&path, root, p);
    if (!st) st = lh_json_opt_string(&path, root, "strategy", p->strategy, sizeof p->strategy, NULL);
    if (!st) st = lh_json_opt_string(&path, root, "cost_model", p->cost_model, sizeof p->cost_model, NULL);
    if (!st) st = lh_json_opt_double(&path, root, "cost_s", 0.0, 1e15, &p->cost_s, NULL);
    if (!st) {
        st = lh_plan_validate(p, NULL);
        if (st) st = lh_fail_prefix(st, "%s", name);
    }
    json_object_put(root);
    if (st) {
        lh_plan_free(p);
        return st;
    }
    *out = p;
    return LH_OK;
}

lh_status lh_plan_load(const char *path, lh_plan **out)
{
    char *text;
    size_t len;
    *out = NULL;
    lh_status st = lh_read_file(path, (size_t)256 << 20, &text, &len);
    if (st) return st;
    st = lh_plan_parse(path, text, len, out);
    free(text);
    return st;
}

lh_status lh_plan_save(const lh_plan *p, const char *path)
{
    lh_status st = lh_plan_validate(p, NULL);
    if (st) return st;
    json_object *root = json_object_new_object();
    if (!root) return lh_fail(LH_ERR_NOMEM, "%s: out of memory", path);
    json_object_object_add(root, "format", json_object_new_string(PLAN_FORMAT));
    json_object_object_add(root, "version", json_object_new_int(PLAN_VERSION));
    json_object_object_add(root, "pipeline_stages", json_object_new_int(p->stages));
    json_object_object_add(root, "data_parallel", json_object_new_int(p->replicas));
    json_object_object_add(root, "layers", json_object_new_int(p->layers));
    json_object *stages = json_object_new_array();
    for (int s = 0; s < p->stages; s++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "first_layer", json_object_new_int(p->first_layer[s]));
        json_object_object_add(o, "num_layers", json_object_new_int(p->num_layers[s]));
        json_object_array_add(stages, o);
    }
    json_object_object_add(root, "stages", stages);
    json_object *replicas = json_object_new_array();
    for (int r = 0; r < p->replicas; r++) {
        json_object *row = json_object_new_array();
        for (int s = 0; s < p->stages; s++) json_object_array_add(row, json_object_new_int(lh_plan_device(p, r, s)));
        json_object_array_add(replicas, row);
    }
    json_object_object_add(root, "replicas", replicas);
    if (p->strategy[0]) json_object_object_add(root, "strategy", json_object_new_string(p->strategy));
    if (p->cost_model[0]) json_object_object_add(root, "cost_model", json_object_new_string(p->cost_model));
    if (p->cost_s >= 0) json_object_object_add(root, "cost_s", json_object_new_double(p->cost_s));
    st = lh_json_write_file(path, root);
    json_object_put(root);
    return st;
}
