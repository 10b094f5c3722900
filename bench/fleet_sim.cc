// fleet_sim: a fleet of simulated agents against the real control plane.
//
// Starts the `vakt-controlplane` binary on a fresh data directory
// (--insecure-loopback on 127.0.0.1:0), then, for each fleet size N, opens N
// agent streams, each on a connection of its own (one grpc::Channel per
// agent with a distinct channel argument and a local subchannel pool, so
// gRPC cannot share a TCP connection between them), all driven by gRPC's
// callback API: no thread per agent. Every agent sends a Hello, ACKs every
// BundleUpdate (and RevocationUpdate) as soon as it arrives, and records
// when.
//
// Per N it measures, on a server started fresh for that N:
//   - the publish + rollout RPCs with no agent connected (the baseline);
//   - the server's resident memory idle (VmRSS) and with N agents connected,
//     hence bytes per connected agent;
//   - per round: AdminService.Publish of a new version of a small policy and
//     StartRollout of it (selector fleet=sim, stages [100]); the clock starts
//     before Publish and stops when the last agent has received the bundle
//     and its ACK has been written; then how long until the server counts
//     every ACK (GetRollout), confirmed with ListAgents (all N in_sync).
// Then SIGTERM: the server must exit 0 (streams end with UNAVAILABLE).
//
// Usage (docs/benchmarks.md "Control plane fleet convergence"):
//   fleet_sim [--agents 100,1000,5000] [--rounds 5] [--server PATH]
//             [--batch 250] [--pause-ms 1200] [--heartbeats H]
//             [--server-log-level info] [--json]
// --heartbeats H: after the rounds every agent sends H heartbeats (at most
// 150: the server allows bursts of 200 messages per stream) and the
// server's memory is read again.
//
// A benchmark, never a test: it prints numbers and fails (exit 1) only when
// the fleet does not converge or the server misbehaves.
#include <absl/synchronization/mutex.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "vakt/v1/admin.grpc.pb.h"
#include "vakt/v1/agent.grpc.pb.h"

#ifndef VAKT_CONTROLPLANE_BIN
#define VAKT_CONTROLPLANE_BIN "vakt-controlplane"
#endif

extern char** environ;

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using vakt::v1::AgentMessage;
using vakt::v1::ServerMessage;

double MsSince(Clock::time_point t0, Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(t - t0).count();
}

pid_t g_server_pid = 0;  // the running server, killed if we give up

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "fleet_sim: %s\n", what.c_str());
  if (g_server_pid != 0) kill(g_server_pid, SIGKILL);
  std::_Exit(1);  // gRPC's threads are still running: no static destructors
}

// VmRSS (or another "Vm..." field) of /proc/PID/status, in bytes.
uint64_t ProcBytes(pid_t pid, const char* field) {
  std::ifstream in(pid == 0 ? std::string("/proc/self/status")
                            : "/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') {
      return std::stoull(line.substr(n + 1)) * 1024;
    }
  }
  return 0;
}

// CPU time (user + system) of a process, in ms: /proc/PID/stat fields 14
// and 15, or getrusage for ourselves (pid 0).
double CpuMs(pid_t pid) {
  if (pid == 0) {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
  }
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t p = text.rfind(')');  // the command name may hold spaces
  if (p == std::string::npos) return 0;
  std::istringstream fields(text.substr(p + 2));
  std::string f;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && (fields >> f); ++i) {
    if (i == 14) utime = std::stod(f);
    if (i == 15) stime = std::stod(f);
  }
  return (utime + stime) * 1000.0 / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
double Max(const std::vector<double>& v) {
  return v.empty() ? 0 : *std::max_element(v.begin(), v.end());
}

// ---------------------------------------------------------------- the fleet

class Fleet;

// One simulated agent: one channel (its own TCP connection), one stream,
// driven by gRPC's callback threads. Deleted by Fleet after OnDone.
class Agent final : public grpc::ClientBidiReactor<AgentMessage, ServerMessage> {
 public:
  Agent(Fleet* fleet, int index, std::shared_ptr<grpc::Channel> channel)
      : fleet_(fleet), index_(index), stub_(vakt::v1::AgentService::NewStub(std::move(channel))) {}

