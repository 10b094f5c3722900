// The Vakt front end: source text -> tokens -> ANTLR parse tree -> AST.
//
// This is the only file that includes ANTLR or the generated VaktLexer and
// VaktParser (target vakt_dsl_gen, from Vakt.g4). It works in four steps:
//
//  1. Lex the whole file over its *bytes* (ByteStream feeds each byte as one
//     symbol), so every column is a byte column and no UTF-8 decoding can
//     throw inside ANTLR. At most kMaxTokens tokens.
//  2. Scan the tokens once: report lexical errors (invalid characters,
//     unterminated strings and comments, malformed numbers) and bound the
//     nesting depth, so hostile input such as 100000 `(` never reaches
//     ANTLR's recursive descent.
//  3. Parse, collecting every syntax error. A custom error strategy words
//     each as `syntax error: unexpected X[, expected Y]` and, inside a
//     statement, resynchronises at the next statement (elsewhere ANTLR's
//     default recovery); an error listener turns it into a Diagnostic.
//  4. Walk the parse tree, which may be broken (null children, conjured
//     tokens), into the AST: decode strings and literals, check test JSON and
//     enforce kMaxNesting on expressions, types and JSON.
//
// Bounds: input is at most kMaxSourceBytes and kMaxTokens tokens (which caps
// ANTLR's token buffer and parse tree at about a gigabyte); lexing, the scan
// and the AST walk are linear; the walk recurses at most kMaxNesting deep and
// ANTLR at most a constant times kMaxNesting (+ slack for block braces). At
// most kMaxErrors diagnostics per file. Nothing throws to the caller.
//
// Tested by tests/parser_test.cc and tests/fuzz/parser_fuzzer.cc.
#include "dsl/parser.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "VaktLexer.h"
#include "VaktParser.h"
#include "antlr4-runtime.h"

namespace vakt::dsl {
namespace {

using vakt_gen::VaktLexer;
using vakt_gen::VaktParser;
using TerminalNode = antlr4::tree::TerminalNode;
using ExprPtr = std::unique_ptr<ast::Expr>;

constexpr size_t kMaxErrors = 100;  // per file; then parsing stops
// Tokens per file (comments included). ANTLR keeps every token and a parse
// tree of several nodes per token in memory; this caps that at about a
// gigabyte for the most hostile input. Realistic policy text runs at about
// ten bytes per token, so a policy of kMaxSourceBytes fits.
constexpr size_t kMaxTokens = size_t{1} << 20;
// The token scan counts block braces (`api {`, `route {`, `on response {`,
// `test {`) and `fn f(` as nesting too; the exact limit is applied by the AST
// builder, which never counts more than the scan minus this slack.
constexpr int kScanSlack = 8;
constexpr size_t kMaxShown = 40;  // bytes of user text quoted in a message

std::string NestingMessage() {
  return "nesting deeper than " + std::to_string(kMaxNesting) + " levels";
}

// ---------------------------------------------------------------- UTF-8

// Length of the well-formed UTF-8 sequence at s[i], or 0 if ill-formed.
size_t Utf8SeqLen(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  }
  return n;
}

// Offset of the first ill-formed UTF-8 byte, or npos.
size_t FirstBadUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = Utf8SeqLen(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// User text quoted in a message: at most kMaxShown bytes; control bytes and
// ill-formed UTF-8 shown as \xNN.
std::string Shown(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    if (out.size() >= kMaxShown) {
      out += "...";
      break;
    }
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    size_t n = c >= 0x80 ? Utf8SeqLen(s, i) : 0;
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02x", c);
    out += buf;
    ++i;
  }
  return out;
}

std::string Quoted(std::string_view s) { return "`" + Shown(s) + "`"; }

// ---------------------------------------------------------------- diagnostics

// Collects one file's errors, capped at kMaxErrors, sorted on Flush.
class Reporter {
 public:
  explicit Reporter(const SourceFile& src) : src_(src) {}

  void Error(uint32_t line, uint32_t column, std::string message) {
    if (count_ >= kMaxErrors) {
      overflow_ = true;
      return;
    }
    ++count_;
    diags_.push_back({Severity::kError, Location{&src_, line, column}, std::move(message)});
  }
  void Error(const Location& loc, std::string message) {
    Error(loc.line, loc.column, std::move(message));
  }
  bool full() const { return count_ >= kMaxErrors; }
  void GiveUp() { overflow_ = true; }
  const SourceFile& src() const { return src_; }

  void Flush(Diagnostics& out) {
    std::stable_sort(diags_.begin(), diags_.end(), [](const Diagnostic& a, const Diagnostic& b) {
      if (a.loc.line != b.loc.line) return a.loc.line < b.loc.line;
      return a.loc.column < b.loc.column;
    });
    for (auto& d : diags_) out.Error(d.loc, std::move(d.message));
    if (overflow_) {
      Location at = diags_.empty() ? Location{&src_, 1, 1} : diags_.back().loc;
      out.Error(at, "too many errors (" + std::to_string(kMaxErrors) + "), giving up");
    }
    diags_.clear();
  }

 private:
  const SourceFile& src_;
  std::vector<Diagnostic> diags_;
  size_t count_ = 0;
  bool overflow_ = false;
};

// ---------------------------------------------------------------- tokens

Location LocOf(const SourceFile& src, const antlr4::Token* t) {
  if (!t) return Location{&src, 0, 0};
  return Location{&src, static_cast<uint32_t>(t->getLine()),
                  static_cast<uint32_t>(t->getCharPositionInLine() + 1)};
}

// The token's exact source bytes ("" for EOF and tokens conjured by error
// recovery, which have no source interval).
std::string_view TextOf(const SourceFile& src, const antlr4::Token* t) {
  if (!t) return {};
  size_t start = t->getStartIndex(), stop = t->getStopIndex();
  if (start == INVALID_INDEX || stop == INVALID_INDEX || stop < start || stop >= src.text.size()) {
    return {};
  }
  return std::string_view(src.text).substr(start, stop - start + 1);
}

// An ANTLR char stream whose symbols are the bytes of the source.
class ByteStream : public antlr4::ANTLRInputStream {
 public:
  ByteStream(std::string_view bytes, const std::string& path) {
    _data.reserve(bytes.size());
    for (char c : bytes) _data.push_back(static_cast<unsigned char>(c));
    p = 0;
    name = path;
  }
};

class LexerListener : public antlr4::BaseErrorListener {
 public:
  explicit LexerListener(Reporter& rep) : rep_(rep) {}
  void syntaxError(antlr4::Recognizer*, antlr4::Token*, size_t line, size_t pos, const std::string&,
                   std::exception_ptr) override {
    // Unreachable in practice (ERROR_BYTE matches anything), kept for safety.
    std::string_view l = rep_.src().Line(static_cast<uint32_t>(line));
    std::string_view c = pos < l.size() ? l.substr(pos, 1) : std::string_view();
    rep_.Error(static_cast<uint32_t>(line), static_cast<uint32_t>(pos + 1),
               "invalid character " + Quoted(c));
  }

 private:
  Reporter& rep_;
};

// The generated lexer, stopping (at end of input) after kMaxTokens tokens.
class CappedLexer : public VaktLexer {
 public:
  using VaktLexer::VaktLexer;
  std::unique_ptr<antlr4::Token> nextToken() override {
    if (++count_ > kMaxTokens && !capped_) {
      capped_ = true;
      _input->seek(_input->size());
    }
    return VaktLexer::nextToken();
  }
  bool capped() const { return capped_; }

