// The control plane's security pieces: bundle signatures (the verify side in
// bytecode/bundle_signature.h, the sign side in controlplane/signing.h, and
// the Wycheproof Ed25519 vectors through the raw verify), crash-safe secret
// files (controlplane/secret_file.h), and API tokens, roles and bearer
// parsing (controlplane/auth.h). Every branch has a positive and a negative
// case. The Wycheproof test skips loudly when the vectors are absent.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <simdjson.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "bytecode/bundle_signature.h"
#include "bytecode/sha256.h"
#include "controlplane/auth.h"
#include "controlplane/secret_file.h"
#include "controlplane/signing.h"

namespace vakt::controlplane {
namespace {

namespace fs = std::filesystem;
using bytecode::TrustedKeys;

// A fresh directory, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "/vakt_cp_sec_XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteRaw(const std::string& path, const std::string& content, mode_t mode) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << content;
  }
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::string DigestHex(std::string_view bytes) {
  auto d = bytecode::Sha256(bytes);
  return bytecode::HexLower(d.data(), d.size());
}

// A fresh Ed25519 signer (no files).
BundleSigner NewSigner() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  EXPECT_NE(key, nullptr);
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(key);
  auto s = BundleSigner::FromPem(pem);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(s).value();
}

// An EC P-256 key pair as PEM texts: a valid key of the wrong type.
struct PemPair {
  std::string private_pem, public_pem;
};
PemPair EcKeyPem() {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  EXPECT_NE(key, nullptr);
  PemPair out;
  for (int pub = 0; pub < 2; ++pub) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (pub) {
      PEM_write_bio_PUBKEY(bio, key);
    } else {
      PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    }
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    (pub ? out.public_pem : out.private_pem).assign(data, static_cast<size_t>(n));
    BIO_free(bio);
  }
  EVP_PKEY_free(key);
  return out;
}

const std::string kBundle = "VAKT\x01 pretend bundle bytes \x00\xff with binary";

// ---------------------------------------------------------------- message

TEST(BundleSignature, MessageFormatIsExact) {
  std::string digest(64, 'a');
  EXPECT_EQ(bytecode::SignedBundleMessage("healthcare", 7, digest),
            "vakt-bundle-signature-v1\nhealthcare\n7\n" + digest);
  EXPECT_EQ(bytecode::SignedBundleMessage("p", 18446744073709551615ull, "d"),
            "vakt-bundle-signature-v1\np\n18446744073709551615\nd");
  // Policy, version and digest are all bound: changing any changes the bytes.
  EXPECT_NE(bytecode::SignedBundleMessage("a", 1, digest),
            bytecode::SignedBundleMessage("a", 2, digest));
  EXPECT_NE(bytecode::SignedBundleMessage("a", 1, digest),
            bytecode::SignedBundleMessage("b", 1, digest));
  // Splitting from the end is unique: a newline in the policy cannot shift
  // the version.
  EXPECT_NE(bytecode::SignedBundleMessage("a\n1", 2, digest),
            bytecode::SignedBundleMessage("a", 12, digest));
}

TEST(BundleSignature, KeyIdIsShaPrefix) {
  std::string raw(32, '\x07');
  std::string id = bytecode::KeyIdOf(raw);
  EXPECT_EQ(id.size(), 16u);
  EXPECT_EQ(id, DigestHex(raw).substr(0, 16));
  EXPECT_NE(id, bytecode::KeyIdOf(std::string(32, '\x08')));
}

// ---------------------------------------------------------------- sign and verify

TEST(BundleSignature, SignVerifyRoundTrip) {
  BundleSigner signer = NewSigner();
  auto sig = signer.Sign("healthcare", 7, DigestHex(kBundle));
  ASSERT_TRUE(sig.ok()) << sig.status().ToString();
  EXPECT_EQ(sig->size(), 64u);
  // Ed25519 is deterministic.
  EXPECT_EQ(*sig, *signer.Sign("healthcare", 7, DigestHex(kBundle)));

  TrustedKeys keys;
  auto id = keys.AddPem(signer.public_key_pem());
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, signer.key_id());
  EXPECT_EQ(signer.key_id(), bytecode::KeyIdOf(signer.public_key_raw()));
  EXPECT_TRUE(keys.Verify("healthcare", 7, kBundle, *sig, signer.key_id()).ok());
  // The raw verify agrees on the exact message.
  EXPECT_TRUE(bytecode::VerifyEd25519(
      signer.public_key_raw(),
      bytecode::SignedBundleMessage("healthcare", 7, DigestHex(kBundle)), *sig));
  // The same key added raw has the same id.
  TrustedKeys raw_keys;
  EXPECT_EQ(*raw_keys.AddRaw(signer.public_key_raw()), signer.key_id());
  EXPECT_TRUE(raw_keys.Verify("healthcare", 7, kBundle, *sig, signer.key_id()).ok());
}

