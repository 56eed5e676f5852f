/*
 * Engine checkpoints: every stage writes its own part, a manifest commits.
 *
 * Layout under the job's checkpoint folder:
 *
 *     step_00000050/part_s0.lhck   stage 0's records (lh_ckpt_save_part), written by replica 0's rank
 *     step_00000050/part_s1.lhck   ...
 *     step_00000050/MANIFEST.json  written by rank 0 once every part is written and read back
 *     LATEST                       "step_00000050\n": the newest committed checkpoint
 *
 * A checkpoint exists only once LATEST names it; a crash before that leaves
 * the previous one in force, and a folder without a manifest is ignored.
 * Replicas hold identical parameters (the replica-agreement check runs before
 * writing), so only replica 0 writes.  Parts are per stage and the model
 * format is per layer, so a resumed run may use any partition: each rank loads
 * the records its new stage needs from the set of parts.
 *
 * What a resume restores: parameters, AdamW moments, the step (hence the
 * learning rate) and the dataset position, so fp32 and DirectQ runs continue
 * exactly as if uninterrupted.  AQ-SGD caches and error-feedback residuals
 * are not saved: after a resume every sample's next visit travels in full
 * precision and re-seeds both caches, and residuals restart at zero, so
 * compressed runs continue close to, not identical with, an uninterrupted run.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lh_checkpoint.h"
#include "lh_engine_internal.h"
#include "lh_io.h"
#include "lh_json.h"
#include "lh_log.h"

#define MANIFEST_FORMAT "longhaul-checkpoint"
#define MANIFEST_VERSION 1

static void step_dir(const char *root, int64_t step, char *out, size_t cap)
{
    snprintf(out, cap, "%s/step_%08lld", root, (long long)step);
}

static lh_status write_manifest(lh_engine *e, const char *dir, int64_t step)
{
    lh_dataset_position pos = lh_dataset_tell(e->train);
    json_object *root = json_object_new_object();
    if (!root) return lh_fail(LH_ERR_NOMEM, "out of memory");
    json_object_object_add(root, "format", json_object_new_string(MANIFEST_FORMAT));
    json_object_object_add(root, "version", json_object_new_int(MANIFEST_VERSION));
    json_object_object_add(root, "step", json_object_new_int64(step));
    json_object_object_add(root, "stages", json_object_new_int(e->stages));
    json_object_object_add(root, "replicas", json_object_new_int(e->replicas));
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
        if (sscanf(ent->d_name, "step_%lld%n", &step, &used) == 1 && ent->d_name[used] == '\0' && step <= newest)
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
    if (e->rank == 0) st = lh_mkdir_p(dir);
    st = lh_comm_agree(e->world, st, "creating the checkpoint folder");
    if (!st && e->replica == 0) {
        snprintf(path, sizeof path, "%s/part_s%d.lhck", dir, e->stage);
        st = lh_ckpt_save_part(path, e->model, step);
        lh_checkpoint_info info;
        if (!st) st = lh_ckpt_read_info(path, &info); /* read back: header and record table verify */
        if (!st && info.step != step) st = lh_fail(LH_ERR_CORRUPT, "%s: reads back step %lld", path, (long long)info.step);
    }
    st = lh_comm_agree(e->world, st, "writing a checkpoint part");
    if (!st && e->rank == 0) {
        st = write_manifest(e, dir, step);
        char latest[LH_PATH_MAX + 16], text[64];
        snprintf(latest, sizeof latest, "%s/LATEST", root);
        int n = snprintf(text, sizeof text, "step_%08lld\n", (long long)step);
        if (!st) st = lh_write_file_atomic(latest, text, (size_t)n); /* the commit point */
        if (!st) prune(root, step, e->job.checkpoint.keep);
    }
    st = lh_comm_agree(e->world, st, "committing the checkpoint");
    if (!st && e->rank == 0) LH_INFO("checkpoint: step %lld committed in %s", (long long)step, dir);
    return st;
}

