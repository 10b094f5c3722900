// The control-plane client. See cp_client.h for the protocol, threads,
// states and metrics.
#include "agent/cp_client.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iterator>

#include "bytecode/sha256.h"
#include "vakt/v1/agent.grpc.pb.h"

namespace vakt::agent {

namespace {

using vakt::v1::AgentMessage;
using vakt::v1::ServerMessage;
using Stream = grpc::ClientReaderWriter<AgentMessage, ServerMessage>;
using Clock = std::chrono::steady_clock;

constexpr size_t kMaxTlsFileBytes = 1 << 20;
constexpr size_t kMaxNonceBytes = 64;    // the server's limit
constexpr size_t kMaxErrorBytes = 1024;  // the server keeps this much of a NACK
constexpr size_t kMaxNoticeBytes = 512;
constexpr size_t kMaxLabels = 32;

int64_t MsSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

std::string CodeName(grpc::StatusCode c) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int i = static_cast<int>(c);
  if (i >= 0 && i < static_cast<int>(std::size(kNames))) return kNames[i];
  return "CODE_" + std::to_string(i);
}

// Printable ASCII only, at most `max` bytes: pushed text goes to our logs.
std::string Sanitize(std::string_view s, size_t max) {
  std::string out;
  out.reserve(std::min(s.size(), max));
  for (char c : s.substr(0, max)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  if (s.size() > max) out += "...";
  return out;
}

Result<std::string> ReadTlsFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return IoError("cannot read " + path);
  std::string out;
  char buf[8192];
  while (in.read(buf, sizeof(buf)) || in.gcount() > 0) {
    out.append(buf, static_cast<size_t>(in.gcount()));
    if (out.size() > kMaxTlsFileBytes) {
      return ResourceExhausted(path + " is over " + std::to_string(kMaxTlsFileBytes) + " bytes");
    }
  }
  if (in.bad()) return IoError("cannot read " + path);
  return out;
}

std::string DigestHex(std::string_view bytes) {
  std::array<uint8_t, 32> d = bytecode::Sha256(bytes);
  return bytecode::HexLower(d.data(), d.size());
}

void SetNack(AgentMessage* reply, const std::string& nonce, uint64_t version,
             const std::string& error) {
  vakt::v1::Nack* n = reply->mutable_nack();
  n->set_nonce(nonce.substr(0, kMaxNonceBytes));
  n->set_version(version);
  n->set_error(error.substr(0, kMaxErrorBytes));
}

void SetAck(AgentMessage* reply, const std::string& nonce, uint64_t version) {
  reply->mutable_ack()->set_nonce(nonce.substr(0, kMaxNonceBytes));
  reply->mutable_ack()->set_version(version);
}

}  // namespace

std::string_view ConnectionStateName(ConnectionState s) {
  switch (s) {
    case ConnectionState::kIdle:
      return "idle";
    case ConnectionState::kConnecting:
      return "connecting";
    case ConnectionState::kConnected:
      return "connected";
    case ConnectionState::kBackoff:
      return "backoff";
    case ConnectionState::kStopped:
      return "stopped";
  }
  return "unknown";
}

Backoff::Backoff(int64_t initial_ms, int64_t max_ms, double factor, uint64_t seed)
    : initial_ms_(std::max<int64_t>(1, initial_ms)),
      max_ms_(std::max(initial_ms_, max_ms)),
      factor_(factor < 1 ? 1 : factor),
      cap_ms_(initial_ms_),
      rng_(seed) {}

int64_t Backoff::NextMs() {
  std::uniform_int_distribution<int64_t> d(0, cap_ms_);
  const int64_t delay = d(rng_);
  const double next = static_cast<double>(cap_ms_) * factor_;
  cap_ms_ = next >= static_cast<double>(max_ms_) ? max_ms_ : static_cast<int64_t>(next);
  return delay;
}

