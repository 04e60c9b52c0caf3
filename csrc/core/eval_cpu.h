// CPU evaluation of loss programs over blocks of points (no PyTorch dependency: the extension
// parallelises over (candidate, block) work items with ATen, the native tests call it directly).
#pragma once

#include <cstdint>

namespace lossgen::cpu {

// Points per block: the at most 16 slots x (value, derivative) x 256 floats stay in L1.
constexpr int kBlock = 256;

// Status of a block: inputs must be finite (a NaN would otherwise flow silently into a loss).
enum BlockStatus : int { kBlockOk = 0, kBadYHat = 1, kBadY = 2 };

// Evaluates one program (num_steps rows of (op, a, b)) at n <= kBlock points: writes the clamped
// loss values and their derivatives d/d y_hat. Returns kBadYHat or kBadY (outputs unspecified)
// when y_hat or y holds NaN or inf. The program must have passed check_programs.
// eps: the candidate's smoothing epsilon (> 0, finite) for Log, Reciprocal and Sqrt, with
// sign(0) = +1; 0 (kPaperEps, the default) is the paper's smoothing: xi with sign(0) = 0.
int eval_block(const int32_t* program, int num_steps, int clamp, const float* y_hat, const float* y, int n,
               float* values, float* grads, float eps = 0.0f);

// Values only (no derivatives): adds the sum of the n loss values to *sum. Same return and eps rules.
int eval_block_sum(const int32_t* program, int num_steps, int clamp, const float* y_hat, const float* y, int n,
                   double* sum, float eps = 0.0f);

}  // namespace lossgen::cpu
