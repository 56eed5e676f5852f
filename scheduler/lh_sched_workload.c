/*
 * Workload: turns "what model, how split, how batched, how compressed" into
 * the bytes and FLOPs the cost models need.
 *
 * The formulas are the usual GPT accounting (12h^2 + 13h parameters per block,
 * 2 FLOPs per parameter per token forward plus 4*S^2*h for attention, backward
 * twice forward, Megatron's ~34*m*S*h fp16 bytes of stashed activations per
 * block) so a researcher can check them by hand; DT-FM's published constants
 * can override the derived message sizes, so its numbers can be reproduced
 * exactly without pretending our accounting is theirs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_io.h"
#include "lh_json.h"
#include "lh_sched.h"

#define WORKLOAD_FORMAT "longhaul-workload"
#define WORKLOAD_VERSION 1

void lh_workload_dtfm_gpt3xl(lh_workload *w)
{
    memset(w, 0, sizeof *w);
    w->layers = 24;
    w->hidden = 2048;
    w->seq_len = 2048;
    w->vocab = 50257;
    w->stages = 8;
    w->replicas = 8;
    w->batch = 32;
    w->micro_batch = 1;
    w->act_bytes = 2;
    w->grad_bytes = 4;
    w->act_bits = 16;
    w->grad_bits = 32;
    w->optimizer_bytes_per_param = 16;
    w->schedule = LH_SCHEDULE_GPIPE;
    w->depth = 1;
    w->overlap = 1.0;
    w->dtfm_c_dp_bytes = 0.65e9;
    w->dtfm_c_pp_bytes = 0.47124922e9;
}

lh_status lh_workload_validate(const lh_workload *w)
{
    if (w->layers < 1) return lh_fail(LH_ERR_INVALID_ARG, "workload: layers must be >= 1, got %d", w->layers);
    if (w->hidden < 1) return lh_fail(LH_ERR_INVALID_ARG, "workload: hidden must be >= 1, got %d", w->hidden);
    if (w->seq_len < 1) return lh_fail(LH_ERR_INVALID_ARG, "workload: seq_len must be >= 1, got %d", w->seq_len);
    if (w->vocab < 0) return lh_fail(LH_ERR_INVALID_ARG, "workload: vocab must be >= 0, got %d", w->vocab);
    if (w->stages < 1 || w->replicas < 1)
        return lh_fail(LH_ERR_INVALID_ARG, "workload: pipeline_stages and data_parallel must be >= 1, got %d and %d",
                       w->stages, w->replicas);
    if (w->stages > w->layers)
        return lh_fail(LH_ERR_INVALID_ARG, "workload: %d pipeline stages for only %d layers (each stage needs one)",
                       w->stages, w->layers);
    if (w->batch < 1 || w->micro_batch < 1 || w->batch % w->micro_batch)
        return lh_fail(LH_ERR_INVALID_ARG, "workload: micro_batch (%d) must be >= 1 and divide batch (%d)",
                       w->micro_batch, w->batch);
    if (w->act_bytes < 1 || w->grad_bytes < 1)
        return lh_fail(LH_ERR_INVALID_ARG, "workload: act_bytes and grad_bytes must be >= 1");
    if (!(w->act_bits > 0 && w->act_bits <= 64) || !(w->grad_bits > 0 && w->grad_bits <= 64))
        return lh_fail(LH_ERR_INVALID_ARG, "workload: act_bits and grad_bits must be in (0, 64], got %g and %g",
                       w->act_bits, w->grad_bits);
    if (!(w->optimizer_bytes_per_param >= 0))
        return lh_fail(LH_ERR_INVALID_ARG, "workload: optimizer_bytes_per_param must be >= 0");
    if (!(w->overlap >= 0 && w->overlap <= 1))
        return lh_fail(LH_ERR_INVALID_ARG, "workload: overlap must be in [0, 1], got %g", w->overlap);
    if (w->schedule != LH_SCHEDULE_GPIPE && w->schedule != LH_SCHEDULE_1F1B)
        return lh_fail(LH_ERR_INVALID_ARG, "workload: unknown pipeline schedule %d", (int)w->schedule);
    if (!(w->dtfm_c_dp_bytes >= 0) || !(w->dtfm_c_pp_bytes >= 0))
        return lh_fail(LH_ERR_INVALID_ARG, "workload: DT-FM message sizes must be >= 0");
    return LH_OK;
}

double lh_workload_block_params(const lh_workload *w, int layers)
{
    double h = w->hidden;
    return (double)layers * (12.0 * h * h + 13.0 * h);
}

static double stage_params(const lh_workload *w, int layers, int is_first, int is_last)
{
    double params = lh_workload_block_params(w, layers);
    double h = w->hidden;
    if (is_first) params += (double)w->vocab * h + (double)w->seq_len * h; /* token + position embeddings */
    if (is_last) params += (double)w->vocab * h + 2.0 * h;                 /* tied head copy + final LayerNorm */
    return params;
}

