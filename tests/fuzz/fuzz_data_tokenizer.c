/*
 * Fuzz target: the llm.c GPT-2 tokenizer file parser, on arbitrary bytes.
 * A parsed tokenizer must then decode every id in range without reading
 * outside its tables (ASan checks) and within lh_tokenizer_decode_bound.
 */
#include <stdint.h>
#include <stdlib.h>

#include "lh_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lh_tokenizer *tok = NULL;
    lh_status st = lh_tokenizer_parse_gpt2(data, size, "fuzz", &tok);
    if (st != LH_OK) {
        if (tok || lh_last_error()[0] == '\0') abort();
        return 0;
    }
    uint32_t vocab = lh_tokenizer_vocab_size(tok);
    int32_t eot = lh_tokenizer_eot(tok);
    if (vocab == 0 || eot >= (int32_t)vocab) abort();
    size_t bound = lh_tokenizer_decode_bound(tok, 1);
    char *out = malloc(bound ? bound : 1);
    for (uint32_t id = 0; out && id < vocab; id++) {
        int32_t one = (int32_t)id;
        size_t written;
        if (lh_tokenizer_decode(tok, &one, 1, out, bound, &written) != LH_OK || written == 0 || written > bound)
            abort();
    }
    int32_t bad = (int32_t)vocab;
    size_t written;
    if (out && lh_tokenizer_decode(tok, &bad, 1, out, bound, &written) == LH_OK) abort();
    free(out);
    lh_tokenizer_free(tok);
    return 0;
}
