// One SGD step of a population of biased matrix-factorisation models, each trained with its own
// loss on the same mini-batch (no PyTorch dependency; the extension parallelises over candidates).
#pragma once

#include <cstdint>

namespace lossgen::mf {

// One candidate's parameters. Stored values are the true ones divided by *scale: dense weight
// decay then costs O(1) per step (only the scale shrinks), and only touched rows are written.
struct Params {
  float* user_emb;   // [num_users, dim]
  float* item_emb;   // [num_items, dim]
  float* user_bias;  // [num_users]
  float* item_bias;  // [num_items]
  float* global_bias;
  double* scale;
  int64_t num_users, num_items, dim;
};

// The candidate's loss: a named kind (csrc/named_losses.h) with epsilon, or a program.
struct Loss {
  int kind;
  float eps;
  const int32_t* program;  // [num_steps, 3], used when kind == kLossProgram
  int num_steps;
  int clamp;
};

struct Batch {
  const int64_t* users;
  const int64_t* items;
  const float* labels;
  int size;  // at most cpu::kBlock
};

// Scores s = u.v + b_u + b_i + g and y_hat = sigmoid(s) for a batch (true parameter values).
void predict(const Params& p, const int64_t* users, const int64_t* items, int64_t n, float* scores);

// SGD on the batch-mean loss with weight decay l2 (PyTorch's weight_decay semantics:
// w <- (1 - lr l2) w - lr grad). Gradients use the parameters before the step, as batch SGD.
// Returns the batch-mean loss, or NaN if the loss program rejected the batch.
double sgd_step(const Params& p, const Loss& loss, const Batch& batch, float lr, float l2);

// Consecutive SGD steps over n examples in batches of batch_size (the caller orders them): one
// candidate's whole epoch, so its tables stay in cache. Returns the mean loss over the examples,
// or NaN as sgd_step.
double sgd_epoch(const Params& p, const Loss& loss, const int64_t* users, const int64_t* items, const float* labels,
                 int64_t n, int batch_size, float lr, float l2);

// Multiplies the stored values by the scale and resets it to 1 (O(table); done rarely).
void renormalize(const Params& p);

}  // namespace lossgen::mf
