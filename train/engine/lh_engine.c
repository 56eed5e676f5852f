/*
 * The training engine: pipeline schedules, compressed pipeline links,
 * data-parallel gradient sync, tied embeddings, clipping and AdamW.
 *
 * Messages between stages.  Compressed tensors have a size known only to the
 * sender, so each goes as two messages on the same channel: an 8-byte length,
 * then the payload.  Both are posted non-blocking back to back, so on a real
 * or emulated link the second rides right behind the first and the length
 * costs no extra round trip.  fp32 tensors have a size both ends know and go
 * as one message.  Channel 0 carries activations forward, channel 1
 * activation gradients backward, channel 2 evaluation activations; each
 * channel is ordered per peer, which is all the schedules need.
 *
 * Overlap.  Sends are non-blocking and completed once per step.  Receives are
 * posted one message ahead (lh_inbox): while a stage computes micro-batch i,
 * the receive of i+1 (the whole fp32 tensor into a spare buffer, or the length
 * of a compressed one) is already posted, so it lands meanwhile instead of
 * waiting for the stage to ask.  A compressed payload's receive is posted
 * before the next length's, as MPI matches receives in the order posted.
 *
 * Control traffic.  Each collective round costs a link latency, which on a
 * WAN is most of a step, so a step has exactly one synchronous round beyond
 * its pipeline and gradient traffic: the all-gather of per-stage gradient
 * sums of squares over the replica's pipeline for global-norm clipping.  The
 * job-wide report (loss, bytes, slowest rank) is gathered to world rank 0 in
 * the background, one step late.
 *
 * AQ-SGD state.  Each link s -> s+1 has a sender codec on stage s and a
 * receiver codec on stage s+1, keyed by the dataset's stable sample ids; both
 * ends draw the same batches, so they agree on the ids without traffic.
 * A digest mismatch found by the receiver ends the step with an error naming
 * the samples (the codec has already invalidated them on this side).
 */
#include "lh_engine.h"
#include "lh_engine_internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_comm_compressed.h"
#include "lh_compress.h"
#include "lh_data.h"
#include "lh_log.h"
#include "lh_merkle.h"
#include "lh_optim.h"
#include "lh_time.h"

/* ---- small helpers ---- */

static double elapsed_since(double t0) { return lh_now_s() - t0; }

static lh_status track_send(lh_engine *e, lh_comm_request *req)
{
    if (e->n_pending == e->cap_pending) {
        int cap = e->cap_pending ? 2 * e->cap_pending : 16;
        lh_comm_request **grown = realloc(e->pending, (size_t)cap * sizeof *grown);
        if (!grown) return lh_fail(LH_ERR_NOMEM, "engine: out of memory for send requests");
        e->pending = grown;
        e->cap_pending = cap;
    }
    e->pending[e->n_pending++] = req;
    return LH_OK;
}

static lh_status wait_sends(lh_engine *e)
{
    double t0 = lh_now_s();
    lh_status st = lh_comm_waitall(e->pending, e->n_pending);
    e->n_pending = 0;
    e->comm_s += elapsed_since(t0);
    return st ? lh_fail_prefix(st, "completing sends to pipeline neighbours") : LH_OK;
}

/* Send `len` bytes to pipeline peer `peer`, with a length message first when `sized`. */
static lh_status send_message(lh_engine *e, const void *buf, size_t len, int peer, int channel, int sized)
{
    double t0 = lh_now_s();
    lh_comm_request *req;
    lh_status st = LH_OK;
    if (sized) {
        uint64_t len64 = len;
        st = lh_comm_isend(e->pipe, &len64, sizeof len64, peer, channel, &req);
        if (!st) st = track_send(e, req);
    }
    if (!st) st = lh_comm_isend(e->pipe, buf, len, peer, channel, &req);
    if (!st) st = track_send(e, req);
    e->comm_s += elapsed_since(t0);
    return st ? lh_fail_prefix(st, "sending to stage %d (world rank %d)", peer, e->pipe_world_rank[peer]) : LH_OK;
}

/* Receive a message sent by send_message into e->msg (sized) or `dst` (exact size); blocking (evaluation). */
static lh_status recv_message(lh_engine *e, void *dst, size_t exact, int peer, int channel, size_t *len)
{
    double t0 = lh_now_s();
    lh_status st;
    if (dst) {
        st = lh_comm_recv(e->pipe, dst, exact, peer, channel);
        *len = exact;
    } else {
        uint64_t len64 = 0;
        st = lh_comm_recv(e->pipe, &len64, sizeof len64, peer, channel);
        if (!st && len64 > e->msg_cap)
            st = lh_fail(LH_ERR_COMM, "engine: stage %d announced a %llu-byte message, more than the %zu allowed",
                         e->stage + (peer > e->stage ? 1 : -1), (unsigned long long)len64, e->msg_cap);
        if (!st) st = lh_comm_recv(e->pipe, e->msg, (size_t)len64, peer, channel);
        *len = (size_t)len64;
    }
    e->comm_s += elapsed_since(t0);
    return st ? lh_fail_prefix(st, "receiving from stage %d (world rank %d)", peer, e->pipe_world_rank[peer])
              : LH_OK;
}

static size_t tensor_floats(const lh_engine *e) { return (size_t)e->micro * e->seq * e->channels; }

/* fp32 tensors have a size both ends know; compressed ones are announced by a length message. */
static int exact_size_messages(const lh_engine *e) { return e->job.compression.mode == LH_COMPRESS_FP32; }

static int inbox_peer(const lh_engine *e, int channel)
{
    return channel == CHANNEL_FORWARD ? e->stage - 1 : e->stage + 1;
}

/* Post the receive of the next message on a training channel. */
static lh_status inbox_post(lh_engine *e, int channel)
{
    lh_inbox *in = &e->inbox[channel];
    int peer = inbox_peer(e, channel);
    if (exact_size_messages(e))
        return lh_comm_irecv(e->pipe, in->spare, tensor_floats(e) * sizeof(float), peer, channel, &in->req);
    return lh_comm_irecv(e->pipe, &in->len64, sizeof in->len64, peer, channel, &in->req);
}

/* A step expects `count` messages on `channel`: post the first receive now. */
static lh_status inbox_open(lh_engine *e, int channel, int count)
{
    e->inbox[channel].remaining = count;
    return count > 0 ? inbox_post(e, channel) : LH_OK;
}

/*
 * Take the next message of a training channel: an fp32 tensor lands in
 * *tensor (the buffers are swapped, no copy), a compressed one in e->msg
 * (*len bytes).  The receive after it is posted before this returns.
 */
