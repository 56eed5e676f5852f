/*
 * corpus_learnability: evidence that a small GPT learns the embedded corpus.
 *
 * Built as build/bench/corpus_learnability (data/ must not depend on train/, so it is a tool, not a data test); the exact
 * program behind the loss numbers in docs/data.md and data/CORPUS.md.
 * It trains a whole-model GPT (L=2, C=64, 4 heads, T=64, B=16, AdamW lr 3e-3)
 * on the train split of the embedded corpus with the byte tokenizer and
 * prints train loss and the loss on the first 8 validation batches, in nats.
 * Compare with the unigram entropy of the corpus, 3.09 nats.
 *
 * Run: OMP_NUM_THREADS=1 build/bench/corpus_learnability [steps=300]
 */
#include <stdio.h>
#include <stdlib.h>

#include "lh_data.h"
#include "lh_model.h"
#include "lh_time.h"

static int fail(void)
{
    fprintf(stderr, "corpus_learnability: %s\n", lh_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    const int L = 2, C = 64, heads = 4, T = 64, B = 16;
    int steps = argc > 1 ? atoi(argv[1]) : 300;
    lh_model_config mc = {T, LH_BYTE_VOCAB_SIZE, 0, L, heads, C};
    if (lh_model_config_check(&mc)) return fail();
    lh_dataset_config dc;
    lh_dataset_config_default(&dc);
    dc.seq_len = T;
    dc.vocab_size = LH_BYTE_VOCAB_SIZE;
    lh_dataset *train, *val;
    if (lh_dataset_create_from_source("embedded", &dc, &train)) return fail();
    dc.split = LH_SPLIT_VAL;
    dc.shuffle = 0;
    if (lh_dataset_create_from_source("embedded", &dc, &val)) return fail();
    lh_stage_spec spec = lh_stage_spec_whole(&mc);
    lh_stage *model;
    if (lh_stage_create(&mc, &spec, B, T, 1, &model)) return fail();
    lh_stage_init_params(model, 42);
    int32_t *in = malloc(sizeof(int32_t) * B * T), *tg = malloc(sizeof(int32_t) * B * T);
    lh_adamw_params adam = {3e-3f, 0.9f, 0.95f, 1e-8f, 0.0f};
    double t0 = lh_now_s();
    for (int s = 1; s <= steps; s++) {
        float loss;
        if (lh_dataset_next_batch(train, B, in, tg, NULL)) return fail();
        lh_stage_zero_grads(model);
        if (lh_stage_forward(model, 0, B, T, in, NULL, tg, NULL, &loss)) return fail();
        if (lh_stage_backward(model, 0, NULL, 1.0f, NULL)) return fail();
        if (lh_stage_adamw_step(model, &adam, s)) return fail();
        if (s == 1 || s % 50 == 0) {
            double val_loss = 0;
            lh_dataset_position start = {0, 0};
            if (lh_dataset_seek(val, start)) return fail();
            for (int k = 0; k < 8; k++) {
                float l;
                if (lh_dataset_next_batch(val, B, in, tg, NULL)) return fail();
                if (lh_stage_forward(model, 0, B, T, in, NULL, tg, NULL, &l)) return fail();
                val_loss += l;
            }
            printf("step %4d train %.3f val %.3f nats (%.1f s)\n", s, loss, val_loss / 8, lh_now_s() - t0);
            fflush(stdout);
        }
    }
    lh_stage_free(model);
    lh_dataset_free(train);
    lh_dataset_free(val);
    free(in);
    free(tg);
    return 0;
}
