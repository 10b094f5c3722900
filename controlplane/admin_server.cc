// The admin gRPC service. See admin_server.h. Each RPC: Authorize (token,
// then the role auth.h RequiredRole gives the method), convert, call the
// ControlPlane, convert back.
#include "controlplane/admin_server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "controlplane/auth.h"
#include "controlplane/diff.h"

namespace vakt::controlplane {

namespace {

namespace pb = vakt::v1;

constexpr size_t kMaxSelectorLabels = 32;

void FillVersion(const VersionRecord& v, pb::VersionInfo* out) {
  out->set_policy(v.policy);
  out->set_version(v.version);
  out->set_source_digest(v.source_digest);
  out->set_bundle_digest(v.bundle_digest);
  out->set_bundle_size(v.bundle_size);
  out->set_author(v.author);
  out->set_message(v.message);
  out->set_created_at(v.created_at);
  out->set_signature(v.signature);
  out->set_key_id(v.key_id);
  for (const SourceFile& f : v.files) {
    pb::SourceFile* sf = out->add_files();
    sf->set_path(f.path);
    sf->set_content(f.content);
  }
  if (!v.bundle.empty()) out->set_bundle(v.bundle);
}

void FillRollout(const RolloutStatus& s, pb::RolloutInfo* out) {
  const RolloutRecord& r = s.rollout;
  out->set_id(r.id);
  out->set_policy(r.policy);
  out->set_version(r.version);
  out->set_previous_version(r.previous_version);
  for (const auto& [k, v] : r.selector) (*out->mutable_selector())[k] = v;
  for (uint32_t st : r.stages) out->add_stages(st);
  out->set_stage(r.stage);
  out->set_state(RolloutStateName(r.state));
  out->set_auto_advance(r.auto_advance);
  out->set_nack_threshold_percent(r.nack_threshold_percent);
  out->set_created_by(r.created_by);
  out->set_created_at(r.created_at);
  out->set_updated_at(r.updated_at);
  out->set_reason(r.reason);
  out->set_selected(s.progress.selected);
  out->set_in_stage(s.progress.in_stage);
  out->set_acked(s.progress.acked);
  out->set_nacked(s.progress.nacked);
}

void FillRevocation(const RevocationRecord& r, pb::RevocationInfo* out) {
  out->set_id(r.id);
  out->set_kind(RevocationKindName(r.kind));
  out->set_value(r.value);
  out->set_not_after(r.not_after);
  out->set_reason(r.reason);
  out->set_created_by(r.created_by);
  out->set_created_at(r.created_at);
}

grpc::Status CheckSelector(const google::protobuf::Map<std::string, std::string>& m,
                           Labels* out) {
  if (m.size() > kMaxSelectorLabels) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "a selector has at most " + std::to_string(kMaxSelectorLabels) + " labels");
  }
  for (const auto& [k, v] : m) (*out)[k] = v;
  if (Status st = ValidateLabels(*out, "selector"); !st.ok()) return ToGrpc(st);
  return grpc::Status::OK;
}

}  // namespace

grpc::Status ToGrpc(const Status& st) {
  // The message travels in trailing metadata, which clients by default
  // accept up to 8 KiB: a longer one (hundreds of compile errors) is cut at
  // a line boundary with a note, so every client gets a readable error.
  constexpr size_t kMaxMessage = 6000;
  std::string message = st.message();
  if (message.size() > kMaxMessage) {
    size_t cut = message.rfind('\n', kMaxMessage);
    if (cut == std::string::npos || cut < kMaxMessage / 2) cut = kMaxMessage;
    message.resize(cut);
    message += "\n... (truncated; fix these first or run `vakt check` locally for the rest)\n";
  }
  using C = grpc::StatusCode;
  C code = C::UNKNOWN;
  switch (st.code()) {
    case StatusCode::kOk:
      return grpc::Status::OK;
    case StatusCode::kInvalidArgument:
      code = C::INVALID_ARGUMENT;
      break;
    case StatusCode::kCorruption:
      code = C::DATA_LOSS;
      break;
    case StatusCode::kNotFound:
      code = C::NOT_FOUND;
      break;
    case StatusCode::kUnsupported:
      code = C::UNIMPLEMENTED;
      break;
    case StatusCode::kResourceExhausted:
      code = C::RESOURCE_EXHAUSTED;
      break;
    case StatusCode::kPermissionDenied:
      code = C::PERMISSION_DENIED;
      break;
    case StatusCode::kUnauthenticated:
      code = C::UNAUTHENTICATED;
      break;
    case StatusCode::kIoError:
      code = C::UNAVAILABLE;
      break;
    case StatusCode::kInternal:
      code = C::INTERNAL;
      break;
  }
  return grpc::Status(code, message);
}

