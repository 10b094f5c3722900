// Tests of the agent's control-plane client (agent/cp_client.h) and of
// starting from the bundle cache (agent/bundle_cache.h RestoreFromCache):
//  - against the real control plane in process (the harness pieces of
//    cp_harness.h on a loopback port that survives a restart): publish and
//    rollout, a second version, rollback, revocations, a restart mid-stream
//    (the Hello then carries the running version, nothing is resent) and a
//    control plane that is down at start (the agent runs from its cache);
//  - against a fake AgentService written here, which pushes garbage and
//    hostile updates (unsigned, bad signature, unknown key, digest mismatch,
//    random bytes, oversize bundles and revocation sets) and ends streams
//    with errors: each is NACKed with a clear error and the previous bundle
//    stays active; the client backs off and reconnects.
// Nothing here asserts a duration: waits are bounded polls.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent.h"
#include "agent/bundle_cache.h"
#include "agent/cp_client.h"
#include "bytecode/sha256.h"
#include "compiler/compile.h"
#include "compiler/token_tool.h"
#include "controlplane/signing.h"
#include "tests/cp_harness.h"
#include "vakt/v1/agent.grpc.pb.h"

namespace vakt::agent {
namespace {

namespace fs = std::filesystem;
using controlplane::testing::Eventually;
using controlplane::testing::MakeTempDir;
using vakt::v1::AgentMessage;
using vakt::v1::ServerMessage;

std::string Hex(std::string_view bytes) {
  auto d = bytecode::Sha256(bytes);
  return bytecode::HexLower(d.data(), d.size());
}

// A small policy compiled in memory; `tag` makes distinct bundles.
std::string CompileBundle(const std::string& tag) {
  compiler::SourceSet set;
  compiler::AddSource(set, "main.vakt",
                      "// " + tag + "\napi demo \"/\" {\n  route ping GET \"/ping\" {}\n}\n");
  dsl::Diagnostics diags;
  auto c = compiler::Compile(set, compiler::CompileOptions{}, diags);
  EXPECT_FALSE(c->bytes.empty());
  return c->bytes;
}

Verdict Ping(Agent& agent) {
  bytecode::HttpRequest req;
  req.method = "GET";
  req.target = "/ping";
  return agent.Decide(req);
}

// ------------------------------------------------- a restartable control plane

// The pieces of cp_harness.h's Server, on a port that is kept across
// Close()/Open() so that a client can reconnect to a restarted server.
class CpServer {
 public:
  // Plain TCP with the Hello's agent id (--insecure-loopback), or `creds`
  // (TLS) with the client certificate's CN as the identity.
  explicit CpServer(std::shared_ptr<grpc::ServerCredentials> creds = nullptr)
      : dir_(MakeTempDir()), creds_(std::move(creds)) {
    Open();
  }
  ~CpServer() {
    Close();
    fs::remove_all(dir_);
  }

  void Open() {
    auto store = controlplane::SqliteStore::Open((fs::path(dir_) / "vakt.db").string());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(*store);
    auto signer = controlplane::BundleSigner::LoadOrCreate(dir_);
    ASSERT_TRUE(signer.ok()) << signer.status().ToString();
    public_pem_ = signer->public_key_pem();
    controlplane::ControlPlaneOptions copts;
    copts.evaluate_interval_ms = 10;
    copts.flush_interval_ms = 100;
    plane_ = std::make_unique<controlplane::ControlPlane>(store_.get(), std::move(*signer), copts);
    ASSERT_TRUE(plane_->Start().ok());
    controlplane::AgentServerOptions aopts;
    aopts.insecure_identity = creds_ == nullptr;
    aopts.known_version = [this](uint64_t v, const std::string& d) {
      return plane_->KnownVersion(v, d);
    };
    agents_ =
        std::make_unique<controlplane::AgentServer>(&plane_->snapshots(), &plane_->fleet(), aopts);
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:" + std::to_string(port_),
                       creds_ ? creds_ : grpc::InsecureServerCredentials(), &port);
    b.RegisterService(agents_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port, 0);
    port_ = port;
  }

