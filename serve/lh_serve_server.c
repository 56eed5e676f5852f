/*
 * The HTTP server and its scheduler.
 *
 * Threads: libmicrohttpd runs one thread per connection (so a handler may
 * block until its request is done, and a streaming reader may block until
 * the next token), and ONE scheduler thread owns the backend.  They meet in
 * a job: the connection creates it and queues it; the scheduler admits it
 * into a slot, appends sampled tokens to it and marks it done; the
 * connection reads what was appended.  One mutex guards the queue, the slot
 * table, every job's shared fields and the metrics; one condition variable
 * (`progress`) is broadcast whenever any job advances, which is simpler than
 * one per job and cheap at the tens of concurrent requests a replica holds.
 *
 * Why the scheduler steps every active request by exactly one token per
 * iteration: it keeps all requests of a replica in lock-step, so each
 * iteration is one batched decode call per replica (prefills of newly
 * admitted requests first), which is the shape a pipeline of stages needs
 * to send one micro-batch of activations per step.  Routing puts a new
 * request on the replica with the fewest active requests (ties to the lowest
 * index), which balances the batch sizes and so the step times.
 *
 * Lifetimes: a job has two references, the scheduler's and the client's.
 * A streaming client that disconnects drops its reference early and marks
 * the job abandoned; the scheduler then releases the slot at its next
 * iteration instead of generating for nobody.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "lh_generate.h"
#include "lh_log.h"
#include "lh_serve.h"
#include "lh_time.h"

#define LATENCY_WINDOW 4096

typedef struct job {
    uint64_t id;
    lh_serve_request req;
    /* shared (under the server mutex) */
    int32_t *out; /* req.max_tokens capacity */
    int n_out;
    int done, failed, stopped_at_eot, abandoned, refs;
    char error[256];
    double t_arrival, t_first;
    struct job *next; /* queue link */
    /* scheduler only */
    int replica, slot, needs_prefill, has_token;
    uint64_t rng;
    int32_t last_token;
} job;

struct lh_server {
    lh_server_options opt;
    lh_serve_backend be;
    const lh_tokenizer *tok;
    int32_t eot;
    struct MHD_Daemon *daemon;
    int port;
    pthread_t scheduler;
    int scheduler_started;
    pthread_mutex_t mu;
    pthread_cond_t work, progress;
    int stopping;
    job *queue_head, *queue_tail;
    int queued, active;
    job **slots;          /* replicas * slots_per_replica; NULL = free */
    int *replica_active;  /* active requests per replica */
    uint64_t next_id;
    /* metrics */
    uint64_t requests_total, completions_ok, completions_failed, rejected_4xx, tokens_generated;
    uint64_t decode_steps, decode_rows;
    double start_s, busy_s;
    double latency[LATENCY_WINDOW], ttft[LATENCY_WINDOW];
    size_t latency_count, ttft_count;
};

/* ---- jobs ---- */

static void job_unref_locked(job *j)
{
    if (--j->refs > 0) return;
    lh_serve_request_clear(&j->req);
    free(j->out);
    free(j);
}

static void record(double *ring, size_t *count, double value)
{
    ring[*count % LATENCY_WINDOW] = value;
    (*count)++;
}

/* Mark done (ok or failed), wake readers.  Caller holds the mutex. */
static void job_finish_locked(lh_server *s, job *j, const char *error)
{
    if (j->done) return;
    j->done = 1;
    if (error) {
        j->failed = 1;
        snprintf(j->error, sizeof j->error, "%s", error);
        s->completions_failed++;
    } else {
        s->completions_ok++;
        record(s->latency, &s->latency_count, lh_now_s() - j->t_arrival);
    }
    pthread_cond_broadcast(&s->progress);
}

/* Give a slot back and drop the scheduler's reference.  Caller holds the mutex. */
static void slot_free_locked(lh_server *s, job *j)
{
    s->be.release(s->be.ctx, j->replica, j->slot);
    s->slots[j->replica * s->be.slots_per_replica + j->slot] = NULL;
    s->replica_active[j->replica]--;
    s->active--;
    job_unref_locked(j);
}

