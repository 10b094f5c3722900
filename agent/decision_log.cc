// Decision logs: masking, the bounded ring and batches. See decision_log.h.
#include "agent/decision_log.h"

#include "bytecode/request.h"

#include <algorithm>
#include <array>
#include <chrono>

namespace vakt::agent {

using bytecode::EqualsIgnoreCase;

namespace {

constexpr std::array<std::string_view, 5> kAlwaysMaskedHeaders = {
    "authorization", "proxy-authorization", "dpop", "cookie", "set-cookie"};
constexpr std::array<std::string_view, 6> kAlwaysMaskedParams = {
    "access_token", "id_token", "refresh_token", "client_secret", "code_verifier", "password"};

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}


// Printable ASCII only (other bytes become '?'), at most `max` bytes; a cut
// string ends in "...".
std::string Clean(std::string_view s, size_t max) {
  const bool cut = s.size() > max;
  if (cut) s = s.substr(0, max >= 3 ? max - 3 : 0);
  std::string out(s);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) c = '?';
  }
  if (cut) out += std::string_view("...").substr(0, std::min<size_t>(3, max));
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = Lower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Percent-decodes (and '+' -> ' ') a query name, lower-cased, for matching.
std::string DecodeName(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        c = static_cast<char>(hi * 16 + lo);
        i += 2;
      }
    } else if (c == '+') {
      c = ' ';
    }
    out.push_back(Lower(c));
  }
  return out;
}

int64_t SystemNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (u < 0x20 || u >= 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out->append("\\u00");
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 15]);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

}  // namespace

bool IsAlwaysMaskedHeader(std::string_view name) {
  for (std::string_view h : kAlwaysMaskedHeaders) {
    if (EqualsIgnoreCase(name, h)) return true;
  }
  return false;
}

bool IsAlwaysMaskedQueryParam(std::string_view name) {
  for (std::string_view p : kAlwaysMaskedParams) {
    if (EqualsIgnoreCase(name, p)) return true;
  }
  return false;
}

std::string MaskQuery(std::string_view raw, const std::vector<std::string>& extra) {
  std::string out;
  size_t start = 0;
  // Each pair is at least one byte of input, so the loop is O(|raw|); it
  // stops once the output passes its bound.
  while (start <= raw.size() && out.size() <= kMaxLogQueryBytes) {
    // ';' separates pairs too (some servers split on it): a parameter after
    // one must not hide in the previous pair's value.
    size_t amp = raw.find_first_of("&;", start);
    if (amp == std::string_view::npos) amp = raw.size();
    std::string_view pair = raw.substr(start, amp - start);
    if (!pair.empty()) {
      size_t eq = pair.find('=');
      std::string_view name = pair.substr(0, eq);
      std::string decoded = DecodeName(name);
      bool masked = IsAlwaysMaskedQueryParam(decoded);
      for (size_t i = 0; !masked && i < extra.size(); ++i) {
        masked = EqualsIgnoreCase(decoded, extra[i]);
      }
      if (!out.empty()) out.push_back(start > 0 ? raw[start - 1] : '&');
      if (masked) {
        out.append(name.substr(0, kMaxLogQueryBytes));
        out.push_back('=');
        out.append(kMaskedValue);
      } else {
        out.append(pair.substr(0, kMaxLogQueryBytes + 1));
      }
    }
    start = amp + 1;
  }
  return Clean(out, kMaxLogQueryBytes);
}

Status CheckDecisionLogOptions(const DecisionLogOptions& o) {
  if (o.capacity == 0 || o.capacity > kMaxLogCapacity) {
    return InvalidArgument("decision log capacity must be 1 to " + std::to_string(kMaxLogCapacity) +
                           " events");
  }
  if (o.max_batch == 0 || o.max_batch > kMaxLogBatch) {
    return InvalidArgument("decision log batch must be 1 to " + std::to_string(kMaxLogBatch) +
                           " events");
  }
  if (o.log_headers.size() > kMaxLoggedHeaders) {
    return InvalidArgument("at most " + std::to_string(kMaxLoggedHeaders) + " logged headers");
  }
  if (o.mask_headers.size() > kMaxMaskNames || o.mask_query_params.size() > kMaxMaskNames) {
    return InvalidArgument("at most " + std::to_string(kMaxMaskNames) +
                           " masked headers and as many masked query parameters");
  }
  for (const auto* list : {&o.log_headers, &o.mask_headers, &o.mask_query_params}) {
    for (const std::string& n : *list) {
      if (n.empty() || n.size() > kMaxLogNameBytes) {
        return InvalidArgument("a logged or masked name must be 1 to " +
                               std::to_string(kMaxLogNameBytes) + " bytes");
      }
      for (char c : n) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7f) {
          return InvalidArgument("logged or masked name `" + Clean(n, kMaxLogNameBytes) +
                                 "` holds a space or a non-printable byte");
        }
      }
    }
  }
  return Status::Ok();
}

