// Golden tests: each tests/golden/NAME.vakt compiles to exactly the
// disassembly in tests/golden/NAME.disasm (after re2's compile_test.cc).
// Set VAKT_UPDATE_GOLDEN=1 to rewrite the expected files after a deliberate
// change, then review the diff.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "bytecode/bundle.h"
#include "compiler/compile.h"

namespace vakt::compiler {
namespace {

namespace fs = std::filesystem;

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Golden, SourceToDisassembly) {
  fs::path dir = fs::path(VAKT_SOURCE_DIR) / "tests" / "golden";
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".vakt") cases.push_back(e.path());
  }
  std::sort(cases.begin(), cases.end());
  ASSERT_GE(cases.size(), 3u) << "golden cases missing in " << dir;
  const bool update = std::getenv("VAKT_UPDATE_GOLDEN") != nullptr;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.string());
    SourceSet s;
    AddSource(s, c.string(), Read(c));  // relation files are read beside it
    dsl::Diagnostics d;
    auto comp = Compile(s, {}, d);
    ASSERT_FALSE(d.HasErrors()) << d.Format();
    auto parsed = bytecode::Parse(comp->bytes);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    std::string got = bytecode::Disassemble(*parsed);
    fs::path want_path = c;
    want_path.replace_extension(".disasm");
    if (update) {
      std::ofstream(want_path, std::ios::binary) << got;
      continue;
    }
    ASSERT_TRUE(fs::exists(want_path)) << "run with VAKT_UPDATE_GOLDEN=1 to create " << want_path;
    EXPECT_EQ(got, Read(want_path));
  }
}

}  // namespace
}  // namespace vakt::compiler
