// CUDA kernels: one thread block per (candidate, chunk of points), so every lane of a warp runs
// the same program and decodes the same op (no divergence); the program sits in shared memory,
// the slots (at most 10 for the default 7 steps) in registers, several points per thread.
#include "cuda/eval_cuda.cuh"
#include "op_math.h"

namespace lossgen::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kMaxChunks = 65535;  // grid.y limit

// Copies slot `idx` (< limit) of every point into (ov, od). The loop is unrolled and `limit` is a
// compile-time constant after unrolling, so the slots stay in registers (selects, no local memory).
template <int NS, int PPT>
__device__ __forceinline__ void read_slot(const float (&v)[NS][PPT], const float (&d)[NS][PPT], int idx, int limit,
                                          float (&ov)[PPT], float (&od)[PPT]) {
#pragma unroll
  for (int p = 0; p < PPT; ++p) {
    ov[p] = v[0][p];
    od[p] = d[0][p];
  }
#pragma unroll
  for (int s = 1; s < NS; ++s) {
    if (s < limit && s == idx) {
#pragma unroll
      for (int p = 0; p < PPT; ++p) {
        ov[p] = v[s][p];
        od[p] = d[s][p];
      }
    }
  }
}

template <int Op, int Mode, bool WithGrad, int PPT, bool Smooth = false>
__device__ __forceinline__ void apply_op(const float (&va)[PPT], const float (&da)[PPT], const float (&vb)[PPT],
                                         const float (&db)[PPT], float (&vo)[PPT], float (&dout)[PPT],
                                         float e = kXi) {
#pragma unroll
  for (int p = 0; p < PPT; ++p) {
    if constexpr (WithGrad) {
      float v, d;
      op_forward<Op, Smooth>(va[p], da[p], vb[p], db[p], v, d, e);
      clamp_result<Mode>(v, d);
      vo[p] = v;
      dout[p] = d;
    } else {
      vo[p] = clamp_value<Mode>(op_value<Op, Smooth>(va[p], vb[p], e));
    }
  }
}

// Evaluates the block's program at PPT points per thread; NS = 3 + the longest L it handles.
// e: the candidate's smoothing epsilon (> 0), or kPaperEps; the branch on it is uniform per block.
template <int Mode, int NS, int PPT, bool WithGrad>
__device__ __forceinline__ void eval_points(const int32_t* prog, int num_steps, float e, float (&v)[NS][PPT],
                                            float (&d)[NS][PPT]) {
#pragma unroll
  for (int t = 0; t < NS - kInputSlots; ++t) {
    if (t < num_steps) {
      const int op = prog[3 * t], a = prog[3 * t + 1], b = prog[3 * t + 2];
      float va[PPT], da[PPT], vb[PPT], db[PPT];
      read_slot<NS, PPT>(v, d, a, kInputSlots + t, va, da);
      if (op_arity(op) == 2) {
        read_slot<NS, PPT>(v, d, b, kInputSlots + t, vb, db);
      } else {
#pragma unroll
        for (int p = 0; p < PPT; ++p) vb[p] = db[p] = 0.0f;
      }
      float(&vo)[PPT] = v[kInputSlots + t];
      float(&dout)[PPT] = d[kInputSlots + t];
      switch (op) {
#define LG_CASE(OP)                                                   \
  case OP:                                                            \
    apply_op<OP, Mode, WithGrad, PPT>(va, da, vb, db, vo, dout); \
    break;
        LG_CASE(kAdd) LG_CASE(kMul) LG_CASE(kMax) LG_CASE(kMin) LG_CASE(kNeg) LG_CASE(kIdentity)
        LG_CASE(kSquare) LG_CASE(kSigmoid) LG_CASE(kTanh) LG_CASE(kRelu) LG_CASE(kAbs) LG_CASE(kExp)
#undef LG_CASE
#define LG_CASE(OP)                                                        \
  case OP:                                                                 \
    if (e > 0.0f) {                                                        \
      apply_op<OP, Mode, WithGrad, PPT, true>(va, da, vb, db, vo, dout, e); \
    } else {                                                               \
      apply_op<OP, Mode, WithGrad, PPT>(va, da, vb, db, vo, dout);         \
    }                                                                      \
    break;
        LG_CASE(kLog) LG_CASE(kReciprocal) LG_CASE(kSqrt)
#undef LG_CASE
      }
    }
  }
}

__device__ __forceinline__ bool finite(float x) { return (x - x) == 0.0f; }

