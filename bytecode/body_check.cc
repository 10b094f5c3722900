// Body checks: content type, limits and schema validation of one body, and
// the deny each outcome maps to. See body_check.h.
#include "bytecode/body_check.h"

#include <algorithm>
#include <string>

namespace vakt::bytecode {
namespace {

// A description is for humans and logs; an attacker chooses the pointer
// (member names), so it is cut at a fixed length.
constexpr size_t kMaxDescriptionBytes = 512;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
    case '-': case '.': case '^': case '_': case '`': case '|': case '~':
      return true;
    default:
      return false;
  }
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

void Cut(std::string& s) {
  if (s.size() <= kMaxDescriptionBytes) return;
  size_t n = kMaxDescriptionBytes;
  // Do not split a UTF-8 sequence.
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  s.resize(n);
  s += "...";
}

// The essence of a media type as a view (no copy, case kept): the text
// before ';', trimmed; empty unless it is token/token.
std::string_view EssenceView(std::string_view content_type) {
  std::string_view s = content_type;
  size_t semi = s.find(';');
  if (semi != std::string_view::npos) s = s.substr(0, semi);
  s = Trim(s);
  size_t slash = std::string_view::npos;
  for (size_t i = 0; i < s.size(); ++i) {
    char l = Lower(s[i]);
    if (l == '/') {
      if (slash != std::string_view::npos) return {};
      slash = i;
    } else if (!IsTokenChar(l)) {
      return {};
    }
  }
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == s.size()) return {};
  return s;
}

bool EqualsLower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (Lower(s[i]) != lower[i]) return false;
  }
  return true;
}

// Validate() on the text, or on the shared parse when there is one. Validate
// refuses a body over max_bytes before parsing, and a body nested deeper
// than max_depth with simdjson's depth error before any other limit or a
// duplicate key; both are kept here, so the outcome does not depend on who
// parsed the body.
ValidationResult ValidateShared(const SchemaSet& set, const BodyCheckSpec& spec,
                                std::string_view body, ValidationScratch& scratch,
                                SharedBodyParse* shared) {
  if (shared == nullptr || body.size() > spec.limits.max_body_bytes) {
    return Validate(set, spec.root, body, spec.limits, scratch);
  }
  // The depth Validate parses with: simdjson counts the document as a level.
  uint32_t depth = std::min(spec.limits.max_depth, kMaxValidationDepth) + 1;
  bool too_deep = false;
  const simdjson::dom::element* root = shared->Parse(depth, &too_deep);
  if (root == nullptr) return Validate(set, spec.root, body, spec.limits, scratch);
  if (too_deep) {
    ValidationResult res;
    res.outcome = ValidationOutcome::kOverLimit;
    res.limit = LimitKind::kDepth;
    res.message = "nesting deeper than " + std::to_string(spec.limits.max_depth);
    return res;
  }
  return ValidateElement(set, spec.root, *root, spec.limits, scratch);
}

}  // namespace

std::string MediaTypeEssence(std::string_view content_type) {
  std::string out(EssenceView(content_type));
  for (char& c : out) c = Lower(c);
  return out;
}

// Allocation-free: it runs on every request with a body check.
bool IsJsonMediaType(std::string_view content_type) {
  std::string_view e = EssenceView(content_type);
  static constexpr std::string_view kPrefix = "application/";
  static constexpr std::string_view kSuffix = "+json";
  if (EqualsLower(e, "application/json")) return true;
  return e.size() > kPrefix.size() + kSuffix.size() &&
         EqualsLower(e.substr(0, kPrefix.size()), kPrefix) &&
         EqualsLower(e.substr(e.size() - kSuffix.size()), kSuffix);
}

bool MediaTypeAccepted(std::string_view content_type, std::string_view accept) {
  std::string_view e = EssenceView(content_type);
  if (e.empty()) return false;
  while (!accept.empty()) {
    size_t comma = accept.find(',');
    std::string a = MediaTypeEssence(accept.substr(0, comma));
    accept = comma == std::string_view::npos ? std::string_view() : accept.substr(comma + 1);
    if (a.empty()) continue;
    if (EqualsLower(e, a)) return true;
    if (a.ends_with("/*") && e.size() >= a.size() - 1 &&
        EqualsLower(e.substr(0, a.size() - 1), std::string_view(a).substr(0, a.size() - 1))) {
      return true;
    }
  }
  return false;
}

