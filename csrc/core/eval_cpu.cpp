// Node-by-node evaluation over a block of points: one switch per step, then a tight loop over
// the block that the compiler vectorizes (no interpreter dispatch per point).
#include "core/eval_cpu.h"

#include "op_math.h"

#if defined(LOSSGEN_USE_LIBMVEC)
// glibc's libmvec has vector variants of these functions; declaring them "simd" lets the
// compiler vectorize the Log/Exp/Sigmoid/Tanh loops (glibc's own headers do this only under
// -ffast-math, which we must not use: it would break the IEEE semantics of the clamps).
extern "C" {
#pragma omp declare simd notinbranch
float logf(float);
#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
float tanhf(float);
}
#endif

namespace lossgen::cpu {
namespace {

struct BlockConstants {
  alignas(64) float ones[kBlock];
  alignas(64) float zeros[kBlock];
  BlockConstants() {
    for (int i = 0; i < kBlock; ++i) {
      ones[i] = 1.0f;
      zeros[i] = 0.0f;
    }
  }
};

const BlockConstants& constants() {
  static const BlockConstants c;
  return c;
}

bool all_finite(const float* __restrict x, int n) {
  int bad = 0;
  for (int i = 0; i < n; ++i) bad |= !((x[i] - x[i]) == 0.0f);  // x - x is NaN for NaN and inf
  return bad == 0;
}

template <int Op, int Mode, bool Smooth>
void step_with_grad(const float* __restrict va, const float* __restrict da, const float* __restrict vb,
                    const float* __restrict db, float* __restrict vo, float* __restrict dout, int n, float e) {
  for (int i = 0; i < n; ++i) {
    float v, d;
    op_forward<Op, Smooth>(va[i], da[i], vb[i], db[i], v, d, e);
    clamp_result<Mode>(v, d);
    vo[i] = v;
    dout[i] = d;
  }
}

template <int Op, int Mode, bool Smooth>
void step_value(const float* __restrict va, const float* __restrict vb, float* __restrict vo, int n, float e) {
  for (int i = 0; i < n; ++i) vo[i] = clamp_value<Mode>(op_value<Op, Smooth>(va[i], vb[i], e));
}

#define LG_FOR_EACH_PLAIN_OP(X) \
  X(kAdd) X(kMul) X(kMax) X(kMin) X(kNeg) X(kIdentity) X(kSquare) X(kSigmoid) X(kTanh) X(kRelu) X(kAbs) X(kExp)
#define LG_FOR_EACH_SMOOTHED_OP(X) X(kLog) X(kReciprocal) X(kSqrt)

// e > 0: the candidate's epsilon (Smooth = true); e == kPaperEps: the paper's smoothing. Only Log,
// Reciprocal and Sqrt get a second instantiation, and the paper path runs exactly the code it
// always ran.
template <int Mode>
void dispatch_with_grad(int op, const float* va, const float* da, const float* vb, const float* db, float* vo,
                        float* dout, int n, float e) {
  switch (op) {
#define LG_CASE(OP)                                                    \
  case OP:                                                             \
    step_with_grad<OP, Mode, false>(va, da, vb, db, vo, dout, n, kXi); \
    break;
    LG_FOR_EACH_PLAIN_OP(LG_CASE)
#undef LG_CASE
#define LG_CASE(OP)                                                   \
  case OP:                                                            \
    if (e > 0.0f) {                                                   \
      step_with_grad<OP, Mode, true>(va, da, vb, db, vo, dout, n, e); \
    } else {                                                          \
      step_with_grad<OP, Mode, false>(va, da, vb, db, vo, dout, n, kXi); \
    }                                                                 \
    break;
    LG_FOR_EACH_SMOOTHED_OP(LG_CASE)
#undef LG_CASE
  }
}

template <int Mode>
void dispatch_value(int op, const float* va, const float* vb, float* vo, int n, float e) {
  switch (op) {
#define LG_CASE(OP)                                  \
  case OP:                                           \
    step_value<OP, Mode, false>(va, vb, vo, n, kXi); \
    break;
    LG_FOR_EACH_PLAIN_OP(LG_CASE)
#undef LG_CASE
#define LG_CASE(OP)                                    \
  case OP:                                             \
    if (e > 0.0f) {                                    \
      step_value<OP, Mode, true>(va, vb, vo, n, e);    \
    } else {                                           \
      step_value<OP, Mode, false>(va, vb, vo, n, kXi); \
    }                                                  \
    break;
    LG_FOR_EACH_SMOOTHED_OP(LG_CASE)
#undef LG_CASE
  }
}

template <int Mode>
void run_with_grad(const int32_t* program, int num_steps, const float* y_hat, const float* y, int n, float* values,
                   float* grads, float e) {
  alignas(64) float slot_v[kMaxSteps][kBlock];
  alignas(64) float slot_d[kMaxSteps][kBlock];
  const BlockConstants& c = constants();
  const float* v[kMaxSlots] = {y_hat, y, c.ones};
  const float* d[kMaxSlots] = {c.ones, c.zeros, c.zeros};
  // Slots computed from y and 1 alone have derivative exactly 0 (every op's forward-mode
  // derivative is finite times zero): they get the value-only loop and share the zeros array.
  bool varies[kMaxSlots] = {true, false, false};
  for (int t = 0; t < num_steps; ++t) {
    const int32_t* row = program + 3 * t;
    const int a = row[1];
    const int b = op_arity(row[0]) == 2 ? row[2] : a;  // unary ops ignore b
    const bool last = t == num_steps - 1;              // the last step writes the outputs directly
    float* vo = last ? values : slot_v[t];
    varies[kInputSlots + t] = varies[a] || varies[b];
    if (varies[kInputSlots + t]) {
      float* dout = last ? grads : slot_d[t];
      dispatch_with_grad<Mode>(row[0], v[a], d[a], v[b], d[b], vo, dout, n, e);
      d[kInputSlots + t] = dout;
    } else {
      dispatch_value<Mode>(row[0], v[a], v[b], vo, n, e);
      if (last) {
        for (int i = 0; i < n; ++i) grads[i] = 0.0f;
      }
      d[kInputSlots + t] = c.zeros;
    }
    v[kInputSlots + t] = vo;
  }
}

template <int Mode>
double run_sum(const int32_t* program, int num_steps, const float* y_hat, const float* y, int n, float e) {
  alignas(64) float slot_v[kMaxSteps][kBlock];
  const float* v[kMaxSlots] = {y_hat, y, constants().ones};
  for (int t = 0; t < num_steps; ++t) {
    const int32_t* row = program + 3 * t;
    const int a = row[1];
    const int b = op_arity(row[0]) == 2 ? row[2] : a;
    dispatch_value<Mode>(row[0], v[a], v[b], slot_v[t], n, e);
    v[kInputSlots + t] = slot_v[t];
  }
  // Eight independent double accumulators: one running sum would serialise on the add latency
  // (it cost as much as the whole program); the fixed lane order keeps the result deterministic.
  constexpr int kLanes = 8;
  double lanes[kLanes] = {};
  const float* out = slot_v[num_steps - 1];
  int i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int j = 0; j < kLanes; ++j) lanes[j] += out[i + j];
  }
  for (; i < n; ++i) lanes[0] += out[i];
  double total = 0.0;
  for (int j = 0; j < kLanes; ++j) total += lanes[j];
  return total;
}

}  // namespace

