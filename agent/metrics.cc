// Prometheus text exposition for the agent (see metrics.h for why it is
// hand-rolled and how the hot path stays lock-free).
#include "agent/metrics.h"

#include <cinttypes>
#include <cstdio>

namespace vakt::agent {

size_t StatusBucket(uint16_t status) {
  for (size_t i = 0; i < kCountedStatuses.size(); ++i) {
    if (kCountedStatuses[i] == status) return i;
  }
  return kOtherStatus;
}

namespace {

std::string StatusLabel(size_t bucket) {
  return bucket == kOtherStatus ? "other" : std::to_string(kCountedStatuses[bucket]);
}

void AppendNumber(std::string* out, double v) {
  char buf[64];
  if (v == static_cast<double>(static_cast<int64_t>(v)) && v < 9.0e15 && v > -9.0e15) {
    std::snprintf(buf, sizeof buf, "%" PRId64, static_cast<int64_t>(v));
  } else {
    std::snprintf(buf, sizeof buf, "%.9g", v);
  }
  out->append(buf);
}

// Metric names are ours (constants in the code), but sanitise anyway so a
// mistake can never break the exposition format.
std::string SafeName(std::string_view name) {
  std::string s;
  s.reserve(name.size());
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':';
    s.push_back(ok ? c : '_');
  }
  if (s.empty()) s = "_";
  return s;
}

}  // namespace

std::string EscapeLabel(std::string_view value) {
  std::string s;
  s.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      s += "\\\\";
    } else if (c == '"') {
      s += "\\\"";
    } else if (c == '\n') {
      s += "\\n";
    } else {
      s.push_back(c);
    }
  }
  return s;
}

RouteCounters::RouteCounters(std::vector<std::string> route_names) {
  names_.reserve(route_names.size() + 1);
  names_.emplace_back();
  for (auto& n : route_names) {
    if (n.empty()) continue;
    names_.push_back(std::move(n));
  }
  // Views into names_, which no longer changes.
  for (uint32_t i = 1; i < names_.size(); ++i) index_.emplace(names_[i], i);
  size_t cells = names_.size() * kStatusBuckets;
  cells_ = std::make_unique<std::atomic<uint64_t>[]>(cells);
  for (size_t i = 0; i < cells; ++i) cells_[i].store(0, std::memory_order_relaxed);
}

uint32_t RouteCounters::RouteIndex(std::string_view route) const {
  if (route.empty()) return kNoRoute;
  auto it = index_.find(route);
  return it == index_.end() ? kNoRoute : it->second;
}

void RouteCounters::Count(uint32_t route_index, uint16_t status) {
  if (route_index >= names_.size()) route_index = kNoRoute;
  cells_[route_index * kStatusBuckets + StatusBucket(status)].fetch_add(
      1, std::memory_order_relaxed);
}

void RouteCounters::ForEach(
    const std::function<void(std::string_view, std::string_view, uint64_t)>& f) const {
  for (size_t r = 0; r < names_.size(); ++r) {
    for (size_t b = 0; b < kStatusBuckets; ++b) {
      uint64_t n = cells_[r * kStatusBuckets + b].load(std::memory_order_relaxed);
      if (n != 0) f(names_[r], StatusLabel(b), n);
    }
  }
}

void LatencyHistogram::Observe(uint64_t nanos) {
  size_t i = 0;
  while (i < kBoundsMicros.size() && nanos > uint64_t{kBoundsMicros[i]} * 1000) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_nanos_.fetch_add(nanos, std::memory_order_relaxed);
}

void LatencyHistogram::Render(std::string_view name, std::string_view help,
                              std::string* out) const {
  std::string n = SafeName(name);
  *out += "# HELP " + n + " " + std::string(help) + "\n# TYPE " + n + " histogram\n";
  uint64_t cumulative = 0;
  char buf[64];
  for (size_t i = 0; i < kBoundsMicros.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    std::snprintf(buf, sizeof buf, "%g", kBoundsMicros[i] / 1e6);
    *out += n + "_bucket{le=\"" + buf + "\"} " + std::to_string(cumulative) + "\n";
  }
  cumulative += buckets_[kBoundsMicros.size()].load(std::memory_order_relaxed);
  *out += n + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  std::snprintf(buf, sizeof buf, "%.9f", sum_nanos_.load(std::memory_order_relaxed) / 1e9);
  *out += n + "_sum " + buf + "\n";
  // The count is the buckets' total, so the exposition is self-consistent
  // even while other threads observe.
  *out += n + "_count " + std::to_string(cumulative) + "\n";
}

void Metrics::Add(std::string_view name, std::string_view labels, uint64_t delta) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& series = counters_[SafeName(name)];
  series[std::string(labels)] += static_cast<double>(delta);
}

void Metrics::SetGauge(std::string_view name, std::string_view labels, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_[SafeName(name)][std::string(labels)] = value;
}

void Metrics::Fold(const RouteCounters& old) {
  std::lock_guard<std::mutex> lock(mu_);
  old.ForEach([&](std::string_view route, std::string_view status, uint64_t n) {
    std::pair<std::string, std::string> key(route, status);
    auto it = folded_.find(key);
    if (it == folded_.end() && folded_.size() >= kMaxFoldedSeries) {
      key.first = "(other)";
      it = folded_.find(key);
    }
    if (it == folded_.end()) {
      folded_.emplace(std::move(key), n);
    } else {
      it->second += n;
    }
  });
}

double Metrics::Value(std::string_view name, std::string_view labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto* family : {&counters_, &gauges_}) {
    auto f = family->find(name);
    if (f == family->end()) continue;
    auto s = f->second.find(std::string(labels));
    if (s != f->second.end()) return s->second;
  }
  return 0;
}

std::string Metrics::Render(const RouteCounters* current,
                            const std::function<void(std::string*)>& extra) const {
  std::string out;
  out.reserve(4096);
  // Decisions: the active bundle's cells plus what replaced bundles counted.
  std::map<std::pair<std::string, std::string>, uint64_t> decisions;
  {
    std::lock_guard<std::mutex> lock(mu_);
    decisions = folded_;
  }
  if (current != nullptr) {
    current->ForEach([&](std::string_view route, std::string_view status, uint64_t n) {
      decisions[{std::string(route), std::string(status)}] += n;
    });
  }
  out +=
      "# HELP vakt_agent_decisions_total Decisions by route and HTTP status (200 = allow).\n"
      "# TYPE vakt_agent_decisions_total counter\n";
  for (const auto& [key, n] : decisions) {
    out += "vakt_agent_decisions_total{route=\"" + EscapeLabel(key.first) + "\",status=\"" +
           key.second + "\",outcome=\"" + (key.second == "200" ? "allow" : "deny") + "\"} " +
           std::to_string(n) + "\n";
  }
  latency_.Render("vakt_agent_decision_duration_seconds",
                  "Time to decide one request or response.", &out);
  {
  std::lock_guard<std::mutex> lock(mu_);
  auto family = [&out](const std::string& name, const char* type,
                       const std::map<std::string, double>& series) {
    out += "# TYPE " + name + " " + type + "\n";
    for (const auto& [labels, v] : series) {
      out += name;
      if (!labels.empty()) out += "{" + labels + "}";
      out += " ";
      AppendNumber(&out, v);
      out += "\n";
    }
  };
  for (const auto& [name, series] : counters_) family(name, "counter", series);
  for (const auto& [name, series] : gauges_) family(name, "gauge", series);
  }
  if (extra) extra(&out);  // outside the lock: it may read metrics itself
  return out;
}

}  // namespace vakt::agent
