// Test-token tooling (token_tool.h): key generation and loading, JWK export,
// access-token and DPoP-proof minting, and self-signed client certificates,
// so that tests, the demo and `vakt token` can make the real tokens the
// runtime verifies, without an authorization server.
//
// Why here and not in bytecode/: signing is tooling; an agent only verifies.
// Keys are read and written through OpenSSL 3 EVP (EVP_PKEY_Q_keygen,
// EVP_PKEY_get_*_param, EVP_PKEY_fromdata, PEM), JSON through nlohmann (whose
// exceptions are caught here: nothing throws out of this file), and every
// key this file hands out is first checked by bytecode::ParseJwk, so a key it
// accepts is one the runtime accepts too. Signing goes through SignJws.
//
// Costs: key text and claims are bounded (kMaxKeyText, kMaxClaims,
// kMaxClaimsDepth) and read in linear time; RSA key generation is the only
// expensive step. NOT for production token issuance.
// Tested by tests/token_tool_test.cc and tests/token_cli_test.cc.
#include "compiler/token_tool.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace vakt::compiler {

using bytecode::JwsAlg;
using Json = nlohmann::ordered_json;

namespace {

constexpr size_t kMaxKeyText = 64 * 1024;  // a PEM or JWK private key
constexpr size_t kMaxClaims = 64 * 1024;   // claims JSON handed to MintAccessToken
constexpr size_t kMaxClaimsDepth = 32;     // nesting of the claims JSON
constexpr int kMinRsaBits = 2048;          // what bytecode::ParseJwk accepts
constexpr int kMaxRsaBits = 8192;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_clear_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct BldFree {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using BldPtr = std::unique_ptr<OSSL_PARAM_BLD, BldFree>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, ParamFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, ExtFree>;

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// Dumps compactly; invalid UTF-8 (a caller's kid, say) is replaced, not thrown.
std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string Sha256B64(std::string_view in) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(in.data(), in.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    ERR_clear_error();
    return {};
  }
  return bytecode::Base64UrlEncode(std::string_view(reinterpret_cast<char*>(digest), len));
}

Result<std::string> RandomB64(size_t n) {
  std::string raw(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(n)) != 1) {
    ERR_clear_error();
    return Internal("random: RAND_bytes failed");
  }
  return bytecode::Base64UrlEncode(raw);
}

// The JOSE algorithm a key's type fixes, or why the key cannot be used.
Result<JwsAlg> AlgOfKey(EVP_PKEY* pkey) {
  if (EVP_PKEY_is_a(pkey, "RSA") == 1) {
    int bits = EVP_PKEY_get_bits(pkey);
    if (bits < kMinRsaBits || bits > kMaxRsaBits) {
      return Unsupported("key: RSA key of " + std::to_string(bits) + " bits; " +
                         std::to_string(kMinRsaBits) + " to " + std::to_string(kMaxRsaBits) +
                         " supported");
    }
    return JwsAlg::kPS256;
  }
  if (EVP_PKEY_is_a(pkey, "EC") == 1) {
    char group[64] = {};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &len) != 1) {
      ERR_clear_error();
      return Unsupported("key: EC key without a named curve");
    }
    std::string_view g(group, len);
    if (g != "prime256v1" && g != "P-256" && g != "secp256r1") {
      return Unsupported("key: EC curve `" + std::string(g) + "` not supported (only P-256)");
    }
    return JwsAlg::kES256;
  }
  if (EVP_PKEY_is_a(pkey, "ED25519") == 1) return JwsAlg::kEdDSA;
  const char* name = EVP_PKEY_get0_type_name(pkey);
  return Unsupported(std::string("key: key type `") + (name ? name : "?") +
                     "` not supported (RSA, EC P-256 and Ed25519 only)");
}

// A BIGNUM parameter as big-endian bytes: minimal (no leading zero bytes,
// RFC 7518 Base64urlUInt) when pad is 0, else exactly `pad` bytes.
Result<std::string> BnParam(EVP_PKEY* pkey, const char* name, int pad) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(pkey, name, &raw) != 1 || raw == nullptr) {
    ERR_clear_error();
    return Internal(std::string("key: cannot read parameter `") + name + "`");
  }
  BnPtr bn(raw);
  int n = BN_num_bytes(bn.get());
  if (pad > 0 && n > pad) return Internal(std::string("key: parameter `") + name + "` too large");
  if (pad == 0 && n == 0) return std::string(1, '\0');
  std::string out(static_cast<size_t>(pad > 0 ? pad : n), '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  int written = pad > 0 ? BN_bn2binpad(bn.get(), p, pad) : BN_bn2bin(bn.get(), p);
  if (written != static_cast<int>(out.size())) return Internal("key: cannot encode a parameter");
  return out;
}

