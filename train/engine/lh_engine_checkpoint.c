/*
 * Engine checkpoints: every stage writes its own part, every rank with codec
 * state writes its own state file, a manifest commits.
 *
 * Layout under the job's checkpoint folder:
 *
 *     step_00000050/part_s0.lhck        stage 0's records (lh_ckpt_save_part), written by replica 0's rank
 *     step_00000050/part_s1.lhck        ...
 *     step_00000050/state_r0_s0.lhst    codec state of replica 0, stage 0 (AQ-SGD caches, error-feedback
 *     step_00000050/state_r1_s0.lhst    residuals), one per rank that has any, written by that rank
 *     step_00000050/MANIFEST.json       written by rank 0 once every file is written and read back
 *     LATEST                            "step_00000050\n": the newest committed checkpoint
 *
 * A checkpoint exists only once LATEST names it; a crash before that leaves
 * the previous one in force, and a folder without a manifest is ignored.
 * Replicas hold identical parameters (the replica-agreement check runs before
 * writing), so only replica 0 writes parts.  Parts are per stage and the model
 * format is per layer, so a resumed run may use any partition: each rank loads
 * the records its new stage needs from the set of parts.
 *
 * Codec state is not the same across replicas (each replica's AQ-SGD links
 * carry its own samples; each data-parallel rank keeps its own residuals), so
 * every rank that has some writes its own file (format "LHST" in
 * docs/formats.md, sections serialised by the codecs themselves: lh_aq_save_state,
 * lh_callreduce_save_state).  It is only meaningful on the same plan: the same
 * stages, replicas and layer split, the same codecs in use, sequence length
 * and dataset size.  All of that is hashed into a plan key, recorded in the
 * manifest and in every state file.
 *
 * What a resume restores: parameters, AdamW moments, the step (hence the
 * learning rate) and the dataset position, and, when the plan key matches,
 * the AQ-SGD caches and error-feedback residuals, so fp32, DirectQ and
 * compressed runs all continue exactly as if uninterrupted.  A state file
 * that fails to verify is then an error naming the file.  On another plan
 * the codecs start empty (logged at info level): every sample's next visit
 * travels in full precision and re-seeds both caches, residuals start at zero,
 * and the run continues close to, not identical with, an uninterrupted one.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lh_bytes.h"
#include "lh_checkpoint.h"
#include "lh_engine_internal.h"
#include "lh_io.h"
#include "lh_json.h"
#include "lh_log.h"

#define MANIFEST_FORMAT  "longhaul-checkpoint"
#define MANIFEST_VERSION 2 /* 2 added first_layers and codec_state; 1 is still read */

#define STATE_MAGIC     "LHST"
#define STATE_VERSION   1
#define STATE_HEADER    56
#define STATE_SECTION   16 /* u32 kind, u32 reserved, u64 bytes */
#define STATE_MAX_BYTES ((size_t)1 << 44)

/* Which codec state a rank holds (bit = 1 << (kind - 1)). */
enum { HAS_AQ_SEND = 1, HAS_AQ_RECV = 2, HAS_GRAD = 4, HAS_TIED = 8 };

static const char *kind_name(int kind)
{
    return kind == LH_ENGINE_STATE_AQ_SEND   ? "AQ-SGD sender cache"
           : kind == LH_ENGINE_STATE_AQ_RECV ? "AQ-SGD receiver cache"
           : kind == LH_ENGINE_STATE_GRAD    ? "error-feedback residuals"
                                             : "tied-embedding residual";
}

/*
 * The job's plan as far as codec state cares: each stage's layers, and per
 * (replica, stage) which codecs hold state; with the model, the sequence
 * length and the dataset size, hashed into the plan key.  Every rank derives
 * the same layout from the plan and the job, without traffic.
 */
typedef struct layout {
    int stages, replicas;
    int *first_layer, *num_layers; /* [stages]; one allocation with mask */
    int *mask;                     /* [replica * stages + stage]: HAS_* bits */
    uint64_t key;                  /* FNV-1a 64 of all of it */
    int any_state;
} layout;

/* The codecs that hold state on stage `stage` of any replica (open_codecs in lh_engine.c creates them). */
static int stage_mask(const lh_engine *e, int stage)
{
    int aq = e->job.compression.mode == LH_COMPRESS_AQSGD, grads = e->job.compression.gradient_bits > 0;
    int tied = e->stages > 1 && (stage == 0 || stage == e->stages - 1);
    return (aq && stage < e->stages - 1 ? HAS_AQ_SEND : 0) | (aq && stage > 0 ? HAS_AQ_RECV : 0) |
           (grads && e->replicas > 1 ? HAS_GRAD : 0) | (grads && tied ? HAS_TIED : 0);
}

static int my_mask(const lh_engine *e)
{
    return (e->aq_send ? HAS_AQ_SEND : 0) | (e->aq_recv ? HAS_AQ_RECV : 0) |
           (e->grad_allreduce ? HAS_GRAD : 0) | (e->tied_codec ? HAS_TIED : 0);
}

