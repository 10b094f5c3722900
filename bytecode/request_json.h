// The request/response JSON of `vakt eval`, policy tests and the agent's
// POST /v1/check, parsed (simdjson) into owning structs that give the VM
// its HttpRequest/HttpResponse views. Untrusted input: sizes are bounded,
// unknown fields are refused, wrong types are clear errors.
//
// Request:  {"method": "GET", "path": "/v1/x?y=1",
//            "headers": {"name": "v" | ["v1", "v2"]},
//            "body": "text" (a JSON object or array is accepted and re-serialised),
//            "tls": {"version": "TLSv1.3", "cipher": "...", "client_cert": "PEM"},
//            "time": 1700000000}
// Response: {"status": 200, "headers": {...}, "body": "text" | JSON}
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bytecode/request.h"
#include "bytecode/status.h"

namespace vakt::bytecode {

inline constexpr size_t kMaxRequestJsonBytes = 16u << 20;

struct OwnedRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string tls_version;
  std::string tls_cipher;
  std::string client_cert;
  int64_t time = 0;
  bool has_time = false;

  // Views valid while *this is alive and unmodified.
  HttpRequest View() const;

 private:
  mutable std::vector<HeaderField> header_views_;
};

struct OwnedResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  HttpResponse View() const;

 private:
  mutable std::vector<HeaderField> header_views_;
};

Result<OwnedRequest> ParseRequestJson(std::string_view json);
Result<OwnedResponse> ParseResponseJson(std::string_view json);

}  // namespace vakt::bytecode
