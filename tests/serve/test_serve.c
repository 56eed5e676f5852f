/*
 * Tests of the serving front end: request validation, UTF-8 clean-up, the
 * HTTP response parser, and loopback tests of the real server with a tiny
 * random model on the local backend.
 *
 * The load test proves "no mix-ups" without depending on timing: every
 * request is greedy, so its tokens must equal what lh_generate produces for
 * the same prompt alone, whatever else was batched with it; prompts differ per
 * request so a swapped answer would not match.  Latency and tokens/s are
 * printed, never asserted.  The 429 test makes the queue full
 * deterministically with a backend whose prefill waits at a gate the test
 * opens, and waits for states through /metrics instead of sleeping.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <json-c/json.h>

#include "lh_data.h"
#include "lh_generate.h"
#include "lh_model.h"
#include "lh_serve.h"
#include "lh_test.h"
#include "lh_time.h"

#define CTX 64
#define VOCAB 257

static lh_stage *g_stage;
static lh_tokenizer *g_tok;

static lh_serve_limits limits(void)
{
    return (lh_serve_limits){.vocab_size = VOCAB, .context_length = CTX, .tokenizer = g_tok};
}

static lh_status parse(const char *body, lh_serve_request *req)
{
    lh_serve_limits l = limits();
    return lh_serve_parse_request(body, strlen(body), &l, req);
}

/* ---- request parsing ---- */

static void test_parse_text_and_defaults(void)
{
    lh_serve_request r;
    LH_ASSERT_OK(parse("{\"model\":\"x\",\"prompt\":\"Hi!\"}", &r));
    CU_ASSERT_EQUAL(r.prompt_len, 3);
    CU_ASSERT_EQUAL(r.prompt[0], 'H');
    CU_ASSERT_EQUAL(r.prompt[2], '!');
    CU_ASSERT_EQUAL(r.max_tokens, 16);
    CU_ASSERT_DOUBLE_EQUAL(r.temperature, 1.0, 1e-9);
    CU_ASSERT_EQUAL(r.top_k, 0);
    CU_ASSERT_EQUAL(r.stream, 0);
    CU_ASSERT_EQUAL(r.has_seed, 0);
    lh_serve_request_clear(&r);
    LH_ASSERT_OK(parse("{\"prompt\":\"\",\"max_tokens\":5,\"temperature\":0,\"top_k\":3,\"stream\":true,\"seed\":9}",
                       &r));
    CU_ASSERT_EQUAL(r.prompt_len, 1);
    CU_ASSERT_EQUAL(r.prompt[0], 256); /* empty prompt starts from end-of-text */
    CU_ASSERT_EQUAL(r.max_tokens, 5);
    CU_ASSERT_EQUAL(r.temperature, 0.0f);
    CU_ASSERT_EQUAL(r.top_k, 3);
    CU_ASSERT_EQUAL(r.stream, 1);
    CU_ASSERT_EQUAL(r.has_seed, 1);
    CU_ASSERT_EQUAL(r.seed, 9);
    lh_serve_request_clear(&r);
}

static void test_parse_token_lists(void)
{
    lh_serve_request r;
    LH_ASSERT_OK(parse("{\"prompt\":[1,2,256]}", &r));
    CU_ASSERT_EQUAL(r.prompt_len, 3);
    CU_ASSERT_EQUAL(r.prompt[2], 256);
    lh_serve_request_clear(&r);
    LH_ASSERT_OK(parse("{\"prompt\":[[7,8]]}", &r));
    CU_ASSERT_EQUAL(r.prompt_len, 2);
    CU_ASSERT_EQUAL(r.prompt[0], 7);
    lh_serve_request_clear(&r);
    LH_ASSERT_OK(parse("{\"prompt\":[\"ab\"]}", &r));
    CU_ASSERT_EQUAL(r.prompt_len, 2);
    lh_serve_request_clear(&r);
}

