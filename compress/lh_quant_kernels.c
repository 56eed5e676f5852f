/*
 * Element kernels of the quantizers: absmax, codes, dequantize/update, pack,
 * digest.  Each has a portable loop that follows lh_quant_math.h literally and,
 * under __AVX2__, a vector path that must give bit-identical results (the tests
 * compare them on the same vectors).  The vector paths exist because the
 * codec has to run at memory speed on one core: rounding to nearest counts
 * midpoints below u with one compare per midpoint (<= 31 for <= 5 bits), and
 * levels are fetched with a gather.  Wider widths and the rare cases go
 * through the scalar code.
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "lh_quant_internal.h"
#include "lh_quant_math.h"
#include "lh_quant_tables.h"

#if defined(__AVX2__) || defined(__BMI2__)
#include <immintrin.h>
#endif

lhq_tab lhq_tab_get(lh_grid grid, int bits)
{
    lhq_tab t;
    int lo = lh_qm_level_offset(bits), mo = lh_qm_mid_offset(bits);
    if (grid == LH_GRID_UNIFORM) {
        t.levels = lh_tab_uniform_levels + lo;
        t.mids = lh_tab_uniform_mids + mo;
        t.invgap = lh_tab_uniform_invgap + mo;
        t.thr15 = lh_tab_uniform_thr15 + lh_qm_thr_offset(bits);
    } else {
        t.levels = lh_tab_normal_levels + lo;
        t.mids = lh_tab_normal_mids + mo;
        t.invgap = lh_tab_normal_invgap + mo;
        t.thr15 = lh_tab_normal_thr15 + lh_qm_thr_offset(bits);
    }
    t.bits = bits;
    t.big_u = 0;
    return t;
}

const float *lh_quant_levels(lh_grid grid, int bits)
{
    if (bits < 1 || bits > 8 || (grid != LH_GRID_NORMAL && grid != LH_GRID_UNIFORM)) return NULL;
    return lhq_tab_get(grid, bits).levels;
}

static inline float ref_at(lhq_ref m, size_t i)
{
    return m.f32 ? m.f32[i] : m.f16 ? lh_qm_half_to_float(m.f16[i]) : 0.0f;
}

#ifdef __AVX2__
static inline __m256 ref_load8(lhq_ref m, size_t i)
{
    if (m.f32) return _mm256_loadu_ps(m.f32 + i);
    if (m.f16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(m.f16 + i)));
    return _mm256_setzero_ps();
}
#endif

#ifdef __AVX2__
static inline __m256i mix32x8(__m256i x)
{
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7FEB352D));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0x846CA68Bu));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    return x;
}

/* 8 int32 lanes (each < 256) to 8 bytes. */
static inline void store_codes8(uint8_t *dst, __m256i k)
{
    __m128i lo = _mm256_castsi256_si128(k), hi = _mm256_extracti128_si256(k, 1);
    __m128i w = _mm_packus_epi32(lo, hi);
    __m128i b = _mm_packus_epi16(w, w);
    _mm_storel_epi64((__m128i *)dst, b);
}
#endif

/* ---- absmax ------------------------------------------------------------ */

/*
 * One pass for the scales: max |x - m| and, for scale clipping (colss /
 * sumsq non-NULL), the sum of squares in the order lh_quant_math.h fixes.
 * Each body is written once; `simd` and the NULL-ness of the sum pointers
 * are constants at every call, so the plain absmax passes compile to exactly
 * what they were before clipping existed.  The squares are exact in double
 * and the additions happen in the same order in the vector and scalar code
 * (per column: row after row; contiguous: lane i % 8), so the two agree to
 * the last bit.
 */
static inline __attribute__((always_inline)) int absmax_cols_impl(const float *x, lhq_ref m, size_t rows,
                                                                  size_t cols, float *colmax, double *colss,
                                                                  int simd)
{
    int bad = 0;
    (void)simd;
    for (size_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        lhq_ref mr = m;
        if (m.f32) mr.f32 = m.f32 + r * cols;
        if (m.f16) mr.f16 = m.f16 + r * cols;
        size_t c = 0;
#ifdef __AVX2__
        if (simd) {
            const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
            const __m256 fmax = _mm256_set1_ps(3.4028235e38f);
            __m256 notfin = _mm256_setzero_ps();
            for (; c + 8 <= cols; c += 8) {
                __m256 d = _mm256_sub_ps(_mm256_loadu_ps(xr + c), ref_load8(mr, c));
                __m256 a = _mm256_and_ps(d, absmask);
                notfin = _mm256_or_ps(notfin, _mm256_cmp_ps(a, fmax, _CMP_NLE_UQ)); /* NaN or > max */
                _mm256_storeu_ps(colmax + c, _mm256_max_ps(_mm256_loadu_ps(colmax + c), a));
                if (colss) {
                    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(d));
                    __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
                    _mm256_storeu_pd(colss + c, _mm256_add_pd(_mm256_loadu_pd(colss + c), _mm256_mul_pd(lo, lo)));
                    _mm256_storeu_pd(colss + c + 4,
                                     _mm256_add_pd(_mm256_loadu_pd(colss + c + 4), _mm256_mul_pd(hi, hi)));
                }
            }
            bad |= _mm256_movemask_ps(notfin);
        }
#endif
        for (; c < cols; c++) {
            float d = LH_FSUB(xr[c], ref_at(mr, c));
            float a = fabsf(d);
            if (!(a <= 3.4028235e38f)) bad = 1;
            if (a > colmax[c]) colmax[c] = a;
            if (colss) colss[c] = LH_DADD(colss[c], lh_qm_sq(d));
        }
    }
    return bad != 0;
}

