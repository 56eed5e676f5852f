/*
 * The MPI transport: framing of point-to-point messages, emulated link timing,
 * per-link keys, and communicator creation/splitting.  Collectives live in
 * lh_comm_collectives.c on top of the calls here.
 *
 * Why frames are staged in a separate buffer instead of sending the caller's
 * memory: the header and trailer must travel with the payload in one MPI
 * message (so a frame is atomic on the wire), and encryption needs an output
 * buffer anyway.  The cost of the extra copy is what bench_comm measures.
 */
#include "lh_comm.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lh_comm_internal.h"
#include "lh_log.h"
#include "lh_time.h"

#define LH_COMM_POOL_SLOTS 8
#define LH_COMM_POOL_MAX_BYTES ((size_t)64 << 20)

/* State shared by a communicator and every communicator split from it. */
typedef struct comm_shared {
    int refs;
    int has_secret;
    uint8_t secret[LH_KEY_BYTES];
    uint8_t salt[LH_SESSION_SALT_BYTES];
    lh_netem *netem; /* one set of link clocks: sub-communicators share the physical links */
    size_t max_payload;
    lh_comm_algorithm algorithm;
    double timeout_s; /* > 0: a wait longer than this fails naming the peer */
} comm_shared;

struct lh_comm {
    MPI_Comm mpi;
    int rank, size;
    uint64_t id;
    int split_count;
    comm_shared *shared;
    int *net_rank;               /* comm rank -> index in the emulated network */
    uint8_t (*send_key)[LH_KEY_BYTES]; /* per destination; NULL without a secret */
    uint8_t (*recv_key)[LH_KEY_BYTES]; /* per source */
    uint64_t *send_seq, *recv_seq;     /* [peer * LH_COMM_CHANNELS + channel] */
    int failed;
    char failure[512];
    lh_comm_stats stats;
    /* Staging buffers of completed requests, reused: a fresh multi-megabyte malloc per message costs
     * an mmap and a page fault per 4 KiB, which dominated the framed transport's time. */
    uint8_t *pool[LH_COMM_POOL_SLOTS];
    size_t pool_cap[LH_COMM_POOL_SLOTS];
};

struct lh_comm_request {
    lh_comm *c;
    int is_send, peer, channel, kind, nframes;
    uint8_t *user; /* receive destination */
    size_t bytes, stride;
    uint64_t first_seq;
    uint8_t *stage;
    size_t stage_cap;
    MPI_Request *mreq;
    MPI_Status *mstatus; /* filled by lh_comm_test when it completed the MPI side */
    int mpi_done;        /* 1: MPI side completed by MPI_Testall (statuses in mstatus) */
    int mpi_rc;          /* MPI_Testall's return code */
    double sent_at_s;    /* emulation: when the last bit leaves */
};

static lh_status mpi_fail(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return lh_fail(LH_ERR_COMM, "%s: MPI error: %s", what, msg);
}

static lh_status comm_failed_state(const lh_comm *c)
{
    return lh_fail(LH_ERR_COMM, "communicator unusable after an earlier error: %s", c->failure);
}

static lh_status mark_failed(lh_comm *c, lh_status st)
{
    if (!c->failed) {
        c->failed = 1;
        snprintf(c->failure, sizeof c->failure, "%s", lh_last_error());
    }
    return st;
}

static void shared_release(comm_shared *s)
{
    if (!s || --s->refs > 0) return;
    sodium_memzero(s->secret, sizeof s->secret);
    lh_netem_free(s->netem);
    free(s);
}

static void comm_free_fields(lh_comm *c)
{
    for (int i = 0; i < LH_COMM_POOL_SLOTS; i++) free(c->pool[i]);
    if (c->send_key) sodium_memzero(c->send_key, (size_t)c->size * LH_KEY_BYTES);
    if (c->recv_key) sodium_memzero(c->recv_key, (size_t)c->size * LH_KEY_BYTES);
    free(c->send_key);
    free(c->recv_key);
    free(c->send_seq);
    free(c->recv_seq);
    free(c->net_rank);
    shared_release(c->shared);
    if (c->mpi != MPI_COMM_NULL) MPI_Comm_free(&c->mpi);
}

