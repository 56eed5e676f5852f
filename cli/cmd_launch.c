/*
 * longhaul launch: supervise a training job and restart it after a failure.
 *
 *     longhaul launch [--restarts N] [--delay S] -- mpirun ... longhaul train job.json
 *
 * The command runs as given; when it fails, it runs again with `--resume`
 * appended, so `longhaul train` continues from the newest committed
 * checkpoint and at most the steps since it are lost.  The command line is
 * the user's own mpirun invocation (hostfile, MCA flags, ...), unchanged.
 * LONGHAUL_FAULT (fault injection for tests) reaches the first attempt only.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "commands.h"
#include "lh_time.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: longhaul launch [--restarts N] [--delay SECONDS] -- COMMAND...\n\n"
                 "Run COMMAND (e.g. mpirun -np 4 longhaul train job.json); when it fails, run it again with\n"
                 "--resume appended, up to N more times (default 3), waiting SECONDS between attempts\n"
                 "(default 2).  The job needs a checkpoint section for a restart to resume.\n"
                 "Exit status: COMMAND's last status (0 once an attempt succeeds).\n");
}

/* Run argv to completion; returns its exit status (128+signal when killed), or -1 if it cannot start. */
static int run_child(char **argv, int first_attempt)
{
    pid_t pid = fork();
    if (pid < 0) {
        perror("longhaul launch: fork");
        return -1;
    }
    if (pid == 0) {
        if (!first_attempt) unsetenv("LONGHAUL_FAULT");
        execvp(argv[0], argv);
        fprintf(stderr, "longhaul launch: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

int cmd_launch(int argc, char **argv)
{
    static const struct option options[] = {{"restarts", required_argument, NULL, 'r'},
                                            {"delay", required_argument, NULL, 'd'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    long restarts = 3;
    double delay = 2.0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+", options, NULL)) != -1) {
        switch (c) {
        case 'r':
            if (!cli_parse_long(optarg, 0, 1000, &restarts)) {
                fprintf(stderr, "longhaul launch: --restarts needs 0..1000, got '%s'\n", optarg);
                return LH_EXIT_USAGE;
            }
            break;
        case 'd':
            if (!cli_parse_double(optarg, 0, 3600, &delay)) {
                fprintf(stderr, "longhaul launch: --delay needs 0..3600 seconds, got '%s'\n", optarg);
                return LH_EXIT_USAGE;
            }
            break;
        case 'h': usage(stdout); return LH_EXIT_OK;
        default: usage(stderr); return LH_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return LH_EXIT_USAGE;
    }
    int n = argc - optind;
    char **cmd = calloc((size_t)n + 2, sizeof *cmd);
    if (!cmd) {
        fprintf(stderr, "longhaul launch: out of memory\n");
        return LH_EXIT_FAILURE;
    }
    memcpy(cmd, argv + optind, (size_t)n * sizeof *cmd);
    int status = -1;
    for (long attempt = 0; attempt <= restarts; attempt++) {
        if (attempt == 1) cmd[n] = "--resume"; /* from now on: continue from the last checkpoint */
        fprintf(stderr, "longhaul launch: attempt %ld of %ld%s\n", attempt + 1, restarts + 1,
                attempt ? " (resuming)" : "");
        status = run_child(cmd, attempt == 0);
        if (status == 0) break;
        fprintf(stderr, "longhaul launch: attempt %ld failed with status %d\n", attempt + 1, status);
        if (status == 127 || status < 0) break; /* the command itself cannot run: retrying will not help */
        if (attempt < restarts) lh_sleep_s(delay);
    }
    free(cmd);
    if (status != 0) fprintf(stderr, "longhaul launch: giving up\n");
    return status < 0 ? LH_EXIT_FAILURE : status;
}
