// JSON Schema -> SchemaSet tables; see schema_compile.h for the contract.
//
// Documents are parsed with nlohmann::json (a SAX wrapper keeps the literal
// text of non-integer numbers so `0.0001` and big limits stay exact), scanned
// once for $id/$anchor/$dynamicAnchor (only through known subschema
// keywords, as the specification requires), then compiled node by node on
// demand from the roots. A node is memoized by (options, position, document,
// JSON pointer) before its children compile, so reference cycles close into
// a cyclic graph. Work is bounded by the document size and node limits; the
// recursion by kMaxSchemaCompileDepth. Tested by tests/schema_test.cc and
// tests/schema_suite_test.cc.
#include "compiler/schema_compile.h"

#include <re2/re2.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "bytecode/format.h"
#include "bytecode/json_number.h"
#include "bytecode/schema.h"
#include "compiler/openapi.h"

namespace vakt::compiler {

namespace fs = std::filesystem;
using json = nlohmann::json;
using bytecode::SchemaKw;
using bytecode::SchemaKeyword;
using bytecode::kSchemaNone;

namespace {

// ---------------------------------------------------------------------------
// URIs (RFC 3986 section 5.2, enough for $id and $ref).

struct Uri {
  std::string scheme, authority, path, query, fragment;
  bool has_authority = false, has_query = false, has_fragment = false;
};

Uri ParseUri(const std::string& s) {
  Uri u;
  size_t i = 0;
  size_t colon = s.find(':');
  size_t first_special = s.find_first_of("/?#");
  if (colon != std::string::npos && colon > 0 && (first_special == std::string::npos || colon < first_special)) {
    u.scheme = s.substr(0, colon);
    i = colon + 1;
  }
  if (s.compare(i, 2, "//") == 0) {
    size_t e = s.find_first_of("/?#", i + 2);
    if (e == std::string::npos) e = s.size();
    u.authority = s.substr(i + 2, e - i - 2);
    u.has_authority = true;
    i = e;
  }
  size_t e = s.find_first_of("?#", i);
  if (e == std::string::npos) e = s.size();
  u.path = s.substr(i, e - i);
  i = e;
  if (i < s.size() && s[i] == '?') {
    e = s.find('#', i);
    if (e == std::string::npos) e = s.size();
    u.query = s.substr(i + 1, e - i - 1);
    u.has_query = true;
    i = e;
  }
  if (i < s.size() && s[i] == '#') {
    u.fragment = s.substr(i + 1);
    u.has_fragment = true;
  }
  return u;
}

std::string RemoveDots(const std::string& in) {
  std::vector<std::string> out;
  bool abs = !in.empty() && in[0] == '/';
  size_t i = abs ? 1 : 0;
  bool trailing = false;
  while (i <= in.size()) {
    size_t e = in.find('/', i);
    if (e == std::string::npos) e = in.size();
    std::string seg = in.substr(i, e - i);
    trailing = false;
    if (seg == ".") {
      trailing = true;
    } else if (seg == "..") {
      if (!out.empty()) out.pop_back();
      trailing = true;
    } else {
      out.push_back(seg);
    }
    i = e + 1;
  }
  std::string r = abs ? "/" : "";
  for (size_t k = 0; k < out.size(); ++k) {
    if (k) r += "/";
    r += out[k];
  }
  if (trailing && !r.empty() && r.back() != '/') r += "/";
  return r;
}

std::string Recompose(const Uri& u) {
  std::string r;
  if (!u.scheme.empty()) r += u.scheme + ":";
  if (u.has_authority) r += "//" + u.authority;
  r += u.path;
  if (u.has_query) r += "?" + u.query;
  if (u.has_fragment) r += "#" + u.fragment;
  return r;
}

std::string ResolveUri(const std::string& base, const std::string& ref) {
  Uri r = ParseUri(ref), b = ParseUri(base), t;
  if (!r.scheme.empty()) {
    t = r;
    t.path = RemoveDots(r.path);
  } else {
    t.scheme = b.scheme;
    if (r.has_authority) {
      t.authority = r.authority;
      t.has_authority = true;
      t.path = RemoveDots(r.path);
      t.query = r.query;
      t.has_query = r.has_query;
    } else {
      t.authority = b.authority;
      t.has_authority = b.has_authority;
      if (r.path.empty()) {
        t.path = b.path;
        t.query = r.has_query ? r.query : b.query;
        t.has_query = r.has_query || b.has_query;
      } else {
        if (r.path[0] == '/') {
          t.path = RemoveDots(r.path);
        } else {
          std::string merged;
          if (b.has_authority && b.path.empty()) {
            merged = "/" + r.path;
          } else {
            size_t slash = b.path.rfind('/');
            merged = (slash == std::string::npos ? "" : b.path.substr(0, slash + 1)) + r.path;
          }
          t.path = RemoveDots(merged);
        }
        t.query = r.query;
        t.has_query = r.has_query;
      }
    }
  }
  t.fragment = r.fragment;
  t.has_fragment = r.has_fragment;
  return Recompose(t);
}

std::string StripFragment(const std::string& u) {
  size_t h = u.find('#');
  return h == std::string::npos ? u : u.substr(0, h);
}

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string EscapeToken(const std::string& t) {
  std::string r;
  for (char c : t) {
    if (c == '~') r += "~0";
    else if (c == '/') r += "~1";
    else r += c;
  }
  return r;
}

// Resolves an escaped JSON pointer in j; nullptr if absent.
const json* AtPointer(const json& j, const std::string& ptr) {
  const json* cur = &j;
  size_t i = 0;
  if (ptr.empty()) return cur;
  if (ptr[0] != '/') return nullptr;
  while (i < ptr.size()) {
    size_t e = ptr.find('/', i + 1);
    if (e == std::string::npos) e = ptr.size();
    std::string tok;
    for (size_t k = i + 1; k < e; ++k) {
      if (ptr[k] == '~' && k + 1 < e && ptr[k + 1] == '0') {
        tok += '~';
        ++k;
      } else if (ptr[k] == '~' && k + 1 < e && ptr[k + 1] == '1') {
        tok += '/';
        ++k;
      } else {
        tok += ptr[k];
      }
    }
    if (cur->is_object()) {
      auto it = cur->find(tok);
      if (it == cur->end()) return nullptr;
      cur = &*it;
    } else if (cur->is_array()) {
      if (tok.empty() || tok.size() > 9 || tok.find_first_not_of("0123456789") != std::string::npos) {
        return nullptr;
      }
      size_t idx = std::stoul(tok);
      if (idx >= cur->size()) return nullptr;
      cur = &(*cur)[idx];
    } else {
      return nullptr;
    }
    i = e;
  }
  return cur;
}


// Keeps the literal text of every non-integer number, keyed by its double.
class NumberTextSax : public nlohmann::detail::json_sax_dom_parser<json> {
 public:
  NumberTextSax(json& j, std::map<double, std::string>* texts)
      : json_sax_dom_parser(j, false), texts_(texts) {}
  bool number_float(double val, const std::string& s) {
    auto [it, inserted] = texts_->emplace(val, s);
    if (!inserted && it->second != s) it->second.clear();  // ambiguous: use the double
    return json_sax_dom_parser::number_float(val, s);
  }

