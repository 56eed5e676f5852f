/*
 * Collectives over framed point-to-point messages.
 *
 * Why not MPI_Allreduce: MPI's collectives would bypass the frames, so they
 * would escape validation, encryption and link emulation.  Reduce-scatter and
 * all-gather come in two shapes with the same bytes per rank ((p-1)/p of the
 * data each, the optimum): the ring (p-1 steps to the right-hand neighbour,
 * so p-1 link latencies) and the direct exchange (every rank sends each
 * block straight to its owner at once: one latency, p-1 messages in flight).
 * On WAN links latency dominates, so small groups use the direct exchange
 * and large ones the ring (lh_comm_algorithm).  Broadcast is a binomial tree,
 * the barrier a dissemination barrier.  Every rank runs the same
 * sequence of sends and receives, so the per-channel sequence numbers stay in
 * step; sums are computed in the same order on every rank, so results are
 * bitwise identical across ranks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_comm_internal.h"

void lh_comm_block_range(size_t n, int parts, int index, size_t *offset, size_t *count)
{
    size_t base = n / (size_t)parts, extra = n % (size_t)parts, i = (size_t)index;
    *offset = i * base + (i < extra ? i : extra);
    *count = base + (i < extra ? 1 : 0);
}

/* Direct reduce-scatter: every rank sends block k to rank k at once; the owner sums in rank order. */
static lh_status direct_reduce_scatter(lh_comm *c, float *work, size_t n)
{
    int p = lh_comm_size(c), r = lh_comm_rank(c);
    size_t off, cnt, max_cnt;
    lh_comm_block_range(n, p, 0, &off, &max_cnt);
    lh_comm_block_range(n, p, r, &off, &cnt);
    float *tmp = malloc(((size_t)p * max_cnt + 1) * sizeof(float));
    lh_comm_request **reqs = calloc(2 * (size_t)p, sizeof *reqs);
    if (!tmp || !reqs) {
        free(tmp);
        free(reqs);
        return lh_fail(LH_ERR_NOMEM, "reduce-scatter: out of memory");
    }
    lh_status st = LH_OK;
    for (int k = 0; k < p && !st; k++)
        if (k != r)
            st = lh_comm_irecv_kind(c, tmp + (size_t)k * max_cnt, cnt * sizeof(float), k, LH_COMM_CH_COLLECTIVE,
                                    LH_FRAME_COLLECTIVE, &reqs[p + k]);
    for (int k = 0; k < p && !st; k++) {
        if (k == r) continue;
        size_t koff, kcnt;
        lh_comm_block_range(n, p, k, &koff, &kcnt);
        st = lh_comm_isend_kind(c, work + koff, kcnt * sizeof(float), k, LH_COMM_CH_COLLECTIVE, LH_FRAME_COLLECTIVE,
                                &reqs[k]);
    }
    lh_status wst = lh_comm_waitall(reqs, 2 * p);
    if (!st) st = wst;
    if (!st) {
        memcpy(tmp + (size_t)r * max_cnt, work + off, cnt * sizeof(float));
        for (size_t i = 0; i < cnt; i++) {
            float sum = 0;
            for (int k = 0; k < p; k++) sum += tmp[(size_t)k * max_cnt + i];
            work[off + i] = sum;
        }
    }
    free(tmp);
    free(reqs);
    return st;
}

/* Reduce-scatter of `work` in place (ring or direct): afterwards block `rank` holds the sum over ranks. */
static lh_status reduce_scatter_blocks(lh_comm *c, float *work, size_t n)
{
    int p = lh_comm_size(c), r = lh_comm_rank(c);
    if (p == 1) return LH_OK;
    if (lh_comm_use_direct(c)) return direct_reduce_scatter(c, work, n);
    size_t off, cnt, max_cnt;
    lh_comm_block_range(n, p, 0, &off, &max_cnt);
    float *tmp = malloc((max_cnt ? max_cnt : 1) * sizeof(float));
    if (!tmp) return lh_fail(LH_ERR_NOMEM, "reduce-scatter: out of memory");
    int right = (r + 1) % p, left = (r - 1 + p) % p;
    lh_status st = LH_OK;
    for (int s = 0; s < p - 1 && !st; s++) {
        int send_blk = (r - s - 1 + 2 * p) % p, recv_blk = (r - s - 2 + 2 * p) % p;
        size_t soff, scnt;
        lh_comm_block_range(n, p, send_blk, &soff, &scnt);
        lh_comm_block_range(n, p, recv_blk, &off, &cnt);
        st = lh_comm_sendrecv_coll(c, work + soff, scnt * sizeof(float), right, tmp, cnt * sizeof(float), left);
        if (!st)
            for (size_t i = 0; i < cnt; i++) work[off + i] += tmp[i];
    }
    free(tmp);
    return st;
}

