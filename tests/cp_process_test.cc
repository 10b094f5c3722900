// The `vakt-controlplane` binary (VAKT_CONTROLPLANE_BINARY) as a real
// process on loopback, driven over gRPC like an operator and a fleet would:
//
//   Plain      --insecure-loopback: data directory files and their modes, five
//              agent streams get a signed bundle that loads, ACKs make them
//              in_sync, SIGTERM exits 0 and ends the streams with UNAVAILABLE,
//              a restart keeps key, versions, rollouts and agents, and an agent
//              back on its running version gets nothing resent.
//   Refusals   bad flag combinations, a readable signing key, a garbage
//              database: non-zero exit and a message that says why.
//   Tls        certificates made by the openssl CLI at test time: agent
//              identity is the client certificate's CN, a certificate-less
//              agent is UNAUTHENTICATED, a foreign CA's certificate cannot
//              connect, admins need no client certificate.
//   Crash      SIGKILL while a client publishes in a loop, three times: every
//              version survives whole, signed, audited exactly once, and
//              publishing goes on.
//
// The server's stdout and stderr go to a file in the test's temp directory
// and are printed on failure. Every wait is bounded; a started server is
// SIGKILLed and reaped in teardown, and dies with the test (PR_SET_PDEATHSIG).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bytecode/bundle.h"
#include "bytecode/bundle_signature.h"
#include "bytecode/sha256.h"
#include "tests/cp_harness.h"
#include "vakt/v1/admin.grpc.pb.h"
#include "vakt/v1/agent.grpc.pb.h"

