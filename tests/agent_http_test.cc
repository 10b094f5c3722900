// Tests of the agent's HTTP interfaces.
//
//  - ForwardAuth*: agent/forward_auth.cc as pure functions: trusted proxy
//    networks, every header source of both dialects (nginx X-Original-*,
//    Traefik/Caddy X-Forwarded-*), cross-dialect smuggling, trusted and
//    untrusted TLS facts, header count/byte bounds, and every answer
//    mapping (forward-auth, auth_request, /v1/denied).
//  - HttpServer*: agent/http_server.cc in process over real loopback
//    sockets (a raw socket client): every endpoint, ready/unready, metrics
//    after decisions, 413/431, a slow client cut off by the read timeout,
//    the connection limit, malformed HTTP answered 400 while the server
//    keeps serving. No timing is asserted; every wait is bounded.
//
// The policy is compiled in memory (vakt::compiler) and loaded unsigned.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/agent.h"
#include "agent/forward_auth.h"
#include "agent/http_server.h"
#include "compiler/compile.h"
#include "compiler/token_tool.h"

namespace vakt::agent {
namespace {

using Headers = std::vector<std::pair<std::string_view, std::string_view>>;

// ---------------------------------------------------------------------------
// TrustedProxies

TEST(ForwardAuthProxies, ParsesAndMatchesV4AndV6) {
  auto p =
      TrustedProxies::Parse({"127.0.0.1/32", "10.0.0.0/8", "192.168.1.7", "::1/128", "fd00::/8"});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->size(), 5u);
  EXPECT_TRUE(p->Contains("127.0.0.1"));
  EXPECT_FALSE(p->Contains("127.0.0.2"));
  EXPECT_TRUE(p->Contains("10.255.1.2"));
  EXPECT_FALSE(p->Contains("11.0.0.1"));
  EXPECT_TRUE(p->Contains("192.168.1.7"));
  EXPECT_FALSE(p->Contains("192.168.1.8"));
  EXPECT_TRUE(p->Contains("::1"));
  EXPECT_TRUE(p->Contains("[::1]"));
  EXPECT_TRUE(p->Contains("fd12:3456::1"));
  EXPECT_FALSE(p->Contains("fe80::1"));
  // An IPv4-mapped IPv6 peer is its IPv4 address.
  EXPECT_TRUE(p->Contains("::ffff:10.1.2.3"));
  // Malformed peers are never trusted.
  EXPECT_FALSE(p->Contains(""));
  EXPECT_FALSE(p->Contains("localhost"));
  EXPECT_FALSE(p->Contains("127.0.0.1/32"));
  EXPECT_FALSE(p->Contains("fe80::1%eth0"));
  EXPECT_FALSE(p->Contains(std::string(100, '1')));
}

TEST(ForwardAuthProxies, PrefixBoundaries) {
  auto p = TrustedProxies::Parse({"172.16.0.0/12", "0.0.0.0/0"});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->Contains("8.8.8.8"));  // /0 holds every IPv4 address
  EXPECT_FALSE(p->Contains("::2"));     // but no IPv6 one
  auto q = TrustedProxies::Parse({"172.16.0.0/12"});
  ASSERT_TRUE(q.ok());
  EXPECT_TRUE(q->Contains("172.31.255.255"));
  EXPECT_FALSE(q->Contains("172.32.0.0"));
  auto none = TrustedProxies::Parse({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_FALSE(none->Contains("127.0.0.1"));
}

TEST(ForwardAuthProxies, RefusesMalformedEntries) {
  for (const char* bad : {"", "1.2.3.4/", "/8", "1.2.3.4/33", "::1/129", "1.2.3/24", "1.2.3.4/x",
                          "host.example", "1.2.3.4/0008", "1.2.3.4/-1"}) {
    auto p = TrustedProxies::Parse({bad});
    EXPECT_FALSE(p.ok()) << bad;
    if (!p.ok()) {
      EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    }
  }
  std::vector<std::string> many(1025, "127.0.0.1");
  EXPECT_FALSE(TrustedProxies::Parse(many).ok());
}

// ---------------------------------------------------------------------------
// Translation

const ForwardAuthOptions kOpts;

std::string HeaderOf(const bytecode::OwnedRequest& r, std::string_view name) {
  std::string out;
  int n = 0;
  for (const auto& [k, v] : r.headers) {
    if (k == name) {
      out = v;
      ++n;
    }
  }
  return n == 1 ? out : (n == 0 ? "<absent>" : "<repeated>");
}

TEST(ForwardAuthTranslate, NginxOriginalHeaders) {
  AuthRequestIn in;
  in.method = "GET";  // nginx subrequests are GET
  in.target = "/v1/auth-request";
  in.headers = {{"Host", "api.example:8443"},
                {"X-Original-Method", "DELETE"},
                {"X-Original-URI", "/v1/items/7?x=1"},
                {"Authorization", "DPoP abc"},
                {"DPoP", "proof"},
                {"Connection", "keep-alive, X-Secret"},
                {"X-Secret", "hop"},
                {"Keep-Alive", "timeout=5"},
                {"Content-Length", "0"},
                {"X-Forwarded-For", "203.0.113.9"},
                {"X-Vakt-Status", "404"},
                {"X-Forwarded-Uri", "/v1/health"}};  // the other dialect: dropped
  ForwardResult r = TranslateForwarded(in, ForwardDialect::kAuthRequest, kOpts);
  ASSERT_TRUE(r.ok) << r.error.description;
  const auto& req = r.forwarded.request;
  EXPECT_EQ(req.method, "DELETE");
  EXPECT_EQ(req.target, "/v1/items/7?x=1");
  EXPECT_EQ(HeaderOf(req, "host"), "api.example:8443");
  EXPECT_EQ(HeaderOf(req, "authorization"), "DPoP abc");
  EXPECT_EQ(HeaderOf(req, "dpop"), "proof");
  EXPECT_EQ(HeaderOf(req, "x-forwarded-for"), "203.0.113.9");
  for (const char* gone :
       {"connection", "x-secret", "keep-alive", "content-length", "x-vakt-status",
        "x-forwarded-uri", "x-original-uri", "x-original-method"}) {
    EXPECT_EQ(HeaderOf(req, gone), "<absent>") << gone;
  }
  EXPECT_TRUE(req.tls_version.empty());
  EXPECT_FALSE(r.forwarded.ignored_tls_headers);
}

TEST(ForwardAuthTranslate, TraefikForwardedHeaders) {
  AuthRequestIn in;
  in.method = "POST";
  in.headers = {{"Host", "vakt-agent:8181"},
                {"X-Forwarded-Host", "api.example"},
                {"X-Forwarded-Uri", "/v1/items"},
                {"X-Forwarded-Proto", "https"},
                {"X-Forwarded-Port", "443"},
                {"X-Original-URI", "/v1/health"},  // the other dialect: dropped
                {"Content-Type", "application/json"}};
  in.body = "{\"a\":1}";
  ForwardResult r = TranslateForwarded(in, ForwardDialect::kForwardAuth, kOpts);
  ASSERT_TRUE(r.ok) << r.error.description;
  const auto& req = r.forwarded.request;
  // No X-Forwarded-Method: the auth request's own method (Traefik).
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/v1/items");
  EXPECT_EQ(HeaderOf(req, "host"), "api.example");  // X-Forwarded-Host wins
  EXPECT_EQ(HeaderOf(req, "content-type"), "application/json");
  EXPECT_EQ(HeaderOf(req, "x-forwarded-proto"), "<absent>");
  EXPECT_EQ(HeaderOf(req, "x-original-uri"), "<absent>");
  EXPECT_EQ(req.body, "{\"a\":1}");

  in.headers.push_back({"X-Forwarded-Method", "PUT"});
  r = TranslateForwarded(in, ForwardDialect::kForwardAuth, kOpts);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.forwarded.request.method, "PUT");
}

TEST(ForwardAuthTranslate, NoHostIsPassedOnAsNoHost) {
  AuthRequestIn in;
  in.method = "GET";
  in.headers = {{"X-Forwarded-Uri", "/v1/x"}};
  ForwardResult r = TranslateForwarded(in, ForwardDialect::kForwardAuth, kOpts);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(HeaderOf(r.forwarded.request, "host"), "<absent>");
}

// An URI only in the other dialect's header is not an URI: a client cannot
// smuggle one past a proxy that forwards its headers untouched.
TEST(ForwardAuthTranslate, OtherDialectsUriIsRefused) {
  AuthRequestIn in;
  in.method = "GET";
  in.headers = {{"Host", "a"}, {"X-Forwarded-Uri", "/v1/health"}};
  ForwardResult r = TranslateForwarded(in, ForwardDialect::kAuthRequest, kOpts);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error.status, 400);
  EXPECT_NE(r.error.description.find("x-original-uri"), std::string::npos) << r.error.description;

