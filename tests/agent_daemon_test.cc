// The `vakt-agent` binary as a process: --help documents every flag; a
// config file sets flags and the command line wins over it; refused starts
// exit 1 with the reason; SIGTERM stops it cleanly; and with the control
// plane unreachable it starts from a valid cached bundle, or fails closed
// (503 no_policy, not ready) with a corrupt cache, without crashing.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "agent/bundle_cache.h"
#include "bytecode/sha256.h"
#include "compiler/compile.h"
#include "controlplane/signing.h"
#include "tests/proc_harness.h"
#include "tests/vakt_cli_run.h"

#ifndef VAKT_AGENT_BINARY
#error "VAKT_AGENT_BINARY must be defined by the test's CMake fragment"
#endif

namespace vakt::agent {
namespace {

using testing_proc::HttpExchange;
using testing_proc::HttpGet;
using testing_proc::Process;
using testing_proc::ReadFile;
using testing_proc::TempDir;
using testing_proc::WaitForFile;
using testing_proc::WriteFile;

constexpr char kPolicy[] = R"(package t
api a "/" {
  route ping GET "/ping" {}
}
)";

std::string Bundle() {
  compiler::SourceSet sources;
  compiler::AddSource(sources, "t.vakt", kPolicy);
  dsl::Diagnostics diags;
  auto comp = compiler::Compile(sources, {}, diags);
  EXPECT_FALSE(diags.HasErrors()) << diags.Format();
  return comp ? comp->bytes : "";
}

testing_cli::RunResult RunAgent(const std::string& args) {
  return testing_cli::RunBinary(VAKT_AGENT_BINARY, args);
}

std::string CheckBody() {
  return R"({"method":"GET","path":"/ping","headers":{"host":"a"}})";
}

std::string PostCheck(int port) {
  std::string body = CheckBody();
  return HttpExchange(port, "POST /v1/check HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                            "Content-Length: " +
                                std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
                                body);
}

// Every line of `log` is one JSON object from the agent.
void ExpectJsonLines(const std::string& log) {
  ASSERT_FALSE(log.empty());
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    EXPECT_EQ(j.value("component", ""), "agent") << line;
    EXPECT_TRUE(j.contains("msg") && j.contains("level") && j.contains("time")) << line;
  }
}

