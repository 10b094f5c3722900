// `vakt`: the authoring CLI. check, build, test, eval, disasm, fmt, and
// `token` (test tooling: keys, access tokens, DPoP proofs; token_tool.h).
// Exit codes: 0 success, 1 errors or failures, 2 usage; the admin
// commands (docs/cli-admin.md) also 3: server unreachable or
// unauthenticated. Diagnostics go to stderr as
// `path:line:col: error: message` with the source line and caret.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bytecode/bundle.h"
#include "bytecode/format.h"
#include "bytecode/request.h"
#include "bytecode/request_json.h"
#include "bytecode/vm.h"
#include "compiler/cli_args.h"
#include "compiler/compile.h"
#include "compiler/policy_test.h"
#include "compiler/schema_compile.h"
#include "bytecode/schema.h"
#include "compiler/token_tool.h"
#include "controlplane/admin_cli.h"
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
    "  check FILES|DIRS... [--budget N] [--json]\n"
    "                                      report every diagnostic; exit 1 on errors; list\n"
    "                                      each route's ownership rules and body checks\n"
    "  build FILES|DIRS... -o OUT.vkb      compile to a bundle [--budget N] [--name NAME]\n"
    "  test FILES|DIRS... [-v] [--budget N] [--no-generate]\n"
    "                                      run the policy tests written beside the policy,\n"
    "                                      then the ownership tests generated from `owns`\n"
    "  eval BUNDLE|FILES... --request REQ.json [--claims CLAIMS.json | --revoked REVOKED.json]\n"
    "       [--response RESP.json] [--now UNIX] [--budget N]   print the decision as JSON\n"
    "  disasm BUNDLE|FILES... [--budget N] print a bundle's tables and code\n"
    "  fmt [--check] FILES|DIRS...         format sources in place (or check)\n"
    "  version                             print the compiler version\n"
    "  validate --schema SCHEMA.json [--strict] [--format-assert] INSTANCE.json...\n"
    "       (or --openapi DOC --component NAME)  validate JSON instances against a JSON\n"
    "                                      Schema (2020-12); exit 0 all valid, 1 some invalid\n"
    "                                      or malformed, 2 errors\n"
    "  token SUBCOMMAND [options]          TEST TOOLING: test keys, access tokens, DPoP\n"
    "                                      proofs, client certificates (`vakt token help`)\n";

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

using vakt::cli::Args;
using vakt::cli::ParseArgs;

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

// What `vakt check` reports of each route beyond "it compiles": its
// ownership rules and body checks, read from the IR (IrOwnership,
// IrBodyCheck) so that tools and reviewers see the rule as written, not
// only its effect. Human text by default, a JSON document with --json.
std::string BodyStatusText(uint16_t k) {
  if (k == 0) return "default";
  if (k <= 5) return std::to_string(k) + "XX";
  return std::to_string(k);
}

// A strict or open variant of a schema is compiled as "NAME#strict" or
// "NAME#open"; the listing shows the name and `strict` apart.
std::string BodySchemaName(const std::string& s) { return s.substr(0, s.find('#')); }

