/* An emulated NCCL for tests (fake_nccl.c): comm/lh_comm_nccl.h's API over the MPI transport. */
#ifndef LH_FAKE_NCCL_H
#define LH_FAKE_NCCL_H

/** Allreduces enqueued since the start. */
int lh_fake_nccl_allreduces(void);

#endif
