// OpenAPI documents -> JSON text and schema pointers; see openapi.h.
// YAML is converted by a recursive walk bounded by kMaxYamlDepth (yaml-cpp
// itself guards its parser's depth); $ref chains between OpenAPI objects
// are followed at most kMaxOpenApiRefHops times. Tested by
// tests/schema_test.cc (SchemaOpenApi.*).
#include "compiler/openapi.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>

#include "bytecode/json_number.h"

namespace vakt::compiler {
namespace {

using json = nlohmann::json;

constexpr int kMaxYamlDepth = 200;
constexpr int kMaxOpenApiRefHops = 8;

void JsonString(std::string& out, const std::string& s) { out += json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

// YAML 1.2 core schema resolution of a plain scalar, written as JSON.
void PlainScalar(std::string& out, const std::string& v) {
  if (v.empty() || v == "~" || v == "null" || v == "Null" || v == "NULL") {
    out += "null";
    return;
  }
  if (v == "true" || v == "True" || v == "TRUE") {
    out += "true";
    return;
  }
  if (v == "false" || v == "False" || v == "FALSE") {
    out += "false";
    return;
  }
  // Numbers: normalise "+1", ".5", "1." to JSON grammar, keeping the digits.
  std::string n = v;
  if (!n.empty() && n[0] == '+') n = n.substr(1);
  bool neg = !n.empty() && n[0] == '-';
  std::string body = neg ? n.substr(1) : n;
  if (!body.empty() && body[0] == '.') body = "0" + body;
  size_t dot = body.find('.');
  if (dot != std::string::npos && (dot + 1 == body.size() || !std::isdigit(static_cast<unsigned char>(body[dot + 1])))) {
    body = body.substr(0, dot + 1) + '0' + body.substr(dot + 1);
  }
  // Leading zeros ("007") are not JSON numbers.
  while (body.size() > 1 && body[0] == '0' && std::isdigit(static_cast<unsigned char>(body[1]))) body.erase(0, 1);
  std::string cand = (neg ? "-" : "") + body;
  bytecode::Decimal d;
  if (!body.empty() && std::isdigit(static_cast<unsigned char>(body[0])) && bytecode::ParseDecimal(cand, &d)) {
    out += cand;
    return;
  }
  JsonString(out, v);
}

Status YamlToJson(const YAML::Node& n, std::string& out, int depth, const std::string& display) {
  if (depth > kMaxYamlDepth) return ResourceExhausted(display + ": nested deeper than " + std::to_string(kMaxYamlDepth));
  switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null: out += "null"; return Status::Ok();
    case YAML::NodeType::Scalar:
      if (n.Tag() == "?") PlainScalar(out, n.Scalar());
      else JsonString(out, n.Scalar());
      return Status::Ok();
    case YAML::NodeType::Sequence: {
      out += '[';
      bool first = true;
      for (const auto& x : n) {
        if (!first) out += ',';
        first = false;
        Status s = YamlToJson(x, out, depth + 1, display);
        if (!s.ok()) return s;
      }
      out += ']';
      return Status::Ok();
    }
    case YAML::NodeType::Map: {
      out += '{';
      bool first = true;
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) return InvalidArgument(display + ": a mapping key is not a scalar");
        if (!first) out += ',';
        first = false;
        JsonString(out, kv.first.Scalar());
        out += ':';
        Status s = YamlToJson(kv.second, out, depth + 1, display);
        if (!s.ok()) return s;
      }
      out += '}';
      return Status::Ok();
    }
  }
  return Status::Ok();
}

std::string Escape(const std::string& t) {
  std::string r;
  for (char c : t) {
    if (c == '~') r += "~0";
    else if (c == '/') r += "~1";
    else r += c;
  }
  return r;
}

// Follows local `$ref`s between OpenAPI objects (requestBodies, responses, ...).
Result<std::pair<const json*, std::string>> Deref(const json& root, const json* j, std::string ptr,
                                                   const std::string& display) {
  for (int hop = 0; j && j->is_object() && j->contains("$ref"); ++hop) {
    if (hop >= kMaxOpenApiRefHops) return InvalidArgument(display + ": #" + ptr + ": $ref chain too long");
    const json& r = (*j)["$ref"];
    if (!r.is_string() || r.get<std::string>().rfind("#/", 0) != 0) {
      return Unsupported(display + ": #" + ptr + "/$ref: only local references between OpenAPI objects are supported");
    }
    ptr = r.get<std::string>().substr(1);
    try {
      j = &root.at(json::json_pointer(ptr));
    } catch (const std::exception&) {
      return NotFound(display + ": #" + ptr + ": the reference points at nothing");
    }
  }
  return std::pair{j, ptr};
}

Result<std::string> MediaSchema(const json& root, const json* holder, const std::string& ptr,
                                const std::string& display, const std::string& what) {
  if (!holder->is_object() || !holder->contains("content") || !(*holder)["content"].is_object()) {
    return NotFound(display + ": #" + ptr + ": " + what + " has no content");
  }
  const json& content = (*holder)["content"];
  std::string chosen;
  for (auto it = content.begin(); it != content.end(); ++it) {
    std::string mt = it.key();
    std::transform(mt.begin(), mt.end(), mt.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string base = mt.substr(0, mt.find(';'));
    while (!base.empty() && base.back() == ' ') base.pop_back();
    if (base == "application/json") {
      chosen = it.key();
      break;
    }
    if (chosen.empty() && base.size() > 5 && base.compare(base.size() - 5, 5, "+json") == 0) chosen = it.key();
  }
  if (chosen.empty()) return NotFound(display + ": #" + ptr + "/content: " + what + " has no application/json content");
  std::string mptr = ptr + "/content/" + Escape(chosen);
  auto media = Deref(root, &content[chosen], mptr, display);
  if (!media.ok()) return media.status();
  const json* m = media->first;
  if (!m->is_object() || !m->contains("schema")) return NotFound(display + ": #" + media->second + ": no schema");
  return media->second + "/schema";
}

}  // namespace

