/*
 * The compressed allreduce against an exact (double precision) sum:
 *  - every element within the documented bound G * sum_k S_k(group), at 2, 4
 *    and 8 bits, for sizes of one element, odd sizes and many blocks;
 *  - all ranks end bitwise identical;
 *  - error feedback works as designed: the error summed over steps equals
 *    minus the current residuals (telescoping) and stays at one step's size,
 *    while without error feedback it grows with the number of steps;
 *  - bytes on the wire are about bits/32 of the fp32 allreduce's.
 */
#include <math.h>
#include <stdlib.h>

#include "lh_comm_compressed.h"
#include "lh_log.h"
#include "lh_test.h"

static int rank_, size_;

static int find_ranks(void)
{
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    return 0;
}

/* Deterministic, roughly Gaussian values that differ per rank, element and step. */
static float gradient_value(int rank, size_t i, int step)
{
    uint64_t z = (uint64_t)rank * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull + (uint64_t)step * 0x94D049BBull;
    double s = 0;
    for (int k = 0; k < 4; k++) {
        z ^= z >> 31;
        z *= 0xD6E8FEB86659FD93ull;
        z ^= z >> 29;
        s += (double)(z >> 11) / 9007199254740992.0 - 0.5;
    }
    return (float)(s * (1.0 + (i % 17) * 0.1));
}

