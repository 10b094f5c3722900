// The bytecode verifier: runs on every bundle before any use (Bundle::Load
// calls it). It proves, in one linear pass per route program, that
//   - every table index and string/regex/rule/claim/param reference is in range,
//   - every opcode and operand enum is known,
//   - jumps go forward only and land inside the same program, so each
//     program terminates within its length,
//   - the operand stack depth is the same along every path into an
//     instruction, never negative, never above kMaxStack,
//   - every path ends in ALLOW or DENY with an empty-or-any stack,
//   - the route trie is a tree (children after parents), methods point at
//     routes whose method matches, and routes' costs are within bounds,
//   - route programs are disjoint code ranges, or the very same range when
//     shared (so verification stays linear in the code size).
// The full list of rules is in docs/bytecode.md, "Verification".
// Complexity: O(bundle size).
#pragma once

#include "bytecode/bundle.h"
#include "bytecode/status.h"

namespace vakt::bytecode {

// Returns Ok or kCorruption naming the first problem found.
Status Verify(const BundleData& data);

}  // namespace vakt::bytecode
