/*
 * Pipeline inference (see lh_infer.h).
 *
 * One message format on every hop, sent as length + body on the world
 * communicator (channel 3: frontend -> first stage and stage -> stage;
 * channel 4: last stage -> frontend):
 *
 *   u32 op (1 = batch, 2 = shutdown), u32 n, n x {u32 slot, u32 count, u32 reset},
 *   then the payload: on the first hop the tokens (u32 each), later the rows
 *   (fp32, or one direct-quantization frame of total x C), and back to the
 *   frontend n rows of logits (fp32, vocab_size each).
 *
 * Every field is validated on arrival (slot and count ranges, sizes), so a
 * confused peer is an error naming it, never an out-of-bounds write.
 */
#include "lh_infer.h"

#include <stdlib.h>
#include <string.h>

#include "lh_bytes.h"
#include "lh_checkpoint.h"
#include "lh_compress.h"
#include "lh_generate.h"
#include "lh_log.h"

enum { OP_BATCH = 1, OP_SHUTDOWN = 2 };
enum { CHANNEL_PIPE = 3, CHANNEL_RESULT = 4 };

struct lh_infer {
    lh_comm *world;
    lh_model_config cfg;
    int rank, frontend, stages, replicas, slots, act_bits;
    int stage, replica;            /* -1 on the frontend */
    int *device;                   /* plan devices [replicas * stages] */
    lh_stage *model;               /* workers */
    lh_kv_cache **caches;          /* [slots] */
    lh_quant_ctx *quant;
    lh_quant_params qparams;
    uint8_t *msg;                  /* receive / send buffer */
    size_t msg_cap;
    float *rows;                   /* (max tokens, C) */
    size_t max_tokens;             /* per batch: slots x context */
};

static lh_status send_sized(lh_infer *inf, const void *buf, size_t len, int dst, int channel)
{
    uint64_t len64 = len;
    lh_status st = lh_comm_send(inf->world, &len64, sizeof len64, dst, channel);
    return st ? st : lh_comm_send(inf->world, buf, len, dst, channel);
}

static lh_status recv_sized(lh_infer *inf, int src, int channel, size_t *len)
{
    uint64_t len64 = 0;
    lh_status st = lh_comm_recv(inf->world, &len64, sizeof len64, src, channel);
    if (st) return st;
    if (len64 > inf->msg_cap)
        return lh_fail(LH_ERR_COMM, "inference: rank %d announced %llu bytes, more than %zu", src,
                       (unsigned long long)len64, inf->msg_cap);
    *len = (size_t)len64;
    return lh_comm_recv(inf->world, inf->msg, (size_t)len64, src, channel);
}

static size_t header_bytes(int n) { return 8 + (size_t)n * 12; }

/* Parse and check a batch header; *total = tokens in it. */
static lh_status parse_header(lh_infer *inf, const uint8_t *m, size_t len, int src, uint32_t *op, int *n,
                              lh_infer_entry *entries, size_t *total)
{
    if (len < 8) return lh_fail(LH_ERR_COMM, "inference: %zu-byte message from rank %d is too short", len, src);
    *op = lh_get_le32(m);
    uint32_t count = lh_get_le32(m + 4);
    if (*op == OP_SHUTDOWN) return LH_OK;
    if (*op != OP_BATCH || count < 1 || count > (uint32_t)inf->slots || len < header_bytes((int)count))
        return lh_fail(LH_ERR_COMM, "inference: malformed batch header from rank %d (op %u, %u entries)", src, *op,
                       count);
    *n = (int)count;
    *total = 0;
    for (int i = 0; i < *n; i++) {
        const uint8_t *e = m + 8 + (size_t)i * 12;
        entries[i].slot = (int)lh_get_le32(e);
        entries[i].count = (int)lh_get_le32(e + 4);
        entries[i].reset = (int)lh_get_le32(e + 8);
        if (entries[i].slot < 0 || entries[i].slot >= inf->slots || entries[i].count < 1 ||
            entries[i].count > inf->cfg.max_seq_len || entries[i].reset > 1)
            return lh_fail(LH_ERR_COMM, "inference: batch entry %d from rank %d is out of range (slot %d, count %d)",
                           i, src, entries[i].slot, entries[i].count);
        *total += (size_t)entries[i].count;
    }
    return LH_OK;
}

