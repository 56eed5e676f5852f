/*
 * Job files: defaults, strict parsing and cross-field validation.
 *
 * Input paths inside a job file (data, tokenizer, topology, plan, initial
 * checkpoint) are relative to the job file's folder, so a job and its data
 * can move together; output folders are relative to the working directory,
 * where the user runs the job.
 */
#include "lh_job.h"

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_io.h"
#include "lh_json.h"

#define JOB_FORMAT "longhaul-job"
#define JOB_VERSION 1

static const char *const compress_mode_names[] = {"fp32", "aqsgd", "directq", NULL};
static const char *const schedule_names[] = {"gpipe", "1f1b", NULL};
static const char *const lr_schedule_names[] = {"cosine", "linear", "constant", NULL};
static const char *const rounding_names[] = {"nearest", "stochastic", NULL};
/* indexed by lh_compute_device (lh_model.h) */
static const char *const device_names[] = {"cpu", "cuda", NULL};
static const char *const transport_names[] = {"mpi", "nccl", NULL};

const char *lh_compress_mode_name(lh_compress_mode m)
{
    return (unsigned)m < 3 ? compress_mode_names[m] : "unknown";
}

const char *lh_pipeline_schedule_name(lh_pipeline_schedule s) { return (unsigned)s < 2 ? schedule_names[s] : "unknown"; }

void lh_job_defaults(lh_job *job)
{
    memset(job, 0, sizeof *job);
    snprintf(job->name, sizeof job->name, "job");
    job->seed = 1;
    snprintf(job->data.train, sizeof job->data.train, "embedded");
    job->data.val_fraction = 0.1;
    snprintf(job->data.tokenizer, sizeof job->data.tokenizer, "byte");
    job->batch.batch_size = 8;
    job->batch.micro_batch = 8;
    job->batch.steps = 100;
    job->optimizer = (lh_job_optimizer){.lr = 3e-4, .min_lr_fraction = 0.1, .weight_decay = 0.0, .beta1 = 0.9,
                                        .beta2 = 0.95, .eps = 1e-8, .grad_clip = 1.0, .warmup_steps = 0,
                                        .schedule = LH_JOB_LR_COSINE};
    job->schedule = LH_JOB_SCHEDULE_1F1B;
    job->pipeline_depth = 1;
    job->placement.pipeline_stages = 1;
    job->placement.data_parallel = 1;
    snprintf(job->placement.strategy, sizeof job->placement.strategy, "auto");
    job->placement.time_scale = 1.0;
    job->compression = (lh_job_compression){.mode = LH_COMPRESS_FP32, .forward_bits = 4, .backward_bits = 8,
                                            .gradient_bits = 0, .group_size = 0, .rounding = LH_JOB_ROUND_NEAREST,
                                            .zstd_level = 0, .clip = 0.0};
    job->checkpoint.keep = 2;
    job->log_every = 1;
    job->verify_every = 10;
    job->peer_timeout_s = 60.0;
    job->device = LH_DEVICE_CPU;
}

typedef lh_status (*section_reader)(lh_jpath *p, json_object *obj, lh_job *job);

static lh_status read_model(lh_jpath *p, json_object *o, lh_job *job)
{
    static const char *const keys[] = {"layers", "channels", "heads", "context", "vocab", "init_checkpoint", NULL};
    lh_job_model *m = &job->model;
    int from_checkpoint = 0;
    lh_status st = lh_json_check_keys(p, o, keys);
    if (!st) st = lh_json_opt_string(p, o, "init_checkpoint", m->init_checkpoint, sizeof m->init_checkpoint,
                                     &from_checkpoint);
    /* A shape is required unless it comes from the initial checkpoint (then 0 means "as stored"). */
    struct { const char *key; int *field; int64_t lo, hi; } dims[] = {
        {"layers", &m->layers, 1, 1024},   {"channels", &m->channels, 1, 65536}, {"heads", &m->heads, 1, 1024},
        {"context", &m->context, 1, 1 << 20}, {"vocab", &m->vocab, 2, 65536},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0] && !st; i++) {
        int64_t v = 0;
        int found = 0;
        st = lh_json_opt_int(p, o, dims[i].key, dims[i].lo, dims[i].hi, &v, &found);
        if (!st && !found && !from_checkpoint)
            st = lh_json_fail(p, dims[i].key, "required field is missing (or give init_checkpoint)");
        *dims[i].field = (int)v;
    }
    if (!st && m->heads && m->channels % m->heads)
        st = lh_json_fail(p, "heads", "%d heads do not divide %d channels", m->heads, m->channels);
    return st;
}

