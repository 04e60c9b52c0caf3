// Validation of loss programs, shared by the CPU and CUDA entry points and the native tests.
#pragma once

#include <cstdint>
#include <string>

namespace lossgen {

// Checks int32 [K, L, 3] rows (op, a, b): op code in range, operands already written, distinct
// operands for binary ops. Returns "" when valid, else a message naming candidate, step and problem.
std::string check_programs(const int32_t* programs, int64_t num_candidates, int64_t num_steps);

}  // namespace lossgen
