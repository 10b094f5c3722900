// The enforcing proxy (agent/proxy.h) and its upstream client
// (agent/upstream.h), against a scripted upstream on loopback: allowed
// requests reach the service and its response comes back; denied requests
// never reach it; a response that fails the route's response rules is
// withheld; a dead, slow, oversized or malformed upstream is a 502/504;
// forwarded TLS facts count only from trusted proxies; a client cannot
// redirect the decision with its own X-Original-* headers.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include "agent/http_server.h"
#include "agent/proxy.h"
#include "agent/upstream.h"
#include "compiler/compile.h"
#include "tests/proc_harness.h"

namespace vakt::agent {
namespace {

constexpr char kPolicy[] = R"(package t
api a "/" {
  route item GET "/items/{id}" {
    tls: require request.tls.version == "TLSv1.3" else deny 403 insecure_transport "TLS 1.3 only"
    on response {
      mine: require response.json.owner == params.id
        else deny 403 access_denied "the item belongs to someone else; withheld"
    }
  }
  route add POST "/items" {}
}
)";

std::string Compile() {
  compiler::SourceSet sources;
  compiler::AddSource(sources, "t.vakt", kPolicy);
  dsl::Diagnostics diags;
  auto comp = compiler::Compile(sources, {}, diags);
  EXPECT_FALSE(diags.HasErrors()) << diags.Format();
  return comp ? comp->bytes : "";
}

// A scripted HTTP upstream: answers each request with reply(request text).
class Upstream {
 public:
  explicit Upstream(std::function<std::string(const std::string&)> reply)
      : reply_(std::move(reply)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    ::listen(fd_, 16);
    thread_ = std::thread([this] { Serve(); });
  }
  ~Upstream() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      // Read the head, then Content-Length bytes of body.
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      size_t head = req.find("\r\n\r\n");
      size_t cl = req.find("Content-Length: ");
      if (head != std::string::npos && cl != std::string::npos) {
        size_t want = std::stoul(req.substr(cl + 16)) + head + 4;
        while (req.size() < want) {
          ssize_t n = ::recv(c, buf, sizeof buf, 0);
          if (n <= 0) break;
          req.append(buf, static_cast<size_t>(n));
        }
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        requests_.push_back(req);
      }
      std::string out = reply_(req);
      ::send(c, out.data(), out.size(), MSG_NOSIGNAL);
      ::close(c);
    }
  }
  std::function<std::string(const std::string&)> reply_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

std::string Json(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) +
         " X\r\nContent-Type: application/json\r\nX-Service: records\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(agent_.LoadUnsigned(Compile()).ok()); }

  ProxyAnswer Send(const Upstream& up, std::string method, std::string target, bool trusted,
                   std::vector<std::pair<std::string, std::string>> extra = {},
                   std::string body = "", int timeout_ms = 2000, size_t max_body = 1 << 20) {
    UpstreamOptions o;
    o.url = up.url();
    o.response_timeout_ms = timeout_ms;
    o.max_response_body_bytes = max_body;
    auto client = UpstreamClient::Make(o);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    headers_ = {{"host", "api.example"}, {"x-vakt-tls-version", "TLSv1.3"}};
    for (auto& h : extra) headers_.push_back(std::move(h));
    method_ = std::move(method);
    target_ = std::move(target);
    body_ = std::move(body);
    AuthRequestIn in;
    in.method = method_;
    in.target = target_;
    for (const auto& [n, v] : headers_) in.headers.emplace_back(n, v);
    in.body = body_;
    in.peer_trusted = trusted;
    return ProxyRequest(agent_, *client, in, ForwardAuthOptions{});
  }

  Agent agent_{AgentOptions{}};
  std::vector<std::pair<std::string, std::string>> headers_;
  std::string method_, target_, body_;
};

TEST_F(ProxyTest, AllowedRequestReachesTheServiceAndItsResponseComesBack) {
  Upstream up([](const std::string&) { return Json(200, R"({"owner":"anna","n":1})"); });
  ProxyAnswer a = Send(up, "GET", "/items/anna?x=1", true, {{"x-request-id", "r-1"}});
  EXPECT_EQ(a.status, 200);
  EXPECT_TRUE(a.from_upstream);
  EXPECT_EQ(a.body, R"({"owner":"anna","n":1})");
  bool service_header = false;
  for (const auto& [n, v] : a.headers) service_header |= (n == "X-Service" && v == "records");
  EXPECT_TRUE(service_header);
  auto reqs = up.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].rfind("GET /items/anna?x=1 HTTP/1.1\r\n", 0), 0u) << reqs[0];
  EXPECT_NE(reqs[0].find("x-request-id: r-1"), std::string::npos);
  // The agent's TLS-fact headers are not passed on.
  EXPECT_EQ(reqs[0].find("x-vakt-tls-version"), std::string::npos) << reqs[0];
}

