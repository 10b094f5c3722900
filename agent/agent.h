// vakt::agent: the embeddable enforcement core. An Agent holds the active
// bundle and the revocation set and decides requests (and, for routes with
// response rules, responses) on any number of threads at once.
//
// Why a separate layer above the VM: the VM decides against one immutable
// Bundle; an agent must also swap bundles while requests are in flight,
// check where a bundle came from (a pinned Ed25519 key) before it runs,
// own the FAPI runtime state (DPoP replay cache, token cache, nonces) and
// count what it decided. The daemon (main.cc) and every decision interface
// (forward-auth, /v1/check, Envoy ext_authz) are thin adapters over this.
//
// Loading a bundle (Agent::Load): signature against the pinned keys, then
// Bundle::Load (container checks and the verifier), then one atomic swap.
// A bundle that fails any step is refused and the previous one stays
// active. A decision takes a reference to the active bundle when it starts
// and finishes on it, however many swaps happen meanwhile.
//
// Fail closed: with no bundle active every request is denied (503,
// rule "vakt.agent", error "no_policy").
//
// Thread-safety: every public method may be called concurrently.
// Dependencies: vakt::bytecode only (no compiler, ANTLR, SQLite or gRPC).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/metrics.h"
#include "bytecode/bundle.h"
#include "bytecode/bundle_signature.h"
#include "bytecode/fapi_auth.h"
#include "bytecode/replay_cache.h"
#include "bytecode/request.h"
#include "bytecode/revocation.h"
#include "bytecode/status.h"
#include "bytecode/token_cache.h"

namespace vakt::agent {

// Rule id and error of the deny given when no bundle is active.
inline constexpr std::string_view kRuleNoPolicy = "vakt.agent";
inline constexpr std::string_view kErrorNoPolicy = "no_policy";

struct AgentOptions {
  // Keys a bundle must be signed by (Load). Empty: only LoadUnsigned()
  // works (standalone mode with an operator-supplied file).
  bytecode::TrustedKeys trusted_keys;
  size_t replay_cache_entries = 1 << 20;   // DPoP proof ids remembered
  // How long DPoP proof ids are remembered. 0 (the default): derived from
  // the bundles, the longest dpop_window + 2 * leeway of any fapi2 route
  // activated so far (it only ever grows, so no proof accepted under one
  // bundle can be replayed after a switch to a longer window). A fixed
  // value must cover that span itself.
  int64_t replay_window_seconds = 0;
  size_t token_cache_entries = 1 << 16;    // verified access tokens
  // Secret for server-issued DPoP nonces (>= 16 bytes); empty: a random
  // one per Agent. Agents behind one load balancer share it.
  std::string nonce_secret;
  int64_t nonce_period_seconds = 300;
  // Clock for decisions (unix seconds); null: the system clock. Tests pin it.
  int64_t (*clock)() = nullptr;
};

// A loaded, verified bundle with where it came from.
struct ActiveBundle {
  std::shared_ptr<const bytecode::Bundle> bundle;
  std::string policy;        // "" for an unsigned standalone bundle
  uint64_t version = 0;      // 0 when unknown (standalone)
  std::string digest;        // SHA-256 hex of the bundle bytes
  std::string key_id;        // signer ("" if unsigned)
  int64_t activated_at = 0;  // unix seconds
  // Decision counters per route of this bundle (metrics.h).
  std::shared_ptr<RouteCounters> counters;
};

// The answer to one request or response. Owns its strings.
struct Verdict {
  bool allow = false;
  uint16_t status = 0;  // 200 on allow
  std::string error;
  std::string description;
  std::string rule;
  std::string route;
  std::vector<std::pair<std::string, std::string>> headers;  // to send back
  uint64_t bundle_version = 0;
  // Kept so the response can be decided on the same bundle with the same
  // verified token (DecideResponse). Null when no bundle was active.
  std::shared_ptr<const ActiveBundle> active;
  std::shared_ptr<const bytecode::VerifiedToken> token;