 private:
  std::map<double, std::string>* texts_;
};

// ECMA-262 `\\p{Letter}`-style long Unicode property names -> RE2's short
// ones (`\\p{L}`); `Script=Greek` / `sc=Greek` -> `Greek`. Everything else is
// passed through for RE2 to accept or refuse.
std::string TranslateEcmaRegex(const std::string& p) {
  static const std::map<std::string, std::string> kNames = {
      {"Letter", "L"}, {"Cased_Letter", "L"}, {"Uppercase_Letter", "Lu"},
      {"Lowercase_Letter", "Ll"}, {"Titlecase_Letter", "Lt"}, {"Modifier_Letter", "Lm"},
      {"Other_Letter", "Lo"}, {"Mark", "M"}, {"Combining_Mark", "M"},
      {"Nonspacing_Mark", "Mn"}, {"Spacing_Mark", "Mc"}, {"Enclosing_Mark", "Me"},
      {"Number", "N"}, {"Decimal_Number", "Nd"}, {"digit", "Nd"}, {"Letter_Number", "Nl"},
      {"Other_Number", "No"}, {"Punctuation", "P"}, {"punct", "P"},
      {"Connector_Punctuation", "Pc"}, {"Dash_Punctuation", "Pd"}, {"Open_Punctuation", "Ps"},
      {"Close_Punctuation", "Pe"}, {"Initial_Punctuation", "Pi"}, {"Final_Punctuation", "Pf"},
      {"Other_Punctuation", "Po"}, {"Symbol", "S"}, {"Math_Symbol", "Sm"},
      {"Currency_Symbol", "Sc"}, {"Modifier_Symbol", "Sk"}, {"Other_Symbol", "So"},
      {"Separator", "Z"}, {"Space_Separator", "Zs"}, {"Line_Separator", "Zl"},
      {"Paragraph_Separator", "Zp"}, {"Other", "C"}, {"Control", "Cc"}, {"cntrl", "Cc"},
      {"Format", "Cf"}, {"Surrogate", "Cs"}, {"Private_Use", "Co"}, {"Unassigned", "Cn"}};
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] != '\\' || i + 1 >= p.size()) {
      out += p[i];
      continue;
    }
    char c = p[i + 1];
    if ((c == 'p' || c == 'P') && i + 2 < p.size() && p[i + 2] == '{') {
      size_t close = p.find('}', i + 3);
      if (close != std::string::npos) {
        std::string name = p.substr(i + 3, close - i - 3);
        size_t eq = name.find('=');
        if (eq != std::string::npos) name = name.substr(eq + 1);
        auto it = kNames.find(name);
        out += '\\';
        out += c;
        out += '{';
        out += it != kNames.end() ? it->second : name;
        out += '}';
        i = close;
        continue;
      }
    }
    out += p[i];
    out += c;
    ++i;
  }
  return out;
}

std::string DirOf(const std::string& file) {
  fs::path p(file);
  return p.has_parent_path() ? p.parent_path().string() : std::string();
}

}  // namespace

// Maximum bracket nesting of JSON text, so nlohmann never sees a document
// that would make its recursive destructor or dump run deep.
size_t JsonNesting(const std::string& t) {
  size_t depth = 0, max = 0;
  bool in_str = false;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (in_str) {
      if (c == '\\') ++i;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      max = std::max(max, ++depth);
    } else if ((c == ']' || c == '}') && depth) {
      --depth;
    }
  }
  return max;
}

