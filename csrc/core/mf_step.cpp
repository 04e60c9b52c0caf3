#include "core/mf_step.h"

#include <cmath>
#include <limits>

#include "core/eval_cpu.h"
#include "core/score_loss.h"

namespace lossgen::mf {
namespace {

constexpr int kMaxDim = 512;
// Below this the stored values would lose precision against the shrinking scale.
constexpr double kRenormalizeBelow = 1e-3;

float dot(const float* a, const float* b, int64_t n) {
  float acc = 0.0f;
  for (int64_t d = 0; d < n; ++d) acc += a[d] * b[d];
  return acc;
}

// d(batch-mean loss)/d(score) per example into coef; returns the batch's summed loss, or NaN.
double score_gradients(const Params& p, const Loss& loss, const Batch& batch, float* coef) {
  alignas(64) float score[cpu::kBlock];
  predict(p, batch.users, batch.items, batch.size, score);
  double total = 0.0;
  if (!lossgen::score_gradients(loss, score, batch.labels, batch.size, coef, &total)) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  return total;
}

void sgd_update(const Params& p, const Batch& batch, const float* coef, float lr, float l2) {
  const int n = batch.size;
  // True parameters are scale * stored; after the step the scale is s_next. The gradient of a
  // row, in stored units: grad_true / s_next, where grad_true uses the other factor's true value.
  const double s = *p.scale;
  const double s_next = s * (1.0 - static_cast<double>(lr) * l2);
  const float emb_step = static_cast<float>(lr * s / s_next);  // times coef * other stored row
  const float bias_step = static_cast<float>(lr / s_next);     // times coef
  const int64_t dim = p.dim;

  // Gradients from the parameters before the step (a user or item may occur twice in a batch;
  // SGD is linear in the gradient, so applying duplicates one after the other is exact).
  static thread_local float grad_user[cpu::kBlock * kMaxDim];
  static thread_local float grad_item[cpu::kBlock * kMaxDim];
  for (int b = 0; b < n; ++b) {
    const float* u = p.user_emb + batch.users[b] * dim;
    const float* v = p.item_emb + batch.items[b] * dim;
    for (int64_t d = 0; d < dim; ++d) {
      grad_user[b * dim + d] = coef[b] * v[d];
      grad_item[b * dim + d] = coef[b] * u[d];
    }
  }
  float global = 0.0f;
  for (int b = 0; b < n; ++b) {
    float* u = p.user_emb + batch.users[b] * dim;
    float* v = p.item_emb + batch.items[b] * dim;
    for (int64_t d = 0; d < dim; ++d) {
      u[d] -= emb_step * grad_user[b * dim + d];
      v[d] -= emb_step * grad_item[b * dim + d];
    }
    p.user_bias[batch.users[b]] -= bias_step * coef[b];
    p.item_bias[batch.items[b]] -= bias_step * coef[b];
    global += coef[b];
  }
  *p.global_bias -= bias_step * global;
  *p.scale = s_next;
  if (s_next < kRenormalizeBelow) renormalize(p);
}

// Row accumulators of one batch for lazy Adam: the gradient of each distinct touched row.
struct RowGrads {
  std::vector<int32_t> slot_of;  // row -> accumulator slot, -1 when untouched (reset after use)
  std::vector<int64_t> rows;     // slot -> row
  std::vector<float> grad;       // slot -> dim (+1 for the bias) values