const char* BodyVerdictName(BodyVerdict v) {
  switch (v) {
    case BodyVerdict::kValid: return "valid";
    case BodyVerdict::kSkipped: return "skipped";
    case BodyVerdict::kUnsupportedType: return "unsupported media type";
    case BodyVerdict::kMissing: return "missing";
    case BodyVerdict::kTooLarge: return "too large";
    case BodyVerdict::kOverLimit: return "over a limit";
    case BodyVerdict::kMalformed: return "malformed";
    case BodyVerdict::kInvalid: return "invalid";
  }
  return "?";
}

int SelectResponseCheck(int status, std::span<const uint16_t> keys) {
  int exact = -1, cls = -1, def = -1;
  for (size_t i = 0; i < keys.size(); ++i) {
    int k = keys[i];
    if (k == status && exact < 0) exact = static_cast<int>(i);
    if (k >= 1 && k <= 5 && k == status / 100 && cls < 0) cls = static_cast<int>(i);
    if (k == 0 && def < 0) def = static_cast<int>(i);
  }
  return exact >= 0 ? exact : cls >= 0 ? cls : def;
}

BodyCheckResult CheckBody(const SchemaSet& set, const BodyCheckSpec& spec,
                          bool has_content_type, std::string_view content_type,
                          std::string_view body, ValidationScratch& scratch,
                          SharedBodyParse* shared) {
  BodyCheckResult r;
  auto deny = [&](BodyVerdict v, uint16_t request_status, std::string description) {
    r.verdict = v;
    r.status = spec.response ? 502 : request_status;
    r.error = spec.response ? "invalid_response" : "invalid_request";
    r.description = std::move(description);
    Cut(r.description);
    return r;
  };
  const char* what = spec.response ? "response body" : "body";
  if (has_content_type && !IsJsonMediaType(content_type)) {
    if (MediaTypeAccepted(content_type, spec.accept)) {
      r.verdict = BodyVerdict::kSkipped;
      return r;
    }
    std::string essence = MediaTypeEssence(content_type);
    return deny(BodyVerdict::kUnsupportedType, 415,
                std::string(what) + ": content type `" +
                    (essence.empty() ? std::string("?") : essence) +
                    "` is not JSON (application/json or application/*+json)");
  }
  if (body.empty()) {
    return deny(BodyVerdict::kMissing, 400, std::string(what) + ": a JSON body is required");
  }
  if (!has_content_type) {
    return deny(BodyVerdict::kUnsupportedType, 415,
                std::string(what) + ": no content type (application/json is required)");
  }
  ValidationResult v = ValidateShared(set, spec, body, scratch, shared);
  switch (v.outcome) {
    case ValidationOutcome::kValid:
      return r;
    case ValidationOutcome::kInvalid:
      return deny(BodyVerdict::kInvalid, 400,
                  std::string(what) + ": " + v.keyword + " at " +
                      (v.instance_pointer.empty() ? std::string("the root") : v.instance_pointer) +
                      ": " + v.message);
    case ValidationOutcome::kMalformed:
      return deny(BodyVerdict::kMalformed, 400,
                  std::string(what) + ": malformed JSON: " + v.message);
    case ValidationOutcome::kOverLimit:
      if (v.limit == LimitKind::kBodyBytes) {
        return deny(BodyVerdict::kTooLarge, 413,
                    std::string(what) + ": larger than " +
                        std::to_string(spec.limits.max_body_bytes) + " bytes");
      }
      return deny(BodyVerdict::kOverLimit, 400, std::string(what) + ": over a limit: " + v.message);
  }
  return deny(BodyVerdict::kMalformed, 400, std::string(what) + ": not validated");
}

}  // namespace vakt::bytecode
