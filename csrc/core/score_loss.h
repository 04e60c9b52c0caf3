// A candidate's loss on a block of pre-sigmoid scores, for the fused recommender training steps
// (MF and MLP): the batch losses and their derivatives with respect to the scores (no PyTorch
// dependency). Programs run through the block evaluator (csrc/core/eval_cpu.h), named losses
// through csrc/named_losses.h.
#pragma once

#include <cstdint>

namespace lossgen {

// The candidate's loss: a named kind (csrc/named_losses.h) with epsilon, or a program.
struct Loss {
  int kind;
  float eps;  // a named loss's epsilon; a program's smoothing epsilon (kPaperEps = 0: the paper's xi)
  const int32_t* program;  // [num_steps, 3], used when kind == kLossProgram
  int num_steps;
  int clamp;
};

// d(batch-mean loss)/d(score) of n <= cpu::kBlock scores into coef and the batch's summed loss
// into *total. Returns false (outputs unspecified) when the loss is a program and a prediction is
// NaN or inf (the block evaluator refuses it); a named loss lets NaN flow into its outputs.
bool score_gradients(const Loss& loss, const float* score, const float* labels, int n, float* coef, double* total);

}  // namespace lossgen