  void Start();
  void Heartbeat();
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& s) override;

  // Last bundle version received and when its ACK was written.
  std::atomic<uint64_t> version{0};
  std::atomic<int64_t> recv_ns{0};
  grpc::StatusCode final_code = grpc::StatusCode::OK;
  grpc::ClientContext ctx;

 private:
  void Send(AgentMessage m);  // queues; one write in flight
  void WriteNextLocked();

  Fleet* fleet_;
  int index_;
  std::unique_ptr<vakt::v1::AgentService::Stub> stub_;
  ServerMessage in_;
  std::mutex mu_;
  std::deque<AgentMessage> queue_;
  AgentMessage out_;
  bool writing_ = false;
};

class Fleet {
 public:
  explicit Fleet(std::string address) : address_(std::move(address)), t0_(Clock::now()) {}

  // Opens agents [size(), size()+n) and waits until every one has ACKed
  // `expect_version` (the version the rollouts give them), up to `timeout`.
  bool Grow(int n, uint64_t expect_version, std::chrono::seconds timeout) {
    Expect(expect_version);
    const int first = static_cast<int>(agents_.size());
    for (int i = first; i < first + n; ++i) {
      grpc::ChannelArguments args;
      args.SetInt("grpc.use_local_subchannel_pool", 1);
      args.SetInt("vakt.fleet_sim.agent", i);  // a distinct channel: no shared connection
      auto ch = grpc::CreateCustomChannel(address_, grpc::InsecureChannelCredentials(), args);
      agents_.push_back(std::make_unique<Agent>(this, i, std::move(ch)));
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      started_ = first + n;
    }
    for (int i = first; i < first + n; ++i) agents_[i]->Start();
    return WaitAcked(first + n, timeout);
  }

  // From now on count ACKs of `version`.
  void Expect(uint64_t version) {
    std::lock_guard<std::mutex> l(mu_);
    expect_ = version;
    acked_ = 0;
    for (auto& a : agents_) {
      if (a->version.load() == version) ++acked_;  // already there
    }
  }
  bool WaitAcked(int n, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> l(mu_);
    wait_n_ = n;
    return cv_.wait_for(l, timeout, [&] { return acked_ >= n; });
  }
  // When the last ACK of the expected version was written (ns since t0_).
  int64_t last_ack_ns() {
    std::lock_guard<std::mutex> l(mu_);
    return last_ack_ns_;
  }
  Clock::time_point t0() const { return t0_; }
  int64_t Now() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0_).count();
  }
  size_t size() const { return agents_.size(); }
  const std::vector<std::unique_ptr<Agent>>& agents() const { return agents_; }

  // Called by an agent once the ACK of `version` is written.
  void Acked(uint64_t version) {
    std::lock_guard<std::mutex> l(mu_);
    if (version != expect_) return;
    ++acked_;
    last_ack_ns_ = Now();
    if (acked_ >= wait_n_) cv_.notify_all();
  }
  void HeartbeatSent() {
    std::lock_guard<std::mutex> l(mu_);
    if (++heartbeats_ >= wait_heartbeats_) cv_.notify_all();
  }
  // Every agent sends `k` heartbeats; waits until all are written.
  bool Heartbeats(int k, std::chrono::seconds timeout) {
    {
      std::lock_guard<std::mutex> l(mu_);
      heartbeats_ = 0;
      wait_heartbeats_ = k * static_cast<int>(agents_.size());
    }
    for (int i = 0; i < k; ++i) {
      for (auto& a : agents_) a->Heartbeat();
    }
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [&] { return heartbeats_ >= wait_heartbeats_; });
  }
  void Done() {
    std::lock_guard<std::mutex> l(mu_);
    ++done_;
    if (done_ >= started_) cv_.notify_all();
  }
  bool WaitDone(std::chrono::seconds timeout) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, timeout, [&] { return done_ >= started_; });
  }
  void CancelAll() {
    for (auto& a : agents_) a->ctx.TryCancel();
  }

 private:
  std::string address_;
  Clock::time_point t0_;
  std::vector<std::unique_ptr<Agent>> agents_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t expect_ = 0;
  int acked_ = 0;
  int wait_n_ = 0;  // the waiter wakes up once acked_ reaches it
  int64_t last_ack_ns_ = 0;
  int done_ = 0;
  int started_ = 0;
  int heartbeats_ = 0, wait_heartbeats_ = 0;
};

