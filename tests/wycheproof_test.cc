// Runs the Wycheproof vectors (../shared/vectors/wycheproof) through the
// runtime's JOSE functions (bytecode/jose.h): every test of the ECDSA P-256
// P1363, RSASSA-PSS 2048 SHA-256 MGF1 salt-32 and Ed25519 files through
// VerifyJws (valid accepted, invalid rejected, `acceptable` counted and
// reported), then the JWS and JWK sets: algorithms outside PS256 / ES256 /
// EdDSA must be refused, the rest valid accepted and invalid rejected.
// Each file prints a summary line. Skips loudly if the vectors are absent.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "bytecode/jose.h"

namespace vakt::bytecode {
namespace {

std::string VectorsDir() { return std::string(VAKT_VECTORS_DIR) + "/wycheproof"; }

bool HaveVectors() { return std::filesystem::exists(VectorsDir() + "/ed25519_test.json"); }

#define SKIP_WITHOUT_VECTORS()                                               \
  if (!HaveVectors()) {                                                      \
    GTEST_SKIP() << "\n*** WYCHEPROOF VECTORS NOT FOUND in " << VectorsDir() \
                 << " : THESE TESTS DID NOT RUN ***";                        \
  }

std::string Hex(std::string_view hex) {
  std::string out;
  auto nib = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(nib(hex[i]) * 16 + nib(hex[i + 1])));
  }
  return out;
}

// Builds a JWK from the raw fields a group gives when it has no publicKeyJwk.
std::string JwkFromFields(simdjson::dom::element pk, JwsAlg alg) {
  auto field = [&](const char* n) {
    std::string_view v;
    return pk[n].get(v) == simdjson::SUCCESS ? std::string(v) : std::string();
  };
  auto strip = [](std::string s) {
    size_t i = 0;
    while (i + 1 < s.size() && s[i] == '\0') ++i;
    return s.substr(i);
  };
  switch (alg) {
    case JwsAlg::kES256: {
      std::string point = Hex(field("uncompressed"));  // 04 || x || y
      if (point.size() != 65) return "{}";
      return R"({"kty":"EC","crv":"P-256","x":")" + Base64UrlEncode(point.substr(1, 32)) +
             R"(","y":")" + Base64UrlEncode(point.substr(33, 32)) + R"("})";
    }
    case JwsAlg::kPS256:
      return R"({"kty":"RSA","n":")" + Base64UrlEncode(strip(Hex(field("modulus")))) +
             R"(","e":")" + Base64UrlEncode(strip(Hex(field("publicExponent")))) + R"("})";
    case JwsAlg::kEdDSA:
      return R"({"kty":"OKP","crv":"Ed25519","x":")" + Base64UrlEncode(Hex(field("pk"))) + R"("})";
    case JwsAlg::kRS256:  // legacy only; no vectors are run for it
      break;
  }
  return "{}";
}

struct Counts {
  std::map<std::string, int> by_result;  // "valid/accepted" etc.
  int total = 0;
  int acceptable = 0;  // Wycheproof lets these go either way: reported only
  void Add(std::string_view expected, bool accepted) {
    ++by_result[std::string(expected) + (accepted ? "/accepted" : "/rejected")];
    ++total;
    if (expected == "acceptable") ++acceptable;
  }
  void Print(const std::string& file) const {
    std::string line = "[wycheproof] " + file + ": " + std::to_string(total) +
                       " tests, acceptable (either way) " + std::to_string(acceptable);
    for (const auto& [k, v] : by_result) line += ", " + k + "=" + std::to_string(v);
    std::printf("%s\n", line.c_str());
  }
};

// Runs one of the three primitive files; group.publicKeyJwk gives the key.
void RunPrimitiveFile(const std::string& name, JwsAlg alg) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.load(VectorsDir() + "/" + name).get(root), simdjson::SUCCESS) << name;
  Counts counts;
  int64_t declared = -1;
  ASSERT_EQ(root["numberOfTests"].get(declared), simdjson::SUCCESS);
  for (auto group : root["testGroups"].get_array()) {
    simdjson::dom::element jwk_el;
    std::string jwk;
    if (group["publicKeyJwk"].get(jwk_el) == simdjson::SUCCESS) {
      jwk = simdjson::minify(jwk_el);
    } else {
      jwk = JwkFromFields(group["publicKey"], alg);
    }
    auto key = ParseJwk(jwk);
    ASSERT_TRUE(key.ok()) << name << ": " << key.status().ToString() << "\n" << jwk;
    ASSERT_EQ(key->alg(), alg);
    for (auto t : group["tests"].get_array()) {
      int64_t id = t["tcId"].get_int64().value();
      std::string_view result = t["result"].get_string().value();
      std::string msg = Hex(t["msg"].get_string().value());
      std::string sig = Hex(t["sig"].get_string().value());
      bool accepted = VerifyJws(*key, alg, msg, sig).ok();
      counts.Add(result, accepted);
      if (result == "valid") {
        EXPECT_TRUE(accepted) << name << " tcId " << id << " valid but rejected";
      } else if (result == "invalid") {
        EXPECT_FALSE(accepted) << name << " tcId " << id << " invalid but accepted";
      }
    }
  }
  EXPECT_EQ(counts.total, declared) << name << ": not every test ran";
  counts.Print(name);
}

