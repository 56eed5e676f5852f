/*
 * Learning check: a small GPT trained on the embedded corpus (byte tokens)
 * must bring its validation loss well below the uniform-guess loss within a
 * fixed number of steps.  This is a test of the whole training path
 * (data -> forward -> backward -> clipping -> schedule -> AdamW), not of
 * speed: the bound is on steps, never on time.
 */
#include <math.h>
#include <stdlib.h>

#include "lh_checkpoint.h"
#include "lh_data.h"
#include "lh_model.h"
#include "lh_optim.h"
#include "lh_test.h"

enum { B = 8, T = 32, STEPS = 150 };

static double val_loss(lh_stage *s, lh_dataset *val, int batches)
{
    int32_t x[B * T], y[B * T];
    double sum = 0;
    for (int i = 0; i < batches; i++) {
        float loss;
        if (lh_dataset_next_batch(val, B, x, y, NULL) || lh_stage_forward(s, 0, B, T, x, NULL, y, NULL, &loss))
            return NAN;
        sum += loss;
    }
    return sum / batches;
}

static void test_loss_falls_on_embedded_corpus(void)
{
    uint16_t *tokens;
    size_t count;
    LH_ASSERT_OK(lh_corpus_default_tokens(&tokens, &count));
    size_t use = count < 200000 ? count : 200000; /* plenty for 150 steps of 256 tokens */
    lh_dataset_config dc;
    lh_dataset_config_default(&dc);
    dc.seq_len = T;
    dc.vocab_size = LH_BYTE_VOCAB_SIZE;
    dc.val_fraction = 0.1;
    lh_dataset *train, *val;
    LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, use, &dc, &train));
    dc.split = LH_SPLIT_VAL;
    dc.shuffle = 0;
    LH_ASSERT_OK(lh_dataset_create_from_tokens(tokens, use, &dc, &val));
    free(tokens);

    lh_model_config cfg = {.max_seq_len = T, .vocab_size = LH_BYTE_VOCAB_SIZE, .padded_vocab_size = 0,
                           .num_layers = 2, .num_heads = 4, .channels = 64};
    lh_stage_spec spec = lh_stage_spec_whole(&cfg);
    lh_stage *s;
    LH_ASSERT_OK(lh_stage_create(&cfg, &spec, B, T, 1, &s));
    lh_stage_init_params(s, 1234);

    lh_lr_schedule sched = {.max_lr = 3e-3, .min_lr_fraction = 0.1, .warmup_steps = 10, .total_steps = STEPS,
                            .decay = LH_DECAY_COSINE};
    LH_ASSERT_OK(lh_lr_schedule_check(&sched));
    double before = val_loss(s, val, 4);
    CU_ASSERT_DOUBLE_EQUAL(before, log((double)LH_BYTE_VOCAB_SIZE), 0.1); /* near-uniform at init */
    int32_t x[B * T], y[B * T];
    for (int step = 0; step < STEPS; step++) {
        LH_ASSERT_OK(lh_dataset_next_batch(train, B, x, y, NULL));
        float loss;
        lh_stage_zero_grads(s);
        LH_ASSERT_OK(lh_stage_forward(s, 0, B, T, x, NULL, y, NULL, &loss));
        LH_ASSERT_OK(lh_stage_backward(s, 0, NULL, 1.0f, NULL));
        lh_stage_scale_grads(s, lh_clip_scale(sqrt(lh_stage_grad_sumsq(s)), 1.0));
        lh_adamw_params ap = {.lr = (float)lh_lr_at(&sched, step), .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                              .weight_decay = 0.1f};
        LH_ASSERT_OK(lh_stage_adamw_step(s, &ap, step + 1));
    }
    double after = val_loss(s, val, 4);
    if (getenv("LH_TEST_VERBOSE")) fprintf(stderr, "\n  validation loss %.3f -> %.3f\n", before, after);
    /* below 2.6 nats/byte means the model learned far more than byte frequencies' first steps */
    CU_ASSERT(after < 2.6);
    CU_ASSERT(after < before - 2.5);
    /* leave the trained model for the CLI tests (longhaul eval / generate), in both formats */
    LH_ASSERT_OK(lh_llmc_save(s, "learned_bytes_llmc.bin"));
    LH_ASSERT_OK(lh_ckpt_save("learned_bytes.lhck", &s, 1, STEPS));
    lh_stage_free(s);
    lh_dataset_free(train);
    lh_dataset_free(val);
}

CU_TestInfo learning_tests[] = {
    {"loss falls on the embedded corpus", test_loss_falls_on_embedded_corpus},
    CU_TEST_INFO_NULL,
};

CU_SuiteInfo suites[] = {
    {"learning", NULL, NULL, NULL, NULL, learning_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
    return lh_test_run(suites);
}
