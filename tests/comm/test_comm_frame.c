/*
 * Single-process tests of the wire format, the link-emulation schedule and key
 * handling: everything in comm/ that is pure arithmetic or bytes, tested
 * exactly (no MPI, no clocks).
 */
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lh_frame.h"
#include "lh_io.h"
#include "lh_netem.h"
#include "lh_test.h"

static const uint8_t key_a[LH_KEY_BYTES] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                            17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t key_b[LH_KEY_BYTES] = {9};

static lh_frame_header sample_header(uint32_t payload_len)
{
    lh_frame_header h = {.kind = LH_FRAME_DATA, .channel = 3, .src = 1, .dst = 2, .seq = 41, .msg_len = 1000,
                         .offset = 200, .deliver_at_ns = 0, .payload_len = payload_len};
    return h;
}

static void roundtrip(const uint8_t *key)
{
    uint8_t payload[300], frame[400], back[300];
    for (int i = 0; i < 300; i++) payload[i] = (uint8_t)(i * 7 + 1);
    for (uint32_t len = 0; len <= 300; len += 37) {
        lh_frame_header h = sample_header(len), g;
        size_t flen;
        LH_ASSERT_OK(lh_frame_seal(&h, payload, key, frame, sizeof frame, &flen));
        CU_ASSERT_EQUAL(flen, lh_frame_bound(len, key != NULL));
        memset(back, 0, sizeof back);
        LH_ASSERT_OK(lh_frame_open(frame, flen, key, &g, back, sizeof back));
        CU_ASSERT_EQUAL(g.seq, 41);
        CU_ASSERT_EQUAL(g.src, 1);
        CU_ASSERT_EQUAL(g.dst, 2);
        CU_ASSERT_EQUAL(g.channel, 3);
        CU_ASSERT_EQUAL(g.kind, LH_FRAME_DATA);
        CU_ASSERT_EQUAL(g.msg_len, 1000);
        CU_ASSERT_EQUAL(g.offset, 200);
        CU_ASSERT_EQUAL(g.payload_len, len);
        CU_ASSERT_EQUAL(g.flags, key ? LH_FRAME_FLAG_SEALED : 0);
        CU_ASSERT_EQUAL(memcmp(back, payload, len), 0);
        if (key && len >= 16) CU_ASSERT_NOT_EQUAL(memcmp(frame + LH_FRAME_HEADER_BYTES, payload, 16), 0);
    }
}

static void test_roundtrip_plain(void)
{
    roundtrip(NULL);
}

static void test_roundtrip_sealed(void)
{
    roundtrip(key_a);
}

static void test_seal_capacity_and_args(void)
{
    uint8_t frame[100], payload[64] = {0};
    lh_frame_header h = sample_header(64);
    size_t flen;
    LH_ASSERT_FAILS_WITH(lh_frame_seal(&h, payload, NULL, frame, sizeof frame, &flen), LH_ERR_CAPACITY, "need 124");
    h.kind = 9;
    LH_ASSERT_FAILS_WITH(lh_frame_seal(&h, payload, NULL, frame, sizeof frame, &flen), LH_ERR_INVALID_ARG,
                         "unknown kind");
}

/* Every corruption of a plain frame is caught with the right status. */
static void test_plain_corruption(void)
{
    uint8_t payload[50], frame[200], back[50];
    memset(payload, 0xab, sizeof payload);
    lh_frame_header h = sample_header(50), g;
    size_t flen;
    LH_ASSERT_OK(lh_frame_seal(&h, payload, NULL, frame, sizeof frame, &flen));
    uint8_t bad[200];
    for (size_t i = 0; i < flen; i++) {
        memcpy(bad, frame, flen);
        bad[i] ^= 0x10;
        lh_status st = lh_frame_open(bad, flen, NULL, &g, back, sizeof back);
        CU_ASSERT_NOT_EQUAL(st, LH_OK);
        if (i < 4) CU_ASSERT_EQUAL(st, LH_ERR_FORMAT);
        if (i >= 4) CU_ASSERT_EQUAL(st, LH_ERR_CORRUPT);
    }
    memcpy(bad, frame, flen);
    bad[60] ^= 1;
    LH_ASSERT_FAILS_WITH(lh_frame_open(bad, flen, NULL, &g, back, sizeof back), LH_ERR_CORRUPT,
                         "corrupt frame from rank 1 (seq 41): payload checksum");
    bad[60] ^= 1;
    bad[20] ^= 1;
    LH_ASSERT_FAILS_WITH(lh_frame_open(bad, flen, NULL, &g, back, sizeof back), LH_ERR_CORRUPT, "header checksum");
    LH_ASSERT_FAILS_WITH(lh_frame_open(frame, 30, NULL, &g, back, sizeof back), LH_ERR_TRUNCATED,
                         "shorter than the 56-byte header");
    LH_ASSERT_FAILS_WITH(lh_frame_open(frame, flen - 1, NULL, &g, back, sizeof back), LH_ERR_TRUNCATED,
                         "truncated frame from rank 1");
    memcpy(bad, frame, flen);
    bad[flen] = 0;
    LH_ASSERT_FAILS_WITH(lh_frame_open(bad, flen + 1, NULL, &g, back, sizeof back), LH_ERR_FORMAT, "trailing bytes");
    LH_ASSERT_FAILS_WITH(lh_frame_open(frame, flen, NULL, &g, back, 10), LH_ERR_CAPACITY, "receive buffer holds 10");
}

