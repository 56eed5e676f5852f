/*
 * Fuzz target: the llm.c token shard parser, on arbitrary bytes.  The first
 * two input bytes also pick the vocabulary bound, so the id check is fuzzed
 * too.  Whatever the input, parsing must either fail with a message or return
 * a count consistent with the image size, and decoding must agree with it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lh_data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t vocab = size >= 2 ? (uint32_t)(data[0] | data[1] << 8) : 0;
    size_t count = 0;
    lh_status st = lh_shard_parse(data, size, "fuzz", vocab, &count);
    if (st == LH_OK) {
        if (lh_shard_image_bound(count) != size) abort();
        uint16_t *tokens = malloc(count ? count * sizeof *tokens : 1);
        size_t again = 0;
        if (!tokens) return 0;
        if (lh_shard_decode(data, size, "fuzz", vocab, tokens, count, &again) != LH_OK || again != count) abort();
        for (size_t i = 0; vocab && i < count; i++)
            if (tokens[i] >= vocab) abort();
        free(tokens);
    } else if (lh_last_error()[0] == '\0') {
        abort(); /* every failure must explain itself */
    }
    return 0;
}