static void test_parse_rejects_bad_input(void)
{
    lh_serve_request r;
    LH_ASSERT_FAILS_WITH(parse("{\"prompt\":\"a\"", &r), LH_ERR_FORMAT, "request");
    CU_ASSERT_PTR_NULL(r.prompt);
    LH_ASSERT_FAILS_WITH(parse("", &r), LH_ERR_FORMAT, "empty");
    LH_ASSERT_FAILS_WITH(parse("[1,2]", &r), LH_ERR_FORMAT, "object");
    LH_ASSERT_FAILS_WITH(parse("{\"prompt\":\"a\",\"logprobs\":3}", &r), LH_ERR_FORMAT, "logprobs");
    LH_ASSERT_FAILS_WITH(parse("{\"max_tokens\":3}", &r), LH_ERR_FORMAT, "prompt");
    LH_ASSERT_FAILS_WITH(parse("{\"prompt\":\"a\",\"max_tokens\":\"3\"}", &r), LH_ERR_FORMAT, "max_tokens");
    LH_ASSERT_FAILS_WITH(parse("{\"prompt\":\"a\",\"max_tokens\":0}", &r), LH_ERR_FORMAT, "max_tokens");
    LH_ASSERT_FAILS_WITH(parse("{\"prompt\":\"a\",\"temperature\":-1}", &r), LH_ERR_FORMAT, "temperature");
    LH_ASSERT_FAILS_WITH(parse("{\"prompt\":\"a\",\"stream\":1}", &r), LH_ERR_FORMAT, "stream");
    LH_ASSERT_FAILS_WITH(parse("{\"prompt\":\"a\",\"n\":2}", &r), LH_ERR_FORMAT, "one completion");
    LH_ASSERT_FAILS_WITH(parse("{\"prompt\":\"a\",\"stop\":\"x\"}", &r), LH_ERR_FORMAT, "stop");
    LH_ASSERT_FAILS_WITH(parse("{\"prompt\":[1,300]}", &r), LH_ERR_FORMAT, "outside [0, 257)");
    LH_ASSERT_FAILS_WITH(parse("{\"prompt\":[1,2.5]}", &r), LH_ERR_FORMAT, "element 1");
    LH_ASSERT_FAILS_WITH(parse("{\"prompt\":[]}", &r), LH_ERR_FORMAT, "empty");
    LH_ASSERT_FAILS_WITH(parse("{\"prompt\":[\"a\",\"b\"]}", &r), LH_ERR_FORMAT, "one per request");
    LH_ASSERT_FAILS_WITH(parse("{\"prompt\":7}", &r), LH_ERR_FORMAT, "expected a string or a list");
    /* 60 prompt tokens + 16 default max_tokens > 64 */
    char big[200];
    snprintf(big, sizeof big, "{\"prompt\":\"%060d\"}", 0);
    LH_ASSERT_FAILS_WITH(parse(big, &r), LH_ERR_CAPACITY, "exceeds the context length of 64");
    snprintf(big, sizeof big, "{\"prompt\":\"%070d\",\"max_tokens\":1}", 0);
    LH_ASSERT_FAILS_WITH(parse(big, &r), LH_ERR_CAPACITY, "do not fit the context");
    lh_serve_limits no_encoder = {.vocab_size = VOCAB, .context_length = CTX, .tokenizer = NULL};
    LH_ASSERT_FAILS_WITH(lh_serve_parse_request("{\"prompt\":\"ab\"}", 15, &no_encoder, &r), LH_ERR_FORMAT,
                         "list of token ids");
    CU_ASSERT_PTR_NULL(r.prompt);
    lh_serve_limits small_vocab = {.vocab_size = 100, .context_length = CTX, .tokenizer = g_tok};
    LH_ASSERT_FAILS_WITH(lh_serve_parse_request("{\"prompt\":\"a\xC8\"}", 15, &small_vocab, &r), LH_ERR_FORMAT,
                         "token 200 at 1 is outside the model's vocabulary (100)");
}

static void test_utf8_sanitize(void)
{
    char out[64];
    size_t used = 0, n;
    n = lh_serve_utf8_sanitize((const uint8_t *)"a\xC3\xA9z", 4, 1, out, &used);
    CU_ASSERT_EQUAL(n, 4);
    CU_ASSERT_EQUAL(used, 4);
    CU_ASSERT_EQUAL(memcmp(out, "a\xC3\xA9z", 4), 0);
    /* an incomplete trailing character waits unless final */
    n = lh_serve_utf8_sanitize((const uint8_t *)"a\xE2\x82", 3, 0, out, &used);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(used, 1);
    n = lh_serve_utf8_sanitize((const uint8_t *)"a\xE2\x82", 3, 1, out, &used);
    CU_ASSERT_EQUAL(n, 4);
    CU_ASSERT_EQUAL(memcmp(out + 1, "\xEF\xBF\xBD", 3), 0);
    /* invalid bytes become U+FFFD, then the rest continues */
    n = lh_serve_utf8_sanitize((const uint8_t *)"\xFF" "b\xC0", 3, 0, out, &used);
    CU_ASSERT_EQUAL(used, 3);
    CU_ASSERT_EQUAL(n, 7);
    CU_ASSERT_EQUAL(memcmp(out, "\xEF\xBF\xBD" "b\xEF\xBF\xBD", 7), 0);
    /* surrogates (ED A0..) are not valid UTF-8 */
    n = lh_serve_utf8_sanitize((const uint8_t *)"\xED\xA0\x80", 3, 1, out, &used);
    CU_ASSERT_EQUAL(memcmp(out, "\xEF\xBF\xBD", 3), 0);
}

