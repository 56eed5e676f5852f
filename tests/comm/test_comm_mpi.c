/*
 * Multi-rank tests of the MPI transport (run with 2, 3 and 4 ranks): framed
 * point-to-point and every collective, on sizes that fit one frame and sizes
 * that need many (a 4 KiB frame limit makes "many" cheap), odd lengths, plain
 * and encrypted; sub-communicators; and a man-in-the-middle played by raw MPI
 * calls on the communicator's own MPI handle, which captures, replays,
 * tampers with and truncates frames so the receiver's verdicts can be
 * checked.  Emulated-link timing is checked only in the direction an emulator
 * guarantees (never faster than configured) plus the tolerance on the
 * minimum over several samples.
 */
#include <math.h>
#include <stdlib.h>

#include <mpi.h>

#include "lh_comm.h"
#include "lh_comm_nccl.h"
#include "lh_log.h"
#include "lh_test.h"
#include "lh_time.h"

static int world_rank, world_size;
static const uint8_t secret_a[LH_KEY_BYTES] = {0x11, 0x22, 0x33};
static const uint8_t secret_b[LH_KEY_BYTES] = {0x44, 0x55, 0x66};

static lh_comm *make_comm_algo(const uint8_t *secret, const lh_netem *emu, size_t max_payload,
                               lh_comm_algorithm algo)
{
    lh_comm_options o = {.job_secret = secret, .emulation = emu, .max_frame_payload = max_payload, .algorithm = algo};
    lh_comm *c = NULL;
    lh_status st = lh_comm_create(MPI_COMM_WORLD, &o, &c);
    if (st) fprintf(stderr, "make_comm: %s\n", lh_last_error());
    return c;
}

static lh_comm *make_comm(const uint8_t *secret, const lh_netem *emu, size_t max_payload)
{
    return make_comm_algo(secret, emu, max_payload, LH_COMM_ALGO_AUTO);
}

static uint8_t pattern(int src, size_t i, size_t size)
{
    return (uint8_t)(src * 31 + i * 7 + size * 3 + (i >> 8));
}

static const size_t p2p_sizes[] = {0, 1, 13, 4096, 4097, 50001};
#define N_P2P (sizeof p2p_sizes / sizeof p2p_sizes[0])

static void p2p_ring(const uint8_t *secret)
{
    lh_comm *c = make_comm(secret, NULL, 4096);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    int p = lh_comm_size(c), r = lh_comm_rank(c), right = (r + 1) % p, left = (r - 1 + p) % p;
    uint8_t *send[N_P2P], *recv[N_P2P];
    lh_comm_request *reqs[2 * N_P2P];
    for (size_t k = 0; k < N_P2P; k++) { /* post all receives first, then all sends: they overlap */
        send[k] = malloc(p2p_sizes[k] + 1);
        recv[k] = malloc(p2p_sizes[k] + 1);
        for (size_t i = 0; i < p2p_sizes[k]; i++) send[k][i] = pattern(r, i, p2p_sizes[k]);
        LH_ASSERT_OK(lh_comm_irecv(c, recv[k], p2p_sizes[k], left, (int)k % 3, &reqs[N_P2P + k]));
    }
    for (size_t k = 0; k < N_P2P; k++) LH_ASSERT_OK(lh_comm_isend(c, send[k], p2p_sizes[k], right, (int)k % 3, &reqs[k]));
    LH_ASSERT_OK(lh_comm_waitall(reqs, 2 * N_P2P));
    for (size_t k = 0; k < N_P2P; k++) {
        size_t bad = 0;
        for (size_t i = 0; i < p2p_sizes[k]; i++) bad += recv[k][i] != pattern(left, i, p2p_sizes[k]);
        CU_ASSERT_EQUAL(bad, 0);
        free(send[k]);
        free(recv[k]);
    }
    lh_comm_stats s;
    lh_comm_get_stats(c, &s);
    /* 0..13 bytes: one frame each; 4096: one; 4097: two; 50001: 13. */
    CU_ASSERT_EQUAL(s.frames_sent, 1 + 1 + 1 + 1 + 2 + 13);
    CU_ASSERT_EQUAL(s.frames_received, s.frames_sent);
    CU_ASSERT_EQUAL(s.payload_bytes_sent, 0 + 1 + 13 + 4096 + 4097 + 50001);
    CU_ASSERT_EQUAL(s.wire_bytes_sent, s.payload_bytes_sent + s.frames_sent * lh_frame_bound(0, secret != NULL));
    CU_ASSERT_EQUAL(s.encrypted, secret != NULL);
    CU_ASSERT_EQUAL(s.emulated, 0);
    lh_comm_free(c);
}

