// vakt_genpolicy N [RULES]: prints a synthetic policy with N routes.
#include <cstdlib>
#include <iostream>

#include "bench/policy_gen.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: vakt_genpolicy ROUTES [RULES_PER_ROUTE]\n";
    return 2;
  }
  vakt::bench::GenOptions o;
  o.routes = std::atoi(argv[1]);
  if (argc > 2) o.rules_per_route = std::atoi(argv[2]);
  if (o.routes <= 0 || o.routes > 1000000 || o.rules_per_route < 0 || o.rules_per_route > 1000) {
    std::cerr << "vakt_genpolicy: out of range\n";
    return 2;
  }
  std::cout << vakt::bench::GeneratePolicy(o);
  return 0;
}
