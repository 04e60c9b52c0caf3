// Shared input checks of the fused recommender training ops (ops_mf.cpp, ops_mlp.cpp): example ids,
// the per-candidate loss table and the example orders. Each raises ValueError naming the problem.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <optional>
#include <vector>

#include "core/eval_cpu.h"
#include "core/program_check.h"
#include "core/score_loss.h"
#include "named_losses.h"
#include "op_math.h"

namespace lossgen {

inline void check_ids(const at::Tensor& ids, int64_t limit, const char* name, bool rows_allowed = false) {
  TORCH_CHECK_VALUE(ids.scalar_type() == at::kLong && (ids.dim() == 1 || (rows_allowed && ids.dim() == 2)) &&
                        ids.is_contiguous(),
                    name, rows_allowed ? " must be a contiguous int64 [N] or [K, N] tensor"
                                       : " must be a contiguous int64 [B] tensor");
  if (ids.numel() == 0) return;
  const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
  TORCH_CHECK_VALUE(lo >= 0 && hi < limit, name, " out of range: ids must be in [0, ", limit, "), got [", lo, ", ",
                    hi, "]");
}

// The candidates' losses: programs int32 [K, L, 3], kinds int32 [K], eps float32 [K] (a program's
// 0 is the paper's smoothing), checked and made contiguous.
struct LossTable {
  at::Tensor programs, kinds, eps;
  int clamp;

  LossTable(const at::Tensor& program_rows, const at::Tensor& loss_kind, const at::Tensor& loss_eps, int64_t k,
            int64_t clamp_mode) {
    TORCH_CHECK_VALUE(program_rows.scalar_type() == at::kInt && program_rows.dim() == 3 &&
                          program_rows.size(0) == k && program_rows.size(2) == 3 && program_rows.size(1) >= 1 &&
                          program_rows.size(1) <= kMaxSteps,
                      "programs must be int32 [K, L, 3] with 1 <= L <= ", kMaxSteps);
    programs = program_rows.contiguous();
    const std::string problem = check_programs(programs.data_ptr<int32_t>(), programs.size(0), programs.size(1));
    TORCH_CHECK_VALUE(problem.empty(), problem);
    TORCH_CHECK_VALUE(loss_kind.scalar_type() == at::kInt && loss_kind.sizes() == at::IntArrayRef({k}),
                      "loss_kind must be int32 [K]");
    TORCH_CHECK_VALUE(loss_eps.scalar_type() == at::kFloat && loss_eps.sizes() == at::IntArrayRef({k}),
                      "loss_eps must be float32 [K]");
    kinds = loss_kind.contiguous();
    eps = loss_eps.contiguous();
    for (int64_t i = 0; i < k; ++i) {
      const int kind = kinds.data_ptr<int32_t>()[i];
      TORCH_CHECK_VALUE(kind >= 0 && kind < kNumLossKinds, "loss kind ", kind, " out of range");
      // A program's epsilon: kPaperEps (0, the paper's smoothing) or its own, finite and > 0.
      const float e = eps.data_ptr<float>()[i];
      TORCH_CHECK_VALUE(kind != kLossProgram || e == kPaperEps || (std::isfinite(e) && e > 0.0f), "loss_eps[", i,
                        "] = ", e, ": a program's smoothing epsilon must be finite and > 0 (0: the paper's smoothing)");
    }
    TORCH_CHECK_VALUE(clamp_mode >= 0 && clamp_mode < kNumClampModes, "clamp mode ", clamp_mode, " out of range");
    clamp = static_cast<int>(clamp_mode);
  }

  Loss of(int64_t k) const {
    return {kinds.data_ptr<int32_t>()[k], eps.data_ptr<float>()[k],
            programs.data_ptr<int32_t>() + k * programs.size(1) * 3, static_cast<int>(programs.size(1)), clamp};
  }
};

// The example orders of an epoch: one for all candidates (users, items, labels [N]), or several
// ([S, N], each run of a population its own data order, drawn from its seed) with order_row[k]
// naming candidate k's row (without order_row: S = K, row k). Candidate k's examples start at
// offset(k) of the flat tensors.
struct Orders {
  std::vector<int64_t> row_of;
  int64_t n;

  Orders(const at::Tensor& users, const at::Tensor& items, const at::Tensor& labels,
         const std::optional<at::Tensor>& order_row, int64_t k, int64_t num_users, int64_t num_items)
      : row_of(k, 0) {
    check_ids(users, num_users, "users", true);
    check_ids(items, num_items, "items", true);
    const bool rows = users.dim() == 2;
    TORCH_CHECK_VALUE(labels.scalar_type() == at::kFloat && labels.is_contiguous() && users.is_contiguous() &&
                          items.is_contiguous() && labels.sizes() == users.sizes() && items.sizes() == users.sizes(),
                      "users, items and labels must be contiguous tensors of the same shape, [N] or [S, N]");
    if (order_row.has_value()) {
      TORCH_CHECK_VALUE(rows, "order_row needs users, items and labels of shape [S, N]");
      const at::Tensor r = order_row->contiguous();
      TORCH_CHECK_VALUE(r.scalar_type() == at::kLong && r.sizes() == at::IntArrayRef({k}),
                        "order_row must be int64 [K]");
      for (int64_t i = 0; i < k; ++i) {
        row_of[i] = r.data_ptr<int64_t>()[i];
        TORCH_CHECK_VALUE(row_of[i] >= 0 && row_of[i] < users.size(0), "order_row[", i, "] = ", row_of[i],
                          " is not a row of the ", users.size(0), " orders");
      }
    } else if (rows) {
      TORCH_CHECK_VALUE(users.size(0) == k, "[S, N] orders without order_row need S = K, got S = ", users.size(0));
      for (int64_t i = 0; i < k; ++i) row_of[i] = i;
    }
    n = rows ? users.size(1) : users.numel();
    TORCH_CHECK_VALUE(n >= 1, "no training examples");
    TORCH_CHECK_VALUE(at::isfinite(labels).all().item<bool>(), "labels contain NaN or inf");
  }

  int64_t offset(int64_t k) const { return row_of[k] * n; }
};

inline void check_batch_size(int64_t batch_size) {
  TORCH_CHECK_VALUE(batch_size >= 1 && batch_size <= cpu::kBlock, "batch size must be in 1..", cpu::kBlock, ", got ",
                    batch_size);
}

}  // namespace lossgen
