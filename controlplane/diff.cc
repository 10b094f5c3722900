// Line diffs for the admin API (see diff.h). The texts are split into lines
// (each keeping its '\n', so "x" at end of file differs from "x\n", as in
// GNU diff), lines are numbered by equality, and Myers' algorithm marks the
// removed and added lines. The divide-and-conquer split is git's xdiff
// xdl_split (forward and backward searches meet on an optimal path), driven
// by an explicit stack instead of recursion. GNU diff's shift_boundaries
// then slides each run of changes to the same place GNU diff puts it, so
// that hunks read as `diff -u` prints them. Last, the marks are grouped into
// hunks with `context` lines around them.
//
// Complexity: O(bytes) to split and number the lines, O((N+M)·D) for Myers
// bounded by kDiffMaxWork and kDiffMaxEditDistance, O(N+M) memory. Past a
// bound, the whole middle becomes one replacement hunk (diff.h).
#include "controlplane/diff.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <utility>

namespace vakt::controlplane {

namespace {

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
    lines.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return lines;
}

bool LooksBinary(std::string_view text) {
  size_t n = std::min(text.size(), kDiffBinaryProbe);
  return n > 0 && std::memchr(text.data(), '\0', n) != nullptr;
}

std::string Label(std::string_view name, std::string_view prefix) {
  if (name == "/dev/null") return std::string(name);
  std::string out(prefix);
  out += name;
  return out;
}

// Myers' diff over two sequences of line numbers. Marks removed lines of
// `a` in *ca and added lines of `b` in *cb. Not thread-safe; one use.
class Myers {
 public:
  Myers(const std::vector<int32_t>& a, const std::vector<int32_t>& b, std::vector<char>* ca,
        std::vector<char>* cb)
      : a_(a), b_(b), ca_(*ca), cb_(*cb) {
    int64_t n = static_cast<int64_t>(a.size()), m = static_cast<int64_t>(b.size());
    offset_ = m + 1;
    kvdf_.assign(static_cast<size_t>(n + m + 3), 0);
    kvdb_.assign(static_cast<size_t>(n + m + 3), 0);
  }

  // False when a bound was exceeded; the marks are then incomplete.
  bool Run() {
    struct Range {
      int64_t off1, lim1, off2, lim2;
    };
    std::vector<Range> stack;
    stack.push_back({0, static_cast<int64_t>(a_.size()), 0, static_cast<int64_t>(b_.size())});
    while (!stack.empty()) {
      Range r = stack.back();
      stack.pop_back();
      while (r.off1 < r.lim1 && r.off2 < r.lim2 && a_[r.off1] == b_[r.off2]) {
        ++r.off1;
        ++r.off2;
      }
      while (r.off1 < r.lim1 && r.off2 < r.lim2 && a_[r.lim1 - 1] == b_[r.lim2 - 1]) {
        --r.lim1;
        --r.lim2;
      }
      work_ += (r.lim1 - r.off1) + (r.lim2 - r.off2);
      if (r.off1 == r.lim1) {
        for (int64_t j = r.off2; j < r.lim2; ++j) cb_[j] = 1;
      } else if (r.off2 == r.lim2) {
        for (int64_t i = r.off1; i < r.lim1; ++i) ca_[i] = 1;
      } else {
        int64_t s1 = 0, s2 = 0;
        if (!Split(r.off1, r.lim1, r.off2, r.lim2, &s1, &s2)) return false;
        // Left half is popped first: keeps marks roughly in order (any
        // order is correct).
        stack.push_back({s1, r.lim1, s2, r.lim2});
        stack.push_back({r.off1, s1, r.off2, s2});
      }
      if (work_ > kDiffMaxWork) return false;
    }
    return true;
  }

 private:
  int64_t& F(int64_t d) { return kvdf_[static_cast<size_t>(d + offset_)]; }
  int64_t& B(int64_t d) { return kvdb_[static_cast<size_t>(d + offset_)]; }

