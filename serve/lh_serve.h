/*
 * lh_serve: the HTTP front end of `longhaul serve`.
 *
 * Why it is split this way: the server (HTTP, queueing, batching, routing,
 * sampling, metrics) must run unchanged on one process today and on an MPI
 * pipeline of stages later.  Everything model-specific therefore sits behind
 * lh_serve_backend, a table of four calls over (replica, slot) pairs: a
 * replica is one copy of the model (one pipeline), a slot is one request's KV
 * cache inside it.  The server's single scheduler thread is the only caller of
 * the backend, so a backend needs no locking of its own.  Decode is batched
 * over several slots of ONE replica because that is what lets a pipeline send
 * one micro-batch of token activations per step instead of one message per
 * request.
 *
 * Request flow: libmicrohttpd (thread per connection) parses and validates the
 * body (lh_serve_parse_request), puts the request in a bounded queue (429 when
 * full), and the scheduler admits queued requests into free slots of the
 * least-loaded replica, prefills them, then runs decode steps batching every
 * active slot of a replica, samples each row with the request's own seeded
 * random stream, and hands tokens back to the connection thread, which
 * streams them as server-sent events or answers with one JSON body.
 *
 * lh_http_* is a minimal blocking HTTP/1.1 client over sockets for the
 * loopback tests and the load benchmark (no libcurl on the build machines).
 */
#ifndef LH_SERVE_H
#define LH_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "lh_data.h"
#include "lh_model.h"
#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Backend interface                                                        */
/* ------------------------------------------------------------------------ */

/**
 * What the server drives.  All calls come from one thread.  Slots are
 * numbered 0..slots_per_replica-1 within each replica 0..replicas-1.
 *  - prefill: start a request in a free slot: run the n >= 1 prompt tokens,
 *    return the logits of the last one (vocab_size floats; the server reads
 *    them before its next backend call, so they need only live until then).
 *    n <= context_length.
 *  - decode: one step for n >= 1 distinct busy slots of `replica`: feed
 *    tokens[i] into slots[i]; rows[i] receives that slot's next-token logits
 *    (vocab_size floats, read before the next backend call; the rows may
 *    point into one batch buffer).  A slot never holds more than
 *    context_length positions (the server checks prompt + max_tokens <=
 *    context_length before admitting).
 *  A failed prefill or decode fails the requests involved (500 / an error
 *  event) and the server releases their slots; the backend must stay usable.
 *  - release: the slot's request is over (finished, failed or abandoned);
 *    forget its positions.  Never fails.
 *  - destroy: free ctx (may be NULL when the caller owns ctx).
 */
typedef struct lh_serve_backend {
    void *ctx;
    int replicas;
    int slots_per_replica;
    int vocab_size;     /* logits per row; prompt and sampled ids are < this */
    int context_length; /* positions a slot can hold */
    lh_status (*prefill)(void *ctx, int replica, int slot, const int32_t *prompt, int n, const float **logits);
    lh_status (*decode)(void *ctx, int replica, int n, const int *slots, const int32_t *tokens,
                        const float **rows);
    void (*release)(void *ctx, int replica, int slot);
    void (*destroy)(void *ctx);
} lh_serve_backend;

/**
 * The local backend: `replicas` logical replicas in this process sharing the
 * read-only weights of `stage` (a whole-model stage, not owned; it must
 * outlive the backend), each with `slots` KV caches (lh_kv_cache).  Decode
 * runs the slots of a batch one after another on this thread.
 */
lh_status lh_serve_local_create(lh_stage *stage, int replicas, int slots, lh_serve_backend *out);

/** Free a backend's context through its destroy call (NULL or zeroed accepted). */
void lh_serve_backend_free(lh_serve_backend *backend);

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */
/* ------------------------------------------------------------------------ */

/** A validated /v1/completions request. */
typedef struct lh_serve_request {
    int32_t *prompt; /* prompt_len token ids (malloc'd; lh_serve_request_clear frees) */
    int prompt_len;  /* >= 1 (an empty prompt becomes the end-of-text token) */
    int max_tokens;  /* >= 1; default 16 as in OpenAI's API */
    float temperature; /* 0 = greedy; default 1 */
    int top_k;         /* 0 = all tokens */
    int stream;        /* answer with server-sent events */
    int has_seed;      /* a seed was given */
    uint64_t seed;
} lh_serve_request;

/** Limits a request is checked against. */
typedef struct lh_serve_limits {
    int vocab_size;     /* prompt ids must be < this */
    int context_length; /* prompt_len + max_tokens must be <= this */
    const lh_tokenizer *tokenizer; /* encodes string prompts; NULL or decode-only: token lists only */
} lh_serve_limits;

/**
 * Parse and validate a /v1/completions JSON body of `len` bytes (not
 * NUL-terminated).  Accepted fields: prompt (string, or a list of token ids,
 * or a list holding one of those), max_tokens, temperature (0..100), top_k
 * (>= 0), stream (bool), seed (int >= 0), model (any string, ignored),
 * n (must be 1), echo (must be false), stop (null only), user (string).
 * Anything else is LH_ERR_FORMAT naming the field; a prompt that does not fit
 * the context with max_tokens is LH_ERR_CAPACITY.  *out is zeroed on failure.
 */
