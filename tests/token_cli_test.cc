// The `vakt token` test tooling run as a real process: every subcommand's
// output parses and verifies through bytecode/jose.h, private key files are
// 0600, usage errors exit 2 and bad input exits 1. Also runs
// examples/healthcare/keys/generate.sh into a scratch directory and checks
// the committed issuer.jwks.json holds exactly three public keys.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <vector>

#include "bytecode/jose.h"
#include "bytecode/request.h"
#include "compiler/token_tool.h"

namespace {

namespace fs = std::filesystem;
using namespace vakt;
using Json = nlohmann::json;

struct RunResult {
  int code;
  std::string out;  // stdout only
  std::string err;  // stderr
};

RunResult Shell(const std::string& cmdline) {
  char err_path[] = "/tmp/vakt_token_cli_err_XXXXXX";
  int fd = mkstemp(err_path);
  if (fd >= 0) close(fd);
  std::string cmd = cmdline + " 2>" + err_path;
  FILE* p = popen(cmd.c_str(), "r");
  RunResult r{-1, "", ""};
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream in(err_path);
  std::stringstream ss;
  ss << in.rdbuf();
  r.err = ss.str();
  fs::remove(err_path);
  return r;
}

RunResult Vakt(const std::string& args) { return Shell(std::string(VAKT_BINARY) + " " + args); }

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class TokenCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("vakt_token_cli_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string P(const std::string& name) const { return (dir_ / name).string(); }
  std::string Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name, std::ios::binary) << text;
    return P(name);
  }
  // keygen into NAME.pem (and NAME.jwk); returns the public JWK printed.
  std::string Keygen(const std::string& alg, const std::string& name,
                     const std::string& extra = "") {
    RunResult r = Vakt("token keygen --alg " + alg + " --out " + P(name + ".pem") + " --jwk-out " +
                       P(name + ".jwk") + " " + extra);
    EXPECT_EQ(r.code, 0) << r.err;
    return Trim(r.out);
  }
  fs::path dir_;
};

struct Parts {
  Json header, payload;
};

Parts VerifyToken(const std::string& token, const std::string& public_jwk) {
  auto jws = bytecode::ParseCompactJws(token);
  EXPECT_TRUE(jws.ok()) << jws.status().ToString() << " [" << token << "]";
  if (!jws.ok()) return {};
  auto key = bytecode::ParseJwk(public_jwk);
  EXPECT_TRUE(key.ok()) << key.status().ToString();
  if (!key.ok()) return {};
  Json header = Json::parse(jws->header_json);
  auto alg = bytecode::ParseAlg(header["alg"].get<std::string>());
  EXPECT_TRUE(alg.ok());
  if (!alg.ok()) return {};
  Status st = bytecode::VerifyJws(*key, *alg, jws->signing_input, jws->signature);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return {header, Json::parse(jws->payload_json)};
}