static inline __attribute__((always_inline)) int absmax_impl(const float *x, lhq_ref m, size_t n, float *amax,
                                                             double *sumsq, int simd)
{
    float best = 0.0f;
    int bad = 0;
    size_t i = 0;
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    (void)simd;
#ifdef __AVX2__
    if (simd) {
        const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
        const __m256 fmax = _mm256_set1_ps(3.4028235e38f);
        __m256 notfin = _mm256_setzero_ps(), vmax = _mm256_setzero_ps();
        __m256d slo = _mm256_setzero_pd(), shi = _mm256_setzero_pd(); /* lanes 0..3, 4..7 */
        for (; i + 8 <= n; i += 8) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), ref_load8(m, i));
            __m256 a = _mm256_and_ps(d, absmask);
            notfin = _mm256_or_ps(notfin, _mm256_cmp_ps(a, fmax, _CMP_NLE_UQ));
            vmax = _mm256_max_ps(vmax, a);
            if (sumsq) {
                __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(d));
                __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
                slo = _mm256_add_pd(slo, _mm256_mul_pd(lo, lo));
                shi = _mm256_add_pd(shi, _mm256_mul_pd(hi, hi));
            }
        }
        bad |= _mm256_movemask_ps(notfin);
        float tmp[8];
        _mm256_storeu_ps(tmp, vmax);
        for (int k = 0; k < 8; k++)
            if (tmp[k] > best) best = tmp[k];
        if (sumsq) {
            _mm256_storeu_pd(lane, slo);
            _mm256_storeu_pd(lane + 4, shi);
        }
    }
#endif
    for (; i < n; i++) {
        float d = LH_FSUB(x[i], ref_at(m, i));
        float a = fabsf(d);
        if (!(a <= 3.4028235e38f)) bad = 1;
        if (a > best) best = a;
        if (sumsq) lane[i & 7] = LH_DADD(lane[i & 7], lh_qm_sq(d));
    }
    *amax = best;
    if (sumsq) {
        double s = 0.0;
        for (int k = 0; k < 8; k++)
            s = LH_DADD(s, lane[k]);
        *sumsq = s;
    }
    return bad != 0;
}

int lhq_absmax_cols(const float *x, lhq_ref m, size_t rows, size_t cols, float *colmax)
{
    return absmax_cols_impl(x, m, rows, cols, colmax, NULL, 1);
}

int lhq_absmax(const float *x, lhq_ref m, size_t n, float *amax)
{
    return absmax_impl(x, m, n, amax, NULL, 1);
}

int lhq_absmax_sumsq_cols(const float *x, lhq_ref m, size_t rows, size_t cols, float *colmax, double *colss)
{
    return absmax_cols_impl(x, m, rows, cols, colmax, colss, 1);
}

int lhq_absmax_sumsq(const float *x, lhq_ref m, size_t n, float *amax, double *sumsq)
{
    return absmax_impl(x, m, n, amax, sumsq, 1);
}

int lhq_absmax_sumsq_cols_scalar(const float *x, lhq_ref m, size_t rows, size_t cols, float *colmax,
                                 double *colss)
{
    return absmax_cols_impl(x, m, rows, cols, colmax, colss, 0);
}

int lhq_absmax_sumsq_scalar(const float *x, lhq_ref m, size_t n, float *amax, double *sumsq)
{
    return absmax_impl(x, m, n, amax, sumsq, 0);
}

void lhq_clip_scales(float *scale, const double *ss, size_t ns, lh_grouping g, uint32_t group_size,
                     size_t rows, size_t cols, float k)
{
    size_t n = rows * cols;
    for (size_t i = 0; i < ns; i++) {
        size_t count = g == LH_GROUP_CHANNEL ? rows
                       : g == LH_GROUP_TENSOR ? n
                       : (n - i * group_size < group_size ? n - i * group_size : group_size);
        scale[i] = lh_qm_clip_scale(scale[i], ss[i], (double)count, k);
    }
}

/* ---- codes --------------------------------------------------------------- */

/*
 * Widths 6..8 have 31..127 thresholds: too many to compare against one by one.
 * The nearest rule works on |q| in Q15 (0..32767), so split that range into
 * bins no wider than the closest pair of thresholds: a bin then holds at most
 * one threshold, and count(thr < a) = lo[bin] + (a > thr[lo[bin]]) exactly.
 * Two small tables per (grid, width), built once; two gathers per 8 values.
 */