static void test_http_response_parser(void)
{
    lh_http_response r;
    const char *plain = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhello";
    LH_ASSERT_OK(lh_http_parse_response(plain, strlen(plain), &r));
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_EQUAL(r.body_len, 5);
    CU_ASSERT_STRING_EQUAL(r.body, "hello");
    lh_http_response_clear(&r);
    const char *chunked = "HTTP/1.1 429 Too Many\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n";
    LH_ASSERT_OK(lh_http_parse_response(chunked, strlen(chunked), &r));
    CU_ASSERT_EQUAL(r.status, 429);
    CU_ASSERT_EQUAL(r.chunked, 1);
    CU_ASSERT_STRING_EQUAL(r.body, "abc0123456789");
    lh_http_response_clear(&r);
    const char *cut = "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nhello";
    LH_ASSERT_FAILS_WITH(lh_http_parse_response(cut, strlen(cut), &r), LH_ERR_TRUNCATED, "5 of 50");
    const char *bad_chunk = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc";
    LH_ASSERT_FAILS_WITH(lh_http_parse_response(bad_chunk, strlen(bad_chunk), &r), LH_ERR_FORMAT, "chunk size");
    LH_ASSERT_FAILS_WITH(lh_http_parse_response("HTTP/1.1 200", 12, &r), LH_ERR_FORMAT, "end of headers");
}

/* ---- loopback server ---- */

/* Greedy tokens for `prompt` alone, cut at the first end-of-text (the server stops there). */
static int reference_greedy(const int32_t *prompt, int n, int max_tokens, int32_t *out)
{
    int32_t tokens[CTX];
    memcpy(tokens, prompt, (size_t)n * sizeof *tokens);
    size_t length = (size_t)n;
    lh_sampling greedy = {.temperature = 0, .top_k = 0, .seed = 1};
    if (lh_generate(g_stage, tokens, &length, (size_t)max_tokens, &greedy, NULL, NULL) != LH_OK) return -1;
    int k = 0;
    for (size_t i = (size_t)n; i < length && tokens[i] != 256; i++) out[k++] = tokens[i];
    return k;
}

#define CLIENTS 12
#define PER_CLIENT 5
#define MAX_TOKENS 10

typedef struct client_result {
    int ok, mismatches, malformed;
    char ids[PER_CLIENT][48];
    double latency[PER_CLIENT];
    int tokens;
} client_result;

typedef struct client_arg {
    int port, index;
    int32_t reference[PER_CLIENT][MAX_TOKENS];
    int reference_len[PER_CLIENT];
    char prompt[PER_CLIENT][32];
    client_result res;
} client_arg;

/* token_ids of choices[0] appended to ids (capacity cap); returns the count or -1. */
static int collect_ids(json_object *root, int32_t *ids, int have, int cap, const char **finish, char *id_out)
{
    json_object *choices, *choice, *tok, *fin, *id;
    if (!json_object_object_get_ex(root, "choices", &choices) || json_object_array_length(choices) != 1) return -1;
    choice = json_object_array_get_idx(choices, 0);
    if (!json_object_object_get_ex(choice, "token_ids", &tok) || !json_object_object_get_ex(choice, "text", &fin))
        return -1;
    if (json_object_object_get_ex(root, "id", &id) && id_out) snprintf(id_out, 48, "%s", json_object_get_string(id));
    for (size_t i = 0; i < json_object_array_length(tok); i++) {
        if (have >= cap) return -1;
        ids[have++] = json_object_get_int(json_object_array_get_idx(tok, i));
    }
    if (json_object_object_get_ex(choice, "finish_reason", &fin) && fin) *finish = json_object_get_string(fin);
    return have;
}