/* ---- scheduler ---- */

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Move queued requests into free slots of the least-loaded replicas.  Caller holds the mutex. */
static void admit_locked(lh_server *s)
{
    int S = s->be.slots_per_replica;
    while (s->queue_head) {
        int best = -1;
        for (int r = 0; r < s->be.replicas; r++)
            if (s->replica_active[r] < S && (best < 0 || s->replica_active[r] < s->replica_active[best])) best = r;
        if (best < 0) return;
        job *j = s->queue_head;
        s->queue_head = j->next;
        if (!s->queue_head) s->queue_tail = NULL;
        s->queued--;
        if (j->abandoned) {
            job_finish_locked(s, j, "the client went away");
            job_unref_locked(j);
            continue;
        }
        int slot = 0;
        while (s->slots[best * S + slot]) slot++;
        s->slots[best * S + slot] = j;
        s->replica_active[best]++;
        s->active++;
        j->replica = best;
        j->slot = slot;
        j->needs_prefill = 1;
        j->has_token = 0;
        j->rng = j->req.has_seed ? j->req.seed : mix64(j->id ^ (uint64_t)(s->start_s * 1e6));
    }
}

/* A token for `j` from `logits` (scheduler only; no lock needed). */
static void sample_into(lh_server *s, job *j, const float *logits)
{
    lh_sampling sp = {.temperature = j->req.temperature, .top_k = j->req.top_k, .seed = j->req.seed};
    j->last_token = lh_sample_token(logits, s->be.vocab_size, &sp, &j->rng);
    j->has_token = 1;
}

/*
 * One iteration's backend work for replica r, outside the lock: prefill the
 * newly admitted slots, then one batched decode of the others.  Jobs that fail
 * get their message in err[] (indexed by slot).
 */
static int step_replica(lh_server *s, int r, job **work, int *slot_ids, int32_t *tokens, const float **rows,
                        char (*err)[256])
{
    int S = s->be.slots_per_replica, n = 0;
    for (int k = 0; k < S; k++) {
        job *j = work[k];
        err[k][0] = 0;
        if (!j) continue;
        if (j->needs_prefill) {
            const float *logits = NULL;
            lh_status st = s->be.prefill(s->be.ctx, r, k, j->req.prompt, j->req.prompt_len, &logits);
            if (st) {
                snprintf(err[k], sizeof err[k], "backend prefill failed (%s): %s", lh_status_name(st), lh_last_error());
                continue;
            }
            j->needs_prefill = 0;
            sample_into(s, j, logits);
        } else {
            slot_ids[n] = k;
            tokens[n] = j->last_token;
            n++;
        }
    }
    if (n == 0) return 0;
    lh_status st = s->be.decode(s->be.ctx, r, n, slot_ids, tokens, rows);
    for (int i = 0; i < n; i++) {
        if (st)
            snprintf(err[slot_ids[i]], sizeof err[0], "backend decode failed (%s): %s", lh_status_name(st),
                     lh_last_error());
        else
            sample_into(s, work[slot_ids[i]], rows[i]);
    }
    return n;
}

