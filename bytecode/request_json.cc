// The request/response JSON of `vakt eval`, policy tests and POST /v1/check
// (request_json.h), read with simdjson's DOM API through error codes only.
// The input is untrusted: its size is bounded before parsing, every key is
// checked against the documented set (an unknown or repeated key is an
// error naming it) and every value's type is checked, so a typo in a test
// never silently turns into an absent header. O(input size).
//
// Tested by request_json_test.cc.
#include "bytecode/request_json.h"

#include <simdjson.h>

#include "bytecode/format.h"

namespace vakt::bytecode {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;

const char* TypeName(const element& e) {
  switch (e.type()) {
    case element_type::ARRAY:
      return "an array";
    case element_type::OBJECT:
      return "an object";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE:
      return "a number";
    case element_type::STRING:
      return "a string";
    case element_type::BOOL:
      return "a boolean";
    case element_type::NULL_VALUE:
      return "null";
  }
  return "a value";
}

Status Bad(std::string_view what, std::string message) {
  return InvalidArgument(std::string(what) + ": " + message);
}

Status WrongType(std::string_view what, std::string_view key, const element& e,
                 std::string_view want) {
  return Bad(what,
             "`" + std::string(key) + "` is " + TypeName(e) + ", expected " + std::string(want));
}

// Parses `json` (size-checked) into `doc`, which must be an object.
Status ParseObject(std::string_view what, std::string_view json, simdjson::dom::parser& parser,
                   object* out) {
  if (json.size() > kMaxRequestJsonBytes) {
    return ResourceExhausted(std::string(what) + ": " + std::to_string(json.size()) +
                             " bytes is over the limit of " + std::to_string(kMaxRequestJsonBytes));
  }
  element root;
  if (auto err = parser.parse(json.data(), json.size()).get(root); err != simdjson::SUCCESS) {
    return Bad(what, std::string("malformed JSON: ") + simdjson::error_message(err));
  }
  if (root.get_object().get(*out) != simdjson::SUCCESS) {
    return Bad(what, std::string("expected a JSON object, got ") + TypeName(root));
  }
  return Status::Ok();
}

// Refuses keys that appear twice (a later one would silently win).
class SeenKeys {
 public:
  bool Insert(std::string_view key) {
    for (std::string_view k : keys_) {
      if (k == key) return false;
    }
    keys_.push_back(key);
    return true;
  }

