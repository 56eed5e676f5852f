/*
 * lh_nccl_comm: the transport's operations on GPU device buffers, over NCCL.
 *
 * Same operations and semantics as lh_comm.h (point-to-point between
 * pipeline neighbours, allreduce, reduce-scatter, all-gather, broadcast,
 * barrier; one communicator per data-parallel group or pipeline, made from an
 * lh_comm of the same ranks), but every call only enqueues work on the
 * communicator's CUDA stream and returns; lh_nccl_wait completes everything
 * enqueued so far.  That is the non-blocking model on a GPU: the host keeps
 * launching compute while NCCL moves data.  Several sends and receives that
 * must progress together (a pipeline exchange) go between
 * lh_nccl_group_begin/end.
 *
 * The NCCL unique id is created on rank 0 and broadcast over the lh_comm (so
 * it travels framed, and encrypted when the job has a secret).  NCCL traffic
 * itself is neither framed nor encrypted: it stays inside a trusted cluster;
 * links between sites use the MPI transport.  Built when CUDA and NCCL are
 * found; otherwise every call fails with LH_ERR_UNSUPPORTED saying so.
 */
#ifndef LH_COMM_NCCL_H
#define LH_COMM_NCCL_H

#include <stddef.h>

#include "lh_comm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lh_nccl_comm lh_nccl_comm;

/** 1 when this build contains the NCCL backend (it still needs a GPU to run). */
int lh_nccl_available(void);

/** Collective over `c`: an NCCL communicator of the same ranks on CUDA device `device`. */
lh_status lh_nccl_comm_create(lh_comm *c, int device, lh_nccl_comm **out);

/** Free (NULL accepted); waits for nothing: call lh_nccl_wait first. */
void lh_nccl_comm_free(lh_nccl_comm *n);

/** Start a group of point-to-point calls that NCCL must progress together. */
lh_status lh_nccl_group_begin(lh_nccl_comm *n);
/** End the group. */
lh_status lh_nccl_group_end(lh_nccl_comm *n);

/** Enqueue sending `bytes` of device memory to `dst`. */
lh_status lh_nccl_isend(lh_nccl_comm *n, const void *dev_buf, size_t bytes, int dst);
/** Enqueue receiving `bytes` of device memory from `src`. */
lh_status lh_nccl_irecv(lh_nccl_comm *n, void *dev_buf, size_t bytes, int src);
/** Complete everything enqueued; reports asynchronous NCCL errors. */
lh_status lh_nccl_wait(lh_nccl_comm *n);

/** Enqueue an in-place sum of `n_floats` device floats. */
lh_status lh_nccl_allreduce_f32(lh_nccl_comm *n, float *dev, size_t n_floats);
/**
 * Enqueue a reduce-scatter: `n_floats` (a multiple of the size, as NCCL
 * requires equal blocks) summed; this rank's block (n_floats / size) to `out`.
 */
lh_status lh_nccl_reduce_scatter_f32(lh_nccl_comm *n, const float *in, float *out, size_t n_floats);
/** Enqueue an all-gather of `bytes_each` bytes per rank into `out` (rank order). */
lh_status lh_nccl_allgather(lh_nccl_comm *n, const void *mine, void *out, size_t bytes_each);
/** Enqueue a broadcast from `root`. */
lh_status lh_nccl_bcast(lh_nccl_comm *n, void *dev_buf, size_t bytes, int root);
/** Barrier (synchronous). */
lh_status lh_nccl_barrier(lh_nccl_comm *n);

#ifdef __cplusplus
}
#endif
#endif
