// The fleet registry. See fleet.h.
#include "controlplane/fleet.h"

#include <algorithm>

namespace vakt::controlplane {

Fleet::Fleet(std::vector<AgentRecord> known, size_t max_decisions) : decisions_(max_decisions) {
  for (AgentRecord& r : known) {
    if (agents_.size() >= kMaxAgents) break;
    std::string id = r.id;
    agents_[id].record = std::move(r);
  }
}

Result<uint64_t> Fleet::Connect(const AgentRecord& hello, int64_t now,
                                std::function<void()> close) {
  std::function<void()> close_old;
  uint64_t session = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = agents_.find(hello.id);
    if (it == agents_.end()) {
      if (agents_.size() >= kMaxAgents) {
        return ResourceExhausted("the fleet holds " + std::to_string(kMaxAgents) +
                                 " agents already");
      }
      it = agents_.emplace(hello.id, Entry{}).first;
      it->second.record.id = hello.id;
      it->second.record.first_seen = now;
    }
    Entry& e = it->second;
    auto& rc = e.recent_connects;
    rc.erase(std::remove_if(rc.begin(), rc.end(),
                            [&](int64_t t) { return t <= now - kConnectWindowSeconds; }),
             rc.end());
    if (rc.size() >= static_cast<size_t>(kMaxConnectsPerWindow)) {
      return ResourceExhausted("agent `" + hello.id + "` reconnected " +
                               std::to_string(rc.size()) + " times in " +
                               std::to_string(kConnectWindowSeconds) + " s; retry later");
    }
    rc.push_back(now);
    if (e.session != 0) {
      sessions_.erase(e.session);
      close_old = std::move(e.close);
    }
    session = next_session_++;
    e.session = session;
    e.close = std::move(close);
    sessions_[session] = hello.id;
    AgentRecord& r = e.record;
    r.labels = hello.labels;
    r.last_seen = now;
    r.active_version = hello.active_version;
    r.active_digest = hello.active_digest;
    r.revocation_revision = hello.revocation_revision;
    r.agent_version = hello.agent_version;
    r.peer = hello.peer;
    dirty_.insert(hello.id);
    ++changes_;
  }
  if (close_old) close_old();
  return session;
}

void Fleet::Update(uint64_t session, const std::function<void(AgentRecord&)>& fn) {
  std::lock_guard<std::mutex> l(mu_);
  auto s = sessions_.find(session);
  if (s == sessions_.end()) return;
  auto it = agents_.find(s->second);
  if (it == agents_.end()) return;
  fn(it->second.record);
  dirty_.insert(s->second);
  ++changes_;
}

void Fleet::Disconnect(uint64_t session, int64_t now) {
  std::lock_guard<std::mutex> l(mu_);
  auto s = sessions_.find(session);
  if (s == sessions_.end()) return;
  auto it = agents_.find(s->second);
  if (it != agents_.end()) {
    it->second.session = 0;
    it->second.close = nullptr;
    it->second.record.last_seen = now;
    dirty_.insert(s->second);
  }
  sessions_.erase(s);
  ++changes_;
}

std::vector<AgentLive> Fleet::List() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<AgentLive> out;
  out.reserve(agents_.size());
  for (const auto& [id, e] : agents_) out.push_back(AgentLive{e.record, e.session != 0});
  return out;
}

std::vector<AgentRecord> Fleet::TakeDirty() {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<AgentRecord> out;
  out.reserve(dirty_.size());
  for (const std::string& id : dirty_) {
    auto it = agents_.find(id);
    if (it != agents_.end()) out.push_back(it->second.record);
  }
  dirty_.clear();
  return out;
}

uint64_t Fleet::change_count() const {
  std::lock_guard<std::mutex> l(mu_);
  return changes_;
}

size_t Fleet::connected() const {
  std::lock_guard<std::mutex> l(mu_);
  return sessions_.size();
}

void Fleet::CloseAll() {
  std::vector<std::function<void()>> closers;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [id, e] : agents_) {
      if (e.close) closers.push_back(e.close);
    }
  }
  for (auto& c : closers) c();
}

bool Fleet::RecordDecisions(uint64_t session, std::vector<vakt::v1::DecisionEvent> events,
                            uint64_t agent_dropped_total, int64_t now_ms) {
  std::string id;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = sessions_.find(session);
    if (it != sessions_.end()) id = it->second;
  }
  if (id.empty()) {
    decisions_.CountRefused(events.size());
    return false;
  }
  decisions_.Add(id, std::move(events), agent_dropped_total, now_ms);
  return true;
}

}  // namespace vakt::controlplane
