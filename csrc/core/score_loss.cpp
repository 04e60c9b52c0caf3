#include "core/score_loss.h"

#include <cmath>

#include "core/eval_cpu.h"
#include "named_losses.h"
#include "op_math.h"

namespace lossgen {
namespace {

float sigmoid(float s) { return 1.0f / (1.0f + std::exp(-s)); }

}  // namespace

bool score_gradients(const Loss& loss, const float* score, const float* labels, int n, float* coef, double* total) {
  alignas(64) float y_hat[cpu::kBlock], values[cpu::kBlock], d_y_hat[cpu::kBlock];
  for (int b = 0; b < n; ++b) y_hat[b] = sigmoid(score[b]);
  double sum = 0.0;
  if (loss.kind == kLossProgram) {
    const int status =
        cpu::eval_block(loss.program, loss.num_steps, loss.clamp, y_hat, labels, n, values, d_y_hat, loss.eps);
    if (status != cpu::kBlockOk) return false;
    for (int b = 0; b < n; ++b) {
      sum += values[b];
      coef[b] = d_y_hat[b] * y_hat[b] * (1.0f - y_hat[b]);
    }
  } else {
    for (int b = 0; b < n; ++b) {
      float value, d_score;
      named_loss_on_score(loss.kind, score[b], y_hat[b], labels[b], loss.eps, value, d_score);
      sum += value;
      coef[b] = d_score;
    }
  }
  for (int b = 0; b < n; ++b) coef[b] /= static_cast<float>(n);  // batch mean
  *total = sum;
  return true;
}

}  // namespace lossgen
