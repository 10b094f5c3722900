// The enforcing proxy's request flow (proxy.h).
#include "agent/proxy.h"

namespace vakt::agent {

namespace {

bool IsOriginalHeader(std::string_view name) {
  return bytecode::EqualsIgnoreCase(name, "x-original-method") ||
         bytecode::EqualsIgnoreCase(name, "x-original-uri");
}

ProxyAnswer FromVerdict(const Verdict& v) {
  HttpAnswer a = ForwardAuthAnswer(v);
  ProxyAnswer p;
  p.status = a.status;
  p.headers = std::move(a.headers);
  p.body = std::move(a.body);
  return p;
}

Verdict UpstreamDeny(const Status& st) {
  Verdict v;
  bool timeout = st.message().find("timed out") != std::string::npos;
  v.status = timeout ? 504 : 502;
  v.error = timeout ? "upstream_timeout" : "bad_gateway";
  v.description = "the service could not be reached or answered badly: " + st.message();
  v.rule = std::string(kRuleUpstream);
  return v;
}

}  // namespace

ProxyAnswer ProxyRequest(Agent& agent, const UpstreamClient& upstream, const AuthRequestIn& in,
                         const ForwardAuthOptions& options) {
  // The request line is the original request: present it to the shared
  // translation as nginx would (X-Original-*), after dropping any such
  // header the client sent itself.
  AuthRequestIn req = in;
  req.headers.clear();
  req.headers.reserve(in.headers.size() + 2);
  for (const auto& h : in.headers) {
    if (!IsOriginalHeader(h.first)) req.headers.push_back(h);
  }
  req.headers.emplace_back("X-Original-Method", in.method);
  req.headers.emplace_back("X-Original-URI", in.target);
  ForwardResult fr = TranslateForwarded(req, ForwardDialect::kAuthRequest, options);
  if (!fr.ok) return FromVerdict(ErrorVerdict(fr.error));
  const bytecode::OwnedRequest& owned = fr.forwarded.request;
  bytecode::HttpRequest view = owned.View();
  Verdict v = agent.Decide(view, "proxy");
  if (!v.allow) return FromVerdict(v);

  auto res = upstream.RoundTrip(owned.method, owned.target, owned.headers, owned.body);
  if (!res.ok()) return FromVerdict(UpstreamDeny(res.status()));

  std::vector<bytecode::HeaderField> fields;
  fields.reserve(res->headers.size());
  for (const auto& [n, val] : res->headers) fields.push_back({n, val});
  bytecode::HttpResponse resp;
  resp.status = res->status;
  resp.headers = fields;
  resp.body = res->body;
  Verdict rv = agent.DecideResponse(v, view, resp, "proxy");
  if (!rv.allow) return FromVerdict(rv);

  ProxyAnswer a;
  a.status = static_cast<uint16_t>(res->status);
  a.headers = std::move(res->headers);
  a.body = std::move(res->body);
  a.from_upstream = true;
  return a;
}

}  // namespace vakt::agent