SchemaReader DiskSchemaReader() {
  return [](const std::string& from_file, const std::string& path) -> Result<std::string> {
    std::string p = path;
    if (p.rfind("file://", 0) == 0) {
      p = PercentDecode(ParseUri(p).path);
    } else if (ParseUri(p).scheme.size() > 1) {
      return Unsupported("remote reference `" + path + "` is not fetched");
    } else {
      fs::path rel(PercentDecode(p));
      if (rel.is_relative() && !from_file.empty()) rel = fs::path(DirOf(from_file)) / rel;
      p = rel.lexically_normal().string();
    }
    std::error_code ec;
    auto size = fs::file_size(p, ec);
    if (ec) return IoError("cannot read `" + p + "`: " + ec.message());
    if (size > kMaxSchemaDocumentBytes) return ResourceExhausted("`" + p + "` is too large");
    std::ifstream in(p, std::ios::binary);
    if (!in) return IoError("cannot read `" + p + "`");
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
}

struct SchemaCompiler::Impl {
  struct Doc {
    std::string file;     // for the reader and relative refs; "" for inline text
    std::string display;  // in errors and locations
    std::string uri;      // retrieval URI (no fragment)
    json j;
    std::map<double, std::string> number_texts;
    bool oas30 = false;
    bool is_openapi = false;
  };
  struct Loc {
    int doc = -1;
    std::string ptr;
  };
  struct NodeBuild {
    bytecode::SchemaNode node{};
    std::vector<SchemaKeyword> kws;
  };

  SchemaReader reader;
  std::vector<std::unique_ptr<Doc>> docs;
  std::map<std::string, Loc> resources;  // absolute URI -> resource root
  std::map<std::string, Loc> anchors;    // "uri#name" -> location
  std::map<std::string, std::vector<std::pair<std::string, Loc>>> dyn_anchors;  // by resource URI
  std::map<std::string, std::string> base_at;  // "doc|ptr" -> base URI of that schema
  std::map<std::string, bool> dynamic_anchor_at;  // "doc|ptr|name" -> has $dynamicAnchor name

  bytecode::SchemaTables tables;
  std::vector<NodeBuild> nodes;
  std::map<std::string, uint32_t> memo;
  std::map<std::string, std::pair<uint32_t, uint32_t>> dyn_lists;  // resource -> anchors list
  std::map<std::string, uint32_t> string_ids, regex_ids, number_ids;
  json consts = json::array();
  std::vector<std::string> errors;
  int depth = 0;
  SchemaOptions opts;

  uint32_t Str(const std::string& s) {
    auto [it, inserted] = string_ids.emplace(s, static_cast<uint32_t>(tables.strings.size()));
    if (inserted) tables.strings.push_back(s);
    return it->second;
  }

  std::string Where(const Loc& l) const {
    const Doc& d = *docs[l.doc];
    return d.display + ": #" + l.ptr;
  }
  void Error(const Loc& l, const std::string& kw, const std::string& msg) {
    if (errors.size() >= 50) return;
    std::string e = Where(l);
    if (!kw.empty()) {
      e += '/';
      e += EscapeToken(kw);
    }
    e += ": ";
    e += msg;
    errors.push_back(std::move(e));
  }

  // ---- documents ----

  Result<int> AddDoc(const std::string& file, const std::string& display, const std::string& uri,
                     const std::string& text, bool is_openapi, bool oas30) {
    if (docs.size() >= kMaxSchemaDocuments) return ResourceExhausted("too many schema documents");
    if (text.size() > kMaxSchemaDocumentBytes) {
      return ResourceExhausted(display + ": document larger than " + std::to_string(kMaxSchemaDocumentBytes) + " bytes");
    }
    // A document that is not JSON (a referenced .yaml file) is read as YAML.
    std::string yaml_json;
    const std::string* src = &text;
    if (!LooksLikeJson(text) && !text.empty()) {
      auto converted = YamlToJsonText(display, text);
      if (!converted.ok()) return converted.status();
      yaml_json = std::move(*converted);
      src = &yaml_json;
    }
    if (JsonNesting(*src) > static_cast<size_t>(kMaxSchemaCompileDepth)) {
      return ResourceExhausted(display + ": document nested deeper than " + std::to_string(kMaxSchemaCompileDepth));
    }
    auto d = std::make_unique<Doc>();
    d->file = file;
    d->display = display;
    d->uri = StripFragment(uri);
    d->is_openapi = is_openapi;
    d->oas30 = oas30;
    NumberTextSax sax(d->j, &d->number_texts);
    bool ok = false;
    try {
      ok = json::sax_parse(*src, &sax, json::input_format_t::json, true, false);
    } catch (const std::exception& e) {
      return InvalidArgument(display + ": not JSON: " + e.what());
    }
    if (!ok || sax.is_errored()) return InvalidArgument(display + ": not JSON");
    int id = static_cast<int>(docs.size());
    docs.push_back(std::move(d));
    Doc& doc = *docs.back();
    if (!resources.count(doc.uri)) resources[doc.uri] = Loc{id, ""};
    if (is_openapi) {
      // Schemas of an OpenAPI document: components/schemas and, in 3.1,
      // anywhere a schema sits; scan the components only (ids are rare).
      const json* schemas = AtPointer(doc.j, "/components/schemas");
      if (schemas && schemas->is_object()) {
        for (auto it = schemas->begin(); it != schemas->end(); ++it) {
          Scan(id, it.value(), "/components/schemas/" + EscapeToken(it.key()), doc.uri, 0);
        }
      }
    } else {
      Scan(id, doc.j, "", doc.uri, 0);
    }
    return id;
  }

  static bool IsSchemaMapKw(const std::string& k) {
    return k == "properties" || k == "patternProperties" || k == "$defs" || k == "definitions" ||
           k == "dependentSchemas";
  }
  static bool IsSchemaArrayKw(const std::string& k) {
    return k == "allOf" || k == "anyOf" || k == "oneOf" || k == "prefixItems";
  }
  static bool IsSchemaKw(const std::string& k) {
    return k == "additionalProperties" || k == "propertyNames" || k == "items" ||
           k == "contains" || k == "not" || k == "if" || k == "then" || k == "else" ||
           k == "unevaluatedItems" || k == "unevaluatedProperties" || k == "contentSchema";
  }

  // Records $id, $anchor and $dynamicAnchor under the base URI in force.
  void Scan(int doc, const json& j, const std::string& ptr, std::string base, int d) {
    if (!j.is_object() || d > kMaxSchemaCompileDepth) return;
    auto id = j.find("$id");
    if (id != j.end() && id->is_string() && !docs[doc]->oas30) {
      base = StripFragment(ResolveUri(base, id->get<std::string>()));
      resources[base] = Loc{doc, ptr};
    }
    base_at[std::to_string(doc) + "|" + ptr] = base;
    auto an = j.find("$anchor");
    if (an != j.end() && an->is_string()) anchors[base + "#" + an->get<std::string>()] = Loc{doc, ptr};
    auto dan = j.find("$dynamicAnchor");
    if (dan != j.end() && dan->is_string()) {
      std::string name = dan->get<std::string>();
      anchors[base + "#" + name] = Loc{doc, ptr};
      dyn_anchors[base].push_back({name, Loc{doc, ptr}});
      dynamic_anchor_at[std::to_string(doc) + "|" + ptr + "|" + name] = true;
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      std::string p = ptr + "/" + EscapeToken(k);
      if (IsSchemaKw(k)) {
        Scan(doc, it.value(), p, base, d + 1);
      } else if (IsSchemaArrayKw(k) && it->is_array()) {
        for (size_t i = 0; i < it->size(); ++i) Scan(doc, (*it)[i], p + "/" + std::to_string(i), base, d + 1);
      } else if (IsSchemaMapKw(k) && it->is_object()) {
        for (auto m = it->begin(); m != it->end(); ++m) {
          Scan(doc, m.value(), p + "/" + EscapeToken(m.key()), base, d + 1);
        }
      }
    }
  }

  // The base URI in force at a location (scanned, else the document's).
  std::string BaseAt(const Loc& l) {
    // The nearest scanned ancestor.
    std::string p = l.ptr;
    while (true) {
      auto it = base_at.find(std::to_string(l.doc) + "|" + p);
      if (it != base_at.end()) return it->second;
      if (p.empty()) return docs[l.doc]->uri;
      p = p.substr(0, p.rfind('/'));
    }
  }

  // Resolves `ref` written at `from` to a location, loading documents.
  Result<Loc> ResolveRef(const Loc& from, const std::string& ref) {
    std::string abs = ResolveUri(BaseAt(from), ref);
    std::string uri = StripFragment(abs);
    std::string frag = abs.size() > uri.size() ? PercentDecode(abs.substr(uri.size() + 1)) : "";
    if (!frag.empty() && frag[0] != '/') {
      auto it = anchors.find(uri + "#" + frag);
      if (it == anchors.end()) {
        // The document may not be loaded yet.
        if (!resources.count(uri)) {
          auto l = Load(from, ref, uri);
          if (!l.ok()) return l.status();
          it = anchors.find(uri + "#" + frag);
        }
        if (it == anchors.end()) return NotFound("no anchor `" + frag + "` in `" + uri + "`");
      }
      return it->second;
    }
    auto r = resources.find(uri);
    if (r == resources.end()) {
      auto l = Load(from, ref, uri);
      if (!l.ok()) return l.status();
      r = resources.find(uri);
      if (r == resources.end()) return NotFound("cannot resolve `" + ref + "`");
    }
    Loc target = r->second;
    target.ptr += frag;
    const Doc& d = *docs[target.doc];
    if (!AtPointer(d.j, target.ptr)) return NotFound("`" + ref + "` points at nothing");
    return target;
  }

  Result<int> Load(const Loc& from, const std::string& ref, const std::string& uri) {
    const Doc& fd = *docs[from.doc];
    std::string ref_path = StripFragment(ref);
    Uri ru = ParseUri(ref_path);
    std::string file, arg;
    if (ru.scheme.empty() && !ru.has_authority && !fd.file.empty() &&
        ParseUri(fd.uri).scheme == "file") {
      arg = PercentDecode(ref_path);
      fs::path p = fs::path(DirOf(fd.file)) / arg;
      file = p.lexically_normal().string();
    } else {
      arg = uri;
      if (ParseUri(uri).scheme == "file") file = PercentDecode(ParseUri(uri).path);
    }
    if (!reader) return Unsupported("no reader for `" + uri + "`");
    auto text = reader(fd.file, arg);
    if (!text.ok()) return Status(text.status().code(), "cannot load `" + ref + "`: " + text.status().message());
    std::string display = file.empty() ? uri : file;
    // A document referenced from an OpenAPI 3.0 document keeps its dialect.
    auto id = AddDoc(file, display, uri, *text, false, fd.oas30);
    if (!id.ok()) return id.status();
    resources[uri] = Loc{*id, ""};
    return id;
  }

  // ---- nodes ----

  uint32_t Number(const Loc& l, const std::string& kw, const json& v) {
    std::string text;
    if (v.is_number_integer()) {
      text = v.dump();
    } else {
      auto it = docs[l.doc]->number_texts.find(v.get<double>());
      text = (it != docs[l.doc]->number_texts.end() && !it->second.empty()) ? it->second : v.dump();
    }
    bytecode::Decimal d;
    if (!bytecode::ParseDecimal(text, &d)) {
      Error(l, kw, "number `" + text + "` has more than " + std::to_string(bytecode::kMaxDecimalDigits) + " significant digits or is out of range");
      return kSchemaNone;
    }
    auto [it, inserted] = number_ids.emplace(text, static_cast<uint32_t>(tables.numbers.size()));
    if (inserted) tables.numbers.push_back(Str(text));
    return it->second;
  }

  bool Count(const Loc& l, const std::string& kw, const json& v, uint32_t* out) {
    if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) {
      uint64_t x = v.get<uint64_t>();
      *out = x > 0xfffffffeu ? 0xfffffffeu : static_cast<uint32_t>(x);
      return true;
    }
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (d >= 0 && std::floor(d) == d) {
        *out = d > 4294967294.0 ? 0xfffffffeu : static_cast<uint32_t>(d);
        return true;
      }
    }
    Error(l, kw, "must be a non-negative integer");
    return false;
  }

  uint32_t Regex(const Loc& l, const std::string& kw, const std::string& original) {
    std::string pattern = TranslateEcmaRegex(original);
    RE2::Options o;
    o.set_log_errors(false);
    o.set_max_mem(8 << 20);
    RE2 re(pattern, o);
    if (!re.ok()) {
      Error(l, kw, "pattern `" + original + "` is not supported by RE2 (backreferences and lookaround are not): " + re.error());
      return kSchemaNone;
    }
    auto [it, inserted] = regex_ids.emplace(pattern, static_cast<uint32_t>(tables.regexes.size()));
    if (inserted) tables.regexes.push_back(Str(pattern));
    return it->second;
  }

  uint32_t Const(const json& v) {
    consts.push_back(v);
    return static_cast<uint32_t>(consts.size() - 1);
  }

  uint32_t ListAppend(const std::vector<uint32_t>& words) {
    uint32_t off = static_cast<uint32_t>(tables.lists.size());
    tables.lists.insert(tables.lists.end(), words.begin(), words.end());
    return off;
  }

  Loc Child(const Loc& l, const std::string& a) { return Loc{l.doc, l.ptr + "/" + EscapeToken(a)}; }
  Loc Child(const Loc& l, const std::string& a, const std::string& b) {
    return Loc{l.doc, l.ptr + "/" + EscapeToken(a) + "/" + EscapeToken(b)};
  }

  // Whether the in-place closure of l describes an object and leaves its
  // extra members unsaid (strict mode's test).
  void StrictScan(const Loc& l, std::set<std::string>& seen, bool* object, bool* said) {
    if (seen.size() > 1000 || !seen.insert(std::to_string(l.doc) + "|" + l.ptr).second) return;
    const json* j = AtPointer(docs[l.doc]->j, l.ptr);
    if (!j || !j->is_object()) return;
    if (j->contains("additionalProperties") || j->contains("unevaluatedProperties")) *said = true;
    if (j->contains("properties") || j->contains("patternProperties")) *object = true;
    auto t = j->find("type");
    if (t != j->end()) {
      if (t->is_string() && *t == "object") *object = true;
      if (t->is_array()) {
        for (const auto& x : *t) if (x == "object") *object = true;
      }
    }
    for (const char* k : {"allOf", "anyOf", "oneOf"}) {
      auto a = j->find(k);
      if (a != j->end() && a->is_array()) {
        for (size_t i = 0; i < a->size(); ++i) StrictScan(Child(l, k, std::to_string(i)), seen, object, said);
      }
    }
    for (const char* k : {"if", "then", "else"}) {
      if (j->contains(k)) StrictScan(Child(l, k), seen, object, said);
    }
    auto ds = j->find("dependentSchemas");
    if (ds != j->end() && ds->is_object()) {
      for (auto it = ds->begin(); it != ds->end(); ++it) StrictScan(Child(l, "dependentSchemas", it.key()), seen, object, said);
    }
    for (const char* k : {"$ref", "$dynamicRef"}) {
      auto r = j->find(k);
      if (r != j->end() && r->is_string()) {
        auto t2 = ResolveRef(l, r->get<std::string>());
        if (t2.ok()) StrictScan(*t2, seen, object, said);
      }
    }
  }

  // Compiles the schema at l. `inplace`: applied to the same instance by an
  // applicator of its parent (matters for strict mode only).
  uint32_t Compile(const Loc& l, bool inplace) {
    bool strict_here = opts.strict && !inplace;
    // Under strict mode a node's children compile differently, so the key
    // holds the options and, when strict, the position.
    std::string key = std::string(opts.format_assertion ? "f" : "-") +
                      (opts.strict ? (inplace ? "i" : "p") : "-") + std::to_string(l.doc) + "|" +
                      l.ptr;
    auto m = memo.find(key);
    if (m != memo.end()) return m->second;
    if (nodes.size() >= kMaxCompiledNodes) {
      Error(l, "", "more than " + std::to_string(kMaxCompiledNodes) + " schema nodes");
      return 0;
    }
    uint32_t idx = static_cast<uint32_t>(nodes.size());
    nodes.emplace_back();
    memo[key] = idx;
    const Doc& d = *docs[l.doc];
    nodes[idx].node.location = Str(d.display + "#" + l.ptr);
    nodes[idx].node.dyn_anchors = kSchemaNone;
    const json* jp = AtPointer(d.j, l.ptr);
    if (!jp) {
      Error(l, "", "no schema here");
      nodes[idx].node.kind = 1;
      return idx;
    }
    const json& j = *jp;
    if (j.is_boolean()) {
      nodes[idx].node.kind = j.get<bool>() ? 1 : 0;
      return idx;
    }
    if (!j.is_object()) {
      Error(l, "", "a schema must be an object or a boolean");
      nodes[idx].node.kind = 1;
      return idx;
    }
    if (++depth > kMaxSchemaCompileDepth) {
      Error(l, "", "schema nested deeper than " + std::to_string(kMaxSchemaCompileDepth));
      --depth;
      return idx;
    }
    std::vector<SchemaKeyword> kws = Keywords(l, j);
    if (strict_here) {
      bool object = false, said = false;
      std::set<std::string> seen;
      StrictScan(l, seen, &object, &said);
      if (object && !said) {
        uint32_t f = FalseNode();
        // Without in-place applicators, additionalProperties: false says the
        // same thing in one pass (no annotation tracking).
        bool inplace_kids = false;
        for (const auto& k : kws) {
          auto kk = static_cast<SchemaKw>(k.kind);
          inplace_kids |= kk == SchemaKw::kAllOf || kk == SchemaKw::kAnyOf || kk == SchemaKw::kOneOf ||
                          kk == SchemaKw::kIf || kk == SchemaKw::kRef || kk == SchemaKw::kDynamicRef ||
                          kk == SchemaKw::kDependentSchemas || kk == SchemaKw::kNot;
        }
        SchemaKw implied = inplace_kids ? SchemaKw::kUnevaluatedProperties : SchemaKw::kAdditionalProperties;
        kws.push_back(SchemaKeyword{static_cast<uint16_t>(implied), 1, f, 0, 0});
      }
    }
    std::sort(kws.begin(), kws.end(), [](const SchemaKeyword& a, const SchemaKeyword& b) { return a.kind < b.kind; });
    // Every node carries the $dynamicAnchors of its resource (pushed on the
    // dynamic scope when the node is entered by $ref or is the resource root).
    bool resource = l.ptr.empty() ? !d.is_openapi : (j.contains("$id") && j["$id"].is_string() && !d.oas30);
    if (resource) nodes[idx].node.flags |= bytecode::kSchemaNodeResource;
    std::string base = BaseAt(l);
    auto da = dyn_anchors.find(base);
    if (da != dyn_anchors.end()) {
      auto cached = dyn_lists.find(base);
      if (cached == dyn_lists.end()) {
        std::vector<uint32_t> words;
        for (const auto& [name, loc] : da->second) {
          words.push_back(Str(name));
          words.push_back(Compile(loc, true));
        }
        cached = dyn_lists.emplace(base, std::pair{ListAppend(words), static_cast<uint32_t>(words.size() / 2)}).first;
      }
      nodes[idx].node.dyn_anchors = cached->second.first;
      nodes[idx].node.dyn_count = cached->second.second;
    }
    nodes[idx].node.kind = kws.empty() ? 1 : 2;
    if (kws.size() > 0xffff) Error(l, "", "too many keywords");
    nodes[idx].kws = std::move(kws);
    --depth;
    return idx;
  }

  uint32_t false_node = kSchemaNone;
  uint32_t FalseNode() {
    if (false_node == kSchemaNone) {
      false_node = static_cast<uint32_t>(nodes.size());
      nodes.emplace_back();
      nodes.back().node.kind = 0;
      nodes.back().node.location = Str("(strict mode)");
      nodes.back().node.dyn_anchors = kSchemaNone;
    }
    return false_node;
  }

  std::vector<SchemaKeyword> Keywords(const Loc& l, const json& j);
};

