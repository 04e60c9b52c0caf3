// Training steps of a population of biased matrix-factorisation models, each trained with its own
// loss on the same mini-batches (no PyTorch dependency; the extension parallelises over candidates).
#pragma once

#include <cstdint>
#include <vector>

#include "core/score_loss.h"

namespace lossgen::mf {

// One candidate's parameters. With SGD, stored values are the true ones divided by *scale: dense
// weight decay then costs O(1) per step (only the scale shrinks), and only touched rows are
// written. Adam keeps the scale at 1.
struct Params {
  float* user_emb;   // [num_users, dim]
  float* item_emb;   // [num_items, dim]
  float* user_bias;  // [num_users]
  float* item_bias;  // [num_items]
  float* global_bias;
  double* scale;
  int64_t num_users, num_items, dim;

  // Number of scalars, in the order above: the layout of the Adam moment buffers.
  int64_t size() const { return (num_users + num_items) * dim + num_users + num_items + 1; }
};

// Lazy Adam (as torch.optim.SparseAdam): only the rows a batch touches update their moments and
// values; L2 is coupled (grad += l2 * w) on those rows; bias correction uses the candidate's
// global step count. Dense per-step Adam would cost O(table) per step.
struct Adam {
  float* moments;  // [2, Params::size()]: first moments, then second moments
  int64_t* step;
  float beta1, beta2, eps;
};

// The candidate's loss (csrc/core/score_loss.h).
using Loss = lossgen::Loss;

struct Batch {
  const int64_t* users;
  const int64_t* items;
  const float* labels;
  int size;  // at most cpu::kBlock
};

// Scores s = u.v + b_u + b_i + g for n pairs (true parameter values).
void predict(const Params& p, const int64_t* users, const int64_t* items, int64_t n, float* scores);

// Consecutive steps over n examples in batches of batch_size (the caller orders them): one
// candidate's whole epoch, so its tables stay in cache. SGD (adam == nullptr) follows PyTorch's
// weight_decay semantics, w <- (1 - lr l2) w - lr grad, on every parameter (exactly, through the
// scale); gradients use the parameters before each step, as batch SGD. Returns the mean loss
// over the examples, or NaN if the loss program rejected a batch (non-finite predictions).
double train_epoch(const Params& p, const Loss& loss, const int64_t* users, const int64_t* items, const float* labels,
                   int64_t n, int batch_size, float lr, float l2, const Adam* adam);

// Multiplies the stored values by the scale and resets it to 1 (O(table); done rarely).
void renormalize(const Params& p);

}  // namespace lossgen::mf