  // Finds a point (*s1, *s2) on an optimal edit path of the range, with the
  // forward search from (off1, off2) and the backward one from (lim1, lim2)
  // meeting there. Diagonal d = i1 - i2. REQUIRES: both ranges non-empty.
  bool Split(int64_t off1, int64_t lim1, int64_t off2, int64_t lim2, int64_t* s1,
             int64_t* s2) {
    const int64_t dmin = off1 - lim2, dmax = lim1 - off2;
    const int64_t fmid = off1 - off2, bmid = lim1 - lim2;
    const bool odd = ((fmid - bmid) & 1) != 0;
    int64_t fmin = fmid, fmax = fmid, bmin = bmid, bmax = bmid;
    constexpr int64_t kLow = -1, kHigh = INT64_MAX;
    F(fmid) = off1;
    B(bmid) = lim1;
    for (int64_t ec = 1;; ++ec) {
      // Each round costs one edit in each direction: D is about 2*ec.
      if (2 * (ec - 1) > kDiffMaxEditDistance) return false;
      if (fmin > dmin) {
        F(--fmin - 1) = kLow;
      } else {
        ++fmin;
      }
      if (fmax < dmax) {
        F(++fmax + 1) = kLow;
      } else {
        --fmax;
      }
      for (int64_t d = fmax; d >= fmin; d -= 2) {
        int64_t i1 = F(d - 1) >= F(d + 1) ? F(d - 1) + 1 : F(d + 1);
        int64_t i2 = i1 - d;
        int64_t start = i1;
        while (i1 < lim1 && i2 < lim2 && a_[i1] == b_[i2]) {
          ++i1;
          ++i2;
        }
        work_ += 1 + (i1 - start);
        F(d) = i1;
        if (odd && bmin <= d && d <= bmax && B(d) <= i1) {
          *s1 = i1;
          *s2 = i2;
          return true;
        }
      }
      if (bmin > dmin) {
        B(--bmin - 1) = kHigh;
      } else {
        ++bmin;
      }
      if (bmax < dmax) {
        B(++bmax + 1) = kHigh;
      } else {
        --bmax;
      }
      for (int64_t d = bmax; d >= bmin; d -= 2) {
        int64_t i1 = B(d - 1) < B(d + 1) ? B(d - 1) : B(d + 1) - 1;
        int64_t i2 = i1 - d;
        int64_t start = i1;
        while (i1 > off1 && i2 > off2 && a_[i1 - 1] == b_[i2 - 1]) {
          --i1;
          --i2;
        }
        work_ += 1 + (start - i1);
        B(d) = i1;
        if (!odd && fmin <= d && d <= fmax && i1 <= F(d)) {
          *s1 = i1;
          *s2 = i2;
          return true;
        }
      }
      if (work_ > kDiffMaxWork) return false;
    }
  }