 private:
  std::vector<std::string_view> keys_;
};

Status GetString(std::string_view what, std::string_view key, const element& e, std::string* out) {
  std::string_view s;
  if (e.get_string().get(s) != simdjson::SUCCESS) return WrongType(what, key, e, "a string");
  out->assign(s);
  return Status::Ok();
}

Status GetHeaders(std::string_view what, const element& e,
                  std::vector<std::pair<std::string, std::string>>* out) {
  object headers;
  if (e.get_object().get(headers) != simdjson::SUCCESS) {
    return WrongType(what, "headers", e, "an object");
  }
  for (auto field : headers) {
    std::string name(field.key);
    std::string_view s;
    if (field.value.get_string().get(s) == simdjson::SUCCESS) {
      out->emplace_back(name, std::string(s));
      continue;
    }
    simdjson::dom::array values;
    if (field.value.get_array().get(values) != simdjson::SUCCESS) {
      return Bad(what, "header `" + name + "` is " + TypeName(field.value) +
                           ", expected a string or an array of strings");
    }
    for (element v : values) {
      if (v.get_string().get(s) != simdjson::SUCCESS) {
        return Bad(what, "header `" + name + "` has a value that is " + TypeName(v) +
                             ", expected a string");
      }
      out->emplace_back(name, std::string(s));
    }
  }
  return Status::Ok();
}

Status GetBody(std::string_view what, const element& e, std::string* out) {
  std::string_view s;
  if (e.get_string().get(s) == simdjson::SUCCESS) {
    out->assign(s);
    return Status::Ok();
  }
  if (e.is_object() || e.is_array()) {
    *out = simdjson::minify(e);
    return Status::Ok();
  }
  return WrongType(what, "body", e, "a string, an object or an array");
}

Status GetInt(std::string_view what, std::string_view key, const element& e, int64_t* out) {
  int64_t v;
  if (e.is_int64() && e.get_int64().get(v) == simdjson::SUCCESS) {
    *out = v;
    return Status::Ok();
  }
  if (e.is_uint64()) return Bad(what, "`" + std::string(key) + "` is out of range");
  return WrongType(what, key, e, "an integer");
}

Status GetTls(const element& e, OwnedRequest* req) {
  constexpr std::string_view kWhat = "request tls";
  object tls;
  if (e.get_object().get(tls) != simdjson::SUCCESS) {
    return WrongType("request", "tls", e, "an object");
  }
  SeenKeys seen;
  for (auto field : tls) {
    std::string_view key = field.key;
    if (!seen.Insert(key)) return Bad(kWhat, "duplicate key `" + std::string(key) + "`");
    Status st;
    if (key == "version") {
      st = GetString(kWhat, key, field.value, &req->tls_version);
    } else if (key == "cipher") {
      st = GetString(kWhat, key, field.value, &req->tls_cipher);
    } else if (key == "client_cert") {
      st = GetString(kWhat, key, field.value, &req->client_cert);
    } else {
      return Bad(kWhat, "unknown key `" + std::string(key) +
                            "` (expected version, cipher or client_cert)");
    }
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

}  // namespace

HttpRequest OwnedRequest::View() const {
  header_views_.clear();
  header_views_.reserve(headers.size());
  for (const auto& [name, value] : headers) header_views_.push_back({name, value});
  HttpRequest r;
  r.method = method;
  r.target = target;
  r.headers = header_views_;
  r.body = body;
  r.tls.version = tls_version;
  r.tls.cipher = tls_cipher;
  r.tls.client_cert_pem = client_cert;
  r.time = time;
  return r;
}

HttpResponse OwnedResponse::View() const {
  header_views_.clear();
  header_views_.reserve(headers.size());
  for (const auto& [name, value] : headers) header_views_.push_back({name, value});
  HttpResponse r;
  r.status = status;
  r.headers = header_views_;
  r.body = body;
  return r;
}

Result<OwnedRequest> ParseRequestJson(std::string_view json) {
  constexpr std::string_view kWhat = "request";
  simdjson::dom::parser parser;
  object root;
  if (Status st = ParseObject(kWhat, json, parser, &root); !st.ok()) return st;
  OwnedRequest req;
  bool has_method = false;
  bool has_path = false;
  SeenKeys seen;
  for (auto field : root) {
    std::string_view key = field.key;
    if (!seen.Insert(key)) return Bad(kWhat, "duplicate key `" + std::string(key) + "`");
    Status st;
    if (key == "method") {
      st = GetString(kWhat, key, field.value, &req.method);
      has_method = true;
    } else if (key == "path") {
      st = GetString(kWhat, key, field.value, &req.target);
      has_path = true;
    } else if (key == "headers") {
      st = GetHeaders(kWhat, field.value, &req.headers);
    } else if (key == "body") {
      st = GetBody(kWhat, field.value, &req.body);
    } else if (key == "tls") {
      st = GetTls(field.value, &req);
    } else if (key == "time") {
      st = GetInt(kWhat, key, field.value, &req.time);
      req.has_time = true;
    } else {
      return Bad(kWhat, "unknown key `" + std::string(key) +
                            "` (expected method, path, headers, body, tls or time)");
    }
    if (!st.ok()) return st;
  }
  if (!has_method) return Bad(kWhat, "`method` is required");
  if (!has_path) return Bad(kWhat, "`path` is required");
  return req;
}

Result<OwnedResponse> ParseResponseJson(std::string_view json) {
  constexpr std::string_view kWhat = "response";
  simdjson::dom::parser parser;
  object root;
  if (Status st = ParseObject(kWhat, json, parser, &root); !st.ok()) return st;
  OwnedResponse resp;
  bool has_status = false;
  SeenKeys seen;
  for (auto field : root) {
    std::string_view key = field.key;
    if (!seen.Insert(key)) return Bad(kWhat, "duplicate key `" + std::string(key) + "`");
    Status st;
    if (key == "status") {
      int64_t v = 0;
      st = GetInt(kWhat, key, field.value, &v);
      if (st.ok() && (v < kMinStatus || v > kMaxStatus)) {
        return Bad(kWhat, "`status` " + std::to_string(v) + " is outside " +
                              std::to_string(kMinStatus) + ".." + std::to_string(kMaxStatus));
      }
      resp.status = static_cast<int>(v);
      has_status = true;
    } else if (key == "headers") {
      st = GetHeaders(kWhat, field.value, &resp.headers);
    } else if (key == "body") {
      st = GetBody(kWhat, field.value, &resp.body);
    } else {
      return Bad(kWhat,
                 "unknown key `" + std::string(key) + "` (expected status, headers or body)");
    }
    if (!st.ok()) return st;
  }
  if (!has_status) return Bad(kWhat, "`status` is required");
  return resp;
}

}  // namespace vakt::bytecode