static void *scheduler_main(void *arg)
{
    lh_server *s = arg;
    int R = s->be.replicas, S = s->be.slots_per_replica;
    job **work = calloc((size_t)R * S, sizeof *work);
    int *slot_ids = calloc((size_t)S, sizeof *slot_ids);
    int32_t *tokens = calloc((size_t)S, sizeof *tokens);
    const float **rows = calloc((size_t)S, sizeof *rows);
    char(*err)[256] = calloc((size_t)R * S, sizeof *err);
    int oom = !work || !slot_ids || !tokens || !rows || !err;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping && !oom) {
        /* drop what nobody waits for any more */
        for (int i = 0; i < R * S; i++) {
            job *j = s->slots[i];
            if (j && j->abandoned) {
                job_finish_locked(s, j, "the client went away");
                slot_free_locked(s, j);
            }
        }
        admit_locked(s);
        if (s->active == 0) {
            pthread_cond_wait(&s->work, &s->mu);
            continue;
        }
        memcpy(work, s->slots, (size_t)R * S * sizeof *work);
        pthread_mutex_unlock(&s->mu);

        double t0 = lh_now_s();
        uint64_t steps = 0, decoded = 0;
        for (int r = 0; r < R; r++) {
            int n = 0;
            for (int k = 0; k < S; k++) n += work[(size_t)r * S + k] != NULL;
            if (n == 0) continue;
            n = step_replica(s, r, work + (size_t)r * S, slot_ids, tokens, rows, err + (size_t)r * S);
            steps += n > 0;
            decoded += (uint64_t)n;
        }
        double t1 = lh_now_s();

        pthread_mutex_lock(&s->mu);
        s->busy_s += t1 - t0;
        s->decode_steps += steps;
        s->decode_rows += decoded;
        for (int i = 0; i < R * S; i++) {
            job *j = work[i];
            if (!j) continue;
            if (err[i][0]) {
                LH_WARN("serve: request %llu: %s", (unsigned long long)j->id, err[i]);
                job_finish_locked(s, j, err[i]);
                slot_free_locked(s, j);
                continue;
            }
            if (!j->has_token) continue;
            if (j->t_first == 0) {
                j->t_first = t1;
                record(s->ttft, &s->ttft_count, t1 - j->t_arrival);
            }
            if (s->eot >= 0 && j->last_token == s->eot) {
                j->stopped_at_eot = 1;
            } else {
                j->out[j->n_out++] = j->last_token;
                s->tokens_generated++;
            }
            if (j->stopped_at_eot || j->n_out >= j->req.max_tokens) {
                job_finish_locked(s, j, NULL);
                slot_free_locked(s, j);
            }
        }
        pthread_cond_broadcast(&s->progress);
    }
    /* shutting down (or out of memory): fail everything still here */
    const char *why = oom ? "the scheduler ran out of memory" : "the server is shutting down";
    for (int i = 0; i < R * S; i++)
        if (s->slots[i]) {
            job *j = s->slots[i];
            job_finish_locked(s, j, why);
            slot_free_locked(s, j);
        }
    while (s->queue_head) {
        job *j = s->queue_head;
        s->queue_head = j->next;
        s->queued--;
        job_finish_locked(s, j, why);
        job_unref_locked(j);
    }
    s->queue_tail = NULL;
    s->stopping = 1;
    pthread_cond_broadcast(&s->progress);
    pthread_mutex_unlock(&s->mu);
    free(work);
    free(slot_ids);
    free(tokens);
    free(rows);
    free(err);
    return NULL;
}

/* ---- responses ---- */

typedef struct conn {
    char *body;
    size_t len, cap;
    int too_big;
} conn;

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, const char *text,
                                 size_t len, const char *allow)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_object *obj)
{
    size_t len = 0;
    const char *text = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                         &len);
    enum MHD_Result ret = send_text(c, status, "application/json", text, len, NULL);
    json_object_put(obj);
    return ret;
}

static json_object *error_object(const char *message, const char *type)
{
    json_object *e = json_object_new_object(), *root = json_object_new_object();
    json_object_object_add(e, "message", json_object_new_string(message));
    json_object_object_add(e, "type", json_object_new_string(type));
    json_object_object_add(root, "error", e);
    return root;
}

static enum MHD_Result send_error(lh_server *s, struct MHD_Connection *c, unsigned status, const char *type,
                                  const char *message, const char *allow)
{
    if (status >= 400 && status < 500) {
        pthread_mutex_lock(&s->mu);
        s->rejected_4xx++;
        pthread_mutex_unlock(&s->mu);
    }
    json_object *obj = error_object(message, type);
    size_t len = 0;
    const char *text = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                         &len);
    enum MHD_Result ret = send_text(c, status, "application/json", text, len, allow);
    json_object_put(obj);
    return ret;
}

/*
 * Text of `n` new tokens as valid UTF-8: bytes of an incomplete trailing
 * character stay in carry (at most 3) unless `final`.  Returns a malloc'd
 * string (length in *len) or NULL when out of memory.
 */
static char *tokens_text(const lh_server *s, const int32_t *ids, int n, uint8_t *carry, size_t *carry_len, int final,
                         size_t *len)
{
    size_t cap = *carry_len + lh_tokenizer_decode_bound(s->tok, (size_t)n) + 1;
    uint8_t *bytes = malloc(cap);
    char *out = malloc(3 * cap + 1);
    if (!bytes || !out) {
        free(bytes);
        free(out);
        return NULL;
    }
    memcpy(bytes, carry, *carry_len);
    size_t total = *carry_len;
    for (int i = 0; i < n; i++) {
        const uint8_t *tb;
        size_t tl;
        if (lh_tokenizer_token_bytes(s->tok, (uint32_t)ids[i], &tb, &tl) == LH_OK) {
            memcpy(bytes + total, tb, tl);
            total += tl;
        }
    }
    size_t used = 0;
    *len = lh_serve_utf8_sanitize(bytes, total, final, out, &used);
    out[*len] = 0;
    *carry_len = total - used;
    if (*carry_len > 8) *carry_len = 8; /* cannot happen: an incomplete sequence is < 4 bytes */
    memcpy(carry, bytes + used, *carry_len);
    free(bytes);
    return out;
}