  const std::vector<int32_t>& a_;
  const std::vector<int32_t>& b_;
  std::vector<char>& ca_;
  std::vector<char>& cb_;
  int64_t offset_ = 0;
  std::vector<int64_t> kvdf_, kvdb_;
  int64_t work_ = 0;
};

// GNU diff's shift_boundaries (analyze.c), on arrays with a zero sentinel
// before and after: slides each run of changed lines in one file up to merge
// with earlier runs, then down as far as it goes, then back up to line up
// with a run of changes in the other file. Only moves runs across equal
// lines, so the diff stays minimal. O(N+M) amortized per pass.
void ShiftBoundaries(const std::vector<int32_t>* equivs_of[2], char* changed_of[2],
                     const int64_t size_of[2]) {
  for (int f = 0; f < 2; ++f) {
    char* changed = changed_of[f];
    char* other_changed = changed_of[1 - f];
    const std::vector<int32_t>& equivs = *equivs_of[f];
    int64_t i = 0, j = 0;
    const int64_t i_end = size_of[f];
    while (true) {
      while (i < i_end && !changed[i]) {
        while (other_changed[j++]) {
        }
        i++;
      }
      if (i == i_end) break;
      int64_t start = i;
      while (changed[++i]) {
      }
      while (other_changed[j]) j++;
      int64_t runlength, corresponding;
      do {
        runlength = i - start;
        while (start && equivs[start - 1] == equivs[i - 1]) {
          changed[--start] = 1;
          changed[--i] = 0;
          while (changed[start - 1]) start--;
          while (other_changed[--j]) {
          }
        }
        corresponding = other_changed[j - 1] ? i : i_end;
        while (i != i_end && equivs[start] == equivs[i]) {
          changed[start++] = 0;
          changed[i++] = 1;
          while (changed[i]) i++;
          while (other_changed[++j]) corresponding = i;
        }
      } while (runlength != i - start);
      while (corresponding < i) {
        changed[--start] = 1;
        changed[--i] = 0;
        while (other_changed[--j]) {
        }
      }
    }
  }
}

struct Change {
  int64_t a, del, b, ins;  // removes a[a, a+del), adds b[b, b+ins)
};

void AppendLine(std::string* out, char tag, std::string_view line) {
  out->push_back(tag);
  out->append(line);
  if (line.empty() || line.back() != '\n') out->append("\n\\ No newline at end of file\n");
}

// "l,s" of a hunk header for the 0-based half-open range [lo, hi).
void AppendRange(std::string* out, int64_t lo, int64_t hi) {
  if (hi == lo) {
    *out += std::to_string(lo) + ",0";
  } else if (hi - lo == 1) {
    *out += std::to_string(lo + 1);
  } else {
    *out += std::to_string(lo + 1) + "," + std::to_string(hi - lo);
  }
}

}  // namespace

std::string UnifiedDiff(std::string_view old_text, std::string_view new_text,
                        std::string_view old_name, std::string_view new_name, int context) {
  if (old_text == new_text) return "";
  const std::string old_label = Label(old_name, "a/"), new_label = Label(new_name, "b/");
  if (LooksBinary(old_text) || LooksBinary(new_text)) {
    return "Binary files " + old_label + " and " + new_label + " differ\n";
  }
  const int64_t ctx = std::clamp<int64_t>(context, 0, int64_t{1} << 20);

  const std::vector<std::string_view> a = SplitLines(old_text), b = SplitLines(new_text);
  const int64_t n = static_cast<int64_t>(a.size()), m = static_cast<int64_t>(b.size());
  // Change marks with a zero sentinel on each side (index -1 and n).
  std::vector<char> ca_buf(static_cast<size_t>(n + 2), 0), cb_buf(static_cast<size_t>(m + 2), 0);
  char* ca = ca_buf.data() + 1;
  char* cb = cb_buf.data() + 1;

  bool done = false;
  if (old_text.size() <= kDiffMaxBytes && new_text.size() <= kDiffMaxBytes &&
      a.size() <= kDiffMaxLines && b.size() <= kDiffMaxLines) {
    std::unordered_map<std::string_view, int32_t> ids;
    ids.reserve(a.size() + b.size());
    auto number = [&ids](const std::vector<std::string_view>& lines) {
      std::vector<int32_t> out;
      out.reserve(lines.size());
      for (std::string_view line : lines) {
        out.push_back(ids.emplace(line, static_cast<int32_t>(ids.size())).first->second);
      }
      return out;
    };
    const std::vector<int32_t> ea = number(a), eb = number(b);
    std::vector<char> ma(a.size(), 0), mb(b.size(), 0);
    if (Myers(ea, eb, &ma, &mb).Run()) {
      std::copy(ma.begin(), ma.end(), ca);
      std::copy(mb.begin(), mb.end(), cb);
      const std::vector<int32_t>* equivs[2] = {&ea, &eb};
      char* changed[2] = {ca, cb};
      const int64_t sizes[2] = {n, m};
      ShiftBoundaries(equivs, changed, sizes);
      done = true;
    }
  }
  if (!done) {
    // Fallback: keep the common prefix and suffix, replace the middle.
    int64_t pre = 0;
    while (pre < n && pre < m && a[pre] == b[pre]) ++pre;
    int64_t suf = 0;
    while (suf < n - pre && suf < m - pre && a[n - 1 - suf] == b[m - 1 - suf]) ++suf;
    for (int64_t i = pre; i < n - suf; ++i) ca[i] = 1;
    for (int64_t j = pre; j < m - suf; ++j) cb[j] = 1;
  }

  std::vector<Change> changes;
  for (int64_t i = 0, j = 0; i < n || j < m;) {
    if ((i < n && ca[i]) || (j < m && cb[j])) {
      Change c{i, 0, j, 0};
      while (i < n && ca[i]) ++i;
      while (j < m && cb[j]) ++j;
      c.del = i - c.a;
      c.ins = j - c.b;
      changes.push_back(c);
    } else {
      ++i;
      ++j;
    }
  }
  if (changes.empty()) return "";  // unreachable: the texts differ

  std::string out = "--- " + old_label + "\n+++ " + new_label + "\n";
  for (size_t first = 0; first < changes.size();) {
    size_t last = first;
    while (last + 1 < changes.size() &&
           changes[last + 1].a - (changes[last].a + changes[last].del) <= 2 * ctx) {
      ++last;
    }
    const Change& f = changes[first];
    const Change& l = changes[last];
    const int64_t lead = std::min(ctx, f.a);
    const int64_t trail = std::min(ctx, n - (l.a + l.del));
    out += "@@ -";
    AppendRange(&out, f.a - lead, l.a + l.del + trail);
    out += " +";
    AppendRange(&out, f.b - lead, l.b + l.ins + trail);
    out += " @@\n";
    for (int64_t i = f.a - lead; i < f.a; ++i) AppendLine(&out, ' ', a[i]);
    for (size_t k = first; k <= last; ++k) {
      const Change& c = changes[k];
      for (int64_t i = c.a; i < c.a + c.del; ++i) AppendLine(&out, '-', a[i]);
      for (int64_t j = c.b; j < c.b + c.ins; ++j) AppendLine(&out, '+', b[j]);
      const int64_t next = k < last ? changes[k + 1].a : c.a + c.del + trail;
      for (int64_t i = c.a + c.del; i < next; ++i) AppendLine(&out, ' ', a[i]);
    }
    first = last + 1;
  }
  return out;
}

