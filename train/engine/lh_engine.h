/*
 * lh_engine: one rank's part of a pipeline-parallel x data-parallel training
 * job.
 *
 * Every rank runs one stage s of one replica r, as the plan says (device i of
 * the plan is MPI rank i of the world communicator).  Three sub-communicators
 * follow from the plan: the replica's pipeline (ranked by stage), the stage's
 * data-parallel group (ranked by replica), and, when the model is split, the
 * tied-embedding pair (first and last stage of the replica).
 *
 * One optimizer step:
 *   1. every stage of replica r draws the same micro-batches from replica r's
 *      shard of the dataset (so the last stage has the targets and every link
 *      knows the sample ids AQ-SGD keys its caches by, with no traffic);
 *   2. the micro-batches flow through the pipeline in GPipe or 1F1B order:
 *      activations forward (fp32, AQ-SGD deltas or DirectQ), activation
 *      gradients backward (fp32 or quantized), sends non-blocking;
 *   3. gradients are summed over the data-parallel group (fp32 or compressed
 *      with error feedback) and averaged, the two copies of the tied token
 *      embedding get the sum of their gradients, the global gradient norm is
 *      summed over the pipeline and clipped;
 *   4. AdamW with the warm-up + decay schedule.
 * Losses are reported as the mean over micro-batches and replicas.
 */
#ifndef LH_ENGINE_H
#define LH_ENGINE_H

#include <stdint.h>

#include "lh_comm.h"
#include "lh_job.h"
#include "lh_model.h"
#include "lh_plan.h"
#include "lh_sched.h"
#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lh_engine lh_engine;

/** What one training step did over the whole job (assembled on world rank 0). */
typedef struct lh_step_report {
    int64_t step;             /* 0-based step this report describes; -1: no report */
    double loss;              /* mean training loss of the step */
    double lr;                /* learning rate used */
    double grad_norm;         /* global gradient norm before clipping */
    double step_s;            /* wall time of the step (max over ranks) */
    double tokens_per_s;      /* tokens of the whole job per second */
    double compute_s;         /* this rank: forward, backward and optimizer */
    double comm_s;            /* this rank: time in communication calls (waiting included) */
    uint64_t raw_bytes;       /* all ranks: bytes fp32 tensors would have needed */
    uint64_t wire_bytes;      /* all ranks: bytes actually sent (headers included) */
} lh_step_report;

/**
 * Collective over `world` (whose size must equal plan stages x replicas):
 * place this rank, split the communicators, build the model stage with the
 * job's seed (every partition starts from the same weights), open the dataset
 * and the codecs.  `tokens` (count n_tokens) is the training token stream;
 * validation uses the job's val_fraction tail of it.
 */
lh_status lh_engine_create(const lh_job *job, const lh_plan *plan, lh_comm *world, const uint16_t *tokens,
                           size_t n_tokens, lh_engine **out);

/** Free (NULL accepted). */
void lh_engine_free(lh_engine *e);

/**
 * Collective: one optimizer step.  The job-wide figures of a step (mean loss,
 * bytes of every rank, the slowest rank's time) are gathered to world rank 0
 * in the background and complete one step late, so reporting never adds a
 * link latency to a step: on rank 0 `report` (may be NULL) receives the
 * previous step's report; on other ranks, and on rank 0 after the first step,
 * report->step is -1.  lh_engine_flush_report gives the last one.
 */
lh_status lh_engine_step(lh_engine *e, lh_step_report *report);

/**
 * On world rank 0: wait for the records of the last step still pending and
 * fill `report` (report->step -1 when none is pending).  Other ranks return at
 * once with report->step -1.  Call after the last step.
 */
lh_status lh_engine_flush_report(lh_engine *e, lh_step_report *report);


/**
 * Collective: mean validation loss over up to `max_batches` micro-batches per
 * replica (0 = the whole validation split), forward only, fp32 activations.
 */
lh_status lh_engine_evaluate(lh_engine *e, int64_t max_batches, double *loss);

/**
 * Collective: check that the data-parallel replicas of every stage hold
 * identical parameters by comparing BLAKE2b Merkle roots over 64 KiB chunks;
 * on a mismatch walk the trees (O(log chunks) small exchanges, never the
 * weights) and fail with LH_ERR_MISMATCH naming the diverging replica and
 * rank, the layer and the chunk.  Runs every job.verify_every steps inside
 * lh_engine_step.
 */
lh_status lh_engine_verify_replicas(lh_engine *e);

