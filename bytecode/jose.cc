// JOSE primitives (jose.h): strict base64url, compact JWS parsing, JWK to
// EVP_PKEY through OpenSSL 3 OSSL_PARAM_BLD / EVP_PKEY_fromdata, and
// PS256 / ES256 / EdDSA (and, for policies outside FAPI, RS256)
// verification through EVP_DigestVerify.
//
// Why so strict: tokens and keys are attacker input, and every leniency
// (padding, alternate alphabets, non-canonical bits, duplicate JSON members,
// a token-chosen algorithm) has been an exploit somewhere. Each check fails
// closed with a message. Costs: decoding and JSON parsing are linear in the
// (bounded) input; JSON depth is bounded by simdjson's max_depth; no
// recursion on attacker-sized input; one EVP operation per verification.
#include "bytecode/jose.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <utility>

namespace vakt::bytecode {
namespace {

Status Unauth(std::string m) { return Status(StatusCode::kUnauthenticated, std::move(m)); }

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// Value of a base64url character, or -1.
int B64Value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BldFree {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct SigFree {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
using BldPtr = std::unique_ptr<OSSL_PARAM_BLD, BldFree>;
using ParamPtr = std::unique_ptr<OSSL_PARAM, ParamFree>;
using SigPtr = std::unique_ptr<ECDSA_SIG, SigFree>;

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

// True if `obj` has two members with the same name. Small objects (JWS
// headers, JWKs, most payloads) are checked pairwise without allocating;
// larger ones through a set, so the cost stays O(n log n).
bool HasDuplicateMember(const simdjson::dom::object& obj, std::string_view* dup) {
  constexpr size_t kSmall = 32;
  std::string_view keys[kSmall];
  size_t n = 0;
  for (auto field : obj) {
    if (n == kSmall) {
      std::set<std::string_view> seen;
      for (auto f : obj) {
        if (!seen.insert(f.key).second) {
          *dup = f.key;
          return true;
        }
      }
      return false;
    }
    for (size_t i = 0; i < n; ++i) {
      if (keys[i] == field.key) {
        *dup = field.key;
        return true;
      }
    }
    keys[n++] = field.key;
  }
  return false;
}

// Parses `json` as a JSON object (bounded depth) and refuses duplicate
// top-level members, which different readers would resolve differently.
// `parser` may be reused across calls: it is (re)allocated only when its
// depth limit differs or its capacity is too small.
Status ParseJsonObject(std::string_view what, std::string_view json, size_t max_depth,
                       simdjson::dom::parser& parser, simdjson::dom::object& out) {
  if (parser.max_depth() != max_depth || parser.capacity() < json.size() + 1) {
    const size_t capacity = std::max(parser.capacity(), json.size() + 1);
    if (auto err = parser.allocate(capacity, max_depth); err != simdjson::SUCCESS) {
      return ResourceExhausted(std::string(what) + ": cannot allocate parser");
    }
  }
  simdjson::dom::element root;
  if (auto err = parser.parse(json.data(), json.size()).get(root); err != simdjson::SUCCESS) {
    if (err == simdjson::DEPTH_ERROR) {
      return ResourceExhausted(std::string(what) + ": JSON nested too deeply");
    }
    return InvalidArgument(std::string(what) + ": malformed JSON: " + simdjson::error_message(err));
  }
  if (root.get(out) != simdjson::SUCCESS) {
    return InvalidArgument(std::string(what) + ": not a JSON object");
  }
  if (std::string_view dup; HasDuplicateMember(out, &dup)) {
    return InvalidArgument(std::string(what) + ": duplicate member `" + std::string(dup) + "`");
  }
  return Status::Ok();
}

// A parser for ParseCompactJws, reused per thread: tokens and proofs arrive
// on every request, and a fresh parser allocates. Two of them, so that
// alternating depth limits (a token, then its DPoP proof) do not make
// ParseJsonObject reallocate on every call.
simdjson::dom::parser& JwsParser(size_t max_depth) {
  thread_local simdjson::dom::parser parsers[2];
  thread_local int last = 0;
  if (parsers[last].max_depth() != max_depth) last ^= 1;
  return parsers[last];
}

// Optional string member: absent -> ok with found=false; non-string -> error.
Status GetString(const simdjson::dom::object& obj, const char* name, std::string_view& out,
                 bool& found) {
  simdjson::dom::element e;
  found = false;
  if (obj.at_key(name).get(e) != simdjson::SUCCESS) return Status::Ok();
  if (e.get(out) != simdjson::SUCCESS) {
    return InvalidArgument(std::string("jwk: member `") + name + "` is not a string");
  }
  found = true;
  return Status::Ok();
}

// A required base64url member of a JWK, decoded.
Status GetB64(const simdjson::dom::object& obj, const char* name, std::string& out) {
  std::string_view s;
  bool found;
  if (Status st = GetString(obj, name, s, found); !st.ok()) return st;
  if (!found) return InvalidArgument(std::string("jwk: missing member `") + name + "`");
  auto r = Base64UrlDecode(s);
  if (!r.ok()) {
    return InvalidArgument(std::string("jwk: member `") + name + "`: " + r.status().message());
  }
  out = std::move(r).value();
  return Status::Ok();
}

std::string StripLeadingZeros(std::string s) {
  size_t i = 0;
  while (i + 1 < s.size() && s[i] == '\0') ++i;
  return s.substr(i);
}

Status FromData(const char* type, OSSL_PARAM_BLD* bld, PkeyPtr& out) {
  ParamPtr params(OSSL_PARAM_BLD_to_param(bld));
  if (!params) return Internal("jwk: cannot build key parameters");
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) {
    ERR_clear_error();
    return InvalidArgument(std::string("jwk: OpenSSL refused the ") + type + " public key");
  }
  out.reset(pkey);
  return Status::Ok();
}

Status PublicCheck(EVP_PKEY* pkey) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  // The quick check (point not at infinity, on the curve) suffices for P-256,
  // whose cofactor is 1; the full check adds a scalar multiplication, which a
  // DPoP proof's embedded key would pay on every request.
  if (!ctx || EVP_PKEY_public_check_quick(ctx.get()) != 1) {
    ERR_clear_error();
    return InvalidArgument("jwk: public key fails validation (point not on the curve?)");
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> Base64UrlDecode(std::string_view in) {
  if (in.size() > kMaxBase64UrlInput) {
    return ResourceExhausted("base64url: input longer than " + std::to_string(kMaxBase64UrlInput));
  }
  if (in.size() % 4 == 1) return InvalidArgument("base64url: impossible length");
  // Character values, -1 for characters outside the alphabet.
  static const std::array<int8_t, 256> kValue = [] {
    std::array<int8_t, 256> t{};
    for (int c = 0; c < 256; ++c) {
      t[c] = static_cast<int8_t>(B64Value(static_cast<unsigned char>(c)));
    }
    return t;
  }();
  const auto* p = Bytes(in);
  const size_t n = in.size();
  // Four characters make three bytes; a group with a bad character is
  // reported at the offset of its first bad character.
  auto bad = [&](size_t from) -> Status {
    size_t i = from;
    while (kValue[p[i]] >= 0) ++i;
    return InvalidArgument("base64url: invalid character at offset " + std::to_string(i));
  };
  const size_t full = n / 4;
  const size_t rest = n % 4;  // 0, 2 or 3 characters: 0, 1 or 2 bytes
  std::string out(full * 3 + (rest == 0 ? 0 : rest - 1), '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  for (size_t g = 0; g < full; ++g) {
    const unsigned char* q = p + 4 * g;
    int32_t a = kValue[q[0]], b = kValue[q[1]], c = kValue[q[2]], d = kValue[q[3]];
    if ((a | b | c | d) < 0) return bad(4 * g);
    uint32_t v = (static_cast<uint32_t>(a) << 18) | (static_cast<uint32_t>(b) << 12) |
                 (static_cast<uint32_t>(c) << 6) | static_cast<uint32_t>(d);
    o[3 * g] = static_cast<unsigned char>(v >> 16);
    o[3 * g + 1] = static_cast<unsigned char>(v >> 8);
    o[3 * g + 2] = static_cast<unsigned char>(v);
  }
  if (rest != 0) {
    const unsigned char* q = p + 4 * full;
    int32_t a = kValue[q[0]], b = kValue[q[1]], c = rest == 3 ? kValue[q[2]] : 0;
    if ((a | b | c) < 0) return bad(4 * full);
    uint32_t v = (static_cast<uint32_t>(a) << 18) | (static_cast<uint32_t>(b) << 12) |
                 (static_cast<uint32_t>(c) << 6);
    o[3 * full] = static_cast<unsigned char>(v >> 16);
    if (rest == 3) o[3 * full + 1] = static_cast<unsigned char>(v >> 8);
    // Leftover bits (4 after two characters, 2 after three) must be zero:
    // only the canonical encoding passes.
    if ((rest == 2 ? (v & 0xf000) : (v & 0xc0)) != 0) {
      return InvalidArgument("base64url: non-canonical trailing bits");
    }
  }
  return out;
}

std::string Base64UrlEncode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto* p = Bytes(in);
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  size_t rest = in.size() - i;
  if (rest == 1) {
    uint32_t v = uint32_t{p[i]} << 16;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
  } else if (rest == 2) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
  }
  return out;
}

Result<CompactJws> ParseCompactJws(std::string_view token, const JwsLimits& limits) {
  if (token.size() > limits.max_token_bytes) {
    return ResourceExhausted("jws: token longer than " + std::to_string(limits.max_token_bytes) +
                             " bytes");
  }
  size_t d1 = token.find('.');
  size_t d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos) {
    return InvalidArgument("jws: not three dot-separated parts");
  }
  CompactJws jws;
  jws.header_b64 = token.substr(0, d1);
  jws.payload_b64 = token.substr(d1 + 1, d2 - d1 - 1);
  jws.signature_b64 = token.substr(d2 + 1);
  jws.signing_input = token.substr(0, d2);
  if (jws.header_b64.empty()) return InvalidArgument("jws: empty header");
  if (jws.payload_b64.empty() && limits.require_json_payload) {
    return InvalidArgument("jws: empty payload");
  }
  if (jws.signature_b64.empty()) return InvalidArgument("jws: empty signature");
  // Decoded size is 3/4 of the encoded one: check before decoding.
  if (jws.header_b64.size() / 4 * 3 > limits.max_header_bytes) {
    return ResourceExhausted("jws: header larger than " + std::to_string(limits.max_header_bytes));
  }
  if (jws.payload_b64.size() / 4 * 3 > limits.max_payload_bytes) {
    return ResourceExhausted("jws: payload larger than " +
                             std::to_string(limits.max_payload_bytes));
  }
  auto h = Base64UrlDecode(jws.header_b64);
  if (!h.ok()) return InvalidArgument("jws: header: " + h.status().message());
  auto p = Base64UrlDecode(jws.payload_b64);
  if (!p.ok()) return InvalidArgument("jws: payload: " + p.status().message());
  auto s = Base64UrlDecode(jws.signature_b64);
  if (!s.ok()) return InvalidArgument("jws: signature: " + s.status().message());
  if (h->size() > limits.max_header_bytes) return ResourceExhausted("jws: header too large");
  if (p->size() > limits.max_payload_bytes) return ResourceExhausted("jws: payload too large");
  simdjson::dom::parser& parser = JwsParser(limits.max_json_depth);
  simdjson::dom::object obj;
  if (Status st = ParseJsonObject("jws header", *h, limits.max_json_depth, parser, obj); !st.ok()) {
    return st;
  }
  if (limits.require_json_payload) {
    if (Status st = ParseJsonObject("jws payload", *p, limits.max_json_depth, parser, obj);
        !st.ok()) {
      return st;
    }
  }
  jws.header_json = std::move(h).value();
  jws.payload_json = std::move(p).value();
  jws.signature = std::move(s).value();
  return jws;
}

const char* JwsAlgName(JwsAlg alg) {
  switch (alg) {
    case JwsAlg::kPS256:
      return "PS256";
    case JwsAlg::kES256:
      return "ES256";
    case JwsAlg::kEdDSA:
      return "EdDSA";
    case JwsAlg::kRS256:
      return "RS256";
  }
  return "?";
}

Result<JwsAlg> ParseAlg(std::string_view alg, bool allow_legacy) {
  if (alg == "PS256") return JwsAlg::kPS256;
  if (alg == "ES256") return JwsAlg::kES256;
  if (alg == "EdDSA") return JwsAlg::kEdDSA;
  if (allow_legacy && alg == "RS256") return JwsAlg::kRS256;
  std::string shown(alg.substr(0, 32));
  if (allow_legacy) {
    return Unsupported("jws: algorithm `" + shown +
                       "` is not allowed (only PS256, ES256, EdDSA and, outside FAPI, RS256)");
  }
  return Unsupported("jws: algorithm `" + shown +
                     "` is not allowed (FAPI 2.0 allows only PS256, ES256 and EdDSA)");
}

PublicKey::PublicKey(PublicKey&& o) noexcept
    : pkey_(std::exchange(o.pkey_, nullptr)),
      kid_(std::move(o.kid_)),
      kty_(std::move(o.kty_)),
      crv_(std::move(o.crv_)),
      alg_(o.alg_),
      bits_(o.bits_),
      thumbprint_input_(std::move(o.thumbprint_input_)) {}

PublicKey& PublicKey::operator=(PublicKey&& o) noexcept {
  if (this != &o) {
    EVP_PKEY_free(pkey_);
    pkey_ = std::exchange(o.pkey_, nullptr);
    kid_ = std::move(o.kid_);
    kty_ = std::move(o.kty_);
    crv_ = std::move(o.crv_);
    alg_ = o.alg_;
    bits_ = o.bits_;
    thumbprint_input_ = std::move(o.thumbprint_input_);
  }
  return *this;
}

PublicKey::~PublicKey() { EVP_PKEY_free(pkey_); }

Result<PublicKey> ParseJwk(std::string_view jwk_json, bool allow_private) {
  JwkOptions options;
  options.allow_private = allow_private;
  return ParseJwk(jwk_json, options);
}

Result<PublicKey> ParseJwk(std::string_view jwk_json, const JwkOptions& options) {
  const bool allow_private = options.allow_private;
  constexpr size_t kMaxJwk = 16 * 1024;
  if (jwk_json.size() > kMaxJwk) return ResourceExhausted("jwk: larger than 16 KiB");
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (Status st = ParseJsonObject("jwk", jwk_json, 8, parser, obj); !st.ok()) return st;

  std::string_view kty, crv, alg, use, kid;
  bool has_kty, has_crv, has_alg, has_use, has_kid;
  if (Status st = GetString(obj, "kty", kty, has_kty); !st.ok()) return st;
  if (Status st = GetString(obj, "crv", crv, has_crv); !st.ok()) return st;
  if (Status st = GetString(obj, "alg", alg, has_alg); !st.ok()) return st;
  if (Status st = GetString(obj, "use", use, has_use); !st.ok()) return st;
  if (Status st = GetString(obj, "kid", kid, has_kid); !st.ok()) return st;
  if (!has_kty) return InvalidArgument("jwk: missing member `kty`");
  if (!allow_private) {
    for (const char* m : {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}) {
      simdjson::dom::element e;
      if (obj.at_key(m).get(e) == simdjson::SUCCESS) {
        return InvalidArgument(std::string("jwk: holds private member `") + m + "`");
      }
    }
  }
  if (has_use && use != "sig") {
    return Unsupported("jwk: `use` is `" + std::string(use.substr(0, 32)) + "`, not `sig`");
  }
  simdjson::dom::element ops;
  if (obj.at_key("key_ops").get(ops) == simdjson::SUCCESS) {
    simdjson::dom::array arr;
    if (ops.get(arr) != simdjson::SUCCESS) return InvalidArgument("jwk: `key_ops` not an array");
    bool verify = false;
    for (auto op : arr) {
      std::string_view s;
      if (op.get(s) == simdjson::SUCCESS && s == "verify") verify = true;
    }
    if (!verify) return Unsupported("jwk: `key_ops` does not allow `verify`");
  }

  PublicKey key;
  PkeyPtr pkey;
  if (kty == "RSA") {
    std::string n, e;
    if (Status st = GetB64(obj, "n", n); !st.ok()) return st;
    if (Status st = GetB64(obj, "e", e); !st.ok()) return st;
    n = StripLeadingZeros(std::move(n));
    e = StripLeadingZeros(std::move(e));
    if (n.size() > 1024) return Unsupported("jwk: RSA modulus larger than 8192 bits");
    if (e.size() > 8) return Unsupported("jwk: RSA exponent longer than 64 bits");
    BnPtr bn_n(BN_bin2bn(Bytes(n), static_cast<int>(n.size()), nullptr));
    BnPtr bn_e(BN_bin2bn(Bytes(e), static_cast<int>(e.size()), nullptr));
    if (!bn_n || !bn_e) return Internal("jwk: out of memory");
    if (!BN_is_odd(bn_e.get()) || BN_is_one(bn_e.get()) || BN_is_zero(bn_e.get())) {
      return InvalidArgument("jwk: RSA public exponent must be odd and at least 3");
    }
    if (!BN_is_odd(bn_n.get())) return InvalidArgument("jwk: RSA modulus is even");
    const int min_bits = options.legacy ? 1024 : 2048;
    if (BN_num_bits(bn_n.get()) < min_bits) {
      return Unsupported("jwk: RSA key of " + std::to_string(BN_num_bits(bn_n.get())) +
                         " bits; at least " + std::to_string(min_bits) + " required");
    }
    BldPtr bld(OSSL_PARAM_BLD_new());
    if (!bld || !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
        !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())) {
      return Internal("jwk: cannot build RSA parameters");
    }
    if (Status st = FromData("RSA", bld.get(), pkey); !st.ok()) return st;
    // Outside FAPI an RSA key that declares RS256 is an RS256 key; any
    // other RSA key is a PS256 key (the `alg` check below refuses the rest).
    key.alg_ = options.legacy && has_alg && alg == "RS256" ? JwsAlg::kRS256 : JwsAlg::kPS256;
    key.thumbprint_input_ = "{\"e\":\"" + Base64UrlEncode(e) + "\",\"kty\":\"RSA\",\"n\":\"" +
                            Base64UrlEncode(n) + "\"}";
  } else if (kty == "EC") {
    if (!has_crv) return InvalidArgument("jwk: EC key without `crv`");
    if (crv != "P-256") {
      return Unsupported("jwk: EC curve `" + std::string(crv.substr(0, 32)) +
                         "` not supported (only P-256)");
    }
    std::string x, y;
    if (Status st = GetB64(obj, "x", x); !st.ok()) return st;
    if (Status st = GetB64(obj, "y", y); !st.ok()) return st;
    if (x.size() != 32 || y.size() != 32) {
      return InvalidArgument("jwk: P-256 coordinates must be 32 bytes each");
    }
    std::string point = "\x04" + x + y;
    BldPtr bld(OSSL_PARAM_BLD_new());
    if (!bld ||
        !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                          point.size())) {
      return Internal("jwk: cannot build EC parameters");
    }
    if (Status st = FromData("EC", bld.get(), pkey); !st.ok()) {
      return InvalidArgument("jwk: EC point refused (not on the curve?)");
    }
    if (Status st = PublicCheck(pkey.get()); !st.ok()) return st;
    key.alg_ = JwsAlg::kES256;
    key.thumbprint_input_ = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"" + Base64UrlEncode(x) +
                            "\",\"y\":\"" + Base64UrlEncode(y) + "\"}";
  } else if (kty == "OKP") {
    if (!has_crv) return InvalidArgument("jwk: OKP key without `crv`");
    if (crv != "Ed25519") {
      return Unsupported("jwk: OKP curve `" + std::string(crv.substr(0, 32)) +
                         "` not supported (only Ed25519)");
    }
    std::string x;
    if (Status st = GetB64(obj, "x", x); !st.ok()) return st;
    if (x.size() != 32) return InvalidArgument("jwk: Ed25519 `x` must be 32 bytes");
    EVP_PKEY* raw = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, Bytes(x), x.size());
    if (raw == nullptr) {
      ERR_clear_error();
      return InvalidArgument("jwk: OpenSSL refused the Ed25519 key");
    }
    pkey.reset(raw);
    key.alg_ = JwsAlg::kEdDSA;
    key.thumbprint_input_ =
        "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"" + Base64UrlEncode(x) + "\"}";
  } else {
    return Unsupported("jwk: key type `" + std::string(kty.substr(0, 32)) +
                       "` not supported (RSA, EC P-256 and OKP Ed25519 only)");
  }
  if (has_alg && alg != JwsAlgName(key.alg_)) {
    return Unsupported("jwk: `alg` is `" + std::string(alg.substr(0, 32)) + "` but a " +
                       std::string(kty) + " key is used with " + JwsAlgName(key.alg_));
  }
  key.bits_ = EVP_PKEY_get_bits(pkey.get());
  key.pkey_ = pkey.release();
  key.kid_ = has_kid ? std::string(kid) : std::string();
  key.kty_ = std::string(kty);
  key.crv_ = has_crv && kty != "RSA" ? std::string(crv) : std::string();
  return key;
}