 private:
  size_t count_ = 0;
  bool capped_ = false;
};

// Lexes a file and reports lexical errors. Owns the ANTLR lexer and token
// buffer, which the parser and the AST builder then read.
class Lexed {
 public:
  Lexed(const SourceFile& src, Reporter& rep)
      : src_(src), rep_(rep), input_(src.text, src.path), lexer_(&input_), tokens_(&lexer_) {
    lexer_.removeErrorListeners();
    lexer_.addErrorListener(&listener_);
  }

  // Returns false if the file has too many tokens to parse.
  bool Run() {
    tokens_.fill();
    if (lexer_.capped()) {
      rep_.Error(Location{&src_, 1, 1},
                 "file has too many tokens (more than " + std::to_string(kMaxTokens) + ")");
      return false;
    }
    for (antlr4::Token* t : tokens_.getTokens()) {
      switch (t->getType()) {
        case VaktLexer::ERROR_CHAR:
        case VaktLexer::ERROR_BYTE:
          rep_.Error(LocOf(src_, t), "invalid character " + Quoted(TextOf(src_, t)));
          break;
        case VaktLexer::UNTERMINATED_STRING:
          rep_.Error(LocOf(src_, t), "unterminated string");
          Retype(t, VaktLexer::STRING);
          break;
        case VaktLexer::UNTERMINATED_RAW_STRING:
          rep_.Error(LocOf(src_, t), "unterminated string");
          Retype(t, VaktLexer::RAW_STRING);
          break;
        case VaktLexer::UNTERMINATED_BLOCK_COMMENT:
          rep_.Error(LocOf(src_, t), "unterminated block comment");
          break;
        case VaktLexer::BAD_NUMBER:
          rep_.Error(LocOf(src_, t), "invalid number " + Quoted(TextOf(src_, t)));
          Retype(t, VaktLexer::INT);
          break;
        default:
          break;
      }
    }
    return true;
  }

  // Bounds the nesting ANTLR will recurse through: ( [ { and runs of unary
  // operators (`!(!(x))` nests four deep), plus `list<` in types. Reports
  // one error and returns false when deeper than kMaxNesting + kScanSlack.
  bool CheckNesting() {
    const int limit = kMaxNesting + kScanSlack;
    std::vector<int> stack;
    int base = 0, run = 0, types = 0;
    size_t prev = 0;
    for (antlr4::Token* t : tokens_.getTokens()) {
      if (t->getChannel() != antlr4::Token::DEFAULT_CHANNEL) continue;
      size_t type = t->getType();
      int depth = base;
      switch (type) {
        case VaktLexer::LPAREN:
        case VaktLexer::LBRACKET:
        case VaktLexer::LBRACE:
          stack.push_back(base);
          base += run + 1;
          run = 0;
          depth = base;
          break;
        case VaktLexer::RPAREN:
        case VaktLexer::RBRACKET:
        case VaktLexer::RBRACE:
          if (!stack.empty()) {
            base = stack.back();
            stack.pop_back();
          }
          run = 0;
          depth = base;
          break;
        case VaktLexer::BANG:
        case VaktLexer::MINUS:
          ++run;
          depth = base + run;
          break;
        case VaktLexer::LT:
          if (prev == VaktLexer::LIST) ++types;
          run = 0;
          break;
        case VaktLexer::GT:
          if (types > 0) --types;
          run = 0;
          break;
        default:
          run = 0;
          break;
      }
      if (depth + types > limit) {
        rep_.Error(LocOf(src_, t), NestingMessage());
        return false;
      }
      prev = type;
    }
    return true;
  }

  antlr4::CommonTokenStream& tokens() { return tokens_; }
  // Token indices whose text is not what their (re)type promises: decoding
  // them would only repeat an error already reported.
  const std::unordered_set<size_t>& bad() const { return bad_; }

 private:
  void Retype(antlr4::Token* t, size_t type) {
    if (auto* w = dynamic_cast<antlr4::WritableToken*>(t)) w->setType(type);
    bad_.insert(t->getTokenIndex());
  }

  const SourceFile& src_;
  Reporter& rep_;
  ByteStream input_;
  CappedLexer lexer_;
  antlr4::CommonTokenStream tokens_;
  LexerListener listener_{rep_};
  std::unordered_set<size_t> bad_;
};

// ---------------------------------------------------------------- syntax errors

// How an expected token is named in `expected X`.
std::string ExpectedName(const antlr4::dfa::Vocabulary& vocab, ssize_t type) {
  if (type == -1) return "end of file";
  switch (type) {
    case VaktParser::IDENT:
      return "a name";
    case VaktParser::INT:
      return "an integer";
    case VaktParser::FLOAT:
      return "a number";
    case VaktParser::DURATION:
      return "a duration";
    case VaktParser::STRING:
      return "a string";
    case VaktParser::RAW_STRING:
      return "a raw string";
    default:
      break;
  }
  std::string lit = vocab.getLiteralName(static_cast<size_t>(type));
  if (lit.size() >= 2 && lit.front() == '\'' && lit.back() == '\'') {
    return "`" + lit.substr(1, lit.size() - 2) + "`";
  }
  return "`" + vocab.getSymbolicName(static_cast<size_t>(type)) + "`";
}

// Words every syntax error the same way and hands it to the listeners.
// Recovery is ANTLR's (single-token insertion/deletion, then
// resynchronisation), except that inside a statement it skips to the next
// statement, so every broken statement of a file is reported once.
class Strategy : public antlr4::DefaultErrorStrategy {
 public:
  explicit Strategy(const SourceFile& src) : src_(src) {}

 protected:
  void reportNoViableAlternative(antlr4::Parser* p,
                                 const antlr4::NoViableAltException& e) override {
    antlr4::Token* off = e.getOffendingToken();
    antlr4::misc::IntervalSet expected;
    // Only when prediction failed at its first token is the expected set of
    // the decision state meaningful for that token.
    if (e.getStartToken() == off) expected = Expected(p);
    Report(p, off, expected);
  }
  void reportInputMismatch(antlr4::Parser* p, const antlr4::InputMismatchException& e) override {
    antlr4::misc::IntervalSet expected;
    try {
      expected = e.getExpectedTokens();
    } catch (...) {
    }
    Report(p, e.getOffendingToken(), expected);
  }
  void reportFailedPredicate(antlr4::Parser* p,
                             const antlr4::FailedPredicateException& e) override {
    Report(p, e.getOffendingToken(), {});
  }
  void reportUnwantedToken(antlr4::Parser* p) override {
    if (inErrorRecoveryMode(p)) return;
    beginErrorCondition(p);
    Report(p, p->getCurrentToken(), Expected(p));
  }
  void reportMissingToken(antlr4::Parser* p) override {
    if (inErrorRecoveryMode(p)) return;
    beginErrorCondition(p);
    Report(p, p->getCurrentToken(), Expected(p));
  }

  // Inside a statement, resynchronises at the next statement boundary
  // instead of ANTLR's follow set: statements may start with a label (any
  // name), so the follow set contains every name, and recovery would stop in
  // the middle of the broken condition and report it again.
  void recover(antlr4::Parser* p, std::exception_ptr e) override {
    antlr4::TokenStream* in = p->getTokenStream();
    const size_t start = in->index();
    if (InStatement(p->getContext())) {
      while (in->LA(1) != antlr4::Token::EOF && !AtStatementBoundary(in)) p->consume();
    }
    // No progress: ANTLR's recovery, which guarantees it.
    if (in->index() == start) DefaultErrorStrategy::recover(p, e);
  }

