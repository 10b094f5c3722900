// Tests of the test-token tooling (compiler/token_tool.cc): whatever it
// signs must verify through the runtime's own JOSE code (bytecode/jose.h),
// keys must survive PEM and JWK round trips, thumbprints must agree with
// JwkThumbprint and CertThumbprint, and bad input must give errors, never
// exceptions. The command-line side is tests/token_cli_test.cc.
#include "compiler/token_tool.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "bytecode/jose.h"
#include "bytecode/request.h"

namespace vakt::compiler {
namespace {

using bytecode::JwsAlg;
using Json = nlohmann::ordered_json;

constexpr JwsAlg kAlgs[] = {JwsAlg::kES256, JwsAlg::kPS256, JwsAlg::kEdDSA};

// RSA key generation is slow: one key per algorithm for the whole binary.
const SigningKey& CachedKey(JwsAlg alg) {
  static auto* keys = new std::map<JwsAlg, SigningKey>();
  auto it = keys->find(alg);
  if (it == keys->end()) {
    auto k = GenerateKey(alg, std::string("test-") + bytecode::JwsAlgName(alg));
    EXPECT_TRUE(k.ok()) << k.status().ToString();
    it = keys->emplace(alg, std::move(k).value()).first;
  }
  return it->second;
}

struct Decoded {
  Json header, payload;
};

// Parses and verifies a compact JWS against `public_jwk`.
Decoded VerifyWith(const std::string& token, const std::string& public_jwk, JwsAlg alg) {
  auto jws = bytecode::ParseCompactJws(token);
  EXPECT_TRUE(jws.ok()) << jws.status().ToString();
  if (!jws.ok()) return {};
  auto pub = bytecode::ParseJwk(public_jwk);
  EXPECT_TRUE(pub.ok()) << pub.status().ToString() << " " << public_jwk;
  if (!pub.ok()) return {};
  Status st = bytecode::VerifyJws(*pub, alg, jws->signing_input, jws->signature);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return {Json::parse(jws->header_json), Json::parse(jws->payload_json)};
}

TEST(TokenTool, GeneratedKeysMintTokensThatVerify) {
  for (JwsAlg alg : kAlgs) {
    SCOPED_TRACE(bytecode::JwsAlgName(alg));
    const SigningKey& key = CachedKey(alg);
    EXPECT_EQ(key.alg(), alg);
    EXPECT_EQ(key.kid(), std::string("test-") + bytecode::JwsAlgName(alg));
    TokenOptions opts;
    opts.now = 1700000000;
    opts.ttl = 120;
    auto token = MintAccessToken(key, R"({"sub":"anna","scope":"records.read"})", opts);
    ASSERT_TRUE(token.ok()) << token.status().ToString();
    Decoded d = VerifyWith(*token, key.PublicJwk(), alg);
    EXPECT_EQ(d.header["alg"], bytecode::JwsAlgName(alg));
    EXPECT_EQ(d.header["typ"], "at+jwt");
    EXPECT_EQ(d.header["kid"], key.kid());
    EXPECT_EQ(d.payload["sub"], "anna");
    EXPECT_EQ(d.payload["iat"], 1700000000);
    EXPECT_EQ(d.payload["nbf"], 1700000000);
    EXPECT_EQ(d.payload["exp"], 1700000120);
    ASSERT_TRUE(d.payload["jti"].is_string());
    EXPECT_EQ(d.payload["jti"].get<std::string>().size(), 22u);  // 16 bytes
    EXPECT_FALSE(d.payload.contains("cnf"));

    // A changed payload does not verify.
    auto jws = bytecode::ParseCompactJws(*token);
    ASSERT_TRUE(jws.ok());
    auto pub = bytecode::ParseJwk(key.PublicJwk());
    ASSERT_TRUE(pub.ok());
    std::string other = bytecode::Base64UrlEncode(R"({"sub":"eva"})");
    std::string input = std::string(jws->header_b64) + "." + other;
    EXPECT_FALSE(bytecode::VerifyJws(*pub, alg, input, jws->signature).ok());
  }
}

TEST(TokenTool, FreshJtiEachTime) {
  const SigningKey& key = CachedKey(JwsAlg::kES256);
  auto a = MintAccessToken(key, "{}", {});
  auto b = MintAccessToken(key, "{}", {});
  ASSERT_TRUE(a.ok() && b.ok());
  auto pa = bytecode::ParseCompactJws(*a), pb = bytecode::ParseCompactJws(*b);
  ASSERT_TRUE(pa.ok() && pb.ok());
  EXPECT_NE(Json::parse(pa->payload_json)["jti"], Json::parse(pb->payload_json)["jti"]);
}

TEST(TokenTool, PublicJwkShape) {
  {
    Json j = Json::parse(CachedKey(JwsAlg::kES256).PublicJwk());
    std::vector<std::string> names;
    for (auto& [k, v] : j.items()) names.push_back(k);
    EXPECT_EQ(names, (std::vector<std::string>{"kty", "crv", "x", "y", "kid", "alg", "use"}));
    EXPECT_EQ(j["kty"], "EC");
    EXPECT_EQ(j["crv"], "P-256");
    EXPECT_EQ(j["use"], "sig");
    EXPECT_EQ(bytecode::Base64UrlDecode(j["x"].get<std::string>())->size(), 32u);
    EXPECT_EQ(bytecode::Base64UrlDecode(j["y"].get<std::string>())->size(), 32u);
  }
  {
    Json j = Json::parse(CachedKey(JwsAlg::kPS256).PublicJwk());
    std::vector<std::string> names;
    for (auto& [k, v] : j.items()) names.push_back(k);
    EXPECT_EQ(names, (std::vector<std::string>{"kty", "n", "e", "kid", "alg", "use"}));
    EXPECT_EQ(j["e"], "AQAB");
    auto n = bytecode::Base64UrlDecode(j["n"].get<std::string>());
    ASSERT_TRUE(n.ok());
    EXPECT_EQ(n->size(), 256u);  // 2048 bits, no leading zero byte
    EXPECT_NE((*n)[0], '\0');
  }
  {
    Json j = Json::parse(CachedKey(JwsAlg::kEdDSA).PublicJwk());
    EXPECT_EQ(j["kty"], "OKP");
    EXPECT_EQ(j["crv"], "Ed25519");
    EXPECT_EQ(j["alg"], "EdDSA");
    EXPECT_FALSE(j.contains("d"));
  }
  for (JwsAlg alg : kAlgs) {
    Json priv = Json::parse(CachedKey(alg).PrivateJwk());
    EXPECT_TRUE(priv.contains("d"));
    // The runtime refuses private members unless told it is tooling.
    EXPECT_FALSE(bytecode::ParseJwk(CachedKey(alg).PrivateJwk()).ok());
    EXPECT_TRUE(bytecode::ParseJwk(CachedKey(alg).PrivateJwk(), true).ok());
  }
  Json rsa = Json::parse(CachedKey(JwsAlg::kPS256).PrivateJwk());
  for (const char* m : {"d", "p", "q", "dp", "dq", "qi"}) EXPECT_TRUE(rsa.contains(m)) << m;
  Json ec = Json::parse(CachedKey(JwsAlg::kES256).PrivateJwk());
  EXPECT_EQ(bytecode::Base64UrlDecode(ec["d"].get<std::string>())->size(), 32u);
}

TEST(TokenTool, DefaultKidIsTheThumbprint) {
  for (JwsAlg alg : {JwsAlg::kES256, JwsAlg::kEdDSA}) {
    auto key = GenerateKey(alg);
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    auto pub = bytecode::ParseJwk(key->PublicJwk());
    ASSERT_TRUE(pub.ok());
    EXPECT_EQ(key->kid(), bytecode::JwkThumbprint(*pub));
    EXPECT_EQ(key->Thumbprint(), bytecode::JwkThumbprint(*pub));
  }
}

TEST(TokenTool, PemAndJwkRoundTrips) {
  for (JwsAlg alg : kAlgs) {
    SCOPED_TRACE(bytecode::JwsAlgName(alg));
    const SigningKey& key = CachedKey(alg);
    std::string pem = key.PrivatePem();
    EXPECT_EQ(pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u) << pem;

    auto from_pem = LoadSigningKey(pem, key.kid());
    ASSERT_TRUE(from_pem.ok()) << from_pem.status().ToString();
    EXPECT_EQ(from_pem->alg(), alg);
    EXPECT_EQ(from_pem->PublicJwk(), key.PublicJwk());
    EXPECT_EQ(from_pem->PrivateJwk(), key.PrivateJwk());
    // No kid in a PEM: the thumbprint.
    auto no_kid = LoadSigningKey(pem);
    ASSERT_TRUE(no_kid.ok());
    EXPECT_EQ(no_kid->kid(), key.Thumbprint());

    auto from_jwk = LoadSigningKey("\n  " + key.PrivateJwk(), "ignored");
    ASSERT_TRUE(from_jwk.ok()) << from_jwk.status().ToString();
    EXPECT_EQ(from_jwk->kid(), key.kid());  // the JWK's own kid wins
    EXPECT_EQ(from_jwk->PrivatePem(), pem);

    // A token signed by the reloaded key verifies with the original public key.
    auto token = MintAccessToken(*from_jwk, "{}", {});
    ASSERT_TRUE(token.ok());
    VerifyWith(*token, key.PublicJwk(), alg);
  }
}

TEST(TokenTool, LoadsRfc8037Ed25519Key) {
  // RFC 8037 appendix A.1 private key; A.3 thumbprint; A.4 signature.
  auto key = LoadSigningKey(
      R"({"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_EQ(key->alg(), JwsAlg::kEdDSA);
  EXPECT_EQ(key->Thumbprint(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
  EXPECT_EQ(key->kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
  auto jws = bytecode::SignJws(key->pkey(), JwsAlg::kEdDSA, R"({"alg":"EdDSA"})",
                               "Example of Ed25519 signing");
  ASSERT_TRUE(jws.ok());
  EXPECT_EQ(
      *jws,
      "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
      "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg");
}

TEST(TokenTool, ThumbprintsAgree) {
  for (JwsAlg alg : kAlgs) {
    SCOPED_TRACE(bytecode::JwsAlgName(alg));
    const SigningKey& key = CachedKey(alg);
    auto pub = bytecode::ParseJwk(key.PublicJwk());
    ASSERT_TRUE(pub.ok());
    std::string expected = bytecode::JwkThumbprint(*pub);
    EXPECT_EQ(key.Thumbprint(), expected);
    for (const std::string& text : {key.PublicJwk(), key.PrivateJwk(), key.PrivatePem()}) {
      auto tp = KeyThumbprint(text);
      ASSERT_TRUE(tp.ok()) << tp.status().ToString();
      EXPECT_EQ(*tp, expected);
    }
    // A PEM public key too.
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    ASSERT_EQ(PEM_write_bio_PUBKEY(bio.get(), key.pkey()), 1);
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    auto tp = KeyThumbprint(std::string(data, static_cast<size_t>(len)));
    ASSERT_TRUE(tp.ok()) << tp.status().ToString();
    EXPECT_EQ(*tp, expected);
  }
  // RFC 7638 section 3.1.
  auto rfc = KeyThumbprint(
      R"({"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","kid":"2011-04-29"})");
  ASSERT_TRUE(rfc.ok()) << rfc.status().ToString();
  EXPECT_EQ(*rfc, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
}

TEST(TokenTool, TokenOptionsFillOnlyWhatIsAbsent) {
  const SigningKey& key = CachedKey(JwsAlg::kES256);
  TokenOptions opts;
  opts.now = 5000;
  opts.ttl = 10;
  auto token =
      MintAccessToken(key, R"({"z":1,"iat":1,"nbf":2,"exp":3,"jti":"mine","a":{"b":[1,2]}})", opts);
  ASSERT_TRUE(token.ok()) << token.status().ToString();
  auto jws = bytecode::ParseCompactJws(*token);
  ASSERT_TRUE(jws.ok());
  // Given members are kept as given, in order; nothing is added.
  EXPECT_EQ(jws->payload_json, R"({"z":1,"iat":1,"nbf":2,"exp":3,"jti":"mine","a":{"b":[1,2]}})");

  // Only exp given: iat, nbf and jti are appended in that order.
  token = MintAccessToken(key, R"({"exp":99})", opts);
  ASSERT_TRUE(token.ok());
  jws = bytecode::ParseCompactJws(*token);
  ASSERT_TRUE(jws.ok());
  Json p = Json::parse(jws->payload_json);
  std::vector<std::string> names;
  for (auto& [k, v] : p.items()) names.push_back(k);
  EXPECT_EQ(names, (std::vector<std::string>{"exp", "iat", "nbf", "jti"}));
  EXPECT_EQ(p["exp"], 99);
  EXPECT_EQ(p["iat"], 5000);

  // Negative ttl: an already expired token (negative tests need them).
  opts.ttl = -60;
  token = MintAccessToken(key, "{}", opts);
  ASSERT_TRUE(token.ok());
  jws = bytecode::ParseCompactJws(*token);
  EXPECT_EQ(Json::parse(jws->payload_json)["exp"], 4940);
}

TEST(TokenTool, CnfAndHeaderOverrides) {
  const SigningKey& key = CachedKey(JwsAlg::kEdDSA);
  TokenOptions opts;
  opts.cnf_jkt = "jkt-value";
  auto token = MintAccessToken(key, R"({"sub":"a"})", opts);
  ASSERT_TRUE(token.ok());
  Decoded d = VerifyWith(*token, key.PublicJwk(), JwsAlg::kEdDSA);
  EXPECT_EQ(d.payload["cnf"], Json::parse(R"({"jkt":"jkt-value"})"));

  opts.cnf_jkt.clear();
  opts.cnf_x5t = "x5t-value";
  token = MintAccessToken(key, R"({"cnf":{"other":1}})", opts);
  ASSERT_TRUE(token.ok());
  d = VerifyWith(*token, key.PublicJwk(), JwsAlg::kEdDSA);
  EXPECT_EQ(d.payload["cnf"], Json::parse(R"({"other":1,"x5t#S256":"x5t-value"})"));

  auto bad = MintAccessToken(key, R"({"cnf":"text"})", opts);
  EXPECT_FALSE(bad.ok());

  TokenOptions o2;
  o2.typ = "JWT";
  o2.kid = "other-kid";
  o2.alg = "PS256";  // a lie: signed with EdDSA all the same
  token = MintAccessToken(key, "{}", o2);
  ASSERT_TRUE(token.ok());
  auto jws = bytecode::ParseCompactJws(*token);
  ASSERT_TRUE(jws.ok());
  EXPECT_EQ(jws->header_json, R"({"alg":"PS256","typ":"JWT","kid":"other-kid"})");
  auto pub = bytecode::ParseJwk(key.PublicJwk());
  ASSERT_TRUE(pub.ok());
  EXPECT_TRUE(bytecode::VerifyJws(*pub, JwsAlg::kEdDSA, jws->signing_input, jws->signature).ok());

  o2 = TokenOptions();
  o2.kid = "";
  o2.typ = "";
  token = MintAccessToken(key, "{}", o2);
  ASSERT_TRUE(token.ok());
  jws = bytecode::ParseCompactJws(*token);
  ASSERT_TRUE(jws.ok());
  EXPECT_EQ(jws->header_json, R"({"alg":"EdDSA"})");
}

TEST(TokenTool, DpopProof) {
  for (JwsAlg alg : kAlgs) {
    SCOPED_TRACE(bytecode::JwsAlgName(alg));
    const SigningKey& key = CachedKey(alg);
    ProofOptions po;
    po.method = "POST";
    po.url = "https://api.example.no/v1/patients/p-1/records";
    po.now = 1700000000;
    po.nonce = "n-1";
    po.access_token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
    auto proof = MintDpopProof(key, po);
    ASSERT_TRUE(proof.ok()) << proof.status().ToString();
    auto jws = bytecode::ParseCompactJws(*proof);
    ASSERT_TRUE(jws.ok());
    Json header = Json::parse(jws->header_json);
    EXPECT_EQ(header["typ"], "dpop+jwt");
    EXPECT_EQ(header["alg"], bytecode::JwsAlgName(alg));
    ASSERT_TRUE(header["jwk"].is_object());
    for (const char* m : {"d", "p", "q", "dp", "dq", "qi", "kid"}) {
      EXPECT_FALSE(header["jwk"].contains(m)) << m;
    }
    std::string jwk = header["jwk"].dump();
    Decoded d = VerifyWith(*proof, jwk, alg);  // ParseJwk refuses private members
    auto pub = bytecode::ParseJwk(jwk);
    ASSERT_TRUE(pub.ok());
    EXPECT_EQ(bytecode::JwkThumbprint(*pub), key.Thumbprint());
    EXPECT_EQ(d.payload["htm"], "POST");
    EXPECT_EQ(d.payload["htu"], po.url);
    EXPECT_EQ(d.payload["iat"], 1700000000);
    EXPECT_EQ(d.payload["nonce"], "n-1");
    EXPECT_EQ(d.payload["jti"].get<std::string>().size(), 22u);
    // RFC 9449 section 7.1 example.
    EXPECT_EQ(d.payload["ath"], "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
  }
}

TEST(TokenTool, DpopProofOptions) {
  const SigningKey& key = CachedKey(JwsAlg::kES256);
  ProofOptions po;
  po.method = "GET";
  po.url = "https://x.example/a";
  po.jti = "fixed";
  auto proof = MintDpopProof(key, po);
  ASSERT_TRUE(proof.ok());
  auto jws = bytecode::ParseCompactJws(*proof);
  ASSERT_TRUE(jws.ok());
  EXPECT_EQ(jws->payload_json,
            R"({"jti":"fixed","htm":"GET","htu":"https://x.example/a","iat":0})");

  po.embed_private_jwk = true;
  po.typ = "jwt";
  po.alg = "ES512";
  proof = MintDpopProof(key, po);
  ASSERT_TRUE(proof.ok());
  jws = bytecode::ParseCompactJws(*proof);
  ASSERT_TRUE(jws.ok());
  Json header = Json::parse(jws->header_json);
  EXPECT_EQ(header["typ"], "jwt");
  EXPECT_EQ(header["alg"], "ES512");
  EXPECT_TRUE(header["jwk"].contains("d"));
  EXPECT_FALSE(bytecode::ParseJwk(header["jwk"].dump()).ok());

  po = ProofOptions();
  po.url = "https://x.example/a";
  EXPECT_FALSE(MintDpopProof(key, po).ok());  // no method
  po.method = "GET";
  po.url.clear();
  EXPECT_FALSE(MintDpopProof(key, po).ok());  // no URL
}

TEST(TokenTool, TestCertificate) {
  auto cert = MakeTestCertificate("client-1");
  ASSERT_TRUE(cert.ok()) << cert.status().ToString();
  auto tp = bytecode::CertThumbprint(cert->cert_pem);
  ASSERT_TRUE(tp.ok()) << tp.status().ToString();
  EXPECT_EQ(cert->x5t_s256, *tp);
  EXPECT_EQ(cert->x5t_s256.size(), 43u);

  auto key = LoadSigningKey(cert->key_pem);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(cert->cert_pem.data(), static_cast<int>(cert->cert_pem.size())), &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> x(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  ASSERT_TRUE(x);
  EXPECT_EQ(X509_check_private_key(x.get(), key->pkey()), 1);
  char name[256];
  X509_NAME_oneline(X509_get_subject_name(x.get()), name, sizeof name);
  EXPECT_EQ(std::string(name), "/CN=client-1");
  EXPECT_EQ(X509_verify(x.get(), X509_get0_pubkey(x.get())), 1);  // self-signed

  auto other = MakeTestCertificate("client-1");
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->x5t_s256, cert->x5t_s256);  // fresh key and serial

  EXPECT_FALSE(MakeTestCertificate("").ok());
  EXPECT_FALSE(MakeTestCertificate(std::string(65, 'a')).ok());
  EXPECT_FALSE(MakeTestCertificate(std::string("a\0b", 3)).ok());
}

TEST(TokenTool, BadKeysAreRefused) {
  auto expect_error = [](std::string_view text, const std::string& fragment) {
    auto key = LoadSigningKey(text);
    ASSERT_FALSE(key.ok()) << text;
    EXPECT_NE(key.status().message().find(fragment), std::string::npos) << key.status().message();
  };
  expect_error("", "neither");
  expect_error("garbage", "neither");
  expect_error("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
               "cannot read a private key");
  expect_error(std::string(70000, 'a'), "larger");
  expect_error("{", "key: ");
  expect_error(CachedKey(JwsAlg::kES256).PublicJwk(), "public key");

  // A public PEM and a certificate say what they are.
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  ASSERT_EQ(PEM_write_bio_PUBKEY(bio.get(), CachedKey(JwsAlg::kES256).pkey()), 1);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  expect_error(std::string(data, static_cast<size_t>(len)), "public key");
  auto cert = MakeTestCertificate("c");
  ASSERT_TRUE(cert.ok());
  expect_error(cert->cert_pem, "certificate");

  // A private JWK whose d belongs to another key.
  Json a = Json::parse(CachedKey(JwsAlg::kES256).PrivateJwk());
  auto other = GenerateKey(JwsAlg::kES256);
  ASSERT_TRUE(other.ok());
  a["d"] = Json::parse(other->PrivateJwk())["d"];
  expect_error(a.dump(), "does not match");
  Json e = Json::parse(CachedKey(JwsAlg::kEdDSA).PrivateJwk());
  e["d"] = Json::parse(GenerateKey(JwsAlg::kEdDSA)->PrivateJwk())["d"];
  expect_error(e.dump(), "does not match");
  Json r = Json::parse(CachedKey(JwsAlg::kPS256).PrivateJwk());
  r.erase("qi");
  expect_error(r.dump(), "qi");
  r = Json::parse(CachedKey(JwsAlg::kPS256).PrivateJwk());
  r["d"] = 5;
  expect_error(r.dump(), "`d`");
  Json ec_short = Json::parse(CachedKey(JwsAlg::kES256).PrivateJwk());
  ec_short["d"] = "AQID";
  expect_error(ec_short.dump(), "32 bytes");

  // Key generation limits.
  EXPECT_FALSE(GenerateKey(JwsAlg::kPS256, "", 1024).ok());
  EXPECT_FALSE(GenerateKey(JwsAlg::kPS256, "", 100000).ok());
  EXPECT_EQ(GenerateKey(JwsAlg::kRS256).status().code(), StatusCode::kUnsupported);

  EXPECT_FALSE(KeyThumbprint("nope").ok());
  EXPECT_FALSE(KeyThumbprint("{\"kty\":\"oct\",\"k\":\"AAAA\"}").ok());
}

TEST(TokenTool, BadClaimsAreRefused) {
  const SigningKey& key = CachedKey(JwsAlg::kES256);
  for (std::string_view claims :
       {"", "[1,2]", "\"text\"", "42", "null", "{", "{\"a\":}", "{\"a\":1} trailing"}) {
    auto t = MintAccessToken(key, claims, {});
    EXPECT_FALSE(t.ok()) << claims;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << claims;
  }
  std::string deep = "{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_EQ(MintAccessToken(key, deep, {}).status().code(), StatusCode::kResourceExhausted);
  std::string big = "{\"a\":\"" + std::string(70000, 'x') + "\"}";
  EXPECT_EQ(MintAccessToken(key, big, {}).status().code(), StatusCode::kResourceExhausted);
  // Brackets inside strings do not count as nesting.
  std::string brackets = "{\"a\":\"" + std::string(100, '[') + "\"}";
  EXPECT_TRUE(MintAccessToken(key, brackets, {}).ok());
  TokenOptions overflow;
  overflow.now = INT64_MAX;
  overflow.ttl = 1;
  EXPECT_FALSE(MintAccessToken(key, "{}", overflow).ok());
}

}  // namespace
}  // namespace vakt::compiler