static void test_sealed_tamper_and_wrong_key(void)
{
    uint8_t payload[80], frame[200], back[80];
    memset(payload, 0x5a, sizeof payload);
    lh_frame_header h = sample_header(80), g;
    size_t flen;
    LH_ASSERT_OK(lh_frame_seal(&h, payload, key_a, frame, sizeof frame, &flen));
    LH_ASSERT_FAILS_WITH(lh_frame_open(frame, flen, key_b, &g, back, sizeof back), LH_ERR_AUTH,
                         "failed authentication: tampered or wrong key");
    uint8_t bad[200];
    /* Any flipped bit after the magic and header CRC fails; header bits fail the CRC first. */
    for (size_t i = LH_FRAME_HEADER_BYTES; i < flen; i++) {
        memcpy(bad, frame, flen);
        bad[i] ^= 0x01;
        LH_ASSERT_FAILS_WITH(lh_frame_open(bad, flen, key_a, &g, back, sizeof back), LH_ERR_AUTH, "authentication");
    }
    /* An attacker who fixes up the header CRC after changing the sequence number still fails the tag. */
    memcpy(bad, frame, flen);
    bad[16] ^= 0x02;
    uint32_t crc = lh_crc32c(0, bad, 52);
    for (int i = 0; i < 4; i++) bad[52 + i] = (uint8_t)(crc >> (8 * i));
    LH_ASSERT_FAILS_WITH(lh_frame_open(bad, flen, key_a, &g, back, sizeof back), LH_ERR_AUTH, "seq 43");
    /* Downgrade: a plain frame on an encrypted link, and the reverse. */
    size_t plen;
    uint8_t plain[200];
    LH_ASSERT_OK(lh_frame_seal(&h, payload, NULL, plain, sizeof plain, &plen));
    LH_ASSERT_FAILS_WITH(lh_frame_open(plain, plen, key_a, &g, back, sizeof back), LH_ERR_AUTH,
                         "unencrypted frame from rank 1 on an encrypted link");
    LH_ASSERT_FAILS_WITH(lh_frame_open(frame, flen, NULL, &g, back, sizeof back), LH_ERR_AUTH,
                         "link without a key");
    LH_ASSERT_FAILS_WITH(lh_frame_open(frame, flen - 3, key_a, &g, back, sizeof back), LH_ERR_TRUNCATED,
                         "truncated");
}

static void test_check_sequence_and_peer(void)
{
    lh_frame_header h = sample_header(100);
    h.msg_len = 300;
    h.offset = 100;
    lh_frame_expect w = {.kind = LH_FRAME_DATA, .channel = 3, .src = 1, .dst = 2, .seq = 41, .msg_len = 300,
                         .offset = 100, .payload_len = 100};
    LH_ASSERT_OK(lh_frame_check(&h, &w));
    w.seq = 42;
    LH_ASSERT_FAILS_WITH(lh_frame_check(&h, &w), LH_ERR_COMM, "replayed frame from rank 1 on channel 3: seq 41");
    w.seq = 40;
    LH_ASSERT_FAILS_WITH(lh_frame_check(&h, &w), LH_ERR_COMM, "out-of-order frame from rank 1");
    w.seq = 41;
    w.src = 0;
    LH_ASSERT_FAILS_WITH(lh_frame_check(&h, &w), LH_ERR_COMM, "unexpected frame: expected 0->2");
    w.src = 1;
    w.kind = LH_FRAME_COLLECTIVE;
    LH_ASSERT_FAILS_WITH(lh_frame_check(&h, &w), LH_ERR_COMM, "expected a collective frame on channel 3, got data");
    w.kind = LH_FRAME_DATA;
    w.msg_len = 301;
    LH_ASSERT_FAILS_WITH(lh_frame_check(&h, &w), LH_ERR_MISMATCH, "it sent 300 bytes, this rank expects 301");
    w.msg_len = 300;
    w.offset = 0;
    LH_ASSERT_FAILS_WITH(lh_frame_check(&h, &w), LH_ERR_MISMATCH, "covers bytes [100, +100)");
}

