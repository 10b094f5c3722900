// Fuzz target for the JOSE parsers (bytecode/jose.h), which read tokens, DPoP
// proofs and key sets straight from the network: Base64UrlDecode,
// ParseCompactJws (with and without a JSON payload), ParseJwk (public only,
// private members allowed, legacy), ParseJwks (strict and skipping
// unsupported keys) and, for every key that parses, JwkThumbprint. A JWS
// whose header embeds a `jwk` (a DPoP proof) also has that key parsed and
// the signature verified with it. An input "header \0 payload \0 signature"
// is also encoded into a JWS here, so the fuzzer can mutate the JSON itself.
// None may crash, hang or read out of bounds, and each checks what must hold
// whatever the input:
//   - base64url: a decoded text re-encodes to itself (one text per value),
//     and any bytes encode and decode back;
//   - JWS: the strict parse accepts nothing the lenient one refuses, and
//     the parts re-encode to the token's own text;
//   - JWK: allowing private members refuses nothing the public parse
//     accepts and gives the same thumbprint; the RFC 7638 canonical members
//     parse again to the same thumbprint;
//   - JWKS: skipping unsupported keys keeps every key of a set that parses.
//
// Built two ways (tests/jose.cmake):
//   - jose_fuzzer: a libFuzzer target (VAKT_FUZZ=ON, clang),
//       jose_fuzzer tests/fuzz/corpus/jose
//   - jose_fuzz_replay: an ordinary test. With VAKT_FUZZ_REPLAY_MAIN this
//     file has a main() that runs every file of tests/fuzz/corpus/jose (or
//     of the directory given) through the target, failing if there are
//     none, then N seeded random mutations of them.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bytecode/jose.h"

