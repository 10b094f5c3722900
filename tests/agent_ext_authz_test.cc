// Tests of the Envoy ext_authz interface (agent/ext_authz.{h,cc}) and the
// network helpers (agent/net_util.{h,cc}).
//
// The healthcare example policy is compiled in memory with a fresh issuer
// key (its JWKS handed to the compiler in place of keys/issuer.jwks.json),
// loaded into a real Agent with a pinned clock, and served by the real
// gRPC service on 127.0.0.1 port 0; a client stub generated from our proto
// sends CheckRequests shaped like Envoy's, with real tokens, DPoP proofs
// and client certificates (compiler/token_tool.h). The pure conversions
// (RequestFromCheck, FillCheckResponse, DenyForError) are tested directly,
// and the field numbers against bytes encoded by hand from Envoy's protos.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "agent/agent.h"
#include "agent/ext_authz.h"
#include "agent/net_util.h"
#include "compiler/compile.h"
#include "compiler/token_tool.h"

namespace vakt::agent {
namespace {

using compiler::SigningKey;
using envoy_authz::CheckRequest;
using envoy_authz::CheckResponse;

constexpr int64_t kNow = 1'700'000'000;
constexpr char kHost[] = "api.example.no";
constexpr char kIssuer[] = "https://issuer.example.no";
constexpr char kAudience[] = "https://api.example.no";

int64_t FixedClock() { return kNow; }

// ---- the compiled healthcare bundle and keys (built once) ----

struct Fixture {
  SigningKey issuer = Key(bytecode::JwsAlg::kES256, "healthcare-es256");
  SigningKey dpop = Key(bytecode::JwsAlg::kES256, "");
  compiler::TestCertificate cert = Cert("client-1");
  std::string bundle;

