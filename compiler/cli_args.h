// The command-line parser of the `vakt` CLI, shared by the authoring
// commands (vakt_main.cc) and the admin commands (controlplane/admin_cli.cc):
// positionals, valued flags (`--flag value` or `--flag=value`, repeatable)
// and switches; `--` ends the flags. Header-only so that the admin client
// library gets it without linking the compiler.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace vakt::cli {

struct Args {
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> flags;
  std::vector<std::string> switches;

  // The last value given for `name`, or null.
  const std::string* Flag(const std::string& name) const {
    const std::string* last = nullptr;
    for (const auto& [k, v] : flags) {
      if (k == name) last = &v;
    }
    return last;
  }
  // Every value given for `name`, in order.
  std::vector<std::string> All(const std::string& name) const {
    std::vector<std::string> out;
    for (const auto& [k, v] : flags) {
      if (k == name) out.push_back(v);
    }
    return out;
  }
  bool Switch(const std::string& name) const {
    return std::find(switches.begin(), switches.end(), name) != switches.end();
  }
};

// Parses argv[start..argc). `valued` flags take a value; `switches` do not;
// any other argument starting with '-' is an error (in *err).
inline bool ParseArgs(int argc, char** argv, int start, const std::vector<std::string>& valued,
                      const std::vector<std::string>& switches, Args* out, std::string* err) {
  for (int i = start; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      for (++i; i < argc; ++i) out->positional.push_back(argv[i]);
      break;
    }
    if (a.size() > 1 && a[0] == '-') {
      std::string key = a, value;
      bool has_eq = false;
      if (auto eq = a.find('='); eq != std::string::npos && a.starts_with("--")) {
        key = a.substr(0, eq);
        value = a.substr(eq + 1);
        has_eq = true;
      }
      if (std::find(valued.begin(), valued.end(), key) != valued.end()) {
        if (!has_eq) {
          if (i + 1 >= argc) {
            *err = "option `" + key + "` needs a value";
            return false;
          }
          value = argv[++i];
        }
        out->flags.emplace_back(key, value);
        continue;
      }
      if (std::find(switches.begin(), switches.end(), key) != switches.end() && !has_eq) {
        out->switches.push_back(key);
        continue;
      }
      *err = "unknown option `" + a + "`";
      return false;
    }
    out->positional.push_back(a);
  }
  return true;
}

}  // namespace vakt::cli