std::vector<SchemaKeyword> SchemaCompiler::Impl::Keywords(const Loc& l, const json& j) {
  std::vector<SchemaKeyword> kws;
  const bool oas30 = docs[l.doc]->oas30;
  auto add = [&](SchemaKw k, uint32_t a = 0, uint32_t b = 0, uint32_t c = 0) {
    kws.push_back(SchemaKeyword{static_cast<uint16_t>(k), 0, a, b, c});
  };
  auto sub = [&](const std::string& kw, bool inplace) { return Compile(Child(l, kw), inplace); };
  auto has = [&](const char* k) { return j.contains(k); };

  // OpenAPI 3.0: a $ref replaces its siblings.
  if (oas30 && has("$ref")) {
    const json& r = j["$ref"];
    if (!r.is_string()) {
      Error(l, "$ref", "must be a string");
      return kws;
    }
    auto t = ResolveRef(l, r.get<std::string>());
    if (!t.ok()) {
      Error(l, "$ref", t.status().message());
      return kws;
    }
    add(SchemaKw::kRef, Compile(*t, true));
    return kws;
  }
  const bool nullable = oas30 && j.contains("nullable") && j["nullable"] == true;

  if (has("type")) {
    static const std::pair<const char*, uint32_t> kTypes[] = {
        {"null", bytecode::kSchemaTypeNull},     {"boolean", bytecode::kSchemaTypeBoolean},
        {"object", bytecode::kSchemaTypeObject}, {"array", bytecode::kSchemaTypeArray},
        {"number", bytecode::kSchemaTypeNumber | bytecode::kSchemaTypeInteger},
        {"string", bytecode::kSchemaTypeString}, {"integer", bytecode::kSchemaTypeInteger}};
    const json& t = j["type"];
    uint32_t mask = 0;
    bool ok = true;
    auto one = [&](const json& x) {
      bool found = false;
      if (x.is_string()) {
        for (const auto& [n, b] : kTypes) {
          if (x == n) {
            mask |= b;
            found = true;
          }
        }
      }
      if (!found) ok = false;
    };
    if (t.is_array()) {
      for (const auto& x : t) one(x);
      if (t.empty()) ok = false;
    } else {
      one(t);
    }
    if (!ok) {
      Error(l, "type", "must be a type name (null, boolean, object, array, number, string, integer) or a non-empty array of them");
    } else {
      if (nullable) mask |= bytecode::kSchemaTypeNull;
      add(SchemaKw::kType, mask);
    }
  }
  if (has("const") && !oas30) add(SchemaKw::kConst, Const(j["const"]));
  if (has("enum")) {
    const json& e = j["enum"];
    if (!e.is_array()) {
      Error(l, "enum", "must be an array");
    } else {
      uint32_t first = static_cast<uint32_t>(consts.size());
      for (const auto& v : e) Const(v);
      uint32_t n = static_cast<uint32_t>(e.size());
      if (nullable && std::find(e.begin(), e.end(), json(nullptr)) == e.end()) {
        Const(json(nullptr));
        ++n;
      }
      add(SchemaKw::kEnum, first, n);
    }
  }
  auto number_kw = [&](const char* name, SchemaKw k) {
    if (!has(name)) return;
    const json& v = j[name];
    if (!v.is_number()) {
      Error(l, name, "must be a number");
      return;
    }
    uint32_t n = Number(l, name, v);
    if (n != kSchemaNone) add(k, n);
  };
  number_kw("minimum", SchemaKw::kMinimum);
  number_kw("maximum", SchemaKw::kMaximum);
  if (oas30) {
    // 3.0: exclusiveMinimum/Maximum are booleans modifying minimum/maximum.
    for (auto [ex, base, k] : {std::tuple{"exclusiveMinimum", "minimum", SchemaKw::kExclusiveMinimum},
                               std::tuple{"exclusiveMaximum", "maximum", SchemaKw::kExclusiveMaximum}}) {
      if (!has(ex)) continue;
      if (j[ex].is_boolean()) {
        if (j[ex] == true && has(base) && j[base].is_number()) {
          uint32_t n = Number(l, base, j[base]);
          if (n != kSchemaNone) add(k, n);
        }
      } else {
        number_kw(ex, k);
      }
    }
  } else {
    number_kw("exclusiveMinimum", SchemaKw::kExclusiveMinimum);
    number_kw("exclusiveMaximum", SchemaKw::kExclusiveMaximum);
  }
  if (has("multipleOf")) {
    const json& v = j["multipleOf"];
    if (!v.is_number() || !(v.get<double>() > 0)) {
      Error(l, "multipleOf", "must be a number greater than 0");
    } else {
      uint32_t n = Number(l, "multipleOf", v);
      if (n != kSchemaNone) {
        bytecode::Decimal d;
        (void)bytecode::ParseDecimal(tables.strings[tables.numbers[n]], &d);
        if (d.n > bytecode::kMaxMultipleOfDigits || d.exp > bytecode::kMaxMultipleOfExponent ||
            d.exp < -bytecode::kMaxMultipleOfExponent) {
          Error(l, "multipleOf", "must have at most " + std::to_string(bytecode::kMaxMultipleOfDigits) +
                                     " significant digits and an exponent within ±" +
                                     std::to_string(bytecode::kMaxMultipleOfExponent));
        } else {
          add(SchemaKw::kMultipleOf, n);
        }
      }
    }
  }
  auto count_kw = [&](const char* name, SchemaKw k) {
    uint32_t v;
    if (has(name) && Count(l, name, j[name], &v)) add(k, v);
  };
  count_kw("minLength", SchemaKw::kMinLength);
  count_kw("maxLength", SchemaKw::kMaxLength);
  count_kw("minItems", SchemaKw::kMinItems);
  count_kw("maxItems", SchemaKw::kMaxItems);
  count_kw("minProperties", SchemaKw::kMinProperties);
  count_kw("maxProperties", SchemaKw::kMaxProperties);
  if (has("pattern")) {
    if (!j["pattern"].is_string()) {
      Error(l, "pattern", "must be a string");
    } else {
      uint32_t r = Regex(l, "pattern", j["pattern"].get<std::string>());
      if (r != kSchemaNone) add(SchemaKw::kPattern, r);
    }
  }
  if (has("format") && opts.format_assertion) {
    static const char* const kFormats[] = {"date-time", "date", "time", "email", "uuid",
                                           "ipv4", "ipv6", "uri", "hostname"};
    const json& f = j["format"];
    uint32_t id = 0;
    for (uint32_t i = 0; i < 9; ++i) {
      if (f == kFormats[i]) id = i + 1;
    }
    if (!f.is_string()) {
      Error(l, "format", "must be a string");
    } else if (id == 0) {
      Error(l, "format", "unknown format `" + f.get<std::string>() + "` (asserted formats: date-time, date, time, email, uuid, ipv4, ipv6, uri, hostname)");
    } else {
      add(SchemaKw::kFormat, id);
    }
  }
  if (has("uniqueItems")) {
    if (!j["uniqueItems"].is_boolean()) Error(l, "uniqueItems", "must be a boolean");
    else if (j["uniqueItems"] == true) add(SchemaKw::kUniqueItems);
  }
  if (has("required")) {
    const json& r = j["required"];
    std::vector<uint32_t> words;
    bool ok = r.is_array();
    if (ok) {
      for (const auto& x : r) {
        if (!x.is_string()) ok = false;
        else words.push_back(Str(x.get<std::string>()));
      }
    }
    if (!ok) Error(l, "required", "must be an array of strings");
    else if (!words.empty()) add(SchemaKw::kRequired, ListAppend(words), static_cast<uint32_t>(words.size()));
  }
  if (has("dependentRequired")) {
    const json& dr = j["dependentRequired"];
    if (!dr.is_object()) {
      Error(l, "dependentRequired", "must be an object of string arrays");
    } else {
      std::vector<uint32_t> triples;
      for (auto it = dr.begin(); it != dr.end(); ++it) {
        std::vector<uint32_t> names;
        bool ok = it->is_array();
        if (ok) {
          for (const auto& x : *it) {
            if (!x.is_string()) ok = false;
            else names.push_back(Str(x.get<std::string>()));
          }
        }
        if (!ok) {
          Error(Child(l, "dependentRequired"), it.key(), "must be an array of strings");
          continue;
        }
        triples.push_back(Str(it.key()));
        triples.push_back(ListAppend(names));
        triples.push_back(static_cast<uint32_t>(names.size()));
      }
      if (!triples.empty()) add(SchemaKw::kDependentRequired, ListAppend(triples), static_cast<uint32_t>(triples.size() / 3));
    }
  }
  if (has("propertyNames")) add(SchemaKw::kPropertyNames, sub("propertyNames", false));
  auto schema_map = [&](const char* name, SchemaKw k, bool inplace, bool sorted) {
    if (!has(name)) return;
    const json& m = j[name];
    if (!m.is_object()) {
      Error(l, name, "must be an object of schemas");
      return;
    }
    std::vector<std::pair<std::string, uint32_t>> entries;
    for (auto it = m.begin(); it != m.end(); ++it) {
      entries.emplace_back(it.key(), Compile(Child(l, name, it.key()), inplace));
    }
    if (sorted) {
      std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
        return bytecode::SchemaNameLess(a.first, b.first);
      });
    }
    std::vector<uint32_t> words;
    for (const auto& [key, node] : entries) {
      if (k == SchemaKw::kPatternProperties) {
        uint32_t r = Regex(Child(l, name), key, key);
        if (r == kSchemaNone) continue;
        words.push_back(r);
      } else {
        words.push_back(Str(key));
      }
      words.push_back(node);
    }
    if (!words.empty()) add(k, ListAppend(words), static_cast<uint32_t>(words.size() / 2));
  };
  schema_map("properties", SchemaKw::kProperties, false, true);
  schema_map("patternProperties", SchemaKw::kPatternProperties, false, false);
  if (has("additionalProperties")) {
    add(SchemaKw::kAdditionalProperties, sub("additionalProperties", false));
  }
  schema_map("dependentSchemas", SchemaKw::kDependentSchemas, true, false);
  uint32_t prefix = 0;
  if (has("prefixItems")) {
    const json& p = j["prefixItems"];
    if (!p.is_array() || p.empty()) {
      Error(l, "prefixItems", "must be a non-empty array of schemas");
    } else {
      std::vector<uint32_t> words;
      for (size_t i = 0; i < p.size(); ++i) words.push_back(Compile(Child(l, "prefixItems", std::to_string(i)), false));
      prefix = static_cast<uint32_t>(words.size());
      add(SchemaKw::kPrefixItems, ListAppend(words), prefix);
    }
  }
  if (has("items")) {
    if (j["items"].is_array()) {
      Error(l, "items", "must be a schema (draft 2020-12 uses prefixItems for tuples)");
    } else {
      add(SchemaKw::kItems, sub("items", false), prefix);
    }
  }
  if (has("contains")) {
    uint32_t mn = 1, mx = kSchemaNone;
    if (has("minContains")) (void)Count(l, "minContains", j["minContains"], &mn);
    if (has("maxContains")) (void)Count(l, "maxContains", j["maxContains"], &mx);
    add(SchemaKw::kContains, sub("contains", false), mn, mx);
  }
  for (auto [name, k] : {std::pair{"$ref", SchemaKw::kRef}, std::pair{"$dynamicRef", SchemaKw::kDynamicRef}}) {
    if (!has(name)) continue;
    const json& r = j[name];
    if (!r.is_string()) {
      Error(l, name, "must be a string");
      continue;
    }
    std::string ref = r.get<std::string>();
    auto t = ResolveRef(l, ref);
    if (!t.ok()) {
      Error(l, name, t.status().message());
      continue;
    }
    uint32_t target = Compile(*t, true);
    uint32_t anchor = kSchemaNone;
    if (k == SchemaKw::kDynamicRef) {
      // Dynamic only when the fragment is a plain name and the static target
      // itself declares that $dynamicAnchor (the "bookend").
      std::string abs = ResolveUri(BaseAt(l), ref);
      size_t h = abs.find('#');
      std::string frag = h == std::string::npos ? "" : abs.substr(h + 1);
      if (!frag.empty() && frag[0] != '/' &&
          dynamic_anchor_at.count(std::to_string(t->doc) + "|" + t->ptr + "|" + frag)) {
        anchor = Str(frag);
      }
    }
    add(k, target, anchor);
  }
  for (auto [name, k] : {std::pair{"allOf", SchemaKw::kAllOf}, std::pair{"anyOf", SchemaKw::kAnyOf},
                         std::pair{"oneOf", SchemaKw::kOneOf}}) {
    if (!has(name)) continue;
    const json& a = j[name];
    if (!a.is_array() || a.empty()) {
      Error(l, name, "must be a non-empty array of schemas");
      continue;
    }
    std::vector<uint32_t> words;
    for (size_t i = 0; i < a.size(); ++i) words.push_back(Compile(Child(l, name, std::to_string(i)), true));
    add(k, ListAppend(words), static_cast<uint32_t>(words.size()));
  }
  if (has("not")) add(SchemaKw::kNot, sub("not", true));
  if (has("if") && (has("then") || has("else"))) {
    uint32_t c = sub("if", true);
    uint32_t t = has("then") ? sub("then", true) : kSchemaNone;
    uint32_t e = has("else") ? sub("else", true) : kSchemaNone;
    add(SchemaKw::kIf, c, t, e);
  } else if (has("if")) {
    // `if` alone only annotates: it still contributes evaluated members.
    add(SchemaKw::kIf, sub("if", true), kSchemaNone, kSchemaNone);
  }
  if (has("unevaluatedItems")) add(SchemaKw::kUnevaluatedItems, sub("unevaluatedItems", false));
  if (has("unevaluatedProperties")) add(SchemaKw::kUnevaluatedProperties, sub("unevaluatedProperties", false));
  return kws;
}


