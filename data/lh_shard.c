/*
 * llm.c token shards.  The format is llm.c's (dev/data/data_common.py
 * write_datafile), so files move between the two projects unchanged.
 *
 * Every check reports the concrete numbers involved, because a bad shard is
 * usually a truncated download or a file from a different tool, and the user
 * must be able to tell which from the message alone.  The header is checked
 * before the body is touched, and the size is compared with the declared
 * count before anything is allocated, so a forged count cannot make us
 * allocate or read more than the file holds.  Bytes are assembled
 * explicitly as little-endian, so the code is correct on any host and never
 * makes unaligned loads.
 */
#include "lh_data.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lh_bytes.h"
#include "lh_io.h"

/* Checks the header against the total file size; on success *count is the token count. */
static lh_status check_header(const uint8_t *header, size_t file_len, const char *name, size_t *count)
{
    int32_t magic = (int32_t)lh_get_le32(header);
    int32_t version = (int32_t)lh_get_le32(header + 4);
    int32_t declared = (int32_t)lh_get_le32(header + 8);
    if (magic != LH_SHARD_MAGIC)
        return lh_fail(LH_ERR_FORMAT, "%s: bad magic %" PRId32 " (expected %d): not an llm.c token shard", name,
                       magic, LH_SHARD_MAGIC);
    if (version != LH_SHARD_VERSION)
        return lh_fail(LH_ERR_FORMAT, "%s: unsupported shard version %" PRId32 " (this build reads version %d)",
                       name, version, LH_SHARD_VERSION);
    if (declared < 0)
        return lh_fail(LH_ERR_FORMAT, "%s: negative token count %" PRId32 " in the header", name, declared);
    size_t expected = lh_shard_image_bound((size_t)declared);
    if (file_len < expected)
        return lh_fail(LH_ERR_TRUNCATED, "%s: header declares %" PRId32 " tokens (%zu bytes) but the file has %zu bytes",
                       name, declared, expected, file_len);
    if (file_len > expected)
        return lh_fail(LH_ERR_FORMAT, "%s: header declares %" PRId32 " tokens (%zu bytes) but the file has %zu bytes (%zu extra)",
                       name, declared, expected, file_len, file_len - expected);
    *count = (size_t)declared;
    return LH_OK;
}

/* Index of the first id >= vocab_size in host-order `ids`; count when there is none. */
static size_t first_out_of_vocab(const uint16_t *ids, size_t count, uint32_t vocab_size)
{
    /* A max-reduction vectorizes; the slow search runs only on the error path. */
    uint16_t max = 0;
    for (size_t i = 0; i < count; i++) max = ids[i] > max ? ids[i] : max;
    if (max < vocab_size) return count;
    for (size_t i = 0; i < count; i++)
        if (ids[i] >= vocab_size) return i;
    return count;
}

/*
 * Converts little-endian token bytes to host order (in place when out aliases
 * body) and checks each id against the vocabulary.  With out == NULL only
 * checks.  On little-endian hosts the conversion is a copy.
 */
static lh_status decode_body(const uint8_t *body, size_t count, const char *name, uint32_t vocab_size,
                             uint16_t *out)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (out && (const void *)out != (const void *)body) memcpy(out, body, count * 2);
    if (vocab_size && vocab_size < 65536) {
        size_t bad;
        uint16_t id;
        if (out) {
            bad = first_out_of_vocab(out, count, vocab_size);
            id = bad < count ? out[bad] : 0;
        } else {
            /* The image may be unaligned: check it in aligned chunks. */
            uint16_t chunk[4096];
            bad = count;
            id = 0;
            for (size_t done = 0; done < count && bad == count; done += 4096) {
                size_t n = count - done < 4096 ? count - done : 4096;
                memcpy(chunk, body + 2 * done, 2 * n);
                size_t at = first_out_of_vocab(chunk, n, vocab_size);
                if (at < n) {
                    bad = done + at;
                    id = chunk[at];
                }
            }
        }
        if (bad < count)
            return lh_fail(LH_ERR_FORMAT, "%s: token %u at index %zu is outside the vocabulary of %" PRIu32, name,
                           id, bad, vocab_size);
    }
    return LH_OK;