  static SigningKey Key(bytecode::JwsAlg alg, const char* kid) {
    auto k = compiler::GenerateKey(alg, kid);
    if (!k.ok()) {
      ADD_FAILURE() << k.status().ToString();
      abort();
    }
    return std::move(k).value();
  }
  static compiler::TestCertificate Cert(const char* cn) {
    auto c = compiler::MakeTestCertificate(cn);
    if (!c.ok()) {
      ADD_FAILURE() << c.status().ToString();
      abort();
    }
    return std::move(c).value();
  }
};

const Fixture& F() {
  static const Fixture* f = [] {
    auto* fx = new Fixture;
    std::string jwks = "{\"keys\":[" + fx->issuer.PublicJwk() + "]}";
    compiler::SourceSet sources;
    dsl::Diagnostics diags;
    compiler::LoadSources({std::string(VAKT_SOURCE_DIR) + "/examples/healthcare/policy"}, sources,
                          diags);
    compiler::CompileOptions opts;
    opts.read_asset = [jwks](const dsl::SourceFile& from,
                             const std::string& path) -> Result<std::string> {
      if (path.ends_with("issuer.jwks.json")) return jwks;
      return compiler::ReadAssetFromDisk(from, path);
    };
    auto comp = compiler::Compile(sources, opts, diags);
    if (diags.HasErrors() || comp->bytes.empty()) {
      ADD_FAILURE() << diags.Format();
      abort();
    }
    fx->bundle = comp->bytes;
    return fx;
  }();
  return *f;
}

std::unique_ptr<Agent> MakeAgent(bool load = true) {
  AgentOptions o;
  o.clock = &FixedClock;
  o.replay_cache_entries = 4096;
  o.token_cache_entries = 256;
  auto agent = std::make_unique<Agent>(std::move(o));
  if (load) {
    Status st = agent->LoadUnsigned(F().bundle);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  return agent;
}

std::string Claims(const std::string& sub, const std::string& role, const std::string& scope,
                   const std::string& extra) {
  return std::string("{\"iss\":\"") + kIssuer + "\",\"aud\":\"" + kAudience + "\",\"sub\":\"" +
         sub + "\",\"client_id\":\"app-1\",\"scope\":\"" + scope + "\",\"role\":\"" + role + "\"" +
         extra + "}";
}
std::string AnnaClaims() {
  return Claims("anna", "patient", "patient.read records.read", ",\"patient_id\":\"p-anna\"");
}
std::string BobClaims() {
  return Claims("bob", "clinician", "patient.read records.read records.write",
                ",\"care_team\":[\"p-anna\",\"p-kari\"]");
}

enum class Bind { kDpop, kCert };

std::string Token(const std::string& claims, Bind bind = Bind::kDpop) {
  compiler::TokenOptions o;
  o.now = kNow;
  if (bind == Bind::kDpop) o.cnf_jkt = F().dpop.Thumbprint();
  if (bind == Bind::kCert) o.cnf_x5t = F().cert.x5t_s256;
  auto t = compiler::MintAccessToken(F().issuer, claims, o);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? *t : std::string();
}

std::string Proof(const std::string& method, const std::string& path, const std::string& token) {
  compiler::ProofOptions o;
  o.method = method;
  o.url = std::string("https://") + kHost + path;
  o.access_token = token;
  o.now = kNow;
  auto p = compiler::MintDpopProof(F().dpop, o);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  return p.ok() ? *p : std::string();
}

// Percent-encodes like Envoy's include_peer_certificate (unreserved kept).
std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// A CheckRequest as Envoy builds it: pseudo-headers in the map, the Host
// as :authority, scheme https.
CheckRequest Check(const std::string& method, const std::string& path) {
  CheckRequest r;
  auto* http = r.mutable_attributes()->mutable_request()->mutable_http();
  http->set_id("req-1");
  http->set_method(method);
  http->set_path(path);
  http->set_host(kHost);
  http->set_scheme("https");
  http->set_protocol("HTTP/2");
  (*http->mutable_headers())[":authority"] = kHost;
  (*http->mutable_headers())[":method"] = method;
  (*http->mutable_headers())[":path"] = path;
  (*http->mutable_headers())[":scheme"] = "https";
  return r;
}

void SetHeader(CheckRequest* r, const std::string& name, const std::string& value) {
  (*r->mutable_attributes()->mutable_request()->mutable_http()->mutable_headers())[name] = value;
}

// A DPoP-authenticated request for `path`.
CheckRequest DpopCheck(const std::string& method, const std::string& path,
                       const std::string& claims) {
  CheckRequest r = Check(method, path);
  std::string token = Token(claims);
  SetHeader(&r, "authorization", "DPoP " + token);
  SetHeader(&r, "dpop", Proof(method, path.substr(0, path.find('?')), token));
  return r;
}

// The denied response's header `name` ("" if absent).
std::string DeniedHeader(const CheckResponse& resp, const std::string& name) {
  for (const auto& h : resp.denied_response().headers()) {
    std::string key = h.header().key();
    for (char& c : key) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    if (key == name) return h.header().value();
  }
  return "";
}

// Records every decision's interface label.
class Sink : public DecisionSink {
 public:
  void Record(std::string_view interface, const bytecode::HttpRequest&,
              const bytecode::HttpResponse*, const Verdict&, uint64_t) override {
    std::lock_guard<std::mutex> lock(mu_);
    interfaces_.emplace_back(interface);
  }
  std::vector<std::string> interfaces() {
    std::lock_guard<std::mutex> lock(mu_);
    return interfaces_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> interfaces_;
};

// ---- an in-process gRPC server on loopback ----

class Server {
 public:
  Server(Agent& agent, ExtAuthzOptions options) {
    auto svc = MakeExtAuthzService(agent, std::move(options));
    EXPECT_TRUE(svc.ok()) << svc.status().ToString();
    service_ = std::move(svc).value();
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(service_.get());
    b.SetMaxReceiveMessageSize(
        static_cast<int>(MaxCheckMessageBytes(service_->config().options())));
    server_ = b.BuildAndStart();
    EXPECT_TRUE(server_ != nullptr);
    EXPECT_GT(port_, 0);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(port_),
                                   grpc::InsecureChannelCredentials());
    stub_ = envoy_authz::Authorization::NewStub(channel_);
  }
  ~Server() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

  CheckResponse Call(const CheckRequest& req, grpc::Status* status_out = nullptr) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    CheckResponse resp;
    grpc::Status st = stub_->Check(&ctx, req, &resp);
    if (status_out) {
      *status_out = st;
    } else {
      EXPECT_TRUE(st.ok()) << st.error_message();
    }
    return resp;
  }

  // Sends raw bytes as the request message.
  grpc::Status CallRaw(const std::string& bytes) {
    grpc::GenericStub generic(channel_);
    grpc::Slice slice(bytes);
    grpc::ByteBuffer send(&slice, 1), recv;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    std::promise<grpc::Status> done;
    generic.UnaryCall(&ctx, "/envoy.service.auth.v3.Authorization/Check", grpc::StubOptions(),
                      &send, &recv, [&done](grpc::Status st) { done.set_value(st); });
    return done.get_future().get();
  }

  ExtAuthzService& service() { return *service_; }

 private:
  std::unique_ptr<ExtAuthzService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<envoy_authz::Authorization::Stub> stub_;
  int port_ = 0;
};

// Options of a listener that only speaks TLS 1.3.
ExtAuthzOptions Tls13Listener() {
  ExtAuthzOptions o;
  o.assumed_tls_version = "TLSv1.3";
  o.assumed_tls_cipher = "TLS_AES_128_GCM_SHA256";
  o.route_header = "x-vakt-route";
  return o;
}

// ---- end to end over gRPC ----

TEST(ExtAuthzGrpc, AllowsAPatientReadingHerOwnRecord) {
  auto agent = MakeAgent();
  Sink sink;
  agent->set_decision_sink(&sink);
  Server server(*agent, Tls13Listener());
  CheckResponse resp = server.Call(DpopCheck("GET", "/v1/patients/p-anna", AnnaClaims()));
  EXPECT_EQ(resp.status().code(), kGrpcOk) << resp.DebugString();
  ASSERT_TRUE(resp.has_ok_response()) << resp.DebugString();
  ASSERT_EQ(resp.ok_response().headers_size(), 1);
  EXPECT_EQ(resp.ok_response().headers(0).header().key(), "x-vakt-route");
  EXPECT_EQ(resp.ok_response().headers(0).header().value(), "records.get_patient");
  EXPECT_FALSE(resp.ok_response().headers(0).append().value());
  // The TLS-fact headers are stripped before the upstream sees them.
  ASSERT_EQ(resp.ok_response().headers_to_remove_size(), 2);
  EXPECT_EQ(resp.ok_response().headers_to_remove(0), "x-vakt-tls-version");
  EXPECT_EQ(resp.ok_response().headers_to_remove(1), "x-vakt-tls-cipher");
  agent->set_decision_sink(nullptr);
  EXPECT_EQ(sink.interfaces(), std::vector<std::string>{"ext_authz"});
}

TEST(ExtAuthzGrpc, MissingTokenIs401WithTheChallenge) {
  auto agent = MakeAgent();
  Server server(*agent, Tls13Listener());
  CheckResponse resp = server.Call(Check("GET", "/v1/patients/p-anna"));
  EXPECT_EQ(resp.status().code(), kGrpcUnauthenticated) << resp.DebugString();
  ASSERT_TRUE(resp.has_denied_response());
  EXPECT_EQ(resp.denied_response().status().code(), 401);
  // fapi2 accepts DPoP and mTLS-bound Bearer: both challenges, DPoP first.
  std::vector<std::string> challenges;
  for (const auto& h : resp.denied_response().headers()) {
    if (h.header().key() == "WWW-Authenticate") challenges.push_back(h.header().value());
  }
  ASSERT_EQ(challenges.size(), 2u) << resp.DebugString();
  EXPECT_EQ(challenges[0], "DPoP algs=\"ES256 PS256 EdDSA\"");
  EXPECT_TRUE(challenges[1].starts_with("Bearer")) << challenges[1];
  EXPECT_EQ(DeniedHeader(resp, "content-type"), "application/json");
  EXPECT_EQ(DeniedHeader(resp, "cache-control"), "no-store");
  const std::string& body = resp.denied_response().body();
  // No credentials: no error code (RFC 6750 3.1).
  EXPECT_EQ(resp.status().message(), "denied");
  EXPECT_EQ(body, "{\"error_description\":\"no access token\"}");
  for (const auto& h : resp.denied_response().headers()) {
    EXPECT_TRUE(h.has_append());
    EXPECT_FALSE(h.append().value());
  }
}

TEST(ExtAuthzGrpc, AnotherPatientsRecordIs403) {
  auto agent = MakeAgent();
  Server server(*agent, Tls13Listener());
  CheckResponse resp = server.Call(DpopCheck("GET", "/v1/patients/p-kari", AnnaClaims()));
  EXPECT_EQ(resp.status().code(), kGrpcPermissionDenied) << resp.DebugString();
  EXPECT_EQ(resp.status().message(), "access_denied");
  EXPECT_EQ(resp.denied_response().status().code(), 403);
  EXPECT_EQ(resp.denied_response().body(),
            "{\"error\":\"access_denied\",\"error_description\":"
            "\"only the patient or her care team may read this\"}");
}

TEST(ExtAuthzGrpc, UnknownRouteIs404) {
  auto agent = MakeAgent();
  Server server(*agent, Tls13Listener());
  CheckResponse resp = server.Call(DpopCheck("GET", "/v1/nothing/here", AnnaClaims()));
  EXPECT_EQ(resp.status().code(), kGrpcPermissionDenied);
  EXPECT_EQ(resp.denied_response().status().code(), 404) << resp.DebugString();
  EXPECT_NE(resp.denied_response().body().find("\"not_found\""), std::string::npos);
}

TEST(ExtAuthzGrpc, ReplayedDpopProofIsRefused) {
  auto agent = MakeAgent();
  Server server(*agent, Tls13Listener());
  CheckRequest req = DpopCheck("GET", "/v1/patients/p-anna", AnnaClaims());
  EXPECT_EQ(server.Call(req).status().code(), kGrpcOk);
  CheckResponse again = server.Call(req);
  EXPECT_EQ(again.status().code(), kGrpcUnauthenticated) << again.DebugString();
  EXPECT_EQ(again.denied_response().status().code(), 401);
}

TEST(ExtAuthzGrpc, BodyIsForwardedAndChecked) {
  auto agent = MakeAgent();
  Server server(*agent, Tls13Listener());
  const std::string path = "/v1/patients/p-anna/records";
  // A valid NewRecord, sent as Envoy's `body` (string).
  CheckRequest good = DpopCheck("POST", path, BobClaims());
  SetHeader(&good, "content-type", "application/json");
  good.mutable_attributes()->mutable_request()->mutable_http()->set_body(
      R"({"type":"note","text":"Fever, 38.5 C","code":"R50.9"})");
  EXPECT_EQ(server.Call(good).status().code(), kGrpcOk);

  // Mass assignment: a property NewRecord does not name, as raw_body.
  CheckRequest bad = DpopCheck("POST", path, BobClaims());
  SetHeader(&bad, "content-type", "application/json");
  bad.mutable_attributes()->mutable_request()->mutable_http()->set_raw_body(
      R"({"type":"note","text":"x","author":"mallory"})");
  CheckResponse resp = server.Call(bad);
  EXPECT_EQ(resp.status().code(), kGrpcPermissionDenied);
  EXPECT_EQ(resp.denied_response().status().code(), 400) << resp.DebugString();

  // raw_body wins over body: a good `body` does not hide a bad raw_body.
  CheckRequest both = DpopCheck("POST", path, BobClaims());
  SetHeader(&both, "content-type", "application/json");
  auto* http = both.mutable_attributes()->mutable_request()->mutable_http();
  http->set_body(R"({"type":"note","text":"fine"})");
  http->set_raw_body(R"({"type":"bogus","text":"x"})");
  EXPECT_EQ(server.Call(both).denied_response().status().code(), 400);

  // No body at all on a route that requires one.
  CheckRequest none = DpopCheck("POST", path, BobClaims());
  SetHeader(&none, "content-type", "application/json");
  CheckResponse none_resp = server.Call(none);
  EXPECT_EQ(none_resp.status().code(), kGrpcPermissionDenied);
  EXPECT_GE(none_resp.denied_response().status().code(), 400);
}

TEST(ExtAuthzGrpc, CertificateBoundTokenWithThePeerCertificate) {
  auto agent = MakeAgent();
  Server server(*agent, Tls13Listener());
  auto make = [](const std::string& escaped_cert) {
    CheckRequest r = Check("GET", "/v1/patients/p-anna");
    SetHeader(&r, "authorization", "Bearer " + Token(AnnaClaims(), Bind::kCert));
    if (!escaped_cert.empty())
      r.mutable_attributes()->mutable_source()->set_certificate(escaped_cert);
    return r;
  };
  // The certificate the token is bound to, URL-encoded as Envoy sends it.
  CheckResponse ok = server.Call(make(UrlEncode(F().cert.cert_pem)));
  EXPECT_EQ(ok.status().code(), kGrpcOk) << ok.DebugString();

  // No certificate: the binding cannot be checked.
  CheckResponse none = server.Call(make(""));
  EXPECT_NE(none.status().code(), kGrpcOk);
  EXPECT_EQ(none.denied_response().status().code(), 401) << none.DebugString();

  // Another certificate.
  auto other = compiler::MakeTestCertificate("client-2");
  ASSERT_TRUE(other.ok());
  CheckResponse wrong = server.Call(make(UrlEncode(other->cert_pem)));
  EXPECT_NE(wrong.status().code(), kGrpcOk);
  EXPECT_EQ(wrong.denied_response().status().code(), 401) << wrong.DebugString();

  // Decodes, but is not a certificate: the thumbprint fails, a deny.
  CheckResponse junk = server.Call(
      make(UrlEncode("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")));
  EXPECT_NE(junk.status().code(), kGrpcOk);
  EXPECT_GE(junk.denied_response().status().code(), 400) << junk.DebugString();

  // A bad URL escape is refused by the adapter itself.
  CheckResponse bad_escape = server.Call(make("%ZZnot-a-cert"));
  EXPECT_EQ(bad_escape.denied_response().status().code(), 400);
  EXPECT_NE(bad_escape.denied_response().body().find("client certificate"), std::string::npos);
}

TEST(ExtAuthzGrpc, TlsFactsFromATrustedProxyOnly) {
  auto agent = MakeAgent();
  auto with_tls = [](const std::string& version, const std::string& cipher) {
    CheckRequest r = DpopCheck("GET", "/v1/patients/p-anna", AnnaClaims());
    if (!version.empty()) SetHeader(&r, "x-vakt-tls-version", version);
    if (!cipher.empty()) SetHeader(&r, "x-vakt-tls-cipher", cipher);
    return r;
  };
  {
    // Loopback trusted: its headers are the TLS facts.
    ExtAuthzOptions o;
    o.trusted_proxies = {"127.0.0.0/8", "::1"};
    Server server(*agent, o);
    EXPECT_EQ(server.Call(with_tls("TLSv1.3", "TLS_AES_128_GCM_SHA256")).status().code(), kGrpcOk);
    EXPECT_EQ(server.Call(with_tls("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")).status().code(),
              kGrpcOk);
    CheckResponse old = server.Call(with_tls("TLSv1.1", "ECDHE-RSA-AES128-SHA"));
    EXPECT_EQ(old.denied_response().status().code(), 403);
    EXPECT_NE(old.denied_response().body().find("insecure_transport"), std::string::npos);
    CheckResponse weak = server.Call(with_tls("TLSv1.2", "AES128-SHA"));
    EXPECT_EQ(weak.denied_response().status().code(), 403);
    // No header, no assumed version: no TLS known, fail closed.
    EXPECT_EQ(server.Call(with_tls("", "")).denied_response().status().code(), 403);
    // Envoy's formatter prints "-" when there is no TLS.
    EXPECT_EQ(server.Call(with_tls("-", "-")).denied_response().status().code(), 403);
  }
  {
    // Only 10/8 trusted: the same headers from loopback are ignored.
    ExtAuthzOptions o;
    o.trusted_proxies = {"10.0.0.0/8"};
    Server server(*agent, o);
    CheckResponse resp = server.Call(with_tls("TLSv1.3", "TLS_AES_128_GCM_SHA256"));
    EXPECT_EQ(resp.denied_response().status().code(), 403) << resp.DebugString();
    EXPECT_NE(resp.denied_response().body().find("insecure_transport"), std::string::npos);
  }
  {
    // Untrusted peer, but the listener is TLS 1.3 only: the assumption
    // holds for https and the spoofed header cannot lower or change it.
    Server server(*agent, Tls13Listener());
    EXPECT_EQ(server.Call(with_tls("TLSv1.1", "")).status().code(), kGrpcOk);
    CheckRequest plain = with_tls("", "");
    plain.mutable_attributes()->mutable_request()->mutable_http()->set_scheme("http");
    EXPECT_EQ(server.Call(plain).denied_response().status().code(), 403);
  }
}

TEST(ExtAuthzGrpc, OversizedInputIsADeny) {
  auto agent = MakeAgent();
  ExtAuthzOptions o = Tls13Listener();
  o.max_body_bytes = 1024;
  Server server(*agent, o);

  CheckRequest big_body = DpopCheck("POST", "/v1/patients/p-anna/records", BobClaims());
  big_body.mutable_attributes()->mutable_request()->mutable_http()->set_body(
      std::string(2048, 'x'));
  CheckResponse r1 = server.Call(big_body);
  EXPECT_EQ(r1.status().code(), kGrpcPermissionDenied);
  EXPECT_EQ(r1.denied_response().status().code(), 413);

  CheckRequest many = Check("GET", "/v1/patients/p-anna");
  for (int i = 0; i < 300; ++i) SetHeader(&many, "x-h-" + std::to_string(i), "v");
  EXPECT_EQ(server.Call(many).denied_response().status().code(), 431);

  CheckRequest fat = Check("GET", "/v1/patients/p-anna");
  SetHeader(&fat, "x-fat", std::string(70 * 1024, 'a'));
  EXPECT_EQ(server.Call(fat).denied_response().status().code(), 431);

  CheckRequest long_path = Check("GET", "/v1/" + std::string(9000, 'a'));
  EXPECT_EQ(server.Call(long_path).denied_response().status().code(), 414);

  CheckRequest long_method = Check(std::string(40, 'G'), "/v1/health");
  EXPECT_EQ(server.Call(long_method).denied_response().status().code(), 400);

  CheckRequest partial = DpopCheck("POST", "/v1/patients/p-anna/records", BobClaims());
  SetHeader(&partial, "x-envoy-auth-partial-body", "true");
  partial.mutable_attributes()->mutable_request()->mutable_http()->set_body("{\"type\":");
  EXPECT_EQ(server.Call(partial).denied_response().status().code(), 413);

  // A message over the receive limit is refused by gRPC (Envoy then denies:
  // failure_mode_allow is false); the server keeps serving.
  CheckRequest huge = Check("GET", "/v1/health");
  huge.mutable_attributes()->mutable_request()->mutable_http()->set_raw_body(
      std::string(MaxCheckMessageBytes(o) + 1024, 'x'));
  grpc::Status st;
  server.Call(huge, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_EQ(server.Call(DpopCheck("GET", "/v1/patients/p-anna", AnnaClaims())).status().code(),
            kGrpcOk);
  EXPECT_GE(agent->metrics().Value("vakt_ext_authz_refused_total", "status=\"431\""), 2);
}

TEST(ExtAuthzGrpc, GarbageAndEmptyRequestsAreDenied) {
  auto agent = MakeAgent();
  Server server(*agent, Tls13Listener());
  // Empty message: no method, no path.
  CheckResponse empty = server.Call(CheckRequest());
  EXPECT_EQ(empty.status().code(), kGrpcPermissionDenied);
  EXPECT_EQ(empty.denied_response().status().code(), 400);

  // Bytes that are not a CheckRequest: gRPC refuses to parse them.
  for (const std::string& junk :
       {std::string("\xff\xff\xff\xff\xff", 5), std::string("\x0a\x7f", 2),
        std::string("\x0a\x05\x22\x03\x12\x01", 6)}) {
    grpc::Status st = server.CallRaw(junk);
    EXPECT_FALSE(st.ok());
  }
  // Unknown fields are skipped, the rest still decides.
  CheckRequest extra = DpopCheck("GET", "/v1/patients/p-anna", AnnaClaims());
  std::string bytes = extra.SerializeAsString();
  bytes.append(
      "\xa2\x06\x03"
      "abc",
      6);  // field 100, length-delimited
  CheckRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(server.Call(parsed).status().code(), kGrpcOk);

  // A fragment, odd methods and targets.
  CheckRequest frag = Check("GET", "/v1/health");
  frag.mutable_attributes()->mutable_request()->mutable_http()->set_fragment("x");
  EXPECT_EQ(server.Call(frag).denied_response().status().code(), 400);
  EXPECT_EQ(server.Call(Check("GET", "*")).denied_response().status().code(), 400);
  EXPECT_EQ(server.Call(Check("GET", "/v1/../etc/passwd")).denied_response().status().code(), 400);
  EXPECT_EQ(
      server.Call(Check("GET", std::string("/v1/\xff\xfe", 6))).denied_response().status().code(),
      400);
  // Still serving.
  EXPECT_EQ(server.Call(DpopCheck("GET", "/v1/patients/p-anna", AnnaClaims())).status().code(),
            kGrpcOk);
}

TEST(ExtAuthzGrpc, NoBundleIs503) {
  auto agent = MakeAgent(/*load=*/false);
  Server server(*agent, Tls13Listener());
  CheckResponse resp = server.Call(DpopCheck("GET", "/v1/patients/p-anna", AnnaClaims()));
  EXPECT_EQ(resp.status().code(), kGrpcPermissionDenied);
  EXPECT_EQ(resp.denied_response().status().code(), 503) << resp.DebugString();
  EXPECT_NE(resp.denied_response().body().find("\"no_policy\""), std::string::npos);
}

TEST(ExtAuthzGrpc, HealthNeedsNoTokenButTls) {
  auto agent = MakeAgent();
  Server server(*agent, Tls13Listener());
  EXPECT_EQ(server.Call(Check("GET", "/v1/health")).status().code(), kGrpcOk);
  CheckRequest plain = Check("GET", "/v1/health");
  plain.mutable_attributes()->mutable_request()->mutable_http()->set_scheme("http");
  EXPECT_EQ(server.Call(plain).denied_response().status().code(), 403);
}

// ---- RequestFromCheck ----

ExtAuthzConfig Config(ExtAuthzOptions o) {
  auto c = ExtAuthzConfig::Make(std::move(o));
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return std::move(c).value();
}

TEST(ExtAuthzRequest, MapsEnvoyFieldsToTheRequestModel) {
  CheckRequest r = Check("PUT", "/v1/x?a=1");
  SetHeader(&r, "authorization", "DPoP t");
  auto* http = r.mutable_attributes()->mutable_request()->mutable_http();
  http->set_query("ignored=1");  // path already has a query
  http->set_body("text");
  auto req = RequestFromCheck(r, "ipv4:127.0.0.1:5", Config({}));
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  EXPECT_EQ(req->method, "PUT");
  EXPECT_EQ(req->target, "/v1/x?a=1");
  EXPECT_EQ(req->body, "text");
  EXPECT_EQ(req->time, 0);
  std::map<std::string, std::string> h(req->headers.begin(), req->headers.end());
  EXPECT_EQ(h, (std::map<std::string, std::string>{{"authorization", "DPoP t"}, {"host", kHost}}));
  EXPECT_EQ(req->tls_version, "");  // nothing assumed, nothing trusted
  EXPECT_EQ(req->client_cert, "");

  // query appended when the path has none.
  http->set_path("/v1/x");
  http->set_query("b=2");
  EXPECT_EQ(RequestFromCheck(r, "", Config({}))->target, "/v1/x?b=2");
}

TEST(ExtAuthzRequest, HostFromAuthorityOrHostField) {
  CheckRequest r = Check("GET", "/v1/x");
  auto host_of = [](const CheckRequest& c) {
    auto req = RequestFromCheck(c, "", Config({}));
    EXPECT_TRUE(req.ok()) << req.status().ToString();
    std::vector<std::string> hosts;
    for (const auto& [n, v] : req->headers) {
      if (n == "host") hosts.push_back(v);
    }
    return hosts;
  };
  EXPECT_EQ(host_of(r), std::vector<std::string>{kHost});
  // An explicit host header wins over :authority (never both).
  SetHeader(&r, "host", "other.example");
  EXPECT_EQ(host_of(r), std::vector<std::string>{"other.example"});
  // No :authority and no host header: the host field.
  CheckRequest bare = Check("GET", "/v1/x");
  bare.mutable_attributes()->mutable_request()->mutable_http()->mutable_headers()->erase(
      ":authority");
  EXPECT_EQ(host_of(bare), std::vector<std::string>{kHost});
  bare.mutable_attributes()->mutable_request()->mutable_http()->clear_host();
  EXPECT_TRUE(host_of(bare).empty());
}

TEST(ExtAuthzRequest, RawHeaderMapIsPreferredAndKeepsRepeats) {
  CheckRequest r = Check("GET", "/v1/x");
  auto* map = r.mutable_attributes()->mutable_request()->mutable_http()->mutable_header_map();
  auto add = [&](const std::string& k, const std::string& raw, const std::string& v = "") {
    auto* h = map->add_headers();
    h->set_key(k);
    h->set_raw_value(raw);
    h->set_value(v);
  };
  add(":authority", kHost);
  add("x-a", "1");
  add("x-a", "2");
  add("x-b", "", "from-value");
  auto req = RequestFromCheck(r, "", Config({}));
  ASSERT_TRUE(req.ok());
  std::vector<std::pair<std::string, std::string>> want = {
      {"x-a", "1"}, {"x-a", "2"}, {"x-b", "from-value"}, {"host", kHost}};
  EXPECT_EQ(req->headers, want);

  // Two :authority values are ambiguous.
  add(":authority", "evil.example");
  EXPECT_EQ(RequestFromCheck(r, "", Config({})).status().code(), StatusCode::kInvalidArgument);
}

TEST(ExtAuthzRequest, TlsFactsTrustRules) {
  ExtAuthzOptions o;
  o.trusted_proxies = {"10.1.0.0/16", "fd00::/8"};
  o.trust_unix_peers = true;
  ExtAuthzConfig config = Config(o);
  CheckRequest r = Check("GET", "/v1/x");
  SetHeader(&r, "x-vakt-tls-version", "TLSv1.2");
  SetHeader(&r, "x-vakt-tls-cipher", "ECDHE-RSA-AES128-GCM-SHA256");
  auto facts = [&](const std::string& peer) {
    auto req = RequestFromCheck(r, peer, config);
    EXPECT_TRUE(req.ok());
    for (const auto& [n, v] : req->headers) EXPECT_FALSE(n.starts_with("x-vakt-tls")) << n;
    return req->tls_version + "|" + req->tls_cipher;
  };
  const std::string trusted = "TLSv1.2|ECDHE-RSA-AES128-GCM-SHA256";
  EXPECT_EQ(facts("ipv4:10.1.2.3:4000"), trusted);
  EXPECT_EQ(facts("ipv6:[fd00::7]:4000"), trusted);
  EXPECT_EQ(facts("ipv6:%5Bfd00::7%5D:4000"), trusted);
  EXPECT_EQ(facts("ipv6:[::ffff:10.1.0.9]:1"), trusted);  // IPv4-mapped
  EXPECT_EQ(facts("unix:/run/envoy.sock"), trusted);
  EXPECT_EQ(facts("ipv4:10.2.0.1:4000"), "|");
  EXPECT_EQ(facts("ipv6:[fe80::1]:4000"), "|");
  EXPECT_EQ(facts(""), "|");
  EXPECT_EQ(facts("garbage"), "|");
  EXPECT_EQ(facts("ipv4:10.1.2.3"), "|");  // no port: malformed

  ExtAuthzOptions no_unix = o;
  no_unix.trust_unix_peers = false;
  EXPECT_FALSE(Config(no_unix).PeerTrusted("unix:/run/envoy.sock"));
  EXPECT_TRUE(Config(no_unix).PeerTrusted("ipv4:10.1.255.255:1"));

  // A repeated TLS header (raw header map) is not believed.
  CheckRequest twice = Check("GET", "/v1/x");
  auto* map = twice.mutable_attributes()->mutable_request()->mutable_http()->mutable_header_map();
  for (const char* v : {"TLSv1.3", "TLSv1.0"}) {
    auto* h = map->add_headers();
    h->set_key("x-vakt-tls-version");
    h->set_raw_value(v);
  }
  EXPECT_EQ(RequestFromCheck(twice, "ipv4:10.1.0.1:1", config)->tls_version, "");

  // The assumption: https only by default, all requests if told so; a
  // trusted header takes precedence.
  ExtAuthzOptions a;
  a.assumed_tls_version = "TLSv1.3";
  CheckRequest plain = Check("GET", "/v1/x");
  EXPECT_EQ(RequestFromCheck(plain, "", Config(a))->tls_version, "TLSv1.3");
  plain.mutable_attributes()->mutable_request()->mutable_http()->set_scheme("http");
  EXPECT_EQ(RequestFromCheck(plain, "", Config(a))->tls_version, "");
  a.assume_only_for_https = false;
  EXPECT_EQ(RequestFromCheck(plain, "", Config(a))->tls_version, "TLSv1.3");
  a.trusted_proxies = {"127.0.0.1"};
  EXPECT_EQ(RequestFromCheck(r, "ipv4:127.0.0.1:9", Config(a))->tls_version, "TLSv1.2");
  // Disabled header names: nothing is read, the headers pass through.
  ExtAuthzOptions off;
  off.trusted_proxies = {"127.0.0.1"};
  off.tls_version_header = "";
  off.tls_cipher_header = "";
  auto passthrough = RequestFromCheck(r, "ipv4:127.0.0.1:9", Config(off));
  ASSERT_TRUE(passthrough.ok());
  EXPECT_EQ(passthrough->tls_version, "");
  EXPECT_EQ(passthrough->headers.size(), 3u);  // both TLS headers and host
}

TEST(ExtAuthzRequest, CertificateIsUnescaped) {
  CheckRequest r = Check("GET", "/v1/x");
  r.mutable_attributes()->mutable_source()->set_certificate(UrlEncode(F().cert.cert_pem));
  auto req = RequestFromCheck(r, "", Config({}));
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(req->client_cert, F().cert.cert_pem);
  r.mutable_attributes()->mutable_source()->set_certificate(
      std::string(bytecode::kMaxEscapedCertBytes + 1, 'A'));
  EXPECT_EQ(RequestFromCheck(r, "", Config({})).status().code(), StatusCode::kInvalidArgument);
  r.mutable_attributes()->mutable_source()->set_certificate("abc%00def");
  EXPECT_EQ(RequestFromCheck(r, "", Config({})).status().code(), StatusCode::kInvalidArgument);
}

TEST(ExtAuthzRequest, Limits) {
  ExtAuthzOptions o;
  o.max_body_bytes = 10;
  ExtAuthzConfig config = Config(o);
  CheckRequest r = Check("POST", "/v1/x");
  auto* http = r.mutable_attributes()->mutable_request()->mutable_http();
  http->set_body(std::string(10, 'b'));
  EXPECT_TRUE(RequestFromCheck(r, "", config).ok());
  http->set_body(std::string(11, 'b'));
  auto over = RequestFromCheck(r, "", config);
  EXPECT_EQ(over.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(DenyForError(over.status()).status, 413);
  // A partial body is allowed through when the operator says so.
  http->set_body("{");
  SetHeader(&r, "x-envoy-auth-partial-body", "true");
  EXPECT_EQ(DenyForError(RequestFromCheck(r, "", config).status()).status, 413);
  o.deny_partial_body = false;
  EXPECT_TRUE(RequestFromCheck(r, "", Config(o)).ok());
  SetHeader(&r, "x-envoy-auth-partial-body", "false");
  EXPECT_TRUE(RequestFromCheck(r, "", config).ok());

  // Exactly kMaxHeaders headers pass (host counts), one more does not.
  CheckRequest h = Check("GET", "/v1/x");
  for (size_t i = 0; i + 1 < bytecode::kMaxHeaders; ++i)
    SetHeader(&h, "x-" + std::to_string(i), "");
  EXPECT_TRUE(RequestFromCheck(h, "", config).ok());
  SetHeader(&h, "x-one-more", "");
  EXPECT_EQ(DenyForError(RequestFromCheck(h, "", config).status()).status, 431);

  CheckRequest t = Check("GET", "/" + std::string(bytecode::kMaxTargetBytes - 1, 'a'));
  EXPECT_TRUE(RequestFromCheck(t, "", config).ok());
  t.mutable_attributes()->mutable_request()->mutable_http()->set_query("q");
  EXPECT_EQ(DenyForError(RequestFromCheck(t, "", config).status()).status, 414);

  EXPECT_EQ(DenyForError(RequestFromCheck(Check("", "/v1/x"), "", config).status()).status, 400);
  EXPECT_EQ(DenyForError(RequestFromCheck(Check("GET", ""), "", config).status()).status, 400);
  // Consumed entries (pseudo-headers) are bounded too.
  CheckRequest pseudo = Check("GET", "/v1/x");
  for (size_t i = 0; i < 2 * bytecode::kMaxHeaders; ++i)
    SetHeader(&pseudo, ":p" + std::to_string(i), "");
  EXPECT_EQ(DenyForError(RequestFromCheck(pseudo, "", config).status()).status, 431);

  CheckRequest empty_name = Check("GET", "/v1/x");
  SetHeader(&empty_name, "", "v");
  EXPECT_EQ(RequestFromCheck(empty_name, "", config).status().code(), StatusCode::kInvalidArgument);
}

TEST(ExtAuthzRequest, OptionsAreChecked) {
  auto bad = [](auto mutate) {
    ExtAuthzOptions o;
    mutate(o);
    return ExtAuthzConfig::Make(std::move(o)).status().code();
  };
  EXPECT_EQ(bad([](ExtAuthzOptions&) {}), StatusCode::kOk);
  EXPECT_EQ(bad([](ExtAuthzOptions& o) { o.trusted_proxies = {"10.0.0.1/8"}; }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](ExtAuthzOptions& o) { o.tls_version_header = "X-Upper"; }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](ExtAuthzOptions& o) { o.tls_cipher_header = "has space"; }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](ExtAuthzOptions& o) { o.route_header = "a:b"; }), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](ExtAuthzOptions& o) { o.tls_cipher_header = o.tls_version_header; }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](ExtAuthzOptions& o) { o.assumed_tls_cipher = "X"; }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](ExtAuthzOptions& o) { o.assumed_tls_version = "TLS 1.3"; }),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(bad([](ExtAuthzOptions& o) { o.max_body_bytes = kMaxExtAuthzBodyBytes + 1; }),
            StatusCode::kInvalidArgument);
  auto agent = MakeAgent(/*load=*/false);
  ExtAuthzOptions o;
  o.trusted_proxies = {"nonsense"};
  EXPECT_FALSE(MakeExtAuthzService(*agent, o).ok());
}