static void layout_free(layout *l)
{
    free(l->first_layer); /* num_layers and mask live in the same block */
    memset(l, 0, sizeof *l);
}

static uint64_t fnv_u64(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        h ^= (uint8_t)(v >> (8 * i));
        h *= 1099511628211ull;
    }
    return h;
}

static lh_status plan_layout(const lh_engine *e, layout *l)
{
    memset(l, 0, sizeof *l);
    int n = e->stages * e->replicas;
    l->first_layer = malloc((size_t)(2 * e->stages + n) * sizeof(int));
    if (!l->first_layer) return lh_fail(LH_ERR_NOMEM, "checkpoint: out of memory");
    l->stages = e->stages;
    l->replicas = e->replicas;
    l->num_layers = l->first_layer + e->stages;
    l->mask = l->num_layers + e->stages;
    const lh_job_model *m = &e->job.model;
    uint64_t h = 14695981039346656037ull;
    h = fnv_u64(h, 3); /* version of the key's definition (3 added the tied-embedding residual) */
    h = fnv_u64(h, (uint64_t)e->stages);
    h = fnv_u64(h, (uint64_t)e->replicas);
    h = fnv_u64(h, (uint64_t)e->seq);
    h = fnv_u64(h, (uint64_t)m->layers);
    h = fnv_u64(h, (uint64_t)m->channels);
    h = fnv_u64(h, (uint64_t)m->heads);
    h = fnv_u64(h, (uint64_t)m->vocab);
    h = fnv_u64(h, (uint64_t)m->context);
    h = fnv_u64(h, lh_dataset_total_samples(e->train));
    for (int s = 0; s < e->stages; s++) {
        l->first_layer[s] = e->first_layer[s];
        l->num_layers[s] = e->num_layers[s];
        h = fnv_u64(h, (uint64_t)l->first_layer[s]);
        h = fnv_u64(h, (uint64_t)l->num_layers[s]);
    }
    for (int i = 0; i < n; i++) {
        l->mask[i] = stage_mask(e, i % e->stages);
        l->any_state |= l->mask[i] != 0;
        h = fnv_u64(h, (uint64_t)l->mask[i]);
    }
    l->key = h;
    return LH_OK;
}

static void state_name(int replica, int stage, char *out, size_t cap)
{
    snprintf(out, cap, "state_r%d_s%d.lhst", replica, stage);
}

/* "0,2" */
static void layers_text(const int *first, int n, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; i < n && used + 16 < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%d", i ? "," : "", first[i]);
}

lh_status lh_engine_state_parse(const void *buf, size_t len, lh_engine_state_info *info)
{
    const uint8_t *b = buf;
    if (!info) return lh_fail(LH_ERR_INVALID_ARG, "state file: NULL argument");
    memset(info, 0, sizeof *info);
    if (!b || len < STATE_HEADER + 4)
        return lh_fail(LH_ERR_TRUNCATED, "%zu bytes, shorter than the %d-byte minimum", len,
                       STATE_HEADER + 4);
    if (memcmp(b, STATE_MAGIC, 4) != 0)
        return lh_fail(LH_ERR_FORMAT, "bad magic (not a longhaul state file)");
    if (lh_get_le32(b + 4) != STATE_VERSION)
        return lh_fail(LH_ERR_UNSUPPORTED, "version %u, this build reads %d", lh_get_le32(b + 4), STATE_VERSION);
    if (lh_get_le32(b + 8) != STATE_HEADER)
        return lh_fail(LH_ERR_FORMAT, "header of %u bytes, expected %d", lh_get_le32(b + 8), STATE_HEADER);
    uint64_t total = lh_get_le64(b + 48);
    if (total != len)
        return lh_fail(total > len ? LH_ERR_TRUNCATED : LH_ERR_FORMAT, "%zu bytes, the header declares %llu",
                       len, (unsigned long long)total);
    uint32_t want = lh_get_le32(b + len - 4), got = lh_crc32c(0, b, len - 4);
    if (want != got)
        return lh_fail(LH_ERR_CORRUPT, "CRC-32C mismatch (stored %08x, computed %08x)", want, got);
    uint32_t n = lh_get_le32(b + 12), replica = lh_get_le32(b + 16), stage = lh_get_le32(b + 20), replicas = lh_get_le32(b + 24),
             stages = lh_get_le32(b + 28);
    int64_t step = (int64_t)lh_get_le64(b + 32);
    if (replicas < 1 || replicas > 65536 || stages < 1 || stages > 4096 || replica >= replicas ||
        stage >= stages)
        return lh_fail(LH_ERR_FORMAT, "replica %u of %u, stage %u of %u", replica, replicas, stage, stages);
    if (step < 0) return lh_fail(LH_ERR_FORMAT, "step %lld", (long long)step);
    if (n > LH_ENGINE_STATE_MAX_SECTIONS)
        return lh_fail(LH_ERR_FORMAT, "%u sections, at most %d", n, LH_ENGINE_STATE_MAX_SECTIONS);
    size_t off = STATE_HEADER, end = len - 4;
    unsigned seen = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (end - off < STATE_SECTION)
            return lh_fail(LH_ERR_FORMAT, "section %u: header runs past the end", i);
        uint32_t kind = lh_get_le32(b + off);
        uint64_t bytes = lh_get_le64(b + off + 8);
        if (kind < LH_ENGINE_STATE_AQ_SEND || kind > LH_ENGINE_STATE_TIED)
            return lh_fail(LH_ERR_FORMAT, "section %u: unknown kind %u", i, kind);
        if (lh_get_le32(b + off + 4)) return lh_fail(LH_ERR_FORMAT, "section %u: reserved bytes not zero", i);
        if (seen & (1u << kind))
            return lh_fail(LH_ERR_FORMAT, "section %u: a second %s section", i, kind_name((int)kind));
        seen |= 1u << kind;
        off += STATE_SECTION;
        if (bytes > end - off)
            return lh_fail(LH_ERR_FORMAT, "section %u (%s): %llu bytes, %zu remain", i, kind_name((int)kind),
                           (unsigned long long)bytes, end - off);
        info->sections[i].kind = (lh_engine_state_kind)kind;
        info->sections[i].data = b + off;
        info->sections[i].bytes = (size_t)bytes;
        off += (size_t)bytes;
    }
    if (off != end) return lh_fail(LH_ERR_FORMAT, "%zu bytes after the last section", end - off);
    info->replica = (int)replica;
    info->stage = (int)stage;
    info->replicas = (int)replicas;
    info->stages = (int)stages;
    info->step = step;
    info->plan_key = lh_get_le64(b + 40);
    info->n_sections = (int)n;
    return LH_OK;
}

