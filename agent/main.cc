// vakt-agent: the enforcement sidecar. Runs next to a service and decides
// every request it is asked about, over HTTP (forward-auth for nginx,
// Traefik and Caddy; POST /v1/check for any language) and gRPC (Envoy
// ext_authz). Bundles come from the control plane (signed, verified, cached
// on disk as the last good bundle) or, in standalone mode, from a file.
// Shuts down cleanly on SIGTERM or SIGINT. Operations: docs/agent.md.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "agent/bundle_cache.h"
#include "agent/cp_client.h"
#include "agent/decision_log.h"
#include "agent/ext_authz.h"
#include "agent/http_server.h"
#include "agent/proxy.h"
#include "agent/upstream.h"

namespace {

using namespace vakt::agent;

constexpr size_t kMaxBundleFileBytes = size_t{64} << 20;

// `%*` in the JSON log pattern: the message as the inside of a JSON string
// (quotes, backslashes and control bytes escaped), so every line parses.
class JsonEscapedMessage : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr char kHex[] = "0123456789abcdef";
    for (char c : std::string_view(msg.payload.data(), msg.payload.size())) {
      auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        dest.push_back('\\');
        dest.push_back(c);
      } else if (u < 0x20) {
        const char esc[6] = {'\\', 'u', '0', '0', kHex[u >> 4], kHex[u & 15]};
        dest.append(esc, esc + 6);
      } else {
        dest.push_back(c);
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonEscapedMessage>();
  }
};

int Fail(const std::string& what) {
  spdlog::critical("{}", what);
  return 1;
}

// Reads a whole file of at most `limit` bytes.
vakt::Result<std::string> ReadFile(const std::string& path, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return vakt::IoError(path + ": cannot open");
  std::string data;
  char buf[65536];
  while (in) {
    in.read(buf, sizeof buf);
    data.append(buf, static_cast<size_t>(in.gcount()));
    if (data.size() > limit) {
      return vakt::ResourceExhausted(path + ": larger than " + std::to_string(limit) + " bytes");
    }
  }
  if (in.bad()) return vakt::IoError(path + ": read error");
  return data;
}

