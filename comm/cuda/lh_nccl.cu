/*
 * NCCL backend: the transport operations on device buffers, each enqueued on
 * the communicator's own stream (so they are asynchronous with respect to the
 * host, which is what overlaps compute and communication on a GPU) and
 * completed by lh_nccl_impl_sync.  The unique id travels over the MPI
 * transport (see lh_comm_nccl.c).  Frames, encryption and emulation do not
 * apply here: NCCL moves device memory inside a trusted cluster; traffic that
 * leaves a site goes through the framed MPI transport.
 */
#include <cuda_runtime.h>

#include <stdlib.h>
#include <string.h>

#include "lh_nccl_impl.h"

#if LH_HAVE_NCCL
#include <nccl.h>

static_assert(sizeof(ncclUniqueId) == LH_NCCL_ID_BYTES, "NCCL unique id size changed");

struct lh_nccl_impl {
    ncclComm_t comm;
    cudaStream_t stream;
    float *scratch; /* one float for the barrier */
    int device;
};

static lh_status nccl_check(ncclResult_t r, const char *what)
{
    if (r == ncclSuccess) return LH_OK;
    return lh_fail(LH_ERR_COMM, "nccl %s: %s", what, ncclGetErrorString(r));
}

static lh_status cuda_check(cudaError_t e, const char *what)
{
    if (e == cudaSuccess) return LH_OK;
    return lh_fail(e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver ? LH_ERR_UNSUPPORTED : LH_ERR_COMM,
                   "cuda %s: %s", what, cudaGetErrorString(e));
}

/* No device (a CI runner, a CPU node) is "unsupported here", not a communication failure. */
static lh_status require_device(void)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0)
        return lh_fail(LH_ERR_UNSUPPORTED, "nccl: no usable CUDA device (%s)",
                       e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return LH_OK;
}

extern "C" lh_status lh_nccl_impl_unique_id(unsigned char id[LH_NCCL_ID_BYTES])
{
    ncclUniqueId uid;
    lh_status st = require_device();
    if (st) return st;
    st = nccl_check(ncclGetUniqueId(&uid), "get unique id");
    if (!st) memcpy(id, &uid, sizeof uid);
    return st;
}

extern "C" lh_status lh_nccl_impl_init(const unsigned char id[LH_NCCL_ID_BYTES], int nranks, int rank, int device,
                                       lh_nccl_impl **out)
{
    *out = NULL;
    lh_nccl_impl *n = (lh_nccl_impl *)calloc(1, sizeof *n);
    if (!n) return lh_fail(LH_ERR_NOMEM, "nccl: out of memory");
    n->device = device;
    lh_status st = require_device();
    if (!st) st = cuda_check(cudaSetDevice(device), "set device");
    if (!st) st = cuda_check(cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking), "create stream");
    if (!st) st = cuda_check(cudaMalloc((void **)&n->scratch, sizeof(float)), "malloc scratch");
    ncclUniqueId uid;
    memcpy(&uid, id, sizeof uid);
    if (!st) st = nccl_check(ncclCommInitRank(&n->comm, nranks, uid, rank), "comm init");
    if (st) {
        lh_nccl_impl_free(n);
        return st;
    }
    *out = n;
    return LH_OK;
}

extern "C" void lh_nccl_impl_free(lh_nccl_impl *n)
{
    if (!n) return;
    if (n->comm) ncclCommDestroy(n->comm);
    if (n->scratch) cudaFree(n->scratch);
    if (n->stream) cudaStreamDestroy(n->stream);
    free(n);
}

extern "C" lh_status lh_nccl_impl_group(lh_nccl_impl *n, int start)
{
    (void)n;
    return nccl_check(start ? ncclGroupStart() : ncclGroupEnd(), start ? "group start" : "group end");
}

extern "C" lh_status lh_nccl_impl_send(lh_nccl_impl *n, const void *buf, size_t bytes, int peer)
{
    return nccl_check(ncclSend(buf, bytes, ncclUint8, peer, n->comm, n->stream), "send");
}

