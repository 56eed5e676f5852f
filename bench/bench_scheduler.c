/*
 * Scheduler benchmark: every strategy on the five DT-FM scenarios (COMM-COST
 * and wall time against the best known costs and against the rank-order and
 * random baselines measured in the same run), then the scalable strategy on
 * random geo-distributed topologies of 1,000 and 10,000 devices.
 *
 *   bench_scheduler [--json] [--seeds N] [--no-ga] [--no-scale]
 *
 * The DT-FM GA port is slow by design (5,000 candidates with cyclic
 * partitioning); --no-ga skips it.  One core, no threads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lh_sched.h"
#include "lh_time.h"

static const double best_known[5] = {3.44, 31.63, 16.09, 34.80, 49.22};

static int run_one(const lh_sched_problem *p, const char *strategy, uint64_t seed, double *cost, double *wall)
{
    const lh_strategy *s = lh_strategy_find(strategy);
    lh_strategy_options o = {seed, 0, 0, NULL};
    lh_plan *plan = NULL;
    double t0 = lh_now_s();
    lh_status st = s->run(p, &o, &plan);
    *wall = lh_now_s() - t0;
    if (st) {
        fprintf(stderr, "bench_scheduler: %s: %s\n", strategy, lh_last_error());
        return 1;
    }
    *cost = plan->cost_s;
    lh_plan_free(plan);
    return 0;
}

int main(int argc, char **argv)
{
    int json = 0, seeds = 3, ga = 1, scale = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) json = 1;
        else if (strcmp(argv[i], "--no-ga") == 0) ga = 0;
        else if (strcmp(argv[i], "--no-scale") == 0) scale = 0;
        else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) seeds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_scheduler [--json] [--seeds N] [--no-ga] [--no-scale]\n");
            return 2;
        }
    }
    if (seeds < 1) seeds = 1;
    const char *strategies[] = {"rank", "random", "greedy", "hier", "ils", "dtfm-ga"};
    int n_strategies = ga ? 6 : 5;
    lh_workload w;
    lh_workload_dtfm_gpt3xl(&w);
    int failures = 0;
    if (!json) printf("%-13s %-8s %4s %10s %10s %10s\n", "scenario", "strategy", "seed", "cost_s", "best_known", "wall_s");
    for (int k = 0; lh_scenario_names[k]; k++) {
        lh_topology *t;
        lh_sched_problem *p;
        if (lh_scenario_build(lh_scenario_names[k], &t) || lh_sched_problem_create(t, &w, &p)) {
            fprintf(stderr, "bench_scheduler: %s\n", lh_last_error());
            return 1;
        }
        for (int si = 0; si < n_strategies; si++)
            for (int seed = 1; seed <= seeds; seed++) {
                double cost, wall;
                if (run_one(p, strategies[si], (uint64_t)seed, &cost, &wall)) {
                    failures++;
                    continue;
                }
                if (json)
                    printf("{\"bench\":\"scheduler\",\"scenario\":\"%s\",\"strategy\":\"%s\",\"seed\":%d,\"cost_s\":%.6f,"
                           "\"best_known_s\":%.2f,\"wall_s\":%.6f}\n",
                           lh_scenario_names[k], strategies[si], seed, cost, best_known[k], wall);
                else
                    printf("%-13s %-8s %4d %10.4f %10.2f %10.4f\n", lh_scenario_names[k], strategies[si], seed, cost,
                           best_known[k], wall);
                fflush(stdout);
            }
        lh_sched_problem_free(p);
        lh_topology_free(t);
    }
    /* The analytic iteration model against the discrete-event simulator, per scenario and schedule. */
    for (int k = 0; lh_scenario_names[k]; k++)
        for (int sched = 0; sched < 2; sched++) {
            lh_workload ws = w;
            ws.schedule = (lh_pipe_schedule)sched;
            lh_topology *t;
            lh_sched_problem *p;
            if (lh_scenario_build(lh_scenario_names[k], &t) || lh_sched_problem_create(t, &ws, &p)) {
                fprintf(stderr, "bench_scheduler: %s\n", lh_last_error());
                return 1;
            }
            const char *names[2] = {"hier", "rank"};
            for (int si = 0; si < 2; si++) {
                lh_strategy_options o = {1, 0, 0, NULL};
                lh_plan *plan = NULL;
                lh_cost_report r;
                lh_sim_result sim;
                double t0 = lh_now_s();
                if (lh_strategy_find(names[si])->run(p, &o, &plan) || lh_cost_iteration.evaluate(p, plan, &r)) {
                    fprintf(stderr, "bench_scheduler: %s\n", lh_last_error());
                    lh_plan_free(plan);
                    failures++;
                    continue;
                }
                double t1 = lh_now_s();
                if (lh_simulate_iteration(p, plan, &sim)) {
                    fprintf(stderr, "bench_scheduler: %s\n", lh_last_error());
                    failures++;
                } else {
                    double t2 = lh_now_s();
                    double diff = 100.0 * (r.total_s - sim.iteration_s) / sim.iteration_s;
                    if (json)
                        printf("{\"bench\":\"scheduler-model-vs-sim\",\"scenario\":\"%s\",\"schedule\":\"%s\","
                               "\"plan\":\"%s\",\"model_s\":%.6f,\"sim_s\":%.6f,\"diff_pct\":%.3f,\"sim_events\":%ld,"
                               "\"sim_wall_s\":%.6f}\n",
                               lh_scenario_names[k], sched ? "1f1b" : "gpipe", names[si], r.total_s, sim.iteration_s,
                               diff, sim.events, t2 - t1);
                    else
                        printf("model-vs-sim  %-13s %-6s %-5s model %9.4f s  sim %9.4f s  diff %+6.2f%%  (%ld events, "
                               "%.4f s)\n",
                               lh_scenario_names[k], sched ? "1f1b" : "gpipe", names[si], r.total_s, sim.iteration_s,
                               diff, sim.events, t2 - t1);
                }
                (void)t0;
                lh_cost_report_clear(&r);
                lh_plan_free(plan);
            }
            lh_sched_problem_free(p);
            lh_topology_free(t);
        }
    if (scale) {
        int sizes[2] = {1000, 10000}, stages[2] = {10, 20};
        for (int k = 0; k < 2; k++) {
            lh_topology *t;
            lh_sched_problem *p;
            lh_workload ws = w;
            ws.layers = 40;
            ws.schedule = LH_SCHEDULE_1F1B;
            ws.stages = stages[k];
            ws.replicas = sizes[k] / stages[k];
            double t0 = lh_now_s();
            if (lh_scenario_random_geo(sizes[k], 64, 1, &t) || lh_sched_problem_create(t, &ws, &p)) {
                fprintf(stderr, "bench_scheduler: %s\n", lh_last_error());
                return 1;
            }
            double setup = lh_now_s() - t0;
            const char *names[3] = {"rank", "random", "hier"};
            for (int si = 0; si < 3; si++) {
                double cost, wall;
                if (run_one(p, names[si], 1, &cost, &wall)) {
                    failures++;
                    continue;
                }
                char scen[32];
                snprintf(scen, sizeof scen, "geo-%d", sizes[k]);
                if (json)
                    printf("{\"bench\":\"scheduler\",\"scenario\":\"%s\",\"strategy\":\"%s\",\"seed\":1,\"cost_s\":%.6f,"
                           "\"wall_s\":%.6f,\"setup_s\":%.6f,\"devices\":%d}\n",
                           scen, names[si], cost, wall, setup, sizes[k]);
                else
                    printf("%-13s %-8s %4d %10.4f %10s %10.4f (+%.3f s setup)\n", scen, names[si], 1, cost, "-", wall,
                           setup);
                fflush(stdout);
            }
            lh_sched_problem_free(p);
            lh_topology_free(t);
        }
    }
    return failures ? 1 : 0;
}