static lh_status inbox_take(lh_engine *e, int channel, float **tensor, size_t *len)
{
    lh_inbox *in = &e->inbox[channel];
    int peer = inbox_peer(e, channel);
    double t0 = lh_now_s();
    *len = 0;
    lh_status st = in->req ? LH_OK : inbox_post(e, channel);
    if (!st) {
        st = lh_comm_wait(in->req);
        in->req = NULL;
    }
    in->remaining--;
    if (!st && exact_size_messages(e)) {
        float *got = in->spare;
        in->spare = *tensor; /* free again: the stage keeps its own copies of what backward needs */
        *tensor = got;
        *len = tensor_floats(e) * sizeof(float);
        if (in->remaining > 0) st = inbox_post(e, channel);
    } else if (!st) {
        lh_comm_request *payload = NULL;
        if (in->len64 > e->msg_cap)
            st = lh_fail(LH_ERR_COMM, "engine: stage %d announced a %llu-byte message, more than the %zu allowed",
                         e->stage + (peer > e->stage ? 1 : -1), (unsigned long long)in->len64, e->msg_cap);
        if (!st) st = lh_comm_irecv(e->pipe, e->msg, (size_t)in->len64, peer, channel, &payload);
        *len = (size_t)in->len64;
        if (!st && in->remaining > 0) st = inbox_post(e, channel);
        if (payload) {
            lh_status st2 = st ? lh_comm_cancel(payload) : lh_comm_wait(payload);
            if (!st) st = st2;
        }
    }
    e->comm_s += elapsed_since(t0);
    return st ? lh_fail_prefix(st, "receiving from stage %d (world rank %d)", peer, e->pipe_world_rank[peer])
              : LH_OK;
}

/* Withdraw receives posted ahead (after a failed step; the pipe communicator is unusable afterwards). */
static void inbox_close(lh_engine *e)
{
    for (int c = 0; c < 2; c++) {
        if (e->inbox[c].req) lh_comm_cancel(e->inbox[c].req);
        e->inbox[c].req = NULL;
        e->inbox[c].remaining = 0;
    }
}

/* ---- creation ---- */

/*
 * 1F1B's forwards before a stage's first backward: depth x (stages - stage -
 * 1), at most all of the step's micro-batches.  Depth 1 is classic 1F1B, the
 * fewest micro-batches in flight (activation memory).  On links whose latency
 * is long against a micro-batch's compute, a stage with few micro-batches in
 * flight idles while they make the round trip to the last stage and back;
 * a deeper warm-up keeps the links busy, and the depth that fills the
 * pipeline to the end of the step turns 1F1B into GPipe's order on the
 * first stage while the later stages still alternate, so each link carries
 * forward and backward traffic at once.  Non-increasing along the pipeline,
 * so no stage waits for a backward its successor has not been sent the
 * forward for.
 */
static int warmup_forwards(const lh_engine *e)
{
    int64_t w = (int64_t)e->job.pipeline_depth * (e->stages - e->stage - 1);
    return w < e->micro_batches ? (int)w : e->micro_batches;
}

static lh_quant_params params_for(const lh_job *job, int bits)
{
    lh_quant_params p = lh_quant_params_default(bits);
    if (job->compression.group_size > 0) {
        p.grouping = LH_GROUP_BLOCK;
        p.group_size = (uint32_t)job->compression.group_size;
    }
    p.rounding = job->compression.rounding == LH_JOB_ROUND_STOCHASTIC ? LH_ROUND_STOCHASTIC : LH_ROUND_NEAREST;
    p.zstd_level = job->compression.zstd_level;
    return p;
}

static lh_status open_datasets(lh_engine *e, const uint16_t *tokens, size_t n_tokens)
{
    lh_dataset_config cfg;
    lh_dataset_config_default(&cfg);
    cfg.seq_len = (uint32_t)e->seq;
    cfg.vocab_size = (uint32_t)e->job.model.vocab;
    cfg.replica = (uint32_t)e->replica;
    cfg.replicas = (uint32_t)e->replicas;
    cfg.seed = e->job.seed;
    cfg.val_fraction = e->job.data.val_fraction;
    cfg.split = LH_SPLIT_TRAIN;
    lh_status st = lh_dataset_create_from_tokens(tokens, n_tokens, &cfg, &e->train);
    if (st) return lh_fail_prefix(st, "engine: training data");
    if (lh_dataset_replica_samples(e->train) < (uint64_t)e->job.batch.batch_size)
        return lh_fail(LH_ERR_INVALID_ARG,
                       "engine: replica %d has %llu training samples of %d tokens, fewer than a batch (%d)",
                       e->replica, (unsigned long long)lh_dataset_replica_samples(e->train), e->seq,
                       e->job.batch.batch_size);
    if (e->job.data.val_fraction > 0) {
        cfg.split = LH_SPLIT_VAL;
        cfg.shuffle = 0;
        st = lh_dataset_create_from_tokens(tokens, n_tokens, &cfg, &e->val);
        if (st) return lh_fail_prefix(st, "engine: validation data");
    }
    return LH_OK;
}

static lh_quant_params gradient_params(const lh_job *job)
{
    lh_quant_params gp = lh_callreduce_default_params(job->compression.gradient_bits);
    if (job->compression.group_size > 0) gp.group_size = (uint32_t)job->compression.group_size;
    if (job->compression.rounding == LH_JOB_ROUND_STOCHASTIC) gp.rounding = LH_ROUND_STOCHASTIC;
    return gp;
}

static lh_status tied_open(lh_engine *e)
{
    const lh_model_config *cfg = lh_stage_config(e->model);
    e->tied_offset = lh_stage_wte_offset(e->model);
    e->tied_count = (size_t)cfg->padded_vocab_size * (size_t)cfg->channels;
    e->tied_bytes = e->tied_count * sizeof(float);
    if (e->job.compression.gradient_bits > 0) {
        lh_quant_params gp = gradient_params(&e->job);
        lh_status st = lh_grad_create(e->tied_count, &gp, e->job.seed, &e->tied_codec);
        if (st) return lh_fail_prefix(st, "tied embeddings");
        e->tied_bytes = lh_grad_bound(e->tied_codec, e->tied_count);
    }
    e->tied_out = e->tied_codec ? malloc(e->tied_bytes) : NULL;
    e->tied_in = malloc(e->tied_bytes);
    if ((e->tied_codec && !e->tied_out) || !e->tied_in)
        return lh_fail(LH_ERR_NOMEM, "engine: out of memory for tied embeddings");
    return LH_OK;
}