  void Close() {
    if (agents_) agents_->Shutdown();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_.reset();
    if (plane_) plane_->Stop();
    agents_.reset();
    plane_.reset();
    store_.reset();
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  controlplane::ControlPlane& plane() { return *plane_; }
  controlplane::AgentServer& agent_server() { return *agents_; }
  const std::string& public_pem() const { return public_pem_; }

  uint64_t Publish(const std::string& tag) {
    auto r = plane_->Publish(controlplane::Principal{"test", controlplane::Role::kAdmin}, "demo",
                             controlplane::testing::PolicyFiles(tag), "m");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->version.version : 0;
  }
  uint64_t Rollout(uint64_t version) {
    controlplane::RolloutRecord r;
    r.policy = "demo";
    r.version = version;
    r.stages = {100};
    auto s = plane_->StartRollout(controlplane::Principal{"test", controlplane::Role::kAdmin}, r);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? s->rollout.id : 0;
  }
  std::optional<controlplane::AgentStatus> AgentView(const std::string& id) {
    for (auto& a : plane_->ListAgents({})) {
      if (a.record.id == id) return a;
    }
    return std::nullopt;
  }

 private:
  std::string dir_;
  std::shared_ptr<grpc::ServerCredentials> creds_;
  int port_ = 0;
  std::string public_pem_;
  std::unique_ptr<controlplane::SqliteStore> store_;
  std::unique_ptr<controlplane::ControlPlane> plane_;
  std::unique_ptr<controlplane::AgentServer> agents_;
  std::unique_ptr<grpc::Server> server_;
};

AgentOptions TrustOptions(const std::string& pem) {
  AgentOptions o;
  auto id = o.trusted_keys.AddPem(pem);
  EXPECT_TRUE(id.ok()) << id.status().ToString();
  return o;
}

ControlPlaneClientOptions FastOptions(const std::string& target, BundleCache* cache) {
  ControlPlaneClientOptions o;
  o.target = target;
  o.insecure_loopback = true;
  o.agent_id = "agent-1";
  o.labels = {{"env", "test"}};
  o.heartbeat_interval_ms = 200;
  o.initial_backoff_ms = 20;
  o.max_backoff_ms = 200;
  o.connect_timeout_ms = 2000;
  o.keepalive_ms = 0;
  o.cache = cache;
  return o;
}

std::unique_ptr<ControlPlaneClient> StartedClient(Agent* agent, ControlPlaneClientOptions o) {
  auto c = ControlPlaneClient::Create(agent, std::move(o));
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  if (!c.ok()) return nullptr;
  (*c)->Start();
  return std::move(*c);
}

class CpClientTest : public ::testing::Test {
 protected:
  void SetUp() override { cache_dir_ = MakeTempDir(); }
  void TearDown() override { fs::remove_all(cache_dir_); }
  std::string cache_dir_;
};

TEST_F(CpClientTest, FollowsRolloutsRollbackAndRevocations) {
  CpServer cp;
  BundleCache cache(cache_dir_);
  Agent agent(TrustOptions(cp.public_pem()));
  EXPECT_EQ(Ping(agent).status, 503);  // no bundle yet: fail closed

  auto client = StartedClient(&agent, FastOptions(cp.address(), &cache));
  ASSERT_TRUE(client);
  ASSERT_TRUE(Eventually([&] { return client->state() == ConnectionState::kConnected; }));
  EXPECT_EQ(agent.metrics().Value("vakt_agent_controlplane_connected", ""), 1);
  // Nothing assigned yet: the server says so.
  ASSERT_TRUE(Eventually([&] { return client->status().notices >= 1; }));

  const uint64_t v1 = cp.Publish("one");
  cp.Rollout(v1);
  ASSERT_TRUE(Eventually([&] { return agent.active() && agent.active()->version == v1; }));
  ASSERT_TRUE(Eventually([&] {
    auto a = cp.AgentView("agent-1");
    return a && a->record.active_version == v1;
  }));
  EXPECT_GE(cp.agent_server().stats().acks, 1u);
  Verdict v = Ping(agent);
  EXPECT_TRUE(v.allow);
  EXPECT_EQ(v.bundle_version, v1);
  auto cached = cache.Load();
  ASSERT_TRUE(cached.ok()) << cached.status().ToString();
  EXPECT_EQ(cached->version, v1);
  EXPECT_EQ(Hex(cached->bundle), agent.active()->digest);

  // A second version, then a rollback to the first.
  const uint64_t v2 = cp.Publish("two");
  const uint64_t r2 = cp.Rollout(v2);
  ASSERT_TRUE(Eventually([&] { return agent.active()->version == v2; }));
  ASSERT_TRUE(Eventually([&] { return cache.Load().ok() && cache.Load()->version == v2; }));
  ASSERT_TRUE(cp.plane()
                  .Rollback(controlplane::Principal{"test", controlplane::Role::kAdmin}, r2, "demo")
                  .ok());
  ASSERT_TRUE(Eventually([&] { return agent.active()->version == v1; }));
  EXPECT_EQ(Ping(agent).bundle_version, v1);
  ASSERT_TRUE(Eventually([&] { return cache.Load().ok() && cache.Load()->version == v1; }));

  // Revocations.
  controlplane::RevocationRecord rec;
  rec.kind = controlplane::RevocationKind::kJti;
  rec.value = "stolen-token";
  rec.reason = "test";
  auto added =
      cp.plane().AddRevocation(controlplane::Principal{"test", controlplane::Role::kAdmin}, rec);
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  ASSERT_TRUE(Eventually([&] { return agent.revocation_revision() > 0; }));
  EXPECT_EQ(agent.revocation_entries(), 1u);
  ASSERT_TRUE(Eventually([&] {
    auto a = cp.AgentView("agent-1");
    return a && a->record.revocation_revision == agent.revocation_revision();
  }));
  auto cached_rev = cache.LoadRevocations();
  ASSERT_TRUE(Eventually([&] { return cache.LoadRevocations().ok(); }));
  cached_rev = cache.LoadRevocations();
  EXPECT_EQ(cached_rev->revision, agent.revocation_revision());
  EXPECT_EQ(cached_rev->jtis, std::vector<std::string>{"stolen-token"});

  const ControlPlaneStatus st = client->status();
  EXPECT_EQ(st.bundles_refused, 0u);
  EXPECT_GE(st.bundles_applied, 3u);
  EXPECT_GE(st.revocations_applied, 1u);
  client->Stop();
  EXPECT_EQ(client->state(), ConnectionState::kStopped);
  EXPECT_EQ(agent.metrics().Value("vakt_agent_controlplane_connected", ""), 0);
  EXPECT_TRUE(Ping(agent).allow);  // keeps deciding without the control plane
}

// A revocation pushed by the control plane denies the revoked token in
// Agent::Decide at once, and other tokens still pass.
constexpr int64_t kNow = 1'700'000'000;
int64_t FixedNow() { return kNow; }

TEST_F(CpClientTest, RevokedTokenIsDenied) {
  auto key = compiler::GenerateKey(bytecode::JwsAlg::kES256, "k1");
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  const std::string policy = R"(package t

issuer main {
  url = "https://as.example"
  audience = "https://api.example"
  jwks = "keys/main.jwks.json"
  algs = ["ES256"]
}

api a "/v1" {
  route r GET "/bearer" {
    use fapi2 { loosen sender = "none" loosen tls = "any" }
  }
}
)";
  CpServer cp;
  auto pub = cp.plane().Publish(
      controlplane::Principal{"test", controlplane::Role::kAdmin}, "demo",
      {controlplane::SourceFile{"main.vakt", policy},
       controlplane::SourceFile{"keys/main.jwks.json", "{\"keys\":[" + key->PublicJwk() + "]}"}},
      "fapi");
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  cp.Rollout(pub->version.version);