typedef struct wide_tab {
    int shift;         /* bin = a >> shift */
    int32_t lo[32768]; /* count of thresholds below the bin start (only 32768 >> shift used) */
    int32_t thr[128];  /* thresholds, padded with 32767 (never below a) */
} wide_tab;

static wide_tab wide_tabs[2][3];
static pthread_once_t wide_once = PTHREAD_ONCE_INIT;

static void wide_build(void)
{
    for (int g = 0; g < 2; g++)
        for (int b = 6; b <= 8; b++) {
            wide_tab *w = &wide_tabs[g][b - 6];
            const int16_t *thr = lhq_tab_get((lh_grid)g, b).thr15;
            int nthr = (1 << (b - 1)) - 1, gap = 32768;
            for (int j = 0; j < 128; j++)
                w->thr[j] = j < nthr ? thr[j] : 32767;
            for (int j = 0; j + 1 < nthr; j++)
                if (thr[j + 1] - thr[j] < gap) gap = thr[j + 1] - thr[j];
            if (thr[0] < gap) gap = thr[0] > 0 ? thr[0] : 1;
            int shift = 0;
            while (shift < 15 && (2 << shift) <= gap)
                shift++;
            w->shift = shift;
            for (int bin = 0, c = 0; bin < (32768 >> shift); bin++) {
                while (c < nthr && thr[c] < (bin << shift))
                    c++;
                w->lo[bin] = c;
            }
        }
}

static const wide_tab *wide_get(const lhq_tab *t)
{
    pthread_once(&wide_once, wide_build);
    int g = t->thr15 == lh_tab_uniform_thr15 + lh_qm_thr_offset(t->bits) ? 1 : 0;
    return &wide_tabs[g][t->bits - 6];
}

static inline int wide_count(const wide_tab *w, int a)
{
    int lo = w->lo[a >> w->shift];
    return lo + (a > w->thr[lo]);
}

static void codes_nearest_wide(const float *x, lhq_ref m, const float *inv_s, int s_stride, size_t n,
                               const lhq_tab *t, uint32_t idx0, uint8_t *codes)
{
    const wide_tab *w = wide_get(t);
    const int H = 1 << (t->bits - 1);
    size_t i = 0;
#ifdef __AVX2__
    const __m256 s_const = _mm256_set1_ps(inv_s[0]);
    const __m256 fhi = _mm256_set1_ps(32767.0f), flo = _mm256_set1_ps(-32767.0f);
    const __m256i hv = _mm256_set1_epi32(H), one = _mm256_set1_epi32(1), zero = _mm256_setzero_si256();
    const __m256i shift = _mm256_set1_epi32(w->shift);
    const __m256i par = _mm256_and_si256(
        _mm256_add_epi32(_mm256_set1_epi32((int)idx0), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), one);
    for (; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), ref_load8(m, i));
        __m256 u = _mm256_mul_ps(d, s_stride ? _mm256_loadu_ps(inv_s + i) : s_const);
        /* clamp in float first (as lh_qm_q15 does), then truncate */
        __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_mul_ps(u, _mm256_set1_ps(32768.0f)), flo), fhi);
        __m256i q = _mm256_cvttps_epi32(v);
        __m256i a = _mm256_abs_epi32(q);
        __m256i lo = _mm256_i32gather_epi32(w->lo, _mm256_srlv_epi32(a, shift), 4);
        __m256i th = _mm256_i32gather_epi32(w->thr, lo, 4);
        __m256i c = _mm256_sub_epi32(lo, _mm256_cmpgt_epi32(a, th));
        __m256i pos = _mm256_cmpgt_epi32(_mm256_add_epi32(q, par), zero);
        /* pos: H + c; else H + ~c */
        __m256i k =
            _mm256_add_epi32(hv, _mm256_xor_si256(c, _mm256_andnot_si256(pos, _mm256_set1_epi32(-1))));
        store_codes8(codes + i, k);
    }
#endif
    for (; i < n; i++) {
        float u = LH_FMUL(LH_FSUB(x[i], ref_at(m, i)), inv_s[i * (size_t)s_stride]);
        int q = lh_qm_q15(u), a = q < 0 ? -q : q, c = wide_count(w, a);
        int pos = q + (int)((idx0 + (uint32_t)i) & 1u) > 0;
        codes[i] = (uint8_t)(H + (c ^ (pos - 1)));
    }
}

/*
 * Stochastic rounding at 6..8 bits: the interval search over 63..255 levels is
 * done with 4096 bins over [-1, 1].  bin(u) = (int)((u + 1) * 2048) is
 * monotone in u, so if no bin holds two levels, the number of levels[1..] <= u
 * is lo[bin] + (the next level <= u), exactly the scalar rule's count.  The
 * build checks the one-level-per-bin condition; a table that fails it is not
 * used (the scalar search runs instead).
 */
#ifdef __AVX2__
#define SR_BINS 4096
typedef struct sr_tab {
    int usable;
    int32_t lo[SR_BINS]; /* levels[1..] whose bin is below this bin */
    float next[257];     /* levels shifted by one, padded with +inf: next[j] = levels[j + 1] */
} sr_tab;

