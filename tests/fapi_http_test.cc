// Authorization header parsing, `htu` normalisation and challenges: every
// branch, positive and negative.
#include <gtest/gtest.h>

#include <vector>

#include "bytecode/fapi_http.h"

namespace vakt::bytecode {
namespace {

Result<AuthorizationToken> Read(std::vector<HeaderField> h) { return ReadAuthorization(h); }

TEST(Authorization, SchemesAreCaseInsensitive) {
  for (const char* v : {"Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER  abc.def.ghi "}) {
    auto r = Read({{"Authorization", v}});
    ASSERT_TRUE(r.ok()) << v;
    EXPECT_EQ(r->scheme, AuthScheme::kBearer);
    EXPECT_EQ(r->token, "abc.def.ghi");
  }
  auto d = Read({{"authorization", "DPOP x-y_z~+/=="}});
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->scheme, AuthScheme::kDPoP);
  EXPECT_EQ(d->token, "x-y_z~+/==");
}

TEST(Authorization, AbsentIsNone) {
  auto r = Read({{"Host", "x"}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->scheme, AuthScheme::kNone);
}

TEST(Authorization, Refusals) {
  EXPECT_FALSE(Read({{"Authorization", "Bearer a"}, {"AUTHORIZATION", "Bearer b"}}).ok());
  EXPECT_FALSE(Read({{"Authorization", "Bearer"}}).ok());
  EXPECT_FALSE(Read({{"Authorization", "Bearer "}}).ok());
  EXPECT_FALSE(Read({{"Authorization", "Basic dXNlcjpwYXNz"}}).ok());
  EXPECT_FALSE(Read({{"Authorization", "Bearer a b"}}).ok());
  EXPECT_FALSE(Read({{"Authorization", "Bearer a=b"}}).ok());
  EXPECT_FALSE(Read({{"Authorization", "Bearer =abc"}}).ok());
  EXPECT_FALSE(Read({{"Authorization", "Bearer a\"b"}}).ok());
}

TEST(Htu, Normalisation) {
  EXPECT_EQ(*NormalizeHtu("HTTPS://API.Example.NO/v1/x"), "https://api.example.no/v1/x");
  EXPECT_EQ(*NormalizeHtu("https://api.example.no:443/v1/x"), "https://api.example.no/v1/x");
  EXPECT_EQ(*NormalizeHtu("http://api.example.no:80/"), "http://api.example.no/");
  EXPECT_EQ(*NormalizeHtu("https://api.example.no:8443/v1"), "https://api.example.no:8443/v1");
  EXPECT_EQ(*NormalizeHtu("https://api.example.no:0443/v1"), "https://api.example.no/v1");
  EXPECT_EQ(*NormalizeHtu("https://api.example.no"), "https://api.example.no/");
  EXPECT_EQ(*NormalizeHtu("https://api.example.no/v1/x?y=1#f"), "https://api.example.no/v1/x");
  EXPECT_EQ(*NormalizeHtu("https://api.example.no/p%2dq%2fr%7e"), "https://api.example.no/p-q%2Fr~");
  EXPECT_EQ(*NormalizeHtu("https://[::1]:443/x"), "https://[::1]/x");
  EXPECT_EQ(*NormalizeHtu("https://[::1]:8443/x"), "https://[::1]:8443/x");
}

TEST(Htu, Refusals) {
  EXPECT_FALSE(NormalizeHtu("/v1/x").ok());
  EXPECT_FALSE(NormalizeHtu("ftp://host/x").ok());
  EXPECT_FALSE(NormalizeHtu("https://user@host/x").ok());
  EXPECT_FALSE(NormalizeHtu("https:///x").ok());
  EXPECT_FALSE(NormalizeHtu("https://host:abc/x").ok());
  EXPECT_FALSE(NormalizeHtu("https://host:123456/x").ok());
  EXPECT_FALSE(NormalizeHtu("https://host/a%zz").ok());
  EXPECT_FALSE(NormalizeHtu("https://host/a%4").ok());
  EXPECT_FALSE(NormalizeHtu("https://host/a b").ok());
  EXPECT_FALSE(NormalizeHtu("https://[::1/x").ok());
  EXPECT_FALSE(NormalizeHtu("https://host/" + std::string(9000, 'a')).ok());
}

TEST(Htu, Matches) {
  EXPECT_TRUE(HtuMatches("https://API.example.no:443/v1/x", "https://api.example.no/v1/x?q=1"));
  EXPECT_FALSE(HtuMatches("https://api.example.no/v1/x", "https://api.example.no/v1/y"));
  EXPECT_FALSE(HtuMatches("https://api.example.no/v1/x", "http://api.example.no/v1/x"));
  EXPECT_FALSE(HtuMatches("https://api.example.no/v1/X", "https://api.example.no/v1/x"));
  EXPECT_FALSE(HtuMatches("not a uri", "not a uri"));
}

TEST(Challenge, Forms) {
  EXPECT_EQ(Challenge(AuthScheme::kBearer, "", ""), "Bearer");
  EXPECT_EQ(Challenge(AuthScheme::kBearer, "invalid_token", "the token expired"),
            "Bearer error=\"invalid_token\", error_description=\"the token expired\"");
  EXPECT_EQ(Challenge(AuthScheme::kBearer, "insufficient_scope", "needs more", "records.read"),
            "Bearer error=\"insufficient_scope\", error_description=\"needs more\", scope=\"records.read\"");
  EXPECT_EQ(Challenge(AuthScheme::kDPoP, "invalid_dpop_proof", "bad htu", "", "ES256 PS256 EdDSA"),
            "DPoP error=\"invalid_dpop_proof\", error_description=\"bad htu\", algs=\"ES256 PS256 EdDSA\"");
  EXPECT_EQ(Challenge(AuthScheme::kDPoP, "", "", "", "ES256"), "DPoP algs=\"ES256\"");
  // Hostile text cannot break out of the quoted string.
  EXPECT_EQ(Challenge(AuthScheme::kBearer, "invalid_token", "a\"b\\c\r\nd"),
            "Bearer error=\"invalid_token\", error_description=\"a\\\"b\\\\cd\"");
  EXPECT_LE(Challenge(AuthScheme::kBearer, "invalid_token", std::string(10000, 'x')).size(), 400u);
}

}  // namespace
}  // namespace vakt::bytecode