  AgentOptions ao = TrustOptions(cp.public_pem());
  ao.clock = &FixedNow;
  Agent agent(std::move(ao));
  auto client = StartedClient(&agent, FastOptions(cp.address(), nullptr));
  ASSERT_TRUE(client);
  ASSERT_TRUE(Eventually([&] { return agent.ready(); }));

  auto token = [&](const std::string& jti) {
    compiler::TokenOptions o;
    o.now = kNow;
    auto t = compiler::MintAccessToken(
        *key,
        R"({"iss":"https://as.example","aud":"https://api.example","sub":"anna",)"
        R"("client_id":"app-1","scope":"x","jti":")" +
            jti + "\"}",
        o);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : std::string();
  };
  auto decide = [&](const std::string& tok) {
    std::string auth = "Bearer " + tok;
    bytecode::HeaderField h[] = {{"host", "api.example"}, {"authorization", auth}};
    bytecode::HttpRequest req;
    req.method = "GET";
    req.target = "/v1/bearer";
    req.headers = h;
    req.tls = {"TLSv1.3", "TLS_AES_128_GCM_SHA256", ""};
    req.time = kNow;
    return agent.Decide(req);
  };
  const std::string stolen = token("stolen-1"), fine = token("fine-1");
  Verdict before = decide(stolen);
  ASSERT_TRUE(before.allow) << before.status << " " << before.error << ": " << before.description;

  controlplane::RevocationRecord rec;
  rec.kind = controlplane::RevocationKind::kJti;
  rec.value = "stolen-1";
  ASSERT_TRUE(cp.plane()
                  .AddRevocation(controlplane::Principal{"test", controlplane::Role::kAdmin}, rec)
                  .ok());
  ASSERT_TRUE(Eventually([&] { return agent.revocation_revision() > 0; }));
  Verdict after = decide(stolen);
  EXPECT_FALSE(after.allow);
  EXPECT_EQ(after.status, 401);
  EXPECT_TRUE(decide(fine).allow);
}

TEST_F(CpClientTest, ReconnectsAfterRestartWithoutResend) {
  CpServer cp;
  BundleCache cache(cache_dir_);
  Agent agent(TrustOptions(cp.public_pem()));
  auto client = StartedClient(&agent, FastOptions(cp.address(), &cache));
  ASSERT_TRUE(client);
  const uint64_t v1 = cp.Publish("one");
  cp.Rollout(v1);
  ASSERT_TRUE(Eventually([&] { return agent.active() && agent.active()->version == v1; }));
  ASSERT_TRUE(Eventually([&] {
    auto a = cp.AgentView("agent-1");
    return a && a->record.active_version == v1;
  }));

  cp.Close();  // down mid-stream
  ASSERT_TRUE(Eventually([&] { return client->state() != ConnectionState::kConnected; }));
  EXPECT_TRUE(Ping(agent).allow);  // the last good bundle keeps deciding
  ASSERT_TRUE(Eventually([&] { return client->status().reconnects >= 1; }));
  EXPECT_FALSE(client->status().last_error.empty());

  cp.Open();  // same data, same port
  ASSERT_TRUE(Eventually(
      [&] {
        return client->state() == ConnectionState::kConnected && cp.AgentView("agent-1") &&
               cp.AgentView("agent-1")->connected;
      },
      15000));
  // The Hello said "running v1" with the right digest: the server took it
  // as the active version and sent nothing.
  auto a = cp.AgentView("agent-1");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->record.active_version, v1);
  EXPECT_EQ(a->state, "in_sync");
  EXPECT_EQ(cp.agent_server().stats().bundles_sent, 0u);
  EXPECT_GE(client->status().streams, 2u);
  EXPECT_GE(agent.metrics().Value("vakt_agent_controlplane_reconnects_total", ""), 1);
}

TEST_F(CpClientTest, DownAtStartRunsFromCache) {
  std::string pem;
  {
    CpServer cp;
    pem = cp.public_pem();
    BundleCache cache(cache_dir_);
    Agent agent(TrustOptions(pem));
    auto client = StartedClient(&agent, FastOptions(cp.address(), &cache));
    ASSERT_TRUE(client);
    const uint64_t v1 = cp.Publish("one");
    cp.Rollout(v1);
    ASSERT_TRUE(Eventually([&] { return cache.Load().ok(); }));
  }
  // A new agent process: the control plane is gone (nothing listens on
  // port 1 of loopback), the cache holds the last good bundle.
  BundleCache cache(cache_dir_);
  Agent agent(TrustOptions(pem));
  RestoreResult r = RestoreFromCache(cache, &agent);
  ASSERT_TRUE(r.bundle_loaded) << r.bundle_status.ToString();
  EXPECT_FALSE(r.revocations_loaded);
  EXPECT_EQ(r.revocations_status.code(), StatusCode::kNotFound);
  auto client = StartedClient(&agent, FastOptions("127.0.0.1:1", &cache));
  ASSERT_TRUE(client);
  ASSERT_TRUE(Eventually([&] { return client->status().reconnects >= 2; }));
  EXPECT_NE(client->state(), ConnectionState::kConnected);
  EXPECT_FALSE(client->status().last_error.empty());
  EXPECT_TRUE(Ping(agent).allow);
  client->Stop();
}

