/*
 * Network and compute probe (see lh_probe.h for what is measured and why).
 * All traffic is framed probe traffic on the control channel, so it is
 * validated, encrypted and emulated like training traffic.
 */
#include "lh_probe.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "lh_comm_internal.h"
#include "lh_io.h"
#include "lh_log.h"
#include "lh_time.h"

#define LH_PROBE_MAX_SAMPLE ((size_t)64 << 20)

void lh_probe_result_free(lh_probe_result *r)
{
    if (!r) return;
    free(r->latency_s);
    free(r->bandwidth_bps);
    free(r->flops);
    free(r->memory_bytes);
    free(r->names);
    free(r->hosts);
    free(r);
}

/* Partner of `rank` in round `round` of a circle-method tournament over m (even) slots; -1 when idle. */
static int tournament_partner(int p, int round, int rank)
{
    int m = p % 2 ? p + 1 : p;
    for (int i = 0; i < m / 2; i++) {
        int a = i == 0 ? m - 1 : (round + i) % (m - 1);
        int b = (round - i + m - 1) % (m - 1);
        if (a == rank) return b < p ? b : -1;
        if (b == rank) return a < p ? a : -1;
    }
    return -1;
}

static lh_status psend(lh_comm *c, const void *buf, size_t n, int peer)
{
    lh_comm_request *r;
    lh_status st = lh_comm_isend_kind(c, buf, n, peer, LH_COMM_CH_CONTROL, LH_FRAME_PROBE, &r);
    return st ? st : lh_comm_wait(r);
}

static lh_status precv(lh_comm *c, void *buf, size_t n, int peer)
{
    lh_comm_request *r;
    lh_status st = lh_comm_irecv_kind(c, buf, n, peer, LH_COMM_CH_CONTROL, LH_FRAME_PROBE, &r);
    return st ? st : lh_comm_wait(r);
}

/* One direction of a bandwidth measurement: the sender pushes `bytes`, the receiver acknowledges; the
 * transfer time is the best round trip minus the small-message one.  A transfer shorter than the
 * target duration (or lost in the round trip's noise) is dominated by latency jitter and by token-bucket
 * bursts of shaped links, so the sample is grown towards the target, up to 64 MiB; the sender's verdict
 * (0 done, else the next size, UINT64_MAX give up) keeps both sides in step. */
static lh_status measure_bandwidth(lh_comm *c, int me_is_sender, int peer, uint8_t **buf, size_t bytes,
                                   const lh_probe_options *o, double rtt, double *bps)
{
    for (int attempt = 0;; attempt++) {
        uint8_t *bigger = realloc(*buf, bytes);
        if (!bigger) return lh_fail(LH_ERR_NOMEM, "probe: out of memory for a %zu-byte sample", bytes);
        *buf = bigger;
        double best = INFINITY;
        uint8_t ack = 0;
        for (int k = 0; k < o->bandwidth_reps; k++) {
            lh_status st;
            if (me_is_sender) {
                double t0 = lh_now_s();
                st = psend(c, *buf, bytes, peer);
                if (!st) st = precv(c, &ack, 1, peer);
                best = fmin(best, lh_now_s() - t0);
            } else {
                st = precv(c, *buf, bytes, peer);
                if (!st) st = psend(c, &ack, 1, peer);
            }
            if (st) return st;
        }
        uint64_t verdict = 0;
        if (me_is_sender) {
            double transfer = best - rtt;
            int clear = transfer > fmax(0.1 * rtt, 1e-3);
            if (clear) *bps = (double)bytes * 8.0 / transfer;
            if (!(clear && transfer >= o->bandwidth_target_s) && bytes < LH_PROBE_MAX_SAMPLE && attempt < 6) {
                double factor = clear ? fmin(16.0, ceil(1.2 * o->bandwidth_target_s / transfer)) : 4.0;
                double next = fmin((double)LH_PROBE_MAX_SAMPLE, (double)bytes * fmax(2.0, factor));
                verdict = (uint64_t)next;
            } else if (!clear) {
                verdict = UINT64_MAX;
            }
            lh_status st = psend(c, &verdict, sizeof verdict, peer);
            if (st) return st;
            if (verdict == UINT64_MAX)
                return lh_fail(LH_ERR_TIMEOUT, "probe: %zu bytes to rank %d took %.3g s, not clearly more than "
                                               "the %.3g s round trip", bytes, peer, best, rtt);
        } else {
            lh_status st = precv(c, &verdict, sizeof verdict, peer);
            if (st) return st;
            if (verdict == UINT64_MAX)
                return lh_fail(LH_ERR_TIMEOUT, "probe: rank %d could not measure its bandwidth to this rank", peer);
            if (verdict > LH_PROBE_MAX_SAMPLE)
                return lh_fail(LH_ERR_COMM, "probe: rank %d asked for a %llu-byte sample", peer,
                               (unsigned long long)verdict);
        }
        if (verdict == 0) return LH_OK;
        bytes = (size_t)verdict;
    }
}

