// Interning tables shared by the route-table builder and code generation:
// strings, integers, regexes and claim paths get stable indices in first-use
// order, so the same sources always produce the same bundle bytes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "bytecode/bundle.h"

namespace vakt::compiler {

class Tables {
 public:
  explicit Tables(bytecode::BundleData& data) : data_(data) {
    data_.strings.clear();
    data_.strings.push_back("");
    strings_[""] = 0;
  }

  uint32_t Str(const std::string& s) {
    auto [it, inserted] = strings_.emplace(s, static_cast<uint32_t>(data_.strings.size()));
    if (inserted) data_.strings.push_back(s);
    return it->second;
  }
  uint32_t Int(int64_t v) {
    auto [it, inserted] = ints_.emplace(v, static_cast<uint32_t>(data_.ints.size()));
    if (inserted) data_.ints.push_back(v);
    return it->second;
  }
  uint32_t Regex(const std::string& pattern) {
    uint32_t s = Str(pattern);
    auto [it, inserted] = regexes_.emplace(s, static_cast<uint32_t>(data_.regexes.size()));
    if (inserted) data_.regexes.push_back(s);
    return it->second;
  }
  uint32_t ClaimPath(const std::vector<std::string>& parts) {
    std::vector<uint32_t> ids;
    for (const auto& p : parts) ids.push_back(Str(p));
    auto [it, inserted] = claims_.emplace(ids, static_cast<uint32_t>(data_.claim_paths.size()));
    if (inserted) data_.claim_paths.push_back(ids);
    return it->second;
  }

 private:
  bytecode::BundleData& data_;
  std::map<std::string, uint32_t> strings_;
  std::map<int64_t, uint32_t> ints_;
  std::map<uint32_t, uint32_t> regexes_;
  std::map<std::vector<uint32_t>, uint32_t> claims_;
};

}  // namespace vakt::compiler