static lh_status open_codecs(lh_engine *e)
{
    const lh_job_compression *c = &e->job.compression;
    lh_status st = lh_quant_ctx_create(&e->quant);
    if (st) return st;
    e->forward_params = params_for(&e->job, c->forward_bits);
    e->backward_params = params_for(&e->job, c->backward_bits);
    /* Clipping is for the forward path, where 2-3 bit deltas gain most; at the backward path's widths
     * (4+ bits) the normal grid is already tuned for absmax scales and clipping raises the error. */
    e->forward_params.clip_rms = (float)c->clip;
    size_t n = tensor_floats(e);
    e->msg_cap = n * sizeof(float) + 4096;
    if (c->mode == LH_COMPRESS_AQSGD) {
        lh_aq_config cfg = {.sample_rows = (size_t)e->seq,
                            .channels = (size_t)e->channels,
                            .max_samples = lh_dataset_total_samples(e->train),
                            .storage = LH_AQ_STORE_FP32,
                            .mmap_path = NULL,
                            .quant = e->forward_params,
                            .seed = e->job.seed};
        if (e->stage < e->stages - 1 && (st = lh_aq_create(&cfg, &e->aq_send))) return st;
        if (e->stage > 0 && (st = lh_aq_create(&cfg, &e->aq_recv))) return st;
        lh_aq_codec *any = e->aq_send ? e->aq_send : e->aq_recv;
        if (any && lh_aq_bound(any, (size_t)e->micro) > e->msg_cap) e->msg_cap = lh_aq_bound(any, (size_t)e->micro);
    }
    if (c->mode != LH_COMPRESS_FP32) {
        size_t rows = (size_t)e->micro * e->seq;
        size_t fb = lh_quant_bound(&e->forward_params, rows, (size_t)e->channels);
        size_t bb = lh_quant_bound(&e->backward_params, rows, (size_t)e->channels);
        if (fb > e->msg_cap) e->msg_cap = fb;
        if (bb > e->msg_cap) e->msg_cap = bb;
    }
    if (c->gradient_bits > 0 && e->replicas > 1) {
        lh_quant_params gp = gradient_params(&e->job);
        st = lh_callreduce_create(e->dp, (size_t)lh_stage_param_count(e->model), &gp, e->job.seed, 1,
                                  &e->grad_allreduce);
        if (st) return st;
    }
    if (e->tied && (st = tied_open(e))) return st;
    if (e->job.transport == LH_TRANSPORT_NCCL && e->replicas > 1) {
        int device = -1;
        st = lh_compute_device_current(&device);
        if (!st) st = lh_nccl_comm_create(e->dp, device, &e->nccl_dp);
        if (st) return lh_fail_prefix(st, "transport nccl");
    }
    e->msg = malloc(e->msg_cap);
    if (!e->msg) return lh_fail(LH_ERR_NOMEM, "engine: cannot allocate a %zu-byte message buffer", e->msg_cap);
    return LH_OK;
}

lh_status lh_engine_create(const lh_job *job, const lh_plan *plan, lh_comm *world, const uint16_t *tokens,
                           size_t n_tokens, lh_engine **out)
{
    *out = NULL;
    int world_size = lh_comm_size(world), rank = lh_comm_rank(world);
    if (plan->stages * plan->replicas != world_size)
        return lh_fail(LH_ERR_MISMATCH, "engine: the plan needs %d x %d = %d ranks but the job has %d",
                       plan->stages, plan->replicas, plan->stages * plan->replicas, world_size);
    if (plan->layers != job->model.layers)
        return lh_fail(LH_ERR_MISMATCH, "engine: the plan splits %d layers but the model has %d", plan->layers,
                       job->model.layers);
    lh_status st = lh_plan_validate(plan, NULL);
    if (st) return st;
    if (job->pipeline_depth < 1)
        return lh_fail(LH_ERR_INVALID_ARG, "engine: pipeline depth %d; \"auto\" is resolved by the coordinator "
                                           "(lh_choose_depth) before the engine starts", job->pipeline_depth);
    int stage = -1, replica = -1;
    if (!lh_plan_find_device(plan, rank, &replica, &stage))
        return lh_fail(LH_ERR_MISMATCH, "engine: rank %d runs no stage in the plan", rank);

    lh_engine *e = calloc(1, sizeof *e);
    if (!e) return lh_fail(LH_ERR_NOMEM, "engine: out of memory");
    e->job = *job;
    e->rank = rank;
    e->stage = stage;
    e->replica = replica;
    e->stages = plan->stages;
    e->replicas = plan->replicas;
    e->micro = job->batch.micro_batch;
    e->micro_batches = job->batch.batch_size / job->batch.micro_batch;
    e->seq = job->batch.seq_len;
    e->channels = job->model.channels;
    e->world = world;
    e->report_pending = -1;
    e->dp_world_rank = malloc((size_t)plan->replicas * sizeof *e->dp_world_rank);
    e->pipe_world_rank = malloc((size_t)plan->stages * sizeof *e->pipe_world_rank);
    e->first_layer = malloc((size_t)plan->stages * sizeof *e->first_layer);
    e->num_layers = malloc((size_t)plan->stages * sizeof *e->num_layers);
    if (!e->dp_world_rank || !e->pipe_world_rank || !e->first_layer || !e->num_layers) {
        lh_engine_free(e);
        return lh_fail(LH_ERR_NOMEM, "engine: out of memory");
    }
    memcpy(e->first_layer, plan->first_layer, (size_t)plan->stages * sizeof *e->first_layer);
    memcpy(e->num_layers, plan->num_layers, (size_t)plan->stages * sizeof *e->num_layers);
    for (int r = 0; r < plan->replicas; r++) e->dp_world_rank[r] = lh_plan_device(plan, r, stage);
    for (int s = 0; s < plan->stages; s++) e->pipe_world_rank[s] = lh_plan_device(plan, replica, s);
    e->slots = job->schedule == LH_JOB_SCHEDULE_GPIPE || warmup_forwards(e) >= e->micro_batches
                   ? e->micro_batches
                   : warmup_forwards(e) + 1;

    /* Sub-communicators: the replica's pipeline, the stage's data-parallel group, the tied pair. */
    st = lh_comm_split(world, replica, stage, &e->pipe);
    if (!st) st = lh_comm_split(world, stage, replica, &e->dp);
    int tied_color = (plan->stages > 1 && (stage == 0 || stage == plan->stages - 1)) ? replica : -1;
    if (!st) st = lh_comm_split(world, tied_color, stage, &e->tied);
    if (!st) st = lh_comm_split(world, 0, rank, &e->reports);

    lh_model_config cfg = {.max_seq_len = job->model.context,
                           .vocab_size = job->model.vocab,
                           .padded_vocab_size = 0,
                           .num_layers = job->model.layers,
                           .num_heads = job->model.heads,
                           .channels = job->model.channels};
    lh_stage_spec spec = {.first_layer = plan->first_layer[stage],
                          .layer_count = plan->num_layers[stage],
                          .has_embedding = stage == 0,
                          .has_head = stage == plan->stages - 1};
    if (!st) st = lh_model_config_check(&cfg);
    if (!st) st = lh_stage_create_on(&cfg, &spec, e->micro, e->seq, e->slots, job->device, &e->model);
    if (!st) lh_stage_init_params(e->model, job->seed);
    if (!st) st = open_datasets(e, tokens, n_tokens);
    if (!st) {
        size_t per_step = (size_t)e->micro_batches * e->micro * e->seq;
        size_t n = tensor_floats(e);
        e->tokens = malloc(per_step * sizeof *e->tokens);
        e->targets = malloc(per_step * sizeof *e->targets);
        e->ids = malloc((size_t)e->micro_batches * e->micro * sizeof *e->ids);
        e->act_in = malloc(n * sizeof(float));
        e->act_out = malloc(n * sizeof(float));
        e->grad_in = malloc(n * sizeof(float));
        e->grad_out = malloc(n * sizeof(float));
        int spares = exact_size_messages(e); /* fp32 tensors are received ahead into a second buffer */
        for (int c = 0; c < 2 && spares; c++) e->inbox[c].spare = malloc(n * sizeof(float));
        if (!e->tokens || !e->targets || !e->ids || !e->act_in || !e->act_out || !e->grad_in || !e->grad_out ||
            (spares && (!e->inbox[CHANNEL_FORWARD].spare || !e->inbox[CHANNEL_BACKWARD].spare)))
            st = lh_fail(LH_ERR_NOMEM, "engine: cannot allocate step buffers");
    }
    if (!st) st = open_codecs(e);
    if (!st) {
        uint64_t per_epoch = lh_dataset_replica_samples(e->train) / (uint64_t)job->batch.batch_size;
        if (job->batch.steps > 0) e->total_steps = job->batch.steps;
        else e->total_steps = (int64_t)ceil(job->batch.epochs * (double)(per_epoch ? per_epoch : 1));
        e->lr = (lh_lr_schedule){.max_lr = job->optimizer.lr,
                                 .min_lr_fraction = job->optimizer.min_lr_fraction,
                                 .warmup_steps = job->optimizer.warmup_steps < e->total_steps
                                                     ? job->optimizer.warmup_steps
                                                     : e->total_steps,
                                 .total_steps = e->total_steps,
                                 .decay = job->optimizer.schedule == LH_JOB_LR_LINEAR     ? LH_DECAY_LINEAR
                                          : job->optimizer.schedule == LH_JOB_LR_CONSTANT ? LH_DECAY_CONSTANT
                                                                                          : LH_DECAY_COSINE};
        st = lh_lr_schedule_check(&e->lr);
    }
    if (st) {
        lh_engine_free(e);
        return lh_fail_prefix(st, "rank %d (stage %d, replica %d)", rank, stage, replica);
    }
    LH_DEBUG("engine: rank %d runs stage %d (layers %d..%d) of replica %d, %d slots", rank, stage,
             spec.first_layer, spec.first_layer + spec.layer_count - 1, replica, e->slots);
    *out = e;
    return LH_OK;
}

