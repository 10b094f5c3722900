// Schema declarations and OpenAPI route bindings -> one SchemaSet blob.
// See schemas.h. Engine errors already carry the file and JSON pointer; this
// stage only places them at the declaration that caused them.
#include "compiler/schemas.h"

#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "bytecode/schema.h"
#include "compiler/openapi.h"

namespace vakt::compiler {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Template `{a}` or `{a:Shape}` segments become `{}`, so parameter names do
// not have to agree between the policy and the document.
std::string PathShape(const std::string& p) {
  std::string out;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '{') {
      size_t close = p.find('}', i);
      if (close == std::string::npos) return out + p.substr(i);
      out += "{}";
      i = close;
    } else {
      out.push_back(p[i]);
    }
  }
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

std::string JoinBase(const std::string& base, const std::string& path) {
  std::string b = base;
  while (!b.empty() && b.back() == '/') b.pop_back();
  if (path.empty() || path == "/") return b.empty() ? "/" : b;
  return b + (path[0] == '/' ? "" : "/") + path;
}

// Reads schema files for the engine through the policy's AssetReader. The
// engine sees each file under its path relative to `root` (the common
// directory of the .vakt files naming schemas), so equal names beside
// different .vakt files stay distinct, and the names, which end up in the
// bundle's schema locations, do not depend on where the sources are checked
// out. The AssetReader is asked relative to the naming .vakt file.
class Reader {
 public:
  Reader(const AssetReader& read, fs::path root) : read_(read), root_(std::move(root)) {}

  void Enter(const dsl::SourceFile* file) { vakt_ = file; }

  // The engine's name for `written` in the current .vakt file.
  std::string EngineName(const std::string& written) const {
    fs::path p(written);
    if (p.is_absolute() || vakt_ == nullptr) return p.lexically_normal().generic_string();
    fs::path full = (fs::path(vakt_->path).parent_path() / p).lexically_normal();
    fs::path rel = root_.empty() ? full : full.lexically_relative(root_);
    return (rel.empty() ? full : rel).generic_string();
  }

  SchemaReader AsSchemaReader() {
    return [this](const std::string& from_file, const std::string& path) -> Result<std::string> {
      if (!read_) return Unsupported("files cannot be read here");
      if (vakt_ == nullptr) return Unsupported("no policy file");
      if (path.find("://") != std::string::npos) {
        return Unsupported("`" + path + "`: only relative file references are read");
      }
      fs::path engine = from_file.empty()
                            ? fs::path(path)
                            : (fs::path(from_file).parent_path() / path).lexically_normal();
      if (!engine.is_absolute() && !root_.empty()) engine = (root_ / engine).lexically_normal();
      fs::path dir = fs::path(vakt_->path).parent_path();
      fs::path rel = engine;
      if (!dir.empty() && engine.is_absolute() == dir.is_absolute()) {
        rel = engine.lexically_relative(dir);
      }
      if (rel.empty()) rel = engine;
      return read_(*vakt_, rel.generic_string());
    };
  }

 private:
  const AssetReader& read_;
  fs::path root_;
  const dsl::SourceFile* vakt_ = nullptr;
};

// The deepest directory holding every .vakt file in `files` ("" if none).
fs::path CommonDirectory(const std::vector<const dsl::SourceFile*>& files) {
  fs::path common;
  bool first = true;
  for (const dsl::SourceFile* f : files) {
    if (f == nullptr) continue;
    fs::path dir = fs::path(f->path).parent_path().lexically_normal();
    if (first) {
      common = dir;
      first = false;
      continue;
    }
    fs::path next;
    auto a = common.begin(), b = dir.begin();
    for (; a != common.end() && b != dir.end() && *a == *b; ++a, ++b) next /= *a;
    common = next;
  }
  return common;
}

std::string StatusKeyName(uint16_t key) {
  if (key == kDefaultStatus) return "default";
  if (key < 10) return std::to_string(key) + "XX";
  return std::to_string(key);
}

