// The admin API client (see admin_client.h): channel and credentials, the
// token file and publish file checks, gRPC status mapping, JSON output.
#include "controlplane/admin_client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

namespace vakt::admin {

namespace {

namespace fs = std::filesystem;
namespace gp = google::protobuf;

constexpr size_t kMaxCaFileBytes = size_t{1} << 20;
constexpr size_t kMaxAddressBytes = 1024;
constexpr int kMaxSendBytes = 80 << 20;     // the server accepts a publish this large
constexpr int kMaxReceiveBytes = 256 << 20;
// A failed compile comes back as a status message holding every
// diagnostic; gRPC's default limit on received metadata (8 KiB) would turn a
// long list into an opaque transport error.
constexpr int kMaxMetadataBytes = 4 << 20;

// Reads at most `limit` bytes of a regular file through an open descriptor.
Result<std::string> ReadBounded(int fd, const std::string& path, size_t limit) {
  std::string out;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError("cannot read `" + path + "`: " + std::strerror(errno));
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > limit) {
      return ResourceExhausted("`" + path + "` is larger than " + std::to_string(limit) +
                               " bytes");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Result<std::string> ReadFileLimited(const std::string& path, size_t limit) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open `" + path + "`: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument("`" + path + "` is not a regular file");
  }
  Result<std::string> r = ReadBounded(fd, path, limit);
  ::close(fd);
  return r;
}

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (static_cast<uint8_t>(in[i]) << 16) | (static_cast<uint8_t>(in[i + 1]) << 8) |
                 static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

nlohmann::ordered_json FieldValue(const gp::Message& m, const gp::FieldDescriptor* f, int index) {
  using FD = gp::FieldDescriptor;
  const gp::Reflection* r = m.GetReflection();
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
    case FD::CPPTYPE_INT32:
      return rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f);
    case FD::CPPTYPE_INT64:
      return rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f);
    case FD::CPPTYPE_UINT32:
      return rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f);
    case FD::CPPTYPE_UINT64:
      return rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f);
    case FD::CPPTYPE_DOUBLE:
      return rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f);
    case FD::CPPTYPE_FLOAT:
      return rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f);
    case FD::CPPTYPE_BOOL:
      return rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f);
    case FD::CPPTYPE_ENUM:
      return (rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f))->name();
    case FD::CPPTYPE_STRING: {
      std::string s = rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
      if (f->type() == FD::TYPE_BYTES) return Base64(s);
      return s;
    }
    case FD::CPPTYPE_MESSAGE:
      return ToJson(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f));
  }
  return nullptr;
}

}  // namespace

bool IsLoopbackAddress(std::string_view a) {
  if (a.starts_with("unix:")) return true;
  if (a.starts_with("ipv4:")) a.remove_prefix(5);
  if (a.starts_with("ipv6:")) a.remove_prefix(5);
  if (a.starts_with("dns:")) a.remove_prefix(4);
  if (a.starts_with("[")) return a == "[::1]" || a.starts_with("[::1]:");
  std::string_view host = a.substr(0, a.rfind(':'));
  if (host == "localhost") return true;
  // 127.0.0.0/8 as a dotted quad: a name like 127.example.com is not one.
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

Result<std::string> ReadTokenFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return IoError("cannot open token file `" + path + "`: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument("token file `" + path + "` is not a regular file");
  }
  if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status(StatusCode::kPermissionDenied, "token file `" + path + "` is readable by group or others (mode " +
                            mode + "); run `chmod 600 " + path + "`");
  }
  Result<std::string> text = ReadBounded(fd, path, kMaxTokenFileBytes);
  ::close(fd);
  if (!text.ok()) return text.status();
  std::string token = std::move(*text);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.empty()) return InvalidArgument("token file `" + path + "` is empty");
  for (char c : token) {
    if (c <= 0x20 || c >= 0x7f) {
      return InvalidArgument("token file `" + path +
                             "` must hold one token: visible ASCII, then at most a newline");
    }
  }
  return token;
}

