#include "dsl/source.h"

#include <algorithm>
#include <tuple>

namespace vakt::dsl {

std::string_view SourceFile::Line(uint32_t line) const {
  if (line == 0) return {};
  size_t pos = 0;
  for (uint32_t l = 1; l < line; ++l) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) return {};
    pos = nl + 1;
  }
  size_t end = text.find('\n', pos);
  if (end == std::string::npos) end = text.size();
  std::string_view sv(text.data() + pos, end - pos);
  if (!sv.empty() && sv.back() == '\r') sv.remove_suffix(1);
  return sv;
}

void Diagnostics::Error(const Location& loc, std::string message) {
  diags_.push_back({Severity::kError, loc, std::move(message)});
  ++errors_;
}

void Diagnostics::Warning(const Location& loc, std::string message) {
  diags_.push_back({Severity::kWarning, loc, std::move(message)});
  ++warnings_;
}

void Diagnostics::Append(const Diagnostics& other) {
  diags_.insert(diags_.end(), other.diags_.begin(), other.diags_.end());
  errors_ += other.errors_;
  warnings_ += other.warnings_;
}

void Diagnostics::Note(const Location& loc, std::string message) {
  diags_.push_back({Severity::kNote, loc, std::move(message)});
}

void Diagnostics::Sort() {
  // A note belongs to the diagnostic before it and moves with it.
  struct Group {
    size_t first, count;
  };
  std::vector<Group> groups;
  for (size_t i = 0; i < diags_.size(); ++i) {
    if (diags_[i].severity == Severity::kNote && !groups.empty()) {
      ++groups.back().count;
    } else {
      groups.push_back({i, 1});
    }
  }
  auto key = [&](const Group& g) {
    const Diagnostic& d = diags_[g.first];
    std::string_view path = d.loc.file ? std::string_view(d.loc.file->path) : "";
    return std::make_tuple(path, d.loc.line, d.loc.column);
  };
  std::stable_sort(groups.begin(), groups.end(),
                   [&](const Group& a, const Group& b) { return key(a) < key(b); });
  std::vector<Diagnostic> sorted;
  sorted.reserve(diags_.size());
  for (const auto& g : groups) {
    for (size_t i = 0; i < g.count; ++i) sorted.push_back(std::move(diags_[g.first + i]));
  }
  diags_ = std::move(sorted);
}

std::string FormatDiagnostic(const Diagnostic& d) {
  std::string out;
  if (d.loc.file) {
    out += d.loc.file->path;
    out += ':';
    out += std::to_string(d.loc.line);
    out += ':';
    out += std::to_string(d.loc.column);
    out += ": ";
  }
  switch (d.severity) {
    case Severity::kError: out += "error: "; break;
    case Severity::kWarning: out += "warning: "; break;
    case Severity::kNote: out += "note: "; break;
  }
  out += d.message;
  out += '\n';
  if (d.loc.file && d.loc.line > 0) {
    std::string_view line = d.loc.file->Line(d.loc.line);
    out += "  ";
    // Tabs are kept so the caret lines up in a terminal.
    out.append(line);
    out += "\n  ";
    for (uint32_t i = 1; i < d.loc.column && i - 1 < line.size(); ++i) {
      out += line[i - 1] == '\t' ? '\t' : ' ';
    }
    out += "^\n";
  }
  return out;
}

std::string Diagnostics::Format() const {
  std::string out;
  for (const auto& d : diags_) out += FormatDiagnostic(d);
  return out;
}

}  // namespace vakt::dsl
