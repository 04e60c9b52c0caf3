#include "core/mf_step.h"

#include <cmath>
#include <limits>

#include "core/eval_cpu.h"
#include "named_losses.h"
#include "op_math.h"

namespace lossgen::mf {
namespace {

constexpr int kMaxDim = 512;
// Below this the stored values would lose precision against the shrinking scale.
constexpr double kRenormalizeBelow = 1e-3;

float sigmoid(float s) { return 1.0f / (1.0f + std::exp(-s)); }

float dot(const float* a, const float* b, int64_t n) {
  float acc = 0.0f;
  for (int64_t d = 0; d < n; ++d) acc += a[d] * b[d];
  return acc;
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

double sgd_step(const Params& p, const Loss& loss, const Batch& batch, float lr, float l2) {
  const int n = batch.size;
  alignas(64) float score[cpu::kBlock], y_hat[cpu::kBlock], coef[cpu::kBlock];
  alignas(64) float values[cpu::kBlock], d_y_hat[cpu::kBlock];
  predict(p, batch.users, batch.items, n, score);
  for (int b = 0; b < n; ++b) y_hat[b] = sigmoid(score[b]);

  double total = 0.0;
  if (loss.kind == kLossProgram) {
    if (cpu::eval_block(loss.program, loss.num_steps, loss.clamp, y_hat, batch.labels, n, values, d_y_hat) !=
        cpu::kBlockOk) {
      return std::numeric_limits<double>::quiet_NaN();
    }
    for (int b = 0; b < n; ++b) {
      total += values[b];
      coef[b] = d_y_hat[b] * y_hat[b] * (1.0f - y_hat[b]);
    }
  } else {
    for (int b = 0; b < n; ++b) {
      float value, d_score;
      named_loss_on_score(loss.kind, score[b], y_hat[b], batch.labels[b], loss.eps, value, d_score);
      total += value;
      coef[b] = d_score;
    }
  }
  for (int b = 0; b < n; ++b) coef[b] /= static_cast<float>(n);  // batch mean

  // True parameters are scale * stored; after the step the scale is s_next. The gradient of a
  // row, in stored units: grad_true / s_next, where grad_true uses the other factor's true value.
  const double s = *p.scale;
  const double s_next = s * (1.0 - static_cast<double>(lr) * l2);
  const float emb_step = static_cast<float>(lr * s / s_next);  // times coef * other stored row
  const float bias_step = static_cast<float>(lr / s_next);     // times coef
  const int64_t dim = p.dim;

  // Gradients from the parameters before the step (a user or item may occur twice in a batch).
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
  return total / n;
}

double sgd_epoch(const Params& p, const Loss& loss, const int64_t* users, const int64_t* items, const float* labels,
                 int64_t n, int batch_size, float lr, float l2) {
  double total = 0.0;
  for (int64_t start = 0; start < n; start += batch_size) {
    const int size = static_cast<int>(n - start < batch_size ? n - start : batch_size);
    const Batch batch{users + start, items + start, labels + start, size};
    const double mean = sgd_step(p, loss, batch, lr, l2);
    if (std::isnan(mean)) return mean;
    total += mean * size;
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