namespace vakt::controlplane::testing {
namespace {

namespace pb = vakt::v1;
using Clock = std::chrono::steady_clock;

constexpr int kStartTimeoutMs = 15000;
constexpr int kExitTimeoutMs = 10000;
constexpr int kRpcTimeoutMs = 5000;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 07777;
  return st.st_mode & 0777;
}

std::string Hex(const std::string& bytes) {
  auto d = bytecode::Sha256(bytes);
  return bytecode::HexLower(d.data(), d.size());
}

// A temp directory removed at the end of the test.
class TempDir {
 public:
  TempDir() : path_(MakeTempDir()) {}
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

// One `vakt-controlplane` process. Thread-compatible; use from the test's
// main thread (PR_SET_PDEATHSIG follows the thread that forked).
class ServerProcess {
 public:
  ServerProcess(std::vector<std::string> args, std::string log_path)
      : log_path_(std::move(log_path)) {
    std::vector<std::string> all = {VAKT_CONTROLPLANE_BINARY};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    EXPECT_GE(fd, 0) << log_path_;
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls until exec.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      ::sigaction(SIGPIPE, &dfl, nullptr);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    EXPECT_GT(pid_, 0) << "fork failed";
    if (fd >= 0) ::close(fd);
  }
  ~ServerProcess() { Kill(); }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // SIGKILL and reap (no-op once exited).
  void Kill() {
    if (pid_ <= 0 || exited_) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    exited_ = true;
    status_ = st;
  }
  void Signal(int sig) {
    if (pid_ > 0 && !exited_) ::kill(pid_, sig);
  }
  // Waits up to `ms` for the process to end; its wait status, or nullopt.
  std::optional<int> WaitExit(int ms) {
    if (exited_) return status_;
    auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    while (true) {
      int st = 0;
      pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        exited_ = true;
        status_ = st;
        return st;
      }
      if (Clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  bool Running() { return !WaitExit(0).has_value(); }
  std::string Log() const { return ReadFile(log_path_); }
  pid_t pid() const { return pid_; }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = 0;
};

std::string DescribeStatus(int st) {
  if (WIFEXITED(st)) return "exit " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return "signal " + std::to_string(WTERMSIG(st));
  return "status " + std::to_string(st);
}

// The running server: its process, port, data directory and admin token.
struct Running {
  std::unique_ptr<ServerProcess> proc;
  int port = 0;
  std::string token;
  std::string address() const { return "127.0.0.1:" + std::to_string(port); }
};

// Starts the server on `data_dir` with `--port-file` and `extra` flags, and
// waits (bounded) for the port file; the test fails with the server's log
// if it never appears.
Running Start(const TempDir& tmp, const std::string& data_dir, std::vector<std::string> extra) {
  Running r;
  const std::string port_file = tmp / "port";
  fs::remove(port_file);
  std::vector<std::string> args = {"--data-dir", data_dir, "--port-file", port_file,
                                   "--log-level", "debug"};
  args.insert(args.end(), extra.begin(), extra.end());
  r.proc = std::make_unique<ServerProcess>(args, tmp / "server.log");
  auto deadline = Clock::now() + std::chrono::milliseconds(kStartTimeoutMs);
  while (Clock::now() < deadline) {
    std::string text = ReadFile(port_file);
    if (!text.empty() && text.back() == '\n') {
      r.port = std::atoi(text.c_str());
      break;
    }
    if (auto st = r.proc->WaitExit(0)) {
      ADD_FAILURE() << "vakt-controlplane ended before listening (" << DescribeStatus(*st)
                    << "):\n"
                    << r.proc->Log();
      return r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (r.port == 0) {
    ADD_FAILURE() << "no port file after " << kStartTimeoutMs << " ms:\n" << r.proc->Log();
    return r;
  }
  r.token = Trim(ReadFile(fs::path(data_dir) / "admin.token"));
  return r;
}

struct ExitResult {
  std::optional<int> status;  // nullopt: still running after the wait (killed)
  std::string log;
  int code() const { return status && WIFEXITED(*status) ? WEXITSTATUS(*status) : -1; }
};

// Runs the server expecting it to stop on its own (a refusal at start).
ExitResult RunToExit(const TempDir& tmp, std::vector<std::string> args) {
  const std::string log = tmp / "refusal.log";
  fs::remove(log);
  ServerProcess p(std::move(args), log);
  ExitResult r;
  r.status = p.WaitExit(kExitTimeoutMs);
  p.Kill();
  r.log = p.Log();
  return r;
}

std::shared_ptr<grpc::Channel> Channel(const std::string& address,
                                       std::shared_ptr<grpc::ChannelCredentials> creds = nullptr) {
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection of its own
  return grpc::CreateCustomChannel(address, creds ? creds : grpc::InsecureChannelCredentials(),
                                   args);
}

// A client context with a deadline and, if given, the bearer token.
std::unique_ptr<grpc::ClientContext> Ctx(const std::string& token, int ms = kRpcTimeoutMs) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(ms));
  if (!token.empty()) c->AddMetadata("authorization", "Bearer " + token);
  return c;
}

pb::PublishRequest PublishRequest(const std::string& tag, const std::string& policy = "demo") {
  pb::PublishRequest q;
  q.set_policy(policy);
  q.set_message("publish " + tag);
  auto* f = q.add_files();
  f->set_path("main.vakt");
  f->set_content(PolicyFiles(tag)[0].content);
  return q;
}

std::string Describe(const grpc::Status& st) {
  return std::to_string(static_cast<int>(st.error_code())) + " " + st.error_message();
}

std::vector<pb::AgentInfo> ListAgents(pb::AdminService::Stub& admin, const std::string& token) {
  pb::ListAgentsResponse r;
  grpc::Status st = admin.ListAgents(Ctx(token).get(), {}, &r);
  EXPECT_TRUE(st.ok()) << Describe(st);
  return {r.agents().begin(), r.agents().end()};
}

std::map<std::string, pb::AgentInfo> AgentsById(pb::AdminService::Stub& admin,
                                                const std::string& token) {
  std::map<std::string, pb::AgentInfo> out;
  for (pb::AgentInfo& a : ListAgents(admin, token)) out[a.id()] = a;
  return out;
}

std::vector<pb::VersionInfo> ListVersions(pb::AdminService::Stub& admin, const std::string& token) {
  pb::ListVersionsRequest q;
  q.set_limit(1000);
  pb::ListVersionsResponse r;
  grpc::Status st = admin.ListVersions(Ctx(token).get(), q, &r);
  EXPECT_TRUE(st.ok()) << Describe(st);
  return {r.versions().begin(), r.versions().end()};
}

std::vector<pb::AuditEntry> ListAudit(pb::AdminService::Stub& admin, const std::string& token) {
  std::vector<pb::AuditEntry> all;
  uint64_t after = 0;
  for (int page = 0; page < 1000; ++page) {
    pb::ListAuditRequest q;
    q.set_after_id(after);
    q.set_limit(1000);
    pb::ListAuditResponse r;
    grpc::Status st = admin.ListAudit(Ctx(token).get(), q, &r);
    EXPECT_TRUE(st.ok()) << Describe(st);
    if (!st.ok() || r.entries().empty()) break;
    for (const pb::AuditEntry& e : r.entries()) {
      all.push_back(e);
      after = std::max<uint64_t>(after, e.id());
    }
  }
  return all;
}

// ---------------------------------------------------------------------------
// Plain mode (--insecure-loopback)

TEST(ControlPlaneProcess, PlainServesAgentsStopsOnSigtermAndRestartsIntoTheSameState) {
  TempDir tmp;
  const std::string data = tmp / "data";
  Running s = Start(tmp, data, {"--listen", "127.0.0.1:0", "--insecure-loopback"});
  ASSERT_NE(s.port, 0);

  // The data directory and its secrets.
  EXPECT_EQ(ModeOf(data), 0700u);
  EXPECT_EQ(ModeOf(data + "/admin.token"), 0600u);
  EXPECT_EQ(ModeOf(data + "/signing.key"), 0600u);
  EXPECT_TRUE(fs::exists(data + "/signing.pub"));
  EXPECT_TRUE(fs::exists(data + "/vakt.db"));
  ASSERT_FALSE(s.token.empty());
  const std::string pub_before = ReadFile(data + "/signing.pub");
  auto keys = bytecode::TrustedKeys::LoadFromFiles({data + "/signing.pub"});
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->key_ids().size(), 1u);
  const std::string key_id = keys->key_ids()[0];

  auto admin = pb::AdminService::NewStub(Channel(s.address()));
  {
    pb::WhoAmIResponse who;
    grpc::Status st = admin->WhoAmI(Ctx(s.token).get(), {}, &who);
    ASSERT_TRUE(st.ok()) << Describe(st);
    EXPECT_EQ(who.role(), "admin");
    // Without the token: refused.
    EXPECT_EQ(admin->WhoAmI(Ctx("").get(), {}, &who).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }

  // Five agents, each over its own connection.
  constexpr int kAgents = 5;
  std::vector<std::unique_ptr<FakeAgent>> agents;
  for (int i = 0; i < kAgents; ++i) {
    agents.push_back(std::make_unique<FakeAgent>(Channel(s.address())));
    ASSERT_TRUE(agents.back()->Hello("agent-" + std::to_string(i),
                                     {{"zone", i % 2 == 0 ? "a" : "b"}}));
  }
  EXPECT_TRUE(Eventually(
      [&] {
        auto all = AgentsById(*admin, s.token);
        if (all.size() != kAgents) return false;
        for (auto& [id, a] : all) {
          if (!a.connected()) return false;
        }
        return true;
      },
      10000))
      << s.proc->Log();

  // Publish and roll out over the admin API.
  pb::PublishResponse pub;
  {
    grpc::Status st = admin->Publish(Ctx(s.token).get(), PublishRequest("one"), &pub);
    ASSERT_TRUE(st.ok()) << Describe(st);
  }
  EXPECT_TRUE(pub.created());
  const uint64_t v1 = pub.version().version();
  EXPECT_EQ(pub.version().key_id(), key_id);
  pb::RolloutInfo rollout;
  {
    pb::StartRolloutRequest q;
    q.set_policy("demo");
    q.set_version(v1);
    q.add_stages(100);
    grpc::Status st = admin->StartRollout(Ctx(s.token).get(), q, &rollout);
    ASSERT_TRUE(st.ok()) << Describe(st);
  }

  std::string digest;
  for (int i = 0; i < kAgents; ++i) {
    SCOPED_TRACE("agent-" + std::to_string(i));
    auto b = agents[i]->NextBundle(10000);
    ASSERT_TRUE(b) << s.proc->Log();
    EXPECT_EQ(b->policy(), "demo");
    EXPECT_EQ(b->version(), v1);
    EXPECT_EQ(b->key_id(), key_id);
    EXPECT_EQ(b->digest(), Hex(b->bundle()));
    EXPECT_EQ(b->digest(), pub.version().bundle_digest());
    Status verified = keys->Verify(b->policy(), b->version(), b->bundle(), b->signature(),
                                   b->key_id());
    EXPECT_TRUE(verified.ok()) << verified.ToString();
    auto loaded = bytecode::Bundle::Load(b->bundle());
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
    digest = b->digest();
    ASSERT_TRUE(agents[i]->Ack(b->nonce(), b->version()));
  }
  EXPECT_TRUE(Eventually(
      [&] {
        auto all = AgentsById(*admin, s.token);
        if (all.size() != kAgents) return false;
        for (auto& [id, a] : all) {
          if (a.state() != "in_sync" || a.active_version() != v1) return false;
        }
        return true;
      },
      10000));

  // SIGTERM: every agent stream ended with UNAVAILABLE, and exit 0 within a
  // few seconds. (With agents connected the server currently takes its whole
  // 5 s shutdown grace; without, some 30 ms.)
  const auto term_at = Clock::now();
  s.proc->Signal(SIGTERM);
  for (int i = 0; i < kAgents; ++i) {
    grpc::Status fin = agents[i]->Finish(5000);
    EXPECT_EQ(fin.error_code(), grpc::StatusCode::UNAVAILABLE)
        << "agent-" << i << ": " << Describe(fin);
  }
  std::optional<int> st = s.proc->WaitExit(kExitTimeoutMs);
  std::fprintf(stderr, "exited %lld ms after SIGTERM\n",
               static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          Clock::now() - term_at)
                                          .count()));
  ASSERT_TRUE(st) << "still running " << kExitTimeoutMs << " ms after SIGTERM:\n"
                  << s.proc->Log();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << DescribeStatus(*st) << "\n"
                                                       << s.proc->Log();
  agents.clear();

