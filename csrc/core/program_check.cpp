#include "core/program_check.h"

#include "op_math.h"

namespace lossgen {

std::string check_programs(const int32_t* programs, int64_t num_candidates, int64_t num_steps) {
  for (int64_t k = 0; k < num_candidates; ++k) {
    for (int64_t t = 0; t < num_steps; ++t) {
      const int32_t* row = programs + (k * num_steps + t) * 3;
      const int32_t op = row[0], a = row[1], b = row[2];
      const std::string where = "program " + std::to_string(k) + ", step " + std::to_string(t) + ": ";
      const int64_t written = kInputSlots + t;
      if (op < 0 || op >= kNumOps) {
        return where + "op code " + std::to_string(op) + " out of range 0.." + std::to_string(kNumOps - 1);
      }
      if (a < 0 || a >= written) {
        return where + "operand a=" + std::to_string(a) + " is not yet written (slots 0.." +
               std::to_string(written - 1) + ")";
      }
      if (op_arity(op) == 2) {
        if (b < 0 || b >= written) {
          return where + "operand b=" + std::to_string(b) + " is not yet written (slots 0.." +
                 std::to_string(written - 1) + ")";
        }
        if (a == b) {
          return where + "binary op " + kOpNames[op] + " needs distinct operands, got a = b = " + std::to_string(a);
        }
      }
    }
  }
  return "";
}

}  // namespace lossgen
