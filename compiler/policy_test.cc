// Policy test runner; see policy_test.h.
#include "compiler/policy_test.h"

#include <set>

#include <nlohmann/json.hpp>

#include "bytecode/request_json.h"
#include "bytecode/vm.h"
#include "compiler/interp.h"

namespace vakt::compiler {

std::string DescribeDecision(bool allow, int status, const std::string& error) {
  if (allow) return "allow";
  std::string s = "deny " + std::to_string(status);
  if (!error.empty()) s += " " + error;
  return s;
}

std::vector<TestOutcome> RunPolicyTests(const Compilation& c) {
  std::vector<TestOutcome> out;
  auto loaded = bytecode::Bundle::Load(c.bytes);
  std::set<std::string> names;
  bytecode::EvalScratch scratch;
  for (const auto& file : c.files) {
    for (const auto& t : file->tests) {
      TestOutcome o;
      o.name = t.name;
      o.loc = t.loc;
      auto fail = [&](std::string msg) {
        o.passed = false;
        o.message = std::move(msg);
        out.push_back(o);
      };
      if (!names.insert(t.name).second) {
        fail("duplicate test name `" + t.name + "`");
        continue;
      }
      if (!loaded.ok()) {
        fail("bundle does not load: " + loaded.status().ToString());
        continue;
      }
      if (!t.has_expect) {
        fail("test has no `expect`");
        continue;
      }
      if (t.request_json.empty()) {
        fail("test has no `request`");
        continue;
      }
      auto req = bytecode::ParseRequestJson(t.request_json);
      if (!req.ok()) {
        fail("bad request: " + req.status().message());
        continue;
      }
      if (t.now) {
        req->time = *t.now;
        req->has_time = true;
      }
      std::unique_ptr<bytecode::JsonClaims> claims;
      nlohmann::json claims_json;
      if (!t.claims_json.empty()) {
        auto cl = bytecode::JsonClaims::Parse(t.claims_json);
        if (!cl.ok()) {
          fail("bad claims: " + cl.status().message());
          continue;
        }
        claims = std::move(cl).value();
        claims_json = nlohmann::json::parse(t.claims_json, nullptr, false);
      }
      std::optional<bytecode::OwnedResponse> resp;
      if (!t.response_json.empty()) {
        auto r = bytecode::ParseResponseJson(t.response_json);
        if (!r.ok()) {
          fail("bad response: " + r.status().message());
          continue;
        }
        resp = std::move(r).value();
      }
      bytecode::HttpRequest view = req->View();
      bytecode::Decision d = bytecode::DecideRequest(**loaded, view, claims.get(), scratch);
      const nlohmann::json* cj = claims ? &claims_json : nullptr;
      RefDecision ref = RefEvaluate(c.ir, view, cj, nullptr);
      bool allow = d.allow;
      int status = d.status;
      std::string error(d.error);
      std::string rule(d.rule);
      if (d.allow && resp) {
        bytecode::HttpResponse rv = resp->View();
        bytecode::Decision dr = bytecode::DecideResponse(**loaded, view, claims.get(), rv, scratch);
        allow = dr.allow;
        status = dr.status;
        error = std::string(dr.error);
        rule = std::string(dr.rule);
        if (ref.allow) ref = RefEvaluate(c.ir, view, cj, &rv);
      }
      if (ref.allow != allow || (!allow && (ref.status != status || ref.rule != rule))) {
        fail("the VM (" + DescribeDecision(allow, status, error) + " by `" + rule +
             "`) and the reference evaluator (" +
             DescribeDecision(ref.allow, ref.status, ref.error) + " by `" + ref.rule +
             "`) disagree; please report this as a bug");
        continue;
      }
      const auto& ex = t.expect;
      bool match = ex.allow == allow;
      if (match && !allow) {
        if (ex.status != 0 && ex.status != status) match = false;
        if (!ex.error.empty() && ex.error != error) match = false;
      }
      if (!match) {
        std::string got = DescribeDecision(allow, status, error);
        if (!allow && !rule.empty()) got += " (rule `" + rule + "`)";
        fail("expected " + DescribeDecision(ex.allow, ex.status, ex.error) + ", got " + got);
        continue;
      }
      o.passed = true;
      out.push_back(o);
    }
  }
  return out;
}

}  // namespace vakt::compiler
