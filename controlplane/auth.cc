// API tokens, the role order and bearer parsing (see auth.h).
#include "controlplane/auth.h"

#include <openssl/err.h>
#include <openssl/rand.h>

#include <array>

#include "bytecode/jose.h"
#include "bytecode/sha256.h"
#include "controlplane/secret_file.h"

namespace vakt::controlplane {
namespace {

bool IsB64TokenChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

bool IsOws(char c) { return c == ' ' || c == '\t'; }

Status Unauthenticated(std::string m) {
  return {StatusCode::kUnauthenticated, std::move(m)};
}

struct MethodRole {
  std::string_view method;
  Role role;
};

// Mirrors the role comments of proto/vakt/v1/admin.proto.
constexpr std::array<MethodRole, 21> kMethodRoles = {{
    {"Publish", Role::kAuthor},
    {"ListVersions", Role::kViewer},
    {"GetVersion", Role::kViewer},
    {"Diff", Role::kViewer},
    {"StartRollout", Role::kDeployer},
    {"AdvanceRollout", Role::kDeployer},
    {"PauseRollout", Role::kDeployer},
    {"ResumeRollout", Role::kDeployer},
    {"Rollback", Role::kDeployer},
    {"GetRollout", Role::kViewer},
    {"ListRollouts", Role::kViewer},
    {"ListAgents", Role::kViewer},
    {"AddRevocation", Role::kDeployer},
    {"RemoveRevocation", Role::kDeployer},
    {"ListRevocations", Role::kViewer},
    {"ListAudit", Role::kViewer},
    {"ListDecisions", Role::kViewer},
    {"CreateToken", Role::kAdmin},
    {"ListTokens", Role::kAdmin},
    {"DeleteToken", Role::kAdmin},
    {"WhoAmI", Role::kViewer},
}};

}  // namespace

Result<std::string> NewToken() {
  std::array<unsigned char, kTokenRandomBytes> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    ERR_clear_error();
    return Internal("the system random generator failed: no token issued");
  }
  return std::string(kTokenPrefix) +
         bytecode::Base64UrlEncode(
             std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

std::string TokenHash(std::string_view token) {
  auto d = bytecode::Sha256(token);
  return bytecode::HexLower(d.data(), d.size());
}

bool RoleAllows(Role have, Role need) {
  auto in_range = [](Role r) {
    int v = static_cast<int>(r);
    return v >= static_cast<int>(Role::kViewer) && v <= static_cast<int>(Role::kAdmin);
  };
  return in_range(have) && in_range(need) && static_cast<int>(have) >= static_cast<int>(need);
}

std::optional<Role> RequiredRole(std::string_view method) {
  constexpr std::string_view kService = "/vakt.v1.AdminService/";
  if (method.starts_with('/')) {
    if (!method.starts_with(kService)) return std::nullopt;
    method.remove_prefix(kService.size());
  }
  for (const MethodRole& m : kMethodRoles) {
    if (m.method == method) return m.role;
  }
  return std::nullopt;
}

Result<std::string> ParseBearer(std::string_view h) {
  if (h.size() > kMaxAuthorizationHeaderBytes) {
    return Unauthenticated("authorization header too long");
  }
  while (!h.empty() && IsOws(h.front())) h.remove_prefix(1);
  while (!h.empty() && IsOws(h.back())) h.remove_suffix(1);
  if (h.empty()) return Unauthenticated("missing bearer token");
  constexpr std::string_view kScheme = "bearer";
  bool scheme_ok = h.size() > kScheme.size() && h[kScheme.size()] == ' ';
  for (size_t i = 0; scheme_ok && i < kScheme.size(); ++i) {
    scheme_ok = (h[i] | 0x20) == kScheme[i];
  }
  if (!scheme_ok) return Unauthenticated("authorization is not `Bearer <token>`");
  h.remove_prefix(kScheme.size());
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  if (h.empty()) return Unauthenticated("missing bearer token");
  if (h.size() > kMaxTokenLength) return Unauthenticated("bearer token too long");
  size_t i = 0;
  while (i < h.size() && IsB64TokenChar(h[i])) ++i;
  if (i == 0) return Unauthenticated("malformed bearer token");
  while (i < h.size() && h[i] == '=') ++i;
  if (i != h.size()) {
    return Unauthenticated(IsOws(h[i]) ? "more than one bearer token"
                                       : "malformed bearer token");
  }
  return std::string(h);
}

Result<std::string> WriteFirstAdminToken(const std::string& data_dir) {
  auto token = NewToken();
  if (!token.ok()) return token.status();
  Status s = WriteFileAtomically(data_dir + "/admin.token", *token + "\n", 0600,
                                 /*replace_existing=*/true);
  if (!s.ok()) return s;
  return token;
}

}  // namespace vakt::controlplane
