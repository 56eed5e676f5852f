/*
 * Serving-side scheduling tests: the serve-latency cost model and strategy
 * against hand-computed latencies (it must avoid a slow link that rank order
 * uses, and respect inference memory), and the replication simulator against
 * a trace worked out by hand event by event (every output number asserted),
 * plus the rules policies must obey and clear errors on bad input files.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lh_serve_sched.h"
#include "lh_serve_sim.h"
#include "lh_test.h"

#define NEAR(a, b) CU_ASSERT_DOUBLE_EQUAL((a), (b), 1e-12 * fmax(1.0, fabs(b)))

/* ---------------- latency placement ---------------- */

/* 2 layers, hidden 64, context 16, vocab 1000, 2 stages x 2 replicas, fp16, one sequence of KV cache. */
static lh_workload serve_workload(void)
{
    lh_workload w;
    lh_workload_dtfm_gpt3xl(&w);
    w.layers = 2;
    w.hidden = 64;
    w.seq_len = 16;
    w.vocab = 1000;
    w.stages = 2;
    w.replicas = 2;
    w.batch = 1;
    w.micro_batch = 1;
    w.act_bytes = 2;
    w.act_bits = 16;
    w.dtfm_c_dp_bytes = 0;
    w.dtfm_c_pp_bytes = 0;
    return w;
}

/* Four 1 TFLOP/s devices, 1 ms / 1 Gbit/s everywhere except 0-2 and 1-3: 100 ms (the pairs rank order uses).
 */
static lh_topology *slow_pairs_topology(void)
{
    lh_topology *t;
    LH_ASSERT_OK(lh_topology_create(4, &t));
    t->has_default_link = 1;
    t->default_link = (lh_link){0.001, 1e9};
    lh_link slow = {0.100, 1e9};
    LH_ASSERT_OK(lh_topology_set_pair_link(t, 0, 2, slow, 1));
    LH_ASSERT_OK(lh_topology_set_pair_link(t, 1, 3, slow, 1));
    LH_ASSERT_OK(lh_topology_validate(t));
    return t;
}

/*
 * By hand: one block = 12*64^2 + 13*64 = 49,984 parameters.
 * Token FLOPs: stage 0 = 2*49,984 + 4*16*64 = 104,064; stage 1 adds the head 2*64*1000 = 128,000 -> 232,064.
 * At 1e12 FLOP/s: 1.04064e-7 s + 2.32064e-7 s = 3.36128e-7 s.  One token = 64*16 = 1,024 bits -> 1.024e-6 s.
 * Fast path: 0.001 + 1.024e-6 + 3.36128e-7 = 0.001001360128 s; through a 100 ms pair: 0.100001360128 s.
 * Memory: stage 0 = (49,984 + 64,000 + 1,024) * 2 + KV 2*1*1*16*64*2 (4,096) = 234,112 bytes;
 *         stage 1 = (49,984 + 64,000 + 128) * 2 + 4,096 = 232,320 bytes.
 */
static void test_serve_accounting_by_hand(void)
{
    lh_workload w = serve_workload();
    NEAR(lh_serve_token_flops(&w, 1, 0), 104064.0);
    NEAR(lh_serve_token_flops(&w, 1, 1), 232064.0);
    NEAR(lh_serve_token_act_bytes(&w), 128.0);
    NEAR(lh_serve_stage_memory(&w, 1, 1, 0), 234112.0);
    NEAR(lh_serve_stage_memory(&w, 1, 0, 1), 232320.0);
}

