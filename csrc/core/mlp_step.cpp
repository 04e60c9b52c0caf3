#include "core/mlp_step.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#if defined(__AVX512F__)
// GCC 12 reports the _mm512_undefined_ps() inside some of these intrinsics as uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#include "core/eval_cpu.h"

namespace lossgen::mlp {
namespace {

constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ULL;
constexpr uint64_t kMix1 = 0xBF58476D1CE4E5B9ULL;
constexpr uint64_t kMix2 = 0x94D049BB133111EBULL;
constexpr uint32_t kDropBelow = 1677722;  // ceil(0.2 * 2^23): P(drop) = 0.20000005
constexpr uint32_t kMantissa = 0x007FFFFF;
constexpr float kKeepScale = 1.25f;  // 1 / (1 - 0.2), exactly
constexpr double kRenormalizeBelow = 1e-3;
constexpr int kLanes = 16;                         // floats per vector
constexpr int kTileCols = 4 * kLanes;              // columns per product tile
constexpr int kDraws = (kHidden1 + kHidden2) / 2;  // 64-bit dropout draws per example

static_assert(kHidden1 % kLanes == 0 && kHidden2 % kLanes == 0, "hidden widths must be multiples of 16");

// ------------------------------------------------------------------ vectors
// 16 floats (GCC vector extensions: one AVX-512 register here, two AVX or four SSE registers
// elsewhere). Element-wise code is written with them so that it vectorizes whatever the compiler
// makes of the scalar loops; -ffp-contract=off keeps a * b + c two roundings, as PyTorch's.
// (-Wpsabi: without AVX-512 GCC notes that passing them changes the ABI; these functions are
// internal to this file.)
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float vf __attribute__((vector_size(64)));
typedef float vf_unaligned __attribute__((vector_size(64), aligned(4)));
typedef uint32_t vu32 __attribute__((vector_size(64)));
typedef uint64_t vu64 __attribute__((vector_size(64)));

inline vf load(const float* p) { return *reinterpret_cast<const vf_unaligned*>(p); }
inline void store(float* p, vf v) { *reinterpret_cast<vf_unaligned*>(p) = v; }
inline vf splat(float x) { return vf{} + x; }
inline vf relu(vf y) { return y < vf{} ? vf{} : y; }  // NaN passes, as torch.relu

// ------------------------------------------------------------------ products
// The step's matrix products C = A B run tile by tile: R rows of A times the rows of B over up to
// 64 columns. Row r of A is a pointer a[r] with element k at a[r][k * sa] (sa = 1: a row; sa > 1:
// a column of a row-major matrix), in one or two segments (the concatenated user and item rows
// are two: k < k1 from a, the rest from a2); brow.row(k) points at row k of B. A tile's results go to
// an epilogue functor epi(row in tile, values), which stores them or applies an update. With
// AVX-512 a tile accumulates in 512-bit registers with fused multiply-adds (results round like a
// BLAS product's, not bit for bit like it); without, in plain loops.

// B's rows: a row-major matrix (row k at p + k ld) ...
struct Strided {
  const float* p;
  int64_t ld;
  const float* row(int64_t k) const { return p + k * ld; }
  Strided from(int64_t c0) const { return {p + c0, ld}; }
};

// ... or rows anywhere (the embedding rows of a batch), from column offset on.
struct Gathered {
  float* const* rows;
  int64_t offset;
  const float* row(int64_t k) const { return rows[k] + offset; }
  Gathered from(int64_t c0) const { return {rows, offset + c0}; }
};

template <int R, int NV, class BRows, class Epi>
inline void tile(const float* const* a, const float* const* a2, int64_t sa, int64_t k1, int64_t k2, const BRows brow,
                 int width, int rows, Epi&& epi) {
#if defined(__AVX512F__)
  __m512 acc[R][NV];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  const int rest = width - kLanes * (NV - 1);
  const __mmask16 last = rest >= kLanes ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << rest) - 1);
#pragma GCC unroll 2
  for (int segment = 0; segment < 2; ++segment) {
    const float* ap[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) ap[r] = segment == 0 ? a[r] : a2[r];
    const int64_t k0 = segment == 0 ? 0 : k1, kn = segment == 0 ? k1 : k2;
    for (int64_t k = 0; k < kn; ++k) {
      const float* bk = brow.row(k0 + k);
      __m512 bv[NV];
#pragma GCC unroll 4
      for (int v = 0; v < NV - 1; ++v) bv[v] = _mm512_loadu_ps(bk + kLanes * v);
      bv[NV - 1] = _mm512_maskz_loadu_ps(last, bk + kLanes * (NV - 1));
      const int64_t at = k * sa;
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m512 ar = _mm512_set1_ps(ap[r][at]);
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
      }
    }
  }
  alignas(64) float out[NV * kLanes];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {  // unrolled over R, so that acc stays in registers
    if (r >= rows) break;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_store_ps(out + kLanes * v, acc[r][v]);
    epi(r, static_cast<const float*>(out));
  }
