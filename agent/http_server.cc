// The agent's HTTP/1.1 server (http_server.h) on Boost.Beast: one shared
// io_context run by N threads, one strand per connection, one request in
// flight per connection. Decisions are microseconds of CPU, so they run on
// the I/O thread; nothing is queued.
//
// Each connection: wait for the first byte of a request (idle timeout),
// read the whole request (read timeout, header and body limits), answer
// (write timeout = read timeout), then keep-alive or close. A request the
// parser refuses gets 400/413/431 and the connection is closed after the
// answer (the unread rest is drained briefly so the client sees it).
// Asio/Beast are used with error codes only; a thread that still catches an
// exception logs it and goes on running.
#include "agent/http_server.h"

#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <exception>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "bytecode/request_json.h"

namespace vakt::agent {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

enum Endpoint : size_t {
  kHealthz,
  kReadyz,
  kMetrics,
  kCheck,
  kForwardAuth,
  kAuthRequest,
  kDenied,
  kUnknown,
  kProxy,
  kEndpoints
};
constexpr std::array<const char*, kEndpoints> kEndpointNames = {
    "healthz", "readyz", "metrics", "check", "forward_auth", "auth_request", "denied", "other",
    "proxy"};

Endpoint EndpointOf(std::string_view path) {
  if (path == "/healthz") return kHealthz;
  if (path == "/readyz") return kReadyz;
  if (path == "/metrics") return kMetrics;
  if (path == "/v1/check") return kCheck;
  if (path == "/v1/forward-auth") return kForwardAuth;
  if (path == "/v1/auth-request") return kAuthRequest;
  if (path == "/v1/denied") return kDenied;
  return kUnknown;
}

// Splits "host:port" / "[v6]:port".
Result<tcp::endpoint> ParseListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 >= listen.size() || colon + 6 < listen.size()) {
    return InvalidArgument("listen address `" + listen + "` is not HOST:PORT");
  }
  std::string host = listen.substr(0, colon);
  std::string port_text = listen.substr(colon + 1);
  unsigned port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return InvalidArgument("bad port in `" + listen + "`");
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return InvalidArgument("port over 65535 in `" + listen + "`");
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  net::ip::address addr = net::ip::make_address(host, ec);
  if (ec) return InvalidArgument("`" + host + "` is not an IP address (listen `" + listen + "`)");
  return tcp::endpoint(addr, static_cast<uint16_t>(port));
}

std::string_view SV(beast::string_view s) { return std::string_view(s.data(), s.size()); }

std::string ErrorBody(std::string_view error, std::string_view description) {
  return ErrorJson(error, description);
}

}  // namespace

class Session;

struct HttpServer::Impl {
  Impl(Agent& a, HttpServerOptions o, TrustedProxies p)
      : agent(a), opts(std::move(o)), proxies(std::move(p)) {}

  Agent& agent;
  HttpServerOptions opts;
  TrustedProxies proxies;

  // Counters (relaxed atomics: the request path takes no lock).
  std::atomic<size_t> connections{0};
  std::array<std::atomic<uint64_t>, kEndpoints> requests{};
  std::atomic<uint64_t> rejected_connections{0};
  std::atomic<uint64_t> timeouts{0};
  std::atomic<uint64_t> bad_requests{0};       // 400 from the parser
  std::atomic<uint64_t> too_large_bodies{0};   // 413
  std::atomic<uint64_t> too_large_headers{0};  // 431
  std::atomic<uint64_t> untrusted_tls_headers{0};
  std::atomic<uint64_t> forward_refused{0};  // translation errors
  std::atomic<bool> stopping{false};

  // Destroyed by Stop() after the threads are joined: pending handlers (and
  // the sessions they hold) go with it while the fields above still live.
  std::unique_ptr<net::io_context> ioc;
  std::unique_ptr<tcp::acceptor> acceptor;
  std::unique_ptr<net::steady_timer> accept_backoff;
  std::vector<std::thread> threads;
  std::mutex stop_mu;

