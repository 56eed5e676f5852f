/*
 * longhaul: the single entry point.  Dispatches to subcommands and is the only
 * place in the project that turns errors into exit statuses.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "lh_build_info.h"

typedef struct command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} command;

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static const command commands[] = {
    {"help", "list the subcommands, or show one's usage: longhaul help <command>", cmd_help},
    {"version", "print the version and what this build contains (CUDA, NCCL, ...)", cmd_version},
    {"check", "validate longhaul JSON files (topology, plan, job, workload, serving) and summarise them", cmd_check},
    {"demo", "train the embedded demo job on 4 local ranks over an emulated two-region network", cmd_demo},
    {"train", "train a job across ranks: mpirun -np N longhaul train job.json", cmd_train},
    {"launch", "run a training command and restart it from its checkpoint after a failure", cmd_launch},
    {"tokenize", "turn a text file into llm.c token shards (or --decode one)", cmd_tokenize},
    {"plan", "place stages and replicas on a topology: plan file + cost summary", cmd_plan},
    {"sched-bench", "compare placement strategies on scenarios: table, CSV, PNG, --json", cmd_sched_bench},
    {"probe", "measure every link and rank, write a topology: mpirun -np N longhaul probe --out t.json", cmd_probe},
    {"eval", "mean validation loss of a checkpoint on token shards or text: --json for an object", cmd_eval},
    {"generate", "sample text from a checkpoint (greedy, temperature, top-k)", cmd_generate},
    {"serve-sim", "serving scheduling: replication policies on a request trace, --latency placement", cmd_serve_sim},
    {"serve", "serve completions over HTTP (OpenAI-compatible, SSE streaming, /metrics)", cmd_serve},
};
static const size_t command_count = sizeof commands / sizeof commands[0];

int cli_report(const char *cmd, lh_status st)
{
    fprintf(stderr, "longhaul %s: error (%s): %s\n", cmd, lh_status_name(st), lh_last_error());
    return LH_EXIT_FAILURE;
}

int cli_parse_long(const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || errno == ERANGE || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int cli_parse_double(const char *text, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(text, &end);
    if (*text == '\0' || *end != '\0' || !isfinite(v) || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: longhaul <command> [options]\n"
            "       mpirun -np N longhaul <command> [options]\n\n"
            "commands:\n");
    for (size_t i = 0; i < command_count; i++) fprintf(out, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'longhaul <command> --help' shows a command's options.\n"
                 "Environment: LONGHAUL_LOG=error|warn|info|debug|trace (default info).\n");
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < command_count; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static int cmd_help(int argc, char **argv)
{
    if (argc >= 2) {
        const command *c = find_command(argv[1]);
        if (!c) {
            fprintf(stderr, "longhaul help: unknown command '%s'\n\n", argv[1]);
            print_usage(stderr);
            return LH_EXIT_USAGE;
        }
        char *sub_argv[] = {(char *)c->name, "--help", NULL};
        return c->run == cmd_help ? (print_usage(stdout), LH_EXIT_OK) : c->run(2, sub_argv);
    }
    print_usage(stdout);
    return LH_EXIT_OK;
}

static int cmd_version(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "usage: longhaul version\n");
        return LH_EXIT_USAGE;
    }
    printf("longhaul %s (%s, %s)\n", LH_VERSION_STRING, LH_BUILD_TYPE, LH_C_COMPILER);
    printf("cuda kernels: %s\nnccl: %s\nsanitizers: %s\n", LONGHAUL_HAVE_CUDA ? "compiled" : "not built",
           LONGHAUL_HAVE_NCCL ? "compiled" : "not built", LONGHAUL_SANITIZE ? "address,undefined" : "off");
    return LH_EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return LH_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) return cmd_help(1, argv + 1);
    if (strcmp(argv[1], "--version") == 0) return cmd_version(1, argv + 1);
    const command *c = find_command(argv[1]);
    if (!c) {
        fprintf(stderr, "longhaul: unknown command '%s'\n\n", argv[1]);
        print_usage(stderr);
        return LH_EXIT_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