// ---- FillCheckResponse ----

TEST(ExtAuthzResponse, MapsVerdicts) {
  ExtAuthzOptions o;
  CheckResponse resp;
  Verdict allow;
  allow.allow = true;
  allow.status = 200;
  allow.route = "r";
  FillCheckResponse(allow, o, &resp);
  EXPECT_EQ(resp.status().code(), 0);
  ASSERT_TRUE(resp.has_ok_response());
  EXPECT_EQ(resp.ok_response().headers_size(), 0);  // no route header configured
  EXPECT_FALSE(resp.has_denied_response());

  Verdict deny;
  deny.status = 401;
  deny.error = "invalid_token";
  deny.description = "say \"hi\"\n\\ \x01";
  deny.headers = {{"WWW-Authenticate", "DPoP error=\"invalid_token\""}, {"DPoP-Nonce", "n-1"}};
  FillCheckResponse(deny, o, &resp);  // also clears the previous ok_response
  EXPECT_FALSE(resp.has_ok_response());
  EXPECT_EQ(resp.status().code(), kGrpcUnauthenticated);
  EXPECT_EQ(resp.denied_response().status().code(), 401);
  EXPECT_EQ(DeniedHeader(resp, "www-authenticate"), "DPoP error=\"invalid_token\"");
  EXPECT_EQ(DeniedHeader(resp, "dpop-nonce"), "n-1");
  EXPECT_EQ(resp.denied_response().body(),
            "{\"error\":\"invalid_token\",\"error_description\":"
            "\"say \\\"hi\\\"\\n\\\\ \\u0001\"}");

  // A policy's own content-type is kept, not doubled.
  deny.headers = {{"Content-Type", "application/problem+json"}};
  FillCheckResponse(deny, o, &resp);
  int content_types = 0;
  for (const auto& h : resp.denied_response().headers()) {
    if (h.header().key() == "Content-Type" || h.header().key() == "content-type") ++content_types;
  }
  EXPECT_EQ(content_types, 1);

  // A deny with a status that is no error status still denies, as 403.
  for (uint16_t s : {0, 200, 302, 600}) {
    Verdict odd;
    odd.status = s;
    FillCheckResponse(odd, o, &resp);
    EXPECT_EQ(resp.status().code(), kGrpcPermissionDenied) << s;
    EXPECT_EQ(resp.denied_response().status().code(), 403) << s;
    EXPECT_EQ(resp.denied_response().body(), "{\"error_description\":\"\"}");
  }
  EXPECT_EQ(GrpcCodeForHttpStatus(401), 16);
  EXPECT_EQ(GrpcCodeForHttpStatus(403), 7);
  EXPECT_EQ(GrpcCodeForHttpStatus(503), 7);
}