void lh_comm_free(lh_comm *c)
{
    if (!c) return;
    comm_free_fields(c);
    free(c);
}

/* Everything after MPI_Comm_dup and net_rank: sequence counters and keys. */
static lh_status comm_init_links(lh_comm *c)
{
    size_t n = (size_t)c->size;
    c->send_seq = calloc(n * LH_COMM_CHANNELS, sizeof(uint64_t));
    c->recv_seq = calloc(n * LH_COMM_CHANNELS, sizeof(uint64_t));
    if (!c->send_seq || !c->recv_seq) return lh_fail(LH_ERR_NOMEM, "comm: out of memory for %zu peers", n);
    c->stats.emulated = c->shared->netem != NULL;
    c->stats.encrypted = c->shared->has_secret;
    if (!c->shared->has_secret) return LH_OK;
    c->send_key = malloc(n * LH_KEY_BYTES);
    c->recv_key = malloc(n * LH_KEY_BYTES);
    if (!c->send_key || !c->recv_key) return lh_fail(LH_ERR_NOMEM, "comm: out of memory for link keys");
    for (int p = 0; p < c->size; p++) {
        lh_status s = lh_frame_derive_link_key(c->shared->secret, c->shared->salt, c->id, (uint32_t)c->rank,
                                               (uint32_t)p, c->send_key[p]);
        if (!s)
            s = lh_frame_derive_link_key(c->shared->secret, c->shared->salt, c->id, (uint32_t)p, (uint32_t)c->rank,
                                         c->recv_key[p]);
        if (s) return s;
    }
    return LH_OK;
}

lh_status lh_comm_create(MPI_Comm mpi_comm, const lh_comm_options *options, lh_comm **out)
{
    if (!out) return lh_fail(LH_ERR_INVALID_ARG, "comm create: NULL output");
    *out = NULL;
    lh_comm_options none = {0};
    const lh_comm_options *o = options ? options : &none;
    size_t max_payload = o->max_frame_payload ? o->max_frame_payload : LH_COMM_DEFAULT_MAX_FRAME_PAYLOAD;
    lh_comm *c = calloc(1, sizeof *c);
    if (!c) return lh_fail(LH_ERR_NOMEM, "comm create: out of memory");
    c->mpi = MPI_COMM_NULL;
    int rc = MPI_Comm_dup(mpi_comm, &c->mpi);
    if (rc != MPI_SUCCESS) {
        free(c);
        return mpi_fail(rc, "comm create: MPI_Comm_dup");
    }
    MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN);
    MPI_Comm_rank(c->mpi, &c->rank);
    MPI_Comm_size(c->mpi, &c->size);
    c->id = 1;
    lh_status st = LH_OK;
    /* Agree on the configuration before anyone relies on it; every rank reaches the same verdict. */
    long mine[4] = {o->job_secret != NULL, o->emulation ? lh_netem_size(o->emulation) : 0, (long)max_payload,
                    (long)o->algorithm};
    long lo[4], hi[4];
    rc = MPI_Allreduce(mine, lo, 4, MPI_LONG, MPI_MIN, c->mpi);
    if (rc == MPI_SUCCESS) rc = MPI_Allreduce(mine, hi, 4, MPI_LONG, MPI_MAX, c->mpi);
    if (rc != MPI_SUCCESS) {
        st = mpi_fail(rc, "comm create: agreeing on options");
    } else if (lo[0] != hi[0]) {
        st = lh_fail(LH_ERR_MISMATCH, "comm create: some ranks have a job secret and some do not (this rank: %s)",
                     mine[0] ? "has one" : "has none");
    } else if (lo[1] != hi[1]) {
        st = lh_fail(LH_ERR_MISMATCH, "comm create: ranks disagree on link emulation (this rank: %ld emulated "
                                      "ranks; range %ld..%ld)", mine[1], lo[1], hi[1]);
    } else if (lo[1] != 0 && lo[1] != c->size) {
        st = lh_fail(LH_ERR_INVALID_ARG, "comm create: emulated network has %ld ranks, communicator has %d", lo[1],
                     c->size);
    } else if (lo[2] != hi[2]) {
        st = lh_fail(LH_ERR_MISMATCH, "comm create: ranks disagree on max frame payload (%ld..%ld bytes)", lo[2],
                     hi[2]);
    } else if (lo[3] != hi[3] || lo[3] < LH_COMM_ALGO_AUTO || hi[3] > LH_COMM_ALGO_DIRECT) {
        st = lh_fail(LH_ERR_MISMATCH, "comm create: ranks disagree on the collective algorithm, or it is unknown");
    } else if (max_payload > (1u << 30)) {
        st = lh_fail(LH_ERR_INVALID_ARG, "comm create: max frame payload %zu above 1 GiB", max_payload);
    }
    if (!st) {
        c->shared = calloc(1, sizeof *c->shared);
        c->net_rank = malloc((size_t)c->size * sizeof(int));
        if (!c->shared || !c->net_rank) st = lh_fail(LH_ERR_NOMEM, "comm create: out of memory");
    }
    if (!st) {
        c->shared->refs = 1;
        c->shared->max_payload = max_payload;
        c->shared->algorithm = o->algorithm;
        c->shared->timeout_s = o->timeout_s;
        for (int i = 0; i < c->size; i++) c->net_rank[i] = i;
        if (o->job_secret) {
            c->shared->has_secret = 1;
            memcpy(c->shared->secret, o->job_secret, LH_KEY_BYTES);
            if (sodium_init() < 0) st = lh_fail(LH_ERR_INTERNAL, "comm create: libsodium failed to initialise");
            else if (c->rank == 0) randombytes_buf(c->shared->salt, sizeof c->shared->salt);
            rc = MPI_Bcast(c->shared->salt, sizeof c->shared->salt, MPI_BYTE, 0, c->mpi);
            if (!st && rc != MPI_SUCCESS) st = mpi_fail(rc, "comm create: broadcasting the session salt");
        }
        if (!st && o->emulation) st = lh_netem_clone(o->emulation, &c->shared->netem);
        if (!st) st = comm_init_links(c);
    }
    if (st) {
        lh_comm_free(c);
        return st;
    }
    if (c->shared->netem && c->rank == 0) {
        char line[256];
        lh_netem_describe(c->shared->netem, line, sizeof line);
        LH_INFO("comm: %s", line);
    }
    if (c->shared->netem && c->rank != 0) LH_DEBUG("comm: links are EMULATED");
    *out = c;
    return LH_OK;
}