void Agent::Start() {
  stub_->async()->Stream(&ctx, this);
  AgentMessage m;
  vakt::v1::Hello* h = m.mutable_hello();
  h->set_agent_id("sim-" + std::to_string(index_));
  (*h->mutable_labels())["fleet"] = "sim";
  h->add_capabilities("bundle-format-3");
  h->add_capabilities("revocations");
  h->set_agent_version("fleet_sim");
  Send(std::move(m));
  StartRead(&in_);
  StartCall();
}

void Agent::Heartbeat() {
  AgentMessage m;
  m.mutable_heartbeat()->set_running_version(version.load());
  Send(std::move(m));
}

void Agent::Send(AgentMessage m) {
  std::lock_guard<std::mutex> l(mu_);
  queue_.push_back(std::move(m));
  WriteNextLocked();
}

void Agent::WriteNextLocked() {
  if (writing_ || queue_.empty()) return;
  out_ = std::move(queue_.front());
  queue_.pop_front();
  writing_ = true;
  StartWrite(&out_);
}

void Agent::OnReadDone(bool ok) {
  if (!ok) return;  // the stream ended; OnDone follows
  if (in_.has_bundle()) {
    recv_ns.store(fleet_->Now());
    AgentMessage ack;
    ack.mutable_ack()->set_nonce(in_.bundle().nonce());
    ack.mutable_ack()->set_version(in_.bundle().version());
    Send(std::move(ack));
  } else if (in_.has_revocations()) {
    AgentMessage ack;
    ack.mutable_ack()->set_nonce(in_.revocations().nonce());
    ack.mutable_ack()->set_version(in_.revocations().revision());
    Send(std::move(ack));
  }
  StartRead(&in_);
}

void Agent::OnWriteDone(bool ok) {
  uint64_t acked_bundle = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    writing_ = false;
    if (!ok) return;
    // A bundle's ACK names a "b..." nonce (docs/grpc-api.md); revocations "r...".
    if (out_.has_ack() && !out_.ack().nonce().empty() && out_.ack().nonce()[0] == 'b') {
      acked_bundle = out_.ack().version();
    }
    if (out_.has_heartbeat()) fleet_->HeartbeatSent();
    WriteNextLocked();
  }
  if (acked_bundle != 0) {
    version.store(acked_bundle);
    fleet_->Acked(acked_bundle);
  }
}

void Agent::OnDone(const grpc::Status& s) {
  final_code = s.error_code();
  fleet_->Done();
}

// ---------------------------------------------------------------- the server

struct ServerProcess {
  pid_t pid = 0;
  std::string dir;  // temp dir: data/, port, server.log
  std::string address;
  std::string token;
};

