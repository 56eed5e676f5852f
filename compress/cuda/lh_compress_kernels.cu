/*
 * CUDA hot paths of the AQ-SGD codec: fused delta + quantize + pack + cache
 * update on the sender, fused unpack + dequantize + cache update on the
 * receiver.  On a GPU the activation and m(sample) already live in device
 * memory, so the whole step runs there and only the packed codes and scales
 * cross PCIe.
 *
 * The element math is lh_quant_math.h, the very functions the CPU runs
 * (__host__ __device__ here, with __fmul_rn/__fadd_rn so nothing is fused
 * into an FMA), and the tables are the same constants uploaded once to
 * constant memory, so a GPU sender and a CPU receiver (or the reverse) keep
 * bit-identical caches.  Each thread owns 8 consecutive elements, which pack
 * into exactly `bits` bytes of the wire stream, so no atomics are needed for
 * packing.  Scales go through the host (one small copy): the host checks for
 * NaN/Inf and fp16 overflow and rounds fp16 scales up with the CPU code.
 * With scale clipping (clip_rms > 0) a second small kernel sums the squares of
 * each column's deltas in double, one thread per column walking the rows in
 * order, which is the CPU encoder's order (lhq_absmax_sumsq_cols); squares of
 * floats are exact in double, so the sums, and with lh_qm_clip_scale on the
 * host the scales, equal the CPU's bit for bit.
 */
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "lh_compress.h"
#include "lh_quant_math.h"
#include "lh_quant_tables.h"

namespace
{

__constant__ float c_levels[2][510];
__constant__ float c_invgap[2][502];
__constant__ int16_t c_thr15[2][247];

cudaError_t upload_tables()
{
    cudaError_t e = cudaMemcpyToSymbol(c_levels, lh_tab_normal_levels, sizeof lh_tab_normal_levels, 0);
    if (e == cudaSuccess)
        e = cudaMemcpyToSymbol(c_levels, lh_tab_uniform_levels, sizeof lh_tab_uniform_levels,
                               sizeof(float) * 510);
    if (e == cudaSuccess)
        e = cudaMemcpyToSymbol(c_invgap, lh_tab_normal_invgap, sizeof lh_tab_normal_invgap, 0);
    if (e == cudaSuccess)
        e = cudaMemcpyToSymbol(c_invgap, lh_tab_uniform_invgap, sizeof lh_tab_uniform_invgap,
                               sizeof(float) * 502);
    if (e == cudaSuccess) e = cudaMemcpyToSymbol(c_thr15, lh_tab_normal_thr15, sizeof lh_tab_normal_thr15, 0);
    if (e == cudaSuccess)
        e = cudaMemcpyToSymbol(c_thr15, lh_tab_uniform_thr15, sizeof lh_tab_uniform_thr15,
                               sizeof(int16_t) * 247);
    /* the mids tables are not used on the device; keep the compiler from warning about them */
    (void)lh_tab_normal_mids;
    (void)lh_tab_uniform_mids;
    return e;
}

lh_status ensure_ready(const char *who)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        cudaGetLastError();
        return lh_fail(LH_ERR_UNSUPPORTED, "%s: no CUDA device is visible", who);
    }
    static cudaError_t uploaded = upload_tables(); /* once per process (C++11 static init is thread-safe) */
    if (uploaded != cudaSuccess)
        return lh_fail(LH_ERR_INTERNAL, "%s: uploading quantizer tables: %s", who,
                       cudaGetErrorString(uploaded));
    return LH_OK;
}

/* max |act - m| per channel into colmax (as float bits: non-negative floats order like integers) */
__global__ void colmax_kernel(const float *act, const float *m, size_t rows, size_t channels,
                              unsigned *colmax, int *bad)
{
    size_t c = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (c >= channels) return;
    float best = 0.0f;
    int nonfinite = 0;
    for (size_t r = blockIdx.y; r < rows; r += gridDim.y) {
        float a = fabsf(__fsub_rn(act[r * channels + c], m[r * channels + c]));
        if (!(a <= 3.4028235e38f))
            nonfinite = 1;
        else if (a > best)
            best = a;
    }
    atomicMax(&colmax[c], __float_as_uint(best));
    if (nonfinite) atomicExch(bad, 1);
}

/*
 * Scale clipping: colss[c] = sum over rows of lh_qm_sq(act - m), row after row,
 * exactly as the CPU encoder adds them (one thread per column; the rows are
 * read coalesced across the threads of a warp).
 */