// The JWK key material of a key: kty, crv, and the public and private
// members (base64url) in the order JWKs are written.
struct KeyMembers {
  std::string kty, crv;
  std::vector<std::pair<std::string, std::string>> pub, priv;
};

Result<KeyMembers> ExtractMembers(EVP_PKEY* pkey, JwsAlg alg, bool with_private) {
  KeyMembers m;
  auto add = [](std::vector<std::pair<std::string, std::string>>& to, const char* name,
                Result<std::string> bytes) -> Status {
    if (!bytes.ok()) return bytes.status();
    to.emplace_back(name, bytecode::Base64UrlEncode(*bytes));
    return Status::Ok();
  };
  switch (alg) {
    case JwsAlg::kPS256:
    case JwsAlg::kRS256: {
      m.kty = "RSA";
      if (Status st = add(m.pub, "n", BnParam(pkey, OSSL_PKEY_PARAM_RSA_N, 0)); !st.ok()) return st;
      if (Status st = add(m.pub, "e", BnParam(pkey, OSSL_PKEY_PARAM_RSA_E, 0)); !st.ok()) return st;
      if (with_private) {
        static constexpr std::pair<const char*, const char*> kPrivate[] = {
            {"d", OSSL_PKEY_PARAM_RSA_D},          {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
            {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},    {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
            {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2}, {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1},
        };
        for (const auto& [member, param] : kPrivate) {
          if (Status st = add(m.priv, member, BnParam(pkey, param, 0)); !st.ok()) return st;
        }
      }
      break;
    }
    case JwsAlg::kES256: {
      m.kty = "EC";
      m.crv = "P-256";
      if (Status st = add(m.pub, "x", BnParam(pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32)); !st.ok()) {
        return st;
      }
      if (Status st = add(m.pub, "y", BnParam(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32)); !st.ok()) {
        return st;
      }
      if (with_private) {
        if (Status st = add(m.priv, "d", BnParam(pkey, OSSL_PKEY_PARAM_PRIV_KEY, 32)); !st.ok()) {
          return st;
        }
      }
      break;
    }
    case JwsAlg::kEdDSA: {
      m.kty = "OKP";
      m.crv = "Ed25519";
      std::string x(32, '\0');
      size_t len = x.size();
      if (EVP_PKEY_get_raw_public_key(pkey, reinterpret_cast<unsigned char*>(x.data()), &len) !=
              1 ||
          len != 32) {
        ERR_clear_error();
        return Internal("key: cannot read the Ed25519 public key");
      }
      m.pub.emplace_back("x", bytecode::Base64UrlEncode(x));
      if (with_private) {
        std::string d(32, '\0');
        len = d.size();
        if (EVP_PKEY_get_raw_private_key(pkey, reinterpret_cast<unsigned char*>(d.data()), &len) !=
                1 ||
            len != 32) {
          ERR_clear_error();
          return Internal("key: cannot read the Ed25519 private key");
        }
        m.priv.emplace_back("d", bytecode::Base64UrlEncode(d));
        OPENSSL_cleanse(d.data(), d.size());
      }
      break;
    }
  }
  return m;
}

// JWK members: kty, crv, the key material, the private members if asked,
// then (if `meta`) kid, alg and use.
Json MembersToJson(const KeyMembers& m, bool with_private, bool meta, const std::string& kid,
                   JwsAlg alg) {
  Json j = Json::object();
  j["kty"] = m.kty;
  if (!m.crv.empty()) j["crv"] = m.crv;
  for (const auto& [k, v] : m.pub) j[k] = v;
  if (with_private) {
    for (const auto& [k, v] : m.priv) j[k] = v;
  }
  if (meta) {
    if (!kid.empty()) j["kid"] = kid;
    j["alg"] = bytecode::JwsAlgName(alg);
    j["use"] = "sig";
  }
  return j;
}

// RFC 7638: SHA-256 of the required members in lexicographic order.
std::string ThumbprintOfMembers(const KeyMembers& m) {
  Json j = Json::object();
  auto get = [&m](const char* name) {
    for (const auto& [k, v] : m.pub) {
      if (k == name) return v;
    }
    return std::string();
  };
  if (m.kty == "RSA") {
    j["e"] = get("e");
    j["kty"] = m.kty;
    j["n"] = get("n");
  } else {
    j["crv"] = m.crv;
    j["kty"] = m.kty;
    j["x"] = get("x");
    if (m.kty == "EC") j["y"] = get("y");
  }
  return Sha256B64(Dump(j));
}

// The first non-blank character of `text`, or '\0'.
char FirstNonBlank(std::string_view text) {
  for (char c : text) {
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return c;
  }
  return '\0';
}

// The nesting depth of JSON text (brackets outside strings), in one pass, so
// that nlohmann's recursive parser never sees deeper input than we allow.
size_t JsonDepth(std::string_view text) {
  size_t depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return max_depth;
}

// Parses `text` as a JSON object, bounded in size and depth.
Result<Json> ParseObject(const char* what, std::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return ResourceExhausted(std::string(what) + ": larger than " +
                             std::to_string(max_bytes / 1024) + " KiB");
  }
  if (JsonDepth(text) > kMaxClaimsDepth) {
    return ResourceExhausted(std::string(what) + ": nested deeper than " +
                             std::to_string(kMaxClaimsDepth));
  }
  Json j;
  try {
    j = Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    return InvalidArgument(std::string(what) + ": not valid JSON: " + e.what());
  }
  if (!j.is_object()) return InvalidArgument(std::string(what) + ": must be a JSON object");
  return j;
}

// Reads string member `name` of a JWK and base64url-decodes it.
Status JwkBytes(const Json& jwk, const char* name, std::string* out) {
  auto it = jwk.find(name);
  if (it == jwk.end()) return InvalidArgument(std::string("key: JWK lacks member `") + name + "`");
  if (!it->is_string()) {
    return InvalidArgument(std::string("key: JWK member `") + name + "` is not a string");
  }
  auto bytes = bytecode::Base64UrlDecode(it->get_ref<const std::string&>());
  if (!bytes.ok()) {
    return InvalidArgument(std::string("key: JWK member `") + name +
                           "`: " + bytes.status().message());
  }
  *out = std::move(bytes).value();
  return Status::Ok();
}

// Builds an EVP_PKEY key pair of `type` from parameters, then checks that
// the private and public halves belong together.
Result<PkeyPtr> KeyPairFromParams(const char* type, OSSL_PARAM_BLD* bld) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_KEYPAIR, params.get()) != 1) {
    ERR_clear_error();
    return InvalidArgument(std::string("key: OpenSSL refused the ") + type + " private key");
  }
  PkeyPtr pkey(raw);
  PkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey.get(), nullptr));
  if (!check || EVP_PKEY_pairwise_check(check.get()) != 1) {
    ERR_clear_error();
    return InvalidArgument(std::string("key: the ") + type +
                           " private key does not match its public key");
  }
  return pkey;
}