/* Measure the pair (me, peer); fills my row: latency to peer and bandwidth me->peer. */
static lh_status measure_pair(lh_comm *c, int peer, const lh_probe_options *o, uint8_t **buf, double *lat_row,
                              double *bw_row)
{
    int me = lh_comm_rank(c), leader = me < peer;
    double rtt = INFINITY, stamp = 0;
    for (int k = 0; k < o->latency_pings; k++) {
        lh_status st;
        if (leader) {
            double t0 = lh_now_s();
            st = psend(c, &stamp, sizeof stamp, peer);
            if (!st) st = precv(c, &stamp, sizeof stamp, peer);
            rtt = fmin(rtt, lh_now_s() - t0);
        } else {
            st = precv(c, &stamp, sizeof stamp, peer);
            if (!st) st = psend(c, &stamp, sizeof stamp, peer);
        }
        if (st) return st;
    }
    lh_status st = leader ? psend(c, &rtt, sizeof rtt, peer) : precv(c, &rtt, sizeof rtt, peer);
    if (st) return st;
    lat_row[peer] = rtt / 2;
    /* leader -> follower, then follower -> leader */
    st = measure_bandwidth(c, leader, peer, buf, o->bandwidth_bytes, o, rtt, &bw_row[peer]);
    if (!st) st = measure_bandwidth(c, !leader, peer, buf, o->bandwidth_bytes, o, rtt, &bw_row[peer]);
    return st;
}

static double measure_flops(int n)
{
    float *a = malloc((size_t)n * n * sizeof(float)), *b = malloc((size_t)n * n * sizeof(float));
    float *cm = malloc((size_t)n * n * sizeof(float));
    if (!a || !b || !cm) {
        free(a);
        free(b);
        free(cm);
        return 0;
    }
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)(i % 7) * 0.25f;
        b[i] = (float)(i % 5) * 0.5f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, cm, n); /* warm-up */
    int reps = 0;
    double t0 = lh_now_s(), t;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, cm, n);
        reps++;
        t = lh_now_s() - t0;
    } while (t < 0.05 && reps < 1000);
    free(a);
    free(b);
    free(cm);
    return 2.0 * n * (double)n * n * reps / t;
}