extern "C" lh_status lh_nccl_impl_recv(lh_nccl_impl *n, void *buf, size_t bytes, int peer)
{
    return nccl_check(ncclRecv(buf, bytes, ncclUint8, peer, n->comm, n->stream), "recv");
}

extern "C" lh_status lh_nccl_impl_sync(lh_nccl_impl *n)
{
    lh_status st = cuda_check(cudaStreamSynchronize(n->stream), "stream synchronize");
    if (st) return st;
    ncclResult_t async_err = ncclSuccess;
    st = nccl_check(ncclCommGetAsyncError(n->comm, &async_err), "get async error");
    return st ? st : nccl_check(async_err, "asynchronous error");
}

extern "C" lh_status lh_nccl_impl_allreduce_f32(lh_nccl_impl *n, const float *in, float *out, size_t count)
{
    return nccl_check(ncclAllReduce(in, out, count, ncclFloat32, ncclSum, n->comm, n->stream), "allreduce");
}

extern "C" lh_status lh_nccl_impl_reduce_scatter_f32(lh_nccl_impl *n, const float *in, float *out,
                                                     size_t count_per_rank)
{
    return nccl_check(ncclReduceScatter(in, out, count_per_rank, ncclFloat32, ncclSum, n->comm, n->stream),
                      "reduce-scatter");
}

extern "C" lh_status lh_nccl_impl_allgather(lh_nccl_impl *n, const void *in, void *out, size_t bytes_each)
{
    return nccl_check(ncclAllGather(in, out, bytes_each, ncclUint8, n->comm, n->stream), "all-gather");
}

extern "C" lh_status lh_nccl_impl_bcast(lh_nccl_impl *n, void *buf, size_t bytes, int root)
{
    return nccl_check(ncclBroadcast(buf, buf, bytes, ncclUint8, root, n->comm, n->stream), "broadcast");
}

extern "C" lh_status lh_nccl_impl_barrier(lh_nccl_impl *n)
{
    lh_status st = nccl_check(ncclAllReduce(n->scratch, n->scratch, 1, ncclFloat32, ncclSum, n->comm, n->stream),
                              "barrier");
    return st ? st : lh_nccl_impl_sync(n);
}

#else /* CUDA without NCCL: every entry point says so (the C side reports it at creation). */

static lh_status no_nccl(void)
{
    return lh_fail(LH_ERR_UNSUPPORTED, "nccl: this build found CUDA but no NCCL library");
}
extern "C" lh_status lh_nccl_impl_unique_id(unsigned char *) { return no_nccl(); }
extern "C" lh_status lh_nccl_impl_init(const unsigned char *, int, int, int, lh_nccl_impl **out)
{
    *out = NULL;
    return no_nccl();
}
extern "C" void lh_nccl_impl_free(lh_nccl_impl *) {}
extern "C" lh_status lh_nccl_impl_group(lh_nccl_impl *, int) { return no_nccl(); }
extern "C" lh_status lh_nccl_impl_send(lh_nccl_impl *, const void *, size_t, int) { return no_nccl(); }
extern "C" lh_status lh_nccl_impl_recv(lh_nccl_impl *, void *, size_t, int) { return no_nccl(); }
extern "C" lh_status lh_nccl_impl_sync(lh_nccl_impl *) { return no_nccl(); }
extern "C" lh_status lh_nccl_impl_allreduce_f32(lh_nccl_impl *, const float *, float *, size_t) { return no_nccl(); }
extern "C" lh_status lh_nccl_impl_reduce_scatter_f32(lh_nccl_impl *, const float *, float *, size_t)
{
    return no_nccl();
}
extern "C" lh_status lh_nccl_impl_allgather(lh_nccl_impl *, const void *, void *, size_t) { return no_nccl(); }
extern "C" lh_status lh_nccl_impl_bcast(lh_nccl_impl *, void *, size_t, int) { return no_nccl(); }
extern "C" lh_status lh_nccl_impl_barrier(lh_nccl_impl *) { return no_nccl(); }
#endif
