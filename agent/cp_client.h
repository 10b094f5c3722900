// The agent's control-plane client: one long-lived AgentService.Stream
// (proto/vakt/v1/agent.proto, docs/grpc-api.md) that receives bundles and
// revocation sets, applies them to the Agent, ACKs or NACKs each push, and
// keeps the last good bundle in the BundleCache. It is why an agent follows
// rollouts and rollbacks without a restart.
//
// Shape: one worker thread runs the connection loop (connect, Hello, serve,
// back off, again); while a stream is up a reader thread reads pushes and
// applies them, and the worker writes heartbeats and decision-log batches.
// The sync gRPC API keeps this simple; there is one stream per agent, so a
// thread or two costs nothing.
//
// Every push is hostile until checked: sizes and counts are bounded, the
// bundle's digest must match its bytes, and Agent::Load checks the
// signature against the pinned keys and runs the verifier. A refused push
// is NACKed with the error and the previous bundle stays active. A bundle
// that loads but cannot be cached is still ACKed and runs (the failure is
// logged and counted: the cache only matters for the next restart).
//
// States: connecting -> connected -> (stream ends) -> backoff -> connecting.
// Backoff is exponential with full jitter (delay uniform in [0, cap], cap
// initial * factor^n up to max), reset once a stream has delivered a valid
// message or lived stable_after_ms. State, last error and reconnect count
// are exposed by status() and as gauges/counters in agent->metrics():
//   vakt_agent_controlplane_connected                  gauge 0/1
//   vakt_agent_controlplane_state{state="..."}         gauge, one-hot
//   vakt_agent_controlplane_reconnects_total           counter
//   vakt_agent_controlplane_updates_total{kind,result} counter
//   vakt_agent_cache_write_failures_total              counter
//
// Thread-safety: Start/Stop from one thread; status() and state() from any.
// Tested by tests/agent_cp_test.cc.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>

#include "agent/agent.h"
#include "agent/bundle_cache.h"
#include "bytecode/status.h"
#include "vakt/v1/agent.pb.h"

namespace grpc {
class ChannelCredentials;
class ClientContext;
}  // namespace grpc

namespace vakt::agent {

inline constexpr std::string_view kAgentSoftwareVersion = "0.6.0";

struct ControlPlaneClientOptions {
  // gRPC target, e.g. "cp.example.net:7443" or "127.0.0.1:7443".
  std::string target;
  // Plain TCP without TLS. Refused unless the target is a loopback address
  // ("localhost", 127.x.x.x, [::1], unix:); the control plane must then run
  // with --insecure-loopback and takes agent_id as the identity.
  bool insecure_loopback = false;
  // TLS: CA bundle (PEM) that verifies the control plane's certificate
  // (empty: the system roots); the agent's certificate chain and key (PEM)
  // for mutual TLS, both or neither. With mTLS the control plane takes the
  // agent's identity from the certificate's subject CN.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // Expected server name in the control plane's certificate when it differs
  // from the target's host (ssl_target_name_override). Empty: the host.
  std::string tls_server_name;

  std::string agent_id;  // must equal the certificate CN with mTLS (or be empty)
  std::map<std::string, std::string> labels;
  std::string agent_version = std::string(kAgentSoftwareVersion);

  int64_t heartbeat_interval_ms = 30000;
  int64_t initial_backoff_ms = 500;
  int64_t max_backoff_ms = 30000;
  double backoff_factor = 2;
  int64_t stable_after_ms = 10000;     // a stream this old resets the backoff
  int64_t connect_timeout_ms = 10000;  // TCP + TLS + HTTP/2 to READY
  int64_t keepalive_ms = 30000;        // HTTP/2 pings (0: off); the server allows 10 s
  size_t max_bundle_bytes = kDefaultMaxCacheBytes;
  size_t max_revocation_entries = kMaxRevocationEntries;
  size_t max_send_message_bytes = 64 * 1024;  // the control plane's limit

  // The last good bundle (and revocation set) is saved here; may be null.
  BundleCache* cache = nullptr;