size_t DecisionEvent::EncodedSizeBound() const {
  // Per field: tag (1-2 bytes) + length varint (<= 3 bytes for our bounds)
  // + bytes; numbers at most 11 bytes each.
  size_t n = 7 * 11;
  for (const std::string* s :
       {&interface, &method, &path, &query, &route, &rule, &error, &sub, &client_id, &jti}) {
    n += 5 + s->size();
  }
  for (const auto& [k, v] : headers) n += 5 + 5 + k.size() + 5 + v.size();
  return n;
}

std::string DecisionEvent::ToJson() const {
  std::string out = "{\"time_unix_ms\":" + std::to_string(time_unix_ms) + ",\"interface\":";
  AppendJsonString(interface, &out);
  auto field = [&out](std::string_view name, std::string_view value) {
    out += ",\"";
    out += name;
    out += "\":";
    AppendJsonString(value, &out);
  };
  field("method", method);
  field("path", path);
  field("query", query);
  field("route", route);
  out += std::string(",\"allow\":") + (allow ? "true" : "false");
  out += ",\"status\":" + std::to_string(status);
  field("rule", rule);
  field("error", error);
  out += ",\"bundle_version\":" + std::to_string(bundle_version);
  out += ",\"latency_nanos\":" + std::to_string(latency_nanos);
  field("sub", sub);
  field("client_id", client_id);
  field("jti", jti);
  out += std::string(",\"response\":") + (response ? "true" : "false");
  out += ",\"upstream_status\":" + std::to_string(upstream_status);
  out += ",\"headers\":{";
  for (size_t i = 0; i < headers.size(); ++i) {
    if (i) out.push_back(',');
    AppendJsonString(headers[i].first, &out);
    out.push_back(':');
    AppendJsonString(headers[i].second, &out);
  }
  out += "}}";
  return out;
}

DecisionLog::DecisionLog(DecisionLogOptions options) : options_(std::move(options)) {
  options_.capacity = std::clamp<size_t>(options_.capacity, 1, kMaxLogCapacity);
  options_.max_batch = std::clamp<size_t>(options_.max_batch, 1, kMaxLogBatch);
  auto normalise = [](std::vector<std::string>* names, size_t max) {
    if (names->size() > max) names->resize(max);
    for (std::string& n : *names) n = ToLower(Clean(n, kMaxLogNameBytes));
  };
  normalise(&options_.log_headers, kMaxLoggedHeaders);
  normalise(&options_.mask_headers, kMaxMaskNames);
  normalise(&options_.mask_query_params, kMaxMaskNames);
  ring_.resize(options_.capacity);
}

bool DecisionLog::HeaderMasked(std::string_view lower_name) const {
  if (IsAlwaysMaskedHeader(lower_name)) return true;
  for (const std::string& m : options_.mask_headers) {
    if (m == lower_name) return true;
  }
  return false;
}

