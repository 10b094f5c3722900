// The reference evaluator; see interp.h. Evaluation errors are carried by
// a private exception type that never leaves this file: RefEvaluate always
// returns a decision. Nothing here is tuned for speed.
#include "compiler/interp.h"

#include "bytecode/body_check.h"
#include "bytecode/schema.h"

#include <re2/re2.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "bytecode/fapi_auth.h"

namespace vakt::compiler {
namespace {

using bytecode::Op;

using json = nlohmann::json;

struct EvalError {
  std::string detail;
};

struct V {
  ValueType kind = ValueType::kNull;
  bool b = false;
  int64_t i = 0;
  std::string s;
  std::vector<V> list;
  json j;
};

V Bool(bool b) {
  V v;
  v.kind = ValueType::kBool;
  v.b = b;
  return v;
}
V Int(ValueType k, int64_t i) {
  V v;
  v.kind = k;
  v.i = i;
  return v;
}
V Str(std::string s) {
  V v;
  v.kind = ValueType::kString;
  v.s = std::move(s);
  return v;
}
V List(std::vector<V> l) {
  V v;
  v.kind = ValueType::kList;
  v.list = std::move(l);
  return v;
}
V Json(json j) {
  V v;
  v.kind = ValueType::kJson;
  v.j = std::move(j);
  return v;
}

const char* JsonTypeName(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    default: return "a number";
  }
}

bool JsonToInt(const json& j, int64_t* out) {
  if (j.is_number_integer() && !j.is_number_unsigned()) {
    *out = j.get<int64_t>();
    return true;
  }
  if (j.is_number_unsigned()) {
    uint64_t u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return false;
    *out = static_cast<int64_t>(u);
    return true;
  }
  return false;
}

V Convert(const json& j, ValueType kind, ValueType elem, const std::string& what) {
  auto fail = [&](const char* want) -> V {
    throw EvalError{what + " is " + JsonTypeName(j) + ", expected " + want};
  };
  switch (kind) {
    case ValueType::kString:
      if (!j.is_string()) return fail("string");
      return Str(j.get<std::string>());
    case ValueType::kInt: {
      int64_t v;
      if (!JsonToInt(j, &v)) return fail("int");
      return Int(ValueType::kInt, v);
    }
    case ValueType::kBool:
      if (!j.is_boolean()) return fail("bool");
      return Bool(j.get<bool>());
    case ValueType::kNull:
      if (!j.is_null()) return fail("null");
      return V{};
    case ValueType::kTimestamp:
    case ValueType::kDuration: {
      int64_t v;
      if (JsonToInt(j, &v)) return Int(kind, v);
      if (j.is_number_float()) {
        double d = j.get<double>();
        if (std::isfinite(d) && d >= -9.2e18 && d <= 9.2e18) {
          return Int(kind, static_cast<int64_t>(std::floor(d)));
        }
      }
      return fail(kind == ValueType::kTimestamp ? "timestamp" : "duration");
    }
    case ValueType::kList: {
      if (!j.is_array()) return fail("list");
      std::vector<V> out;
      for (const auto& e : j) out.push_back(Convert(e, elem, ValueType::kNull, what + " element"));
      return List(std::move(out));
    }
    case ValueType::kJson: return Json(j);
  }
  return fail("?");
}

bool Equal(const V& x, const V& y) {
  if (x.kind != y.kind) {
    if (x.kind == ValueType::kNull || y.kind == ValueType::kNull) {
      const V& other = x.kind == ValueType::kNull ? y : x;
      return other.kind == ValueType::kJson && other.j.is_null();
    }
    const V& jv = x.kind == ValueType::kJson ? x : y;
    const V& tv = x.kind == ValueType::kJson ? y : x;
    if (jv.kind == ValueType::kJson) {
      switch (tv.kind) {
        case ValueType::kString: return jv.j.is_string() && jv.j.get<std::string>() == tv.s;
        case ValueType::kBool: return jv.j.is_boolean() && jv.j.get<bool>() == tv.b;
        case ValueType::kInt: {
          int64_t v;
          return JsonToInt(jv.j, &v) && v == tv.i;
        }
        default: break;
      }
    }
    throw EvalError{"type mismatch"};
  }
  switch (x.kind) {
    case ValueType::kNull: return true;
    case ValueType::kBool: return x.b == y.b;
    case ValueType::kInt:
    case ValueType::kDuration:
    case ValueType::kTimestamp: return x.i == y.i;
    case ValueType::kString: return x.s == y.s;
    case ValueType::kList:
      if (x.list.size() != y.list.size()) return false;
      for (size_t i = 0; i < x.list.size(); ++i) {
        if (!Equal(x.list[i], y.list[i])) return false;
      }
      return true;
    case ValueType::kJson: return x.j == y.j;
  }
  return false;
}

class Interp {
 public:
  Interp(const IrProgram& prog, const IrRoute& route, const bytecode::HttpRequest& req,
         const bytecode::NormalizedRequest& norm, const std::vector<std::string>& params,
         const json* claims, const bytecode::HttpResponse* resp)
      : prog_(prog), route_(route), req_(req), norm_(norm), params_(params), claims_(claims), resp_(resp) {}