// Writes `port` to `path` (if given) so that scripts and tests can find a
// listener that asked for port 0. "" on success, else the error.
std::string WritePortFile(const std::string& path, int port) {
  if (path.empty()) return "";
  const std::string text = std::to_string(port);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) return "cannot write " + tmp;
    out << text;
    if (!out.flush()) return "cannot write " + tmp;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return "cannot rename " + tmp;
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "vakt-agent: decides every request of the service it runs beside, with a signed policy "
      "bundle from the Vakt control plane (or a bundle file in standalone mode).\n"
      "Every flag can also be set in a config file (--config): one `name = value` per line, "
      "names as the long flags without dashes; flags on the command line win."};
  app.set_config("--config", "", "Config file (TOML/INI: `name = value` lines)");
  app.get_formatter()->column_width(38);

  // Bundle source.
  std::string bundle_file, control_plane, agent_id, cache_dir, tls_ca, tls_cert, tls_key;
  std::vector<std::string> trusted_keys, labels;
  bool insecure_loopback = false;
  int heartbeat_seconds = 15;
  app.add_option("--bundle", bundle_file,
                 "Standalone mode: run this bundle file (no control plane, no signature check; "
                 "the operator vouches for the file)")
      ->check(CLI::ExistingFile);
  app.add_option("--control-plane", control_plane,
                 "Control plane address host:port (the agent API); bundles must then be signed "
                 "by a --trusted-key");
  app.add_option("--agent-id", agent_id,
                 "This agent's id (default: the host name; with mTLS the client certificate's CN, "
                 "which the control plane requires)");
  app.add_option("--label", labels, "Label key=value sent to the control plane (repeatable)");
  app.add_option("--trusted-key", trusted_keys,
                 "Ed25519 public key (PEM) bundles must be signed by (repeatable, for rotation)")
      ->check(CLI::ExistingFile);
  app.add_option("--cache-dir", cache_dir,
                 "Directory for the last good bundle and revocations (started from when the "
                 "control plane is unreachable)");
  app.add_option("--tls-ca", tls_ca, "CA bundle (PEM) that signs the control plane's certificate")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", tls_cert, "Client certificate (PEM) for mutual TLS")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", tls_key, "Client private key (PEM) for mutual TLS")
      ->check(CLI::ExistingFile);
  app.add_flag("--insecure-loopback", insecure_loopback,
               "Plain TCP to a control plane on a loopback address (development only)");
  app.add_option("--heartbeat-seconds", heartbeat_seconds, "Heartbeat interval to the control plane")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));

  // Decision interfaces.
  std::string http_listen = "127.0.0.1:8181", http_port_file, ext_authz_listen,
              ext_authz_port_file, ext_authz_tls_version;
  std::vector<std::string> trusted_proxies;
  int http_threads = 2;
  size_t max_body_bytes = size_t{1} << 20;
  int read_timeout_ms = 10000, idle_timeout_ms = 30000;
  size_t max_connections = 4096;
  app.add_option("--http-listen", http_listen,
                 "HTTP listener for /v1/check, forward-auth, /healthz, /readyz, /metrics "
                 "(port 0: any free port; empty: off)")
      ->capture_default_str();
  app.add_option("--http-port-file", http_port_file, "Write the bound HTTP port to this file");
  app.add_option("--http-threads", http_threads, "HTTP worker threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--trusted-proxy", trusted_proxies,
                 "CIDR of a proxy whose forwarded TLS facts (version, cipher, client certificate) "
                 "are believed (repeatable; default none)");
  app.add_option("--max-body-bytes", max_body_bytes,
                 "Largest request body accepted on any interface (larger: 413)")
      ->capture_default_str();
  app.add_option("--read-timeout-ms", read_timeout_ms, "Time a client has to send a request")
      ->capture_default_str();
  app.add_option("--idle-timeout-ms", idle_timeout_ms, "Keep-alive idle time before closing")
      ->capture_default_str();
  app.add_option("--max-connections", max_connections, "Concurrent HTTP connections")
      ->capture_default_str();
  app.add_option("--ext-authz-listen", ext_authz_listen,
                 "gRPC listener for Envoy ext_authz (envoy.service.auth.v3.Authorization; "
                 "empty: off)");
  app.add_option("--ext-authz-port-file", ext_authz_port_file,
                 "Write the bound ext_authz port to this file");
  app.add_option("--ext-authz-tls-version", ext_authz_tls_version,
                 "TLS version to assume for https requests from Envoy when no trusted header "
                 "says (e.g. TLSv1.3 when the listener allows only 1.3)");

  // Enforcing proxy.
  std::string proxy_listen, proxy_port_file, upstream_url;
  int proxy_threads = 8, upstream_timeout_ms = 30000;
  size_t max_response_bytes = size_t{8} << 20, max_header_bytes = size_t{64} << 10;
  ForwardAuthOptions forward;
  app.add_option("--proxy-listen", proxy_listen,
                 "Enforcing proxy listener: every request is decided, forwarded to --upstream, "
                 "and its response decided before it is returned (empty: off)");
  app.add_option("--proxy-port-file", proxy_port_file, "Write the bound proxy port to this file");
  app.add_option("--upstream", upstream_url, "The protected service for the proxy: http://host:port");
  app.add_option("--proxy-threads", proxy_threads,
                 "Proxy worker threads (each holds one request while the upstream answers)")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--upstream-timeout-ms", upstream_timeout_ms,
                 "Time the upstream has to answer (then 504)")
      ->capture_default_str()
      ->check(CLI::Range(1, 600000));
  app.add_option("--max-response-bytes", max_response_bytes,
                 "Largest upstream response body the proxy accepts (larger: 502)")
      ->capture_default_str();
  app.add_option("--max-header-bytes", max_header_bytes, "Largest request header block (larger: 431)")
      ->capture_default_str();
  app.add_option("--forward-tls-version-header", forward.tls_version_header,
                 "Header a trusted proxy puts the TLS version in (nginx: $ssl_protocol)")
      ->capture_default_str();
  app.add_option("--forward-tls-cipher-header", forward.tls_cipher_header,
                 "Header a trusted proxy puts the TLS cipher in (nginx: $ssl_cipher)")
      ->capture_default_str();
  app.add_option("--forward-client-cert-header", forward.client_cert_header,
                 "Header a trusted proxy puts the URL-escaped client certificate in (nginx: "
                 "$ssl_client_escaped_cert)")
      ->capture_default_str();

  // Runtime state.
  size_t replay_entries = size_t{1} << 20, token_entries = size_t{1} << 16;
  std::string nonce_secret_file;
  app.add_option("--replay-cache-entries", replay_entries, "DPoP proof ids remembered")
      ->capture_default_str();
  app.add_option("--token-cache-entries", token_entries, "Verified access tokens cached")
      ->capture_default_str();
  app.add_option("--nonce-secret-file", nonce_secret_file,
                 "Secret (>= 16 bytes) for DPoP server nonces, shared by agents behind one load "
                 "balancer (default: random per process)")
      ->check(CLI::ExistingFile);

  // Logs.
  std::string log_level = "info";
  bool log_json = false, log_allows = true, log_query = false;
  size_t decision_log_capacity = 10000;
  std::vector<std::string> mask_headers, mask_query, log_headers;
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  app.add_flag("--log-json", log_json, "Log one JSON object per line");
  app.add_option("--decision-log-capacity", decision_log_capacity,
                 "Decision events buffered for the control plane (more are dropped and counted)")
      ->capture_default_str();
  app.add_option("--log-header", log_headers, "Request header copied into decision events");
  app.add_option("--mask-header", mask_headers,
                 "Header whose value is masked in decision events (Authorization, "
                 "Proxy-Authorization, DPoP, Cookie and Set-Cookie always are)");
  app.add_flag("--log-query", log_query, "Log query strings (masked parameters replaced)");
  app.add_option("--mask-query", mask_query,
                 "Query parameter masked in decision events (access_token, id_token, "
                 "refresh_token, client_secret, code_verifier and password always are)");
  app.add_flag("!--no-log-allows", log_allows, "Log denies only");

  CLI11_PARSE(app, argc, argv);

  // Debian's abseil is built with mutex deadlock detection on: every lock
  // inside gRPC then walks a lock graph (measured: 8% of a busy server's
  // CPU). Turn it off before any gRPC object exists.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  spdlog::set_level(spdlog::level::from_str(log_level));
  if (log_json) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JsonEscapedMessage>('*').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","component":"agent","msg":"%*"})");
    spdlog::set_formatter(std::move(formatter));
  }
  if (bundle_file.empty() == control_plane.empty()) {
    return Fail("give exactly one of --bundle FILE (standalone) or --control-plane HOST:PORT");
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  AgentOptions aopts;
  if (!trusted_keys.empty()) {
    auto keys = vakt::bytecode::TrustedKeys::LoadFromFiles(trusted_keys);
    if (!keys.ok()) return Fail("trusted key: " + keys.status().message());
    aopts.trusted_keys = std::move(keys).value();
    for (const std::string& id : aopts.trusted_keys.key_ids()) {
      spdlog::info("trusting bundle key {}", id);
    }
  }
  if (!control_plane.empty() && aopts.trusted_keys.empty()) {
    return Fail("--control-plane needs at least one --trusted-key (bundles are signed)");
  }
  aopts.replay_cache_entries = replay_entries;
  aopts.token_cache_entries = token_entries;
  if (!nonce_secret_file.empty()) {
    auto secret = ReadFile(nonce_secret_file, 4096);
    if (!secret.ok()) return Fail("nonce secret: " + secret.status().message());
    if (secret->size() < 16) return Fail("nonce secret: shorter than 16 bytes");
    aopts.nonce_secret = *secret;
  }
  Agent agent(std::move(aopts));

  DecisionLogOptions lopts;
  lopts.capacity = decision_log_capacity;
  lopts.log_headers = log_headers;
  lopts.mask_headers = mask_headers;
  lopts.mask_query_params = mask_query;
  lopts.log_query = log_query;
  lopts.log_allows = log_allows;
  if (vakt::Status st = CheckDecisionLogOptions(lopts); !st.ok()) {
    return Fail("decision log: " + st.message());
  }
  DecisionLog decision_log(lopts);
  agent.set_decision_sink(&decision_log);

  // Bundle: the file (standalone) or the cache, then the control plane.
  std::unique_ptr<BundleCache> cache;
  if (!bundle_file.empty()) {
    auto bytes = ReadFile(bundle_file, kMaxBundleFileBytes);
    if (!bytes.ok()) return Fail("bundle: " + bytes.status().message());
    if (vakt::Status st = agent.LoadUnsigned(*bytes); !st.ok()) {
      return Fail("bundle " + bundle_file + ": " + st.ToString());
    }
    spdlog::info("standalone: running {} (digest {})", bundle_file, agent.active()->digest);
  } else if (!cache_dir.empty()) {
    cache = std::make_unique<BundleCache>(cache_dir);
    RestoreResult r = RestoreFromCache(*cache, &agent);
    if (r.bundle_loaded) {
      spdlog::info("started from the cached bundle {} version {}", agent.active()->policy,
                   agent.active()->version);
    }
  }

  std::unique_ptr<ControlPlaneClient> client;
  if (!control_plane.empty()) {
    ControlPlaneClientOptions copts;
    copts.target = control_plane;
    // With mutual TLS the id is the certificate's CN (the control plane
    // refuses any other); without it, default to the host name.
    if (agent_id.empty() && tls_cert.empty()) {
      char host[256] = {};
      if (::gethostname(host, sizeof host - 1) == 0) agent_id = host;
    }
    copts.agent_id = agent_id;
    for (const std::string& l : labels) {
      size_t eq = l.find('=');
      if (eq == std::string::npos || eq == 0) return Fail("--label wants key=value, not " + l);
      copts.labels[l.substr(0, eq)] = l.substr(eq + 1);
    }
    copts.ca_file = tls_ca;
    copts.cert_file = tls_cert;
    copts.key_file = tls_key;
    copts.insecure_loopback = insecure_loopback;
    copts.heartbeat_interval_ms = int64_t{heartbeat_seconds} * 1000;
    copts.cache = cache.get();
    copts.next_log_batch = [&decision_log](vakt::v1::AgentMessage* m) {
      if (!FillBatch(decision_log, decision_log.options().max_batch, m)) return false;
      decision_log.MarkSent(static_cast<uint64_t>(m->decisions().events_size()));
      return true;
    };
    auto c = ControlPlaneClient::Create(&agent, std::move(copts));
    if (!c.ok()) return Fail("control plane: " + c.status().message());
    client = std::move(c).value();
    client->Start();
  }

  // Metrics the daemon adds at scrape time.
  auto extra_metrics = [&decision_log](std::string* out) {
    *out += "# TYPE vakt_agent_decision_log_events_total counter\n";
    *out += "vakt_agent_decision_log_events_total{result=\"recorded\"} " +
            std::to_string(decision_log.recorded()) + "\n";
    *out += "vakt_agent_decision_log_events_total{result=\"sent\"} " +
            std::to_string(decision_log.sent()) + "\n";
    *out += "vakt_agent_decision_log_events_total{result=\"dropped\"} " +
            std::to_string(decision_log.dropped()) + "\n";
    *out += "vakt_agent_decision_log_events_total{result=\"skipped\"} " +
            std::to_string(decision_log.skipped()) + "\n";
    *out += "# TYPE vakt_agent_decision_log_buffered gauge\nvakt_agent_decision_log_buffered " +
            std::to_string(decision_log.size()) + "\n";
  };

  std::unique_ptr<HttpServer> http;
  if (!http_listen.empty()) {
    HttpServerOptions hopts;
    hopts.listen = http_listen;
    hopts.threads = http_threads;
    hopts.trusted_proxies = trusted_proxies;
    hopts.max_body_bytes = max_body_bytes;
    hopts.read_timeout_ms = read_timeout_ms;
    hopts.idle_timeout_ms = idle_timeout_ms;
    hopts.max_connections = max_connections;
    hopts.max_header_bytes = max_header_bytes;
    hopts.forward = forward;
    hopts.extra_metrics = extra_metrics;
    auto h = HttpServer::Start(agent, std::move(hopts));
    if (!h.ok()) return Fail("http: " + h.status().message());
    http = std::move(h).value();
    spdlog::info("HTTP on port {}", http->port());
    if (std::string e = WritePortFile(http_port_file, http->port()); !e.empty()) return Fail(e);
  }

  // Declared before the servers that use them, so that on any return the
  // servers (and their threads) are destroyed first.
  std::unique_ptr<UpstreamClient> upstream;
  std::unique_ptr<HttpServer> proxy;
  if (proxy_listen.empty() != upstream_url.empty()) {
    return Fail("--proxy-listen and --upstream go together");
  }
  if (!proxy_listen.empty()) {
    UpstreamOptions uopts;
    uopts.url = upstream_url;
    uopts.response_timeout_ms = upstream_timeout_ms;
    uopts.max_response_body_bytes = max_response_bytes;
    auto u = UpstreamClient::Make(std::move(uopts));
    if (!u.ok()) return Fail("upstream: " + u.status().message());
    upstream = std::make_unique<UpstreamClient>(std::move(u).value());
    HttpServerOptions popts;
    popts.listen = proxy_listen;
    popts.threads = proxy_threads;
    popts.trusted_proxies = trusted_proxies;
    popts.max_body_bytes = max_body_bytes;
    popts.max_header_bytes = max_header_bytes;
    popts.read_timeout_ms = read_timeout_ms;
    popts.idle_timeout_ms = idle_timeout_ms;
    popts.max_connections = max_connections;
    popts.forward = forward;
    popts.proxy = [&agent, &upstream, forward](const AuthRequestIn& in) {
      ProxyAnswer a = ProxyRequest(agent, *upstream, in, forward);
      ProxiedAnswer out;
      out.answer.status = a.status;
      out.answer.headers = std::move(a.headers);
      out.answer.body = std::move(a.body);
      out.verbatim = a.from_upstream;
      return out;
    };
    auto p = HttpServer::Start(agent, std::move(popts));
    if (!p.ok()) return Fail("proxy: " + p.status().message());
    proxy = std::move(p).value();
    spdlog::info("enforcing proxy on port {} for {}", proxy->port(), upstream_url);
    if (std::string e = WritePortFile(proxy_port_file, proxy->port()); !e.empty()) return Fail(e);
  }

  std::unique_ptr<ExtAuthzService> ext_authz;  // must outlive grpc_server
  std::unique_ptr<grpc::Server> grpc_server;
  if (!ext_authz_listen.empty()) {
    ExtAuthzOptions eopts;
    eopts.trusted_proxies = trusted_proxies;
    eopts.assumed_tls_version = ext_authz_tls_version;
    eopts.max_body_bytes = max_body_bytes;
    auto svc = MakeExtAuthzService(agent, std::move(eopts));
    if (!svc.ok()) return Fail("ext_authz: " + svc.status().message());
    ext_authz = std::move(svc).value();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(ext_authz_listen, grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(ext_authz.get());
    builder.SetMaxReceiveMessageSize(static_cast<int>(MaxCheckMessageBytes(ext_authz->config().options())));
    grpc_server = builder.BuildAndStart();
    if (!grpc_server || port == 0) return Fail("ext_authz: cannot listen on " + ext_authz_listen);
    spdlog::info("Envoy ext_authz on port {}", port);
    if (std::string e = WritePortFile(ext_authz_port_file, port); !e.empty()) return Fail(e);
  }

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: shutting down", sig);
  if (grpc_server) grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (http) http->Stop();
  if (proxy) proxy->Stop();
  if (client) client->Stop();
  agent.set_decision_sink(nullptr);
  spdlog::info("stopped");
  return 0;
}