lh_status lh_probe_run(lh_comm *c, const lh_probe_options *options, lh_probe_result **out)
{
    if (!c || !out) return lh_fail(LH_ERR_INVALID_ARG, "probe: NULL argument");
    *out = NULL;
    lh_probe_options o = options ? *options : (lh_probe_options){0};
    if (o.latency_pings <= 0) o.latency_pings = 5;
    if (o.bandwidth_bytes == 0) o.bandwidth_bytes = 256 * 1024;
    if (o.bandwidth_reps <= 0) o.bandwidth_reps = 2;
    if (o.bandwidth_target_s <= 0) o.bandwidth_target_s = 0.2;
    if (o.matmul_n <= 0) o.matmul_n = 256;
    if (o.time_limit_s <= 0) o.time_limit_s = 120;
    if (o.bandwidth_bytes > LH_PROBE_MAX_SAMPLE)
        return lh_fail(LH_ERR_INVALID_ARG, "probe: bandwidth sample of %zu bytes above 64 MiB", o.bandwidth_bytes);
    if (o.matmul_n > 4096) return lh_fail(LH_ERR_INVALID_ARG, "probe: matmul size %d above 4096", o.matmul_n);
    int p = lh_comm_size(c), me = lh_comm_rank(c);
    lh_probe_result *r = calloc(1, sizeof *r);
    uint8_t *buf = malloc(o.bandwidth_bytes);
    if (r) {
        r->n = p;
        r->latency_s = calloc((size_t)p * p, sizeof(double));
        r->bandwidth_bps = calloc((size_t)p * p, sizeof(double));
        r->flops = calloc((size_t)p, sizeof(double));
        r->memory_bytes = calloc((size_t)p, sizeof(double));
        r->names = calloc((size_t)p, sizeof *r->names);
        r->hosts = calloc((size_t)p, sizeof *r->hosts);
    }
    double *lat_row = calloc((size_t)p, sizeof(double)), *bw_row = calloc((size_t)p, sizeof(double));
    if (!r || !buf || !r->latency_s || !r->bandwidth_bps || !r->flops || !r->memory_bytes || !r->names ||
        !r->hosts || !lat_row || !bw_row) {
        lh_probe_result_free(r);
        free(buf);
        free(lat_row);
        free(bw_row);
        return lh_fail(LH_ERR_NOMEM, "probe: out of memory");
    }
    memset(buf, 0x5a, o.bandwidth_bytes);
    double t_start = lh_now_s();
    lh_status st = LH_OK;
    int rounds = p % 2 ? p : p - 1;
    for (int round = 0; round < rounds && !st; round++) {
        int peer = tournament_partner(p, round, me);
        if (peer >= 0) st = measure_pair(c, peer, &o, &buf, lat_row, bw_row);
        /* Agree on the deadline and on failures together, so no rank is left waiting for a partner.  A
         * failed measurement leaves the communicator usable unless a frame was rejected; then nothing
         * more can be said to anyone and the other ranks' collective fails or waits on their side. */
        float flag = st ? 2.0f : (lh_now_s() - t_start > o.time_limit_s ? 1.0f : 0.0f);
        char why[256] = "";
        if (st) snprintf(why, sizeof why, "%s", lh_last_error());
        lh_status agree = lh_comm_allreduce_f32(c, &flag, 1);
        if (st) st = lh_fail(st, "%s", why);
        else if (agree) st = agree;
        else if (flag >= 2.0f) st = lh_fail(LH_ERR_COMM, "probe: another rank failed its measurement");
        else if (flag >= 1.0f)
            st = lh_fail(LH_ERR_TIMEOUT, "probe: exceeded the %.0f s time limit after %d of %d rounds",
                         o.time_limit_s, round + 1, rounds);
    }
    /* Compute speed, all ranks at once; host memory shared among the ranks of a host. */
    double mine[2] = {0, 0};
    char ident[2][64];
    memset(ident, 0, sizeof ident);
    if (!st) {
        mine[0] = measure_flops(o.matmul_n);
        MPI_Comm node;
        int per_host = 1;
        if (MPI_Comm_split_type(lh_comm_mpi(c), MPI_COMM_TYPE_SHARED, me, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
            MPI_Comm_size(node, &per_host);
            MPI_Comm_free(&node);
        }
        mine[1] = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE) / per_host;
        char host[MPI_MAX_PROCESSOR_NAME] = "";
        int len = 0;
        MPI_Get_processor_name(host, &len);
        snprintf(ident[1], sizeof ident[1], "%.50s", host);
        snprintf(ident[0], sizeof ident[0], "%.50s-r%d", host, me);
    }
    double *figs = malloc(2 * (size_t)p * sizeof(double));
    char (*ids)[2][64] = malloc((size_t)p * sizeof *ids);
    if (!st && (!figs || !ids)) st = lh_fail(LH_ERR_NOMEM, "probe: out of memory");
    if (!st) st = lh_comm_allgather(c, lat_row, (size_t)p * sizeof(double), r->latency_s);
    if (!st) st = lh_comm_allgather(c, bw_row, (size_t)p * sizeof(double), r->bandwidth_bps);
    if (!st) st = lh_comm_allgather(c, mine, sizeof mine, figs);
    if (!st) st = lh_comm_allgather(c, ident, sizeof ident, ids);
    if (!st) {
        lh_netem *emu = lh_comm_netem(c);
        r->emulated = emu != NULL;
        r->time_scale = emu ? lh_netem_time_scale(emu) : 1.0;
        for (int i = 0; i < p; i++) {
            r->flops[i] = figs[2 * i];
            r->memory_bytes[i] = figs[2 * i + 1];
            memcpy(r->names[i], ids[i][0], 64);
            memcpy(r->hosts[i], ids[i][1], 64);
            r->names[i][63] = r->hosts[i][63] = 0;
        }
        for (size_t k = 0; k < (size_t)p * p; k++) { /* report the network being modelled, not its slowed copy */
            r->latency_s[k] /= r->time_scale;
            r->bandwidth_bps[k] *= r->time_scale;
        }
        r->elapsed_s = lh_now_s() - t_start;
    }
    free(figs);
    free(ids);
    free(buf);
    free(lat_row);
    free(bw_row);
    if (st) {
        lh_probe_result_free(r);
        return lh_fail_prefix(st, "probe");
    }
    *out = r;
    return LH_OK;
}