DecisionEvent DecisionLog::MakeEvent(std::string_view interface, const bytecode::HttpRequest& req,
                                     const bytecode::HttpResponse* response, const Verdict& verdict,
                                     uint64_t latency_nanos) const {
  DecisionEvent e;
  e.time_unix_ms = options_.clock_ms ? options_.clock_ms() : SystemNowMs();
  e.interface = Clean(interface, kMaxLogNameBytes);
  e.method = Clean(req.method, kMaxLogNameBytes);
  std::string_view target = req.target;
  std::string_view query;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    query = target.substr(q + 1);
    target = target.substr(0, q);
  }
  e.path = Clean(target, kMaxLogPathBytes);
  if (options_.log_query && !query.empty()) e.query = MaskQuery(query, options_.mask_query_params);
  e.route = Clean(verdict.route, kMaxLogNameBytes);
  e.allow = verdict.allow;
  e.status = verdict.status;
  e.rule = Clean(verdict.rule, kMaxLogNameBytes);
  e.error = Clean(verdict.error, kMaxLogNameBytes);
  e.bundle_version = verdict.bundle_version;
  e.latency_nanos = latency_nanos;
  if (verdict.token) {
    e.sub = Clean(verdict.token->sub, kMaxLogNameBytes);
    e.client_id = Clean(verdict.token->client_id, kMaxLogNameBytes);
    e.jti = Clean(verdict.token->jti, kMaxLogNameBytes);
  }
  if (response != nullptr) {
    e.response = true;
    e.upstream_status = response->status > 0 ? static_cast<uint32_t>(response->status) : 0;
  }
  // Configured headers, in the request's order; a header sent more than
  // once is logged once per occurrence up to kMaxLoggedHeaders entries.
  if (!options_.log_headers.empty()) {
    for (const bytecode::HeaderField& h : req.headers) {
      if (e.headers.size() >= kMaxLoggedHeaders) break;
      if (h.name.size() > kMaxLogNameBytes) continue;
      bool wanted = false;
      for (const std::string& n : options_.log_headers) {
        if (EqualsIgnoreCase(h.name, n)) {
          wanted = true;
          break;
        }
      }
      if (!wanted) continue;
      std::string name = ToLower(Clean(h.name, kMaxLogNameBytes));
      std::string value;
      if (HeaderMasked(name)) {
        // Keep an authentication scheme word ("Bearer", "DPoP") if there is
        // one: letters only, then a space.
        std::string_view v = h.value;
        size_t sp = v.find(' ');
        bool scheme = sp != std::string_view::npos && sp > 0 && sp <= 16 &&
                      (name == "authorization" || name == "proxy-authorization");
        for (size_t i = 0; scheme && i < sp; ++i) {
          const char c = Lower(v[i]);
          scheme = c >= 'a' && c <= 'z';
        }
        value = scheme ? std::string(v.substr(0, sp)) + " " + std::string(kMaskedValue)
                       : std::string(kMaskedValue);
      } else {
        value = Clean(h.value, kMaxLogHeaderValueBytes);
      }
      e.headers.emplace_back(std::move(name), std::move(value));
    }
  }
  return e;
}

void DecisionLog::Record(std::string_view interface, const bytecode::HttpRequest& req,
                         const bytecode::HttpResponse* response, const Verdict& verdict,
                         uint64_t latency_nanos) {
  if (verdict.allow && !options_.log_allows) {
    skipped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  {
    // Cheap check first: a full ring drops without building the event.
    std::lock_guard<std::mutex> l(mu_);
    if (count_ == ring_.size()) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  Push(MakeEvent(interface, req, response, verdict, latency_nanos));
}

bool DecisionLog::Push(DecisionEvent event) {
  // MakeEvent's events are within the bound by construction; one pushed by
  // hand that is not would never fit a batch, so it is dropped here.
  const bool oversized = event.EncodedSizeBound() > kMaxEventBytes;
  std::lock_guard<std::mutex> l(mu_);
  if (oversized || count_ == ring_.size()) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  ring_[(head_ + count_) % ring_.size()] = std::move(event);
  ++count_;
  recorded_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

std::vector<DecisionEvent> DecisionLog::TakeBatch(size_t max, size_t max_bytes) {
  std::vector<DecisionEvent> out;
  max = std::min(max, options_.max_batch);
  std::lock_guard<std::mutex> l(mu_);
  size_t bytes = 0;
  while (count_ > 0 && out.size() < max) {
    DecisionEvent& e = ring_[head_];
    const size_t n = e.EncodedSizeBound();
    if (!out.empty() && bytes + n > max_bytes) break;
    bytes += n;
    out.push_back(std::move(e));
    e = DecisionEvent();  // frees the slot's strings
    head_ = (head_ + 1) % ring_.size();
    --count_;
  }
  return out;
}

size_t DecisionLog::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return count_;
}

}  // namespace vakt::agent
