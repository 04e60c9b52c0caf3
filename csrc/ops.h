// Shared input checks of the registered tensor ops (CPU and CUDA implementations).
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>
#include <optional>
#include <sstream>
#include <string>

#include "core/program_check.h"
#include "op_math.h"

namespace lossgen {

struct ProblemShape {
  int64_t num_candidates;
  int64_t num_steps;
  int64_t num_points;
  bool y_hat_per_candidate;  // y_hat is [K, N] (else [N], shared by all candidates)
  bool y_per_candidate;
};

// Dtype, shape, clamp and device checks; raises ValueError naming the problem.
inline ProblemShape check_shapes(const at::Tensor& programs, const at::Tensor& y_hat, const at::Tensor& y,
                                 int64_t clamp) {
  TORCH_CHECK_VALUE(programs.scalar_type() == at::kInt, "programs must be int32, got ", programs.scalar_type());
  TORCH_CHECK_VALUE(programs.dim() == 3 && programs.size(2) == 3, "programs must have shape [K, L, 3], got ",
                    programs.sizes());
  const int64_t k = programs.size(0), l = programs.size(1);
  TORCH_CHECK_VALUE(l >= 1, "programs must have at least one step (L >= 1), got L = ", l);
  TORCH_CHECK_VALUE(l <= kMaxSteps, "programs have L = ", l, " steps; the kernels take at most ", kMaxSteps);
  TORCH_CHECK_VALUE(y_hat.scalar_type() == at::kFloat, "y_hat must be float32, got ", y_hat.scalar_type());
  TORCH_CHECK_VALUE(y.scalar_type() == at::kFloat, "y must be float32, got ", y.scalar_type());
  TORCH_CHECK_VALUE(y_hat.dim() == 1 || y_hat.dim() == 2, "y_hat must have shape [K, N] or [N], got ",
                    y_hat.sizes());
  TORCH_CHECK_VALUE(y.dim() == 1 || y.dim() == 2, "y must have shape [K, N] or [N], got ", y.sizes());
  const int64_t n = y_hat.size(-1);
  TORCH_CHECK_VALUE(y.size(-1) == n, "y_hat has ", n, " points but y has ", y.size(-1));
  TORCH_CHECK_VALUE(y_hat.dim() == 1 || y_hat.size(0) == k, "y_hat has ", y_hat.size(0), " rows but there are ", k,
                    " programs");
  TORCH_CHECK_VALUE(y.dim() == 1 || y.size(0) == k, "y has ", y.size(0), " rows but there are ", k, " programs");
  TORCH_CHECK_VALUE(clamp >= 0 && clamp < kNumClampModes, "clamp mode ", clamp,
                    " out of range (0 paper, 1 official, 2 symmetric)");
  TORCH_CHECK_VALUE(y_hat.device() == y.device(), "y_hat is on ", y_hat.device(), " but y is on ", y.device());
  TORCH_CHECK_VALUE(programs.device().is_cpu() || programs.device() == y_hat.device(), "programs are on ",
                    programs.device(), " but y_hat is on ", y_hat.device());
  return {k, l, n, y_hat.dim() == 2, y.dim() == 2};
}

// Checks caller-provided outputs of the .out variant: float32, contiguous, [K, N], on y_hat's device.
inline void check_out(const at::Tensor& out, const char* name, const ProblemShape& s, const at::Tensor& y_hat) {
  TORCH_CHECK_VALUE(out.scalar_type() == at::kFloat, name, " must be float32, got ", out.scalar_type());
  TORCH_CHECK_VALUE(out.dim() == 2 && out.size(0) == s.num_candidates && out.size(1) == s.num_points, name,
                    " must have shape [", s.num_candidates, ", ", s.num_points, "], got ", out.sizes());
  TORCH_CHECK_VALUE(out.is_contiguous(), name, " must be contiguous");
  TORCH_CHECK_VALUE(out.device() == y_hat.device(), name, " is on ", out.device(), " but y_hat is on ",
                    y_hat.device());
}

// Validates program contents on the host (copies them there if they live on a device).
inline at::Tensor checked_host_programs(const at::Tensor& programs) {
  at::Tensor host = programs.to(at::kCPU).contiguous();
  const std::string problem = check_programs(host.data_ptr<int32_t>(), host.size(0), host.size(1));
  TORCH_CHECK_VALUE(problem.empty(), problem);
  return host;
}

// Validates the optional per-candidate smoothing epsilons: float32 [K], on the CPU or y_hat's
// device, every value finite and > 0. Returns them on the host (contiguous), or an undefined
// tensor when eps is absent (the paper's smoothing: xi with sign(0) = 0).
inline at::Tensor checked_host_eps(const std::optional<at::Tensor>& eps, const ProblemShape& s,
                                   const at::Tensor& y_hat) {
  if (!eps.has_value() || !eps->defined()) return at::Tensor();
  const at::Tensor& e = *eps;
  TORCH_CHECK_VALUE(e.scalar_type() == at::kFloat, "eps must be float32, got ", e.scalar_type());
  TORCH_CHECK_VALUE(e.dim() == 1 && e.size(0) == s.num_candidates, "eps must have shape [K] = [", s.num_candidates,
                    "], got ", e.sizes());
  TORCH_CHECK_VALUE(e.device().is_cpu() || e.device() == y_hat.device(), "eps is on ", e.device(),
                    " but y_hat is on ", y_hat.device());
  at::Tensor host = e.to(at::kCPU).contiguous();
  const float* v = host.data_ptr<float>();
  for (int64_t k = 0; k < s.num_candidates; ++k) {
    if (!(std::isfinite(v[k]) && v[k] > 0.0f)) {
      std::ostringstream msg;
      msg << "eps[" << k << "] = " << v[k] << ": the smoothing epsilon must be finite and > 0";
      TORCH_CHECK_VALUE(false, msg.str());
    }
  }
  return host;
}

}  // namespace lossgen
