// Bundle signature verification with OpenSSL 3 EVP (see bundle_signature.h
// for the signed message and why it binds the policy and the version).
// Every OpenSSL failure clears the thread's error queue so that no stale
// error leaks into unrelated code. Tested by tests/cp_security_test.cc.
#include "bytecode/bundle_signature.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <fstream>
#include <iterator>
#include <memory>

#include "bytecode/sha256.h"

namespace vakt::bytecode {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

bool IsKeyId(std::string_view id) {
  if (id.size() != kKeyIdLength) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string SignedBundleMessage(std::string_view policy, uint64_t version,
                                std::string_view bundle_digest_hex) {
  std::string m;
  m.reserve(kBundleSignaturePrefix.size() + policy.size() + 22 + bundle_digest_hex.size());
  m.append(kBundleSignaturePrefix);
  m.append(policy);
  m.push_back('\n');
  m.append(std::to_string(version));
  m.push_back('\n');
  m.append(bundle_digest_hex);
  return m;
}

std::string KeyIdOf(std::string_view raw_public_key) {
  auto d = Sha256(raw_public_key);
  return HexLower(d.data(), kKeyIdLength / 2);
}

bool VerifyEd25519(std::string_view raw_public_key, std::string_view message,
                   std::string_view signature) {
  if (raw_public_key.size() != kEd25519PublicKeySize) return false;
  if (signature.size() != kEd25519SignatureSize) return false;
  PkeyPtr key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, Bytes(raw_public_key),
                                          raw_public_key.size()));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  bool ok = key && ctx &&
            EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
            EVP_DigestVerify(ctx.get(), Bytes(signature), signature.size(), Bytes(message),
                             message.size()) == 1;
  if (!ok) ERR_clear_error();
  return ok;
}

Result<std::string> Ed25519PublicKeyFromPem(std::string_view pem) {
  if (pem.size() > kMaxPublicKeyFileBytes) {
    return InvalidArgument("public key PEM larger than " +
                           std::to_string(kMaxPublicKeyFileBytes) + " bytes");
  }
  if (pem.find("-----BEGIN PUBLIC KEY-----") == std::string_view::npos) {
    return InvalidArgument("not a PEM public key (expected -----BEGIN PUBLIC KEY-----)");
  }
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) {
    ERR_clear_error();
    return InvalidArgument("malformed PEM public key");
  }
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_ED25519) {
    const char* type = EVP_PKEY_get0_type_name(key.get());
    return InvalidArgument(std::string("public key is ") + (type ? type : "of an unknown type") +
                           ", not Ed25519: bundle keys must be Ed25519");
  }
  std::string raw(kEd25519PublicKeySize, '\0');
  size_t len = raw.size();
  if (EVP_PKEY_get_raw_public_key(key.get(), reinterpret_cast<unsigned char*>(raw.data()),
                                  &len) != 1 ||
      len != kEd25519PublicKeySize) {
    ERR_clear_error();
    return InvalidArgument("cannot read the raw Ed25519 public key");
  }
  return raw;
}

Result<std::string> TrustedKeys::AddRaw(std::string_view raw_public_key) {
  if (raw_public_key.size() != kEd25519PublicKeySize) {
    return InvalidArgument("an Ed25519 public key is 32 bytes, not " +
                           std::to_string(raw_public_key.size()));
  }
  std::string id = KeyIdOf(raw_public_key);
  if (keys_.find(id) == keys_.end() && keys_.size() >= kMaxTrustedKeys) {
    return ResourceExhausted("more than " + std::to_string(kMaxTrustedKeys) +
                             " trusted bundle keys");
  }
  keys_[id] = std::string(raw_public_key);
  return id;
}

Result<std::string> TrustedKeys::AddPem(std::string_view pem) {
  auto raw = Ed25519PublicKeyFromPem(pem);
  if (!raw.ok()) return raw.status();
  return AddRaw(*raw);
}

Result<TrustedKeys> TrustedKeys::LoadFromFiles(const std::vector<std::string>& paths) {
  TrustedKeys keys;
  for (const std::string& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return IoError("cannot read trusted key " + path);
    std::string pem;
    char buf[4096];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
      pem.append(buf, static_cast<size_t>(in.gcount()));
      if (pem.size() > kMaxPublicKeyFileBytes) {
        return InvalidArgument("trusted key " + path + ": larger than " +
                               std::to_string(kMaxPublicKeyFileBytes) + " bytes");
      }
    }
    if (in.bad()) return IoError("cannot read trusted key " + path);
    auto id = keys.AddPem(pem);
    if (!id.ok()) return Status(id.status().code(), "trusted key " + path + ": " +
                                                        id.status().message());
  }
  return keys;
}

Status TrustedKeys::Verify(std::string_view policy, uint64_t version, std::string_view bundle,
                           std::string_view signature, std::string_view key_id) const {
  if (signature.empty()) return {StatusCode::kPermissionDenied, "bundle is not signed"};
  if (keys_.empty()) {
    return {StatusCode::kPermissionDenied, "no trusted bundle keys: cannot verify the bundle"};
  }
  auto it = keys_.find(key_id);
  if (it == keys_.end()) {
    // The id comes from the wire: echo it only when it has the expected form.
    return {StatusCode::kPermissionDenied,
            IsKeyId(key_id) ? "bundle signed by unknown key " + std::string(key_id)
                            : std::string("bundle signed by unknown key (malformed key id)")};
  }
  if (signature.size() != kEd25519SignatureSize) {
    return {StatusCode::kPermissionDenied, "bad bundle signature: " +
                                               std::to_string(signature.size()) +
                                               " bytes, an Ed25519 signature is 64"};
  }
  auto d = Sha256(bundle);
  std::string message = SignedBundleMessage(policy, version, HexLower(d.data(), d.size()));
  if (!VerifyEd25519(it->second, message, signature)) {
    return {StatusCode::kPermissionDenied,
            "bad bundle signature (key " + it->first + ", version " + std::to_string(version) +
                ")"};
  }
  return Status::Ok();
}

std::vector<std::string> TrustedKeys::key_ids() const {
  std::vector<std::string> ids;
  ids.reserve(keys_.size());
  for (const auto& [id, raw] : keys_) ids.push_back(id);
  return ids;
}

}  // namespace vakt::bytecode