static void test_p2p_plain(void)
{
    p2p_ring(NULL);
}

static void test_p2p_encrypted(void)
{
    p2p_ring(secret_a);
}

/* Completion by polling (lh_comm_test) between "compute", on a real and on an emulated network. */
static void poll_ring(const lh_netem *emu)
{
    lh_comm *c = make_comm(secret_a, emu, 4096);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    int p = lh_comm_size(c), r = lh_comm_rank(c), right = (r + 1) % p, left = (r - 1 + p) % p;
    size_t n = 50001;
    uint8_t *out = malloc(n), *in = malloc(n);
    for (size_t i = 0; i < n; i++) out[i] = pattern(r, i, n);
    lh_comm_request *rr, *sr;
    LH_ASSERT_OK(lh_comm_irecv(c, in, n, left, 5, &rr));
    double t_send = lh_now_s(); /* travels in the first 8 bytes: ranks do not start in step */
    memcpy(out, &t_send, sizeof t_send);
    LH_ASSERT_OK(lh_comm_isend(c, out, n, right, 5, &sr));
    int rdone = 0, sdone = 0, polls = 0;
    while (!rdone || !sdone) {
        if (!rdone) {
            LH_ASSERT_OK(lh_comm_test(rr, &rdone));
            if (rdone && emu) { /* never before the emulated latency after the sender handed it over */
                double sent_at;
                memcpy(&sent_at, in, sizeof sent_at);
                CU_ASSERT(lh_now_s() - sent_at >= 0.010);
            }
        }
        if (!sdone) LH_ASSERT_OK(lh_comm_test(sr, &sdone));
        polls++;
    }
    size_t bad = 0;
    for (size_t i = sizeof(double); i < n; i++) bad += in[i] != pattern(left, i, n);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(polls >= 1);
    free(out);
    free(in);
    lh_comm_free(c);
}

static void test_poll_real(void)
{
    poll_ring(NULL);
}

static void test_poll_emulated(void)
{
    lh_netem *emu;
    LH_ASSERT_OK(lh_netem_create_uniform(world_size, 0.010, 1e9, 1.0, &emu));
    poll_ring(emu);
    lh_netem_free(emu);
}

static const size_t coll_sizes[] = {0, 1, 7, 1000, 30011};
#define N_COLL (sizeof coll_sizes / sizeof coll_sizes[0])

static float value(int rank, size_t i)
{
    return (float)((int)((rank + 1) * (i % 97)) - 40); /* small integers: sums are exact in any order */
}

