// Parameter shapes run on a byte table when they have the common form
// `^[class]{m,n}$`, and on RE2 otherwise; both must accept exactly the same
// segments. Random segments against RE2 as the oracle, for simple and
// not-so-simple patterns.
#include <gtest/gtest.h>
#include <re2/re2.h>

#include <random>

#include "bytecode/bundle.h"
#include "compiler/compile.h"

namespace vakt {
namespace {

TEST(Shapes, TableMatchesRe2) {
  const std::vector<std::string> patterns = {
      "^[A-Za-z0-9-]{1,64}$", "[a-z]+", "^[0-9]*$", "[ab]{3}", "^[a-c]{2,}$", "[-x]{1,3}",
      "[x-]{0,2}", "^[A-Z]{1,2}", "[.]{1}$", "-?[0-9]{1,19}", "^[^a]+$", "^(a|b)$", "[a\\-z]+",
      "^[a-z]{2,1}$", "^[0-9]{01,12}$", "^[0-9]{1,02}$", "[a]{00005}",
  };
  std::string src;
  for (size_t i = 0; i < patterns.size(); ++i) {
    if (patterns[i] == "^[a-z]{2,1}$") continue;  // RE2 refuses it: never reaches a bundle
    src += "shape S" + std::to_string(i) + " = r\"" + patterns[i] + "\"\n";
  }
  src += "api a \"/\" {\n";
  for (size_t i = 0; i < patterns.size(); ++i) {
    if (patterns[i] == "^[a-z]{2,1}$") continue;
    src += "  route GET \"/r" + std::to_string(i) + "/{p:S" + std::to_string(i) + "}\" {}\n";
  }
  src += "}\n";
  compiler::SourceSet s;
  compiler::AddSource(s, "shapes.vakt", src);
  dsl::Diagnostics d;
  auto c = compiler::Compile(s, {}, d);
  ASSERT_FALSE(d.HasErrors()) << d.Format();
  auto b = bytecode::Bundle::Load(c->bytes);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  const auto& data = (*b)->data();
  ASSERT_GE(data.regexes.size(), 10u);
  std::mt19937 rng(7);
  const std::string alphabet = "abcxzAZ09-._^$ \x01\xff";
  for (uint32_t r = 0; r < data.regexes.size(); ++r) {
    const std::string& pattern = data.strings[data.regexes[r]];
    for (int n = 0; n < 3000; ++n) {
      std::string seg;
      int len = static_cast<int>(rng() % 6);
      if (rng() % 50 == 0) len = 60 + static_cast<int>(rng() % 10);
      for (int k = 0; k < len; ++k) seg += alphabet[rng() % alphabet.size()];
      bool want = RE2::FullMatch(seg, (*b)->regex(r));
      ASSERT_EQ((*b)->FullMatch(r, seg), want) << "pattern `" << pattern << "` segment `" << seg << "`";
    }
  }
}

}  // namespace
}  // namespace vakt
