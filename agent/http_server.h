// The agent's HTTP/1.1 server (Boost.Beast over Asio): health, readiness,
// Prometheus metrics, POST /v1/check (the request JSON of `vakt eval`), and
// the reverse-proxy decision endpoints of forward_auth.h.
//
// Why its own server and not the daemon's: the endpoints are the agent's
// public decision interface for every language and proxy, so they live in a
// library (vakt::agent_http) that the daemon, the tests and the benchmark
// start the same way.
//
// Endpoints (docs/agent-http.md):
//   GET  /healthz            200 while the process runs
//   GET  /readyz             200 once a bundle is active, else 503
//   GET  /metrics            Prometheus text (Agent metrics + server gauges + hook)
//   POST /v1/check           request JSON -> 200 with the decision JSON; or
//                            {"request": {...}, "response": {...}}; 400 if malformed
//   ANY  /v1/forward-auth    Traefik ForwardAuth / Caddy forward_auth
//   ANY  /v1/auth-request    nginx auth_request
//   ANY  /v1/denied          nginx error_page target (the real deny status)
//
// Bounds: header bytes (431), body bytes (413), connections (beyond the
// limit a new connection is closed at once), a read timeout for a whole
// request from its first byte (slow clients are cut off), an idle timeout
// between keep-alive requests, and the write timeout = the read timeout.
// No queue grows with load: each connection holds one request at a time.
//
// Thread-safety: Start() runs `threads` threads on one io_context; Stop()
// and the destructor join them. The Agent must outlive the server.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "agent/forward_auth.h"
#include "bytecode/status.h"

namespace vakt::agent {

// What the proxy hook answers: a deny (JSON body) or, with verbatim, the
// upstream's response whose headers and body are sent as they are.
struct ProxiedAnswer {
  HttpAnswer answer;
  bool verbatim = false;
};

struct HttpServerOptions {
  std::string listen = "127.0.0.1:8181";     // host:port; port 0 picks a free one
  int threads = 2;                           // 1..64
  std::vector<std::string> trusted_proxies;  // CIDRs (forward_auth.h trust model)
  size_t max_body_bytes = 1 << 20;
  size_t max_header_bytes = 64 << 10;
  size_t max_connections = 4096;
  int idle_timeout_ms = 30000;  // between keep-alive requests
  int read_timeout_ms = 10000;  // one whole request from its first byte; also writes
  ForwardAuthOptions forward;
  // Appends more Prometheus lines to /metrics (the daemon's own gauges).
  std::function<void(std::string*)> extra_metrics;
  // Non-null: this listener is the enforcing proxy (proxy.h). Every request,
  // whatever its path, goes to `proxy` (none of the endpoints above is
  // served). It runs on the connection's thread and may block on the
  // upstream, so `threads` bounds the requests in flight.
  std::function<ProxiedAnswer(const AuthRequestIn&)> proxy;
};

class HttpServer {
 public:
  // Parses the options, binds, listens and starts the threads. Errors:
  // kInvalidArgument (listen address, trusted proxies, limits), kIoError
  // (bind/listen failed).
  static Result<std::unique_ptr<HttpServer>> Start(Agent& agent, HttpServerOptions options);

  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound port (the real one when listen asked for port 0).
  uint16_t port() const { return port_; }
  // Stops accepting, closes every connection and joins the threads.
  // Idempotent.
  void Stop();

  struct Impl;

 private:
  HttpServer() = default;
  std::shared_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace vakt::agent
