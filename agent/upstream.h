// The enforcing proxy's HTTP/1.1 client to the protected service.
//
// Why a small client of our own: the proxy must decide the upstream's
// response before any byte of it reaches the caller, so it reads the whole
// response (bounded) and never streams; and a slow or dead upstream must
// never hold a proxy thread forever. Every step has a deadline (connect,
// send, and the whole response), the response is parsed by Beast's parser
// with header and body limits, and one connection is used per request
// (Connection: close), so no pooled state can go stale or leak between
// callers.
//
// Only plain http:// to an address literal or name resolved once at start:
// the upstream runs beside the agent (loopback or the pod network).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bytecode/status.h"

namespace vakt::agent {

struct UpstreamOptions {
  std::string url;  // "http://host:port" (no path: targets are passed through)
  int connect_timeout_ms = 2000;
  int response_timeout_ms = 30000;   // from the first byte sent to the last received
  size_t max_response_header_bytes = 64 << 10;
  size_t max_response_body_bytes = 8 << 20;
};

struct UpstreamResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // hop-by-hop removed
  std::string body;
};

class UpstreamClient {
 public:
  // kInvalidArgument for a URL that is not http://host:port; kIoError if the
  // host does not resolve.
  static Result<UpstreamClient> Make(UpstreamOptions options);

  // Sends one request and reads the whole response. Errors: kIoError
  // (connect, send, receive, timeout), kCorruption (malformed response),
  // kResourceExhausted (response over a limit). Thread-safe (no shared
  // mutable state).
  Result<UpstreamResponse> RoundTrip(
      std::string_view method, std::string_view target,
      const std::vector<std::pair<std::string, std::string>>& headers,
      std::string_view body) const;

  const std::string& host_header() const { return host_header_; }

 private:
  UpstreamOptions options_;
  std::string host_header_;
  std::vector<uint8_t> addr_;  // sockaddr storage bytes
  uint32_t addr_len_ = 0;
};

// True for the hop-by-hop headers a proxy never forwards (RFC 9110 7.6.1).
bool IsHopByHop(std::string_view name);

}  // namespace vakt::agent
