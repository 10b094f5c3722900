// Bundle swap under load (issue 6): decider threads run Agent::Decide in a
// closed loop while a swapper activates a signed 10,000-route bundle every
// second (signature check, Bundle::Load with the verifier, atomic swap).
// The same deciders run first without swaps, in the same process, as the
// baseline. Reports per phase: decisions, failures (any answer other than
// the expected allow), and latency percentiles; and the swap's own cost.
//
// usage: agent_swap [--routes 10000] [--rules 4] [--seconds 5] [--threads 1]
//                   [--swap-ms 1000] [--json]
// With --rules 0 every route only needs an Authorization header, so each
// decision allows (200); with rules (the generator's scope, ownership,
// header and query checks) the request carries no verified token and the
// route's scope rule denies (403). Either way the expected answer is fixed
// and anything else counts as a failure.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent.h"
#include "bench/policy_gen.h"
#include "bytecode/sha256.h"
#include "compiler/compile.h"
#include "controlplane/signing.h"

namespace {

using Clock = std::chrono::steady_clock;
using vakt::agent::Agent;
using vakt::bytecode::HeaderField;
using vakt::bytecode::HttpRequest;

std::string Compile(const std::string& text) {
  vakt::compiler::SourceSet sources;
  vakt::compiler::AddSource(sources, "gen.vakt", text);
  vakt::dsl::Diagnostics diags;
  auto comp = vakt::compiler::Compile(sources, {}, diags);
  if (diags.HasErrors() || !comp || comp->bytes.empty()) {
    std::fprintf(stderr, "compile failed:\n%s\n", diags.Format().c_str());
    std::exit(1);
  }
  return comp->bytes;
}

struct Phase {
  uint64_t decisions = 0;
  uint64_t failures = 0;
  std::vector<uint32_t> nanos;  // sampled latencies
};

double Pct(std::vector<uint32_t>& v, double p) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i] / 1000.0;
}

Phase Run(Agent& agent, uint16_t expect, int threads, int seconds, int routes, bool swap, int swap_ms,
          const std::vector<std::pair<std::string, std::string>>& signed_bundles,
          std::vector<double>* swap_ms_out) {
  std::atomic<bool> stop{false};
  std::vector<Phase> per(static_cast<size_t>(threads));
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      Phase& ph = per[static_cast<size_t>(t)];
      ph.nanos.reserve(1 << 22);
      std::vector<HeaderField> headers = {{"host", "api.example"}, {"authorization", "Bearer x"}};
      char target[128];
      uint64_t i = static_cast<uint64_t>(t) * 7919;
      while (!stop.load(std::memory_order_relaxed)) {
        // Route k of the generator (bench/policy_gen.cc): api k/500,
        // resource (k%500)/4, method GET when k%4 == 0.
        int k = static_cast<int>((i * 2654435761u) % static_cast<uint64_t>(routes / 4)) * 4;
        std::snprintf(target, sizeof target, "/v1/svc%d/res%d/p-1/items", k / 500,
                      (k % 500) / 4);
        HttpRequest req;
        req.method = "GET";
        req.target = target;
        req.headers = headers;
        auto t0 = Clock::now();
        vakt::agent::Verdict v = agent.Decide(req);
        auto t1 = Clock::now();
        ++ph.decisions;
        if (v.status != expect) ++ph.failures;
        if (ph.nanos.size() < ph.nanos.capacity()) {
          ph.nanos.push_back(static_cast<uint32_t>(
              std::min<int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count(),
                                UINT32_MAX)));
        }
        ++i;
      }
    });
  }
  auto end = Clock::now() + std::chrono::seconds(seconds);
  size_t n = 0;
  while (Clock::now() < end) {
    if (swap) {
      const auto& [bytes, sig] = signed_bundles[n % signed_bundles.size()];
      auto t0 = Clock::now();
      auto st = agent.Load("gen", n + 2, bytes, sig,
                           agent.active() ? agent.active()->key_id : std::string());
      auto t1 = Clock::now();
      if (!st.ok()) {
        std::fprintf(stderr, "swap failed: %s\n", st.ToString().c_str());
        std::exit(1);
      }
      swap_ms_out->push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      ++n;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(swap_ms));
  }
  stop = true;
  for (auto& t : ts) t.join();
  Phase all;
  for (auto& p : per) {
    all.decisions += p.decisions;
    all.failures += p.failures;
    all.nanos.insert(all.nanos.end(), p.nanos.begin(), p.nanos.end());
  }
  return all;
}

}  // namespace

