// Relation lookups with a table of one million entries (issue 4: an
// ownership check against relation data must be O(1), under 100 ns).
//
//   BM_Decide/claim_equality   `owns params.id { == token.patient_id }`: the
//                              baseline, measured in the same run
//   BM_Decide/relation_1m      `owns params.id { == owner_of[token.sub] }`
//                              with 1,000,000 entries
//   BM_FindRelation/1m         Bundle::FindRelation alone, random keys
//   BM_FindRelation/1m_absent  keys that are not in the table
//
// Each decision iteration takes the next of 4096 prepared requests and
// claim sets (random users), so the table is probed at random places, not
// one hot key. Results and the exact command: docs/benchmarks.md.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bytecode/request_json.h"
#include "bytecode/vm.h"
#include "compiler/compile.h"

namespace {

using namespace vakt;

constexpr int kEntries = 1000000;
constexpr int kPrepared = 4096;

std::string Key(int i) { return "user-" + std::to_string(i); }
std::string Patient(int i) { return "p-" + std::to_string(i); }

struct Fixture {
  std::unique_ptr<compiler::Compilation> comp;
  std::shared_ptr<const bytecode::Bundle> bundle;
  std::vector<bytecode::OwnedRequest> claim_reqs, rel_reqs;
  std::vector<std::unique_ptr<bytecode::JsonClaims>> claims;
  std::vector<std::string> keys, absent;
};

Fixture& Get() {
  static Fixture f = [] {
    Fixture f;
    nlohmann::json table = nlohmann::json::object();
    for (int i = 0; i < kEntries; ++i) table[Key(i)] = Patient(i);
    const std::string text = table.dump();
    compiler::SourceSet s;
    compiler::AddSource(s, "bench.vakt", R"(
claims {
  patient_id: string
}
relation owner_of: string = "owner_of.json"
api a "/v1" {
  route by_claim GET "/c/{id}" {
    owner: owns params.id { == token.patient_id }
  }
  route by_relation GET "/r/{id}" {
    owner: owns params.id { == owner_of[token.sub] }
  }
}
)");
    compiler::CompileOptions o;
    o.read_asset = [&text](const dsl::SourceFile&, const std::string&) -> Result<std::string> {
      return text;
    };
    dsl::Diagnostics d;
    f.comp = compiler::Compile(s, o, d);
    if (d.HasErrors()) {
      fprintf(stderr, "%s", d.Format().c_str());
      abort();
    }
    f.bundle = *bytecode::Bundle::Load(f.comp->bytes);
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> pick(0, kEntries - 1);
    for (int k = 0; k < kPrepared; ++k) {
      int i = pick(rng);
      nlohmann::json c = {{"sub", Key(i)}, {"patient_id", Patient(i)}};
      f.claims.push_back(std::move(bytecode::JsonClaims::Parse(c.dump())).value());
      nlohmann::json r1 = {{"method", "GET"}, {"path", "/v1/c/" + Patient(i)}};
      nlohmann::json r2 = {{"method", "GET"}, {"path", "/v1/r/" + Patient(i)}};
      f.claim_reqs.push_back(std::move(bytecode::ParseRequestJson(r1.dump())).value());
      f.rel_reqs.push_back(std::move(bytecode::ParseRequestJson(r2.dump())).value());
      f.keys.push_back(Key(i));
      f.absent.push_back("nobody-" + std::to_string(i));
    }
    return f;
  }();
  return f;
}

void BM_Decide(benchmark::State& state, bool relation) {
  Fixture& f = Get();
  const auto& reqs = relation ? f.rel_reqs : f.claim_reqs;
  std::vector<bytecode::HttpRequest> views;
  for (const auto& r : reqs) views.push_back(r.View());
  bytecode::EvalScratch scratch;
  size_t k = 0, denied = 0;
  for (auto _ : state) {
    bytecode::Decision d = bytecode::DecideRequest(*f.bundle, views[k], f.claims[k].get(), scratch);
    denied += !d.allow;
    benchmark::DoNotOptimize(d);
    k = (k + 1) % kPrepared;
  }
  if (denied != 0) state.SkipWithError("a decision denied");
}
BENCHMARK_CAPTURE(BM_Decide, claim_equality, false);
BENCHMARK_CAPTURE(BM_Decide, relation_1m, true);

void BM_FindRelation(benchmark::State& state, bool present) {
  Fixture& f = Get();
  const auto& keys = present ? f.keys : f.absent;
  size_t k = 0;
  int64_t found = 0;
  for (auto _ : state) {
    const char* p = f.bundle->FindRelation(0, keys[k]);
    found += p != nullptr;
    benchmark::DoNotOptimize(p);
    k = (k + 1) % kPrepared;
  }
  if (found != (present ? state.iterations() : 0)) state.SkipWithError("wrong lookup result");
}
BENCHMARK_CAPTURE(BM_FindRelation, 1m, true);
BENCHMARK_CAPTURE(BM_FindRelation, 1m_absent, false);

}  // namespace

BENCHMARK_MAIN();
