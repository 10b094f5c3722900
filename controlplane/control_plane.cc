// The control plane's core. See control_plane.h.
#include "controlplane/control_plane.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <span>

#include "bytecode/bundle.h"
#include "bytecode/sha256.h"
#include "compiler/compile.h"
#include "controlplane/auth.h"

namespace vakt::controlplane {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSystem = "system";

int64_t SystemNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

AuditEntry Audit(const Principal& who, std::string action, std::string target,
                 std::string detail = "") {
  AuditEntry a;
  a.principal = who.name;
  a.action = std::move(action);
  a.target = std::move(target);
  a.detail = std::move(detail);
  return a;
}

std::string VersionTarget(const std::string& policy, uint64_t version) {
  return policy + "@" + std::to_string(version);
}

std::string RolloutTarget(uint64_t id) { return "rollout " + std::to_string(id); }

bool IsLive(RolloutState s) {
  return s == RolloutState::kProgressing || s == RolloutState::kPaused ||
         s == RolloutState::kHalted || s == RolloutState::kComplete;
}

}  // namespace

Status CheckPolicyName(std::string_view name) {
  auto ok_char = [](char c, bool first) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
    return !first && (c == '_' || c == '.' || c == '-');
  };
  if (name.empty() || name.size() > 64) {
    return InvalidArgument("policy name must be 1 to 64 characters");
  }
  for (size_t i = 0; i < name.size(); ++i) {
    if (!ok_char(name[i], i == 0)) {
      return InvalidArgument("policy name `" + std::string(name) +
                             "` must match [a-z0-9][a-z0-9_.-]*");
    }
  }
  return Status::Ok();
}

Status CheckFileSet(std::vector<SourceFile>* files, const ControlPlaneOptions& opts) {
  if (files->empty()) return InvalidArgument("no files to publish");
  if (files->size() > opts.max_files) {
    return ResourceExhausted("more than " + std::to_string(opts.max_files) + " files");
  }
  size_t total = 0, vakt_files = 0;
  for (const SourceFile& f : *files) {
    const std::string& p = f.path;
    if (p.empty() || p.size() > opts.max_path_bytes) {
      return InvalidArgument("file path must be 1 to " + std::to_string(opts.max_path_bytes) +
                             " bytes");
    }
    if (p.front() == '/' || p.back() == '/') {
      return InvalidArgument("file path `" + p + "` must be relative, without a final '/'");
    }
    for (char c : p) {
      if (static_cast<unsigned char>(c) < 0x20 || c == '\\' || c == 0x7f) {
        return InvalidArgument("file path `" + p + "` holds a control character or '\\'");
      }
    }
    size_t start = 0;
    while (start <= p.size()) {
      size_t end = p.find('/', start);
      if (end == std::string::npos) end = p.size();
      std::string_view seg(p.data() + start, end - start);
      if (seg.empty() || seg == "." || seg == "..") {
        return InvalidArgument("file path `" + p + "` has an empty, `.` or `..` segment");
      }
      start = end + 1;
    }
    total += f.content.size();
    if (total > opts.max_total_bytes) {
      return ResourceExhausted("files exceed " + std::to_string(opts.max_total_bytes) +
                               " bytes in total");
    }
    if (p.ends_with(".vakt")) ++vakt_files;
  }
  if (vakt_files == 0) return InvalidArgument("no `.vakt` file among the files");
  std::sort(files->begin(), files->end(),
            [](const SourceFile& a, const SourceFile& b) { return a.path < b.path; });
  for (size_t i = 1; i < files->size(); ++i) {
    if ((*files)[i].path == (*files)[i - 1].path) {
      return InvalidArgument("file `" + (*files)[i].path + "` is given twice");
    }
  }
  return Status::Ok();
}

ControlPlane::ControlPlane(Store* store, BundleSigner signer, ControlPlaneOptions opts)
    : store_(store), signer_(std::move(signer)), opts_(std::move(opts)) {}

ControlPlane::~ControlPlane() { Stop(); }

