// The `vakt` CLI contract: commands, output formats and exit codes
// (0 ok, 1 errors/failures, 2 usage), run as a real process.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/vakt_cli_run.h"

namespace {

namespace fs = std::filesystem;

using vakt::testing_cli::RunResult;
using vakt::testing_cli::Vakt;

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("vakt_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p.string();
  }
  fs::path dir_;
};

const char* kPolicy =
    "api a \"/v1\" {\n"
    "  route r GET \"/x/{id}\" {\n"
    "    owner: require params.id == token.sub else deny 403 access_denied \"not yours\"\n"
    "  }\n"
    "}\n"
    "test \"own\" {\n"
    "  request {\"method\": \"GET\", \"path\": \"/v1/x/u1\"}\n"
    "  claims {\"sub\": \"u1\"}\n"
    "  expect allow\n"
    "}\n";

TEST_F(Cli, UsageErrorsExitTwo) {
  EXPECT_EQ(Vakt("").code, 2);
  EXPECT_EQ(Vakt("frobnicate").code, 2);
  EXPECT_EQ(Vakt("check").code, 2);
  EXPECT_EQ(Vakt("build x.vakt").code, 2);  // no -o
  EXPECT_EQ(Vakt("check --bogus x.vakt").code, 2);
  EXPECT_EQ(Vakt("eval x.vkb").code, 2);  // no --request
  EXPECT_EQ(Vakt("build x.vakt -o").code, 2);
  EXPECT_EQ(Vakt("check --budget abc x.vakt").code, 2);
  EXPECT_EQ(Vakt("help").code, 0);
  EXPECT_NE(Vakt("version").out.find("vakt "), std::string::npos);
}

TEST_F(Cli, CheckCleanAndBroken) {
  std::string ok = Write("ok.vakt", kPolicy);
  RunResult r = Vakt("check " + ok);
  EXPECT_EQ(r.code, 0) << r.out;
  std::string bad = Write("bad.vakt", "api a \"/v1\" {\n  route GET \"/x\" {\n    require a else deny 403\n    require b == 1 else deny 403\n  }\n}\n");
  r = Vakt("check " + bad);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find(bad + ":3:13: error: unknown name `a`\n      require a else deny 403\n              ^\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find(bad + ":4:13: error: unknown name `b`"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 errors"), std::string::npos) << r.out;
  r = Vakt("check " + (dir_ / "missing.vakt").string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("no such file or directory"), std::string::npos);
}

TEST_F(Cli, CheckDirectoryRecursive) {
  Write("pol/a.vakt", "package p\nconst X = \"u1\"\n");
  Write("pol/sub/b.vakt", "package p\napi a \"/v1\" { route GET \"/x\" { require token.sub == X else deny 403 } }\n");
  Write("pol/readme.txt", "not a policy");
  RunResult r = Vakt("check " + (dir_ / "pol").string());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("2 files, 1 route"), std::string::npos) << r.out;
}

TEST_F(Cli, BuildWritesVerifiedBundleAndEvalDecides) {
  std::string src = Write("p.vakt", kPolicy);
  std::string out = (dir_ / "p.vkb").string();
  RunResult r = Vakt("build " + src + " -o " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("GET /v1/x/{id}"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 routes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("worst-case cost"), std::string::npos) << r.out;
  ASSERT_TRUE(fs::exists(out));

  // Reproducible: a second build is byte-identical.
  std::string out2 = (dir_ / "p2.vkb").string();
  ASSERT_EQ(Vakt("build --quiet " + src + " -o " + out2).code, 0);
  std::ifstream a(out, std::ios::binary), b(out2, std::ios::binary);
  std::stringstream sa, sb;
  sa << a.rdbuf();
  sb << b.rdbuf();
  EXPECT_EQ(sa.str(), sb.str());

  std::string req = Write("req.json", "{\"method\": \"GET\", \"path\": \"/v1/x/u1\"}");
  std::string mine = Write("mine.json", "{\"sub\": \"u1\"}");
  std::string other = Write("other.json", "{\"sub\": \"u2\"}");
  r = Vakt("eval " + out + " --request " + req + " --claims " + mine);
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["decision"], "allow");
  EXPECT_EQ(j["status"], 200);
  EXPECT_EQ(j["route"], "a.r");

  r = Vakt("eval " + out + " --request " + req + " --claims " + other);
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["decision"], "deny");
  EXPECT_EQ(j["status"], 403);
  EXPECT_EQ(j["error"], "access_denied");
  EXPECT_EQ(j["error_description"], "not yours");
  EXPECT_EQ(j["rule"], "a.r.owner");

  // Sources work as well as a bundle.
  r = Vakt("eval " + src + " --request " + req + " --claims " + mine);
  EXPECT_EQ(nlohmann::json::parse(r.out)["decision"], "allow") << r.out;

  // Unknown route: 404.
  std::string req404 = Write("req404.json", "{\"method\": \"GET\", \"path\": \"/v2/x\"}");
  r = Vakt("eval " + out + " --request " + req404);
  j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["status"], 404);

  // Malformed request JSON: a clear error, exit 1.
  std::string badreq = Write("bad.json", "{\"method\": 1}");
  r = Vakt("eval " + out + " --request " + badreq);
  EXPECT_EQ(r.code, 1);
}

