// Tests of controlplane/diff.cc. Differential against the tools themselves:
// GNU `diff -u` for the exact text (on inputs where the hunks are not a
// matter of taste), `diff --minimal` for the size of the edit, and patch(1)
// to check that every diff we print turns the old text into the new one.
#include "controlplane/diff.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace vakt::controlplane {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/cp_diff_test.XXXXXX";
    char* p = mkdtemp(tmpl);
    if (p != nullptr) path_ = p;
  }
  ~TempDir() {
    if (!path_.empty()) {
      std::string cmd = "rm -rf '" + path_ + "'";
      (void)std::system(cmd.c_str());
    }
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << data;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string Run(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

struct Tools {
  TempDir dir;
  std::string Old() const { return dir.path() + "/old"; }
  std::string New() const { return dir.path() + "/new"; }

  std::string GnuDiff(const std::string& old_text, const std::string& new_text,
                      const std::string& extra = "") {
    WriteFile(Old(), old_text);
    WriteFile(New(), new_text);
    // Not "-u -U1": GNU diff then sizes hunks by the larger context.
    const std::string format = extra.empty() ? "-u" : extra;
    return Run("diff " + format + " --label a/f --label b/f '" + Old() + "' '" + New() + "'");
  }

  // Applies `patch_text` to `old_text` with patch(1), no fuzz.
  std::string Apply(const std::string& old_text, const std::string& patch_text) {
    WriteFile(Old(), old_text);
    WriteFile(dir.path() + "/p.diff", patch_text);
    std::string out = dir.path() + "/out";
    std::remove(out.c_str());
    WriteFile(out, "");
    Run("patch -s -f -F0 --no-backup-if-mismatch -r - -o '" + out + "' '" + Old() + "' < '" +
        dir.path() + "/p.diff' 2>&1");
    return ReadFile(out);
  }
};

size_t CountEdits(const std::string& diff) {
  size_t count = 0;
  std::istringstream in(diff);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("--- ", 0) == 0 || line.rfind("+++ ", 0) == 0) continue;
    if (!line.empty() && (line[0] == '-' || line[0] == '+')) ++count;
  }
  return count;
}

std::string Join(const std::vector<std::string>& lines, bool final_newline) {
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    out += lines[i];
    if (i + 1 < lines.size() || final_newline) out += '\n';
  }
  return out;
}

std::string D(const std::string& a, const std::string& b, int context = 3) {
  return UnifiedDiff(a, b, "f", "f", context);
}

TEST(DiffTest, EqualIsEmpty) {
  EXPECT_EQ(D("", ""), "");
  EXPECT_EQ(D("a\nb\n", "a\nb\n"), "");
  EXPECT_EQ(D("a\nb", "a\nb"), "");
}

