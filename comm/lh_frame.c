/*
 * Frame encoding, verification and key handling (see lh_frame.h for the
 * layout).  Verification order matters: nothing read from the header is used
 * (not even the length) before the header CRC has matched, so a flipped bit
 * reads as "corrupt", not as a confusing length error, and a hostile length
 * can never steer a copy.
 */
#include "lh_frame.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "lh_bytes.h"
#include "lh_io.h"

const char *lh_frame_kind_name(int kind)
{
    switch (kind) {
    case LH_FRAME_DATA: return "data";
    case LH_FRAME_COLLECTIVE: return "collective";
    case LH_FRAME_PROBE: return "probe";
    case LH_FRAME_CONTROL: return "control";
    default: return "unknown";
    }
}

size_t lh_frame_bound(size_t payload_len, int sealed)
{
    return LH_FRAME_HEADER_BYTES + payload_len + (sealed ? LH_FRAME_SEALED_TRAILER_BYTES : LH_FRAME_PLAIN_TRAILER_BYTES);
}

static void make_nonce(uint8_t nonce[12], uint64_t seq, uint8_t channel)
{
    lh_put_le64(nonce, seq);
    nonce[8] = channel;
    nonce[9] = nonce[10] = nonce[11] = 0;
}

static int sodium_ready(void)
{
    return sodium_init() >= 0;
}

lh_status lh_frame_seal(const lh_frame_header *h, const void *payload, const uint8_t *key, void *out,
                        size_t cap, size_t *out_len)
{
    if (!h || !out || !out_len || (h->payload_len && !payload))
        return lh_fail(LH_ERR_INVALID_ARG, "frame seal: NULL argument");
    if (h->payload_len > LH_FRAME_MAX_PAYLOAD)
        return lh_fail(LH_ERR_INVALID_ARG, "frame seal: payload of %u bytes exceeds the frame limit", h->payload_len);
    if (h->kind < 1 || h->kind > LH_FRAME_KIND_MAX)
        return lh_fail(LH_ERR_INVALID_ARG, "frame seal: unknown kind %u", h->kind);
    size_t need = lh_frame_bound(h->payload_len, key != NULL);
    if (cap < need) return lh_fail(LH_ERR_CAPACITY, "frame seal: need %zu bytes, buffer has %zu", need, cap);
    uint8_t *o = out;
    lh_put_le32(o + 0, LH_FRAME_MAGIC);
    o[4] = LH_FRAME_VERSION;
    o[5] = h->kind;
    o[6] = key ? LH_FRAME_FLAG_SEALED : 0;
    o[7] = h->channel;
    lh_put_le32(o + 8, h->src);
    lh_put_le32(o + 12, h->dst);
    lh_put_le64(o + 16, h->seq);
    lh_put_le64(o + 24, h->msg_len);
    lh_put_le64(o + 32, h->offset);
    lh_put_le64(o + 40, h->deliver_at_ns);
    lh_put_le32(o + 48, h->payload_len);
    lh_put_le32(o + 52, lh_crc32c(0, o, 52));
    uint8_t *body = o + LH_FRAME_HEADER_BYTES;
    if (key) {
        if (!sodium_ready()) return lh_fail(LH_ERR_INTERNAL, "frame seal: libsodium failed to initialise");
        uint8_t nonce[12];
        make_nonce(nonce, h->seq, h->channel);
        unsigned long long maclen = 0;
        crypto_aead_chacha20poly1305_ietf_encrypt_detached(body, body + h->payload_len, &maclen, payload,
                                                           h->payload_len, o, LH_FRAME_HEADER_BYTES, NULL, nonce,
                                                           key);
    } else {
        if (h->payload_len) memcpy(body, payload, h->payload_len);
        lh_put_le32(body + h->payload_len, lh_crc32c(0, body, h->payload_len));
    }
    *out_len = need;
    return LH_OK;
}

