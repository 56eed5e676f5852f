# Test registration helpers.
#
#   lh_add_test(name SOURCES a.c b.c LIBS lh_x [ARGS ...] [TIMEOUT s])
#       a CUnit runner (links lh_testutil) registered with CTest.
#   lh_add_mpi_test(name NP n SOURCES ... LIBS ... [ARGS ...] [TIMEOUT s])
#       the same runner started by `mpirun -np n` (links lh_testutil_mpi).
#   lh_add_fuzzer(name SOURCES fuzz_x.c LIBS ... CORPUS dir...)
#       with LONGHAUL_FUZZ=ON a libFuzzer binary (run by .ci/run); otherwise a
#       replay binary that feeds every corpus file through the target, as a test.
#
# Tests get the environment the sanitizers and OpenMPI need in a container:
# no CMA single-copy (ptrace is not allowed), yield when idle on 2 cores,
# and LeakSanitizer suppressions for OpenMPI's own leaks.

set(LH_TEST_ENV
  "OMPI_MCA_btl_vader_single_copy_mechanism=none"
  "OMPI_MCA_mpi_yield_when_idle=1"
  "OMPI_MCA_rmaps_base_oversubscribe=1"
  "OMPI_ALLOW_RUN_AS_ROOT=1"
  "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
  "OMP_NUM_THREADS=1"
  "OPENBLAS_NUM_THREADS=1"
  "LONGHAUL_LOG=warn")
if(LONGHAUL_SANITIZE)
  list(APPEND LH_TEST_ENV
    "ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:abort_on_error=0:detect_odr_violation=0"
    "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/tests/lsan.supp:fast_unwind_on_malloc=0:print_suppressions=0"
    "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
endif()

set(LH_MPIEXEC_FLAGS --oversubscribe --bind-to none)
execute_process(COMMAND id -u OUTPUT_VARIABLE LH_UID OUTPUT_STRIP_TRAILING_WHITESPACE)
if(LH_UID STREQUAL "0")
  list(APPEND LH_MPIEXEC_FLAGS --allow-run-as-root)
endif()

function(lh_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;ARGS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE lh_testutil ${T_LIBS})
  add_test(NAME ${name} COMMAND ${name} ${T_ARGS} WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS unit ENVIRONMENT "${LH_TEST_ENV}")
endfunction()

function(lh_add_mpi_test name)
  cmake_parse_arguments(T "" "NP;TIMEOUT" "SOURCES;LIBS;ARGS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  if(NOT TARGET ${name})
    add_executable(${name} ${T_SOURCES})
    target_link_libraries(${name} PRIVATE lh_testutil_mpi ${T_LIBS})
  endif()
  add_test(NAME ${name}_np${T_NP}
           COMMAND ${MPIEXEC_EXECUTABLE} ${LH_MPIEXEC_FLAGS} -np ${T_NP} $<TARGET_FILE:${name}> ${T_ARGS}
           WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
  set_tests_properties(${name}_np${T_NP} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS mpi PROCESSORS ${T_NP}
                       ENVIRONMENT "${LH_TEST_ENV}")
endfunction()

function(lh_add_fuzzer name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;CORPUS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS})
  if(LONGHAUL_FUZZ)
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    string(REPLACE ";" "," corpus_list "${T_CORPUS}")
    file(APPEND ${PROJECT_BINARY_DIR}/fuzzers.txt "${name} ${corpus_list}\n")
  else()
    target_sources(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_replay.c)
    add_test(NAME ${name}_replay COMMAND ${name} ${T_CORPUS})
    set_tests_properties(${name}_replay PROPERTIES TIMEOUT 300 LABELS fuzz ENVIRONMENT "${LH_TEST_ENV}")
  endif()
endfunction()
