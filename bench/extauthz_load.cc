// extauthz_load: a gRPC load client for the agent's Envoy ext_authz
// interface (envoy.service.auth.v3.Authorization/Check), measuring what
// Envoy would see: requests/s and the latency of each Check.
//
// Server: `--target host:port` (a running `vakt-agent --ext-authz-listen`),
// or, without it, an ext_authz service started in this process on
// 127.0.0.1 port 0 over a real Agent, loaded with `--bundle FILE` or, by
// default, the healthcare example compiled in memory with a fresh issuer
// key (so tokens can be minted without the example's private keys).
//
// Requests are real healthcare shapes, minted once before the clock starts:
// anna (patient p-anna) reading her demographics and her record list.
//   --auth mtls (default): a certificate-bound access token (Bearer, cnf
//     x5t#S256) and the client certificate in attributes.source.certificate,
//     URL-encoded as Envoy's include_peer_certificate sends it. The same
//     request can be sent any number of times (no replay cache involved).
//   --auth dpop: a DPoP-bound token and one fresh DPoP proof per request
//     (--proofs N minted up front, ES256): the replay cache refuses a proof
//     seen before, so the run stops after N requests.
//   --auth none: the baseline, an empty CheckRequest: the agent's adapter
//     refuses it (400) before any decision, so it measures the gRPC path
//     alone; run it beside the others in the same session.
// TLS facts: the in-process server assumes TLS 1.3 for https; against a
// --target the request carries x-vakt-tls-version / x-vakt-tls-cipher
// (believed only if the agent trusts this client's address, see
// docs/agent-envoy.md) unless --no-tls-headers.
//
// Modes:
//   closed loop (default): --concurrency N calls in flight, each completion
//     sends the next; measures the maximum throughput.
//   fixed rate: --rate R sends R requests/s on a schedule; latency counts
//     from the scheduled send time (no coordinated omission), at most
//     --max-inflight calls outstanding (beyond: counted as skipped).
//   --direct: no gRPC at all; one thread calls ExtAuthzService::CheckOne
//     (CheckRequest -> decision -> CheckResponse) back to back, in process:
//     the agent's own cost per Check, without transport.
// Latencies go into a histogram of 1 us buckets up to 100 ms (above: the
// last bucket; the max is exact). Output: a human summary and a one-line
// JSON summary (`--json`: only the JSON).
//
//   extauthz_load [--target HOST:PORT] [--bundle FILE --issuer-key JWK|PEM]
//                 [--client-cert PEM] [--auth mtls|dpop|none] [--proofs N]
//                 [--concurrency N] [--rate R] [--seconds S] [--max-inflight N]
//                 [--direct] [--expect-allow] [--no-tls-headers] [--json]
//
// A benchmark, never a test: exit 1 only on a setup failure, or with
// --expect-allow when any Check did not allow (the ctest smoke run).
#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent.h"
#include "agent/ext_authz.h"
#include "bytecode/request.h"
#include "compiler/compile.h"
#include "compiler/token_tool.h"