 private:
  static bool InStatement(antlr4::RuleContext* ctx) {
    for (; ctx; ctx = dynamic_cast<antlr4::RuleContext*>(ctx->parent)) {
      if (dynamic_cast<VaktParser::StatementContext*>(ctx)) return true;
    }
    return false;
  }

  // Could the next token start a statement, or end the body?
  static bool AtStatementBoundary(antlr4::TokenStream* in) {
    switch (in->LA(1)) {
      case VaktParser::LET:
      case VaktParser::REQUIRE:
      case VaktParser::ON:
      case VaktParser::RBRACE:
      case VaktParser::CONST:
      case VaktParser::FN:
        return true;
      case VaktParser::USE:
      case VaktParser::ROUTE:
        return in->LA(2) != VaktParser::DOT;  // not a name in an expression
      case VaktParser::DENY:
        return in->LA(-1) != VaktParser::ELSE;  // not the clause of `require`
      case VaktParser::OWNS:
        return in->LA(-1) != VaktParser::DOT;   // not a member name
      default:
        return in->LA(2) == VaktParser::COLON;  // `label:`
    }
  }

  static antlr4::misc::IntervalSet Expected(antlr4::Parser* p) {
    try {
      return p->getExpectedTokens();
    } catch (...) {
      return {};
    }
  }

  void Report(antlr4::Parser* p, antlr4::Token* off, const antlr4::misc::IntervalSet& expected) {
    std::string msg = "syntax error: unexpected ";
    if (!off || off->getType() == antlr4::Token::EOF) {
      msg += "end of file";
    } else {
      std::string_view text = TextOf(src_, off);
      msg += text.empty() ? std::string("token") : Quoted(text);
    }
    size_t n = expected.size();
    if (n > 0 && n <= 4) {
      std::vector<ssize_t> types = expected.toList();
      msg += ", expected ";
      for (size_t i = 0; i < types.size(); ++i) {
        if (i > 0) msg += i + 1 == types.size() ? " or " : ", ";
        msg += ExpectedName(p->getVocabulary(), types[i]);
      }
    }
    p->notifyErrorListeners(off, msg, nullptr);
  }

  const SourceFile& src_;
};

class ParserListener : public antlr4::BaseErrorListener {
 public:
  explicit ParserListener(Reporter& rep) : rep_(rep) {}
  void syntaxError(antlr4::Recognizer*, antlr4::Token*, size_t line, size_t pos,
                   const std::string& msg, std::exception_ptr) override {
    rep_.Error(static_cast<uint32_t>(line), static_cast<uint32_t>(pos + 1), msg);
    // Enough: stop instead of wading through pages of garbage.
    if (rep_.full()) {
      rep_.GiveUp();
      throw antlr4::ParseCancellationException();
    }
  }

 private:
  Reporter& rep_;
};

// ---------------------------------------------------------------- AST builder

std::optional<ast::BinaryOp> BinaryOpOf(size_t type) {
  using B = ast::BinaryOp;
  switch (type) {
    case VaktParser::OR:
      return B::kOr;
    case VaktParser::AND:
      return B::kAnd;
    case VaktParser::EQ:
      return B::kEq;
    case VaktParser::NE:
      return B::kNe;
    case VaktParser::LT:
      return B::kLt;
    case VaktParser::LE:
      return B::kLe;
    case VaktParser::GT:
      return B::kGt;
    case VaktParser::GE:
      return B::kGe;
    case VaktParser::IN:
      return B::kIn;
    case VaktParser::MATCHES:
      return B::kMatches;
    case VaktParser::PLUS:
      return B::kAdd;
    case VaktParser::MINUS:
      return B::kSub;
    case VaktParser::STAR:
      return B::kMul;
    case VaktParser::SLASH:
      return B::kDiv;
    case VaktParser::PERCENT:
      return B::kMod;
    default:
      return std::nullopt;
  }
}

// Walks a parse tree into the AST. Every context or token may be missing
// (error recovery); the result is then partial but well-formed: expressions
// are never null.
class Builder {
 public:
  Builder(const SourceFile& src, Reporter& rep, const std::vector<antlr4::Token*>& tokens,
          const std::unordered_set<size_t>& bad)
      : src_(src), rep_(rep), tokens_(tokens), bad_(bad) {}

  void BuildFile(VaktParser::FileContext* ctx, ast::File& f) {
    if (!ctx) return;
    if (auto* p = ctx->packageDecl()) {
      f.package = Text(p->IDENT());
      f.package_loc = Loc(p->getStart());
    }
    for (auto* i : ctx->importDecl()) {
      if (!i) continue;
      ast::Import imp;
      imp.loc = Loc(i->getStart());
      imp.package = Text(i->IDENT(0));
      if (i->AS()) imp.alias = Text(i->IDENT(1));
      f.imports.push_back(std::move(imp));
    }
    for (auto* d : ctx->decl()) {
      if (!d) continue;
      if (auto* c = d->constDecl()) {
        ast::Const k;
        k.loc = Loc(c->getStart());
        k.name = Text(c->IDENT());
        if (c->type()) k.type = BuildType(c->type(), 0);
        k.value = TopExpr(c->expr(), c);
        f.consts.push_back(std::move(k));
      } else if (auto* l = d->letDecl()) {
        ast::Const k;
        k.loc = Loc(l->getStart());
        k.name = Text(l->IDENT());
        k.value = TopExpr(l->expr(), l);
        k.is_let = true;
        f.consts.push_back(std::move(k));
      } else if (auto* s = d->shapeDecl()) {
        ast::Shape sh;
        sh.loc = Loc(s->getStart());
        sh.name = Text(s->IDENT());
        if (s->str()) {
          sh.pattern = DecodeStr(s->str());
          sh.pattern_loc = Loc(s->str()->getStart());
        }
        f.shapes.push_back(std::move(sh));
      } else if (auto* cl = d->claimsDecl()) {
        for (auto* cd : cl->claimDecl()) {
          if (!cd) continue;
          ast::ClaimDecl decl;
          decl.loc = Loc(cd->getStart());
          for (auto* part : cd->anyName()) {
            if (!decl.path.empty()) decl.path += '.';
            decl.path += Text(part->getStart());
          }
          decl.type = BuildType(cd->type(), 0);
          f.claims.push_back(std::move(decl));
        }
      } else if (auto* fn = d->fnDecl()) {
        f.functions.push_back(BuildFunction(fn));
      } else if (auto* pr = d->profileDecl()) {
        ast::Profile prof;
        prof.loc = Loc(pr->getStart());
        prof.name = Text(pr->IDENT());
        BuildBody(pr->body(), prof.body, nullptr);
        f.profiles.push_back(std::move(prof));
      } else if (auto* a = d->apiDecl()) {
        ast::Api api;
        api.loc = Loc(a->getStart());
        api.name = Text(a->IDENT());
        if (a->str()) {
          api.base_path = DecodeStr(a->str());
          api.base_loc = Loc(a->str()->getStart());
        }
        BuildBody(a->apiBody(), api.body, &api.routes);
        f.apis.push_back(std::move(api));
      } else if (auto* is = d->issuerDecl()) {
        ast::Issuer iss;
        iss.loc = Loc(is->getStart());
        iss.name = Text(is->IDENT());
        BuildSettings(is->settings(), iss.settings);
        f.issuers.push_back(std::move(iss));
      } else if (auto* rd = d->relationDecl()) {
        ast::Relation rel;
        rel.loc = Loc(rd->getStart());
        rel.name = Text(rd->IDENT());
        if (rd->type()) rel.type = BuildType(rd->type(), 0);
        if (rd->str()) {
          rel.file = DecodeStr(rd->str());
          rel.file_loc = Loc(rd->str()->getStart());
        }
        f.relations.push_back(std::move(rel));
      } else if (auto* sd = d->schemaDecl()) {
        ast::SchemaDef def;
        def.loc = Loc(sd->getStart());
        def.name = Text(sd->IDENT(0));
        if (sd->jsonObject()) {
          def.kind = ast::SchemaDef::Kind::kInline;
          def.source = Json(sd->jsonObject(), &def.source_loc);
        } else if (sd->IDENT(1)) {
          def.kind = ast::SchemaDef::Kind::kOpenApi;
          def.source_loc = Loc(sd->IDENT(1)->getSymbol());
          if (Text(sd->IDENT(1)) != "openapi") {
            rep_.Error(def.source_loc, "expected a file name, `{` or `openapi`, got " +
                                           std::string("`") + Text(sd->IDENT(1)) + "`");
          }
          if (sd->str(0)) def.source = DecodeStr(sd->str(0));
          if (sd->str(1)) def.component = DecodeStr(sd->str(1));
        } else if (sd->str(0)) {
          def.source = DecodeStr(sd->str(0));
          def.source_loc = Loc(sd->str(0)->getStart());
        }
        if (sd->settings()) {
          def.has_settings = true;
          BuildSettings(sd->settings(), def.settings);
        }
        f.schemas.push_back(std::move(def));
      } else if (auto* t = d->testDecl()) {
        f.tests.push_back(BuildTest(t));
      }
    }
  }

