/*
 * Topology: reading, writing, building and resolving links.
 *
 * Links resolve from the most specific entry: an explicit device pair, then
 * the pair of the devices' regions, then "default_link".  Validation proves
 * that every ordered pair of distinct devices resolves without visiting all
 * N^2 pairs: a region pair with a link (or a default) covers all its device
 * pairs at once, and only region pairs without one are counted pair by pair.
 */
#include "lh_topology.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_io.h"
#include "lh_json.h"

#define TOPOLOGY_FORMAT "longhaul-topology"
#define TOPOLOGY_VERSION 1

void lh_topology_free(lh_topology *t)
{
    if (!t) return;
    free(t->devices);
    free(t->regions);
    free(t->region_links);
    free(t->has_region_link);
    free(t->pair_links);
    free(t);
}

static void *copy_of(const void *src, size_t bytes, int *failed)
{
    if (!bytes) return NULL;
    void *dst = malloc(bytes);
    if (dst) memcpy(dst, src, bytes);
    else *failed = 1;
    return dst;
}

lh_status lh_topology_clone(const lh_topology *t, lh_topology **out)
{
    *out = NULL;
    lh_topology *c = calloc(1, sizeof *c);
    if (!c) return lh_fail(LH_ERR_NOMEM, "topology: out of memory");
    *c = *t;
    size_t R = (size_t)t->n_regions;
    int failed = 0;
    c->devices = copy_of(t->devices, (size_t)t->n_devices * sizeof *t->devices, &failed);
    c->regions = copy_of(t->regions, R * sizeof *t->regions, &failed);
    c->region_links = copy_of(t->region_links, R * R * sizeof *t->region_links, &failed);
    c->has_region_link = copy_of(t->has_region_link, R * R, &failed);
    c->pair_links = copy_of(t->pair_links, t->n_pair_links * sizeof *t->pair_links, &failed);
    if (failed) {
        lh_topology_free(c);
        return lh_fail(LH_ERR_NOMEM, "topology: out of memory");
    }
    *out = c;
    return LH_OK;
}

static void scale_link(lh_link *l, double s)
{
    l->latency_s *= s;
    l->bandwidth_bps /= s;
}

void lh_topology_scale_links(lh_topology *t, double time_scale)
{
    size_t R = (size_t)t->n_regions;
    for (size_t i = 0; i < R * R; i++) scale_link(&t->region_links[i], time_scale);
    for (size_t i = 0; i < t->n_pair_links; i++) scale_link(&t->pair_links[i].link, time_scale);
    scale_link(&t->default_link, time_scale);
}

/* Devices with no regions yet; the file reader names each device's region. */
static lh_status topology_alloc(int n_devices, lh_topology **out)
{
    *out = NULL;
    if (n_devices < 1) return lh_fail(LH_ERR_INVALID_ARG, "topology: need at least one device, got %d", n_devices);
    lh_topology *t = calloc(1, sizeof *t);
    if (!t || !(t->devices = calloc((size_t)n_devices, sizeof *t->devices))) {
        lh_topology_free(t);
        return lh_fail(LH_ERR_NOMEM, "topology: cannot allocate %d devices", n_devices);
    }
    t->n_devices = n_devices;
    for (int i = 0; i < n_devices; i++) {
        lh_device *d = &t->devices[i];
        d->id = i;
        snprintf(d->name, sizeof d->name, "dev%d", i);
        snprintf(d->region, sizeof d->region, "default");
        d->flops = 1e12;
        d->memory_bytes = 16.0 * (1u << 30);
    }
    *out = t;
    return LH_OK;
}

lh_status lh_topology_create(int n_devices, lh_topology **out)
{
    lh_status st = topology_alloc(n_devices, out);
    if (st) return st;
    int region;
    st = lh_topology_add_region(*out, "default", &region);
    if (st) {
        lh_topology_free(*out);
        *out = NULL;
    }
    return st; /* every device is in region 0, "default" */
}

static int find_region(const lh_topology *t, const char *name)
{
    for (int i = 0; i < t->n_regions; i++)
        if (strcmp(t->regions[i], name) == 0) return i;
    return -1;
}

