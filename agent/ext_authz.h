// Envoy external authorization for the agent: the gRPC service
// envoy.service.auth.v3.Authorization/Check (proto/envoy/service/auth/v3/
// external_auth.proto, wire-compatible with Envoy's), a thin adapter over
// Agent::Decide with interface label "ext_authz".
//
// Why a separate layer: Envoy describes the downstream request in its own
// terms (pseudo-headers, a URL-encoded peer certificate, no TLS version at
// all); this file turns that description into the VM's request model and
// the verdict back into what Envoy sends the client. The conversions are
// pure functions (RequestFromCheck, FillCheckResponse) so they are tested
// without a server.
//
// CheckRequest -> request (RequestFromCheck):
//   method       attributes.request.http.method
//   target       http.path (path and query, as received); a non-empty
//                http.query is appended only when path has no '?'; a
//                non-empty fragment is a 400
//   headers      http.header_map (encode_raw_headers: raw_value, else value)
//                if present, else http.headers. Pseudo-headers are dropped,
//                except :authority, which becomes `host` when there is no
//                host header (http.host when neither is sent).
//   body         http.raw_body if non-empty, else http.body
//   certificate  attributes.source.certificate (URL-encoded PEM, Envoy's
//                include_peer_certificate) via UnescapeProxyCertificate
//   TLS facts    Envoy sends no TLS version. From the headers named by
//                tls_version_header / tls_cipher_header only when the gRPC
//                peer is trusted (trusted_proxies, or a Unix socket with
//                trust_unix_peers); these headers are never passed to the
//                policy. Otherwise, for scheme "https" (or every request
//                when assume_only_for_https is false), the operator's
//                assumed_tls_version / assumed_tls_cipher. Otherwise none,
//                and fapi2/transport rules deny.
// Limits (a deny, never a crash): method over kMaxMethodBytes 400, target
// over kMaxTargetBytes 414, more than kMaxHeaders headers or kMaxHeaderBytes
// of names and values (or 2 * kMaxHeaders entries, pseudo-headers
// included) 431, body over max_body_bytes 413, a partial body
// (x-envoy-auth-partial-body: true) 413 when deny_partial_body. The whole
// message is bounded by the server's receive limit (MaxCheckMessageBytes).
//
// Verdict -> CheckResponse (FillCheckResponse):
//   allow  status.code 0, ok_response (optional route header to upstream;
//          the TLS-fact headers are removed before the upstream sees them)
//   deny   status.code 16 UNAUTHENTICATED for 401, else 7 PERMISSION_DENIED;
//          denied_response {status: the HTTP status, headers: the verdict's
//          (WWW-Authenticate, DPoP-Nonce, ...) + content-type, body:
//          {"error": ..., "error_description": ...}}
//
// Thread-safety: ExtAuthzService is safe for gRPC's concurrent callbacks
// (the options are immutable, the Agent is thread-safe).
// Tested by tests/agent_ext_authz_test.cc; load: bench/extauthz_load.cc.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/agent.h"
#include "agent/net_util.h"
#include "bytecode/request_json.h"
#include "envoy/service/auth/v3/external_auth.grpc.pb.h"