BnPtr ToBn(const std::string& bytes) {
  return BnPtr(BN_bin2bn(Bytes(bytes), static_cast<int>(bytes.size()), nullptr));
}

Result<PkeyPtr> RsaFromJwk(const Json& jwk) {
  static constexpr std::pair<const char*, const char*> kMembers[] = {
      {"n", OSSL_PKEY_PARAM_RSA_N},          {"e", OSSL_PKEY_PARAM_RSA_E},
      {"d", OSSL_PKEY_PARAM_RSA_D},          {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
      {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},    {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
      {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2}, {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1},
  };
  for (const char* crt : {"p", "q", "dp", "dq", "qi"}) {
    if (!jwk.contains(crt)) {
      return InvalidArgument(std::string("key: RSA private JWK lacks member `") + crt +
                             "` (p, q, dp, dq and qi are required)");
    }
  }
  BldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld) return Internal("key: out of memory");
  std::vector<BnPtr> bns;  // must outlive OSSL_PARAM_BLD_to_param
  for (const auto& [member, param] : kMembers) {
    std::string bytes;
    if (Status st = JwkBytes(jwk, member, &bytes); !st.ok()) return st;
    BnPtr bn = ToBn(bytes);
    OPENSSL_cleanse(bytes.data(), bytes.size());
    if (!bn || OSSL_PARAM_BLD_push_BN(bld.get(), param, bn.get()) != 1) {
      return Internal("key: cannot build RSA parameters");
    }
    bns.push_back(std::move(bn));
  }
  return KeyPairFromParams("RSA", bld.get());
}

Result<PkeyPtr> EcFromJwk(const Json& jwk) {
  std::string x, y, d;
  if (Status st = JwkBytes(jwk, "x", &x); !st.ok()) return st;
  if (Status st = JwkBytes(jwk, "y", &y); !st.ok()) return st;
  if (Status st = JwkBytes(jwk, "d", &d); !st.ok()) return st;
  if (d.size() != 32) return InvalidArgument("key: P-256 `d` must be 32 bytes");
  std::string point = "\x04" + x + y;
  BnPtr bn_d = ToBn(d);
  OPENSSL_cleanse(d.data(), d.size());
  BldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld || !bn_d ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, bn_d.get()) != 1) {
    return Internal("key: cannot build EC parameters");
  }
  return KeyPairFromParams("EC", bld.get());
}