static json_object *completion_object(const lh_server *s, const job *j, const char *text, size_t text_len,
                                      const int32_t *ids, int n, const char *finish)
{
    char id[48];
    snprintf(id, sizeof id, "cmpl-%llu", (unsigned long long)j->id);
    json_object *root = json_object_new_object(), *choice = json_object_new_object();
    json_object *choices = json_object_new_array(), *tok = json_object_new_array();
    json_object_object_add(root, "id", json_object_new_string(id));
    json_object_object_add(root, "object", json_object_new_string("text_completion"));
    json_object_object_add(root, "created", json_object_new_int64((int64_t)time(NULL)));
    json_object_object_add(root, "model", json_object_new_string(s->opt.model_name));
    json_object_object_add(choice, "text", json_object_new_string_len(text, (int)text_len));
    json_object_object_add(choice, "index", json_object_new_int(0));
    json_object_object_add(choice, "logprobs", NULL);
    json_object_object_add(choice, "finish_reason", finish ? json_object_new_string(finish) : NULL);
    for (int i = 0; i < n; i++) json_object_array_add(tok, json_object_new_int(ids[i]));
    json_object_object_add(choice, "token_ids", tok);
    json_object_array_add(choices, choice);
    json_object_object_add(root, "choices", choices);
    return root;
}

/* ---- streaming ---- */

typedef struct stream {
    lh_server *s;
    job *j;
    int sent;       /* tokens already turned into events */
    int finished;   /* [DONE] (or the error event) is in `chunk` */
    uint8_t carry[8];
    size_t carry_len;
    char *chunk;
    size_t chunk_len, chunk_pos;
} stream;

static int append(char **buf, size_t *len, const char *text, size_t n)
{
    char *grown = realloc(*buf, *len + n + 1);
    if (!grown) return -1;
    memcpy(grown + *len, text, n);
    *len += n;
    grown[*len] = 0;
    *buf = grown;
    return 0;
}

static int append_event(char **buf, size_t *len, json_object *obj)
{
    size_t n = 0;
    const char *text = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                         &n);
    int rc = append(buf, len, "data: ", 6) || append(buf, len, text, n) || append(buf, len, "\n\n", 2);
    json_object_put(obj);
    return rc;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *st = cls;
    lh_server *s = st->s;
    if (st->chunk_pos == st->chunk_len) {
        if (st->finished) return MHD_CONTENT_READER_END_OF_STREAM;
        free(st->chunk);
        st->chunk = NULL;
        st->chunk_len = st->chunk_pos = 0;
        job *j = st->j;
        pthread_mutex_lock(&s->mu);
        while (!j->done && j->n_out == st->sent) pthread_cond_wait(&s->progress, &s->mu);
        int n = j->n_out - st->sent, done = j->done, failed = j->failed;
        int32_t *ids = n > 0 ? malloc((size_t)n * sizeof *ids) : NULL;
        if (ids) memcpy(ids, j->out + st->sent, (size_t)n * sizeof *ids);
        char error[256];
        snprintf(error, sizeof error, "%s", j->error);
        const char *finish = j->stopped_at_eot ? "stop" : "length";
        pthread_mutex_unlock(&s->mu);
        if (n > 0 && !ids) return MHD_CONTENT_READER_END_WITH_ERROR;
        int rc = 0;
        if (n > 0) {
            size_t tl = 0;
            char *text = tokens_text(s, ids, n, st->carry, &st->carry_len, 0, &tl);
            if (!text) rc = -1;
            else rc = append_event(&st->chunk, &st->chunk_len, completion_object(s, j, text, tl, ids, n, NULL));
            free(text);
            st->sent += n;
        }
        free(ids);
        if (!rc && done) {
            if (failed) {
                rc = append_event(&st->chunk, &st->chunk_len, error_object(error, "server_error"));
            } else {
                size_t tl = 0;
                char *text = tokens_text(s, NULL, 0, st->carry, &st->carry_len, 1, &tl);
                if (!text) rc = -1;
                else rc = append_event(&st->chunk, &st->chunk_len, completion_object(s, j, text, tl, NULL, 0, finish));
                free(text);
            }
            if (!rc) rc = append(&st->chunk, &st->chunk_len, "data: [DONE]\n\n", 14);
            st->finished = 1;
        }
        if (rc) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (st->chunk_len == 0) return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = st->chunk_len - st->chunk_pos;
    if (n > max) n = max;
    memcpy(buf, st->chunk + st->chunk_pos, n);
    st->chunk_pos += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream *st = cls;
    lh_server *s = st->s;
    pthread_mutex_lock(&s->mu);
    if (!st->j->done) {
        st->j->abandoned = 1;
        pthread_cond_signal(&s->work);
    }
    job_unref_locked(st->j);
    pthread_mutex_unlock(&s->mu);
    free(st->chunk);
    free(st);
}