static sr_tab sr_tabs[2][3];
static pthread_once_t sr_once = PTHREAD_ONCE_INIT;

static inline int sr_bin(float u)
{
    float v = LH_FMUL(LH_FADD(u, 1.0f), 2048.0f);
    if (!(v > 0.0f)) return 0;
    if (!(v < (float)(SR_BINS - 1))) return SR_BINS - 1;
    return (int)v;
}

static void sr_build(void)
{
    for (int g = 0; g < 2; g++)
        for (int b = 6; b <= 8; b++) {
            sr_tab *w = &sr_tabs[g][b - 6];
            const float *lv = lhq_tab_get((lh_grid)g, b).levels;
            int L = 1 << b, count[SR_BINS] = {0};
            w->usable = 1;
            for (int k = 1; k < L; k++)
                if (++count[sr_bin(lv[k])] > 1) w->usable = 0;
            for (int j = 0; j < 257; j++)
                w->next[j] = j + 1 < L ? lv[j + 1] : INFINITY;
            for (int bin = 0, c = 0; bin < SR_BINS; bin++) {
                while (c + 1 < L && sr_bin(lv[c + 1]) < bin)
                    c++;
                w->lo[bin] = c;
            }
        }
}

static const sr_tab *sr_get(const lhq_tab *t)
{
    pthread_once(&sr_once, sr_build);
    int g = t->thr15 == lh_tab_uniform_thr15 + lh_qm_thr_offset(t->bits) ? 1 : 0;
    const sr_tab *w = &sr_tabs[g][t->bits - 6];
    return w->usable ? w : NULL;
}
#endif

static void codes_scalar(const float *x, lhq_ref m, const float *inv_s, int s_stride, size_t n,
                         const lhq_tab *t, const uint64_t *key, uint32_t idx0, uint8_t *codes)
{
    for (size_t i = 0; i < n; i++) {
        float u = LH_FMUL(LH_FSUB(x[i], ref_at(m, i)), inv_s[i * (size_t)s_stride]);
        int k;
        if (key) {
            float r = lh_qm_uniform(lh_qm_hash(*key, idx0 + (uint32_t)i));
            k = lh_qm_code_stochastic(u, t->levels, t->invgap, t->bits, r);
        } else {
            k = lh_qm_code_nearest(u, t->thr15, t->bits, idx0 + (uint32_t)i);
        }
        codes[i] = (uint8_t)k;
    }
}

#ifdef __AVX2__
/*
 * 8 floats of u for elements i..i+7, in Q15 as int32 (truncated); the caller
 * packs them with signed saturation and raises -32768 to -32767, which is
 * lh_qm_q15's clamp.  Without clipping |u| <= ~1 and that is all.  A clipped
 * scale lets |u| reach sqrt(group size) / clip_rms (unbounded for a small
 * clip_rms), and cvttps turns anything >= 2^31 into INT_MIN: the wrong sign.
 * So with BIG_U the top is clamped in float first; the bottom needs nothing
 * (INT_MIN saturates to the right end).  One min, operands in this order so a
 * NaN lane stays NaN (minps returns its second operand then).  Below 2^31 the
 * lanes after the pack are what they would be without the min; it is left
 * out when the scales are absmax, where it would only cost time (~5%).
 */
static inline __attribute__((always_inline)) __m256i q15x8(const float *x, lhq_ref m, const float *inv_s,
                                                           int s_stride, __m256 s_const, size_t i,
                                                           const int BIG_U)
{
    __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), ref_load8(m, i));
    __m256 u = _mm256_mul_ps(d, s_stride ? _mm256_loadu_ps(inv_s + i) : s_const);
    __m256 v = _mm256_mul_ps(u, _mm256_set1_ps(32768.0f));
    if (BIG_U) v = _mm256_min_ps(_mm256_set1_ps(32767.0f), v);
    return _mm256_cvttps_epi32(v);
}

/*
 * lh_qm_code_nearest for 32 elements per iteration: Q15 values of two vectors
 * are packed (saturating) into 16 int16 lanes, so each threshold compare
 * handles 16 elements.  BITS is a literal at every call, so the compare loop
 * unrolls and the thresholds stay in registers.  The 16-bit lanes come out in
 * the 128-bit-lane order of packs; one dword permute restores element order.
 */