  in.headers = {{"Host", "a"}, {"X-Original-URI", "/v1/health"}};
  r = TranslateForwarded(in, ForwardDialect::kForwardAuth, kOpts);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error.status, 400);
}

TEST(ForwardAuthTranslate, RefusesMalformedForwarding) {
  struct Case {
    Headers headers;
    std::string_view method;
    uint16_t status;
    std::string_view text;
  };
  const std::string long_uri = "/" + std::string(bytecode::kMaxTargetBytes, 'a');
  std::vector<Case> cases = {
      {{{"X-Original-URI", "/a"}, {"X-Original-URI", "/b"}}, "GET", 400, "more than one"},
      {{{"X-Original-URI", "/a"}, {"X-Original-Method", "GET"}, {"x-original-method", "PUT"}},
       "GET",
       400,
       "more than one"},
      {{{"X-Original-URI", "/a"}, {"Host", "a"}, {"Host", "b"}}, "GET", 400, "more than one"},
      {{{"X-Original-URI", "/a"}, {"X-Forwarded-Host", "a"}, {"X-Forwarded-Host", "b"}},
       "GET",
       400,
       "more than one"},
      {{{"X-Original-URI", "/a"}, {"X-Forwarded-Host", "a, b"}}, "GET", 400, "Host"},
      {{{"X-Original-URI", "/a"}, {"Host", "a\x01"}}, "GET", 400, "Host"},
      {{{"X-Original-URI", "/a"}, {"Host", ""}}, "GET", 400, "Host"},
      {{{"X-Original-URI", ""}}, "GET", 400, "no x-original-uri"},
      {{{"X-Original-URI", long_uri}}, "GET", 414, "longer"},
      {{{"X-Original-URI", "/a"}, {"X-Original-Method", "GE T"}}, "GET", 400, "method"},
      {{{"X-Original-URI", "/a"}}, "", 400, "method"},
      {{{"X-Original-URI", "/a"},
        {"X-Original-Method", std::string_view("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG")}},
       "GET",
       400,
       "method"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    AuthRequestIn in;
    in.method = cases[i].method;
    in.headers = cases[i].headers;
    ForwardResult r = TranslateForwarded(in, ForwardDialect::kAuthRequest, kOpts);
    EXPECT_FALSE(r.ok) << "case " << i;
    EXPECT_EQ(r.error.status, cases[i].status) << "case " << i;
    EXPECT_EQ(r.error.error, "invalid_request");
    EXPECT_NE(r.error.description.find(cases[i].text), std::string::npos)
        << "case " << i << ": " << r.error.description;
    Verdict v = ErrorVerdict(r.error);
    EXPECT_FALSE(v.allow);
    EXPECT_EQ(v.status, cases[i].status);
    EXPECT_EQ(v.rule, kRuleForwardAuth);
  }
}

TEST(ForwardAuthTranslate, BoundsHeaderCountAndBytes) {
  ForwardAuthOptions o;
  o.max_headers = 4;
  o.max_header_bytes = 64;
  AuthRequestIn in;
  in.method = "GET";
  in.headers = {{"X-Original-URI", "/a"}, {"a", "1"}, {"b", "2"}, {"c", "3"}};
  EXPECT_TRUE(TranslateForwarded(in, ForwardDialect::kAuthRequest, o).ok);
  in.headers.push_back({"d", "4"});
  ForwardResult r = TranslateForwarded(in, ForwardDialect::kAuthRequest, o);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error.status, 431);
  const std::string big(60, 'x');
  in.headers = {{"X-Original-URI", "/a"}, {"a", big}};
  r = TranslateForwarded(in, ForwardDialect::kAuthRequest, o);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error.status, 431);
  EXPECT_NE(r.error.description.find("64 bytes"), std::string::npos);
}

// A URL-escaped PEM as nginx's $ssl_client_escaped_cert gives it.
std::string EscapeCert(std::string_view pem) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : pem) {
    if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' ||
        c == '=') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

