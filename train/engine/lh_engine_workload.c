/*
 * The engine as the scheduler sees it: a job's workload (what the cost models
 * and the simulator take) and the choice of the 1F1B depth by simulation.
 * Kept beside the engine because only it knows how the job's settings turn
 * into bytes on the wire.
 */
#include <stddef.h>

#include "lh_engine.h"

lh_workload lh_engine_workload(const lh_job *job)
{
    lh_workload w;
    lh_workload_dtfm_gpt3xl(&w); /* defaults for every field, then the job's own figures */
    w.layers = job->model.layers;
    w.hidden = job->model.channels;
    w.seq_len = job->batch.seq_len;
    w.vocab = job->model.vocab;
    w.stages = job->placement.pipeline_stages;
    w.replicas = job->placement.data_parallel;
    w.batch = job->batch.batch_size;
    w.micro_batch = job->batch.micro_batch;
    w.act_bytes = 4;
    w.grad_bytes = 4;
    /* the model has one width for both directions: the mean of the forward and backward widths */
    w.act_bits = job->compression.mode == LH_COMPRESS_FP32
                     ? 32
                     : 0.5 * (job->compression.forward_bits + job->compression.backward_bits);
    w.grad_bits = job->compression.gradient_bits ? job->compression.gradient_bits : 32;
    w.schedule = job->schedule == LH_JOB_SCHEDULE_GPIPE ? LH_SCHEDULE_GPIPE : LH_SCHEDULE_1F1B;
    w.depth = job->pipeline_depth;
    w.dtfm_c_dp_bytes = 0;
    w.dtfm_c_pp_bytes = 0;
    return w;
}

lh_status lh_engine_choose_depth(const lh_job *job, const lh_topology *topology, const lh_plan *plan, int *depth,
                                 double *est_s)
{
    lh_topology *links;
    lh_status st = lh_topology_clone(topology, &links);
    if (st) return st;
    if (job->placement.emulate) lh_topology_scale_links(links, job->placement.time_scale);
    lh_workload w = lh_engine_workload(job);
    lh_sched_problem *problem = NULL;
    st = lh_sched_problem_create(links, &w, &problem);
    if (!st) st = lh_choose_depth(problem, plan, depth, est_s);
    lh_sched_problem_free(problem);
    lh_topology_free(links);
    return st ? lh_fail_prefix(st, "choosing the pipeline depth") : LH_OK;
}
