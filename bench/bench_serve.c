/*
 * bench_serve: the loopback load test of the serving front end.
 *
 * Many concurrent HTTP clients (half streaming) send greedy completions to a
 * real server (libmicrohttpd on 127.0.0.1, local backend, random model) for a
 * fixed number of requests each.  The baseline, measured in the same run, is
 * the same prompts generated one after another with lh_generate on this
 * thread: what one process without a server, queue or batching does.  The
 * comparison shows what the server costs (HTTP, JSON, scheduling) and what
 * interleaving buys; on the local backend a decode "batch" runs its slots one
 * after another, so the throughput is not expected to beat the baseline by
 * much (a pipeline backend is where batching pays: one message per step).
 * Every answer is also checked against the baseline's tokens (mismatches are
 * reported, and make the exit status 1).
 *
 * Usage: bench_serve [--json] [--clients N] [--requests N] [--tokens N] [--replicas R] [--slots S]
 *                    [--model L,C,NH,T,V] [--threads N]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "lh_data.h"
#include "lh_generate.h"
#include "lh_model.h"
#include "lh_serve.h"
#include "lh_time.h"

typedef struct request_spec {
    char prompt[64];
    int32_t *expected;
    int expected_len;
    double latency_s;
    int outcome; /* 0 not run, 1 match, 2 mismatch, 3 error */
    int tokens;
} request_spec;

typedef struct client {
    int port, index, count, max_tokens;
    request_spec *requests;
} client;

static int parse_tokens(const char *body, int stream, int32_t *ids, int cap)
{
    int n = 0;
    char *copy = strdup(body), *save = NULL;
    if (!copy) return -1;
    for (char *line = stream ? strtok_r(copy, "\n", &save) : copy; line && n >= 0;
         line = stream ? strtok_r(NULL, "\n", &save) : NULL) {
        const char *js = line;
        if (stream) {
            if (strncmp(line, "data: ", 6) != 0) { n = -1; break; }
            js = line + 6;
            if (strcmp(js, "[DONE]") == 0) continue;
        }
        json_object *root = json_tokener_parse(js), *choices, *tok;
        if (!root || !json_object_object_get_ex(root, "choices", &choices) ||
            !json_object_object_get_ex(json_object_array_get_idx(choices, 0), "token_ids", &tok)) {
            json_object_put(root);
            n = -1;
            break;
        }
        for (size_t i = 0; i < json_object_array_length(tok) && n >= 0; i++)
            n = n < cap ? (ids[n] = json_object_get_int(json_object_array_get_idx(tok, i)), n + 1) : -1;
        json_object_put(root);
    }
    free(copy);
    return n;
}