bool IsLoopbackTarget(std::string_view t) {
  if (t.find(',') != std::string_view::npos) return false;  // address lists
  if (t.starts_with("unix:") || t.starts_with("unix-abstract:")) return true;
  for (std::string_view prefix : {"dns:///", "dns:", "ipv4:", "ipv6:"}) {
    if (t.starts_with(prefix)) {
      t.remove_prefix(prefix.size());
      break;
    }
  }
  std::string_view host = t;
  if (t.starts_with("[")) {
    size_t end = t.find(']');
    if (end == std::string_view::npos) return false;
    host = t.substr(1, end - 1);
  } else if (std::count(t.begin(), t.end(), ':') == 1) {
    host = t.substr(0, t.find(':'));
  }
  if (host == "localhost" || host == "::1") return true;
  if (!host.starts_with("127.")) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (c < '0' || c > '9') {
      return false;
    }
  }
  return dots == 3;
}

ControlPlaneClient::ControlPlaneClient(Agent* agent, ControlPlaneClientOptions options,
                                       std::shared_ptr<grpc::ChannelCredentials> creds)
    : agent_(agent), opts_(std::move(options)), creds_(std::move(creds)) {}

ControlPlaneClient::~ControlPlaneClient() { Stop(); }

Result<std::unique_ptr<ControlPlaneClient>> ControlPlaneClient::Create(
    Agent* agent, ControlPlaneClientOptions o) {
  if (agent == nullptr) return InvalidArgument("no agent");
  if (o.target.empty()) return InvalidArgument("no control-plane target");
  if (o.heartbeat_interval_ms <= 0 || o.initial_backoff_ms <= 0 ||
      o.max_backoff_ms < o.initial_backoff_ms || o.backoff_factor < 1 ||
      o.connect_timeout_ms <= 0 || o.log_flush_interval_ms <= 0 || o.keepalive_ms < 0 ||
      o.stable_after_ms < 0) {
    return InvalidArgument(
        "intervals must be positive, max backoff >= initial backoff, backoff factor >= 1");
  }
  if (o.labels.size() > kMaxLabels) {
    return InvalidArgument("more than " + std::to_string(kMaxLabels) + " labels");
  }
  if (o.cert_file.empty() != o.key_file.empty()) {
    return InvalidArgument("a client certificate needs its key and a key its certificate");
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (o.insecure_loopback) {
    if (!IsLoopbackTarget(o.target)) {
      return InvalidArgument(
          "plaintext (insecure loopback) is allowed only to a loopback "
          "target, not `" +
          o.target + "`; configure TLS");
    }
    if (!o.ca_file.empty() || !o.cert_file.empty()) {
      return InvalidArgument("insecure loopback and TLS files are exclusive");
    }
    if (o.agent_id.empty()) {
      return InvalidArgument("an agent id is required without a client certificate");
    }
    creds = grpc::InsecureChannelCredentials();
  } else {
    if (o.cert_file.empty()) {
      return InvalidArgument(
          "the control plane identifies agents by their client certificate: set the "
          "certificate and key files (or insecure loopback for a loopback target)");
    }
    grpc::SslCredentialsOptions ssl;
    if (!o.ca_file.empty()) {
      Result<std::string> ca = ReadTlsFile(o.ca_file);
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = std::move(*ca);
    }
    Result<std::string> cert = ReadTlsFile(o.cert_file);
    if (!cert.ok()) return cert.status();
    Result<std::string> key = ReadTlsFile(o.key_file);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = std::move(*cert);
    ssl.pem_private_key = std::move(*key);
    creds = grpc::SslCredentials(ssl);
  }
  if (!creds) return InvalidArgument("cannot build channel credentials");
  return std::unique_ptr<ControlPlaneClient>(
      new ControlPlaneClient(agent, std::move(o), std::move(creds)));
}

void ControlPlaneClient::Start() {
  std::lock_guard<std::mutex> l(start_mu_);
  if (started_) return;
  started_ = true;
  SetState(ConnectionState::kConnecting);
  worker_ = std::thread([this] { Run(); });
}

void ControlPlaneClient::Stop() {
  std::lock_guard<std::mutex> sl(start_mu_);
  started_ = true;  // a stopped client does not start again
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
    if (ctx_) ctx_->TryCancel();
  }
  cv_.notify_all();
  if (!worker_.joinable()) return;  // never started, or stopped already
  worker_.join();
  SetState(ConnectionState::kStopped);
}

