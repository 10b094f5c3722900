// HTTP-level pieces of FAPI 2.0 enforcement that need no cryptography:
// reading the access token from the Authorization header (RFC 6750 2.1,
// RFC 9449 7.1), normalising a DPoP `htu` and the request URI for
// comparison (RFC 9449 4.3 item 9, RFC 3986 6.2.2-6.2.3), and building
// RFC 6750 / RFC 9449 `WWW-Authenticate` challenges. All input is hostile;
// every function is bounded by the length of its input.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "bytecode/request.h"
#include "bytecode/status.h"

namespace vakt::bytecode {

enum class AuthScheme : uint8_t { kNone, kBearer, kDPoP };

struct AuthorizationToken {
  AuthScheme scheme = AuthScheme::kNone;
  std::string_view token;  // views the header value
};

// Finds the access token in `headers`. No Authorization header gives
// scheme kNone (the caller answers 401 with a bare challenge). More than one
// Authorization header, an unknown scheme, or a credential that is not a
// single RFC 7235 token68 is kInvalidArgument (400 invalid_request).
// Scheme names are case-insensitive; one or more spaces separate them.
Result<AuthorizationToken> ReadAuthorization(std::span<const HeaderField> headers);

// Normalises an absolute http(s) URI for `htu` comparison: scheme and host
// lower-cased, default port (80 for http, 443 for https) removed, empty
// path as "/", query and fragment dropped, percent-escapes of unreserved
// characters decoded and hex digits upper-cased. Userinfo, non-http schemes,
// bad escapes and URIs over 8 KiB are refused.
Result<std::string> NormalizeHtu(std::string_view uri);

// True if the proof's `htu` names the request: both normalised and equal.
bool HtuMatches(std::string_view proof_htu, std::string_view request_uri);

// A challenge: `Bearer` or `DPoP`, with `error`, `error_description`
// (quotes and backslashes escaped, control bytes dropped, at most 256
// bytes), `scope` when given, and for DPoP `algs` (space separated).
std::string Challenge(AuthScheme scheme, std::string_view error, std::string_view description,
                      std::string_view scope = {}, std::string_view algs = {});

}  // namespace vakt::bytecode
