// The `vakt` admin subcommands end to end: a real `vakt-controlplane`
// process (plain TCP on loopback, a temp data directory, its first admin
// token) driven through the `vakt` binary, human and --json output, every
// exit code (0 ok, 1 refused, 2 usage, 3 unreachable/unauthenticated); and
// the client library's checks on their own (token file, publish file walk,
// status mapping, JSON). Tests controlplane/admin_cli.cc and admin_client.cc.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>

#include "controlplane/admin_cli.h"
#include "controlplane/admin_client.h"
#include "vakt/v1/agent.grpc.pb.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "vakt-admin-cli-XXXXXX").string();
  EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

void WriteFile(const std::string& path, const std::string& text, mode_t mode = 0644) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  ::chmod(path.c_str(), mode);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct CmdResult {
  int code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `env vakt args` through the shell with stdout and stderr apart.
CmdResult Exec(const std::string& cmdline, const std::string& err_file) {
  std::string cmd = cmdline + " 2>" + err_file;
  FILE* p = popen(cmd.c_str(), "r");
  CmdResult r;
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.err = ReadFile(err_file);
  return r;
}

json ParseJson(const CmdResult& r) {
  try {
    return json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON: " << e.what() << "\n" << r.out << r.err;
    return json();
  }
}

// A vakt-controlplane process on 127.0.0.1:0 in a temp data directory.
class AdminCli : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("VAKT_SERVER");
    unsetenv("VAKT_TOKEN_FILE");
    dir_ = TempDir();
    data_ = dir_ + "/data";
    const std::string port_file = dir_ + "/port";
    const std::string log = dir_ + "/server.log";
    pid_ = fork();
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execl(VAKT_CONTROLPLANE_BINARY, VAKT_CONTROLPLANE_BINARY, "--data-dir", data_.c_str(),
            "--listen", "127.0.0.1:0", "--insecure-loopback", "--port-file", port_file.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::string port;
    while (std::chrono::steady_clock::now() < deadline) {
      port = ReadFile(port_file);
      if (!port.empty() && port.back() == '\n') break;
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "vakt-controlplane exited early:\n" << ReadFile(log);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_FALSE(port.empty()) << "no port file; log:\n" << ReadFile(log);
    port.pop_back();
    address_ = "127.0.0.1:" + port;
    token_file_ = data_ + "/admin.token";
    ASSERT_TRUE(fs::exists(token_file_));
    common_ = " --server " + address_ + " --insecure --token-file " + token_file_;
  }

  void TearDown() override {
    if (pid_ > 0) {
      ASSERT_EQ(kill(pid_, SIGTERM), 0);
      int st = 0;
      ASSERT_EQ(waitpid(pid_, &st, 0), pid_);
      EXPECT_TRUE(WIFEXITED(st)) << "signal " << (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
      EXPECT_EQ(WEXITSTATUS(st), 0) << ReadFile(dir_ + "/server.log");
    }
    fs::remove_all(dir_);
  }

  // `vakt ARGS` with the server flags appended.
  CmdResult Vakt(const std::string& args) {
    return Exec(std::string(VAKT_BINARY) + " " + args + common_, dir_ + "/stderr");
  }
  // `vakt ARGS` as given (no server flags).
  CmdResult VaktRaw(const std::string& args) {
    return Exec(std::string(VAKT_BINARY) + " " + args, dir_ + "/stderr");
  }

  // Publishes a one-file policy whose text depends on `tag`; returns its version.
  uint64_t PublishTag(const std::string& policy, const std::string& tag) {
    std::string src = dir_ + "/src-" + policy + "-" + tag;
    WriteFile(src + "/main.vakt", "// " + tag + "\napi demo \"/\" {\n  route ping GET \"/ping\" {}\n}\n");
    CmdResult r = Vakt("publish --json --policy " + policy + " " + src);
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    json j = ParseJson(r);
    return j.is_object() ? j["version"]["version"].get<uint64_t>() : 0;
  }

  std::string dir_, data_, address_, token_file_, common_;
  pid_t pid_ = -1;
};

TEST_F(AdminCli, PublishHealthcareThenUnchanged) {
  const std::string example = std::string(VAKT_SOURCE_DIR) + "/examples/healthcare";
  CmdResult r = Vakt("publish --policy healthcare --message 'first cut' " + example);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("published `healthcare` version 1:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("sha256 "), std::string::npos) << r.out;

  r = Vakt("publish --policy healthcare --message again " + example);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("unchanged: `healthcare` version 1"), std::string::npos) << r.out;

  r = Vakt("publish --json --policy healthcare " + example);
  ASSERT_EQ(r.code, 0) << r.err;
  json j = ParseJson(r);
  EXPECT_EQ(j["created"], false);
  EXPECT_EQ(j["version"]["version"], 1);
  EXPECT_EQ(j["version"]["files"], json::array());  // sources are not echoed

  // The versions list: human table and JSON with the proto field names.
  r = Vakt("versions");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("POLICY", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("healthcare  1 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("first cut"), std::string::npos) << r.out;
  r = Vakt("versions --json --policy healthcare --limit 10");
  ASSERT_EQ(r.code, 0) << r.err;
  j = ParseJson(r);
  ASSERT_TRUE(j.is_array());
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["policy"], "healthcare");
  EXPECT_EQ(j[0]["version"], 1);
  EXPECT_EQ(j[0]["author"], "admin");
  EXPECT_EQ(j[0]["message"], "first cut");
  EXPECT_EQ(j[0]["bundle_digest"].get<std::string>().size(), 64u);
  EXPECT_GT(j[0]["bundle_size"].get<uint64_t>(), 0u);
  EXPECT_FALSE(j[0]["key_id"].get<std::string>().empty());

  r = Vakt("versions --json --policy nosuch");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ParseJson(r), json::array());
  EXPECT_EQ(Vakt("versions --limit 0").code, 2);
  EXPECT_EQ(Vakt("versions --limit 5000").code, 2);
}

TEST_F(AdminCli, CompileErrorsLikeCheck) {
  const std::string src = dir_ + "/broken";
  WriteFile(src + "/main.vakt",
            "api a \"/v1\" {\n  route GET \"/x\" {\n    require a else deny 403\n"
            "    require b == 1 else deny 403\n  }\n}\n");
  CmdResult r = Exec("cd " + src + " && " + VAKT_BINARY + " publish --policy broken ." + common_,
               dir_ + "/stderr");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("main.vakt:3:13: error: unknown name `a`\n      require a else deny 403\n"
                       "              ^\n"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("main.vakt:4:13: error: unknown name `b`"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("2 errors, 0 warnings\n"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("vakt: error:"), std::string::npos) << r.err;
  // Exactly what `vakt check` prints for the same file.
  CmdResult check = Exec("cd " + src + " && " + VAKT_BINARY + " check main.vakt", dir_ + "/stderr");
  EXPECT_EQ(check.code, 1);
  EXPECT_EQ(r.err, check.err);
  // Hundreds of diagnostics would pass gRPC's default 8 KiB of received
  // metadata, where the status message travels: the server sends the first
  // ones, cut at a line, with a note.
  std::string many = "api a \"/v1\" {\n  route GET \"/x\" {\n";
  for (int i = 0; i < 300; ++i) many += "    require missing_name_" + std::to_string(i) + " else deny 403\n";
  many += "  }\n}\n";
  WriteFile(src + "/main.vakt", many);
  r = Exec("cd " + src + " && " + VAKT_BINARY + " publish --policy broken ." + common_,
           dir_ + "/stderr");
  EXPECT_EQ(r.code, 1) << r.err.substr(0, 2000);
  EXPECT_LT(r.err.size(), 8000u);
  EXPECT_NE(r.err.find("missing_name_0"), std::string::npos) << r.err.substr(0, 2000);
  EXPECT_EQ(r.err.find("missing_name_299"), std::string::npos);
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err.substr(r.err.size() - 500);
  // Nothing was stored.
  r = Vakt("versions --json");
  EXPECT_EQ(ParseJson(r), json::array());
  // A directory without sources is refused by the server.
  WriteFile(dir_ + "/assets/data.json", "{}");
  r = Vakt("publish --policy broken " + dir_ + "/assets");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("vakt: error: invalid argument: no `.vakt` file"), std::string::npos)
      << r.err;
  // Usage: no policy, no files, a path that does not exist.
  EXPECT_EQ(Vakt("publish " + src).code, 2);
  EXPECT_EQ(Vakt("publish --policy p").code, 2);
  r = Vakt("publish --policy p " + dir_ + "/nonexistent");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  // An invalid policy name is the server's to refuse.
  EXPECT_EQ(Vakt("publish --policy 'Bad Name' " + src).code, 1);
}

TEST_F(AdminCli, DiffAndRollouts) {
  uint64_t v1 = PublishTag("demo", "one");
  uint64_t v2 = PublishTag("demo", "two");
  ASSERT_GT(v1, 0u);
  ASSERT_GT(v2, v1);

  CmdResult r = Vakt("diff --policy demo " + std::to_string(v1) + " " + std::to_string(v2));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("--- a/main.vakt\n+++ b/main.vakt\n@@ -1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\n-// one\n+// two\n"), std::string::npos) << r.out;
  r = Vakt("diff --json --policy demo " + std::to_string(v1) + " " + std::to_string(v2));
  ASSERT_EQ(r.code, 0) << r.err;
  json j = ParseJson(r);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["path"], "main.vakt");
  EXPECT_EQ(j[0]["change"], "modified");
  r = Vakt("diff --policy demo " + std::to_string(v1) + " " + std::to_string(v1));
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("no changes"), std::string::npos) << r.out;
  EXPECT_EQ(Vakt("diff --policy demo 1").code, 2);
  EXPECT_EQ(Vakt("diff --policy demo one two").code, 2);
  r = Vakt("diff --policy demo 1 999");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("vakt: error: not found: "), std::string::npos) << r.err;

  // Rollouts: start, status, advance, pause, resume, list, rollback.
  r = Vakt("rollout start --policy demo --version " + std::to_string(v2) +
           " --stages 10,50,100 --selector env=prod --nack-threshold 20");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("rollout 1: `demo` version " + std::to_string(v2)), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("progressing"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1/3 (10%) of stages 10,50,100"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("env=prod"), std::string::npos) << r.out;

  r = Vakt("rollout status --json 1");
  ASSERT_EQ(r.code, 0) << r.err;
  j = ParseJson(r);
  EXPECT_EQ(j["id"], 1);
  EXPECT_EQ(j["policy"], "demo");
  EXPECT_EQ(j["version"], v2);
  EXPECT_EQ(j["stage"], 0);
  EXPECT_EQ(j["stages"], json({10, 50, 100}));
  EXPECT_EQ(j["selector"], json({{"env", "prod"}}));
  EXPECT_EQ(j["state"], "progressing");
  EXPECT_EQ(j["nack_threshold_percent"], 20);
  EXPECT_EQ(j["auto_advance"], false);
  EXPECT_EQ(j["created_by"], "admin");

  r = Vakt("rollout advance --json 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ParseJson(r)["stage"], 1);
  r = Vakt("rollout pause 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("paused"), std::string::npos) << r.out;
  r = Vakt("rollout resume --json 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ParseJson(r)["state"], "progressing");
  r = Vakt("rollout list --policy demo");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("ID", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("demo"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2/3 (50%)"), std::string::npos) << r.out;
  r = Vakt("rollout list --json");
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(ParseJson(r).size(), 1u);

  r = Vakt("rollback --policy demo");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("rolled_back"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rolled back by admin"), std::string::npos) << r.out;
  r = Vakt("rollout status --json 1");
  EXPECT_EQ(ParseJson(r)["state"], "rolled_back");
  // Nothing live is left to roll back; an unknown rollout.
  r = Vakt("rollback --policy demo");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("vakt: error: not found: no live rollout"), std::string::npos) << r.err;
  EXPECT_EQ(Vakt("rollout status 99").code, 1);
  // Refusals and usage errors.
  r = Vakt("rollout start --policy other --version " + std::to_string(v2));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("vakt: error: invalid argument: "), std::string::npos) << r.err;
  EXPECT_EQ(Vakt("rollout start --policy demo").code, 2);
  EXPECT_EQ(Vakt("rollout start --policy demo --version 1 --stages 10,x").code, 2);
  EXPECT_EQ(Vakt("rollout start --policy demo --version 1 --selector novalue").code, 2);
  EXPECT_EQ(Vakt("rollout start --policy demo --version 1 --nack-threshold 101").code, 2);
  EXPECT_EQ(Vakt("rollout frobnicate 1").code, 2);
  EXPECT_EQ(Vakt("rollout advance").code, 2);
  EXPECT_EQ(Vakt("rollback").code, 2);
  EXPECT_EQ(Vakt("rollback --policy demo --rollout 1").code, 2);
}

TEST_F(AdminCli, AgentsView) {
  CmdResult r = Vakt("agents");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "no agents\n");
  r = Vakt("agents --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ParseJson(r), json::array());

  // One agent (plain TCP: it names itself), first unassigned, then in sync.
  auto channel = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
  auto stub = vakt::v1::AgentService::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub->Stream(&ctx);
  vakt::v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id("edge-1");
  (*hello.mutable_hello()->mutable_labels())["env"] = "prod";
  hello.mutable_hello()->add_capabilities("bundle-format-3");
  ASSERT_TRUE(stream->Write(hello));

  json j;
  for (int i = 0; i < 200; ++i) {
    r = Vakt("agents --json --selector env=prod");
    j = ParseJson(r);
    if (j.is_array() && j.size() == 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(j.size(), 1u) << r.out << r.err;
  EXPECT_EQ(j[0]["id"], "edge-1");
  EXPECT_EQ(j[0]["labels"], json({{"env", "prod"}}));
  EXPECT_EQ(j[0]["state"], "unassigned");
  EXPECT_EQ(j[0]["connected"], true);
  r = Vakt("agents --selector env=staging");
  EXPECT_EQ(r.out, "no agents match the selector\n");

  uint64_t v = PublishTag("demo", "agents");
  r = Vakt("rollout start --policy demo --selector env=prod --version " + std::to_string(v));
  ASSERT_EQ(r.code, 0) << r.err;
  vakt::v1::ServerMessage m;
  bool got_bundle = false;
  while (stream->Read(&m)) {
    if (m.has_bundle()) {
      got_bundle = true;
      break;
    }
  }
  ASSERT_TRUE(got_bundle);
  EXPECT_EQ(m.bundle().version(), v);
  for (int i = 0; i < 200; ++i) {
    r = Vakt("agents --json");
    j = ParseJson(r);
    if (j.size() == 1 && j[0]["state"] == "pending") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(j[0]["state"], "pending") << r.out;
  EXPECT_EQ(j[0]["desired_version"], v);
  EXPECT_EQ(j[0]["desired_policy"], "demo");

  vakt::v1::AgentMessage ack;
  ack.mutable_ack()->set_nonce(m.bundle().nonce());
  ack.mutable_ack()->set_version(v);
  ASSERT_TRUE(stream->Write(ack));
  for (int i = 0; i < 200; ++i) {
    r = Vakt("agents");
    if (r.out.find("in_sync") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  // The table: header, then the agent with its labels, state and versions.
  EXPECT_EQ(r.out.rfind("ID", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("LAST SEEN"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("edge-1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("env=prod"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("in_sync"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("demo@" + std::to_string(v)), std::string::npos) << r.out;
  ctx.TryCancel();
  EXPECT_EQ(Vakt("agents --selector =x").code, 2);
  EXPECT_EQ(Vakt("agents --selector a=1 --selector a=2").code, 2);
}

TEST_F(AdminCli, RevocationsAndAudit) {
  CmdResult r = Vakt("revoke add --jti tok-123 --reason 'leaked in a log'");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("revocation 1: jti `tok-123`"), std::string::npos) << r.out;
  r = Vakt("revoke add --json --sub alice --not-after 1700000000");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = ParseJson(r);
  EXPECT_EQ(j["kind"], "sub");
  EXPECT_EQ(j["value"], "alice");
  EXPECT_EQ(j["not_after"], 1700000000);
  EXPECT_EQ(j["created_by"], "admin");

  r = Vakt("revoke list");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("2 revocations"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("tok-123"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("leaked in a log"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2023-11-14T22:13:20Z"), std::string::npos) << r.out;
  r = Vakt("revoke list --json");
  j = ParseJson(r);
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["id"], 1);
  EXPECT_EQ(j[0]["value"], "tok-123");

  r = Vakt("revoke remove 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "removed revocation 1\n");
  r = Vakt("revoke list --json");
  j = ParseJson(r);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["value"], "alice");
  EXPECT_EQ(Vakt("revoke remove 1").code, 1);  // already gone
  EXPECT_EQ(Vakt("revoke add --jti a --sub b").code, 2);
  EXPECT_EQ(Vakt("revoke add").code, 2);
  EXPECT_EQ(Vakt("revoke add --jti a --not-after soon").code, 2);
  EXPECT_EQ(Vakt("revoke remove x").code, 2);

  // Every mutation is in the audit log.
  r = Vakt("audit");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("ID", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("PRINCIPAL"), std::string::npos);
  r = Vakt("audit --json --limit 1000");
  ASSERT_EQ(r.code, 0) << r.err;
  j = ParseJson(r);
  ASSERT_TRUE(j.is_array());
  int adds = 0, removes = 0;
  uint64_t last = 0;
  for (const json& e : j) {
    if (e["principal"] == "admin" && e["result"] == "ok") {
      if (e["action"] == "revocation.add") ++adds;
      if (e["action"] == "revocation.remove") ++removes;
    }
    last = e["id"].get<uint64_t>();
  }
  EXPECT_EQ(adds, 2) << j.dump(1);
  EXPECT_EQ(removes, 1) << j.dump(1);
  r = Vakt("audit --json --after " + std::to_string(last));
  EXPECT_EQ(ParseJson(r), json::array());
  EXPECT_EQ(Vakt("audit --after x").code, 2);
  EXPECT_EQ(Vakt("audit extra").code, 2);
}

TEST_F(AdminCli, TokensAndRoles) {
  CmdResult r = Vakt("whoami");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "admin (role admin)\n");
  r = Vakt("whoami --json");
  EXPECT_EQ(ParseJson(r), json({{"name", "admin"}, {"role", "admin"}}));

  r = Vakt("tokens create --json --name ci-viewer --role viewer");
  ASSERT_EQ(r.code, 0) << r.err;
  json j = ParseJson(r);
  EXPECT_EQ(j["name"], "ci-viewer");
  EXPECT_EQ(j["role"], "viewer");
  const std::string viewer = dir_ + "/viewer.token";
  WriteFile(viewer, j["token"].get<std::string>() + "\n", 0600);
  // Human form: the token alone on stdout.
  r = Vakt("tokens create --name ci-author --role author");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.err.find("shown only this once"), std::string::npos) << r.err;

  r = Vakt("tokens list");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("ci-viewer  viewer"), std::string::npos) << r.out;
  r = Vakt("tokens list --json");
  j = ParseJson(r);
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j.size(), 3u);

  const std::string as_viewer = " --server " + address_ + " --insecure --token-file " + viewer;
  r = VaktRaw("whoami" + as_viewer);
  EXPECT_EQ(r.out, "ci-viewer (role viewer)\n");
  r = VaktRaw("publish --policy demo " + std::string(VAKT_SOURCE_DIR) + "/examples/healthcare" +
              as_viewer);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("vakt: error: permission denied: Publish needs role author"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(VaktRaw("tokens list" + as_viewer).code, 1);
  EXPECT_EQ(VaktRaw("versions" + as_viewer).code, 0);
  // The environment variables stand in for the flags.
  r = Exec("VAKT_SERVER=" + address_ + " VAKT_TOKEN_FILE=" + viewer + " " + VAKT_BINARY +
               " whoami --insecure",
           dir_ + "/stderr");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "ci-viewer (role viewer)\n");

  r = Vakt("tokens delete ci-viewer");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "deleted token `ci-viewer`\n");
  r = VaktRaw("whoami" + as_viewer);
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("vakt: error: unauthenticated: "), std::string::npos) << r.err;
  EXPECT_EQ(Vakt("tokens create --name x --role king").code, 1);
  EXPECT_EQ(Vakt("tokens create --name x").code, 2);
  EXPECT_EQ(Vakt("tokens delete").code, 2);
  EXPECT_EQ(Vakt("tokens frobnicate").code, 2);
}

TEST_F(AdminCli, ConnectionAndTokenFileErrors) {
  // Nothing listens on port 1.
  CmdResult r = VaktRaw("whoami --server 127.0.0.1:1 --insecure --timeout 5 --token-file " + token_file_);
  EXPECT_EQ(r.code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("vakt: error: unavailable: "), std::string::npos) << r.err;
  // No token file, a missing one, one readable by others, a wrong token.
  EXPECT_EQ(VaktRaw("whoami --insecure --server " + address_).code, 2);
  r = VaktRaw("whoami --insecure --server " + address_ + " --token-file " + dir_ + "/nope");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("cannot open token file"), std::string::npos) << r.err;
  const std::string loose = dir_ + "/loose.token";
  WriteFile(loose, ReadFile(token_file_), 0644);
  r = VaktRaw("whoami --insecure --server " + address_ + " --token-file " + loose);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("is readable by group or others (mode 0644)"), std::string::npos) << r.err;
  const std::string wrong = dir_ + "/wrong.token";
  WriteFile(wrong, "vkt_wrongwrongwrong\n", 0600);
  r = VaktRaw("whoami --insecure --server " + address_ + " --token-file " + wrong);
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("vakt: error: unauthenticated: "), std::string::npos) << r.err;
  // No server; plain TCP to a non-loopback address; bad flags.
  EXPECT_EQ(VaktRaw("whoami --insecure --token-file " + token_file_).code, 2);
  r = VaktRaw("whoami --insecure --server 192.0.2.1:7070 --token-file " + token_file_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("only to a loopback address"), std::string::npos) << r.err;
  EXPECT_EQ(Vakt("whoami --timeout 0").code, 2);
  EXPECT_EQ(Vakt("whoami --bogus").code, 2);
  EXPECT_EQ(Vakt("whoami extra").code, 2);
  // TLS to a plain-TCP server fails to connect: exit 3.
  r = VaktRaw("whoami --timeout 5 --server " + address_ + " --token-file " + token_file_);
  EXPECT_EQ(r.code, 3) << r.err;
  // Help lists the admin commands.
  r = VaktRaw("help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("rollout start --policy P --version V"), std::string::npos);
  EXPECT_EQ(VaktRaw("publish --help").code, 0);
}

// ---- the client library on its own -------------------------------------------

class AdminClientLib : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = TempDir(); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string dir_;
};

TEST_F(AdminClientLib, TokenFile) {
  using vakt::admin::ReadTokenFile;
  WriteFile(dir_ + "/ok", "vkt_abc-DEF_123\n", 0600);
  auto t = ReadTokenFile(dir_ + "/ok");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(*t, "vkt_abc-DEF_123");
  WriteFile(dir_ + "/crlf", "tok\r\n", 0400);
  ASSERT_TRUE(ReadTokenFile(dir_ + "/crlf").ok());
  EXPECT_EQ(*ReadTokenFile(dir_ + "/crlf"), "tok");

  WriteFile(dir_ + "/group", "tok\n", 0640);
  EXPECT_EQ(ReadTokenFile(dir_ + "/group").status().code(), vakt::StatusCode::kPermissionDenied);
  WriteFile(dir_ + "/empty", "\n", 0600);
  EXPECT_EQ(ReadTokenFile(dir_ + "/empty").status().code(), vakt::StatusCode::kInvalidArgument);
  WriteFile(dir_ + "/two", "a b\n", 0600);
  EXPECT_EQ(ReadTokenFile(dir_ + "/two").status().code(), vakt::StatusCode::kInvalidArgument);
  WriteFile(dir_ + "/lines", "a\nb\n", 0600);
  EXPECT_FALSE(ReadTokenFile(dir_ + "/lines").ok());
  WriteFile(dir_ + "/big", std::string(vakt::admin::kMaxTokenFileBytes + 1, 'a'), 0600);
  EXPECT_EQ(ReadTokenFile(dir_ + "/big").status().code(), vakt::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReadTokenFile(dir_ + "/missing").status().code(), vakt::StatusCode::kIoError);
  EXPECT_FALSE(ReadTokenFile(dir_).ok());  // a directory
}

TEST_F(AdminClientLib, CollectPublishFiles) {
  using vakt::admin::CollectPublishFiles;
  WriteFile(dir_ + "/p/policy/main.vakt", "x");
  WriteFile(dir_ + "/p/schemas/a.json", "{}");
  WriteFile(dir_ + "/p/openapi.yaml", "y");
  WriteFile(dir_ + "/p/.hidden", "h");
  WriteFile(dir_ + "/p/.git/config", "h");
  WriteFile(dir_ + "/p/keys/private/k.pem", "secret", 0600);
  ::chmod((dir_ + "/p/keys/private").c_str(), 0700);
  WriteFile(dir_ + "/p/keys/solo.pem", "secret", 0600);
  WriteFile(dir_ + "/p/keys/pub.jwks", "{}");
  auto r = CollectPublishFiles({dir_ + "/p"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<std::string> paths;
  for (const auto& f : r->files) paths.push_back(f.path());
  EXPECT_EQ(paths, (std::vector<std::string>{"keys/pub.jwks", "openapi.yaml", "policy/main.vakt",
                                             "schemas/a.json"}));
  EXPECT_EQ(r->files[2].content(), "x");
  ASSERT_EQ(r->skipped.size(), 2u);

  // Files on their own: their names; a name twice is refused.
  r = CollectPublishFiles({dir_ + "/p/policy/main.vakt", dir_ + "/p/openapi.yaml"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->files[0].path(), "main.vakt");
  EXPECT_FALSE(CollectPublishFiles({dir_ + "/p/policy/main.vakt", dir_ + "/p/policy"}).ok());
  // Bounds.
  vakt::admin::CollectLimits lim;
  lim.max_files = 2;
  EXPECT_EQ(CollectPublishFiles({dir_ + "/p"}, lim).status().code(),
            vakt::StatusCode::kResourceExhausted);
  lim = {};
  lim.max_total_bytes = 3;
  EXPECT_EQ(CollectPublishFiles({dir_ + "/p"}, lim).status().code(),
            vakt::StatusCode::kResourceExhausted);
  lim = {};
  lim.max_depth = 1;
  EXPECT_EQ(CollectPublishFiles({dir_ + "/p"}, lim).status().code(),
            vakt::StatusCode::kResourceExhausted);
  EXPECT_EQ(CollectPublishFiles({dir_ + "/none"}).status().code(), vakt::StatusCode::kNotFound);
  fs::create_directories(dir_ + "/empty");
  EXPECT_FALSE(CollectPublishFiles({dir_ + "/empty"}).ok());
}

TEST(AdminClientStatus, MappingAndJson) {
  using vakt::admin::ExitCodeFor;
  using vakt::admin::FromGrpc;
  EXPECT_TRUE(FromGrpc(grpc::Status::OK).ok());
  vakt::Status st = FromGrpc(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, "no"));
  EXPECT_EQ(st.message(), "permission denied: no");
  EXPECT_EQ(ExitCodeFor(st), 1);
  EXPECT_EQ(ExitCodeFor(FromGrpc(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, ""))), 1);
  EXPECT_EQ(ExitCodeFor(FromGrpc(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, ""))), 1);
  EXPECT_EQ(ExitCodeFor(FromGrpc(grpc::Status(grpc::StatusCode::NOT_FOUND, ""))), 1);
  EXPECT_EQ(ExitCodeFor(FromGrpc(grpc::Status(grpc::StatusCode::UNAVAILABLE, ""))), 3);
  EXPECT_EQ(ExitCodeFor(FromGrpc(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, ""))), 3);
  EXPECT_EQ(ExitCodeFor(FromGrpc(grpc::Status(grpc::StatusCode::INTERNAL, ""))), 3);
  EXPECT_EQ(ExitCodeFor(FromGrpc(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, ""))), 3);

  EXPECT_TRUE(vakt::admin::IsLoopbackAddress("127.0.0.1:7070"));
  EXPECT_TRUE(vakt::admin::IsLoopbackAddress("[::1]:7070"));
  EXPECT_TRUE(vakt::admin::IsLoopbackAddress("localhost:1"));
  EXPECT_FALSE(vakt::admin::IsLoopbackAddress("10.0.0.1:7070"));
  EXPECT_FALSE(vakt::admin::IsLoopbackAddress("localhost.evil.com:1"));
  EXPECT_FALSE(vakt::admin::IsLoopbackAddress("127example.com:1"));
  EXPECT_FALSE(vakt::admin::IsLoopbackAddress("127.evil.example:1"));
  EXPECT_TRUE(vakt::admin::IsLoopbackAddress("127.1.2.3:1"));
  EXPECT_TRUE(vakt::admin::IsLoopbackAddress("unix:/run/vakt.sock"));

  vakt::v1::RolloutInfo r;
  r.set_id(uint64_t{1} << 40);
  r.add_stages(10);
  (*r.mutable_selector())["env"] = "prod";
  vakt::v1::VersionInfo v;
  v.set_signature(std::string("\x00\xff\x10", 3));
  nlohmann::ordered_json j = vakt::admin::ToJson(r);
  EXPECT_EQ(j["id"], uint64_t{1} << 40);
  EXPECT_EQ(j["stages"], nlohmann::ordered_json({10}));
  EXPECT_EQ(j["selector"], nlohmann::ordered_json({{"env", "prod"}}));
  EXPECT_EQ(j.begin().key(), "id");  // declaration order
  EXPECT_EQ(std::next(j.begin()).key(), "policy");
  EXPECT_EQ(j["reason"], "");  // unset fields are present
  EXPECT_EQ(vakt::admin::ToJson(v)["signature"], "AP8Q");

  EXPECT_TRUE(vakt::admin::IsAdminCommand("publish"));
  EXPECT_FALSE(vakt::admin::IsAdminCommand("token"));
  EXPECT_TRUE(vakt::admin::AdminClient::Connect({"127.0.0.1:1", "t", "", true, 30}).ok());
  EXPECT_FALSE(vakt::admin::AdminClient::Connect({"10.1.1.1:1", "t", "", true, 30}).ok());
  EXPECT_FALSE(vakt::admin::AdminClient::Connect({"", "t", "", true, 30}).ok());
  EXPECT_FALSE(vakt::admin::AdminClient::Connect({"127.0.0.1:1", "t", "", true, 0}).ok());
}

}  // namespace