__global__ void colsumsq_kernel(const float *act, const float *m, size_t rows, size_t channels, double *colss)
{
    size_t c = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (c >= channels) return;
    double s = 0.0;
    for (size_t r = 0; r < rows; r++)
        s = LH_DADD(s, lh_qm_sq(__fsub_rn(act[r * channels + c], m[r * channels + c])));
    colss[c] = s;
}

__global__ void encode_kernel(const float *act, float *m, size_t n_total, size_t elems, size_t channels,
                              int bits, int grid, const float *scales, const uint64_t *ids, uint64_t seed,
                              uint64_t step, uint8_t *codes_out)
{
    size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    size_t base = t * 8;
    if (base >= n_total) return;
    const float *levels = c_levels[grid] + lh_qm_level_offset(bits);
    const float *invgap = c_invgap[grid] + lh_qm_mid_offset(bits);
    const int16_t *thr = c_thr15[grid] + lh_qm_thr_offset(bits);
    size_t sample = base / elems;
    uint64_t key = ids ? lh_qm_key(seed, ids[sample], step) : 0;
    uint64_t word = 0;
    for (int k = 0; k < 8; k++) {
        size_t i = base + k;
        size_t c = i % channels;
        uint32_t e = (uint32_t)(i - sample * elems); /* index within the sample */
        float s = scales[c];
        float u = __fmul_rn(__fsub_rn(act[i], m[i]), lh_qm_inv_scale(s));
        int code = ids ? lh_qm_code_stochastic(u, levels, invgap, bits, lh_qm_uniform(lh_qm_hash(key, e)))
                       : lh_qm_code_nearest(u, thr, bits, e);
        word |= (uint64_t)code << (k * bits);
        m[i] = __fadd_rn(m[i], __fmul_rn(levels[code], s));
    }
    uint8_t *dst = codes_out + t * (size_t)bits;
    for (int j = 0; j < bits; j++)
        dst[j] = (uint8_t)(word >> (8 * j));
}

__global__ void decode_kernel(const uint8_t *codes, const float *scales, float *m, float *act_out,
                              size_t n_total, size_t channels, int bits, int grid)
{
    size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    size_t base = t * 8;
    if (base >= n_total) return;
    const float *levels = c_levels[grid] + lh_qm_level_offset(bits);
    const uint8_t *src = codes + t * (size_t)bits;
    uint64_t word = 0;
    for (int j = 0; j < bits; j++)
        word |= (uint64_t)src[j] << (8 * j);
    const unsigned mask = (1u << bits) - 1u;
    for (int k = 0; k < 8; k++) {
        size_t i = base + k;
        int code = (int)((word >> (k * bits)) & mask);
        float v = __fadd_rn(m[i], __fmul_rn(levels[code], scales[i % channels]));
        m[i] = v;
        if (act_out) act_out[i] = v;
    }
}

lh_status cuda_error(const char *who, cudaError_t e)
{
    return lh_fail(LH_ERR_COMM, "%s: CUDA: %s", who, cudaGetErrorString(e));
}

lh_status check_args(const char *who, size_t n_samples, size_t sample_rows, size_t channels, int bits,
                     lh_grid grid)
{
    if (bits < 1 || bits > 8) return lh_fail(LH_ERR_INVALID_ARG, "%s: bits must be 1..8, got %d", who, bits);
    if (grid != LH_GRID_NORMAL && grid != LH_GRID_UNIFORM)
        return lh_fail(LH_ERR_INVALID_ARG, "%s: unknown grid %d", who, (int)grid);
    if (n_samples == 0 || sample_rows == 0 || channels == 0 || (sample_rows * channels) % 8 != 0 ||
        sample_rows * channels > UINT32_MAX)
        return lh_fail(LH_ERR_INVALID_ARG,
                       "%s: samples of %zu x %zu values must be non-empty, a multiple of 8 "
                       "and under 2^32",
                       who, sample_rows, channels);
    return LH_OK;
}

} // namespace

extern "C" int lh_compress_cuda_available(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return count > 0;
}