  V Eval(const IrExpr& e) {
    switch (e.kind) {
      case IrKind::kConst:
        switch (e.type.kind) {
          case ValueType::kBool: return Bool(e.bool_value);
          case ValueType::kString: return Str(e.str);
          case ValueType::kInt:
          case ValueType::kDuration:
          case ValueType::kTimestamp: return Int(e.type.kind, e.int_value);
          default: return V{};
        }
      case IrKind::kList: {
        std::vector<V> l;
        for (const auto& c : e.children) l.push_back(Eval(*c));
        return List(std::move(l));
      }
      case IrKind::kReq: return Req(e.field);
      case IrKind::kResp:
        if (!resp_) throw EvalError{"no response"};
        if (e.rfield == ResponseField::kStatus) return Int(ValueType::kInt, resp_->status);
        if (e.rfield == ResponseField::kJson) return Json(BodyJson(resp_->body, "response"));
        return Str(std::string(resp_->body));
      case IrKind::kParam: return Str(params_.at(e.index));
      case IrKind::kFirst: {
        if (e.source == Source::kParam) return Str(params_.at(e.index));
        if (e.source == Source::kClaim) {
          const json* j = Claim(e.claim_path);
          if (!j) throw EvalError{"missing claim `" + Joined(e.claim_path) + "`"};
          return Convert(*j, e.type.kind, e.type.kind == ValueType::kList ? e.type.elem : ValueType::kNull,
                         "claim `" + Joined(e.claim_path) + "`");
        }
        auto all = Values(e.source, e.str);
        if (all.empty()) {
          throw EvalError{std::string(e.source == Source::kQuery ? "missing query parameter `"
                                                                 : "missing header `") +
                          e.str + "`"};
        }
        return Str(all[0]);
      }
      case IrKind::kAll: {
        std::vector<V> l;
        for (auto& s : Values(e.source, e.str)) l.push_back(Str(s));
        return List(std::move(l));
      }
      case IrKind::kRelation: {
        V key = Eval(*e.children[0]);
        if (key.kind != ValueType::kString) throw EvalError{"relation key is not a string"};
        const IrRelation& rel = prog_.relations.at(e.index);
        auto it = std::lower_bound(
            rel.entries.begin(), rel.entries.end(), key.s,
            [](const auto& entry, const std::string& k) { return entry.first < k; });
        bool found = it != rel.entries.end() && it->first == key.s;
        if (e.bool_value) return Bool(found);
        if (!rel.list) {
          if (!found) throw EvalError{"relation `" + rel.name + "` has no key"};
          return Str(it->second.at(0));
        }
        std::vector<V> l;
        if (found) {
          for (const auto& v : it->second) l.push_back(Str(v));
        }
        return List(std::move(l));
      }
      case IrKind::kHas:
        if (e.source == Source::kParam) return Bool(true);
        if (e.source == Source::kClaim) return Bool(Claim(e.claim_path) != nullptr);
        return Bool(!Values(e.source, e.str).empty());
      case IrKind::kConvert: {
        V x = Eval(*e.children[0]);
        if (x.kind == e.type.kind && x.kind != ValueType::kList) return x;
        if (x.kind != ValueType::kJson) throw EvalError{"type mismatch in conversion"};
        return Convert(x.j, e.type.kind, e.type.elem, "value");
      }
      case IrKind::kField: {
        V x = Eval(*e.children[0]);
        if (x.kind != ValueType::kJson || !x.j.is_object()) throw EvalError{"not an object"};
        auto it = x.j.find(e.str);
        if (it == x.j.end()) throw EvalError{"missing field `" + e.str + "`"};
        return Json(*it);
      }
      case IrKind::kIndex: {
        V x = Eval(*e.children[0]);
        V i = Eval(*e.children[1]);
        if (x.kind == ValueType::kList) {
          if (i.i < 0 || static_cast<uint64_t>(i.i) >= x.list.size()) throw EvalError{"index out of range"};
          return x.list[static_cast<size_t>(i.i)];
        }
        if (x.kind == ValueType::kJson && x.j.is_array()) {
          if (i.i < 0 || static_cast<uint64_t>(i.i) >= x.j.size()) throw EvalError{"index out of range"};
          return Json(x.j[static_cast<size_t>(i.i)]);
        }
        throw EvalError{"cannot index"};
      }
      case IrKind::kNot: {
        V x = Eval(*e.children[0]);
        if (x.kind != ValueType::kBool) throw EvalError{"not a bool"};
        return Bool(!x.b);
      }
      case IrKind::kNeg: {
        V x = Eval(*e.children[0]);
        if (x.i == std::numeric_limits<int64_t>::min()) throw EvalError{"integer overflow"};
        return Int(x.kind, -x.i);
      }
      case IrKind::kAnd:
      case IrKind::kOr: {
        V x = Eval(*e.children[0]);
        if (x.kind != ValueType::kBool) throw EvalError{"not a bool"};
        if (e.kind == IrKind::kAnd && !x.b) return x;
        if (e.kind == IrKind::kOr && x.b) return x;
        V y = Eval(*e.children[1]);
        if (y.kind != ValueType::kBool) throw EvalError{"not a bool"};
        return y;
      }
      case IrKind::kBinary: return Binary(e.op, Eval(*e.children[0]), Eval(*e.children[1]));
      case IrKind::kMatch: {
        V x = Eval(*e.children[0]);
        auto& re = regexes_[e.str];
        if (!re) {
          RE2::Options o;
          o.set_log_errors(false);
          re = std::make_unique<RE2>(e.str, o);
        }
        return Bool(RE2::PartialMatch(x.s, *re));
      }
      case IrKind::kCall: {
        std::vector<V> a;
        for (const auto& c : e.children) a.push_back(Eval(*c));
        return Call(e.builtin, a);
      }
    }
    throw EvalError{"unknown expression"};
  }