std::vector<std::string> SplitAccept(const std::string& accept) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < accept.size()) {
    size_t comma = accept.find(',', start);
    if (comma == std::string::npos) comma = accept.size();
    if (comma > start) out.push_back(accept.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

nlohmann::json OwnershipJson(const compiler::IrRule& r) {
  const compiler::IrOwnership& o = *r.owns;
  nlohmann::json clauses = nlohmann::json::array();
  for (const auto& c : o.clauses) {
    nlohmann::json j = {{"op", c.in ? "in" : "=="}, {"value", c.value_text}};
    j["if"] = c.cond_text.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.cond_text);
    clauses.push_back(std::move(j));
  }
  return {{"rule", r.id},
          {"side", o.response ? "response" : "request"},
          {"object", o.object_text},
          {"clauses", std::move(clauses)},
          {"deny", {{"status", r.status}, {"error", r.error}, {"message", r.message}}}};
}

nlohmann::json BodyJson(const compiler::IrBodyCheck& b) {
  nlohmann::json j = {{"rule", b.rule_id}, {"side", b.response ? "response" : "request"}};
  if (b.response) j["status"] = BodyStatusText(b.status);
  j["schema"] = BodySchemaName(b.schema);
  j["strict"] = b.strict;
  j["content_types"] = {"application/json", "application/*+json"};
  j["accept_unchecked"] = SplitAccept(b.accept);
  j["limits"] = {{"max_bytes", b.max_bytes},           {"max_depth", b.max_depth},
                 {"max_properties", b.max_properties}, {"max_items", b.max_items},
                 {"max_string", b.max_string}};
  return j;
}

void PrintRouteRules(const compiler::IrRoute& route, std::ostream& out) {
  std::vector<const compiler::IrRule*> owns, bodies;
  for (const auto* rules : {&route.request_rules, &route.response_rules}) {
    for (const auto& r : *rules) {
      if (r.owns) owns.push_back(&r);
      if (!r.bodies.empty()) bodies.push_back(&r);
    }
  }
  if (owns.empty() && bodies.empty()) return;
  out << "route " << route.name << ": " << route.method << " " << route.path_template << "\n";
  for (const auto* r : owns) {
    out << "  owns " << r->owns->object_text << " (" << (r->owns->response ? "response" : "request")
        << ", rule " << r->id << ", else deny " << r->status
        << (r->error.empty() ? "" : " " + r->error) << ")\n";
    for (const auto& c : r->owns->clauses) {
      out << "    " << (c.in ? "in " : "== ") << c.value_text
          << (c.cond_text.empty() ? "" : " if " + c.cond_text) << "\n";
    }
  }
  for (const auto* r : bodies) {
    for (const auto& b : r->bodies) {
      out << "  " << (b.response ? "response body " + BodyStatusText(b.status) : "body") << ": schema "
          << BodySchemaName(b.schema) << (b.strict ? " (strict)" : "") << ", rule " << b.rule_id
          << "\n    content types application/json, application/*+json";
      if (!b.accept.empty()) out << "; unchecked " << b.accept;
      out << "\n    max_bytes " << b.max_bytes << ", max_depth " << b.max_depth << ", max_properties "
          << b.max_properties << ", max_items " << b.max_items << ", max_string " << b.max_string
          << "\n";
    }
  }
}

int CmdCheck(int argc, char** argv) {
  Args a;
  std::string err;
  if (!ParseArgs(argc, argv, 2, {"--budget"}, {"--json"}, &a, &err)) return Usage(err);
  if (a.positional.empty()) return Usage("check needs files or directories");
  compiler::CompileOptions opts;
  if (const auto* b = a.Flag("--budget")) {
    if (!ParseU32(*b, &opts.codegen.route_budget)) return Usage("--budget takes a number");
  }
  const bool json = a.Switch("--json");
  dsl::Diagnostics diags;
  compiler::SourceSet sources;
  auto c = CompilePaths(a.positional, opts, diags, sources);
  PrintDiagnostics(diags);
  PrintSummary(diags);
  if (diags.HasErrors() || !c) {
    if (json) {
      std::cout << nlohmann::json{{"ok", false},
                                  {"errors", diags.error_count()},
                                  {"warnings", diags.warning_count()}}
                       .dump(2)
                << "\n";
    }
    return kFail;
  }
  if (json) {
    nlohmann::json routes = nlohmann::json::array();
    for (const auto& r : c->ir.routes) {
      nlohmann::json owns = nlohmann::json::array(), bodies = nlohmann::json::array();
      for (const auto* rules : {&r.request_rules, &r.response_rules}) {
        for (const auto& rule : *rules) {
          if (rule.owns) owns.push_back(OwnershipJson(rule));
          for (const auto& b : rule.bodies) bodies.push_back(BodyJson(b));
        }
      }
      routes.push_back({{"name", r.name},
                        {"method", r.method},
                        {"path", r.path_template},
                        {"ownership", std::move(owns)},
                        {"bodies", std::move(bodies)}});
    }
    std::cout << nlohmann::json{{"ok", true},
                                {"files", sources.files.size()},
                                {"warnings", diags.warning_count()},
                                {"routes", std::move(routes)}}
                     .dump(2)
              << "\n";
    return kOk;
  }
  std::cout << "ok: " << sources.files.size() << " file" << (sources.files.size() == 1 ? "" : "s")
            << ", " << c->ir.routes.size() << " route" << (c->ir.routes.size() == 1 ? "" : "s")
            << "\n";
  for (const auto& r : c->ir.routes) PrintRouteRules(r, std::cout);
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
  if (!ParseArgs(argc, argv, 2, {"--budget"}, {"-v", "--verbose", "--no-generate"}, &a, &err)) {
    return Usage(err);
  }
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
  compiler::PolicyTestOptions topts;
  topts.generate_ownership = !a.Switch("--no-generate");
  auto outcomes = compiler::RunPolicyTests(*c, topts);
  size_t passed = 0, failed = 0;
  size_t gen_passed = 0, gen_failed = 0, gen_skipped = 0;
  bool verbose = a.Switch("-v") || a.Switch("--verbose");
  auto where = [](const compiler::TestOutcome& o) {
    std::string s;
    if (o.loc.file) {
      s = o.loc.file->path + ":" + std::to_string(o.loc.line) + ":" + std::to_string(o.loc.column) +
          ": ";
    }
    return s;
  };
  for (const auto& o : outcomes) {
    if (o.generated) continue;
    if (o.passed) {
      ++passed;
      if (verbose) std::cout << "PASS " << o.name << "\n";
      continue;
    }
    ++failed;
    std::cout << "FAIL " << where(o) << "test `" << o.name << "`: " << o.message << "\n";
  }
  // Generated ownership tests, reported apart from the written ones.
  for (const auto& o : outcomes) {
    if (!o.generated) continue;
    if (o.skipped) {
      ++gen_skipped;
      std::cout << "generated: " << o.name << " ... skipped: " << o.message << "\n";
    } else if (o.passed) {
      ++gen_passed;
      if (verbose) std::cout << "generated: " << o.name << " ... ok\n";
    } else {
      ++gen_failed;
      std::cout << "generated: " << where(o) << o.name << " ... FAIL: " << o.message << "\n";
    }
  }
  std::cout << passed << " passed, " << failed << " failed\n";
  if (gen_passed + gen_failed + gen_skipped > 0) {
    std::cout << "generated ownership tests: " << gen_passed << " passed, " << gen_failed
              << " failed, " << gen_skipped << " skipped\n";
  }
  return failed || gen_failed ? kFail : kOk;
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
  if (!ParseArgs(argc, argv, 2,
                 {"--request", "--claims", "--response", "--now", "--budget", "--revoked"}, {}, &a,
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
  bytecode::RevocationSet revoked;
  if (const auto* rv = a.Flag("--revoked")) {
    if (claims) return Usage("--revoked applies to real tokens, not to --claims");
    if (!ReadAll(*rv, &text, &err)) {
      std::cerr << "vakt: " << err << "\n";
      return kFail;
    }
    if (Status st = compiler::ParseRevocationsJson(text, &revoked); !st.ok()) {
      std::cerr << "vakt: " << *rv << ": " << st.message() << "\n";
      return kFail;
    }
  }
  bytecode::EvalScratch scratch;
  bytecode::Decision d;
  // Without --claims the request's own token (and DPoP proof or client
  // certificate) is authenticated on fapi2 routes, as an agent does.
  bytecode::ReplayCache replay(4096, 600);
  std::shared_ptr<const bytecode::VerifiedToken> verified;
  if (!claims && !req->has_time) {
    req->time = static_cast<int64_t>(std::time(nullptr));
    req->has_time = true;
  }
  bytecode::HttpRequest view = req->View();
  if (claims) {
    d = bytecode::DecideRequest(*bundle, view, claims.get(), scratch);
  } else {
    bytecode::AuthEnv env;
    env.replay = &replay;
    env.revoked = &revoked;
    d = bytecode::Decide(*bundle, view, env, scratch, &verified);
  }
  if (d.allow && resp) {
    bytecode::HttpResponse rv = resp->View();
    const bytecode::ClaimsProvider* used =
        claims ? claims.get() : (verified ? verified->claims.get() : nullptr);
    d = bytecode::DecideResponse(*bundle, view, used, rv, scratch);
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

// ---------------------------------------------------------------------------
// `vakt token ...`: TEST TOOLING (compiler/token_tool.h). Makes keys, access
// tokens, DPoP proofs and client certificates for tests and demos; it is not
// an authorization server and its output must never protect real data.

const char* kTokenUsageText =
    "usage: vakt token <subcommand> [options]\n"
    "\n"
    "TEST TOOLING ONLY: keys, access tokens and DPoP proofs for tests and demos.\n"
    "It is not an authorization server; never protect real data with its output.\n"
    "KEY is a private key file: PEM (PKCS#8 or traditional) or a JWK with `d`.\n"
    "\n"
    "subcommands:\n"
    "  keygen --alg ES256|PS256|EdDSA --out PRIVATE.pem [--kid KID] [--bits N]\n"
    "         [--jwk-out PRIVATE.jwk]       new key pair (kid defaults to the RFC 7638\n"
    "                                       thumbprint); prints the public JWK\n"
    "  jwks KEY... [--kid KID]              prints a JWKS of the keys' public halves\n"
    "                                       (--kid only with one key)\n"
    "  mint --key KEY [--kid KID] [--claims JSON|@FILE] [--iss S] [--aud S] [--sub S]\n"
    "       [--client-id S] [--scope \"a b\"] [--ttl SECONDS] [--now UNIX]\n"
    "       [--dpop-key KEY | --jkt THUMBPRINT] [--cert CERT.pem | --x5t THUMBPRINT]\n"
    "       [--typ T]                       prints an access token (RFC 9068, typ\n"
    "                                       at+jwt); adds iat, nbf, exp, jti if absent\n"
    "  dpop --key KEY --method M --url URL [--token AT] [--nonce N] [--now UNIX]\n"
    "       [--jti J]                       prints a DPoP proof (RFC 9449)\n"
    "  thumbprint KEY | --cert CERT.pem     prints the RFC 7638 JWK thumbprint, or the\n"
    "                                       RFC 8705 x5t#S256 of a certificate\n"
    "  cert --cn NAME --out CERT.pem --key-out KEY.pem\n"
    "                                       self-signed client certificate (P-256);\n"
    "                                       prints its x5t#S256\n";

int TokenUsage(const std::string& msg) {
  if (!msg.empty()) std::cerr << "vakt token: " << msg << "\n";
  std::cerr << kTokenUsageText;
  return kUsage;
}

// Writes a private key: created 0600 (never readable by others, not even
// for a moment), then renamed over `path`.
bool WritePrivateFile(const std::string& path, const std::string& bytes, std::string* err) {
  std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    *err = "cannot write `" + tmp + "`: " + std::strerror(errno);
    return false;
  }
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *err = "cannot write `" + tmp + "`: " + std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return false;
    }
    off += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    *err = "cannot write `" + tmp + "`: " + std::strerror(errno);
    ::unlink(tmp.c_str());
    return false;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    *err = "cannot rename to `" + path + "`: " + ec.message();
    ::unlink(tmp.c_str());
    return false;
  }
  return true;
}

// Reads a text file for `vakt token`, printing why it failed.
std::optional<std::string> ReadTokenInput(const std::string& path) {
  std::string text, err;
  if (!ReadAll(path, &text, &err)) {
    std::cerr << "vakt: " << err << "\n";
    return std::nullopt;
  }
  return text;
}

std::optional<compiler::SigningKey> LoadKeyFile(const std::string& path) {
  auto text = ReadTokenInput(path);
  if (!text) return std::nullopt;
  auto key = compiler::LoadSigningKey(*text);
  if (!key.ok()) {
    std::cerr << "vakt: " << path << ": " << key.status().message() << "\n";
    return std::nullopt;
  }
  return std::move(key).value();
}

int CmdTokenKeygen(int argc, char** argv) {
  Args a;
  std::string err;
  if (!ParseArgs(argc, argv, 3, {"--alg", "--kid", "--bits", "--out", "--jwk-out"}, {}, &a, &err)) {
    return TokenUsage(err);
  }
  if (!a.positional.empty()) return TokenUsage("keygen takes no file arguments");
  const std::string* alg_name = a.Flag("--alg");
  if (!alg_name) return TokenUsage("keygen needs --alg ES256|PS256|EdDSA");
  auto alg = bytecode::ParseAlg(*alg_name);
  if (!alg.ok()) return TokenUsage("--alg takes ES256, PS256 or EdDSA");
  const std::string* out = a.Flag("--out");
  if (!out) return TokenUsage("keygen needs --out PRIVATE.pem");
  int bits = 2048;
  if (const auto* b = a.Flag("--bits")) {
    uint32_t v = 0;
    if (*alg != bytecode::JwsAlg::kPS256) return TokenUsage("--bits applies to PS256 only");
    if (!ParseU32(*b, &v) || v < 2048 || v > 8192) return TokenUsage("--bits takes 2048 to 8192");
    bits = static_cast<int>(v);
  }
  const std::string* kid = a.Flag("--kid");
  auto key = compiler::GenerateKey(*alg, kid ? *kid : std::string(), bits);
  if (!key.ok()) {
    std::cerr << "vakt: " << key.status().message() << "\n";
    return kFail;
  }
  if (!WritePrivateFile(*out, key->PrivatePem(), &err)) {
    std::cerr << "vakt: " << err << "\n";
    return kFail;
  }
  if (const auto* jwk_out = a.Flag("--jwk-out")) {
    if (!WritePrivateFile(*jwk_out, key->PrivateJwk() + "\n", &err)) {
      std::cerr << "vakt: " << err << "\n";
      return kFail;
    }
  }
  std::cout << key->PublicJwk() << "\n";
  return kOk;
}

int CmdTokenJwks(int argc, char** argv) {
  Args a;
  std::string err;
  if (!ParseArgs(argc, argv, 3, {"--kid"}, {}, &a, &err)) return TokenUsage(err);
  if (a.positional.empty()) return TokenUsage("jwks needs one or more private key files");
  const std::string* kid = a.Flag("--kid");
  if (kid && a.positional.size() != 1) return TokenUsage("--kid needs exactly one key file");
  std::vector<compiler::SigningKey> keys;
  for (const auto& path : a.positional) {
    auto key = LoadKeyFile(path);
    if (!key) return kFail;
    if (kid) key->set_kid(*kid);
    for (const auto& other : keys) {
      if (other.kid() == key->kid() && other.alg() == key->alg()) {
        std::cerr << "vakt: " << path << ": a second " << bytecode::JwsAlgName(key->alg())
                  << " key with kid `" << key->kid() << "`\n";
        return kFail;
      }
    }
    keys.push_back(std::move(*key));
  }
  // One key per line: readable, and diffs show which key changed.
  std::cout << "{\"keys\": [\n";
  for (size_t i = 0; i < keys.size(); ++i) {
    std::cout << "  " << keys[i].PublicJwk() << (i + 1 < keys.size() ? ",\n" : "\n");
  }
  std::cout << "]}\n";
  return kOk;
}

// Parses JSON given on the command line with nesting bounded (nlohmann's
// parser is iterative; the callback stops it past kMaxDepth).
std::optional<nlohmann::ordered_json> ParseClaimsArg(const std::string& text, std::string* err) {
  constexpr int kMaxDepth = 32;
  try {
    auto j = nlohmann::ordered_json::parse(
        text, [](int depth, nlohmann::ordered_json::parse_event_t, nlohmann::ordered_json&) {
          if (depth > kMaxDepth) throw std::length_error("nested deeper than 32");
          return true;
        });
    if (!j.is_object()) {
      *err = "must be a JSON object";
      return std::nullopt;
    }
    return j;
  } catch (const std::exception& e) {
    *err = std::string("not valid JSON: ") + e.what();
    return std::nullopt;
  }
}

int CmdTokenMint(int argc, char** argv) {
  Args a;
  std::string err;
  if (!ParseArgs(argc, argv, 3,
                 {"--key", "--kid", "--claims", "--iss", "--aud", "--sub", "--client-id", "--scope",
                  "--ttl", "--now", "--dpop-key", "--jkt", "--cert", "--x5t", "--typ"},
                 {}, &a, &err)) {
    return TokenUsage(err);
  }
  if (!a.positional.empty()) return TokenUsage("mint takes no file arguments (use --key)");
  const std::string* key_path = a.Flag("--key");
  if (!key_path) return TokenUsage("mint needs --key KEY");
  if (a.Flag("--dpop-key") && a.Flag("--jkt"))
    return TokenUsage("give --dpop-key or --jkt, not both");
  if (a.Flag("--cert") && a.Flag("--x5t")) return TokenUsage("give --cert or --x5t, not both");
  compiler::TokenOptions opts;
  opts.now = static_cast<int64_t>(std::time(nullptr));
  if (const auto* n = a.Flag("--now")) {
    if (!ParseI64(*n, &opts.now)) return TokenUsage("--now takes unix seconds");
  }
  if (const auto* t = a.Flag("--ttl")) {
    if (!ParseI64(*t, &opts.ttl)) return TokenUsage("--ttl takes seconds");
  }
  if (const auto* t = a.Flag("--typ")) opts.typ = *t;
  if (const auto* k = a.Flag("--kid")) opts.kid = *k;
  if (const auto* j = a.Flag("--jkt")) opts.cnf_jkt = *j;
  if (const auto* x = a.Flag("--x5t")) opts.cnf_x5t = *x;

  std::string claims_text = "{}";
  if (const auto* c = a.Flag("--claims")) {
    claims_text = *c;
    if (!c->empty() && (*c)[0] == '@') {
      auto text = ReadTokenInput(c->substr(1));
      if (!text) return kFail;
      claims_text = *text;
    }
  }
  auto claims = ParseClaimsArg(claims_text, &err);
  if (!claims) {
    std::cerr << "vakt: --claims: " << err << "\n";
    return kFail;
  }
  for (const auto& [flag, claim] : {std::pair<const char*, const char*>{"--iss", "iss"},
                                    {"--aud", "aud"},
                                    {"--sub", "sub"},
                                    {"--client-id", "client_id"},
                                    {"--scope", "scope"}}) {
    if (const auto* v = a.Flag(flag)) (*claims)[claim] = *v;
  }
  auto key = LoadKeyFile(*key_path);
  if (!key) return kFail;
  if (const auto* dk = a.Flag("--dpop-key")) {
    auto text = ReadTokenInput(*dk);
    if (!text) return kFail;
    auto jkt = compiler::KeyThumbprint(*text);
    if (!jkt.ok()) {
      std::cerr << "vakt: " << *dk << ": " << jkt.status().message() << "\n";
      return kFail;
    }
    opts.cnf_jkt = *jkt;
  }
  if (const auto* cp = a.Flag("--cert")) {
    auto text = ReadTokenInput(*cp);
    if (!text) return kFail;
    auto x5t = bytecode::CertThumbprint(*text);
    if (!x5t.ok()) {
      std::cerr << "vakt: " << *cp << ": " << x5t.status().message() << "\n";
      return kFail;
    }
    opts.cnf_x5t = *x5t;
  }
  auto token = compiler::MintAccessToken(
      *key, claims->dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace), opts);
  if (!token.ok()) {
    std::cerr << "vakt: " << token.status().message() << "\n";
    return kFail;
  }
  std::cout << *token << "\n";
  return kOk;
}

int CmdTokenDpop(int argc, char** argv) {
  Args a;
  std::string err;
  if (!ParseArgs(argc, argv, 3,
                 {"--key", "--method", "--url", "--token", "--nonce", "--now", "--jti"}, {}, &a,
                 &err)) {
    return TokenUsage(err);
  }
  if (!a.positional.empty()) return TokenUsage("dpop takes no file arguments (use --key)");
  const std::string* key_path = a.Flag("--key");
  const std::string* method = a.Flag("--method");
  const std::string* url = a.Flag("--url");
  if (!key_path || !method || !url) return TokenUsage("dpop needs --key, --method and --url");
  if (method->empty() || url->empty()) return TokenUsage("--method and --url must not be empty");
  compiler::ProofOptions opts;
  opts.method = *method;
  opts.url = *url;
  opts.now = static_cast<int64_t>(std::time(nullptr));
  if (const auto* n = a.Flag("--now")) {
    if (!ParseI64(*n, &opts.now)) return TokenUsage("--now takes unix seconds");
  }
  if (const auto* t = a.Flag("--token")) opts.access_token = *t;
  if (const auto* n = a.Flag("--nonce")) opts.nonce = *n;
  if (const auto* j = a.Flag("--jti")) opts.jti = *j;
  auto key = LoadKeyFile(*key_path);
  if (!key) return kFail;
  auto proof = compiler::MintDpopProof(*key, opts);
  if (!proof.ok()) {
    std::cerr << "vakt: " << proof.status().message() << "\n";
    return kFail;
  }
  std::cout << *proof << "\n";
  return kOk;
}

int CmdTokenThumbprint(int argc, char** argv) {
  Args a;
  std::string err;
  if (!ParseArgs(argc, argv, 3, {"--cert"}, {}, &a, &err)) return TokenUsage(err);
  const std::string* cert = a.Flag("--cert");
  if ((cert ? 1 : 0) + a.positional.size() != 1) {
    return TokenUsage("thumbprint needs one KEY file or --cert CERT.pem");
  }
  const std::string& path = cert ? *cert : a.positional[0];
  auto text = ReadTokenInput(path);
  if (!text) return kFail;
  auto tp = cert ? bytecode::CertThumbprint(*text) : compiler::KeyThumbprint(*text);
  if (!tp.ok()) {
    std::cerr << "vakt: " << path << ": " << tp.status().message() << "\n";
    return kFail;
  }
  std::cout << *tp << "\n";
  return kOk;
}

int CmdTokenCert(int argc, char** argv) {
  Args a;
  std::string err;
  if (!ParseArgs(argc, argv, 3, {"--cn", "--out", "--key-out"}, {}, &a, &err)) {
    return TokenUsage(err);
  }
  if (!a.positional.empty()) return TokenUsage("cert takes no file arguments");
  const std::string* cn = a.Flag("--cn");
  const std::string* out = a.Flag("--out");
  const std::string* key_out = a.Flag("--key-out");
  if (!cn || !out || !key_out) return TokenUsage("cert needs --cn, --out and --key-out");
  auto cert = compiler::MakeTestCertificate(*cn);
  if (!cert.ok()) {
    std::cerr << "vakt: " << cert.status().message() << "\n";
    return kFail;
  }
  if (!WritePrivateFile(*key_out, cert->key_pem, &err) ||
      !WriteAtomic(*out, cert->cert_pem, &err)) {
    std::cerr << "vakt: " << err << "\n";
    return kFail;
  }
  std::cout << cert->x5t_s256 << "\n";
  return kOk;
}

int CmdToken(int argc, char** argv) {
  if (argc < 3) return TokenUsage("");
  std::string sub = argv[2];
  if (sub == "keygen") return CmdTokenKeygen(argc, argv);
  if (sub == "jwks") return CmdTokenJwks(argc, argv);
  if (sub == "mint") return CmdTokenMint(argc, argv);
  if (sub == "dpop") return CmdTokenDpop(argc, argv);
  if (sub == "thumbprint") return CmdTokenThumbprint(argc, argv);
  if (sub == "cert") return CmdTokenCert(argc, argv);
  if (sub == "help" || sub == "--help" || sub == "-h") {
    std::cout << kTokenUsageText;
    return kOk;
  }
  return TokenUsage("unknown subcommand `" + sub + "`");
}

}  // namespace

