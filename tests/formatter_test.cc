// Tests for `vakt fmt` (dsl/formatter.h): the canonical layout of a messy
// file (exact text), comments kept, blank-line and indentation rules,
// refusal on syntax errors, and the two invariants checked on every input
// here and on the repository's example policies: formatting is idempotent
// and keeps the token sequence.
#include "dsl/formatter.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "dsl/parser.h"

namespace vakt::dsl {
namespace {

std::string Fmt(const std::string& text, Diagnostics* diags = nullptr) {
  SourceFile src{"f.vakt", text};
  Diagnostics local;
  return FormatSource(src, diags ? *diags : local);
}

std::vector<std::string> TokenTexts(const std::string& text) {
  SourceFile src{"f.vakt", text};
  Diagnostics d;
  std::vector<std::string> out;
  for (const Token& t : Lex(src, d)) {
    std::string s = t.text;
    if (t.kind == Token::Kind::kLineComment || t.kind == Token::Kind::kBlockComment) {
      // The formatter trims trailing blanks inside comments.
      std::string trimmed;
      std::istringstream lines(s);
      std::string line;
      bool first = true;
      while (std::getline(lines, line)) {
        while (!line.empty() &&
               (line.back() == ' ' || line.back() == '\t' || line.back() == '\r')) {
          line.pop_back();
        }
        trimmed += (first ? "" : "\n") + line;
        first = false;
      }
      s = trimmed;
    }
    out.push_back(s);
  }
  return out;
}

// The formatter's invariants for a file without errors.
void ExpectCanonical(const std::string& text) {
  Diagnostics d;
  std::string once = Fmt(text, &d);
  ASSERT_FALSE(d.HasErrors()) << d.Format();
  EXPECT_EQ(Fmt(once), once) << "not idempotent for:\n" << text;
  EXPECT_EQ(TokenTexts(once), TokenTexts(text)) << "tokens changed for:\n" << text;
  if (!once.empty()) {
    EXPECT_EQ(once.back(), '\n');
    EXPECT_EQ(once.find("\n\n\n"), std::string::npos);
    EXPECT_EQ(once.find(" \n"), std::string::npos) << "trailing blank in:\n" << once;
    EXPECT_NE(once.front(), '\n');
  }
}

const char kMessy[] = R"(

// Messy policy.
package   demo
import lib   as l
const  MAX_AGE=5m
const XS : list < string > = [ "a" ,"b" , ]
fn fresh( t : timestamp )->bool{now-t<MAX_AGE}


claims{ sub : string
cnf . jkt:string }
api   records "/v1"{

    use transport   // trailing comment
  route get_x GET "/x/{id}" {
        token : require has( request.headers . authorization )&&! l.banned( token.sub )
    else deny 401 invalid_token "no"
  q:deny 400 if - x + y * ( - 3 ) > f ( a ) [ 0 ]
     /* block
        comment */
          on response{require response.status<500 else deny 502}


  }
}
test "t"{
request { "method" : "GET" , "a" : [ 1 , -2 ] , "b":{ } }
  expect deny 401 invalid_token
}   )";

const char kMessyFormatted[] = R"(// Messy policy.
package demo
import lib as l
const MAX_AGE = 5m
const XS: list<string> = ["a", "b",]
fn fresh(t: timestamp) -> bool { now - t < MAX_AGE }

claims { sub: string
  cnf.jkt: string }
api records "/v1" {
  use transport // trailing comment
  route get_x GET "/x/{id}" {
    token: require has(request.headers.authorization) && !l.banned(token.sub)
      else deny 401 invalid_token "no"
    q: deny 400 if -x + y * (-3) > f(a)[0]
    /* block
        comment */
    on response { require response.status < 500 else deny 502 }
  }
}
test "t" {
  request {"method": "GET", "a": [1, -2], "b": {}}
  expect deny 401 invalid_token
}
)";

// A realistic policy already in canonical form (hanging indents as the
// examples write them).
const char kCanonical[] = R"(// Shared building blocks.
package healthcare

import lib as l

/* Path parameters outside this shape
   get 404 before any rule runs. */
shape Id = r"^[A-Za-z0-9-]{1,64}$"

claims {
  patient_id: string
  care_team: list<string>
  cnf.jkt: string
}

const TLS_VERSIONS = ["TLSv1.2", "TLSv1.3"]
const CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
]
const MAX_AGE: duration = 5m
let method = lower(request.method)

fn is_owner(patient: string) -> bool {
  (token.role == "patient" && token.patient_id == patient) || is_clinician(patient)
}

fn score(a: int, b: int) -> int {
  -a * (b + 1) % 7 - -b
}

profile transport {
  tls: require request.tls.version in TLS_VERSIONS
    else deny 403 insecure_transport "TLS 1.2 or TLS 1.3 is required"
  query_token: deny 400 invalid_request "no access tokens in the query string"
    if has(request.query.access_token)
}