TEST(DiffTest, Golden) {
  EXPECT_EQ(D("a\nb\nc\n", "a\nB\nc\n"),
            "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
  EXPECT_EQ(D("", "x\n"), "--- a/f\n+++ b/f\n@@ -0,0 +1 @@\n+x\n");
  EXPECT_EQ(D("x\n", ""), "--- a/f\n+++ b/f\n@@ -1 +0,0 @@\n-x\n");
  EXPECT_EQ(D("x", "x\n"),
            "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n+x\n");
  EXPECT_EQ(UnifiedDiff("", "x\n", "/dev/null", "p.vakt"),
            "--- /dev/null\n+++ b/p.vakt\n@@ -0,0 +1 @@\n+x\n");
}

TEST(DiffTest, MatchesGnuDiffOnPlainCases) {
  Tools t;
  std::vector<std::pair<std::string, std::string>> cases;
  std::vector<std::string> base;
  for (int i = 0; i < 40; ++i) base.push_back("line " + std::to_string(i));
  auto with = [&](auto edit, bool nl_old = true, bool nl_new = true) {
    std::vector<std::string> changed = base;
    edit(changed);
    cases.push_back({Join(base, nl_old), Join(changed, nl_new)});
  };
  with([](auto&) {}, true, false);           // only the final newline
  with([](auto&) {}, false, true);
  with([](auto& v) { v[39] = "end"; }, false, false);
  with([](auto& v) { v[39] = "end"; }, true, false);
  with([](auto& v) { v[20] = "changed"; });
  with([](auto& v) { v[0] = "first"; });
  with([](auto& v) { v.erase(v.begin() + 10, v.begin() + 15); });   // removals only
  with([](auto& v) { v.insert(v.begin() + 5, {"n1", "n2"}); });     // additions only
  with([](auto& v) { v.push_back("tail"); });
  with([](auto& v) { v.insert(v.begin(), "head"); });
  with([](auto& v) { v[5] = "x"; v[12] = "y"; });                  // merged hunk (gap 6)
  with([](auto& v) { v[5] = "x"; v[13] = "y"; });                  // split hunks (gap 7)
  with([](auto& v) { v[2] = "x"; v[30] = "y"; v.erase(v.begin() + 20); });
  with([](auto& v) { for (auto& s : v) s += "!"; });               // all changed
  with([](auto& v) { v.clear(); });
  cases.push_back({"", Join(base, true)});
  cases.push_back({"", "a"});
  cases.push_back({"a", ""});
  cases.push_back({"a\n\n\nb\n", "a\n\nb\n"});                      // repeated lines
  cases.push_back({"x\nx\nx\n", "x\nx\nx\nx\nx\n"});
  cases.push_back({"x\ny\nx\ny\n", "x\ny\n"});
  cases.push_back({"}\n}\n}\n", "}\n}\n"});
  for (const auto& [a, b] : cases) {
    EXPECT_EQ(D(a, b), t.GnuDiff(a, b)) << "old:\n" << a << "\nnew:\n" << b;
    EXPECT_EQ(D(a, b, 0), t.GnuDiff(a, b, "-U0")) << "old:\n" << a << "\nnew:\n" << b;
    EXPECT_EQ(D(a, b, 1), t.GnuDiff(a, b, "-U1")) << "old:\n" << a << "\nnew:\n" << b;
  }
}

// Random edits of random files. Every diff must apply and be minimal; the
// text must equal GNU diff's except where GNU's heuristics pick another of
// several equally small diffs, which we only count.
TEST(DiffTest, RandomAgainstGnuDiffAndPatch) {
  Tools t;
  std::mt19937 rng(20261129);
  int exact = 0, total = 0;
  for (int iter = 0; iter < 120; ++iter) {
    // Small alphabets give repeated identical lines.
    const int alphabet = iter % 4 == 0 ? 3 : (iter % 4 == 1 ? 10 : 1000);
    auto word = [&] { return "w" + std::to_string(rng() % alphabet); };
    std::vector<std::string> a;
    const int n = static_cast<int>(rng() % 60);
    for (int i = 0; i < n; ++i) a.push_back(word());
    std::vector<std::string> b = a;
    const int edits = static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      const int kind = static_cast<int>(rng() % 3);
      const size_t pos = b.empty() ? 0 : rng() % (b.size() + 1);
      if (kind == 0 || b.empty()) {
        b.insert(b.begin() + static_cast<long>(pos), word());
      } else if (pos < b.size()) {
        if (kind == 1) {
          b.erase(b.begin() + static_cast<long>(pos));
        } else {
          b[pos] = word();
        }
      }
    }
    const std::string old_text = Join(a, rng() % 4 != 0);
    const std::string new_text = Join(b, rng() % 4 != 0);
    const int ctx = iter % 3 == 0 ? 3 : iter % 3 - 1;  // 3, 0, 1
    const std::string ours = D(old_text, new_text, ctx);
    const std::string gnu = t.GnuDiff(old_text, new_text, "-U" + std::to_string(ctx));
    ++total;
    EXPECT_EQ(t.Apply(old_text, ours), new_text) << ours;
    if (ours == gnu) {
      ++exact;
    } else {
      EXPECT_EQ(CountEdits(ours), CountEdits(t.GnuDiff(old_text, new_text, "-u --minimal")))
          << "old:\n" << old_text << "\nnew:\n" << new_text << "\nours:\n" << ours;
    }
    EXPECT_EQ(ours.empty(), old_text == new_text);
  }
  std::printf("identical to GNU diff -u: %d of %d\n", exact, total);
  // Distinct-line cases (alphabet 1000) are nearly unambiguous: most match.
  EXPECT_GT(exact, total / 2);
}

TEST(DiffTest, PatchRoundTripWithContexts) {
  Tools t;
  std::mt19937 rng(7);
  for (int iter = 0; iter < 25; ++iter) {
    std::vector<std::string> a, b;
    for (int i = 0; i < 200; ++i) a.push_back("l" + std::to_string(rng() % 20));
    for (const auto& s : a) {
      if (rng() % 10 == 0) continue;
      b.push_back(rng() % 10 == 0 ? "new" + std::to_string(rng() % 5) : s);
    }
    const std::string old_text = Join(a, iter % 2 == 0), new_text = Join(b, iter % 3 == 0);
    for (int ctx : {0, 1, 3, 10}) {
      EXPECT_EQ(t.Apply(old_text, D(old_text, new_text, ctx)), new_text) << ctx;
    }
  }
}

TEST(DiffTest, BinaryContent) {
  std::string bin("ab\0cd\n", 6);
  EXPECT_EQ(UnifiedDiff(bin, "abcd\n", "x.bin", "x.bin"), "Binary files a/x.bin and b/x.bin differ\n");
  EXPECT_EQ(UnifiedDiff("abcd\n", bin, "x.bin", "x.bin"), "Binary files a/x.bin and b/x.bin differ\n");
  EXPECT_EQ(UnifiedDiff(bin, bin, "x.bin", "x.bin"), "");
  // A NUL past the probe window is not looked at.
  std::string late(kDiffBinaryProbe + 10, 'a');
  late[kDiffBinaryProbe + 5] = '\0';
  EXPECT_EQ(UnifiedDiff(late, "b\n", "f", "f").rfind("--- a/f\n", 0), 0u);
}

