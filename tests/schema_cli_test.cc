// `vakt validate` as a real process: output lines, exit codes 0 (all valid),
// 1 (some invalid or malformed) and 2 (usage, unreadable file, bad schema),
// strict mode, format assertion, OpenAPI components, and a slice of the
// JSON-Schema-Test-Suite run through the binary.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/vakt_cli_run.h"
#include <sstream>

namespace {

namespace fs = std::filesystem;

using vakt::testing_cli::RunResult;
using vakt::testing_cli::Vakt;

class SchemaCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("vakt_schema_cli_" + std::to_string(::getpid()) + "_" +
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
  std::string D() const { return dir_.string() + "/"; }
  fs::path dir_;
};

const char* kRecord = R"({
  "type": "object", "required": ["text"],
  "properties": {"text": {"type": "string", "minLength": 2}, "when": {"type": "string", "format": "date"}}
})";

TEST_F(SchemaCli, ExitCodesAndOutput) {
  Write("record.json", kRecord);
  Write("ok.json", R"({"text": "hello"})");
  Write("short.json", R"({"text": "h"})");
  Write("dup.json", R"({"text": "hi", "text": "hi"})");
  auto r = Vakt("validate --schema " + D() + "record.json " + D() + "ok.json");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out, D() + "ok.json: valid\n");
  r = Vakt("validate --schema " + D() + "record.json " + D() + "ok.json " + D() + "short.json " + D() + "dup.json");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.out, D() + "ok.json: valid\n" + D() + "short.json: invalid: minLength at /text (" + D() +
                       "record.json#/properties/text/minLength): string has 1 characters, fewer than 2\n" +
                       D() + "dup.json: invalid: malformed JSON: duplicate object key\n");
  // Errors: a missing instance, a missing schema, a bad schema, usage.
  r = Vakt("validate --schema " + D() + "record.json " + D() + "missing.json");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("cannot open"), std::string::npos);
  r = Vakt("validate --schema " + D() + "nope.json " + D() + "ok.json");
  EXPECT_EQ(r.code, 2) << r.out;
  Write("bad.json", R"({"properties": {"text": {"minLength": -1}}})");
  r = Vakt("validate --schema " + D() + "bad.json " + D() + "ok.json");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_EQ(r.out, "vakt: " + D() + "bad.json: #/properties/text/minLength: must be a non-negative integer\n");
  Write("re.json", R"({"pattern": "(?<=a)b"})");
  r = Vakt("validate --schema " + D() + "re.json " + D() + "ok.json");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("pattern `(?<=a)b` is not supported by RE2"), std::string::npos) << r.out;
  r = Vakt("validate " + D() + "ok.json");
  EXPECT_EQ(r.code, 2);
  r = Vakt("validate --schema " + D() + "record.json");
  EXPECT_EQ(r.code, 2);
  r = Vakt("help");
  EXPECT_NE(r.out.find("validate --schema SCHEMA.json"), std::string::npos);
}

TEST_F(SchemaCli, StrictFormatAndOpenApi) {
  Write("record.json", kRecord);
  Write("extra.json", R"({"text": "hello", "admin": true})");
  Write("date.json", R"({"text": "hello", "when": "2024-13-01"})");
  auto r = Vakt("validate --schema " + D() + "record.json " + D() + "extra.json " + D() + "date.json");
  EXPECT_EQ(r.code, 0) << r.out;
  r = Vakt("validate --strict --schema " + D() + "record.json " + D() + "extra.json");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("invalid: additionalProperties at /admin"), std::string::npos) << r.out;
  r = Vakt("validate --format-assert --schema " + D() + "record.json " + D() + "date.json");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("invalid: format at /when"), std::string::npos) << r.out;
  Write("api.yaml", "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths: {}\n"
                    "components:\n  schemas:\n    Note:\n      type: object\n      required: [text]\n"
                    "      properties:\n        text: {type: string, nullable: true}\n");
  Write("note.json", R"({"text": null})");
  Write("nonote.json", R"({})");
  r = Vakt("validate --openapi " + D() + "api.yaml --component Note " + D() + "note.json " + D() + "nonote.json");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.out, D() + "note.json: valid\n" + D() + "nonote.json: invalid: required at root (" + D() +
                       "api.yaml#/components/schemas/Note/required): required property `text` is missing\n");
  r = Vakt("validate --openapi " + D() + "api.yaml --component Nope " + D() + "note.json");
  EXPECT_EQ(r.code, 2) << r.out;
}

// A slice of the JSON-Schema-Test-Suite through the binary: each group's
// schema and data become files, one `vakt validate` per group, and every
// line must say what the suite expects.
TEST_F(SchemaCli, SuiteCasesThroughTheBinary) {
  fs::path dir = fs::path(VAKT_VECTORS_DIR) / "json-schema-test-suite" / "tests" / "draft2020-12";
  if (!fs::exists(dir)) GTEST_SKIP() << "JSON-Schema-Test-Suite not found at " << dir;
  int cases = 0;
  for (const char* file : {"type.json", "minLength.json", "required.json", "properties.json",
                           "uniqueItems.json", "ref.json", "unevaluatedProperties.json"}) {
    std::ifstream in(dir / file);
    nlohmann::json groups = nlohmann::json::parse(in);
    int g = 0;
    for (const auto& group : groups) {
      std::string schema_text = group["schema"].dump();
      // The binary reads files from disk only: leave remote refs to the suite test.
      if (schema_text.find("localhost:1234") != std::string::npos ||
          schema_text.find("json-schema.org/draft/2020-12/schema\"}") != std::string::npos ||
          schema_text.find("\"$ref\":\"https://json-schema.org") != std::string::npos) {
        continue;
      }
      std::string prefix = std::string(file) + "." + std::to_string(g++);
      Write(prefix + ".schema.json", schema_text);
      std::string args = "validate --schema " + D() + prefix + ".schema.json";
      std::vector<bool> expect;
      for (size_t i = 0; i < group["tests"].size(); ++i) {
        std::string name = prefix + ".data" + std::to_string(i) + ".json";
        Write(name, group["tests"][i]["data"].dump());
        args += " " + D() + name;
        expect.push_back(group["tests"][i]["valid"].get<bool>());
      }
      auto r = Vakt(args);
      std::istringstream lines(r.out);
      std::string line;
      size_t i = 0;
      bool any_invalid = false;
      while (std::getline(lines, line) && i < expect.size()) {
        std::string want = D() + prefix + ".data" + std::to_string(i) + ".json: " +
                           (expect[i] ? "valid" : "invalid");
        EXPECT_EQ(line.substr(0, want.size()), want) << group["description"] << ": " << r.out;
        any_invalid |= !expect[i];
        ++i;
        ++cases;
      }
      EXPECT_EQ(i, expect.size()) << r.out;
      EXPECT_EQ(r.code, any_invalid ? 1 : 0) << r.out;
    }
  }
  EXPECT_GT(cases, 150);
}

}  // namespace