ControlPlaneStatus ControlPlaneClient::status() const {
  std::lock_guard<std::mutex> l(mu_);
  return status_;
}

ConnectionState ControlPlaneClient::state() const {
  std::lock_guard<std::mutex> l(mu_);
  return status_.state;
}

void ControlPlaneClient::SetState(ConnectionState s, const std::string& error) {
  {
    std::lock_guard<std::mutex> l(mu_);
    status_.state = s;
    if (!error.empty()) status_.last_error = error;
  }
  Metrics& m = agent_->metrics();
  m.SetGauge("vakt_agent_controlplane_connected", "", s == ConnectionState::kConnected ? 1 : 0);
  for (ConnectionState each : {ConnectionState::kConnecting, ConnectionState::kConnected,
                               ConnectionState::kBackoff, ConnectionState::kStopped}) {
    m.SetGauge("vakt_agent_controlplane_state",
               "state=\"" + std::string(ConnectionStateName(each)) + "\"", each == s ? 1 : 0);
  }
}

void ControlPlaneClient::Count(const std::function<void(ControlPlaneStatus&)>& f) {
  std::lock_guard<std::mutex> l(mu_);
  f(status_);
}

bool ControlPlaneClient::SleepFor(int64_t ms) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, std::chrono::milliseconds(ms), [this] { return stopping(); });
  return !stopping();
}

void ControlPlaneClient::Run() {
  std::random_device rd;
  Backoff backoff(opts_.initial_backoff_ms, opts_.max_backoff_ms, opts_.backoff_factor,
                  (static_cast<uint64_t>(rd()) << 32) ^ rd());
  bool first = true;
  while (!stopping()) {
    if (!first) {
      Count([](ControlPlaneStatus& s) { ++s.reconnects; });
      agent_->metrics().Add("vakt_agent_controlplane_reconnects_total", "");
    }
    first = false;
    SetState(ConnectionState::kConnecting);
    bool healthy = false;
    std::string why = RunStream(&healthy);
    if (stopping()) break;
    if (healthy) backoff.Reset();
    const int64_t delay = backoff.NextMs();
    spdlog::warn("control plane {}: {}; reconnecting in {} ms", opts_.target, why, delay);
    SetState(ConnectionState::kBackoff, why);
    if (!SleepFor(delay)) break;
  }
}

