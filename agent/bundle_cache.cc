// The on-disk last-good bundle cache. See bundle_cache.h for the format and
// the trust model. Plain POSIX calls (open/write/fsync/rename) because the
// atomic-replace contract needs fsync of both the file and the directory,
// which iostreams cannot express.
#include "agent/bundle_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>

#include "bytecode/sha256.h"

namespace vakt::agent {

namespace {

constexpr uint32_t kKindBundle = 1;
constexpr uint32_t kKindRevocations = 2;
constexpr size_t kHeaderBytes = 80;
constexpr size_t kChecksumBytes = 32;

std::string Errno(int e) {
  char buf[256];
  // GNU strerror_r returns the message (maybe not in buf).
  return std::string(strerror_r(e, buf, sizeof(buf)));
}

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint32_t GetU32(const std::string& s, size_t off) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i)
    v |= static_cast<uint32_t>(static_cast<uint8_t>(s[off + i])) << (8 * i);
  return v;
}
uint64_t GetU64(const std::string& s, size_t off) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v |= static_cast<uint64_t>(static_cast<uint8_t>(s[off + i])) << (8 * i);
  return v;
}

std::string Digest(std::string_view bytes) {
  std::array<uint8_t, 32> d = bytecode::Sha256(bytes);
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

// The parts of one cache file.
struct Record {
  uint32_t kind = 0;
  uint64_t version = 0;
  std::string policy, key_id, signature, payload;
};

Result<std::string> Encode(const Record& r, size_t max_bytes) {
  if (r.policy.size() > kMaxCachedPolicyBytes) {
    return InvalidArgument("policy name is longer than " + std::to_string(kMaxCachedPolicyBytes) +
                           " bytes");
  }
  if (r.key_id.size() > kMaxCachedKeyIdBytes) {
    return InvalidArgument("key id is longer than " + std::to_string(kMaxCachedKeyIdBytes) +
                           " bytes");
  }
  if (r.signature.size() > kMaxCachedSignatureBytes) {
    return InvalidArgument("signature is longer than " + std::to_string(kMaxCachedSignatureBytes) +
                           " bytes");
  }
  if (r.payload.size() > max_bytes) {
    return ResourceExhausted("payload of " + std::to_string(r.payload.size()) +
                             " bytes exceeds the cache limit of " + std::to_string(max_bytes));
  }
  std::string out;
  out.reserve(kHeaderBytes + r.policy.size() + r.key_id.size() + r.signature.size() +
              r.payload.size() + kChecksumBytes);
  out.append(kCacheMagic, sizeof(kCacheMagic));
  PutU32(&out, kCacheFormatVersion);
  PutU32(&out, r.kind);
  PutU64(&out, r.version);
  PutU32(&out, static_cast<uint32_t>(r.policy.size()));
  PutU32(&out, static_cast<uint32_t>(r.key_id.size()));
  PutU32(&out, static_cast<uint32_t>(r.signature.size()));
  PutU32(&out, 0);
  PutU64(&out, r.payload.size());
  out += Digest(r.payload);
  out += r.policy;
  out += r.key_id;
  out += r.signature;
  out += r.payload;
  out += Digest(out);
  return out;
}

Result<Record> Decode(const std::string& f, uint32_t want_kind, size_t max_bytes) {
  if (f.size() < kHeaderBytes + kChecksumBytes) {
    return Corruption("truncated: " + std::to_string(f.size()) + " bytes is shorter than the " +
                      std::to_string(kHeaderBytes + kChecksumBytes) + "-byte framing");
  }
  if (std::memcmp(f.data(), kCacheMagic, sizeof(kCacheMagic)) != 0) {
    return Corruption("bad magic (not a vakt cache file)");
  }
  const uint32_t format = GetU32(f, 8);
  if (format != kCacheFormatVersion) {
    return Corruption("unsupported cache format version " + std::to_string(format) +
                      " (this agent reads " + std::to_string(kCacheFormatVersion) + ")");
  }
  Record r;
  r.kind = GetU32(f, 12);
  if (r.kind != want_kind) {
    return Corruption("wrong kind " + std::to_string(r.kind) + " (want " +
                      std::to_string(want_kind) + ")");
  }
  r.version = GetU64(f, 16);
  const uint64_t p = GetU32(f, 24), k = GetU32(f, 28), s = GetU32(f, 32);
  const uint64_t l = GetU64(f, 40);
  if (GetU32(f, 36) != 0) return Corruption("reserved header field is not zero");
  if (p > kMaxCachedPolicyBytes || k > kMaxCachedKeyIdBytes || s > kMaxCachedSignatureBytes) {
    return Corruption("a header length is over its limit");
  }
  if (l > max_bytes) {
    return Corruption("payload length " + std::to_string(l) + " exceeds the limit of " +
                      std::to_string(max_bytes));
  }
  if (l > f.size()) {
    return Corruption("truncated: the header promises a payload of " + std::to_string(l) +
                      " bytes in a file of " + std::to_string(f.size()));
  }
  // Every term is now bounded (l by the file's size), so the sum cannot overflow.
  const uint64_t want = kHeaderBytes + p + k + s + l + kChecksumBytes;
  if (f.size() != want) {
    return Corruption(f.size() < want ? "truncated: " + std::to_string(f.size()) +
                                            " bytes, the header promises " + std::to_string(want)
                                      : "trailing bytes after the checksum");
  }
  std::string_view body(f.data(), f.size() - kChecksumBytes);
  if (Digest(body) != std::string_view(f.data() + body.size(), kChecksumBytes)) {
    return Corruption("checksum mismatch");
  }
  size_t off = kHeaderBytes;
  r.policy.assign(f, off, p);
  off += p;
  r.key_id.assign(f, off, k);
  off += k;
  r.signature.assign(f, off, s);
  off += s;
  r.payload.assign(f, off, l);
  if (Digest(r.payload) != std::string_view(f.data() + 48, 32)) {
    return Corruption("payload digest mismatch");
  }
  return r;
}

// Removes temporary files of `path` left by a crash during a write (the
// caller holds the save mutex, and one agent owns the directory). Looks at
// no more than kMaxScan entries.
void RemoveStaleTemporaries(const std::string& dir, const std::string& path) {
  constexpr int kMaxScan = 10000;
  const std::string prefix = path.substr(path.rfind('/') + 1) + ".tmp.";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  int seen = 0;
  while (dirent* e = readdir(d)) {
    if (++seen > kMaxScan) break;
    std::string_view name(e->d_name);
    if (name.starts_with(prefix) && name.size() == prefix.size() + 6) {
      unlinkat(dirfd(d), e->d_name, 0);
    }
  }
  closedir(d);
}

// Writes `bytes` to `path` atomically (see the top of bundle_cache.h).
Status WriteAtomically(const std::string& dir, const std::string& path, const std::string& bytes) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return IoError("cannot create the cache directory " + dir + ": " + Errno(errno));
  }
  RemoveStaleTemporaries(dir, path);
  std::string tmpl = path + ".tmp.XXXXXX";
  int fd = mkostemp(tmpl.data(), O_CLOEXEC);  // mode 0600
  if (fd < 0) {
    return IoError("cannot create a temporary file in " + dir + ": " + Errno(errno));
  }
  auto fail = [&](const std::string& what, int e) {
    close(fd);
    unlink(tmpl.c_str());
    return IoError(what + " " + tmpl + ": " + Errno(e));
  };
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write", errno);
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) return fail("cannot fsync", errno);
  if (close(fd) != 0) {
    int e = errno;
    unlink(tmpl.c_str());
    return IoError("cannot close " + tmpl + ": " + Errno(e));
  }
  if (rename(tmpl.c_str(), path.c_str()) != 0) {
    int e = errno;
    unlink(tmpl.c_str());
    return IoError("cannot rename " + tmpl + " to " + path + ": " + Errno(e));
  }
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return IoError("cannot open the directory " + dir + ": " + Errno(errno));
  if (fsync(dfd) != 0) {
    int e = errno;
    close(dfd);
    return IoError("cannot fsync the directory " + dir + ": " + Errno(e));
  }
  close(dfd);
  return Status::Ok();
}

