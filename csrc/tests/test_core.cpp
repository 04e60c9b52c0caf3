// Native tests of the C++ core (run by CTest): program validation, the op derivatives against
// finite differences, and the block evaluator against a point-by-point interpreter.
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/eval_cpu.h"
#include "core/program_check.h"
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

// Unclamped value and derivative (operand a varies, b held) of a single op, by template dispatch.
void forward(int op, float a, float b, float& v, float& d) {
  switch (op) {
#define LG_CASE(OP)                      \
  case OP:                               \
    op_forward<OP>(a, 1.0f, b, 0.0f, v, d); \
    break;
    LG_CASE(kAdd) LG_CASE(kMul) LG_CASE(kMax) LG_CASE(kMin) LG_CASE(kNeg) LG_CASE(kIdentity) LG_CASE(kLog)
    LG_CASE(kSquare) LG_CASE(kReciprocal) LG_CASE(kSigmoid) LG_CASE(kTanh) LG_CASE(kRelu) LG_CASE(kAbs)
    LG_CASE(kSqrt) LG_CASE(kExp)
#undef LG_CASE
  }
}

void test_derivatives_match_finite_differences() {
  const float points[] = {-2.5f, -0.7f, 0.3f, 0.9f, 1.7f, 3.0f};
  const float b = 0.45f;  // away from every point, so Max/Min have no ties
  for (int op = 0; op < kNumOps; ++op) {
    for (float a : points) {
      float v, d, vp, dp, vm, dm;
      forward(op, a, b, v, d);
      const float h = 1e-3f;
      forward(op, a + h, b, vp, dp);
      forward(op, a - h, b, vm, dm);
      const double numeric = (static_cast<double>(vp) - vm) / (2.0 * h);
      const bool ok = std::fabs(numeric - d) <= 2e-2 * (1.0 + std::fabs(numeric));
      expect(ok, std::string("derivative of ") + kOpNames[op] + " at " + std::to_string(a) + ": " +
                     std::to_string(d) + " vs numeric " + std::to_string(numeric));
    }
  }
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
void interpret(const std::vector<int32_t>& prog, int clamp, float yh, float y, float& out_v, float& out_d) {
  float v[kMaxSlots] = {yh, y, 1.0f}, d[kMaxSlots] = {1.0f, 0.0f, 0.0f};
  const int steps = static_cast<int>(prog.size() / 3);
  for (int t = 0; t < steps; ++t) {
    const int op = prog[3 * t], a = prog[3 * t + 1], b = op_arity(op) == 2 ? prog[3 * t + 2] : a;
    float rv = 0.0f, rd = 0.0f;
    switch (op) {
#define LG_CASE(OP)                                 \
  case OP:                                          \
    op_forward<OP>(v[a], d[a], v[b], d[b], rv, rd); \
    break;
      LG_CASE(kAdd) LG_CASE(kMul) LG_CASE(kMax) LG_CASE(kMin) LG_CASE(kNeg) LG_CASE(kIdentity) LG_CASE(kLog)
      LG_CASE(kSquare) LG_CASE(kReciprocal) LG_CASE(kSigmoid) LG_CASE(kTanh) LG_CASE(kRelu) LG_CASE(kAbs)
      LG_CASE(kSqrt) LG_CASE(kExp)
#undef LG_CASE
    }
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
  std::vector<float> yh(n), y(n), values(n), grads(n);
  for (int i = 0; i < n; ++i) {
    yh[i] = uni(rng);
    y[i] = i % 3 == 0 ? yh[i] : static_cast<float>(i % 2);  // ties included
  }
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
    expect(cpu::eval_block(prog.data(), steps, clamp, yh.data(), y.data(), n, values.data(), grads.data()) ==
               cpu::kBlockOk,
           "finite inputs accepted");
    double sum = 0.0;
    expect(cpu::eval_block_sum(prog.data(), steps, clamp, yh.data(), y.data(), n, &sum) == cpu::kBlockOk,
           "finite inputs accepted (sum)");
    double expected_sum = 0.0;
    for (int i = 0; i < n; ++i) {
      float rv, rd;
      interpret(prog, clamp, yh[i], y[i], rv, rd);
      // Same functions in the same order: bit-identical results are expected.
      if (rv != values[i] || rd != grads[i]) {
        expect(false, "block evaluator equals the interpreter (trial " + std::to_string(trial) + ", point " +
                           std::to_string(i) + ")");
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

}  // namespace

int main() {
  test_check_programs();
  test_derivatives_match_finite_differences();
  test_edge_rules();
  test_block_matches_interpreter();
  test_non_finite_inputs();
  if (failures) {
    std::printf("%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("all core checks passed\n");
  return 0;
}