TEST(Wycheproof, EcdsaP256Sha256P1363) {
  SKIP_WITHOUT_VECTORS();
  RunPrimitiveFile("ecdsa_secp256r1_sha256_p1363_test.json", JwsAlg::kES256);
}

TEST(Wycheproof, RsaPss2048Sha256Mgf1Salt32) {
  SKIP_WITHOUT_VECTORS();
  RunPrimitiveFile("rsa_pss_2048_sha256_mgf1_32_test.json", JwsAlg::kPS256);
}

TEST(Wycheproof, Ed25519) {
  SKIP_WITHOUT_VECTORS();
  RunPrimitiveFile("ed25519_test.json", JwsAlg::kEdDSA);
}

// Full JWS verification as the runtime will do it: parse, alg from the
// header, key selection, signature. Returns "" if accepted, else the reason.
std::string VerifyCompact(std::string_view token, const std::vector<PublicKey>& keys,
                          bool* outside_fapi) {
  *outside_fapi = false;
  JwsLimits limits;
  limits.require_json_payload = false;  // the vectors sign "foo" and the like
  auto jws = ParseCompactJws(token, limits);
  if (!jws.ok()) return jws.status().ToString();
  simdjson::dom::parser parser;
  simdjson::dom::element header;
  if (parser.parse(jws->header_json).get(header) != simdjson::SUCCESS) return "header";
  std::string_view alg_name;
  if (header["alg"].get(alg_name) != simdjson::SUCCESS) return "no alg";
  auto alg = ParseAlg(alg_name);
  if (!alg.ok()) {
    *outside_fapi = true;
    return alg.status().ToString();
  }
  std::string_view kid;
  if (header["kid"].get(kid) != simdjson::SUCCESS) kid = "";
  const PublicKey* key = nullptr;
  if (keys.size() == 1 && kid.empty()) {
    key = &keys[0];
  } else {
    auto k = SelectKey(keys, kid, *alg);
    if (!k.ok()) return k.status().ToString();
    key = *k;
  }
  Status st = VerifyJws(*key, *alg, jws->signing_input, jws->signature);
  return st.ok() ? "" : st.ToString();
}

// Both JOSE files: groups hold a `public` JWK (signature file) or JWKS (key
// file), or only a `private` (symmetric) key, which FAPI never accepts.
void RunJoseFile(const std::string& name) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.load(VectorsDir() + "/" + name).get(root), simdjson::SUCCESS) << name;
  Counts counts;
  int refused_outside_fapi = 0, refused_key = 0;
  for (auto group : root["testGroups"].get_array()) {
    std::string_view comment = group["comment"].get_string().value_unsafe();
    std::vector<PublicKey> keys;
    std::string key_error;
    simdjson::dom::element pub;
    if (group["public"].get(pub) != simdjson::SUCCESS) {
      key_error = "no public key (symmetric only)";
    } else {
      std::string text = simdjson::minify(pub);
      simdjson::dom::object o = pub.get_object().value_unsafe();
      simdjson::dom::element unused;
      if (o["keys"].get(unused) == simdjson::SUCCESS) {
        auto r = ParseJwks(text);
        if (r.ok())
          keys = std::move(r).value();
        else
          key_error = r.status().ToString();
      } else {
        auto r = ParseJwk(text);
        if (r.ok())
          keys.push_back(std::move(r).value());
        else
          key_error = r.status().ToString();
      }
    }
    for (auto t : group["tests"].get_array()) {
      int64_t id = t["tcId"].get_int64().value();
      std::string_view result = t["result"].get_string().value();
      std::string_view token;
      bool accepted = false;
      bool outside = false;
      std::string why;
      if (t["jws"].get(token) != simdjson::SUCCESS) {
        why = "not a compact serialization";  // JSON serialization: unsupported
      } else if (!key_error.empty()) {
        // The token's alg tells whether it is outside FAPI; the key is refused anyway.
        why = VerifyCompact(token, {}, &outside);
        if (!outside) why = key_error;
      } else {
        why = VerifyCompact(token, keys, &outside);
        accepted = why.empty();
      }
      counts.Add(result, accepted);
      if (outside) ++refused_outside_fapi;
      if (!key_error.empty()) ++refused_key;
      if (outside || !key_error.empty()) {
        EXPECT_FALSE(accepted) << name << " tcId " << id << " outside FAPI but accepted";
      } else if (result == "valid") {
        EXPECT_TRUE(accepted) << name << " [" << comment << "] tcId " << id
                              << " valid but rejected: " << why;
      } else if (result == "invalid") {
        EXPECT_FALSE(accepted) << name << " [" << comment << "] tcId " << id
                               << " invalid but accepted";
      }
    }
  }
  counts.Print(name);
  std::printf("[wycheproof] %s: %d refused for an algorithm outside FAPI, %d for a refused key\n",
              name.c_str(), refused_outside_fapi, refused_key);
}

TEST(Wycheproof, JsonWebSignature) {
  SKIP_WITHOUT_VECTORS();
  RunJoseFile("json_web_signature_test.json");
}

TEST(Wycheproof, JsonWebKey) {
  SKIP_WITHOUT_VECTORS();
  RunJoseFile("json_web_key_test.json");
}

}  // namespace
}  // namespace vakt::bytecode