int64_t ControlPlane::Now() const { return opts_.now_unix ? opts_.now_unix() : SystemNow(); }

Status ControlPlane::Start() {
  std::lock_guard<std::mutex> l(mu_);
  // Sign what the current key has not signed: versions published just
  // before a crash, or all of them after a key rotation.
  // (Older versions are signed when a rollout names them, in
  // RebuildSnapshotLocked.)
  Result<std::vector<VersionRecord>> versions = store_->ListVersions("", 1000);
  if (!versions.ok()) return versions.status();
  for (VersionRecord& v : *versions) {
    if (Status st = EnsureSignedLocked(&v); !st.ok()) return st;
  }
  Result<std::vector<AgentRecord>> agents = store_->ListAgents();
  if (!agents.ok()) return agents.status();
  fleet_ = std::make_unique<Fleet>(std::move(*agents), opts_.max_decisions);
  if (Status st = RebuildSnapshotLocked(); !st.ok()) return st;
  {
    std::lock_guard<std::mutex> ll(loop_mu_);
    stop_ = false;
    started_ = true;
  }
  loop_ = std::thread([this] { Loop(); });
  return Status::Ok();
}

void ControlPlane::Stop() {
  {
    std::lock_guard<std::mutex> l(loop_mu_);
    if (!started_) return;
    stop_ = true;
    started_ = false;
  }
  loop_cv_.notify_all();
  if (loop_.joinable()) loop_.join();
  FlushAgents();
}

Status ControlPlane::EnsureSignedLocked(VersionRecord* v) {
  if (v->key_id == signer_.key_id() && !v->signature.empty()) return Status::Ok();
  Result<std::string> sig = signer_.Sign(v->policy, v->version, v->bundle_digest);
  if (!sig.ok()) return sig.status();
  if (Status st = store_->SetSignature(
          v->version, signer_.key_id(), *sig,
          Audit({kSystem, Role::kAdmin}, "version.sign", VersionTarget(v->policy, v->version),
                "key " + signer_.key_id()));
      !st.ok()) {
    return st;
  }
  v->signature = std::move(*sig);
  v->key_id = signer_.key_id();
  return Status::Ok();
}

Status ControlPlane::RebuildSnapshotLocked() {
  Result<std::vector<RolloutRecord>> rollouts =
      store_->ListRollouts("", static_cast<uint32_t>(opts_.max_layers));
  if (!rollouts.ok()) return rollouts.status();
  std::map<uint64_t, std::shared_ptr<const BundleBlob>> bundles;
  for (const RolloutRecord& r : *rollouts) {
    if (r.state == RolloutState::kRolledBack || bundles.count(r.version)) continue;
    auto cached = bundle_cache_.find(r.version);
    if (cached != bundle_cache_.end() && cached->second->key_id == signer_.key_id()) {
      bundles[r.version] = cached->second;
      continue;
    }
    Result<VersionRecord> v = store_->GetVersion(r.version, false, true);
    if (!v.ok()) return v.status();
    if (Status st = EnsureSignedLocked(&*v); !st.ok()) return st;
    auto blob = std::make_shared<BundleBlob>();
    blob->policy = v->policy;
    blob->version = v->version;
    blob->bytes = std::move(v->bundle);
    blob->digest = v->bundle_digest;
    blob->signature = v->signature;
    blob->key_id = v->key_id;
    bundles[r.version] = blob;
  }
  bundle_cache_ = bundles;  // keep only what live layers use
  Result<RevocationList> rev = store_->ListRevocations();
  if (!rev.ok()) return rev.status();
  auto snap = std::make_shared<const Snapshot>(++generation_, std::move(*rollouts),
                                               std::move(bundles), std::move(*rev));
  return snapshots_.Set(snap);
}