static void test_serve_latency_avoids_slow_link(void)
{
    lh_topology *t = slow_pairs_topology();
    lh_workload w = serve_workload();
    lh_sched_problem *p;
    LH_ASSERT_OK(lh_sched_problem_create(t, &w, &p));
    const lh_cost_model *cm = lh_serve_cost_model_find("serve-latency");
    const lh_strategy *sl = lh_serve_strategy_find("serve-latency");
    CU_ASSERT_PTR_EQUAL(cm, &lh_cost_serve_latency);
    CU_ASSERT_PTR_EQUAL(sl, &lh_strategy_serve_latency);
    CU_ASSERT_PTR_EQUAL(lh_serve_strategy_find("rank"), lh_strategy_find("rank"));
    CU_ASSERT_PTR_EQUAL(lh_serve_cost_model_find("dtfm"), &lh_cost_dtfm);
    CU_ASSERT_PTR_NULL(lh_serve_strategy_find("no-such"));

    lh_plan *rank;
    lh_strategy_options o = {.seed = 7};
    LH_ASSERT_OK(lh_strategy_find("rank")->run(p, &o, &rank));
    CU_ASSERT_EQUAL(lh_plan_device(rank, 0, 0), 0);
    CU_ASSERT_EQUAL(lh_plan_device(rank, 0, 1), 2); /* rank order crosses the slow 0-2 pair */
    lh_cost_report r;
    LH_ASSERT_OK(cm->evaluate(p, rank, &r));
    NEAR(r.total_s, 0.100001360128);
    NEAR(r.compute_s, 3.36128e-7);
    NEAR(r.pp_s, 0.100001024);
    NEAR(r.stage_compute_s[1], 2.32064e-7);
    NEAR(r.link_s[0], 0.100001024);
    NEAR(r.stage_memory_bytes[0], 234112.0);
    CU_ASSERT_EQUAL(r.memory_ok, 1);
    CU_ASSERT_TRUE((r.bottleneck_from == 0 && r.bottleneck_to == 2) ||
                   (r.bottleneck_from == 1 && r.bottleneck_to == 3));
    lh_cost_report_clear(&r);

    lh_plan *best, *again;
    LH_ASSERT_OK(sl->run(p, &o, &best));
    LH_ASSERT_OK(sl->run(p, &o, &again));
    CU_ASSERT_EQUAL(memcmp(best->device, again->device, 4 * sizeof(int)), 0); /* deterministic for a seed */
    CU_ASSERT_STRING_EQUAL(best->cost_model, "serve-latency");
    NEAR(best->cost_s, 0.001001360128);
    for (int rep = 0; rep < 2; rep++) {
        int a = lh_plan_device(best, rep, 0), b = lh_plan_device(best, rep, 1);
        CU_ASSERT_FALSE((a == 0 && b == 2) || (a == 2 && b == 0) || (a == 1 && b == 3) || (a == 3 && b == 1));
    }
    LH_ASSERT_OK(cm->evaluate(p, best, &r));
    NEAR(r.total_s, best->cost_s); /* the strategy reports what its plan realises */
    lh_cost_report_clear(&r);
    double lat[2];
    LH_ASSERT_OK(lh_serve_replica_latency(p, best, lat));
    NEAR(lat[0], 0.001001360128);
    NEAR(lat[1], 0.001001360128);
    lh_plan_free(rank), lh_plan_free(best), lh_plan_free(again);
    lh_sched_problem_free(p);
    lh_topology_free(t);
}

static void test_serve_latency_respects_memory(void)
{
    lh_topology *t = slow_pairs_topology();
    t->devices[3].memory_bytes = 233000; /* holds stage 1 (232,320 B) but not stage 0 (234,112 B) */
    lh_workload w = serve_workload();
    lh_sched_problem *p;
    LH_ASSERT_OK(lh_sched_problem_create(t, &w, &p));
    for (uint64_t seed = 1; seed <= 5; seed++) {
        lh_plan *pl;
        lh_strategy_options o = {.seed = seed};
        LH_ASSERT_OK(lh_strategy_serve_latency.run(p, &o, &pl));
        int rep, stage;
        CU_ASSERT_TRUE(lh_plan_find_device(pl, 3, &rep, &stage));
        CU_ASSERT_EQUAL(stage, 1);
        NEAR(pl->cost_s, 0.001001360128);
        lh_plan_free(pl);
    }
    t->devices[2].memory_bytes = 1000; /* now nobody can take device 2's slot */
    lh_plan *pl = NULL;
    lh_strategy_options o = {.seed = 1};
    LH_ASSERT_FAILS_WITH(lh_strategy_serve_latency.run(p, &o, &pl), LH_ERR_CAPACITY, "device 2");
    CU_ASSERT_PTR_NULL(pl);
    lh_sched_problem_free(p);
    lh_topology_free(t);
}

/* ---------------- replication simulator ---------------- */

static const char *hand_trace =
    "{\"format\":\"longhaul-serve-trace\",\"version\":1,"
    "\"models\":[{\"id\":\"X\",\"bytes\":1e9},{\"id\":\"Y\",\"bytes\":2e9}],"
    "\"requests\":[{\"t\":0,\"model\":\"X\",\"duration_s\":5},{\"t\":1,\"model\":\"X\",\"duration_s\":3},"
    "{\"t\":2,\"model\":\"Y\",\"duration_s\":4},{\"t\":20,\"model\":\"X\",\"duration_s\":1}]}";

