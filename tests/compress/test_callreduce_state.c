/*
 * The compressed allreduce's residual state (checkpoints), on 2 ranks: an
 * allreduce rebuilt from a saved state continues exactly as the original
 * (bitwise identical results over the next steps, identical residuals);
 * another rank's state, another length, truncated and corrupted states are
 * rejected with a message and change nothing.  (Lives with the compress
 * tests because it tests the codec state; it needs MPI for the allreduce.)
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lh_comm_compressed.h"
#include "lh_io.h"
#include "lh_test.h"

enum { N = 1001 };

static lh_comm *world;
static int rank_, size_;

static float value(int rank, size_t i, int step)
{
    uint64_t z =
        (uint64_t)rank * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull + (uint64_t)step * 0x94D049BBull;
    z ^= z >> 31;
    z *= 0xD6E8FEB86659FD93ull;
    z ^= z >> 29;
    return (float)((double)(z >> 11) / 9007199254740992.0 - 0.5);
}

static void run_step(lh_callreduce *a, int step, float *data)
{
    for (size_t i = 0; i < N; i++)
        data[i] = value(rank_, i, step);
    LH_ASSERT_OK(lh_callreduce_run(a, data, (uint64_t)step));
}

static uint8_t *save(const lh_callreduce *a, size_t *len)
{
    size_t need = lh_callreduce_state_bytes(a);
    uint8_t *buf = malloc(need);
    CU_ASSERT_FATAL(buf != NULL);
    LH_ASSERT_OK(lh_callreduce_save_state(a, buf, need, len));
    CU_ASSERT_EQUAL(*len, need);
    return buf;
}

static void test_round_trip(void)
{
    lh_quant_params p = lh_callreduce_default_params(2);
    p.group_size = 64;
    lh_callreduce *a, *b;
    LH_ASSERT_OK(lh_callreduce_create(world, N, &p, 7, 1, &a));
    float x[N], y[N];
    for (int s = 0; s < 3; s++)
        run_step(a, s, x);
    size_t len;
    uint8_t *st = save(a, &len);
    lh_callreduce_state_info info;
    LH_ASSERT_OK(lh_callreduce_state_peek(st, len, &info));
    size_t off, cnt;
    lh_callreduce_server_residual(a, &off, &cnt);
    CU_ASSERT_EQUAL(info.n, N);
    CU_ASSERT_EQUAL(info.ranks, (uint32_t)size_);
    CU_ASSERT_EQUAL(info.rank, (uint32_t)rank_);
    CU_ASSERT_EQUAL(info.block_offset, off);
    CU_ASSERT_EQUAL(info.block_count, cnt);
    /* after 3 steps the worker residual is not zero off this rank's block */
    double rsum = 0;
    for (size_t i = 0; i < N; i++)
        rsum += fabs(lh_callreduce_worker_residual(a)[i]);
    CU_ASSERT_TRUE(rsum > 0);

    LH_ASSERT_OK(lh_callreduce_create(world, N, &p, 7, 1, &b));
    LH_ASSERT_OK(lh_callreduce_load_state(b, st, len));
    CU_ASSERT_EQUAL(
        memcmp(lh_callreduce_worker_residual(a), lh_callreduce_worker_residual(b), N * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(lh_callreduce_server_residual(a, NULL, NULL),
                           lh_callreduce_server_residual(b, NULL, NULL), cnt * sizeof(float)),
                    0);
    for (int s = 3; s < 6; s++) {
        run_step(a, s, x);
        run_step(b, s, y);
        CU_ASSERT_EQUAL(memcmp(x, y, sizeof x), 0);
    }
    /* a fresh allreduce (zero residuals) would not have matched: the state matters */
    lh_callreduce *fresh;
    LH_ASSERT_OK(lh_callreduce_create(world, N, &p, 7, 1, &fresh));
    run_step(fresh, 6, y);
    run_step(a, 6, x);
    CU_ASSERT_NOT_EQUAL(memcmp(x, y, sizeof x), 0);
    free(st);
    lh_callreduce_free(a);
    lh_callreduce_free(b);
    lh_callreduce_free(fresh);
}

