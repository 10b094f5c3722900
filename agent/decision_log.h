// Decision logs: a DecisionSink (agent.h) that turns every decision into a
// compact, masked DecisionEvent and keeps it in a bounded ring until the
// control-plane client takes it in batches (decision_log_proto.cc fills an
// AgentMessage; docs/agent-decision-logs.md).
//
// Why a ring with drops: Record() runs on the deciding thread, so it must
// never block on the network or grow without bound. The event is built
// outside the lock (a few small string copies), then moved into a fixed
// array of `capacity` slots under a short mutex; when the ring is full the
// new event is dropped and counted. Nothing waits for the control plane.
//
// Secrets never enter an event: the values of authorization, proxy-
// authorization, dpop, cookie and set-cookie (and of any configured header)
// are replaced by "***" (an Authorization scheme word such as "DPoP" is
// kept); the query is logged only if asked, with the values of
// access_token, id_token, refresh_token, client_secret, code_verifier,
// password (and configured names) masked; bodies are never logged. From the
// verified token only its identifiers are kept (sub, client_id, jti). Every
// string is cut to a fixed bound and bytes outside printable ASCII become
// '?', so an event is valid UTF-8, safe in a terminal and at most
// kMaxEventBytes on the wire.
//
// Complexity: Record is O(|target| + headers * logged headers), bounded by
// the field limits below; TakeBatch is O(events taken).
// Thread-safety: every method may be called concurrently.
// Tested by tests/agent_log_test.cc.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/agent.h"

namespace vakt::agent {

// Field bounds (bytes, after sanitising).
inline constexpr size_t kMaxLogPathBytes = 512;
inline constexpr size_t kMaxLogQueryBytes = 512;
inline constexpr size_t kMaxLogNameBytes = 128;  // route, rule, error, method, ids
inline constexpr size_t kMaxLogHeaderValueBytes = 256;
inline constexpr size_t kMaxLoggedHeaders = 16;  // configured names
inline constexpr size_t kMaxMaskNames = 64;      // configured masks of each kind
inline constexpr size_t kMaxLogCapacity = 1000000;
inline constexpr size_t kMaxLogBatch = 1000;  // the control plane's bound too
// A generous upper bound of one event's encoded size.
inline constexpr size_t kMaxEventBytes =
    kMaxLogPathBytes + kMaxLogQueryBytes + 8 * kMaxLogNameBytes +
    kMaxLoggedHeaders * (kMaxLogNameBytes + kMaxLogHeaderValueBytes + 16) + 256;

inline constexpr std::string_view kMaskedValue = "***";

struct DecisionEvent {
  int64_t time_unix_ms = 0;
  std::string interface;
  std::string method;
  std::string path;   // no query
  std::string query;  // masked; "" unless DecisionLogOptions::log_query
  std::string route;
  bool allow = false;
  uint32_t status = 0;
  std::string rule;
  std::string error;
  uint64_t bundle_version = 0;
  uint64_t latency_nanos = 0;
  std::string sub;
  std::string client_id;
  std::string jti;
  bool response = false;         // a response decision
  uint32_t upstream_status = 0;  // the response's status (response decisions)
  std::vector<std::pair<std::string, std::string>> headers;  // (lower name, masked value)

