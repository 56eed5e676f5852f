/*
 * Pipeline inference: greedy generation through a 2-stage x 2-replica
 * pipeline, several sequences batched per step, equals single-process greedy
 * generation token for token; 8-bit activations between stages still agree on
 * most tokens; bad requests are refused.  5 ranks: 4 workers + the frontend.
 */
#include <mpi.h>
#include <stdlib.h>

#include "lh_generate.h"
#include "lh_infer.h"
#include "lh_test.h"

#define FRONTEND 4
#define NEW_TOKENS 12

static lh_comm *world;
static const lh_model_config config = {32, 257, 0, 4, 2, 32};

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Reference: the whole model in one process. */
static void reference(const int32_t *prompt, int n, int32_t *out)
{
    lh_model_config c = config;
    LH_ASSERT_OK(lh_model_config_check(&c));
    lh_stage_spec spec = lh_stage_spec_whole(&c);
    lh_stage *s;
    LH_ASSERT_OK(lh_stage_create(&c, &spec, 1, c.max_seq_len, 1, &s));
    lh_stage_init_params(s, 99);
    int32_t tokens[64];
    memcpy(tokens, prompt, (size_t)n * sizeof *tokens);
    size_t len = (size_t)n;
    lh_sampling greedy = {0};
    LH_ASSERT_OK(lh_generate(s, tokens, &len, NEW_TOKENS, &greedy, NULL, NULL));
    memcpy(out, tokens + n, NEW_TOKENS * sizeof *out);
    lh_stage_free(s);
}

static void run_pipeline(int act_bits, int *agree, int *compared)
{
    lh_plan *plan;
    LH_ASSERT_OK(lh_plan_create(2, 2, config.num_layers, &plan));
    lh_infer_options o = {.config = config, .seed = 99, .slots = 2, .act_bits = act_bits, .frontend = FRONTEND};
    lh_infer *inf;
    LH_ASSERT_OK(lh_infer_create(&o, plan, world, &inf));
    if (lh_comm_rank(world) != FRONTEND) {
        LH_ASSERT_OK(lh_infer_serve(inf));
    } else {
        /* Three sequences: two share replica 0 (batched), one on replica 1. */
        const int32_t prompts[3][4] = {{'T', 'h', 'e', ' '}, {'a', ' ', 'c', 'a'}, {'O', 'n', 'c', 'e'}};
        const int replica_of[3] = {0, 0, 1}, slot_of[3] = {0, 1, 0};
        int32_t got[3][NEW_TOKENS], last[3];
        float logits[2 * 257];
        for (int r = 0; r < 2; r++) { /* prefill, one batch per replica */
            lh_infer_entry e[2];
            int32_t toks[8];
            int n = 0;
            for (int q = 0; q < 3; q++) {
                if (replica_of[q] != r) continue;
                e[n] = (lh_infer_entry){slot_of[q], 4, 1};
                memcpy(toks + 4 * n, prompts[q], sizeof prompts[q]);
                n++;
            }
            LH_ASSERT_OK(lh_infer_step(inf, r, n, e, toks, logits));
            for (int q = 0, k = 0; q < 3; q++)
                if (replica_of[q] == r) last[q] = argmax(logits + 257 * k++, 257);
        }
        for (int t = 0; t < NEW_TOKENS; t++) {
            for (int q = 0; q < 3; q++) got[q][t] = last[q];
            for (int r = 0; r < 2; r++) { /* decode: one token per sequence, batched per replica */
                lh_infer_entry e[2];
                int32_t toks[2];
                int n = 0;
                for (int q = 0; q < 3; q++)
                    if (replica_of[q] == r) {
                        e[n] = (lh_infer_entry){slot_of[q], 1, 0};
                        toks[n++] = last[q];
                    }
                LH_ASSERT_OK(lh_infer_step(inf, r, n, e, toks, logits));
                for (int q = 0, k = 0; q < 3; q++)
                    if (replica_of[q] == r) last[q] = argmax(logits + 257 * k++, 257);
            }
        }
        for (int q = 0; q < 3; q++) {
            int32_t want[NEW_TOKENS];
            reference(prompts[q], 4, want);
            for (int t = 0; t < NEW_TOKENS; t++) *agree += got[q][t] == want[t];
            *compared += NEW_TOKENS;
        }
        lh_infer_entry bad = {5, 1, 0};
        int32_t tok = 1;
        LH_ASSERT_FAILS_WITH(lh_infer_step(inf, 0, 1, &bad, &tok, logits), LH_ERR_INVALID_ARG, "slot 5");
        LH_ASSERT_OK(lh_infer_shutdown(inf));
    }
    lh_infer_free(inf);
    lh_plan_free(plan);
}

static void test_pipeline_greedy_equals_single_process(void)
{
    int agree = 0, compared = 0;
    run_pipeline(0, &agree, &compared);
    if (lh_comm_rank(world) == FRONTEND) {
        CU_ASSERT_EQUAL(compared, 3 * NEW_TOKENS);
        CU_ASSERT_EQUAL(agree, compared); /* token for token */
    }
}

static void test_quantized_activations_mostly_agree(void)
{
    int agree = 0, compared = 0;
    run_pipeline(8, &agree, &compared);
    if (lh_comm_rank(world) == FRONTEND) {
        if (agree < compared * 3 / 4) fprintf(stderr, "\n  8-bit rows: %d of %d tokens agree\n", agree, compared);
        CU_ASSERT_TRUE(agree >= compared * 3 / 4);
    }
}

static void test_wrong_world_size(void)
{
    lh_plan *plan;
    LH_ASSERT_OK(lh_plan_create(2, 1, config.num_layers, &plan));
    lh_infer_options o = {.config = config, .seed = 1, .slots = 1, .frontend = 2};
    lh_infer *inf;
    LH_ASSERT_FAILS_WITH(lh_infer_create(&o, plan, world, &inf), LH_ERR_MISMATCH, "= 3 ranks, not 5");
    lh_plan_free(plan);
}

static int setup(void)
{
    lh_comm_options opts = {.timeout_s = 120};
    return lh_comm_create(MPI_COMM_WORLD, &opts, &world) != LH_OK;
}

static int teardown(void)
{
    lh_comm_free(world);
    return 0;
}

int main(int argc, char **argv)
{
    CU_TestInfo tests[] = {{"2x2 pipeline greedy = single process", test_pipeline_greedy_equals_single_process},
                           {"8-bit activations mostly agree", test_quantized_activations_mostly_agree},
                           {"a plan of the wrong size", test_wrong_world_size},
                           CU_TEST_INFO_NULL};
    CU_SuiteInfo suites[] = {{"inference", setup, teardown, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return lh_test_run_mpi(&argc, &argv, suites);
}
