// The rollout state machine (see rollout.h for stages, layering and the
// transition table).
#include "controlplane/rollout.h"

#include <algorithm>

#include "bytecode/sha256.h"

namespace vakt::controlplane {
namespace {

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool IsKeyChar(char c) { return IsAlnum(c) || c == '.' || c == '_' || c == '/' || c == '-'; }
bool IsValueChar(char c) {
  return IsKeyChar(c) || c == ':' || c == '@' || c == '+';
}

bool IsPolicyName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(s[0])) return false;
  for (char c : s) {
    if (!lower_or_digit(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

std::string Refused(const char* op, const RolloutRecord& r) {
  return std::string("cannot ") + op + " rollout " + std::to_string(r.id) + ": it is " +
         RolloutStateName(r.state);
}

bool IsStoppedOrMoving(RolloutState s) {
  return s == RolloutState::kProgressing || s == RolloutState::kPaused ||
         s == RolloutState::kHalted;
}

}  // namespace

uint32_t StableBucket(std::string_view agent_id) {
  auto d = bytecode::Sha256(agent_id);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | d[static_cast<size_t>(i)];
  return static_cast<uint32_t>(v % kBucketCount);
}

bool SelectorMatches(const Labels& selector, const Labels& labels) {
  for (const auto& [key, value] : selector) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  return true;
}

bool InCurrentStage(const RolloutRecord& r, std::string_view agent_id) {
  if (r.stage >= r.stages.size()) return false;
  return StableBucket(agent_id) < static_cast<uint64_t>(r.stages[r.stage]) * 100;
}

Status ValidateLabels(const Labels& labels, std::string_view what) {
  const std::string w(what);
  if (labels.size() > kMaxSelectorLabels) {
    return InvalidArgument(w + ": more than " + std::to_string(kMaxSelectorLabels) + " labels");
  }
  for (const auto& [key, value] : labels) {
    if (key.empty() || key.size() > kMaxLabelKeyBytes) {
      return InvalidArgument(w + ": a label key must be 1 to " +
                             std::to_string(kMaxLabelKeyBytes) + " bytes");
    }
    bool ok = IsAlnum(key[0]);
    for (char c : key) ok = ok && IsKeyChar(c);
    if (!ok) {
      return InvalidArgument(w + ": label key `" + key +
                             "` must be letters, digits and . _ / - starting with a letter or "
                             "digit");
    }
    if (value.size() > kMaxLabelValueBytes) {
      return InvalidArgument(w + ": the value of label `" + key + "` is longer than " +
                             std::to_string(kMaxLabelValueBytes) + " bytes");
    }
    for (char c : value) {
      if (!IsValueChar(c)) {
        return InvalidArgument(w + ": the value of label `" + key +
                               "` must be letters, digits and . _ / - : @ +");
      }
    }
  }
  return Status::Ok();
}

Status ValidateRolloutRequest(RolloutRecord* r) {
  if (!IsPolicyName(r->policy)) {
    return InvalidArgument("policy name must match [a-z0-9][a-z0-9_.-]{0,63}");
  }
  if (r->version == 0) return InvalidArgument("a rollout needs a version");
  Status s = ValidateLabels(r->selector, "selector");
  if (!s.ok()) return s;
  if (r->stages.empty()) r->stages = {100};
  if (r->stages.size() > kMaxStages) {
    return InvalidArgument("more than " + std::to_string(kMaxStages) + " stages");
  }
  for (size_t i = 0; i < r->stages.size(); ++i) {
    uint32_t p = r->stages[i];
    if (p < 1 || p > 100) {
      return InvalidArgument("stage " + std::to_string(i) + " is " + std::to_string(p) +
                             "%: stages are 1 to 100 percent");
    }
    if (i > 0 && p <= r->stages[i - 1]) {
      return InvalidArgument("stages must strictly increase (" +
                             std::to_string(r->stages[i - 1]) + "% then " + std::to_string(p) +
                             "%)");
    }
  }
  if (r->stages.back() != 100) return InvalidArgument("the last stage must be 100%");
  if (r->nack_threshold_percent > 100) {
    return InvalidArgument("nack_threshold_percent must be 0 to 100");
  }
  r->stage = 0;
  r->state = RolloutState::kProgressing;
  return Status::Ok();
}

Assignment DesiredFor(std::span<const RolloutRecord> newest_first, std::string_view agent_id,
                      const Labels& labels) {
  const uint32_t bucket = StableBucket(agent_id);
  size_t n = std::min(newest_first.size(), kMaxRolloutsConsidered);
  for (size_t i = 0; i < n; ++i) {
    const RolloutRecord& r = newest_first[i];
    if (r.state == RolloutState::kRolledBack) continue;
    if (!SelectorMatches(r.selector, labels)) continue;
    bool included = r.state == RolloutState::kComplete ||
                    (r.stage < r.stages.size() &&
                     bucket < static_cast<uint64_t>(r.stages[r.stage]) * 100);
    if (included) return Assignment{r.policy, r.version, r.id};
  }
  return Assignment{};
}

StageProgress ComputeProgress(const RolloutRecord& r, std::span<const AgentView> agents) {
  StageProgress p;
  for (const AgentView& a : agents) {
    if (a.labels == nullptr || !SelectorMatches(r.selector, *a.labels)) continue;
    ++p.selected;
    if (!InCurrentStage(r, a.id)) continue;
    ++p.in_stage;
    const bool acked = a.active_version == r.version;
    if (acked) ++p.acked;
    if (!acked && a.nacked_version == r.version) ++p.nacked;
    if (a.connected) {
      ++p.connected_in_stage;
      if (acked) ++p.connected_acked;
    }
  }
  return p;
}

const char* RolloutActionName(RolloutAction a) {
  switch (a) {
    case RolloutAction::kNone: return "none";
    case RolloutAction::kAdvance: return "advance";
    case RolloutAction::kComplete: return "complete";
    case RolloutAction::kHalt: return "halt";
  }
  return "?";
}

RolloutAction NextAction(const RolloutRecord& r, const StageProgress& p) {
  if (r.state != RolloutState::kProgressing) return RolloutAction::kNone;
  if (static_cast<uint64_t>(p.nacked) * 100 >
      static_cast<uint64_t>(r.nack_threshold_percent) * p.in_stage) {
    return RolloutAction::kHalt;
  }
  if (!r.auto_advance || p.connected_acked < p.connected_in_stage) return RolloutAction::kNone;
  return r.stage + 1 < r.stages.size() ? RolloutAction::kAdvance : RolloutAction::kComplete;
}

Status ApplyAction(RolloutRecord* r, RolloutAction a, const StageProgress& p) {
  switch (a) {
    case RolloutAction::kNone:
      return Status::Ok();
    case RolloutAction::kAdvance:
    case RolloutAction::kComplete:
      if (r->state != RolloutState::kProgressing) return InvalidArgument(Refused("advance", *r));
      return Advance(r);
    case RolloutAction::kHalt:
      return Halt(r, std::to_string(p.nacked) + " of " + std::to_string(p.in_stage) +
                         " agents in stage " + std::to_string(r->stage) + " NACKed version " +
                         std::to_string(r->version) + " (threshold " +
                         std::to_string(r->nack_threshold_percent) + "%)");
  }
  return Internal("unknown rollout action");
}

Status Advance(RolloutRecord* r) {
  if (!IsStoppedOrMoving(r->state)) return InvalidArgument(Refused("advance", *r));
  if (r->stages.empty() || r->stage + 1 >= r->stages.size()) {
    r->stage = r->stages.empty() ? 0 : static_cast<uint32_t>(r->stages.size() - 1);
    r->state = RolloutState::kComplete;
  } else {
    ++r->stage;
  }
  return Status::Ok();
}

Status Pause(RolloutRecord* r) {
  if (r->state != RolloutState::kProgressing) return InvalidArgument(Refused("pause", *r));
  r->state = RolloutState::kPaused;
  return Status::Ok();
}

Status Resume(RolloutRecord* r) {
  if (r->state != RolloutState::kPaused && r->state != RolloutState::kHalted) {
    return InvalidArgument(Refused("resume", *r));
  }
  r->state = RolloutState::kProgressing;
  r->reason.clear();
  return Status::Ok();
}

Status Halt(RolloutRecord* r, std::string reason) {
  if (r->state != RolloutState::kProgressing) return InvalidArgument(Refused("halt", *r));
  r->state = RolloutState::kHalted;
  r->reason = std::move(reason);
  return Status::Ok();
}

Status RollBack(RolloutRecord* r, std::string reason) {
  if (r->state == RolloutState::kRolledBack) return InvalidArgument(Refused("roll back", *r));
  r->state = RolloutState::kRolledBack;
  r->reason = std::move(reason);
  return Status::Ok();
}

Status Supersede(RolloutRecord* r) {
  if (!IsStoppedOrMoving(r->state)) return InvalidArgument(Refused("supersede", *r));
  r->state = RolloutState::kSuperseded;
  return Status::Ok();
}

}  // namespace vakt::controlplane