#else
    for (size_t i = 0; i < count; i++) {
        uint16_t id = (uint16_t)(body[2 * i] | body[2 * i + 1] << 8);
        if (vocab_size && id >= vocab_size)
            return lh_fail(LH_ERR_FORMAT, "%s: token %u at index %zu is outside the vocabulary of %" PRIu32, name,
                           id, i, vocab_size);
        if (out) out[i] = id;
    }
    return LH_OK;
#endif
}

size_t lh_shard_image_bound(size_t count)
{
    return LH_SHARD_HEADER_BYTES + 2 * count;
}

lh_status lh_shard_parse(const void *image, size_t image_len, const char *name, uint32_t vocab_size,
                         size_t *count)
{
    return lh_shard_decode(image, image_len, name, vocab_size, NULL, 0, count);
}

lh_status lh_shard_decode(const void *image, size_t image_len, const char *name, uint32_t vocab_size,
                          uint16_t *out, size_t out_cap, size_t *count)
{
    *count = 0;
    if (!name) name = "<memory>";
    if (!image && image_len) return lh_fail(LH_ERR_INVALID_ARG, "%s: NULL image", name);
    if (image_len < LH_SHARD_HEADER_BYTES)
        return lh_fail(LH_ERR_TRUNCATED, "%s: %zu bytes is shorter than the %d-byte shard header", name, image_len,
                       LH_SHARD_HEADER_BYTES);
    size_t n = 0;
    lh_status st = check_header(image, image_len, name, &n);
    if (st) return st;
    if (out && out_cap < n)
        return lh_fail(LH_ERR_CAPACITY, "%s: %zu tokens do not fit in a buffer of %zu", name, n, out_cap);
    st = decode_body((const uint8_t *)image + LH_SHARD_HEADER_BYTES, n, name, vocab_size, out);
    if (st) return st;
    *count = n;
    return LH_OK;
}

static void encode_header(uint8_t *header, size_t count)
{
    memset(header, 0, LH_SHARD_HEADER_BYTES);
    lh_put_le32(header, LH_SHARD_MAGIC);
    lh_put_le32(header + 4, LH_SHARD_VERSION);
    lh_put_le32(header + 8, (uint32_t)count);
}

static void encode_body(const uint16_t *tokens, size_t count, uint8_t *out)
{
    for (size_t i = 0; i < count; i++) {
        out[2 * i] = (uint8_t)tokens[i];
        out[2 * i + 1] = (uint8_t)(tokens[i] >> 8);
    }
}

lh_status lh_shard_encode(const uint16_t *tokens, size_t count, void *out, size_t out_cap, size_t *written)
{
    *written = 0;
    if (count > LH_SHARD_MAX_TOKENS)
        return lh_fail(LH_ERR_INVALID_ARG, "shard: %zu tokens is more than one shard holds (%zu)", count,
                       LH_SHARD_MAX_TOKENS);
    size_t need = lh_shard_image_bound(count);
    if (out_cap < need)
        return lh_fail(LH_ERR_CAPACITY, "shard: image of %zu tokens needs %zu bytes, buffer has %zu", count, need,
                       out_cap);
    encode_header(out, count);
    encode_body(tokens, count, (uint8_t *)out + LH_SHARD_HEADER_BYTES);
    *written = need;
    return LH_OK;
}