  // Restart on the same data directory.
  Running r = Start(tmp, data, {"--listen", "127.0.0.1:0", "--insecure-loopback"});
  ASSERT_NE(r.port, 0);
  EXPECT_EQ(r.token, s.token);  // the first token is written once
  EXPECT_EQ(ReadFile(data + "/signing.pub"), pub_before);
  auto admin2 = pb::AdminService::NewStub(Channel(r.address()));
  {
    auto versions = ListVersions(*admin2, r.token);
    ASSERT_EQ(versions.size(), 1u);
    EXPECT_EQ(versions[0].version(), v1);
    EXPECT_EQ(versions[0].bundle_digest(), digest);
    EXPECT_EQ(versions[0].key_id(), key_id);

    pb::ListRolloutsResponse rollouts;
    grpc::Status rs = admin2->ListRollouts(Ctx(r.token).get(), {}, &rollouts);
    ASSERT_TRUE(rs.ok()) << Describe(rs);
    ASSERT_EQ(rollouts.rollouts_size(), 1);
    EXPECT_EQ(rollouts.rollouts(0).id(), rollout.id());
    EXPECT_EQ(rollouts.rollouts(0).version(), v1);

    auto all = AgentsById(*admin2, r.token);
    ASSERT_EQ(all.size(), static_cast<size_t>(kAgents));
    for (auto& [id, a] : all) {
      SCOPED_TRACE(id);
      EXPECT_FALSE(a.connected());
      EXPECT_EQ(a.state(), "disconnected");
      EXPECT_EQ(a.active_version(), v1);
    }
  }