/* ---- endpoints ---- */

static enum MHD_Result handle_completion(lh_server *s, struct MHD_Connection *c, conn *cn)
{
    if (cn->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body exceeds %zu bytes", s->opt.max_body_bytes);
        return send_error(s, c, MHD_HTTP_CONTENT_TOO_LARGE, "invalid_request_error", msg, NULL);
    }
    lh_serve_limits limits = {.vocab_size = s->be.vocab_size, .context_length = s->be.context_length,
                              .tokenizer = s->tok};
    job *j = calloc(1, sizeof *j);
    if (!j) return send_error(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "server_error", "out of memory", NULL);
    lh_status st = lh_serve_parse_request(cn->body ? cn->body : "", cn->len, &limits, &j->req);
    if (st) {
        free(j);
        if (st == LH_ERR_NOMEM)
            return send_error(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "server_error", lh_last_error(), NULL);
        return send_error(s, c, MHD_HTTP_BAD_REQUEST, "invalid_request_error", lh_last_error(), NULL);
    }
    j->out = malloc((size_t)j->req.max_tokens * sizeof *j->out);
    if (!j->out) {
        lh_serve_request_clear(&j->req);
        free(j);
        return send_error(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "server_error", "out of memory", NULL);
    }
    j->refs = 2;
    j->t_arrival = lh_now_s();

    pthread_mutex_lock(&s->mu);
    const char *refusal = NULL;
    unsigned status = 0;
    if (s->stopping) {
        refusal = "the server is shutting down";
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
    } else if (s->queued >= s->opt.max_queue) {
        refusal = "too many concurrent requests: the queue is full, retry later";
        status = MHD_HTTP_TOO_MANY_REQUESTS;
    }
    if (refusal) {
        pthread_mutex_unlock(&s->mu);
        lh_serve_request_clear(&j->req);
        free(j->out);
        free(j);
        return send_error(s, c, status, status == MHD_HTTP_TOO_MANY_REQUESTS ? "rate_limit_error" : "server_error",
                          refusal, NULL);
    }
    j->id = ++s->next_id;
    if (s->queue_tail) s->queue_tail->next = j;
    else s->queue_head = j;
    s->queue_tail = j;
    s->queued++;
    pthread_cond_signal(&s->work);

    if (j->req.stream) {
        pthread_mutex_unlock(&s->mu);
        stream *stm = calloc(1, sizeof *stm);
        struct MHD_Response *resp =
            stm ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, stm, stream_free) : NULL;
        if (!resp) {
            pthread_mutex_lock(&s->mu);
            j->abandoned = 1;
            job_unref_locked(j);
            pthread_mutex_unlock(&s->mu);
            free(stm);
            return MHD_NO;
        }
        stm->s = s;
        stm->j = j;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
        MHD_destroy_response(resp);
        return ret;
    }

    while (!j->done) pthread_cond_wait(&s->progress, &s->mu);
    int failed = j->failed;
    char error[256];
    snprintf(error, sizeof error, "%s", j->error);
    pthread_mutex_unlock(&s->mu); /* the job is done: its fields no longer change */
    enum MHD_Result ret;
    if (failed) {
        ret = send_error(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "server_error", error, NULL);
    } else {
        uint8_t carry[8];
        size_t carry_len = 0, tl = 0;
        char *text = tokens_text(s, j->out, j->n_out, carry, &carry_len, 1, &tl);
        if (!text) {
            ret = send_error(s, c, MHD_HTTP_INTERNAL_SERVER_ERROR, "server_error", "out of memory", NULL);
        } else {
            json_object *root =
                completion_object(s, j, text, tl, j->out, j->n_out, j->stopped_at_eot ? "stop" : "length");
            json_object *usage = json_object_new_object();
            json_object_object_add(usage, "prompt_tokens", json_object_new_int(j->req.prompt_len));
            json_object_object_add(usage, "completion_tokens", json_object_new_int(j->n_out));
            json_object_object_add(usage, "total_tokens", json_object_new_int(j->req.prompt_len + j->n_out));
            json_object_object_add(root, "usage", usage);
            ret = send_json(c, MHD_HTTP_OK, root);
        }
        free(text);
    }
    pthread_mutex_lock(&s->mu);
    job_unref_locked(j);
    pthread_mutex_unlock(&s->mu);
    return ret;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *ring, size_t count, double p)
{
    size_t n = count < LATENCY_WINDOW ? count : LATENCY_WINDOW;
    if (n == 0) return 0;
    double *v = malloc(n * sizeof *v);
    if (!v) return 0; /* out of memory: no percentile rather than invalid JSON */
    memcpy(v, ring, n * sizeof *v);
    qsort(v, n, sizeof *v, compare_doubles);
    size_t idx = (size_t)ceil(p * (double)n) - 1; /* nearest rank */
    if (idx >= n) idx = n - 1;
    double r = v[idx];
    free(v);
    return r;
}

