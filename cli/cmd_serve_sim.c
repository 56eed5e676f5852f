/*
 * `longhaul serve-sim`: the serving-side scheduling experiments.
 *
 *  - Default mode: a request trace (file or synthetic) and a node set (file
 *    or synthetic) replayed under one or every model-replication policy
 *    (fixed = Crynux, demand = longhaul's), one row per policy with hit rate,
 *    waits, downloads and disk, so policies are always compared on the very
 *    same inputs.  --save-trace/--save-nodes write the synthetic inputs so a
 *    table in the docs can be reproduced from files.
 *  - --latency: placement for serving latency on a topology: each named
 *    strategy's plan scored by the "serve-latency" cost model (worst
 *    replica's per-token latency, inference memory), so the training
 *    strategies and the serving one are compared on one objective.
 *
 * --json prints one JSON object per row, like the other benchmarks.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "lh_sched.h"
#include "lh_serve_sched.h"
#include "lh_serve_sim.h"
#include "lh_time.h"

static void serve_sim_usage(FILE *out)
{
    fprintf(out,
            "usage: longhaul serve-sim (--trace FILE | --synthetic) (--nodes FILE | --synthetic-nodes N) "
            "[options]\n"
            "       longhaul serve-sim --latency (--topology FILE | --scenario NAME) [options]\n"
            "replication (default mode):\n"
            "  --trace FILE          request trace (format longhaul-serve-trace, docs/serving.md)\n"
            "  --synthetic           generate a trace: Poisson arrivals, Zipf popularity that shifts\n"
            "  --seed S              synthetic trace seed (default 1)\n"
            "  --duration S          synthetic trace length in seconds (default 3600)\n"
            "  --rate R              mean requests per second (default 2)\n"
            "  --models M            number of models (default 20)\n"
            "  --zipf Z              popularity exponent (default 1.1)\n"
            "  --shift S             reshuffle popularity every S seconds, 0 = never (default 900)\n"
            "  --service S           mean service time in seconds (default 4)\n"
            "  --model-gb A,B        model sizes drawn from A..B GB (default 2,16)\n"
            "  --nodes FILE          node set (format longhaul-serve-nodes)\n"
            "  --synthetic-nodes N   N nodes with 40..120 GB disks, 0.1..2.5 Gbit/s (seeded by --node-seed, "
            "default 1)\n"
            "  --policy NAME         fixed, demand or all (default all)\n"
            "  --initial N0          initial copies of every model (default 10)\n"
            "  --floor F             free-holder floor (default 3)\n"
            "  --idle-drop S         fixed: drop extra copies idle S seconds (default 600)\n"
            "  --rate-window S       demand: arrival-rate time constant (default 120)\n"
            "  --headroom H          demand: copies per unit of offered load (default 2)\n"
            "  --hold S              demand: minimum idle time before a drop or eviction (default 300)\n"
            "  --min-copies K        demand: never fewer copies (default 3)\n"
            "  --save-trace FILE     write the trace used;  --save-nodes FILE  write the node set used\n"
            "latency placement (--latency):\n"
            "  --topology FILE | --scenario NAME | --random-geo N   devices and links (as in longhaul plan;\n"
            "                        --regions R, default 8, and --geo-seed S, default 1, for --random-geo)\n"
            "  --workload FILE       workload (default GPT3-XL 8 x 8); --stages P, --replicas D override\n"
            "  --strategies LIST     comma-separated (default rank,ils,serve-latency)\n"
            "  --seed S              strategy seed (default 1);  --evaluations N  search budget (strategy "
            "default)\n"
            "  --out FILE            write the last strategy's plan (cost_model serve-latency)\n"
            "both:\n"
            "  --json                one JSON object per row\n");
}

static int parse_pair(const char *s, double *a, double *b)
{
    char buf[64];
    if (strlen(s) >= sizeof buf) return 0;
    snprintf(buf, sizeof buf, "%s", s);
    char *comma = strchr(buf, ',');
    if (!comma) return 0;
    *comma = 0;
    return cli_parse_double(buf, 1e-9, 1e9, a) && cli_parse_double(comma + 1, *a, 1e9, b);
}

static void print_row(const lh_repl_policy *pol, const lh_repl_result *r, int json, const char *trace_name)
{
    if (json) {
        printf("{\"bench\":\"serve-sim\",\"trace\":\"%s\",\"policy\":\"%s\",\"requests\":%ld,\"served\":%ld,"
               "\"unserved\":%ld,\"hits\":%ld,\"hit_rate\":%.6f,\"wait_mean_s\":%.6f,\"wait_p50_s\":%.6f,"
               "\"wait_p99_s\":%.6f,\"downloads\":%ld,\"download_s\":%.3f,\"bytes_moved\":%.0f,\"drops\":%ld,"
               "\"initial_copies\":%ld,\"mean_stored_bytes\":%.0f,\"end_s\":%.3f,\"events\":%ld}\n",
               trace_name, pol->name, r->requests, r->served, r->unserved, r->hits, r->hit_rate,
               r->wait_mean_s, r->wait_p50_s, r->wait_p99_s, r->downloads, r->download_s, r->bytes_moved,
               r->drops, r->initial_copies, r->mean_stored_bytes, r->end_s, r->events);
    } else {
        printf("%-8s %8ld %7.2f%% %9.3f %9.3f %9.3f %6ld %11.1f %9.1f %6ld %10.1f %8ld\n", pol->name,
               r->requests, 100.0 * r->hit_rate, r->wait_mean_s, r->wait_p50_s, r->wait_p99_s, r->downloads,
               r->download_s, r->bytes_moved / 1e9, r->drops, r->mean_stored_bytes / 1e9, r->unserved);
    }
}

static int run_latency(const char *topology_path, const char *scenario, long geo_n, long regions,
                       long geo_seed, const char *workload_path, long stages, long replicas,
                       const char *strategies, long seed, long evaluations, const char *out_path, int json)
{
    if ((topology_path != NULL) + (scenario != NULL) + (geo_n > 0) != 1) {
        fprintf(
            stderr,
            "longhaul serve-sim: --latency needs exactly one of --topology, --scenario, --random-geo\n\n");
        serve_sim_usage(stderr);
        return LH_EXIT_USAGE;
    }
    char list[512];
    const char *names[16];
    int n_names = 0;
    snprintf(list, sizeof list, "%s", strategies ? strategies : "rank,ils,serve-latency");
    for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
        if (n_names == 16) {
            fprintf(stderr, "longhaul serve-sim: at most 16 strategies\n");
            return LH_EXIT_USAGE;
        }
        names[n_names++] = name;
        if (!lh_serve_strategy_find(name)) {
            fprintf(stderr,
                    "longhaul serve-sim: unknown strategy '%s' (serve-latency or any of longhaul plan's)\n",
                    name);
            return LH_EXIT_USAGE;
        }
    }
    if (n_names == 0) {
        fprintf(stderr, "longhaul serve-sim: --strategies is empty\n");
        return LH_EXIT_USAGE;
    }
    lh_topology *t = NULL;
    lh_sched_problem *p = NULL;
    lh_status st = topology_path ? lh_topology_load(topology_path, &t)
                   : scenario    ? lh_scenario_build(scenario, &t)
                              : lh_scenario_random_geo((int)geo_n, (int)(regions < geo_n ? regions : geo_n),
                                                       (uint64_t)geo_seed, &t);
    if (st) return cli_report("serve-sim", st);
    lh_workload w;
    lh_workload_dtfm_gpt3xl(&w);
    if (workload_path && (st = lh_workload_load(workload_path, &w))) goto fail;
    if (stages) w.stages = (int)stages;
    if (replicas) w.replicas = (int)replicas;
    if (stages && !replicas && t->n_devices % w.stages == 0) w.replicas = t->n_devices / w.stages;
    if (replicas && !stages && t->n_devices % w.replicas == 0) w.stages = t->n_devices / w.replicas;
    if ((st = lh_sched_problem_create(t, &w, &p))) goto fail;
    if (!json)
        printf("serve-latency placement: %d devices, %d stages x %d replicas, one token = %.0f bytes between "
               "stages\n\n%-14s %14s %14s %12s %12s %7s %9s\n",
               t->n_devices, w.stages, w.replicas, lh_serve_token_act_bytes(&w), "strategy", "worst ms/token",
               "mean ms/token", "compute ms", "links ms", "memory", "search s");
    for (int k = 0; k < n_names; k++) {
        const char *name = names[k];
        const lh_strategy *s = lh_serve_strategy_find(name);
        lh_strategy_options o = {(uint64_t)seed, evaluations, 0, NULL};
        lh_plan *plan = NULL;
        double t0 = lh_now_s();
        if ((st = s->run(p, &o, &plan))) goto fail;
        double search_s = lh_now_s() - t0;
        lh_cost_report r;
        double *lat = malloc((size_t)w.replicas * sizeof *lat);
        if (!lat) {
            lh_plan_free(plan);
            st = lh_fail(LH_ERR_NOMEM, "serve-sim: out of memory");
            goto fail;
        }
        st = lh_cost_serve_latency.evaluate(p, plan, &r);
        if (!st) st = lh_serve_replica_latency(p, plan, lat);
        if (st) {
            free(lat);
            lh_plan_free(plan);
            goto fail;
        }
        double mean = 0;
        for (int k = 0; k < w.replicas; k++)
            mean += lat[k] / w.replicas;
        if (json)
            printf("{\"bench\":\"serve-latency\",\"strategy\":\"%s\",\"seed\":%ld,\"worst_s\":%.9f,\"mean_"
                   "s\":%.9f,"
                   "\"compute_s\":%.9f,\"links_s\":%.9f,\"memory_ok\":%s,\"search_s\":%.4f}\n",
                   name, seed, r.total_s, mean, r.compute_s, r.pp_s, r.memory_ok ? "true" : "false",
                   search_s);
        else
            printf("%-14s %14.3f %14.3f %12.3f %12.3f %7s %9.3f\n", name, r.total_s * 1e3, mean * 1e3,
                   r.compute_s * 1e3, r.pp_s * 1e3, r.memory_ok ? "ok" : "OVER", search_s);
        double worst = r.total_s;
        lh_cost_report_clear(&r);
        free(lat);
        if (out_path && k == n_names - 1) { /* the last strategy's plan */
            snprintf(plan->cost_model, sizeof plan->cost_model, "serve-latency");
            plan->cost_s = worst;
            st = lh_plan_save(plan, out_path);
        }
        lh_plan_free(plan);
        if (st) goto fail;
    }
    lh_sched_problem_free(p);
    lh_topology_free(t);
    return LH_EXIT_OK;
