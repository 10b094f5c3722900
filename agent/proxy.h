// The enforcing proxy: the agent in the request path, between a TLS
// terminator (nginx, a load balancer) and the service. Unlike forward-auth
// (which sees only requests), it also sees the service's response, so the
// routes' response rules (schemas, `owns response.json...`) are enforced:
// a response that fails them is withheld and the caller gets the deny.
//
// One request: translate it (the forward-auth trust model: TLS facts only
// from trusted proxies, hop-by-hop and X-Vakt-* headers dropped), decide it,
// forward an allowed request to the upstream (upstream.h: deadlines,
// bounded response), decide the response on the same bundle with the same
// verified token, answer the response or the deny. Upstream failures are
// 502 (504 on a timeout), never a pass-through.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/agent.h"
#include "agent/forward_auth.h"
#include "agent/upstream.h"

namespace vakt::agent {

inline constexpr std::string_view kRuleUpstream = "vakt.upstream";

// What the caller gets: the upstream's response verbatim (status, headers,
// body) or a deny (JSON body).
struct ProxyAnswer {
  uint16_t status = 502;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool from_upstream = false;  // true: headers and body are the upstream's
};

// `in.method` and `in.target` are the request's own request line.
ProxyAnswer ProxyRequest(Agent& agent, const UpstreamClient& upstream, const AuthRequestIn& in,
                         const ForwardAuthOptions& options);

}  // namespace vakt::agent