const compiler::TestCertificate& Cert() {
  static const compiler::TestCertificate* c = [] {
    auto r = compiler::MakeTestCertificate("client-1");
    if (!r.ok()) {
      ADD_FAILURE() << r.status().ToString();
      abort();
    }
    return new compiler::TestCertificate(std::move(r).value());
  }();
  return *c;
}

TEST(ForwardAuthTranslate, TlsFactsOnlyFromTrustedPeers) {
  const std::string escaped = EscapeCert(Cert().cert_pem);
  AuthRequestIn in;
  in.method = "GET";
  in.headers = {{"X-Original-URI", "/a"},
                {"X-Vakt-TLS-Version", "TLSv1.3"},
                {"X-Vakt-TLS-Cipher", "TLS_AES_128_GCM_SHA256"},
                {"X-Vakt-Client-Cert", escaped}};
  in.peer_trusted = true;
  ForwardResult r = TranslateForwarded(in, ForwardDialect::kAuthRequest, kOpts);
  ASSERT_TRUE(r.ok) << r.error.description;
  EXPECT_EQ(r.forwarded.request.tls_version, "TLSv1.3");
  EXPECT_EQ(r.forwarded.request.tls_cipher, "TLS_AES_128_GCM_SHA256");
  EXPECT_EQ(r.forwarded.request.client_cert, Cert().cert_pem);
  EXPECT_FALSE(r.forwarded.ignored_tls_headers);
  for (const char* gone : {"x-vakt-tls-version", "x-vakt-tls-cipher", "x-vakt-client-cert"}) {
    EXPECT_EQ(HeaderOf(r.forwarded.request, gone), "<absent>");
  }

  in.peer_trusted = false;
  r = TranslateForwarded(in, ForwardDialect::kAuthRequest, kOpts);
  ASSERT_TRUE(r.ok);
  EXPECT_TRUE(r.forwarded.request.tls_version.empty());
  EXPECT_TRUE(r.forwarded.request.tls_cipher.empty());
  EXPECT_TRUE(r.forwarded.request.client_cert.empty());
  EXPECT_TRUE(r.forwarded.ignored_tls_headers);
  EXPECT_EQ(HeaderOf(r.forwarded.request, "x-vakt-tls-version"), "<absent>");

  // An empty certificate header (nginx without a client certificate).
  in.peer_trusted = true;
  in.headers = {
      {"X-Original-URI", "/a"}, {"X-Vakt-TLS-Version", "TLSv1.2"}, {"X-Vakt-Client-Cert", ""}};
  r = TranslateForwarded(in, ForwardDialect::kAuthRequest, kOpts);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.forwarded.request.tls_version, "TLSv1.2");
  EXPECT_TRUE(r.forwarded.request.client_cert.empty());
}

TEST(ForwardAuthTranslate, MalformedTlsFactsFromTrustedPeersAreRefused) {
  struct Case {
    Headers headers;
    std::string_view text;
  };
  std::vector<Case> cases = {
      {{{"X-Vakt-TLS-Version", "TLSv1.3"}, {"X-Vakt-Client-Cert", "%ZZ"}}, "certificate"},
      {{{"X-Vakt-TLS-Version", "TLS v1.3"}}, "TLS version"},
      {{{"X-Vakt-TLS-Version", "TLSv1.3"}, {"X-Vakt-TLS-Cipher", "a b"}}, "cipher"},
      {{{"X-Vakt-TLS-Cipher", "TLS_AES_128_GCM_SHA256"}}, "without the TLS version"},
      {{{"X-Vakt-Client-Cert", "abc"}}, "without the TLS version"},
      {{{"X-Vakt-TLS-Version", "TLSv1.3"}, {"X-Vakt-TLS-Version", "TLSv1.3"}}, "more than one"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    AuthRequestIn in;
    in.method = "GET";
    in.headers = cases[i].headers;
    in.headers.push_back({"X-Original-URI", "/a"});
    in.peer_trusted = true;
    ForwardResult r = TranslateForwarded(in, ForwardDialect::kAuthRequest, kOpts);
    EXPECT_FALSE(r.ok) << "case " << i;
    EXPECT_EQ(r.error.status, 400);
    EXPECT_NE(r.error.description.find(cases[i].text), std::string::npos)
        << "case " << i << ": " << r.error.description;
    // From an untrusted peer the same headers are ignored, not refused.
    in.peer_trusted = false;
    r = TranslateForwarded(in, ForwardDialect::kAuthRequest, kOpts);
    EXPECT_TRUE(r.ok) << "case " << i;
    EXPECT_TRUE(r.forwarded.ignored_tls_headers);
  }
}

TEST(ForwardAuthTranslate, ConfigurableTlsHeaderNames) {
  ForwardAuthOptions o;
  o.tls_version_header = "X-SSL-Protocol";
  o.tls_cipher_header = "X-SSL-Cipher";
  o.client_cert_header = "X-SSL-Cert";
  AuthRequestIn in;
  in.method = "GET";
  in.peer_trusted = true;
  in.headers = {{"X-Original-URI", "/a"},
                {"x-ssl-protocol", "TLSv1.3"},
                {"X-SSL-Cipher", "TLS_AES_256_GCM_SHA384"},
                {"X-Vakt-TLS-Version", "TLSv1.0"}};  // the default name: an ordinary header
  ForwardResult r = TranslateForwarded(in, ForwardDialect::kAuthRequest, o);
  ASSERT_TRUE(r.ok) << r.error.description;
  EXPECT_EQ(r.forwarded.request.tls_version, "TLSv1.3");
  EXPECT_EQ(r.forwarded.request.tls_cipher, "TLS_AES_256_GCM_SHA384");
  // x-vakt-* headers are the agent's own: never passed to the policy.
  EXPECT_EQ(HeaderOf(r.forwarded.request, "x-vakt-tls-version"), "<absent>");
}

// ---------------------------------------------------------------------------
// Answers

Verdict Deny(uint16_t status, std::string error, std::string description) {
  Verdict v;
  v.allow = false;
  v.status = status;
  v.error = std::move(error);
  v.description = std::move(description);
  return v;
}

std::string AnswerHeader(const HttpAnswer& a, std::string_view name) {
  for (const auto& [k, v] : a.headers) {
    if (k == name) return v;
  }
  return "<absent>";
}

TEST(ForwardAuthAnswer, AllowIsEmpty200) {
  Verdict allow;
  allow.allow = true;
  allow.status = 200;
  for (const HttpAnswer& a : {ForwardAuthAnswer(allow), AuthRequestAnswer(allow)}) {
    EXPECT_EQ(a.status, 200);
    EXPECT_TRUE(a.body.empty());
    EXPECT_TRUE(a.headers.empty());
  }
  allow.headers = {{"DPoP-Nonce", "n-2"}};
  EXPECT_EQ(AnswerHeader(ForwardAuthAnswer(allow), "DPoP-Nonce"), "n-2");
  EXPECT_EQ(AnswerHeader(AuthRequestAnswer(allow), "DPoP-Nonce"), "n-2");
  EXPECT_TRUE(ForwardAuthAnswer(allow).body.empty());
}

TEST(ForwardAuthAnswer, ForwardAuthKeepsTheExactStatus) {
  Verdict v = Deny(401, "invalid_dpop_proof", "the proof is \"old\"");
  v.headers = {{"WWW-Authenticate", "DPoP error=\"invalid_dpop_proof\""},
               {"DPoP-Nonce", "n-1"},
               {"X-Bad", "a\r\nInjected: 1"}};  // never sent
  HttpAnswer a = ForwardAuthAnswer(v);
  EXPECT_EQ(a.status, 401);
  EXPECT_EQ(AnswerHeader(a, "WWW-Authenticate"), "DPoP error=\"invalid_dpop_proof\"");
  EXPECT_EQ(AnswerHeader(a, "DPoP-Nonce"), "n-1");
  EXPECT_EQ(AnswerHeader(a, "X-Bad"), "<absent>");
  EXPECT_EQ(a.body, R"({"error":"invalid_dpop_proof","error_description":"the proof is \"old\""})");
  for (uint16_t s : {400, 403, 404, 413, 415, 503}) {
    EXPECT_EQ(ForwardAuthAnswer(Deny(s, "e", "d")).status, s);
  }
  // A deny with a status outside 4xx/5xx (a policy bug) is still a deny.
  EXPECT_EQ(ForwardAuthAnswer(Deny(0, "", "d")).status, 403);
  EXPECT_EQ(ForwardAuthAnswer(Deny(302, "", "d")).status, 403);
  EXPECT_EQ(ForwardAuthAnswer(Deny(401, "", "no token")).body,
            R"({"error_description":"no token"})");
}