extern "C" lh_status lh_compress_cuda_aq_encode(const float *d_act, float *d_m, size_t n_samples,
                                                size_t sample_rows, size_t channels, int bits, lh_grid grid,
                                                lh_scale_type scale_type, float clip_rms,
                                                const uint64_t *d_ids, uint64_t seed, uint64_t step,
                                                float *d_scales, uint8_t *d_codes, void *stream)
{
    const char *who = "cuda aq encode";
    lh_status st = check_args(who, n_samples, sample_rows, channels, bits, grid);
    if (st) return st;
    if (!(clip_rms >= 0.0f && clip_rms <= 3.4028235e38f))
        return lh_fail(LH_ERR_INVALID_ARG, "%s: clip_rms must be 0 or a finite k > 0, got %g", who,
                       (double)clip_rms);
    if ((st = ensure_ready(who))) return st;
    cudaStream_t s = (cudaStream_t)stream;
    size_t rows = n_samples * sample_rows, n_total = rows * channels;
    const bool clip = clip_rms > 0.0f;
    int *d_bad = nullptr;
    double *d_ss = nullptr;
    cudaError_t e = cudaMallocAsync(&d_bad, sizeof(int), s);
    if (e != cudaSuccess) return cuda_error(who, e);
    if (clip && (e = cudaMallocAsync(&d_ss, channels * sizeof(double), s)) != cudaSuccess) {
        cudaFreeAsync(d_bad, s);
        return cuda_error(who, e);
    }
    std::vector<float> host(channels);
    std::vector<double> host_ss(clip ? channels : 0);
    int bad = 0;
    /* absmax per channel, written as float bits into d_scales */
    e = cudaMemsetAsync(d_scales, 0, channels * sizeof(float), s);
    if (e == cudaSuccess) e = cudaMemsetAsync(d_bad, 0, sizeof(int), s);
    if (e == cudaSuccess) {
        dim3 block(256), grid2((unsigned)((channels + 255) / 256), (unsigned)(rows < 256 ? rows : 256));
        colmax_kernel<<<grid2, block, 0, s>>>(d_act, d_m, rows, channels, (unsigned *)d_scales, d_bad);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess && clip) {
        colsumsq_kernel<<<(unsigned)((channels + 127) / 128), 128, 0, s>>>(d_act, d_m, rows, channels, d_ss);
        e = cudaGetLastError();
        if (e == cudaSuccess)
            e = cudaMemcpyAsync(host_ss.data(), d_ss, channels * sizeof(double), cudaMemcpyDeviceToHost, s);
    }
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(host.data(), d_scales, channels * sizeof(float), cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess) e = cudaMemcpyAsync(&bad, d_bad, sizeof(int), cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    cudaFreeAsync(d_bad, s);
    if (d_ss) cudaFreeAsync(d_ss, s);
    if (e != cudaSuccess) return cuda_error(who, e);
    if (bad) return lh_fail(LH_ERR_INVALID_ARG, "%s: activation delta has NaN or Inf", who);
    for (size_t c = 0; c < channels; c++) {
        if (clip) host[c] = lh_qm_clip_scale(host[c], host_ss[c], (double)rows, clip_rms);
        if (scale_type == LH_SCALE_FP16) {
            if (host[c] > 65504.0f)
                return lh_fail(LH_ERR_INVALID_ARG,
                               "%s: scale %g exceeds the fp16 scale range; use fp32 scales", who, host[c]);
            host[c] = lh_qm_half_to_float(lh_qm_half_scale_up(host[c]));
        }
    }
    e = cudaMemcpyAsync(d_scales, host.data(), channels * sizeof(float), cudaMemcpyHostToDevice, s);
    if (e != cudaSuccess) return cuda_error(who, e);
    size_t threads = n_total / 8;
    encode_kernel<<<(unsigned)((threads + 255) / 256), 256, 0, s>>>(
        d_act, d_m, n_total, sample_rows * channels, channels, bits, (int)grid, d_scales, d_ids, seed, step,
        d_codes);
    e = cudaGetLastError();
    if (e == cudaSuccess) e = cudaStreamSynchronize(s); /* host vector must outlive the copy */
    if (e != cudaSuccess) return cuda_error(who, e);
    return LH_OK;
}

extern "C" lh_status lh_compress_cuda_aq_decode(const uint8_t *d_codes, const float *d_scales, float *d_m,
                                                float *d_act_out, size_t n_samples, size_t sample_rows,
                                                size_t channels, int bits, lh_grid grid, void *stream)
{
    const char *who = "cuda aq decode";
    lh_status st = check_args(who, n_samples, sample_rows, channels, bits, grid);
    if (st) return st;
    if ((st = ensure_ready(who))) return st;
    cudaStream_t s = (cudaStream_t)stream;
    size_t n_total = n_samples * sample_rows * channels, threads = n_total / 8;
    decode_kernel<<<(unsigned)((threads + 255) / 256), 256, 0, s>>>(d_codes, d_scales, d_m, d_act_out,
                                                                    n_total, channels, bits, (int)grid);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return cuda_error(who, e);
    return LH_OK;
}