static inline __attribute__((always_inline)) size_t
codes_nearest_q15(const float *x, lhq_ref m, const float *inv_s, int s_stride, size_t n, const int16_t *thr,
                  const int BITS, const int BIG_U, uint32_t idx0, uint8_t *codes)
{
    const int H = 1 << (BITS - 1);
    __m256i th[16];
    for (int j = 0; j < H - 1; j++)
        th[j] = _mm256_set1_epi16(thr[j]);
    const __m256 s_const = _mm256_set1_ps(inv_s[0]);
    const __m256i lo = _mm256_set1_epi16(-32767), hv = _mm256_set1_epi16((short)H),
                  ones = _mm256_set1_epi16(-1);
    /* element parity of each int16 lane: lanes hold elements 0-3, 8-11 | 4-7, 12-15 (+16 for the second half)
     */
    const __m256i par = (idx0 & 1) ? _mm256_setr_epi16(1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0)
                                   : _mm256_setr_epi16(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i k2[2];
        for (int half = 0; half < 2; half++) {
            size_t e = i + 16 * (size_t)half;
            __m256i q = _mm256_packs_epi32(q15x8(x, m, inv_s, s_stride, s_const, e, BIG_U),
                                           q15x8(x, m, inv_s, s_stride, s_const, e + 8, BIG_U));
            q = _mm256_max_epi16(q, lo);
            __m256i a = _mm256_abs_epi16(q);
            __m256i c = _mm256_setzero_si256();
            for (int j = 0; j < H - 1; j++)
                c = _mm256_sub_epi16(c, _mm256_cmpgt_epi16(a, th[j]));
            __m256i pos = _mm256_cmpgt_epi16(_mm256_adds_epi16(q, par),
                                             _mm256_setzero_si256()); /* saturating: q may be 32767 */
            /* pos: H + c; else H + ~c = H - 1 - c */
            k2[half] = _mm256_add_epi16(hv, _mm256_xor_si256(c, _mm256_andnot_si256(pos, ones)));
        }
        __m256i b = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(k2[0], k2[1]), order);
        _mm256_storeu_si256((__m256i *)(codes + i), b);
    }
    return i;
}
#endif

void lhq_codes(const float *x, lhq_ref m, const float *inv_s, int s_stride, size_t n, const lhq_tab *t,
               const uint64_t *key, uint32_t idx0, uint8_t *codes)
{
    size_t i = 0;
    if (!key && t->bits >= 6) {
        codes_nearest_wide(x, m, inv_s, s_stride, n, t, idx0, codes);
        return;
    }
#ifdef __AVX2__
    const int L = 1 << t->bits;
    if (!key && t->bits <= 5) {
#define LHQ_NEAREST_Q15(B)                                                                                    \
    (t->big_u ? codes_nearest_q15(x, m, inv_s, s_stride, n, t->thr15, B, 1, idx0, codes)                      \
              : codes_nearest_q15(x, m, inv_s, s_stride, n, t->thr15, B, 0, idx0, codes))
        switch (t->bits) {
        case 1:
            i = LHQ_NEAREST_Q15(1);
            break;
        case 2:
            i = LHQ_NEAREST_Q15(2);
            break;
        case 3:
            i = LHQ_NEAREST_Q15(3);
            break;
        case 4:
            i = LHQ_NEAREST_Q15(4);
            break;
        default:
            i = LHQ_NEAREST_Q15(5);
            break;
        }
#undef LHQ_NEAREST_Q15
    } else if (key && t->bits >= 6 && sr_get(t)) {
        const sr_tab *w = sr_get(t);
        const int L = 1 << t->bits;
        const __m256 s_const = _mm256_set1_ps(inv_s[0]);
        const __m256 one = _mm256_set1_ps(1.0f), mone = _mm256_set1_ps(-1.0f),
                     k2048 = _mm256_set1_ps(2048.0f);
        const __m256 binmax = _mm256_set1_ps((float)(SR_BINS - 1)), fzero = _mm256_setzero_ps();
        const __m256i top = _mm256_set1_epi32(L - 1), topm1 = _mm256_set1_epi32(L - 2);
        const __m256i klo = _mm256_set1_epi32((int)(uint32_t)*key);
        const __m256i khi = _mm256_set1_epi32((int)(uint32_t)(*key >> 32));
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256 scale24 = _mm256_set1_ps(1.0f / 16777216.0f);
        for (; i + 8 <= n; i += 8) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), ref_load8(m, i));
            __m256 u = _mm256_mul_ps(d, s_stride ? _mm256_loadu_ps(inv_s + i) : s_const);
            /* sr_bin: clamp in float (0 .. SR_BINS-1), then truncate */
            __m256 v = _mm256_mul_ps(_mm256_add_ps(u, one), k2048);
            v = _mm256_min_ps(_mm256_max_ps(v, fzero), binmax);
            __m256i lo = _mm256_i32gather_epi32(w->lo, _mm256_cvttps_epi32(v), 4);
            __m256 nx = _mm256_i32gather_ps(w->next, lo, 4);
            __m256i j = _mm256_sub_epi32(lo, _mm256_castps_si256(_mm256_cmp_ps(nx, u, _CMP_LE_OQ)));
            j = _mm256_min_epi32(j, topm1);
            __m256 lv = _mm256_i32gather_ps(t->levels, j, 4);
            __m256 ig = _mm256_i32gather_ps(t->invgap, j, 4);
            __m256 p = _mm256_mul_ps(_mm256_sub_ps(u, lv), ig);
            __m256i idx = _mm256_add_epi32(_mm256_set1_epi32((int)(idx0 + (uint32_t)i)), lane);
            __m256i h = mix32x8(_mm256_xor_si256(mix32x8(_mm256_xor_si256(idx, klo)), khi));
            __m256 r = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(h, 8)), scale24);
            __m256i k = _mm256_sub_epi32(j, _mm256_castps_si256(_mm256_cmp_ps(r, p, _CMP_LT_OQ)));
            __m256i low = _mm256_castps_si256(_mm256_cmp_ps(u, mone, _CMP_NGT_UQ));
            __m256i high = _mm256_castps_si256(_mm256_cmp_ps(u, one, _CMP_NLT_UQ));
            k = _mm256_andnot_si256(low, k);
            k = _mm256_blendv_epi8(k, top, high);
            store_codes8(codes + i, k);
        }
    } else if (key && t->bits <= 5) {
        __m256 lv[32];
        for (int j = 1; j < L; j++)
            lv[j] = _mm256_set1_ps(t->levels[j]);
        __m256 s_const = _mm256_set1_ps(inv_s[0]);
        const __m256 one = _mm256_set1_ps(1.0f), mone = _mm256_set1_ps(-1.0f);
        const __m256i top = _mm256_set1_epi32(L - 1), topm1 = _mm256_set1_epi32(L - 2);
        const __m256i klo = _mm256_set1_epi32((int)(uint32_t)*key);
        const __m256i khi = _mm256_set1_epi32((int)(uint32_t)(*key >> 32));
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256 scale24 = _mm256_set1_ps(1.0f / 16777216.0f);
        for (; i + 8 <= n; i += 8) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), ref_load8(m, i));
            __m256 u = _mm256_mul_ps(d, s_stride ? _mm256_loadu_ps(inv_s + i) : s_const);
            __m256i j = _mm256_setzero_si256();
            for (int q = 1; q < L; q++)
                j = _mm256_sub_epi32(j, _mm256_castps_si256(_mm256_cmp_ps(lv[q], u, _CMP_LE_OQ)));
            j = _mm256_min_epi32(j, topm1);
            __m256 lo = _mm256_i32gather_ps(t->levels, j, 4);
            __m256 ig = _mm256_i32gather_ps(t->invgap, j, 4);
            __m256 p = _mm256_mul_ps(_mm256_sub_ps(u, lo), ig);
            __m256i idx = _mm256_add_epi32(_mm256_set1_epi32((int)(idx0 + (uint32_t)i)), lane);
            __m256i h = mix32x8(_mm256_xor_si256(mix32x8(_mm256_xor_si256(idx, klo)), khi));
            __m256 r = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(h, 8)), scale24);
            __m256i up = _mm256_castps_si256(_mm256_cmp_ps(r, p, _CMP_LT_OQ));
            __m256i k = _mm256_sub_epi32(j, up);
            /* u <= -1 -> 0, u >= 1 -> top (scalar: !(u > -1), !(u < 1)) */
            __m256i low = _mm256_castps_si256(_mm256_cmp_ps(u, mone, _CMP_NGT_UQ));
            __m256i high = _mm256_castps_si256(_mm256_cmp_ps(u, one, _CMP_NLT_UQ));
            k = _mm256_andnot_si256(low, k);
            k = _mm256_blendv_epi8(k, top, high);
            store_codes8(codes + i, k);
        }
    }
