// CUDA implementations of the lossgen tensor ops (dispatcher glue around csrc/cuda/eval_cuda.cu).
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <optional>

#include "cuda/eval_cuda.cuh"
#include "ops.h"

namespace lossgen {
namespace {

// Validates on the host, then returns the problem description with device pointers.
struct PreparedProblem {
  cuda::Problem problem;
  at::Tensor programs, y_hat, y, bad, eps;  // kept alive for the launch (eps undefined when absent)
};

PreparedProblem prepare(const at::Tensor& programs, const at::Tensor& y_hat, const at::Tensor& y, int64_t clamp,
                        const std::optional<at::Tensor>& eps) {
  const ProblemShape s = check_shapes(programs, y_hat, y, clamp);
  TORCH_CHECK_VALUE(y_hat.is_cuda(), "y_hat must be a CUDA tensor here, got ", y_hat.device());
  const at::Tensor host = checked_host_programs(programs);
  const at::Tensor host_eps = checked_host_eps(eps, s, y_hat);
  PreparedProblem out;
  out.programs = programs.is_cuda() ? programs.contiguous() : host.to(y_hat.device());
  if (host_eps.defined()) out.eps = eps->is_cuda() ? eps->contiguous() : host_eps.to(y_hat.device());
  out.y_hat = y_hat.contiguous();
  out.y = y.contiguous();
  out.bad = at::zeros({1}, y_hat.options().dtype(at::kInt));
  out.problem = cuda::Problem{out.programs.data_ptr<int32_t>(),
                              s.num_candidates,
                              static_cast<int>(s.num_steps),
                              static_cast<int>(clamp),
                              out.y_hat.data_ptr<float>(),
                              s.y_hat_per_candidate ? s.num_points : 0,
                              out.y.data_ptr<float>(),
                              s.y_per_candidate ? s.num_points : 0,
                              s.num_points,
                              out.bad.data_ptr<int>(),
                              out.eps.defined() ? out.eps.data_ptr<float>() : nullptr};
  return out;
}

void check_finite_inputs(const at::Tensor& bad) {
  const int flags = bad.item<int>();
  TORCH_CHECK_VALUE((flags & 1) == 0, "y_hat contains NaN or inf");
  TORCH_CHECK_VALUE((flags & 2) == 0, "y contains NaN or inf");
}

void launch_evaluate_checked(const PreparedProblem& prep, at::Tensor& values, at::Tensor& grads) {
  C10_CUDA_CHECK(cuda::launch_evaluate(prep.problem, values.data_ptr<float>(), grads.data_ptr<float>(),
                                       c10::cuda::getCurrentCUDAStream().stream()));
  check_finite_inputs(prep.bad);
}

std::tuple<at::Tensor, at::Tensor> evaluate_cuda(const at::Tensor& programs, const at::Tensor& y_hat,
                                                 const at::Tensor& y, int64_t clamp,
                                                 const std::optional<at::Tensor>& eps) {
  const c10::cuda::CUDAGuard guard(y_hat.device());
  PreparedProblem prep = prepare(programs, y_hat, y, clamp, eps);
  const auto& p = prep.problem;
  at::Tensor values = at::empty({p.num_candidates, p.num_points}, y_hat.options());
  at::Tensor grads = at::empty({p.num_candidates, p.num_points}, y_hat.options());
  launch_evaluate_checked(prep, values, grads);
  return {values, grads};
}

void evaluate_out_cuda(const at::Tensor& programs, const at::Tensor& y_hat, const at::Tensor& y, int64_t clamp,
                       at::Tensor& values, at::Tensor& grads, const std::optional<at::Tensor>& eps) {
  const c10::cuda::CUDAGuard guard(y_hat.device());
  const ProblemShape s = check_shapes(programs, y_hat, y, clamp);
  check_out(values, "values", s, y_hat);
  check_out(grads, "grads", s, y_hat);
  PreparedProblem prep = prepare(programs, y_hat, y, clamp, eps);
  launch_evaluate_checked(prep, values, grads);
}

at::Tensor program_loss_cuda(const at::Tensor& programs, const at::Tensor& y_hat, const at::Tensor& y,
                             int64_t clamp, const std::optional<at::Tensor>& eps) {
  const c10::cuda::CUDAGuard guard(y_hat.device());
  PreparedProblem prep = prepare(programs, y_hat, y, clamp, eps);
  const auto& p = prep.problem;
  TORCH_CHECK_VALUE(p.num_points > 0, "program_loss needs at least one point (N >= 1)");
  if (p.num_candidates == 0) return at::empty({0}, y_hat.options());
  at::Tensor partials = at::empty({p.num_candidates, cuda::loss_chunks(p)}, y_hat.options().dtype(at::kDouble));
  C10_CUDA_CHECK(cuda::launch_loss_partials(p, partials.data_ptr<double>(), c10::cuda::getCurrentCUDAStream().stream()));
  check_finite_inputs(prep.bad);
  return partials.sum(1).div_(static_cast<double>(p.num_points)).to(at::kFloat);
}

}  // namespace
}  // namespace lossgen

TORCH_LIBRARY_IMPL(lossgen, CUDA, m) {
  m.impl("evaluate", &lossgen::evaluate_cuda);
  m.impl("evaluate_out", &lossgen::evaluate_out_cuda);
  m.impl("program_loss", &lossgen::program_loss_cuda);
}