namespace {

Status JoinErrors(const std::vector<std::string>& errors) {
  std::string m;
  for (const auto& e : errors) m += (m.empty() ? "" : "\n") + e;
  return InvalidArgument(m);
}

}  // namespace

SchemaCompiler::SchemaCompiler(SchemaReader reader) : impl_(std::make_unique<Impl>()) {
  impl_->reader = std::move(reader);
}
SchemaCompiler::~SchemaCompiler() = default;

namespace {

Status AddRoot(SchemaCompiler::Impl& im, const std::string& name, int doc, const std::string& ptr,
               const SchemaOptions& opts) {
  if (name.empty()) return InvalidArgument("a schema needs a name");
  for (const auto& r : im.tables.roots) {
    if (im.tables.strings[r.name] == name) return InvalidArgument("schema `" + name + "` is defined twice");
  }
  im.errors.clear();
  im.opts = opts;
  uint32_t node = im.Compile(SchemaCompiler::Impl::Loc{doc, ptr}, false);
  if (!im.errors.empty()) return JoinErrors(im.errors);
  im.tables.roots.push_back(bytecode::SchemaRoot{im.Str(name), node});
  return Status::Ok();
}

std::string FileUri(const std::string& path) {
  std::error_code ec;
  fs::path abs = fs::absolute(path, ec);
  std::string p = (ec ? fs::path(path) : abs).lexically_normal().generic_string();
  if (p.empty() || p[0] != '/') p = "/" + p;
  return "file://" + p;
}

}  // namespace