Result<std::vector<PublicKey>> ParseJwks(std::string_view jwks_json, const JwksOptions& options,
                                         std::vector<std::string>* skipped) {
  constexpr size_t kMaxJwks = 256 * 1024;
  constexpr size_t kMaxKeys = 64;
  if (jwks_json.size() > kMaxJwks) return ResourceExhausted("jwks: larger than 256 KiB");
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (Status st = ParseJsonObject("jwks", jwks_json, 8, parser, obj); !st.ok()) return st;
  simdjson::dom::array keys;
  if (obj["keys"].get(keys) != simdjson::SUCCESS) {
    return InvalidArgument("jwks: missing array member `keys`");
  }
  std::vector<PublicKey> out;
  JwkOptions jwk_options;
  jwk_options.legacy = options.legacy;
  size_t i = 0;
  for (auto k : keys) {
    if (i >= kMaxKeys) return ResourceExhausted("jwks: more than 64 keys");
    simdjson::dom::object key_obj;
    std::string_view kty, kid;
    const bool is_object = k.get(key_obj) == simdjson::SUCCESS;
    const bool has_kid = is_object && key_obj.at_key("kid").get(kid) == simdjson::SUCCESS;
    // Errors name the key: its index, and its kid when it has one.
    auto fail = [&](const Status& st) {
      std::string name = "jwks: key " + std::to_string(i);
      if (has_kid) name += " (kid `" + std::string(kid.substr(0, 64)) + "`)";
      return Status(st.code(), name + ": " + st.message());
    };
    bool skip = false;
    if (options.skip_unsupported && is_object) {
      // Private members fail the set even in a key that would be skipped:
      // a private key published as a verification key is a leak to report.
      for (const char* m : {"d", "p", "q", "dp", "dq", "qi", "oth"}) {
        simdjson::dom::element e;
        if (key_obj.at_key(m).get(e) == simdjson::SUCCESS) {
          return fail(InvalidArgument(std::string("jwk: holds private member `") + m + "`"));
        }
      }
      if (key_obj.at_key("kty").get(kty) == simdjson::SUCCESS && kty != "RSA" && kty != "EC" &&
          kty != "OKP") {
        skip = true;  // "oct" and unknown types
      }
    }
    if (!skip) {
      std::string text = simdjson::minify(k);
      auto key = ParseJwk(text, jwk_options);
      if (key.ok()) {
        out.push_back(std::move(key).value());
      } else if (options.skip_unsupported && key.status().code() == StatusCode::kUnsupported) {
        skip = true;
      } else {
        return fail(key.status());
      }
    }
    if (skip && skipped != nullptr) {
      skipped->push_back(has_kid ? std::string(kid.substr(0, 256)) : "#" + std::to_string(i));
    }
    ++i;
  }
  return out;
}