Result<PublishResult> ControlPlane::Publish(const Principal& who, const std::string& policy,
                                            std::vector<SourceFile> files,
                                            const std::string& message,
                                            std::vector<PublishDiagnostic>* diagnostics) {
  const std::string target = policy;
  auto refuse = [&](Status st) -> Result<PublishResult> {
    AuditRefusal(who, "publish", target, st.message());
    return st;
  };
  if (Status st = CheckPolicyName(policy); !st.ok()) return refuse(st);
  if (message.size() > 4096) return refuse(InvalidArgument("message is longer than 4096 bytes"));
  if (Status st = CheckFileSet(&files, opts_); !st.ok()) return refuse(st);

  // Compile exactly what was sent: .vakt files are sources, everything else
  // is an asset the policy may name, resolved relative to the naming file.
  compiler::SourceSet sources;
  std::map<std::string, const std::string*, std::less<>> by_path;
  for (const SourceFile& f : files) {
    by_path[f.path] = &f.content;
    if (f.path.ends_with(".vakt")) compiler::AddSource(sources, f.path, f.content);
  }
  compiler::CompileOptions copts;
  copts.read_asset = [&by_path](const dsl::SourceFile& from,
                                const std::string& path) -> Result<std::string> {
    fs::path p = fs::path(from.path).parent_path() / path;
    std::string key = p.lexically_normal().generic_string();
    if (fs::path(path).is_absolute() || key.starts_with("..")) {
      return NotFound("`" + path + "` is outside the published files");
    }
    auto it = by_path.find(key);
    if (it == by_path.end()) return NotFound("`" + key + "` is not among the published files");
    return *it->second;
  };
  dsl::Diagnostics diags;
  std::unique_ptr<compiler::Compilation> comp = compiler::Compile(sources, copts, diags);
  std::vector<PublishDiagnostic> out;
  for (const dsl::Diagnostic& d : diags.all()) {
    PublishDiagnostic pd;
    pd.severity = d.severity == dsl::Severity::kError     ? "error"
                  : d.severity == dsl::Severity::kWarning ? "warning"
                                                          : "note";
    pd.file = d.loc.file != nullptr ? d.loc.file->path : "";
    pd.line = d.loc.line;
    pd.column = d.loc.column;
    pd.message = d.message;
    pd.formatted = dsl::FormatDiagnostic(d);
    out.push_back(std::move(pd));
  }
  if (diagnostics != nullptr) *diagnostics = out;
  if (diags.HasErrors() || comp == nullptr || comp->bytes.empty()) {
    std::string text = diags.Format();
    if (text.empty()) text = "compilation failed\n";
    return refuse(InvalidArgument(std::to_string(diags.error_count()) + " error(s) in `" +
                                  policy + "`:\n" + text));
  }
  // The compiler's output goes through the same loader the agents use.
  if (auto loaded = bytecode::Bundle::Load(comp->bytes); !loaded.ok()) {
    return refuse(Internal("the compiled bundle fails verification: " +
                           loaded.status().message()));
  }

  NewVersion nv;
  nv.policy = policy;
  nv.files = std::move(files);
  nv.source_digest = SourceDigest(nv.files);
  nv.bundle = std::move(comp->bytes);
  auto d = bytecode::Sha256(nv.bundle);
  nv.bundle_digest = bytecode::HexLower(d.data(), d.size());
  nv.author = who.name;
  nv.message = message;

  std::lock_guard<std::mutex> l(mu_);
  Result<PublishOutcome> o =
      store_->Publish(nv, Audit(who, "publish", policy, "source " + nv.source_digest.substr(0, 16)));
  if (!o.ok()) {
    AuditRefusal(who, "publish", target, o.status().message());
    return o.status();
  }
  PublishResult res;
  res.version = o->version;
  res.created = o->created;
  res.diagnostics = std::move(out);
  // Signed in a second transaction: the signature covers the version
  // number, which the store assigns. A crash in between leaves an unsigned
  // version that Start() (or the first rollout naming it) signs.
  if (Status st = EnsureSignedLocked(&res.version); !st.ok()) return st;
  spdlog::info("{} published {} ({})", who.name, VersionTarget(policy, res.version.version),
               res.created ? "new" : "unchanged sources");
  return res;
}

