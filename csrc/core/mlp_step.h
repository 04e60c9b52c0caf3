// Training steps of one candidate of the paper's MLP recommender (DESIGN.md "Paper defaults"):
// concat(user d, item d) -> 2d x 64 -> 64 x 16 -> 16 x 1, each hidden layer followed by batch norm
// (batch statistics in training, running statistics in evaluation), ReLU and dropout 0.2; the
// prediction is sigmoid(score). No PyTorch dependency: the extension (csrc/ops_mlp.cpp) runs the
// candidates of a population in parallel, each through its whole epoch on one thread so that its
// tables and weights stay in that core's caches. lossgen/models/mlp.py holds the same step in
// PyTorch, the reference the tests hold this one to.
#pragma once

#include <cstdint>

#include "core/score_loss.h"

namespace lossgen::mlp {

constexpr int kHidden1 = 64;
constexpr int kHidden2 = 16;
constexpr int kMaxDim = 512;  // embedding dim
constexpr float kDropout = 0.2f;
constexpr float kBatchNormEps = 1e-5f;
constexpr float kBatchNormMomentum = 0.1f;

// One candidate's parameters and state. The embedding tables are stored divided by *scale (SGD's
// lazy weight decay, as in the MF population): true rows are *scale times the stored ones.
struct Params {
  float* user_emb;  // [num_users, dim]
  float* item_emb;  // [num_items, dim]
  double* scale;
  float* w1t;  // [64, 2 dim]: layer 1's weight, stored transposed (out-major)
  float *b1, *g1, *beta1;  // [64]: bias, batch-norm weight and shift
  float* w2;               // [64, 16] (in-major)
  float *b2, *g2, *beta2;  // [16]
  float* w3;               // [16]
  float* b3;               // [1]
  float *rm1, *rv1, *rm2, *rv2;  // batch-norm running means and variances
  uint64_t rng_key;              // the candidate's dropout key (from its seed)
  int64_t* steps;                // its training steps so far: the dropout stream's counter
  int64_t num_users, num_items, dim;
};

// The dropout keep masks of one step: the candidate's draw j at its step t is splitmix64's
// finaliser of key + (t * 2^32 + j) * 0x9E3779B97F4A7C15 (mod 2^64); the low and the high 32
// bits of each draw are two uniforms (their low 23 bits), in that order, and a unit is kept when
// its uniform is >= ceil(0.2 * 2^23). Uniform f < 64 batch is layer 1's unit (f / 64, f % 64), the
// next 16 batch layer 2's. Writes 0/1 into keep [80 batch].
void dropout_keep(uint64_t key, int64_t step, int batch, float* keep);

// Consecutive SGD steps over n examples in batches of batch_size <= cpu::kBlock (the caller
// orders them): forward with batch statistics and the candidate's dropout masks, the loss and its
// derivative, backward, and PyTorch's SGD with weight_decay l2 (w <- (1 - lr l2) w - lr grad) on
// every parameter, exactly on the embeddings through the scale; gradients use the parameters
// before each step; batch-norm running statistics move as nn.BatchNorm1d's (momentum 0.1,
// unbiased variance). Writes the mean loss over the examples into *mean_loss. Returns false
// (stopping there) when the loss is a program and a prediction became NaN or inf; a named loss
// lets NaN flow on, as the PyTorch step does.
bool train_epoch(const Params& p, const Loss& loss, const int64_t* users, const int64_t* items, const float* labels,
                 int64_t n, int batch_size, double lr, double l2, double* mean_loss);

// Evaluation-mode scores (running statistics, no dropout) of n pairs.
void predict(const Params& p, const int64_t* users, const int64_t* items, int64_t n, float* scores);

// Multiplies the stored tables by the scale and resets it to 1.
void renormalize(const Params& p);

}  // namespace lossgen::mlp