int main(int argc, char** argv) {
  int routes = 10000, seconds = 5, threads = 1, swap_ms = 1000, rules = 4;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    auto next = [&](int* out) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", argv[i]);
        std::exit(2);
      }
      *out = std::atoi(argv[++i]);
    };
    if (!std::strcmp(argv[i], "--routes")) next(&routes);
    else if (!std::strcmp(argv[i], "--seconds")) next(&seconds);
    else if (!std::strcmp(argv[i], "--threads")) next(&threads);
    else if (!std::strcmp(argv[i], "--swap-ms")) next(&swap_ms);
    else if (!std::strcmp(argv[i], "--rules")) next(&rules);
    else if (!std::strcmp(argv[i], "--json")) json = true;
    else {
      std::fprintf(stderr,
                   "usage: agent_swap [--routes N] [--rules R] [--seconds S] [--threads T] "
                   "[--swap-ms MS] [--json]\n");
      return 2;
    }
  }
  if (rules < 0 || rules > 16 || routes < 4 || routes > 200000 || seconds < 1 || threads < 1 || threads > 64 || swap_ms < 1) {
    std::fprintf(stderr, "agent_swap: out of range\n");
    return 2;
  }

  // Two bundles of the same shape with different bytes (so every swap is a
  // real new version), signed like the control plane signs.
  vakt::bench::GenOptions g;
  g.routes = routes;
  g.rules_per_route = rules;
  std::string text = vakt::bench::GeneratePolicy(g);
  std::string a = Compile(text + "\n// a\n"), b = Compile(text + "\n// b\n");
  std::string dir = (std::filesystem::temp_directory_path() /
                     ("vakt-agent-swap-" + std::to_string(::getpid())))
                        .string();
  std::filesystem::create_directories(dir);
  auto signer = vakt::controlplane::BundleSigner::LoadOrCreate(dir);
  std::filesystem::remove_all(dir);
  if (!signer.ok()) return 1;
  vakt::agent::AgentOptions o;
  if (!o.trusted_keys.AddPem(signer->public_key_pem()).ok()) return 1;
  Agent agent(std::move(o));
  std::vector<std::pair<std::string, std::string>> bundles;
  uint64_t version = 1;
  auto sign = [&](const std::string& bytes, uint64_t v) {
    auto d = vakt::bytecode::Sha256(bytes);
    return *signer->Sign("gen", v, vakt::bytecode::HexLower(d.data(), d.size()));
  };
  if (!agent.Load("gen", version, a, sign(a, version), signer->key_id()).ok()) return 1;
  // Versions 2, 3, ... alternate between b and a; pre-sign enough of them.
  std::vector<std::pair<std::string, std::string>> swaps;
  for (int v = 2; v < 2 + seconds * 1000 / swap_ms + 8; ++v) {
    const std::string& bytes = (v % 2 == 0) ? b : a;
    swaps.emplace_back(bytes, sign(bytes, static_cast<uint64_t>(v)));
  }

  std::vector<double> swap_cost;
  uint16_t expect = rules == 0 ? 200 : 403;
  Phase base = Run(agent, expect, threads, seconds, routes, false, swap_ms, swaps, &swap_cost);
  Phase with = Run(agent, expect, threads, seconds, routes, true, swap_ms, swaps, &swap_cost);
  std::sort(swap_cost.begin(), swap_cost.end());
  double swap_median = swap_cost.empty() ? 0 : swap_cost[swap_cost.size() / 2];

  auto line = [&](const char* name, Phase& p) {
    double p50 = Pct(p.nanos, 0.50), p99 = Pct(p.nanos, 0.99), p999 = Pct(p.nanos, 0.999);
    double mx = p.nanos.empty() ? 0 : *std::max_element(p.nanos.begin(), p.nanos.end()) / 1000.0;
    std::printf("%-12s decisions %10llu  failures %llu  p50 %7.2f us  p99 %7.2f us  p99.9 %8.2f us"
                "  max %9.1f us\n",
                name, static_cast<unsigned long long>(p.decisions),
                static_cast<unsigned long long>(p.failures), p50, p99, p999, mx);
    return std::vector<double>{p50, p99, p999, mx};
  };
  std::printf("agent_swap: %d routes x %d rules, bundle %zu bytes, %d decider thread(s), %d s per phase, "
              "swap every %d ms\n",
              routes, rules, a.size(), threads, seconds, swap_ms);
  auto bl = line("no swaps", base);
  auto wl = line("with swaps", with);
  std::printf("swaps %zu, each (signature + load + verify + swap) median %.1f ms, max %.1f ms\n",
              swap_cost.size(), swap_median, swap_cost.empty() ? 0.0 : swap_cost.back());
  std::printf("ratio with/without swaps: p50 %.2fx, p99 %.2fx\n", bl[0] > 0 ? wl[0] / bl[0] : 0,
              bl[1] > 0 ? wl[1] / bl[1] : 0);
  if (json) {
    std::printf("{\"routes\":%d,\"base_p50_us\":%.3f,\"base_p99_us\":%.3f,\"swap_p50_us\":%.3f,"
                "\"swap_p99_us\":%.3f,\"failures\":%llu,\"swaps\":%zu,\"swap_ms_median\":%.2f}\n",
                routes, bl[0], bl[1], wl[0], wl[1],
                static_cast<unsigned long long>(base.failures + with.failures), swap_cost.size(),
                swap_median);
  }
  return (base.failures + with.failures) == 0 ? 0 : 1;
}