static void write_header(uint8_t *m, uint32_t op, int n, const lh_infer_entry *entries)
{
    lh_put_le32(m, op);
    lh_put_le32(m + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t *e = m + 8 + (size_t)i * 12;
        lh_put_le32(e, (uint32_t)entries[i].slot);
        lh_put_le32(e + 4, (uint32_t)entries[i].count);
        lh_put_le32(e + 8, (uint32_t)entries[i].reset);
    }
}

lh_status lh_infer_create(const lh_infer_options *o, const lh_plan *plan, lh_comm *world, lh_infer **out)
{
    *out = NULL;
    int size = lh_comm_size(world), rank = lh_comm_rank(world);
    if (plan->stages * plan->replicas + 1 != size)
        return lh_fail(LH_ERR_MISMATCH, "inference: the plan needs %d x %d workers plus a frontend = %d ranks, not %d",
                       plan->stages, plan->replicas, plan->stages * plan->replicas + 1, size);
    if (o->frontend < 0 || o->frontend >= size || lh_plan_find_device(plan, o->frontend, NULL, NULL))
        return lh_fail(LH_ERR_INVALID_ARG, "inference: the frontend must be the one rank outside the plan");
    if (o->slots < 1 || o->slots > 4096) return lh_fail(LH_ERR_INVALID_ARG, "inference: slots must be 1..4096");
    if (o->act_bits < 0 || o->act_bits > 8) return lh_fail(LH_ERR_INVALID_ARG, "inference: act_bits must be 0..8");
    lh_model_config cfg = o->config;
    lh_status st = lh_model_config_check(&cfg);
    if (st) return st;
    lh_infer *inf = calloc(1, sizeof *inf);
    if (!inf) return lh_fail(LH_ERR_NOMEM, "inference: out of memory");
    inf->world = world;
    inf->cfg = cfg;
    inf->rank = rank;
    inf->frontend = o->frontend;
    inf->stages = plan->stages;
    inf->replicas = plan->replicas;
    inf->slots = o->slots;
    inf->act_bits = o->act_bits;
    inf->stage = inf->replica = -1;
    inf->max_tokens = (size_t)o->slots * (size_t)cfg.max_seq_len;
    size_t C = (size_t)cfg.channels;
    inf->device = malloc((size_t)plan->stages * plan->replicas * sizeof(int));
    if (inf->device) memcpy(inf->device, plan->device, (size_t)plan->stages * plan->replicas * sizeof(int));
    inf->qparams = lh_quant_params_default(o->act_bits ? o->act_bits : 8);
    size_t quant = o->act_bits ? lh_quant_bound(&inf->qparams, inf->max_tokens, C) : 0;
    size_t rows = inf->max_tokens * C * sizeof(float), logits = (size_t)o->slots * cfg.vocab_size * sizeof(float);
    inf->msg_cap = header_bytes(o->slots) + (rows > quant ? rows : quant) + (logits > rows ? logits : 0);
    inf->msg = malloc(inf->msg_cap);
    inf->rows = malloc(rows);
    if (!inf->device || !inf->msg || !inf->rows) st = lh_fail(LH_ERR_NOMEM, "inference: out of memory");
    if (!st && o->act_bits) st = lh_quant_ctx_create(&inf->quant);
    if (!st && rank != o->frontend) {
        lh_plan_find_device(plan, rank, &inf->replica, &inf->stage);
        lh_stage_spec spec = {plan->first_layer[inf->stage], plan->num_layers[inf->stage], inf->stage == 0,
                              inf->stage == plan->stages - 1};
        st = lh_stage_create(&cfg, &spec, 1, 1, 1, &inf->model);
        if (!st && o->checkpoint) {
            lh_checkpoint_format format;
            lh_model_config file_cfg;
            st = lh_checkpoint_read_config(o->checkpoint, &format, &file_cfg);
            if (!st && format == LH_CKPT_FORMAT_LLMC) st = lh_llmc_load(inf->model, o->checkpoint);
            else if (!st) st = lh_ckpt_load_parts(inf->model, &o->checkpoint, 1, NULL);
        } else if (!st) {
            lh_stage_init_params(inf->model, o->seed);
        }
        inf->caches = st ? NULL : calloc((size_t)o->slots, sizeof *inf->caches);
        if (!st && !inf->caches) st = lh_fail(LH_ERR_NOMEM, "inference: out of memory");
        for (int i = 0; i < o->slots && !st; i++) st = lh_kv_cache_create(inf->model, &inf->caches[i]);
    }
    st = lh_comm_agree(world, st, "inference start-up"); /* everyone learns whether everyone is ready */
    if (st) {
        lh_infer_free(inf);
        return lh_fail_prefix(st, "rank %d", rank);
    }
    *out = inf;
    return LH_OK;
}