static void test_bad_states_rejected(void)
{
    lh_quant_params p = lh_callreduce_default_params(4);
    lh_callreduce *a, *b, *longer;
    LH_ASSERT_OK(lh_callreduce_create(world, N, &p, 3, 1, &a));
    LH_ASSERT_OK(lh_callreduce_create(world, N, &p, 3, 1, &b));
    LH_ASSERT_OK(lh_callreduce_create(world, N + 10, &p, 3, 1, &longer));
    float x[N];
    for (int s = 0; s < 2; s++)
        run_step(a, s, x);
    size_t len;
    uint8_t *st = save(a, &len);
    /* every rank's state goes to every rank: the other rank's is refused */
    size_t *lens = malloc((size_t)size_ * sizeof *lens), maxlen = 0;
    LH_ASSERT_OK(lh_comm_allgather(world, &len, sizeof len, lens));
    for (int r = 0; r < size_; r++)
        maxlen = lens[r] > maxlen ? lens[r] : maxlen;
    uint8_t *mine = calloc(1, maxlen), *all = malloc(maxlen * (size_t)size_);
    memcpy(mine, st, len);
    LH_ASSERT_OK(lh_comm_allgather(world, mine, maxlen, all));
    int other = (rank_ + 1) % size_;
    LH_ASSERT_FAILS_WITH(lh_callreduce_load_state(b, all + (size_t)other * maxlen, lens[other]),
                         LH_ERR_MISMATCH, "saved by rank");
    LH_ASSERT_FAILS_WITH(lh_callreduce_load_state(longer, st, len), LH_ERR_MISMATCH, "over 1001 values");
    LH_ASSERT_FAILS_WITH(lh_callreduce_load_state(b, st, len - 1), LH_ERR_TRUNCATED, "cannot hold");
    LH_ASSERT_FAILS_WITH(lh_callreduce_load_state(b, st, 30), LH_ERR_TRUNCATED, "minimum");
    uint8_t *bad = malloc(len);
    memcpy(bad, st, len);
    bad[len / 2] ^= 4;
    LH_ASSERT_FAILS_WITH(lh_callreduce_load_state(b, bad, len), LH_ERR_CORRUPT, "CRC-32C mismatch");
    memcpy(bad, st, len);
    bad[0] = 'x';
    LH_ASSERT_FAILS_WITH(lh_callreduce_load_state(b, bad, len), LH_ERR_FORMAT, "bad magic");
    /* a nested residual state that is damaged behind a valid outer CRC: the server's is checked before either
     * is applied, so the worker residual stays untouched */
    memcpy(bad, st, len);
    bad[len - 8] ^= 1; /* inside the server state's own CRC */
    uint32_t c = lh_crc32c(0, bad, len - 4);
    for (int i = 0; i < 4; i++)
        bad[len - 4 + i] = (uint8_t)(c >> (8 * i));
    LH_ASSERT_FAILS_WITH(lh_callreduce_load_state(b, bad, len), LH_ERR_CORRUPT, "server residual");
    for (size_t i = 0; i < N; i++)
        CU_ASSERT_EQUAL_FATAL(lh_callreduce_worker_residual(b)[i], 0.0f);
    /* and the good one still loads */
    LH_ASSERT_OK(lh_callreduce_load_state(b, st, len));
    free(bad);
    free(lens);
    free(mine);
    free(all);
    free(st);
    lh_callreduce_free(a);
    lh_callreduce_free(b);
    lh_callreduce_free(longer);
}

static int setup(void)
{
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    lh_comm_options opts = {0};
    return lh_comm_create(MPI_COMM_WORLD, &opts, &world) != LH_OK;
}

static int teardown(void)
{
    lh_comm_free(world);
    return 0;
}

int main(int argc, char **argv)
{
    CU_TestInfo tests[] = {{"state round trip continues exactly", test_round_trip},
                           {"bad states rejected, nothing changed", test_bad_states_rejected},
                           CU_TEST_INFO_NULL};
    CU_SuiteInfo suites[] = {{"callreduce_state", setup, teardown, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return lh_test_run_mpi(&argc, &argv, suites);
}
