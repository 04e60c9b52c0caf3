// The fused training epoch of a population of biased MF models (CPU), registered as
// torch.ops.lossgen.mf_train_epoch / mf_predict. Each candidate's tables are its own, so candidates
// run in parallel without ever writing the same rows.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <atomic>
#include <optional>
#include <vector>
#include <cmath>

#include "core/mf_step.h"
#include "ops_train.h"

namespace lossgen {
namespace {

struct Tables {
  int64_t k, users, items, dim;
};

Tables check_tables(const at::Tensor& user_emb, const at::Tensor& item_emb, const at::Tensor& user_bias,
                    const at::Tensor& item_bias, const at::Tensor& global_bias, const at::Tensor& scale) {
  for (const at::Tensor* t : {&user_emb, &item_emb, &user_bias, &item_bias, &global_bias}) {
    TORCH_CHECK_VALUE(t->scalar_type() == at::kFloat && t->is_contiguous() && t->device().is_cpu(),
                      "MF parameters must be contiguous float32 CPU tensors");
  }
  TORCH_CHECK_VALUE(scale.scalar_type() == at::kDouble && scale.is_contiguous(), "scale must be contiguous float64");
  TORCH_CHECK_VALUE(user_emb.dim() == 3 && item_emb.dim() == 3, "embeddings must be [K, rows, dim]");
  const Tables t{user_emb.size(0), user_emb.size(1), item_emb.size(1), user_emb.size(2)};
  TORCH_CHECK_VALUE(item_emb.size(0) == t.k && item_emb.size(2) == t.dim, "item embeddings must be [K, I, dim]");
  TORCH_CHECK_VALUE(user_bias.sizes() == at::IntArrayRef({t.k, t.users}), "user_bias must be [K, U]");
  TORCH_CHECK_VALUE(item_bias.sizes() == at::IntArrayRef({t.k, t.items}), "item_bias must be [K, I]");
  TORCH_CHECK_VALUE(global_bias.sizes() == at::IntArrayRef({t.k}) && scale.sizes() == at::IntArrayRef({t.k}),
                    "global_bias and scale must be [K]");
  TORCH_CHECK_VALUE(t.dim <= 512, "embedding dim ", t.dim, " > 512");
  return t;
}

mf::Params params_of(int64_t k, const Tables& t, at::Tensor& user_emb, at::Tensor& item_emb, at::Tensor& user_bias,
                     at::Tensor& item_bias, at::Tensor& global_bias, at::Tensor& scale) {
  return {user_emb.data_ptr<float>() + k * t.users * t.dim,
          item_emb.data_ptr<float>() + k * t.items * t.dim,
          user_bias.data_ptr<float>() + k * t.users,
          item_bias.data_ptr<float>() + k * t.items,
          global_bias.data_ptr<float>() + k,
          scale.data_ptr<double>() + k,
          t.users,
          t.items,
          t.dim};
}

// SGD (empty adam_moments) or lazy Adam over the examples in the given order, in batches of
// batch_size: each candidate runs its whole sequence of steps on one thread, so its tables stay
// in that core's cache.
at::Tensor mf_train_epoch(at::Tensor& user_emb, at::Tensor& item_emb, at::Tensor& user_bias, at::Tensor& item_bias,
                          at::Tensor& global_bias, at::Tensor& scale, at::Tensor& adam_moments, at::Tensor& adam_step,
                          const at::Tensor& programs, const at::Tensor& loss_kind, const at::Tensor& loss_eps,
                          const at::Tensor& users, const at::Tensor& items, const at::Tensor& labels,
                          int64_t batch_size, double lr, double l2, double beta1, double beta2, double adam_eps,
                          int64_t clamp, const std::optional<at::Tensor>& order_row) {
  const Tables t = check_tables(user_emb, item_emb, user_bias, item_bias, global_bias, scale);
  const LossTable table(programs, loss_kind, loss_eps, t.k, clamp);
  const Orders orders(users, items, labels, order_row, t.k, t.users, t.items);
  check_batch_size(batch_size);
  const bool use_adam = adam_moments.numel() > 0;
  if (use_adam) {
    const int64_t size = (t.users + t.items) * t.dim + t.users + t.items + 1;
    TORCH_CHECK_VALUE(adam_moments.scalar_type() == at::kFloat && adam_moments.is_contiguous() &&
                          adam_moments.sizes() == at::IntArrayRef({t.k, 2, size}),
                      "adam_moments must be contiguous float32 [K, 2, ", size, "]");
    TORCH_CHECK_VALUE(adam_step.scalar_type() == at::kLong && adam_step.is_contiguous() &&
                          adam_step.sizes() == at::IntArrayRef({t.k}),
                      "adam_step must be contiguous int64 [K]");
    TORCH_CHECK_VALUE((scale == 1.0).all().item<bool>(), "Adam needs unscaled parameters (scale 1)");
    TORCH_CHECK_VALUE(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 && adam_eps > 0,
                      "Adam needs 0 <= beta1, beta2 < 1 and eps > 0");
  }

  at::Tensor losses = at::empty({t.k}, labels.options().dtype(at::kDouble));
  std::atomic<bool> bad{false};
  at::parallel_for(0, t.k, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const mf::Params p = params_of(k, t, user_emb, item_emb, user_bias, item_bias, global_bias, scale);
      const mf::Loss loss = table.of(k);
      mf::Adam adam{nullptr, nullptr, static_cast<float>(beta1), static_cast<float>(beta2),
                    static_cast<float>(adam_eps)};
      if (use_adam) {
        adam.moments = adam_moments.data_ptr<float>() + k * adam_moments.size(1) * adam_moments.size(2);
        adam.step = adam_step.data_ptr<int64_t>() + k;
      }
      const int64_t row = orders.offset(k), n = orders.n;
      const double value = mf::train_epoch(p, loss, users.data_ptr<int64_t>() + row, items.data_ptr<int64_t>() + row,
                                           labels.data_ptr<float>() + row, n, static_cast<int>(batch_size),
                                           static_cast<float>(lr), static_cast<float>(l2), use_adam ? &adam : nullptr);
      losses.data_ptr<double>()[k] = value;
      if (std::isnan(value)) bad = true;
    }
  });
  TORCH_CHECK_VALUE(!bad, "model predictions became NaN or inf (diverged training)");
  return losses;
}