/* Rank 0: read LATEST and the manifest it names. */
static lh_status read_latest(const char *root, int64_t *step, lh_dataset_position *pos, uint64_t *replica_samples,
                             int *stages)
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
    json_object *parts;
    size_t nparts;
    static const char *const keys[] = {"format",     "version",         "step",  "stages", "replicas", "data_epoch",
                                       "data_index", "replica_samples", "parts", NULL};
    st = lh_json_check_header(&p, m, MANIFEST_FORMAT, MANIFEST_VERSION, &version);
    if (!st) st = lh_json_check_keys(&p, m, keys);
    if (!st) st = lh_json_get_int(&p, m, "step", 0, INT64_MAX, &mstep);
    if (!st && mstep != n) st = lh_json_fail(&p, "step", "is %lld but LATEST names step %lld", (long long)mstep, n);
    if (!st) st = lh_json_get_int(&p, m, "stages", 1, 4096, &nstages);
    if (!st) st = lh_json_get_int(&p, m, "replicas", 1, 65536, &replicas);
    if (!st) st = lh_json_get_int(&p, m, "data_epoch", 0, INT64_MAX, &epoch);
    if (!st) st = lh_json_get_int(&p, m, "data_index", 0, INT64_MAX, &index);
    if (!st) st = lh_json_get_int(&p, m, "replica_samples", 1, INT64_MAX, &samples);
    if (!st) st = lh_json_get_array(&p, m, "parts", &parts, &nparts);
    if (!st && nparts != (size_t)nstages) st = lh_json_fail(&p, "parts", "lists %zu parts for %lld stages", nparts, (long long)nstages);
    json_object_put(m);
    if (st) return st;
    *step = mstep;
    pos->epoch = (uint64_t)epoch;
    pos->index = (uint64_t)index;
    *replica_samples = (uint64_t)samples;
    *stages = (int)nstages;
    return LH_OK;
}

lh_status lh_engine_resume(lh_engine *e, const char *root, int *resumed)
{
    *resumed = 0;
    int64_t header[5] = {-1, 0, 0, 0, 0}; /* step (-1: nothing to resume), epoch, index, samples, stages */
    lh_status st = LH_OK;
    if (e->rank == 0) {
        char latest[LH_PATH_MAX + 16];
        snprintf(latest, sizeof latest, "%s/LATEST", root);
        if (access(latest, F_OK) == 0) {
            lh_dataset_position pos = {0, 0};
            uint64_t samples = 0;
            int stages = 0;
            int64_t step = 0;
            st = read_latest(root, &step, &pos, &samples, &stages);
            if (!st) {
                header[0] = step;
                header[1] = (int64_t)pos.epoch;
                header[2] = (int64_t)pos.index;
                header[3] = (int64_t)samples;
                header[4] = stages;
            }
        }
    }
    st = lh_comm_agree(e->world, st, "reading the latest checkpoint");
    if (!st) st = lh_comm_bcast(e->world, header, sizeof header, 0);
    if (st || header[0] < 0) return st;

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
    /* The same epoch, and the same fraction of it when the replica count changed. */
    lh_dataset_position pos = {(uint64_t)header[1], (uint64_t)header[2]};
    uint64_t now_samples = lh_dataset_replica_samples(e->train);
    if ((uint64_t)header[3] != now_samples) pos.index = pos.index * now_samples / (uint64_t)header[3];
    if (!st) st = lh_dataset_seek(e->train, pos);
    st = lh_comm_agree(e->world, st, "loading the checkpoint");
    if (st) return lh_fail_prefix(st, "resuming from %s", dir);
    e->step = header[0];
    *resumed = 1;
    if (e->rank == 0)
        LH_INFO("checkpoint: resumed from %s (step %lld, epoch %lld)", dir, (long long)e->step, (long long)pos.epoch);
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
    return lh_comm_agree(e->world, st ? lh_fail_prefix(st, "loading initial weights") : LH_OK, "loading initial weights");
}
