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
// The client-certificate thumbprint (RFC 8705) is here too: one pass over at
// most kMaxCertPemBytes of PEM into a stack buffer, a constant-time DER
// framing check, and one SHA-256. See "Client certificates" below for why it
// does not use OpenSSL's X.509 parser.
//
// Tested by request_test.cc; timed by bench/bench_cert.cc.
#include "bytecode/request.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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
  // Backends disagree with a literal reading of these: Tomcat and Jetty cut
  // a segment at ';' (path parameters: "/admin;x" is "/admin"), IIS and
  // Windows file systems drop trailing dots and spaces ("/admin." is
  // "/admin"). A policy that saw another route than the backend serves is a
  // bypass, so such segments are refused, encoded or not.
  if (seg.find(';') != std::string_view::npos) return "semicolon in path segment";
  if (seg.back() == '.' || seg.back() == ' ') return "path segment ends in a dot or space";
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
    // Some frameworks also split on ';' (older Python, Go before 1.17, some
    // proxies): "a=1;a=2" would be one parameter here and two there.
    if (pair.find(';') != std::string_view::npos) {
      return Refuse(out, TargetError::kMalformed, "semicolon in query");
    }
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
    for (std::string_view part : {name, value}) {
      for (char c : part) {
        if (IsControl(static_cast<unsigned char>(c))) {
          return Refuse(out, TargetError::kMalformed, "control byte in query");
        }
      }
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

// ---- Client certificates ----
//
// CertThumbprint runs on every certificate-bound request (budget: 1.5 us for
// the whole decision), so instead of PEM_read_bio_X509 + i2d_X509 (a full
// X.509 parse and re-encode) it decodes the base64 by hand into a stack
// buffer and checks only the DER framing of a Certificate. What it hashes
// is then exactly the bytes the client presented, which is what RFC 8705
// x5t#S256 binds.

constexpr std::string_view kPemBegin = "-----BEGIN CERTIFICATE-----";
constexpr std::string_view kPemEnd = "-----END CERTIFICATE-----";
constexpr size_t kMaxCertDerBytes = kMaxCertPemBytes / 4 * 3;

// The standard base64 value of each byte; 0x80 for a byte outside the
// alphabet ('=' and line breaks included: the caller handles those).
constexpr std::array<uint8_t, 256> kBase64Value = [] {
  std::array<uint8_t, 256> t{};
  for (uint8_t& v : t) v = 0x80;
  constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kStd[i])] = static_cast<uint8_t>(i);
  return t;
}();

Status BadEscapedCert(std::string why) {
  return InvalidArgument("escaped client certificate: " + std::move(why));
}

Status BadCert(std::string why) {
  return InvalidArgument("client certificate is not a PEM certificate: " + std::move(why));
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VAKT_BASE64_SSSE3 1
// Decodes whole blocks of 16 base64 characters into 12 bytes each with
// SSSE3 (Mula and Lemire, "Faster Base64 Encoding and Decoding using AVX2
// Instructions", 2018, in its 128-bit form), stopping before the first block
// that holds a byte outside the alphabet. Returns the number of characters
// consumed, a multiple of 16. Writes 16 bytes per block: REQUIRES four bytes
// of room after the last 12. Compiled for SSSE3 whatever the target; called
// only when the CPU has it.
__attribute__((target("ssse3"))) size_t DecodeBlocksSsse3(const char* in, size_t n, uint8_t* out) {
  const __m128i lut_lo = _mm_setr_epi8(0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
                                       0x13, 0x1a, 0x1b, 0x1b, 0x1b, 0x1a);
  const __m128i lut_hi = _mm_setr_epi8(0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10,
                                       0x10, 0x10, 0x10, 0x10, 0x10, 0x10);
  const __m128i lut_roll = _mm_setr_epi8(0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m128i mask_2f = _mm_set1_epi8(0x2f);
  const __m128i zero = _mm_setzero_si128();
  const __m128i pack_bytes = _mm_set1_epi32(0x01400140);
  const __m128i pack_words = _mm_set1_epi32(0x00011000);
  const __m128i order = _mm_setr_epi8(2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1);
  size_t done = 0;
  for (; done + 16 <= n; done += 16, out += 12) {
    __m128i str = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + done));
    // Classify each byte by its nibbles: a byte outside the alphabet has a
    // bit set in both lookups.
    __m128i hi_nibbles = _mm_and_si128(_mm_srli_epi32(str, 4), mask_2f);
    __m128i lo_nibbles = _mm_and_si128(str, mask_2f);
    __m128i hi = _mm_shuffle_epi8(lut_hi, hi_nibbles);
    __m128i lo = _mm_shuffle_epi8(lut_lo, lo_nibbles);
    if (_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_and_si128(lo, hi), zero)) != 0xffff) break;
    // Characters to 6-bit values, then four of them to three bytes.
    __m128i eq_2f = _mm_cmpeq_epi8(str, mask_2f);
    __m128i roll = _mm_shuffle_epi8(lut_roll, _mm_add_epi8(eq_2f, hi_nibbles));
    str = _mm_add_epi8(str, roll);
    __m128i merged = _mm_madd_epi16(_mm_maddubs_epi16(str, pack_bytes), pack_words);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_shuffle_epi8(merged, order));
  }
  return done;
}