TEST_F(Cli, BrokenBundlesRefused) {
  std::string src = Write("p.vakt", kPolicy);
  std::string out = (dir_ / "p.vkb").string();
  ASSERT_EQ(Vakt("build --quiet " + src + " -o " + out).code, 0);
  std::ifstream in(out, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string bytes = ss.str();
  std::string req = Write("req.json", "{\"method\": \"GET\", \"path\": \"/v1/x/u1\"}");
  // Truncated.
  std::string trunc = Write("trunc.vkb", bytes.substr(0, bytes.size() / 2));
  RunResult r = Vakt("eval " + trunc + " --request " + req);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("corruption"), std::string::npos) << r.out;
  // Flipped byte.
  std::string flipped = bytes;
  flipped[flipped.size() - 3] ^= 0x40;
  r = Vakt("disasm " + Write("flip.vkb", flipped));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("checksum"), std::string::npos) << r.out;
  // Newer format version.
  std::string newer = bytes;
  newer[8] = 99;
  r = Vakt("disasm " + Write("newer.vkb", newer));
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("newer"), std::string::npos) << r.out;
}

TEST_F(Cli, TestCommandReportsFailures) {
  std::string dir = (dir_ / "t").string();
  Write("t/p.vakt", kPolicy);
  RunResult r = Vakt("test " + dir);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("1 passed, 0 failed\n"), std::string::npos) << r.out;
  Write("t/more.vakt",
        "test \"wrong\" {\n  request {\"method\": \"GET\", \"path\": \"/v1/x/u1\"}\n  claims {\"sub\": \"u2\"}\n"
        "  expect allow\n}\n"
        "test \"right deny\" {\n  request {\"method\": \"GET\", \"path\": \"/v1/x/u1\"}\n  claims {\"sub\": \"u2\"}\n"
        "  expect deny 403 access_denied\n}\n"
        "test \"wrong status\" {\n  request {\"method\": \"GET\", \"path\": \"/v1/x/u1\"}\n  claims {\"sub\": \"u2\"}\n"
        "  expect deny 401\n}\n");
  r = Vakt("test " + dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("test `wrong`: expected allow, got deny 403 access_denied (rule `a.r.owner`)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("test `wrong status`: expected deny 401, got deny 403 access_denied"),
            std::string::npos)
      << r.out;
  // The last line is the summary.
  EXPECT_TRUE(r.out.ends_with("2 passed, 2 failed\n")) << r.out;
}

TEST_F(Cli, BudgetOnEveryCompilingCommand) {
  std::string rules;
  for (int i = 0; i < 40; ++i) rules += "    require request.method == \"GET\" else deny 403\n";
  std::string src = Write("big.vakt", "api a \"/v1\" {\n  route r GET \"/x\" {\n" + rules + "  }\n}\n");
  std::string req = Write("req.json", "{\"method\": \"GET\", \"path\": \"/v1/x\"}");
  for (const std::string& cmd : {"check " + src, "disasm " + src, "eval " + src + " --request " + req}) {
    RunResult small = Vakt(cmd + " --budget 100");
    EXPECT_EQ(small.code, 1) << cmd << "\n" << small.out;
    EXPECT_NE(small.out.find("over the budget of 100"), std::string::npos) << small.out;
    EXPECT_EQ(Vakt(cmd + " --budget 1000").code, 0) << cmd;
  }
}