/* This rank's state file: sections in kind order, written atomically, read back and compared. */
static lh_status write_state(lh_engine *e, const char *dir, int64_t step, uint64_t key)
{
    char name[64], path[LH_PATH_MAX + 96];
    state_name(e->replica, e->stage, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t sizes[LH_ENGINE_STATE_MAX_SECTIONS + 1] = {0};
    sizes[LH_ENGINE_STATE_AQ_SEND] = e->aq_send ? lh_aq_state_bytes(e->aq_send) : 0;
    sizes[LH_ENGINE_STATE_AQ_RECV] = e->aq_recv ? lh_aq_state_bytes(e->aq_recv) : 0;
    sizes[LH_ENGINE_STATE_GRAD] = e->grad_allreduce ? lh_callreduce_state_bytes(e->grad_allreduce) : 0;
    sizes[LH_ENGINE_STATE_TIED] = e->tied_codec ? lh_grad_state_bytes(e->tied_codec) : 0;
    size_t total = STATE_HEADER + 4;
    uint32_t n = 0;
    for (int k = 1; k <= LH_ENGINE_STATE_MAX_SECTIONS; k++)
        if (sizes[k]) total += STATE_SECTION + sizes[k], n++;
    uint8_t *buf = malloc(total);
    if (!buf) return lh_fail(LH_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, total);
    memset(buf, 0, STATE_HEADER);
    memcpy(buf, STATE_MAGIC, 4);
    lh_put_le32(buf + 4, STATE_VERSION);
    lh_put_le32(buf + 8, STATE_HEADER);
    lh_put_le32(buf + 12, n);
    lh_put_le32(buf + 16, (uint32_t)e->replica);
    lh_put_le32(buf + 20, (uint32_t)e->stage);
    lh_put_le32(buf + 24, (uint32_t)e->replicas);
    lh_put_le32(buf + 28, (uint32_t)e->stages);
    lh_put_le64(buf + 32, (uint64_t)step);
    lh_put_le64(buf + 40, key);
    lh_put_le64(buf + 48, total);
    size_t off = STATE_HEADER;
    lh_status st = LH_OK;
    for (int k = 1; k <= LH_ENGINE_STATE_MAX_SECTIONS && !st; k++) {
        if (!sizes[k]) continue;
        lh_put_le32(buf + off, (uint32_t)k);
        lh_put_le32(buf + off + 4, 0);
        lh_put_le64(buf + off + 8, sizes[k]);
        off += STATE_SECTION;
        size_t len = 0;
        if (k == LH_ENGINE_STATE_AQ_SEND) st = lh_aq_save_state(e->aq_send, buf + off, sizes[k], &len);
        if (k == LH_ENGINE_STATE_AQ_RECV) st = lh_aq_save_state(e->aq_recv, buf + off, sizes[k], &len);
        if (k == LH_ENGINE_STATE_GRAD)
            st = lh_callreduce_save_state(e->grad_allreduce, buf + off, sizes[k], &len);
        if (k == LH_ENGINE_STATE_TIED) st = lh_grad_save_state(e->tied_codec, buf + off, sizes[k], &len);
        if (!st && len != sizes[k])
            st = lh_fail(LH_ERR_INTERNAL, "%s wrote %zu bytes, announced %zu", kind_name(k), len, sizes[k]);
        off += sizes[k];
    }
    if (!st) {
        lh_put_le32(buf + off, lh_crc32c(0, buf, off));
        st = lh_write_file_atomic(path, buf, total);
    }
    /* read back: what is on disk must be what was meant */
    char *back = NULL;
    size_t back_len = 0;
    lh_engine_state_info info;
    if (!st) st = lh_read_file(path, total, &back, &back_len);
    if (!st && (back_len != total || memcmp(back, buf, total) != 0))
        st = lh_fail(LH_ERR_CORRUPT, "%s: reads back different from what was written", path);
    if (!st && (st = lh_engine_state_parse(back, back_len, &info)))
        st = lh_fail_prefix(st, "%s: reading back", path);
    free(back);
    free(buf);
    return st ? lh_fail_prefix(st, "writing codec state") : LH_OK;
}

/* Load this rank's state file into its codecs; everything is verified against this rank and the manifest. */
static lh_status load_state(lh_engine *e, const char *dir, int64_t step, uint64_t key)
{
    char name[64], path[LH_PATH_MAX + 96];
    state_name(e->replica, e->stage, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *buf;
    size_t len;
    lh_status st = lh_read_file(path, STATE_MAX_BYTES, &buf, &len);
    if (st) return st;
    lh_engine_state_info in;
    st = lh_engine_state_parse(buf, len, &in);
    if (st) {
        free(buf);
        return lh_fail_prefix(st, "%s", path);
    }
    if (in.replica != e->replica || in.stage != e->stage || in.replicas != e->replicas ||
        in.stages != e->stages)
        st = lh_fail(LH_ERR_MISMATCH,
                     "%s: written by replica %d stage %d of %d x %d, this is replica %d stage %d of %d x %d",
                     path, in.replica, in.stage, in.stages, in.replicas, e->replica, e->stage, e->stages,
                     e->replicas);
    else if (in.step != step)
        st = lh_fail(LH_ERR_MISMATCH, "%s: holds step %lld, the manifest says %lld", path, (long long)in.step,
                     (long long)step);
    else if (in.plan_key != key)
        st = lh_fail(LH_ERR_MISMATCH, "%s: plan key %016llx, the manifest's is %016llx", path,
                     (unsigned long long)in.plan_key, (unsigned long long)key);
    int have = 0;
    for (int i = 0; i < in.n_sections; i++)
        have |= 1 << (in.sections[i].kind - 1);
    if (!st && have != my_mask(e))
        st = lh_fail(LH_ERR_MISMATCH, "%s: holds codec state %s%s%s%s, this rank has %s%s%s%s", path,
                     have & HAS_AQ_SEND ? "[AQ-SGD sender]" : "",
                     have & HAS_AQ_RECV ? "[AQ-SGD receiver]" : "", have & HAS_GRAD ? "[residuals]" : "",
                     have & HAS_TIED ? "[tied residual]" : "", e->aq_send ? "[AQ-SGD sender]" : "",
                     e->aq_recv ? "[AQ-SGD receiver]" : "", e->grad_allreduce ? "[residuals]" : "",
                     e->tied_codec ? "[tied residual]" : "");
    /* AQ sections are checked before anything is applied; the allreduce checks both residuals itself */
    for (int i = 0; i < in.n_sections && !st; i++) {
        int k = in.sections[i].kind;
        if (k == LH_ENGINE_STATE_AQ_SEND)
            st = lh_aq_check_state(e->aq_send, in.sections[i].data, in.sections[i].bytes);
        if (k == LH_ENGINE_STATE_AQ_RECV)
            st = lh_aq_check_state(e->aq_recv, in.sections[i].data, in.sections[i].bytes);
        if (k == LH_ENGINE_STATE_TIED)
            st = lh_grad_check_state(e->tied_codec, in.sections[i].data, in.sections[i].bytes);
        if (st) st = lh_fail_prefix(st, "%s: %s", path, kind_name(k));
    }
    for (int i = 0; i < in.n_sections && !st; i++) {
        int k = in.sections[i].kind;
        if (k == LH_ENGINE_STATE_GRAD)
            st = lh_callreduce_load_state(e->grad_allreduce, in.sections[i].data, in.sections[i].bytes);
        if (st) st = lh_fail_prefix(st, "%s: %s", path, kind_name(k));
    }
    for (int i = 0; i < in.n_sections && !st; i++) {
        int k = in.sections[i].kind;
        if (k == LH_ENGINE_STATE_AQ_SEND)
            st = lh_aq_load_state(e->aq_send, in.sections[i].data, in.sections[i].bytes);
        if (k == LH_ENGINE_STATE_AQ_RECV)
            st = lh_aq_load_state(e->aq_recv, in.sections[i].data, in.sections[i].bytes);
        if (k == LH_ENGINE_STATE_TIED)
            st = lh_grad_load_state(e->tied_codec, in.sections[i].data, in.sections[i].bytes);
        if (st) st = lh_fail_prefix(st, "%s: %s", path, kind_name(k));
    }
    free(buf);
    return st;
}

static void step_dir(const char *root, int64_t step, char *out, size_t cap)
{
    snprintf(out, cap, "%s/step_%08lld", root, (long long)step);
}

static lh_status write_manifest(lh_engine *e, const char *dir, int64_t step, const layout *lay)
{
    lh_dataset_position pos = lh_dataset_tell(e->train);
    json_object *root = json_object_new_object();
    if (!root) return lh_fail(LH_ERR_NOMEM, "out of memory");
    json_object_object_add(root, "format", json_object_new_string(MANIFEST_FORMAT));
    json_object_object_add(root, "version", json_object_new_int(MANIFEST_VERSION));
    json_object_object_add(root, "step", json_object_new_int64(step));
    json_object_object_add(root, "stages", json_object_new_int(e->stages));
    json_object_object_add(root, "replicas", json_object_new_int(e->replicas));
    json_object *first = json_object_new_array();
    for (int s = 0; s < e->stages; s++)
        json_object_array_add(first, json_object_new_int(lay->first_layer[s]));
    json_object_object_add(root, "first_layers", first);
    json_object_object_add(root, "data_epoch", json_object_new_int64((int64_t)pos.epoch));
    json_object_object_add(root, "data_index", json_object_new_int64((int64_t)pos.index));
    json_object_object_add(root, "replica_samples",
                           json_object_new_int64((int64_t)lh_dataset_replica_samples(e->train)));
    json_object *parts = json_object_new_array();
    for (int s = 0; s < e->stages; s++) {
        char name[32];
        snprintf(name, sizeof name, "part_s%d.lhck", s);
        json_object_array_add(parts, json_object_new_string(name));
    }
    json_object_object_add(root, "parts", parts);
    if (lay->any_state) {
        json_object *cs = json_object_new_object(), *files = json_object_new_array();
        char key[24];
        snprintf(key, sizeof key, "%016llx", (unsigned long long)lay->key);
        json_object_object_add(cs, "plan_key", json_object_new_string(key));
        for (int i = 0; i < e->replicas * e->stages; i++) {
            if (!lay->mask[i]) continue;
            char name[64];
            state_name(i / e->stages, i % e->stages, name, sizeof name);
            json_object_array_add(files, json_object_new_string(name));
        }
        json_object_object_add(cs, "files", files);
        json_object_object_add(root, "codec_state", cs);
    }
    char path[LH_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/MANIFEST.json", dir);
    lh_status st = lh_json_write_file(path, root);
    json_object_put(root);
    return st;
}

/* Remove a step folder (flat: parts and a manifest). */
static void remove_step_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *ent;
    char path[LH_PATH_MAX + 300];
    while ((ent = readdir(d))) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        unlink(path);
    }
    closedir(d);
    if (rmdir(dir) != 0) LH_WARN("checkpoint: cannot remove %s: %s", dir, strerror(errno));
}

static int compare_desc(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

/* Keep the `keep` newest step folders up to `newest`; remove older ones. */
static void prune(const char *root, int64_t newest, int keep)
{
    DIR *d = opendir(root);
    if (!d) return;
    int64_t steps[4096];
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) && n < 4096) {
        long long step;
        int used = 0;
        if (sscanf(ent->d_name, "step_%lld%n", &step, &used) == 1 && ent->d_name[used] == '\0' &&
            step <= newest)
            steps[n++] = step;
    }
    closedir(d);
    qsort(steps, (size_t)n, sizeof *steps, compare_desc);
    for (int i = keep; i < n; i++) {
        char dir[LH_PATH_MAX + 32];
        step_dir(root, steps[i], dir, sizeof dir);
        remove_step_dir(dir);
    }
}

