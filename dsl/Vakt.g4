// The Vakt policy language. antlr4 turns this into C++ at build time (target
// vakt_dsl_gen); dsl/parser.cc walks the resulting parse tree into the AST of
// dsl/ast.h and is the only file that sees these rules.
//
// The language is newline-insensitive: every statement starts with a keyword
// or `label:`, so no separators are needed. Expressions use one rule per
// precedence level with loops instead of ANTLR left recursion, so a flat
// chain `a || b || ...` never deepens the parse tree, and comparisons are
// non-associative (`a == b == c` is a syntax error).
//
// The lexer runs over bytes, not code points (parser.cc feeds each byte as
// one symbol), so token columns are byte columns. Malformed input gets tokens
// of its own (unterminated strings, invalid characters, bad numbers) that
// parser.cc reports with a precise message instead of a generic one.
grammar Vakt;

// ---------------------------------------------------------------- file

file
  : packageDecl? importDecl* decl* EOF
  ;

packageDecl : PACKAGE IDENT ;
importDecl  : IMPORT IDENT (AS IDENT)? ;

decl
  : constDecl
  | letDecl
  | shapeDecl
  | claimsDecl
  | fnDecl
  | profileDecl
  | apiDecl
  | issuerDecl
  | relationDecl
  | schemaDecl
  | testDecl
  ;

constDecl  : CONST IDENT (':' type)? '=' expr ;
letDecl    : LET IDENT '=' expr ;
shapeDecl  : SHAPE IDENT '=' str ;
claimsDecl : CLAIMS '{' claimDecl* '}' ;
claimDecl  : anyName ('.' anyName)* ':' type ;
fnDecl     : FN IDENT '(' (param (',' param)* ','?)? ')' '->' type '{' expr '}' ;
param      : IDENT ':' type ;
profileDecl: PROFILE IDENT body ;
apiDecl    : API IDENT str apiBody ;
routeDecl  : ROUTE IDENT IDENT? str body ;
// `issuer NAME { url = "..." audience = "..." jwks = "file" ... }`
issuerDecl : ISSUER IDENT settings ;
// Settings of an issuer or of a built-in profile (`use fapi2 { ... }`).
// `loosen` marks a setting that weakens the FAPI 2.0 defaults on purpose.
settings   : '{' setting* '}' ;
// `relation NAME: list<string> = "file.json"`: a JSON object of keys to
// strings (or lists of strings), read at build time into the bundle.
relationDecl : RELATION IDENT ':' type '=' str ;
// `schema NAME = "file.json"`, `= { inline JSON }` or
// `= openapi "doc.yaml" "Component"`, with optional `{ strict = true ... }`.
// `openapi` is a plain name checked by parser.cc.
schemaDecl : SCHEMA IDENT '=' (str | jsonObject | IDENT str str) settings? ;
setting    : LOOSEN? anyName '=' expr ;

type
  : BOOL | INT_T | STRING_T | DURATION_T | TIMESTAMP | JSON | NULL_
  | LIST '<' type '>'
  ;

// ---------------------------------------------------------------- rules

body    : '{' (statement | onResponse)* '}' ;
apiBody : '{' (statement | onResponse | routeDecl)* '}' ;
// Nested `on response` parses (so the error can say what is wrong) and is
// refused by parser.cc, as is a second block in the same body.
onResponse : ON RESPONSE '{' (statement | onResponse)* '}' ;

statement
  : USE IDENT ('.' IDENT)? settings?             # useStmt
  | LET IDENT '=' expr                            # letStmt
  | (label ':')? REQUIRE expr ELSE denyClause     # requireStmt
  | (label ':')? denyClause IF expr               # denyIfStmt
  | (label ':')? OWNS postfixExpr '{' ownClause* '}' (ELSE denyClause)?  # ownsStmt
  // `body NAME`, `body 200 NAME` / `body 4XX NAME` / `body default NAME`
  // (in `on response`), `body openapi "doc.yaml"`; parser.cc checks the
  // plain names.
  | (label ':')? BODY (INT IDENT | STATUS_CLASS IDENT | IDENT IDENT | IDENT str | IDENT) settings?  # bodyStmt
  ;