static void *client_main(void *p)
{
    client_arg *a = p;
    for (int k = 0; k < PER_CLIENT; k++) {
        int stream = (a->index + k) % 2;
        char body[256];
        snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0,\"stream\":%s}",
                 a->prompt[k], MAX_TOKENS, stream ? "true" : "false");
        lh_http_response resp;
        double t0 = lh_now_s();
        if (lh_http_request("127.0.0.1", a->port, "POST", "/v1/completions", body, strlen(body), &resp)) {
            a->res.malformed++;
            continue;
        }
        a->res.latency[k] = lh_now_s() - t0;
        int32_t ids[MAX_TOKENS + 1];
        int n = 0, events_done = 0, finishes = 0;
        const char *finish = NULL;
        if (resp.status != 200) {
            a->res.malformed++;
        } else if (!stream) {
            json_object *root = json_tokener_parse(resp.body);
            n = root ? collect_ids(root, ids, 0, MAX_TOKENS, &finish, a->res.ids[k]) : -1;
            json_object *usage, *ct;
            if (n < 0 || !finish || !json_object_object_get_ex(root, "usage", &usage) ||
                !json_object_object_get_ex(usage, "completion_tokens", &ct) || json_object_get_int(ct) != n)
                a->res.malformed++;
            json_object_put(root);
            events_done = 1;
            finishes = 1;
        } else {
            char *save = NULL;
            for (char *ev = strtok_r(resp.body, "\n", &save); ev && n >= 0; ev = strtok_r(NULL, "\n", &save)) {
                if (strncmp(ev, "data: ", 6) != 0) {
                    n = -1;
                    break;
                }
                if (strcmp(ev + 6, "[DONE]") == 0) {
                    events_done++;
                    continue;
                }
                json_object *root = json_tokener_parse(ev + 6);
                const char *f = NULL;
                n = root ? collect_ids(root, ids, n, MAX_TOKENS, &f, a->res.ids[k]) : -1;
                if (f) finishes++;
                json_object_put(root);
            }
        }
        if (n < 0 || events_done != 1 || finishes != 1) {
            a->res.malformed++;
        } else if (n != a->reference_len[k] || memcmp(ids, a->reference[k], (size_t)n * sizeof *ids) != 0) {
            a->res.mismatches++;
        } else {
            a->res.ok++;
            a->res.tokens += n;
        }
        lh_http_response_clear(&resp);
    }
    return NULL;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_loopback_load(void)
{
    static client_arg args[CLIENTS];
    lh_serve_backend be;
    LH_ASSERT_OK(lh_serve_local_create(g_stage, 2, 4, &be));
    for (int c = 0; c < CLIENTS; c++) {
        args[c].index = c;
        memset(&args[c].res, 0, sizeof args[c].res);
        for (int k = 0; k < PER_CLIENT; k++) {
            snprintf(args[c].prompt[k], sizeof args[c].prompt[k], "client %d asks %d%s", c, k * 7 + c,
                     k % 2 ? " why?" : "");
            int32_t prompt[32];
            int n = (int)strlen(args[c].prompt[k]);
            for (int i = 0; i < n; i++) prompt[i] = (unsigned char)args[c].prompt[k][i];
            args[c].reference_len[k] = reference_greedy(prompt, n, MAX_TOKENS, args[c].reference[k]);
            CU_ASSERT_FATAL(args[c].reference_len[k] >= 0);
        }
    }
    lh_server *srv;
    lh_server_options opt = {.port = 0, .max_queue = 64};
    LH_ASSERT_OK(lh_server_start(&opt, &be, g_tok, &srv));
    double t0 = lh_now_s();
    pthread_t th[CLIENTS];
    for (int c = 0; c < CLIENTS; c++) {
        args[c].port = lh_server_port(srv);
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[c], NULL, client_main, &args[c]), 0);
    }
    for (int c = 0; c < CLIENTS; c++) pthread_join(th[c], NULL);
    double wall = lh_now_s() - t0;
    int ok = 0, mismatches = 0, malformed = 0, tokens = 0;
    double lat[CLIENTS * PER_CLIENT];
    const char *ids[CLIENTS * PER_CLIENT];
    for (int c = 0; c < CLIENTS; c++) {
        ok += args[c].res.ok;
        mismatches += args[c].res.mismatches;
        malformed += args[c].res.malformed;
        tokens += args[c].res.tokens;
        for (int k = 0; k < PER_CLIENT; k++) {
            lat[c * PER_CLIENT + k] = args[c].res.latency[k];
            ids[c * PER_CLIENT + k] = args[c].res.ids[k];
        }
    }
    CU_ASSERT_EQUAL(malformed, 0);
    CU_ASSERT_EQUAL(mismatches, 0);
    CU_ASSERT_EQUAL(ok, CLIENTS * PER_CLIENT);
    /* answered exactly once: every response carries its own completion id */
    int duplicates = 0;
    for (int i = 0; i < CLIENTS * PER_CLIENT; i++)
        for (int j = i + 1; j < CLIENTS * PER_CLIENT; j++)
            if (ids[i][0] == 0 || strcmp(ids[i], ids[j]) == 0) duplicates++;
    CU_ASSERT_EQUAL(duplicates, 0);
    lh_server_metrics m;
    lh_server_get_metrics(srv, &m);
    CU_ASSERT_EQUAL(m.completions_ok, (uint64_t)(CLIENTS * PER_CLIENT));
    CU_ASSERT_EQUAL(m.tokens_generated, (uint64_t)tokens);
    CU_ASSERT_EQUAL(m.active, 0);
    CU_ASSERT_EQUAL(m.queued, 0);
    qsort(lat, CLIENTS * PER_CLIENT, sizeof *lat, compare_doubles);
    printf("\n  load: %d clients x %d requests (2 replicas x 4 slots, %d tokens max): %.2f s, client p50 %.1f ms "
           "p99 %.1f ms, %.0f tokens/s; server p50 %.1f ms p99 %.1f ms ttft p50 %.1f ms, mean decode batch %.2f\n",
           CLIENTS, PER_CLIENT, MAX_TOKENS, wall, 1e3 * lat[CLIENTS * PER_CLIENT / 2],
           1e3 * lat[(CLIENTS * PER_CLIENT * 99) / 100], tokens / wall, 1e3 * m.latency_p50_s,
           1e3 * m.latency_p99_s, 1e3 * m.ttft_p50_s, m.mean_decode_batch);
    lh_server_stop(srv);
    lh_serve_backend_free(&be);
}