TEST(AgentDaemon, HelpDocumentsEveryFlag) {
  testing_cli::RunResult r = RunAgent("--help");
  EXPECT_EQ(r.code, 0) << r.out;
  for (const char* flag :
       {"--config", "--bundle", "--control-plane", "--agent-id", "--label", "--trusted-key",
        "--cache-dir", "--tls-ca", "--tls-cert", "--tls-key", "--insecure-loopback",
        "--heartbeat-seconds", "--http-listen", "--http-port-file", "--http-threads",
        "--trusted-proxy", "--max-body-bytes", "--read-timeout-ms", "--idle-timeout-ms",
        "--max-connections", "--proxy-listen", "--proxy-port-file", "--upstream",
        "--proxy-threads", "--upstream-timeout-ms", "--max-response-bytes", "--max-header-bytes",
        "--forward-tls-version-header", "--forward-tls-cipher-header",
        "--forward-client-cert-header", "--ext-authz-listen", "--ext-authz-port-file",
        "--ext-authz-tls-version", "--replay-cache-entries", "--token-cache-entries",
        "--nonce-secret-file", "--log-level", "--log-json", "--decision-log-capacity",
        "--log-header", "--mask-header", "--log-query", "--mask-query", "--no-log-allows"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag << " is not in --help";
  }
}

TEST(AgentDaemon, RefusedStartsExitOneWithTheReason) {
  TempDir dir("vakt-agentd");
  WriteFile(dir / "good.vkb", Bundle());
  WriteFile(dir / "bad.vkb", "not a bundle");
  WriteFile(dir / "key.pem", "not a key");
  struct Case {
    std::string args;
    const char* says;
  } cases[] = {
      {"", "exactly one of --bundle"},
      {"--bundle " + (dir / "good.vkb") + " --control-plane 127.0.0.1:1", "exactly one of"},
      {"--control-plane 127.0.0.1:1 --insecure-loopback", "--trusted-key"},
      {"--control-plane 127.0.0.1:1 --trusted-key " + (dir / "key.pem"), "trusted key"},
      {"--bundle " + (dir / "bad.vkb"), "bundle"},
      {"--bundle " + (dir / "good.vkb") + " --http-listen 127.0.0.1:0 --proxy-listen 127.0.0.1:0",
       "--proxy-listen and --upstream go together"},
      {"--bundle " + (dir / "good.vkb") + " --http-listen 127.0.0.1:0 --trusted-proxy 300.1.1.1",
       "http"},
      {"--bundle " + (dir / "good.vkb") + " --http-listen nonsense", "http"},
      {"--bundle " + (dir / "good.vkb") +
           " --http-listen 127.0.0.1:0 --proxy-listen 127.0.0.1:0 --upstream ftp://x:1",
       "upstream"},
  };
  for (const Case& c : cases) {
    testing_cli::RunResult r = RunAgent(c.args);
    EXPECT_EQ(r.code, 1) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << c.args << "\n" << r.out;
  }
  // Flag errors are CLI11's: non-zero, naming the flag.
  testing_cli::RunResult unknown = RunAgent("--no-such-flag");
  EXPECT_NE(unknown.code, 0);
  EXPECT_NE(unknown.out.find("no-such-flag"), std::string::npos) << unknown.out;
  testing_cli::RunResult range = RunAgent("--bundle " + (dir / "good.vkb") + " --http-threads 0");
  EXPECT_NE(range.code, 0);
  EXPECT_NE(range.out.find("http-threads"), std::string::npos) << range.out;
}

TEST(AgentDaemon, ConfigFileSetsFlagsAndTheCommandLineWins) {
  TempDir dir("vakt-agentd");
  WriteFile(dir / "b.vkb", Bundle());
  WriteFile(dir / "agent.conf", "# the agent's configuration\n"
                                "bundle = \"" + (dir / "b.vkb") + "\"\n"
                                "http-listen = \"127.0.0.1:0\"\n"
                                "http-port-file = \"" + (dir / "from-config.port") + "\"\n"
                                "trusted-proxy = [\"127.0.0.1/32\"]\n"
                                "log-json = true\n");
  Process agent({VAKT_AGENT_BINARY, "--config", dir / "agent.conf", "--http-port-file",
                 dir / "from-flag.port"},
                dir / "agent.log");
  std::string port_text = WaitForFile(dir / "from-flag.port");
  ASSERT_FALSE(port_text.empty()) << agent.Log();
  EXPECT_TRUE(ReadFile(dir / "from-config.port").empty());
  int port = std::stoi(port_text);
  EXPECT_NE(HttpGet(port, "/readyz").find("200 OK"), std::string::npos);
  std::string check = PostCheck(port);
  EXPECT_NE(check.find(R"("decision":"allow")"), std::string::npos) << check;
  std::string metrics = HttpGet(port, "/metrics");
  EXPECT_NE(metrics.find("vakt_agent_bundle_active 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find(R"(vakt_agent_decisions_total{route="a.ping",status="200",outcome="allow"} 1)"),
            std::string::npos)
      << metrics;
  agent.Signal(SIGTERM);
  EXPECT_EQ(agent.Wait(10000), 0) << agent.Log();
  ExpectJsonLines(agent.Log());  // log-json came from the file
}

TEST(AgentDaemon, JsonLogLinesStayJsonWhateverTheMessageHolds) {
  TempDir dir("vakt-agentd");
  std::filesystem::create_directories(dir / "odd \"dir\" \\ x");
  const std::string bundle = dir / "odd \"dir\" \\ x/b.vkb";
  WriteFile(bundle, Bundle());
  Process agent({VAKT_AGENT_BINARY, "--bundle", bundle, "--log-json", "--http-listen",
                 "127.0.0.1:0", "--http-port-file", dir / "port"},
                dir / "agent.log");
  ASSERT_FALSE(WaitForFile(dir / "port").empty()) << agent.Log();
  agent.Signal(SIGTERM);
  EXPECT_EQ(agent.Wait(10000), 0);
  std::string log = agent.Log();
  EXPECT_NE(log.find("odd \\\"dir\\\" \\\\ x"), std::string::npos) << log;
  ExpectJsonLines(log);
}

TEST(AgentDaemon, ControlPlaneAwayCorruptCacheFailsClosed) {
  TempDir dir("vakt-agentd");
  auto signer = controlplane::BundleSigner::LoadOrCreate(dir.path());
  ASSERT_TRUE(signer.ok());
  std::filesystem::create_directories(dir / "cache");
  BundleCache cache(dir / "cache");
  WriteFile(cache.path(), "VAKTCACH garbage that is not a cache file");
  Process agent({VAKT_AGENT_BINARY, "--control-plane", "127.0.0.1:1", "--insecure-loopback",
                 "--trusted-key", dir / "signing.pub", "--cache-dir", dir / "cache",
                 "--agent-id", "a-1", "--http-listen", "127.0.0.1:0", "--http-port-file",
                 dir / "port"},
                dir / "agent.log");
  std::string port_text = WaitForFile(dir / "port");
  ASSERT_FALSE(port_text.empty()) << agent.Log();
  int port = std::stoi(port_text);
  EXPECT_NE(HttpGet(port, "/healthz").find("200 OK"), std::string::npos);
  EXPECT_NE(HttpGet(port, "/readyz").find("503"), std::string::npos);
  std::string check = PostCheck(port);
  EXPECT_NE(check.find(R"("status":503)"), std::string::npos) << check;
  EXPECT_NE(check.find("no_policy"), std::string::npos) << check;
  std::this_thread::sleep_for(std::chrono::milliseconds(700));  // a reconnect attempt or two
  EXPECT_TRUE(agent.Running()) << agent.Log();
  std::string metrics = HttpGet(port, "/metrics");
  EXPECT_NE(metrics.find("vakt_agent_controlplane_connected 0"), std::string::npos) << metrics;
  agent.Signal(SIGTERM);
  EXPECT_EQ(agent.Wait(10000), 0) << agent.Log();
  EXPECT_NE(agent.Log().find("cache"), std::string::npos) << agent.Log();
}

TEST(AgentDaemon, ControlPlaneAwayStartsFromTheCachedBundle) {
  TempDir dir("vakt-agentd");
  auto signer = controlplane::BundleSigner::LoadOrCreate(dir.path());
  ASSERT_TRUE(signer.ok());
  std::string bundle = Bundle();
  auto digest = bytecode::Sha256(bundle);
  auto sig = signer->Sign("t", 7, bytecode::HexLower(digest.data(), digest.size()));
  ASSERT_TRUE(sig.ok());
  BundleCache cache(dir / "cache");
  ASSERT_TRUE(cache.Save({"t", 7, signer->key_id(), *sig, bundle}).ok());
  Process agent({VAKT_AGENT_BINARY, "--control-plane", "127.0.0.1:1", "--insecure-loopback",
                 "--trusted-key", dir / "signing.pub", "--cache-dir", dir / "cache",
                 "--agent-id", "a-1", "--http-listen", "127.0.0.1:0", "--http-port-file",
                 dir / "port"},
                dir / "agent.log");
  std::string port_text = WaitForFile(dir / "port");
  ASSERT_FALSE(port_text.empty()) << agent.Log();
  int port = std::stoi(port_text);
  EXPECT_NE(HttpGet(port, "/readyz").find("200 OK"), std::string::npos) << agent.Log();
  std::string check = PostCheck(port);
  EXPECT_NE(check.find(R"("decision":"allow")"), std::string::npos) << check;
  std::string metrics = HttpGet(port, "/metrics");
  EXPECT_NE(metrics.find("vakt_agent_bundle_version 7"), std::string::npos) << metrics;
  agent.Signal(SIGTERM);
  EXPECT_EQ(agent.Wait(10000), 0) << agent.Log();
}

}  // namespace
}  // namespace vakt::agent
