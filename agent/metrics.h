// Agent metrics in the Prometheus text exposition format (version 0.0.4).
//
// Why hand-rolled: the hot path is one decision every few microseconds on
// every core, so counting must be a relaxed atomic add with no lock and no
// allocation; the few series the agent has do not justify a client library
// Debian does not package.
//
//  - RouteCounters: decisions per (route, outcome status) of one bundle,
//    a fixed array of atomics indexed by route and status bucket. When a
//    bundle is replaced its counts are folded into Metrics' totals, so the
//    exported counters never go down.
//  - A decision latency histogram with fixed buckets (seconds, as
//    Prometheus convention wants).
//  - Named counters and gauges for rare events (loads, reconnects, dropped
//    log events), behind a mutex.
//
// Every name and label value is escaped on output; the number of series is
// bounded by the routes of one bundle plus kMaxFoldedSeries.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace vakt::agent {

// Status buckets counted per route. Index kOtherStatus takes the rest.
inline constexpr std::array<uint16_t, 14> kCountedStatuses = {
    200, 400, 401, 403, 404, 405, 413, 414, 415, 429, 431, 500, 502, 503};
inline constexpr size_t kOtherStatus = kCountedStatuses.size();
inline constexpr size_t kStatusBuckets = kCountedStatuses.size() + 1;
// Series kept for routes of replaced bundles (beyond it they merge into
// route="(other)").
inline constexpr size_t kMaxFoldedSeries = 50000;

size_t StatusBucket(uint16_t status);

// Per-bundle decision counters. Route names come from the bundle; a
// decision with no route (404, malformed request, no policy) counts under
// route "".
class RouteCounters {
 public:
  explicit RouteCounters(std::vector<std::string> route_names);
  // Index of `route` (kNoRoute for "" or an unknown name). O(|route|).
  uint32_t RouteIndex(std::string_view route) const;
  void Count(uint32_t route_index, uint16_t status);
  // Calls f(route, status_label, count) for every non-zero cell.
  void ForEach(const std::function<void(std::string_view, std::string_view, uint64_t)>& f) const;

  static constexpr uint32_t kNoRoute = 0;  // row 0 is route ""

 private:
  std::vector<std::string> names_;  // names_[0] == ""
  std::unordered_map<std::string_view, uint32_t> index_;
  std::unique_ptr<std::atomic<uint64_t>[]> cells_;  // names_.size() * kStatusBuckets
};

// Latency histogram (nanoseconds in, seconds out).
class LatencyHistogram {
 public:
  // Upper bounds in microseconds.
  static constexpr std::array<uint32_t, 14> kBoundsMicros = {
      1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 100000};
  void Observe(uint64_t nanos);
  void Render(std::string_view name, std::string_view help, std::string* out) const;
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, kBoundsMicros.size() + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_nanos_{0};
};

class Metrics {
 public:
  // Adds `delta` to the counter `name{labels}` (labels already rendered,
  // e.g. `reason="signature"`, or ""). For rare events.
  void Add(std::string_view name, std::string_view labels, uint64_t delta = 1);
  void SetGauge(std::string_view name, std::string_view labels, double value);
  // Folds a replaced bundle's route counters into the totals.
  void Fold(const RouteCounters& old);

  LatencyHistogram& decision_latency() { return latency_; }

  // The whole exposition. `current` (may be null) is the active bundle's
  // counters; `extra` appends more lines (gauges computed at scrape time).
  std::string Render(const RouteCounters* current,
                     const std::function<void(std::string*)>& extra = nullptr) const;

  // The value of counter or gauge `name{labels}` (tests), 0 if absent.
  double Value(std::string_view name, std::string_view labels) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::map<std::string, double>, std::less<>> counters_;
  std::map<std::string, std::map<std::string, double>, std::less<>> gauges_;
  std::map<std::pair<std::string, std::string>, uint64_t> folded_;  // (route, status)
  LatencyHistogram latency_;
};

// `value` escaped for a Prometheus label value (backslash, quote, newline).
std::string EscapeLabel(std::string_view value);

}  // namespace vakt::agent