Status SchemaCompiler::AddJsonText(const std::string& name, const std::string& text,
                                   const SchemaOptions& opts, const std::string& display) {
  std::string disp = display.empty() ? name + ".json" : display;
  auto doc = impl_->AddDoc("", disp, "vakt:/inline/" + disp, text, false, false);
  if (!doc.ok()) return doc.status();
  return AddRoot(*impl_, name, *doc, "", opts);
}

Status SchemaCompiler::AddFile(const std::string& name, const std::string& path,
                               const SchemaOptions& opts) {
  std::string uri = FileUri(path);
  int doc = -1;
  for (size_t i = 0; i < impl_->docs.size(); ++i) {
    if (impl_->docs[i]->uri == uri && !impl_->docs[i]->is_openapi) doc = static_cast<int>(i);
  }
  if (doc < 0) {
    if (!impl_->reader) return Unsupported("no schema reader");
    auto text = impl_->reader("", path);
    if (!text.ok()) return text.status();
    auto d = impl_->AddDoc(path, path, uri, *text, false, false);
    if (!d.ok()) return d.status();
    doc = *d;
  }
  return AddRoot(*impl_, name, doc, "", opts);
}

Status SchemaCompiler::AddOpenApiText(const std::string& name, const std::string& display,
                                      const std::string& text, const OpenApiSelector& sel,
                                      const SchemaOptions& opts) {
  auto oa = ParseOpenApi(display, text);
  if (!oa.ok()) return oa.status();
  auto ptr = FindOpenApiSchema(display, *oa, sel);
  if (!ptr.ok()) return ptr.status();
  std::string uri = display.find("://") == std::string::npos ? FileUri(display) : display;
  int doc = -1;
  for (size_t i = 0; i < impl_->docs.size(); ++i) {
    if (impl_->docs[i]->uri == uri && impl_->docs[i]->is_openapi) doc = static_cast<int>(i);
  }
  if (doc < 0) {
    auto d = impl_->AddDoc(display, display, uri, oa->json_text, true, oa->v30);
    if (!d.ok()) return d.status();
    doc = *d;
  }
  return AddRoot(*impl_, name, doc, *ptr, opts);
}