lh_status lh_frame_open(const void *frame, size_t len, const uint8_t *key, lh_frame_header *h, void *payload,
                        size_t cap)
{
    if (!frame || !h) return lh_fail(LH_ERR_INVALID_ARG, "frame open: NULL argument");
    const uint8_t *f = frame;
    if (len < LH_FRAME_HEADER_BYTES)
        return lh_fail(LH_ERR_TRUNCATED, "truncated frame: %zu bytes, shorter than the %d-byte header", len,
                       LH_FRAME_HEADER_BYTES);
    if (lh_get_le32(f) != LH_FRAME_MAGIC)
        return lh_fail(LH_ERR_FORMAT, "not a longhaul frame: bad magic 0x%08x", lh_get_le32(f));
    if (lh_crc32c(0, f, 52) != lh_get_le32(f + 52))
        return lh_fail(LH_ERR_CORRUPT, "corrupt frame: header checksum mismatch");
    memset(h, 0, sizeof *h);
    h->kind = f[5];
    h->flags = f[6];
    h->channel = f[7];
    h->src = lh_get_le32(f + 8);
    h->dst = lh_get_le32(f + 12);
    h->seq = lh_get_le64(f + 16);
    h->msg_len = lh_get_le64(f + 24);
    h->offset = lh_get_le64(f + 32);
    h->deliver_at_ns = lh_get_le64(f + 40);
    h->payload_len = lh_get_le32(f + 48);
    if (f[4] != LH_FRAME_VERSION)
        return lh_fail(LH_ERR_UNSUPPORTED, "frame from rank %u has version %u, this build speaks version %d", h->src,
                       f[4], LH_FRAME_VERSION);
    if (h->kind < 1 || h->kind > LH_FRAME_KIND_MAX)
        return lh_fail(LH_ERR_FORMAT, "frame from rank %u has unknown kind %u", h->src, h->kind);
    if (h->flags & ~LH_FRAME_FLAG_SEALED)
        return lh_fail(LH_ERR_FORMAT, "frame from rank %u has unknown flags 0x%02x", h->src, h->flags);
    int sealed = (h->flags & LH_FRAME_FLAG_SEALED) != 0;
    if (key && !sealed)
        return lh_fail(LH_ERR_AUTH, "unencrypted frame from rank %u on an encrypted link", h->src);
    if (!key && sealed)
        return lh_fail(LH_ERR_AUTH, "encrypted frame from rank %u on a link without a key (is the job secret "
                                    "configured on every rank?)", h->src);
    if (h->payload_len > LH_FRAME_MAX_PAYLOAD)
        return lh_fail(LH_ERR_FORMAT, "frame from rank %u declares %u payload bytes, above the limit", h->src,
                       h->payload_len);
    size_t want = lh_frame_bound(h->payload_len, sealed);
    if (len < want)
        return lh_fail(LH_ERR_TRUNCATED, "truncated frame from rank %u: declares %u payload bytes (%zu on the "
                                         "wire), received %zu", h->src, h->payload_len, want, len);
    if (len > want)
        return lh_fail(LH_ERR_FORMAT, "frame from rank %u has %zu trailing bytes after its declared %u-byte "
                                      "payload", h->src, len - want, h->payload_len);
    if (h->payload_len > cap)
        return lh_fail(LH_ERR_CAPACITY, "frame from rank %u carries %u bytes, receive buffer holds %zu", h->src,
                       h->payload_len, cap);
    if (h->payload_len && !payload) return lh_fail(LH_ERR_INVALID_ARG, "frame open: NULL payload buffer");
    const uint8_t *body = f + LH_FRAME_HEADER_BYTES;
    if (sealed) {
        if (!sodium_ready()) return lh_fail(LH_ERR_INTERNAL, "frame open: libsodium failed to initialise");
        uint8_t nonce[12];
        make_nonce(nonce, h->seq, h->channel);
        if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(payload, NULL, body, h->payload_len,
                                                               body + h->payload_len, f, LH_FRAME_HEADER_BYTES,
                                                               nonce, key) != 0)
            return lh_fail(LH_ERR_AUTH, "frame from rank %u (seq %llu) failed authentication: tampered or "
                                        "wrong key", h->src, (unsigned long long)h->seq);
    } else {
        if (lh_crc32c(0, body, h->payload_len) != lh_get_le32(body + h->payload_len))
            return lh_fail(LH_ERR_CORRUPT, "corrupt frame from rank %u (seq %llu): payload checksum mismatch",
                           h->src, (unsigned long long)h->seq);
        if (h->payload_len) memcpy(payload, body, h->payload_len);
    }
    return LH_OK;
}