lh_status lh_comm_allgatherv_inplace(lh_comm *c, void *buf, const size_t *offsets, const size_t *counts)
{
    if (!c || !offsets || !counts) return lh_fail(LH_ERR_INVALID_ARG, "all-gather: NULL argument");
    int p = lh_comm_size(c), r = lh_comm_rank(c);
    int right = (r + 1) % p, left = (r - 1 + p) % p;
    uint8_t *b = buf;
    if (p > 1 && lh_comm_use_direct(c)) {
        lh_comm_request **reqs = calloc(2 * (size_t)p, sizeof *reqs);
        if (!reqs) return lh_fail(LH_ERR_NOMEM, "all-gather: out of memory");
        lh_status st = LH_OK;
        for (int k = 0; k < p && !st; k++)
            if (k != r)
                st = lh_comm_irecv_kind(c, b + offsets[k], counts[k], k, LH_COMM_CH_COLLECTIVE, LH_FRAME_COLLECTIVE,
                                        &reqs[p + k]);
        for (int k = 0; k < p && !st; k++)
            if (k != r)
                st = lh_comm_isend_kind(c, b + offsets[r], counts[r], k, LH_COMM_CH_COLLECTIVE, LH_FRAME_COLLECTIVE,
                                        &reqs[k]);
        lh_status wst = lh_comm_waitall(reqs, 2 * p);
        free(reqs);
        if (st || wst) return lh_fail_prefix(st ? st : wst, "all-gather");
        return LH_OK;
    }
    for (int s = 0; s < p - 1; s++) {
        int send_blk = (r - s + p) % p, recv_blk = (r - s - 1 + p) % p;
        lh_status st = lh_comm_sendrecv_coll(c, b + offsets[send_blk], counts[send_blk], right, b + offsets[recv_blk],
                                             counts[recv_blk], left);
        if (st) return lh_fail_prefix(st, "all-gather step %d", s);
    }
    return LH_OK;
}

/* All-gather of the float blocks of lh_comm_block_range. */
static lh_status ring_allgather_blocks(lh_comm *c, float *data, size_t n)
{
    int p = lh_comm_size(c);
    size_t *offsets = malloc(2 * (size_t)p * sizeof(size_t));
    if (!offsets) return lh_fail(LH_ERR_NOMEM, "all-gather: out of memory");
    size_t *counts = offsets + p;
    for (int i = 0; i < p; i++) {
        lh_comm_block_range(n, p, i, &offsets[i], &counts[i]);
        offsets[i] *= sizeof(float);
        counts[i] *= sizeof(float);
    }
    lh_status st = lh_comm_allgatherv_inplace(c, data, offsets, counts);
    free(offsets);
    return st;
}

lh_status lh_comm_allreduce_f32(lh_comm *c, float *data, size_t n)
{
    if (!c || (n && !data)) return lh_fail(LH_ERR_INVALID_ARG, "allreduce: NULL argument");
    lh_status st = reduce_scatter_blocks(c, data, n);
    if (!st) st = ring_allgather_blocks(c, data, n);
    return st ? lh_fail_prefix(st, "allreduce of %zu floats", n) : LH_OK;
}

lh_status lh_comm_reduce_scatter_f32(lh_comm *c, const float *in, float *out, size_t n)
{
    if (!c || (n && (!in || !out))) return lh_fail(LH_ERR_INVALID_ARG, "reduce-scatter: NULL argument");
    float *work = malloc((n ? n : 1) * sizeof(float));
    if (!work) return lh_fail(LH_ERR_NOMEM, "reduce-scatter: out of memory for %zu floats", n);
    if (n) memcpy(work, in, n * sizeof(float));
    lh_status st = reduce_scatter_blocks(c, work, n);
    if (!st) {
        size_t off, cnt;
        lh_comm_block_range(n, lh_comm_size(c), lh_comm_rank(c), &off, &cnt);
        if (cnt) memcpy(out, work + off, cnt * sizeof(float));
    }
    free(work);
    return st ? lh_fail_prefix(st, "reduce-scatter of %zu floats", n) : LH_OK;
}