/**
 * Collective: write a checkpoint of the current step under folder `root`
 * (every stage of replica 0 writes its own part, every rank that holds codec
 * state, AQ-SGD caches or error-feedback residuals, writes its own state
 * file, rank 0 commits with a manifest and the LATEST pointer once all are
 * written and read back, keeping job.checkpoint.keep of them).  Replicas are
 * verified to agree first.  Layout and guarantees: lh_engine_checkpoint.c,
 * docs/training.md and docs/formats.md.
 */
lh_status lh_engine_save_checkpoint(lh_engine *e, const char *root);

/**
 * Collective: if `root` holds a committed checkpoint, load this rank's stage
 * (parameters, AdamW moments) from its parts, whatever partition wrote them,
 * and restore the step and the dataset position; *resumed says whether one
 * was found.  When the checkpoint was written on the same plan (stages,
 * replicas, layer split, codecs in use), the codec state (AQ-SGD caches,
 * error-feedback residuals) is restored too and a state file that fails to
 * verify is an error; on another plan the codecs start empty (logged).
 */
lh_status lh_engine_resume(lh_engine *e, const char *root, int *resumed);

/** Sections of an engine codec-state file (state_r<R>_s<S>.lhst; docs/formats.md). */
typedef enum lh_engine_state_kind {
    LH_ENGINE_STATE_AQ_SEND = 1, /* AQ-SGD cache of the link to the next stage (an "LHAS" state) */
    LH_ENGINE_STATE_AQ_RECV = 2, /* AQ-SGD cache of the link from the previous stage ("LHAS") */
    LH_ENGINE_STATE_GRAD = 3,    /* data-parallel error-feedback residuals ("LHCS") */
    LH_ENGINE_STATE_TIED = 4     /* error-feedback residual of the tied-embedding messages ("LHGS") */
} lh_engine_state_kind;

#define LH_ENGINE_STATE_MAX_SECTIONS 4

/** A parsed engine state file; section data points into the parsed buffer. */
typedef struct lh_engine_state_info {
    int replica, stage;   /* the rank that wrote it */
    int replicas, stages; /* the plan's shape */
    int64_t step;         /* the checkpoint's step */
    uint64_t plan_key;    /* fingerprint of the plan and codec layout (also in MANIFEST.json) */
    int n_sections;
    struct {
        lh_engine_state_kind kind;
        const uint8_t *data;
        size_t bytes;
    } sections[LH_ENGINE_STATE_MAX_SECTIONS];
} lh_engine_state_info;

/**
 * Parse and verify the frame of an engine state file held in memory: magic,
 * version, header, section table (known kinds, each at most once, sizes
 * within the file), exact length and CRC-32C.  The sections themselves are
 * verified by their codec when loaded.  Errors (LH_ERR_TRUNCATED / FORMAT /
 * UNSUPPORTED / CORRUPT) say what is wrong; the caller adds the file name.
 */
lh_status lh_engine_state_parse(const void *buf, size_t len, lh_engine_state_info *info);

/**
 * Collective: load starting weights (llm.c or longhaul format) into every
 * rank's stage, for fine-tuning; AdamW moments start at zero.
 */
lh_status lh_engine_load_weights(lh_engine *e, const char *path);

/**
 * The scheduler's view of `job` (model shape, batch, wire widths of the
 * activations and gradients, pipeline schedule and depth), for its cost
 * models and simulator.
 */
lh_workload lh_engine_workload(const lh_job *job);

/**
 * pipeline.depth "auto": simulate `plan` on `topology`'s links, stretched by
 * the job's time scale when the job emulates them, and return the 1F1B depth
 * lh_choose_depth picks and its simulated step time (est_s, may be NULL).
 * Not collective: the coordinator decides and broadcasts.
 */
lh_status lh_engine_choose_depth(const lh_job *job, const lh_topology *topology, const lh_plan *plan, int *depth,
                                 double *est_s);

/** Optimizer steps taken so far (after a resume: the checkpoint's step). */
int64_t lh_engine_current_step(const lh_engine *e);

/** Steps the job runs in all (from batch.steps or batch.epochs). */
int64_t lh_engine_total_steps(const lh_engine *e);

/** This rank's place: stage and replica. */
void lh_engine_position(const lh_engine *e, int *stage, int *replica);

/** This rank's model stage (for checkpoints and tests). */
lh_stage *lh_engine_stage(lh_engine *e);

#ifdef __cplusplus
}
#endif
#endif