 private:
  // ---- tokens and literals

  Location Loc(const antlr4::Token* t) const { return LocOf(src_, t); }
  std::string_view TextView(const antlr4::Token* t) const { return TextOf(src_, t); }
  std::string Text(const antlr4::Token* t) const { return std::string(TextOf(src_, t)); }
  std::string Text(TerminalNode* n) const { return n ? Text(n->getSymbol()) : std::string(); }
  bool IsBad(const antlr4::Token* t) const { return bad_.count(t->getTokenIndex()) > 0; }

  // A decimal literal (INT token) as int64; reports overflow.
  std::optional<int64_t> ParseInt(const antlr4::Token* t) {
    std::string_view s = TextView(t);
    if (s.empty() || IsBad(t)) return std::nullopt;
    int64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) {
      rep_.Error(Loc(t), "integer literal " + Quoted(s) + " is out of range");
      return std::nullopt;
    }
    return v;
  }

  // A status code (`deny 403`, `expect deny 403`): an INT that fits `int`.
  // Whether it is a sensible HTTP status is the compiler's business.
  int ParseStatus(TerminalNode* n, int fallback) {
    if (!n) return fallback;
    std::optional<int64_t> v = ParseInt(n->getSymbol());
    if (!v) return fallback;
    if (*v > INT_MAX) {
      rep_.Error(Loc(n->getSymbol()),
                 "integer literal " + Quoted(TextView(n->getSymbol())) + " is out of range");
      return fallback;
    }
    return static_cast<int>(*v);
  }