  void DoAccept();
  void OnAccept(tcp::socket socket);
  void Run();
  void RenderExtra(std::string* out) const;
};

namespace {

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

Response MakeResponse(unsigned version, http::status status, std::string body,
                      std::string_view content_type) {
  Response res{status, version};
  res.set(http::field::server, "vakt-agent");
  if (!content_type.empty()) {
    res.set(http::field::content_type,
            beast::string_view(content_type.data(), content_type.size()));
  }
  res.body() = std::move(body);
  return res;
}

Response JsonError(unsigned version, http::status status, std::string_view error,
                   std::string_view description) {
  return MakeResponse(version, status, ErrorBody(error, description), "application/json");
}

Response FromAnswer(unsigned version, const HttpAnswer& a) {
  Response res{static_cast<http::status>(a.status), version};
  res.set(http::field::server, "vakt-agent");
  for (const auto& [name, value] : a.headers) res.insert(name, value);
  if (!a.body.empty()) {
    res.set(http::field::content_type, "application/json");
    res.body() = a.body;
  }
  return res;
}

// The upstream's response as it is (the proxy hook's verbatim answer).
Response Verbatim(unsigned version, const HttpAnswer& a) {
  Response res{static_cast<http::status>(a.status), version};
  for (const auto& [name, value] : a.headers) res.insert(name, value);
  res.body() = a.body;
  return res;
}

// POST /v1/check: a request JSON, or {"request": ..., "response": ...}.
Response Check(Agent& agent, const Request& req) {
  const unsigned v = req.version();
  std::string_view body = req.body();
  // The combined form is recognised by its top-level members; anything
  // else goes to ParseRequestJson whole (which refuses unknown members).
  std::string request_text, response_text;
  bool combined = false;
  {
    thread_local simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (parser.parse(body.data(), body.size()).get(root) == simdjson::SUCCESS && root.is_object()) {
      simdjson::dom::object obj = root.get_object().value_unsafe();
      simdjson::dom::element request_el;
      if (obj.at_key("request").get(request_el) == simdjson::SUCCESS) {
        combined = true;
        for (auto field : obj) {
          if (field.key != "request" && field.key != "response") {
            return JsonError(v, http::status::bad_request, "invalid_request",
                             "unknown member `" + std::string(field.key) +
                                 "` (the combined form has `request` and `response`)");
          }
        }
        request_text = simdjson::minify(request_el);
        simdjson::dom::element response_el;
        if (obj.at_key("response").get(response_el) == simdjson::SUCCESS) {
          response_text = simdjson::minify(response_el);
        }
      }
    }
  }
  auto parsed = bytecode::ParseRequestJson(combined ? std::string_view(request_text) : body);
  if (!parsed.ok()) {
    return JsonError(v, http::status::bad_request, "invalid_request",
                     (combined ? "request: " : "") + parsed.status().message());
  }
  std::optional<bytecode::OwnedResponse> response;
  if (!response_text.empty()) {
    auto r = bytecode::ParseResponseJson(response_text);
    if (!r.ok()) {
      return JsonError(v, http::status::bad_request, "invalid_request",
                       "response: " + r.status().message());
    }
    response = std::move(r).value();
  }
  bytecode::HttpRequest view = parsed->View();
  Verdict verdict = agent.Decide(view, "check");
  if (response && verdict.allow) {
    bytecode::HttpResponse rview = response->View();
    verdict = agent.DecideResponse(verdict, view, rview, "check");
  }
  return MakeResponse(v, http::status::ok, verdict.ToJson(), "application/json");
}

}  // namespace

