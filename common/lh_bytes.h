/*
 * lh_bytes: the little-endian integer fields of longhaul's binary formats
 * (wire frames, quantized frames, checkpoints, codec states, shards), read and
 * written byte by byte so the files and messages are the same on any host.
 * One definition for every format, so none of them can drift.
 */
#ifndef LH_BYTES_H
#define LH_BYTES_H

#include <stdint.h>

/** Store v at p (4 bytes, least significant first). */
static inline void lh_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/** Load 4 little-endian bytes at p. */
static inline uint32_t lh_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/** Store v at p (8 bytes, least significant first). */
static inline void lh_put_le64(uint8_t *p, uint64_t v)
{
    lh_put_le32(p, (uint32_t)v);
    lh_put_le32(p + 4, (uint32_t)(v >> 32));
}

/** Load 8 little-endian bytes at p. */
static inline uint64_t lh_get_le64(const uint8_t *p)
{
    return lh_get_le32(p) | (uint64_t)lh_get_le32(p + 4) << 32;
}

#endif
