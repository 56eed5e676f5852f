/*
 * longhaul demo: the main demonstration, on embedded defaults.
 *
 * It trains the embedded job (examples/job.json: a 4-layer GPT on the
 * built-in corpus, 2 pipeline stages x 2 data-parallel replicas, AQ-SGD
 * activations and 4-bit gradients) on the embedded two-region topology
 * (examples/topology.json), whose links are emulated, and ends by printing
 * the plan, the loss, the throughput and the bytes saved against fp32.
 * Started without mpirun, it starts itself under `mpirun -np 4`.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"

#include "demo_embedded.h"

#define DEMO_RANKS "4"

static void usage(FILE *out)
{
    fprintf(out, "usage: longhaul demo [--steps N]\n\n"
                 "Train the embedded demo job on 4 local ranks over an emulated two-region network.\n"
                 "Without mpirun it launches itself with `mpirun -np " DEMO_RANKS "`.\n");
}

/* Re-run this binary as `mpirun -np 4 longhaul demo ...`; returns only on failure. */
static int launch_under_mpirun(int argc, char **argv)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "longhaul demo: cannot find this program's path to start it under mpirun\n");
        return LH_EXIT_FAILURE;
    }
    self[n] = '\0';
    char *args[32];
    int k = 0;
    args[k++] = "mpirun";
    args[k++] = "--oversubscribe";
    args[k++] = "--bind-to";
    args[k++] = "none";
    if (geteuid() == 0) args[k++] = "--allow-run-as-root";
    args[k++] = "-np";
    args[k++] = DEMO_RANKS;
    args[k++] = self;
    for (int i = 0; i < argc && k < 31; i++) args[k++] = argv[i];
    args[k] = NULL;
    /* Containers often forbid the cross-memory attach OpenMPI's shared memory prefers. */
    setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
    fprintf(stderr, "longhaul demo: starting 4 ranks: mpirun -np " DEMO_RANKS " %s demo\n", self);
    fflush(stderr);
    execvp("mpirun", args);
    perror("longhaul demo: cannot run mpirun (is openmpi-bin installed?)");
    return LH_EXIT_FAILURE;
}

int cmd_demo(int argc, char **argv)
{
    static const struct option options[] = {
        {"steps", required_argument, NULL, 's'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    train_request req = {.job_path = "<embedded demo job>",
                         .job_text = demo_job_json,
                         .topology_text = demo_topology_json};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return LH_EXIT_OK;
        }
        long steps;
        if (c == 's') {
            if (cli_parse_long(optarg, 1, __LONG_MAX__, &steps)) {
                req.steps = steps;
                continue;
            }
            fprintf(stderr, "longhaul demo: --steps needs a positive integer, got '%s'\n", optarg);
        }
        usage(stderr);
        return LH_EXIT_USAGE;
    }
    if (optind != argc) {
        usage(stderr);
        return LH_EXIT_USAGE;
    }
    if (!getenv("OMPI_COMM_WORLD_SIZE")) return launch_under_mpirun(argc, argv);
    return train_run(&req);
}
