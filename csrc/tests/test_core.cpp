// Native tests of the C++ core (run by CTest): program validation, the op derivatives against
// finite differences, the block evaluator against a point-by-point interpreter, and the MLP
// step's dropout stream and training (the Python tests hold the MLP step to its PyTorch twin;
// this build, without -march=native, runs its portable code).
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/eval_cpu.h"
#include "core/mlp_step.h"
#include "core/program_check.h"
#include "named_losses.h"
#include "op_math.h"

using namespace lossgen;

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("FAIL: %s\n", what.c_str());
  }
}

void test_check_programs() {
  const std::vector<int32_t> valid = {kMin, 0, 1, kLog, 3, 0, kMul, 3, 4};
  expect(check_programs(valid.data(), 1, 3).empty(), "valid program accepted");
  const std::vector<int32_t> bad_op = {15, 0, 1};
  expect(check_programs(bad_op.data(), 1, 1).find("op code 15 out of range") != std::string::npos, "op range");
  const std::vector<int32_t> unwritten = {kLog, 3, 0};
  expect(check_programs(unwritten.data(), 1, 1).find("not yet written") != std::string::npos, "unwritten operand");
  const std::vector<int32_t> equal = {kAdd, 1, 1};
  expect(check_programs(equal.data(), 1, 1).find("distinct operands") != std::string::npos, "equal operands");
  const std::vector<int32_t> unary_b_ignored = {kNeg, 0, 99};
  expect(check_programs(unary_b_ignored.data(), 1, 1).empty(), "unary op ignores b");
  const std::vector<int32_t> second = {kAdd, 0, 1, kAdd, 0, 1, kMul, 5, 4};
  expect(check_programs(second.data(), 3, 1).find("program 2") != std::string::npos, "names the candidate");
}

// Value and derivative of one op given operands and their derivatives, by template dispatch;
// eps > 0 selects the smoothed Log/Reciprocal/Sqrt (as the block evaluator does), else the paper's.
void forward_op(int op, float a, float da, float b, float db, float eps, float& v, float& d) {
  const bool smooth = eps > 0.0f;
  switch (op) {
#define LG_CASE(OP)                                                  \
  case OP:                                                           \
    if (smooth) {                                                    \
      op_forward<OP, true>(a, da, b, db, v, d, eps);                 \
    } else {                                                         \
      op_forward<OP>(a, da, b, db, v, d);                            \
    }                                                                \
    break;
    LG_CASE(kAdd) LG_CASE(kMul) LG_CASE(kMax) LG_CASE(kMin) LG_CASE(kNeg) LG_CASE(kIdentity) LG_CASE(kLog)
    LG_CASE(kSquare) LG_CASE(kReciprocal) LG_CASE(kSigmoid) LG_CASE(kTanh) LG_CASE(kRelu) LG_CASE(kAbs)
    LG_CASE(kSqrt) LG_CASE(kExp)
#undef LG_CASE
  }
}

// Unclamped value and derivative (operand a varies, b held) of a single op.
void forward(int op, float a, float b, float& v, float& d, float eps = kPaperEps) {
  forward_op(op, a, 1.0f, b, 0.0f, eps, v, d);
}

void test_derivatives_match_finite_differences() {
  const float points[] = {-2.5f, -0.7f, 0.3f, 0.9f, 1.7f, 3.0f};
  const float b = 0.45f;  // away from every point, so Max/Min have no ties
  for (float eps : {kPaperEps, 0.01f, 0.5f}) {
    for (int op = 0; op < kNumOps; ++op) {
      for (float a : points) {
        float v, d, vp, dp, vm, dm;
        forward(op, a, b, v, d, eps);
        const float h = 1e-3f;
        forward(op, a + h, b, vp, dp, eps);
        forward(op, a - h, b, vm, dm, eps);
        const double numeric = (static_cast<double>(vp) - vm) / (2.0 * h);
        const bool ok = std::fabs(numeric - d) <= 2e-2 * (1.0 + std::fabs(numeric));
        expect(ok, std::string("derivative of ") + kOpNames[op] + " at " + std::to_string(a) + " (eps " +
                       std::to_string(eps) + "): " + std::to_string(d) + " vs numeric " + std::to_string(numeric));
      }
    }
  }
}

