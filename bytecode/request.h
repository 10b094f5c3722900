// The request and response model the VM decides on, and how a raw HTTP
// request target is normalised before route matching. Everything here is
// attacker-controlled; every size is bounded and every odd input gets a
// deterministic outcome (a normalisation error becomes a 400/414/431 deny).
//
// Path normalisation (documented in docs/language.md, "Request model"):
//   1. The target must start with '/'; "*" and absolute-form are refused.
//      A fragment ('#') is refused. The query is split off at the first '?'.
//   2. The path is split on '/'. Empty segments (duplicate or trailing
//      slashes) are dropped: "//a///b/" is "/a/b".
//   3. Each segment is percent-decoded. Invalid escapes, and escapes that
//      decode to '/', '\\', NUL or another control byte, are refused: an
//      encoded slash never splits or joins segments.
//   4. Segments "." and ".." (also when percent-encoded) are refused rather
//      than resolved, so the policy and the backend cannot disagree.
//   5. Decoded segments must be valid UTF-8.
//   5a. A segment holding ';' (Tomcat/Jetty path parameters) or ending in
//      '.' or ' ' (dropped by IIS/Windows) is refused, encoded or not.
//   6. The normalised path is "/" + segments joined by "/" ("/" if none).
//   Query parameters: split on '&', name and value split on the first '=',
//   '+' is a space, percent-decoded; invalid escapes, non-UTF-8, control
//   bytes after decoding and a raw ';' (a separator to some frameworks) are
//   refused.
// Header names are matched case-insensitively (lower-cased once).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/status.h"

namespace vakt::bytecode {

inline constexpr size_t kMaxTargetBytes = 8192;     // request-target
inline constexpr size_t kMaxSegments = 128;
inline constexpr size_t kMaxQueryParams = 256;
inline constexpr size_t kMaxHeaders = 256;
inline constexpr size_t kMaxHeaderBytes = 64 * 1024;  // names + values
inline constexpr size_t kMaxMethodBytes = 32;

struct HeaderField {
  std::string_view name;  // any case
  std::string_view value;
};

struct TlsInfo {
  std::string_view version;          // "TLSv1.3", "TLSv1.2", ... ; "" = no TLS
  std::string_view cipher;           // cipher suite name; "" = unknown
  std::string_view client_cert_pem;  // PEM client certificate; "" = none
};

// A request as received. Views must outlive the decision.
struct HttpRequest {
  std::string_view method;
  std::string_view target;  // raw request-target: path, optional ?query
  std::span<const HeaderField> headers;
  std::string_view body;
  TlsInfo tls;
  int64_t time = 0;  // unix seconds
};

struct HttpResponse {
  int status = 200;
  std::span<const HeaderField> headers;
  std::string_view body;
};

// Why normalisation refused a request; maps to the deny status.
enum class TargetError : uint8_t {
  kNone = 0,
  kMalformed,     // 400: not origin-form, bad escape, dot segment, non-UTF-8 ...
  kTooLong,       // 414: target over kMaxTargetBytes or too many segments
  kHeadersTooBig, // 431: too many headers or header bytes
};

// The normalised request. Reusable: Normalize() clears and refills it
// without freeing capacity, so a warm object allocates nothing.
struct NormalizedRequest {
  std::string path;                        // "/a/b"
  std::vector<std::string_view> segments;  // views into `path`
  std::string query_storage;               // decoded query names and values
  std::vector<std::pair<std::string_view, std::string_view>> query;
  std::string header_storage;              // lower-cased header names
  std::vector<std::pair<std::string_view, std::string_view>> headers;  // (lower name, value)
  std::string_view raw_query;              // after '?', views the request
  const char* error_detail = "";           // static text when Normalize fails
};

// Normalises `req` into `out`. Returns kNone on success.
TargetError Normalize(const HttpRequest& req, NormalizedRequest& out);

// ASCII case-insensitive equality (header names, auth schemes): the one
// comparison every layer uses, so that none can disagree on a header.
inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

// True if `s` is valid UTF-8 (no overlongs, no surrogates).
bool IsValidUtf8(std::string_view s);

// Client certificates. CertThumbprint sits on the path of every
// certificate-bound request, so it decodes the PEM by hand and checks the
// DER framing instead of running a full X.509 parse: its cost is the SHA-256
// plus one linear pass over the text.
inline constexpr size_t kMaxCertPemBytes = 16 * 1024;  // whole PEM input
// A URL-encoded PEM is at most three times as long as the PEM itself.
inline constexpr size_t kMaxEscapedCertBytes = 3 * kMaxCertPemBytes;

// base64url (no padding) SHA-256 of the DER of the first certificate in
// `pem`, as in RFC 8705 x5t#S256. Strict: the input (at most
// kMaxCertPemBytes) starts with the line "-----BEGIN CERTIFICATE-----";
// then lines of the base64 alphabet only, each ended by "\n" or "\r\n",
// with canonical padding (one or two '=' ending the base64 text); then the
// line "-----END CERTIFICATE-----", ended by a line break or the input.
// Whatever follows (a chain's next certificate) is ignored. The DER must be
// a SEQUENCE of SEQUENCE, SEQUENCE, BIT STRING, each with a minimal
// definite length, covering exactly the decoded bytes. kInvalidArgument
// otherwise. O(input); allocates only the result (it decodes into 12 KiB of
// stack).
Result<std::string> CertThumbprint(std::string_view pem);

// Undoes the URL encoding a proxy applies to the client certificate it
// forwards in a header (nginx $ssl_client_escaped_cert, Envoy's XFCC
// Cert=): every "%XX" becomes its byte; '+' stays '+' (it is a base64
// character, not a space). Refuses an invalid escape, a NUL byte, an input
// over kMaxEscapedCertBytes and a result over kMaxCertPemBytes. Does not
// check that the result is a certificate: pass it to CertThumbprint.
Result<std::string> UnescapeProxyCertificate(std::string_view escaped);

}  // namespace vakt::bytecode
