/* libFuzzer target: lh_http_parse_response on arbitrary bytes must fail cleanly or give a body within the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lh_serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lh_http_response r;
    if (lh_http_parse_response((const char *)data, size, &r) == LH_OK) {
        if (r.body_len > size || r.body[r.body_len] != 0 || r.status < 0 || r.status > 999) abort();
        lh_http_response_clear(&r);
    }
    return 0;
}