lh_status lh_engine_save_checkpoint(lh_engine *e, const char *root)
{
    int64_t step = e->step;
    char dir[LH_PATH_MAX + 32], path[LH_PATH_MAX + 64];
    step_dir(root, step, dir, sizeof dir);
    /* Identical replicas are what makes one replica's parts the whole truth. */
    lh_status st = e->replicas > 1 ? lh_engine_verify_replicas(e) : LH_OK;
    if (st) return lh_fail_prefix(st, "checkpoint at step %lld", (long long)step);
    layout lay;
    st = plan_layout(e, &lay);
    if (!st && e->rank == 0) st = lh_mkdir_p(dir);
    st = lh_comm_agree(e->world, st, "creating the checkpoint folder");
    if (!st && e->replica == 0) {
        snprintf(path, sizeof path, "%s/part_s%d.lhck", dir, e->stage);
        st = lh_ckpt_save_part(path, e->model, step);
        lh_checkpoint_info info;
        if (!st) st = lh_ckpt_read_info(path, &info); /* read back: header and record table verify */
        if (!st && info.step != step)
            st = lh_fail(LH_ERR_CORRUPT, "%s: reads back step %lld", path, (long long)info.step);
    }
    /* Codec state differs per replica: every rank that has some writes its own. */
    if (!st && my_mask(e)) st = write_state(e, dir, step, lay.key);
    st = lh_comm_agree(e->world, st, "writing a checkpoint part");
    if (!st && e->rank == 0) {
        st = write_manifest(e, dir, step, &lay);
        char latest[LH_PATH_MAX + 16], text[64];
        snprintf(latest, sizeof latest, "%s/LATEST", root);
        int n = snprintf(text, sizeof text, "step_%08lld\n", (long long)step);
        if (!st) st = lh_write_file_atomic(latest, text, (size_t)n); /* the commit point */
        if (!st) prune(root, step, e->job.checkpoint.keep);
    }
    layout_free(&lay);
    st = lh_comm_agree(e->world, st, "committing the checkpoint");
    if (!st && e->rank == 0) LH_INFO("checkpoint: step %lld committed in %s", (long long)step, dir);
    return st;
}