 private:
  static std::string Joined(const std::vector<std::string>& p) {
    std::string s;
    for (const auto& x : p) s += (s.empty() ? "" : ".") + x;
    return s;
  }

  const json* Claim(const std::vector<std::string>& path) {
    if (!claims_) return nullptr;
    const json* cur = claims_;
    for (const auto& p : path) {
      if (!cur->is_object()) return nullptr;
      auto it = cur->find(p);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    }
    return cur;
  }

  std::vector<std::string> Values(Source src, const std::string& name) {
    std::vector<std::string> out;
    if (src == Source::kHeader) {
      for (const auto& [n, v] : norm_.headers) {
        if (n == name) out.emplace_back(v);
      }
    } else if (src == Source::kQuery) {
      for (const auto& [n, v] : norm_.query) {
        if (n == name) out.emplace_back(v);
      }
    } else if (src == Source::kResponseHeader) {
      if (!resp_) throw EvalError{"no response"};
      for (const auto& h : resp_->headers) {
        std::string lower(h.name);
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (lower == name) out.emplace_back(h.value);
      }
    }
    return out;
  }

  V Req(RequestField f) {
    switch (f) {
      case RequestField::kMethod: return Str(std::string(req_.method));
      case RequestField::kPath: return Str(norm_.path);
      case RequestField::kBody: return Str(std::string(req_.body));
      case RequestField::kTlsVersion: return Str(std::string(req_.tls.version));
      case RequestField::kTlsCipher: return Str(std::string(req_.tls.cipher));
      case RequestField::kTlsCertThumbprint: {
        if (req_.tls.client_cert_pem.empty()) return Str("");
        auto t = bytecode::CertThumbprint(req_.tls.client_cert_pem);
        if (!t.ok()) throw EvalError{"bad client certificate"};
        return Str(*t);
      }
      case RequestField::kTime: return Int(ValueType::kTimestamp, req_.time);
      case RequestField::kQueryString: return Str(std::string(norm_.raw_query));
      case RequestField::kRoute: return Str(route_.name);
      case RequestField::kJson: return Json(BodyJson(req_.body, "request"));
    }
    throw EvalError{"bad field"};
  }