TEST(BundleSignature, TamperingIsRejected) {
  BundleSigner signer = NewSigner();
  std::string sig = *signer.Sign("healthcare", 7, DigestHex(kBundle));
  TrustedKeys keys;
  ASSERT_TRUE(keys.AddPem(signer.public_key_pem()).ok());
  auto denied = [&](std::string_view policy, uint64_t version, std::string_view bundle,
                    std::string_view s) {
    Status st = keys.Verify(policy, version, bundle, s, signer.key_id());
    EXPECT_EQ(st.code(), StatusCode::kPermissionDenied) << st.ToString();
    return st.message();
  };
  std::string bundle = kBundle;
  bundle[3] ^= 1;
  EXPECT_NE(denied("healthcare", 7, bundle, sig).find("bad bundle signature"), std::string::npos);
  EXPECT_FALSE(denied("healthcare", 7, kBundle + "x", sig).empty());
  // An old bundle replayed as a newer version, or under another policy.
  EXPECT_FALSE(denied("healthcare", 8, kBundle, sig).empty());
  EXPECT_FALSE(denied("healthcare", 6, kBundle, sig).empty());
  EXPECT_FALSE(denied("healthcarf", 7, kBundle, sig).empty());
  EXPECT_FALSE(denied("", 7, kBundle, sig).empty());
  // A flipped bit anywhere in the signature.
  for (size_t i = 0; i < sig.size(); i += 9) {
    std::string s = sig;
    s[i] ^= 0x40;
    EXPECT_FALSE(denied("healthcare", 7, kBundle, s).empty()) << i;
  }
}

TEST(BundleSignature, WrongAndUnknownKeys) {
  BundleSigner a = NewSigner();
  BundleSigner b = NewSigner();
  ASSERT_NE(a.key_id(), b.key_id());
  TrustedKeys keys;
  ASSERT_TRUE(keys.AddPem(a.public_key_pem()).ok());
  std::string by_b = *b.Sign("p", 1, DigestHex(kBundle));

  // Signed by b but claiming a's key id: a bad signature.
  Status st = keys.Verify("p", 1, kBundle, by_b, a.key_id());
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(st.message().find("bad bundle signature"), std::string::npos);

  // Honestly naming b, which is not trusted.
  st = keys.Verify("p", 1, kBundle, by_b, b.key_id());
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(st.message(), "bundle signed by unknown key " + b.key_id());

  // A malformed key id is not echoed.
  st = keys.Verify("p", 1, kBundle, by_b, "<script>\n");
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(st.message(), "bundle signed by unknown key (malformed key id)");
  st = keys.Verify("p", 1, kBundle, by_b, "");
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);
  st = keys.Verify("p", 1, kBundle, by_b, a.key_id().substr(0, 15) + "G");
  EXPECT_EQ(st.message(), "bundle signed by unknown key (malformed key id)");

  // No trusted keys at all.
  TrustedKeys none;
  EXPECT_TRUE(none.empty());
  st = none.Verify("p", 1, kBundle, by_b, b.key_id());
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);
  EXPECT_NE(st.message().find("no trusted bundle keys"), std::string::npos);
}