std::string ControlPlaneClient::RunStream(bool* healthy) {
  *healthy = false;
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of our own
  args.SetMaxReceiveMessageSize(
      static_cast<int>(std::min<size_t>(opts_.max_bundle_bytes + (1 << 20), INT32_MAX)));
  args.SetMaxSendMessageSize(
      static_cast<int>(std::min<size_t>(opts_.max_send_message_bytes, INT32_MAX)));
  if (opts_.keepalive_ms > 0) {
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(opts_.keepalive_ms));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
  }
  if (!opts_.tls_server_name.empty()) args.SetSslTargetNameOverride(opts_.tls_server_name);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(opts_.target, creds_, args);

  // Connect, in slices so that Stop() is noticed. A channel in transient
  // failure still gets a call: its status says why (refused, TLS, ...).
  const Clock::time_point t0 = Clock::now();
  grpc_connectivity_state st = channel->GetState(true);
  while (st != GRPC_CHANNEL_READY && st != GRPC_CHANNEL_TRANSIENT_FAILURE) {
    if (stopping()) return "stopped";
    if (st == GRPC_CHANNEL_SHUTDOWN) return "the channel shut down";
    if (MsSince(t0) >= opts_.connect_timeout_ms) {
      return "no connection within " + std::to_string(opts_.connect_timeout_ms) + " ms";
    }
    channel->WaitForStateChange(st,
                                std::chrono::system_clock::now() + std::chrono::milliseconds(100));
    st = channel->GetState(true);
  }

  auto ctx = std::make_shared<grpc::ClientContext>();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping()) return "stopped";
    ctx_ = ctx;
    stream_done_ = false;
  }
  auto stub = vakt::v1::AgentService::NewStub(channel);
  std::unique_ptr<Stream> stream = stub->Stream(ctx.get());
  const Clock::time_point opened = Clock::now();

  AgentMessage hello_msg;
  vakt::v1::Hello* hello = hello_msg.mutable_hello();
  hello->set_agent_id(opts_.agent_id);
  for (const auto& [k, v] : opts_.labels) (*hello->mutable_labels())[k] = v;
  if (auto a = agent_->active(); a && !a->policy.empty()) {
    hello->set_running_version(a->version);
    hello->set_running_digest(a->digest);
  }
  hello->add_capabilities("bundle-format-3");
  hello->add_capabilities("revocations");
  if (opts_.next_log_batch) hello->add_capabilities("decision-logs");
  hello->set_agent_version(opts_.agent_version);
  hello->set_revocation_revision(agent_->revocation_revision());

  std::atomic<bool> got_valid{false};
  std::thread reader;
  if (Write(stream.get(), hello_msg)) {
    Count([](ControlPlaneStatus& s) { ++s.streams; });
    SetState(ConnectionState::kConnected);
    spdlog::info("control plane {}: connected (running version {}, revocation revision {})",
                 opts_.target, hello->running_version(), hello->revocation_revision());
    reader = std::thread([&] { ReadLoop(stream.get(), &got_valid); });

    Clock::time_point next_hb =
        Clock::now() + std::chrono::milliseconds(opts_.heartbeat_interval_ms);
    Clock::time_point next_log =
        Clock::now() + std::chrono::milliseconds(opts_.log_flush_interval_ms);
    while (true) {
      {
        std::unique_lock<std::mutex> l(mu_);
        Clock::time_point until = opts_.next_log_batch ? std::min(next_hb, next_log) : next_hb;
        cv_.wait_until(l, until, [this] { return stream_done_ || stopping(); });
        if (stream_done_ || stopping()) break;
      }
      const Clock::time_point now = Clock::now();
      if (now >= next_hb) {
        AgentMessage hb;
        auto a = agent_->active();
        hb.mutable_heartbeat()->set_running_version(a && !a->policy.empty() ? a->version : 0);
        hb.mutable_heartbeat()->set_revocation_revision(agent_->revocation_revision());
        if (!Write(stream.get(), hb)) break;
        next_hb = now + std::chrono::milliseconds(opts_.heartbeat_interval_ms);
      }
      if (opts_.next_log_batch && now >= next_log) {
        next_log = now + std::chrono::milliseconds(opts_.log_flush_interval_ms);
        AgentMessage batch;
        if (opts_.next_log_batch(&batch)) {
          if (batch.ByteSizeLong() > opts_.max_send_message_bytes) {
            Count([](ControlPlaneStatus& s) { ++s.log_batches_dropped; });
            spdlog::warn("dropping a decision-log batch of {} bytes (limit {})",
                         batch.ByteSizeLong(), opts_.max_send_message_bytes);
          } else if (!Write(stream.get(), batch)) {
            break;
          } else {
            Count([](ControlPlaneStatus& s) { ++s.log_batches_sent; });
          }
        }
      }
    }
  }
  if (!reader.joinable()) {
    // The Hello could not be written: the call is over. Read what the
    // server left (bounded) so that Finish reports its status.
    ServerMessage m;
    int i = 0;
    while (i < 16 && stream->Read(&m)) ++i;
    if (i == 16) ctx->TryCancel();
  } else {
    // A failed write means the call is over and the reader ends on its
    // own, with the server's status; give it a moment, then cancel.
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::seconds(1), [this] { return stream_done_ || stopping(); });
    if (!stream_done_) ctx->TryCancel();
  }
  if (reader.joinable()) reader.join();
  grpc::Status s = stream->Finish();
  stream.reset();
  {
    std::lock_guard<std::mutex> l(mu_);
    ctx_.reset();
  }
  *healthy = got_valid.load() || MsSince(opened) >= opts_.stable_after_ms;
  if (stopping()) return "stopped";
  if (s.ok()) return "the control plane closed the stream";
  return "stream ended: " + CodeName(s.error_code()) + ": " +
         Sanitize(s.error_message(), kMaxErrorBytes);
}

