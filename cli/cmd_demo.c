/*
 * longhaul demo: a small end-to-end run on embedded defaults, so a new user
 * sees every part work without preparing a file.  The job and topology are
 * compiled in (the same text as examples/job.json and examples/topology.json).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "lh_job.h"
#include "lh_topology.h"

#include "demo_embedded.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: longhaul demo\n\n"
                 "Run the built-in demonstration on the embedded job, topology and corpus.\n");
}

int cmd_demo(int argc, char **argv)
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
    if (optind != argc) {
        usage(stderr);
        return LH_EXIT_USAGE;
    }
    lh_topology *topology;
    lh_status st = lh_topology_parse("<embedded topology>", demo_topology_json, strlen(demo_topology_json), &topology);
    if (st) return cli_report("demo", st);
    lh_job job;
    st = lh_job_parse("<embedded job>", demo_job_json, strlen(demo_job_json), &job);
    if (st) {
        lh_topology_free(topology);
        return cli_report("demo", st);
    }
    printf("demo job '%s': GPT L=%d C=%d on %d devices in %d regions\n", job.name, job.model.layers,
           job.model.channels, topology->n_devices, topology->n_regions);
    lh_topology_free(topology);
    return LH_EXIT_OK;
}
