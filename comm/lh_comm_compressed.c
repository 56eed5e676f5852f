/*
 * Compressed allreduce (see lh_comm_compressed.h for the algorithm and its
 * error bound).  Frames from compress/ travel inside lh_comm frames, so they
 * are validated, optionally encrypted and emulated like everything else.
 *
 * Why frames are padded to lh_quant_bound: the receiver must post a receive of
 * exactly the right size before the data exists; without the zstd stage the
 * quantized frame size is a function of the shape alone, so the bound is the
 * size, and any padding (none in practice) is counted honestly on the wire.
 */
#include "lh_comm_compressed.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lh_bytes.h"
#include "lh_comm_internal.h"
#include "lh_io.h"

struct lh_callreduce {
    lh_comm *c;
    size_t n;
    lh_quant_params qp;
    int error_feedback, size, rank;
    uint64_t seed;
    lh_grad_codec *worker; /* residual over the whole gradient */
    lh_grad_codec *server; /* residual over this rank's block */
    lh_quant_ctx *qctx;
    size_t *off, *cnt, *fbytes; /* per block: element range and frame size */
    size_t *foff;               /* per block: offset of its frame in `frames` (send side and all-gather) */
    uint8_t *frames;            /* one frame per block */
    uint8_t *inbox;             /* p frames of this rank's block, one per contributor */
    float *reduced;             /* this rank's reduced block */
};

lh_quant_params lh_callreduce_default_params(int bits)
{
    lh_quant_params p = lh_quant_params_default(bits);
    p.grouping = LH_GROUP_BLOCK;
    p.group_size = 256;
    p.scale_type = LH_SCALE_FP32;
    p.rounding = LH_ROUND_NEAREST;
    p.zstd_level = 0;
    return p;
}

double lh_callreduce_max_gap(const lh_quant_params *p)
{
    const float *lv = lh_quant_levels(p->grid, p->bits);
    if (!lv) return 2.0;
    double g = 0;
    for (int i = 1; i < (1 << p->bits); i++) g = fmax(g, (double)lv[i] - lv[i - 1]);
    return g;
}

void lh_callreduce_free(lh_callreduce *a)
{
    if (!a) return;
    lh_grad_free(a->worker);
    lh_grad_free(a->server);
    lh_quant_ctx_free(a->qctx);
    free(a->off);
    free(a->frames);
    free(a->inbox);
    free(a->reduced);
    free(a);
}

lh_status lh_callreduce_create(lh_comm *c, size_t n, const lh_quant_params *p, uint64_t seed, int error_feedback,
                               lh_callreduce **out)
{
    if (!c || !p || !out) return lh_fail(LH_ERR_INVALID_ARG, "compressed allreduce: NULL argument");
    *out = NULL;
    lh_status st = lh_quant_params_check(p);
    if (st) return lh_fail_prefix(st, "compressed allreduce");
    if (p->bits < 1 || p->bits > 8)
        return lh_fail(LH_ERR_INVALID_ARG, "compressed allreduce: bits must be 1..8, got %d", p->bits);
    if (p->zstd_level != 0)
        return lh_fail(LH_ERR_INVALID_ARG, "compressed allreduce: zstd_level must be 0 (frame sizes must be "
                                           "known in advance)");
    if (p->grouping == LH_GROUP_CHANNEL)
        return lh_fail(LH_ERR_INVALID_ARG, "compressed allreduce: per-channel grouping means one scale per value "
                                           "for a flat gradient; use per block or per tensor");
    lh_callreduce *a = calloc(1, sizeof *a);
    if (!a) return lh_fail(LH_ERR_NOMEM, "compressed allreduce: out of memory");
    a->c = c;
    a->n = n;
    a->qp = *p;
    a->error_feedback = error_feedback;
    a->size = lh_comm_size(c);
    a->rank = lh_comm_rank(c);
    a->seed = seed;
    int np = a->size;
    a->off = malloc(4 * (size_t)np * sizeof(size_t));
    if (!a->off) goto nomem;
    a->cnt = a->off + np;
    a->fbytes = a->cnt + np;
    a->foff = a->fbytes + np;
    size_t total = 0;
    for (int b = 0; b < np; b++) {
        lh_comm_block_range(n, np, b, &a->off[b], &a->cnt[b]);
        a->fbytes[b] = a->cnt[b] ? lh_quant_bound(p, 1, a->cnt[b]) : 0;
        if (a->cnt[b] && !a->fbytes[b]) {
            size_t bad = a->cnt[b];
            lh_callreduce_free(a);
            return lh_fail(LH_ERR_INVALID_ARG, "compressed allreduce: no frame bound for %zu values", bad);
        }
        a->foff[b] = total;
        total += a->fbytes[b];
    }
    size_t mine = a->cnt[a->rank];
    a->frames = malloc(total ? total : 1);
    a->inbox = malloc(a->fbytes[a->rank] * np + 1);
    a->reduced = malloc((mine ? mine : 1) * sizeof(float));
    if (!a->frames || !a->inbox || !a->reduced) goto nomem;
    st = lh_quant_ctx_create(&a->qctx);
    /* Different seeds per rank and per side keep stochastic rounding independent across contributors. */
    if (!st) st = lh_grad_create(n ? n : 1, p, seed * 1000003u + (uint64_t)a->rank * 2, &a->worker);
    if (!st) st = lh_grad_create(mine ? mine : 1, p, seed * 1000003u + (uint64_t)a->rank * 2 + 1, &a->server);
    if (st) {
        lh_callreduce_free(a);
        return lh_fail_prefix(st, "compressed allreduce");
    }
    *out = a;
    return LH_OK;
nomem:
    lh_callreduce_free(a);
    return lh_fail(LH_ERR_NOMEM, "compressed allreduce: out of memory for %zu values", n);
}