bool ControlPlaneClient::Write(void* stream, const AgentMessage& m) {
  std::lock_guard<std::mutex> l(write_mu_);
  return static_cast<Stream*>(stream)->Write(m);
}

void ControlPlaneClient::ReadLoop(void* stream_ptr, std::atomic<bool>* got_valid) {
  Stream* stream = static_cast<Stream*>(stream_ptr);
  ServerMessage m;
  while (!stopping() && stream->Read(&m)) {
    AgentMessage reply;
    if (m.kind_case() != ServerMessage::KIND_NOT_SET) got_valid->store(true);
    if (Handle(m, &reply) && !Write(stream, reply)) break;
    m.Clear();
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    stream_done_ = true;
  }
  cv_.notify_all();
}

bool ControlPlaneClient::Handle(const ServerMessage& m, AgentMessage* reply) {
  switch (m.kind_case()) {
    case ServerMessage::kBundle:
      return HandleBundle(m.bundle(), reply);
    case ServerMessage::kRevocations:
      return HandleRevocations(m.revocations(), reply);
    case ServerMessage::kNotice: {
      std::string text = Sanitize(m.notice().message(), kMaxNoticeBytes);
      spdlog::info("control plane notice: {}", text);
      Count([&](ControlPlaneStatus& s) {
        ++s.notices;
        s.last_notice = text;
      });
      return false;
    }
    case ServerMessage::KIND_NOT_SET:
      break;
  }
  spdlog::debug("control plane sent an empty or unknown message; ignored");
  return false;
}

bool ControlPlaneClient::HandleBundle(const vakt::v1::BundleUpdate& u, AgentMessage* reply) {
  auto refuse = [&](const std::string& error) {
    spdlog::warn("refusing bundle {} version {} from the control plane: {}",
                 Sanitize(u.policy(), kMaxCachedPolicyBytes), u.version(), error);
    Count([&](ControlPlaneStatus& s) {
      ++s.bundles_refused;
      s.last_refusal = error.substr(0, kMaxErrorBytes);
    });
    agent_->metrics().Add("vakt_agent_controlplane_updates_total",
                          "kind=\"bundle\",result=\"refused\"");
    SetNack(reply, u.nonce(), u.version(), error);
    return true;
  };
  if (u.nonce().empty() || u.nonce().size() > kMaxNonceBytes) {
    return refuse("bad nonce (empty or over " + std::to_string(kMaxNonceBytes) + " bytes)");
  }
  if (u.version() == 0) return refuse("bundle version 0");
  if (u.policy().empty() || u.policy().size() > kMaxCachedPolicyBytes) {
    return refuse("bad policy name (empty or over " + std::to_string(kMaxCachedPolicyBytes) +
                  " bytes)");
  }
  if (u.bundle().size() > opts_.max_bundle_bytes) {
    return refuse("bundle of " + std::to_string(u.bundle().size()) +
                  " bytes exceeds the limit of " + std::to_string(opts_.max_bundle_bytes));
  }
  if (u.signature().size() > kMaxCachedSignatureBytes || u.key_id().size() > kMaxCachedKeyIdBytes) {
    return refuse("signature or key id over its size limit");
  }
  const std::string digest = DigestHex(u.bundle());
  if (u.digest() != digest) {
    return refuse("digest mismatch: the bundle's SHA-256 is " + digest + ", the update says `" +
                  Sanitize(u.digest(), 64) + "`");
  }
  auto active = agent_->active();
  const bool same = active && active->policy == u.policy() && active->version == u.version() &&
                    active->digest == digest;
  if (!same) {
    Status st = agent_->Load(u.policy(), u.version(), u.bundle(), u.signature(), u.key_id(),
                             /*allow_downgrade=*/true);
    if (!st.ok()) return refuse(st.ToString());
    spdlog::info("activated bundle {} version {} ({})", u.policy(), u.version(), digest);
    if (opts_.cache != nullptr) {
      Status cs = opts_.cache->Save(
          CachedBundle{u.policy(), u.version(), u.key_id(), u.signature(), u.bundle()});
      if (!cs.ok()) {
        spdlog::error("cannot cache bundle version {} (it runs anyway): {}", u.version(),
                      cs.ToString());
        Count([](ControlPlaneStatus& s) { ++s.cache_write_failures; });
        agent_->metrics().Add("vakt_agent_cache_write_failures_total", "");
      }
    }
  }
  Count([](ControlPlaneStatus& s) { ++s.bundles_applied; });
  agent_->metrics().Add("vakt_agent_controlplane_updates_total",
                        "kind=\"bundle\",result=\"applied\"");
  SetAck(reply, u.nonce(), u.version());
  return true;
}

