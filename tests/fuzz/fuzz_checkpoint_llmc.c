/*
 * Fuzz target: llm.c model files.  Every input goes through the header parser
 * and, when its config matches the seeds' tiny model (maxT 4, V 10, Vp 12,
 * L 2, NH 1, C 4), through the full loader into a whole-model stage and into a
 * middle stage (which reads only layer 1's slices).  Any crash, sanitizer
 * report or out-of-bounds read is a bug; errors are the expected outcome.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lh_checkpoint.h"
#include "lh_model.h"

static lh_stage *whole, *middle;

static void setup(void)
{
    lh_model_config c = {.max_seq_len = 4, .vocab_size = 10, .padded_vocab_size = 12, .num_layers = 2,
                         .num_heads = 1, .channels = 4};
    lh_stage_spec w = lh_stage_spec_whole(&c), m = {1, 1, 0, 0};
    if (lh_stage_create(&c, &w, 1, 4, 1, &whole) || lh_stage_create(&c, &m, 1, 4, 1, &middle)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!whole) setup();
    lh_model_config config;
    (void)lh_llmc_parse_header(data, size, &config);
    if (lh_llmc_load_buffer(whole, data, size) == LH_OK) {
        /* a file that loads must run */
        int32_t tokens[4] = {1, 2, 3, 4}, targets[4] = {2, 3, 4, 5};
        float loss;
        if (lh_stage_forward(whole, 0, 1, 4, tokens, NULL, targets, NULL, &loss)) abort();
    }
    (void)lh_llmc_load_buffer(middle, data, size);
    return 0;
}
