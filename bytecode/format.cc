// Mnemonics of the bytecode opcodes (format.h). Used by the disassembler
// and by the verifier's error messages, so that both speak the same names.
#include "bytecode/format.h"

namespace vakt::bytecode {

const char* OpName(Op op) {
  switch (op) {
    case Op::kNop:
      return "NOP";
    case Op::kPushNull:
      return "PUSH_NULL";
    case Op::kPushBool:
      return "PUSH_BOOL";
    case Op::kPushInt:
      return "PUSH_INT";
    case Op::kPushStr:
      return "PUSH_STR";
    case Op::kLoadReq:
      return "LOAD_REQ";
    case Op::kLoadResp:
      return "LOAD_RESP";
    case Op::kLoadParam:
      return "LOAD_PARAM";
    case Op::kLoadFirst:
      return "LOAD_FIRST";
    case Op::kLoadAll:
      return "LOAD_ALL";
    case Op::kHas:
      return "HAS";
    case Op::kConvert:
      return "CONVERT";
    case Op::kField:
      return "FIELD";
    case Op::kIndex:
      return "INDEX";
    case Op::kEq:
      return "EQ";
    case Op::kNe:
      return "NE";
    case Op::kLt:
      return "LT";
    case Op::kLe:
      return "LE";
    case Op::kGt:
      return "GT";
    case Op::kGe:
      return "GE";
    case Op::kAdd:
      return "ADD";
    case Op::kSub:
      return "SUB";
    case Op::kMul:
      return "MUL";
    case Op::kDiv:
      return "DIV";
    case Op::kMod:
      return "MOD";
    case Op::kNeg:
      return "NEG";
    case Op::kNot:
      return "NOT";
    case Op::kIn:
      return "IN";
    case Op::kMatch:
      return "MATCH";
    case Op::kCall:
      return "CALL";
    case Op::kMakeList:
      return "MAKE_LIST";
    case Op::kJump:
      return "JUMP";
    case Op::kJumpIfFalse:
      return "JUMP_IF_FALSE";
    case Op::kJumpIfFalseOrPop:
      return "JUMP_IF_FALSE_OR_POP";
    case Op::kJumpIfTrueOrPop:
      return "JUMP_IF_TRUE_OR_POP";
    case Op::kRule:
      return "RULE";
    case Op::kRequire:
      return "REQUIRE";
    case Op::kDeny:
      return "DENY";
    case Op::kAllow:
      return "ALLOW";
    case Op::kPop:
      return "POP";
    case Op::kRelation:
      return "RELATION";
    case Op::kCheckBody:
      return "CHECK_BODY";
  }
  return "?";
}

}  // namespace vakt::bytecode
