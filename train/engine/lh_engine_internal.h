/*
 * The engine's state, shared by its source files (lh_engine.c: schedules,
 * links, optimizer; lh_engine_checkpoint.c: checkpoints).  Not a public header.
 */
#ifndef LH_ENGINE_INTERNAL_H
#define LH_ENGINE_INTERNAL_H

#include "lh_comm_compressed.h"
#include "lh_comm_nccl.h"
#include "lh_compress.h"
#include "lh_data.h"
#include "lh_engine.h"
#include "lh_optim.h"

/* Pipeline channels (on the replica's pipeline communicator) and the report channel (on `reports`). */
enum { CHANNEL_FORWARD = 0, CHANNEL_BACKWARD = 1, CHANNEL_EVAL = 2, CHANNEL_REPORT = 3, CHANNEL_TIED = 4 };

/* One step's figures of one rank, as sent to world rank 0 (doubles, in this order). */
enum { REC_STEP, REC_LOSS, REC_RAW_BYTES, REC_WIRE_BYTES, REC_SECONDS, REC_FIELDS };

/* The next message of a training channel, received ahead: its receive is posted while the stage
 * computes, so the message lands (and, for large ones, MPI's rendezvous completes) meanwhile. */
typedef struct lh_inbox {
    lh_comm_request *req; /* the posted receive, or NULL */
    uint64_t len64;       /* compressed messages: the announced length of the next payload */
    float *spare;         /* fp32 messages: the buffer being filled, swapped with act_in / grad_in */
    int remaining;        /* messages still expected on this channel this step */
} lh_inbox;

struct lh_engine {
    lh_job job;
    int rank, stage, replica, stages, replicas;
    int micro_batches, micro, seq, channels;
    int slots;
    int64_t step, total_steps;
    lh_lr_schedule lr;

    lh_comm *world, *pipe, *dp, *tied;
    lh_comm *reports; /* a copy of world for step reports: records left unreceived die with it */
    int *dp_world_rank;   /* [replicas]: world rank of this stage in each replica */
    int *pipe_world_rank; /* [stages]: world rank of each stage of this replica */
    int *first_layer, *num_layers; /* [stages]: the plan's layer split (checkpoints key codec state by it) */
    lh_stage *model;
    lh_dataset *train, *val;

    /* Per step: M micro-batches of (micro x seq) tokens, targets and ids. */
    int32_t *tokens, *targets;
    uint64_t *ids;
    float *act_in, *act_out, *grad_in, *grad_out; /* (micro, seq, C) each */
    uint8_t *msg;                                 /* encode / receive buffer */
    size_t msg_cap;

    lh_aq_codec *aq_send, *aq_recv; /* forward link codecs (AQ-SGD) */
    lh_quant_ctx *quant;            /* DirectQ forward, quantized backward */
    lh_quant_params forward_params, backward_params;
    lh_callreduce *grad_allreduce;  /* data-parallel gradients, quantized with error feedback */
    lh_nccl_comm *nccl_dp;          /* transport nccl: the data-parallel group, on the GPUs' memory */

    /* Tied embeddings (first and last stage, stages > 1): see tied_exchange in lh_engine.c. */
    int64_t tied_offset;         /* wte in this stage's flat buffers */
    size_t tied_count;           /* its floats (padded vocab x channels) */
    size_t tied_bytes;           /* a message: fp32 values, or a quantized frame padded to its bound */
    uint8_t *tied_out, *tied_in; /* message buffers (tied_out: quantized frames only) */
    lh_grad_codec *tied_codec;   /* gradient_bits > 0: messages quantized with error feedback */

    lh_comm_request **pending; /* outstanding sends of this step */
    int n_pending, cap_pending;
    lh_inbox inbox[2];         /* [CHANNEL_FORWARD], [CHANNEL_BACKWARD] */

    /* Job-wide step reports reach world rank 0 one step late, so logging never waits on a slow link. */
    double record[REC_FIELDS];         /* this rank's figures of the last step (sent to rank 0) */
    int64_t report_pending;            /* rank 0: the step whose records are still to be received, or -1 */
    lh_step_report report_own;         /* rank 0: its own view of that step (lr, norm, compute/comm times) */
    double report_own_record[REC_FIELDS];

    double compute_s, comm_s;
    uint64_t raw_bytes;
    uint64_t nccl_bytes; /* sent over NCCL this step (lh_comm's statistics do not see it) */
};

#endif
