/* The Merkle tree used for replica agreement: shape, determinism, and that a one-byte change moves exactly its leaf's path. */
#include <stdlib.h>

#include "lh_merkle.h"
#include "lh_test.h"

static void test_shape_and_change(void)
{
    size_t len = 10 * 1000 + 7;
    unsigned char *a = malloc(len), *b = malloc(len);
    for (size_t i = 0; i < len; i++) a[i] = b[i] = (unsigned char)(i * 31);
    lh_merkle *ma, *mb;
    LH_ASSERT_OK(lh_merkle_build(a, len, 1000, &ma));
    CU_ASSERT_EQUAL(lh_merkle_width(ma, 0), 11);
    CU_ASSERT_EQUAL(lh_merkle_levels(ma), 5); /* 11 -> 6 -> 3 -> 2 -> 1 */
    CU_ASSERT_EQUAL(lh_merkle_width(ma, 4), 1);
    CU_ASSERT_PTR_NULL(lh_merkle_node(ma, 0, 11));
    b[7500] ^= 1; /* chunk 7 */
    LH_ASSERT_OK(lh_merkle_build(b, len, 1000, &mb));
    CU_ASSERT_NOT_EQUAL(memcmp(lh_merkle_root(ma), lh_merkle_root(mb), LH_MERKLE_HASH_BYTES), 0);
    for (size_t i = 0; i < 11; i++) {
        int same = !memcmp(lh_merkle_node(ma, 0, i), lh_merkle_node(mb, 0, i), LH_MERKLE_HASH_BYTES);
        CU_ASSERT_EQUAL(same, i != 7);
    }
    /* Walking down from the root by "first differing child" finds chunk 7. */
    size_t node = 0;
    for (int level = lh_merkle_levels(ma) - 1; level > 0; level--) {
        size_t left = 2 * node;
        node = memcmp(lh_merkle_node(ma, level - 1, left), lh_merkle_node(mb, level - 1, left), LH_MERKLE_HASH_BYTES)
                   ? left
                   : left + 1;
    }
    CU_ASSERT_EQUAL(node, 7);
    lh_merkle *again;
    LH_ASSERT_OK(lh_merkle_build(a, len, 1000, &again));
    CU_ASSERT_EQUAL(memcmp(lh_merkle_root(ma), lh_merkle_root(again), LH_MERKLE_HASH_BYTES), 0);
    /* Equal chunks at different positions hash differently (the index is hashed). */
    memset(a, 0, 2000);
    lh_merkle *z;
    LH_ASSERT_OK(lh_merkle_build(a, 2000, 1000, &z));
    CU_ASSERT_NOT_EQUAL(memcmp(lh_merkle_node(z, 0, 0), lh_merkle_node(z, 0, 1), LH_MERKLE_HASH_BYTES), 0);
    lh_merkle_free(z);
    LH_ASSERT_FAILS_WITH(lh_merkle_build(a, 10, 0, &z), LH_ERR_INVALID_ARG, "chunk size");
    CU_ASSERT_PTR_NULL(z);
    lh_merkle_free(again);
    lh_merkle_free(ma);
    lh_merkle_free(mb);
    free(a);
    free(b);
}

int main(void)
{
    CU_TestInfo tests[] = {{"shape, determinism, one change", test_shape_and_change}, CU_TEST_INFO_NULL};
    CU_SuiteInfo suites[] = {{"merkle", NULL, NULL, NULL, NULL, tests}, CU_SUITE_INFO_NULL};
    return lh_test_run(suites);
}