const float *lh_callreduce_worker_residual(const lh_callreduce *a)
{
    return lh_grad_residual(a->worker);
}

const float *lh_callreduce_server_residual(const lh_callreduce *a, size_t *offset, size_t *count)
{
    if (offset) *offset = a->off[a->rank];
    if (count) *count = a->cnt[a->rank];
    return lh_grad_residual(a->server);
}

/* Encode into a frame of exactly a->fbytes[b] bytes (zero padding after the frame, if any). */
static lh_status encode_block(lh_callreduce *a, lh_grad_codec *g, const float *src, size_t offset, int b,
                              uint64_t step, uint8_t *dst)
{
    size_t len = 0;
    lh_status st = lh_grad_encode_range(g, src, offset, a->cnt[b], step, dst, a->fbytes[b], &len);
    if (st) return lh_fail_prefix(st, "compressing block %d", b);
    if (len < a->fbytes[b]) memset(dst + len, 0, a->fbytes[b] - len);
    return LH_OK;
}

/* Decode (add or store) a padded frame of block b. */
static lh_status decode_block(lh_callreduce *a, const uint8_t *frame, int b, float *out, int add, int from)
{
    lh_quant_info info;
    lh_status st = lh_quant_peek(frame, a->fbytes[b], &info);
    if (!st && info.frame_bytes > a->fbytes[b])
        st = lh_fail(LH_ERR_FORMAT, "frame of %zu bytes exceeds the %zu expected", info.frame_bytes, a->fbytes[b]);
    if (!st)
        st = add ? lh_quant_decode_add(a->qctx, frame, info.frame_bytes, out, 1, a->cnt[b])
                 : lh_quant_decode(a->qctx, frame, info.frame_bytes, out, 1, a->cnt[b]);
    if (st) return lh_fail_prefix(st, "compressed block %d from rank %d", b, from);
    return LH_OK;
}

