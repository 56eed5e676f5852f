/*
 * AQ-SGD activation codec: one side of one pipeline link.
 *
 * Why it looks like this:
 *   - Both sides must hold bit-identical m(sample).  The sender therefore never
 *     computes its new m from the activation; it quantizes, then applies the
 *     very same lhq_dequant() update the receiver will apply to the very same
 *     codes and scales.  With fp16 or int8 storage both sides re-store m the
 *     same way after each update (int8: per-row absmax scale, round to even).
 *   - The cache is one mapping, anonymous or of a file, holding a header page,
 *     a "seen" bitmap and max_samples fixed-size entries indexed by the dataset
 *     id.  Untouched entries cost nothing (sparse file / lazily zeroed pages),
 *     so datasets larger than RAM work through the page cache.
 *   - Every message carries, per sample, the digest of the sender's entry after
 *     the update.  The receiver computes its own while updating (no extra pass)
 *     and, on a mismatch, invalidates the entry and reports the id; the next
 *     send of that id is full precision and re-seeds both sides.
 *
 * Message (little-endian):
 *   0  "LHAQ" | 4 version 1 | 5 storage | 6 u16 0 | 8 u32 n_samples
 *   12 u32 sample_rows | 16 u32 channels | 20 u32 n_delta | 24 u64 message bytes
 *   32 u32 CRC-32C of bytes 0..31 and the records | 36 u32 0
 *   40 records, 24 bytes each: u64 id, u64 digest of the entry after this
 *      message, u8 mode (0 full, 1 delta), 7 zero bytes
 *   then an LHQW frame of the delta samples (n_delta*sample_rows x channels,
 *   each sample's codes byte-aligned since sample_rows*channels % 8 == 0), then
 *   a raw LHQW frame of the full-precision samples; each only if non-empty.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lh_io.h"
#include "lh_quant_internal.h"
#include "lh_quant_math.h"

#define AQ_MAGIC        "LHAQ"
#define AQ_VERSION      1
#define AQ_HEADER       40
#define AQ_RECORD       24
#define AQ_FILE_MAGIC   "LHAC"
#define AQ_FILE_VERSION 1
#define AQ_PAGE         4096

struct lh_aq_codec {
    lh_aq_config cfg;
    size_t elems;       /* sample_rows * channels */
    size_t entry_bytes; /* elems * 4 or * 2 */
    uint8_t *map;
    size_t map_len;
    int fd;
    uint8_t *seen;
    uint8_t *data;
    lh_quant_ctx *ctx_delta, *ctx_full;
    float *scales; /* growable: scale and inverse scale per group */
    size_t scales_cap;
    double *sumsq; /* growable: per-group sums of squares (quant.clip_rms > 0 only) */
    size_t sumsq_cap;
    uint8_t *mode; /* growable per-call scratch */
    float *work;   /* int8 storage: the delta samples' m expanded to fp32 while they are updated */
    size_t work_cap;
    uint64_t *sorted;
    size_t scratch_cap;
};

static size_t round_up(size_t x, size_t a)
{
    return (x + a - 1) / a * a;
}

static size_t data_offset(uint64_t max_samples)
{
    return AQ_PAGE + round_up((size_t)((max_samples + 7) / 8), AQ_PAGE);
}

static void write_file_header(uint8_t *h, const lh_aq_codec *c)
{
    memset(h, 0, 64);
    memcpy(h, AQ_FILE_MAGIC, 4);
    lh_put_le32(h + 4, AQ_FILE_VERSION);
    lh_put_le32(h + 8, (uint32_t)c->cfg.storage);
    lh_put_le64(h + 16, c->cfg.sample_rows);
    lh_put_le64(h + 24, c->cfg.channels);
    lh_put_le64(h + 32, c->cfg.max_samples);
    lh_put_le64(h + 40, c->entry_bytes);
}

/* fp32 / fp16: one value per element; int8: one byte per element, then one fp32 scale per row */
static size_t entry_bytes_for(const lh_aq_config *cfg)
{
    size_t e = cfg->sample_rows * cfg->channels;
    switch (cfg->storage) {
    case LH_AQ_STORE_FP16:
        return e * 2;
    case LH_AQ_STORE_INT8:
        return e + 4 * cfg->sample_rows;
    default:
        return e * 4;
    }
}

static lh_status check_config(const lh_aq_config *cfg)
{
    if (!cfg) return lh_fail(LH_ERR_INVALID_ARG, "aq config: NULL");
    if (cfg->sample_rows == 0 || cfg->channels == 0)
        return lh_fail(LH_ERR_INVALID_ARG, "aq config: sample_rows and channels must be >= 1");
    size_t e = cfg->sample_rows * cfg->channels;
    if (e / cfg->channels != cfg->sample_rows || e > UINT32_MAX)
        return lh_fail(LH_ERR_INVALID_ARG, "aq config: sample of %zu x %zu values is too large",
                       cfg->sample_rows, cfg->channels);
    if (e % 8)
        return lh_fail(LH_ERR_INVALID_ARG, "aq config: sample_rows * channels must be a multiple of 8");
    if (cfg->max_samples == 0) return lh_fail(LH_ERR_INVALID_ARG, "aq config: max_samples must be >= 1");
    if (cfg->storage != LH_AQ_STORE_FP32 && cfg->storage != LH_AQ_STORE_FP16 &&
        cfg->storage != LH_AQ_STORE_INT8)
        return lh_fail(LH_ERR_INVALID_ARG, "aq config: unknown storage %d", (int)cfg->storage);
    lh_status st = lh_quant_params_check(&cfg->quant);
    if (st) return lh_fail_prefix(st, "aq config");
    if (cfg->quant.bits > 8) return lh_fail(LH_ERR_INVALID_ARG, "aq config: delta bits must be 1..8");
    if (cfg->quant.grouping == LH_GROUP_BLOCK && e % cfg->quant.group_size)
        return lh_fail(LH_ERR_INVALID_ARG, "aq config: group_size %u must divide the %zu values of a sample",
                       cfg->quant.group_size, e);
    size_t eb = entry_bytes_for(cfg);
    if (cfg->max_samples > (SIZE_MAX - data_offset(1) - AQ_PAGE) / eb / 2)
        return lh_fail(LH_ERR_INVALID_ARG, "aq config: %llu samples of %zu bytes overflow the address space",
                       (unsigned long long)cfg->max_samples, eb);
    return LH_OK;
}

