/* libFuzzer target: lh_serve_parse_request on arbitrary bytes must fail cleanly or give a request that fits. */
#include <stdint.h>
#include <stdlib.h>

#include "lh_serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lh_tokenizer *tok;
    if (!tok && lh_tokenizer_create_byte(&tok)) abort();
    lh_serve_limits limits = {.vocab_size = 257, .context_length = 64, .tokenizer = tok};
    lh_serve_request req;
    if (lh_serve_parse_request((const char *)data, size, &limits, &req) == LH_OK) {
        if (req.prompt_len < 1 || req.max_tokens < 1 || req.prompt_len + req.max_tokens > 64) abort();
        for (int i = 0; i < req.prompt_len; i++)
            if (req.prompt[i] < 0 || req.prompt[i] >= 257) abort();
        lh_serve_request_clear(&req);
    } else if (req.prompt) {
        abort();
    }
    /* the UTF-8 pass never writes more than 3 bytes per input byte */
    char *out = malloc(3 * size + 1);
    size_t used = 0;
    if (lh_serve_utf8_sanitize(data, size, size % 2, out, &used) > 3 * size || used > size) abort();
    free(out);
    return 0;
}