#endif
    if (i < n) {
        lhq_ref mr = m;
        if (m.f32) mr.f32 = m.f32 + i;
        if (m.f16) mr.f16 = m.f16 + i;
        codes_scalar(x + i, mr, inv_s + i * (size_t)s_stride, s_stride, n - i, t, key, idx0 + (uint32_t)i,
                     codes + i);
    }
}

/* ---- dequantize / update ------------------------------------------------ */

#ifdef __AVX2__
/* levels[k] for 8 codes: a register permute for <= 16 levels, a gather beyond */
static inline __m256 level_lookup8(const lhq_tab *t, __m256 lo8, __m256 hi8, __m256i k)
{
    if (t->bits <= 3) return _mm256_permutevar8x32_ps(lo8, k);
    if (t->bits == 4)
        return _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo8, k), _mm256_permutevar8x32_ps(hi8, k),
                                _mm256_castsi256_ps(_mm256_slli_epi32(k, 28))); /* bit 3 -> sign */
    return _mm256_i32gather_ps(t->levels, k, 4);
}
#endif

void lhq_dequant(const uint8_t *codes, const float *s, int s_stride, size_t n, const lhq_tab *t,
                 lhq_dq_mode mode, float *out, uint16_t *m16, float *act)
{
    const float *levels = t->levels;
    size_t i = 0;
#ifdef __AVX2__
    __m256 s_const = _mm256_set1_ps(s[0]);
    /* the first 16 entries of the table (widths <= 3 read into the next width's entries; unused) */
    __m256 lo8 = _mm256_loadu_ps(levels), hi8 = t->bits == 4 ? _mm256_loadu_ps(levels + 8) : lo8;
    for (; i + 8 <= n; i += 8) {
        __m256i k = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(codes + i)));
        __m256 v = _mm256_mul_ps(level_lookup8(t, lo8, hi8, k), s_stride ? _mm256_loadu_ps(s + i) : s_const);
        switch (mode) {
        case LHQ_DQ_STORE:
            _mm256_storeu_ps(out + i, v);
            break;
        case LHQ_DQ_ADD:
            _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(out + i), v));
            break;
        case LHQ_DQ_UPDATE_F32: {
            __m256 nm = _mm256_add_ps(_mm256_loadu_ps(out + i), v);
            _mm256_storeu_ps(out + i, nm);
            if (act) _mm256_storeu_ps(act + i, nm);
            break;
        }
        case LHQ_DQ_UPDATE_F16: {
            __m256 old = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(m16 + i)));
            __m128i h = _mm256_cvtps_ph(_mm256_add_ps(old, v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            _mm_storeu_si128((__m128i *)(m16 + i), h);
            if (act) _mm256_storeu_ps(act + i, _mm256_cvtph_ps(h));
            break;
        }
        case LHQ_DQ_RESIDUAL:
            _mm256_storeu_ps(out + i, _mm256_sub_ps(_mm256_loadu_ps(act + i), v));
            break;
        }
    }
