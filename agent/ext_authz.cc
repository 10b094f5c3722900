// Envoy ext_authz adapter (ext_authz.h): CheckRequest -> HttpRequest ->
// Agent::Decide -> CheckResponse. Every input field is attacker-shaped (the
// client wrote the headers, path and body; Envoy only framed them), so
// every size is checked before it is copied and every odd case is a deny.
// Cost per request: one pass over the headers and one copy of each field.
#include "agent/ext_authz.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "bytecode/request.h"

namespace vakt::agent {

using bytecode::EqualsIgnoreCase;
namespace {

constexpr std::string_view kPartialBodyHeader = "x-envoy-auth-partial-body";
constexpr size_t kMaxOptionText = 64;



// RFC 9110 token characters, lower case only (how Envoy sends names).
bool IsLowerToken(std::string_view s) {
  if (s.empty() || s.size() > kMaxOptionText) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

bool IsPrintable(std::string_view s) {
  if (s.size() > kMaxOptionText) return false;
  for (char c : s) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// A TLS fact from a header: "-" (Envoy's formatter for "none") and ""
// mean absent.
std::string_view Fact(std::string_view value) { return value == "-" ? std::string_view() : value; }

void AppendJsonString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xf]);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

void AddHeader(google::protobuf::RepeatedPtrField<envoy_authz::HeaderValueOption>* headers,
               std::string_view key, std::string_view value) {
  envoy_authz::HeaderValueOption* h = headers->Add();
  h->mutable_header()->set_key(std::string(key));
  h->mutable_header()->set_value(std::string(value));
  // Explicitly "set, do not append": every Envoy version reads `append`.
  h->mutable_append()->set_value(false);
}

// Collects the headers of the CheckRequest into `out`, within the limits.
class HeaderCollector {
 public:
  HeaderCollector(const ExtAuthzOptions& options, bytecode::OwnedRequest* out)
      : options_(options), out_(out) {}

  Status Add(std::string_view name, std::string_view value) {
    // Entries we consume (pseudo-headers, TLS facts) count too: the work
    // per request stays bounded whatever the message holds.
    if (++seen_ > 2 * bytecode::kMaxHeaders) {
      return ResourceExhausted("request headers: more than " +
                               std::to_string(2 * bytecode::kMaxHeaders) + " entries");
    }
    if (name.empty()) return InvalidArgument("an empty header name");
    if (name[0] == ':') {
      // Pseudo-headers: :method and :path are in their own fields;
      // :authority is the Host of HTTP/2 (and of HTTP/1 inside Envoy).
      if (name == ":authority") {
        ++authority_count_;
        authority_ = value;
      }
      return Status::Ok();
    }
    if (!options_.tls_version_header.empty() &&
        EqualsIgnoreCase(name, options_.tls_version_header)) {
      ++version_count_;
      version_ = value;
      return Status::Ok();
    }
    if (!options_.tls_cipher_header.empty() && EqualsIgnoreCase(name, options_.tls_cipher_header)) {
      ++cipher_count_;
      cipher_ = value;
      return Status::Ok();
    }
    if (EqualsIgnoreCase(name, "host")) has_host_ = true;
    if (EqualsIgnoreCase(name, kPartialBodyHeader) && EqualsIgnoreCase(value, "true")) {
      partial_body_ = true;
    }
    return Push(name, value);
  }

  Status Push(std::string_view name, std::string_view value) {
    if (out_->headers.size() >= bytecode::kMaxHeaders) {
      return ResourceExhausted("request headers: more than " +
                               std::to_string(bytecode::kMaxHeaders));
    }
    bytes_ += name.size() + value.size();
    if (bytes_ > bytecode::kMaxHeaderBytes) {
      return ResourceExhausted("request headers: more than " +
                               std::to_string(bytecode::kMaxHeaderBytes) + " bytes");
    }
    out_->headers.emplace_back(std::string(name), std::string(value));
    return Status::Ok();
  }

