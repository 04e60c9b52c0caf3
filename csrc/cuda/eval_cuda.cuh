// CUDA launchers for loss-program evaluation (raw pointers, no PyTorch dependency, so the
// sources also build in the native CMake project).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace lossgen::cuda {

// Input pointers are device pointers. y_hat/y rows of candidate k start at k * stride (stride 0
// broadcasts one row to every candidate). *bad (device int, zeroed by the caller) gets bit 1 when
// y_hat holds NaN/inf and bit 2 when y does.
struct Problem {
  const int32_t* programs;  // [K, L, 3]
  int64_t num_candidates;
  int num_steps;
  int clamp;
  const float* y_hat;
  int64_t y_hat_stride;
  const float* y;
  int64_t y_stride;
  int64_t num_points;
  int* bad;
  const float* eps;  // [K] smoothing epsilons (> 0), or nullptr: the paper's xi with sign(0) = 0
};

// values, grads: [K, N].
cudaError_t launch_evaluate(const Problem& p, float* values, float* grads, cudaStream_t stream);

// Fused mean: partials [K, chunks] of per-chunk sums; chunks_for(p) says how many.
int64_t loss_chunks(const Problem& p);
cudaError_t launch_loss_partials(const Problem& p, double* partials, cudaStream_t stream);

}  // namespace lossgen::cuda
