// The operator math of lossgen: value and derivative of every op code, and the clamp modes.
//
// The one source of truth for the CPU and CUDA kernels (both include this header), so they
// cannot drift apart. The rules mirror PyTorch autograd applied to lossgen/kernels/reference.py:
//   * Log, Reciprocal and Sqrt come in two smoothings (template flag Smooth, see below);
//   * abs(x) has derivative 0 at x = 0;
//   * Max/Min split the derivative in half at ties;
//   * Exp reads min(x, 80) so it never overflows;
//   * clamping passes the derivative on the closed interval [lo, hi].
// Derivatives are forward mode with respect to y_hat: d(slot) for the inputs is 1, 0, 0.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define LG_HD __host__ __device__ __forceinline__
#else
#define LG_HD inline
#endif

namespace lossgen {

enum OpCode : int32_t {
  kAdd = 0,
  kMul = 1,
  kMax = 2,
  kMin = 3,
  kNeg = 4,
  kIdentity = 5,
  kLog = 6,
  kSquare = 7,
  kReciprocal = 8,
  kSigmoid = 9,
  kTanh = 10,
  kRelu = 11,
  kAbs = 12,
  kSqrt = 13,
  kExp = 14,
  kNumOps = 15,
};

enum ClampMode : int32_t { kClampPaper = 0, kClampOfficial = 1, kClampSymmetric = 2, kNumClampModes = 3 };

constexpr int kInputSlots = 3;   // y_hat, y, 1
constexpr int kMaxSteps = 13;    // longest program the kernels take (DESIGN default is 7)
constexpr int kMaxSlots = kInputSlots + kMaxSteps;
constexpr float kXi = 1e-6f;
// The "no per-candidate epsilon" marker of the evaluators' eps arguments: the paper's smoothing.
// A real epsilon is always > 0 (the op layer refuses anything else).
constexpr float kPaperEps = 0.0f;
constexpr float kExpInputMax = 80.0f;

LG_HD constexpr int op_arity(int op) { return op <= kMin ? 2 : 1; }

// Human-readable names, in op-code order (must match lossgen/opset.py; a test checks).
constexpr const char* kOpNames[kNumOps] = {"Add", "Mul", "Max", "Min", "Neg", "Identity", "Log", "Square",
                                           "Reciprocal", "Sigmoid", "Tanh", "ReLU", "Abs", "Sqrt", "Exp"};

template <int Mode>
struct ClampBounds;
template <>
struct ClampBounds<kClampPaper> {
  static constexpr float lo = 1e-6f;
  static constexpr float hi = 1e6f;
};
template <>
struct ClampBounds<kClampOfficial> {
  static constexpr float lo = 1e-5f;
  static constexpr float hi = 1e5f;
};
template <>
struct ClampBounds<kClampSymmetric> {
  static constexpr float lo = -1e6f;
  static constexpr float hi = 1e6f;
};

// Written as two selects (not an int difference) so that CPU loops vectorize it.
LG_HD float sign_of(float x) { return (x > 0.0f ? 1.0f : 0.0f) - (x < 0.0f ? 1.0f : 0.0f); }

// Smoothing of Log, Reciprocal and Sqrt (f = log, 1/., sqrt), chosen by the template flag Smooth:
//   * Smooth = false, the paper's: sign(x) * f(|x| + xi) with sign(0) = 0, so the value and the
//     derivative at x = 0 are 0 (autograd of torch.sign and torch.abs);
//   * Smooth = true, a candidate's epsilon e > 0: s(x) * f(|x| + e) with s(x) = +1 for x >= 0 and
//     -1 for x < 0, so f(0) = f(e) (Reciprocal(0) = 1 / e, Log(0) = log(e)). |x| is x * s(x), whose
//     derivative is s(x) (+1 at 0): the derivative is the one-sided limit from the right at 0,
//     Log' = 1 / (|x| + e), Reciprocal' = -1 / (|x| + e)^2, Sqrt' = 1 / (2 sqrt(|x| + e)) everywhere.
// e is ignored when Smooth is false. Other ops ignore both.
LG_HD float sign_nonneg(float x) { return x >= 0.0f ? 1.0f : -1.0f; }

// The ops whose value depends on the smoothing.
LG_HD constexpr bool op_is_smoothed(int op) { return op == kLog || op == kReciprocal || op == kSqrt; }

// Clamp v to the mode's bounds; the derivative survives only inside [lo, hi] (inclusive).
template <int Mode>
LG_HD void clamp_result(float& v, float& d) {
  constexpr float lo = ClampBounds<Mode>::lo;
  constexpr float hi = ClampBounds<Mode>::hi;
  const bool inside = (v >= lo) & (v <= hi);
  d = inside ? d : 0.0f;
  v = v < lo ? lo : (v > hi ? hi : v);
}

template <int Mode>
LG_HD float clamp_value(float v) {
  constexpr float lo = ClampBounds<Mode>::lo;
  constexpr float hi = ClampBounds<Mode>::hi;
  return v < lo ? lo : (v > hi ? hi : v);
}

// Unclamped value of op Op at (a, b). b is ignored by unary ops; e only by Smooth Log/Reciprocal/Sqrt.
template <int Op, bool Smooth = false>
LG_HD float op_value(float a, float b, float e = kXi) {
  if constexpr (Smooth && Op == kLog) return sign_nonneg(a) * logf(fabsf(a) + e);
  if constexpr (Smooth && Op == kReciprocal) return sign_nonneg(a) / (fabsf(a) + e);
  if constexpr (Smooth && Op == kSqrt) return sign_nonneg(a) * sqrtf(fabsf(a) + e);
  if constexpr (Op == kAdd) return a + b;
  if constexpr (Op == kMul) return a * b;
  if constexpr (Op == kMax) return a > b ? a : b;
  if constexpr (Op == kMin) return a < b ? a : b;
  if constexpr (Op == kNeg) return -a;
  if constexpr (Op == kIdentity) return a;
  if constexpr (Op == kLog) return sign_of(a) * logf(fabsf(a) + kXi);
  if constexpr (Op == kSquare) return a * a;
  if constexpr (Op == kReciprocal) return sign_of(a) / (fabsf(a) + kXi);
  if constexpr (Op == kSigmoid) return 1.0f / (1.0f + expf(-a));
  if constexpr (Op == kTanh) return tanhf(a);
  if constexpr (Op == kRelu) return a > 0.0f ? a : 0.0f;
  if constexpr (Op == kAbs) return fabsf(a);
  if constexpr (Op == kSqrt) return sign_of(a) * sqrtf(fabsf(a) + kXi);
  if constexpr (Op == kExp) return expf(a < kExpInputMax ? a : kExpInputMax);
  return 0.0f;
}

// Unclamped value v and derivative d of op Op, given the operands and their derivatives.
template <int Op, bool Smooth = false>
LG_HD void op_forward(float a, float da, float b, float db, float& v, float& d, float e = kXi) {
  if constexpr (Smooth && Op == kLog) {
    const float den = fabsf(a) + e;
    v = sign_nonneg(a) * logf(den);
    d = da / den;
  } else if constexpr (Smooth && Op == kReciprocal) {
    const float den = fabsf(a) + e;
    v = sign_nonneg(a) / den;
    d = -da / (den * den);
  } else if constexpr (Smooth && Op == kSqrt) {
    const float r = sqrtf(fabsf(a) + e);
    v = sign_nonneg(a) * r;
    d = da / (2.0f * r);
  } else if constexpr (Op == kAdd) {
    v = a + b;
    d = da + db;
  } else if constexpr (Op == kMul) {
    v = a * b;
    d = da * b + db * a;
  } else if constexpr (Op == kMax || Op == kMin) {
    const bool pick_a = (Op == kMax) ? (a > b) : (a < b);
    v = pick_a ? a : b;
    d = (a == b) ? 0.5f * (da + db) : (pick_a ? da : db);
  } else if constexpr (Op == kNeg) {
    v = -a;
    d = -da;
  } else if constexpr (Op == kIdentity) {
    v = a;
    d = da;
  } else if constexpr (Op == kLog) {
    const float den = fabsf(a) + kXi;
    v = sign_of(a) * logf(den);
    d = (a != 0.0f) ? da / den : 0.0f;
  } else if constexpr (Op == kSquare) {
    v = a * a;
    d = 2.0f * a * da;
  } else if constexpr (Op == kReciprocal) {
    const float den = fabsf(a) + kXi;
    v = sign_of(a) / den;
    d = (a != 0.0f) ? -da / (den * den) : 0.0f;
  } else if constexpr (Op == kSigmoid) {
    const float s = 1.0f / (1.0f + expf(-a));
    v = s;
    d = da * (1.0f - s) * s;
  } else if constexpr (Op == kTanh) {
    const float t = tanhf(a);
    v = t;
    d = da * (1.0f - t * t);
  } else if constexpr (Op == kRelu) {
    v = a > 0.0f ? a : 0.0f;
    d = a > 0.0f ? da : 0.0f;
  } else if constexpr (Op == kAbs) {
    v = fabsf(a);
    d = sign_of(a) * da;
  } else if constexpr (Op == kSqrt) {
    const float r = sqrtf(fabsf(a) + kXi);
    v = sign_of(a) * r;
    d = (a != 0.0f) ? da / (2.0f * r) : 0.0f;
  } else if constexpr (Op == kExp) {
    const float e = expf(a < kExpInputMax ? a : kExpInputMax);
    v = e;
    d = (a <= kExpInputMax) ? da * e : 0.0f;
  }
}

}  // namespace lossgen