void lh_infer_free(lh_infer *inf)
{
    if (!inf) return;
    if (inf->caches)
        for (int i = 0; i < inf->slots; i++) lh_kv_cache_free(inf->caches[i]);
    free(inf->caches);
    lh_stage_free(inf->model);
    lh_quant_ctx_free(inf->quant);
    free(inf->device);
    free(inf->msg);
    free(inf->rows);
    free(inf);
}

int lh_infer_replicas(const lh_infer *inf) { return inf->replicas; }
int lh_infer_slots(const lh_infer *inf) { return inf->slots; }
int lh_infer_context(const lh_infer *inf) { return inf->cfg.max_seq_len; }

static int device_of(const lh_infer *inf, int replica, int stage) { return inf->device[replica * inf->stages + stage]; }

/* Run this stage over a batch: rows in e->rows (or tokens), rows out in place; logits for the last stage. */
static lh_status run_stage(lh_infer *inf, int n, const lh_infer_entry *entries, const uint32_t *tokens, float *logits)
{
    size_t C = (size_t)inf->cfg.channels, k = 0;
    for (int i = 0; i < n; i++) {
        lh_kv_cache *cache = inf->caches[entries[i].slot];
        if (entries[i].reset) lh_kv_cache_reset(cache);
        for (int t = 0; t < entries[i].count; t++, k++) {
            const float *out_logits = NULL;
            float *row = inf->rows + k * C;
            lh_status st = lh_kv_cache_step_stage(cache, tokens ? (int32_t)tokens[k] : 0, tokens ? NULL : row,
                                                  inf->stage == inf->stages - 1 ? NULL : row,
                                                  inf->stage == inf->stages - 1 ? &out_logits : NULL);
            if (st) return lh_fail_prefix(st, "slot %d", entries[i].slot);
            if (out_logits && t == entries[i].count - 1)
                memcpy(logits + (size_t)i * inf->cfg.vocab_size, out_logits, (size_t)inf->cfg.vocab_size * sizeof(float));
        }
    }
    return LH_OK;
}

/* Send header + rows (fp32 or quantized) to `dst`. */
static lh_status forward_rows(lh_infer *inf, int n, const lh_infer_entry *entries, size_t total, int dst)
{
    size_t C = (size_t)inf->cfg.channels, head = header_bytes(n), len = 0;
    write_header(inf->msg, OP_BATCH, n, entries);
    lh_status st = LH_OK;
    if (inf->act_bits)
        st = lh_quant_encode(inf->quant, &inf->qparams, inf->rows, total, C, NULL, inf->msg + head, inf->msg_cap - head,
                             &len);
    else {
        len = total * C * sizeof(float);
        memcpy(inf->msg + head, inf->rows, len);
    }
    return st ? st : send_sized(inf, inf->msg, head + len, dst, CHANNEL_PIPE);
}