lh_status lh_aq_create(const lh_aq_config *cfg, lh_aq_codec **out)
{
    *out = NULL;
    lh_status st = check_config(cfg);
    if (st) return st;
    lh_aq_codec *c = calloc(1, sizeof *c);
    if (!c) return lh_fail(LH_ERR_NOMEM, "aq: out of memory");
    c->cfg = *cfg;
    c->cfg.mmap_path = NULL;
    c->fd = -1;
    c->elems = cfg->sample_rows * cfg->channels;
    c->entry_bytes = entry_bytes_for(cfg);
    size_t doff = data_offset(cfg->max_samples);
    c->map_len = doff + (size_t)cfg->max_samples * c->entry_bytes;
    if ((st = lh_quant_ctx_create(&c->ctx_delta)) || (st = lh_quant_ctx_create(&c->ctx_full))) goto fail;
    if (!cfg->mmap_path) {
        c->map = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                      -1, 0);
        if (c->map == MAP_FAILED) {
            c->map = NULL;
            st = lh_fail(LH_ERR_NOMEM, "aq: cannot reserve %zu bytes of cache: %s", c->map_len,
                         strerror(errno));
            goto fail;
        }
        write_file_header(c->map, c);
    } else {
        c->fd = open(cfg->mmap_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (c->fd < 0) {
            st = lh_fail(LH_ERR_IO, "aq cache %s: open: %s", cfg->mmap_path, strerror(errno));
            goto fail;
        }
        struct stat sb;
        if (fstat(c->fd, &sb) != 0) {
            st = lh_fail(LH_ERR_IO, "aq cache %s: stat: %s", cfg->mmap_path, strerror(errno));
            goto fail;
        }
        int fresh = sb.st_size == 0;
        if (fresh && ftruncate(c->fd, (off_t)c->map_len) != 0) {
            st = lh_fail(LH_ERR_IO, "aq cache %s: cannot size to %zu bytes: %s", cfg->mmap_path, c->map_len,
                         strerror(errno));
            goto fail;
        }
        if (!fresh && (size_t)sb.st_size != c->map_len) {
            st = lh_fail(LH_ERR_MISMATCH, "aq cache %s: %lld bytes, this config needs %zu", cfg->mmap_path,
                         (long long)sb.st_size, c->map_len);
            goto fail;
        }
        c->map = mmap(NULL, c->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
        if (c->map == MAP_FAILED) {
            c->map = NULL;
            st = lh_fail(LH_ERR_IO, "aq cache %s: mmap: %s", cfg->mmap_path, strerror(errno));
            goto fail;
        }
        uint8_t want[64];
        write_file_header(want, c);
        if (fresh) {
            memcpy(c->map, want, 64);
        } else if (memcmp(c->map, want, 64) != 0) {
            st = lh_fail(LH_ERR_MISMATCH,
                         "aq cache %s: header differs from this config (magic, storage, shape)",
                         cfg->mmap_path);
            goto fail;
        }
    }
    c->seen = c->map + AQ_PAGE;
    c->data = c->map + doff;
    *out = c;
    return LH_OK;
fail:
    lh_aq_free(c);
    return st;
}

void lh_aq_free(lh_aq_codec *c)
{
    if (!c) return;
    if (c->map) munmap(c->map, c->map_len);
    if (c->fd >= 0) close(c->fd);
    lh_quant_ctx_free(c->ctx_delta);
    lh_quant_ctx_free(c->ctx_full);
    free(c->scales);
    free(c->sumsq);
    free(c->mode);
    free(c->sorted);
    free(c->work);
    free(c);
}

lh_status lh_aq_sync(lh_aq_codec *c)
{
    if (c->fd < 0) return LH_OK;
    if (msync(c->map, c->map_len, MS_SYNC) != 0)
        return lh_fail(LH_ERR_IO, "aq cache: msync: %s", strerror(errno));
    return LH_OK;
}

size_t lh_aq_entry_bytes(const lh_aq_codec *c)
{
    return c->entry_bytes;
}

static int seen_get(const lh_aq_codec *c, uint64_t id)
{
    return c->seen[id / 8] >> (id % 8) & 1;
}
static void seen_set(lh_aq_codec *c, uint64_t id, int v)
{
    if (v)
        c->seen[id / 8] |= (uint8_t)(1u << (id % 8));
    else
        c->seen[id / 8] &= (uint8_t) ~(1u << (id % 8));
}

static void *entry(const lh_aq_codec *c, uint64_t id)
{
    return c->data + (size_t)id * c->entry_bytes;
}

/*
 * The m of sample `id`, which is delta sample `d` of this call, as the kernels
 * read it: the entry itself for fp32/fp16, its fp32 expansion for int8.
 */
static lhq_ref entry_ref(const lh_aq_codec *c, uint64_t id, size_t d)
{
    lhq_ref r = {NULL, NULL};
    if (c->cfg.storage == LH_AQ_STORE_FP16)
        r.f16 = entry(c, id);
    else if (c->cfg.storage == LH_AQ_STORE_INT8)
        r.f32 = c->work + d * c->elems;
    else
        r.f32 = entry(c, id);
    return r;
}

/*
 * int8 storage: each row (token) of an entry is stored as round-to-nearest-even
 * of v * 127/absmax(row) plus the fp32 scale absmax/127.  Both sides run this
 * same code on the same fp32 values, so the stored bytes agree.
 */
static void i8_store(const lh_aq_codec *c, uint64_t id, const float *v)
{
    const size_t R = c->cfg.sample_rows, C = c->cfg.channels;
    int8_t *q = entry(c, id);
    float *scale = (float *)((uint8_t *)entry(c, id) + c->elems);
    for (size_t r = 0; r < R; r++) {
        const float *vr = v + r * C;
        float amax = 0.0f;
        for (size_t k = 0; k < C; k++)
            amax = fabsf(vr[k]) > amax ? fabsf(vr[k]) : amax;
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        for (size_t k = 0; k < C; k++)
            q[r * C + k] = (int8_t)lrintf(vr[k] * inv); /* |v * inv| <= 127 (+ rounding) */
        memcpy(scale + r, &(float){amax / 127.0f}, 4);
    }
}

/* out = the stored int8 entry as fp32 (q * row scale) */
static void i8_load(const lh_aq_codec *c, uint64_t id, float *out)
{
    const size_t R = c->cfg.sample_rows, C = c->cfg.channels;
    const int8_t *q = entry(c, id);
    const uint8_t *sb = (const uint8_t *)entry(c, id) + c->elems;
    for (size_t r = 0; r < R; r++) {
        float s;
        memcpy(&s, sb + 4 * r, 4);
        for (size_t k = 0; k < C; k++)
            out[r * C + k] = (float)q[r * C + k] * s;
    }
}

/* digest of an entry as stored */
static uint64_t entry_digest(const lh_aq_codec *c, uint64_t id)
{
    lhq_digest dg;
    lhq_digest_init(&dg);
    switch (c->cfg.storage) {
    case LH_AQ_STORE_FP16:
        lhq_digest_f16(&dg, entry(c, id), 0, c->elems);
        break;
    case LH_AQ_STORE_INT8:
        lhq_digest_u8(&dg, entry(c, id), 0, c->entry_bytes);
        break;
    default:
        lhq_digest_f32(&dg, entry(c, id), 0, c->elems);
        break;
    }
    return lhq_digest_final(&dg, c->entry_bytes);
}

static size_t n_scales_for(const lh_aq_codec *c, size_t n_delta)
{
    return lhq_scale_count(c->cfg.quant.grouping, c->cfg.quant.group_size, n_delta * c->cfg.sample_rows,
                           c->cfg.channels);
}

size_t lh_aq_bound(const lh_aq_codec *c, size_t n_samples)
{
    if (!c || n_samples == 0 || n_samples > UINT32_MAX / 4 / c->elems) return 0;
    size_t ns = n_scales_for(c, n_samples);
    return AQ_HEADER + AQ_RECORD * n_samples + 2 * LH_QUANT_HEADER_BYTES + 4 * ns + 4 * n_samples * c->elems;
}

static lh_status grow_scratch(lh_aq_codec *c, size_t n, size_t ns)
{
    if (2 * ns > c->scales_cap) {
        float *p = realloc(c->scales, 2 * ns * sizeof(float));
        if (!p) return lh_fail(LH_ERR_NOMEM, "aq: out of memory for scales");
        c->scales = p;
        c->scales_cap = 2 * ns;
    }
    if (c->cfg.quant.clip_rms > 0.0f && ns > c->sumsq_cap) {
        double *p = realloc(c->sumsq, ns * sizeof(double));
        if (!p) return lh_fail(LH_ERR_NOMEM, "aq: out of memory for sums of squares");
        c->sumsq = p;
        c->sumsq_cap = ns;
    }
    if (n > c->scratch_cap) {
        uint8_t *m = realloc(c->mode, n);
        if (m) c->mode = m;
        uint64_t *s = realloc(c->sorted, n * sizeof *s);
        if (s) c->sorted = s;
        if (!m || !s) return lh_fail(LH_ERR_NOMEM, "aq: out of memory for %zu samples", n);
        c->scratch_cap = n;
    }
    return LH_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ids in range and pairwise distinct (sorted copy in c->sorted). */
static lh_status check_ids(lh_aq_codec *c, const uint64_t *ids, size_t n, const char *who)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= c->cfg.max_samples)
            return lh_fail(who[0] == 'e' ? LH_ERR_INVALID_ARG : LH_ERR_FORMAT,
                           "aq %s: sample id %llu out of range (max_samples %llu)", who,
                           (unsigned long long)ids[i], (unsigned long long)c->cfg.max_samples);
    memcpy(c->sorted, ids, n * sizeof *ids);
    qsort(c->sorted, n, sizeof *ids, cmp_u64);
    for (size_t i = 1; i < n; i++)
        if (c->sorted[i] == c->sorted[i - 1])
            return lh_fail(who[0] == 'e' ? LH_ERR_INVALID_ARG : LH_ERR_FORMAT,
                           "aq %s: sample id %llu appears twice", who, (unsigned long long)c->sorted[i]);
    return LH_OK;
}