/* What rank 0 reads from LATEST and the manifest it names. */
typedef struct manifest {
    int64_t step;
    lh_dataset_position pos;
    uint64_t replica_samples;
    int stages, replicas;
    int first_layer[4096]; /* version 2 */
    int has_layers;
    int has_state; /* a codec_state object: plan_key and files */
    uint64_t key;
    char (*files)[64];
    int n_files;
} manifest;

/* Rank 0: read LATEST and the manifest it names. */
static lh_status read_latest(const char *root, manifest *out)
{
    char latest[LH_PATH_MAX + 16], *text;
    size_t len;
    snprintf(latest, sizeof latest, "%s/LATEST", root);
    lh_status st = lh_read_file(latest, 256, &text, &len);
    if (st) return st;
    long long n;
    int used = 0;
    if (sscanf(text, "step_%lld%n", &n, &used) != 1 || (text[used] != '\n' && text[used] != '\0') || n < 0) {
        free(text);
        return lh_fail(LH_ERR_FORMAT, "%s: expected \"step_NNNNNNNN\"", latest);
    }
    free(text);
    char path[LH_PATH_MAX + 64];
    char dir[LH_PATH_MAX + 32];
    step_dir(root, n, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/MANIFEST.json", dir);
    json_object *m;
    st = lh_json_parse_file(path, &m);
    if (st) return st;
    lh_jpath p;
    lh_jpath_init(&p, path);
    int64_t version, mstep, epoch, index, samples, nstages, replicas;
    json_object *parts, *first = NULL, *cs = NULL;
    size_t nparts, nfirst = 0;
    static const char *const keys_v1[] = {"format",   "version",    "step",       "stages",
                                          "replicas", "data_epoch", "data_index", "replica_samples",
                                          "parts",    NULL};
    static const char *const keys_v2[] = {"format",   "version",      "step",        "stages",
                                          "replicas", "data_epoch",   "data_index",  "replica_samples",
                                          "parts",    "first_layers", "codec_state", NULL};
    st = lh_json_check_header(&p, m, MANIFEST_FORMAT, MANIFEST_VERSION, &version);
    if (!st) st = lh_json_check_keys(&p, m, version >= 2 ? keys_v2 : keys_v1);
    if (!st) st = lh_json_get_int(&p, m, "step", 0, INT64_MAX, &mstep);
    if (!st && mstep != n)
        st = lh_json_fail(&p, "step", "is %lld but LATEST names step %lld", (long long)mstep, n);
    if (!st) st = lh_json_get_int(&p, m, "stages", 1, 4096, &nstages);
    if (!st) st = lh_json_get_int(&p, m, "replicas", 1, 65536, &replicas);
    if (!st) st = lh_json_get_int(&p, m, "data_epoch", 0, INT64_MAX, &epoch);
    if (!st) st = lh_json_get_int(&p, m, "data_index", 0, INT64_MAX, &index);
    if (!st) st = lh_json_get_int(&p, m, "replica_samples", 1, INT64_MAX, &samples);
    if (!st) st = lh_json_get_array(&p, m, "parts", &parts, &nparts);
    if (!st && nparts != (size_t)nstages)
        st = lh_json_fail(&p, "parts", "lists %zu parts for %lld stages", nparts, (long long)nstages);
    if (!st && version >= 2) {
        st = lh_json_get_array(&p, m, "first_layers", &first, &nfirst);
        if (!st && nfirst != (size_t)nstages)
            st = lh_json_fail(&p, "first_layers", "lists %zu stages, the checkpoint has %lld", nfirst,
                              (long long)nstages);
        for (size_t i = 0; i < nfirst && !st; i++) {
            json_object *v = json_object_array_get_idx(first, i);
            if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0 ||
                json_object_get_int64(v) > 1000000 || (i == 0 && json_object_get_int64(v) != 0) ||
                (i > 0 && json_object_get_int64(v) <= out->first_layer[i - 1])) {
                st = lh_json_fail(&p, "first_layers", "element %zu: expected ascending layer numbers from 0",
                                  i);
                break;
            }
            out->first_layer[i] = (int)json_object_get_int64(v);
        }
        out->has_layers = 1;
        if (!st) st = lh_json_opt_object(&p, m, "codec_state", &cs);
    }
    if (!st && cs) {
        size_t saved = lh_jpath_push_key(&p, "codec_state");
        static const char *const cs_keys[] = {"plan_key", "files", NULL};
        char key[32];
        json_object *files;
        size_t nf = 0;
        st = lh_json_check_keys(&p, cs, cs_keys);
        if (!st) st = lh_json_get_string(&p, cs, "plan_key", key, sizeof key);
        char *end = NULL;
        if (!st) out->key = strtoull(key, &end, 16);
        if (!st && (strlen(key) != 16 || *end))
            st = lh_json_fail(&p, "plan_key", "expected 16 hex digits, got \"%s\"", key);
        if (!st) st = lh_json_get_array(&p, cs, "files", &files, &nf);
        if (!st && (nf == 0 || nf > (size_t)(nstages * replicas)))
            st = lh_json_fail(&p, "files", "lists %zu files for %lld ranks", nf,
                              (long long)(nstages * replicas));
        if (!st && !(out->files = calloc(nf, sizeof *out->files)))
            st = lh_fail(LH_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < nf && !st; i++) {
            json_object *v = json_object_array_get_idx(files, i);
            if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) >= 64)
                st = lh_json_fail(&p, "files", "element %zu: expected a file name", i);
            else
                snprintf(out->files[i], sizeof out->files[i], "%s", json_object_get_string(v));
        }
        out->n_files = (int)nf;
        out->has_state = !st;
        lh_jpath_pop(&p, saved);
    }
    json_object_put(m);
    if (st) return st;
    out->step = mstep;
    out->pos.epoch = (uint64_t)epoch;
    out->pos.index = (uint64_t)index;
    out->replica_samples = (uint64_t)samples;
    out->stages = (int)nstages;
    out->replicas = (int)replicas;
    return LH_OK;
}