static void test_link_keys_distinct(void)
{
    uint8_t salt[LH_SESSION_SALT_BYTES] = {7}, salt2[LH_SESSION_SALT_BYTES] = {8};
    uint8_t k01[32], k10[32], k01b[32], k01_other_comm[32], k01_other_salt[32], k01_other_secret[32];
    LH_ASSERT_OK(lh_frame_derive_link_key(key_a, salt, 1, 0, 1, k01));
    LH_ASSERT_OK(lh_frame_derive_link_key(key_a, salt, 1, 1, 0, k10));
    LH_ASSERT_OK(lh_frame_derive_link_key(key_a, salt, 1, 0, 1, k01b));
    LH_ASSERT_OK(lh_frame_derive_link_key(key_a, salt, 2, 0, 1, k01_other_comm));
    LH_ASSERT_OK(lh_frame_derive_link_key(key_a, salt2, 1, 0, 1, k01_other_salt));
    LH_ASSERT_OK(lh_frame_derive_link_key(key_b, salt, 1, 0, 1, k01_other_secret));
    CU_ASSERT_EQUAL(memcmp(k01, k01b, 32), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(k01, k10, 32), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(k01, k01_other_comm, 32), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(k01, k01_other_salt, 32), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(k01, k01_other_secret, 32), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(k01, key_a, 32), 0);
}

static void test_key_files(void)
{
    uint8_t k[32];
    const char *hex = "  000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F\n";
    LH_ASSERT_OK(lh_key_parse("k", hex, strlen(hex), k));
    for (int i = 0; i < 32; i++) CU_ASSERT_EQUAL(k[i], i);
    LH_ASSERT_OK(lh_key_parse("raw", key_a, 32, k));
    CU_ASSERT_EQUAL(memcmp(k, key_a, 32), 0);
    LH_ASSERT_FAILS_WITH(lh_key_parse("short", "abcd", 4, k), LH_ERR_FORMAT, "short: a key file holds 32 raw bytes");
    char badhex[65];
    memset(badhex, 'a', 64);
    badhex[10] = 'x';
    LH_ASSERT_FAILS_WITH(lh_key_parse("bad", badhex, 64, k), LH_ERR_FORMAT, "non-hex character at offset 10");

    char path[] = "keyfile_test_XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, hex, strlen(hex)), (ssize_t)strlen(hex));
    close(fd);
    chmod(path, 0600);
    LH_ASSERT_OK(lh_key_load(path, k));
    CU_ASSERT_EQUAL(k[31], 31);
    chmod(path, 0644);
    LH_ASSERT_FAILS_WITH(lh_key_load(path, k), LH_ERR_AUTH, "readable by group or others");
    unlink(path);
    LH_ASSERT_FAILS_WITH(lh_key_load(path, k), LH_ERR_IO, "key file");
}

