// Test harness for the control plane: an in-process server (SQLite store in
// a temp dir, a fresh signing key, the admin and agent services on a free
// loopback port, plain TCP) and FakeAgent, a scripted agent stream that
// records what the server pushes. Used by cp_server_test.cc and
// cp_process_test.cc (FakeAgent only).
#pragma once

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "controlplane/admin_server.h"
#include "controlplane/agent_server.h"
#include "controlplane/auth.h"
#include "controlplane/control_plane.h"
#include "controlplane/secret_file.h"
#include "controlplane/signing.h"
#include "controlplane/sqlite_store.h"
#include "vakt/v1/admin.grpc.pb.h"
#include "vakt/v1/agent.grpc.pb.h"

namespace vakt::controlplane::testing {

namespace fs = std::filesystem;

inline std::string MakeTempDir() {
  std::string tmpl = (fs::temp_directory_path() / "vakt-cp-XXXXXX").string();
  char* p = mkdtemp(tmpl.data());
  EXPECT_NE(p, nullptr);
  return tmpl;
}

// A policy whose text differs by `tag`, so each tag is a new version.
inline std::vector<SourceFile> PolicyFiles(const std::string& tag) {
  return {SourceFile{"main.vakt", "// version " + tag +
                                      "\napi demo \"/\" {\n  route ping GET \"/ping\" {}\n}\n"}};
}

struct ServerOptions {
  bool insecure_identity = true;
  int64_t hello_timeout_ms = 10000;
  double messages_per_second = 20;
  double message_burst = 200;
};

class Server {
 public:
  explicit Server(ServerOptions o = {}, std::string dir = "") {
    dir_ = dir.empty() ? MakeTempDir() : dir;
    owns_dir_ = dir.empty();
    Open(o);
  }
  ~Server() {
    Close();
    if (owns_dir_) fs::remove_all(dir_);
  }

  void Open(ServerOptions o) {
    auto store = SqliteStore::Open((fs::path(dir_) / "vakt.db").string());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    auto signer = BundleSigner::LoadOrCreate(dir_);
    ASSERT_TRUE(signer.ok()) << signer.status().ToString();
    ControlPlaneOptions copts;
    copts.evaluate_interval_ms = 10;
    copts.flush_interval_ms = 100;
    plane_ = std::make_unique<ControlPlane>(store_.get(), std::move(*signer), copts);
    ASSERT_TRUE(plane_->Start().ok());
    auto boot = plane_->BootstrapAdmin(dir_);
    ASSERT_TRUE(boot.ok()) << boot.status().ToString();
    auto tok = ReadSmallFile((fs::path(dir_) / "admin.token").string(), 4096);
    ASSERT_TRUE(tok.ok());
    admin_token_ = tok->bytes;
    while (!admin_token_.empty() && (admin_token_.back() == '\n' || admin_token_.back() == '\r')) {
      admin_token_.pop_back();
    }
    AgentServerOptions aopts;
    aopts.insecure_identity = o.insecure_identity;
    aopts.hello_timeout_ms = o.hello_timeout_ms;
    aopts.messages_per_second = o.messages_per_second;
    aopts.message_burst = o.message_burst;
    aopts.known_version = [this](uint64_t v, const std::string& d) {
      return plane_->KnownVersion(v, d);
    };
    agents_ = std::make_unique<AgentServer>(&plane_->snapshots(), &plane_->fleet(), aopts);
    admin_ = std::make_unique<AdminServer>(plane_.get());
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(admin_.get());
    b.RegisterService(agents_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
  }

  void Close() {
    if (agents_) agents_->Shutdown();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_.reset();
    if (plane_) plane_->Stop();
    agents_.reset();
    admin_.reset();
    plane_.reset();
    store_.reset();
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::shared_ptr<grpc::Channel> NewChannel() const {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);  // a connection of its own
    return grpc::CreateCustomChannel(address(), grpc::InsecureChannelCredentials(), args);
  }
  std::unique_ptr<vakt::v1::AdminService::Stub> Admin() const {
    return vakt::v1::AdminService::NewStub(NewChannel());
  }
  ControlPlane& plane() { return *plane_; }
  AgentServer& agent_server() { return *agents_; }
  SqliteStore& store() { return *store_; }
  const std::string& admin_token() const { return admin_token_; }
  const std::string& dir() const { return dir_; }

  // Publishes PolicyFiles(tag) as `policy` directly (no RPC); returns the version.
  uint64_t Publish(const std::string& tag, const std::string& policy = "demo") {
    auto r = plane_->Publish(Principal{"test", Role::kAdmin}, policy, PolicyFiles(tag), "m");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->version.version : 0;
  }
  uint64_t Rollout(uint64_t version, std::vector<uint32_t> stages = {100}, Labels selector = {},
                   bool auto_advance = false, uint32_t threshold = 0,
                   const std::string& policy = "demo") {
    RolloutRecord r;
    r.policy = policy;
    r.version = version;
    r.stages = std::move(stages);
    r.selector = std::move(selector);
    r.auto_advance = auto_advance;
    r.nack_threshold_percent = threshold;
    auto s = plane_->StartRollout(Principal{"test", Role::kAdmin}, r);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? s->rollout.id : 0;
  }

 private:
  std::string dir_;
  bool owns_dir_ = true;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<ControlPlane> plane_;
  std::unique_ptr<AgentServer> agents_;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string admin_token_;
};

// A scripted agent: one stream, a reader thread queueing what arrives.
class FakeAgent {
 public:
  explicit FakeAgent(const Server& s) : FakeAgent(s.NewChannel()) {}
  // Over any channel, e.g. to a `vakt-controlplane` process with TLS
  // credentials (cp_process_test.cc).
  explicit FakeAgent(std::shared_ptr<grpc::Channel> channel)
      : stub_(vakt::v1::AgentService::NewStub(std::move(channel))) {
    stream_ = stub_->Stream(&ctx_);
    reader_ = std::thread([this] {
      vakt::v1::ServerMessage m;
      while (stream_->Read(&m)) {
        std::lock_guard<std::mutex> l(mu_);
        inbox_.push_back(m);
        cv_.notify_all();
      }
      std::lock_guard<std::mutex> l(mu_);
      closed_ = true;
      cv_.notify_all();
    });
  }
  ~FakeAgent() {
    ctx_.TryCancel();
    if (reader_.joinable()) reader_.join();
  }