// Reads the whole file, at most `max` bytes.
Result<std::string> ReadBounded(const std::string& path, size_t max) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound("no cache file " + path);
    return IoError("cannot open " + path + ": " + Errno(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return IoError("cannot stat " + path + ": " + Errno(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return Corruption(path + " is not a regular file");
  }
  if (static_cast<uint64_t>(st.st_size) > max) {
    close(fd);
    return ResourceExhausted(path + " is " + std::to_string(st.st_size) +
                             " bytes, over the limit of " + std::to_string(max));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = read(fd, out.data() + done, out.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      return IoError("cannot read " + path + ": " + Errno(e));
    }
    if (n == 0) break;  // shrank under us: the decoder reports the truncation
    done += static_cast<size_t>(n);
  }
  close(fd);
  out.resize(done);
  return out;
}

size_t FileLimit(size_t max_payload) {
  return kHeaderBytes + kMaxCachedPolicyBytes + kMaxCachedKeyIdBytes + kMaxCachedSignatureBytes +
         max_payload + kChecksumBytes;
}

void PutString(std::string* out, const std::string& s) {
  PutU32(out, static_cast<uint32_t>(s.size()));
  out->append(s);
}

std::string EncodeRevocations(const CachedRevocations& r) {
  std::string out;
  PutU32(&out, static_cast<uint32_t>(r.jtis.size()));
  PutU32(&out, static_cast<uint32_t>(r.subjects.size()));
  PutU32(&out, static_cast<uint32_t>(r.clients.size()));
  for (const std::string& j : r.jtis) PutString(&out, j);
  for (const auto* list : {&r.subjects, &r.clients}) {
    for (const auto& [v, t] : *list) {
      PutString(&out, v);
      PutU64(&out, static_cast<uint64_t>(t));
    }
  }
  return out;
}

Result<CachedRevocations> DecodeRevocations(const std::string& p, uint64_t revision) {
  CachedRevocations r;
  r.revision = revision;
  size_t off = 0;
  auto need = [&](size_t n) { return p.size() - off >= n; };
  if (!need(12)) return Corruption("revocation payload is truncated");
  const uint64_t nj = GetU32(p, 0), ns = GetU32(p, 4), nc = GetU32(p, 8);
  off = 12;
  if (nj + ns + nc > kMaxRevocationEntries) {
    return Corruption("revocation payload holds more than " +
                      std::to_string(kMaxRevocationEntries) + " entries");
  }
  auto str = [&](std::string* out) -> bool {
    if (!need(4)) return false;
    const uint32_t n = GetU32(p, off);
    off += 4;
    if (n == 0 || n > kMaxRevocationValueBytes || !need(n)) return false;
    out->assign(p, off, n);
    off += n;
    return true;
  };
  // Each entry takes at least 5 bytes, so counts beyond the payload fail
  // below before any large allocation.
  if ((nj + ns + nc) * 5 > p.size()) return Corruption("revocation counts exceed the payload");
  r.jtis.resize(nj);
  for (std::string& j : r.jtis) {
    if (!str(&j)) return Corruption("bad jti entry in the revocation payload");
  }
  for (auto [list, n] : {std::pair{&r.subjects, ns}, std::pair{&r.clients, nc}}) {
    list->resize(n);
    for (auto& [v, t] : *list) {
      if (!str(&v) || !need(8)) return Corruption("bad cut-off entry in the revocation payload");
      t = static_cast<int64_t>(GetU64(p, off));
      off += 8;
    }
  }
  if (off != p.size()) return Corruption("trailing bytes in the revocation payload");
  return r;
}

}  // namespace

Status CheckRevocations(const CachedRevocations& r) {
  if (r.entries() > kMaxRevocationEntries) {
    return ResourceExhausted("revocation set of " + std::to_string(r.entries()) +
                             " entries exceeds the limit of " +
                             std::to_string(kMaxRevocationEntries));
  }
  auto check = [](const std::string& v, const char* what) -> Status {
    if (v.empty()) return InvalidArgument(std::string("empty ") + what + " in the revocation set");
    if (v.size() > kMaxRevocationValueBytes) {
      return InvalidArgument(std::string(what) + " of " + std::to_string(v.size()) +
                             " bytes in the revocation set exceeds the limit of " +
                             std::to_string(kMaxRevocationValueBytes));
    }
    return Status::Ok();
  };
  for (const std::string& j : r.jtis) {
    if (Status st = check(j, "jti"); !st.ok()) return st;
  }
  for (const auto& [v, t] : r.subjects) {
    if (Status st = check(v, "subject"); !st.ok()) return st;
  }
  for (const auto& [v, t] : r.clients) {
    if (Status st = check(v, "client id"); !st.ok()) return st;
  }
  return Status::Ok();
}

std::shared_ptr<const bytecode::RevocationSet> BuildRevocationSet(const CachedRevocations& r) {
  auto set = std::make_shared<bytecode::RevocationSet>();
  for (const std::string& j : r.jtis) set->RevokeJti(j);
  for (const auto& [v, t] : r.subjects) set->RevokeSubject(v, t);
  for (const auto& [v, t] : r.clients) set->RevokeClient(v, t);
  return set;
}

BundleCache::BundleCache(std::string dir, size_t max_bytes)
    : dir_(std::move(dir)), max_bytes_(max_bytes) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  if (dir_.empty()) dir_ = ".";
  bundle_path_ = dir_ + "/bundle.vakt-cache";
  revocations_path_ = dir_ + "/revocations.vakt-cache";
}