/*
 * Scale run for element i of delta sample d (index among delta samples):
 * pointer to the scale (and inverse) and stride, and the run length.
 */
static size_t scale_run(const lh_aq_codec *c, size_t d, size_t i, size_t end, const float *scale,
                        const float **sp, int *stride)
{
    size_t run;
    switch (c->cfg.quant.grouping) {
    case LH_GROUP_CHANNEL: {
        size_t col = i % c->cfg.channels;
        run = c->cfg.channels - col;
        *sp = scale + col;
        *stride = 1;
        break;
    }
    case LH_GROUP_BLOCK: {
        size_t G = c->cfg.quant.group_size, g = i / G;
        run = (g + 1) * G - i;
        *sp = scale + d * (c->elems / G) + g;
        *stride = 0;
        break;
    }
    default:
        run = end - i;
        *sp = scale;
        *stride = 0;
        break;
    }
    return run < end - i ? run : end - i;
}

/* m += deQ(codes) for elements [b0, b0+len) of one entry, act out, digest. */
static void apply_block(lh_aq_codec *c, uint64_t id, size_t d, size_t b0, size_t len, const uint8_t *codes,
                        const float *scale, const lhq_tab *t, float *act, lhq_digest *dg)
{
    lhq_ref m = entry_ref(c, id, d);
    for (size_t i = b0; i < b0 + len;) {
        const float *sp;
        int stride;
        size_t run = scale_run(c, d, i, b0 + len, scale, &sp, &stride);
        if (m.f16)
            lhq_dequant(codes + (i - b0), sp, stride, run, t, LHQ_DQ_UPDATE_F16, NULL, (uint16_t *)m.f16 + i,
                        act ? act + i : NULL);
        else
            lhq_dequant(codes + (i - b0), sp, stride, run, t, LHQ_DQ_UPDATE_F32, (float *)m.f32 + i, NULL,
                        act ? act + i : NULL);
        i += run;
    }
    if (c->cfg.storage == LH_AQ_STORE_INT8) return; /* digested after the rows are stored */
    if (m.f16)
        lhq_digest_f16(dg, m.f16 + b0, b0, len);
    else
        lhq_digest_f32(dg, m.f32 + b0, b0, len);
}

