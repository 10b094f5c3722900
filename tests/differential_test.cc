// Differential tests: random policies (as source text, so the whole
// front end runs) and random requests are decided by the VM and by the
// reference evaluator over the IR (compiler/interp.h); every decision must
// agree on allow/deny, status, error and deciding rule. After re2's
// tester.h, which checks every engine against the backtracker.
//
// Deterministic: fixed seeds; a failure prints the policy and request.
#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "bytecode/request_json.h"
#include "bytecode/vm.h"
#include "compiler/compile.h"
#include "compiler/interp.h"

namespace vakt::compiler {
namespace {

class Gen {
 public:
  explicit Gen(uint32_t seed) : rng_(seed) {}

  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  bool Coin(int percent = 50) { return Pick(100) < percent; }
  template <typename T>
  const T& One(const std::vector<T>& v) { return v[static_cast<size_t>(Pick(static_cast<int>(v.size())))]; }

  const std::vector<std::string> kWords = {"a", "b", "ab", "GET", "x-y", "", "Admin", "p-1", "p-2", " sp "};
  const std::vector<std::string> kHeaders = {"h0", "h1", "x-role"};
  const std::vector<std::string> kQuery = {"q0", "q1"};
  const std::vector<std::string> kRegexes = {"^a", "b$", "^[a-z]+$", "[0-9]", "^p-[0-9]$", "x|y"};

  std::string Quote(const std::string& s) { return nlohmann::json(s).dump(); }

  std::string Str(int d, const std::vector<std::string>& params) {
    int k = Pick(d > 2 ? 5 : 12);
    switch (k) {
      case 0: case 1: return Quote(One(kWords));
      case 2: return params.empty() ? Quote("p") : "params." + One(params);
      case 3: return "token.s" + std::to_string(Pick(2));
      case 4: return "request.method";
      case 5: return "request.headers[\"" + One(kHeaders) + "\"]";
      case 6: return "request.query." + One(kQuery);
      case 7: return "lower(" + Str(d + 1, params) + ")";
      case 8: return "upper(" + Str(d + 1, params) + ")";
      case 9: return "trim(" + Str(d + 1, params) + ")";
      case 10: return "(" + Str(d + 1, params) + " + " + Str(d + 1, params) + ")";
      default: return "request.path";
    }
  }

  std::string Int(int d, const std::vector<std::string>& params) {
    int k = Pick(d > 2 ? 3 : 9);
    switch (k) {
      case 0: return std::to_string(Pick(7) - 2);
      case 1: return "token.n" + std::to_string(Pick(2));
      case 2: return "len(" + Str(d + 1, params) + ")";
      case 3: return "(" + Int(d + 1, params) + " + " + Int(d + 1, params) + ")";
      case 4: return "(" + Int(d + 1, params) + " - " + Int(d + 1, params) + ")";
      case 5: return "(" + Int(d + 1, params) + " * " + Int(d + 1, params) + ")";
      case 6: return "(" + Int(d + 1, params) + " / " + Int(d + 1, params) + ")";
      case 7: return "(" + Int(d + 1, params) + " % " + Int(d + 1, params) + ")";
      default: return "-" + Int(d + 1, params);
    }
  }

  std::string Bool(int d, const std::vector<std::string>& params) {
    int k = Pick(d > 2 ? 9 : 18);
    switch (k) {
      case 0: return Str(d + 1, params) + " == " + Str(d + 1, params);
      case 1: return Str(d + 1, params) + " != " + Str(d + 1, params);
      case 2: return Int(d + 1, params) + " < " + Int(d + 1, params);
      case 3: return Int(d + 1, params) + " >= " + Int(d + 1, params);
      case 4: return "has(request.headers[\"" + One(kHeaders) + "\"])";
      case 5: return "has(token.s" + std::to_string(Pick(2)) + ")";
      case 6: return Str(d + 1, params) + " in [" + Quote(One(kWords)) + ", " + Quote(One(kWords)) + "]";
      case 7: return Str(d + 1, params) + " matches " + Quote(One(kRegexes));
      case 8: return "token.flag";
      case 9: return "(" + Bool(d + 1, params) + " && " + Bool(d + 1, params) + ")";
      case 10: return "(" + Bool(d + 1, params) + " || " + Bool(d + 1, params) + ")";
      case 11: return "!(" + Bool(d + 1, params) + ")";
      case 12: return "starts_with(" + Str(d + 1, params) + ", " + Str(d + 1, params) + ")";
      case 13: return "contains(" + Str(d + 1, params) + ", " + Str(d + 1, params) + ")";
      case 14: return Quote(One(kWords)) + " in split(" + Str(d + 1, params) + ", \"-\")";
      case 15: return "token.tags == [" + Quote(One(kWords)) + "]";
      case 16: return Str(d + 1, params) + " in token.tags";
      default: return "now - token.iat < 5m";
    }
  }