  // `10s`, `5m`, `2h`, `1d` -> seconds; reports overflow.
  int64_t ParseDuration(const antlr4::Token* t) {
    std::string_view s = TextView(t);
    if (s.size() < 2 || IsBad(t)) return 0;
    int64_t unit = 1;
    switch (s.back()) {
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 86400;
        break;
      default:
        break;
    }
    int64_t v = 0, secs = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size() - 1, v);
    if (ec != std::errc() || end != s.data() + s.size() - 1 ||
        __builtin_mul_overflow(v, unit, &secs)) {
      rep_.Error(Loc(t), "duration literal " + Quoted(s) + " is out of range");
      return 0;
    }
    return secs;
  }

  static bool Hex4(std::string_view s, size_t i, uint32_t* out) {
    if (i + 4 > s.size()) return false;
    uint32_t v = 0;
    for (size_t k = i; k < i + 4; ++k) {
      char c = s[k];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        return false;
      }
    }
    *out = v;
    return true;
  }

  // Decodes a STRING or RAW_STRING token, reporting bad escapes and
  // ill-formed UTF-8 at their own column (strings never span lines).
  std::string DecodeToken(const antlr4::Token* t) {
    std::string_view text = TextView(t);
    if (text.empty()) return {};
    const bool raw = t->getType() == VaktLexer::RAW_STRING;
    const size_t open = raw ? 2 : 1;
    if (text.size() < open) return {};
    std::string_view body = text.substr(open);
    if (IsBad(t)) return std::string(body);  // unterminated: already reported
    if (!body.empty()) body.remove_suffix(1);
    const uint32_t line = static_cast<uint32_t>(t->getLine());
    const uint32_t col0 = static_cast<uint32_t>(t->getCharPositionInLine() + 1 + open);
    if (size_t bad = FirstBadUtf8(body); bad != std::string_view::npos) {
      rep_.Error(line, col0 + static_cast<uint32_t>(bad), "invalid utf-8 in string");
    }
    if (raw) return std::string(body);

    std::string out;
    out.reserve(body.size());
    for (size_t i = 0; i < body.size();) {
      char c = body[i];
      if (c != '\\') {
        out += c;
        ++i;
        continue;
      }
      const uint32_t col = col0 + static_cast<uint32_t>(i);
      if (i + 1 >= body.size()) {  // cannot happen: the lexer pairs backslashes
        rep_.Error(line, col, "invalid escape sequence `\\`");
        break;
      }
      char e = body[i + 1];
      switch (e) {
        case '"':
          out += '"';
          i += 2;
          continue;
        case '\\':
          out += '\\';
          i += 2;
          continue;
        case '/':
          out += '/';
          i += 2;
          continue;
        case 'n':
          out += '\n';
          i += 2;
          continue;
        case 't':
          out += '\t';
          i += 2;
          continue;
        case 'r':
          out += '\r';
          i += 2;
          continue;
        case 'b':
          out += '\b';
          i += 2;
          continue;
        case 'f':
          out += '\f';
          i += 2;
          continue;
        case 'u':
          break;
        default: {
          size_t n = std::max<size_t>(1, Utf8SeqLen(body, i + 1));
          rep_.Error(line, col, "invalid escape sequence " + Quoted(body.substr(i, 1 + n)));
          i += 1 + n;
          continue;
        }
      }
      uint32_t cp = 0;
      if (!Hex4(body, i + 2, &cp)) {
        size_t n = 2;
        while (n < 6 && i + n < body.size() &&
               std::isxdigit(static_cast<unsigned char>(body[i + n])))
          ++n;
        rep_.Error(line, col, "invalid unicode escape " + Quoted(body.substr(i, n)));
        i += n;
        continue;
      }
      size_t len = 6;
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        uint32_t lo = 0;
        if (i + 7 < body.size() && body[i + 6] == '\\' && body[i + 7] == 'u' &&
            Hex4(body, i + 8, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          len = 12;
        } else {
          rep_.Error(line, col,
                     "invalid unicode escape " + Quoted(body.substr(i, 6)) + ": lone surrogate");
          i += 6;
          continue;
        }
      } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        rep_.Error(line, col,
                   "invalid unicode escape " + Quoted(body.substr(i, 6)) + ": lone surrogate");
        i += 6;
        continue;
      }
      AppendUtf8(out, cp);
      i += len;
    }
    return out;
  }

  std::string DecodeStr(VaktParser::StrContext* s) {
    if (!s) return {};
    TerminalNode* n = s->STRING() ? s->STRING() : s->RAW_STRING();
    return n ? DecodeToken(n->getSymbol()) : std::string();
  }

  // ---- types

  ast::TypeRef BuildType(VaktParser::TypeContext* t, int lists_above) {
    using K = ast::TypeRef::Kind;
    ast::TypeRef r;
    if (!t) return r;
    r.loc = Loc(t->getStart());
    if (t->BOOL()) {
      r.kind = K::kBool;
    } else if (t->INT_T()) {
      r.kind = K::kInt;
    } else if (t->STRING_T()) {
      r.kind = K::kString;
    } else if (t->DURATION_T()) {
      r.kind = K::kDuration;
    } else if (t->TIMESTAMP()) {
      r.kind = K::kTimestamp;
    } else if (t->JSON()) {
      r.kind = K::kJson;
    } else if (t->NULL_()) {
      r.kind = K::kNull;
    } else if (t->LIST()) {
      r.kind = K::kList;
      if (lists_above + 1 > kMaxNesting) {
        if (!deep_reported_) rep_.Error(r.loc, NestingMessage());
        deep_reported_ = true;
      } else {
        r.elem = std::make_unique<ast::TypeRef>(BuildType(t->type(), lists_above + 1));
      }
    }
    return r;
  }

  // ---- expressions
  //
  // `d` is the number of compound expressions (operators, parentheses,
  // lists, calls, indexing, members) enclosing the one being built. Binary
  // chains and postfix chains are flat lists in the parse tree and are built
  // iteratively into left-deep trees; every level counts toward kMaxNesting.

  ExprPtr NewExpr(ast::ExprKind kind, const Location& loc) {
    auto e = std::make_unique<ast::Expr>();
    e->kind = kind;
    e->loc = loc;
    return e;
  }

  // Stands in for a piece that is missing or too deep (already reported).
  ExprPtr Placeholder(antlr4::ParserRuleContext* ctx) {
    return NewExpr(ast::ExprKind::kNull, ctx ? Loc(ctx->getStart()) : Location{&src_, 0, 0});
  }

  bool TooDeep(size_t level, const antlr4::Token* at) {
    if (level <= static_cast<size_t>(kMaxNesting)) return false;
    if (!deep_reported_) rep_.Error(Loc(at), NestingMessage());
    deep_reported_ = true;
    return true;
  }

  ExprPtr TopExpr(VaktParser::ExprContext* e, antlr4::ParserRuleContext* owner) {
    deep_reported_ = false;
    if (!e) return Placeholder(owner);
    return BuildExpr(e, 0);
  }

  ExprPtr BuildExpr(VaktParser::ExprContext* e, size_t d) {
    if (!e || !e->orExpr()) return Placeholder(e);
    return BuildChain(e->orExpr(), d);
  }

  // orExpr, andExpr, cmpExpr, addExpr, mulExpr: operands and operators
  // alternate among the children.
  ExprPtr BuildChain(antlr4::ParserRuleContext* ctx, size_t d) {
    std::vector<antlr4::ParserRuleContext*> operands;
    std::vector<antlr4::Token*> ops;
    for (antlr4::tree::ParseTree* child : ctx->children) {
      if (auto* op = dynamic_cast<VaktParser::CmpOpContext*>(child)) {
        ops.push_back(op->getStart());
      } else if (auto* rc = dynamic_cast<antlr4::ParserRuleContext*>(child)) {
        operands.push_back(rc);
      } else if (dynamic_cast<antlr4::tree::ErrorNode*>(child)) {
        continue;
      } else if (auto* tn = dynamic_cast<TerminalNode*>(child)) {
        if (BinaryOpOf(tn->getSymbol()->getType())) ops.push_back(tn->getSymbol());
      }
    }
    if (operands.empty()) return Placeholder(ctx);
    const size_t n = std::min(ops.size(), operands.size() - 1);
    if (n > 0 && TooDeep(d + n, ctx->getStart())) return Placeholder(ctx);
    ExprPtr left = BuildOperand(operands[0], d + n);
    for (size_t j = 1; j <= n; ++j) {
      antlr4::Token* op = ops[j - 1];
      auto node = NewExpr(ast::ExprKind::kBinary, Loc(op));
      node->bop = BinaryOpOf(op->getType()).value_or(ast::BinaryOp::kEq);
      node->children.push_back(std::move(left));
      node->children.push_back(BuildOperand(operands[j], d + n - j + 1));
      left = std::move(node);
    }
    return left;
  }

  ExprPtr BuildOperand(antlr4::ParserRuleContext* ctx, size_t d) {
    if (dynamic_cast<VaktParser::AndExprContext*>(ctx) ||
        dynamic_cast<VaktParser::CmpExprContext*>(ctx) ||
        dynamic_cast<VaktParser::OwnAndContext*>(ctx) ||
        dynamic_cast<VaktParser::OwnCmpContext*>(ctx) ||
        dynamic_cast<VaktParser::AddExprContext*>(ctx) ||
        dynamic_cast<VaktParser::MulExprContext*>(ctx)) {
      return BuildChain(ctx, d);
    }
    if (auto* u = dynamic_cast<VaktParser::UnaryExprContext*>(ctx)) return BuildUnary(u, d);
    return Placeholder(ctx);
  }

  ExprPtr BuildUnary(VaktParser::UnaryExprContext* u, size_t d) {
    std::vector<antlr4::Token*> ops;
    VaktParser::UnaryExprContext* cur = u;
    while (cur && !cur->postfixExpr()) {
      TerminalNode* op = cur->BANG() ? cur->BANG() : cur->MINUS();
      if (!op) break;
      ops.push_back(op->getSymbol());
      cur = cur->unaryExpr();
    }
    if (!ops.empty() && TooDeep(d + ops.size(), ops[0])) return Placeholder(u);
    ExprPtr operand = cur && cur->postfixExpr() ? BuildPostfix(cur->postfixExpr(), d + ops.size())
                                                : Placeholder(cur ? cur : u);
    for (size_t j = ops.size(); j-- > 0;) {
      auto node = NewExpr(ast::ExprKind::kUnary, Loc(ops[j]));
      node->uop = ops[j]->getType() == VaktParser::BANG ? ast::UnaryOp::kNot : ast::UnaryOp::kNeg;
      node->children.push_back(std::move(operand));
      operand = std::move(node);
    }
    return operand;
  }

  ExprPtr BuildPostfix(VaktParser::PostfixExprContext* p, size_t d) {
    std::vector<VaktParser::PostfixOpContext*> ops = p->postfixOp();
    const size_t n = ops.size();
    if (n > 0 && TooDeep(d + n, p->getStart())) return Placeholder(p);
    ExprPtr base = BuildPrimary(p->primary(), d + n, p);
    const Location loc = Loc(p->getStart());
    for (size_t j = 0; j < n; ++j) {
      const size_t inner = d + n - j;  // depth of this node's operands
      ExprPtr node;
      if (auto* m = dynamic_cast<VaktParser::MemberOpContext*>(ops[j])) {
        node = NewExpr(ast::ExprKind::kMember, loc);
        node->text = m->anyName() ? Text(m->anyName()->getStart()) : std::string();
        node->children.push_back(std::move(base));
      } else if (auto* x = dynamic_cast<VaktParser::IndexOpContext*>(ops[j])) {
        node = NewExpr(ast::ExprKind::kIndex, loc);
        node->children.push_back(std::move(base));
        node->children.push_back(BuildExpr(x->expr(), inner));
      } else if (auto* c = dynamic_cast<VaktParser::CallOpContext*>(ops[j])) {
        node = NewExpr(ast::ExprKind::kCall, loc);
        node->children.push_back(std::move(base));
        for (auto* arg : c->expr()) node->children.push_back(BuildExpr(arg, inner));
      } else {
        continue;  // an unpredicted alternative; already reported
      }
      base = std::move(node);
    }
    return base;
  }

  ExprPtr BuildPrimary(VaktParser::PrimaryContext* pr, size_t d, antlr4::ParserRuleContext* owner) {
    using K = ast::ExprKind;
    if (!pr) return Placeholder(owner);
    const Location loc = Loc(pr->getStart());
    if (auto* x = dynamic_cast<VaktParser::IntLitContext*>(pr)) {
      auto e = NewExpr(K::kInt, loc);
      if (x->INT()) e->int_value = ParseInt(x->INT()->getSymbol()).value_or(0);
      return e;
    }
    if (auto* x = dynamic_cast<VaktParser::DurationLitContext*>(pr)) {
      auto e = NewExpr(K::kDuration, loc);
      if (x->DURATION()) e->int_value = ParseDuration(x->DURATION()->getSymbol());
      return e;
    }
    if (auto* x = dynamic_cast<VaktParser::StringLitContext*>(pr)) {
      auto e = NewExpr(K::kString, loc);
      e->text = DecodeStr(x->str());
      return e;
    }
    if (dynamic_cast<VaktParser::TrueLitContext*>(pr) ||
        dynamic_cast<VaktParser::FalseLitContext*>(pr)) {
      auto e = NewExpr(K::kBool, loc);
      e->bool_value = dynamic_cast<VaktParser::TrueLitContext*>(pr) != nullptr;
      return e;
    }
    if (dynamic_cast<VaktParser::NullLitContext*>(pr)) return NewExpr(K::kNull, loc);
    if (auto* x = dynamic_cast<VaktParser::NameRefContext*>(pr)) {
      auto e = NewExpr(K::kName, loc);
      if (x->ident()) e->text = Text(x->ident()->getStart());
      return e;
    }
    if (auto* x = dynamic_cast<VaktParser::ParenExprContext*>(pr)) {
      if (TooDeep(d + 1, pr->getStart())) return Placeholder(pr);
      return BuildExpr(x->expr(), d + 1);
    }
    if (auto* x = dynamic_cast<VaktParser::ListLitContext*>(pr)) {
      if (TooDeep(d + 1, pr->getStart())) return Placeholder(pr);
      auto e = NewExpr(K::kList, loc);
      for (auto* item : x->expr()) e->children.push_back(BuildExpr(item, d + 1));
      return e;
    }
    return Placeholder(pr);
  }

  // ---- rules and bodies

  ast::DenySpec BuildDeny(VaktParser::DenyClauseContext* c) {
    ast::DenySpec s;
    if (!c) return s;
    s.loc = Loc(c->getStart());
    s.status = ParseStatus(c->INT(), s.status);
    s.error = Text(c->IDENT());
    if (c->str()) s.message = DecodeStr(c->str());
    return s;
  }

  void BuildSettings(VaktParser::SettingsContext* ctx, std::vector<ast::Setting>& out) {
    if (!ctx) return;
    for (auto* st : ctx->setting()) {
      if (!st || !st->anyName()) continue;
      ast::Setting set;
      set.loc = Loc(st->getStart());
      set.loosen = st->LOOSEN() != nullptr;
      set.name = Text(st->anyName()->getStart());
      set.value = TopExpr(st->expr(), st);
      out.push_back(std::move(set));
    }
  }

  std::string LabelOf(VaktParser::LabelContext* l) {
    return l ? Text(l->getStart()) : std::string();
  }

  void BuildStatement(VaktParser::StatementContext* s, std::vector<ast::Stmt>& out) {
    if (!s) return;
    ast::Stmt st;
    st.loc = Loc(s->getStart());
    if (auto* u = dynamic_cast<VaktParser::UseStmtContext*>(s)) {
      st.kind = ast::StmtKind::kUse;
      st.name = Text(u->IDENT(0));
      if (u->DOT()) st.name += "." + Text(u->IDENT(1));
      st.name_loc = u->IDENT(0) ? Loc(u->IDENT(0)->getSymbol()) : st.loc;
      if (u->settings()) {
        st.has_settings = true;
        BuildSettings(u->settings(), st.settings);
      }
    } else if (auto* l = dynamic_cast<VaktParser::LetStmtContext*>(s)) {
      st.kind = ast::StmtKind::kLet;
      st.name = Text(l->IDENT());
      st.name_loc = l->IDENT() ? Loc(l->IDENT()->getSymbol()) : st.loc;
      st.expr = TopExpr(l->expr(), l);
    } else if (auto* r = dynamic_cast<VaktParser::RequireStmtContext*>(s)) {
      st.kind = ast::StmtKind::kRequire;
      st.label = LabelOf(r->label());
      st.expr = TopExpr(r->expr(), r);
      st.deny = BuildDeny(r->denyClause());
    } else if (auto* di = dynamic_cast<VaktParser::DenyIfStmtContext*>(s)) {
      st.kind = ast::StmtKind::kDenyIf;
      st.label = LabelOf(di->label());
      st.deny = BuildDeny(di->denyClause());
      st.expr = TopExpr(di->expr(), di);
    } else if (auto* ow = dynamic_cast<VaktParser::OwnsStmtContext*>(s)) {
      st.kind = ast::StmtKind::kOwns;
      st.label = LabelOf(ow->label());
      deep_reported_ = false;
      st.expr = ow->postfixExpr() ? BuildPostfix(ow->postfixExpr(), 0) : Placeholder(ow);
      for (auto* c : ow->ownClause()) {
        if (!c) continue;
        ast::OwnClause clause;
        clause.loc = Loc(c->getStart());
        clause.in = c->IN() != nullptr;
        deep_reported_ = false;
        clause.value = c->addExpr() ? BuildChain(c->addExpr(), 0) : Placeholder(c);
        if (c->IF()) {
          deep_reported_ = false;
          clause.cond = c->ownCond() ? BuildChain(c->ownCond(), 0) : Placeholder(c);
        }
        st.clauses.push_back(std::move(clause));
      }
      if (ow->ELSE()) {
        st.has_deny = true;
        st.deny = BuildDeny(ow->denyClause());
      }
    } else if (auto* b = dynamic_cast<VaktParser::BodyStmtContext*>(s)) {
      st.kind = ast::StmtKind::kBody;
      st.label = LabelOf(b->label());
      auto idents = b->IDENT();
      if (b->INT()) {
        st.status_loc = Loc(b->INT()->getSymbol());
        st.body_status = ParseStatus(b->INT(), 0);
        if (!idents.empty()) {
          st.name = Text(idents[0]);
          st.name_loc = Loc(idents[0]->getSymbol());
        }
      } else if (b->STATUS_CLASS()) {
        st.status_loc = Loc(b->STATUS_CLASS()->getSymbol());
        st.body_status = b->STATUS_CLASS()->getText()[0] - '0';  // 1..5 (the lexer's [1-5])
        st.body_status_class = true;
        if (!idents.empty()) {
          st.name = Text(idents[0]);
          st.name_loc = Loc(idents[0]->getSymbol());
        }
      } else if (b->str()) {
        st.name_loc = idents.empty() ? st.loc : Loc(idents[0]->getSymbol());
        if (!idents.empty() && Text(idents[0]) != "openapi") {
          rep_.Error(st.name_loc, "expected `openapi` before a document name, got `" +
                                      Text(idents[0]) + "`");
        }
        st.body_openapi = DecodeStr(b->str());
        if (st.body_openapi.empty()) rep_.Error(Loc(b->str()->getStart()), "empty file name");
      } else if (idents.size() == 2) {
        st.status_loc = Loc(idents[0]->getSymbol());
        if (Text(idents[0]) != "default") {
          rep_.Error(st.status_loc, "expected a status or `default` before the schema name, got `" +
                                        Text(idents[0]) + "`");
        }
        st.body_status = ast::kBodyDefault;
        st.name = Text(idents[1]);
        st.name_loc = Loc(idents[1]->getSymbol());
      } else if (idents.size() == 1) {
        st.name = Text(idents[0]);
        st.name_loc = Loc(idents[0]->getSymbol());
      }
      if (b->settings()) {
        st.has_settings = true;
        BuildSettings(b->settings(), st.settings);
      }
    } else {
      return;  // no alternative was predicted; already reported
    }
    out.push_back(std::move(st));
  }

  // body and apiBody: statements, `on response` blocks and (api) routes, in
  // source order.
  void BuildBody(antlr4::ParserRuleContext* ctx, ast::Body& body, std::vector<ast::Route>* routes) {
    if (!ctx) return;
    for (antlr4::tree::ParseTree* child : ctx->children) {
      if (auto* s = dynamic_cast<VaktParser::StatementContext*>(child)) {
        BuildStatement(s, body.request);
      } else if (auto* o = dynamic_cast<VaktParser::OnResponseContext*>(child)) {
        if (body.has_response) {
          rep_.Error(Loc(o->getStart()), "duplicate `on response` block");
          continue;
        }
        body.has_response = true;
        body.response_loc = Loc(o->getStart());
        for (antlr4::tree::ParseTree* inner : o->children) {
          if (auto* s = dynamic_cast<VaktParser::StatementContext*>(inner)) {
            BuildStatement(s, body.response);
          } else if (auto* nested = dynamic_cast<VaktParser::OnResponseContext*>(inner)) {
            rep_.Error(Loc(nested->getStart()), "`on response` blocks cannot be nested");
          }
        }
      } else if (auto* r = dynamic_cast<VaktParser::RouteDeclContext*>(child)) {
        if (routes) routes->push_back(BuildRoute(r));
      }
    }
  }

  ast::Route BuildRoute(VaktParser::RouteDeclContext* r) {
    ast::Route rt;
    rt.loc = Loc(r->getStart());
    std::vector<TerminalNode*> ids = r->IDENT();
    TerminalNode* method = nullptr;
    if (ids.size() >= 2) {
      rt.name = Text(ids[0]);
      method = ids[1];
    } else if (ids.size() == 1) {
      method = ids[0];
    }
    if (method) {
      rt.method = Text(method);
      rt.method_loc = Loc(method->getSymbol());
    }
    if (r->str()) {
      rt.path = DecodeStr(r->str());
      rt.path_loc = Loc(r->str()->getStart());
    }
    BuildBody(r->body(), rt.body, nullptr);
    return rt;
  }

  ast::Function BuildFunction(VaktParser::FnDeclContext* fn) {
    ast::Function f;
    f.loc = Loc(fn->getStart());
    f.name = Text(fn->IDENT());
    for (auto* p : fn->param()) {
      if (!p) continue;
      ast::Param param;
      param.name = Text(p->IDENT());
      param.loc = Loc(p->getStart());
      param.type = BuildType(p->type(), 0);
      f.params.push_back(std::move(param));
    }
    f.result = BuildType(fn->type(), 0);
    f.body = TopExpr(fn->expr(), fn);
    return f;
  }

  // ---- tests and JSON

  ast::Test BuildTest(VaktParser::TestDeclContext* t) {
    ast::Test test;
    test.loc = Loc(t->getStart());
    test.name = DecodeStr(t->str());
    bool seen_request = false, seen_claims = false, seen_response = false, seen_now = false;
    bool seen_revoke = false;
    auto once = [&](bool& seen, antlr4::ParserRuleContext* item, const char* what) {
      if (seen) {
        rep_.Error(Loc(item->getStart()), std::string("duplicate `") + what + "` in test");
        return false;
      }
      seen = true;
      return true;
    };
    for (auto* item : t->testItem()) {
      if (auto* x = dynamic_cast<VaktParser::TestRequestContext*>(item)) {
        if (once(seen_request, x, "request")) {
          test.request_json = Json(x->jsonObject(), &test.request_loc);
        }
      } else if (auto* x = dynamic_cast<VaktParser::TestClaimsContext*>(item)) {
        if (once(seen_claims, x, "claims")) {
          test.claims_json = Json(x->jsonObject(), &test.claims_loc);
        }
      } else if (auto* x = dynamic_cast<VaktParser::TestResponseContext*>(item)) {
        if (once(seen_response, x, "response")) {
          test.response_json = Json(x->jsonObject(), &test.response_loc);
        }
      } else if (auto* x = dynamic_cast<VaktParser::TestNowContext*>(item)) {
        if (once(seen_now, x, "now") && x->INT()) test.now = ParseInt(x->INT()->getSymbol());
      } else if (auto* x = dynamic_cast<VaktParser::TestTokenContext*>(item)) {
        if (once(test.has_token, x, "token")) {
          if (x->str()) test.token_alg = DecodeStr(x->str());
          test.token_json = Json(x->jsonObject(), &test.token_loc);
          test.token_loc = Loc(x->getStart());
        }
      } else if (auto* x = dynamic_cast<VaktParser::TestDpopContext*>(item)) {
        if (once(test.has_dpop, x, "dpop")) {
          test.dpop_loc = Loc(x->getStart());
          if (x->jsonObject()) {
            Location ignored;
            test.dpop_json = Json(x->jsonObject(), &ignored);
          }
        }
      } else if (auto* x = dynamic_cast<VaktParser::TestCertContext*>(item)) {
        if (once(test.has_cert, x, "cert")) {
          test.cert_loc = Loc(x->getStart());
          if (x->str()) test.cert = DecodeStr(x->str());
        }
      } else if (auto* x = dynamic_cast<VaktParser::TestRevokeContext*>(item)) {
        if (once(seen_revoke, x, "revoke")) {
          test.revoke_json = Json(x->jsonObject(), &test.revoke_loc);
        }
      } else if (auto* x = dynamic_cast<VaktParser::TestExpectContext*>(item)) {
        if (once(test.has_expect, x, "expect")) {
          test.expect.loc = Loc(x->getStart());
          test.expect.allow = x->ALLOW() != nullptr;
          if (!test.expect.allow) {
            test.expect.status = ParseStatus(x->INT(), 0);
            test.expect.error = Text(x->IDENT());
          }
        }
      }
    }
    return test;
  }

  // The exact source text of a JSON object, checked: nesting, strings,
  // numbers, and no comments inside (the text is handed on verbatim).
  std::string Json(VaktParser::JsonObjectContext* o, Location* loc) {
    if (!o) return {};
    antlr4::Token* start = o->getStart();
    antlr4::Token* stop = o->getStop();
    *loc = Loc(start);
    json_deep_reported_ = false;
    CheckJsonObject(o, 0);
    if (!start || !stop || stop->getTokenIndex() < start->getTokenIndex() ||
        stop->getTokenIndex() >= tokens_.size()) {
      return {};
    }
    for (size_t i = start->getTokenIndex(); i <= stop->getTokenIndex(); ++i) {
      size_t type = tokens_[i]->getType();
      if (type == VaktLexer::LINE_COMMENT || type == VaktLexer::BLOCK_COMMENT ||
          type == VaktLexer::UNTERMINATED_BLOCK_COMMENT) {
        rep_.Error(Loc(tokens_[i]), "comments are not allowed inside json");
        break;
      }
    }
    size_t from = start->getStartIndex(), to = stop->getStopIndex();
    if (from == INVALID_INDEX || to == INVALID_INDEX || to < from || to >= src_.text.size()) {
      return {};
    }
    return src_.text.substr(from, to - from + 1);
  }

  bool JsonTooDeep(size_t level, antlr4::Token* at) {
    if (level <= static_cast<size_t>(kMaxNesting)) return false;
    if (!json_deep_reported_) rep_.Error(Loc(at), NestingMessage());
    json_deep_reported_ = true;
    return true;
  }

  void CheckJsonObject(VaktParser::JsonObjectContext* o, size_t above) {
    if (!o || JsonTooDeep(above + 1, o->getStart())) return;
    for (auto* pair : o->jsonPair()) {
      if (!pair) continue;
      if (pair->STRING()) DecodeToken(pair->STRING()->getSymbol());
      CheckJsonValue(pair->jsonValue(), above + 1);
    }
  }

  void CheckJsonArray(VaktParser::JsonArrayContext* a, size_t above) {
    if (!a || JsonTooDeep(above + 1, a->getStart())) return;
    for (auto* v : a->jsonValue()) CheckJsonValue(v, above + 1);
  }

  void CheckJsonValue(VaktParser::JsonValueContext* v, size_t above) {
    if (!v) return;
    if (v->jsonObject()) return CheckJsonObject(v->jsonObject(), above);
    if (v->jsonArray()) return CheckJsonArray(v->jsonArray(), above);
    if (v->STRING()) {
      DecodeToken(v->STRING()->getSymbol());
      return;
    }
    TerminalNode* num = v->INT() ? v->INT() : v->FLOAT();
    if (!num) return;
    antlr4::Token* t = num->getSymbol();
    std::string_view text = TextView(t);
    if (text.size() > 1 && text[0] == '0' && std::isdigit(static_cast<unsigned char>(text[1]))) {
      rep_.Error(Loc(t), "invalid json number " + Quoted(text) + ": leading zero");
    }
    if (TerminalNode* minus = v->MINUS()) {
      antlr4::Token* m = minus->getSymbol();
      if (m->getStopIndex() != INVALID_INDEX && m->getStopIndex() + 1 != t->getStartIndex()) {
        rep_.Error(Loc(m), "invalid json number: space after `-`");
      }
    }
  }

  const SourceFile& src_;
  Reporter& rep_;
  const std::vector<antlr4::Token*>& tokens_;
  const std::unordered_set<size_t>& bad_;
  bool deep_reported_ = false;       // per top-level expression / type
  bool json_deep_reported_ = false;  // per JSON object
};