  // Whether every number of a well-formed JSON text is one the VM's parser
  // (simdjson) accepts: an integer within 64 bits (signed, or unsigned when
  // positive), any other number within double range. nlohmann accepts the
  // rest as doubles; the VM refuses the document.
  static bool NumbersInRange(std::string_view t) {
    bool in_str = false;
    for (size_t i = 0; i < t.size(); ++i) {
      char c = t[i];
      if (in_str) {
        if (c == '\\') ++i;
        else if (c == '"') in_str = false;
        continue;
      }
      if (c == '"') {
        in_str = true;
        continue;
      }
      if (c != '-' && (c < '0' || c > '9')) continue;
      size_t j = i;
      while (j < t.size() && (t[j] == '-' || t[j] == '+' || t[j] == '.' || t[j] == 'e' ||
                              t[j] == 'E' || (t[j] >= '0' && t[j] <= '9'))) {
        ++j;
      }
      std::string num(t.substr(i, j - i));
      i = j - 1;
      if (num.find_first_of(".eE") == std::string::npos) {
        bool neg = num[0] == '-';
        std::string digits = neg ? num.substr(1) : num;
        std::string max = neg ? "9223372036854775808" : "18446744073709551615";
        if (digits.size() > max.size() || (digits.size() == max.size() && digits > max)) {
          return false;
        }
      } else if (!std::isfinite(std::strtod(num.c_str(), nullptr))) {
        return false;
      }
    }
    return true;
  }

  // request.json / response.json: strict JSON (nlohmann checks UTF-8), at
  // most kMaxJsonBodyBytes, nested at most kMaxJsonBodyDepth, no member
  // name twice in one object, numbers as NumbersInRange; anything else is an
  // evaluation error.
  static json BodyJson(std::string_view body, const char* which) {
    if (body.size() > bytecode::kMaxJsonBodyBytes) {
      throw EvalError{std::string("the ") + which + " body is over the JSON size limit"};
    }
    std::vector<std::set<std::string>> open;
    bool bad = false;
    json::parser_callback_t cb = [&](int depth, json::parse_event_t ev, json& parsed) {
      if (depth > bytecode::kMaxJsonBodyDepth) bad = true;
      if (ev == json::parse_event_t::object_start) open.emplace_back();
      if (ev == json::parse_event_t::object_end && !open.empty()) open.pop_back();
      if (ev == json::parse_event_t::key && !open.empty() &&
          !open.back().insert(parsed.get<std::string>()).second) {
        bad = true;
      }
      return true;
    };
    json j = json::parse(body.begin(), body.end(), cb, /*allow_exceptions=*/false);
    if (bad || j.is_discarded() || !NumbersInRange(body)) {
      throw EvalError{std::string("the ") + which + " body is not JSON"};
    }
    return j;
  }

  static void Check(bool overflow) {
    if (overflow) throw EvalError{"integer overflow"};
  }

