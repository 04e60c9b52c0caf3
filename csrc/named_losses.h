// The handcrafted and paper-found losses by name (value and derivative with respect to the
// pre-sigmoid score s, where y_hat = sigmoid(s)), for the fused recommender training steps.
// lossgen/losses.py holds the same formulas in PyTorch; a test checks they agree.
#pragma once

#include <cmath>

#include "op_math.h"

namespace lossgen {

enum LossKind : int32_t {
  kLossProgram = 0,  // a candidate program, evaluated by the program kernels
  kLossMSE = 1,      // (y_hat - y)^2
  kLossBCE = 2,      // -(y log y_hat + (1 - y) log(1 - y_hat)), from the score for stability
  kLossHinge = 3,    // max(0, 1 - t s), t = 2y - 1: margin on the pre-sigmoid score
  kLossFocal = 4,    // -(y (1 - y_hat)^2 log y_hat + (1 - y) y_hat^2 log(1 - y_hat))  (gamma 2)
  kLossMaxR = 5,     // max((y_hat + e) / (y + e), (y + e) / (y_hat + e))
  kLossSumR = 6,     // (y_hat + y + e) / (y_hat y + e)
  kLossLogMin = 7,   // log((1 + e) / (min(y_hat, y) + e)) (y_hat + y + min(y_hat, y))
  kNumLossKinds = 8,
};

// log(sigmoid(s)) and log(1 - sigmoid(s)) without overflow.
LG_HD float log_sigmoid(float s) { return s >= 0.0f ? -log1pf(expf(-s)) : s - log1pf(expf(s)); }

// Value and d/d(y_hat) of a named loss at (y_hat, y); e is the smoothing epsilon.
// BCE and Hinge are handled on the score by named_loss_on_score.
LG_HD void named_loss(int kind, float y_hat, float y, float e, float& value, float& d_y_hat) {
  switch (kind) {
    case kLossMSE:
      value = (y_hat - y) * (y_hat - y);
      d_y_hat = 2.0f * (y_hat - y);
      break;
    case kLossFocal: {
      // y_hat is clamped to [1e-7, 1 - 1e-7] so the logs stay finite (derivative 0 outside).
      const float lo = 1e-7f, hi = 1.0f - 1e-7f;
      const float p = fminf(fmaxf(y_hat, lo), hi);
      const float lp = logf(p), lq = logf(1.0f - p);
      value = -(y * (1.0f - p) * (1.0f - p) * lp + (1.0f - y) * p * p * lq);
      const float d = y * (2.0f * (1.0f - p) * lp - (1.0f - p) * (1.0f - p) / p) +
                      (1.0f - y) * (-2.0f * p * lq + p * p / (1.0f - p));
      d_y_hat = (y_hat >= lo && y_hat <= hi) ? d : 0.0f;
      break;
    }
    case kLossMaxR: {
      const float r1 = (y_hat + e) / (y + e), r2 = (y + e) / (y_hat + e);
      value = r1 > r2 ? r1 : r2;
      const float d1 = 1.0f / (y + e), d2 = -(y + e) / ((y_hat + e) * (y_hat + e));
      d_y_hat = r1 > r2 ? d1 : (r1 < r2 ? d2 : 0.5f * (d1 + d2));
      break;
    }
    case kLossSumR: {
      const float num = y_hat + y + e, den = y_hat * y + e;
      value = num / den;
      d_y_hat = (den - num * y) / (den * den);
      break;
    }
    case kLossLogMin: {
      const float m = y_hat < y ? y_hat : y;
      const float dm = y_hat < y ? 1.0f : (y_hat == y ? 0.5f : 0.0f);
      const float f = logf((1.0f + e) / (m + e)), g = y_hat + y + m;
      value = f * g;
      d_y_hat = (-dm / (m + e)) * g + f * (1.0f + dm);
      break;
    }
    default:
      value = 0.0f;
      d_y_hat = 0.0f;
  }
}

// Value and d/d(score) of any named loss, given the score s and y_hat = sigmoid(s).
LG_HD void named_loss_on_score(int kind, float s, float y_hat, float y, float e, float& value, float& d_score) {
  if (kind == kLossBCE) {
    value = -(y * log_sigmoid(s) + (1.0f - y) * log_sigmoid(-s));
    d_score = y_hat - y;
  } else if (kind == kLossHinge) {
    const float t = 2.0f * y - 1.0f, margin = 1.0f - t * s;
    value = margin > 0.0f ? margin : 0.0f;
    d_score = margin > 0.0f ? -t : 0.0f;
  } else {
    float d_y_hat;
    named_loss(kind, y_hat, y, e, value, d_y_hat);
    d_score = d_y_hat * y_hat * (1.0f - y_hat);
  }
}

}  // namespace lossgen
