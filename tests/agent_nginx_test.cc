// The real-proxy integration test: Debian's nginx on loopback terminates
// TLS (1.2 and 1.3, client certificates optional), asks the agent with
// `auth_request` (/v1/auth-request), maps denials back to their real status
// with `error_page 401 403 = /_vakt_denied` (/v1/denied), and proxies allowed
// requests to a small upstream inside this process that answers the
// healthcare example's record JSON. curl is the client.
//
// The agent is the real `vakt-agent` binary (VAKT_AGENT_BINARY) in
// standalone mode: --bundle with the healthcare policy compiled here (its
// issuer JWKS replaced by a key made here, the rest of the example read
// from disk), --trusted-proxy 127.0.0.1/32. Built without the binary, an
// in-process HttpServer stands in.
//
// Expected answers (shared/reference/healthcare-example.md): 200 for Anna
// reading her record with a DPoP-bound token and proof (TLS 1.3 and 1.2),
// 401 with a challenge without a token, 403 for Eva reading Anna's record,
// 404 for an unknown path and a record of another patient, 400 for a token
// in the query, 200 for a certificate-bound token with its client
// certificate and 401 without it.
//
// Skipped loudly (GTEST_SKIP) only if nginx, curl or openssl is missing.
// nginx runs as a non-daemon child with a temp prefix; every process is
// killed and reaped at the end (and dies with the test: PR_SET_PDEATHSIG).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "compiler/compile.h"
#include "compiler/token_tool.h"
#include "tests/proc_harness.h"
#ifndef VAKT_AGENT_BINARY
#include "agent/agent.h"
#include "agent/http_server.h"
#endif

namespace vakt {
namespace {

namespace fs = std::filesystem;
using testing_proc::Process;
using testing_proc::ReadFile;
using testing_proc::TempDir;
using testing_proc::WriteFile;
using Clock = std::chrono::steady_clock;

constexpr char kNginx[] = "/usr/sbin/nginx";
constexpr char kIssuer[] = "https://issuer.example.no";
constexpr char kAudience[] = "https://api.example.no";

bool Executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

bool OnPath(const std::string& name) {
  std::string cmd = "command -v " + name + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// Binds 127.0.0.1:0 and returns the port (closed again: nginx binds it).
// The short window is acceptable on a test machine; nginx failing to bind
// fails the test with its log.
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// The upstream: answers every request with Anna's record r-1 (JSON) and
// closes. One thread, bounded by a stop flag and poll timeouts.
class Upstream {
 public:
  Upstream() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~Upstream() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  int port() const { return port_; }
  int served() const { return served_.load(); }

  static constexpr char kRecord[] =
      R"({"id":"r-1","patient_id":"p-anna","author":"bob","type":"note",)"
      R"("text":"Blood pressure normal.","created":"2026-01-05T10:00:00Z"})";

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      timeval tv{5, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos && req.size() < 65536) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      std::string body = kRecord;
      std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      (void)::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
      ::close(c);
      ++served_;
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> served_{0};
  std::thread thread_;
};

// Server certificate for 127.0.0.1 signed by a test CA (openssl CLI).
constexpr const char* kMakeCerts = R"sh(set -eu
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
openssl req -new -key ca.key -subj "/CN=vakt-nginx-test-ca" -out ca.csr
printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n' > ca.ext
openssl x509 -req -in ca.csr -signkey ca.key -days 2 -extfile ca.ext -out ca.pem
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out server.key
openssl req -new -key server.key -subj "/CN=127.0.0.1" -out server.csr
printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 0x1234 -days 2 \
  -extfile server.ext -out server.pem
chmod 600 *.key
)sh";

// nginx as the docs show it (docs/agent-http.md), with the test's ports
// and paths. @DIR@, @PORT@, @AGENT@, @UPSTREAM@ are filled in.
constexpr const char* kNginxConf = R"conf(master_process off;  # one process: nothing outlives a SIGKILL
worker_processes 1;
events { worker_connections 128; }
http {
  access_log @DIR@/access.log;
  client_body_temp_path @DIR@/tmp/body;
  proxy_temp_path @DIR@/tmp/proxy;
  fastcgi_temp_path @DIR@/tmp/fastcgi;
  uwsgi_temp_path @DIR@/tmp/uwsgi;
  scgi_temp_path @DIR@/tmp/scgi;

  upstream vakt_agent { server 127.0.0.1:@AGENT@; keepalive 8; }

  server {
    listen 127.0.0.1:@PORT@ ssl;
    ssl_certificate @DIR@/server.pem;
    ssl_certificate_key @DIR@/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384;
    # RFC 8705 self-signed client certificates: the token's x5t#S256 binds them.
    ssl_verify_client optional_no_ca;

    location / {
      auth_request /_vakt_auth;
      auth_request_set $vakt_status $upstream_http_x_vakt_status;
      auth_request_set $vakt_error $upstream_http_x_vakt_error;
      auth_request_set $vakt_description $upstream_http_x_vakt_error_description;
      auth_request_set $vakt_www_authenticate $upstream_http_www_authenticate;
      auth_request_set $vakt_dpop_nonce $upstream_http_dpop_nonce;
      error_page 401 403 = /_vakt_denied;
      proxy_pass http://127.0.0.1:@UPSTREAM@;
    }

    location = /_vakt_auth {
      internal;
      proxy_pass http://vakt_agent/v1/auth-request;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Vakt-TLS-Version $ssl_protocol;
      proxy_set_header X-Vakt-TLS-Cipher $ssl_cipher;
      proxy_set_header X-Vakt-Client-Cert $ssl_client_escaped_cert;
    }

    location = /_vakt_denied {
      internal;
      proxy_pass http://vakt_agent/v1/denied;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_method GET;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Vakt-Status $vakt_status;
      proxy_set_header X-Vakt-Error $vakt_error;
      proxy_set_header X-Vakt-Error-Description $vakt_description;
      proxy_set_header X-Vakt-WWW-Authenticate $vakt_www_authenticate;
      proxy_set_header X-Vakt-DPoP-Nonce $vakt_dpop_nonce;
    }
  }
}
)conf";

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) {
    s.replace(p, from.size(), to);
  }
  return s;
}

