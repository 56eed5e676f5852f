/*
 * The engine's state, shared by its source files (lh_engine.c: schedules,
 * links, optimizer; lh_engine_checkpoint.c: checkpoints).  Not a public header.
 */
#ifndef LH_ENGINE_INTERNAL_H
#define LH_ENGINE_INTERNAL_H

#include "lh_comm_compressed.h"
#include "lh_compress.h"
#include "lh_data.h"
#include "lh_engine.h"
#include "lh_optim.h"

enum { CHANNEL_FORWARD = 0, CHANNEL_BACKWARD = 1, CHANNEL_EVAL = 2 };

struct lh_engine {
    lh_job job;
    int rank, stage, replica, stages, replicas;
    int micro_batches, micro, seq, channels;
    int slots;
    int64_t step, total_steps;
    lh_lr_schedule lr;

    lh_comm *world, *pipe, *dp, *tied;
    int *dp_world_rank;   /* [replicas]: world rank of this stage in each replica */
    int *pipe_world_rank; /* [stages]: world rank of each stage of this replica */
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

    lh_comm_request **pending; /* outstanding sends of this step */
    int n_pending, cap_pending;

    double compute_s, comm_s;
    uint64_t raw_bytes;
};

#endif
