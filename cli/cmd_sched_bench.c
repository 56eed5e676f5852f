/*
 * `longhaul sched-bench`: strategies x scenarios x seeds -> a Markdown table,
 * a CSV, anytime curves, a gnuplot script + PNG, and with --json one object
 * per row on stdout (scenario, strategy, seed, cost_s, wall_s).
 *
 * Costs are the DT-FM COMM-COST of the plan each strategy writes (so rows are
 * comparable with the paper), plus the iteration-model time of that plan.
 * Scenarios are the five DT-FM ones by name or "geo:N" (random geo topology
 * of N devices, 8 stages when N allows).  gnuplot is optional: without it the
 * script and data are still written and the command says so.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "lh_io.h"
#include "lh_sched.h"
#include "lh_time.h"

static void bench_usage(FILE *out)
{
    fprintf(out,
            "usage: longhaul sched-bench [options]\n"
            "  --strategies LIST   comma-separated (default rank,random,greedy,hier,ils,dtfm-ga,ils-time)\n"
            "  --scenarios LIST    comma-separated DT-FM scenario names and/or geo:N (default the five DT-FM ones)\n"
            "  --seeds N           seeds 1..N per strategy and scenario (default 3)\n"
            "  --evaluations N     search budget for every strategy (strategy default when omitted)\n"
            "  --out-dir DIR       where results.md, results.csv, anytime.csv, plot.gp, results.png go\n"
            "                      (default sched-bench-out)\n"
            "  --json              print one JSON object per row on stdout\n");
}

#define MAX_ITEMS 32

static int split_list(char *s, char **items)
{
    int n = 0;
    for (char *tok = strtok(s, ","); tok && n < MAX_ITEMS; tok = strtok(NULL, ",")) items[n++] = tok;
    return n;
}

static lh_status build_scenario(const char *name, lh_topology **t, lh_workload *w)
{
    lh_workload_dtfm_gpt3xl(w);
    if (strncmp(name, "geo:", 4) == 0) {
        char *end;
        long n = strtol(name + 4, &end, 10);
        if (*end || n < 2 || n > 1000000)
            return lh_fail(LH_ERR_INVALID_ARG, "scenario \"%s\": geo:N needs 2 <= N <= 1000000", name);
        int stages = n % 8 == 0 ? 8 : (n % 4 == 0 ? 4 : (n % 2 == 0 ? 2 : 1));
        w->stages = stages;
        w->replicas = (int)n / stages;
        w->schedule = LH_SCHEDULE_1F1B;
        return lh_scenario_random_geo((int)n, n < 64 ? (int)n : 64, 1, t);
    }
    return lh_scenario_build(name, t);
}

static const char *plot_script =
    "# longhaul sched-bench plot (gnuplot); run from the output directory: gnuplot plot.gp\n"
    "set terminal pngcairo size 1100,700 noenhanced\n"
    "set output 'results.png'\n"
    "set multiplot layout 1,2\n"
    "set title 'DT-FM COMM-COST by strategy (mean over seeds)'\n"
    "set style data histogram\n"
    "set style histogram clustered gap 1\n"
    "set style fill solid 0.8 border -1\n"
    "set logscale y\n"
    "set ylabel 'COMM-COST (s)'\n"
    "set xtics rotate by -30\n"
    "set key top left\n"
    "plot for [c=2:*] 'results_wide.dat' using c:xtic(1) title columnheader(c)\n"
    "unset logscale y\n"
    "set title 'Anytime: best cost found against time (ils, dtfm-ga; seed 1)'\n"
    "set xlabel 'time (s)'\n"
    "set logscale xy\n"
    "set format x '%g'\n"
    "set xtics rotate by 0\n"
    "set ylabel 'COMM-COST (s)'\n"
    "set key outside bottom center font ',8' maxrows 5\n"
    "set style data steps\n"
    "plot for [i=0:*] 'anytime.dat' index i using 1:2 with steps title columnheader(1)\n"
    "unset multiplot\n";

static int have_gnuplot(void)
{
    const char *path = getenv("PATH");
    if (!path) return 0;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *dir = strtok(buf, ":"); dir; dir = strtok(NULL, ":")) {
        char full[4200];
        snprintf(full, sizeof full, "%s/gnuplot", dir);
        struct stat sb;
        if (stat(full, &sb) == 0 && (sb.st_mode & S_IXUSR)) return 1;
    }
    return 0;
}

int cmd_sched_bench(int argc, char **argv)
{
    char strategies_buf[512] = "rank,random,greedy,hier,ils,dtfm-ga,ils-time";
    char scenarios_buf[512] = "dc-ondemand,dc-spot,two-campus,four-regions,world";
    const char *out_dir = "sched-bench-out";
    long seeds = 3, evaluations = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        char *end = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            bench_usage(stdout);
            return LH_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) json = 1;
        else if (has && strcmp(a, "--strategies") == 0) snprintf(strategies_buf, sizeof strategies_buf, "%s", argv[++i]);
        else if (has && strcmp(a, "--scenarios") == 0) snprintf(scenarios_buf, sizeof scenarios_buf, "%s", argv[++i]);
        else if (has && strcmp(a, "--out-dir") == 0) out_dir = argv[++i];
        else if (has && strcmp(a, "--seeds") == 0 && (seeds = strtol(argv[i + 1], &end, 10), *end == 0) && seeds >= 1 &&
                 seeds <= 1000)
            i++;
        else if (has && strcmp(a, "--evaluations") == 0 &&
                 (evaluations = strtol(argv[i + 1], &end, 10), *end == 0) && evaluations >= 1)
            i++;
        else {
            fprintf(stderr, "longhaul sched-bench: bad option or value: %s\n\n", a);
            bench_usage(stderr);
            return LH_EXIT_USAGE;
        }
    }
    if (strchr(out_dir, '\'')) {
        fprintf(stderr, "longhaul sched-bench: --out-dir must not contain a single quote\n\n");
        bench_usage(stderr);
        return LH_EXIT_USAGE;
    }
    char *strategies[MAX_ITEMS], *scenarios[MAX_ITEMS];
    int n_strat = split_list(strategies_buf, strategies), n_scen = split_list(scenarios_buf, scenarios);
    for (int i = 0; i < n_strat; i++)
        if (!lh_strategy_find(strategies[i])) {
            fprintf(stderr, "longhaul sched-bench: unknown strategy '%s'\n\n", strategies[i]);
            bench_usage(stderr);
            return LH_EXIT_USAGE;
        }
    lh_status st = lh_mkdir_p(out_dir);
    if (st) return cli_report("sched-bench", st);
    char path[4096];
    snprintf(path, sizeof path, "%s/results.csv", out_dir);
    FILE *csv = fopen(path, "w");
    snprintf(path, sizeof path, "%s/anytime.dat", out_dir);
    FILE *any = fopen(path, "w");
    snprintf(path, sizeof path, "%s/results_wide.dat", out_dir);
    FILE *wide = fopen(path, "w");
    snprintf(path, sizeof path, "%s/results.md", out_dir);
    FILE *md = fopen(path, "w");
    if (!csv || !any || !wide || !md) {
        if (csv) fclose(csv);
        if (any) fclose(any);
        if (wide) fclose(wide);
        if (md) fclose(md);
        return cli_report("sched-bench", lh_fail(LH_ERR_IO, "cannot write into %s", out_dir));
    }
    fprintf(csv, "scenario,strategy,seed,cost_s,iteration_s,wall_s,devices\n");
    fprintf(wide, "scenario");
    for (int j = 0; j < n_strat; j++) fprintf(wide, " %s", strategies[j]);
    fprintf(wide, "\n");
    fprintf(md, "| scenario | strategy | mean COMM-COST (s) | best (s) | mean iteration (s) | mean wall (s) |\n");
    fprintf(md, "|---|---|---:|---:|---:|---:|\n");
    int any_blocks = 0, failures = 0;
    for (int i = 0; i < n_scen && !st; i++) {
        lh_topology *t = NULL;
        lh_workload w;
        lh_sched_problem *p = NULL;
        st = build_scenario(scenarios[i], &t, &w);
        if (!st) st = lh_sched_problem_create(t, &w, &p);
        if (st) {
            lh_topology_free(t);
            break;
        }
        fprintf(wide, "%s", scenarios[i]);
        for (int j = 0; j < n_strat && !st; j++) {
            const lh_strategy *s = lh_strategy_find(strategies[j]);
            double sum = 0, best = INFINITY, it_sum = 0, wall_sum = 0;
            int ok = 0;
            for (long seed = 1; seed <= seeds && !st; seed++) {
                lh_anytime curve = {0};
                lh_strategy_options o = {(uint64_t)seed, evaluations, 0, seed == 1 ? &curve : NULL};
                lh_plan *plan = NULL;
                double t0 = lh_now_s();
                lh_status rs = s->run(p, &o, &plan);
                double wall = lh_now_s() - t0;
                if (rs) {
                    fprintf(stderr, "longhaul sched-bench: %s on %s: %s\n", s->name, scenarios[i], lh_last_error());
                    failures++;
                    lh_anytime_clear(&curve);
                    continue;
                }
                lh_cost_report it, dt;
                double iteration = NAN, cost = NAN;
                if (lh_cost_iteration.evaluate(p, plan, &it) == LH_OK) {
                    iteration = it.total_s;
                    lh_cost_report_clear(&it);
                }
                if (lh_cost_dtfm.evaluate(p, plan, &dt) == LH_OK) { /* every row in DT-FM units, whatever the objective */
                    cost = dt.total_s;
                    lh_cost_report_clear(&dt);
                }
                fprintf(csv, "%s,%s,%ld,%.6f,%.6f,%.6f,%d\n", scenarios[i], s->name, seed, cost, iteration,
                        wall, t->n_devices);
                if (json)
                    printf("{\"scenario\":\"%s\",\"strategy\":\"%s\",\"seed\":%ld,\"cost_s\":%.6f,\"wall_s\":%.6f,"
                           "\"iteration_s\":%.6f,\"devices\":%d}\n",
                           scenarios[i], s->name, seed, cost, wall, iteration, t->n_devices);
                fflush(stdout);
                int searches = strcmp(s->name, "ils") == 0 || strcmp(s->name, "dtfm-ga") == 0;
                if (curve.count && searches) {
                    if (any_blocks++) fprintf(any, "\n\n");
                    fprintf(any, "\"%s/%s\" cost\n", scenarios[i], s->name);
                    for (size_t k = 0; k < curve.count; k++)
                        fprintf(any, "%.6g %.6f\n", curve.t_s[k] > 1e-6 ? curve.t_s[k] : 1e-6, curve.cost_s[k]);
                    fprintf(any, "%.6g %.6f\n", wall > 1e-6 ? wall : 1e-6, plan->cost_s);
                }
                lh_anytime_clear(&curve);
                sum += cost;
                it_sum += iteration;
                wall_sum += wall;
                if (cost < best) best = cost;
                ok++;
                lh_plan_free(plan);
            }
            fprintf(wide, " %.6f", ok ? sum / ok : NAN);
            if (ok)
                fprintf(md, "| %s | %s | %.4f | %.4f | %.4f | %.4f |\n", scenarios[i], s->name, sum / ok, best,
                        it_sum / ok, wall_sum / ok);
            if (!json && ok)
                printf("%-14s %-8s mean %.4f s  best %.4f s  iteration %.4f s  wall %.4f s\n", scenarios[i], s->name,
                       sum / ok, best, it_sum / ok, wall_sum / ok);
        }
        fprintf(wide, "\n");
        lh_sched_problem_free(p);
        lh_topology_free(t);
    }
    int io_err = fclose(csv) | fclose(any) | fclose(wide) | fclose(md);
    if (st) return cli_report("sched-bench", st);
    if (io_err) return cli_report("sched-bench", lh_fail(LH_ERR_IO, "writing into %s failed", out_dir));
    snprintf(path, sizeof path, "%s/plot.gp", out_dir);
    /* Without any search strategy there is no anytime curve: plot the cost panel alone. */
    size_t script_len = strlen(plot_script);
    const char *second = strstr(plot_script, "unset logscale y\n");
    char *script = malloc(script_len + 1);
    if (!script) return cli_report("sched-bench", lh_fail(LH_ERR_NOMEM, "out of memory"));
    memcpy(script, plot_script, script_len + 1);
    if (!any_blocks && second) {
        size_t keep = (size_t)(second - plot_script);
        char *p = script + keep;
        p += sprintf(p, "unset multiplot\n");
        script_len = (size_t)(p - script);
        char *ml = strstr(script, "set multiplot layout 1,2\n");
        if (ml) memcpy(ml, "set multiplot layout 1,1\n", strlen("set multiplot layout 1,1\n"));
    }
    st = lh_write_file_atomic(path, script, script_len);
    free(script);
    if (st) return cli_report("sched-bench", st);
    if (have_gnuplot()) {
        char cmd[4400];
        snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot plot.gp", out_dir);
        int rc = system(cmd);
        if (rc != 0) fprintf(stderr, "longhaul sched-bench: gnuplot failed (exit %d); data and plot.gp are in %s\n", rc, out_dir);
        else if (!json) printf("wrote %s/results.png\n", out_dir);
    } else {
        fprintf(stderr, "longhaul sched-bench: gnuplot not found; run 'gnuplot plot.gp' in %s for the PNG\n", out_dir);
    }
    if (!json) printf("wrote %s/results.md, results.csv, anytime.dat, plot.gp\n", out_dir);
    return failures ? LH_EXIT_FAILURE : LH_EXIT_OK;
}