// One curl exchange.
struct CurlResult {
  int status = 0;
  std::string headers;  // raw, lower-cased
  std::string body;
  std::string error;
  bool HasHeader(const std::string& prefix) const {
    return headers.find("\n" + prefix) != std::string::npos;
  }
};

// The keys, the compiled policy and the agent.
class NginxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* tool : {"curl", "openssl"}) {
      if (!OnPath(tool)) GTEST_SKIP() << "SKIPPED: `" << tool << "` is not installed";
    }
    if (!Executable(kNginx)) {
      GTEST_SKIP() << "SKIPPED: " << kNginx << " is not installed (apt-get install nginx-light)";
    }
    ASSERT_FALSE(tmp_.path().empty());
    fs::create_directories(tmp_ / "tmp");
    WriteFile(tmp_ / "make-certs.sh", kMakeCerts);
    std::string cmd = "cd '" + tmp_.path() + "' && timeout 60 bash make-certs.sh > certs.log 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << ReadFile(tmp_ / "certs.log");

    auto issuer = compiler::GenerateKey(bytecode::JwsAlg::kES256, "test-es256");
    auto dpop = compiler::GenerateKey(bytecode::JwsAlg::kES256);
    auto cert = compiler::MakeTestCertificate("anna-device");
    ASSERT_TRUE(issuer.ok() && dpop.ok() && cert.ok());
    issuer_ = std::make_unique<compiler::SigningKey>(std::move(issuer).value());
    dpop_ = std::make_unique<compiler::SigningKey>(std::move(dpop).value());
    cert_ = std::move(cert).value();
    WriteFile(tmp_ / "client.pem", cert_.cert_pem);
    WriteFile(tmp_ / "client.key", cert_.key_pem);
    ::chmod((tmp_ / "client.key").c_str(), 0600);

    // The healthcare policy from disk, trusting the issuer key made here.
    compiler::SourceSet sources;
    dsl::Diagnostics diags;
    compiler::LoadSources({std::string(VAKT_SOURCE_DIR) + "/examples/healthcare/policy"}, sources,
                          diags);
    compiler::CompileOptions opts;
    const std::string jwks = "{\"keys\":[" + issuer_->PublicJwk() + "]}";
    opts.read_asset = [jwks](const dsl::SourceFile& from,
                             const std::string& path) -> Result<std::string> {
      if (path.ends_with("issuer.jwks.json")) return jwks;
      return compiler::ReadAssetFromDisk(from, path);
    };
    auto comp = compiler::Compile(sources, opts, diags);
    ASSERT_FALSE(diags.HasErrors()) << diags.Format();
    ASSERT_FALSE(comp->bytes.empty());
    WriteFile(tmp_ / "healthcare.vkb", comp->bytes);

    StartAgent(comp->bytes);
    if (HasFatalFailure()) return;
    StartNginx();
  }

  void StartAgent([[maybe_unused]] const std::string& bundle) {
#ifdef VAKT_AGENT_BINARY
    const std::string port_file = tmp_ / "agent.port";
    agent_proc_ = std::make_unique<Process>(
        std::vector<std::string>{VAKT_AGENT_BINARY, "--bundle", tmp_ / "healthcare.vkb",
                                 "--http-listen", "127.0.0.1:0", "--http-port-file", port_file,
                                 "--trusted-proxy", "127.0.0.1/32"},
        tmp_ / "agent.log");
    auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline && agent_port_ == 0) {
      std::string text = ReadFile(port_file);
      if (!text.empty()) agent_port_ = std::atoi(text.c_str());
      if (agent_port_ == 0) {
        ASSERT_TRUE(agent_proc_->Running()) << "vakt-agent exited:\n" << agent_proc_->Log();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    ASSERT_NE(agent_port_, 0) << "no port file from vakt-agent:\n" << agent_proc_->Log();
#else
    // Fallback when the daemon is not built: the same HTTP server in process.
    agent_ = std::make_unique<agent::Agent>(agent::AgentOptions{});
    ASSERT_TRUE(agent_->LoadUnsigned(bundle).ok());
    agent::HttpServerOptions o;
    o.listen = "127.0.0.1:0";
    o.trusted_proxies = {"127.0.0.1/32"};
    auto s = agent::HttpServer::Start(*agent_, o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    agent_port_ = server_->port();
#endif
  }

  void StartNginx() {
    // A few attempts: the free port may be taken between probe and bind.
    for (int attempt = 0; attempt < 5 && port_ == 0; ++attempt) {
      int port = FreePort();
      std::string conf = Replace(kNginxConf, "@DIR@", tmp_.path());
      conf = Replace(conf, "@PORT@", std::to_string(port));
      conf = Replace(conf, "@AGENT@", std::to_string(agent_port_));
      conf = Replace(conf, "@UPSTREAM@", std::to_string(upstream_.port()));
      WriteFile(tmp_ / "nginx.conf", conf);
      nginx_ = std::make_unique<Process>(
          std::vector<std::string>{kNginx, "-p", tmp_.path(), "-c", tmp_ / "nginx.conf", "-e",
                                   tmp_ / "error.log", "-g",
                                   "daemon off; pid " + (tmp_ / "nginx.pid") + ";"},
          tmp_ / "nginx.out");
      // Ready once it answers TLS.
      auto deadline = Clock::now() + std::chrono::seconds(10);
      while (Clock::now() < deadline && nginx_->Running()) {
        std::string cmd = "curl -s -o /dev/null --max-time 2 --cacert '" + (tmp_ / "ca.pem") +
                          "' https://127.0.0.1:" + std::to_string(port) + "/v1/health";
        if (std::system(cmd.c_str()) == 0) {
          port_ = port;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (port_ == 0) nginx_.reset();
    }
    ASSERT_NE(port_, 0) << "nginx did not start:\n"
                        << ReadFile(tmp_ / "nginx.out") << ReadFile(tmp_ / "error.log");
  }

  std::string Url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(port_) + path;
  }

  std::string Token(const std::string& claims, bool cert_bound = false) {
    compiler::TokenOptions o;
    o.now = std::time(nullptr);
    if (cert_bound) {
      o.cnf_x5t = cert_.x5t_s256;
    } else {
      o.cnf_jkt = dpop_->Thumbprint();
    }
    std::string full = R"({"iss":")" + std::string(kIssuer) + R"(","aud":")" + kAudience + R"(",)" +
                       claims.substr(1);
    auto t = compiler::MintAccessToken(*issuer_, full, o);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    return t.ok() ? *t : "";
  }

  std::string Proof(const std::string& method, const std::string& path, const std::string& token) {
    compiler::ProofOptions o;
    o.method = method;
    o.url = Url(path);
    o.access_token = token;
    o.now = std::time(nullptr);
    auto p = compiler::MintDpopProof(*dpop_, o);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return p.ok() ? *p : "";
  }

  // curl with `extra` arguments (already shell-quoted).
  CurlResult Curl(const std::string& path, const std::string& extra) {
    const std::string body = tmp_ / "body.out", head = tmp_ / "head.out", err = tmp_ / "curl.err";
    std::error_code ec;
    fs::remove(body, ec);
    fs::remove(head, ec);
    std::string cmd = "curl -sS --max-time 20 --cacert '" + (tmp_ / "ca.pem") + "' -o '" + body +
                      "' -D '" + head + "' -w '%{http_code}' " + extra + " '" + Url(path) +
                      "' 2>'" + err + "'";
    CurlResult r;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return r;
    char buf[64] = {0};
    size_t n = std::fread(buf, 1, sizeof buf - 1, p);
    ::pclose(p);
    r.status = std::atoi(std::string(buf, n).c_str());
    r.body = ReadFile(body);
    r.headers = "\n" + ReadFile(head);
    for (char& c : r.headers) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.error = ReadFile(err);
    return r;
  }

  std::string Describe(const CurlResult& r) {
    return "status " + std::to_string(r.status) + "\nheaders:" + r.headers + "body: " + r.body +
           "\ncurl: " + r.error + "\nnginx error.log:\n" + ReadFile(tmp_ / "error.log") +
           "\nagent:\n" + AgentLog();
  }

  std::string AgentLog() {
#ifdef VAKT_AGENT_BINARY
    return agent_proc_ ? agent_proc_->Log() : "";
#else
    return "(in process)";
#endif
  }

  static std::string DpopHeaders(const std::string& token, const std::string& proof) {
    return "-H 'Authorization: DPoP " + token + "' -H 'DPoP: " + proof + "'";
  }

  TempDir tmp_{"vakt-nginx"};
  Upstream upstream_;
  std::unique_ptr<compiler::SigningKey> issuer_, dpop_;
  compiler::TestCertificate cert_;
#ifdef VAKT_AGENT_BINARY
  std::unique_ptr<Process> agent_proc_;
#else
  std::unique_ptr<agent::Agent> agent_;
  std::unique_ptr<agent::HttpServer> server_;
#endif
  int agent_port_ = 0;
  std::unique_ptr<Process> nginx_;
  int port_ = 0;
};

constexpr char kAnna[] =
    R"({"sub":"anna","client_id":"app-1","role":"patient","patient_id":"p-anna","scope":"records.read patient.read"})";
constexpr char kEva[] =
    R"({"sub":"eva","client_id":"app-1","role":"patient","patient_id":"p-eva","scope":"records.read"})";
constexpr char kRecordPath[] = "/v1/patients/p-anna/records/r-1";

TEST_F(NginxTest, PatientReadsHerRecordOverTls13And12) {
  const std::string token = Token(kAnna);
  for (const char* tls : {"--tlsv1.3", "--tlsv1.2 --tls-max 1.2"}) {
    CurlResult r = Curl(
        kRecordPath, std::string(tls) + " " + DpopHeaders(token, Proof("GET", kRecordPath, token)));
    EXPECT_EQ(r.status, 200) << tls << "\n" << Describe(r);
    EXPECT_EQ(r.body, Upstream::kRecord) << tls;
  }
  EXPECT_GE(upstream_.served(), 2);
}

TEST_F(NginxTest, HealthNeedsNoToken) {
  CurlResult r = Curl("/v1/health", "");
  EXPECT_EQ(r.status, 200) << Describe(r);
}

TEST_F(NginxTest, NoTokenIs401WithChallenge) {
  const int served = upstream_.served();
  CurlResult r = Curl(kRecordPath, "");
  EXPECT_EQ(r.status, 401) << Describe(r);
  // Exactly one challenge (nginx passes the auth answer's on a 401).
  size_t first = r.headers.find("\nwww-authenticate: ");
  ASSERT_NE(first, std::string::npos) << Describe(r);
  EXPECT_EQ(r.headers.find("\nwww-authenticate: ", first + 1), std::string::npos) << Describe(r);
  EXPECT_NE(r.headers.find("dpop"), std::string::npos) << Describe(r);
  EXPECT_EQ(upstream_.served(), served);  // never reached the upstream
}

TEST_F(NginxTest, AnotherPatientsRecordIs403) {
  const std::string token = Token(kEva);
  const int served = upstream_.served();
  CurlResult r = Curl(kRecordPath, DpopHeaders(token, Proof("GET", kRecordPath, token)));
  EXPECT_EQ(r.status, 403) << Describe(r);
  EXPECT_NE(r.body.find("\"error\":\"access_denied\""), std::string::npos) << Describe(r);
  EXPECT_EQ(upstream_.served(), served);
}

TEST_F(NginxTest, UnknownPathAndForeignRecordAre404) {
  const std::string token = Token(kAnna);
  CurlResult r =
      Curl("/v1/nothing/here", DpopHeaders(token, Proof("GET", "/v1/nothing/here", token)));
  EXPECT_EQ(r.status, 404) << Describe(r);
  EXPECT_TRUE(r.HasHeader("content-type: application/json")) << Describe(r);
  // r-5 belongs to p-eva: 404 not_found even for Anna's own patient id.
  const std::string path = "/v1/patients/p-anna/records/r-5";
  r = Curl(path, DpopHeaders(token, Proof("GET", path, token)));
  EXPECT_EQ(r.status, 404) << Describe(r);
  EXPECT_NE(r.body.find("\"error\":\"not_found\""), std::string::npos) << Describe(r);
  // A path parameter of the wrong shape.
  r = Curl("/v1/patients/p_anna!/records", "");
  EXPECT_EQ(r.status, 404) << Describe(r);
}

TEST_F(NginxTest, TokenInQueryIs400) {
  const std::string token = Token(kAnna);
  CurlResult r = Curl(std::string(kRecordPath) + "?access_token=" + token, "");
  EXPECT_EQ(r.status, 400) << Describe(r);
  EXPECT_NE(r.body.find("\"error\":\"invalid_request\""), std::string::npos) << Describe(r);
}

TEST_F(NginxTest, ReplayedProofIs401) {
  const std::string token = Token(kAnna);
  const std::string headers = DpopHeaders(token, Proof("GET", kRecordPath, token));
  EXPECT_EQ(Curl(kRecordPath, headers).status, 200);
  CurlResult r = Curl(kRecordPath, headers);
  EXPECT_EQ(r.status, 401) << Describe(r);
  EXPECT_NE(r.body.find("invalid_dpop_proof"), std::string::npos) << Describe(r);
}

TEST_F(NginxTest, CertificateBoundTokenNeedsItsClientCertificate) {
  const std::string token = Token(kAnna, /*cert_bound=*/true);
  const std::string path = "/v1/patients/p-anna";
  const std::string auth = "-H 'Authorization: Bearer " + token + "'";
  CurlResult r = Curl(
      path, auth + " --cert '" + (tmp_ / "client.pem") + "' --key '" + (tmp_ / "client.key") + "'");
  EXPECT_EQ(r.status, 200) << Describe(r);
  r = Curl(path, auth + " --tlsv1.2 --tls-max 1.2 --cert '" + (tmp_ / "client.pem") + "' --key '" +
                     (tmp_ / "client.key") + "'");
  EXPECT_EQ(r.status, 200) << Describe(r);
  r = Curl(path, auth);
  EXPECT_EQ(r.status, 401) << Describe(r);
  EXPECT_NE(r.body.find("invalid_token"), std::string::npos) << Describe(r);
  EXPECT_TRUE(r.HasHeader("www-authenticate: ")) << Describe(r);
}

// A client cannot claim TLS facts or a real status: nginx overwrites the
// X-Vakt-* headers it sets, and the rest are the agent's own (dropped).
TEST_F(NginxTest, ClientSuppliedVaktHeadersDoNotHelp) {
  const std::string token = Token(kAnna, /*cert_bound=*/true);
  std::string fake_cert = cert_.cert_pem;
  std::string escaped;
  for (unsigned char c : fake_cert) {
    if (std::isalnum(c)) {
      escaped.push_back(static_cast<char>(c));
    } else {
      char b[4];
      std::snprintf(b, sizeof b, "%%%02X", c);
      escaped += b;
    }
  }
  CurlResult r = Curl("/v1/patients/p-anna", "-H 'Authorization: Bearer " + token +
                                                 "' -H 'X-Vakt-Client-Cert: " + escaped +
                                                 "' -H 'X-Vakt-Status: 200'");
  EXPECT_EQ(r.status, 401) << Describe(r);
  r = Curl(kRecordPath, "-H 'X-Original-URI: /v1/health' -H 'X-Forwarded-Uri: /v1/health'");
  EXPECT_EQ(r.status, 401) << Describe(r);
}

}  // namespace
}  // namespace vakt