double lh_workload_act_message_bytes(const lh_workload *w)
{
    return (double)w->micro_batch * w->seq_len * w->hidden * w->act_bits / 8.0;
}

double lh_workload_grad_bytes(const lh_workload *w, int layers, int is_first, int is_last)
{
    return stage_params(w, layers, is_first, is_last) * w->grad_bits / 8.0;
}

double lh_workload_forward_flops(const lh_workload *w, int layers, int is_last)
{
    double tokens = (double)w->micro_batch * w->seq_len;
    double h = w->hidden;
    double flops = 2.0 * lh_workload_block_params(w, layers) * tokens +
                   (double)layers * 4.0 * w->micro_batch * (double)w->seq_len * w->seq_len * h;
    if (is_last) flops += 2.0 * tokens * h * w->vocab;
    return flops;
}

int lh_workload_warmup(const lh_workload *w, int stage)
{
    int M = w->batch / w->micro_batch;
    if (w->schedule == LH_SCHEDULE_GPIPE) return M;
    int64_t warm = (int64_t)(w->depth > 1 ? w->depth : 1) * (w->stages - stage - 1);
    return warm < M ? (int)warm : M;
}

double lh_workload_stage_memory(const lh_workload *w, int layers, int stage, int is_first, int is_last)
{
    double params = stage_params(w, layers, is_first, is_last);
    int micro_batches = w->batch / w->micro_batch;
    int warmup = lh_workload_warmup(w, stage);
    int stashed = warmup < micro_batches ? warmup + 1 : micro_batches;
    double act_per_block = 17.0 * w->act_bytes * (double)w->micro_batch * w->seq_len * w->hidden;
    return params * w->optimizer_bytes_per_param + (double)stashed * layers * act_per_block;
}

double lh_workload_dtfm_c_dp(const lh_workload *w, int layers)
{
    if (w->dtfm_c_dp_bytes > 0) return w->dtfm_c_dp_bytes;
    return lh_workload_grad_bytes(w, layers, 0, 0);
}

double lh_workload_dtfm_c_pp(const lh_workload *w)
{
    if (w->dtfm_c_pp_bytes > 0) return w->dtfm_c_pp_bytes;
    return (double)w->batch * w->seq_len * w->hidden * w->act_bits / 8.0;
}