StageProgress ControlPlane::ProgressOf(const RolloutRecord& r,
                                       const std::vector<AgentLive>& agents) const {
  std::vector<AgentView> views;
  views.reserve(agents.size());
  for (const AgentLive& a : agents) {
    AgentView v;
    v.id = a.record.id;
    v.labels = &a.record.labels;
    v.connected = a.connected;
    v.active_version = a.record.active_version;
    v.nacked_version = a.record.nacked_version;
    views.push_back(v);
  }
  return ComputeProgress(r, views);
}

RolloutStatus ControlPlane::StatusOf(const RolloutRecord& r) {
  return RolloutStatus{r, ProgressOf(r, fleet_->List())};
}

Result<RolloutStatus> ControlPlane::StartRollout(const Principal& who, RolloutRecord req) {
  auto refuse = [&](Status st) -> Result<RolloutStatus> {
    AuditRefusal(who, "rollout.start", VersionTarget(req.policy, req.version), st.message());
    return st;
  };
  if (Status st = CheckPolicyName(req.policy); !st.ok()) return refuse(st);
  if (Status st = ValidateRolloutRequest(&req); !st.ok()) return refuse(st);
  std::lock_guard<std::mutex> l(mu_);
  Result<VersionRecord> v = store_->GetVersion(req.version, false, false);
  if (!v.ok()) return refuse(v.status());
  if (v->policy != req.policy) {
    return refuse(InvalidArgument("version " + std::to_string(req.version) + " belongs to `" +
                                  v->policy + "`, not `" + req.policy + "`"));
  }
  // What the selected agents run before this rollout, for the record: the
  // version most of them are assigned now.
  SnapshotPtr snap = snapshots_.Current();
  std::map<uint64_t, size_t> counts;
  for (const AgentLive& a : fleet_->List()) {
    if (!SelectorMatches(req.selector, a.record.labels)) continue;
    Assignment cur = snap->DesiredFor(a.record.id, a.record.labels);
    if (cur.version != 0) ++counts[cur.version];
  }
  req.previous_version = 0;
  size_t best = 0;
  for (const auto& [ver, n] : counts) {
    if (n > best) best = n, req.previous_version = ver;
  }
  req.state = RolloutState::kProgressing;
  req.stage = 0;
  req.created_by = who.name;
  req.reason.clear();
  Result<RolloutRecord> created = store_->CreateRollout(
      req, Audit(who, "rollout.start", VersionTarget(req.policy, req.version)));
  if (!created.ok()) {
    AuditRefusal(who, "rollout.start", VersionTarget(req.policy, req.version),
                 created.status().message());
    return created.status();
  }
  if (Status st = RebuildSnapshotLocked(); !st.ok()) return st;
  spdlog::info("{} started rollout {} of {} (stages {})", who.name, created->id,
               VersionTarget(req.policy, req.version), req.stages.size());
  kick_ = true;
  loop_cv_.notify_all();
  return StatusOf(*created);
}

Result<RolloutStatus> ControlPlane::Transition(const Principal& who, uint64_t id,
                                               const std::string& action,
                                               const std::function<Status(RolloutRecord*)>& step) {
  std::lock_guard<std::mutex> l(mu_);
  Result<RolloutRecord> r = store_->GetRollout(id);
  if (!r.ok()) {
    AuditRefusal(who, action, RolloutTarget(id), r.status().message());
    return r.status();
  }
  RolloutRecord next = *r;
  if (Status st = step(&next); !st.ok()) {
    AuditRefusal(who, action, RolloutTarget(id), st.message());
    return st;
  }
  if (Status st = store_->UpdateRollout(
          next, Audit(who, action, RolloutTarget(id),
                      std::string(RolloutStateName(r->state)) + " -> " +
                          RolloutStateName(next.state) + ", stage " + std::to_string(next.stage)));
      !st.ok()) {
    AuditRefusal(who, action, RolloutTarget(id), st.message());
    return st;
  }
  if (Status st = RebuildSnapshotLocked(); !st.ok()) return st;
  spdlog::info("{}: {} {} -> {} (stage {})", who.name, action, RolloutTarget(id),
               RolloutStateName(next.state), next.stage);
  kick_ = true;
  loop_cv_.notify_all();
  return StatusOf(next);
}