// An error of the engine that only says the OpenAPI object has no JSON
// schema (a 204 without content, a text/plain body): no check, not an error.
bool NoJsonContent(const Status& s) {
  if (s.code() != StatusCode::kNotFound) return false;
  const std::string& m = s.message();
  return m.find("has no content") != std::string::npos ||
         m.find("has no application/json content") != std::string::npos;
}

class Stage {
 public:
  Stage(const AssetReader& read, fs::path root, dsl::Diagnostics& diags)
      : reader_(read, std::move(root)), diags_(diags), compiler_(reader_.AsSchemaReader()) {}

  void Declare(const SchemaDecl& d) {
    reader_.Enter(d.loc.file);
    if (!names_.insert(d.name).second) {
      diags_.Error(d.loc, "schema `" + d.name + "` is declared twice");
      return;
    }
    Status s;
    switch (d.kind) {
      case SchemaDecl::Kind::kFile:
        s = compiler_.AddFile(d.name, reader_.EngineName(d.source), d.options);
        break;
      case SchemaDecl::Kind::kInline: {
        std::string display = (d.loc.file ? reader_.EngineName(fs::path(d.loc.file->path)
                                                                    .filename()
                                                                    .generic_string())
                                          : std::string("<inline>")) +
                              ":" +
                              std::to_string(d.loc.line) + " (schema " + d.name + ")";
        s = compiler_.AddJsonText(d.name, d.source, d.options, display);
        break;
      }
      case SchemaDecl::Kind::kOpenApi: {
        OpenApiSelector sel;
        sel.component = d.component;
        s = compiler_.AddOpenApi(d.name, reader_.EngineName(d.source), sel, d.options);
        break;
      }
    }
    if (!s.ok()) Report(d.loc, d.name, s);
  }

  BoundBodies Bind(const OpenApiBinding& b) {
    BoundBodies out;
    reader_.Enter(b.loc.file);
    std::string engine = reader_.EngineName(b.document);
    auto text = reader_.AsSchemaReader()("", engine);
    if (!text.ok()) {
      diags_.Error(b.loc, "cannot read `" + b.document + "`: " + text.status().message());
      return out;
    }
    auto doc = ParseOpenApi(engine, *text);
    if (!doc.ok()) {
      diags_.Error(b.loc, doc.status().message());
      return out;
    }
    json root = json::parse(doc->json_text, nullptr, false);
    if (!root.is_object() || !root.contains("paths") || !root["paths"].is_object()) {
      diags_.Error(b.loc, "`" + b.document + "` has no paths");
      return out;
    }
    std::string method = b.method;
    for (char& c : method) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const json& paths = root["paths"];
    std::string key;
    bool key_found = false;
    for (const std::string& want :
         {PathShape(JoinBase(b.base_path, b.path_template)), PathShape(b.path_template)}) {
      for (auto it = paths.begin(); it != paths.end() && !key_found; ++it) {
        if (PathShape(it.key()) != want) continue;
        if (it->is_object() && it->contains(method)) {
          key = it.key();
          key_found = true;
        }
      }
      if (key_found) break;
    }
    if (!key_found) {
      diags_.Error(b.loc, "route `" + b.route + "` (" + b.method + " " +
                              JoinBase(b.base_path, b.path_template) + ") has no operation in `" +
                              b.document + "`");
      return out;
    }
    // Request body.
    std::string prefix = "openapi:" + b.route + ":";
    OpenApiSelector sel;
    sel.method = method;
    sel.path = key;
    const json& op = paths[key][method];
    if (op.is_object() && op.contains("requestBody")) {
      std::string name = prefix + "request";
      Status s = compiler_.AddOpenApiText(name, engine, *text, sel, b.options);
      if (s.ok()) {
        out.has_request = true;
        out.request_schema = name;
        names_.insert(name);
      } else if (!NoJsonContent(s)) {
        Report(b.loc, name, s);
      }
    }
    // Responses, by status key.
    if (!op.is_object() || !op.contains("responses") || !op["responses"].is_object()) return out;
    const json& responses = op["responses"];
    std::set<std::string> keys;
    for (auto it = responses.begin(); it != responses.end(); ++it) keys.insert(it.key());
    for (const std::string& k : keys) {
      int status = -1;
      uint16_t status_key = 0;
      if (k == "default") {
        for (int s = 100; s <= 599 && status < 0; ++s) {
          std::string range = std::to_string(s / 100) + "XX", lc = std::to_string(s / 100) + "xx";
          if (!keys.count(std::to_string(s)) && !keys.count(range) && !keys.count(lc)) status = s;
        }
        status_key = kDefaultStatus;
      } else if (k.size() == 3 && k[0] >= '1' && k[0] <= '5' && (k[1] == 'X' || k[1] == 'x') &&
                 (k[2] == 'X' || k[2] == 'x')) {
        int cls = k[0] - '0';
        for (int s = cls * 100; s < cls * 100 + 100 && status < 0; ++s) {
          if (!keys.count(std::to_string(s))) status = s;
        }
        status_key = static_cast<uint16_t>(cls);
      } else if (k.size() == 3 && k[0] >= '1' && k[0] <= '5' && std::isdigit(static_cast<unsigned char>(k[1])) &&
                 std::isdigit(static_cast<unsigned char>(k[2]))) {
        status = std::stoi(k);
        status_key = static_cast<uint16_t>(status);
      } else {
        continue;  // extensions (x-...) and anything else OpenAPI does not define
      }
      if (status < 0) continue;
      sel.status = status;
      std::string name = prefix + StatusKeyName(status_key);
      Status s = compiler_.AddOpenApiText(name, engine, *text, sel, b.options);
      if (s.ok()) {
        out.responses.emplace_back(status_key, name);
        names_.insert(name);
      } else if (!NoJsonContent(s)) {
        Report(b.loc, name, s);
      }
    }
    return out;
  }

