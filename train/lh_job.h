/*
 * lh_job: a training or serving job as the user describes it in job.json
 * (docs/formats.md, "job"): model shape, data, batch sizes, optimizer,
 * pipeline schedule, placement, compression, checkpoints and the compute
 * device of every stage ("device": "cpu" | "cuda").  The loader
 * validates every field and every cross-field rule (heads divide channels,
 * micro-batches divide the batch, ...) and fills defaults for what is absent.
 */
#ifndef LH_JOB_H
#define LH_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "lh_model.h" /* lh_compute_device */
#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_PATH_MAX 1024

typedef enum { LH_JOB_SCHEDULE_GPIPE = 0, LH_JOB_SCHEDULE_1F1B } lh_pipeline_schedule;

/* "transport": the data-parallel gradient sync over MPI (host memory, framed, optionally encrypted and emulated), or
 * over NCCL between GPU stages' device memory (fp32, inside a trusted cluster).  Pipeline tensors always use MPI. */
typedef enum { LH_TRANSPORT_MPI = 0, LH_TRANSPORT_NCCL } lh_job_transport;

/* pipeline.depth "auto": the coordinator simulates the plan on the job's links and picks the depth. */
#define LH_JOB_DEPTH_AUTO 0
typedef enum { LH_JOB_LR_COSINE = 0, LH_JOB_LR_LINEAR, LH_JOB_LR_CONSTANT } lh_job_lr_decay;
typedef enum { LH_COMPRESS_FP32 = 0, LH_COMPRESS_AQSGD, LH_COMPRESS_DIRECTQ } lh_compress_mode;
typedef enum { LH_JOB_ROUND_NEAREST = 0, LH_JOB_ROUND_STOCHASTIC } lh_job_rounding;

typedef struct lh_job_model {
    int layers, channels, heads, context, vocab;
    char init_checkpoint[LH_PATH_MAX]; /* "" = random init from the job seed */
} lh_job_model;

typedef struct lh_job_data {
    char train[LH_PATH_MAX];     /* token shard (.bin), text file, or "embedded" */
    char val[LH_PATH_MAX];       /* "" = split val_fraction off the training data */
    double val_fraction;         /* used when val is "" */
    char tokenizer[LH_PATH_MAX]; /* "byte" or an llm.c tokenizer file (for decoding) */
} lh_job_data;

typedef struct lh_job_batch {
    int batch_size; /* sequences per optimizer step per replica */
    int micro_batch;
    int seq_len;
    int64_t steps;  /* optimizer steps; 0 = derive from epochs */
    double epochs;  /* used when steps == 0 */
} lh_job_batch;

typedef struct lh_job_optimizer {
    double lr, min_lr_fraction, weight_decay, beta1, beta2, eps, grad_clip;
    int64_t warmup_steps;
    lh_job_lr_decay schedule;
} lh_job_optimizer;

typedef struct lh_job_placement {
    int pipeline_stages, data_parallel;
    char topology[LH_PATH_MAX]; /* "" = probe the network at start-up */
    char plan[LH_PATH_MAX];     /* "" = run the scheduler */
    char strategy[64];          /* scheduler strategy name */
    int emulate;                /* apply the topology's links to local traffic */
    double time_scale;          /* emulated link times are multiplied by this */
} lh_job_placement;

typedef struct lh_job_compression {
    lh_compress_mode mode;
    int forward_bits, backward_bits; /* activations / activation gradients */
    int gradient_bits;               /* data-parallel gradients; 0 = fp32 */
    int group_size;                  /* 0 = one scale per channel */
    lh_job_rounding rounding;
    int zstd_level;                  /* 0 = off */
    double clip;                     /* 0 = scales are the group absmax; k > 0 = min(absmax, k * RMS) */
} lh_job_compression;

typedef struct lh_job_checkpoint {
    char dir[LH_PATH_MAX]; /* "" = no checkpoints */
    int64_t every_steps;   /* 0 = only at the end */
    int keep;              /* committed checkpoints kept on disk */
    int resume;            /* resume from the newest committed checkpoint */
} lh_job_checkpoint;

typedef struct lh_job_security {
    char key_file[LH_PATH_MAX]; /* "" = frames carry CRC-32C only; else encrypt with this job secret */
} lh_job_security;

typedef struct lh_job {
    char name[64];
    uint64_t seed;
    lh_job_model model;
    lh_job_data data;
    lh_job_batch batch;
    lh_job_optimizer optimizer;
    lh_pipeline_schedule schedule;
    int pipeline_depth; /* 1F1B: stage s runs depth x (stages - s - 1) forwards before its first backward;
                           LH_JOB_DEPTH_AUTO until the coordinator chooses one */
    lh_job_placement placement;
    lh_job_compression compression;
    lh_job_checkpoint checkpoint;
    lh_job_security security;
    lh_compute_device device; /* where every stage runs its math: LH_DEVICE_CPU (default) or LH_DEVICE_CUDA */
    lh_job_transport transport; /* how the data-parallel gradient sync travels */
    char output_dir[LH_PATH_MAX];
    int64_t log_every;
    int64_t eval_every;   /* 0 = only at the end */
    int64_t verify_every; /* steps between replica-agreement checks; 0 = never */
    double peer_timeout_s;
} lh_job;

/** Fill `job` with the defaults documented in docs/formats.md. */
void lh_job_defaults(lh_job *job);

/** Parse and validate a job document held in memory; `name` is used in messages. */
lh_status lh_job_parse(const char *name, const char *text, size_t len, lh_job *out);

/** Make the job's relative input paths relative to the folder of `job_path` (the file they came from). */
lh_status lh_job_resolve_paths(lh_job *job, const char *job_path);

/** Load and validate a job file, then lh_job_resolve_paths. */
lh_status lh_job_load(const char *path, lh_job *out);

/** Names for the enums, as written in files. */
const char *lh_compress_mode_name(lh_compress_mode m);
const char *lh_pipeline_schedule_name(lh_pipeline_schedule s);

#ifdef __cplusplus
}
#endif
#endif