bool LooksLikeJson(const std::string& text) {
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    return c == '{' || c == '[';
  }
  return false;
}

Result<std::string> YamlToJsonText(const std::string& display, const std::string& text) {
  if (text.size() > kMaxSchemaDocumentBytes) return ResourceExhausted(display + ": document too large");
  try {
    YAML::Node n = YAML::Load(text);
    std::string out;
    Status s = YamlToJson(n, out, 0, display);
    if (!s.ok()) return s;
    return out;
  } catch (const YAML::Exception& e) {
    return InvalidArgument(display + ":" + std::to_string(e.mark.line + 1) + ": not YAML: " + e.msg);
  }
}

Result<OpenApiDocument> ParseOpenApi(const std::string& display, const std::string& text) {
  if (text.size() > kMaxSchemaDocumentBytes) return ResourceExhausted(display + ": document too large");
  OpenApiDocument doc;
  bool is_json = LooksLikeJson(text);
  json j;
  if (is_json) {
    doc.json_text = text;
  } else {
    auto converted = YamlToJsonText(display, text);
    if (!converted.ok()) return converted.status();
    doc.json_text = std::move(*converted);
  }
  // Bracket nesting bounded before nlohmann sees it.
  if (JsonNesting(doc.json_text) > static_cast<size_t>(kMaxSchemaCompileDepth)) {
    return ResourceExhausted(display + ": nested too deeply");
  }
  j = json::parse(doc.json_text, nullptr, false);
  if (j.is_discarded()) return InvalidArgument(display + ": not JSON");
  if (!j.is_object() || !j.contains("openapi") || !j["openapi"].is_string()) {
    return InvalidArgument(display + ": #/openapi: not an OpenAPI document (no `openapi` version string)");
  }
  std::string v = j["openapi"].get<std::string>();
  if (v.rfind("3.0", 0) == 0) doc.v30 = true;
  else if (v.rfind("3.1", 0) == 0) doc.v30 = false;
  else return Unsupported(display + ": #/openapi: version `" + v + "` is not 3.0 or 3.1");
  return doc;
}

Result<std::string> FindOpenApiSchema(const std::string& display, const OpenApiDocument& doc,
                                      const OpenApiSelector& sel) {
  json root = json::parse(doc.json_text, nullptr, false);
  if (root.is_discarded()) return InvalidArgument(display + ": not JSON");
  if (!sel.component.empty()) {
    std::string ptr = "/components/schemas/" + Escape(sel.component);
    const json* s = root.contains("components") && root["components"].is_object() &&
                            root["components"].contains("schemas") && root["components"]["schemas"].is_object() &&
                            root["components"]["schemas"].contains(sel.component)
                        ? &root["components"]["schemas"][sel.component]
                        : nullptr;
    if (!s) return NotFound(display + ": #" + ptr + ": no such component schema");
    return ptr;
  }
  std::string method = sel.method;
  std::transform(method.begin(), method.end(), method.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string item_ptr = "/paths/" + Escape(sel.path);
  if (!root.contains("paths") || !root["paths"].is_object() || !root["paths"].contains(sel.path)) {
    return NotFound(display + ": #" + item_ptr + ": no path `" + sel.path + "`");
  }
  auto item = Deref(root, &root["paths"][sel.path], item_ptr, display);
  if (!item.ok()) return item.status();
  const json* it = item->first;
  if (!it->is_object() || !it->contains(method)) {
    return NotFound(display + ": #" + item->second + "/" + method + ": no operation `" + sel.method + " " + sel.path + "`");
  }
  std::string op_ptr = item->second + "/" + method;
  const json& op = (*it)[method];
  if (sel.status == 0) {
    if (!op.is_object() || !op.contains("requestBody")) return NotFound(display + ": #" + op_ptr + ": the operation has no requestBody");
    auto rb = Deref(root, &op["requestBody"], op_ptr + "/requestBody", display);
    if (!rb.ok()) return rb.status();
    return MediaSchema(root, rb->first, rb->second, display, "the request body");
  }
  if (!op.is_object() || !op.contains("responses") || !op["responses"].is_object()) {
    return NotFound(display + ": #" + op_ptr + ": the operation has no responses");
  }
  const json& responses = op["responses"];
  std::string code = std::to_string(sel.status);
  std::string range = code.substr(0, 1) + "XX", range_lc = code.substr(0, 1) + "xx";
  std::string key;
  for (const std::string& k : {code, range, range_lc, std::string("default")}) {
    if (responses.contains(k)) {
      key = k;
      break;
    }
  }
  if (key.empty()) return NotFound(display + ": #" + op_ptr + "/responses: no response for status " + code);
  auto resp = Deref(root, &responses[key], op_ptr + "/responses/" + Escape(key), display);
  if (!resp.ok()) return resp.status();
  return MediaSchema(root, resp->first, resp->second, display, "the response " + key);
}

}  // namespace vakt::compiler