  struct Route {
    std::string method;
    std::vector<std::string> segs;  // "lit" or "{p}" / "{p:Shape}"
    std::vector<std::string> params;
  };

  std::string Policy(std::vector<Route>* routes) {
    std::ostringstream out;
    out << "shape Small = r\"^[a-z0-9-]{1,4}$\"\n";
    out << "claims {\n  s0: string\n  s1: string\n  n0: int\n  n1: int\n  flag: bool\n  tags: list<string>\n}\n";
    if (Coin()) {
      out << "profile common {\n  c: require " << Bool(0, {}) << " else deny 401 invalid_token \"c\"\n}\n";
    } else {
      out << "profile common {}\n";
    }
    out << "api t \"/t\" {\n";
    if (Coin(30)) out << "  use common\n";
    int nroutes = 1 + Pick(5);
    const std::vector<std::string> lits = {"a", "b", "c"};
    for (int i = 0; i < nroutes; ++i) {
      Route r;
      r.method = Coin(70) ? "GET" : "POST";
      int nseg = 1 + Pick(3);
      for (int s = 0; s < nseg; ++s) {
        if (Coin(40)) {
          std::string p = "p" + std::to_string(r.params.size());
          r.params.push_back(p);
          // One shape per trie position: parameters at a position share it.
          r.segs.push_back("{" + p + (s == 1 ? ":Small" : "") + "}");
        } else {
          r.segs.push_back(One(lits));
        }
      }
      std::string path;
      for (const auto& s : r.segs) path += "/" + s;
      std::string key = r.method + path;
      for (auto& c : key) {
        if (c == '{') c = '<';
      }
      bool dup = false;
      for (const auto& o : *routes) {
        if (o.method != r.method || o.segs.size() != r.segs.size()) continue;
        bool same = true;
        for (size_t k = 0; k < o.segs.size(); ++k) {
          bool pa = o.segs[k][0] == '{', pb = r.segs[k][0] == '{';
          same &= pa == pb && (pa || o.segs[k] == r.segs[k]);
        }
        dup |= same;
      }
      if (dup) continue;
      out << "  route r" << i << " " << r.method << " \"" << path << "\" {\n";
      if (Coin(30)) out << "    use common\n";
      int nrules = Pick(4);
      for (int k = 0; k < nrules; ++k) {
        static const std::vector<std::string> denies = {"deny 403 access_denied \"no\"",
                                                        "deny 401 invalid_token \"tok\"",
                                                        "deny 400 invalid_request"};
        if (Coin(80)) {
          out << "    k" << k << ": require " << Bool(0, r.params) << " else " << One(denies) << "\n";
        } else {
          out << "    k" << k << ": " << One(denies) << " if " << Bool(0, r.params) << "\n";
        }
      }
      out << "  }\n";
      routes->push_back(r);
    }
    out << "}\n";
    return out.str();
  }