static uint64_t seed_entry(lh_aq_codec *c, uint64_t id, const float *a)
{
    if (c->cfg.storage == LH_AQ_STORE_FP16) {
        uint16_t *m = entry(c, id);
        for (size_t i = 0; i < c->elems; i++)
            m[i] = lh_qm_float_to_half(a[i]);
    } else if (c->cfg.storage == LH_AQ_STORE_INT8) {
        i8_store(c, id, a);
    } else {
        memcpy(entry(c, id), a, c->elems * 4);
    }
    seen_set(c, id, 1);
    return entry_digest(c, id);
}

/* finish a delta sample's update: int8 rows stored (act = what is stored), digest */
static uint64_t finish_delta(lh_aq_codec *c, uint64_t id, size_t d, float *act, const lhq_digest *dg)
{
    if (c->cfg.storage != LH_AQ_STORE_INT8) return lhq_digest_final(dg, c->entry_bytes);
    i8_store(c, id, c->work + d * c->elems);
    if (act) i8_load(c, id, act);
    return entry_digest(c, id);
}

static lh_status grow_work(lh_aq_codec *c, size_t n_delta)
{
    if (c->cfg.storage != LH_AQ_STORE_INT8 || n_delta * c->elems <= c->work_cap) return LH_OK;
    float *w = realloc(c->work, n_delta * c->elems * sizeof(float));
    if (!w) return lh_fail(LH_ERR_NOMEM, "aq: out of memory for %zu int8 cache expansions", n_delta);
    c->work = w;
    c->work_cap = n_delta * c->elems;
    return LH_OK;
}