TEST(BundleSignature, KeyRotationTrustsTwoKeys) {
  BundleSigner old_key = NewSigner();
  BundleSigner new_key = NewSigner();
  std::string by_old = *old_key.Sign("p", 3, DigestHex(kBundle));
  std::string by_new = *new_key.Sign("p", 3, DigestHex(kBundle));

  // Step 1: agents trust both.
  TrustedKeys both;
  ASSERT_TRUE(both.AddPem(old_key.public_key_pem()).ok());
  ASSERT_TRUE(both.AddPem(new_key.public_key_pem()).ok());
  EXPECT_EQ(both.size(), 2u);
  auto ids = both.key_ids();
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()),
            (std::set<std::string>{old_key.key_id(), new_key.key_id()}));
  EXPECT_TRUE(both.Verify("p", 3, kBundle, by_old, old_key.key_id()).ok());
  EXPECT_TRUE(both.Verify("p", 3, kBundle, by_new, new_key.key_id()).ok());
  // Step 3: the old key dropped; re-signed bundles still verify, old ones not.
  TrustedKeys only_new;
  ASSERT_TRUE(only_new.AddPem(new_key.public_key_pem()).ok());
  EXPECT_TRUE(only_new.Verify("p", 3, kBundle, by_new, new_key.key_id()).ok());
  EXPECT_EQ(only_new.Verify("p", 3, kBundle, by_old, old_key.key_id()).code(),
            StatusCode::kPermissionDenied);
}