TEST_F(CpClientTest, TamperedCacheIsRefusedAndAgentFailsClosed) {
  fs::create_directories(cache_dir_ + "/keys");
  auto signer = controlplane::BundleSigner::LoadOrCreate(cache_dir_ + "/keys");
  ASSERT_TRUE(signer.ok()) << signer.status().ToString();
  const std::string bytes = CompileBundle("cached");
  auto sig = signer->Sign("demo", 5, Hex(bytes));
  ASSERT_TRUE(sig.ok());
  BundleCache cache(cache_dir_ + "/cache");
  ASSERT_TRUE(cache.Save(CachedBundle{"demo", 5, signer->key_id(), *sig, bytes}).ok());
  {
    Agent agent(TrustOptions(signer->public_key_pem()));
    RestoreResult r = RestoreFromCache(cache, &agent);
    EXPECT_TRUE(r.bundle_loaded) << r.bundle_status.ToString();
    EXPECT_EQ(agent.active()->version, 5u);
  }
  // Re-framed with a valid checksum but claiming another version: the
  // signature no longer matches.
  ASSERT_TRUE(cache.Save(CachedBundle{"demo", 6, signer->key_id(), *sig, bytes}).ok());
  {
    Agent agent(TrustOptions(signer->public_key_pem()));
    RestoreResult r = RestoreFromCache(cache, &agent);
    EXPECT_FALSE(r.bundle_loaded);
    EXPECT_EQ(r.bundle_status.code(), StatusCode::kPermissionDenied);
    EXPECT_FALSE(agent.ready());
    EXPECT_EQ(Ping(agent).status, 503);
  }
  // A damaged file: kCorruption, the agent starts without it.
  {
    std::fstream f(cache.path(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.put('\x7f');
  }
  Agent agent(TrustOptions(signer->public_key_pem()));
  RestoreResult r = RestoreFromCache(cache, &agent);
  EXPECT_FALSE(r.bundle_loaded);
  EXPECT_EQ(r.bundle_status.code(), StatusCode::kCorruption);
  EXPECT_EQ(Ping(agent).status, 503);
}

TEST_F(CpClientTest, RestoresCachedRevocations) {
  BundleCache cache(cache_dir_);
  CachedRevocations rev;
  rev.revision = 9;
  rev.jtis = {"a", "b"};
  ASSERT_TRUE(cache.SaveRevocations(rev).ok());
  Agent agent(AgentOptions{});
  RestoreResult r = RestoreFromCache(cache, &agent);
  EXPECT_TRUE(r.revocations_loaded);
  EXPECT_FALSE(r.bundle_loaded);
  EXPECT_EQ(agent.revocation_revision(), 9u);
  EXPECT_EQ(agent.revocation_entries(), 2u);
}

// Mutual TLS: a CA, a server certificate for 127.0.0.1, client certificates
// CN=agent-7 (by the CA) and CN=rogue (by another CA), made with the
// openssl CLI as in cp_process_test.cc.
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

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST_F(CpClientTest, MutualTlsIdentityFromTheCertificate) {
  const std::string certs = cache_dir_ + "/certs";
  fs::create_directories(certs);
  { std::ofstream(certs + "/make-certs.sh") << kMakeCerts; }
  const std::string cmd =
      "cd '" + certs + "' && timeout 60 bash make-certs.sh > make-certs.log 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << ReadText(certs + "/make-certs.log");
  grpc::SslServerCredentialsOptions so(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  so.pem_root_certs = ReadText(certs + "/ca.pem");
  so.pem_key_cert_pairs.push_back(
      {ReadText(certs + "/server.key"), ReadText(certs + "/server.pem")});
  CpServer cp(grpc::SslServerCredentials(so));
  const uint64_t v1 = cp.Publish("tls");
  cp.Rollout(v1);

  auto tls_options = [&](const std::string& client) {
    ControlPlaneClientOptions o = FastOptions(cp.address(), nullptr);
    o.insecure_loopback = false;
    o.agent_id = "";
    o.ca_file = certs + "/ca.pem";
    o.cert_file = certs + "/" + client + ".pem";
    o.key_file = certs + "/" + client + ".key";
    return o;
  };
  // The CA's client: identity agent-7 from the certificate.
  Agent agent(TrustOptions(cp.public_pem()));
  auto client = StartedClient(&agent, tls_options("agent-7"));
  ASSERT_TRUE(client);
  ASSERT_TRUE(Eventually([&] { return agent.active() && agent.active()->version == v1; }, 15000));
  ASSERT_TRUE(Eventually([&] {
    auto a = cp.AgentView("agent-7");
    return a && a->record.active_version == v1;
  }));
  client->Stop();

  // Naming another id than the certificate's: PERMISSION_DENIED, retried.
  Agent other(TrustOptions(cp.public_pem()));
  ControlPlaneClientOptions o = tls_options("agent-7");
  o.agent_id = "agent-8";
  auto liar = StartedClient(&other, o);
  ASSERT_TRUE(liar);
  ASSERT_TRUE(Eventually(
      [&] { return liar->status().last_error.find("PERMISSION_DENIED") != std::string::npos; },
      15000))
      << liar->status().last_error;
  EXPECT_FALSE(other.ready());
  liar->Stop();

  // A certificate from another CA is refused in the handshake (or, with
  // TLS 1.3, right after it): never a bundle.
  Agent rogue_agent(TrustOptions(cp.public_pem()));
  auto rogue = StartedClient(&rogue_agent, tls_options("rogue"));
  ASSERT_TRUE(rogue);
  ASSERT_TRUE(Eventually([&] { return rogue->status().reconnects >= 2; }, 15000));
  EXPECT_FALSE(rogue_agent.ready());
  rogue->Stop();

  // Without the CA the client does not trust the server.
  Agent lost(TrustOptions(cp.public_pem()));
  o = tls_options("agent-7");
  o.ca_file = certs + "/other-ca.pem";
  auto untrusting = StartedClient(&lost, o);
  ASSERT_TRUE(untrusting);
  ASSERT_TRUE(Eventually([&] { return untrusting->status().reconnects >= 2; }, 15000));
  EXPECT_FALSE(lost.ready());
}

// ------------------------------------------------------ option validation

TEST(CpClientOptionsTest, Validation) {
  Agent agent(AgentOptions{});
  auto start = [&](ControlPlaneClientOptions o) {
    return ControlPlaneClient::Create(&agent, std::move(o)).status();
  };
  ControlPlaneClientOptions o = FastOptions("127.0.0.1:1", nullptr);
  o.target = "";
  EXPECT_EQ(start(o).code(), StatusCode::kInvalidArgument);
  o = FastOptions("cp.example.net:443", nullptr);
  Status st = start(o);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("loopback"), std::string::npos);
  o = FastOptions("127.0.0.1:1", nullptr);
  o.agent_id = "";
  EXPECT_EQ(start(o).code(), StatusCode::kInvalidArgument);
  o = FastOptions("127.0.0.1:1", nullptr);
  o.max_backoff_ms = 1;
  EXPECT_EQ(start(o).code(), StatusCode::kInvalidArgument);
  o = FastOptions("127.0.0.1:1", nullptr);
  o.ca_file = "/nonexistent";
  EXPECT_EQ(start(o).code(), StatusCode::kInvalidArgument);
  o = FastOptions("cp.example.net:443", nullptr);
  o.insecure_loopback = false;
  EXPECT_EQ(start(o).code(), StatusCode::kInvalidArgument);  // no client certificate
  o.cert_file = "/nonexistent/cert.pem";
  EXPECT_EQ(start(o).code(), StatusCode::kInvalidArgument);  // no key
  o.key_file = "/nonexistent/key.pem";
  st = start(o);
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_NE(st.message().find("/nonexistent/cert.pem"), std::string::npos);
  o = FastOptions("127.0.0.1:1", nullptr);
  for (int i = 0; i < 33; ++i) o.labels["l" + std::to_string(i)] = "v";
  EXPECT_EQ(start(o).code(), StatusCode::kInvalidArgument);

  EXPECT_EQ(
      ControlPlaneClient::Create(nullptr, FastOptions("127.0.0.1:1", nullptr)).status().code(),
      StatusCode::kInvalidArgument);
  auto c = ControlPlaneClient::Create(&agent, FastOptions("127.0.0.1:1", nullptr));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  (*c)->Start();
  (*c)->Start();  // once only
  (*c)->Stop();
  EXPECT_EQ((*c)->state(), ConnectionState::kStopped);
  (*c)->Stop();   // idempotent
  (*c)->Start();  // a stopped client stays stopped
  EXPECT_EQ((*c)->state(), ConnectionState::kStopped);
}

TEST(CpClientOptionsTest, LoopbackTargets) {
  for (const char* t : {"127.0.0.1:7443", "localhost:7443", "[::1]:7443", "ipv4:127.0.0.1:1",
                        "dns:///localhost:1", "unix:/run/vakt.sock", "127.1.2.3:9", "localhost"}) {
    EXPECT_TRUE(IsLoopbackTarget(t)) << t;
  }
  for (const char* t :
       {"10.0.0.1:7443", "cp.example.net:443", "127.0.0.1.evil.com:1", "localhost.evil.com:1",
        "[::2]:1", "127.0.0.1:1,10.0.0.1:1", "128.0.0.1:1", "[::1", ""}) {
    EXPECT_FALSE(IsLoopbackTarget(t)) << t;
  }
}

TEST(BackoffTest, FullJitterGrowsToMaxAndResets) {
  Backoff b(500, 30000, 2, 42);
  int64_t cap = 500;
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(b.cap_ms(), cap);
    int64_t d = b.NextMs();
    EXPECT_GE(d, 0);
    EXPECT_LE(d, cap);
    cap = std::min<int64_t>(cap * 2, 30000);
  }
  EXPECT_EQ(b.cap_ms(), 30000);
  b.Reset();
  EXPECT_EQ(b.cap_ms(), 500);
  // Jitter: not every delay is the same.
  Backoff c(1000, 1000, 2, 7);
  int64_t first = c.NextMs();
  bool differs = false;
  for (int i = 0; i < 50 && !differs; ++i) differs = c.NextMs() != first;
  EXPECT_TRUE(differs);
}

// ------------------------------------------------------- a fake control plane

using ServerStream = grpc::ServerReaderWriter<ServerMessage, AgentMessage>;

// An AgentService whose streams run a script written by the test. Records
// every Hello and every Ack/Nack.
class FakeService final : public vakt::v1::AgentService::Service {
 public:
  // Called per stream with its index (0, 1, ...); returns its final status.
  std::function<grpc::Status(int, ServerStream*)> script;

  grpc::Status Stream(grpc::ServerContext*, ServerStream* rw) override {
    int index = streams_++;
    AgentMessage m;
    if (!rw->Read(&m) || !m.has_hello()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "no hello");
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      hellos_.push_back(m.hello());
    }
    return script(index, rw);
  }

  // The next Ack or Nack (heartbeats skipped); false if the stream ended.
  bool ReadReply(ServerStream* rw, AgentMessage* reply) {
    while (rw->Read(reply)) {
      if (reply->has_ack() || reply->has_nack()) {
        std::lock_guard<std::mutex> l(mu_);
        replies_.push_back(*reply);
        return true;
      }
    }
    return false;
  }
  // Blocks until the client ends the stream (Stop()).
  static void Drain(ServerStream* rw) {
    AgentMessage m;
    while (rw->Read(&m)) {
    }
  }

  int streams() const { return streams_.load(); }
  std::vector<vakt::v1::Hello> hellos() {
    std::lock_guard<std::mutex> l(mu_);
    return hellos_;
  }
  std::vector<AgentMessage> replies() {
    std::lock_guard<std::mutex> l(mu_);
    return replies_;
  }

 private:
  std::atomic<int> streams_{0};
  std::mutex mu_;
  std::vector<vakt::v1::Hello> hellos_;
  std::vector<AgentMessage> replies_;
};

class FakeCpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    fs::create_directories(dir_ + "/keys");
    auto signer = controlplane::BundleSigner::LoadOrCreate(dir_ + "/keys");
    ASSERT_TRUE(signer.ok()) << signer.status().ToString();
    signer_ = std::make_unique<controlplane::BundleSigner>(std::move(*signer));
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(&service_);
    b.SetMaxSendMessageSize(16 << 20);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    ShutdownAll();
    fs::remove_all(dir_);
  }

  // Stops the client, then the server (whose streams end once the client
  // has cancelled them). Idempotent.
  void ShutdownAll() {
    if (client_) client_->Stop();
    if (server_ && !shut_down_) {
      shut_down_ = true;
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    }
  }
  // Stops everything when the test body ends, before its locals (which the
  // client and the server's scripts use) are destroyed.
  struct [[nodiscard]] Guard {
    FakeCpTest* t;
    ~Guard() { t->ShutdownAll(); }
  };

  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }

  // A correctly signed BundleUpdate for `bytes`.
  ServerMessage Update(const std::string& nonce, uint64_t version, const std::string& bytes) {
    ServerMessage m;
    auto* u = m.mutable_bundle();
    u->set_nonce(nonce);
    u->set_policy("demo");
    u->set_version(version);
    u->set_bundle(bytes);
    u->set_digest(Hex(bytes));
    auto sig = signer_->Sign("demo", version, Hex(bytes));
    EXPECT_TRUE(sig.ok());
    u->set_signature(*sig);
    u->set_key_id(signer_->key_id());
    return m;
  }

  Guard StartClient(Agent* agent, ControlPlaneClientOptions o) {
    client_ = StartedClient(agent, std::move(o));
    EXPECT_TRUE(client_ != nullptr);
    return Guard{this};
  }

  std::string dir_;
  std::unique_ptr<controlplane::BundleSigner> signer_;
  FakeService service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  bool shut_down_ = false;
  std::unique_ptr<ControlPlaneClient> client_;
};