lh_status lh_comm_split(lh_comm *parent, int color, int key, lh_comm **out)
{
    if (!parent || !out) return lh_fail(LH_ERR_INVALID_ARG, "comm split: NULL argument");
    *out = NULL;
    if (parent->failed) return comm_failed_state(parent);
    int split_index = parent->split_count++;
    MPI_Comm sub = MPI_COMM_NULL;
    int rc = MPI_Comm_split(parent->mpi, color < 0 ? MPI_UNDEFINED : color, key, &sub);
    if (rc != MPI_SUCCESS) return mpi_fail(rc, "comm split");
    if (sub == MPI_COMM_NULL) return LH_OK;
    lh_comm *c = calloc(1, sizeof *c);
    if (!c) {
        MPI_Comm_free(&sub);
        return lh_fail(LH_ERR_NOMEM, "comm split: out of memory");
    }
    c->mpi = sub;
    MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN);
    MPI_Comm_rank(c->mpi, &c->rank);
    MPI_Comm_size(c->mpi, &c->size);
    c->shared = parent->shared;
    c->shared->refs++;
    /* A distinct id per (parent, split, color) keeps every sub-communicator's keys distinct. */
    uint8_t idin[20], idout[8];
    memcpy(idin, &parent->id, 8);
    memcpy(idin + 8, &split_index, 4);
    memcpy(idin + 12, &color, 4);
    memcpy(idin + 16, "splt", 4);
    crypto_generichash(idout, sizeof idout, idin, sizeof idin, NULL, 0);
    memcpy(&c->id, idout, 8);
    lh_status st = LH_OK;
    c->net_rank = malloc((size_t)c->size * sizeof(int));
    if (!c->net_rank) st = lh_fail(LH_ERR_NOMEM, "comm split: out of memory");
    if (!st) {
        int my_net = parent->net_rank[parent->rank];
        rc = MPI_Allgather(&my_net, 1, MPI_INT, c->net_rank, 1, MPI_INT, c->mpi);
        if (rc != MPI_SUCCESS) st = mpi_fail(rc, "comm split: exchanging ranks");
    }
    if (!st) st = comm_init_links(c);
    if (st) {
        lh_comm_free(c);
        return st;
    }
    *out = c;
    return LH_OK;
}