namespace {

// The DER form (ECDSA-Sig-Value, RFC 3279) of an IEEE P1363 r||s signature of
// 2 x 32 bytes, as i2d_ECDSA_SIG writes it: each INTEGER minimal (leading
// zero bytes dropped, one kept for zero) with a 0x00 before a high bit.
// Returns its length (at most 72) in `out`.
size_t Es256Der(std::string_view p1363, unsigned char out[72]) {
  size_t n = 2;
  for (int half = 0; half < 2; ++half) {
    const unsigned char* v = Bytes(p1363) + 32 * half;
    size_t skip = 0;
    while (skip < 31 && v[skip] == 0) ++skip;
    const bool pad = v[skip] >= 0x80;
    out[n++] = 0x02;
    out[n++] = static_cast<unsigned char>(32 - skip + (pad ? 1 : 0));
    if (pad) out[n++] = 0x00;
    std::memcpy(out + n, v + skip, 32 - skip);
    n += 32 - skip;
  }
  out[0] = 0x30;
  out[1] = static_cast<unsigned char>(n - 2);
  return n;
}

// ES256 verification context of `pkey` for this thread. EVP_DigestVerifyInit
// fetches the algorithms and builds a context on every call (a few
// microseconds with OpenSSL 3.0); a context set up once with
// EVP_PKEY_verify_init verifies any number of digests (ECDSA keeps no state
// between verifications). Direct-mapped, 16 slots per thread; each context
// holds a reference to its key, so a cached pointer never names another
// key. Null if OpenSSL refuses (the caller then takes the general path).
EVP_PKEY_CTX* Es256Context(EVP_PKEY* pkey) {
  struct Slot {
    EVP_PKEY* key = nullptr;
    EVP_PKEY_CTX* ctx = nullptr;
    ~Slot() { EVP_PKEY_CTX_free(ctx); }
  };
  thread_local std::array<Slot, 16> slots;
  Slot& slot = slots[(reinterpret_cast<uintptr_t>(pkey) >> 6) % slots.size()];
  if (slot.ctx != nullptr && slot.key == pkey) return slot.ctx;
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
  if (!ctx || EVP_PKEY_verify_init(ctx.get()) != 1) {
    ERR_clear_error();
    return nullptr;
  }
  EVP_PKEY_CTX_free(slot.ctx);
  slot.ctx = ctx.release();
  slot.key = pkey;
  return slot.ctx;
}

// SHA-256 through an implementation fetched once (EVP_sha256() makes
// EVP_Digest fetch it again on every call).
bool Sha256Digest(std::string_view in, unsigned char out[32]) {
  static EVP_MD* const md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned int len = 0;
  return md != nullptr && EVP_Digest(in.data(), in.size(), out, &len, md, nullptr) == 1 &&
         len == 32;
}

}  // namespace