Result<RolloutStatus> ControlPlane::AdvanceRollout(const Principal& who, uint64_t id) {
  return Transition(who, id, "rollout.advance", [](RolloutRecord* r) { return Advance(r); });
}
Result<RolloutStatus> ControlPlane::PauseRollout(const Principal& who, uint64_t id) {
  return Transition(who, id, "rollout.pause", [](RolloutRecord* r) { return Pause(r); });
}
Result<RolloutStatus> ControlPlane::ResumeRollout(const Principal& who, uint64_t id) {
  return Transition(who, id, "rollout.resume", [](RolloutRecord* r) { return Resume(r); });
}

Result<RolloutStatus> ControlPlane::Rollback(const Principal& who, uint64_t id,
                                             const std::string& policy) {
  if (id == 0) {
    Result<std::vector<RolloutRecord>> list = store_->ListRollouts(policy, 1000);
    if (!list.ok()) return list.status();
    for (const RolloutRecord& r : *list) {
      if (IsLive(r.state) && (policy.empty() || r.policy == policy)) {
        id = r.id;
        break;
      }
    }
    if (id == 0) {
      Status st = NotFound("no live rollout of `" + policy + "` to roll back");
      AuditRefusal(who, "rollout.rollback", policy, st.message());
      return st;
    }
  }
  const std::string reason = "rolled back by " + who.name;
  return Transition(who, id, "rollout.rollback",
                    [&reason](RolloutRecord* r) { return RollBack(r, reason); });
}

Result<RolloutStatus> ControlPlane::GetRollout(uint64_t id) {
  Result<RolloutRecord> r = store_->GetRollout(id);
  if (!r.ok()) return r.status();
  return StatusOf(*r);
}

Result<std::vector<RolloutStatus>> ControlPlane::ListRollouts(const std::string& policy,
                                                              uint32_t limit) {
  Result<std::vector<RolloutRecord>> list = store_->ListRollouts(policy, limit);
  if (!list.ok()) return list.status();
  std::vector<AgentLive> agents = fleet_->List();
  std::vector<RolloutStatus> out;
  for (const RolloutRecord& r : *list) out.push_back(RolloutStatus{r, ProgressOf(r, agents)});
  return out;
}

std::vector<AgentStatus> ControlPlane::ListAgents(const Labels& selector) {
  SnapshotPtr snap = snapshots_.Current();
  std::vector<AgentStatus> out;
  for (AgentLive& a : fleet_->List()) {
    if (!SelectorMatches(selector, a.record.labels)) continue;
    AgentStatus s;
    s.desired = snap->DesiredFor(a.record.id, a.record.labels);
    s.connected = a.connected;
    if (!a.connected) {
      s.state = "disconnected";
    } else if (s.desired.version == 0) {
      s.state = "unassigned";
    } else if (a.record.active_version == s.desired.version) {
      s.state = "in_sync";
    } else if (a.record.nacked_version == s.desired.version) {
      s.state = "nacked";
    } else {
      s.state = "pending";
    }
    s.record = std::move(a.record);
    out.push_back(std::move(s));
  }
  return out;
}

Result<RevocationRecord> ControlPlane::AddRevocation(const Principal& who, RevocationRecord r) {
  const std::string target = std::string(RevocationKindName(r.kind)) + " " + r.value.substr(0, 128);
  if (r.value.empty() || r.value.size() > 1024) {
    Status st = InvalidArgument("revocation value must be 1 to 1024 bytes");
    AuditRefusal(who, "revocation.add", target, st.message());
    return st;
  }
  if (r.reason.size() > 1024) r.reason.resize(1024);
  if (r.kind != RevocationKind::kJti && r.not_after == 0) r.not_after = Now();
  r.created_by = who.name;
  std::lock_guard<std::mutex> l(mu_);
  Result<RevocationRecord> added = store_->AddRevocation(r, Audit(who, "revocation.add", target));
  if (!added.ok()) {
    AuditRefusal(who, "revocation.add", target, added.status().message());
    return added.status();
  }
  if (Status st = RebuildSnapshotLocked(); !st.ok()) return st;
  return added;
}

