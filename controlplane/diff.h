// Unified diffs of policy sources, for the admin API's Diff(policy, from, to):
// what changed between two published versions, file by file, in the format
// reviewers already read (`diff -u` / `git diff`). Tested by cp_diff_test.cc,
// which checks the output against GNU diff and applies it with patch(1).
//
// Complexity: line splitting and hashing are O(bytes). The comparison is
// Myers' O((N+M)·D) algorithm in its linear-space form (as in git's xdiff),
// without recursion. Inputs are untrusted, so it is bounded:
//   - either text above kDiffMaxBytes or kDiffMaxLines, or
//   - an edit distance D above about kDiffMaxEditDistance, or
//   - more than kDiffMaxWork steps of the comparison
// switch to the FALLBACK: the common leading and trailing lines are kept as
// context and everything between them becomes one replacement hunk (all `-`
// lines, then all `+` lines). The fallback is still a correct patch (it
// applies and reproduces the new text) but not a minimal one; it costs
// O(bytes) time and memory. Overall the worst case is
// O(bytes + kDiffMaxWork) time and O(bytes) memory.
//
// Thread-safety: pure functions, no shared state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "controlplane/store.h"

namespace vakt::controlplane {

inline constexpr size_t kDiffMaxBytes = size_t{16} << 20;     // per text
inline constexpr size_t kDiffMaxLines = 200000;               // per text
inline constexpr int64_t kDiffMaxEditDistance = 20000;        // lines
inline constexpr int64_t kDiffMaxWork = int64_t{1} << 28;     // snake steps
// A NUL byte in this many leading bytes of either text marks it binary.
inline constexpr size_t kDiffBinaryProbe = 8192;

// The unified diff from `old_text` to `new_text`, line by line, as
// `diff -u --label a/OLD --label b/NEW` prints it:
//   --- a/OLD_NAME
//   +++ b/NEW_NAME
//   @@ -l,s +l,s @@        (",s" omitted when s == 1; l is the line before
//                            the hunk when s == 0)
//   " " context, "-" removed, "+" added lines; a line without a final
//   newline is followed by "\ No newline at end of file".
// A name equal to "/dev/null" is printed without the a/ or b/ prefix.
// Hunks are merged when at most 2*context unchanged lines separate them.
// Returns "" when the texts are equal. When either text has a NUL byte in
// its first kDiffBinaryProbe bytes, returns the single line
// "Binary files a/OLD_NAME and b/NEW_NAME differ\n" (as git prints it).
// Large inputs fall back to one replacement hunk: see the top of this file.
// `context` is clamped to [0, 1<<20].
std::string UnifiedDiff(std::string_view old_text, std::string_view new_text,
                        std::string_view old_name, std::string_view new_name,
                        int context = 3);

struct FileChange {
  std::string path;
  std::string change;   // "added", "removed" or "modified"
  std::string unified;  // UnifiedDiff output; "" for an added or removed
                        // empty file
};

// The changed files between two versions' sources, sorted by path.
// Unchanged files are omitted. An added file is diffed against /dev/null
// (`--- /dev/null`), a removed one likewise (`+++ /dev/null`).
// Inputs may be unsorted; if a path appears twice in one set, its first
// occurrence is used and later ones are ignored.
std::vector<FileChange> DiffFileSets(const std::vector<SourceFile>& old_files,
                                     const std::vector<SourceFile>& new_files);

}  // namespace vakt::controlplane