int lh_comm_rank(const lh_comm *c)
{
    return c->rank;
}

int lh_comm_size(const lh_comm *c)
{
    return c->size;
}

MPI_Comm lh_comm_mpi(const lh_comm *c)
{
    return c->mpi;
}

int lh_comm_net_rank(const lh_comm *c, int r)
{
    return c->net_rank[r];
}

int lh_comm_use_direct(const lh_comm *c)
{
    if (c->shared->algorithm == LH_COMM_ALGO_DIRECT) return 1;
    if (c->shared->algorithm == LH_COMM_ALGO_RING) return 0;
    return c->size <= LH_COMM_DIRECT_MAX_RANKS;
}

lh_netem *lh_comm_netem(const lh_comm *c)
{
    return c->shared->netem;
}

void lh_comm_get_stats(const lh_comm *c, lh_comm_stats *out)
{
    *out = c->stats;
}

void lh_comm_reset_stats(lh_comm *c)
{
    int emulated = c->stats.emulated, encrypted = c->stats.encrypted;
    memset(&c->stats, 0, sizeof c->stats);
    c->stats.emulated = emulated;
    c->stats.encrypted = encrypted;
}

/* Take the smallest pooled buffer of at least `need` bytes, or allocate one. */
static uint8_t *stage_get(lh_comm *c, size_t need, size_t *cap)
{
    int best = -1;
    for (int i = 0; i < LH_COMM_POOL_SLOTS; i++)
        if (c->pool[i] && c->pool_cap[i] >= need && (best < 0 || c->pool_cap[i] < c->pool_cap[best])) best = i;
    if (best >= 0) {
        uint8_t *b = c->pool[best];
        *cap = c->pool_cap[best];
        c->pool[best] = NULL;
        return b;
    }
    *cap = need ? need : 1;
    return malloc(*cap);
}

/* Return a buffer to the pool; evict the smallest buffers while the pool is full or over its byte budget. */
static void stage_put(lh_comm *c, uint8_t *b, size_t cap)
{
    if (!b) return;
    if (cap > LH_COMM_POOL_MAX_BYTES / 2) {
        free(b);
        return;
    }
    for (;;) {
        size_t total = cap;
        int empty = -1, smallest = -1;
        for (int i = 0; i < LH_COMM_POOL_SLOTS; i++) {
            if (!c->pool[i]) {
                empty = i;
                continue;
            }
            total += c->pool_cap[i];
            if (smallest < 0 || c->pool_cap[i] < c->pool_cap[smallest]) smallest = i;
        }
        if (empty >= 0 && total <= LH_COMM_POOL_MAX_BYTES) {
            c->pool[empty] = b;
            c->pool_cap[empty] = cap;
            return;
        }
        if (smallest < 0 || c->pool_cap[smallest] >= cap) { /* keep the bigger buffers we have */
            free(b);
            return;
        }
        free(c->pool[smallest]);
        c->pool[smallest] = NULL;
    }
}

static void request_free(lh_comm_request *r)
{
    if (!r) return;
    stage_put(r->c, r->stage, r->stage_cap);
    free(r->mreq);
    free(r->mstatus);
    free(r);
}