TEST(ForwardAuthAnswer, AuthRequestMapsToNginxStatuses) {
  Verdict v = Deny(401, "", "an access token is required");
  v.headers = {{"WWW-Authenticate", "Bearer"}};
  HttpAnswer a = AuthRequestAnswer(v);
  EXPECT_EQ(a.status, 401);
  EXPECT_EQ(AnswerHeader(a, "X-Vakt-Status"), "401");
  EXPECT_EQ(AnswerHeader(a, "X-Vakt-Error"), "<absent>");
  EXPECT_EQ(AnswerHeader(a, "WWW-Authenticate"), "Bearer");
  for (uint16_t s : {400, 403, 404, 405, 413, 415, 429, 502, 503}) {
    HttpAnswer b = AuthRequestAnswer(Deny(s, "not_found", "no such record\n\xc3\xa6"));
    EXPECT_EQ(b.status, 403) << s;
    EXPECT_EQ(AnswerHeader(b, "X-Vakt-Status"), std::to_string(s));
    EXPECT_EQ(AnswerHeader(b, "X-Vakt-Error"), "not_found");
    // Header-safe: control and non-ASCII bytes replaced.
    EXPECT_EQ(AnswerHeader(b, "X-Vakt-Error-Description"), "no such record???");
  }
  HttpAnswer c = AuthRequestAnswer(Deny(0, "bad error", "x"));
  EXPECT_EQ(c.status, 403);
  EXPECT_EQ(AnswerHeader(c, "X-Vakt-Status"), "403");
  EXPECT_EQ(AnswerHeader(c, "X-Vakt-Error"), "<absent>");  // not a token
}

TEST(ForwardAuthAnswer, DeniedFromTrustedProxy) {
  AuthRequestIn in;
  in.method = "GET";
  in.peer_trusted = true;
  in.headers = {{"X-Vakt-Status", "404"},
                {"X-Vakt-Error", "not_found"},
                {"X-Vakt-Error-Description", "no such record"},
                {"X-Vakt-WWW-Authenticate", "DPoP error=\"x\""},
                {"X-Vakt-DPoP-Nonce", "abc"}};
  HttpAnswer a = DeniedAnswer(in);
  EXPECT_EQ(a.status, 404);
  EXPECT_EQ(a.body, R"({"error":"not_found","error_description":"no such record"})");
  EXPECT_EQ(AnswerHeader(a, "WWW-Authenticate"), "DPoP error=\"x\"");
  EXPECT_EQ(AnswerHeader(a, "DPoP-Nonce"), "abc");
  // On 401 nginx has copied the challenge already: not added twice.
  in.headers[0].second = "401";
  a = DeniedAnswer(in);
  EXPECT_EQ(a.status, 401);
  EXPECT_EQ(AnswerHeader(a, "WWW-Authenticate"), "<absent>");
  EXPECT_EQ(AnswerHeader(a, "DPoP-Nonce"), "abc");

  // Only 4xx/5xx statuses; anything else is 403.
  for (const char* bad : {"200", "302", "600", "4000", "40", "abc", "", "4O4", "399"}) {
    in.headers = {{"X-Vakt-Status", bad}, {"X-Vakt-Error", "x"}};
    EXPECT_EQ(DeniedAnswer(in).status, 403) << bad;
  }
  for (const char* good : {"400", "413", "415", "500", "503", "599"}) {
    in.headers = {{"X-Vakt-Status", good}};
    EXPECT_EQ(DeniedAnswer(in).status, std::stoi(good)) << good;
  }
  // Missing error: generic text; a malformed one is dropped; bad header values dropped.
  in.headers = {{"X-Vakt-Status", "403"}};
  EXPECT_EQ(DeniedAnswer(in).body,
            R"({"error":"access_denied","error_description":"the request was denied"})");
  in.headers = {{"X-Vakt-Status", "401"}};
  EXPECT_EQ(DeniedAnswer(in).body, R"({"error_description":"the request was denied"})");
  in.headers = {{"X-Vakt-Status", "400"},
                {"X-Vakt-Error", "a b"},
                {"X-Vakt-Error-Description", "d"},
                {"X-Vakt-WWW-Authenticate", "x\x01"},
                {"X-Vakt-DPoP-Nonce", "a b"}};
  a = DeniedAnswer(in);
  EXPECT_EQ(a.body, R"({"error_description":"d"})");
  EXPECT_TRUE(a.headers.empty());
}