// grid = (K, chunks). Each block walks its candidate's points in strides of kThreads * PPT.
// WithGrad: writes values and grads. Otherwise: writes the chunk's sum of values to partials.
template <int Mode, int NS, int PPT, bool WithGrad>
__global__ void __launch_bounds__(kThreads) eval_kernel(Problem p, float* values, float* grads, double* partials) {
  __shared__ int32_t prog[kMaxSteps * 3];
  __shared__ double warp_sums[kThreads / 32];
  const int64_t k = blockIdx.x;
  for (int i = threadIdx.x; i < p.num_steps * 3; i += blockDim.x) prog[i] = p.programs[k * p.num_steps * 3 + i];
  __syncthreads();

  const float e = p.eps == nullptr ? kPaperEps : p.eps[k];
  const float* y_hat = p.y_hat + k * p.y_hat_stride;
  const float* y = p.y + k * p.y_stride;
  const int64_t n = p.num_points;
  const int out_slot = kInputSlots + p.num_steps - 1;
  double acc = 0.0;
  int bad = 0;
  for (int64_t base = static_cast<int64_t>(blockIdx.y) * kThreads * PPT; base < n;
       base += static_cast<int64_t>(gridDim.y) * kThreads * PPT) {
    float v[NS][PPT], d[NS][PPT];
#pragma unroll
    for (int q = 0; q < PPT; ++q) {
      const int64_t i = base + q * kThreads + threadIdx.x;  // coalesced: lanes read neighbours
      const bool valid = i < n;
      v[0][q] = valid ? y_hat[i] : 0.5f;
      v[1][q] = valid ? y[i] : 0.0f;
      v[2][q] = 1.0f;
      d[0][q] = 1.0f;
      d[1][q] = 0.0f;
      d[2][q] = 0.0f;
      bad |= (!finite(v[0][q]) ? 1 : 0) | (!finite(v[1][q]) ? 2 : 0);
    }
    eval_points<Mode, NS, PPT, WithGrad>(prog, p.num_steps, e, v, d);
    float ov[PPT], od[PPT];
    read_slot<NS, PPT>(v, d, out_slot, NS, ov, od);
#pragma unroll
    for (int q = 0; q < PPT; ++q) {
      const int64_t i = base + q * kThreads + threadIdx.x;
      if (i < n) {
        if constexpr (WithGrad) {
          values[k * n + i] = ov[q];
          grads[k * n + i] = od[q];
        } else {
          acc += ov[q];
        }
      }
    }
  }
  if (bad) atomicOr(p.bad, bad);
  if constexpr (!WithGrad) {
    // Fixed-order tree reduction: deterministic.
    for (int offset = 16; offset > 0; offset /= 2) acc += __shfl_down_sync(0xffffffffu, acc, offset);
    if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
      double total = 0.0;
      for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
      partials[k * gridDim.y + blockIdx.y] = total;
    }
  }
}

template <int NS, int PPT>
int64_t chunks_for(const Problem& p) {
  const int64_t per_block = static_cast<int64_t>(kThreads) * PPT;
  const int64_t needed = (p.num_points + per_block - 1) / per_block;
  return needed < 1 ? 1 : (needed > kMaxChunks ? kMaxChunks : needed);
}

template <int NS, int PPT, bool WithGrad>
cudaError_t launch_shape(const Problem& p, float* values, float* grads, double* partials, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(p.num_candidates), static_cast<unsigned>(chunks_for<NS, PPT>(p)));
  switch (p.clamp) {
    case kClampPaper:
      eval_kernel<kClampPaper, NS, PPT, WithGrad><<<grid, kThreads, 0, stream>>>(p, values, grads, partials);
      break;
    case kClampOfficial:
      eval_kernel<kClampOfficial, NS, PPT, WithGrad><<<grid, kThreads, 0, stream>>>(p, values, grads, partials);
      break;
    default:
      eval_kernel<kClampSymmetric, NS, PPT, WithGrad><<<grid, kThreads, 0, stream>>>(p, values, grads, partials);
      break;
  }
  return cudaGetLastError();
}

// Programs of up to 7 steps (the DESIGN default) use 10 register slots x 4 points per thread;
// longer ones (up to kMaxSteps) 16 slots x 2 points, to stay within the register budget.
constexpr int kShortSteps = 7;

template <bool WithGrad>
cudaError_t launch(const Problem& p, float* values, float* grads, double* partials, cudaStream_t stream) {
  if (p.num_candidates == 0 || p.num_points == 0) return cudaSuccess;
  if (p.num_steps <= kShortSteps) {
    return launch_shape<kInputSlots + kShortSteps, 4, WithGrad>(p, values, grads, partials, stream);
  }
  return launch_shape<kMaxSlots, 2, WithGrad>(p, values, grads, partials, stream);
}

}  // namespace

cudaError_t launch_evaluate(const Problem& p, float* values, float* grads, cudaStream_t stream) {
  return launch<true>(p, values, grads, nullptr, stream);
}

int64_t loss_chunks(const Problem& p) {
  return p.num_steps <= kShortSteps ? chunks_for<kInputSlots + kShortSteps, 4>(p) : chunks_for<kMaxSlots, 2>(p);
}

cudaError_t launch_loss_partials(const Problem& p, double* partials, cudaStream_t stream) {
  return launch<false>(p, nullptr, nullptr, partials, stream);
}

}  // namespace lossgen::cuda