static void collectives(const uint8_t *secret, lh_comm_algorithm algo)
{
    lh_comm *c = make_comm_algo(secret, NULL, 4096, algo);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    int p = lh_comm_size(c), r = lh_comm_rank(c);
    for (size_t k = 0; k < N_COLL; k++) {
        size_t n = coll_sizes[k];
        float *x = malloc((n + 1) * sizeof(float)), *ref = malloc((n + 1) * sizeof(float));
        float *blk = malloc((n + 1) * sizeof(float));
        for (size_t i = 0; i < n; i++) x[i] = value(r, i);
        MPI_Allreduce(x, ref, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        /* reduce-scatter: my block of the sum */
        LH_ASSERT_OK(lh_comm_reduce_scatter_f32(c, x, blk, n));
        size_t off, cnt;
        lh_comm_block_range(n, p, r, &off, &cnt);
        CU_ASSERT_EQUAL(memcmp(blk, ref + off, cnt * sizeof(float)), 0);
        /* allreduce in place */
        LH_ASSERT_OK(lh_comm_allreduce_f32(c, x, n));
        CU_ASSERT_EQUAL(memcmp(x, ref, n * sizeof(float)), 0);
        free(x);
        free(ref);
        free(blk);
        /* all-gather of an odd number of bytes per rank */
        size_t each = n + 3;
        uint8_t *mine = malloc(each), *all = malloc(each * p);
        for (size_t i = 0; i < each; i++) mine[i] = pattern(r, i, each);
        LH_ASSERT_OK(lh_comm_allgather(c, mine, each, all));
        size_t bad = 0;
        for (int q = 0; q < p; q++)
            for (size_t i = 0; i < each; i++) bad += all[q * each + i] != pattern(q, i, each);
        CU_ASSERT_EQUAL(bad, 0);
        /* broadcast from every root */
        for (int root = 0; root < p; root++) {
            for (size_t i = 0; i < each; i++) mine[i] = r == root ? pattern(root, i, each) : 0;
            LH_ASSERT_OK(lh_comm_bcast(c, mine, each, root));
            bad = 0;
            for (size_t i = 0; i < each; i++) bad += mine[i] != pattern(root, i, each);
            CU_ASSERT_EQUAL(bad, 0);
        }
        free(mine);
        free(all);
    }
    LH_ASSERT_OK(lh_comm_barrier(c));
    LH_ASSERT_FAILS_WITH(lh_comm_bcast(c, NULL, 0, p), LH_ERR_INVALID_ARG, "root");
    lh_comm_free(c);
}

static void test_collectives_ring(void)
{
    collectives(NULL, LH_COMM_ALGO_RING);
}

static void test_collectives_direct(void)
{
    collectives(NULL, LH_COMM_ALGO_DIRECT);
}

static void test_collectives_encrypted(void)
{
    collectives(secret_a, LH_COMM_ALGO_AUTO);
}

/* Sub-communicators as a 2-D grid: "stages" (rank / 2) and "replicas" (rank % 2). */
static void test_split_groups(void)
{
    lh_comm *c = make_comm(secret_a, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    int r = lh_comm_rank(c), p = lh_comm_size(c);
    lh_comm *dp = NULL, *pipe = NULL, *none = (lh_comm *)1;
    LH_ASSERT_OK(lh_comm_split(c, r % 2, r, &dp));
    LH_ASSERT_OK(lh_comm_split(c, r / 2, r, &pipe));
    LH_ASSERT_OK(lh_comm_split(c, r == 0 ? 0 : -1, 0, &none));
    CU_ASSERT_PTR_NOT_NULL_FATAL(dp);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pipe);
    CU_ASSERT_EQUAL(none != NULL, r == 0);
    int expect_dp = (p + 1 - r % 2) / 2;
    CU_ASSERT_EQUAL(lh_comm_size(dp), expect_dp);
    float v[5];
    for (int i = 0; i < 5; i++) v[i] = (float)(r + i);
    LH_ASSERT_OK(lh_comm_allreduce_f32(dp, v, 5));
    float want = 0;
    for (int q = r % 2; q < p; q += 2) want += (float)q;
    CU_ASSERT_EQUAL(v[0], want);
    CU_ASSERT_EQUAL(v[4], want + 4 * expect_dp);
    /* pipeline neighbours inside the replica */
    int pr = lh_comm_rank(pipe), ps = lh_comm_size(pipe);
    if (ps == 2) {
        int x = r * 100, y = -1;
        lh_comm_request *reqs[2];
        LH_ASSERT_OK(lh_comm_irecv(pipe, &y, sizeof y, 1 - pr, 0, &reqs[1]));
        LH_ASSERT_OK(lh_comm_isend(pipe, &x, sizeof x, 1 - pr, 0, &reqs[0]));
        LH_ASSERT_OK(lh_comm_waitall(reqs, 2));
        CU_ASSERT_EQUAL(y, (r ^ 1) * 100);
    }
    LH_ASSERT_OK(lh_comm_barrier(pipe));
    if (none) lh_comm_free(none);
    lh_comm_free(dp);
    lh_comm_free(pipe);
    lh_comm_free(c);
}

static void test_options_must_agree(void)
{
    lh_comm_options o = {.job_secret = world_rank == 0 ? secret_a : NULL};
    lh_comm *c = NULL;
    LH_ASSERT_FAILS_WITH(lh_comm_create(MPI_COMM_WORLD, &o, &c), LH_ERR_MISMATCH, "some ranks have a job secret");
    CU_ASSERT_PTR_NULL(c);
    o.job_secret = NULL;
    o.max_frame_payload = world_rank == 0 ? 1000 : 2000;
    LH_ASSERT_FAILS_WITH(lh_comm_create(MPI_COMM_WORLD, &o, &c), LH_ERR_MISMATCH, "max frame payload");
    o.max_frame_payload = 0;
    o.algorithm = world_rank == 0 ? LH_COMM_ALGO_RING : LH_COMM_ALGO_DIRECT;
    LH_ASSERT_FAILS_WITH(lh_comm_create(MPI_COMM_WORLD, &o, &c), LH_ERR_MISMATCH, "collective algorithm");
}

/* ---- man in the middle: rank 0 is the sender (and the attacker), rank 1 the victim ---- */

#define MITM_TAG 100
#define MITM_CH 2

typedef enum { ATTACK_REPLAY, ATTACK_TAMPER, ATTACK_TRUNCATE } attack;

/* Rank 0 sends one genuine 100-byte message, rank 1 captures its frame raw and returns it; rank 0 then
 * injects `attack` into the stream; rank 1 reads with lh_comm_recv. Returns rank 1's second status. */
static void mitm(const uint8_t *secret, attack kind)
{
    lh_comm *c = make_comm(secret, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    MPI_Comm m = lh_comm_mpi(c);
    uint8_t msg[100], got[100], frame[512];
    for (int i = 0; i < 100; i++) msg[i] = (uint8_t)i;
    int n = 0;
    if (world_rank == 0) {
        LH_ASSERT_OK(lh_comm_send(c, msg, sizeof msg, 1, MITM_CH));
        MPI_Status s;
        MPI_Recv(frame, sizeof frame, MPI_BYTE, 1, MITM_TAG, m, &s);
        MPI_Get_count(&s, MPI_BYTE, &n);
        MPI_Send(frame, n, MPI_BYTE, 1, MITM_CH, m); /* the genuine frame, forwarded */
        if (kind == ATTACK_REPLAY) MPI_Send(frame, n, MPI_BYTE, 1, MITM_CH, m);
        if (kind == ATTACK_TAMPER) {
            frame[LH_FRAME_HEADER_BYTES + 10] ^= 0x04;
            MPI_Send(frame, n, MPI_BYTE, 1, MITM_CH, m);
        }
        if (kind == ATTACK_TRUNCATE) MPI_Send(frame, n - 5, MPI_BYTE, 1, MITM_CH, m);
    } else if (world_rank == 1) {
        MPI_Status s;
        MPI_Recv(frame, sizeof frame, MPI_BYTE, 0, MITM_CH, m, &s); /* the wiretap */
        MPI_Get_count(&s, MPI_BYTE, &n);
        MPI_Send(frame, n, MPI_BYTE, 0, MITM_TAG, m);
        LH_ASSERT_OK(lh_comm_recv(c, got, sizeof got, 0, MITM_CH));
        CU_ASSERT_EQUAL(memcmp(got, msg, sizeof msg), 0);
        lh_status st = lh_comm_recv(c, got, sizeof got, 0, MITM_CH);
        if (kind == ATTACK_REPLAY)
            LH_ASSERT_FAILS_WITH(st, LH_ERR_COMM, "replayed frame from rank 0 on channel 2: seq 0");
        if (kind == ATTACK_TAMPER && secret) LH_ASSERT_FAILS_WITH(st, LH_ERR_AUTH, "failed authentication");
        if (kind == ATTACK_TAMPER && !secret) LH_ASSERT_FAILS_WITH(st, LH_ERR_CORRUPT, "payload checksum mismatch");
        if (kind == ATTACK_TRUNCATE) LH_ASSERT_FAILS_WITH(st, LH_ERR_TRUNCATED, "truncated frame from rank 0");
        CU_ASSERT_PTR_NOT_NULL(strstr(lh_last_error(), "recv from rank 0 on channel 2"));
        /* The communicator is now out of step and says so. */
        LH_ASSERT_FAILS_WITH(lh_comm_send(c, msg, 1, 0, 0), LH_ERR_COMM, "unusable after an earlier error");
    }
    lh_comm_free(c);
}

static void test_replay_plain(void) { mitm(NULL, ATTACK_REPLAY); }
static void test_replay_encrypted(void) { mitm(secret_a, ATTACK_REPLAY); }
static void test_tamper_plain(void) { mitm(NULL, ATTACK_TAMPER); }
static void test_tamper_encrypted(void) { mitm(secret_a, ATTACK_TAMPER); }
static void test_truncate_plain(void) { mitm(NULL, ATTACK_TRUNCATE); }
static void test_truncate_encrypted(void) { mitm(secret_a, ATTACK_TRUNCATE); }

static void test_wrong_key(void)
{
    lh_comm *c = make_comm(world_rank == 1 ? secret_b : secret_a, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    uint8_t buf[64] = {1};
    if (world_rank == 0) LH_ASSERT_OK(lh_comm_send(c, buf, sizeof buf, 1, 0));
    if (world_rank == 1)
        LH_ASSERT_FAILS_WITH(lh_comm_recv(c, buf, sizeof buf, 0, 0), LH_ERR_AUTH,
                             "frame from rank 0 (seq 0) failed authentication: tampered or wrong key");
    lh_comm_free(c);
}

/* Forged frames that verify but are not what the receiver expects, and size disagreements. */
static void test_unexpected_and_mismatched(void)
{
    lh_comm *c = make_comm(NULL, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    uint8_t buf[200] = {0}, frame[512];
    if (world_rank == 0) {
        lh_frame_header h = {.kind = LH_FRAME_DATA, .channel = 1, .src = 0, .dst = 3, .seq = 0, .msg_len = 16,
                             .payload_len = 16};
        size_t n;
        LH_ASSERT_OK(lh_frame_seal(&h, buf, NULL, frame, sizeof frame, &n));
        MPI_Send(frame, (int)n, MPI_BYTE, 1, 1, lh_comm_mpi(c));
    } else if (world_rank == 1) {
        LH_ASSERT_FAILS_WITH(lh_comm_recv(c, buf, 16, 0, 1), LH_ERR_COMM, "unexpected frame: expected 0->1, got a "
                                                                          "frame addressed 0->3");
    }
    lh_comm_free(c);

    c = make_comm(NULL, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    if (world_rank == 0) LH_ASSERT_OK(lh_comm_send(c, buf, 200, 1, 0));
    if (world_rank == 1)
        LH_ASSERT_FAILS_WITH(lh_comm_recv(c, buf, 100, 0, 0), LH_ERR_MISMATCH, "rank 0 sent a frame longer");
    lh_comm_free(c);

    c = make_comm(NULL, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    if (world_rank == 0) LH_ASSERT_OK(lh_comm_send(c, buf, 50, 1, 0));
    if (world_rank == 1)
        LH_ASSERT_FAILS_WITH(lh_comm_recv(c, buf, 100, 0, 0), LH_ERR_MISMATCH, "it sent 50 bytes, this rank expects 100");
    lh_comm_free(c);
}

/* ---- emulated links ---- */

#define EMU_LATENCY 0.020
#define EMU_BANDWIDTH 50e6
#define EMU_MSG 125000 /* 20 ms at 50 Mbit/s: long enough that a late wake-up of a few ms stays under 10% */

static void test_emulated_link(void)
{
    lh_netem *emu;
    LH_ASSERT_OK(lh_netem_create_uniform(world_size, EMU_LATENCY, EMU_BANDWIDTH, 1.0, &emu));
    lh_comm *c = make_comm(NULL, emu, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    lh_comm_stats s;
    lh_comm_get_stats(c, &s);
    CU_ASSERT_EQUAL(s.emulated, 1);
    size_t wire = lh_frame_bound(EMU_MSG, 0);
    double tx = wire * 8.0 / EMU_BANDWIDTH;
    /* Latency: one small message carrying the sender's clock (processes share CLOCK_MONOTONIC). */
    double best_lat = 1e9, best_bw = 0;
    for (int rep = 0; rep < 7; rep++) {
        double t0 = 0;
        MPI_Barrier(MPI_COMM_WORLD);
        if (world_rank == 0) {
            t0 = lh_now_s();
            LH_ASSERT_OK(lh_comm_send(c, &t0, sizeof t0, 1, 0));
        } else if (world_rank == 1) {
            LH_ASSERT_OK(lh_comm_recv(c, &t0, sizeof t0, 0, 0));
            double one_way = lh_now_s() - t0;
            CU_ASSERT(one_way >= EMU_LATENCY); /* an emulator can only slow things down */
            if (one_way < best_lat) best_lat = one_way;
        }
    }
    /* Bandwidth: 8 back-to-back messages; the last arrives after 8 serialisations + latency. */
    uint8_t *buf = calloc(8, EMU_MSG);
    for (int rep = 0; rep < 3; rep++) {
        MPI_Barrier(MPI_COMM_WORLD);
        if (world_rank == 0) {
            double t0 = lh_now_s();
            memcpy(buf, &t0, sizeof t0);
            lh_comm_request *reqs[8];
            for (int k = 0; k < 8; k++) LH_ASSERT_OK(lh_comm_isend(c, buf + (size_t)k * EMU_MSG, EMU_MSG, 1, 1, &reqs[k]));
            LH_ASSERT_OK(lh_comm_waitall(reqs, 8));
            CU_ASSERT(lh_now_s() - t0 >= 8 * tx); /* pacing: the sender is held until its bits left */
        } else if (world_rank == 1) {
            lh_comm_request *reqs[8];
            for (int k = 0; k < 8; k++) LH_ASSERT_OK(lh_comm_irecv(c, buf + (size_t)k * EMU_MSG, EMU_MSG, 0, 1, &reqs[k]));
            LH_ASSERT_OK(lh_comm_waitall(reqs, 8));
            double t0;
            memcpy(&t0, buf, sizeof t0);
            double elapsed = lh_now_s() - t0;
            CU_ASSERT(elapsed >= 8 * tx + EMU_LATENCY);
            double bw = 8.0 * wire * 8 / (elapsed - EMU_LATENCY);
            if (bw > best_bw) best_bw = bw;
        }
    }
    free(buf);
    if (world_rank == 1) {
        LH_INFO("emulated link: configured %.1f ms / %.1f Mbit/s, measured %.2f ms / %.2f Mbit/s (best of samples)",
                EMU_LATENCY * 1e3, EMU_BANDWIDTH / 1e6, best_lat * 1e3, best_bw / 1e6);
        CU_ASSERT(best_lat <= EMU_LATENCY * 1.2);
        CU_ASSERT(best_bw >= EMU_BANDWIDTH * 0.9 && best_bw <= EMU_BANDWIDTH * 1.0001);
        lh_comm_get_stats(c, &s);
        CU_ASSERT(s.emulation_wait_s > 0);
    }
    lh_comm_free(c);
    lh_netem_free(emu);
}

static void test_emulation_must_agree(void)
{
    lh_netem *emu;
    LH_ASSERT_OK(lh_netem_create_uniform(world_size, 0.001, 1e9, 1.0, &emu));
    lh_comm_options o = {.emulation = world_rank == 0 ? emu : NULL};
    lh_comm *c = NULL;
    LH_ASSERT_FAILS_WITH(lh_comm_create(MPI_COMM_WORLD, &o, &c), LH_ERR_MISMATCH, "disagree on link emulation");
    lh_netem_free(emu);
    LH_ASSERT_OK(lh_netem_create_uniform(world_size + 1, 0.001, 1e9, 1.0, &emu));
    o.emulation = emu;
    LH_ASSERT_FAILS_WITH(lh_comm_create(MPI_COMM_WORLD, &o, &c), LH_ERR_INVALID_ARG, "emulated network has");
    lh_netem_free(emu);
}

/* The NCCL backend cannot run here (no GPU); a build without it must say so rather than pretend. */
static void test_nccl_reports_availability(void)
{
    lh_comm *c = make_comm(NULL, NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    lh_nccl_comm *n = (lh_nccl_comm *)1;
    lh_status st = lh_nccl_comm_create(c, 0, &n);
    if (!lh_nccl_available()) {
        LH_ASSERT_FAILS_WITH(st, LH_ERR_UNSUPPORTED, "this build has no CUDA");
        CU_ASSERT_PTR_NULL(n);
    } else if (st == LH_OK) { /* a GPU is present: a barrier must work */
        LH_ASSERT_OK(lh_nccl_barrier(n));
        lh_nccl_comm_free(n);
    } else {
        CU_ASSERT_EQUAL(st, LH_ERR_UNSUPPORTED); /* compiled in, but no usable device */
    }
    lh_comm_free(c);
}

static CU_TestInfo transport_tests[] = {
    {"point-to-point ring, one and many frames, plain", test_p2p_plain},
    {"point-to-point ring, one and many frames, encrypted", test_p2p_encrypted},
    {"completion by polling", test_poll_real},
    {"completion by polling, emulated", test_poll_emulated},
    {"collectives match MPI, ring", test_collectives_ring},
    {"collectives match MPI, direct exchange", test_collectives_direct},
    {"collectives match MPI, encrypted", test_collectives_encrypted},
    {"sub-communicators for data-parallel groups and pipelines", test_split_groups},
    {"ranks must agree on options", test_options_must_agree},
    {"NCCL backend reports whether it can run", test_nccl_reports_availability},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo attack_tests[] = {
    {"replayed frame, plain", test_replay_plain},
    {"replayed frame, encrypted", test_replay_encrypted},
    {"tampered frame, plain", test_tamper_plain},
    {"tampered frame, encrypted", test_tamper_encrypted},
    {"truncated frame, plain", test_truncate_plain},
    {"truncated frame, encrypted", test_truncate_encrypted},
    {"wrong key", test_wrong_key},
    {"unexpected and mis-sized frames", test_unexpected_and_mismatched},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo emulation_tests[] = {
    {"emulated link delays and paces", test_emulated_link},
    {"emulation must agree", test_emulation_must_agree},
    CU_TEST_INFO_NULL,
};

static int find_ranks(void)
{
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_size);
    return world_size >= 2 ? 0 : 1;
}

int main(int argc, char **argv)
{
    CU_SuiteInfo suites[] = {
        {"transport", find_ranks, NULL, NULL, NULL, transport_tests},
        {"attacks", find_ranks, NULL, NULL, NULL, attack_tests},
        {"emulation", find_ranks, NULL, NULL, NULL, emulation_tests},
        CU_SUITE_INFO_NULL,
    };
    return lh_test_run_mpi(&argc, &argv, suites);
}
