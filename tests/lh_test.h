/*
 * Shared CUnit runner for longhaul's test programs.
 *
 * CU_basic_run_tests() does not turn failures into an exit status, so every
 * test main() ends with `return lh_test_run(suites);`, which returns the number
 * of failed assertions plus failed suite set-ups (capped at 100 so the shell
 * never sees it wrap to 0).  Multi-rank tests use lh_test_run_mpi(), which
 * initialises MPI, runs the suites on every rank, and returns the failure
 * count summed over all ranks, so CTest sees a failure on any rank.
 */
#ifndef LH_TEST_H
#define LH_TEST_H

#include <CUnit/CUnit.h>

#include "lh_status.h"

/** Run the NULL-terminated suite table; returns the capped failure count. */
int lh_test_run(CU_SuiteInfo *suites);

/** MPI variant: MPI_Init, run on every rank, MPI_Finalize; returns the total. */
int lh_test_run_mpi(int *argc, char ***argv, CU_SuiteInfo *suites);

/** Assert a status is LH_OK, printing the error message when it is not. */
#define LH_ASSERT_OK(expr)                                                                 \
    do {                                                                                   \
        lh_status lh_assert_st_ = (expr);                                                  \
        if (lh_assert_st_ != LH_OK)                                                        \
            fprintf(stderr, "\n  %s:%d: %s -> %s: %s\n", __FILE__, __LINE__, #expr,        \
                    lh_status_name(lh_assert_st_), lh_last_error());                       \
        CU_ASSERT_EQUAL_FATAL(lh_assert_st_, LH_OK);                                       \
    } while (0)

/** Assert a status equals `code` and the error message contains `needle`. */
#define LH_ASSERT_FAILS_WITH(expr, code, needle)                                           \
    do {                                                                                   \
        lh_status lh_assert_st_ = (expr);                                                  \
        if (lh_assert_st_ != (code) || !strstr(lh_last_error(), (needle)))                 \
            fprintf(stderr, "\n  %s:%d: %s -> %s: \"%s\" (wanted %s containing \"%s\")\n", \
                    __FILE__, __LINE__, #expr, lh_status_name(lh_assert_st_),              \
                    lh_last_error(), lh_status_name(code), (needle));                      \
        CU_ASSERT_EQUAL(lh_assert_st_, (code));                                            \
        CU_ASSERT_PTR_NOT_NULL(strstr(lh_last_error(), (needle)));                         \
    } while (0)

#include <stdio.h>
#include <string.h>

#endif
