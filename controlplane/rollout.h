// The rollout state machine, pure: which version each agent should run,
// how far a rollout has got, and which transitions are legal. No store, no
// clock, no I/O: the servers load records, call these, and save the result.
//
// Stages. A rollout of `version` to the agents whose labels match
// `selector` (every selector label equal; an empty selector matches all)
// goes through `stages` (percentages, strictly increasing, last 100).
// StableBucket puts each agent id in one of 10,000 buckets from SHA-256 of
// the id, the same on every machine and after every restart; stage k
// covers the buckets below stages[k] * 100, so an agent in stage k is in
// every later stage too.
//
// Layering (DesiredFor). Rollouts are layers, newest on top. An agent runs
// the version of the newest rollout that is not rolled back, whose selector
// matches it and whose current stage includes it (a complete rollout
// includes all it selects); with none, the agent is unassigned. Paused,
// halted, complete and superseded rollouts stay layers: the agents they
// reached keep what they were given. Rolling back rollout R removes its
// layer, so every agent returns at once to exactly what it ran before R.
//
// Transitions. Automatic ones come from NextAction, only for a progressing
// rollout: halt when more than nack_threshold_percent of the in-stage agents
// NACKed the version (threshold 0: the first NACK halts; halting has
// priority), else with auto_advance, once every connected in-stage agent
// runs the version (disconnected agents do not block; an empty stage counts
// as done), advance, or complete at the last stage. Manual ones are the
// functions below; any other is refused with kInvalidArgument, the record
// unchanged:
//
//   from \ op     Advance             Pause    Resume       Halt     RollBack     Supersede
//   progressing   stage+1 (*)         paused   -            halted   rolled_back  superseded
//   paused        stage+1, paused (*) -        progressing  -        rolled_back  superseded
//   halted        stage+1, halted (*) -        progressing  -        rolled_back  superseded
//   complete      -                   -        -            -        rolled_back  -
//   rolled_back   -                   -        -            -        -            -
//   superseded    -                   -        -            -        rolled_back  -
//
//   (*) at the last stage, Advance completes the rollout instead.
//
// Advance keeps a paused or halted rollout paused or halted: the operator
// pushes it one stage on by hand, and nothing automatic resumes (a halted
// rollout resumed with its NACKs still above the threshold halts again on
// the next NextAction). A superseded rollout can still be rolled back
// because its layer still assigns its version to the agents the newer
// rollout has not reached. Resume clears the reason; Halt and RollBack set
// it.
//
// Bounds: DesiredFor considers at most kMaxRolloutsConsidered rollouts
// (the newest), O(rollouts x selector size x log labels) after one SHA-256;
// ComputeProgress is O(agents x selector size x log labels); the rest O(1)
// or O(stages + selector). Thread-safety: reentrant, no state.
// Tested by tests/cp_rollout_test.cc.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "bytecode/status.h"
#include "controlplane/store.h"

namespace vakt::controlplane {

inline constexpr uint32_t kBucketCount = 10000;
inline constexpr size_t kMaxStages = 20;
inline constexpr size_t kMaxSelectorLabels = 32;
inline constexpr size_t kMaxLabelKeyBytes = 128;
inline constexpr size_t kMaxLabelValueBytes = 256;
inline constexpr size_t kMaxRolloutsConsidered = 10000;

// In [0, kBucketCount): the first 8 bytes of SHA-256(agent_id), big endian,
// modulo 10,000.
uint32_t StableBucket(std::string_view agent_id);

// Every selector label is present in `labels` with an equal value.
bool SelectorMatches(const Labels& selector, const Labels& labels);

// StableBucket(agent_id) < stages[stage] * 100; false if r.stage is out of
// range (a broken record includes nobody). Ignores the state and the
// selector.
bool InCurrentStage(const RolloutRecord& r, std::string_view agent_id);

// Label keys: 1..kMaxLabelKeyBytes of [A-Za-z0-9._/-], starting with a
// letter or digit; values: 0..kMaxLabelValueBytes of [A-Za-z0-9._/:@+-];
// at most kMaxSelectorLabels. `what` names the map in the error
// ("selector", "agent labels").
Status ValidateLabels(const Labels& labels, std::string_view what);

// Checks and normalises a rollout about to be started, from a
// StartRolloutRequest: policy name [a-z0-9][a-z0-9_.-]{0,63}, version > 0,
// the selector (ValidateLabels), stages (empty means {100}; each 1..100,
// strictly increasing, last 100, at most kMaxStages) and the NACK
// threshold (0..100). Sets stage 0 and state progressing. kInvalidArgument
// naming the first problem.
Status ValidateRolloutRequest(RolloutRecord* r);

// What an agent should run. rollout_id 0 (and version 0): unassigned.
struct Assignment {
  std::string policy;
  uint64_t version = 0;
  uint64_t rollout_id = 0;
};

// REQUIRES: newest_first is ordered by id, newest first (Store::ListRollouts).
// Only the first kMaxRolloutsConsidered are considered.
Assignment DesiredFor(std::span<const RolloutRecord> newest_first, std::string_view agent_id,
                      const Labels& labels);

// One agent as the progress computation sees it. REQUIRES: labels non-null
// and alive for the call.
struct AgentView {
  std::string_view id;
  const Labels* labels = nullptr;
  bool connected = false;
  uint64_t active_version = 0;   // last ACKed
  uint64_t nacked_version = 0;   // last NACKed (0: none)
};

struct StageProgress {
  uint32_t selected = 0;            // selector matches
  uint32_t in_stage = 0;            // ... and in the current stage
  uint32_t connected_in_stage = 0;  // ... and connected
  uint32_t acked = 0;               // in stage, running r.version
  uint32_t connected_acked = 0;     // connected, in stage, running r.version
  uint32_t nacked = 0;              // in stage, NACKed r.version, not running it
};

StageProgress ComputeProgress(const RolloutRecord& r, std::span<const AgentView> agents);

enum class RolloutAction { kNone, kAdvance, kComplete, kHalt };
const char* RolloutActionName(RolloutAction a);

// The automatic step for `r` given its progress (see the top of the file).
RolloutAction NextAction(const RolloutRecord& r, const StageProgress& p);

// Applies what NextAction returned (kNone is a no-op), with a halt reason
// naming the counts. Refused like the manual operations.
Status ApplyAction(RolloutRecord* r, RolloutAction a, const StageProgress& p);

// The manual operations of the table above.
Status Advance(RolloutRecord* r);
Status Pause(RolloutRecord* r);
Status Resume(RolloutRecord* r);
Status Halt(RolloutRecord* r, std::string reason);
Status RollBack(RolloutRecord* r, std::string reason);
Status Supersede(RolloutRecord* r);

}  // namespace vakt::controlplane