grpc::Status AdminServer::Authorize(grpc::ServerContext* ctx, Role need, const char* action,
                                    Principal* who) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing `authorization: Bearer <token>` metadata");
  }
  if (md.count("authorization") != 1) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "more than one authorization header");
  }
  Result<std::string> token = ParseBearer(std::string_view(it->second.data(), it->second.size()));
  if (!token.ok()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, token.status().message());
  }
  Result<Principal> p = cp_->Authenticate(*token);
  if (!p.ok()) {
    spdlog::warn("admin call {} from {} refused: {}", action, ctx->peer(), p.status().message());
    if (p.status().code() == StatusCode::kUnauthenticated) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown or deleted token");
    }
    return ToGrpc(p.status());
  }
  if (!RoleAllows(p->role, need)) {
    std::string msg = std::string(action) + " needs role " + RoleName(need) + "; `" + p->name +
                      "` has " + RoleName(p->role);
    cp_->AuditRefusal(*p, action, "", "permission denied: " + msg);
    return grpc::Status(grpc::StatusCode::PERMISSION_DENIED, msg);
  }
  *who = *p;
  return grpc::Status::OK;
}

#define VAKT_AUTHORIZE(method)                                                     \
  Principal who;                                                                   \
  if (grpc::Status _st = Authorize(ctx, *RequiredRole(method), method, &who);      \
      !_st.ok()) {                                                                 \
    return _st;                                                                    \
  }

grpc::Status AdminServer::Publish(grpc::ServerContext* ctx, const pb::PublishRequest* req,
                                  pb::PublishResponse* resp) {
  VAKT_AUTHORIZE("Publish");
  std::vector<SourceFile> files;
  files.reserve(req->files_size());
  for (const pb::SourceFile& f : req->files()) files.push_back(SourceFile{f.path(), f.content()});
  std::vector<PublishDiagnostic> diags;
  Result<PublishResult> r = cp_->Publish(who, req->policy(), std::move(files), req->message(), &diags);
  if (!r.ok()) return ToGrpc(r.status());
  FillVersion(r->version, resp->mutable_version());
  resp->set_created(r->created);
  for (const PublishDiagnostic& d : r->diagnostics) {
    pb::Diagnostic* pd = resp->add_diagnostics();
    pd->set_severity(d.severity);
    pd->set_file(d.file);
    pd->set_line(d.line);
    pd->set_column(d.column);
    pd->set_message(d.message);
    pd->set_formatted(d.formatted);
  }
  return grpc::Status::OK;
}

grpc::Status AdminServer::ListVersions(grpc::ServerContext* ctx, const pb::ListVersionsRequest* req,
                                       pb::ListVersionsResponse* resp) {
  VAKT_AUTHORIZE("ListVersions");
  Result<std::vector<VersionRecord>> list = cp_->store().ListVersions(req->policy(), req->limit());
  if (!list.ok()) return ToGrpc(list.status());
  for (const VersionRecord& v : *list) FillVersion(v, resp->add_versions());
  return grpc::Status::OK;
}

grpc::Status AdminServer::GetVersion(grpc::ServerContext* ctx, const pb::GetVersionRequest* req,
                                     pb::VersionInfo* resp) {
  VAKT_AUTHORIZE("GetVersion");
  Result<VersionRecord> v =
      cp_->store().GetVersion(req->version(), req->include_sources(), req->include_bundle());
  if (!v.ok()) return ToGrpc(v.status());
  if (!req->policy().empty() && v->policy != req->policy()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "version " + std::to_string(req->version()) +
                                                         " is not of policy `" + req->policy() +
                                                         "`");
  }
  FillVersion(*v, resp);
  return grpc::Status::OK;
}