/* POST/GET `body` and check the status and that the body is a JSON error naming `needle`. */
static void expect_error(int port, const char *method, const char *path, const char *body, size_t len, int status,
                         const char *needle)
{
    lh_http_response r;
    LH_ASSERT_OK(lh_http_request("127.0.0.1", port, method, path, body, len, &r));
    CU_ASSERT_EQUAL(r.status, status);
    json_object *root = json_tokener_parse(r.body), *err = NULL, *msg = NULL;
    CU_ASSERT_PTR_NOT_NULL(root);
    CU_ASSERT(root && json_object_object_get_ex(root, "error", &err) && json_object_object_get_ex(err, "message", &msg));
    if (r.status != status || !msg || !strstr(json_object_get_string(msg), needle))
        fprintf(stderr, "\n  %s %s: got %d %s (wanted %d with \"%s\")\n", method, path, r.status, r.body, status,
                needle);
    CU_ASSERT(msg && strstr(json_object_get_string(msg), needle));
    json_object_put(root);
    lh_http_response_clear(&r);
}

static void expect_served(int port)
{
    lh_http_response r;
    const char *ok = "{\"prompt\":\"still there?\",\"max_tokens\":3,\"temperature\":0}";
    LH_ASSERT_OK(lh_http_request("127.0.0.1", port, "POST", "/v1/completions", ok, strlen(ok), &r));
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"text_completion\""));
    lh_http_response_clear(&r);
}

