// vakt-controlplane: the control plane daemon. Opens (or creates) the data
// directory (SQLite store, signing key, first admin token), serves the
// admin and agent gRPC APIs on one listener, and shuts down cleanly on
// SIGTERM or SIGINT (streams ended with UNAVAILABLE, agent records flushed,
// the store closed). Operations: docs/operations.md.
#include <arpa/inet.h>
#include <signal.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "controlplane/admin_server.h"
#include "controlplane/agent_server.h"
#include "controlplane/control_plane.h"
#include "controlplane/secret_file.h"
#include "controlplane/signing.h"
#include "controlplane/sqlite_store.h"

namespace {

namespace cp = vakt::controlplane;
namespace fs = std::filesystem;

int Fail(const std::string& what) {
  spdlog::critical("{}", what);
  return 1;
}

bool ReadText(const std::string& path, std::string* out, std::string* err) {
  auto r = cp::ReadSmallFile(path, 1 << 20);
  if (!r.ok()) {
    *err = path + ": " + r.status().message();
    return false;
  }
  *out = r->bytes;
  return true;
}

// An IPv4 literal in 127.0.0.0/8, [::1] or localhost (each with a port), or
// a unix socket. Only literals: a name such as `127.example.com` resolves to
// whatever DNS says.
bool HostIsLoopback(const std::string& addr) {
  if (addr.starts_with("unix:")) return true;
  const size_t colon = addr.rfind(':');
  if (colon == std::string::npos) return false;
  const std::string host = addr.substr(0, colon);
  if (host == "[::1]" || host == "localhost") return true;
  in_addr a{};
  return ::inet_pton(AF_INET, host.c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vakt-controlplane: versions, signs and streams Vakt policy bundles to agents"};
  std::string data_dir, listen = "127.0.0.1:7070", db_path, signing_key, tls_cert, tls_key,
                        client_ca, port_file, log_level = "info";
  bool insecure_loopback = false, log_json = false;
  size_t max_decisions = cp::DecisionStore::kDefaultCapacity;
  app.add_option("--data-dir", data_dir,
                 "Directory for vakt.db, signing.key/.pub and admin.token (created 0700)")
      ->required();
  app.add_option("--listen", listen, "Address for the admin and agent APIs (port 0: any free)")
      ->capture_default_str();
  app.add_option("--db", db_path, "SQLite database file (default DATA_DIR/vakt.db)");
  app.add_option("--signing-key", signing_key,
                 "Ed25519 private key (PEM, mode 0600); default DATA_DIR/signing.key, created on "
                 "first start");
  app.add_option("--tls-cert", tls_cert, "Server certificate chain (PEM)");
  app.add_option("--tls-key", tls_key, "Server private key (PEM)");
  app.add_option("--client-ca", client_ca,
                 "CA bundle that signs agent client certificates (PEM); agents are identified "
                 "by their certificate's common name");
  app.add_flag("--insecure-loopback", insecure_loopback,
               "Plain TCP without TLS; only on a loopback address; agents then name themselves");
  app.add_option("--max-decisions", max_decisions,
                 "Decision logs from agents kept in memory, newest first (not persisted)")
      ->check(CLI::Range(size_t{1}, size_t{10000000}))
      ->capture_default_str();
  app.add_option("--port-file", port_file, "Write the bound port to this file once listening");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")->capture_default_str();
  app.add_flag("--log-json", log_json, "Log one JSON object per line");
  CLI11_PARSE(app, argc, argv);

  spdlog::set_level(spdlog::level::from_str(log_level));
  if (log_json) {
    spdlog::set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","component":"controlplane","msg":"%v"})");
  }

  // Signals go to the main thread's sigwait only: block them before any
  // thread starts so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::error_code ec;
  fs::create_directories(data_dir, ec);
  if (ec) return Fail("cannot create data directory " + data_dir + ": " + ec.message());
  ::chmod(data_dir.c_str(), 0700);
  if (db_path.empty()) db_path = (fs::path(data_dir) / "vakt.db").string();

  const bool tls = !tls_cert.empty() || !tls_key.empty();
  if (tls && (tls_cert.empty() || tls_key.empty())) {
    return Fail("--tls-cert and --tls-key go together");
  }
  if (!tls && !insecure_loopback) {
    return Fail("give --tls-cert/--tls-key (and --client-ca for agents), or --insecure-loopback");
  }
  if (!tls && !HostIsLoopback(listen)) {
    return Fail("--insecure-loopback listens only on a loopback address, not " + listen);
  }
  if (tls && insecure_loopback) return Fail("--insecure-loopback and TLS exclude each other");

  auto store = cp::SqliteStore::Open(db_path);
  if (!store.ok()) return Fail("store " + db_path + ": " + store.status().message());
  auto signer = signing_key.empty() ? cp::BundleSigner::LoadOrCreate(data_dir)
                                    : cp::BundleSigner::LoadFile(signing_key);
  if (!signer.ok()) return Fail("signing key: " + signer.status().message());
  spdlog::info("bundles are signed with key {}", signer->key_id());

  cp::ControlPlaneOptions copts;
  copts.max_decisions = max_decisions;
  cp::ControlPlane plane(store->get(), std::move(*signer), copts);
  if (vakt::Status st = plane.Start(); !st.ok()) return Fail("start: " + st.message());
  auto boot = plane.BootstrapAdmin(data_dir);
  if (!boot.ok()) return Fail("first admin token: " + boot.status().message());
  if (*boot) {
    spdlog::info("first start: admin token written to {}", (fs::path(data_dir) / "admin.token").string());
  }

  cp::AgentServerOptions aopts;
  aopts.insecure_identity = insecure_loopback;
  aopts.known_version = [&plane](uint64_t v, const std::string& d) {
    return plane.KnownVersion(v, d);
  };
  cp::AgentServer agents(&plane.snapshots(), &plane.fleet(), aopts);
  cp::AdminServer admin(&plane);

  std::shared_ptr<grpc::ServerCredentials> creds;
  if (tls) {
    grpc::SslServerCredentialsOptions o(client_ca.empty()
                                            ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                            : GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    std::string err;
    if (!ReadText(tls_key, &pair.private_key, &err) || !ReadText(tls_cert, &pair.cert_chain, &err) ||
        (!client_ca.empty() && !ReadText(client_ca, &o.pem_root_certs, &err))) {
      return Fail(err);
    }
    o.pem_key_cert_pairs.push_back(pair);
    creds = grpc::SslServerCredentials(o);
    if (client_ca.empty()) spdlog::warn("no --client-ca: agents cannot authenticate, only admins");
  } else {
    creds = grpc::InsecureServerCredentials();
    spdlog::warn("plain TCP on {} (--insecure-loopback): for development and tests only", listen);
  }

  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, creds, &port);
  builder.RegisterService(&admin);
  builder.RegisterService(&agents);
  builder.SetMaxReceiveMessageSize(80 << 20);  // a published policy set; agent streams check less
  builder.SetMaxSendMessageSize(256 << 20);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 100);
  grpc::ResourceQuota quota("vakt-controlplane");
  quota.SetMaxThreads(32);
  builder.SetResourceQuota(quota);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) return Fail("cannot listen on " + listen);
  std::string bound = listen.substr(0, listen.rfind(':') + 1) + std::to_string(port);
  spdlog::info("listening on {}", bound);
  if (!port_file.empty()) {
    if (vakt::Status st = cp::WriteFileAtomically(port_file, std::to_string(port) + "\n", 0644, true);
        !st.ok()) {
      return Fail("--port-file: " + st.message());
    }
  }

  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: shutting down", sig);
  agents.Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  plane.Stop();
  spdlog::info("stopped");
  return 0;
}
