// `vakt`: the authoring CLI. check, build, test, eval, disasm, fmt.
// Exit codes: 0 success, 1 errors or failures, 2 usage. Diagnostics go to
// stderr as `path:line:col: error: message` with the source line and caret.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bytecode/bundle.h"
#include "bytecode/format.h"
#include "bytecode/request_json.h"
#include "bytecode/vm.h"
#include "compiler/compile.h"
#include "compiler/policy_test.h"
#include "dsl/formatter.h"

namespace {

namespace fs = std::filesystem;
using namespace vakt;

constexpr int kOk = 0;
constexpr int kFail = 1;
constexpr int kUsage = 2;

const char* kUsageText =
    "usage: vakt <command> [options]\n"
    "\n"
    "commands:\n"
    "  check FILES|DIRS... [--budget N]    report every diagnostic; exit 1 on errors\n"
    "  build FILES|DIRS... -o OUT.vkb      compile to a bundle [--budget N] [--name NAME]\n"
    "  test FILES|DIRS... [-v] [--budget N] run the policy tests written beside the policy\n"
    "  eval BUNDLE|FILES... --request REQ.json [--claims CLAIMS.json]\n"
    "       [--response RESP.json] [--now UNIX] [--budget N]   print the decision as JSON\n"
    "  disasm BUNDLE|FILES... [--budget N] print a bundle's tables and code\n"
    "  fmt [--check] FILES|DIRS...         format sources in place (or check)\n"
    "  version                             print the compiler version\n";

int Usage(const std::string& msg) {
  if (!msg.empty()) std::cerr << "vakt: " << msg << "\n";
  std::cerr << kUsageText;
  return kUsage;
}

bool ReadAll(const std::string& path, std::string* out, std::string* err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *err = "cannot open `" + path + "`";
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

bool WriteAtomic(const std::string& path, const std::string& bytes, std::string* err) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) {
      *err = "cannot write `" + tmp + "`";
      return false;
    }
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      *err = "cannot write `" + tmp + "`";
      return false;
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    *err = "cannot rename to `" + path + "`: " + ec.message();
    return false;
  }
  return true;
}

// Parsed command line: positional args and --flag value pairs.
struct Args {
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> flags;
  std::vector<std::string> switches;

  const std::string* Flag(const std::string& name) const {
    for (const auto& [k, v] : flags) {
      if (k == name) return &v;
    }
    return nullptr;
  }
  bool Switch(const std::string& name) const {
    for (const auto& s : switches) {
      if (s == name) return true;
    }
    return false;
  }
};