static void test_bad_input_keeps_serving(void)
{
    lh_serve_backend be;
    LH_ASSERT_OK(lh_serve_local_create(g_stage, 1, 2, &be));
    lh_server *srv;
    lh_server_options opt = {.max_body_bytes = 4096};
    LH_ASSERT_OK(lh_server_start(&opt, &be, g_tok, &srv));
    int port = lh_server_port(srv);
    const char *bad_json = "{\"prompt\": \"a\",";
    expect_error(port, "POST", "/v1/completions", bad_json, strlen(bad_json), 400, "request");
    expect_served(port);
    const char *unknown = "{\"prompt\":\"a\",\"best_of\":2}";
    expect_error(port, "POST", "/v1/completions", unknown, strlen(unknown), 400, "best_of");
    char too_long[256];
    snprintf(too_long, sizeof too_long, "{\"prompt\":\"%060d\",\"max_tokens\":10}", 0);
    expect_error(port, "POST", "/v1/completions", too_long, strlen(too_long), 400, "context length");
    const char *bad_type = "{\"prompt\":\"a\",\"top_k\":\"many\"}";
    expect_error(port, "POST", "/v1/completions", bad_type, strlen(bad_type), 400, "top_k");
    char *huge = malloc(10000);
    memset(huge, ' ', 10000);
    expect_error(port, "POST", "/v1/completions", huge, 10000, 413, "exceeds 4096");
    free(huge);
    expect_error(port, "GET", "/v1/completions", NULL, 0, 405, "POST");
    expect_error(port, "POST", "/metrics", "{}", 2, 405, "GET");
    expect_error(port, "GET", "/v2/nothing", NULL, 0, 404, "no such path");
    expect_served(port);
    lh_http_response r;
    LH_ASSERT_OK(lh_http_request("127.0.0.1", port, "GET", "/health", NULL, 0, &r));
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"status\":\"ok\""));
    lh_http_response_clear(&r);
    LH_ASSERT_OK(lh_http_request("127.0.0.1", port, "GET", "/metrics", NULL, 0, &r));
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"rejected_4xx\":8"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"completions_ok\":2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\"latency_p99_s\""));
    lh_http_response_clear(&r);
    LH_ASSERT_OK(lh_http_request("127.0.0.1", port, "GET", "/metrics?format=prometheus", NULL, 0, &r));
    CU_ASSERT_EQUAL(r.status, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\nlonghaul_completions_total{result=\"ok\"} 2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "\nlonghaul_requests_queued 0\n"));
    lh_http_response_clear(&r);
    expect_error(port, "GET", "/metrics?format=xml", NULL, 0, 400, "json or prometheus");
    lh_server_stop(srv);
    lh_serve_backend_free(&be);
}

/* ---- a full queue: 429 ---- */

/* A local backend whose prefill (or decode) waits until the test opens a gate, and which records calls. */
typedef struct gated {
    lh_serve_backend inner;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open, gate_decode;
    int waiting; /* calls that have reached the closed gate */
    int prefill_replica[256];          /* by the prompt's first token: the replica it was prefilled on */
    int prefills;
    int max_decode_batch;
    int fail_decode; /* decode fails with LH_ERR_COMM "injected" */
} gated;

static void gate_wait(gated *g)
{
    pthread_mutex_lock(&g->mu);
    if (!g->open) {
        g->waiting++;
        pthread_cond_broadcast(&g->cv);
    }
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

/* Block until the scheduler is held at the gate (so nothing else moves until gate_open). */
static void gate_wait_for_scheduler(gated *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->waiting) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(gated *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static lh_status gated_prefill(void *ctx, int replica, int slot, const int32_t *prompt, int n, const float **logits)
{
    gated *g = ctx;
    if (!g->gate_decode) gate_wait(g);
    g->prefill_replica[prompt[0] & 255] = replica;
    g->prefills++;
    return g->inner.prefill(g->inner.ctx, replica, slot, prompt, n, logits);
}

static lh_status gated_decode(void *ctx, int replica, int n, const int *slots, const int32_t *tokens,
                              const float **rows)
{
    gated *g = ctx;
    if (g->gate_decode) gate_wait(g);
    if (n > g->max_decode_batch) g->max_decode_batch = n;
    if (g->fail_decode) return lh_fail(LH_ERR_COMM, "injected failure of stage 1");
    return g->inner.decode(g->inner.ctx, replica, n, slots, tokens, rows);
}

static void gated_release(void *ctx, int replica, int slot)
{
    gated *g = ctx;
    g->inner.release(g->inner.ctx, replica, slot);
}

typedef struct post_arg {
    int port, status;
    const char *body;
} post_arg;

static void *post_main(void *p)
{
    post_arg *a = p;
    lh_http_response r;
    if (lh_http_request("127.0.0.1", a->port, "POST", "/v1/completions", a->body, strlen(a->body), &r) == LH_OK)
        a->status = r.status;
    lh_http_response_clear(&r);
    return NULL;
}

static void wait_for(lh_server *srv, int active, int queued)
{
    for (;;) {
        lh_server_metrics m;
        lh_server_get_metrics(srv, &m);
        if (m.active == active && m.queued == queued) return;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
}

static void test_full_queue_gets_429(void)
{
    static gated g;
    memset(&g, 0, sizeof g);
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    LH_ASSERT_OK(lh_serve_local_create(g_stage, 1, 1, &g.inner));
    lh_serve_backend be = g.inner;
    be.ctx = &g;
    be.prefill = gated_prefill;
    be.decode = gated_decode;
    be.release = gated_release;
    be.destroy = NULL;
    lh_server *srv;
    lh_server_options opt = {.max_queue = 1};
    LH_ASSERT_OK(lh_server_start(&opt, &be, g_tok, &srv));
    const char *body = "{\"prompt\":\"wait\",\"max_tokens\":4,\"temperature\":0}";
    post_arg a = {lh_server_port(srv), 0, body}, b = a;
    pthread_t ta, tb;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&ta, NULL, post_main, &a), 0);
    gate_wait_for_scheduler(&g); /* A holds the only slot (its prefill waits at the gate) */
    wait_for(srv, 1, 0);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&tb, NULL, post_main, &b), 0);
    wait_for(srv, 1, 1); /* B fills the queue */
    expect_error(lh_server_port(srv), "POST", "/v1/completions", body, strlen(body), 429, "queue is full");
    gate_open(&g);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CU_ASSERT_EQUAL(a.status, 200);
    CU_ASSERT_EQUAL(b.status, 200);
    expect_served(lh_server_port(srv));
    lh_server_stop(srv);
    lh_serve_backend_free(&g.inner);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

/*
 * Routing and batching, deterministically: A's first decode waits at the gate
 * while B and C queue; then B must go to the idle replica 1, C (a tie) to
 * replica 0, and replica 0's next decode must batch A and C together.
 */
static void test_least_loaded_routing_and_batching(void)
{
    static gated g;
    memset(&g, 0, sizeof g);
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    g.gate_decode = 1;
    memset(g.prefill_replica, -1, sizeof g.prefill_replica);
    LH_ASSERT_OK(lh_serve_local_create(g_stage, 2, 2, &g.inner));
    lh_serve_backend be = g.inner;
    be.ctx = &g;
    be.prefill = gated_prefill;
    be.decode = gated_decode;
    be.release = gated_release;
    be.destroy = NULL;
    lh_server *srv;
    LH_ASSERT_OK(lh_server_start(NULL, &be, g_tok, &srv));
    post_arg a = {lh_server_port(srv), 0, "{\"prompt\":\"A\",\"max_tokens\":20,\"temperature\":0}"};
    post_arg b = {a.port, 0, "{\"prompt\":\"B\",\"max_tokens\":5,\"temperature\":0}"};
    post_arg c = {a.port, 0, "{\"prompt\":\"C\",\"max_tokens\":5,\"temperature\":0,\"stream\":true}"};
    pthread_t ta, tb, tc;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&ta, NULL, post_main, &a), 0);
    gate_wait_for_scheduler(&g); /* A's first decode holds the scheduler */
    wait_for(srv, 1, 0);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&tb, NULL, post_main, &b), 0);
    wait_for(srv, 1, 1);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&tc, NULL, post_main, &c), 0);
    wait_for(srv, 1, 2);
    gate_open(&g);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    pthread_join(tc, NULL);
    CU_ASSERT_EQUAL(a.status, 200);
    CU_ASSERT_EQUAL(b.status, 200);
    CU_ASSERT_EQUAL(c.status, 200);
    CU_ASSERT_EQUAL(g.prefills, 3);
    CU_ASSERT_EQUAL(g.prefill_replica['A'], 0);
    CU_ASSERT_EQUAL(g.prefill_replica['B'], 1);
    CU_ASSERT_EQUAL(g.prefill_replica['C'], 0);
    CU_ASSERT_EQUAL(g.max_decode_batch, 2);
    lh_server_stop(srv);
    lh_serve_backend_free(&g.inner);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