void lh_server_get_metrics(lh_server *s, lh_server_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_lock(&s->mu);
    m->requests_total = s->requests_total;
    m->completions_ok = s->completions_ok;
    m->completions_failed = s->completions_failed;
    m->rejected_4xx = s->rejected_4xx;
    m->active = s->active;
    m->queued = s->queued;
    m->tokens_generated = s->tokens_generated;
    m->uptime_s = lh_now_s() - s->start_s;
    m->tokens_per_s = m->uptime_s > 0 ? (double)s->tokens_generated / m->uptime_s : 0;
    m->busy_tokens_per_s = s->busy_s > 0 ? (double)s->tokens_generated / s->busy_s : 0;
    m->latency_p50_s = percentile(s->latency, s->latency_count, 0.50);
    m->latency_p99_s = percentile(s->latency, s->latency_count, 0.99);
    m->ttft_p50_s = percentile(s->ttft, s->ttft_count, 0.50);
    m->ttft_p99_s = percentile(s->ttft, s->ttft_count, 0.99);
    m->decode_steps = s->decode_steps;
    m->mean_decode_batch = s->decode_steps ? (double)s->decode_rows / (double)s->decode_steps : 0;
    pthread_mutex_unlock(&s->mu);
}

size_t lh_server_metrics_format(const lh_server_metrics *m, int prometheus, char *out, size_t cap)
{
    int n;
    if (!prometheus) {
        n = snprintf(out, cap,
                     "{\"requests_total\":%llu,\"completions_ok\":%llu,\"completions_failed\":%llu,"
                     "\"rejected_4xx\":%llu,\"requests_active\":%d,\"requests_queued\":%d,\"tokens_generated\":%llu,"
                     "\"uptime_s\":%.3f,\"tokens_per_s\":%.3f,\"busy_tokens_per_s\":%.3f,\"latency_p50_s\":%.6f,"
                     "\"latency_p99_s\":%.6f,\"ttft_p50_s\":%.6f,\"ttft_p99_s\":%.6f,\"decode_steps\":%llu,"
                     "\"mean_decode_batch\":%.3f}",
                     (unsigned long long)m->requests_total, (unsigned long long)m->completions_ok,
                     (unsigned long long)m->completions_failed, (unsigned long long)m->rejected_4xx, m->active,
                     m->queued, (unsigned long long)m->tokens_generated, m->uptime_s, m->tokens_per_s,
                     m->busy_tokens_per_s, m->latency_p50_s, m->latency_p99_s, m->ttft_p50_s, m->ttft_p99_s,
                     (unsigned long long)m->decode_steps, m->mean_decode_batch);
    } else {
        n = snprintf(out, cap,
                     "# TYPE longhaul_requests_total counter\nlonghaul_requests_total %llu\n"
                     "# TYPE longhaul_completions_total counter\n"
                     "longhaul_completions_total{result=\"ok\"} %llu\nlonghaul_completions_total{result=\"failed\"} %llu\n"
                     "# TYPE longhaul_rejected_total counter\nlonghaul_rejected_total %llu\n"
                     "# TYPE longhaul_requests_active gauge\nlonghaul_requests_active %d\n"
                     "# TYPE longhaul_requests_queued gauge\nlonghaul_requests_queued %d\n"
                     "# TYPE longhaul_tokens_generated_total counter\nlonghaul_tokens_generated_total %llu\n"
                     "# TYPE longhaul_tokens_per_second gauge\nlonghaul_tokens_per_second %.3f\n"
                     "# TYPE longhaul_request_latency_seconds summary\n"
                     "longhaul_request_latency_seconds{quantile=\"0.5\"} %.6f\n"
                     "longhaul_request_latency_seconds{quantile=\"0.99\"} %.6f\n"
                     "# TYPE longhaul_time_to_first_token_seconds summary\n"
                     "longhaul_time_to_first_token_seconds{quantile=\"0.5\"} %.6f\n"
                     "longhaul_time_to_first_token_seconds{quantile=\"0.99\"} %.6f\n"
                     "# TYPE longhaul_mean_decode_batch gauge\nlonghaul_mean_decode_batch %.3f\n",
                     (unsigned long long)m->requests_total, (unsigned long long)m->completions_ok,
                     (unsigned long long)m->completions_failed, (unsigned long long)m->rejected_4xx, m->active,
                     m->queued, (unsigned long long)m->tokens_generated, m->tokens_per_s, m->latency_p50_s,
                     m->latency_p99_s, m->ttft_p50_s, m->ttft_p99_s, m->mean_decode_batch);
    }
    return n < 0 ? 0 : (size_t)n;
}

