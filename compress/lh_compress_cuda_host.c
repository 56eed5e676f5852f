/*
 * The CUDA entry points when this build has no kernels: they exist so callers
 * link the same way in every build, and they say plainly that the GPU path is
 * not compiled in (never a silent CPU fallback).
 */
#include "lh_compress.h"

#if !LH_COMPRESS_HAVE_CUDA
int lh_compress_cuda_available(void)
{
    return 0;
}

lh_status lh_compress_cuda_aq_encode(const float *d_act, float *d_m, size_t n_samples, size_t sample_rows,
                                     size_t channels, int bits, lh_grid grid, lh_scale_type scale_type,
                                     float clip_rms, const uint64_t *d_ids, uint64_t seed, uint64_t step,
                                     float *d_scales, uint8_t *d_codes, void *stream)
{
    return lh_fail(LH_ERR_UNSUPPORTED,
                   "compress: this build has no CUDA kernels (configure with LONGHAUL_CUDA=ON)");
}

lh_status lh_compress_cuda_aq_decode(const uint8_t *d_codes, const float *d_scales, float *d_m,
                                     float *d_act_out, size_t n_samples, size_t sample_rows, size_t channels,
                                     int bits, lh_grid grid, void *stream)
{
    return lh_fail(LH_ERR_UNSUPPORTED,
                   "compress: this build has no CUDA kernels (configure with LONGHAUL_CUDA=ON)");
}
#else
/* ISO C forbids an empty translation unit. */
typedef int lh_compress_cuda_host_unused;
#endif