TEST_F(FakeCpTest, HostileBundlesAreNackedAndThePreviousStays) {
  const std::string good = CompileBundle("good");
  std::vector<ServerMessage> pushes;
  pushes.push_back(Update("n-good", 1, good));
  // 1: unsigned.
  pushes.push_back(Update("n-unsigned", 2, CompileBundle("two")));
  pushes.back().mutable_bundle()->clear_signature();
  // 2: a signature over another version.
  pushes.push_back(Update("n-badsig", 3, CompileBundle("three")));
  pushes.back().mutable_bundle()->set_signature(
      Update("x", 99, CompileBundle("three")).bundle().signature());
  // 3: an unknown key id.
  pushes.push_back(Update("n-key", 4, CompileBundle("four")));
  pushes.back().mutable_bundle()->set_key_id("ffffffffffffffff");
  // 4: the digest does not match the bytes.
  pushes.push_back(Update("n-digest", 5, CompileBundle("five")));
  pushes.back().mutable_bundle()->set_digest(Hex("something else"));
  // 5: random bytes, correctly signed and digested: the loader refuses.
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>((i * 131 + 17) & 0xff));
  pushes.push_back(Update("n-junk", 6, junk));
  // 6: over the size limit.
  pushes.push_back(Update("n-big", 7, std::string(300 * 1024, 'x')));
  // 7: version 0 and 8: an empty nonce.
  pushes.push_back(Update("n-zero", 1, good));
  pushes.back().mutable_bundle()->set_version(0);
  pushes.push_back(Update("", 8, good));
  // 9: a well-formed message of no kind (from a newer server): ignored.
  pushes.push_back(ServerMessage());
  // 10: the same bundle again: ACKed without a reload.
  pushes.push_back(Update("n-again", 1, good));

  service_.script = [&](int, ServerStream* rw) {
    AgentMessage reply;
    for (const ServerMessage& p : pushes) {
      if (!rw->Write(p)) return grpc::Status::OK;
      if (p.kind_case() == ServerMessage::KIND_NOT_SET) continue;
      if (!service_.ReadReply(rw, &reply)) return grpc::Status::OK;
    }
    FakeService::Drain(rw);
    return grpc::Status::OK;
  };
  BundleCache cache(dir_ + "/cache");
  Agent agent(TrustOptions(signer_->public_key_pem()));
  ControlPlaneClientOptions o = FastOptions(target(), &cache);
  o.heartbeat_interval_ms = 60000;
  o.max_bundle_bytes = 256 * 1024;
  Guard guard = StartClient(&agent, o);
  ASSERT_TRUE(Eventually([&] { return service_.replies().size() == pushes.size() - 1; }, 15000));
  auto r = service_.replies();
  ASSERT_TRUE(r[0].has_ack());
  EXPECT_EQ(r[0].ack().nonce(), "n-good");
  EXPECT_EQ(r[0].ack().version(), 1u);
  struct Want {
    const char* nonce;
    uint64_t version;
    const char* error;
  };
  const Want wants[] = {
      {"n-unsigned", 2, "not signed"}, {"n-badsig", 3, "bad bundle signature"},
      {"n-key", 4, "unknown key"},     {"n-digest", 5, "digest mismatch"},
      {"n-junk", 6, "corruption"},     {"n-big", 7, "exceeds the limit of 262144"},
      {"n-zero", 0, "version 0"},      {"", 8, "bad nonce"},
  };
  for (size_t i = 0; i < std::size(wants); ++i) {
    const AgentMessage& m = r[i + 1];
    ASSERT_TRUE(m.has_nack()) << i << ": " << m.DebugString();
    EXPECT_EQ(m.nack().nonce(), wants[i].nonce);
    EXPECT_EQ(m.nack().version(), wants[i].version);
    EXPECT_NE(m.nack().error().find(wants[i].error), std::string::npos)
        << "want `" << wants[i].error << "` in `" << m.nack().error() << "`";
  }
  ASSERT_TRUE(r.back().has_ack());
  EXPECT_EQ(r.back().ack().nonce(), "n-again");
  // The first bundle never stopped running, and is the one cached.
  EXPECT_EQ(agent.active()->version, 1u);
  EXPECT_TRUE(Ping(agent).allow);
  auto cached = cache.Load();
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(cached->version, 1u);
  const ControlPlaneStatus st = client_->status();
  EXPECT_EQ(st.bundles_applied, 2u);
  EXPECT_EQ(st.bundles_refused, 8u);
  EXPECT_EQ(st.streams, 1u);  // nothing above ends the stream
  EXPECT_EQ(agent.metrics().Value("vakt_agent_controlplane_updates_total",
                                  "kind=\"bundle\",result=\"refused\""),
            8);
}

