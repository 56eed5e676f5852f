/*
 * longhaul check: validate topology, plan and job files and summarise them.
 * The kind of each file is read from its "format" field, so one command checks
 * everything a run will read; a plan is also checked against a topology given
 * in the same call.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "lh_job.h"
#include "lh_json.h"
#include "lh_plan.h"
#include "lh_sched.h"
#include "lh_serve_sim.h"
#include "lh_topology.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: longhaul check FILE...\n\n"
                 "Validate longhaul's JSON files: topology, plan, job, workload, serve-trace and serve-nodes\n"
                 "(the kind is read from each file's \"format\").\n"
                 "A plan is also checked against a topology named in the same call.\n"
                 "Exit status: 0 all valid, 1 a file is invalid, 2 bad usage.\n");
}

static lh_status read_format(const char *path, char *format, size_t cap)
{
    json_object *root;
    lh_status st = lh_json_parse_file(path, &root);
    if (st) return st;
    lh_jpath p;
    lh_jpath_init(&p, path);
    st = lh_json_expect_object(&p, root);
    if (!st) st = lh_json_get_string(&p, root, "format", format, cap);
    json_object_put(root);
    return st;
}

static void summarise_topology(const char *path, const lh_topology *t)
{
    double flops = 0, memory = 0;
    for (int i = 0; i < t->n_devices; i++) {
        flops += t->devices[i].flops;
        memory += t->devices[i].memory_bytes;
    }
    printf("%s: topology: %d devices in %d regions, %.3g TFLOP/s and %.3g GiB in all, %zu device-pair links%s\n",
           path, t->n_devices, t->n_regions, flops / 1e12, memory / (1u << 30), t->n_pair_links,
           t->has_default_link ? ", a default link" : "");
}

static void summarise_plan(const char *path, const lh_plan *p)
{
    printf("%s: plan: %d stages x %d replicas, %d layers (per stage:", path, p->stages, p->replicas, p->layers);
    for (int s = 0; s < p->stages; s++) printf(" %d", p->num_layers[s]);
    printf(")");
    if (p->cost_s >= 0) printf(", %s cost %.4g s by %s", p->cost_model, p->cost_s, p->strategy);
    printf("\n");
}

static void summarise_job(const char *path, const lh_job *j)
{
    char sched[48];
    if (j->schedule == LH_JOB_SCHEDULE_GPIPE) snprintf(sched, sizeof sched, "gpipe");
    else if (j->pipeline_depth == LH_JOB_DEPTH_AUTO) snprintf(sched, sizeof sched, "1f1b depth auto");
    else snprintf(sched, sizeof sched, "1f1b depth %d", j->pipeline_depth);
    printf("%s: job '%s': GPT L=%d C=%d NH=%d T=%d V=%d, batch %d (micro %d) x seq %d, %s, %d stages x %d replicas, "
           "compression %s",
           path, j->name, j->model.layers, j->model.channels, j->model.heads, j->model.context, j->model.vocab,
           j->batch.batch_size, j->batch.micro_batch, j->batch.seq_len, sched, j->placement.pipeline_stages,
           j->placement.data_parallel, lh_compress_mode_name(j->compression.mode));
    if (j->compression.mode != LH_COMPRESS_FP32)
        printf(" fw%d/bw%d", j->compression.forward_bits, j->compression.backward_bits);
    printf("\n");
}

static int known_format(const char *format)
{
    static const char *const formats[] = {"longhaul-topology", "longhaul-plan",        "longhaul-job",
                                          "longhaul-workload", "longhaul-serve-trace", "longhaul-serve-nodes"};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (strcmp(format, formats[i]) == 0) return 1;
    return 0;
}

int cmd_check(int argc, char **argv)
{
    static const struct option options[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return LH_EXIT_OK;
        }
        usage(stderr);
        return LH_EXIT_USAGE;
    }
    if (optind >= argc) {
        usage(stderr);
        return LH_EXIT_USAGE;
    }
    int failures = 0;
    lh_topology *topology = NULL;
    /* Topologies first, so plans can be checked against them. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = optind; i < argc; i++) {
            const char *path = argv[i];
            char format[64];
            lh_status st = read_format(path, format, sizeof format);
            if (st) {
                if (pass == 0) failures += cli_report("check", st);
                continue;
            }
            if (pass == 0 && strcmp(format, "longhaul-topology") == 0) {
                lh_topology *t;
                st = lh_topology_load(path, &t);
                if (!st) {
                    summarise_topology(path, t);
                    lh_topology_free(topology);
                    topology = t;
                }
            } else if (pass == 1 && strcmp(format, "longhaul-plan") == 0) {
                lh_plan *p;
                st = lh_plan_load(path, &p);
                if (!st) {
                    st = lh_plan_validate(p, topology);
                    if (st) st = lh_fail_prefix(st, "%s", path);
                    else summarise_plan(path, p);
                    lh_plan_free(p);
                }
            } else if (pass == 1 && strcmp(format, "longhaul-job") == 0) {
                lh_job job;
                st = lh_job_load(path, &job);
                if (!st) summarise_job(path, &job);
            } else if (pass == 1 && strcmp(format, "longhaul-workload") == 0) {
                lh_workload w;
                st = lh_workload_load(path, &w);
                if (!st)
                    printf("%s: workload: %d layers, hidden %d, seq %d, %d stages x %d replicas\n", path, w.layers,
                           w.hidden, w.seq_len, w.stages, w.replicas);
            } else if (pass == 1 && strcmp(format, "longhaul-serve-trace") == 0) {
                lh_repl_trace *t;
                st = lh_repl_trace_load(path, &t);
                if (!st) printf("%s: serve trace: %zu requests for %d models\n", path, t->n_requests, t->n_models);
                if (!st) lh_repl_trace_free(t);
            } else if (pass == 1 && strcmp(format, "longhaul-serve-nodes") == 0) {
                lh_repl_nodes *n;
                st = lh_repl_nodes_load(path, &n);
                if (!st) printf("%s: serve nodes: %d nodes\n", path, n->n_nodes);
                if (!st) lh_repl_nodes_free(n);
            } else if (pass == 0 && !known_format(format)) {
                st = lh_fail(LH_ERR_FORMAT,
                             "%s: $.format: \"%s\" is not one of longhaul-topology, longhaul-plan, longhaul-job, "
                             "longhaul-workload, longhaul-serve-trace, longhaul-serve-nodes",
                             path, format);
            }
            if (st) failures += cli_report("check", st);
        }
    }
    lh_topology_free(topology);
    return failures ? LH_EXIT_FAILURE : LH_EXIT_OK;
}