Status VerifyJws(const PublicKey& key, JwsAlg alg, std::string_view signing_input,
                 std::string_view signature) {
  if (key.pkey() == nullptr) return Unauth("jws: no key");
  if (alg != key.alg()) {
    return Unauth(std::string("jws: algorithm ") + JwsAlgName(alg) + " does not match the " +
                  key.kty() + " key, which is used with " + JwsAlgName(key.alg()));
  }
  std::string der;
  std::string_view sig = signature;
  const EVP_MD* md = EVP_sha256();
  if (alg == JwsAlg::kES256) {
    if (signature.size() != 64) return Unauth("jws: ES256 signature is not 64 bytes (r||s)");
    // The common case: a cached context verifies the digest directly (the
    // same computation as EVP_DigestVerify with SHA-256, without the
    // per-call fetches and allocations).
    unsigned char der_buf[72];
    unsigned char digest[32];
    if (EVP_PKEY_CTX* pctx = Es256Context(key.pkey());
        pctx != nullptr && Sha256Digest(signing_input, digest)) {
      const size_t der_len = Es256Der(signature, der_buf);
      if (EVP_PKEY_verify(pctx, der_buf, der_len, digest, sizeof digest) != 1) {
        ERR_clear_error();
        return Unauth("jws: signature does not verify");
      }
      return Status::Ok();
    }
    SigPtr es(ECDSA_SIG_new());
    BnPtr r(BN_bin2bn(Bytes(signature), 32, nullptr));
    BnPtr s(BN_bin2bn(Bytes(signature) + 32, 32, nullptr));
    if (!es || !r || !s || ECDSA_SIG_set0(es.get(), r.get(), s.get()) != 1) {
      return Unauth("jws: cannot convert ES256 signature");
    }
    r.release();
    s.release();
    unsigned char* buf = nullptr;
    int len = i2d_ECDSA_SIG(es.get(), &buf);
    if (len <= 0) return Unauth("jws: cannot encode ES256 signature");
    der.assign(reinterpret_cast<char*>(buf), static_cast<size_t>(len));
    OPENSSL_free(buf);
    sig = der;
  } else if (alg == JwsAlg::kEdDSA) {
    if (signature.size() != 64) return Unauth("jws: EdDSA signature is not 64 bytes");
    md = nullptr;
  } else if (signature.size() != static_cast<size_t>(EVP_PKEY_get_size(key.pkey()))) {
    return Unauth(std::string("jws: ") + JwsAlgName(alg) +
                  " signature length differs from the modulus length");
  }
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key.pkey()) != 1) {
    ERR_clear_error();
    return Unauth("jws: cannot initialise verification");
  }
  if (alg == JwsAlg::kPS256 && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1 ||
                                EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1)) {
    ERR_clear_error();
    return Unauth("jws: cannot set RSASSA-PSS parameters");
  }
  if (alg == JwsAlg::kRS256 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    ERR_clear_error();
    return Unauth("jws: cannot set RSASSA-PKCS1-v1_5 padding");
  }
  int rc = EVP_DigestVerify(ctx.get(), Bytes(sig), sig.size(), Bytes(signing_input),
                            signing_input.size());
  if (rc != 1) {
    ERR_clear_error();
    return Unauth("jws: signature does not verify");
  }
  return Status::Ok();
}

