// The client side of the admin API (proto/vakt/v1/admin.proto), for the
// `vakt` CLI's admin subcommands (admin_cli.h) and for tools: a channel with
// the bearer token and a deadline on every call, gRPC errors turned into
// Status, the token file and the files of a publish read with their checks,
// and any response message as JSON. It is its own target
// (vakt::admin_client) linking only the protos and the bytecode library, so
// the `vakt` binary never links SQLite or the server.
//
// Bounds: a token file is at most kMaxTokenFileBytes; a publish walks at most
// CollectLimits::max_entries directory entries, max_depth levels deep, and
// collects at most max_files files, max_file_bytes each, max_total_bytes in
// all (the server's own limits, control_plane.h, are the same or lower).
//
// Thread-safety: an AdminClient may be used from several threads (gRPC stubs
// are thread-safe); the free functions have no shared state.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/status.h"
#include "vakt/v1/admin.grpc.pb.h"

namespace vakt::admin {

inline constexpr size_t kMaxTokenFileBytes = 4096;

struct ConnectOptions {
  std::string server;        // host:port (or unix:PATH)
  std::string token;         // the bearer token
  std::string ca_file;       // server CA (PEM); empty: the system roots
  bool insecure = false;     // plain TCP; only to a loopback address
  int timeout_seconds = 30;  // per call
};

// 127.0.0.0/8, [::1], localhost or a unix socket.
bool IsLoopbackAddress(std::string_view address);

// Reads a bearer token file: refuses one readable by group or others, one
// larger than kMaxTokenFileBytes, an empty one, or one holding more than a
// token (a trailing newline is allowed).
Result<std::string> ReadTokenFile(const std::string& path);

struct CollectLimits {
  size_t max_files = 1000;
  size_t max_file_bytes = size_t{16} << 20;
  size_t max_total_bytes = size_t{64} << 20;
  size_t max_path_bytes = 256;
  size_t max_entries = 20000;
  size_t max_depth = 16;
};

struct CollectedFiles {
  std::vector<v1::SourceFile> files;  // sorted by path
  // Left out on purpose: files not readable by others (private keys kept
  // beside a policy are never uploaded), with why.
  std::vector<std::string> skipped;
};

// The files of a publish. A directory contributes every regular file under
// it except hidden ones (a name starting with '.') and private ones (no read
// permission for others), with paths relative to the directory and
// '/'-separated; a file contributes its own name. Symbolic links to
// directories are not followed.
Result<CollectedFiles> CollectPublishFiles(const std::vector<std::string>& args,
                                           const CollectLimits& limits = {});

// A gRPC status as a Status whose message is `<code>: <message>`, the code in
// lowercase words ("permission denied"). OK -> Status::Ok().
Status FromGrpc(const grpc::Status& st);
std::string GrpcCodeName(grpc::StatusCode code);

// The CLI's exit code for a failed call: 1 the server refused (invalid
// argument, not found, permission denied, limits), 3 it could not be reached,
// refused the credentials, or failed internally.
int ExitCodeFor(const Status& st);

// A message as JSON with the proto field names in declaration order: every
// field, set or not; 64-bit integers as numbers, bytes in base64, maps as
// objects.
nlohmann::ordered_json ToJson(const google::protobuf::Message& m);

// A connection to the admin API. Thread-safe.
class AdminClient {
 public:
  using Stub = v1::AdminService::Stub;
  template <typename Req, typename Resp>
  using Rpc = grpc::Status (Stub::*)(grpc::ClientContext*, const Req&, Resp*);

  // Checks the options (address, loopback for insecure, CA readable) and
  // creates the channel; no connection is made until the first call.
  static Result<std::unique_ptr<AdminClient>> Connect(const ConnectOptions& opts);

  // One unary call with the token and the deadline.
  template <typename Req, typename Resp>
  Status Call(Rpc<Req, Resp> rpc, const Req& req, Resp* resp) const {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    return FromGrpc((stub_.get()->*rpc)(&ctx, req, resp));
  }

 private:
  AdminClient(std::unique_ptr<Stub> stub, std::string token, int timeout_seconds)
      : stub_(std::move(stub)), token_(std::move(token)), timeout_seconds_(timeout_seconds) {}
  void Prepare(grpc::ClientContext* ctx) const;

  std::unique_ptr<Stub> stub_;
  std::string token_;
  int timeout_seconds_;
};

}  // namespace vakt::admin