static const char *hand_nodes = "{\"format\":\"longhaul-serve-nodes\",\"version\":1,\"nodes\":["
                                "{\"id\":\"A\",\"disk_bytes\":1e10,\"download_gbps\":1},{\"id\":\"B\",\"disk_"
                                "bytes\":1e10,\"download_gbps\":2},"
                                "{\"id\":\"C\",\"disk_bytes\":1e10,\"download_gbps\":4}]}";

/*
 * The fixed policy with N0 = 1, F = 1, idle_drop_s = 10, worked by hand
 * (X takes 8/4/2 s to fetch on A/B/C, Y 16/8/4 s):
 *   init  A holds X, B holds Y (model m starts at node m*N0 mod 3).  Disk in use 3 GB.
 *   t=0   r0(X) hits A (busy to 5).  X has 0 free holders < F: fetch X on the first idle node, B (done 4).  4
 * GB. t=1   r1(X): no free complete holder -> queued.  X: 0 free + 1 pending = F, nothing to do. t=2   r2(Y)
 * hits B (busy to 6).  Y: 0 free: fetch Y on C (idle; A busy) (done 6).  6 GB. t=4   B finishes X (busy
 * serving Y, takes nothing).  X: 0 free, no idle node can fetch (C is fetching). X has 2 > N0 copies: B's X
 * idle since 4 -> wake at 14. t=5   A completes r0 and takes r1 (wait 4), busy to 8. t=6   B completes r2
 * (completions first), then C finishes Y.  Y: 2 copies, due 16. t=8   A completes r1. t=14  wake: drop B's X
 * (A stays free, F kept).  5 GB.  Next: Y copies due at 16. t=16  wake: drop B's Y (idle since 6; C stays
 * free).  3 GB. t=20  r3(X) hits A (busy to 21).  X: 0 free -> fetch X on B again (B idle, lowest id).  4 GB.
 *   t=21  A completes r3: the last request, the run ends.
 * hits 3/4, waits {0,4,0,0}: mean 1, p50 0, p99 4; 3 downloads of 4 s each = 12 s, 4 GB moved; 2 drops;
 * disk: 4*2 + 6*12 + 5*2 + 3*4 + 4*1 = 106 GB*s over 21 s; events: 4 arrivals, 4 completions, 2 downloads, 2
 * wakes.
 */
static void test_sim_reproduces_hand_trace(void)
{
    lh_repl_trace *t;
    lh_repl_nodes *n;
    LH_ASSERT_OK(lh_repl_trace_parse("hand.json", hand_trace, strlen(hand_trace), &t));
    LH_ASSERT_OK(lh_repl_nodes_parse("nodes.json", hand_nodes, strlen(hand_nodes), &n));
    CU_ASSERT_EQUAL(t->n_models, 2);
    CU_ASSERT_EQUAL(t->n_requests, 4);
    CU_ASSERT_EQUAL(t->requests[2].model, 1);
    lh_repl_policy_params pp;
    lh_repl_policy_defaults(&pp);
    pp.initial_copies = 1, pp.floor_free = 1, pp.idle_drop_s = 10;
    lh_repl_result r;
    LH_ASSERT_OK(lh_repl_simulate(t, n, lh_repl_policy_find("fixed"), &pp, &r));
    CU_ASSERT_EQUAL(r.requests, 4);
    CU_ASSERT_EQUAL(r.served, 4);
    CU_ASSERT_EQUAL(r.unserved, 0);
    CU_ASSERT_EQUAL(r.hits, 3);
    NEAR(r.hit_rate, 0.75);
    NEAR(r.wait_mean_s, 1.0);
    NEAR(r.wait_p50_s, 0.0);
    NEAR(r.wait_p99_s, 4.0);
    CU_ASSERT_EQUAL(r.downloads, 3);
    NEAR(r.download_s, 12.0);
    NEAR(r.bytes_moved, 4e9);
    CU_ASSERT_EQUAL(r.drops, 2);
    CU_ASSERT_EQUAL(r.initial_copies, 2);
    NEAR(r.end_s, 21.0);
    NEAR(r.mean_stored_bytes, 106e9 / 21.0);
    CU_ASSERT_EQUAL(r.events, 12);
    lh_repl_trace_free(t);
    lh_repl_nodes_free(n);
}

