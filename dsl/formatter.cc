// `vakt fmt`: canonical layout of Vakt source, rebuilt from the token stream
// (dsl/parser.h Lex) so that comments survive.
//
// The formatter never moves a token to another line: the source's line
// breaks are the author's, and only these things are normalised:
//  - indentation: 2 spaces per unclosed `{`, `[` or `(` at the start of the
//    line (a line starting with closers is dedented by them), plus a hanging
//    indent for continued statements: +1 level for a line starting or
//    following `else`/`if` (the deny clause), +2 for other expression
//    continuations (a line starting or following a binary operator, `.`,
//    `=` or `->`);
//  - blank lines: at most one in a row, none at the start of the file, right
//    after an opening bracket or right before a closing one;
//  - spacing within a line: one space around binary operators, keywords,
//    `=` and `->`; one after `,` and `:` and none before; none inside ( ) [ ]
//    and JSON { }; one inside block { } that hold something on the same line;
//    none before the `(` of a call or the `[` of an index, none after a unary
//    `!`/`-`, none around `.` or the `< >` of `list<T>`; trailing line
//    comments get one space before them; block comments keep whether they
//    touched their neighbours.
// Every decision depends only on the tokens and on which line each starts,
// neither of which formatting changes, so Format(Format(x)) == Format(x).
//
// Files with syntax errors are refused (returned unchanged) so the
// formatter never has to guess. Linear in the input. Tested by
// tests/formatter_test.cc.
#include "dsl/formatter.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "dsl/parser.h"

namespace vakt::dsl {
namespace {

enum class Bracket : uint8_t { kNone, kBlock, kTest, kJson, kList, kParen, kOwns };

// One token plus what the layout rules need to know about it.
struct Item {
  const Token* tok = nullptr;
  uint32_t end_line = 0;             // line of the last byte
  uint32_t end_col = 0;              // column just past the last byte (on end_line)
  bool unary = false;                // `!` or a prefix `-`
  bool angle = false;                // `<` or `>` of `list<T>`
  Bracket bracket = Bracket::kNone;  // for ( [ { ) ] }: what they delimit
  bool owns_clause = false;          // `==` / `in` starting a clause of `owns { ... }`
};

bool Is(const Token* t, std::string_view text) {
  return (t->kind == Token::Kind::kPunct || t->kind == Token::Kind::kKeyword) && t->text == text;
}
bool IsComment(const Token* t) {
  return t->kind == Token::Kind::kLineComment || t->kind == Token::Kind::kBlockComment;
}
bool IsOpen(const Token* t) { return Is(t, "{") || Is(t, "[") || Is(t, "("); }
bool IsClose(const Token* t) { return Is(t, "}") || Is(t, "]") || Is(t, ")"); }

// Can `t` end an operand? Decides unary vs binary `-`, and call/index vs a
// parenthesis or list after a keyword.
bool EndsOperand(const Token* t) {
  switch (t->kind) {
    case Token::Kind::kIdent:
    case Token::Kind::kNumber:
    case Token::Kind::kDuration:
    case Token::Kind::kString:
      return true;
    case Token::Kind::kPunct:
      return t->text == ")" || t->text == "]";
    case Token::Kind::kKeyword: {
      // Literals and the keywords that double as names in expressions.
      static constexpr std::string_view kOperandKeywords[] = {
          "true",  "false",  "null",     "request",   "response", "claims", "now",
          "route", "api",    "test",     "shape",     "profile",  "use",    "bool",
          "int",   "string", "duration", "timestamp", "json",     "list",   "issuer",
          "loosen", "token", "dpop", "cert", "revoke"};
      for (std::string_view k : kOperandKeywords) {
        if (t->text == k) return true;
      }
      return false;
    }
    default:
      return false;
  }
}

bool IsBinaryOp(const Item& it) {
  const Token* t = it.tok;
  if (it.angle || it.unary) return false;
  if (t->kind == Token::Kind::kKeyword) return t->text == "in" || t->text == "matches";
  if (t->kind != Token::Kind::kPunct) return false;
  static constexpr std::string_view kOps[] = {"==", "!=", "<", "<=", ">", ">=", "&&",
                                              "||", "+",  "-", "*",  "/", "%"};
  for (std::string_view op : kOps) {
    if (t->text == op) return true;
  }
  return false;
}

// A line starting with one of these continues an expression: +2 levels.
bool ContinuesExpr(const Item& it) {
  return IsBinaryOp(it) || Is(it.tok, ".") || Is(it.tok, "=") || Is(it.tok, "->");
}
// So does a line after one of these (or after a unary operator).
bool ExpectsOperand(const Item& it) { return ContinuesExpr(it) || it.unary; }
// The deny-clause connectives: +1 level.
bool IsClauseKeyword(const Token* t) {
  return t->kind == Token::Kind::kKeyword && (t->text == "else" || t->text == "if");
}

std::string RightTrim(std::string_view s) {
  size_t n = s.size();
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) --n;
  return std::string(s.substr(0, n));
}

// A block comment with trailing blanks removed from each of its lines.
std::string TrimBlockComment(std::string_view s) {
  std::string out;
  size_t start = 0;
  while (true) {
    size_t nl = s.find('\n', start);
    if (nl == std::string_view::npos) {
      out += RightTrim(s.substr(start));
      break;
    }
    out += RightTrim(s.substr(start, nl - start));
    out += '\n';
    start = nl + 1;
  }
  return out;
}

class Formatter {
 public:
  explicit Formatter(const std::vector<Token>& tokens) {
    items_.reserve(tokens.size());
    for (const Token& t : tokens) {
      Item it;
      it.tok = &t;
      it.end_line = t.line;
      it.end_col = t.column + static_cast<uint32_t>(t.text.size());
      if (t.kind == Token::Kind::kBlockComment) {
        size_t last_nl = t.text.rfind('\n');
        if (last_nl != std::string::npos) {
          for (char c : t.text) it.end_line += c == '\n';
          it.end_col = static_cast<uint32_t>(t.text.size() - last_nl);
        }
      }
      items_.push_back(it);
    }
    Classify();
  }

