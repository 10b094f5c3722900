// An in-process use of vakt::agent: a C++ service that decides its own
// requests with the Agent library instead of asking a sidecar. Shows the
// whole contract in one place: load a bundle (signed in production,
// unsigned here from a file the operator vouches for), decide each request
// before the handler runs, decide the handler's response before it leaves,
// and answer a deny with the verdict's status, headers and JSON.
//
// usage: embedded_service BUNDLE.vkb
// It replays a few requests against the healthcare example's bundle and
// prints what the service would answer.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "agent/agent.h"

namespace {

using vakt::agent::Agent;
using vakt::agent::Verdict;
using vakt::bytecode::HeaderField;
using vakt::bytecode::HttpRequest;
using vakt::bytecode::HttpResponse;

// The service's own handler (a stand-in for real business logic).
HttpResponse Handle(const HttpRequest&, std::vector<HeaderField>* headers, std::string* body) {
  headers->push_back({"content-type", "application/json"});
  *body = R"({"status":"ok"})";
  HttpResponse resp;
  resp.status = 200;
  resp.headers = *headers;
  resp.body = *body;
  return resp;
}

// What a request goes through in the service: decide, handle, decide the
// response, answer. Returns the HTTP status the client gets.
int Serve(Agent& agent, const HttpRequest& req) {
  Verdict v = agent.Decide(req);
  if (!v.allow) {
    std::cout << req.method << " " << req.target << " -> " << v.status << " " << v.ToJson() << "\n";
    for (const auto& [name, value] : v.headers) std::cout << "    " << name << ": " << value << "\n";
    return v.status;
  }
  std::vector<HeaderField> headers;
  std::string body;
  HttpResponse resp = Handle(req, &headers, &body);
  Verdict r = agent.DecideResponse(v, req, resp);
  int status = r.allow ? resp.status : r.status;
  std::cout << req.method << " " << req.target << " -> " << status << " (route " << v.route
            << ", bundle version " << v.bundle_version << ")\n";
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: embedded_service BUNDLE.vkb\n";
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  if (!in) {
    std::cerr << argv[1] << ": cannot read\n";
    return 2;
  }

  vakt::agent::AgentOptions options;  // production: options.trusted_keys + Agent::Load
  Agent agent(std::move(options));
  if (vakt::Status st = agent.LoadUnsigned(bytes.str()); !st.ok()) {
    std::cerr << argv[1] << ": " << st.ToString() << "\n";
    return 1;
  }

  std::vector<HeaderField> host = {{"host", "api.example.no"}};
  auto request = [&](const char* method, const char* target, const char* tls) {
    HttpRequest r;
    r.method = method;
    r.target = target;
    r.headers = host;
    r.tls.version = tls;
    r.tls.cipher = "TLS_AES_128_GCM_SHA256";
    return r;
  };
  // Liveness over TLS 1.3: allowed; over plain HTTP: refused (transport);
  // a record without a token: 401 with the DPoP and Bearer challenges; an
  // unknown path: 404 (default deny).
  int failures = 0;
  failures += Serve(agent, request("GET", "/v1/health", "TLSv1.3")) != 200;
  failures += Serve(agent, request("GET", "/v1/health", "")) != 403;
  failures += Serve(agent, request("GET", "/v1/patients/anna/records/r1", "TLSv1.3")) != 401;
  failures += Serve(agent, request("GET", "/v1/admin", "TLSv1.3")) != 404;
  return failures == 0 ? 0 : 1;
}