lh_status lh_comm_allgather(lh_comm *c, const void *mine, size_t bytes_each, void *out)
{
    if (!c || (bytes_each && (!mine || !out))) return lh_fail(LH_ERR_INVALID_ARG, "all-gather: NULL argument");
    int p = lh_comm_size(c), r = lh_comm_rank(c);
    uint8_t *o = out;
    if (bytes_each) memmove(o + (size_t)r * bytes_each, mine, bytes_each);
    size_t *offsets = malloc(2 * (size_t)p * sizeof(size_t));
    if (!offsets) return lh_fail(LH_ERR_NOMEM, "all-gather: out of memory");
    size_t *counts = offsets + p;
    for (int i = 0; i < p; i++) {
        offsets[i] = (size_t)i * bytes_each;
        counts[i] = bytes_each;
    }
    lh_status st = lh_comm_allgatherv_inplace(c, out, offsets, counts);
    free(offsets);
    return st;
}

lh_status lh_comm_bcast(lh_comm *c, void *buf, size_t bytes, int root)
{
    if (!c || (bytes && !buf)) return lh_fail(LH_ERR_INVALID_ARG, "broadcast: NULL argument");
    int p = lh_comm_size(c), r = lh_comm_rank(c);
    if (root < 0 || root >= p) return lh_fail(LH_ERR_INVALID_ARG, "broadcast: root %d outside %d ranks", root, p);
    int vr = (r - root + p) % p, mask = 1;
    lh_comm_request *req;
    while (mask < p) {
        if (vr & mask) {
            int src = (vr - mask + root) % p;
            lh_status st = lh_comm_irecv_kind(c, buf, bytes, src, LH_COMM_CH_COLLECTIVE, LH_FRAME_COLLECTIVE, &req);
            if (!st) st = lh_comm_wait(req);
            if (st) return lh_fail_prefix(st, "broadcast from root %d", root);
            break;
        }
        mask <<= 1;
    }
    mask >>= 1;
    while (mask > 0) {
        if (vr + mask < p) {
            int dst = (vr + mask + root) % p;
            lh_status st = lh_comm_isend_kind(c, buf, bytes, dst, LH_COMM_CH_COLLECTIVE, LH_FRAME_COLLECTIVE, &req);
            if (!st) st = lh_comm_wait(req);
            if (st) return lh_fail_prefix(st, "broadcast from root %d", root);
        }
        mask >>= 1;
    }
    return LH_OK;
}

lh_status lh_comm_barrier(lh_comm *c)
{
    if (!c) return lh_fail(LH_ERR_INVALID_ARG, "barrier: NULL communicator");
    int p = lh_comm_size(c), r = lh_comm_rank(c);
    for (int k = 1; k < p; k <<= 1) {
        lh_comm_request *reqs[2] = {NULL, NULL};
        lh_status st = lh_comm_irecv_kind(c, NULL, 0, (r - k % p + p) % p, LH_COMM_CH_CONTROL, LH_FRAME_CONTROL,
                                          &reqs[1]);
        if (!st) st = lh_comm_isend_kind(c, NULL, 0, (r + k) % p, LH_COMM_CH_CONTROL, LH_FRAME_CONTROL, &reqs[0]);
        lh_status st2 = lh_comm_waitall(reqs, 2);
        if (st || st2) return lh_fail_prefix(st ? st : st2, "barrier");
    }
    return LH_OK;
}

lh_status lh_comm_agree(lh_comm *c, lh_status mine, const char *what)
{
    char message[1024];
    snprintf(message, sizeof message, "%s", lh_last_error()); /* the exchange may overwrite it */
    int n = lh_comm_size(c), first = -1;
    uint8_t flag = mine != LH_OK, *flags = malloc((size_t)n);
    if (!flags) return lh_fail(LH_ERR_NOMEM, "agree: out of memory");
    lh_status st = lh_comm_allgather(c, &flag, 1, flags);
    for (int r = 0; r < n && !st && first < 0; r++)
        if (flags[r]) first = r;
    free(flags);
    /* Every rank gets the first failing rank's own message, so whichever rank reports the failure (a job
     * ending in MPI_Abort may only show the first) names the cause. */
    char cause[1024];
    memcpy(cause, message, sizeof cause);
    if (!st && first >= 0) st = lh_comm_bcast(c, cause, sizeof cause, first);
    cause[sizeof cause - 1] = '\0';
    if (mine) return lh_fail(mine, "%s", message);
    if (st) return st;
    if (first >= 0) return lh_fail(LH_ERR_MISMATCH, "%s failed on rank %d: %s", what, first, cause);
    return LH_OK;
}