  std::string Run() {
    std::string out;
    int depth = 0;
    const Item* prev_sig = nullptr;  // last non-comment token before the line
    bool prev_line_opens = false;    // the previous line ends with ( [ or {
    for (size_t i = 0; i < items_.size();) {
      // The line: items_[i, j).
      size_t j = i + 1;
      while (j < items_.size() && items_[j].tok->line <= items_[j - 1].end_line) ++j;
      const Item& first = items_[i];
      const bool blank_before = i > 0 && first.tok->line > items_[i - 1].end_line + 1;

      size_t closers = 0;
      while (i + closers < j && IsClose(items_[i + closers].tok)) ++closers;
      const Item* first_sig = nullptr;
      for (size_t k = i; k < j && !first_sig; ++k) {
        if (!IsComment(items_[k].tok)) first_sig = &items_[k];
      }

      int indent = std::max(0, depth - static_cast<int>(closers));
      if (closers == 0 && prev_sig && !(first_sig && first_sig->owns_clause)) {
        if ((first_sig && IsClauseKeyword(first_sig->tok)) || IsClauseKeyword(prev_sig->tok)) {
          indent += 1;
        } else if ((first_sig && ContinuesExpr(*first_sig)) || ExpectsOperand(*prev_sig)) {
          indent += 2;
        }
      }

      if (!out.empty() && blank_before && !prev_line_opens && closers == 0) out += '\n';
      const Item* line_last = nullptr;
      out.append(static_cast<size_t>(indent) * 2, ' ');
      for (size_t k = i; k < j; ++k) {
        const Item& it = items_[k];
        if (k > i && Space(items_[k - 1], it)) out += ' ';
        switch (it.tok->kind) {
          case Token::Kind::kLineComment:
            out += RightTrim(it.tok->text);
            break;
          case Token::Kind::kBlockComment:
            out += TrimBlockComment(it.tok->text);
            break;
          default:
            out += it.tok->text;
            break;
        }
        if (IsOpen(it.tok)) {
          ++depth;
        } else if (IsClose(it.tok) && depth > 0) {
          --depth;
        }
        if (!IsComment(it.tok)) {
          prev_sig = &it;
          line_last = &it;
        }
      }
      out += '\n';
      prev_line_opens = line_last && IsOpen(line_last->tok);
      i = j;
    }
    return out;
  }

