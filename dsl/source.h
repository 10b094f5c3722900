// Source files, locations and diagnostics shared by every front-end and
// compiler stage. Diagnostics are collected, never thrown, and printed the
// ninja way: `path:line:col: error: message`, the source line, a caret.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace vakt::dsl {

// One input file. Immutable once made; shared by the AST nodes that point
// into it.
struct SourceFile {
  std::string path;  // as given on the command line
  std::string text;

  // Returns line `line` (1-based) without its newline, or "" if out of range.
  std::string_view Line(uint32_t line) const;
};

struct Location {
  const SourceFile* file = nullptr;
  uint32_t line = 0;    // 1-based; 0 = unknown
  uint32_t column = 0;  // 1-based, in bytes
};

enum class Severity : uint8_t { kError, kWarning, kNote };

struct Diagnostic {
  Severity severity = Severity::kError;
  Location loc;
  std::string message;  // lowercase, no final period, user text in `backticks`
};

// Collects diagnostics from every stage. Not thread-safe.
class Diagnostics {
 public:
  void Error(const Location& loc, std::string message);
  void Warning(const Location& loc, std::string message);
  void Note(const Location& loc, std::string message);

  bool HasErrors() const { return errors_ > 0; }
  size_t error_count() const { return errors_; }
  size_t warning_count() const { return warnings_; }
  const std::vector<Diagnostic>& all() const { return diags_; }

  // Appends every diagnostic of `other` (e.g. from a file parsed on
  // another thread), keeping their order.
  void Append(const Diagnostics& other);

  // Sorts by file, line and column (stable), so output is deterministic.
  void Sort();

  // `path:line:col: error: message\n  source line\n  ^\n` for each one.
  std::string Format() const;

 private:
  std::vector<Diagnostic> diags_;
  size_t errors_ = 0;
  size_t warnings_ = 0;
};

// Formats one diagnostic with its source line and caret.
std::string FormatDiagnostic(const Diagnostic& d);

}  // namespace vakt::dsl