lh_status lh_topology_add_region(lh_topology *t, const char *name, int *index)
{
    if (strlen(name) >= LH_NAME_MAX || !name[0])
        return lh_fail(LH_ERR_INVALID_ARG, "topology: region name must be 1..%d bytes", LH_NAME_MAX - 1);
    int existing = find_region(t, name);
    if (existing >= 0) {
        *index = existing;
        return LH_OK;
    }
    int r = t->n_regions, nr = r + 1;
    char(*regions)[LH_NAME_MAX] = realloc(t->regions, (size_t)nr * sizeof *regions);
    lh_link *links = calloc((size_t)nr * (size_t)nr, sizeof *links);
    unsigned char *has = calloc((size_t)nr * (size_t)nr, 1);
    if (!regions || !links || !has) {
        if (regions) t->regions = regions;
        free(links);
        free(has);
        return lh_fail(LH_ERR_NOMEM, "topology: cannot add region %s", name);
    }
    for (int i = 0; i < r; i++)
        for (int j = 0; j < r; j++) {
            links[i * nr + j] = t->region_links[i * r + j];
            has[i * nr + j] = t->has_region_link[i * r + j];
        }
    free(t->region_links);
    free(t->has_region_link);
    t->regions = regions;
    t->region_links = links;
    t->has_region_link = has;
    snprintf(t->regions[r], LH_NAME_MAX, "%s", name);
    t->n_regions = nr;
    *index = r;
    return LH_OK;
}

static lh_status check_link(lh_link link)
{
    if (!(link.latency_s >= 0) || !isfinite(link.latency_s))
        return lh_fail(LH_ERR_INVALID_ARG, "topology: latency must be finite and >= 0, got %g s", link.latency_s);
    if (!(link.bandwidth_bps > 0) || !isfinite(link.bandwidth_bps))
        return lh_fail(LH_ERR_INVALID_ARG, "topology: bandwidth must be finite and > 0, got %g bit/s",
                       link.bandwidth_bps);
    return LH_OK;
}

lh_status lh_topology_set_region_link(lh_topology *t, int a, int b, lh_link link, int symmetric)
{
    if (a < 0 || b < 0 || a >= t->n_regions || b >= t->n_regions)
        return lh_fail(LH_ERR_INVALID_ARG, "topology: region index out of range (%d, %d)", a, b);
    lh_status st = check_link(link);
    if (st) return st;
    t->region_links[a * t->n_regions + b] = link;
    t->has_region_link[a * t->n_regions + b] = 1;
    if (symmetric) {
        t->region_links[b * t->n_regions + a] = link;
        t->has_region_link[b * t->n_regions + a] = 1;
    }
    return LH_OK;
}

static int compare_pairs(const void *pa, const void *pb)
{
    const lh_pair_link *a = pa, *b = pb;
    if (a->from != b->from) return a->from < b->from ? -1 : 1;
    if (a->to != b->to) return a->to < b->to ? -1 : 1;
    return 0;
}

static lh_pair_link *find_pair(const lh_topology *t, int from, int to)
{
    if (!t->n_pair_links) return NULL;
    lh_pair_link key = {.from = from, .to = to};
    return bsearch(&key, t->pair_links, t->n_pair_links, sizeof key, compare_pairs);
}

static lh_status insert_pair(lh_topology *t, int from, int to, lh_link link)
{
    lh_pair_link *existing = find_pair(t, from, to);
    if (existing) {
        existing->link = link;
        return LH_OK;
    }
    lh_pair_link *grown = realloc(t->pair_links, (t->n_pair_links + 1) * sizeof *grown);
    if (!grown) return lh_fail(LH_ERR_NOMEM, "topology: cannot add a pair link");
    t->pair_links = grown;
    size_t pos = t->n_pair_links;
    lh_pair_link key = {.from = from, .to = to, .link = link};
    while (pos > 0 && compare_pairs(&t->pair_links[pos - 1], &key) > 0) {
        t->pair_links[pos] = t->pair_links[pos - 1];
        pos--;
    }
    t->pair_links[pos] = key;
    t->n_pair_links++;
    return LH_OK;
}