const bool kHasSsse3 = (__builtin_cpu_init(), __builtin_cpu_supports("ssse3"));
#endif

// Decodes the base64 body of a PEM into its own buffer, run by run: Run()
// takes characters of the alphabet until the first other byte (a line
// break, '=', '-' or garbage), which the caller then judges, so the text is
// scanned once, with no separate search for line ends. A group of four
// characters may straddle a line break (lines need not be a multiple of four
// long): up to three carry over. Whole blocks of 16 go through SSSE3 where
// the CPU has it; the rest through the scalar table.
class PemBodyDecoder {
 public:
  // Decodes characters of the alphabet from p[0, n) up to the first other
  // byte; returns how many it took. REQUIRES: all calls together take at
  // most kMaxCertPemBytes characters (then the output fits: 3/4 of that).
  size_t Run(const char* p, size_t n) {
    size_t i = 0;
    while (carried_ != 0 && i < n && kBase64Value[static_cast<unsigned char>(p[i])] < 64) {
      carry_[carried_++ & 3] = p[i++];  // carried_ < 4 here; the mask tells gcc -O3
      if (carried_ == 4) {
        Quad(carry_);
        carried_ = 0;
      }
    }
    if (carried_ != 0) return i;
#ifdef VAKT_BASE64_SSSE3
    if (kHasSsse3) {
      size_t done = DecodeBlocksSsse3(p + i, n - i, out_.data() + size_);
      i += done;
      size_ += done / 4 * 3;
    }
#endif
    while (n - i >= 4 && Quad(p + i)) i += 4;
    // Fewer than four characters of the alphabet are left before the stop.
    while (i < n && kBase64Value[static_cast<unsigned char>(p[i])] < 64)
      carry_[carried_++ & 3] = p[i++];  // carried_ < 4 here; the mask tells gcc -O3
    return i;
  }

  // `pad` (1 or 2) '=' characters end the body: "xx==" or "xxx=", with the
  // unused bits zero (canonical), so one text decodes one way. Returns
  // nullptr, or why the padding is refused.
  const char* Pad(size_t pad) {
    if (carried_ + pad != 4) return "bad base64 padding";
    uint32_t a = kBase64Value[static_cast<unsigned char>(carry_[0])];
    uint32_t b = kBase64Value[static_cast<unsigned char>(carry_[1])];
    uint32_t c = carried_ == 3 ? kBase64Value[static_cast<unsigned char>(carry_[2])] : 0;
    out_[size_++] = static_cast<uint8_t>(a << 2 | b >> 4);
    if (carried_ == 2) {
      if (b & 0x0f) return "non-canonical base64 padding";
    } else {
      if (c & 0x03) return "non-canonical base64 padding";
      out_[size_++] = static_cast<uint8_t>((b & 0x0f) << 4 | c >> 2);
    }
    carried_ = 0;
    return nullptr;
  }

  // At the END line. Returns nullptr, or why the body is refused.
  const char* Finish() const {
    if (carried_ != 0) return "base64 length is not a multiple of 4";
    if (size_ == 0) return "empty base64 body";
    return nullptr;
  }

  const uint8_t* data() const { return out_.data(); }
  size_t size() const { return size_; }

 private:
  // Four characters to three bytes; false, writing nothing, if one is
  // outside the alphabet.
  bool Quad(const char* q) {
    uint32_t a = kBase64Value[static_cast<unsigned char>(q[0])];
    uint32_t b = kBase64Value[static_cast<unsigned char>(q[1])];
    uint32_t c = kBase64Value[static_cast<unsigned char>(q[2])];
    uint32_t d = kBase64Value[static_cast<unsigned char>(q[3])];
    if ((a | b | c | d) & 0x80) return false;
    uint32_t v = a << 18 | b << 12 | c << 6 | d;
    out_[size_] = static_cast<uint8_t>(v >> 16);
    out_[size_ + 1] = static_cast<uint8_t>(v >> 8);
    out_[size_ + 2] = static_cast<uint8_t>(v);
    size_ += 3;
    return true;
  }

