/*
 * The engine's NCCL path, on an emulated GPU and an emulated NCCL (fake_cuda.c,
 * fake_nccl.c: device memory is host memory, NCCL's allreduce is the MPI
 * transport's): a 2 x 2 job with GPU stages whose data-parallel gradients are
 * summed over NCCL, in the stages' device memory, gives the same losses and
 * parameters, bit for bit, as the CPU stages summing over MPI.  What it checks
 * is the engine's use of the device buffers: which copy of the gradients NCCL
 * sums and when the host copy (which AdamW, clipping and checkpoints use) is
 * brought back.  Runs on 4 ranks.
 */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "fake_cuda.h"
#include "fake_nccl.h"
#include "lh_data.h"
#include "lh_engine.h"
#include "lh_test.h"

#define STEPS 3

static uint16_t *tokens;
static size_t n_tokens;
static lh_comm *world;

static void small_job(lh_job *job)
{
    lh_job_defaults(job);
    job->seed = 11;
    job->model = (lh_job_model){.layers = 2, .channels = 32, .heads = 2, .context = 16, .vocab = 256};
    job->batch.batch_size = 4;
    job->batch.micro_batch = 2;
    job->batch.seq_len = 16;
    job->batch.steps = STEPS;
    job->optimizer.lr = 3e-3;
    job->optimizer.grad_clip = 0.5;
    job->data.val_fraction = 0.1;
}

/* Run the job on a 2 x 2 plan; every rank gets the step losses and its stage's final parameters. */
static void run(const lh_job *job, double *losses, float **params, size_t *n_params)
{
    lh_plan *plan;
    LH_ASSERT_OK(lh_plan_create(2, 2, job->model.layers, &plan));
    lh_engine *e;
    LH_ASSERT_OK(lh_engine_create(job, plan, world, tokens, n_tokens, &e));
    for (int step = 0; step <= STEPS; step++) {
        lh_step_report rep;
        if (step < STEPS) LH_ASSERT_OK(lh_engine_step(e, &rep));
        else LH_ASSERT_OK(lh_engine_flush_report(e, &rep));
        if (rep.step >= 0) losses[rep.step] = rep.loss;
    }
    MPI_Bcast(losses, STEPS, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    lh_stage *s = lh_engine_stage(e);
    *n_params = (size_t)lh_stage_param_count(s);
    *params = malloc(*n_params * sizeof(float));
    memcpy(*params, lh_stage_params(s), *n_params * sizeof(float));
    lh_engine_free(e);
    lh_plan_free(plan);
}

static void test_nccl_equals_mpi(void)
{
    lh_job job;
    small_job(&job);
    double mpi_losses[STEPS], nccl_losses[STEPS];
    float *mpi_params, *nccl_params;
    size_t n_mpi, n_nccl;
    run(&job, mpi_losses, &mpi_params, &n_mpi);
    job.device = LH_DEVICE_CUDA;
    job.transport = LH_TRANSPORT_NCCL;
    int before = lh_fake_nccl_allreduces();
    run(&job, nccl_losses, &nccl_params, &n_nccl);
    CU_ASSERT_EQUAL(lh_fake_nccl_allreduces() - before, STEPS); /* every step's sync went over NCCL */
    CU_ASSERT_EQUAL(memcmp(mpi_losses, nccl_losses, sizeof mpi_losses), 0);
    CU_ASSERT_EQUAL_FATAL(n_mpi, n_nccl);
    size_t differ = 0;
    for (size_t i = 0; i < n_mpi; i++) differ += memcmp(&mpi_params[i], &nccl_params[i], sizeof(float)) != 0;
    if (differ) fprintf(stderr, "\n  %zu of %zu parameters differ\n", differ, n_mpi);
    CU_ASSERT_EQUAL(differ, 0);
    CU_ASSERT_TRUE(mpi_losses[STEPS - 1] < mpi_losses[0]);
    CU_ASSERT_EQUAL(lh_fake_cuda_violations(), 0);
    free(mpi_params);
    free(nccl_params);
}

/* A CPU stage has no device gradients: asking for them is an error, not a silent host path. */
static void test_cpu_stage_has_no_device_grads(void)
{
    lh_model_config cfg = {16, 256, 0, 2, 2, 32};
    LH_ASSERT_OK(lh_model_config_check(&cfg));
    lh_stage_spec spec = lh_stage_spec_whole(&cfg);
    lh_stage *s;
    LH_ASSERT_OK(lh_stage_create(&cfg, &spec, 2, 16, 1, &s));
    float *dev = (float *)1;
    LH_ASSERT_FAILS_WITH(lh_stage_device_grads(s, &dev), LH_ERR_INVALID_ARG, "CPU stage");
    CU_ASSERT_PTR_NULL(dev);
    lh_stage_free(s);
}

static int setup(void)
{
    if (lh_corpus_default_tokens(&tokens, &n_tokens)) return 1;
    if (lh_compute_device_bind(LH_DEVICE_CUDA, 0)) return 1;
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
    CU_TestInfo tests[] = {{"GPU stages over NCCL = CPU stages over MPI", test_nccl_equals_mpi},
                           {"a CPU stage has no device gradients", test_cpu_stage_has_no_device_grads},
                           CU_TEST_INFO_NULL};
    CU_SuiteInfo suites[] = {{"engine nccl (emulated)", setup, teardown, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return lh_test_run_mpi(&argc, &argv, suites);
}