/* A policy that places nothing: every request stays queued and is reported, not lost or hung. */
static void test_sim_counts_unserved(void)
{
    lh_repl_trace *t;
    lh_repl_nodes *n;
    LH_ASSERT_OK(lh_repl_trace_parse("hand.json", hand_trace, strlen(hand_trace), &t));
    LH_ASSERT_OK(lh_repl_nodes_parse("nodes.json", hand_nodes, strlen(hand_nodes), &n));
    lh_repl_policy_params pp;
    lh_repl_policy_defaults(&pp);
    pp.initial_copies = 0, pp.floor_free = 0;
    lh_repl_result r;
    LH_ASSERT_OK(lh_repl_simulate(t, n, &lh_repl_policy_fixed, &pp, &r));
    CU_ASSERT_EQUAL(r.served, 0);
    CU_ASSERT_EQUAL(r.unserved, 4);
    CU_ASSERT_EQUAL(r.hits, 0);
    CU_ASSERT_EQUAL(r.downloads, 0);
    /* The demand policy with no initial copies fetches on the first queued request. */
    pp.floor_free = 3;
    LH_ASSERT_OK(lh_repl_simulate(t, n, &lh_repl_policy_demand, &pp, &r));
    CU_ASSERT_EQUAL(r.served, 4);
    CU_ASSERT_TRUE(r.downloads >= 2);
    CU_ASSERT_TRUE(r.wait_p99_s > 0);
    lh_repl_trace_free(t);
    lh_repl_nodes_free(n);
}

/* A policy that breaks the rules is refused with a message naming the rule. */
static lh_status greedy_fetch_react(void *state, lh_repl_sim *sim, const lh_repl_event *ev)
{
    int *which = state;
    if (ev->kind == LH_REPL_EV_INIT) return lh_repl_sim_place(sim, 0, 1); /* Y (2 GB) on A (10 GB) */
    if (*which == 0) return lh_repl_sim_place(sim, 1, 0);                 /* place after init */
    if (*which == 1) {                                                    /* two downloads at once */
        lh_status st = lh_repl_sim_fetching(sim, 2) < 0 ? lh_repl_sim_fetch(sim, 2, 0) : LH_OK;
        return st ? st : lh_repl_sim_fetch(sim, 2, 1);
    }
    if (*which == 2) /* r2 (Y) hits A at t=2, so A's Y is in use */
        return ev->kind == LH_REPL_EV_ARRIVAL && ev->request == 2 ? lh_repl_sim_drop(sim, 0, 1) : LH_OK;
    return lh_repl_sim_wake_at(sim, lh_repl_sim_now(sim));
}

static lh_status rule_create(const lh_repl_sim *sim, const lh_repl_policy_params *p, void **state)
{
    (void)sim, (void)p;
    static int which;
    *state = &which;
    return LH_OK;
}

static void test_sim_enforces_rules(void)
{
    lh_repl_trace *t;
    lh_repl_nodes *n;
    LH_ASSERT_OK(lh_repl_trace_parse("hand.json", hand_trace, strlen(hand_trace), &t));
    LH_ASSERT_OK(lh_repl_nodes_parse("nodes.json", hand_nodes, strlen(hand_nodes), &n));
    lh_repl_policy_params pp;
    lh_repl_policy_defaults(&pp);
    lh_repl_policy bad = {"bad", "breaks rules", rule_create, greedy_fetch_react, NULL};
    lh_repl_result r;
    int *which;
    rule_create(NULL, NULL, (void **)&which);
    *which = 0;
    LH_ASSERT_FAILS_WITH(lh_repl_simulate(t, n, &bad, &pp, &r), LH_ERR_INVALID_ARG, "only allowed at init");
    *which = 1;
    LH_ASSERT_FAILS_WITH(lh_repl_simulate(t, n, &bad, &pp, &r), LH_ERR_INVALID_ARG, "already downloading");
    *which = 2;
    LH_ASSERT_FAILS_WITH(lh_repl_simulate(t, n, &bad, &pp, &r), LH_ERR_INVALID_ARG,
                         "node A is serving model Y");
    *which = 3;
    LH_ASSERT_FAILS_WITH(lh_repl_simulate(t, n, &bad, &pp, &r), LH_ERR_INVALID_ARG, "is not after now");
    n->nodes[0].disk_bytes = 1e9; /* too small for Y's 2 GB */
    *which = 0;
    LH_ASSERT_FAILS_WITH(lh_repl_simulate(t, n, &bad, &pp, &r), LH_ERR_CAPACITY,
                         "node A has 1000000000 free bytes");
    lh_repl_trace_free(t);
    lh_repl_nodes_free(n);
}