Result<CollectedFiles> CollectPublishFiles(const std::vector<std::string>& args,
                                           const CollectLimits& limits) {
  CollectedFiles out;
  size_t total = 0, entries = 0;
  auto add = [&](const std::string& rel, const std::string& path) -> Status {
    if (rel.size() > limits.max_path_bytes) {
      return InvalidArgument("path `" + rel + "` is longer than " +
                             std::to_string(limits.max_path_bytes) + " bytes");
    }
    if (out.files.size() >= limits.max_files) {
      return ResourceExhausted("more than " + std::to_string(limits.max_files) +
                               " files to publish");
    }
    Result<std::string> content = ReadFileLimited(path, limits.max_file_bytes);
    if (!content.ok()) return content.status();
    total += content->size();
    if (total > limits.max_total_bytes) {
      return ResourceExhausted("the files to publish exceed " +
                               std::to_string(limits.max_total_bytes) + " bytes in total");
    }
    v1::SourceFile f;
    f.set_path(rel);
    f.set_content(std::move(*content));
    out.files.push_back(std::move(f));
    return Status::Ok();
  };
  auto others_can_read = [](const fs::file_status& s) {
    return (s.permissions() & fs::perms::others_read) != fs::perms::none;
  };

  for (const std::string& arg : args) {
    std::error_code ec;
    fs::file_status st = fs::status(arg, ec);
    if (ec || !fs::exists(st)) return NotFound("`" + arg + "` does not exist");
    if (fs::is_regular_file(st)) {
      if (Status s = add(fs::path(arg).filename().generic_string(), arg); !s.ok()) return s;
      continue;
    }
    if (!fs::is_directory(st)) return InvalidArgument("`" + arg + "` is not a file or directory");
    const fs::path root(arg);
    fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
    if (ec) return IoError("cannot list `" + arg + "`: " + ec.message());
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) return IoError("cannot list `" + arg + "`: " + ec.message());
      if (++entries > limits.max_entries) {
        return ResourceExhausted("more than " + std::to_string(limits.max_entries) +
                                 " entries under `" + arg + "`");
      }
      const fs::directory_entry& e = *it;
      const std::string name = e.path().filename().string();
      const std::string rel = e.path().lexically_relative(root).generic_string();
      fs::file_status ls = e.symlink_status(ec);
      if (ec) return IoError("cannot stat `" + e.path().string() + "`: " + ec.message());
      if (name.starts_with(".")) {
        if (fs::is_directory(ls)) it.disable_recursion_pending();
        continue;
      }
      if (fs::is_directory(ls)) {
        if (!others_can_read(ls)) {
          it.disable_recursion_pending();
          out.skipped.push_back(rel + "/ (a private directory)");
        } else if (static_cast<size_t>(it.depth()) + 1 >= limits.max_depth) {
          return ResourceExhausted("`" + e.path().string() + "` is nested deeper than " +
                                   std::to_string(limits.max_depth) + " levels");
        }
        continue;
      }
      fs::file_status fst = fs::is_symlink(ls) ? e.status(ec) : ls;
      if (ec || !fs::is_regular_file(fst)) continue;  // dangling links, sockets, linked dirs
      if (!others_can_read(fst)) {
        out.skipped.push_back(rel + " (a private file)");
        continue;
      }
      if (Status s = add(rel, e.path().string()); !s.ok()) return s;
    }
  }
  std::sort(out.files.begin(), out.files.end(),
            [](const v1::SourceFile& a, const v1::SourceFile& b) { return a.path() < b.path(); });
  for (size_t i = 1; i < out.files.size(); ++i) {
    if (out.files[i].path() == out.files[i - 1].path()) {
      return InvalidArgument("two files would be published as `" + out.files[i].path() + "`");
    }
  }
  if (out.files.empty()) return InvalidArgument("no files to publish");
  return out;
}

std::string GrpcCodeName(grpc::StatusCode code) {
  using C = grpc::StatusCode;
  switch (code) {
    case C::OK: return "ok";
    case C::CANCELLED: return "cancelled";
    case C::UNKNOWN: return "unknown";
    case C::INVALID_ARGUMENT: return "invalid argument";
    case C::DEADLINE_EXCEEDED: return "deadline exceeded";
    case C::NOT_FOUND: return "not found";
    case C::ALREADY_EXISTS: return "already exists";
    case C::PERMISSION_DENIED: return "permission denied";
    case C::RESOURCE_EXHAUSTED: return "resource exhausted";
    case C::FAILED_PRECONDITION: return "failed precondition";
    case C::ABORTED: return "aborted";
    case C::OUT_OF_RANGE: return "out of range";
    case C::UNIMPLEMENTED: return "unimplemented";
    case C::INTERNAL: return "internal";
    case C::UNAVAILABLE: return "unavailable";
    case C::DATA_LOSS: return "data loss";
    case C::UNAUTHENTICATED: return "unauthenticated";
    default: return "code " + std::to_string(static_cast<int>(code));
  }
}