// With a candidate's epsilon e: sign(0) = +1, f(0) = f(e), derivatives at 0 from the right.
void test_smoothing_epsilon_rules() {
  const float e = 0.01f;
  float v, d;
  op_forward<kLog, true>(0.0f, 1.0f, 0.0f, 0.0f, v, d, e);
  expect(v == logf(e) && d == 1.0f / e, "smoothed Log at 0: log(e), derivative 1/e");
  op_forward<kReciprocal, true>(0.0f, 1.0f, 0.0f, 0.0f, v, d, e);
  expect(v == 1.0f / e && d == -1.0f / (e * e), "smoothed Reciprocal at 0: 1/e, derivative -1/e^2");
  op_forward<kSqrt, true>(0.0f, 1.0f, 0.0f, 0.0f, v, d, e);
  expect(v == sqrtf(e) && d == 1.0f / (2.0f * sqrtf(e)), "smoothed Sqrt at 0: sqrt(e), derivative 1/(2 sqrt(e))");
  op_forward<kReciprocal, true>(-0.0f, 1.0f, 0.0f, 0.0f, v, d, e);
  expect(v == 1.0f / e, "smoothed Reciprocal at -0 counts -0 as 0 (sign +1)");
  op_forward<kReciprocal, true>(-3.0f, 1.0f, 0.0f, 0.0f, v, d, e);
  expect(v == -1.0f / (3.0f + e) && d == -1.0f / ((3.0f + e) * (3.0f + e)), "smoothed Reciprocal is odd");
  op_forward<kLog, true>(-3.0f, 1.0f, 0.0f, 0.0f, v, d, e);
  expect(v == -logf(3.0f + e) && d == 1.0f / (3.0f + e), "smoothed Log is odd");
  op_forward<kSqrt, true>(-3.0f, 2.0f, 0.0f, 0.0f, v, d, e);
  expect(v == -sqrtf(3.0f + e) && d == 2.0f / (2.0f * sqrtf(3.0f + e)), "smoothed Sqrt is odd, chain rule");
  // Other ops ignore the flag and e.
  op_forward<kSquare, true>(3.0f, 1.0f, 0.0f, 0.0f, v, d, e);
  expect(v == 9.0f && d == 6.0f, "Square ignores the smoothing");
  expect(op_value<kLog, true>(0.0f, 0.0f, e) == logf(e) && op_value<kReciprocal, true>(2.0f, 0.0f, e) == 1.0f / (2.0f + e),
         "op_value follows the smoothing");
  // The paper's smoothing is unchanged by the flag's default.
  expect(op_value<kLog>(0.0f, 0.0f) == 0.0f && op_value<kReciprocal>(0.0f, 0.0f) == 0.0f, "paper smoothing at 0");
}

void test_edge_rules() {
  float v, d;
  op_forward<kMax>(0.5f, 1.0f, 0.5f, 0.0f, v, d);
  expect(v == 0.5f && d == 0.5f, "Max splits the derivative at ties");
  op_forward<kLog>(0.0f, 1.0f, 0.0f, 0.0f, v, d);
  expect(v == 0.0f && d == 0.0f, "Log at 0: value 0, derivative 0");
  op_forward<kReciprocal>(0.0f, 1.0f, 0.0f, 0.0f, v, d);
  expect(v == 0.0f && d == 0.0f, "Reciprocal at 0: value 0, derivative 0");
  op_forward<kExp>(100.0f, 1.0f, 0.0f, 0.0f, v, d);
  expect(std::isfinite(v) && d == 0.0f, "Exp beyond its cut-off is finite with derivative 0");
  float cv = 1e6f, cd = 1.0f;
  clamp_result<kClampPaper>(cv, cd);
  expect(cv == 1e6f && cd == 1.0f, "clamp passes the derivative at the bound");
  cv = -3.0f;
  cd = 1.0f;
  clamp_result<kClampPaper>(cv, cd);
  expect(cv == 1e-6f && cd == 0.0f, "paper clamp collapses negatives to xi");
  cv = -3.0f;
  cd = 1.0f;
  clamp_result<kClampSymmetric>(cv, cd);
  expect(cv == -3.0f && cd == 1.0f, "symmetric clamp keeps the sign");
}

// The same program evaluated one point at a time, one op at a time.
void interpret(const std::vector<int32_t>& prog, int clamp, float yh, float y, float& out_v, float& out_d,
               float eps = kPaperEps) {
  float v[kMaxSlots] = {yh, y, 1.0f}, d[kMaxSlots] = {1.0f, 0.0f, 0.0f};
  const int steps = static_cast<int>(prog.size() / 3);
  for (int t = 0; t < steps; ++t) {
    const int op = prog[3 * t], a = prog[3 * t + 1], b = op_arity(op) == 2 ? prog[3 * t + 2] : a;
    float rv = 0.0f, rd = 0.0f;
    forward_op(op, v[a], d[a], v[b], d[b], eps, rv, rd);
    if (clamp == kClampPaper) clamp_result<kClampPaper>(rv, rd);
    if (clamp == kClampOfficial) clamp_result<kClampOfficial>(rv, rd);
    if (clamp == kClampSymmetric) clamp_result<kClampSymmetric>(rv, rd);
    v[kInputSlots + t] = rv;
    d[kInputSlots + t] = rd;
  }
  out_v = v[kInputSlots + steps - 1];
  out_d = d[kInputSlots + steps - 1];
}

