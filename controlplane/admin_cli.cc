// The admin subcommands of `vakt` (see admin_cli.h): each parses its flags,
// opens an AdminClient from the common flags (--server, --token-file, --ca,
// --insecure, --timeout), makes one or two calls and prints an aligned table
// (or a key/value block) or, with --json, one JSON document on stdout whose
// objects carry the proto field names. Strings from the server are printed
// with control characters replaced, so a label or a reason cannot drive the
// terminal; diffs and diagnostics are printed as they are, like `git diff`
// and `vakt check`.
#include "controlplane/admin_cli.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "compiler/cli_args.h"
#include "controlplane/admin_client.h"

namespace vakt::admin {

const char kAdminUsageText[] =
    "admin commands (talk to vakt-controlplane; docs/cli-admin.md):\n"
    "  publish --policy NAME [--message M] DIR|FILES...   compile and store a new version\n"
    "  versions [--policy P] [--limit N]   list published versions\n"
    "  diff --policy P FROM TO             unified diff of two versions' sources\n"
    "  rollout start --policy P --version V [--selector k=v]... [--stages 10,50,100]\n"
    "          [--auto] [--nack-threshold PCT]\n"
    "  rollout advance|pause|resume|status ID, rollout list [--policy P] [--limit N]\n"
    "  rollback (--policy P | --rollout ID)  restore what the agents ran before\n"
    "  agents [--selector k=v]...          the fleet: state, active and desired versions\n"
    "  revoke add (--jti J | --sub S | --client-id C) [--not-after UNIX] [--reason R]\n"
    "  revoke list, revoke remove ID       token revocations pushed to the agents\n"
    "  audit [--after ID] [--limit N]      the audit log\n"
    "  decisions [--agent ID] [--route R] [--deny | --allow] [--since 10m|UNIX]\n"
    "          [--limit N]                 the newest decision logs agents sent\n"
    "  tokens create --name N --role viewer|author|deployer|admin, tokens list,\n"
    "  tokens delete NAME                  API tokens (admin role)\n"
    "  whoami                              the token's name and role\n"
    "  common: --server ADDR ($VAKT_SERVER) --token-file F ($VAKT_TOKEN_FILE) [--ca CA.pem]\n"
    "          [--insecure] [--timeout SECONDS] [--json]\n"
    "  exit codes: 0 ok, 1 refused by the server, 2 usage, 3 server unreachable,\n"
    "              unauthenticated or internal error\n";

namespace {

using Stub = AdminClient::Stub;

using vakt::cli::Args;

const std::vector<std::string> kCommonValued = {"--server", "--token-file", "--ca", "--timeout"};
const std::vector<std::string> kCommonSwitches = {"--insecure", "--json"};

int Usage(const std::string& msg) {
  if (!msg.empty()) std::cerr << "vakt: " << msg << "\n";
  std::cerr << kAdminUsageText;
  return kExitUsage;
}

bool ParseAdminArgs(int argc, char** argv, int start, std::vector<std::string> valued,
               std::vector<std::string> switches, Args* out, std::string* err) {
  valued.insert(valued.end(), kCommonValued.begin(), kCommonValued.end());
  switches.insert(switches.end(), kCommonSwitches.begin(), kCommonSwitches.end());
  return vakt::cli::ParseArgs(argc, argv, start, valued, switches, out, err);
}

bool ParseU64(const std::string& s, uint64_t max, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (max - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool ParseU32(const std::string& s, uint32_t max, uint32_t* out) {
  uint64_t v = 0;
  if (!ParseU64(s, max, &v)) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

// k=v pairs of --selector; a key given twice is a usage error.
bool ParseSelector(const std::vector<std::string>& items, std::map<std::string, std::string>* out,
                   std::string* err) {
  for (const std::string& item : items) {
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      *err = "--selector takes KEY=VALUE, not `" + item + "`";
      return false;
    }
    if (!out->emplace(item.substr(0, eq), item.substr(eq + 1)).second) {
      *err = "--selector names `" + item.substr(0, eq) + "` twice";
      return false;
    }
  }
  return true;
}

// Replaces control characters so server-provided text cannot drive a terminal.
std::string Clean(const std::string& s) {
  std::string out = s;
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

std::string Time(int64_t unix_seconds) {
  if (unix_seconds <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return std::to_string(unix_seconds);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string Labels(const google::protobuf::Map<std::string, std::string>& m) {
  std::map<std::string, std::string> sorted(m.begin(), m.end());
  std::string out;
  for (const auto& [k, v] : sorted) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out.empty() ? "-" : Clean(out);
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : Clean(s); }

// Left-aligned columns two spaces apart; the last column is not padded.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print(std::ostream& out) const {
    std::vector<size_t> width;
    for (const auto& r : rows_) {
      if (width.size() < r.size()) width.resize(r.size(), 0);
      for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
    }
    for (const auto& r : rows_) {
      std::string line;
      for (size_t i = 0; i < r.size(); ++i) {
        line += r[i];
        if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
      }
      out << line << "\n";
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

void PrintJson(const nlohmann::ordered_json& j) {
  std::cout << j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
}

template <typename T>
nlohmann::ordered_json JsonArray(const google::protobuf::RepeatedPtrField<T>& items) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const T& m : items) out.push_back(ToJson(m));
  return out;
}

int Fail(const Status& st) {
  std::cerr << "vakt: error: " << st.message() << "\n";
  return ExitCodeFor(st);
}

// A command's parsed flags and its connection.
struct Session {
  Args args;
  bool json = false;
  std::unique_ptr<AdminClient> client;
};

// Parses the flags from argv[start] and connects; on failure returns the
// exit code to use.
std::optional<int> Open(int argc, char** argv, int start, std::vector<std::string> valued,
                        std::vector<std::string> switches, Session* s) {
  std::string err;
  if (!ParseAdminArgs(argc, argv, start, std::move(valued), std::move(switches), &s->args, &err)) {
    return Usage(err);
  }
  s->json = s->args.Switch("--json");
  ConnectOptions o;
  const std::string* server = s->args.Flag("--server");
  const char* env_server = std::getenv("VAKT_SERVER");
  if (server) {
    o.server = *server;
  } else if (env_server && *env_server) {
    o.server = env_server;
  } else {
    return Usage("give the control plane's address with --server ADDR or $VAKT_SERVER");
  }
  const std::string* token_file = s->args.Flag("--token-file");
  const char* env_token = std::getenv("VAKT_TOKEN_FILE");
  std::string token_path = token_file ? *token_file : (env_token ? env_token : "");
  if (token_path.empty()) {
    return Usage("give the API token file with --token-file FILE or $VAKT_TOKEN_FILE");
  }
  Result<std::string> token = ReadTokenFile(token_path);
  if (!token.ok()) {
    std::cerr << "vakt: " << token.status().message() << "\n";
    return kExitUsage;
  }
  o.token = std::move(*token);
  if (const std::string* ca = s->args.Flag("--ca")) o.ca_file = *ca;
  o.insecure = s->args.Switch("--insecure");
  if (const std::string* t = s->args.Flag("--timeout")) {
    uint32_t v = 0;
    if (!ParseU32(*t, 3600, &v) || v == 0) return Usage("--timeout takes 1 to 3600 seconds");
    o.timeout_seconds = static_cast<int>(v);
  }
  Result<std::unique_ptr<AdminClient>> c = AdminClient::Connect(o);
  if (!c.ok()) {
    // Nothing has gone over the network yet: the flags or the CA file are wrong.
    std::cerr << "vakt: " << c.status().message() << "\n";
    return kExitUsage;
  }
  s->client = std::move(*c);
  return std::nullopt;
}

// ---- publish, versions, diff ------------------------------------------------

// A compile failure is INVALID_ARGUMENT "N error(s) in `P`:\n" followed by
// the formatted diagnostics (control_plane.cc Publish).
bool IsCompileFailure(const Status& st, std::string* diagnostics) {
  const std::string prefix = "invalid argument: ";
  const std::string& m = st.message();
  if (st.code() != StatusCode::kInvalidArgument || !m.starts_with(prefix)) return false;
  size_t i = prefix.size();
  size_t digits = i;
  while (digits < m.size() && m[digits] >= '0' && m[digits] <= '9') ++digits;
  if (digits == i || m.compare(digits, 13, " error(s) in ") != 0) return false;
  size_t nl = m.find('\n', digits);
  if (nl == std::string::npos) return false;
  *diagnostics = m.substr(nl + 1);
  return true;
}

// "N errors, M warnings" as `vakt check` prints it, counted from the
// diagnostic header lines (source lines and carets are indented).
void PrintSummary(const std::string& diagnostics) {
  size_t errors = 0, warnings = 0, start = 0;
  while (start < diagnostics.size()) {
    size_t end = diagnostics.find('\n', start);
    if (end == std::string::npos) end = diagnostics.size();
    std::string_view line(diagnostics.data() + start, end - start);
    if (!line.empty() && line[0] != ' ' && line[0] != '\t') {
      if (line.starts_with("error: ") || line.find(": error: ") != std::string_view::npos) {
        ++errors;
      } else if (line.starts_with("warning: ") ||
                 line.find(": warning: ") != std::string_view::npos) {
        ++warnings;
      }
    }
    start = end + 1;
  }
  if (errors || warnings) {
    std::cerr << errors << " error" << (errors == 1 ? "" : "s") << ", " << warnings << " warning"
              << (warnings == 1 ? "" : "s") << "\n";
  }
}

int CmdPublish(int argc, char** argv) {
  Session s;
  if (auto rc = Open(argc, argv, 2, {"--policy", "--message"}, {}, &s)) return *rc;
  const std::string* policy = s.args.Flag("--policy");
  if (!policy) return Usage("publish needs --policy NAME");
  if (s.args.positional.empty()) return Usage("publish needs a directory or files");
  Result<CollectedFiles> files = CollectPublishFiles(s.args.positional);
  if (!files.ok()) {
    std::cerr << "vakt: " << files.status().message() << "\n";
    return kExitUsage;
  }
  for (const std::string& skipped : files->skipped) {
    std::cerr << "vakt: note: not published: " << skipped << "\n";
  }
  v1::PublishRequest req;
  req.set_policy(*policy);
  if (const std::string* m = s.args.Flag("--message")) req.set_message(*m);
  for (auto& f : files->files) *req.add_files() = std::move(f);
  v1::PublishResponse resp;
  Status st = s.client->Call(&Stub::Publish, req, &resp);
  std::string diagnostics;
  if (IsCompileFailure(st, &diagnostics)) {
    std::cerr << diagnostics;
    PrintSummary(diagnostics);
    return kExitRefused;
  }
  if (!st.ok()) return Fail(st);
  std::string warnings;
  for (const v1::Diagnostic& d : resp.diagnostics()) warnings += d.formatted();
  std::cerr << warnings;
  PrintSummary(warnings);
  resp.mutable_version()->clear_files();
  resp.mutable_version()->clear_bundle();
  if (s.json) {
    PrintJson(ToJson(resp));
    return kExitOk;
  }
  const v1::VersionInfo& v = resp.version();
  if (resp.created()) {
    std::cout << "published `" << Clean(v.policy()) << "` version " << v.version() << ": "
              << req.files_size() << " file" << (req.files_size() == 1 ? "" : "s") << ", bundle "
              << v.bundle_size() << " bytes, sha256 " << Clean(v.bundle_digest()) << "\n";
  } else {
    std::cout << "unchanged: `" << Clean(v.policy()) << "` version " << v.version()
              << " has the same sources (sha256 " << Clean(v.source_digest()) << ")\n";
  }
  return kExitOk;
}

int CmdVersions(int argc, char** argv) {
  Session s;
  if (auto rc = Open(argc, argv, 2, {"--policy", "--limit"}, {}, &s)) return *rc;
  if (!s.args.positional.empty()) return Usage("versions takes no positional arguments");
  v1::ListVersionsRequest req;
  if (const std::string* p = s.args.Flag("--policy")) req.set_policy(*p);
  if (const std::string* l = s.args.Flag("--limit")) {
    uint32_t v = 0;
    if (!ParseU32(*l, 1000, &v) || v == 0) return Usage("--limit takes 1 to 1000");
    req.set_limit(v);
  }
  v1::ListVersionsResponse resp;
  if (Status st = s.client->Call(&Stub::ListVersions, req, &resp); !st.ok()) return Fail(st);
  for (auto& v : *resp.mutable_versions()) {
    v.clear_files();
    v.clear_bundle();
  }
  if (s.json) {
    PrintJson(JsonArray(resp.versions()));
    return kExitOk;
  }
  Table t({"POLICY", "VERSION", "CREATED", "AUTHOR", "BUNDLE", "SIZE", "MESSAGE"});
  for (const v1::VersionInfo& v : resp.versions()) {
    t.Add({Clean(v.policy()), std::to_string(v.version()), Time(v.created_at()), OrDash(v.author()),
           Clean(v.bundle_digest().substr(0, 12)), std::to_string(v.bundle_size()),
           OrDash(v.message())});
  }
  t.Print(std::cout);
  return kExitOk;
}

int CmdDiff(int argc, char** argv) {
  Session s;
  if (auto rc = Open(argc, argv, 2, {"--policy"}, {}, &s)) return *rc;
  const std::string* policy = s.args.Flag("--policy");
  if (!policy) return Usage("diff needs --policy P");
  if (s.args.positional.size() != 2) return Usage("diff needs two versions: FROM TO");
  v1::DiffRequest req;
  uint64_t from = 0, to = 0;
  if (!ParseU64(s.args.positional[0], UINT64_MAX, &from) ||
      !ParseU64(s.args.positional[1], UINT64_MAX, &to) || from == 0 || to == 0) {
    return Usage("diff takes version numbers");
  }
  req.set_policy(*policy);
  req.set_from_version(from);
  req.set_to_version(to);
  v1::DiffResponse resp;
  if (Status st = s.client->Call(&Stub::Diff, req, &resp); !st.ok()) return Fail(st);
  if (s.json) {
    PrintJson(JsonArray(resp.files()));
    return kExitOk;
  }
  if (resp.files().empty()) {
    std::cout << "no changes between versions " << from << " and " << to << "\n";
  }
  for (const v1::FileDiff& f : resp.files()) {
    if (f.unified().empty()) {
      std::cout << "file " << Clean(f.path()) << " " << Clean(f.change()) << " (binary)\n";
    } else {
      std::cout << f.unified();
      if (!f.unified().ends_with("\n")) std::cout << "\n";
    }
  }
  return kExitOk;
}

// ---- rollouts -------------------------------------------------------------------

std::string Stages(const v1::RolloutInfo& r) {
  std::string out;
  for (uint32_t st : r.stages()) out += (out.empty() ? "" : ",") + std::to_string(st);
  return out;
}

std::string StageText(const v1::RolloutInfo& r) {
  std::string pct = r.stage() < static_cast<uint32_t>(r.stages_size())
                        ? std::to_string(r.stages(static_cast<int>(r.stage()))) + "%"
                        : "?";
  return std::to_string(r.stage() + 1) + "/" + std::to_string(r.stages_size()) + " (" + pct + ")";
}

void PrintRollout(const v1::RolloutInfo& r) {
  std::cout << "rollout " << r.id() << ": `" << Clean(r.policy()) << "` version " << r.version()
            << " (previous " << (r.previous_version() ? std::to_string(r.previous_version()) : "none")
            << ")\n";
  Table t({"  state", Clean(r.state())});
  t.Add({"  stage", StageText(r) + " of stages " + Stages(r)});
  t.Add({"  selector", Labels(r.selector())});
  t.Add({"  agents", std::to_string(r.selected()) + " selected, " + std::to_string(r.in_stage()) +
                         " in stage, " + std::to_string(r.acked()) + " acked, " +
                         std::to_string(r.nacked()) + " nacked"});
  t.Add({"  auto advance", std::string(r.auto_advance() ? "yes" : "no") + ", nack threshold " +
                               std::to_string(r.nack_threshold_percent()) + "%"});
  t.Add({"  created", Time(r.created_at()) + " by " + OrDash(r.created_by())});
  t.Add({"  updated", Time(r.updated_at())});
  if (!r.reason().empty()) t.Add({"  reason", Clean(r.reason())});
  t.Print(std::cout);
}

int PrintRolloutResult(const Session& s, const v1::RolloutInfo& r) {
  if (s.json) {
    PrintJson(ToJson(r));
  } else {
    PrintRollout(r);
  }
  return kExitOk;
}

int CmdRolloutStart(int argc, char** argv) {
  Session s;
  if (auto rc = Open(argc, argv, 3, {"--policy", "--version", "--selector", "--stages",
                                     "--nack-threshold"},
                     {"--auto"}, &s)) {
    return *rc;
  }
  if (!s.args.positional.empty()) return Usage("rollout start takes no positional arguments");
  const std::string* policy = s.args.Flag("--policy");
  const std::string* version = s.args.Flag("--version");
  if (!policy || !version) return Usage("rollout start needs --policy P and --version V");
  v1::StartRolloutRequest req;
  req.set_policy(*policy);
  uint64_t v = 0;
  if (!ParseU64(*version, UINT64_MAX, &v) || v == 0) return Usage("--version takes a version number");
  req.set_version(v);
  std::map<std::string, std::string> selector;
  std::string err;
  if (!ParseSelector(s.args.All("--selector"), &selector, &err)) return Usage(err);
  for (const auto& [k, val] : selector) (*req.mutable_selector())[k] = val;
  if (const std::string* stages = s.args.Flag("--stages")) {
    size_t start = 0;
    while (start <= stages->size()) {
      size_t comma = stages->find(',', start);
      if (comma == std::string::npos) comma = stages->size();
      uint32_t pct = 0;
      if (!ParseU32(stages->substr(start, comma - start), 100, &pct) || pct == 0 ||
          req.stages_size() >= 64) {
        return Usage("--stages takes up to 64 percentages 1 to 100, like 10,50,100");
      }
      req.add_stages(pct);
      start = comma + 1;
    }
  }
  req.set_auto_advance(s.args.Switch("--auto"));
  if (const std::string* n = s.args.Flag("--nack-threshold")) {
    uint32_t pct = 0;
    if (!ParseU32(*n, 100, &pct)) return Usage("--nack-threshold takes a percentage 0 to 100");
    req.set_nack_threshold_percent(pct);
  }
  v1::RolloutInfo resp;
  if (Status st = s.client->Call(&Stub::StartRollout, req, &resp); !st.ok()) return Fail(st);
  return PrintRolloutResult(s, resp);
}

int CmdRolloutById(int argc, char** argv, const std::string& sub) {
  Session s;
  if (auto rc = Open(argc, argv, 3, {}, {}, &s)) return *rc;
  uint64_t id = 0;
  if (s.args.positional.size() != 1 || !ParseU64(s.args.positional[0], UINT64_MAX, &id) ||
      id == 0) {
    return Usage("rollout " + sub + " needs a rollout ID");
  }
  v1::RolloutRef req;
  req.set_id(id);
  v1::RolloutInfo resp;
  AdminClient::Rpc<v1::RolloutRef, v1::RolloutInfo> rpc =
      sub == "advance" ? &Stub::AdvanceRollout
      : sub == "pause" ? &Stub::PauseRollout
      : sub == "resume" ? &Stub::ResumeRollout
                        : &Stub::GetRollout;
  if (Status st = s.client->Call(rpc, req, &resp); !st.ok()) return Fail(st);
  return PrintRolloutResult(s, resp);
}

int CmdRolloutList(int argc, char** argv) {
  Session s;
  if (auto rc = Open(argc, argv, 3, {"--policy", "--limit"}, {}, &s)) return *rc;
  if (!s.args.positional.empty()) return Usage("rollout list takes no positional arguments");
  v1::ListRolloutsRequest req;
  if (const std::string* p = s.args.Flag("--policy")) req.set_policy(*p);
  if (const std::string* l = s.args.Flag("--limit")) {
    uint32_t v = 0;
    if (!ParseU32(*l, 1000, &v) || v == 0) return Usage("--limit takes 1 to 1000");
    req.set_limit(v);
  }
  v1::ListRolloutsResponse resp;
  if (Status st = s.client->Call(&Stub::ListRollouts, req, &resp); !st.ok()) return Fail(st);
  if (s.json) {
    PrintJson(JsonArray(resp.rollouts()));
    return kExitOk;
  }
  Table t({"ID", "POLICY", "VERSION", "STATE", "STAGE", "SELECTOR", "AGENTS", "ACKED", "NACKED",
           "CREATED"});
  for (const v1::RolloutInfo& r : resp.rollouts()) {
    t.Add({std::to_string(r.id()), Clean(r.policy()), std::to_string(r.version()),
           Clean(r.state()), StageText(r), Labels(r.selector()), std::to_string(r.selected()),
           std::to_string(r.acked()), std::to_string(r.nacked()), Time(r.created_at())});
  }
  t.Print(std::cout);
  return kExitOk;
}

int CmdRollout(int argc, char** argv) {
  if (argc < 3) return Usage("rollout needs start, advance, pause, resume, status or list");
  std::string sub = argv[2];
  if (sub == "start") return CmdRolloutStart(argc, argv);
  if (sub == "list") return CmdRolloutList(argc, argv);
  if (sub == "advance" || sub == "pause" || sub == "resume" || sub == "status") {
    return CmdRolloutById(argc, argv, sub);
  }
  return Usage("unknown rollout subcommand `" + sub + "`");
}

int CmdRollback(int argc, char** argv) {
  Session s;
  if (auto rc = Open(argc, argv, 2, {"--policy", "--rollout"}, {}, &s)) return *rc;
  const std::string* policy = s.args.Flag("--policy");
  const std::string* rollout = s.args.Flag("--rollout");
  if ((policy != nullptr) == (rollout != nullptr) || !s.args.positional.empty()) {
    return Usage("rollback needs --policy P or --rollout ID");
  }
  v1::RollbackRequest req;
  if (policy) req.set_policy(*policy);
  if (rollout) {
    uint64_t id = 0;
    if (!ParseU64(*rollout, UINT64_MAX, &id) || id == 0) return Usage("--rollout takes a rollout ID");
    req.set_rollout_id(id);
  }
  v1::RolloutInfo resp;
  if (Status st = s.client->Call(&Stub::Rollback, req, &resp); !st.ok()) return Fail(st);
  return PrintRolloutResult(s, resp);
}

// ---- fleet, revocations, audit, tokens ---------------------------------------

int CmdAgents(int argc, char** argv) {
  Session s;
  if (auto rc = Open(argc, argv, 2, {"--selector"}, {}, &s)) return *rc;
  if (!s.args.positional.empty()) return Usage("agents takes no positional arguments");
  v1::ListAgentsRequest req;
  std::map<std::string, std::string> selector;
  std::string err;
  if (!ParseSelector(s.args.All("--selector"), &selector, &err)) return Usage(err);
  for (const auto& [k, v] : selector) (*req.mutable_selector())[k] = v;
  v1::ListAgentsResponse resp;
  if (Status st = s.client->Call(&Stub::ListAgents, req, &resp); !st.ok()) return Fail(st);
  if (s.json) {
    PrintJson(JsonArray(resp.agents()));
    return kExitOk;
  }
  if (resp.agents().empty()) {
    std::cout << "no agents" << (selector.empty() ? "" : " match the selector") << "\n";
    return kExitOk;
  }
  auto version = [](const std::string& policy, uint64_t v) {
    if (v == 0) return std::string("-");
    return (policy.empty() ? "" : Clean(policy) + "@") + std::to_string(v);
  };
  Table t({"ID", "LABELS", "STATE", "ACTIVE", "DESIRED", "LAST SEEN", "LAST ERROR"});
  for (const v1::AgentInfo& a : resp.agents()) {
    t.Add({Clean(a.id()), Labels(a.labels()), Clean(a.state()),
           version(a.active_policy(), a.active_version()),
           version(a.desired_policy(), a.desired_version()), Time(a.last_seen()),
           OrDash(a.last_error())});
  }
  t.Print(std::cout);
  return kExitOk;
}

int CmdRevokeAdd(int argc, char** argv) {
  Session s;
  if (auto rc = Open(argc, argv, 3, {"--jti", "--sub", "--client-id", "--not-after", "--reason"},
                     {}, &s)) {
    return *rc;
  }
  v1::AddRevocationRequest req;
  int kinds = 0;
  for (const auto& [flag, kind] : {std::pair<const char*, const char*>{"--jti", "jti"},
                                   {"--sub", "sub"},
                                   {"--client-id", "client_id"}}) {
    if (const std::string* v = s.args.Flag(flag)) {
      ++kinds;
      req.set_kind(kind);
      req.set_value(*v);
    }
  }
  if (kinds != 1 || !s.args.positional.empty()) {
    return Usage("revoke add needs one of --jti J, --sub S or --client-id C");
  }
  if (const std::string* n = s.args.Flag("--not-after")) {
    uint64_t t = 0;
    if (!ParseU64(*n, INT64_MAX, &t)) return Usage("--not-after takes unix seconds");
    req.set_not_after(static_cast<int64_t>(t));
  }
  if (const std::string* r = s.args.Flag("--reason")) req.set_reason(*r);
  v1::RevocationInfo resp;
  if (Status st = s.client->Call(&Stub::AddRevocation, req, &resp); !st.ok()) return Fail(st);
  if (s.json) {
    PrintJson(ToJson(resp));
    return kExitOk;
  }
  std::cout << "revocation " << resp.id() << ": " << Clean(resp.kind()) << " `"
            << Clean(resp.value()) << "`"
            << (resp.not_after() ? ", tokens issued at or before " + Time(resp.not_after()) : "")
            << "\n";
  return kExitOk;
}

int CmdRevokeList(int argc, char** argv) {
  Session s;
  if (auto rc = Open(argc, argv, 3, {}, {}, &s)) return *rc;
  if (!s.args.positional.empty()) return Usage("revoke list takes no positional arguments");
  v1::ListRevocationsResponse resp;
  if (Status st = s.client->Call(&Stub::ListRevocations, v1::ListRevocationsRequest(), &resp);
      !st.ok()) {
    return Fail(st);
  }
  if (s.json) {
    PrintJson(JsonArray(resp.revocations()));
    return kExitOk;
  }
  std::cout << "revision " << resp.revision() << ", " << resp.revocations_size() << " revocation"
            << (resp.revocations_size() == 1 ? "" : "s") << "\n";
  if (resp.revocations().empty()) return kExitOk;
  Table t({"ID", "KIND", "VALUE", "NOT AFTER", "REASON", "CREATED", "BY"});
  for (const v1::RevocationInfo& r : resp.revocations()) {
    t.Add({std::to_string(r.id()), Clean(r.kind()), Clean(r.value()), Time(r.not_after()),
           OrDash(r.reason()), Time(r.created_at()), OrDash(r.created_by())});
  }
  t.Print(std::cout);
  return kExitOk;
}

int CmdRevokeRemove(int argc, char** argv) {
  Session s;
  if (auto rc = Open(argc, argv, 3, {}, {}, &s)) return *rc;
  uint64_t id = 0;
  if (s.args.positional.size() != 1 || !ParseU64(s.args.positional[0], UINT64_MAX, &id) ||
      id == 0) {
    return Usage("revoke remove needs a revocation ID");
  }
  v1::RemoveRevocationRequest req;
  req.set_id(id);
  v1::RemoveRevocationResponse resp;
  if (Status st = s.client->Call(&Stub::RemoveRevocation, req, &resp); !st.ok()) return Fail(st);
  if (s.json) {
    PrintJson({{"id", id}, {"removed", true}});
  } else {
    std::cout << "removed revocation " << id << "\n";
  }
  return kExitOk;
}

int CmdRevoke(int argc, char** argv) {
  if (argc < 3) return Usage("revoke needs add, list or remove");
  std::string sub = argv[2];
  if (sub == "add") return CmdRevokeAdd(argc, argv);
  if (sub == "list") return CmdRevokeList(argc, argv);
  if (sub == "remove") return CmdRevokeRemove(argc, argv);
  return Usage("unknown revoke subcommand `" + sub + "`");
}

int CmdAudit(int argc, char** argv) {
  Session s;
  if (auto rc = Open(argc, argv, 2, {"--after", "--limit"}, {}, &s)) return *rc;
  if (!s.args.positional.empty()) return Usage("audit takes no positional arguments");
  v1::ListAuditRequest req;
  if (const std::string* a = s.args.Flag("--after")) {
    uint64_t v = 0;
    if (!ParseU64(*a, UINT64_MAX, &v)) return Usage("--after takes an audit entry ID");
    req.set_after_id(v);
  }
  if (const std::string* l = s.args.Flag("--limit")) {
    uint32_t v = 0;
    if (!ParseU32(*l, 1000, &v) || v == 0) return Usage("--limit takes 1 to 1000");
    req.set_limit(v);
  }
  v1::ListAuditResponse resp;
  if (Status st = s.client->Call(&Stub::ListAudit, req, &resp); !st.ok()) return Fail(st);
  if (s.json) {
    PrintJson(JsonArray(resp.entries()));
    return kExitOk;
  }
  Table t({"ID", "TIME", "PRINCIPAL", "ACTION", "TARGET", "RESULT", "DETAIL"});
  for (const v1::AuditEntry& e : resp.entries()) {
    t.Add({std::to_string(e.id()), Time(e.time()), OrDash(e.principal()), OrDash(e.action()),
           OrDash(e.target()), OrDash(e.result()), OrDash(e.detail())});
  }
  t.Print(std::cout);
  return kExitOk;
}

// --since: a duration back from now (`90s`, `10m`, `2h`, `1d`) or unix
// seconds; returns unix milliseconds.
bool ParseSince(const std::string& s, int64_t* out_ms) {
  if (s.empty()) return false;
  const char unit = s.back();
  int64_t scale = 0;
  switch (unit) {
    case 's': scale = 1; break;
    case 'm': scale = 60; break;
    case 'h': scale = 3600; break;
    case 'd': scale = 86400; break;
    default: break;
  }
  uint64_t v = 0;
  if (scale == 0) {
    if (!ParseU64(s, INT64_MAX / 1000, &v)) return false;
    *out_ms = static_cast<int64_t>(v) * 1000;
    return true;
  }
  if (!ParseU64(s.substr(0, s.size() - 1), 366 * 86400 / scale, &v)) return false;
  *out_ms = (static_cast<int64_t>(std::time(nullptr)) - static_cast<int64_t>(v) * scale) * 1000;
  return true;
}

int CmdDecisions(int argc, char** argv) {
  Session s;
  if (auto rc = Open(argc, argv, 2, {"--agent", "--route", "--since", "--limit"},
                     {"--deny", "--allow"}, &s)) {
    return *rc;
  }
  if (!s.args.positional.empty()) return Usage("decisions takes no positional arguments");
  v1::ListDecisionsRequest req;
  if (const std::string* a = s.args.Flag("--agent")) req.set_agent_id(*a);
  if (const std::string* r = s.args.Flag("--route")) req.set_route(*r);
  const bool deny = s.args.Switch("--deny"), allow = s.args.Switch("--allow");
  if (deny && allow) return Usage("--deny and --allow exclude each other");
  if (deny) req.set_decision("deny");
  if (allow) req.set_decision("allow");
  if (const std::string* since = s.args.Flag("--since")) {
    int64_t ms = 0;
    if (!ParseSince(*since, &ms)) {
      return Usage("--since takes a duration (90s, 10m, 2h, 1d) or unix seconds");
    }
    req.set_since_unix_ms(ms);
  }
  if (const std::string* l = s.args.Flag("--limit")) {
    uint32_t v = 0;
    if (!ParseU32(*l, 1000, &v) || v == 0) return Usage("--limit takes 1 to 1000");
    req.set_limit(v);
  }
  v1::ListDecisionsResponse resp;
  if (Status st = s.client->Call(&Stub::ListDecisions, req, &resp); !st.ok()) return Fail(st);
  if (s.json) {  // an array, like every list command; the totals are in the table's footer
    PrintJson(JsonArray(resp.decisions()));
    return kExitOk;
  }
  if (resp.decisions().empty()) {
    std::cout << "no decisions" << (resp.stored() ? " match" : " logged yet") << "\n";
    return kExitOk;
  }
  Table t({"TIME", "AGENT", "METHOD", "PATH", "ROUTE", "STATUS", "RULE", "ERROR", "SUB",
           "CLIENT"});
  for (const v1::DecisionInfo& d : resp.decisions()) {
    const v1::DecisionEvent& e = d.event();
    std::string status = std::to_string(e.status()) + (e.allow() ? " allow" : " deny");
    if (e.response()) status += " (response " + std::to_string(e.upstream_status()) + ")";
    std::string path = e.path() + (e.query().empty() ? "" : "?" + e.query());
    t.Add({Time(e.time_unix_ms() / 1000), Clean(d.agent_id()), OrDash(e.method()), OrDash(path),
           OrDash(e.route()), status, OrDash(e.rule()), OrDash(e.error()), OrDash(e.sub()),
           OrDash(e.client_id())});
  }
  t.Print(std::cout);
  std::cout << resp.decisions_size() << " shown; " << resp.stored() << " stored, "
            << resp.evicted_total() << " evicted, " << resp.refused_total()
            << " refused by the control plane, " << resp.agent_dropped_total()
            << " dropped by agents\n";
  return kExitOk;
}

int CmdTokens(int argc, char** argv) {
  if (argc < 3) return Usage("tokens needs create, list or delete");
  std::string sub = argv[2];
  Session s;
  if (sub == "create") {
    if (auto rc = Open(argc, argv, 3, {"--name", "--role"}, {}, &s)) return *rc;
    const std::string* name = s.args.Flag("--name");
    const std::string* role = s.args.Flag("--role");
    if (!name || !role || !s.args.positional.empty()) {
      return Usage("tokens create needs --name N and --role viewer|author|deployer|admin");
    }
    v1::CreateTokenRequest req;
    req.set_name(*name);
    req.set_role(*role);
    v1::CreateTokenResponse resp;
    if (Status st = s.client->Call(&Stub::CreateToken, req, &resp); !st.ok()) return Fail(st);
    if (s.json) {
      PrintJson(ToJson(resp));
      return kExitOk;
    }
    // The token alone on stdout, so `vakt tokens create ... > FILE` keeps it.
    std::cerr << "vakt: token `" << Clean(resp.name()) << "` with role " << Clean(resp.role())
              << " created; it is shown only this once\n";
    std::cout << Clean(resp.token()) << "\n";
    return kExitOk;
  }
  if (sub == "list") {
    if (auto rc = Open(argc, argv, 3, {}, {}, &s)) return *rc;
    if (!s.args.positional.empty()) return Usage("tokens list takes no positional arguments");
    v1::ListTokensResponse resp;
    if (Status st = s.client->Call(&Stub::ListTokens, v1::ListTokensRequest(), &resp); !st.ok()) {
      return Fail(st);
    }
    if (s.json) {
      PrintJson(JsonArray(resp.tokens()));
      return kExitOk;
    }
    Table t({"NAME", "ROLE", "CREATED", "BY"});
    for (const v1::TokenInfo& i : resp.tokens()) {
      t.Add({Clean(i.name()), Clean(i.role()), Time(i.created_at()), OrDash(i.created_by())});
    }
    t.Print(std::cout);
    return kExitOk;
  }
  if (sub == "delete") {
    if (auto rc = Open(argc, argv, 3, {}, {}, &s)) return *rc;
    if (s.args.positional.size() != 1) return Usage("tokens delete needs a token NAME");
    v1::DeleteTokenRequest req;
    req.set_name(s.args.positional[0]);
    v1::DeleteTokenResponse resp;
    if (Status st = s.client->Call(&Stub::DeleteToken, req, &resp); !st.ok()) return Fail(st);
    if (s.json) {
      PrintJson({{"name", req.name()}, {"deleted", true}});
    } else {
      std::cout << "deleted token `" << Clean(req.name()) << "`\n";
    }
    return kExitOk;
  }
  return Usage("unknown tokens subcommand `" + sub + "`");
}

int CmdWhoAmI(int argc, char** argv) {
  Session s;
  if (auto rc = Open(argc, argv, 2, {}, {}, &s)) return *rc;
  if (!s.args.positional.empty()) return Usage("whoami takes no positional arguments");
  v1::WhoAmIResponse resp;
  if (Status st = s.client->Call(&Stub::WhoAmI, v1::WhoAmIRequest(), &resp); !st.ok()) {
    return Fail(st);
  }
  if (s.json) {
    PrintJson(ToJson(resp));
  } else {
    std::cout << Clean(resp.name()) << " (role " << Clean(resp.role()) << ")\n";
  }
  return kExitOk;
}

struct Command {
  std::string_view name;
  int (*run)(int, char**);
};

constexpr Command kCommands[] = {
    {"publish", CmdPublish}, {"versions", CmdVersions}, {"diff", CmdDiff},
    {"rollout", CmdRollout}, {"rollback", CmdRollback}, {"agents", CmdAgents},
    {"revoke", CmdRevoke},   {"audit", CmdAudit},       {"tokens", CmdTokens},
    {"whoami", CmdWhoAmI},   {"decisions", CmdDecisions},
};

}  // namespace

bool IsAdminCommand(std::string_view command) {
  for (const Command& c : kCommands) {
    if (c.name == command) return true;
  }
  return false;
}

int RunAdminCommand(int argc, char** argv) {
  if (argc < 2) return Usage("");
  for (int i = 2; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") break;
    if (a == "--help" || a == "-h") {
      std::cout << kAdminUsageText;
      return kExitOk;
    }
  }
  for (const Command& c : kCommands) {
    if (c.name == argv[1]) return c.run(argc, argv);
  }
  return Usage("unknown command `" + std::string(argv[1]) + "`");
}

}  // namespace vakt::admin
