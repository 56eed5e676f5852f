/*
 * lh_merkle: a BLAKE2b Merkle tree over a byte buffer cut into fixed-size
 * chunks, so two parties holding large buffers (replicas' parameters) can
 * find the first chunk where they differ by exchanging O(log chunks) hashes
 * instead of the data.
 *
 * Leaves hash (chunk index, chunk bytes); an inner node hashes its two
 * children; a level with an odd count carries its last node up unchanged.
 * Node (level, index): level 0 = leaves, the last level holds the root.
 */
#ifndef LH_MERKLE_H
#define LH_MERKLE_H

#include <stddef.h>
#include <stdint.h>

#include "lh_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LH_MERKLE_HASH_BYTES 32

typedef struct lh_merkle lh_merkle;

/** Build the tree of `len` bytes in chunks of `chunk_bytes` (> 0). */
lh_status lh_merkle_build(const void *data, size_t len, size_t chunk_bytes, lh_merkle **out);

/** Free (NULL accepted). */
void lh_merkle_free(lh_merkle *m);

/** Number of levels (1 for a single chunk); the root is at level levels-1. */
int lh_merkle_levels(const lh_merkle *m);

/** Nodes on `level`. */
size_t lh_merkle_width(const lh_merkle *m, int level);

/** The hash of node (level, index); NULL when out of range. */
const uint8_t *lh_merkle_node(const lh_merkle *m, int level, size_t index);

/** The root hash. */
const uint8_t *lh_merkle_root(const lh_merkle *m);

#ifdef __cplusplus
}
#endif
#endif
