/*
 * lh_quant_math: the element-level math of the quantizers, written once for the
 * CPU (C11) and the GPU (CUDA: every function is __host__ __device__ there).
 *
 * Two ends of a link, and a CPU and a GPU, must compute the same codes, the same
 * stochastic bits and the same dequantized values to the last bit, or the AQ-SGD
 * caches drift apart.  So the rules live here and nowhere else:
 *   - u = x * inv_scale, with inv_scale = 1/scale (0 when scale is 0);
 *   - nearest: compare |u| in Q15 with the positive thresholds (below);
 *   - stochastic: j = the level interval holding u, p = (u - level[j]) * invgap[j],
 *     code = j + (r < p) with r from lh_qm_uniform();
 *   - value = level[code] * scale; one IEEE operation per step, never fused
 *     (C11 builds with -ffp-contract=off by default; CUDA uses __fmul_rn/__fadd_rn);
 *   - scale clipping (clip_rms = k > 0): the group's sum of squares is a double
 *     sum of lh_qm_sq(x - m) (exact squares), accumulated per column in row
 *     order for per-channel groups, and for a contiguous group in 8 lanes
 *     (element i of the group, counted from its first, feeds lane i % 8; the
 *     lanes are then added in order 0..7); the scale before fp16 rounding is
 *     lh_qm_clip_scale(absmax, sumsq, count, k).  Only the encoder computes it
 *     (the decoder reads the scale), but the order is fixed so that the AVX2
 *     and scalar encoders, and the CUDA one, write the same frame.
 * The AVX2 code in lh_quant.c is a vector transcription of these functions and is
 * tested against them.
 */
#ifndef LH_QUANT_MATH_H
#define LH_QUANT_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define LH_HD __host__ __device__ __forceinline__
#if defined(__CUDA_ARCH__) /* device pass: forbid FMA contraction explicitly */
#define LH_FMUL(a, b) __fmul_rn((a), (b))
#define LH_FADD(a, b) __fadd_rn((a), (b))
#define LH_FSUB(a, b) __fsub_rn((a), (b))
#define LH_DMUL(a, b) __dmul_rn((a), (b))
#define LH_DADD(a, b) __dadd_rn((a), (b))
#define LH_DDIV(a, b) __ddiv_rn((a), (b))
#define LH_DSQRT(a)   __dsqrt_rn(a)
#else /* host pass of a .cu file: plain IEEE operations, as in C */
#define LH_FMUL(a, b) ((a) * (b))
#define LH_FADD(a, b) ((a) + (b))
#define LH_FSUB(a, b) ((a) - (b))
#define LH_DMUL(a, b) ((a) * (b))
#define LH_DADD(a, b) ((a) + (b))
#define LH_DDIV(a, b) ((a) / (b))
#define LH_DSQRT(a)   sqrt(a)
#endif
#else
#define LH_HD         static inline
#define LH_FMUL(a, b) ((a) * (b))
#define LH_FADD(a, b) ((a) + (b))
#define LH_FSUB(a, b) ((a) - (b))
#define LH_DMUL(a, b) ((a) * (b))
#define LH_DADD(a, b) ((a) + (b))
#define LH_DDIV(a, b) ((a) / (b))
#define LH_DSQRT(a)   sqrt(a)
#endif

/** Offset of width `bits` in the level tables (2^bits entries each). */
LH_HD int lh_qm_level_offset(int bits)
{
    return (1 << bits) - 2;
}

/** Offset of width `bits` in the midpoint / inverse-gap tables (2^bits - 1 entries each). */
LH_HD int lh_qm_mid_offset(int bits)
{
    return (1 << bits) - bits - 1;
}

LH_HD uint32_t lh_qm_f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

LH_HD float lh_qm_u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/** splitmix64 finaliser: the 64-bit mixer behind the stochastic-rounding key. */
LH_HD uint64_t lh_qm_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/** Fold (seed, sample, step) into the 64-bit key of one stochastic-rounding stream. */
LH_HD uint64_t lh_qm_key(uint64_t seed, uint64_t sample, uint64_t step)
{
    uint64_t k = lh_qm_mix64(seed + 0x9E3779B97F4A7C15ull);
    k = lh_qm_mix64(k ^ sample);
    return lh_qm_mix64(k ^ (step * 0xD6E8FEB86659FD93ull));
}

/** 32-bit avalanche (lowbias32), cheap enough for one call per element in SIMD lanes. */
LH_HD uint32_t lh_qm_mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

/** The random bits of element `index` (< 2^32) under `key`. */
LH_HD uint32_t lh_qm_hash(uint64_t key, uint32_t index)
{
    return lh_qm_mix32(lh_qm_mix32(index ^ (uint32_t)key) ^ (uint32_t)(key >> 32));
}

/** Uniform in [0, 1) from 24 bits of the hash (exact in float). */
LH_HD float lh_qm_uniform(uint32_t h)
{
    return (float)(h >> 8) * (1.0f / 16777216.0f);
}

/** Offset of width `bits` in the Q15 threshold tables (2^(bits-1) - 1 entries each). */
LH_HD int lh_qm_thr_offset(int bits)
{
    return (1 << (bits - 1)) - bits;
}