// One way to own the object: `== value` or `in list`, maybe `if cond`. The
// value is an addExpr so that the next clause's `==` / `in` starts a new
// clause (parenthesise a comparison). In a condition, a comparison operator
// that starts a line starts the next clause instead (the predicate), so
// `if has(x)` on one line and `in y` on the next are two clauses; this is
// the only place where a line break matters. The condition has rules of
// its own so that what may follow a clause does not leak into the follow
// sets of expr (which would move the errors of `a == == b`).
ownClause : (EQ | IN) addExpr (IF ownCond)? ;
ownCond   : ownAnd (OR ownAnd)* ;
ownAnd    : ownCmp (AND ownCmp)* ;
ownCmp    : addExpr ({_input->LT(1)->getLine() == _input->LT(-1)->getLine()}? cmpOp addExpr)? ;

// Rule labels may be any name, keywords included (`json: require ...`).
label : anyName ;

denyClause : DENY INT IDENT? str? ;

// ---------------------------------------------------------------- tests

testDecl : TEST str '{' testItem* '}' ;

testItem
  : REQUEST jsonObject                   # testRequest
  | CLAIMS jsonObject                    # testClaims
  | RESPONSE jsonObject                  # testResponse
  | NOW INT                              # testNow
  | EXPECT (ALLOW | DENY INT IDENT?)      # testExpect
  | TOKEN str? jsonObject                # testToken
  | DPOP jsonObject?                     # testDpop
  | CERT str?                            # testCert
  | REVOKE jsonObject                    # testRevoke
  ;

jsonObject : '{' (jsonPair (',' jsonPair)*)? '}' ;
jsonPair   : STRING ':' jsonValue ;
jsonArray  : '[' (jsonValue (',' jsonValue)*)? ']' ;
jsonValue
  : jsonObject
  | jsonArray
  | STRING
  | MINUS? (INT | FLOAT)
  | TRUE_
  | FALSE_
  | NULL_
  ;

// ---------------------------------------------------------------- expressions

expr    : orExpr ;
orExpr  : andExpr (OR andExpr)* ;
andExpr : cmpExpr (AND cmpExpr)* ;
cmpExpr : addExpr (cmpOp addExpr)? ;   // non-associative
cmpOp   : EQ | NE | LT | LE | GT | GE | IN | MATCHES ;
addExpr : mulExpr ((PLUS | MINUS) mulExpr)* ;
mulExpr : unaryExpr ((STAR | SLASH | PERCENT) unaryExpr)* ;
unaryExpr
  : (BANG | MINUS) unaryExpr
  | postfixExpr
  ;
postfixExpr : primary postfixOp* ;
postfixOp
  : '.' anyName                                   # memberOp
  | '[' expr ']'                                  # indexOp
  | '(' (expr (',' expr)* ','?)? ')'              # callOp
  ;
primary
  : INT                                           # intLit
  | DURATION                                      # durationLit
  | str                                           # stringLit
  | TRUE_                                          # trueLit
  | FALSE_                                         # falseLit
  | NULL_                                          # nullLit
  | ident                                         # nameRef
  | '(' expr ')'                                  # parenExpr
  | '[' (expr (',' expr)* ','?)? ']'              # listLit
  ;

str : STRING | RAW_STRING ;

// A name in an expression: identifiers and the keywords that double as
// builtin names (`request.method`, `now`, `duration("5m")`).
ident
  : IDENT
  | REQUEST | RESPONSE | CLAIMS | NOW | ROUTE | API | TEST | SHAPE | PROFILE | USE
  | BOOL | INT_T | STRING_T | DURATION_T | TIMESTAMP | JSON | LIST
  | ISSUER | LOOSEN | TOKEN | DPOP | CERT | REVOKE | SCHEMA | BODY
  ;

// After `.` (members, claim paths) every keyword is a plain name.
anyName
  : IDENT
  | PACKAGE | IMPORT | AS | CONST | LET | SHAPE | CLAIMS | FN | PROFILE | API
  | ROUTE | ON | RESPONSE | USE | REQUIRE | ELSE | DENY | IF | TEST | REQUEST
  | NOW | EXPECT | ALLOW | TRUE_ | FALSE_ | NULL_ | IN | MATCHES | BOOL | INT_T
  | STRING_T | DURATION_T | TIMESTAMP | JSON | LIST
  | ISSUER | LOOSEN | TOKEN | DPOP | CERT | REVOKE | RELATION | OWNS
  | SCHEMA | BODY
  ;

// ---------------------------------------------------------------- lexer

