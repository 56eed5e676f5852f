#include "lh_test.h"

#include <CUnit/Basic.h>

static int run_registered(CU_SuiteInfo *suites)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "CUnit: cannot initialise the registry: %s\n", CU_get_error_msg());
        return 100;
    }
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        fprintf(stderr, "CUnit: cannot register suites: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 100;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (ran == 0) {
        fprintf(stderr, "CUnit: no test ran\n");
        return 100;
    }
    return failed > 100 ? 100 : (int)failed;
}

int lh_test_run(CU_SuiteInfo *suites) { return run_registered(suites); }