// Parses into `file`; may throw ANTLR exceptions (caught by ParseFile).
void Parse(const SourceFile& src, Reporter& rep, ast::File& file) {
  if (src.text.size() > kMaxSourceBytes) {
    rep.Error(Location{&src, 1, 1}, "file is too large (" + std::to_string(src.text.size()) +
                                        " bytes; the limit is " + std::to_string(kMaxSourceBytes) +
                                        ")");
    return;
  }
  Lexed lexed(src, rep);
  if (!lexed.Run()) return;
  if (rep.full()) {
    rep.GiveUp();
    return;
  }
  if (!lexed.CheckNesting()) return;

  VaktParser parser(&lexed.tokens());
  // Two-stage parsing: the fast SLL prediction with bail-out on the first
  // error; valid files (the common case) finish here. On any error the
  // file is parsed again with full LL prediction and the reporting error
  // strategy, so diagnostics are exactly those of a single LL parse.
  parser.removeErrorListeners();
  parser.getInterpreter<antlr4::atn::ParserATNSimulator>()->setPredictionMode(
      antlr4::atn::PredictionMode::SLL);
  parser.setErrorHandler(std::make_shared<antlr4::BailErrorStrategy>());
  VaktParser::FileContext* tree = nullptr;
  try {
    tree = parser.file();
  } catch (const antlr4::ParseCancellationException&) {
    tree = nullptr;
  }
  ParserListener listener(rep);
  if (tree == nullptr) {
    lexed.tokens().seek(0);
    parser.reset();
    parser.getInterpreter<antlr4::atn::ParserATNSimulator>()->setPredictionMode(
        antlr4::atn::PredictionMode::LL);
    parser.addErrorListener(&listener);
    parser.setErrorHandler(std::make_shared<Strategy>(src));
    try {
      tree = parser.file();
    } catch (const antlr4::ParseCancellationException&) {
      return;  // too many errors; already reported
    }
  }
  const std::vector<antlr4::Token*> all = lexed.tokens().getTokens();  // a copy
  Builder builder(src, rep, all, lexed.bad());
  builder.BuildFile(tree, file);
}

