// vakt_genpolicy N [RULES] [--dir DIR]: prints a synthetic policy with N
// routes, or writes it to DIR as common.vakt plus one file per api.
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "bench/policy_gen.h"

int main(int argc, char** argv) {
  const char* dir = nullptr;
  if (argc >= 4 && std::strcmp(argv[argc - 2], "--dir") == 0) {
    dir = argv[argc - 1];
    argc -= 2;
  }
  if (argc < 2) {
    std::cerr << "usage: vakt_genpolicy ROUTES [RULES_PER_ROUTE] [--dir DIR]\n";
    return 2;
  }
  vakt::bench::GenOptions o;
  o.routes = std::atoi(argv[1]);
  if (argc > 2) o.rules_per_route = std::atoi(argv[2]);
  if (o.routes <= 0 || o.routes > 1000000 || o.rules_per_route < 0 || o.rules_per_route > 1000) {
    std::cerr << "vakt_genpolicy: out of range\n";
    return 2;
  }
  if (dir) {
    std::filesystem::create_directories(dir);
    for (const auto& [name, text] : vakt::bench::GeneratePolicyFiles(o)) {
      std::ofstream(std::filesystem::path(dir) / name) << text;
    }
    return 0;
  }
  std::cout << vakt::bench::GeneratePolicy(o);
  return 0;
}
