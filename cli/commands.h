/*
 * The subcommands of the `longhaul` binary.  Each takes the arguments after its
 * name (argv[0] is the subcommand) and returns the process exit status:
 * 0 success, 1 failure (the error was printed), 2 bad usage (usage printed).
 * Add a command: write cli/cmd_<name>.c and one row in main.c's table.
 */
#ifndef LH_CLI_COMMANDS_H
#define LH_CLI_COMMANDS_H

#include <stdint.h>
#include <stdio.h>

#include "lh_status.h"

#define LH_EXIT_OK 0
#define LH_EXIT_FAILURE 1
#define LH_EXIT_USAGE 2

/** Print "longhaul <cmd>: error (<status>): <message>" and return LH_EXIT_FAILURE. */
int cli_report(const char *cmd, lh_status st);

/** Parse a whole decimal integer in [lo, hi] into *out; 1 on success, 0 (out untouched) otherwise. */
int cli_parse_long(const char *text, long lo, long hi, long *out);

/** Parse a whole finite number in [lo, hi] into *out; 1 on success, 0 (out untouched) otherwise. */
int cli_parse_double(const char *text, double lo, double hi, double *out);

int cmd_check(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_launch(int argc, char **argv);

/** What `longhaul train` (and the demo) runs. */
typedef struct train_request {
    const char *job_path;      /* the job file, or a name for job_text in messages */
    const char *job_text;      /* when set, the job itself (paths in it are not resolved) */
    const char *topology_text; /* when set, the topology itself (instead of the job's file) */
    const char *plan_path;     /* overrides the job's plan */
    int64_t steps;             /* > 0: stop after this many steps */
    int quiet;                 /* no per-step lines */
    int resume;                /* continue from the newest committed checkpoint */
} train_request;

/** Run a training job under MPI (initialising it if needed); returns the exit status. */
int train_run(const train_request *req);
int cmd_tokenize(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_sched_bench(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_serve_sim(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
