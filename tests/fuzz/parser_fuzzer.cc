// Fuzz target for the DSL front end: ParseFile() and FormatSource() must
// accept any bytes without crashing, hanging or reading out of bounds, and
// report errors only as diagnostics. A file the formatter accepts must
// format to a fixed point (Format(Format(x)) == Format(x)) that still
// parses.
//
// Built two ways (tests/dsl.cmake):
//   - parser_fuzzer: a libFuzzer target (VAKT_FUZZ=ON, clang),
//       parser_fuzzer tests/fuzz/corpus/parser
//   - parser_fuzz_replay: an ordinary test. With VAKT_FUZZ_REPLAY_MAIN this
//     file has a main() that runs every file of tests/fuzz/corpus/parser (or
//     of the directories given as arguments) through the target, failing if
//     there are none.
#include <cstddef>
#include <cstdint>
#include <string>

#include "dsl/formatter.h"
#include "dsl/parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vakt::dsl::SourceFile src{"fuzz.vakt", std::string(reinterpret_cast<const char*>(data), size)};
  vakt::dsl::Diagnostics parse_diags;
  auto file = vakt::dsl::ParseFile(src, parse_diags);
  if (!file) __builtin_trap();

  vakt::dsl::Diagnostics fmt_diags;
  std::string once = vakt::dsl::FormatSource(src, fmt_diags);
  // The formatter refuses exactly the files the parser rejects.
  if (parse_diags.HasErrors() != fmt_diags.HasErrors()) __builtin_trap();
  if (fmt_diags.HasErrors()) {
    if (once != src.text) __builtin_trap();
    (void)fmt_diags.Format();
    return 0;
  }
  vakt::dsl::SourceFile formatted{"fuzz.vakt", once};
  vakt::dsl::Diagnostics again_diags;
  std::string twice = vakt::dsl::FormatSource(formatted, again_diags);
  if (again_diags.HasErrors() || twice != once) __builtin_trap();
  return 0;
}

#ifdef VAKT_FUZZ_REPLAY_MAIN

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::vector<fs::path> dirs;
  for (int i = 1; i < argc; ++i) dirs.emplace_back(argv[i]);
  if (dirs.empty()) dirs.emplace_back(fs::path(VAKT_SOURCE_DIR) / "tests/fuzz/corpus/parser");
  size_t runs = 0;
  for (const fs::path& dir : dirs) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (!entry.is_regular_file()) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      std::ostringstream bytes;
      bytes << in.rdbuf();
      std::string data = bytes.str();
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data.data()), data.size());
      ++runs;
    }
    if (ec) std::fprintf(stderr, "parser_fuzz_replay: cannot read %s\n", dir.c_str());
  }
  if (runs == 0) {
    std::fprintf(stderr, "parser_fuzz_replay: no corpus files found\n");
    return 1;
  }
  std::printf("parser_fuzz_replay: %zu inputs ok\n", runs);
  return 0;
}

#endif  // VAKT_FUZZ_REPLAY_MAIN