Status FromGrpc(const grpc::Status& st) {
  using C = grpc::StatusCode;
  if (st.ok()) return Status::Ok();
  StatusCode code = StatusCode::kInternal;
  switch (st.error_code()) {
    case C::INVALID_ARGUMENT:
    case C::FAILED_PRECONDITION:
    case C::ALREADY_EXISTS:
    case C::OUT_OF_RANGE:
    case C::ABORTED:
      code = StatusCode::kInvalidArgument;
      break;
    case C::NOT_FOUND: code = StatusCode::kNotFound; break;
    case C::PERMISSION_DENIED: code = StatusCode::kPermissionDenied; break;
    case C::RESOURCE_EXHAUSTED: code = StatusCode::kResourceExhausted; break;
    case C::UNIMPLEMENTED: code = StatusCode::kUnsupported; break;
    case C::UNAUTHENTICATED: code = StatusCode::kUnauthenticated; break;
    case C::UNAVAILABLE:
    case C::DEADLINE_EXCEEDED:
    case C::CANCELLED:
      code = StatusCode::kIoError;
      break;
    case C::DATA_LOSS: code = StatusCode::kCorruption; break;
    default: code = StatusCode::kInternal; break;
  }
  return Status(code, GrpcCodeName(st.error_code()) + ": " + st.error_message());
}

int ExitCodeFor(const Status& st) {
  switch (st.code()) {
    case StatusCode::kOk: return 0;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kPermissionDenied:
    case StatusCode::kResourceExhausted:
    case StatusCode::kUnsupported:
      return 1;
    case StatusCode::kUnauthenticated:
    case StatusCode::kIoError:
    case StatusCode::kCorruption:
    case StatusCode::kInternal:
      return 3;
  }
  return 3;
}

nlohmann::ordered_json ToJson(const gp::Message& m) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  const gp::Descriptor* d = m.GetDescriptor();
  const gp::Reflection* r = m.GetReflection();
  // Our messages do not nest recursively, so the depth is the schema's.
  for (int i = 0; i < d->field_count(); ++i) {
    const gp::FieldDescriptor* f = d->field(i);
    if (f->is_map()) {
      // Keys sorted, so the output does not depend on the map's order.
      std::map<std::string, nlohmann::ordered_json> obj;
      const gp::FieldDescriptor* kf = f->message_type()->map_key();
      const gp::FieldDescriptor* vf = f->message_type()->map_value();
      for (int j = 0; j < r->FieldSize(m, f); ++j) {
        const gp::Message& entry = r->GetRepeatedMessage(m, f, j);
        nlohmann::ordered_json key = FieldValue(entry, kf, -1);
        obj[key.is_string() ? key.get<std::string>() : key.dump()] = FieldValue(entry, vf, -1);
      }
      nlohmann::ordered_json o = nlohmann::ordered_json::object();
      for (auto& [k, v] : obj) o[k] = std::move(v);
      out[f->name()] = std::move(o);
    } else if (f->is_repeated()) {
      nlohmann::ordered_json arr = nlohmann::ordered_json::array();
      for (int j = 0; j < r->FieldSize(m, f); ++j) arr.push_back(FieldValue(m, f, j));
      out[f->name()] = std::move(arr);
    } else if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE && !r->HasField(m, f)) {
      out[f->name()] = nullptr;
    } else {
      out[f->name()] = FieldValue(m, f, -1);
    }
  }
  return out;
}

Result<std::unique_ptr<AdminClient>> AdminClient::Connect(const ConnectOptions& opts) {
  if (opts.server.empty()) return InvalidArgument("no server address");
  if (opts.server.size() > kMaxAddressBytes) return InvalidArgument("the server address is too long");
  for (char c : opts.server) {
    if (c <= 0x20 || c >= 0x7f) return InvalidArgument("the server address holds a space or control character");
  }
  if (opts.timeout_seconds < 1 || opts.timeout_seconds > 3600) {
    return InvalidArgument("the timeout must be 1 to 3600 seconds");
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (opts.insecure) {
    if (!IsLoopbackAddress(opts.server)) {
      return InvalidArgument("--insecure (plain TCP) is allowed only to a loopback address, not `" +
                             opts.server + "`");
    }
    if (!opts.ca_file.empty()) return InvalidArgument("--insecure and --ca exclude each other");
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    if (!opts.ca_file.empty()) {
      Result<std::string> ca = ReadFileLimited(opts.ca_file, kMaxCaFileBytes);
      if (!ca.ok()) return ca.status();
      ssl.pem_root_certs = std::move(*ca);
    }
    creds = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(kMaxSendBytes);
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  args.SetInt(GRPC_ARG_MAX_METADATA_SIZE, kMaxMetadataBytes);
  auto channel = grpc::CreateCustomChannel(opts.server, creds, args);
  if (!channel) return Internal("cannot create a channel to `" + opts.server + "`");
  return std::unique_ptr<AdminClient>(
      new AdminClient(v1::AdminService::NewStub(channel), opts.token, opts.timeout_seconds));
}

void AdminClient::Prepare(grpc::ClientContext* ctx) const {
  ctx->AddMetadata("authorization", "Bearer " + token_);
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(timeout_seconds_));
}

}  // namespace vakt::admin
