// The decision-log ring of the control plane. See decisions.h.
#include "controlplane/decisions.h"

#include <algorithm>

namespace vakt::controlplane {

DecisionStore::DecisionStore(size_t capacity, size_t max_bytes)
    : capacity_(std::max<size_t>(capacity, 1)), max_bytes_(std::max<size_t>(max_bytes, 1)) {}

void DecisionStore::Add(const std::string& agent_id, std::vector<vakt::v1::DecisionEvent> events,
                        uint64_t agent_dropped_total, int64_t now_ms) {
  // Serialize outside the lock.
  std::vector<Entry> fresh;
  fresh.reserve(events.size());
  for (vakt::v1::DecisionEvent& e : events) {
    Entry en;
    en.received_ms = now_ms;
    en.time_ms = e.time_unix_ms();
    en.allow = e.allow();
    en.route = e.route();
    en.bytes = e.SerializeAsString();
    fresh.push_back(std::move(en));
  }
  std::lock_guard<std::mutex> l(mu_);
  std::shared_ptr<const std::string> name;
  auto it = agent_names_.find(agent_id);
  if (it != agent_names_.end()) {
    name = it->second;
  } else {
    name = std::make_shared<const std::string>(agent_id);
    if (agent_names_.size() < kMaxAgentsTracked) agent_names_.emplace(agent_id, name);
  }
  if (auto d = agent_dropped_.find(agent_id); d != agent_dropped_.end()) {
    // A running total; it restarts at 0 when the agent restarts.
    if (agent_dropped_total > d->second) stats_.agent_dropped += agent_dropped_total - d->second;
    if (agent_dropped_total < d->second) stats_.agent_dropped += agent_dropped_total;
    d->second = agent_dropped_total;
  } else if (agent_dropped_.size() < kMaxAgentsTracked) {
    agent_dropped_.emplace(agent_id, agent_dropped_total);
    stats_.agent_dropped += agent_dropped_total;
  }
  for (Entry& en : fresh) {
    en.seq = next_seq_++;
    en.agent = name;
    bytes_ += en.bytes.size() + en.route.size();
    entries_.push_back(std::move(en));
    ++stats_.received;
  }
  EvictLocked();
}

void DecisionStore::EvictLocked() {
  while (!entries_.empty() && (entries_.size() > capacity_ || bytes_ > max_bytes_)) {
    bytes_ -= entries_.front().bytes.size() + entries_.front().route.size();
    entries_.pop_front();
    ++stats_.evicted;
  }
}

void DecisionStore::CountRefused(uint64_t n) {
  std::lock_guard<std::mutex> l(mu_);
  stats_.refused += n;
}

std::vector<vakt::v1::DecisionInfo> DecisionStore::List(const DecisionFilter& f) const {
  size_t limit = f.limit == 0 ? 100 : std::min(f.limit, kMaxListLimit);
  std::vector<vakt::v1::DecisionInfo> out;
  std::lock_guard<std::mutex> l(mu_);
  for (auto it = entries_.rbegin(); it != entries_.rend() && out.size() < limit; ++it) {
    const Entry& e = *it;
    if (!f.agent_id.empty() && *e.agent != f.agent_id) continue;
    if (!f.route.empty() && e.route != f.route) continue;
    if (f.allow >= 0 && e.allow != (f.allow == 1)) continue;
    if (f.since_unix_ms > 0 && e.time_ms < f.since_unix_ms) continue;
    vakt::v1::DecisionInfo info;
    if (!info.mutable_event()->ParseFromString(e.bytes)) continue;  // our own bytes: cannot fail
    info.set_seq(e.seq);
    info.set_agent_id(*e.agent);
    info.set_received_unix_ms(e.received_ms);
    out.push_back(std::move(info));
  }
  return out;
}

DecisionStats DecisionStore::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  DecisionStats s = stats_;
  s.stored = entries_.size();
  s.stored_bytes = bytes_;
  return s;
}

}  // namespace vakt::controlplane