#else
  alignas(64) float acc[R][NV * kLanes] = {};
  for (int segment = 0; segment < 2; ++segment) {
    const int64_t k0 = segment == 0 ? 0 : k1, kn = segment == 0 ? k1 : k2;
    for (int64_t k = 0; k < kn; ++k) {
      const float* bk = brow.row(k0 + k);
      for (int r = 0; r < R; ++r) {
        const float ar = (segment == 0 ? a[r] : a2[r])[k * sa];
        for (int c = 0; c < width; ++c) acc[r][c] += ar * bk[c];
      }
    }
  }
  for (int r = 0; r < rows; ++r) epi(r, static_cast<const float*>(acc[r]));
#endif
}

// C [m, n] = A [m, k1 + k2] B [k1 + k2, n]: a_row(i) points at row i's first value, a2_row(i) at
// its value k1 (k2 may be 0), sa is the step between a row's values, brow holds B's rows (Strided
// or Gathered). epi(i, c0, width, values) receives row i's results for columns c0 .. c0 + width - 1.
template <int R, class ARow, class ARow2, class BRows, class Epi>
void product(int64_t m, const ARow& a_row, const ARow2& a2_row, int64_t sa, int64_t k1, int64_t k2, int64_t n,
             const BRows brow, const Epi& epi) {
  for (int64_t c0 = 0; c0 < n; c0 += kTileCols) {
    const int width = static_cast<int>(std::min<int64_t>(kTileCols, n - c0));
    const BRows bcol = brow.from(c0);
    for (int64_t m0 = 0; m0 < m; m0 += R) {
      const int rows = static_cast<int>(std::min<int64_t>(R, m - m0));
      const float* a[R];
      const float* a2[R];
      for (int r = 0; r < R; ++r) {  // rows past the end repeat the last one; their results are dropped
        const int64_t i = m0 + std::min(r, rows - 1);
        a[r] = a_row(i);
        a2[r] = k2 > 0 ? a2_row(i) : nullptr;
      }
      const auto e = [&](int r, const float* values) { epi(m0 + r, c0, width, values); };
      switch ((width + kLanes - 1) / kLanes) {
        case 1:
          tile<R, 1>(a, a2, sa, k1, k2, bcol, width, rows, e);
          break;
        case 2:
          tile<R, 2>(a, a2, sa, k1, k2, bcol, width, rows, e);
          break;
        case 3:
          tile<R, 3>(a, a2, sa, k1, k2, bcol, width, rows, e);
          break;
        default:
          tile<R, 4>(a, a2, sa, k1, k2, bcol, width, rows, e);
      }
    }
  }
}

const auto kNoRows = [](int64_t) -> const float* { return nullptr; };

