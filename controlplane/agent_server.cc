// The agent stream server. See agent_server.h for the protocol and bounds.
//
// Lifetime: gRPC owns nothing here; each Reactor deletes itself in OnDone.
// Everything else that may call into a Reactor (the snapshot watcher, the
// fleet closing a replaced stream, the sweeper) goes through a shared
// Handle whose pointer OnDone clears under the Handle's mutex first, so no
// call reaches a deleted Reactor.
#include "controlplane/agent_server.h"

#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "bytecode/sha256.h"

namespace vakt::controlplane {

namespace {

using vakt::v1::AgentMessage;
using vakt::v1::ServerMessage;

constexpr size_t kMaxIdBytes = 128;
constexpr size_t kMaxLabels = 32;
constexpr size_t kMaxLabelKey = 63;
constexpr size_t kMaxLabelValue = 253;
constexpr size_t kMaxCapabilities = 32;
constexpr size_t kMaxCapabilityBytes = 64;
constexpr size_t kMaxNonceBytes = 64;
constexpr size_t kMaxErrorBytes = 1024;
// Decision-log field bounds (the agent's own, agent/decision_log.h).
constexpr size_t kMaxDecisionPathBytes = 512;
constexpr size_t kMaxDecisionNameBytes = 128;
constexpr size_t kMaxDecisionHeaderValueBytes = 256;
constexpr int kMaxDecisionHeaders = 16;

int64_t SystemNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool IdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '.' || c == '_' || c == '-' || c == ':' || c == '/' || c == '@';
}

// Agent ids, label keys and values: printable ASCII from a small set, so
// they are safe in logs, SQL (bound anyway) and the fleet view.
Status CheckToken(std::string_view what, std::string_view s, size_t max, bool allow_empty) {
  if (s.empty() && !allow_empty) return InvalidArgument(std::string(what) + " is empty");
  if (s.size() > max) {
    return InvalidArgument(std::string(what) + " is longer than " + std::to_string(max) +
                           " bytes");
  }
  for (char c : s) {
    if (!IdChar(c)) {
      return InvalidArgument(std::string(what) +
                             " may hold only letters, digits and . _ - : / @");
    }
  }
  return Status::Ok();
}

Status CheckHello(const vakt::v1::Hello& h) {
  if (h.labels_size() > static_cast<int>(kMaxLabels)) {
    return InvalidArgument("more than " + std::to_string(kMaxLabels) + " labels");
  }
  for (const auto& [k, v] : h.labels()) {
    if (Status st = CheckToken("label key", k, kMaxLabelKey, false); !st.ok()) return st;
    if (Status st = CheckToken("label value", v, kMaxLabelValue, true); !st.ok()) return st;
  }
  if (h.capabilities_size() > static_cast<int>(kMaxCapabilities)) {
    return InvalidArgument("more than " + std::to_string(kMaxCapabilities) + " capabilities");
  }
  for (const std::string& c : h.capabilities()) {
    if (Status st = CheckToken("capability", c, kMaxCapabilityBytes, false); !st.ok()) return st;
  }
  if (Status st = CheckToken("agent_version", h.agent_version(), kMaxCapabilityBytes, true);
      !st.ok()) {
    return st;
  }
  if (h.running_digest().size() > 64) return InvalidArgument("running_digest is too long");
  return Status::Ok();
}

grpc::ByteBuffer Serialize(const ServerMessage& m) {
  std::string bytes = m.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string Truncate(std::string s, size_t max) {
  if (s.size() > max) s.resize(max);
  return s;
}

// Cuts `*s` to `max` bytes and replaces bytes outside printable ASCII with
// '?'; returns true if it changed anything.
bool BoundField(std::string* s, size_t max) {
  bool changed = false;
  if (s->size() > max) {
    s->resize(max);
    changed = true;
  }
  for (char& c : *s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) {
      c = '?';
      changed = true;
    }
  }
  return changed;
}

// Applies the field bounds to one event; returns how many fields changed.
uint64_t BoundEvent(vakt::v1::DecisionEvent* e) {
  uint64_t n = 0;
  n += BoundField(e->mutable_path(), kMaxDecisionPathBytes);
  n += BoundField(e->mutable_query(), kMaxDecisionPathBytes);
  for (std::string* f : {e->mutable_interface(), e->mutable_method(), e->mutable_route(),
                         e->mutable_rule(), e->mutable_error(), e->mutable_sub(),
                         e->mutable_client_id(), e->mutable_jti()}) {
    n += BoundField(f, kMaxDecisionNameBytes);
  }
  if (e->headers_size() > kMaxDecisionHeaders) {
    e->mutable_headers()->DeleteSubrange(kMaxDecisionHeaders,
                                         e->headers_size() - kMaxDecisionHeaders);
    ++n;
  }
  for (vakt::v1::LoggedHeader& h : *e->mutable_headers()) {
    n += BoundField(h.mutable_name(), kMaxDecisionNameBytes);
    n += BoundField(h.mutable_value(), kMaxDecisionHeaderValueBytes);
  }
  return n;
}

}  // namespace