TEST(ForwardAuthAnswer, DeniedFromUntrustedPeerIgnoresHeaders) {
  AuthRequestIn in;
  in.method = "GET";
  in.peer_trusted = false;
  in.headers = {{"X-Vakt-Status", "404"}, {"X-Vakt-WWW-Authenticate", "Bearer"}};
  HttpAnswer a = DeniedAnswer(in);
  EXPECT_EQ(a.status, 403);
  EXPECT_TRUE(a.headers.empty());
  EXPECT_EQ(a.body, R"({"error":"access_denied","error_description":"the request was denied"})");
}

TEST(ForwardAuthAnswer, ErrorJsonEscapes) {
  EXPECT_EQ(ErrorJson("e", "a\"b\\c\nd\x01"),
            R"({"error":"e","error_description":"a\"b\\c\nd\u0001"})");
  EXPECT_EQ(ErrorJson("", ""), R"({"error_description":""})");
}

// ---------------------------------------------------------------------------
// The server, in process

constexpr char kPolicyHead[] = R"(package t

api a "/v1" {
  route open GET "/open" {}
  route flag GET "/flag" {
    flag: require has(request.headers["x-flag"]) && request.headers["x-flag"] == "on"
      else deny 400 invalid_request "x-flag must be on"
  }
  route tls GET "/tls" {
    tls: require request.tls.version == "TLSv1.3"
      else deny 403 insecure_transport "TLS 1.3 is required"
  }
  route host GET "/host" {
    host: require request.headers["host"] == "api.example"
      else deny 403 access_denied "wrong host"
  }
  route items POST "/items" {}
  route resp GET "/resp" {
    on response {
      json: require response.headers["content-type"] == "application/json"
        else deny 502 invalid_response "the response is not JSON"
    }
  }
  route mtls GET "/cert" {
    bound: require request.tls.client_cert_thumbprint == ")";
constexpr char kPolicyTail[] = R"("
      else deny 401 invalid_token "wrong certificate"
  }
}
)";

const std::string& BundleBytes() {
  static const std::string* bytes = [] {
    compiler::SourceSet sources;
    compiler::AddSource(sources, "t.vakt",
                        std::string(kPolicyHead) + Cert().x5t_s256 + kPolicyTail);
    dsl::Diagnostics diags;
    auto comp = compiler::Compile(sources, compiler::CompileOptions{}, diags);
    if (diags.HasErrors() || comp->bytes.empty()) {
      ADD_FAILURE() << diags.Format();
      abort();
    }
    return new std::string(comp->bytes);
  }();
  return *bytes;
}

// A raw HTTP answer.
struct Reply {
  int status = 0;                              // 0: no answer (closed or timed out)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& n) const {
    auto it = headers.find(n);
    return it == headers.end() ? "<absent>" : it->second;
  }
};

