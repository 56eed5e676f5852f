/*
 * Internals shared by the files of comm/ (collectives, compressed allreduce,
 * probe) but not part of the public interface: they need frame kinds and the
 * reserved channels that user code must not see.
 */
#ifndef LH_COMM_INTERNAL_H
#define LH_COMM_INTERNAL_H

#include "lh_comm.h"

#define LH_COMM_CHANNELS 16
#define LH_COMM_CH_COLLECTIVE 14 /* collectives, including the compressed allreduce */
#define LH_COMM_CH_CONTROL 15    /* barrier and probe */

/** isend on any channel (0..LH_COMM_CHANNELS-1) with an explicit frame kind. */
lh_status lh_comm_isend_kind(lh_comm *c, const void *buf, size_t bytes, int dst, int channel, int kind,
                             lh_comm_request **req);
/** irecv on any channel with the frame kind the receiver expects. */
lh_status lh_comm_irecv_kind(lh_comm *c, void *buf, size_t bytes, int src, int channel, int kind,
                             lh_comm_request **req);
/** Send to `dst` and receive from `src` at the same time on the collective channel. */
lh_status lh_comm_sendrecv_coll(lh_comm *c, const void *sbuf, size_t sbytes, int dst, void *rbuf, size_t rbytes,
                                int src);
/** Index of comm rank `r` in the emulated network (the rank in the communicator given to lh_comm_create). */
int lh_comm_net_rank(const lh_comm *c, int r);
/** 1 when collectives of this communicator exchange directly with every rank, 0 for the ring. */
int lh_comm_use_direct(const lh_comm *c);
/** The emulator shared by this communicator family, or NULL on a real network. */
lh_netem *lh_comm_netem(const lh_comm *c);

#endif