// Flags that take a value; everything else starting with '-' is a switch.
bool ParseArgs(int argc, char** argv, int start, const std::vector<std::string>& valued,
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
      if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
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

void PrintDiagnostics(const dsl::Diagnostics& d) { std::cerr << d.Format(); }

void PrintSummary(const dsl::Diagnostics& d) {
  if (d.error_count() || d.warning_count()) {
    std::cerr << d.error_count() << " error" << (d.error_count() == 1 ? "" : "s") << ", "
              << d.warning_count() << " warning" << (d.warning_count() == 1 ? "" : "s") << "\n";
  }
}

std::unique_ptr<compiler::Compilation> CompilePaths(const std::vector<std::string>& paths,
                                                    const compiler::CompileOptions& opts,
                                                    dsl::Diagnostics& diags,
                                                    compiler::SourceSet& sources) {
  compiler::LoadSources(paths, sources, diags);
  if (diags.HasErrors()) return nullptr;
  return compiler::Compile(sources, opts, diags);
}

bool ParseU32(const std::string& s, uint32_t* out) {
  if (s.empty() || s.size() > 10) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > 0xffffffffu) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

bool ParseI64(const std::string& s, int64_t* out) {
  if (s.empty() || s.size() > 19) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  int64_t v = 0;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = s[0] == '-' ? -v : v;
  return true;
}

int CmdCheck(int argc, char** argv) {
  Args a;
  std::string err;
  if (!ParseArgs(argc, argv, 2, {"--budget"}, {}, &a, &err)) return Usage(err);
  if (a.positional.empty()) return Usage("check needs files or directories");
  compiler::CompileOptions opts;
  if (const auto* b = a.Flag("--budget")) {
    if (!ParseU32(*b, &opts.codegen.route_budget)) return Usage("--budget takes a number");
  }
  dsl::Diagnostics diags;
  compiler::SourceSet sources;
  auto c = CompilePaths(a.positional, opts, diags, sources);
  PrintDiagnostics(diags);
  PrintSummary(diags);
  if (diags.HasErrors()) return kFail;
  std::cout << "ok: " << sources.files.size() << " file" << (sources.files.size() == 1 ? "" : "s")
            << ", " << c->ir.routes.size() << " route" << (c->ir.routes.size() == 1 ? "" : "s")
            << "\n";
  return kOk;
}

int CmdBuild(int argc, char** argv) {
  Args a;
  std::string err;
  if (!ParseArgs(argc, argv, 2, {"-o", "--output", "--budget", "--name"}, {"--quiet"}, &a, &err)) {
    return Usage(err);
  }
  const std::string* out = a.Flag("-o");
  if (!out) out = a.Flag("--output");
  if (!out) return Usage("build needs -o OUT.vkb");
  if (a.positional.empty()) return Usage("build needs files or directories");
  compiler::CompileOptions opts;
  if (const auto* b = a.Flag("--budget")) {
    if (!ParseU32(*b, &opts.codegen.route_budget)) return Usage("--budget takes a number");
  }
  if (const auto* n = a.Flag("--name")) opts.name = *n;
  dsl::Diagnostics diags;
  compiler::SourceSet sources;
  auto c = CompilePaths(a.positional, opts, diags, sources);
  PrintDiagnostics(diags);
  PrintSummary(diags);
  if (diags.HasErrors() || !c || c->bytes.empty()) return kFail;
  // Refuse to write what the loader would refuse.
  auto loaded = bytecode::Bundle::Load(c->bytes);
  if (!loaded.ok()) {
    std::cerr << "vakt: internal error: the bundle does not verify: "
              << loaded.status().ToString() << "\n";
    return kFail;
  }
  if (!WriteAtomic(*out, c->bytes, &err)) {
    std::cerr << "vakt: " << err << "\n";
    return kFail;
  }
  if (!a.Switch("--quiet")) {
    std::cout << "bundle `" << c->data.name << "` -> " << *out << "\n";
    for (size_t i = 0; i < c->ir.routes.size(); ++i) {
      const auto& r = c->ir.routes[i];
      std::cout << "  " << r.method << " " << r.path_template << "  (" << r.name << ", cost "
                << c->data.routes[i].cost << ")\n";
    }
    std::cout << c->ir.routes.size() << " routes, " << c->bytes.size()
              << " bytes, worst-case cost " << c->data.max_route_cost << " instructions, sha256 "
              << (*loaded)->digest() << "\n";
  }
  return kOk;
}

int CmdTest(int argc, char** argv) {
  Args a;
  std::string err;
  if (!ParseArgs(argc, argv, 2, {"--budget"}, {"-v", "--verbose"}, &a, &err)) return Usage(err);
  if (a.positional.empty()) return Usage("test needs files or directories");
  compiler::CompileOptions opts;
  if (const auto* b = a.Flag("--budget")) {
    if (!ParseU32(*b, &opts.codegen.route_budget)) return Usage("--budget takes a number");
  }
  dsl::Diagnostics diags;
  compiler::SourceSet sources;
  auto c = CompilePaths(a.positional, opts, diags, sources);
  PrintDiagnostics(diags);
  if (diags.HasErrors() || !c || c->bytes.empty()) {
    PrintSummary(diags);
    return kFail;
  }
  auto outcomes = compiler::RunPolicyTests(*c);
  size_t passed = 0, failed = 0;
  bool verbose = a.Switch("-v") || a.Switch("--verbose");
  for (const auto& o : outcomes) {
    if (o.passed) {
      ++passed;
      if (verbose) std::cout << "PASS " << o.name << "\n";
      continue;
    }
    ++failed;
    std::cout << "FAIL ";
    if (o.loc.file) std::cout << o.loc.file->path << ":" << o.loc.line << ":" << o.loc.column << ": ";
    std::cout << "test `" << o.name << "`: " << o.message << "\n";
  }
  std::cout << passed << " passed, " << failed << " failed\n";
  return failed ? kFail : kOk;
}

bool LooksLikeBundle(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  return in.gcount() == 8 && std::memcmp(magic, bytecode::kMagic, 8) == 0;
}

// Loads a bundle file, or compiles sources, into a verified Bundle.
std::shared_ptr<const bytecode::Bundle> LoadOrCompile(const std::vector<std::string>& paths,
                                                      const compiler::CompileOptions& opts,
                                                      std::unique_ptr<compiler::Compilation>* comp) {
  if (paths.size() == 1 && !fs::is_directory(paths[0]) && LooksLikeBundle(paths[0])) {
    std::string bytes, err;
    if (!ReadAll(paths[0], &bytes, &err)) {
      std::cerr << "vakt: " << err << "\n";
      return nullptr;
    }
    auto b = bytecode::Bundle::Load(bytes);
    if (!b.ok()) {
      std::cerr << "vakt: " << paths[0] << ": " << b.status().ToString() << "\n";
      return nullptr;
    }
    return *b;
  }
  dsl::Diagnostics diags;
  compiler::SourceSet sources;
  *comp = CompilePaths(paths, opts, diags, sources);
  PrintDiagnostics(diags);
  if (diags.HasErrors() || !*comp || (*comp)->bytes.empty()) {
    PrintSummary(diags);
    return nullptr;
  }
  auto b = bytecode::Bundle::Load((*comp)->bytes);
  if (!b.ok()) {
    std::cerr << "vakt: internal error: " << b.status().ToString() << "\n";
    return nullptr;
  }
  return *b;
}

int CmdEval(int argc, char** argv) {
  Args a;
  std::string err;
  if (!ParseArgs(argc, argv, 2, {"--request", "--claims", "--response", "--now", "--budget"}, {}, &a,
                 &err)) {
    return Usage(err);
  }
  compiler::CompileOptions opts;
  if (const auto* b = a.Flag("--budget")) {
    if (!ParseU32(*b, &opts.codegen.route_budget)) return Usage("--budget takes a number");
  }
  const std::string* req_path = a.Flag("--request");
  if (!req_path) return Usage("eval needs --request REQ.json");
  if (a.positional.empty()) return Usage("eval needs a bundle or policy files");
  std::optional<int64_t> now;
  if (const auto* n = a.Flag("--now")) {
    int64_t v;
    if (!ParseI64(*n, &v)) return Usage("--now takes unix seconds");
    now = v;
  }
  std::unique_ptr<compiler::Compilation> comp;
  auto bundle = LoadOrCompile(a.positional, opts, &comp);
  if (!bundle) return kFail;
  std::string text;
  if (!ReadAll(*req_path, &text, &err)) {
    std::cerr << "vakt: " << err << "\n";
    return kFail;
  }
  auto req = bytecode::ParseRequestJson(text);
  if (!req.ok()) {
    std::cerr << "vakt: " << *req_path << ": " << req.status().message() << "\n";
    return kFail;
  }
  if (now) {
    req->time = *now;
    req->has_time = true;
  }
  std::unique_ptr<bytecode::JsonClaims> claims;
  if (const auto* cp = a.Flag("--claims")) {
    if (!ReadAll(*cp, &text, &err)) {
      std::cerr << "vakt: " << err << "\n";
      return kFail;
    }
    auto c = bytecode::JsonClaims::Parse(text);
    if (!c.ok()) {
      std::cerr << "vakt: " << *cp << ": " << c.status().message() << "\n";
      return kFail;
    }
    claims = std::move(c).value();
  }
  std::optional<bytecode::OwnedResponse> resp;
  if (const auto* rp = a.Flag("--response")) {
    if (!ReadAll(*rp, &text, &err)) {
      std::cerr << "vakt: " << err << "\n";
      return kFail;
    }
    auto r = bytecode::ParseResponseJson(text);
    if (!r.ok()) {
      std::cerr << "vakt: " << *rp << ": " << r.status().message() << "\n";
      return kFail;
    }
    resp = std::move(r).value();
  }
  bytecode::EvalScratch scratch;
  bytecode::HttpRequest view = req->View();
  bytecode::Decision d = bytecode::DecideRequest(*bundle, view, claims.get(), scratch);
  if (d.allow && resp) {
    bytecode::HttpResponse rv = resp->View();
    d = bytecode::DecideResponse(*bundle, view, claims.get(), rv, scratch);
  }
  std::cout << bytecode::DecisionToJson(d) << "\n";
  return kOk;
}

int CmdDisasm(int argc, char** argv) {
  Args a;
  std::string err;
  if (!ParseArgs(argc, argv, 2, {"--budget"}, {}, &a, &err)) return Usage(err);
  if (a.positional.empty()) return Usage("disasm needs a bundle or policy files");
  compiler::CompileOptions opts;
  if (const auto* b = a.Flag("--budget")) {
    if (!ParseU32(*b, &opts.codegen.route_budget)) return Usage("--budget takes a number");
  }
  std::unique_ptr<compiler::Compilation> comp;
  auto bundle = LoadOrCompile(a.positional, opts, &comp);
  if (!bundle) return kFail;
  std::cout << bytecode::Disassemble(bundle->data());
  return kOk;
}

int CmdFmt(int argc, char** argv) {
  Args a;
  std::string err;
  if (!ParseArgs(argc, argv, 2, {}, {"--check"}, &a, &err)) return Usage(err);
  if (a.positional.empty()) return Usage("fmt needs files or directories");
  bool check = a.Switch("--check");
  dsl::Diagnostics load_diags;
  compiler::SourceSet sources;
  compiler::LoadSources(a.positional, sources, load_diags);
  PrintDiagnostics(load_diags);
  if (load_diags.HasErrors()) return kFail;
  int rc = kOk;
  for (const auto& f : sources.files) {
    dsl::Diagnostics diags;
    std::string formatted = dsl::FormatSource(*f, diags);
    if (diags.HasErrors()) {
      PrintDiagnostics(diags);
      rc = kFail;
      continue;
    }
    if (formatted == f->text) continue;
    if (check) {
      std::cout << f->path << ": not formatted\n";
      rc = kFail;
      continue;
    }
    if (!WriteAtomic(f->path, formatted, &err)) {
      std::cerr << "vakt: " << err << "\n";
      rc = kFail;
      continue;
    }
    std::cout << "formatted " << f->path << "\n";
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return Usage("");
  std::string cmd = argv[1];
  if (cmd == "check") return CmdCheck(argc, argv);
  if (cmd == "build") return CmdBuild(argc, argv);
  if (cmd == "test") return CmdTest(argc, argv);
  if (cmd == "eval") return CmdEval(argc, argv);
  if (cmd == "disasm") return CmdDisasm(argc, argv);
  if (cmd == "fmt") return CmdFmt(argc, argv);
  if (cmd == "version" || cmd == "--version") {
    std::cout << vakt::compiler::kCompilerVersion << " (bundle format "
              << vakt::bytecode::kCurrentVersion << ")\n";
    return kOk;
  }
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::cout << kUsageText;
    return kOk;
  }
  return Usage("unknown command `" + cmd + "`");
}