Result<PkeyPtr> Ed25519FromJwk(const Json& jwk) {
  std::string x, d;
  if (Status st = JwkBytes(jwk, "x", &x); !st.ok()) return st;
  if (Status st = JwkBytes(jwk, "d", &d); !st.ok()) return st;
  if (d.size() != 32) return InvalidArgument("key: Ed25519 `d` must be 32 bytes");
  PkeyPtr pkey(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, Bytes(d), d.size()));
  OPENSSL_cleanse(d.data(), d.size());
  if (!pkey) {
    ERR_clear_error();
    return InvalidArgument("key: OpenSSL refused the Ed25519 private key");
  }
  std::string derived(32, '\0');
  size_t len = derived.size();
  if (EVP_PKEY_get_raw_public_key(pkey.get(), reinterpret_cast<unsigned char*>(derived.data()),
                                  &len) != 1 ||
      len != 32 || derived != x) {
    ERR_clear_error();
    return InvalidArgument("key: the Ed25519 private key does not match its public key `x`");
  }
  return pkey;
}

// Refuses to prompt for a passphrase: encrypted PEM keys fail to load.
int NoPassphrase(char*, int, int, void*) { return -1; }

// Why PEM text holds no usable private key, judged from its armour.
Status PemError(std::string_view pem) {
  if (pem.find("ENCRYPTED") != std::string_view::npos) {
    return Unsupported("key: encrypted PEM private keys are not supported");
  }
  if (pem.find("-----BEGIN PUBLIC KEY-----") != std::string_view::npos ||
      pem.find("-----BEGIN RSA PUBLIC KEY-----") != std::string_view::npos) {
    return InvalidArgument("key: the PEM holds a public key; a private key is needed to sign");
  }
  if (pem.find("-----BEGIN CERTIFICATE-----") != std::string_view::npos) {
    return InvalidArgument("key: the PEM holds a certificate, not a private key");
  }
  return InvalidArgument("key: cannot read a private key from the PEM text");
}

Result<PkeyPtr> ReadPem(std::string_view pem, bool allow_public) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Internal("key: out of memory");
  PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!pkey && allow_public) {
    ERR_clear_error();
    BioPtr again(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!again) return Internal("key: out of memory");
    pkey.reset(PEM_read_bio_PUBKEY(again.get(), nullptr, NoPassphrase, nullptr));
  }
  if (!pkey) {
    ERR_clear_error();
    return PemError(pem);
  }
  return pkey;
}

}  // namespace

// Builds SigningKeys: the one place that sets their private members.
class SigningKeyFactory {
 public:
  // Takes `pkey`, derives the algorithm from its type and checks the public
  // half with bytecode::ParseJwk, so the runtime will accept the key.
  static Result<SigningKey> Make(PkeyPtr pkey, std::string kid) {
    auto alg = AlgOfKey(pkey.get());
    if (!alg.ok()) return alg.status();
    SigningKey key;
    key.pkey_ = pkey.release();
    key.alg_ = *alg;
    std::string jwk = key.PublicJwk();
    if (jwk.empty()) return Internal("key: cannot export the public key");
    auto parsed = bytecode::ParseJwk(jwk);
    if (!parsed.ok()) return Status(parsed.status().code(), "key: " + parsed.status().message());
    key.kid_ = kid.empty() ? bytecode::JwkThumbprint(*parsed) : std::move(kid);
    return key;
  }
};