  // Decision logs: polled every log_flush_interval_ms while connected; when
  // it returns true the filled message is written on the stream (dropped and
  // counted if over max_send_message_bytes). Null: none. Runs on the
  // client's worker thread; must not block for long.
  std::function<bool(vakt::v1::AgentMessage*)> next_log_batch;
  int64_t log_flush_interval_ms = 1000;
};

enum class ConnectionState { kIdle, kConnecting, kConnected, kBackoff, kStopped };
std::string_view ConnectionStateName(ConnectionState s);

struct ControlPlaneStatus {
  ConnectionState state = ConnectionState::kIdle;
  std::string last_error;   // why the last stream or attempt ended
  uint64_t reconnects = 0;  // attempts after the first
  uint64_t streams = 0;     // streams that reached "connected"
  uint64_t bundles_applied = 0;
  uint64_t bundles_refused = 0;
  uint64_t revocations_applied = 0;
  uint64_t revocations_refused = 0;
  uint64_t notices = 0;
  uint64_t cache_write_failures = 0;
  uint64_t log_batches_sent = 0;
  uint64_t log_batches_dropped = 0;
  std::string last_notice;
  std::string last_refusal;  // the error of the last NACK
};

// Exponential backoff with full jitter. Not thread-safe.
class Backoff {
 public:
  Backoff(int64_t initial_ms, int64_t max_ms, double factor, uint64_t seed);
  // The next delay, uniform in [0, cap]; then the cap grows.
  int64_t NextMs();
  // The cap of the next delay.
  int64_t cap_ms() const { return cap_ms_; }
  void Reset() { cap_ms_ = initial_ms_; }

 private:
  int64_t initial_ms_, max_ms_;
  double factor_;
  int64_t cap_ms_;
  std::mt19937_64 rng_;
};

// True if `target` names a loopback address (ControlPlaneClientOptions::insecure_loopback).
bool IsLoopbackTarget(std::string_view target);

class ControlPlaneClient {
 public:
  // Checks the options and reads the TLS files. kInvalidArgument for bad
  // options (plaintext to a non-loopback target, a certificate without its
  // key, no identity, bad intervals, too many labels), kIoError or
  // kResourceExhausted for unreadable or oversized TLS files.
  // REQUIRES: `agent` (and options.cache, if set) outlive the client.
  static Result<std::unique_ptr<ControlPlaneClient>> Create(Agent* agent,
                                                            ControlPlaneClientOptions options);
  ~ControlPlaneClient();  // Stop()
  ControlPlaneClient(const ControlPlaneClient&) = delete;
  ControlPlaneClient& operator=(const ControlPlaneClient&) = delete;

  // Starts the worker and returns at once (it does not wait for a
  // connection). Only the first call does anything.
  void Start();
  // Cancels the stream and joins the threads; returns within about a second
  // (bounded by an in-progress Agent::Load). Idempotent; after the first
  // call the client no longer touches the Agent.
  void Stop();

  ControlPlaneStatus status() const;
  ConnectionState state() const;

 private:
  ControlPlaneClient(Agent* agent, ControlPlaneClientOptions options,
                     std::shared_ptr<grpc::ChannelCredentials> creds);
  void Run();
  // One connection attempt and, if it connects, the stream until it ends.
  // Returns why it ended; sets *healthy if the backoff should reset.
  std::string RunStream(bool* healthy);
  void ReadLoop(void* stream, std::atomic<bool>* got_valid);
  // Applies one push and fills `reply` (an Ack or a Nack). False: no reply.
  bool Handle(const vakt::v1::ServerMessage& m, vakt::v1::AgentMessage* reply);
  bool HandleBundle(const vakt::v1::BundleUpdate& u, vakt::v1::AgentMessage* reply);
  bool HandleRevocations(const vakt::v1::RevocationUpdate& u, vakt::v1::AgentMessage* reply);
  bool Write(void* stream, const vakt::v1::AgentMessage& m);
  void SetState(ConnectionState s, const std::string& error = "");
  void Count(const std::function<void(ControlPlaneStatus&)>& f);
  // Sleeps up to `ms` or until Stop(); false if stopping.
  bool SleepFor(int64_t ms);
  bool stopping() const { return stopping_.load(); }

  Agent* agent_;
  ControlPlaneClientOptions opts_;
  std::shared_ptr<grpc::ChannelCredentials> creds_;

  mutable std::mutex mu_;  // guards status_, ctx_, stream_done_
  std::condition_variable cv_;
  ControlPlaneStatus status_;
  std::shared_ptr<grpc::ClientContext> ctx_;  // the live stream's, for Stop()
  bool stream_done_ = false;
  std::atomic<bool> stopping_{false};
  std::mutex start_mu_;  // serialises Start and Stop
  bool started_ = false;

  std::mutex write_mu_;  // one write at a time on the stream
  std::thread worker_;
};

}  // namespace vakt::agent