static lh_status read_data(lh_jpath *p, json_object *o, lh_job *job)
{
    static const char *const keys[] = {"train", "val", "val_fraction", "tokenizer", NULL};
    lh_job_data *d = &job->data;
    lh_status st = lh_json_check_keys(p, o, keys);
    if (!st) st = lh_json_get_string(p, o, "train", d->train, sizeof d->train);
    if (!st && !d->train[0]) st = lh_json_fail(p, "train", "must not be empty");
    if (!st) st = lh_json_opt_string(p, o, "val", d->val, sizeof d->val, NULL);
    if (!st) st = lh_json_opt_double(p, o, "val_fraction", 0.0, 0.9, &d->val_fraction, NULL);
    if (!st) st = lh_json_opt_string(p, o, "tokenizer", d->tokenizer, sizeof d->tokenizer, NULL);
    return st;
}

static lh_status read_batch(lh_jpath *p, json_object *o, lh_job *job)
{
    static const char *const keys[] = {"batch_size", "micro_batch", "seq_len", "steps", "epochs", NULL};
    lh_job_batch *b = &job->batch;
    int64_t batch = b->batch_size, micro = 0, seq = 0, steps = 0;
    int has_micro = 0, has_steps = 0, has_epochs = 0;
    lh_status st = lh_json_check_keys(p, o, keys);
    if (!st) st = lh_json_get_int(p, o, "batch_size", 1, 1 << 20, &batch);
    if (!st) st = lh_json_opt_int(p, o, "micro_batch", 1, 1 << 20, &micro, &has_micro);
    if (!st) st = lh_json_opt_int(p, o, "seq_len", 1, 1 << 20, &seq, NULL);
    if (!st) st = lh_json_opt_int(p, o, "steps", 1, INT64_C(1) << 40, &steps, &has_steps);
    if (!st) st = lh_json_opt_double(p, o, "epochs", 1e-6, 1e9, &b->epochs, &has_epochs);
    if (!st && has_steps && has_epochs) st = lh_json_fail(p, "epochs", "give steps or epochs, not both");
    if (!st && has_micro && batch % micro)
        st = lh_json_fail(p, "micro_batch", "must divide batch_size (%lld), got %lld", (long long)batch,
                          (long long)micro);
    if (st) return st;
    b->batch_size = (int)batch;
    b->micro_batch = has_micro ? (int)micro : (int)batch;
    b->seq_len = (int)seq;
    b->steps = has_epochs ? 0 : (has_steps ? steps : b->steps);
    return LH_OK;
}

static lh_status read_optimizer(lh_jpath *p, json_object *o, lh_job *job)
{
    static const char *const keys[] = {"lr",        "min_lr_fraction", "weight_decay", "beta1",    "beta2",
                                       "eps",       "grad_clip",       "warmup_steps", "schedule", NULL};
    lh_job_optimizer *opt = &job->optimizer;
    int schedule = (int)opt->schedule;
    lh_status st = lh_json_check_keys(p, o, keys);
    if (!st) st = lh_json_opt_double(p, o, "lr", 0.0, 10.0, &opt->lr, NULL);
    if (!st) st = lh_json_opt_double(p, o, "min_lr_fraction", 0.0, 1.0, &opt->min_lr_fraction, NULL);
    if (!st) st = lh_json_opt_double(p, o, "weight_decay", 0.0, 10.0, &opt->weight_decay, NULL);
    if (!st) st = lh_json_opt_double(p, o, "beta1", 0.0, 0.999999, &opt->beta1, NULL);
    if (!st) st = lh_json_opt_double(p, o, "beta2", 0.0, 0.999999999, &opt->beta2, NULL);
    if (!st) st = lh_json_opt_double(p, o, "eps", 1e-30, 1.0, &opt->eps, NULL);
    if (!st) st = lh_json_opt_double(p, o, "grad_clip", 0.0, 1e9, &opt->grad_clip, NULL);
    if (!st) st = lh_json_opt_int(p, o, "warmup_steps", 0, INT64_C(1) << 40, &opt->warmup_steps, NULL);
    if (!st) st = lh_json_opt_enum(p, o, "schedule", lr_schedule_names, &schedule, NULL);
    opt->schedule = (lh_job_lr_decay)schedule;
    return st;
}