  V Binary(Op op, const V& x, const V& y) {
    using K = ValueType;
    int64_t r = 0;
    switch (op) {
      case Op::kEq: return Bool(Equal(x, y));
      case Op::kNe: return Bool(!Equal(x, y));
      case Op::kLt:
      case Op::kLe:
      case Op::kGt:
      case Op::kGe: {
        int c;
        if (x.kind == K::kString && y.kind == K::kString) {
          c = x.s.compare(y.s);
          c = c < 0 ? -1 : c > 0 ? 1 : 0;
        } else if (x.kind == y.kind && (x.kind == K::kInt || x.kind == K::kDuration || x.kind == K::kTimestamp)) {
          c = x.i < y.i ? -1 : x.i > y.i ? 1 : 0;
        } else {
          throw EvalError{"type mismatch"};
        }
        return Bool(op == Op::kLt ? c < 0 : op == Op::kLe ? c <= 0 : op == Op::kGt ? c > 0 : c >= 0);
      }
      case Op::kAdd:
        if (x.kind == K::kString) return Str(x.s + y.s);
        Check(__builtin_add_overflow(x.i, y.i, &r));
        return Int(x.kind == K::kTimestamp || y.kind == K::kTimestamp ? K::kTimestamp : x.kind, r);
      case Op::kSub:
        Check(__builtin_sub_overflow(x.i, y.i, &r));
        if (x.kind == K::kTimestamp && y.kind == K::kTimestamp) return Int(K::kDuration, r);
        return Int(x.kind, r);
      case Op::kMul:
        Check(__builtin_mul_overflow(x.i, y.i, &r));
        return Int(x.kind == K::kDuration || y.kind == K::kDuration ? K::kDuration : K::kInt, r);
      case Op::kDiv:
        if (y.i == 0) throw EvalError{"division by zero"};
        if (x.i == std::numeric_limits<int64_t>::min() && y.i == -1) throw EvalError{"integer overflow"};
        return Int(x.kind, x.i / y.i);
      case Op::kMod:
        if (y.i == 0) throw EvalError{"division by zero"};
        if (x.i == std::numeric_limits<int64_t>::min() && y.i == -1) throw EvalError{"integer overflow"};
        return Int(K::kInt, x.i % y.i);
      case Op::kIn:
        if (y.kind == K::kList) {
          for (const auto& e : y.list) {
            if (Equal(x, e)) return Bool(true);
          }
          return Bool(false);
        }
        if (y.kind == K::kJson && y.j.is_array()) {
          for (const auto& e : y.j) {
            if (Equal(x, Json(e))) return Bool(true);
          }
          return Bool(false);
        }
        if (x.kind == K::kString && y.kind == K::kString) {
          return Bool(y.s.find(x.s) != std::string::npos);
        }
        throw EvalError{"type mismatch"};
      default: break;
    }
    throw EvalError{"bad operator"};
  }

