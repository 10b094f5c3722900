// Request normalisation (request.h): turns an attacker-controlled request
// target and header list into the canonical form the router and the VM
// read. Every input gets a deterministic outcome: either a normalised
// request or a refusal with a static reason. Nothing is resolved or
// guessed ("..", encoded slashes and backslashes are refused, not
// interpreted), so the policy and the backend cannot disagree about which
// resource a request names.
//
// Normalize() is O(target + headers) and, once `out` has held a request of
// similar size, allocates nothing: it clears and refills the same strings
// and vectors. Views are only taken after the storage they point into has
// been reserved for the whole request, so no view dangles on reallocation.
//
// Tested by request_test.cc.
#include "bytecode/request.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <climits>
#include <memory>

namespace vakt::bytecode {
namespace {

TargetError Refuse(NormalizedRequest& out, TargetError e, const char* detail) {
  out.error_detail = detail;
  return e;
}

// RFC 9110 tchar.
bool IsTokenChar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes one "%XX" at s[i] (s[i] == '%'). Returns the byte or -1.
int DecodeEscape(std::string_view s, size_t i) {
  if (s.size() < 3 || i > s.size() - 3) return -1;
  int hi = HexValue(s[i + 1]);
  int lo = HexValue(s[i + 2]);
  if (hi < 0 || lo < 0) return -1;
  return hi * 16 + lo;
}

// Appends the decoded path segment `raw` (non-empty, no '/') to out.path.
// Returns nullptr on success or the refusal reason.
const char* AppendPathSegment(std::string_view raw, std::string& path) {
  size_t start = path.size();
  size_t run = 0;  // start of the pending run of plain bytes, appended at once
  for (size_t i = 0; i < raw.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(raw[i]);
    if (c == '%') {
      path.append(raw.data() + run, i - run);
      int v = DecodeEscape(raw, i);
      if (v < 0) return "invalid percent escape in path";
      if (v == '/') return "encoded slash in path";
      if (v == '\\') return "encoded backslash in path";
      if (v == 0) return "encoded NUL in path";
      if (IsControl(static_cast<unsigned char>(v))) return "encoded control byte in path";
      path.push_back(static_cast<char>(v));
      i += 2;
      run = i + 1;
      continue;
    }
    if (c == '\\') return "backslash in path";
    if (IsControl(c)) return "control byte in path";
  }
  path.append(raw.data() + run, raw.size() - run);
  std::string_view seg(path.data() + start, path.size() - start);
  if (seg == "." || seg == "..") return "dot segment in path";
  return nullptr;
}

// Decodes a query name or value ('+' is a space) onto the end of `storage`.
bool AppendQueryPart(std::string_view raw, std::string& storage) {
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '%') {
      int v = DecodeEscape(raw, i);
      if (v < 0) return false;
      storage.push_back(static_cast<char>(v));
      i += 2;
    } else if (c == '+') {
      storage.push_back(' ');
    } else {
      storage.push_back(c);
    }
  }
  return true;
}

TargetError ParseQuery(std::string_view raw, NormalizedRequest& out) {
  // Decoded text is never longer than the raw text, so one reserve keeps
  // every view below valid.
  out.query_storage.reserve(raw.size());
  size_t pos = 0;
  while (pos <= raw.size()) {
    size_t amp = raw.find('&', pos);
    if (amp == std::string_view::npos) amp = raw.size();
    std::string_view pair = raw.substr(pos, amp - pos);
    pos = amp + 1;
    if (pair.empty()) continue;
    if (out.query.size() >= kMaxQueryParams) {
      return Refuse(out, TargetError::kTooLong, "too many query parameters");
    }
    size_t eq = pair.find('=');
    std::string_view raw_name = pair.substr(0, eq);
    std::string_view raw_value =
        eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    size_t name_start = out.query_storage.size();
    if (!AppendQueryPart(raw_name, out.query_storage)) {
      return Refuse(out, TargetError::kMalformed, "invalid percent escape in query");
    }
    size_t value_start = out.query_storage.size();
    if (!AppendQueryPart(raw_value, out.query_storage)) {
      return Refuse(out, TargetError::kMalformed, "invalid percent escape in query");
    }
    std::string_view name(out.query_storage.data() + name_start, value_start - name_start);
    std::string_view value(out.query_storage.data() + value_start,
                           out.query_storage.size() - value_start);
    if (!IsValidUtf8(name) || !IsValidUtf8(value)) {
      return Refuse(out, TargetError::kMalformed, "query is not valid UTF-8");
    }
    out.query.emplace_back(name, value);
  }
  return TargetError::kNone;
}