SigningKey::SigningKey(SigningKey&& o) noexcept
    : pkey_(std::exchange(o.pkey_, nullptr)), alg_(o.alg_), kid_(std::move(o.kid_)) {}

SigningKey& SigningKey::operator=(SigningKey&& o) noexcept {
  if (this != &o) {
    EVP_PKEY_free(pkey_);
    pkey_ = std::exchange(o.pkey_, nullptr);
    alg_ = o.alg_;
    kid_ = std::move(o.kid_);
  }
  return *this;
}

SigningKey::~SigningKey() { EVP_PKEY_free(pkey_); }

std::string SigningKey::PublicJwk() const {
  if (pkey_ == nullptr) return {};
  try {
    auto m = ExtractMembers(pkey_, alg_, false);
    if (!m.ok()) return {};
    return Dump(MembersToJson(*m, false, true, kid_, alg_));
  } catch (const std::exception&) {
    return {};
  }
}

std::string SigningKey::PrivateJwk() const {
  if (pkey_ == nullptr) return {};
  try {
    auto m = ExtractMembers(pkey_, alg_, true);
    if (!m.ok()) return {};
    return Dump(MembersToJson(*m, true, true, kid_, alg_));
  } catch (const std::exception&) {
    return {};
  }
}

std::string SigningKey::PrivatePem() const {
  if (pkey_ == nullptr) return {};
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), pkey_, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    ERR_clear_error();
    return {};
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

std::string SigningKey::Thumbprint() const {
  if (pkey_ == nullptr) return {};
  try {
    auto m = ExtractMembers(pkey_, alg_, false);
    return m.ok() ? ThumbprintOfMembers(*m) : std::string();
  } catch (const std::exception&) {
    return {};
  }
}

Result<SigningKey> GenerateKey(JwsAlg alg, std::string kid, int rsa_bits) {
  EVP_PKEY* raw = nullptr;
  switch (alg) {
    case JwsAlg::kRS256:
      return Unsupported("keygen: RS256 is outside FAPI 2.0; generate a PS256 key instead");
    case JwsAlg::kPS256:
      if (rsa_bits < kMinRsaBits || rsa_bits > kMaxRsaBits) {
        return InvalidArgument("keygen: RSA key size must be " + std::to_string(kMinRsaBits) +
                               " to " + std::to_string(kMaxRsaBits) + " bits, not " +
                               std::to_string(rsa_bits));
      }
      raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(rsa_bits));
      break;
    case JwsAlg::kES256:
      raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
      break;
    case JwsAlg::kEdDSA:
      raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
      break;
  }
  if (raw == nullptr) {
    ERR_clear_error();
    return Internal(std::string("keygen: OpenSSL cannot generate a ") + bytecode::JwsAlgName(alg) +
                    " key");
  }
  try {
    return SigningKeyFactory::Make(PkeyPtr(raw), std::move(kid));
  } catch (const std::exception& e) {
    return Internal(std::string("keygen: ") + e.what());
  }
}

Result<SigningKey> LoadSigningKey(std::string_view text, std::string kid) {
  if (text.size() > kMaxKeyText) return ResourceExhausted("key: larger than 64 KiB");
  try {
    if (FirstNonBlank(text) == '{') {
      // ParseJwk checks the JSON (depth-bounded) and the public half first.
      auto pub = bytecode::ParseJwk(text, /*allow_private=*/true);
      if (!pub.ok()) return Status(pub.status().code(), "key: " + pub.status().message());
      auto jwk = ParseObject("key", text, kMaxKeyText);
      if (!jwk.ok()) return jwk.status();
      if (!jwk->contains("d")) {
        return InvalidArgument("key: the JWK is a public key (no `d`); a private key is needed");
      }
      Result<PkeyPtr> pkey = Internal("key: unreachable");
      if (pub->kty() == "RSA") {
        pkey = RsaFromJwk(*jwk);
      } else if (pub->kty() == "EC") {
        pkey = EcFromJwk(*jwk);
      } else {
        pkey = Ed25519FromJwk(*jwk);
      }
      if (!pkey.ok()) return pkey.status();
      std::string use_kid = !pub->kid().empty() ? pub->kid() : std::move(kid);
      return SigningKeyFactory::Make(std::move(pkey).value(), std::move(use_kid));
    }
    if (text.find("-----BEGIN") != std::string_view::npos) {
      auto pkey = ReadPem(text, /*allow_public=*/false);
      if (!pkey.ok()) return pkey.status();
      return SigningKeyFactory::Make(std::move(pkey).value(), std::move(kid));
    }
    return InvalidArgument("key: neither a PEM private key nor a JWK");
  } catch (const std::exception& e) {
    return Internal(std::string("key: ") + e.what());
  }
}

