// Forward-auth translation: what the agent's HTTP decision interfaces for
// reverse proxies (nginx `auth_request`, Traefik ForwardAuth, Caddy
// `forward_auth`) make of an auth request, and how a verdict is answered.
//
// Why a separate, socket-free layer: every byte of an auth request is
// hostile (the proxy passes the client's headers through), and the rules of
// which header may say what are the security of the whole interface. Kept
// as pure functions they are unit tested branch by branch
// (tests/agent_http_test.cc); http_server.cc only moves bytes.
//
// Trust model (docs/agent-http.md):
//  - The original method and URI come from the headers the proxy sets for
//    its dialect, and ONLY those: /v1/forward-auth reads X-Forwarded-Method
//    and X-Forwarded-Uri (Traefik, Caddy), /v1/auth-request reads
//    X-Original-Method and X-Original-URI (nginx `proxy_set_header`). A
//    header of the other dialect is dropped, never used, so a client cannot
//    smuggle an URI past a proxy that does not overwrite it. A repeated
//    forwarding header is refused (400).
//  - Host: X-Forwarded-Host, else Host (exactly one, or 400).
//  - TLS facts (version, cipher, URL-escaped client certificate) are taken
//    from the configured headers ONLY when the peer is a trusted proxy
//    (TrustedProxies). From any other peer they are ignored, the request
//    reaches the policy as plain HTTP (FAPI routes deny), and the caller
//    counts it (ForwardedRequest::ignored_tls_headers).
//  - The other headers pass to the policy, minus hop-by-hop headers, the
//    forwarding and TLS-fact headers and the agent's own X-Vakt-*.
//
// Complexity: O(total header bytes); header count and bytes are bounded
// (ForwardAuthOptions), beyond them the request is refused with 431.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/agent.h"
#include "agent/net_util.h"
#include "bytecode/request_json.h"
#include "bytecode/status.h"

namespace vakt::agent {

// The proxies whose forwarded TLS facts are believed: a set of IPv4/IPv6
// networks ("127.0.0.1/32", "10.0.0.0/8", "::1/128", "192.168.1.7" = /32),
// parsed and matched by net_util.h's CidrSet (shared with ext_authz).
// Immutable after Parse; thread-safe to read.
class TrustedProxies {
 public:
  // kInvalidArgument naming the first malformed entry.
  static Result<TrustedProxies> Parse(const std::vector<std::string>& cidrs);
  // True if `ip` (textual, IPv4, IPv6, or IPv4-mapped IPv6) is inside one
  // of the networks; an IPv6 literal may be bracketed ("[::1]"). A malformed
  // address is never contained.
  bool Contains(std::string_view ip) const;
  bool empty() const { return set_.empty(); }
  size_t size() const { return set_.size(); }

 private:
  CidrSet set_;
};

// Which proxy dialect an auth request speaks.
enum class ForwardDialect : uint8_t {
  kForwardAuth,  // /v1/forward-auth: Traefik ForwardAuth, Caddy forward_auth
  kAuthRequest,  // /v1/auth-request: nginx auth_request
};

struct ForwardAuthOptions {
  // Header names of the TLS facts a trusted proxy sets (any case).
  std::string tls_version_header = "X-Vakt-TLS-Version";
  std::string tls_cipher_header = "X-Vakt-TLS-Cipher";
  std::string client_cert_header = "X-Vakt-Client-Cert";  // URL-escaped PEM
  // Bounds on the auth request's headers (count; names + values bytes).
  size_t max_headers = bytecode::kMaxHeaders;
  size_t max_header_bytes = bytecode::kMaxHeaderBytes;
};

// An auth request as the server received it. Views must outlive the call.
struct AuthRequestIn {
  std::string_view method;  // the auth request's own method
  std::string_view target;  // the auth request's own target (unused for the decision)
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  std::string_view body;
  bool peer_trusted = false;  // peer address in TrustedProxies
};

struct ForwardedRequest {
  bytecode::OwnedRequest request;
  // True if the peer was untrusted and sent at least one TLS-fact header
  // (ignored): the caller counts it.
  bool ignored_tls_headers = false;
};

// A refusal to translate: the status (400, 431) and the error text.
struct ForwardError {
  uint16_t status = 400;
  std::string error = "invalid_request";
  std::string description;
};

// Builds the original request of a forwarded auth request. On failure the
// ForwardError says how to deny it (the caller answers it as a verdict, see
// ErrorVerdict). `time` 0 means "now" for the decision.
struct ForwardResult {
  bool ok = false;
  ForwardedRequest forwarded;
  ForwardError error;
};
ForwardResult TranslateForwarded(const AuthRequestIn& in, ForwardDialect dialect,
                                 const ForwardAuthOptions& options);

// A deny verdict for a translation error (rule "vakt.forward_auth").
Verdict ErrorVerdict(const ForwardError& error);
inline constexpr std::string_view kRuleForwardAuth = "vakt.forward_auth";

// An HTTP answer: status, headers and body (JSON when not empty).
struct HttpAnswer {
  uint16_t status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // "" or JSON
};

// {"error": ..., "error_description": ...} ("error" omitted when empty).
std::string ErrorJson(std::string_view error, std::string_view description);

// Traefik / Caddy: allow -> 200, empty body (with the verdict's headers, e.g.
// a fresh DPoP-Nonce); deny -> the verdict's status,
// its headers (WWW-Authenticate, DPoP-Nonce, ...) and the error JSON.
HttpAnswer ForwardAuthAnswer(const Verdict& verdict);

// nginx auth_request (which understands only 2xx, 401 and 403): allow ->
// 200 (with the verdict's headers); deny 401 -> 401, any other deny -> 403;
// each deny carries the verdict's headers and X-Vakt-Status (the real
// status), X-Vakt-Error and X-Vakt-Error-Description for the /v1/denied
// round trip.
HttpAnswer AuthRequestAnswer(const Verdict& verdict);

// /v1/denied, the target of nginx's `error_page 401 403 = /_vakt_denied`:
// from a trusted proxy, the real status from X-Vakt-Status (only 400-599,
// else 403), the error from X-Vakt-Error and X-Vakt-Error-Description, and
// the headers WWW-Authenticate (not on 401: nginx copies the auth answer's
// own then) and DPoP-Nonce from X-Vakt-WWW-Authenticate and
// X-Vakt-DPoP-Nonce. From any other peer: 403 access_denied, headers
// ignored. Values are sanitised (token characters for the error, printable
// ASCII and bounded lengths for the rest).
HttpAnswer DeniedAnswer(const AuthRequestIn& in);

}  // namespace vakt::agent