/* The emulated schedule: latency + serialisation, queueing per link, links independent, time scale. */
static void test_netem_schedule_exact(void)
{
    double lat[9] = {0, 0.020, 0.050, 0.020, 0, 0.010, 0.050, 0.010, 0};
    double bw[9] = {1, 50e6, 100e6, 50e6, 1, 8e6, 100e6, 8e6, 1};
    lh_netem *e;
    LH_ASSERT_OK(lh_netem_create(3, lat, bw, 1.0, &e));
    double sent, deliver;
    /* 62500 bytes at 50 Mbit/s = 10 ms on the wire, + 20 ms latency. */
    LH_ASSERT_OK(lh_netem_schedule(e, 0, 1, 100.0, 62500, &sent, &deliver));
    CU_ASSERT_DOUBLE_EQUAL(sent, 100.010, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(deliver, 100.030, 1e-9);
    /* A second message handed over at the same time queues behind the first. */
    LH_ASSERT_OK(lh_netem_schedule(e, 0, 1, 100.0, 62500, &sent, &deliver));
    CU_ASSERT_DOUBLE_EQUAL(sent, 100.020, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(deliver, 100.040, 1e-9);
    /* After the link went idle, no queueing. */
    LH_ASSERT_OK(lh_netem_schedule(e, 0, 1, 200.0, 0, &sent, &deliver));
    CU_ASSERT_DOUBLE_EQUAL(deliver, 200.020, 1e-9);
    /* The reverse direction and other links have their own clocks. */
    LH_ASSERT_OK(lh_netem_schedule(e, 1, 2, 100.0, 1000, &sent, &deliver));
    CU_ASSERT_DOUBLE_EQUAL(sent, 100.001, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(deliver, 100.011, 1e-9);
    LH_ASSERT_OK(lh_netem_schedule(e, 1, 0, 100.0, 62500, &sent, &deliver));
    CU_ASSERT_DOUBLE_EQUAL(deliver, 100.030, 1e-9);
    /* Effective bandwidth of a long stream equals the configured one exactly. */
    lh_netem_reset(e);
    double first_sent = 0;
    for (int i = 0; i < 100; i++) {
        LH_ASSERT_OK(lh_netem_schedule(e, 2, 0, 0.0, 125000, &sent, &deliver));
        if (i == 0) first_sent = sent;
    }
    CU_ASSERT_DOUBLE_EQUAL(sent, 1.0, 1e-9); /* 100 x 1 Mbit at 100 Mbit/s */
    CU_ASSERT_DOUBLE_EQUAL(first_sent, 0.01, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(deliver, 1.05, 1e-9);
    lh_netem_free(e);
    /* Time scale stretches latency and transfer alike. */
    LH_ASSERT_OK(lh_netem_create_uniform(2, 0.050, 100e6, 1000.0, &e));
    LH_ASSERT_OK(lh_netem_schedule(e, 0, 1, 0.0, 1250, &sent, &deliver));
    CU_ASSERT_DOUBLE_EQUAL(sent, 0.1, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(deliver, 50.1, 1e-9);
    char line[256];
    lh_netem_describe(e, line, sizeof line);
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "EMULATED"));
    lh_netem_free(e);
}

static void test_netem_rejects_bad_links(void)
{
    double lat[4] = {0, 0.01, -1, 0}, bw[4] = {1, 1e6, 1e6, 1};
    lh_netem *e;
    LH_ASSERT_FAILS_WITH(lh_netem_create(2, lat, bw, 1.0, &e), LH_ERR_INVALID_ARG, "link 1->0 latency -1");
    lat[2] = 0.01;
    bw[1] = 0;
    LH_ASSERT_FAILS_WITH(lh_netem_create(2, lat, bw, 1.0, &e), LH_ERR_INVALID_ARG, "link 0->1 bandwidth 0");
    bw[1] = 1e6;
    LH_ASSERT_FAILS_WITH(lh_netem_create(2, lat, bw, 0.0, &e), LH_ERR_INVALID_ARG, "time scale");
    LH_ASSERT_OK(lh_netem_create(2, lat, bw, 1.0, &e));
    double s, d;
    LH_ASSERT_FAILS_WITH(lh_netem_schedule(e, 0, 2, 0, 1, &s, &d), LH_ERR_INVALID_ARG, "outside 2 ranks");
    lh_netem_free(e);
}

static CU_TestInfo frame_tests[] = {
    {"plain frames round-trip", test_roundtrip_plain},
    {"sealed frames round-trip", test_roundtrip_sealed},
    {"seal checks capacity and kind", test_seal_capacity_and_args},
    {"every corruption of a plain frame is caught", test_plain_corruption},
    {"tampered, downgraded and wrong-key sealed frames are rejected", test_sealed_tamper_and_wrong_key},
    {"sequence, peer, kind and size checks", test_check_sequence_and_peer},
    {"link keys differ per direction, communicator, session and secret", test_link_keys_distinct},
    {"key files: raw, hex, permissions", test_key_files},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo netem_tests[] = {
    {"schedule is exact: latency, serialisation, queueing, scale", test_netem_schedule_exact},
    {"bad link figures are rejected", test_netem_rejects_bad_links},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    CU_SuiteInfo suites[] = {
        {"frame", NULL, NULL, NULL, NULL, frame_tests},
        {"netem", NULL, NULL, NULL, NULL, netem_tests},
        CU_SUITE_INFO_NULL,
    };
    return lh_test_run(suites);
}
