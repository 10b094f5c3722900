// Fuzz target for the bundle loader: Bundle::Load() (parse, verify, compile
// regexes, index) must refuse any malformed input with a Status and never
// crash, hang or read out of bounds; a bundle that parses must also
// disassemble without crashing.
//
// Built two ways (tests/bytecode.cmake):
//   - bundle_fuzzer: a libFuzzer target (VAKT_FUZZ=ON, clang),
//       bundle_fuzzer tests/fuzz/corpus/bundle
//   - bundle_fuzz_replay: an ordinary test. With VAKT_FUZZ_REPLAY_MAIN this
//     file has a main() that runs every file of a corpus directory through
//     the target (failing if there are none), then applies N seeded random
//     mutations (byte flips, truncations, insertions, overwrites) to each
//     corpus bundle that loads, re-sealing the checksum and size half of the
//     time.
// The target itself also runs every input of at least a header's length a
// second time with the size field and checksum re-sealed, so that (lib)fuzzer
// mutations reach the structural checks behind the hash.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "bytecode/bundle.h"
#include "bytecode/verifier.h"

namespace {

void Check(std::string_view bytes) {
  auto parsed = vakt::bytecode::Parse(bytes);
  if (parsed.ok()) {
    std::string listing = vakt::bytecode::Disassemble(*parsed);
    if (listing.empty()) __builtin_trap();
  }
  auto loaded = vakt::bytecode::Bundle::Load(bytes);
  // Load is Parse + Verify + preparation: it cannot succeed where Parse failed.
  if (loaded.ok() && !parsed.ok()) __builtin_trap();
  if (loaded.ok()) {
    const auto& b = **loaded;
    for (uint32_t n = 0; n < b.data().nodes.size() && n < 64; ++n) {
      (void)b.FindEdge(n, "v1");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Check(bytes);
  // Again with the size field and checksum made to match, so that mutations
  // reach the structural checks behind the hash.
  if (size >= vakt::bytecode::kHeaderSize) {
    std::string sealed(bytes);
    for (int i = 0; i < 8; ++i) sealed[16 + i] = static_cast<char>(uint64_t{size} >> (8 * i));
    auto sum = vakt::bytecode::Sha256(std::string_view(sealed).substr(vakt::bytecode::kHeaderSize));
    std::memcpy(sealed.data() + 24, sum.data(), sum.size());
    Check(sealed);
  }
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
#include <vector>

namespace {

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void Run(const std::string& bytes) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

// Rewrites the header's size field and checksum to match `b`.
void Reseal(std::string* b) {
  if (b->size() < vakt::bytecode::kHeaderSize) return;
  uint64_t size = b->size();
  for (int i = 0; i < 8; ++i) (*b)[16 + i] = static_cast<char>(size >> (8 * i));
  auto sum = vakt::bytecode::Sha256(std::string_view(*b).substr(vakt::bytecode::kHeaderSize));
  std::memcpy(b->data() + 24, sum.data(), sum.size());
}

std::string Mutate(const std::string& seed, std::mt19937_64& rng) {
  std::string b = seed;
  auto pick = [&](uint64_t n) { return n == 0 ? 0 : static_cast<size_t>(rng() % n); };
  int rounds = 1 + static_cast<int>(pick(4));
  for (int r = 0; r < rounds; ++r) {
    switch (pick(6)) {
      case 0:  // flip one bit
        if (!b.empty()) b[pick(b.size())] ^= static_cast<char>(1 << pick(8));
        break;
      case 1:  // truncate
        b.resize(pick(b.size() + 1));
        break;
      case 2:  // insert random bytes
        b.insert(pick(b.size() + 1), std::string(1 + pick(16), static_cast<char>(rng())));
        break;
      case 3:  // erase a range
        if (!b.empty()) {
          size_t at = pick(b.size());
          b.erase(at, 1 + pick(16));
        }
        break;
      case 4:  // overwrite a little-endian u32 with an interesting value
        if (b.size() >= 4) {
          static constexpr uint32_t kValues[] = {
              0, 1, 2, 7, 8, 63, 64, 65, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff};
          uint32_t v = kValues[pick(std::size(kValues))];
          size_t at = pick(b.size() - 3) & ~size_t{3};
          for (int i = 0; i < 4; ++i) b[at + i] = static_cast<char>(v >> (8 * i));
        }
        break;
      default:  // set one byte to a random value
        if (!b.empty()) b[pick(b.size())] = static_cast<char>(rng());
        break;
    }
  }
  if (rng() & 1) Reseal(&b);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR [MUTATIONS]\n", argv[0]);
    return 2;
  }
  const long mutations = argc > 2 ? std::atol(argv[2]) : 20000;
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(argv[1], ec)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  if (ec || files.empty()) {
    std::fprintf(stderr, "no corpus files in %s\n", argv[1]);
    return 1;
  }
  std::sort(files.begin(), files.end());
  std::vector<std::string> seeds;
  for (const auto& f : files) {
    std::string bytes = ReadFile(f);
    Run(bytes);
    if (vakt::bytecode::Bundle::Load(bytes).ok()) seeds.push_back(std::move(bytes));
  }
  std::printf("replayed %zu corpus files (%zu valid bundles)\n", files.size(), seeds.size());
  if (seeds.empty()) {
    std::fprintf(stderr, "no valid bundle in the corpus to mutate\n");
    return 1;
  }
  std::mt19937_64 rng(0x76616b74);  // fixed seed: the test is reproducible
  long loaded = 0;
  for (long i = 0; i < mutations; ++i) {
    std::string b = Mutate(seeds[static_cast<size_t>(i) % seeds.size()], rng);
    Run(b);
    loaded += vakt::bytecode::Bundle::Load(b).ok();
  }
  std::printf("ran %ld mutations (%ld still loaded)\n", mutations, loaded);
  return 0;
}

#endif  // VAKT_FUZZ_REPLAY_MAIN
