/*
 * The engine against the single-process model: a 4-stage pipeline and a 2x2
 * pipeline x data-parallel job compute the same losses, step for step, as one
 * process running the whole model on the same batches (to float rounding);
 * GPipe and 1F1B agree; AQ-SGD's first steps are exact (first visits go in
 * full precision) and its later losses stay close.  Runs on 4 ranks.
 */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "lh_data.h"
#include "lh_engine.h"
#include "lh_optim.h"
#include "lh_test.h"

#define STEPS 4

static uint16_t *tokens;
static size_t n_tokens;
static lh_comm *world;

static void small_job(lh_job *job)
{
    lh_job_defaults(job);
    job->seed = 7;
    job->model = (lh_job_model){.layers = 4, .channels = 32, .heads = 2, .context = 16, .vocab = 256};
    job->batch.batch_size = 4;
    job->batch.micro_batch = 2;
    job->batch.seq_len = 16;
    job->batch.steps = STEPS;
    job->optimizer.lr = 3e-3;
    job->optimizer.warmup_steps = 1;
    job->optimizer.weight_decay = 0.01;
    job->optimizer.grad_clip = 0.5; /* small enough that clipping happens */
    job->data.val_fraction = 0.1;
}

/* The same job, one process, whole model: replica r's batches in turn. */
static void reference_losses(const lh_job *job, int replicas, double *losses)
{
    lh_model_config cfg = {job->model.context, job->model.vocab, 0, job->model.layers, job->model.heads,
                           job->model.channels};
    LH_ASSERT_OK(lh_model_config_check(&cfg));
    lh_stage_spec spec = lh_stage_spec_whole(&cfg);
    lh_stage *model;
    int micro = job->batch.micro_batch, T = job->batch.seq_len, M = job->batch.batch_size / micro;
    LH_ASSERT_OK(lh_stage_create(&cfg, &spec, micro, T, 1, &model));
    lh_stage_init_params(model, job->seed);
    lh_dataset *ds[8];
    for (int r = 0; r < replicas; r++) {
        lh_dataset_config dc;
        lh_dataset_config_default(&dc);
        dc.seq_len = (uint32_t)T;
        dc.vocab_size = (uint32_t)job->model.vocab;
        dc.replica = (uint32_t)r;
        dc.replicas = (uint32_t)replicas;
        dc.seed = job->seed;
        dc.val_fraction = job->data.val_fraction;
        LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, n_tokens, &dc, &ds[r]));
    }
    lh_lr_schedule lr = {job->optimizer.lr, job->optimizer.min_lr_fraction, job->optimizer.warmup_steps,
                         job->batch.steps, LH_DECAY_COSINE};
    int32_t in[64 * 16], tg[64 * 16];
    for (int step = 0; step < job->batch.steps; step++) {
        double loss = 0;
        for (int r = 0; r < replicas; r++)
            for (int i = 0; i < M; i++) {
                float l;
                LH_ASSERT_OK(lh_dataset_next_batch(ds[r], (uint32_t)micro, in, tg, NULL));
                LH_ASSERT_OK(lh_stage_forward(model, 0, micro, T, in, NULL, tg, NULL, &l));
                LH_ASSERT_OK(lh_stage_backward(model, 0, NULL, 1.0f / (float)(M * replicas), NULL));
                loss += l;
            }
        losses[step] = loss / (M * replicas);
        double norm = sqrt(lh_stage_grad_sumsq(model));
        float clip = lh_clip_scale(norm, job->optimizer.grad_clip);
        if (clip != 1.0f) lh_stage_scale_grads(model, clip);
        lh_adamw_params p = {(float)lh_lr_at(&lr, step), (float)job->optimizer.beta1, (float)job->optimizer.beta2,
                             (float)job->optimizer.eps, (float)job->optimizer.weight_decay};
        LH_ASSERT_OK(lh_stage_adamw_step(model, &p, step + 1));
        lh_stage_zero_grads(model);
    }
    for (int r = 0; r < replicas; r++) lh_dataset_free(ds[r]);
    lh_stage_free(model);
}

static void engine_losses(const lh_job *job, int stages, int replicas, double *losses)
{
    lh_plan *plan;
    LH_ASSERT_OK(lh_plan_create(stages, replicas, job->model.layers, &plan));
    lh_engine *e;
    LH_ASSERT_OK(lh_engine_create(job, plan, world, tokens, n_tokens, &e));
    /* Reports reach world rank 0 one step late; it shares the losses with the other ranks. */
    int rank = lh_comm_rank(world);
    for (int step = 0; step <= job->batch.steps; step++) {
        lh_step_report rep;
        if (step < job->batch.steps) LH_ASSERT_OK(lh_engine_step(e, &rep));
        else LH_ASSERT_OK(lh_engine_flush_report(e, &rep));
        if (rank != 0 || step == 0) {
            CU_ASSERT_EQUAL(rep.step, -1);
            continue;
        }
        CU_ASSERT_EQUAL(rep.step, step - 1);
        CU_ASSERT_TRUE(rep.wire_bytes > 0);
        if (rep.step >= 0 && rep.step < job->batch.steps) losses[rep.step] = rep.loss;
    }
    MPI_Bcast(losses, job->batch.steps, MPI_DOUBLE, 0, lh_comm_mpi(world));
    lh_engine_free(e);
    lh_plan_free(plan);
}

