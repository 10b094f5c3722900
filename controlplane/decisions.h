// The control plane's decision-log buffer: the newest decision events that
// agents sent (AgentMessage.decisions), each tagged with the authenticated
// agent id of its stream, for AdminService.ListDecisions and `vakt
// decisions` (docs/agent-decision-logs.md).
//
// Why in memory: decision logs are operational telemetry, not state the
// control plane must restore; a bounded ring keeps the newest `capacity`
// events (and at most `max_bytes` of them) and evicts the oldest, so a busy
// fleet cannot grow it. Nothing is persisted: a restart starts empty. Ship
// them elsewhere for retention.
//
// Events are kept serialized (a compact string each) with a small index
// (agent, route, allow, time) so filtering does not parse; only the events
// returned are parsed.
//
// Complexity: Add is O(events) amortised; List is O(stored) for the scan
// and O(limit) parses. Thread-safety: all methods may be called
// concurrently (one mutex). Tested by tests/cp_decisions_test.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "vakt/v1/admin.pb.h"
#include "vakt/v1/agent.pb.h"

namespace vakt::controlplane {

struct DecisionFilter {
  std::string agent_id;  // "" = any
  std::string route;     // "" = any
  int allow = -1;        // -1 any, 0 deny, 1 allow
  int64_t since_unix_ms = 0;
  size_t limit = 100;
};

struct DecisionStats {
  uint64_t stored = 0;
  uint64_t stored_bytes = 0;
  uint64_t received = 0;       // events accepted
  uint64_t evicted = 0;        // pushed out by newer ones
  uint64_t refused = 0;        // refused by the stream bounds (AgentServer counts them here)
  uint64_t agent_dropped = 0;  // sum over agents of their reported drop totals
};

class DecisionStore {
 public:
  static constexpr size_t kDefaultCapacity = 100000;
  static constexpr size_t kDefaultMaxBytes = size_t{64} << 20;
  static constexpr size_t kMaxListLimit = 1000;
  static constexpr size_t kMaxAgentsTracked = 100000;  // Fleet::kMaxAgents

  explicit DecisionStore(size_t capacity = kDefaultCapacity, size_t max_bytes = kDefaultMaxBytes);

  // Stores `events` (already bounded by the caller) from `agent_id`, and
  // the agent's reported drop total. `now_ms`: the control-plane clock.
  void Add(const std::string& agent_id, std::vector<vakt::v1::DecisionEvent> events,
           uint64_t agent_dropped_total, int64_t now_ms);
  // Counts events refused before Add (rate or batch bounds).
  void CountRefused(uint64_t n);

  // The newest events matching `f`, newest first, at most
  // min(f.limit, kMaxListLimit) (0: 100).
  std::vector<vakt::v1::DecisionInfo> List(const DecisionFilter& f) const;
  DecisionStats stats() const;
  size_t capacity() const { return capacity_; }

 private:
  struct Entry {
    uint64_t seq = 0;
    int64_t received_ms = 0;
    int64_t time_ms = 0;
    bool allow = false;
    std::shared_ptr<const std::string> agent;
    std::string route;
    std::string bytes;  // the serialized DecisionEvent
  };
  void EvictLocked();

  const size_t capacity_;
  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::deque<Entry> entries_;  // oldest first
  size_t bytes_ = 0;
  uint64_t next_seq_ = 1;
  DecisionStats stats_;
  std::map<std::string, uint64_t, std::less<>> agent_dropped_;  // per agent, last reported
  std::map<std::string, std::shared_ptr<const std::string>, std::less<>> agent_names_;
};

}  // namespace vakt::controlplane
