// Synthetic policy generator; see policy_gen.h. Routes look like real REST
// routes (/v1/svcK/resN/{id}/sub) so the trie has realistic fan-out.
#include "bench/policy_gen.h"

#include <sstream>

namespace vakt::bench {

std::string GeneratePolicy(const GenOptions& opts) {
  std::string all;
  const std::string header = "package synthetic\n\n";
  for (const auto& [name, text] : GeneratePolicyFiles(opts)) {
    all += all.empty() ? text : text.substr(header.size());
  }
  return all;
}

std::vector<std::pair<std::string, std::string>> GeneratePolicyFiles(const GenOptions& opts) {
  std::vector<std::pair<std::string, std::string>> files;
  std::ostringstream out;
  out << "package synthetic\n\n"
      << "shape Id = r\"^[A-Za-z0-9-]{1,64}$\"\n\n"
      << "claims {\n  patient_id: string\n  role: string\n  care_team: list<string>\n}\n\n"
      << "fn is_owner(p: string) -> bool {\n"
      << "  (token.role == \"patient\" && token.patient_id == p) || (token.role == \"clinician\" && p in token.care_team)\n"
      << "}\n\n"
      << "profile authenticated {\n"
      << "  token: require has(request.headers.authorization) else deny 401 \"token required\"\n"
      << "}\n\n";
  files.emplace_back("common.vakt", out.str());
  const int per_api = 500;
  static const char* kMethods[] = {"GET", "POST", "PUT", "DELETE"};
  for (int base = 0; base < opts.routes; base += per_api) {
    int api = base / per_api;
    out.str("");
    out << "package synthetic\n\n";
    out << "api svc" << api << " \"/v1/svc" << api << "\" {\n  use authenticated\n";
    for (int i = base; i < opts.routes && i < base + per_api; ++i) {
      const char* m = kMethods[i % 4];
      int res = (i - base) / 4;
      out << "  route r" << i << " " << m << " \"/res" << res << "/{id:Id}/items\" {\n";
      for (int k = 0; k < opts.rules_per_route; ++k) {
        switch (k % 4) {
          case 0:
            out << "    s" << k << ": require has_scope(\"res" << res << ".read\") else deny 403 insufficient_scope\n";
            break;
          case 1:
            out << "    o" << k << ": require is_owner(params.id) else deny 403 access_denied\n";
            break;
          case 2:
            out << "    h" << k << ": require request.headers[\"x-tenant\"] == \"t" << api
                << "\" else deny 403 access_denied\n";
            break;
          default:
            out << "    q" << k << ": deny 400 invalid_request if has(request.query.access_token)\n";
            break;
        }
      }
      out << "  }\n";
    }
    out << "}\n\n";
    files.emplace_back("svc" + std::to_string(api) + ".vakt", out.str());
  }
  return files;
}

}  // namespace vakt::bench