TEST(ExtAuthzResponse, DenyForErrorStatuses) {
  EXPECT_EQ(DenyForError(InvalidArgument("x")).status, 400);
  EXPECT_EQ(DenyForError(ResourceExhausted("request target: long")).status, 414);
  EXPECT_EQ(DenyForError(ResourceExhausted("request headers: many")).status, 431);
  EXPECT_EQ(DenyForError(ResourceExhausted("request body: big")).status, 413);
  Verdict v = DenyForError(InvalidArgument("no request path"));
  EXPECT_FALSE(v.allow);
  EXPECT_EQ(v.rule, kRuleExtAuthz);
  EXPECT_EQ(v.error, "invalid_request");
  EXPECT_EQ(v.description, "no request path");
}

// ---- wire compatibility with Envoy's field numbers ----

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}
std::string Len(int field, const std::string& payload) {
  return Varint(static_cast<uint64_t>(field) << 3 | 2) + Varint(payload.size()) + payload;
}
std::string VarintField(int field, uint64_t v) {
  return Varint(static_cast<uint64_t>(field) << 3) + Varint(v);
}

TEST(ExtAuthzWire, CheckRequestFieldNumbersMatchEnvoy) {
  // attribute_context.proto: HttpRequest {id 1, method 2, headers 3 (map:
  // key 1, value 2), path 4, host 5, scheme 6, query 7, fragment 8, size 9,
  // protocol 10, body 11, raw_body 12, header_map 13 (HeaderMap.headers 1:
  // HeaderValue key 1, value 2, raw_value 3)}; Request {time 1, http 2};
  // Peer {address 1 (Address.socket_address 1: address 2, port_value 3),
  // service 2, labels 3, principal 4, certificate 5}; AttributeContext
  // {source 1, destination 2, request 4, context_extensions 10,
  // metadata_context 11, tls_session 12 (sni 1)}; CheckRequest {attributes 1}.
  std::string http = Len(1, "id-7") + Len(2, "POST") + Len(3, Len(1, "x-k") + Len(2, "v")) +
                     Len(4, "/p?q=1") + Len(5, "h.example") + Len(6, "https") + Len(7, "q") +
                     Len(8, "f") + VarintField(9, 42) + Len(10, "HTTP/1.1") + Len(11, "body") +
                     Len(12, std::string("\x00\xff", 2)) +
                     Len(13, Len(1, Len(1, "x-raw") + Len(3, "rv")));
  std::string request = Len(1, Len(1, VarintField(1, 1700000000))) + Len(2, http);
  std::string source = Len(1, Len(1, Len(2, "10.0.0.1") + VarintField(3, 5555))) + Len(2, "svc") +
                       Len(3, Len(1, "l") + Len(2, "v")) + Len(4, "spiffe://x") +
                       Len(5, "%2D%2D%2D");
  std::string attrs = Len(1, source) + Len(2, Len(4, "dest")) + Len(4, request) +
                      Len(10, Len(1, "ce") + Len(2, "v")) + Len(12, Len(1, "sni.example"));
  CheckRequest r;
  ASSERT_TRUE(r.ParseFromString(Len(1, attrs)));
  const auto& a = r.attributes();
  const auto& h = a.request().http();
  EXPECT_EQ(h.id(), "id-7");
  EXPECT_EQ(h.method(), "POST");
  ASSERT_EQ(h.headers().count("x-k"), 1u);
  EXPECT_EQ(h.headers().at("x-k"), "v");
  EXPECT_EQ(h.path(), "/p?q=1");
  EXPECT_EQ(h.host(), "h.example");
  EXPECT_EQ(h.scheme(), "https");
  EXPECT_EQ(h.query(), "q");
  EXPECT_EQ(h.fragment(), "f");
  EXPECT_EQ(h.size(), 42);
  EXPECT_EQ(h.protocol(), "HTTP/1.1");
  EXPECT_EQ(h.body(), "body");
  EXPECT_EQ(h.raw_body(), std::string("\x00\xff", 2));
  ASSERT_EQ(h.header_map().headers_size(), 1);
  EXPECT_EQ(h.header_map().headers(0).key(), "x-raw");
  EXPECT_EQ(h.header_map().headers(0).raw_value(), "rv");
  EXPECT_EQ(a.source().address().socket_address().address(), "10.0.0.1");
  EXPECT_EQ(a.source().address().socket_address().port_value(), 5555u);
  EXPECT_EQ(a.source().principal(), "spiffe://x");
  EXPECT_EQ(a.source().certificate(), "%2D%2D%2D");
  EXPECT_EQ(a.destination().principal(), "dest");
  EXPECT_EQ(a.tls_session().sni(), "sni.example");

  // Non-UTF-8 in a header value is parsed (bytes), and left to the VM.
  CheckRequest odd;
  ASSERT_TRUE(odd.ParseFromString(
      Len(1, Len(4, Len(2, Len(3, Len(1, "x") + Len(2, std::string("\xc3\x28", 2))))))));
  EXPECT_EQ(odd.attributes().request().http().headers().at("x"), std::string("\xc3\x28", 2));
}

