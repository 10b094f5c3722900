// Compiler and loader benchmarks: compile time and peak heap for N routes
// (N = 1,000 and 10,000), bundle load + verify time. Baselines measured in
// the same run: parsing alone (front end) and Parse() without the verifier.
// Targets (issue 2): 10,000 routes compile in < 2 s, load + verify < 50 ms.
#include <benchmark/benchmark.h>

#include <map>

#include "bench/alloc_counter.h"
#include "bench/policy_gen.h"
#include "bytecode/bundle.h"
#include "compiler/compile.h"
#include "dsl/parser.h"

namespace {

using namespace vakt;

const std::string& Policy(int n) {
  static std::map<int, std::string> cache;
  auto& s = cache[n];
  if (s.empty()) {
    bench::GenOptions o;
    o.routes = n;
    s = bench::GeneratePolicy(o);
  }
  return s;
}

const std::string& BundleBytes(int n) {
  static std::map<int, std::string> cache;
  auto& b = cache[n];
  if (b.empty()) {
    compiler::SourceSet s;
    compiler::AddSource(s, "gen.vakt", Policy(n));
    dsl::Diagnostics d;
    auto c = compiler::Compile(s, {}, d);
    if (d.HasErrors()) {
      fprintf(stderr, "%s", d.Format().c_str());
      abort();
    }
    b = c->bytes;
  }
  return b;
}

// Compiles the policy as one file per api (files parse in parallel) or,
// with range(1) == 1, as a single file.
void BM_Compile(benchmark::State& state) {
  int n = static_cast<int>(state.range(0));
  bool single = state.range(1) == 1;
  const std::string& src = Policy(n);
  bench::GenOptions go;
  go.routes = n;
  auto files = bench::GeneratePolicyFiles(go);
  size_t peak = 0;
  for (auto _ : state) {
    bench::ResetPeak();
    size_t before = bench::CurrentAllocStats().live_bytes;
    compiler::SourceSet s;
    if (single) {
      compiler::AddSource(s, "gen.vakt", src);
    } else {
      for (const auto& [name, text] : files) compiler::AddSource(s, name, text);
    }
    dsl::Diagnostics d;
    auto c = compiler::Compile(s, {}, d);
    if (d.HasErrors() || c->bytes.empty()) state.SkipWithError("compile failed");
    benchmark::DoNotOptimize(c->bytes.data());
    peak = std::max(peak, bench::CurrentAllocStats().peak_bytes - before);
  }
  state.counters["routes"] = n;
  state.counters["peak_heap_MiB"] = static_cast<double>(peak) / (1 << 20);
  state.counters["source_KiB"] = static_cast<double>(src.size()) / 1024;
}
BENCHMARK(BM_Compile)
    ->ArgNames({"routes", "single_file"})
    ->Args({1000, 0})
    ->Args({10000, 0})
    ->Args({10000, 1})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2);

void BM_ParseOnly(benchmark::State& state) {
  int n = static_cast<int>(state.range(0));
  dsl::SourceFile f{"gen.vakt", Policy(n)};
  for (auto _ : state) {
    dsl::Diagnostics d;
    auto ast = dsl::ParseFile(f, d);
    benchmark::DoNotOptimize(ast.get());
  }
}
BENCHMARK(BM_ParseOnly)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->MinTime(2);

void BM_LoadVerify(benchmark::State& state) {
  int n = static_cast<int>(state.range(0));
  const std::string& bytes = BundleBytes(n);
  for (auto _ : state) {
    auto b = bytecode::Bundle::Load(bytes);
    if (!b.ok()) state.SkipWithError("load failed");
    benchmark::DoNotOptimize(b);
  }
  state.counters["bundle_KiB"] = static_cast<double>(bytes.size()) / 1024;
}
BENCHMARK(BM_LoadVerify)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->MinTime(1);

void BM_ParseContainerOnly(benchmark::State& state) {
  int n = static_cast<int>(state.range(0));
  const std::string& bytes = BundleBytes(n);
  for (auto _ : state) {
    auto b = bytecode::Parse(bytes);
    benchmark::DoNotOptimize(b);
  }
}
BENCHMARK(BM_ParseContainerOnly)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->MinTime(1);

}  // namespace

BENCHMARK_MAIN();
