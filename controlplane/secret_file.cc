// Crash-safe writes and bounded reads of small secret files (see
// secret_file.h). POSIX calls only; every error names the path and errno.
#include "controlplane/secret_file.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "bytecode/sha256.h"

namespace vakt::controlplane {
namespace {

Status Errno(const std::string& what, const std::string& path) {
  return IoError(what + " " + path + ": " + std::strerror(errno));
}

// Closes the descriptor on every path out.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

std::string DirOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status SyncDir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return Errno("cannot open directory", dir);
  if (::fsync(fd.get()) != 0) return Errno("cannot fsync directory", dir);
  return Status::Ok();
}

Status WriteAll(int fd, std::string_view content, const std::string& path) {
  while (!content.empty()) {
    ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("cannot write", path);
    }
    content.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

}  // namespace

Status WriteFileAtomically(const std::string& path, std::string_view content, mode_t mode,
                           bool replace_existing) {
  const std::string dir = DirOf(path);
  const std::string base = path.substr(path.rfind('/') == std::string::npos ? 0
                                                                            : path.rfind('/') + 1);
  if (base.empty()) return InvalidArgument("no file name in " + path);
  unsigned char rnd[8];
  if (RAND_bytes(rnd, sizeof rnd) != 1) return Internal("RAND_bytes failed");
  const std::string tmp = (dir == "/" ? "" : dir) + "/." + base + ".tmp-" +
                          std::to_string(::getpid()) + "-" +
                          bytecode::HexLower(rnd, sizeof rnd);

  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 0777));
  if (fd.get() < 0) return Errno("cannot create", tmp);
  // The umask may have removed bits; set the exact mode before any content.
  Status s = ::fchmod(fd.get(), mode & 0777) == 0 ? WriteAll(fd.get(), content, tmp)
                                                  : Errno("cannot chmod", tmp);
  if (s.ok() && ::fsync(fd.get()) != 0) s = Errno("cannot fsync", tmp);
  if (s.ok() && ::close(fd.Release()) != 0) s = Errno("cannot close", tmp);
  if (s.ok()) {
    if (replace_existing) {
      if (::rename(tmp.c_str(), path.c_str()) != 0) s = Errno("cannot rename into", path);
    } else if (::link(tmp.c_str(), path.c_str()) != 0) {
      s = errno == EEXIST ? InvalidArgument(path + " already exists")
                          : Errno("cannot link into", path);
    }
  }
  // After a rename the temporary name is gone already; otherwise drop it.
  if (!(s.ok() && replace_existing)) ::unlink(tmp.c_str());
  if (!s.ok()) return s;
  return SyncDir(dir);
}

Result<FileContents> ReadSmallFile(const std::string& path, size_t max_bytes) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (fd.get() < 0) {
    if (errno == ENOENT) return NotFound(path + " does not exist");
    return Errno("cannot open", path);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return Errno("cannot stat", path);
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return InvalidArgument(path + " is larger than " + std::to_string(max_bytes) + " bytes");
  }
  FileContents out;
  out.mode = st.st_mode;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("cannot read", path);
    }
    if (n == 0) break;
    out.bytes.append(buf, static_cast<size_t>(n));
    if (out.bytes.size() > max_bytes) {  // grew while we read it
      return InvalidArgument(path + " is larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  return out;
}

}  // namespace vakt::controlplane