  std::string Request(const std::vector<Route>& routes) {
    nlohmann::json req;
    req["method"] = Coin(80) ? "GET" : (Coin() ? "POST" : "DELETE");
    std::string path = "/t";
    if (!routes.empty() && Coin(85)) {
      const Route& r = One(routes);
      for (const auto& s : r.segs) {
        if (s[0] == '{') {
          static const std::vector<std::string> vals = {"a", "p-1", "b", "zzzzzz", "A", "x_y", "%41"};
          path += "/" + One(vals);
        } else {
          path += "/" + (Coin(90) ? s : std::string("c"));
        }
      }
      if (Coin(10)) path += "/";
      if (Coin(5)) path = "/t//" + path.substr(3);
    } else {
      path += Coin() ? "/zz" : "/../x";
    }
    if (Coin(40)) {
      path += "?" + One(kQuery) + "=" + One(std::vector<std::string>{"a", "b", "p-1", "%20x"});
      if (Coin()) path += "&" + One(kQuery) + "=GET";
    }
    req["path"] = path;
    nlohmann::json headers = nlohmann::json::object();
    for (const auto& h : kHeaders) {
      if (Coin(50)) {
        std::string name = h;
        if (Coin(30)) name[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(name[0])));
        headers[name] = One(kWords);
      }
    }
    req["headers"] = headers;
    req["time"] = 1700000000;
    return req.dump();
  }

  std::string Claims() {
    nlohmann::json c = nlohmann::json::object();
    if (Coin(80)) c["s0"] = One(kWords);
    if (Coin(70)) c["s1"] = Coin(90) ? nlohmann::json(One(kWords)) : nlohmann::json(5);
    if (Coin(80)) c["n0"] = Pick(5) - 1;
    if (Coin(70)) c["n1"] = Coin(95) ? nlohmann::json(Pick(3)) : nlohmann::json(9223372036854775807LL);
    if (Coin(70)) c["flag"] = Coin(90) ? nlohmann::json(Coin()) : nlohmann::json("yes");
    if (Coin(70)) {
      nlohmann::json tags = nlohmann::json::array();
      for (int i = Pick(3); i > 0; --i) tags.push_back(One(kWords));
      if (Coin(10)) tags.push_back(3);
      c["tags"] = tags;
    }
    if (Coin(80)) c["iat"] = 1700000000 - Pick(600);
    return c.dump();
  }