/** u in Q15, truncated toward zero and clamped to [-32767, 32767]. */
LH_HD int lh_qm_q15(float u)
{
    float v = LH_FMUL(u, 32768.0f);
    if (!(v < 32767.0f)) return 32767;
    if (!(v > -32767.0f)) return -32767;
    return (int)v;
}

/**
 * Round-to-nearest code on a symmetric grid.  q = Q15(u), a = |q|, c = number
 * of positive thresholds thr[j] < a (branch-free binary search over the
 * 2^(bits-1) - 1 sorted entries), H = 2^(bits-1); code = H + c when q > 0,
 * H - 1 - c when q < 0.  An exact zero has no nearer side: it goes up on odd
 * element indices and down on even ones, so runs of zeros stay unbiased.
 * Comparing 16-bit integers lets the vector code test 16 elements at once.
 */
LH_HD int lh_qm_code_nearest(float u, const int16_t *thr, int bits, uint32_t index)
{
    int q = lh_qm_q15(u);
    int a = q < 0 ? -q : q;
    int c = 0;
    for (int h = bits > 1 ? 1 << (bits - 2) : 0; h >= 1; h >>= 1)
        if (thr[c + h - 1] < a) c += h;
    int H = 1 << (bits - 1);
    int pos = q + (int)(index & 1u) > 0;
    return H + (c ^ (pos - 1)); /* pos: H + c; else H + ~c = H - 1 - c (branch-free) */
}

/** Stochastic code: lower level of the interval holding u, plus one with probability p. */
LH_HD int lh_qm_code_stochastic(float u, const float *levels, const float *invgap, int bits, float r)
{
    int top = (1 << bits) - 1;
    if (!(u > -1.0f)) return 0; /* also catches u == -1 exactly */
    if (!(u < 1.0f)) return top;
    /* j = number of levels[1..top] <= u: in [0, top-1] because levels[top] = 1 > u */
    int j = 0;
    for (int h = 1 << (bits - 1); h >= 1; h >>= 1)
        if (levels[j + h] <= u) j += h;
    float p = LH_FMUL(LH_FSUB(u, levels[j]), invgap[j]);
    return j + (r < p ? 1 : 0);
}

/** Exact fp16 -> fp32. */
LH_HD float lh_qm_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 0) {
        float f = (float)m * 5.9604644775390625e-8f; /* m * 2^-24, exact */
        return sign ? -f : f;
    }
    if (e == 31) return lh_qm_u2f(sign | 0x7F800000u | (m << 13));
    return lh_qm_u2f(sign | ((e + 112u) << 23) | (m << 13));
}

/** fp32 -> fp16, round to nearest even (same as F16C and __float2half_rn; NaN -> 0x7E00). */
LH_HD uint16_t lh_qm_float_to_half(float f)
{
    uint32_t x = lh_qm_f2u(f);
    uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7FFFFFFFu;
    if (ax >= 0x7F800000u) return (uint16_t)(sign | (ax > 0x7F800000u ? 0x7E00u : 0x7C00u));
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* >= 65520 rounds to inf */
    if (ax < 0x38800000u) {                                   /* below 2^-14: subnormal or 0 */
        if (ax <= 0x33000000u) return (uint16_t)sign;         /* <= 2^-25 ties to 0 */
        uint32_t e = ax >> 23, m = (ax & 0x7FFFFFu) | 0x800000u;
        uint32_t shift = 126u - e;
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t v = ax - 0x38000000u;
    uint32_t q = v >> 13, rem = v & 0x1FFFu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++;
    return (uint16_t)(sign | q);
}

/** Smallest fp16 >= x for finite x in [0, 65504]: a scale that still covers absmax. */
LH_HD uint16_t lh_qm_half_scale_up(float x)
{
    uint16_t h = lh_qm_float_to_half(x);
    if (lh_qm_half_to_float(h) < x) h++;
    return h;
}

/**
 * The square of a delta, for the RMS of scale clipping.  A float's square is
 * exact in double (24-bit significand squared fits in 53 bits), so a fused or
 * unfused accumulation gives the same sum; only the order of the additions
 * matters, and that is fixed (see the top of this file).
 */
LH_HD double lh_qm_sq(float d)
{
    return LH_DMUL((double)d, (double)d);
}

/**
 * The scale of a group under clipping, before fp16 rounding:
 * min(absmax, k * sqrt(sumsq / count)), for the group's absmax, the sum of
 * squares of its `count` values and clip_rms = k.  k <= 0 (no clipping) or an
 * empty group returns absmax itself.  The result never exceeds absmax: the
 * comparison is in double and float rounding is monotone.
 */
LH_HD float lh_qm_clip_scale(float absmax, double sumsq, double count, float k)
{
    if (!(k > 0.0f) || !(count > 0.0)) return absmax;
    double c = LH_DMUL((double)k, LH_DSQRT(LH_DDIV(sumsq, count)));
    return c < (double)absmax ? (float)c : absmax;
}

/** 1/scale, or 0 for a zero scale (everything then decodes to 0). */
LH_HD float lh_qm_inv_scale(float s)
{
    return s > 0.0f ? 1.0f / s : 0.0f;
}

#endif