std::string JwkThumbprint(const PublicKey& key) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  const std::string& in = key.thumbprint_input();
  unsigned int len = 0;
  EVP_Digest(in.data(), in.size(), digest, &len, EVP_sha256(), nullptr);
  return Base64UrlEncode(std::string_view(reinterpret_cast<char*>(digest), len));
}

Result<const PublicKey*> SelectKey(const std::vector<PublicKey>& keys, std::string_view kid,
                                   JwsAlg alg) {
  const PublicKey* found = nullptr;
  bool kid_known = false;
  for (const PublicKey& k : keys) {
    if (k.kid() != kid) continue;
    kid_known = true;
    if (k.alg() != alg) continue;
    if (found != nullptr) return Unauth("jws: two keys match kid and algorithm");
    found = &k;
  }
  if (!kid_known) return NotFound("jws: unknown kid `" + std::string(kid.substr(0, 64)) + "`");
  if (found == nullptr) {
    return Unauth(std::string("jws: no key with this kid for ") + JwsAlgName(alg));
  }
  return found;
}

Result<std::string> SignJws(EVP_PKEY* private_key, JwsAlg alg, std::string_view header_json,
                            std::string_view payload_json) {
  if (private_key == nullptr) return InvalidArgument("sign: no key");
  const char* type = alg == JwsAlg::kPS256 || alg == JwsAlg::kRS256 ? "RSA"
                     : alg == JwsAlg::kES256                            ? "EC"
                                                                        : "ED25519";
  if (EVP_PKEY_is_a(private_key, type) != 1) {
    return InvalidArgument(std::string("sign: key is not of the type ") + JwsAlgName(alg) +
                           " needs");
  }
  std::string input = Base64UrlEncode(header_json) + "." + Base64UrlEncode(payload_json);
  MdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  const EVP_MD* md = alg == JwsAlg::kEdDSA ? nullptr : EVP_sha256();
  if (!ctx || EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, private_key) != 1) {
    ERR_clear_error();
    return Internal("sign: cannot initialise signing");
  }
  if (alg == JwsAlg::kPS256 && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
                                EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) != 1 ||
                                EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1)) {
    ERR_clear_error();
    return Internal("sign: cannot set RSASSA-PSS parameters");
  }
  if (alg == JwsAlg::kRS256 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1) {
    ERR_clear_error();
    return Internal("sign: cannot set RSASSA-PKCS1-v1_5 padding");
  }
  size_t len = 0;
  if (EVP_DigestSign(ctx.get(), nullptr, &len, Bytes(input), input.size()) != 1) {
    ERR_clear_error();
    return Internal("sign: cannot size signature");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, Bytes(input),
                     input.size()) != 1) {
    ERR_clear_error();
    return Internal("sign: signing failed");
  }
  sig.resize(len);
  if (alg == JwsAlg::kES256) {
    const unsigned char* p = Bytes(sig);
    SigPtr es(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size())));
    if (!es) return Internal("sign: cannot decode ECDSA signature");
    std::string raw(64, '\0');
    auto* out = reinterpret_cast<unsigned char*>(raw.data());
    if (BN_bn2binpad(ECDSA_SIG_get0_r(es.get()), out, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(es.get()), out + 32, 32) != 32) {
      return Internal("sign: ECDSA signature component too large");
    }
    sig = std::move(raw);
  }
  return input + "." + Base64UrlEncode(sig);
}

}  // namespace vakt::bytecode