Status ControlPlane::RemoveRevocation(const Principal& who, uint64_t id) {
  const std::string target = "revocation " + std::to_string(id);
  std::lock_guard<std::mutex> l(mu_);
  if (Status st = store_->RemoveRevocation(id, Audit(who, "revocation.remove", target));
      !st.ok()) {
    AuditRefusal(who, "revocation.remove", target, st.message());
    return st;
  }
  return RebuildSnapshotLocked();
}

Result<std::string> ControlPlane::CreateToken(const Principal& who, const std::string& name,
                                              Role role) {
  Result<std::string> token = NewToken();
  if (!token.ok()) return token.status();
  if (Status st = StorePrincipal(who, name, role, *token); !st.ok()) return st;
  return token;
}

Status ControlPlane::StorePrincipal(const Principal& who, const std::string& name, Role role,
                                    const std::string& token) {
  if (Status st = CheckPolicyName(name); !st.ok()) {
    Status named = InvalidArgument("token name must match [a-z0-9][a-z0-9_.-]{0,63}");
    AuditRefusal(who, "token.create", name.substr(0, 64), named.message());
    return named;
  }
  PrincipalRecord p;
  p.name = name;
  p.role = role;
  p.token_hash = TokenHash(token);
  p.created_by = who.name;
  p.created_at = Now();
  std::lock_guard<std::mutex> l(mu_);
  if (Status st = store_->CreatePrincipal(
          p, Audit(who, "token.create", name, std::string("role ") + RoleName(role)));
      !st.ok()) {
    AuditRefusal(who, "token.create", name, st.message());
    return st;
  }
  return Status::Ok();
}

Status ControlPlane::DeleteToken(const Principal& who, const std::string& name) {
  std::lock_guard<std::mutex> l(mu_);
  if (name == who.name) {
    Status st = InvalidArgument("a token cannot delete itself");
    AuditRefusal(who, "token.delete", name, st.message());
    return st;
  }
  if (Status st = store_->DeletePrincipal(name, Audit(who, "token.delete", name)); !st.ok()) {
    AuditRefusal(who, "token.delete", name, st.message());
    return st;
  }
  return Status::Ok();
}

void ControlPlane::AuditRefusal(const Principal& who, const std::string& action,
                                const std::string& target, const std::string& error) {
  AuditEntry a = Audit(who, action, target);
  a.result = error.size() > 2048 ? error.substr(0, 2048) : error;
  if (Status st = store_->AppendAudit(a); !st.ok()) {
    spdlog::error("audit entry for a refused {} by {} was not written: {}", action, who.name,
                  st.message());
  }
}

Result<Principal> ControlPlane::Authenticate(std::string_view token) {
  Result<std::optional<PrincipalRecord>> p = store_->FindPrincipalByTokenHash(TokenHash(token));
  if (!p.ok()) return p.status();
  if (!p->has_value()) return Status(StatusCode::kUnauthenticated, "unknown token");
  return Principal{(*p)->name, (*p)->role};
}

Result<bool> ControlPlane::BootstrapAdmin(const std::string& data_dir) {
  Result<std::vector<PrincipalRecord>> all = store_->ListPrincipals();
  if (!all.ok()) return all.status();
  if (!all->empty()) return false;
  // The file first: a crash before the principal is stored leaves a token
  // that is simply replaced on the next start.
  Result<std::string> token = WriteFirstAdminToken(data_dir);
  if (!token.ok()) return token.status();
  if (Status st = StorePrincipal(Principal{kSystem, Role::kAdmin}, "admin", Role::kAdmin, *token);
      !st.ok()) {
    return st;
  }
  return true;
}

