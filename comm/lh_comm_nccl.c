/*
 * C side of the NCCL backend: argument checks, the unique-id broadcast over
 * the framed transport, and forwarding to comm/cuda/lh_nccl.cu.  Without CUDA
 * the calls report LH_ERR_UNSUPPORTED, so callers can decide (never silently
 * falling back to the CPU path).
 */
#include "lh_comm_nccl.h"

#include <stdlib.h>

#if LH_COMM_HAVE_CUDA
#include "lh_nccl_impl.h"

struct lh_nccl_comm {
    lh_nccl_impl *impl;
    int rank, size;
};

int lh_nccl_available(void)
{
    return 1;
}

lh_status lh_nccl_comm_create(lh_comm *c, int device, lh_nccl_comm **out)
{
    if (!c || !out) return lh_fail(LH_ERR_INVALID_ARG, "nccl comm: NULL argument");
    *out = NULL;
    unsigned char id[LH_NCCL_ID_BYTES] = {0};
    int rank = lh_comm_rank(c), size = lh_comm_size(c);
    /* rank 0 creates the id; a failure there is broadcast as an all-zero id so nobody waits forever */
    lh_status st = rank == 0 ? lh_nccl_impl_unique_id(id) : LH_OK;
    unsigned char ok = st == LH_OK;
    lh_status bst = lh_comm_bcast(c, &ok, 1, 0);
    if (!bst && ok) bst = lh_comm_bcast(c, id, sizeof id, 0);
    if (st) return lh_fail_prefix(st, "nccl comm");
    if (bst) return lh_fail_prefix(bst, "nccl comm: broadcasting the unique id");
    if (!ok) /* rank 0's reason is in its own message; the usual one is "no device", the same everywhere */
        return lh_fail(LH_ERR_UNSUPPORTED, "nccl comm: rank 0 could not create the NCCL unique id (no usable "
                                           "device there?)");
    lh_nccl_comm *n = calloc(1, sizeof *n);
    if (!n) return lh_fail(LH_ERR_NOMEM, "nccl comm: out of memory");
    n->rank = rank;
    n->size = size;
    st = lh_nccl_impl_init(id, size, rank, device, &n->impl);
    if (st) {
        free(n);
        return lh_fail_prefix(st, "nccl comm on device %d", device);
    }
    *out = n;
    return LH_OK;
}

void lh_nccl_comm_free(lh_nccl_comm *n)
{
    if (!n) return;
    lh_nccl_impl_free(n->impl);
    free(n);
}

static lh_status check_peer(const lh_nccl_comm *n, int peer)
{
    if (!n) return lh_fail(LH_ERR_INVALID_ARG, "nccl: NULL communicator");
    if (peer < 0 || peer >= n->size)
        return lh_fail(LH_ERR_INVALID_ARG, "nccl: rank %d outside communicator of %d", peer, n->size);
    return LH_OK;
}

lh_status lh_nccl_group_begin(lh_nccl_comm *n) { return lh_nccl_impl_group(n->impl, 1); }
lh_status lh_nccl_group_end(lh_nccl_comm *n) { return lh_nccl_impl_group(n->impl, 0); }

lh_status lh_nccl_isend(lh_nccl_comm *n, const void *dev_buf, size_t bytes, int dst)
{
    lh_status st = check_peer(n, dst);
    return st ? st : lh_nccl_impl_send(n->impl, dev_buf, bytes, dst);
}

lh_status lh_nccl_irecv(lh_nccl_comm *n, void *dev_buf, size_t bytes, int src)
{
    lh_status st = check_peer(n, src);
    return st ? st : lh_nccl_impl_recv(n->impl, dev_buf, bytes, src);
}

lh_status lh_nccl_wait(lh_nccl_comm *n) { return lh_nccl_impl_sync(n->impl); }

lh_status lh_nccl_allreduce_f32(lh_nccl_comm *n, float *dev, size_t n_floats)
{
    return lh_nccl_impl_allreduce_f32(n->impl, dev, dev, n_floats);
}

lh_status lh_nccl_reduce_scatter_f32(lh_nccl_comm *n, const float *in, float *out, size_t n_floats)
{
    if (n_floats % (size_t)n->size)
        return lh_fail(LH_ERR_INVALID_ARG, "nccl reduce-scatter: %zu floats do not split evenly over %d ranks "
                                           "(NCCL needs equal blocks; pad the buffer)", n_floats, n->size);
    return lh_nccl_impl_reduce_scatter_f32(n->impl, in, out, n_floats / (size_t)n->size);
}

lh_status lh_nccl_allgather(lh_nccl_comm *n, const void *mine, void *out, size_t bytes_each)
{
    return lh_nccl_impl_allgather(n->impl, mine, out, bytes_each);
}

lh_status lh_nccl_bcast(lh_nccl_comm *n, void *dev_buf, size_t bytes, int root)
{
    lh_status st = check_peer(n, root);
    return st ? st : lh_nccl_impl_bcast(n->impl, dev_buf, bytes, root);
}

lh_status lh_nccl_barrier(lh_nccl_comm *n) { return lh_nccl_impl_barrier(n->impl); }

#else /* no CUDA in this build */

struct lh_nccl_comm {
    int unused;
};

static lh_status no_cuda(void)
{
    return lh_fail(LH_ERR_UNSUPPORTED, "nccl: this build has no CUDA (configure with -DLONGHAUL_CUDA=ON where nvcc "
                                       "and NCCL are installed)");
}

int lh_nccl_available(void) { return 0; }
lh_status lh_nccl_comm_create(lh_comm *c, int device, lh_nccl_comm **out)
{
    if (out) *out = NULL;
    return no_cuda();
}
void lh_nccl_comm_free(lh_nccl_comm *n) { free(n); }
lh_status lh_nccl_group_begin(lh_nccl_comm *n) { return no_cuda(); }
lh_status lh_nccl_group_end(lh_nccl_comm *n) { return no_cuda(); }
lh_status lh_nccl_isend(lh_nccl_comm *n, const void *dev_buf, size_t bytes, int dst) { return no_cuda(); }
lh_status lh_nccl_irecv(lh_nccl_comm *n, void *dev_buf, size_t bytes, int src) { return no_cuda(); }
lh_status lh_nccl_wait(lh_nccl_comm *n) { return no_cuda(); }
lh_status lh_nccl_allreduce_f32(lh_nccl_comm *n, float *dev, size_t n_floats) { return no_cuda(); }
lh_status lh_nccl_reduce_scatter_f32(lh_nccl_comm *n, const float *in, float *out, size_t n_floats) { return no_cuda(); }
lh_status lh_nccl_allgather(lh_nccl_comm *n, const void *mine, void *out, size_t bytes_each) { return no_cuda(); }
lh_status lh_nccl_bcast(lh_nccl_comm *n, void *dev_buf, size_t bytes, int root) { return no_cuda(); }
lh_status lh_nccl_barrier(lh_nccl_comm *n) { return no_cuda(); }
#endif