void lh_engine_free(lh_engine *e)
{
    if (!e) return;
    inbox_close(e);
    if (e->n_pending) wait_sends(e);
    free(e->pending);
    free(e->inbox[CHANNEL_FORWARD].spare);
    free(e->inbox[CHANNEL_BACKWARD].spare);
    free(e->dp_world_rank);
    free(e->pipe_world_rank);
    free(e->first_layer);
    free(e->num_layers);
    lh_comm_free(e->pipe);
    lh_comm_free(e->dp);
    lh_comm_free(e->tied);
    free(e->tied_out);
    free(e->tied_in);
    lh_grad_free(e->tied_codec);
    lh_comm_free(e->reports);
    lh_stage_free(e->model);
    lh_dataset_free(e->train);
    lh_dataset_free(e->val);
    lh_aq_free(e->aq_send);
    lh_aq_free(e->aq_recv);
    lh_quant_ctx_free(e->quant);
    lh_callreduce_free(e->grad_allreduce);
    lh_nccl_comm_free(e->nccl_dp);
    free(e->tokens);
    free(e->targets);
    free(e->ids);
    free(e->act_in);
    free(e->act_out);
    free(e->grad_in);
    free(e->grad_out);
    free(e->msg);
    free(e);
}

int64_t lh_engine_total_steps(const lh_engine *e) { return e->total_steps; }

int64_t lh_engine_current_step(const lh_engine *e) { return e->step; }

void lh_engine_position(const lh_engine *e, int *stage, int *replica)
{
    if (stage) *stage = e->stage;
    if (replica) *replica = e->replica;
}

lh_stage *lh_engine_stage(lh_engine *e) { return e->model; }

/* ---- pipeline links ---- */

static lh_status send_activations(lh_engine *e, int mb, int channel, int force_fp32)
{
    size_t n = tensor_floats(e), rows = (size_t)e->micro * e->seq, len = 0;
    lh_compress_mode mode = force_fp32 ? LH_COMPRESS_FP32 : e->job.compression.mode;
    e->raw_bytes += n * sizeof(float);
    if (mode == LH_COMPRESS_FP32) return send_message(e, e->act_out, n * sizeof(float), e->stage + 1, channel, 0);
    double t0 = lh_now_s();
    lh_status st;
    if (mode == LH_COMPRESS_AQSGD)
        st = lh_aq_encode(e->aq_send, e->act_out, e->ids + (size_t)mb * e->micro, (size_t)e->micro,
                          (uint64_t)e->step, e->msg, e->msg_cap, &len);
    else {
        lh_sr_key key = {e->job.seed, (uint64_t)mb, (uint64_t)e->step};
        st = lh_quant_encode(e->quant, &e->forward_params, e->act_out, rows, (size_t)e->channels, &key, e->msg,
                             e->msg_cap, &len);
    }
    e->compute_s += elapsed_since(t0);
    if (st) return lh_fail_prefix(st, "stage %d: encoding activations", e->stage);
    return send_message(e, e->msg, len, e->stage + 1, channel, 1);
}