api records "/v1" {
  use transport

  // 1. Liveness: anyone, no token.
  route health GET "/health" {}

  route create_record POST "/patients/{patient_id:Id}/records" {
    use l.authenticated
    let fresh = now - token.iat < MAX_AGE
    json: require has(request.headers["content-type"])
        && starts_with(lower(request.headers["content-type"]), "application/json")
      else deny 400 invalid_request "the body must be application/json"
    age: require fresh else deny 401 invalid_token
    math: require len(params.patient_id) * 2 + 1 <= 41 && !(request.path matches r"^/x$")
      else deny 400
    on response {
      ok: require response.status < 500 else deny 502 invalid_response "upstream error"
    }
  }

  route GET "/x" { require is_owner(params.id) else deny 403 }
}

test "a patient reads her own record" {
  request {"method": "GET", "path": "/v1/patients/p-1", "headers": {"authorization": "DPoP x"}}
  claims {"sub": "anna", "role": "patient", "n": [1, -2.5e3, true, null], "o": {}}
  response {
    "status": 200,
    "headers": {"content-type": "application/json"}
  }
  now 1700000000
  expect allow
}

test "refused" {
  expect deny 403 access_denied
}
)";

TEST(Formatter, MessyInputBecomesCanonical) {
  Diagnostics d;
  EXPECT_EQ(Fmt(kMessy, &d), kMessyFormatted);
  EXPECT_FALSE(d.HasErrors()) << d.Format();
  ExpectCanonical(kMessy);
}

TEST(Formatter, CanonicalInputIsAFixedPoint) {
  EXPECT_EQ(Fmt(kCanonical), kCanonical);
  ExpectCanonical(kCanonical);
}

TEST(Formatter, RefusesFilesWithSyntaxErrors) {
  const std::string bad = "api a \"/v1\" {\n  route GET \"/x\" {   require x deny 403 }\n}\n";
  Diagnostics d;
  EXPECT_EQ(Fmt(bad, &d), bad);
  ASSERT_EQ(d.error_count(), 1u);
  EXPECT_EQ(d.all()[0].message, "syntax error: unexpected `deny`, expected `else`");
  EXPECT_EQ(d.all()[0].loc.line, 2u);
  EXPECT_EQ(d.all()[0].loc.column, 32u);

  Diagnostics d2;
  const std::string lexical = "const a  =  \"open\n";
  EXPECT_EQ(Fmt(lexical, &d2), lexical);
  EXPECT_EQ(d2.all().at(0).message, "unterminated string");
}

TEST(Formatter, CommentsAreKept) {
  EXPECT_EQ(Fmt("// head\nconst a = 1   // one\n\n\n   // alone\nconst b = /*x*/2 /* y */\n"),
            "// head\nconst a = 1 // one\n\n// alone\nconst b = /*x*/2 /* y */\n");
  EXPECT_EQ(Fmt("profile p {\n      // first\n  require a else deny 403 // why\n   /* multi\n"
                "  line */   require b else deny 403\n}\n"),
            "profile p {\n  // first\n  require a else deny 403 // why\n  /* multi\n"
            "  line */ require b else deny 403\n}\n");
  // Trailing blanks inside comments go; the comment text stays.
  EXPECT_EQ(Fmt("// note   \n/* a  \n b */\n"), "// note\n/* a\n b */\n");
  // A file of comments only.
  ExpectCanonical("// just\n// comments\n");
}

TEST(Formatter, BlankLines) {
  // At most one in a row; none at the start, after `{` or before `}`.
  EXPECT_EQ(Fmt("\n\n\nconst a = 1\n\n\n\nconst b = 2\n\n\n"), "const a = 1\n\nconst b = 2\n");
  EXPECT_EQ(Fmt("profile p {\n\n\n  use a\n\n  use b\n\n}\n"),
            "profile p {\n  use a\n\n  use b\n}\n");
  EXPECT_EQ(Fmt("const a = [\n\n  1,\n\n  2,\n\n]\n"), "const a = [\n  1,\n\n  2,\n]\n");
  // Always exactly one final newline.
  EXPECT_EQ(Fmt("const a = 1"), "const a = 1\n");
  EXPECT_EQ(Fmt(""), "");
  EXPECT_EQ(Fmt("\n\n  \n"), "");
}

TEST(Formatter, Indentation) {
  EXPECT_EQ(
      Fmt("api a \"/\" {\nroute GET \"/\" {\nrequire f(\na,\nb\n) else deny 403\n}\n}\n"),
      "api a \"/\" {\n  route GET \"/\" {\n    require f(\n      a,\n      b\n    ) else deny 403\n"
      "  }\n}\n");
  // A line starting with several closers is dedented by all of them.
  EXPECT_EQ(Fmt("const a = f([\n1,\n])\n"), "const a = f([\n    1,\n])\n");
  // Hanging indents: +1 for the deny clause, +2 for operators.
  EXPECT_EQ(Fmt("profile p {\nrequire a\n&& b\n||\nc\nelse\ndeny 403\ndeny 400\nif\nd\n}\n"),
            "profile p {\n  require a\n      && b\n      ||\n      c\n    else\n    deny 403\n"
            "  deny 400\n    if\n    d\n}\n");
  // Tabs and CRLF line ends are normalised.
  EXPECT_EQ(Fmt("profile p {\r\n\trequire a else deny 403\r\n}\r\n"),
            "profile p {\n  require a else deny 403\n}\n");
  // A brace on its own line.
  EXPECT_EQ(Fmt("profile p\n{\nuse a\n}\n"), "profile p\n{\n  use a\n}\n");
}