PACKAGE    : 'package' ;
IMPORT     : 'import' ;
AS         : 'as' ;
CONST      : 'const' ;
LET        : 'let' ;
SHAPE      : 'shape' ;
CLAIMS     : 'claims' ;
FN         : 'fn' ;
PROFILE    : 'profile' ;
API        : 'api' ;
ROUTE      : 'route' ;
ON         : 'on' ;
RESPONSE   : 'response' ;
USE        : 'use' ;
REQUIRE    : 'require' ;
ELSE       : 'else' ;
DENY       : 'deny' ;
IF         : 'if' ;
TEST       : 'test' ;
REQUEST    : 'request' ;
NOW        : 'now' ;
EXPECT     : 'expect' ;
ALLOW      : 'allow' ;
TRUE_       : 'true' ;
FALSE_      : 'false' ;
NULL_       : 'null' ;
IN         : 'in' ;
MATCHES    : 'matches' ;
BOOL       : 'bool' ;
INT_T      : 'int' ;
STRING_T   : 'string' ;
DURATION_T : 'duration' ;
TIMESTAMP  : 'timestamp' ;
JSON       : 'json' ;
LIST       : 'list' ;
ISSUER     : 'issuer' ;
LOOSEN     : 'loosen' ;
TOKEN      : 'token' ;
DPOP       : 'dpop' ;
CERT       : 'cert' ;
REVOKE     : 'revoke' ;
RELATION   : 'relation' ;
OWNS       : 'owns' ;
SCHEMA     : 'schema' ;
BODY       : 'body' ;

LPAREN   : '(' ;
RPAREN   : ')' ;
LBRACKET : '[' ;
RBRACKET : ']' ;
LBRACE   : '{' ;
RBRACE   : '}' ;
COMMA    : ',' ;
COLON    : ':' ;
DOT      : '.' ;
ARROW    : '->' ;
ASSIGN   : '=' ;
EQ       : '==' ;
NE       : '!=' ;
LE       : '<=' ;
GE       : '>=' ;
LT       : '<' ;
GT       : '>' ;
AND      : '&&' ;
OR       : '||' ;
PLUS     : '+' ;
MINUS    : '-' ;
STAR     : '*' ;
SLASH    : '/' ;
PERCENT  : '%' ;
BANG     : '!' ;

// Order matters where two rules match the same length: DURATION before
// BAD_NUMBER (`10s`), FLOAT before BAD_NUMBER (`1e5`).
DURATION : [0-9]+ [smhd] ;
FLOAT    : [0-9]+ ('.' [0-9]+ EXPONENT? | EXPONENT) ;
INT      : [0-9]+ ;
// A class of response statuses in `body 4XX NAME` (1XX to 5XX); before
// BAD_NUMBER, which matches the same three characters.
STATUS_CLASS : [1-5] 'XX' ;
// `10ms`, `3x`: a number glued to a name. Reported as one bad literal.
BAD_NUMBER : [0-9]+ [a-zA-Z_] [a-zA-Z_0-9]* ;
fragment EXPONENT : [eE] [+-]? [0-9]+ ;

// `r"..."`: no escapes, cannot contain `"`. Longer than IDENT `r`, so wins.
RAW_STRING : 'r"' ~["\r\n]* '"' ;
// Escapes are validated (and decoded) by parser.cc, which can point at the
// offending backslash.
STRING     : '"' ('\\' ~[\r\n] | ~["\\\r\n])* '"' ;
UNTERMINATED_RAW_STRING : 'r"' ~["\r\n]* ;
UNTERMINATED_STRING     : '"' ('\\' ~[\r\n] | ~["\\\r\n])* '\\'? ;

IDENT : [a-zA-Z_] [a-zA-Z_0-9]* ;

LINE_COMMENT  : '//' ~[\r\n]* -> channel(HIDDEN) ;
BLOCK_COMMENT : '/*' (~'*' | '*'+ ~[*/])* '*'+ '/' -> channel(HIDDEN) ;
// Matches up to the end of the file when `*/` never comes (shorter than
// BLOCK_COMMENT whenever that one matches).
UNTERMINATED_BLOCK_COMMENT : '/*' (~'*' | '*'+ ~[*/])* '*'* -> channel(HIDDEN) ;

WS  : [ \t\r\n\f]+ -> skip ;
BOM : [\u00EF] [\u00BB] [\u00BF] -> skip ;

// Anything else: one UTF-8 sequence (lead byte and continuation bytes) or
// one stray byte. Hidden from the parser; parser.cc reports it.
ERROR_CHAR : [\u00C0-\u00FF] [\u0080-\u00BF]* -> channel(HIDDEN) ;
ERROR_BYTE : . -> channel(HIDDEN) ;
