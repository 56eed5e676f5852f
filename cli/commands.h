/*
 * The subcommands of the `longhaul` binary.  Each takes the arguments after its
 * name (argv[0] is the subcommand) and returns the process exit status:
 * 0 success, 1 failure (the error was printed), 2 bad usage (usage printed).
 * Add a command: write cli/cmd_<name>.c and one row in main.c's table.
 */
#ifndef LH_CLI_COMMANDS_H
#define LH_CLI_COMMANDS_H

#include <stdio.h>

#include "lh_status.h"

#define LH_EXIT_OK 0
#define LH_EXIT_FAILURE 1
#define LH_EXIT_USAGE 2

/** Print "longhaul <cmd>: error (<status>): <message>" and return LH_EXIT_FAILURE. */
int cli_report(const char *cmd, lh_status st);

int cmd_check(int argc, char **argv);
int cmd_demo(int argc, char **argv);

#endif
