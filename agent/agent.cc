// The Agent: bundle activation (signature, verifier, atomic swap) and
// decisions on the active bundle with the agent's FAPI runtime state.
#include "agent/agent.h"

#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <ctime>

#include "bytecode/claims.h"
#include "bytecode/vm.h"

namespace vakt::agent {

namespace {

int64_t SystemNow() { return static_cast<int64_t>(std::time(nullptr)); }

std::string RandomSecret() {
  unsigned char buf[32];
  if (RAND_bytes(buf, sizeof buf) != 1) return {};  // empty: nonces never validate
  return std::string(reinterpret_cast<const char*>(buf), sizeof buf);
}

// One scratch per thread, shared by every Agent on it (it holds no state
// between decisions that belongs to a bundle).
bytecode::EvalScratch& ThreadScratch() {
  thread_local bytecode::EvalScratch scratch;
  return scratch;
}

uint64_t NanosSince(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now() - start)
                                   .count());
}

Verdict FromDecision(const bytecode::Decision& d) {
  Verdict v;
  v.allow = d.allow;
  v.status = d.status;
  v.error.assign(d.error);
  v.description.assign(d.description);
  v.rule.assign(d.rule);
  v.route.assign(d.route);
  v.headers.reserve(d.header_count);
  for (uint8_t i = 0; i < d.header_count && i < d.headers.size(); ++i) {
    v.headers.emplace_back(std::string(d.headers[i].name), std::string(d.headers[i].value));
  }
  return v;
}

std::string StatusLabel(const Status& s) {
  switch (s.code()) {
    case StatusCode::kPermissionDenied:
      return "result=\"refused\",reason=\"signature\"";
    case StatusCode::kUnsupported:
      return "result=\"refused\",reason=\"unsupported\"";
    case StatusCode::kResourceExhausted:
      return "result=\"refused\",reason=\"too_large\"";
    case StatusCode::kInvalidArgument:
      return "result=\"refused\",reason=\"downgrade\"";
    default:
      return "result=\"refused\",reason=\"invalid\"";
  }
}

}  // namespace

std::string Verdict::ToJson() const {
  bytecode::Decision d;
  d.allow = allow;
  d.status = status;
  d.error = error;
  d.description = description;
  d.rule = rule;
  d.route = route;
  for (const auto& [name, value] : headers) {
    if (d.header_count >= d.headers.size()) break;
    d.headers[d.header_count++] = {name, value};
  }
  return bytecode::DecisionToJson(d);
}

Agent::Agent(AgentOptions options)
    : options_(std::move(options)),
      replay_(options_.replay_cache_entries,
              options_.replay_window_seconds > 0 ? options_.replay_window_seconds : 1),
      tokens_(options_.token_cache_entries) {
  std::string secret = options_.nonce_secret.empty() ? RandomSecret() : options_.nonce_secret;
  nonces_ = std::make_unique<bytecode::HmacNonceSource>(std::move(secret),
                                                        options_.nonce_period_seconds);
  metrics_.SetGauge("vakt_agent_bundle_active", "", 0);
}

Agent::~Agent() = default;

int64_t Agent::Now() const { return options_.clock ? options_.clock() : SystemNow(); }

std::shared_ptr<const ActiveBundle> Agent::active() const {
  return active_.load(std::memory_order_acquire);
}

size_t Agent::revocation_entries() const { return revocations_.Get()->size(); }

Status Agent::Load(std::string_view policy, uint64_t version, std::string_view bundle,
                   std::string_view signature, std::string_view key_id, bool allow_downgrade) {
  std::lock_guard<std::mutex> lock(load_mu_);
  Status st = Status::Ok();
  if (options_.trusted_keys.empty()) {
    st = Status(StatusCode::kPermissionDenied,
                "no trusted bundle keys are configured, so no signed bundle can be accepted");
  } else {
    st = options_.trusted_keys.Verify(policy, version, bundle, signature, key_id);
  }
  if (st.ok() && !allow_downgrade) {
    auto cur = active();
    if (cur && cur->policy == policy && version < cur->version) {
      st = Status(StatusCode::kInvalidArgument,
                  "bundle version " + std::to_string(version) + " is older than the active " +
                      std::to_string(cur->version));
    }
  }
  Result<std::shared_ptr<const bytecode::Bundle>> loaded =
      st.ok() ? bytecode::Bundle::Load(bundle) : Result<std::shared_ptr<const bytecode::Bundle>>(st);
  if (!loaded.ok()) {
    metrics_.Add("vakt_agent_bundle_loads_total", StatusLabel(loaded.status()));
    return loaded.status();
  }
  return Activate(std::move(loaded).value(), std::string(policy), version, std::string(key_id));
}

Status Agent::LoadUnsigned(std::string_view bundle) {
  std::lock_guard<std::mutex> lock(load_mu_);
  auto loaded = bytecode::Bundle::Load(bundle);
  if (!loaded.ok()) {
    metrics_.Add("vakt_agent_bundle_loads_total", StatusLabel(loaded.status()));
    return loaded.status();
  }
  return Activate(std::move(loaded).value(), "", 0, "");
}

