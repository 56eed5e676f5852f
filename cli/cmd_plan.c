/*
 * `longhaul plan`: topology + workload + strategy -> plan file and a human
 * summary (DT-FM COMM-COST, estimated iteration time checked by the
 * simulator, per-stage breakdown, the bottleneck link).
 *
 * The topology comes from a file, a built-in DT-FM scenario or the random
 * geo-distributed generator, so the same command serves a real job and a
 * what-if on a laptop.  Stages/replicas on the command line override the
 * workload's, because trying another split is the commonest experiment.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "lh_sched.h"
#include "lh_time.h"

static void plan_usage(FILE *out)
{
    fprintf(out,
            "usage: longhaul plan (--topology FILE | --scenario NAME | --random-geo N) [options]\n"
            "  --topology FILE      topology file (docs/formats.md)\n"
            "  --scenario NAME      built-in DT-FM scenario: dc-ondemand, dc-spot, two-campus, four-regions, world\n"
            "  --random-geo N       random geo-distributed topology of N devices\n"
            "  --regions R          regions for --random-geo, 1..1024 (default 8)\n"
            "  --region-table FILE  draw --random-geo devices from this topology's regions and region links\n"
            "  --geo-seed S         seed for --random-geo (default 1)\n"
            "  --workload FILE      workload file (default: GPT3-XL with DT-FM's constants, 8 x 8)\n"
            "  --stages P           pipeline stages (overrides the workload)\n"
            "  --replicas D         data-parallel replicas (overrides the workload)\n"
            "  --strategy NAME      rank, random, greedy, dtfm-ga, ils, hier (default ils; hier above 256 devices)\n"
            "  --seed S             strategy seed (default 1)\n"
            "  --evaluations N      search budget (strategy default when omitted)\n"
            "  --balance-layers     give slower stages fewer layers (within memory)\n"
            "  --no-simulate        skip the discrete-event check of the iteration model\n"
            "  --out FILE           write the plan file\n"
            "  --save-topology FILE write the topology used (useful with --scenario/--random-geo)\n"
            "  --curve FILE         write the anytime curve (time_s,cost_s,evaluations) as CSV\n");
}

static void stage_regions(const lh_topology *t, const lh_plan *p, int s, char *buf, size_t cap)
{
    int shown = 0, extra = 0;
    buf[0] = 0;
    for (int r = 0; r < p->replicas; r++) {
        const char *name = t->devices[lh_plan_device(p, r, s)].region;
        int dup = 0;
        for (int q = 0; q < r && !dup; q++) dup = strcmp(t->devices[lh_plan_device(p, q, s)].region, name) == 0;
        if (dup) continue;
        if (shown < 3) {
            size_t len = strlen(buf);
            snprintf(buf + len, cap - len, "%s%s", shown ? "," : "", name);
            shown++;
        } else {
            extra++;
        }
    }
    if (extra) {
        size_t len = strlen(buf);
        snprintf(buf + len, cap - len, ",+%d", extra);
    }
}

int cmd_plan(int argc, char **argv)
{
    const char *topology_path = NULL, *scenario = NULL, *workload_path = NULL, *strategy_name = NULL;
    const char *out_path = NULL, *save_topology = NULL, *curve_path = NULL, *region_table = NULL;
    long geo_n = 0, regions = 8, geo_seed = 1, stages = 0, replicas = 0, seed = 1, evaluations = 0;
    int balance = 0, simulate = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            plan_usage(stdout);
            return LH_EXIT_OK;
        } else if (strcmp(a, "--balance-layers") == 0) balance = 1;
        else if (strcmp(a, "--no-simulate") == 0) simulate = 0;
        else if (!has) {
            fprintf(stderr, "longhaul plan: %s needs a value or is unknown\n\n", a);
            plan_usage(stderr);
            return LH_EXIT_USAGE;
        } else if (strcmp(a, "--topology") == 0) topology_path = argv[++i];
        else if (strcmp(a, "--scenario") == 0) scenario = argv[++i];
        else if (strcmp(a, "--workload") == 0) workload_path = argv[++i];
        else if (strcmp(a, "--strategy") == 0) strategy_name = argv[++i];
        else if (strcmp(a, "--out") == 0) out_path = argv[++i];
        else if (strcmp(a, "--save-topology") == 0) save_topology = argv[++i];
        else if (strcmp(a, "--curve") == 0) curve_path = argv[++i];
        else if (strcmp(a, "--region-table") == 0) region_table = argv[++i];
        else if ((strcmp(a, "--random-geo") == 0 && cli_parse_long(argv[i + 1], 1, 1000000, &geo_n)) ||
                 (strcmp(a, "--regions") == 0 && cli_parse_long(argv[i + 1], 1, 1024, &regions)) ||
                 (strcmp(a, "--geo-seed") == 0 && cli_parse_long(argv[i + 1], 0, 1L << 62, &geo_seed)) ||
                 (strcmp(a, "--stages") == 0 && cli_parse_long(argv[i + 1], 1, 100000, &stages)) ||
                 (strcmp(a, "--replicas") == 0 && cli_parse_long(argv[i + 1], 1, 1000000, &replicas)) ||
                 (strcmp(a, "--seed") == 0 && cli_parse_long(argv[i + 1], 0, 1L << 62, &seed)) ||
                 (strcmp(a, "--evaluations") == 0 && cli_parse_long(argv[i + 1], 1, 1L << 40, &evaluations)))
            i++;
        else {
            fprintf(stderr, "longhaul plan: bad option or value: %s %s\n\n", a, argv[i + 1]);
            plan_usage(stderr);
            return LH_EXIT_USAGE;
        }
    }
    if (region_table && geo_n <= 0) {
        fprintf(stderr, "longhaul plan: --region-table goes with --random-geo N\n\n");
        plan_usage(stderr);
        return LH_EXIT_USAGE;
    }
    if ((topology_path != NULL) + (scenario != NULL) + (geo_n > 0) != 1) {
        fprintf(stderr, "longhaul plan: give exactly one of --topology, --scenario, --random-geo\n\n");
        plan_usage(stderr);
        return LH_EXIT_USAGE;
    }
    lh_topology *t = NULL;
    lh_sched_problem *p = NULL;
    lh_plan *plan = NULL;
    lh_anytime curve = {0};
    lh_status st;
    if (topology_path) st = lh_topology_load(topology_path, &t);
    else if (scenario) st = lh_scenario_build(scenario, &t);
    else if (region_table) {
        lh_topology *table = NULL;
        st = lh_topology_load(region_table, &table);
        if (!st) st = lh_scenario_from_region_table(table, (int)geo_n, (uint64_t)geo_seed, &t);
        lh_topology_free(table);
    } else
        st = lh_scenario_random_geo((int)geo_n, (int)(regions < geo_n ? regions : geo_n), (uint64_t)geo_seed, &t);
    if (st) return cli_report("plan", st);
    lh_workload w;
    lh_workload_dtfm_gpt3xl(&w);
    if (workload_path && (st = lh_workload_load(workload_path, &w))) goto fail;
    if (stages) w.stages = (int)stages;
    if (replicas) w.replicas = (int)replicas;
    if (stages && !replicas && t->n_devices % w.stages == 0) w.replicas = t->n_devices / w.stages;
    if (replicas && !stages && t->n_devices % w.replicas == 0) w.stages = t->n_devices / w.replicas;
    if ((st = lh_sched_problem_create(t, &w, &p))) goto fail;
    if (!strategy_name) strategy_name = t->n_devices <= 256 ? "ils" : "hier";
    const lh_strategy *strategy = lh_strategy_find(strategy_name);
    if (!strategy) {
        fprintf(stderr, "longhaul plan: unknown strategy '%s' (", strategy_name);
        for (size_t i = 0; i < lh_strategy_count(); i++) fprintf(stderr, "%s%s", i ? ", " : "", lh_strategy_at(i)->name);
        fprintf(stderr, ")\n");
        lh_sched_problem_free(p);
        lh_topology_free(t);
        return LH_EXIT_USAGE;
    }
    lh_strategy_options o = {(uint64_t)seed, evaluations, 0, &curve};
    double t0 = lh_now_s();
    if ((st = strategy->run(p, &o, &plan))) goto fail;
    double search_s = lh_now_s() - t0;
    if (balance && (st = lh_plan_balance_layers(p, plan))) goto fail;
    lh_cost_report dtfm, it;
    if ((st = lh_cost_dtfm.evaluate(p, plan, &dtfm))) goto fail;
    plan->cost_s = dtfm.total_s;
    if ((st = lh_cost_iteration.evaluate(p, plan, &it))) {
        lh_cost_report_clear(&dtfm);
        goto fail;
    }
    int used_regions = 0;
    for (int r = 0; r < t->n_regions; r++) {
        int used = 0;
        for (int d = 0; d < t->n_devices && !used; d++) used = t->devices[d].region_index == r;
        used_regions += used;
    }
    printf("longhaul plan: %d devices in %d regions, %d stages x %d replicas, strategy %s (seed %ld): %.3f s\n",
           t->n_devices, used_regions, w.stages, w.replicas, strategy->name, seed, search_s);
    printf("DT-FM COMM-COST  %10.4f s   (data-parallel %.4f s + pipeline %.4f s)\n", dtfm.total_s, dtfm.dp_s,
           dtfm.pp_s);
    char sched_name[32];
    if (w.schedule == LH_SCHEDULE_GPIPE) snprintf(sched_name, sizeof sched_name, "GPipe");
    else if (w.depth > 1) snprintf(sched_name, sizeof sched_name, "1F1B depth %d", w.depth);
    else snprintf(sched_name, sizeof sched_name, "1F1B");
    printf("iteration time   %10.4f s   (model, %s, %d micro-batches; pipeline %.4f s, compute %.4f s, bubble "
           "%.4f s, slowest DP sync %.4f s, control %.4f s)\n",
           it.total_s, sched_name, w.batch / w.micro_batch, it.pp_s, it.compute_s, it.bubble_s, it.dp_s,
           it.control_s);
    if (simulate && (long long)w.stages * (w.batch / w.micro_batch) * w.replicas <= 50000000LL) {
        lh_sim_result sim;
        if ((st = lh_simulate_iteration(p, plan, &sim))) {
            lh_cost_report_clear(&dtfm);
            lh_cost_report_clear(&it);
            goto fail;
        }
        printf("simulated        %10.4f s   (pipeline %.4f s, slowest DP sync %.4f s; %ld events; model %+.1f%% vs "
               "simulator)\n",
               sim.iteration_s, sim.pipeline_s, sim.dp_s, sim.events,
               100.0 * (it.total_s - sim.iteration_s) / sim.iteration_s);
    }
    printf("\nstage layers  regions                    compute/mb(s)  dp-sync(s)  link->next(s)  memory GB (min dev)\n");
    for (int s = 0; s < plan->stages; s++) {
        char regs[128];
        stage_regions(t, plan, s, regs, sizeof regs);
        double min_mem = 1e300;
        for (int r = 0; r < plan->replicas; r++)
            if (t->devices[lh_plan_device(plan, r, s)].memory_bytes < min_mem)
                min_mem = t->devices[lh_plan_device(plan, r, s)].memory_bytes;
        char link[32] = "-";
        if (s + 1 < plan->stages) snprintf(link, sizeof link, "%.4f", it.link_s[s]);
        printf("%5d %6d  %-26s %13.4f %11.4f %14s  %6.2f (%.2f)\n", s, plan->num_layers[s], regs,
               it.stage_compute_s[s], it.stage_dp_s[s], link, it.stage_memory_bytes[s] / 1e9, min_mem / 1e9);
        if (s == 31 && plan->stages > 40) {
            printf("  ... %d more stages\n", plan->stages - 32);
            break;
        }
    }
    if (it.bottleneck_from >= 0) {
        const lh_device *a = &t->devices[it.bottleneck_from], *b = &t->devices[it.bottleneck_to];
        printf("\nbottleneck: %s link %d (%s, %s) -> %d (%s, %s): %.4f s\n", it.bottleneck_kind, a->id, a->name,
               a->region, b->id, b->name, b->region, it.bottleneck_s);
    }
    if (dtfm.bottleneck_from >= 0) {
        const lh_device *a = &t->devices[dtfm.bottleneck_from], *b = &t->devices[dtfm.bottleneck_to];
        printf("DT-FM bottleneck: %s link %d (%s) -> %d (%s): %.4f s\n", dtfm.bottleneck_kind, a->id, a->region, b->id,
               b->region, dtfm.bottleneck_s);
    }
    if (!it.memory_ok) printf("warning: some device cannot hold its stage (see the memory column)\n");
    lh_cost_report_clear(&dtfm);
    lh_cost_report_clear(&it);
    if (out_path) {
        if ((st = lh_plan_save(plan, out_path))) goto fail;
        printf("plan written to %s\n", out_path);
    }
    if (save_topology) {
        if ((st = lh_topology_save(t, save_topology))) goto fail;
        printf("topology written to %s\n", save_topology);
    }
    if (curve_path) {
        FILE *f = fopen(curve_path, "w");
        if (!f) {
            st = lh_fail(LH_ERR_IO, "cannot write %s", curve_path);
            goto fail;
        }
        fprintf(f, "time_s,cost_s,evaluations\n");
        for (size_t i = 0; i < curve.count; i++)
            fprintf(f, "%.6f,%.6f,%ld\n", curve.t_s[i], curve.cost_s[i], curve.evaluations[i]);
        if (fclose(f)) {
            st = lh_fail(LH_ERR_IO, "cannot write %s", curve_path);
            goto fail;
        }
    }
    lh_anytime_clear(&curve);
    lh_plan_free(plan);
    lh_sched_problem_free(p);
    lh_topology_free(t);
    return LH_EXIT_OK;
fail:
    lh_anytime_clear(&curve);
    lh_plan_free(plan);
    lh_sched_problem_free(p);
    lh_topology_free(t);
    return cli_report("plan", st);
}