lh_status lh_shard_write(const char *path, const uint16_t *tokens, size_t count)
{
    if (count > LH_SHARD_MAX_TOKENS)
        return lh_fail(LH_ERR_INVALID_ARG, "%s: %zu tokens is more than one shard holds (%zu)", path, count,
                       LH_SHARD_MAX_TOKENS);
    uint8_t header[LH_SHARD_HEADER_BYTES];
    encode_header(header, count);
    lh_atomic_file *f;
    lh_status st = lh_atomic_file_open(path, &f);
    if (st) return st;
    st = lh_atomic_file_write(f, header, sizeof header);
    /* The body goes out in fixed chunks so writing never needs a second full-size buffer. */
    uint8_t chunk[1 << 16];
    const size_t per_chunk = sizeof chunk / 2;
    for (size_t done = 0; st == LH_OK && done < count; done += per_chunk) {
        size_t n = count - done < per_chunk ? count - done : per_chunk;
        encode_body(tokens + done, n, chunk);
        st = lh_atomic_file_write(f, chunk, 2 * n);
    }
    if (st) {
        lh_atomic_file_abort(f);
        return st;
    }
    return lh_atomic_file_commit(f);
}

lh_status lh_shard_read(const char *path, uint32_t vocab_size, uint16_t **tokens, size_t *count)
{
    *tokens = NULL;
    *count = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return lh_fail(LH_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return lh_fail(LH_ERR_IO, "%s: not a regular file", path);
    }
    size_t file_len = (size_t)sb.st_size;
    uint8_t header[LH_SHARD_HEADER_BYTES];
    if (file_len < sizeof header) {
        fclose(f);
        return lh_fail(LH_ERR_TRUNCATED, "%s: %zu bytes is shorter than the %d-byte shard header", path, file_len,
                       LH_SHARD_HEADER_BYTES);
    }
    size_t n = 0;
    lh_status st = LH_OK;
    if (fread(header, 1, sizeof header, f) != sizeof header)
        st = lh_fail(LH_ERR_IO, "%s: cannot read the header", path);
    if (!st) st = check_header(header, file_len, path, &n);
    uint16_t *buf = NULL;
    if (!st && !(buf = malloc(n ? n * sizeof *buf : 1)))
        st = lh_fail(LH_ERR_NOMEM, "%s: cannot allocate %zu tokens", path, n);
    /* Read the body straight into the token array, then fix byte order in place. */
    if (!st && fread(buf, 2, n, f) != n) st = lh_fail(LH_ERR_IO, "%s: short read of the token body", path);
    fclose(f);
    if (!st) st = decode_body((const uint8_t *)buf, n, path, vocab_size, buf);
    if (st) {
        free(buf);
        return st;
    }
    *tokens = buf;
    *count = n;
    return LH_OK;
}

lh_status lh_shard_write_series(const char *dir, const char *prefix, const uint16_t *tokens, size_t count,
                                size_t shard_tokens, size_t *shards_written)
{
    if (shards_written) *shards_written = 0;
    if (shard_tokens == 0 || shard_tokens > LH_SHARD_MAX_TOKENS)
        return lh_fail(LH_ERR_INVALID_ARG, "shard size %zu tokens is outside [1, %zu]", shard_tokens,
                       LH_SHARD_MAX_TOKENS);
    if (count == 0) return LH_OK;
    lh_status st = lh_mkdir_p(dir);
    if (st) return st;
    size_t index = 0;
    for (size_t done = 0; done < count; done += shard_tokens, index++) {
        if (index > 999999) return lh_fail(LH_ERR_INVALID_ARG, "%s: more than 1000000 shards", dir);
        char path[4096];
        int len = snprintf(path, sizeof path, "%s/%s_%06zu.bin", dir, prefix, index);
        if (len < 0 || (size_t)len >= sizeof path) return lh_fail(LH_ERR_INVALID_ARG, "%s: path too long", dir);
        size_t n = count - done < shard_tokens ? count - done : shard_tokens;
        st = lh_shard_write(path, tokens + done, n);
        if (st) return st;
        if (shards_written) *shards_written = index + 1;
    }
    return LH_OK;
}
