// The control plane's Ed25519 signing key: creation, loading with file-mode
// checks, and signing (see signing.h). OpenSSL 3 EVP only; every OpenSSL
// failure clears the thread's error queue.
#include "controlplane/signing.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <cstdio>

#include "bytecode/bundle_signature.h"
#include "controlplane/secret_file.h"

namespace vakt::controlplane {
namespace {

struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};

// Never prompt on a terminal for an encrypted key: fail instead.
int NoPassword(char*, int, int, void*) { return -1; }

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 && data ? std::string(data, static_cast<size_t>(n)) : std::string();
}

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string ModeText(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

}  // namespace

void BundleSigner::KeyFree::operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }

Result<BundleSigner> BundleSigner::FromKey(EVP_PKEY* key) {
  BundleSigner s;
  s.key_.reset(key);
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
    const char* type = EVP_PKEY_get0_type_name(key);
    return InvalidArgument(std::string("signing key is ") + (type ? type : "of an unknown type") +
                           ", not Ed25519: only Ed25519 signing keys are supported");
  }
  std::string raw(bytecode::kEd25519PublicKeySize, '\0');
  size_t len = raw.size();
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  if (EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(raw.data()), &len) !=
          1 ||
      len != raw.size() || !bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) {
    ERR_clear_error();
    return Internal("cannot export the Ed25519 public key");
  }
  s.public_raw_ = raw;
  s.key_id_ = bytecode::KeyIdOf(raw);
  s.public_pem_ = BioText(bio.get());
  return s;
}

Result<BundleSigner> BundleSigner::FromPem(std::string_view private_key_pem) {
  if (private_key_pem.size() > kMaxSigningKeyFileBytes) {
    return InvalidArgument("signing key PEM larger than " +
                           std::to_string(kMaxSigningKeyFileBytes) + " bytes");
  }
  if (private_key_pem.find("-----BEGIN PRIVATE KEY-----") == std::string_view::npos) {
    return InvalidArgument(
        "not an unencrypted PKCS#8 PEM private key (expected -----BEGIN PRIVATE KEY-----)");
  }
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(private_key_pem.data(), static_cast<int>(private_key_pem.size())));
  EVP_PKEY* key =
      bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr) : nullptr;
  if (!key) {
    ERR_clear_error();
    return InvalidArgument("malformed PEM private key");
  }
  return FromKey(key);
}

Result<BundleSigner> BundleSigner::LoadFile(const std::string& path) {
  auto file = ReadSmallFile(path, kMaxSigningKeyFileBytes);
  if (!file.ok()) return file.status();
  if ((file->mode & 077) != 0) {
    return Status(StatusCode::kPermissionDenied,
                  "signing key " + path + " is accessible by group or others (mode " +
                      ModeText(file->mode) + "): chmod 600 " + path);
  }
  auto signer = FromPem(file->bytes);
  if (!signer.ok()) {
    return Status(signer.status().code(), "signing key " + path + ": " + signer.status().message());
  }
  return signer;
}

Result<BundleSigner> BundleSigner::LoadOrCreate(const std::string& data_dir) {
  const std::string key_path = data_dir + "/signing.key";
  const std::string pub_path = data_dir + "/signing.pub";
  struct stat st {};
  if (::stat(data_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return IoError("data directory " + data_dir + " does not exist");
  }

  auto loaded = LoadFile(key_path);
  if (!loaded.ok() && loaded.status().code() == StatusCode::kNotFound) {
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
        EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
    EVP_PKEY* key = nullptr;
    if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &key) != 1) {
      ERR_clear_error();
      return Internal("cannot generate an Ed25519 key");
    }
    std::unique_ptr<EVP_PKEY, KeyFree> owned(key);
    std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
    if (!bio ||
        PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
      ERR_clear_error();
      return Internal("cannot encode the Ed25519 private key");
    }
    std::string pem = BioText(bio.get());
    Status w = WriteFileAtomically(key_path, pem, 0600, /*replace_existing=*/false);
    // Another process may have created the key between our check and link:
    // theirs wins, and is loaded below like any existing key.
    if (!w.ok() && w.code() != StatusCode::kInvalidArgument) return w;
    loaded = LoadFile(key_path);
  }
  if (!loaded.ok()) return loaded.status();

  auto current = ReadSmallFile(pub_path, bytecode::kMaxPublicKeyFileBytes);
  if (!current.ok() || current->bytes != loaded->public_key_pem() ||
      (current->mode & 0777) != 0644) {
    Status w = WriteFileAtomically(pub_path, loaded->public_key_pem(), 0644,
                                   /*replace_existing=*/true);
    if (!w.ok()) return w;
  }
  return loaded;
}

Result<std::string> BundleSigner::Sign(std::string_view policy, uint64_t version,
                                       std::string_view bundle_digest_hex) const {
  if (policy.empty()) return InvalidArgument("cannot sign a bundle without a policy name");
  if (version == 0) return InvalidArgument("cannot sign a bundle of version 0");
  if (bundle_digest_hex.size() != 64 || !IsLowerHex(bundle_digest_hex)) {
    return InvalidArgument("bundle digest must be 64 lowercase hex digits");
  }
  std::string message = bytecode::SignedBundleMessage(policy, version, bundle_digest_hex);
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  std::string sig(bytecode::kEd25519SignatureSize, '\0');
  size_t len = sig.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) != 1 ||
      len != sig.size()) {
    ERR_clear_error();
    return Internal("Ed25519 signing failed");
  }
  return sig;
}

}  // namespace vakt::controlplane
