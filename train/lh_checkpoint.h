/*
 * lh_checkpoint: the two on-disk model formats (details in docs/model.md).
 *
 * llm.c fp32 checkpoints (version 3) are how users bring GPT-2 weights in and
 * take them out: a 256-int32 header and 16 tensors stored TENSOR-major (all
 * layers' qkvw together, ...).  Loading converts to longhaul's LAYER-major
 * stage buffers; any stage of any partition can load its own part straight
 * from the file without reading the rest.
 *
 * longhaul checkpoints are for training: a small header with the config and
 * step, a record table, and one record per model part (embedding, each layer,
 * head) holding parameters plus both AdamW moments, each with its own
 * CRC-32C.  A stage reads only the records it owns (so a run can resume on a
 * different pipeline partition), verifying every record it reads.  A file
 * holds either the whole model or one stage's part (so a pipeline can
 * checkpoint without shipping weights over its slow links); any partition
 * loads from one full file or from the set of parts.  Files are written
 * atomically (temporary file, fsync, rename).
 *
 * Every reader here accepts untrusted files: sizes are checked against the
 * file length before anything is read or allocated, and the buffer variants
 * exist for the fuzz targets.
 */
#ifndef LH_CHECKPOINT_H
#define LH_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "lh_model.h"
#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_LLMC_MAGIC 20240326
#define LH_LLMC_VERSION_FP32 3
#define LH_LLMC_HEADER_BYTES 1024

/** File formats lh_checkpoint_detect() recognises. */
typedef enum lh_checkpoint_format {
    LH_CKPT_FORMAT_UNKNOWN = 0,
    LH_CKPT_FORMAT_LLMC,    /* llm.c fp32 model file */
    LH_CKPT_FORMAT_LONGHAUL /* longhaul training checkpoint */
} lh_checkpoint_format;

/** Identify a file by its first bytes; LH_ERR_FORMAT naming the file when it is neither. */
lh_status lh_checkpoint_detect(const char *path, lh_checkpoint_format *format);

/** Format and model config of any checkpoint, from its header only (no weights are read). */
lh_status lh_checkpoint_read_config(const char *path, lh_checkpoint_format *format, lh_model_config *config);

/* ---- llm.c ---- */

/** Parse and validate an llm.c header (first 1024 bytes of `data`). */
lh_status lh_llmc_parse_header(const void *data, size_t len, lh_model_config *config);

/** Read the config from an llm.c file's header, checking the file size matches it. */
lh_status lh_llmc_read_config(const char *path, lh_model_config *config);

/**
 * Load the parameters `stage` owns from an llm.c file whose config must equal
 * the stage's (LH_ERR_MISMATCH naming the field otherwise).  Gradients and
 * AdamW moments are cleared.  Rejects non-finite weights.
 */
lh_status lh_llmc_load(lh_stage *stage, const char *path);

/** The same from an in-memory file image. */
lh_status lh_llmc_load_buffer(lh_stage *stage, const void *data, size_t len);

/** Bytes of the llm.c file of `config`. */
uint64_t lh_llmc_file_bytes(const lh_model_config *config);

/**
 * Write a whole-model stage (embedding, all layers, head) as an llm.c fp32
 * file, atomically.  LH_ERR_UNSUPPORTED for a partial stage.
 */
lh_status lh_llmc_save(lh_stage *stage, const char *path);

/* ---- longhaul ---- */

#define LH_CKPT_MAGIC "LHCKPT\0\1"
#define LH_CKPT_VERSION 1

/** Summary of a longhaul checkpoint file. */
typedef struct lh_checkpoint_info {
    lh_model_config config;
    int64_t step;       /* optimizer steps taken when it was written */
    int record_count;   /* embedding + layers + head */
    int has_optimizer;  /* records carry AdamW moments */
    int partial;        /* one stage's part of a split model (lh_ckpt_save_part) */
} lh_checkpoint_info;

/**
 * Write a longhaul checkpoint of the model made of `stage_count` stages (in
 * any order; together they must own the embedding, every layer and the head
 * exactly once), with their parameters and AdamW moments and the step,
 * atomically.
 */
lh_status lh_ckpt_save(const char *path, lh_stage *const *stages, int stage_count, int64_t step);

/**
 * Write only the records `stage` owns (its embedding, layers, head; not the
 * head's wte copy, which the first stage's part holds) as a PARTIAL
 * checkpoint, atomically.  This is how a pipeline checkpoints without moving
 * weights: every stage writes its own part, and any partition later loads
 * from the set of parts with lh_ckpt_load_parts.
 */
lh_status lh_ckpt_save_part(const char *path, lh_stage *stage, int64_t step);

/**
 * Load the records `stage` needs from `count` files (one full checkpoint, or
 * the parts written by the stages of a split model, in any order).  All files
 * must agree on config and step; a needed record that no file holds is
 * LH_ERR_NOT_FOUND naming it.
 */
lh_status lh_ckpt_load_parts(lh_stage *stage, const char *const *paths, int count, int64_t *step);

/** Read and verify the header and record table of a longhaul checkpoint. */
lh_status lh_ckpt_read_info(const char *path, lh_checkpoint_info *info);

/**
 * Load the records `stage` owns (verifying each one's CRC), into parameters
 * and AdamW moments; gradients are cleared.  The file's config must equal the
 * stage's.  *step (may be NULL) receives the checkpoint's step.
 */
lh_status lh_ckpt_load(lh_stage *stage, const char *path, int64_t *step);

/** Buffer variants of the two readers above (fuzz targets, tests). */
lh_status lh_ckpt_read_info_buffer(const void *data, size_t len, lh_checkpoint_info *info);
lh_status lh_ckpt_load_buffer(lh_stage *stage, const void *data, size_t len, int64_t *step);

/**
 * Open any checkpoint (llm.c or longhaul) as a new whole-model stage for
 * inference or evaluation with batches up to max_batch x max_seq (max_seq is
 * capped at the model's max_seq_len; 0 means that maximum).  *step is 0 for
 * llm.c files.
 */
lh_status lh_model_open(const char *path, int max_batch, int max_seq, lh_stage **out, int64_t *step);

#ifdef __cplusplus
}
#endif
#endif