lh_status lh_aq_encode(lh_aq_codec *c, const float *act, const uint64_t *ids, size_t n, uint64_t step,
                       void *dst_v, size_t dst_cap, size_t *dst_len)
{
    uint8_t *dst = dst_v;
    *dst_len = 0;
    if (!c || !act || !ids || !dst) return lh_fail(LH_ERR_INVALID_ARG, "aq encode: NULL argument");
    if (n == 0 || n > UINT32_MAX) return lh_fail(LH_ERR_INVALID_ARG, "aq encode: %zu samples", n);
    if (n > UINT32_MAX / 4 / c->elems)
        return lh_fail(LH_ERR_INVALID_ARG,
                       "aq encode: %zu samples of %zu values exceed a 4 GiB frame; split the "
                       "micro-batch",
                       n, c->elems);
    size_t need = lh_aq_bound(c, n);
    if (dst_cap < need)
        return lh_fail(LH_ERR_CAPACITY, "aq encode: destination holds %zu bytes, %zu may be needed", dst_cap,
                       need);
    const size_t E = c->elems, C = c->cfg.channels, R = c->cfg.sample_rows;
    const lh_quant_params *q = &c->cfg.quant;
    size_t ns_max = n_scales_for(c, n);
    lh_status st = grow_scratch(c, n, ns_max);
    if (st) return st;
    if ((st = check_ids(c, ids, n, "encode"))) return st;

    size_t n_delta = 0;
    for (size_t s = 0; s < n; s++) {
        c->mode[s] = (uint8_t)seen_get(c, ids[s]);
        n_delta += c->mode[s];
    }
    size_t n_full = n - n_delta;
    /* reject bad full-precision input before any cache entry changes */
    for (size_t s = 0; s < n; s++) {
        float amax;
        if (!c->mode[s] && lhq_absmax(act + s * E, (lhq_ref){NULL, NULL}, E, &amax))
            return lh_fail(LH_ERR_INVALID_ARG, "aq encode: activation of sample %llu has NaN or Inf",
                           (unsigned long long)ids[s]);
    }
    uint8_t *rec = dst + AQ_HEADER;
    size_t off = AQ_HEADER + AQ_RECORD * n;

    if (n_delta) {
        /* scales over the delta samples (with clipping: and the sums of squares of the deltas) */
        size_t ns = n_scales_for(c, n_delta);
        float *scale = c->scales, *inv = c->scales + ns;
        double *ss = q->clip_rms > 0.0f ? c->sumsq : NULL;
        int bad = 0;
        memset(scale, 0, ns * sizeof(float));
        if (ss) memset(ss, 0, ns * sizeof(double));
        if ((st = grow_work(c, n_delta))) return st;
        size_t d = 0;
        for (size_t s = 0; s < n; s++) {
            if (!c->mode[s]) continue;
            const float *a = act + s * E;
            if (c->cfg.storage == LH_AQ_STORE_INT8) i8_load(c, ids[s], c->work + d * E);
            lhq_ref m = entry_ref(c, ids[s], d);
            if (q->grouping == LH_GROUP_CHANNEL) {
                bad |= ss ? lhq_absmax_sumsq_cols(a, m, R, C, scale, ss) : lhq_absmax_cols(a, m, R, C, scale);
            } else if (q->grouping == LH_GROUP_TENSOR) {
                float v;
                double v2 = 0.0;
                bad |= ss ? lhq_absmax_sumsq(a, m, E, &v, &v2) : lhq_absmax(a, m, E, &v);
                if (v > scale[0]) scale[0] = v;
                if (ss) ss[0] += v2; /* samples in order */
            } else {
                size_t G = q->group_size;
                for (size_t g = 0; g < E / G; g++) {
                    lhq_ref mg = m;
                    if (m.f32) mg.f32 += g * G;
                    if (m.f16) mg.f16 += g * G;
                    size_t k = d * (E / G) + g;
                    bad |= ss ? lhq_absmax_sumsq(a + g * G, mg, G, &scale[k], &ss[k])
                              : lhq_absmax(a + g * G, mg, G, &scale[k]);
                }
            }
            d++;
        }
        if (bad) return lh_fail(LH_ERR_INVALID_ARG, "aq encode: activation delta has NaN or Inf");
        if (ss) lhq_clip_scales(scale, ss, ns, q->grouping, q->group_size, n_delta * R, C, q->clip_rms);
        uint8_t *frame = dst + off, *payload = frame + LH_QUANT_HEADER_BYTES;
        size_t sbytes = q->scale_type == LH_SCALE_FP16 ? 2 : 4;
        for (size_t g = 0; g < ns; g++) {
            if ((st = lhq_make_scale(scale[g], q->scale_type, payload + g * sbytes, &scale[g])))
                return lh_fail_prefix(st, "aq encode");
            inv[g] = lh_qm_inv_scale(scale[g]);
        }
        lhq_tab t = lhq_tab_get(q->grid, q->bits);
        t.big_u = q->clip_rms > 0.0f; /* deltas beyond a clipped scale: |u| > 1 */
        uint8_t *packed = payload + ns * sbytes;
        size_t sample_bytes = E * (size_t)q->bits / 8;
        uint8_t codes[LHQ_BLOCK];
        d = 0;
        for (size_t s = 0; s < n; s++) {
            if (!c->mode[s]) continue;
            const float *a = act + s * E;
            uint64_t id = ids[s];
            uint64_t key = lh_qm_key(c->cfg.seed, id, step);
            const uint64_t *kp = q->rounding == LH_ROUND_STOCHASTIC ? &key : NULL;
            lhq_ref m = entry_ref(c, id, d);
            lhq_digest dg;
            lhq_digest_init(&dg);
            for (size_t b0 = 0; b0 < E; b0 += LHQ_BLOCK) {
                size_t len = E - b0 < LHQ_BLOCK ? E - b0 : LHQ_BLOCK;
                for (size_t i = b0; i < b0 + len;) {
                    const float *ip;
                    int stride;
                    size_t run = scale_run(c, d, i, b0 + len, inv, &ip, &stride);
                    lhq_ref mi = m;
                    if (m.f32) mi.f32 += i;
                    if (m.f16) mi.f16 += i;
                    lhq_codes(a + i, mi, ip, stride, run, &t, kp, (uint32_t)i, codes + (i - b0));
                    i += run;
                }
                lh_pack_codes(codes, len, q->bits, packed + d * sample_bytes + b0 * (size_t)q->bits / 8);
                apply_block(c, id, d, b0, len, codes, scale, &t, NULL, &dg);
            }
            lh_put_le64(rec + AQ_RECORD * s + 8, finish_delta(c, id, d, NULL, &dg));
            d++;
        }
        lh_quant_info info;
        memset(&info, 0, sizeof info);
        info.bits = q->bits;
        info.grid = q->grid;
        info.grouping = q->grouping;
        info.group_size = q->grouping == LH_GROUP_BLOCK ? q->group_size : 0;
        info.scale_type = q->scale_type;
        info.stochastic = q->rounding == LH_ROUND_STOCHASTIC;
        info.rows = (uint32_t)(n_delta * R);
        info.cols = (uint32_t)C;
        size_t flen;
        if ((st = lhq_frame_finish(c->ctx_delta, &info, q->zstd_level, frame,
                                   ns * sbytes + n_delta * sample_bytes, &flen)))
            return st;
        off += flen;
    }
    if (n_full) {
        uint8_t *frame = dst + off, *payload = frame + LH_QUANT_HEADER_BYTES;
        size_t f = 0;
        for (size_t s = 0; s < n; s++) {
            if (c->mode[s]) continue;
            const float *a = act + s * E;
            memcpy(payload + f * E * 4, a, E * 4);
            lh_put_le64(rec + AQ_RECORD * s + 8, seed_entry(c, ids[s], a));
            f++;
        }
        lh_quant_info info;
        memset(&info, 0, sizeof info);
        info.bits = LH_QUANT_BITS_RAW;
        info.grouping = LH_GROUP_TENSOR;
        info.rows = (uint32_t)(n_full * R);
        info.cols = (uint32_t)C;
        size_t flen;
        if ((st = lhq_frame_finish(c->ctx_full, &info, q->zstd_level, frame, n_full * E * 4, &flen)))
            return st;
        off += flen;
    }
    for (size_t s = 0; s < n; s++) {
        lh_put_le64(rec + AQ_RECORD * s, ids[s]);
        memset(rec + AQ_RECORD * s + 16, 0, 8);
        rec[AQ_RECORD * s + 16] = c->mode[s];
    }
    memcpy(dst, AQ_MAGIC, 4);
    dst[4] = AQ_VERSION;
    dst[5] = (uint8_t)c->cfg.storage;
    dst[6] = dst[7] = 0;
    lh_put_le32(dst + 8, (uint32_t)n);
    lh_put_le32(dst + 12, (uint32_t)R);
    lh_put_le32(dst + 16, (uint32_t)C);
    lh_put_le32(dst + 20, (uint32_t)n_delta);
    lh_put_le64(dst + 24, off);
    lh_put_le32(dst + 32, lh_crc32c(lh_crc32c(0, dst, 32), rec, AQ_RECORD * n));
    lh_put_le32(dst + 36, 0);
    *dst_len = off;
    return LH_OK;
}

lh_status lh_aq_peek(const void *src, size_t src_len, size_t *n_samples)
{
    const uint8_t *h = src;
    *n_samples = 0;
    if (!src || src_len < AQ_HEADER)
        return lh_fail(LH_ERR_TRUNCATED, "aq message: %zu bytes, shorter than the %d-byte header", src_len,
                       AQ_HEADER);
    if (memcmp(h, AQ_MAGIC, 4) != 0) return lh_fail(LH_ERR_FORMAT, "aq message: bad magic");
    if (h[4] != AQ_VERSION)
        return lh_fail(LH_ERR_UNSUPPORTED, "aq message: version %u, this build reads %d", h[4], AQ_VERSION);
    if (h[6] || h[7] || lh_get_le32(h + 36))
        return lh_fail(LH_ERR_FORMAT, "aq message: reserved bytes not zero");
    uint32_t n = lh_get_le32(h + 8);
    if (n == 0) return lh_fail(LH_ERR_FORMAT, "aq message: no samples");
    if (lh_get_le32(h + 20) > n) return lh_fail(LH_ERR_FORMAT, "aq message: more delta samples than samples");
    uint64_t total = lh_get_le64(h + 24);
    if (total < AQ_HEADER + (uint64_t)AQ_RECORD * n)
        return lh_fail(LH_ERR_FORMAT, "aq message: declared size %llu cannot hold %u records",
                       (unsigned long long)total, n);
    if (src_len < total)
        return lh_fail(LH_ERR_TRUNCATED, "aq message: %zu bytes, the header declares %llu", src_len,
                       (unsigned long long)total);
    if (src_len > total)
        return lh_fail(LH_ERR_FORMAT, "aq message: %llu trailing bytes",
                       (unsigned long long)(src_len - total));
    if (lh_get_le32(h + 32) != lh_crc32c(lh_crc32c(0, h, 32), h + AQ_HEADER, (size_t)AQ_RECORD * n))
        return lh_fail(LH_ERR_CORRUPT, "aq message: header CRC mismatch");
    *n_samples = n;
    return LH_OK;
}