// One connection. Lives while a handler holds it; every handler runs on the
// connection's strand, so its members need no lock.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(HttpServer::Impl* srv, tcp::socket socket, std::string peer, bool trusted)
      : srv_(srv),
        stream_(std::move(socket)),
        buffer_(srv->opts.max_header_bytes + 16 * 1024),
        peer_(std::move(peer)),
        trusted_(trusted) {}
  ~Session() { srv_->connections.fetch_sub(1, std::memory_order_relaxed); }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->WaitRequest(); });
  }

 private:
  using ms = std::chrono::milliseconds;

  // Keep-alive wait: the idle timeout until the first byte of a request.
  void WaitRequest() {
    if (srv_->stopping.load()) return Close();
    if (buffer_.size() > 0) return ReadRequest();
    stream_.expires_after(ms(srv_->opts.idle_timeout_ms));
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) {
                                if (ec == beast::error::timeout) self->srv_->timeouts.fetch_add(1);
                                return self->Close();
                              }
                              self->buffer_.commit(n);
                              self->ReadRequest();
                            });
  }

  // The whole request, from its first byte, within the read timeout.
  void ReadRequest() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(
        std::min<size_t>(srv_->opts.max_header_bytes, std::numeric_limits<uint32_t>::max())));
    parser_->body_limit(srv_->opts.max_body_bytes);
    stream_.expires_after(ms(srv_->opts.read_timeout_ms));
    http::async_read_header(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  // A client that sent `Expect: 100-continue` (curl does for bodies over
  // 1 KiB) waits for the interim answer before the body: give it, within
  // the same read timeout, then read the body.
  void OnHeader(beast::error_code ec) {
    if (ec) return OnRead(ec);
    if (!parser_->is_done() &&
        beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      continue_.emplace(http::status::continue_, parser_->get().version());
      http::async_write(stream_, *continue_,
                        [self = shared_from_this()](beast::error_code ec, size_t) {
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted) {
      return Close();
    }
    if (ec == beast::error::timeout) {
      srv_->timeouts.fetch_add(1, std::memory_order_relaxed);
      spdlog::debug("http: {} read timeout, connection closed", peer_);
      return Close();
    }
    if (ec == http::error::body_limit) {
      srv_->too_large_bodies.fetch_add(1, std::memory_order_relaxed);
      return Reply(JsonError(11, http::status::payload_too_large, "invalid_request",
                             "the request body exceeds " +
                                 std::to_string(srv_->opts.max_body_bytes) + " bytes"),
                   false);
    }
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      srv_->too_large_headers.fetch_add(1, std::memory_order_relaxed);
      return Reply(JsonError(11, http::status::request_header_fields_too_large, "invalid_request",
                             "the request headers exceed " +
                                 std::to_string(srv_->opts.max_header_bytes) + " bytes"),
                   false);
    }
    if (ec) {
      if (ec.category() == beast::error_code(http::error::bad_method).category() ||
          ec == http::error::partial_message) {
        srv_->bad_requests.fetch_add(1, std::memory_order_relaxed);
        spdlog::debug("http: {} malformed request: {}", peer_, ec.message());
        return Reply(JsonError(11, http::status::bad_request, "invalid_request",
                               "malformed HTTP request: " + ec.message()),
                     false);
      }
      return Close();
    }
    Request req = parser_->release();
    const bool keep = req.keep_alive();
    Response res = Handle(req);
    if (req.method() == http::verb::head) {
      res.body().clear();
    }
    Reply(std::move(res), keep);
  }

  // The request as the forward-auth and proxy layers take it (views into
  // `req`, which outlives the call).
  AuthRequestIn AuthIn(const Request& req) const {
    AuthRequestIn in;
    in.method = SV(req.method_string());
    in.target = SV(req.target());
    for (const auto& f : req) in.headers.emplace_back(SV(f.name_string()), SV(f.value()));
    in.body = req.body();
    in.peer_trusted = trusted_;
    return in;
  }

  Response Handle(const Request& req) {
    const unsigned v = req.version();
    std::string_view target = SV(req.target());
    if (srv_->opts.proxy) {
      srv_->requests[kProxy].fetch_add(1, std::memory_order_relaxed);
      ProxiedAnswer pa = srv_->opts.proxy(AuthIn(req));
      return pa.verbatim ? Verbatim(v, pa.answer) : FromAnswer(v, pa.answer);
    }
    std::string_view path = target.substr(0, target.find('?'));
    Endpoint ep = EndpointOf(path);
    srv_->requests[ep].fetch_add(1, std::memory_order_relaxed);
    const bool get = req.method() == http::verb::get || req.method() == http::verb::head;
    auto not_allowed = [&](const char* allow) {
      Response r =
          JsonError(v, http::status::method_not_allowed, "invalid_request", "method not allowed");
      r.set(http::field::allow, allow);
      return r;
    };
    Agent& agent = srv_->agent;
    switch (ep) {
      case kHealthz:
        if (!get) return not_allowed("GET, HEAD");
        return MakeResponse(v, http::status::ok, "ok\n", "text/plain");
      case kReadyz:
        if (!get) return not_allowed("GET, HEAD");
        if (agent.ready()) return MakeResponse(v, http::status::ok, "ready\n", "text/plain");
        return MakeResponse(v, http::status::service_unavailable, "no active bundle\n",
                            "text/plain");
      case kMetrics: {
        if (!get) return not_allowed("GET, HEAD");
        auto active = agent.active();
        std::string text =
            agent.metrics().Render(active ? active->counters.get() : nullptr,
                                   [this](std::string* out) { srv_->RenderExtra(out); });
        return MakeResponse(v, http::status::ok, std::move(text),
                            "text/plain; version=0.0.4; charset=utf-8");
      }
      case kCheck:
        if (req.method() != http::verb::post) return not_allowed("POST");
        return Check(agent, req);
      case kForwardAuth:
      case kAuthRequest:
      case kDenied: {
        AuthRequestIn in = AuthIn(req);
        if (ep == kDenied) return FromAnswer(v, DeniedAnswer(in));
        ForwardDialect dialect =
            ep == kForwardAuth ? ForwardDialect::kForwardAuth : ForwardDialect::kAuthRequest;
        ForwardResult fr = TranslateForwarded(in, dialect, srv_->opts.forward);
        Verdict verdict;
        if (!fr.ok) {
          srv_->forward_refused.fetch_add(1, std::memory_order_relaxed);
          spdlog::debug("http: {} auth request refused: {}", peer_, fr.error.description);
          verdict = ErrorVerdict(fr.error);
        } else {
          if (fr.forwarded.ignored_tls_headers) {
            srv_->untrusted_tls_headers.fetch_add(1, std::memory_order_relaxed);
            spdlog::debug("http: TLS headers from untrusted peer {} ignored", peer_);
          }
          bytecode::HttpRequest view = fr.forwarded.request.View();
          verdict = agent.Decide(view, "forward_auth");
        }
        return FromAnswer(
            v, ep == kForwardAuth ? ForwardAuthAnswer(verdict) : AuthRequestAnswer(verdict));
      }
      default:
        return JsonError(v, http::status::not_found, "not_found", "no such endpoint");
    }
  }

  void Reply(Response res, bool keep) {
    if (srv_->stopping.load()) keep = false;
    res.keep_alive(keep);
    res.prepare_payload();
    res_ = std::move(res);
    keep_ = keep;
    stream_.expires_after(ms(srv_->opts.read_timeout_ms));
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      if (!self->keep_) return self->DrainAndClose();
      self->parser_.reset();
      self->WaitRequest();
    });
  }

  // After an answer that ends the connection: stop sending, read and drop
  // what the client still sends (bounded in bytes and time) so the close
  // does not reset the connection before the client has read the answer.
  void DrainAndClose() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(ms(std::min(srv_->opts.read_timeout_ms, 2000)));
    Drain();
  }
  void Drain() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(16 * 1024),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > (1u << 20)) return self->Close();
                              self->Drain();
                            });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  HttpServer::Impl* srv_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::empty_body>> continue_;
  Response res_;
  bool keep_ = false;
  size_t drained_ = 0;
  std::string peer_;
  bool trusted_;
};