  bool Send(const vakt::v1::AgentMessage& m) { return stream_->Write(m); }
  bool Hello(const std::string& id, Labels labels = {}, uint64_t running = 0,
             const std::string& digest = "", uint64_t revision = 0) {
    vakt::v1::AgentMessage m;
    auto* h = m.mutable_hello();
    h->set_agent_id(id);
    for (const auto& [k, v] : labels) (*h->mutable_labels())[k] = v;
    h->set_running_version(running);
    h->set_running_digest(digest);
    h->set_revocation_revision(revision);
    h->add_capabilities("bundle-format-3");
    return Send(m);
  }
  bool Ack(const std::string& nonce, uint64_t version) {
    vakt::v1::AgentMessage m;
    m.mutable_ack()->set_nonce(nonce);
    m.mutable_ack()->set_version(version);
    return Send(m);
  }
  bool Nack(const std::string& nonce, uint64_t version, const std::string& error) {
    vakt::v1::AgentMessage m;
    m.mutable_nack()->set_nonce(nonce);
    m.mutable_nack()->set_version(version);
    m.mutable_nack()->set_error(error);
    return Send(m);
  }

  // Waits for the next message of `kind` (skipping others), up to `ms`.
  std::optional<vakt::v1::ServerMessage> Next(vakt::v1::ServerMessage::KindCase kind,
                                              int ms = 5000) {
    std::unique_lock<std::mutex> l(mu_);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (true) {
      while (!inbox_.empty()) {
        vakt::v1::ServerMessage m = std::move(inbox_.front());
        inbox_.pop_front();
        if (m.kind_case() == kind) return m;
      }
      if (closed_) return std::nullopt;
      if (cv_.wait_until(l, deadline) == std::cv_status::timeout && inbox_.empty()) {
        return std::nullopt;
      }
    }
  }
  std::optional<vakt::v1::BundleUpdate> NextBundle(int ms = 5000) {
    auto m = Next(vakt::v1::ServerMessage::kBundle, ms);
    if (!m) return std::nullopt;
    return m->bundle();
  }
  // Waits for the server to end the stream; returns its status.
  grpc::Status Finish(int ms = 5000) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::milliseconds(ms), [this] { return closed_; });
    if (!closed_) return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "test: still open");
    l.unlock();
    return stream_->Finish();
  }
  void CloseSend() { stream_->WritesDone(); }

 private:
  std::unique_ptr<vakt::v1::AgentService::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<vakt::v1::AgentMessage, vakt::v1::ServerMessage>> stream_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<vakt::v1::ServerMessage> inbox_;
  bool closed_ = false;
};

// Polls `pred` every 10 ms for up to `ms`.
template <typename F>
bool Eventually(F pred, int ms = 5000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

}  // namespace vakt::controlplane::testing