lh_status lh_infer_serve(lh_infer *inf)
{
    if (inf->rank == inf->frontend) return lh_fail(LH_ERR_INVALID_ARG, "inference: the frontend does not serve");
    int src = inf->stage == 0 ? inf->frontend : device_of(inf, inf->replica, inf->stage - 1);
    int last = inf->stage == inf->stages - 1;
    lh_infer_entry *entries = malloc((size_t)inf->slots * sizeof *entries);
    float *logits = last ? malloc((size_t)inf->slots * inf->cfg.vocab_size * sizeof(float)) : NULL;
    uint32_t *tokens = inf->stage == 0 ? malloc(inf->max_tokens * sizeof *tokens) : NULL;
    lh_status st = (!entries || (last && !logits) || (inf->stage == 0 && !tokens))
                       ? lh_fail(LH_ERR_NOMEM, "inference: out of memory")
                       : LH_OK;
    size_t C = (size_t)inf->cfg.channels;
    for (;;) {
        size_t len = 0, total = 0;
        uint32_t op = 0;
        int n = 0;
        if (!st) st = recv_sized(inf, src, CHANNEL_PIPE, &len);
        if (!st) st = parse_header(inf, inf->msg, len, src, &op, &n, entries, &total);
        if (st) break;
        if (op == OP_SHUTDOWN) { /* pass it down the pipeline and stop */
            if (!last) st = send_sized(inf, inf->msg, 8, device_of(inf, inf->replica, inf->stage + 1), CHANNEL_PIPE);
            break;
        }
        size_t head = header_bytes(n), body = len - head;
        if (total > inf->max_tokens) {
            st = lh_fail(LH_ERR_COMM, "inference: batch of %zu tokens from rank %d exceeds %zu", total, src,
                         inf->max_tokens);
            break;
        }
        if (inf->stage == 0) {
            if (body != total * 4) st = lh_fail(LH_ERR_COMM, "inference: token payload of %zu bytes from the frontend, expected %zu", body, total * 4);
            else memcpy(tokens, inf->msg + head, body);
        } else if (inf->act_bits) {
            st = lh_quant_decode(inf->quant, inf->msg + head, body, inf->rows, total, C);
        } else if (body != total * C * sizeof(float)) {
            st = lh_fail(LH_ERR_COMM, "inference: %zu bytes of rows from rank %d, expected %zu", body, src,
                         total * C * sizeof(float));
        } else {
            memcpy(inf->rows, inf->msg + head, body);
        }
        if (!st) st = run_stage(inf, n, entries, inf->stage == 0 ? tokens : NULL, logits);
        if (!st && !last) st = forward_rows(inf, n, entries, total, device_of(inf, inf->replica, inf->stage + 1));
        if (!st && last)
            st = send_sized(inf, logits, (size_t)n * inf->cfg.vocab_size * sizeof(float), inf->frontend, CHANNEL_RESULT);
        if (st) break;
    }
    free(entries);
    free(logits);
    free(tokens);
    return st ? lh_fail_prefix(st, "inference worker rank %d (stage %d, replica %d)", inf->rank, inf->stage,
                               inf->replica)
              : LH_OK;
}

lh_status lh_infer_step(lh_infer *inf, int replica, int n, const lh_infer_entry *entries, const int32_t *tokens,
                        float *logits)
{
    if (inf->rank != inf->frontend) return lh_fail(LH_ERR_INVALID_ARG, "inference: only the frontend steps");
    if (replica < 0 || replica >= inf->replicas || n < 1 || n > inf->slots)
        return lh_fail(LH_ERR_INVALID_ARG, "inference: replica %d / %d entries out of range", replica, n);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (entries[i].slot < 0 || entries[i].slot >= inf->slots || entries[i].count < 1)
            return lh_fail(LH_ERR_INVALID_ARG, "inference: entry %d (slot %d, count %d) out of range", i,
                           entries[i].slot, entries[i].count);
        total += (size_t)entries[i].count;
    }
    if (total > inf->max_tokens) return lh_fail(LH_ERR_INVALID_ARG, "inference: %zu tokens in one batch", total);
    size_t head = header_bytes(n);
    write_header(inf->msg, OP_BATCH, n, entries);
    for (size_t k = 0; k < total; k++) lh_put_le32(inf->msg + head + 4 * k, (uint32_t)tokens[k]);
    lh_status st = send_sized(inf, inf->msg, head + 4 * total, device_of(inf, replica, 0), CHANNEL_PIPE);
    size_t len = 0, want = (size_t)n * inf->cfg.vocab_size * sizeof(float);
    int last = device_of(inf, replica, inf->stages - 1);
    if (!st) st = recv_sized(inf, last, CHANNEL_RESULT, &len);
    if (!st && len != want)
        st = lh_fail(LH_ERR_COMM, "inference: %zu bytes of logits from rank %d, expected %zu", len, last, want);
    if (!st) memcpy(logits, inf->msg, want);
    return st ? lh_fail_prefix(st, "inference step on replica %d", replica) : LH_OK;
}

lh_status lh_infer_shutdown(lh_infer *inf)
{
    if (inf->rank != inf->frontend) return lh_fail(LH_ERR_INVALID_ARG, "inference: only the frontend shuts down");
    uint8_t m[8];
    lh_put_le32(m, OP_SHUTDOWN);
    lh_put_le32(m + 4, 0);
    lh_status st = LH_OK;
    for (int r = 0; r < inf->replicas && !st; r++) st = send_sized(inf, m, sizeof m, device_of(inf, r, 0), CHANNEL_PIPE);
    return st;
}