/* Common checks and allocation for isend/irecv. */
static lh_status request_new(lh_comm *c, size_t bytes, int peer, int channel, int kind, int is_send,
                             lh_comm_request **out)
{
    *out = NULL;
    if (c->failed) return comm_failed_state(c);
    if (peer < 0 || peer >= c->size)
        return lh_fail(LH_ERR_INVALID_ARG, "%s: rank %d outside communicator of %d", is_send ? "send" : "recv", peer,
                       c->size);
    if (channel < 0 || channel >= LH_COMM_CHANNELS)
        return lh_fail(LH_ERR_INVALID_ARG, "%s: channel %d outside 0..%d", is_send ? "send" : "recv", channel,
                       LH_COMM_CHANNELS - 1);
    size_t maxp = c->shared->max_payload;
    size_t nframes = bytes ? (bytes + maxp - 1) / maxp : 1;
    if (nframes > (size_t)1 << 30) return lh_fail(LH_ERR_INVALID_ARG, "message of %zu bytes is too large", bytes);
    lh_comm_request *r = calloc(1, sizeof *r);
    if (!r) return lh_fail(LH_ERR_NOMEM, "comm: out of memory");
    r->c = c;
    r->is_send = is_send;
    r->peer = peer;
    r->channel = channel;
    r->kind = kind;
    r->nframes = (int)nframes;
    r->bytes = bytes;
    r->stride = lh_frame_bound(bytes < maxp ? bytes : maxp, c->shared->has_secret);
    r->stage = stage_get(c, r->stride * nframes, &r->stage_cap);
    r->mreq = malloc(nframes * sizeof(MPI_Request));
    r->mstatus = malloc(nframes * sizeof(MPI_Status));
    if (!r->stage || !r->mreq || !r->mstatus) {
        request_free(r);
        return lh_fail(LH_ERR_NOMEM, "comm: out of memory staging %zu bytes", bytes);
    }
    for (size_t i = 0; i < nframes; i++) r->mreq[i] = MPI_REQUEST_NULL;
    uint64_t *seq = (is_send ? c->send_seq : c->recv_seq) + (size_t)peer * LH_COMM_CHANNELS + channel;
    r->first_seq = *seq;
    *seq += nframes;
    *out = r;
    return LH_OK;
}

static size_t frame_payload(const lh_comm_request *r, int i)
{
    size_t maxp = r->c->shared->max_payload, off = (size_t)i * maxp;
    size_t left = r->bytes - off;
    return left < maxp ? left : maxp;
}

/* Cancel the not-yet-completed MPI requests of `r` from frame `from` on. */
static void request_cancel_rest(lh_comm_request *r, int from)
{
    for (int i = from; i < r->nframes; i++) {
        if (r->mreq[i] == MPI_REQUEST_NULL) continue;
        MPI_Cancel(&r->mreq[i]);
        MPI_Wait(&r->mreq[i], MPI_STATUS_IGNORE);
    }
}

lh_status lh_comm_isend_kind(lh_comm *c, const void *buf, size_t bytes, int dst, int channel, int kind,
                             lh_comm_request **req)
{
    if (!c || !req || (bytes && !buf)) return lh_fail(LH_ERR_INVALID_ARG, "send: NULL argument");
    lh_comm_request *r;
    lh_status st = request_new(c, bytes, dst, channel, kind, 1, &r);
    if (st) return st;
    const uint8_t *key = c->send_key ? c->send_key[dst] : NULL;
    lh_netem *emu = c->shared->netem;
    double now = emu ? lh_now_s() : 0;
    for (int i = 0; i < r->nframes; i++) {
        size_t plen = frame_payload(r, i);
        lh_frame_header h = {.kind = (uint8_t)kind, .channel = (uint8_t)channel, .src = (uint32_t)c->rank,
                             .dst = (uint32_t)dst, .seq = r->first_seq + i, .msg_len = bytes,
                             .offset = (uint64_t)i * c->shared->max_payload, .payload_len = (uint32_t)plen};
        if (emu) {
            double sent, deliver;
            lh_netem_schedule(emu, c->net_rank[c->rank], c->net_rank[dst], now, lh_frame_bound(plen, key != NULL),
                              &sent, &deliver);
            h.deliver_at_ns = (uint64_t)(deliver * 1e9) + 1; /* never 0: 0 means "not emulated" */
            r->sent_at_s = sent;
        }
        size_t flen = 0;
        uint8_t *frame = r->stage + (size_t)i * r->stride;
        st = lh_frame_seal(&h, plen ? (const uint8_t *)buf + h.offset : NULL, key, frame, r->stride, &flen);
        if (st) break;
        int rc = MPI_Isend(frame, (int)flen, MPI_BYTE, dst, channel, c->mpi, &r->mreq[i]);
        if (rc != MPI_SUCCESS) {
            st = mpi_fail(rc, "send: MPI_Isend");
            break;
        }
        c->stats.frames_sent++;
        c->stats.payload_bytes_sent += plen;
        c->stats.wire_bytes_sent += flen;
    }
    if (st) {
        request_cancel_rest(r, 0);
        request_free(r);
        return mark_failed(c, lh_fail_prefix(st, "send to rank %d on channel %d", dst, channel));
    }
    *req = r;
    return LH_OK;
}