/* Sum over ranks of the per-group absmax, for the groups of lh_callreduce (per block, 256 per group). */
static double *group_absmax_sum(const float *g, size_t n, size_t group)
{
    double *s = calloc(n + 1, sizeof(double)); /* indexed by element: S(group of i) */
    for (int b = 0; b < size_; b++) {
        size_t off, cnt;
        lh_comm_block_range(n, size_, b, &off, &cnt);
        for (size_t g0 = 0; g0 < cnt; g0 += group) {
            size_t e = g0 + group < cnt ? g0 + group : cnt;
            double m = 0;
            for (size_t i = g0; i < e; i++) m = fmax(m, fabs(g[off + i]));
            for (size_t i = g0; i < e; i++) s[off + i] = m;
        }
    }
    MPI_Allreduce(MPI_IN_PLACE, s, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return s;
}

static const size_t sizes[] = {1, 7, 1000, 10007};

static void test_within_bound_and_identical(void)
{
    lh_comm *c;
    LH_ASSERT_OK(lh_comm_create(MPI_COMM_WORLD, NULL, &c));
    static const int bits_list[] = {2, 4, 8};
    for (int bi = 0; bi < 3; bi++) {
        lh_quant_params qp = lh_callreduce_default_params(bits_list[bi]);
        double G = lh_callreduce_max_gap(&qp);
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t n = sizes[si];
            float *x = malloc(n * sizeof(float)), *first = malloc(n * sizeof(float));
            double *exact = malloc(n * sizeof(double));
            for (size_t i = 0; i < n; i++) {
                x[i] = gradient_value(rank_, i, 0);
                exact[i] = x[i];
            }
            MPI_Allreduce(MPI_IN_PLACE, exact, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
            double *S = group_absmax_sum(x, n, qp.group_size);
            lh_callreduce *a;
            LH_ASSERT_OK(lh_callreduce_create(c, n, &qp, 7, 1, &a));
            LH_ASSERT_OK(lh_callreduce_run(a, x, 0));
            size_t outside = 0;
            double worst = 0, sq = 0, sq_exact = 0;
            for (size_t i = 0; i < n; i++) {
                double err = fabs(x[i] - exact[i]), bound = G * S[i] * (1 + 1e-5) + 1e-6;
                outside += err > bound;
                worst = fmax(worst, err / (bound > 0 ? bound : 1));
                sq += err * err;
                sq_exact += exact[i] * exact[i];
            }
            CU_ASSERT_EQUAL(outside, 0);
            if (rank_ == 0 && n == 10007)
                LH_INFO("compressed allreduce %d bits, n %zu: relative rms error %.4f, worst error / bound %.3f",
                        qp.bits, n, sqrt(sq / sq_exact), worst);
            if (qp.bits == 8 && n > 100) CU_ASSERT(sqrt(sq / sq_exact) < 0.02);
            /* every rank holds the same bytes */
            memcpy(first, x, n * sizeof(float));
            MPI_Bcast(first, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
            CU_ASSERT_EQUAL(memcmp(first, x, n * sizeof(float)), 0);
            lh_callreduce_free(a);
            free(S);
            free(x);
            free(first);
            free(exact);
        }
    }
    lh_comm_free(c);
}

/* Accumulated error after `steps` steps of the same gradient; checks the telescoping identity with EF. */
static double accumulated_error(lh_comm *c, int bits, int ef, int steps, size_t n)
{
    lh_quant_params qp = lh_callreduce_default_params(bits);
    lh_callreduce *a;
    LH_ASSERT_OK(lh_callreduce_create(c, n, &qp, 11, ef, &a));
    double *acc_err = calloc(n, sizeof(double)), *exact = malloc(n * sizeof(double));
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) exact[i] = gradient_value(rank_, i, 1);
    MPI_Allreduce(MPI_IN_PLACE, exact, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    for (int t = 0; t < steps; t++) {
        for (size_t i = 0; i < n; i++) x[i] = gradient_value(rank_, i, 1);
        LH_ASSERT_OK(lh_callreduce_run(a, x, (uint64_t)t));
        for (size_t i = 0; i < n; i++) acc_err[i] += (double)x[i] - exact[i];
    }
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(acc_err[i]));
    if (ef) {
        /* sum_t result - sum_t exact = -(all worker residuals + the owner's server residual) */
        double *res = calloc(n, sizeof(double));
        const float *w = lh_callreduce_worker_residual(a);
        for (size_t i = 0; i < n; i++) res[i] = w[i];
        size_t off, cnt;
        const float *s = lh_callreduce_server_residual(a, &off, &cnt);
        for (size_t i = 0; i < cnt; i++) res[off + i] += s[i];
        MPI_Allreduce(MPI_IN_PLACE, res, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        size_t off_identity = 0;
        for (size_t i = 0; i < n; i++) off_identity += fabs(acc_err[i] + res[i]) > 1e-4 * steps;
        CU_ASSERT_EQUAL(off_identity, 0);
        free(res);
    }
    lh_callreduce_free(a);
    free(acc_err);
    free(exact);
    free(x);
    return worst;
}

static void test_error_feedback(void)
{
    lh_comm *c;
    LH_ASSERT_OK(lh_comm_create(MPI_COMM_WORLD, NULL, &c));
    size_t n = 3001;
    double ef5 = accumulated_error(c, 2, 1, 5, n), ef40 = accumulated_error(c, 2, 1, 40, n);
    double no5 = accumulated_error(c, 2, 0, 5, n), no40 = accumulated_error(c, 2, 0, 40, n);
    if (rank_ == 0)
        LH_INFO("2-bit accumulated max error: with EF %.3g (5 steps) %.3g (40 steps); without EF %.3g / %.3g", ef5,
                ef40, no5, no40);
    CU_ASSERT(ef40 < 2 * ef5 + 1e-3);  /* bounded: does not grow with steps */
    CU_ASSERT(no40 > 6 * no5);         /* without EF the same bias adds up step after step */
    CU_ASSERT(ef40 * 5 < no40);
    lh_comm_free(c);
}

static void test_wire_bytes(void)
{
    size_t n = 100003;
    float *x = malloc(n * sizeof(float));
    lh_comm *c;
    LH_ASSERT_OK(lh_comm_create(MPI_COMM_WORLD, NULL, &c));
    for (size_t i = 0; i < n; i++) x[i] = gradient_value(rank_, i, 2);
    LH_ASSERT_OK(lh_comm_allreduce_f32(c, x, n));
    lh_comm_stats fp32;
    lh_comm_get_stats(c, &fp32);
    static const int bits_list[] = {2, 4, 8};
    for (int bi = 0; bi < 3; bi++) {
        lh_comm_reset_stats(c);
        lh_quant_params qp = lh_callreduce_default_params(bits_list[bi]);
        lh_callreduce *a;
        LH_ASSERT_OK(lh_callreduce_create(c, n, &qp, 1, 1, &a));
        LH_ASSERT_OK(lh_callreduce_run(a, x, 0));
        lh_comm_stats s;
        lh_comm_get_stats(c, &s);
        double ratio = (double)s.wire_bytes_sent / (double)fp32.wire_bytes_sent;
        if (rank_ == 0) LH_INFO("%d bits: %.4f of the fp32 allreduce's bytes", qp.bits, ratio);
        CU_ASSERT(ratio < (qp.bits + 32.0 / 256) / 32 + 0.01);
        CU_ASSERT(ratio > qp.bits / 32.0);
        lh_callreduce_free(a);
    }
    free(x);
    lh_comm_free(c);
}

static void test_bad_params(void)
{
    lh_comm *c;
    LH_ASSERT_OK(lh_comm_create(MPI_COMM_WORLD, NULL, &c));
    lh_callreduce *a;
    lh_quant_params qp = lh_callreduce_default_params(4);
    qp.zstd_level = 3;
    LH_ASSERT_FAILS_WITH(lh_callreduce_create(c, 10, &qp, 0, 1, &a), LH_ERR_INVALID_ARG, "zstd_level must be 0");
    qp = lh_callreduce_default_params(4);
    qp.grouping = LH_GROUP_CHANNEL;
    LH_ASSERT_FAILS_WITH(lh_callreduce_create(c, 10, &qp, 0, 1, &a), LH_ERR_INVALID_ARG, "per-channel");
    qp = lh_callreduce_default_params(4);
    qp.bits = LH_QUANT_BITS_RAW;
    LH_ASSERT_FAILS_WITH(lh_callreduce_create(c, 10, &qp, 0, 1, &a), LH_ERR_INVALID_ARG, "bits must be 1..8");
    lh_comm_free(c);
}

static CU_TestInfo tests[] = {
    {"within the bound, identical on all ranks", test_within_bound_and_identical},
    {"error feedback keeps the accumulated error bounded", test_error_feedback},
    {"bytes on the wire", test_wire_bytes},
    {"bad parameters", test_bad_params},
    CU_TEST_INFO_NULL,
};

int main(int argc, char **argv)
{
    CU_SuiteInfo suites[] = {{"compressed allreduce", find_ranks, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return lh_test_run_mpi(&argc, &argv, suites);
}