  // An upper bound of the protobuf encoding's size (decision_log_proto.cc).
  size_t EncodedSizeBound() const;
  // One JSON object (for local logs and tests); field names as in the proto.
  std::string ToJson() const;
};

struct DecisionLogOptions {
  size_t capacity = 10000;  // events buffered; 1 .. kMaxLogCapacity
  size_t max_batch = 500;   // events per batch; 1 .. kMaxLogBatch
  // Request headers copied into events (any case; at most kMaxLoggedHeaders).
  std::vector<std::string> log_headers;
  // Headers whose values are masked besides the built-in ones.
  std::vector<std::string> mask_headers;
  // Log the query string (values of masked parameters replaced).
  bool log_query = false;
  // Query parameters whose values are masked besides the built-in ones.
  std::vector<std::string> mask_query_params;
  // False: only denies are logged (allows are counted as `skipped`).
  bool log_allows = true;
  // Clock in unix milliseconds; null: the system clock. Tests pin it.
  int64_t (*clock_ms)() = nullptr;
};

// Checks the bounds of `o` (capacity, batch, list sizes, header names).
Status CheckDecisionLogOptions(const DecisionLogOptions& o);

// True for the headers whose values are always masked (any case).
bool IsAlwaysMaskedHeader(std::string_view name);
// True for the query parameters whose values are always masked (any case).
bool IsAlwaysMaskedQueryParam(std::string_view name);

// `raw_query` (after '?') with the values of masked parameters (built-in
// and `extra`, compared case-insensitively after percent-decoding the name)
// replaced by "***", sanitised and cut to kMaxLogQueryBytes.
std::string MaskQuery(std::string_view raw_query, const std::vector<std::string>& extra);

class DecisionLog : public DecisionSink {
 public:
  // Options out of bounds are clamped (CheckDecisionLogOptions tells why).
  explicit DecisionLog(DecisionLogOptions options);
  DecisionLog(const DecisionLog&) = delete;
  DecisionLog& operator=(const DecisionLog&) = delete;

  void Record(std::string_view interface, const bytecode::HttpRequest& req,
              const bytecode::HttpResponse* response, const Verdict& verdict,
              uint64_t latency_nanos) override;

  // The event Record would push (no side effect). Exposed for tests.
  DecisionEvent MakeEvent(std::string_view interface, const bytecode::HttpRequest& req,
                          const bytecode::HttpResponse* response, const Verdict& verdict,
                          uint64_t latency_nanos) const;

  // Pushes an event; false (and counted as dropped) when the ring is full
  // or the event's EncodedSizeBound() passes kMaxEventBytes.
  bool Push(DecisionEvent event);

  // Pops up to min(max, max_batch) of the oldest events, stopping before
  // the sum of their EncodedSizeBound() would pass `max_bytes` (the first
  // event is always taken: each is at most kMaxEventBytes).
  std::vector<DecisionEvent> TakeBatch(size_t max,
                                       size_t max_bytes = std::numeric_limits<size_t>::max());

  // The sender reports what it delivered (sent) or gave up on (lost: the
  // stream broke with the batch in flight; counted as dropped).
  void MarkSent(uint64_t n) { sent_.fetch_add(n, std::memory_order_relaxed); }
  void MarkLost(uint64_t n) { dropped_.fetch_add(n, std::memory_order_relaxed); }

  uint64_t recorded() const { return recorded_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t sent() const { return sent_.load(std::memory_order_relaxed); }
  uint64_t skipped() const { return skipped_.load(std::memory_order_relaxed); }
  size_t size() const;
  size_t capacity() const { return ring_.size(); }
  const DecisionLogOptions& options() const { return options_; }

 private:
  bool HeaderMasked(std::string_view lower_name) const;

  DecisionLogOptions options_;  // names lower-cased, bounds clamped
  mutable std::mutex mu_;
  std::vector<DecisionEvent> ring_;  // fixed size: capacity
  size_t head_ = 0;                  // oldest
  size_t count_ = 0;
  std::atomic<uint64_t> recorded_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> skipped_{0};
};

}  // namespace vakt::agent

namespace vakt::v1 {
class AgentMessage;
}

namespace vakt::agent {

// Fills `out` with a DecisionLogBatch of up to `max` events (and at most
// kMaxBatchWireBytes encoded) taken from `log`, with its drop total.
// Returns false, leaving `out` untouched, when no event is buffered.
// Defined in decision_log_proto.cc (library vakt::agent_log_proto).
inline constexpr size_t kMaxBatchWireBytes = 48 * 1024;  // server limit: 64 KiB
bool FillBatch(DecisionLog& log, size_t max, vakt::v1::AgentMessage* out);

}  // namespace vakt::agent