Status Agent::Activate(std::shared_ptr<const bytecode::Bundle> bundle, std::string policy,
                       uint64_t version, std::string key_id) {
  if (options_.replay_window_seconds == 0) {
    // The longest span over which a proof of this bundle can be accepted.
    int64_t span = 0;
    for (size_t i = 0; i < bundle->data().auth.size(); ++i) {
      const bytecode::AuthPolicy& p = bundle->auth(static_cast<uint32_t>(i));
      int64_t leeway = p.issuer ? p.issuer->leeway : bytecode::kMaxIssuerLeeway;
      span = std::max(span, p.dpop_window + 2 * leeway);
    }
    if (span > replay_.window()) replay_.set_window(span);
  }
  auto next = std::make_shared<ActiveBundle>();
  std::vector<std::string> names;
  names.reserve(bundle->data().routes.size());
  for (const auto& r : bundle->data().routes) names.emplace_back(bundle->str(r.name));
  next->counters = std::make_shared<RouteCounters>(std::move(names));
  next->digest = bundle->digest();
  next->bundle = std::move(bundle);
  next->policy = std::move(policy);
  next->version = version;
  next->key_id = std::move(key_id);
  next->activated_at = Now();
  std::shared_ptr<const ActiveBundle> old =
      active_.exchange(std::move(next), std::memory_order_acq_rel);
  // Decisions still running on the old bundle after this point are not
  // counted (a handful at most); the totals never go down.
  if (old) metrics_.Fold(*old->counters);
  auto cur = active();
  metrics_.Add("vakt_agent_bundle_loads_total", "result=\"ok\",reason=\"\"");
  metrics_.SetGauge("vakt_agent_bundle_active", "", 1);
  metrics_.SetGauge("vakt_agent_bundle_version", "", static_cast<double>(cur->version));
  metrics_.SetGauge("vakt_agent_bundle_activated_timestamp_seconds", "",
                    static_cast<double>(cur->activated_at));
  return Status::Ok();
}

void Agent::SetRevocations(std::shared_ptr<const bytecode::RevocationSet> set, uint64_t revision) {
  revocations_.Replace(std::move(set));
  revocation_revision_.store(revision);
  metrics_.SetGauge("vakt_agent_revocation_revision", "", static_cast<double>(revision));
}

Verdict Agent::NoPolicy() const {
  Verdict v;
  v.allow = false;
  v.status = 503;
  v.error = std::string(kErrorNoPolicy);
  v.description = "no policy bundle is active on this agent";
  v.rule = std::string(kRuleNoPolicy);
  return v;
}

Verdict Agent::Decide(const bytecode::HttpRequest& req, std::string_view interface) {
  auto start = std::chrono::steady_clock::now();
  std::shared_ptr<const ActiveBundle> a = active();
  Verdict v;
  if (!a) {
    v = NoPolicy();
  } else {
    bytecode::HttpRequest r = req;
    if (r.time == 0) r.time = Now();
    std::shared_ptr<const bytecode::RevocationSet> revoked = revocations_.Get();
    bytecode::AuthEnv env;
    env.replay = &replay_;
    env.tokens = &tokens_;
    env.revoked = revoked.get();
    env.nonces = nonces_.get();
    std::shared_ptr<const bytecode::VerifiedToken> token;
    bytecode::Decision d = bytecode::Decide(*a->bundle, r, env, ThreadScratch(), &token);
    v = FromDecision(d);
    v.bundle_version = a->version;
    v.token = std::move(token);
    a->counters->Count(a->counters->RouteIndex(v.route), v.status);
    v.active = std::move(a);
  }
  const uint64_t nanos = NanosSince(start);
  metrics_.decision_latency().Observe(nanos);
  if (!v.active) metrics_.Add("vakt_agent_no_policy_denials_total", "");
  if (DecisionSink* sink = sink_.load(std::memory_order_acquire)) {
    sink->Record(interface, req, nullptr, v, nanos);
  }
  return v;
}

Verdict Agent::DecideResponse(const Verdict& request_verdict, const bytecode::HttpRequest& req,
                              const bytecode::HttpResponse& resp, std::string_view interface) {
  if (!request_verdict.active) return NoPolicy();
  if (!request_verdict.allow) return request_verdict;
  auto start = std::chrono::steady_clock::now();
  const ActiveBundle& a = *request_verdict.active;
  bytecode::HttpRequest r = req;
  if (r.time == 0) r.time = Now();
  const bytecode::ClaimsProvider* claims =
      request_verdict.token ? request_verdict.token->claims.get() : nullptr;
  bytecode::Decision d = bytecode::DecideResponse(*a.bundle, r, claims, resp, ThreadScratch());
  Verdict v = FromDecision(d);
  v.bundle_version = a.version;
  v.token = request_verdict.token;
  v.active = request_verdict.active;
  a.counters->Count(a.counters->RouteIndex(v.route), v.status);
  const uint64_t nanos = NanosSince(start);
  metrics_.decision_latency().Observe(nanos);
  if (DecisionSink* sink = sink_.load(std::memory_order_acquire)) {
    sink->Record(interface, req, &resp, v, nanos);
  }
  return v;
}

}  // namespace vakt::agent