lh_status lh_topology_set_pair_link(lh_topology *t, int from, int to, lh_link link, int symmetric)
{
    if (from < 0 || to < 0 || from >= t->n_devices || to >= t->n_devices || from == to)
        return lh_fail(LH_ERR_INVALID_ARG, "topology: bad device pair (%d, %d) for %d devices", from, to,
                       t->n_devices);
    lh_status st = check_link(link);
    if (st) return st;
    st = insert_pair(t, from, to, link);
    if (!st && symmetric) st = insert_pair(t, to, from, link);
    return st;
}

lh_link lh_topology_link(const lh_topology *t, int from, int to, int *ok)
{
    lh_link none = {0.0, 0.0};
    *ok = 0;
    if (from < 0 || to < 0 || from >= t->n_devices || to >= t->n_devices || from == to) return none;
    const lh_pair_link *p = find_pair(t, from, to);
    if (p) {
        *ok = 1;
        return p->link;
    }
    int ra = t->devices[from].region_index, rb = t->devices[to].region_index;
    size_t k = (size_t)ra * (size_t)t->n_regions + (size_t)rb;
    if (t->has_region_link[k]) {
        *ok = 1;
        return t->region_links[k];
    }
    if (t->has_default_link) {
        *ok = 1;
        return t->default_link;
    }
    return none;
}

lh_status lh_topology_validate(const lh_topology *t)
{
    int n = t->n_devices, nr = t->n_regions;
    if (n < 1) return lh_fail(LH_ERR_FORMAT, "topology has no devices");
    for (int i = 0; i < n; i++) {
        const lh_device *d = &t->devices[i];
        if (d->id != i) return lh_fail(LH_ERR_FORMAT, "device %d: id is %d (ids must be 0..n-1 in order)", i, d->id);
        if (!(d->flops > 0) || !isfinite(d->flops))
            return lh_fail(LH_ERR_FORMAT, "device %d (%s): flops must be > 0", i, d->name);
        if (!(d->memory_bytes > 0) || !isfinite(d->memory_bytes))
            return lh_fail(LH_ERR_FORMAT, "device %d (%s): memory_bytes must be > 0", i, d->name);
        if (d->region_index < 0 || d->region_index >= nr)
            return lh_fail(LH_ERR_INTERNAL, "device %d: region index out of range", i);
    }
    if (t->has_default_link) return LH_OK;
    /* Region pairs lacking a link must be covered device pair by device pair. */
    size_t *region_size = calloc((size_t)nr, sizeof *region_size);
    size_t *explicit_count = calloc((size_t)nr * (size_t)nr, sizeof *explicit_count);
    if (!region_size || !explicit_count) {
        free(region_size);
        free(explicit_count);
        return lh_fail(LH_ERR_NOMEM, "topology: out of memory while validating");
    }
    for (int i = 0; i < n; i++) region_size[t->devices[i].region_index]++;
    for (size_t k = 0; k < t->n_pair_links; k++) {
        const lh_pair_link *p = &t->pair_links[k];
        explicit_count[(size_t)t->devices[p->from].region_index * nr + t->devices[p->to].region_index]++;
    }
    lh_status st = LH_OK;
    for (int ra = 0; ra < nr && !st; ra++) {
        for (int rb = 0; rb < nr && !st; rb++) {
            size_t k = (size_t)ra * nr + rb;
            size_t needed = region_size[ra] * region_size[rb] - (ra == rb ? region_size[ra] : 0);
            if (t->has_region_link[k] || explicit_count[k] == needed) continue;
            for (int i = 0; i < n && !st; i++) {
                if (t->devices[i].region_index != ra) continue;
                for (int j = 0; j < n; j++) {
                    if (j == i || t->devices[j].region_index != rb || find_pair(t, i, j)) continue;
                    st = lh_fail(LH_ERR_FORMAT,
                                 "no link from device %d (%s, region %s) to device %d (%s, region %s): "
                                 "give a device-pair link, a region-pair link or a default_link",
                                 i, t->devices[i].name, t->regions[ra], j, t->devices[j].name, t->regions[rb]);
                    break;
                }
            }
        }
    }
    free(region_size);
    free(explicit_count);
    return st;
}