  // The JSON of `vakt eval` / POST /v1/check.
  std::string ToJson() const;
};

// Receives every decision (decision logs, decision_log.h). Record() runs
// on the deciding thread after the verdict is final: it must be cheap and
// must never block (copy what it needs into a bounded buffer and return).
class DecisionSink {
 public:
  virtual ~DecisionSink() = default;
  // `interface` names the entry point: "forward_auth", "check", "ext_authz",
  // "embedded". `response` is null for a request decision.
  virtual void Record(std::string_view interface, const bytecode::HttpRequest& req,
                      const bytecode::HttpResponse* response, const Verdict& verdict,
                      uint64_t latency_nanos) = 0;
};

class Agent {
 public:
  explicit Agent(AgentOptions options);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Verifies `signature` (by trusted key `key_id`) over (policy, version,
  // bundle), then loads and verifies the bundle, then activates it.
  // Errors: kPermissionDenied (signature), kCorruption / kUnsupported /
  // kResourceExhausted (Bundle::Load), kInvalidArgument (version older
  // than the active one of the same policy, unless allow_downgrade: the
  // control plane rolls back by pushing an older version, so the daemon
  // passes true). On error the active bundle is unchanged.
  Status Load(std::string_view policy, uint64_t version, std::string_view bundle,
              std::string_view signature, std::string_view key_id, bool allow_downgrade = true);

  // Standalone mode: activates a bundle file an operator vouches for (no
  // signature), after Bundle::Load's verification.
  Status LoadUnsigned(std::string_view bundle);

  // Replaces the revocation set (the control plane sends whole sets).
  void SetRevocations(std::shared_ptr<const bytecode::RevocationSet> set, uint64_t revision);
  uint64_t revocation_revision() const { return revocation_revision_.load(); }

  // Decides a request as a FAPI resource server would (vm.h Decide):
  // tokens, DPoP proofs and certificates are verified here. req.time 0
  // means "now" (the options' clock).
  // `interface` labels the decision for the sink (DecisionSink).
  Verdict Decide(const bytecode::HttpRequest& req, std::string_view interface = "embedded");

  // Decides a response to `req` on the bundle and with the token of
  // `request_verdict` (returned by Decide for that request). A route
  // without response rules allows. A request verdict that was a deny, or
  // has no bundle, gives that deny back.
  Verdict DecideResponse(const Verdict& request_verdict, const bytecode::HttpRequest& req,
                         const bytecode::HttpResponse& resp,
                         std::string_view interface = "embedded");

  // Every later decision is passed to `sink` (null: none). The sink must
  // outlive the Agent or be reset to null first.
  void set_decision_sink(DecisionSink* sink) { sink_.store(sink); }

  // The active bundle, or null. The snapshot stays valid while held.
  std::shared_ptr<const ActiveBundle> active() const;
  bool ready() const { return active() != nullptr; }

  // Runtime state sizes, for /metrics.
  size_t replay_cache_size() const { return replay_.size(); }
  int64_t replay_window_seconds() const { return replay_.window(); }
  size_t token_cache_size() const { return tokens_.size(); }
  size_t revocation_entries() const;

  Metrics& metrics() { return metrics_; }
  const Metrics& metrics() const { return metrics_; }

  int64_t Now() const;

 private:
  Status Activate(std::shared_ptr<const bytecode::Bundle> bundle, std::string policy,
                  uint64_t version, std::string key_id);
  Verdict NoPolicy() const;

  AgentOptions options_;
  bytecode::ReplayCache replay_;
  bytecode::TokenCache tokens_;
  std::unique_ptr<bytecode::HmacNonceSource> nonces_;
  bytecode::RevocationHolder revocations_;
  std::atomic<uint64_t> revocation_revision_{0};
  std::mutex load_mu_;  // serialises loads (verification runs outside swaps)
  std::atomic<std::shared_ptr<const ActiveBundle>> active_;
  Metrics metrics_;
  std::atomic<DecisionSink*> sink_{nullptr};
};

}  // namespace vakt::agent
