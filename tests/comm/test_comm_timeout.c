/*
 * Peer timeouts: a peer that never sends makes the receiver fail with
 * LH_ERR_TIMEOUT naming it, and the communicator then refuses further use; a
 * peer that is merely slow (well inside the timeout) is waited for.  Two ranks.
 */
#include <mpi.h>

#include "lh_comm.h"
#include "lh_test.h"
#include "lh_time.h"

static void test_silent_peer_times_out(void)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    lh_comm_options opts = {.timeout_s = 0.3};
    lh_comm *c;
    LH_ASSERT_OK(lh_comm_create(MPI_COMM_WORLD, &opts, &c));
    if (rank == 0) {
        float x;
        LH_ASSERT_FAILS_WITH(lh_comm_recv(c, &x, sizeof x, 1, 3), LH_ERR_TIMEOUT,
                             "receive from rank 1 on channel 3: no answer within 0.3 s");
        LH_ASSERT_FAILS_WITH(lh_comm_recv(c, &x, sizeof x, 1, 3), LH_ERR_COMM, "unusable after an earlier error");
    }
    MPI_Barrier(MPI_COMM_WORLD); /* rank 1 stays silent until rank 0 has given up */
    lh_comm_free(c);
}

static void test_slow_peer_is_waited_for(void)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    lh_comm_options opts = {.timeout_s = 30};
    lh_comm *c;
    LH_ASSERT_OK(lh_comm_create(MPI_COMM_WORLD, &opts, &c));
    float x = 42.0f, y = 0;
    if (rank == 1) {
        lh_sleep_s(0.1);
        LH_ASSERT_OK(lh_comm_send(c, &x, sizeof x, 0, 2));
    } else {
        LH_ASSERT_OK(lh_comm_recv(c, &y, sizeof y, 1, 2));
        CU_ASSERT_EQUAL(y, 42.0f);
    }
    LH_ASSERT_OK(lh_comm_barrier(c)); /* collectives honour the timeout path too */
    lh_comm_free(c);
}

int main(int argc, char **argv)
{
    CU_TestInfo tests[] = {{"a silent peer times out", test_silent_peer_times_out},
                           {"a slow peer is waited for", test_slow_peer_is_waited_for},
                           CU_TEST_INFO_NULL};
    CU_SuiteInfo suites[] = {{"timeouts", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return lh_test_run_mpi(&argc, &argv, suites);
}