 private:
  // Marks unary operators, the angle brackets of `list<T>`, and what each
  // bracket delimits (JSON braces are not padded, block braces are).
  void Classify() {
    const Item* prev_sig = nullptr;
    int angles = 0;
    bool pending_test = false;
    bool pending_owns = false;
    bool pending_schema = false;  // `schema NAME = { inline JSON }`
    std::vector<Bracket> stack;
    for (Item& it : items_) {
      const Token* t = it.tok;
      if (IsComment(t)) continue;
      const Bracket top = stack.empty() ? Bracket::kNone : stack.back();
      if (stack.empty() && t->kind == Token::Kind::kKeyword && t->text != "schema") {
        pending_schema = false;  // the next declaration started
      }
      if (Is(t, "!")) {
        it.unary = true;
      } else if (Is(t, "-")) {
        it.unary = !prev_sig || !EndsOperand(prev_sig->tok);
      } else if (Is(t, "<") && prev_sig && Is(prev_sig->tok, "list")) {
        it.angle = true;
        ++angles;
      } else if (Is(t, ">") && angles > 0) {
        it.angle = true;
        --angles;
      } else if (t->kind == Token::Kind::kKeyword && t->text == "test" && stack.empty()) {
        pending_test = true;
      } else if (t->kind == Token::Kind::kKeyword && t->text == "schema" && stack.empty()) {
        pending_schema = true;
      } else if (Is(t, "{") && pending_schema) {
        pending_schema = false;
        it.bracket = prev_sig && Is(prev_sig->tok, "=") ? Bracket::kJson : Bracket::kBlock;
        stack.push_back(it.bracket);
      } else if (t->kind == Token::Kind::kKeyword && t->text == "owns" &&
                 !(prev_sig && Is(prev_sig->tok, ".")) && top == Bracket::kBlock) {
        pending_owns = true;
      } else if ((Is(t, "==") || Is(t, "in")) && top == Bracket::kOwns && prev_sig &&
                 (prev_sig->bracket == Bracket::kOwns || prev_sig->tok->line < t->line)) {
        it.owns_clause = true;  // starts a clause: block indentation, not +2
      } else if (Is(t, "{") && pending_owns) {
        pending_owns = false;
        it.bracket = Bracket::kOwns;
        stack.push_back(it.bracket);
      } else if (Is(t, "{")) {
        // `token "PS256" { ... }`: the JSON follows the optional algorithm.
        bool json_key = prev_sig && (Is(prev_sig->tok, "request") || Is(prev_sig->tok, "claims") ||
                                     Is(prev_sig->tok, "response") || Is(prev_sig->tok, "token") ||
                                     Is(prev_sig->tok, "dpop") || Is(prev_sig->tok, "revoke") ||
                                     (prev_sig->tok->kind == Token::Kind::kString &&
                                      top == Bracket::kTest));
        if (top == Bracket::kJson || (top == Bracket::kTest && json_key)) {
          it.bracket = Bracket::kJson;
        } else if (pending_test) {
          it.bracket = Bracket::kTest;
          pending_test = false;
        } else {
          it.bracket = Bracket::kBlock;
        }
        stack.push_back(it.bracket);
      } else if (Is(t, "[")) {
        it.bracket = top == Bracket::kJson ? Bracket::kJson : Bracket::kList;
        stack.push_back(it.bracket);
      } else if (Is(t, "(")) {
        it.bracket = Bracket::kParen;
        stack.push_back(it.bracket);
      } else if (IsClose(t)) {
        it.bracket = top;
        if (!stack.empty()) stack.pop_back();
      }
      prev_sig = &it;
    }
  }

  // Whether one space separates `a` and `b`, adjacent on one output line.
  static bool Space(const Item& a, const Item& b) {
    const Token* x = a.tok;
    const Token* y = b.tok;
    if (y->kind == Token::Kind::kLineComment) return true;
    if (x->kind == Token::Kind::kBlockComment || y->kind == Token::Kind::kBlockComment) {
      return y->column > a.end_col;  // as in the source
    }
    if (Is(y, ",") || Is(y, ":")) return false;
    if (Is(y, ")") || Is(y, "]")) return false;
    if (Is(x, ",") || Is(x, ":")) return true;
    if (Is(x, "(") || Is(x, "[")) return false;
    if (Is(x, ".") || Is(y, ".")) return false;
    if (b.angle || (a.angle && Is(x, "<"))) return false;
    if (a.unary) return false;
    if (Is(y, "(") || Is(y, "[")) return !EndsOperand(x);
    if (Is(y, "}")) return !Is(x, "{") && b.bracket != Bracket::kJson;
    if (Is(x, "{")) return a.bracket != Bracket::kJson;
    return true;
  }

  std::vector<Item> items_;
};

void CopyDiagnostics(const Diagnostics& from, Diagnostics& to) {
  for (const Diagnostic& d : from.all()) {
    switch (d.severity) {
      case Severity::kError:
        to.Error(d.loc, d.message);
        break;
      case Severity::kWarning:
        to.Warning(d.loc, d.message);
        break;
      case Severity::kNote:
        to.Note(d.loc, d.message);
        break;
    }
  }
}

}  // namespace

std::string FormatSource(const SourceFile& src, Diagnostics& diags) {
  Diagnostics scratch;
  ParseFile(src, scratch);
  if (scratch.HasErrors()) {
    CopyDiagnostics(scratch, diags);
    return src.text;
  }
  Diagnostics lex_diags;
  std::vector<Token> tokens = Lex(src, lex_diags);
  if (lex_diags.HasErrors()) {
    CopyDiagnostics(lex_diags, diags);
    return src.text;
  }
  return Formatter(tokens).Run();
}

}  // namespace vakt::dsl