Token::Kind KindOf(size_t type) {
  using K = Token::Kind;
  if (type >= VaktLexer::PACKAGE && type <= VaktLexer::BODY) return K::kKeyword;
  switch (type) {
    case VaktLexer::IDENT:
      return K::kIdent;
    case VaktLexer::STRING:
    case VaktLexer::RAW_STRING:
    case VaktLexer::UNTERMINATED_STRING:
    case VaktLexer::UNTERMINATED_RAW_STRING:
      return K::kString;
    case VaktLexer::INT:
    case VaktLexer::FLOAT:
    case VaktLexer::BAD_NUMBER:
    case VaktLexer::STATUS_CLASS:
      return K::kNumber;
    case VaktLexer::DURATION:
      return K::kDuration;
    case VaktLexer::LINE_COMMENT:
      return K::kLineComment;
    case VaktLexer::BLOCK_COMMENT:
    case VaktLexer::UNTERMINATED_BLOCK_COMMENT:
      return K::kBlockComment;
    default:
      return K::kPunct;
  }
}

}  // namespace

std::unique_ptr<ast::File> ParseFile(const SourceFile& src, Diagnostics& diags) {
  auto file = std::make_unique<ast::File>();
  file->source = &src;
  Reporter rep(src);
  try {
    Parse(src, rep, *file);
  } catch (const std::exception& e) {
    rep.Error(Location{&src, 1, 1}, "internal parser error: " + Shown(e.what()));
  } catch (...) {
    rep.Error(Location{&src, 1, 1}, "internal parser error");
  }
  rep.Flush(diags);
  return file;
}