lh_status lh_comm_irecv_kind(lh_comm *c, void *buf, size_t bytes, int src, int channel, int kind,
                             lh_comm_request **req)
{
    if (!c || !req || (bytes && !buf)) return lh_fail(LH_ERR_INVALID_ARG, "recv: NULL argument");
    lh_comm_request *r;
    lh_status st = request_new(c, bytes, src, channel, kind, 0, &r);
    if (st) return st;
    r->user = buf;
    for (int i = 0; i < r->nframes; i++) {
        size_t flen = lh_frame_bound(frame_payload(r, i), c->shared->has_secret);
        int rc = MPI_Irecv(r->stage + (size_t)i * r->stride, (int)flen, MPI_BYTE, src, channel, c->mpi, &r->mreq[i]);
        if (rc != MPI_SUCCESS) {
            st = mpi_fail(rc, "recv: MPI_Irecv");
            request_cancel_rest(r, 0);
            request_free(r);
            return mark_failed(c, lh_fail_prefix(st, "recv from rank %d on channel %d", src, channel));
        }
    }
    *req = r;
    return LH_OK;
}

lh_status lh_comm_isend(lh_comm *c, const void *buf, size_t bytes, int dst, int channel, lh_comm_request **req)
{
    if (channel < 0 || channel >= LH_COMM_USER_CHANNELS)
        return lh_fail(LH_ERR_INVALID_ARG, "send: channel %d outside 0..%d", channel, LH_COMM_USER_CHANNELS - 1);
    return lh_comm_isend_kind(c, buf, bytes, dst, channel, LH_FRAME_DATA, req);
}

lh_status lh_comm_irecv(lh_comm *c, void *buf, size_t bytes, int src, int channel, lh_comm_request **req)
{
    if (channel < 0 || channel >= LH_COMM_USER_CHANNELS)
        return lh_fail(LH_ERR_INVALID_ARG, "recv: channel %d outside 0..%d", channel, LH_COMM_USER_CHANNELS - 1);
    return lh_comm_irecv_kind(c, buf, bytes, src, channel, LH_FRAME_DATA, req);
}

static void sleep_until(lh_comm *c, double t)
{
    double now = lh_now_s();
    if (t > now) {
        lh_sleep_s(t - now);
        c->stats.emulation_wait_s += t - now;
    }
}

static lh_status wait_send(lh_comm_request *r)
{
    lh_comm *c = r->c;
    for (int i = 0; i < r->nframes; i++) {
        int rc = r->mpi_done ? (r->mpi_rc == MPI_ERR_IN_STATUS ? r->mstatus[i].MPI_ERROR : r->mpi_rc)
                             : MPI_Wait(&r->mreq[i], MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) {
            request_cancel_rest(r, i + 1);
            return mark_failed(c, lh_fail_prefix(mpi_fail(rc, "MPI_Wait"), "send to rank %d on channel %d",
                                                 r->peer, r->channel));
        }
    }
    if (c->shared->netem) sleep_until(c, r->sent_at_s);
    return LH_OK;
}