at::Tensor mf_predict(const at::Tensor& user_emb, const at::Tensor& item_emb, const at::Tensor& user_bias,
                      const at::Tensor& item_bias, const at::Tensor& global_bias, const at::Tensor& scale,
                      const at::Tensor& users, const at::Tensor& items) {
  const Tables t = check_tables(user_emb, item_emb, user_bias, item_bias, global_bias, scale);
  check_ids(users, t.users, "users");
  check_ids(items, t.items, "items");
  TORCH_CHECK_VALUE(items.numel() == users.numel(), "users and items must have the same length");
  const int64_t n = users.numel();
  at::Tensor scores = at::empty({t.k, n}, user_emb.options());
  // const_cast: params_of wants mutable tensors, predict only reads them.
  auto& ue = const_cast<at::Tensor&>(user_emb);
  auto& ie = const_cast<at::Tensor&>(item_emb);
  auto& ub = const_cast<at::Tensor&>(user_bias);
  auto& ib = const_cast<at::Tensor&>(item_bias);
  auto& gb = const_cast<at::Tensor&>(global_bias);
  auto& sc = const_cast<at::Tensor&>(scale);
  at::parallel_for(0, t.k, 1, [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      const mf::Params p = params_of(k, t, ue, ie, ub, ib, gb, sc);
      mf::predict(p, users.data_ptr<int64_t>(), items.data_ptr<int64_t>(), n, scores.data_ptr<float>() + k * n);
    }
  });
  return scores;
}

}  // namespace
}  // namespace lossgen

TORCH_LIBRARY_FRAGMENT(lossgen, m) {
  m.def(
      "mf_train_epoch(Tensor(a!) user_emb, Tensor(b!) item_emb, Tensor(c!) user_bias, Tensor(d!) item_bias, "
      "Tensor(e!) global_bias, Tensor(f!) scale, Tensor(g!) adam_moments, Tensor(h!) adam_step, Tensor programs, "
      "Tensor loss_kind, Tensor loss_eps, Tensor users, Tensor items, Tensor labels, int batch_size, float lr, "
      "float l2, float beta1, float beta2, float adam_eps, int clamp, Tensor? order_row=None) -> Tensor");
  m.def(
      "mf_predict(Tensor user_emb, Tensor item_emb, Tensor user_bias, Tensor item_bias, Tensor global_bias, "
      "Tensor scale, Tensor users, Tensor items) -> Tensor");
}

TORCH_LIBRARY_IMPL(lossgen, CPU, m) {
  m.impl("mf_train_epoch", &lossgen::mf_train_epoch);
  m.impl("mf_predict", &lossgen::mf_predict);
}