std::vector<Token> Lex(const SourceFile& src, Diagnostics& diags) {
  std::vector<Token> out;
  Reporter rep(src);
  try {
    if (src.text.size() > kMaxSourceBytes) {
      rep.Error(Location{&src, 1, 1}, "file is too large (" + std::to_string(src.text.size()) +
                                          " bytes; the limit is " +
                                          std::to_string(kMaxSourceBytes) + ")");
    } else {
      Lexed lexed(src, rep);
      if (lexed.Run()) {
        for (antlr4::Token* t : lexed.tokens().getTokens()) {
          size_t type = t->getType();
          if (type == antlr4::Token::EOF || type == VaktLexer::ERROR_CHAR ||
              type == VaktLexer::ERROR_BYTE) {
            continue;
          }
          Token tok;
          tok.kind = KindOf(type);
          tok.text = std::string(TextOf(src, t));
          tok.line = static_cast<uint32_t>(t->getLine());
          tok.column = static_cast<uint32_t>(t->getCharPositionInLine() + 1);
          out.push_back(std::move(tok));
        }
      }
    }
  } catch (const std::exception& e) {
    rep.Error(Location{&src, 1, 1}, "internal lexer error: " + Shown(e.what()));
  } catch (...) {
    rep.Error(Location{&src, 1, 1}, "internal lexer error");
  }
  rep.Flush(diags);
  return out;
}

}  // namespace vakt::dsl