 private:
  std::mt19937 rng_;
};

TEST(Differential, VmAgreesWithReferenceEvaluator) {
  int policies = 0, decisions = 0, allows = 0, errors = 0;
  for (uint32_t seed = 1; seed <= 1000; ++seed) {
    Gen g(seed);
    std::vector<Gen::Route> routes;
    std::string policy = g.Policy(&routes);
    SourceSet s;
    AddSource(s, "gen.vakt", policy);
    dsl::Diagnostics d;
    auto c = Compile(s, {}, d);
    if (d.HasErrors()) {
      // The generator only makes well-typed policies.
      ADD_FAILURE() << "seed " << seed << " did not compile:\n" << d.Format() << "\n" << policy;
      continue;
    }
    ++policies;
    auto bundle = bytecode::Bundle::Load(c->bytes);
    ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
    bytecode::EvalScratch scratch;
    for (int i = 0; i < 60; ++i) {
      std::string req_json = g.Request(routes);
      std::string claims_json = g.Claims();
      auto req = bytecode::ParseRequestJson(req_json);
      ASSERT_TRUE(req.ok()) << req_json;
      bool with_claims = g.Coin(85);
      std::unique_ptr<bytecode::JsonClaims> claims;
      nlohmann::json cj = nlohmann::json::parse(claims_json);
      if (with_claims) claims = std::move(bytecode::JsonClaims::Parse(claims_json)).value();
      auto view = req->View();
      bytecode::Decision vm = bytecode::DecideRequest(**bundle, view, claims.get(), scratch);
      RefDecision ref = RefEvaluate(c->ir, view, with_claims ? &cj : nullptr, nullptr);
      ++decisions;
      allows += vm.allow;
      errors += !ref.detail.empty();
      bool same = vm.allow == ref.allow && vm.status == ref.status &&
                  (vm.allow || (vm.rule == ref.rule && vm.error == ref.error));
      if (!same) {
        ADD_FAILURE() << "seed " << seed << " request " << i << "\npolicy:\n" << policy
                      << "\nrequest: " << req_json << "\nclaims: " << (with_claims ? claims_json : "none")
                      << "\nvm:  " << bytecode::DecisionToJson(vm) << "\nref: allow=" << ref.allow
                      << " status=" << ref.status << " error=" << ref.error << " rule=" << ref.rule
                      << " detail=" << ref.detail;
        return;
      }
    }
  }
  // The generator must exercise both outcomes and the error path.
  EXPECT_EQ(policies, 1000);
  EXPECT_GT(allows, decisions / 20);
  EXPECT_LT(allows, decisions - decisions / 20);
  EXPECT_GT(errors, decisions / 50);
  std::cout << policies << " policies, " << decisions << " decisions, " << allows << " allowed, "
            << errors << " evaluation errors\n";
}


// Ownership rules, relation lookups and JSON bodies: random `owns`
// statements over path, query and body objects, with clauses on claims and
// on string and list relations (present and missing keys), decided on
// random requests and responses (bodies valid, malformed or repeating a
// member) by both evaluators.
TEST(Differential, OwnershipRelationsAndJsonBodiesAgree) {
  const std::vector<std::string> ids = {"p-1", "p-2", "p-3", "x", ""};
  const std::string teams = R"({"anna": ["p-1"], "bob": ["p-1", "p-2"], "eva": []})";
  const std::string owner_of = R"({"r-1": "p-1", "r-2": "p-2", "p-3": "p-3"})";
  AssetReader assets = [&](const dsl::SourceFile&, const std::string& path) -> Result<std::string> {
    if (path == "teams.json") return teams;
    if (path == "owner.json") return owner_of;
    return NotFound("no such file");
  };
  int decisions = 0, allows = 0, errors = 0;
  for (uint32_t seed = 1; seed <= 300; ++seed) {
    Gen g(seed);
    auto value = [&](bool list) -> std::string {
      if (list) {
        switch (g.Pick(4)) {
          case 0: return "token.tags";
          case 1: return "teams[token.s0]";
          case 2: return "teams[params.p0]";
          default: return "teams[request.json.who]";
        }
      }
      switch (g.Pick(5)) {
        case 0: return "token.s0";
        case 1: return "token.s1";
        case 2: return "owner_of[params.p0]";
        case 3: return "owner_of[token.s0]";
        default: return g.Quote(g.One(ids));
      }
    };
    auto clause = [&]() {
      bool in = g.Coin();
      std::string c = std::string(in ? "in " : "== ") + value(in);
      if (g.Coin(40)) {
        c += " if token.s1 == " + g.Quote(g.One(ids));
      } else if (g.Coin(15)) {
        c += " if has(owner_of[token.s0])";
      }
      return c;
    };
    auto object = [&](bool response) -> std::string {
      switch (g.Pick(response ? 5 : 4)) {
        case 0: case 1: return "params.p0";
        case 2: return "request.query.q0";
        case 3: return "request.json.patient.id";
        default: return "response.json.patient_id";
      }
    };
    std::ostringstream pol;
    pol << "claims {\n  s0: string\n  s1: string\n  tags: list<string>\n}\n";
    pol << "relation teams: list<string> = \"teams.json\"\n";
    pol << "relation owner_of: string = \"owner.json\"\n";
    pol << "api t \"/t\" {\n  route r GET \"/x/{p0}\" {\n";
    for (int k = g.Pick(2) + 1; k > 0; --k) {
      pol << "    o" << k << ": owns " << object(false) << " {\n";
      for (int n = g.Pick(3) + 1; n > 0; --n) pol << "      " << clause() << "\n";
      pol << "    }" << (g.Coin() ? " else deny 404 not_found" : "") << "\n";
    }
    if (g.Coin()) {
      pol << "    on response {\n      owns " << object(true) << " { " << clause() << " }\n    }\n";
    }
    pol << "  }\n}\n";
    std::string policy = pol.str();
    SourceSet s;
    AddSource(s, "own.vakt", policy);
    dsl::Diagnostics d;
    CompileOptions opts;
    opts.read_asset = assets;
    auto c = Compile(s, opts, d);
    ASSERT_FALSE(d.HasErrors()) << "seed " << seed << ":\n" << d.Format() << "\n" << policy;
    auto bundle = bytecode::Bundle::Load(c->bytes);
    ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
    bytecode::EvalScratch scratch;
    for (int i = 0; i < 40; ++i) {
      nlohmann::json req;
      req["method"] = "GET";
      req["path"] = "/t/x/" + g.One(std::vector<std::string>{"p-1", "p-1", "p-2", "p-3", "r-1"}) +
                    (g.Coin() ? "?q0=" + g.One(std::vector<std::string>{"p-1", "p-2", "bob"}) : "");
      static const std::vector<std::string> bodies = {
          R"({"patient": {"id": "p-1"}, "who": "bob"})", R"({"patient": {"id": "p-2"}, "who": "anna"})",
          R"({"patient": {"id": 7}})", R"({"patient": {"id": "p-1", "id": "p-2"}})",
          R"({"patient": )", "", R"([1, 2])", R"({"patient": {"id": "p-3"}, "who": "nobody"})"};
      req["body"] = g.One(bodies);
      nlohmann::json cj = nlohmann::json::object();
      if (g.Coin(90)) {
        cj["s0"] = g.One(std::vector<std::string>{"anna", "bob", "eva", "p-1", "p-1", "p-2", "r-1"});
      }
      if (g.Coin(80)) cj["s1"] = g.One(ids);
      if (g.Coin(70)) cj["tags"] = g.Coin() ? nlohmann::json{"p-1"} : nlohmann::json{"p-2", "p-3"};
      auto parsed = bytecode::ParseRequestJson(req.dump());
      ASSERT_TRUE(parsed.ok()) << req.dump();
      auto claims = std::move(bytecode::JsonClaims::Parse(cj.dump())).value();
      auto view = parsed->View();
      bytecode::Decision vm = bytecode::DecideRequest(**bundle, view, claims.get(), scratch);
      RefDecision ref = RefEvaluate(c->ir, view, &cj, nullptr);
      nlohmann::json resp_json;
      std::optional<bytecode::OwnedResponse> resp;
      if (vm.allow && ref.allow) {
        static const std::vector<std::string> rbodies = {
            R"({"patient_id": "p-1"})", R"({"patient_id": "p-2"})", R"({"patient_id": "p-1", "patient_id": "p-1"})",
            "<html/>", R"({"other": 1})"};
        resp_json["status"] = 200;
        resp_json["body"] = g.One(rbodies);
        resp = std::move(bytecode::ParseResponseJson(resp_json.dump())).value();
        auto rv = resp->View();
        vm = bytecode::DecideResponse(**bundle, view, claims.get(), rv, scratch);
        ref = RefEvaluate(c->ir, view, &cj, &rv);
      }
      ++decisions;
      allows += vm.allow;
      errors += !ref.detail.empty();
      bool same = vm.allow == ref.allow && vm.status == ref.status &&
                  (vm.allow || (vm.rule == ref.rule && vm.error == ref.error));
      ASSERT_TRUE(same) << "seed " << seed << " request " << i << "\npolicy:\n" << policy
                        << "\nrequest: " << req.dump() << "\nclaims: " << cj.dump()
                        << "\nresponse: " << resp_json.dump()
                        << "\nvm:  " << bytecode::DecisionToJson(vm) << "\nref: allow=" << ref.allow
                        << " status=" << ref.status << " rule=" << ref.rule << " detail=" << ref.detail;
    }
  }
  EXPECT_GT(allows, decisions / 50);
  EXPECT_LT(allows, decisions - decisions / 20);
  EXPECT_GT(errors, decisions / 50);
  std::cout << decisions << " ownership decisions, " << allows << " allowed, " << errors
            << " evaluation errors\n";
}

}  // namespace
}  // namespace vakt::compiler

