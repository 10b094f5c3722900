// Forward-auth translation and answers (forward_auth.h). Pure functions: no
// sockets, no clocks, no allocation beyond the result. Every input byte is
// hostile; every loop is bounded by the input (and the options' limits).
// Tested by tests/agent_http_test.cc.
#include "agent/forward_auth.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <span>

#include "bytecode/request.h"

namespace vakt::agent {

using bytecode::EqualsIgnoreCase;
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }


std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// RFC 9110 tchar.
bool IsTchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool IsToken(std::string_view s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    if (!IsTchar(c)) return false;
  }
  return true;
}

// Printable ASCII (space to tilde) only, at most `max` bytes; anything else
// is replaced by '?' and the rest cut off.
std::string Printable(std::string_view s, size_t max) {
  std::string out;
  out.reserve(std::min(s.size(), max));
  for (size_t i = 0; i < s.size() && i < max; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  return out;
}

bool IsPrintable(std::string_view s) {
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

void AppendJsonString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          *out += "\\u00";
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

// Headers never passed to the policy: hop-by-hop (RFC 9110 7.6.1) and the
// framing of the auth request itself.
constexpr std::string_view kHopByHop[] = {"connection", "keep-alive",    "proxy-connection",
                                          "te",         "trailer",       "transfer-encoding",
                                          "upgrade",    "content-length"};
// Forwarding headers of either dialect: consumed (or ignored), never passed.
constexpr std::string_view kForwarding[] = {
    "x-forwarded-method", "x-forwarded-uri",    "x-forwarded-host",   "x-forwarded-proto",
    "x-forwarded-port",   "x-forwarded-server", "x-forwarded-prefix", "x-original-method",
    "x-original-uri",     "x-original-url",     "x-original-host"};

bool InList(std::string_view lname, std::span<const std::string_view> list) {
  for (std::string_view n : list) {
    if (n == lname) return true;
  }
  return false;
}

// Is `lname` listed in a Connection header value (comma-separated tokens)?
bool InConnection(std::string_view lname, const std::vector<std::string>& connection_tokens) {
  for (const std::string& t : connection_tokens) {
    if (t == lname) return true;
  }
  return false;
}

// One header slot that may be given at most once.
struct Single {
  std::string_view value;
  int count = 0;
  void Set(std::string_view v) {
    value = Trim(v);
    ++count;
  }
};

ForwardResult Fail(uint16_t status, std::string description) {
  ForwardResult r;
  r.ok = false;
  r.error.status = status;
  r.error.error = "invalid_request";
  r.error.description = std::move(description);
  return r;
}

}  // namespace

// ---- TrustedProxies ---------------------------------------------------------

Result<TrustedProxies> TrustedProxies::Parse(const std::vector<std::string>& cidrs) {
  std::vector<std::string> trimmed;
  trimmed.reserve(cidrs.size());
  for (const std::string& c : cidrs) trimmed.emplace_back(Trim(c));
  auto set = ParseCidrs(trimmed);
  if (!set.ok()) return InvalidArgument("trusted proxies: " + set.status().message());
  TrustedProxies out;
  out.set_ = std::move(set).value();
  return out;
}

bool TrustedProxies::Contains(std::string_view ip) const {
  if (ip.size() >= 2 && ip.front() == '[' && ip.back() == ']') ip = ip.substr(1, ip.size() - 2);
  return set_.Contains(ip);
}

// ---- translation ------------------------------------------------------------

ForwardResult TranslateForwarded(const AuthRequestIn& in, ForwardDialect dialect,
                                 const ForwardAuthOptions& options) {
  // Bounds first: the whole header set, before anything is copied.
  if (in.headers.size() > options.max_headers) {
    return Fail(
        431, "the auth request has more than " + std::to_string(options.max_headers) + " headers");
  }
  size_t bytes = 0;
  for (const auto& [name, value] : in.headers) bytes += name.size() + value.size();
  if (bytes > options.max_header_bytes) {
    return Fail(431, "the auth request's headers exceed " +
                         std::to_string(options.max_header_bytes) + " bytes");
  }

  const std::string tls_version_name = ToLower(options.tls_version_header);
  const std::string tls_cipher_name = ToLower(options.tls_cipher_header);
  const std::string cert_name = ToLower(options.client_cert_header);
  const std::string_view method_name =
      dialect == ForwardDialect::kForwardAuth ? "x-forwarded-method" : "x-original-method";
  const std::string_view uri_name =
      dialect == ForwardDialect::kForwardAuth ? "x-forwarded-uri" : "x-original-uri";

  // Connection-listed headers are hop-by-hop too (bounded: the header bytes).
  std::vector<std::string> connection_tokens;
  for (const auto& [name, value] : in.headers) {
    if (!EqualsIgnoreCase(name, "connection")) continue;
    std::string_view v = value;
    while (!v.empty()) {
      size_t comma = v.find(',');
      std::string_view tok = Trim(v.substr(0, comma));
      if (!tok.empty()) connection_tokens.push_back(ToLower(tok));
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }

  Single method, uri, fwd_host, host, tls_version, tls_cipher, cert;
  ForwardResult r;
  bytecode::OwnedRequest& req = r.forwarded.request;
  std::string lname;
  for (const auto& [name, value] : in.headers) {
    lname = ToLower(name);
    if (lname == method_name) {
      method.Set(value);
    } else if (lname == uri_name) {
      uri.Set(value);
    } else if (lname == "x-forwarded-host") {
      fwd_host.Set(value);
    } else if (lname == "host") {
      host.Set(value);
    } else if (lname == tls_version_name || lname == tls_cipher_name || lname == cert_name) {
      if (!in.peer_trusted) {
        r.forwarded.ignored_tls_headers = true;
        continue;
      }
      if (lname == tls_version_name) tls_version.Set(value);
      if (lname == tls_cipher_name) tls_cipher.Set(value);
      if (lname == cert_name) cert.Set(value);
    } else if (InList(lname, kHopByHop) || InList(lname, kForwarding) ||
               lname.starts_with("x-vakt-") || InConnection(lname, connection_tokens)) {
      continue;
    } else {
      req.headers.emplace_back(lname, std::string(value));
    }
  }

  for (const auto& [slot, label] :
       {std::pair<const Single*, std::string_view>{&method, method_name},
        {&uri, uri_name},
        {&fwd_host, "x-forwarded-host"},
        {&host, "host"},
        {&tls_version, "the TLS version header"},
        {&tls_cipher, "the TLS cipher header"},
        {&cert, "the client certificate header"}}) {
    if (slot->count > 1) return Fail(400, "more than one " + std::string(label) + " header");
  }

  // The original method: the dialect's header, else the auth request's own
  // (Traefik forwards the original method as the auth request's method).
  std::string_view m = method.count ? method.value : in.method;
  if (!IsToken(m, bytecode::kMaxMethodBytes)) {
    return Fail(400, "the original method is missing or malformed");
  }
  req.method = std::string(m);

  if (uri.count == 0 || uri.value.empty()) {
    return Fail(400, "the auth request has no " + std::string(uri_name) + " header");
  }
  if (uri.value.size() > bytecode::kMaxTargetBytes) {
    return Fail(414, "the original URI is longer than " +
                         std::to_string(bytecode::kMaxTargetBytes) + " bytes");
  }
  req.target = std::string(uri.value);

  std::string_view h = fwd_host.count ? fwd_host.value : host.value;
  if (fwd_host.count || host.count) {
    if (h.empty() || !IsPrintable(h) || h.find(',') != std::string_view::npos) {
      return Fail(400, "the forwarded Host is malformed");
    }
    req.headers.emplace_back("host", std::string(h));
  }

  if (in.peer_trusted) {
    if (!tls_version.value.empty()) {
      if (!IsToken(tls_version.value, 32)) return Fail(400, "the TLS version header is malformed");
      req.tls_version = std::string(tls_version.value);
      if (!tls_cipher.value.empty()) {
        if (!IsToken(tls_cipher.value, 128)) {
          return Fail(400, "the TLS cipher header is malformed");
        }
        req.tls_cipher = std::string(tls_cipher.value);
      }
      if (!cert.value.empty()) {
        auto pem = bytecode::UnescapeProxyCertificate(cert.value);
        if (!pem.ok()) {
          return Fail(400, "the client certificate header is malformed: " + pem.status().message());
        }
        req.client_cert = std::move(pem).value();
      }
    } else if (!tls_cipher.value.empty() || !cert.value.empty()) {
      // A cipher or certificate without a TLS version cannot be: refuse
      // rather than guess (a proxy misconfiguration).
      return Fail(400, "TLS facts without the TLS version header");
    }
  }

  req.body = std::string(in.body);
  r.ok = true;
  return r;
}

Verdict ErrorVerdict(const ForwardError& error) {
  Verdict v;
  v.allow = false;
  v.status = error.status;
  v.error = error.error;
  v.description = error.description;
  v.rule = std::string(kRuleForwardAuth);
  return v;
}

// ---- answers ----------------------------------------------------------------

std::string ErrorJson(std::string_view error, std::string_view description) {
  std::string out = "{";
  if (!error.empty()) {
    out += "\"error\":";
    AppendJsonString(&out, error);
    out += ",";
  }
  out += "\"error_description\":";
  AppendJsonString(&out, description);
  out += "}";
  return out;
}

namespace {

// Verdict headers, minus any with bytes a header cannot carry.
void CopyHeaders(const Verdict& v, HttpAnswer* a) {
  for (const auto& [name, value] : v.headers) {
    if (!IsToken(name, 256) || !IsPrintable(value)) continue;
    a->headers.emplace_back(name, value);
  }
}

}  // namespace

HttpAnswer ForwardAuthAnswer(const Verdict& verdict) {
  HttpAnswer a;
  if (verdict.allow) {
    a.status = 200;
    CopyHeaders(verdict, &a);  // e.g. a fresh DPoP-Nonce
    return a;
  }
  a.status = (verdict.status >= 400 && verdict.status <= 599) ? verdict.status : 403;
  CopyHeaders(verdict, &a);
  a.body = ErrorJson(verdict.error, verdict.description);
  return a;
}

HttpAnswer AuthRequestAnswer(const Verdict& verdict) {
  HttpAnswer a;
  if (verdict.allow) {
    a.status = 200;
    CopyHeaders(verdict, &a);  // e.g. a fresh DPoP-Nonce
    return a;
  }
  uint16_t real = (verdict.status >= 400 && verdict.status <= 599) ? verdict.status : 403;
  a.status = real == 401 ? 401 : 403;
  CopyHeaders(verdict, &a);
  a.headers.emplace_back("X-Vakt-Status", std::to_string(real));
  if (IsToken(verdict.error, 64)) a.headers.emplace_back("X-Vakt-Error", verdict.error);
  if (!verdict.description.empty()) {
    a.headers.emplace_back("X-Vakt-Error-Description", Printable(verdict.description, 512));
  }
  a.body = ErrorJson(verdict.error, verdict.description);
  return a;
}

HttpAnswer DeniedAnswer(const AuthRequestIn& in) {
  HttpAnswer a;
  a.status = 403;
  if (!in.peer_trusted) {
    a.body = ErrorJson("access_denied", "the request was denied");
    return a;
  }
  std::string_view status, error, description, www, nonce;
  for (const auto& [name, value] : in.headers) {
    if (EqualsIgnoreCase(name, "x-vakt-status"))
      status = Trim(value);
    else if (EqualsIgnoreCase(name, "x-vakt-error"))
      error = Trim(value);
    else if (EqualsIgnoreCase(name, "x-vakt-error-description"))
      description = Trim(value);
    else if (EqualsIgnoreCase(name, "x-vakt-www-authenticate"))
      www = Trim(value);
    else if (EqualsIgnoreCase(name, "x-vakt-dpop-nonce"))
      nonce = Trim(value);
  }
  if (status.size() == 3 && status[0] >= '4' && status[0] <= '5' && status[1] >= '0' &&
      status[1] <= '9' && status[2] >= '0' && status[2] <= '9') {
    a.status =
        static_cast<uint16_t>((status[0] - '0') * 100 + (status[1] - '0') * 10 + (status[2] - '0'));
  }
  if (!IsToken(error, 64)) error = {};
  if (error.empty() && description.empty()) {
    error = a.status == 401 ? "" : "access_denied";
    description = "the request was denied";
  }
  // On 401 nginx's auth_request already copies the auth answer's
  // WWW-Authenticate to the client: adding it again would double it.
  if (a.status != 401 && !www.empty() && www.size() <= 2048 && IsPrintable(www)) {
    a.headers.emplace_back("WWW-Authenticate", std::string(www));
  }
  if (!nonce.empty() && IsToken(nonce, 256))
    a.headers.emplace_back("DPoP-Nonce", std::string(nonce));
  a.body = ErrorJson(error, Printable(description, 512));
  return a;
}

}  // namespace vakt::agent