std::string PeerCertificateIdentity(const grpc::ServerContextBase& ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return "";
  std::vector<grpc::string_ref> cn = auth->FindPropertyValues("x509_common_name");
  if (cn.size() != 1) return "";
  return std::string(cn[0].data(), cn[0].size());
}

bool PeerIsLoopback(std::string_view peer) {
  return peer.starts_with("ipv4:127.") || peer.starts_with("ipv6:[::1]") ||
         peer.starts_with("ipv6:%5B::1%5D") || peer.starts_with("unix:");
}

struct AgentServer::Handle {
  std::mutex mu;
  Reactor* reactor = nullptr;  // cleared in OnDone before the Reactor dies
};

class AgentServer::Reactor final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  Reactor(AgentServer* server, grpc::CallbackServerContext* ctx, std::shared_ptr<Handle> handle)
      : server_(server), ctx_(ctx), handle_(std::move(handle)), started_ms_(MonotonicMs()),
        tokens_(server->opts_.message_burst), last_refill_ms_(started_ms_),
        decision_tokens_(server->opts_.decision_batch_burst),
        decision_refill_ms_(started_ms_) {
    cert_identity_ = PeerCertificateIdentity(*ctx);
    peer_ = ctx->peer();
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the agent closed its side, or the stream broke
      FinishOnce(grpc::Status::OK);
      return;
    }
    grpc::Status st = HandleMessage(in_);
    in_.Clear();
    if (!st.ok()) {
      {
        std::lock_guard<std::mutex> l(server_->mu_);
        ++server_->stats_.refused;
      }
      spdlog::warn("agent stream {} ({}): {}", id_.empty() ? "?" : id_, peer_,
                   st.error_message());
      FinishOnce(st);
      return;
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> l(mu_);
    writing_ = false;
    if (!ok) return;  // the stream is going away; OnDone follows
    WriteNextLocked();
  }

  void OnDone() override {
    {
      std::lock_guard<std::mutex> l(handle_->mu);
      handle_->reactor = nullptr;
    }
    if (session_ != 0) server_->fleet_->Disconnect(session_, server_->Now());
    {
      std::lock_guard<std::mutex> l(server_->mu_);
      server_->streams_.erase(handle_);
      if (server_->streams_.empty()) server_->all_done_.notify_all();
    }
    delete this;
  }

  // Ends the stream with `st` unless it has ended already.
  void FinishOnce(const grpc::Status& st) {
    std::lock_guard<std::mutex> l(mu_);
    if (finished_) return;
    finished_ = true;
    Finish(st);
  }

  // Brings the agent to what `snap` says. Called after the Hello and on
  // every new snapshot.
  void Reconcile(const SnapshotPtr& snap) {
    std::lock_guard<std::mutex> l(mu_);
    if (!hello_done_ || finished_) return;
    Assignment a = snap->DesiredFor(id_, labels_);
    if (a.version == 0) {
      if (!told_unassigned_) {
        ServerMessage m;
        m.mutable_notice()->set_message(
            "no rollout selects this agent (labels and stage); keeping what it runs");
        pending_notice_ = Serialize(m);
        told_unassigned_ = true;
      }
    } else {
      told_unassigned_ = false;
      if (a.version != sent_version_) {
        const BundleBlob* b = snap->Bundle(a.version);
        if (b != nullptr) {
          pending_bundle_ = server_->BundleMessage(*b);
          sent_version_ = a.version;
          bundle_nonce_ = server_->BundleNonce(a.version);
          std::lock_guard<std::mutex> sl(server_->mu_);
          ++server_->stats_.bundles_sent;
        }
      }
    }
    const RevocationList& rev = snap->revocations();
    if (rev.revision != 0 && rev.revision != sent_revision_) {
      pending_revocations_ = server_->RevocationMessage(rev);
      sent_revision_ = rev.revision;
      revocation_nonce_ = server_->RevocationNonce(rev.revision);
      std::lock_guard<std::mutex> sl(server_->mu_);
      ++server_->stats_.revocations_sent;
    }
    WriteNextLocked();
  }

  // Cancels the RPC (shutdown, after Finish): completes pending operations.
  void Cancel() { ctx_->TryCancel(); }

  bool HelloOverdue(int64_t now_ms) const {
    std::lock_guard<std::mutex> l(mu_);
    return !hello_done_ && !finished_ && now_ms - started_ms_ > server_->opts_.hello_timeout_ms;
  }

 private:
  void WriteNextLocked() {
    if (writing_ || finished_) return;
    std::optional<grpc::ByteBuffer>* next = nullptr;
    if (pending_bundle_) {
      next = &pending_bundle_;
    } else if (pending_revocations_) {
      next = &pending_revocations_;
    } else if (pending_notice_) {
      next = &pending_notice_;
    } else {
      return;
    }
    out_ = std::move(**next);
    next->reset();
    writing_ = true;
    StartWrite(&out_);
  }

  // A token bucket: `message_burst` at once, `messages_per_second` after.
  bool TakeToken() {
    const int64_t now = MonotonicMs();
    const AgentServerOptions& o = server_->opts_;
    tokens_ = std::min(o.message_burst,
                       tokens_ + (now - last_refill_ms_) * o.messages_per_second / 1000.0);
    last_refill_ms_ = now;
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

  // The decision-log bucket: `decision_batch_burst` at once,
  // `decision_batches_per_second` after.
  bool TakeDecisionToken() {
    const int64_t now = MonotonicMs();
    const AgentServerOptions& o = server_->opts_;
    decision_tokens_ =
        std::min(o.decision_batch_burst,
                 decision_tokens_ + (now - decision_refill_ms_) * o.decision_batches_per_second /
                                        1000.0);
    decision_refill_ms_ = now;
    if (decision_tokens_ < 1) return false;
    decision_tokens_ -= 1;
    return true;
  }

  grpc::Status HandleMessage(const grpc::ByteBuffer& buf) {
    if (!TakeToken()) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "too many messages on this stream; slow down");
    }
    if (buf.Length() > server_->opts_.max_message_bytes) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "message of " + std::to_string(buf.Length()) +
                              " bytes exceeds the limit of " +
                              std::to_string(server_->opts_.max_message_bytes));
    }
    std::vector<grpc::Slice> slices;
    if (!buf.Dump(&slices).ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unreadable message");
    }
    std::string bytes;
    bytes.reserve(buf.Length());
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    AgentMessage m;
    if (!m.ParseFromString(bytes)) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed AgentMessage");
    }
    switch (m.kind_case()) {
      case AgentMessage::kHello:
        return OnHello(m.hello());
      case AgentMessage::kDecisions:
        if (!hello_done_) {
          return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                              "the first message must be a hello");
        }
        return OnDecisions(m.mutable_decisions());
      case AgentMessage::kAck:
      case AgentMessage::kNack:
      case AgentMessage::kHeartbeat:
        if (!hello_done_) {
          return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                              "the first message must be a hello");
        }
        if (m.has_ack()) return OnReply(m.ack().nonce(), m.ack().version(), nullptr);
        if (m.has_nack()) return OnReply(m.nack().nonce(), m.nack().version(), &m.nack().error());
        return OnHeartbeat();
      case AgentMessage::KIND_NOT_SET:
        break;
    }
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "empty or unknown message kind (is the agent newer than the server?)");
  }

  grpc::Status OnHello(const vakt::v1::Hello& h) {
    if (hello_done_) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "hello sent twice");
    }
    std::string id;
    if (!cert_identity_.empty()) {
      if (!h.agent_id().empty() && h.agent_id() != cert_identity_) {
        return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                            "agent_id `" + Truncate(h.agent_id(), kMaxIdBytes) +
                                "` differs from the client certificate's `" + cert_identity_ +
                                "`");
      }
      id = cert_identity_;
    } else if (server_->opts_.insecure_identity && PeerIsLoopback(peer_)) {
      id = h.agent_id();
    } else {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "agents must present a client certificate");
    }
    if (Status st = CheckToken("agent_id", id, kMaxIdBytes, false); !st.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, st.message());
    }
    if (Status st = CheckHello(h); !st.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, st.message());
    }

    AgentRecord rec;
    rec.id = id;
    for (const auto& [k, v] : h.labels()) rec.labels[k] = v;
    rec.agent_version = h.agent_version();
    rec.peer = Truncate(peer_, 128);
    // An agent's word on what it runs counts only if the digest matches the
    // published version's: one that lies is treated as running nothing and
    // gets the bundle it should run.
    uint64_t running = h.running_version();
    if (running != 0 && !(server_->opts_.known_version &&
                          server_->opts_.known_version(running, h.running_digest()))) {
      spdlog::warn("agent {} claims version {} with digest `{}`, which does not match; resending",
                   id, running, Truncate(h.running_digest(), 64));
      running = 0;
    }
    rec.active_version = running;
    rec.active_digest = running != 0 ? h.running_digest() : "";
    rec.revocation_revision = h.revocation_revision();

    std::weak_ptr<AgentServer::Handle> weak = handle_;
    Result<uint64_t> session = server_->fleet_->Connect(rec, server_->Now(), [weak] {
      if (auto h = weak.lock()) {
        std::lock_guard<std::mutex> l(h->mu);
        if (h->reactor != nullptr) {
          h->reactor->FinishOnce(grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                                              "replaced by a newer stream of the same agent"));
        }
      }
    });
    if (!session.ok()) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, session.status().message());
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      id_ = id;
      labels_ = rec.labels;
      sent_version_ = running;
      sent_revision_ = h.revocation_revision();
      session_ = *session;
      hello_done_ = true;
    }
    spdlog::info("agent {} connected from {} (running version {})", id, peer_, running);
    Reconcile(server_->snapshots_->Current());
    return grpc::Status::OK;
  }

  // An ACK (error == nullptr) or NACK. Counts only for the outstanding
  // nonce and the version sent with it.
  grpc::Status OnReply(const std::string& nonce, uint64_t version, const std::string* error) {
    if (nonce.size() > kMaxNonceBytes) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "nonce is too long");
    }
    enum { kStale, kBundle, kRevocations } what = kStale;
    uint64_t session = 0;
    std::string digest;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!bundle_nonce_.empty() && nonce == bundle_nonce_ && version == sent_version_) {
        what = kBundle;
        bundle_nonce_.clear();
      } else if (!revocation_nonce_.empty() && nonce == revocation_nonce_ &&
                 version == sent_revision_) {
        what = kRevocations;
        revocation_nonce_.clear();
      }
      session = session_;
    }
    {
      std::lock_guard<std::mutex> l(server_->mu_);
      if (what == kStale) {
        ++server_->stats_.stale_replies;
      } else if (error == nullptr) {
        ++server_->stats_.acks;
      } else {
        ++server_->stats_.nacks;
      }
    }
    const int64_t now = server_->Now();
    if (what == kStale) {
      spdlog::debug("agent {}: ignoring a reply for nonce `{}` version {} (not outstanding)", id_,
                    Truncate(nonce, kMaxNonceBytes), version);
      server_->fleet_->Update(session, [now](AgentRecord& r) { r.last_seen = now; });
      return grpc::Status::OK;
    }
    if (what == kBundle) {
      if (error == nullptr) {
        if (const BundleBlob* b = server_->snapshots_->Current()->Bundle(version)) digest = b->digest;
        server_->fleet_->Update(session, [&](AgentRecord& r) {
          r.active_version = version;
          r.active_digest = digest;
          r.nacked_version = 0;
          r.last_error.clear();
          r.last_seen = now;
        });
      } else {
        std::string err = Truncate(*error, kMaxErrorBytes);
        spdlog::warn("agent {} refused version {}: {}", id_, version, err);
        server_->fleet_->Update(session, [&](AgentRecord& r) {
          r.nacked_version = version;
          r.last_error = err;
          r.last_seen = now;
        });
      }
    } else {
      server_->fleet_->Update(session, [&](AgentRecord& r) {
        if (error == nullptr) {
          r.revocation_revision = version;
        } else {
          r.last_error = "revocations: " + Truncate(*error, kMaxErrorBytes);
        }
        r.last_seen = now;
      });
    }
    return grpc::Status::OK;
  }

  // Decision logs: bounded, never a reason to end the stream by themselves.
  grpc::Status OnDecisions(vakt::v1::DecisionLogBatch* batch) {
    const uint64_t total = static_cast<uint64_t>(batch->events_size());
    DecisionStore& store = server_->fleet_->decisions();
    if (!TakeDecisionToken()) {
      store.CountRefused(total);
      std::lock_guard<std::mutex> l(server_->mu_);
      ++server_->stats_.decision_batches_refused;
      server_->stats_.decision_events_refused += total;
      return grpc::Status::OK;
    }
    uint64_t over = 0;
    const int max = static_cast<int>(std::min<size_t>(server_->opts_.max_decision_events, 1 << 20));
    if (batch->events_size() > max) {
      over = total - static_cast<uint64_t>(max);
      batch->mutable_events()->DeleteSubrange(max, batch->events_size() - max);
      store.CountRefused(over);
    }
    uint64_t truncated = 0;
    std::vector<vakt::v1::DecisionEvent> events;
    events.reserve(batch->events_size());
    for (vakt::v1::DecisionEvent& e : *batch->mutable_events()) {
      truncated += BoundEvent(&e);
      events.push_back(std::move(e));
    }
    const uint64_t kept = events.size();
    const int64_t now = server_->Now();
    const bool stored = server_->fleet_->RecordDecisions(session_, std::move(events),
                                                         batch->dropped_total(), now * 1000);
    server_->fleet_->Update(session_, [now](AgentRecord& r) { r.last_seen = now; });
    std::lock_guard<std::mutex> l(server_->mu_);
    if (stored) {
      ++server_->stats_.decision_batches;
      server_->stats_.decision_events += kept;
    } else {
      server_->stats_.decision_events_refused += kept;
    }
    server_->stats_.decision_events_refused += over;
    server_->stats_.decision_fields_truncated += truncated;
    return grpc::Status::OK;
  }

  grpc::Status OnHeartbeat() {
    const int64_t now = server_->Now();
    server_->fleet_->Update(session_, [now](AgentRecord& r) { r.last_seen = now; });
    return grpc::Status::OK;
  }

  AgentServer* server_;
  grpc::CallbackServerContext* ctx_;
  std::shared_ptr<AgentServer::Handle> handle_;
  std::string cert_identity_;
  std::string peer_;
  grpc::ByteBuffer in_;
  const int64_t started_ms_;
  double tokens_;
  int64_t last_refill_ms_;
  double decision_tokens_;
  int64_t decision_refill_ms_;

  mutable std::mutex mu_;  // guards what follows (reads run one at a time)
  bool hello_done_ = false;
  bool finished_ = false;
  bool writing_ = false;
  bool told_unassigned_ = false;
  std::string id_;
  Labels labels_;
  uint64_t session_ = 0;
  uint64_t sent_version_ = 0;   // running (verified) or last sent
  uint64_t sent_revision_ = 0;
  std::string bundle_nonce_;      // outstanding, "" when answered
  std::string revocation_nonce_;
  grpc::ByteBuffer out_;
  std::optional<grpc::ByteBuffer> pending_bundle_, pending_revocations_, pending_notice_;
};

