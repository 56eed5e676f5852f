/*
 * Fuzz target for the frame parser, the one place comm/ reads bytes an
 * untrusted peer controls.  The first input byte picks the mode: 0 plain,
 * 1 sealed with a fixed key, 2 key-file parsing (lh_key_parse), 3 plain with
 * both CRCs recomputed by the harness, so the fuzzer reaches the checks that
 * come after the checksums (lengths, flags, kinds) instead of stopping at the
 * CRC.  Whatever lh_frame_open accepts must pass through lh_frame_check
 * without harm and re-encode to the same bytes (plain modes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lh_frame.h"
#include "lh_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const uint8_t key[LH_KEY_BYTES] = {0x42};
    int mode = data[0] % 4;
    data++;
    size--;
    uint8_t *fixed = NULL;
    if (mode == 3) { /* recompute the header CRC, and the payload CRC where the declared length fits */
        fixed = malloc(size ? size : 1);
        if (!fixed) return 0;
        if (size) memcpy(fixed, data, size);
        if (size >= LH_FRAME_HEADER_BYTES) {
            uint32_t plen = (uint32_t)fixed[48] | (uint32_t)fixed[49] << 8 | (uint32_t)fixed[50] << 16 |
                            (uint32_t)fixed[51] << 24;
            if ((uint64_t)plen + LH_FRAME_HEADER_BYTES + 4 <= size) {
                uint32_t pc = lh_crc32c(0, fixed + LH_FRAME_HEADER_BYTES, plen);
                for (int i = 0; i < 4; i++) fixed[LH_FRAME_HEADER_BYTES + plen + i] = (uint8_t)(pc >> (8 * i));
            }
            uint32_t hc = lh_crc32c(0, fixed, 52);
            for (int i = 0; i < 4; i++) fixed[52 + i] = (uint8_t)(hc >> (8 * i));
        }
        data = fixed;
        mode = 0;
    }
    if (mode == 2) {
        uint8_t out[LH_KEY_BYTES];
        lh_key_parse("fuzz", data, size, out);
        free(fixed);
        return 0;
    }
    const uint8_t *k = mode == 1 ? key : NULL;
    size_t cap = size;
    uint8_t *payload = malloc(cap ? cap : 1);
    if (!payload) {
        free(fixed);
        return 0;
    }
    lh_frame_header h;
    if (lh_frame_open(data, size, k, &h, payload, cap) == LH_OK) {
        lh_frame_expect want = {.kind = LH_FRAME_DATA, .channel = 0, .src = 0, .dst = 1, .seq = 0,
                                .msg_len = h.payload_len, .offset = 0, .payload_len = h.payload_len};
        lh_frame_check(&h, &want);
        if (!k) {
            uint8_t *again = malloc(size);
            size_t n = 0;
            if (again && lh_frame_seal(&h, payload, NULL, again, size, &n) == LH_OK &&
                (n != size || memcmp(again, data, size) != 0))
                abort(); /* a frame that verifies must be the unique encoding of its contents */
            free(again);
        }
    }
    free(payload);
    free(fixed);
    return 0;
}