  // Uninitialised on purpose: only the decoded prefix is read. The slack
  // takes the SSSE3 stores' four extra bytes.
  std::array<uint8_t, kMaxCertDerBytes + 16> out_;
  size_t size_ = 0;
  char carry_[4] = {};
  size_t carried_ = 0;
};

// Reads the DER header at der[*pos] (*pos <= end): tag `tag`, definite length in
// minimal form (short, or 0x81/0x82 long form: the buffer is under 64 KiB),
// content inside [*pos, end). On success *pos is at the content and *len is
// its length.
bool DerHeader(const uint8_t* der, size_t end, uint8_t tag, size_t* pos, size_t* len) {
  size_t p = *pos;
  if (end - p < 2 || der[p] != tag) return false;
  size_t n = der[p + 1];
  p += 2;
  if (n == 0x81) {
    if (end - p < 1 || der[p] < 0x80) return false;
    n = der[p];
    p += 1;
  } else if (n == 0x82) {
    if (end - p < 2 || der[p] == 0) return false;
    n = size_t{der[p]} << 8 | der[p + 1];
    p += 2;
  } else if (n >= 0x80) {
    return false;  // indefinite length, or longer than the buffer can be
  }
  if (n > end - p) return false;
  *pos = p;
  *len = n;
  return true;
}

// The framing of an X.509 Certificate (RFC 5280 4.1): SEQUENCE {
// tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE, signatureValue
// BIT STRING } covering exactly `size` bytes. The contents are not parsed:
// the thumbprint binds these bytes whatever they say, and the TLS stack
// (or the proxy) has already validated the certificate.
const char* CheckCertificateDer(const uint8_t* der, size_t size) {
  size_t pos = 0, len = 0;
  if (!DerHeader(der, size, 0x30, &pos, &len) || pos + len != size) {
    return "DER is not one SEQUENCE covering the whole body";
  }
  if (!DerHeader(der, size, 0x30, &pos, &len)) return "DER has no tbsCertificate SEQUENCE";
  pos += len;
  if (!DerHeader(der, size, 0x30, &pos, &len)) return "DER has no signatureAlgorithm SEQUENCE";
  pos += len;
  if (!DerHeader(der, size, 0x03, &pos, &len) || len == 0 || der[pos] > 7) {
    return "DER has no signatureValue BIT STRING";
  }
  if (pos + len != size) return "DER has bytes after the signatureValue";
  return nullptr;
}

// SHA-256 into `digest` (32 bytes). The algorithm is fetched once and the
// context kept per thread: with EVP_sha256() EVP_Digest looks the
// implementation up in the provider store and allocates a context on every
// call, which together cost a third of hashing a small certificate.
bool DigestSha256(const uint8_t* data, size_t size, unsigned char* digest) {
  static EVP_MD* const fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  const EVP_MD* md = fetched != nullptr ? fetched : EVP_sha256();
  thread_local std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(),
                                                                           &EVP_MD_CTX_free);
  unsigned int len = 0;
  bool ok = ctx != nullptr ? EVP_DigestInit_ex2(ctx.get(), md, nullptr) == 1 &&
                                 EVP_DigestUpdate(ctx.get(), data, size) == 1 &&
                                 EVP_DigestFinal_ex(ctx.get(), digest, &len) == 1
                           : EVP_Digest(data, size, digest, &len, md, nullptr) == 1;
  if (!ok || len != 32) {
    ERR_clear_error();
    return false;
  }
  return true;
}