// `vakt validate`: JSON instances against a schema, through the same compiled
// engine as the VM (compiler/schema_compile -> bytecode/schema). A malformed
// instance (not JSON, invalid UTF-8, duplicate keys) or one over a limit is
// reported as invalid (exit 1), as the VM would deny it; exit 2 is for
// errors of the command itself: usage, an unreadable file, a schema that
// does not compile.
int CmdValidate(int argc, char** argv) {
  Args a;
  std::string err;
  if (!ParseArgs(argc, argv, 2, {"--schema", "--openapi", "--component"},
                 {"--strict", "--format-assert"}, &a, &err)) {
    return Usage(err);
  }
  const std::string* schema = a.Flag("--schema");
  const std::string* openapi = a.Flag("--openapi");
  const std::string* component = a.Flag("--component");
  if ((schema != nullptr) == (openapi != nullptr)) {
    return Usage("validate needs --schema SCHEMA.json or --openapi DOC --component NAME");
  }
  if (openapi && !component) return Usage("--openapi needs --component NAME");
  if (component && !openapi) return Usage("--component applies to --openapi");
  if (a.positional.empty()) return Usage("validate needs instance files");
  compiler::SchemaOptions opts;
  opts.strict = a.Switch("--strict");
  opts.format_assertion = a.Switch("--format-assert");
  compiler::SchemaCompiler sc;
  Status st = openapi ? sc.AddOpenApi("schema", *openapi, compiler::OpenApiSelector{*component, "", "", 0}, opts)
                      : sc.AddFile("schema", *schema, opts);
  if (!st.ok()) {
    std::cerr << "vakt: " << (st.code() == StatusCode::kInvalidArgument ? st.message() : st.ToString()) << "\n";
    return kUsage;
  }
  auto bytes = sc.Build();
  if (!bytes.ok()) {
    std::cerr << "vakt: " << bytes.status().ToString() << "\n";
    return kUsage;
  }
  auto set = bytecode::SchemaSet::Load(*bytes);
  if (!set.ok()) {
    std::cerr << "vakt: internal error: " << set.status().ToString() << "\n";
    return kUsage;
  }
  bytecode::ValidationLimits limits;
  bytecode::ValidationScratch scratch;
  bool any_invalid = false, any_error = false;
  for (const auto& file : a.positional) {
    std::string text;
    if (!ReadAll(file, &text, &err)) {
      std::cerr << "vakt: " << err << "\n";
      any_error = true;
      continue;
    }
    bytecode::ValidationResult r = bytecode::Validate(**set, 0, text, limits, scratch);
    if (r.valid()) {
      std::cout << file << ": valid\n";
    } else {
      any_invalid = true;
      std::cout << file << ": " << r.ToString() << "\n";
    }
  }
  if (any_error) return kUsage;
  return any_invalid ? kFail : kOk;
}

int main(int argc, char** argv) {
  if (argc < 2) return Usage("");
  std::string cmd = argv[1];
  if (cmd == "check") return CmdCheck(argc, argv);
  if (cmd == "build") return CmdBuild(argc, argv);
  if (cmd == "test") return CmdTest(argc, argv);
  if (cmd == "eval") return CmdEval(argc, argv);
  if (cmd == "disasm") return CmdDisasm(argc, argv);
  if (cmd == "fmt") return CmdFmt(argc, argv);
  if (cmd == "token") return CmdToken(argc, argv);
  if (cmd == "validate") return CmdValidate(argc, argv);
  if (vakt::admin::IsAdminCommand(cmd)) return vakt::admin::RunAdminCommand(argc, argv);
  if (cmd == "version" || cmd == "--version") {
    std::cout << vakt::compiler::kCompilerVersion << " (bundle format "
              << vakt::bytecode::kCurrentVersion << ")\n";
    return kOk;
  }
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::cout << kUsageText << "\n" << vakt::admin::kAdminUsageText;
    return kOk;
  }
  return Usage("unknown command `" + cmd + "`");
}