static void assert_close(const double *a, const double *b, int n, double rel)
{
    for (int i = 0; i < n; i++) {
        if (fabs(a[i] - b[i]) > rel * fabs(b[i]))
            fprintf(stderr, "\n  step %d: %.7f vs reference %.7f\n", i, a[i], b[i]);
        CU_ASSERT_DOUBLE_EQUAL(a[i], b[i], rel * fabs(b[i]));
    }
}

static void test_pipeline_matches_single_process(void)
{
    lh_job job;
    small_job(&job);
    double ref[STEPS], got[STEPS];
    reference_losses(&job, 1, ref);
    engine_losses(&job, 4, 1, got);
    assert_close(got, ref, STEPS, 1e-4);
    CU_ASSERT_TRUE(ref[STEPS - 1] < ref[0]); /* it learns */
}

static void test_pipeline_and_data_parallel_match(void)
{
    lh_job job;
    small_job(&job);
    double ref[STEPS], got[STEPS];
    reference_losses(&job, 2, ref);
    engine_losses(&job, 2, 2, got);
    assert_close(got, ref, STEPS, 1e-4);
}

static void test_gpipe_equals_1f1b(void)
{
    lh_job job;
    small_job(&job);
    job.batch.batch_size = 8; /* 4 micro-batches: 1F1B interleaves */
    double a[STEPS], b[STEPS];
    job.schedule = LH_JOB_SCHEDULE_GPIPE;
    engine_losses(&job, 4, 1, a);
    job.schedule = LH_JOB_SCHEDULE_1F1B;
    engine_losses(&job, 4, 1, b);
    assert_close(a, b, STEPS, 1e-5);
    double c[STEPS];
    job.pipeline_depth = 2; /* stages 0 and 1 warm up with all 4 micro-batches, stage 2 with 2 */
    engine_losses(&job, 4, 1, c);
    assert_close(b, c, STEPS, 1e-6);
}

static void test_compressed_links_stay_close(void)
{
    lh_job job;
    small_job(&job);
    double ref[STEPS], aq[STEPS], dq[STEPS];
    reference_losses(&job, 1, ref);
    job.compression.mode = LH_COMPRESS_AQSGD;
    job.compression.forward_bits = 4;
    job.compression.backward_bits = 8;
    engine_losses(&job, 4, 1, aq);
    /* First visits travel in full precision and the loss is computed before any
     * quantized gradient matters: step 0 is exact. */
    CU_ASSERT_DOUBLE_EQUAL(aq[0], ref[0], 1e-4 * ref[0]);
    assert_close(aq, ref, STEPS, 0.05);
    job.compression.mode = LH_COMPRESS_DIRECTQ;
    engine_losses(&job, 4, 1, dq);
    assert_close(dq, ref, STEPS, 0.05);
}

static void test_evaluate_and_bad_plans(void)
{
    lh_job job;
    small_job(&job);
    lh_plan *plan;
    LH_ASSERT_OK(lh_plan_create(2, 2, job.model.layers, &plan));
    lh_engine *e;
    LH_ASSERT_OK(lh_engine_create(&job, plan, world, tokens, n_tokens, &e));
    double loss;
    LH_ASSERT_OK(lh_engine_evaluate(e, 3, &loss));
    CU_ASSERT_TRUE(loss > 4.0 && loss < 7.0); /* ln(256) = 5.55 at initialisation */
    lh_engine_free(e);
    lh_plan_free(plan);

    LH_ASSERT_OK(lh_plan_create(2, 1, job.model.layers, &plan));
    LH_ASSERT_FAILS_WITH(lh_engine_create(&job, plan, world, tokens, n_tokens, &e), LH_ERR_MISMATCH,
                         "the plan needs 2 x 1 = 2 ranks but the job has 4");
    lh_plan_free(plan);

    LH_ASSERT_OK(lh_plan_create(2, 2, job.model.layers, &plan));
    job.pipeline_depth = LH_JOB_DEPTH_AUTO;
    LH_ASSERT_FAILS_WITH(lh_engine_create(&job, plan, world, tokens, n_tokens, &e), LH_ERR_INVALID_ARG,
                         "resolved by the coordinator");
    lh_plan_free(plan);
}