/* A backend failure fails only the requests in that step (500, or an error event), and the server goes on. */
static void test_backend_failure_is_reported(void)
{
    static gated g;
    memset(&g, 0, sizeof g);
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    g.open = 1;
    g.fail_decode = 1;
    LH_ASSERT_OK(lh_serve_local_create(g_stage, 1, 2, &g.inner));
    lh_serve_backend be = g.inner;
    be.ctx = &g;
    be.prefill = gated_prefill;
    be.decode = gated_decode;
    be.release = gated_release;
    be.destroy = NULL;
    lh_server *srv;
    LH_ASSERT_OK(lh_server_start(NULL, &be, g_tok, &srv));
    int port = lh_server_port(srv);
    const char *plain = "{\"prompt\":\"x\",\"max_tokens\":4,\"temperature\":0}";
    expect_error(port, "POST", "/v1/completions", plain, strlen(plain), 500, "injected failure of stage 1");
    const char *streamed = "{\"prompt\":\"x\",\"max_tokens\":4,\"stream\":true,\"temperature\":0}";
    lh_http_response r;
    LH_ASSERT_OK(lh_http_request("127.0.0.1", port, "POST", "/v1/completions", streamed, strlen(streamed), &r));
    CU_ASSERT_EQUAL(r.status, 200); /* the stream had started: the failure comes as an event */
    if (!strstr(r.body, "backend decode failed (communication): injected")) fprintf(stderr, "\n  stream body: %s\n", r.body);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "data: {\"error\":{\"message\":\"backend decode failed (communication): injected"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "data: [DONE]\n\n"));
    lh_http_response_clear(&r);
    /* a one-token request needs no decode: it still succeeds */
    const char *one = "{\"prompt\":\"x\",\"max_tokens\":1}";
    LH_ASSERT_OK(lh_http_request("127.0.0.1", port, "POST", "/v1/completions", one, strlen(one), &r));
    CU_ASSERT_EQUAL(r.status, 200);
    lh_http_response_clear(&r);
    g.fail_decode = 0; /* the scheduler is idle: no request in flight */
    expect_served(port);
    lh_server_metrics m;
    lh_server_get_metrics(srv, &m);
    CU_ASSERT_EQUAL(m.completions_failed, 2);
    CU_ASSERT_EQUAL(m.completions_ok, 2);
    CU_ASSERT_EQUAL(m.active, 0);
    lh_server_stop(srv);
    lh_serve_backend_free(&g.inner);
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
}