lh_status lh_aq_decode(lh_aq_codec *c, const void *src, size_t src_len, float *act, size_t act_cap_samples,
                       uint64_t *ids_out, size_t *n_samples, uint64_t *bad_ids, size_t *n_bad)
{
    const uint8_t *h = src;
    *n_samples = 0;
    *n_bad = 0;
    if (!c || !act || !ids_out || !bad_ids) return lh_fail(LH_ERR_INVALID_ARG, "aq decode: NULL argument");
    size_t n;
    lh_status st = lh_aq_peek(src, src_len, &n);
    if (st) return st;
    const size_t E = c->elems, C = c->cfg.channels, R = c->cfg.sample_rows;
    if (h[5] != (uint8_t)c->cfg.storage)
        return lh_fail(LH_ERR_MISMATCH, "aq message: sender stores m in format %u, this side in %d", h[5],
                       (int)c->cfg.storage);
    if (lh_get_le32(h + 12) != R || lh_get_le32(h + 16) != C)
        return lh_fail(LH_ERR_MISMATCH, "aq message: samples of %u x %u, this side expects %zu x %zu",
                       lh_get_le32(h + 12), lh_get_le32(h + 16), R, C);
    if (n > act_cap_samples)
        return lh_fail(LH_ERR_CAPACITY, "aq decode: message has %zu samples, output holds %zu", n,
                       act_cap_samples);
    size_t n_delta = lh_get_le32(h + 20), n_full = n - n_delta;
    const uint8_t *rec = h + AQ_HEADER;
    if ((st = grow_scratch(c, n, 1)) || (st = grow_work(c, n_delta))) return st;
    size_t count_delta = 0;
    for (size_t s = 0; s < n; s++) {
        const uint8_t *r = rec + AQ_RECORD * s;
        ids_out[s] = lh_get_le64(r);
        if (r[16] > 1) return lh_fail(LH_ERR_FORMAT, "aq message: record %zu has mode %u", s, r[16]);
        for (int k = 17; k < 24; k++)
            if (r[k]) return lh_fail(LH_ERR_FORMAT, "aq message: record %zu reserved bytes not zero", s);
        c->mode[s] = r[16];
        count_delta += r[16];
    }
    if (count_delta != n_delta)
        return lh_fail(LH_ERR_FORMAT, "aq message: %zu delta records, header says %zu", count_delta, n_delta);
    if ((st = check_ids(c, ids_out, n, "message"))) return st;

    /* open (validate, CRC, decompress) both frames before touching any cache entry */
    size_t off = AQ_HEADER + AQ_RECORD * n;
    lhq_frame fd, ff;
    memset(&fd, 0, sizeof fd);
    memset(&ff, 0, sizeof ff);
    if (n_delta) {
        if ((st = lhq_frame_open(c->ctx_delta, h + off, src_len - off, &fd)))
            return lh_fail_prefix(st, "aq message: delta frame");
        if (fd.info.bits > 8 || fd.info.rows != n_delta * R || fd.info.cols != C ||
            (fd.info.grouping == LH_GROUP_BLOCK && E % fd.info.group_size))
            return lh_fail(LH_ERR_FORMAT,
                           "aq message: delta frame of %d bits, %u x %u, does not fit %zu samples",
                           fd.info.bits, fd.info.rows, fd.info.cols, n_delta);
        off += fd.info.frame_bytes;
    }
    if (n_full) {
        if ((st = lhq_frame_open(c->ctx_full, h + off, src_len - off, &ff)))
            return lh_fail_prefix(st, "aq message: full-precision frame");
        if (ff.info.bits != LH_QUANT_BITS_RAW || ff.info.rows != n_full * R || ff.info.cols != C)
            return lh_fail(LH_ERR_FORMAT, "aq message: full-precision frame does not hold %zu raw samples",
                           n_full);
        off += ff.info.frame_bytes;
    }
    if (off != src_len)
        return lh_fail(LH_ERR_FORMAT, "aq message: %zu bytes after the frames", src_len - off);

    /* the frame's own grouping drives the scale lookup; keep the codec's config for encoding */
    lh_aq_config saved = c->cfg;
    if (n_delta) {
        c->cfg.quant.grouping = fd.info.grouping;
        c->cfg.quant.group_size = fd.info.group_size;
    }
    lhq_tab t = n_delta ? lhq_tab_get(fd.info.grid, fd.info.bits) : lhq_tab_get(LH_GRID_NORMAL, 1);
    size_t sample_bytes = n_delta ? E * (size_t)fd.info.bits / 8 : 0;
    uint8_t codes[LHQ_BLOCK];
    size_t d = 0, f = 0;
    for (size_t s = 0; s < n; s++) {
        uint64_t id = ids_out[s];
        float *a = act + s * E;
        uint64_t want = lh_get_le64(rec + AQ_RECORD * s + 8), got;
        if (c->mode[s]) {
            if (!seen_get(c, id)) {
                d++;
                bad_ids[(*n_bad)++] = id; /* the sender has an entry this side lacks */
                continue;
            }
            if (c->cfg.storage == LH_AQ_STORE_INT8) i8_load(c, id, c->work + d * E);
            lhq_digest dg;
            lhq_digest_init(&dg);
            for (size_t b0 = 0; b0 < E; b0 += LHQ_BLOCK) {
                size_t len = E - b0 < LHQ_BLOCK ? E - b0 : LHQ_BLOCK;
                lh_unpack_codes(fd.codes + d * sample_bytes + b0 * (size_t)fd.info.bits / 8, len,
                                fd.info.bits, codes);
                apply_block(c, id, d, b0, len, codes, fd.scales, &t, a, &dg);
            }
            got = finish_delta(c, id, d, a, &dg);
            d++;
        } else {
            memcpy(a, ff.codes + f * E * 4, E * 4);
            got = seed_entry(c, id, a);
            f++;
        }
        if (got != want) {
            seen_set(c, id, 0);
            bad_ids[(*n_bad)++] = id;
        }
    }
    c->cfg = saved;
    *n_samples = n;
    if (*n_bad)
        return lh_fail(LH_ERR_CORRUPT,
                       "aq decode: cache of %zu sample(s) diverged from the sender (first id %llu); "
                       "invalidated here, resend in full precision",
                       *n_bad, (unsigned long long)bad_ids[0]);
    return LH_OK;
}