static enum MHD_Result handle_metrics(lh_server *s, struct MHD_Connection *c)
{
    lh_server_metrics m;
    lh_server_get_metrics(s, &m);
    const char *format = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
    int prometheus = format && strcmp(format, "prometheus") == 0;
    if (format && !prometheus && strcmp(format, "json") != 0)
        return send_error(s, c, MHD_HTTP_BAD_REQUEST, "invalid_request_error",
                          "/metrics?format= takes json or prometheus", NULL);
    char text[2048];
    size_t n = lh_server_metrics_format(&m, prometheus, text, sizeof text);
    if (n >= sizeof text) n = sizeof text - 1;
    return send_text(c, MHD_HTTP_OK, prometheus ? "text/plain; version=0.0.4" : "application/json", text, n, NULL);
}

static enum MHD_Result handle_health(lh_server *s, struct MHD_Connection *c)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string("ok"));
    json_object_object_add(o, "model", json_object_new_string(s->opt.model_name));
    json_object_object_add(o, "replicas", json_object_new_int(s->be.replicas));
    json_object_object_add(o, "slots_per_replica", json_object_new_int(s->be.slots_per_replica));
    json_object_object_add(o, "context_length", json_object_new_int(s->be.context_length));
    json_object_object_add(o, "vocab_size", json_object_new_int(s->be.vocab_size));
    json_object_object_add(o, "tokenizer", json_object_new_string(lh_tokenizer_kind(s->tok)));
    return send_json(c, MHD_HTTP_OK, o);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    lh_server *s = cls;
    conn *cn = *con_cls;
    if (!cn) {
        cn = calloc(1, sizeof *cn);
        if (!cn) return MHD_NO;
        *con_cls = cn;
        pthread_mutex_lock(&s->mu);
        s->requests_total++;
        pthread_mutex_unlock(&s->mu);
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cn->too_big || cn->len + n > s->opt.max_body_bytes) {
            cn->too_big = 1; /* keep draining the body, answer 413 at the end */
            return MHD_YES;
        }
        if (cn->len + n + 1 > cn->cap) {
            size_t cap = cn->cap ? cn->cap : 4096;
            while (cap < cn->len + n + 1) cap *= 2;
            char *grown = realloc(cn->body, cap);
            if (!grown) return MHD_NO;
            cn->body = grown;
            cn->cap = cap;
        }
        memcpy(cn->body + cn->len, upload_data, n);
        cn->len += n;
        cn->body[cn->len] = 0;
        return MHD_YES;
    }
    int get = strcmp(method, MHD_HTTP_METHOD_GET) == 0, post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    if (strcmp(url, "/v1/completions") == 0) {
        if (!post)
            return send_error(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid_request_error",
                              "/v1/completions takes POST", "POST");
        return handle_completion(s, c, cn);
    }
    if (strcmp(url, "/health") == 0 || strcmp(url, "/metrics") == 0) {
        if (!get) return send_error(s, c, MHD_HTTP_METHOD_NOT_ALLOWED, "invalid_request_error", "this path takes GET", "GET");
        return url[1] == 'h' ? handle_health(s, c) : handle_metrics(s, c);
    }
    char msg[160];
    snprintf(msg, sizeof msg, "no such path: %.100s (try POST /v1/completions, GET /health, GET /metrics)", url);
    return send_error(s, c, MHD_HTTP_NOT_FOUND, "invalid_request_error", msg, NULL);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    conn *cn = *con_cls;
    if (!cn) return;
    free(cn->body);
    free(cn);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') line[--n] = 0;
    LH_DEBUG("serve: libmicrohttpd: %s", line);
}