AgentServer::AgentServer(SnapshotSource* snapshots, Fleet* fleet, AgentServerOptions opts)
    : snapshots_(snapshots), fleet_(fleet), opts_(std::move(opts)) {
  unsigned char r[8];
  if (RAND_bytes(r, sizeof(r)) != 1) {
    uint64_t t = static_cast<uint64_t>(MonotonicMs());
    std::memcpy(r, &t, sizeof(r));
  }
  instance_ = bytecode::HexLower(r, sizeof(r));
  watch_ = snapshots_->Watch([this](const SnapshotPtr& s) { OnSnapshot(s); });
  sweeper_ = std::thread([this] { Sweep(); });
}

AgentServer::~AgentServer() {
  Shutdown();
  snapshots_->Unwatch(watch_);
}

int64_t AgentServer::Now() const { return opts_.now_unix ? opts_.now_unix() : SystemNow(); }

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* AgentServer::Stream(
    grpc::CallbackServerContext* ctx) {
  auto handle = std::make_shared<Handle>();
  {
    std::lock_guard<std::mutex> l(mu_);
    ++stats_.streams_opened;
    streams_.insert(handle);
  }
  auto* r = new Reactor(this, ctx, handle);
  bool finish = false;
  {
    std::lock_guard<std::mutex> hl(handle->mu);
    handle->reactor = r;
    std::lock_guard<std::mutex> l(mu_);
    finish = shutting_down_;
  }
  if (finish) r->FinishOnce(grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down"));
  return r;
}

void AgentServer::OnSnapshot(const SnapshotPtr& snap) {
  std::vector<std::shared_ptr<Handle>> handles;
  {
    std::lock_guard<std::mutex> l(mu_);
    handles.assign(streams_.begin(), streams_.end());
  }
  for (const auto& h : handles) {
    std::lock_guard<std::mutex> l(h->mu);
    if (h->reactor != nullptr) h->reactor->Reconcile(snap);
  }
}

void AgentServer::Sweep() {
  std::unique_lock<std::mutex> l(sweep_mu_);
  while (!stop_sweeper_) {
    sweep_cv_.wait_for(l, std::chrono::milliseconds(250));
    if (stop_sweeper_) break;
    l.unlock();
    std::vector<std::shared_ptr<Handle>> handles;
    {
      std::lock_guard<std::mutex> sl(mu_);
      handles.assign(streams_.begin(), streams_.end());
    }
    const int64_t now = MonotonicMs();
    for (const auto& h : handles) {
      std::lock_guard<std::mutex> hl(h->mu);
      if (h->reactor != nullptr && h->reactor->HelloOverdue(now)) {
        h->reactor->FinishOnce(
            grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no hello within the time limit"));
      }
    }
    l.lock();
  }
}

void AgentServer::Shutdown() {
  {
    std::lock_guard<std::mutex> l(sweep_mu_);
    stop_sweeper_ = true;
  }
  sweep_cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
  std::vector<std::shared_ptr<Handle>> handles;
  {
    std::lock_guard<std::mutex> l(mu_);
    shutting_down_ = true;
    handles.assign(streams_.begin(), streams_.end());
  }
  for (const auto& h : handles) {
    std::lock_guard<std::mutex> l(h->mu);
    if (h->reactor != nullptr) {
      h->reactor->FinishOnce(grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down"));
    }
  }
  // A finished stream ends (OnDone) only once its pending read completes,
  // which waits on the client. The clients have their status by now: after
  // a short grace, cancel what is left so shutdown does not wait on them.
  {
    std::unique_lock<std::mutex> l(mu_);
    if (all_done_.wait_for(l, std::chrono::milliseconds(300),
                           [this] { return streams_.empty(); })) {
      return;
    }
    handles.assign(streams_.begin(), streams_.end());
  }
  for (const auto& h : handles) {
    std::lock_guard<std::mutex> l(h->mu);
    if (h->reactor != nullptr) h->reactor->Cancel();
  }
  std::unique_lock<std::mutex> l(mu_);
  all_done_.wait_for(l, std::chrono::seconds(5), [this] { return streams_.empty(); });
}

AgentServerStats AgentServer::stats() const {
  std::lock_guard<std::mutex> l(mu_);
  return stats_;
}

size_t AgentServer::open_streams() const {
  std::lock_guard<std::mutex> l(mu_);
  return streams_.size();
}

std::string AgentServer::BundleNonce(uint64_t version) const {
  return "b" + std::to_string(version) + "-" + instance_;
}
std::string AgentServer::RevocationNonce(uint64_t revision) const {
  return "r" + std::to_string(revision) + "-" + instance_;
}

grpc::ByteBuffer AgentServer::BundleMessage(const BundleBlob& b) {
  std::lock_guard<std::mutex> l(cache_mu_);
  const uint64_t gen = snapshots_->Current()->generation();
  if (gen != cache_generation_) {  // drop versions no longer in any snapshot
    SnapshotPtr cur = snapshots_->Current();
    for (auto it = bundle_cache_.begin(); it != bundle_cache_.end();) {
      it = cur->Bundle(it->first) == nullptr ? bundle_cache_.erase(it) : std::next(it);
    }
    cache_generation_ = gen;
  }
  auto it = bundle_cache_.find(b.version);
  if (it != bundle_cache_.end()) return it->second;
  ServerMessage m;
  vakt::v1::BundleUpdate* u = m.mutable_bundle();
  u->set_nonce(BundleNonce(b.version));
  u->set_policy(b.policy);
  u->set_version(b.version);
  u->set_bundle(b.bytes);
  u->set_digest(b.digest);
  u->set_signature(b.signature);
  u->set_key_id(b.key_id);
  grpc::ByteBuffer buf = Serialize(m);
  bundle_cache_.emplace(b.version, buf);
  return buf;
}

grpc::ByteBuffer AgentServer::RevocationMessage(const RevocationList& list) {
  std::lock_guard<std::mutex> l(cache_mu_);
  if (list.revision == revocation_cache_revision_) return revocation_cache_;
  ServerMessage m;
  vakt::v1::RevocationUpdate* u = m.mutable_revocations();
  u->set_nonce(RevocationNonce(list.revision));
  u->set_revision(list.revision);
  for (const RevocationRecord& r : list.items) {
    switch (r.kind) {
      case RevocationKind::kJti:
        u->add_jtis(r.value);
        break;
      case RevocationKind::kSub: {
        vakt::v1::Cutoff* c = u->add_subjects();
        c->set_value(r.value);
        c->set_not_after(r.not_after);
        break;
      }
      case RevocationKind::kClientId: {
        vakt::v1::Cutoff* c = u->add_clients();
        c->set_value(r.value);
        c->set_not_after(r.not_after);
        break;
      }
    }
  }
  revocation_cache_ = Serialize(m);
  revocation_cache_revision_ = list.revision;
  return revocation_cache_;
}

}  // namespace vakt::controlplane
