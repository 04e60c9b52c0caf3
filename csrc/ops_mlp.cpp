// The fused training epoch and the evaluation-mode scores of a population of MLP recommenders
// (CPU only), registered as torch.ops.lossgen.mlp_train_epoch / mlp_predict. Each candidate's
// parameters are its own, so candidates run in parallel, each through its whole epoch on one thread.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "core/mlp_step.h"
#include "ops_train.h"

namespace lossgen {
namespace {

constexpr int kDense = 10;  // w1, b1, g1, beta1, w2, b2, g2, beta2, w3, b3
constexpr int kStats = 4;   // rm1, rv1, rm2, rv2

struct Shapes {
  int64_t k, users, items, dim;
};

// The population's tensors: tables [K, U, d] and [K, I, d] (contiguous: a candidate's table is one
// block, which its thread keeps in cache), scale float64 [K]; dense = (w1 [K, 2d, 64] stored as
// [K, 64, 2d], b1, g1, beta1 [K, 64], w2 [K, 64, 16], b2, g2, beta2 [K, 16], w3 [K, 16, 1], b3
// [K, 1]); stats = (rm1, rv1 [K, 64], rm2, rv2 [K, 16]); float32 CPU tensors.
Shapes check_population(const at::Tensor& user_emb, const at::Tensor& item_emb, const at::Tensor& scale,
                        at::TensorList dense, at::TensorList stats) {
  for (const at::Tensor* t : {&user_emb, &item_emb}) {
    TORCH_CHECK_VALUE(t->scalar_type() == at::kFloat && t->dim() == 3 && t->is_contiguous() && t->device().is_cpu(),
                      "MLP embedding tables must be contiguous float32 CPU tensors [K, rows, dim]");
  }
  const Shapes s{user_emb.size(0), user_emb.size(1), item_emb.size(1), user_emb.size(2)};
  TORCH_CHECK_VALUE(item_emb.size(0) == s.k && item_emb.size(2) == s.dim, "item embeddings must be [K, I, dim]");
  TORCH_CHECK_VALUE(s.dim >= 1 && s.dim <= mlp::kMaxDim, "embedding dim ", s.dim, " not in 1..", mlp::kMaxDim);
  TORCH_CHECK_VALUE(scale.scalar_type() == at::kDouble && scale.is_contiguous() &&
                        scale.sizes() == at::IntArrayRef({s.k}),
                    "scale must be contiguous float64 [K]");
  TORCH_CHECK_VALUE(dense.size() == kDense, "dense must hold the ", kDense, " tensors w1, b1, g1, beta1, w2, b2, g2, ",
                    "beta2, w3, b3");
  TORCH_CHECK_VALUE(stats.size() == kStats, "stats must hold the ", kStats, " tensors rm1, rv1, rm2, rv2");
  const int64_t h1 = mlp::kHidden1, h2 = mlp::kHidden2;
  const std::vector<int64_t> shapes[kDense] = {{s.k, 2 * s.dim, h1}, {s.k, h1}, {s.k, h1}, {s.k, h1}, {s.k, h1, h2},
                                               {s.k, h2},           {s.k, h2}, {s.k, h2}, {s.k, h2, 1}, {s.k, 1}};
  const char* names[kDense] = {"w1", "b1", "g1", "beta1", "w2", "b2", "g2", "beta2", "w3", "b3"};
  for (int i = 0; i < kDense; ++i) {
    const at::Tensor& t = dense[i];
    TORCH_CHECK_VALUE(t.scalar_type() == at::kFloat && t.device().is_cpu() && t.sizes() == at::IntArrayRef(shapes[i]),
                      names[i], " must be a float32 CPU tensor of shape ", at::IntArrayRef(shapes[i]), ", got ",
                      t.sizes());
    // w1 is read and written as [K, 64, 2d] memory (its transpose), the others as they are
    TORCH_CHECK_VALUE(i == 0 ? t.transpose(1, 2).is_contiguous() : t.is_contiguous(), names[i],
                      i == 0 ? " must be a [K, 2d, 64] view of contiguous [K, 64, 2d] memory" : " must be contiguous");
  }
  const char* stat_names[kStats] = {"rm1", "rv1", "rm2", "rv2"};
  for (int i = 0; i < kStats; ++i) {
    const at::Tensor& t = stats[i];
    TORCH_CHECK_VALUE(t.scalar_type() == at::kFloat && t.device().is_cpu() && t.is_contiguous() &&
                          t.sizes() == at::IntArrayRef({s.k, i < 2 ? h1 : h2}),
                      stat_names[i], " must be a contiguous float32 CPU tensor [K, ", i < 2 ? h1 : h2, "]");
  }
  return s;
}

// Runs work(i) for i in [0, n) on the intra-op threads, each thread taking the next item when it
// is done with one: other jobs on the machine slow some cores down, and a static split would wait
// for the slowest.
template <class Work>
void parallel_items(int64_t n, const Work& work) {
  std::atomic<int64_t> next{0};
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n));
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    for (int64_t worker = begin; worker < end; ++worker) {
      for (int64_t i = next++; i < n; i = next++) work(i);
    }
  });
}

mlp::Params params_of(int64_t k, const Shapes& s, const at::Tensor& user_emb, const at::Tensor& item_emb,
                      const at::Tensor& scale, at::TensorList dense, at::TensorList stats, uint64_t rng_key,
                      int64_t* steps) {
  const auto at = [k](const at::Tensor& t) { return t.data_ptr<float>() + k * (t.numel() / t.size(0)); };
  return {user_emb.data_ptr<float>() + k * s.users * s.dim,
          item_emb.data_ptr<float>() + k * s.items * s.dim,
          scale.data_ptr<double>() + k,
          at(dense[0]), at(dense[1]), at(dense[2]), at(dense[3]),
          at(dense[4]), at(dense[5]), at(dense[6]), at(dense[7]),
          at(dense[8]), at(dense[9]),
          at(stats[0]), at(stats[1]), at(stats[2]), at(stats[3]),
          rng_key, steps, s.users, s.items, s.dim};
}