static lh_status wait_recv(lh_comm_request *r)
{
    lh_comm *c = r->c;
    const uint8_t *key = c->recv_key ? c->recv_key[r->peer] : NULL;
    double deliver_at = 0;
    for (int i = 0; i < r->nframes; i++) {
        MPI_Status status;
        int rc;
        if (r->mpi_done) {
            status = r->mstatus[i];
            rc = r->mpi_rc == MPI_ERR_IN_STATUS ? status.MPI_ERROR : r->mpi_rc;
        } else {
            rc = MPI_Wait(&r->mreq[i], &status);
        }
        lh_status st = LH_OK;
        if (rc != MPI_SUCCESS) { /* MPI_Wait reports errors in rc; status.MPI_ERROR is unset */
            int err = rc;
            int cls = 0;
            MPI_Error_class(err, &cls);
            if (cls == MPI_ERR_TRUNCATE)
                st = lh_fail(LH_ERR_MISMATCH, "rank %d sent a frame longer than this rank expects (message size "
                                              "mismatch: expecting %zu bytes)", r->peer, r->bytes);
            else
                st = mpi_fail(err, "MPI_Wait");
        }
        int got = 0;
        if (!st) MPI_Get_count(&status, MPI_BYTE, &got);
        size_t plen = frame_payload(r, i);
        size_t off = (size_t)i * c->shared->max_payload;
        lh_frame_header h;
        if (!st)
            st = lh_frame_open(r->stage + (size_t)i * r->stride, (size_t)got, key, &h, plen ? r->user + off : NULL,
                               plen);
        if (!st) {
            lh_frame_expect want = {.kind = (uint8_t)r->kind, .channel = (uint8_t)r->channel,
                                    .src = (uint32_t)r->peer, .dst = (uint32_t)c->rank, .seq = r->first_seq + i,
                                    .msg_len = r->bytes, .offset = off, .payload_len = (uint32_t)plen};
            st = lh_frame_check(&h, &want);
        }
        if (!st && c->shared->netem && h.deliver_at_ns == 0)
            st = lh_fail(LH_ERR_MISMATCH, "frame from rank %d carries no emulated delivery time, but this rank "
                                          "emulates the network", r->peer);
        if (!st && !c->shared->netem && h.deliver_at_ns != 0)
            st = lh_fail(LH_ERR_MISMATCH, "frame from rank %d carries an emulated delivery time, but this rank "
                                          "uses the real network", r->peer);
        if (st) {
            request_cancel_rest(r, i + 1);
            return mark_failed(c, lh_fail_prefix(st, "recv from rank %d on channel %d", r->peer, r->channel));
        }
        double t = (double)(h.deliver_at_ns - 1) * 1e-9;
        if (t > deliver_at) deliver_at = t;
        c->stats.frames_received++;
        c->stats.payload_bytes_received += plen;
        c->stats.wire_bytes_received += (uint64_t)got;
    }
    if (c->shared->netem) sleep_until(c, deliver_at);
    return LH_OK;
}

/*
 * With a timeout, complete the MPI side by polling (sleeping between polls, which
 * also leaves the core to others on an oversubscribed host) until the deadline.
 * A receive that times out is cancelled; a send stuck in rendezvous cannot be
 * cancelled reliably, so its request is left to the dying job rather than
 * freed under MPI's feet.
 */
static lh_status await_with_timeout(lh_comm_request *r, int *leak)
{
    double timeout = r->c->shared->timeout_s;
    *leak = 0;
    if (timeout <= 0 || r->mpi_done) return LH_OK;
    double deadline = lh_now_s() + timeout, pause = 10e-6;
    for (;;) {
        int flag = 0;
        int rc = MPI_Testall(r->nframes, r->mreq, &flag, r->mstatus);
        if (rc != MPI_SUCCESS || flag) {
            r->mpi_done = 1;
            r->mpi_rc = rc;
            return LH_OK;
        }
        if (lh_now_s() > deadline) break;
        lh_sleep_s(pause);
        if (pause < 200e-6) pause *= 2;
    }
    lh_status st = lh_fail(LH_ERR_TIMEOUT, "%s rank %d on channel %d: no answer within %.3g s (peer dead or hung?)",
                           r->is_send ? "send to" : "receive from", r->peer, r->channel, timeout);
    if (r->is_send) *leak = 1;
    else request_cancel_rest(r, 0);
    return mark_failed(r->c, st);
}