lh_status lh_callreduce_run(lh_callreduce *a, float *data, uint64_t step)
{
    if (!a || (a->n && !data)) return lh_fail(LH_ERR_INVALID_ARG, "compressed allreduce: NULL argument");
    int np = a->size, me = a->rank;
    size_t mine = a->cnt[me], inbox_stride = a->fbytes[me];
    lh_status st = LH_OK;
    /* 1. reduce-scatter: quantize others' blocks, exchange directly with every owner */
    lh_comm_request **reqs = calloc(2 * (size_t)np, sizeof *reqs);
    if (!reqs) return lh_fail(LH_ERR_NOMEM, "compressed allreduce: out of memory");
    for (int k = 0; k < np && !st; k++) {
        if (k == me || !mine) continue;
        st = lh_comm_irecv_kind(a->c, a->inbox + (size_t)k * inbox_stride, inbox_stride, k, LH_COMM_CH_COLLECTIVE,
                                LH_FRAME_COLLECTIVE, &reqs[np + k]);
    }
    for (int b = 0; b < np && !st; b++) {
        if (b == me || !a->cnt[b]) continue;
        uint8_t *f = a->frames + a->foff[b];
        st = encode_block(a, a->worker, data, a->off[b], b, step, f);
        if (!st)
            st = lh_comm_isend_kind(a->c, f, a->fbytes[b], b, LH_COMM_CH_COLLECTIVE, LH_FRAME_COLLECTIVE, &reqs[b]);
    }
    lh_status wst = lh_comm_waitall(reqs, 2 * np);
    if (!st) st = wst;
    if (!st && !a->error_feedback) lh_grad_reset(a->worker);
    /* The owner sums in rank order, its own contribution exact. */
    if (!st && mine) {
        memset(a->reduced, 0, mine * sizeof(float));
        for (int k = 0; k < np && !st; k++) {
            if (k == me)
                for (size_t i = 0; i < mine; i++) a->reduced[i] += data[a->off[me] + i];
            else
                st = decode_block(a, a->inbox + (size_t)k * inbox_stride, me, a->reduced, 1, k);
        }
    }
    /* 2. all-gather of the re-quantized reduced blocks; everyone decodes the same bytes */
    if (!st && mine) st = encode_block(a, a->server, a->reduced, 0, me, step, a->frames + a->foff[me]);
    if (!st && !a->error_feedback) lh_grad_reset(a->server);
    if (!st) st = lh_comm_allgatherv_inplace(a->c, a->frames, a->foff, a->fbytes);
    for (int b = 0; b < np && !st; b++)
        if (a->cnt[b]) st = decode_block(a, a->frames + a->foff[b], b, data + a->off[b], 0, b);
    free(reqs);
    return st ? lh_fail_prefix(st, "compressed allreduce of %zu floats at %d bits", a->n, a->qp.bits) : LH_OK;
}

/*
 * Residual state (docs/formats.md, "compressed allreduce state"), all
 * little-endian:
 *    0 "LHCS" | 4 u32 version 1 | 8 u64 n | 16 u32 ranks | 20 u32 rank
 *   24 u64 block offset | 32 u64 block count | 40 u64 worker bytes W
 *   48 u64 server bytes S | 56 worker LHGS state (W bytes), server LHGS state (S bytes)
 *   then u32 CRC-32C of all bytes before it.
 */
#define CR_STATE_MAGIC   "LHCS"
#define CR_STATE_VERSION 1
#define CR_STATE_HEADER  56

size_t lh_callreduce_state_bytes(const lh_callreduce *a)
{
    if (!a) return 0;
    return CR_STATE_HEADER + lh_grad_state_bytes(a->worker) + lh_grad_state_bytes(a->server) + 4;
}

lh_status lh_callreduce_save_state(const lh_callreduce *a, void *dst_v, size_t dst_cap, size_t *dst_len)
{
    uint8_t *dst = dst_v;
    if (dst_len) *dst_len = 0;
    if (!a || !dst || !dst_len)
        return lh_fail(LH_ERR_INVALID_ARG, "compressed allreduce save state: NULL argument");
    size_t need = lh_callreduce_state_bytes(a), w = lh_grad_state_bytes(a->worker),
           s = lh_grad_state_bytes(a->server);
    if (dst_cap < need)
        return lh_fail(LH_ERR_CAPACITY,
                       "compressed allreduce save state: destination holds %zu bytes, %zu needed", dst_cap,
                       need);
    memcpy(dst, CR_STATE_MAGIC, 4);
    lh_put_le32(dst + 4, CR_STATE_VERSION);
    lh_put_le64(dst + 8, a->n);
    lh_put_le32(dst + 16, (uint32_t)a->size);
    lh_put_le32(dst + 20, (uint32_t)a->rank);
    lh_put_le64(dst + 24, a->off[a->rank]);
    lh_put_le64(dst + 32, a->cnt[a->rank]);
    lh_put_le64(dst + 40, w);
    lh_put_le64(dst + 48, s);
    size_t len;
    lh_status st = lh_grad_save_state(a->worker, dst + CR_STATE_HEADER, w, &len);
    if (!st) st = lh_grad_save_state(a->server, dst + CR_STATE_HEADER + w, s, &len);
    if (st) return lh_fail_prefix(st, "compressed allreduce save state");
    lh_put_le32(dst + need - 4, lh_crc32c(0, dst, need - 4));
    *dst_len = need;
    return LH_OK;
}