#endif
    for (; i < n; i++) {
        float v = LH_FMUL(levels[codes[i]], s[i * (size_t)s_stride]);
        switch (mode) {
        case LHQ_DQ_STORE:
            out[i] = v;
            break;
        case LHQ_DQ_ADD:
            out[i] = LH_FADD(out[i], v);
            break;
        case LHQ_DQ_UPDATE_F32:
            out[i] = LH_FADD(out[i], v);
            if (act) act[i] = out[i];
            break;
        case LHQ_DQ_UPDATE_F16:
            m16[i] = lh_qm_float_to_half(LH_FADD(lh_qm_half_to_float(m16[i]), v));
            if (act) act[i] = lh_qm_half_to_float(m16[i]);
            break;
        case LHQ_DQ_RESIDUAL:
            out[i] = LH_FSUB(act[i], v);
            break;
        }
    }
}

/* ---- packing -------------------------------------------------------------- */

size_t lh_pack_bytes(size_t n, int bits)
{
    return (n * (size_t)bits + 7) / 8;
}

void lh_pack_codes(const uint8_t *codes, size_t n, int bits, uint8_t *dst)
{
    size_t i = 0, o = 0;
    switch (bits) {
    case 8:
        memcpy(dst, codes, n);
        return;
    case 4:
#ifdef __AVX2__
        for (; i + 32 <= n; i += 32, o += 16) {
            /* byte pairs (c0, c1) -> c0 + 16 c1 in 16-bit lanes, then narrowed in order */
            __m256i w = _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(codes + i)),
                                             _mm256_set1_epi16(0x1001));
            __m256i b = _mm256_permute4x64_epi64(_mm256_packus_epi16(w, w), 0x08);
            _mm_storeu_si128((__m128i *)(dst + o), _mm256_castsi256_si128(b));
        }
#endif
        for (; i + 2 <= n; i += 2)
            dst[o++] = (uint8_t)(codes[i] | codes[i + 1] << 4);
        break;
    case 2:
#ifdef __AVX2__
        for (; i + 32 <= n; i += 32, o += 8) {
            __m256i w = _mm256_maddubs_epi16(_mm256_loadu_si256((const __m256i *)(codes + i)),
                                             _mm256_set1_epi16(0x0401));
            __m256i d = _mm256_madd_epi16(w, _mm256_set1_epi32(0x00100001)); /* (c0 + 4c1) + 16 (c2 + 4c3) */
            __m256i p16 = _mm256_packus_epi32(d, d);
            __m256i p8 = _mm256_packus_epi16(p16, p16);
            uint32_t lo = (uint32_t)_mm256_extract_epi32(p8, 0), hi = (uint32_t)_mm256_extract_epi32(p8, 4);
            memcpy(dst + o, &lo, 4);
            memcpy(dst + o + 4, &hi, 4);
        }
#endif
        for (; i + 4 <= n; i += 4)
            dst[o++] = (uint8_t)(codes[i] | codes[i + 1] << 2 | codes[i + 2] << 4 | codes[i + 3] << 6);
        break;
    case 1:
        for (; i + 8 <= n; i += 8) {
            unsigned b = 0;
            for (int k = 0; k < 8; k++)
                b |= (unsigned)(codes[i + k] & 1) << k;
            dst[o++] = (uint8_t)b;
        }
        break;
    default:
#ifdef __BMI2__
    {
        /* pext gathers the low `bits` of each of 8 code bytes into one dense word (stream order) */
        const uint64_t mask = 0x0101010101010101ull * ((1u << bits) - 1);
        for (size_t total = lh_pack_bytes(n, bits); i + 8 <= n && o + 8 <= total; i += 8, o += (size_t)bits) {
            uint64_t v, w;
            memcpy(&v, codes + i, 8);
            w = _pext_u64(v, mask);
            memcpy(dst + o, &w, 8); /* the bytes past `bits` are rewritten by the next group */
        }
    }