/* Training activations come through the inbox; evaluation's (channel 2, fp32) by a blocking receive. */
static lh_status recv_activations(lh_engine *e, int channel, int force_fp32)
{
    size_t n = tensor_floats(e), rows = (size_t)e->micro * e->seq, len;
    lh_compress_mode mode = force_fp32 ? LH_COMPRESS_FP32 : e->job.compression.mode;
    if (channel != CHANNEL_FORWARD)
        return recv_message(e, e->act_in, n * sizeof(float), e->stage - 1, channel, &len);
    lh_status st = inbox_take(e, CHANNEL_FORWARD, &e->act_in, &len);
    if (st || mode == LH_COMPRESS_FP32) return st;
    double t0 = lh_now_s();
    if (mode == LH_COMPRESS_AQSGD) {
        uint64_t got_ids[1024], bad[1024];
        size_t got = 0, n_bad = 0;
        if (e->micro > 1024) return lh_fail(LH_ERR_UNSUPPORTED, "engine: AQ-SGD supports micro-batches up to 1024");
        st = lh_aq_decode(e->aq_recv, e->msg, len, e->act_in, (size_t)e->micro, got_ids, &got, bad, &n_bad);
        if (st == LH_ERR_CORRUPT && n_bad)
            st = lh_fail(LH_ERR_CORRUPT,
                         "stage %d: the AQ-SGD cache for sample %llu (and %zu more) differs from stage %d's; "
                         "the entries were invalidated",
                         e->stage, (unsigned long long)bad[0], n_bad - 1, e->stage - 1);
    } else {
        st = lh_quant_decode(e->quant, e->msg, len, e->act_in, rows, (size_t)e->channels);
    }
    e->compute_s += elapsed_since(t0);
    return st ? lh_fail_prefix(st, "stage %d: activations from stage %d", e->stage, e->stage - 1) : LH_OK;
}

static lh_status send_gradient(lh_engine *e, int mb)
{
    size_t n = tensor_floats(e), rows = (size_t)e->micro * e->seq, len = 0;
    e->raw_bytes += n * sizeof(float);
    if (e->job.compression.mode == LH_COMPRESS_FP32)
        return send_message(e, e->grad_out, n * sizeof(float), e->stage - 1, CHANNEL_BACKWARD, 0);
    double t0 = lh_now_s();
    lh_sr_key key = {e->job.seed ^ 0x9e3779b97f4a7c15ull, (uint64_t)mb, (uint64_t)e->step};
    lh_status st = lh_quant_encode(e->quant, &e->backward_params, e->grad_out, rows, (size_t)e->channels, &key,
                                   e->msg, e->msg_cap, &len);
    e->compute_s += elapsed_since(t0);
    if (st) return lh_fail_prefix(st, "stage %d: encoding activation gradients", e->stage);
    return send_message(e, e->msg, len, e->stage - 1, CHANNEL_BACKWARD, 1);
}

static lh_status recv_gradient(lh_engine *e)
{
    size_t rows = (size_t)e->micro * e->seq, len;
    lh_status st = inbox_take(e, CHANNEL_BACKWARD, &e->grad_in, &len);
    if (st || e->job.compression.mode == LH_COMPRESS_FP32) return st;
    double t0 = lh_now_s();
    st = lh_quant_decode(e->quant, e->msg, len, e->grad_in, rows, (size_t)e->channels);
    e->compute_s += elapsed_since(t0);
    return st ? lh_fail_prefix(st, "stage %d: gradients from stage %d", e->stage, e->stage + 1) : LH_OK;
}

/* ---- one micro-batch ---- */

static lh_status forward_micro(lh_engine *e, int mb, float *loss)
{
    int first = e->stage == 0, last = e->stage == e->stages - 1;
    size_t off = (size_t)mb * e->micro * e->seq;
    lh_status st = first ? LH_OK : recv_activations(e, CHANNEL_FORWARD, 0);
    if (st) return st;
    double t0 = lh_now_s();
    st = lh_stage_forward(e->model, mb % e->slots, e->micro, e->seq, first ? e->tokens + off : NULL,
                          first ? NULL : e->act_in, last ? e->targets + off : NULL, last ? NULL : e->act_out, loss);
    e->compute_s += elapsed_since(t0);
    if (st) return st;
    return last ? LH_OK : send_activations(e, mb, CHANNEL_FORWARD, 0);
}

static lh_status backward_micro(lh_engine *e, int mb)
{
    int first = e->stage == 0, last = e->stage == e->stages - 1;
    lh_status st = last ? LH_OK : recv_gradient(e);
    if (st) return st;
    double t0 = lh_now_s();
    st = lh_stage_backward(e->model, mb % e->slots, last ? NULL : e->grad_in, 1.0f / (float)e->micro_batches,
                           first ? NULL : e->grad_out);
    e->compute_s += elapsed_since(t0);
    if (st) return st;
    return first ? LH_OK : send_gradient(e, mb);
}

/* GPipe: all forwards, then all backwards in reverse.  1F1B: warm up with
 * warmup_forwards forwards, alternate one forward and one backward, then
 * drain the backwards; at most `slots` micro-batches are in flight. */
static lh_status run_schedule(lh_engine *e, double *loss_sum)
{
    int M = e->micro_batches;
    lh_status st = LH_OK;
    float loss = 0;
    *loss_sum = 0;
    if (e->job.schedule == LH_JOB_SCHEDULE_GPIPE) {
        for (int i = 0; i < M && !st; i++) {
            st = forward_micro(e, i, &loss);
            *loss_sum += loss;
        }
        for (int i = M - 1; i >= 0 && !st; i--) st = backward_micro(e, i);
        return st;
    }
    int warmup = warmup_forwards(e);
    for (int i = 0; i < warmup && !st; i++) {
        st = forward_micro(e, i, &loss);
        *loss_sum += loss;
    }
    for (int j = 0; j < M - warmup && !st; j++) {
        st = forward_micro(e, warmup + j, &loss);
        *loss_sum += loss;
        if (!st) st = backward_micro(e, j);
    }
    for (int j = M - warmup; j < M && !st; j++) st = backward_micro(e, j);
    return st;
}

/* ---- gradient sync and optimizer ---- */

/*
 * Tied embeddings: the first stage's wte and the last stage's copy both get
 * the sum of the two (replica-synced) gradients.  One exchange, both
 * directions at once, so it costs one link latency; each end adds the other's
 * values to its own, and a + b = b + a in IEEE arithmetic, so both ends hold
 * the same bits.  With gradient compression each end quantizes its gradient
 * with error feedback and takes the decoded values as its own before adding,
 * so both add the same two decoded vectors.
 */