namespace {

using vakt::agent::envoy_authz::Authorization;
using vakt::agent::envoy_authz::CheckRequest;
using vakt::agent::envoy_authz::CheckResponse;
using Clock = std::chrono::steady_clock;

constexpr char kHost[] = "api.example.no";
constexpr size_t kBuckets = 100000;  // 1 us each: up to 100 ms
constexpr size_t kMaxProofs = 1000000;

struct Flags {
  std::string target, bundle, issuer_key, client_cert, auth = "mtls";
  std::string policy = std::string(VAKT_SOURCE_DIR) + "/examples/healthcare/policy";
  std::string iss = "https://issuer.example.no", aud = "https://api.example.no";
  size_t proofs = 20000, concurrency = 16, max_inflight = 4096;
  double rate = 0, seconds = 5;
  bool expect_allow = false, tls_headers = true, json = false, direct = false;
};

[[noreturn]] void Die(const std::string& msg) {
  fprintf(stderr, "extauthz_load: %s\n", msg.c_str());
  exit(1);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_' || c == '.' || c == '~';
    if (keep) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

// Latency histogram shared by the completion threads.
class Histogram {
 public:
  Histogram() : buckets_(new std::atomic<uint64_t>[kBuckets]) {
    for (size_t i = 0; i < kBuckets; ++i) buckets_[i].store(0, std::memory_order_relaxed);
  }
  void Add(uint64_t nanos) {
    size_t b = std::min<uint64_t>(nanos / 1000, kBuckets - 1);
    buckets_[b].fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
    uint64_t m = max_.load(std::memory_order_relaxed);
    while (nanos > m && !max_.compare_exchange_weak(m, nanos, std::memory_order_relaxed)) {
    }
  }
  // The q-quantile in microseconds (upper edge of its bucket).
  double Quantile(double q) const {
    uint64_t n = count_.load();
    if (n == 0) return 0;
    uint64_t want = std::max<uint64_t>(1, static_cast<uint64_t>(q * static_cast<double>(n) + 0.5));
    uint64_t seen = 0;
    for (size_t i = 0; i < kBuckets; ++i) {
      seen += buckets_[i].load(std::memory_order_relaxed);
      if (seen >= want) return static_cast<double>(i + 1);
    }
    return static_cast<double>(kBuckets);
  }
  double MaxMicros() const { return static_cast<double>(max_.load()) / 1000.0; }
  uint64_t count() const { return count_.load(); }

 private:
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0}, max_{0};
};

struct Results {
  Histogram latency;
  std::atomic<uint64_t> allow{0}, deny{0}, errors{0}, skipped{0};
  std::atomic<uint64_t> first_deny_status{0};
  std::mutex mu;
  std::string first_problem;
  void Problem(const std::string& p) {
    std::lock_guard<std::mutex> lock(mu);
    if (first_problem.empty()) first_problem = p;
  }
};

// ---- request minting ----

struct Keys {
  std::unique_ptr<vakt::compiler::SigningKey> issuer, dpop;
  std::string cert_pem, x5t;
};

CheckRequest BaseCheck(const std::string& path, const Flags& f) {
  CheckRequest r;
  auto* http = r.mutable_attributes()->mutable_request()->mutable_http();
  http->set_method("GET");
  http->set_path(path);
  http->set_host(kHost);
  http->set_scheme("https");
  http->set_protocol("HTTP/2");
  auto& h = *http->mutable_headers();
  h[":authority"] = kHost;
  h[":method"] = "GET";
  h[":path"] = path;
  h[":scheme"] = "https";
  h["user-agent"] = "extauthz_load";
  h["accept"] = "application/json";
  if (f.tls_headers && !f.target.empty()) {
    h["x-vakt-tls-version"] = "TLSv1.3";
    h["x-vakt-tls-cipher"] = "TLS_AES_128_GCM_SHA256";
  }
  return r;
}

std::vector<CheckRequest> MintRequests(const Flags& f, const Keys& k) {
  // The baseline: an empty CheckRequest, which the adapter refuses before
  // any decision; the same gRPC path, nothing decided.
  if (f.auth == "none") return {CheckRequest{}};
  const std::vector<std::string> paths = {"/v1/patients/p-anna", "/v1/patients/p-anna/records"};
  std::string claims = "{\"iss\":\"" + f.iss + "\",\"aud\":\"" + f.aud +
                       "\",\"sub\":\"anna\",\"client_id\":\"app-1\","
                       "\"scope\":\"patient.read records.read\",\"role\":\"patient\","
                       "\"patient_id\":\"p-anna\"}";
  vakt::compiler::TokenOptions to;
  to.now = time(nullptr);
  to.ttl = 24 * 3600;
  if (f.auth == "mtls") {
    to.cnf_x5t = k.x5t;
  } else {
    to.cnf_jkt = k.dpop->Thumbprint();
  }
  auto token = vakt::compiler::MintAccessToken(*k.issuer, claims, to);
  if (!token.ok()) Die("token: " + token.status().ToString());
  std::vector<CheckRequest> out;
  if (f.auth == "mtls") {
    std::string cert = UrlEncode(k.cert_pem);
    for (const std::string& p : paths) {
      CheckRequest r = BaseCheck(p, f);
      (*r.mutable_attributes()
            ->mutable_request()
            ->mutable_http()
            ->mutable_headers())["authorization"] = "Bearer " + *token;
      r.mutable_attributes()->mutable_source()->set_certificate(cert);
      out.push_back(std::move(r));
    }
    return out;
  }
  out.reserve(f.proofs);
  for (size_t i = 0; i < f.proofs; ++i) {
    const std::string& p = paths[i % paths.size()];
    vakt::compiler::ProofOptions po;
    po.method = "GET";
    po.url = std::string("https://") + kHost + p;
    po.access_token = *token;
    po.now = time(nullptr);
    auto proof = vakt::compiler::MintDpopProof(*k.dpop, po);
    if (!proof.ok()) Die("proof: " + proof.status().ToString());
    CheckRequest r = BaseCheck(p, f);
    auto& h = *r.mutable_attributes()->mutable_request()->mutable_http()->mutable_headers();
    h["authorization"] = "DPoP " + *token;
    h["dpop"] = *proof;
    out.push_back(std::move(r));
  }
  return out;
}

// ---- one call ----

struct Call {
  grpc::ClientContext ctx;
  CheckResponse resp;
  Clock::time_point start;
};

class Runner {
 public:
  Runner(Authorization::Stub* stub, std::vector<CheckRequest> requests, const Flags& f,
         Results* results)
      : stub_(stub), requests_(std::move(requests)), flags_(f), results_(results) {}

