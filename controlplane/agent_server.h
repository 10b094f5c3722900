// The agent stream server: AgentService.Stream (proto/vakt/v1/agent.proto),
// one long-lived bidirectional stream per agent, on gRPC's callback API so
// that thousands of streams cost no thread each. It reads snapshots through
// SnapshotSource and reports what agents say to the Fleet; it never touches
// the store.
//
// Protocol (xDS-like): the agent's first message is a Hello; the server then
// pushes a BundleUpdate whenever the version DesiredFor gives the agent
// differs from the one it runs (or was last sent on this stream), and a
// RevocationUpdate whenever the revision differs. Each push has a nonce; an
// Ack or Nack counts only for the outstanding nonce and version (stale or
// forged ones are ignored and counted). A NACKed version is not resent on the
// same stream. Messages are serialized once per version and shared by every
// stream (grpc::ByteBuffer slices are reference-counted), so a push to N
// agents costs one copy of the bundle, not N.
//
// Bounds per stream: message size (max_message_bytes), message rate (a token
// bucket), time to the Hello (hello_timeout_ms), one write in flight and at
// most one pending message of each kind (newer replaces older).
//
// Decision logs (AgentMessage.decisions) from an identified agent go to the
// Fleet's DecisionStore tagged with the stream's agent id. Besides the
// message bounds above (a flood ends the stream like any other), they have
// their own bounds, which drop and count rather than end the stream: a
// second token bucket (decision_batches_per_second), at most
// max_decision_events events per batch (the rest dropped), at most
// kMaxLoggedHeaders headers per event, and every string field cut to its
// bound with bytes outside printable ASCII replaced by '?'.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "controlplane/fleet.h"
#include "controlplane/snapshot.h"
#include "vakt/v1/agent.grpc.pb.h"

namespace vakt::controlplane {

struct AgentServerOptions {
  // Take the agent id from the Hello when the peer has no client
  // certificate; only for plaintext on loopback (`--insecure-loopback`).
  bool insecure_identity = false;
  size_t max_message_bytes = 64 * 1024;
  int64_t hello_timeout_ms = 10000;
  double messages_per_second = 20;  // sustained, per stream
  double message_burst = 200;
  // Decision-log batches (counted against the message bucket as well).
  double decision_batches_per_second = 5;
  double decision_batch_burst = 10;
  size_t max_decision_events = 1000;  // per batch; the rest are dropped
  // True if `version` is a published version whose bundle has `digest`
  // (the Hello's claim of what the agent runs is checked with it).
  std::function<bool(uint64_t version, const std::string& digest)> known_version;
  std::function<int64_t()> now_unix;  // default: the system clock
};

struct AgentServerStats {
  uint64_t streams_opened = 0;
  uint64_t bundles_sent = 0;
  uint64_t revocations_sent = 0;
  uint64_t acks = 0;
  uint64_t nacks = 0;
  uint64_t stale_replies = 0;  // ACK/NACK for a nonce or version not outstanding
  uint64_t refused = 0;        // streams ended by the server for bad input
  uint64_t decision_batches = 0;          // accepted
  uint64_t decision_events = 0;           // accepted
  uint64_t decision_batches_refused = 0;  // over the decision rate
  uint64_t decision_events_refused = 0;   // in refused batches, or over a batch's bound
  uint64_t decision_fields_truncated = 0;
};

class AgentServer final
    : public vakt::v1::AgentService::WithRawCallbackMethod_Stream<vakt::v1::AgentService::Service> {
 public:
  AgentServer(SnapshotSource* snapshots, Fleet* fleet, AgentServerOptions opts);
  ~AgentServer() override;

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Stream(
      grpc::CallbackServerContext* ctx) override;

  // Ends every stream with UNAVAILABLE and stops the sweeper. Call before
  // grpc::Server::Shutdown. Idempotent.
  void Shutdown();
  AgentServerStats stats() const;
  size_t open_streams() const;

 private:
  class Reactor;
  struct Handle;
  friend class Reactor;

  void OnSnapshot(const SnapshotPtr& snap);
  void Sweep();
  // The shared serialized push for a bundle / the revocation set.
  grpc::ByteBuffer BundleMessage(const BundleBlob& b);
  grpc::ByteBuffer RevocationMessage(const RevocationList& list);
  std::string BundleNonce(uint64_t version) const;
  std::string RevocationNonce(uint64_t revision) const;
  int64_t Now() const;

  SnapshotSource* snapshots_;
  Fleet* fleet_;
  AgentServerOptions opts_;
  std::string instance_;  // random, in every nonce
  uint64_t watch_ = 0;

  mutable std::mutex mu_;
  std::set<std::shared_ptr<Handle>> streams_;
  bool shutting_down_ = false;
  AgentServerStats stats_;
  std::condition_variable all_done_;

  std::mutex cache_mu_;
  uint64_t cache_generation_ = 0;
  std::map<uint64_t, grpc::ByteBuffer> bundle_cache_;
  uint64_t revocation_cache_revision_ = ~uint64_t{0};
  grpc::ByteBuffer revocation_cache_;

  std::mutex sweep_mu_;
  std::condition_variable sweep_cv_;
  bool stop_sweeper_ = false;
  std::thread sweeper_;
};

// The agent identity the TLS layer vouches for: the client certificate's
// subject common name, or "" without a verified certificate.
std::string PeerCertificateIdentity(const grpc::ServerContextBase& ctx);
// True for "ipv4:127.x.x.x:port", "ipv6:[::1]:port" and unix sockets.
bool PeerIsLoopback(std::string_view peer);

}  // namespace vakt::controlplane