// A blocking loopback client socket with 10 s receive/send timeouts.
class Conn {
 public:
  explicit Conn(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  }
  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }
  bool Send(std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }
  // Reads one answer (Content-Length framed). status 0 if the connection
  // closed or timed out first.
  Reply Read() {
    Reply r;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return r;
    }
    std::string head = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    std::string status_line = head.substr(0, line_end);
    if (status_line.size() < 12) return r;
    r.status = std::atoi(status_line.c_str() + 9);
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string line = head.substr(pos, e - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(tolower(c));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        r.headers[name] = value;
      }
      pos = e + 2;
    }
    size_t len = static_cast<size_t>(std::atol(r.header("content-length").c_str()));
    while (buf_.size() < len) {
      if (!Fill()) {
        r.status = 0;
        return r;
      }
    }
    r.body = buf_.substr(0, len);
    buf_.erase(0, len);
    return r;
  }
  // True if the server closed the connection (EOF or reset) within the
  // receive timeout, with no more bytes.
  bool ClosedByPeer() {
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

 private:
  bool Fill() {
    char tmp[16384];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

std::string Get(std::string_view path, const std::vector<std::string>& headers = {},
                std::string_view method = "GET") {
  std::string r = std::string(method) + " " + std::string(path) + " HTTP/1.1\r\nHost: agent\r\n";
  for (const auto& h : headers) r += h + "\r\n";
  return r + "\r\n";
}

std::string Post(std::string_view path, std::string_view body,
                 const std::vector<std::string>& headers = {}) {
  std::string r = "POST " + std::string(path) +
                  " HTTP/1.1\r\nHost: agent\r\nContent-Length: " + std::to_string(body.size()) +
                  "\r\n";
  for (const auto& h : headers) r += h + "\r\n";
  return r + "\r\n" + std::string(body);
}

Reply Ask(uint16_t port, const std::string& request) {
  Conn c(port);
  EXPECT_TRUE(c.connected());
  EXPECT_TRUE(c.Send(request));
  return c.Read();
}

class HttpServerTest : public ::testing::Test {
 protected:
  void StartServer(HttpServerOptions o = {}, bool load = true) {
    if (load) {
      ASSERT_TRUE(agent_.LoadUnsigned(BundleBytes()).ok());
    }
    o.listen = "127.0.0.1:0";
    auto s = HttpServer::Start(agent_, std::move(o));
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    port_ = server_->port();
    ASSERT_NE(port_, 0);
  }
  HttpServerOptions Trusting() {
    HttpServerOptions o;
    o.trusted_proxies = {"127.0.0.1/32"};
    return o;
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  Agent agent_{AgentOptions{}};
  std::unique_ptr<HttpServer> server_;
  uint16_t port_ = 0;
};

TEST_F(HttpServerTest, HealthAndReadiness) {
  StartServer({}, /*load=*/false);
  Reply r = Ask(port_, Get("/healthz"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  r = Ask(port_, Get("/readyz"));
  EXPECT_EQ(r.status, 503);
  // Fail closed with no bundle: every decision is a 503 deny.
  r = Ask(port_, Post("/v1/check", R"({"method":"GET","path":"/v1/open"})"));
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"status\":503"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("no_policy"), std::string::npos) << r.body;

  ASSERT_TRUE(agent_.LoadUnsigned(BundleBytes()).ok());
  r = Ask(port_, Get("/readyz"));
  EXPECT_EQ(r.status, 200);
  r = Ask(port_, Get("/healthz", {}, "HEAD"));
  EXPECT_EQ(r.status, 200);
  r = Ask(port_, Post("/healthz", ""));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "GET, HEAD");
  r = Ask(port_, Get("/nope"));
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("not_found"), std::string::npos);
}

TEST_F(HttpServerTest, CheckDecidesRequestJson) {
  StartServer();
  Reply r = Ask(port_, Post("/v1/check", R"({"method":"GET","path":"/v1/open"})"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_NE(r.body.find("\"decision\":\"allow\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"route\":\"a.open\""), std::string::npos) << r.body;

  r = Ask(port_, Post("/v1/check", R"({"method":"GET","path":"/v1/flag"})"));
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"decision\":\"deny\",\"status\":400"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("x-flag must be on"), std::string::npos);

  r = Ask(port_,
          Post("/v1/check", R"({"method":"GET","path":"/v1/flag","headers":{"X-Flag":"on"}})"));
  EXPECT_NE(r.body.find("\"decision\":\"allow\""), std::string::npos) << r.body;

  r = Ask(port_, Post("/v1/check", R"({"method":"GET","path":"/v1/nowhere"})"));
  EXPECT_NE(r.body.find("\"status\":404"), std::string::npos) << r.body;

  // Malformed inputs: 400 with an error JSON.
  for (const char* bad : {"", "{", "[]", R"({"method":"GET"})", R"({"method":1,"path":"/"})",
                          R"({"method":"GET","path":"/","bogus":1})"}) {
    r = Ask(port_, Post("/v1/check", bad));
    EXPECT_EQ(r.status, 400) << bad;
    EXPECT_NE(r.body.find("\"error\":\"invalid_request\""), std::string::npos) << r.body;
  }
  r = Ask(port_, Get("/v1/check"));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.header("allow"), "POST");
}

TEST_F(HttpServerTest, CheckCombinedRequestAndResponse) {
  StartServer();
  const std::string req = R"("request":{"method":"GET","path":"/v1/resp"})";
  Reply r = Ask(port_, Post("/v1/check", "{" + req +
                                             R"(,"response":{"status":200,"headers":)"
                                             R"({"content-type":"application/json"},"body":{}}})"));
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"decision\":\"allow\""), std::string::npos) << r.body;
  r = Ask(port_, Post("/v1/check", "{" + req +
                                       R"(,"response":{"status":200,"headers":)"
                                       R"({"content-type":"text/html"},"body":"<p>"}})"));
  EXPECT_NE(r.body.find("\"status\":502"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("invalid_response"), std::string::npos) << r.body;
  // Without a response: the request alone.
  r = Ask(port_, Post("/v1/check", "{" + req + "}"));
  EXPECT_NE(r.body.find("\"decision\":\"allow\""), std::string::npos) << r.body;
  // A denied request is the answer; its response is not looked at.
  r = Ask(port_,
          Post("/v1/check",
               R"({"request":{"method":"GET","path":"/v1/flag"},"response":{"status":200}})"));
  EXPECT_NE(r.body.find("\"status\":400"), std::string::npos) << r.body;
  // Malformed combined forms.
  for (const std::string& bad : std::vector<std::string>{
           "{" + req + R"(,"extra":1})", "{" + req + R"(,"response":{"status":"x"}})",
           R"({"request":{"path":"/v1/open"}})"}) {
    r = Ask(port_, Post("/v1/check", bad));
    EXPECT_EQ(r.status, 400) << bad << " -> " << r.body;
  }
}

TEST_F(HttpServerTest, ForwardAuthEndpoints) {
  StartServer(Trusting());
  // Traefik / Caddy.
  Reply r =
      Ask(port_, Get("/v1/forward-auth", {"X-Forwarded-Method: GET", "X-Forwarded-Uri: /v1/open"}));
  EXPECT_EQ(r.status, 200);
  EXPECT_TRUE(r.body.empty());
  r = Ask(port_, Get("/v1/forward-auth", {"X-Forwarded-Uri: /v1/flag"}));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, R"({"error":"invalid_request","error_description":"x-flag must be on"})");
  r = Ask(port_, Get("/v1/forward-auth", {"X-Forwarded-Uri: /v1/nowhere"}));
  EXPECT_EQ(r.status, 404);
  // Any method: Traefik sends the original one.
  r = Ask(port_, Post("/v1/forward-auth", "{}", {"X-Forwarded-Uri: /v1/items"}));
  EXPECT_EQ(r.status, 200);
  r = Ask(port_,
          Get("/v1/forward-auth", {"X-Forwarded-Host: api.example", "X-Forwarded-Uri: /v1/host"}));
  EXPECT_EQ(r.status, 200);
  r = Ask(port_, Get("/v1/forward-auth", {"X-Forwarded-Uri: /v1/host"}));  // Host: agent
  EXPECT_EQ(r.status, 403);
  // TLS facts from a trusted proxy (the test client is 127.0.0.1).
  r = Ask(port_,
          Get("/v1/forward-auth", {"X-Forwarded-Uri: /v1/tls", "X-Vakt-TLS-Version: TLSv1.3"}));
  EXPECT_EQ(r.status, 200);
  r = Ask(port_,
          Get("/v1/forward-auth", {"X-Forwarded-Uri: /v1/cert", "X-Vakt-TLS-Version: TLSv1.3",
                                   "X-Vakt-Client-Cert: " + EscapeCert(Cert().cert_pem)}));
  EXPECT_EQ(r.status, 200) << r.body;
  r = Ask(port_,
          Get("/v1/forward-auth", {"X-Forwarded-Uri: /v1/cert", "X-Vakt-TLS-Version: TLSv1.3"}));
  EXPECT_EQ(r.status, 401);
  // Missing URI: fail closed.
  r = Ask(port_, Get("/v1/forward-auth"));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("x-forwarded-uri"), std::string::npos) << r.body;

  // nginx auth_request: only 2xx/401/403, the real status beside.
  r = Ask(port_, Get("/v1/auth-request", {"X-Original-Method: GET", "X-Original-URI: /v1/open"}));
  EXPECT_EQ(r.status, 200);
  r = Ask(port_, Get("/v1/auth-request", {"X-Original-URI: /v1/nowhere"}));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.header("x-vakt-status"), "404");
  r = Ask(port_,
          Get("/v1/auth-request", {"X-Original-URI: /v1/cert", "X-Vakt-TLS-Version: TLSv1.3"}));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.header("x-vakt-status"), "401");
  EXPECT_EQ(r.header("x-vakt-error"), "invalid_token");
  r = Ask(port_, Get("/v1/auth-request", {"X-Forwarded-Uri: /v1/open"}));  // wrong dialect
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.header("x-vakt-status"), "400");

  // /v1/denied: the real status back.
  r = Ask(port_, Get("/v1/denied", {"X-Vakt-Status: 404", "X-Vakt-Error: not_found",
                                    "X-Vakt-Error-Description: no such thing"}));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body, R"({"error":"not_found","error_description":"no such thing"})");
}

