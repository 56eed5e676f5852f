/* libFuzzer target: lh_topology_parse on arbitrary bytes must fail cleanly or yield a valid topology. */
#include <stdint.h>
#include <stdlib.h>

#include "lh_topology.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lh_topology *t = NULL;
    if (lh_topology_parse("fuzz", (const char *)data, size, &t) == LH_OK) {
        if (lh_topology_validate(t) != LH_OK) abort();
        if (t->n_devices <= 64) {
            size_t n = (size_t)t->n_devices;
            double *lat = malloc(n * n * sizeof *lat);
            if (lat && lh_topology_dense(t, lat, NULL) != LH_OK) abort();
            free(lat);
        }
    }
    lh_topology_free(t);
    return 0;
}