grpc::Status AdminServer::Diff(grpc::ServerContext* ctx, const pb::DiffRequest* req,
                               pb::DiffResponse* resp) {
  VAKT_AUTHORIZE("Diff");
  Result<VersionRecord> a = cp_->store().GetVersion(req->from_version(), true, false);
  if (!a.ok()) return ToGrpc(a.status());
  Result<VersionRecord> b = cp_->store().GetVersion(req->to_version(), true, false);
  if (!b.ok()) return ToGrpc(b.status());
  if (!req->policy().empty() && (a->policy != req->policy() || b->policy != req->policy())) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "both versions must be of policy `" + req->policy() + "`");
  }
  for (const FileChange& c : DiffFileSets(a->files, b->files)) {
    pb::FileDiff* d = resp->add_files();
    d->set_path(c.path);
    d->set_change(c.change);
    d->set_unified(c.unified);
  }
  return grpc::Status::OK;
}

grpc::Status AdminServer::StartRollout(grpc::ServerContext* ctx,
                                       const pb::StartRolloutRequest* req, pb::RolloutInfo* resp) {
  VAKT_AUTHORIZE("StartRollout");
  RolloutRecord r;
  r.policy = req->policy();
  r.version = req->version();
  if (grpc::Status st = CheckSelector(req->selector(), &r.selector); !st.ok()) return st;
  if (req->stages_size() > 64) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "too many stages");
  }
  r.stages.assign(req->stages().begin(), req->stages().end());
  r.auto_advance = req->auto_advance();
  r.nack_threshold_percent = req->nack_threshold_percent();
  Result<RolloutStatus> s = cp_->StartRollout(who, std::move(r));
  if (!s.ok()) return ToGrpc(s.status());
  FillRollout(*s, resp);
  return grpc::Status::OK;
}

grpc::Status AdminServer::AdvanceRollout(grpc::ServerContext* ctx, const pb::RolloutRef* req,
                                         pb::RolloutInfo* resp) {
  VAKT_AUTHORIZE("AdvanceRollout");
  Result<RolloutStatus> s = cp_->AdvanceRollout(who, req->id());
  if (!s.ok()) return ToGrpc(s.status());
  FillRollout(*s, resp);
  return grpc::Status::OK;
}

grpc::Status AdminServer::PauseRollout(grpc::ServerContext* ctx, const pb::RolloutRef* req,
                                       pb::RolloutInfo* resp) {
  VAKT_AUTHORIZE("PauseRollout");
  Result<RolloutStatus> s = cp_->PauseRollout(who, req->id());
  if (!s.ok()) return ToGrpc(s.status());
  FillRollout(*s, resp);
  return grpc::Status::OK;
}

grpc::Status AdminServer::ResumeRollout(grpc::ServerContext* ctx, const pb::RolloutRef* req,
                                        pb::RolloutInfo* resp) {
  VAKT_AUTHORIZE("ResumeRollout");
  Result<RolloutStatus> s = cp_->ResumeRollout(who, req->id());
  if (!s.ok()) return ToGrpc(s.status());
  FillRollout(*s, resp);
  return grpc::Status::OK;
}

grpc::Status AdminServer::Rollback(grpc::ServerContext* ctx, const pb::RollbackRequest* req,
                                   pb::RolloutInfo* resp) {
  VAKT_AUTHORIZE("Rollback");
  if (req->rollout_id() == 0 && req->policy().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "name a rollout id or a policy");
  }
  Result<RolloutStatus> s = cp_->Rollback(who, req->rollout_id(), req->policy());
  if (!s.ok()) return ToGrpc(s.status());
  FillRollout(*s, resp);
  return grpc::Status::OK;
}

grpc::Status AdminServer::GetRollout(grpc::ServerContext* ctx, const pb::RolloutRef* req,
                                     pb::RolloutInfo* resp) {
  VAKT_AUTHORIZE("GetRollout");
  Result<RolloutStatus> s = cp_->GetRollout(req->id());
  if (!s.ok()) return ToGrpc(s.status());
  FillRollout(*s, resp);
  return grpc::Status::OK;
}