TEST_F(HttpServerTest, UntrustedPeerTlsFactsAreIgnoredAndCounted) {
  StartServer();  // no trusted proxies
  Reply r = Ask(
      port_, Get("/v1/forward-auth", {"X-Forwarded-Uri: /v1/tls", "X-Vakt-TLS-Version: TLSv1.3"}));
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("insecure_transport"), std::string::npos) << r.body;
  r = Ask(port_, Get("/v1/denied", {"X-Vakt-Status: 404"}));
  EXPECT_EQ(r.status, 403);
  r = Ask(port_, Get("/metrics"));
  EXPECT_NE(r.body.find("vakt_agent_forward_auth_untrusted_tls_headers_total 1\n"),
            std::string::npos)
      << r.body;
}

TEST_F(HttpServerTest, MetricsAfterDecisions) {
  HttpServerOptions o;
  o.extra_metrics = [](std::string* out) { *out += "vakt_agent_test_hook 42\n"; };
  StartServer(std::move(o));
  EXPECT_EQ(Ask(port_, Post("/v1/check", R"({"method":"GET","path":"/v1/open"})")).status, 200);
  EXPECT_EQ(Ask(port_, Post("/v1/check", R"({"method":"GET","path":"/v1/open"})")).status, 200);
  EXPECT_EQ(Ask(port_, Get("/v1/forward-auth", {"X-Forwarded-Uri: /v1/flag"})).status, 400);
  EXPECT_EQ(Ask(port_, Get("/v1/forward-auth")).status, 400);  // refused before the policy
  Reply r = Ask(port_, Get("/metrics"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const std::string& m = r.body;
  for (const char* want :
       {"vakt_agent_decisions_total{route=\"a.open\",status=\"200\",outcome=\"allow\"} 2\n",
        "vakt_agent_decisions_total{route=\"a.flag\",status=\"400\",outcome=\"deny\"} 1\n",
        "vakt_agent_decision_duration_seconds_count 3\n", "vakt_agent_replay_cache_entries 0\n",
        "vakt_agent_token_cache_entries 0\n", "vakt_agent_revocation_entries 0\n",
        "vakt_agent_http_requests_total{endpoint=\"check\"} 2\n",
        "vakt_agent_http_requests_total{endpoint=\"forward_auth\"} 2\n",
        "vakt_agent_http_requests_total{endpoint=\"metrics\"} 1\n",
        "vakt_agent_forward_auth_refused_total 1\n",
        "vakt_agent_forward_auth_untrusted_tls_headers_total 0\n", "vakt_agent_bundle_active 1\n",
        "vakt_agent_test_hook 42\n"}) {
    EXPECT_NE(m.find(want), std::string::npos) << want << "\n" << m;
  }
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequests) {
  StartServer();
  Conn c(port_);
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.Send(Get("/healthz")));
    Reply r = c.Read();
    EXPECT_EQ(r.status, 200) << i;
  }
  // Pipelined: both answered in order.
  ASSERT_TRUE(c.Send(Get("/healthz") + Get("/nope")));
  EXPECT_EQ(c.Read().status, 200);
  EXPECT_EQ(c.Read().status, 404);
  ASSERT_TRUE(c.Send(Get("/healthz", {"Connection: close"})));
  EXPECT_EQ(c.Read().status, 200);
  EXPECT_TRUE(c.ClosedByPeer());
}

TEST_F(HttpServerTest, OversizedBodyIs413) {
  HttpServerOptions o;
  o.max_body_bytes = 1024;
  StartServer(std::move(o));
  Reply r = Ask(port_, Post("/v1/check", std::string(4096, ' ')));
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("1024 bytes"), std::string::npos) << r.body;
  // Chunked bodies are held to the same limit.
  Conn c(port_);
  ASSERT_TRUE(
      c.Send("POST /v1/check HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
             "800\r\n" +
             std::string(2048, ' ') + "\r\n0\r\n\r\n"));
  EXPECT_EQ(c.Read().status, 413);
  // At the limit it is read (and decided: here a malformed JSON).
  r = Ask(port_, Post("/v1/check", std::string(1024, ' ')));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(Ask(port_, Get("/healthz")).status, 200);
}

// `Expect: 100-continue`: the interim answer, then the body is read.
TEST_F(HttpServerTest, ExpectContinueIsAnswered) {
  StartServer();
  const std::string body = R"({"method":"GET","path":"/v1/open"})";
  Conn c(port_);
  ASSERT_TRUE(
      c.Send("POST /v1/check HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
             "Content-Length: " +
             std::to_string(body.size()) + "\r\n\r\n"));
  Reply interim = c.Read();
  EXPECT_EQ(interim.status, 100);
  ASSERT_TRUE(c.Send(body));
  Reply r = c.Read();
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("\"decision\":\"allow\""), std::string::npos) << r.body;
  // Too large: 413 at once, no 100.
  Conn big(port_);
  ASSERT_TRUE(
      big.Send("POST /v1/check HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
               "Content-Length: 99999999\r\n\r\n"));
  EXPECT_EQ(big.Read().status, 413);
}

TEST_F(HttpServerTest, OversizedHeadersAre431) {
  HttpServerOptions o;
  o.max_header_bytes = 4096;
  StartServer(std::move(o));
  Reply r = Ask(port_, Get("/healthz", {"X-Big: " + std::string(8192, 'a')}));
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(Ask(port_, Get("/healthz", {"X-Small: a"})).status, 200);
}

TEST_F(HttpServerTest, MalformedHttpIs400AndServingGoesOn) {
  StartServer();
  for (const char* bad :
       {"GARBAGE\r\n\r\n", "GET / HTTP/9.9\r\n\r\n", "GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
        "POST /v1/check HTTP/1.1\r\nContent-Length: x\r\n\r\n",
        "GET /healthz HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"}) {
    Reply r = Ask(port_, bad);
    EXPECT_EQ(r.status, 400) << bad;
  }
  EXPECT_EQ(Ask(port_, Get("/healthz")).status, 200);
}

