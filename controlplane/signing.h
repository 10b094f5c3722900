// Bundle signatures, sign side: the control plane's Ed25519 key and the
// signatures it puts on every published version (the message is
// bytecode::SignedBundleMessage; agents verify with bytecode::TrustedKeys).
//
// Key files (docs/controlplane-security.md): DATA_DIR/signing.key holds the
// private key as unencrypted PKCS#8 PEM, mode 0600, and DATA_DIR/signing.pub
// the public key as SubjectPublicKeyInfo PEM, mode 0644, for distribution to
// agents. The first start creates both, crash-safely (secret_file.h); later
// starts load the key and rewrite signing.pub if it is missing or stale. A
// key file that group or others may access is refused: a leaked signing key
// lets its holder push any policy to every agent.
//
// Thread-safety: a BundleSigner is immutable; Sign may be called from
// several threads at once (each call uses its own EVP context).
// Cost: Sign is one Ed25519 signature over a message of the policy name's
// size plus 100 bytes. Tested by tests/cp_security_test.cc.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "bytecode/status.h"

namespace vakt::controlplane {

inline constexpr size_t kMaxSigningKeyFileBytes = 16 * 1024;

class BundleSigner {
 public:
  // Loads DATA_DIR/signing.key, or creates it and signing.pub when it does
  // not exist. data_dir must exist.
  static Result<BundleSigner> LoadOrCreate(const std::string& data_dir);
  // An explicit key file (--signing-key): an Ed25519 PKCS#8 PEM private key
  // of mode 0600 or stricter (kPermissionDenied otherwise, saying chmod 600).
  static Result<BundleSigner> LoadFile(const std::string& path);
  // From PEM text, without any file checks (tests, tooling).
  static Result<BundleSigner> FromPem(std::string_view private_key_pem);

  // First 16 hex digits of SHA-256 of the raw public key (bytecode::KeyIdOf).
  const std::string& key_id() const { return key_id_; }
  const std::string& public_key_pem() const { return public_pem_; }
  const std::string& public_key_raw() const { return public_raw_; }

  // The 64-byte Ed25519 signature of
  // SignedBundleMessage(policy, version, bundle_digest_hex).
  // kInvalidArgument unless the digest is 64 lowercase hex digits, the
  // policy non-empty and the version non-zero.
  Result<std::string> Sign(std::string_view policy, uint64_t version,
                           std::string_view bundle_digest_hex) const;

 private:
  struct KeyFree {
    void operator()(EVP_PKEY* p) const;
  };
  BundleSigner() = default;
  static Result<BundleSigner> FromKey(EVP_PKEY* key);  // takes ownership

  std::unique_ptr<EVP_PKEY, KeyFree> key_;
  std::string key_id_;
  std::string public_pem_;
  std::string public_raw_;
};

}  // namespace vakt::controlplane