lh_status lh_workload_parse(const char *name, const char *text, size_t len, lh_workload *out)
{
    json_object *root;
    lh_status st = lh_json_parse(name, text, len, &root);
    if (st) return st;
    lh_jpath p;
    lh_jpath_init(&p, name);
    static const char *const keys[] = {"format",     "version",       "layers",      "hidden",
                                       "seq_len",    "vocab",         "pipeline_stages", "data_parallel",
                                       "batch",      "micro_batch",   "act_bytes",   "grad_bytes",
                                       "act_bits",   "grad_bits",     "optimizer_bytes_per_param",
                                       "schedule",   "depth",         "overlap",     "dtfm_c_dp_gb",
                                       "dtfm_c_pp_gb", NULL};
    static const char *const schedules[] = {"gpipe", "1f1b", NULL};
    lh_workload w;
    lh_workload_dtfm_gpt3xl(&w);
    w.dtfm_c_dp_bytes = 0;
    w.dtfm_c_pp_bytes = 0;
    int64_t version, v;
    double d;
    int e;
    st = lh_json_expect_object(&p, root);
    if (!st) st = lh_json_check_header(&p, root, WORKLOAD_FORMAT, WORKLOAD_VERSION, &version);
    if (!st) st = lh_json_check_keys(&p, root, keys);
#define GET_INT(key, lo, hi, field, required)                                               \
    if (!st) {                                                                              \
        int found_ = 1;                                                                     \
        v = (field);                                                                        \
        st = (required) ? lh_json_get_int(&p, root, key, lo, hi, &v)                       \
                        : lh_json_opt_int(&p, root, key, lo, hi, &v, &found_);             \
        if (!st) (field) = (int)v;                                                          \
    }
#define GET_DOUBLE(key, lo, hi, field)                                                      \
    if (!st) {                                                                              \
        d = (field);                                                                        \
        st = lh_json_opt_double(&p, root, key, lo, hi, &d, NULL);                           \
        if (!st) (field) = d;                                                               \
    }
    GET_INT("layers", 1, 100000, w.layers, 1);
    GET_INT("hidden", 1, 1 << 20, w.hidden, 1);
    GET_INT("seq_len", 1, 1 << 24, w.seq_len, 1);
    GET_INT("vocab", 0, 1 << 26, w.vocab, 0);
    GET_INT("pipeline_stages", 1, 100000, w.stages, 1);
    GET_INT("data_parallel", 1, 1000000, w.replicas, 1);
    GET_INT("batch", 1, 1 << 24, w.batch, 0);
    GET_INT("micro_batch", 1, 1 << 24, w.micro_batch, 0);
    GET_INT("act_bytes", 1, 8, w.act_bytes, 0);
    GET_INT("grad_bytes", 1, 8, w.grad_bytes, 0);
    GET_DOUBLE("act_bits", 0.01, 64, w.act_bits);
    GET_DOUBLE("grad_bits", 0.01, 64, w.grad_bits);
    GET_DOUBLE("optimizer_bytes_per_param", 0, 1024, w.optimizer_bytes_per_param);
    GET_INT("depth", 1, 1 << 20, w.depth, 0);
    GET_DOUBLE("overlap", 0, 1, w.overlap);
    double c_dp_gb = 0, c_pp_gb = 0;
    GET_DOUBLE("dtfm_c_dp_gb", 0, 1e6, c_dp_gb);
    GET_DOUBLE("dtfm_c_pp_gb", 0, 1e6, c_pp_gb);
#undef GET_INT
#undef GET_DOUBLE
    if (!st) {
        int found = 0;
        e = 0;
        st = lh_json_opt_enum(&p, root, "schedule", schedules, &e, &found);
        if (!st && found) w.schedule = (lh_pipe_schedule)e;
    }
    w.dtfm_c_dp_bytes = c_dp_gb * 1e9;
    w.dtfm_c_pp_bytes = c_pp_gb * 1e9;
    if (!st && w.batch % w.micro_batch)
        st = lh_json_fail(&p, "micro_batch", "must divide batch (%d), got %d", w.batch, w.micro_batch);
    if (!st && w.stages > w.layers)
        st = lh_json_fail(&p, "pipeline_stages", "must be <= layers (%d), got %d", w.layers, w.stages);
    if (!st) {
        st = lh_workload_validate(&w);
        if (st) st = lh_fail_prefix(st, "%s", name);
    }
    json_object_put(root);
    if (!st) *out = w;
    return st;
}

lh_status lh_workload_load(const char *path, lh_workload *out)
{
    char *text;
    size_t len;
    lh_status st = lh_read_file(path, 16u << 20, &text, &len);
    if (st) return st;
    st = lh_workload_parse(path, text, len, out);
    free(text);
    return st;
}