static void expect_trace_error(const char *text, const char *needle)
{
    lh_repl_trace *t = (lh_repl_trace *)1;
    LH_ASSERT_FAILS_WITH(lh_repl_trace_parse("t.json", text, strlen(text), &t), LH_ERR_FORMAT, needle);
    CU_ASSERT_PTR_NULL(t);
}

static void test_bad_files_have_clear_errors(void)
{
    expect_trace_error(
        "{\"format\":\"longhaul-serve-trace\",\"version\":1,\"models\":[{\"id\":\"X\",\"bytes\":1}],"
        "\"requests\":[{\"t\":0,\"model\":\"Z\",\"duration_s\":1}]}",
        "t.json: $.requests[0].model: unknown model \"Z\"");
    expect_trace_error(
        "{\"format\":\"longhaul-serve-trace\",\"version\":1,\"models\":[{\"id\":\"X\",\"bytes\":1}],"
        "\"requests\":[{\"t\":5,\"model\":\"X\",\"duration_s\":1},{\"t\":4,\"model\":\"X\",\"duration_s\":1}]"
        "}",
        "$.requests[1].t: arrival 4 is before");
    expect_trace_error(
        "{\"format\":\"longhaul-serve-trace\",\"version\":1,\"models\":[{\"id\":\"X\",\"bytes\":1},"
        "{\"id\":\"X\",\"bytes\":2}],\"requests\":[]}",
        "$.models[1].id: model id \"X\" appears twice");
    expect_trace_error(
        "{\"format\":\"longhaul-serve-trace\",\"version\":1,\"models\":[{\"id\":\"X\",\"bytes\":1,"
        "\"size\":3}],\"requests\":[]}",
        "$.models[0]");
    expect_trace_error(
        "{\"format\":\"longhaul-serve-trace\",\"version\":1,\"models\":[{\"id\":\"X\",\"bytes\":1}],"
        "\"requests\":[{\"t\":0,\"model\":\"X\",\"duration_s\":0}]}",
        "$.requests[0].duration_s");
    expect_trace_error("{\"format\":\"longhaul-serve-nodes\",\"version\":1}", "format");
    lh_repl_nodes *n = (lh_repl_nodes *)1;
    const char *dup =
        "{\"format\":\"longhaul-serve-nodes\",\"version\":1,\"nodes\":[{\"id\":\"a\",\"disk_bytes\":1,"
        "\"download_gbps\":1},{\"id\":\"a\",\"disk_bytes\":1,\"download_gbps\":1}]}";
    LH_ASSERT_FAILS_WITH(lh_repl_nodes_parse("n.json", dup, strlen(dup), &n), LH_ERR_FORMAT,
                         "n.json: $.nodes[1].id: node id \"a\" appears twice");
    CU_ASSERT_PTR_NULL(n);
    const char *neg =
        "{\"format\":\"longhaul-serve-nodes\",\"version\":1,\"nodes\":[{\"id\":\"a\",\"disk_bytes\":1,"
        "\"download_gbps\":-1}]}";
    LH_ASSERT_FAILS_WITH(lh_repl_nodes_parse("n.json", neg, strlen(neg), &n), LH_ERR_FORMAT,
                         "$.nodes[0].download_gbps");
}