bool ControlPlane::KnownVersion(uint64_t version, const std::string& digest) {
  if (const BundleBlob* b = snapshots_.Current()->Bundle(version)) return b->digest == digest;
  Result<VersionRecord> v = store_->GetVersion(version, false, false);
  return v.ok() && v->bundle_digest == digest;
}

void ControlPlane::Loop() {
  auto last_flush = std::chrono::steady_clock::now();
  auto last_evaluation = last_flush;
  uint64_t seen_changes = ~uint64_t{0};
  std::unique_lock<std::mutex> l(loop_mu_);
  while (!stop_) {
    loop_cv_.wait_for(l, std::chrono::milliseconds(opts_.evaluate_interval_ms));
    if (stop_) break;
    l.unlock();
    // Evaluate on any fleet change, when a rollout was started or moved
    // (an empty first stage advances at once), and every second anyway.
    auto now = std::chrono::steady_clock::now();
    const uint64_t changes = fleet_->change_count();
    if (changes != seen_changes || kick_.exchange(false) ||
        now - last_evaluation >= std::chrono::seconds(1)) {
      seen_changes = changes;
      last_evaluation = now;
      EvaluateRollouts();
    }
    if (now - last_flush >= std::chrono::milliseconds(opts_.flush_interval_ms)) {
      FlushAgents();
      last_flush = now;
    }
    l.lock();
  }
}

// Moves progressing rollouts on: halt on NACKs past the threshold, advance
// or complete when the stage has ACKed (auto_advance only).
void ControlPlane::EvaluateRollouts() {
  std::lock_guard<std::mutex> l(mu_);
  SnapshotPtr snap = snapshots_.Current();
  std::vector<AgentLive> agents = fleet_->List();
  bool changed = false;
  for (const RolloutRecord& r : snap->rollouts()) {
    if (r.state != RolloutState::kProgressing) continue;
    StageProgress p = ProgressOf(r, agents);
    RolloutAction action = NextAction(r, p);
    if (action == RolloutAction::kNone) continue;
    RolloutRecord next = r;
    std::string name;
    if (action == RolloutAction::kHalt) {
      next.state = RolloutState::kHalted;
      next.reason = std::to_string(p.nacked) + " of " + std::to_string(p.in_stage) +
                    " agents in stage " + std::to_string(r.stage) + " refused version " +
                    std::to_string(r.version) + " (threshold " +
                    std::to_string(r.nack_threshold_percent) + "%)";
      name = "rollout.halt";
    } else {
      if (Status st = Advance(&next); !st.ok()) continue;
      name = action == RolloutAction::kComplete ? "rollout.complete" : "rollout.advance";
    }
    Status st = store_->UpdateRollout(
        next, Audit({kSystem, Role::kAdmin}, name, RolloutTarget(r.id),
                    std::string("automatic: ") + RolloutStateName(next.state) + ", stage " +
                        std::to_string(next.stage) + (next.reason.empty() ? "" : ": ") +
                        next.reason));
    if (!st.ok()) {
      spdlog::error("{} {}: {}", name, RolloutTarget(r.id), st.message());
      continue;
    }
    spdlog::info("{} {} (stage {}, {})", name, RolloutTarget(r.id), next.stage,
                 RolloutStateName(next.state));
    changed = true;
  }
  if (changed) {
    if (Status st = RebuildSnapshotLocked(); !st.ok()) {
      spdlog::error("snapshot rebuild failed: {}", st.message());
    }
  }
}

void ControlPlane::FlushAgents() {
  if (!fleet_) return;
  std::vector<AgentRecord> dirty = fleet_->TakeDirty();
  if (dirty.empty()) return;
  if (Status st = store_->UpsertAgents(dirty); !st.ok()) {
    spdlog::error("writing {} agent records failed: {}", dirty.size(), st.message());
  }
}

}  // namespace vakt::controlplane