// Stores a product tile's row (width values) into out.
inline void put(float* out, const float* values, int width) {
  int c = 0;
  for (; c + kLanes <= width; c += kLanes) store(out + c, load(values + c));
  for (; c < width; ++c) out[c] = values[c];
}

// dst[c] = src[c] * decay + step * values[c] (two roundings each, as PyTorch's foreach ops).
inline void sgd_row(float* dst, const float* src, const float* values, int width, float decay, float step) {
  int c = 0;
  for (; c + kLanes <= width; c += kLanes) store(dst + c, load(src + c) * decay + step * load(values + c));
  for (; c < width; ++c) dst[c] = src[c] * decay + step * values[c];
}

// dst[c] += factor * values[c].
inline void add_row(float* dst, const float* values, int width, float factor) {
  int c = 0;
  for (; c + kLanes <= width; c += kLanes) store(dst + c, load(dst + c) + factor * load(values + c));
  for (; c < width; ++c) dst[c] += factor * values[c];
}

// out[c, r] = in[r, c] for r0 <= r < r1, c0 <= c < c1 (row strides ld_in and ld_out).
__attribute__((noinline)) void transpose_part(const float* in, int64_t ld_in, float* out, int64_t ld_out, int64_t r0,
                                              int64_t r1, int64_t c0, int64_t c1) {
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t c = c0; c < c1; ++c) out[c * ld_out + r] = in[r * ld_in + c];
  }
}