TEST_F(TokenCli, UsageErrorsExitTwo) {
  std::string key = P("k.pem");
  for (const std::string& args : std::vector<std::string>{
           std::string("token"),
           std::string("token frobnicate"),
           std::string("token keygen"),
           "token keygen --out " + key,
           "token keygen --alg ES256",
           "token keygen --alg HS256 --out " + key,
           "token keygen --alg RS256 --out " + key,
           "token keygen --alg none --out " + key,
           "token keygen --alg ES256 --bits 3072 --out " + key,
           "token keygen --alg PS256 --bits 1024 --out " + key,
           "token keygen --alg PS256 --bits x --out " + key,
           "token keygen --alg ES256 --out " + key + " extra",
           "token keygen --alg ES256 --out " + key + " --bogus",
           std::string("token jwks"),
           "token jwks a.pem b.pem --kid x",
           std::string("token mint"),
           "token mint --key " + key + " --jkt a --dpop-key b",
           "token mint --key " + key + " --x5t a --cert b",
           "token mint --key " + key + " --now soon",
           "token mint --key " + key + " --ttl long",
           "token mint --key",
           std::string("token dpop --key k.pem"),
           std::string("token dpop --key k.pem --method GET"),
           std::string("token dpop --key k.pem --method '' --url https://x/"),
           std::string("token dpop --key k.pem --method GET --url https://x/ --now x"),
           std::string("token thumbprint"),
           std::string("token thumbprint a.pem --cert c.pem"),
           std::string("token thumbprint a.pem b.pem"),
           std::string("token cert --cn x"),
           std::string("token cert --cn x --out c.pem"),
       }) {
    RunResult r = Vakt(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
    EXPECT_NE(r.err.find("usage: vakt token"), std::string::npos) << args;
  }
  EXPECT_FALSE(fs::exists(key));
  RunResult help = Vakt("token help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("TEST TOOLING"), std::string::npos);
  RunResult main_help = Vakt("help");
  EXPECT_NE(main_help.out.find("token SUBCOMMAND"), std::string::npos);
  EXPECT_NE(main_help.out.find("TEST TOOLING"), std::string::npos);
}

TEST_F(TokenCli, KeygenWritesPrivateFilesAndPrintsPublicJwk) {
  for (const std::string alg : {"ES256", "PS256", "EdDSA"}) {
    SCOPED_TRACE(alg);
    std::string pub = Keygen(alg, "k-" + alg, "--kid kid-" + alg);
    auto key = bytecode::ParseJwk(pub);  // refuses private members
    ASSERT_TRUE(key.ok()) << key.status().ToString() << " " << pub;
    EXPECT_EQ(key->kid(), "kid-" + alg);
    EXPECT_EQ(bytecode::JwsAlgName(key->alg()), alg);
    for (const std::string ext : {".pem", ".jwk"}) {
      struct stat st;
      ASSERT_EQ(::stat(P("k-" + alg + ext).c_str(), &st), 0);
      EXPECT_EQ(st.st_mode & 0777, 0600u) << ext;
      EXPECT_FALSE(fs::exists(P("k-" + alg + ext + ".tmp")));
    }
    EXPECT_NE(ReadFile(P("k-" + alg + ".pem")).find("-----BEGIN PRIVATE KEY-----"),
              std::string::npos);
    auto priv = compiler::LoadSigningKey(ReadFile(P("k-" + alg + ".jwk")));
    ASSERT_TRUE(priv.ok()) << priv.status().ToString();
    EXPECT_EQ(priv->PublicJwk(), pub);
    EXPECT_EQ(priv->kid(), "kid-" + alg);
  }
  // Without --kid the kid is the thumbprint, which `thumbprint` prints.
  std::string pub = Keygen("EdDSA", "nokid");
  RunResult tp = Vakt("token thumbprint " + P("nokid.pem"));
  ASSERT_EQ(tp.code, 0) << tp.err;
  EXPECT_EQ(Json::parse(pub)["kid"], Trim(tp.out));
  tp = Vakt("token thumbprint " + P("nokid.jwk"));
  EXPECT_EQ(Json::parse(pub)["kid"], Trim(tp.out));
  std::string pub_file = Write("nokid.pub.jwk", pub);
  tp = Vakt("token thumbprint " + pub_file);
  EXPECT_EQ(Json::parse(pub)["kid"], Trim(tp.out));

  RunResult bits = Vakt("token keygen --alg PS256 --bits 3072 --out " + P("big.pem"));
  ASSERT_EQ(bits.code, 0) << bits.err;
  auto big = bytecode::ParseJwk(Trim(bits.out));
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->bits(), 3072);
}

TEST_F(TokenCli, JwksOfSeveralKeys) {
  std::string es = Keygen("ES256", "es", "--kid a");
  std::string ps = Keygen("PS256", "ps", "--kid b");
  std::string ed = Keygen("EdDSA", "ed", "--kid c");
  RunResult r = Vakt("token jwks " + P("es.jwk") + " " + P("ps.pem") + " " + P("ed.jwk"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto keys = bytecode::ParseJwks(r.out);
  ASSERT_TRUE(keys.ok()) << keys.status().ToString() << r.out;
  ASSERT_EQ(keys->size(), 3u);
  EXPECT_EQ((*keys)[0].kid(), "a");
  EXPECT_EQ((*keys)[1].kid(), bytecode::JwkThumbprint((*keys)[1]));  // from a PEM: thumbprint
  EXPECT_EQ((*keys)[2].kid(), "c");
  EXPECT_EQ(r.out.find("\"d\""), std::string::npos);

  r = Vakt("token jwks --kid renamed " + P("ps.pem"));
  ASSERT_EQ(r.code, 0) << r.err;
  keys = bytecode::ParseJwks(r.out);
  ASSERT_TRUE(keys.ok());
  EXPECT_EQ((*keys)[0].kid(), "renamed");

  // Two keys that SelectKey could not tell apart.
  r = Vakt("token jwks " + P("es.jwk") + " " + P("es.jwk"));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("second ES256 key with kid `a`"), std::string::npos) << r.err;

  r = Vakt("token jwks " + P("missing.pem"));
  EXPECT_EQ(r.code, 1);
}

TEST_F(TokenCli, MintDpopBoundTokenAndProof) {
  std::string issuer = Keygen("ES256", "issuer", "--kid issuer-1");
  std::string client = Keygen("EdDSA", "client");
  std::string claims = Write("claims.json", R"({"role":"patient","patient_id":"p-1","sub":"x"})");
  RunResult r = Vakt("token mint --key " + P("issuer.pem") + " --kid issuer-1 --claims @" + claims +
                     " --iss https://issuer.example.no --aud https://api.example.no --sub anna"
                     " --client-id app --scope 'records.read patient.read' --ttl 60"
                     " --now 1700000000 --dpop-key " +
                     P("client.jwk"));
  ASSERT_EQ(r.code, 0) << r.err;
  std::string token = Trim(r.out);
  Parts t = VerifyToken(token, issuer);
  EXPECT_EQ(t.header["typ"], "at+jwt");
  EXPECT_EQ(t.header["kid"], "issuer-1");
  EXPECT_EQ(t.payload["role"], "patient");
  EXPECT_EQ(t.payload["patient_id"], "p-1");
  EXPECT_EQ(t.payload["sub"], "anna");  // the flag wins over --claims
  EXPECT_EQ(t.payload["iss"], "https://issuer.example.no");
  EXPECT_EQ(t.payload["aud"], "https://api.example.no");
  EXPECT_EQ(t.payload["client_id"], "app");
  EXPECT_EQ(t.payload["scope"], "records.read patient.read");
  EXPECT_EQ(t.payload["iat"], 1700000000);
  EXPECT_EQ(t.payload["exp"], 1700000060);
  EXPECT_EQ(t.payload["cnf"]["jkt"], Json::parse(client)["kid"]);  // kid defaulted to thumbprint

  r = Vakt("token dpop --key " + P("client.pem") +
           " --method GET --url https://api.example.no/v1/patients/p-1 --token " + token +
           " --nonce abc --now 1700000001 --jti j-1");
  ASSERT_EQ(r.code, 0) << r.err;
  Parts p = VerifyToken(Trim(r.out), client);
  EXPECT_EQ(p.header["typ"], "dpop+jwt");
  EXPECT_FALSE(p.header["jwk"].contains("d"));
  EXPECT_EQ(p.payload["htm"], "GET");
  EXPECT_EQ(p.payload["htu"], "https://api.example.no/v1/patients/p-1");
  EXPECT_EQ(p.payload["iat"], 1700000001);
  EXPECT_EQ(p.payload["jti"], "j-1");
  EXPECT_EQ(p.payload["nonce"], "abc");
  // ath: base64url SHA-256 of the token.
  r = Vakt("token dpop --key " + P("client.pem") +
           " --method GET --url https://x/ --token 'Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU'");
  ASSERT_EQ(r.code, 0) << r.err;
  p = VerifyToken(Trim(r.out), client);
  EXPECT_EQ(p.payload["ath"], "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");

  // Inline claims, --jkt given directly, --typ override.
  r = Vakt("token mint --key " + P("issuer.jwk") +
           " --claims '{\"a\":1}' --jkt abc --typ JWT --now 10 --ttl 5");
  ASSERT_EQ(r.code, 0) << r.err;
  t = VerifyToken(Trim(r.out), issuer);
  EXPECT_EQ(t.header["typ"], "JWT");
  EXPECT_EQ(t.payload["a"], 1);
  EXPECT_EQ(t.payload["exp"], 15);
  EXPECT_EQ(t.payload["cnf"]["jkt"], "abc");
}

TEST_F(TokenCli, CertificateBoundToken) {
  Keygen("PS256", "issuer");
  RunResult r = Vakt("token cert --cn demo-client --out " + P("client.crt") + " --key-out " +
                     P("client.key"));
  ASSERT_EQ(r.code, 0) << r.err;
  std::string x5t = Trim(r.out);
  auto expected = bytecode::CertThumbprint(ReadFile(P("client.crt")));
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(x5t, *expected);
  struct stat st;
  ASSERT_EQ(::stat(P("client.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  RunResult tp = Vakt("token thumbprint --cert " + P("client.crt"));
  ASSERT_EQ(tp.code, 0) << tp.err;
  EXPECT_EQ(Trim(tp.out), x5t);

  r = Vakt("token mint --key " + P("issuer.pem") + " --cert " + P("client.crt"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto jws = bytecode::ParseCompactJws(Trim(r.out));
  ASSERT_TRUE(jws.ok());
  EXPECT_EQ(Json::parse(jws->payload_json)["cnf"]["x5t#S256"], x5t);
  r = Vakt("token mint --key " + P("issuer.pem") + " --x5t given");
  ASSERT_EQ(r.code, 0) << r.err;
  jws = bytecode::ParseCompactJws(Trim(r.out));
  ASSERT_TRUE(jws.ok());
  EXPECT_EQ(Json::parse(jws->payload_json)["cnf"]["x5t#S256"], "given");
}

TEST_F(TokenCli, BadInputExitsOne) {
  std::string pub = Write("pub.jwk", Keygen("ES256", "k"));
  std::string garbage =
      Write("garbage.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  struct Case {
    std::string args, fragment;
  } cases[] = {
      {"token mint --key " + P("missing.pem"), "cannot open"},
      {"token mint --key " + garbage, "cannot read a private key"},
      {"token mint --key " + P("k.pem") + " --claims '[1]'", "JSON object"},
      {"token mint --key " + P("k.pem") + " --claims '{'", "not valid JSON"},
      {"token mint --key " + P("k.pem") + " --claims @" + P("missing.json"), "cannot open"},
      {"token mint --key " + P("k.pem") + " --dpop-key " + garbage, "cannot read"},
      {"token mint --key " + P("k.pem") + " --cert " + P("k.pem"), "not a PEM certificate"},
      {"token dpop --key " + garbage + " --method GET --url https://x/", "cannot read"},
      {"token thumbprint " + garbage, "cannot read"},
      {"token thumbprint --cert " + garbage, "not a PEM certificate"},
      {"token jwks " + pub, "no `d`"},  // a public JWK cannot sign
      {"token cert --cn '' --out " + P("c.crt") + " --key-out " + P("c.key"), "common name"},
      {"token keygen --alg ES256 --out " + P("no/such/dir/k.pem"), "cannot write"},
  };
  for (const Case& c : cases) {
    RunResult r = Vakt(c.args);
    EXPECT_EQ(r.code, 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.fragment), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_TRUE(r.out.empty()) << c.args;
  }
  // The claims are nested too deeply to be sensible.
  std::string deep = std::string(40, '[') + std::string(40, ']');
  RunResult r = Vakt("token mint --key " + P("k.pem") + " --claims '{\"a\":" + deep + "}'");
  EXPECT_EQ(r.code, 1);
}

// generate.sh into a scratch directory: three issuer keys in the JWKS, the
// private files git-ignored and 0600, and a rerun replaces every key.
TEST_F(TokenCli, HealthcareGenerateScript) {
  std::string script = std::string(VAKT_SOURCE_DIR) + "/examples/healthcare/keys/generate.sh";
  std::string env = "VAKT_KEYS_DIR=" + dir_.string() + " ";
  RunResult r = Shell(env + "bash " + script + " " + VAKT_BINARY);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  std::string jwks = ReadFile(dir_ / "issuer.jwks.json");
  auto keys = bytecode::ParseJwks(jwks);  // public keys only, or it fails
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->size(), 3u);
  std::set<std::string> algs;
  for (const auto& k : *keys) {
    algs.insert(bytecode::JwsAlgName(k.alg()));
    EXPECT_FALSE(k.kid().empty());
  }
  EXPECT_EQ(algs, (std::set<std::string>{"ES256", "PS256", "EdDSA"}));
  for (const char* f :
       {"issuer-es256.pem", "issuer-ps256.pem", "issuer-eddsa.pem", "issuer-es256.jwk",
        "dpop-client.pem", "client-cert.pem", "client-key.pem"}) {
    struct stat st;
    ASSERT_EQ(::stat((dir_ / "private" / f).c_str(), &st), 0) << f;
    if (std::string(f) != "client-cert.pem") {
      EXPECT_EQ(st.st_mode & 077, 0u) << f;
    }
  }
  // Each private key signs tokens the JWKS verifies.
  RunResult t = Vakt("token mint --key " + (dir_ / "private" / "issuer-eddsa.jwk").string());
  ASSERT_EQ(t.code, 0) << t.err;
  std::string token = Trim(t.out);  // the parsed views point into it
  auto jws = bytecode::ParseCompactJws(token);
  ASSERT_TRUE(jws.ok());
  auto hdr = Json::parse(jws->header_json);
  auto alg = bytecode::ParseAlg(hdr["alg"].get<std::string>());
  ASSERT_TRUE(alg.ok());
  auto key = bytecode::SelectKey(*keys, hdr["kid"].get<std::string>(), *alg);
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  EXPECT_TRUE(bytecode::VerifyJws(**key, *alg, jws->signing_input, jws->signature).ok());

  // Rerunning makes fresh keys and leaves no stray files.
  r = Shell(env + "bash " + script + " " + VAKT_BINARY);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(ReadFile(dir_ / "issuer.jwks.json"), jwks);
  for (const auto& e : fs::directory_iterator(dir_)) {
    std::string name = e.path().filename().string();
    EXPECT_TRUE(name == "issuer.jwks.json" || name == "private") << name;
  }
  // A missing binary is a usage error.
  r = Shell(env + "bash " + script + " " + (dir_ / "no-vakt").string());
  EXPECT_EQ(r.code, 2);
}

// The committed JWKS: exactly the three public issuer keys.
TEST(TokenCliExample, CommittedJwksIsPublicAndComplete) {
  std::string path = std::string(VAKT_SOURCE_DIR) + "/examples/healthcare/keys/issuer.jwks.json";
  std::string jwks = ReadFile(path);
  auto keys = bytecode::ParseJwks(jwks);
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  ASSERT_EQ(keys->size(), 3u);
  std::set<std::string> algs;
  for (const auto& k : *keys) algs.insert(bytecode::JwsAlgName(k.alg()));
  EXPECT_EQ(algs, (std::set<std::string>{"ES256", "PS256", "EdDSA"}));
  std::string gitignore =
      ReadFile(std::string(VAKT_SOURCE_DIR) + "/examples/healthcare/keys/.gitignore");
  EXPECT_NE(gitignore.find("private/"), std::string::npos);
}

}  // namespace