int eval_block(const int32_t* program, int num_steps, int clamp, const float* y_hat, const float* y, int n,
               float* values, float* grads, float eps) {
  if (!all_finite(y_hat, n)) return kBadYHat;
  if (!all_finite(y, n)) return kBadY;
  switch (clamp) {
    case kClampPaper:
      run_with_grad<kClampPaper>(program, num_steps, y_hat, y, n, values, grads, eps);
      break;
    case kClampOfficial:
      run_with_grad<kClampOfficial>(program, num_steps, y_hat, y, n, values, grads, eps);
      break;
    default:
      run_with_grad<kClampSymmetric>(program, num_steps, y_hat, y, n, values, grads, eps);
      break;
  }
  return kBlockOk;
}

int eval_block_sum(const int32_t* program, int num_steps, int clamp, const float* y_hat, const float* y, int n,
                   double* sum, float eps) {
  if (!all_finite(y_hat, n)) return kBadYHat;
  if (!all_finite(y, n)) return kBadY;
  switch (clamp) {
    case kClampPaper:
      *sum += run_sum<kClampPaper>(program, num_steps, y_hat, y, n, eps);
      break;
    case kClampOfficial:
      *sum += run_sum<kClampOfficial>(program, num_steps, y_hat, y, n, eps);
      break;
    default:
      *sum += run_sum<kClampSymmetric>(program, num_steps, y_hat, y, n, eps);
      break;
  }
  return kBlockOk;
}

}  // namespace lossgen::cpu
