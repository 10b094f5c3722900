// HTTP-level FAPI pieces; see fapi_http.h.
#include "bytecode/fapi_http.h"

namespace vakt::bytecode {
namespace {

inline constexpr size_t kMaxUriBytes = 8192;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }


// RFC 7235 token68: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
bool IsToken68(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  for (; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
    if (!ok) break;
  }
  if (i == 0) return false;
  for (; i < s.size(); ++i) {
    if (s[i] != '=') return false;
  }
  return true;
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool Unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

}  // namespace

Result<AuthorizationToken> ReadAuthorization(std::span<const HeaderField> headers) {
  const HeaderField* found = nullptr;
  for (const HeaderField& h : headers) {
    if (!EqualsIgnoreCase(h.name, "authorization")) continue;
    if (found) return InvalidArgument("more than one Authorization header");
    found = &h;
  }
  AuthorizationToken out;
  if (!found) return out;
  std::string_view v = found->value;
  size_t sp = v.find(' ');
  if (sp == std::string_view::npos) return InvalidArgument("Authorization header without a credential");
  std::string_view scheme = v.substr(0, sp);
  std::string_view rest = v.substr(sp);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t')) rest.remove_suffix(1);
  if (EqualsIgnoreCase(scheme, "bearer")) {
    out.scheme = AuthScheme::kBearer;
  } else if (EqualsIgnoreCase(scheme, "dpop")) {
    out.scheme = AuthScheme::kDPoP;
  } else {
    return InvalidArgument("unsupported authorization scheme");
  }
  if (!IsToken68(rest)) return InvalidArgument("malformed access token");
  out.token = rest;
  return out;
}

Result<std::string> NormalizeHtu(std::string_view uri) {
  if (uri.size() > kMaxUriBytes) return InvalidArgument("uri too long");
  size_t colon = uri.find("://");
  if (colon == std::string_view::npos) return InvalidArgument("not an absolute uri");
  std::string scheme;
  for (char c : uri.substr(0, colon)) scheme += Lower(c);
  if (scheme != "https" && scheme != "http") return InvalidArgument("htu must be http or https");
  std::string_view rest = uri.substr(colon + 3);
  // Query and fragment never take part in the comparison.
  size_t cut = rest.find_first_of("?#");
  if (cut != std::string_view::npos) rest = rest.substr(0, cut);
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
  if (authority.empty()) return InvalidArgument("uri without a host");
  if (authority.find('@') != std::string_view::npos) return InvalidArgument("userinfo in uri");
  std::string_view host = authority, port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return InvalidArgument("bad ipv6 host");
    host = authority.substr(0, close + 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidArgument("bad authority");
      port = after.substr(1);
    }
  } else if (size_t c = authority.rfind(':'); c != std::string_view::npos) {
    host = authority.substr(0, c);
    port = authority.substr(c + 1);
  }
  if (host.empty()) return InvalidArgument("uri without a host");
  for (char c : port) {
    if (c < '0' || c > '9') return InvalidArgument("bad port");
  }
  if (port.size() > 5) return InvalidArgument("bad port");
  while (port.size() > 1 && port.front() == '0') port.remove_prefix(1);
  std::string out = scheme + "://";
  for (char c : host) out += Lower(c);
  bool default_port = port.empty() || (scheme == "https" && port == "443") ||
                      (scheme == "http" && port == "80");
  if (!default_port) {
    out += ':';
    out.append(port);
  }
  for (size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return InvalidArgument("invalid character in uri path");
    }
    if (c != '%') {
      out += c;
      continue;
    }
    if (i + 2 >= path.size()) return InvalidArgument("bad percent escape");
    int hi = Hex(path[i + 1]), lo = Hex(path[i + 2]);
    if (hi < 0 || lo < 0) return InvalidArgument("bad percent escape");
    unsigned char v = static_cast<unsigned char>(hi * 16 + lo);
    if (Unreserved(v)) {
      out += static_cast<char>(v);
    } else {
      static const char* kHex = "0123456789ABCDEF";
      out += '%';
      out += kHex[v >> 4];
      out += kHex[v & 15];
    }
    i += 2;
  }
  return out;
}

bool HtuMatches(std::string_view proof_htu, std::string_view request_uri) {
  auto a = NormalizeHtu(proof_htu);
  auto b = NormalizeHtu(request_uri);
  return a.ok() && b.ok() && *a == *b;
}

std::string Challenge(AuthScheme scheme, std::string_view error, std::string_view description,
                      std::string_view scope, std::string_view algs) {
  std::string out = scheme == AuthScheme::kDPoP ? "DPoP" : "Bearer";
  bool first = true;
  auto param = [&](std::string_view name, std::string_view value, size_t limit) {
    out += first ? " " : ", ";
    first = false;
    out.append(name);
    out += "=\"";
    size_t n = 0;
    for (char c : value) {
      if (n >= limit) break;
      unsigned char u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) continue;
      if (c == '"' || c == '\\') out += '\\';
      out += c;
      ++n;
    }
    out += '"';
  };
  if (!error.empty()) param("error", error, 64);
  if (!error.empty() && !description.empty()) param("error_description", description, 256);
  if (!scope.empty()) param("scope", scope, 256);
  if (scheme == AuthScheme::kDPoP && !algs.empty()) param("algs", algs, 64);
  return out;
}

}  // namespace vakt::bytecode