// out [cols, rows] (row stride ld_out) = in [rows, cols] (row stride ld_in) transposed.
void transpose(const float* in, int64_t rows, int64_t cols, int64_t ld_in, float* out, int64_t ld_out) {
  int64_t rows16 = 0, cols16 = 0;
#if defined(__AVX512F__)
  rows16 = rows / 16 * 16;
  cols16 = cols / 16 * 16;
  for (int64_t r0 = 0; r0 < rows16; r0 += 16) {
    for (int64_t c0 = 0; c0 < cols16; c0 += 16) {
      // a 16 x 16 block: interleave 32-bit, then 64-bit pairs within 128-bit lanes, then the lanes
      __m512 x[16], t[16];
      for (int i = 0; i < 16; ++i) x[i] = _mm512_loadu_ps(in + (r0 + i) * ld_in + c0);
      for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(x[2 * i], x[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(x[2 * i], x[2 * i + 1]);
      }
      for (int i = 0; i < 4; ++i) {
        x[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        x[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        x[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        x[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
      }
      for (int i = 0; i < 2; ++i) {
        for (int j = 0; j < 4; ++j) {
          t[8 * i + j] = _mm512_shuffle_f32x4(x[8 * i + j], x[8 * i + 4 + j], 0x88);
          t[8 * i + 4 + j] = _mm512_shuffle_f32x4(x[8 * i + j], x[8 * i + 4 + j], 0xDD);
        }
      }
      for (int j = 0; j < 8; ++j) {
        _mm512_storeu_ps(out + (c0 + j) * ld_out + r0, _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88));
        _mm512_storeu_ps(out + (c0 + 8 + j) * ld_out + r0, _mm512_shuffle_f32x4(t[j], t[8 + j], 0xDD));
      }
    }
  }
#endif
  if (cols16 < cols) transpose_part(in, ld_in, out, ld_out, 0, rows16, cols16, cols);
  if (rows16 < rows) transpose_part(in, ld_in, out, ld_out, rows16, rows, 0, cols);
}

// ------------------------------------------------------------------ batch norm
// Batch norm with batch statistics -> ReLU -> dropout on the pre-activation h [n, W] (its bias
// left out, since batch norm removes it) of an input stored divided by s (scaled = false: not).
// Overwrites h with the normalised activations xhat, writes out = relu(1.25 (g xhat + beta)) keep,
// r (the normaliser of the stored h) and gain = 1.25 g, and moves the running statistics.
template <int W>
void bn_forward(float* h, int n, float s, bool scaled, const float* bias, const float* g, const float* beta, float* rm,
                float* rv, const float* keep, float* out, float* r, float* gain) {
  constexpr int Q = W / kLanes;
  vf mean[Q] = {}, var[Q] = {};
  for (int b = 0; b < n; ++b) {
    for (int q = 0; q < Q; ++q) mean[q] += load(h + b * W + q * kLanes);
  }
  const float count = static_cast<float>(n);
  for (int q = 0; q < Q; ++q) mean[q] /= count;
  for (int b = 0; b < n; ++b) {
    for (int q = 0; q < Q; ++q) {
      const vf c = load(h + b * W + q * kLanes) - mean[q];
      store(h + b * W + q * kLanes, c);
      var[q] += c * c;
    }
  }
  const float s2 = s * s;
  const float unbiased = static_cast<float>(static_cast<double>(kBatchNormMomentum) * n / std::max(n - 1, 1));
  vf rq[Q], gq[Q], shift[Q];
  for (int q = 0; q < Q; ++q) {
    var[q] /= count;
    if (scaled) {  // the true pre-activation is s h + b
      mean[q] *= s;
      var[q] *= s2;
    }
    for (int i = 0; i < kLanes; ++i) rq[q][i] = 1.0f / std::sqrt(var[q][i] + kBatchNormEps);
    if (scaled) rq[q] *= s;  // normalises the stored-scale h
    float* rmq = rm + q * kLanes;
    float* rvq = rv + q * kLanes;
    store(rmq, load(rmq) * (1.0f - kBatchNormMomentum) + (mean[q] + load(bias + q * kLanes)) * kBatchNormMomentum);
    store(rvq, load(rvq) * (1.0f - kBatchNormMomentum) + var[q] * unbiased);
    // relu(y) keep / (1 - p) == relu(y / (1 - p)) keep: the dropout scale goes into the affine
    gq[q] = kKeepScale * load(g + q * kLanes);
    shift[q] = kKeepScale * load(beta + q * kLanes);
    store(r + q * kLanes, rq[q]);
    store(gain + q * kLanes, gq[q]);
  }
  for (int b = 0; b < n; ++b) {
    for (int q = 0; q < Q; ++q) {
      const int at = b * W + q * kLanes;
      const vf x = load(h + at) * rq[q];
      store(h + at, x);
      store(out + at, relu(shift[q] + x * gq[q]) * load(keep + at));
    }
  }
}

// Backward of bn_forward: grad [n, W] holds d out on entry and d h (the stored pre-activation) on
// return; writes d g and d beta.
template <int W>
void bn_backward(float* grad, const float* out, const float* xhat, const float* r, const float* gain, int n,
                 float* d_g, float* d_beta) {
  constexpr int Q = W / kLanes;
  vf gsum[Q] = {}, gxsum[Q] = {};
  for (int b = 0; b < n; ++b) {
    for (int q = 0; q < Q; ++q) {
      const int at = b * W + q * kLanes;
      // out > 0 exactly where the unit was kept and active (torch's threshold_backward: 0 where out <= 0)
      const vf gy = load(out + at) <= vf{} ? vf{} : load(grad + at);
      store(grad + at, gy);
      gsum[q] += gy;
      gxsum[q] += gy * load(xhat + at);
    }
  }
  const float minus_n = -static_cast<float>(n);
  vf a[Q], c1[Q], c2[Q];
  for (int q = 0; q < Q; ++q) {
    a[q] = load(r + q * kLanes) * load(gain + q * kLanes);
    c1[q] = gsum[q] * (a[q] / minus_n);
    c2[q] = gxsum[q] * (a[q] / minus_n);
    store(d_g + q * kLanes, gxsum[q] * kKeepScale);
    store(d_beta + q * kLanes, gsum[q] * kKeepScale);
  }
  // d h = r (dxhat - mean(dxhat) - xhat mean(dxhat xhat)) with dxhat = gain gy
  for (int b = 0; b < n; ++b) {
    for (int q = 0; q < Q; ++q) {
      const int at = b * W + q * kLanes;
      store(grad + at, (c1[q] + load(grad + at) * a[q]) + load(xhat + at) * c2[q]);
    }
  }
}

// ------------------------------------------------------------------ the step

// A thread's step buffers (64-byte aligned), for batches of up to cpu::kBlock and embeddings of
// dim values.
struct Workspace {
  int64_t dim;
  std::unique_ptr<float[]> memory;
  std::vector<float*> user_rows, item_rows;
  float *keep, *h1, *o1, *o1t, *g1, *h2, *h2t, *o2, *o2t, *g2, *w1, *w1t_a, *w1t_b, *w2t, *gw2t, *gw2, *score,
      *coef;

  explicit Workspace(int64_t dim) : dim(dim), user_rows(cpu::kBlock), item_rows(cpu::kBlock) {
    const int64_t b = cpu::kBlock, in = 2 * dim, u1 = kHidden1, u2 = kHidden2;
    const struct {
      float** buffer;
      int64_t size;
    } slots[] = {{&keep, b * (u1 + u2)}, {&h1, b * u1},     {&o1, b * u1},     {&o1t, b * u1},  {&g1, b * u1},
                 {&h2, b * u2},          {&h2t, b * u2},    {&o2, b * u2},     {&o2t, b * u2},  {&g2, b * u2},
                 {&w1, in * u1},         {&w1t_a, in * u1}, {&w1t_b, in * u1}, {&w2t, u1 * u2}, {&gw2t, u1 * u2},
                 {&gw2, u1 * u2},        {&score, b},       {&coef, b}};
    const auto padded = [](int64_t size) { return (size + kLanes - 1) / kLanes * kLanes; };
    int64_t total = kLanes;  // room to align the start
    for (const auto& slot : slots) total += padded(slot.size);
    memory.reset(new float[total]);
    float* at = memory.get();
    at += (kLanes - (reinterpret_cast<uintptr_t>(at) / sizeof(float)) % kLanes) % kLanes;
    for (const auto& slot : slots) {
      *slot.buffer = at;
      at += padded(slot.size);
    }
  }
};

// The calling thread's buffers (kept between calls: fresh ones would cost page faults each time).
Workspace& workspace(int64_t dim) {
  static thread_local std::unique_ptr<Workspace> cached;
  if (!cached || cached->dim != dim) cached = std::make_unique<Workspace>(dim);
  return *cached;
}

// Layer 1 pre-activation h1 [n, 64] = x W1 of the stored rows (the bias left out).
void layer1(const Params& p, Workspace& w, int n) {
  const int64_t d = p.dim;
  transpose(p.w1t, kHidden1, 2 * d, 2 * d, w.w1, kHidden1);  // W1 [2d, 64]
  product<6>(
      n, [&](int64_t b) { return w.user_rows[b]; }, [&](int64_t b) { return w.item_rows[b]; }, 1, d, d, kHidden1,
      Strided{w.w1, kHidden1},
      [&](int64_t b, int64_t c0, int width, const float* v) { put(w.h1 + b * kHidden1 + c0, v, width); });
}

// Layer 2 pre-activation h2 [n, 16] = o1 W2 (the bias left out), computed as h2^T = W2^T o1^T:
// 16 output columns would give a tile one vector per row, too few products per load. Leaves W2^T
// in w.w2t.
void layer2(const Params& p, Workspace& w, int n) {
  transpose(p.w2, kHidden1, kHidden2, kHidden2, w.w2t, kHidden1);
  transpose(w.o1, n, kHidden1, kHidden1, w.o1t, cpu::kBlock);
  product<4>(
      kHidden2, [&](int64_t m) { return w.w2t + m * kHidden1; }, kNoRows, 1, kHidden1, 0, n,
      Strided{w.o1t, cpu::kBlock},
      [&](int64_t m, int64_t c0, int width, const float* v) { put(w.h2t + m * cpu::kBlock + c0, v, width); });
  transpose(w.h2t, kHidden2, n, cpu::kBlock, w.h2, kHidden2);
}

// score = o2 w3 + b3 for n examples.
void layer3(const Params& p, Workspace& w, int n) {
  transpose(w.o2, n, kHidden2, kHidden2, w.o2t, cpu::kBlock);
  int b = 0;
  for (; b + kLanes <= n; b += kLanes) {
    vf s = {};
    for (int m = 0; m < kHidden2; ++m) s += load(w.o2t + m * cpu::kBlock + b) * p.w3[m];
    store(w.score + b, s + p.b3[0]);
  }
  for (; b < n; ++b) {
    float s = 0.0f;
    for (int m = 0; m < kHidden2; ++m) s += w.o2[b * kHidden2 + m] * p.w3[m];
    w.score[b] = s + p.b3[0];
  }
}

// One SGD step on a batch; returns false when the loss program refused the predictions. Writes
// the stepped W1^T into w1t_next (p.w1t, read by the step's products, stays as it was).
bool step(const Params& p, const Loss& loss, const int64_t* users, const int64_t* items, const float* labels, int n,
          double lr, double l2, Workspace& w, float* w1t_next, double* total) {
  const int64_t d = p.dim, in = 2 * d;
  const double s = *p.scale;
  const float sf = static_cast<float>(s);

  dropout_keep(p.rng_key, *p.steps, n, w.keep);
  ++*p.steps;
  const float* keep1 = w.keep;
  const float* keep2 = w.keep + n * kHidden1;
  for (int b = 0; b < n; ++b) {
    w.user_rows[b] = p.user_emb + users[b] * d;
    w.item_rows[b] = p.item_emb + items[b] * d;
  }

  // forward: the embedding rows are used as stored (divided by s); s goes into batch norm
  alignas(64) float r1[kHidden1], gain1[kHidden1], r2[kHidden2], gain2[kHidden2];
  layer1(p, w, n);
  bn_forward<kHidden1>(w.h1, n, sf, true, p.b1, p.g1, p.beta1, p.rm1, p.rv1, keep1, w.o1, r1, gain1);
  layer2(p, w, n);
  bn_forward<kHidden2>(w.h2, n, 1.0f, false, p.b2, p.g2, p.beta2, p.rm2, p.rv2, keep2, w.o2, r2, gain2);
  layer3(p, w, n);

  if (!score_gradients(loss, w.score, labels, n, w.coef, total)) return false;

  // backward, all from the parameters before the step
  alignas(64) float gw3[kHidden2], dg1[kHidden1], dbeta1[kHidden1], dg2[kHidden2], dbeta2[kHidden2];
  const vf w3 = load(p.w3);
  vf gw3v = {};
  float gb3 = 0.0f;
  for (int b = 0; b < n; ++b) {
    const float c = w.coef[b];
    gw3v += load(w.o2 + b * kHidden2) * c;
    store(w.g2 + b * kHidden2, c * w3);
    gb3 += c;
  }
  store(gw3, gw3v);
  bn_backward<kHidden2>(w.g2, w.o2, w.h2, r2, gain2, n, dg2, dbeta2);
  // d o1 = gh2 W2^T (W2^T from layer2); d W2^T = gh2^T o1 (gh2^T read as columns of gh2)
  product<6>(
      n, [&](int64_t b) { return w.g2 + b * kHidden2; }, kNoRows, 1, kHidden2, 0, kHidden1,
      Strided{w.w2t, kHidden1},
      [&](int64_t b, int64_t c0, int width, const float* v) { put(w.g1 + b * kHidden1 + c0, v, width); });
  product<4>(
      kHidden2, [&](int64_t m) { return w.g2 + m; }, kNoRows, kHidden2, n, 0, kHidden1,
      Strided{w.o1, kHidden1},
      [&](int64_t m, int64_t c0, int width, const float* v) { put(w.gw2t + m * kHidden1 + c0, v, width); });
  bn_backward<kHidden1>(w.g1, w.o1, w.h1, r1, gain1, n, dg1, dbeta1);
  // batch norm removes the hidden layers' biases: their gradient is exactly zero

  // update. W1 <- decay W1 - lr gh1^T x (x as stored: gh1 is the gradient of the stored-scale
  // pre-activation), into w1t_next; the stored rows move by -lr / (s s_next) gh1 W1^T, with W1
  // before the step (p.w1t).
  const float decay = static_cast<float>(1.0 - lr * l2);
  const float minus_lr = static_cast<float>(-lr);
  const double s_next = s * (1.0 - lr * l2);
  const float factor = static_cast<float>(-lr / (s * s_next));
  for (int part = 0; part < 2; ++part) {
    float* const* rows = part == 0 ? w.user_rows.data() : w.item_rows.data();
    product<6>(
        kHidden1, [&](int64_t j) { return w.g1 + j; }, kNoRows, kHidden1, n, 0, d,
        Gathered{rows, 0},
        [&](int64_t j, int64_t c0, int width, const float* v) {
          const int64_t at = j * in + part * d + c0;
          sgd_row(w1t_next + at, p.w1t + at, v, width, decay, minus_lr);
        });
  }
  for (int part = 0; part < 2; ++part) {
    float* const* rows = part == 0 ? w.user_rows.data() : w.item_rows.data();
    product<6>(
        n, [&](int64_t b) { return w.g1 + b * kHidden1; }, kNoRows, 1, kHidden1, 0, d,
        Strided{p.w1t + part * d, in},
        [&](int64_t b, int64_t c0, int width, const float* v) {
          // a row twice in the batch takes both updates, one after the other
          add_row(rows[b] + c0, v, width, factor);
        });
  }
  transpose(w.gw2t, kHidden2, kHidden1, kHidden1, w.gw2, kHidden2);
  for (int j = 0; j < kHidden1 * kHidden2; j += kLanes) {
    store(p.w2 + j, load(p.w2 + j) * decay + minus_lr * load(w.gw2 + j));
  }
  for (int q = 0; q < kHidden1; q += kLanes) {
    store(p.b1 + q, load(p.b1 + q) * decay);
    store(p.g1 + q, load(p.g1 + q) * decay + minus_lr * load(dg1 + q));
    store(p.beta1 + q, load(p.beta1 + q) * decay + minus_lr * load(dbeta1 + q));
  }
  store(p.b2, load(p.b2) * decay);
  store(p.g2, load(p.g2) * decay + minus_lr * load(dg2));
  store(p.beta2, load(p.beta2) * decay + minus_lr * load(dbeta2));
  store(p.w3, load(p.w3) * decay + minus_lr * load(gw3));
  p.b3[0] = p.b3[0] * decay + minus_lr * gb3;
  *p.scale = s_next;
  if (s_next < kRenormalizeBelow) renormalize(p);
  return true;
}

}  // namespace

void dropout_keep(uint64_t key, int64_t step, int batch, float* keep) {
  const uint64_t base = key + (static_cast<uint64_t>(step) << 32) * kGolden;
  const int draws = kDraws * batch;  // a multiple of 8 (kDraws is 40)
  vu64 j = {0, 1, 2, 3, 4, 5, 6, 7};
  const vu64 eight = vu64{} + 8;
  const vu32 mantissa = vu32{} + kMantissa, below = vu32{} + kDropBelow;
  for (int at = 0; at < draws; at += 8, j += eight) {
    vu64 x = base + j * kGolden;
    x ^= x >> 30;
    x *= kMix1;
    x ^= x >> 27;
    x *= kMix2;
    x ^= x >> 31;
    // the 32-bit halves, low half first (the order of the PyTorch stream's float32 view)
    const vu32 halves = (vu32)x & mantissa;
    store(keep + 2 * at, (halves >= below) ? splat(1.0f) : vf{});
  }
}

bool train_epoch(const Params& p, const Loss& loss, const int64_t* users, const int64_t* items, const float* labels,
                 int64_t n, int batch_size, double lr, double l2, double* mean_loss) {
  Workspace& w = workspace(p.dim);
  // W1^T lives in two workspace buffers during the epoch: a step reads one (its products need W1
  // before the step) and writes the other.
  const size_t w1_bytes = sizeof(float) * kHidden1 * 2 * p.dim;
  Params q = p;
  q.w1t = w.w1t_a;
  float* next = w.w1t_b;
  std::memcpy(q.w1t, p.w1t, w1_bytes);
  double total = 0.0;
  bool ok = true;
  for (int64_t start = 0; start < n && ok; start += batch_size) {
    const int size = static_cast<int>(std::min<int64_t>(batch_size, n - start));
    double summed = 0.0;
    ok = step(q, loss, users + start, items + start, labels + start, size, lr, l2, w, next, &summed);
    if (ok) {
      std::swap(q.w1t, next);
      total += summed;
    }
  }
  std::memcpy(p.w1t, q.w1t, w1_bytes);
  *mean_loss = total / static_cast<double>(n);
  return ok;
}

void predict(const Params& p, const int64_t* users, const int64_t* items, int64_t n, float* scores) {
  Workspace& w = workspace(p.dim);
  const vf s = splat(static_cast<float>(*p.scale));
  vf sd1[kHidden1 / kLanes], sd2[kHidden2 / kLanes];
  for (int q = 0; q < kHidden1 / kLanes; ++q) {
    for (int i = 0; i < kLanes; ++i) sd1[q][i] = std::sqrt(p.rv1[q * kLanes + i] + kBatchNormEps);
  }
  for (int q = 0; q < kHidden2 / kLanes; ++q) {
    for (int i = 0; i < kLanes; ++i) sd2[q][i] = std::sqrt(p.rv2[q * kLanes + i] + kBatchNormEps);
  }
  for (int64_t start = 0; start < n; start += cpu::kBlock) {
    const int size = static_cast<int>(std::min<int64_t>(cpu::kBlock, n - start));
    for (int b = 0; b < size; ++b) {
      w.user_rows[b] = p.user_emb + users[start + b] * p.dim;
      w.item_rows[b] = p.item_emb + items[start + b] * p.dim;
    }
    layer1(p, w, size);
    for (int b = 0; b < size; ++b) {
      for (int q = 0; q < kHidden1 / kLanes; ++q) {
        const int j = q * kLanes;
        const vf h = (s * load(w.h1 + b * kHidden1 + j) + load(p.b1 + j) - load(p.rm1 + j)) / sd1[q];
        store(w.o1 + b * kHidden1 + j, relu(h * load(p.g1 + j) + load(p.beta1 + j)));
      }
    }
    layer2(p, w, size);
    for (int b = 0; b < size; ++b) {
      for (int q = 0; q < kHidden2 / kLanes; ++q) {
        const int j = q * kLanes;
        const vf h = (load(w.h2 + b * kHidden2 + j) + load(p.b2 + j) - load(p.rm2 + j)) / sd2[q];
        store(w.o2 + b * kHidden2 + j, relu(h * load(p.g2 + j) + load(p.beta2 + j)));
      }
    }
    layer3(p, w, size);
    std::memcpy(scores + start, w.score, sizeof(float) * size);
  }
}

void renormalize(const Params& p) {
  const float s = static_cast<float>(*p.scale);
  for (int64_t j = 0; j < p.num_users * p.dim; ++j) p.user_emb[j] *= s;
  for (int64_t j = 0; j < p.num_items * p.dim; ++j) p.item_emb[j] *= s;
  *p.scale = 1.0;
}

}  // namespace lossgen::mlp