namespace vakt::compiler {
namespace {

// Schema constraints: random `schema` declarations (a file, inline, strict
// or not, format assertions) and `body` checks (limits, accept lists,
// response groups with exact, default statuses), decided on random bodies
// and content types (valid, invalid, malformed, duplicate keys, oversize,
// not JSON) by both evaluators, which must agree on the decision, the rule
// and the description. Some routes also own `request.json.id` (and
// `response.json.id`): one shared parse in the VM, two in the evaluator.
TEST(Differential, SchemaBodiesAgree) {
  const std::string item = R"({"type":"object","properties":{"id":{"type":"string","pattern":"^[a-z]-[0-9]$"},
    "n":{"type":"integer","minimum":0,"maximum":9},"at":{"type":"string","format":"date"}},"required":["id"]})";
  AssetReader assets = [&](const dsl::SourceFile&, const std::string& path) -> Result<std::string> {
    if (path == "item.json") return item;
    return NotFound("no such file");
  };
  int decisions = 0, allows = 0, denies413 = 0, denies415 = 0, denies502 = 0;
  for (uint32_t seed = 1; seed <= 150; ++seed) {
    Gen g(seed);
    std::ostringstream pol;
    pol << "schema Item = \"item.json\"" << (g.Coin() ? " { strict = true }" : "")
        << (g.Coin() ? "" : "\nschema Fmt = \"item.json\" { format = true }") << "\n";
    pol << "schema List = { \"type\": \"array\", \"items\": { \"type\": \"integer\" }, \"maxItems\": 3 }\n";
    bool has_fmt = pol.str().find("Fmt") != std::string::npos;
    auto name = [&]() -> std::string {
      int k = g.Pick(has_fmt ? 3 : 2);
      return k == 0 ? "Item" : k == 1 ? "List" : "Fmt";
    };
    pol << "api t \"/t\" {\n  route r POST \"/x\" {\n";
    // Some routes also read the body (`owns request.json.id`), before or
    // after the check, so the VM shares one parse between them while the
    // reference evaluator parses twice. Drawn from another generator so that
    // the rest of each seed's policy stays as it was.
    Gen og(seed + 100000);
    const int owns_at = og.Pick(4);  // 0 or 3 none, 1 before the body, 2 after
    const bool owns_response = og.Coin(40);
    const char* kOwns = "    owner: owns request.json.id { == \"a-1\" }\n";
    if (owns_at == 1) pol << kOwns;
    if (g.Coin(80)) {
      pol << "    body " << name();
      std::vector<std::string> settings;
      if (g.Coin(30)) settings.push_back("max_bytes = " + std::to_string(16 + g.Pick(64)));
      if (g.Coin(20)) settings.push_back("max_depth = " + std::to_string(1 + g.Pick(3)));
      if (g.Coin(20)) settings.push_back("max_items = " + std::to_string(1 + g.Pick(4)));
      if (g.Coin(20)) settings.push_back("max_properties = " + std::to_string(1 + g.Pick(3)));
      if (g.Coin(20)) settings.push_back("max_string = " + std::to_string(1 + g.Pick(8)));
      if (g.Coin(30)) settings.push_back("strict = " + std::string(g.Coin() ? "true" : "false"));
      if (g.Coin(30)) settings.push_back("accept = [\"text/plain\"]");
      if (!settings.empty()) {
        pol << " {";
        for (const auto& s : settings) pol << " " << s;
        pol << " }";
      }
      pol << "\n";
    }
    if (owns_at == 2) pol << kOwns;
    if (g.Coin(70)) {
      pol << "    on response {\n";
      if (owns_response) pol << "      resp_owner: owns response.json.id { == \"a-1\" }\n";
      std::vector<std::string> statuses = {"200", "201", "404", "default"};
      for (const auto& st : statuses) {
        if (g.Coin(50)) pol << "      body " << st << " " << name() << "\n";
      }
      pol << "    }\n";
    }
    pol << "  }\n}\n";
    std::string policy = pol.str();
    SourceSet s;
    AddSource(s, "schemas.vakt", policy);
    dsl::Diagnostics d;
    CompileOptions opts;
    opts.read_asset = assets;
    auto c = Compile(s, opts, d);
    ASSERT_FALSE(d.HasErrors()) << "seed " << seed << ":\n" << d.Format() << "\n" << policy;
    auto bundle = bytecode::Bundle::Load(c->bytes);
    ASSERT_TRUE(bundle.ok()) << bundle.status().ToString();
    bytecode::EvalScratch scratch;
    static const std::vector<std::string> bodies = {
        R"({"id":"a-1"})", R"({"id":"a-1","n":3,"at":"2024-02-29"})", R"({"id":"a-1","at":"2023-02-29"})",
        R"({"id":"A1"})", R"({"id":"a-1","extra":true})", R"({"id":"a-1","id":"b-2"})", R"({"id":)",
        "", "[1,2]", "[1,2,3,4]", "[[1]]", R"(["x"])", "\"\xff\"", R"({"id":"a-1","n":[[[]]]})",
        R"({"id":"a-1","n":12345678901234567890123})", "plain text"};
    static const std::vector<std::string> types = {
        "application/json", "application/json; charset=utf-8", "application/merge-patch+json",
        "text/plain", "TEXT/PLAIN;q=1", "application/xml", "", "application/json5"};
    for (int i = 0; i < 40; ++i) {
      nlohmann::json req;
      req["method"] = "POST";
      req["path"] = "/t/x";
      req["headers"] = nlohmann::json::object();
      std::string type = g.One(types);
      if (!type.empty()) req["headers"]["content-type"] = type;
      auto parsed = bytecode::ParseRequestJson(req.dump());
      ASSERT_TRUE(parsed.ok()) << req.dump();
      parsed->body = g.One(bodies);
      nlohmann::json cj = nlohmann::json::object();
      auto claims = std::move(bytecode::JsonClaims::Parse(cj.dump())).value();
      auto view = parsed->View();
      bytecode::Decision vm = bytecode::DecideRequest(**bundle, view, claims.get(), scratch);
      RefDecision ref = RefEvaluate(c->ir, view, &cj, nullptr);
      nlohmann::json resp_json;
      std::optional<bytecode::OwnedResponse> resp;
      if (vm.allow && ref.allow) {
        resp_json["status"] = g.One(std::vector<int>{200, 201, 404, 500});
        std::string rtype = g.One(types);
        if (!rtype.empty()) resp_json["headers"] = {{"content-type", rtype}};
        resp = std::move(bytecode::ParseResponseJson(resp_json.dump())).value();
        resp->body = g.One(bodies);  // any bytes, invalid UTF-8 included
        auto rv = resp->View();
        vm = bytecode::DecideResponse(**bundle, view, claims.get(), rv, scratch);
        ref = RefEvaluate(c->ir, view, &cj, &rv);
      }
      ++decisions;
      allows += vm.allow;
      denies413 += vm.status == 413;
      denies415 += vm.status == 415;
      denies502 += vm.status == 502;
      // A body check's description is CheckBody's on both; an ownership
      // deny's is the rule's message on the VM, the error on the evaluator.
      bool body_deny = vm.error == "invalid_request" || vm.error == "invalid_response";
      bool same = vm.allow == ref.allow && vm.status == ref.status &&
                  (vm.allow || (vm.rule == ref.rule && vm.error == ref.error &&
                                (!body_deny || std::string(vm.description) == ref.detail)));
      ASSERT_TRUE(same) << "seed " << seed << " request " << i << "\npolicy:\n" << policy
                        << "\nrequest: " << req.dump() << " body " << parsed->body
                        << "\nresponse: " << resp_json.dump()
                        << "\nvm:  " << bytecode::DecisionToJson(vm) << "\nref: allow=" << ref.allow
                        << " status=" << ref.status << " rule=" << ref.rule << " detail=" << ref.detail;
    }
  }
  EXPECT_GT(allows, decisions / 10);
  EXPECT_GT(denies413, 0);
  EXPECT_GT(denies415, 0);
  EXPECT_GT(denies502, 0);
  std::cout << decisions << " body decisions, " << allows << " allowed, " << denies413 << " 413, "
            << denies415 << " 415, " << denies502 << " 502\n";
}

}  // namespace
}  // namespace vakt::compiler