/*
 * Rank 0: may this run reuse the checkpoint's codec state?  1 yes, 0 no (with
 * the reason in `why`), or an error when the manifest claims the same plan
 * but lists other files than this plan writes.
 */
static lh_status decide_reuse(const manifest *m, const layout *lay, const char *dir, int *reuse, char *why,
                              size_t cap)
{
    *reuse = 0;
    char was[256], now[256];
    layers_text(m->first_layer, m->stages, was, sizeof was);
    layers_text(lay->first_layer, lay->stages, now, sizeof now);
    if (!lay->any_state) {
        snprintf(why, cap, "this run keeps no codec state");
        return LH_OK;
    }
    if (m->has_layers &&
        (m->stages != lay->stages || m->replicas != lay->replicas || strcmp(was, now) != 0)) {
        snprintf(why, cap,
                 "the checkpoint was written on another partition (%d stages x %d replicas, first layers %s; "
                 "this run: %d x %d, first layers %s)",
                 m->stages, m->replicas, was, lay->stages, lay->replicas, now);
        return LH_OK;
    }
    if (!m->has_layers || !m->has_state) {
        snprintf(why, cap, "the checkpoint holds no codec state");
        return LH_OK;
    }
    if (m->key != lay->key) {
        snprintf(
            why, cap,
            "the checkpoint's codec state is for another layout (codecs in use, sequence length or dataset "
            "size differ: plan key %016llx, this run %016llx)",
            (unsigned long long)m->key, (unsigned long long)lay->key);
        return LH_OK;
    }
    int k = 0;
    for (int i = 0; i < lay->replicas * lay->stages; i++) {
        if (!lay->mask[i]) continue;
        char name[64];
        state_name(i / lay->stages, i % lay->stages, name, sizeof name);
        if (k >= m->n_files || strcmp(m->files[k], name) != 0)
            return lh_fail(LH_ERR_CORRUPT,
                           "%s/MANIFEST.json: $.codec_state.files: expected %s at position %d", dir, name, k);
        k++;
    }
    if (k != m->n_files)
        return lh_fail(LH_ERR_CORRUPT, "%s/MANIFEST.json: $.codec_state.files: %d files, this plan writes %d",
                       dir, m->n_files, k);
    *reuse = 1;
    return LH_OK;
}