#endif
        for (; i + 8 <= n; i += 8) {
            uint64_t w = 0;
            for (int k = 0; k < 8; k++)
                w |= (uint64_t)codes[i + k] << (k * bits);
            for (int k = 0; k < bits; k++)
                dst[o++] = (uint8_t)(w >> (8 * k));
        }
        break;
    }
    /* tail: fewer than one full byte group left; generic bit writer */
    if (i < n) {
        size_t bitpos = i * (size_t)bits;
        size_t end = lh_pack_bytes(n, bits);
        memset(dst + bitpos / 8, 0, end - bitpos / 8);
        for (; i < n; i++, bitpos += (size_t)bits) {
            unsigned v = codes[i];
            for (int k = 0; k < bits; k++)
                if (v >> k & 1) dst[(bitpos + k) / 8] |= (uint8_t)(1u << ((bitpos + k) % 8));
        }
    }
}

void lh_unpack_codes(const uint8_t *src, size_t n, int bits, uint8_t *codes)
{
    size_t i = 0, o = 0;
    switch (bits) {
    case 8:
        memcpy(codes, src, n);
        return;
    case 4:
        for (; i + 2 <= n; i += 2, o++) {
            codes[i] = src[o] & 15;
            codes[i + 1] = src[o] >> 4;
        }
        break;
    case 2:
        for (; i + 4 <= n; i += 4, o++) {
            uint8_t b = src[o];
            codes[i] = b & 3;
            codes[i + 1] = (b >> 2) & 3;
            codes[i + 2] = (b >> 4) & 3;
            codes[i + 3] = b >> 6;
        }
        break;
    case 1:
        for (; i + 8 <= n; i += 8, o++)
            for (int k = 0; k < 8; k++)
                codes[i + k] = (src[o] >> k) & 1;
        break;
    default: {
        const unsigned mask = (1u << bits) - 1;
#ifdef __BMI2__
        const uint64_t spread = 0x0101010101010101ull * mask;
        for (size_t total = lh_pack_bytes(n, bits); i + 8 <= n && o + 8 <= total; i += 8, o += (size_t)bits) {
            uint64_t w, v;
            memcpy(&w, src + o, 8); /* only the low 8*bits bits belong to this group */
            v = _pdep_u64(w, spread);
            memcpy(codes + i, &v, 8);
        }
#endif
        for (; i + 8 <= n; i += 8) {
            uint64_t w = 0;
            for (int k = 0; k < bits; k++)
                w |= (uint64_t)src[o++] << (8 * k);
            for (int k = 0; k < 8; k++)
                codes[i + k] = (uint8_t)((w >> (k * bits)) & mask);
        }
        break;
    }
    }
    for (size_t bitpos = i * (size_t)bits; i < n; i++, bitpos += (size_t)bits) {
        unsigned v = 0;
        for (int k = 0; k < bits; k++)
            v |= (unsigned)(src[(bitpos + k) / 8] >> ((bitpos + k) % 8) & 1) << k;
        codes[i] = (uint8_t)v;
    }
}

/* ---- digest --------------------------------------------------------------- */

void lhq_digest_init(lhq_digest *d)
{
    for (uint32_t k = 0; k < 32; k++)
        d->lane[k] = 0x9E3779B9u * (k + 1);
}

static inline uint32_t rotl5(uint32_t a)
{
    return a << 5 | a >> 27;
}

void lhq_digest_f32(lhq_digest *d, const float *v, size_t i0, size_t n)
{
    size_t i = 0;
#ifdef __AVX2__
    if (i0 % 32 == 0) {
        __m256i acc[4];
        for (int q = 0; q < 4; q++)
            acc[q] = _mm256_loadu_si256((const __m256i *)(d->lane + 8 * q));
        for (; i + 32 <= n; i += 32)
            for (int q = 0; q < 4; q++) {
                __m256i a = acc[q];
                a = _mm256_or_si256(_mm256_slli_epi32(a, 5), _mm256_srli_epi32(a, 27));
                acc[q] = _mm256_add_epi32(a, _mm256_loadu_si256((const __m256i *)(v + i + 8 * q)));
            }
        for (int q = 0; q < 4; q++)
            _mm256_storeu_si256((__m256i *)(d->lane + 8 * q), acc[q]);
    }
#endif
    for (; i < n; i++) {
        uint32_t *a = &d->lane[(i0 + i) & 31];
        *a = rotl5(*a) + lh_qm_f2u(v[i]);
    }
}

void lhq_digest_f16(lhq_digest *d, const uint16_t *v, size_t i0, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t *a = &d->lane[(i0 + i) & 31];
        *a = rotl5(*a) + v[i];
    }
}

void lhq_digest_u8(lhq_digest *d, const uint8_t *v, size_t i0, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t *a = &d->lane[(i0 + i) & 31];
        *a = rotl5(*a) + v[i];
    }
}

uint64_t lhq_digest_final(const lhq_digest *d, uint64_t n_elems)
{
    uint64_t h = lh_qm_mix64(n_elems ^ 0x4C48414344494731ull);
    for (uint64_t k = 0; k < 32; k++)
        h = lh_qm_mix64(h ^ d->lane[k] ^ (k << 40));
    return h;
}