  // Sends request number `i`; `start` is when it should have been sent.
  // Calls Done() when it completes. False when the requests ran out.
  bool Send(Clock::time_point start) {
    uint64_t i = next_.fetch_add(1);
    bool replayable = flags_.auth != "dpop";
    if (!replayable && i >= requests_.size()) return false;
    const CheckRequest& req = requests_[i % requests_.size()];
    auto* call = new Call;
    call->start = start;
    call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    inflight_.fetch_add(1);
    stub_->async()->Check(&call->ctx, &req, &call->resp, [this, call](grpc::Status st) {
      uint64_t nanos =
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - call->start).count();
      results_->latency.Add(nanos);
      if (!st.ok()) {
        results_->errors.fetch_add(1);
        results_->Problem("rpc: " + st.error_message());
      } else if (call->resp.status().code() == 0) {
        results_->allow.fetch_add(1);
      } else {
        results_->deny.fetch_add(1);
        results_->Problem("deny " + std::to_string(call->resp.denied_response().status().code()) +
                          ": " + call->resp.denied_response().body());
      }
      delete call;
      OnDone();
    });
    return true;
  }

  // Closed loop: keep `n` calls in flight until `until`.
  void ClosedLoop(size_t n, Clock::time_point until) {
    until_ = until;
    closed_ = true;
    for (size_t i = 0; i < n; ++i) {
      if (!Send(Clock::now())) break;
    }
    Wait();
  }

  // Fixed rate until `until`.
  void FixedRate(double rate, Clock::time_point until) {
    until_ = until;
    closed_ = false;
    auto t0 = Clock::now();
    auto interval = std::chrono::duration<double>(1.0 / rate);
    for (uint64_t i = 0;; ++i) {
      auto at = t0 + std::chrono::duration_cast<Clock::duration>(interval * static_cast<double>(i));
      if (at >= until) break;
      std::this_thread::sleep_until(at);
      if (inflight_.load() >= flags_.max_inflight) {
        results_->skipped.fetch_add(1);
        continue;
      }
      if (!Send(at)) break;
    }
    Wait();
  }