// A minimal protobuf reader: the fields of one message, in order.
struct WireField {
  int number;
  int type;
  uint64_t varint = 0;
  std::string bytes;
};
bool ReadVarint(std::string_view& in, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    auto b = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    *v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}
std::vector<WireField> Fields(std::string_view in) {
  std::vector<WireField> out;
  while (!in.empty()) {
    uint64_t key;
    if (!ReadVarint(in, &key)) break;
    WireField f{static_cast<int>(key >> 3), static_cast<int>(key & 7), 0, {}};
    if (f.type == 0) {
      if (!ReadVarint(in, &f.varint)) break;
    } else if (f.type == 2) {
      uint64_t n;
      if (!ReadVarint(in, &n) || n > in.size()) break;
      f.bytes = std::string(in.substr(0, n));
      in.remove_prefix(n);
    } else {
      ADD_FAILURE() << "unexpected wire type " << f.type;
      break;
    }
    out.push_back(std::move(f));
  }
  return out;
}

TEST(ExtAuthzWire, CheckResponseFieldNumbersMatchEnvoy) {
  // external_auth.proto: CheckResponse {status 1 (google.rpc.Status code 1,
  // message 2), denied_response 2, ok_response 3}; DeniedHttpResponse
  // {status 1 (HttpStatus.code 1), headers 2, body 3}; HeaderValueOption
  // {header 1 (HeaderValue key 1, value 2), append 2 (BoolValue value 1)};
  // OkHttpResponse {headers 2, headers_to_remove 5}.
  Verdict deny;
  deny.status = 401;
  deny.error = "invalid_token";
  deny.headers = {{"www-authenticate", "Bearer"}};
  CheckResponse resp;
  FillCheckResponse(deny, ExtAuthzOptions{}, &resp);
  auto top = Fields(resp.SerializeAsString());
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].number, 1);
  auto status = Fields(top[0].bytes);
  ASSERT_GE(status.size(), 2u);
  EXPECT_EQ(status[0].number, 1);
  EXPECT_EQ(status[0].varint, 16u);
  EXPECT_EQ(status[1].number, 2);
  EXPECT_EQ(status[1].bytes, "invalid_token");
  EXPECT_EQ(top[1].number, 2);  // denied_response
  auto denied = Fields(top[1].bytes);
  ASSERT_GE(denied.size(), 3u);
  EXPECT_EQ(denied[0].number, 1);
  auto code = Fields(denied[0].bytes);
  ASSERT_EQ(code.size(), 1u);
  EXPECT_EQ(code[0].number, 1);
  EXPECT_EQ(code[0].varint, 401u);
  EXPECT_EQ(denied[1].number, 2);
  auto option = Fields(denied[1].bytes);
  ASSERT_EQ(option.size(), 2u);
  EXPECT_EQ(option[0].number, 1);
  auto hv = Fields(option[0].bytes);
  ASSERT_EQ(hv.size(), 2u);
  EXPECT_EQ(hv[0].number, 1);
  EXPECT_EQ(hv[0].bytes, "www-authenticate");
  EXPECT_EQ(hv[1].number, 2);
  EXPECT_EQ(hv[1].bytes, "Bearer");
  EXPECT_EQ(option[1].number, 2);
  EXPECT_EQ(option[1].bytes, "");  // BoolValue{false}: present, empty
  EXPECT_EQ(denied.back().number, 3);
  EXPECT_TRUE(denied.back().bytes.starts_with("{\"error\":\"invalid_token\""));

  Verdict allow;
  allow.allow = true;
  allow.route = "get_patient";
  ExtAuthzOptions o;
  o.route_header = "x-vakt-route";
  FillCheckResponse(allow, o, &resp);
  top = Fields(resp.SerializeAsString());
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].number, 1);
  EXPECT_EQ(top[0].bytes, "");  // code 0: an empty google.rpc.Status
  EXPECT_EQ(top[1].number, 3);  // ok_response
  auto ok = Fields(top[1].bytes);
  ASSERT_EQ(ok.size(), 3u);
  EXPECT_EQ(ok[0].number, 2);
  EXPECT_EQ(ok[1].number, 5);
  EXPECT_EQ(ok[1].bytes, "x-vakt-tls-version");
  EXPECT_EQ(ok[2].number, 5);
}