lh_status lh_serve_parse_request(const char *body, size_t len, const lh_serve_limits *limits, lh_serve_request *out);

/** Free what lh_serve_parse_request allocated and zero the struct (NULL accepted). */
void lh_serve_request_clear(lh_serve_request *req);

/**
 * Copy `len` bytes to `out` as valid UTF-8, replacing each invalid byte with
 * U+FFFD.  When `final` is 0, a trailing incomplete but so-far valid sequence
 * is not copied: *consumed says how many input bytes were used (the rest must
 * be passed again with more bytes).  `out` needs 3 * len bytes; returns the
 * bytes written.
 */
size_t lh_serve_utf8_sanitize(const uint8_t *in, size_t len, int final, char *out, size_t *consumed);

/* ------------------------------------------------------------------------ */
/* Server                                                                   */
/* ------------------------------------------------------------------------ */

/** Server settings; zero fields take the defaults in brackets. */
typedef struct lh_server_options {
    const char *bind_address; /* IPv4 address to listen on ["127.0.0.1"] */
    int port;                 /* TCP port; 0 = an ephemeral one (see lh_server_port) [0] */
    int max_queue;            /* requests waiting for a slot before 429 [64] */
    int max_connections;      /* concurrent connections libmicrohttpd accepts [256] */
    size_t max_body_bytes;    /* larger bodies get 413 [1 MiB] */
    const char *model_name;   /* "model" in responses ["longhaul"] */
} lh_server_options;

typedef struct lh_server lh_server;

/**
 * Start serving: binds the socket, starts libmicrohttpd's threads and the
 * scheduler thread.  `backend` and `tokenizer` are borrowed and must outlive
 * the server; the tokenizer's vocabulary must equal the backend's.
 */
lh_status lh_server_start(const lh_server_options *options, const lh_serve_backend *backend,
                          const lh_tokenizer *tokenizer, lh_server **out);

/** The TCP port the server listens on. */
int lh_server_port(const lh_server *server);

/** Counters and latency percentiles (served at /metrics as JSON, or Prometheus text with ?format=prometheus). */
typedef struct lh_server_metrics {
    uint64_t requests_total;     /* HTTP requests received on any path */
    uint64_t completions_ok;     /* completions answered in full */
    uint64_t completions_failed; /* completions the backend failed or the client abandoned */
    uint64_t rejected_4xx;       /* answered with a 4xx status */
    int active;                  /* requests holding a slot */
    int queued;                  /* requests waiting for a slot */
    uint64_t tokens_generated;
    double uptime_s;
    double tokens_per_s;        /* tokens_generated / uptime */
    double busy_tokens_per_s;   /* tokens_generated / time the scheduler spent in the backend */
    double latency_p50_s, latency_p99_s; /* request arrival to last token, last 4096 completions */
    double ttft_p50_s, ttft_p99_s;       /* request arrival to first token */
    uint64_t decode_steps;      /* batched decode calls to the backend */
    double mean_decode_batch;   /* slots per decode call (how much batching happened) */
} lh_server_metrics;

/**
 * The metrics as text into out (capacity cap, NUL-terminated, truncated to
 * fit): one JSON object, or Prometheus exposition format when `prometheus`.
 * Returns the length the full text needs (like snprintf).
 */
size_t lh_server_metrics_format(const lh_server_metrics *m, int prometheus, char *out, size_t cap);

/** A snapshot of the metrics. */
void lh_server_get_metrics(lh_server *server, lh_server_metrics *out);

/** Stop accepting, fail what is in flight, join the threads and free (NULL accepted). */
void lh_server_stop(lh_server *server);

/* ------------------------------------------------------------------------ */
/* Minimal HTTP/1.1 client (tests, load benchmark)                          */
/* ------------------------------------------------------------------------ */

/** A parsed response: status and the (de-chunked) body, NUL-terminated. */
typedef struct lh_http_response {
    int status;
    char *body; /* malloc'd; lh_http_response_clear frees */
    size_t body_len;
    int chunked; /* the body came with Transfer-Encoding: chunked */
} lh_http_response;

/**
 * Send one request (`body` may be NULL) to host:port with Connection: close
 * and read the whole response.  LH_ERR_IO for socket errors, LH_ERR_FORMAT for
 * a malformed response.
 */
lh_status lh_http_request(const char *host, int port, const char *method, const char *path, const char *body,
                          size_t body_len, lh_http_response *out);

/** Parse a complete raw HTTP/1.1 response of `len` bytes (everything until the peer closed). */
lh_status lh_http_parse_response(const char *raw, size_t len, lh_http_response *out);

/** Free the body and zero (NULL accepted). */
void lh_http_response_clear(lh_http_response *resp);

#ifdef __cplusplus
}
#endif
#endif
