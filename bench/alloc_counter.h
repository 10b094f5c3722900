// Counts heap allocations made through operator new in this process, and
// tracks live and peak bytes, so benchmarks can report allocations per
// decision and compile memory without external tools.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vakt::bench {

struct AllocStats {
  uint64_t allocations;
  size_t live_bytes;
  size_t peak_bytes;
};

AllocStats CurrentAllocStats();
void ResetPeak();

}  // namespace vakt::bench