TEST_F(FakeCpTest, RevocationUpdates) {
  auto revs = [](const std::string& nonce, uint64_t revision, int jtis) {
    ServerMessage m;
    auto* u = m.mutable_revocations();
    u->set_nonce(nonce);
    u->set_revision(revision);
    for (int i = 0; i < jtis; ++i) u->add_jtis("jti-" + std::to_string(i));
    auto* c = u->add_subjects();
    c->set_value("anna");
    c->set_not_after(1700000000);
    return m;
  };
  std::vector<ServerMessage> pushes = {revs("r-ok", 3, 2), revs("r-big", 4, 10),
                                       revs("r-empty", 5, 1)};
  pushes.back().mutable_revocations()->set_jtis(0, "");
  service_.script = [&](int, ServerStream* rw) {
    AgentMessage reply;
    for (const ServerMessage& p : pushes) {
      if (!rw->Write(p) || !service_.ReadReply(rw, &reply)) return grpc::Status::OK;
    }
    FakeService::Drain(rw);
    return grpc::Status::OK;
  };
  BundleCache cache(dir_ + "/cache");
  Agent agent(AgentOptions{});
  ControlPlaneClientOptions o = FastOptions(target(), &cache);
  o.max_revocation_entries = 8;
  Guard guard = StartClient(&agent, o);
  ASSERT_TRUE(Eventually([&] { return service_.replies().size() == 3; }));
  auto r = service_.replies();
  ASSERT_TRUE(r[0].has_ack());
  EXPECT_EQ(r[0].ack().version(), 3u);
  ASSERT_TRUE(r[1].has_nack());
  EXPECT_EQ(r[1].nack().version(), 4u);
  EXPECT_NE(r[1].nack().error().find("11 entries exceeds the limit of 8"), std::string::npos)
      << r[1].nack().error();
  ASSERT_TRUE(r[2].has_nack());
  EXPECT_NE(r[2].nack().error().find("empty jti"), std::string::npos) << r[2].nack().error();
  // Revision 3 stays.
  EXPECT_EQ(agent.revocation_revision(), 3u);
  EXPECT_EQ(agent.revocation_entries(), 3u);
  auto cached = cache.LoadRevocations();
  ASSERT_TRUE(cached.ok());
  EXPECT_EQ(cached->revision, 3u);
}

TEST_F(FakeCpTest, ErrorsBackOffReconnectAndHelloCarriesState) {
  const std::string good = CompileBundle("good");
  service_.script = [&](int index, ServerStream* rw) {
    if (index == 0) {  // push a bundle, then fail
      AgentMessage reply;
      ServerMessage rev;
      rev.mutable_revocations()->set_nonce("r");
      rev.mutable_revocations()->set_revision(12);
      if (!rw->Write(Update("n1", 1, good)) || !service_.ReadReply(rw, &reply)) {
        return grpc::Status::OK;
      }
      if (!rw->Write(rev) || !service_.ReadReply(rw, &reply)) return grpc::Status::OK;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "going away");
    }
    if (index < 3) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "slow down");
    }
    ServerMessage n;
    n.mutable_notice()->set_message("hello\nagent\x01");
    rw->Write(n);
    FakeService::Drain(rw);
    return grpc::Status::OK;
  };
  Agent agent(TrustOptions(signer_->public_key_pem()));
  ControlPlaneClientOptions o = FastOptions(target(), nullptr);  // no cache
  o.labels = {{"env", "prod"}, {"zone", "a"}};
  Guard guard = StartClient(&agent, o);
  ASSERT_TRUE(Eventually([&] { return client_->status().notices == 1; }, 15000));
  EXPECT_EQ(client_->state(), ConnectionState::kConnected);
  const ControlPlaneStatus st = client_->status();
  EXPECT_EQ(st.reconnects, 3u);
  EXPECT_EQ(st.last_notice, "hello?agent?");
  EXPECT_NE(st.last_error.find("RESOURCE_EXHAUSTED: slow down"), std::string::npos)
      << st.last_error;
  auto hellos = service_.hellos();
  ASSERT_EQ(hellos.size(), 4u);
  EXPECT_EQ(hellos[0].agent_id(), "agent-1");
  EXPECT_EQ(hellos[0].labels().at("zone"), "a");
  EXPECT_EQ(hellos[0].running_version(), 0u);
  EXPECT_EQ(hellos[0].revocation_revision(), 0u);
  std::vector<std::string> caps(hellos[0].capabilities().begin(), hellos[0].capabilities().end());
  EXPECT_EQ(caps, (std::vector<std::string>{"bundle-format-3", "revocations"}));
  EXPECT_EQ(hellos[0].agent_version(), std::string(kAgentSoftwareVersion));
  for (size_t i = 1; i < hellos.size(); ++i) {
    EXPECT_EQ(hellos[i].running_version(), 1u);
    EXPECT_EQ(hellos[i].running_digest(), Hex(good));
    EXPECT_EQ(hellos[i].revocation_revision(), 12u);
  }
}