lh_status lh_topology_dense(const lh_topology *t, double *latency_s, double *bandwidth_bps)
{
    int n = t->n_devices;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            size_t k = (size_t)i * n + j;
            if (i == j) {
                if (latency_s) latency_s[k] = 0.0;
                if (bandwidth_bps) bandwidth_bps[k] = INFINITY;
                continue;
            }
            int ok;
            lh_link l = lh_topology_link(t, i, j, &ok);
            if (!ok) return lh_fail(LH_ERR_FORMAT, "no link from device %d to device %d", i, j);
            if (latency_s) latency_s[k] = l.latency_s;
            if (bandwidth_bps) bandwidth_bps[k] = l.bandwidth_bps;
        }
    }
    return LH_OK;
}

/* ---- reading ---- */

static lh_status read_link_numbers(lh_jpath *p, json_object *obj, lh_link *link)
{
    double ms, gbps;
    lh_status st = lh_json_get_double(p, obj, "latency_ms", 0.0, 1e7, &ms);
    if (!st) st = lh_json_get_double(p, obj, "bandwidth_gbps", 0.0, 1e7, &gbps);
    if (st) return st;
    if (!(gbps > 0)) return lh_json_fail(p, "bandwidth_gbps", "must be > 0, got %g", gbps);
    link->latency_s = ms / 1000.0;
    link->bandwidth_bps = gbps * 1e9;
    return LH_OK;
}

static lh_status read_devices(lh_jpath *p, json_object *root, lh_topology **out)
{
    json_object *arr;
    size_t n;
    lh_status st = lh_json_get_array(p, root, "devices", &arr, &n);
    if (st) return st;
    if (n < 1) return lh_json_fail(p, "devices", "needs at least one device");
    if (n > 1000000) return lh_json_fail(p, "devices", "more than 1,000,000 devices");
    st = topology_alloc((int)n, out);
    if (st) return st;
    lh_topology *t = *out;
    unsigned char *seen = calloc(n, 1);
    if (!seen) return lh_fail(LH_ERR_NOMEM, "%s: out of memory", p->file);
    static const char *const keys[] = {"id", "name", "region", "flops", "memory_bytes", NULL};
    size_t saved = lh_jpath_push_key(p, "devices");
    for (size_t i = 0; i < n && !st; i++) {
        size_t saved_i = lh_jpath_push_index(p, i);
        json_object *d = json_object_array_get_idx(arr, i);
        int64_t id;
        st = lh_json_expect_object(p, d);
        if (!st) st = lh_json_check_keys(p, d, keys);
        if (!st) st = lh_json_get_int(p, d, "id", 0, (int64_t)n - 1, &id);
        if (!st && seen[id]) st = lh_json_fail(p, "id", "device id %lld appears twice", (long long)id);
        if (!st) {
            seen[id] = 1;
            lh_device *dev = &t->devices[id];
            dev->id = (int)id;
            char region[LH_NAME_MAX] = "default";
            st = lh_json_opt_string(p, d, "name", dev->name, sizeof dev->name, NULL);
            if (!st) st = lh_json_opt_string(p, d, "region", region, sizeof region, NULL);
            if (!st && !region[0]) st = lh_json_fail(p, "region", "must not be empty");
            if (!st) st = lh_json_get_double(p, d, "flops", 1.0, 1e30, &dev->flops);
            if (!st) st = lh_json_get_double(p, d, "memory_bytes", 1.0, 1e30, &dev->memory_bytes);
            if (!st) st = lh_topology_add_region(t, region, &dev->region_index);
            if (!st) snprintf(dev->region, sizeof dev->region, "%s", region);
        }
        lh_jpath_pop(p, saved_i);
    }
    lh_jpath_pop(p, saved);
    free(seen);
    return st;
}