  // Host from :authority, else http.host, when no host header was sent.
  Status Finish(std::string_view http_host) {
    if (has_host_) return Status::Ok();
    if (authority_count_ > 1) return InvalidArgument("repeated :authority");
    if (authority_count_ == 1) return Push("host", authority_);
    if (!http_host.empty()) return Push("host", http_host);
    return Status::Ok();
  }

  // The trusted header's value if sent exactly once, else "".
  std::string_view version() const { return version_count_ == 1 ? Fact(version_) : ""; }
  std::string_view cipher() const { return cipher_count_ == 1 ? Fact(cipher_) : ""; }
  bool partial_body() const { return partial_body_; }

 private:
  const ExtAuthzOptions& options_;
  bytecode::OwnedRequest* out_;
  size_t bytes_ = 0;
  size_t seen_ = 0;
  bool has_host_ = false;
  bool partial_body_ = false;
  int authority_count_ = 0, version_count_ = 0, cipher_count_ = 0;
  std::string_view authority_, version_, cipher_;
};

}  // namespace

bool ExtAuthzConfig::PeerTrusted(std::string_view grpc_peer) const {
  if (trusted_.empty() && !options_.trust_unix_peers) return false;
  auto parsed = ParseGrpcPeer(grpc_peer);
  if (!parsed.ok()) return false;
  switch (parsed->kind) {
    case GrpcPeer::Kind::kUnix:
      return options_.trust_unix_peers;
    case GrpcPeer::Kind::kIp:
      return trusted_.Contains(parsed->ip);
    case GrpcPeer::Kind::kOther:
      return false;
  }
  return false;
}

Result<ExtAuthzConfig> ExtAuthzConfig::Make(ExtAuthzOptions o) {
  if (!o.tls_version_header.empty() && !IsLowerToken(o.tls_version_header)) {
    return InvalidArgument("tls_version_header `" + o.tls_version_header +
                           "` is not a lower-case header name");
  }
  if (!o.tls_cipher_header.empty() && !IsLowerToken(o.tls_cipher_header)) {
    return InvalidArgument("tls_cipher_header `" + o.tls_cipher_header +
                           "` is not a lower-case header name");
  }
  if (!o.route_header.empty() && !IsLowerToken(o.route_header)) {
    return InvalidArgument("route_header `" + o.route_header + "` is not a lower-case header name");
  }
  if (!o.tls_version_header.empty() && o.tls_version_header == o.tls_cipher_header) {
    return InvalidArgument("tls_version_header and tls_cipher_header are the same");
  }
  if (!IsPrintable(o.assumed_tls_version) || !IsPrintable(o.assumed_tls_cipher)) {
    return InvalidArgument("assumed TLS version and cipher: printable, at most " +
                           std::to_string(kMaxOptionText) + " characters");
  }
  if (o.assumed_tls_version.empty() && !o.assumed_tls_cipher.empty()) {
    return InvalidArgument("an assumed TLS cipher needs an assumed TLS version");
  }
  if (o.max_body_bytes > kMaxExtAuthzBodyBytes) {
    return InvalidArgument("max_body_bytes over " + std::to_string(kMaxExtAuthzBodyBytes));
  }
  auto cidrs = ParseCidrs(o.trusted_proxies);
  if (!cidrs.ok()) return InvalidArgument("trusted proxies: " + cidrs.status().message());
  ExtAuthzConfig config;
  config.trusted_ = std::move(cidrs).value();
  config.options_ = std::move(o);
  return config;
}

Result<bytecode::OwnedRequest> RequestFromCheck(const envoy_authz::CheckRequest& check,
                                                std::string_view peer,
                                                const ExtAuthzConfig& config) {
  const ExtAuthzOptions& options = config.options();
  const envoy_authz::AttributeContext& attrs = check.attributes();
  const envoy_authz::AttributeContext::HttpRequest& http = attrs.request().http();
  bytecode::OwnedRequest out;

  if (http.method().empty()) return InvalidArgument("no request method");
  if (http.method().size() > bytecode::kMaxMethodBytes) {
    return InvalidArgument("request method longer than " +
                           std::to_string(bytecode::kMaxMethodBytes) + " bytes");
  }
  out.method = http.method();

  if (http.path().empty()) return InvalidArgument("no request path");
  if (!http.fragment().empty()) return InvalidArgument("a fragment in the request target");
  bool add_query = !http.query().empty() && http.path().find('?') == std::string::npos;
  size_t target_size = http.path().size() + (add_query ? 1 + http.query().size() : 0);
  if (target_size > bytecode::kMaxTargetBytes) {
    return ResourceExhausted("request target: longer than " +
                             std::to_string(bytecode::kMaxTargetBytes) + " bytes");
  }
  out.target = http.path();
  if (add_query) out.target.append("?").append(http.query());

  HeaderCollector headers(options, &out);
  if (http.has_header_map() && http.header_map().headers_size() > 0) {
    for (const envoy_authz::HeaderValue& h : http.header_map().headers()) {
      Status st = headers.Add(h.key(), h.raw_value().empty() ? h.value() : h.raw_value());
      if (!st.ok()) return st;
    }
  } else {
    for (const auto& [name, value] : http.headers()) {
      Status st = headers.Add(name, value);
      if (!st.ok()) return st;
    }
  }
  if (Status st = headers.Finish(http.host()); !st.ok()) return st;

  // TLS facts: a trusted proxy's headers, else the operator's listener
  // setting, else none (fail closed: transport rules deny).
  if (config.PeerTrusted(peer)) {
    out.tls_version = headers.version();
    if (!out.tls_version.empty()) out.tls_cipher = headers.cipher();
  }
  if (out.tls_version.empty() && !options.assumed_tls_version.empty() &&
      (!options.assume_only_for_https || EqualsIgnoreCase(http.scheme(), "https"))) {
    out.tls_version = options.assumed_tls_version;
    out.tls_cipher = options.assumed_tls_cipher;
  }

  if (!attrs.source().certificate().empty()) {
    auto pem = bytecode::UnescapeProxyCertificate(attrs.source().certificate());
    if (!pem.ok()) return InvalidArgument(pem.status().message());  // names the certificate
    out.client_cert = std::move(pem).value();
  }

  if (headers.partial_body() && options.deny_partial_body) {
    return ResourceExhausted("request body: only part of it was sent (raise max_request_bytes)");
  }
  const std::string& body = http.raw_body().empty() ? http.body() : http.raw_body();
  if (body.size() > options.max_body_bytes) {
    return ResourceExhausted("request body: larger than " + std::to_string(options.max_body_bytes) +
                             " bytes");
  }
  out.body = body;
  out.time = 0;  // now, by the agent's clock
  return out;
}

Verdict DenyForError(const Status& error) {
  Verdict v;
  v.allow = false;
  v.error = "invalid_request";
  v.rule = std::string(kRuleExtAuthz);
  v.description = error.message();
  if (error.code() == StatusCode::kResourceExhausted) {
    const std::string& m = error.message();
    v.status = m.starts_with("request target") ? 414 : m.starts_with("request headers") ? 431 : 413;
  } else {
    v.status = 400;
  }
  return v;
}

int GrpcCodeForHttpStatus(uint16_t http_status) {
  return http_status == 401 ? kGrpcUnauthenticated : kGrpcPermissionDenied;
}

void FillCheckResponse(const Verdict& verdict, const ExtAuthzOptions& options,
                       envoy_authz::CheckResponse* out) {
  out->Clear();
  if (verdict.allow) {
    out->mutable_status()->set_code(kGrpcOk);
    envoy_authz::OkHttpResponse* ok = out->mutable_ok_response();
    if (!options.route_header.empty() && !verdict.route.empty()) {
      AddHeader(ok->mutable_headers(), options.route_header, verdict.route);
    }
    // The TLS facts were for us; the upstream does not need them.
    if (!options.tls_version_header.empty()) ok->add_headers_to_remove(options.tls_version_header);
    if (!options.tls_cipher_header.empty()) ok->add_headers_to_remove(options.tls_cipher_header);
    return;
  }
  // A deny must never read as OK, whatever the verdict's status says.
  uint16_t status = verdict.status >= 400 && verdict.status <= 599 ? verdict.status : 403;
  out->mutable_status()->set_code(GrpcCodeForHttpStatus(status));
  out->mutable_status()->set_message(verdict.error.empty() ? std::string("denied") : verdict.error);
  envoy_authz::DeniedHttpResponse* denied = out->mutable_denied_response();
  denied->mutable_status()->set_code(status);
  bool has_content_type = false;
  for (const auto& [name, value] : verdict.headers) {
    if (EqualsIgnoreCase(name, "content-type")) has_content_type = true;
    AddHeader(denied->mutable_headers(), name, value);
  }
  if (!has_content_type) AddHeader(denied->mutable_headers(), "content-type", "application/json");
  AddHeader(denied->mutable_headers(), "cache-control", "no-store");
  std::string body;
  body.reserve(48 + verdict.error.size() + verdict.description.size());
  body.append("{");
  if (!verdict.error.empty()) {  // RFC 6750 3.1: no error code when no credentials were sent
    body.append("\"error\":");
    AppendJsonString(verdict.error, &body);
    body.append(",");
  }
  body.append("\"error_description\":");
  AppendJsonString(verdict.description, &body);
  body.append("}");
  denied->set_body(std::move(body));
}

size_t MaxCheckMessageBytes(const ExtAuthzOptions& options) {
  // Body, headers (twice: map entries carry framing), the target, both
  // peers' certificates, and room for the rest of the attributes.
  return options.max_body_bytes + 2 * bytecode::kMaxHeaderBytes + bytecode::kMaxTargetBytes +
         2 * bytecode::kMaxEscapedCertBytes + 64 * 1024;
}

ExtAuthzService::ExtAuthzService(Agent& agent, ExtAuthzConfig config)
    : agent_(agent), config_(std::move(config)) {}

Verdict ExtAuthzService::CheckOne(const envoy_authz::CheckRequest& request, std::string_view peer,
                                  envoy_authz::CheckResponse* response) {
  Verdict verdict;
  auto req = RequestFromCheck(request, peer, config_);
  if (!req.ok()) {
    verdict = DenyForError(req.status());
    // Our own text only (limits, field names): nothing the client wrote.
    spdlog::debug("ext_authz: refused with {}: {}", verdict.status, verdict.description);
    agent_.metrics().Add("vakt_ext_authz_refused_total",
                         "status=\"" + std::to_string(verdict.status) + "\"");
  } else {
    bytecode::HttpRequest view = req->View();
    verdict = agent_.Decide(view, "ext_authz");
  }
  FillCheckResponse(verdict, config_.options(), response);
  return verdict;
}

grpc::ServerUnaryReactor* ExtAuthzService::Check(grpc::CallbackServerContext* context,
                                                 const envoy_authz::CheckRequest* request,
                                                 envoy_authz::CheckResponse* response) {
  // A decision takes microseconds and never blocks: it runs on the
  // callback thread, with no hand-off.
  CheckOne(*request, context->peer(), response);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

Result<std::unique_ptr<ExtAuthzService>> MakeExtAuthzService(Agent& agent,
                                                             ExtAuthzOptions options) {
  auto config = ExtAuthzConfig::Make(std::move(options));
  if (!config.ok()) return config.status();
  return std::make_unique<ExtAuthzService>(agent, std::move(config).value());
}

}  // namespace vakt::agent
