/*
 * lh_math: the element-wise math of the model, written once and compiled both
 * by the C compiler (CPU layers in lh_layers.c) and by nvcc (train/cuda/).
 *
 * Why a shared header: the CPU and CUDA backends must agree bit-for-bit on the
 * definitions (which GELU approximation, where epsilon goes in AdamW, how the
 * LayerNorm statistics are formed), and the simplest way to guarantee that is to
 * have only one definition.  The CPU gradient checks and golden tests therefore
 * also cover the formulas the GPU kernels use; the kernels only add the
 * parallel reductions around them.
 */
#ifndef LH_MATH_H
#define LH_MATH_H

#include <math.h>

#if defined(__CUDACC__)
#define LH_HD __host__ __device__ __forceinline__
#else
#define LH_HD static inline
#endif

/* LayerNorm epsilon, as in GPT-2 (and llm.c). */
#define LH_LAYERNORM_EPS 1e-5f

/* sqrt(2/pi), the constant of GPT-2's tanh approximation of GELU. */
#define LH_GELU_SCALE 0.7978845608028654f

/**
 * e^x in pure float arithmetic (Cody-Waite reduction by ln 2 and Cephes'
 * degree-6 polynomial, max error about 2 ulp), so that GCC can vectorise loops
 * calling it; libm's expf/tanhf are scalar calls without -ffast-math and were a
 * third of a training step's time on the CPU.  Inputs are clamped to
 * [-87.3, 88.3], the range where the result is a normal float (NaN maps to
 * the lower bound; non-finite values are caught upstream by the loss and the
 * gradient-norm check).
 */
LH_HD float lh_expf(float x)
{
    x = x > -87.3f ? x : -87.3f; /* written so that NaN also clamps: no undefined float->int below */
    x = x < 88.3f ? x : 88.3f;
    /* k = round(x / ln2) by the 1.5 * 2^23 trick (exact without -ffast-math reassociation) */
    float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - k * 0.693145751953125f - k * 1.428606765330187e-06f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int bits = ((int)k + 127) << 23; /* 2^k as a float */
#if defined(__CUDA_ARCH__)
    float scale = __int_as_float(bits);
#else
    float scale;
    __builtin_memcpy(&scale, &bits, sizeof scale);
#endif
    return p * scale;
}

/** tanh(x) = 1 - 2 / (e^{2x} + 1), saturating correctly at +-1 for large |x|. */
LH_HD float lh_tanhf(float x)
{
    return 1.0f - 2.0f / (lh_expf(2.0f * x) + 1.0f);
}

/** GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
LH_HD float lh_gelu(float x)
{
    float cube = 0.044715f * x * x * x;
    return 0.5f * x * (1.0f + lh_tanhf(LH_GELU_SCALE * (x + cube)));
}

/** d gelu(x) / dx for the approximation above (sech^2 = 1 - tanh^2). */
LH_HD float lh_gelu_grad(float x)
{
    float cube = 0.044715f * x * x * x;
    float tanh_out = lh_tanhf(LH_GELU_SCALE * (x + cube));
    float sech2 = 1.0f - tanh_out * tanh_out;
    return 0.5f * (1.0f + tanh_out) + x * 0.5f * sech2 * LH_GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
}

/** 1 / sqrt(variance + eps): the LayerNorm reciprocal standard deviation. */
LH_HD float lh_layernorm_rstd(float variance)
{
    return 1.0f / sqrtf(variance + LH_LAYERNORM_EPS);
}

/**
 * One AdamW update of a single parameter (decoupled weight decay, as in
 * Loshchilov & Hutter and PyTorch's AdamW): m and v are updated in place and
 * the new parameter value is returned.  beta1_correction = 1 - beta1^t and
 * beta2_correction = 1 - beta2^t for the 1-based step t.
 */
LH_HD float lh_adamw_update(float param, float grad, float *m, float *v, float lr, float beta1, float beta2,
                            float eps, float weight_decay, float beta1_correction, float beta2_correction)
{
    float m_new = beta1 * *m + (1.0f - beta1) * grad;
    float v_new = beta2 * *v + (1.0f - beta2) * grad * grad;
    *m = m_new;
    *v = v_new;
    float m_hat = m_new / beta1_correction;
    float v_hat = v_new / beta2_correction;
    return param - lr * (m_hat / (sqrtf(v_hat) + eps) + weight_decay * param);
}

#endif
