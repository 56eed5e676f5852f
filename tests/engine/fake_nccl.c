/*
 * An emulated NCCL for tests: the lh_nccl_* API of comm/lh_comm_nccl.h over
 * the MPI transport, on the "device" memory of tests/train/fake_cuda.c (which
 * is host memory).  With it the engine's NCCL path (which buffers it hands to
 * NCCL, when the host and device gradient copies are synchronised) runs and
 * is checked on a machine without a GPU; linked instead of comm/'s backend.
 * Collectives run when enqueued; lh_nccl_wait completes nothing further.
 * Only what the engine uses is emulated; the rest fails saying so.
 */
#include <stdlib.h>

#include "fake_nccl.h"
#include "lh_comm_nccl.h"

struct lh_nccl_comm {
    lh_comm *c;
};

static int allreduces;

int lh_fake_nccl_allreduces(void) { return allreduces; }

static lh_status not_emulated(const char *what)
{
    return lh_fail(LH_ERR_UNSUPPORTED, "fake nccl: %s is not emulated", what);
}

int lh_nccl_available(void) { return 1; }

lh_status lh_nccl_comm_create(lh_comm *c, int device, lh_nccl_comm **out)
{
    if (device < 0) return lh_fail(LH_ERR_INVALID_ARG, "fake nccl: device %d", device);
    *out = calloc(1, sizeof **out);
    if (!*out) return lh_fail(LH_ERR_NOMEM, "fake nccl: out of memory");
    (*out)->c = c;
    return LH_OK;
}

void lh_nccl_comm_free(lh_nccl_comm *n) { free(n); }

lh_status lh_nccl_group_begin(lh_nccl_comm *n) { (void)n; return not_emulated("group_begin"); }
lh_status lh_nccl_group_end(lh_nccl_comm *n) { (void)n; return not_emulated("group_end"); }

lh_status lh_nccl_isend(lh_nccl_comm *n, const void *dev_buf, size_t bytes, int dst)
{
    (void)n, (void)dev_buf, (void)bytes, (void)dst;
    return not_emulated("isend");
}

lh_status lh_nccl_irecv(lh_nccl_comm *n, void *dev_buf, size_t bytes, int src)
{
    (void)n, (void)dev_buf, (void)bytes, (void)src;
    return not_emulated("irecv");
}

lh_status lh_nccl_wait(lh_nccl_comm *n) { return n ? LH_OK : lh_fail(LH_ERR_INVALID_ARG, "fake nccl: NULL"); }

lh_status lh_nccl_allreduce_f32(lh_nccl_comm *n, float *dev, size_t n_floats)
{
    allreduces++;
    return lh_comm_allreduce_f32(n->c, dev, n_floats);
}

lh_status lh_nccl_reduce_scatter_f32(lh_nccl_comm *n, const float *in, float *out, size_t n_floats)
{
    (void)n, (void)in, (void)out, (void)n_floats;
    return not_emulated("reduce_scatter");
}

lh_status lh_nccl_allgather(lh_nccl_comm *n, const void *mine, void *out, size_t bytes_each)
{
    (void)n, (void)mine, (void)out, (void)bytes_each;
    return not_emulated("allgather");
}

lh_status lh_nccl_bcast(lh_nccl_comm *n, void *dev_buf, size_t bytes, int root)
{
    (void)n, (void)dev_buf, (void)bytes, (void)root;
    return not_emulated("bcast");
}

lh_status lh_nccl_barrier(lh_nccl_comm *n) { (void)n; return not_emulated("barrier"); }