TEST_F(ProxyTest, ResponseFailingTheResponseRulesIsWithheld) {
  Upstream up([](const std::string&) { return Json(200, R"({"owner":"bob","secret":"x"})"); });
  ProxyAnswer a = Send(up, "GET", "/items/anna", true);
  EXPECT_EQ(a.status, 403);
  EXPECT_FALSE(a.from_upstream);
  EXPECT_EQ(a.body.find("secret"), std::string::npos);
  EXPECT_NE(a.body.find("withheld"), std::string::npos) << a.body;
  EXPECT_EQ(up.requests().size(), 1u);  // the service answered; the answer was stopped
}

TEST_F(ProxyTest, DeniedRequestsNeverReachTheService) {
  Upstream up([](const std::string&) { return Json(200, R"({"owner":"anna"})"); });
  // An unknown route.
  EXPECT_EQ(Send(up, "GET", "/admin", true).status, 404);
  // TLS facts from an untrusted peer are ignored: the route's TLS rule denies.
  ProxyAnswer a = Send(up, "GET", "/items/anna", false);
  EXPECT_EQ(a.status, 403);
  EXPECT_NE(a.body.find("insecure_transport"), std::string::npos) << a.body;
  EXPECT_TRUE(up.requests().empty());
}

TEST_F(ProxyTest, ClientOriginalHeadersCannotRedirectTheDecision) {
  Upstream up([](const std::string&) { return Json(200, R"({"owner":"anna"})"); });
  // The client claims its request was for an allowed path; the decision is
  // on the real request line (an unknown route) and nothing is forwarded.
  ProxyAnswer a = Send(up, "GET", "/admin", true,
                       {{"X-Original-URI", "/items/anna"}, {"X-Original-Method", "GET"}});
  EXPECT_EQ(a.status, 404);
  EXPECT_TRUE(up.requests().empty());
}

TEST_F(ProxyTest, BodiesAreForwarded) {
  Upstream up([](const std::string&) { return Json(201, R"({"id":"n1"})"); });
  ProxyAnswer a = Send(up, "POST", "/items", true, {{"content-type", "application/json"}},
                       R"({"a":1})");
  EXPECT_EQ(a.status, 201);
  auto reqs = up.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_NE(reqs[0].find("Content-Length: 7\r\n"), std::string::npos);
  EXPECT_EQ(reqs[0].substr(reqs[0].size() - 7), R"({"a":1})");
}

TEST_F(ProxyTest, BrokenUpstreamsFailClosed) {
  // Nothing listens: 502.
  std::string dead_url;
  {
    Upstream gone([](const std::string&) { return std::string(); });
    dead_url = gone.url();
  }
  UpstreamOptions o;
  o.url = dead_url;
  auto dead = UpstreamClient::Make(o);
  ASSERT_TRUE(dead.ok());
  std::vector<std::pair<std::string, std::string>> h = {{"host", "api.example"},
                                                        {"x-vakt-tls-version", "TLSv1.3"}};
  AuthRequestIn in;
  in.method = "GET";
  in.target = "/items/anna";
  for (const auto& [n, v] : h) in.headers.emplace_back(n, v);
  in.peer_trusted = true;
  ProxyAnswer a = ProxyRequest(agent_, *dead, in, ForwardAuthOptions{});
  EXPECT_EQ(a.status, 502);
  EXPECT_NE(a.body.find("bad_gateway"), std::string::npos);

  // Garbage instead of HTTP: 502.
  Upstream garbage([](const std::string&) { return std::string("NOT HTTP AT ALL\r\n\r\n"); });
  EXPECT_EQ(Send(garbage, "GET", "/items/anna", true).status, 502);
  // Closed mid-body: 502.
  Upstream cut([](const std::string&) {
    return std::string("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"owner\"");
  });
  EXPECT_EQ(Send(cut, "GET", "/items/anna", true).status, 502);
  // Over the body limit: 502, nothing of it passed on.
  Upstream big([](const std::string&) { return Json(200, std::string(5000, 'x')); });
  ProxyAnswer b = Send(big, "GET", "/items/anna", true, {}, "", 2000, 1000);
  EXPECT_EQ(b.status, 502) << b.body;
  EXPECT_EQ(b.body.find("xxxx"), std::string::npos);
  // Too slow: 504.
  Upstream slow([](const std::string&) {
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    return Json(200, R"({"owner":"anna"})");
  });
  ProxyAnswer s = Send(slow, "GET", "/items/anna", true, {}, "", 100);
  EXPECT_EQ(s.status, 504);
  EXPECT_NE(s.body.find("upstream_timeout"), std::string::npos) << s.body;
}