/* A streaming client that hangs up mid-answer: its slot comes back and the server keeps serving. */
static void test_abandoned_stream(void)
{
    lh_serve_backend be;
    LH_ASSERT_OK(lh_serve_local_create(g_stage, 1, 1, &be));
    lh_server *srv;
    LH_ASSERT_OK(lh_server_start(NULL, &be, g_tok, &srv));
    int port = lh_server_port(srv);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    const char *body = "{\"prompt\":\"bye\",\"max_tokens\":60,\"stream\":true,\"temperature\":0}";
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s", strlen(body), body);
    CU_ASSERT_EQUAL(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    char buf[64];
    CU_ASSERT(recv(fd, buf, sizeof buf, 0) > 0); /* the answer started */
    close(fd);
    wait_for(srv, 0, 0); /* finished or abandoned: either way the slot is free again */
    expect_served(port);
    lh_server_metrics m;
    lh_server_get_metrics(srv, &m);
    CU_ASSERT_EQUAL(m.completions_ok + m.completions_failed, 2);
    lh_server_stop(srv);
    lh_serve_backend_free(&be);
}

static void test_tokenizer_must_match_model(void)
{
    lh_serve_backend be;
    LH_ASSERT_OK(lh_serve_local_create(g_stage, 1, 1, &be));
    be.vocab_size = 300;
    lh_server *srv = NULL;
    LH_ASSERT_FAILS_WITH(lh_server_start(NULL, &be, g_tok, &srv), LH_ERR_MISMATCH, "257 tokens but the model has 300");
    CU_ASSERT_PTR_NULL(srv);
    lh_serve_backend_free(&be);
    LH_ASSERT_FAILS_WITH(lh_serve_local_create(g_stage, 0, 1, &be), LH_ERR_INVALID_ARG, "replicas");
}

static int setup(void)
{
    lh_model_config c = {.max_seq_len = CTX, .vocab_size = VOCAB, .num_layers = 2, .num_heads = 2, .channels = 32};
    if (lh_model_config_check(&c)) return 1;
    lh_stage_spec whole = lh_stage_spec_whole(&c);
    if (lh_stage_create(&c, &whole, 1, CTX, 1, &g_stage)) return 1;
    lh_stage_init_params(g_stage, 1234);
    return lh_tokenizer_create_byte(&g_tok) != LH_OK;
}

static int teardown(void)
{
    lh_stage_free(g_stage);
    lh_tokenizer_free(g_tok);
    return 0;
}

int main(void)
{
    CU_TestInfo request_tests[] = {{"text prompt and defaults", test_parse_text_and_defaults},
                                   {"token-list prompts", test_parse_token_lists},
                                   {"bad input is named", test_parse_rejects_bad_input},
                                   {"utf-8 clean-up", test_utf8_sanitize},
                                   {"http response parser", test_http_response_parser},
                                   CU_TEST_INFO_NULL};
    CU_TestInfo server_tests[] = {{"tokenizer must match model", test_tokenizer_must_match_model},
                                  {"bad input keeps serving", test_bad_input_keeps_serving},
                                  {"full queue gets 429", test_full_queue_gets_429},
                                  {"abandoned stream frees its slot", test_abandoned_stream},
                                  {"least-loaded routing and batching", test_least_loaded_routing_and_batching},
                                  {"backend failure is reported", test_backend_failure_is_reported},
                                  {"loopback load, greedy equals single", test_loopback_load},
                                  CU_TEST_INFO_NULL};
    CU_SuiteInfo suites[] = {{"request", setup, teardown, NULL, NULL, request_tests},
                             {"server", setup, teardown, NULL, NULL, server_tests},
                             CU_SUITE_INFO_NULL};
    return lh_test_run(suites);
}
