// Small files that must never be seen half-written: the signing key, its
// public half and the first admin token. A file is written under a fresh
// temporary name in the same directory (O_CREAT|O_EXCL|O_NOFOLLOW, its final
// mode set before any byte is written), fsynced, then moved into place
// (rename, or link + unlink when an existing file must not be replaced) and
// the directory fsynced: a crash leaves either no file or the whole file,
// at worst plus a stray temporary (".NAME.tmp-*", same mode).
// Reads are bounded by a caller's size limit and refuse anything but a
// regular file. Linear in the file size. Thread-safe (no shared state).
// Tested by tests/cp_security_test.cc.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "bytecode/status.h"

namespace vakt::controlplane {

// Writes `content` to `path` with exactly `mode` (the umask does not apply).
// With replace_existing false, an existing `path` is kept and the call
// fails with kInvalidArgument "PATH already exists". kIoError with the OS
// reason for everything else.
Status WriteFileAtomically(const std::string& path, std::string_view content, mode_t mode,
                           bool replace_existing);

struct FileContents {
  std::string bytes;
  mode_t mode = 0;   // st_mode of the file read (type and permission bits)
};

// The whole of `path` (following symbolic links: mounted secrets often are
// ones). kNotFound if it does not exist, kInvalidArgument if it is not a
// regular file or is larger than max_bytes, kIoError otherwise.
Result<FileContents> ReadSmallFile(const std::string& path, size_t max_bytes);

}  // namespace vakt::controlplane