static lh_status read_pipeline(lh_jpath *p, json_object *o, lh_job *job)
{
    static const char *const keys[] = {"schedule", "depth", NULL};
    int schedule = (int)job->schedule;
    int64_t depth = job->pipeline_depth;
    lh_status st = lh_json_check_keys(p, o, keys);
    if (!st) st = lh_json_opt_enum(p, o, "schedule", schedule_names, &schedule, NULL);
    json_object *d = NULL;
    if (!st && json_object_object_get_ex(o, "depth", &d) && json_object_is_type(d, json_type_string)) {
        if (strcmp(json_object_get_string(d), "auto") != 0)
            st = lh_json_fail(p, "depth", "expected a number >= 1 or \"auto\", got \"%s\"", json_object_get_string(d));
        depth = LH_JOB_DEPTH_AUTO;
    } else if (!st) {
        st = lh_json_opt_int(p, o, "depth", 1, 1 << 20, &depth, NULL);
    }
    job->schedule = (lh_pipeline_schedule)schedule;
    job->pipeline_depth = (int)depth;
    return st;
}

static lh_status read_placement(lh_jpath *p, json_object *o, lh_job *job)
{
    static const char *const keys[] = {"pipeline_stages", "data_parallel", "topology",   "plan",
                                       "strategy",        "emulate",       "time_scale", NULL};
    lh_job_placement *pl = &job->placement;
    int64_t stages = pl->pipeline_stages, replicas = pl->data_parallel;
    lh_status st = lh_json_check_keys(p, o, keys);
    if (!st) st = lh_json_opt_int(p, o, "pipeline_stages", 1, 4096, &stages, NULL);
    if (!st) st = lh_json_opt_int(p, o, "data_parallel", 1, 65536, &replicas, NULL);
    if (!st) st = lh_json_opt_string(p, o, "topology", pl->topology, sizeof pl->topology, NULL);
    if (!st) st = lh_json_opt_string(p, o, "plan", pl->plan, sizeof pl->plan, NULL);
    if (!st) st = lh_json_opt_string(p, o, "strategy", pl->strategy, sizeof pl->strategy, NULL);
    if (!st) st = lh_json_opt_bool(p, o, "emulate", &pl->emulate, NULL);
    if (!st) st = lh_json_opt_double(p, o, "time_scale", 1e-6, 1e9, &pl->time_scale, NULL);
    if (!st && pl->emulate && !pl->topology[0])
        st = lh_json_fail(p, "emulate", "emulation needs a topology file to emulate");
    pl->pipeline_stages = (int)stages;
    pl->data_parallel = (int)replicas;
    return st;
}

static lh_status read_compression(lh_jpath *p, json_object *o, lh_job *job)
{
    static const char *const keys[] = {"mode",       "forward_bits", "backward_bits", "gradient_bits",
                                       "group_size", "rounding",     "zstd_level",    "clip",
                                       NULL};
    lh_job_compression *c = &job->compression;
    int mode = (int)c->mode, rounding = (int)c->rounding;
    int64_t fw = c->forward_bits, bw = c->backward_bits, gb = c->gradient_bits, group = c->group_size,
            zstd = c->zstd_level;
    lh_status st = lh_json_check_keys(p, o, keys);
    if (!st) st = lh_json_opt_enum(p, o, "mode", compress_mode_names, &mode, NULL);
    if (!st) st = lh_json_opt_int(p, o, "forward_bits", 1, 8, &fw, NULL);
    if (!st) st = lh_json_opt_int(p, o, "backward_bits", 1, 8, &bw, NULL);
    if (!st) st = lh_json_opt_int(p, o, "gradient_bits", 0, 8, &gb, NULL);
    if (!st) st = lh_json_opt_int(p, o, "group_size", 0, 1 << 20, &group, NULL);
    if (!st && group == 1) st = lh_json_fail(p, "group_size", "must be 0 (per channel) or at least 2");
    if (!st) st = lh_json_opt_enum(p, o, "rounding", rounding_names, &rounding, NULL);
    if (!st) st = lh_json_opt_int(p, o, "zstd_level", 0, 22, &zstd, NULL);
    /* scale clipping k (lh_quant_params.clip_rms, a float): 0 = off */
    if (!st) st = lh_json_opt_double(p, o, "clip", 0.0, 1e6, &c->clip, NULL);
    c->mode = (lh_compress_mode)mode;
    c->rounding = (lh_job_rounding)rounding;
    c->forward_bits = (int)fw;
    c->backward_bits = (int)bw;
    c->gradient_bits = (int)gb;
    c->group_size = (int)group;
    c->zstd_level = (int)zstd;
    return st;
}