static lh_status tied_exchange(lh_engine *e)
{
    float *g = lh_stage_grads(e->model) + e->tied_offset;
    int peer = 1 - lh_comm_rank(e->tied);
    lh_status st = LH_OK;
    double t0 = lh_now_s();
    e->raw_bytes += e->tied_count * sizeof(float);
    const void *out = g; /* fp32: sent as it is (not touched until the exchange completes) */
    if (e->tied_codec) {
        size_t len = 0;
        st = lh_grad_encode(e->tied_codec, g, (uint64_t)e->step, e->tied_out, e->tied_bytes, &len);
        if (!st && len < e->tied_bytes) memset(e->tied_out + len, 0, e->tied_bytes - len);
        if (!st) st = lh_quant_decode(e->quant, e->tied_out, len, g, 1, e->tied_count);
        out = e->tied_out;
    }
    e->compute_s += elapsed_since(t0);
    t0 = lh_now_s();
    lh_comm_request *req[2] = {NULL, NULL};
    if (!st) st = lh_comm_irecv(e->tied, e->tied_in, e->tied_bytes, peer, 0, &req[0]);
    if (!st) st = lh_comm_isend(e->tied, out, e->tied_bytes, peer, 0, &req[1]);
    lh_status wst = lh_comm_waitall(req, 2);
    if (!st) st = wst;
    e->comm_s += elapsed_since(t0);
    t0 = lh_now_s();
    if (!st && e->tied_codec) {
        lh_quant_info info;
        st = lh_quant_peek(e->tied_in, e->tied_bytes, &info);
        if (!st && info.frame_bytes > e->tied_bytes)
            st = lh_fail(LH_ERR_FORMAT, "a frame of %zu bytes, more than the %zu expected", info.frame_bytes,
                         e->tied_bytes);
        if (!st) st = lh_quant_decode_add(e->quant, e->tied_in, info.frame_bytes, g, 1, e->tied_count);
    } else if (!st) {
        const float *in = (const float *)(const void *)e->tied_in;
        for (size_t i = 0; i < e->tied_count; i++) g[i] += in[i];
    }
    e->compute_s += elapsed_since(t0);
    return st ? lh_fail_prefix(st, "tied embeddings: exchange with stage %d", e->stage == 0 ? e->stages - 1 : 0)
              : LH_OK;
}

/* transport nccl: sum the data-parallel gradients where a GPU stage holds them, then hand them to the host. */
static lh_status nccl_allreduce_grads(lh_engine *e, size_t n)
{
    float *dev = NULL;
    lh_status st = lh_stage_device_grads(e->model, &dev);
    if (!st) st = lh_nccl_allreduce_f32(e->nccl_dp, dev, n);
    if (!st) st = lh_nccl_wait(e->nccl_dp);
    if (!st) st = lh_stage_device_grads_done(e->model);
    return st ? lh_fail_prefix(st, "data-parallel gradients over nccl") : LH_OK;
}

static lh_status sync_gradients(lh_engine *e)
{
    size_t n = (size_t)lh_stage_param_count(e->model);
    lh_status st = LH_OK;
    double t0 = lh_now_s();
    if (e->replicas > 1) {
        /* a ring allreduce: every rank sends 2 (R-1)/R of the gradient */
        uint64_t ring_bytes = 2 * n * sizeof(float) * (size_t)(e->replicas - 1) / (size_t)e->replicas;
        e->raw_bytes += ring_bytes;
        if (e->nccl_dp) {
            st = nccl_allreduce_grads(e, n);
            e->nccl_bytes += ring_bytes; /* fp32 on the wire, as raw */
        } else if (e->grad_allreduce) {
            st = lh_callreduce_run(e->grad_allreduce, lh_stage_grads(e->model), (uint64_t)e->step);
        } else {
            st = lh_comm_allreduce_f32(e->dp, lh_stage_grads(e->model), n);
        }
        if (!st) lh_stage_scale_grads(e->model, 1.0f / (float)e->replicas);
    }
    e->comm_s += elapsed_since(t0);
    if (!st && e->tied) st = tied_exchange(e);
    return st;
}

/*
 * Replicas hold identical gradients after the sync, so one replica's pipeline
 * holds the whole sum of squares.  An all-gather (every stage sends to every
 * other at once: one link latency, where an allreduce pays two) and a sum in
 * stage order leave every rank of every replica with the same bits.
 */
static lh_status global_grad_norm(lh_engine *e, double *norm)
{
    double mine = lh_stage_grad_sumsq(e->model), sumsq = 0;
    double *all = malloc((size_t)e->stages * sizeof *all);
    if (!all) return lh_fail(LH_ERR_NOMEM, "engine: out of memory");
    double t0 = lh_now_s();
    lh_status st = e->stages > 1 ? lh_comm_allgather(e->pipe, &mine, sizeof mine, all) : LH_OK;
    if (e->stages == 1) all[0] = mine;
    e->comm_s += elapsed_since(t0);
    for (int s = 0; s < e->stages && !st; s++) sumsq += all[s];
    free(all);
    *norm = sqrt(sumsq);
    return st ? lh_fail_prefix(st, "exchanging gradient norms over the pipeline") : LH_OK;
}

/* A step's batch never spans two epochs (the remainder of an epoch is dropped): spanning one could put a
 * sample in it twice, and AQ-SGD keys one cache entry per sample. */
static lh_status load_step_batches(lh_engine *e)
{
    size_t per_micro = (size_t)e->micro * e->seq;
    lh_dataset_position pos = lh_dataset_tell(e->train);
    if (pos.index + (uint64_t)e->job.batch.batch_size > lh_dataset_replica_samples(e->train)) {
        lh_status st = lh_dataset_seek(e->train, (lh_dataset_position){pos.epoch + 1, 0});
        if (st) return st;
    }
    for (int i = 0; i < e->micro_batches; i++) {
        lh_status st = lh_dataset_next_batch(e->train, (uint32_t)e->micro, e->tokens + i * per_micro,
                                             e->targets + i * per_micro, e->ids + (size_t)i * e->micro);
        if (st) return st;
    }
    return LH_OK;
}

