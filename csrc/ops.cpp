// Registration of the lossgen tensor ops with the dispatcher, their CPU implementations, and the
// pybind11 module lossgen._C (which only carries facts about the build, no tensor ops).
#include <ATen/Parallel.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <optional>
#include <vector>

#include "core/eval_cpu.h"
#include "ops.h"

namespace lossgen {
namespace {

const char* bad_input_message(int status) {
  return status == cpu::kBadYHat ? "y_hat contains NaN or inf" : "y contains NaN or inf";
}

// Runs fn(k, start, n, item) over every (candidate, block) work item in parallel.
template <typename Fn>
int for_each_block(const ProblemShape& s, Fn fn) {
  const int64_t blocks = (s.num_points + cpu::kBlock - 1) / cpu::kBlock;
  // About 16k node evaluations per task: enough to amortise the scheduling.
  const int64_t grain = std::max<int64_t>(1, 16384 / (cpu::kBlock * s.num_steps));
  std::atomic<int> status{cpu::kBlockOk};
  at::parallel_for(0, s.num_candidates * blocks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t k = item / blocks;
      const int64_t start = (item % blocks) * cpu::kBlock;
      const int n = static_cast<int>(std::min<int64_t>(cpu::kBlock, s.num_points - start));
      const int result = fn(k, start, n, item);
      if (result != cpu::kBlockOk) status.store(result);
    }
  });
  return status.load();
}

// The smoothing epsilon of candidate k: its own (host eps, > 0), or kPaperEps when eps is absent.
float eps_of(const float* eps, int64_t k) { return eps == nullptr ? kPaperEps : eps[k]; }

void evaluate_into(const ProblemShape& s, const at::Tensor& programs, const at::Tensor& y_hat, const at::Tensor& y,
                   int64_t clamp, const std::optional<at::Tensor>& eps, at::Tensor& values, at::Tensor& grads) {
  const at::Tensor prog = checked_host_programs(programs);
  const at::Tensor host_eps = checked_host_eps(eps, s, y_hat);
  const at::Tensor yh = y_hat.contiguous(), yy = y.contiguous();
  if (s.num_candidates == 0 || s.num_points == 0) return;

  const int32_t* p = prog.data_ptr<int32_t>();
  const float* yh_ptr = yh.data_ptr<float>();
  const float* y_ptr = yy.data_ptr<float>();
  float* v_ptr = values.data_ptr<float>();
  float* g_ptr = grads.data_ptr<float>();
  const int64_t yh_stride = s.y_hat_per_candidate ? s.num_points : 0;
  const int64_t y_stride = s.y_per_candidate ? s.num_points : 0;
  const int steps = static_cast<int>(s.num_steps);
  const int mode = static_cast<int>(clamp);
  const float* e_ptr = host_eps.defined() ? host_eps.data_ptr<float>() : nullptr;
  const int status = for_each_block(s, [&](int64_t k, int64_t start, int n, int64_t) {
    const int64_t out = k * s.num_points + start;
    return cpu::eval_block(p + k * steps * 3, steps, mode, yh_ptr + k * yh_stride + start,
                           y_ptr + k * y_stride + start, n, v_ptr + out, g_ptr + out, eps_of(e_ptr, k));
  });
  TORCH_CHECK_VALUE(status == cpu::kBlockOk, bad_input_message(status));
}

std::tuple<at::Tensor, at::Tensor> evaluate_cpu(const at::Tensor& programs, const at::Tensor& y_hat,
                                                const at::Tensor& y, int64_t clamp,
                                                const std::optional<at::Tensor>& eps) {
  const ProblemShape s = check_shapes(programs, y_hat, y, clamp);
  at::Tensor values = at::empty({s.num_candidates, s.num_points}, y_hat.options());
  at::Tensor grads = at::empty({s.num_candidates, s.num_points}, y_hat.options());
  evaluate_into(s, programs, y_hat, y, clamp, eps, values, grads);
  return {values, grads};
}

// Writes into caller-provided outputs: a hot loop that reuses them allocates nothing (fresh
// outputs of K x N floats cost page faults that can exceed the evaluation itself).
void evaluate_out_cpu(const at::Tensor& programs, const at::Tensor& y_hat, const at::Tensor& y, int64_t clamp,
                      at::Tensor& values, at::Tensor& grads, const std::optional<at::Tensor>& eps) {
  const ProblemShape s = check_shapes(programs, y_hat, y, clamp);
  check_out(values, "values", s, y_hat);
  check_out(grads, "grads", s, y_hat);
  evaluate_into(s, programs, y_hat, y, clamp, eps, values, grads);
}

