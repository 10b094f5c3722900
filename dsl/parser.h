// The front end: Vakt source text -> AST (dsl/ast.h). parser.cc is the only
// file in the project that includes ANTLR headers; the generated lexer and
// parser (from Vakt.g4) are their own CMake target.
//
// Syntax errors are collected into Diagnostics with file:line:col, never
// thrown. Nesting depth is bounded (kMaxNesting) so hostile input cannot
// exhaust the stack.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dsl/ast.h"
#include "dsl/source.h"

namespace vakt::dsl {

inline constexpr int kMaxNesting = 64;            // expression/JSON nesting
inline constexpr size_t kMaxSourceBytes = 8u << 20;  // per file

// Parses `src`. Always returns a File (possibly partial); errors go to diags.
std::unique_ptr<ast::File> ParseFile(const SourceFile& src, Diagnostics& diags);

// A lexical token, for the formatter. Comments are kept.
struct Token {
  enum class Kind : uint8_t {
    kIdent, kKeyword, kString, kNumber, kDuration, kPunct, kLineComment, kBlockComment,
  };
  Kind kind;
  std::string text;   // exactly as in the source
  uint32_t line = 0;  // 1-based
  uint32_t column = 0;
};

// Lexes `src` including comments (for `vakt fmt`); lexical errors go to diags.
std::vector<Token> Lex(const SourceFile& src, Diagnostics& diags);

}  // namespace vakt::dsl
