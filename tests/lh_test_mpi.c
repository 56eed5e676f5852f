#include "lh_test.h"
#include "lh_log.h"

#include <mpi.h>

int lh_test_run_mpi(int *argc, char ***argv, CU_SuiteInfo *suites)
{
    MPI_Init(argc, argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    lh_log_set_rank(rank);
    int failed = lh_test_run(suites);
    int total = 0;
    MPI_Allreduce(&failed, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0 && total) fprintf(stderr, "%d failure(s) summed over all ranks\n", total);
    MPI_Finalize();
    return total > 100 ? 100 : total;
}