static lh_status read_checkpoint(lh_jpath *p, json_object *o, lh_job *job)
{
    static const char *const keys[] = {"dir", "every_steps", "keep", "resume", NULL};
    lh_job_checkpoint *c = &job->checkpoint;
    int64_t keep = c->keep;
    lh_status st = lh_json_check_keys(p, o, keys);
    if (!st) st = lh_json_get_string(p, o, "dir", c->dir, sizeof c->dir);
    if (!st && !c->dir[0]) st = lh_json_fail(p, "dir", "must not be empty");
    if (!st) st = lh_json_opt_int(p, o, "every_steps", 0, INT64_C(1) << 40, &c->every_steps, NULL);
    if (!st) st = lh_json_opt_int(p, o, "keep", 1, 1000, &keep, NULL);
    if (!st) st = lh_json_opt_bool(p, o, "resume", &c->resume, NULL);
    c->keep = (int)keep;
    return st;
}

static lh_status read_security(lh_jpath *p, json_object *o, lh_job *job)
{
    static const char *const keys[] = {"key_file", NULL};
    lh_status st = lh_json_check_keys(p, o, keys);
    if (!st) st = lh_json_get_string(p, o, "key_file", job->security.key_file, sizeof job->security.key_file);
    if (!st && !job->security.key_file[0]) st = lh_json_fail(p, "key_file", "must not be empty");
    return st;
}

static lh_status read_section(lh_jpath *p, json_object *root, const char *key, section_reader reader, lh_job *job,
                              int required)
{
    json_object *o;
    lh_status st = required ? lh_json_get_object(p, root, key, &o) : lh_json_opt_object(p, root, key, &o);
    if (st || !o) return st;
    size_t saved = lh_jpath_push_key(p, key);
    st = reader(p, o, job);
    lh_jpath_pop(p, saved);
    return st;
}

/* Rules that span sections. */
static lh_status check_cross_fields(lh_jpath *p, lh_job *job)
{
    lh_job_model *m = &job->model;
    if (job->batch.seq_len == 0) job->batch.seq_len = m->context;
    if (m->context && job->batch.seq_len > m->context)
        return lh_json_fail(p, "batch.seq_len", "%d is longer than the model context %d", job->batch.seq_len,
                            m->context);
    if (m->layers && m->layers < job->placement.pipeline_stages)
        return lh_json_fail(p, "placement.pipeline_stages", "%d stages need at least as many layers (model has %d)",
                            job->placement.pipeline_stages, m->layers);
    if (job->batch.micro_batch * job->placement.pipeline_stages > 0 &&
        job->batch.batch_size / job->batch.micro_batch < 1)
        return lh_json_fail(p, "batch.micro_batch", "larger than batch_size");
    if (job->transport == LH_TRANSPORT_NCCL) {
        if (job->device != LH_DEVICE_CUDA)
            return lh_json_fail(p, "transport", "nccl moves device memory: it needs \"device\": \"cuda\"");
        if (job->compression.gradient_bits > 0)
            return lh_json_fail(p, "transport", "nccl carries fp32 gradients: set compression.gradient_bits to 0 "
                                                "(compressed gradients travel over mpi)");
        if (job->security.key_file[0])
            return lh_json_fail(p, "transport", "nccl traffic is not encrypted: it cannot honour security.key_file");
        if (job->placement.emulate)
            return lh_json_fail(p, "transport", "nccl traffic bypasses the link emulation (placement.emulate)");
    }
    if (!job->output_dir[0]) snprintf(job->output_dir, sizeof job->output_dir, "runs/%s", job->name);
    return LH_OK;
}