Result<std::string> KeyThumbprint(std::string_view text) {
  if (text.size() > kMaxKeyText) return ResourceExhausted("key: larger than 64 KiB");
  try {
    if (FirstNonBlank(text) == '{') {
      auto pub = bytecode::ParseJwk(text, /*allow_private=*/true);
      if (!pub.ok()) return Status(pub.status().code(), "key: " + pub.status().message());
      return bytecode::JwkThumbprint(*pub);
    }
    if (text.find("-----BEGIN") == std::string_view::npos) {
      return InvalidArgument("key: neither a PEM key nor a JWK");
    }
    auto pkey = ReadPem(text, /*allow_public=*/true);
    if (!pkey.ok()) return pkey.status();
    auto alg = AlgOfKey(pkey->get());
    if (!alg.ok()) return alg.status();
    auto m = ExtractMembers(pkey->get(), *alg, false);
    if (!m.ok()) return m.status();
    auto pub = bytecode::ParseJwk(Dump(MembersToJson(*m, false, false, "", *alg)));
    if (!pub.ok()) return Status(pub.status().code(), "key: " + pub.status().message());
    return bytecode::JwkThumbprint(*pub);
  } catch (const std::exception& e) {
    return Internal(std::string("key: ") + e.what());
  }
}

Result<std::string> MintAccessToken(const SigningKey& key, std::string_view claims_json,
                                    const TokenOptions& opts) {
  if (key.pkey() == nullptr) return InvalidArgument("token: no key");
  try {
    auto parsed = ParseObject("claims", claims_json, kMaxClaims);
    if (!parsed.ok()) return parsed.status();
    Json claims = std::move(parsed).value();
    int64_t exp = 0;
    if (__builtin_add_overflow(opts.now, opts.ttl, &exp)) {
      return InvalidArgument("token: now + ttl overflows");
    }
    if (!claims.contains("iat")) claims["iat"] = opts.now;
    if (!claims.contains("nbf")) claims["nbf"] = opts.now;
    if (!claims.contains("exp")) claims["exp"] = exp;
    if (!claims.contains("jti")) {
      auto jti = RandomB64(16);
      if (!jti.ok()) return jti.status();
      claims["jti"] = *jti;
    }
    if (!opts.cnf_jkt.empty() || !opts.cnf_x5t.empty()) {
      Json& cnf = claims["cnf"];  // null if absent: becomes an object
      if (cnf.is_null()) cnf = Json::object();
      if (!cnf.is_object()) return InvalidArgument("claims: `cnf` is not an object");
      if (!opts.cnf_jkt.empty()) cnf["jkt"] = opts.cnf_jkt;
      if (!opts.cnf_x5t.empty()) cnf["x5t#S256"] = opts.cnf_x5t;
    }
    Json header = Json::object();
    header["alg"] = opts.alg ? *opts.alg : std::string(bytecode::JwsAlgName(key.alg()));
    if (!opts.typ.empty()) header["typ"] = opts.typ;
    const std::string& kid = opts.kid ? *opts.kid : key.kid();
    if (!kid.empty()) header["kid"] = kid;
    return bytecode::SignJws(key.pkey(), key.alg(), Dump(header), Dump(claims));
  } catch (const std::exception& e) {
    return Internal(std::string("token: ") + e.what());
  }
}