void test_block_matches_interpreter() {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uni(-2.0f, 2.0f);
  const int n = 200;  // not a multiple of the vector width
  std::vector<float> yh(n), y(n), values(n), grads(n), paper_values(n), paper_grads(n);
  for (int i = 0; i < n; ++i) {
    yh[i] = i % 17 == 0 ? 0.0f : uni(rng);                  // exact zeros included
    y[i] = i % 3 == 0 ? yh[i] : static_cast<float>(i % 2);  // ties included
  }
  const float eps_choices[] = {kPaperEps, 1e-6f, 0.01f, 1.0f};
  int checked = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    const int steps = 1 + static_cast<int>(rng() % kMaxSteps);
    std::vector<int32_t> prog;
    for (int t = 0; t < steps; ++t) {
      const int op = static_cast<int>(rng() % kNumOps);
      const int written = kInputSlots + t;
      const int a = static_cast<int>(rng() % written);
      int b = 0;
      if (op_arity(op) == 2) {
        b = static_cast<int>(rng() % (written - 1));
        b += b >= a;
      }
      prog.insert(prog.end(), {op, a, b});
    }
    expect(check_programs(prog.data(), 1, steps).empty(), "generated program is valid");
    const int clamp = trial % kNumClampModes;
    const float eps = eps_choices[(trial / kNumClampModes) % 4];
    expect(cpu::eval_block(prog.data(), steps, clamp, yh.data(), y.data(), n, values.data(), grads.data(), eps) ==
               cpu::kBlockOk,
           "finite inputs accepted");
    if (eps == kPaperEps) {  // the default argument is the paper's smoothing
      cpu::eval_block(prog.data(), steps, clamp, yh.data(), y.data(), n, paper_values.data(), paper_grads.data());
      expect(paper_values == values && paper_grads == grads, "eval_block's default eps is kPaperEps");
    }
    double sum = 0.0;
    expect(cpu::eval_block_sum(prog.data(), steps, clamp, yh.data(), y.data(), n, &sum, eps) == cpu::kBlockOk,
           "finite inputs accepted (sum)");
    double expected_sum = 0.0;
    for (int i = 0; i < n; ++i) {
      float rv, rd;
      interpret(prog, clamp, yh[i], y[i], rv, rd, eps);
      // Same functions in the same order: bit-identical results are expected.
      if (rv != values[i] || rd != grads[i]) {
        expect(false, "block evaluator equals the interpreter (trial " + std::to_string(trial) + ", eps " +
                           std::to_string(eps) + ", point " + std::to_string(i) + ")");
        return;
      }
      expected_sum += rv;
      ++checked;
    }
    expect(std::fabs(sum - expected_sum) <= 1e-9 * (1.0 + std::fabs(expected_sum)), "block sum equals the sum");
  }
  std::printf("block evaluator: %d points bit-identical to the interpreter\n", checked);
}

void test_non_finite_inputs() {
  std::vector<float> yh = {0.1f, NAN, 0.3f}, y = {0.0f, 1.0f, INFINITY}, out(3), g(3);
  const std::vector<int32_t> prog = {kAdd, 0, 1};
  expect(cpu::eval_block(prog.data(), 1, kClampPaper, yh.data(), y.data(), 3, out.data(), g.data()) == cpu::kBadYHat,
         "NaN in y_hat reported");
  yh[1] = 0.2f;
  expect(cpu::eval_block(prog.data(), 1, kClampPaper, yh.data(), y.data(), 3, out.data(), g.data()) == cpu::kBadY,
         "inf in y reported");
}

