// Names of the store's enums (as stored and as shown by the APIs) and the
// source digest that makes versions content-addressed. See store.h.
#include "controlplane/store.h"

#include <openssl/evp.h>

#include <memory>

#include "bytecode/sha256.h"

namespace vakt::controlplane {

namespace {

template <typename E, size_t N>
std::optional<E> ParseName(std::string_view s, const std::pair<E, const char*> (&names)[N]) {
  for (const auto& [e, name] : names) {
    if (s == name) return e;
  }
  return std::nullopt;
}
template <typename E, size_t N>
const char* NameOf(E e, const std::pair<E, const char*> (&names)[N]) {
  for (const auto& [v, name] : names) {
    if (v == e) return name;
  }
  return "unknown";
}

constexpr std::pair<RolloutState, const char*> kRolloutStates[] = {
    {RolloutState::kProgressing, "progressing"}, {RolloutState::kPaused, "paused"},
    {RolloutState::kHalted, "halted"},           {RolloutState::kComplete, "complete"},
    {RolloutState::kRolledBack, "rolled_back"},  {RolloutState::kSuperseded, "superseded"},
};
constexpr std::pair<RevocationKind, const char*> kRevocationKinds[] = {
    {RevocationKind::kJti, "jti"},
    {RevocationKind::kSub, "sub"},
    {RevocationKind::kClientId, "client_id"},
};
constexpr std::pair<Role, const char*> kRoles[] = {
    {Role::kViewer, "viewer"},
    {Role::kAuthor, "author"},
    {Role::kDeployer, "deployer"},
    {Role::kAdmin, "admin"},
};

void PutLe(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

}  // namespace

const char* RolloutStateName(RolloutState s) { return NameOf(s, kRolloutStates); }
std::optional<RolloutState> ParseRolloutState(std::string_view s) {
  return ParseName(s, kRolloutStates);
}
const char* RevocationKindName(RevocationKind k) { return NameOf(k, kRevocationKinds); }
std::optional<RevocationKind> ParseRevocationKind(std::string_view s) {
  return ParseName(s, kRevocationKinds);
}
const char* RoleName(Role r) { return NameOf(r, kRoles); }
std::optional<Role> ParseRole(std::string_view s) { return ParseName(s, kRoles); }

std::string SourceDigest(const std::vector<SourceFile>& sorted_files) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::string head;
  for (const SourceFile& f : sorted_files) {
    head.clear();
    PutLe(&head, f.path.size(), 4);
    head += f.path;
    PutLe(&head, f.content.size(), 8);
    EVP_DigestUpdate(ctx.get(), head.data(), head.size());
    EVP_DigestUpdate(ctx.get(), f.content.data(), f.content.size());
  }
  unsigned char md[32];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return bytecode::HexLower(md, sizeof(md));
}

}  // namespace vakt::controlplane