void HttpServer::Impl::DoAccept() {
  acceptor->async_accept(net::make_strand(*ioc), [this](beast::error_code ec, tcp::socket s) {
    if (stopping.load() || !acceptor->is_open()) return;
    if (ec) {
      // EMFILE and friends: back off instead of spinning.
      spdlog::warn("http: accept failed: {}", ec.message());
      accept_backoff->expires_after(std::chrono::milliseconds(100));
      accept_backoff->async_wait([this](beast::error_code) {
        if (!stopping.load()) DoAccept();
      });
      return;
    }
    OnAccept(std::move(s));
    DoAccept();
  });
}

void HttpServer::Impl::OnAccept(tcp::socket socket) {
  if (connections.fetch_add(1, std::memory_order_relaxed) >= opts.max_connections) {
    connections.fetch_sub(1, std::memory_order_relaxed);
    rejected_connections.fetch_add(1, std::memory_order_relaxed);
    beast::error_code ec;
    socket.close(ec);
    return;
  }
  beast::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  tcp::endpoint remote = socket.remote_endpoint(ec);
  if (ec) {
    connections.fetch_sub(1, std::memory_order_relaxed);
    socket.close(ec);
    return;
  }
  net::ip::address addr = remote.address();
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    addr = net::ip::make_address_v4(net::ip::v4_mapped, addr.to_v6());
  }
  std::string peer = addr.to_string();
  bool trusted = proxies.Contains(peer);
  // The session's destructor gives the connection slot back.
  std::make_shared<Session>(this, std::move(socket), std::move(peer), trusted)->Start();
}