// The daemon's wiring: an HttpServer whose proxy hook is ProxyRequest.
TEST_F(ProxyTest, ServerInProxyModeSendsEveryPathThroughTheProxy) {
  Upstream up([](const std::string& req) {
    if (req.rfind("GET /healthz", 0) == 0) return std::string(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nservice\n");
    return Json(200, R"({"owner":"anna"})");
  });
  UpstreamOptions uo;
  uo.url = up.url();
  auto client = UpstreamClient::Make(uo);
  ASSERT_TRUE(client.ok());
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  o.trusted_proxies = {"127.0.0.1/32"};
  UpstreamClient& c = *client;
  o.proxy = [this, &c](const AuthRequestIn& in) {
    ProxyAnswer a = ProxyRequest(agent_, c, in, ForwardAuthOptions{});
    ProxiedAnswer p;
    p.answer.status = a.status;
    p.answer.headers = a.headers;
    p.answer.body = a.body;
    p.verbatim = a.from_upstream;
    return p;
  };
  auto server = HttpServer::Start(agent_, std::move(o));
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  const uint16_t port = (*server)->port();
  std::string ok = testing_proc::HttpExchange(port,
                            "GET /items/anna HTTP/1.1\r\nHost: api.example\r\n"
                            "X-Vakt-TLS-Version: TLSv1.3\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(ok.rfind("HTTP/1.1 200", 0), 0u) << ok;
  EXPECT_NE(ok.find("X-Service: records"), std::string::npos) << ok;
  EXPECT_NE(ok.find(R"({"owner":"anna"})"), std::string::npos);
  // /healthz is the service's here, not the agent's (and it is not a route: 404).
  std::string health = testing_proc::HttpExchange(port,
                                "GET /healthz HTTP/1.1\r\nHost: api.example\r\n"
                                "Connection: close\r\n\r\n");
  EXPECT_EQ(health.rfind("HTTP/1.1 404", 0), 0u) << health;
  EXPECT_EQ(health.find("service"), std::string::npos);
  // A deny is JSON with the verdict's status.
  std::string plain = testing_proc::HttpExchange(port,
                               "GET /items/anna HTTP/1.1\r\nHost: api.example\r\n"
                               "Connection: close\r\n\r\n");
  EXPECT_EQ(plain.rfind("HTTP/1.1 403", 0), 0u) << plain;
  EXPECT_NE(plain.find("application/json"), std::string::npos);
  (*server)->Stop();
}

TEST(Upstream, UrlsAreChecked) {
  for (const char* bad : {"https://127.0.0.1:1", "127.0.0.1:80", "http://127.0.0.1",
                          "http://127.0.0.1:8x", "http://:80", "http://127.0.0.1:80/path"}) {
    UpstreamOptions o;
    o.url = bad;
    EXPECT_EQ(UpstreamClient::Make(o).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  UpstreamOptions o;
  o.url = "http://[::1]:8080";
  auto c = UpstreamClient::Make(o);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->host_header(), "[::1]:8080");
  EXPECT_TRUE(IsHopByHop("Transfer-Encoding"));
  EXPECT_TRUE(IsHopByHop("connection"));
  EXPECT_FALSE(IsHopByHop("content-type"));
}

TEST(Upstream, HeadersThatWouldSplitTheRequestAreRefused) {
  Upstream up([](const std::string&) { return Json(200, "{}"); });
  UpstreamOptions o;
  o.url = up.url();
  auto c = UpstreamClient::Make(o);
  ASSERT_TRUE(c.ok());
  auto r = c->RoundTrip("GET", "/x", {{"x-a", "1\r\nX-Injected: 1"}}, "");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(c->RoundTrip("GET", "/x y", {}, "").status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(up.requests().empty());
}

}  // namespace
}  // namespace vakt::agent