// Length of the valid UTF-8 sequence at s[i], or 0 if it is invalid.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = at(i);
  if (c < 0x80) return 1;
  size_t n = s.size() - i;
  auto cont = [&](size_t k) { return (at(k) & 0xc0) == 0x80; };
  if (c >= 0xc2 && c <= 0xdf) return n >= 2 && cont(i + 1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (n < 3 || !cont(i + 1) || !cont(i + 2)) return 0;
    unsigned char c1 = at(i + 1);
    if (c == 0xe0 && c1 < 0xa0) return 0;   // overlong
    if (c == 0xed && c1 >= 0xa0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (n < 4 || !cont(i + 1) || !cont(i + 2) || !cont(i + 3)) return 0;
    unsigned char c1 = at(i + 1);
    if (c == 0xf0 && c1 < 0x90) return 0;   // overlong
    if (c == 0xf4 && c1 >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;  // continuation byte, 0xc0/0xc1 overlong lead, or 0xf5..0xff
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // Fast path over ASCII.
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t n = Utf8SequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

TargetError Normalize(const HttpRequest& req, NormalizedRequest& out) {
  out.path.clear();
  out.segments.clear();
  out.query_storage.clear();
  out.query.clear();
  out.header_storage.clear();
  out.headers.clear();
  out.raw_query = {};
  out.error_detail = "";

  // The method: a non-empty RFC 9110 token.
  if (req.method.empty()) return Refuse(out, TargetError::kMalformed, "empty method");
  if (req.method.size() > kMaxMethodBytes) {
    return Refuse(out, TargetError::kMalformed, "method too long");
  }
  for (char c : req.method) {
    if (!IsTokenChar(static_cast<unsigned char>(c))) {
      return Refuse(out, TargetError::kMalformed, "invalid character in method");
    }
  }

  // 1. Origin-form only.
  std::string_view target = req.target;
  if (target.size() > kMaxTargetBytes) {
    return Refuse(out, TargetError::kTooLong, "request target too long");
  }
  if (target.empty()) return Refuse(out, TargetError::kMalformed, "empty request target");
  if (target == "*") return Refuse(out, TargetError::kMalformed, "asterisk-form target refused");
  if (target[0] != '/') {
    return Refuse(out, TargetError::kMalformed, "request target is not origin-form");
  }
  if (target.find('#') != std::string_view::npos) {
    return Refuse(out, TargetError::kMalformed, "fragment in request target");
  }
  size_t qmark = target.find('?');
  std::string_view raw_path = target.substr(0, qmark);
  if (qmark != std::string_view::npos) out.raw_query = target.substr(qmark + 1);

  // 2-4. Split, drop empty segments, decode, refuse dot segments. The
  // decoded path is never longer than the raw one (plus the lone "/").
  out.path.reserve(raw_path.size() + 1);
  size_t count = 0;
  size_t pos = 0;
  while (pos < raw_path.size()) {
    size_t slash = raw_path.find('/', pos);
    if (slash == std::string_view::npos) slash = raw_path.size();
    std::string_view raw_seg = raw_path.substr(pos, slash - pos);
    pos = slash + 1;
    if (raw_seg.empty()) continue;
    if (++count > kMaxSegments) {
      return Refuse(out, TargetError::kTooLong, "too many path segments");
    }
    out.path.push_back('/');
    if (const char* why = AppendPathSegment(raw_seg, out.path)) {
      return Refuse(out, TargetError::kMalformed, why);
    }
  }
  // 5. UTF-8. A sequence cannot straddle the ASCII '/' between segments,
  // so checking the joined path checks each segment.
  if (!IsValidUtf8(out.path)) {
    return Refuse(out, TargetError::kMalformed, "path is not valid UTF-8");
  }
  // 6. The joined form; segments view it now that it is complete.
  if (out.path.empty()) out.path.push_back('/');
  if (count > 0) {
    std::string_view p = out.path;
    size_t s = 1;
    while (s <= p.size()) {
      size_t e = p.find('/', s);
      if (e == std::string_view::npos) e = p.size();
      out.segments.push_back(p.substr(s, e - s));
      s = e + 1;
    }
  }

  // Query parameters.
  if (TargetError e = ParseQuery(out.raw_query, out); e != TargetError::kNone) return e;

  // Headers: bounded, names lower-cased once.
  if (req.headers.size() > kMaxHeaders) {
    return Refuse(out, TargetError::kHeadersTooBig, "too many headers");
  }
  size_t name_bytes = 0;
  size_t total_bytes = 0;
  for (const HeaderField& h : req.headers) {
    name_bytes += h.name.size();
    total_bytes += h.name.size() + h.value.size();
    if (total_bytes > kMaxHeaderBytes) {
      return Refuse(out, TargetError::kHeadersTooBig, "headers too large");
    }
  }
  // Sized once, then written in place: the views below stay valid.
  out.header_storage.resize(name_bytes);
  char* w = out.header_storage.data();
  for (const HeaderField& h : req.headers) {
    char* start = w;
    for (char c : h.name) *w++ = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + ('a' - 'A')) : c;
    out.headers.emplace_back(std::string_view(start, h.name.size()), h.value);
  }
  return TargetError::kNone;
}

Result<std::string> CertThumbprint(std::string_view pem) {
  if (pem.empty() || pem.size() > static_cast<size_t>(INT_MAX)) {
    return InvalidArgument("client certificate is not a PEM certificate");
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (!bio) {
    ERR_clear_error();
    return Internal("out of memory reading the client certificate");
  }
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  if (!cert) {
    ERR_clear_error();
    return InvalidArgument("client certificate is not a PEM certificate");
  }
  unsigned char* der = nullptr;
  int der_len = i2d_X509(cert.get(), &der);
  if (der_len <= 0 || der == nullptr) {
    ERR_clear_error();
    return InvalidArgument("client certificate cannot be encoded as DER");
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  int ok =
      EVP_Digest(der, static_cast<size_t>(der_len), digest, &digest_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  if (ok != 1 || digest_len != 32) {
    ERR_clear_error();
    return Internal("SHA-256 failed");
  }
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve(43);
  size_t i = 0;
  for (; i + 3 <= digest_len; i += 3) {
    uint32_t v = (uint32_t{digest[i]} << 16) | (uint32_t{digest[i + 1]} << 8) | digest[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  size_t rest = digest_len - i;
  if (rest == 1) {
    uint32_t v = uint32_t{digest[i]} << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
  } else if (rest == 2) {
    uint32_t v = (uint32_t{digest[i]} << 16) | (uint32_t{digest[i + 1]} << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
  }
  return out;
}

}  // namespace vakt::bytecode