void HttpServer::Impl::Run() {
  while (true) {
    try {
      ioc->run();
      return;
    } catch (const std::exception& e) {
      spdlog::error("http: handler threw: {}", e.what());
    } catch (...) {
      spdlog::error("http: handler threw");
    }
  }
}

void HttpServer::Impl::RenderExtra(std::string* out) const {
  auto gauge = [out](const char* name, const char* help, double value) {
    *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n" + name +
            " " + std::to_string(static_cast<uint64_t>(value)) + "\n";
  };
  auto counter = [out](const char* name, const char* help, uint64_t value) {
    *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name +
            " " + std::to_string(value) + "\n";
  };
  gauge("vakt_agent_replay_cache_entries", "DPoP proof ids remembered.",
        static_cast<double>(agent.replay_cache_size()));
  gauge("vakt_agent_token_cache_entries", "Verified access tokens cached.",
        static_cast<double>(agent.token_cache_size()));
  gauge("vakt_agent_revocation_entries", "Entries of the active revocation set.",
        static_cast<double>(agent.revocation_entries()));
  gauge("vakt_agent_http_connections", "Open HTTP connections.",
        static_cast<double>(connections.load(std::memory_order_relaxed)));
  *out +=
      "# HELP vakt_agent_http_requests_total HTTP requests by endpoint.\n"
      "# TYPE vakt_agent_http_requests_total counter\n";
  for (size_t i = 0; i < kEndpoints; ++i) {
    *out += std::string("vakt_agent_http_requests_total{endpoint=\"") + kEndpointNames[i] + "\"} " +
            std::to_string(requests[i].load(std::memory_order_relaxed)) + "\n";
  }
  counter("vakt_agent_http_connections_rejected_total",
          "Connections closed at once because max_connections were open.",
          rejected_connections.load(std::memory_order_relaxed));
  counter("vakt_agent_http_timeouts_total", "Connections cut off by the read or idle timeout.",
          timeouts.load(std::memory_order_relaxed));
  *out +=
      "# HELP vakt_agent_http_refused_total Requests refused by the HTTP layer, by status.\n"
      "# TYPE vakt_agent_http_refused_total counter\n"
      "vakt_agent_http_refused_total{status=\"400\"} " +
      std::to_string(bad_requests.load(std::memory_order_relaxed)) +
      "\nvakt_agent_http_refused_total{status=\"413\"} " +
      std::to_string(too_large_bodies.load(std::memory_order_relaxed)) +
      "\nvakt_agent_http_refused_total{status=\"431\"} " +
      std::to_string(too_large_headers.load(std::memory_order_relaxed)) + "\n";
  counter("vakt_agent_forward_auth_untrusted_tls_headers_total",
          "Auth requests whose TLS-fact headers were ignored (peer not a trusted proxy).",
          untrusted_tls_headers.load(std::memory_order_relaxed));
  counter("vakt_agent_forward_auth_refused_total",
          "Auth requests denied before the policy (malformed forwarding headers).",
          forward_refused.load(std::memory_order_relaxed));
  if (opts.extra_metrics) opts.extra_metrics(out);
}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(Agent& agent, HttpServerOptions options) {
  if (options.threads < 1 || options.threads > 64) {
    return InvalidArgument("threads must be 1..64");
  }
  if (options.max_connections < 1) return InvalidArgument("max_connections must be at least 1");
  if (options.max_header_bytes < 1024 || options.max_header_bytes > (16u << 20)) {
    return InvalidArgument("max_header_bytes must be 1 KiB..16 MiB");
  }
  if (options.max_body_bytes > bytecode::kMaxRequestJsonBytes) {
    return InvalidArgument("max_body_bytes must be at most " +
                           std::to_string(bytecode::kMaxRequestJsonBytes));
  }
  if (options.idle_timeout_ms < 1 || options.read_timeout_ms < 1) {
    return InvalidArgument("timeouts must be positive");
  }
  auto endpoint = ParseListen(options.listen);
  if (!endpoint.ok()) return endpoint.status();
  auto proxies = TrustedProxies::Parse(options.trusted_proxies);
  if (!proxies.ok()) return proxies.status();

  auto impl = std::make_shared<Impl>(agent, std::move(options), std::move(proxies).value());
  impl->ioc = std::make_unique<net::io_context>(impl->opts.threads);
  impl->acceptor = std::make_unique<tcp::acceptor>(*impl->ioc);
  impl->accept_backoff = std::make_unique<net::steady_timer>(*impl->ioc);
  beast::error_code ec;
  tcp::acceptor& acc = *impl->acceptor;
  acc.open(endpoint->protocol(), ec);
  if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(*endpoint, ec);
  if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return IoError("cannot listen on " + impl->opts.listen + ": " + ec.message());
  }
  tcp::endpoint bound = acc.local_endpoint(ec);
  if (ec) return IoError("cannot read the bound address: " + ec.message());

  std::unique_ptr<HttpServer> server(new HttpServer());
  server->port_ = bound.port();
  server->impl_ = impl;
  impl->DoAccept();
  for (int i = 0; i < impl->opts.threads; ++i) {
    impl->threads.emplace_back([raw = impl.get()] { raw->Run(); });
  }
  spdlog::info("http: listening on {}:{} ({} threads, {} trusted proxy networks)",
               bound.address().to_string(), bound.port(), impl->opts.threads, impl->proxies.size());
  return server;
}

void HttpServer::Stop() {
  if (!impl_) return;
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  if (impl_->stopping.exchange(true)) return;
  impl_->ioc->stop();
  for (std::thread& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  beast::error_code ec;
  impl_->acceptor->close(ec);
  // Destroys the pending handlers and with them every session (closing
  // their sockets) while the counters they touch still live.
  impl_->accept_backoff.reset();
  impl_->acceptor.reset();
  impl_->ioc.reset();
  spdlog::info("http: stopped");
}

HttpServer::~HttpServer() { Stop(); }

}  // namespace vakt::agent