lh_status lh_engine_step(lh_engine *e, lh_step_report *report)
{
    double t_start = lh_now_s();
    e->compute_s = e->comm_s = 0;
    e->raw_bytes = e->nccl_bytes = 0;
    lh_comm_reset_stats(e->pipe);
    lh_comm_reset_stats(e->dp);
    if (e->tied) lh_comm_reset_stats(e->tied);

    double loss_sum = 0, norm = 0;
    lh_status st = load_step_batches(e);
    if (!st) st = inbox_open(e, CHANNEL_FORWARD, e->stage > 0 ? e->micro_batches : 0);
    if (!st) st = inbox_open(e, CHANNEL_BACKWARD, e->stage < e->stages - 1 ? e->micro_batches : 0);
    if (!st) st = run_schedule(e, &loss_sum);
    if (st) inbox_close(e);
    if (!st) st = wait_sends(e);
    if (!st) st = sync_gradients(e);
    if (!st) st = global_grad_norm(e, &norm);
    double lr = lh_lr_at(&e->lr, e->step);
    if (!st) {
        double t0 = lh_now_s();
        float clip = lh_clip_scale(norm, e->job.optimizer.grad_clip);
        if (clip != 1.0f) lh_stage_scale_grads(e->model, clip);
        lh_adamw_params p = {.lr = (float)lr,
                             .beta1 = (float)e->job.optimizer.beta1,
                             .beta2 = (float)e->job.optimizer.beta2,
                             .eps = (float)e->job.optimizer.eps,
                             .weight_decay = (float)e->job.optimizer.weight_decay};
        st = lh_stage_adamw_step(e->model, &p, e->step + 1);
        lh_stage_zero_grads(e->model);
        e->compute_s += elapsed_since(t0);
    }
    if (st) return lh_fail_prefix(st, "step %lld, rank %d (stage %d, replica %d)", (long long)e->step, e->rank,
                                  e->stage, e->replica);
    if (e->job.verify_every > 0 && (e->step + 1) % e->job.verify_every == 0) {
        st = lh_engine_verify_replicas(e);
        if (st) return lh_fail_prefix(st, "step %lld", (long long)e->step);
    }

    lh_comm_stats ps, ds, ts = {0};
    lh_comm_get_stats(e->pipe, &ps);
    lh_comm_get_stats(e->dp, &ds);
    if (e->tied) lh_comm_get_stats(e->tied, &ts);
    e->record[REC_STEP] = (double)e->step;
    e->record[REC_LOSS] = e->stage == e->stages - 1 ? loss_sum / e->micro_batches : 0.0;
    e->record[REC_RAW_BYTES] = (double)e->raw_bytes;
    e->record[REC_WIRE_BYTES] =
        (double)(ps.wire_bytes_sent + ds.wire_bytes_sent + ts.wire_bytes_sent + e->nccl_bytes);
    e->record[REC_SECONDS] = elapsed_since(t_start);
    lh_step_report mine = {.step = e->step,
                           .lr = lr,
                           .grad_norm = norm,
                           .compute_s = e->compute_s,
                           .comm_s = e->comm_s};
    e->step++;
    if (report) *report = (lh_step_report){.step = -1};
    if (e->rank != 0) {
        /* Completed with the next step's sends (or at free): the record is copied when sent. */
        lh_comm_request *req;
        st = lh_comm_isend(e->reports, e->record, sizeof e->record, 0, CHANNEL_REPORT, &req);
        if (!st) st = track_send(e, req);
        return st ? lh_fail_prefix(st, "sending the step report to rank 0") : LH_OK;
    }
    /* Rank 0: the previous step's records have had a whole step to arrive. */
    st = lh_engine_flush_report(e, report);
    e->report_pending = mine.step;
    e->report_own = mine;
    memcpy(e->report_own_record, e->record, sizeof e->record);
    return st;
}

lh_status lh_engine_flush_report(lh_engine *e, lh_step_report *report)
{
    if (report) *report = (lh_step_report){.step = -1};
    if (e->rank != 0 || e->report_pending < 0) return LH_OK;
    int n = lh_comm_size(e->reports);
    double loss = e->report_own_record[REC_LOSS], raw = e->report_own_record[REC_RAW_BYTES];
    double wire = e->report_own_record[REC_WIRE_BYTES], slowest = e->report_own_record[REC_SECONDS];
    double t0 = lh_now_s();
    lh_status st = LH_OK;
    for (int r = 1; r < n && !st; r++) {
        double rec[REC_FIELDS];
        st = lh_comm_recv(e->reports, rec, sizeof rec, r, CHANNEL_REPORT);
        if (st) return lh_fail_prefix(st, "receiving the step-%lld report of rank %d", (long long)e->report_pending, r);
        if (rec[REC_STEP] != (double)e->report_pending)
            return lh_fail(LH_ERR_MISMATCH, "rank %d reported step %.0f while rank 0 expected step %lld", r,
                           rec[REC_STEP], (long long)e->report_pending);
        loss += rec[REC_LOSS];
        raw += rec[REC_RAW_BYTES];
        wire += rec[REC_WIRE_BYTES];
        if (rec[REC_SECONDS] > slowest) slowest = rec[REC_SECONDS];
    }
    e->comm_s += elapsed_since(t0);
    if (report) {
        *report = e->report_own;
        report->loss = loss / e->replicas;
        report->step_s = slowest;
        report->tokens_per_s = (double)e->job.batch.batch_size * e->seq * e->replicas / (slowest > 0 ? slowest : 1e-9);
        report->raw_bytes = (uint64_t)raw;
        report->wire_bytes = (uint64_t)wire;
    }
    e->report_pending = -1;
    return LH_OK;
}

lh_status lh_engine_evaluate(lh_engine *e, int64_t max_batches, double *loss)
{
    *loss = NAN;
    if (!e->val) return lh_fail(LH_ERR_INVALID_ARG, "engine: the job holds out no validation data (val_fraction 0)");
    uint64_t samples = lh_dataset_replica_samples(e->val);
    int64_t batches = (int64_t)(samples / (uint64_t)e->micro);
    if (max_batches > 0 && max_batches < batches) batches = max_batches;
    int first = e->stage == 0, last = e->stage == e->stages - 1;
    lh_status st = lh_dataset_seek(e->val, (lh_dataset_position){0, 0});
    double sum = 0;
    for (int64_t b = 0; b < batches && !st; b++) {
        float l = 0;
        st = lh_dataset_next_batch(e->val, (uint32_t)e->micro, e->tokens, e->targets, NULL);
        if (!st && !first) st = recv_activations(e, CHANNEL_EVAL, 1);
        if (!st)
            st = lh_stage_forward(e->model, 0, e->micro, e->seq, first ? e->tokens : NULL, first ? NULL : e->act_in,
                                  last ? e->targets : NULL, last ? NULL : e->act_out, &l);
        if (!st && !last) st = send_activations(e, 0, CHANNEL_EVAL, 1);
        if (!st && !last) st = wait_sends(e);
        sum += l;
    }
    if (st) return lh_fail_prefix(st, "evaluation, rank %d", e->rank);
    float sums[2] = {last ? (float)sum : 0.0f, last ? (float)batches : 0.0f};
    st = lh_comm_allreduce_f32(e->world, sums, 2);
    if (st) return st;
    if (sums[1] <= 0) return lh_fail(LH_ERR_INVALID_ARG, "engine: the validation split has no full micro-batch");
    *loss = sums[0] / sums[1];
    return LH_OK;
}

/* ---- replica agreement ---- */

#define VERIFY_CHUNK_BYTES ((size_t)64 << 10)

/* Which part of this stage's layer-major parameters holds flat index `index`:
 * -1 the embeddings, 0.. a layer (global index), INT_MAX the head. */
