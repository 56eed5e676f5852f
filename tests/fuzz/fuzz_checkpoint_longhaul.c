/*
 * Fuzz target: longhaul checkpoints.  Every input goes through the header and
 * record-table reader, and through the loader into three stages of the seeds'
 * tiny model (maxT 4, V 10, Vp 12, L 2, NH 1, C 4): the whole model, a
 * head-only stage (which takes its wte copy from the embedding record) and a
 * middle stage.  Errors are the expected outcome; crashes and sanitizer
 * reports are bugs.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lh_checkpoint.h"
#include "lh_model.h"

static lh_stage *stages[3];

static void setup(void)
{
    lh_model_config c = {.max_seq_len = 4, .vocab_size = 10, .padded_vocab_size = 12, .num_layers = 2,
                         .num_heads = 1, .channels = 4};
    lh_stage_spec specs[3] = {lh_stage_spec_whole(&c), {1, 1, 0, 1}, {1, 1, 0, 0}};
    for (int i = 0; i < 3; i++)
        if (lh_stage_create(&c, &specs[i], 1, 4, 1, &stages[i])) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!stages[0]) setup();
    lh_checkpoint_info info;
    (void)lh_ckpt_read_info_buffer(data, size, &info);
    for (int i = 0; i < 3; i++) {
        int64_t step;
        (void)lh_ckpt_load_buffer(stages[i], data, size, &step);
    }
    return 0;
}