  V Call(Builtin b, std::vector<V>& a) {
    auto ascii = [](std::string s, bool up) {
      for (auto& c : s) {
        if (up && c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
        if (!up && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
      }
      return s;
    };
    switch (b) {
      case Builtin::kStartsWith: return Bool(a[0].s.starts_with(a[1].s));
      case Builtin::kEndsWith: return Bool(a[0].s.ends_with(a[1].s));
      case Builtin::kContains:
        if (a[0].kind == ValueType::kList) {
          for (const auto& e : a[0].list) {
            if (Equal(e, a[1])) return Bool(true);
          }
          return Bool(false);
        }
        return Bool(a[0].s.find(a[1].s) != std::string::npos);
      case Builtin::kLower: return Str(ascii(a[0].s, false));
      case Builtin::kUpper: return Str(ascii(a[0].s, true));
      case Builtin::kLen:
        if (a[0].kind == ValueType::kString) return Int(ValueType::kInt, static_cast<int64_t>(a[0].s.size()));
        if (a[0].kind == ValueType::kList) return Int(ValueType::kInt, static_cast<int64_t>(a[0].list.size()));
        if (a[0].kind == ValueType::kJson) {
          if (a[0].j.is_string()) return Int(ValueType::kInt, static_cast<int64_t>(a[0].j.get<std::string>().size()));
          if (a[0].j.is_array() || a[0].j.is_object()) return Int(ValueType::kInt, static_cast<int64_t>(a[0].j.size()));
        }
        throw EvalError{"`len` of a value without length"};
      case Builtin::kSplit: {
        if (a[1].s.empty()) throw EvalError{"`split` with an empty separator"};
        std::vector<V> out;
        size_t pos = 0;
        while (true) {
          size_t n = a[0].s.find(a[1].s, pos);
          if (n == std::string::npos) {
            out.push_back(Str(a[0].s.substr(pos)));
            break;
          }
          out.push_back(Str(a[0].s.substr(pos, n - pos)));
          pos = n + a[1].s.size();
        }
        return List(std::move(out));
      }
      case Builtin::kTrim: {
        const std::string& s = a[0].s;
        size_t b0 = 0, e0 = s.size();
        auto ws = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
        while (b0 < e0 && ws(s[b0])) ++b0;
        while (e0 > b0 && ws(s[e0 - 1])) --e0;
        return Str(s.substr(b0, e0 - b0));
      }
    }
    throw EvalError{"unknown builtin"};
  }

  const IrProgram& prog_;
  const IrRoute& route_;
  const bytecode::HttpRequest& req_;
  const bytecode::NormalizedRequest& norm_;
  const std::vector<std::string>& params_;
  const json* claims_;
  const bytecode::HttpResponse* resp_;
  std::map<std::string, std::unique_ptr<RE2>> regexes_;
};

bool ShapeOk(const std::string& shape, std::string_view seg) {
  if (shape.empty()) return true;
  // Compiled once per thread and pattern (bounded: patterns come from one policy).
  thread_local std::map<std::string, std::unique_ptr<RE2>> cache;
  auto& re = cache[shape];
  if (!re) {
    if (cache.size() > 4096) cache.clear();
    RE2::Options o;
    o.set_log_errors(false);
    re = std::make_unique<RE2>(shape, o);
  }
  return RE2::FullMatch(seg, *re);
}

RefDecision Deny(int status, std::string error, std::string rule, std::string route = "") {
  RefDecision d;
  d.allow = false;
  d.status = status;
  d.error = std::move(error);
  d.rule = std::move(rule);
  d.route = std::move(route);
  return d;
}

// A body check rule: the check that applies (by response status), its
// content type and the body run through the shared bytecode/body_check.h.
// The schema set is loaded from the IR's blob on first use.
std::optional<RefDecision> RefBody(const IrProgram& prog, const IrRule& rule,
                                   const bytecode::HttpRequest& req,
                                   const bytecode::NormalizedRequest& norm,
                                   const bytecode::HttpResponse* resp,
                                   std::shared_ptr<const bytecode::SchemaSet>* schemas) {
  const IrBodyCheck* check = &rule.bodies[0];
  if (check->response) {
    if (resp == nullptr) {
      RefDecision d = Deny(502, "invalid_response", check->rule_id);
      d.detail = "a response body check without a response";
      return d;
    }
    check = nullptr;
    for (const IrBodyCheck& b : rule.bodies) {  // exact status first
      if (b.status == resp->status) { check = &b; break; }
    }
    for (const IrBodyCheck& b : rule.bodies) {  // then its class
      if (!check && b.status >= 1 && b.status <= 5 && b.status == resp->status / 100) check = &b;
    }
    for (const IrBodyCheck& b : rule.bodies) {  // then default
      if (!check && b.status == 0) check = &b;
    }
    if (!check) return std::nullopt;
  }
  if (!*schemas) {
    auto set = bytecode::SchemaSet::Load(prog.schemas);
    if (!set.ok()) {
      RefDecision d = Deny(check->response ? 502 : 400, "", check->rule_id);
      d.detail = "schemas do not load: " + set.status().message();
      return d;
    }
    *schemas = *set;
  }
  bytecode::BodyCheckSpec spec;
  spec.root = check->root;
  spec.response = check->response;
  spec.limits.max_body_bytes = check->max_bytes;
  spec.limits.max_depth = check->max_depth;
  spec.limits.max_properties = check->max_properties;
  spec.limits.max_items = check->max_items;
  spec.limits.max_string_bytes = check->max_string;
  spec.accept = check->accept;
  bool has_type = false;
  std::string type;
  std::string_view body;
  if (check->response) {
    for (const auto& h : resp->headers) {
      std::string n(h.name);
      for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (n == "content-type") {
        has_type = true;
        type = std::string(h.value);
        break;
      }
    }
    body = resp->body;
  } else {
    for (const auto& [n, v] : norm.headers) {
      if (n == "content-type") {
        has_type = true;
        type = std::string(v);
        break;
      }
    }
    body = req.body;
  }
  bytecode::ValidationScratch scratch;
  bytecode::BodyCheckResult r = bytecode::CheckBody(**schemas, spec, has_type, type, body, scratch);
  if (r.allowed()) return std::nullopt;
  RefDecision d = Deny(r.status, r.error, check->rule_id);
  d.detail = r.description;
  return d;
}

// The fapi2 checks that do not need the token itself (the claims stand for
// a verified token): transport, token placement, presence, scopes. An
// independent rendering of fapi_auth.cc's CheckTransport/CheckScope.
std::optional<RefDecision> RefAuth(const IrRoute& route, const IrAuth& auth,
                                   const bytecode::HttpRequest& req,
                                   const bytecode::NormalizedRequest& norm, const json* claims) {
  static const std::set<std::string> kBcp195 = {
      "ECDHE-ECDSA-AES128-GCM-SHA256",           "ECDHE-ECDSA-AES256-GCM-SHA384",
      "ECDHE-RSA-AES128-GCM-SHA256",             "ECDHE-RSA-AES256-GCM-SHA384",
      "ECDHE-ECDSA-CHACHA20-POLY1305",           "ECDHE-RSA-CHACHA20-POLY1305",
      "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
      "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",   "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
      "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
      "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"};
  const std::string version(req.tls.version);
  const std::string cipher(req.tls.cipher);
  bool tls_ok = true;
  switch (static_cast<bytecode::TlsRequirement>(auth.tls)) {
    case bytecode::TlsRequirement::kFapi:
      tls_ok = version == "TLSv1.3" || (version == "TLSv1.2" && kBcp195.count(cipher));
      break;
    case bytecode::TlsRequirement::kTls13:
      tls_ok = version == "TLSv1.3";
      break;
    case bytecode::TlsRequirement::kAny:
      break;
  }
  if (!tls_ok) return Deny(403, "insecure_transport", "fapi2.transport", route.name);
  for (const auto& [name, value] : norm.query) {
    if (name == "access_token") return Deny(400, "invalid_request", "fapi2.request", route.name);
  }
  if (claims == nullptr) return Deny(401, "", "fapi2.token", route.name);
  if (auth.scopes.empty()) return std::nullopt;
  std::set<std::string> granted;
  if (claims->is_object() && claims->contains("scope") && (*claims)["scope"].is_string()) {
    std::string text = (*claims)["scope"].get<std::string>();
    size_t pos = 0;
    while (pos <= text.size()) {
      size_t end = text.find(' ', pos);
      if (end == std::string::npos) end = text.size();
      if (end > pos) granted.insert(text.substr(pos, end - pos));
      pos = end + 1;
    }
  }
  for (const auto& want : auth.scopes) {
    if (!granted.count(want)) return Deny(403, "insufficient_scope", "fapi2.scope", route.name);
  }
  return std::nullopt;
}

}  // namespace

RefDecision RefEvaluate(const IrProgram& prog, const bytecode::HttpRequest& req,
                        const nlohmann::json* claims, const bytecode::HttpResponse* resp) {
  bytecode::NormalizedRequest norm;
  switch (bytecode::Normalize(req, norm)) {
    case bytecode::TargetError::kNone: break;
    case bytecode::TargetError::kMalformed: return Deny(400, "invalid_request", "vakt.request");
    case bytecode::TargetError::kTooLong: return Deny(414, "invalid_request", "vakt.request");
    case bytecode::TargetError::kHeadersTooBig: return Deny(431, "invalid_request", "vakt.request");
  }
  // Routing, the slow way: narrow the candidates segment by segment, a
  // literal match beating a parameter at each position (no backtracking).
  std::vector<const IrRoute*> cands;
  for (const auto& r : prog.routes) {
    if (r.segments.size() == norm.segments.size()) cands.push_back(&r);
  }
  for (size_t i = 0; i < norm.segments.size() && !cands.empty(); ++i) {
    std::vector<const IrRoute*> lit, par;
    bool any_literal_edge = false;
    for (const auto* r : cands) {
      const auto& s = r->segments[i];
      if (!s.is_param && s.text == norm.segments[i]) lit.push_back(r);
    }
    (void)any_literal_edge;
    if (!lit.empty()) {
      cands = lit;
      continue;
    }
    for (const auto* r : cands) {
      const auto& s = r->segments[i];
      if (s.is_param && ShapeOk(s.shape, norm.segments[i])) par.push_back(r);
    }
    cands = par;
  }
  // The trie also commits to a literal prefix that exists for routes of
  // other lengths; emulate by checking that no longer/shorter route's
  // literal would have captured a position we matched with a parameter.
  const IrRoute* route = nullptr;
  for (const auto* r : cands) {
    if (r->method == req.method) route = r;
  }
  if (route) {
    for (size_t i = 0; i < norm.segments.size(); ++i) {
      if (!route->segments[i].is_param) continue;
      for (const auto& other : prog.routes) {
        if (other.segments.size() <= i) continue;
        bool same_prefix = true;
        for (size_t k = 0; k < i && same_prefix; ++k) {
          const auto& a = other.segments[k];
          const auto& b = route->segments[k];
          same_prefix = a.is_param == b.is_param && (a.is_param || a.text == b.text);
        }
        if (same_prefix && !other.segments[i].is_param &&
            other.segments[i].text == norm.segments[i]) {
          route = nullptr;  // the trie would have taken the literal edge
          break;
        }
      }
      if (!route) break;
    }
  }
  if (!route) return Deny(404, "not_found", "vakt.route");

  std::vector<std::string> params;
  for (size_t i = 0; i < route->segments.size(); ++i) {
    if (route->segments[i].is_param) params.emplace_back(norm.segments[i]);
  }
  if (route->auth && resp == nullptr) {
    if (auto d = RefAuth(*route, *route->auth, req, norm, claims)) return *d;
  }
  Interp in(prog, *route, req, norm, params, claims, resp);
  std::shared_ptr<const bytecode::SchemaSet> schemas;
  auto run = [&](const std::vector<IrRule>& rules) -> std::optional<RefDecision> {
    for (const auto& r : rules) {
      if (!r.bodies.empty()) {
        if (auto d = RefBody(prog, r, req, norm, resp, &schemas)) {
          d->route = route->name;
          return d;
        }
        continue;
      }
      try {
        V v = in.Eval(*r.cond);
        if (v.kind != ValueType::kBool) throw EvalError{"not a bool"};
        if (!v.b) return Deny(r.status, r.error, r.id, route->name);
      } catch (const EvalError& e) {
        RefDecision d = Deny(r.status, r.error, r.id, route->name);
        d.detail = e.detail;
        return d;
      } catch (const std::exception& e) {
        RefDecision d = Deny(r.status, r.error, r.id, route->name);
        d.detail = e.what();
        return d;
      }
    }
    return std::nullopt;
  };
  if (auto d = run(resp ? route->response_rules : route->request_rules)) return *d;
  RefDecision ok;
  ok.allow = true;
  ok.status = 200;
  ok.route = route->name;
  return ok;
}

}  // namespace vakt::compiler
