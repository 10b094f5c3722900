// Tests of request normalisation (bytecode/request.h): every rule and every
// refusal branch, the limits, UTF-8 validation, capacity reuse and the
// client-certificate thumbprint.
#include "bytecode/request.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

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
  // Dots inside a segment are ordinary characters.
  EXPECT_EQ(PathOf("/a/.../b.json/.x"), "/a/.../b.json/.x");
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

}  // namespace
}  // namespace vakt::bytecode