Status SchemaCompiler::AddOpenApi(const std::string& name, const std::string& path,
                                  const OpenApiSelector& sel, const SchemaOptions& opts) {
  if (!impl_->reader) return Unsupported("no schema reader");
  auto text = impl_->reader("", path);
  if (!text.ok()) return text.status();
  return AddOpenApiText(name, path, *text, sel, opts);
}

Result<std::string> SchemaCompiler::Build() const {
  const Impl& im = *impl_;
  if (im.tables.roots.empty()) return InvalidArgument("no schemas to build");
  bytecode::SchemaTables t = im.tables;
  for (const auto& n : im.nodes) {
    bytecode::SchemaNode node = n.node;
    node.first_keyword = static_cast<uint32_t>(t.keywords.size());
    node.keyword_count = static_cast<uint16_t>(std::min<size_t>(n.kws.size(), 0xffff));
    t.keywords.insert(t.keywords.end(), n.kws.begin(), n.kws.begin() + node.keyword_count);
    t.nodes.push_back(node);
  }
  if (!im.consts.empty()) {
    std::string text;
    try {
      text = im.consts.dump(-1, ' ', false, json::error_handler_t::replace);
    } catch (const std::exception& e) {
      return InvalidArgument(std::string("cannot serialize constants: ") + e.what());
    }
    auto it = im.string_ids.find(text);
    if (it != im.string_ids.end()) {
      t.const_string = it->second;
    } else {
      t.const_string = static_cast<uint32_t>(t.strings.size());
      t.strings.push_back(text);
    }
  }
  std::string bytes = bytecode::SerializeSchema(t);
  if (bytes.size() > bytecode::kMaxSchemaBlobBytes) return ResourceExhausted("compiled schemas too large");
  return bytes;
}

}  // namespace vakt::compiler