/* ---- lifecycle ---- */

int lh_server_port(const lh_server *s) { return s->port; }

lh_status lh_server_start(const lh_server_options *options, const lh_serve_backend *backend,
                          const lh_tokenizer *tokenizer, lh_server **out)
{
    *out = NULL;
    if (!backend || !backend->prefill || !backend->decode || !backend->release || backend->replicas < 1 ||
        backend->slots_per_replica < 1 || backend->vocab_size < 1 || backend->context_length < 2)
        return lh_fail(LH_ERR_INVALID_ARG, "serve: incomplete backend");
    if (!tokenizer) return lh_fail(LH_ERR_INVALID_ARG, "serve: no tokenizer");
    if ((int64_t)lh_tokenizer_vocab_size(tokenizer) != backend->vocab_size)
        return lh_fail(LH_ERR_MISMATCH, "serve: the %s tokenizer has %u tokens but the model has %d",
                       lh_tokenizer_kind(tokenizer), lh_tokenizer_vocab_size(tokenizer), backend->vocab_size);
    lh_server *s = calloc(1, sizeof *s);
    if (!s) return lh_fail(LH_ERR_NOMEM, "serve: out of memory");
    s->opt = options ? *options : (lh_server_options){0};
    if (!s->opt.bind_address) s->opt.bind_address = "127.0.0.1";
    if (s->opt.max_queue <= 0) s->opt.max_queue = 64;
    if (s->opt.max_connections <= 0) s->opt.max_connections = 256;
    if (!s->opt.max_body_bytes) s->opt.max_body_bytes = 1u << 20;
    if (!s->opt.model_name) s->opt.model_name = "longhaul";
    s->be = *backend;
    s->tok = tokenizer;
    s->eot = lh_tokenizer_eot(tokenizer);
    s->start_s = lh_now_s();
    s->slots = calloc((size_t)backend->replicas * backend->slots_per_replica, sizeof *s->slots);
    s->replica_active = calloc((size_t)backend->replicas, sizeof *s->replica_active);
    if (!s->slots || !s->replica_active) {
        free(s->slots);
        free(s->replica_active);
        free(s);
        return lh_fail(LH_ERR_NOMEM, "serve: out of memory");
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)s->opt.port);
    if (s->opt.port < 0 || s->opt.port > 65535 || inet_pton(AF_INET, s->opt.bind_address, &addr.sin_addr) != 1) {
        lh_status st = lh_fail(LH_ERR_INVALID_ARG, "serve: cannot listen on %s:%d (need an IPv4 address and a port)",
                               s->opt.bind_address, s->opt.port);
        free(s->slots);
        free(s->replica_active);
        free(s);
        return st;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->progress, NULL);
    if (pthread_create(&s->scheduler, NULL, scheduler_main, s) != 0) {
        lh_server_stop(s);
        return lh_fail(LH_ERR_NOMEM, "serve: cannot start the scheduler thread");
    }
    s->scheduler_started = 1;
    s->daemon = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                                 (uint16_t)s->opt.port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &addr,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->opt.max_connections,
                                 MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_END);
    if (!s->daemon) {
        int err = errno;
        lh_server_stop(s);
        return lh_fail(LH_ERR_IO, "serve: cannot listen on %s:%d: %s", options && options->bind_address
                       ? options->bind_address : "127.0.0.1", options ? options->port : 0, strerror(err));
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_LISTEN_FD);
    struct sockaddr_in bound;
    socklen_t bl = sizeof bound;
    if (!info || getsockname(info->listen_fd, (struct sockaddr *)&bound, &bl) != 0) {
        lh_server_stop(s);
        return lh_fail(LH_ERR_IO, "serve: cannot read the bound port");
    }
    s->port = ntohs(bound.sin_port);
    LH_INFO("serve: listening on http://%s:%d (%d replicas x %d slots, context %d)", s->opt.bind_address, s->port,
            backend->replicas, backend->slots_per_replica, backend->context_length);
    *out = s;
    return LH_OK;
}

void lh_server_stop(lh_server *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    if (s->scheduler_started) pthread_join(s->scheduler, NULL);
    if (s->daemon) MHD_stop_daemon(s->daemon); /* connection threads see failed jobs and finish */
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->progress);
    free(s->slots);
    free(s->replica_active);
    free(s);
}