Status BundleCache::Save(const CachedBundle& b) {
  Record r{kKindBundle, b.version, b.policy, b.key_id, b.signature, b.bundle};
  Result<std::string> bytes = Encode(r, max_bytes_);
  if (!bytes.ok()) return bytes.status();
  std::lock_guard<std::mutex> l(save_mu_);
  return WriteAtomically(dir_, bundle_path_, *bytes);
}

Result<CachedBundle> BundleCache::Load() const {
  Result<std::string> f = ReadBounded(bundle_path_, FileLimit(max_bytes_));
  if (!f.ok()) return f.status();
  Result<Record> r = Decode(*f, kKindBundle, max_bytes_);
  if (!r.ok()) return Corruption(bundle_path_ + ": " + r.status().message());
  return CachedBundle{std::move(r->policy), r->version, std::move(r->key_id),
                      std::move(r->signature), std::move(r->payload)};
}

Status BundleCache::SaveRevocations(const CachedRevocations& rev) {
  if (Status st = CheckRevocations(rev); !st.ok()) return st;
  Record r{kKindRevocations, rev.revision, "", "", "", EncodeRevocations(rev)};
  Result<std::string> bytes = Encode(r, max_bytes_);
  if (!bytes.ok()) return bytes.status();
  std::lock_guard<std::mutex> l(save_mu_);
  return WriteAtomically(dir_, revocations_path_, *bytes);
}