/* A link entry: {"from": id, "to": id} or {"from_region": r, "to_region": r}, plus numbers. */
static lh_status read_links(lh_jpath *p, json_object *root, lh_topology *t)
{
    json_object *arr;
    if (!json_object_object_get_ex(root, "links", &arr)) return LH_OK;
    size_t n;
    lh_status st = lh_json_get_array(p, root, "links", &arr, &n);
    if (st) return st;
    static const char *const keys[] = {"from",       "to",           "from_region", "to_region",
                                       "latency_ms", "bandwidth_gbps", "directed",  NULL};
    size_t nr = (size_t)t->n_regions;
    unsigned char *region_given = calloc(nr * nr, 1);
    if (!region_given) return lh_fail(LH_ERR_NOMEM, "%s: out of memory", p->file);
    size_t saved = lh_jpath_push_key(p, "links");
    for (size_t i = 0; i < n && !st; i++) {
        size_t saved_i = lh_jpath_push_index(p, i);
        json_object *l = json_object_array_get_idx(arr, i);
        st = lh_json_expect_object(p, l);
        if (!st) st = lh_json_check_keys(p, l, keys);
        lh_link link;
        int directed = 0;
        if (!st) st = read_link_numbers(p, l, &link);
        if (!st) st = lh_json_opt_bool(p, l, "directed", &directed, NULL);
        int has_from = json_object_object_get_ex(l, "from", NULL);
        int has_from_region = json_object_object_get_ex(l, "from_region", NULL);
        if (!st && has_from == has_from_region)
            st = lh_json_fail(p, NULL, "a link names either devices (from, to) or regions (from_region, to_region)");
        if (!st && has_from) {
            int64_t from, to;
            if (json_object_object_get_ex(l, "to_region", NULL))
                st = lh_json_fail(p, "to_region", "cannot mix a device (from) with a region (to_region)");
            if (!st) st = lh_json_get_int(p, l, "from", 0, t->n_devices - 1, &from);
            if (!st) st = lh_json_get_int(p, l, "to", 0, t->n_devices - 1, &to);
            if (!st && from == to) st = lh_json_fail(p, "to", "a link joins two different devices");
            if (!st && (find_pair(t, (int)from, (int)to) || (!directed && find_pair(t, (int)to, (int)from))))
                st = lh_json_fail(p, NULL, "link %lld-%lld is given twice", (long long)from, (long long)to);
            if (!st) st = lh_topology_set_pair_link(t, (int)from, (int)to, link, !directed);
        } else if (!st) {
            char ra_name[LH_NAME_MAX], rb_name[LH_NAME_MAX];
            if (json_object_object_get_ex(l, "to", NULL))
                st = lh_json_fail(p, "to", "cannot mix a region (from_region) with a device (to)");
            if (!st) st = lh_json_get_string(p, l, "from_region", ra_name, sizeof ra_name);
            if (!st) st = lh_json_get_string(p, l, "to_region", rb_name, sizeof rb_name);
            int ra = st ? -1 : find_region(t, ra_name), rb = st ? -1 : find_region(t, rb_name);
            if (!st && ra < 0) st = lh_json_fail(p, "from_region", "no device is in region \"%s\"", ra_name);
            if (!st && rb < 0) st = lh_json_fail(p, "to_region", "no device is in region \"%s\"", rb_name);
            if (!st && (region_given[ra * nr + rb] || (!directed && region_given[rb * nr + ra])))
                st = lh_json_fail(p, NULL, "link %s-%s is given twice", ra_name, rb_name);
            if (!st) {
                region_given[ra * nr + rb] = 1;
                if (!directed) region_given[rb * nr + ra] = 1;
                st = lh_topology_set_region_link(t, ra, rb, link, !directed);
            }
        }
        lh_jpath_pop(p, saved_i);
    }
    lh_jpath_pop(p, saved);
    free(region_given);
    return st;
}