namespace {

using namespace vakt;
using namespace vakt::bytecode;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// The thumbprint of a parsed key: 43 base64url characters, and the
// canonical members alone parse (with the same options) to the same key.
void CheckKey(const PublicKey& key, const JwkOptions& options) {
  Check(key.pkey() != nullptr);
  Check(key.kty() == "RSA" || key.kty() == "EC" || key.kty() == "OKP");
  std::string thumb = JwkThumbprint(key);
  Check(thumb.size() == 43);
  Check(Base64UrlDecode(thumb).ok());
  JwkOptions canonical = options;
  canonical.allow_private = false;
  auto again = ParseJwk(key.thumbprint_input(), canonical);
  Check(again.ok());
  Check(JwkThumbprint(*again) == thumb);
}

void FuzzBase64(std::string_view in) {
  auto decoded = Base64UrlDecode(in);
  if (decoded.ok()) Check(Base64UrlEncode(*decoded) == in);
  if (in.size() <= kMaxBase64UrlInput / 4 * 3) {
    auto back = Base64UrlDecode(Base64UrlEncode(in));
    Check(back.ok() && *back == in);
  }
}

void FuzzJwk(std::string_view in) {
  for (bool legacy : {false, true}) {
    JwkOptions pub{.allow_private = false, .legacy = legacy};
    JwkOptions priv{.allow_private = true, .legacy = legacy};
    auto a = ParseJwk(in, pub);
    auto b = ParseJwk(in, priv);
    if (a.ok()) {
      CheckKey(*a, pub);
      Check(b.ok());
      Check(JwkThumbprint(*a) == JwkThumbprint(*b));
    }
    if (b.ok()) CheckKey(*b, priv);
  }
  // The bool overload is the strict public parse.
  Check(ParseJwk(in).ok() == ParseJwk(in, JwkOptions{}).ok());
}

void FuzzJwks(std::string_view in) {
  auto strict = ParseJwks(in);
  std::vector<std::string> skipped;
  auto lenient = ParseJwks(in, JwksOptions{.legacy = false, .skip_unsupported = true}, &skipped);
  if (strict.ok()) {
    Check(strict->size() <= 64);
    Check(lenient.ok() && lenient->size() == strict->size() && skipped.empty());
    for (const PublicKey& k : *strict) CheckKey(k, {});
    if (!strict->empty()) {
      const PublicKey& first = strict->front();
      auto selected = SelectKey(*strict, first.kid(), first.alg());
      Check(selected.ok() || selected.status().code() == StatusCode::kUnauthenticated);
    }
  }
  if (lenient.ok()) {
    for (const PublicKey& k : *lenient) CheckKey(k, {});
  }
  skipped.clear();
  auto legacy = ParseJwks(in, JwksOptions{.legacy = true, .skip_unsupported = true}, &skipped);
  if (legacy.ok()) {
    for (const PublicKey& k : *legacy) CheckKey(k, {.allow_private = false, .legacy = true});
  }
}

// A DPoP proof carries its key in the header: parse it as the runtime would
// and verify the token's signature with it.
void FuzzEmbeddedKey(const CompactJws& jws) {
  simdjson::dom::parser parser;
  simdjson::dom::object header;
  if (parser.parse(jws.header_json).get(header) != simdjson::SUCCESS) return;
  std::string_view alg_name;
  Result<JwsAlg> alg = InvalidArgument("no alg");
  if (header["alg"].get(alg_name) == simdjson::SUCCESS) {
    alg = ParseAlg(alg_name);
    auto legacy = ParseAlg(alg_name, true);
    if (alg.ok()) Check(legacy.ok() && *legacy == *alg);
  }
  simdjson::dom::element jwk;
  if (header["jwk"].get(jwk) != simdjson::SUCCESS) return;
  std::string text = simdjson::minify(jwk);
  auto key = ParseJwk(text);
  if (!key.ok()) return;
  CheckKey(*key, {});
  if (alg.ok()) (void)VerifyJws(*key, *alg, jws.signing_input, jws.signature);
  (void)VerifyJws(*key, key->alg(), jws.signing_input, jws.signature);
}

void FuzzJws(std::string_view in) {
  JwsLimits lax;
  lax.require_json_payload = false;
  auto strict = ParseCompactJws(in);
  auto lenient = ParseCompactJws(in, lax);
  if (strict.ok()) Check(lenient.ok());
  if (!lenient.ok()) return;
  const CompactJws& j = *lenient;
  Check(j.header_b64.size() + 1 + j.payload_b64.size() + 1 + j.signature_b64.size() == in.size());
  Check(j.signing_input == in.substr(0, j.header_b64.size() + 1 + j.payload_b64.size()));
  Check(Base64UrlEncode(j.header_json) == j.header_b64);
  Check(Base64UrlEncode(j.payload_json) == j.payload_b64);
  Check(Base64UrlEncode(j.signature) == j.signature_b64);
  Check(!j.header_json.empty() && !j.signature.empty());
  Check(j.header_json.size() <= lax.max_header_bytes);
  Check(j.payload_json.size() <= lax.max_payload_bytes);
  if (strict.ok()) {
    Check(strict->header_json == j.header_json && strict->payload_json == j.payload_json);
  }
  FuzzEmbeddedKey(j);
}

// The input read as "header \0 payload \0 signature" and encoded into a
// compact JWS here, so that mutations of the JSON reach the header checks
// and the embedded key, which base64url otherwise hides from the fuzzer.
void FuzzJwsParts(std::string_view in) {
  size_t a = in.find('\0');
  if (a == std::string_view::npos) return;
  size_t b = in.find('\0', a + 1);
  if (b == std::string_view::npos) return;
  std::string token = Base64UrlEncode(in.substr(0, a)) + "." +
                      Base64UrlEncode(in.substr(a + 1, b - a - 1)) + "." +
                      Base64UrlEncode(in.substr(b + 1));
  FuzzJws(token);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  FuzzBase64(in);
  FuzzJws(in);
  FuzzJwsParts(in);
  FuzzJwk(in);
  FuzzJwks(in);
  return 0;
}

#ifdef VAKT_FUZZ_REPLAY_MAIN

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace {

void Run(const std::string& bytes) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// Byte-level mutations biased towards the characters that structure JOSE
// text (separators, JSON punctuation, base64url), so that most mutants get
// past the first check.
std::string Mutate(const std::string& seed, std::mt19937_64& rng) {
  static constexpr std::string_view kInteresting = ".{}[]\":,=-_+/0Aaz\\\n";
  std::string b = seed;
  auto pick = [&](uint64_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % n); };
  int rounds = 1 + static_cast<int>(pick(3));
  for (int r = 0; r < rounds; ++r) {
    switch (pick(6)) {
      case 0:  // flip one bit
        if (!b.empty()) b[pick(b.size())] ^= static_cast<char>(1 << pick(8));
        break;
      case 1:  // truncate
        b.resize(pick(b.size() + 1));
        break;
      case 2:  // insert an interesting character
        b.insert(pick(b.size() + 1), 1, kInteresting[pick(kInteresting.size())]);
        break;
      case 3:  // erase a range
        if (!b.empty()) b.erase(pick(b.size()), 1 + pick(8));
        break;
      case 4:  // duplicate a range
        if (!b.empty()) {
          size_t at = pick(b.size());
          b.insert(pick(b.size() + 1), b.substr(at, 1 + pick(32)));
        }
        break;
      default:  // overwrite one byte with an interesting character
        if (!b.empty()) b[pick(b.size())] = kInteresting[pick(kInteresting.size())];
        break;
    }
  }
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  fs::path dir =
      argc > 1 ? fs::path(argv[1]) : fs::path(VAKT_SOURCE_DIR) / "tests/fuzz/corpus/jose";
  const long mutations = argc > 2 ? std::atol(argv[2]) : 0;
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  if (ec || files.empty()) {
    std::fprintf(stderr, "jose_fuzz_replay: no corpus files in %s\n", dir.c_str());
    return 1;
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> seeds;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    seeds.push_back(s.str());
    Run(seeds.back());
  }
  std::mt19937_64 rng(0x6a6f7365);  // fixed seed: the test is reproducible
  for (long i = 0; i < mutations; ++i)
    Run(Mutate(seeds[static_cast<size_t>(i) % seeds.size()], rng));
  std::printf("jose_fuzz_replay: %zu corpus files and %ld mutations ok\n", files.size(), mutations);
  return 0;
}

#endif  // VAKT_FUZZ_REPLAY_MAIN