  explicit RowGrads(int64_t num_rows, int64_t width) : slot_of(num_rows, -1), grad(cpu::kBlock * width) {
    rows.reserve(cpu::kBlock);
  }
};

// One Adam update of `count` scalars at w (moments at m, v), gradient g plus coupled L2. Rows
// (sparse) use torch.optim.SparseAdam's form, eps added to sqrt(v) before bias correction; the
// dense global bias uses torch.optim.Adam's, eps added after it (the MLP population does the same).
void adam_update(float* w, float* m, float* v, const float* g, int64_t count, float lr, float l2, const Adam& a,
                 float bias1, float bias2, bool sparse) {
  const float sqrt_bias2 = std::sqrt(bias2);
  for (int64_t j = 0; j < count; ++j) {
    const float grad = g[j] + l2 * w[j];
    m[j] = a.beta1 * m[j] + (1.0f - a.beta1) * grad;
    v[j] = a.beta2 * v[j] + (1.0f - a.beta2) * grad * grad;
    if (sparse) {
      w[j] -= (lr * sqrt_bias2 / bias1) * m[j] / (std::sqrt(v[j]) + a.eps);
    } else {
      w[j] -= (lr / bias1) * m[j] / (std::sqrt(v[j]) / sqrt_bias2 + a.eps);
    }
  }
}

void adam_update_rows(const Params& p, const Batch& batch, const float* coef, float lr, float l2, const Adam& a,
                      RowGrads& users, RowGrads& items) {
  const int64_t dim = p.dim, width = dim + 1;  // embedding row, then its bias
  // Accumulate each distinct row's gradient from the parameters before the step.
  for (RowGrads* acc : {&users, &items}) acc->rows.clear();
  for (int b = 0; b < batch.size; ++b) {
    const int64_t u = batch.users[b], i = batch.items[b];
    const float* urow = p.user_emb + u * dim;
    const float* irow = p.item_emb + i * dim;
    for (int side = 0; side < 2; ++side) {
      RowGrads& acc = side == 0 ? users : items;
      const int64_t row = side == 0 ? u : i;
      const float* other = side == 0 ? irow : urow;
      int32_t slot = acc.slot_of[row];
      if (slot < 0) {
        slot = static_cast<int32_t>(acc.rows.size());
        acc.slot_of[row] = slot;
        acc.rows.push_back(row);
        for (int64_t d = 0; d < width; ++d) acc.grad[slot * width + d] = 0.0f;
      }
      float* g = &acc.grad[slot * width];
      for (int64_t d = 0; d < dim; ++d) g[d] += coef[b] * other[d];
      g[dim] += coef[b];
    }
  }
  const int64_t t = ++*a.step;
  const float bias1 = static_cast<float>(1.0 - std::pow(static_cast<double>(a.beta1), static_cast<double>(t)));
  const float bias2 = static_cast<float>(1.0 - std::pow(static_cast<double>(a.beta2), static_cast<double>(t)));
  const int64_t size = p.size();
  float* m = a.moments;
  float* v = a.moments + size;
  const int64_t item_emb_at = p.num_users * dim, user_bias_at = item_emb_at + p.num_items * dim;
  const int64_t item_bias_at = user_bias_at + p.num_users, global_at = item_bias_at + p.num_items;
  for (int side = 0; side < 2; ++side) {
    RowGrads& acc = side == 0 ? users : items;
    float* emb = side == 0 ? p.user_emb : p.item_emb;
    float* bias = side == 0 ? p.user_bias : p.item_bias;
    const int64_t emb_at = side == 0 ? 0 : item_emb_at, bias_at = side == 0 ? user_bias_at : item_bias_at;
    for (size_t slot = 0; slot < acc.rows.size(); ++slot) {
      const int64_t row = acc.rows[slot];
      const float* g = &acc.grad[slot * width];
      adam_update(emb + row * dim, m + emb_at + row * dim, v + emb_at + row * dim, g, dim, lr, l2, a, bias1, bias2,
                  true);
      adam_update(bias + row, m + bias_at + row, v + bias_at + row, g + dim, 1, lr, l2, a, bias1, bias2, true);
      acc.slot_of[row] = -1;
    }
  }
  float global = 0.0f;
  for (int b = 0; b < batch.size; ++b) global += coef[b];
  adam_update(p.global_bias, m + global_at, v + global_at, &global, 1, lr, l2, a, bias1, bias2, false);
}

}  // namespace

void predict(const Params& p, const int64_t* users, const int64_t* items, int64_t n, float* scores) {
  const double s = *p.scale;
  const float s2 = static_cast<float>(s * s), s1 = static_cast<float>(s);
  for (int64_t b = 0; b < n; ++b) {
    const int64_t u = users[b], i = items[b];
    scores[b] = s2 * dot(p.user_emb + u * p.dim, p.item_emb + i * p.dim, p.dim) +
                s1 * (p.user_bias[u] + p.item_bias[i] + *p.global_bias);
  }
}

double train_epoch(const Params& p, const Loss& loss, const int64_t* users, const int64_t* items, const float* labels,
                   int64_t n, int batch_size, float lr, float l2, const Adam* adam) {
  alignas(64) float coef[cpu::kBlock];
  RowGrads user_rows(adam ? p.num_users : 0, p.dim + 1), item_rows(adam ? p.num_items : 0, p.dim + 1);
  double total = 0.0;
  for (int64_t start = 0; start < n; start += batch_size) {
    const int size = static_cast<int>(n - start < batch_size ? n - start : batch_size);
    const Batch batch{users + start, items + start, labels + start, size};
    const double summed = score_gradients(p, loss, batch, coef);
    if (std::isnan(summed)) return summed;
    total += summed;
    if (adam == nullptr) {
      sgd_update(p, batch, coef, lr, l2);
    } else {
      adam_update_rows(p, batch, coef, lr, l2, *adam, user_rows, item_rows);
    }
  }
  return total / static_cast<double>(n);
}

void renormalize(const Params& p) {
  const float s = static_cast<float>(*p.scale);
  for (int64_t j = 0; j < p.num_users * p.dim; ++j) p.user_emb[j] *= s;
  for (int64_t j = 0; j < p.num_items * p.dim; ++j) p.item_emb[j] *= s;
  for (int64_t j = 0; j < p.num_users; ++j) p.user_bias[j] *= s;
  for (int64_t j = 0; j < p.num_items; ++j) p.item_bias[j] *= s;
  *p.global_bias *= s;
  *p.scale = 1.0;
}

}  // namespace lossgen::mf