// ---- net_util ----

TEST(NetUtil, ParsesAndMatchesCidrs) {
  auto set = ParseCidrs({"10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1", "0.0.0.0/0"});
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(set->size(), 5u);
  auto only = ParseCidrs({"10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1"});
  ASSERT_TRUE(only.ok());
  EXPECT_TRUE(only->Contains("10.255.0.1"));
  EXPECT_FALSE(only->Contains("11.0.0.1"));
  EXPECT_TRUE(only->Contains("192.168.1.7"));
  EXPECT_FALSE(only->Contains("192.168.1.8"));
  EXPECT_TRUE(only->Contains("2001:db8:ffff::1"));
  EXPECT_FALSE(only->Contains("2001:db9::1"));
  EXPECT_TRUE(only->Contains("::1"));
  EXPECT_FALSE(only->Contains("::2"));
  EXPECT_TRUE(only->Contains("::ffff:10.1.1.1"));  // IPv4-mapped
  EXPECT_FALSE(only->Contains("not an ip"));
  EXPECT_FALSE(only->Contains(""));
  EXPECT_TRUE(set->Contains("8.8.8.8"));  // 0.0.0.0/0
  EXPECT_FALSE(set->Contains("2001:db9::1"));

  auto odd = ParseCidrs({"10.128.0.0/9", "fe80::/10"});
  ASSERT_TRUE(odd.ok());
  EXPECT_TRUE(odd->Contains("10.200.0.1"));
  EXPECT_FALSE(odd->Contains("10.100.0.1"));
  EXPECT_TRUE(odd->Contains("febf::1"));
  EXPECT_FALSE(odd->Contains("fec0::1"));

  EXPECT_TRUE(CidrSet().empty());
  EXPECT_FALSE(CidrSet().Contains("127.0.0.1"));
  for (const char* bad :
       {"10.0.0.1/8", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x",
        "010.0.0.1", "1.2.3", "::1::2", "", "/8", "1.2.3.4/0008", "[::1]", "fe80::1%eth0"}) {
    EXPECT_FALSE(ParseCidrs({bad}).ok()) << bad;
  }
  std::vector<std::string> many(kMaxCidrs + 1, "127.0.0.1");
  EXPECT_EQ(ParseCidrs(many).status().code(), StatusCode::kResourceExhausted);

  auto list = ParseCidrList(" 10.0.0.0/8, ::1 ,,192.0.2.0/24 ");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 3u);
  EXPECT_TRUE(list->Contains("192.0.2.200"));
  EXPECT_FALSE(ParseCidrList("10.0.0.0/8,bogus").ok());
  EXPECT_TRUE(ParseCidrList("").ok());
}