// SGD over the examples in the given order, in batches of batch_size (see mlp::train_epoch):
// each candidate runs its whole sequence of steps on one thread, the threads taking candidates one
// at a time. Returns the mean losses [K].
at::Tensor mlp_train_epoch(at::Tensor& user_emb, at::Tensor& item_emb, at::Tensor& scale, at::TensorList dense,
                           at::TensorList stats, const at::Tensor& rng_key, at::Tensor& steps,
                           const at::Tensor& programs, const at::Tensor& loss_kind, const at::Tensor& loss_eps,
                           const at::Tensor& users, const at::Tensor& items, const at::Tensor& labels,
                           int64_t batch_size, double lr, double l2, int64_t clamp,
                           const std::optional<at::Tensor>& order_row) {
  const Shapes s = check_population(user_emb, item_emb, scale, dense, stats);
  for (const at::Tensor* t : {&rng_key, static_cast<const at::Tensor*>(&steps)}) {
    TORCH_CHECK_VALUE(t->scalar_type() == at::kLong && t->is_contiguous() && t->sizes() == at::IntArrayRef({s.k}),
                      "rng_key and steps must be contiguous int64 [K]");
  }
  const LossTable table(programs, loss_kind, loss_eps, s.k, clamp);
  const Orders orders(users, items, labels, order_row, s.k, s.users, s.items);
  check_batch_size(batch_size);
  TORCH_CHECK_VALUE(std::isfinite(lr) && std::isfinite(l2), "lr and l2 must be finite");

  at::Tensor losses = at::empty({s.k}, labels.options().dtype(at::kDouble));
  std::atomic<int64_t> bad{-1};
  parallel_items(s.k, [&](int64_t k) {
    const mlp::Params p = params_of(k, s, user_emb, item_emb, scale, dense, stats,
                                    static_cast<uint64_t>(rng_key.data_ptr<int64_t>()[k]),
                                    steps.data_ptr<int64_t>() + k);
    const int64_t row = orders.offset(k);
    double value = 0.0;
    if (!mlp::train_epoch(p, table.of(k), users.data_ptr<int64_t>() + row, items.data_ptr<int64_t>() + row,
                          labels.data_ptr<float>() + row, orders.n, static_cast<int>(batch_size), lr, l2,
                          &value)) {
      int64_t none = -1;
      bad.compare_exchange_strong(none, k);
      value = std::numeric_limits<double>::quiet_NaN();
    }
    losses.data_ptr<double>()[k] = value;
  });
  TORCH_CHECK_VALUE(bad < 0, "candidate ", bad.load(), ": model predictions became NaN or inf (diverged training)");
  return losses;
}

// Evaluation-mode scores [K, N] (running statistics, no dropout) of N (user, item) pairs.
at::Tensor mlp_predict(const at::Tensor& user_emb, const at::Tensor& item_emb, const at::Tensor& scale,
                       at::TensorList dense, at::TensorList stats, const at::Tensor& users, const at::Tensor& items) {
  const Shapes s = check_population(user_emb, item_emb, scale, dense, stats);
  check_ids(users, s.users, "users");
  check_ids(items, s.items, "items");
  TORCH_CHECK_VALUE(items.numel() == users.numel(), "users and items must have the same length");
  const int64_t n = users.numel();
  at::Tensor scores = at::empty({s.k, n}, user_emb.options());
  // work items: (candidate, range of pairs), ranges long enough to amortise a candidate's set-up
  constexpr int64_t kRange = 4096;
  const int64_t ranges = std::max<int64_t>(1, (n + kRange - 1) / kRange);
  parallel_items(s.k * ranges, [&](int64_t item) {
    const int64_t k = item / ranges, start = (item % ranges) * kRange, count = std::min(kRange, n - start);
    if (count <= 0) return;
    const mlp::Params p = params_of(k, s, user_emb, item_emb, scale, dense, stats, 0, nullptr);
    mlp::predict(p, users.data_ptr<int64_t>() + start, items.data_ptr<int64_t>() + start, count,
                 scores.data_ptr<float>() + k * n + start);
  });
  return scores;
}

}  // namespace
}  // namespace lossgen

// CPU only (no CUDA kernel): the MLP population lives on the CPU.
TORCH_LIBRARY_FRAGMENT(lossgen, m) {
  m.def(
      "mlp_train_epoch(Tensor(a!) user_emb, Tensor(b!) item_emb, Tensor(c!) scale, Tensor(d!)[] dense, "
      "Tensor(e!)[] stats, Tensor rng_key, Tensor(f!) steps, Tensor programs, Tensor loss_kind, Tensor loss_eps, "
      "Tensor users, Tensor items, Tensor labels, int batch_size, float lr, float l2, int clamp, "
      "Tensor? order_row=None) -> Tensor");
  m.def(
      "mlp_predict(Tensor user_emb, Tensor item_emb, Tensor scale, Tensor[] dense, Tensor[] stats, Tensor users, "
      "Tensor items) -> Tensor");
}

TORCH_LIBRARY_IMPL(lossgen, CPU, m) {
  m.impl("mlp_train_epoch", &lossgen::mlp_train_epoch);
  m.impl("mlp_predict", &lossgen::mlp_predict);
}
