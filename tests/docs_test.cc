// Documentation is tested: every ```vakt block in README.md,
// docs/language.md and docs/fapi.md must compile on its own, and a block
// right after an HTML comment `<!-- expect-error: TEXT -->` must fail with a
// diagnostic containing TEXT. Files a block names (an issuer's JWKS) are
// read relative to the markdown file. Keeps the reference honest as the
// language grows.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "compiler/compile.h"

namespace vakt::compiler {
namespace {

namespace fs = std::filesystem;

struct Block {
  std::string file;
  int line;
  std::string text;
  std::string expect_error;
};

std::vector<Block> Extract(const fs::path& p) {
  std::ifstream in(p);
  std::vector<Block> out;
  std::string line, pending_error;
  int n = 0;
  bool inside = false;
  Block cur;
  while (std::getline(in, line)) {
    ++n;
    if (!inside) {
      if (line.rfind("<!-- expect-error:", 0) == 0) {
        auto end = line.find("-->");
        pending_error = line.substr(18, end == std::string::npos ? std::string::npos : end - 18);
        while (!pending_error.empty() && pending_error.front() == ' ') pending_error.erase(0, 1);
        while (!pending_error.empty() && pending_error.back() == ' ') pending_error.pop_back();
        continue;
      }
      if (line == "```vakt") {
        inside = true;
        cur = Block{p.filename().string(), n + 1, "", pending_error};
        pending_error.clear();
      } else if (!line.empty()) {
        pending_error.clear();
      }
      continue;
    }
    if (line == "```") {
      inside = false;
      out.push_back(cur);
      continue;
    }
    cur.text += line + "\n";
  }
  return out;
}

void CheckDoc(const fs::path& p, size_t min_blocks) {
  ASSERT_TRUE(fs::exists(p)) << p;
  auto blocks = Extract(p);
  EXPECT_GE(blocks.size(), min_blocks) << p;
  for (const auto& b : blocks) {
    SourceSet s;
    AddSource(s, b.file + ":" + std::to_string(b.line), b.text);
    // Files a block names (an issuer's `jwks`) are relative to the markdown
    // file's directory, as they would be for a .vakt file saved beside it.
    CompileOptions opts;
    opts.read_asset = [dir = p.parent_path()](const dsl::SourceFile&,
                                              const std::string& path) -> Result<std::string> {
      dsl::SourceFile beside{(dir / "block.vakt").string(), ""};
      return ReadAssetFromDisk(beside, path);
    };
    dsl::Diagnostics d;
    auto c = Compile(s, opts, d);
    if (b.expect_error.empty()) {
      EXPECT_FALSE(d.HasErrors()) << b.file << " block at line " << b.line << ":\n"
                                  << b.text << "\n"
                                  << d.Format();
    } else {
      EXPECT_TRUE(d.HasErrors()) << b.file << " block at line " << b.line << " should fail";
      EXPECT_NE(d.Format().find(b.expect_error), std::string::npos)
          << b.file << " block at line " << b.line << ": expected `" << b.expect_error << "` in\n"
          << d.Format();
    }
  }
}

TEST(Docs, LanguageReferenceBlocksCompile) {
  CheckDoc(fs::path(VAKT_SOURCE_DIR) / "docs" / "language.md", 10);
}

TEST(Docs, ReadmeBlocksCompile) { CheckDoc(fs::path(VAKT_SOURCE_DIR) / "README.md", 1); }

TEST(Docs, FapiBlocksCompile) { CheckDoc(fs::path(VAKT_SOURCE_DIR) / "docs" / "fapi.md", 1); }

}  // namespace
}  // namespace vakt::compiler