TEST_F(Cli, DisasmShowsRoutes) {
  std::string src = Write("p.vakt", kPolicy);
  RunResult r = Vakt("disasm " + src);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("REQUIRE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("a.r.owner"), std::string::npos) << r.out;
}

TEST_F(Cli, FmtRewritesAndChecks) {
  std::string p = Write("f.vakt", "api a \"/v1\"{\nroute GET \"/x\"{\nrequire  1==1 else deny 403 // keep me\n}\n}\n");
  RunResult r = Vakt("fmt --check " + p);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("not formatted"), std::string::npos);
  r = Vakt("fmt " + p);
  EXPECT_EQ(r.code, 0) << r.out;
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_NE(ss.str().find("// keep me"), std::string::npos);
  EXPECT_NE(ss.str().find("require 1 == 1 else deny 403"), std::string::npos) << ss.str();
  r = Vakt("fmt --check " + p);
  EXPECT_EQ(r.code, 0) << r.out;
  std::string broken = Write("broken.vakt", "api a {");
  r = Vakt("fmt " + broken);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("error:"), std::string::npos);
}

// `vakt check` lists each route's ownership rules and body checks, as
// written, in text and (--json) as a document tools can read.
TEST_F(Cli, CheckListsOwnershipRulesAndBodyChecks) {
  std::string policy = std::string(VAKT_SOURCE_DIR) + "/examples/healthcare/policy";
  RunResult r = Vakt("check " + policy);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("ok: 6 files, 6 routes\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("route records.get_patient: GET /v1/patients/{patient_id:Id}\n"
                       "  owns params.patient_id (request, rule records.get_patient.owner, "
                       "else deny 403 access_denied)\n"
                       "    == token.patient_id if token.role == \"patient\"\n"
                       "    in token.care_team if token.role == \"clinician\"\n"
                       "  response body 200: schema healthcare.Patient, rule "
                       "records.get_patient.body.200\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  owns response.json.patient_id (response, rule "
                       "records.get_record.record_owner, else deny 403 access_denied)\n"
                       "    == params.patient_id\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("  body: schema healthcare.NewRecord (strict), rule "
                       "records.create_record.body\n"
                       "    content types application/json, application/*+json\n"
                       "    max_bytes 65536, max_depth 64, max_properties 1000, max_items 10000, "
                       "max_string 65536\n"),
            std::string::npos)
      << r.out;
  // A route with neither (health, delete_record) is not listed.
  EXPECT_EQ(r.out.find("route records.health"), std::string::npos) << r.out;

  r = Vakt("check --json " + policy);
  ASSERT_EQ(r.code, 0) << r.out;
  size_t start = r.out.find("{\n  \"files\"");
  ASSERT_NE(start, std::string::npos) << r.out;
  nlohmann::json j = nlohmann::json::parse(r.out.substr(start), nullptr, false);
  ASSERT_TRUE(j.is_object()) << r.out;
  EXPECT_EQ(j["ok"], true);
  EXPECT_EQ(j["files"], 6);
  ASSERT_EQ(j["routes"].size(), 6u);
  const nlohmann::json* get_record = nullptr;
  const nlohmann::json* create_record = nullptr;
  for (const auto& route : j["routes"]) {
    if (route["name"] == "records.get_record") get_record = &route;
    if (route["name"] == "records.create_record") create_record = &route;
    if (route["name"] == "records.health") {
      EXPECT_TRUE(route["ownership"].empty());
      EXPECT_TRUE(route["bodies"].empty());
    }
  }
  ASSERT_NE(get_record, nullptr);
  ASSERT_NE(create_record, nullptr);
  EXPECT_EQ((*get_record)["method"], "GET");
  EXPECT_EQ((*get_record)["path"], "/v1/patients/{patient_id:Id}/records/{record_id:Id}");
  const auto& owns = (*get_record)["ownership"];
  ASSERT_EQ(owns.size(), 2u) << owns.dump();
  EXPECT_EQ(owns[0]["side"], "request");
  EXPECT_EQ(owns[0]["object"], "params.patient_id");
  EXPECT_EQ(owns[0]["clauses"][0],
            (nlohmann::json{{"op", "=="}, {"value", "token.patient_id"},
                            {"if", "token.role == \"patient\""}}));
  EXPECT_EQ(owns[0]["clauses"][1]["op"], "in");
  EXPECT_EQ(owns[0]["clauses"][1]["value"], "token.care_team");
  EXPECT_EQ(owns[0]["deny"]["status"], 403);
  EXPECT_EQ(owns[1]["side"], "response");
  EXPECT_EQ(owns[1]["rule"], "records.get_record.record_owner");
  EXPECT_EQ(owns[1]["object"], "response.json.patient_id");
  EXPECT_EQ(owns[1]["clauses"][0],
            (nlohmann::json{{"op", "=="}, {"value", "params.patient_id"}, {"if", nullptr}}));
  ASSERT_EQ((*get_record)["bodies"].size(), 1u);
  const auto& resp_body = (*get_record)["bodies"][0];
  EXPECT_EQ(resp_body["side"], "response");
  EXPECT_EQ(resp_body["status"], "200");
  EXPECT_EQ(resp_body["schema"], "healthcare.Record");
  EXPECT_EQ(resp_body["strict"], false);
  ASSERT_EQ((*create_record)["bodies"].size(), 1u);
  const auto& req_body = (*create_record)["bodies"][0];
  EXPECT_EQ(req_body["side"], "request");
  EXPECT_FALSE(req_body.contains("status"));
  EXPECT_EQ(req_body["schema"], "healthcare.NewRecord");
  EXPECT_EQ(req_body["strict"], true);
  EXPECT_EQ(req_body["limits"]["max_bytes"], 65536);
  EXPECT_EQ(req_body["limits"]["max_depth"], 64);
  EXPECT_EQ(req_body["content_types"],
            (nlohmann::json{"application/json", "application/*+json"}));
  EXPECT_TRUE(req_body["accept_unchecked"].empty());

  // Errors: exit 1, and --json says so on stdout.
  std::string bad = Write("bad.vakt", "api a \"/v1\" {\n  route GET \"/x\" { require a else deny 403 }\n}\n");
  r = Vakt("check --json " + bad);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("\"ok\": false"), std::string::npos) << r.out;
}

}  // namespace

