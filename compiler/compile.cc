// The compiler driver; see compile.h.
#include "compiler/compile.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "compiler/lower.h"
#include "dsl/parser.h"

namespace vakt::compiler {

namespace fs = std::filesystem;

namespace {

bool ReadFile(const fs::path& p, std::string* out, std::string* err) {
  std::error_code ec;
  auto size = fs::file_size(p, ec);
  if (ec) {
    *err = ec.message();
    return false;
  }
  if (size > dsl::kMaxSourceBytes) {
    *err = "file is larger than " + std::to_string(dsl::kMaxSourceBytes) + " bytes";
    return false;
  }
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    *err = "cannot open file";
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

}  // namespace

void AddSource(SourceSet& set, std::string path, std::string text) {
  auto f = std::make_unique<dsl::SourceFile>();
  set.digest_names.push_back(fs::path(path).filename().string());
  f->path = std::move(path);
  f->text = std::move(text);
  set.files.push_back(std::move(f));
}

void LoadSources(const std::vector<std::string>& paths, SourceSet& out, dsl::Diagnostics& diags) {
  for (const auto& arg : paths) {
    std::error_code ec;
    fs::path p(arg);
    if (fs::is_directory(p, ec)) {
      std::vector<fs::path> found;
      fs::recursive_directory_iterator it(p, fs::directory_options::skip_permission_denied, ec),
          end;
      for (; !ec && it != end; it.increment(ec)) {
        if (it->is_regular_file(ec) && it->path().extension() == ".vakt") found.push_back(it->path());
      }
      if (ec) {
        diags.Error({}, "cannot read directory `" + arg + "`: " + ec.message());
        continue;
      }
      std::sort(found.begin(), found.end());
      if (found.empty()) diags.Warning({}, "no `.vakt` files in `" + arg + "`");
      for (const auto& f : found) {
        std::string text, err;
        if (!ReadFile(f, &text, &err)) {
          diags.Error({}, "cannot read `" + f.string() + "`: " + err);
          continue;
        }
        auto sf = std::make_unique<dsl::SourceFile>();
        sf->path = f.string();
        sf->text = std::move(text);
        out.digest_names.push_back(fs::relative(f, p, ec).generic_string());
        out.files.push_back(std::move(sf));
      }
      continue;
    }
    std::string text, err;
    if (!fs::exists(p, ec)) {
      diags.Error({}, "no such file or directory `" + arg + "`");
      continue;
    }
    if (!ReadFile(p, &text, &err)) {
      diags.Error({}, "cannot read `" + arg + "`: " + err);
      continue;
    }
    AddSource(out, arg, std::move(text));
  }
}

std::unique_ptr<Compilation> Compile(const SourceSet& sources, const CompileOptions& opts,
                                     dsl::Diagnostics& diags) {
  auto c = std::make_unique<Compilation>();
  // Files parse independently: spread them over the cores (at most
  // kMaxParseThreads), each with its own diagnostics, merged in file order
  // so the output does not depend on scheduling.
  const size_t n = sources.files.size();
  c->files.resize(n);
  std::vector<dsl::Diagnostics> file_diags(n);
  size_t threads = std::min<size_t>({n, std::max(1u, std::thread::hardware_concurrency()),
                                     kMaxParseThreads});
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i = next++; i < n; i = next++) {
      c->files[i] = dsl::ParseFile(*sources.files[i], file_diags[i]);
    }
  };
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    for (size_t t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
  }
  std::vector<const dsl::ast::File*> asts;
  for (size_t i = 0; i < n; ++i) {
    diags.Append(file_diags[i]);
    asts.push_back(c->files[i].get());
  }
  std::string name = opts.name;
  if (name.empty()) {
    for (const auto* f : asts) {
      if (!f->apis.empty()) {
        name = f->package.empty() ? "main" : f->package;
        break;
      }
    }
    if (name.empty()) name = "policy";
  }
  if (!diags.HasErrors()) {
    AssetReader recording = [&](const dsl::SourceFile& from,
                                const std::string& path) -> Result<std::string> {
      auto r = opts.read_asset ? opts.read_asset(from, path) : ReadAssetFromDisk(from, path);
      if (r.ok()) c->assets.emplace_back(path, *r);
      return r;
    };
    c->ir = Lower(asts, name, diags, recording);
  }
  if (!diags.HasErrors()) {
    c->data.name = name;
    // Source digest: relative names and contents, in sorted order.
    std::vector<size_t> order(sources.files.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return sources.digest_names[a] < sources.digest_names[b];
    });
    std::string all;
    for (size_t i : order) {
      all += sources.digest_names[i];
      all.push_back('\0');
      all += std::to_string(sources.files[i]->text.size());
      all.push_back('\0');
      all += sources.files[i]->text;
    }
    for (const auto& [path, text] : c->assets) {
      all += "asset";
      all.push_back('\0');
      all += path;
      all.push_back('\0');
      all += std::to_string(text.size());
      all.push_back('\0');
      all += text;
    }
    c->data.source_digest = bytecode::Sha256(all);
    if (Generate(c->ir, opts.codegen, c->data, diags) && !diags.HasErrors()) {
      c->bytes = bytecode::Serialize(c->data);
    }
  }
  diags.Sort();
  return c;
}

Result<std::string> ReadAssetFromDisk(const dsl::SourceFile& from,
                                                const std::string& path) {
  if (path.empty()) return InvalidArgument("empty file name");
  fs::path p(path);
  if (p.is_relative()) p = fs::path(from.path).parent_path() / p;
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) {
    return NotFound("`" + p.generic_string() + "` is not a readable file");
  }
  auto size = fs::file_size(p, ec);
  if (!ec && size > kMaxRelationFileBytes) {
    return ResourceExhausted("`" + p.generic_string() + "` is over 64 MiB");
  }
  std::ifstream in(p, std::ios::binary);
  if (!in) return NotFound("cannot open `" + p.generic_string() + "`");
  // Read at most one byte past the limit, in chunks (the size may change).
  std::string text;
  char buf[1 << 16];
  while (in && text.size() <= kMaxRelationFileBytes) {
    in.read(buf, sizeof(buf));
    text.append(buf, static_cast<size_t>(in.gcount()));
  }
  if (text.size() > kMaxRelationFileBytes) {
    return ResourceExhausted("`" + p.generic_string() + "` is over 64 MiB");
  }
  return text;
}

}  // namespace vakt::compiler