lh_status lh_engine_resume(lh_engine *e, const char *root, int *resumed)
{
    *resumed = 0;
    layout lay;
    lh_status st = plan_layout(e, &lay);
    /* step (-1: nothing to resume), epoch, index, samples, stages, reuse codec state, plan key */
    int64_t header[7] = {-1, 0, 0, 0, 0, 0, 0};
    char why[768] = "";
    if (!st && e->rank == 0) {
        char latest[LH_PATH_MAX + 16];
        snprintf(latest, sizeof latest, "%s/LATEST", root);
        if (access(latest, F_OK) == 0) {
            manifest *m = calloc(1, sizeof *m);
            int reuse = 0;
            st = m ? read_latest(root, m) : lh_fail(LH_ERR_NOMEM, "out of memory");
            if (!st) {
                char dir[LH_PATH_MAX + 32];
                step_dir(root, m->step, dir, sizeof dir);
                st = decide_reuse(m, &lay, dir, &reuse, why, sizeof why);
            }
            if (!st) {
                header[0] = m->step;
                header[1] = (int64_t)m->pos.epoch;
                header[2] = (int64_t)m->pos.index;
                header[3] = (int64_t)m->replica_samples;
                header[4] = m->stages;
                header[5] = reuse;
                header[6] = (int64_t)lay.key;
            }
            if (m) free(m->files);
            free(m);
        }
    }
    st = lh_comm_agree(e->world, st, "reading the latest checkpoint");
    if (!st) st = lh_comm_bcast(e->world, header, sizeof header, 0);
    if (st || header[0] < 0) {
        layout_free(&lay);
        return st;
    }

    char dir[LH_PATH_MAX + 32];
    step_dir(root, header[0], dir, sizeof dir);
    int nparts = (int)header[4];
    char(*paths)[LH_PATH_MAX + 64] = malloc((size_t)nparts * sizeof *paths);
    const char **ptrs = malloc((size_t)nparts * sizeof *ptrs);
    if (!paths || !ptrs) st = lh_fail(LH_ERR_NOMEM, "out of memory");
    for (int s = 0; s < nparts && !st; s++) {
        snprintf(paths[s], sizeof paths[s], "%s/part_s%d.lhck", dir, s);
        ptrs[s] = paths[s];
    }
    int64_t step = 0;
    if (!st) st = lh_ckpt_load_parts(e->model, ptrs, nparts, &step);
    if (!st && step != header[0])
        st = lh_fail(LH_ERR_CORRUPT, "%s: parts hold step %lld, the manifest says %lld", dir, (long long)step,
                     (long long)header[0]);
    free(paths);
    free(ptrs);
    /* The same plan: the codecs continue where they were (a bad state file is an error, not ignored). */
    if (!st && header[5] && my_mask(e)) st = load_state(e, dir, header[0], (uint64_t)header[6]);
    /* The same epoch, and the same fraction of it when the replica count changed. */
    lh_dataset_position pos = {(uint64_t)header[1], (uint64_t)header[2]};
    uint64_t now_samples = lh_dataset_replica_samples(e->train);
    if ((uint64_t)header[3] != now_samples) pos.index = pos.index * now_samples / (uint64_t)header[3];
    if (!st) st = lh_dataset_seek(e->train, pos);
    int any_state = lay.any_state;
    layout_free(&lay);
    st = lh_comm_agree(e->world, st, "loading the checkpoint");
    if (st) return lh_fail_prefix(st, "resuming from %s", dir);
    e->step = header[0];
    *resumed = 1;
    if (e->rank == 0) {
        LH_INFO("checkpoint: resumed from %s (step %lld, epoch %lld)", dir, (long long)e->step,
                (long long)pos.epoch);
        if (header[5])
            LH_INFO("checkpoint: AQ-SGD caches and error-feedback residuals restored (same plan)");
        else if (any_state)
            LH_INFO(
                "checkpoint: %s: AQ-SGD caches and error-feedback residuals start empty (first visits travel "
                "in full precision, residuals at zero)",
                why);
    }
    return LH_OK;
}

lh_status lh_engine_load_weights(lh_engine *e, const char *path)
{
    lh_checkpoint_format format;
    lh_model_config cfg;
    lh_status st = lh_checkpoint_read_config(path, &format, &cfg);
    if (!st && format == LH_CKPT_FORMAT_LLMC) st = lh_llmc_load(e->model, path);
    if (!st && format == LH_CKPT_FORMAT_LONGHAUL) {
        const char *paths[1] = {path};
        st = lh_ckpt_load_parts(e->model, paths, 1, NULL);
        if (!st) { /* new job, new optimizer: keep the weights only */
            size_t n = (size_t)lh_stage_param_count(e->model);
            memset(lh_stage_adam_m(e->model), 0, n * sizeof(float));
            memset(lh_stage_adam_v(e->model), 0, n * sizeof(float));
        }
    }
    return lh_comm_agree(e->world, st ? lh_fail_prefix(st, "loading initial weights") : LH_OK,
                         "loading initial weights");
}