lh_status lh_probe_topology_json(const lh_probe_result *r, char **text)
{
    if (!r || !text) return lh_fail(LH_ERR_INVALID_ARG, "probe topology: NULL argument");
    json_object *root = json_object_new_object();
    char name[160];
    if (r->emulated)
        snprintf(name, sizeof name, "probed on an EMULATED network (time scale x%g; figures divided back by it)",
                 r->time_scale);
    else
        snprintf(name, sizeof name, "probed by longhaul probe in %.1f s", r->elapsed_s);
    json_object_object_add(root, "format", json_object_new_string("longhaul-topology"));
    json_object_object_add(root, "version", json_object_new_int(1));
    json_object_object_add(root, "name", json_object_new_string(name));
    json_object *devs = json_object_new_array();
    for (int i = 0; i < r->n; i++) {
        json_object *d = json_object_new_object();
        json_object_object_add(d, "id", json_object_new_int(i));
        json_object_object_add(d, "name", json_object_new_string(r->names[i]));
        json_object_object_add(d, "region", json_object_new_string(r->hosts[i]));
        json_object_object_add(d, "flops", json_object_new_double(r->flops[i]));
        json_object_object_add(d, "memory_bytes", json_object_new_int64((int64_t)r->memory_bytes[i]));
        json_object_array_add(devs, d);
    }
    json_object_object_add(root, "devices", devs);
    json_object *links = json_object_new_array();
    for (int i = 0; i < r->n; i++)
        for (int j = 0; j < r->n; j++) {
            if (i == j) continue;
            size_t k = (size_t)i * r->n + j;
            if (!(r->bandwidth_bps[k] > 0)) {
                json_object_put(root);
                return lh_fail(LH_ERR_INTERNAL, "probe topology: no bandwidth measured for %d->%d", i, j);
            }
            json_object *l = json_object_new_object();
            json_object_object_add(l, "from", json_object_new_int(i));
            json_object_object_add(l, "to", json_object_new_int(j));
            json_object_object_add(l, "latency_ms", json_object_new_double(r->latency_s[k] * 1e3));
            json_object_object_add(l, "bandwidth_gbps", json_object_new_double(r->bandwidth_bps[k] / 1e9));
            json_object_object_add(l, "directed", json_object_new_boolean(1));
            json_object_array_add(links, l);
        }
    json_object_object_add(root, "links", links);
    const char *s = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    *text = strdup(s);
    json_object_put(root);
    if (!*text) return lh_fail(LH_ERR_NOMEM, "probe topology: out of memory");
    return LH_OK;
}

lh_status lh_probe_write_topology(const lh_probe_result *r, const char *path)
{
    char *text = NULL;
    lh_status st = lh_probe_topology_json(r, &text);
    if (st) return st;
    size_t len = strlen(text);
    text[len] = '\n';
    st = lh_write_file_atomic(path, text, len + 1);
    free(text);
    return st ? lh_fail_prefix(st, "writing topology %s", path) : LH_OK;
}