grpc::Status AdminServer::ListRollouts(grpc::ServerContext* ctx, const pb::ListRolloutsRequest* req,
                                       pb::ListRolloutsResponse* resp) {
  VAKT_AUTHORIZE("ListRollouts");
  Result<std::vector<RolloutStatus>> list = cp_->ListRollouts(req->policy(), req->limit());
  if (!list.ok()) return ToGrpc(list.status());
  for (const RolloutStatus& s : *list) FillRollout(s, resp->add_rollouts());
  return grpc::Status::OK;
}

grpc::Status AdminServer::ListAgents(grpc::ServerContext* ctx, const pb::ListAgentsRequest* req,
                                     pb::ListAgentsResponse* resp) {
  VAKT_AUTHORIZE("ListAgents");
  Labels selector;
  if (grpc::Status st = CheckSelector(req->selector(), &selector); !st.ok()) return st;
  SnapshotPtr snap = cp_->snapshots().Current();
  // Policies of active versions the snapshot no longer holds: one store
  // read per version, not per agent.
  std::map<uint64_t, std::string> old_policies;
  for (const AgentStatus& a : cp_->ListAgents(selector)) {
    pb::AgentInfo* out = resp->add_agents();
    const uint64_t active = a.record.active_version;
    if (const BundleBlob* b = snap->Bundle(active)) {
      out->set_active_policy(b->policy);
    } else if (active != 0) {
      auto it = old_policies.find(active);
      if (it == old_policies.end()) {
        auto v = cp_->store().GetVersion(active, false, false);
        it = old_policies.emplace(active, v.ok() ? v->policy : std::string()).first;
      }
      out->set_active_policy(it->second);
    }
    out->set_id(a.record.id);
    for (const auto& [k, v] : a.record.labels) (*out->mutable_labels())[k] = v;
    out->set_connected(a.connected);
    out->set_last_seen(a.record.last_seen);
    out->set_active_version(a.record.active_version);
    out->set_desired_version(a.desired.version);
    out->set_desired_policy(a.desired.policy);
    out->set_state(a.state);
    out->set_last_error(a.record.last_error);
    out->set_revocation_revision(a.record.revocation_revision);
    out->set_agent_version(a.record.agent_version);
    out->set_peer(a.record.peer);
  }
  return grpc::Status::OK;
}

grpc::Status AdminServer::AddRevocation(grpc::ServerContext* ctx,
                                        const pb::AddRevocationRequest* req,
                                        pb::RevocationInfo* resp) {
  VAKT_AUTHORIZE("AddRevocation");
  std::optional<RevocationKind> kind = ParseRevocationKind(req->kind());
  if (!kind) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "revocation kind must be jti, sub or client_id");
  }
  RevocationRecord r;
  r.kind = *kind;
  r.value = req->value();
  r.not_after = req->not_after();
  r.reason = req->reason();
  Result<RevocationRecord> added = cp_->AddRevocation(who, std::move(r));
  if (!added.ok()) return ToGrpc(added.status());
  FillRevocation(*added, resp);
  return grpc::Status::OK;
}

grpc::Status AdminServer::RemoveRevocation(grpc::ServerContext* ctx,
                                           const pb::RemoveRevocationRequest* req,
                                           pb::RemoveRevocationResponse*) {
  VAKT_AUTHORIZE("RemoveRevocation");
  return ToGrpc(cp_->RemoveRevocation(who, req->id()));
}

grpc::Status AdminServer::ListRevocations(grpc::ServerContext* ctx,
                                          const pb::ListRevocationsRequest*,
                                          pb::ListRevocationsResponse* resp) {
  VAKT_AUTHORIZE("ListRevocations");
  Result<RevocationList> list = cp_->store().ListRevocations();
  if (!list.ok()) return ToGrpc(list.status());
  resp->set_revision(list->revision);
  for (const RevocationRecord& r : list->items) FillRevocation(r, resp->add_revocations());
  return grpc::Status::OK;
}