lh_status lh_frame_check(const lh_frame_header *h, const lh_frame_expect *w)
{
    if (h->src != w->src || h->dst != w->dst)
        return lh_fail(LH_ERR_COMM, "unexpected frame: expected %u->%u, got a frame addressed %u->%u", w->src, w->dst,
                       h->src, h->dst);
    if (h->kind != w->kind || h->channel != w->channel)
        return lh_fail(LH_ERR_COMM, "unexpected frame from rank %u: expected a %s frame on channel %u, got %s on "
                                    "channel %u", h->src, lh_frame_kind_name(w->kind), w->channel,
                       lh_frame_kind_name(h->kind), h->channel);
    if (h->seq < w->seq)
        return lh_fail(LH_ERR_COMM, "replayed frame from rank %u on channel %u: seq %llu, already received up to "
                                    "%llu", h->src, h->channel, (unsigned long long)h->seq,
                       (unsigned long long)w->seq - 1);
    if (h->seq > w->seq)
        return lh_fail(LH_ERR_COMM, "out-of-order frame from rank %u on channel %u: seq %llu, expected %llu "
                                    "(frames lost or reordered)", h->src, h->channel, (unsigned long long)h->seq,
                       (unsigned long long)w->seq);
    if (h->msg_len != w->msg_len)
        return lh_fail(LH_ERR_MISMATCH, "message size mismatch with rank %u: it sent %llu bytes, this rank expects "
                                        "%llu", h->src, (unsigned long long)h->msg_len,
                       (unsigned long long)w->msg_len);
    if (h->offset != w->offset || h->payload_len != w->payload_len)
        return lh_fail(LH_ERR_MISMATCH, "frame from rank %u covers bytes [%llu, +%u), expected [%llu, +%u) "
                                        "(different max frame sizes?)", h->src, (unsigned long long)h->offset,
                       h->payload_len, (unsigned long long)w->offset, w->payload_len);
    return LH_OK;
}

lh_status lh_frame_derive_link_key(const uint8_t secret[LH_KEY_BYTES], const uint8_t salt[LH_SESSION_SALT_BYTES],
                                   uint64_t comm_id, uint32_t src, uint32_t dst, uint8_t out[LH_KEY_BYTES])
{
    if (!secret || !salt || !out) return lh_fail(LH_ERR_INVALID_ARG, "derive link key: NULL argument");
    if (!sodium_ready()) return lh_fail(LH_ERR_INTERNAL, "derive link key: libsodium failed to initialise");
    uint8_t msg[16 + LH_SESSION_SALT_BYTES + 8];
    memcpy(msg, "longhaul-session", 16);
    memcpy(msg + 16, salt, LH_SESSION_SALT_BYTES);
    lh_put_le64(msg + 16 + LH_SESSION_SALT_BYTES, comm_id);
    uint8_t session[crypto_kdf_KEYBYTES];
    crypto_generichash(session, sizeof session, msg, sizeof msg, secret, LH_KEY_BYTES);
    int rc = crypto_kdf_derive_from_key(out, LH_KEY_BYTES, ((uint64_t)src << 32) | dst, "lhlink01", session);
    sodium_memzero(session, sizeof session);
    if (rc != 0) return lh_fail(LH_ERR_INTERNAL, "derive link key: crypto_kdf failed");
    return LH_OK;
}

static int hex_value(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

lh_status lh_key_parse(const char *name, const void *data, size_t len, uint8_t out[LH_KEY_BYTES])
{
    const uint8_t *d = data;
    if (len == LH_KEY_BYTES) {
        memcpy(out, d, LH_KEY_BYTES);
        return LH_OK;
    }
    size_t a = 0, b = len;
    while (a < b && isspace(d[a])) a++;
    while (b > a && isspace(d[b - 1])) b--;
    if (b - a != 2 * LH_KEY_BYTES)
        return lh_fail(LH_ERR_FORMAT, "%s: a key file holds 32 raw bytes or 64 hex digits, this one has %zu bytes",
                       name, len);
    for (size_t i = 0; i < LH_KEY_BYTES; i++) {
        int hi = hex_value(d[a + 2 * i]), lo = hex_value(d[a + 2 * i + 1]);
        if (hi < 0 || lo < 0) return lh_fail(LH_ERR_FORMAT, "%s: non-hex character at offset %zu", name, a + 2 * i);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return LH_OK;
}

lh_status lh_key_load(const char *path, uint8_t out[LH_KEY_BYTES])
{
    struct stat st;
    if (stat(path, &st) != 0) return lh_fail(LH_ERR_IO, "key file %s: %s", path, strerror(errno));
    if (st.st_mode & 077)
        return lh_fail(LH_ERR_AUTH, "key file %s is readable by group or others (mode %03o); chmod 600 it", path,
                       (unsigned)(st.st_mode & 0777));
    char *data = NULL;
    size_t len = 0;
    lh_status s = lh_read_file(path, 4096, &data, &len);
    if (s) return lh_fail_prefix(s, "key file");
    s = lh_key_parse(path, data, len, out);
    sodium_memzero(data, len);
    free(data);
    return s;
}