at::Tensor program_loss_cpu(const at::Tensor& programs, const at::Tensor& y_hat, const at::Tensor& y,
                            int64_t clamp, const std::optional<at::Tensor>& eps) {
  const ProblemShape s = check_shapes(programs, y_hat, y, clamp);
  TORCH_CHECK_VALUE(s.num_points > 0, "program_loss needs at least one point (N >= 1)");
  const at::Tensor prog = checked_host_programs(programs);
  const at::Tensor host_eps = checked_host_eps(eps, s, y_hat);
  const float* e_ptr = host_eps.defined() ? host_eps.data_ptr<float>() : nullptr;
  const at::Tensor yh = y_hat.contiguous(), yy = y.contiguous();
  at::Tensor loss = at::empty({s.num_candidates}, y_hat.options());
  if (s.num_candidates == 0) return loss;

  // One partial sum per work item, added up in a fixed order afterwards: the result does not
  // depend on the number of threads.
  const int64_t blocks = (s.num_points + cpu::kBlock - 1) / cpu::kBlock;
  std::vector<double> partial(static_cast<size_t>(s.num_candidates * blocks), 0.0);
  const int32_t* p = prog.data_ptr<int32_t>();
  const float* yh_ptr = yh.data_ptr<float>();
  const float* y_ptr = yy.data_ptr<float>();
  const int64_t yh_stride = s.y_hat_per_candidate ? s.num_points : 0;
  const int64_t y_stride = s.y_per_candidate ? s.num_points : 0;
  const int steps = static_cast<int>(s.num_steps);
  const int mode = static_cast<int>(clamp);
  const int status = for_each_block(s, [&](int64_t k, int64_t start, int n, int64_t item) {
    return cpu::eval_block_sum(p + k * steps * 3, steps, mode, yh_ptr + k * yh_stride + start,
                               y_ptr + k * y_stride + start, n, &partial[item], eps_of(e_ptr, k));
  });
  TORCH_CHECK_VALUE(status == cpu::kBlockOk, bad_input_message(status));
  float* out = loss.data_ptr<float>();
  for (int64_t k = 0; k < s.num_candidates; ++k) {
    double total = 0.0;
    for (int64_t b = 0; b < blocks; ++b) total += partial[k * blocks + b];
    out[k] = static_cast<float>(total / static_cast<double>(s.num_points));
  }
  return loss;
}

}  // namespace
}  // namespace lossgen

// eps: the per-candidate smoothing epsilons, float32 [K] (absent: the paper's xi with sign(0) = 0).
// It comes last (after the outputs of evaluate_out too), so calls written before it existed still bind.
TORCH_LIBRARY(lossgen, m) {
  m.def("evaluate(Tensor programs, Tensor y_hat, Tensor y, int clamp, Tensor? eps=None) -> (Tensor, Tensor)");
  m.def(
      "evaluate_out(Tensor programs, Tensor y_hat, Tensor y, int clamp, Tensor(a!) values, Tensor(b!) grads, "
      "Tensor? eps=None) -> ()");
  m.def("program_loss(Tensor programs, Tensor y_hat, Tensor y, int clamp, Tensor? eps=None) -> Tensor");
}

TORCH_LIBRARY_IMPL(lossgen, CPU, m) {
  m.impl("evaluate", &lossgen::evaluate_cpu);
  m.impl("evaluate_out", &lossgen::evaluate_out_cpu);
  m.impl("program_loss", &lossgen::program_loss_cpu);
}

namespace {
bool built_with_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}
}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "lossgen compiled kernels; the tensor ops live in torch.ops.lossgen";
  m.def("built_with_cuda", &built_with_cuda, "Whether the CUDA kernels were compiled in");
  m.def("max_steps", [] { return lossgen::kMaxSteps; }, "Longest program (L) the kernels take");
  m.def("cpu_block", [] { return lossgen::cpu::kBlock; }, "Points per CPU work item");
  m.def(
      "op_names",
      [] { return std::vector<std::string>(lossgen::kOpNames, lossgen::kOpNames + lossgen::kNumOps); },
      "Op names in op-code order");
  m.def(
      "op_arities",
      [] {
        std::vector<int> arities;
        for (int op = 0; op < lossgen::kNumOps; ++op) arities.push_back(lossgen::op_arity(op));
        return arities;
      },
      "Op arities in op-code order");
}