lh_status lh_topology_parse(const char *name, const char *text, size_t len, lh_topology **out)
{
    *out = NULL;
    json_object *root;
    lh_status st = lh_json_parse(name, text, len, &root);
    if (st) return st;
    lh_jpath p;
    lh_jpath_init(&p, name);
    int64_t version;
    lh_topology *t = NULL;
    static const char *const keys[] = {"format", "version", "name", "devices", "links", "default_link", NULL};
    st = lh_json_check_header(&p, root, TOPOLOGY_FORMAT, TOPOLOGY_VERSION, &version);
    if (!st) st = lh_json_check_keys(&p, root, keys);
    if (!st) st = read_devices(&p, root, &t);
    if (!st) st = read_links(&p, root, t);
    json_object *def = NULL;
    if (!st) st = lh_json_opt_object(&p, root, "default_link", &def);
    if (!st && def) {
        static const char *const link_keys[] = {"latency_ms", "bandwidth_gbps", NULL};
        size_t saved = lh_jpath_push_key(&p, "default_link");
        st = lh_json_check_keys(&p, def, link_keys);
        if (!st) st = read_link_numbers(&p, def, &t->default_link);
        t->has_default_link = !st;
        lh_jpath_pop(&p, saved);
    }
    if (!st) {
        st = lh_topology_validate(t);
        if (st) st = lh_fail_prefix(st, "%s", name);
    }
    json_object_put(root);
    if (st) {
        lh_topology_free(t);
        return st;
    }
    *out = t;
    return LH_OK;
}

lh_status lh_topology_load(const char *path, lh_topology **out)
{
    char *text;
    size_t len;
    *out = NULL;
    lh_status st = lh_read_file(path, (size_t)256 << 20, &text, &len);
    if (st) return st;
    st = lh_topology_parse(path, text, len, out);
    free(text);
    return st;
}

/* ---- writing ---- */

static json_object *link_json(lh_link l)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "latency_ms", json_object_new_double(l.latency_s * 1000.0));
    json_object_object_add(o, "bandwidth_gbps", json_object_new_double(l.bandwidth_bps / 1e9));
    return o;
}

lh_status lh_topology_save(const lh_topology *t, const char *path)
{
    json_object *root = json_object_new_object();
    if (!root) return lh_fail(LH_ERR_NOMEM, "%s: out of memory", path);
    json_object_object_add(root, "format", json_object_new_string(TOPOLOGY_FORMAT));
    json_object_object_add(root, "version", json_object_new_int(TOPOLOGY_VERSION));
    json_object *devices = json_object_new_array();
    for (int i = 0; i < t->n_devices; i++) {
        const lh_device *d = &t->devices[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_int(d->id));
        json_object_object_add(o, "name", json_object_new_string(d->name));
        json_object_object_add(o, "region", json_object_new_string(t->regions[d->region_index]));
        json_object_object_add(o, "flops", json_object_new_double(d->flops));
        json_object_object_add(o, "memory_bytes", json_object_new_double(d->memory_bytes));
        json_object_array_add(devices, o);
    }
    json_object_object_add(root, "devices", devices);
    json_object *links = json_object_new_array();
    for (int a = 0; a < t->n_regions; a++)
        for (int b = 0; b < t->n_regions; b++) {
            size_t k = (size_t)a * t->n_regions + b;
            if (!t->has_region_link[k]) continue;
            json_object *o = link_json(t->region_links[k]);
            json_object_object_add(o, "from_region", json_object_new_string(t->regions[a]));
            json_object_object_add(o, "to_region", json_object_new_string(t->regions[b]));
            json_object_object_add(o, "directed", json_object_new_boolean(1));
            json_object_array_add(links, o);
        }
    for (size_t k = 0; k < t->n_pair_links; k++) {
        const lh_pair_link *pl = &t->pair_links[k];
        json_object *o = link_json(pl->link);
        json_object_object_add(o, "from", json_object_new_int(pl->from));
        json_object_object_add(o, "to", json_object_new_int(pl->to));
        json_object_object_add(o, "directed", json_object_new_boolean(1));
        json_object_array_add(links, o);
    }
    json_object_object_add(root, "links", links);
    if (t->has_default_link) json_object_object_add(root, "default_link", link_json(t->default_link));
    lh_status st = lh_json_write_file(path, root);
    json_object_put(root);
    return st;
}
