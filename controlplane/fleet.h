// The fleet registry: what the control plane knows of every agent, live.
// Streams report hellos, ACKs, NACKs, heartbeats and disconnects here; the
// admin API's fleet view and the rollout controller read it; a flusher
// writes changed records to the store in batches (agent telemetry is not
// worth a transaction per heartbeat). Records of agents seen before a
// restart come from the store, marked disconnected.
//
// One session per agent id: a new stream for an id closes the older one
// (its `close` callback), as an agent that reconnects after a network
// split would otherwise leave a ghost. Reconnect floods are bounded per id
// (kMaxConnectsPerWindow per kConnectWindowSeconds) and the number of
// records is bounded (kMaxAgents).
//
// The decision logs agents send are kept here too (decisions.h), tagged
// with the id of the session that sent them.
//
// Thread-safe: one mutex; every operation is O(log n) except List and
// TakeDirty, which copy.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "bytecode/status.h"
#include "controlplane/decisions.h"
#include "controlplane/store.h"

namespace vakt::controlplane {

struct AgentLive {
  AgentRecord record;
  bool connected = false;
};

class Fleet {
 public:
  static constexpr size_t kMaxAgents = 100000;
  static constexpr int kMaxConnectsPerWindow = 30;
  static constexpr int64_t kConnectWindowSeconds = 10;

  explicit Fleet(std::vector<AgentRecord> known = {},
                 size_t max_decisions = DecisionStore::kDefaultCapacity);

  // Registers a stream for `hello.id` (labels, versions, peer...), closing
  // the previous stream of the same id. Returns the session id, or
  // kResourceExhausted when the id reconnects too often or the fleet is full.
  Result<uint64_t> Connect(const AgentRecord& hello, int64_t now, std::function<void()> close);
  // Applies `fn` to the agent's record if `session` is still its current
  // one (a replaced stream's late reports are dropped). Marks it dirty.
  void Update(uint64_t session, const std::function<void(AgentRecord&)>& fn);
  void Disconnect(uint64_t session, int64_t now);

  std::vector<AgentLive> List() const;
  // Records changed since the last call (for the store).
  std::vector<AgentRecord> TakeDirty();
  // Increases whenever an ACK, NACK, connect or disconnect changes a record.
  uint64_t change_count() const;
  size_t connected() const;
  // Closes every stream (shutdown). The callbacks run outside the lock.
  void CloseAll();

  // Stores decision events from `session`'s agent (decisions.h); a
  // replaced or unknown session's events are refused and counted. Returns
  // whether they were stored.
  bool RecordDecisions(uint64_t session, std::vector<vakt::v1::DecisionEvent> events,
                       uint64_t agent_dropped_total, int64_t now_ms);
  DecisionStore& decisions() { return decisions_; }
  const DecisionStore& decisions() const { return decisions_; }

 private:
  struct Entry {
    AgentRecord record;
    uint64_t session = 0;  // 0: not connected
    std::function<void()> close;
    std::vector<int64_t> recent_connects;  // bounded by kMaxConnectsPerWindow
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> agents_;
  std::map<uint64_t, std::string> sessions_;
  std::set<std::string, std::less<>> dirty_;
  uint64_t next_session_ = 1;
  uint64_t changes_ = 0;
  DecisionStore decisions_;
};

}  // namespace vakt::controlplane