/* Synthetic inputs are deterministic, sorted, and both policies serve every request on them. */
static void test_synthetic_and_policies(void)
{
    lh_repl_synth_options so;
    lh_repl_synth_defaults(&so);
    so.duration_s = 900, so.shift_every_s = 300, so.n_models = 8;
    lh_repl_trace *a, *b;
    lh_repl_nodes *n;
    LH_ASSERT_OK(lh_repl_trace_synthetic(&so, &a));
    LH_ASSERT_OK(lh_repl_trace_synthetic(&so, &b));
    CU_ASSERT_EQUAL(a->n_requests, b->n_requests);
    CU_ASSERT_TRUE(a->n_requests > 1500 && a->n_requests < 2100); /* Poisson, mean 1800 */
    int same = 1;
    for (size_t i = 0; i < a->n_requests; i++)
        same &= a->requests[i].t == b->requests[i].t && a->requests[i].model == b->requests[i].model &&
                a->requests[i].duration_s == b->requests[i].duration_s;
    CU_ASSERT_TRUE(same);
    for (size_t i = 1; i < a->n_requests; i++)
        CU_ASSERT_FATAL(a->requests[i].t >= a->requests[i - 1].t);
    LH_ASSERT_OK(lh_repl_nodes_synthetic(24, 3, &n));
    lh_repl_policy_params pp;
    lh_repl_policy_defaults(&pp);
    pp.initial_copies = 3;
    for (int i = 0; lh_repl_policies[i]; i++) {
        lh_repl_result r1, r2;
        LH_ASSERT_OK(lh_repl_simulate(a, n, lh_repl_policies[i], &pp, &r1));
        LH_ASSERT_OK(lh_repl_simulate(a, n, lh_repl_policies[i], &pp, &r2));
        CU_ASSERT_EQUAL(r1.served, (long)a->n_requests);
        CU_ASSERT_EQUAL(memcmp(&r1, &r2, sizeof r1), 0); /* deterministic */
        CU_ASSERT_TRUE(r1.hit_rate > 0 && r1.hit_rate <= 1);
        CU_ASSERT_TRUE(r1.wait_p50_s <= r1.wait_p99_s);
    }
    lh_repl_synth_options bad = so;
    bad.rate_per_s = 0;
    lh_repl_trace *c = NULL;
    LH_ASSERT_FAILS_WITH(lh_repl_trace_synthetic(&bad, &c), LH_ERR_INVALID_ARG, "rate > 0");
    lh_repl_trace_free(a), lh_repl_trace_free(b);
    lh_repl_nodes_free(n);
}

/*
 * The comparison docs/serving.md reports, as a regression check on its shape:
 * 60 models (~540 GB) with N0 = 10 do not fit 40 nodes' 3,420 GB, so the fixed
 * rule leaves some models without any copy (requests unserved) and never
 * frees base copies for them, while the demand policy evicts idle surplus
 * copies and serves every request with more hits and less disk.
 */
static void test_demand_beats_fixed_when_disk_bound(void)
{
    lh_repl_synth_options so;
    lh_repl_synth_defaults(&so);
    so.n_models = 60, so.duration_s = 900, so.shift_every_s = 300;
    lh_repl_trace *t;
    lh_repl_nodes *n;
    LH_ASSERT_OK(lh_repl_trace_synthetic(&so, &t));
    LH_ASSERT_OK(lh_repl_nodes_synthetic(40, 1, &n));
    lh_repl_policy_params pp;
    lh_repl_policy_defaults(&pp);
    lh_repl_result fixed, demand;
    LH_ASSERT_OK(lh_repl_simulate(t, n, &lh_repl_policy_fixed, &pp, &fixed));
    LH_ASSERT_OK(lh_repl_simulate(t, n, &lh_repl_policy_demand, &pp, &demand));
    CU_ASSERT_TRUE(fixed.unserved > 0);
    CU_ASSERT_EQUAL(demand.unserved, 0);
    CU_ASSERT_TRUE(demand.hit_rate > fixed.hit_rate);
    CU_ASSERT_TRUE(demand.mean_stored_bytes < fixed.mean_stored_bytes);
    CU_ASSERT_TRUE(demand.drops > 0 && demand.downloads > fixed.downloads);
    lh_repl_trace_free(t);
    lh_repl_nodes_free(n);
}

static CU_TestInfo latency_tests[] = {
    {"inference FLOPs and memory by hand", test_serve_accounting_by_hand},
    {"serve-latency avoids the slow link rank order uses", test_serve_latency_avoids_slow_link},
    {"serve-latency respects inference memory", test_serve_latency_respects_memory},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo sim_tests[] = {
    {"simulator reproduces a hand-computed trace", test_sim_reproduces_hand_trace},
    {"requests without copies are counted unserved", test_sim_counts_unserved},
    {"policies cannot break the rules", test_sim_enforces_rules},
    {"bad trace and node files give clear errors", test_bad_files_have_clear_errors},
    {"synthetic inputs and both policies", test_synthetic_and_policies},
    {"demand beats fixed when the disks are full", test_demand_beats_fixed_when_disk_bound},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"serve latency placement", NULL, NULL, NULL, NULL, latency_tests},
        {"serve replication simulator", NULL, NULL, NULL, NULL, sim_tests},
        CU_SUITE_INFO_NULL,
    };
    return lh_test_run(suites);
}
