// Synthetic policy generator for benchmarks and scale tests: N routes over a
// handful of apis, each route with `rules` requirements of the common kinds
// (scope, ownership, header and shape checks). Deterministic for a given N.
#pragma once

#include <string>

namespace vakt::bench {

struct GenOptions {
  int routes = 1000;
  int rules_per_route = 4;
};

std::string GeneratePolicy(const GenOptions& opts);

}  // namespace vakt::bench