TEST(BundleSignature, EmptyAndWrongLengthSignatures) {
  BundleSigner signer = NewSigner();
  TrustedKeys keys;
  ASSERT_TRUE(keys.AddPem(signer.public_key_pem()).ok());
  Status st = keys.Verify("p", 1, kBundle, "", signer.key_id());
  EXPECT_EQ(st.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(st.message(), "bundle is not signed");
  st = keys.Verify("p", 1, kBundle, "", "");  // unsigned and no key id
  EXPECT_EQ(st.message(), "bundle is not signed");
  std::string sig = *signer.Sign("p", 1, DigestHex(kBundle));
  for (std::string s : {sig.substr(0, 63), sig + "x", std::string(1, '\0'),
                        std::string(1024 * 1024, 'z')}) {
    st = keys.Verify("p", 1, kBundle, s, signer.key_id());
    EXPECT_EQ(st.code(), StatusCode::kPermissionDenied) << s.size();
    EXPECT_NE(st.message().find("an Ed25519 signature is 64"), std::string::npos);
  }
  // 64 zero bytes: right length, wrong signature.
  EXPECT_EQ(keys.Verify("p", 1, kBundle, std::string(64, '\0'), signer.key_id()).code(),
            StatusCode::kPermissionDenied);
}

TEST(BundleSignature, ArbitraryInputsNeverCrash) {
  BundleSigner signer = NewSigner();
  TrustedKeys keys;
  ASSERT_TRUE(keys.AddRaw(signer.public_key_raw()).ok());
  uint64_t x = 0x9e3779b97f4a7c15ull;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  for (int i = 0; i < 500; ++i) {
    std::string sig(next() % 130, '\0'), id(next() % 20, '\0'), bundle(next() % 64, '\0');
    for (char& c : sig) c = static_cast<char>(next());
    for (char& c : id) c = static_cast<char>(next());
    for (char& c : bundle) c = static_cast<char>(next());
    if (i % 3 == 0) id = signer.key_id();
    EXPECT_FALSE(keys.Verify(bundle, next(), bundle, sig, id).ok());
    EXPECT_FALSE(bytecode::VerifyEd25519(sig.substr(0, 32), bundle, sig));
  }
  // Raw verify rejects wrong sizes up front.
  EXPECT_FALSE(bytecode::VerifyEd25519(std::string(31, 'k'), "m", std::string(64, 's')));
  EXPECT_FALSE(bytecode::VerifyEd25519(std::string(32, 'k'), "m", std::string(65, 's')));
}

// ---------------------------------------------------------------- trusted keys

TEST(TrustedKeysTest, RefusesNonEd25519AndGarbage) {
  TrustedKeys keys;
  PemPair ec = EcKeyPem();
  auto r = keys.AddPem(ec.public_pem);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("EC"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("not Ed25519"), std::string::npos);

  // A private key where a public one belongs.
  r = keys.AddPem(ec.private_pem);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("BEGIN PUBLIC KEY"), std::string::npos);
  // Garbage inside the armour.
  r = keys.AddPem("-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "malformed PEM public key");
  r = keys.AddPem("");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  r = keys.AddPem(std::string(bytecode::kMaxPublicKeyFileBytes + 1, '-'));
  EXPECT_NE(r.status().message().find("larger than"), std::string::npos);
  // Raw keys must be 32 bytes.
  EXPECT_EQ(keys.AddRaw(std::string(31, 'k')).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(keys.AddRaw("").status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(keys.empty());
}

TEST(TrustedKeysTest, DuplicatesAndLimit) {
  TrustedKeys keys;
  std::string raw(32, '\0');
  EXPECT_TRUE(keys.AddRaw(raw).ok());
  EXPECT_TRUE(keys.AddRaw(raw).ok());  // same key again: same id
  EXPECT_EQ(keys.size(), 1u);
  for (size_t i = 1; i < bytecode::kMaxTrustedKeys; ++i) {
    raw[0] = static_cast<char>(i);
    ASSERT_TRUE(keys.AddRaw(raw).ok()) << i;
  }
  EXPECT_EQ(keys.size(), bytecode::kMaxTrustedKeys);
  EXPECT_TRUE(keys.AddRaw(raw).ok());  // re-adding at the limit is fine
  raw[0] = 'x';
  EXPECT_EQ(keys.AddRaw(raw).status().code(), StatusCode::kResourceExhausted);
}

TEST(TrustedKeysTest, LoadFromFiles) {
  TempDir dir;
  BundleSigner a = NewSigner();
  BundleSigner b = NewSigner();
  WriteRaw(dir / "a.pub", a.public_key_pem(), 0644);
  WriteRaw(dir / "b.pub", b.public_key_pem(), 0644);
  auto keys = TrustedKeys::LoadFromFiles({dir / "a.pub", dir / "b.pub"});
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_EQ(keys->size(), 2u);
  EXPECT_TRUE(
      keys->Verify("p", 1, kBundle, *b.Sign("p", 1, DigestHex(kBundle)), b.key_id()).ok());

  auto missing = TrustedKeys::LoadFromFiles({dir / "a.pub", dir / "nope.pub"});
  EXPECT_EQ(missing.status().code(), StatusCode::kIoError);
  EXPECT_NE(missing.status().message().find("nope.pub"), std::string::npos);

  WriteRaw(dir / "bad.pub", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", 0644);
  auto bad = TrustedKeys::LoadFromFiles({dir / "bad.pub"});
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("bad.pub"), std::string::npos);

  WriteRaw(dir / "big.pub", std::string(bytecode::kMaxPublicKeyFileBytes + 10, 'A'), 0644);
  auto big = TrustedKeys::LoadFromFiles({dir / "big.pub"});
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("larger than"), std::string::npos);

  auto none = TrustedKeys::LoadFromFiles({});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// ---------------------------------------------------------------- signing key files

TEST(BundleSigner, CreatesKeyFilesThenReloadsTheSameKey) {
  TempDir dir;
  auto first = BundleSigner::LoadOrCreate(dir.path());
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(ModeOf(dir / "signing.key"), 0600u);
  EXPECT_EQ(ModeOf(dir / "signing.pub"), 0644u);
  std::string key_pem = ReadAll(dir / "signing.key");
  EXPECT_EQ(key_pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);
  EXPECT_EQ(ReadAll(dir / "signing.pub"), first->public_key_pem());
  EXPECT_EQ(first->public_key_pem().rfind("-----BEGIN PUBLIC KEY-----", 0), 0u);
  // No temporary left behind.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    ++files;
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  }
  EXPECT_EQ(files, 2u);

  auto second = BundleSigner::LoadOrCreate(dir.path());
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->key_id(), first->key_id());
  EXPECT_EQ(ReadAll(dir / "signing.key"), key_pem);  // not regenerated

  // A missing or stale public file is rewritten from the key.
  fs::remove(dir / "signing.pub");
  ASSERT_TRUE(BundleSigner::LoadOrCreate(dir.path()).ok());
  EXPECT_EQ(ReadAll(dir / "signing.pub"), first->public_key_pem());
  WriteRaw(dir / "signing.pub", "stale", 0600);
  ASSERT_TRUE(BundleSigner::LoadOrCreate(dir.path()).ok());
  EXPECT_EQ(ReadAll(dir / "signing.pub"), first->public_key_pem());
  EXPECT_EQ(ModeOf(dir / "signing.pub"), 0644u);

  // The explicit --signing-key path loads the same key.
  auto explicit_key = BundleSigner::LoadFile(dir / "signing.key");
  ASSERT_TRUE(explicit_key.ok());
  EXPECT_EQ(explicit_key->key_id(), first->key_id());
  // Signatures of one verify with the public file of the other.
  TrustedKeys keys;
  ASSERT_TRUE(keys.AddPem(ReadAll(dir / "signing.pub")).ok());
  EXPECT_TRUE(keys.Verify("p", 9, kBundle, *explicit_key->Sign("p", 9, DigestHex(kBundle)),
                          first->key_id())
                  .ok());
}

TEST(BundleSigner, RefusesKeyFilesOthersCanRead) {
  TempDir dir;
  ASSERT_TRUE(BundleSigner::LoadOrCreate(dir.path()).ok());
  for (mode_t mode : {0644, 0640, 0604, 0602, 0660}) {
    ASSERT_EQ(::chmod((dir / "signing.key").c_str(), mode), 0);
    auto r = BundleSigner::LoadOrCreate(dir.path());
    ASSERT_FALSE(r.ok()) << std::oct << mode;
    EXPECT_EQ(r.status().code(), StatusCode::kPermissionDenied);
    EXPECT_NE(r.status().message().find("chmod 600"), std::string::npos) << r.status().message();
    EXPECT_EQ(BundleSigner::LoadFile(dir / "signing.key").status().code(),
              StatusCode::kPermissionDenied);
  }
  ASSERT_EQ(::chmod((dir / "signing.key").c_str(), 0400), 0);  // stricter is fine
  EXPECT_TRUE(BundleSigner::LoadFile(dir / "signing.key").ok());
}

TEST(BundleSigner, RefusesBadKeyFiles) {
  TempDir dir;
  // Not Ed25519.
  WriteRaw(dir / "ec.key", EcKeyPem().private_pem, 0600);
  auto r = BundleSigner::LoadFile(dir / "ec.key");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not Ed25519"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("ec.key"), std::string::npos);
  // Garbage PEM, a public key, an encrypted key, an empty file.
  for (const std::string& text :
       {std::string("-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZQ==\n-----END PRIVATE KEY-----\n"),
        NewSigner().public_key_pem(),
        std::string("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE "
                    "KEY-----\n"),
        std::string()}) {
    WriteRaw(dir / "bad.key", text, 0600);
    r = BundleSigner::LoadFile(dir / "bad.key");
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << text;
  }
  // Too large, missing, a directory.
  WriteRaw(dir / "big.key", std::string(kMaxSigningKeyFileBytes + 1, 'A'), 0600);
  EXPECT_EQ(BundleSigner::LoadFile(dir / "big.key").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(BundleSigner::LoadFile(dir / "missing.key").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(BundleSigner::LoadFile(dir.path()).status().code(), StatusCode::kInvalidArgument);
  // A data directory holding a garbage key is not silently replaced.
  fs::create_directory(dir / "data");
  WriteRaw(dir / "data/signing.key", "garbage", 0600);
  EXPECT_EQ(BundleSigner::LoadOrCreate(dir / "data").status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadAll(dir / "data/signing.key"), "garbage");
  // A data directory that does not exist.
  EXPECT_EQ(BundleSigner::LoadOrCreate(dir / "nope").status().code(), StatusCode::kIoError);
  // Non-Ed25519 PEM text directly.
  EXPECT_EQ(BundleSigner::FromPem(EcKeyPem().private_pem).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(BundleSigner, SignChecksItsInputs) {
  BundleSigner signer = NewSigner();
  std::string digest = DigestHex(kBundle);
  EXPECT_TRUE(signer.Sign("p", 1, digest).ok());
  EXPECT_EQ(signer.Sign("", 1, digest).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(signer.Sign("p", 0, digest).status().code(), StatusCode::kInvalidArgument);
  std::string upper = digest;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ASSERT_NE(upper, digest);
  EXPECT_EQ(signer.Sign("p", 1, upper).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(signer.Sign("p", 1, digest.substr(1)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(signer.Sign("p", 1, digest + "0").status().code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------- Wycheproof

std::string FromHex(std::string_view hex, bool* ok) {
  std::string out;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  *ok = hex.size() % 2 == 0;
  for (size_t i = 0; *ok && i < hex.size(); i += 2) {
    int hi = nib(hex[i]), lo = nib(hex[i + 1]);
    if (hi < 0 || lo < 0) *ok = false;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

TEST(Wycheproof, Ed25519RawVerify) {
  const std::string path = std::string(VAKT_VECTORS_DIR) + "/wycheproof/ed25519_test.json";
  if (!fs::exists(path)) {
    GTEST_SKIP() << "\n*** WYCHEPROOF VECTORS NOT FOUND at " << path
                 << " : THE ED25519 VECTOR TEST DID NOT RUN ***";
  }
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.load(path).get(doc), simdjson::SUCCESS);
  int64_t declared = 0;
  ASSERT_EQ(doc["numberOfTests"].get(declared), simdjson::SUCCESS);
  int total = 0, valid = 0, invalid = 0, mismatches = 0;
  simdjson::dom::array groups;
  ASSERT_EQ(doc["testGroups"].get(groups), simdjson::SUCCESS);
  for (simdjson::dom::element g : groups) {
    std::string_view pk_hex;
    ASSERT_EQ(g["publicKey"]["pk"].get(pk_hex), simdjson::SUCCESS);
    bool ok = false;
    std::string pk = FromHex(pk_hex, &ok);
    ASSERT_TRUE(ok);
    simdjson::dom::array tests;
    ASSERT_EQ(g["tests"].get(tests), simdjson::SUCCESS);
    for (simdjson::dom::element t : tests) {
      std::string_view msg_hex, sig_hex, result;
      int64_t id = 0;
      ASSERT_EQ(t["msg"].get(msg_hex), simdjson::SUCCESS);
      ASSERT_EQ(t["sig"].get(sig_hex), simdjson::SUCCESS);
      ASSERT_EQ(t["result"].get(result), simdjson::SUCCESS);
      ASSERT_EQ(t["tcId"].get(id), simdjson::SUCCESS);
      bool msg_ok = false, sig_ok = false;
      std::string msg = FromHex(msg_hex, &msg_ok), sig = FromHex(sig_hex, &sig_ok);
      ASSERT_TRUE(msg_ok) << id;
      // An undecodable signature cannot verify.
      bool accepted = sig_ok && bytecode::VerifyEd25519(pk, msg, sig);
      ++total;
      if (result == "valid") {
        ++valid;
      } else {
        ASSERT_EQ(result, "invalid") << "tcId " << id << ": Ed25519 has no `acceptable` cases";
        ++invalid;
      }
      bool expected = result == "valid";
      if (accepted != expected) {
        ++mismatches;
        ADD_FAILURE() << "tcId " << id << " expected " << result << ", got "
                      << (accepted ? "accepted" : "rejected");
      }
    }
  }
  std::printf("[wycheproof] ed25519_test.json (raw VerifyEd25519): %d tests (%d valid, %d "
              "invalid), %d mismatches\n",
              total, valid, invalid, mismatches);
  EXPECT_EQ(total, declared);
  EXPECT_GT(valid, 0);
  EXPECT_GT(invalid, 0);
}

// ---------------------------------------------------------------- secret files

TEST(SecretFile, WritesExactModeWhateverTheUmask) {
  TempDir dir;
  mode_t old = ::umask(0277);
  Status s = WriteFileAtomically(dir / "f", "hello", 0644, false);
  ::umask(old);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ModeOf(dir / "f"), 0644u);
  EXPECT_EQ(ReadAll(dir / "f"), "hello");
  ASSERT_TRUE(WriteFileAtomically(dir / "g", "", 0600, false).ok());
  EXPECT_EQ(ModeOf(dir / "g"), 0600u);
  EXPECT_EQ(ReadAll(dir / "g"), "");
}

TEST(SecretFile, ReplaceOrKeep) {
  TempDir dir;
  ASSERT_TRUE(WriteFileAtomically(dir / "f", "one", 0600, false).ok());
  Status s = WriteFileAtomically(dir / "f", "two", 0600, false);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("already exists"), std::string::npos);
  EXPECT_EQ(ReadAll(dir / "f"), "one");
  ASSERT_TRUE(WriteFileAtomically(dir / "f", "three", 0600, true).ok());
  EXPECT_EQ(ReadAll(dir / "f"), "three");
  // Neither success nor failure leaves a temporary.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1u);
  // A missing directory and a path without a file name.
  EXPECT_EQ(WriteFileAtomically(dir / "no/such", "x", 0600, false).code(), StatusCode::kIoError);
  EXPECT_EQ(WriteFileAtomically(dir.path() + "/", "x", 0600, false).code(),
            StatusCode::kInvalidArgument);
}

TEST(SecretFile, ReadSmallFile) {
  TempDir dir;
  WriteRaw(dir / "f", "abc", 0640);
  auto r = ReadSmallFile(dir / "f", 3);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->bytes, "abc");
  EXPECT_EQ(r->mode & 0777, 0640u);
  EXPECT_TRUE(S_ISREG(r->mode));
  EXPECT_EQ(ReadSmallFile(dir / "f", 2).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadSmallFile(dir / "nope", 10).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(ReadSmallFile(dir.path(), 10).status().code(), StatusCode::kInvalidArgument);
  // Symbolic links are followed (mounted secrets).
  fs::create_symlink(dir / "f", dir / "link");
  auto l = ReadSmallFile(dir / "link", 10);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->bytes, "abc");
}

// ---------------------------------------------------------------- tokens

TEST(Tokens, NewTokenFormat) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    auto t = NewToken();
    ASSERT_TRUE(t.ok());
    ASSERT_EQ(t->size(), 5u + 43u);
    EXPECT_EQ(t->rfind("vakt_", 0), 0u);
    for (char c : t->substr(5)) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') << *t;
    }
    EXPECT_TRUE(seen.insert(*t).second);
    auto parsed = ParseBearer("Bearer " + *t);
    ASSERT_TRUE(parsed.ok()) << *t;
    EXPECT_EQ(*parsed, *t);
  }
}

TEST(Tokens, TokenHash) {
  EXPECT_EQ(TokenHash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_NE(TokenHash("vakt_a"), TokenHash("vakt_b"));
  EXPECT_EQ(TokenHash("").size(), 64u);
}

TEST(Tokens, FirstAdminTokenFile) {
  TempDir dir;
  auto t = WriteFirstAdminToken(dir.path());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(ModeOf(dir / "admin.token"), 0600u);
  EXPECT_EQ(ReadAll(dir / "admin.token"), *t + "\n");
  EXPECT_TRUE(ParseBearer("Bearer " + *t).ok());
  // A first start that crashed before storing its principal: replaced.
  auto again = WriteFirstAdminToken(dir.path());
  ASSERT_TRUE(again.ok());
  EXPECT_NE(*again, *t);
  EXPECT_EQ(ReadAll(dir / "admin.token"), *again + "\n");
  EXPECT_EQ(ModeOf(dir / "admin.token"), 0600u);
  EXPECT_EQ(WriteFirstAdminToken(dir / "missing").status().code(), StatusCode::kIoError);
}

// ---------------------------------------------------------------- roles

TEST(Roles, RoleAllowsMatrix) {
  const Role roles[] = {Role::kViewer, Role::kAuthor, Role::kDeployer, Role::kAdmin};
  for (int have = 0; have < 4; ++have) {
    for (int need = 0; need < 4; ++need) {
      EXPECT_EQ(RoleAllows(roles[have], roles[need]), have >= need)
          << RoleName(roles[have]) << " needs " << RoleName(roles[need]);
    }
  }
  // Values outside the enum allow nothing and are satisfied by nothing.
  EXPECT_FALSE(RoleAllows(static_cast<Role>(0), Role::kViewer));
  EXPECT_FALSE(RoleAllows(static_cast<Role>(5), Role::kViewer));
  EXPECT_FALSE(RoleAllows(static_cast<Role>(99), Role::kAdmin));
  EXPECT_FALSE(RoleAllows(Role::kAdmin, static_cast<Role>(0)));
  EXPECT_FALSE(RoleAllows(Role::kAdmin, static_cast<Role>(5)));
}

TEST(Roles, RequiredRolePerMethod) {
  const std::pair<const char*, Role> expected[] = {
      {"Publish", Role::kAuthor},           {"ListVersions", Role::kViewer},
      {"GetVersion", Role::kViewer},        {"Diff", Role::kViewer},
      {"StartRollout", Role::kDeployer},    {"AdvanceRollout", Role::kDeployer},
      {"PauseRollout", Role::kDeployer},    {"ResumeRollout", Role::kDeployer},
      {"Rollback", Role::kDeployer},        {"GetRollout", Role::kViewer},
      {"ListRollouts", Role::kViewer},      {"ListAgents", Role::kViewer},
      {"AddRevocation", Role::kDeployer},   {"RemoveRevocation", Role::kDeployer},
      {"ListRevocations", Role::kViewer},   {"ListAudit", Role::kViewer},
      {"CreateToken", Role::kAdmin},        {"ListTokens", Role::kAdmin},
      {"DeleteToken", Role::kAdmin},        {"WhoAmI", Role::kViewer},
  };
  for (const auto& [method, role] : expected) {
    EXPECT_EQ(RequiredRole(method), role) << method;
    EXPECT_EQ(RequiredRole(std::string("/vakt.v1.AdminService/") + method), role) << method;
  }
  EXPECT_EQ(RequiredRole("Nope"), std::nullopt);
  EXPECT_EQ(RequiredRole(""), std::nullopt);
  EXPECT_EQ(RequiredRole("publish"), std::nullopt);  // case matters
  EXPECT_EQ(RequiredRole("/vakt.v1.AgentService/Publish"), std::nullopt);
  EXPECT_EQ(RequiredRole("/vakt.v1.AdminService/"), std::nullopt);
  EXPECT_EQ(RequiredRole("/Publish"), std::nullopt);
}

// ---------------------------------------------------------------- bearer parsing

TEST(Bearer, Accepts) {
  const std::pair<std::string, std::string> cases[] = {
      {"Bearer abc", "abc"},
      {"bearer abc", "abc"},
      {"BEARER abc", "abc"},
      {"bEaReR abc", "abc"},
      {"Bearer    abc", "abc"},
      {"  \tBearer abc \t ", "abc"},
      {"Bearer a-b.c_d~e+f/g", "a-b.c_d~e+f/g"},
      {"Bearer abc==", "abc=="},
      {"Bearer " + std::string(kMaxTokenLength, 'x'), std::string(kMaxTokenLength, 'x')},
  };
  for (const auto& [header, token] : cases) {
    auto r = ParseBearer(header);
    ASSERT_TRUE(r.ok()) << header << ": " << r.status().ToString();
    EXPECT_EQ(*r, token);
  }
}

TEST(Bearer, Refuses) {
  const std::pair<std::string, const char*> cases[] = {
      {"", "missing bearer token"},
      {" \t ", "missing bearer token"},
      {"Bearer", "not `Bearer <token>`"},
      {"Bearer ", "not `Bearer <token>`"},  // trimmed to "Bearer"
      {"Basic dXNlcjpwYXNz", "not `Bearer <token>`"},
      {"Bearerabc", "not `Bearer <token>`"},
      {"Bearer\tabc", "not `Bearer <token>`"},
      {"Bearxr abc", "not `Bearer <token>`"},
      {"Token abc", "not `Bearer <token>`"},
      {"Bearer abc def", "more than one bearer token"},
      {"Bearer abc\tdef", "more than one bearer token"},
      {"Bearer =abc", "malformed bearer token"},
      {"Bearer ab=c", "malformed bearer token"},
      {"Bearer a,b", "malformed bearer token"},
      {"Bearer a\"b", "malformed bearer token"},
      {std::string("Bearer a\0b", 10), "malformed bearer token"},
      {"Bearer caf\xc3\xa9", "malformed bearer token"},
      {"Bearer " + std::string(kMaxTokenLength + 1, 'x'), "bearer token too long"},
      {"Bearer " + std::string(kMaxAuthorizationHeaderBytes, 'x'),
       "authorization header too long"},
  };
  for (const auto& [header, text] : cases) {
    auto r = ParseBearer(header);
    ASSERT_FALSE(r.ok()) << header;
    EXPECT_EQ(r.status().code(), StatusCode::kUnauthenticated) << header;
    EXPECT_NE(r.status().message().find(text), std::string::npos)
        << header << ": " << r.status().message();
  }
}

}  // namespace
}  // namespace vakt::controlplane