Result<std::string> MintDpopProof(const SigningKey& key, const ProofOptions& opts) {
  if (key.pkey() == nullptr) return InvalidArgument("dpop: no key");
  if (opts.method.empty()) return InvalidArgument("dpop: the HTTP method (htm) is empty");
  if (opts.url.empty()) return InvalidArgument("dpop: the URL (htu) is empty");
  try {
    auto m = ExtractMembers(key.pkey(), key.alg(), opts.embed_private_jwk);
    if (!m.ok()) return m.status();
    Json header = Json::object();
    if (!opts.typ.empty()) header["typ"] = opts.typ;
    header["alg"] = opts.alg ? *opts.alg : std::string(bytecode::JwsAlgName(key.alg()));
    header["jwk"] = MembersToJson(*m, opts.embed_private_jwk, false, "", key.alg());
    Json payload = Json::object();
    if (opts.jti.empty()) {
      auto jti = RandomB64(16);
      if (!jti.ok()) return jti.status();
      payload["jti"] = *jti;
    } else {
      payload["jti"] = opts.jti;
    }
    payload["htm"] = opts.method;
    payload["htu"] = opts.url;
    payload["iat"] = opts.now;
    if (!opts.access_token.empty()) payload["ath"] = Sha256B64(opts.access_token);
    if (!opts.nonce.empty()) payload["nonce"] = opts.nonce;
    return bytecode::SignJws(key.pkey(), key.alg(), Dump(header), Dump(payload));
  } catch (const std::exception& e) {
    return Internal(std::string("dpop: ") + e.what());
  }
}

Result<TestCertificate> MakeTestCertificate(std::string_view common_name) {
  if (common_name.empty() || common_name.size() > 64) {
    return InvalidArgument("cert: the common name must be 1 to 64 bytes");
  }
  if (common_name.find('\0') != std::string_view::npos) {
    return InvalidArgument("cert: the common name holds a NUL byte");
  }
  auto key = GenerateKey(JwsAlg::kES256);
  if (!key.ok()) return key.status();
  X509Ptr x(X509_new());
  if (!x) return Internal("cert: out of memory");
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) {
    ERR_clear_error();
    return Internal("cert: RAND_bytes failed");
  }
  serial[0] &= 0x7f;   // positive
  serial[15] |= 0x01;  // non-zero
  BnPtr bn(BN_bin2bn(serial, sizeof serial, nullptr));
  X509_NAME* name = X509_get_subject_name(x.get());
  bool ok = bn && X509_set_version(x.get(), 2) == 1 &&
            BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x.get())) != nullptr &&
            X509_gmtime_adj(X509_getm_notBefore(x.get()), -300) != nullptr &&
            X509_gmtime_adj(X509_getm_notAfter(x.get()), 365L * 24 * 3600) != nullptr &&
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, Bytes(common_name),
                                       static_cast<int>(common_name.size()), -1, 0) == 1 &&
            X509_set_issuer_name(x.get(), name) == 1 && X509_set_pubkey(x.get(), key->pkey()) == 1;
  if (!ok) {
    ERR_clear_error();
    return InvalidArgument("cert: cannot build the certificate (is the common name UTF-8?)");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
  static constexpr std::pair<int, const char*> kExtensions[] = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, "clientAuth"},
      {NID_subject_key_identifier, "hash"},
  };
  for (const auto& [nid, value] : kExtensions) {
    ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    if (!ext || X509_add_ext(x.get(), ext.get(), -1) != 1) {
      ERR_clear_error();
      return Internal("cert: cannot add a certificate extension");
    }
  }
  if (X509_sign(x.get(), key->pkey(), EVP_sha256()) <= 0) {
    ERR_clear_error();
    return Internal("cert: cannot sign the certificate");
  }
  TestCertificate out;
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), x.get()) != 1) {
    ERR_clear_error();
    return Internal("cert: cannot write the certificate as PEM");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0) return Internal("cert: cannot write the certificate as PEM");
  out.cert_pem.assign(data, static_cast<size_t>(len));
  unsigned char* der = nullptr;
  int der_len = i2d_X509(x.get(), &der);
  if (der_len <= 0 || der == nullptr) {
    ERR_clear_error();
    return Internal("cert: cannot encode the certificate as DER");
  }
  out.x5t_s256 =
      Sha256B64(std::string_view(reinterpret_cast<char*>(der), static_cast<size_t>(der_len)));
  OPENSSL_free(der);
  out.key_pem = key->PrivatePem();
  if (out.key_pem.empty() || out.x5t_s256.empty()) return Internal("cert: cannot export");
  return out;
}

}  // namespace vakt::compiler
