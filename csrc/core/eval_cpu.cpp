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

template <int Op, int Mode>
void step_with_grad(const float* __restrict va, const float* __restrict da, const float* __restrict vb,
                    const float* __restrict db, float* __restrict vo, float* __restrict dout, int n) {
  for (int i = 0; i < n; ++i) {
    float v, d;
    op_forward<Op>(va[i], da[i], vb[i], db[i], v, d);
    clamp_result<Mode>(v, d);
    vo[i] = v;
    dout[i] = d;
  }
}

template <int Op, int Mode>
void step_value(const float* __restrict va, const float* __restrict vb, float* __restrict vo, int n) {
  for (int i = 0; i < n; ++i) vo[i] = clamp_value<Mode>(op_value<Op>(va[i], vb[i]));
}

#define LG_FOR_EACH_OP(X) \
  X(kAdd) X(kMul) X(kMax) X(kMin) X(kNeg) X(kIdentity) X(kLog) X(kSquare) X(kReciprocal) X(kSigmoid) X(kTanh) \
  X(kRelu) X(kAbs) X(kSqrt) X(kExp)

template <int Mode>
void dispatch_with_grad(int op, const float* va, const float* da, const float* vb, const float* db, float* vo,
                        float* dout, int n) {
  switch (op) {
#define LG_CASE(OP)                                                \
  case OP:                                                         \
    step_with_grad<OP, Mode>(va, da, vb, db, vo, dout, n); \
    break;
    LG_FOR_EACH_OP(LG_CASE)
#undef LG_CASE
  }
}

template <int Mode>
void dispatch_value(int op, const float* va, const float* vb, float* vo, int n) {
  switch (op) {
#define LG_CASE(OP)                         \
  case OP:                                  \
    step_value<OP, Mode>(va, vb, vo, n); \
    break;
    LG_FOR_EACH_OP(LG_CASE)
#undef LG_CASE
  }
}

template <int Mode>
void run_with_grad(const int32_t* program, int num_steps, const float* y_hat, const float* y, int n, float* values,
                   float* grads) {
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
      dispatch_with_grad<Mode>(row[0], v[a], d[a], v[b], d[b], vo, dout, n);
      d[kInputSlots + t] = dout;
    } else {
      dispatch_value<Mode>(row[0], v[a], v[b], vo, n);
      if (last) {
        for (int i = 0; i < n; ++i) grads[i] = 0.0f;
      }
      d[kInputSlots + t] = c.zeros;
    }
    v[kInputSlots + t] = vo;
  }
}

template <int Mode>
double run_sum(const int32_t* program, int num_steps, const float* y_hat, const float* y, int n) {
  alignas(64) float slot_v[kMaxSteps][kBlock];
  const float* v[kMaxSlots] = {y_hat, y, constants().ones};
  for (int t = 0; t < num_steps; ++t) {
    const int32_t* row = program + 3 * t;
    const int a = row[1];
    const int b = op_arity(row[0]) == 2 ? row[2] : a;
    dispatch_value<Mode>(row[0], v[a], v[b], slot_v[t], n);
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
               float* values, float* grads) {
  if (!all_finite(y_hat, n)) return kBadYHat;
  if (!all_finite(y, n)) return kBadY;
  switch (clamp) {
    case kClampPaper:
      run_with_grad<kClampPaper>(program, num_steps, y_hat, y, n, values, grads);
      break;
    case kClampOfficial:
      run_with_grad<kClampOfficial>(program, num_steps, y_hat, y, n, values, grads);
      break;
    default:
      run_with_grad<kClampSymmetric>(program, num_steps, y_hat, y, n, values, grads);
      break;
  }
  return kBlockOk;
}

int eval_block_sum(const int32_t* program, int num_steps, int clamp, const float* y_hat, const float* y, int n,
                   double* sum) {
  if (!all_finite(y_hat, n)) return kBadYHat;
  if (!all_finite(y, n)) return kBadY;
  switch (clamp) {
    case kClampPaper:
      *sum += run_sum<kClampPaper>(program, num_steps, y_hat, y, n);
      break;
    case kClampOfficial:
      *sum += run_sum<kClampOfficial>(program, num_steps, y_hat, y, n);
      break;
    default:
      *sum += run_sum<kClampSymmetric>(program, num_steps, y_hat, y, n);
      break;
  }
  return kBlockOk;
}

}  // namespace lossgen::cpu
