/*
 * Merkle tree with libsodium's BLAKE2b (crypto_generichash, 32-byte output).
 * All levels live in one array, leaves first.
 */
#include "lh_merkle.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct lh_merkle {
    int levels;
    size_t *width;  /* [levels] */
    size_t *offset; /* [levels] first node of each level in `hashes` */
    uint8_t *hashes;
};

void lh_merkle_free(lh_merkle *m)
{
    if (!m) return;
    free(m->width);
    free(m->offset);
    free(m->hashes);
    free(m);
}

lh_status lh_merkle_build(const void *data, size_t len, size_t chunk_bytes, lh_merkle **out)
{
    *out = NULL;
    if (chunk_bytes == 0) return lh_fail(LH_ERR_INVALID_ARG, "merkle: chunk size must be > 0");
    if (sodium_init() < 0) return lh_fail(LH_ERR_INTERNAL, "merkle: libsodium failed to initialise");
    size_t leaves = len ? (len + chunk_bytes - 1) / chunk_bytes : 1;
    int levels = 1;
    for (size_t w = leaves; w > 1; w = (w + 1) / 2) levels++;
    lh_merkle *m = calloc(1, sizeof *m);
    size_t total = 0;
    if (m) {
        m->width = calloc((size_t)levels, sizeof *m->width);
        m->offset = calloc((size_t)levels, sizeof *m->offset);
    }
    if (!m || !m->width || !m->offset) {
        lh_merkle_free(m);
        return lh_fail(LH_ERR_NOMEM, "merkle: out of memory");
    }
    m->levels = levels;
    for (int l = 0; l < levels; l++) {
        m->width[l] = l == 0 ? leaves : (m->width[l - 1] + 1) / 2;
        m->offset[l] = total;
        total += m->width[l];
    }
    m->hashes = malloc(total * LH_MERKLE_HASH_BYTES);
    if (!m->hashes) {
        lh_merkle_free(m);
        return lh_fail(LH_ERR_NOMEM, "merkle: out of memory for %zu hashes", total);
    }
    const uint8_t *bytes = data;
    for (size_t i = 0; i < leaves; i++) {
        size_t start = i * chunk_bytes, n = len - start < chunk_bytes ? len - start : chunk_bytes;
        if (len == 0) n = 0;
        uint64_t index = i;
        crypto_generichash_state st;
        crypto_generichash_init(&st, NULL, 0, LH_MERKLE_HASH_BYTES);
        crypto_generichash_update(&st, (const uint8_t *)&index, sizeof index);
        crypto_generichash_update(&st, bytes + start, n);
        crypto_generichash_final(&st, m->hashes + i * LH_MERKLE_HASH_BYTES, LH_MERKLE_HASH_BYTES);
    }
    for (int l = 1; l < levels; l++) {
        const uint8_t *below = m->hashes + m->offset[l - 1] * LH_MERKLE_HASH_BYTES;
        uint8_t *here = m->hashes + m->offset[l] * LH_MERKLE_HASH_BYTES;
        for (size_t i = 0; i < m->width[l]; i++) {
            size_t left = 2 * i, right = 2 * i + 1;
            if (right >= m->width[l - 1]) {
                memcpy(here + i * LH_MERKLE_HASH_BYTES, below + left * LH_MERKLE_HASH_BYTES, LH_MERKLE_HASH_BYTES);
                continue;
            }
            crypto_generichash(here + i * LH_MERKLE_HASH_BYTES, LH_MERKLE_HASH_BYTES,
                               below + left * LH_MERKLE_HASH_BYTES, 2 * LH_MERKLE_HASH_BYTES, NULL, 0);
        }
    }
    *out = m;
    return LH_OK;
}

int lh_merkle_levels(const lh_merkle *m) { return m->levels; }

size_t lh_merkle_width(const lh_merkle *m, int level)
{
    return level >= 0 && level < m->levels ? m->width[level] : 0;
}

const uint8_t *lh_merkle_node(const lh_merkle *m, int level, size_t index)
{
    if (level < 0 || level >= m->levels || index >= m->width[level]) return NULL;
    return m->hashes + (m->offset[level] + index) * LH_MERKLE_HASH_BYTES;
}

const uint8_t *lh_merkle_root(const lh_merkle *m) { return lh_merkle_node(m, m->levels - 1, 0); }