lh_status lh_comm_wait(lh_comm_request *req)
{
    if (!req) return lh_fail(LH_ERR_INVALID_ARG, "wait: NULL request");
    if (req->c->failed) { /* the stream is out of step: waiting could block forever */
        lh_status st = comm_failed_state(req->c);
        /* A receive can be cancelled; a send stuck in rendezvous may never complete, so its
         * request (and staging buffer, which MPI may still read) is left to the dying job. */
        if (req->is_send) return st;
        request_cancel_rest(req, 0);
        request_free(req);
        return st;
    }
    int leak = 0;
    lh_status st = await_with_timeout(req, &leak);
    if (leak) return st;
    if (!st) st = req->is_send ? wait_send(req) : wait_recv(req);
    request_free(req);
    return st;
}

lh_status lh_comm_test(lh_comm_request *req, int *done)
{
    if (!req || !done) return lh_fail(LH_ERR_INVALID_ARG, "test: NULL argument");
    *done = 0;
    if (!req->c->failed && !req->mpi_done) {
        int flag = 0;
        int rc = MPI_Testall(req->nframes, req->mreq, &flag, req->mstatus);
        if (rc == MPI_SUCCESS && !flag) return LH_OK;
        req->mpi_done = 1; /* completed, or failed: lh_comm_wait reports which from the saved statuses */
        req->mpi_rc = rc;
    }
    if (!req->c->failed && req->mpi_rc == MPI_SUCCESS && req->c->shared->netem) {
        /* emulated time not reached yet: not done (the stamp is only a hint here; wait verifies it) */
        double due = req->sent_at_s;
        if (!req->is_send) {
            const uint8_t *h = req->stage + (size_t)(req->nframes - 1) * req->stride + 40;
            uint64_t ns = 0;
            for (int i = 0; i < 8; i++) ns |= (uint64_t)h[i] << (8 * i);
            due = ns ? (double)(ns - 1) * 1e-9 : 0;
        }
        if (lh_now_s() < due) return LH_OK;
    }
    *done = 1;
    return lh_comm_wait(req);
}

lh_status lh_comm_cancel(lh_comm_request *req)
{
    if (!req) return lh_fail(LH_ERR_INVALID_ARG, "cancel: NULL request");
    if (req->is_send) return lh_fail(LH_ERR_INVALID_ARG, "cancel: only receives can be withdrawn");
    lh_comm *c = req->c;
    if (!req->mpi_done) request_cancel_rest(req, 0);
    request_free(req);
    if (!c->failed) {
        c->failed = 1;
        snprintf(c->failure, sizeof c->failure, "a receive was withdrawn, so the stream is out of step");
    }
    return LH_OK;
}

lh_status lh_comm_waitall(lh_comm_request **reqs, int n)
{
    lh_status first = LH_OK;
    char msg[512] = "";
    for (int i = 0; i < n; i++) {
        if (!reqs[i]) continue;
        lh_status st = lh_comm_wait(reqs[i]);
        reqs[i] = NULL;
        if (st && !first) {
            first = st;
            snprintf(msg, sizeof msg, "%s", lh_last_error());
        }
    }
    if (first) return lh_fail(first, "%s", msg);
    return LH_OK;
}

lh_status lh_comm_send(lh_comm *c, const void *buf, size_t bytes, int dst, int channel)
{
    lh_comm_request *r;
    lh_status st = lh_comm_isend(c, buf, bytes, dst, channel, &r);
    return st ? st : lh_comm_wait(r);
}

lh_status lh_comm_recv(lh_comm *c, void *buf, size_t bytes, int src, int channel)
{
    lh_comm_request *r;
    lh_status st = lh_comm_irecv(c, buf, bytes, src, channel, &r);
    return st ? st : lh_comm_wait(r);
}

lh_status lh_comm_sendrecv_coll(lh_comm *c, const void *sbuf, size_t sbytes, int dst, void *rbuf, size_t rbytes,
                                int src)
{
    lh_comm_request *reqs[2] = {NULL, NULL};
    lh_status st = lh_comm_irecv_kind(c, rbuf, rbytes, src, LH_COMM_CH_COLLECTIVE, LH_FRAME_COLLECTIVE, &reqs[1]);
    if (!st) st = lh_comm_isend_kind(c, sbuf, sbytes, dst, LH_COMM_CH_COLLECTIVE, LH_FRAME_COLLECTIVE, &reqs[0]);
    lh_status st2 = lh_comm_waitall(reqs, 2);
    return st ? st : st2;
}