grpc::Status AdminServer::ListAudit(grpc::ServerContext* ctx, const pb::ListAuditRequest* req,
                                    pb::ListAuditResponse* resp) {
  VAKT_AUTHORIZE("ListAudit");
  Result<std::vector<AuditEntry>> list = cp_->store().ListAudit(req->after_id(), req->limit());
  if (!list.ok()) return ToGrpc(list.status());
  for (const AuditEntry& a : *list) {
    pb::AuditEntry* e = resp->add_entries();
    e->set_id(a.id);
    e->set_time(a.time);
    e->set_principal(a.principal);
    e->set_action(a.action);
    e->set_target(a.target);
    e->set_result(a.result);
    e->set_detail(a.detail);
  }
  return grpc::Status::OK;
}

grpc::Status AdminServer::ListDecisions(grpc::ServerContext* ctx,
                                        const pb::ListDecisionsRequest* req,
                                        pb::ListDecisionsResponse* resp) {
  VAKT_AUTHORIZE("ListDecisions");
  DecisionFilter f;
  if (req->agent_id().size() > 128 || req->route().size() > 128) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "agent_id and route filters are at most 128 bytes");
  }
  f.agent_id = req->agent_id();
  f.route = req->route();
  if (req->decision() == "allow") {
    f.allow = 1;
  } else if (req->decision() == "deny") {
    f.allow = 0;
  } else if (!req->decision().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "decision must be \"allow\", \"deny\" or empty");
  }
  if (req->limit() > DecisionStore::kMaxListLimit) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "limit is at most " + std::to_string(DecisionStore::kMaxListLimit));
  }
  f.limit = req->limit();
  f.since_unix_ms = req->since_unix_ms();
  const DecisionStore& store = cp_->fleet().decisions();
  for (pb::DecisionInfo& d : store.List(f)) *resp->add_decisions() = std::move(d);
  DecisionStats st = store.stats();
  resp->set_stored(st.stored);
  resp->set_received_total(st.received);
  resp->set_evicted_total(st.evicted);
  resp->set_refused_total(st.refused);
  resp->set_agent_dropped_total(st.agent_dropped);
  return grpc::Status::OK;
}

grpc::Status AdminServer::CreateToken(grpc::ServerContext* ctx, const pb::CreateTokenRequest* req,
                                      pb::CreateTokenResponse* resp) {
  VAKT_AUTHORIZE("CreateToken");
  std::optional<Role> role = ParseRole(req->role());
  if (!role) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "role must be viewer, author, deployer or admin");
  }
  Result<std::string> token = cp_->CreateToken(who, req->name(), *role);
  if (!token.ok()) return ToGrpc(token.status());
  resp->set_name(req->name());
  resp->set_role(RoleName(*role));
  resp->set_token(*token);
  return grpc::Status::OK;
}

grpc::Status AdminServer::ListTokens(grpc::ServerContext* ctx, const pb::ListTokensRequest*,
                                     pb::ListTokensResponse* resp) {
  VAKT_AUTHORIZE("ListTokens");
  Result<std::vector<PrincipalRecord>> list = cp_->store().ListPrincipals();
  if (!list.ok()) return ToGrpc(list.status());
  for (const PrincipalRecord& p : *list) {
    pb::TokenInfo* t = resp->add_tokens();
    t->set_name(p.name);
    t->set_role(RoleName(p.role));
    t->set_created_at(p.created_at);
    t->set_created_by(p.created_by);
  }
  return grpc::Status::OK;
}

grpc::Status AdminServer::DeleteToken(grpc::ServerContext* ctx, const pb::DeleteTokenRequest* req,
                                      pb::DeleteTokenResponse*) {
  VAKT_AUTHORIZE("DeleteToken");
  return ToGrpc(cp_->DeleteToken(who, req->name()));
}

grpc::Status AdminServer::WhoAmI(grpc::ServerContext* ctx, const pb::WhoAmIRequest*,
                                 pb::WhoAmIResponse* resp) {
  VAKT_AUTHORIZE("WhoAmI");
  resp->set_name(who.name);
  resp->set_role(RoleName(who.role));
  return grpc::Status::OK;
}

#undef VAKT_AUTHORIZE

}  // namespace vakt::controlplane
