/*
 * Internal boundary between comm/lh_comm_nccl.c (C, MPI) and
 * comm/cuda/lh_nccl.cu (CUDA runtime + NCCL): the .cu side never sees MPI,
 * the C side never sees CUDA types.  Every function returns an lh_status with
 * the CUDA/NCCL error string in the message.
 */
#ifndef LH_NCCL_IMPL_H
#define LH_NCCL_IMPL_H

#include <stddef.h>

#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_NCCL_ID_BYTES 128 /* NCCL_UNIQUE_ID_BYTES */

typedef struct lh_nccl_impl lh_nccl_impl;

lh_status lh_nccl_impl_unique_id(unsigned char id[LH_NCCL_ID_BYTES]);
lh_status lh_nccl_impl_init(const unsigned char id[LH_NCCL_ID_BYTES], int nranks, int rank, int device,
                            lh_nccl_impl **out);
void lh_nccl_impl_free(lh_nccl_impl *n);
lh_status lh_nccl_impl_group(lh_nccl_impl *n, int start);
lh_status lh_nccl_impl_send(lh_nccl_impl *n, const void *buf, size_t bytes, int peer);
lh_status lh_nccl_impl_recv(lh_nccl_impl *n, void *buf, size_t bytes, int peer);
lh_status lh_nccl_impl_sync(lh_nccl_impl *n);
lh_status lh_nccl_impl_allreduce_f32(lh_nccl_impl *n, const float *in, float *out, size_t count);
lh_status lh_nccl_impl_reduce_scatter_f32(lh_nccl_impl *n, const float *in, float *out, size_t count_per_rank);
lh_status lh_nccl_impl_allgather(lh_nccl_impl *n, const void *in, void *out, size_t bytes_each);
lh_status lh_nccl_impl_bcast(lh_nccl_impl *n, void *buf, size_t bytes, int root);
lh_status lh_nccl_impl_barrier(lh_nccl_impl *n);

#ifdef __cplusplus
}
#endif
#endif