std::vector<FileChange> DiffFileSets(const std::vector<SourceFile>& old_files,
                                     const std::vector<SourceFile>& new_files) {
  auto sorted = [](const std::vector<SourceFile>& files) {
    std::vector<const SourceFile*> out;
    out.reserve(files.size());
    for (const SourceFile& f : files) out.push_back(&f);
    std::stable_sort(out.begin(), out.end(),
                     [](const SourceFile* x, const SourceFile* y) { return x->path < y->path; });
    out.erase(std::unique(out.begin(), out.end(),
                          [](const SourceFile* x, const SourceFile* y) {
                            return x->path == y->path;
                          }),
              out.end());
    return out;
  };
  const std::vector<const SourceFile*> olds = sorted(old_files), news = sorted(new_files);
  std::vector<FileChange> out;
  size_t i = 0, j = 0;
  while (i < olds.size() || j < news.size()) {
    if (j == news.size() || (i < olds.size() && olds[i]->path < news[j]->path)) {
      const SourceFile& f = *olds[i++];
      out.push_back({f.path, "removed", UnifiedDiff(f.content, "", f.path, "/dev/null")});
    } else if (i == olds.size() || news[j]->path < olds[i]->path) {
      const SourceFile& f = *news[j++];
      out.push_back({f.path, "added", UnifiedDiff("", f.content, "/dev/null", f.path)});
    } else {
      const SourceFile& o = *olds[i++];
      const SourceFile& n = *news[j++];
      if (o.content == n.content) continue;
      out.push_back({o.path, "modified", UnifiedDiff(o.content, n.content, o.path, n.path)});
    }
  }
  return out;
}

}  // namespace vakt::controlplane
