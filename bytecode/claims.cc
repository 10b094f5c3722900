// JsonClaims (claims.h): a parsed, duplicate-free claims object.
#include "bytecode/claims.h"

#include <algorithm>
#include <string>
#include <vector>

namespace vakt::bytecode {
namespace {

using simdjson::dom::element;

const char* TypeOf(const element& e) {
  switch (e.type()) {
    case simdjson::dom::element_type::ARRAY: return "an array";
    case simdjson::dom::element_type::OBJECT: return "an object";
    case simdjson::dom::element_type::STRING: return "a string";
    case simdjson::dom::element_type::BOOL: return "a boolean";
    case simdjson::dom::element_type::NULL_VALUE: return "null";
    default: return "a number";
  }
}

}  // namespace

bool FindDuplicateJsonKey(element root, std::vector<element>* stack,
                          std::vector<std::string_view>* keys, std::string_view* dup) {
  stack->clear();
  stack->push_back(root);
  while (!stack->empty()) {
    element e = stack->back();
    stack->pop_back();
    if (e.is_object()) {
      keys->clear();
      for (auto field : simdjson::dom::object(e)) {
        keys->push_back(field.key);
        stack->push_back(field.value);
      }
      std::sort(keys->begin(), keys->end());
      auto it = std::adjacent_find(keys->begin(), keys->end());
      if (it != keys->end()) {
        *dup = *it;
        return true;
      }
    } else if (e.is_array()) {
      for (element v : simdjson::dom::array(e)) stack->push_back(v);
    }
  }
  return false;
}

Result<std::unique_ptr<JsonClaims>> JsonClaims::Parse(std::string_view json) {
  if (json.size() > kMaxClaimsBytes) {
    return ResourceExhausted("claims: " + std::to_string(json.size()) +
                             " bytes is over the limit of " + std::to_string(kMaxClaimsBytes));
  }
  std::unique_ptr<JsonClaims> c(new JsonClaims());
  if (c->parser_.allocate(std::max<size_t>(json.size(), 64), kMaxClaimsDepth) !=
      simdjson::SUCCESS) {
    return ResourceExhausted("claims: cannot allocate the parser");
  }
  element root;
  if (auto err = c->parser_.parse(json.data(), json.size()).get(root); err != simdjson::SUCCESS) {
    return InvalidArgument(std::string("claims: malformed JSON: ") + simdjson::error_message(err));
  }
  if (!root.is_object()) {
    return InvalidArgument(std::string("claims: expected a JSON object, got ") + TypeOf(root));
  }
  std::vector<element> stack;
  std::vector<std::string_view> keys;
  std::string_view dup_view;
  if (FindDuplicateJsonKey(root, &stack, &keys, &dup_view)) {
    std::string dup(dup_view.substr(0, 64));
    return InvalidArgument("claims: member \"" + dup + "\" appears twice in one object");
  }
  c->root_ = root;
  return c;
}

bool JsonClaims::Find(std::span<const std::string_view> path, element* out) const {
  element cur = root_;
  for (std::string_view part : path) {
    simdjson::dom::object obj;
    if (cur.get_object().get(obj) != simdjson::SUCCESS) return false;
    if (obj.at_key(part).get(cur) != simdjson::SUCCESS) return false;
  }
  *out = cur;
  return true;
}

}  // namespace vakt::bytecode