lh_status lh_aq_invalidate(lh_aq_codec *c, const uint64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= c->cfg.max_samples)
            return lh_fail(LH_ERR_INVALID_ARG, "aq invalidate: sample id %llu out of range",
                           (unsigned long long)ids[i]);
    for (size_t i = 0; i < n; i++)
        seen_set(c, ids[i], 0);
    return LH_OK;
}

int lh_aq_has(const lh_aq_codec *c, uint64_t id)
{
    if (id >= c->cfg.max_samples) return -1;
    return seen_get(c, id);
}

static lh_status check_entry(const lh_aq_codec *c, uint64_t id, const char *who)
{
    if (id >= c->cfg.max_samples)
        return lh_fail(LH_ERR_INVALID_ARG, "aq %s: sample id %llu out of range", who, (unsigned long long)id);
    if (!seen_get(c, id))
        return lh_fail(LH_ERR_NOT_FOUND, "aq %s: sample %llu has no cache entry", who,
                       (unsigned long long)id);
    return LH_OK;
}

lh_status lh_aq_digest(const lh_aq_codec *c, uint64_t id, uint64_t *digest)
{
    lh_status st = check_entry(c, id, "digest");
    if (st) return st;
    *digest = entry_digest(c, id);
    return LH_OK;
}

lh_status lh_aq_get(const lh_aq_codec *c, uint64_t id, float *out)
{
    lh_status st = check_entry(c, id, "get");
    if (st) return st;
    if (c->cfg.storage == LH_AQ_STORE_FP16) {
        const uint16_t *m = entry(c, id);
        for (size_t i = 0; i < c->elems; i++)
            out[i] = lh_qm_half_to_float(m[i]);
    } else if (c->cfg.storage == LH_AQ_STORE_INT8) {
        i8_load(c, id, out);
    } else {
        memcpy(out, entry(c, id), c->elems * 4);
    }
    return LH_OK;
}

lh_status lh_aq_entry_raw(lh_aq_codec *c, uint64_t id, void **data, size_t *bytes)
{
    lh_status st = check_entry(c, id, "entry");
    if (st) return st;
    *data = entry(c, id);
    *bytes = c->entry_bytes;
    return LH_OK;
}

/* ------------------------------------------------------------------------ */
/*
 * Cache state for checkpoints (layout in docs/formats.md, "AQ-SGD cache
 * state"): the entries of every sample with a cache entry, as stored, so a
 * reloaded codec continues bit for bit.  Only what gives the bytes their
 * meaning must match on load (storage, sample shape, id range); the quantizer
 * parameters and seed do not, since m(sample) is valid whatever quantized it.
 * Loading validates everything, the CRC included, before changing anything.
 */

#define AQ_STATE_MAGIC   "LHAS"
#define AQ_STATE_VERSION 1
#define AQ_STATE_HEADER  48

static const char *storage_name(uint32_t s)
{
    return s == LH_AQ_STORE_FP32   ? "fp32"
           : s == LH_AQ_STORE_FP16 ? "fp16"
           : s == LH_AQ_STORE_INT8 ? "int8"
                                   : "unknown";
}

static size_t seen_bytes(const lh_aq_codec *c)
{
    return (size_t)((c->cfg.max_samples + 7) / 8);
}

static uint64_t seen_count(const lh_aq_codec *c)
{
    uint64_t n = 0;
    size_t nb = seen_bytes(c);
    for (size_t i = 0; i < nb; i++) {
        unsigned b = c->seen[i];
        if (i == nb - 1 && c->cfg.max_samples % 8) b &= (1u << (c->cfg.max_samples % 8)) - 1u;
        n += (uint64_t)__builtin_popcount(b);
    }
    return n;
}

size_t lh_aq_state_bytes(const lh_aq_codec *c)
{
    if (!c) return 0;
    return AQ_STATE_HEADER + (size_t)seen_count(c) * (8 + c->entry_bytes) + 4;
}

lh_status lh_aq_save_state(const lh_aq_codec *c, void *dst_v, size_t dst_cap, size_t *dst_len)
{
    uint8_t *dst = dst_v;
    if (dst_len) *dst_len = 0;
    if (!c || !dst || !dst_len) return lh_fail(LH_ERR_INVALID_ARG, "aq save state: NULL argument");
    uint64_t n = seen_count(c);
    size_t need = AQ_STATE_HEADER + (size_t)n * (8 + c->entry_bytes) + 4;
    if (dst_cap < need)
        return lh_fail(LH_ERR_CAPACITY, "aq save state: destination holds %zu bytes, %zu needed", dst_cap,
                       need);
    memset(dst, 0, AQ_STATE_HEADER);
    memcpy(dst, AQ_STATE_MAGIC, 4);
    lh_put_le32(dst + 4, AQ_STATE_VERSION);
    lh_put_le32(dst + 8, AQ_STATE_HEADER);
    lh_put_le32(dst + 12, (uint32_t)c->cfg.storage);
    lh_put_le64(dst + 16, c->cfg.sample_rows);
    lh_put_le64(dst + 24, c->cfg.channels);
    lh_put_le64(dst + 32, c->cfg.max_samples);
    lh_put_le64(dst + 40, n);
    size_t off = AQ_STATE_HEADER;
    for (uint64_t id = 0; id < c->cfg.max_samples; id++) {
        if (!c->seen[id / 8]) { /* skip empty bytes of the bitmap */
            id |= 7;
            continue;
        }
        if (!seen_get(c, id)) continue;
        lh_put_le64(dst + off, id);
        memcpy(dst + off + 8, entry(c, id), c->entry_bytes);
        off += 8 + c->entry_bytes;
    }
    lh_put_le32(dst + off, lh_crc32c(0, dst, off));
    *dst_len = off + 4;
    return LH_OK;
}