  // Back on the version it runs: nothing resent, in sync again.
  FakeAgent back(Channel(r.address()));
  ASSERT_TRUE(back.Hello("agent-0", {{"zone", "a"}}, v1, digest));
  EXPECT_FALSE(back.NextBundle(1000));
  EXPECT_TRUE(Eventually(
      [&] {
        auto a = AgentsById(*admin2, r.token)["agent-0"];
        return a.connected() && a.state() == "in_sync" && a.active_version() == v1;
      },
      10000));
  // An agent that lost its cache is sent the bundle again (the server does
  // push after a restart).
  FakeAgent fresh(Channel(r.address()));
  ASSERT_TRUE(fresh.Hello("agent-1", {{"zone", "b"}}));
  auto again = fresh.NextBundle(10000);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->version(), v1);
  EXPECT_EQ(again->digest(), digest);

  r.proc->Signal(SIGTERM);
  st = r.proc->WaitExit(kExitTimeoutMs);
  ASSERT_TRUE(st) << r.proc->Log();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << DescribeStatus(*st);
  EXPECT_EQ(back.Finish(5000).error_code(), grpc::StatusCode::UNAVAILABLE);
}

// ---------------------------------------------------------------------------
// Refusals at start

TEST(ControlPlaneProcess, RefusesInsecureLoopbackOnANonLoopbackAddress) {
  TempDir tmp;
  for (const std::string listen : {"0.0.0.0:0", "[::]:0", "127.attacker.example:0"}) {
    SCOPED_TRACE(listen);
    ExitResult r = RunToExit(tmp, {"--data-dir", tmp / "data", "--listen", listen,
                                   "--insecure-loopback"});
    ASSERT_TRUE(r.status) << "still running:\n" << r.log;
    EXPECT_NE(r.code(), 0) << r.log;
    EXPECT_NE(r.log.find("loopback"), std::string::npos) << r.log;
    EXPECT_NE(r.log.find(listen), std::string::npos) << r.log;
  }
}

TEST(ControlPlaneProcess, RefusesToStartWithoutTlsOrInsecureLoopback) {
  TempDir tmp;
  ExitResult r = RunToExit(tmp, {"--data-dir", tmp / "data", "--listen", "127.0.0.1:0"});
  ASSERT_TRUE(r.status) << "still running:\n" << r.log;
  EXPECT_NE(r.code(), 0) << r.log;
  EXPECT_NE(r.log.find("--tls-cert"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("--insecure-loopback"), std::string::npos) << r.log;
  // Half a TLS configuration likewise.
  r = RunToExit(tmp, {"--data-dir", tmp / "data", "--listen", "127.0.0.1:0", "--tls-cert",
                      tmp / "server.pem"});
  ASSERT_TRUE(r.status) << r.log;
  EXPECT_NE(r.code(), 0) << r.log;
  EXPECT_NE(r.log.find("--tls-key"), std::string::npos) << r.log;
}

TEST(ControlPlaneProcess, RefusesASigningKeyReadableByOthers) {
  TempDir tmp;
  const std::string data = tmp / "data";
  {
    Running s = Start(tmp, data, {"--listen", "127.0.0.1:0", "--insecure-loopback"});
    ASSERT_NE(s.port, 0);
    s.proc->Signal(SIGTERM);
    ASSERT_TRUE(s.proc->WaitExit(kExitTimeoutMs)) << s.proc->Log();
  }
  ASSERT_EQ(::chmod((data + "/signing.key").c_str(), 0644), 0);
  ExitResult r = RunToExit(
      tmp, {"--data-dir", data, "--listen", "127.0.0.1:0", "--insecure-loopback"});
  ASSERT_TRUE(r.status) << "still running:\n" << r.log;
  EXPECT_NE(r.code(), 0) << r.log;
  EXPECT_NE(r.log.find("chmod"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("signing.key"), std::string::npos) << r.log;
}

TEST(ControlPlaneProcess, RefusesAGarbageDatabase) {
  TempDir tmp;
  const std::string data = tmp / "data";
  fs::create_directories(data);
  std::string garbage;
  std::mt19937 rng(7);
  for (int i = 0; i < 8192; ++i) garbage.push_back(static_cast<char>(rng()));
  WriteFile(data + "/vakt.db", "this is not a database\n" + garbage);
  ExitResult r = RunToExit(
      tmp, {"--data-dir", data, "--listen", "127.0.0.1:0", "--insecure-loopback"});
  ASSERT_TRUE(r.status) << "still running:\n" << r.log;
  EXPECT_NE(r.code(), 0) << r.log;
  EXPECT_NE(r.log.find("vakt.db"), std::string::npos) << r.log;
  EXPECT_NE(r.log.find("not a database"), std::string::npos) << r.log;
  // Nothing was made of the garbage: no key, no token.
  EXPECT_FALSE(fs::exists(data + "/admin.token"));
  EXPECT_FALSE(fs::exists(data + "/signing.key"));
}

// ---------------------------------------------------------------------------
// TLS and mutual TLS

// Makes a CA, a server certificate for 127.0.0.1, the client certificate
// CN=agent-7 signed by the CA, and CN=rogue signed by another CA, with the
// openssl CLI (the commands of docs/operations.md "TLS and mTLS").
constexpr const char* kMakeCerts = R"sh(set -eu
ca() {  # ca NAME CN
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n' > "$1.ext"
  openssl x509 -req -in "$1.csr" -signkey "$1.key" -days 2 -extfile "$1.ext" -out "$1.pem"
}
leaf() {  # leaf NAME CN CA EXTENSIONS
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n%s\n' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days 2 -extfile "$1.ext" -out "$1.pem"
}
ca ca vakt-test-ca
ca other-ca vakt-other-ca
leaf server vakt-controlplane ca "extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1"
leaf agent-7 agent-7 ca "extendedKeyUsage=clientAuth"
leaf rogue rogue other-ca "extendedKeyUsage=clientAuth"
chmod 600 *.key
)sh";

std::shared_ptr<grpc::ChannelCredentials> TlsCreds(const TempDir& certs,
                                                   const std::string& client = "") {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadFile(certs / "ca.pem");
  if (!client.empty()) {
    o.pem_private_key = ReadFile(certs / (client + ".key"));
    o.pem_cert_chain = ReadFile(certs / (client + ".pem"));
  }
  return grpc::SslCredentials(o);
}

TEST(ControlPlaneProcess, TlsAgentIdentityIsTheClientCertificate) {
  TempDir tmp;
  WriteFile(tmp / "make-certs.sh", kMakeCerts);
  const std::string cmd = "cd '" + tmp.path() +
                          "' && timeout 60 bash make-certs.sh > make-certs.log 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << ReadFile(tmp / "make-certs.log");

  Running s = Start(tmp, tmp / "data",
                    {"--listen", "127.0.0.1:0", "--tls-cert", tmp / "server.pem", "--tls-key",
                     tmp / "server.key", "--client-ca", tmp / "ca.pem"});
  ASSERT_NE(s.port, 0);
  ASSERT_FALSE(s.token.empty());

  // The admin API over TLS needs no client certificate, only the token.
  auto admin = pb::AdminService::NewStub(Channel(s.address(), TlsCreds(tmp)));
  {
    pb::WhoAmIResponse who;
    grpc::Status st = admin->WhoAmI(Ctx(s.token).get(), {}, &who);
    ASSERT_TRUE(st.ok()) << Describe(st) << "\n" << s.proc->Log();
    EXPECT_EQ(who.role(), "admin");
  }
  // A plain-text client cannot talk to a TLS server.
  {
    auto plain = pb::AdminService::NewStub(Channel(s.address()));
    pb::WhoAmIResponse who;
    EXPECT_EQ(plain->WhoAmI(Ctx(s.token).get(), {}, &who).error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }

  // CN=agent-7 with an empty agent_id: accepted as agent-7.
  FakeAgent agent7(Channel(s.address(), TlsCreds(tmp, "agent-7")));
  ASSERT_TRUE(agent7.Hello(""));
  auto notice = agent7.Next(pb::ServerMessage::kNotice, 10000);
  EXPECT_TRUE(notice) << s.proc->Log();
  EXPECT_TRUE(Eventually(
      [&] {
        auto all = AgentsById(*admin, s.token);
        return all.size() == 1 && all.count("agent-7") && all["agent-7"].connected();
      },
      10000));

  // The same certificate claiming another id: PERMISSION_DENIED.
  {
    FakeAgent liar(Channel(s.address(), TlsCreds(tmp, "agent-7")));
    ASSERT_TRUE(liar.Hello("someone-else"));
    grpc::Status st = liar.Finish(10000);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << Describe(st);
    EXPECT_NE(st.error_message().find("agent-7"), std::string::npos) << Describe(st);
  }
  // Its own id spelled out: fine (and it replaces the first stream).
  {
    FakeAgent same(Channel(s.address(), TlsCreds(tmp, "agent-7")));
    ASSERT_TRUE(same.Hello("agent-7"));
    EXPECT_TRUE(same.Next(pb::ServerMessage::kNotice, 10000));
    EXPECT_EQ(agent7.Finish(10000).error_code(), grpc::StatusCode::ALREADY_EXISTS);
  }

  // No client certificate: the agent stream is UNAUTHENTICATED, with or
  // without a self-chosen id.
  for (const std::string id : {"", "agent-8"}) {
    FakeAgent anon(Channel(s.address(), TlsCreds(tmp)));
    ASSERT_TRUE(anon.Hello(id));
    grpc::Status st = anon.Finish(10000);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << id << ": " << Describe(st);
  }

  // A certificate from another CA: the connection itself fails.
  {
    FakeAgent rogue(Channel(s.address(), TlsCreds(tmp, "rogue")));
    rogue.Hello("");
    grpc::Status st = rogue.Finish(10000);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << Describe(st);
    auto rogue_admin = pb::AdminService::NewStub(Channel(s.address(), TlsCreds(tmp, "rogue")));
    pb::WhoAmIResponse who;
    st = rogue_admin->WhoAmI(Ctx(s.token).get(), {}, &who);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << Describe(st);
  }

  // Only agent-7 ever joined the fleet.
  auto all = AgentsById(*admin, s.token);
  EXPECT_EQ(all.size(), 1u);
  EXPECT_TRUE(all.count("agent-7"));

  s.proc->Signal(SIGTERM);
  auto st = s.proc->WaitExit(kExitTimeoutMs);
  ASSERT_TRUE(st) << s.proc->Log();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << DescribeStatus(*st);
}

// ---------------------------------------------------------------------------
// Crash consistency: SIGKILL while publishing

// After a restart: every listed version reads back whole, is signed by the
// data directory's key, has exactly one successful "publish" audit entry,
// and every version a client was told about is there.
void CheckStore(pb::AdminService::Stub& admin, const std::string& token,
                const bytecode::TrustedKeys& keys, const std::set<uint64_t>& acknowledged) {
  std::vector<pb::VersionInfo> versions = ListVersions(admin, token);
  std::set<uint64_t> listed;
  // The store writes a publish's audit entry in the publish's transaction,
  // its detail starting "created version N" (sources here are always new).
  std::map<uint64_t, int> created_entries;
  int publish_entries = 0;
  for (const pb::AuditEntry& e : ListAudit(admin, token)) {
    if (e.action() != "publish" || e.result() != "ok") continue;
    ++publish_entries;
    constexpr std::string_view kCreated = "created version ";
    EXPECT_TRUE(e.detail().starts_with(kCreated)) << e.detail();
    if (e.detail().starts_with(kCreated)) {
      ++created_entries[std::strtoull(e.detail().c_str() + kCreated.size(), nullptr, 10)];
    }
  }
  EXPECT_EQ(publish_entries, static_cast<int>(versions.size()));
  EXPECT_EQ(created_entries.size(), versions.size());

  for (const pb::VersionInfo& listed_v : versions) {
    SCOPED_TRACE("version " + std::to_string(listed_v.version()));
    listed.insert(listed_v.version());
    pb::GetVersionRequest q;
    q.set_policy(listed_v.policy());
    q.set_version(listed_v.version());
    q.set_include_bundle(true);
    q.set_include_sources(true);
    pb::VersionInfo v;
    grpc::Status st = admin.GetVersion(Ctx(token).get(), q, &v);
    ASSERT_TRUE(st.ok()) << Describe(st);
    EXPECT_EQ(v.files_size(), 1);
    EXPECT_FALSE(v.bundle().empty());
    EXPECT_EQ(Hex(v.bundle()), v.bundle_digest());
    EXPECT_FALSE(v.signature().empty());
    Status verified = keys.Verify(v.policy(), v.version(), v.bundle(), v.signature(), v.key_id());
    EXPECT_TRUE(verified.ok()) << verified.ToString();
    auto loaded = bytecode::Bundle::Load(v.bundle());
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
    EXPECT_EQ(created_entries[v.version()], 1) << "publish audit entries for this version";
  }
  for (uint64_t v : acknowledged) {
    EXPECT_TRUE(listed.count(v)) << "version " << v << " was acknowledged but is gone";
  }
}

TEST(ControlPlaneProcess, SigkillWhilePublishingLosesNothingAcknowledged) {
  TempDir tmp;
  const std::string data = tmp / "data";
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  const int kWarmupPublishes[] = {5, 40, 120};

  std::set<uint64_t> acknowledged;  // versions a Publish reply announced as created
  std::mutex mu;
  int tag = 0;
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Running s = Start(tmp, data, {"--listen", "127.0.0.1:0", "--insecure-loopback"});
    ASSERT_NE(s.port, 0);
    auto keys = bytecode::TrustedKeys::LoadFromFiles({data + "/signing.pub"});
    ASSERT_TRUE(keys.ok()) << keys.status().ToString();
    auto admin = pb::AdminService::NewStub(Channel(s.address()));
    if (round > 0) CheckStore(*admin, s.token, *keys, acknowledged);

    // Publishes until a call fails, which it does once the server is killed
    // (every call has a deadline; the loop has one too).
    std::atomic<int> published{0};
    std::string last_error;
    std::thread publisher([&] {
      auto stub = pb::AdminService::NewStub(Channel(s.address()));
      const auto give_up = Clock::now() + std::chrono::seconds(30);
      // At most kWarmupPublishes + 60 per round, so that the versions stay
      // within what one ListVersions page (1000) returns.
      while (Clock::now() < give_up && published.load() < kWarmupPublishes[round] + 60) {
        pb::PublishResponse r;
        std::string t;
        {
          std::lock_guard<std::mutex> l(mu);
          t = "crash-" + std::to_string(tag++);
        }
        grpc::Status st = stub->Publish(Ctx(s.token).get(), PublishRequest(t), &r);
        std::lock_guard<std::mutex> l(mu);
        if (!st.ok()) {
          last_error = Describe(st);
          break;  // the server is gone
        }
        if (r.created()) acknowledged.insert(r.version().version());
        ++published;
      }
    });
    // The kill comes after a few answered publishes (so that every round
    // has work to lose, however loaded the machine), plus a random delay.
    // ListVersions returns at most 1000 versions: the rounds stay far below.
    const auto warmup_deadline = Clock::now() + std::chrono::seconds(15);
    while (published.load() < kWarmupPublishes[round] && Clock::now() < warmup_deadline &&
           s.proc->Running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    const int delay = static_cast<int>(rng() % 40);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    s.proc->Kill();  // SIGKILL, most likely in the middle of a publish
    publisher.join();
    if (published.load() >= kWarmupPublishes[round] + 60) {
      std::lock_guard<std::mutex> l(mu);
      last_error = "14 (publisher reached its cap before the kill)";
    }
    EXPECT_GT(published.load(), 0) << "no publish answered before the kill:\n" << s.proc->Log();
    std::fprintf(stderr, "round %d: SIGKILL %d ms after %d publishes, %d answered\n", round,
                 delay, kWarmupPublishes[round], published.load());
    std::lock_guard<std::mutex> l(mu);
    EXPECT_EQ(last_error.rfind("14 ", 0), 0u) << "the publisher ended with " << last_error;
  }

  // The last restart: consistent, and publishing goes on.
  Running s = Start(tmp, data, {"--listen", "127.0.0.1:0", "--insecure-loopback"});
  ASSERT_NE(s.port, 0);
  auto keys = bytecode::TrustedKeys::LoadFromFiles({data + "/signing.pub"});
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  auto admin = pb::AdminService::NewStub(Channel(s.address()));
  CheckStore(*admin, s.token, *keys, acknowledged);
  uint64_t newest = 0;
  for (const pb::VersionInfo& v : ListVersions(*admin, s.token)) {
    newest = std::max<uint64_t>(newest, v.version());
  }
  pb::PublishResponse r;
  grpc::Status st = admin->Publish(Ctx(s.token).get(), PublishRequest("after-crashes"), &r);
  ASSERT_TRUE(st.ok()) << Describe(st);
  EXPECT_TRUE(r.created());
  EXPECT_GT(r.version().version(), newest);
  acknowledged.insert(r.version().version());
  CheckStore(*admin, s.token, *keys, acknowledged);

  s.proc->Signal(SIGTERM);
  auto ex = s.proc->WaitExit(kExitTimeoutMs);
  ASSERT_TRUE(ex) << s.proc->Log();
  EXPECT_TRUE(WIFEXITED(*ex) && WEXITSTATUS(*ex) == 0) << DescribeStatus(*ex);
}

}  // namespace
}  // namespace vakt::controlplane::testing
