// Tests of request normalisation (bytecode/request.h): every rule and every
// refusal branch, the limits, UTF-8 validation, capacity reuse and the
// client-certificate thumbprint.
#include "bytecode/request.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cctype>
#include <cstdio>
#include <string>
#include <vector>

namespace vakt::bytecode {
namespace {

struct Normalized {
  TargetError error;
  NormalizedRequest norm;
};

Normalized Norm(std::string_view target, std::string_view method = "GET",
                std::span<const HeaderField> headers = {}) {
  HttpRequest req;
  req.method = method;
  req.target = target;
  req.headers = headers;
  Normalized n;
  n.error = Normalize(req, n.norm);
  return n;
}

std::string PathOf(std::string_view target) {
  Normalized n = Norm(target);
  EXPECT_EQ(n.error, TargetError::kNone) << target << ": " << n.norm.error_detail;
  return n.norm.path;
}

void ExpectRefused(std::string_view target, TargetError want, std::string_view detail) {
  Normalized n = Norm(target);
  EXPECT_EQ(n.error, want) << target;
  EXPECT_EQ(std::string_view(n.norm.error_detail), detail) << target;
}

std::vector<std::string> Segments(std::string_view target) {
  Normalized n = Norm(target);
  EXPECT_EQ(n.error, TargetError::kNone) << n.norm.error_detail;
  return {n.norm.segments.begin(), n.norm.segments.end()};
}

TEST(Normalize, RootAndSimple) {
  EXPECT_EQ(PathOf("/"), "/");
  EXPECT_EQ(PathOf("/a/b"), "/a/b");
  EXPECT_TRUE(Segments("/").empty());
  EXPECT_EQ(Segments("/v1/patients/p-1"), (std::vector<std::string>{"v1", "patients", "p-1"}));
}

TEST(Normalize, DuplicateAndTrailingSlashes) {
  EXPECT_EQ(PathOf("//a///b/"), "/a/b");
  EXPECT_EQ(PathOf("/a/"), "/a");
  EXPECT_EQ(PathOf("////"), "/");
  EXPECT_EQ(Segments("//a///b/"), (std::vector<std::string>{"a", "b"}));
}

TEST(Normalize, PercentDecoding) {
  EXPECT_EQ(PathOf("/a%20b/%41"), "/a b/A");
  EXPECT_EQ(PathOf("/caf%C3%A9"), "/caf\xC3\xA9");
  EXPECT_EQ(PathOf("/%7e%7E"), "/~~");
  EXPECT_EQ(Segments("/x%25y"), (std::vector<std::string>{"x%y"}));
}

TEST(Normalize, DotSegmentsRefused) {
  ExpectRefused("/a/./b", TargetError::kMalformed, "dot segment in path");
  ExpectRefused("/a/../b", TargetError::kMalformed, "dot segment in path");
  ExpectRefused("/..", TargetError::kMalformed, "dot segment in path");
  ExpectRefused("/a/%2e", TargetError::kMalformed, "dot segment in path");
  ExpectRefused("/a/%2E%2e/b", TargetError::kMalformed, "dot segment in path");
  ExpectRefused("/a/.%2E", TargetError::kMalformed, "dot segment in path");
  // Dots inside a segment, or leading it, are ordinary characters (a
  // trailing one is not: BackendAmbiguousSegmentsRefused).
  EXPECT_EQ(PathOf("/a/..x/b.json/.x/a..b"), "/a/..x/b.json/.x/a..b");
}

TEST(Normalize, EncodedSeparatorsAndControlsRefused) {
  ExpectRefused("/a%2Fb", TargetError::kMalformed, "encoded slash in path");
  ExpectRefused("/a%2fb", TargetError::kMalformed, "encoded slash in path");
  ExpectRefused("/a%5Cb", TargetError::kMalformed, "encoded backslash in path");
  ExpectRefused("/a%5cb", TargetError::kMalformed, "encoded backslash in path");
  ExpectRefused("/a%00b", TargetError::kMalformed, "encoded NUL in path");
  ExpectRefused("/a%0Ab", TargetError::kMalformed, "encoded control byte in path");
  ExpectRefused("/a%7Fb", TargetError::kMalformed, "encoded control byte in path");
  ExpectRefused("/a\\b", TargetError::kMalformed, "backslash in path");
  ExpectRefused(std::string_view("/a\0b", 4), TargetError::kMalformed, "control byte in path");
  ExpectRefused("/a\tb", TargetError::kMalformed, "control byte in path");
}

// Segments a backend would read differently: path parameters after ';'
// (Tomcat, Jetty) and trailing dots or spaces (IIS, Windows).
TEST(Normalize, BackendAmbiguousSegmentsRefused) {
  ExpectRefused("/admin;x", TargetError::kMalformed, "semicolon in path segment");
  ExpectRefused("/a/..;/admin", TargetError::kMalformed, "semicolon in path segment");
  ExpectRefused("/a/;", TargetError::kMalformed, "semicolon in path segment");
  ExpectRefused("/a%3Bb", TargetError::kMalformed, "semicolon in path segment");
  ExpectRefused("/admin.", TargetError::kMalformed, "path segment ends in a dot or space");
  ExpectRefused("/admin%2E", TargetError::kMalformed, "path segment ends in a dot or space");
  ExpectRefused("/a.../b", TargetError::kMalformed, "path segment ends in a dot or space");
  ExpectRefused("/admin%20", TargetError::kMalformed, "path segment ends in a dot or space");
  // Dots and spaces inside a segment, and a leading dot, are data.
  EXPECT_EQ(PathOf("/a.json/.well-known/b%20c"), "/a.json/.well-known/b c");
}

TEST(Normalize, BadEscapesRefused) {
  ExpectRefused("/a%zz", TargetError::kMalformed, "invalid percent escape in path");
  ExpectRefused("/a%4", TargetError::kMalformed, "invalid percent escape in path");
  ExpectRefused("/a%", TargetError::kMalformed, "invalid percent escape in path");
  ExpectRefused("/%", TargetError::kMalformed, "invalid percent escape in path");
  ExpectRefused("/a%g1/b", TargetError::kMalformed, "invalid percent escape in path");
  ExpectRefused("/a%/b", TargetError::kMalformed, "invalid percent escape in path");
}

TEST(Normalize, Utf8) {
  ExpectRefused("/a%FFb", TargetError::kMalformed, "path is not valid UTF-8");
  ExpectRefused("/a\xFF", TargetError::kMalformed, "path is not valid UTF-8");
  ExpectRefused("/%C0%AF", TargetError::kMalformed, "path is not valid UTF-8");     // overlong '/'
  ExpectRefused("/%E0%80%AF", TargetError::kMalformed, "path is not valid UTF-8");  // overlong
  ExpectRefused("/%ED%A0%80", TargetError::kMalformed, "path is not valid UTF-8");  // surrogate
  ExpectRefused("/%F4%90%80%80", TargetError::kMalformed, "path is not valid UTF-8");  // > U+10FFFF
  ExpectRefused("/%C3", TargetError::kMalformed, "path is not valid UTF-8");           // truncated
  // A sequence split across segments is invalid in both.
  ExpectRefused("/%C3/%A9", TargetError::kMalformed, "path is not valid UTF-8");
  EXPECT_EQ(PathOf("/%F0%9F%98%80"), "/\xF0\x9F\x98\x80");
}

TEST(Normalize, TargetForms) {
  ExpectRefused("*", TargetError::kMalformed, "asterisk-form target refused");
  ExpectRefused("http://example.com/a", TargetError::kMalformed,
                "request target is not origin-form");
  ExpectRefused("example.com:443", TargetError::kMalformed, "request target is not origin-form");
  ExpectRefused("", TargetError::kMalformed, "empty request target");
  ExpectRefused("/a#frag", TargetError::kMalformed, "fragment in request target");
  ExpectRefused("/a?x=1#frag", TargetError::kMalformed, "fragment in request target");
}

TEST(Normalize, Limits) {
  std::string long_target = "/" + std::string(kMaxTargetBytes, 'a');
  ExpectRefused(long_target, TargetError::kTooLong, "request target too long");
  std::string max_target = "/" + std::string(kMaxTargetBytes - 1, 'a');
  EXPECT_EQ(Norm(max_target).error, TargetError::kNone);

  std::string many;
  for (size_t i = 0; i < kMaxSegments; ++i) many += "/s";
  EXPECT_EQ(Norm(many).error, TargetError::kNone);
  EXPECT_EQ(Norm(many).norm.segments.size(), kMaxSegments);
  many += "/s";
  ExpectRefused(many, TargetError::kTooLong, "too many path segments");
  // Empty segments do not count.
  std::string slashes(kMaxTargetBytes - 2, '/');
  EXPECT_EQ(PathOf(slashes + "a"), "/a");
}

TEST(Normalize, Query) {
  Normalized n = Norm("/p?a=1&b=x+y&a=2&flag&e=&%41=%42%20c&&c=d=e");
  ASSERT_EQ(n.error, TargetError::kNone) << n.norm.error_detail;
  EXPECT_EQ(n.norm.raw_query, "a=1&b=x+y&a=2&flag&e=&%41=%42%20c&&c=d=e");
  using P = std::pair<std::string_view, std::string_view>;
  std::vector<P> want = {{"a", "1"}, {"b", "x y"}, {"a", "2"},  {"flag", ""},
                         {"e", ""},  {"A", "B c"}, {"c", "d=e"}};
  EXPECT_EQ(n.norm.query, want);
  EXPECT_EQ(n.norm.path, "/p");

  Normalized empty = Norm("/p?");
  ASSERT_EQ(empty.error, TargetError::kNone);
  EXPECT_TRUE(empty.norm.query.empty());
  EXPECT_EQ(empty.norm.raw_query, "");

  // Only the first '?' splits; '/' and '?' in the query are data.
  Normalized q = Norm("/p?next=/a/b?c");
  ASSERT_EQ(q.error, TargetError::kNone);
  EXPECT_EQ(q.norm.query, (std::vector<P>{{"next", "/a/b?c"}}));
  // An encoded slash in the query is fine.
  Normalized s = Norm("/p?u=a%2Fb");
  ASSERT_EQ(s.error, TargetError::kNone);
  EXPECT_EQ(s.norm.query[0].second, "a/b");
}

TEST(Normalize, QueryRefusals) {
  ExpectRefused("/p?a=%zz", TargetError::kMalformed, "invalid percent escape in query");
  ExpectRefused("/p?a%=1", TargetError::kMalformed, "invalid percent escape in query");
  ExpectRefused("/p?a=%4", TargetError::kMalformed, "invalid percent escape in query");
  ExpectRefused("/p?a=%FF", TargetError::kMalformed, "query is not valid UTF-8");
  ExpectRefused("/p?%C0%80=1", TargetError::kMalformed, "query is not valid UTF-8");
  ExpectRefused("/p?a=%00", TargetError::kMalformed, "control byte in query");
  ExpectRefused("/p?a%0A=1", TargetError::kMalformed, "control byte in query");
  ExpectRefused("/p?a=x%7F", TargetError::kMalformed, "control byte in query");
  ExpectRefused("/p?a=1;a=2", TargetError::kMalformed, "semicolon in query");
  ExpectRefused("/p?a;b", TargetError::kMalformed, "semicolon in query");
  // An encoded ';' is data.
  EXPECT_EQ(Norm("/p?a=1%3B2").norm.query[0].second, "1;2");
  std::string many = "/p?";
  for (size_t i = 0; i <= kMaxQueryParams; ++i) many += "a&";
  ExpectRefused(many, TargetError::kTooLong, "too many query parameters");
}

TEST(Normalize, Method) {
  EXPECT_EQ(Norm("/", "GET").error, TargetError::kNone);
  EXPECT_EQ(Norm("/", "M-SEARCH").error, TargetError::kNone);
  EXPECT_EQ(Norm("/", "get").error, TargetError::kNone);  // case is the router's business
  Normalized e = Norm("/", "");
  EXPECT_EQ(e.error, TargetError::kMalformed);
  EXPECT_STREQ(e.norm.error_detail, "empty method");
  Normalized l = Norm("/", std::string(kMaxMethodBytes + 1, 'A'));
  EXPECT_EQ(l.error, TargetError::kMalformed);
  EXPECT_STREQ(l.norm.error_detail, "method too long");
  EXPECT_EQ(Norm("/", std::string(kMaxMethodBytes, 'A')).error, TargetError::kNone);
  for (std::string_view bad : {"G ET", "GET\r\n", "GE/T", "(GET)", "G\"T", "G\xC3\xA9T"}) {
    Normalized n = Norm("/", bad);
    EXPECT_EQ(n.error, TargetError::kMalformed) << bad;
    EXPECT_STREQ(n.norm.error_detail, "invalid character in method");
  }
}

TEST(Normalize, HeadersLowerCased) {
  std::vector<HeaderField> h = {{"Content-Type", "application/JSON"},
                                {"X-FAPI-Interaction-ID", "abc"},
                                {"x-fapi-interaction-id", "def"}};
  Normalized n = Norm("/", "GET", h);
  ASSERT_EQ(n.error, TargetError::kNone);
  ASSERT_EQ(n.norm.headers.size(), 3u);
  EXPECT_EQ(n.norm.headers[0].first, "content-type");
  EXPECT_EQ(n.norm.headers[0].second, "application/JSON");  // values untouched
  EXPECT_EQ(n.norm.headers[1].first, "x-fapi-interaction-id");
  EXPECT_EQ(n.norm.headers[2].first, "x-fapi-interaction-id");
  EXPECT_EQ(n.norm.headers[2].second, "def");
}

TEST(Normalize, HeaderLimits) {
  std::vector<HeaderField> many(kMaxHeaders + 1, HeaderField{"a", "b"});
  Normalized n = Norm("/", "GET", many);
  EXPECT_EQ(n.error, TargetError::kHeadersTooBig);
  EXPECT_STREQ(n.norm.error_detail, "too many headers");
  many.pop_back();
  EXPECT_EQ(Norm("/", "GET", many).error, TargetError::kNone);

  std::string big(kMaxHeaderBytes - 1, 'v');
  std::vector<HeaderField> fits = {{"a", big}};
  EXPECT_EQ(Norm("/", "GET", fits).error, TargetError::kNone);
  std::vector<HeaderField> over = {{"ab", big}};
  Normalized o = Norm("/", "GET", over);
  EXPECT_EQ(o.error, TargetError::kHeadersTooBig);
  EXPECT_STREQ(o.norm.error_detail, "headers too large");
}

TEST(Normalize, ErrorOrder) {
  // A bad method is reported before a long target; a long target before
  // bad headers.
  std::string long_target = "/" + std::string(kMaxTargetBytes, 'a');
  std::vector<HeaderField> many(kMaxHeaders + 1, HeaderField{"a", "b"});
  EXPECT_EQ(Norm(long_target, "", many).error, TargetError::kMalformed);
  EXPECT_EQ(Norm(long_target, "GET", many).error, TargetError::kTooLong);
  EXPECT_EQ(Norm("/", "GET", many).error, TargetError::kHeadersTooBig);
}

TEST(Normalize, ReuseClearsAndKeepsCapacity) {
  NormalizedRequest out;
  std::vector<HeaderField> h = {{"Authorization", "Bearer x"}, {"X-A", "1"}};
  std::vector<HeaderField> h2 = {{"X-B", "2"}, {"AUTHORIZATION", "Bearer y"}};
  HttpRequest a{"GET", "/v1/accounts/a-1/transactions?from=1&to=2", h, "", {}, 0};
  HttpRequest b{"POST", "/v1/accounts/b-2/transactions?from=3&to=4", h2, "", {}, 0};
  ASSERT_EQ(Normalize(a, out), TargetError::kNone);
  const char* path = out.path.data();
  const auto* segs = out.segments.data();
  const char* qs = out.query_storage.data();
  const auto* q = out.query.data();
  const char* hs = out.header_storage.data();
  const auto* hv = out.headers.data();
  ASSERT_EQ(Normalize(b, out), TargetError::kNone);
  EXPECT_EQ(out.path.data(), path);
  EXPECT_EQ(out.segments.data(), segs);
  EXPECT_EQ(out.query_storage.data(), qs);
  EXPECT_EQ(out.query.data(), q);
  EXPECT_EQ(out.header_storage.data(), hs);
  EXPECT_EQ(out.headers.data(), hv);
  // And the content is the second request's, with no leftovers.
  EXPECT_EQ(out.path, "/v1/accounts/b-2/transactions");
  ASSERT_EQ(out.segments.size(), 4u);
  EXPECT_EQ(out.segments[2], "b-2");
  ASSERT_EQ(out.query.size(), 2u);
  EXPECT_EQ(out.query[0].second, "3");
  ASSERT_EQ(out.headers.size(), 2u);
  EXPECT_EQ(out.headers[1].first, "authorization");
  EXPECT_EQ(out.headers[1].second, "Bearer y");

  // A refusal after a success leaves no stale state behind.
  HttpRequest bad{"GET", "/a/../b", {}, "", {}, 0};
  EXPECT_EQ(Normalize(bad, out), TargetError::kMalformed);
  HttpRequest ok{"GET", "/x", {}, "", {}, 0};
  ASSERT_EQ(Normalize(ok, out), TargetError::kNone);
  EXPECT_EQ(out.path, "/x");
  EXPECT_TRUE(out.query.empty());
  EXPECT_TRUE(out.headers.empty());
  EXPECT_EQ(out.raw_query, "");
  EXPECT_STREQ(out.error_detail, "");
}

TEST(Normalize, ViewsPointIntoStorage) {
  Normalized n = Norm("/%61%62/c?k=v");
  ASSERT_EQ(n.error, TargetError::kNone);
  const std::string& p = n.norm.path;
  for (std::string_view s : n.norm.segments) {
    EXPECT_GE(s.data(), p.data());
    EXPECT_LE(s.data() + s.size(), p.data() + p.size());
  }
  const std::string& qs = n.norm.query_storage;
  EXPECT_GE(n.norm.query[0].first.data(), qs.data());
  EXPECT_LE(n.norm.query[0].second.data() + n.norm.query[0].second.size(), qs.data() + qs.size());
}

TEST(Utf8, Validation) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain ascii"));
  EXPECT_TRUE(IsValidUtf8("\xC2\x80"));          // U+0080
  EXPECT_TRUE(IsValidUtf8("\xDF\xBF"));          // U+07FF
  EXPECT_TRUE(IsValidUtf8("\xE0\xA0\x80"));      // U+0800
  EXPECT_TRUE(IsValidUtf8("\xED\x9F\xBF"));      // U+D7FF
  EXPECT_TRUE(IsValidUtf8("\xEE\x80\x80"));      // U+E000
  EXPECT_TRUE(IsValidUtf8("\xEF\xBF\xBF"));      // U+FFFF
  EXPECT_TRUE(IsValidUtf8("\xF0\x90\x80\x80"));  // U+10000
  EXPECT_TRUE(IsValidUtf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  EXPECT_TRUE(IsValidUtf8(std::string_view("\0", 1)));

  EXPECT_FALSE(IsValidUtf8("\x80"));              // lone continuation
  EXPECT_FALSE(IsValidUtf8("\xC0\x80"));          // overlong NUL
  EXPECT_FALSE(IsValidUtf8("\xC1\xBF"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xE0\x9F\xBF"));      // overlong 3-byte
  EXPECT_FALSE(IsValidUtf8("\xF0\x8F\xBF\xBF"));  // overlong 4-byte
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // U+D800
  EXPECT_FALSE(IsValidUtf8("\xED\xBF\xBF"));      // U+DFFF
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // U+110000
  EXPECT_FALSE(IsValidUtf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(IsValidUtf8("\xFF"));
  EXPECT_FALSE(IsValidUtf8("\xC3"));            // truncated
  EXPECT_FALSE(IsValidUtf8("\xE2\x82"));        // truncated
  EXPECT_FALSE(IsValidUtf8("\xC3\x28"));        // bad continuation
  EXPECT_FALSE(IsValidUtf8("ok\xF0\x9F\x98"));  // truncated at the end
}

// A self-signed certificate made with OpenSSL for the test, so the
// expected thumbprint can be computed independently (SHA-256 of i2d).
std::string MakeCertPem(std::string* expected_thumbprint) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("client"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, key);
  X509_sign(x, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  unsigned char* der = nullptr;
  int der_len = i2d_X509(x, &der);
  unsigned char md[32];
  unsigned int md_len = 0;
  EVP_Digest(der, static_cast<size_t>(der_len), md, &md_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  // base64url without padding, via the standard encoder.
  unsigned char b64[64];
  int n = EVP_EncodeBlock(b64, md, 32);
  std::string t(reinterpret_cast<char*>(b64), static_cast<size_t>(n));
  for (char& c : t) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  while (!t.empty() && t.back() == '=') t.pop_back();
  *expected_thumbprint = t;
  BIO_free(bio);
  X509_free(x);
  EVP_PKEY_free(key);
  return pem;
}

TEST(CertThumbprint, MatchesSha256OfDer) {
  std::string expected;
  std::string pem = MakeCertPem(&expected);
  auto t = CertThumbprint(pem);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(*t, expected);
  EXPECT_EQ(t->size(), 43u);
  EXPECT_EQ(t->find_first_of("+/="), std::string::npos);
}

TEST(CertThumbprint, Errors) {
  EXPECT_FALSE(CertThumbprint("").ok());
  EXPECT_FALSE(CertThumbprint("not a certificate").ok());
  EXPECT_FALSE(
      CertThumbprint("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").ok());
  auto r = CertThumbprint("junk");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

// ---- The strict PEM reader behind CertThumbprint ----
//
// Certificates of both key types FAPI clients use, made here with OpenSSL;
// the expected thumbprint is computed independently by OpenSSL's own PEM
// and DER code (PEM_read_bio_X509 + i2d_X509 + SHA-256).

std::string SelfSignedPem(EVP_PKEY* key, long serial) {
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("client.example"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, key);
  EXPECT_GT(X509_sign(x, key, EVP_sha256()), 0);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  X509_free(x);
  return pem;
}

// The independent oracle: OpenSSL parses the PEM, re-encodes the DER, and
// the digest is base64url-encoded with EVP_EncodeBlock. "" if OpenSSL
// refuses the PEM.
std::string OpenSslThumbprint(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (x == nullptr) return "";
  unsigned char* der = nullptr;
  int der_len = i2d_X509(x, &der);
  X509_free(x);
  unsigned char md[32];
  unsigned int md_len = 0;
  EVP_Digest(der, static_cast<size_t>(der_len), md, &md_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  unsigned char b64[64];
  int n = EVP_EncodeBlock(b64, md, 32);
  std::string t(reinterpret_cast<char*>(b64), static_cast<size_t>(n));
  for (char& c : t) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!t.empty() && t.back() == '=') t.pop_back();
  return t;
}

// The DER inside a PEM certificate, through OpenSSL.
std::string DerOf(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  unsigned char* der = nullptr;
  int der_len = i2d_X509(x, &der);
  X509_free(x);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(der_len));
  OPENSSL_free(der);
  return out;
}

// Any bytes as a PEM block with `label`, base64 lines of `width` characters.
std::string ToPem(std::string_view der, std::string_view label = "CERTIFICATE", size_t width = 64) {
  std::string b64(4 * ((der.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                          reinterpret_cast<const unsigned char*>(der.data()),
                          static_cast<int>(der.size()));
  b64.resize(static_cast<size_t>(n));
  std::string pem = "-----BEGIN " + std::string(label) + "-----\n";
  for (size_t i = 0; i < b64.size(); i += width) pem += b64.substr(i, width) + "\n";
  return pem + "-----END " + std::string(label) + "-----\n";
}

std::string Replace(std::string s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
  }
  return s;
}

class CertPem : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EVP_PKEY* rsa = EVP_RSA_gen(2048);
    EVP_PKEY* ec = EVP_EC_gen("P-256");
    ASSERT_NE(rsa, nullptr);
    ASSERT_NE(ec, nullptr);
    rsa_pem_ = new std::string(SelfSignedPem(rsa, 1));
    ec_pem_ = new std::string(SelfSignedPem(ec, 2));
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
  }
  static void TearDownTestSuite() {
    delete rsa_pem_;
    delete ec_pem_;
  }
  // Expects CertThumbprint(pem) to succeed with OpenSSL's thumbprint of `of`.
  static void ExpectThumbprint(std::string_view pem, std::string_view of) {
    std::string want = OpenSslThumbprint(of);
    ASSERT_EQ(want.size(), 43u);
    auto got = CertThumbprint(pem);
    ASSERT_TRUE(got.ok()) << got.status().ToString() << "\n" << pem;
    EXPECT_EQ(*got, want);
  }
  // Expects a refusal whose message contains `why`.
  static void ExpectRefused(std::string_view pem, std::string_view why) {
    auto got = CertThumbprint(pem);
    ASSERT_FALSE(got.ok()) << pem;
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(got.status().message().find(why), std::string::npos) << got.status().message();
  }
  static std::string* rsa_pem_;
  static std::string* ec_pem_;
};
std::string* CertPem::rsa_pem_ = nullptr;
std::string* CertPem::ec_pem_ = nullptr;

TEST_F(CertPem, RsaAndEcCertificates) {
  ExpectThumbprint(*rsa_pem_, *rsa_pem_);
  ExpectThumbprint(*ec_pem_, *ec_pem_);
  EXPECT_NE(*CertThumbprint(*rsa_pem_), *CertThumbprint(*ec_pem_));
}

TEST_F(CertPem, LineEndings) {
  for (const std::string* pem : {rsa_pem_, ec_pem_}) {
    ASSERT_EQ(pem->back(), '\n');
    ExpectThumbprint(pem->substr(0, pem->size() - 1), *pem);  // no final newline
    ExpectThumbprint(Replace(*pem, "\n", "\r\n"), *pem);      // CRLF
    std::string crlf = Replace(*pem, "\n", "\r\n");
    ExpectThumbprint(crlf.substr(0, crlf.size() - 2), *pem);  // CRLF, no final one
    // CRLF and LF mixed, line by line.
    std::string mixed = *pem;
    mixed.replace(mixed.find('\n'), 1, "\r\n");
    ExpectThumbprint(mixed, *pem);
  }
}

TEST_F(CertPem, AnyLineWidth) {
  // Groups of four characters may straddle lines (76 is MIME's width).
  std::string der = DerOf(*rsa_pem_);
  for (size_t width : {1u, 2u, 3u, 5u, 7u, 63u, 64u, 76u, 4096u}) {
    SCOPED_TRACE(width);
    ExpectThumbprint(ToPem(der, "CERTIFICATE", width), *rsa_pem_);
  }
}

TEST_F(CertPem, PaddingOfEveryLength) {
  // DER of length 0, 1 and 2 mod 3: no padding, "==" and "=". The body is
  // a Certificate's framing with a BIT STRING of growing length.
  for (size_t extra = 0; extra < 3; ++extra) {
    std::string sig = std::string(1, '\0') + std::string(1 + extra, 'S');
    std::string inner =
        std::string("\x30\x00\x30\x00\x03", 5) + static_cast<char>(sig.size()) + sig;
    std::string der = "\x30" + std::string(1, static_cast<char>(inner.size())) + inner;
    SCOPED_TRACE(der.size());
    auto got = CertThumbprint(ToPem(der));
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->size(), 43u);
  }
}

TEST_F(CertPem, FirstOfTwoCertificates) {
  ExpectThumbprint(*ec_pem_ + *rsa_pem_, *ec_pem_);
  ExpectThumbprint(*rsa_pem_ + *ec_pem_, *rsa_pem_);
  ExpectThumbprint(*rsa_pem_ + "trailing text is not read", *rsa_pem_);
}

TEST_F(CertPem, Garbage) {
  ExpectRefused("", "BEGIN CERTIFICATE");
  ExpectRefused("not a certificate", "BEGIN CERTIFICATE");
  ExpectRefused(std::string("\x30\x82\x01\x00\xff\x00", 6), "BEGIN CERTIFICATE");
  ExpectRefused(DerOf(*ec_pem_), "BEGIN CERTIFICATE");  // DER, not PEM
  ExpectRefused(" " + *ec_pem_, "BEGIN CERTIFICATE");   // nothing before the BEGIN line
  ExpectRefused("explanatory text\n" + *ec_pem_, "BEGIN CERTIFICATE");
  ExpectRefused("-----BEGIN CERTIFICATE-----", "text after the BEGIN line");
  ExpectRefused("-----BEGIN CERTIFICATE-----x\n", "text after the BEGIN line");
  ExpectRefused("-----BEGIN CERTIFICATE-----\n", "END CERTIFICATE");
  ExpectRefused("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", "empty base64 body");
  // No END line, or a broken one.
  ExpectRefused(ec_pem_->substr(0, ec_pem_->find("-----END")), "END CERTIFICATE");
  ExpectRefused(ec_pem_->substr(0, ec_pem_->find("-----END") - 1), "END CERTIFICATE");
  ExpectRefused(Replace(*ec_pem_, "-----END CERTIFICATE-----", "-----END CERTIFICATE----- x"),
                "END CERTIFICATE");
  ExpectRefused(ec_pem_->substr(0, ec_pem_->size() - 1) + "\r", "END CERTIFICATE");
}

TEST_F(CertPem, WrongLabel) {
  std::string der = DerOf(*ec_pem_);
  ExpectRefused(ToPem(der, "PRIVATE KEY"), "BEGIN CERTIFICATE");
  ExpectRefused(ToPem(der, "TRUSTED CERTIFICATE"), "BEGIN CERTIFICATE");
  ExpectRefused(ToPem(der, "X509 CRL"), "BEGIN CERTIFICATE");
  ExpectRefused(ToPem(der, "CERTIFICATE REQUEST"), "BEGIN CERTIFICATE");
  ExpectRefused(Replace(*ec_pem_, "-----BEGIN CERTIFICATE-----", "-----BEGIN certificate-----"),
                "BEGIN CERTIFICATE");
  ExpectRefused(Replace(*ec_pem_, "-----END CERTIFICATE-----", "-----END PRIVATE KEY-----"),
                "END CERTIFICATE");
}

TEST_F(CertPem, BadBase64) {
  std::string pem = *rsa_pem_;
  size_t body = pem.find('\n') + 1;
  auto with = [&](size_t at, std::string_view text) {
    std::string p = pem;
    p.replace(at, 1, text);
    return p;
  };
  ExpectRefused(with(body + 10, "*"), "base64 alphabet");
  ExpectRefused(with(body + 10, "-"), "base64 alphabet");  // base64url is not PEM's alphabet
  ExpectRefused(with(body + 10, "_"), "base64 alphabet");
  ExpectRefused(with(body + 10, " "), "base64 alphabet");
  ExpectRefused(with(body + 10, "\t"), "base64 alphabet");
  ExpectRefused(with(body + 10, "\r"), "base64 alphabet");  // a lone CR
  ExpectRefused(with(body + 10, std::string_view("\0", 1)), "base64 alphabet");
  ExpectRefused(with(body + 10, "\xc3"), "base64 alphabet");
  ExpectRefused(with(body + 8, "="), "padding");   // padding inside a line
  ExpectRefused(with(body + 63, "="), "padding");  // at the end of a line, not the last
  ExpectRefused(with(body + 64, "\n\n"), "empty line");
  ExpectRefused(with(body + 64, "\n \n"), "base64 alphabet");
  ExpectRefused(with(body + 64, "\n\r\n"), "empty line");
  ExpectRefused(with(body + 64, "\nQQ\n"), "base64");  // four characters too many or few

  // Padding: "xx==" and "xxx=" only, at the very end, with the unused bits
  // zero (canonical), and the length a multiple of four.
  std::string der10 = std::string("\x30\x08\x30\x00\x30\x00\x03\x02\x00\x01", 10);
  std::string p10 = ToPem(der10);  // "MAgwADAAAwIAAQ=="
  ASSERT_TRUE(CertThumbprint(p10).ok()) << p10;
  ExpectRefused(Replace(p10, "AQ==", "AR=="), "non-canonical");
  ExpectRefused(Replace(p10, "AQ==", "AQ="), "padding");
  ExpectRefused(Replace(p10, "AQ==", "AQ"), "multiple of 4");
  ExpectRefused(Replace(p10, "AQ==", "AQ==="), "padding");
  // A group may straddle a line break, its padding too.
  EXPECT_EQ(*CertThumbprint(Replace(p10, "AQ==", "AQ\n==")), *CertThumbprint(p10));
  std::string der11 = std::string("\x30\x09\x30\x00\x30\x00\x03\x03\x00\x01\x02", 11);
  std::string p11 = ToPem(der11);  // "MAkwADAAAwMAAQI="
  ASSERT_TRUE(CertThumbprint(p11).ok()) << p11;
  ExpectRefused(Replace(p11, "AQI=", "AQJ="), "non-canonical");
  ExpectRefused(Replace(p11, "AQI=", "AQI"), "multiple of 4");
  ExpectRefused(Replace(p11, "AQI=", "AQI=\nAAAA"), "after the padding");
}

TEST_F(CertPem, EveryPositionChecked) {
  // A byte just outside the alphabet's ranges, NUL, non-ASCII, the
  // base64url characters: refused wherever it stands in the body (the
  // vectorised blocks and the scalar tail alike).
  const std::string pem = *ec_pem_;
  size_t body = pem.find('\n') + 1;
  size_t end = pem.find("-----END");
  for (char bad : {'@', '[', '`', '{', '*', ',', '.', ':', '-', '_', ' ', '\0', '\x80', '\xff'}) {
    for (size_t at = body; at < end; ++at) {
      if (pem[at] == '\n' || pem[at] == '=') continue;
      std::string p = pem;
      p[at] = bad;
      ASSERT_FALSE(CertThumbprint(p).ok()) << "byte " << int(bad) << " at " << at;
    }
  }
}

TEST_F(CertPem, DerFraming) {
  std::string der = DerOf(*rsa_pem_);
  ASSERT_EQ(static_cast<unsigned char>(der[1]), 0x82);  // a two-byte long-form length
  // Truncated DER: the outer length no longer covers the bytes.
  for (size_t cut : {1u, 2u, 3u, 10u, 100u}) {
    ExpectRefused(ToPem(der.substr(0, der.size() - cut)), "SEQUENCE covering");
  }
  ExpectRefused(ToPem(der.substr(0, 2)), "SEQUENCE covering");
  ExpectRefused(ToPem(der.substr(0, 1)), "SEQUENCE covering");
  ExpectRefused(ToPem(der + std::string(1, '\0')), "SEQUENCE covering");  // a byte too many
  // Not a SEQUENCE, an indefinite or a non-minimal length.
  ExpectRefused(ToPem("\x31" + der.substr(1)), "SEQUENCE covering");
  ExpectRefused(ToPem(std::string("\x30\x80\x30\x00\x30\x00\x03\x01\x00\x00\x00", 11)),
                "SEQUENCE covering");
  ExpectRefused(ToPem(std::string("\x30\x81\x07\x30\x00\x30\x00\x03\x01\x00", 10)),
                "SEQUENCE covering");
  ExpectRefused(ToPem(std::string("\x30\x82\x00\x07\x30\x00\x30\x00\x03\x01\x00", 11)),
                "SEQUENCE covering");
  ExpectRefused(ToPem(std::string("\x30\x83\x00\x00\x07\x30\x00\x30\x00\x03\x01\x00", 12)),
                "SEQUENCE covering");
  // A SEQUENCE, but not of the three parts of a Certificate.
  ExpectRefused(ToPem(std::string("\x30\x03\x02\x01\x00", 5)), "tbsCertificate");
  ExpectRefused(ToPem(std::string("\x30\x04\x30\x00\x02\x00", 6)), "signatureAlgorithm");
  ExpectRefused(ToPem(std::string("\x30\x06\x30\x00\x30\x00\x04\x00", 8)), "BIT STRING");
  ExpectRefused(ToPem(std::string("\x30\x06\x30\x00\x30\x00\x03\x00", 8)), "BIT STRING");
  ExpectRefused(ToPem(std::string("\x30\x07\x30\x00\x30\x00\x03\x01\x08", 9)), "BIT STRING");
  ExpectRefused(ToPem(std::string("\x30\x09\x30\x00\x30\x00\x03\x01\x00\x05\x00", 11)),
                "after the signatureValue");
  // An inner length running past the outer one.
  ExpectRefused(ToPem(std::string("\x30\x07\x30\x05\x30\x00\x03\x01\x00", 9)),
                "signatureAlgorithm");
}

TEST_F(CertPem, Oversize) {
  // The whole input is bounded, even when the certificate is small.
  ExpectRefused(*ec_pem_ + std::string(kMaxCertPemBytes, '\n'), "longer than 16384");
  ExpectThumbprint(*ec_pem_ + std::string(kMaxCertPemBytes - ec_pem_->size(), '\n'), *ec_pem_);
  // A certificate larger than the bound.
  std::string big(kMaxCertPemBytes, 'B');
  std::string der = "\x30\x82" + std::string(2, '\0') + big;
  ExpectRefused(ToPem(der), "longer than 16384");
  ExpectRefused(std::string(kMaxCertPemBytes + 1, 'A'), "longer than 16384");
}

TEST_F(CertPem, ProxyEscapedCertificate) {
  // nginx's $ssl_client_escaped_cert escapes like a URI component: every
  // byte but [A-Za-z0-9-._~] (so '+', '/', '=' and line breaks) as %XX.
  auto escape = [](std::string_view s, bool lower) {
    std::string out;
    for (unsigned char c : s) {
      if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
        out.push_back(static_cast<char>(c));
      } else {
        char buf[4];
        std::snprintf(buf, sizeof buf, lower ? "%%%02x" : "%%%02X", c);
        out += buf;
      }
    }
    return out;
  };
  for (const std::string* pem : {rsa_pem_, ec_pem_}) {
    for (bool lower : {false, true}) {
      std::string escaped = escape(*pem, lower);
      ASSERT_NE(escaped.find("%0"), std::string::npos);
      auto unescaped = UnescapeProxyCertificate(escaped);
      ASSERT_TRUE(unescaped.ok()) << unescaped.status().ToString();
      EXPECT_EQ(*unescaped, *pem);
      ExpectThumbprint(*unescaped, *pem);
      // The escaped text itself is not PEM.
      EXPECT_FALSE(CertThumbprint(escaped).ok());
    }
  }
  // Envoy's XFCC escapes less; a literal '+' stays '+' (not a space).
  EXPECT_EQ(*UnescapeProxyCertificate("a+b%2Bc%0A"), "a+b+c\n");
  EXPECT_EQ(*UnescapeProxyCertificate(*ec_pem_), *ec_pem_);  // nothing escaped
  EXPECT_EQ(*UnescapeProxyCertificate(""), "");
  for (std::string_view bad : {"%", "%0", "abc%4", "%G0", "%0g", "%%41", "% 41"}) {
    auto r = UnescapeProxyCertificate(bad);
    EXPECT_FALSE(r.ok()) << bad;
    EXPECT_NE(r.status().message().find("invalid percent escape"), std::string::npos);
  }
  EXPECT_FALSE(UnescapeProxyCertificate("a%00b").ok());
  EXPECT_FALSE(UnescapeProxyCertificate(std::string_view("a\0b", 3)).ok());
  // Bounds: the escaped input and the unescaped PEM.
  EXPECT_TRUE(UnescapeProxyCertificate(std::string(kMaxCertPemBytes, 'A')).ok());
  EXPECT_FALSE(UnescapeProxyCertificate(std::string(kMaxCertPemBytes + 1, 'A')).ok());
  std::string escaped_max;
  for (size_t i = 0; i < kMaxCertPemBytes; ++i) escaped_max += "%41";
  EXPECT_TRUE(UnescapeProxyCertificate(escaped_max).ok());
  EXPECT_FALSE(UnescapeProxyCertificate(escaped_max + "A").ok());
  EXPECT_FALSE(UnescapeProxyCertificate(escaped_max + "%41").ok());
}

}  // namespace
}  // namespace vakt::bytecode