// The MLP dropout stream against splitmix64 written out point by point (mlp_step.h).
void test_mlp_dropout_stream() {
  const uint64_t keys[] = {0x1234ULL, 0xFFFFFFFFFFFFFFF0ULL};
  for (uint64_t key : keys) {
    for (int64_t step : {0, 1, 1000}) {
      const int batch = 24;
      std::vector<float> keep(80 * batch);
      mlp::dropout_keep(key, step, batch, keep.data());
      bool same = true;
      for (int j = 0; j < 40 * batch; ++j) {
        uint64_t x = key + (static_cast<uint64_t>(step) * (1ULL << 32) + j) * 0x9E3779B97F4A7C15ULL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
        x ^= x >> 31;
        for (int half = 0; half < 2; ++half) {
          const uint32_t m = static_cast<uint32_t>(x >> (32 * half)) & 0x7FFFFF;
          same = same && keep[2 * j + half] == (m >= 1677722u ? 1.0f : 0.0f);
        }
      }
      expect(same, "dropout keep masks follow splitmix64 (step " + std::to_string(step) + ")");
    }
  }
  std::vector<float> keep(80 * 256);
  mlp::dropout_keep(7, 3, 256, keep.data());
  double kept = 0;
  for (float k : keep) kept += k;
  expect(std::fabs(kept / keep.size() - 0.8) < 0.01, "dropout keeps about 80% of the units");
}

// A tiny MLP trained with BCE: the loss falls, training is deterministic, parameters stay finite,
// and the lazy weight decay renormalises the tables when their scale gets small.
void test_mlp_training() {
  for (int64_t dim : {8, 20, 64}) {
    for (double l2 : {1e-3, 5.0}) {
      const int64_t users = 20, items = 30, n = 300;
      std::mt19937 rng(1);
      std::normal_distribution<float> normal(0.0f, 0.1f);
      std::vector<int64_t> u(n), i(n);
      std::vector<float> y(n);
      for (int64_t e = 0; e < n; ++e) {
        u[e] = static_cast<int64_t>(rng() % users);
        i[e] = static_cast<int64_t>(rng() % items);
        y[e] = ((u[e] + i[e]) % 3 == 0) ? 1.0f : 0.0f;  // learnable from the embeddings
      }
      double final_losses[2];
      std::vector<float> final_w1[2];
      for (int run = 0; run < 2; ++run) {
        std::mt19937 init(2);
        std::vector<float> ue(users * dim), ie(items * dim), w1t(64 * 2 * dim), w2(64 * 16), w3(16);
        for (auto* v : {&ue, &ie, &w1t, &w2, &w3}) {
          for (float& x : *v) x = normal(init);
        }
        std::vector<float> b1(64), g1(64, 1.0f), beta1(64), b2(16), g2(16, 1.0f), beta2(16), b3(1);
        std::vector<float> rm1(64), rv1(64, 1.0f), rm2(16), rv2(16, 1.0f);
        double scale = 1.0;
        int64_t steps = 0;
        const mlp::Params p{ue.data(),   ie.data(),  &scale,      w1t.data(), b1.data(),  g1.data(),
                            beta1.data(), w2.data(), b2.data(),   g2.data(),  beta2.data(), w3.data(),
                            b3.data(),   rm1.data(), rv1.data(),  rm2.data(), rv2.data(), 99,
                            &steps,      users,      items,       dim};
        const Loss loss{kLossBCE, 1e-6f, nullptr, 0, 0};
        double first = 0.0, last = 0.0;
        for (int epoch = 0; epoch < 15; ++epoch) {
          double mean = 0.0;
          const bool ok = mlp::train_epoch(p, loss, u.data(), i.data(), y.data(), n, 32, 0.1, l2, &mean);
          expect(ok && std::isfinite(mean), "MLP epoch finishes with a finite loss");
          if (epoch == 0) first = mean;
          last = mean;
        }
        expect(steps == 15 * 10, "the step counter moves once per batch");
        bool finite = std::isfinite(scale) && scale > 0.0;
        for (auto* v : {&ue, &ie, &w1t, &w2, &w3, &rv1, &rv2}) {
          for (float x : *v) finite = finite && std::isfinite(x);
        }
        expect(finite, "MLP parameters stay finite");
        if (l2 > 1.0) expect(scale >= 1e-3, "small scales are renormalised");
        if (l2 < 1.0) expect(last < 0.9 * first, "MLP training lowers the loss (dim " + std::to_string(dim) + ")");
        final_losses[run] = last;
        final_w1[run] = w1t;
      }
      expect(final_losses[0] == final_losses[1] && final_w1[0] == final_w1[1], "MLP training is deterministic");
    }
  }
}

}  // namespace

int main() {
  test_check_programs();
  test_derivatives_match_finite_differences();
  test_edge_rules();
  test_smoothing_epsilon_rules();
  test_block_matches_interpreter();
  test_non_finite_inputs();
  test_mlp_dropout_stream();
  test_mlp_training();
  if (failures) {
    std::printf("%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("all core checks passed\n");
  return 0;
}