// base64url without padding of a SHA-256 digest: 43 characters.
std::string Base64Url32(const unsigned char* d) {
  static constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out(43, '\0');
  char* w = out.data();
  size_t i = 0;
  for (; i + 3 <= 32; i += 3) {
    uint32_t v = uint32_t{d[i]} << 16 | uint32_t{d[i + 1]} << 8 | d[i + 2];
    *w++ = kUrl[v >> 18 & 63];
    *w++ = kUrl[v >> 12 & 63];
    *w++ = kUrl[v >> 6 & 63];
    *w++ = kUrl[v & 63];
  }
  uint32_t v = uint32_t{d[30]} << 16 | uint32_t{d[31]} << 8;  // the last two bytes
  *w++ = kUrl[v >> 18 & 63];
  *w++ = kUrl[v >> 12 & 63];
  *w++ = kUrl[v >> 6 & 63];
  return out;
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
  if (pem.size() > kMaxCertPemBytes) {
    return BadCert("PEM longer than " + std::to_string(kMaxCertPemBytes) + " bytes");
  }
  if (!pem.starts_with(kPemBegin)) return BadCert("no `-----BEGIN CERTIFICATE-----` line");
  const size_t n = pem.size();
  size_t pos = kPemBegin.size();
  // Skips a line break ("\n" or "\r\n") at pos, if there is one.
  auto line_break = [&] {
    size_t k = pos < n && pem[pos] == '\r' ? pos + 1 : pos;
    if (k >= n || pem[k] != '\n') return false;
    pos = k + 1;
    return true;
  };
  if (!line_break()) return BadCert("text after the BEGIN line");

  // The body: runs of the alphabet, each stopped by a line break, by the
  // padding, or by the END line at the start of a line.
  PemBodyDecoder body;
  bool line_start = true;
  for (;;) {
    size_t run = body.Run(pem.data() + pos, n - pos);
    pos += run;
    if (run > 0) line_start = false;
    if (pos == n) return BadCert("no `-----END CERTIFICATE-----` line");
    if (pem[pos] == '-' && line_start) break;
    if (line_break()) {
      if (line_start) return BadCert("empty line in the base64 body");
      line_start = true;
      continue;
    }
    if (pem[pos] != '=') return BadCert("character outside the base64 alphabet");
    size_t pad = 1;
    if (pos + 1 < n && pem[pos + 1] == '=') pad = 2;
    if (const char* why = body.Pad(pad)) return BadCert(why);
    pos += pad;
    if (pos == n) return BadCert("no `-----END CERTIFICATE-----` line");
    if (!line_break()) return BadCert("text after the base64 padding");
    if (pos == n) return BadCert("no `-----END CERTIFICATE-----` line");
    if (pem[pos] != '-') return BadCert("base64 after the padding");
    break;
  }
  // The END line, then a line break or the end of the input. Anything after
  // it (a chain's next certificate) is not read.
  if (pem.substr(pos, kPemEnd.size()) != kPemEnd) {
    return BadCert("expected the line `-----END CERTIFICATE-----`");
  }
  pos += kPemEnd.size();
  if (pos != n && !line_break()) return BadCert("expected the line `-----END CERTIFICATE-----`");
  if (const char* why = body.Finish()) return BadCert(why);
  if (const char* why = CheckCertificateDer(body.data(), body.size())) return BadCert(why);

  unsigned char digest[EVP_MAX_MD_SIZE];
  if (!DigestSha256(body.data(), body.size(), digest)) return Internal("SHA-256 failed");
  return Base64Url32(digest);
}

Result<std::string> UnescapeProxyCertificate(std::string_view escaped) {
  if (escaped.size() > kMaxEscapedCertBytes) {
    return InvalidArgument("escaped client certificate longer than " +
                           std::to_string(kMaxEscapedCertBytes) + " bytes");
  }
  // The result is never longer than the input: sized once (bounded by
  // kMaxCertPemBytes), written in place, trimmed at the end. On x86-64
  // (SSE2 is part of the base ISA) runs without '%' or NUL are copied 16
  // bytes at a time; the escape or the NUL that ends a run is judged below.
  std::string out(std::min(escaped.size(), kMaxCertPemBytes), '\0');
  const char* in = escaped.data();
  const size_t n = escaped.size();
  char* w = out.data();
  char* const limit = w + out.size();
  size_t i = 0;
  while (i < n) {
#ifdef __SSE2__
    if (n - i >= 16 && limit - w >= 16) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
      int stops = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('%')),
                                                 _mm_cmpeq_epi8(v, _mm_setzero_si128())));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(w), v);
      if (stops == 0) {
        w += 16;
        i += 16;
        continue;
      }
      int k = __builtin_ctz(static_cast<unsigned>(stops));
      w += k;
      i += static_cast<size_t>(k);
    }
#endif
    int c = static_cast<unsigned char>(in[i]);
    if (c == '%') {
      c = DecodeEscape(escaped, i);
      if (c < 0) return BadEscapedCert("invalid percent escape at offset " + std::to_string(i));
      i += 3;
    } else {
      ++i;
    }
    if (c == 0) return BadEscapedCert("NUL byte");
    if (w == limit) {
      return BadEscapedCert("PEM longer than " + std::to_string(kMaxCertPemBytes) + " bytes");
    }
    *w++ = static_cast<char>(c);
  }
  out.resize(static_cast<size_t>(w - out.data()));
  return out;
}

}  // namespace vakt::bytecode
