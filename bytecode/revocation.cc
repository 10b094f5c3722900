// Token revocation; see revocation.h.
#include "bytecode/revocation.h"

namespace vakt::bytecode {

void RevocationSet::Raise(CutOffs& m, std::string key, int64_t cutoff) {
  auto [it, inserted] = m.emplace(std::move(key), cutoff);
  if (!inserted && it->second < cutoff) it->second = cutoff;
}

bool RevocationSet::IsRevoked(std::string_view jti, std::string_view sub,
                              std::string_view client_id, int64_t iat) const {
  if (!jti.empty() && jtis_.find(jti) != jtis_.end()) return true;
  if (!sub.empty()) {
    auto it = subjects_.find(sub);
    if (it != subjects_.end() && iat <= it->second) return true;
  }
  if (!client_id.empty()) {
    auto it = clients_.find(client_id);
    if (it != clients_.end() && iat <= it->second) return true;
  }
  return false;
}

}  // namespace vakt::bytecode
