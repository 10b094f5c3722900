// Client-certificate thumbprint benchmarks. A certificate-bound request
// (RFC 8705 mTLS, request.tls.client_cert_thumbprint) must be decided in
// under 1.5 us in total, so bytecode::CertThumbprint may cost little more
// than the SHA-256 it cannot avoid. Measured on a typical RSA-2048 and a
// P-256 client certificate generated here with OpenSSL, next to:
//   - sha256_der, sha256_der_fetched_md: EVP SHA-256 of the DER alone, with
//     EVP_sha256() and with a pre-fetched EVP_MD (the floor);
//   - openssl_x509: what CertThumbprint did before (PEM_read_bio_X509,
//     i2d_X509, SHA-256), and d2i_x509: OpenSSL's X.509 parse of the DER
//     alone, which is why the thumbprint no longer parses the certificate;
//   - unescape_and_thumbprint: a certificate forwarded by nginx
//     ($ssl_client_escaped_cert), URL-decoded first.
// Heap allocations per call (operator new only) are reported as a counter.
// Run: bench_cert --benchmark_repetitions=10 --benchmark_min_time=0.2
// (CPU time; the machine's load shows in the spread between repetitions).
#include <benchmark/benchmark.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/alloc_counter.h"
#include "bytecode/request.h"

namespace {

using namespace vakt;

struct Cert {
  std::string pem;
  std::string der;
  std::string escaped;  // as nginx's $ssl_client_escaped_cert
};

void AddExt(X509* x, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) abort();
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
}

// A client certificate shaped like those CAs issue for mTLS: a three-part
// subject and the usual extensions, self-signed with SHA-256.
Cert MakeCert(EVP_PKEY* key) {
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 0x1234567);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400);
  X509_NAME* name = X509_get_subject_name(x);
  auto add = [&](const char* field, const char* value) {
    X509_NAME_add_entry_by_txt(name, field, MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(value), -1, -1, 0);
  };
  add("C", "NO");
  add("O", "Example Health AS");
  add("CN", "records-client-01.example.no");
  X509_set_issuer_name(x, name);
  X509_set_pubkey(x, key);
  AddExt(x, NID_basic_constraints, "critical,CA:FALSE");
  AddExt(x, NID_key_usage, "critical,digitalSignature");
  AddExt(x, NID_ext_key_usage, "clientAuth");
  AddExt(x, NID_subject_key_identifier, "hash");
  if (X509_sign(x, key, EVP_sha256()) <= 0) abort();

  Cert c;
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  c.pem.assign(data, static_cast<size_t>(len));
  BIO_free(bio);
  unsigned char* der = nullptr;
  int der_len = i2d_X509(x, &der);
  c.der.assign(reinterpret_cast<char*>(der), static_cast<size_t>(der_len));
  OPENSSL_free(der);
  X509_free(x);
  for (unsigned char ch : c.pem) {
    if (std::isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      c.escaped.push_back(static_cast<char>(ch));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", ch);
      c.escaped += buf;
    }
  }
  return c;
}

const Cert& Rsa() {
  static const Cert c = [] {
    EVP_PKEY* k = EVP_RSA_gen(2048);
    Cert r = MakeCert(k);
    EVP_PKEY_free(k);
    return r;
  }();
  return c;
}

const Cert& Ec() {
  static const Cert c = [] {
    EVP_PKEY* k = EVP_EC_gen("P-256");
    Cert r = MakeCert(k);
    EVP_PKEY_free(k);
    return r;
  }();
  return c;
}

const Cert& Pick(const benchmark::State& state) { return state.range(0) == 0 ? Rsa() : Ec(); }

void Label(benchmark::State& state, const Cert& c) {
  state.SetLabel(std::string(state.range(0) == 0 ? "rsa2048" : "p256") + " der=" +
                 std::to_string(c.der.size()) + "B pem=" + std::to_string(c.pem.size()) + "B");
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * c.pem.size()));
}

void CertThumbprint(benchmark::State& state) {
  const Cert& c = Pick(state);
  if (!bytecode::CertThumbprint(c.pem).ok()) abort();
  uint64_t before = bench::CurrentAllocStats().allocations;
  for (auto _ : state) {
    auto t = bytecode::CertThumbprint(c.pem);
    benchmark::DoNotOptimize(t);
  }
  uint64_t allocs = bench::CurrentAllocStats().allocations - before;
  state.counters["allocs_per_call"] =
      static_cast<double>(allocs) / static_cast<double>(state.iterations());
  Label(state, c);
}
BENCHMARK(CertThumbprint)->Name("cert_thumbprint")->Arg(0)->Arg(1);

void UnescapeAndThumbprint(benchmark::State& state) {
  const Cert& c = Pick(state);
  for (auto _ : state) {
    auto pem = bytecode::UnescapeProxyCertificate(c.escaped);
    auto t = bytecode::CertThumbprint(*pem);
    benchmark::DoNotOptimize(t);
  }
  Label(state, c);
}
BENCHMARK(UnescapeAndThumbprint)->Name("unescape_and_thumbprint")->Arg(0)->Arg(1);

void Sha256Der(benchmark::State& state) {
  const Cert& c = Pick(state);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  for (auto _ : state) {
    EVP_Digest(c.der.data(), c.der.size(), md, &len, EVP_sha256(), nullptr);
    benchmark::DoNotOptimize(md);
  }
  Label(state, c);
}
BENCHMARK(Sha256Der)->Name("sha256_der")->Arg(0)->Arg(1);

// The floor without OpenSSL 3's per-call algorithm lookup: a fetched
// EVP_MD (CertThumbprint also reuses one context per thread).
void Sha256DerFetched(benchmark::State& state) {
  const Cert& c = Pick(state);
  EVP_MD* sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  for (auto _ : state) {
    EVP_Digest(c.der.data(), c.der.size(), md, &len, sha256, nullptr);
    benchmark::DoNotOptimize(md);
  }
  EVP_MD_free(sha256);
  Label(state, c);
}
BENCHMARK(Sha256DerFetched)->Name("sha256_der_fetched_md")->Arg(0)->Arg(1);

// The former implementation, for comparison.
void OpenSslX509(benchmark::State& state) {
  const Cert& c = Pick(state);
  for (auto _ : state) {
    BIO* bio = BIO_new_mem_buf(c.pem.data(), static_cast<int>(c.pem.size()));
    X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    unsigned char* der = nullptr;
    int der_len = i2d_X509(x, &der);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(der, static_cast<size_t>(der_len), md, &len, EVP_sha256(), nullptr);
    benchmark::DoNotOptimize(md);
    OPENSSL_free(der);
    X509_free(x);
    BIO_free(bio);
  }
  Label(state, c);
}
BENCHMARK(OpenSslX509)->Name("openssl_x509")->Arg(0)->Arg(1);

void D2iX509(benchmark::State& state) {
  const Cert& c = Pick(state);
  for (auto _ : state) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(c.der.data());
    X509* x = d2i_X509(nullptr, &p, static_cast<long>(c.der.size()));
    benchmark::DoNotOptimize(x);
    X509_free(x);
  }
  Label(state, c);
}
BENCHMARK(D2iX509)->Name("d2i_x509")->Arg(0)->Arg(1);

}  // namespace

BENCHMARK_MAIN();