lh_status lh_callreduce_state_peek(const void *src, size_t len, lh_callreduce_state_info *info)
{
    const uint8_t *s = src;
    if (!info) return lh_fail(LH_ERR_INVALID_ARG, "compressed allreduce state: NULL argument");
    memset(info, 0, sizeof *info);
    if (!s || len < CR_STATE_HEADER + 4)
        return lh_fail(LH_ERR_TRUNCATED,
                       "compressed allreduce state: %zu bytes, shorter than the %d-byte minimum", len,
                       CR_STATE_HEADER + 4);
    if (memcmp(s, CR_STATE_MAGIC, 4) != 0)
        return lh_fail(LH_ERR_FORMAT,
                       "compressed allreduce state: bad magic (not a compressed allreduce state)");
    if (lh_get_le32(s + 4) != CR_STATE_VERSION)
        return lh_fail(LH_ERR_UNSUPPORTED, "compressed allreduce state: version %u, this build reads %d",
                       lh_get_le32(s + 4), CR_STATE_VERSION);
    uint64_t w = lh_get_le64(s + 40), sv = lh_get_le64(s + 48);
    uint64_t room = len - CR_STATE_HEADER - 4;
    if (w > room || sv > room - w)
        return lh_fail(LH_ERR_TRUNCATED,
                       "compressed allreduce state: %zu bytes cannot hold residual states of "
                       "%llu and %llu bytes",
                       len, (unsigned long long)w, (unsigned long long)sv);
    if (w + sv < room)
        return lh_fail(LH_ERR_FORMAT, "compressed allreduce state: %llu trailing bytes",
                       (unsigned long long)(room - w - sv));
    uint32_t want = lh_get_le32(s + len - 4), got = lh_crc32c(0, s, len - 4);
    if (want != got)
        return lh_fail(LH_ERR_CORRUPT,
                       "compressed allreduce state: CRC-32C mismatch (stored %08x, computed %08x)", want,
                       got);
    info->n = lh_get_le64(s + 8);
    info->ranks = lh_get_le32(s + 16);
    info->rank = lh_get_le32(s + 20);
    info->block_offset = lh_get_le64(s + 24);
    info->block_count = lh_get_le64(s + 32);
    if (info->ranks == 0 || info->rank >= info->ranks)
        return lh_fail(LH_ERR_FORMAT, "compressed allreduce state: rank %u of a group of %u", info->rank,
                       info->ranks);
    if (info->block_offset > info->n || info->block_count > info->n - info->block_offset)
        return lh_fail(LH_ERR_FORMAT, "compressed allreduce state: block [%llu, +%llu) outside %llu values",
                       (unsigned long long)info->block_offset, (unsigned long long)info->block_count,
                       (unsigned long long)info->n);
    info->worker = s + CR_STATE_HEADER;
    info->worker_bytes = (size_t)w;
    info->server = s + CR_STATE_HEADER + w;
    info->server_bytes = (size_t)sv;
    return LH_OK;
}

lh_status lh_callreduce_load_state(lh_callreduce *a, const void *src, size_t len)
{
    if (!a) return lh_fail(LH_ERR_INVALID_ARG, "compressed allreduce load state: NULL allreduce");
    lh_callreduce_state_info in;
    lh_status st = lh_callreduce_state_peek(src, len, &in);
    if (st) return st;
    if (in.n != a->n || in.ranks != (uint32_t)a->size || in.rank != (uint32_t)a->rank)
        return lh_fail(
            LH_ERR_MISMATCH,
            "compressed allreduce state: saved by rank %u of %u over %llu values, this is rank %d of %d "
            "over %zu",
            in.rank, in.ranks, (unsigned long long)in.n, a->rank, a->size, a->n);
    if (in.block_offset != a->off[a->rank] || in.block_count != a->cnt[a->rank])
        return lh_fail(LH_ERR_MISMATCH,
                       "compressed allreduce state: block [%llu, +%llu), this rank owns [%zu, +%zu)",
                       (unsigned long long)in.block_offset, (unsigned long long)in.block_count,
                       a->off[a->rank], a->cnt[a->rank]);
    st = lh_grad_check_state(a->worker, in.worker, in.worker_bytes);
    if (st) return lh_fail_prefix(st, "compressed allreduce state: worker residual");
    st = lh_grad_check_state(a->server, in.server, in.server_bytes);
    if (st) return lh_fail_prefix(st, "compressed allreduce state: server residual");
    st = lh_grad_load_state(a->worker, in.worker, in.worker_bytes);
    if (!st) st = lh_grad_load_state(a->server, in.server, in.server_bytes);
    return st ? lh_fail_prefix(st, "compressed allreduce state") : LH_OK;
}