TEST_F(FakeCpTest, UnwritableCacheStillRunsAndAcks) {
  const std::string good = CompileBundle("good");
  ServerMessage rev;
  rev.mutable_revocations()->set_nonce("r1");
  rev.mutable_revocations()->set_revision(4);
  rev.mutable_revocations()->add_jtis("j");
  service_.script = [&](int, ServerStream* rw) {
    AgentMessage reply;
    if (!rw->Write(Update("n1", 1, good)) || !service_.ReadReply(rw, &reply)) {
      return grpc::Status::OK;
    }
    if (!rw->Write(rev) || !service_.ReadReply(rw, &reply)) return grpc::Status::OK;
    FakeService::Drain(rw);
    return grpc::Status::OK;
  };
  std::ofstream(dir_ + "/file") << "x";
  BundleCache cache(dir_ + "/file/cache");  // cannot be created
  Agent agent(TrustOptions(signer_->public_key_pem()));
  Guard guard = StartClient(&agent, FastOptions(target(), &cache));
  ASSERT_TRUE(Eventually([&] { return service_.replies().size() == 2; }));
  auto r = service_.replies();
  EXPECT_TRUE(r[0].has_ack());
  EXPECT_TRUE(r[1].has_ack());
  EXPECT_EQ(agent.active()->version, 1u);
  EXPECT_EQ(agent.revocation_revision(), 4u);
  EXPECT_EQ(client_->status().cache_write_failures, 2u);
  EXPECT_EQ(agent.metrics().Value("vakt_agent_cache_write_failures_total", ""), 2);
}

TEST_F(FakeCpTest, OversizeMessageEndsTheStreamAndReconnects) {
  service_.script = [&](int index, ServerStream* rw) {
    if (index == 0) {
      ServerMessage big = Update("n-huge", 1, std::string(3 << 20, 'x'));
      rw->Write(big);  // over the client's receive limit: the call fails
      FakeService::Drain(rw);
      return grpc::Status::OK;
    }
    FakeService::Drain(rw);
    return grpc::Status::OK;
  };
  Agent agent(TrustOptions(signer_->public_key_pem()));
  ControlPlaneClientOptions o = FastOptions(target(), nullptr);
  o.max_bundle_bytes = 64 * 1024;  // receive limit 1 MiB + 64 KiB
  Guard guard = StartClient(&agent, o);
  ASSERT_TRUE(Eventually([&] { return service_.streams() >= 2; }, 15000));
  EXPECT_NE(client_->status().last_error.find("RESOURCE_EXHAUSTED"), std::string::npos)
      << client_->status().last_error;
  EXPECT_FALSE(agent.ready());
}

TEST_F(FakeCpTest, HeartbeatsAndDecisionLogBatches) {
  std::atomic<int> heartbeats{0}, logs{0};
  service_.script = [&](int, ServerStream* rw) {
    AgentMessage m;
    while (rw->Read(&m)) {
      if (m.has_heartbeat()) ++heartbeats;
      if (m.kind_case() != AgentMessage::kHeartbeat) ++logs;
    }
    return grpc::Status::OK;
  };
  Agent agent(AgentOptions{});
  ControlPlaneClientOptions o = FastOptions(target(), nullptr);
  o.heartbeat_interval_ms = 20;
  o.log_flush_interval_ms = 20;
  std::atomic<int> polls{0};
  o.next_log_batch = [&](AgentMessage* m) {
    int n = polls++;
    if (n % 2 == 1) return false;  // nothing to send this time
    if (n == 2) {                  // too big for the control plane: dropped
      m->mutable_heartbeat()->set_running_version(1);
      m->mutable_nack()->set_error(std::string(70 * 1024, 'e'));
      return true;
    }
    m->mutable_nack()->set_error("log batch stand-in");
    return true;
  };
  Guard guard = StartClient(&agent, o);
  ASSERT_TRUE(Eventually([&] { return heartbeats >= 3 && logs >= 3; }));
  EXPECT_EQ(client_->status().log_batches_dropped, 1u);
  EXPECT_GE(client_->status().log_batches_sent, 3u);
  auto hellos = service_.hellos();
  ASSERT_FALSE(hellos.empty());
  EXPECT_EQ(hellos[0].capabilities_size(), 3);
  EXPECT_EQ(hellos[0].capabilities(2), "decision-logs");
  client_->Stop();
  EXPECT_EQ(client_->state(), ConnectionState::kStopped);
}

TEST_F(FakeCpTest, StopWhileServerNeverAnswers) {
  // A server that reads the Hello and then does nothing: Stop still returns.
  service_.script = [&](int, ServerStream* rw) {
    FakeService::Drain(rw);
    return grpc::Status::OK;
  };
  Agent agent(AgentOptions{});
  Guard guard = StartClient(&agent, FastOptions(target(), nullptr));
  ASSERT_TRUE(Eventually([&] { return client_->state() == ConnectionState::kConnected; }));
  client_->Stop();
  EXPECT_EQ(client_->state(), ConnectionState::kStopped);
  EXPECT_EQ(service_.streams(), 1);
}

}  // namespace
}  // namespace vakt::agent
