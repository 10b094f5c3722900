// API tokens and roles of the admin API. A token is "vakt_" followed by 43
// base64url characters (32 bytes from OpenSSL's RAND_bytes, 256 bits of
// entropy); the server keeps only its SHA-256 hex (TokenHash). Tokens are
// random, not chosen by people, so a plain hash suffices: no dictionary or
// brute force can invert it, and no slow KDF is needed.
//
// Roles are ordered, each including the ones below it:
// viewer (reads) < author (also publishes) < deployer (also rollouts,
// rollback, revocations) < admin (also tokens). RequiredRole maps each
// AdminService RPC to the least role that may call it.
//
// Bounds: an Authorization header is parsed in one pass over at most
// kMaxAuthorizationHeaderBytes; a token is at most kMaxTokenLength.
// Thread-safety: everything here is reentrant. Tested by
// tests/cp_security_test.cc.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "bytecode/status.h"
#include "controlplane/store.h"

namespace vakt::controlplane {

inline constexpr std::string_view kTokenPrefix = "vakt_";
inline constexpr size_t kTokenRandomBytes = 32;
inline constexpr size_t kMaxTokenLength = 512;
inline constexpr size_t kMaxAuthorizationHeaderBytes = 1024;

// A new random token. kInternal only if the system RNG fails (then no token
// must be issued at all).
Result<std::string> NewToken();

// SHA-256 hex of the token: what the store keeps (PrincipalRecord).
std::string TokenHash(std::string_view token);

// True if a principal of role `have` may do what needs `need`. False for
// any value outside the four roles.
bool RoleAllows(Role have, Role need);

// The least role allowed to call an AdminService RPC, by its short name
// ("Publish") or its gRPC path ("/vakt.v1.AdminService/Publish");
// nullopt for an unknown method (which must be refused).
std::optional<Role> RequiredRole(std::string_view method);

// The token of an `authorization` header value "Bearer <token>": the scheme
// is case-insensitive, one or more spaces separate it from exactly one
// token of RFC 6750 b64token characters ([A-Za-z0-9._~+/-] then any '='),
// at most kMaxTokenLength; surrounding spaces and tabs are ignored.
// kUnauthenticated for anything else, without echoing the header.
Result<std::string> ParseBearer(std::string_view authorization_header);

// First start: creates a token, writes it (and a newline) to
// DATA_DIR/admin.token with mode 0600, crash-safely, and returns it for the
// caller to store as the first admin principal (by TokenHash). The caller
// calls this only when no principal exists; an admin.token left by an
// earlier first start that crashed before storing its principal is
// therefore worthless and is replaced. Write the file before storing the
// principal, so that a crash never leaves an admin whose token nobody has.
Result<std::string> WriteFirstAdminToken(const std::string& data_dir);

}  // namespace vakt::controlplane