bool ControlPlaneClient::HandleRevocations(const vakt::v1::RevocationUpdate& u,
                                           AgentMessage* reply) {
  auto refuse = [&](const std::string& error) {
    spdlog::warn("refusing revocation revision {} from the control plane: {}", u.revision(), error);
    Count([&](ControlPlaneStatus& s) {
      ++s.revocations_refused;
      s.last_refusal = error.substr(0, kMaxErrorBytes);
    });
    agent_->metrics().Add("vakt_agent_controlplane_updates_total",
                          "kind=\"revocations\",result=\"refused\"");
    SetNack(reply, u.nonce(), u.revision(), error);
    return true;
  };
  if (u.nonce().empty() || u.nonce().size() > kMaxNonceBytes) {
    return refuse("bad nonce (empty or over " + std::to_string(kMaxNonceBytes) + " bytes)");
  }
  const size_t entries = static_cast<size_t>(u.jtis_size()) +
                         static_cast<size_t>(u.subjects_size()) +
                         static_cast<size_t>(u.clients_size());
  const size_t limit = std::min(opts_.max_revocation_entries, kMaxRevocationEntries);
  if (entries > limit) {
    return refuse("revocation set of " + std::to_string(entries) +
                  " entries exceeds the limit of " + std::to_string(limit));
  }
  CachedRevocations rev;
  rev.revision = u.revision();
  rev.jtis.assign(u.jtis().begin(), u.jtis().end());
  for (const auto& c : u.subjects()) rev.subjects.emplace_back(c.value(), c.not_after());
  for (const auto& c : u.clients()) rev.clients.emplace_back(c.value(), c.not_after());
  if (Status st = CheckRevocations(rev); !st.ok()) return refuse(st.message());
  agent_->SetRevocations(BuildRevocationSet(rev), rev.revision);
  spdlog::info("applied revocation revision {} ({} entries)", rev.revision, entries);
  if (opts_.cache != nullptr) {
    if (Status cs = opts_.cache->SaveRevocations(rev); !cs.ok()) {
      spdlog::error("cannot cache revocation revision {} (it applies anyway): {}", rev.revision,
                    cs.ToString());
      Count([](ControlPlaneStatus& s) { ++s.cache_write_failures; });
      agent_->metrics().Add("vakt_agent_cache_write_failures_total", "");
    }
  }
  Count([](ControlPlaneStatus& s) { ++s.revocations_applied; });
  agent_->metrics().Add("vakt_agent_controlplane_updates_total",
                        "kind=\"revocations\",result=\"applied\"");
  SetAck(reply, u.nonce(), u.revision());
  return true;
}

}  // namespace vakt::agent