static void test_perturbed_replica_is_caught(void)
{
    lh_job job;
    small_job(&job);
    job.verify_every = 0; /* checked by hand below */
    lh_plan *plan;
    LH_ASSERT_OK(lh_plan_create(2, 2, job.model.layers, &plan));
    lh_engine *e;
    LH_ASSERT_OK(lh_engine_create(&job, plan, world, tokens, n_tokens, &e));
    LH_ASSERT_OK(lh_engine_step(e, NULL));
    LH_ASSERT_OK(lh_engine_verify_replicas(e)); /* replicas agree after a real step */
    int stage, replica;
    lh_engine_position(e, &stage, &replica);
    /* Silent corruption on replica 1 of stage 0 (rank 1 in Megatron order), in layer 1. */
    if (stage == 0 && replica == 1) lh_stage_layer_tensor(lh_engine_stage(e), 1, LH_FCW, 0)[100] += 1e-3f;
    lh_status st = lh_engine_verify_replicas(e);
    CU_ASSERT_EQUAL(st, LH_ERR_MISMATCH);
    if (stage == 0) {
        const char *msg = lh_last_error();
        if (!strstr(msg, "layer 1") || !strstr(msg, "rank 1") || !strstr(msg, "chunk 1 "))
            fprintf(stderr, "\n  unexpected message: %s\n", msg);
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "replicas of stage 0 disagree"));
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "replica 1 (rank 1)"));
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "layer 1"));   /* C=32: a 64 KiB chunk spans layers 0 and 1 */
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "chunk 1 ")); /* layer 1's fcw[100] is float 29,956 of the stage */
    } else {
        CU_ASSERT_PTR_NOT_NULL(strstr(lh_last_error(), "another stage disagree"));
    }
    lh_engine_free(e);
    lh_plan_free(plan);
}

/* After steps the first stage's wte and the last stage's copy hold the same bits. */
static void check_tied_copies(const lh_job *job, int stages, int replicas)
{
    lh_plan *plan;
    lh_engine *e;
    LH_ASSERT_OK(lh_plan_create(stages, replicas, job->model.layers, &plan));
    LH_ASSERT_OK(lh_engine_create(job, plan, world, tokens, n_tokens, &e));
    for (int i = 0; i < STEPS; i++) LH_ASSERT_OK(lh_engine_step(e, NULL));
    int pos[2], all[2 * 16], size;
    lh_engine_position(e, &pos[0], &pos[1]);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Allgather(pos, 2, MPI_INT, all, 2, MPI_INT, MPI_COMM_WORLD);
    lh_stage *s = lh_engine_stage(e);
    const lh_model_config *cfg = lh_stage_config(s);
    int n = cfg->padded_vocab_size * cfg->channels;
    const float *wte = lh_stage_params(s) + lh_stage_wte_offset(s);
    for (int r = 0; r < size; r++) {
        if (all[2 * r + 1] != pos[1]) continue; /* another replica */
        if (pos[0] == 0 && all[2 * r] == stages - 1) MPI_Send(wte, n, MPI_FLOAT, r, 0, MPI_COMM_WORLD);
        if (pos[0] == stages - 1 && all[2 * r] == 0) {
            float *first = malloc((size_t)n * sizeof *first);
            MPI_Recv(first, n, MPI_FLOAT, r, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            size_t differ = 0;
            for (int i = 0; i < n; i++) differ += memcmp(&first[i], &wte[i], sizeof(float)) != 0;
            if (differ) fprintf(stderr, "\n  %d x %d: %zu of %d wte values differ\n", stages, replicas, differ, n);
            CU_ASSERT_EQUAL(differ, 0);
            free(first);
        }
    }
    lh_engine_free(e);
    lh_plan_free(plan);
}

static void test_tied_copies_stay_identical(void)
{
    lh_job job;
    small_job(&job);
    check_tied_copies(&job, 4, 1);
    job.compression.mode = LH_COMPRESS_AQSGD;
    job.compression.gradient_bits = 4; /* tied messages quantized with error feedback */
    check_tied_copies(&job, 4, 1);
    check_tied_copies(&job, 2, 2);
}

static int setup(void)
{
    if (lh_corpus_default_tokens(&tokens, &n_tokens)) return 1;
    lh_comm_options opts = {0};
    return lh_comm_create(MPI_COMM_WORLD, &opts, &world) != LH_OK;
}

static int teardown(void)
{
    lh_comm_free(world);
    free(tokens);
    return 0;
}

int main(int argc, char **argv)
{
    CU_TestInfo tests[] = {{"4-stage pipeline = single process", test_pipeline_matches_single_process},
                           {"2x2 pipeline x data parallel = single process", test_pipeline_and_data_parallel_match},
                           {"GPipe = 1F1B", test_gpipe_equals_1f1b},
                           {"AQ-SGD and DirectQ links stay close", test_compressed_links_stay_close},
                           {"evaluate; a plan of the wrong size", test_evaluate_and_bad_plans},
                           {"a perturbed replica is caught", test_perturbed_replica_is_caught},
                           {"tied wte copies stay bit-identical", test_tied_copies_stay_identical},
                           CU_TEST_INFO_NULL};
    CU_SuiteInfo suites[] = {{"engine", setup, teardown, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return lh_test_run_mpi(&argc, &argv, suites);
}