static void *client_main(void *p)
{
    client *c = p;
    int32_t *ids = malloc((size_t)c->max_tokens * sizeof *ids);
    for (int k = 0; k < c->count; k++) {
        request_spec *r = &c->requests[k];
        int stream = (c->index + k) % 2;
        char body[256];
        snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"max_tokens\":%d,\"temperature\":0,\"stream\":%s}", r->prompt,
                 c->max_tokens, stream ? "true" : "false");
        lh_http_response resp;
        double t0 = lh_now_s();
        lh_status st = lh_http_request("127.0.0.1", c->port, "POST", "/v1/completions", body, strlen(body), &resp);
        r->latency_s = lh_now_s() - t0;
        if (st || resp.status != 200) {
            if (st) fprintf(stderr, "bench_serve: %s\n", lh_last_error());
            else fprintf(stderr, "bench_serve: HTTP %d: %s\n", resp.status, resp.body);
            r->outcome = 3;
        } else {
            int n = parse_tokens(resp.body, stream, ids, c->max_tokens);
            r->tokens = n > 0 ? n : 0;
            r->outcome = n == r->expected_len && !memcmp(ids, r->expected, (size_t)n * sizeof *ids) ? 1 : 2;
        }
        lh_http_response_clear(&resp);
    }
    free(ids);
    return NULL;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int json = 0, clients = 16, per_client = 6, max_tokens = 32, replicas = 2, slots = 8, threads = 1;
    lh_model_config cfg = {.num_layers = 4, .channels = 128, .num_heads = 4, .max_seq_len = 128, .vocab_size = 257};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--clients") && v) clients = atoi(argv[++i]);
        else if (!strcmp(a, "--requests") && v) per_client = atoi(argv[++i]);
        else if (!strcmp(a, "--tokens") && v) max_tokens = atoi(argv[++i]);
        else if (!strcmp(a, "--replicas") && v) replicas = atoi(argv[++i]);
        else if (!strcmp(a, "--slots") && v) slots = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--model") && v &&
                 sscanf(argv[++i], "%d,%d,%d,%d,%d", &cfg.num_layers, &cfg.channels, &cfg.num_heads,
                        &cfg.max_seq_len, &cfg.vocab_size) == 5) {
        } else {
            fprintf(stderr, "usage: bench_serve [--json] [--clients N] [--requests N] [--tokens N] [--replicas R] "
                            "[--slots S] [--model L,C,NH,T,V] [--threads N]\n");
            return 2;
        }
    }
    if (clients < 1 || per_client < 1 || max_tokens < 1 || max_tokens + 40 > cfg.max_seq_len) {
        fprintf(stderr, "bench_serve: need clients, requests >= 1 and tokens + 40 <= context\n");
        return 2;
    }
    lh_model_set_threads(threads);
    lh_stage *stage = NULL;
    lh_tokenizer *tok = NULL;
    lh_serve_backend be = {0};
    lh_server *srv = NULL;
    lh_stage_spec whole;
    lh_status st = lh_model_config_check(&cfg);
    if (!st) whole = lh_stage_spec_whole(&cfg), st = lh_stage_create(&cfg, &whole, 1, cfg.max_seq_len, 1, &stage);
    if (!st) lh_stage_init_params(stage, 42), st = lh_tokenizer_create_byte(&tok);
    if (st) {
        fprintf(stderr, "bench_serve: %s\n", lh_last_error());
        return 1;
    }
    int total = clients * per_client;
    request_spec *reqs = calloc((size_t)total, sizeof *reqs);
    int32_t *buf = malloc((size_t)cfg.max_seq_len * sizeof *buf);
    lh_sampling greedy = {0};
    /* baseline: each prompt alone, one after another */
    double t0 = lh_now_s();
    long baseline_tokens = 0;
    for (int i = 0; i < total && !st; i++) {
        snprintf(reqs[i].prompt, sizeof reqs[i].prompt, "request %d of client %d: ", i % per_client, i / per_client);
        size_t len = strlen(reqs[i].prompt), plen = len;
        for (size_t k = 0; k < len; k++) buf[k] = (unsigned char)reqs[i].prompt[k];
        st = lh_generate(stage, buf, &len, (size_t)max_tokens, &greedy, NULL, NULL);
        reqs[i].expected = malloc((size_t)max_tokens * sizeof(int32_t));
        for (size_t k = plen; k < len && buf[k] != lh_tokenizer_eot(tok); k++)
            reqs[i].expected[reqs[i].expected_len++] = buf[k];
        baseline_tokens += reqs[i].expected_len;
    }
    double baseline_s = lh_now_s() - t0;
    if (!st) st = lh_serve_local_create(stage, replicas, slots, &be);
    lh_server_options opt = {.max_queue = total, .max_connections = clients + 16};
    if (!st) st = lh_server_start(&opt, &be, tok, &srv);
    if (st) {
        fprintf(stderr, "bench_serve: %s\n", lh_last_error());
        return 1;
    }
    client *cl = calloc((size_t)clients, sizeof *cl);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    t0 = lh_now_s();
    for (int c = 0; c < clients; c++) {
        cl[c] = (client){lh_server_port(srv), c, per_client, max_tokens, reqs + (size_t)c * per_client};
        pthread_create(&th[c], NULL, client_main, &cl[c]);
    }
    for (int c = 0; c < clients; c++) pthread_join(th[c], NULL);
    double wall = lh_now_s() - t0;
    lh_server_metrics m;
    lh_server_get_metrics(srv, &m);
    lh_server_stop(srv);
    double *lat = malloc((size_t)total * sizeof *lat);
    long tokens = 0;
    int matches = 0, mismatches = 0, errors = 0;
    for (int i = 0; i < total; i++) {
        lat[i] = reqs[i].latency_s;
        tokens += reqs[i].tokens;
        matches += reqs[i].outcome == 1;
        mismatches += reqs[i].outcome == 2;
        errors += reqs[i].outcome == 3;
    }
    qsort(lat, (size_t)total, sizeof *lat, compare_doubles);
    double p50 = lat[(total - 1) / 2], p99 = lat[(int)((total - 1) * 0.99)];
    double tps = tokens / wall, base_tps = baseline_tokens / baseline_s;
    if (json) {
        printf("{\"bench\":\"serve\",\"model\":\"%d,%d,%d,%d,%d\",\"clients\":%d,\"requests\":%d,\"max_tokens\":%d,"
               "\"replicas\":%d,\"slots\":%d,\"wall_s\":%.3f,\"tokens\":%ld,\"tokens_per_s\":%.1f,\"latency_p50_ms\":%.2f,"
               "\"latency_p99_ms\":%.2f,\"server_ttft_p50_ms\":%.2f,\"server_ttft_p99_ms\":%.2f,"
               "\"mean_decode_batch\":%.2f,\"baseline_tokens_per_s\":%.1f,\"ratio_vs_baseline\":%.3f,"
               "\"matches\":%d,\"mismatches\":%d,\"errors\":%d}\n",
               cfg.num_layers, cfg.channels, cfg.num_heads, cfg.max_seq_len, cfg.vocab_size, clients, total,
               max_tokens, replicas, slots, wall, tokens, tps, 1e3 * p50, 1e3 * p99, 1e3 * m.ttft_p50_s,
               1e3 * m.ttft_p99_s, m.mean_decode_batch, base_tps, tps / base_tps, matches, mismatches, errors);
    } else {
        printf("model L=%d C=%d NH=%d T=%d V=%d; %d clients x %d requests, %d tokens max, %d replicas x %d slots\n",
               cfg.num_layers, cfg.channels, cfg.num_heads, cfg.max_seq_len, cfg.vocab_size, clients, per_client,
               max_tokens, replicas, slots);
        printf("  server:   %.2f s, %ld tokens, %.1f tokens/s, latency p50 %.1f ms p99 %.1f ms, ttft p50 %.1f ms "
               "p99 %.1f ms, mean decode batch %.2f\n",
               wall, tokens, tps, 1e3 * p50, 1e3 * p99, 1e3 * m.ttft_p50_s, 1e3 * m.ttft_p99_s, m.mean_decode_batch);
        printf("  baseline: %.2f s, %ld tokens, %.1f tokens/s (lh_generate, one request at a time, no server)\n",
               baseline_s, baseline_tokens, base_tps);
        printf("  answers:  %d match the baseline, %d mismatch, %d errors\n", matches, mismatches, errors);
    }
    for (int i = 0; i < total; i++) free(reqs[i].expected);
    free(reqs);
    free(buf);
    free(lat);
    free(cl);
    free(th);
    lh_serve_backend_free(&be);
    lh_stage_free(stage);
    lh_tokenizer_free(tok);
    return mismatches || errors ? 1 : 0;
}