/* Whether a stored entry holds only finite values (fp32 / fp16 values, int8 row scales). */
static int entry_finite(const lh_aq_codec *c, const uint8_t *e)
{
    if (c->cfg.storage == LH_AQ_STORE_FP16) {
        for (size_t i = 0; i < c->elems; i++)
            if ((e[2 * i + 1] & 0x7c) == 0x7c) return 0; /* exponent all ones: Inf or NaN */
        return 1;
    }
    size_t first = c->cfg.storage == LH_AQ_STORE_INT8 ? c->elems : 0;
    size_t count = c->cfg.storage == LH_AQ_STORE_INT8 ? c->cfg.sample_rows : c->elems;
    for (size_t i = 0; i < count; i++) {
        float v;
        memcpy(&v, e + first + 4 * i, 4);
        if (!isfinite(v) || (first && v < 0.0f)) return 0;
    }
    return 1;
}

/* Validate a state for this codec; *n_out: its entry count. */
static lh_status aq_state_check(const lh_aq_codec *c, const uint8_t *s, size_t len, uint64_t *n_out)
{
    if (!s || len < AQ_STATE_HEADER + 4)
        return lh_fail(LH_ERR_TRUNCATED, "aq state: %zu bytes, shorter than the %d-byte minimum", len,
                       AQ_STATE_HEADER + 4);
    if (memcmp(s, AQ_STATE_MAGIC, 4) != 0)
        return lh_fail(LH_ERR_FORMAT, "aq state: bad magic (not an AQ-SGD cache state)");
    if (lh_get_le32(s + 4) != AQ_STATE_VERSION)
        return lh_fail(LH_ERR_UNSUPPORTED, "aq state: version %u, this build reads %d", lh_get_le32(s + 4),
                       AQ_STATE_VERSION);
    if (lh_get_le32(s + 8) != AQ_STATE_HEADER)
        return lh_fail(LH_ERR_FORMAT, "aq state: header of %u bytes, expected %d", lh_get_le32(s + 8),
                       AQ_STATE_HEADER);
    uint32_t storage = lh_get_le32(s + 12);
    if (storage != (uint32_t)c->cfg.storage)
        return lh_fail(LH_ERR_MISMATCH, "aq state: saved from a cache stored as %s (%u), this one is %s",
                       storage_name(storage), storage, storage_name((uint32_t)c->cfg.storage));
    uint64_t rows = lh_get_le64(s + 16), cols = lh_get_le64(s + 24), max = lh_get_le64(s + 32),
             n = lh_get_le64(s + 40);
    if (rows != c->cfg.sample_rows || cols != c->cfg.channels)
        return lh_fail(LH_ERR_MISMATCH, "aq state: samples of %llu x %llu values, this cache holds %zu x %zu",
                       (unsigned long long)rows, (unsigned long long)cols, c->cfg.sample_rows,
                       c->cfg.channels);
    if (max != c->cfg.max_samples)
        return lh_fail(LH_ERR_MISMATCH, "aq state: sample ids 0..%llu, this cache has max_samples %llu",
                       (unsigned long long)(max ? max - 1 : 0), (unsigned long long)c->cfg.max_samples);
    if (n > max)
        return lh_fail(LH_ERR_FORMAT, "aq state: %llu entries for %llu samples", (unsigned long long)n,
                       (unsigned long long)max);
    size_t need = AQ_STATE_HEADER + (size_t)n * (8 + c->entry_bytes) + 4; /* n <= max_samples: no overflow */
    if (len < need)
        return lh_fail(LH_ERR_TRUNCATED, "aq state: %zu bytes, %llu entries of %zu bytes need %zu", len,
                       (unsigned long long)n, c->entry_bytes, need);
    if (len > need) return lh_fail(LH_ERR_FORMAT, "aq state: %zu trailing bytes", len - need);
    uint32_t want = lh_get_le32(s + need - 4), got = lh_crc32c(0, s, need - 4);
    if (want != got)
        return lh_fail(LH_ERR_CORRUPT, "aq state: CRC-32C mismatch (stored %08x, computed %08x)", want, got);
    const uint8_t *rec = s + AQ_STATE_HEADER;
    for (uint64_t i = 0; i < n; i++, rec += 8 + c->entry_bytes) {
        uint64_t id = lh_get_le64(rec);
        if (id >= max)
            return lh_fail(LH_ERR_FORMAT,
                           "aq state: entry %llu: sample id %llu out of range (max_samples %llu)",
                           (unsigned long long)i, (unsigned long long)id, (unsigned long long)max);
        if (i && id <= lh_get_le64(rec - 8 - c->entry_bytes))
            return lh_fail(LH_ERR_FORMAT, "aq state: entry %llu: sample ids not strictly ascending",
                           (unsigned long long)i);
        if (!entry_finite(c, rec + 8))
            return lh_fail(LH_ERR_FORMAT, "aq state: the entry of sample %llu holds a non-finite value",
                           (unsigned long long)id);
    }
    *n_out = n;
    return LH_OK;
}

lh_status lh_aq_check_state(const lh_aq_codec *c, const void *src, size_t src_len)
{
    if (!c) return lh_fail(LH_ERR_INVALID_ARG, "aq check state: NULL codec");
    uint64_t n;
    return aq_state_check(c, src, src_len, &n);
}

lh_status lh_aq_load_state(lh_aq_codec *c, const void *src, size_t src_len)
{
    if (!c) return lh_fail(LH_ERR_INVALID_ARG, "aq load state: NULL codec");
    uint64_t n;
    lh_status st = aq_state_check(c, src, src_len, &n);
    if (st) return st;
    memset(c->seen, 0, seen_bytes(c));
    const uint8_t *rec = (const uint8_t *)src + AQ_STATE_HEADER;
    for (uint64_t i = 0; i < n; i++, rec += 8 + c->entry_bytes) {
        uint64_t id = lh_get_le64(rec);
        memcpy(entry(c, id), rec + 8, c->entry_bytes);
        seen_set(c, id, 1);
    }
    return LH_OK;
}