 private:
  void OnDone() {
    if (closed_ && Clock::now() < until_ && Send(Clock::now())) {
      inflight_.fetch_sub(1);
      return;
    }
    if (inflight_.fetch_sub(1) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      cv_.notify_all();
    }
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return inflight_.load() == 0; });
  }

  Authorization::Stub* stub_;
  std::vector<CheckRequest> requests_;
  const Flags& flags_;
  Results* results_;
  std::atomic<uint64_t> next_{0};
  std::atomic<uint64_t> inflight_{0};
  std::atomic<bool> closed_{true};
  Clock::time_point until_;
  std::mutex mu_;
  std::condition_variable cv_;
};

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Die("missing value for " + a);
      return argv[++i];
    };
    auto number = [&]() -> double {
      std::string v = value();
      char* end = nullptr;
      double d = strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || d < 0 || d > 1e9) Die("bad number for " + a);
      return d;
    };
    const std::pair<const char*, std::string*> strings[] = {{"--target", &f.target},
                                                            {"--bundle", &f.bundle},
                                                            {"--policy", &f.policy},
                                                            {"--issuer-key", &f.issuer_key},
                                                            {"--client-cert", &f.client_cert},
                                                            {"--iss", &f.iss},
                                                            {"--aud", &f.aud},
                                                            {"--auth", &f.auth}};
    const std::pair<const char*, size_t*> sizes[] = {{"--proofs", &f.proofs},
                                                     {"--concurrency", &f.concurrency},
                                                     {"--max-inflight", &f.max_inflight}};
    const std::pair<const char*, double*> doubles[] = {{"--rate", &f.rate},
                                                       {"--seconds", &f.seconds}};
    const std::pair<const char*, bool*> switches[] = {
        {"--expect-allow", &f.expect_allow}, {"--json", &f.json}, {"--direct", &f.direct}};
    bool known = false;
    for (const auto& [name, out] : strings) {
      if (a == name) *out = value(), known = true;
    }
    for (const auto& [name, out] : sizes) {
      if (a == name) *out = static_cast<size_t>(number()), known = true;
    }
    for (const auto& [name, out] : doubles) {
      if (a == name) *out = number(), known = true;
    }
    for (const auto& [name, out] : switches) {
      if (a == name) *out = true, known = true;
    }
    if (a == "--no-tls-headers") f.tls_headers = false, known = true;
    if (a == "--help" || a == "-h") {
      printf(
          "usage: extauthz_load [--target HOST:PORT] [--bundle FILE --issuer-key FILE]\n"
          "  [--policy DIR] [--client-cert PEM] [--iss URL] [--aud URL] [--auth mtls|dpop|none]\n"
          "  [--proofs N] [--concurrency N] [--rate R] [--seconds S] [--max-inflight N]\n"
          "  [--direct] [--expect-allow] [--no-tls-headers] [--json]\n");
      exit(0);
    }
    if (!known) Die("unknown flag " + a + " (--help)");
  }
  if (f.auth != "mtls" && f.auth != "dpop" && f.auth != "none") {
    Die("--auth is mtls, dpop or none");
  }
  if (f.concurrency < 1 || f.concurrency > 100000) Die("--concurrency: 1..100000");
  if (f.proofs < 1 || f.proofs > kMaxProofs) Die("--proofs: 1..1000000");
  if (f.max_inflight < 1) Die("--max-inflight: at least 1");
  if (f.seconds <= 0 || f.seconds > 86400) Die("--seconds: (0, 86400]");
  if (!f.target.empty() && !f.bundle.empty()) Die("--target and --bundle exclude each other");
  if (!f.target.empty() && f.direct) Die("--direct runs in process: no --target");
  if ((!f.target.empty() || !f.bundle.empty()) && f.issuer_key.empty()) {
    Die("--target and --bundle need --issuer-key (the key that signs tokens the policy trusts)");
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil checks every gRPC mutex for deadlock cycles; a load
  // client must not pay for that (the agent turns it off too).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Flags f = ParseFlags(argc, argv);
  Keys keys;

  // Keys: the issuer's (given, or fresh with the example compiled for it).
  std::string bundle;
  if (!f.issuer_key.empty()) {
    auto k = vakt::compiler::LoadSigningKey(ReadFile(f.issuer_key), "healthcare-es256");
    if (!k.ok()) Die("issuer key: " + k.status().ToString());
    keys.issuer = std::make_unique<vakt::compiler::SigningKey>(std::move(k).value());
  } else {
    auto k = vakt::compiler::GenerateKey(vakt::bytecode::JwsAlg::kES256, "healthcare-es256");
    if (!k.ok()) Die("key: " + k.status().ToString());
    keys.issuer = std::make_unique<vakt::compiler::SigningKey>(std::move(k).value());
  }
  auto dpop = vakt::compiler::GenerateKey(vakt::bytecode::JwsAlg::kES256);
  if (!dpop.ok()) Die("dpop key: " + dpop.status().ToString());
  keys.dpop = std::make_unique<vakt::compiler::SigningKey>(std::move(dpop).value());
  if (!f.client_cert.empty()) {
    keys.cert_pem = ReadFile(f.client_cert);
  } else {
    auto cert = vakt::compiler::MakeTestCertificate("extauthz-load");
    if (!cert.ok()) Die("certificate: " + cert.status().ToString());
    keys.cert_pem = cert->cert_pem;
  }
  auto x5t = vakt::bytecode::CertThumbprint(keys.cert_pem);
  if (!x5t.ok()) Die("client certificate: " + x5t.status().ToString());
  keys.x5t = *x5t;

  // The server: remote, or in this process.
  std::unique_ptr<vakt::agent::Agent> agent;
  std::unique_ptr<vakt::agent::ExtAuthzService> service;
  std::unique_ptr<grpc::Server> server;
  std::string target = f.target;
  if (target.empty()) {
    if (!f.bundle.empty()) {
      bundle = ReadFile(f.bundle);
    } else {
      std::string jwks = "{\"keys\":[" + keys.issuer->PublicJwk() + "]}";
      vakt::compiler::SourceSet sources;
      vakt::dsl::Diagnostics diags;
      vakt::compiler::LoadSources({f.policy}, sources, diags);
      vakt::compiler::CompileOptions opts;
      opts.read_asset = [jwks](const vakt::dsl::SourceFile& from,
                               const std::string& path) -> vakt::Result<std::string> {
        if (path.ends_with("issuer.jwks.json")) return jwks;
        return vakt::compiler::ReadAssetFromDisk(from, path);
      };
      auto comp = vakt::compiler::Compile(sources, opts, diags);
      if (diags.HasErrors() || comp->bytes.empty()) Die("policy: " + diags.Format());
      bundle = comp->bytes;
    }
    vakt::agent::AgentOptions ao;
    ao.replay_cache_entries = std::max<size_t>(f.proofs * 2, 1024);
    agent = std::make_unique<vakt::agent::Agent>(std::move(ao));
    if (auto st = agent->LoadUnsigned(bundle); !st.ok()) Die("bundle: " + st.ToString());
    vakt::agent::ExtAuthzOptions eo;
    eo.assumed_tls_version = "TLSv1.3";
    eo.assumed_tls_cipher = "TLS_AES_128_GCM_SHA256";
    auto svc = vakt::agent::MakeExtAuthzService(*agent, std::move(eo));
    if (!svc.ok()) Die("service: " + svc.status().ToString());
    service = std::move(svc).value();
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(service.get());
    b.SetMaxReceiveMessageSize(
        static_cast<int>(vakt::agent::MaxCheckMessageBytes(service->config().options())));
    server = b.BuildAndStart();
    if (!server || port == 0) Die("cannot start the in-process server");
    target = "127.0.0.1:" + std::to_string(port);
  }

  std::vector<CheckRequest> requests = MintRequests(f, keys);
  Results results;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<Authorization::Stub> stub;
  if (!f.direct) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(1 << 20);
    channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
      Die("cannot connect to " + target);
    }
    stub = Authorization::NewStub(channel);
  }

  auto t0 = Clock::now();
  auto until =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(f.seconds));
  if (f.direct) {
    CheckResponse resp;
    for (uint64_t i = 0; Clock::now() < until; ++i) {
      if (f.auth == "dpop" && i >= requests.size()) break;
      auto start = Clock::now();
      vakt::agent::Verdict v =
          service->CheckOne(requests[i % requests.size()], "ipv4:127.0.0.1:1", &resp);
      results.latency.Add(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count()));
      if (v.allow) {
        results.allow.fetch_add(1);
      } else {
        results.deny.fetch_add(1);
        results.Problem("deny " + std::to_string(v.status) + ": " + v.description);
      }
    }
  } else {
    Runner runner(stub.get(), std::move(requests), f, &results);
    if (f.rate > 0) {
      runner.FixedRate(f.rate, until);
    } else {
      runner.ClosedLoop(f.concurrency, until);
    }
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  if (server) server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));

  const Histogram& h = results.latency;
  uint64_t n = h.count();
  double achieved = elapsed > 0 ? static_cast<double>(n) / elapsed : 0;
  char json[1024];
  snprintf(json, sizeof json,
           "{\"bench\":\"extauthz_load\",\"mode\":\"%s\",\"auth\":\"%s\",\"server\":\"%s\","
           "\"concurrency\":%zu,\"target_rate\":%.0f,\"seconds\":%.3f,\"requests\":%llu,"
           "\"achieved_rps\":%.1f,\"allow\":%llu,\"deny\":%llu,\"errors\":%llu,\"skipped\":%llu,"
           "\"p50_us\":%.0f,\"p90_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.1f}",
           f.direct     ? "direct"
           : f.rate > 0 ? "rate"
                        : "closed",
           f.auth.c_str(), f.target.empty() ? "in-process" : "remote",
           f.direct     ? size_t{1}
           : f.rate > 0 ? size_t{0}
                        : f.concurrency,
           f.rate, elapsed, static_cast<unsigned long long>(n), achieved,
           static_cast<unsigned long long>(results.allow.load()),
           static_cast<unsigned long long>(results.deny.load()),
           static_cast<unsigned long long>(results.errors.load()),
           static_cast<unsigned long long>(results.skipped.load()), h.Quantile(0.50),
           h.Quantile(0.90), h.Quantile(0.99), h.MaxMicros());
  if (!f.json) {
    printf("ext_authz %s, %s auth, %s server: %llu requests in %.2f s = %.0f req/s\n",
           f.direct     ? "direct (no gRPC, one thread)"
           : f.rate > 0 ? "fixed rate"
                        : "closed loop",
           f.auth.c_str(), f.target.empty() ? "in-process" : target.c_str(),
           static_cast<unsigned long long>(n), elapsed, achieved);
    printf("  allow %llu, deny %llu, rpc errors %llu, skipped %llu\n",
           static_cast<unsigned long long>(results.allow.load()),
           static_cast<unsigned long long>(results.deny.load()),
           static_cast<unsigned long long>(results.errors.load()),
           static_cast<unsigned long long>(results.skipped.load()));
    printf("  latency p50 %.0f us, p90 %.0f us, p99 %.0f us, max %.1f us\n", h.Quantile(0.5),
           h.Quantile(0.9), h.Quantile(0.99), h.MaxMicros());
    if (!results.first_problem.empty()) {
      printf("  first problem: %s\n", results.first_problem.substr(0, 300).c_str());
    }
  }
  printf("%s\n", json);
  if (f.expect_allow && (n == 0 || results.allow.load() != n)) {
    fprintf(stderr, "extauthz_load: --expect-allow: %llu of %llu allowed\n",
            static_cast<unsigned long long>(results.allow.load()),
            static_cast<unsigned long long>(n));
    return 1;
  }
  return 0;
}