TEST_F(HttpServerTest, SlowClientIsCutOffByTheReadTimeout) {
  HttpServerOptions o;
  o.read_timeout_ms = 300;
  o.idle_timeout_ms = 300;
  StartServer(std::move(o));
  {
    // Half a request, then nothing: the server closes the connection.
    Conn slow(port_);
    ASSERT_TRUE(slow.Send("GET /healthz HTTP/1.1\r\nHost: a\r\n"));
    EXPECT_TRUE(slow.ClosedByPeer());
  }
  {
    // A byte at a time, slower than the read timeout allows in total.
    Conn drip(port_);
    bool closed = false;
    const std::string req = Get("/healthz");
    for (size_t i = 0; i < req.size() && !closed; ++i) {
      if (!drip.Send(req.substr(i, 1))) closed = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (!closed) closed = drip.Read().status == 0;
    EXPECT_TRUE(closed) << "a request dripped over ~" << req.size() * 50 << " ms was answered";
  }
  {
    // An idle keep-alive connection is closed too.
    Conn idle(port_);
    ASSERT_TRUE(idle.Send(Get("/healthz")));
    EXPECT_EQ(idle.Read().status, 200);
    EXPECT_TRUE(idle.ClosedByPeer());
  }
  EXPECT_EQ(Ask(port_, Get("/healthz")).status, 200);
  Reply m = Ask(port_, Get("/metrics"));
  EXPECT_EQ(m.body.find("vakt_agent_http_timeouts_total 0\n"), std::string::npos) << m.body;
}

TEST_F(HttpServerTest, ConnectionsAreBounded) {
  HttpServerOptions o;
  o.max_connections = 3;
  StartServer(std::move(o));
  std::vector<std::unique_ptr<Conn>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<Conn>(port_));
    ASSERT_TRUE(held.back()->Send(Get("/healthz")));
    ASSERT_EQ(held.back()->Read().status, 200) << i;  // accepted and kept alive
  }
  {
    Conn extra(port_);
    ASSERT_TRUE(extra.connected());  // the kernel accepts; the server closes it
    EXPECT_TRUE(extra.ClosedByPeer());
  }
  held.pop_back();
  // The slot comes back once the server has seen the close (bounded retry).
  bool served = false;
  for (int attempt = 0; attempt < 100 && !served; ++attempt) {
    Conn again(port_);
    if (again.Send(Get("/healthz")) && again.Read().status == 200)
      served = true;
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(served);
  Reply m;
  held.clear();
  for (int attempt = 0; attempt < 100 && m.status != 200; ++attempt) {
    m = Ask(port_, Get("/metrics"));
    if (m.status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(m.body.find("vakt_agent_http_connections_rejected_total 0\n"), std::string::npos)
      << m.body;
}

// Several clients on keep-alive connections while the bundle is swapped
// under them: every answer is a whole, correct decision.
TEST_F(HttpServerTest, ConcurrentClientsDuringBundleSwaps) {
  StartServer();
  constexpr int kClients = 6;
  constexpr int kRequests = 150;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      Conn c(port_);
      for (int i = 0; i < kRequests; ++i) {
        bool allow = (i + t) % 2 == 0;
        std::string body = allow ? R"({"method":"GET","path":"/v1/open"})"
                                 : R"({"method":"GET","path":"/v1/flag"})";
        if (!c.Send(Post("/v1/check", body))) return;
        Reply r = c.Read();
        if (r.status != 200) return;
        bool got_allow = r.body.find("\"decision\":\"allow\"") != std::string::npos;
        bool got_400 = r.body.find("\"status\":400") != std::string::npos;
        if (allow ? got_allow : got_400) ++ok;
      }
    });
  }
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(agent_.LoadUnsigned(BundleBytes()).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), kClients * kRequests);
}

TEST_F(HttpServerTest, StopClosesConnectionsAndIsIdempotent) {
  StartServer();
  Conn c(port_);
  ASSERT_TRUE(c.Send(Get("/healthz")));
  EXPECT_EQ(c.Read().status, 200);
  server_->Stop();
  EXPECT_TRUE(c.ClosedByPeer());
  server_->Stop();
  Conn after(port_);
  EXPECT_FALSE(after.connected());
}

TEST(HttpServerStart, RefusesBadOptions) {
  Agent agent{AgentOptions{}};
  struct Case {
    std::function<void(HttpServerOptions&)> set;
    StatusCode code;
  };
  std::vector<Case> cases = {
      {[](HttpServerOptions& o) { o.listen = "nope"; }, StatusCode::kInvalidArgument},
      {[](HttpServerOptions& o) { o.listen = "127.0.0.1:99999"; }, StatusCode::kInvalidArgument},
      {[](HttpServerOptions& o) { o.listen = "example.com:80"; }, StatusCode::kInvalidArgument},
      {[](HttpServerOptions& o) { o.listen = "127.0.0.1:"; }, StatusCode::kInvalidArgument},
      {[](HttpServerOptions& o) { o.threads = 0; }, StatusCode::kInvalidArgument},
      {[](HttpServerOptions& o) { o.max_connections = 0; }, StatusCode::kInvalidArgument},
      {[](HttpServerOptions& o) { o.max_header_bytes = 10; }, StatusCode::kInvalidArgument},
      {[](HttpServerOptions& o) { o.read_timeout_ms = 0; }, StatusCode::kInvalidArgument},
      {[](HttpServerOptions& o) { o.trusted_proxies = {"x"}; }, StatusCode::kInvalidArgument},
      {[](HttpServerOptions& o) { o.listen = "192.0.2.1:0"; }, StatusCode::kIoError},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    HttpServerOptions o;
    o.listen = "127.0.0.1:0";
    cases[i].set(o);
    auto s = HttpServer::Start(agent, o);
    EXPECT_FALSE(s.ok()) << "case " << i;
    if (!s.ok()) {
      EXPECT_EQ(s.status().code(), cases[i].code) << s.status().ToString();
    }
  }
  // Two servers cannot share a port.
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  auto first = HttpServer::Start(agent, o);
  ASSERT_TRUE(first.ok());
  o.listen = "127.0.0.1:" + std::to_string((*first)->port());
  auto second = HttpServer::Start(agent, o);
  EXPECT_FALSE(second.ok());
}

}  // namespace
}  // namespace vakt::agent