// FAPI 2.0: `vakt check` shows every loosening of the fapi2 profile as a
// warning (exit 0), refuses one written without `loosen` (exit 1), and reads
// an issuer's JWKS relative to the .vakt file that names it.
TEST_F(Cli, CheckPrintsFapiLoosening) {
  std::ifstream keys(std::string(VAKT_SOURCE_DIR) + "/examples/healthcare/keys/issuer.jwks.json",
                     std::ios::binary);
  std::stringstream jwks;
  jwks << keys.rdbuf();
  ASSERT_FALSE(jwks.str().empty());
  Write("pol/keys/idp.jwks.json", jwks.str());
  auto policy = [](const std::string& use) {
    return "issuer idp {\n"
           "  url = \"https://idp.example\"\n"
           "  audience = \"https://api.example\"\n"
           "  jwks = \"keys/idp.jwks.json\"\n"
           "}\n"
           "api a \"/v1\" {\n"
           "  route r GET \"/x\" {\n"
           "    " +
           use +
           "\n"
           "  }\n"
           "}\n";
  };
  std::string src =
      Write("pol/p.vakt", policy("use fapi2 { loosen sender = \"none\" scope = \"read\" }"));
  RunResult r = Vakt("check " + src);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(src + ":8:17: warning: fapi2 loosened: tokens without a sender constraint "
                             "(plain bearer tokens) are accepted\n"
                             "      use fapi2 { loosen sender = \"none\" scope = \"read\" }\n"
                             "                  ^\n"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("0 errors, 1 warning\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ok: 1 file, 1 route\n"), std::string::npos) << r.out;
  // The directory form reads the same JWKS (and takes no .json for a policy).
  r = Vakt("check " + (dir_ / "pol").string());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("fapi2 loosened"), std::string::npos) << r.out;

  // The same loosening without `loosen`: an error that says how to write it.
  Write("pol/p.vakt", policy("use fapi2 { sender = \"none\" scope = \"read\" }"));
  r = Vakt("check " + src);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(src + ":8:17: error: `sender` loosens the fapi2 profile (tokens without a "
                             "sender constraint (plain bearer tokens) are accepted); write `loosen "
                             "sender = ...` to do it on purpose\n"),
            std::string::npos)
      << r.out;

  // No loosening: no warning at all.
  Write("pol/p.vakt", policy("use fapi2 { sender = \"dpop\" scope = \"read\" }"));
  r = Vakt("check " + src);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.find("warning"), std::string::npos) << r.out;

  // A JWKS that is not beside the policy.
  fs::remove(dir_ / "pol" / "keys" / "idp.jwks.json");
  r = Vakt("check " + src);
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find(src + ":4:10: error: cannot read the JWKS `keys/idp.jwks.json`: "),
            std::string::npos)
      << r.out;
}
