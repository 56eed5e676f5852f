/* libFuzzer target: lh_job_parse on arbitrary bytes must fail cleanly or yield a consistent job. */
#include <stdint.h>
#include <stdlib.h>

#include "lh_job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lh_job job;
    if (lh_job_parse("fuzz", (const char *)data, size, &job) == LH_OK) {
        if (job.batch.micro_batch < 1 || job.batch.batch_size % job.batch.micro_batch) abort();
        if (job.model.heads && job.model.channels % job.model.heads) abort();
    }
    return 0;
}