ServerProcess StartServer(const std::string& binary, const std::string& log_level) {
  ServerProcess s;
  std::string tmpl = (fs::temp_directory_path() / "vakt-fleet-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp failed");
  s.dir = tmpl;
  const std::string data = s.dir + "/data", port_file = s.dir + "/port",
                    log = s.dir + "/server.log";
  std::vector<std::string> argv_s = {
      binary,        "--data-dir", data,          "--listen", "127.0.0.1:0", "--insecure-loopback",
      "--port-file", port_file,    "--log-level", log_level};
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  int rc = posix_spawn(&s.pid, binary.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    fs::remove_all(s.dir);
    Die("cannot start " + binary + ": " + std::strerror(rc));
  }
  g_server_pid = s.pid;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  std::string port;
  while (Clock::now() < deadline) {
    int status = 0;
    if (waitpid(s.pid, &status, WNOHANG) == s.pid) {
      g_server_pid = 0;
      Die("the server exited at start; see " + log);
    }
    std::ifstream in(port_file);
    if (in && (in >> port) && !port.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (port.empty()) Die("no port file after 60 s; see " + log);
  s.address = "127.0.0.1:" + port;
  std::ifstream tok(data + "/admin.token");
  if (!(tok >> s.token)) Die("cannot read " + data + "/admin.token");
  return s;
}

// SIGTERM; returns the exit code (-1: killed by a signal or hung), and how long it took.
int StopServer(ServerProcess& s, double* ms) {
  const auto t0 = Clock::now();
  kill(s.pid, SIGTERM);
  int status = 0;
  while (true) {
    pid_t r = waitpid(s.pid, &status, WNOHANG);
    if (r == s.pid) break;
    if (Clock::now() - t0 > std::chrono::seconds(30)) {
      kill(s.pid, SIGKILL);
      waitpid(s.pid, &status, 0);
      *ms = MsSince(t0, Clock::now());
      g_server_pid = 0;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  *ms = MsSince(t0, Clock::now());
  g_server_pid = 0;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// ---------------------------------------------------------------- admin calls

class Admin {
 public:
  Admin(const std::string& address, std::string token) : token_(std::move(token)) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 256 << 20);
    stub_ = vakt::v1::AdminService::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  }

  uint64_t Publish(int round) {
    vakt::v1::PublishRequest req;
    req.set_policy("demo");
    vakt::v1::SourceFile* f = req.add_files();
    f->set_path("main.vakt");
    f->set_content("// fleet_sim round " + std::to_string(round) +
                   "\napi demo \"/\" {\n  route ping GET \"/ping\" {}\n}\n");
    req.set_message("fleet_sim round " + std::to_string(round));
    vakt::v1::PublishResponse resp;
    Check(stub_->Publish(Ctx().get(), req, &resp), "Publish");
    if (!resp.created()) Die("Publish did not create a new version");
    return resp.version().version();
  }
  uint64_t StartRollout(uint64_t version) {
    vakt::v1::StartRolloutRequest req;
    req.set_policy("demo");
    req.set_version(version);
    (*req.mutable_selector())["fleet"] = "sim";
    req.add_stages(100);
    vakt::v1::RolloutInfo resp;
    Check(stub_->StartRollout(Ctx().get(), req, &resp), "StartRollout");
    return resp.id();
  }
  uint32_t RolloutAcked(uint64_t id) {
    vakt::v1::RolloutRef req;
    req.set_id(id);
    vakt::v1::RolloutInfo resp;
    Check(stub_->GetRollout(Ctx().get(), req, &resp), "GetRollout");
    return resp.acked();
  }
  // Connected agents of the fleet, and how many of them are in_sync on `version`.
  std::pair<int, int> Agents(uint64_t version) {
    vakt::v1::ListAgentsRequest req;
    (*req.mutable_selector())["fleet"] = "sim";
    vakt::v1::ListAgentsResponse resp;
    Check(stub_->ListAgents(Ctx().get(), req, &resp), "ListAgents");
    int connected = 0, in_sync = 0;
    for (const auto& a : resp.agents()) {
      if (!a.connected()) continue;
      ++connected;
      if (a.state() == "in_sync" && a.active_version() == version) ++in_sync;
    }
    return {connected, in_sync};
  }

 private:
  std::unique_ptr<grpc::ClientContext> Ctx() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->AddMetadata("authorization", "Bearer " + token_);
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    return c;
  }
  static void Check(const grpc::Status& s, const char* what) {
    if (!s.ok()) Die(std::string(what) + ": " + s.error_message());
  }
  std::string token_;
  std::unique_ptr<vakt::v1::AdminService::Stub> stub_;
};

// ---------------------------------------------------------------- one fleet size

struct Round {
  double publish_ms = 0, rollout_ms = 0;  // the RPCs, as the client saw them
  double first_recv_ms = 0;               // publish start -> first agent has the bundle
  double median_recv_ms = 0;
  double converge_ms = 0;                       // publish start -> last ACK written
  double server_acked_ms = 0;                   // publish start -> GetRollout counts N ACKs
  double server_cpu_ms = 0, client_cpu_ms = 0;  // publish start -> last ACK written
};

struct Result {
  int agents = 0;
  double connect_s = 0;
  double connect_server_cpu_ms = 0;
  uint64_t rss0 = 0, rss_n = 0, rss_after = 0, hwm = 0, client_rss = 0;
  std::vector<Round> baseline;  // publish + rollout, no agent connected
  std::vector<Round> rounds;
  uint64_t rss_heartbeats = 0;  // after `heartbeats` more messages per agent
  double stop_ms = 0;
  int exit_code = 0;
  int unavailable = 0;  // streams the shutdown ended with UNAVAILABLE
  std::string load_before, load_after;
};

Result RunFleet(int n, int rounds, const std::string& binary, const std::string& log_level,
                int batch, int pause_ms, int heartbeats) {
  Result res;
  res.agents = n;
  res.load_before = LoadAverage();
  ServerProcess srv = StartServer(binary, log_level);
  Admin admin(srv.address, srv.token);
  int round_no = 0;

  // The baseline: publish + rollout with nobody to push to (also warms the
  // server up before its idle memory is read).
  uint64_t version = admin.Publish(++round_no);  // warm-up, not counted
  admin.StartRollout(version);
  for (int r = 0; r < rounds; ++r) {
    Round b;
    auto t0 = Clock::now();
    version = admin.Publish(++round_no);
    auto t1 = Clock::now();
    admin.StartRollout(version);
    auto t2 = Clock::now();
    b.publish_ms = MsSince(t0, t1);
    b.rollout_ms = MsSince(t1, t2);
    res.baseline.push_back(b);
    std::fprintf(stderr,
                 "  N=%d baseline %d (no agent connected): publish %.1f ms, rollout %.1f ms\n", n,
                 r + 1, b.publish_ms, b.rollout_ms);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
  res.rss0 = ProcBytes(srv.pid, "VmRSS");

  // Connect, in batches, each agent on its own connection; each gets and
  // ACKs the current version on its Hello.
  Fleet fleet(srv.address);
  auto c0 = Clock::now();
  const double connect_cpu0 = CpuMs(srv.pid);
  for (int done = 0; done < n;) {
    int k = std::min(batch, n - done);
    if (!fleet.Grow(k, version, std::chrono::seconds(120))) {
      Die("agents " + std::to_string(done) + ".." + std::to_string(done + k) +
          " did not get version " + std::to_string(version) + " within 120 s; see " + srv.dir +
          "/server.log");
    }
    done += k;
  }
  res.connect_s = MsSince(c0, Clock::now()) / 1000;
  res.connect_server_cpu_ms = CpuMs(srv.pid) - connect_cpu0;
  for (int tries = 0;; ++tries) {
    auto [connected, in_sync] = admin.Agents(version);
    if (connected == n && in_sync == n) break;
    if (tries > 1000) {
      Die("ListAgents shows " + std::to_string(connected) + " connected, " +
          std::to_string(in_sync) + " in sync, of " + std::to_string(n));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));  // agent records flushed
  res.rss_n = ProcBytes(srv.pid, "VmRSS");
  res.client_rss = ProcBytes(0, "VmRSS");

  for (int r = 0; r < rounds; ++r) {
    Round m;
    const int next = round_no + 1;
    // Count ACKs of the version Publish will create (the store numbers
    // versions one after the other).
    fleet.Expect(version + 1);
    const double scpu0 = CpuMs(srv.pid), ccpu0 = CpuMs(0);
    auto t0 = Clock::now();
    uint64_t v = admin.Publish(next);
    auto t1 = Clock::now();
    if (v != version + 1) {
      Die("Publish gave version " + std::to_string(v) + ", expected " +
          std::to_string(version + 1));
    }
    uint64_t rollout = admin.StartRollout(v);
    auto t2 = Clock::now();
    round_no = next;
    version = v;
    if (!fleet.WaitAcked(n, std::chrono::seconds(120))) {
      Die("round " + std::to_string(r) + ": not every agent ACKed version " + std::to_string(v) +
          " within 120 s");
    }
    m.server_cpu_ms = CpuMs(srv.pid) - scpu0;
    m.client_cpu_ms = CpuMs(0) - ccpu0;
    const double base_ns = std::chrono::duration<double, std::nano>(t0 - fleet.t0()).count();
    m.publish_ms = MsSince(t0, t1);
    m.rollout_ms = MsSince(t1, t2);
    m.converge_ms = (static_cast<double>(fleet.last_ack_ns()) - base_ns) / 1e6;
    std::vector<double> recv;
    recv.reserve(n);
    for (const auto& a : fleet.agents()) {
      recv.push_back((static_cast<double>(a->recv_ns.load()) - base_ns) / 1e6);
    }
    m.first_recv_ms = *std::min_element(recv.begin(), recv.end());
    m.median_recv_ms = Median(recv);
    // Polled every 5 ms: each GetRollout walks the whole fleet on the server.
    while (admin.RolloutAcked(rollout) < static_cast<uint32_t>(n)) {
      if (Clock::now() - t0 > std::chrono::seconds(120)) Die("the server never counted N ACKs");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    m.server_acked_ms = MsSince(t0, Clock::now());
    auto [connected, in_sync] = admin.Agents(v);
    if (connected != n || in_sync != n) {
      Die("round " + std::to_string(r) + ": ListAgents shows " + std::to_string(in_sync) + " of " +
          std::to_string(n) + " in sync (" + std::to_string(connected) + " connected)");
    }
    res.rounds.push_back(m);
    std::fprintf(stderr,
                 "  N=%d round %d: publish %.1f ms, rollout %.1f ms, first bundle %.1f ms, "
                 "median %.1f ms, all ACKed %.1f ms, server counted all %.1f ms; CPU server "
                 "%.0f ms, client %.0f ms\n",
                 n, r + 1, m.publish_ms, m.rollout_ms, m.first_recv_ms, m.median_recv_ms,
                 m.converge_ms, m.server_acked_ms, m.server_cpu_ms, m.client_cpu_ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    std::fprintf(stderr, "  N=%d after round %d: server RSS %.1f MB\n", n, r + 1,
                 static_cast<double>(ProcBytes(srv.pid, "VmRSS")) / (1 << 20));
  }
  res.rss_after = ProcBytes(srv.pid, "VmRSS");
  if (heartbeats > 0) {
    // Messages that change nothing: does memory per stream stay flat?
    if (!fleet.Heartbeats(heartbeats, std::chrono::seconds(120))) Die("heartbeats not written");
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
    res.rss_heartbeats = ProcBytes(srv.pid, "VmRSS");
    std::fprintf(stderr,
                 "  N=%d after %d heartbeats per agent: server RSS %.1f MB (%+.0f B per agent per "
                 "heartbeat)\n",
                 n, heartbeats, static_cast<double>(res.rss_heartbeats) / (1 << 20),
                 (static_cast<double>(res.rss_heartbeats) - static_cast<double>(res.rss_after)) /
                     n / heartbeats);
  }
  res.hwm = ProcBytes(srv.pid, "VmHWM");

  res.exit_code = StopServer(srv, &res.stop_ms);
  if (!fleet.WaitDone(std::chrono::seconds(30))) {
    fleet.CancelAll();
    fleet.WaitDone(std::chrono::seconds(30));
  }
  for (const auto& a : fleet.agents()) {
    if (a->final_code == grpc::StatusCode::UNAVAILABLE) ++res.unavailable;
  }
  res.load_after = LoadAverage();
  if (res.exit_code == 0) {
    fs::remove_all(srv.dir);
  } else {
    std::fprintf(stderr, "fleet_sim: the server exited with %d; kept %s\n", res.exit_code,
                 srv.dir.c_str());
  }
  return res;
}

std::vector<int> ParseList(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    item.erase(std::remove(item.begin(), item.end(), '_'), item.end());
    if (!item.empty()) out.push_back(std::stoi(item));
  }
  return out;
}

double MB(uint64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0); }

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes = {100, 1000, 5000};
  int rounds = 5, batch = 250, pause_ms = 1200, heartbeats = 0;
  std::string binary = VAKT_CONTROLPLANE_BIN, log_level = "info";
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const std::string& name) -> std::string {
      if (a.rfind(name + "=", 0) == 0) return a.substr(name.size() + 1);
      if (a == name && i + 1 < argc) return argv[++i];
      Die(name + " needs a value");
    };
    if (a.rfind("--agents", 0) == 0) {
      sizes = ParseList(value("--agents"));
    } else if (a.rfind("--rounds", 0) == 0) {
      rounds = std::stoi(value("--rounds"));
    } else if (a.rfind("--server-log-level", 0) == 0) {
      log_level = value("--server-log-level");
    } else if (a.rfind("--server", 0) == 0) {
      binary = value("--server");
    } else if (a.rfind("--batch", 0) == 0) {
      batch = std::stoi(value("--batch"));
    } else if (a.rfind("--heartbeats", 0) == 0) {
      heartbeats = std::stoi(value("--heartbeats"));
    } else if (a.rfind("--pause-ms", 0) == 0) {
      pause_ms = std::stoi(value("--pause-ms"));
    } else if (a == "--json") {
      json = true;
    } else {
      std::fprintf(stderr,
                   "usage: fleet_sim [--agents 100,1000,5000] [--rounds 5] [--server PATH] "
                   "[--batch 250] [--pause-ms 1200] [--heartbeats 0] [--server-log-level info] "
                   "[--json]\n");
      return 2;
    }
  }
  if (sizes.empty() || rounds < 1 || batch < 1) Die("nothing to do");

  // Two sockets per agent (ours and the server's): raise the descriptor
  // limit to the hard limit before the server starts, so it inherits it.
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  const int max_n = *std::max_element(sizes.begin(), sizes.end());
  if (rl.rlim_cur < static_cast<rlim_t>(max_n) + 200) {
    Die("RLIMIT_NOFILE is " + std::to_string(rl.rlim_cur) + ", too low for " +
        std::to_string(max_n) + " agents");
  }
  signal(SIGPIPE, SIG_IGN);
  // Debian's abseil is built without NDEBUG, so every absl::Mutex lock in
  // gRPC runs deadlock detection (a global graph, GraphCycles::GetId): a
  // fifth of this client's CPU with 5,000 channels. The simulator should not
  // be what is measured; the server is left as it ships.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  std::fprintf(stderr, "fleet_sim: server %s, %u cores, RLIMIT_NOFILE %llu, load %s\n",
               binary.c_str(), std::thread::hardware_concurrency(),
               static_cast<unsigned long long>(rl.rlim_cur), LoadAverage().c_str());
  std::vector<Result> results;
  for (int n : sizes) {
    std::fprintf(stderr, "N=%d: starting a fresh server\n", n);
    results.push_back(RunFleet(n, rounds, binary, log_level, batch, pause_ms, heartbeats));
  }

  bool ok = true;
  std::printf("\nfleet_sim: %d rounds per fleet size, %u cores\n", rounds,
              std::thread::hardware_concurrency());
  std::printf("%7s | %9s %9s | %9s %9s | %9s %9s | %9s | %9s %9s | %9s %9s %9s | %4s | %s\n",
              "agents", "conv.med", "conv.max", "srv.med", "srv.max", "rpcs.med", "base.med",
              "1st.med", "cpu.srv", "cpu.cli", "rss0 MB", "rssN MB", "KB/agent", "exit", "load");
  for (const Result& r : results) {
    std::vector<double> conv, srv, rpcs, base, first, scpu, ccpu;
    for (const Round& m : r.rounds) {
      scpu.push_back(m.server_cpu_ms);
      ccpu.push_back(m.client_cpu_ms);
      conv.push_back(m.converge_ms);
      srv.push_back(m.server_acked_ms);
      rpcs.push_back(m.publish_ms + m.rollout_ms);
      first.push_back(m.first_recv_ms);
    }
    for (const Round& b : r.baseline) base.push_back(b.publish_ms + b.rollout_ms);
    const double per_agent =
        (static_cast<double>(r.rss_n) - static_cast<double>(r.rss0)) / r.agents / 1024.0;
    std::printf(
        "%7d | %6.1f ms %6.1f ms | %6.1f ms %6.1f ms | %6.1f ms %6.1f ms | %6.1f ms | %6.0f ms "
        "%6.0f ms | %9.1f %9.1f %9.1f | %4d | %s\n",
        r.agents, Median(conv), Max(conv), Median(srv), Max(srv), Median(rpcs), Median(base),
        Median(first), Median(scpu), Median(ccpu), MB(r.rss0), MB(r.rss_n), per_agent, r.exit_code,
        r.load_before.c_str());
    ok = ok && r.exit_code == 0;
  }
  std::printf(
      "\nconv = publish start -> last agent's ACK written; srv = -> GetRollout counts "
      "every ACK;\nrpcs = Publish + StartRollout as the client saw them with the fleet "
      "connected; base = the same\nwith no agent connected (same server, same run); "
      "1st = -> first agent has the bundle;\ncpu = CPU time (user + system) spent by "
      "the server / this client from publish start to the last ACK.\n");
  for (const Result& r : results) {
    std::printf(
        "N=%d: connect %.2f s (server CPU %.0f ms); server RSS idle %.1f MB, connected %.1f MB, "
        "after rounds "
        "%.1f MB, peak %.1f MB; client RSS %.1f MB; SIGTERM -> exit %d in %.0f ms, %d "
        "streams ended UNAVAILABLE; load %s -> %s\n",
        r.agents, r.connect_s, r.connect_server_cpu_ms, MB(r.rss0), MB(r.rss_n), MB(r.rss_after),
        MB(r.hwm), MB(r.client_rss), r.exit_code, r.stop_ms, r.unavailable, r.load_before.c_str(),
        r.load_after.c_str());
  }

  if (json) {
    std::printf("\n{\"cores\": %u, \"rounds\": %d, \"fleets\": [",
                std::thread::hardware_concurrency(), rounds);
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      std::printf(
          "%s\n  {\"agents\": %d, \"connect_s\": %.3f, \"rss_idle\": %llu, "
          "\"rss_connected\": %llu, \"rss_after\": %llu, \"rss_heartbeats\": %llu, \"rss_peak\": "
          "%llu, "
          "\"client_rss\": %llu, \"exit_code\": %d, \"stop_ms\": %.1f, "
          "\"load_before\": \"%s\", \"load_after\": \"%s\", \"rounds\": [",
          i ? "," : "", r.agents, r.connect_s, static_cast<unsigned long long>(r.rss0),
          static_cast<unsigned long long>(r.rss_n), static_cast<unsigned long long>(r.rss_after),
          static_cast<unsigned long long>(r.rss_heartbeats), static_cast<unsigned long long>(r.hwm),
          static_cast<unsigned long long>(r.client_rss), r.exit_code, r.stop_ms,
          r.load_before.c_str(), r.load_after.c_str());
      for (size_t j = 0; j < r.rounds.size(); ++j) {
        const Round& m = r.rounds[j];
        std::printf(
            "%s{\"publish_ms\": %.2f, \"rollout_ms\": %.2f, \"first_ms\": %.2f, "
            "\"median_ms\": %.2f, \"converge_ms\": %.2f, \"server_acked_ms\": %.2f, "
            "\"server_cpu_ms\": %.1f, \"client_cpu_ms\": %.1f}",
            j ? ", " : "", m.publish_ms, m.rollout_ms, m.first_recv_ms, m.median_recv_ms,
            m.converge_ms, m.server_acked_ms, m.server_cpu_ms, m.client_cpu_ms);
      }
      std::printf("], \"baseline\": [");
      for (size_t j = 0; j < r.baseline.size(); ++j) {
        std::printf("%s{\"publish_ms\": %.2f, \"rollout_ms\": %.2f}", j ? ", " : "",
                    r.baseline[j].publish_ms, r.baseline[j].rollout_ms);
      }
      std::printf("]}");
    }
    std::printf("\n]}\n");
  }
  return ok ? 0 : 1;
}
