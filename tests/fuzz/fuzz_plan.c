/* libFuzzer target: lh_plan_parse on arbitrary bytes must fail cleanly or yield a valid plan. */
#include <stdint.h>
#include <stdlib.h>

#include "lh_plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lh_plan *p = NULL;
    if (lh_plan_parse("fuzz", (const char *)data, size, &p) == LH_OK && lh_plan_validate(p, NULL) != LH_OK) abort();
    lh_plan_free(p);
    return 0;
}