lh_status lh_job_parse(const char *name, const char *text, size_t len, lh_job *out)
{
    lh_job_defaults(out);
    json_object *root;
    lh_status st = lh_json_parse(name, text, len, &root);
    if (st) return st;
    lh_jpath p;
    lh_jpath_init(&p, name);
    int64_t version, seed = (int64_t)out->seed;
    static const char *const keys[] = {"format",      "version",   "name",       "seed",       "model",
                                       "data",        "batch",     "optimizer",  "pipeline",   "placement",
                                       "compression", "checkpoint", "security",  "output_dir", "log_every",
                                       "eval_every",  "verify_every", "peer_timeout_s", "device", "transport",
                                       NULL};
    st = lh_json_check_header(&p, root, JOB_FORMAT, JOB_VERSION, &version);
    if (!st) st = lh_json_check_keys(&p, root, keys);
    if (!st) st = lh_json_opt_string(&p, root, "name", out->name, sizeof out->name, NULL);
    if (!st) {
        for (const char *c = out->name; *c && !st; c++)
            if (!(*c == '-' || *c == '_' || *c == '.' || (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
                  (*c >= 'A' && *c <= 'Z')))
                st = lh_json_fail(&p, "name", "use letters, digits, '-', '_' and '.' only (it names folders)");
        if (!st && !out->name[0]) st = lh_json_fail(&p, "name", "must not be empty");
    }
    if (!st) st = lh_json_opt_int(&p, root, "seed", 0, INT64_MAX, &seed, NULL);
    out->seed = (uint64_t)seed;
    if (!st) st = read_section(&p, root, "model", read_model, out, 1);
    if (!st) st = read_section(&p, root, "data", read_data, out, 0);
    if (!st) st = read_section(&p, root, "batch", read_batch, out, 1);
    if (!st) st = read_section(&p, root, "optimizer", read_optimizer, out, 0);
    if (!st) st = read_section(&p, root, "pipeline", read_pipeline, out, 0);
    if (!st) st = read_section(&p, root, "placement", read_placement, out, 0);
    if (!st) st = read_section(&p, root, "compression", read_compression, out, 0);
    if (!st) st = read_section(&p, root, "checkpoint", read_checkpoint, out, 0);
    if (!st) st = read_section(&p, root, "security", read_security, out, 0);
    if (!st) st = lh_json_opt_string(&p, root, "output_dir", out->output_dir, sizeof out->output_dir, NULL);
    if (!st) st = lh_json_opt_int(&p, root, "log_every", 1, INT64_C(1) << 40, &out->log_every, NULL);
    if (!st) st = lh_json_opt_int(&p, root, "eval_every", 0, INT64_C(1) << 40, &out->eval_every, NULL);
    if (!st) st = lh_json_opt_int(&p, root, "verify_every", 0, INT64_C(1) << 40, &out->verify_every, NULL);
    if (!st) st = lh_json_opt_double(&p, root, "peer_timeout_s", 0.1, 86400.0, &out->peer_timeout_s, NULL);
    int device = (int)out->device;
    if (!st) st = lh_json_opt_enum(&p, root, "device", device_names, &device, NULL);
    out->device = (lh_compute_device)device;
    int transport = (int)out->transport;
    if (!st) st = lh_json_opt_enum(&p, root, "transport", transport_names, &transport, NULL);
    out->transport = (lh_job_transport)transport;
    if (!st) st = check_cross_fields(&p, out);
    json_object_put(root);
    return st;
}

/* Prefix a relative input path with the job file's folder. */
static lh_status resolve_input(const char *job_path, char *path, size_t cap, const char *keep_as_is)
{
    if (!path[0] || path[0] == '/' || (keep_as_is && strcmp(path, keep_as_is) == 0)) return LH_OK;
    char *copy = strdup(job_path);
    if (!copy) return lh_fail(LH_ERR_NOMEM, "out of memory");
    const char *dir = dirname(copy);
    char joined[LH_PATH_MAX * 2];
    int n = snprintf(joined, sizeof joined, "%s/%s", dir, path);
    free(copy);
    if (n < 0 || (size_t)n >= cap) return lh_fail(LH_ERR_FORMAT, "%s: path %s is too long", job_path, path);
    memcpy(path, joined, (size_t)n + 1);
    return LH_OK;
}

lh_status lh_job_resolve_paths(lh_job *job, const char *job_path)
{
    lh_status st = resolve_input(job_path, job->model.init_checkpoint, sizeof job->model.init_checkpoint, NULL);
    if (!st) st = resolve_input(job_path, job->data.train, sizeof job->data.train, "embedded");
    if (!st) st = resolve_input(job_path, job->data.val, sizeof job->data.val, NULL);
    if (!st) st = resolve_input(job_path, job->data.tokenizer, sizeof job->data.tokenizer, "byte");
    if (!st) st = resolve_input(job_path, job->placement.topology, sizeof job->placement.topology, NULL);
    if (!st) st = resolve_input(job_path, job->placement.plan, sizeof job->placement.plan, NULL);
    if (!st) st = resolve_input(job_path, job->security.key_file, sizeof job->security.key_file, NULL);
    return st;
}

lh_status lh_job_load(const char *path, lh_job *out)
{
    char *text;
    size_t len;
    lh_status st = lh_read_file(path, (size_t)16 << 20, &text, &len);
    if (st) return st;
    st = lh_job_parse(path, text, len, out);
    free(text);
    return st ? st : lh_job_resolve_paths(out, path);
}