  SchemaBuild Finish() {
    SchemaBuild out;
    if (names_.empty() || diags_.HasErrors()) return out;
    auto blob = compiler_.Build();
    if (!blob.ok()) {
      diags_.Error(dsl::Location{}, "schemas: " + blob.status().message());
      return out;
    }
    auto set = bytecode::SchemaSet::Load(*blob);
    if (!set.ok()) {
      diags_.Error(dsl::Location{}, "schemas: the compiled set does not load: " +
                                        set.status().message());
      return out;
    }
    for (const std::string& n : names_) {
      if (auto r = (*set)->FindRoot(n)) out.roots[n] = *r;
    }
    out.blob = std::move(*blob);
    return out;
  }

 private:
  void Report(const dsl::Location& loc, const std::string& name, const Status& s) {
    diags_.Error(loc, "schema `" + name + "`: " + s.message());
  }

  Reader reader_;
  dsl::Diagnostics& diags_;
  SchemaCompiler compiler_;
  std::set<std::string> names_;
};

}  // namespace

std::string OpenApiPathOf(const std::string& route_template) {
  std::string out;
  for (size_t i = 0; i < route_template.size(); ++i) {
    char c = route_template[i];
    if (c == '{') {
      size_t close = route_template.find('}', i);
      if (close == std::string::npos) return out + route_template.substr(i);
      std::string inner = route_template.substr(i + 1, close - i - 1);
      out += '{';
      out += inner.substr(0, inner.find(':'));
      out += '}';
      i = close;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

SchemaBuild CompileSchemas(const std::vector<SchemaDecl>& decls,
                           const std::vector<OpenApiBinding>& bindings,
                           const AssetReader& read_asset, dsl::Diagnostics& diags) {
  std::vector<const dsl::SourceFile*> naming;
  for (const SchemaDecl& d : decls) naming.push_back(d.loc.file);
  for (const OpenApiBinding& b : bindings) naming.push_back(b.loc.file);
  Stage stage(read_asset, CommonDirectory(naming), diags);
  for (const SchemaDecl& d : decls) stage.Declare(d);
  std::vector<BoundBodies> bound;
  bound.reserve(bindings.size());
  for (const OpenApiBinding& b : bindings) bound.push_back(stage.Bind(b));
  SchemaBuild out = stage.Finish();
  out.bindings = std::move(bound);
  return out;
}

}  // namespace vakt::compiler