TEST(NetUtil, ParsesGrpcPeers) {
  auto v4 = ParseGrpcPeer("ipv4:127.0.0.1:51234");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->kind, GrpcPeer::Kind::kIp);
  EXPECT_EQ(v4->ip, "127.0.0.1");
  auto v6 = ParseGrpcPeer("ipv6:[::1]:443");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->ip, "::1");
  auto enc = ParseGrpcPeer("ipv6:%5B2001:db8::7%5D:443");
  ASSERT_TRUE(enc.ok());
  EXPECT_EQ(enc->ip, "2001:db8::7");
  auto zone = ParseGrpcPeer("ipv6:[fe80::1%25eth0]:443");
  ASSERT_TRUE(zone.ok());
  EXPECT_EQ(zone->ip, "fe80::1");
  EXPECT_EQ(ParseGrpcPeer("unix:/run/x.sock")->kind, GrpcPeer::Kind::kUnix);
  EXPECT_EQ(ParseGrpcPeer("unix-abstract:x")->kind, GrpcPeer::Kind::kUnix);
  for (const char* bad :
       {"", "ipv4:", "ipv4:127.0.0.1", "ipv4:127.0.0.1:", "ipv4:127.0.0.1:x",
        "ipv4:127.0.0.1:123456", "ipv4:::1:80", "ipv6:::1:80", "ipv6:[::1]", "ipv6:[::1]80",
        "ipv6:[nothing]:80", "ipv4:1.2.3.4%:1", "vsock:1:2", "ipv4:999.1.1.1:80"}) {
    EXPECT_FALSE(ParseGrpcPeer(bad).ok()) << bad;
  }
  EXPECT_FALSE(ParseGrpcPeer("ipv4:" + std::string(500, '1') + ":1").ok());
}

TEST(NetUtil, ParsesIps) {
  auto v4 = ParseIp("192.0.2.1");
  ASSERT_TRUE(v4.ok());
  EXPECT_TRUE(v4->is_v4);
  EXPECT_EQ(v4->bytes[10], 0xff);
  EXPECT_EQ(v4->bytes[15], 1);
  auto v6 = ParseIp("2001:db8::1");
  ASSERT_TRUE(v6.ok());
  EXPECT_FALSE(v6->is_v4);
  EXPECT_TRUE(ParseIp("::ffff:1.2.3.4")->is_v4);
  EXPECT_FALSE(ParseIp(std::string(100, '1')).ok());
  EXPECT_FALSE(ParseIp(std::string("1.2.3.4\0", 8)).ok());
}

}  // namespace
}  // namespace vakt::agent