fail:
    lh_sched_problem_free(p);
    lh_topology_free(t);
    return cli_report("serve-sim", st);
}

int cmd_serve_sim(int argc, char **argv)
{
    const char *trace_path = NULL, *nodes_path = NULL, *policy_name = "all", *save_trace = NULL,
               *save_nodes = NULL;
    const char *topology_path = NULL, *scenario = NULL, *workload_path = NULL, *strategies = NULL,
               *out_path = NULL;
    int synthetic = 0, json = 0, latency = 0;
    long synthetic_nodes = 0, node_seed = 1, seed = 1, models = 0, stages = 0, replicas = 0, initial = -1,
         floor_free = -1, min_copies = -1, geo_n = 0, regions = 8, geo_seed = 1, evaluations = 0;
    double model_gb_min = 0, model_gb_max = 0;
    lh_repl_synth_options so;
    lh_repl_synth_defaults(&so);
    lh_repl_policy_params pp;
    lh_repl_policy_defaults(&pp);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            serve_sim_usage(stdout);
            return LH_EXIT_OK;
        } else if (strcmp(a, "--synthetic") == 0)
            synthetic = 1;
        else if (strcmp(a, "--json") == 0)
            json = 1;
        else if (strcmp(a, "--latency") == 0)
            latency = 1;
        else if (!has) {
            fprintf(stderr, "longhaul serve-sim: %s needs a value or is unknown\n\n", a);
            serve_sim_usage(stderr);
            return LH_EXIT_USAGE;
        } else if (strcmp(a, "--trace") == 0)
            trace_path = argv[++i];
        else if (strcmp(a, "--nodes") == 0)
            nodes_path = argv[++i];
        else if (strcmp(a, "--policy") == 0)
            policy_name = argv[++i];
        else if (strcmp(a, "--save-trace") == 0)
            save_trace = argv[++i];
        else if (strcmp(a, "--save-nodes") == 0)
            save_nodes = argv[++i];
        else if (strcmp(a, "--topology") == 0)
            topology_path = argv[++i];
        else if (strcmp(a, "--scenario") == 0)
            scenario = argv[++i];
        else if (strcmp(a, "--workload") == 0)
            workload_path = argv[++i];
        else if (strcmp(a, "--strategies") == 0)
            strategies = argv[++i];
        else if (strcmp(a, "--out") == 0)
            out_path = argv[++i];
        else if ((strcmp(a, "--seed") == 0 && cli_parse_long(argv[i + 1], 0, 1L << 62, &seed)) ||
                 (strcmp(a, "--node-seed") == 0 && cli_parse_long(argv[i + 1], 0, 1L << 62, &node_seed)) ||
                 (strcmp(a, "--synthetic-nodes") == 0 &&
                  cli_parse_long(argv[i + 1], 1, LH_REPL_MAX_NODES, &synthetic_nodes)) ||
                 (strcmp(a, "--models") == 0 && cli_parse_long(argv[i + 1], 1, LH_REPL_MAX_MODELS, &models)) ||
                 (strcmp(a, "--random-geo") == 0 && cli_parse_long(argv[i + 1], 1, 2048, &geo_n)) ||
                 (strcmp(a, "--evaluations") == 0 && cli_parse_long(argv[i + 1], 1, 1L << 40, &evaluations)) ||
                 (strcmp(a, "--regions") == 0 && cli_parse_long(argv[i + 1], 1, 1024, &regions)) ||
                 (strcmp(a, "--geo-seed") == 0 && cli_parse_long(argv[i + 1], 0, 1L << 62, &geo_seed)) ||
                 (strcmp(a, "--stages") == 0 && cli_parse_long(argv[i + 1], 1, 100000, &stages)) ||
                 (strcmp(a, "--replicas") == 0 && cli_parse_long(argv[i + 1], 1, 1000000, &replicas)) ||
                 (strcmp(a, "--initial") == 0 && cli_parse_long(argv[i + 1], 0, LH_REPL_MAX_NODES, &initial)) ||
                 (strcmp(a, "--floor") == 0 && cli_parse_long(argv[i + 1], 0, LH_REPL_MAX_NODES, &floor_free)) ||
                 (strcmp(a, "--min-copies") == 0 &&
                  cli_parse_long(argv[i + 1], 0, LH_REPL_MAX_NODES, &min_copies)) ||
                 (strcmp(a, "--duration") == 0 && cli_parse_double(argv[i + 1], 1e-3, 1e9, &so.duration_s)) ||
                 (strcmp(a, "--rate") == 0 && cli_parse_double(argv[i + 1], 1e-9, 1e6, &so.rate_per_s)) ||
                 (strcmp(a, "--zipf") == 0 && cli_parse_double(argv[i + 1], 0, 10, &so.zipf_s)) ||
                 (strcmp(a, "--shift") == 0 && cli_parse_double(argv[i + 1], 0, 1e9, &so.shift_every_s)) ||
                 (strcmp(a, "--service") == 0 && cli_parse_double(argv[i + 1], 1e-3, 1e6, &so.mean_service_s)) ||
                 (strcmp(a, "--model-gb") == 0 && parse_pair(argv[i + 1], &model_gb_min, &model_gb_max)) ||
                 (strcmp(a, "--idle-drop") == 0 && cli_parse_double(argv[i + 1], 1e-6, 1e12, &pp.idle_drop_s)) ||
                 (strcmp(a, "--rate-window") == 0 &&
                  cli_parse_double(argv[i + 1], 1e-6, 1e12, &pp.rate_window_s)) ||
                 (strcmp(a, "--headroom") == 0 && cli_parse_double(argv[i + 1], 1e-6, 1e6, &pp.headroom)) ||
                 (strcmp(a, "--hold") == 0 && cli_parse_double(argv[i + 1], 1e-6, 1e12, &pp.hold_s)))
            i++;
        else {
            fprintf(stderr, "longhaul serve-sim: bad option or value: %s %s\n\n", a, argv[i + 1]);
            serve_sim_usage(stderr);
            return LH_EXIT_USAGE;
        }
    }
    if (latency)
        return run_latency(topology_path, scenario, geo_n, regions, geo_seed, workload_path, stages, replicas,
                           strategies, seed, evaluations, out_path, json);
    if ((trace_path != NULL) + synthetic != 1 || (nodes_path != NULL) + (synthetic_nodes > 0) != 1) {
        fprintf(
            stderr,
            "longhaul serve-sim: give one of --trace/--synthetic and one of --nodes/--synthetic-nodes\n\n");
        serve_sim_usage(stderr);
        return LH_EXIT_USAGE;
    }
    const lh_repl_policy *only = NULL;
    if (strcmp(policy_name, "all") != 0 && !(only = lh_repl_policy_find(policy_name))) {
        fprintf(stderr, "longhaul serve-sim: unknown policy '%s' (fixed, demand, all)\n\n", policy_name);
        serve_sim_usage(stderr);
        return LH_EXIT_USAGE;
    }
    so.seed = (uint64_t)seed;
    if (model_gb_min > 0) so.model_bytes_min = model_gb_min * 1e9, so.model_bytes_max = model_gb_max * 1e9;
    if (models) so.n_models = (int)models;
    if (initial >= 0) pp.initial_copies = (int)initial;
    if (floor_free >= 0) pp.floor_free = (int)floor_free;
    if (min_copies >= 0) pp.min_copies = (int)min_copies;

    lh_repl_trace *trace = NULL;
    lh_repl_nodes *nodes = NULL;
    lh_status st = trace_path ? lh_repl_trace_load(trace_path, &trace) : lh_repl_trace_synthetic(&so, &trace);
    if (!st)
        st = nodes_path ? lh_repl_nodes_load(nodes_path, &nodes)
                        : lh_repl_nodes_synthetic((int)synthetic_nodes, (uint64_t)node_seed, &nodes);
    if (!st && save_trace) st = lh_repl_trace_save(trace, save_trace);
    if (!st && save_nodes) st = lh_repl_nodes_save(nodes, save_nodes);
    if (st) goto fail;
    char trace_name[96];
    if (trace_path)
        snprintf(trace_name, sizeof trace_name, "%.90s", trace_path);
    else
        snprintf(trace_name, sizeof trace_name, "synthetic-seed%ld", seed);
    if (!json) {
        double bytes = 0, disk = 0;
        for (int m = 0; m < trace->n_models; m++)
            bytes += trace->models[m].bytes;
        for (int n = 0; n < nodes->n_nodes; n++)
            disk += nodes->nodes[n].disk_bytes;
        printf("serve-sim: %s: %zu requests over %.0f s, %d models (%.1f GB in all), %d nodes (%.0f GB of "
               "disk)\n"
               "policies: N0 %d, F %d; fixed idle-drop %.0f s; demand window %.0f s, headroom %.2f, hold "
               "%.0f s, "
               "min %d\n\n",
               trace_name, trace->n_requests,
               trace->n_requests ? trace->requests[trace->n_requests - 1].t : 0.0, trace->n_models,
               bytes / 1e9, nodes->n_nodes, disk / 1e9, pp.initial_copies, pp.floor_free, pp.idle_drop_s,
               pp.rate_window_s, pp.headroom, pp.hold_s, pp.min_copies);
        printf("%-8s %8s %8s %9s %9s %9s %6s %11s %9s %6s %10s %8s\n", "policy", "requests", "hits",
               "wait-mean", "wait-p50", "wait-p99", "fetch", "download-s", "moved-GB", "drops", "stored-GB",
               "unserved");
    }
    for (int i = 0; lh_repl_policies[i]; i++) {
        if (only && only != lh_repl_policies[i]) continue;
        lh_repl_result r;
        if ((st = lh_repl_simulate(trace, nodes, lh_repl_policies[i], &pp, &r))) goto fail;
        print_row(lh_repl_policies[i], &r, json, trace_name);
    }
    lh_repl_trace_free(trace);
    lh_repl_nodes_free(nodes);
    return LH_EXIT_OK;
fail:
    lh_repl_trace_free(trace);
    lh_repl_nodes_free(nodes);
    return cli_report("serve-sim", st);
}