static int parameter_part(lh_engine *e, size_t index)
{
    const lh_stage_spec *spec = lh_stage_get_spec(e->model);
    if (spec->layer_count == 0) return spec->has_embedding ? -1 : INT_MAX;
    size_t per_layer = (size_t)lh_layer_param_floats(e->channels);
    size_t first = (size_t)(lh_stage_layer_tensor(e->model, spec->first_layer, LH_LN1W, 0) - lh_stage_params(e->model));
    if (index < first) return -1;
    size_t layer = (index - first) / per_layer;
    return layer < (size_t)spec->layer_count ? spec->first_layer + (int)layer : INT_MAX;
}

static void describe_part(int part, char *out, size_t cap)
{
    if (part < 0) snprintf(out, cap, "the embeddings (wte, wpe)");
    else if (part == INT_MAX) snprintf(out, cap, "the head (lnf, wte copy)");
    else snprintf(out, cap, "layer %d", part);
}

/* "layer 3", or "layer 2 to layer 3" when a chunk spans parts. */
static void describe_range(lh_engine *e, size_t first, size_t last, char *out, size_t cap)
{
    int a = parameter_part(e, first), b = parameter_part(e, last);
    char pa[48], pb[48];
    describe_part(a, pa, sizeof pa);
    describe_part(b, pb, sizeof pb);
    if (a == b) snprintf(out, cap, "%s", pa);
    else snprintf(out, cap, "%s to %s", pa, pb);
}

lh_status lh_engine_verify_replicas(lh_engine *e)
{
    int R = e->replicas, me = lh_comm_rank(e->dp);
    lh_status st = LH_OK;
    float failed_stage = 0; /* stage + 1 of a group that disagreed, summed over the job */
    if (R > 1) {
        lh_merkle *tree = NULL;
        uint8_t *all = malloc((size_t)R * 2 * LH_MERKLE_HASH_BYTES);
        size_t bytes = (size_t)lh_stage_param_count(e->model) * sizeof(float);
        st = all ? lh_merkle_build(lh_stage_params(e->model), bytes, VERIFY_CHUNK_BYTES, &tree)
                 : lh_fail(LH_ERR_NOMEM, "engine: out of memory");
        double t0 = lh_now_s();
        if (!st) st = lh_comm_allgather(e->dp, lh_merkle_root(tree), LH_MERKLE_HASH_BYTES, all);
        int differs = 0;
        for (int r = 1; r < R && !st; r++)
            if (memcmp(all, all + (size_t)r * LH_MERKLE_HASH_BYTES, LH_MERKLE_HASH_BYTES)) differs = 1;
        /* Walk down: at each level exchange the two children of the first differing node. */
        size_t node = 0;
        for (int level = tree ? lh_merkle_levels(tree) - 1 : 0; differs && !st && level > 0; level--) {
            uint8_t mine[2 * LH_MERKLE_HASH_BYTES] = {0};
            size_t left = 2 * node, right = left + 1;
            memcpy(mine, lh_merkle_node(tree, level - 1, left), LH_MERKLE_HASH_BYTES);
            const uint8_t *rh = lh_merkle_node(tree, level - 1, right);
            if (rh) memcpy(mine + LH_MERKLE_HASH_BYTES, rh, LH_MERKLE_HASH_BYTES);
            st = lh_comm_allgather(e->dp, mine, sizeof mine, all);
            int left_differs = 0;
            for (int r = 1; r < R; r++)
                if (memcmp(all, all + (size_t)r * sizeof mine, LH_MERKLE_HASH_BYTES)) left_differs = 1;
            node = left_differs ? left : right;
            /* Keep the leaf hashes of every rank for the verdict: the chosen child of each. */
            if (level == 1)
                for (int r = 0; r < R; r++)
                    memmove(all + (size_t)r * LH_MERKLE_HASH_BYTES,
                            all + (size_t)r * sizeof mine + (left_differs ? 0 : LH_MERKLE_HASH_BYTES),
                            LH_MERKLE_HASH_BYTES);
        }
        e->comm_s += elapsed_since(t0);
        if (differs && !st) {
            /* The diverging replicas: those whose leaf differs from the majority (with two, both are named). */
            int best = 0, best_votes = 0;
            for (int a = 0; a < R; a++) {
                int votes = 0;
                for (int b = 0; b < R; b++)
                    votes += !memcmp(all + (size_t)a * LH_MERKLE_HASH_BYTES, all + (size_t)b * LH_MERKLE_HASH_BYTES,
                                     LH_MERKLE_HASH_BYTES);
                if (votes > best_votes) best = a, best_votes = votes;
            }
            char who[256] = "", where[128];
            size_t n = 0;
            for (int r = 0; r < R && n < sizeof who; r++) {
                int odd = 2 * best_votes > R ? memcmp(all + (size_t)r * LH_MERKLE_HASH_BYTES,
                                                      all + (size_t)best * LH_MERKLE_HASH_BYTES, LH_MERKLE_HASH_BYTES)
                                             : 1;
                if (odd)
                    n += (size_t)snprintf(who + n, sizeof who - n, "%sreplica %d (rank %d)", n ? ", " : "", r,
                                          e->dp_world_rank[r]);
            }
            size_t first = node * VERIFY_CHUNK_BYTES / sizeof(float);
            size_t last = first + VERIFY_CHUNK_BYTES / sizeof(float);
            if (last > (size_t)lh_stage_param_count(e->model)) last = (size_t)lh_stage_param_count(e->model);
            describe_range(e, first, last - 1, where, sizeof where);
            st = lh_fail(LH_ERR_MISMATCH,
                         "replicas of stage %d disagree%s: %s %s in %s, chunk %zu (parameters %zu..%zu of the stage)",
                         e->stage, 2 * best_votes > R ? "" : " and no value has a majority", who,
                         2 * best_votes > R ? "differs from the majority" : "hold different values", where, node,
                         first, last - 1);
            failed_stage = (float)(e->stage + 1);
        }
        lh_merkle_free(tree);
        free(all);
    }
    /* Every rank stops together, the others naming the stage whose ranks found it. */
    char mine_msg[1024];
    snprintf(mine_msg, sizeof mine_msg, "%s", lh_last_error());
    float flag = (st == LH_ERR_MISMATCH && me == 0) ? failed_stage : 0;
    lh_status st2 = lh_comm_allreduce_f32(e->world, &flag, 1);
    if (st && st != LH_ERR_MISMATCH) return st;
    if (st2) return st2;
    if (st == LH_ERR_MISMATCH) return lh_fail(LH_ERR_MISMATCH, "%s", mine_msg);
    if (flag > 0)
        return lh_fail(LH_ERR_MISMATCH, "the data-parallel replicas of another stage disagree (its ranks name the "
                                        "chunk); stopping");
    return LH_OK;
}
