// Bundle signatures, verify side: what an agent checks before it runs a
// bundle pushed by the control plane. It lives in the bytecode library
// because agents link only vakt::bytecode; the sign side is
// controlplane/signing.h.
//
// The control plane signs, with Ed25519 (RFC 8032, pure, no pre-hash), the
// bytes of SignedBundleMessage:
//
//   "vakt-bundle-signature-v1\n" policy "\n" version "\n" digest
//
// where version is the decimal bundle version without leading zeros and
// digest the lowercase hex SHA-256 of the bundle (64 characters). The
// prefix separates this use of the key from any other; the policy and the
// version are signed with the digest so that an old bundle cannot be
// replayed as a newer version, nor a bundle of one policy as another's.
// Version and digest contain no newline, so the message splits uniquely from
// its end: distinct (policy, version, digest) triples never share a message.
//
// A key is named by its key id, the first 16 hex digits of SHA-256 of the
// raw 32-byte public key. Agents trust several keys at once for rotation
// (docs/controlplane-security.md).
//
// Every input is untrusted: nothing here crashes or throws on any bytes.
// Cost: one SHA-256 over the bundle (linear) and one Ed25519 verification.
// Thread-safety: free functions are reentrant; a TrustedKeys is immutable
// after loading and may then be shared between threads.
// Tested by tests/cp_security_test.cc (with the Wycheproof Ed25519 vectors).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/status.h"

namespace vakt::bytecode {

inline constexpr std::string_view kBundleSignaturePrefix = "vakt-bundle-signature-v1\n";
inline constexpr size_t kEd25519PublicKeySize = 32;
inline constexpr size_t kEd25519SignatureSize = 64;
inline constexpr size_t kKeyIdLength = 16;          // hex digits
inline constexpr size_t kMaxTrustedKeys = 16;       // more is a configuration mistake
inline constexpr size_t kMaxPublicKeyFileBytes = 16 * 1024;

// The exact bytes signed for a bundle (see the top of this file).
// REQUIRES: bundle_digest_hex is the lowercase hex SHA-256 of the bundle.
std::string SignedBundleMessage(std::string_view policy, uint64_t version,
                                std::string_view bundle_digest_hex);

// First 16 lowercase hex digits of SHA-256(raw_public_key).
std::string KeyIdOf(std::string_view raw_public_key);

// Raw Ed25519 verification (RFC 8032): false unless the key is 32 bytes,
// the signature 64 bytes and OpenSSL accepts it. Exposed for the Wycheproof
// vectors.
bool VerifyEd25519(std::string_view raw_public_key, std::string_view message,
                   std::string_view signature);

// The raw 32-byte key of a PEM SubjectPublicKeyInfo ("BEGIN PUBLIC KEY").
// kInvalidArgument for anything else, naming the key type when OpenSSL
// parsed a key that is not Ed25519.
Result<std::string> Ed25519PublicKeyFromPem(std::string_view pem);

// The Ed25519 public keys an agent trusts for bundles, by key id.
// Not thread-safe while keys are added; immutable afterwards.
class TrustedKeys {
 public:
  // Each returns the key id of the added key. Adding a key twice is fine
  // (same id); more than kMaxTrustedKeys distinct keys is kResourceExhausted.
  Result<std::string> AddPem(std::string_view pem);
  Result<std::string> AddRaw(std::string_view raw_public_key);

  // One PEM public key per file. kIoError if a file cannot be read, and the
  // file's path in every error.
  static Result<TrustedKeys> LoadFromFiles(const std::vector<std::string>& paths);

  // OK if `signature` is a valid signature by the trusted key `key_id` of
  // SignedBundleMessage(policy, version, SHA-256 hex of `bundle`).
  // kPermissionDenied otherwise: "bundle is not signed" (empty signature),
  // "bundle signed by unknown key <id>", a wrong signature length, or
  // "bad bundle signature".
  Status Verify(std::string_view policy, uint64_t version, std::string_view bundle,
                std::string_view signature, std::string_view key_id) const;

  bool empty() const { return keys_.empty(); }
  size_t size() const { return keys_.size(); }
  std::vector<std::string> key_ids() const;

 private:
  std::map<std::string, std::string, std::less<>> keys_;  // key id -> raw key
};

}  // namespace vakt::bytecode
