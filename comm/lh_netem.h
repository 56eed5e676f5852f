/*
 * lh_netem: in-process emulation of slow links between ranks on one machine.
 *
 * Why in process: the kernel here has no netem qdisc, and a WAN experiment
 * should not need root.  Each ordered pair of ranks (src, dst) is a link with a
 * one-way latency and a bandwidth.  The sender keeps a virtual clock per
 * outgoing link: a message of B wire bytes handed over at time t starts when
 * the link is free, occupies it for B*8/bandwidth seconds (serialisation: the
 * next message on that link queues behind it) and is delivered `latency`
 * seconds after its last bit left.  The transport makes the sender's wait last
 * until the last bit left (pacing) and the receiver's wait last until the
 * delivery time (delay); the schedule itself is pure arithmetic, so tests
 * check it exactly instead of trusting a stopwatch on a loaded machine.
 *
 * time_scale stretches every link by the same factor (latency x s, bandwidth
 * / s): a CPU worker computes ~1000x slower than a datacenter GPU, so scaling
 * the links by 1000 keeps the real compute/communication ratio.  An emulated
 * network is always announced as such (log line, lh_comm_stats.emulated).
 */
#ifndef LH_NETEM_H
#define LH_NETEM_H

#include <stddef.h>

#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Emulated links among n ranks; opaque. */
typedef struct lh_netem lh_netem;

/**
 * Create an emulator for `n` ranks from row-major n x n matrices (row = sender):
 * one-way latency in seconds (>= 0) and bandwidth in bits per second (> 0; the
 * diagonal is ignored).  `time_scale` >= 1e-6 multiplies every transfer time.
 */
lh_status lh_netem_create(int n, const double *latency_s, const double *bandwidth_bps, double time_scale,
                          lh_netem **out);

/** Same, with one latency and bandwidth for every pair. */
lh_status lh_netem_create_uniform(int n, double latency_s, double bandwidth_bps, double time_scale,
                                  lh_netem **out);

/** A deep copy (its link clocks start idle). */
lh_status lh_netem_clone(const lh_netem *e, lh_netem **out);

/** Free (NULL is accepted). */
void lh_netem_free(lh_netem *e);

/** Number of ranks. */
int lh_netem_size(const lh_netem *e);

/** The time-scale factor. */
double lh_netem_time_scale(const lh_netem *e);

/** Configured (unscaled) latency in seconds and bandwidth in bit/s of link src->dst. */
lh_status lh_netem_link(const lh_netem *e, int src, int dst, double *latency_s, double *bandwidth_bps);

/**
 * Schedule `wire_bytes` handed to link src->dst at time `now_s`: returns when
 * its last bit has left (`sent_s`) and when it is delivered (`deliver_s`), and
 * advances the link's virtual clock.  Deterministic: same calls, same times.
 */
lh_status lh_netem_schedule(lh_netem *e, int src, int dst, double now_s, size_t wire_bytes, double *sent_s,
                            double *deliver_s);

/** Forget queued traffic: every link becomes idle. */
void lh_netem_reset(lh_netem *e);

/** One-line description for logs: "EMULATED network: 4 ranks, latency 20..50 ms, ...". */
void lh_netem_describe(const lh_netem *e, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
