/*
 * Fuzz target for the workload parser (outside input: a user's JSON file).
 * Any byte string must give LH_OK with a valid workload or a clean error;
 * never a crash, a leak or an out-of-bounds read.
 */
#include <stdint.h>
#include <stdlib.h>

#include "lh_sched.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lh_workload w;
    if (lh_workload_parse("fuzz.json", (const char *)data, size, &w) == LH_OK) {
        if (lh_workload_validate(&w) != LH_OK) abort();
    }
    return 0;
}