TEST(Formatter, Spacing) {
  auto one = [](const std::string& expr) {
    std::string out = Fmt("const x = " + expr + "\n");
    return out.substr(10, out.size() - 11);
  };
  EXPECT_EQ(one("a-b"), "a - b");
  EXPECT_EQ(one("a- -b"), "a - -b");
  EXPECT_EQ(one("f(-1,- 2)"), "f(-1, -2)");
  EXPECT_EQ(one("[ - 1 ]"), "[-1]");
  EXPECT_EQ(one("x==-1"), "x == -1");
  EXPECT_EQ(one("now-5m"), "now - 5m");
  EXPECT_EQ(one("(a)-(b)"), "(a) - (b)");
  EXPECT_EQ(one("a[0]-1"), "a[0] - 1");
  EXPECT_EQ(one("! a&&!(b||c)"), "!a && !(b || c)");
  EXPECT_EQ(one("x in[1,2]"), "x in [1, 2]");
  EXPECT_EQ(one("f (a) [ b ] . c"), "f(a)[b].c");
  EXPECT_EQ(one("request . headers [ \"x\" ]"), "request.headers[\"x\"]");
  EXPECT_EQ(one("a*b/c%d+e"), "a * b / c % d + e");
  EXPECT_EQ(one("a<=b&&c>=d&&e!=f&&g<h&&i>j"), "a <= b && c >= d && e != f && g < h && i > j");
  EXPECT_EQ(one("p matches r\"x\""), "p matches r\"x\"");
  EXPECT_EQ(one("f( )"), "f()");
  EXPECT_EQ(one("[ ]"), "[]");
  EXPECT_EQ(Fmt("claims{a:list<list<int>>}\n"), "claims { a: list<list<int>> }\n");
  EXPECT_EQ(Fmt("const x:list<int> =[1]\n"), "const x: list<int> = [1]\n");
  EXPECT_EQ(Fmt("use_it: require a else deny 403\n"), "use_it: require a else deny 403\n");
  EXPECT_EQ(Fmt("profile p{require a else deny 403}\n"), "profile p { require a else deny 403 }\n");
  EXPECT_EQ(Fmt("profile p{  }\n"), "profile p {}\n");
  EXPECT_EQ(Fmt("test \"t\"{request{ \"a\" :{ \"b\":[ ] } }claims{}}\n"),
            "test \"t\" { request {\"a\": {\"b\": []}} claims {} }\n");
}

TEST(Formatter, ExamplePoliciesAreIdempotent) {
  namespace fs = std::filesystem;
  const fs::path root(VAKT_SOURCE_DIR);
  size_t checked = 0;
  for (const char* dir : {"examples", "tests/golden", "tests/fuzz/corpus/parser"}) {
    std::error_code ec;
    if (!fs::exists(root / dir, ec)) continue;
    for (const auto& e : fs::recursive_directory_iterator(root / dir, ec)) {
      if (!e.is_regular_file() || e.path().extension() != ".vakt") continue;
      std::ifstream in(e.path(), std::ios::binary);
      std::stringstream s;
      s << in.rdbuf();
      Diagnostics d;
      SourceFile src{e.path().string(), s.str()};
      ParseFile(src, d);
      if (d.HasErrors()) continue;  // broken seeds are for the fuzzer
      SCOPED_TRACE(e.path().string());
      ExpectCanonical(s.str());
      ++checked;
    }
  }
  EXPECT_GT(checked, 0u);
}

TEST(Formatter, EveryInputHereIsIdempotent) {
  const std::vector<std::string> inputs = {
      kMessy,
      kCanonical,
      "const a = f(\n  1,\n  2)\n",
      "profile p { deny 403 if\n  a\n  require b else\n  deny 403 }\n",
      "const a = 1 /* c */ + /* d */ 2\n",
      "const a =\n[\n1\n]\n",
      "fn f(a: int,\n  b: int) -> int { a\n + b }\n",
      "test \"t\" {\n  request {\"a\": [\n    1,\n    {\"b\": 2}\n  ]}\n}\n",
      "api a \"/\" { route GET \"/\" {} route GET \"/y\" { on response {} } }\n",
      "const s = \"\\u00e9\\\"\" // done\n",
  };
  for (const std::string& in : inputs) {
    SCOPED_TRACE(in);
    ExpectCanonical(in);
  }
}

}  // namespace
}  // namespace vakt::dsl
