/*
 * An emulated CUDA device for tests: fake_cuda.c implements the lh_cuda_* API
 * of train/cuda/lh_train_cuda.h with the CPU layers of lh_layers.h, so the
 * CUDA stage's orchestration (lh_model.c + lh_model_cuda.c: memory plan,
 * pointer arithmetic, when host and device copies are synchronised) runs and
 * is checked on a machine without a GPU.  Its results equal the CPU stage's
 * bit for bit, so a test can demand exact equality.
 *
 * To catch the bugs a real device would show:
 *  - "device memory" is a registry of allocations filled with NaN when
 *    allocated (cudaMalloc returns garbage): reading something never written
 *    poisons the result;
 *  - every pointer a layer call or copy receives is checked: device
 *    arguments must lie, with their whole extent, inside one device
 *    allocation, and host arguments must not be device memory.  A violation is
 *    printed and counted (lh_fake_cuda_violations).
 * Copies and zeroing are logged by kind and size (lh_fake_cuda_count), and a
 * failure can be injected into a later call (lh_fake_cuda_fail_in).
 */
#ifndef LH_FAKE_CUDA_H
#define LH_FAKE_CUDA_H

#include <stddef.h>

/** What lh_cuda_device_count reports (default 1). */
void lh_fake_cuda_set_devices(int count);

/** Pointer-domain violations seen since the start. */
int lh_fake_cuda_violations(void);

/** Forget the copy log. */
void lh_fake_cuda_reset_log(void);

/** Logged operations of `kind` ('u' upload, 'd' download, 'z' zero) of exactly `bytes` bytes since the reset. */
int lh_fake_cuda_count(char kind, size_t bytes);

/** Make the n-th following layer call (n >= 1) fail with LH_ERR_INTERNAL; 0 disarms. */
void lh_fake_cuda_fail_in(int n);

#endif