Result<CachedRevocations> BundleCache::LoadRevocations() const {
  Result<std::string> f = ReadBounded(revocations_path_, FileLimit(max_bytes_));
  if (!f.ok()) return f.status();
  Result<Record> r = Decode(*f, kKindRevocations, max_bytes_);
  if (!r.ok()) return Corruption(revocations_path_ + ": " + r.status().message());
  Result<CachedRevocations> rev = DecodeRevocations(r->payload, r->version);
  if (!rev.ok()) return Corruption(revocations_path_ + ": " + rev.status().message());
  if (Status st = CheckRevocations(*rev); !st.ok()) {
    return Corruption(revocations_path_ + ": " + st.message());
  }
  return rev;
}

RestoreResult RestoreFromCache(const BundleCache& cache, Agent* agent) {
  RestoreResult out;
  Result<CachedRevocations> rev = cache.LoadRevocations();
  if (rev.ok()) {
    agent->SetRevocations(BuildRevocationSet(*rev), rev->revision);
    out.revocations_loaded = true;
    spdlog::info("restored revocation revision {} ({} entries) from {}", rev->revision,
                 rev->entries(), cache.revocations_path());
  } else {
    out.revocations_status = rev.status();
    if (rev.status().code() == vakt::StatusCode::kNotFound) {
      spdlog::info("no cached revocation set at {}", cache.revocations_path());
    } else {
      spdlog::error("ignoring the cached revocation set: {}", rev.status().ToString());
    }
  }
  Result<CachedBundle> b = cache.Load();
  if (!b.ok()) {
    out.bundle_status = b.status();
    if (b.status().code() == vakt::StatusCode::kNotFound) {
      spdlog::info("no cached bundle at {}; waiting for the control plane", cache.path());
    } else {
      spdlog::error(
          "ignoring the cached bundle ({}); no policy until the control plane "
          "pushes one",
          b.status().ToString());
    }
    return out;
  }
  Status st = agent->Load(b->policy, b->version, b->bundle, b->signature, b->key_id, true);
  if (!st.ok()) {
    out.bundle_status = st;
    spdlog::error(
        "refusing the cached bundle {} version {} from {}: {}; no policy until the "
        "control plane pushes one",
        b->policy, b->version, cache.path(), st.ToString());
    return out;
  }
  out.bundle_loaded = true;
  spdlog::info("running cached bundle {} version {} from {}", b->policy, b->version, cache.path());
  return out;
}

}  // namespace vakt::agent