namespace vakt::agent {

namespace envoy_authz = ::envoy::service::auth::v3;

// Rule id of the denies this adapter gives itself (malformed CheckRequest).
inline constexpr std::string_view kRuleExtAuthz = "vakt.ext_authz";
// Upper bound of ExtAuthzOptions::max_body_bytes.
inline constexpr size_t kMaxExtAuthzBodyBytes = 16u << 20;

// gRPC status codes used in CheckResponse.status.
inline constexpr int kGrpcOk = 0;
inline constexpr int kGrpcPermissionDenied = 7;
inline constexpr int kGrpcUnauthenticated = 16;

struct ExtAuthzOptions {
  // CIDRs of the peers (the Envoy instances) whose TLS-fact headers are
  // believed ("10.0.0.0/8", "::1", ...; net_util.h ParseCidrs).
  std::vector<std::string> trusted_proxies;
  bool trust_unix_peers = false;  // a Unix-socket peer counts as trusted
  // Request headers carrying the downstream TLS version and cipher (Envoy:
  // %DOWNSTREAM_TLS_VERSION% / %DOWNSTREAM_TLS_CIPHER%, see
  // docs/agent-envoy.md). Lower-case; "" disables.
  std::string tls_version_header = "x-vakt-tls-version";
  std::string tls_cipher_header = "x-vakt-tls-cipher";
  // The operator's statement "Envoy's TLS listener only speaks version X"
  // (e.g. "TLSv1.3"), used when no trusted header says otherwise.
  std::string assumed_tls_version;
  std::string assumed_tls_cipher;  // optional; needs assumed_tls_version
  // Assume it only for requests with scheme "https" (false: for all).
  bool assume_only_for_https = true;
  size_t max_body_bytes = 1u << 20;
  bool deny_partial_body = true;
  // Non-empty: on allow, this request header (e.g. "x-vakt-route") is set
  // to the route name for the upstream.
  std::string route_header;
};

// Options checked and prepared (CIDRs parsed). Immutable.
class ExtAuthzConfig {
 public:
  // kInvalidArgument: a bad CIDR, header name or size.
  static Result<ExtAuthzConfig> Make(ExtAuthzOptions options);
  const ExtAuthzOptions& options() const { return options_; }
  const CidrSet& trusted_proxies() const { return trusted_; }
  // Whether a gRPC peer (ServerContext::peer()) is a trusted proxy.
  bool PeerTrusted(std::string_view grpc_peer) const;

 private:
  ExtAuthzOptions options_;
  CidrSet trusted_;
};

// The request Envoy describes, or the deny for why it cannot be one: an
// error's code says which (kInvalidArgument 400, kResourceExhausted with
// the status in DenyForError). `peer` is grpc::ServerContext::peer().
Result<bytecode::OwnedRequest> RequestFromCheck(const envoy_authz::CheckRequest& check,
                                                std::string_view peer,
                                                const ExtAuthzConfig& config);

// The deny verdict for a RequestFromCheck error (rule kRuleExtAuthz,
// error invalid_request): kResourceExhausted is 414 for a message starting
// "request target", 431 for "request headers", else 413; anything else 400.
Verdict DenyForError(const Status& error);

// The gRPC code for an HTTP deny status (401 -> 16, else 7).
int GrpcCodeForHttpStatus(uint16_t http_status);

// Writes `verdict` into `out` (cleared first).
void FillCheckResponse(const Verdict& verdict, const ExtAuthzOptions& options,
                       envoy_authz::CheckResponse* out);

// The largest Check message worth receiving: body plus headers plus slack.
// The daemon passes it to ServerBuilder::SetMaxReceiveMessageSize.
size_t MaxCheckMessageBytes(const ExtAuthzOptions& options);

// The service the daemon registers on its grpc::ServerBuilder. Holds a
// reference to `agent`, which must outlive it.
class ExtAuthzService final : public envoy_authz::Authorization::CallbackService {
 public:
  ExtAuthzService(Agent& agent, ExtAuthzConfig config);

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const envoy_authz::CheckRequest* request,
                                  envoy_authz::CheckResponse* response) override;

  // What Check does, without gRPC (benchmarks, tests). Returns the verdict.
  Verdict CheckOne(const envoy_authz::CheckRequest& request, std::string_view peer,
                   envoy_authz::CheckResponse* response);

  const ExtAuthzConfig& config() const { return config_; }

 private:
  Agent& agent_;
  const ExtAuthzConfig config_;
};

// The service (options prepared by ExtAuthzConfig::Make).
Result<std::unique_ptr<ExtAuthzService>> MakeExtAuthzService(Agent& agent, ExtAuthzOptions options);

}  // namespace vakt::agent
