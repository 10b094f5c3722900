// Runs a built binary (for `vakt`: VAKT_BINARY, set by the test's CMake
// fragment) with shell-quoted `args`, capturing stdout and stderr together,
// for the CLI tests that check exit codes and output.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace vakt::testing_cli {

struct RunResult {
  int code;
  std::string out;  // stdout and stderr together
};

// Runs `binary` with shell-quoted `args` to completion.
inline RunResult RunBinary(const std::string& binary, const std::string& args) {
  std::string cmd = binary + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  RunResult r{-1, ""};
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

#ifdef VAKT_BINARY
inline RunResult Vakt(const std::string& args) { return RunBinary(VAKT_BINARY, args); }
#endif

}  // namespace vakt::testing_cli
