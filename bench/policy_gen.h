// Synthetic policy generator for benchmarks and scale tests: N routes over a
// handful of apis, each route with `rules` requirements of the common kinds
// (scope, ownership, header and shape checks). Deterministic for a given N.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace vakt::bench {

struct GenOptions {
  int routes = 1000;
  int rules_per_route = 4;
};

// One file: the shared declarations and every api.
std::string GeneratePolicy(const GenOptions& opts);

// The same policy as files, as a team would keep it: `common.vakt` with the
// shared declarations and one `svcK.vakt` per api of 500 routes.
std::vector<std::pair<std::string, std::string>> GeneratePolicyFiles(const GenOptions& opts);

}  // namespace vakt::bench
