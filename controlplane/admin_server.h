// The admin gRPC service (proto/vakt/v1/admin.proto) over ControlPlane:
// authenticates the bearer token of every call, checks the caller's role
// against the RPC's (kRequiredRole in admin_server.cc, docs/grpc-api.md),
// converts messages, and maps Status codes to gRPC codes. Semantics and
// auditing live in ControlPlane; a refused call is audited here when the
// caller is known (an unknown token is only logged, so that noise cannot
// fill the audit log).
//
// Synchronous gRPC service: admin calls are few and may compile policies,
// so they run on gRPC's thread pool rather than on the callback executor
// that serves agent streams.
#pragma once

#include <grpcpp/grpcpp.h>

#include "controlplane/control_plane.h"
#include "vakt/v1/admin.grpc.pb.h"

namespace vakt::controlplane {

// Maps our status codes to gRPC's.
grpc::Status ToGrpc(const Status& st);

class AdminServer final : public vakt::v1::AdminService::Service {
 public:
  explicit AdminServer(ControlPlane* cp) : cp_(cp) {}

  grpc::Status Publish(grpc::ServerContext* ctx, const vakt::v1::PublishRequest* req,
                       vakt::v1::PublishResponse* resp) override;
  grpc::Status ListVersions(grpc::ServerContext* ctx, const vakt::v1::ListVersionsRequest* req,
                            vakt::v1::ListVersionsResponse* resp) override;
  grpc::Status GetVersion(grpc::ServerContext* ctx, const vakt::v1::GetVersionRequest* req,
                          vakt::v1::VersionInfo* resp) override;
  grpc::Status Diff(grpc::ServerContext* ctx, const vakt::v1::DiffRequest* req,
                    vakt::v1::DiffResponse* resp) override;
  grpc::Status StartRollout(grpc::ServerContext* ctx, const vakt::v1::StartRolloutRequest* req,
                            vakt::v1::RolloutInfo* resp) override;
  grpc::Status AdvanceRollout(grpc::ServerContext* ctx, const vakt::v1::RolloutRef* req,
                              vakt::v1::RolloutInfo* resp) override;
  grpc::Status PauseRollout(grpc::ServerContext* ctx, const vakt::v1::RolloutRef* req,
                            vakt::v1::RolloutInfo* resp) override;
  grpc::Status ResumeRollout(grpc::ServerContext* ctx, const vakt::v1::RolloutRef* req,
                             vakt::v1::RolloutInfo* resp) override;
  grpc::Status Rollback(grpc::ServerContext* ctx, const vakt::v1::RollbackRequest* req,
                        vakt::v1::RolloutInfo* resp) override;
  grpc::Status GetRollout(grpc::ServerContext* ctx, const vakt::v1::RolloutRef* req,
                          vakt::v1::RolloutInfo* resp) override;
  grpc::Status ListRollouts(grpc::ServerContext* ctx, const vakt::v1::ListRolloutsRequest* req,
                            vakt::v1::ListRolloutsResponse* resp) override;
  grpc::Status ListAgents(grpc::ServerContext* ctx, const vakt::v1::ListAgentsRequest* req,
                          vakt::v1::ListAgentsResponse* resp) override;
  grpc::Status AddRevocation(grpc::ServerContext* ctx, const vakt::v1::AddRevocationRequest* req,
                             vakt::v1::RevocationInfo* resp) override;
  grpc::Status RemoveRevocation(grpc::ServerContext* ctx,
                                const vakt::v1::RemoveRevocationRequest* req,
                                vakt::v1::RemoveRevocationResponse* resp) override;
  grpc::Status ListRevocations(grpc::ServerContext* ctx,
                               const vakt::v1::ListRevocationsRequest* req,
                               vakt::v1::ListRevocationsResponse* resp) override;
  grpc::Status ListAudit(grpc::ServerContext* ctx, const vakt::v1::ListAuditRequest* req,
                         vakt::v1::ListAuditResponse* resp) override;
  grpc::Status ListDecisions(grpc::ServerContext* ctx, const vakt::v1::ListDecisionsRequest* req,
                             vakt::v1::ListDecisionsResponse* resp) override;
  grpc::Status CreateToken(grpc::ServerContext* ctx, const vakt::v1::CreateTokenRequest* req,
                           vakt::v1::CreateTokenResponse* resp) override;
  grpc::Status ListTokens(grpc::ServerContext* ctx, const vakt::v1::ListTokensRequest* req,
                          vakt::v1::ListTokensResponse* resp) override;
  grpc::Status DeleteToken(grpc::ServerContext* ctx, const vakt::v1::DeleteTokenRequest* req,
                           vakt::v1::DeleteTokenResponse* resp) override;
  grpc::Status WhoAmI(grpc::ServerContext* ctx, const vakt::v1::WhoAmIRequest* req,
                      vakt::v1::WhoAmIResponse* resp) override;

 private:
  // Authenticates and checks `need`; on success fills *who.
  grpc::Status Authorize(grpc::ServerContext* ctx, Role need, const char* action, Principal* who);

  ControlPlane* cp_;
};

}  // namespace vakt::controlplane