// Past the edit distance bound, the middle becomes one replacement hunk,
// in linear time. (Not a timed assertion: the ctest timeout is the guard.)
TEST(DiffTest, LargeEditDistanceFallsBack) {
  std::string a, b;
  const int n = 150000;
  for (int i = 0; i < n; ++i) {
    a += "a" + std::to_string(i) + "\n";
    b += "b" + std::to_string(i) + "\n";
  }
  const std::string prefix = "same\n", suffix = "end\n";
  auto start = std::chrono::steady_clock::now();
  const std::string out = D(prefix + a + suffix, prefix + b + suffix);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - start).count();
  std::printf("fallback diff of %d lines took %lld ms\n", n, static_cast<long long>(ms));
  const std::string header = "--- a/f\n+++ b/f\n@@ -1," + std::to_string(n + 2) + " +1," +
                             std::to_string(n + 2) + " @@\n same\n-a0\n-a1\n";
  EXPECT_EQ(out.substr(0, header.size()), header);
  EXPECT_NE(out.find("-a149999\n+b0\n"), std::string::npos);
  EXPECT_EQ(out.substr(out.size() - 14), "+b149999\n end\n");
  EXPECT_EQ(CountEdits(out), 2u * n);
}

TEST(DiffTest, TooManyLinesFallsBack) {
  // Above kDiffMaxLines: no Myers at all, even for one small change in the
  // middle; prefix and suffix still shrink the hunk to the change.
  std::string a;
  for (size_t i = 0; i < kDiffMaxLines + 10; ++i) a += "x\n";
  std::string b = a;
  b[2 * 1000] = 'y';
  b[2 * 1002] = 'y';
  const std::string out = D(a, b, 0);
  EXPECT_EQ(out, "--- a/f\n+++ b/f\n@@ -1001,3 +1001,3 @@\n-x\n-x\n-x\n+y\n+x\n+y\n");
  // Within the bounds the same edit is diffed minimally.
  std::string small_a(2 * 2000, 'x'), small_b;
  for (size_t i = 1; i < small_a.size(); i += 2) small_a[i] = '\n';
  small_b = small_a;
  small_b[2 * 1000] = 'y';
  small_b[2 * 1002] = 'y';
  EXPECT_EQ(CountEdits(D(small_a, small_b, 0)), 4u);
}

TEST(DiffTest, HugeEditDistanceWithinLineLimitIsBounded) {
  // Large, fully different inputs (D = 2 * 100000): the edit distance bound
  // stops Myers early.
  std::string a, b;
  for (int i = 0; i < 100000; ++i) {
    a += std::to_string(i % 7) + "\n";
    b += std::to_string(7 + i % 5) + "\n";
  }
  const std::string out = D(a, b);
  EXPECT_EQ(CountEdits(out), 200000u);
}

TEST(DiffFileSetsTest, AddedRemovedModifiedUnchanged) {
  std::vector<SourceFile> old_files = {
      {"z.vakt", "zz\n"}, {"keep.vakt", "same\n"}, {"mod.vakt", "a\nb\n"}, {"gone.vakt", "g\n"}};
  std::vector<SourceFile> new_files = {
      {"mod.vakt", "a\nc\n"}, {"added.vakt", "new\n"}, {"keep.vakt", "same\n"}, {"z.vakt", "zz\n"},
      {"empty.vakt", ""}};
  std::vector<FileChange> got = DiffFileSets(old_files, new_files);
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0].path, "added.vakt");
  EXPECT_EQ(got[0].change, "added");
  EXPECT_EQ(got[0].unified, "--- /dev/null\n+++ b/added.vakt\n@@ -0,0 +1 @@\n+new\n");
  EXPECT_EQ(got[1].path, "empty.vakt");
  EXPECT_EQ(got[1].change, "added");
  EXPECT_EQ(got[1].unified, "");
  EXPECT_EQ(got[2].path, "gone.vakt");
  EXPECT_EQ(got[2].change, "removed");
  EXPECT_EQ(got[2].unified, "--- a/gone.vakt\n+++ /dev/null\n@@ -1 +0,0 @@\n-g\n");
  EXPECT_EQ(got[3].path, "mod.vakt");
  EXPECT_EQ(got[3].change, "modified");
  EXPECT_EQ(got[3].unified, "--- a/mod.vakt\n+++ b/mod.vakt\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n");

  EXPECT_TRUE(DiffFileSets(old_files, old_files).empty());
  EXPECT_TRUE(DiffFileSets({}, {}).empty());
  // Duplicate paths: the first occurrence wins.
  std::vector<FileChange> dup =
      DiffFileSets({{"p", "1\n"}}, {{"p", "1\n"}, {"p", "2\n"}});
  EXPECT_TRUE(dup.empty());
}

}  // namespace
}  // namespace vakt::controlplane
